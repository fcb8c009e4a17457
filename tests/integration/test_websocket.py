"""The websocket listener (reference websocket.md): nats-py over ws:// and wss://, raw
upgrade requests and frames, against shardbroker (2 workers, connections placed on
both) and against nats-server with the same config file; and what launchers of client
test suites need (the websocket ports file entry and log line, server_tags,
`serve --version`).

A websocket connection lands on a worker by SO_REUSEPORT like one to the client port;
the INFO `client_id` names the worker, so connections are placed as on the client port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    collect_refused_sockets,
    connect_on_shard,
    nats_server_binary,
    run_broker,
    unique,
)
from tests.helpers.certs import OPENSSL, Certs, make_certs
from tests.helpers.differential import on_both
from tests.helpers.wait import async_check_for
from tests.helpers.wsclient import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    WSClient,
    deflate,
    frame,
    upgrade_request,
    without_date,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    # nats-py's websocket transport passes aiohttp a float timeout, which aiohttp 3.10+
    # deprecates: a warning about the client library, not about the broker.
    pytest.mark.filterwarnings(
        "ignore:parameter 'timeout' of type 'float' is deprecated:DeprecationWarning"
    ),
]

WS = "websocket { port: -1, no_tls: true, host: 127.0.0.1 }\n"
RESTART_TIMEOUT = 15.0


def ws_port(broker: Broker) -> int:
    return int(broker.websocket_url.rsplit(":", 1)[1])


def raw_on_shard(broker: Broker, shard: int, *headers: str, **kwargs: Any) -> WSClient:
    """An upgraded raw websocket client (INFO read) on worker `shard`."""
    port = ws_port(broker)
    for _ in range(200):
        client = WSClient.upgraded(port, *headers, **kwargs)
        if not broker.is_shardbroker or broker.shard_of(client.info["client_id"]) == shard:
            return client
        client.close()
    raise AssertionError(f"no websocket connection landed on shard {shard}")


async def pubsub_request_headers(broker: Broker, **connect: Any) -> dict[str, Any]:
    """A subscriber and a responder over websocket on worker 1, a publisher over
    websocket on worker 2, a client-port subscriber too: messages with headers both
    ways and a request answered across the workers."""
    url = broker.websocket_url
    async with NatsClients(broker) as clients:
        sub = await clients.on_shard(1, url=url, **connect)
        pub = await clients.on_shard(2, url=url, **connect)
        tcp = await clients.on_shard(2)
        assert_different_shards(broker, sub.client_id, pub.client_id)
        subject = unique("ws")

        async def respond(msg: Any) -> None:
            await sub.publish(msg.reply, b"re:" + msg.data, headers={"Answer": "yes"})

        on_ws = await sub.subscribe(subject)
        on_tcp = await tcp.subscribe(subject)
        await sub.subscribe(subject + ".svc", cb=respond)
        await barrier(sub)
        await barrier(tcp)
        await pub.publish(subject, b"hello", headers={"X-Test": "1"})
        await tcp.publish(subject, b"from tcp")
        got_ws = [await on_ws.next_msg(timeout=5) for _ in range(2)]
        got_tcp = [await on_tcp.next_msg(timeout=5) for _ in range(2)]
        reply = await pub.request(subject + ".svc", b"ping", timeout=5, headers={"Q": "1"})
        big = os.urandom(200_000)
        await pub.publish(subject, big)
        got_big = await on_ws.next_msg(timeout=5)
        return {
            # Two publishers: no order between their messages.
            "ws": sorted((m.data, sorted((m.headers or {}).items())) for m in got_ws),
            "tcp": sorted((m.data, sorted((m.headers or {}).items())) for m in got_tcp),
            "reply": (reply.data, reply.headers),
            "big": got_big.data == big,
            "server_url": str(sub.connected_url.scheme),
        }


async def test_websocket_pubsub_request_and_headers(tmp_path: Path, monkeypatch: Any) -> None:
    result = await on_both(tmp_path, monkeypatch, WS, pubsub_request_headers)
    assert result["reply"] == (b"re:ping", {"Answer": "yes"})
    assert result["ws"] == [(b"from tcp", []), (b"hello", [("X-Test", "1")])]
    assert result["big"]


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
async def test_websocket_wss(tmp_path: Path, monkeypatch: Any) -> None:
    certs: Certs = make_certs(tmp_path / "certs")
    conf = (
        "websocket {\n  port: -1\n  host: 127.0.0.1\n"
        f'  tls {{ cert_file: "{certs.server_cert}", key_file: "{certs.server_key}" }}\n}}\n'
    )
    ctx = ssl.create_default_context(cafile=str(certs.ca))

    async def scenario(broker: Broker) -> dict[str, Any]:
        assert broker.websocket_url.startswith("wss://")
        result = await pubsub_request_headers(broker, tls=ctx)
        # INFO on this port says TLS; a plain upgrade request gets no answer at all.
        with WSClient.upgraded(ws_port(broker), tls=ctx) as raw:
            result["info_tls"] = (raw.info.get("tls_required"), raw.info.get("tls_available"))
        with WSClient.open(ws_port(broker)) as plain:
            plain.send(upgrade_request())
            result["plain"] = plain.read_answer()
        return result

    result = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert result["info_tls"] == (True, True)
    assert result["server_url"] == "wss"
    # Go's HTTP server tells a plain-text request on its TLS port, then closes.
    assert result["plain"] == (
        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    )


async def test_websocket_reconnect_after_a_worker_is_killed(tmp_path: Path) -> None:
    conf = tmp_path / "ws.conf"
    conf.write_text(WS)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        url = broker.websocket_url
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        sub = await connect_on_shard(
            broker, 1, url=url, allow_reconnect=True, reconnect_time_wait=0.1,
            max_reconnect_attempts=-1, reconnected_cb=on_reconnect,
        )  # fmt: skip
        pub = await connect_on_shard(broker, 2, url=url)
        try:
            subject = unique("ws")
            subscription = await sub.subscribe(subject)
            await barrier(sub)
            victim = broker.refresh_workers()[1]
            os.kill(victim.pid, signal.SIGKILL)
            await asyncio.wait_for(reconnected.wait(), RESTART_TIMEOUT)
            await barrier(sub)  # the subscription is back, wherever it landed
            await pub.publish(subject, b"after the restart")
            msg = await subscription.next_msg(timeout=5)
            assert msg.data == b"after the restart"

            def restarted() -> None:
                current = broker.refresh_workers()
                assert 1 in current and current[1].pid != victim.pid

            await async_check_for(RESTART_TIMEOUT, 0.1, restarted)
            # The restarted worker listens on the websocket port again.
            again = await async_check_for(
                RESTART_TIMEOUT, 0.1, lambda: connect_on_shard(broker, 1, url=url, tries=40)
            )
            await again.publish(subject, b"from the new worker")
            assert (await subscription.next_msg(timeout=5)).data == b"from the new worker"
            await again.close()
        finally:
            await sub.close()
            await pub.close()


async def auth_outcomes(broker: Broker, good: dict[str, Any], bad: dict[str, Any]) -> dict:
    """Connect over websocket on both workers with good credentials, then with bad ones."""
    url = broker.websocket_url
    out: dict[str, Any] = {}
    async with NatsClients(broker) as clients:
        for shard in broker.shard_ids:
            nc = await clients.on_shard(shard, url=url, **good)
            await barrier(nc)
        out["good"] = "connected"
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    try:
        nc = await nats.connect(
            url, allow_reconnect=False, connect_timeout=5, error_cb=on_error, **bad
        )
    except (nats.errors.Error, OSError) as exc:
        errors.append(str(exc))
        nc = None
    if nc is None:
        # Outside the except block: its traceback no longer holds the refused client.
        await collect_refused_sockets()
        out["bad"] = "refused" if any("authorization" in e.lower() for e in errors) else errors
    else:
        await nc.close()
        out["bad"] = "connected"
    return out


@pytest.mark.parametrize(
    ("block", "good", "bad"),
    [
        (
            "authorization { user: u, password: p }",
            {"user": "u", "password": "p"},
            {"user": "u", "password": "x"},
        ),
        ("authorization { token: s3cret }", {"token": "s3cret"}, {"token": "nope"}),
        (
            'authorization { users: [{user: a, password: "1"}, {user: b, password: "2"}] }',
            {"user": "b", "password": "2"},
            {"user": "b", "password": "1"},
        ),
    ],
)
async def test_websocket_auth(
    tmp_path: Path, monkeypatch: Any, block: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    async def scenario(broker: Broker) -> dict:
        return await auth_outcomes(broker, good, bad)

    result = await on_both(tmp_path, monkeypatch, block + "\n" + WS, scenario)
    assert result == {"good": "connected", "bad": "refused"}


async def test_websocket_authorization_override_and_cookies(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The websocket block's own token replaces the server's user for websocket clients
    (the client port keeps it); cookies fill what a browser's CONNECT cannot carry."""
    conf = (
        "authorization { user: u, password: p }\n"
        "websocket { port: -1, no_tls: true, host: 127.0.0.1, "
        "authorization { token: wstok }, token_cookie: tok }\n"
    )

    async def scenario(broker: Broker) -> dict[str, Any]:
        out = await auth_outcomes(broker, {"token": "wstok"}, {"user": "u", "password": "p"})
        nc = await nats.connect(broker.url, user="u", password="p", allow_reconnect=False)
        await nc.close()
        out["tcp"] = "connected"
        for shard in broker.shard_ids:
            with raw_on_shard(broker, shard, "Cookie: tok=wstok") as raw:
                assert raw.info["auth_required"] is True
                out[f"cookie{shard}"] = raw.nats_handshake().endswith(b"PONG\r\n")
        with raw_on_shard(broker, 1, "Cookie: tok=bad") as raw:
            raw.send_frame(b'CONNECT {"verbose":false}\r\nPING\r\n')
            frames = raw.read_until_closed()
            out["bad_cookie"] = [(f.opcode, f.payload) for f in frames]
        return out

    result = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert result["bad_cookie"] == [
        (BINARY, b"-ERR 'Authorization Violation'\r\n"),
        (CLOSE, b"\x03\xf0Authentication Failure"),
    ]
    assert result["cookie1"] and result["cookie2"]


