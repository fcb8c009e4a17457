"""A small raw-socket NATS client for tests where the exact bytes matter.

Owner: test processes only; blocking sockets, no asyncio. A `WireClient` reads the
server's output into *frames* (one control line, plus the payload of a MSG/HMSG), so
that an unsolicited server `PING` can be answered and dropped (`auto_pong`, on by
default) without disturbing byte-exact expectations: the first server PING arrives about
2 s after CONNECT, which a slow test run can reach.

`expect(regex)` matches a compiled bytes regex at the start of the not-yet-consumed
output and consumes what it matched; it never sleeps, it reads until the match succeeds,
the peer closes, or the timeout passes.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 5.0
# A negative check ("nothing arrives") is the one place a short wait is acceptable.
NOTHING_WAIT = 0.25

# -- regex bank (server -> client), all anchored at the start of the buffer by match() --
INFO_RE = re.compile(rb"INFO (?P<json>\{[^\r\n]*\}) ?\r\n")
# The real server writes exactly one space between the JSON and CRLF.
INFO_EXACT_RE = re.compile(rb"INFO (?P<json>\{[^\r\n]*\}) \r\n")
MSG_RE = re.compile(
    rb"MSG[ \t]+(?P<subject>[^ \t\r\n]+)[ \t]+(?P<sid>[^ \t\r\n]+)[ \t]+"
    rb"(?:(?P<reply>[^ \t\r\n]+)[ \t]+)?(?P<size>\d+)\r\n"
)
HMSG_RE = re.compile(
    rb"HMSG[ \t]+(?P<subject>[^ \t\r\n]+)[ \t]+(?P<sid>[^ \t\r\n]+)[ \t]+"
    rb"(?:(?P<reply>[^ \t\r\n]+)[ \t]+)?(?P<hdr_size>\d+)[ \t]+(?P<size>\d+)\r\n"
)
PING_RE = re.compile(rb"PING\r\n")
PONG_RE = re.compile(rb"PONG\r\n")
OK_RE = re.compile(rb"\+OK\r\n")
ERR_RE = re.compile(rb"-ERR '(?P<text>[^\r\n]*)'\r\n")

_SIZED_OPS = (b"MSG", b"HMSG")
_HEAD_MAX = 8192  # longest MSG/HMSG control line read_msg() looks at


def err_line(text: str) -> bytes:
    """The exact bytes of `-ERR '<text>'`."""
    return b"-ERR '" + text.encode() + b"'\r\n"


def literal(data: bytes) -> re.Pattern[bytes]:
    """A regex that matches exactly these bytes."""
    return re.compile(re.escape(data))


@dataclass
class Msg:
    """One MSG or HMSG as delivered."""

    op: str  # "MSG" or "HMSG"
    subject: str
    sid: str
    reply: str | None
    header: bytes  # b"" for MSG
    payload: bytes
    size_tokens: tuple[str, ...]  # the size tokens exactly as written by the server
    raw: bytes


class WireError(AssertionError):
    """An expectation on the wire failed; carries what was received."""


class WireClient:
    """A blocking raw-socket client; see the module docstring."""

    def __init__(self, sock: socket.socket, *, auto_pong: bool = True) -> None:
        self.sock = sock
        self.auto_pong = auto_pong
        self.info: dict[str, Any] = {}
        self.info_raw = b""
        self.closed = False  # the peer closed (EOF or reset)
        self.server_pings = 0  # server PINGs answered by auto_pong
        self._raw = bytearray()  # bytes received and not yet split into frames
        self._frames = bytearray()  # complete frames not yet consumed by expect()
        self._all = bytearray()  # every byte ever received, for failure messages

    # -- connection -------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        read_info: bool = True,
        rcvbuf: int | None = None,
        auto_pong: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        tls: ssl.SSLContext | None = None,
        tls_first: bool = False,
    ) -> WireClient:
        """Connect and read INFO. With `tls`, upgrade after the plain INFO as clients
        do, or with `tls_first` before anything (the server's `handshake_first`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                # Before connect, so the window is small from the handshake on.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.connect((host, port))
            if tls is not None and tls_first:
                sock = tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        client = cls(sock, auto_pong=auto_pong)
        if read_info:
            try:
                client.read_info(timeout=timeout)
                if tls is not None and not tls_first:
                    # The INFO came in plain text and nothing follows it until the
                    # client's handshake, so no TLS bytes can be in our buffer.
                    client.sock = tls.wrap_socket(client.sock, server_hostname=host)
            except BaseException:
                client.close()
                raise
        return client

    def read_info(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        m = self.expect(INFO_RE, timeout=timeout)
        self.info_raw = m.group(0)
        self.info = json.loads(m.group("json"))
        return self.info

    @property
    def client_id(self) -> int | None:
        return self.info.get("client_id")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ----------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_bytewise(self, data: bytes) -> None:
        """Send one byte per write (TCP_NODELAY is on, so each is its own segment)."""
        for i in range(len(data)):
            self.sock.sendall(data[i : i + 1])

    def connect_proto(self, **opts: Any) -> None:
        """Send CONNECT with the given JSON options (no PING)."""
        self.send(b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + b"\r\n")

    def handshake(self, **opts: Any) -> None:
        """CONNECT (non-verbose, non-pedantic unless given) + PING, then read PONG and,
        for protocol 1, the connect-info INFO; leaves the buffer empty."""
        opts.setdefault("verbose", False)
        opts.setdefault("pedantic", False)
        self.connect_proto(**opts)
        self.send(b"PING\r\n")
        if opts["verbose"]:
            self.expect(OK_RE)
        self.expect(PONG_RE)
        if opts.get("protocol", 0) >= 1:
            self.expect(INFO_RE)

    # -- receiving --------------------------------------------------------------------

    @property
    def pending(self) -> bytes:
        """Complete frames received and not consumed yet."""
        return bytes(self._frames)

    @property
    def received(self) -> bytes:
        """Every byte received so far (including consumed ones and server PINGs)."""
        return bytes(self._all)

    def _describe(self) -> str:
        tail = bytes(self._all[-2000:])
        return (
            f"unconsumed={bytes(self._frames)[:2000]!r} partial={bytes(self._raw)[:500]!r} "
            f"closed={self.closed} all_received_tail={tail!r}"
        )

    def _split_frames(self) -> None:
        """Move complete frames from _raw to _frames, answering server PINGs."""
        while True:
            nl = self._raw.find(b"\n")
            if nl < 0:
                return
            line = bytes(self._raw[: nl + 1])
            end = nl + 1
            op = line.split(None, 1)[0].upper() if line.strip() else b""
            if op in _SIZED_OPS:
                tokens = line.split()
                try:
                    size = int(tokens[-1])
                except ValueError:
                    size = 0
                if len(self._raw) < end + size + 2:
                    return  # wait for the payload and its CRLF
                end += size + 2
            frame = bytes(self._raw[:end])
            del self._raw[:end]
            if self.auto_pong and frame == b"PING\r\n":
                self.server_pings += 1
                with contextlib.suppress(OSError):
                    self.sock.sendall(b"PONG\r\n")
                continue
            self._frames += frame

    def _recv_some(self, deadline: float) -> bool:
        """Read once (up to the deadline). False on timeout; sets .closed on EOF/reset."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            self._flush_partial()
            return True
        if not data:
            self.closed = True
            self._flush_partial()
            return True
        self._all += data
        self._raw += data
        self._split_frames()
        return True

    def _flush_partial(self) -> None:
        # At EOF an incomplete frame can never complete; expose it as is.
        self._split_frames()
        self._frames += self._raw
        self._raw.clear()

    def expect(
        self, regex: re.Pattern[bytes] | bytes, timeout: float = DEFAULT_TIMEOUT
    ) -> re.Match[bytes]:
        """Read until `regex` matches at the start of the unconsumed output; consume it."""
        if isinstance(regex, bytes):
            regex = literal(regex)
        deadline = time.monotonic() + timeout
        while True:
            # Match on a copy: a match object keeps referring to its buffer.
            m = regex.match(bytes(self._frames))
            if m is not None:
                del self._frames[: m.end()]
                return m
            if self.closed:
                raise WireError(
                    f"connection closed while expecting {regex.pattern!r}: " + self._describe()
                )
            if not self._recv_some(deadline) and time.monotonic() >= deadline:
                raise WireError(
                    f"timed out after {timeout}s expecting {regex.pattern!r}: " + self._describe()
                )

    def expect_err(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.expect(literal(err_line(text)), timeout=timeout)

    def read_msg(self, timeout: float = DEFAULT_TIMEOUT) -> Msg:
        """Read the next frame, which must be a MSG or HMSG, and parse it."""
        deadline = time.monotonic() + timeout
        while True:
            head = bytes(self._frames[:_HEAD_MAX])
            for op, regex in (("MSG", MSG_RE), ("HMSG", HMSG_RE)):
                m = regex.match(head)
                if m is None:
                    continue
                size = int(m.group("size"))
                end = m.end() + size + 2
                if len(self._frames) < end:
                    break
                body = bytes(self._frames[m.end() : m.end() + size])
                if self._frames[m.end() + size : end] != b"\r\n":
                    raise WireError("payload not followed by CRLF: " + self._describe())
                raw = bytes(self._frames[:end])
                del self._frames[:end]
                hdr_size = int(m.group("hdr_size")) if op == "HMSG" else 0
                sizes = (
                    (m.group("hdr_size").decode(), m.group("size").decode())
                    if op == "HMSG"
                    else (m.group("size").decode(),)
                )
                reply = m.group("reply")
                return Msg(
                    op=op,
                    subject=m.group("subject").decode(),
                    sid=m.group("sid").decode(),
                    reply=reply.decode() if reply is not None else None,
                    header=body[:hdr_size],
                    payload=body[hdr_size:],
                    size_tokens=sizes,
                    raw=raw,
                )
            if self._frames and not self._frames.startswith((b"MSG", b"HMSG")):
                raise WireError("expected MSG/HMSG: " + self._describe())
            if self.closed:
                raise WireError("connection closed while expecting a message: " + self._describe())
            if not self._recv_some(deadline) and time.monotonic() >= deadline:
                raise WireError(
                    f"timed out after {timeout}s expecting a message: " + self._describe()
                )

    def ping_barrier(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Send PING, read through the PONG it provokes, return what came before it.

        Everything the server produced for bytes sent before the PING precedes the PONG,
        so `assert client.ping_barrier() == b""` is the preferred negative check.
        """
        self.send(b"PING\r\n")
        deadline = time.monotonic() + timeout
        while True:
            idx = _frame_index(self._frames, b"PONG\r\n")
            if idx is not None:
                before = bytes(self._frames[:idx])
                del self._frames[: idx + len(b"PONG\r\n")]
                return before
            if self.closed:
                raise WireError("connection closed while waiting for PONG: " + self._describe())
            if not self._recv_some(deadline) and time.monotonic() >= deadline:
                raise WireError(f"timed out after {timeout}s waiting for PONG: " + self._describe())

    def assert_nothing(self, timeout: float = NOTHING_WAIT) -> None:
        """Assert that nothing (but auto-answered PINGs) arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            self._recv_some(deadline)
            if self._frames or self._raw:
                break
        if self._frames or self._raw or self.closed:
            raise WireError("expected nothing: " + self._describe())

    def wait_server_pings(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Read (answering PINGs, auto_pong must be on) until `count` server PINGs in total
        have arrived; any other output is a failure."""
        assert self.auto_pong, "wait_server_pings needs auto_pong"
        deadline = time.monotonic() + timeout
        while self.server_pings < count:
            if self._frames or self.closed:
                raise WireError(
                    f"output while waiting for server PING #{count}: " + self._describe()
                )
            if not self._recv_some(deadline) and time.monotonic() >= deadline:
                raise WireError(
                    f"only {self.server_pings} server PINGs after {timeout}s: " + self._describe()
                )

    def expect_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Read until the server closes; return the unconsumed bytes received before EOF."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._recv_some(deadline) and time.monotonic() >= deadline:
                raise WireError(f"connection still open after {timeout}s: " + self._describe())
        data = bytes(self._frames)
        self._frames.clear()
        return data

    def is_open(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True if a PING still gets its PONG (consumes the PONG and whatever preceded it)."""
        try:
            self.ping_barrier(timeout=timeout)
        except (WireError, OSError):
            return False
        return True


def _frame_index(frames: bytearray, frame: bytes) -> int | None:
    """Offset of `frame` where it starts a frame in `frames` (not inside a payload)."""
    pos = 0
    n = len(frames)
    while pos < n:
        if frames.startswith(frame, pos):
            return pos
        nl = frames.find(b"\n", pos)
        if nl < 0:
            return None
        line = bytes(frames[pos : nl + 1])
        end = nl + 1
        op = line.split(None, 1)[0].upper() if line.strip() else b""
        if op in _SIZED_OPS:
            with contextlib.suppress(ValueError):
                end += int(line.split()[-1]) + 2
        pos = end
    return None


def proto_connect(opts: dict[str, Any] | None = None) -> bytes:
    """The bytes of a CONNECT line with compact JSON."""
    return b"CONNECT " + json.dumps(opts or {}, separators=(",", ":")).encode() + b"\r\n"
