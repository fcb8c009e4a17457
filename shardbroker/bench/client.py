"""A raw-socket NATS client for the load-test runner, and the base of its roles.

Owner: the bench client processes (and the coordinator, for its set-up requests). One
`Connection` (an `asyncio.Protocol`, run on uvloop) per benchmark client. Cheap per
message on purpose, so that the server, not the generator, is what gets measured:

- Writes are whole batches: a publisher hands one ~64 KiB chunk of PUB frames to the
  transport at a time, built with one join (`FrameCycle.frames`); replies and acks
  produced while parsing one read are written with one `writelines` at its end.
- What publishers send is a `FrameCycle`: position j of the cycle has subject
  `subjects[j % N]` and payload size `sizes[j % K]`, so with `--subjects` or several
  `--size`s consecutive messages differ. A *counting* connection (subscribers) knows the
  cycle too, so it predicts the next frames exactly: once it has parsed one frame it
  checks the next 64 with one `startswith` against a block built from the cycle (or one
  frame at a time near the end of a read or after a miss). A frame the cycle does not
  predict (another publisher's chunk interleaved, a queue member's share, a foreign
  publisher) goes through the slow path: find CRLF, look the control line up (or parse
  it), skip the payload by its size. Traffic that is not a bench cycle at all is counted
  with a template: runs of identical frames are recognised with one `startswith` each
  (one per block of 64 after the second repeat).
- End-to-end latency: publishers write `time.monotonic_ns()` big-endian into the first
  8 payload bytes of the first frame of each chunk (when every size allows); the other
  frames of the chunk carry the plain filler, so that they are identical across chunks
  and publishers (a queue member or a fan-in subscriber gets several publishers' chunks
  interleaved every few frames, and still counts them in blocks). The counting path
  takes every frame for sent at the last stamp it saw and records `now - stamp` once
  per read, weighted by the frames of the read (frames before a subscriber's first
  stamp count with that first stamp; a subscriber that never sees one records none).
  The clock is CLOCK_MONOTONIC, shared by every process on one machine; stamps that
  are implausible (in the future, or older than an hour: another machine's publisher,
  or a payload that is no stamp at all) are ignored.
- A *dispatching* connection (requesters, responders, JetStream set-up) parses each
  message and calls the handler registered for its sid; a role may instead install its
  own `feed` (the JetStream consumers parse deliveries themselves).
- Placement (`--spread W`): shardbroker names the worker a connection landed on in the
  INFO `client_id` (bits 32-39, workers 1..W); `connect` re-connects (a new source port,
  so the kernel's SO_REUSEPORT hash picks again) until it lands on the wanted worker, at
  most `SPREAD_TRIES` times. Other servers' ids name worker 0, which is always accepted.

Everything runs on the event loop and must not block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from shardbroker import __version__
from shardbroker.bench import DEFAULT_TIMEOUT, BenchConfig, BenchError, ClientSpec
from shardbroker.bench.websocket import WebSocketLayer
from shardbroker.protocol import frames

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

CRLF = frames.CRLF
BLOCK = 64  # frames recognised by one startswith() (at most; see block_frames)
BLOCK_BYTES = 8192  # ... and about this many bytes, so that a block fits in a chunk
# Frames above this size are compared in place (head, stamp, tail) rather than built.
INPLACE_BYTES = 2048
PIECE_MARGIN = 4096  # bytes of a read joined to a cut frame (see data_received)
RUN_CACHE_BYTES = 16 * 1024 * 1024  # unstamped runs kept by a FrameCycle
WIDE_BYTES = 1 << 20  # one subject and size: a read of plain frames is one comparison
# Payloads up to this size are matched by a regular expression in a run of frames in any
# order (the engine walks a larger payload byte by byte: slower than the slow path).
ANY_RUN_MAX = 256
CHUNK_BYTES = 64 * 1024  # publisher write size
WRITE_HIGH_WATER = 1 << 20  # transport buffer above which writers wait
WRITE_LOW_WATER = 1 << 18
STAMP_SIZE = 8
SPREAD_TRIES = 64  # connection attempts to land on the wanted worker (--spread)
# Above this many bytes of prebuilt links (payload tail + next control line, one per
# cycle position), runs are built frame by frame instead (large payloads, many subjects).
LINK_BUDGET = 16 * 1024 * 1024
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
    """Printable filler without CR/LF; publishers overwrite the first 8 bytes with a stamp
    in the first frame of a chunk."""
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


PLAIN = make_payload(STAMP_SIZE)  # where a stamp goes, in a frame that has none


def shard_of(info: dict[str, Any]) -> int:
    """The shardbroker worker a connection landed on (INFO client_id bits 32-39); 0 for
    servers that do not encode one (nats-server)."""
    try:
        return (int(info.get("client_id", 0)) >> 32) & 0xFF
    except (TypeError, ValueError):
        return 0


def block_frames(frame_len: float) -> int:
    """Frames per block: BLOCK small frames, fewer large ones (1 KiB: 8; 64 KiB: 1), so
    that a block rarely spans a publisher's chunk, where the stamp changes."""
    return max(1, min(BLOCK, int(BLOCK_BYTES // max(1.0, frame_len))))


def cycle_length(subjects: int, sizes: int) -> int:
    """Positions of a publisher's cycle: lcm(subjects, sizes)."""
    return math.lcm(max(1, subjects), max(1, sizes))


def cycle_subjects(subject: str, subjects: int) -> list[bytes]:
    """`<subject>.0 .. <subject>.N-1` for --subjects N, else the subject itself."""
    if not subjects:
        return [subject.encode()]
    base = subject.encode() + b"."
    return [base + str(i).encode() for i in range(subjects)]


class FrameCycle:
    """The frames of a bench publisher's cycle (see the module docstring), for PUB
    (publishers) or for MSG on one sid (what a subscriber receives).

    A frame is `heads[j] + stamp + tails[j]`: the control line with its CRLF, the send
    stamp (STAMP_SIZE bytes, or none when a size is below it), the rest of the payload
    and its CRLF. Only a chunk's first frame carries a stamp; the others carry `plain`,
    the filler that would be there, so they are the same bytes whatever chunk or
    publisher they come from. Lists are extended past the cycle length L by `reach` positions, so a
    run of up to `reach` frames from any position is one slice; `links[i]` is
    `tails[i] + heads[i + 1]`, so a run is `stamp.join` over links (prebuilt only while
    they fit LINK_BUDGET; otherwise runs are built frame by frame). Immutable once built.
    """

    __slots__ = (
        "any_run",
        "block",
        "cached",
        "frame_len",
        "heads",
        "length",
        "links",
        "lookup",
        "pay",
        "per",
        "plain",
        "runs",
        "sizes",
        "slen",
        "span",
        "tails",
        "wide",
    )

    def __init__(
        self,
        subjects: list[bytes],
        sizes: list[int],
        sid: bytes = b"",
        *,
        reach: int = BLOCK,
        numbered: bytes = b"",
    ) -> None:
        """PUB frames, or with a `sid` the MSG frames a subscription receives. `numbered`:
        the subjects are `numbered` + 0, 1, .. (--subjects)."""
        verb = b"MSG " if sid else b"PUB "
        # A run of plain frames in any order (a queue member's share of a cycle of
        # subjects) is matched by one regular expression, when all have one small size; the
        # frames in it are counted by their " <sid> <size>\r\n", which only a control
        # line holds (subjects have no spaces, the plain filler none either).
        self.any_run: tuple[re.Pattern[bytes], bytes] | None = None
        if sid and numbered and len(set(sizes)) == 1 and STAMP_SIZE <= sizes[0] <= ANY_RUN_MAX:
            line_end = b" " + sid + b" " + str(sizes[0]).encode() + CRLF
            frame = (
                re.escape(verb + numbered)
                + rb"[0-9]+"
                + re.escape(line_end + make_payload(sizes[0]) + CRLF)
            )
            self.any_run = (re.compile(b"(?:" + frame + b")+"), line_end)
        if sid:
            subjects = [subject + b" " + sid for subject in subjects]
        n_subj, n_size = len(subjects), len(sizes)
        length = math.lcm(n_subj, n_size)
        stamped = min(sizes) >= STAMP_SIZE
        slen = STAMP_SIZE if stamped else 0
        filler = make_payload(max(sizes))
        tail_of = {s: filler[slen:s] + CRLF for s in set(sizes)}
        size_text = {s: str(s).encode() for s in set(sizes)}
        heads = [
            verb + subjects[j % n_subj] + b" " + size_text[sizes[j % n_size]] + CRLF
            for j in range(length)
        ]
        tails = [tail_of[sizes[j % n_size]] for j in range(length)]
        lens = [len(heads[j]) + slen + len(tails[j]) for j in range(length)]
        # Publishers write chunks of about CHUNK_BYTES: `per` frames; subscribers check
        # blocks of `block` frames.
        self.per = max(1, CHUNK_BYTES * length // max(1, sum(lens)))
        self.block = block_frames(sum(lens) / length)
        reach = max(reach, self.per, BLOCK)
        ext = length + reach
        self.length = length
        self.slen = slen
        self.plain = filler[:slen]  # where a stamp goes, in a frame without one
        self.runs: dict[tuple[int, int], bytes] = {}  # plain_run cache
        self.cached = 0
        # All frames alike (one subject, one size): enough plain frames to compare a
        # whole read at once (built on first use, by subscribers).
        self.wide: memoryview | None = None
        self.heads = [heads[j % length] for j in range(ext)]
        self.tails = [tails[j % length] for j in range(ext)]
        self.sizes = [sizes[j % n_size] for j in range(ext)]
        self.frame_len = [lens[j % length] for j in range(ext)]
        if sum(len(tails[j]) + len(heads[(j + 1) % length]) for j in range(length)) <= LINK_BUDGET:
            base = [tails[j] + heads[(j + 1) % length] for j in range(length)]
            self.links: list[bytes] | None = [base[j % length] for j in range(ext)]
        else:
            self.links = None
        pay = [0]
        span = [0]
        for j in range(ext):
            pay.append(pay[-1] + self.sizes[j])
            span.append(span[-1] + self.frame_len[j])
        self.pay = pay  # pay[j + k] - pay[j]: payload bytes of frames j .. j+k-1
        self.span = span  # the same for their length on the wire
        # Control line -> position (the first one, should two positions share a line).
        self.lookup: dict[bytes, int] = {}
        for j in range(length - 1, -1, -1):
            self.lookup[heads[j]] = j

    def frames(self, j: int, k: int, stamp: bytes) -> bytes:
        """Frames j .. j+k-1 (0 <= j < length, 1 <= k <= reach) with this stamp."""
        heads, tails = self.heads, self.tails
        if k == 1:
            return heads[j] + stamp + tails[j]
        length = self.length
        if k >= 2 * length:  # whole cycles, repeated by one C-level copy
            reps, rest = divmod(k, length)
            run = self.frames(j, length, stamp) * reps
            return run + self.frames(j, rest, stamp) if rest else run
        links = self.links
        if links is not None:
            return b"".join(
                (heads[j], stamp, stamp.join(links[j : j + k - 1]), stamp, tails[j + k - 1])
            )
        parts: list[bytes] = []
        for i in range(j, j + k):
            parts += (heads[i], stamp, tails[i])
        return b"".join(parts)

    def wide_view(self) -> memoryview | None:
        """With one subject and one size, WIDE_BYTES of plain frames (a memoryview, so
        that a prefix of it is compared without a copy); otherwise None."""
        if self.wide is None and self.length == 1:
            frame = self.frames(0, 1, self.plain)
            self.wide = memoryview(frame * max(2, WIDE_BYTES // len(frame)))
        return self.wide

    def plain_run(self, j: int, k: int) -> bytes:
        """Frames j .. j+k-1 without a stamp (what follows a chunk's first frame), kept
        for the next time while they fit RUN_CACHE_BYTES: with one subject or a short
        cycle, publishers and subscribers build each run once."""
        key = (j, k)
        run = self.runs.get(key)
        if run is None:
            run = self.frames(j, k, self.plain)
            if self.cached + len(run) <= RUN_CACHE_BYTES:
                self.runs[key] = run
                self.cached += len(run)
        return run


def status_of(payload: bytes) -> bytes:
    """The 3-digit status of a header block (`NATS/1.0 503 ...`), or b''."""
    if payload.startswith(b"NATS/1.0 "):
        return payload[9:12]
    return b""


def status_line(payload: bytes) -> str:
    return payload.split(b"\r\n", 1)[0].decode(errors="replace")


# -- server address ----------------------------------------------------------------------


class ServerURL:
    """`nats://[user:pass@|token@]host[:port]`; a bare `host[:port]` is accepted too, and
    `ws://host:port` for a server's websocket port (bench/websocket.py)."""

    __slots__ = ("display", "host", "password", "port", "token", "user", "websocket")

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
        if parts.scheme not in ("nats", "tcp", "ws"):
            raise BenchError(
                f"bad server URL {url!r}: only nats:// and ws:// are supported (no TLS)", 2
            )
        if not parts.hostname:
            raise BenchError(f"bad server URL {url!r}: no host", 2)
        self.host = parts.hostname
        self.websocket = parts.scheme == "ws"
        self.port = port or (80 if self.websocket else 4222)
        self.user = unquote(parts.username) if parts.username else ""
        self.password = unquote(parts.password) if parts.password else ""
        self.token = ""
        if self.user and parts.password is None:
            self.token, self.user = self.user, ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.display = f"{'ws' if self.websocket else 'nats'}://{host}:{self.port}"

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
        "attempts",
        "block_after",
        "blocked",
        "buf",
        "can_write",
        "carry",
        "chunk",
        "closing",
        "count",
        "counters",
        "counting",
        "cpos",
        "cycle",
        "error",
        "fail",
        "feed",
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
        "shard",
        "since",
        "slot",
        "stamp",
        "stamp_ns",
        "streak",
        "t_first",
        "t_last",
        "tmpl",
        "tmpl_block",
        "tmpl_size",
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
        # A role's own parser: feed(data, start) returns where the first incomplete
        # frame starts (len(data) when none is); replaces _dispatch.
        self.feed: Callable[[bytes, int], int] | None = None
        self.shard = 0  # the worker this connection landed on (shardbroker), else 0
        self.attempts = 1  # connections opened to land there
        self.counting = counting
        self.hist = hist
        self.count = 0  # messages received (counting mode)
        self.nbytes = 0  # payload bytes received (counting mode)
        self.t_first = 0.0
        self.t_last = 0.0
        self.counters: Any = None  # shared counters; counting mode writes its count here
        self.slot = 0
        # Counting state, carried from one read to the next (see _count).
        self.cycle: FrameCycle | None = None  # what the bench publishers send, if known
        self.cpos = -1  # cycle position of the next frame; -1: not following the cycle
        # Frames per publisher chunk (one subject and size: the next stamped frame is
        # expected `chunk` frames after the last one), and frames since that one.
        self.chunk = 0
        self.since = 0
        self.streak = 0  # frames predicted in a row since the last miss
        self.block_after = 1  # blocks are tried from this streak on (see _count)
        self.blocked = False  # no block tries until the next slow-path frame
        self.stamp = b""  # stamp bytes of the current run
        self.stamp_ns = 0
        self.carry = 0  # frames counted before the first stamp
        self.tmpl: bytes | None = None  # traffic outside the cycle: the last frame
        self.tmpl_block: bytes | None = None
        self.tmpl_size = 0

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
            # Servers close a subscriber that falls too far behind without an -ERR; a
            # server process that died (or was killed) looks the same from here.
            why += (
                "; servers cut off a subscriber that falls too far behind (a slow consumer)"
                " without a word: if the server's log says so, lower the load with --rate"
                " or spread the clients with --procs"
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
        """Parse a read. A frame cut off by the previous read is completed with only the
        bytes it lacks (plus a little, for the next control line), so a read is never
        copied whole: large messages would pay for that copy on every read."""
        buf = self.buf
        start = 0
        try:
            if buf:
                if len(buf) + len(data) < self.need:
                    buf += data
                    return  # a large payload still arriving: don't re-parse yet
                left = len(buf)
                piece = bytes(buf) + data[: max(0, self.need - left) + PIECE_MARGIN]
                buf.clear()
                self.need = 0
                used = self._parse(piece, 0)
                if used < left:  # the cut frame is longer than that: join it all
                    data = piece[:left] + data
                else:
                    start = used - left
            self.need = 0  # each parser sets it again when a frame is cut off
            pos = self._parse(data, start)
        except FrameError as exc:
            self.error = str(exc)
            self.fail(f"{self.name}: {exc}")
            self.close()
            return
        if pos < len(data):
            self.buf += memoryview(data)[pos:]
        if self.on_batch is not None:
            self.on_batch()
        out = self.out
        if out:
            # One buffer: the event loop's per-buffer cost exceeds a join of small frames
            # (a read's acks: hundreds of them).
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
            out.clear()

    # -- parsing

    def _parse(self, data: bytes, pos: int) -> int:
        """Parse from `pos`; returns where the first incomplete frame starts."""
        if self.counting:
            return self._count(data, pos)
        if self.feed is not None:
            return self.feed(data, pos)
        return self._dispatch(data, pos)

    def _count(self, data: bytes, pos: int = 0) -> int:
        """Count MSG/HMSG frames (the subscriber fast path); returns the bytes consumed.

        Three ways through a frame, cheapest first: the cycle predicts it (a block of
        unstamped frames, or one); it repeats the template (traffic outside the cycle);
        or the slow path parses it (a chunk's stamped first frame always takes it), which
        also decides how the next frame is tried. Latency: one sample per frame, taken
        with the last stamp seen, recorded once per stamp and read.
        """
        n = len(data)
        cnt = 0
        nbytes = 0
        now_ns = time.monotonic_ns()
        cycle = self.cycle
        if cycle is not None:
            lookup: dict[bytes, int] = cycle.lookup
            length = cycle.length
            heads, tails, sizes = cycle.heads, cycle.tails, cycle.sizes
            span, pay, cslen = cycle.span, cycle.pay, cycle.slen
            plain_run, plain = cycle.plain_run, cycle.plain
            wide = cycle.wide_view()
            flen = span[1] - span[0]
            any_run = cycle.any_run
        else:
            lookup = {}
            wide = None
            any_run = None
        wide_try = wide is not None  # again after each slow-path frame
        chunk = self.chunk or WIDE_BYTES
        since = self.since
        bsize = cycle.block if cycle is not None else BLOCK
        j = self.cpos
        streak = self.streak
        # Blocks are tried once `streak` frames were predicted in a row. A block that
        # misses stops block tries until the next slow-path frame (the miss is where the
        # run breaks: another chunk, another publisher) and doubles `after` (a queue
        # member's share of a cycle of subjects rarely has a run of a block's frames:
        # blocks built for it would be wasted); a block that matches, or a run that
        # turned out long (interleaved publishers), resets it.
        after = self.block_after
        blocked = self.blocked
        stamp = self.stamp
        stamp_ns = self.stamp_ns
        run = self.carry  # frames not recorded yet (before the first stamp)
        tmpl = self.tmpl
        tblock = self.tmpl_block
        tsize = self.tmpl_size
        blk: bytes | None = None  # unstamped frames j .. j+bsize-1
        frm: bytes | None = None  # unstamped frame j (one subject and size)
        while pos < n:
            if j >= 0:
                if wide_try:  # every frame alike: up to the next chunk at once?
                    m = min((n - pos) // flen, chunk - 1 - since)
                    if m > 1 and data.startswith(wide[: m * flen], pos):  # type: ignore[index]
                        pos += m * flen
                        cnt += m
                        run += m
                        streak += m
                        since += m
                        nbytes += m * sizes[0]
                        continue
                    wide_try = False
                if streak >= after and not blocked:
                    if blk is None and n - pos >= span[j + bsize] - span[j]:
                        blk = plain_run(j, bsize)
                    if blk is not None and n - pos >= len(blk):
                        if data.startswith(blk, pos):
                            pos += len(blk)
                            cnt += bsize
                            run += bsize
                            streak += bsize
                            since += bsize
                            nbytes += pay[j + bsize] - pay[j]
                            after = 1
                            nj = (j + bsize) % length
                            if nj != j:
                                j = nj
                                blk = frm = None
                            continue
                        blocked = True
                        blk = None
                        if after < bsize:
                            after += after
                if length == 1 and cslen + len(tails[0]) < INPLACE_BYTES:  # build it once
                    if frm is None:
                        frm = heads[0] + plain + tails[0]
                    if data.startswith(frm, pos):
                        pos += len(frm)
                        cnt += 1
                        run += 1
                        streak += 1
                        since += 1
                        nbytes += sizes[0]
                        continue
                else:  # compare in place: the frame is used once
                    head = heads[j]
                    p = pos + len(head)
                    if (
                        data.startswith(head, pos)
                        and data.startswith(plain, p)
                        and data.startswith(tails[j], p + cslen)
                    ):
                        pos = p + cslen + len(tails[j])
                        cnt += 1
                        run += 1
                        streak += 1
                        since += 1
                        nbytes += sizes[j]
                        j += 1
                        if j == length:
                            j = 0
                        blk = None
                        continue
                    if any_run is not None and after > 1:  # out of order: plain frames?
                        found = any_run[0].match(data, pos)
                        if found is not None:
                            end = found.end()
                            k = data.count(any_run[1], pos, end)
                            pos = end
                            cnt += k
                            run += k
                            since += k
                            nbytes += k * sizes[0]
                            j = -1  # the frame after the run takes the slow path
                            continue
                frm = blk = None
            elif tmpl is not None:
                if tblock is not None and data.startswith(tblock, pos):
                    k = len(tblock) // len(tmpl)
                    pos += len(tblock)
                    cnt += k
                    run += k
                    nbytes += tsize * k
                    continue
                if data.startswith(tmpl, pos):
                    pos += len(tmpl)
                    cnt += 1
                    run += 1
                    nbytes += tsize
                    if tblock is None:
                        tblock = tmpl * block_frames(len(tmpl))
                    continue
            nl = data.find(CRLF, pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG " or op == b"HMSG":
                hit = lookup.get(data[pos : nl + 2])
                if hit is not None:
                    size = sizes[hit]
                    slen = cslen
                else:
                    size = _frame_size(data, pos, nl)
                    slen = STAMP_SIZE if op == b"MSG " and size >= STAMP_SIZE else 0
                end = nl + 2 + size
                if end + 2 > n:
                    self.need = end + 2 - pos
                    break
                if data[end : end + 2] != CRLF:
                    raise FrameError("payload not followed by CRLF")
                new = data[nl + 2 : nl + 2 + slen] if slen else b""
                if new and new != stamp and new != PLAIN:  # a chunk's first frame
                    if stamp_ns:
                        if run:
                            self._record(now_ns - stamp_ns, run)
                        run = 0
                    stamp = new
                    stamp_ns = int.from_bytes(new, "big")
                    since = 0
                else:
                    since += 1
                run += 1
                cnt += 1
                nbytes += size
                frm = blk = None
                if hit is not None:
                    j = hit + 1 if hit + 1 < length else 0
                    if streak >= 2 * bsize:  # the run that ended was long: blocks pay
                        after = 1
                    streak = 0
                    blocked = False
                    wide_try = wide is not None
                    tmpl = tblock = None
                else:
                    j = -1
                    tmpl = data[pos : end + 2]
                    tblock = None
                    tsize = size
                pos = end + 2
                continue
            self.control(op, data, pos, nl)
            pos = nl + 2
        if run and stamp_ns:
            self._record(now_ns - stamp_ns, run)
            run = 0
        self.carry = run
        self.cpos = j
        self.since = since
        self.streak = streak
        self.block_after = after
        self.blocked = blocked
        self.stamp = stamp
        self.stamp_ns = stamp_ns
        self.tmpl = tmpl
        self.tmpl_block = tblock
        self.tmpl_size = tsize
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

    def _dispatch(self, data: bytes, pos: int = 0) -> int:
        """Parse every frame and hand messages to the handler of their sid."""
        n = len(data)
        handlers = self.handlers
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
                    raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    self.need = end + 2 - pos
                    break
                if data[end : end + 2] != CRLF:
                    raise FrameError("payload not followed by CRLF")
                handler = handlers.get(sid)
                if handler is not None:
                    handler(subject, reply, hdr, data[nl + 2 : end])
                pos = end + 2
                continue
            self.control(op, data, pos, nl)
            pos = nl + 2
        return pos

    def control(self, op: bytes, data: bytes, pos: int, nl: int) -> None:
        """A line other than MSG/HMSG; roles that parse their own reads (`feed`) call it
        for those lines too."""
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
                    raise FrameError("unparsable INFO from server") from None
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
            raise FrameError(f"unexpected line from server: {data[pos:nl][:80]!r}")

    # -- writing

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    async def writable(self) -> None:
        """Wait until the transport buffer drained below its low-water mark."""
        if not self.can_write.is_set():
            await self.can_write.wait()
        if self.lost:
            raise ConnectionError(self.error or "connection lost")

    async def flush(self, timeout: float = DEFAULT_TIMEOUT) -> None:  # noqa: ASYNC109 (--timeout, named in the error)
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


class FrameError(Exception):
    """The server sent something that is not a NATS frame; ends the connection."""


def _frame_size(data: bytes, pos: int, nl: int) -> int:
    try:
        return int(data[data.rfind(b" ", pos, nl) + 1 : nl])
    except ValueError:
        raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None


async def connect(
    url: ServerURL,
    name: str,
    fail: Callable[[str], None],
    *,
    counting: bool = False,
    hist: HdrHistogram | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (--timeout, for each step of every try)
    target: int = 0,
) -> Connection:
    """Open a connection and complete the handshake (INFO, CONNECT + PING, PONG). With a
    `target` worker, re-connect until the INFO names it (at most SPREAD_TRIES times; the
    last connection is kept on a miss, and its `shard` tells)."""
    loop = asyncio.get_running_loop()

    def factory() -> Connection:
        return Connection(name, fail, counting=counting, hist=hist)

    def ws_factory() -> WebSocketLayer:
        return WebSocketLayer(factory(), url.host, url.port)

    where = url.display
    attempts = 0
    while True:
        attempts += 1
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    ws_factory if url.websocket else factory, url.host, url.port
                ),
                timeout,
            )
            conn = cast(
                Connection, protocol.inner if isinstance(protocol, WebSocketLayer) else protocol
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
        except BaseException:
            conn.close()
            raise
        conn.shard = shard_of(info)
        conn.attempts = attempts
        if not target or conn.shard in (0, target) or attempts >= SPREAD_TRIES:
            break
        conn.close()  # another worker: a new source port lets the kernel pick again
    try:
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

    __slots__ = (
        "cfg",
        "counters",
        "cycles",
        "failed",
        "hist",
        "proc",
        "stop",
        "t_go",
        "url",
    )

    def __init__(self, cfg: BenchConfig, counters: Any, proc: int) -> None:
        self.cfg = cfg
        self.cycles: dict[bytes, FrameCycle] = {}
        self.url = ServerURL(cfg.server)
        self.counters = counters  # RawArray: [count, state] per client
        self.proc = proc
        self.hist = new_histogram()
        self.stop = asyncio.Event()
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.t_go = 0.0

    def cycle(self, sid: bytes = b"") -> FrameCycle:
        """The publishers' cycle (PUB frames), or what a subscription with `sid` receives
        of it; built once per process."""
        cycle = self.cycles.get(sid)
        if cycle is None:
            cfg = self.cfg
            cycle = FrameCycle(
                cycle_subjects(cfg.subject, cfg.subjects),
                list(cfg.sizes or (cfg.size,)),
                sid,
                numbered=cfg.subject.encode() + b"." if cfg.subjects else b"",
            )
            self.cycles[sid] = cycle
        return cycle

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
            target=self.spec.target,
        )
        self.conn = conn
        return conn

    async def setup(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        raise NotImplementedError

    async def wait_for(self, until: asyncio.Future[Any] | None = None) -> None:
        """Until `until` is done (None: no end of its own) or the run stops. (Reading the
        socket with blocking reads instead, as a plain blocking client does, was tried:
        with uvloop a round trip costs less CPU.)"""
        if until is None:
            await self.ctx.stop.wait()
        else:
            await first_of(until, self.ctx.stop)

    def publish_count(self, value: int) -> None:
        self.ctx.counters[2 * self.spec.index] = value

    def mark_done(self) -> None:
        self.ctx.counters[2 * self.spec.index + 1] = STATE_DONE

    def result(self) -> dict[str, Any]:
        conn = self.conn
        shard = conn.shard if conn is not None else 0
        target = self.spec.target
        return {
            "index": self.spec.index,
            "name": self.spec.name,
            "role": self.spec.role,
            "proc": self.ctx.proc,
            "msgs": self.count,
            "bytes": self.nbytes,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "shard": shard,
            "target": target,
            "missed": bool(target and shard and shard != target),
        }

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


async def first_of(fut: asyncio.Future[None], event: asyncio.Event) -> None:
    """Wait until `fut` completes or `event` is set."""
    waiter = asyncio.ensure_future(event.wait())
    either: set[asyncio.Future[Any]] = {fut, waiter}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
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
    until its work is done or the run stops: the requester and the JetStream publisher.

    With --warmup W it first completes W untimed round trips; `begin` then starts the
    clock (and the pacer and --duration). `heads[i]` is `PUB <subject i> <inbox>`: one
    subject, or the --subjects cycle, which request k walks from the client's offset."""

    __slots__ = ("deadline", "done", "heads", "inbox", "pacer", "tail", "warmup")
    active = True

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.inbox = b""
        self.heads: list[bytes] = []
        self.tail = b""
        self.deadline = 0.0
        self.pacer: Pacer | None = None
        self.done: asyncio.Future[None] | None = None
        self.warmup = ctx.cfg.warmup

    async def open_inbox(
        self, on_reply: Callable[..., Any], on_batch: Callable[[], None] | None = None
    ) -> None:
        """Connect, subscribe the inbox, and prepare `heads` (PUB <subject> <inbox>) and
        `tail` (<size> CRLF payload CRLF) around each request's reply token."""
        cfg = self.ctx.cfg
        conn = await self.open()
        self.inbox = b"_INBOX." + secrets.token_hex(11).encode() + b"."
        conn.handlers[b"1"] = on_reply
        if on_batch is not None:
            conn.on_batch = on_batch
        conn.write(b"SUB " + self.inbox + b"* 1" + CRLF)
        subjects = cycle_subjects(cfg.subject, cfg.subjects)
        shift = self.spec.offset % len(subjects)
        self.heads = [b"PUB " + s + b" " + self.inbox for s in subjects[shift:] + subjects[:shift]]
        self.tail = b" " + str(cfg.size).encode() + CRLF + make_payload(cfg.size) + CRLF
        await conn.flush(cfg.timeout)

    def head(self, seq: int) -> bytes:
        """The start of request `seq` (1, 2, ..): PUB, its subject, the inbox prefix."""
        heads = self.heads
        return heads[(seq - 1) % len(heads)]

    async def run_until_done(self, kick: Callable[[], None]) -> None:
        """`kick` the first request (the clock starts now, or after the warm-up) and wait
        until the role sets `done` or the run is stopped; then flush."""
        cfg = self.ctx.cfg
        conn = self.conn
        assert conn is not None
        self.done = conn.loop.create_future()
        self.t_start = self.t_end = time.monotonic()
        if not self.warmup:
            self.begin()
        kick()
        await self.wait_for(self.done)
        if not conn.lost:
            await conn.flush(cfg.timeout)

    def begin(self) -> None:
        """The warm-up is over (or there is none): start the clock, --duration, --rate."""
        cfg = self.ctx.cfg
        self.t_start = self.t_end = time.monotonic()
        self.deadline = self.t_start + cfg.duration if cfg.duration else 0.0
        self.pacer = Pacer(cfg.rate, self.t_start) if cfg.rate else None
