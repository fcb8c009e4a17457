"""The modes of `shardbroker bench`: their clients, when they end, what they verify; and the
core roles (publisher, subscriber, requester, responder).

Owner: the coordinator (config checks, plans, stop rules, verification) and the client
processes (the roles). Roles run on the client process's event loop and must not block.

Counts a mode reports (`sent`, `received`):

  pub         sent = messages published (after a final PING/PONG)
  sub         received = messages counted (each subscriber stops at --msgs via UNSUB max)
  pubsub      every subscriber must receive exactly what the publishers sent
  queue       the group's members together must receive exactly what was sent
  request     sent = requests, received = replies (one request in flight per requester)
  reply       received = requests answered
  js-pub      sent = publishes, received = PubAcks (each publish must be acknowledged)
  js-consume  received = messages delivered and acknowledged

The headline rate follows `nats bench`: every message a client handled (published or
received) per second of the run; each role group also has its own rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from shardbroker.bench import (
    DEFAULT_BATCH,
    DEFAULT_MSGS,
    DEFAULT_QUEUE,
    DEFAULT_SIZE,
    DEFAULT_STREAM,
    DEFAULT_SUBJECT,
    DEFAULT_TIMEOUT,
    DEFAULT_WINDOW,
    MODES,
    BenchConfig,
    ClientSpec,
    UsageError,
)
from shardbroker.bench.client import (
    CRLF,
    INPLACE_BYTES,
    STATE_DONE,
    InboxRequester,
    Pacer,
    ProcessContext,
    Role,
    ServerURL,
    cycle_length,
    status_of,
)
from shardbroker.protocol.subjects import is_valid_literal_subject, is_valid_subject

# Which modes have publishers (--pubs) and subscribers (--subs), and their defaults.
PUB_MODES = {"pub": 1, "pubsub": 1, "queue": 1, "request": 1, "js-pub": 1}
SUB_MODES = {"sub": 1, "pubsub": 1, "queue": 2, "request": 1, "reply": 1, "js-consume": 1}
JS_MODES = ("js-pub", "js-consume")
# Modes whose publishers can cycle over several payload sizes (--size 16,17).
MIXED_SIZE_MODES = ("pub", "sub", "pubsub", "queue")
# Modes that can start with untimed round trips (--warmup).
WARMUP_MODES = ("request", "js-pub")
MAX_SUBJECTS = 1_000_000
# --size MIN-MAX: this many sizes (prime: a cycle of 100 or 1,000 subjects gives every
# subject each size), in the order of this seed.
SPREAD_SIZES = 13
SPREAD_SEED = 13
# Modes whose clients only wait for traffic from elsewhere: no idle timeout, Ctrl-C is a
# normal way to end them, and they announce on stderr when they are ready.
PASSIVE_MODES = ("sub", "reply")
STREAM_NAME_FORBIDDEN = set(" \t\r\n\f.*>/\\")

TITLES = {
    "pub": "Pub",
    "sub": "Sub",
    "pubsub": "Pub/Sub",
    "request": "Request/Reply",
    "reply": "Reply",
    "queue": "Queue group",
    "js-pub": "JetStream publish",
    "js-consume": "JetStream consume",
}


# -- arguments -------------------------------------------------------------------------


def build_config(
    mode: str,
    *,
    server: str,
    pubs: int | None = None,
    subs: int | None = None,
    msgs: int | None = None,
    duration: float | None = None,
    size: int | str | Sequence[int] | None = None,
    rate: float | None = None,
    subject: str | None = None,
    queue: str | None = None,
    procs: int = 1,
    ack: str = "async",
    window: int = DEFAULT_WINDOW,
    consumer: str = "pull",
    batch: int = DEFAULT_BATCH,
    stream: str = DEFAULT_STREAM,
    storage: str = "file",
    no_create: bool = False,
    keep: bool = False,
    no_responders_started: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    json_output: bool = False,
    csv: str = "",
    plot: str = "",
    no_progress: bool = False,
    subjects: int = 0,
    spread: int = 0,
    warmup: int = 0,
    ack_policy: str = "explicit",
    server_pid: int = 0,
) -> BenchConfig:
    """Check the command line and resolve per-mode defaults; UsageError on a bad value."""
    mode = mode.strip().lower()
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    url = ServerURL(server)

    responders = mode == "request" and not no_responders_started
    pub_default = PUB_MODES.get(mode)
    sub_default = SUB_MODES.get(mode) if mode != "request" or responders else None
    if pubs is not None and pub_default is None:
        raise UsageError(f"--pubs does not apply to mode {mode} (it has no publishers)")
    if subs is not None and sub_default is None:
        what = "responders are not started (--no-responders-started)"
        raise UsageError(
            f"--subs does not apply to mode {mode}"
            + (f": {what}" if mode == "request" else " (it has no subscribers)")
        )
    n_pubs = pub_default if pubs is None else pubs
    n_subs = sub_default if subs is None else subs
    if pub_default is not None and (n_pubs is None or n_pubs < 1):
        raise UsageError(f"--pubs must be at least 1 for mode {mode} (got {n_pubs})")
    if sub_default is not None and (n_subs is None or n_subs < 1):
        raise UsageError(f"--subs must be at least 1 for mode {mode} (got {n_subs})")

    if msgs is not None and duration is not None:
        raise UsageError("use either --msgs or --duration, not both")
    if msgs is not None and msgs < 1:
        raise UsageError(f"--msgs must be at least 1 (got {msgs})")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration must be more than 0 seconds (got {duration:g})")
    if msgs is None:
        # reply serves until stopped; js-consume of an existing stream takes what it holds.
        # js-consume fills a stream it creates with --msgs even when --duration caps the time.
        unbounded = (
            mode == "reply"
            or (mode == "js-consume" and no_create)
            or (duration is not None and mode != "js-consume")
        )
        n_msgs = 0 if unbounded else DEFAULT_MSGS
    else:
        n_msgs = msgs
    if n_msgs and n_pubs and mode in PUB_MODES and n_msgs < n_pubs:
        raise UsageError(f"--msgs {n_msgs} is fewer than --pubs {n_pubs}")

    sizes = _parse_sizes(size)
    if len(sizes) > 1 and mode not in MIXED_SIZE_MODES:
        raise UsageError(
            f"several --size values apply to modes {', '.join(MIXED_SIZE_MODES)}, not {mode}"
        )
    n_size = sizes[0]
    if rate is not None:
        if pub_default is None:
            raise UsageError(f"--rate does not apply to mode {mode} (it has no publishers)")
        if not rate > 0:
            raise UsageError(f"--rate must be more than 0 messages per second (got {rate:g})")

    subj = DEFAULT_SUBJECT if subject is None else subject
    publishes = mode in PUB_MODES or (mode == "js-consume" and not no_create)
    if subjects < 0:
        raise UsageError(f"--subjects must be 0 (one subject) or more (got {subjects})")
    if subjects > MAX_SUBJECTS:
        raise UsageError(f"--subjects is at most {MAX_SUBJECTS:,} (got {subjects:,})")
    if subjects and mode == "js-consume" and no_create:
        raise UsageError(
            "--subjects shapes the messages a run publishes; with --no-create it publishes none"
        )
    if (publishes or subjects) and not is_valid_literal_subject(subj.encode()):
        what = "to publish to" if publishes else "to add subject numbers to"
        raise UsageError(f"--subject {subj!r} is not a valid subject {what}")
    if not is_valid_subject(subj.encode()):
        raise UsageError(f"--subject {subj!r} is not a valid subject")
    if spread < 0:
        raise UsageError(f"--spread must be 0 (off) or a number of workers (got {spread})")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 or more (got {warmup})")
    if warmup and mode not in WARMUP_MODES:
        raise UsageError(f"--warmup applies to modes {', '.join(WARMUP_MODES)}, not {mode}")
    if ack_policy not in ("explicit", "none"):
        raise UsageError(f"--ack-policy takes explicit or none, not {ack_policy!r}")
    if ack_policy == "none" and (mode != "js-consume" or consumer != "push"):
        raise UsageError("--ack-policy none applies to push consumers (js-consume --consumer push)")
    group = DEFAULT_QUEUE if queue is None else queue
    if not group or any(c.isspace() for c in group):
        raise UsageError(f"--queue {group!r} is not a valid queue group name")
    if procs < 1:
        raise UsageError(f"--procs must be at least 1 (got {procs})")
    if ack not in ("sync", "async"):
        raise UsageError(f"--ack takes sync or async, not {ack!r}")
    if consumer not in ("push", "pull"):
        raise UsageError(f"--consumer takes push or pull, not {consumer!r}")
    if storage not in ("file", "memory"):
        raise UsageError(f"--storage takes file or memory, not {storage!r}")
    if window < 1:
        raise UsageError(f"--window must be at least 1 (got {window})")
    if batch < 1:
        raise UsageError(f"--batch must be at least 1 (got {batch})")
    if not stream or len(stream) > 255 or STREAM_NAME_FORBIDDEN & set(stream):
        raise UsageError(f"--stream {stream!r} is not a valid stream name")
    if not timeout > 0:
        raise UsageError(f"--timeout must be more than 0 seconds (got {timeout:g})")
    if server_pid < 0:
        raise UsageError(f"--server-pid must be a process id (got {server_pid})")
    return BenchConfig(
        mode=mode,
        server=server,
        server_display=url.display,
        pubs=n_pubs or 0,
        subs=n_subs or 0,
        msgs=n_msgs,
        msgs_given=msgs is not None,
        duration=float(duration or 0.0),
        size=n_size,
        rate=float(rate or 0.0),
        subject=subj,
        queue=group,
        procs=procs,
        ack=ack,
        window=1 if ack == "sync" and mode == "js-pub" else window,
        consumer=consumer,
        batch=batch,
        stream=stream,
        storage=storage,
        create=not no_create,
        keep=keep,
        responders=responders,
        timeout=timeout,
        json=json_output,
        csv=csv,
        plot=plot,
        progress=not (no_progress or json_output),
        sizes=tuple(sizes),
        subjects=subjects,
        spread=spread,
        warmup=warmup,
        ack_policy=ack_policy,
        server_pid=server_pid,
    )


def _parse_sizes(size: int | str | Sequence[int] | None) -> list[int]:
    """--size: one byte count, several (comma-separated) that publishers cycle over, or a
    range `MIN-MAX`, spread over SPREAD_SIZES sizes (spread_sizes)."""
    if size is None:
        return [DEFAULT_SIZE]
    if isinstance(size, int):
        values: list[int] = [size]
    elif isinstance(size, str) and "," not in size and "-" in size.strip()[1:]:
        lo_text, _, hi_text = size.strip().partition("-")
        try:
            lo, hi = int(lo_text), int(hi_text)
        except ValueError:
            raise UsageError(
                f"--size {size!r}: a range is MIN-MAX, two byte counts (16-4096)"
            ) from None
        if lo < 0 or hi <= lo:
            raise UsageError(f"--size {size!r}: a range needs 0 <= MIN < MAX")
        return spread_sizes(lo, hi)
    elif isinstance(size, str):
        try:
            values = [int(part) for part in size.split(",")]
        except ValueError:
            raise UsageError(
                f"--size {size!r}: give a byte count, several separated by commas, "
                "or a range MIN-MAX"
            ) from None
    else:
        values = list(size)
    for value in values:
        if value < 0:
            raise UsageError(f"--size must be 0 or more bytes (got {value})")
    if not values:
        raise UsageError("--size names no size")
    return values


def spread_sizes(lo: int, hi: int, count: int = SPREAD_SIZES) -> list[int]:
    """`count` distinct sizes from `lo` to `hi` (both included), evenly spaced on a log
    scale (16-4096: 16, 25, 40, 64, 102, 161, 256, 406, 645, 1024, 1625, 2580, 4096; small
    messages as common as large ones, as in real traffic), in an order shuffled with a
    fixed seed, so that every run, against any server, sends the same sequence. The sizes
    are distinct, so consecutive messages never share one; `count` is prime, so with
    --subjects 100 or 1,000 each subject sees every size."""
    start = max(lo, 1)
    steps = range(1, count - 1)
    values = {lo, hi} | {round(start * (hi / start) ** (i / (count - 1))) for i in steps}
    ordered = sorted(values)
    random.Random(SPREAD_SEED).shuffle(ordered)
    return ordered


# -- plans ---------------------------------------------------------------------------------


def _shares(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def plan(
    cfg: BenchConfig, js_extra: dict[str, str] | None = None, expected: int = 0
) -> list[ClientSpec]:
    """The clients of a run, receivers first (they must be subscribed before "go").

    Processes: with --procs 2 or more, senders (publishers, requesters) and receivers
    (subscribers, responders, consumers) never share a client process, so that neither
    side slows the other down; each side gets a share of the processes in proportion to
    its clients (at least one), and its clients are dealt round-robin over them.
    Placement (--spread W): senders go to workers 1, 2, .., W, 1, ..; receivers start one
    further (2, .., W, 1, ..), so that a single publisher and a single subscriber sit on
    different workers and fan-outs are half local, half remote.
    """
    specs: list[tuple[str, str, int, str, int, dict[str, str]]] = []

    def add(
        role: str,
        prefix: str,
        count: int,
        msgs: int = 0,
        queue: str = "",
        unsub: int = 0,
        extra: dict[str, str] | None = None,
    ) -> None:
        shares = _shares(msgs, count) if msgs else [0] * count
        specs.extend(
            (role, f"{prefix}-{i + 1}", shares[i], queue, unsub, extra or {}) for i in range(count)
        )

    mode = cfg.mode
    if mode == "pub":
        add("pub", "pub", cfg.pubs, cfg.msgs)
    elif mode == "sub":
        add("sub", "sub", cfg.subs, unsub=cfg.msgs)
    elif mode == "pubsub":
        add("sub", "sub", cfg.subs)
        add("pub", "pub", cfg.pubs, cfg.msgs)
    elif mode == "queue":
        add("sub", "member", cfg.subs, queue=cfg.queue)
        add("pub", "pub", cfg.pubs, cfg.msgs)
    elif mode == "request":
        if cfg.responders:
            add("rep", "rep", cfg.subs, queue=cfg.queue)
        add("req", "req", cfg.pubs, cfg.msgs)
    elif mode == "reply":
        add("rep", "rep", cfg.subs, queue=cfg.queue)
    elif mode == "js-pub":
        add("jspub", "jspub", cfg.pubs, cfg.msgs)
    elif mode == "js-consume":
        if cfg.consumer == "push":
            add("jspush", "consumer", cfg.subs, extra=js_extra)
        else:  # every puller asks for its share of the messages, no more
            add("jspull", "consumer", cfg.subs, msgs=expected, extra=js_extra)
    senders = [i for i, spec in enumerate(specs) if is_sender(spec[0])]
    receivers = [i for i, spec in enumerate(specs) if not is_sender(spec[0])]
    procs = _assign_procs(cfg.procs, receivers, senders)
    length = cycle_length(cfg.subjects, len(cfg.sizes))
    target = dict.fromkeys(range(len(specs)), 0)
    offset = dict.fromkeys(range(len(specs)), 0)
    for side, first in ((senders, 0), (receivers, 1)):
        for k, i in enumerate(side):
            if cfg.spread:
                target[i] = 1 + (k + first) % cfg.spread
            if side is senders:
                offset[i] = k * length // len(senders)
    # The first push consumer creates the JetStream consumer once every member listens.
    return [
        ClientSpec(
            index=i,
            role=role,
            name=name,
            proc=procs[i],
            msgs=msgs,
            queue=queue,
            unsub_after=unsub,
            extra=dict(extra, creator="1") if i == 0 and role == "jspush" else extra,
            target=target[i],
            offset=offset[i],
        )
        for i, (role, name, msgs, queue, unsub, extra) in enumerate(specs)
    ]


def _assign_procs(procs: int, receivers: list[int], senders: list[int]) -> dict[int, int]:
    """Client index -> process (see plan)."""
    total = len(receivers) + len(senders)
    procs = max(1, min(procs, total))
    if procs < 2 or not receivers or not senders:
        return {i: k % procs for k, i in enumerate(sorted(receivers + senders))}
    n_recv = round(procs * len(receivers) / total)
    n_recv = max(1, min(len(receivers), n_recv, procs - 1))
    n_send = max(1, min(len(senders), procs - n_recv))
    if n_recv + n_send < procs:  # the senders could not use theirs
        n_recv = min(len(receivers), procs - n_send)
    out = {i: k % n_recv for k, i in enumerate(receivers)}
    out.update({i: n_recv + k % n_send for k, i in enumerate(senders)})
    return out


def is_sender(role: str) -> bool:
    """Clients that send the traffic of a run (the others receive it)."""
    return role in ("pub", "req", "jspub")


def is_active(role: str) -> bool:
    """Active roles end by themselves; the others run until the coordinator stops them."""
    return role in ("pub", "req", "jspub", "jspull")


class Tracker:
    """The coordinator's view of a running mode, from the shared counters alone: when to
    stop the passive clients, how far along the run is, what is missing on a timeout."""

    def __init__(self, cfg: BenchConfig, specs: Sequence[ClientSpec], expected: int) -> None:
        self.cfg = cfg
        self.active = [s.index for s in specs if is_active(s.role)]
        self.passive = [s.index for s in specs if not is_active(s.role)]
        self.names = {s.index: s.name for s in specs}
        self.expected = expected  # js-consume: messages to consume
        # Waiting for traffic from elsewhere: no idle timeout.
        self.external = cfg.mode in PASSIVE_MODES

    def _actives_done(self, states: Sequence[int]) -> bool:
        return all(states[i] == STATE_DONE for i in self.active)

    def sent(self, counts: Sequence[int]) -> int:
        return sum(counts[i] for i in self.active)

    def finished(self, counts: Sequence[int], states: Sequence[int], elapsed: float) -> bool:
        cfg = self.cfg
        mode = cfg.mode
        if not self.active:  # passive-only: sub, reply, js-consume push
            if cfg.duration and elapsed >= cfg.duration:
                return True
            if mode == "sub":
                return bool(cfg.msgs) and all(counts[i] >= cfg.msgs for i in self.passive)
            if mode == "reply":
                return bool(cfg.msgs) and sum(counts[i] for i in self.passive) >= cfg.msgs
            return bool(self.expected) and sum(counts[i] for i in self.passive) >= self.expected
        if not self._actives_done(states):
            return False
        sent = self.sent(counts)
        if mode == "pubsub":
            return all(counts[i] >= sent for i in self.passive)
        if mode == "queue":
            return sum(counts[i] for i in self.passive) >= sent
        return True  # pub, request, js-pub, js-consume pull

    def progress(self, counts: Sequence[int], elapsed: float) -> tuple[float, float | None, str]:
        """(done, total or None, unit) for the progress bar."""
        cfg = self.cfg
        if cfg.duration:
            return min(elapsed, cfg.duration), cfg.duration, "s"
        mode = cfg.mode
        received = sum(counts[i] for i in self.passive)
        if mode in ("pub", "request", "js-pub", "js-consume") and self.active:
            return self.sent(counts), cfg.msgs or self.expected or None, "msgs"
        if mode in ("pubsub", "sub"):
            return received, (cfg.msgs * cfg.subs) or None, "msgs"
        if mode == "js-consume":
            return received, self.expected or None, "msgs"
        return received, cfg.msgs or None, "msgs"

    def missing(self, counts: Sequence[int], states: Sequence[int]) -> str:
        """What the run is still waiting for, for a timeout message."""
        cfg = self.cfg
        busy = [self.names[i] for i in self.active if states[i] != STATE_DONE]
        if busy:
            return f"{', '.join(busy)} did not finish ({self.sent(counts)} sent)"
        sent = self.sent(counts)
        if cfg.mode == "queue":
            got = sum(counts[i] for i in self.passive)
            return f"queue group {cfg.queue!r} received {got} of {sent} messages"
        if cfg.mode == "js-consume":
            got = sum(counts[i] for i in self.passive)
            return f"consumers received {got} of {self.expected} messages"
        short = [
            f"{self.names[i]} received {counts[i]} of {sent}"
            for i in self.passive
            if counts[i] < sent
        ]
        return "; ".join(short) or "no progress"


def verify(
    cfg: BenchConfig, specs: Sequence[ClientSpec], results: Sequence[dict[str, Any]], expected: int
) -> list[str]:
    """Exactness checks once every client reported; returns the problems found."""
    by_index = {r["index"]: r for r in results}
    actives = [by_index[s.index] for s in specs if is_active(s.role)]
    passives = [by_index[s.index] for s in specs if not is_active(s.role)]
    sent = sum(r["msgs"] for r in actives if r["role"] == "pub")
    errors: list[str] = []
    if cfg.mode == "pubsub":
        errors.extend(
            f"{r['name']} received {r['msgs']} of {sent} messages ({_loss_or_dup(r['msgs'], sent)})"
            for r in passives
            if r["msgs"] != sent
        )
    elif cfg.mode == "queue":
        got = sum(r["msgs"] for r in passives)
        if got != sent:
            errors.append(
                f"queue group {cfg.queue!r} received {got} of {sent} messages"
                f" ({_loss_or_dup(got, sent)})"
            )
    elif cfg.mode == "js-consume":
        got = sum(r["msgs"] for r in passives + actives)
        if expected and got != expected and not cfg.duration:
            errors.append(
                f"consumers received {got} of {expected} messages ({_loss_or_dup(got, expected)})"
            )
    if not cfg.duration:
        for s in specs:
            r = by_index[s.index]
            if is_active(s.role) and s.msgs and r["msgs"] != s.msgs:
                what = {"pub": "published", "req": "got replies to", "jspub": "got PubAcks for"}
                errors.append(
                    f"{s.name} {what.get(s.role, 'handled')} {r['msgs']} of {s.msgs} messages"
                )
        if cfg.mode == "sub" and cfg.msgs:
            errors += [
                f"{r['name']} received {r['msgs']} of {cfg.msgs} messages"
                for r in passives
                if r["msgs"] != cfg.msgs
            ]
    return errors


def _loss_or_dup(got: int, want: int) -> str:
    return f"{want - got} lost" if got < want else f"{got - want} duplicates"


# -- core roles --------------------------------------------------------------------------


class Publisher(Role):
    """Writes ~64 KiB chunks of PUB frames from the cycle of subjects and sizes, starting
    at its own offset; the first frame of a chunk carries its send time in the first 8
    payload bytes (sizes permitting), the others the plain filler, so that the rest of
    a chunk is one prebuilt run (FrameCycle.plain_run). Ends with a PING/PONG."""

    __slots__ = ()
    active = True

    async def setup(self) -> None:
        await self.open()

    async def run(self) -> None:
        cfg = self.ctx.cfg
        conn = self.conn
        assert conn is not None
        stop = self.ctx.stop
        cycle = self.ctx.cycle()
        length, per, pay = cycle.length, cycle.per, cycle.pay
        stamped = cycle.slen > 0
        j = self.spec.offset % length
        n = self.spec.msgs
        self.t_start = t0 = time.monotonic()
        deadline = t0 + cfg.duration if cfg.duration else 0.0
        pacer = Pacer(cfg.rate, t0) if cfg.rate else None
        sent = 0
        nbytes = 0
        write = conn.write
        writelines = conn.transport.writelines  # type: ignore[union-attr]
        plain_run = cycle.plain_run
        heads, tails, frame_len = cycle.heads, cycle.tails, cycle.frame_len
        clock = time.monotonic
        clock_ns = time.monotonic_ns
        while not stop.is_set():
            k = per if not n else min(per, n - sent)
            if k <= 0:
                break
            if deadline or pacer:
                now = clock()
                if deadline and now >= deadline:
                    break
                if pacer is not None:
                    due = pacer.due(now, sent)
                    if due <= 0:
                        await asyncio.sleep(pacer.wait(now, sent))
                        continue
                    k = min(k, due)
            if not conn.can_write.is_set() or conn.lost:
                await conn.writable()
            if not stamped:
                write(plain_run(j, k))
            elif frame_len[j] >= INPLACE_BYTES:  # a large first frame: write its pieces
                stamp = clock_ns().to_bytes(8, "big")
                if k == 1:
                    writelines((heads[j], stamp, tails[j]))
                else:
                    writelines((heads[j], stamp, tails[j], plain_run((j + 1) % length, k - 1)))
            else:
                first = heads[j] + clock_ns().to_bytes(8, "big") + tails[j]
                if k == 1:
                    write(first)
                else:
                    writelines((first, plain_run((j + 1) % length, k - 1)))
            nbytes += pay[j + k] - pay[j]
            j = (j + k) % length
            sent += k
            self.publish_count(sent)
            await asyncio.sleep(0)  # let the other clients of this process run
        await conn.flush(cfg.timeout)
        self.t_end = time.monotonic()
        self.count = sent
        self.nbytes = nbytes
        self.publish_count(sent)
        self.mark_done()


def subscription(cfg: BenchConfig) -> str:
    """What subscribers and responders subscribe to: the subject, or with --subjects N
    every `<subject>.<i>` through one wildcard."""
    return cfg.subject + ".*" if cfg.subjects else cfg.subject


class Subscriber(Role):
    """Counts what arrives on one subscription (a queue member when the spec has a queue);
    records end-to-end latency from the publishers' stamps."""

    __slots__ = ()

    async def setup(self) -> None:
        conn = await self.open(counting=True, hist=self.ctx.hist)
        conn.counters = self.ctx.counters
        conn.slot = 2 * self.spec.index
        conn.cycle = self.ctx.cycle(b"1")
        publishers = self.ctx.cycle()
        if publishers.slen:  # a stamped frame every `per` frames of a publisher
            conn.chunk = publishers.per
        conn.subscribe(subscription(self.ctx.cfg), b"1", self.spec.queue)
        if self.spec.unsub_after:
            conn.write(b"UNSUB 1 " + str(self.spec.unsub_after).encode() + CRLF)
        await conn.flush(self.ctx.cfg.timeout)

    async def run(self) -> None:
        conn = self.conn
        assert conn is not None
        await self.ctx.stop.wait()
        if not conn.lost:
            await conn.flush(self.ctx.cfg.timeout)  # late (duplicate) deliveries show up
        self.count = conn.count
        self.nbytes = conn.nbytes
        # With publishers in the run the clock starts at "go"; alone, at the first message.
        external = self.ctx.cfg.mode in PASSIVE_MODES
        self.t_start = conn.t_first if external and conn.count else self.ctx.t_go
        self.t_end = conn.t_last if conn.count else self.t_start


