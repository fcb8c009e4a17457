"""Raw-socket NATS load generator.

No client library: every connection does the handshake by hand (read INFO, send
`CONNECT {...}\\r\\nPING\\r\\n`, wait PONG) and then writes pre-built batches of `PUB`
frames or counts `MSG` frames. It is deliberately cheap per message so that on a 2-core
machine the broker, not the generator, is what gets measured:

- publishers write ~64 KiB chunks of identical `PUB` frames (one `write` per chunk);
- subscribers recognise runs of identical `MSG` frames with one `startswith` per block of
  64 frames and fall back to a per-frame parser (find `\\r\\n`, skip the payload by its
  declared size) for anything else;
- request/reply uses blocking sockets (one syscall each way per round trip, no event
  loop hop) so that the latency reported is mostly the server's.

Each *role* (publishers, subscribers, requester, responder) runs in its own process,
started with the multiprocessing "spawn" context and driving all of that role's
connections, so a scenario costs at most two generator processes. The coordinator
(`run_scenario`) talks to them over pipes: ready -> go -> done. All timestamps are
`time.monotonic()`, which is CLOCK_MONOTONIC on Linux and so comparable across processes.

Spreading over shardbroker workers: shardbroker encodes the worker in the INFO
`client_id` (`shard = (client_id >> 32) & 0xFF`, workers are 1..N). With
`Options.spread`, every connection has a target shard and is re-opened (bounded) until
the kernel's SO_REUSEPORT hashing lands it there. nats-server's ids give shard 0, which
turns the option into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import multiprocessing as mp
import secrets
import select
import socket
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from typing import Any
from urllib.parse import urlsplit

CONNECT_PING = (
    b'CONNECT {"verbose":false,"pedantic":false,"headers":false,"protocol":1}\r\nPING\r\n'
)
PING = b"PING\r\n"
PONG = b"PONG\r\n"

SCENARIOS = (
    "pub",
    "pubsub",
    "pubsub-1k",
    "pubsub-64k",
    "pubsub-mixed",
    "fanout",
    "fanout16",
    "queue",
    "fanin",
    "reqrep",
    "idle",
)
# `idle` is not a message flow: perf/idle.py runs it (perf.compare dispatches); it is
# listed here so that names, titles and aliases live in one place.
TITLES = {
    "pub": "pub-only",
    "pubsub": "pubsub 1:1",
    "pubsub-1k": "pubsub 1:1, 1 KiB",
    "pubsub-64k": "pubsub 1:1, 64 KiB",
    # Payload sizes alternate, so no two consecutive PUBs share a control line: this
    # measures the per-message path of a broker that batches identical lines.
    "pubsub-mixed": "pubsub 1:1, mixed sizes",
    "fanout": "fan-out 1:4",
    "fanout16": "fan-out 1:16",
    "queue": "queue 4x4",
    "fanin": "fan-in 32:1",
    "reqrep": "request/reply",
    "idle": "10k idle conns",
}
UNITS = {
    "pub": "msg/s",
    "pubsub": "msg/s",
    "pubsub-1k": "msg/s",
    "pubsub-64k": "msg/s",
    "pubsub-mixed": "msg/s",
    "fanout": "msg/s delivered",
    "fanout16": "msg/s delivered",
    "queue": "msg/s",
    "fanin": "msg/s",
    "reqrep": "round trips/s",
    "idle": "MiB RSS",
}
ALIASES = {
    "pub": "pub",
    "pub-only": "pub",
    "pubonly": "pub",
    "pubsub": "pubsub",
    "pubsub-1:1": "pubsub",
    "1:1": "pubsub",
    "pubsub-16": "pubsub",
    "pubsub-16b": "pubsub",
    "pubsub-1k": "pubsub-1k",
    "pubsub-1kib": "pubsub-1k",
    "pubsub-1024": "pubsub-1k",
    "pubsub-64k": "pubsub-64k",
    "pubsub-64kib": "pubsub-64k",
    "pubsub-65536": "pubsub-64k",
    "pubsub-mixed": "pubsub-mixed",
    "mixed": "pubsub-mixed",
    "fanout": "fanout",
    "fan-out": "fanout",
    "fanout4": "fanout",
    "fanout-1:4": "fanout",
    "fanout16": "fanout16",
    "fan-out16": "fanout16",
    "fanout-16": "fanout16",
    "fanout-1:16": "fanout16",
    "queue": "queue",
    "queue-4x4": "queue",
    "fanin": "fanin",
    "fan-in": "fanin",
    "reqrep": "reqrep",
    "request-reply": "reqrep",
    "request/reply": "reqrep",
    "req": "reqrep",
    "idle": "idle",
    "idle-conns": "idle",
}
FANOUT_SUBS = 4
FANOUT16_SUBS = 16
QUEUE_PUBS = 4
QUEUE_MEMBERS = 4
QUEUE_GROUP = "workers"
FANIN_PUBS = 32

# Scenarios with a fixed payload size (the others use Options.payload).
PAYLOADS = {"pubsub-1k": 1024, "pubsub-64k": 65536}
# Messages per run = Options.msgs // divisor, so that every scenario takes about as long
# as the 16-byte ones (a 1M x 64 KiB run would move 64 GB).
MSGS_DIVISOR = {"pubsub-1k": 4, "pubsub-64k": 128, "fanout16": 4}
MIN_MSGS = 100

FAST_BLOCK = 64  # identical MSG frames recognised by one startswith()
CHUNK_BYTES = 64 * 1024  # publisher write size
READY_TIMEOUT = 60.0
GO_TIMEOUT = 300.0
HARD_TIMEOUT = 900.0


class LoadError(Exception):
    """A run could not complete (count mismatch, timeout, server error)."""


def shard_of(client_id: int) -> int:
    """The shardbroker worker a connection lives on; 0 for nats-server."""
    return (int(client_id) >> 32) & 0xFF


def parse_url(url: str) -> tuple[str, int]:
    if "://" not in url:
        url = "nats://" + url
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 4222


def canonical(name: str) -> str:
    key = name.strip().lower()
    if key not in ALIASES:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return ALIASES[key]


def make_payload(size: int) -> bytes:
    # Printable, no CR/LF, never contains "MSG": the fast path can't be fooled.
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


@dataclass
class Options:
    msgs: int = 1_000_000  # messages published per run (all publishers together)
    requests: int = 20_000  # round trips per request/reply run
    payload: int = 16
    spread: bool = False  # place connections on alternating shardbroker workers
    shards: int = 2  # number of workers to alternate over
    tries: int = 64  # connection attempts per connection when spreading
    idle_timeout: float = 10.0  # no progress for this long = the run failed


# --------------------------------------------------------------------------- plan


def scenario_options(scenario: str, opt: Options) -> Options:
    """The options one scenario really runs with: its fixed payload, its message count."""
    changes: dict[str, Any] = {}
    if scenario in PAYLOADS:
        changes["payload"] = PAYLOADS[scenario]
    if scenario in MSGS_DIVISOR:
        changes["msgs"] = min(opt.msgs, max(MIN_MSGS, opt.msgs // MSGS_DIVISOR[scenario]))
    return dataclasses.replace(opt, **changes) if changes else opt


def plan(scenario: str, host: str, port: int, opt: Options) -> list[dict[str, Any]]:
    """Role specs for one run; receivers first (they are started and told "go" first)."""

    def target(i: int) -> int | None:
        return 1 + i % max(1, opt.shards) if opt.spread else None

    def role(name: str, kind: str, conns: list[dict[str, Any]], **extra: Any) -> dict:
        spec = {
            "name": name,
            "role": kind,
            "host": host,
            "port": port,
            "payload": opt.payload,
            "tries": opt.tries,
            "idle": opt.idle_timeout,
            "conns": conns,
        }
        spec.update(extra)
        return spec

    def conn(subject: str, i: int, msgs: int = 0, queue: str | None = None) -> dict:
        return {"subject": subject, "target": target(i), "msgs": msgs, "queue": queue}

    n = opt.msgs
    if scenario == "pub":
        return [role("pub", "pub", [conn("bench.pub", 0, n)])]
    if scenario in ("pubsub", "pubsub-1k", "pubsub-64k"):
        return [
            role("sub", "sub", [conn("bench.ps", 1)], expect=n),
            role("pub", "pub", [conn("bench.ps", 0, n)]),
        ]
    if scenario == "pubsub-mixed":
        return [
            role("sub", "sub", [conn("bench.mix", 1)], expect=n),
            role("pub", "pub", [conn("bench.mix", 0, n)], mixed=True),
        ]
    if scenario in ("fanout", "fanout16"):
        k = FANOUT_SUBS if scenario == "fanout" else FANOUT16_SUBS
        subs = [conn("bench.fan", 1 + i) for i in range(k)]
        return [
            role("subs", "sub", subs, expect=n * k),
            role("pub", "pub", [conn("bench.fan", 0, n)]),
        ]
    if scenario == "queue":
        members = [conn("bench.q", i, queue=QUEUE_GROUP) for i in range(QUEUE_MEMBERS)]
        base, extra = divmod(n, QUEUE_PUBS)
        pubs = [conn("bench.q", i, base + (1 if i < extra else 0)) for i in range(QUEUE_PUBS)]
        return [
            role("members", "sub", members, expect=n),
            role("pubs", "pub", pubs),
        ]
    if scenario == "fanin":
        base, extra = divmod(n, FANIN_PUBS)
        pubs = [conn("bench.in", i, base + (1 if i < extra else 0)) for i in range(FANIN_PUBS)]
        return [
            role("sub", "sub", [conn("bench.in", 1)], expect=n),
            role("pubs", "pub", pubs),
        ]
    if scenario == "reqrep":
        return [
            role("responder", "responder", [conn("svc", 1)], until_stop=True),
            role("requester", "requester", [conn("svc", 0, opt.requests)]),
        ]
    raise ValueError(f"unknown scenario {scenario!r}")


# --------------------------------------------------------------------- asyncio roles


class RoleState:
    """Message counting shared by all connections of a receiving role."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.total = 0
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.t_done: float | None = None
        self.event = asyncio.Event()

    def progress(self, n: int) -> None:
        now = time.monotonic()
        if self.t_first is None:
            self.t_first = now
        self.total += n
        if self.t_done is None:
            self.t_last = now
            if self.total >= self.expect:
                self.t_done = now
                self.event.set()

    def wake(self) -> None:
        self.event.set()


