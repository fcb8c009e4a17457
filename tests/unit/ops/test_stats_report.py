"""`shardbroker stats` figures from two samples (ops.stats.report); no processes."""

from __future__ import annotations

from typing import Any

from shardbroker.mesh.stats import FIELDS
from shardbroker.ops.stats import Sample, Sampler, render, report


class FakeReader:
    port = 4999
    n_shards = 4


def slot(**values: int) -> dict[str, int]:
    return {name: values.get(name, 0) for name in FIELDS}


def sample(at: float, slots: list[dict[str, int]]) -> Sample:
    return Sample(at, int(at * 1e9), slots)


def test_stats_report_rates_totals_and_roles() -> None:
    sampler = Sampler(FakeReader())  # type: ignore[arg-type]
    sampler.process = lambda pid: {"cpu_percent": 1.5, "rss_bytes": 10}  # type: ignore[method-assign]
    top = slot(pid=10, workers=2)
    before = sample(
        100.0,
        [top, slot(pid=11, in_msgs=100, in_bytes=1000), slot(pid=12, out_msgs=7), slot(pid=13)],
    )
    after = sample(
        102.0,
        [
            top,
            slot(pid=11, in_msgs=300, in_bytes=5000, connections=3, heartbeat_ns=int(101.9e9)),
            # Restarted between the samples: counters started again, no negative rate.
            slot(pid=22, out_msgs=2, restarts=1, connections=1),
            slot(pid=13, subscriptions=5),
        ],
    )
    doc: dict[str, Any] = report(sampler, before, after)
    assert [(s["shard"], s["role"]) for s in doc["shards"]] == [
        (1, "worker"), (2, "worker"), (3, "storage"),
    ]  # fmt: skip
    w1, w2, _ = doc["shards"]
    assert w1["in_msgs_per_sec"] == 100.0 and w1["in_bytes_per_sec"] == 2000.0
    assert w1["heartbeat_age_ms"] == 100.0
    assert w2["out_msgs_per_sec"] == 0.0 and w2["restarts"] == 1
    totals = doc["totals"]
    assert totals["connections"] == 4 and totals["subscriptions"] == 5
    assert totals["in_msgs"] == 300 and totals["in_msgs_per_sec"] == 100.0
    assert totals["cpu_percent"] == 6.0 and totals["rss_bytes"] == 40
    text = render(doc)
    assert "supervisor pid 10, 2 workers" in text
    assert "storage" in text and "total" in text
