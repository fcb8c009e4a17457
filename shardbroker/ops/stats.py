"""`shardbroker stats`: a running broker's shards, read from its stats segment.

Runs in the shell. It maps the segment read-only (mesh.stats.StatsReader) and asks the
kernel (psutil) for each process's CPU and memory; it never talks to the broker, so it
works without the monitoring port and cannot slow the broker down. Rates are the
difference of two samples divided by the time between them.

Slots: 0 is the supervisor, 1..workers are the workers (slot 0's ``workers``), any slot
after them the JetStream storage process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import posix_ipc
import psutil

from shardbroker import const
from shardbroker.mesh import account_table, rate_table
from shardbroker.mesh.account_table import AccountTable
from shardbroker.mesh.rate_table import RateTable
from shardbroker.mesh.stats import StatsReader

# Counters shown as a rate per second besides their total.
RATE_FIELDS = ("in_msgs", "out_msgs", "in_bytes", "out_bytes")
# Counters summed into the totals row.
SUM_FIELDS = (
    "connections",
    "total_connections",
    "subscriptions",
    *RATE_FIELDS,
    "slow_consumers",
    "ring_full_events",
    "restarts",
    "rebalanced",
)


@dataclass
class Sample:
    at: float  # time.monotonic() of the reading
    now_ns: int  # time.monotonic_ns(), to age heartbeats
    slots: list[dict[str, int]]


@dataclass
class Sampler:
    """Reads samples of one broker; keeps psutil handles so CPU% spans two samples."""

    reader: StatsReader
    # Connections per configured account (None: a broker without the table).
    accounts: AccountTable | None = None
    # What the rate limits of accounts and users did (None: a broker without the table).
    rates: RateTable | None = None
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def sample(self) -> Sample:
        reader = self.reader
        return Sample(
            time.monotonic(),
            time.monotonic_ns(),
            [reader.slot(i) for i in range(reader.n_shards)],
        )

    def process(self, pid: int) -> dict[str, Any]:
        """CPU% since the previous call for this pid (0.0 the first time) and RSS."""
        if not pid:
            return {"cpu_percent": None, "rss_bytes": None}
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent(None)
            return {"cpu_percent": proc.cpu_percent(None), "rss_bytes": proc.memory_info().rss}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return {"cpu_percent": None, "rss_bytes": None}

    def prime(self, sample: Sample) -> None:
        """Start CPU accounting for every process of the sample."""
        for slot in sample.slots:
            self.process(slot["pid"])


def role_of(shard_id: int, workers: int) -> str:
    if shard_id == const.SUPERVISOR_SHARD:
        return "supervisor"
    return "worker" if shard_id <= workers else "storage"


def report(sampler: Sampler, before: Sample, after: Sample) -> dict[str, Any]:
    """The JSON document of `shardbroker stats --json` from two samples."""
    elapsed = max(after.at - before.at, 1e-9)
    top = after.slots[const.SUPERVISOR_SHARD]
    workers = top["workers"]
    shards = []
    for shard_id in range(1, len(after.slots)):
        now = after.slots[shard_id]
        old = before.slots[shard_id]
        row: dict[str, Any] = {"shard": shard_id, "role": role_of(shard_id, workers)}
        row["pid"] = now["pid"]
        row["generation"] = now["generation"]
        for name in SUM_FIELDS:
            row[name] = now[name]
        # A restart between the samples resets the counters: no negative rates.
        same_life = old["pid"] == now["pid"]
        for name in RATE_FIELDS:
            delta = now[name] - old[name] if same_life else 0
            row[name + "_per_sec"] = round(max(0, delta) / elapsed, 1)
        row["lame_duck"] = bool(now["lame_duck"])
        row["heartbeat_age_ms"] = (
            round((after.now_ns - now["heartbeat_ns"]) / 1e6, 1) if now["heartbeat_ns"] else None
        )
        row.update(sampler.process(now["pid"]))
        shards.append(row)
    totals: dict[str, Any] = {name: sum(r[name] for r in shards) for name in SUM_FIELDS}
    for name in RATE_FIELDS:
        totals[name + "_per_sec"] = round(sum(r[name + "_per_sec"] for r in shards), 1)
    supervisor = {"pid": top["pid"], **sampler.process(top["pid"])}
    processes = [supervisor, *shards]
    cpu = [p["cpu_percent"] for p in processes if p["cpu_percent"] is not None]
    rss = [p["rss_bytes"] for p in processes if p["rss_bytes"] is not None]
    totals["cpu_percent"] = round(sum(cpu), 1)
    totals["rss_bytes"] = sum(rss)
    doc = {
        "port": sampler.reader.port,
        "interval": round(elapsed, 3),
        "lame_duck": bool(top["lame_duck"]),
        "workers": workers,
        "supervisor": supervisor,
        "shards": shards,
        "totals": totals,
    }
    if sampler.accounts is not None:
        doc["accounts"] = sampler.accounts.connections()
    if sampler.rates is not None:
        doc["rate_limits"] = {
            key: {
                "throttled": figures.throttles,
                "throttled_seconds": round(figures.throttled_ns / 1e9, 3),
                "rejected": figures.rejected,
                "admitted": figures.admitted,
            }
            for key, figures in sampler.rates.figures().items()
        }
    return doc


# -- the table ---------------------------------------------------------------------------

_COLUMNS = (
    # header, key, width
    ("SHARD", "shard", 6),
    ("ROLE", "role", 8),
    ("PID", "pid", 8),
    ("CONNS", "connections", 7),
    ("SUBS", "subscriptions", 7),
    ("MSGS IN/s", "in_msgs_per_sec", 11),
    ("MSGS OUT/s", "out_msgs_per_sec", 11),
    ("BYTES IN/s", "in_bytes_per_sec", 11),
    ("BYTES OUT/s", "out_bytes_per_sec", 11),
    ("SLOW", "slow_consumers", 5),
    ("RESTARTS", "restarts", 8),
    ("REBAL", "rebalanced", 6),
    ("CPU%", "cpu_percent", 6),
    ("RSS", "rss_bytes", 8),
    ("HB ms", "heartbeat_age_ms", 7),
)


def _human(value: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1000:
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}P"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "rss_bytes":
        return f"{value / 2**20:.0f}M"
    if key.endswith("_per_sec"):
        return _human(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render(doc: dict[str, Any]) -> str:
    """The table `shardbroker stats` prints (and --watch redraws)."""
    head = (
        f"shardbroker on port {doc['port']}: supervisor pid {doc['supervisor']['pid']}, "
        f"{doc['workers']} workers"
        + (", LAME DUCK MODE" if doc["lame_duck"] else "")
        + f"  (rates over {doc['interval']:.1f}s)"
    )
    lines = [head, ""]
    lines.append(" ".join(h.rjust(w) for h, _, w in _COLUMNS))
    rows = [*doc["shards"], {"shard": "total", "role": "", "pid": "", **doc["totals"]}]
    for row in rows:
        if row["shard"] == "total":
            lines.append("-" * (sum(w for _, _, w in _COLUMNS) + len(_COLUMNS) - 1))
        lines.append(" ".join(_cell(key, row.get(key)).rjust(width) for _, key, width in _COLUMNS))
    accounts = doc.get("accounts")
    if accounts:
        lines.append("")
        lines.append(f"{'ACCOUNT':>24} {'CONNS':>7}")
        for name, conns in accounts.items():
            lines.append(f"{name:>24} {conns:>7}")
    limits = doc.get("rate_limits")
    if limits:
        lines.append("")
        lines.append(
            f"{'RATE LIMIT':>24} {'THROTTLED':>10} {'HELD(s)':>9} {'REJECTED':>9} {'ADMITTED':>10}"
        )
        for key, row in limits.items():
            lines.append(
                f"{key:>24} {row['throttled']:>10} {row['throttled_seconds']:>9.3f} "
                f"{row['rejected']:>9} {row['admitted']:>10}"
            )
    sup = doc["supervisor"]
    lines.append("")
    lines.append(
        f"supervisor: CPU {_cell('cpu_percent', sup['cpu_percent'])}%, "
        f"RSS {_cell('rss_bytes', sup['rss_bytes'])}; totals in: "
        f"{doc['totals']['in_msgs']} msgs, {doc['totals']['in_bytes']} bytes; out: "
        f"{doc['totals']['out_msgs']} msgs, {doc['totals']['out_bytes']} bytes; "
        f"connections ever: {doc['totals']['total_connections']}"
    )
    return "\n".join(lines)


def run(
    reader: StatsReader,
    interval: float,
    as_json: bool,
    watch: bool,
    count: int,
    echo: Any,
) -> None:
    """Print one report (two samples `interval` apart), or redraw one every `interval`
    with --watch (`count` reports, 0: until interrupted). `echo` prints a string."""
    import json

    try:
        accounts: AccountTable | None = account_table.attach_readonly(reader.port)
    except posix_ipc.ExistentialError:
        accounts = None
    try:
        rates: RateTable | None = rate_table.attach_readonly(reader.port)
    except posix_ipc.ExistentialError:
        rates = None
    sampler = Sampler(reader, accounts, rates)
    before = sampler.sample()
    sampler.prime(before)
    shown = 0
    while True:
        time.sleep(interval)
        after = sampler.sample()
        doc = report(sampler, before, after)
        if as_json:
            echo(json.dumps(doc))
        elif watch:
            echo("\x1b[H\x1b[2J" + render(doc))
        else:
            echo(render(doc))
        shown += 1
        if not watch or (count and shown >= count):
            return
        before = after
