"""The broker's named shared memory (the mesh segment, the shard table, the account
connection counts and the connection semaphore, all named after the port): removed on a
clean stop, and replaced when a killed run left it behind (shardbroker/mesh/layout.py,
shardbroker/mesh/stats.py, shardbroker/mesh/account_table.py).

shardbroker only: nats-server uses no shared memory.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers.broker import (
    SHM_DIR,
    expected_shm_entries,
    free_port_without_shm,
    is_shardbroker_target,
    port_is_free,
    raw_connect_on_shard,
    remove_shm_entries,
    run_broker,
    shm_entries,
    unique,
    workers_gone,
)
from tests.helpers.wait import check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="nats-server uses no shared memory segments"
    ),
]

GONE_TIMEOUT = 10.0


def cross_shard_pubsub_works(broker) -> None:
    sub = raw_connect_on_shard(broker, 2)
    pub = raw_connect_on_shard(broker, 1)
    with sub, pub:
        sub.handshake()
        pub.handshake()
        subject = unique("shm.")
        sub.send(f"SUB {subject} 1\r\n".encode())
        assert sub.ping_barrier() == b""
        pub.send(f"PUB {subject} 5\r\nhello\r\n".encode())
        assert pub.ping_barrier() == b""
        msg = sub.read_msg()
        assert (msg.subject, msg.payload) == (subject, b"hello")


def inodes(port: int) -> dict[str, int]:
    return {name: os.stat(SHM_DIR / name).st_ino for name in shm_entries(port)}


def test_reliability_sigterm_removes_shared_memory(tmp_path: Path) -> None:
    port = None
    try:
        with run_broker(workers=2, tmp_dir=tmp_path) as b:
            port = b.port
            assert shm_entries(port) == expected_shm_entries(port)
            cross_shard_pubsub_works(b)
            assert b.stop(signal.SIGTERM) == 0
            assert shm_entries(port) == [], "a clean stop left shared memory behind"
    finally:
        if port is not None:
            remove_shm_entries(port)


def test_reliability_stale_segments_of_killed_run_are_replaced(tmp_path: Path) -> None:
    port = free_port_without_shm()
    try:
        with run_broker(workers=2, tmp_dir=tmp_path, port=port) as killed:
            assert killed.port == port
            workers = list(killed.workers.values())
            assert len(workers) == 2
            # Traffic first, so the stale rings hold non-zero counters.
            cross_shard_pubsub_works(killed)
            os.kill(killed.pid, signal.SIGKILL)
            killed.proc.wait(timeout=GONE_TIMEOUT)
            check_for(GONE_TIMEOUT, 0.05, lambda: workers_gone(workers))
            # Nobody was left to clean up: the names stay.
            assert shm_entries(port) == expected_shm_entries(port)
            stale = inodes(port)
        check_for(GONE_TIMEOUT, 0.05, lambda: port_is_free(port))

        with run_broker(workers=2, tmp_dir=tmp_path, port=port) as fresh:
            assert fresh.port == port
            assert shm_entries(port) == expected_shm_entries(port)
            replaced = inodes(port)
            kept = [name for name in stale if stale[name] == replaced[name]]
            assert kept == [], f"stale entries reused instead of replaced: {kept}"
            cross_shard_pubsub_works(fresh)
            assert fresh.stop(signal.SIGTERM) == 0
            assert shm_entries(port) == [], "a clean stop left shared memory behind"
    finally:
        remove_shm_entries(port)
