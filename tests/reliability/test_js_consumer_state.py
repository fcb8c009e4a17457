"""Durable consumer state under failure (issue 6: "consumer state intact after kill -9 of
the storage process", jetstream-semantics.md §6: delivered pair, ack floor, pending and
redelivered maps survive restarts): a restart of the whole broker on the same store
directory (both targets), and kill -9 of the storage process (shardbroker only)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig

from tests.helpers.broker import Broker, NatsClients, is_shardbroker_target, run_broker, unique
from tests.helpers.wait import async_check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RESTART_TIMEOUT = 20.0
ACK_WAIT = 1.0


def state_of(info) -> dict:
    return {
        "delivered": (info.delivered.consumer_seq, info.delivered.stream_seq),
        "ack_floor": (info.ack_floor.consumer_seq, info.ack_floor.stream_seq),
        "num_ack_pending": info.num_ack_pending,
        "num_redelivered": info.num_redelivered,
        "num_pending": info.num_pending,
    }


async def make_state(js, stream: str) -> dict:
    """10 messages; consumer `dur` got 1..6, acked 1, 2, 3 and 5, NAK'd nothing, and 4
    and 6 are pending. A second consumer `all` acked everything it got (1..3)."""
    await js.add_stream(name=stream, subjects=[f"{stream}.*"])
    for i in range(1, 11):
        await js.publish(f"{stream}.x", f"m{i}".encode())
    psub = await js.pull_subscribe(
        f"{stream}.x", durable="dur", stream=stream, config=ConsumerConfig(ack_wait=ACK_WAIT)
    )
    msgs = await psub.fetch(6, timeout=2)
    assert [m.metadata.sequence.stream for m in msgs] == [1, 2, 3, 4, 5, 6]
    for i in (0, 1, 2, 4):
        await msgs[i].ack_sync()
    other = await js.pull_subscribe(f"{stream}.x", durable="all", stream=stream)
    for m in await other.fetch(3, timeout=2):
        await m.ack_sync()
    info = await js.consumer_info(stream, "dur")
    state = state_of(info)
    assert state == {
        "delivered": (6, 6),
        "ack_floor": (3, 3),
        "num_ack_pending": 2,
        "num_redelivered": 0,
        "num_pending": 4,
    }
    return state


async def check_state_and_resume(js, stream: str, before: dict) -> None:
    info = await js.consumer_info(stream, "dur")
    assert state_of(info) == before
    assert info.config.ack_wait == ACK_WAIT
    other = await js.consumer_info(stream, "all")
    assert state_of(other)["ack_floor"] == (3, 3) and other.num_pending == 7
    # The consumer carries on: new messages 7..10, then 4 and 6 again once their ack wait
    # has run out, each as a second delivery; nothing acked comes back.
    psub = await js.pull_subscribe_bind("dur", stream=stream)
    seen: dict[int, int] = {}

    async def collect() -> bool:
        try:
            msgs = await psub.fetch(10, timeout=0.5)
        except TimeoutError:
            msgs = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            assert seq not in seen, f"seq {seq} delivered twice"
            seen[seq] = m.metadata.num_delivered
            await m.ack_sync()
        return set(seen) >= {4, 6, 7, 8, 9, 10}

    await async_check_for(10, 0.01, collect)
    assert seen == {7: 1, 8: 1, 9: 1, 10: 1, 4: 2, 6: 2}
    info = await js.consumer_info(stream, "dur")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (12, 10)


async def test_js_consumer_state_survives_broker_restart(tmp_path: Path) -> None:
    store = tmp_path / "store"
    stream = unique("CR").upper()
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(1)).jetstream()
            before = await make_state(js, stream)
            created = (await js.consumer_info(stream, "dur")).created
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(2)).jetstream()
            assert (await js.consumer_info(stream, "dur")).created == created
            await check_state_and_resume(js, stream, before)


@pytest.mark.skipif(
    not is_shardbroker_target(), reason="nats-server has no separate storage process"
)
async def test_js_consumer_state_survives_storage_kill(js_broker: Broker) -> None:
    storage = js_broker.storage_process()
    assert storage is not None
    stream = unique("CK").upper()
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        before = await make_state(js, stream)
        os.kill(storage.pid, signal.SIGKILL)

        async def restarted() -> bool:
            current = js_broker.storage_process()
            return current is not None and current.pid != storage.pid

        await async_check_for(RESTART_TIMEOUT, 0.1, restarted)
        js2 = (await clients.on_shard(2)).jetstream(timeout=2)

        async def serving() -> bool:
            try:
                await js2.consumer_info(stream, "dur")
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.ServiceUnavailableError,
            ):
                return False
            return True

        await async_check_for(RESTART_TIMEOUT, 0.1, serving)
        await check_state_and_resume(js2, stream, before)
