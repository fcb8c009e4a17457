"""Idle connections: the server's memory with N connected, silent clients.

`run_idle(url, n, memory)` opens `n` connections to the server (each reads INFO, sends
`CONNECT {...}\\r\\nPING\\r\\n` and waits for the PONG, then stays silent; server PINGs are
answered), spread over as many client processes as the client's fd limit needs, measures
the server's memory with a caller-supplied probe, then closes them all.

Each connection is a minimal asyncio protocol (`IdleConn`, below), not the bench client:
it sends the shortest CONNECT a NATS client may send, so that what the server keeps per
connection is what it keeps for any client (the idle figures stay comparable with the
earlier runs).

The client processes raise their own RLIMIT_NOFILE soft limit to the hard limit with
`resource`. The server's fd limit is the server's business: connections it cannot take
(EMFILE on accept shows up here as a connection reset or an INFO that never comes) are
counted and reported as an error of the run, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import resource
import socket
import time
import traceback
from collections import Counter, deque
from multiprocessing.connection import Connection
from typing import Any

from perf.scenarios import parse_url

CONNECT_PING = (
    b'CONNECT {"verbose":false,"pedantic":false,"headers":false,"protocol":1}\r\nPING\r\n'
)
READY_TIMEOUT = 60.0
GO_TIMEOUT = 300.0

PER_PROCESS = 5000  # connections per client process (fds), at most
FD_MARGIN = 64  # fds a client process keeps for itself (pipes, the event loop, ...)
# Handshakes in flight per client process. Kept below common listen backlogs (asyncio's
# default is 100) so that the scenario measures memory, not the accept queue: with 200
# per process shardbroker's listeners overflowed (see perf/README.md).
CONCURRENCY = 64
SLOW_HANDSHAKE = 1.0  # seconds; slower means a SYN-ACK retransmit (accept queue overflow)


def shard_of(client_id: int) -> int:
    """The shardbroker worker a connection lives on; 0 for nats-server."""
    return (int(client_id) >> 32) & 0xFF


class IdleConn(asyncio.Protocol):
    """One idle NATS connection: reads INFO, answers PINGs, resolves PONG waiters."""

    __slots__ = ("buf", "closing", "err", "info_waiter", "lost", "pongs", "transport")

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.info_waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pongs: deque[asyncio.Future[None]] = deque()
        self.err: str | None = None
        self.closing = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.closing and self.err is None:
            self.err = f"connection closed by server ({exc or 'EOF'})"
        error = ConnectionError(self.err or "connection closed")
        if not self.info_waiter.done():
            self.info_waiter.set_exception(error)
        while self.pongs:
            fut = self.pongs.popleft()
            if not fut.done():
                fut.set_exception(error)

    def data_received(self, data: bytes) -> None:
        data = self.buf + data if self.buf else data
        pos = 0
        while (nl := data.find(b"\r\n", pos)) >= 0:
            op = data[pos : pos + 4]
            if op == b"PING":
                self.transport.write(b"PONG\r\n")  # type: ignore[union-attr]
            elif op == b"PONG":
                if self.pongs:
                    fut = self.pongs.popleft()
                    if not fut.done():
                        fut.set_result(None)
            elif op == b"INFO":
                if not self.info_waiter.done():
                    self.info_waiter.set_result(json.loads(data[pos + 5 : nl]))
            elif op == b"-ERR":
                self.err = data[pos:nl].decode(errors="replace")
            pos = nl + 2
        self.buf = data[pos:]

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def raise_nofile() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def per_process_capacity() -> int:
    """Connections one client process can hold once its limit is raised."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return PER_PROCESS
    return max(1, min(PER_PROCESS, hard - FD_MARGIN))


def _describe(stage: str, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no {stage} within {timeout:.0f} s"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__} at {stage}: {exc.strerror}"
    return f"{exc or type(exc).__name__} (at {stage})"


async def _hold(
    pipe: Connection,
    host: str,
    port: int,
    count: int,
    timeout: float,  # noqa: ASYNC109 (a deadline per connection step, named in failures)
) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()

    def on_pipe() -> None:
        try:
            msg = pipe.recv()
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            msg = ("stop", None)
        inbox.put_nowait(msg)

    loop.add_reader(pipe.fileno(), on_pipe)
    conns: list[IdleConn] = []
    failures: Counter[str] = Counter()
    shards: Counter[int] = Counter()
    sem = asyncio.Semaphore(CONCURRENCY)
    slow: list[float] = []

    async def one() -> None:
        async with sem:
            conn: IdleConn | None = None
            t0 = time.monotonic()
            stage = "TCP connect"
            try:
                connecting = loop.create_connection(IdleConn, host, port)
                _, made = await asyncio.wait_for(connecting, timeout)
                conn = made
                stage = "INFO"
                info = await asyncio.wait_for(conn.info_waiter, timeout)
                stage = "PONG"
                fut = loop.create_future()
                conn.pongs.append(fut)
                conn.transport.write(CONNECT_PING)  # type: ignore[union-attr]
                await asyncio.wait_for(fut, timeout)
            except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
                failures[_describe(stage, exc, timeout)] += 1
                if conn is not None:
                    conn.close()
                return
            conns.append(conn)
            shards[shard_of(info.get("client_id", 0))] += 1
            took = time.monotonic() - t0
            if took > SLOW_HANDSHAKE:
                slow.append(took)

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(one() for _ in range(count)))
        elapsed = time.monotonic() - t0
        # A connection the server dropped after its PONG is not "idle and open".
        lost = [c for c in conns if c.lost]
        for c in lost:
            failures[f"closed by the server after the handshake ({c.err})"] += 1
        conns = [c for c in conns if not c.lost]
        pipe.send(
            (
                "ready",
                {
                    "open": len(conns),
                    "failures": dict(failures),
                    "shards": dict(shards),
                    "elapsed": elapsed,
                    "slow": len(slow),
                    "slowest": max(slow, default=0.0),
                },
            )
        )
        msg = await asyncio.wait_for(inbox.get(), GO_TIMEOUT)
        dropped = sum(1 for c in conns if c.lost)
        pipe.send(("done", {"dropped": dropped, "msg": msg[0]}))
    finally:
        for c in conns:
            c.close()
        await asyncio.sleep(0)  # let the transports send their FINs
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(pipe.fileno())


