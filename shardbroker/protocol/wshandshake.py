"""The HTTP upgrade of the websocket port, answered as nats-server answers it: its HTTP
server (Go's net/http) reads the request, its handler (wsUpgrade) checks it, and either
answers ``101 Switching Protocols`` or one of Go's plain-text error pages.

Pure: bytes in, a decision and bytes out; no asyncio, no sockets. The websocket
connection of a worker (worker/websocket.py) feeds ``read_request`` what arrived until a
request is whole, then asks ``check_upgrade`` what to do with it.

Two kinds of refusal exist, as in Go: a request the HTTP server cannot read at all gets
a short page and the connection closes (``Refusal.close``); a readable request the
handler refuses gets the full error page (``Sec-Websocket-Version``, ``Date``,
``Content-Length``) and the connection stays open for another request, unless the
request was HTTP/1.0 or asked to close. The reason is for the log, never for the client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from email.utils import formatdate
from typing import NamedTuple

# Go's http.Server.MaxHeaderBytes default, plus the slack its reader allows.
MAX_HEADER_BYTES = (1 << 20) + 4096
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HEADERS_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d{1,3})\.(\d{1,3})")
# Bytes a Host header may hold (Go's httpguts.ValidHostHeader).
_HOST = re.compile(r"[0-9A-Za-z!$%&'()*+,\-.:;=\[\]_~]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

LEAFNODE_PATH = "/leafnode"
MQTT_PATH = "/mqtt"
PERMESSAGE_DEFLATE = "permessage-deflate"
NO_MASKING_HEADER = "nats-no-masking"

_STATUS_TEXT = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}


class Request(NamedTuple):
    """An HTTP request as read: header names lower-case, each with its values in order."""

    method: str
    path: str
    minor: int  # HTTP/1.<minor>
    headers: dict[str, list[str]]

    def header(self, name: str) -> str:
        """The first value of a header ("" when absent), as Go's Header.Get."""
        values = self.headers.get(name)
        return values[0] if values else ""

    @property
    def keep_alive(self) -> bool:
        """After an error page the connection stays open for another request."""
        return self.minor >= 1 and not _has_token(self.headers, "connection", "close")


class Refusal(NamedTuple):
    """An error answer: the bytes to send, whether the connection closes after them,
    and the reason to log."""

    answer: bytes
    close: bool
    reason: str


class Upgrade(NamedTuple):
    """An accepted upgrade: the 101 answer, and what it agreed on."""

    answer: bytes
    compression: bool
    no_masking: bool
    # The User-Agent is a browser's (starts with Mozilla/): outgoing data is cut into
    # messages of at most 4096 bytes; `safari`: compressed ones are not cut.
    browser: bool
    safari: bool
    leafnode: bool  # the path names a leaf node connection (refused after the 101)
    cookies: dict[str, str]


class OriginPolicy(NamedTuple):
    """What the origin check compares (websocket `same_origin`, `allowed_origins`):
    allowed origins as host -> (scheme, port) pairs."""

    same_origin: bool
    allowed: dict[str, tuple[tuple[str, str], ...]]
    tls: bool  # the listener has TLS: a same origin is https


def request_end(buffer: bytes | bytearray, start: int = 0) -> int:
    """Where the request's headers end in `buffer` (past the blank line), -1 when they
    have not all arrived; the search starts at `start` (where an earlier one gave up,
    less the three bytes a blank line could have begun with)."""
    match = _HEADERS_END.search(buffer, max(0, start - 3))
    return -1 if match is None else match.end()


def server_error(code: int, detail: str = "") -> Refusal:
    """What Go's HTTP server answers a request it cannot read, then closes."""
    text = f"{code} {_STATUS_TEXT[code]}" + (f": {detail}" if detail else "")
    answer = (
        f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Connection: close\r\n\r\n{text}"
    )
    return Refusal(answer.encode(), True, detail or text)


def handler_error(request: Request, code: int, reason: str, now: float | None = None) -> Refusal:
    """Go's http.Error page, as nats-server's upgrade handler sends it."""
    text = _STATUS_TEXT[code]
    proto = "HTTP/1.1" if request.minor >= 1 else "HTTP/1.0"
    keep = request.keep_alive
    # An HTTP/1.1 request that asked to close is told so; HTTP/1.0 closes anyway.
    closing = "" if keep or request.minor < 1 else "Connection: close\r\n"
    answer = (
        f"{proto} {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n"
        f"Date: {formatdate(now, usegmt=True)}\r\nContent-Length: {len(text) + 1}\r\n"
        f"{closing}\r\n{text}\n"
    )
    return Refusal(answer.encode(), not keep, reason)


