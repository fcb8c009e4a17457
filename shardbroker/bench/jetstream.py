"""JetStream modes over the raw client: publishing with PubAcks (sync or a window of
async ones), push and pull consumers that check every delivery, and the `$JS.API`
requests that set a run up and tear it down (jetstream-api.md; JSON through msgspec).

Owner: the coordinator (`prepare`, `finish`, `verify`: stream and consumer management,
filling the stream for js-consume, the final checks) and the client processes (the
roles). Roles run on the client process's event loop; acks produced while parsing a
read are written once, at its end (`Connection.out`).

Set-up rules: a run creates its stream (`--stream`, capturing `--subject`, or
`<subject>.*` with --subjects) unless `--no-create`, and refuses to take over an
existing stream it was asked to create (it would delete someone's data afterwards). The
stream is deleted after the run unless `--keep`; the run's consumer is always deleted.
js-consume consumes exactly `--msgs` messages: it fills a stream it created with that
many (untimed), and on an existing stream starts the consumer `--msgs` messages before
the end (all of them without `--msgs`). A server that has just started may not answer
the JetStream API yet (shardbroker's storage process attaches after the workers): the
first request is repeated until it is answered, for up to --timeout.

Consumers identify each delivery by its ack subject
`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>` (the
11-token form with a domain and account hash too): the stream sequence says which
message it is (duplicates and, at the end, missing ones), the delivered count whether it
is a redelivery. Pullers keep one or two requests of --batch outstanding (the next when
no more than half a batch is owed, as nats.go's Consume does), never asking for more
than their share of the messages. With explicit acks, the ack of a consumer's last
message asks for a reply (ack sync): its clock stops when the reply comes, when the
server has processed every ack. A push consumer is timed from its first read that
brought deliveries, counting only the messages after it (`nats bench` times from the
first message): how soon a server starts pushing is start-up latency, reported apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from shardbroker.bench import BenchConfig, BenchError, ClientSpec
from shardbroker.bench.client import (
    CRLF,
    Connection,
    FrameError,
    InboxRequester,
    ProcessContext,
    Role,
    ServerURL,
    connect,
    status_line,
    status_of,
)

API = "$JS.API"
CONSUMER_INACTIVE_NS = 300 * 1_000_000_000  # a crashed run's consumer goes away by itself
ACK = b" 0\r\n\r\n"  # the explicit ack: an empty message to the delivery's reply subject
PULL_EXPIRES_NS = 30 * 1_000_000_000  # per pull request, as nats.go's Consume
FILL_WINDOW = 1024  # un-acked publishes while filling a stream for js-consume (untimed)
READY_RETRY = 0.05  # seconds between attempts while JetStream does not answer yet
SETTLE_TIMEOUT = 5.0  # seconds for the consumer's info to show every message acked
SETTLE_POLL = 0.05


# -- API shapes (only the fields the runner reads or sends) ------------------------------


class ApiErr(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    error: ApiErr | None = None


class StreamConfig(msgspec.Struct, omit_defaults=True):
    name: str
    subjects: list[str]
    storage: str
    num_replicas: int = 1


class StreamState(msgspec.Struct):
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0


class StreamInfo(msgspec.Struct):
    error: ApiErr | None = None
    state: StreamState | None = None


class ConsumerConfig(msgspec.Struct, omit_defaults=True):
    ack_policy: str  # no default: omitted, the server would take "none"
    deliver_policy: str
    replay_policy: str
    name: str = ""
    durable_name: str = ""
    opt_start_seq: int = 0
    max_ack_pending: int = 0
    inactive_threshold: int = 0
    deliver_subject: str = ""
    deliver_group: str = ""


class CreateConsumerRequest(msgspec.Struct):
    stream_name: str
    config: ConsumerConfig


class SequenceInfo(msgspec.Struct):
    consumer_seq: int = 0
    stream_seq: int = 0


class ConsumerInfo(msgspec.Struct):
    error: ApiErr | None = None
    name: str = ""
    num_pending: int = 0
    num_ack_pending: int = 0
    num_redelivered: int = 0
    num_waiting: int = 0
    delivered: SequenceInfo | None = None
    ack_floor: SequenceInfo | None = None


class ApiResponse(msgspec.Struct):
    error: ApiErr | None = None


T = TypeVar("T", bound=msgspec.Struct)


def describe(err: ApiErr) -> str:
    return f"{err.description} (err_code {err.err_code})"


class _NoResponders(Exception):
    pass


class JsApi:
    """`$JS.API` request/reply over a dispatching connection: one wildcard inbox, one
    token per request."""

    __slots__ = ("conn", "prefix", "seq", "timeout", "waiters", "where")

    def __init__(self, conn: Connection, timeout: float, where: str) -> None:
        self.conn = conn
        self.timeout = timeout
        self.where = where
        self.prefix = b"_INBOX." + secrets.token_hex(11).encode() + b"."
        self.seq = 0
        self.waiters: dict[bytes, asyncio.Future[tuple[int, bytes]]] = {}
        conn.handlers[b"api"] = self._on_reply
        conn.write(b"SUB " + self.prefix + b"* api" + CRLF)

    def _on_reply(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        fut = self.waiters.pop(subject[len(self.prefix) :], None)
        if fut is not None and not fut.done():
            fut.set_result((hdr, payload))

    async def request(
        self, subject: str, body: msgspec.Struct | None, into: type[T], *, wait: float = 0.0
    ) -> T:
        """One request; with `wait`, a "no responders" answer is retried for that long
        (JetStream still starting)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return await self._request(subject, body, into)
            except _NoResponders:
                if time.monotonic() >= deadline:
                    raise BenchError(
                        f"{self.where} does not have JetStream enabled (no responders on {subject})"
                    ) from None
                await asyncio.sleep(READY_RETRY)

    async def _request(self, subject: str, body: msgspec.Struct | None, into: type[T]) -> T:
        data = msgspec.json.encode(body) if body is not None else b""
        self.seq += 1
        token = str(self.seq).encode()
        fut: asyncio.Future[tuple[int, bytes]] = self.conn.loop.create_future()
        self.waiters[token] = fut
        self.conn.write(
            b"PUB "
            + subject.encode()
            + b" "
            + self.prefix
            + token
            + b" "
            + str(len(data)).encode()
            + CRLF
            + data
            + CRLF
        )
        try:
            hdr, payload = await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            raise BenchError(
                f"{subject}: no reply from {self.where} within {self.timeout:g}s"
            ) from None
        finally:
            self.waiters.pop(token, None)
        if hdr:
            if status_of(payload) == b"503":
                raise _NoResponders
            raise BenchError(f"{subject}: {status_line(payload)}")
        try:
            return msgspec.json.decode(payload, type=into)
        except msgspec.DecodeError as exc:
            raise BenchError(f"{subject}: unexpected reply from {self.where}: {exc}") from None


