"""/shardz: shardbroker's own per-shard figures as JSON (nats-server has no such endpoint).

Pure: no I/O, no clock; called by monitor/service.py with the `collect.BrokerState` it
gathered (the shared stats segment and psutil's process figures, off the hot path). One
row per shard process with its counters as the worker's tick left them, the supervisor's
own CPU and memory, and the totals over the workers: what `shardbroker stats` and the
`shardbroker_shard_*` gauges of /metrics show, for the dashboard and other readers that
compute rates from two readings (``now_ns`` is the instant of the reading).
"""

from __future__ import annotations

import msgspec

from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.monitor.collect import BrokerState, ShardFigures

# Slot counters copied into every row (and summed over the workers for the totals).
COUNTERS = (
    "connections",
    "total_connections",
    "subscriptions",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "slow_consumers",
    "stalled_clients",
    "ring_full_events",
    "restarts",
)


class ShardRow(msgspec.Struct, kw_only=True):
    shard: int
    role: str
    up: bool
    pid: int
    cpu: float
    mem: int
    connections: int
    total_connections: int
    subscriptions: int
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    slow_consumers: int
    stalled_clients: int
    ring_full_events: int
    restarts: int
    # Fill of the shard's fullest outbound ring at its last tick, percent.
    ring_fill_pct: int
    start: str


class ShardTotals(msgspec.Struct, kw_only=True):
    """Sums over the worker shards (ring fill: the fullest), CPU and memory over every
    process of the broker."""

    workers: int
    workers_up: int
    cpu: float
    mem: int
    connections: int
    total_connections: int
    subscriptions: int
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    slow_consumers: int
    stalled_clients: int
    ring_full_events: int
    restarts: int
    ring_fill_pct: int


class SupervisorRow(msgspec.Struct, kw_only=True):
    pid: int
    cpu: float
    mem: int


class Shardz(msgspec.Struct, kw_only=True):
    server_id: str
    server_name: str
    now: str
    now_ns: int
    cores: int
    supervisor: SupervisorRow
    shards: list[ShardRow]
    totals: ShardTotals


def shard_row(shard: ShardFigures) -> ShardRow:
    c = shard.counters
    start_ns = c.get("start_ns", 0)
    return ShardRow(
        shard=shard.shard_id,
        role=shard.role,
        up=shard.up,
        pid=shard.pid,
        cpu=shard.cpu,
        mem=shard.mem,
        **{name: c.get(name, 0) for name in COUNTERS},
        ring_fill_pct=c.get("ring_fill_pct", 0),
        start=format_rfc3339(start_ns) if start_ns else "",
    )


def shardz(state: BrokerState) -> Shardz:
    rows = [shard_row(shard) for shard in state.shards]
    workers = [row for row in rows if row.role == "worker"]
    sums = {name: sum(getattr(row, name) for row in workers) for name in COUNTERS}
    return Shardz(
        server_id=state.server_id,
        server_name=state.server_name,
        now=format_rfc3339(state.now_ns),
        now_ns=state.now_ns,
        cores=state.cores,
        supervisor=SupervisorRow(
            pid=state.supervisor_pid, cpu=state.supervisor_cpu, mem=state.supervisor_mem
        ),
        shards=rows,
        totals=ShardTotals(
            workers=len(workers),
            workers_up=sum(row.up for row in workers),
            cpu=state.cpu,
            mem=state.mem,
            **sums,
            ring_fill_pct=max((row.ring_fill_pct for row in workers), default=0),
        ),
    )