def read_request(head: bytes) -> Request | Refusal:
    """Parse a request's line and headers (`head` ends with the blank line) as Go's
    net/http does, or what it answers when it cannot."""
    if len(head) > MAX_HEADER_BYTES:
        return server_error(431)
    lines = head.decode("latin-1").split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    method, sep1, rest = lines[0].partition(" ")
    uri, sep2, proto = rest.partition(" ")
    version = _VERSION.fullmatch(proto)
    if not (sep1 and sep2) or version is None or _TOKEN.fullmatch(method) is None:
        return server_error(400)
    if int(version.group(1)) != 1:
        return server_error(505, "unsupported protocol version")
    minor = int(version.group(2))
    if uri == "*":
        # Go's ServeMux answers a "*" request itself.
        answer = (
            f"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
            f"Date: {formatdate(None, usegmt=True)}\r\nContent-Length: 0\r\n\r\n"
        )
        return Refusal(answer.encode(), True, "request URI *")
    path = _request_path(uri)
    if path is None:
        return server_error(400)
    headers: dict[str, list[str]] = {}
    last = ""
    for line in lines[1:]:
        if not line:
            break
        if line[0] in " \t" and last:
            headers[last][-1] += " " + line.strip(" \t")  # an obsolete folded line
            continue
        name, colon, value = line.partition(":")
        if not colon or not name:
            return server_error(400)
        if _TOKEN.fullmatch(name) is None:
            return server_error(400, "invalid header name")
        value = value.strip(" \t")
        if _CONTROL.search(value):
            return server_error(400)
        last = name.lower()
        headers.setdefault(last, []).append(value)
    hosts = headers.get("host", [])
    if len(hosts) > 1:
        return server_error(400)
    if minor >= 1 and not hosts:
        return server_error(400, "missing required Host header")
    if hosts and _HOST.fullmatch(hosts[0]) is None:
        return server_error(400, "malformed Host header")
    return Request(method, path, minor, headers)


def _request_path(uri: str) -> str | None:
    """The escaped path of a request URI (origin-form or absolute-form), None when Go's
    url.ParseRequestURI refuses it."""
    if uri.startswith("/"):
        return uri.split("?", 1)[0]
    scheme, sep, rest = uri.partition("://")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        slash = rest.find("/")
        return "" if slash < 0 else rest[slash:].split("?", 1)[0]
    return None


def body_length(request: Request) -> int:
    """Bytes of body that follow the request (Content-Length), skipped before the next
    request on the same connection."""
    value = request.header("content-length")
    return int(value) if value.isdigit() else 0


def _has_token(headers: dict[str, list[str]], name: str, token: str) -> bool:
    """A header holds `token` among its comma-separated values (any case)."""
    return any(
        part.strip(" \t").lower() == token
        for value in headers.get(name, ())
        for part in value.split(",")
    )


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def check_upgrade(
    request: Request,
    origins: OriginPolicy,
    compression: bool,
    extra_headers: str,
    cookie_names: frozenset[str],
    mqtt: bool = False,
    now: float | None = None,
) -> Upgrade | Refusal:
    """nats-server's wsUpgrade checks, in its order, and its answer. `extra_headers`
    are the configured response header lines (each ending in CRLF)."""
    leafnode = request.path.endswith(LEAFNODE_PATH)
    if request.path.endswith(MQTT_PATH) and not mqtt:
        return handler_error(request, 404, "mqtt websocket endpoint not enabled", now)
    if request.method != "GET":
        return handler_error(request, 405, "request method must be GET", now)
    headers = request.headers
    if not request.header("host"):
        return handler_error(request, 400, "'Host' missing in request", now)
    if not _has_token(headers, "upgrade", "websocket"):
        return handler_error(request, 400, "invalid value for header 'Upgrade'", now)
    if not _has_token(headers, "connection", "upgrade"):
        return handler_error(request, 400, "invalid value for header 'Connection'", now)
    key = request.header("sec-websocket-key")
    if not key:
        return handler_error(request, 400, "key missing", now)
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 16:
        return handler_error(request, 400, "invalid websocket key", now)
    if not _has_token(headers, "sec-websocket-version", "13"):
        return handler_error(request, 400, "invalid version", now)
    why = origin_refusal(request, origins)
    if why:
        return handler_error(request, 403, f"origin not allowed: {why}", now)
    compress = compression and any(
        param.strip(" \t").lower() == PERMESSAGE_DEFLATE
        for value in headers.get("sec-websocket-extensions", ())
        for extension in value.split(",")
        for param in extension.split(";")
    )
    no_masking = request.header(NO_MASKING_HEADER) == "true"
    answer = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
    )
    if compress:
        answer += (
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover\r\n"
        )
    if no_masking:
        answer += "Nats-No-Masking: true\r\n"
    answer += extra_headers + "\r\n"
    agent = request.header("user-agent")
    browser = not leafnode and agent.startswith("Mozilla/")
    return Upgrade(
        answer=answer.encode("latin-1"),
        compression=compress,
        no_masking=no_masking,
        browser=browser,
        safari=browser and compress and "Version/" in agent and "Safari/" in agent,
        leafnode=leafnode,
        cookies={} if leafnode else cookies_of(request, cookie_names),
    )


