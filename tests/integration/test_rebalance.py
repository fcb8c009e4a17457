"""Rebalancing: clients crowded on one worker (as after a restart of the other) are
asked to reconnect, until both workers hold some (shardbroker only; off by default)."""

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
    is_shardbroker_target,
    shardbroker_command,
    unique,
)
from tests.helpers.wait import async_check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not is_shardbroker_target(), reason="shardbroker has workers"),
]

CLIENTS = 12


def shard_figures(broker: Broker) -> dict[int, dict[str, Any]]:
    done = subprocess.run(
        shardbroker_command("stats", "-p", str(broker.port), "--json", "--interval", "0.1"),
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return {s["shard"]: s for s in json.loads(done.stdout)["shards"]}


async def test_rebalance_moves_clients_off_a_crowded_worker(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    conf = tmp_path / "sb.conf"
    conf.write_text('rebalance: true\nrebalance_interval: "1s"\n')
    broker = broker_factory(workers=2, extra_args=["-c", str(conf)])
    async with NatsClients(broker) as clients:
        # Everybody on worker 1, the picture after worker 2 restarted.
        ncs = [
            await clients.on_shard(
                1, allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.1
            )
            for _ in range(CLIENTS)
        ]
        subject = unique("rebal.")
        sub = await ncs[0].subscribe(subject)
        await barrier(ncs[0])

        async def spread() -> dict[int, dict[str, Any]]:
            figures = shard_figures(broker)
            counts = {shard: f["connections"] for shard, f in figures.items()}
            assert sum(counts.values()) == CLIENTS, counts
            assert min(counts.values()) >= CLIENTS // 4, counts
            return figures

        figures = await async_check_for(40, 0.5, spread)
        assert figures[1]["rebalanced"] > 0
        assert "rebalancing: worker shard 1 holds" in broker.log_text()
        # Every client is connected again and works, wherever it is now.
        await async_check_for(10, 0.1, lambda: all(nc.is_connected for nc in ncs))
        await barrier(ncs[0])
        for i, nc in enumerate(ncs):
            await nc.publish(subject, str(i).encode())
            await barrier(nc)
        got = sorted([int((await sub.next_msg(timeout=5)).data) for _ in range(CLIENTS)])
        assert got == list(range(CLIENTS))
