"""Publish/subscribe, locally and across workers: wildcards, duplicates, order, the
PONG barrier, UNSUB with max, echo, verbose and pedantic (protocol.md §5, §7-§9, §13,
captures 19.3 and 19.6).

Cross-shard negative checks use a *sentinel*: the publisher sends one more message on a
subject the subscriber also has; per-publisher order means that once the sentinel
arrives, everything published before it has arrived too.
"""

from __future__ import annotations

import asyncio
from collections import Counter

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
from tests.helpers.wait import async_check_for
from tests.helpers.wire import OK_RE, PONG_RE, WireClient, err_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return f"PUB {subject}{mid} {len(payload)}\r\n".encode() + payload + b"\r\n"


def read_until_sentinel(c: WireClient, sentinel_subject: str) -> list:
    msgs = []
    while True:
        msg = c.read_msg()
        if msg.subject == sentinel_subject:
            return msgs
        msgs.append(msg)


def two_raw(broker: Broker, sub_shard: int = 1, pub_shard: int = 2):
    sub = raw_connect_on_shard(broker, sub_shard)
    try:
        pub_ = raw_connect_on_shard(broker, pub_shard)
    except BaseException:
        sub.close()
        raise
    assert_different_shards(broker, sub.client_id, pub_.client_id)
    sub.handshake()
    pub_.handshake()
    return sub, pub_


# -- nats-py ----------------------------------------------------------------------------


async def test_pubsub_local_nats_py(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        nc = await clients.on_shard(1)
        subject = unique()
        sub = await nc.subscribe(subject)
        await nc.publish(subject, b"hello", reply="r.1")
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data, msg.reply) == (subject, b"hello", "r.1")


@pytest.mark.parametrize(("sub_shard", "pub_shard"), [(1, 2), (2, 1)])
async def test_pubsub_cross_shard_nats_py(broker: Broker, sub_shard: int, pub_shard: int) -> None:
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(sub_shard)
        publisher = await clients.on_shard(pub_shard)
        assert_different_shards(broker, subscriber.client_id, publisher.client_id)
        subject = unique()
        sub = await subscriber.subscribe(subject)
        await barrier(subscriber)
        await publisher.publish(subject, b"across", reply="r.2")
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data, msg.reply) == (subject, b"across", "r.2")