def client_main(pipe: Connection, host: str, port: int, count: int, timeout: float) -> None:
    """Entry point of an idle-client process (spawned)."""
    try:
        soft, _ = raise_nofile()
        if soft != resource.RLIM_INFINITY and soft < count + FD_MARGIN:
            raise RuntimeError(
                f"client fd limit {soft} is too low for {count} connections in one process"
            )
        try:
            import uvloop

            uvloop.run(_hold(pipe, host, port, count, timeout))
        except ImportError:
            asyncio.run(_hold(pipe, host, port, count, timeout))
    except BaseException as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with contextlib.suppress(OSError):
            pipe.send(("error", f"idle client: {detail}"))
        if not isinstance(exc, Exception):
            raise


def listen_overflows() -> int | None:
    """The kernel's TcpExt ListenOverflows counter (all sockets), None if unreadable.

    It counts connections dropped because a listener's accept queue was full; the
    client then waits for a SYN-ACK retransmission (1 s, 3 s, 7 s, ...).
    """
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            try:
                return int(fields["ListenOverflows"])
            except (KeyError, ValueError):
                return None
    return None


def run_idle(url: str, n: int, measure: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Open `n` idle connections, call `measure()` while they are open, close them.

    Returns: opened (count), failures ({reason: count}), shards ({shard: count}),
    connect_s (time to open them all, the slowest client process), processes,
    slow (handshakes slower than SLOW_HANDSHAKE), slowest (s), listen_overflows (the
    kernel counter's increase during the run), errors (list of strings), memory
    (whatever `measure()` returned, or None).
    """
    host, port = parse_url(url)
    cap = per_process_capacity()
    nprocs = -(-n // cap)
    counts = [n // nprocs + (1 if i < n % nprocs else 0) for i in range(nprocs)]
    ctx = mp.get_context("spawn")
    procs: list[tuple[Any, Connection]] = []
    res: dict[str, Any] = {
        "opened": 0,
        "failures": {},
        "shards": {},
        "connect_s": None,
        "processes": nprocs,
        "errors": [],
        "memory": None,
        "slow": 0,
        "slowest": 0.0,
        "listen_overflows": None,
    }
    overflows0 = listen_overflows()
    failures: Counter[str] = Counter()
    shards: Counter[int] = Counter()
    try:
        for count in counts:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=client_main,
                args=(child, host, port, count, timeout),
                name="perf-idle",
                daemon=True,
            )
            proc.start()
            child.close()
            procs.append((proc, parent))
        deadline = time.monotonic() + READY_TIMEOUT + timeout * (n / CONCURRENCY / nprocs)
        slowest = 0.0
        for proc, pipe in procs:
            msg = None
            while msg is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    res["errors"].append("idle client: not ready in time")
                    break
                if pipe.poll(min(1.0, remaining)):
                    try:
                        msg = pipe.recv()
                    except EOFError:
                        res["errors"].append(f"idle client exited ({proc.exitcode})")
                        break
                elif not proc.is_alive():
                    res["errors"].append(f"idle client exited ({proc.exitcode})")
                    break
            if msg is None:
                continue
            if msg[0] == "error":
                res["errors"].append(msg[1])
                continue
            info = msg[1]
            res["opened"] += info["open"]
            failures.update(info["failures"])
            shards.update({int(k): v for k, v in info["shards"].items()})
            slowest = max(slowest, info["elapsed"])
            res["slow"] += info["slow"]
            res["slowest"] = max(res["slowest"], info["slowest"])
        overflows1 = listen_overflows()
        if overflows0 is not None and overflows1 is not None:
            res["listen_overflows"] = overflows1 - overflows0
        res["connect_s"] = slowest
        res["failures"] = dict(failures)
        res["shards"] = dict(sorted(shards.items()))
        if res["opened"] < n:
            detail = ", ".join(f"{v} x {k}" for k, v in failures.most_common())
            res["errors"].append(
                f"opened {res['opened']} of {n} idle connections"
                + (f" ({detail})" if detail else "")
            )
        time.sleep(0.5)  # let the server finish its bookkeeping for the last handshakes
        res["memory"] = measure()
        dropped = 0
        for _, pipe in procs:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        for _, pipe in procs:
            if pipe.poll(10.0):
                with contextlib.suppress(EOFError, OSError):
                    msg = pipe.recv()
                    if msg[0] == "done":
                        dropped += msg[1]["dropped"]
        if dropped:
            res["errors"].append(f"the server closed {dropped} idle connections while measuring")
    finally:
        for _, pipe in procs:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        for proc, pipe in procs:
            proc.join(10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            pipe.close()
    return res
