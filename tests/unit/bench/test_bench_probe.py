"""`shardbroker bench --server-pid`: the server's processes are named by role from their
command lines, and a probe returns CPU seconds per role between start and stop (here the
test process itself: unit tests start no process)."""

from __future__ import annotations

import os
import time

import pytest

from shardbroker.bench.probe import EXITED, ServerProbe, role_of, role_order


@pytest.mark.parametrize(
    ("cmdline", "name", "root", "role"),
    [
        (["python", "-m", "shardbroker", "serve", "-p", "4222"], "python", True, "supervisor"),
        (["/v/bin/shardbroker", "serve", "--workers", "4"], "shardbroker", True, "supervisor"),
        (["py", "-m", "shardbroker.worker.main", "--shard", "3", "--boot-fd", "9"], "py", False,
         "worker 3"),
        (["py", "-m", "shardbroker.worker.main"], "py", False, "worker"),
        (["py", "-m", "shardbroker.jetstream.main", "--shard", "5"], "py", False, "storage"),
        (["/v/bin/nats-server", "-a", "127.0.0.1"], "nats-server", True, "nats-server"),
        # Only the root of a tree is the supervisor (a `shardbroker serve` child is not).
        (["shardbroker", "serve"], "shardbroker", False, "shardbroker"),
        ([], "", False, "process"),
    ],
)  # fmt: skip
def test_bench_probe_role_of(cmdline: list[str], name: str, root: bool, role: str) -> None:
    assert role_of(cmdline, name, root) == role


def test_bench_probe_roles_in_order() -> None:
    roles = [EXITED, "storage", "worker 10", "nats-server", "worker 2", "supervisor"]
    assert sorted(roles, key=role_order) == [
        "supervisor", "worker 2", "worker 10", "storage", "nats-server", EXITED,
    ]  # fmt: skip


def test_bench_probe_measures_the_cpu_used_between_start_and_stop() -> None:
    probe = ServerProbe(os.getpid())
    t0 = time.process_time()
    probe.start()
    while time.process_time() - t0 < 0.05:  # use some CPU: several 10 ms clock ticks
        sum(range(1000))
    by_role = probe.stop()
    used = time.process_time() - t0
    assert list(by_role) == [probe.root.name()]  # pytest is not a shardbroker tree
    # The same counters as process_time, in clock ticks (10 ms) instead of nanoseconds.
    assert 0 < by_role[probe.root.name()] <= used + 0.02, (used, by_role)
