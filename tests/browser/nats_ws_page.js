// The websocket browser test's page (tests/integration/test_browser_nats_ws.py). With
// @nats-io/nats-core's wsconnect it connects to ?server=ws://..., subscribes, says hello
// (with its client id) on <prefix>.hello so the test can start a responder on another
// worker, waits for <prefix>.ready, then: takes the message the test sent it, publishes to
// itself and to the test (with a header), makes a request the test's responder answers,
// and leaves all it saw in window.__natsResult ({error} when something failed).
import { headers, wsconnect } from "./nats-core.js";

const params = new URLSearchParams(location.search);
const server = params.get("server");
const prefix = params.get("prefix");
const log = (line) => {
  document.getElementById("log").textContent += line + "\n";
};

async function first(subscription) {
  for await (const msg of subscription) {
    return msg;
  }
  throw new Error(`no message on ${subscription.getSubject()}`);
}

async function run() {
  const nc = await wsconnect({ servers: server, name: "browser-test", timeout: 5000 });
  log(`connected to ${nc.getServer()} as client ${nc.info.client_id}`);
  const result = { server_id: nc.info.server_id, client_id: nc.info.client_id };
  const toBrowser = nc.subscribe(`${prefix}.to-browser`, { max: 1 });
  const ready = nc.subscribe(`${prefix}.ready`, { max: 1 });
  const self = nc.subscribe(`${prefix}.self`, { max: 1 });
  await nc.flush();
  nc.publish(`${prefix}.hello`, JSON.stringify({ client_id: nc.info.client_id }));

  result.ready = (await first(ready)).string();
  const sent = await first(toBrowser);
  result.to_browser = { data: sent.string(), header: sent.headers ? sent.headers.get("Test") : "" };
  nc.publish(`${prefix}.self`, "to myself");
  result.self = (await first(self)).string();

  const h = headers();
  h.set("From", "browser");
  nc.publish(`${prefix}.from-browser`, "hello from the browser", { headers: h });
  const reply = await nc.request(`${prefix}.echo`, "ping", { timeout: 5000 });
  result.reply = reply.string();
  await nc.drain();
  result.closed = true;
  log(JSON.stringify(result));
  return result;
}

run().then(
  (result) => {
    window.__natsResult = result;
  },
  (err) => {
    log(String(err));
    window.__natsResult = { error: String((err && err.message) || err) };
  },
);
