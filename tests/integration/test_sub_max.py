"""Subscription limits: UNSUB <sid> <max> as nats-server reads it, and the atomic
auto-unsubscribe extension (`SUB <subject> [queue] <sid> max=<n>` for clients that send
`"sub_max": true` in CONNECT; docs/sub-max.md).

Subscribers sit on worker 1 and publishers on worker 2, so every limit is counted for
messages that crossed the mesh. Negative checks use a sentinel: per-publisher order means
that once a publisher's sentinel has arrived, everything it published before has too.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shardbroker.contrib import natspy
from tests.helpers.broker import (
    HOST,
    Broker,
    NatsClients,
    ShardProbes,
    assert_different_shards,
    barrier,
    free_port,
    raw_connect_on_shard,
    run_broker,
    unique,
)
from tests.helpers.differential import on_both
from tests.helpers.wait import async_check_for, check_for
from tests.helpers.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LIMIT_ERROR = "Invalid Subscription Limit"


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return f"PUB {subject}{mid} {len(payload)}\r\n".encode() + payload + b"\r\n"


def two_raw(broker: Broker, **sub_connect: object) -> tuple[WireClient, WireClient]:
    """A subscriber on worker 1 (CONNECT fields `sub_connect`) and a publisher on 2."""
    sub = raw_connect_on_shard(broker, 1)
    try:
        publisher = raw_connect_on_shard(broker, 2)
    except BaseException:
        sub.close()
        raise
    assert_different_shards(broker, sub.client_id, publisher.client_id)
    sub.handshake(**sub_connect)
    publisher.handshake()
    return sub, publisher


def has_responders(broker: Broker, shard: int, subject: str) -> bool:
    """Whether a request on `subject` from worker `shard` reaches any subscription: a
    client that wants "no responders" answers gets the 503 before its PONG when the
    server (that worker) knows of no interest."""
    with raw_connect_on_shard(broker, shard) as c:
        c.handshake(headers=True, no_responders=True)
        inbox = unique("_INBOX.")
        c.send(f"SUB {inbox} 1\r\n".encode() + pub(subject, b"?", reply=inbox))
        return b"NATS/1.0 503" not in c.ping_barrier()


def interest_gone(broker: Broker, subject: str) -> bool:
    return not any(has_responders(broker, shard, subject) for shard in broker.shard_ids)


def read_until(c: WireClient, sentinel: str) -> list[tuple[str, str, bytes]]:
    """(subject, sid, payload) of every message before the sentinel's."""
    got = []
    while True:
        msg = c.read_msg()
        if msg.subject == sentinel:
            return got
        got.append((msg.subject, msg.sid, msg.payload))


# -- UNSUB <sid> <max> -------------------------------------------------------------------


async def test_sub_max_unsub_max_beyond_nine_digits_as_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-server reads UNSUB's max as a size (1 to 9 digits): a longer one is no
    number, and unsubscribes at once like 0; the connection stays."""

    async def scenario(broker: Broker) -> list[tuple[str, str, bytes]]:
        sub, publisher = two_raw(broker)
        with sub, publisher:
            sentinel = unique("end")
            sub.send(
                f"SUB nine 1\r\nSUB ten 2\r\nSUB huge 3\r\nSUB {sentinel} 9\r\n"
                "UNSUB 1 999999999\r\nUNSUB 2 1000000000\r\n"
                "UNSUB 3 99999999999999999999999999\r\n".encode()
            )
            assert sub.ping_barrier() == b""
            publisher.send(pub("nine", b"a") + pub("ten", b"b") + pub("huge", b"c"))
            publisher.send(pub(sentinel, b"!"))
            return read_until(sub, sentinel)

    got = await on_both(tmp_path, monkeypatch, "", scenario)
    assert got == [("nine", "1", b"a")]


# -- the extension: negotiation, and clients that do not ask -----------------------------


def test_sub_max_advertised_on_every_worker(broker: Broker) -> None:
    for shard in broker.shard_ids:
        with raw_connect_on_shard(broker, shard) as c:
            assert c.info["sub_max"] is True
            c.handshake(protocol=1)  # the connect-info INFO that follows the PONG too
            assert b'"sub_max":true' in c.received.split(b"PONG\r\n", 1)[1]


async def test_sub_max_old_clients_read_max_tokens_as_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without "sub_max" in CONNECT, `max=` is a queue name or a sid, and one token too
    many closes the connection silently, as ever."""

    async def scenario(broker: Broker) -> tuple[list[tuple[str, str, bytes]], bytes]:
        sub, publisher = two_raw(broker)
        with sub, publisher:
            subject, sentinel = "old", "end"  # fixed: the results are compared
            sub.send(
                f"SUB {subject} max=1 7\r\nSUB {subject} 8 max=1\r\n"
                f"SUB {subject} q max=\r\nSUB {sentinel} 9\r\n".encode()
            )
            assert sub.ping_barrier() == b""
            publisher.send(pub(subject, b"a") + pub(subject, b"b") + pub(sentinel, b"!"))
            got = read_until(sub, sentinel)
            sub.send(f"SUB {subject} 10 max=1 max=2\r\n".encode())
            return sorted(got), sub.expect_closed()

    got, closing = await on_both(tmp_path, monkeypatch, "", scenario)
    assert {sid for _, sid, _ in got} == {"7", "max=1", "max="}
    assert len(got) == 6 and closing == b""


