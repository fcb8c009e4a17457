"""Headless Chromium for the browser tests: what they need, and a way to drive a page.

Owner: test processes only. The browser is Debian's (`apt-get install chromium`,
/usr/bin/chromium); playwright-core, @nats-io/nats-core and esbuild come from
tests/browser/package.json (`npm ci --prefix tests/browser`; .ci/run does both). A test
describes what to wait for and what to read as page functions (JavaScript source) and
`drive` hands them to tests/browser/drive.mjs, run with node as a subprocess of the
test's event loop, so the load a test runs keeps going meanwhile. When something is
missing or Chromium cannot start, the test skips with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.broker import REPO_ROOT

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DRIVER = BROWSER_DIR / "drive.mjs"
# Exit code of drive.mjs when Chromium itself does not start.
CANNOT_START = 3
DRIVE_TIMEOUT = 60.0
INSTALL_HINT = "apt-get install -y chromium && npm ci --prefix tests/browser"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install it: {INSTALL_HINT})"
    if shutil.which("node") is None:
        return "no node on PATH (the browser tests drive Chromium with playwright-core)"
    for package in ("playwright-core", "@nats-io/nats-core", "esbuild"):
        if not (BROWSER_DIR / "node_modules" / package / "package.json").exists():
            return f"{package} is not installed in tests/browser (run: {INSTALL_HINT})"
    return None


def require() -> None:
    """Skip the calling test when the browser tests cannot run here."""
    reason = missing()
    if reason is not None:
        pytest.skip(f"browser test skipped: {reason}")


async def drive(
    spec: dict[str, Any], work_dir: Path, seconds: float = DRIVE_TIMEOUT
) -> dict[str, Any]:
    """Run drive.mjs on `spec` (see its header), for at most `seconds`; its report.

    Skips the test when Chromium cannot start; fails it, with the report, when a step
    timed out or the page could not be loaded."""
    require()
    spec_path = work_dir / "browser-spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = await asyncio.create_subprocess_exec(
        "node", str(DRIVER), str(spec_path),
        cwd=BROWSER_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, CHROMIUM_PATH=CHROMIUM),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the browser driver did not finish in {seconds}s") from None
    stderr = err.decode(errors="replace").strip()
    if proc.returncode == CANNOT_START:
        pytest.skip(f"browser test skipped: {stderr}")
    try:
        report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(
            f"the browser driver exited {proc.returncode} without a report: {stderr}"
        ) from None
    assert proc.returncode == 0, f"browser driver failed: {json.dumps(report, indent=1)}"
    return report


def bundle_nats_core(out_file: Path) -> None:
    """@nats-io/nats-core as one ES module a page can import (its npm build is CommonJS).

    The entry goes to esbuild on stdin, so the package resolves from tests/browser."""
    require()
    subprocess.run(
        [
            str(BROWSER_DIR / "node_modules" / ".bin" / "esbuild"), "--bundle", "--format=esm",
            "--log-level=warning", f"--outfile={out_file}",
        ],
        input=b'export { wsconnect, headers } from "@nats-io/nats-core";\n',
        check=True, cwd=BROWSER_DIR, timeout=60, capture_output=True,
    )  # fmt: skip
