"""The websocket port of a worker (worker/websocket.py), driven through data_received on a
recording transport, on a pair of worker shards: the upgrade, the INFO frame, NATS
traffic in and out of frames (to and from clients of the client port on the other
shard), close frames with nats-server's statuses, cookies, the websocket authorization
override, compression and the browser framing."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from shardbroker.config.options import Authorization, Options, User, WebsocketConfig
from shardbroker.const import ClosedState
from shardbroker.protocol import wsframes as wf
from shardbroker.worker.websocket import WebSocketClient, WebSocketConnection, WebSocketListener
from tests.helpers.fakes import MockTransport, connect, output, shard_pair
from tests.unit.protocol.test_wsframes import client_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
)
ACCEPTED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
)


class RawTransport(MockTransport):
    """The socket's transport as the websocket connection uses it."""

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default


def server_frames(data: bytes) -> list[tuple[int, bool, bool, bytes]]:
    """(opcode, fin, rsv1, payload) of each unmasked frame the server wrote."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "a server never masks"
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            length = struct.unpack_from(">H", data, pos)[0]
            pos += 2
        elif length == 127:
            length = struct.unpack_from(">Q", data, pos)[0]
            pos += 8
        out.append((b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), data[pos : pos + length]))
        pos += length
    return out


class WSConn:
    """A websocket connection on a shard, with what the server wrote since last asked."""

    def __init__(self, server: Any, config: WebsocketConfig, request: str | None = "") -> None:
        # The port the supervisor would have handed the worker.
        server.boot = msgspec.structs.replace(server.boot, websocket_port=8080)
        server._ws_info = server.make_ws_info()
        self.conn = WebSocketListener(server, config)()
        self.raw = RawTransport()
        self.conn.connection_made(self.raw)  # type: ignore[arg-type]
        self.head = b""
        if request is not None:
            self.conn.data_received((UPGRADE + request + "\r\n").encode())
            data = self.take()
            end = data.index(b"\r\n\r\n") + 4
            self.head = data[:end]
            self.info = data[end:]

    @property
    def client(self) -> WebSocketClient:
        client = self.conn.client
        assert client is not None
        return client

    def take(self) -> bytes:
        data = bytes(self.raw.data)
        self.raw.data.clear()
        return data

    def frames(self) -> list[tuple[int, bool, bool, bytes]]:
        return server_frames(self.take())

    def send(self, payload: bytes, **kwargs: Any) -> None:
        self.conn.data_received(client_frame(payload, **kwargs))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def pair_with(loop: asyncio.AbstractEventLoop, **opts: Any) -> Any:
    return shard_pair(loop, Options(port=0, ping_interval=3600, **opts))


PLAIN = WebsocketConfig(port=8080, no_tls=True, host="127.0.0.1")


def test_websocket_upgrade_info_frame_and_traffic_across_shards(
    loop: asyncio.AbstractEventLoop,
) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN)
        assert ws.head == ACCEPTED + b"\r\n"
        # The INFO alone in the first frame, with the websocket listener's address.
        ((opcode, fin, rsv1, payload),) = server_frames(ws.info)
        assert (opcode, fin, rsv1) == (wf.BINARY, True, False)
        assert payload.startswith(b"INFO ") and payload.endswith(b" \r\n")
        info = json.loads(payload[5:])
        assert info["port"] == 8080 and info["host"] == "127.0.0.1"
        assert "tls_required" not in info
        # CONNECT and PING as two messages: the PONG and the connect-info INFO in one frame.
        ws.send(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":true}\r\n')
        ws.send(b"PING\r\n")
        ((opcode, _, _, payload),) = ws.frames()
        assert payload.startswith(b"PONG\r\nINFO {") and b'"connect_info":true' in payload
        # A subscription cut over frames, a publisher on the client port of the other shard.
        ws.send(b"SUB fo", opcode=wf.TEXT)
        ws.send(b"o 1\r\nPI", fin=False)
        ws.send(b"NG\r\n", opcode=wf.CONTINUATION)
        pair.settle()
        assert [f[3] for f in ws.frames()] == [b"PONG\r\n"]
        publisher = connect(pair.two, headers=True)
        publisher.data_received(b"PUB foo 2\r\nhi\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nyo\r\n")
        pair.settle()
        assert b"".join(f[3] for f in ws.frames()) == (
            b"MSG foo 1 2\r\nhi\r\nHMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nyo\r\n"
        )
        # And the other way: the websocket client publishes to a client-port subscriber.
        publisher.data_received(b"SUB bar 7\r\nPING\r\n")
        pair.settle()
        output(publisher)
        ws.send(b"PUB bar 3\r\nabc\r\nPUB bar 1\r\nd\r\n")
        pair.settle()
        assert output(publisher) == b"MSG bar 7 3\r\nabc\r\nMSG bar 7 1\r\nd\r\n"
        assert ws.client.in_msgs == 2 and ws.client.out_msgs == 2


def test_websocket_ping_pong_and_close_frames(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN)
        ws.send(b"hi", opcode=wf.PING)
        assert ws.frames() == [(wf.PONG, True, False, b"hi")]
        ws.send(b"", opcode=wf.PONG)
        assert ws.frames() == []
        ws.send(struct.pack(">H", 1000) + b"bye", opcode=wf.CLOSE)
        assert ws.take() == b"\x88\x05\x03\xe8bye"
        assert ws.raw.closed and ws.client.closed
        # An empty close is answered with an empty one.
        ws = WSConn(pair.one, PLAIN)
        ws.send(b"", opcode=wf.CLOSE)
        assert ws.take() == b"\x88\x00"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (client_frame(b"PING\r\n", key=None), b"mask bit missing"),
        (client_frame(b"x", opcode=wf.CLOSE), b"close frame payload cannot be 1 byte"),
        (client_frame(struct.pack(">H", 1006), opcode=wf.CLOSE), b"invalid close status code 1006"),
        (
            client_frame(b"x", rsv=0x40),
            b"compressed frame received without negotiated permessage-deflate",
        ),
    ],
)
def test_websocket_protocol_errors_close_with_1002(
    loop: asyncio.AbstractEventLoop, frame: bytes, reason: bytes
) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN)
        ws.conn.data_received(client_frame(b"PING\r\n") + frame)
        assert ws.frames() == [
            (wf.BINARY, True, False, b"PONG\r\n"),
            (wf.CLOSE, True, False, b"\x03\xea" + reason),
        ]
        assert ws.raw.closed
        assert pair.one.closed_conns[-1].reason == str(ClosedState.ReadError)


def test_websocket_nats_errors_then_their_close_frames(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN, max_payload=1000, max_pending=1 << 20) as pair:
        ws = WSConn(pair.one, PLAIN)
        ws.send(b"PUB x 99999\r\n")
        assert ws.frames() == [
            (wf.BINARY, True, False, b"-ERR 'Maximum Payload Violation'\r\n"),
            (wf.CLOSE, True, False, b"\x03\xf1Maximum Message Payload Exceeded"),
        ]
        # A parse failure: what was pending and the -ERR, then no close frame (nats-server
        # ends its read loop with a read error).
        ws = WSConn(pair.one, PLAIN)
        ws.send(b"PING\r\nFOO\r\n")
        data = ws.frames()
        assert b"".join(f[3] for f in data) == b"PONG\r\n-ERR 'Unknown Protocol Operation'\r\n"
        assert all(f[0] == wf.BINARY for f in data)
        assert ws.raw.closed
        # A client's -ERR is a parse error with a 1002 close frame.
        ws = WSConn(pair.one, PLAIN)
        ws.send(b"-ERR 'x'\r\n")
        assert ws.frames() == [(wf.CLOSE, True, False, b"\x03\xeaParse Error")]
        # Lame duck / shutdown: 1001.
        ws = WSConn(pair.one, PLAIN)
        ws.client.close_connection(ClosedState.ServerShutdown)
        assert ws.frames() == [(wf.CLOSE, True, False, b"\x03\xe9Server Shutdown")]


def test_websocket_auth_failure_and_override(loop: asyncio.AbstractEventLoop) -> None:
    auth = Authorization(users=(User(user="alice", password="pw"),))
    config = WebsocketConfig(port=8080, no_tls=True, no_auth_user="alice")
    with pair_with(loop, websocket=config, authorization=auth) as pair:
        # The block's no_auth_user lets a CONNECT without credentials in on this port...
        ws = WSConn(pair.one, config)
        assert json.loads(server_frames(ws.info)[0][3][5:])["auth_required"] is True
        ws.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
        assert ws.frames()[0][3].startswith(b"PONG\r\n")
        assert ws.client.user == "alice"
        # ... and bad credentials get -ERR, then a 1008 close frame.
        ws = WSConn(pair.one, config)
        ws.send(b'CONNECT {"verbose":false,"user":"alice","pass":"no"}\r\nPING\r\n')
        assert ws.frames() == [
            (wf.BINARY, True, False, b"-ERR 'Authorization Violation'\r\n"),
            (wf.CLOSE, True, False, b"\x03\xf0Authentication Failure"),
        ]
        # The client port keeps the server's rules: no credentials, no entry.
        tcp = connect(pair.two)
        assert tcp.closed


def test_websocket_cookies_fill_empty_connect_fields(loop: asyncio.AbstractEventLoop) -> None:
    auth = Authorization(user="a", password="b")
    config = WebsocketConfig(port=8080, no_tls=True, user_cookie="nuser", pass_cookie="npass")
    with pair_with(loop, websocket=config, authorization=auth) as pair:
        ws = WSConn(pair.one, config, "Cookie: nuser=a; npass=b\r\n")
        ws.send(b'CONNECT {"verbose":false,"protocol":1}\r\nPING\r\n')
        assert ws.frames()[0][3].startswith(b"PONG\r\n")
        # A CONNECT's own fields win over the cookies.
        ws = WSConn(pair.one, config, "Cookie: nuser=a; npass=b\r\n")
        ws.send(b'CONNECT {"verbose":false,"pass":"wrong"}\r\nPING\r\n')
        assert ws.frames()[0][3] == b"-ERR 'Authorization Violation'\r\n"


def test_websocket_compression_both_ways(loop: asyncio.AbstractEventLoop) -> None:
    config = WebsocketConfig(port=8080, no_tls=True, compression=True)
    with pair_with(loop, websocket=config) as pair:
        ws = WSConn(pair.one, config, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert b"permessage-deflate; server_no_context_takeover" in ws.head
        ((_, _, rsv1, packed),) = server_frames(ws.info)
        assert rsv1  # the INFO is over 64 bytes: compressed
        assert wf.inflate([packed], 4096).startswith(b"INFO {")
        ws.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
        assert ws.frames() == [(wf.BINARY, True, False, b"PONG\r\n")]  # small: plain
        body = b"SUB big 1\r\nPUB big 500\r\n" + b"q" * 500 + b"\r\n"
        packed = wf.deflate(body)
        ws.send(packed[:7], rsv=0x40, fin=False)
        ws.send(packed[7:], opcode=wf.CONTINUATION)
        pair.settle()
        ((opcode, fin, rsv1, payload),) = ws.frames()
        assert (opcode, fin, rsv1) == (wf.BINARY, True, True)
        assert wf.inflate([payload], 4096) == b"MSG big 1 500\r\n" + b"q" * 500 + b"\r\n"


def test_websocket_compressed_message_over_max_payload_closes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    config = WebsocketConfig(port=8080, no_tls=True, compression=True)
    with pair_with(loop, websocket=config, max_payload=1000, max_pending=1 << 20) as pair:
        ws = WSConn(pair.one, config, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
        ws.send(wf.deflate(b"PING\r\n" * 200), rsv=0x40)  # 1200 bytes inflated
        assert ws.client.closed
        assert ws.frames() == []  # a read error: no close frame


def test_websocket_browser_messages_of_at_most_4096_bytes(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, "User-Agent: Mozilla/5.0 (X11) Firefox/120.0\r\n")
        ws.send(b'CONNECT {"verbose":false}\r\nSUB x 1\r\nPUB x 10000\r\n' + b"m" * 10000 + b"\r\n")
        pair.settle()
        frames = ws.frames()
        assert all(f[0] == wf.BINARY and f[1] and len(f[3]) <= 4096 for f in frames)
        assert len(frames) == 3
        assert b"".join(f[3] for f in frames) == b"MSG x 1 10000\r\n" + b"m" * 10000 + b"\r\n"


def test_websocket_no_masking_when_asked(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, "Nats-No-Masking: true\r\n")
        assert ws.head.endswith(b"Nats-No-Masking: true\r\n\r\n")
        ws.send(b'CONNECT {"verbose":false}\r\nPING\r\n', key=None)
        assert ws.frames()[0][3] == b"PONG\r\n"


def test_websocket_refused_request_then_a_good_one(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, request=None)
        ws.conn.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab")
        assert ws.take().startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
        assert not ws.raw.closed
        ws.conn.data_received(b"c" + (UPGRADE + "\r\n").encode())
        assert ws.take().startswith(ACCEPTED)
        assert ws.conn.client is not None


def test_websocket_data_sent_before_the_101_closes_silently(
    loop: asyncio.AbstractEventLoop,
) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, request=None)
        ws.conn.data_received((UPGRADE + "\r\n").encode() + client_frame(b"PING\r\n"))
        assert ws.take() == b""
        assert ws.raw.closed and ws.conn.client is None


def test_websocket_connz_type_and_events(loop: asyncio.AbstractEventLoop) -> None:
    from shardbroker.worker.snapshot import conn_snapshot

    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN)
        assert conn_snapshot(ws.client, False).type == "websocket"
        assert conn_snapshot(connect(pair.two), False).type == "nats"
        assert isinstance(ws.conn, WebSocketConnection)


def test_websocket_request_a_byte_at_a_time(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, request=None)
        request = (UPGRADE + "X-Padding: " + "p" * 3000 + "\r\n\r\n").encode()
        for i in range(len(request)):
            ws.conn.data_received(request[i : i + 1])
        assert ws.take().startswith(ACCEPTED)
        assert ws.conn.client is not None


def test_websocket_headers_over_the_limit_get_431(loop: asyncio.AbstractEventLoop) -> None:
    with pair_with(loop, websocket=PLAIN) as pair:
        ws = WSConn(pair.one, PLAIN, request=None)
        chunk = b"X-Big: " + b"b" * 65536 + b"\r\n"
        ws.conn.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n")
        while not ws.raw.closed:
            ws.conn.data_received(chunk)
        assert ws.take().startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