async def test_pubsub_overlapping_subscriptions_get_duplicates(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(1)
        publisher = await clients.on_shard(2)
        tok = unique()
        s1 = await subscriber.subscribe(f"{tok}.*")
        s2 = await subscriber.subscribe(f"{tok}.>")
        s3 = await subscriber.subscribe(f"{tok}.bar")
        await barrier(subscriber)
        await publisher.publish(f"{tok}.bar", b"x")
        for sub in (s1, s2, s3):
            msg = await sub.next_msg(timeout=5)
            assert (msg.subject, msg.data) == (f"{tok}.bar", b"x")


async def test_pubsub_order_kept_across_shards(broker: Broker) -> None:
    count = 10_000
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(1)
        publisher = await clients.on_shard(2)
        assert_different_shards(broker, subscriber.client_id, publisher.client_id)
        subject = unique()
        received: list[int] = []
        done = asyncio.Event()

        async def cb(msg) -> None:
            received.append(int(msg.data))
            if len(received) == count:
                done.set()

        await subscriber.subscribe(subject, cb=cb, pending_msgs_limit=count * 2)
        await barrier(subscriber)
        for i in range(count):
            await publisher.publish(subject, str(i).encode())
        await barrier(publisher)
        await asyncio.wait_for(done.wait(), timeout=20)
        assert received == list(range(count))


async def test_pubsub_subscribe_flush_publish_from_other_shard(broker: Broker) -> None:
    # The PONG to the subscriber's flush must mean "in effect on every worker".
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(1)
        publisher = await clients.on_shard(2)
        assert_different_shards(broker, subscriber.client_id, publisher.client_id)
        for i in range(50):
            subject = unique(f"race{i}.")
            sub = await subscriber.subscribe(subject)
            await barrier(subscriber)
            await publisher.publish(subject, b"now")
            msg = await sub.next_msg(timeout=5)
            assert msg.data == b"now", i
            await sub.unsubscribe()


def test_pubsub_subscribe_flush_publish_raw_both_directions(broker: Broker) -> None:
    a, b = two_raw(broker)
    with a, b:
        for i in range(50):
            src, dst = (a, b) if i % 2 else (b, a)
            subject = unique(f"raw{i}.")
            dst.send(f"SUB {subject} {i}\r\n".encode())
            assert dst.ping_barrier() == b""
            src.send(pub(subject, b"go"))
            assert dst.read_msg().raw == f"MSG {subject} {i} 2\r\ngo\r\n".encode()


async def test_pubsub_fan_out_to_many_subscribers_on_both_shards(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subject = unique()
        subs = []
        for shard in broker.shard_ids:
            for _ in range(5):
                nc = await clients.on_shard(shard)
                subs.append(await nc.subscribe(subject))
                await barrier(nc)
        publisher = await clients.on_shard(1)
        await publisher.publish(subject, b"fan")
        await publisher.publish(subject, b"out")
        for sub in subs:
            assert (await sub.next_msg(timeout=5)).data == b"fan"
            assert (await sub.next_msg(timeout=5)).data == b"out"


async def test_pubsub_large_payload_across_shards(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subscriber = await clients.on_shard(2)
        publisher = await clients.on_shard(1)
        subject = unique()
        sub = await subscriber.subscribe(subject)
        await barrier(subscriber)
        payloads = [
            bytes([i % 251]) * n
            for i, n in enumerate((1, 4096, 65536, 1024 * 1024 - 1, 1024 * 1024, 0))
        ]
        for p in payloads:
            await publisher.publish(subject, p)
        for p in payloads:
            msg = await sub.next_msg(timeout=10)
            assert msg.data == p


async def test_pubsub_interest_gone_after_subscriber_disconnects(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        requester = await clients.on_shard(2)
        subscriber = await clients.on_shard(1)
        subject = unique()
        await subscriber.subscribe(subject)
        await barrier(subscriber)
        await subscriber.close()

        async def no_responders() -> bool:
            try:
                await requester.request(subject, b"?", timeout=0.5)
            except nats.errors.NoRespondersError:
                return True
            except nats.errors.TimeoutError:
                return False
            raise AssertionError("someone answered")

        await async_check_for(10, 0.05, no_responders)


# -- raw bytes ----------------------------------------------------------------------------


def test_pubsub_raw_exact_bytes_cross_shard(broker: Broker) -> None:
    sub, p = two_raw(broker)
    with sub, p:
        subject = unique()
        sub.send(f"SUB {subject} 1\r\nSUB {subject} q1 2\r\n".encode())
        assert sub.ping_barrier() == b""
        p.send(pub(subject, b"hello") + pub(subject, b"", reply="bar"))
        got = {sub.read_msg().raw for _ in range(2)}
        assert got == {
            f"MSG {subject} 1 5\r\nhello\r\n".encode(),
            f"MSG {subject} 2 5\r\nhello\r\n".encode(),
        }
        got = {sub.read_msg().raw for _ in range(2)}
        assert got == {
            f"MSG {subject} 1 bar 0\r\n\r\n".encode(),
            f"MSG {subject} 2 bar 0\r\n\r\n".encode(),
        }
        assert p.ping_barrier() == b""


def test_pubsub_verbose_exact_bytes(broker: Broker) -> None:
    # Capture 19.3, on one connection.
    with raw_connect(broker) as c:
        f = unique()
        c.send(b'CONNECT {"verbose":true,"pedantic":false}\r\n')
        c.expect(OK_RE)
        c.send(f"SUB {f} 1\r\n".encode())
        c.expect(OK_RE)
        c.send(f"SUB {f} q1 2\r\n".encode())
        c.expect(OK_RE)
        c.send(pub(f, b"hello"))
        c.expect(OK_RE)
        got = {c.read_msg().raw for _ in range(2)}
        assert got == {f"MSG {f} 1 5\r\nhello\r\n".encode(), f"MSG {f} 2 5\r\nhello\r\n".encode()}
        c.send(b"UNSUB 1\r\n")
        c.expect(OK_RE)
        c.send(b"UNSUB 99\r\n")  # unknown sid: no error
        c.expect(OK_RE)
        c.send(pub(f, b"hi"))
        c.expect(f"+OK\r\nMSG {f} 2 2\r\nhi\r\n".encode())
        c.send(b"PING\r\n")
        c.expect(PONG_RE)  # no +OK for PING
        assert c.ping_barrier() == b""


def test_pubsub_wildcards_cross_shard(broker: Broker) -> None:
    sub, p = two_raw(broker)
    with sub, p:
        t = unique()
        sentinel = f"end.{t}"
        sub.send(
            f"SUB {t}.* 1\r\nSUB {t}.> 2\r\nSUB {t}.*.c 3\r\nSUB *.{t}.a 4\r\n"
            f"SUB {t}.a 5\r\nSUB {t}* 6\r\nSUB {sentinel} 9\r\n".encode()
        )
        assert sub.ping_barrier() == b""
        published = [
            f"{t}.a",
            f"{t}.a.c",
            f"{t}.b.c.d",
            t,
            f"x.{t}.a",
            f"{t}.*",
            f"{t}.>",
            f"{t}*",
            f"{t}.a.",
            f"{t}..c",
            f"{t}x",
        ]
        for subject in published:
            p.send(pub(subject, subject.encode()))
        p.send(pub(sentinel, b""))
        got = Counter((m.subject, m.sid) for m in read_until_sentinel(sub, sentinel))
        expected = Counter([
            (f"{t}.a", "1"), (f"{t}.a", "2"), (f"{t}.a", "5"),
            (f"{t}.a.c", "2"), (f"{t}.a.c", "3"),
            (f"{t}.b.c.d", "2"),
            (f"x.{t}.a", "4"),
            # Wildcard characters in a published subject are literal tokens.
            (f"{t}.*", "1"), (f"{t}.*", "2"),
            (f"{t}.>", "1"), (f"{t}.>", "2"),
            # `foo*` is a literal token, not a wildcard.
            (f"{t}*", "6"),
        ])  # fmt: skip
        assert got == expected
        assert p.ping_barrier() == b""


def test_pubsub_order_and_payloads_raw_pipelined(broker: Broker) -> None:
    sub, p = two_raw(broker, sub_shard=2, pub_shard=1)
    with sub, p:
        subject = unique()
        sub.send(f"SUB {subject} 7\r\n".encode())
        assert sub.ping_barrier() == b""
        count = 2000
        # One big write with many messages; payloads that look like protocol.
        p.send(
            b"".join(pub(subject, f"{i}\r\nPING\r\nMSG x 1 1\r\n".encode()) for i in range(count))
        )
        for i in range(count):
            msg = sub.read_msg()
            assert msg.payload == f"{i}\r\nPING\r\nMSG x 1 1\r\n".encode()
            assert msg.sid == "7"
        assert p.ping_barrier() == b""
        assert sub.ping_barrier() == b""


def large_payload(i: int, subject: str) -> bytes:
    """1 KiB that looks like protocol, its own PUB line included."""
    body = f"{i}\r\nPUB {subject} 1024\r\nMSG x 1 1\r\n".encode()
    return body + b"z" * (1024 - len(body))


def test_pubsub_blocks_of_identical_large_pubs(broker: Broker) -> None:
    """Many identical large PUBs in one write (passed on as blocks): every kind of
    subscriber, local and on the other worker, gets each payload intact and in order."""
    sub, p = two_raw(broker, sub_shard=2, pub_shard=1)
    local = raw_connect_on_shard(broker, 1)
    with sub, p, local:
        local.handshake()
        subject = unique()
        sentinel = unique("end")
        sub.send(f"SUB {subject} 1\r\nSUB {sentinel} 9\r\n".encode())
        local.send(f"SUB {subject} 4\r\nSUB {sentinel} 9\r\n".encode())
        assert sub.ping_barrier() == b""
        assert local.ping_barrier() == b""
        count = 300
        payloads = [large_payload(i, subject) for i in range(count)]
        blocks = b"".join(pub(subject, x) for x in payloads)

        def received(c: WireClient) -> list[tuple[str, bytes]]:
            return [(m.sid, m.payload) for m in read_until_sentinel(c, sentinel)]

        # Plain subscribers only: blocks go through whole.
        p.send(blocks + pub(sentinel, b"!"))
        assert received(sub) == [("1", x) for x in payloads]
        assert received(local) == [("4", x) for x in payloads]
        # Pipelined with another subject in between: still whole and ordered.
        other = unique()
        local.send(f"SUB {other} 5\r\n".encode())
        assert local.ping_barrier() == b""
        p.send(
            b"".join(pub(subject, x) for x in payloads[:50])
            + pub(other, payloads[0])
            + b"".join(pub(subject, x) for x in payloads[50:100])
            + pub(sentinel, b"!")
        )
        assert received(sub) == [("1", x) for x in payloads[:100]]
        assert received(local) == (
            [("4", x) for x in payloads[:50]] + [("5", payloads[0])]
            + [("4", x) for x in payloads[50:100]]
        )  # fmt: skip
        # A queue group and an UNSUB max next to them: message by message, as runs.
        sub.send(f"SUB {subject} q 2\r\nSUB {subject} 3\r\nUNSUB 3 10\r\n".encode())
        assert sub.ping_barrier() == b""
        p.send(blocks + pub(sentinel, b"!"))
        by_sid: dict[str, list[bytes]] = {}
        for sid, payload in received(sub):
            by_sid.setdefault(sid, []).append(payload)
        assert by_sid == {"1": payloads, "2": payloads, "3": payloads[:10]}
        assert received(local) == [("4", x) for x in payloads]


def test_pubsub_empty_payload(broker: Broker) -> None:
    sub, p = two_raw(broker)
    with sub, p:
        subject = unique()
        sub.send(f"SUB {subject} 1\r\n".encode())
        assert sub.ping_barrier() == b""
        p.send(f"PUB {subject} 0\r\n\r\n".encode())
        assert sub.read_msg().raw == f"MSG {subject} 1 0\r\n\r\n".encode()


def test_pubsub_duplicate_sid_keeps_first_subscription(broker: Broker) -> None:
    with raw_connect(broker) as c:
        a, b = unique(), unique()
        c.handshake()
        c.send(f"SUB {a} 1\r\nSUB {b} 1\r\n".encode() + pub(b, b"x") + pub(a, b"y"))
        assert c.ping_barrier() == f"MSG {a} 1 1\r\ny\r\n".encode()


# -- UNSUB ------------------------------------------------------------------------------


def test_pubsub_unsub_max_local(broker: Broker) -> None:
    with raw_connect(broker) as c:
        f = unique()
        c.handshake()
        c.send(f"SUB {f} 1\r\nUNSUB 1 2\r\n".encode())
        c.send(pub(f, b"a"))
        c.expect(f"MSG {f} 1 1\r\na\r\n".encode())
        c.send(pub(f, b"b"))
        c.expect(f"MSG {f} 1 1\r\nb\r\n".encode())
        c.send(pub(f, b"c"))
        assert c.ping_barrier() == b""


def test_pubsub_unsub_max_cross_shard(broker: Broker) -> None:
    sub, p = two_raw(broker)
    with sub, p:
        f = unique()
        sentinel = unique("end")
        sub.send(f"SUB {f} 1\r\nUNSUB 1 2\r\nSUB {sentinel} 2\r\n".encode())
        assert sub.ping_barrier() == b""
        p.send(pub(f, b"a") + pub(f, b"b") + pub(f, b"c") + pub(f, b"d") + pub(sentinel, b"!"))
        assert [m.payload for m in read_until_sentinel(sub, sentinel)] == [b"a", b"b"]
        # The subscription is gone everywhere afterwards, too.
        p.send(pub(f, b"e") + pub(sentinel, b"!"))
        assert read_until_sentinel(sub, sentinel) == []


def test_pubsub_unsub_max_already_reached_unsubscribes_now(broker: Broker) -> None:
    with raw_connect(broker) as c:
        f = unique()
        c.handshake()
        c.send(f"SUB {f} 1\r\n".encode() + pub(f, b"a") + pub(f, b"b"))
        assert c.ping_barrier() == f"MSG {f} 1 1\r\na\r\nMSG {f} 1 1\r\nb\r\n".encode()
        c.send(b"UNSUB 1 2\r\n" + pub(f, b"c"))
        assert c.ping_barrier() == b""


def test_pubsub_unsub_stops_cross_shard_delivery(broker: Broker) -> None:
    sub, p = two_raw(broker)
    with sub, p:
        f = unique()
        sentinel = unique("end")
        sub.send(f"SUB {f} 1\r\nSUB {sentinel} 2\r\n".encode())
        assert sub.ping_barrier() == b""
        p.send(pub(f, b"before") + pub(sentinel, b"!"))
        assert [m.payload for m in read_until_sentinel(sub, sentinel)] == [b"before"]
        sub.send(b"UNSUB 1\r\n")
        assert sub.ping_barrier() == b""
        p.send(pub(f, b"after") + pub(sentinel, b"!"))
        assert read_until_sentinel(sub, sentinel) == []


def test_pubsub_unsub_unknown_sid_is_fine(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        c.send(b"UNSUB 12345\r\nUNSUB 777 3\r\n")
        assert c.ping_barrier() == b""
        c.send(b'CONNECT {"verbose":true}\r\nUNSUB 4242\r\n')
        assert c.ping_barrier() == b"+OK\r\n+OK\r\n"


# -- echo -------------------------------------------------------------------------------


def test_pubsub_echo_false_raw(broker: Broker) -> None:
    me = raw_connect_on_shard(broker, 1)
    other = raw_connect_on_shard(broker, 2)
    with me, other:
        f = unique()
        sentinel = unique("end")
        me.handshake(echo=False, protocol=1)
        other.handshake()
        me.send(f"SUB {f} 1\r\nSUB {sentinel} 2\r\n".encode())
        assert me.ping_barrier() == b""
        me.send(pub(f, b"own"))
        assert me.ping_barrier() == b""  # own message not delivered back
        other.send(pub(f, b"other") + pub(sentinel, b"!"))
        assert [m.payload for m in read_until_sentinel(me, sentinel)] == [b"other"]


async def test_pubsub_echo_false_nats_py(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        me = await clients.on_shard(1, no_echo=True)
        other = await clients.on_shard(2)
        f = unique()
        got: list[bytes] = []
        sub = await me.subscribe(f)
        watcher = await other.subscribe(f)
        await barrier(me)
        await barrier(other)
        await me.publish(f, b"own")
        await other.publish(f, b"other")
        # `other` sees both (echo on for it), `me` only the other's.
        seen = {(await watcher.next_msg(timeout=5)).data for _ in range(2)}
        assert seen == {b"own", b"other"}
        got.append((await sub.next_msg(timeout=5)).data)
        assert got == [b"other"]
        await barrier(me)
        assert sub.pending_msgs == 0


# -- pedantic ---------------------------------------------------------------------------


def test_pubsub_pedantic_invalid_publish_subject_still_delivered(broker: Broker) -> None:
    c = raw_connect_on_shard(broker, 1)
    remote = raw_connect_on_shard(broker, 2)
    with c, remote:
        t = unique()
        sentinel = unique("end")
        c.handshake(pedantic=True)
        remote.handshake()
        remote.send(f"SUB {t}.* 3\r\nSUB {sentinel} 4\r\n".encode())
        assert remote.ping_barrier() == b""
        c.send(f"SUB {t}.* 1\r\n".encode())
        c.send(pub(f"{t}.*", b"hi"))
        c.expect(err_line("Invalid Publish Subject") + f"MSG {t}.* 1 2\r\nhi\r\n".encode())
        c.send(pub(f"{t}..bar", b"hi"))
        c.expect(err_line("Invalid Publish Subject"))
        assert c.ping_barrier() == b""  # still open
        c.send(pub(sentinel, b"!"))
        assert [(m.subject, m.payload) for m in read_until_sentinel(remote, sentinel)] == [
            (f"{t}.*", b"hi")
        ]