async def test_sub_max_plain_nats_py_sees_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stock nats-py counts `max_msgs` itself and tells the server nothing: every
    message still reaches it, and the interest stays, on both servers."""

    async def scenario(broker: Broker) -> tuple[int, bool]:
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1)
            publisher = await clients.on_shard(2)
            subject, sentinel = unique("plain"), unique("end")
            ends = asyncio.Event()

            async def on_sentinel(msg: Any) -> None:
                ends.set()

            await nc.subscribe(sentinel, cb=on_sentinel)
            await nc.subscribe(subject, max_msgs=2)
            await barrier(nc)
            for i in range(5):
                await publisher.publish(subject, b"%d" % i)
            await publisher.publish(sentinel, b"!")
            await asyncio.wait_for(ends.wait(), 10)
            return nc.stats["in_msgs"], has_responders(broker, 2, subject)

    assert await on_both(tmp_path, monkeypatch, "", scenario) == (6, True)


async def test_sub_max_helper_gets_the_same_limit_from_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nats-py helper takes the extension where it is advertised, and falls back to
    SUB then UNSUB <sid> <n> on nats-server: either way the server stops at the limit
    and forgets the subscription."""

    async def scenario(broker: Broker) -> tuple[int, bool]:
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1, connect=natspy.connect)
            assert nc.sub_max is broker.is_shardbroker
            publisher = await clients.on_shard(2)
            subject, sentinel = unique("helper"), unique("end")
            ends = asyncio.Event()

            async def on_sentinel(msg: Any) -> None:
                ends.set()

            await nc.subscribe(sentinel, cb=on_sentinel)
            await nc.subscribe(subject, queue="workers", max_msgs=3)
            await barrier(nc)
            for i in range(10):
                await publisher.publish(subject, b"%d" % i)
            await publisher.publish(sentinel, b"!")
            await asyncio.wait_for(ends.wait(), 10)
            gone = check_for(10, 0.02, lambda: interest_gone(broker, subject))
            return nc.stats["in_msgs"], gone

    assert await on_both(tmp_path, monkeypatch, "", scenario) == (3 + 1, True)


# -- exact limits ------------------------------------------------------------------------

STORM_PUBLISHERS = 3
# Messages each publisher sends between two flushes, and how far each goes on past the
# moment the subscription reached its limit.
STORM_BATCH = 100
STORM_AFTER = 2000


