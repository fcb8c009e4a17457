"""Interest at scale: 100,000 subscriptions on one connection, and 10,000 connections of
10 subscriptions each. Every subscription is in effect on every worker once the PONG
comes, no worker is restarted on the way (a busy worker is not a stuck one), and the
broker's memory grows by at most twice what nats-server's does for the same clients.

Both servers run in the same test, one after the other. How long the PONG took on each
is printed beside the figures (speed is measured in perf/, not asserted here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers.broker import (
    HOST,
    TARGET_ENV,
    Broker,
    is_shardbroker_target,
    raw_connect_on_shard,
    run_broker,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not is_shardbroker_target(), reason="compares shardbroker to nats-server"),
]

MEMORY_RATIO = 2.0
CONNECT = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
FLUSH_TIMEOUT = 120.0  # seconds; a generous bound, far above either server's time


@dataclass
class Outcome:
    flush_seconds: float
    rss_growth: int


def tree_rss(broker: Broker) -> int:
    """Resident memory of the broker and every process under it."""
    top = psutil.Process(broker.pid)
    return sum(p.memory_info().rss for p in [top, *top.children(recursive=True)])


def worker_pids(broker: Broker) -> dict[int, int]:
    return {shard: proc.pid for shard, proc in broker.refresh_workers().items()}


@contextlib.contextmanager
def server(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    with monkeypatch.context() as env:
        env.setenv(TARGET_ENV, kind)
        with run_broker(workers=2, tmp_dir=tmp_path / kind) as broker:
            env.undo()
            yield broker


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def next_op(reader: asyncio.StreamReader) -> bytes:
    """The next line that is not a server PING (the first comes ~2 s after CONNECT)."""
    while True:
        line = await reader.readline()
        if line != b"PING\r\n":
            return line


async def _subscriber(
    n_subs: int, index: int, port: int, gate: asyncio.Semaphore, opened: dict[int, Client]
) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        opened[index] = (reader, writer)
        await reader.readline()  # INFO
        subs = b"".join(b"SUB scale.%d.%d %d\r\n" % (index, i, i + 1) for i in range(n_subs))
        writer.write(CONNECT + subs + b"PING\r\n")
        async with asyncio.timeout(FLUSH_TIMEOUT):
            line = await next_op(reader)
        assert line == b"PONG\r\n", line


async def subscribe_all(
    port: int, connections: int, per_connection: int, opened: dict[int, Client]
) -> float:
    """Open the connections (into `opened`, by index), each subscribing and flushing;
    seconds until every PONG."""
    gate = asyncio.Semaphore(256)  # connections being set up at once
    start = time.monotonic()
    await asyncio.gather(
        *(_subscriber(per_connection, c, port, gate, opened) for c in range(connections))
    )
    return time.monotonic() - start


def run_scenario(broker: Broker, connections: int, per_connection: int) -> Outcome:
    pids = worker_pids(broker)
    before = tree_rss(broker)

    async def scenario() -> Outcome:
        clients: dict[int, Client] = {}
        try:
            seconds = await subscribe_all(broker.port, connections, per_connection, clients)
            grown = tree_rss(broker) - before
            # In effect everywhere: a publisher on each worker reaches the first and the
            # last subscription made.
            first, last = clients[0][0], clients[connections - 1][0]
            for shard in broker.shard_ids:
                publisher = raw_connect_on_shard(broker, shard)
                publisher.send(CONNECT)
                for idx, reader in ((0, first), (connections - 1, last)):
                    sid = 1 if idx == 0 else per_connection
                    subject = b"scale.%d.%d" % (idx, sid - 1)
                    publisher.send(b"PUB %s 2\r\nhi\r\n" % subject)
                    async with asyncio.timeout(10):
                        line = await next_op(reader)
                    assert line == b"MSG %s %d 2\r\n" % (subject, sid), line
                    assert await reader.readline() == b"hi\r\n"
                assert publisher.ping_barrier() == b""
                publisher.close()
            return Outcome(seconds, grown)
        finally:
            for _, writer in clients.values():
                writer.close()

    outcome = asyncio.run(scenario())
    if broker.is_shardbroker:
        assert worker_pids(broker) == pids, "a worker was restarted"
        assert "is stuck" not in broker.log_text()
    return outcome


@pytest.mark.parametrize(
    ("connections", "per_connection"),
    [(1, 100_000), (10_000, 10)],
    ids=["100k-subs-one-connection", "10k-connections-10-subs"],
)
def test_interest_scale_is_in_effect_everywhere_without_restarts(
    connections: int,
    per_connection: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    outcomes = {}
    for kind in ("nats-server", "shardbroker"):
        with server(kind, tmp_path, monkeypatch) as broker:
            outcomes[kind] = run_scenario(broker, connections, per_connection)
    ours, theirs = outcomes["shardbroker"], outcomes["nats-server"]
    # The figures beside the verdict, for the log (the module docstring promises them).
    print(  # noqa: T201
        f"{request.node.callspec.id}: PONG after {ours.flush_seconds:.2f}s "
        f"(nats-server {theirs.flush_seconds:.2f}s), memory +{ours.rss_growth >> 20} MiB "
        f"(nats-server +{theirs.rss_growth >> 20} MiB)"
    )
    assert ours.rss_growth <= MEMORY_RATIO * theirs.rss_growth, outcomes
