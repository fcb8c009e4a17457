"""Orchestration of a `shardbroker bench` run: the coordinator and its client processes.

Owner: the `shardbroker bench` process (coordinator) and, through `child_main`, each
client process (started with the multiprocessing "spawn" context, never forked).

A run, in order:

1. Arguments are checked (scenarios.build_config); a probe connection reads the server's
   INFO (unreachable server, max_payload, JetStream) and JetStream modes set up their
   stream and consumer (jetstream.prepare).
2. Client processes start. Each connects its clients, subscribes, and does a PING/PONG
   before it reports "ready", so every subscription is in effect broker-wide before any
   client publishes.
3. "go" to all. Active clients (publishers, requesters, pullers) end by themselves;
   the coordinator watches the shared counters and sends "stop" once the passive ones
   (subscribers, responders, push consumers) have everything they must receive, after
   --duration, or on Ctrl-C. No progress for --timeout seconds is a failure, except in
   sub and reply modes, which wait for traffic from elsewhere.
4. Each process flushes (PING/PONG: late duplicates show up), reports per-client
   results and its latency histogram (HDR, encoded), and exits. JetStream set-up is
   undone (jetstream.finish), the counts are verified (scenarios.verify), and the report
   is printed / written.

Counters: a RawArray of int64, two per client ([count, state]); each slot has exactly one
writer (the client's process), the coordinator only reads, so no lock is needed.
Client processes ignore SIGINT: Ctrl-C reaches the coordinator, which stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait as mp_wait
from typing import Any, Protocol

from shardbroker.bench import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BenchConfig,
    BenchError,
    ClientSpec,
    UsageError,
    scenarios,
)
from shardbroker.bench import report as reporting
from shardbroker.bench.client import ProcessContext, ServerURL, connect, new_histogram

POLL_INTERVAL = 0.02  # seconds between looks at the counters
READY_GRACE = 30.0  # on top of --timeout: process start-up and connecting every client
RESULT_GRACE = 5.0  # on top of --timeout: final flushes after "stop"


def run_cli(mode: str, **options: Any) -> int:
    """The `shardbroker bench` command: run, print, write files; returns the exit status.
    Raises BenchError (cli.py prints it as one line) when the run cannot be done."""
    cfg = scenarios.build_config(mode, **options)
    if cfg.plot:
        reporting.require_matplotlib()
    for path, flag in ((cfg.csv, "--csv"), (cfg.plot, "--plot")):
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise UsageError(f"{flag} {path}: directory {parent} does not exist")
    probe = None
    if cfg.server_pid:
        import psutil

        from shardbroker.bench.probe import ServerProbe

        try:
            probe = ServerProbe(cfg.server_pid)
        except psutil.Error as exc:
            raise UsageError(f"--server-pid {cfg.server_pid}: {exc}") from None
    # SIGTERM ends a run like Ctrl-C: stop the clients, then report what was done.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        rep = Runner(cfg, probe).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if cfg.json:
        sys.stdout.write(json.dumps(reporting.to_json(rep)) + "\n")
    else:
        sys.stdout.write(reporting.render_text(rep))
    sys.stdout.flush()
    if cfg.csv:
        reporting.write_csv(rep, cfg.csv)
    if cfg.plot:
        reporting.write_plot(rep, cfg.plot)
    if rep.errors:
        # The report already lists them; the last line of stderr says why the exit failed.
        sys.stderr.write(f"shardbroker bench: {rep.errors[0]}\n")
        return EXIT_FAILED
    if rep.interrupted and cfg.mode not in scenarios.PASSIVE_MODES:
        return EXIT_INTERRUPTED
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@dataclass
class _Child:
    proc: int
    process: Any  # multiprocessing.context.SpawnProcess
    pipe: Pipe
    ready: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


class CpuProbe(Protocol):
    """Measures the server's CPU time (probe.ServerProbe, or a stand-in in tests)."""

    def start(self) -> None: ...

    def stop(self) -> dict[str, float]:
        """CPU seconds per server process (role) since start."""
        ...


