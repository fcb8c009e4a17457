"""Slow consumers: a subscriber that stops reading is cut off (no -ERR) once its pending
bytes pass max_pending, while everybody else keeps every message (protocol.md §15)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest

from tests.helpers.broker import (
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.wire import MSG_RE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MAX_PENDING = 256 * 1024
MAX_PAYLOAD = 64 * 1024
MSG_SIZE = 8 * 1024
BATCH = 16  # 128 KiB per batch: the healthy subscriber never lags by max_pending
# More than the kernel buffers for the stuck socket (about 3 MiB were seen with
# tcp_wmem max 4 MiB and the stuck side's tiny receive buffer) plus max_pending.
TOTAL_BYTES = 12 * 1024 * 1024


@pytest.mark.parametrize("pub_shard", [1, 2])
async def test_slow_consumer_is_cut_and_others_get_everything(
    broker_factory, pub_shard: int
) -> None:
    # nats-server refuses to start with max_payload (default 1 MiB) above max_pending.
    broker = broker_factory(limits={"max_pending": MAX_PENDING, "max_payload": MAX_PAYLOAD})
    subject = unique("sc.")
    count = TOTAL_BYTES // MSG_SIZE
    stuck = raw_connect_on_shard(broker, 1, rcvbuf=4096)
    try:
        stuck.handshake()
        stuck.send(f"SUB {subject} 1\r\n".encode())
        assert stuck.ping_barrier() == b""
        # From here on the stuck client never reads until the end of the test.
        async with NatsClients(broker) as clients:
            healthy = await clients.on_shard(2)
            publisher = await clients.on_shard(pub_shard)
            assert_different_shards(broker, stuck.client_id, healthy.client_id)
            received: list[int] = []
            progress = asyncio.Event()

            async def cb(msg) -> None:
                received.append(int(msg.data[:10]))
                progress.set()

            await healthy.subscribe(
                subject, cb=cb, pending_msgs_limit=count + 10, pending_bytes_limit=TOTAL_BYTES * 2
            )
            await barrier(healthy)
            filler = b"." * (MSG_SIZE - 10)
            for start in range(0, count, BATCH):
                for i in range(start, min(start + BATCH, count)):
                    await publisher.publish(subject, b"%010d" % i + filler)
                target = min(start + BATCH, count)
                while len(received) < target:
                    progress.clear()
                    await asyncio.wait_for(progress.wait(), timeout=10)
            assert received == list(range(count)), "the healthy subscriber lost messages"

            # The publisher keeps working.
            check = await publisher.subscribe(subject + ".after")
            await barrier(publisher)
            await publisher.publish(subject + ".after", b"still here")
            assert (await check.next_msg(timeout=5)).data == b"still here"
            assert publisher.is_connected and healthy.is_connected

        # The stuck client was disconnected without -ERR: draining its socket yields
        # only MSG frames, fewer than published, then EOF.
        leftover = stuck.expect_closed(timeout=30)
        frames = 0
        pos = 0
        while pos < len(leftover):
            m = MSG_RE.match(leftover, pos)
            assert m is not None, f"unexpected bytes at {pos}: {leftover[pos : pos + 80]!r}"
            pos = m.end() + int(m.group("size")) + 2
            frames += 1
        assert b"-ERR" not in stuck.received
        assert frames < count, "the stuck subscriber was never cut off"
    finally:
        stuck.close()
    if not broker.is_shardbroker:
        assert "Slow Consumer Detected" in broker.log_text()


async def test_slow_consumer_write_deadline_cuts_a_stuck_reader(broker_factory) -> None:
    # max_pending is far away: only the write deadline can cut this client.
    broker = broker_factory(limits={"write_deadline": 1, "max_pending": 64 * 1024 * 1024})
    subject = unique("wd.")
    stuck = raw_connect_on_shard(broker, 1, rcvbuf=4096)
    try:
        stuck.handshake()
        stuck.send(f"SUB {subject} 1\r\n".encode())
        assert stuck.ping_barrier() == b""
        async with NatsClients(broker) as clients:
            publisher = await clients.on_shard(2)
            # About 8 MiB: more than the kernel buffers of the stuck socket, far less
            # than max_pending, so the broker holds the rest and the write stays blocked.
            chunk = b"w" * (64 * 1024)
            for _ in range(128):
                await publisher.publish(subject, chunk)
            await barrier(publisher)

            # Reading the stuck socket would unblock the write; watch the interest
            # instead: once the broker cut the client, a request finds no responder.
            async def cut() -> bool:
                try:
                    await publisher.request(subject, b"?", timeout=0.5)
                except nats.errors.NoRespondersError:
                    return True
                except nats.errors.TimeoutError:
                    return False
                return False

            for _ in range(60):
                if await cut():
                    break
            else:
                pytest.fail("the stuck client was not cut after its write deadline")
            assert publisher.is_connected
        stuck.expect_closed(timeout=30)
        assert b"-ERR" not in stuck.received
    finally:
        stuck.close()
    if not broker.is_shardbroker:
        assert "Slow Consumer Detected" in broker.log_text()
