"""monitor/shardz.py (per-shard figures) and monitor/dashboard.py (the page's files)."""

from __future__ import annotations

import msgspec
import pytest

from shardbroker.config.options import Options
from shardbroker.monitor import dashboard, shardz
from shardbroker.monitor.collect import BrokerState, ShardFigures

SEC = 1_000_000_000
NOW = 1_700_000_100 * SEC


def state() -> BrokerState:
    shards = [
        ShardFigures(1, "worker", True, {"connections": 2, "in_msgs": 10, "in_bytes": 100,
                                         "out_msgs": 7, "out_bytes": 70, "subscriptions": 3,
                                         "slow_consumers": 1, "ring_fill_pct": 12,
                                         "start_ns": NOW - 5 * SEC, "restarts": 1},
                     pid=101, cpu=12.5, mem=1000),
        ShardFigures(2, "worker", False, {"connections": 1, "in_msgs": 1, "in_bytes": 5,
                                          "out_msgs": 2, "out_bytes": 9, "subscriptions": 1,
                                          "ring_fill_pct": 40}),
        ShardFigures(3, "storage", True, {"js_streams": 2, "ring_fill_pct": 90},
                     pid=103, cpu=1.0, mem=500),
    ]  # fmt: skip
    return BrokerState(
        server_id="NSERVER", opts=Options(server_name="east"), port=4222,
        http_host="127.0.0.1", http_port=8222, start_ns=NOW - 65 * SEC, now_ns=NOW,
        config_load_ns=NOW - 65 * SEC, shards=shards, mem=1800, cpu=14.0, cores=2,
        supervisor_pid=100, supervisor_mem=300, supervisor_cpu=0.5,
    )  # fmt: skip


def test_shardz_rows_and_worker_totals() -> None:
    data = msgspec.to_builtins(shardz.shardz(state()))
    assert data["server_name"] == "east" and data["now_ns"] == NOW and data["cores"] == 2
    assert data["supervisor"] == {"pid": 100, "cpu": 0.5, "mem": 300}
    first, second, storage = data["shards"]
    assert first["pid"] == 101 and first["cpu"] == 12.5 and first["mem"] == 1000
    assert first["in_msgs"] == 10 and first["ring_fill_pct"] == 12 and first["restarts"] == 1
    assert first["start"] == "2023-11-14T22:14:55Z"
    assert second["up"] is False and second["pid"] == 0 and second["start"] == ""
    assert storage["role"] == "storage" and storage["connections"] == 0
    totals = data["totals"]
    # Traffic and ring fill over the workers only; CPU and memory over every process.
    assert totals["workers"] == 2 and totals["workers_up"] == 1
    assert totals["in_msgs"] == 11 and totals["out_bytes"] == 79
    assert totals["connections"] == 3 and totals["subscriptions"] == 4
    assert totals["slow_consumers"] == 1 and totals["ring_fill_pct"] == 40
    assert totals["cpu"] == 14.0 and totals["mem"] == 1800


def test_dashboard_page_names_its_base_path_escaped() -> None:
    assert b'<base href="/">' in dashboard.page("")
    assert b'<base href="/mon/">' in dashboard.page("/mon")
    assert b'<base href="/a&quot;&lt;b/">' in dashboard.page('/a"<b')


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_dashboard_assets_by_type(name: str, content_type: str) -> None:
    found = dashboard.asset(name)
    assert found is not None and found[1] == content_type and found[0]


@pytest.mark.parametrize(
    "name",
    ["", "dashboard.html", "../http.py", "..", "../static/dashboard.js", "/etc/passwd",
     "sub/dashboard.js", "nope.js", ".js", "dashboard.js\\x", "__init__.py"],
)  # fmt: skip
def test_dashboard_serves_nothing_else(name: str) -> None:
    assert dashboard.asset(name) is None
