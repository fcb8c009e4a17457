"""The load generator's websocket client (shardbroker/bench/websocket.py): frames a
server's reader accepts, the upgrade, frames in, pings answered, a refusal reported."""

from __future__ import annotations

from typing import Any

import pytest

from shardbroker.bench import BenchError
from shardbroker.bench.client import ServerURL
from shardbroker.bench.websocket import WebSocketLayer, client_frame_header
from shardbroker.core import ws_unmask_runs
from shardbroker.protocol import wsframes as wf


class Recorder:
    """A stand-in for the bench Connection."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = b""
        self.lost: list[BaseException | None] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


class Socket:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, chunks: Any) -> None:
        self.written += b"".join(chunks)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 100_000])
def test_bench_websocket_frames_are_what_a_server_reads(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    reader = wf.FrameReader(ws_unmask_runs)
    events = reader.feed(client_frame_header(len(payload)) + payload)
    assert b"".join(p for kind, p in events if kind == wf.DATA) == payload
    assert all(kind == wf.DATA for kind, _ in events)


def upgraded() -> tuple[WebSocketLayer, Recorder, Socket]:
    inner = Recorder()
    layer = WebSocketLayer(inner, "127.0.0.1", 8080)  # type: ignore[arg-type]
    sock = Socket()
    layer.connection_made(sock)  # type: ignore[arg-type]
    assert sock.written.startswith(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Upgrade: websocket\r\n" in sock.written
    sock.written = b""
    return layer, inner, sock


def test_bench_websocket_upgrade_then_frames_both_ways() -> None:
    layer, inner, sock = upgraded()
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    info = wf.frame_header(9) + b"INFO {}\r\n"
    layer.data_received(answer[:20])
    assert inner.transport is None
    layer.data_received(answer[20:] + info[:3])
    assert inner.transport is not None
    layer.data_received(
        info[3:] + wf.control_frame(wf.PING, b"p") + wf.frame_header(6) + b"PONG\r\n"
    )
    assert inner.data == b"INFO {}\r\nPONG\r\n"
    # The ping was answered with a masked pong; the inner connection's writes are frames.
    inner.transport.write(b"PUB a 1\r\nx\r\n")
    reader = wf.FrameReader(ws_unmask_runs)
    assert reader.feed(sock.written) == [(wf.PONG, b"p"), (wf.DATA, b"PUB a 1\r\nx\r\n")]


def test_bench_websocket_refusal_is_reported() -> None:
    layer, inner, sock = upgraded()
    layer.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nForbidden\n")
    assert inner.transport is None
    assert sock.closed
    (error,) = inner.lost
    assert "websocket upgrade refused: HTTP/1.1 403 Forbidden" in str(error)


def test_bench_websocket_urls() -> None:
    url = ServerURL("ws://127.0.0.1:9001")
    assert url.websocket and url.port == 9001 and url.display == "ws://127.0.0.1:9001"
    assert not ServerURL("nats://127.0.0.1").websocket
    with pytest.raises(BenchError, match=r"only nats:// and ws://"):
        ServerURL("wss://127.0.0.1:9001")