class Runner:
    """The coordinator of one run. `probe`, if given, is started right before "go" and
    stopped right after the last client process reported: its CPU seconds per server
    process are the report's `server_cpu_by_process`, their sum `server_cpu_s`
    (`--server-pid`; perf/compare.py measures the servers it starts this way)."""

    def __init__(self, cfg: BenchConfig, probe: CpuProbe | None = None) -> None:
        self.cfg = cfg
        self.probe = probe
        self.server_cpu: dict[str, float] | None = None
        self.probing = False
        self.children: list[_Child] = []
        self.started = False  # "go" was sent
        self.interrupted = False

    def run(self) -> reporting.Report:
        cfg = self.cfg
        try:
            server_info, js = _run_loop(_prepare(cfg))
        except KeyboardInterrupt:
            raise BenchError("interrupted", EXIT_INTERRUPTED) from None
        errors: list[str] = []
        notes: dict[str, Any] = {}
        ran = False
        try:
            expected = js.expected if js is not None else 0
            specs = scenarios.plan(cfg, js.extra if js is not None else None, expected)
            results, hist, cpu = self._execute(specs, expected)
            ran = not self.interrupted
            if ran:
                errors += scenarios.verify(cfg, specs, results, expected)
        finally:
            if js is not None:
                from shardbroker.bench import jetstream

                try:
                    # Wait for the consumer to settle only when every message came.
                    complete = ran and not errors and not cfg.duration
                    notes = _run_loop(jetstream.finish(cfg, js, complete))
                except (BenchError, OSError) as exc:
                    errors.append(f"JetStream clean-up failed: {exc}")
        if js is not None and ran:
            from shardbroker.bench import jetstream

            errors += jetstream.verify(cfg, js, notes, results)
        procs = max(s.proc for s in specs) + 1
        rep = reporting.build(cfg, server_info, results, hist, cpu, procs)
        rep.notes = notes
        rep.interrupted = self.interrupted
        if self.server_cpu is not None:
            rep.server_cpu_by_process = self.server_cpu
            rep.server_cpu_s = sum(self.server_cpu.values())
        rep.errors = errors
        return rep

    # -- client processes

    def _execute(
        self, specs: list[ClientSpec], expected: int
    ) -> tuple[list[dict[str, Any]], Any, list[float]]:
        cfg = self.cfg
        ctx = mp.get_context("spawn")
        counters = ctx.RawArray("q", 2 * len(specs))
        nprocs = max(s.proc for s in specs) + 1
        try:
            for p in range(nprocs):
                parent, child = ctx.Pipe()
                mine = [s for s in specs if s.proc == p]
                process = ctx.Process(
                    target=child_main,
                    args=(child, cfg, mine, counters, p),
                    name=f"shardbroker-bench-{p}",
                    daemon=True,
                )
                process.start()
                child.close()
                self.children.append(_Child(p, process, parent))
            self._wait_ready()
            tracker = scenarios.Tracker(cfg, specs, expected)
            # A passive run says it is ready only once "go" is out: a signal after the
            # ready line then ends a started run with its report.
            announce = (
                (lambda: _announce(cfg, specs)) if cfg.mode in scenarios.PASSIVE_MODES else None
            )
            self._monitor(tracker, counters, announce)
            if self.probe is not None and self.probing:
                self.server_cpu = self.probe.stop()
        except KeyboardInterrupt:
            if not self.started:
                raise BenchError("interrupted", EXIT_INTERRUPTED) from None
            self.interrupted = True
            self._stop_all()
            with contextlib.suppress(KeyboardInterrupt):
                self._collect(cfg.timeout + RESULT_GRACE)
        finally:
            self._reap()
        failed = [c.error for c in self.children if c.error]
        if failed:
            raise BenchError(failed[0])
        missing = [c.proc for c in self.children if c.result is None]
        if missing:
            raise BenchError(f"client process {missing[0]} reported no result")
        results: list[dict[str, Any]] = []
        hist = new_histogram()
        cpu: list[float] = []
        for c in self.children:
            assert c.result is not None
            results += c.result["clients"]
            if c.result["hist"] is not None:
                hist.decode_and_add(c.result["hist"])
            wall = c.result["wall"]
            cpu.append(c.result["cpu"] / wall if wall > 0 else 0.0)
        return results, hist, cpu

    def _receive(self, child: _Child) -> None:
        try:
            kind, payload = child.pipe.recv()
        except (EOFError, OSError):
            code = child.process.exitcode
            child.error = f"client process {child.proc} exited unexpectedly (exit code {code})"
            return
        if kind == "ready":
            child.ready = True
        elif kind == "result":
            child.result = payload
        elif kind == "error":
            child.error = payload

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.timeout + READY_GRACE
        while True:
            waiting = [c for c in self.children if not c.ready and not c.finished]
            errors = [c.error for c in self.children if c.error]
            if errors:
                raise BenchError(errors[0])
            if not waiting:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"client process {waiting[0].proc} was not ready in time")
            for pipe in mp_wait([c.pipe for c in waiting], timeout=min(left, 0.5)):
                self._receive(next(c for c in waiting if c.pipe is pipe))

    def _send_all(self, message: tuple[str, Any]) -> None:
        for c in self.children:
            with contextlib.suppress(OSError, BrokenPipeError):
                c.pipe.send(message)

    def _stop_all(self) -> None:
        self._send_all(("stop", None))

    def _monitor(self, tracker: scenarios.Tracker, counters: Any, announce: Any = None) -> None:
        """From "go" until every process reported: stop rules, idle timeout, progress."""
        cfg = self.cfg
        progress = _Progress(cfg)
        if self.probe is not None:
            self.probe.start()
            self.probing = True
        self._send_all(("go", None))
        self.started = True
        if announce is not None:
            announce()
        t_go = last_change = time.monotonic()
        last_total = -1
        stopped_at = 0.0
        idle_limit = cfg.timeout + (1.0 / cfg.rate if cfg.rate else 0.0)
        try:
            while True:
                pending = [c for c in self.children if not c.finished]
                if not pending:
                    return
                for pipe in mp_wait([c.pipe for c in pending], timeout=POLL_INTERVAL):
                    self._receive(next(c for c in pending if c.pipe is pipe))
                if any(c.error for c in self.children):
                    self._stop_all()
                    self._collect(RESULT_GRACE)
                    return
                now = time.monotonic()
                # States first: a client writes its final count before it marks itself
                # done, so a count read after a "done" state is final.
                states = counters[1::2]
                counts = counters[0::2]
                if not stopped_at and tracker.finished(counts, states, now - t_go):
                    self._stop_all()
                    stopped_at = now
                total = sum(counts)
                if total != last_total:
                    last_total, last_change = total, now
                elif stopped_at:
                    if now - stopped_at > cfg.timeout + RESULT_GRACE:
                        raise BenchError("client processes did not finish after the run ended")
                elif not tracker.external and now - last_change > idle_limit:
                    self._stop_all()
                    raise BenchError(
                        f"timed out: no progress for {idle_limit:g}s; "
                        f"{tracker.missing(counts, states)}"
                    )
                progress.update(tracker.progress(counts, now - t_go), total, now)
        finally:
            progress.close()

    def _collect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pending = [c for c in self.children if not c.finished]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return
            for pipe in mp_wait([c.pipe for c in pending], timeout=min(left, 0.5)):
                self._receive(next(c for c in pending if c.pipe is pipe))
            for c in pending:
                if not c.finished and not c.process.is_alive() and not c.pipe.poll():
                    c.error = f"client process {c.proc} exited (exit code {c.process.exitcode})"

    def _reap(self) -> None:
        self._stop_all()
        for c in self.children:
            c.process.join(timeout=RESULT_GRACE)
            if c.process.is_alive():
                c.process.terminate()  # our own child, by its Process object
                c.process.join(timeout=RESULT_GRACE)
            c.pipe.close()


