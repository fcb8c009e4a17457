"""The consumer's fast paths against its message-by-message reference.

Two fast paths hand out or take back many messages in one step: ``_pull_stretch``
(first deliveries of a pull pass read in one run and formatted in one go) and
``ack_run`` (a run of plain acks from the storage loop). The reference is the path each
replaces: the pull pass message by message (``_next_message``, ``_prepare``) and
``process_ack`` ack by ack. A model test drives two consumers over stores with the same
messages through the same random operations (pull requests, passes, acks in runs, NAKs,
new messages, time passing with ack-wait redeliveries) and compares, after every step,
everything that goes out and every field a client or a restart can see. No sockets, no
sleeping: the clock is a fake one.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.jetstream.consumer import Consumer
from shardbroker.jetstream.consumer_schema import ConsumerConfig, NextRequest
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.schema import StreamConfig
from shardbroker.jetstream.store import StoreLimits

SEC = 1_000_000_000
T0 = 1_800_000_000 * SEC
REPLIES = [b"_INBOX.a.1", b"_INBOX.a.2", b"_INBOX.b.1"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Engine:
    """What a consumer asks of the engine; everything that goes out is recorded."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ready: set[Any] = set()
        self.out: list[tuple[Any, ...]] = []
        self.deaf: set[bytes] = set()  # reply subjects nobody listens to
        self.opts = type("Opts", (), {"max_payload": 1 << 20})()

    def publish(self, account: bytes, subject: bytes, reply: Any, hdr: bytes, data: bytes) -> None:
        self.out.append(("publish", subject, reply, hdr, data))

    def deliver(self, *args: Any) -> bool:
        self.out.append(("deliver", *args))
        return True

    def deliver_run(self, account: bytes, subject: bytes, records: list[bytes]) -> bool:
        self.out.append(("run", subject, list(records)))
        return True

    def interest_for(self, account: bytes, subject: bytes, group: Any) -> bool:
        return subject not in self.deaf

    def congested(self) -> bool:
        return False

    def call_later(self, delay: float, callback: Any) -> None:
        raise AssertionError("no timers here")

    def kick(self, consumer: Any) -> None:
        self.ready.add(consumer)


class Stream:
    def __init__(self, engine: Engine, retention: str) -> None:
        self.engine = engine
        self.account = b"$G"
        self.name = "S"
        self.name_bytes = b"S"
        self.store = MemStore("S", StoreLimits())
        self.config = StreamConfig(name="S", max_msg_size=-1, retention=retention)
        self.acked: list[int] = []

    def acknowledged(self, consumer: Any, seqs: list[int]) -> None:
        if self.config.retention != "limits":  # as Stream.acknowledged: nothing to do
            self.acked.extend(seqs)


class Reference(Consumer):
    """The consumer without its fast paths."""

    def _pull_stretch(self, *args: Any) -> int:
        return 0

    def ack_run(self, seqs: list[int], now: int) -> None:
        for i in range(0, len(seqs), 2):
            self.process_ack(seqs[i], seqs[i + 1], b"", None, now)


def _pair(
    retention: str, messages: int, **config: Any
) -> tuple[Clock, list[tuple[Engine, Stream, Consumer]]]:
    clock = Clock()
    values: dict[str, Any] = {"name": "C", "deliver_policy": "all", "ack_policy": "explicit",
                              "ack_wait": 30 * SEC, "max_deliver": -1, "replay_policy": "instant",
                              "max_waiting": 512}  # fmt: skip
    values.update(config)
    sides = []
    for cls in (Reference, Consumer):
        engine = Engine(clock)
        stream = Stream(engine, retention)
        for i in range(messages):
            hdr = b"NATS/1.0\r\nA: b\r\n\r\n" if i % 5 == 3 else b""
            stream.store.store_msg(f"s.{i % 3}", hdr, b"m%d" % i, ts=T0 - SEC + i)
        consumer = cls(stream, "C", ConsumerConfig(**values), clock())  # type: ignore[arg-type]
        consumer.set_start()
        sides.append((engine, stream, consumer))
    return clock, sides


def _seen(engine: Engine, stream: Stream, consumer: Consumer) -> tuple[Any, ...]:
    waiting = [
        (r.reply, r.batch, r.delivered, r.bytes_left, r.expires_at, r.next_heartbeat)
        for r in consumer.waiting
    ]
    return (
        engine.out, stream.acked, consumer.state(), sorted(consumer.pending.items()),
        list(consumer.rdq), consumer.num_pending(), consumer.npc, waiting,
        consumer.last_acked, consumer.last_delivered, consumer.last_activity, consumer.dirty,
        consumer in engine.ready, stream.store.state(False),
    )  # fmt: skip