# -- set-up and tear-down (coordinator) ------------------------------------------------------


@dataclass
class JsSetup:
    """What `prepare` made; `finish` undoes it."""

    stream: str
    created: bool = False  # the stream is ours: delete it after the run unless --keep
    consumer: str = ""
    expected: int = 0  # js-consume: messages the consumers must receive
    first_seq: int = 0  # js-consume: the stream sequences they must receive
    last_seq: int = 0
    extra: dict[str, str] = field(default_factory=dict)  # for the consumer clients' specs
    notes: dict[str, Any] = field(default_factory=dict)  # for the report


def stream_subjects(cfg: BenchConfig) -> list[str]:
    return [cfg.subject + ".*" if cfg.subjects else cfg.subject]


async def _admin(cfg: BenchConfig) -> tuple[Connection, JsApi]:
    url = ServerURL(cfg.server)
    problems: list[str] = []
    conn = await connect(url, "setup", problems.append, timeout=cfg.timeout)
    api = JsApi(conn, cfg.timeout, url.display)
    await conn.flush(cfg.timeout)
    return conn, api


async def stream_info(api: JsApi, name: str) -> StreamInfo | None:
    info = await api.request(f"{API}.STREAM.INFO.{name}", None, StreamInfo)
    if info.error is not None:
        if info.error.err_code == 10059:  # stream not found
            return None
        raise BenchError(f"stream {name!r}: {describe(info.error)}")
    return info


async def prepare(cfg: BenchConfig, server_info: dict[str, Any]) -> JsSetup:
    """Check JetStream, create (and for js-consume fill) the stream, create a pull consumer
    or describe the push consumer its first client will create."""
    where = cfg.server_display
    if not server_info.get("jetstream"):
        raise BenchError(
            f"{where} does not have JetStream enabled; mode {cfg.mode} needs it "
            f"(nats-server: start it with -js)"
        )
    conn, api = await _admin(cfg)
    setup = JsSetup(stream=cfg.stream)
    try:
        account = await api.request(f"{API}.INFO", None, ApiResponse, wait=cfg.timeout)
        if account.error is not None:
            raise BenchError(f"JetStream is not available on {where}: {describe(account.error)}")
        existing = await stream_info(api, cfg.stream)
        if cfg.create:
            if existing is not None:
                raise BenchError(
                    f"stream {cfg.stream!r} already exists on {where}; pass --no-create to "
                    f"use it, or choose another --stream"
                )
            config = StreamConfig(
                name=cfg.stream, subjects=stream_subjects(cfg), storage=cfg.storage
            )
            created = await api.request(f"{API}.STREAM.CREATE.{cfg.stream}", config, ApiResponse)
            if created.error is not None:
                raise BenchError(f"cannot create stream {cfg.stream!r}: {describe(created.error)}")
            setup.created = True
        elif existing is None:
            raise BenchError(
                f"stream {cfg.stream!r} not found on {where}; drop --no-create to create it"
            )
        if cfg.mode == "js-consume":
            if cfg.create:
                setup.notes["fill"] = await fill(cfg)
            await _plan_consumer(cfg, api, setup)
        return setup
    except BaseException:
        await _undo(api, setup, cfg)
        raise
    finally:
        conn.close()


