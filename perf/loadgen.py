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
  loop hop) so that the latency reported is mostly the server's;
- JetStream publishers (`js-pub`) keep a window of un-acked publishes, each with its own
  reply subject under one wildcard inbox, and refill it once per read batch; every
  PubAck is checked, and the coordinator creates the stream beforehand and compares the
  stream's message count (STREAM.INFO) with the acks afterwards.

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
import functools
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
    "js-pub",
    "js-pub-sync",
    "js-pull",
    "js-push",
)
# JetStream scenarios need a server started with -js (perf.compare starts a fresh one
# with a fresh store directory for every run of them).
JS_SCENARIOS = frozenset({"js-pub", "js-pub-sync", "js-pull", "js-push"})
# ... of which these consume a stream filled (untimed) before the run.
JS_CONSUME = frozenset({"js-pull", "js-push"})
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
    "js-pub": "JetStream pub, async acks",
    "js-pub-sync": "JetStream pub, sync acks",
    "js-pull": "JetStream pull consume, explicit acks",
    "js-push": "JetStream push consume, no acks",  # "explicit acks" with --js-push-acks
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
    "js-pub": "msg/s acked",
    "js-pub-sync": "msg/s acked",
    "js-pull": "msg/s acked",
    "js-push": "msg/s",
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
    "js-pub": "js-pub",
    "jspub": "js-pub",
    "js-pub-async": "js-pub",
    "js": "js-pub",
    "js-pub-sync": "js-pub-sync",
    "jspub-sync": "js-pub-sync",
    "js-sync": "js-pub-sync",
    "js-pull": "js-pull",
    "jspull": "js-pull",
    "js-fetch": "js-pull",
    "js-consume": "js-pull",
    "js-push": "js-push",
    "jspush": "js-push",
}
FANOUT_SUBS = 4
FANOUT16_SUBS = 16
QUEUE_PUBS = 4
QUEUE_MEMBERS = 4
QUEUE_GROUP = "workers"
FANIN_PUBS = 32
# JetStream: the stream every JS run creates (file storage) and the subject published to.
JS_STREAM = "PERF"
JS_SUBJECTS = "perf.js.>"
JS_SUBJECT = "perf.js.pub"
# Consume scenarios: durable consumers on PERF, one per scenario.
JS_PULL_CONSUMER = "PULL"
JS_PUSH_CONSUMER = "PUSH"
JS_PULL_EXPIRES_NS = 30_000_000_000  # per pull request, like nats.go Consume
JS_PREFILL_WINDOW = 1024  # un-acked publishes while filling the stream (untimed)
JS_API_TIMEOUT = 30.0  # for the storage side to come up and answer STREAM.CREATE

# Scenarios with a fixed payload size (the others use Options.payload).
PAYLOADS = {"pubsub-1k": 1024, "pubsub-64k": 65536}
# Messages per run = Options.msgs // divisor, so that every scenario takes about as long
# as the 16-byte ones (a 1M x 64 KiB run would move 64 GB).
# JetStream publishes are stored and acked one by one: N/10 acked async, N/200 sync.
# Consumed messages: N/10 (the stream is filled with them before the run, untimed).
MSGS_DIVISOR = {
    "pubsub-1k": 4,
    "pubsub-64k": 128,
    "fanout16": 4,
    "js-pub": 10,
    "js-pub-sync": 200,
    "js-pull": 10,
    "js-push": 10,
}
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
    js_pubs: int = 1  # js-pub: publishers (connections), like `nats bench js pub --pubs`
    js_window: int = 256  # js-pub: un-acked publishes each publisher keeps in flight
    js_batch: int = 500  # js-pull: messages per pull request (nats.go Consume's default)
    js_push_ack: str = "none"  # js-push: the consumer's ack policy, "none" or "explicit"


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
    if scenario == "js-pub":
        k = max(1, opt.js_pubs)
        base, extra = divmod(n, k)
        pubs = [conn(JS_SUBJECT, i, base + (1 if i < extra else 0)) for i in range(k)]
        return [role("jspub", "jspub", pubs, window=max(1, opt.js_window))]
    if scenario == "js-pub-sync":
        return [role("jspub", "jspub-sync", [conn(JS_SUBJECT, 0, n)])]
    if scenario in JS_CONSUME:
        # The stream is filled (untimed) by the coordinator on a connection placed on
        # worker 1 (`prefill` below); the consuming connection goes to the next worker.
        pull = scenario == "js-pull"
        return [
            role(
                "consumer",
                "jsconsume",
                [conn(JS_SUBJECT, 1, n)],
                mode="pull" if pull else "push",
                consumer=JS_PULL_CONSUMER if pull else JS_PUSH_CONSUMER,
                ack="explicit" if pull else opt.js_push_ack,
                batch=max(1, opt.js_batch),
                deliver=None if pull else f"_INBOX.{secrets.token_hex(8)}",
                prefill={"target": target(0), "msgs": n},
            )
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
            self._control(op, data, pos, nl)
            pos = nl + 2
        self.buf = data[pos:] if pos < n else b""
        if cnt:
            self.count += cnt
            if self.state is not None:
                self.state.progress(cnt)

    def _control(self, op: bytes, data: bytes, pos: int, nl: int) -> None:
        """A line other than MSG/HMSG: PING, PONG, INFO, -ERR (+OK and others ignored)."""
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
    factory: Any = None,
) -> tuple[Any, int, int]:
    """Connect and handshake; with a target shard, re-connect until it is hit.

    `factory` makes the protocol object (default: a counting `Conn`).
    Returns (connection, shard, attempts). The last attempt is kept on a miss.
    """
    loop = asyncio.get_running_loop()
    make = factory or (lambda: Conn(state, fast_frame))
    attempt = 0
    while True:
        attempt += 1
        _, conn = await loop.create_connection(make, host, port)
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


