"""The perf scenarios, each one run of `shardbroker bench`.

perf/compare.py runs every throughput, latency and JetStream scenario through the bench
runner (`shardbroker.bench.runner.Runner`), in this process: the same load generator a
user gets from `shardbroker bench`, so there is one generator to keep fast and correct.
`bench_command` gives the equivalent command line, to reproduce a row by hand. perf
imports only `shardbroker.bench`, which talks to the servers over the wire (an
import-linter contract keeps it so); the servers themselves are subprocesses.

What a scenario is: its bench mode and options (`bench_options`), its payload, its
message count (a divisor of --msgs, so that each run takes about as long), and how its
rate is read from the report: messages published (pub), delivered (the others), round
trips (request/reply) or acked (JetStream) per second of the run.

`idle` is not a message flow: perf/idle.py runs it; it is listed here so that names,
titles and aliases live in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SCENARIOS = (
    "pub",
    "pub-100s",
    "pubsub",
    "pubsub-100s",
    "pubsub-10ks",
    "pubsub-1k",
    "pubsub-64k",
    "pubsub-mixed",
    "pubsub-sizes-100s",
    "pubsub4-1k-100s",
    "pubsub8x2-1ks",
    "pubsub-ws",
    "fanout",
    "fanout-100s",
    "fanout16",
    "queue",
    "queue-100s",
    "fanin",
    "reqrep",
    "reqrep-100s",
    "reqrep50-100s",
    "idle",
    "js-pub",
    "js-pub-4k",
    "js-pub-sync",
    "js-pull",
    "js-push",
)
# Scenarios whose clients connect to the servers' websocket port (perf.compare starts
# both servers with a websocket listener when one is selected).
WS_SCENARIOS = frozenset({"pubsub-ws"})
# JetStream scenarios need a server started with -js (perf.compare starts a fresh one
# with a fresh store directory for every run of them).
JS_SCENARIOS = frozenset({"js-pub", "js-pub-4k", "js-pub-sync", "js-pull", "js-push"})
# ... of which these consume a stream filled (untimed) before the run.
JS_CONSUME = frozenset({"js-pull", "js-push"})
# Scenarios that report p50/p99 latency beside their rate (one request or publish in
# flight per client, so the latency is the server's, not queueing in the generator).
LATENCY = ("reqrep", "reqrep-100s", "reqrep50-100s", "js-pub-sync")
# Names that stand for several scenarios in --scenarios. "varied": every scenario where
# consecutive messages have different subjects (real traffic; what the compiled core is
# judged on).
GROUPS = {
    "varied": (
        "pub-100s",
        "pubsub-100s",
        "pubsub-10ks",
        "pubsub-sizes-100s",
        "pubsub4-1k-100s",
        "pubsub8x2-1ks",
        "fanout-100s",
        "queue-100s",
        "reqrep-100s",
        "reqrep50-100s",
    ),
}
TITLES = {
    "pub": "pub-only",
    "pub-100s": "pub-only, 100 subjects",
    "pubsub": "pubsub 1:1",
    "pubsub-100s": "pubsub 1:1, 100 subjects",
    "pubsub-10ks": "pubsub 1:1, 10k subjects",
    "pubsub-1k": "pubsub 1:1, 1 KiB",
    "pubsub-64k": "pubsub 1:1, 64 KiB",
    # Payload sizes alternate, so no two consecutive PUBs share a control line: this
    # measures the per-message path of a broker that batches identical lines.
    "pubsub-mixed": "pubsub 1:1, mixed sizes",
    "pubsub-sizes-100s": "pubsub 1:1, 16 B-4 KiB, 100 subjects",
    "pubsub4-1k-100s": "pubsub 4:4, 1 KiB, 100 subjects",
    "pubsub8x2-1ks": "pubsub 8:2, 1k subjects",
    "pubsub-ws": "pubsub 1:1 over websocket",
    "fanout": "fan-out 1:4",
    "fanout-100s": "fan-out 1:4, 100 subjects",
    "fanout16": "fan-out 1:16",
    "queue": "queue 4x4",
    "queue-100s": "queue 4x4, 100 subjects",
    "fanin": "fan-in 32:1",
    "reqrep": "request/reply",
    "reqrep-100s": "request/reply, 100 subjects",
    "reqrep50-100s": "request/reply, 50 requesters, 100 subjects",
    "idle": "10k idle conns",
    "js-pub": "JetStream pub, async acks",
    "js-pub-4k": "JetStream pub, async acks, window 4096",
    "js-pub-sync": "JetStream pub, sync acks",
    "js-pull": "JetStream pull consume, explicit acks",
    "js-push": "JetStream push consume, no acks",  # "explicit acks" with --js-push-acks
}
UNITS = {
    "pub": "msg/s",
    "pub-100s": "msg/s",
    "pubsub": "msg/s",
    "pubsub-100s": "msg/s",
    "pubsub-10ks": "msg/s",
    "pubsub-1k": "msg/s",
    "pubsub-64k": "msg/s",
    "pubsub-mixed": "msg/s",
    "pubsub-sizes-100s": "msg/s",
    "pubsub4-1k-100s": "msg/s delivered",
    "pubsub8x2-1ks": "msg/s delivered",
    "pubsub-ws": "msg/s",
    "fanout": "msg/s delivered",
    "fanout-100s": "msg/s delivered",
    "fanout16": "msg/s delivered",
    "queue": "msg/s",
    "queue-100s": "msg/s",
    "fanin": "msg/s",
    "reqrep": "round trips/s",
    "reqrep-100s": "round trips/s",
    "reqrep50-100s": "round trips/s",
    "idle": "MiB RSS",
    "js-pub": "msg/s acked",
    "js-pub-4k": "msg/s acked",
    "js-pub-sync": "msg/s acked",
    "js-pull": "msg/s acked",
    "js-push": "msg/s",
}
ALIASES = {
    **{name: name for name in SCENARIOS},
    "pub-only": "pub",
    "pubonly": "pub",
    "pubsub-1:1": "pubsub",
    "1:1": "pubsub",
    "pubsub-16": "pubsub",
    "pubsub-16b": "pubsub",
    "pubsub-1kib": "pubsub-1k",
    "pubsub-1024": "pubsub-1k",
    "pubsub-64kib": "pubsub-64k",
    "pubsub-65536": "pubsub-64k",
    "mixed": "pubsub-mixed",
    "fan-out": "fanout",
    "fanout4": "fanout",
    "fanout-1:4": "fanout",
    "fan-out16": "fanout16",
    "fanout-16": "fanout16",
    "fanout-1:16": "fanout16",
    "queue-4x4": "queue",
    "fan-in": "fanin",
    "request-reply": "reqrep",
    "request/reply": "reqrep",
    "req": "reqrep",
    "idle-conns": "idle",
    "jspub": "js-pub",
    "js-pub-async": "js-pub",
    "js": "js-pub",
    "jspub-sync": "js-pub-sync",
    "js-sync": "js-pub-sync",
    "jspull": "js-pull",
    "js-fetch": "js-pull",
    "js-consume": "js-pull",
    "jspush": "js-push",
    "pub-only-100s": "pub-100s",
    "pubsub-100": "pubsub-100s",
    "pubsub-10k-subjects": "pubsub-10ks",
    "pubsub-10000s": "pubsub-10ks",
    "fanout-1:4-100s": "fanout-100s",
    "queue-4x4-100s": "queue-100s",
    "pubsub-4:4-1k-100s": "pubsub4-1k-100s",
    "pubsub-sizes": "pubsub-sizes-100s",
    "pubsub-16-4096-100s": "pubsub-sizes-100s",
    "pubsub-8:2-1ks": "pubsub8x2-1ks",
    "pubsub8x2": "pubsub8x2-1ks",
    "request-reply-100s": "reqrep-100s",
    "websocket": "pubsub-ws",
    "ws": "pubsub-ws",
    "pubsub-websocket": "pubsub-ws",
    "reqrep50": "reqrep50-100s",
    "request-reply-50": "reqrep50-100s",
    "js-pub-4096": "js-pub-4k",
    "js-pub-window-4096": "js-pub-4k",
}
FANOUT_SUBS = 4
FANOUT16_SUBS = 16
QUEUE_PUBS = 4
QUEUE_MEMBERS = 4
QUEUE_GROUP = "workers"
FANIN_PUBS = 32
VARIED = 100  # subjects of the *-100s scenarios
VARIED_1K = 1_000  # ... of the *-1ks ones (within a subject cache of 1,024)
VARIED_MANY = 10_000
# pubsub-sizes-100s: payload sizes spread from 16 B to 4 KiB (bench --size 16-4096).
SIZE_RANGE = "16-4096"
# pubsub8x2-1ks: publishers and subscribers (each subscriber gets every message).
MANY_PUBS = 8
MANY_PUBS_SUBS = 2
# reqrep50-100s: concurrent requesters (one request in flight each), their responders (a
# queue group, one on each of two workers), and the client processes (responders in one,
# requesters in two).
REQUESTERS = 50
RESPONDERS = 2
REQUESTER_PROCS = 3
# js-pub-4k: the larger window of un-acked publishes.
JS_WIDE_WINDOW = 4096
# JetStream: the stream every JS run creates (file storage) and the subject published to.
JS_STREAM = "PERF"
JS_SUBJECT = "perf.js.pub"
# Consumers keep up to this many deliveries un-acked: nats-server's default
# max_ack_pending, which the consume scenarios were first measured with.
JS_MAX_ACK_PENDING = 1000
# Warm-up of the latency-bound scenarios: 5 % of the round trips, at most 200.
WARMUP_SHARE = 20
WARMUP_MAX = 200

# Scenarios with a fixed payload size (the others use Options.payload).
PAYLOADS = {"pubsub-1k": 1024, "pubsub-64k": 65536, "pubsub4-1k-100s": 1024}
# ... and the payload column of the ones whose sizes vary.
PAYLOAD_TEXT = {"pubsub-sizes-100s": "16 B-4 KiB"}
# Messages per run = Options.msgs // divisor, so that every scenario takes about as long
# as the 16-byte ones (a 1M x 64 KiB run would move 64 GB).
# JetStream publishes are stored and acked one by one: N/10 acked async, N/200 sync.
# Consumed messages: N/10 (the stream is filled with them before the run, untimed).
MSGS_DIVISOR = {
    "pubsub-1k": 4,
    "pubsub-64k": 128,
    "pubsub-sizes-100s": 4,  # 850 bytes on average
    "pubsub4-1k-100s": 4,
    "pubsub8x2-1ks": 2,  # N deliveries
    "fanout16": 4,
    "js-pub": 10,
    "js-pub-4k": 10,
    "js-pub-sync": 200,
    "js-pull": 10,
    "js-push": 10,
}
MIN_MSGS = 100
# Round trips per run = Options.requests x this (50 requesters do 5x a lone one's work in
# less time than it takes alone).
REQUESTS_FACTOR = {"reqrep50-100s": 5}


def canonical(name: str) -> str:
    key = name.strip().lower()
    if key not in ALIASES:
        raise ValueError(
            f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}; groups: {', '.join(GROUPS)}"
        )
    return ALIASES[key]


def expand(names: str) -> list[str]:
    """--scenarios: comma-separated names, aliases and groups -> scenarios, each once, in
    the order given."""
    out: list[str] = []
    for name in names.split(","):
        if not name.strip():
            continue
        key = name.strip().lower()
        out += GROUPS[key] if key in GROUPS else [canonical(name)]
    return list(dict.fromkeys(out))


def parse_url(url: str) -> tuple[str, int]:
    if "://" not in url:
        url = "nats://" + url
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 4222


@dataclass
class Options:
    msgs: int = 1_000_000  # messages published per run (all publishers together)
    requests: int = 10_000  # round trips per request/reply run
    payload: int = 16
    spread: bool = False  # place connections on alternating shardbroker workers
    shards: int = 2  # number of workers to alternate over
    idle_timeout: float = 10.0  # no progress for this long = the run failed
    js_pubs: int = 1  # js-pub: publishers (connections), like `nats bench js pub --pubs`
    js_window: int = 256  # js-pub: un-acked publishes each publisher keeps in flight
    js_batch: int = 500  # js-pull: messages per pull request (nats.go Consume's default)
    js_push_ack: str = "none"  # js-push: the consumer's ack policy, "none" or "explicit"


def scenario_options(scenario: str, opt: Options) -> Options:
    """The options one scenario really runs with: its fixed payload, its message count."""
    changes: dict[str, Any] = {}
    if scenario in PAYLOADS:
        changes["payload"] = PAYLOADS[scenario]
    if scenario in MSGS_DIVISOR:
        changes["msgs"] = min(opt.msgs, max(MIN_MSGS, opt.msgs // MSGS_DIVISOR[scenario]))
    if scenario in REQUESTS_FACTOR:
        changes["requests"] = opt.requests * REQUESTS_FACTOR[scenario]
    return dataclasses.replace(opt, **changes) if changes else opt


def warmup_of(n: int) -> int:
    return min(WARMUP_MAX, max(1, n // WARMUP_SHARE))


def bench_options(scenario: str, opt: Options) -> tuple[str, dict[str, Any]]:
    """The bench mode and `build_config` options of one scenario (after scenario_options).

    Every run splits publishers and subscribers into two client processes (--procs 2),
    as the generator always did (one process per role), and with `spread` places the
    connections on alternating workers (senders from worker 1, receivers from 2)."""
    n, size = opt.msgs, opt.payload
    common: dict[str, Any] = {
        "procs": 2,
        "timeout": opt.idle_timeout,
        "spread": opt.shards if opt.spread else 0,
        "size": size,
        "msgs": n,
        "json_output": True,
        "no_progress": True,
    }
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "pub": ("pub", {"pubs": 1, "subject": "bench.pub"}),
        "pub-100s": ("pub", {"pubs": 1, "subject": "bench.pubv", "subjects": VARIED}),
        "pubsub": ("pubsub", {"pubs": 1, "subs": 1, "subject": "bench.ps"}),
        "pubsub-100s": (
            "pubsub",
            {"pubs": 1, "subs": 1, "subject": "bench.psv", "subjects": VARIED},
        ),
        "pubsub-10ks": (
            "pubsub",
            {"pubs": 1, "subs": 1, "subject": "bench.psw", "subjects": VARIED_MANY},
        ),
        "pubsub-1k": ("pubsub", {"pubs": 1, "subs": 1, "subject": "bench.ps"}),
        "pubsub-64k": ("pubsub", {"pubs": 1, "subs": 1, "subject": "bench.ps"}),
        # Two sizes a byte apart in turn: every other control line differs.
        "pubsub-mixed": (
            "pubsub",
            {"pubs": 1, "subs": 1, "subject": "bench.mix", "size": f"{size},{size + 1}"},
        ),
        # 13 sizes from 16 B to 4 KiB in a seeded order, over 100 subjects: neither the
        # subject nor the size of a message is that of the one before.
        "pubsub-sizes-100s": (
            "pubsub",
            {
                "pubs": 1,
                "subs": 1,
                "subject": "bench.psz",
                "subjects": VARIED,
                "size": SIZE_RANGE,
            },
        ),
        "pubsub4-1k-100s": (
            "pubsub",
            {"pubs": 4, "subs": 4, "subject": "bench.ps4v", "subjects": VARIED},
        ),
        # Many publishers over the workers (alternating, like the subscribers), each from
        # its own place in a cycle of 1,000 subjects; both subscribers get every message.
        "pubsub8x2-1ks": (
            "pubsub",
            {
                "pubs": MANY_PUBS,
                "subs": MANY_PUBS_SUBS,
                "subject": "bench.p8v",
                "subjects": VARIED_1K,
            },
        ),
        # The pubsub scenario through the websocket port (the run's URL is ws://).
        "pubsub-ws": ("pubsub", {"pubs": 1, "subs": 1, "subject": "bench.ws"}),
        "fanout": ("pubsub", {"pubs": 1, "subs": FANOUT_SUBS, "subject": "bench.fan"}),
        "fanout-100s": (
            "pubsub",
            {"pubs": 1, "subs": FANOUT_SUBS, "subject": "bench.fanv", "subjects": VARIED},
        ),
        "fanout16": ("pubsub", {"pubs": 1, "subs": FANOUT16_SUBS, "subject": "bench.fan"}),
        "queue": (
            "queue",
            {"pubs": QUEUE_PUBS, "subs": QUEUE_MEMBERS, "subject": "bench.q", "queue": QUEUE_GROUP},
        ),
        "queue-100s": (
            "queue",
            {
                "pubs": QUEUE_PUBS,
                "subs": QUEUE_MEMBERS,
                "subject": "bench.qv",
                "queue": QUEUE_GROUP,
                "subjects": VARIED,
            },
        ),
        "fanin": ("pubsub", {"pubs": FANIN_PUBS, "subs": 1, "subject": "bench.in"}),
        "reqrep": (
            "request",
            {
                "pubs": 1,
                "subs": 1,
                "subject": "svc",
                "msgs": opt.requests,
                "warmup": warmup_of(opt.requests),
            },
        ),
        "reqrep-100s": (
            "request",
            {
                "pubs": 1,
                "subs": 1,
                "subject": "svcv",
                "subjects": VARIED,
                "msgs": opt.requests,
                "warmup": warmup_of(opt.requests),
            },
        ),
        "reqrep50-100s": (
            "request",
            {
                "pubs": REQUESTERS,
                "subs": RESPONDERS,
                "subject": "svcv",
                "subjects": VARIED,
                "msgs": opt.requests,
                "warmup": warmup_of(opt.requests // REQUESTERS),  # per requester
                "procs": REQUESTER_PROCS,
            },
        ),
        "js-pub": (
            "js-pub",
            {"pubs": opt.js_pubs, "ack": "async", "window": opt.js_window},
        ),
        "js-pub-4k": (
            "js-pub",
            {"pubs": opt.js_pubs, "ack": "async", "window": JS_WIDE_WINDOW},
        ),
        "js-pub-sync": ("js-pub", {"pubs": 1, "ack": "sync", "warmup": warmup_of(n)}),
        "js-pull": (
            "js-consume",
            {"subs": 1, "consumer": "pull", "batch": opt.js_batch, "window": JS_MAX_ACK_PENDING},
        ),
        "js-push": (
            "js-consume",
            {
                "subs": 1,
                "consumer": "push",
                "ack_policy": opt.js_push_ack,
                "window": JS_MAX_ACK_PENDING,
            },
        ),
    }
    mode, options = table[scenario]
    if scenario in JS_SCENARIOS:
        options = {**options, "stream": JS_STREAM, "subject": JS_SUBJECT, "storage": "file"}
    return mode, {**common, **options}


def bench_command(url: str, scenario: str, opt: Options) -> str:
    """The `shardbroker bench` command line of one scenario run (to reproduce it)."""
    mode, options = bench_options(scenario, scenario_options(scenario, opt))
    words = ["shardbroker", "bench", mode, "-s", url]
    last = ("msgs", "size", "procs", "spread", "timeout")
    for key in [k for k in options if k not in last] + list(last):
        value = options[key]
        if key in ("json_output", "no_progress") or (key == "spread" and not value):
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        words += ["--" + key.replace("_", "-"), text]
    return " ".join(words)


# -- running one scenario -------------------------------------------------------------------


def run_scenario(url: str, scenario: str, opt: Options, probe: Any = None) -> dict[str, Any]:
    """Run one scenario once against the server at `url`, through the bench runner.

    `probe`, if given, measures the server's CPU (shardbroker.bench.probe.ServerProbe):
    the runner starts it right before "go" and stops it after the last client reported.
    Returns a dict: ok, rate, unit, messages (the count the rate is based on), elapsed,
    errors, shards per role, missed placements, gen_cpu (per client process, % of a
    core), p50_us/p99_us (request/reply, js-pub-sync), server_cpu and server_cpu_by_process
    (CPU seconds, in all and per server process), and for JetStream `js`
    (published, acked, stored; for the consume scenarios the delivery checks and the
    consumer's final state).
    """
    from shardbroker.bench import EXIT_INTERRUPTED, BenchError
    from shardbroker.bench.report import to_json
    from shardbroker.bench.runner import Runner
    from shardbroker.bench.scenarios import build_config

    scenario = canonical(scenario)
    if scenario == "idle":
        raise ValueError("the idle scenario is run by perf.idle.run_idle, not run_scenario")
    opt = scenario_options(scenario, opt)
    res: dict[str, Any] = {
        "scenario": scenario,
        "ok": False,
        "rate": None,
        "unit": UNITS[scenario],
        "messages": 0,
        "elapsed": None,
        "errors": [],
        "shards": {},
        "missed": [],
        "gen_cpu": {},
        "p50_us": None,
        "p99_us": None,
        "server_cpu": None,
        "server_cpu_by_process": None,
        "payload": opt.payload,
        "msgs": opt.msgs,
    }
    mode, options = bench_options(scenario, opt)
    try:
        cfg = build_config(mode, server=url, **options)
        runner = Runner(cfg, probe)
        rep = to_json(runner.run())
    except BenchError as exc:
        if exc.exit_status == EXIT_INTERRUPTED:
            raise KeyboardInterrupt from None
        res["errors"].append(str(exc))
        return res
    if rep["interrupted"]:
        raise KeyboardInterrupt
    _read_report(scenario, rep, res)
    return res


RECEIVERS = ("sub", "rep", "jspush", "jspull")


def _read_report(scenario: str, rep: dict[str, Any], res: dict[str, Any]) -> None:
    """Fill perf's result from the bench report (its --json form)."""
    res["errors"] += rep["errors"]
    res["server_cpu"] = rep["server_cpu_s"]
    res["server_cpu_by_process"] = rep["server_cpu_by_process"]
    res["gen_cpu"] = {f"proc{i}": 100.0 * cpu for i, cpu in enumerate(rep["client_cpu"])}
    js = rep["jetstream"] or {}
    clients = rep["per_client"]
    ordered = [c for c in clients if c["role"] in RECEIVERS]
    ordered += [c for c in clients if c["role"] not in RECEIVERS]
    shards: dict[str, list[int]] = {}
    if "fill" in js:
        shards["prefill"] = [js["fill"]["shard"]]
        if js["fill"]["missed"]:
            res["missed"].append("prefill")
    for c in ordered:
        shards.setdefault(c["name"].rsplit("-", 1)[0], []).append(c["shard"])
        if c["missed"]:
            res["missed"].append(c["name"])
    res["shards"] = shards
    elapsed = rep["elapsed_s"]
    res["elapsed"] = elapsed
    mode = rep["mode"]
    if mode == "pub":
        count, rate = rep["sent"], rep["msgs_per_s"]
    elif mode in ("pubsub", "queue"):
        count = rep["received"]
        rate = count / elapsed if elapsed > 0 else None
    else:  # request: round trips; js-pub: acked; js-consume: consumed (timed)
        count, rate = rep["received"], rep["msgs_per_s"]
    res["messages"] = count
    res["rate"] = rate or None
    lat = rep["latency_us"]
    if lat is not None and scenario in LATENCY:
        res["p50_us"], res["p99_us"] = lat["p50"], lat["p99"]
    if mode == "js-pub":
        res["js"] = {
            "published": js.get("published", 0),
            "acked": js.get("acked", 0),
            "bad": js.get("bad_acks", 0),
            "stream_messages": js.get("stream_msgs"),
            "stream_last_seq": js.get("stream_last_seq"),
        }
    elif mode == "js-consume":
        fill = js.get("fill") or {}
        consume = js.get("consume") or {}
        info = js.get("consumer") or {}
        res["js"] = {
            "published": fill.get("msgs", 0),
            "acked": fill.get("msgs", 0),
            "bad": 0,
            "stream_messages": js.get("stream_msgs"),
            "stream_last_seq": js.get("stream_last_seq"),
            "received": consume.get("received", 0),
            "unique": consume.get("distinct", 0),
            "duplicates": consume.get("duplicates", 0),
            "missing": consume.get("missing", 0),
            "out_of_order": consume.get("out_of_order", 0),
            "requests": consume.get("requests", 0),
            "consumer": {
                "delivered": info.get("delivered_seq"),
                "ack_floor": info.get("ack_floor_seq"),
                "num_ack_pending": info.get("num_ack_pending"),
                "num_pending": info.get("num_pending"),
                "num_redelivered": info.get("num_redelivered"),
                "num_waiting": info.get("num_waiting"),
                "settle_s": info.get("settle_s"),
            },
            "prefill_s": fill.get("seconds"),
            "first_s": consume.get("first_delivery_s"),
        }
        res["messages"] = consume.get("distinct", 0)
    res["ok"] = not res["errors"] and res["rate"] is not None
