"""A raw-socket NATS client for the load-test runner, and the base of its roles.

Owner: the bench client processes (and the coordinator, for its set-up requests). One
`Connection` (an `asyncio.Protocol`, run on uvloop) per benchmark client. Cheap per
message on purpose, so that the server, not the generator, is what gets measured:

- Writes are whole batches: a publisher hands one ~64 KiB chunk of PUB frames to the
  transport at a time; replies and acks produced while parsing one read are written
  with one `writelines` at its end.
- A *counting* connection (subscribers) never dispatches messages. It parses a MSG
  control line once, keeps that whole frame as a template and then recognises the
  frames that repeat it with one `startswith` each (or one per block of 64 after the
  second repeat). A different frame goes through the slow path (find CRLF, skip the
  payload by its declared size) and becomes the new template. Publishers stamp every
  frame of a chunk with the same send time, so a template run lasts a whole chunk.
- End-to-end latency: publishers write `time.monotonic_ns()` big-endian into the first
  8 payload bytes (when the size allows); the counting path records `now - stamp` once
  per run of identical frames, weighted by the run length, into an HDR histogram. The
  clock is CLOCK_MONOTONIC, shared by every process on one machine; stamps that are
  implausible (in the future, or older than an hour: another machine's publisher, or a
  payload that is no stamp at all) are ignored.
- A *dispatching* connection (requesters, responders, JetStream) parses each message and
  calls the handler registered for its sid.

Everything runs on the event loop and must not block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shardbroker import __version__
from shardbroker.bench import DEFAULT_TIMEOUT, BenchConfig, BenchError, ClientSpec
from shardbroker.protocol import frames

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

CRLF = frames.CRLF
BLOCK = 64  # identical frames recognised by one startswith()
CHUNK_BYTES = 64 * 1024  # publisher write size
WRITE_HIGH_WATER = 1 << 20  # transport buffer above which writers wait
WRITE_LOW_WATER = 1 << 18
STAMP_SIZE = 8
STAMP_MAX_AGE_NS = 3600 * 1_000_000_000
# The histogram range: 1 ns .. 1 hour at 3 significant figures.
HIST_LOWEST = 1
HIST_HIGHEST = STAMP_MAX_AGE_NS
HIST_DIGITS = 3

# A message handler: (subject, reply or None, header size, payload incl. headers).
MsgHandler = Callable[[bytes, "bytes | None", int, bytes], None]


def new_histogram() -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(HIST_LOWEST, HIST_HIGHEST, HIST_DIGITS)


def make_payload(size: int) -> bytes:
    """Printable filler without CR/LF; publishers overwrite the first 8 bytes with a stamp."""
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def status_of(payload: bytes) -> bytes:
    """The 3-digit status of a header block (`NATS/1.0 503 ...`), or b''."""
    if payload.startswith(b"NATS/1.0 "):
        return payload[9:12]
    return b""


def status_line(payload: bytes) -> str:
    return payload.split(b"\r\n", 1)[0].decode(errors="replace")


# -- server address ----------------------------------------------------------------------


class ServerURL:
    """`nats://[user:pass@|token@]host[:port]`; a bare `host[:port]` is accepted too."""

    __slots__ = ("display", "host", "password", "port", "token", "user")

    def __init__(self, url: str) -> None:
        text = url.strip()
        if not text:
            raise BenchError("--server is empty", 2)
        if "://" not in text:
            text = "nats://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise BenchError(f"bad server URL {url!r}: {exc}", 2) from None
        if parts.scheme not in ("nats", "tcp"):
            raise BenchError(
                f"bad server URL {url!r}: only nats:// is supported (no TLS, no websocket)", 2
            )
        if not parts.hostname:
            raise BenchError(f"bad server URL {url!r}: no host", 2)
        self.host = parts.hostname
        self.port = port or 4222
        self.user = unquote(parts.username) if parts.username else ""
        self.password = unquote(parts.password) if parts.password else ""
        self.token = ""
        if self.user and parts.password is None:
            self.token, self.user = self.user, ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.display = f"nats://{host}:{self.port}"

    def connect_options(self) -> dict[str, Any]:
        if self.token:
            return {"auth_token": self.token}
        if self.user:
            return {"user": self.user, "pass": self.password}
        return {}


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


# -- the connection ------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One NATS client connection. See the module docstring for the two parsing modes."""

    __slots__ = (
        "buf",
        "can_write",
        "closing",
        "count",
        "counters",
        "counting",
        "error",
        "fail",
        "handlers",
        "hist",
        "info",
        "info_waiter",
        "loop",
        "lost",
        "name",
        "nbytes",
        "need",
        "on_batch",
        "out",
        "pongs",
        "slot",
        "t_first",
        "t_last",
        "tmpl",
        "tmpl_block",
        "tmpl_len",
        "tmpl_run",
        "tmpl_size",
        "tmpl_stamp",
        "transport",
    )

    def __init__(
        self,
        name: str,
        fail: Callable[[str], None],
        *,
        counting: bool = False,
        hist: HdrHistogram | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.name = name
        self.fail = fail  # reports a fatal problem of this client to its process
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = 0  # bytes the buffered partial frame needs before parsing again
        self.info: dict[str, Any] | None = None
        self.info_waiter: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.pongs: deque[asyncio.Future[None]] = deque()
        self.error = ""  # the first -ERR or loss, for messages
        self.closing = False
        self.lost = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.out: list[bytes] = []  # frames produced while parsing, written at the end
        self.handlers: dict[bytes, MsgHandler] = {}
        self.on_batch: Callable[[], None] | None = None  # after each parsed read
        self.counting = counting
        self.hist = hist
        self.count = 0  # messages received (counting mode)
        self.nbytes = 0  # payload bytes received (counting mode)
        self.t_first = 0.0
        self.t_last = 0.0
        self.counters: Any = None  # shared counters; counting mode writes its count here
        self.slot = 0
        self.tmpl: bytes | None = None
        self.tmpl_block: bytes | None = None
        self.tmpl_len = 0
        self.tmpl_size = 0
        self.tmpl_run = 0
        self.tmpl_stamp = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER
        )

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.can_write.set()
        if self.closing:
            return
        why = self.error or f"connection closed by the server ({exc or 'EOF'})"
        if self.counting and not self.error:
            # Servers close a subscriber that falls too far behind without an -ERR.
            why += (
                "; a subscriber that falls too far behind is cut off as a slow consumer: "
                "lower the load with --rate or spread the clients with --procs"
            )
        self.error = why
        error = ConnectionError(why)
        if not self.info_waiter.done():
            self.info_waiter.set_exception(error)
        while self.pongs:
            fut = self.pongs.popleft()
            if not fut.done():
                fut.set_exception(error)
        self.fail(f"{self.name}: {why}")

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if buf:
            buf += data
            if len(buf) < self.need:
                return  # a large payload still arriving: don't re-parse yet
            data = bytes(buf)
            buf.clear()
        try:
            pos = self._count(data) if self.counting else self._dispatch(data)
        except _ProtocolError as exc:
            self.error = str(exc)
            self.fail(f"{self.name}: {exc}")
            self.close()
            return
        if pos < len(data):
            self.buf += memoryview(data)[pos:]
        if self.on_batch is not None:
            self.on_batch()
        if self.out:
            self.transport.writelines(self.out)  # type: ignore[union-attr]
            self.out.clear()

    # -- parsing

    def _count(self, data: bytes) -> int:
        """Count MSG/HMSG frames (the subscriber fast path); returns the bytes consumed."""
        n = len(data)
        pos = 0
        cnt = 0
        nbytes = 0
        tmpl = self.tmpl
        block = self.tmpl_block
        flen = self.tmpl_len
        blen = flen * BLOCK
        psize = self.tmpl_size
        bsize = psize * BLOCK
        run = self.tmpl_run
        stamp = self.tmpl_stamp
        now_ns = time.monotonic_ns()
        self.need = 0
        while pos < n:
            if tmpl is not None:
                if block is not None and data.startswith(block, pos):
                    pos += blen
                    cnt += BLOCK
                    run += BLOCK
                    nbytes += bsize
                    continue
                if data.startswith(tmpl, pos):
                    pos += flen
                    cnt += 1
                    run += 1
                    nbytes += psize
                    if block is None:
                        block = tmpl * BLOCK
                    continue
            nl = data.find(CRLF, pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG " or op == b"HMSG":
                size = _frame_size(data, pos, nl)
                end = nl + 2 + size
                if end + 2 > n:
                    self.need = end + 2 - pos
                    break
                if data[end : end + 2] != CRLF:
                    raise _ProtocolError("payload not followed by CRLF")
                if run and stamp:
                    self._record(now_ns - stamp, run)
                tmpl = data[pos : end + 2]
                block = None
                flen = end + 2 - pos
                blen = flen * BLOCK
                psize = size
                bsize = size * BLOCK
                stamp = (
                    int.from_bytes(data[nl + 2 : nl + 10], "big")
                    if op == b"MSG " and size >= STAMP_SIZE
                    else 0
                )
                run = 1
                cnt += 1
                nbytes += size
                pos = end + 2
                continue
            self._control(op, data, pos, nl)
            pos = nl + 2
        if run and stamp:
            self._record(now_ns - stamp, run)
        self.tmpl = tmpl
        self.tmpl_block = block
        self.tmpl_len = flen
        self.tmpl_size = psize
        self.tmpl_run = 0
        self.tmpl_stamp = stamp
        if cnt:
            now = time.monotonic()
            if not self.count:
                self.t_first = now
            self.t_last = now
            self.count += cnt
            self.nbytes += nbytes
            if self.counters is not None:
                self.counters[self.slot] = self.count
        return pos

    def _record(self, latency_ns: int, weight: int) -> None:
        hist = self.hist
        if hist is not None and 0 <= latency_ns < STAMP_MAX_AGE_NS:
            hist.record_value(latency_ns or 1, weight)

    def _dispatch(self, data: bytes) -> int:
        """Parse every frame and hand messages to the handler of their sid."""
        n = len(data)
        pos = 0
        handlers = self.handlers
        self.need = 0
        while pos < n:
            nl = data.find(CRLF, pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG " or op == b"HMSG":
                args = data[pos:nl].split()
                try:
                    size = int(args[-1])
                    if op == b"MSG ":
                        reply = args[3] if len(args) == 5 else None
                        hdr = 0
                    else:
                        reply = args[3] if len(args) == 6 else None
                        hdr = int(args[-2])
                    subject, sid = args[1], args[2]
                except (IndexError, ValueError):
                    raise _ProtocolError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    self.need = end + 2 - pos
                    break
                if data[end : end + 2] != CRLF:
                    raise _ProtocolError("payload not followed by CRLF")
                handler = handlers.get(sid)
                if handler is not None:
                    handler(subject, reply, hdr, data[nl + 2 : end])
                pos = end + 2
                continue
            self._control(op, data, pos, nl)
            pos = nl + 2
        return pos

    def _control(self, op: bytes, data: bytes, pos: int, nl: int) -> None:
        if op == b"PING":
            self.out.append(frames.PONG)
        elif op == b"PONG":
            if self.pongs:
                fut = self.pongs.popleft()
                if not fut.done():
                    fut.set_result(None)
        elif op == b"INFO":
            if self.info is None:
                try:
                    self.info = json.loads(data[pos + 5 : nl])
                except ValueError:
                    raise _ProtocolError("unparsable INFO from server") from None
                if not self.info_waiter.done():
                    self.info_waiter.set_result(self.info)
        elif op == b"-ERR":
            text = data[pos + 4 : nl].strip().strip(b"'").decode(errors="replace")
            if not self.error:
                self.error = f"server error: {text}"
            self.fail(f"{self.name}: server error: {text}")
        elif op[:3] == b"+OK":
            pass
        else:
            raise _ProtocolError(f"unexpected line from server: {data[pos:nl][:80]!r}")

    # -- writing

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    async def writable(self) -> None:
        """Wait until the transport buffer drained below its low-water mark."""
        if not self.can_write.is_set():
            await self.can_write.wait()
        if self.lost:
            raise ConnectionError(self.error or "connection lost")

    async def flush(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """PING/PONG: everything written before has been processed by the server."""
        if self.lost:
            raise ConnectionError(self.error or "connection lost")
        fut: asyncio.Future[None] = self.loop.create_future()
        self.pongs.append(fut)
        self.write(frames.PING)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BenchError(f"{self.name}: no PONG from the server within {timeout:g}s") from None

    def subscribe(self, subject: str, sid: bytes, queue: str = "") -> None:
        q = b" " + queue.encode() if queue else b""
        self.write(b"SUB " + subject.encode() + q + b" " + sid + CRLF)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class _ProtocolError(Exception):
    pass


def _frame_size(data: bytes, pos: int, nl: int) -> int:
    try:
        return int(data[data.rfind(b" ", pos, nl) + 1 : nl])
    except ValueError:
        raise _ProtocolError(f"bad line from server: {data[pos:nl][:80]!r}") from None


async def connect(
    url: ServerURL,
    name: str,
    fail: Callable[[str], None],
    *,
    counting: bool = False,
    hist: HdrHistogram | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Connection:
    """Open a connection and complete the handshake (INFO, CONNECT + PING, PONG)."""
    loop = asyncio.get_running_loop()

    def factory() -> Connection:
        return Connection(name, fail, counting=counting, hist=hist)

    where = url.display
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(factory, url.host, url.port), timeout
        )
    except TimeoutError:
        raise BenchError(f"cannot connect to {where}: timed out after {timeout:g}s") from None
    except OSError as exc:
        raise BenchError(f"cannot connect to {where}: {_os_error_text(exc)}") from None
    # The handshake's own failures must raise here, not be reported as a client failure.
    conn.fail = _ignore
    try:
        try:
            info = await asyncio.wait_for(conn.info_waiter, timeout)
        except TimeoutError:
            raise BenchError(
                f"{where} sent no INFO within {timeout:g}s (not a NATS server?)"
            ) from None
        except ConnectionError as exc:
            raise BenchError(f"{where} closed the connection before INFO ({exc})") from None
        if info.get("tls_required"):
            raise BenchError(f"{where} requires TLS, which shardbroker bench does not speak")
        connect_opts = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "echo": True,
            "lang": "python-raw",
            "version": __version__,
            "name": f"shardbroker-bench {name}",
            **url.connect_options(),
        }
        conn.write(b"CONNECT " + json.dumps(connect_opts).encode() + CRLF)
        try:
            await conn.flush(timeout)
        except ConnectionError as exc:
            raise BenchError(f"{where} refused the connection: {exc}") from None
        if conn.error:
            raise BenchError(f"{where} refused the connection: {conn.error}")
    except BaseException:
        conn.close()
        raise
    conn.fail = fail
    return conn


def _ignore(_text: str) -> None:
    return None


# -- roles -------------------------------------------------------------------------------


class ProcessContext:
    """What the clients of one process share: settings, counters, histogram, stop."""

    __slots__ = ("cfg", "counters", "failed", "hist", "proc", "stop", "t_go", "url")

    def __init__(self, cfg: BenchConfig, counters: Any, proc: int) -> None:
        self.cfg = cfg
        self.url = ServerURL(cfg.server)
        self.counters = counters  # RawArray: [count, state] per client
        self.proc = proc
        self.hist = new_histogram()
        self.stop = asyncio.Event()
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.t_go = 0.0

    def fail(self, text: str) -> None:
        if not self.failed.done():
            self.failed.set_result(text)
        self.stop.set()


STATE_RUNNING = 0
STATE_DONE = 1


class Role:
    """One benchmark client. `setup` connects and subscribes (then the process reports
    ready); `run` does the work after "go" and returns when the client is finished
    (active roles) or when the run is stopped (passive roles)."""

    __slots__ = ("conn", "count", "ctx", "nbytes", "spec", "t_end", "t_start")

    active = False  # ends by itself (publishers, requesters, pullers)

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.conn: Connection | None = None
        self.count = 0
        self.nbytes = 0
        self.t_start = 0.0
        self.t_end = 0.0

    async def open(self, *, counting: bool = False, hist: HdrHistogram | None = None) -> Connection:
        conn = await connect(
            self.ctx.url,
            self.spec.name,
            self.ctx.fail,
            counting=counting,
            hist=hist,
            timeout=self.ctx.cfg.timeout,
        )
        self.conn = conn
        return conn

    async def setup(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        raise NotImplementedError

    def publish_count(self, value: int) -> None:
        self.ctx.counters[2 * self.spec.index] = value

    def mark_done(self) -> None:
        self.ctx.counters[2 * self.spec.index + 1] = STATE_DONE

    def result(self) -> dict[str, Any]:
        return {
            "index": self.spec.index,
            "name": self.spec.name,
            "role": self.spec.role,
            "proc": self.ctx.proc,
            "msgs": self.count,
            "bytes": self.nbytes,
            "t_start": self.t_start,
            "t_end": self.t_end,
        }

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


async def first_of(fut: asyncio.Future[None], event: asyncio.Event) -> None:
    """Wait until `fut` completes or `event` is set."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({fut, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


class Pacer:
    """Spreads a publisher's messages evenly at `rate` per second (token-bucket style,
    with no burst beyond what is due)."""

    __slots__ = ("rate", "t0")

    def __init__(self, rate: float, t0: float) -> None:
        self.rate = rate
        self.t0 = t0

    def due(self, now: float, sent: int) -> int:
        """How many messages may go now, given `sent` so far (the first goes at once)."""
        return int((now - self.t0) * self.rate) + 1 - sent

    def wait(self, now: float, sent: int) -> float:
        """Seconds until the next message is due."""
        return max(0.0005, (sent / self.rate) - (now - self.t0))


class InboxRequester(Role):
    """A role that publishes with replies to its own inbox (`_INBOX.<random>.*`) and runs
    until its work is done or the run stops: the requester and the JetStream publisher."""

    __slots__ = ("deadline", "done", "head", "inbox", "pacer", "tail")
    active = True

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.inbox = b""
        self.head = b""
        self.tail = b""
        self.deadline = 0.0
        self.pacer: Pacer | None = None
        self.done: asyncio.Future[None] | None = None

    async def open_inbox(
        self, on_reply: Callable[..., Any], on_batch: Callable[[], None] | None = None
    ) -> None:
        """Connect, subscribe the inbox, and prepare `head` (PUB <subject> <inbox>) and
        `tail` (<size> CRLF payload CRLF) around each request's reply token."""
        cfg = self.ctx.cfg
        conn = await self.open()
        self.inbox = b"_INBOX." + secrets.token_hex(11).encode() + b"."
        conn.handlers[b"1"] = on_reply
        if on_batch is not None:
            conn.on_batch = on_batch
        conn.write(b"SUB " + self.inbox + b"* 1" + CRLF)
        self.head = b"PUB " + cfg.subject.encode() + b" " + self.inbox
        self.tail = b" " + str(cfg.size).encode() + CRLF + make_payload(cfg.size) + CRLF
        await conn.flush(cfg.timeout)

    async def run_until_done(self, kick: Callable[[], None]) -> None:
        """Start the clock and the pacer, `kick` the first request, and wait until the
        role sets `done` or the run is stopped; then flush."""
        cfg = self.ctx.cfg
        conn = self.conn
        assert conn is not None
        self.done = conn.loop.create_future()
        self.t_start = self.t_end = time.monotonic()
        self.deadline = self.t_start + cfg.duration if cfg.duration else 0.0
        self.pacer = Pacer(cfg.rate, self.t_start) if cfg.rate else None
        kick()
        await first_of(self.done, self.ctx.stop)
        if not conn.lost:
            await conn.flush(cfg.timeout)