async def test_websocket_permissions_and_max_connections(tmp_path: Path, monkeypatch: Any) -> None:
    conf = (
        "max_connections: 2\n"
        "authorization { users: [{user: a, password: a, "
        'permissions: { publish: { deny: "secret.>" } }}] }\n' + WS
    )

    async def scenario(broker: Broker) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # Placed by the kernel, not re-connected until they land: a refused try would
        # still hold its slot while its close is on the way.
        with WSClient.upgraded(ws_port(broker)) as one, WSClient.upgraded(ws_port(broker)) as two:
            out["login"] = one.nats_handshake(user="a", **{"pass": "a"}).endswith(b"PONG\r\n")
            one.send_frame(b"PUB secret.x 1\r\nx\r\nPING\r\n")
            out["denied"] = one.read_data(b"PONG\r\n")
            two.nats_handshake(user="a", **{"pass": "a"})
            with WSClient.upgraded(ws_port(broker)) as third:
                frames = third.read_until_closed()
                out["third"] = [(f.opcode, f.payload) for f in frames]
        return out

    result = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert result["denied"] == (
        b"-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\nPONG\r\n"
    )
    assert result["third"] == [
        (BINARY, b"-ERR 'maximum connections exceeded'\r\n"),
        (CLOSE, b"\x03\xf0Maximum Connections Exceeded"),
    ]


