"""One NATS request from the shell, over a plain TCP socket: log in as a user (the user
JWT, and the server's nonce signed with the user's seed, as every NATS client does),
publish a payload with a reply inbox, and gather the replies that arrive before a
deadline. `shardbroker jwt push` sends account JWTs with it.

Blocking and without an event loop: a command makes one request and exits. TLS is not
spoken; a server that requires it is reported as such.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from shardbroker import __version__, const
from shardbroker.config import jwt

CRLF = b"\r\n"
NO_RESPONDERS = "503"
_READ_SIZE = 65536
_MAX_LINE = 1 << 20  # an INFO or -ERR line longer than this is no NATS server's


class RequestError(Exception):
    """The request could not be made: no connection, refused login, protocol error."""


@dataclass(frozen=True)
class Frame:
    """One thing the server sent: its verb, its arguments and, for MSG and HMSG, the
    header block and payload."""

    verb: str
    args: tuple[str, ...]
    headers: bytes = b""
    payload: bytes = b""


@dataclass(frozen=True)
class Reply:
    subject: str
    payload: bytes
    status: str  # the HMSG status code ("503": no responders), "" for a plain MSG


class FrameReader:
    """Cuts the bytes a server sends into Frames; a frame split over reads waits for its
    end. Raises RequestError on what no NATS server sends."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            end = self._buffer.find(CRLF)
            if end < 0:
                if len(self._buffer) > _MAX_LINE:
                    raise RequestError("protocol error: a control line without its end")
                return frames
            line = bytes(self._buffer[:end]).decode("utf-8", "replace")
            verb, _, rest = line.partition(" ")
            verb = verb.upper()
            if verb not in ("MSG", "HMSG"):
                del self._buffer[: end + 2]
                frames.append(Frame(verb, (rest.strip(),)))
                continue
            args = tuple(rest.split())
            try:
                size = int(args[-1])
                header_size = int(args[-2]) if verb == "HMSG" else 0
            except (IndexError, ValueError):
                raise RequestError(f"protocol error: {line!r}") from None
            start = end + 2
            if len(self._buffer) < start + size + 2:
                return frames
            body = bytes(self._buffer[start : start + size])
            del self._buffer[: start + size + 2]
            frames.append(Frame(verb, args, body[:header_size], body[header_size:]))


def status_of(headers: bytes) -> str:
    """The status code of an HMSG header block (`NATS/1.0 503 ...`), or ""."""
    first = headers.split(CRLF, 1)[0].split()
    return first[1].decode() if len(first) > 1 and first[0].startswith(b"NATS/") else ""


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of `nats://host:port` (or `host:port`; port 4222 by default)."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.scheme not in ("nats", "tls"):
        raise RequestError(f"{url}: only nats:// URLs are supported")
    if parts.scheme == "tls":
        raise RequestError(f"{url}: TLS is not supported by this tool")
    try:
        port = parts.port or const.DEFAULT_PORT
    except ValueError:
        raise RequestError(f"{url}: bad port") from None
    return parts.hostname or "127.0.0.1", port


class _Wire:
    """A socket read frame by frame until a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.pending: list[Frame] = []

    def next_frame(self, deadline: float) -> Frame | None:
        """The next frame, answering PINGs; None at the deadline."""
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                if frame.verb == "PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(_READ_SIZE)
            except TimeoutError:
                return None
            if not data:
                raise RequestError("the server closed the connection")
            self.pending.extend(self.reader.feed(data))


def _connect_fields(info: dict[str, object], user_jwt: str, seed: str) -> dict[str, object]:
    fields: dict[str, object] = {
        "verbose": False, "pedantic": False, "tls_required": False,
        "name": "shardbroker jwt", "lang": "python", "version": __version__,
        "protocol": 1, "headers": True, "no_responders": True, "jwt": user_jwt,
    }  # fmt: skip
    nonce = info.get("nonce")
    if isinstance(nonce, str) and nonce:
        signature = jwt.sign(seed, nonce.encode())
        fields["sig"] = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    return fields


def _login(wire: _Wire, user_jwt: str, seed: str, deadline: float) -> None:
    frame = wire.next_frame(deadline)
    if frame is None or frame.verb != "INFO":
        raise RequestError("no INFO from the server: is it a NATS server?")
    try:
        info = json.loads(frame.args[0])
    except ValueError:
        raise RequestError("the server's INFO is not JSON") from None
    if info.get("tls_required"):
        raise RequestError("the server requires TLS, which this tool does not speak")
    connect = json.dumps(_connect_fields(info, user_jwt, seed), separators=(",", ":"))
    wire.sock.sendall(f"CONNECT {connect}\r\nPING\r\n".encode())
    while True:
        frame = wire.next_frame(deadline)
        if frame is None:
            raise RequestError("no answer to CONNECT from the server")
        if frame.verb == "PONG":
            return
        if frame.verb == "-ERR":
            raise RequestError(f"the server refused the login: {frame.args[0]}")


def request(
    url: str,
    user_jwt: str,
    seed: str,
    subject: str,
    payload: bytes,
    *,
    timeout: float,
    max_replies: int,
) -> list[Reply]:
    """Publish `payload` to `subject` as the user, and return the replies received
    within `timeout` seconds of it (at most `max_replies`; a no-responders status
    counts as one)."""
    host, port = parse_url(url)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise RequestError(f"cannot connect to {url}: {exc.strerror or exc}") from None
    with sock:
        wire = _Wire(sock)
        try:
            _login(wire, user_jwt, seed, time.monotonic() + timeout)
            inbox = f"_INBOX.{secrets.token_hex(11)}"
            sock.sendall(
                f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode()
                + payload
                + b"\r\nPING\r\n"
            )
            replies: list[Reply] = []
            deadline = time.monotonic() + timeout
            while len(replies) < max_replies:
                frame = wire.next_frame(deadline)
                if frame is None:
                    break
                if frame.verb == "-ERR":
                    raise RequestError(f"the server refused the request: {frame.args[0]}")
                if frame.verb in ("MSG", "HMSG") and frame.args[1] == "1":
                    replies.append(Reply(frame.args[0], frame.payload, status_of(frame.headers)))
            return replies
        except OSError as exc:
            raise RequestError(f"connection to {url} failed: {exc.strerror or exc}") from None