def _announce(cfg: BenchConfig, specs: list[ClientSpec]) -> None:
    """sub/reply wait for traffic from elsewhere: say when they listen (tests wait for it)."""
    n = len(specs)
    what = "subscriber" if cfg.mode == "sub" else "responder"
    group = f" (queue {cfg.queue!r})" if cfg.mode == "reply" else ""
    until = f"until {cfg.msgs:,} messages" if cfg.msgs else "until stopped (Ctrl-C)"
    if cfg.duration:
        until = f"for {cfg.duration:g} s"
    sys.stderr.write(
        f"shardbroker bench: {n} {what}{'s' if n > 1 else ''} ready on {cfg.subject!r}{group} "
        f"at {cfg.server_display}, running {until}\n"
    )
    sys.stderr.flush()


class _Progress:
    """A progress bar on stderr (rich), only when stderr is a terminal and neither
    --no-progress nor --json was given."""

    def __init__(self, cfg: BenchConfig) -> None:
        self.bar: Any = None
        self.task: Any = None
        self.last_t = 0.0
        self.last_total = 0
        self.rate = 0.0
        if not cfg.progress or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(f"bench {cfg.mode}", total=None, detail="")

    def update(self, progress: tuple[float, float | None, str], total: int, now: float) -> None:
        if self.bar is None:
            return
        if now - self.last_t >= 0.25:
            if self.last_t:
                self.rate = (total - self.last_total) / (now - self.last_t)
            self.last_t, self.last_total = now, total
        done, whole, unit = progress
        if unit == "s":
            detail = f"{done:.1f}/{whole:g} s"
        else:
            detail = f"{int(done):,}/{int(whole):,} msgs" if whole else f"{int(done):,} msgs"
        detail += f"  {self.rate:,.0f} msgs/s"
        self.bar.update(self.task, completed=done, total=whole, detail=detail)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# -- coordinator set-up ---------------------------------------------------------------------------


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _prepare(cfg: BenchConfig) -> tuple[dict[str, Any], Any]:
    """Probe the server (reachable, max_payload, JetStream) and set JetStream up."""
    url = ServerURL(cfg.server)
    problems: list[str] = []
    conn = await connect(url, "probe", problems.append, timeout=cfg.timeout)
    info = dict(conn.info or {})
    conn.close()
    max_payload = info.get("max_payload")
    largest = max(cfg.sizes or (cfg.size,))
    if isinstance(max_payload, int) and largest > max_payload:
        raise BenchError(
            f"--size {largest} is larger than the server's max_payload ({max_payload} bytes)",
            EXIT_USAGE,
        )
    js = None
    if cfg.mode in scenarios.JS_MODES:
        from shardbroker.bench import jetstream

        js = await jetstream.prepare(cfg, info)
    return info, js