BAD_REQUESTS = {
    "post": upgrade_request("/", method="POST"),
    "no_upgrade": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "bad_key": upgrade_request("/", "Sec-WebSocket-Key: abcd"),
    "bad_version": upgrade_request("/", "Sec-WebSocket-Version: 12"),
    "mqtt": upgrade_request("/mqtt"),
    "no_host_11": b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    "garbage": b"HELLO\r\n\r\n",
    "http2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "bad_header_name": b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n",
    "http10": b"POST / HTTP/1.0\r\nHost: a\r\n\r\n",
}


async def handshake_answers(broker: Broker) -> dict[str, Any]:
    port = ws_port(broker)
    out: dict[str, Any] = {}
    for name, request in BAD_REQUESTS.items():
        with WSClient.open(port) as client:
            client.send(request)
            answer = without_date(client.read_answer())
            # Still open? Go's server reads another request after its handler's refusal.
            if client.closed:
                out[name] = (answer, "closed")
                continue
            client.send(upgrade_request())
            out[name] = (answer, client.read_answer().split(b"\r\n", 1)[0])
    with WSClient.open(port) as client:
        client.send(upgrade_request("/leafnode"))
        out["leafnode"] = (client.read_answer().split(b"\r\n")[0], client.read_until_closed())
    with WSClient.open(port) as client:
        client.send(upgrade_request() + frame(b"PING\r\n"))
        out["pipelined"] = (client.read_answer(), client.closed)
    return out


