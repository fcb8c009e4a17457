"""Statistics and output of a `shardbroker bench` run: per-client and aggregate rates,
min/avg/max/stddev across clients, latency percentiles from the merged HDR histogram,
and the text (like `nats bench`), JSON, CSV and PNG renderings.

Owner: the coordinator, after every client process reported. Pure apart from the
writers at the bottom; matplotlib is imported only for --plot.

Time bases: each client reports `t_start`/`t_end` on CLOCK_MONOTONIC (comparable across
processes on one machine). A group's rate is its messages over the span from its
earliest start to its latest end (as `nats bench` does); pub/sub and queue runs are
timed from the first publisher's start to the last subscriber's last message.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shardbroker.bench import BenchConfig, BenchError, UsageError

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

# role -> (group, label in the text report)
GROUPS = {
    "pub": ("pub", "Pub stats"),
    "req": ("pub", "Request stats"),
    "jspub": ("pub", "JetStream publish stats"),
    "sub": ("sub", "Sub stats"),
    "rep": ("sub", "Reply stats"),
    "jspush": ("sub", "JetStream consume stats"),
    "jspull": ("sub", "JetStream consume stats"),
}
LATENCY_LABELS = {
    "pubsub": "End-to-end latency (publish -> receive)",
    "queue": "End-to-end latency (publish -> receive)",
    "sub": "End-to-end latency (publish -> receive, from payload stamps)",
    "request": "Round-trip latency (request -> reply)",
    "js-pub": "Ack latency (publish -> PubAck)",
}
# What the headline msgs_per_s counts in each mode (`nats bench` adds up publishers and
# subscribers for pub/sub).
RATE_BASIS = {
    "pub": "sent",
    "sub": "received",
    "pubsub": "sent+received",
    "queue": "sent+received",
    "request": "round trips",
    "reply": "requests answered",
    "js-pub": "acknowledged publishes",
    "js-consume": "received",
}
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
MIB = 1024 * 1024


@dataclass
class ClientStat:
    name: str
    role: str
    proc: int
    msgs: int
    bytes: int
    elapsed_s: float
    msgs_per_s: float
    bytes_per_s: float
    shard: int = 0  # the worker it landed on (shardbroker), 0 elsewhere
    target: int = 0  # the worker --spread wanted (0: none)


@dataclass
class GroupStat:
    group: str  # "pub" | "sub"
    label: str
    clients: list[ClientStat]
    msgs: int
    bytes: int
    elapsed_s: float
    msgs_per_s: float
    bytes_per_s: float
    min: float
    avg: float
    max: float
    stddev: float


@dataclass
class Report:
    cfg: BenchConfig
    server_name: str
    server_version: str
    server_kind: str  # "nats-server", "shardbroker" or "server", from INFO's "go" field
    procs: int
    sent: int
    received: int
    count: int  # the messages msgs_per_s counts (see RATE_BASIS)
    nbytes: int
    elapsed_s: float
    msgs_per_s: float
    bytes_per_s: float
    groups: list[GroupStat]
    latency: dict[str, float] | None
    hist: HdrHistogram | None
    client_cpu: list[float]
    errors: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    warmup: int = 0  # untimed round trips / acked publishes before the clock started
    server_cpu_s: float | None = None  # with a probe: server CPU from "go" to the end
    server_cpu_by_process: dict[str, float] | None = None  # ... per process (role)

    @property
    def ok(self) -> bool:
        return not self.errors


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _timed(r: dict[str, Any]) -> int:
    """The messages a client's rate counts: all it handled, except that a push consumer
    is timed from its first read with deliveries and counts only those after it."""
    return int(r.get("timed", r["msgs"]))


def _span(results: list[dict[str, Any]], start_roles: set[str], end_roles: set[str]) -> float:
    starts = [r["t_start"] for r in results if r["role"] in start_roles and r["t_start"]]
    ends = [r["t_end"] for r in results if r["role"] in end_roles and r["t_end"]]
    if not starts or not ends:
        return 0.0
    return max(0.0, max(ends) - min(starts))


def build(
    cfg: BenchConfig,
    server_info: dict[str, Any],
    results: list[dict[str, Any]],
    hist: HdrHistogram | None,
    client_cpu: list[float],
    procs: int,
) -> Report:
    results = sorted(results, key=lambda r: r["index"])
    groups: list[GroupStat] = []
    for group in ("pub", "sub"):
        members = [r for r in results if GROUPS[r["role"]][0] == group]
        if not members:
            continue
        clients = []
        for r in members:
            el = max(0.0, r["t_end"] - r["t_start"])
            clients.append(
                ClientStat(
                    name=r["name"],
                    role=r["role"],
                    proc=r["proc"],
                    msgs=r["msgs"],
                    bytes=r["bytes"],
                    elapsed_s=el,
                    msgs_per_s=_rate(_timed(r), el),
                    bytes_per_s=_rate(r["bytes"], el),
                    shard=r.get("shard", 0),
                    target=r.get("target", 0),
                )
            )
        roles = {r["role"] for r in members}
        span = _span(members, roles, roles)
        rates = [c.msgs_per_s for c in clients]
        msgs = sum(c.msgs for c in clients)
        timed = sum(_timed(r) for r in members)
        nbytes = sum(c.bytes for c in clients)
        groups.append(
            GroupStat(
                group=group,
                label=GROUPS[members[0]["role"]][1],
                clients=clients,
                msgs=msgs,
                bytes=nbytes,
                elapsed_s=span,
                msgs_per_s=_rate(timed, span),
                bytes_per_s=_rate(nbytes, span),
                min=min(rates),
                avg=statistics.fmean(rates),
                max=max(rates),
                stddev=statistics.pstdev(rates) if len(rates) > 1 else 0.0,
            )
        )
    by_group = {g.group: g for g in groups}
    pub, sub = by_group.get("pub"), by_group.get("sub")
    mode = cfg.mode
    sent = sum(r.get("sent", r["msgs"]) for r in results if GROUPS[r["role"]][0] == "pub")
    received = sub.msgs if sub else 0
    if mode in ("pubsub", "queue"):
        elapsed = _span(results, {"pub"}, {"sub"})
        count = sent + received
        nbytes = (pub.bytes if pub else 0) + (sub.bytes if sub else 0)
    elif mode in ("request", "js-pub"):
        assert pub is not None
        received = pub.msgs  # replies / PubAcks
        elapsed, count, nbytes = pub.elapsed_s, pub.msgs, pub.bytes
    elif mode == "reply":
        assert sub is not None
        sent = sub.msgs  # one reply per request
        elapsed, count, nbytes = sub.elapsed_s, sub.msgs, sub.bytes
    elif pub is not None:  # pub
        elapsed, count, nbytes = pub.elapsed_s, pub.msgs, pub.bytes
    else:  # sub, js-consume
        assert sub is not None
        count = sum(_timed(r) for r in results if GROUPS[r["role"]][0] == "sub")
        elapsed, nbytes = sub.elapsed_s, sub.bytes
    latency = None
    if hist is not None and hist.get_total_count() > 0:
        latency = {key: _us(hist.get_value_at_percentile(p)) for key, p in PERCENTILES}
        latency["max"] = _us(hist.get_max_value())
        latency["min"] = _us(hist.get_min_value())
        latency["mean"] = _us(hist.get_mean_value())
        latency["count"] = hist.get_total_count()
    return Report(
        cfg=cfg,
        server_name=str(server_info.get("server_name", "")),
        server_version=str(server_info.get("version", "")),
        server_kind=_server_kind(server_info),
        procs=procs,
        sent=sent,
        received=received,
        count=count,
        nbytes=nbytes,
        elapsed_s=elapsed,
        msgs_per_s=_rate(count, elapsed),
        bytes_per_s=_rate(nbytes, elapsed),
        groups=groups,
        latency=latency,
        hist=hist if latency else None,
        client_cpu=client_cpu,
        warmup=sum(r.get("warmup", 0) for r in results),
    )


def _server_kind(info: dict[str, Any]) -> str:
    runtime = str(info.get("go", ""))
    if runtime == "python":
        return "shardbroker"
    return "nats-server" if runtime.startswith("go") else "server"


def _counts(rep: Report) -> str:
    mode = rep.cfg.mode
    if mode == "pub":
        return f"{rep.sent:,} sent"
    if mode in ("sub", "js-consume"):
        return f"{rep.received:,} received"
    if mode == "request":
        return f"{rep.sent:,} requests, {rep.received:,} replies"
    if mode == "reply":
        return f"{rep.received:,} requests answered"
    if mode == "js-pub":
        return f"{rep.sent:,} published, {rep.received:,} acknowledged"
    return f"{rep.sent:,} sent, {rep.received:,} received"


def _us(ns: float) -> float:
    return round(ns / 1000.0, 1)


# -- text ------------------------------------------------------------------------------------


def _missed(c: ClientStat) -> bool:
    return bool(c.target and c.shard and c.shard != c.target)


def placement(rep: Report) -> str:
    """`sub:2 pub:1`: the worker of each connection, grouped by name prefix, receivers
    first (as the clients of a plan)."""
    by_prefix: dict[str, list[str]] = {}
    for g in sorted(rep.groups, key=lambda g: g.group != "sub"):
        for c in g.clients:
            by_prefix.setdefault(c.name.rsplit("-", 1)[0], []).append(str(c.shard))
    fill = rep.notes.get("fill")
    if fill is not None:
        by_prefix = {"prefill": [str(fill["shard"])], **by_prefix}
    return " ".join(f"{k}:{','.join(v)}" for k, v in by_prefix.items())


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _mib(x: float) -> str:
    return f"{x / MIB:,.2f} MiB/sec"


def render_text(rep: Report) -> str:
    from shardbroker.bench.scenarios import TITLES

    cfg = rep.cfg
    out = io.StringIO()
    server = f"{cfg.server_display} ({rep.server_kind}"
    if rep.server_version:
        server += f" {rep.server_version}"
    server += ")"
    if cfg.subjects:
        shape = [f"subjects {cfg.subject}.0 .. {cfg.subject}.{cfg.subjects - 1}"]
    else:
        shape = [f"subject {cfg.subject!r}"]
    if len(cfg.sizes) > 4:
        shape.append(
            f"{len(cfg.sizes)} payload sizes in turn, {min(cfg.sizes):,}-{max(cfg.sizes):,} B"
        )
    elif len(cfg.sizes) > 1:
        shape.append(f"{'/'.join(f'{s:,}' for s in cfg.sizes)} B payloads in turn")
    else:
        shape.append(f"{cfg.size:,} B payload")
    if cfg.duration:
        shape.append(f"{cfg.duration:g} s")
    elif cfg.msgs:
        shape.append(f"{cfg.msgs:,} msgs")
    if cfg.pubs:
        shape.append(f"{cfg.pubs} pub{'s' if cfg.pubs > 1 else ''}")
    if cfg.subs:
        shape.append(f"{cfg.subs} sub{'s' if cfg.subs > 1 else ''}")
    if cfg.rate:
        shape.append(f"{cfg.rate:,.0f} msgs/s per publisher")
    shape.append(f"{rep.procs} client process{'es' if rep.procs > 1 else ''}")
    if cfg.warmup:
        shape.append(f"{cfg.warmup:,} untimed warm-up round trips per client")
    out.write(f"{TITLES[cfg.mode]} benchmark against {server}\n  {', '.join(shape)}\n\n")
    count_text = _counts(rep)
    out.write(
        f"NATS {TITLES[cfg.mode]} stats: {_n(rep.msgs_per_s)} msgs/sec ~ "
        f"{_mib(rep.bytes_per_s)} ({count_text} in {rep.elapsed_s:.3f} s)\n"
    )
    for g in rep.groups:
        out.write(
            f" {g.label}: {_n(g.msgs_per_s)} msgs/sec ~ {_mib(g.bytes_per_s)} ({g.msgs:,} msgs)\n"
        )
        if len(g.clients) > 1:
            for i, c in enumerate(g.clients, 1):
                out.write(
                    f"  [{i}] {_n(c.msgs_per_s)} msgs/sec ~ {_mib(c.bytes_per_s)}"
                    f" ({c.msgs:,} msgs, {c.name})\n"
                )
            out.write(
                f"  min {_n(g.min)} | avg {_n(g.avg)} | max {_n(g.max)} | "
                f"stddev {_n(g.stddev)} msgs\n"
            )
    if rep.latency:
        lat = rep.latency
        label = LATENCY_LABELS.get(cfg.mode, "Latency")
        out.write(f" {label}, {int(lat['count']):,} samples:\n")
        out.write(
            "  "
            + " | ".join(
                f"{name} {lat[key]:,.1f} us"
                for name, key in (
                    ("p50", "p50"),
                    ("p90", "p90"),
                    ("p99", "p99"),
                    ("p99.9", "p999"),
                    ("max", "max"),
                )
            )
            + "\n"
        )
        if cfg.mode in ("pubsub", "queue") and not cfg.rate:
            out.write(
                "  (publishers ran flat out, so this includes queueing in the server and the\n"
                "  subscribers; --rate N measures latency at a chosen load)\n"
            )
    if rep.server_cpu_s is not None:
        per_m = rep.server_cpu_s / (rep.count / 1e6) if rep.count else 0.0
        out.write(
            f" Server CPU: {rep.server_cpu_s:.2f} s ({per_m:.2f} s per million "
            f"{RATE_BASIS[cfg.mode]})\n"
        )
        by_process = rep.server_cpu_by_process or {}
        if len(by_process) > 1 and rep.count:
            out.write(
                "  per process, s per million: "
                + " | ".join(
                    f"{role} {cpu / (rep.count / 1e6):.2f}" for role, cpu in by_process.items()
                )
                + "\n"
            )
    if cfg.spread:
        out.write(f" Placement (worker of each connection): {placement(rep)}\n")
        missed = [c.name for g in rep.groups for c in g.clients if _missed(c)]
        if missed:
            out.write(f"  not on the wanted worker: {', '.join(missed)}\n")
    notes = rep.notes
    if "consume" in notes:
        c = notes["consume"]
        out.write(
            f" Deliveries: {c['received']:,} received, {c['distinct']:,} distinct of "
            f"{c['expected']:,}, {c['duplicates']:,} duplicates, "
            f"{c['out_of_order']:,} out of order"
            + (f", {c['requests']:,} pull requests" if cfg.consumer == "pull" else "")
            + "\n"
        )
    if "consumer" in notes:
        c = notes["consumer"]
        out.write(
            f" Consumer {c['name']} ({c['type']}, ack {c['ack_policy']}): "
            f"{c['num_ack_pending']} awaiting ack, "
            f"{c['num_redelivered']} redelivered, {c['num_pending']} pending"
            + (f", settled in {c['settle_s'] * 1000:.0f} ms" if c["settle_s"] is not None else "")
            + "\n"
        )
    if "stream_msgs" in notes:
        fate = "deleted" if notes.get("stream_deleted") else "kept"
        out.write(f" Stream {notes['stream']}: {notes['stream_msgs']:,} messages ({fate})\n")
    busy = [i for i, cpu in enumerate(rep.client_cpu) if cpu > 0.9]
    if busy:
        out.write(
            f" Note: client process{'es' if len(busy) > 1 else ''} "
            f"{', '.join(map(str, busy))} used over 90% of a core; the load generator may be "
            f"the bottleneck (try a larger --procs)\n"
        )
    if rep.interrupted:
        from shardbroker.bench.scenarios import PASSIVE_MODES

        early = "" if cfg.mode in PASSIVE_MODES else " before the run was complete"
        out.write(f" Stopped on request (Ctrl-C or SIGTERM){early}.\n")
    for err in rep.errors:
        out.write(f" ERROR: {err}\n")
    return out.getvalue()


# -- JSON / CSV --------------------------------------------------------------------------------


def _group_json(g: GroupStat) -> dict[str, Any]:
    return {
        "clients": len(g.clients),
        "msgs": g.msgs,
        "bytes": g.bytes,
        "elapsed_s": round(g.elapsed_s, 6),
        "msgs_per_s": round(g.msgs_per_s, 1),
        "bytes_per_s": round(g.bytes_per_s, 1),
        "min": round(g.min, 1),
        "avg": round(g.avg, 1),
        "max": round(g.max, 1),
        "stddev": round(g.stddev, 1),
    }


def to_json(rep: Report) -> dict[str, Any]:
    cfg = rep.cfg
    by_group = {g.group: g for g in rep.groups}
    return {
        "mode": cfg.mode,
        "server": cfg.server_display,
        "server_name": rep.server_name,
        "server_kind": rep.server_kind,
        "server_version": rep.server_version,
        "subject": cfg.subject,
        "subjects": cfg.subjects,
        "msgs": cfg.msgs,
        "duration_s": cfg.duration,
        "size": cfg.size,
        "sizes": list(cfg.sizes or (cfg.size,)),
        "spread": cfg.spread,
        "warmup": rep.warmup,
        "rate": cfg.rate,
        "pubs": cfg.pubs,
        "subs": cfg.subs,
        "procs": rep.procs,
        "sent": rep.sent,
        "received": rep.received,
        "elapsed_s": round(rep.elapsed_s, 6),
        "msgs_per_s": round(rep.msgs_per_s, 1),
        "bytes_per_s": round(rep.bytes_per_s, 1),
        "rate_basis": RATE_BASIS[cfg.mode],
        "pub": _group_json(by_group["pub"]) if "pub" in by_group else None,
        "sub": _group_json(by_group["sub"]) if "sub" in by_group else None,
        "per_client": [
            {
                "name": c.name,
                "role": c.role,
                "proc": c.proc,
                "msgs": c.msgs,
                "bytes": c.bytes,
                "elapsed_s": round(c.elapsed_s, 6),
                "msgs_per_s": round(c.msgs_per_s, 1),
                "bytes_per_s": round(c.bytes_per_s, 1),
                "shard": c.shard,
                "target": c.target,
                "missed": _missed(c),
            }
            for g in rep.groups
            for c in g.clients
        ],
        "placement": placement(rep),
        "latency_us": rep.latency,
        "latency_kind": LATENCY_LABELS.get(cfg.mode) if rep.latency else None,
        "client_cpu": [round(x, 3) for x in rep.client_cpu],
        "server_cpu_s": None if rep.server_cpu_s is None else round(rep.server_cpu_s, 4),
        "server_cpu_by_process": None
        if rep.server_cpu_by_process is None
        else {role: round(cpu, 4) for role, cpu in rep.server_cpu_by_process.items()},
        "jetstream": rep.notes or None,
        "interrupted": rep.interrupted,
        "errors": rep.errors,
        "ok": rep.ok,
    }


CSV_FIELDS = (
    "mode",
    "role",
    "name",
    "proc",
    "msgs",
    "bytes",
    "elapsed_s",
    "msgs_per_s",
    "bytes_per_s",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
)


def write_csv(rep: Report, path: str) -> None:
    """One row per client, then one aggregate row (with the latency percentiles)."""
    mode = rep.cfg.mode
    try:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_FIELDS)
            for g in rep.groups:
                for c in g.clients:
                    w.writerow(
                        [
                            mode,
                            c.role,
                            c.name,
                            c.proc,
                            c.msgs,
                            c.bytes,
                            f"{c.elapsed_s:.6f}",
                            f"{c.msgs_per_s:.1f}",
                            f"{c.bytes_per_s:.1f}",
                            "",
                            "",
                            "",
                            "",
                            "",
                        ]
                    )
            lat = rep.latency or {}
            percentiles = [lat.get(k, "") for k in ("p50", "p90", "p99", "p999", "max")]
            w.writerow(
                [
                    mode,
                    "aggregate",
                    "all",
                    "",
                    rep.count,
                    rep.nbytes,
                    f"{rep.elapsed_s:.6f}",
                    f"{rep.msgs_per_s:.1f}",
                    f"{rep.bytes_per_s:.1f}",
                    *percentiles,
                ]
            )
    except OSError as exc:
        raise BenchError(f"cannot write --csv {path}: {exc.strerror or exc}") from None


# -- --plot ------------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Fail before the run, not after it, when --plot cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed (pip install 'shardbroker[plot]')"
        ) from None


PLOT_PERCENTILES = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999)


def write_plot(rep: Report, path: str) -> None:
    """Two panels: messages per second of every client (coloured by group, with the group
    rates as lines), and the latency distribution as an HDR percentile curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = rep.cfg
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"pub": "#1f77b4", "sub": "#ff7f0e"}
    names: list[str] = []
    rates: list[float] = []
    cols: list[str] = []
    for g in rep.groups:
        for c in g.clients:
            names.append(c.name)
            rates.append(c.msgs_per_s)
            cols.append(colours[g.group])
    left.bar(range(len(names)), rates, color=cols)
    left.set_xticks(
        range(len(names)),
        names,
        rotation=45 if len(names) > 6 else 0,
        ha="right" if len(names) > 6 else "center",
    )
    for g in rep.groups:
        if len(g.clients) > 1:
            left.axhline(
                g.avg,
                color=colours[g.group],
                linestyle="--",
                linewidth=1,
                label=f"{g.label}: avg {g.avg:,.0f}",
            )
    left.set_ylabel("messages / s")
    left.set_title(f"Throughput per client (aggregate {rep.msgs_per_s:,.0f} msgs/s)")
    if any(len(g.clients) > 1 for g in rep.groups):
        left.legend(fontsize="small")
    left.grid(axis="y", alpha=0.3)
    if rep.hist is not None and rep.latency is not None:
        xs, ys = [], []
        for p in PLOT_PERCENTILES:
            xs.append(1.0 / (1.0 - p / 100.0))
            ys.append(rep.hist.get_value_at_percentile(p) / 1000.0)
        xs.append(1.0 / (1.0 - 99.9999 / 100.0))
        ys.append(rep.hist.get_max_value() / 1000.0)
        right.plot(xs, ys, marker="o", markersize=3)
        right.set_xscale("log")
        ticks = [1, 10, 100, 1000, 10000, 100000]
        right.set_xticks(ticks, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
        right.set_xlabel("percentile")
        right.set_ylabel("latency (us)")
        lat = rep.latency
        right.set_title(
            f"{LATENCY_LABELS.get(cfg.mode, 'Latency')}\n"
            f"p50 {lat['p50']:,.1f} us, p99 {lat['p99']:,.1f} us"
        )
        right.grid(alpha=0.3, which="both")
    else:
        right.text(0.5, 0.5, "no latency measured in this mode", ha="center", va="center")
        right.set_axis_off()
    fig.suptitle(
        f"shardbroker bench {cfg.mode} against {cfg.server_display}: "
        f"{cfg.size:,} B, {cfg.pubs} pub, {cfg.subs} sub"
    )
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise BenchError(f"cannot write --plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