# -- client processes ---------------------------------------------------------------------------


def child_main(
    pipe: Pipe, cfg: BenchConfig, specs: list[ClientSpec], counters: Any, proc: int
) -> None:
    """Entry point of a client process (spawned). Reports failures over the pipe, never
    as a traceback on the terminal."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run_loop(_child(pipe, cfg, specs, counters, proc))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", f"client process {proc}: {type(exc).__name__}: {exc}"))
        if not isinstance(exc, Exception):
            raise


async def _child(
    pipe: Pipe, cfg: BenchConfig, specs: list[ClientSpec], counters: Any, proc: int
) -> None:
    loop = asyncio.get_running_loop()
    ctx = ProcessContext(cfg, counters, proc)
    roles = [scenarios.role_class(s.role)(s, ctx) for s in specs]
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_pipe() -> None:
        try:
            message = pipe.recv()
        except (EOFError, OSError):  # the coordinator is gone: stop
            loop.remove_reader(pipe.fileno())
            message = ("stop", None)
        inbox.put_nowait(message)

    loop.add_reader(pipe.fileno(), on_pipe)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            await asyncio.gather(*(r.setup() for r in roles))
        except (BenchError, ConnectionError) as exc:
            pipe.send(("error", str(exc)))
            return
        if ctx.failed.done():
            pipe.send(("error", ctx.failed.result()))
            return
        pipe.send(("ready", None))
        if (await inbox.get())[0] != "go":
            return
        ctx.t_go = time.monotonic()
        cpu0 = time.process_time()
        tasks = [asyncio.create_task(r.run()) for r in roles]
        everything = asyncio.gather(*tasks)
        everything.add_done_callback(_retrieve)

        async def watch() -> None:
            while (await inbox.get())[0] != "stop":
                pass
            ctx.stop.set()

        watcher = asyncio.create_task(watch())
        either: set[asyncio.Future[Any]] = {everything, ctx.failed}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if ctx.failed.done():
            pipe.send(("error", ctx.failed.result()))
            return
        try:
            await everything
        except (BenchError, ConnectionError) as exc:
            pipe.send(("error", str(exc)))
            return
        hist = ctx.hist
        pipe.send(
            (
                "result",
                {
                    "clients": [r.result() for r in roles],
                    "hist": hist.encode() if hist.get_total_count() else None,
                    "cpu": time.process_time() - cpu0,
                    "wall": time.monotonic() - ctx.t_go,
                },
            )
        )
    finally:
        for t in tasks:
            t.cancel()
        # Collect the cancelled runs, so that no "exception was never retrieved" is logged.
        await asyncio.gather(*tasks, return_exceptions=True)
        for r in roles:
            r.close()
        with contextlib.suppress(Exception):
            loop.remove_reader(pipe.fileno())


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (it is reported through the pipe instead)."""
    if not fut.cancelled():
        fut.exception()


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "BenchError", "Runner", "run_cli"]
