"""The client side of a websocket port, for the load-test runner's connections (`-s
ws://host:port`): the upgrade request, then frames around what a bench `Connection`
writes and reads, so the same roles and the same counting run over websockets.

Owner: the bench client processes. ``WebSocketLayer`` is the protocol of the socket: it
sends the upgrade, checks the 101, then hands the connection a ``ClientFrames``
transport and feeds it the payload bytes of the server's frames as one stream (frame
boundaries mean nothing to NATS). Every write becomes one masked binary frame.

The masking key is four zero bytes: a valid key (RFC 6455 §5.3 asks a browser for
unpredictable keys, against proxies that cache; a load generator talking to a broker on
loopback has no such proxy), which spares the generator an XOR pass over every byte it
sends, while the server still unmasks every frame as it must. The server's work is what
is measured, so the generator's must stay small.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

from shardbroker.protocol import wsframes

_ZERO_KEY = b"\x00\x00\x00\x00"
_MASKED = 0x80
_MAX_ANSWER = 64 * 1024  # bytes of an upgrade answer before it is refused as garbage


def client_frame_header(length: int, opcode: int = wsframes.BINARY) -> bytes:
    """A final, masked frame's header with the zero key (see the module docstring)."""
    b0 = 0x80 | opcode
    if length <= 125:
        return bytes((b0, _MASKED | length)) + _ZERO_KEY
    if length < 65536:
        return struct.pack(">BBH", b0, _MASKED | 126, length) + _ZERO_KEY
    return struct.pack(">BBQ", b0, _MASKED | 127, length) + _ZERO_KEY


def _gather(data: bytes, runs: list[wsframes.Run]) -> bytes:
    """The payloads of a server's frames (never masked), one after the other."""
    if len(runs) == 1:
        start, length, _, _ = runs[0]
        return data if start == 0 and length == len(data) else data[start : start + length]
    return b"".join(data[start : start + length] for start, length, _, _ in runs)


class ClientFrames:
    """The transport a bench Connection writes through on a websocket: its writes become
    frames; the rest is the socket's."""

    __slots__ = ("layer",)

    def __init__(self, layer: WebSocketLayer) -> None:
        self.layer = layer

    def write(self, data: bytes) -> None:
        self.layer.send(data)

    def writelines(self, chunks: Any) -> None:
        self.layer.send(b"".join(chunks))

    def close(self) -> None:
        raw = self.layer.raw
        if raw is not None and not raw.is_closing():
            raw.write(client_frame_header(2, wsframes.CLOSE) + struct.pack(">H", 1000))
            raw.close()

    def abort(self) -> None:
        if self.layer.raw is not None:
            self.layer.raw.abort()

    def is_closing(self) -> bool:
        return self.layer.raw is None or self.layer.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        raw = self.layer.raw
        return default if raw is None else raw.get_extra_info(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.layer.raw is not None:
            self.layer.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        raw = self.layer.raw
        return 0 if raw is None else raw.get_write_buffer_size()

    def pause_reading(self) -> None:
        if self.layer.raw is not None:
            self.layer.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.layer.raw is not None:
            self.layer.raw.resume_reading()


class WebSocketLayer(asyncio.Protocol):
    """The socket's protocol: upgrade, then frames in both directions (see the module
    docstring). `inner` is the bench Connection (an asyncio.Protocol)."""

    __slots__ = ("answer", "host", "inner", "port", "raw", "reader", "upgraded")

    def __init__(self, inner: asyncio.Protocol, host: str, port: int) -> None:
        self.inner = inner
        self.host = host
        self.port = port
        self.raw: asyncio.Transport | None = None
        self.answer = b""
        self.upgraded = False
        self.reader = wsframes.FrameReader(_gather, mask_required=False)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"[{self.host}]" if ":" in self.host else self.host
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            data = self.answer + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.answer = data
                if len(data) > _MAX_ANSWER:
                    self.refused(data[:80])
                return
            status = data[: data.find(b"\r\n")]
            if not status.startswith(b"HTTP/1.1 101 "):
                self.refused(status)
                return
            self.upgraded = True
            self.answer = b""
            self.inner.connection_made(ClientFrames(self))  # type: ignore[arg-type]
            data = data[end + 4 :]
            if not data:
                return
        pieces = []
        for kind, payload in self.reader.feed(data):
            if kind == wsframes.DATA:
                pieces.append(payload)
            elif kind == wsframes.PING:
                self.send(payload, wsframes.PONG)
            elif kind in (wsframes.CLOSE, wsframes.ERROR):
                break
        if pieces:
            self.inner.data_received(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def refused(self, status: bytes) -> None:
        """No 101: the bench connection fails with what the server said."""
        reason = status.decode(errors="replace").strip() or "no answer"
        if self.raw is not None:
            self.raw.close()
        self.inner.connection_lost(ConnectionError(f"websocket upgrade refused: {reason}"))
        self.upgraded = True  # nothing more to read
        self.raw = None

    def send(self, data: bytes, opcode: int = wsframes.BINARY) -> None:
        raw = self.raw
        if raw is None:
            return
        header = client_frame_header(len(data), opcode)
        if len(data) < 16384:
            raw.write(header + data)
        else:
            raw.writelines((header, data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.raw is not None:
            self.raw = None
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
