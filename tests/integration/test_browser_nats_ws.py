"""A NATS client in a real browser: @nats-io/nats-core over the websocket listener.

Headless Chromium (tests/helpers/browser.py) loads tests/browser/nats_ws_page.html from a
local HTTP server; the page connects with nats-core's wsconnect, subscribes, says hello
with its client id, and the test then starts a nats-py responder on the other worker
(the page's worker is in its client id), sends the page a message with a header, and
says ready. The page takes that message, publishes to itself and to the test, makes a
request the responder answers, and reports what it saw. The same scenario runs against
nats-server with the same config, and must end the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import browser
from tests.helpers.broker import (
    HOST,
    Broker,
    barrier,
    connect_on_shard,
    free_port,
    shard_of_client_id,
    unique,
)
from tests.helpers.differential import broker_on

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PAGE_FILES = ("nats_ws_page.html", "nats_ws_page.js")
SCENARIO_TIMEOUT = 30.0


def websocket_conf(tmp_path: Path) -> tuple[Path, int]:
    ws_port = free_port()
    conf = tmp_path / "websocket.conf"
    conf.write_text(f"websocket {{\n  host: {HOST}\n  port: {ws_port}\n  no_tls: true\n}}\n")
    return conf, ws_port


@contextlib.contextmanager
def page_server(directory: Path) -> Iterator[int]:
    """The test page's files over HTTP on 127.0.0.1; yields the port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the test reads no log
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def page_dir(tmp_path: Path) -> Path:
    """The page, its script and nats-core bundled as one module, in a directory to serve."""
    site = tmp_path / "site"
    site.mkdir()
    for name in PAGE_FILES:
        shutil.copyfile(browser.BROWSER_DIR / name, site / name)
    browser.bundle_nats_core(site / "nats-core.js")
    return site


async def scenario(broker: Broker, ws_port: int, site: Path, tmp_path: Path) -> dict[str, Any]:
    """The page's run against one broker; returns what both sides saw."""
    prefix = unique("browser")
    hub = await connect_on_shard(broker, 1, name="test-hub")
    responder = None
    hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    from_browser: list[Any] = []

    async def on_hello(msg: Any) -> None:
        if not hello.done():
            hello.set_result(json.loads(msg.data))

    async def on_from_browser(msg: Any) -> None:
        from_browser.append(msg)

    await hub.subscribe(f"{prefix}.hello", cb=on_hello)
    await hub.subscribe(f"{prefix}.from-browser", cb=on_from_browser)
    await barrier(hub)

    async def orchestrate() -> int:
        """Once the page said hello: a responder on another worker, then a message for
        the page and the go-ahead. Returns the responder's client id."""
        nonlocal responder
        page_cid = (await asyncio.wait_for(hello, SCENARIO_TIMEOUT))["client_id"]
        other = 2 if broker.is_shardbroker and shard_of_client_id(page_cid) == 1 else 1
        responder = await connect_on_shard(broker, other, name="test-responder")

        async def answer(msg: Any) -> None:
            await msg.respond(b"pong to " + msg.data)

        await responder.subscribe(f"{prefix}.echo", cb=answer)
        await barrier(responder)
        await hub.publish(f"{prefix}.to-browser", b"from nats-py", headers={"Test": "yes"})
        await hub.publish(f"{prefix}.ready", b"go")
        await hub.flush()
        return int(responder.client_id)

    with page_server(site) as http_port:
        query = f"server=ws://{HOST}:{ws_port}&prefix={prefix}"
        url = f"http://{HOST}:{http_port}/nats_ws_page.html?{query}"
        try:
            report, responder_cid = await asyncio.gather(
                browser.drive(
                    {
                        "url": url,
                        "steps": [
                            {
                                "waitFor": "() => window.__natsResult !== undefined",
                                "collect": "() => window.__natsResult",
                                "timeoutMs": SCENARIO_TIMEOUT * 1000,
                            }
                        ],
                    },
                    tmp_path,
                ),
                orchestrate(),
            )
            await barrier(hub)
        finally:
            await hub.close()
            if responder is not None:
                await responder.close()
    (result,) = report["samples"]
    assert "error" not in result, result
    assert not report["pageErrors"], report["pageErrors"]
    page_cid = result.pop("client_id")
    if broker.is_shardbroker:
        assert shard_of_client_id(page_cid) != shard_of_client_id(responder_cid)
    result.pop("server_id")
    result["from_browser"] = [
        (m.data.decode(), (m.headers or {}).get("From")) for m in from_browser
    ]
    return result


EXPECTED = {
    "ready": "go",
    "to_browser": {"data": "from nats-py", "header": "yes"},
    "self": "to myself",
    "reply": "pong to ping",
    "closed": True,
    "from_browser": [("hello from the browser", "browser")],
}


@pytest.mark.parametrize("target", ["nats-server", "shardbroker"])
async def test_nats_core_in_chromium_over_websocket(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser.require()
    conf, ws_port = websocket_conf(tmp_path)
    site = page_dir(tmp_path)
    with broker_on(target, conf, monkeypatch, tmp_path) as broker:
        result = await scenario(broker, ws_port, site, tmp_path)
    assert result == EXPECTED
