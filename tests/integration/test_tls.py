"""TLS on the client port (protocol.md §18, config.md §2.7): the `tls {}` block and the
--tls* flags, with and without client verification, TLS-first handshakes, and clients
that get TLS wrong (plain text, no or a foreign certificate), which must cost them their
own connection and nothing else. Certificates are made at test time with openssl.
"""

from __future__ import annotations

import contextlib
import gc
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from tests.helpers.broker import (
    HOST,
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect,
    raw_connect_on_shard,
    run_broker,
    unique,
)
from tests.helpers.certs import OPENSSL, Certs, make_certs
from tests.helpers.wire import PONG_RE, WireClient, WireError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command"),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def client_context(certs: Certs, cert: bool = True, rogue: bool = False) -> ssl.SSLContext:
    """Trusts the test CA; presents the client certificate (or the rogue one)."""
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if rogue:
        ctx.load_cert_chain(str(certs.rogue_client_cert), str(certs.rogue_client_key))
    elif cert:
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return ctx


def tls_flags(certs: Certs, verify: bool = False) -> list[str]:
    flags = ["--tls", "--tlscert", str(certs.server_cert), "--tlskey", str(certs.server_key)]
    if verify:
        flags += ["--tlsverify", "--tlscacert", str(certs.ca)]
    return flags


@contextlib.contextmanager
def tls_broker(tmp_path: Path, *args: str, conf: str | None = None) -> Iterator[Broker]:
    extra = list(args)
    if conf is not None:
        path = tmp_path / f"{unique('tls')}.conf"
        path.write_text(conf)
        extra += ["-c", str(path)]
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=extra) as broker:
        yield broker


def tls_conf(certs: Certs, **extra: str) -> str:
    lines = [f'cert_file: "{certs.server_cert}"', f'key_file: "{certs.server_key}"']
    lines += [f"{key}: {value}" for key, value in extra.items()]
    return "tls {\n  " + "\n  ".join(lines) + "\n}\n"


async def pubsub_across_shards(broker: Broker, **kwargs: Any) -> None:
    """A subscriber on worker 1 gets what a publisher on worker 2 sends, both nats-py."""
    subject = unique("tls.")
    async with NatsClients(broker) as clients:
        sub_nc = await clients.on_shard(1, **kwargs)
        pub_nc = await clients.on_shard(2, **kwargs)
        assert_different_shards(broker, sub_nc.client_id, pub_nc.client_id)
        sub = await sub_nc.subscribe(subject)
        await barrier(sub_nc)
        for i in range(20):
            await pub_nc.publish(subject, str(i).encode())
        got = [(await sub.next_msg(timeout=5)).data for _ in range(20)]
        assert got == [str(i).encode() for i in range(20)]


