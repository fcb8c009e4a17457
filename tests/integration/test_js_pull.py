"""Pull consumers (jetstream-semantics.md §7-§10, jetstream-api.md §8.8): nats-py
`pull_subscribe` + `fetch`, the exact status replies of `$JS.API.CONSUMER.MSG.NEXT` seen on
a raw inbox, the ack protocol (+ACK, -NAK with and without delay, +WPI, +NXT, +TERM,
ack-sync), redelivery after ack_wait, max_deliver, max_ack_pending, backoff, the ack
policies, the ack reply subject's tokens, a work queue shared by consumers on different
workers, and interest retention. Also run against nats-server
(SHARDBROKER_TEST_TARGET=nats-server), which is how the expectations were checked."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    raw_connect_on_shard,
    run_broker,
    unique,
)
from tests.helpers.wait import async_check_for, check_for
from tests.helpers.wire import Msg, WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NS = 1_000_000_000


def name() -> str:
    return unique("PL").upper()


# -- a raw JetStream client: exact bytes of every reply ----------------------------------


class RawJS:
    """API requests, publishes and pull requests over one raw connection.

    Replies come on `<inbox>.<n>` (sid 1); pull deliveries on `self.pull_inbox` (sid 2).
    The tests are sequential, so the next frame is always the one expected.
    """

    def __init__(self, client: WireClient, *, handshake: bool = True) -> None:
        self.c = client
        self.inbox = unique("_RAW.")
        self.pull_inbox = unique("_PULL.")
        self.n = 0
        if handshake:
            client.handshake(headers=True, no_responders=True)
        client.send(f"SUB {self.inbox}.* 1\r\nSUB {self.pull_inbox} 2\r\n".encode())
        assert client.ping_barrier() == b""

    def pub(self, subject: str, data: bytes = b"", reply: str | None = None) -> None:
        head = f"PUB {subject} {reply} {len(data)}" if reply else f"PUB {subject} {len(data)}"
        self.c.send(head.encode() + b"\r\n" + data + b"\r\n")

    def request(self, subject: str, data: bytes = b"") -> Msg:
        self.n += 1
        reply = f"{self.inbox}.{self.n}"
        self.pub(subject, data, reply)
        msg = self.c.read_msg()
        assert msg.subject == reply, msg.raw
        return msg

    def api(self, subject: str, body: dict | bytes = b"") -> dict[str, Any]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return json.loads(self.request(subject, data).payload)

    def publish(self, subject: str, data: bytes) -> int:
        ack = json.loads(self.request(subject, data).payload)
        assert "error" not in ack, ack
        return int(ack["seq"])

    def add_stream(self, **config: Any) -> dict[str, Any]:
        answer = self.api(f"$JS.API.STREAM.CREATE.{config['name']}", config)
        assert "error" not in answer, answer
        return answer

    def add_consumer(self, stream: str, durable: str, **config: Any) -> dict[str, Any]:
        config = {"durable_name": durable, "ack_policy": "explicit", **config}
        answer = self.api(
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            {"stream_name": stream, "config": config},
        )
        assert "error" not in answer, answer
        return answer

    def info(self, stream: str, consumer: str) -> dict[str, Any]:
        return self.api(f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")

    def next(self, stream: str, consumer: str, body: dict | bytes = b"") -> None:
        """Send a pull request (no reply read)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.pub(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", data, self.pull_inbox)

    def wait_waiting(self, stream: str, consumer: str, count: int) -> None:
        """Until the consumer has `count` queued pull requests (JetStream queues a request
        after the server has read it, so a PING barrier is not enough)."""

        def queued() -> bool:
            return self.info(stream, consumer)["num_waiting"] == count

        check_for(5, 0.02, queued)

    def read_pull(self, timeout: float = 5.0) -> Msg:
        msg = self.c.read_msg(timeout=timeout)
        assert msg.sid == "2", msg.raw
        return msg

    def expect_status(self, header: bytes, timeout: float = 5.0) -> Msg:
        """The next frame is a status message on the pull inbox with exactly `header`."""
        msg = self.c.read_msg(timeout=timeout)
        assert (msg.op, msg.subject, msg.sid, msg.reply) == (
            "HMSG",
            self.pull_inbox,
            "2",
            None,
        ), msg.raw
        assert msg.header == header, msg.raw
        assert msg.payload == b""
        return msg


@pytest.fixture
def raw(js_broker: Broker):
    client = raw_connect_on_shard(js_broker, 1)
    try:
        yield RawJS(client)
    finally:
        client.close()


def filled(raw: RawJS, count: int = 5, **stream: Any) -> str:
    """A new stream `<S>` on `<S>.*` holding `count` messages `m1..` on `<S>.x`."""
    s = name()
    raw.add_stream(name=s, subjects=[f"{s}.*"], **stream)
    for i in range(1, count + 1):
        raw.publish(f"{s}.x", f"m{i}".encode())
    return s


def ack_tokens(reply: str | None) -> list[str]:
    assert reply is not None
    tokens = reply.split(".")
    assert len(tokens) == 9 and tokens[:2] == ["$JS", "ACK"], reply
    return tokens


def parse_rfc3339_ns(text: str) -> int:
    """Unix ns of a Go RFC3339Nano UTC time (`2026-11-23T04:21:14.206048194Z`)."""
    assert text.endswith("Z"), text
    base, _, frac = text[:-1].partition(".")
    secs = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(secs) * NS + int((frac or "0").ljust(9, "0"))


# -- raw MSG.NEXT: deliveries and status replies -------------------------------------------


def test_js_pull_delivery_frame_and_ack_subject_tokens(raw: RawJS) -> None:
    s = filled(raw, 3)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 3})
    msgs = [raw.read_pull() for _ in range(3)]
    for i, msg in enumerate(msgs, start=1):
        # The delivered subject is the stored one; the reply is the ack subject.
        assert (msg.op, msg.subject, msg.sid, msg.payload) == ("MSG", f"{s}.x", "2", b"m%d" % i)
        tokens = ack_tokens(msg.reply)
        assert tokens[2:4] == [s, "c1"]
        # delivered count, stream seq, consumer seq, (timestamp), pending
        assert (tokens[4], tokens[5], tokens[6], tokens[8]) == ("1", str(i), str(i), str(3 - i))
        stored = raw.api(f"$JS.API.STREAM.MSG.GET.{s}", {"seq": i})
        assert int(tokens[7]) == parse_rfc3339_ns(stored["message"]["time"])
    # Batch reached without max_bytes: no trailing status.
    assert raw.c.ping_barrier() == b""
    # An ack with a reply is confirmed with an empty message.
    ack = raw.request(msgs[0].reply or "", b"+ACK")
    assert ack.payload == b"" and ack.op == "MSG"
    info = raw.info(s, "c1")
    assert info["ack_floor"] == {"consumer_seq": 1, "stream_seq": 1, "last_active": ANY_TIME}
    assert info["num_ack_pending"] == 2


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith("Z") and "T" in other

    def __repr__(self) -> str:
        return "<any RFC3339 time>"