class JsPubConn(Conn):
    """A JetStream publisher: keeps `window` publishes un-acked and checks every PubAck.

    Each publish has its own reply subject `_INBOX.<id>.<n>` under one wildcard
    subscription `_INBOX.<id>.*` (like nats.go's async publish). Acks are handled once
    per read batch: k acks read -> k more publishes in one write, so that at most
    `window` are outstanding. A PubAck is a success if its JSON has a "seq" and no
    "error"; anything else is counted as bad (the first one is kept for the report).
    """

    def __init__(self, subject: bytes, payload: bytes, n: int, window: int) -> None:
        super().__init__()
        self.inbox = b"_INBOX.%s." % secrets.token_hex(8).encode()
        self.head = b"PUB %s %s" % (subject, self.inbox)
        self.tail = b" %d\r\n%s\r\n" % (len(payload), payload)
        self.n = n
        self.window = window
        self.sent = 0
        self.acks = 0  # replies received on the inbox, good or bad
        self.bad = 0
        self.first_bad: str | None = None
        self.t_last: float | None = None
        self.done = self.loop.create_future()

    def publish(self, k: int) -> None:
        """Send up to k more publishes (never past n) in one write."""
        a = self.sent
        b = min(self.n, a + k)
        if b <= a:
            return
        head, tail = self.head, self.tail
        self.transport.write(b"".join([head + b"%d" % i + tail for i in range(a, b)]))  # type: ignore[union-attr]
        self.sent = b

    def start(self) -> None:
        if self.n == 0:
            self.done.set_result(None)
            return
        self.publish(self.window)

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
        n = len(data)
        pos = 0
        acks = 0
        while pos < n:
            nl = data.find(b"\r\n", pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG ":
                try:
                    size = int(data[pos:nl].rsplit(None, 1)[1])
                except (IndexError, ValueError):
                    self._protocol_error(data[pos:nl])
                    return
                end = nl + 2 + size
                if end + 2 > n:
                    break
                payload = data[nl + 2 : end]
                if b'"error"' in payload or b'"seq"' not in payload:
                    self.bad += 1
                    if self.first_bad is None:
                        self.first_bad = payload[:300].decode(errors="replace")
                acks += 1
                pos = end + 2
                continue
            self._control(op, data, pos, nl)
            pos = nl + 2
        self.buf = data[pos:] if pos < n else b""
        if acks:
            self.acks += acks
            self.t_last = time.monotonic()
            if self.acks >= self.n:
                if not self.done.done():
                    self.done.set_result(None)
            else:
                self.publish(acks)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.done.done():
            self.done.set_result(None)


async def _run_jspub(spec: dict, conns: list[JsPubConn]) -> dict[str, Any]:
    """Publish every connection's share with its window; wait for all acks."""
    idle = spec["idle"]
    errors: list[str] = []
    t_start = time.monotonic()
    for conn in conns:
        conn.start()
    pending = [c.done for c in conns]
    last, last_acks = t_start, 0
    while not all(f.done() for f in pending):
        await asyncio.wait(pending, timeout=0.25)
        acks = sum(c.acks for c in conns)
        now = time.monotonic()
        if acks != last_acks:
            last, last_acks = now, acks
        elif now - last > idle:
            errors.append(
                f"timeout: {acks} of {sum(c.n for c in conns)} publishes acked "
                f"(no ack for {idle:.0f}s)"
            )
            break
    t_end = max((c.t_last for c in conns if c.t_last is not None), default=time.monotonic())
    # A PING round trip after the last ack, so that surplus acks already on the way show up.
    for c in conns:
        if c.lost:
            continue
        try:
            await c.flush(idle)
        except (TimeoutError, ConnectionError) as exc:
            errors.append(f"final flush failed: {exc!r}")
    errors += [c.err for c in conns if c.err]
    sent = sum(c.sent for c in conns)
    acks = sum(c.acks for c in conns)
    bad = sum(c.bad for c in conns)
    if acks > sent:
        errors.append(f"{acks} acks for {sent} publishes ({acks - sent} surplus)")
    if bad:
        first = next(c.first_bad for c in conns if c.first_bad is not None)
        errors.append(f"{bad} of {acks} acks were not successes; first: {first}")
    return {
        "t_start": t_start,
        "t_end": t_end,
        "published": sent,
        "expect": sum(c.n for c in conns),
        "acked": acks - bad,
        "bad": bad,
        "window": spec["window"],
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
            factory = None
            if kind == "sub":
                fast = b"MSG %s 1 %d\r\n%s\r\n" % (c["subject"].encode(), len(payload), payload)
            elif kind == "jspub":
                factory = functools.partial(
                    JsPubConn, c["subject"].encode(), payload, c["msgs"], spec["window"]
                )
            conn, shard, tries = await open_conn(
                host, port, c["target"], spec["tries"], idle, state, fast, factory
            )
            conns.append(conn)
            shards.append(shard)
            attempts.append(tries)
        if kind == "sub":
            for conn, c in zip(conns, spec["conns"], strict=True):
                queue = f" {c['queue']}" if c["queue"] else ""
                conn.transport.write(f"SUB {c['subject']}{queue} 1\r\n".encode())  # type: ignore[union-attr]
            await asyncio.gather(*(conn.flush(idle) for conn in conns))
        elif kind == "jspub":
            for conn in conns:
                conn.transport.write(b"SUB %s* 1\r\n" % conn.inbox)  # type: ignore[union-attr]
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
        elif kind == "jspub":
            result = await _run_jspub(spec, conns)  # type: ignore[arg-type]
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


def _jspub_sync(pipe: Connection, spec: dict) -> None:
    """js-pub-sync: publish one message, wait for its PubAck, repeat (latency-bound)."""
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
    head = b"PUB %s %s" % (c["subject"].encode(), prefix)
    tail = b" %d\r\n%s\r\n" % (len(payload), payload)
    n = c["msgs"]
    warmup = min(200, max(1, n // 20))
    lat = [0] * n
    errors: list[str] = []
    sock = conn.sock
    clock = time.perf_counter_ns
    published = good = bad = surplus = done = 0
    first_bad: bytes | None = None
    cpu0, wall0 = time.process_time(), time.monotonic()
    t_start = t_end = wall0
    try:
        for i in range(-warmup, n):
            if i == 0:
                t_start = time.monotonic()
            num = b"%d" % (i + warmup)
            inbox = prefix + num
            t0 = clock()
            sock.sendall(head + num + tail)
            published += 1
            while True:
                kind, line, ack = conn.next_event()
                if kind != "MSG":
                    continue
                if line.split()[1] == inbox:
                    break
                surplus += 1
            if b'"error"' in ack or b'"seq"' not in ack:
                bad += 1
                first_bad = first_bad or ack[:300]
            else:
                good += 1
            if i >= 0:
                lat[i] = clock() - t0
                done = i + 1
        t_end = time.monotonic()
    except (TimeoutError, OSError, LoadError) as exc:
        t_end = time.monotonic()
        errors.append(f"after {done} of {n} acked publishes: {exc!r}")
    finally:
        sock.close()
    if bad:
        errors.append(
            f"{bad} of {good + bad} acks were not successes; first: "
            f"{(first_bad or b'').decode(errors='replace')}"
        )
    if surplus:
        errors.append(f"{surplus} acks for no outstanding publish")
    ok = sorted(lat[:done])
    pipe.send(
        (
            "done",
            {
                "trips": done,
                "expect": n,
                "published": published,
                "acked": good,
                "bad": bad,
                "window": 1,
                "t_start": t_start,
                "t_end": t_end,
                "p50_us": ok[len(ok) // 2] / 1000 if ok else None,
                "p99_us": ok[min(len(ok) - 1, (len(ok) * 99) // 100)] / 1000 if ok else None,
                "errors": errors,
                "cpu": time.process_time() - cpu0,
                "wall": time.monotonic() - wall0,
            },
        )
    )


class Consumed:
    """What a consuming connection received, checked message by message.

    Deliveries are told apart from everything else by their ack reply subject
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`
    (9 tokens; the 11+-token v2 form has two more in front): the stream sequence says
    which message it is (`seen` catches duplicates and, at the end, missing ones), the
    delivered count says whether it is a redelivery.
    """

    def __init__(self, n: int, sync_reply: bytes) -> None:
        self.n = n
        self.sync_reply = sync_reply
        self.seen = bytearray(n + 1)
        self.received = 0  # deliveries, duplicates included
        self.unique = 0
        self.duplicates = 0
        self.out_of_range = 0
        self.out_of_order = 0  # stream seq not the previous one + 1
        self.redelivered = 0  # delivered count token > 1
        self.last_seq = 0
        self.last_reply: bytes | None = None  # ack subject of the n-th delivery
        self.no_reply = 0  # a delivery without an ack subject
        self.statuses: dict[str, int] = {}  # "408 Request Timeout" -> count
        self.credit = 0  # batch left by pull requests that ended early (408/409)
        self.synced = False  # the reply to the final ack-sync arrived
        self.pongs = 0
        self.ping = False  # a PING arrived that the caller has not answered yet
        self.errors: list[str] = []

    def feed(self, buf: bytes, acks: list[bytes] | None) -> int:
        """Parse the complete frames in `buf`; return how many bytes were consumed.

        With `acks`, an ack (`PUB <ack subject> 0`) is appended for every delivery.
        """
        pos = 0
        end_all = len(buf)
        seen = self.seen
        n = self.n
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return pos
            op = buf[pos : pos + 4]
            if op == b"MSG ":
                parts = buf[pos + 4 : nl].split(b" ")
                size = int(parts[-1])
                end = nl + 2 + size
                if end + 2 > end_all:
                    return pos
                pos = end + 2
                if len(parts) != 4:
                    if parts[0] == self.sync_reply:
                        self.synced = True
                    else:
                        self.no_reply += 1
                    continue
                reply = parts[2]
                tokens = reply.split(b".")
                if tokens[0] != b"$JS" or len(tokens) < 9:
                    self.no_reply += 1
                    continue
                k = 5 if len(tokens) == 9 else 7
                seq = int(tokens[k])
                if tokens[k - 1] != b"1":
                    self.redelivered += 1
                self.received += 1
                if seq != self.last_seq + 1:
                    self.out_of_order += 1
                self.last_seq = seq
                if 0 < seq <= n:
                    if seen[seq]:
                        self.duplicates += 1
                    else:
                        seen[seq] = 1
                        self.unique += 1
                        if self.unique == n:
                            self.last_reply = reply
                            if acks is not None:
                                acks.append(b"PUB %s %s 0\r\n\r\n" % (reply, self.sync_reply))
                            continue
                else:
                    self.out_of_range += 1
                if acks is not None:
                    acks.append(b"PUB %s 0\r\n\r\n" % reply)
                continue
            if op == b"HMSG":
                parts = buf[pos + 5 : nl].split(b" ")
                hlen, size = int(parts[-2]), int(parts[-1])
                end = nl + 2 + size
                if end + 2 > end_all:
                    return pos
                block = buf[nl + 2 : nl + 2 + hlen]
                pos = end + 2
                first, _, rest = block.partition(b"\r\n")
                status = first[9:].decode(errors="replace").strip() or "(headers)"
                self.statuses[status] = self.statuses.get(status, 0) + 1
                for line in rest.split(b"\r\n"):
                    if line.lower().startswith(b"nats-pending-messages:"):
                        self.credit += int(line.split(b":", 1)[1])
                continue
            if op == b"PING":
                self.ping = True  # the caller answers
            elif op == b"PONG":
                self.pongs += 1
            elif op == b"-ERR":
                self.errors.append(buf[pos:nl].decode(errors="replace"))
            pos = nl + 2


def _jsconsume(pipe: Connection, spec: dict) -> None:
    """js-pull / js-push: consume the pre-filled stream PERF with one durable consumer.

    pull: keep 1-2 pull requests of `batch` messages outstanding (a new one as soon as
    no more than half a batch is still owed, like nats.go Consume) and ack every
    message (empty payload to its ack subject) in one write per read batch. push: the
    consumer (created beforehand, no interest yet) starts delivering when "go"
    subscribes to its deliver subject; acks as for pull if its ack policy is explicit.
    With acks, the last one asks for a reply (ack sync) and the clock stops when that
    empty reply arrives; without, at the last delivery.
    """
    c = spec["conns"][0]
    n = c["msgs"]
    mode, ack = spec["mode"], spec["ack"] == "explicit"
    conn, shard, attempts = sync_open(
        spec["host"], spec["port"], c["target"], spec["tries"], spec["idle"]
    )
    sock = conn.sock
    prefix = b"_INBOX.%s." % secrets.token_hex(8).encode()
    sync_reply = prefix + b"acksync"
    pull_reply = prefix + b"pull"
    sock.sendall(b"SUB %s* 1\r\n" % prefix)
    conn.flush()
    _ready(pipe, spec, shard, attempts)
    if not pipe.poll(GO_TIMEOUT) or pipe.recv()[0] != "go":
        return
    state = Consumed(n, sync_reply)
    batch = spec["batch"]
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{JS_STREAM}.{spec['consumer']}".encode()
    requested = 0
    requests = 0

    def pull(k: int) -> bytes:
        nonlocal requested, requests
        requested += k
        requests += 1
        body = b'{"batch":%d,"expires":%d}' % (k, JS_PULL_EXPIRES_NS)
        return b"PUB %s %s %d\r\n%s\r\n" % (next_subject, pull_reply, len(body), body)

    idle = spec["idle"]
    errors: list[str] = []
    buf = conn.buf[conn.pos :]
    cpu0, wall0 = time.process_time(), time.monotonic()
    t_start = t_last = t_end = time.monotonic()
    t_first: float | None = None
    first_read = 0  # messages in the read that brought the first delivery
    sock.settimeout(idle)
    try:
        if mode == "pull":
            sock.sendall(pull(min(batch, n)))
        else:
            sock.sendall(b"SUB %s 2\r\n" % spec["deliver"].encode())
        while not (state.synced if ack else state.unique >= n):
            try:
                data = sock.recv(1 << 20)
            except TimeoutError:
                errors.append(
                    f"timeout: {state.unique} of {n} messages received"
                    + (", final ack-sync not answered" if state.unique >= n else "")
                    + f" (nothing for {idle:.0f}s; pull requests sent: {requests})"
                )
                break
            if not data:
                errors.append(f"connection closed by server after {state.unique} of {n}")
                break
            now = time.monotonic()
            buf = buf + data if buf else data
            before = state.received
            acks: list[bytes] | None = [] if ack else None
            used = state.feed(buf, acks)
            buf = buf[used:]
            out = b"".join(acks) if acks else b""
            if state.ping:
                state.ping = False
                out += PONG
            if state.received != before:
                t_last = now
                if t_first is None:
                    t_first = now
                    first_read = state.unique
                if state.unique >= n and not ack:
                    t_end = now
            if state.credit:  # requests that ended early: what they still owed
                requested -= state.credit
                state.credit = 0
            if mode == "pull" and requested < n and requested - state.received <= batch // 2:
                out += pull(min(batch, n - requested))
            if out:
                sock.sendall(out)
            if state.errors:
                errors += state.errors
                break
        if ack and state.synced:
            t_end = time.monotonic()
        # A PING round trip: surplus deliveries already on their way show up as well.
        if not errors:
            sock.sendall(PING)
            pongs = state.pongs
            while state.pongs == pongs:
                data = sock.recv(1 << 20)
                if not data:
                    break
                buf += data
                buf = buf[state.feed(buf, None) :]
                if state.ping:
                    state.ping = False
                    sock.sendall(PONG)
    except (OSError, LoadError, ValueError, IndexError) as exc:
        errors.append(f"after {state.unique} of {n} messages: {exc!r}")
        t_end = time.monotonic()
    finally:
        sock.close()
    if state.duplicates:
        errors.append(f"{state.duplicates} duplicate deliveries")
    if state.out_of_range:
        errors.append(f"{state.out_of_range} deliveries with a stream seq outside 1..{n}")
    if state.no_reply:
        errors.append(f"{state.no_reply} messages without a $JS.ACK reply subject")
    if state.redelivered:
        errors.append(f"{state.redelivered} redeliveries")
    if mode == "push" and state.out_of_order:
        errors.append(f"{state.out_of_order} deliveries out of stream order")
    bad_status = {k: v for k, v in state.statuses.items() if not k.startswith("100")}
    if bad_status:
        errors.append(f"status messages: {bad_status}")
    pipe.send(
        (
            "done",
            {
                "received": state.received,
                "unique": state.unique,
                "expect": n,
                "duplicates": state.duplicates,
                "missing": n - state.unique,
                "out_of_order": state.out_of_order,
                "redelivered": state.redelivered,
                "statuses": state.statuses,
                "requests": requests,
                "ack": ack,
                "acked": state.unique if ack and state.synced else 0,
                "synced": state.synced,
                "t_start": t_start,
                "t_first": t_first,
                "first_read": first_read,
                "t_last": t_last,
                "t_end": t_end,
                "errors": errors,
                "cpu": time.process_time() - cpu0,
                "wall": time.monotonic() - wall0,
            },
        )
    )


# ----------------------------------------------------------------- JetStream API


class JsApi:
    """Blocking JetStream API requests on one connection (setup and checks, untimed)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.conn, _, _ = sync_open(host, port, None, 1, timeout)
        self.prefix = b"_INBOX.%s." % secrets.token_hex(8).encode()
        self.conn.sock.sendall(b"SUB %s* 1\r\n" % self.prefix)
        self.conn.flush()
        self.n = 0

    def request(self, subject: str, body: bytes = b"", timeout: float = JS_API_TIMEOUT) -> dict:
        """Send one request and return the decoded reply.

        Re-sent every second until `timeout`: right after start-up the server may not
        answer yet (shardbroker's storage process is still attaching, and without
        headers there is no no-responders status, just silence).
        """
        deadline = time.monotonic() + timeout
        sock = self.conn.sock
        while True:
            self.n += 1
            inbox = self.prefix + b"%d" % self.n
            sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), inbox, len(body), body))
            sock.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                while True:
                    kind, line, payload = self.conn.next_event()
                    if kind == "MSG" and line.split()[1] == inbox:
                        return json.loads(payload)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise LoadError(
                        f"no answer to {subject} within {timeout:.0f}s (is JetStream enabled?)"
                    ) from None

    def close(self) -> None:
        self.conn.sock.close()


def js_prepare(host: str, port: int) -> None:
    """Create the benchmark stream (file storage), deleting any earlier one first."""
    api = JsApi(host, port)
    try:
        api.request(f"$JS.API.STREAM.DELETE.{JS_STREAM}")  # also waits for JetStream to answer
        body = json.dumps(
            {"name": JS_STREAM, "subjects": [JS_SUBJECTS], "storage": "file"},
            separators=(",", ":"),
        ).encode()
        reply = api.request(f"$JS.API.STREAM.CREATE.{JS_STREAM}", body)
        if "error" in reply:
            raise LoadError(f"STREAM.CREATE {JS_STREAM} failed: {reply['error']}")
    finally:
        api.close()


def js_stream_state(host: str, port: int, delete: bool = True) -> dict[str, Any]:
    """The benchmark stream's `state` from STREAM.INFO; the stream is deleted afterwards."""
    api = JsApi(host, port)
    try:
        reply = api.request(f"$JS.API.STREAM.INFO.{JS_STREAM}", timeout=10.0)
        if "error" in reply:
            raise LoadError(f"STREAM.INFO {JS_STREAM} failed: {reply['error']}")
        if delete:
            api.request(f"$JS.API.STREAM.DELETE.{JS_STREAM}", timeout=10.0)
        return reply.get("state", {})
    finally:
        api.close()


def js_prefill(
    host: str, port: int, n: int, payload: bytes, target: int | None, tries: int, idle: float
) -> dict[str, Any]:
    """Fill PERF with n messages (async publish, a window of un-acked ones; untimed).

    Every PubAck is checked; returns published/acked/bad counts and the shard used.
    """
    conn, shard, _ = sync_open(host, port, target, tries, idle)
    sock = conn.sock
    prefix = b"_INBOX.%s." % secrets.token_hex(8).encode()
    sock.sendall(b"SUB %s* 1\r\n" % prefix)
    conn.flush()
    head = b"PUB %s %s" % (JS_SUBJECT.encode(), prefix)
    tail = b" %d\r\n%s\r\n" % (len(payload), payload)
    sent = acks = bad = 0
    first_bad: bytes | None = None
    step = JS_PREFILL_WINDOW // 4
    t0 = time.monotonic()
    try:
        sock.settimeout(idle)
        while acks < n:
            if sent < n and sent - acks <= JS_PREFILL_WINDOW - step:
                k = min(n - sent, JS_PREFILL_WINDOW - (sent - acks))
                sock.sendall(b"".join([head + b"%d" % i + tail for i in range(sent, sent + k)]))
                sent += k
            kind, _, ack = conn.next_event()
            if kind != "MSG":
                continue
            acks += 1
            if b'"error"' in ack or b'"seq"' not in ack:
                bad += 1
                first_bad = first_bad or ack[:300]
    except (TimeoutError, OSError) as exc:
        raise LoadError(f"filling the stream: {acks} of {n} acked, then {exc!r}") from None
    finally:
        sock.close()
    return {
        "published": sent,
        "acked": acks - bad,
        "bad": bad,
        "first_bad": (first_bad or b"").decode(errors="replace"),
        "shard": shard,
        "missed": bool(target and shard and shard != target),
        "seconds": time.monotonic() - t0,
    }


def js_create_consumer(host: str, port: int, spec: dict) -> None:
    """The durable consumer a consume run reads with (push: no interest yet)."""
    name = spec["consumer"]
    config: dict[str, Any] = {"durable_name": name, "ack_policy": spec["ack"]}
    if spec["mode"] == "push":
        config["deliver_subject"] = spec["deliver"]
    body = json.dumps({"stream_name": JS_STREAM, "config": config}, separators=(",", ":"))
    api = JsApi(host, port)
    try:
        reply = api.request(f"$JS.API.CONSUMER.CREATE.{JS_STREAM}.{name}", body.encode())
    finally:
        api.close()
    if "error" in reply:
        raise LoadError(f"CONSUMER.CREATE {JS_STREAM}.{name} failed: {reply['error']}")


def js_consumer_check(host: str, port: int, spec: dict, n: int) -> dict[str, Any]:
    """CONSUMER.INFO after a consume run, polled for up to 5 s until it shows the end state.

    End state: delivered.stream_seq = ack_floor.stream_seq = n, num_ack_pending 0,
    num_pending 0. Returns the figures, how long it took to get there (`settle_s`, None
    if it never did) and the info's error, if any.
    """
    name = spec["consumer"]
    api = JsApi(host, port)
    t0 = time.monotonic()
    out: dict[str, Any] = {}
    try:
        while True:
            reply = api.request(f"$JS.API.CONSUMER.INFO.{JS_STREAM}.{name}", timeout=10.0)
            if "error" in reply:
                return {"error": reply["error"]}
            out = {
                "delivered": (reply.get("delivered") or {}).get("stream_seq"),
                "ack_floor": (reply.get("ack_floor") or {}).get("stream_seq"),
                "num_ack_pending": reply.get("num_ack_pending"),
                "num_pending": reply.get("num_pending"),
                "num_redelivered": reply.get("num_redelivered"),
                "num_waiting": reply.get("num_waiting"),
                "settle_s": None,
            }
            done = (
                out["delivered"] == n
                and out["ack_floor"] == n
                and not out["num_ack_pending"]
                and not out["num_pending"]
            )
            if done:
                out["settle_s"] = time.monotonic() - t0
                return out
            if time.monotonic() - t0 > 5.0:
                return out
            time.sleep(0.05)
    finally:
        api.close()


def role_main(pipe: Connection, spec: dict) -> None:
    """Entry point of a role process (spawned)."""
    try:
        if spec["role"] == "requester":
            _requester(pipe, spec)
        elif spec["role"] == "responder":
            _responder(pipe, spec)
        elif spec["role"] == "jspub-sync":
            _jspub_sync(pipe, spec)
        elif spec["role"] == "jsconsume":
            _jsconsume(pipe, spec)
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
    js = scenario in JS_SCENARIOS
    try:
        if js:
            try:
                js_prepare(host, port)
                if scenario in JS_CONSUME:
                    spec = specs[0]
                    fill = js_prefill(
                        host, port, opt.msgs, make_payload(opt.payload),
                        spec["prefill"]["target"], opt.tries, opt.idle_timeout,
                    )  # fmt: skip
                    res["prefill"] = fill
                    res["shards"]["prefill"] = [fill["shard"]]
                    if fill["missed"]:
                        res["missed"].append("prefill[0]")
                    if fill["acked"] != opt.msgs:
                        raise LoadError(
                            f"filling the stream: {fill['acked']} of {opt.msgs} publishes "
                            f"acked ({fill['bad']} bad; first: {fill['first_bad']})"
                        )
                    js_create_consumer(host, port, spec)
            except (LoadError, OSError, ValueError) as exc:
                res["errors"].append(f"JetStream setup: {exc}")
                return res
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
        if js:
            try:
                if scenario in JS_CONSUME:
                    res["js_consumer"] = js_consumer_check(host, port, specs[0], opt.msgs)
                res["js_stream"] = js_stream_state(host, port)
            except (LoadError, OSError, ValueError) as exc:
                res["errors"].append(f"JetStream check: {exc}")
        for p in procs:
            if p.done:
                res["errors"] += [f"{p.spec['name']}: {e}" for e in p.done.get("errors", [])]
                wall = p.done.get("wall") or 0.0
                res["gen_cpu"][p.spec["name"]] = 100.0 * p.done["cpu"] / wall if wall else 0.0
        if js and all(p.done for p in procs):
            # Even a failed JS run reports its counts (published, acked, stored).
            _compute(scenario, opt, {p.spec["name"]: p.done for p in procs}, res)
            res["ok"] = not res["errors"]
            return res
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
    if scenario in JS_CONSUME:
        r = done["consumer"]
        fill = res.get("prefill") or {}
        stream = res.get("js_stream") or {}
        info = res.get("js_consumer") or {}
        ack = r["ack"]
        res["js"] = {
            "published": fill.get("published", 0),
            "acked": fill.get("acked", 0),
            "bad": fill.get("bad", 0),
            "window": JS_PREFILL_WINDOW,
            "stream_messages": stream.get("messages"),
            "stream_last_seq": stream.get("last_seq"),
            "received": r["received"],
            "unique": r["unique"],
            "duplicates": r["duplicates"],
            "missing": r["missing"],
            "out_of_order": r["out_of_order"],
            "consumer_acked": r["acked"],
            "requests": r["requests"],
            "consumer": info,
            "prefill_s": fill.get("seconds"),
            "first_s": None if r["t_first"] is None else r["t_first"] - r["t_start"],
        }
        # pull: from the first pull request (the client drives the flow); push: from the
        # first read that brought deliveries, counting only those after it (as `nats bench`
        # times from the first message), since how soon a server notices the subscription
        # on the deliver subject is start-up latency, not throughput (nats-server takes
        # ~75 ms); it is reported on its own (first_s). Runs so small that everything came
        # in one read are timed from the subscription.
        timed, t0 = r["unique"], r["t_start"]
        if scenario == "js-push" and r["t_first"] is not None and r["t_end"] > r["t_first"]:
            timed, t0 = r["unique"] - r["first_read"], r["t_first"]
        elapsed = r["t_end"] - t0
        res.update(
            messages=r["unique"],
            elapsed=elapsed,
            rate=timed / elapsed if elapsed > 0 else None,
        )
        if r["unique"] != r["expect"]:
            errors.append(f"{r['unique']} of {r['expect']} messages consumed")
        if ack and not r["synced"]:
            errors.append("the final ack-sync got no reply")
        if "error" in info:
            errors.append(f"CONSUMER.INFO failed: {info['error']}")
        elif info.get("settle_s") is None:
            errors.append(
                "consumer info 5 s after the run: "
                + ", ".join(f"{k}={info.get(k)}" for k in (
                    "delivered", "ack_floor", "num_ack_pending", "num_pending"))
                + f" (expected delivered=ack_floor={r['expect']}, no ack pending, none pending)"
            )  # fmt: skip
        if stream.get("messages") != r["expect"]:
            errors.append(f"stream {JS_STREAM} holds {stream.get('messages')} messages at the end")
        res["ok"] = not errors
        return
    if scenario in JS_SCENARIOS:
        r = done["jspub"]
        stream = res.get("js_stream") or {}
        res["js"] = {
            "published": r["published"],
            "acked": r["acked"],
            "bad": r["bad"],
            "window": r["window"],
            "stream_messages": stream.get("messages"),
            "stream_last_seq": stream.get("last_seq"),
        }
        measured = r.get("trips", r["acked"])  # sync: the warm-up publishes are not timed
        elapsed = r["t_end"] - r["t_start"]
        res.update(
            messages=measured,
            elapsed=elapsed,
            rate=measured / elapsed if elapsed > 0 else None,
            p50_us=r.get("p50_us"),
            p99_us=r.get("p99_us"),
        )
        if measured != r["expect"]:
            errors.append(f"{measured} of {r['expect']} publishes acked")
        for key in ("stream_messages", "stream_last_seq"):
            if res["js"][key] != r["acked"]:
                errors.append(
                    f"stream {JS_STREAM} holds {key.split('_', 1)[1]}={res['js'][key]} "
                    f"after {r['acked']} acked publishes"
                )
        res["ok"] = not errors
        return
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
