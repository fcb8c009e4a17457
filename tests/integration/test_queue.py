"""Queue groups across workers: exactly one delivery per group per message broker-wide,
members on every worker get some, plain subscribers and other groups get their own copy
(protocol.md §14, ARCHITECTURE.md "Routing a message" step 4)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COUNT = 2000


def pub(subject: str, payload: bytes) -> bytes:
    return f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n"


def read_payloads_until(c: WireClient, sentinel: str) -> list[tuple[str, int]]:
    """(sid, seq) of every message before the sentinel."""
    got = []
    while True:
        msg = c.read_msg()
        if msg.subject == sentinel:
            return got
        got.append((msg.sid, int(msg.payload)))


@pytest.mark.parametrize("pub_shard", [1, 2])
def test_queue_exactly_once_across_shards(broker: Broker, pub_shard: int) -> None:
    subject = unique()
    sentinel = unique("end")
    # Group "workers": one member per shard; group "other": two members per shard;
    # one plain subscriber per shard.
    layout = [
        ("workers", 1),
        ("workers", 2),
        ("other", 1),
        ("other", 1),
        ("other", 2),
        ("other", 2),
        (None, 1),
        (None, 2),
    ]
    clients: list[tuple[str | None, int, WireClient]] = []
    try:
        for queue, shard in layout:
            c = raw_connect_on_shard(broker, shard)
            clients.append((queue, shard, c))
            c.handshake()
            q = f" {queue}" if queue else ""
            c.send(f"SUB {subject}{q} 1\r\nSUB {sentinel} 2\r\n".encode())
            assert c.ping_barrier() == b""
        p = raw_connect_on_shard(broker, pub_shard)
        clients.append(("publisher", pub_shard, p))
        p.handshake()
        p.send(b"".join(pub(subject, str(i).encode()) for i in range(COUNT)) + pub(sentinel, b""))
        assert p.ping_barrier() == b""

        per_group: dict[str, Counter[int]] = {"workers": Counter(), "other": Counter()}
        per_member_shard: dict[str, Counter[int]] = {"workers": Counter(), "other": Counter()}
        for queue, shard, c in clients[:-1]:
            got = read_payloads_until(c, sentinel)
            seqs = [seq for _, seq in got]
            assert {sid for sid, _ in got} <= {"1"}
            if queue is None:
                assert seqs == list(range(COUNT)), f"plain subscriber on shard {shard}"
            else:
                assert seqs == sorted(seqs), "per-publisher order within a member"
                per_group[queue].update(seqs)
                per_member_shard[queue][shard] += len(seqs)
            assert c.ping_barrier() == b""
        for queue, counter in per_group.items():
            assert set(counter) == set(range(COUNT)), f"group {queue} lost messages"
            dups = [seq for seq, n in counter.items() if n > 1]
            assert not dups, f"group {queue} got duplicates: {dups[:10]}"
            # Members on both workers get a fair share (loose bound, >= 10%).
            for shard in broker.shard_ids:
                assert per_member_shard[queue][shard] >= COUNT // 10, (
                    queue,
                    dict(per_member_shard[queue]),
                )
    finally:
        for _, _, c in clients:
            c.close()


def test_queue_member_unsubscribe_moves_everything_to_other_shard(broker: Broker) -> None:
    subject = unique()
    sentinel = unique("end")
    m1 = raw_connect_on_shard(broker, 1)
    m2 = raw_connect_on_shard(broker, 2)
    p = raw_connect_on_shard(broker, 1)
    with m1, m2, p:
        assert_different_shards(broker, m1.client_id, m2.client_id)
        for c in (m1, m2, p):
            c.handshake()
        for c in (m1, m2):
            c.send(f"SUB {subject} g 1\r\nSUB {sentinel} 2\r\n".encode())
            assert c.ping_barrier() == b""
        m2.send(b"UNSUB 1\r\n")
        assert m2.ping_barrier() == b""
        m1.send(b"UNSUB 1\r\n")
        m1.send(f"SUB {subject} g 3\r\n".encode())  # rejoin; m2's membership is gone
        assert m1.ping_barrier() == b""
        p.send(b"".join(pub(subject, str(i).encode()) for i in range(200)) + pub(sentinel, b""))
        assert [seq for _, seq in read_payloads_until(m1, sentinel)] == list(range(200))
        assert read_payloads_until(m2, sentinel) == []


def test_queue_group_names_are_per_name(broker: Broker) -> None:
    # Same queue name on different subjects that overlap form one group for a message
    # matching both (protocol.md §14).
    t = unique()
    sentinel = unique("end")
    a = raw_connect_on_shard(broker, 1)
    b = raw_connect_on_shard(broker, 2)
    p = raw_connect_on_shard(broker, 2)
    with a, b, p:
        for c in (a, b, p):
            c.handshake()
        a.send(f"SUB {t}.* g 1\r\nSUB {sentinel} 2\r\n".encode())
        b.send(f"SUB {t}.> g 1\r\nSUB {sentinel} 2\r\n".encode())
        assert a.ping_barrier() == b""
        assert b.ping_barrier() == b""
        p.send(b"".join(pub(f"{t}.x", str(i).encode()) for i in range(400)) + pub(sentinel, b""))
        got = read_payloads_until(a, sentinel) + read_payloads_until(b, sentinel)
        assert sorted(seq for _, seq in got) == list(range(400))


async def test_queue_nats_py_workers_on_both_shards(broker: Broker) -> None:
    async with NatsClients(broker) as clients:
        subject = unique()
        handled: Counter[int] = Counter()
        counts = {}
        for shard in broker.shard_ids:
            nc = await clients.on_shard(shard)
            counts[shard] = 0

            async def handler(msg, shard: int = shard) -> None:
                counts[shard] += 1
                handled[int(msg.data)] += 1
                await msg.respond(msg.data)

            await nc.subscribe(subject, queue="svc", cb=handler)
            await barrier(nc)
        requester = await clients.on_shard(1)
        replies = await asyncio.gather(
            *(requester.request(subject, str(i).encode(), timeout=5) for i in range(300))
        )
        assert [int(r.data) for r in replies] == list(range(300))
        assert set(handled) == set(range(300))
        assert sum(handled.values()) == 300, "a request reached two group members"
        assert all(n > 0 for n in counts.values()), counts
