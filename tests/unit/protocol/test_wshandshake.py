"""The HTTP upgrade of the websocket port (protocol/wshandshake.py): requests as Go's HTTP
server reads them, nats-server's checks in their order and its answers, byte for byte
(the answers were captured from nats-server 2.15; only Date varies)."""

from __future__ import annotations

import pytest

from shardbroker.protocol import wshandshake as hs

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's own example
GOOD = [
    "GET / HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
]
NO_ORIGIN_CHECK = hs.origin_policy(False, (), False)
NOW = 1765156178.0  # Mon, 08 Dec 2025 01:09:38 GMT
DATE = "Mon, 08 Dec 2025 01:09:38 GMT"


def head(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade(
    lines: list[str],
    origins: hs.OriginPolicy = NO_ORIGIN_CHECK,
    compression: bool = False,
    extra: str = "",
    cookies: frozenset[str] = frozenset(),
) -> hs.Upgrade | hs.Refusal:
    request = hs.read_request(head(lines))
    assert isinstance(request, hs.Request), request
    return hs.check_upgrade(request, origins, compression, extra, cookies, now=NOW)


def page(code: int, text: str, proto: str = "HTTP/1.1", closing: str = "") -> bytes:
    """Go's http.Error page as nats-server's handler sends it."""
    return (
        f"{proto} {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n"
        f"Date: {DATE}\r\nContent-Length: {len(text) + 1}\r\n{closing}\r\n{text}\n"
    ).encode()


def test_wshandshake_accepts_with_exactly_nats_servers_101() -> None:
    result = upgrade(GOOD)
    assert isinstance(result, hs.Upgrade)
    assert (
        result.answer
        == (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        ).encode()
    )
    assert not (result.compression or result.no_masking or result.browser or result.leafnode)
    assert hs.accept_key(KEY) == ACCEPT


@pytest.mark.parametrize(
    ("lines", "code", "text"),
    [
        (["POST / HTTP/1.1", *GOOD[1:]], 405, "Method Not Allowed"),
        (["get / HTTP/1.1", *GOOD[1:]], 405, "Method Not Allowed"),  # methods are exact
        ([*GOOD[:2], *GOOD[3:]], 400, "Bad Request"),  # no Upgrade
        ([*GOOD[:2], "Upgrade: h2c", *GOOD[3:]], 400, "Bad Request"),
        ([*GOOD[:3], *GOOD[4:]], 400, "Bad Request"),  # no Connection
        ([*GOOD[:4], *GOOD[5:]], 400, "Bad Request"),  # no key
        ([*GOOD[:4], "Sec-WebSocket-Key: abcd", GOOD[5]], 400, "Bad Request"),
        ([*GOOD[:4], "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", GOOD[5]], 400, "Bad Request"),
        ([*GOOD[:5], "Sec-WebSocket-Version: 12"], 400, "Bad Request"),
        ([*GOOD[:5]], 400, "Bad Request"),  # no version
        (["GET /mqtt HTTP/1.1", *GOOD[1:]], 404, "Not Found"),
        (["GET / HTTP/1.1", "Host:", *GOOD[2:]], 400, "Bad Request"),  # empty Host
    ],
)
def test_wshandshake_handler_refusals(lines: list[str], code: int, text: str) -> None:
    result = upgrade(lines)
    assert isinstance(result, hs.Refusal)
    assert result.answer == page(code, text)
    assert not result.close  # Go's server waits for another request


def test_wshandshake_http10_refusal_says_so_and_closes() -> None:
    result = upgrade(["POST / HTTP/1.0", *GOOD[1:]])
    assert isinstance(result, hs.Refusal)
    assert result.answer == page(405, "Method Not Allowed", proto="HTTP/1.0")
    assert result.close


def test_wshandshake_connection_close_is_honoured() -> None:
    result = upgrade(["POST / HTTP/1.1", *GOOD[1:3], "Connection: close", *GOOD[4:]])
    assert isinstance(result, hs.Refusal)
    assert result.answer == page(405, "Method Not Allowed", closing="Connection: close\r\n")
    assert result.close


def test_wshandshake_http10_without_host_gets_the_handlers_400() -> None:
    result = upgrade(["GET / HTTP/1.0", *GOOD[2:]])
    assert isinstance(result, hs.Refusal)
    assert result.answer == page(400, "Bad Request", proto="HTTP/1.0")


def server_page(text: str) -> bytes:
    return (
        f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Connection: close\r\n\r\n{text}"
    ).encode()


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"HELLO\r\n\r\n", server_page("400 Bad Request")),
        (b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", server_page("400 Bad Request")),
        (b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", server_page("400 Bad Request")),
        (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", server_page("400 Bad Request")),
        (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", server_page("400 Bad Request")),
        (
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            server_page("505 HTTP Version Not Supported: unsupported protocol version"),
        ),
        (b"GET / HTTP/1.1\r\n\r\n", server_page("400 Bad Request: missing required Host header")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", server_page("400 Bad Request")),
        (
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            server_page("400 Bad Request: malformed Host header"),
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBADLINE\r\n\r\n", server_page("400 Bad Request")),
        (b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", server_page("400 Bad Request")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", server_page("400 Bad Request")),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n",
            server_page("400 Bad Request: invalid header name"),
        ),
        # A folded line continues the header before it: here the Host, which then fails.
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n X: cont\r\n\r\n",
            server_page("400 Bad Request: malformed Host header"),
        ),
        (
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n",
            server_page("431 Request Header Fields Too Large"),
        ),
    ],
)
def test_wshandshake_requests_go_cannot_read(data: bytes, answer: bytes) -> None:
    result = hs.read_request(data)
    assert isinstance(result, hs.Refusal)
    assert result.answer == answer
    assert result.close


def test_wshandshake_star_request_gets_the_muxs_answer() -> None:
    result = hs.read_request(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(result, hs.Refusal)
    assert result.answer.startswith(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nDate: ")
    assert result.answer.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_wshandshake_lenient_forms_are_accepted() -> None:
    # Bare LF line ends, HTTP/1.0, tokens in lists and in any case, an absolute URI.
    lf = "\n".join(GOOD).encode() + b"\n\n"
    assert hs.request_end(lf) == len(lf)
    request = hs.read_request(lf)
    assert isinstance(request, hs.Request)
    tokens = [
        "GET http://x.example/nats HTTP/1.1",
        "Host: a",
        "Upgrade: foo, WebSocket",
        "Connection: keep-alive, upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 8, 13",
    ]
    assert isinstance(upgrade(tokens), hs.Upgrade)
    assert isinstance(upgrade(["GET /any/path HTTP/1.0", *GOOD[1:]]), hs.Upgrade)


def test_wshandshake_request_end_waits_for_the_blank_line() -> None:
    data = head(GOOD)
    assert hs.request_end(data[:-1]) == -1
    assert hs.request_end(data) == len(data)
    assert hs.request_end(data + b"\x82\x00") == len(data)


def test_wshandshake_leafnode_path() -> None:
    result = upgrade(["GET /leafnode HTTP/1.1", *GOOD[1:]])
    assert isinstance(result, hs.Upgrade)
    assert result.leafnode


def test_wshandshake_compression_offered_only_when_configured() -> None:
    ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    line = (
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover\r\n"
    )
    on = upgrade([*GOOD, ext], compression=True)
    assert isinstance(on, hs.Upgrade)
    assert on.compression
    assert line in on.answer
    off = upgrade([*GOOD, ext], compression=False)
    assert isinstance(off, hs.Upgrade)
    assert not off.compression
    assert b"Extensions" not in off.answer
    other = upgrade([*GOOD, "Sec-WebSocket-Extensions: x-webkit-deflate-frame"], compression=True)
    assert isinstance(other, hs.Upgrade)
    assert not other.compression


def test_wshandshake_no_masking_and_extra_headers_in_order() -> None:
    extra = hs.header_lines((("X-A", "1"), ("Strict-Transport-Security", "max-age=3")))
    result = upgrade([*GOOD, "Nats-No-Masking: true"], extra=extra)
    assert isinstance(result, hs.Upgrade)
    assert result.no_masking
    assert result.answer.endswith(
        b"\r\nNats-No-Masking: true\r\nX-A: 1\r\nStrict-Transport-Security: max-age=3\r\n\r\n"
    )


def test_wshandshake_browsers() -> None:
    chrome = "User-Agent: Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    safari = "User-Agent: Mozilla/5.0 (Macintosh) Version/17.0 Safari/605.1.15"
    ext = "Sec-WebSocket-Extensions: permessage-deflate"
    result = upgrade([*GOOD, chrome, ext], compression=True)
    assert isinstance(result, hs.Upgrade)
    assert result.browser and not result.safari
    result = upgrade([*GOOD, safari, ext], compression=True)
    assert isinstance(result, hs.Upgrade)
    assert result.browser and result.safari
    result = upgrade([*GOOD, "User-Agent: Python/3.11 aiohttp/3.9"])
    assert isinstance(result, hs.Upgrade)
    assert not result.browser


def test_wshandshake_cookies() -> None:
    names = frozenset(("nuser", "npass", "jwt"))
    result = upgrade(
        [*GOOD, 'Cookie: other=1; nuser=a; npass="b"', "Cookie: jwt=xyz; nuser=c"], cookies=names
    )
    assert isinstance(result, hs.Upgrade)
    assert result.cookies == {"nuser": "c", "npass": "b", "jwt": "xyz"}


@pytest.mark.parametrize(
    ("policy", "origin", "allowed"),
    [
        (hs.origin_policy(False, ("http://good.example:8080",), False), "", True),
        (
            hs.origin_policy(False, ("http://good.example:8080",), False),
            "http://good.example:8080",
            True,
        ),
        (
            hs.origin_policy(False, ("http://good.example:8080",), False),
            "http://GOOD.example:8080",
            True,
        ),
        (
            hs.origin_policy(False, ("http://good.example:8080",), False),
            "http://good.example",
            False,
        ),
        (
            hs.origin_policy(False, ("http://good.example:8080",), False),
            "https://good.example:8080",
            False,
        ),
        (
            hs.origin_policy(False, ("http://good.example:8080",), False),
            "http://evil.example",
            False,
        ),
        (
            hs.origin_policy(False, ("https://good.example",), False),
            "https://good.example:443",
            True,
        ),
        (hs.origin_policy(True, (), False), "http://127.0.0.1", True),
        (hs.origin_policy(True, (), False), "http://127.0.0.1:80", True),
        (hs.origin_policy(True, (), False), "https://127.0.0.1", False),
        (hs.origin_policy(True, (), True), "https://127.0.0.1", True),
        (hs.origin_policy(True, (), True), "https://127.0.0.1:80", False),
        (hs.origin_policy(True, (), True), "http://127.0.0.1:443", False),
        (hs.origin_policy(True, (), False), "http://localhost", False),
        (hs.origin_policy(True, (), False), "garbage", False),
    ],
)
def test_wshandshake_origin_checks(policy: hs.OriginPolicy, origin: str, allowed: bool) -> None:
    lines = [*GOOD, f"Origin: {origin}"] if origin else GOOD
    result = upgrade(lines, origins=policy)
    if allowed:
        assert isinstance(result, hs.Upgrade)
    else:
        assert isinstance(result, hs.Refusal)
        assert result.answer == page(403, "Forbidden")


def test_wshandshake_sec_websocket_origin_is_read_too() -> None:
    policy = hs.origin_policy(False, ("http://good.example",), False)
    result = upgrade([*GOOD, "Sec-WebSocket-Origin: http://evil.example"], origins=policy)
    assert isinstance(result, hs.Refusal)


def test_wshandshake_body_length() -> None:
    request = hs.read_request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    assert isinstance(request, hs.Request)
    assert hs.body_length(request) == 3