async def fill(cfg: BenchConfig) -> dict[str, Any]:
    """Publish --msgs messages into the stream (async PubAcks, FILL_WINDOW in flight)
    before a js-consume run; untimed. With --spread the connection goes to worker 1."""
    fill_cfg = dataclasses.replace(
        cfg, ack="async", window=FILL_WINDOW, duration=0.0, rate=0.0, warmup=0
    )
    ctx = ProcessContext(fill_cfg, [0, 0], 0)
    spec = ClientSpec(
        index=0, role="jspub", name="prefill", msgs=cfg.msgs, target=1 if cfg.spread else 0
    )
    pub = JsPublisher(spec, ctx)
    t0 = time.monotonic()
    try:
        await pub.setup()
        await pub.run()
    finally:
        pub.close()
    if ctx.failed.done():
        raise BenchError(f"filling stream {cfg.stream!r} failed: {ctx.failed.result()}")
    if pub.count != cfg.msgs:
        raise BenchError(f"filling stream {cfg.stream!r}: {pub.count} of {cfg.msgs} acknowledged")
    res = pub.result()
    return {
        "msgs": pub.count,
        "seconds": round(time.monotonic() - t0, 6),
        "shard": res["shard"],
        "missed": res["missed"],
    }


async def _plan_consumer(cfg: BenchConfig, api: JsApi, setup: JsSetup) -> None:
    info = await stream_info(api, cfg.stream)
    state = info.state if info is not None and info.state is not None else StreamState()
    want = cfg.msgs or state.messages
    if not want:
        raise BenchError(f"stream {cfg.stream!r} is empty; fill it first (js-pub --keep)")
    if want > state.messages:
        raise BenchError(
            f"stream {cfg.stream!r} holds {state.messages} messages, fewer than --msgs {want}"
        )
    name = "bench_" + secrets.token_hex(4)
    config = ConsumerConfig(
        ack_policy=cfg.ack_policy if cfg.consumer == "push" else "explicit",
        deliver_policy="all",
        replay_policy="instant",
        name=name,
        durable_name=name,
        inactive_threshold=CONSUMER_INACTIVE_NS,
    )
    first = state.first_seq
    if want < state.messages:  # the last `want` messages
        config.deliver_policy = "by_start_sequence"
        config.opt_start_seq = first = state.last_seq - want + 1
    if cfg.consumer == "push":
        config.deliver_subject = "_INBOX.bench" + secrets.token_hex(8)
        if cfg.subs > 1:
            config.deliver_group = cfg.queue
        if config.ack_policy == "explicit":
            config.max_ack_pending = cfg.window
    else:
        # Every puller may hold up to two batches unacknowledged.
        config.max_ack_pending = max(cfg.window, 2 * cfg.batch * cfg.subs)
    request = CreateConsumerRequest(stream_name=cfg.stream, config=config)
    setup.consumer = name
    setup.expected = want
    setup.first_seq = first
    setup.last_seq = state.last_seq
    setup.extra = {
        "stream": cfg.stream,
        "consumer": name,
        "deliver": config.deliver_subject,
        "request": msgspec.json.encode(request).decode(),
        "first_seq": str(first),
        "last_seq": str(state.last_seq),
        # One push consumer knows it gets every message: its last ack asks for a reply.
        "expected": str(want),
    }
    if cfg.consumer == "pull":
        await create_consumer(api, cfg.stream, name, request)


async def create_consumer(api: JsApi, stream: str, name: str, request: Any) -> None:
    subject = f"{API}.CONSUMER.CREATE.{stream}.{name}"
    created = await api.request(subject, request, ConsumerInfo)
    if created.error is not None:
        raise BenchError(f"cannot create consumer {name!r}: {describe(created.error)}")


async def _undo(api: JsApi, setup: JsSetup, cfg: BenchConfig) -> None:
    """Best effort: remove what `prepare` created when it failed half-way."""
    try:
        if setup.consumer:
            await api.request(
                f"{API}.CONSUMER.DELETE.{setup.stream}.{setup.consumer}", None, ApiResponse
            )
        if setup.created and not cfg.keep:
            await api.request(f"{API}.STREAM.DELETE.{setup.stream}", None, ApiResponse)
    except (BenchError, ConnectionError):
        pass


def _settled(ci: ConsumerInfo, last_seq: int) -> bool:
    delivered = ci.delivered.stream_seq if ci.delivered is not None else 0
    floor = ci.ack_floor.stream_seq if ci.ack_floor is not None else 0
    pending = ci.num_ack_pending or ci.num_pending
    return delivered == last_seq and floor == last_seq and not pending


