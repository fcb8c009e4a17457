"""JetStream modes over the raw client: publishing with PubAcks (sync or a window of
async ones), push and pull consumers with explicit acks, and the `$JS.API` requests
that set a run up and tear it down (jetstream-api.md; JSON through msgspec).

Owner: the coordinator (`prepare`, `finish`: stream and consumer management, filling the
stream for js-consume) and the client processes (the roles). Roles run on the client
process's event loop; replies and acks produced while parsing a read are written once,
at its end (`Connection.out`).

Set-up rules: a run creates its stream (`--stream`, capturing `--subject`) unless
`--no-create`, and refuses to take over an existing stream it was asked to create (it
would delete someone's data afterwards). The stream is deleted after the run unless
`--keep`; the run's consumer is always deleted. js-consume consumes exactly `--msgs`
messages: it fills a stream it created with that many, and on an existing stream starts
the consumer `--msgs` messages before the end (all of them without `--msgs`).
"""

from __future__ import annotations

import asyncio
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
    InboxRequester,
    ProcessContext,
    Role,
    ServerURL,
    connect,
    first_of,
    status_line,
    status_of,
)

API = "$JS.API"
CONSUMER_INACTIVE_NS = 300 * 1_000_000_000  # a crashed run's consumer goes away by itself
ACK = b" 0\r\n\r\n"  # the explicit ack: an empty message to the delivery's reply subject


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
    delivered: SequenceInfo | None = None


class ApiResponse(msgspec.Struct):
    error: ApiErr | None = None


T = TypeVar("T", bound=msgspec.Struct)


def describe(err: ApiErr) -> str:
    return f"{err.description} (err_code {err.err_code})"


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

    async def request(self, subject: str, body: msgspec.Struct | None, into: type[T]) -> T:
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
                raise BenchError(
                    f"{self.where} does not have JetStream enabled (no responders on {subject})"
                )
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
    extra: dict[str, str] = field(default_factory=dict)  # for the consumer clients' specs
    notes: dict[str, Any] = field(default_factory=dict)  # for the report


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
        account = await api.request(f"{API}.INFO", None, ApiResponse)
        if account.error is not None:
            raise BenchError(f"JetStream is not available on {where}: {describe(account.error)}")
        existing = await stream_info(api, cfg.stream)
        if cfg.create:
            if existing is not None:
                raise BenchError(
                    f"stream {cfg.stream!r} already exists on {where}; pass --no-create to "
                    f"use it, or choose another --stream"
                )
            config = StreamConfig(name=cfg.stream, subjects=[cfg.subject], storage=cfg.storage)
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
                await fill(cfg)
            await _plan_consumer(cfg, api, setup)
        return setup
    except BaseException:
        await _undo(api, setup, cfg)
        raise
    finally:
        conn.close()