async def test_websocket_handshake_answers(tmp_path: Path, monkeypatch: Any) -> None:
    result = await on_both(tmp_path, monkeypatch, WS, handshake_answers)
    assert result["post"][0].startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert result["post"][1] == b"HTTP/1.1 101 Switching Protocols"
    assert result["garbage"] == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\n\r\n400 Bad Request",
        "closed",
    )
    assert result["leafnode"] == (b"HTTP/1.1 101 Switching Protocols", [])
    assert result["pipelined"] == (b"", True)


# Frames breaking the websocket protocol, and the reason of the 1002 close frame.
BAD_FRAMES = {
    "unmasked": (frame(b"PING\r\n", mask=None), b"mask bit missing"),
    "big_control": (
        frame(b"x" * 126, PING),
        b"control frame length bigger than maximum allowed of 125 bytes",
    ),
    "opcode3": (frame(b"x", 3), b"unknown opcode 3"),
    "length64": (
        struct.pack(">BBQ", 0x82, 0xFF, 1 << 63) + b"\x01\x02\x03\x04",
        b"invalid 64-bit payload length",
    ),
    "one_byte_close": (frame(b"x", CLOSE), b"close frame payload cannot be 1 byte"),
    "rsv1_not_negotiated": (
        frame(b"x", rsv=0x40),
        b"compressed frame received without negotiated permessage-deflate",
    ),
}


