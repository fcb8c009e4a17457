"""The tick under load: with every worker busy, each still beats its heartbeat and
publishes its counters about every 100 ms, so `shardbroker stats` tells the truth while
users look at it, and the supervisor never takes a busy worker for a stuck one.

Load as a user would make it: publishers on both workers over 50 subjects, subscribers
on both workers to all of them, so every worker parses, delivers locally and crosses the
mesh at once. shardbroker only: nats-server has no shards and no stats segment.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shardbroker.mesh.stats import StatsReader
from tests.helpers.broker import (
    Broker,
    is_shardbroker_target,
    raw_connect_on_shard,
    shardbroker_command,
)
from tests.helpers.wait import check_for
from tests.helpers.wire import WireClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not is_shardbroker_target(), reason="shardbroker's workers and stats"),
]

SUBJECTS = 50
HEARTBEAT_AGE_LIMIT = 0.5  # seconds
SAMPLE_FOR = 3.0  # seconds of heartbeat samples under load


def _publish_forever(client: WireClient, stop: threading.Event, sent: list[int]) -> None:
    batch = b"".join(
        b"PUB load.%d 16\r\n0123456789abcdef\r\n" % (i % SUBJECTS) for i in range(1000)
    )
    while not stop.is_set():
        try:
            client.sock.sendall(batch)
        except OSError:
            return
        sent[0] += 1000


def _drain_forever(client: WireClient, stop: threading.Event, received: list[int]) -> None:
    client.sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data = client.sock.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        received[0] += len(data)


@contextmanager
def full_load(broker: Broker) -> Iterator[tuple[list[int], list[int]]]:
    """Two subscribers and two publishers, one of each on each worker, flat out."""
    subscribers = []
    for shard in broker.shard_ids:
        client = raw_connect_on_shard(broker, shard)
        client.send(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB load.* 1\r\n')
        assert client.ping_barrier() == b""
        subscribers.append(client)
    publishers = []
    for shard in broker.shard_ids:
        client = raw_connect_on_shard(broker, shard)
        client.send(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        assert client.ping_barrier() == b""
        publishers.append(client)
    stop = threading.Event()
    sent, received = [0], [0]
    threads = [
        threading.Thread(target=_drain_forever, args=(c, stop, received)) for c in subscribers
    ] + [threading.Thread(target=_publish_forever, args=(c, stop, sent)) for c in publishers]
    for thread in threads:
        thread.start()
    try:
        yield sent, received
    finally:
        stop.set()
        for client in publishers + subscribers:
            client.close()
        for thread in threads:
            thread.join(timeout=10)


def _stats_json(port: int) -> dict[str, Any]:
    done = subprocess.run(
        shardbroker_command("stats", "--json", "--interval", "1", "-p", str(port)),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_tick_keeps_its_rhythm_and_stats_move_under_full_load(
    broker_factory: Callable[..., Broker],
) -> None:
    broker = broker_factory(workers=2)
    reader = StatsReader(broker.port)
    try:
        # Every worker has ticked (a heartbeat of 0 means "not yet", which the supervisor
        # judges from READY instead).
        check_for(10, 0.02, lambda: all(reader.slot(s)["heartbeat_ns"] for s in broker.shard_ids))
        with full_load(broker) as (sent, received):
            # The load reached both workers before anything is judged.
            start_sent = sent[0]
            deadline = time.monotonic() + 30
            while sent[0] - start_sent < 100_000 or not received[0]:
                assert time.monotonic() < deadline, "the load never got going"
                time.sleep(0.05)
            ages: dict[int, list[float]] = {shard: [] for shard in broker.shard_ids}
            end = time.monotonic() + SAMPLE_FOR
            while time.monotonic() < end:
                now = time.monotonic_ns()
                for shard in broker.shard_ids:
                    ages[shard].append((now - reader.slot(shard)["heartbeat_ns"]) / 1e9)
                time.sleep(0.05)
            # What a user sees: `shardbroker stats` over one second, twice.
            docs = [_stats_json(broker.port) for _ in range(2)]
            moved = sent[0] > start_sent
        assert moved
        for shard, seen in ages.items():
            assert max(seen) < HEARTBEAT_AGE_LIMIT, (shard, sorted(seen)[-5:])
        for doc in docs:
            for row in doc["shards"]:
                assert row["heartbeat_age_ms"] < HEARTBEAT_AGE_LIMIT * 1000, row
                assert row["in_msgs_per_sec"] > 0 and row["out_msgs_per_sec"] > 0, (row, docs)
        # Busy is not stuck: no worker was taken for a stuck one and restarted.
        assert "is stuck" not in broker.log_text()
        assert {s: p.pid for s, p in broker.refresh_workers().items()} == {
            s: p.pid for s, p in broker.workers.items()
        }
    finally:
        reader.close()
