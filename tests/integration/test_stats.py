"""`shardbroker stats`: attached read-only to a running broker by port or pid file, its
figures match the traffic the test made (shardbroker only: nats-server has no shards)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    barrier,
    free_port_without_shm,
    is_shardbroker_target,
    shardbroker_command,
    unique,
)
from tests.helpers.wait import async_check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not is_shardbroker_target(), reason="shardbroker's own command"),
]

COUNT = 500


def stats(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shardbroker_command("stats", *args),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def stats_json(*args: str) -> dict[str, Any]:
    done = stats("--json", "--interval", "0.2", *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


async def test_stats_figures_match_the_traffic(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    pid_file = tmp_path / "sb.pid"
    broker = broker_factory(workers=2, extra_args=["--pid", str(pid_file)])
    doc = stats_json("-p", str(broker.port))
    assert doc["workers"] == 2
    assert doc["supervisor"]["pid"] == broker.pid
    assert [(s["shard"], s["role"], s["pid"]) for s in doc["shards"]] == [
        (shard, "worker", broker.workers[shard].pid) for shard in (1, 2)
    ]
    assert doc["totals"]["connections"] == 0
    for s in doc["shards"]:
        assert s["rss_bytes"] > 0 and s["cpu_percent"] is not None
        assert 0 <= s["heartbeat_age_ms"] < 5000

    subject = unique("stats.")
    async with NatsClients(broker) as clients:
        pub = await clients.on_shard(1)
        sub1 = await clients.on_shard(1)
        sub2 = await clients.on_shard(2)
        idle = await clients.on_shard(2)
        s1 = await sub1.subscribe(subject)
        s2 = await sub2.subscribe(subject)
        await idle.subscribe(unique("idle."))
        await idle.subscribe(unique("idle."))
        for nc in (sub1, sub2, idle):
            await barrier(nc)
        payload = b"x" * 10
        for _ in range(COUNT):
            await pub.publish(subject, payload)
        await barrier(pub)
        for sub in (s1, s2):
            for _ in range(COUNT):
                await sub.next_msg(timeout=5)

        expected = {
            1: {"connections": 2, "subscriptions": 1, "in_msgs": COUNT, "out_msgs": COUNT},
            2: {"connections": 2, "subscriptions": 3, "in_msgs": 0, "out_msgs": COUNT},
        }

        def figures(doc: dict[str, Any]) -> dict[int, dict[str, int]]:
            return {s["shard"]: {key: s[key] for key in expected[1]} for s in doc["shards"]}

        # Workers copy their counters on their tick: wait for the copy.
        async def settled() -> dict[str, Any]:
            doc = stats_json("-p", str(broker.port))
            assert figures(doc) == expected
            return doc

        doc = await async_check_for(10, 0.1, settled)
        totals = doc["totals"]
        assert totals["in_msgs"] == COUNT and totals["out_msgs"] == 2 * COUNT
        assert totals["in_bytes"] >= COUNT * len(payload)
        assert totals["out_bytes"] >= 2 * COUNT * len(payload)
        assert totals["connections"] == 4 and totals["subscriptions"] == 4
        # connect_on_shard may have opened (and closed) more to land where it wanted.
        assert totals["total_connections"] >= 4

        # The same broker found by its pid file.
        by_file = stats_json("--pid-file", str(pid_file))
        assert by_file["port"] == broker.port
        assert figures(by_file) == expected

    # The table, and --watch redrawing it.
    table = stats("-p", str(broker.port), "--interval", "0.1")
    assert table.returncode == 0, table.stderr
    assert "MSGS IN/s" in table.stdout and "total" in table.stdout
    watched = stats("-p", str(broker.port), "--watch", "--count", "2", "--interval", "0.1")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.count("\x1b[2J") == 2


def test_stats_without_a_broker_says_so(tmp_path: Path) -> None:
    port = free_port_without_shm()
    done = stats("-p", str(port))
    assert done.returncode != 0
    assert f"no shardbroker is running on port {port}" in done.stderr
    done = stats("--pid-file", str(tmp_path / "missing.pid"))
    assert done.returncode != 0
    assert "no shardbroker pid file" in done.stderr


STATS_ACCOUNTS_CONF = """
accounts {
  A: { users: [ {user: a, password: p} ] }
  B: { users: [ {user: b, password: p} ] }
}
"""


async def test_stats_counts_each_accounts_connections(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    """`stats` shows each configured account's connections, over both workers."""
    conf = tmp_path / "accounts.conf"
    conf.write_text(STATS_ACCOUNTS_CONF)
    broker = broker_factory(workers=2, extra_args=["-c", str(conf)])
    async with NatsClients(broker) as clients:
        await clients.on_shard(1, user="a", password="p")
        await clients.on_shard(2, user="a", password="p")
        await clients.on_shard(2, user="b", password="p")
        doc = stats_json("-p", str(broker.port))
        assert doc["accounts"] == {"A": 2, "B": 1}
        table = stats("-p", str(broker.port), "--interval", "0.2")
        assert table.returncode == 0, table.stderr
        assert "ACCOUNT" in table.stdout
        rows = [line.split() for line in table.stdout.splitlines()]
        assert ["A", "2"] in rows and ["B", "1"] in rows