async def finish(cfg: BenchConfig, setup: JsSetup, complete: bool) -> dict[str, Any]:
    """Read the consumer's and the stream's final state for the report, then delete the
    consumer and (if ours and not --keep) the stream. After a `complete` consume run the
    consumer's info is polled (every SETTLE_POLL s, up to SETTLE_TIMEOUT) until it shows
    every message delivered and acked, nothing pending; `settle_s` says how long that
    took (None: it never did)."""
    conn, api = await _admin(cfg)
    notes: dict[str, Any] = {"stream": setup.stream, **setup.notes}
    try:
        if setup.consumer:
            subject = f"{API}.CONSUMER.INFO.{setup.stream}.{setup.consumer}"
            t0 = time.monotonic()
            ci = await api.request(subject, None, ConsumerInfo)
            settle = None
            while ci.error is None and complete:
                if _settled(ci, setup.last_seq):
                    settle = round(time.monotonic() - t0, 6)
                    break
                if time.monotonic() - t0 > SETTLE_TIMEOUT:
                    break
                await asyncio.sleep(SETTLE_POLL)
                ci = await api.request(subject, None, ConsumerInfo)
            if ci.error is None:
                notes["consumer"] = {
                    "name": setup.consumer,
                    "type": cfg.consumer,
                    "ack_policy": cfg.ack_policy if cfg.consumer == "push" else "explicit",
                    "num_pending": ci.num_pending,
                    "num_ack_pending": ci.num_ack_pending,
                    "num_redelivered": ci.num_redelivered,
                    "num_waiting": ci.num_waiting,
                    "delivered_seq": ci.delivered.stream_seq if ci.delivered else 0,
                    "ack_floor_seq": ci.ack_floor.stream_seq if ci.ack_floor else 0,
                    "last_seq": setup.last_seq,
                    "settle_s": settle,
                }
            else:
                notes["consumer_error"] = describe(ci.error)
            await api.request(
                f"{API}.CONSUMER.DELETE.{setup.stream}.{setup.consumer}", None, ApiResponse
            )
        info = await stream_info(api, setup.stream)
        if info is not None and info.state is not None:
            notes["stream_msgs"] = info.state.messages
            notes["stream_bytes"] = info.state.bytes
            notes["stream_last_seq"] = info.state.last_seq
        notes["stream_created"] = setup.created
        notes["stream_deleted"] = False
        if setup.created and not cfg.keep:
            deleted = await api.request(f"{API}.STREAM.DELETE.{setup.stream}", None, ApiResponse)
            notes["stream_deleted"] = deleted.error is None
    finally:
        conn.close()
    return notes


def verify(
    cfg: BenchConfig, setup: JsSetup, notes: dict[str, Any], results: list[dict[str, Any]]
) -> list[str]:
    """The checks that need every client's results and the server's final state: what the
    stream holds, and for js-consume every message exactly once, in order (one push
    consumer), acked (the consumer's info settled). Adds the merged counts to `notes`."""
    errors: list[str] = []
    if cfg.mode == "js-pub":
        pubs = [r for r in results if r["role"] == "jspub"]
        acked = sum(r["msgs"] + r.get("warmup", 0) for r in pubs)
        surplus = sum(r.get("surplus", 0) for r in pubs)
        notes["published"] = sum(r.get("sent", 0) + r.get("warmup", 0) for r in pubs)
        notes["acked"] = acked
        notes["bad_acks"] = sum(r.get("bad", 0) for r in pubs)
        notes["surplus_acks"] = surplus
        if surplus:
            errors.append(f"{surplus} PubAcks for no outstanding publish")
        if setup.created and not cfg.duration:
            for key in ("stream_msgs", "stream_last_seq"):
                held = notes.get(key)
                if held is not None and held != acked:
                    what = "holds" if key == "stream_msgs" else "ends at sequence"
                    errors.append(
                        f"stream {cfg.stream!r} {what} {held}, but {acked} publishes were "
                        f"acknowledged"
                    )
        return errors
    cons = [r for r in results if r["role"] in ("jspush", "jspull")]
    merged = 0
    for r in cons:
        merged |= int.from_bytes(r["seen"], "big")
    distinct = merged.bit_count()  # one byte per sequence, 0 or 1
    received = sum(r["received"] for r in cons)
    in_range = received - sum(r["out_of_range"] for r in cons)
    counts = {
        "expected": setup.expected,
        "received": received,
        "distinct": distinct,
        "duplicates": in_range - distinct,
        "missing": setup.expected - distinct,
        "out_of_range": sum(r["out_of_range"] for r in cons),
        "out_of_order": sum(r["out_of_order"] for r in cons),
        "redelivered": sum(r["redelivered"] for r in cons),
        "no_reply": sum(r["no_reply"] for r in cons),
        "requests": sum(r.get("requests", 0) for r in cons),
        "statuses": _sum_statuses(cons),
        "first_delivery_s": min(
            (r["first_delivery_s"] for r in cons if r["first_delivery_s"] is not None),
            default=None,
        ),
    }
    notes["consume"] = counts
    if counts["duplicates"]:
        errors.append(f"{counts['duplicates']} duplicate deliveries")
    if counts["out_of_range"]:
        errors.append(
            f"{counts['out_of_range']} deliveries with a stream sequence outside "
            f"{setup.first_seq}..{setup.last_seq}"
        )
    if counts["no_reply"]:
        errors.append(f"{counts['no_reply']} messages without a $JS.ACK reply subject")
    if counts["redelivered"]:
        errors.append(f"{counts['redelivered']} redeliveries")
    if cfg.consumer == "push" and cfg.subs == 1 and counts["out_of_order"]:
        errors.append(f"{counts['out_of_order']} deliveries out of stream order")
    bad = {k: v for k, v in counts["statuses"].items() if not k.startswith("100")}
    if bad:
        errors.append(f"status messages: {bad}")
    if cfg.duration:
        return errors
    if counts["missing"] > 0:
        errors.append(f"{counts['missing']} of {setup.expected} messages never delivered")
    unsynced = [r["name"] for r in cons if r.get("sync_sent") and not r.get("synced")]
    if unsynced:
        errors.append(f"{', '.join(unsynced)}: the final ack sync got no reply")
    c = notes.get("consumer")
    if "consumer_error" in notes:
        errors.append(f"consumer info failed: {notes['consumer_error']}")
    elif c is not None and c["settle_s"] is None:
        errors.append(
            f"consumer info {SETTLE_TIMEOUT:g} s after the run: delivered={c['delivered_seq']}, "
            f"ack_floor={c['ack_floor_seq']}, num_ack_pending={c['num_ack_pending']}, "
            f"num_pending={c['num_pending']} (expected delivered=ack_floor={setup.last_seq}, "
            f"no ack pending, none pending)"
        )
    fill_msgs = notes.get("fill", {}).get("msgs")
    if fill_msgs is not None and notes.get("stream_msgs") != fill_msgs:
        errors.append(
            f"stream {cfg.stream!r} holds {notes.get('stream_msgs')} messages after the run, "
            f"{fill_msgs} were put in"
        )
    return errors


