"""Headers: HPUB/HMSG, stripping for clients that did not ask for headers, empty and
zero-size header blocks, HPUB without headers support (protocol.md §6, §9, §12,
capture 19.4)."""

from __future__ import annotations

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    ShardProbes,
    assert_different_shards,
    barrier,
    raw_connect_on_shard,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HDR = b"NATS/1.0\r\nFoo: Bar\r\n\r\n"  # 22 bytes


def hpub(subject: str, header: bytes, payload: bytes, reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return (
        f"HPUB {subject}{mid} {len(header)} {len(header) + len(payload)}\r\n".encode()
        + header
        + payload
        + b"\r\n"
    )


@pytest.mark.parametrize("pub_shard", [1, 2])
def test_headers_hmsg_and_stripped_msg_across_shards(broker: Broker, pub_shard: int) -> None:
    publisher = raw_connect_on_shard(broker, pub_shard)
    with_headers = raw_connect_on_shard(broker, 2)
    without = raw_connect_on_shard(broker, 2)
    local_without = raw_connect_on_shard(broker, 1)
    clients = (publisher, with_headers, without, local_without)
    try:
        publisher.handshake(protocol=1, headers=True)
        with_headers.handshake(protocol=1, headers=True)
        without.handshake(protocol=1)
        local_without.handshake()
        demo = unique("demo.")
        with_headers.send(f"SUB {demo} 1\r\n".encode())
        without.send(f"SUB {demo} 7\r\n".encode())
        local_without.send(f"SUB {demo} 3\r\n".encode())
        for c in clients[1:]:
            assert c.ping_barrier() == b""
        publisher.send(hpub(demo, HDR, b"hello", reply="reply.1"))
        publisher.send(hpub(demo, HDR, b"", reply="rep"))
        publisher.send(hpub(demo, HDR, b"x"))
        assert publisher.ping_barrier() == b""
        assert with_headers.read_msg().raw == (
            f"HMSG {demo} 1 reply.1 22 27\r\n".encode() + HDR + b"hello\r\n"
        )
        assert (
            with_headers.read_msg().raw == f"HMSG {demo} 1 rep 22 22\r\n".encode() + HDR + b"\r\n"
        )
        assert with_headers.read_msg().raw == f"HMSG {demo} 1 22 23\r\n".encode() + HDR + b"x\r\n"
        for c, sid in ((without, 7), (local_without, 3)):
            assert c.read_msg().raw == f"MSG {demo} {sid} reply.1 5\r\nhello\r\n".encode()
            assert c.read_msg().raw == f"MSG {demo} {sid} rep 0\r\n\r\n".encode()
            assert c.read_msg().raw == f"MSG {demo} {sid} 1\r\nx\r\n".encode()
    finally:
        for c in clients:
            c.close()


def test_headers_empty_block_and_zero_header_size(broker: Broker) -> None:
    publisher = raw_connect_on_shard(broker, 1)
    hsub = raw_connect_on_shard(broker, 2)
    plain = raw_connect_on_shard(broker, 2)
    with publisher, hsub, plain:
        publisher.handshake(headers=True)
        hsub.handshake(headers=True)
        plain.handshake()
        foo = unique()
        hsub.send(f"SUB {foo} 1\r\n".encode())
        plain.send(f"SUB {foo} 2\r\n".encode())
        assert hsub.ping_barrier() == b""
        assert plain.ping_barrier() == b""
        publisher.send(f"HPUB {foo} 12 12\r\nNATS/1.0\r\n\r\n\r\n".encode())
        assert hsub.read_msg().raw == f"HMSG {foo} 1 12 12\r\nNATS/1.0\r\n\r\n\r\n".encode()
        assert plain.read_msg().raw == f"MSG {foo} 2 0\r\n\r\n".encode()
        # A header size of 0 is accepted and delivered as a plain MSG to everyone.
        publisher.send(f"HPUB {foo} 0 5\r\nhello\r\n".encode())
        assert hsub.read_msg().raw == f"MSG {foo} 1 5\r\nhello\r\n".encode()
        assert plain.read_msg().raw == f"MSG {foo} 2 5\r\nhello\r\n".encode()
        assert publisher.ping_barrier() == b""


def test_headers_hpub_local_exact(broker: Broker) -> None:
    c = raw_connect_on_shard(broker, 1)
    with c:
        c.handshake(headers=True)
        foo = unique()
        c.send(f"SUB {foo} 1\r\n".encode())
        c.send(f"HPUB {foo} 22 27\r\n".encode() + HDR + b"hello\r\n")
        c.expect(f"HMSG {foo} 1 22 27\r\n".encode() + HDR + b"hello\r\n")
        # nats-py's "no reply" form has two spaces.
        hdr = b"NATS/1.0\r\nFoo: Bar\r\nX-Multi: 1\r\n\r\n"
        c.send(f"HPUB {foo}  34 38\r\n".encode() + hdr + b"body\r\n")
        c.expect(f"HMSG {foo} 1 34 38\r\n".encode() + hdr + b"body\r\n")
        assert c.ping_barrier() == b""


def test_headers_hpub_without_headers_support_closes_silently(broker: Broker) -> None:
    with ShardProbes(broker) as probes:
        for shard in broker.shard_ids:
            c = raw_connect_on_shard(broker, shard)
            with c:
                c.handshake()  # headers not requested
                c.send(f"HPUB {unique()} 12 12\r\nNATS/1.0\r\n\r\n\r\n".encode())
                assert c.expect_closed() == b""
            probes.check()


async def test_headers_nats_py_round_trip_across_shards(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(1)
        publisher = await clients.on_shard(2)
        assert_different_shards(broker, subscriber.client_id, publisher.client_id)
        subject = unique()
        sub = await subscriber.subscribe(subject)
        await barrier(subscriber)
        headers = {"Foo": "Bar", "X-Multi": "1", "Mixed-Case": "Value With Spaces"}
        await publisher.publish(subject, b"body", headers=headers)
        await publisher.publish(subject, b"", headers={"Only": "header"})
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"body"
        assert msg.headers == headers
        msg = await sub.next_msg(timeout=5)
        assert (msg.data, msg.headers) == (b"", {"Only": "header"})


async def test_headers_nats_py_request_with_headers(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        responder = await clients.on_shard(2)
        requester = await clients.on_shard(1)
        subject = unique("svc.")

        async def handler(msg) -> None:
            await msg.respond(msg.data.upper())

        async def handler_with_headers(msg) -> None:
            await responder.publish(msg.reply, msg.data, headers={"Echo": msg.headers["Ask"]})

        await responder.subscribe(subject, cb=handler)
        await responder.subscribe(subject + ".h", cb=handler_with_headers)
        await barrier(responder)
        resp = await requester.request(subject, b"abc", timeout=5, headers={"Ask": "x"})
        assert resp.data == b"ABC"
        resp = await requester.request(subject + ".h", b"abc", timeout=5, headers={"Ask": "y"})
        assert resp.headers == {"Echo": "y"}
