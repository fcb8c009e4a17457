"""JetStream data under failure: the storage process killed (-9) during a publish storm,
and a restart of the whole broker (issue: "restart with the data intact", "kill -9 of
the storage process ... every acknowledged message is present, in order, with no
duplicates and no gap that was acked")."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest

from tests.helpers.broker import Broker, NatsClients, is_shardbroker_target, run_broker, unique
from tests.helpers.wait import async_check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RESTART_TIMEOUT = 20.0


async def test_restart_keeps_streams_and_messages(tmp_path: Path) -> None:
    store = tmp_path / "store"
    stream = unique("R").upper()
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(1)).jetstream()
            await js.add_stream(name=stream, subjects=[f"{stream}.*"], max_msgs_per_subject=5)
            for i in range(50):
                await js.publish(
                    f"{stream}.{i % 3}", str(i).encode(), headers={"Nats-Msg-Id": f"id{i}"}
                )
            await js.delete_msg(stream, 48)
            before = await js.stream_info(stream)
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(2)).jetstream()
            after = await js.stream_info(stream)
            assert after.config == before.config
            assert after.created == before.created
            assert after.state.messages == before.state.messages
            assert (after.state.first_seq, after.state.last_seq) == (
                before.state.first_seq,
                before.state.last_seq,
            )
            assert after.state.num_deleted == before.state.num_deleted
            msg = await js.get_msg(stream, 50)
            assert msg.data == b"49"
            with pytest.raises(nats.js.errors.NotFoundError):
                await js.get_msg(stream, 48)
            # The duplicate window survived the restart.
            dup = await js.publish(f"{stream}.0", b"again", headers={"Nats-Msg-Id": "id49"})
            assert (dup.seq, dup.duplicate) == (50, True)
            ack = await js.publish(f"{stream}.0", b"next")
            assert ack.seq == 51


@pytest.mark.skipif(
    not is_shardbroker_target(), reason="nats-server has no separate storage process"
)
async def test_kill_storage_during_publish_storm(js_broker: Broker) -> None:
    storage = js_broker.storage_process()
    assert storage is not None
    stream = unique("K").upper()
    acked: list[tuple[int, bytes]] = []
    async with NatsClients(js_broker) as clients:
        publishers = [await clients.on_shard(1), await clients.on_shard(2)]
        await publishers[0].jetstream().add_stream(name=stream, subjects=[f"{stream}.*"])
        killed = asyncio.Event()

        async def storm(index: int) -> None:
            js = publishers[index].jetstream()
            i = 0
            while not killed.is_set() or i < 50:
                payload = f"{index}-{i}".encode()
                try:
                    ack = await js.publish(f"{stream}.p{index}", payload, timeout=1)
                except (
                    nats.errors.TimeoutError,
                    nats.errors.NoRespondersError,
                    nats.js.errors.NoStreamResponseError,
                ):
                    if killed.is_set():
                        return
                    continue
                acked.append((ack.seq, payload))
                i += 1
                if i >= 5000:
                    return

        tasks = [asyncio.create_task(storm(i)) for i in range(2)]

        async def enough() -> bool:
            return len(acked) >= 400

        await async_check_for(30, 0.01, enough)
        os.kill(storage.pid, signal.SIGKILL)
        killed.set()
        await asyncio.gather(*tasks)

        async def restarted() -> bool:
            current = js_broker.storage_process()
            return current is not None and current.pid != storage.pid

        await async_check_for(RESTART_TIMEOUT, 0.1, restarted)
        js = publishers[1].jetstream(timeout=2)

        async def serving() -> bool:
            try:
                await js.stream_info(stream)
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.ServiceUnavailableError,
            ):
                return False
            return True

        await async_check_for(RESTART_TIMEOUT, 0.1, serving)
        info = await js.stream_info(stream)
        seqs = [seq for seq, _ in acked]
        assert len(seqs) == len(set(seqs)), "an ack sequence was handed out twice"
        assert info.state.last_seq >= max(seqs)
        # Every acknowledged message is there, under its acked sequence.
        for seq, payload in acked:
            msg = await js.get_msg(stream, seq)
            assert msg.data == payload
        # And stored messages are in publish order per publisher, with no duplicates.
        seen: dict[str, int] = {}
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            who, number = msg.data.decode().split("-")
            assert int(number) > seen.get(who, -1), "out of order or duplicated"
            seen[who] = int(number)
        # The broker keeps working: publishing continues after the restart.
        ack = await js.publish(f"{stream}.p0", b"after")
        assert ack.seq == info.state.last_seq + 1


@pytest.mark.skipif(not is_shardbroker_target(), reason="reads shardbroker's own block files")
async def test_torn_tail_is_recovered_with_a_log_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    stream = unique("T").upper()
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(1)).jetstream()
            await js.add_stream(name=stream, subjects=[f"{stream}.*"])
            for i in range(10):
                await js.publish(f"{stream}.x", f"payload-{i}".encode())
    blocks = sorted((store / "jetstream" / "$G" / "streams" / stream / "msgs").glob("*.blk"))
    assert blocks, "no block files"
    last = blocks[-1]
    # A write torn in the middle of the last record.
    last.write_bytes(last.read_bytes()[:-7])
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True, store_dir=store) as broker:
        async with NatsClients(broker) as clients:
            js = (await clients.on_shard(2)).jetstream()
            info = await js.stream_info(stream)
            assert (info.state.messages, info.state.last_seq) == (9, 9)
            assert info.state.lost is not None and info.state.lost.msgs == [10]
            assert (await js.get_msg(stream, 9)).data == b"payload-8"
            ack = await js.publish(f"{stream}.x", b"after")
            assert ack.seq == 10
        log = broker.log_text()
    assert "truncated" in log and str(last) in log