ANY_TIME = _AnyTime()


def test_js_pull_no_wait_on_empty_is_404(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 1, "no_wait": True})
    raw.expect_status(b"NATS/1.0 404 No Messages\r\n\r\n")
    # no_wait, batch 5, 2 available: both, then 404.
    raw.publish(f"{s}.x", b"a")
    raw.publish(f"{s}.x", b"b")
    raw.next(s, "c1", {"batch": 5, "no_wait": True})
    assert [raw.read_pull().payload for _ in range(2)] == [b"a", b"b"]
    raw.expect_status(b"NATS/1.0 404 No Messages\r\n\r\n")
    info = raw.info(s, "c1")
    assert info["num_waiting"] == 0


def test_js_pull_no_wait_with_expires_waits_when_nothing_delivered(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 2, "no_wait": True, "expires": 3 * NS})
    raw.wait_waiting(s, "c1", 1)
    raw.publish(f"{s}.x", b"late")
    msg = raw.read_pull()
    assert msg.payload == b"late"
    raw.expect_status(b"NATS/1.0 404 No Messages\r\n\r\n")


def test_js_pull_expires_is_408_with_pending_counts(raw: RawJS) -> None:
    s = filled(raw, 2)
    raw.add_consumer(s, "c1")
    start = time.monotonic()
    raw.next(s, "c1", {"batch": 5, "expires": NS // 2})
    assert [raw.read_pull().payload for _ in range(2)] == [b"m1", b"m2"]
    raw.expect_status(
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 0\r\n\r\n"
    )
    assert time.monotonic() - start >= 0.45
    info = raw.info(s, "c1")
    assert info["num_waiting"] == 0


def test_js_pull_waiting_request_is_served_by_a_later_publish(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 1, "expires": 5 * NS})
    raw.wait_waiting(s, "c1", 1)
    raw.publish(f"{s}.x", b"now")
    assert raw.read_pull().payload == b"now"
    assert raw.info(s, "c1")["num_waiting"] == 0


def test_js_pull_plain_body_forms(raw: RawJS) -> None:
    s = filled(raw, 4)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", b"")  # empty = batch 1
    assert raw.read_pull().payload == b"m1"
    raw.next(s, "c1", b"2")  # an integer = that batch
    assert [raw.read_pull().payload for _ in range(2)] == [b"m2", b"m3"]
    assert raw.c.ping_barrier() == b""


def test_js_pull_max_waiting_exceeded_is_409(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1", max_waiting=1)
    raw.next(s, "c1", {"batch": 1, "expires": 5 * NS})
    raw.next(s, "c1", {"batch": 1, "expires": 5 * NS})
    raw.expect_status(b"NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n")
    assert raw.info(s, "c1")["num_waiting"] == 1


def test_js_pull_max_bytes_statuses(raw: RawJS) -> None:
    s = name()
    raw.add_stream(name=s, subjects=[f"{s}.*"])
    for _ in range(3):
        raw.publish(f"{s}.x", b"x" * 100)
    raw.add_consumer(s, "c1")
    # A message bigger than the request's max_bytes: nothing delivered, 409 with counts.
    raw.next(s, "c1", {"batch": 5, "max_bytes": 50, "expires": 2 * NS})
    raw.expect_status(
        b"NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 5\r\n"
        b"Nats-Pending-Bytes: 50\r\n\r\n"
    )
    # Room for one (subject + ack reply + 100 payload bytes), not for two.
    raw.next(s, "c1", {"batch": 5, "max_bytes": 250, "expires": 2 * NS})
    first = raw.read_pull()
    assert first.payload == b"x" * 100
    used = len(first.subject) + len(first.reply or "") + 100
    raw.expect_status(
        b"NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 4\r\n"
        + f"Nats-Pending-Bytes: {250 - used}\r\n\r\n".encode()
    )
    # Batch reached with bytes left: 409 Batch Completed.
    raw.next(s, "c1", {"batch": 1, "max_bytes": 10_000, "expires": 2 * NS})
    second = raw.read_pull()
    used = len(second.subject) + len(second.reply or "") + 100
    raw.expect_status(
        b"NATS/1.0 409 Batch Completed\r\nNats-Pending-Messages: 0\r\n"
        + f"Nats-Pending-Bytes: {10_000 - used}\r\n\r\n".encode()
    )


def test_js_pull_request_validation_statuses(raw: RawJS) -> None:
    s = filled(raw, 1)
    raw.add_consumer(s, "lim", max_batch=5, max_expires=2 * NS, max_bytes=1000)
    raw.next(s, "lim", {"batch": 6})
    raw.expect_status(b"NATS/1.0 409 Exceeded MaxRequestBatch of 5\r\n\r\n")
    raw.next(s, "lim", {"batch": 1, "expires": 3 * NS})
    raw.expect_status(b"NATS/1.0 409 Exceeded MaxRequestExpires of 2s\r\n\r\n")
    raw.next(s, "lim", {"batch": 1, "max_bytes": 1001})
    raw.expect_status(b"NATS/1.0 409 Exceeded MaxRequestMaxBytes of 1000\r\n\r\n")
    raw.next(s, "lim", {"batch": 1, "expires": NS, "idle_heartbeat": NS})
    raw.expect_status(b"NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n")
    raw.next(s, "lim", b'{"batch": 1')
    raw.expect_status(b"NATS/1.0 400 Bad Request - unexpected end of JSON input\r\n\r\n")
    # None of these was queued, and nothing was delivered.
    info = raw.info(s, "lim")
    assert (info["num_waiting"], info["num_pending"], info["num_ack_pending"]) == (0, 1, 0)


def test_js_pull_absurd_batch_and_negative_expires(raw: RawJS) -> None:
    s = filled(raw, 2)
    raw.add_consumer(s, "c1")
    # A huge batch is fine: what exists is delivered, then the request expires.
    raw.next(s, "c1", {"batch": 1_000_000_000, "expires": NS // 4})
    assert [raw.read_pull().payload for _ in range(2)] == [b"m1", b"m2"]
    raw.expect_status(
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 999999998\r\n"
        b"Nats-Pending-Bytes: 0\r\n\r\n"
    )
    # A negative expiry has expired already: 408 at once, nothing queued.
    raw.publish(f"{s}.x", b"m3")
    raw.next(s, "c1", {"batch": 4, "expires": -5})
    raw.expect_status(
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 4\r\nNats-Pending-Bytes: 0\r\n\r\n"
    )
    raw.next(s, "c1", {"batch": 1, "expires": -5, "no_wait": True})
    raw.expect_status(
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n"
    )
    info = raw.info(s, "c1")
    assert (info["num_waiting"], info["num_ack_pending"], info["num_pending"]) == (0, 2, 1)


def test_js_pull_on_push_consumer_is_409(raw: RawJS) -> None:
    s = filled(raw, 1)
    raw.add_consumer(s, "push", deliver_subject=unique("dl."))
    raw.next(s, "push", {"batch": 1})
    raw.expect_status(b"NATS/1.0 409 Consumer is push based\r\n\r\n")


def test_js_pull_to_missing_consumer_is_no_responders(raw: RawJS) -> None:
    s = filled(raw, 1)
    raw.next(s, "nobody", {"batch": 1, "no_wait": True})
    # Nobody subscribes to the MSG.NEXT subject of a missing consumer (the client asked
    # for no_responders in CONNECT).
    raw.expect_status(
        f"NATS/1.0 503\r\nNats-Subject: $JS.API.CONSUMER.MSG.NEXT.{s}.nobody\r\n\r\n".encode()
    )


def test_js_pull_consumer_deleted_is_409(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 1, "expires": 5 * NS})
    raw.wait_waiting(s, "c1", 1)
    raw.pub(f"$JS.API.CONSUMER.DELETE.{s}.c1", b"", f"{raw.inbox}.del")
    # The waiting request's status and the API reply, in either order.
    frames = sorted((raw.c.read_msg() for _ in range(2)), key=lambda m: m.sid)
    assert frames[0].subject == f"{raw.inbox}.del"
    assert json.loads(frames[0].payload) == {
        "type": "io.nats.jetstream.api.v1.consumer_delete_response",
        "success": True,
    }
    assert (frames[1].subject, frames[1].header, frames[1].payload) == (
        raw.pull_inbox,
        b"NATS/1.0 409 Consumer Deleted\r\n\r\n",
        b"",
    )
    assert raw.c.ping_barrier() == b""


def test_js_pull_idle_heartbeat(raw: RawJS) -> None:
    s = filled(raw, 0)
    raw.add_consumer(s, "c1")
    start = time.monotonic()
    # Expiry far beyond the test: a slow machine must not see the request end first.
    raw.next(s, "c1", {"batch": 2, "expires": 30 * NS, "idle_heartbeat": NS // 4})
    hb = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n"
    raw.expect_status(hb)
    assert time.monotonic() - start >= 0.2
    raw.expect_status(hb)
    # After a delivery the heartbeat names it.
    raw.publish(f"{s}.x", b"one")
    msg = raw.read_pull()
    assert msg.payload == b"one"
    raw.expect_status(
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\nNats-Last-Stream: 1\r\n\r\n"
    )


def test_js_pull_no_wait_behind_waiting_batches_is_408_requests_pending(raw: RawJS) -> None:
    s = filled(raw, 3)
    raw.add_consumer(s, "c1", max_ack_pending=1)
    raw.next(s, "c1", {"batch": 1})
    first = raw.read_pull()
    assert first.payload == b"m1"
    # Blocked by max_ack_pending: this request waits with its whole batch.
    raw.next(s, "c1", {"batch": 5, "expires": 5 * NS})
    raw.wait_waiting(s, "c1", 1)
    # Two messages pending, fewer than the 5 already asked for.
    raw.next(s, "c1", {"batch": 1, "no_wait": True})
    raw.expect_status(b"NATS/1.0 408 Requests Pending\r\n\r\n")
    # -NAK with a Go duration: redelivered after it, to the waiting request.
    start = time.monotonic()
    assert raw.request(first.reply or "", b"-NAK 600ms").payload == b""
    again = raw.read_pull()
    assert time.monotonic() - start >= 0.5
    assert again.payload == b"m1"
    tokens = ack_tokens(again.reply)
    assert (tokens[4], tokens[5], tokens[6], tokens[8]) == ("2", "1", "2", "2")


def test_js_pull_plus_nxt_acks_and_requests_more(raw: RawJS) -> None:
    s = filled(raw, 3)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 1})
    first = raw.read_pull()
    assert first.payload == b"m1"
    # +NXT: ack it and pull the next one to the given reply subject.
    raw.pub(first.reply or "", b"+NXT", raw.pull_inbox)
    second = raw.read_pull()
    assert second.payload == b"m2"
    raw.pub(second.reply or "", b'+NXT {"batch": 5, "no_wait": true}', raw.pull_inbox)
    assert raw.read_pull().payload == b"m3"
    raw.expect_status(b"NATS/1.0 404 No Messages\r\n\r\n")
    info = raw.info(s, "c1")
    assert info["ack_floor"]["stream_seq"] == 2
    assert info["num_ack_pending"] == 1


def test_js_pull_acks_for_unknown_or_acked_messages_are_harmless(raw: RawJS) -> None:
    s = filled(raw, 3)
    raw.add_consumer(s, "c1")
    raw.next(s, "c1", {"batch": 2})
    one, two = raw.read_pull(), raw.read_pull()
    assert raw.request(one.reply or "", b"+ACK").payload == b""
    # Acked again; an ack for a sequence never delivered; garbage body.
    assert raw.request(one.reply or "", b"+ACK").payload == b""
    never = (two.reply or "").split(".")
    never[5], never[6] = "3", "3"
    raw.pub(".".join(never), b"+ACK")
    raw.pub(two.reply or "", b"+WHATEVER")
    assert raw.c.ping_barrier() == b""
    info = raw.info(s, "c1")
    assert info["ack_floor"]["stream_seq"] == 1
    assert info["num_ack_pending"] == 1
    assert info["num_pending"] == 1
    raw.next(s, "c1", {"batch": 1})
    assert raw.read_pull().payload == b"m3"


# -- nats-py fetch ---------------------------------------------------------------------------


async def stream_with(js, count: int, **config: Any) -> str:
    s = name()
    await js.add_stream(name=s, subjects=[f"{s}.*"], **config)
    for i in range(1, count + 1):
        await js.publish(f"{s}.x", f"m{i}".encode())
    return s


async def test_js_pull_fetch_batches_and_timeout(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        sub_nc = await clients.on_shard(2)
        s = await stream_with(pub.jetstream(), 10)
        psub = await sub_nc.jetstream().pull_subscribe(f"{s}.x", durable="d1", stream=s)
        got = await psub.fetch(4, timeout=2)
        assert [m.data for m in got] == [f"m{i}".encode() for i in range(1, 5)]
        assert [m.metadata.sequence.stream for m in got] == [1, 2, 3, 4]
        assert [m.metadata.num_pending for m in got] == [9, 8, 7, 6]
        for m in got:
            await m.ack()
        rest = await psub.fetch(10, timeout=1)
        assert [m.metadata.sequence.stream for m in rest] == list(range(5, 11))
        for m in rest:
            await m.ack_sync()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await psub.fetch(1, timeout=0.5)
        assert time.monotonic() - start >= 0.4
        info = await psub.consumer_info()
        assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (10, 10)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_js_pull_skips_messages_removed_between_fetches(js_broker: Broker) -> None:
    """The storage reads messages ahead within a delivery pass; what is deleted or
    purged after a fetch must not come out of the next one."""
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        sub_nc = await clients.on_shard(2)
        js = pub.jetstream()
        s = await stream_with(js, 20)
        # No filter subject: the consumer reads every subject, in runs.
        await js.add_consumer(s, ConsumerConfig(durable_name="d1", ack_policy=AckPolicy.EXPLICIT))
        psub = await sub_nc.jetstream().pull_subscribe_bind("d1", s)
        got = await psub.fetch(3, timeout=2)
        assert [m.metadata.sequence.stream for m in got] == [1, 2, 3]
        for seq in (4, 5, 9):
            await js.delete_msg(s, seq)
        got = await psub.fetch(4, timeout=2)
        assert [m.metadata.sequence.stream for m in got] == [6, 7, 8, 10]
        await js.purge_stream(s, keep=3)  # leaves 18..20
        got = await psub.fetch(10, timeout=1)
        assert [m.metadata.sequence.stream for m in got] == [18, 19, 20]


async def test_js_pull_fetch_with_heartbeat(js_broker: Broker) -> None:
    """A fetch with idle heartbeats keeps waiting through them and gets a late message."""
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 0)
        psub = await js.pull_subscribe(f"{s}.x", durable="d1", stream=s)
        # Status messages to the fetch's inbox, seen from another connection.
        watcher = await clients.on_shard(2)
        statuses = await watcher.subscribe("_INBOX.>")
        await watcher.flush()

        async def later() -> None:
            # Publish once the request has been waiting long enough to send a heartbeat.
            while True:
                msg = await statuses.next_msg(timeout=5)
                if msg.headers and msg.headers.get("Status") == "100":
                    break
            await (await clients.on_shard(2)).jetstream().publish(f"{s}.x", b"late")

        task = asyncio.create_task(later())
        got = await psub.fetch(1, timeout=5, heartbeat=0.2)
        await task
        assert [m.data for m in got] == [b"late"]


async def test_js_pull_ack_nak_term_and_ack_sync(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 3)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_wait=30)
        )
        m1, m2, m3 = await psub.fetch(3, timeout=2)
        assert (await m1.ack_sync()).data == b""
        await m2.nak()
        await m3.term()
        # The NAK'd message comes back at once with a new consumer seq and count 2.
        (again,) = await psub.fetch(1, timeout=2)
        assert again.data == b"m2"
        assert again.metadata.num_delivered == 2
        assert (again.metadata.sequence.stream, again.metadata.sequence.consumer) == (2, 4)
        info = await psub.consumer_info()
        assert info.num_redelivered == 1
        assert info.num_ack_pending == 1
        assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (4, 3)
        await again.ack_sync()
        info = await psub.consumer_info()
        assert info.num_ack_pending == 0 and info.num_redelivered == 0
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (4, 3)
        # TERM'd m3 is never redelivered.
        with pytest.raises(TimeoutError):
            await psub.fetch(1, timeout=0.3)


async def test_js_pull_nak_with_delay(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 2)
        psub = await js.pull_subscribe(f"{s}.x", durable="d1", stream=s)
        (m1,) = await psub.fetch(1, timeout=2)
        start = time.monotonic()
        # -NAK {"delay": ns}, confirmed by the ack-sync reply.
        reply = await nc.request(m1.reply, b'-NAK {"delay": 800000000}', timeout=2)
        assert reply.data == b""
        # Meanwhile the next new message is served; m1 is not.
        (m2,) = await psub.fetch(1, timeout=2)
        assert m2.data == b"m2"
        await m2.ack()
        with pytest.raises(TimeoutError):
            await psub.fetch(1, timeout=0.3)
        (back,) = await psub.fetch(1, timeout=3)
        assert back.data == b"m1" and back.metadata.num_delivered == 2
        assert time.monotonic() - start >= 0.75


async def test_js_pull_redelivery_after_ack_wait(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 1)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_wait=0.5)
        )
        (first,) = await psub.fetch(1, timeout=2)
        start = time.monotonic()
        (again,) = await psub.fetch(1, timeout=3)
        assert time.monotonic() - start >= 0.4
        assert again.data == b"m1"
        assert again.metadata.num_delivered == 2
        assert again.metadata.sequence.consumer == 2
        # The redelivery's ack subject keeps the pending token (0: nothing new).
        assert again.reply.split(".")[4:7] == ["2", "1", "2"]
        assert again.metadata.num_pending == 0
        await again.ack_sync()
        # The first delivery's (late) ack is a no-op now.
        await first.ack()
        info = await psub.consumer_info()
        assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (2, 1)