async def framing(broker: Broker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shardbroker = broker.is_shardbroker
    with raw_on_shard(broker, 1) as client:
        client.send_frame(b"hi", PING)
        pong = client.read_frame()
        out["ping"] = (pong.opcode, pong.payload)
        # nats-server's live example: ops cut over a text frame, fragments of a binary
        # message (a ping between them), before any CONNECT (so verbose).
        client.send(
            frame(b"SUB fo", TEXT)
            + frame(b"o 1\r\nPUB foo 2\r\nhi\r\nPI", fin=False)
            + frame(b"", PING)
            + frame(b"NG\r\n", CONTINUATION)
        )
        data = b""
        while not data.endswith(b"PONG\r\n"):
            got = client.read_frame()
            if got.opcode == PONG:
                continue
            data += got.data
        out["split"] = data
        client.send_frame(struct.pack(">H", 1000) + b"bye", CLOSE)
        out["close"] = [(f.opcode, f.payload) for f in client.read_until_closed()]
    with raw_on_shard(broker, 2) as client:
        client.send_frame(b"", CLOSE)
        out["empty_close"] = [(f.opcode, f.payload) for f in client.read_until_closed()]
    for name, (data, reason) in BAD_FRAMES.items():
        with raw_on_shard(broker, 1 if len(out) % 2 else 2) as client:
            client.send(data)
            frames = client.read_until_closed()
            # nats-server's close frame races its closing of the socket (it may not
            # arrive); shardbroker's always does.
            assert len(frames) == 1 if shardbroker else len(frames) <= 1, (name, frames)
            assert all((f.opcode, f.payload) == (CLOSE, b"\x03\xea" + reason) for f in frames)
            out[name] = "closed"
    with raw_on_shard(broker, 2) as client:
        client.send_frame(b"PUB x 99999999\r\n")
        out["max_payload"] = [(f.opcode, f.payload) for f in client.read_until_closed()]
    with raw_on_shard(broker, 1) as client:
        # An unknown op: the connection ends as a read error, without a close frame.
        client.send_frame(b"FOO\r\n")
        frames = client.read_until_closed()
        assert all(f.opcode == BINARY for f in frames), frames
        assert b"".join(f.payload for f in frames) in (
            b"",
            b"-ERR 'Unknown Protocol Operation'\r\n",
        )
        out["parse_error"] = "closed"
    return out


async def test_websocket_framing(tmp_path: Path, monkeypatch: Any) -> None:
    result = await on_both(tmp_path, monkeypatch, WS, framing)
    assert result["ping"] == (PONG, b"hi")
    assert result["split"] == b"+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n"
    assert result["close"] == [(CLOSE, b"\x03\xe8bye")]
    assert result["empty_close"] == [(CLOSE, b"")]
    assert result["max_payload"] == [
        (BINARY, b"-ERR 'Maximum Payload Violation'\r\n"),
        (CLOSE, b"\x03\xf1Maximum Message Payload Exceeded"),
    ]
    assert all(result[name] == "closed" for name in BAD_FRAMES)


async def compression(broker: Broker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    browser = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
    with raw_on_shard(broker, 1, offer) as sub, raw_on_shard(broker, 2, offer, browser) as pub:
        out["answer"] = [
            line for line in sub.answer.split(b"\r\n") if line.startswith(b"Sec-WebSocket-Ext")
        ]
        sub.nats_handshake()
        pub.nats_handshake()
        # A compressed message from the publisher, in two fragments.
        body = b"PUB big 600\r\n" + b"z" * 600 + b"\r\nPUB small 2\r\nhi\r\nPING\r\n"
        packed = deflate(body)
        sub.send_frame(b"SUB big 1\r\nSUB small 2\r\nPING\r\n")
        sub.read_data(b"PONG\r\n")
        pub.send_frame(packed[:9], rsv=0x40, fin=False)
        pub.send_frame(packed[9:], CONTINUATION)
        pub.read_data(b"PONG\r\n")
        frames = []
        data = b""
        while not data.endswith(b"MSG small 2 2\r\nhi\r\n"):
            got = sub.read_frame()
            frames.append(got)
            data += got.data
        out["data"] = data
        out["compressed"] = any(f.rsv1 for f in frames)
        # A browser gets messages of at most 4096 bytes (compressed ones, fragments).
        pub.send_frame(
            b"SUB wide 3\r\nPUB wide 9000\r\n" + os.urandom(4500).hex().encode() + b"\r\n"
        )
        first = pub.read_frame()
        parts = [first]
        while not parts[-1].fin:
            parts.append(pub.read_frame())
        out["browser"] = all(len(p.payload) <= 4096 for p in parts) and len(parts) > 1
    return out


async def test_websocket_compression(tmp_path: Path, monkeypatch: Any) -> None:
    conf = "websocket { port: -1, no_tls: true, host: 127.0.0.1, compression: true }\n"
    result = await on_both(tmp_path, monkeypatch, conf, compression)
    assert result["answer"] == [
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover"
    ]
    assert result["compressed"]
    assert result["data"].endswith(b"MSG small 2 2\r\nhi\r\n")

    async def off(broker: Broker) -> dict[str, Any]:
        offer = "Sec-WebSocket-Extensions: permessage-deflate"
        with raw_on_shard(broker, 1, offer) as client:
            return {"answer": b"Extensions" in client.answer, "info_rsv1": False}

    assert (await on_both(tmp_path, monkeypatch, WS, off))["answer"] is False


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def launcher_view(broker: Broker) -> dict[str, Any]:
    """What a client suite's launcher reads: the ports file, the log, /varz, /connz."""
    monitor = broker.ports("monitoring")[0]
    kinds = json.loads(broker.ports_file.read_text())
    out: dict[str, Any] = {"ports": sorted(kinds)}
    out["websocket_scheme"] = broker.websocket_url.split("://")[0]
    log = broker.log_text()
    out["log"] = [
        bool(re.search(r"Listening for websocket clients on ws://127\.0\.0\.1:\d+", log)),
        bool(re.search(r"Websocket not configured with TLS. DO NOT USE IN PRODUCTION!", log)),
        bool(re.search(r"Listening for client connections on 127\.0\.0\.1:\d+", log)),
        "Server is ready" in log,
    ]
    varz = _get_json(monitor + "/varz")
    ws = varz["websocket"]
    out["varz"] = (ws["host"], ws["port"] == ws_port(broker), ws["no_tls"], varz.get("tags"))
    async with NatsClients(broker) as clients:
        nc = await clients.on_shard(1, url=broker.websocket_url, name="over-ws")
        tcp = await clients.on_shard(2, name="over-tcp")
        await barrier(nc)
        await barrier(tcp)
        connz = _get_json(monitor + "/connz")
        out["connz"] = sorted((c["name"], c["kind"], c["type"]) for c in connz["connections"])
        sys_nc = await nats.connect(broker.url, user="sys", password="sys")
        try:
            reply = await sys_nc.request("$SYS.REQ.SERVER.PING", b"", timeout=5)
            out["statsz_tags"] = json.loads(reply.data)["server"].get("tags")
            filtered = await sys_nc.request(
                "$SYS.REQ.SERVER.PING.VARZ", json.dumps({"tags": ["region:eu"]}).encode(), timeout=5
            )
            out["tag_filter"] = "server" in json.loads(filtered.data)
        finally:
            await sys_nc.close()
    return out


async def test_websocket_launcher_view(tmp_path: Path, monkeypatch: Any) -> None:
    conf = (
        'server_tags: ["Region:EU", "edge"]\nhttp_port: -1\n'
        "accounts { SYS { users [{user: sys, password: sys}] }, "
        "APP { users [{user: app, password: app}] } }\n"
        "system_account: SYS\nno_auth_user: app\n" + WS
    )
    result = await on_both(tmp_path, monkeypatch, conf, launcher_view)
    assert result["ports"] == ["monitoring", "nats", "websocket"]
    assert result["log"] == [True, True, True, True]
    assert result["varz"] == ("127.0.0.1", True, True, ["region:eu", "edge"])
    assert result["connz"] == [("over-tcp", "Client", "nats"), ("over-ws", "Client", "websocket")]
    assert result["statsz_tags"] == ["region:eu", "edge"]
    assert result["tag_filter"]


def test_websocket_serve_version_as_nats_server() -> None:
    ours = subprocess.run(
        [sys.executable, "-m", "shardbroker", "serve", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    short = subprocess.run(
        [sys.executable, "-m", "shardbroker", "serve", "-v"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    theirs = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    pattern = re.compile(r"nats-server: v\d+\.\d+\.\d+\n")
    for result in (ours, short, theirs):
        assert result.returncode == 0
        assert pattern.fullmatch(result.stdout), result.stdout
    assert ours.stdout == short.stdout


def test_websocket_leafnodes_block_is_refused_clearly(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    conf.write_text('leafnodes { listen: "127.0.0.1:-1" }\n' + WS)
    result = subprocess.run(
        [sys.executable, "-m", "shardbroker", "serve", "-c", str(conf), "-p", "-1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 3
    assert "'leafnodes' is a nats-server option that shardbroker does not support yet" in (
        result.stderr
    )


async def test_websocket_refused_client_harms_nobody(tmp_path: Path) -> None:
    """A websocket client breaking the framing loses its own connection only: the other
    websocket and client-port clients on both workers carry on."""
    conf = tmp_path / "ws.conf"
    conf.write_text(WS)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        pids = {shard: proc.pid for shard, proc in broker.refresh_workers().items()}
        async with NatsClients(broker) as clients:
            subs = [await clients.on_shard(s, url=broker.websocket_url) for s in (1, 2)]
            pub = await clients.on_shard(1)
            subject = unique("ws")
            subscriptions = [await nc.subscribe(subject) for nc in subs]
            for nc in subs:
                await barrier(nc)
            for shard in (1, 2):
                with raw_on_shard(broker, shard) as bad:
                    bad.send(frame(b"PING\r\n", mask=None) + b"\xff" * 100)
                    bad.read_until_closed()
            await pub.publish(subject, b"still here")
            for subscription in subscriptions:
                assert (await subscription.next_msg(timeout=5)).data == b"still here"
        assert {shard: proc.pid for shard, proc in broker.refresh_workers().items()} == pids


async def test_websocket_handshake_timeout_origins_and_headers(
    tmp_path: Path, monkeypatch: Any
) -> None:
    conf = (
        'websocket {\n  port: -1, no_tls: true, host: 127.0.0.1, handshake_timeout: "300ms"\n'
        '  allowed_origins: ["http://good.example:8080"]\n'
        '  headers { "X-Served-By": "ws-test" }\n}\n'
    )

    async def scenario(broker: Broker) -> dict[str, Any]:
        port = ws_port(broker)
        out: dict[str, Any] = {}
        with WSClient.open(port) as idle:
            # Nothing sent: the handshake timeout closes the connection without a word.
            out["idle"] = (idle.read_answer(timeout=10), idle.closed)
        for name, origin in [
            ("exact", "http://good.example:8080"),
            ("default_port", "http://good.example"),
            ("other_host", "http://evil.example:8080"),
            ("none", ""),
        ]:
            with WSClient.open(port) as client:
                client.send(upgrade_request("/", f"Origin: {origin}" if origin else ""))
                answer = without_date(client.read_answer())
                out[name] = answer.split(b"\r\n")[0]
                if name == "exact":
                    out["headers"] = answer
                    # Upgraded: the handshake timeout no longer applies.
                    out["info"] = client.read_frame().data.startswith(b"INFO ")
                    client.send_frame(b"PING\r\n")
                    out["pong"] = client.read_data(b"PONG\r\n")
        return out

    result = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert result["idle"] == (b"", True)
    assert result["exact"] == b"HTTP/1.1 101 Switching Protocols"
    assert result["headers"].endswith(b"\r\nX-Served-By: ws-test\r\n\r\n")
    assert result["default_port"] == result["other_host"] == b"HTTP/1.1 403 Forbidden"
    assert result["none"] == b"HTTP/1.1 101 Switching Protocols"
    assert result["pong"] == b"PONG\r\n"


async def test_websocket_operator_mode_jwt_cookie_and_connection_types(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A browser cannot sign the nonce: its bearer user JWT comes in a cookie. A user JWT
    allowed the WEBSOCKET connection type only gets in over websocket, not the client port."""
    from shardbroker.config import jwt

    operator = jwt.new_seed("operator")
    account = jwt.new_seed("account")
    account_key = jwt.public_key(account)
    limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
              "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
    account_jwt = jwt.encode("account", account_key, operator, {"limits": limits}, name="A")
    operator_jwt = jwt.encode("operator", jwt.public_key(operator), operator, name="op")
    user_seed = jwt.new_seed("user")
    section = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
               "bearer_token": True, "allowed_connection_types": ["WEBSOCKET"]}  # fmt: skip
    user_jwt = jwt.encode("user", jwt.public_key(user_seed), account, section, name="browser")
    creds = tmp_path / "browser.creds"
    creds.write_text(jwt.format_creds(user_jwt, user_seed))
    conf = (
        f'operator: "{operator_jwt}"\nresolver: MEMORY\n'
        f'resolver_preload: {{\n  {account_key}: "{account_jwt}"\n}}\n'
        "websocket { port: -1, no_tls: true, host: 127.0.0.1, jwt_cookie: jwt }\n"
    )

    async def scenario(broker: Broker) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for shard in broker.shard_ids:
            with raw_on_shard(broker, shard, f"Cookie: jwt={user_jwt}") as client:
                out[f"cookie{shard}"] = client.nats_handshake()
        with raw_on_shard(broker, 1) as client:
            client.send_frame(b'CONNECT {"verbose":false}\r\nPING\r\n')
            out["no_cookie"] = [(f.opcode, f.payload) for f in client.read_until_closed()]
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        try:
            nc = await connect_on_shard(broker, 1, user_credentials=str(creds), error_cb=on_error)
        except (nats.errors.Error, OSError) as exc:
            errors.append(str(exc))
            nc = None
        if nc is None:
            # Outside the except block: its traceback no longer holds the refused client.
            await collect_refused_sockets()
            out["tcp"] = "refused" if any("authorization" in e.lower() for e in errors) else errors
        else:
            await nc.close()
            out["tcp"] = "connected"
        return out

    result = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert result["cookie1"] == result["cookie2"] == b"PONG\r\n"
    assert result["no_cookie"] == [
        (BINARY, b"-ERR 'Authorization Violation'\r\n"),
        (CLOSE, b"\x03\xf0Authentication Failure"),
    ]
    assert result["tcp"] == "refused"


def test_websocket_bench_over_websocket(tmp_path: Path) -> None:
    """`shardbroker bench -s ws://...` (perf's pubsub-ws): counts exact, placed on both
    workers by the INFO client_id, as over the client port."""
    conf = tmp_path / "ws.conf"
    conf.write_text(WS)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        argv = [
            sys.executable, "-m", "shardbroker", "bench", "pubsub", "-s", broker.websocket_url,
            "--subject", unique("wsb"), "--pubs", "2", "--subs", "2", "--msgs", "4000",
            "--size", "300", "--spread", "2", "--json", "--no-progress",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["sent"], result["received"]) == (4000, 8000)
        assert sorted(c["shard"] for c in result["per_client"]) == [1, 1, 2, 2]