def _sum_statuses(results: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            out[k] = out.get(k, 0) + v
    return out


# -- roles (client processes) ---------------------------------------------------------------

_PUBACK = msgspec.json.Decoder(PubAck)


class JsPublisher(InboxRequester):
    """Publishes with a reply inbox and counts PubAcks; at most `window` publishes wait
    for their ack (1 with --ack sync). Latency is publish -> PubAck: publishes of one
    write share a send time, so acks are recorded per (send time, read) with a weight.
    Parses its inbox itself (`feed`): one token lookup and one msgspec decode per ack."""

    __slots__ = (
        "bad",
        "lat",
        "limit",
        "pending",
        "samples",
        "scheduled",
        "seq",
        "surplus",
        "warm_acked",
        "window",
    )

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.seq = 0
        self.window = ctx.cfg.window
        self.pending: dict[bytes, int] = {}  # reply token -> monotonic_ns at publish
        self.lat: dict[int, int] = {}  # send time -> acks in this read
        # (latency, acks): put into the histogram after the run (a record is ~1-2 us).
        self.samples: list[tuple[int, int]] = []
        self.scheduled = False
        self.bad = 0
        self.surplus = 0  # acks for no outstanding publish (duplicates)
        self.warm_acked = 0
        # Publishes allowed so far (0: until the deadline): the warm-up, then all.
        self.limit = self.warmup

    async def setup(self) -> None:
        await self.open_inbox(self.on_ack, on_batch=self.pump)
        assert self.conn is not None
        self.conn.feed = self.feed

    async def run(self) -> None:
        await self.run_until_done(self.pump)
        self.pump()  # the latencies of the last read
        record = self.ctx.hist.record_value
        for ns, k in self.samples:
            record(ns, k)
        self.samples.clear()
        self.publish_count(self.count)
        self.mark_done()

    def begin(self) -> None:
        super().begin()
        self.limit = self.warmup + self.spec.msgs if self.spec.msgs else 0

    def _more(self, now: float) -> bool:
        """More to publish: below the limit (or, without one, before the deadline)."""
        if self.ctx.stop.is_set():
            return False
        if self.limit:
            return self.seq < self.limit
        return now < self.deadline

    def pump(self) -> None:
        """Note the latencies of the read, then fill the window; runs after every read
        and from timers. Kept lean: with --ack sync it runs once per round trip."""
        lat = self.lat
        if lat:
            now_ns = time.monotonic_ns()
            samples = self.samples
            for t0, k in lat.items():
                samples.append((max(1, now_ns - t0), k))
            lat.clear()
        self.scheduled = False
        done = self.done
        if done is None or done.done():
            return
        pending = self.pending
        room = self.window - len(pending)
        limit = self.limit
        now = 0.0 if limit and self.pacer is None else time.monotonic()
        if room > 0 and self._more(now):
            if limit:
                room = min(room, limit - self.seq)
            if self.pacer is not None:
                timed = self.seq - self.warmup
                due = self.pacer.due(now, timed)
                if due < room:
                    room = max(0, due)
                    if not self.scheduled:
                        self.scheduled = True
                        self.conn.loop.call_later(self.pacer.wait(now, timed), self.pump)  # type: ignore[union-attr]
            if room > 0:
                tail, heads = self.tail, self.heads
                t = time.monotonic_ns()
                seq = self.seq
                if room == 1 and len(heads) == 1:  # --ack sync: one at a time
                    seq += 1
                    token = str(seq).encode()
                    pending[token] = t
                    self.seq = seq
                    self.conn.write(heads[0] + token + tail)  # type: ignore[union-attr]
                    return
                out = []
                if len(heads) == 1:
                    head = heads[0]
                    for seq in range(seq + 1, seq + room + 1):  # noqa: B020
                        token = str(seq).encode()
                        pending[token] = t
                        out.append(head + token + tail)
                else:
                    for seq in range(seq + 1, seq + room + 1):  # noqa: B020
                        token = str(seq).encode()
                        pending[token] = t
                        out.append(self.head(seq) + token + tail)
                self.seq = seq
                self.conn.write(b"".join(out))  # type: ignore[union-attr]
        if not pending and not self._more(now or time.monotonic()):
            done.set_result(None)

    def feed(self, data: bytes, pos: int = 0) -> int:
        """Parse a read of the inbox: count PubAcks, check each. Per ack: the token cut
        from the subject, one dict pop, one msgspec decode; latencies are noted per
        send time (`lat`), acks of one write arriving together."""
        conn = self.conn
        assert conn is not None
        n = len(data)
        skip = 4 + len(self.inbox)  # "MSG " + inbox: the token starts there
        pending = self.pending
        lat = self.lat
        decode = _PUBACK.decode
        warming = self.warm_acked < self.warmup
        acks = 0
        last_t0 = 0
        last_k = 0
        while pos < n:
            nl = data.find(CRLF, pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG ":
                sp = data.find(b" ", pos + skip, nl)
                try:
                    size = int(data[data.rfind(b" ", pos, nl) + 1 : nl])
                except ValueError:
                    raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    conn.need = end + 2 - pos
                    break
                t0 = pending.pop(data[pos + skip : sp], None)
                pos = end + 2
                if t0 is None:
                    self.surplus += 1
                    continue
                try:
                    ack = decode(data[nl + 2 : end])
                except msgspec.DecodeError:
                    self.bad += 1
                    self.ctx.fail(
                        f"{self.spec.name}: unexpected PubAck {data[nl + 2 : end][:80]!r}"
                    )
                    continue
                if ack.error is not None or not ack.seq:
                    self.bad += 1
                    why = describe(ack.error) if ack.error is not None else "no sequence"
                    self.ctx.fail(f"{self.spec.name}: publish rejected: {why}")
                    continue
                if warming:
                    self.warm_acked += 1
                    if self.warm_acked == self.warmup:
                        self.begin()
                        warming = False
                    continue
                if t0 != last_t0:
                    if last_k:
                        lat[last_t0] = lat.get(last_t0, 0) + last_k
                    last_t0, last_k = t0, 0
                last_k += 1
                acks += 1
                continue
            if op == b"HMSG":
                args = data[pos:nl].split()
                try:
                    size = int(args[-1])
                except (IndexError, ValueError):
                    raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    conn.need = end + 2 - pos
                    break
                t0 = pending.pop(args[1][skip - 4 :], None)
                pos = end + 2
                if t0 is None:
                    self.surplus += 1
                else:
                    self.reject(data[nl + 2 : end])
                continue
            conn.control(op, data, pos, nl)
            pos = nl + 2
        if last_k:
            lat[last_t0] = lat.get(last_t0, 0) + last_k
        if acks:
            self.count += acks
            self.nbytes += acks * self.ctx.cfg.size
            self.t_end = time.monotonic()
            self.publish_count(self.count)
        return pos

    def reject(self, payload: bytes) -> None:
        """A status instead of a PubAck: no stream captures the subject (503), or other."""
        self.bad += 1
        name = self.spec.name
        if status_of(payload) == b"503":
            self.ctx.fail(f"{name}: no stream captures subject {self.ctx.cfg.subject!r}")
        else:
            self.ctx.fail(f"{name}: publish failed: {status_line(payload)}")

    def on_ack(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        """Unused: `feed` parses the inbox (kept as the dispatch handler of sid 1)."""

    def result(self) -> dict[str, Any]:
        res = super().result()
        warm = min(self.warm_acked, self.warmup)
        res["sent"] = self.seq - warm
        res["warmup"] = warm
        res["bad"] = self.bad
        res["surplus"] = self.surplus
        return res


class _Consumer(Role):
    """Shared by push and pull: parse deliveries (`feed`), check each by its ack subject
    (see the module docstring), ack it unless the policy is none (written once per read);
    the ack of the consumer's last message (`want`) asks for a reply (ack sync)."""

    __slots__ = (
        "ack",
        "credit",
        "distinct",
        "dupes",
        "first_read",
        "inbox",
        "last_seq",
        "lo",
        "no_reply",
        "out_of_order",
        "out_of_range",
        "received",
        "redelivered",
        "seen",
        "statuses",
        "sync_reply",
        "sync_sent",
        "synced",
        "t_begin",
        "t_first",
        "t_last",
        "timed",
        "want",
    )

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        extra = spec.extra
        self.lo = int(extra.get("first_seq", "1"))
        hi = int(extra.get("last_seq", "0"))
        self.seen = bytearray(max(0, hi - self.lo + 1))
        self.ack = ctx.cfg.ack_policy == "explicit" or spec.role == "jspull"
        self.want = 0  # set by the role: messages after which this consumer is complete
        self.inbox = b"_INBOX." + secrets.token_hex(11).encode() + b"."
        self.sync_reply = self.inbox + b"sync"
        self.sync_sent = False
        self.synced: asyncio.Future[float] | None = None
        self.received = 0  # deliveries, duplicates included
        self.distinct = 0
        self.dupes = 0
        self.out_of_range = 0
        self.out_of_order = 0  # stream seq not the previous one + 1
        self.redelivered = 0
        self.no_reply = 0
        self.last_seq = 0
        self.statuses: dict[str, int] = {}
        self.credit = 0  # messages that requests ended early (408/409) no longer owe
        self.t_begin = 0.0  # run start: first request / subscription
        self.t_first: float | None = None  # the first read that brought deliveries
        self.t_last = 0.0  # the last one
        self.first_read = 0  # deliveries in the first
        self.timed = 0  # deliveries the rate counts

    async def connect(self) -> Connection:
        conn = await self.open()
        conn.feed = self.feed
        conn.on_batch = self.after_batch
        self.synced = conn.loop.create_future()
        return conn

    def feed(self, data: bytes, pos: int = 0) -> int:
        conn = self.conn
        assert conn is not None
        out = conn.out
        n = len(data)
        seen, lo, span = self.seen, self.lo, len(self.seen)
        ack = self.ack
        want = self.want
        received = distinct = nbytes = 0
        last = self.last_seq
        while pos < n:
            nl = data.find(CRLF, pos)
            if nl < 0:
                break
            op = data[pos : pos + 4]
            if op == b"MSG ":
                parts = data[pos + 4 : nl].split(b" ")
                try:
                    size = int(parts[-1])
                except ValueError:
                    raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    conn.need = end + 2 - pos
                    break
                pos = end + 2
                if len(parts) != 4:
                    handler = conn.handlers.get(parts[1]) if len(parts) == 3 else None
                    if handler is not None:
                        handler(parts[0], None, 0, data[nl + 2 : end])
                    elif parts[0] == self.sync_reply:
                        if self.synced is not None and not self.synced.done():
                            self.synced.set_result(time.monotonic())
                            self.on_synced()
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
                received += 1
                if seq != last + 1:
                    self.out_of_order += 1
                last = seq
                i = seq - lo
                if 0 <= i < span:
                    if seen[i]:
                        self.dupes += 1
                    else:
                        seen[i] = 1
                        distinct += 1
                        nbytes += size
                        if ack and self.distinct + distinct == want:
                            out.append(b"PUB " + reply + b" " + self.sync_reply + ACK)
                            self.sync_sent = True
                            continue
                else:
                    self.out_of_range += 1
                if ack:
                    out.append(b"PUB " + reply + ACK)
                continue
            if op == b"HMSG":
                parts = data[pos + 5 : nl].split(b" ")
                try:
                    hlen, size = int(parts[-2]), int(parts[-1])
                except (IndexError, ValueError):
                    raise FrameError(f"bad line from server: {data[pos:nl][:80]!r}") from None
                end = nl + 2 + size
                if end + 2 > n:
                    conn.need = end + 2 - pos
                    break
                pos = end + 2
                block = data[nl + 2 : nl + 2 + hlen]
                handler = conn.handlers.get(parts[1])
                if handler is not None:
                    handler(parts[0], None, hlen, data[nl + 2 : end])
                    continue
                first, _, rest = block.partition(CRLF)
                status = first[9:].decode(errors="replace").strip() or "(headers)"
                if status.startswith("100"):  # heartbeat or flow control: answer the latter
                    if len(parts) == 5:
                        out.append(b"PUB " + parts[2] + ACK)
                    continue
                self.statuses[status] = self.statuses.get(status, 0) + 1
                for line in rest.split(CRLF):
                    if line.lower().startswith(b"nats-pending-messages:"):
                        self.credit += int(line.split(b":", 1)[1])
                continue
            conn.control(op, data, pos, nl)
            pos = nl + 2
        self.last_seq = last
        if received:
            self.received += received
            self.distinct += distinct
            self.nbytes += nbytes
            self.count = self.distinct
            self.t_last = now = time.monotonic()
            if self.t_first is None:
                self.t_first = now
                self.first_read = self.distinct
        return pos

    def after_batch(self) -> None:
        self.publish_count(self.count)

    def on_synced(self) -> None:
        """The reply to the ack sync came (its time is the result of `synced`)."""

    def result(self) -> dict[str, Any]:
        res = super().result()
        synced = self.synced is not None and self.synced.done()
        res.update(
            timed=self.timed,
            received=self.received,
            out_of_range=self.out_of_range,
            out_of_order=self.out_of_order,
            redelivered=self.redelivered,
            no_reply=self.no_reply,
            statuses=self.statuses,
            sync_sent=self.sync_sent,
            synced=synced,
            seen=bytes(self.seen),
            first_delivery_s=None if self.t_first is None else self.t_first - self.t_begin,
        )
        return res


class JsPushConsumer(_Consumer):
    """A member of the push consumer's deliver subject (its queue group when --subs > 1).
    The first member creates the consumer after "go", when every member listens. Timed
    from its first read with deliveries (see the module docstring)."""

    __slots__ = ("api",)

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.api: JsApi | None = None
        if ctx.cfg.subs == 1:
            self.want = int(spec.extra.get("expected", "0"))

    async def setup(self) -> None:
        cfg = self.ctx.cfg
        conn = await self.connect()
        group = cfg.queue if cfg.subs > 1 else ""
        conn.subscribe(self.spec.extra["deliver"], b"1", group)
        conn.write(b"SUB " + self.inbox + b"* 2" + CRLF)
        if self.spec.extra.get("creator"):
            self.api = JsApi(conn, cfg.timeout, cfg.server_display)
        await conn.flush(cfg.timeout)

    async def run(self) -> None:
        conn = self.conn
        assert conn is not None and self.synced is not None
        cfg = self.ctx.cfg
        self.t_begin = time.monotonic()
        if self.api is not None:
            extra = self.spec.extra
            request = msgspec.json.decode(extra["request"].encode())
            try:
                await create_consumer(self.api, extra["stream"], extra["consumer"], request)
            except BenchError as exc:
                self.ctx.fail(str(exc))
        await self.wait_for()
        if self.sync_sent and not conn.lost:
            # The coordinator stops the run at the last delivery; the reply to the ack
            # sync says the server has processed every ack.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.synced), cfg.timeout)
        if not conn.lost:
            await conn.flush(cfg.timeout)  # late (duplicate) deliveries show up
        end = self.synced.result() if self.synced.done() else self.t_last
        t_first = self.t_first
        if not self.count or t_first is None:
            self.t_start = self.t_end = self.t_begin
            self.timed = 0
        elif end > t_first and self.count > self.first_read:
            self.t_start, self.t_end = t_first, end
            self.timed = self.count - self.first_read
        else:  # everything came in one read: timed from the subscription
            self.t_start, self.t_end = self.t_begin, end
            self.timed = self.count


class JsPullConsumer(_Consumer):
    """Pulls its share of the messages (`spec.msgs`): requests of --batch with a 30 s
    expiry, the next one as soon as no more than half a batch is owed, never more than
    the share in total (requests ended early by a 408/409 give back what they owed).
    Done when the reply to its ack sync arrives (timed from the first request)."""

    __slots__ = ("deadline", "done", "request_head", "requested", "requests")
    active = True

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.want = spec.msgs
        self.request_head = b""
        self.requested = 0
        self.requests = 0
        self.deadline = 0.0
        self.done: asyncio.Future[None] | None = None

    async def setup(self) -> None:
        cfg = self.ctx.cfg
        conn = await self.connect()
        conn.write(b"SUB " + self.inbox + b"* 1" + CRLF)
        extra = self.spec.extra
        self.request_head = (
            f"PUB {API}.CONSUMER.MSG.NEXT.{extra['stream']}.{extra['consumer']} ".encode()
            + self.inbox
            + b"pull "
        )
        await conn.flush(cfg.timeout)

    def request(self, k: int) -> bytes:
        self.requested += k
        self.requests += 1
        body = b'{"batch":' + str(k).encode() + b',"expires":' + str(PULL_EXPIRES_NS).encode()
        body += b"}"
        return self.request_head + str(len(body)).encode() + CRLF + body + CRLF

    async def run(self) -> None:
        cfg = self.ctx.cfg
        conn = self.conn
        assert conn is not None and self.synced is not None
        self.done = conn.loop.create_future()
        self.t_begin = time.monotonic()
        self.deadline = self.t_begin + cfg.duration if cfg.duration else 0.0
        if self.want:
            conn.write(self.request(min(cfg.batch, self.want)))
            await self.wait_for(self.done)
        if not conn.lost:
            await conn.flush(cfg.timeout)
        self.t_start = self.t_begin
        self.t_end = self.synced.result() if self.synced.done() else self.t_last or self.t_begin
        self.timed = self.count
        self.publish_count(self.count)
        self.mark_done()

    def on_synced(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def after_batch(self) -> None:
        self.publish_count(self.count)
        done = self.done
        if done is None or done.done():
            return
        if self.deadline and time.monotonic() >= self.deadline:
            done.set_result(None)
            return
        if self.credit:
            self.requested -= self.credit
            self.credit = 0
        batch = self.ctx.cfg.batch
        left = self.want - self.requested
        if left > 0 and self.requested - self.received <= batch // 2:
            self.conn.out.append(self.request(min(batch, left)))  # type: ignore[union-attr]

    def result(self) -> dict[str, Any]:
        res = super().result()
        res["requests"] = self.requests
        return res
