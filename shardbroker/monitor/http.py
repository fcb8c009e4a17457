"""The monitoring port: a small HTTP/1.1 server over monitor.collect.

Owner: the supervisor; runs on its asyncio loop (not a hot path). One
``asyncio.Protocol`` per connection reads a request head (no body is needed; one is
skipped by its Content-Length), dispatches it as a task and writes one response;
keep-alive is honoured, pipelining is served in order. Handlers are thin: parse the
query, call collect (through the Monitor), encode. A bad query is a 400 with
nats-server's text, an unknown path a 404, an oversized or garbled request a 400 and a
close; none of it touches the broker.
"""

from __future__ import annotations

import asyncio
import logging
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import msgspec

from shardbroker.monitor import collect, dashboard
from shardbroker.monitor.collect import BrokerState, QueryError


class MonitorData(Protocol):
    """What the HTTP handlers need of the monitor (service.py's Monitor is the one): the
    base path, the request counters, the broker's state and each endpoint's data."""

    http_req_stats: dict[str, int]

    def base_path(self) -> str: ...

    def state(self) -> BrokerState: ...

    async def endpoint_data(
        self, endpoint: str, state: BrokerState, query: dict[str, str]
    ) -> Any: ...


log = logging.getLogger("shardbroker.monitor")

MAX_HEAD = 16 * 1024
IDLE_TIMEOUT = 30.0
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# Path (without the base path) -> endpoint name for Monitor.endpoint_data.
ENDPOINTS = {
    "/varz": "VARZ",
    "/connz": "CONNZ",
    "/subsz": "SUBSZ",
    "/subscriptionsz": "SUBSZ",
    "/routez": "ROUTEZ",
    "/gatewayz": "GATEWAYZ",
    "/leafz": "LEAFZ",
    "/accountz": "ACCOUNTZ",
    "/accstatz": "ACCSTATZ",
    "/jsz": "JSZ",
    # shardbroker's own: per-shard figures (monitor/shardz.py).
    "/shardz": "SHARDZ",
}

INDEX = """<html lang="en">
  <head><title>shardbroker monitoring</title></head>
  <body>
    <h1>shardbroker</h1>
    <ul>
{links}
    </ul>
  </body>
</html>
"""


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = _JSON,
        headers: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers  # extra "Name: value" lines

    def encode(self, keep_alive: bool) -> bytes:
        head = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            f"Date: {formatdate(usegmt=True)}",
        ]
        if self.content_type == _JSON or self.status == 200:
            head.append("Access-Control-Allow-Origin: *")
        if self.status == 404:
            head.append("X-Content-Type-Options: nosniff")
        head.extend(self.headers)
        head.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(data: Any, status: int = 200, pretty: bool = True) -> Response:
    body = msgspec.json.encode(data)
    if pretty:
        body = msgspec.json.format(body, indent=2)
    return Response(status, body)


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), _TEXT)


async def handle(monitor: MonitorData, method: str, target: str) -> Response:
    """One request -> one response. Never raises."""
    try:
        parts = urlsplit(target)
        path = parts.path or "/"
        base = monitor.base_path()
        if base:
            if not path.startswith(base):
                return text_response(404, "404 page not found\n")
            path = path[len(base) :] or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return await route(monitor, path, query)
    except QueryError as exc:
        return text_response(400, str(exc))
    except Exception:
        log.exception("monitoring request %s %s failed", method, target[:200])
        return text_response(500, "internal error\n")


async def route(monitor: MonitorData, path: str, query: dict[str, str]) -> Response:
    if path == "/":
        stats = monitor.http_req_stats
        stats[path] = stats.get(path, 0) + 1
        base = monitor.base_path()
        links = "\n".join(
            f'      <li><a href="{base}{p}">{p[1:]}</a></li>'
            for p in (*ENDPOINTS, "/healthz", "/metrics", "/dashboard")
        )
        return Response(200, INDEX.format(links=links).encode(), "text/html; charset=utf-8")
    if path == "/dashboard" or path.startswith("/static/"):
        return dashboard_response(monitor, path)
    if path not in ENDPOINTS and path not in ("/healthz", "/metrics"):
        return text_response(404, "404 page not found\n")
    stats = monitor.http_req_stats
    stats[path] = stats.get(path, 0) + 1
    state = monitor.state()
    if path == "/healthz":
        status, body = collect.healthz(state, query)
        return json_response(body, status, pretty=False)
    if path == "/metrics":
        from shardbroker.monitor.prometheus import CONTENT_TYPE, render

        # With auth: each connection's account, for the per-account figures.
        connz = await monitor.endpoint_data("CONNZ", state, {"auth": "true"})
        jsz = await monitor.endpoint_data("JSZ", state, {"consumers": "true"})
        return Response(200, render(state, connz, jsz), CONTENT_TYPE)
    data = await monitor.endpoint_data(ENDPOINTS[path], state, query)
    return json_response(data)


def dashboard_response(monitor: MonitorData, path: str) -> Response:
    """/dashboard and the files under /static/ it loads (monitor/dashboard.py)."""
    stats = monitor.http_req_stats
    headers: tuple[str, ...] = ("Cache-Control: no-cache", "X-Content-Type-Options: nosniff")
    if path == "/dashboard":
        stats[path] = stats.get(path, 0) + 1
        body = dashboard.page(monitor.base_path())
        headers += (f"Content-Security-Policy: {dashboard.CONTENT_SECURITY_POLICY}",)
        return Response(200, body, "text/html; charset=utf-8", headers)
    found = dashboard.asset(path.removeprefix("/static/"))
    if found is None:
        return text_response(404, "404 page not found\n")
    return Response(200, found[0], found[1], headers)


class HTTPProtocol(asyncio.Protocol):
    """One monitoring connection. Requests are answered in order."""

    def __init__(self, monitor: MonitorData) -> None:
        self.monitor = monitor
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.skip = 0  # body bytes of the current request still to drop
        self.queue: asyncio.Queue[tuple[str, str, bool] | None] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.worker = asyncio.get_running_loop().create_task(self.serve())
        self.touch()

    def touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.touch()
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
        self.buffer += data
        while not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.fail(431, "request header too large\n")
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            request = self.parse_head(head)
            if request is None:
                self.fail(400, "bad request\n")
                return
            self.queue.put_nowait(request)

    def parse_head(self, head: str) -> tuple[str, str, bool] | None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return None
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        length = headers.get("content-length", "0")
        if not length.isdigit():
            return None
        body = int(length)
        taken = min(body, len(self.buffer))
        del self.buffer[:taken]
        self.skip = body - taken
        return method, target, keep_alive

    def fail(self, status: int, text: str) -> None:
        self.queue.put_nowait(None)
        if self.transport is not None:
            self.transport.write(text_response(status, text).encode(False))
        self.close()

    async def serve(self) -> None:
        while True:
            request = await self.queue.get()
            if request is None or self.closing:
                return
            method, target, keep_alive = request
            response = await handle(self.monitor, method, target)
            if self.closing or self.transport is None:
                return
            self.transport.write(response.encode(keep_alive))
            if not keep_alive:
                self.close()
                return

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.idle is not None:
            self.idle.cancel()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.idle is not None:
            self.idle.cancel()
        if self.worker is not None:
            self.worker.cancel()


async def serve(monitor: MonitorData, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HTTPProtocol(monitor), host, port, reuse_address=True)