async def fill(cfg: BenchConfig) -> None:
    """Publish --msgs messages into the stream (async PubAcks) before a js-consume run."""
    fill_cfg = dataclasses.replace(
        cfg, ack="async", window=max(cfg.window, 256), duration=0.0, rate=0.0
    )
    ctx = ProcessContext(fill_cfg, [0, 0], 0)
    pub = JsPublisher(ClientSpec(index=0, role="jspub", name="fill", msgs=cfg.msgs), ctx)
    try:
        await pub.setup()
        await pub.run()
    finally:
        pub.close()
    if ctx.failed.done():
        raise BenchError(f"filling stream {cfg.stream!r} failed: {ctx.failed.result()}")
    if pub.count != cfg.msgs:
        raise BenchError(f"filling stream {cfg.stream!r}: {pub.count} of {cfg.msgs} acknowledged")


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
        ack_policy="explicit",
        deliver_policy="all",
        replay_policy="instant",
        name=name,
        durable_name=name,
        max_ack_pending=cfg.window,
        inactive_threshold=CONSUMER_INACTIVE_NS,
    )
    if want < state.messages:  # the last `want` messages
        config.deliver_policy = "by_start_sequence"
        config.opt_start_seq = state.last_seq - want + 1
    if cfg.consumer == "push":
        config.deliver_subject = "_INBOX.bench" + secrets.token_hex(8)
        if cfg.subs > 1:
            config.deliver_group = cfg.queue
    else:
        # Every puller may hold a whole batch unacknowledged.
        config.max_ack_pending = max(cfg.window, 2 * cfg.batch * cfg.subs)
    request = CreateConsumerRequest(stream_name=cfg.stream, config=config)
    setup.consumer = name
    setup.expected = want
    setup.extra = {
        "stream": cfg.stream,
        "consumer": name,
        "deliver": config.deliver_subject,
        "request": msgspec.json.encode(request).decode(),
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


async def finish(cfg: BenchConfig, setup: JsSetup) -> dict[str, Any]:
    """Read the consumer's and the stream's final state for the report, then delete the
    consumer and (if ours and not --keep) the stream."""
    conn, api = await _admin(cfg)
    notes: dict[str, Any] = {"stream": setup.stream}
    try:
        if setup.consumer:
            ci = await api.request(
                f"{API}.CONSUMER.INFO.{setup.stream}.{setup.consumer}", None, ConsumerInfo
            )
            if ci.error is None:
                notes["consumer"] = {
                    "name": setup.consumer,
                    "type": cfg.consumer,
                    "num_pending": ci.num_pending,
                    "num_ack_pending": ci.num_ack_pending,
                    "num_redelivered": ci.num_redelivered,
                }
            await api.request(
                f"{API}.CONSUMER.DELETE.{setup.stream}.{setup.consumer}", None, ApiResponse
            )
        info = await stream_info(api, setup.stream)
        if info is not None and info.state is not None:
            notes["stream_msgs"] = info.state.messages
            notes["stream_bytes"] = info.state.bytes
        notes["stream_created"] = setup.created
        notes["stream_deleted"] = False
        if setup.created and not cfg.keep:
            deleted = await api.request(f"{API}.STREAM.DELETE.{setup.stream}", None, ApiResponse)
            notes["stream_deleted"] = deleted.error is None
    finally:
        conn.close()
    return notes


# -- roles (client processes) ---------------------------------------------------------------


class JsPublisher(InboxRequester):
    """Publishes with a reply inbox and counts PubAcks; at most `window` publishes wait
    for their ack (1 with --ack sync). Latency is publish -> PubAck."""

    __slots__ = ("pending", "scheduled", "seq", "window")

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.seq = 0
        self.window = ctx.cfg.window
        self.pending: dict[bytes, int] = {}  # reply token -> monotonic_ns at publish
        self.scheduled = False

    async def setup(self) -> None:
        await self.open_inbox(self.on_ack, on_batch=self.pump)

    async def run(self) -> None:
        await self.run_until_done(self.pump)
        self.publish_count(self.count)
        self.mark_done()

    def _more(self, now: float) -> bool:
        if self.ctx.stop.is_set():
            return False
        if self.spec.msgs:
            return self.seq < self.spec.msgs
        return now < self.deadline

    def pump(self) -> None:
        """Fill the window; runs after every read batch and from timers."""
        self.scheduled = False
        done = self.done
        if done is None or done.done():
            return
        conn = self.conn
        assert conn is not None
        now = time.monotonic()
        room = self.window - len(self.pending)
        more = self._more(now)
        if room > 0 and more:
            if self.pacer is not None:
                due = self.pacer.due(now, self.seq)
                if due < room:
                    room = max(0, due)
                    if not self.scheduled:
                        self.scheduled = True
                        conn.loop.call_later(self.pacer.wait(now, self.seq), self.pump)
            out = []
            head, tail, pending = self.head, self.tail, self.pending
            t = time.monotonic_ns()
            for _ in range(room):
                if self.spec.msgs and self.seq >= self.spec.msgs:
                    break
                self.seq += 1
                token = str(self.seq).encode()
                pending[token] = t
                out.append(head + token + tail)
            if out:
                conn.write(b"".join(out))
        if not self.pending and not self._more(now):
            done.set_result(None)

    def on_ack(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        t0 = self.pending.pop(subject[len(self.inbox) :], None)
        if t0 is None:
            return  # not ours, or a duplicate
        name = self.spec.name
        if hdr:
            if status_of(payload) == b"503":
                self.ctx.fail(f"{name}: no stream captures subject {self.ctx.cfg.subject!r}")
            else:
                self.ctx.fail(f"{name}: publish failed: {status_line(payload)}")
            return
        try:
            ack = msgspec.json.decode(payload, type=PubAck)
        except msgspec.DecodeError:
            self.ctx.fail(f"{name}: unexpected PubAck {payload[:80]!r}")
            return
        if ack.error is not None:
            self.ctx.fail(f"{name}: publish rejected: {describe(ack.error)}")
            return
        now = time.monotonic_ns()
        self.ctx.hist.record_value(max(1, now - t0))
        self.count += 1
        self.nbytes += self.ctx.cfg.size
        self.t_end = time.monotonic()
        self.publish_count(self.count)

    def result(self) -> dict[str, Any]:
        res = super().result()
        res["sent"] = self.seq
        return res


class _Consumer(Role):
    """Shared by push and pull: count, explicitly ack every delivery (written once per read
    batch), remember the last delivery time."""

    __slots__ = ("last",)

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.last = 0.0

    def delivered(self, reply: bytes | None, hdr: int, payload: bytes) -> None:
        self.count += 1
        self.nbytes += len(payload) - hdr
        if reply is not None:
            self.conn.out.append(b"PUB " + reply + ACK)  # type: ignore[union-attr]

    def after_batch(self) -> None:
        self.last = time.monotonic()
        self.publish_count(self.count)


class JsPushConsumer(_Consumer):
    """A member of the push consumer's deliver subject (its queue group when --subs > 1).
    The first member creates the consumer after "go", when every member listens."""

    __slots__ = ("api",)

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.api: JsApi | None = None

    async def setup(self) -> None:
        cfg = self.ctx.cfg
        conn = await self.open()
        conn.handlers[b"1"] = self.on_msg
        conn.on_batch = self.after_batch
        group = cfg.queue if cfg.subs > 1 else ""
        conn.subscribe(self.spec.extra["deliver"], b"1", group)
        if self.spec.extra.get("creator"):
            self.api = JsApi(conn, cfg.timeout, cfg.server_display)
        await conn.flush(cfg.timeout)

    def on_msg(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        if hdr and payload.startswith(b"NATS/1.0 1"):  # heartbeat / flow control
            if reply is not None:
                self.conn.out.append(b"PUB " + reply + ACK)  # type: ignore[union-attr]
            return
        self.delivered(reply, hdr, payload)

    async def run(self) -> None:
        conn = self.conn
        assert conn is not None
        self.t_start = time.monotonic()
        if self.api is not None:
            extra = self.spec.extra
            request = msgspec.json.decode(extra["request"].encode())
            try:
                await create_consumer(self.api, extra["stream"], extra["consumer"], request)
            except BenchError as exc:
                self.ctx.fail(str(exc))
        await self.ctx.stop.wait()
        if not conn.lost:
            await conn.flush(self.ctx.cfg.timeout)
        self.t_end = self.last if self.count else self.t_start


class JsPullConsumer(_Consumer):
    """Pulls `--batch` messages at a time with `no_wait` requests: the next request goes
    out when a batch is complete; `404 No Messages` means the consumer has handed out
    everything, and this client is done."""

    __slots__ = ("deadline", "done", "left", "request")
    active = True

    def __init__(self, spec: ClientSpec, ctx: ProcessContext) -> None:
        super().__init__(spec, ctx)
        self.request = b""
        self.left = 0
        self.deadline = 0.0
        self.done: asyncio.Future[None] | None = None

    async def setup(self) -> None:
        cfg = self.ctx.cfg
        conn = await self.open()
        inbox = b"_INBOX." + secrets.token_hex(11).encode()
        conn.handlers[b"1"] = self.on_msg
        conn.on_batch = self.after_batch
        conn.write(b"SUB " + inbox + b" 1" + CRLF)
        extra = self.spec.extra
        body = b'{"batch":' + str(cfg.batch).encode() + b',"no_wait":true}'
        self.request = (
            f"PUB {API}.CONSUMER.MSG.NEXT.{extra['stream']}.{extra['consumer']} ".encode()
            + inbox
            + b" "
            + str(len(body)).encode()
            + CRLF
            + body
            + CRLF
        )
        await conn.flush(cfg.timeout)

    async def run(self) -> None:
        cfg = self.ctx.cfg
        conn = self.conn
        assert conn is not None
        self.done = conn.loop.create_future()
        self.t_start = time.monotonic()
        self.deadline = self.t_start + cfg.duration if cfg.duration else 0.0
        self.pull(direct=True)
        await first_of(self.done, self.ctx.stop)
        if not conn.lost:
            await conn.flush(cfg.timeout)
        self.t_end = self.last if self.count else self.t_start
        self.publish_count(self.count)
        self.mark_done()

    def pull(self, direct: bool = False) -> None:
        done = self.done
        if done is None or done.done():
            return
        if self.ctx.stop.is_set() or (self.deadline and time.monotonic() >= self.deadline):
            done.set_result(None)
            return
        self.left = self.ctx.cfg.batch
        if direct:
            self.conn.write(self.request)  # type: ignore[union-attr]
        else:
            self.conn.out.append(self.request)  # type: ignore[union-attr]

    def on_msg(self, subject: bytes, reply: bytes | None, hdr: int, payload: bytes) -> None:
        if hdr and len(payload) - hdr == 0 and payload.startswith(b"NATS/1.0 "):
            status = status_of(payload)
            if status == b"404":  # No Messages: everything was handed out
                if self.done is not None and not self.done.done():
                    self.done.set_result(None)
            elif status == b"408":  # Requests Pending / Request Timeout: ask again shortly
                self.conn.loop.call_later(0.001, self.pull, True)  # type: ignore[union-attr]
            elif status != b"100":
                self.ctx.fail(f"{self.spec.name}: pull request failed: {status_line(payload)}")
            return
        self.delivered(reply, hdr, payload)
        self.left -= 1
        if self.left == 0:
            self.pull()