async def refused(broker: Broker, **kwargs: Any) -> str:
    """nats-py fails to connect; returns what it reported."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(repr(exc))

    try:
        nc = await nats.connect(
            broker.url, allow_reconnect=False, connect_timeout=5, error_cb=on_error, **kwargs
        )
    except (nats.errors.Error, OSError, TimeoutError, ssl.SSLError) as exc:
        errors.append(repr(exc))
    else:
        await nc.close()
        raise AssertionError(f"connected to {broker.url} with {kwargs}")
    # nats-py leaves the refused connection's socket for the garbage collector.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return " ".join(errors)


def tls_pubsub_on_every_shard(broker: Broker, ctx: ssl.SSLContext) -> None:
    """One TLS client per worker; each sends to every other and everything arrives."""
    token = unique("probe")
    clients: dict[int, WireClient] = {}
    try:
        for shard in broker.shard_ids:
            client = raw_connect_on_shard(broker, shard, tls=ctx)
            clients[shard] = client
            client.handshake()
            client.send(f"SUB {token}.{shard} 1\r\n".encode())
            assert client.ping_barrier() == b""
        for src in clients.values():
            for dst_shard, dst in clients.items():
                src.send(f"PUB {token}.{dst_shard} 2\r\nok\r\n".encode())
                msg = dst.read_msg()
                assert (msg.subject, msg.payload) == (f"{token}.{dst_shard}", b"ok")
    finally:
        for client in clients.values():
            client.close()


# -- connecting ----------------------------------------------------------------------------


async def test_tls_without_client_verification(tmp_path: Path, certs: Certs) -> None:
    with tls_broker(tmp_path, *tls_flags(certs)) as broker:
        with raw_connect(broker) as client:
            assert client.info["tls_required"] is True
            assert "tls_verify" not in client.info
        await pubsub_across_shards(broker, tls=client_context(certs, cert=False))
        # A client certificate is not asked for, and one offered does no harm.
        await pubsub_across_shards(broker, tls=client_context(certs))


async def test_tls_with_client_verification(tmp_path: Path, certs: Certs) -> None:
    with tls_broker(tmp_path, *tls_flags(certs, verify=True)) as broker:
        with raw_connect(broker) as client:
            assert client.info["tls_required"] is True
            assert client.info["tls_verify"] is True
        await pubsub_across_shards(broker, tls=client_context(certs))
        await refused(broker, tls=client_context(certs, cert=False))
        await refused(broker, tls=client_context(certs, rogue=True))
        tls_pubsub_on_every_shard(broker, client_context(certs))


async def test_tls_config_block(tmp_path: Path, certs: Certs) -> None:
    conf = tls_conf(certs, ca_file=f'"{certs.ca}"', verify="true", timeout="3")
    conf += "authorization { users: [ {user: u, password: p} ] }\n"
    with tls_broker(tmp_path, conf=conf) as broker:
        with raw_connect(broker) as client:
            assert client.info["tls_required"] is True
            assert client.info["tls_verify"] is True
            assert client.info["auth_required"] is True
        # Authentication runs inside TLS.
        await pubsub_across_shards(broker, tls=client_context(certs), user="u", password="p")
        assert (
            "authorization"
            in (await refused(broker, tls=client_context(certs), user="u", password="x")).lower()
        )


async def test_tls_handshake_first(tmp_path: Path, certs: Certs) -> None:
    with tls_broker(tmp_path, conf=tls_conf(certs, handshake_first="true")) as broker:
        ctx = client_context(certs, cert=False)
        await pubsub_across_shards(broker, tls=ctx, tls_handshake_first=True)
        with WireClient.connect(HOST, broker.port, tls=ctx, tls_first=True) as client:
            assert client.info["tls_required"] is True
            client.handshake()
        # The server says nothing before the handshake: a client waiting for INFO
        # first sees nothing, and its plain text then ends the connection.
        with WireClient.connect(HOST, broker.port, read_info=False) as client:
            client.assert_nothing()
            client.send(b"CONNECT {}\r\nPING\r\n")
            assert client.expect_closed() == b""


# -- clients that get it wrong --------------------------------------------------------------


async def test_tls_plain_text_client_is_closed_silently(tmp_path: Path, certs: Certs) -> None:
    with tls_broker(tmp_path, *tls_flags(certs)) as broker:
        for shard in broker.shard_ids:
            with raw_connect_on_shard(broker, shard) as client:
                client.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
                # No -ERR: the bytes were a failed handshake.
                assert client.expect_closed() == b""
        # nats-py upgrades on its own, but cannot verify a certificate it does not
        # trust (no tls context given: the system's roots).
        assert "certificate" in (await refused(broker)).lower()
        tls_pubsub_on_every_shard(broker, client_context(certs, cert=False))


async def test_tls_bad_handshakes_harm_no_one_else(tmp_path: Path, certs: Certs) -> None:
    with tls_broker(tmp_path, *tls_flags(certs, verify=True)) as broker:
        ctx = client_context(certs)
        keeper = raw_connect_on_shard(broker, 1, tls=ctx)
        with keeper:
            keeper.handshake()
            sentinel = unique("keep")
            keeper.send(f"SUB {sentinel} 1\r\n".encode())
            assert keeper.ping_barrier() == b""
            for shard in broker.shard_ids:
                # Garbage, a truncated ClientHello, plain text, a foreign certificate.
                for junk in (b"\x16\x03\x01\x02\x00\x01", b"\x16\x03\x01", b"\x00" * 64):
                    with raw_connect_on_shard(broker, shard) as client:
                        client.send(junk)
                        # No more bytes will come; the server may have reset us already.
                        with contextlib.suppress(OSError):
                            client.sock.shutdown(1)
                        assert client.expect_closed() == b""
                for bad in (client_context(certs, rogue=True), client_context(certs, cert=False)):
                    with (
                        pytest.raises((ssl.SSLError, OSError, WireError)),
                        raw_connect_on_shard(broker, shard, tls=bad) as c,
                    ):
                        c.handshake()
            tls_pubsub_on_every_shard(broker, ctx)
            with raw_connect_on_shard(broker, 2, tls=ctx) as other:
                other.handshake()
                other.send(f"PUB {sentinel} 2\r\nok\r\n".encode())
                assert keeper.read_msg().payload == b"ok"
            keeper.send(b"PING\r\n")
            keeper.expect(PONG_RE)
        if broker.is_shardbroker:
            assert sorted(broker.refresh_workers()) == broker.shard_ids


def test_tls_client_that_never_handshakes_is_timed_out(tmp_path: Path, certs: Certs) -> None:
    conf = tls_conf(certs, timeout='"500ms"')
    with tls_broker(tmp_path, conf=conf) as broker, raw_connect(broker) as client:
        assert client.info["tls_required"] is True
        # Nothing sent: the handshake timeout ends the connection.
        assert client.expect_closed(timeout=10) == b""
