"""Consumer timers on a fake clock: ack wait, backoff, redelivery, pull expiry, inactivity.

Unit tests (no sockets, no processes, no sleeping): a Consumer runs over a real MemStore,
with a stand-in for the stream and for the engine that records what would go out on the
mesh. Time only moves when a test advances the fake clock, and the consumer reads nothing
but that clock, so ack_wait, backoff, NAK delays, pull request expiry, heartbeats and the
inactive threshold are checked at exact instants on either side of each deadline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shardbroker.config.options import Options
from shardbroker.jetstream import consumer_validate, stream_validate
from shardbroker.jetstream.consumer import Consumer
from shardbroker.jetstream.consumer_schema import ConsumerConfig, NextRequest
from shardbroker.jetstream.engine import JetStream
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.schema import StreamConfig
from shardbroker.jetstream.store import StoreLimits

SEC = 1_000_000_000
MS = 1_000_000
T0 = 1_800_000_000 * SEC
ACK_RE = re.compile(rb"\$JS\.ACK\.S\.C\.(\d+)\.(\d+)\.(\d+)\.(\d+)\.(\d+)")


class FakeClock:
    """Wall-clock ns that move only when told to."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> int:
        self.now += ns
        return self.now


class FakeEngine:
    """What a consumer asks of the engine, with every outbound message recorded."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ready: set[Any] = set()
        self.statuses: list[tuple[bytes, bytes]] = []  # (subject, header block)
        self.deliveries: list[tuple[int, int]] = []  # (delivery count, stream seq)
        self.interest = True
        self.opts = type("Opts", (), {"max_payload": 1 << 20})()

    def publish(self, account: bytes, subject: bytes, reply: Any, hdr: bytes, data: bytes) -> None:
        self.statuses.append((subject, hdr))

    def _record(self, blob: bytes) -> None:
        for m in ACK_RE.finditer(blob):
            self.deliveries.append((int(m.group(1)), int(m.group(2))))

    def deliver(self, account: bytes, deliver_subject: bytes, subject: bytes, reply: bytes,
                group: Any, hdr: bytes, data: bytes) -> bool:  # fmt: skip
        self._record(reply)
        return True

    def deliver_run(self, account: bytes, subject: bytes, records: list[bytes]) -> bool:
        for record in records:
            self._record(record)
        return True

    def interest_for(self, account: bytes, subject: bytes, group: Any) -> bool:
        return self.interest

    def congested(self) -> bool:
        return False

    def call_later(self, delay: float, callback: Any) -> None:
        raise AssertionError("no timers in these tests")

    def kick(self, consumer: Any) -> None:
        self.ready.add(consumer)


class FakeStream:
    """The parts of a Stream a consumer reads: its store, names and engine."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.account = b"$G"
        self.name = "S"
        self.name_bytes = b"S"
        self.store = MemStore("S", StoreLimits())
        self.config = StreamConfig(name="S", max_msg_size=-1)
        self.acked: list[int] = []

    def acknowledged(self, consumer: Any, seqs: list[int]) -> None:
        self.acked.extend(seqs)


def _config(**kw: Any) -> ConsumerConfig:
    values: dict[str, Any] = {"name": "C", "deliver_policy": "all", "ack_policy": "explicit",
                              "ack_wait": 30 * SEC, "max_deliver": -1, "replay_policy": "instant",
                              "max_waiting": 512, "max_ack_pending": 1000}  # fmt: skip
    values.update(kw)
    return ConsumerConfig(**values)


def _setup(
    messages: int = 1, payload: bytes = b"x", **kw: Any
) -> tuple[FakeClock, FakeEngine, FakeStream, Consumer]:
    clock = FakeClock()
    engine = FakeEngine(clock)
    stream = FakeStream(engine)
    for i in range(messages):
        stream.store.store_msg(f"s.{i}", b"", payload, ts=T0 - SEC)
    consumer = Consumer(stream, "C", _config(**kw), clock())  # type: ignore[arg-type]
    consumer.set_start()
    return clock, engine, stream, consumer


def _pull(consumer: Consumer, clock: FakeClock, batch: int = 1, **kw: Any) -> None:
    answer = consumer.add_request(b"_INBOX.r", NextRequest(batch=batch, **kw), clock())
    assert answer is None
    consumer.deliver(clock())


def _redelivery_due(consumer: Consumer, clock: FakeClock) -> bool:
    consumer.tick(clock())
    return bool(consumer.rdq)