async def test_js_pull_in_progress_extends_the_deadline(js_broker: Broker) -> None:
    """+WPI restarts the ack wait: progress acks keep a message from being redelivered
    past its first deadline; once they stop, the ack wait runs out and it comes back.
    (The exact deadlines are tested on a fake clock in tests/unit/jetstream.)"""
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 1)
        ack_wait = 2.0
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_wait=ack_wait)
        )
        (msg,) = await psub.fetch(1, timeout=2)
        fetched = time.monotonic()  # after the delivery: its first deadline is before +2 s
        while time.monotonic() - fetched < ack_wait + 0.5:
            assert (await nc.request(msg.reply, b"+WPI", timeout=2)).data == b""
            # Just confirmed in progress: not due, so a short pull gets nothing.
            with pytest.raises(TimeoutError):
                await psub.fetch(1, timeout=0.2)
        info = await psub.consumer_info()
        assert (info.num_ack_pending, info.num_redelivered) == (1, 0)
        (again,) = await psub.fetch(1, timeout=10)
        assert again.data == b"m1" and again.metadata.num_delivered == 2


async def test_js_pull_max_deliver(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 2)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_wait=0.5, max_deliver=2)
        )
        first = await psub.fetch(2, timeout=2)
        assert [m.metadata.num_delivered for m in first] == [1, 1]
        second = await psub.fetch(2, timeout=3)
        assert [m.metadata.num_delivered for m in second] == [2, 2]
        assert [m.data for m in second] == [b"m1", b"m2"]
        # Never a third time.
        with pytest.raises(TimeoutError):
            await psub.fetch(1, timeout=1.2)
        info = await psub.consumer_info()
        assert (info.num_ack_pending, info.num_redelivered) == (0, 2)
        assert info.num_pending == 0