def subsz(monitor_port: int) -> Any:
    with urllib.request.urlopen(f"http://{HOST}:{monitor_port}/subsz", timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("limit", [1, 1000])
async def test_sub_max_exact_in_a_storm_from_the_other_worker(tmp_path: Path, limit: int) -> None:
    """Publishers on worker 2 flood the subject; a subscription with max=<limit> made on
    worker 1 in the middle of it gets exactly that many messages (counted on the wire,
    not by nats-py), nothing after, and its interest leaves both workers."""
    monitor = free_port()
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=["-m", str(monitor)]) as broker:
        async with NatsClients(broker) as clients:
            subject, sentinel = unique("storm"), unique("end")
            publishers = [await clients.on_shard(2) for _ in range(STORM_PUBLISHERS)]
            nc = await clients.on_shard(1, connect=natspy.connect)
            assert nc.sub_max
            sent = [0] * STORM_PUBLISHERS
            stop = asyncio.Event()

            async def flood(index: int, publisher: Any) -> None:
                while not stop.is_set():
                    for _ in range(STORM_BATCH):
                        await publisher.publish(subject, b"%d" % sent[index])
                        sent[index] += 1
                    await publisher.flush()
                await publisher.publish(sentinel, b"%d" % index)
                await publisher.flush()

            ends: list[bytes] = []
            got: list[bytes] = []

            async def on_sentinel(msg: Any) -> None:
                ends.append(msg.data)

            async def on_msg(msg: Any) -> None:
                got.append(msg.data)

            await nc.subscribe(sentinel, cb=on_sentinel)
            await barrier(nc)
            storm = [asyncio.create_task(flood(i, p)) for i, p in enumerate(publishers)]
            await async_check_for(10, 0.005, lambda: min(sent) >= 5 * STORM_BATCH)
            await nc.subscribe(subject, max_msgs=limit, cb=on_msg)
            await async_check_for(10, 0.005, lambda: len(got) == limit)
            at_limit = list(sent)
            goal = [n + STORM_AFTER for n in at_limit]
            await async_check_for(10, 0.005, lambda: all(map(int.__ge__, sent, goal)))
            stop.set()
            await asyncio.gather(*storm)
            await async_check_for(10, 0.005, lambda: len(ends) == STORM_PUBLISHERS)
            # Every message of every publisher is in (their sentinels followed them):
            # exactly `limit` reached the subscription, and nothing more ever will.
            assert nc.stats["in_msgs"] == limit + STORM_PUBLISHERS
            assert len(got) == limit
            await async_check_for(10, 0.05, lambda: subsz(monitor)["num_subscriptions"] == 1)
            assert check_for(10, 0.02, lambda: interest_gone(broker, subject))


async def test_sub_max_queue_members_take_exactly_their_limits(broker: Broker) -> None:
    """Limited members on both workers and an unlimited one, publishers on both: each
    limited member gets exactly its limit (counted on the wire), and the group still
    gets every message exactly once, also those a worker picked for the other's member
    in flight after it left."""
    async with NatsClients(broker) as clients:
        first = await clients.on_shard(1, connect=natspy.connect)
        second = await clients.on_shard(2, connect=natspy.connect)
        unlimited = await clients.on_shard(1)
        subject = unique("jobs")
        await first.subscribe(subject, queue="workers", max_msgs=100)
        await second.subscribe(subject, queue="workers", max_msgs=50)
        await unlimited.subscribe(subject, queue="workers")
        for nc in (first, second, unlimited):
            await barrier(nc)
        publishers = [await clients.on_shard(2), await clients.on_shard(1)]
        members = (first, second, unlimited)

        def received() -> int:
            return sum(nc.stats["in_msgs"] for nc in members)

        for total in (1000, 1100):
            for i in range(total - received()):
                await publishers[i % 2].publish(subject, b"%d" % i)
            for publisher in publishers:
                await publisher.flush()
            await async_check_for(10, 0.01, lambda total=total: received() == total)
        assert (first.stats["in_msgs"], second.stats["in_msgs"]) == (100, 50)
        assert unlimited.stats["in_msgs"] == 950


def test_sub_max_malformed_extended_subs_get_the_error_and_harm_nothing(broker: Broker) -> None:
    bad = [
        "max=",
        "max=0",
        "max=-1",
        "max=abc",
        "max=1 max=2",
        "max=1 extra",
        "max=1000000000",
        "max=184467440737095516160",
    ]
    with ShardProbes(broker) as probes:
        sub, publisher = two_raw(broker, sub_max=True)
        with sub, publisher:
            good, wrong, sentinel = unique("ok"), unique("bad"), unique("end")
            sub.send(f"SUB {good} 1 max=2\r\nSUB {sentinel} 2\r\n".encode())
            sub.send(b"".join(f"SUB {wrong} 3 {tail}\r\n".encode() for tail in bad))
            sub.send(f"SUB {wrong} max=1 3\r\n".encode())
            for _ in range(len(bad) + 1):
                sub.expect_err(LIMIT_ERROR)
            assert sub.ping_barrier() == b""
            publisher.send(b"".join(pub(s, b"%d" % i) for i in range(3) for s in (good, wrong)))
            publisher.send(pub(sentinel, b"!"))
            assert read_until(sub, sentinel) == [(good, "1", b"0"), (good, "1", b"1")]
            assert sub.is_open()
        probes.check()