def cookies_of(request: Request, names: frozenset[str]) -> dict[str, str]:
    """The values of the named cookies of the request's Cookie headers (the last one of
    a name wins, as nats-server reads them in order)."""
    found: dict[str, str] = {}
    if not names:
        return found
    for value in request.headers.get("cookie", ()):
        for pair in value.split(";"):
            name, sep, cookie = pair.strip(" \t").partition("=")
            if not sep or name not in names:
                continue
            if len(cookie) > 1 and cookie[0] == cookie[-1] == '"':
                cookie = cookie[1:-1]
            found[name] = cookie
    return found


def origin_refusal(request: Request, policy: OriginPolicy) -> str:
    """Why the request's origin is not allowed ("" when it is). No check is configured,
    or the request names no origin (a client that is not a browser): allowed."""
    if not policy.same_origin and not policy.allowed:
        return ""
    origin = request.header("origin") or request.header("sec-websocket-origin")
    if not origin:
        return ""
    try:
        scheme, host, port = parse_origin_url(origin)
    except ValueError as exc:
        return str(exc)
    if policy.same_origin:
        try:
            own_host, own_port = split_host_port(request.header("host"), policy.tls)
        except ValueError as exc:
            return str(exc)
        if (host, port) != (own_host, own_port) or scheme != ("https" if policy.tls else "http"):
            return "not same origin"
    if policy.allowed and (scheme, port) not in policy.allowed.get(host, ()):
        return "not in the allowed list"
    return ""


def parse_origin_url(text: str) -> tuple[str, str, str]:
    """(scheme, host, port) of an origin URL, lower-cased, the port defaulting to the
    scheme's; ValueError as Go's url.ParseRequestURI words it."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", text)
    scheme, rest = (match.group(1).lower(), text[match.end() :]) if match else ("", text)
    if not text:
        raise ValueError('parse "": empty url')
    if not rest.startswith("/"):
        raise ValueError(f'parse "{text}": invalid URI for request')
    authority = rest[2:].split("/", 1)[0] if rest.startswith("//") else ""
    host, port = split_host_port(authority.rpartition("@")[2], scheme == "https")
    return scheme, host, port


def split_host_port(hostport: str, tls: bool) -> tuple[str, str]:
    """Go's net.SplitHostPort, with the scheme's default port when none is given."""
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"address {hostport}: missing ']' in address")
        host, port = hostport[1:end], hostport[end + 2 :]
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    elif hostport.count(":") > 1:
        raise ValueError(f"address {hostport}: too many colons in address")
    return host.lower(), port or ("443" if tls else "80")


def origin_policy(same_origin: bool, allowed_origins: tuple[str, ...], tls: bool) -> OriginPolicy:
    """The origin check of a websocket block (its origins were validated at start)."""
    allowed: dict[str, list[tuple[str, str]]] = {}
    for entry in allowed_origins:
        try:
            scheme, host, port = parse_origin_url(entry)
        except ValueError:
            continue
        allowed.setdefault(host, []).append((scheme, port))
    return OriginPolicy(same_origin, {h: tuple(v) for h, v in allowed.items()}, tls)


def header_lines(headers: tuple[tuple[str, str], ...]) -> str:
    """The configured response headers as lines of the 101 answer."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers)