_request = st.tuples(
    st.just("request"), st.sampled_from(REPLIES), st.integers(1, 40), st.booleans(),
    st.sampled_from([0, 0, 0, 60, 200]), st.sampled_from([0, 0, 2 * SEC]),
    st.sampled_from([0, 0, SEC]),
)  # fmt: skip
_op = st.one_of(
    _request,
    st.tuples(st.just("deliver")),
    st.tuples(st.just("deliver")),
    st.tuples(st.just("acks"), st.lists(st.integers(0, 80), max_size=30)),
    st.tuples(st.just("nak"), st.integers(0, 80)),
    st.tuples(st.just("publish"), st.integers(1, 20)),
    st.tuples(st.just("time"), st.sampled_from([SEC // 2, 3 * SEC, 31 * SEC])),
    st.tuples(st.just("deaf"), st.sampled_from(REPLIES)),
)


def _apply(op: tuple[Any, ...], clock: Clock, side: tuple[Engine, Stream, Consumer]) -> None:
    engine, stream, consumer = side
    now = clock()
    kind = op[0]
    if kind == "request":
        _, reply, batch, no_wait, max_bytes, expires, heartbeat = op
        request = NextRequest(batch=batch, no_wait=no_wait, max_bytes=max_bytes,
                              expires=expires, idle_heartbeat=heartbeat)  # fmt: skip
        answer = consumer.add_request(reply, request, now)
        if answer is not None:
            engine.out.append(("answer", reply, answer))
    elif kind == "deliver":
        engine.out.append(("more", consumer.deliver(now)))
    elif kind == "acks":
        # Acks of what was delivered (by position in the pending table, some twice,
        # some out of order) and of sequences never delivered.
        entries = sorted(consumer.pending.items())
        seqs: list[int] = []
        for k in op[1]:
            if k < len(entries):
                seqs += [entries[k][0], entries[k][1][0]]
            else:
                seqs += [k, k]
        if seqs:
            consumer.ack_run(seqs, now)
    elif kind == "nak":
        entries = sorted(consumer.pending.items())
        if op[1] < len(entries):
            seq, entry = entries[op[1]]
            consumer.process_ack(seq, entry[0], b"-NAK", None, now)
    elif kind == "publish":
        for i in range(op[1]):
            seq, _ = stream.store.store_msg("s.new", b"", b"n%d" % i, ts=now)
            consumer.on_new_message(seq, "s.new")
    elif kind == "deaf":
        engine.deaf.add(op[1])


def _run(ops: list[tuple[Any, ...]], retention: str, messages: int, **config: Any) -> None:
    clock, sides = _pair(retention, messages, **config)
    for op in ops:
        if op[0] == "time":
            clock.now += op[1]
            for side in sides:
                side[2].tick(clock())
        else:
            for side in sides:
                _apply(op, clock, side)
        assert _seen(*sides[1]) == _seen(*sides[0]), op


@settings(max_examples=250, deadline=None, derandomize=True, database=None)
@given(ops=st.lists(_op, max_size=25), messages=st.integers(0, 300))
def test_consumer_fast_paths_do_what_the_reference_does(
    ops: list[tuple[Any, ...]], messages: int
) -> None:
    _run(ops, "limits", messages, max_ack_pending=1000)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    ops=st.lists(_op, max_size=25),
    messages=st.integers(0, 120),
    max_ack_pending=st.sampled_from([-1, 1, 7, 50]),
    ack_wait=st.sampled_from([SEC, 30 * SEC]),
    max_deliver=st.sampled_from([-1, 2]),
)
def test_consumer_fast_paths_with_limits_and_redeliveries(
    ops: list[tuple[Any, ...]], messages: int, max_ack_pending: int, ack_wait: int,
    max_deliver: int,
) -> None:  # fmt: skip
    _run(ops, "limits", messages, max_ack_pending=max_ack_pending, ack_wait=ack_wait,
         max_deliver=max_deliver)  # fmt: skip


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    ops=st.lists(_op, max_size=20),
    messages=st.integers(0, 80),
    retention=st.sampled_from(["interest", "workqueue"]),
    ack_policy=st.sampled_from(["explicit", "all"]),
)
def test_consumer_fast_paths_on_other_retentions_and_ack_all(
    ops: list[tuple[Any, ...]], messages: int, retention: str, ack_policy: str
) -> None:
    _run(ops, retention, messages, ack_policy=ack_policy, max_ack_pending=100)


def test_consumer_pull_stretch_takes_a_plain_pass_in_one_run() -> None:
    """Two requests in turn get alternate messages; the pass stops at 128."""
    clock, sides = _pair("limits", 300, max_ack_pending=1000)
    engine, _, consumer = sides[1]
    for reply in REPLIES[:2]:
        assert consumer.add_request(reply, NextRequest(batch=100), clock()) is None
    taken: list[int] = []
    original = consumer._pull_stretch

    def counting(*args: Any) -> int:
        taken.append(original(*args))
        return taken[-1]

    consumer._pull_stretch = counting  # type: ignore[method-assign]
    assert consumer.deliver(clock())  # stopped at the pass limit with more to do
    assert taken == [128]
    replies = [out[1] for out in engine.out]
    assert replies[:4] == [REPLIES[0], REPLIES[1], REPLIES[0], REPLIES[1]]
    assert sum(len(out[2]) for out in engine.out) == 128