def test_consumer_ack_wait_redelivers_exactly_at_the_deadline() -> None:
    clock, engine, _, consumer = _setup(ack_wait=SEC)
    _pull(consumer, clock)
    assert engine.deliveries == [(1, 1)]
    clock.advance(SEC - 1)
    assert not _redelivery_due(consumer, clock)
    clock.advance(1)
    assert _redelivery_due(consumer, clock)
    _pull(consumer, clock)
    assert engine.deliveries == [(1, 1), (2, 1)]


def test_consumer_ack_before_ack_wait_stops_redelivery() -> None:
    clock, _, stream, consumer = _setup(ack_wait=SEC)
    _pull(consumer, clock)
    clock.advance(SEC // 2)
    consumer.process_ack(1, 1, b"+ACK", None, clock())
    assert consumer.floor_sseq == 1 and not consumer.pending
    clock.advance(10 * SEC)
    assert not _redelivery_due(consumer, clock)
    assert stream.acked == [1]


def test_consumer_progress_ack_restarts_the_ack_wait() -> None:
    clock, _, _, consumer = _setup(ack_wait=SEC)
    _pull(consumer, clock)
    clock.advance(900 * MS)
    consumer.process_ack(1, 1, b"+WPI", None, clock())
    clock.advance(900 * MS)  # 1.8 s after delivery, 0.9 s after the progress ack
    assert not _redelivery_due(consumer, clock)
    clock.advance(100 * MS)
    assert _redelivery_due(consumer, clock)


def test_consumer_backoff_spaces_redeliveries_and_max_deliver_stops_them() -> None:
    clock, engine, _, consumer = _setup(ack_wait=SEC, backoff=[SEC, 5 * SEC], max_deliver=3)
    _pull(consumer, clock)
    clock.advance(SEC)
    assert _redelivery_due(consumer, clock)
    _pull(consumer, clock)  # second delivery: its wait is backoff[1]
    clock.advance(5 * SEC - 1)
    assert not _redelivery_due(consumer, clock)
    clock.advance(1)
    assert _redelivery_due(consumer, clock)
    _pull(consumer, clock)  # third delivery: max_deliver reached
    assert engine.deliveries == [(1, 1), (2, 1), (3, 1)]
    clock.advance(60 * SEC)
    assert not _redelivery_due(consumer, clock)
    assert not consumer.pending  # given up
    _pull(consumer, clock)
    assert engine.deliveries == [(1, 1), (2, 1), (3, 1)]


def test_consumer_nak_redelivers_now_or_after_its_delay() -> None:
    clock, _, _, consumer = _setup(messages=2, ack_wait=30 * SEC)
    _pull(consumer, clock, batch=2)
    consumer.process_ack(1, 1, b"-NAK", None, clock())
    assert consumer.rdq == [1]
    consumer.process_ack(2, 2, b'-NAK {"delay": 2000000000}', None, clock())
    clock.advance(2 * SEC - 1)
    consumer.tick(clock())
    assert consumer.rdq == [1]
    clock.advance(1)
    consumer.tick(clock())
    assert consumer.rdq == [1, 2]


def test_consumer_redelivery_deadlines_survive_a_restart() -> None:
    clock, _, stream, consumer = _setup(ack_wait=SEC)
    _pull(consumer, clock)
    saved = consumer.state()
    clock.advance(400 * MS)
    again = Consumer(stream, "C", _config(ack_wait=SEC), clock())  # type: ignore[arg-type]
    again.restore(saved)
    assert not again.rdq  # due 1 s after the delivery, not after the restart
    clock.advance(600 * MS)
    assert _redelivery_due(again, clock)


def test_consumer_pull_request_expires_with_408() -> None:
    clock, engine, _, consumer = _setup(messages=0)
    _pull(consumer, clock, batch=5, expires=2 * SEC)
    clock.advance(2 * SEC - 1)
    consumer.tick(clock())
    assert engine.statuses == []
    clock.advance(1)
    consumer.tick(clock())
    assert len(engine.statuses) == 1
    subject, hdr = engine.statuses[0]
    assert subject == b"_INBOX.r" and hdr.startswith(b"NATS/1.0 408 Request Timeout")
    assert b"Nats-Pending-Messages: 5" in hdr
    assert not consumer.waiting


def test_consumer_pull_request_idle_heartbeats() -> None:
    clock, engine, _, consumer = _setup(messages=0)
    _pull(consumer, clock, expires=10 * SEC, idle_heartbeat=SEC)
    clock.advance(SEC - 1)
    consumer.tick(clock())
    assert engine.statuses == []
    clock.advance(1)
    consumer.tick(clock())
    assert len(engine.statuses) == 1
    assert engine.statuses[0][1].startswith(b"NATS/1.0 100 Idle Heartbeat\r\n")


def test_consumer_inactive_threshold_counts_from_last_activity() -> None:
    clock, _, _, consumer = _setup(messages=2, ack_wait=SEC, inactive_threshold=5 * SEC)
    clock.advance(3 * SEC)
    assert consumer.inactive_for(clock()) == 3 * SEC  # idle since creation
    _pull(consumer, clock)  # the request is activity (t = 3 s)
    consumer.waiting.clear()
    clock.advance(SEC - 1)
    assert consumer.inactive_for(clock()) == 0  # a delivery waits for its ack until 4 s
    clock.advance(3 * SEC + 1)  # t = 7 s: the ack wait ran out at 4 s
    assert consumer.inactive_for(clock()) == 4 * SEC
    consumer.process_ack(1, 1, b"+ACK", None, clock())  # an ack is activity too
    clock.advance(5 * SEC)
    assert consumer.inactive_for(clock()) == 5 * SEC  # not over the threshold yet
    clock.advance(1)
    assert consumer.inactive_for(clock()) > consumer.config.inactive_threshold


def test_consumer_inactive_while_requests_wait_is_zero() -> None:
    clock, _, _, consumer = _setup(messages=0, inactive_threshold=SEC)
    _pull(consumer, clock, expires=60 * SEC)
    clock.advance(30 * SEC)
    assert consumer.inactive_for(clock()) == 0


def test_consumer_info_reads_the_injected_clock() -> None:
    clock, _, _, consumer = _setup(ack_wait=SEC)
    clock.advance(1500 * MS)
    info = consumer.info()
    assert info["created"] == "2027-01-15T08:00:00Z"
    assert info["ts"] == "2027-01-15T08:00:01.5Z"


def test_consumer_push_ack_wait_redelivers_on_the_tick() -> None:
    clock, engine, _, consumer = _setup(ack_wait=SEC, deliver_subject="dlv")
    assert not consumer.deliver(clock())
    assert engine.deliveries == [(1, 1)]
    clock.advance(SEC - 1)
    consumer.tick(clock())
    assert not consumer.rdq
    clock.advance(1)
    consumer.tick(clock())
    assert consumer.rdq == [1] and consumer in engine.ready
    consumer.deliver(clock())
    assert engine.deliveries == [(1, 1), (2, 1)]


def test_consumer_push_rate_limit_refills_with_the_clock() -> None:
    # 8000 bit/s = 1000 bytes/s; the bucket starts full at max_payload (1000 bytes).
    clock, engine, _, consumer = _setup(
        messages=20, payload=b"p" * 300, deliver_subject="dlv", ack_policy="none",
        rate_limit_bps=8000,
    )  # fmt: skip
    engine.opts.max_payload = 1000
    consumer.deliver(clock())
    burst = len(engine.deliveries)
    assert 0 < burst < 20
    consumer.deliver(clock())
    assert len(engine.deliveries) == burst  # no time passed: nothing more
    clock.advance(SEC)
    consumer.deliver(clock())
    second = len(engine.deliveries) - burst
    assert 2 <= second <= 3  # ~1000 bytes of tokens for ~350-byte deliveries
    # In debt now: nothing goes until exactly the time that pays it back has passed.
    debt = -consumer.tokens
    assert debt >= 0
    clock.advance(int(debt) * 1_000_000)  # 1 ms = 1 byte at this rate
    consumer.deliver(clock())
    assert len(engine.deliveries) == burst + second
    clock.advance(1_000_000)
    consumer.deliver(clock())
    assert len(engine.deliveries) == burst + second + 1


def test_consumer_engine_tick_deletes_an_idle_consumer_on_its_clock(tmp_path: Path) -> None:
    """The engine hands its clock to streams and consumers: the inactive threshold is
    judged on it by the storage tick."""
    clock = FakeClock()
    engine = JetStream(Options(), str(tmp_path), "SID", clock=clock)
    config = stream_validate.check_stream_config(
        StreamConfig(name="S", subjects=["s.>"], storage="memory"), max_payload=1 << 20,
        existing={},
    )  # fmt: skip
    stream = engine.add_stream(engine.account(b"$G"), config)
    wanted = ConsumerConfig(name="C", inactive_threshold=5 * SEC)
    consumer = stream.add_consumer("C", consumer_validate.set_consumer_config_defaults(
        wanted, config))  # fmt: skip
    assert consumer.created == T0
    clock.advance(5 * SEC)
    engine.tick()
    assert list(stream.consumers) == ["C"]  # exactly at the threshold: kept
    clock.advance(1)
    engine.tick()
    assert list(stream.consumers) == []