class Conn(asyncio.Protocol):
    """One NATS connection: handshake, PING/PONG, fast MSG counting."""

    def __init__(self, state: RoleState | None = None, fast_frame: bytes | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.info: dict[str, Any] | None = None
        self.info_waiter: asyncio.Future = loop.create_future()
        self.pongs: deque[asyncio.Future] = deque()
        self.count = 0
        self.err: str | None = None
        self.closing = False
        self.lost = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.fast_frame = fast_frame
        if fast_frame is not None:
            self.fast_len = len(fast_frame)
            self.fast_block = fast_frame * FAST_BLOCK
            self.fast_block_len = len(self.fast_block)

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=1 << 20, low=1 << 18)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.can_write.set()
        if not self.closing and self.err is None:
            self.err = f"connection closed by server ({exc or 'EOF'})"
        error = ConnectionError(self.err or "connection closed")
        if not self.info_waiter.done():
            self.info_waiter.set_exception(error)
        while self.pongs:
            fut = self.pongs.popleft()
            if not fut.done():
                fut.set_exception(error)
        if self.state is not None and not self.closing:
            self.state.wake()

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
        n = len(data)
        pos = 0
        cnt = 0
        ff = self.fast_frame
        if ff is not None:
            fb = self.fast_block
            fbl = self.fast_block_len
            fl = self.fast_len
        while pos < n:
            if ff is not None:
                if data.startswith(fb, pos):
                    pos += fbl
                    cnt += FAST_BLOCK
                    continue
                if data.startswith(ff, pos):
                    pos += fl
                    cnt += 1
                    continue
            nl = data.find(b"\r\n", pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG " or op == b"HMSG":
                try:
                    size = int(data[pos:nl].rsplit(None, 1)[1])
                except (IndexError, ValueError):
                    self._protocol_error(data[pos:nl])
                    return
                end = nl + 4 + size
                if end > n:
                    break
                cnt += 1
                pos = end
                continue
            if op == b"PING":
                self.transport.write(PONG)  # type: ignore[union-attr]
            elif op == b"PONG":
                if self.pongs:
                    fut = self.pongs.popleft()
                    if not fut.done():
                        fut.set_result(None)
            elif op == b"INFO":
                if self.info is None:
                    self.info = json.loads(data[pos + 5 : nl])
                    if not self.info_waiter.done():
                        self.info_waiter.set_result(self.info)
            elif op == b"-ERR":
                self.err = data[pos:nl].decode(errors="replace")
                if self.state is not None:
                    self.state.wake()
            pos = nl + 2
        self.buf = data[pos:] if pos < n else b""
        if cnt:
            self.count += cnt
            if self.state is not None:
                self.state.progress(cnt)

    def _protocol_error(self, line: bytes) -> None:
        self.err = f"unparsable line from server: {line[:80]!r}"
        if self.state is not None:
            self.state.wake()
        self.close()

    # -- helpers
    async def flush(self, timeout: float) -> None:
        fut = self.loop.create_future()
        self.pongs.append(fut)
        self.transport.write(PING)  # type: ignore[union-attr]
        await asyncio.wait_for(fut, timeout)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


async def open_conn(
    host: str,
    port: int,
    target: int | None,
    tries: int,
    timeout: float,
    state: RoleState | None = None,
    fast_frame: bytes | None = None,
) -> tuple[Conn, int, int]:
    """Connect and handshake; with a target shard, re-connect until it is hit.

    Returns (connection, shard, attempts). The last attempt is kept on a miss.
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        attempt += 1
        _, conn = await loop.create_connection(lambda: Conn(state, fast_frame), host, port)
        info = await asyncio.wait_for(conn.info_waiter, timeout)
        shard = shard_of(info.get("client_id", 0))
        if target is None or shard in (0, target) or attempt >= tries:
            break
        conn.close()  # a miss: let the kernel hash another source port
    fut = loop.create_future()
    conn.pongs.append(fut)
    conn.transport.write(CONNECT_PING)  # type: ignore[union-attr]
    await asyncio.wait_for(fut, timeout)
    return conn, shard, attempt


async def _publish(
    conn: Conn, subject: bytes, n: int, payload: bytes, idle: float, mixed: bool = False
) -> None:
    frame = b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    if mixed:
        # Two messages whose sizes differ by one byte: every other control line differs.
        longer = payload + b"+"
        frame += b"PUB %s %d\r\n%s\r\n" % (subject, len(longer), longer)
        n, odd = divmod(n, 2)
        if odd:
            conn.transport.write(b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload))  # type: ignore[union-attr]
    per = max(1, CHUNK_BYTES // len(frame))
    chunk = frame * per
    full, rem = divmod(n, per)
    write = conn.transport.write  # type: ignore[union-attr]
    can_write = conn.can_write
    for _ in range(full):
        if not can_write.is_set():
            try:
                await asyncio.wait_for(can_write.wait(), idle)
            except TimeoutError:
                raise LoadError(f"publisher blocked for {idle:.0f}s (server not reading)") from None
        if conn.lost:
            raise LoadError(conn.err or "publisher connection lost")
        write(chunk)
        await asyncio.sleep(0)  # lets sibling publishers and PING handling run
    if rem:
        write(frame * rem)
    if conn.lost:
        raise LoadError(conn.err or "publisher connection lost")


async def _run_pub(spec: dict, conns: list[Conn]) -> dict[str, Any]:
    payload = make_payload(spec["payload"])
    idle = spec["idle"]
    starts: list[float] = []

    async def one(conn: Conn, c: dict) -> tuple[float, float]:
        t0 = time.monotonic()
        starts.append(t0)
        await _publish(
            conn, c["subject"].encode(), c["msgs"], payload, idle, spec.get("mixed", False)
        )
        try:
            await conn.flush(idle + 20.0)
        except TimeoutError:
            raise LoadError("final PING not answered") from None
        return t0, time.monotonic()

    results = await asyncio.gather(
        *(one(conn, c) for conn, c in zip(conns, spec["conns"], strict=True)),
        return_exceptions=True,
    )
    errors = [str(r) or type(r).__name__ for r in results if isinstance(r, BaseException)]
    errors += [c.err for c in conns if c.err and c.err.startswith("-ERR")]
    ok = [r for r in results if not isinstance(r, BaseException)]
    return {
        "t_start": min(starts) if starts else None,
        "t_end": max(r[1] for r in ok) if ok else None,
        "sent": sum(c["msgs"] for c in spec["conns"]),
        "errors": errors,
    }


async def _run_sub(spec: dict, conns: list[Conn], state: RoleState) -> dict[str, Any]:
    idle = spec["idle"]
    go = time.monotonic()
    errors: list[str] = []
    while state.total < state.expect:
        errs = [c.err for c in conns if c.err]
        if errs:
            errors.extend(errs)
            break
        last = state.t_last or go
        if time.monotonic() - last > idle:
            errors.append(
                f"timeout: received {state.total} of {state.expect} messages "
                f"(no progress for {idle:.0f}s)"
            )
            break
        state.event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.event.wait(), 0.25)
    # Flush every connection so that extra (duplicate) deliveries already queued show up.
    for c in conns:
        if not c.lost:
            try:
                await c.flush(idle)
            except (TimeoutError, ConnectionError) as exc:
                errors.append(f"final flush failed: {exc!r}")
    return {
        "counts": [c.count for c in conns],
        "total": sum(c.count for c in conns),
        "expect": state.expect,
        "t_first": state.t_first,
        "t_last": state.t_done or state.t_last,
        "errors": errors,
    }


async def _async_role(pipe: Connection, spec: dict) -> None:
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
    kind = spec["role"]
    host, port, idle = spec["host"], spec["port"], spec["idle"]
    payload = make_payload(spec["payload"])
    state = RoleState(spec.get("expect", 0)) if kind == "sub" else None
    conns: list[Conn] = []
    shards: list[int] = []
    attempts: list[int] = []
    try:
        for c in spec["conns"]:
            fast = None
            if kind == "sub":
                fast = b"MSG %s 1 %d\r\n%s\r\n" % (c["subject"].encode(), len(payload), payload)
            conn, shard, tries = await open_conn(
                host, port, c["target"], spec["tries"], idle, state, fast
            )
            conns.append(conn)
            shards.append(shard)
            attempts.append(tries)
        if kind == "sub":
            for conn, c in zip(conns, spec["conns"], strict=True):
                queue = f" {c['queue']}" if c["queue"] else ""
                conn.transport.write(f"SUB {c['subject']}{queue} 1\r\n".encode())  # type: ignore[union-attr]
            await asyncio.gather(*(conn.flush(idle) for conn in conns))
        targets = [c["target"] for c in spec["conns"]]
        missed = [
            i for i, (s, t) in enumerate(zip(shards, targets, strict=True)) if t and s and s != t
        ]
        pipe.send(("ready", {"shards": shards, "attempts": attempts, "missed": missed}))
        msg = await asyncio.wait_for(inbox.get(), GO_TIMEOUT)
        if msg[0] != "go":
            return
        cpu0, wall0 = time.process_time(), time.monotonic()
        if kind == "pub":
            result = await _run_pub(spec, conns)
        else:
            assert state is not None
            result = await _run_sub(spec, conns, state)
        result["cpu"] = time.process_time() - cpu0
        result["wall"] = time.monotonic() - wall0
        pipe.send(("done", result))
    finally:
        for conn in conns:
            conn.close()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(pipe.fileno())


# -------------------------------------------------------------------- blocking roles


class SyncConn:
    """A blocking NATS connection for the request/reply roles."""

    def __init__(self, sock: socket.socket, buf: bytes) -> None:
        self.sock = sock
        self.buf = buf
        self.pos = 0

    def next_event(self) -> tuple[str, bytes, bytes]:
        """Block until a MSG (returns its control line and payload) or a PONG."""
        while True:
            buf, pos = self.buf, self.pos
            nl = buf.find(b"\r\n", pos)
            if nl >= 0:
                op = buf[pos : pos + 4]
                if op == b"MSG ":
                    line = buf[pos:nl]
                    size = int(line.rsplit(None, 1)[1])
                    end = nl + 2 + size
                    if end + 2 <= len(buf):
                        self.pos = end + 2
                        return "MSG", line, buf[nl + 2 : end]
                else:
                    self.pos = nl + 2
                    if op == b"PING":
                        self.sock.sendall(PONG)
                    elif op == b"PONG":
                        return "PONG", b"", b""
                    elif op == b"-ERR":
                        raise LoadError(buf[pos:nl].decode(errors="replace"))
                    continue
            data = self.sock.recv(262144)
            if not data:
                raise LoadError("connection closed by server")
            self.buf = buf[pos:] + data
            self.pos = 0

    def flush(self) -> None:
        self.sock.sendall(PING)
        while self.next_event()[0] != "PONG":
            pass


def sync_open(
    host: str, port: int, target: int | None, tries: int, timeout: float
) -> tuple[SyncConn, int, int]:
    attempt = 0
    while True:
        attempt += 1
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise LoadError("connection closed before INFO")
            buf += data
        line, _, rest = buf.partition(b"\r\n")
        if not line.startswith(b"INFO "):
            raise LoadError(f"expected INFO, got {line[:80]!r}")
        shard = shard_of(json.loads(line[5:]).get("client_id", 0))
        if target is None or shard in (0, target) or attempt >= tries:
            break
        sock.close()
    conn = SyncConn(sock, rest)
    sock.sendall(CONNECT_PING)
    while conn.next_event()[0] != "PONG":
        pass
    return conn, shard, attempt


def _ready(pipe: Connection, spec: dict, shard: int, attempts: int) -> None:
    target = spec["conns"][0]["target"]
    missed = [0] if target and shard and shard != target else []
    pipe.send(("ready", {"shards": [shard], "attempts": [attempts], "missed": missed}))


def _requester(pipe: Connection, spec: dict) -> None:
    c = spec["conns"][0]
    conn, shard, attempts = sync_open(
        spec["host"], spec["port"], c["target"], spec["tries"], spec["idle"]
    )
    prefix = b"_INBOX.%s." % secrets.token_hex(8).encode()
    conn.sock.sendall(b"SUB %s* 1\r\n" % prefix)
    conn.flush()
    _ready(pipe, spec, shard, attempts)
    if not pipe.poll(GO_TIMEOUT) or pipe.recv()[0] != "go":
        return
    payload = make_payload(spec["payload"])
    n = c["msgs"]
    warmup = min(200, max(1, n // 20))
    lat = [0] * n
    errors: list[str] = []
    sock = conn.sock
    clock = time.perf_counter_ns
    done = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    t_start = t_end = wall0
    try:
        for i in range(-warmup, n):
            if i == 0:
                t_start = time.monotonic()
            inbox = prefix + str(i + warmup).encode()
            frame = b"PUB svc %s %d\r\n%s\r\n" % (inbox, len(payload), payload)
            t0 = clock()
            sock.sendall(frame)
            while True:
                kind, line, _ = conn.next_event()
                if kind == "MSG" and line.split()[1] == inbox:
                    break
            if i >= 0:
                lat[i] = clock() - t0
                done = i + 1
        t_end = time.monotonic()
    except (TimeoutError, OSError, LoadError) as exc:
        t_end = time.monotonic()
        errors.append(f"after {done} of {n} round trips: {exc!r}")
    finally:
        sock.close()
    ok = sorted(lat[:done])
    result = {
        "trips": done,
        "expect": n,
        "t_start": t_start,
        "t_end": t_end,
        "p50_us": ok[len(ok) // 2] / 1000 if ok else None,
        "p99_us": ok[min(len(ok) - 1, (len(ok) * 99) // 100)] / 1000 if ok else None,
        "errors": errors,
        "cpu": time.process_time() - cpu0,
        "wall": time.monotonic() - wall0,
    }
    pipe.send(("done", result))


def _responder(pipe: Connection, spec: dict) -> None:
    c = spec["conns"][0]
    conn, shard, attempts = sync_open(
        spec["host"], spec["port"], c["target"], spec["tries"], spec["idle"]
    )
    sock = conn.sock
    sock.sendall(b"SUB %s 1\r\n" % c["subject"].encode())
    conn.flush()
    sock.settimeout(None)
    _ready(pipe, spec, shard, attempts)
    answered = 0
    errors: list[str] = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    buf = conn.buf[conn.pos :]
    try:
        while True:
            readable, _, _ = select.select([sock, pipe], [], [], 1.0)
            if pipe in readable:
                try:
                    msg = pipe.recv()
                except EOFError:
                    return
                if msg[0] == "go":
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    continue
                break  # stop
            if sock not in readable:
                continue
            data = sock.recv(262144)
            if not data:
                errors.append("connection closed by server")
                break
            buf += data
            out = []
            pos, n = 0, len(buf)
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                op = buf[pos : pos + 4]
                if op == b"MSG ":
                    parts = buf[pos:nl].split()
                    size = int(parts[-1])
                    end = nl + 2 + size
                    if end + 2 > n:
                        break
                    if len(parts) == 5:
                        out.append(b"PUB %s %d\r\n%s\r\n" % (parts[3], size, buf[nl + 2 : end]))
                        answered += 1
                    pos = end + 2
                    continue
                if op == b"PING":
                    out.append(PONG)
                elif op == b"-ERR":
                    errors.append(buf[pos:nl].decode(errors="replace"))
                pos = nl + 2
            buf = buf[pos:]
            if out:
                sock.sendall(b"".join(out))
    finally:
        sock.close()
    pipe.send(
        (
            "done",
            {
                "answered": answered,
                "errors": errors,
                "cpu": time.process_time() - cpu0,
                "wall": time.monotonic() - wall0,
            },
        )
    )


def role_main(pipe: Connection, spec: dict) -> None:
    """Entry point of a role process (spawned)."""
    try:
        if spec["role"] == "requester":
            _requester(pipe, spec)
        elif spec["role"] == "responder":
            _responder(pipe, spec)
        else:
            try:
                import uvloop

                uvloop.run(_async_role(pipe, spec))
            except ImportError:
                asyncio.run(_async_role(pipe, spec))
    except BaseException as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{spec['name']}: {detail}"))
        if not isinstance(exc, Exception):
            raise


# ----------------------------------------------------------------------- coordinator


@dataclass
class _Proc:
    spec: dict
    proc: Any
    pipe: Connection
    ready: dict | None = None
    done: dict | None = None
    error: str | None = None


def _collect(procs: list[_Proc], kind: str, timeout: float) -> list[str]:
    """Wait until every process in `procs` sent `kind` (or failed); return errors."""
    deadline = time.monotonic() + timeout
    pending = {id(p.pipe): p for p in procs}
    errors: list[str] = []
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for p in pending.values():
                p.error = f"{p.spec['name']}: no '{kind}' within {timeout:.0f}s"
                errors.append(p.error)
            break
        ready = mp_wait([p.pipe for p in pending.values()], timeout=min(1.0, remaining))
        for pipe in ready:
            p = pending[id(pipe)]
            try:
                msg = pipe.recv()
            except (EOFError, OSError):
                msg = ("error", f"{p.spec['name']}: role process exited ({p.proc.exitcode})")
            if msg[0] == kind:
                setattr(p, kind, msg[1])
            elif msg[0] == "error":
                p.error = msg[1]
                errors.append(msg[1])
            else:
                continue
            del pending[id(pipe)]
        for key, p in list(pending.items()):
            if not p.proc.is_alive() and not p.pipe.poll():
                p.error = f"{p.spec['name']}: role process exited ({p.proc.exitcode})"
                errors.append(p.error)
                del pending[key]
    return errors


def run_scenario(url: str, scenario: str, opt: Options, probe: Any = None) -> dict[str, Any]:
    """Run one scenario once against the server at `url`.

    `probe`, if given, is a zero-argument callable returning the server's CPU seconds;
    it is read right before "go" and right after the last role reported.
    Returns a dict: ok, rate, unit, messages (the count the rate is based on), errors,
    shards per role, loadgen CPU per role, p50_us/p99_us (request/reply), server_cpu.
    """
    scenario = canonical(scenario)
    if scenario == "idle":
        raise ValueError("the idle scenario is run by perf.idle.run_idle, not run_scenario")
    opt = scenario_options(scenario, opt)
    host, port = parse_url(url)
    specs = plan(scenario, host, port, opt)
    ctx = mp.get_context("spawn")
    procs: list[_Proc] = []
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
        "payload": opt.payload,
        "msgs": opt.msgs,
    }
    try:
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=role_main, args=(child, spec), name=f"loadgen-{spec['name']}", daemon=True
            )
            proc.start()
            child.close()
            procs.append(_Proc(spec, proc, parent))
        res["errors"] += _collect(procs, "ready", READY_TIMEOUT)
        for p in procs:
            if p.ready:
                res["shards"][p.spec["name"]] = p.ready["shards"]
                res["missed"] += [f"{p.spec['name']}[{i}]" for i in p.ready["missed"]]
        if res["errors"]:
            return res
        cpu0 = probe() if probe else None
        for p in procs:
            p.pipe.send(("go", None))
        active = [p for p in procs if not p.spec.get("until_stop")]
        passive = [p for p in procs if p.spec.get("until_stop")]
        res["errors"] += _collect(active, "done", HARD_TIMEOUT)
        for p in passive:
            p.pipe.send(("stop", None))
        res["errors"] += _collect(passive, "done", 30.0)
        if probe:
            res["server_cpu"] = probe() - cpu0
        for p in procs:
            if p.done:
                res["errors"] += [f"{p.spec['name']}: {e}" for e in p.done.get("errors", [])]
                wall = p.done.get("wall") or 0.0
                res["gen_cpu"][p.spec["name"]] = 100.0 * p.done["cpu"] / wall if wall else 0.0
        if res["errors"]:
            return res
        _compute(scenario, opt, {p.spec["name"]: p.done for p in procs}, res)
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                p.pipe.send(("stop", None))
        for p in procs:
            p.proc.join(5.0)
            if p.proc.is_alive():
                p.proc.terminate()
                p.proc.join(2.0)
            p.pipe.close()
    return res


def _compute(scenario: str, opt: Options, done: dict[str, dict], res: dict[str, Any]) -> None:
    errors = res["errors"]
    if scenario == "reqrep":
        r = done["requester"]
        elapsed = r["t_end"] - r["t_start"]
        res.update(
            messages=r["trips"],
            elapsed=elapsed,
            rate=r["trips"] / elapsed if elapsed > 0 else None,
            p50_us=r["p50_us"],
            p99_us=r["p99_us"],
        )
        res["ok"] = r["trips"] == r["expect"]
        return
    pub = done["pubs" if scenario in ("queue", "fanin") else "pub"]
    if scenario == "pub":
        elapsed = pub["t_end"] - pub["t_start"]
        res.update(messages=pub["sent"], elapsed=elapsed, rate=pub["sent"] / elapsed)
        res["ok"] = True
        return
    sub = done[
        "members" if scenario == "queue" else ("subs" if scenario.startswith("fanout") else "sub")
    ]
    total, counts = sub["total"], sub["counts"]
    if scenario == "queue":
        if total != opt.msgs:
            kind = "duplicates" if total > opt.msgs else "losses"
            errors.append(f"queue group received {total} of {opt.msgs} messages ({kind})")
    else:
        bad = [c for c in counts if c != opt.msgs]
        if bad:
            errors.append(f"subscriber counts {counts}, expected {opt.msgs} each")
    elapsed = sub["t_last"] - pub["t_start"]
    res.update(messages=total, elapsed=elapsed, rate=total / elapsed if elapsed > 0 else None)
    res["ok"] = not errors
