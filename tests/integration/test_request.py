"""Request/reply across workers, the mux inbox, and no-responders 503s
(protocol.md §16, capture 19.5)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect,
    raw_connect_on_shard,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NO_RESPONDERS_OPTS = {"protocol": 1, "headers": True, "no_responders": True}


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return f"PUB {subject}{mid} {len(payload)}\r\n".encode() + payload + b"\r\n"


def status_503(reply: str, sid: str, subject: str) -> bytes:
    hdr = f"NATS/1.0 503\r\nNats-Subject: {subject}\r\n\r\n".encode()
    return f"HMSG {reply} {sid} {len(hdr)} {len(hdr)}\r\n".encode() + hdr + b"\r\n"


# -- nats-py ----------------------------------------------------------------------------


@pytest.mark.parametrize("old_style", [False, True])
async def test_request_reply_across_shards(broker: Broker, old_style: bool) -> None:
    async with NatsClients(broker) as clients:
        responder = await clients.on_shard(1)
        requester = await clients.on_shard(2)
        assert_different_shards(broker, responder.client_id, requester.client_id)
        subject = unique("svc.")
        replies_seen: list[str] = []

        async def handler(msg) -> None:
            replies_seen.append(msg.reply)
            await msg.respond(b"re:" + msg.data)

        await responder.subscribe(subject, cb=handler)
        await barrier(responder)
        for i in range(50):
            resp = await requester.request(subject, str(i).encode(), timeout=5, old_style=old_style)
            assert resp.data == f"re:{i}".encode()
        assert len(replies_seen) == 50
        assert all(r.startswith("_INBOX.") for r in replies_seen)
        if not old_style:
            # The mux inbox: one wildcard subscription, one token per request.
            prefixes = {r.rsplit(".", 1)[0] for r in replies_seen}
            assert len(prefixes) == 1, prefixes
            assert len(set(replies_seen)) == 50


async def test_request_many_concurrent_across_shards(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subject = unique("svc.")
        for shard in broker.shard_ids:
            nc = await clients.on_shard(shard)

            async def handler(msg, shard: int = shard) -> None:
                await msg.respond(f"{shard}:".encode() + msg.data)

            await nc.subscribe(subject, queue="q", cb=handler)
            await barrier(nc)
        requesters = [await clients.on_shard(s) for s in broker.shard_ids]
        results = await asyncio.gather(*(
            requesters[i % len(requesters)].request(subject, str(i).encode(), timeout=5)
            for i in range(400)
        ))  # fmt: skip
        assert [r.data.split(b":", 1)[1] for r in results] == [str(i).encode() for i in range(400)]


async def test_request_no_responders_nats_py(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        requester = await clients.on_shard(1)
        with pytest.raises(nats.errors.NoRespondersError):
            await requester.request(unique("svc.none."), b"hi", timeout=5)


async def test_request_responder_on_other_shard_then_gone(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        responder = await clients.on_shard(2)
        requester = await clients.on_shard(1)
        subject = unique("svc.")

        async def handler(msg) -> None:
            await msg.respond(b"ok")

        sub = await responder.subscribe(subject, cb=handler)
        await barrier(responder)
        assert (await requester.request(subject, b"?", timeout=5)).data == b"ok"
        await sub.unsubscribe()
        await barrier(responder)  # the PONG means the UNSUB is in effect everywhere
        with pytest.raises(nats.errors.NoRespondersError):
            await requester.request(subject, b"?", timeout=5)


# -- raw bytes ----------------------------------------------------------------------------


def test_request_no_responders_exact_bytes(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake(**NO_RESPONDERS_OPTS)
        c.send(b"SUB _INBOX.abc.* 7\r\n")
        c.send(pub("svc.none", b"hi", reply="_INBOX.abc.1"))
        c.expect(b"HMSG _INBOX.abc.1 7 40 40\r\nNATS/1.0 503\r\nNats-Subject: svc.none\r\n\r\n\r\n")
        assert c.ping_barrier() == b""


def test_request_no_responders_with_echo_false_own_subscriber(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake(echo=False, **NO_RESPONDERS_OPTS)
        foo = unique()
        c.send(f"SUB {foo} 1\r\nSUB _INBOX.x 2\r\n".encode() + pub(foo, b"hi", reply="_INBOX.x"))
        c.expect(status_503("_INBOX.x", "2", foo))
        assert c.ping_barrier() == b""


def test_request_no_503_without_no_responders(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake(protocol=1, headers=True)
        c.send(b"SUB _INBOX.abc.* 7\r\n" + pub("svc.none", b"hi", reply="_INBOX.abc.1"))
        assert c.ping_barrier() == b""


def test_request_no_503_when_reply_is_not_own_subscription(broker: Broker) -> None:
    requester = raw_connect_on_shard(broker, 1)
    other = raw_connect_on_shard(broker, 2)
    with requester, other:
        requester.handshake(**NO_RESPONDERS_OPTS)
        other.handshake(**NO_RESPONDERS_OPTS)
        inbox = unique("_INBOX.")
        sentinel = unique("end")
        # The reply subject belongs to another connection on another worker.
        other.send(f"SUB {inbox}.* 1\r\nSUB {sentinel} 2\r\n".encode())
        assert other.ping_barrier() == b""
        requester.send(b"SUB _INBOX.mine.* 3\r\n")
        requester.send(pub("svc.none", b"hi", reply=f"{inbox}.1"))
        assert requester.ping_barrier() == b""
        requester.send(pub(sentinel, b"!"))
        msg = other.read_msg()
        assert msg.subject == sentinel, msg.raw
        # A queue subscription on the reply subject does not count either.
        requester.send(b"SUB _INBOX.q.* grp 4\r\n")
        requester.send(pub("svc.none", b"hi", reply="_INBOX.q.1"))
        assert requester.ping_barrier() == b""


def test_request_responder_on_other_shard_means_no_503(broker: Broker) -> None:
    responder = raw_connect_on_shard(broker, 1)
    requester = raw_connect_on_shard(broker, 2)
    with responder, requester:
        assert_different_shards(broker, responder.client_id, requester.client_id)
        responder.handshake()
        requester.handshake(**NO_RESPONDERS_OPTS)
        svc = unique("svc.")
        responder.send(f"SUB {svc} 1\r\nSUB {svc}.q grp 2\r\n".encode())
        assert responder.ping_barrier() == b""
        requester.send(b"SUB _INBOX.abc.* 7\r\n")
        for sid, subject in (("1", svc), ("2", f"{svc}.q")):
            requester.send(pub(subject, b"hi", reply="_INBOX.abc.1"))
            assert requester.ping_barrier() == b""  # no 503: the interest is remote
            msg = responder.read_msg()
            assert msg.raw == f"MSG {subject} {sid} _INBOX.abc.1 2\r\nhi\r\n".encode()
            responder.send(pub("_INBOX.abc.1", b"pong"))
            assert requester.read_msg().raw == b"MSG _INBOX.abc.1 7 4\r\npong\r\n"


def test_request_503_after_remote_responder_unsubscribes(broker: Broker) -> None:
    responder = raw_connect_on_shard(broker, 1)
    requester = raw_connect_on_shard(broker, 2)
    with responder, requester:
        responder.handshake()
        requester.handshake(**NO_RESPONDERS_OPTS)
        svc = unique("svc.")
        responder.send(f"SUB {svc} 1\r\n".encode())
        assert responder.ping_barrier() == b""
        requester.send(b"SUB _INBOX.abc.* 7\r\n" + pub(svc, b"hi", reply="_INBOX.abc.1"))
        assert requester.ping_barrier() == b""
        responder.read_msg()
        responder.send(b"UNSUB 1\r\n")
        assert responder.ping_barrier() == b""
        requester.send(pub(svc, b"hi", reply="_INBOX.abc.2"))
        requester.expect(status_503("_INBOX.abc.2", "7", svc))
