"""A blocking raw-socket websocket client for exact bytes: the upgrade request as written,
the server's answer as sent, and frames built and read by hand (masked or not, any
opcode, fragments, compression). Owner: test processes only; nothing here imports the
`shardbroker` package, so the same code checks nats-server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import ssl
import struct
import time
import zlib
from typing import Any

DEFAULT_TIMEOUT = 5.0
KEY = base64.b64encode(b"0123456789abcdef").decode()
MASK = b"\x37\xfa\x21\x3d"
_DATE = re.compile(rb"\r\nDate: [^\r]*")

# Opcodes.
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


def upgrade_request(
    path: str = "/", *headers: str, host: str = "127.0.0.1", method: str = "GET"
) -> bytes:
    """A client's upgrade request; each of `headers` replaces the usual header of its
    name (an empty value leaves it out), or is added."""
    fields = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    extra = []
    for header in filter(None, headers):
        name, _, value = header.partition(":")
        usual = next((key for key in fields if key.lower() == name.strip().lower()), None)
        if usual is None:
            extra.append(header)
        else:
            fields[usual] = value.strip()
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def without_date(answer: bytes) -> bytes:
    """An HTTP answer with its Date header's value blanked (the only part that varies)."""
    return _DATE.sub(b"\r\nDate: -", answer)


def frame(
    payload: bytes,
    opcode: int = BINARY,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
) -> bytes:
    """A client frame: masked with `mask` unless it is None."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack(">BB", b0, bit | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, bit | 126, n)
    else:
        head = struct.pack(">BBQ", b0, bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflate(data: bytes) -> bytes:
    """permessage-deflate of one message without context takeover."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


class Frame:
    __slots__ = ("fin", "opcode", "payload", "rsv1")

    def __init__(self, opcode: int, fin: bool, rsv1: bool, payload: bytes) -> None:
        self.opcode = opcode
        self.fin = fin
        self.rsv1 = rsv1
        self.payload = payload

    @property
    def data(self) -> bytes:
        """The payload, inflated when the frame is compressed."""
        return inflate(self.payload) if self.rsv1 else self.payload

    def __repr__(self) -> str:
        return f"Frame(op={self.opcode}, fin={self.fin}, rsv1={self.rsv1}, {self.payload[:80]!r})"


class WSClient:
    """One connection to a websocket port; see the module docstring."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closed = False
        self.answer = b""  # the HTTP answer to the upgrade
        self.info: dict[str, Any] = {}

    @classmethod
    def open(
        cls, port: int, *, tls: ssl.SSLContext | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> WSClient:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(sock)

    @classmethod
    def upgraded(cls, port: int, *headers: str, tls: ssl.SSLContext | None = None) -> WSClient:
        """Connected, upgraded (the 101 checked) and the INFO frame read."""
        client = cls.open(port, tls=tls)
        client.send(upgrade_request("/", *headers))
        answer = client.read_answer()
        assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), answer
        info = client.read_frame()
        assert info.data.startswith(b"INFO "), info
        client.info = json.loads(info.data[5:])
        return client

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> WSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes, opcode: int = BINARY, **kwargs: Any) -> None:
        self.send(frame(payload, opcode, **kwargs))

    def _fill(self, deadline: float) -> bool:
        """Read more; False at EOF (or reset)."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True

    def read_answer(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The HTTP answer: its head, and the body its Content-Length announces (or
        everything up to EOF for Go's short pages, which close)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                answer, self.buffer = self.buffer, b""
                return answer
        end = self.buffer.index(b"\r\n\r\n") + 4
        head = self.buffer[:end]
        length = re.search(rb"\r\nContent-Length: (\d+)", head)
        if length is not None:
            end += int(length.group(1))
            while len(self.buffer) < end and self._fill(deadline):
                pass
        elif b" 101 " not in head.split(b"\r\n", 1)[0]:
            while self._fill(deadline):
                pass
            end = len(self.buffer)
        self.answer, self.buffer = self.buffer[:end], self.buffer[end:]
        return self.answer

    def read_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if not self._fill(deadline):
                raise EOFError(f"closed; unparsed {self.buffer[:200]!r}")

    def _parse(self) -> Frame | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        assert not b1 & 0x80, "a server never masks its frames"
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack_from(">H", buf, 2)[0]
            pos = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack_from(">Q", buf, 2)[0]
            pos = 10
        if len(buf) < pos + length:
            return None
        self.buffer = buf[pos + length :]
        return Frame(b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), buf[pos : pos + length])

    def read_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> list[Frame]:
        """Every frame until the server closes the connection."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                frames.append(parsed)
                continue
            if not self._fill(deadline):
                return frames
            if time.monotonic() > deadline:
                raise TimeoutError(f"not closed within {timeout}s; frames {frames}")

    def read_data(self, until: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """NATS bytes from data frames (answering server PINGs is left to the test)
        until `until` has arrived."""
        out = b""
        deadline = time.monotonic() + timeout
        while until not in out:
            got = self.read_frame(max(0.01, deadline - time.monotonic()))
            assert got.opcode in (BINARY, CONTINUATION), got
            out += got.data
        return out

    def nats_handshake(self, **connect: Any) -> bytes:
        """CONNECT (non-verbose) and PING as two messages; what came up to the PONG."""
        opts = {"verbose": False, "pedantic": False, **connect}
        self.send_frame(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
        self.send_frame(b"PING\r\n")
        return self.read_data(b"PONG\r\n")


def random_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()
