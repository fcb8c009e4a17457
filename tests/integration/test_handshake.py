"""Connection handshake: INFO, CONNECT, the PONG that follows, the connect-info INFO
(protocol.md §1, §3, §4, captures 19.1 and 19.2)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    raw_connect,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.wire import INFO_EXACT_RE, INFO_RE, OK_RE, PONG_RE, WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NATS_PY_CONNECT = (
    b'CONNECT {"echo": true, "headers": true, "lang": "python3", "name": "capture", '
    b'"no_responders": true, "pedantic": false, "protocol": 1, "verbose": false, '
    b'"version": "2.16.0"}\r\nPING\r\n'
)


def _check_info_fields(info: dict, broker: Broker) -> None:
    for key, typ in (("server_id", str), ("server_name", str), ("version", str), ("host", str)):
        assert isinstance(info.get(key), typ) and info[key], f"{key} missing in {info}"
    m = SEMVER_RE.match(info["version"])
    assert m, f"version {info['version']!r} is not semver"
    major, minor = int(m.group(1)), int(m.group(2))
    assert major == 2 and minor >= 10, info["version"]
    assert info["proto"] == 1
    assert info["headers"] is True
    assert isinstance(info["max_payload"], int) and info["max_payload"] == 1048576
    assert info["host"] == "127.0.0.1"
    assert info["port"] == broker.port
    assert isinstance(info["client_id"], int) and info["client_id"] > 0
    for absent in (
        "auth_required",
        "tls_required",
        "nonce",
        "connect_urls",
        "ldm",
        "connect_info",
        "cluster",
    ):
        assert absent not in info, f"{absent} should be absent in {info}"


def test_handshake_info_is_first_with_required_fields(broker: Broker) -> None:
    with WireClient.connect("127.0.0.1", broker.port, read_info=False) as c:
        # INFO is sent at once on accept, before any client byte; one space before CRLF.
        m = c.expect(INFO_EXACT_RE)
        info = json.loads(m.group("json"))
        _check_info_fields(info, broker)


def test_handshake_info_on_every_worker(broker: Broker) -> None:
    ids = set()
    for shard in broker.shard_ids:
        with raw_connect_on_shard(broker, shard) as c:
            _check_info_fields(c.info, broker)
            assert c.info_raw.endswith(b"} \r\n")
            ids.add((c.info["server_id"], c.info["server_name"]))
            assert broker.shard_of(c.client_id) in (None, shard)
    # One server to the outside: every worker advertises the same identity.
    assert len(ids) == 1, ids


def test_handshake_connect_ping_pong_then_connect_info(broker: Broker) -> None:
    with raw_connect(broker) as c:
        cid = c.client_id
        c.send(
            b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":true,'
            b'"no_responders":true,"lang":"raw","version":"0"}\r\nPING\r\n'
        )
        c.expect(PONG_RE)  # PONG is the very next line
        m = c.expect(INFO_EXACT_RE)
        info = json.loads(m.group("json"))
        assert info["connect_info"] is True
        assert info["remote_account"] == "$G"
        assert info["client_id"] == cid
        assert info["max_payload"] == 1048576
        assert "acc_is_sys" not in info
        # Only after the first PONG: a second PING gets a bare PONG.
        assert c.ping_barrier() == b""
        assert c.ping_barrier() == b""


def test_handshake_nats_py_capture_gets_pong_first(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(NATS_PY_CONNECT)
        c.expect(PONG_RE)
        c.expect(INFO_RE)
        assert c.ping_barrier() == b""


@pytest.mark.parametrize("protocol", [None, 0])
def test_handshake_protocol_0_has_no_connect_info(broker: Broker, protocol: int | None) -> None:
    with raw_connect(broker) as c:
        opts = {"verbose": False, "pedantic": False}
        if protocol is not None:
            opts["protocol"] = protocol
        c.connect_proto(**opts)
        c.send(b"PING\r\n")
        c.expect(PONG_RE)
        assert c.ping_barrier() == b""  # no connect-info INFO


def test_handshake_connect_empty_is_verbose(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b"CONNECT {}\r\n")
        c.expect(OK_RE)
        # No +OK for PING, and no connect-info INFO for protocol 0.
        assert c.ping_barrier() == b""


def test_handshake_verbose_ok_precedes_pong(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b'CONNECT {"verbose":true,"pedantic":false,"protocol":1}\r\nPING\r\n')
        c.expect(OK_RE)
        c.expect(PONG_RE)
        c.expect(INFO_RE)
        assert c.ping_barrier() == b""


def test_handshake_ping_before_connect(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b"PING\r\n")
        c.expect(PONG_RE)
        c.send(b"ping foo\r\n")
        c.expect(PONG_RE)
        c.send(b"CONNECT {}\r\n")
        c.expect(OK_RE)
        assert c.ping_barrier() == b""


def test_handshake_connect_keys_case_insensitive(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b'CONNECT {"VERBOSE":false,"Pedantic":false}\r\n')
        assert c.ping_barrier() == b""  # no +OK: VERBOSE:false took effect


def test_handshake_unknown_connect_keys_ignored(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b'CONNECT {"verbose":false,"whatever":[1,{"x":2}],"tls_required":false}\r\n')
        assert c.ping_barrier() == b""


def test_handshake_second_connect_drops_subscriptions(broker: Broker) -> None:
    subject = unique()
    with raw_connect(broker) as c:
        c.handshake()
        c.send(f"SUB {subject} 1\r\nPUB {subject} 1\r\nx\r\n".encode())
        assert c.ping_barrier() == f"MSG {subject} 1 1\r\nx\r\n".encode()
        # A new CONNECT re-authenticates: old subscriptions are dropped, verbose applies.
        c.send(b'CONNECT {"verbose":true,"pedantic":false}\r\n')
        c.expect(OK_RE)
        c.send(f"PUB {subject} 1\r\nx\r\n".encode())
        c.expect(OK_RE)
        assert c.ping_barrier() == b""


def test_handshake_client_ids_unique_raw(broker: Broker) -> None:
    clients = []
    try:
        for _ in range(60):
            # One by one, not a comprehension: `finally` closes those made before a failure.
            clients.append(raw_connect(broker))  # noqa: PERF401
        ids = [c.client_id for c in clients]
        assert all(isinstance(i, int) and i > 0 for i in ids)
        assert len(set(ids)) == len(ids), ids
        if broker.is_shardbroker:
            shards = {broker.shard_of(i) for i in ids}
            assert shards <= set(broker.shard_ids), shards
            # SO_REUSEPORT spreads 60 connections over both workers (2**-59 to fail).
            assert shards == set(broker.shard_ids), shards
    finally:
        for c in clients:
            c.close()


async def test_handshake_nats_py_connects_on_every_worker(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        seen = []
        for shard in broker.shard_ids:
            nc = await clients.on_shard(shard)
            assert nc.is_connected
            version = nc.connected_server_version
            assert version.major == 2 and version.minor >= 10
            assert nc.max_payload == 1048576
            assert isinstance(nc.client_id, int)
            seen.append(nc.client_id)
            await nc.flush(timeout=5)
        assert len(set(seen)) == len(seen)