async def test_js_pull_max_ack_pending_blocks_new_deliveries(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 5)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(max_ack_pending=2)
        )
        got = await psub.fetch(5, timeout=1)
        assert [m.data for m in got] == [b"m1", b"m2"]
        with pytest.raises(TimeoutError):
            await psub.fetch(1, timeout=0.3)
        info = await psub.consumer_info()
        assert (info.num_ack_pending, info.num_pending) == (2, 3)
        await got[0].ack_sync()
        more = await psub.fetch(5, timeout=1)
        assert [m.data for m in more] == [b"m3"]


async def test_js_pull_backoff_spaces_redeliveries(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 1)
        config = ConsumerConfig(backoff=[0.3, 1.2], max_deliver=3)
        psub = await js.pull_subscribe(f"{s}.x", durable="d1", stream=s, config=config)
        info = await psub.consumer_info()
        assert info.config.ack_wait == 0.3  # forced to backoff[0]
        times = []
        for _ in range(3):
            (msg,) = await psub.fetch(1, timeout=4)
            times.append(time.monotonic())
        assert msg.metadata.num_delivered == 3
        assert times[1] - times[0] >= 0.25
        assert times[2] - times[1] >= 1.1


async def test_js_pull_ack_policy_all(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 4)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_policy=AckPolicy.ALL)
        )
        msgs = await psub.fetch(4, timeout=2)
        info = await psub.consumer_info()
        assert info.num_ack_pending == 4
        await msgs[2].ack_sync()  # covers 1..3
        info = await psub.consumer_info()
        assert info.num_ack_pending == 1
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (3, 3)
        # An ack below the floor changes nothing.
        await msgs[0].ack_sync()
        info = await psub.consumer_info()
        assert info.num_ack_pending == 1 and info.ack_floor.stream_seq == 3


