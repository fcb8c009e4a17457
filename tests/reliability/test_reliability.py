"""The process tree under failure: a worker killed mid-stream, the supervisor killed,
a clean SIGTERM (ARCHITECTURE.md "The mesh" and "One server to the outside").

Killing a worker only makes sense for shardbroker; the supervisor-kill and SIGTERM
tests also run against nats-server (one process, no workers), which validates them.
"""

from __future__ import annotations

import asyncio
import os
import signal

import nats.errors
import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    is_shardbroker_target,
    port_is_free,
    raw_connect_on_shard,
    remove_shm_entries,
    unique,
    workers_gone,
)
from tests.helpers.wait import async_check_for, check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

shardbroker_only = pytest.mark.skipif(
    not is_shardbroker_target(),
    reason="nats-server is a single process: there is no worker to kill or restart",
)

RESTART_TIMEOUT = 20.0
COUNT = 20_000


@shardbroker_only
async def test_reliability_kill_worker_survivors_lose_nothing(broker: Broker) -> None:
    survivor, victim = 1, 2
    victim_proc = broker.workers[victim]
    async with NatsClients(broker) as clients:
        pub_nc = await clients.on_shard(survivor)
        sub_nc = await clients.on_shard(survivor)
        victim_nc = await clients.on_shard(victim)
        assert_different_shards(broker, sub_nc.client_id, victim_nc.client_id)
        subject = unique("rel.")
        svc = unique("svc.")

        received: list[int] = []
        all_in = asyncio.Event()

        async def on_msg(msg) -> None:
            received.append(int(msg.data))
            if len(received) == COUNT:
                all_in.set()

        async def respond(msg) -> None:
            await msg.respond(b"from the victim")

        await sub_nc.subscribe(subject, cb=on_msg, pending_msgs_limit=COUNT * 2)
        # Interest on the victim too, so the ring towards it is busy when it dies.
        await victim_nc.subscribe(subject, pending_msgs_limit=COUNT * 2)
        await victim_nc.subscribe(svc, cb=respond)
        await barrier(sub_nc)
        await barrier(victim_nc)
        reply = await pub_nc.request(svc, b"?", timeout=5)
        assert reply.data == b"from the victim"

        for i in range(COUNT):
            await pub_nc.publish(subject, str(i).encode())
            if i % 1000 == 999:
                await barrier(pub_nc)
            if i == COUNT // 4:
                os.kill(victim_proc.pid, signal.SIGKILL)
        await barrier(pub_nc)
        await asyncio.wait_for(all_in.wait(), timeout=30)
        assert received == list(range(COUNT)), "survivors lost or reordered messages"

        # The supervisor restarts the worker under the same shard id, with a new PID.
        def restarted() -> int:
            current = broker.refresh_workers()
            assert victim in current, f"shard {victim} not running yet: {current}"
            assert current[victim].pid != victim_proc.pid, "old worker still listed"
            return current[victim].pid

        new_pid = await async_check_for(RESTART_TIMEOUT, 0.1, restarted)
        assert new_pid != victim_proc.pid

        # The dead worker's subscriptions no longer attract messages.
        async def no_responders() -> bool:
            try:
                await pub_nc.request(svc, b"?", timeout=1)
            except nats.errors.NoRespondersError:
                return True
            except nats.errors.TimeoutError:
                raise AssertionError("request timed out instead of 503") from None
            raise AssertionError("the killed worker's responder still answers")

        await async_check_for(RESTART_TIMEOUT, 0.1, no_responders)

        # The restarted worker serves new connections (once it listens again), across
        # shards, with new client ids.
        fresh = await async_check_for(
            RESTART_TIMEOUT, 0.1, lambda: clients.on_shard(victim, tries=20)
        )
        assert fresh.client_id != victim_nc.client_id
        again = unique("rel.")
        sub = await fresh.subscribe(again)
        await barrier(fresh)
        await pub_nc.publish(again, b"after restart")
        assert (await sub.next_msg(timeout=5)).data == b"after restart"
        assert pub_nc.is_connected and sub_nc.is_connected

    # A crash along the way does not spoil a clean shutdown.
    assert broker.stop() == 0


@shardbroker_only
def test_reliability_killed_worker_clients_are_disconnected(broker: Broker) -> None:
    victim_proc = broker.workers[2]
    on_victim = raw_connect_on_shard(broker, 2)
    on_survivor = raw_connect_on_shard(broker, 1)
    with on_victim, on_survivor:
        on_victim.handshake()
        on_survivor.handshake()
        os.kill(victim_proc.pid, signal.SIGKILL)
        on_victim.expect_closed(timeout=10)
        assert on_survivor.ping_barrier() == b""

        def restarted() -> bool:
            current = broker.refresh_workers()
            return 2 in current and current[2].pid != victim_proc.pid

        check_for(RESTART_TIMEOUT, 0.1, restarted)
        assert on_survivor.ping_barrier() == b""
        # Once the new worker listens, connections land on it and reach the survivor.
        back = check_for(RESTART_TIMEOUT, 0.1, lambda: raw_connect_on_shard(broker, 2, tries=20))
        with back:
            back.handshake()
            subject = unique()
            back.send(f"SUB {subject} 1\r\n".encode())
            assert back.ping_barrier() == b""
            on_survivor.send(f"PUB {subject} 4\r\nback\r\n".encode())
            assert back.read_msg().payload == b"back"


def test_reliability_kill_supervisor_takes_the_tree_down(broker: Broker) -> None:
    workers = list(broker.workers.values())
    clients = [raw_connect_on_shard(broker, shard) for shard in broker.shard_ids]
    try:
        for c in clients:
            c.handshake()
        os.kill(broker.pid, signal.SIGKILL)
        broker.proc.wait(timeout=10)
        # Parent-death signal: no worker outlives the supervisor or keeps the port.
        check_for(10, 0.05, lambda: workers_gone(workers))
        for c in clients:
            c.expect_closed(timeout=10)
            c.close()  # else the server side lingers in FIN_WAIT2 and holds the port
        check_for(10, 0.05, lambda: port_is_free(broker.port))
    finally:
        for c in clients:
            c.close()
        # A SIGKILLed supervisor cannot unlink its segments; the next start on the port
        # would, but this test must not leave them behind.
        if broker.is_shardbroker:
            remove_shm_entries(broker.port)


def test_reliability_sigterm_stops_cleanly(broker: Broker) -> None:
    workers = list(broker.workers.values())
    clients = [raw_connect_on_shard(broker, shard) for shard in broker.shard_ids]
    try:
        for c in clients:
            c.handshake()
        assert broker.ports_file.exists()
        assert broker.stop(signal.SIGTERM) == 0
        assert not broker.ports_file.exists(), "ports file left behind"
        assert workers_gone(workers)
        for c in clients:
            c.expect_closed(timeout=10)
            c.close()  # else the server side lingers in FIN_WAIT2 and holds the port
        check_for(10, 0.05, lambda: port_is_free(broker.port))
    finally:
        for c in clients:
            c.close()
