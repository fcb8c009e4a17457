// Drives Debian's headless Chromium (/usr/bin/chromium) through playwright-core for the
// browser tests (tests/helpers/browser.py runs it). Usage: node drive.mjs SPEC.json
//
// SPEC: {url, viewport?: {width, height}, steps: [{waitFor, collect?, timeoutMs?}],
//        screenshot?: path, fullPage?: bool, timeoutMs?: number}
// Each step waits until the page function `waitFor` (source text, called with the previous
// step's collected value) returns something truthy, then runs `collect` (called the same
// way) and keeps its JSON result. Prints one JSON object on stdout: {samples, requests,
// console, pageErrors, timings (ms since start)}, with `error` and exit code 1 when a step
// failed. Exit code 3 with "chromium cannot start: ..." on stderr when the browser itself
// does not start (the tests skip then).
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
// This machine's network is closed: nothing but the page under test may be reached, and
// Chromium's own background traffic is switched off.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
// Function sources from the spec, as functions: playwright sends their text to the page
// and calls them there with the argument.
const pageFunction = (source) => new Function(`return (${source});`)();
const profile = mkdtempSync(join(tmpdir(), "sb-chromium-"));
const report = { samples: [], requests: [], console: [], pageErrors: [], timings: {} };
const started = Date.now();
const mark = (name) => {
  report.timings[name] = Date.now() - started;
};

let context;
try {
  // A persistent context is how playwright takes a fresh --user-data-dir of our own.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 20000,
    viewport: spec.viewport || { width: 1400, height: 1000 },
  });
} catch (err) {
  rmSync(profile, { recursive: true, force: true });
  process.stderr.write(`chromium cannot start: ${String(err.message || err).split("\n")[0]}\n`);
  process.exit(3);
}

mark("launched");
let code = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(spec.timeoutMs || 15000);
  page.on("request", (request) => report.requests.push(request.url()));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      report.console.push(`${msg.type()}: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => report.pageErrors.push(String(err)));
  await page.goto(spec.url, { waitUntil: "load" });
  mark("loaded");
  let previous = null;
  for (const [index, step] of (spec.steps || []).entries()) {
    try {
      await page.waitForFunction(pageFunction(step.waitFor), previous, { timeout: step.timeoutMs });
    } catch (err) {
      report.error = `step ${index}: ${String(err.message || err).split("\n")[0]}`;
      if (step.collect) report.lastSeen = await page.evaluate(pageFunction(step.collect), previous);
      throw err;
    }
    if (step.collect) {
      previous = await page.evaluate(pageFunction(step.collect), previous);
      report.samples.push(previous);
    }
    mark(`step ${index}`);
  }
  if (spec.screenshot) {
    await page.screenshot({ path: spec.screenshot, fullPage: Boolean(spec.fullPage) });
    mark("screenshot");
  }
} catch (err) {
  report.error = report.error || String(err.message || err);
  code = 1;
} finally {
  await context.close();
  mark("closed");
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(code);