async def test_js_pull_ack_policy_none(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await stream_with(js, 3)
        psub = await js.pull_subscribe(
            f"{s}.x", durable="d1", stream=s, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        msgs = await psub.fetch(3, timeout=2)
        # The ack subject is there even though nothing needs an ack.
        assert [m.metadata.sequence.stream for m in msgs] == [1, 2, 3]
        info = await psub.consumer_info()
        assert info.num_ack_pending == 0
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (3, 3)
        assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (3, 3)


# -- retention ---------------------------------------------------------------------------------


async def test_js_pull_work_queue_across_workers_exactly_once(js_broker: Broker) -> None:
    total = 200
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        w1 = await clients.on_shard(1)
        w2 = await clients.on_shard(2)
        assert_different_shards(js_broker, w1.client_id, w2.client_id)
        s = name()
        js = pub.jetstream()
        await js.add_stream(name=s, subjects=[f"{s}.*"], retention=RetentionPolicy.WORK_QUEUE)
        subs = [
            await w.jetstream().pull_subscribe(f"{s}.jobs", durable="workers", stream=s)
            for w in (w1, w2)
        ]
        seen: dict[int, list[bytes]] = {0: [], 1: []}
        done = asyncio.Event()

        async def work(index: int) -> None:
            while not done.is_set():
                try:
                    msgs = await subs[index].fetch(7, timeout=0.5)
                except TimeoutError:
                    continue
                for m in msgs:
                    assert m.metadata.num_delivered == 1
                    seen[index].append(m.data)
                    await m.ack_sync()
                if len(seen[0]) + len(seen[1]) >= total:
                    done.set()

        workers = [asyncio.create_task(work(i)) for i in range(2)]
        acks = await asyncio.gather(
            *[await js.publish_async(f"{s}.jobs", f"j{i}".encode()) for i in range(total)]
        )
        assert [a.seq for a in acks] == list(range(1, total + 1))
        await asyncio.wait_for(done.wait(), 20)
        await asyncio.gather(*workers)
        everything = seen[0] + seen[1]
        assert sorted(everything) == sorted(f"j{i}".encode() for i in range(total))
        assert len(set(everything)) == total
        info = await js.stream_info(s)
        assert info.state.messages == 0
        assert (info.state.first_seq, info.state.last_seq) == (total + 1, total)


async def test_js_pull_work_queue_consumer_rules(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = name()
        await js.add_stream(name=s, subjects=[f"{s}.*"], retention=RetentionPolicy.WORK_QUEUE)
        await js.add_consumer(s, durable_name="all1")
        with pytest.raises(nats.js.errors.BadRequestError) as err:
            await js.add_consumer(s, durable_name="all2")
        assert (err.value.err_code, err.value.description) == (
            10099,
            "multiple non-filtered consumers not allowed on workqueue stream",
        )
        await js.delete_consumer(s, "all1")
        await js.add_consumer(s, durable_name="a", filter_subject=f"{s}.a")
        with pytest.raises(nats.js.errors.BadRequestError) as err:
            await js.add_consumer(s, durable_name="a2", filter_subject=f"{s}.a")
        assert (err.value.err_code, err.value.description) == (
            10100,
            "filtered consumer not unique on workqueue stream",
        )
        with pytest.raises(nats.js.errors.BadRequestError) as err:
            await js.add_consumer(
                s, durable_name="b", filter_subject=f"{s}.b", ack_policy=AckPolicy.NONE
            )
        assert err.value.err_code == 10084
        # A message is removed once acked; an unacked one stays.
        await js.publish(f"{s}.a", b"one")
        await js.publish(f"{s}.a", b"two")
        psub = await js.pull_subscribe_bind("a", stream=s)
        one, two = await psub.fetch(2, timeout=2)
        await one.ack_sync()
        info = await js.stream_info(s)
        assert (info.state.messages, info.state.first_seq) == (1, 2)
        await two.ack_sync()
        info = await js.stream_info(s)
        assert info.state.messages == 0


async def test_js_pull_interest_retention_removes_fully_acked(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        one = await clients.on_shard(1)
        two = await clients.on_shard(2)
        js = one.jetstream()
        s = name()
        await js.add_stream(name=s, subjects=[f"{s}.*"], retention=RetentionPolicy.INTEREST)
        # Without any consumer, nothing is kept.
        ack = await js.publish(f"{s}.x", b"nobody")
        assert ack.seq == 1
        assert (await js.stream_info(s)).state.messages == 0
        c1 = await js.pull_subscribe(f"{s}.x", durable="c1", stream=s)
        c2 = await two.jetstream().pull_subscribe(f"{s}.x", durable="c2", stream=s)
        for i in range(3):
            await js.publish(f"{s}.x", f"m{i}".encode())
        assert (await js.stream_info(s)).state.messages == 3
        for m in await c1.fetch(3, timeout=2):
            await m.ack_sync()
        # c2 has not acked: all three stay.
        assert (await js.stream_info(s)).state.messages == 3
        got = await c2.fetch(3, timeout=2)
        await got[0].ack_sync()
        await got[1].ack_sync()
        info = await js.stream_info(s)
        assert (info.state.messages, info.state.first_seq) == (1, 4)
        # Deleting the last interested consumer releases the rest.
        await js.delete_consumer(s, "c2")

        async def emptied() -> bool:
            return (await js.stream_info(s)).state.messages == 0

        await async_check_for(5, 0.05, emptied)


def test_js_pull_ack_without_permission_changes_nothing(tmp_path) -> None:
    conf = tmp_path / "perm.conf"
    conf.write_text(
        "authorization {\n  users: [\n    {user: admin, password: a}\n"
        '    {user: worker, password: w, permissions: {publish: {deny: ["$JS.ACK.>"]}}}\n'
        "  ]\n}\n"
    )
    with run_broker(
        workers=2, tmp_dir=tmp_path, jetstream=True, extra_args=("-c", str(conf))
    ) as broker:
        admin_client = raw_connect_on_shard(broker, 1)
        worker = raw_connect_on_shard(broker, 2)
        try:
            admin_client.handshake(headers=True, user="admin", **{"pass": "a"})
            admin = RawJS(admin_client, handshake=False)
            s = filled(admin, 2)
            admin.add_consumer(s, "c1")
            worker.handshake(headers=True, user="worker", **{"pass": "w"})
            worker.send(b"SUB _W.inbox 1\r\n")
            body = b'{"batch": 1}'
            worker.send(
                f"PUB $JS.API.CONSUMER.MSG.NEXT.{s}.c1 _W.inbox {len(body)}\r\n".encode()
                + body
                + b"\r\n"
            )
            msg = worker.read_msg()
            assert msg.payload == b"m1"
            worker.send(f"PUB {msg.reply} 4\r\n+ACK\r\n".encode())
            worker.expect_err(f'Permissions Violation for Publish to "{msg.reply}"')
            assert worker.ping_barrier() == b""
            info = admin.info(s, "c1")
            assert info["ack_floor"] == {"consumer_seq": 0, "stream_seq": 0}
            assert (info["num_ack_pending"], info["num_pending"]) == (1, 1)
            # The same ack from a permitted client works.
            assert admin.request(msg.reply or "", b"+ACK").payload == b""
            info = admin.info(s, "c1")
            assert info["ack_floor"]["stream_seq"] == 1 and info["num_ack_pending"] == 0
        finally:
            admin_client.close()
            worker.close()
