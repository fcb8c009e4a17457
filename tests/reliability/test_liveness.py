"""Worker liveness: a worker whose event loop stops (SIGSTOP) is found by its missing
heartbeat, killed and replaced, while the clients of the other workers carry on.

nats-server is one process with no worker to stop: shardbroker only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    ShardProbes,
    barrier,
    is_shardbroker_target,
    unique,
)
from tests.helpers.wait import async_check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not is_shardbroker_target(), reason="shardbroker has worker processes"),
]

# worker_heartbeat_timeout of the broker under test: short, but well above the tick
# (~100 ms) so that a healthy worker on a loaded machine is never taken for a stuck one.
TIMEOUT = 2.0
RESTART_TIMEOUT = 20.0


async def test_liveness_stopped_worker_is_killed_and_replaced(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    conf = tmp_path / "liveness.conf"
    conf.write_text(f'worker_heartbeat_timeout: "{TIMEOUT:g}s"\n')
    broker = broker_factory(workers=2, extra_args=["-c", str(conf)])
    survivor, victim = 1, 2
    victim_proc = broker.workers[victim]
    async with NatsClients(broker) as clients:
        pub_nc = await clients.on_shard(survivor)
        sub_nc = await clients.on_shard(survivor)
        victim_nc = await clients.on_shard(victim)
        subject = unique("live.")
        sub = await sub_nc.subscribe(subject)
        await barrier(sub_nc)

        os.kill(victim_proc.pid, signal.SIGSTOP)
        try:
            # While the victim is frozen, traffic between the survivor's clients flows.
            for i in range(100):
                await pub_nc.publish(subject, str(i).encode())
            await barrier(pub_nc)
            got = [int((await sub.next_msg(timeout=5)).data) for _ in range(100)]
            assert got == list(range(100))

            # Found stuck, killed (a stopped process still dies of SIGKILL)...
            def victim_gone() -> bool:
                try:
                    return victim_proc.status() == psutil.STATUS_ZOMBIE
                except psutil.NoSuchProcess:
                    return True

            await async_check_for(RESTART_TIMEOUT, 0.05, victim_gone)
        finally:
            # Never leave a stopped process behind, whatever failed.
            with contextlib.suppress(psutil.NoSuchProcess):
                victim_proc.send_signal(signal.SIGCONT)
        # Judged on its silence, never before the timeout ran out.
        stuck = rf"shard {victim} \(pid {victim_proc.pid}\) is stuck: no heartbeat for ([\d.]+)s"
        silences = re.findall(stuck, broker.log_text())
        assert silences, broker.log_text()
        assert all(float(seconds) >= TIMEOUT for seconds in silences), silences

        # ... and replaced under the same shard id.
        def restarted() -> int:
            current = broker.refresh_workers()
            assert victim in current, f"shard {victim} not running yet: {current}"
            assert current[victim].pid != victim_proc.pid, "old worker still listed"
            return current[victim].pid

        await async_check_for(RESTART_TIMEOUT, 0.1, restarted)
        await async_check_for(10, 0.05, lambda: victim_nc.is_closed)

        # The survivor's clients never noticed; the broker serves on every worker again.
        assert pub_nc.is_connected and sub_nc.is_connected
        await pub_nc.publish(subject, b"after")
        await barrier(pub_nc)
        assert (await sub.next_msg(timeout=5)).data == b"after"

    async def probes_pass() -> None:
        def check() -> None:
            with ShardProbes(broker) as probes:
                probes.check()

        await asyncio.get_running_loop().run_in_executor(None, check)

    await async_check_for(RESTART_TIMEOUT, 0.2, probes_pass)
    assert broker.proc.poll() is None


def test_liveness_stuck_worker_does_not_hold_up_shutdown(
    broker_factory: Callable[..., Broker],
) -> None:
    """SIGTERM with a worker whose loop is stopped: the others exit, the stuck one is
    killed after the grace period, and the broker exits cleanly instead of waiting."""
    broker = broker_factory(workers=2)
    victim = broker.workers[2]
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        assert broker.stop() == 0, broker.log_text()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGCONT)
    assert "shard 2 did not stop in time; killing it" in broker.log_text()