class Responder(Role):
    """Answers every request on the subject (in the --queue group) with its own payload."""

    __slots__ = ("first", "last")

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.first = 0.0
        self.last = 0.0

    async def setup(self) -> None:
        conn = await self.open()
        conn.handlers[b"1"] = self.on_request
        conn.subscribe(subscription(self.ctx.cfg), b"1", self.spec.queue)
        await conn.flush(self.ctx.cfg.timeout)

    def on_request(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        if reply is None:
            return
        body = payload[hdr:] if hdr else payload
        self.conn.out.append(  # type: ignore[union-attr]
            b"PUB " + reply + b" " + str(len(body)).encode() + CRLF + body + CRLF
        )
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1
        self.nbytes += len(body)
        self.publish_count(self.count)

    async def run(self) -> None:
        conn = self.conn
        assert conn is not None
        await self.wait_for()
        if not conn.lost:
            await conn.flush(self.ctx.cfg.timeout)
        self.t_start = self.first if self.count else self.ctx.t_go
        self.t_end = self.last if self.count else self.t_start


class Requester(InboxRequester):
    """Round trips, one request in flight: the reply (or a pacing timer) sends the next
    request straight from the callback, without a task switch. Each request has its own
    reply token, so a late or duplicate reply is never taken for the current one. The
    first --warmup round trips are neither timed nor counted."""

    __slots__ = ("expect", "late", "samples", "seq", "t_sent")

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.seq = 0
        self.expect = b""
        self.t_sent = 0
        self.late = 0
        # Round-trip times, put into the histogram after the run (a record is ~2 us).
        self.samples: list[int] = []

    async def setup(self) -> None:
        await self.open_inbox(self.on_reply)

    async def run(self) -> None:
        await self.run_until_done(self.send_next)
        record = self.ctx.hist.record_value
        for ns in self.samples:
            record(ns)
        self.samples.clear()
        self.mark_done()

    def send_next(self) -> None:
        done = self.done
        assert done is not None
        if done.done():
            return
        n = self.spec.msgs
        timed = self.seq - self.warmup  # negative while warming up
        if self.ctx.stop.is_set() or (n and timed >= n):
            done.set_result(None)
            return
        if timed >= 0 and (self.deadline or self.pacer is not None):
            now = time.monotonic()
            if self.deadline and now >= self.deadline:
                done.set_result(None)
                return
            if self.pacer is not None and self.pacer.due(now, timed) <= 0:
                self.conn.loop.call_later(self.pacer.wait(now, timed), self.send_next)  # type: ignore[union-attr]
                return
        self.seq += 1
        token = str(self.seq).encode()
        self.expect = self.inbox + token
        self.t_sent = time.monotonic_ns()
        self.conn.write(self.head(self.seq) + token + self.tail)  # type: ignore[union-attr]

    def on_reply(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        if subject != self.expect:
            self.late += 1
            return
        if hdr and status_of(payload) == b"503":
            self.ctx.fail(f"{self.spec.name}: no responders on subject {self.ctx.cfg.subject!r}")
            return
        self.expect = b""
        if self.seq <= self.warmup:
            if self.seq == self.warmup:
                self.begin()
        else:
            self.samples.append(max(1, now - self.t_sent))
            self.count += 1
            self.nbytes += len(payload) - hdr
            self.t_end = time.monotonic()
            self.publish_count(self.count)
        self.send_next()

    def result(self) -> dict[str, Any]:
        res = super().result()
        warm = min(self.seq, self.warmup)
        res["sent"] = self.seq - warm
        res["warmup"] = warm
        res["late_replies"] = self.late
        return res


def role_class(role: str) -> Callable[[ClientSpec, ProcessContext], Role]:
    from shardbroker.bench import jetstream

    classes: dict[str, Callable[[ClientSpec, ProcessContext], Role]] = {
        "pub": Publisher,
        "sub": Subscriber,
        "req": Requester,
        "rep": Responder,
        "jspub": jetstream.JsPublisher,
        "jspush": jetstream.JsPushConsumer,
        "jspull": jetstream.JsPullConsumer,
    }
    return classes[role]
