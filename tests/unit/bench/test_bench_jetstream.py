"""The JetStream roles of `shardbroker bench` parse their own reads (`feed`): consumers
check every delivery by its ack subject and ack it, publishers count and check PubAcks.
Driven through `Connection.data_received` on a recording transport, with the stream cut
into reads at random places."""

from __future__ import annotations

import random
from typing import Any

import pytest

from shardbroker.bench import ClientSpec
from shardbroker.bench.client import Connection, ProcessContext
from shardbroker.bench.jetstream import JsPublisher, JsPullConsumer, JsPushConsumer, verify
from shardbroker.bench.scenarios import build_config
from tests.helpers.fakes import MockTransport


class Transport(MockTransport):
    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))


def delivery(seq: int, delivered: int = 1, subject: bytes = b"_INBOX.bench1") -> bytes:
    ack = b"$JS.ACK.S.c.%d.%d.%d.1700000000000000000.0" % (delivered, seq, seq)
    return b"MSG %s 1 %s 5\r\nhello\r\n" % (subject, ack)


def feed_in_cuts(conn: Connection, data: bytes, seed: int) -> None:
    rnd = random.Random(seed)
    cuts = sorted({rnd.randrange(len(data)) for _ in range(40)} | {len(data)})
    last = 0
    for cut in cuts:
        conn.data_received(data[last:cut])
        last = cut


def consumer(kind: str, n: int, **options: Any) -> tuple[Any, Transport, ProcessContext]:
    cfg = build_config(
        "js-consume", server="nats://127.0.0.1:4222", consumer=kind, msgs=n, **options
    )
    ctx = ProcessContext(cfg, [0, 0], 0)
    extra = {"first_seq": "1", "last_seq": str(n), "expected": str(n), "deliver": "x"}
    role_class = JsPushConsumer if kind == "push" else JsPullConsumer
    spec = ClientSpec(index=0, role=f"js{kind}", name="consumer-1", msgs=n, extra=extra)
    role = role_class(spec, ctx)
    transport = Transport()
    conn = Connection("consumer-1", ctx.fail, hist=ctx.hist)
    conn.connection_made(transport)  # type: ignore[arg-type]
    role.conn = conn
    conn.feed = role.feed
    conn.on_batch = role.after_batch
    role.synced = conn.loop.create_future()
    if kind == "pull":  # what setup() would have prepared
        role.request_head = b"PUB $JS.API.CONSUMER.MSG.NEXT.S.c " + role.inbox + b"pull "
    return role, transport, ctx


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_bench_js_push_counts_checks_and_acks(seed: int) -> None:
    n = 300
    role, transport, ctx = consumer("push", n)
    stream = b"".join(delivery(i) for i in range(1, n + 1))
    feed_in_cuts(role.conn, stream + b"PING\r\n", seed)
    assert not ctx.failed.done()
    assert (role.distinct, role.received, role.dupes, role.out_of_order) == (n, n, 0, 0)
    written = bytes(transport.data)
    assert written.count(b"PUB $JS.ACK.") == n  # every delivery acked
    # The last one asks for a reply (ack sync); PING answered.
    last = b"$JS.ACK.S.c.1.%d.%d.1700000000000000000.0" % (n, n)
    assert b"PUB " + last + b" " + role.sync_reply + b" 0\r\n\r\n" in written
    assert written.endswith(b"PONG\r\n") and role.sync_sent
    role.conn.data_received(b"MSG " + role.sync_reply + b" 2 0\r\n\r\n")
    assert role.synced.done()


async def test_bench_js_push_without_acks_sends_nothing() -> None:
    role, transport, _ = consumer("push", 50, ack_policy="none")
    role.conn.data_received(b"".join(delivery(i) for i in range(1, 51)))
    assert role.distinct == 50 and bytes(transport.data) == b"" and not role.sync_sent


async def test_bench_js_consume_faults_are_counted() -> None:
    n = 10
    role, _, _ = consumer("push", n, ack_policy="none")
    frames = [delivery(i) for i in (1, 2, 2, 4, 3, 11)]  # duplicate, out of order, out of range
    frames.append(delivery(5, delivered=2))  # a redelivery
    frames.append(b"MSG _INBOX.bench1 1 5\r\nhello\r\n")  # no ack subject
    frames.append(b"HMSG _INBOX.bench1 1 16 16\r\nNATS/1.0 409 x\r\n\r\n")  # a status
    role.conn.data_received(b"".join(frames))
    assert (role.received, role.distinct, role.dupes) == (7, 5, 1)
    assert (role.out_of_range, role.redelivered, role.no_reply) == (1, 1, 1)
    assert role.out_of_order >= 2
    assert role.statuses == {"409 x": 1}
    cfg = build_config("js-consume", server="nats://h:1", consumer="push", msgs=n)
    from shardbroker.bench.jetstream import JsSetup

    setup = JsSetup(stream="S", expected=n, first_seq=1, last_seq=n)
    errors = verify(cfg, setup, {}, [role.result()])
    text = "; ".join(errors)
    for needle in (
        "1 duplicate deliveries",
        "1 deliveries with a stream sequence outside 1..10",
        "1 messages without a $JS.ACK reply subject",
        "1 redeliveries",
        "deliveries out of stream order",
        "status messages: {'409 x': 1}",
        "5 of 10 messages never delivered",
    ):
        assert needle in text, errors


async def test_bench_js_consume_merges_what_several_consumers_saw() -> None:
    a, _, _ = consumer("push", 6, ack_policy="none", subs=2)
    b, _, _ = consumer("push", 6, ack_policy="none", subs=2)
    a.conn.data_received(b"".join(delivery(i) for i in (1, 3, 5)))
    b.conn.data_received(b"".join(delivery(i) for i in (2, 4, 5)))  # 5 twice, 6 missing
    cfg = build_config("js-consume", server="nats://h:1", consumer="push", msgs=6, subs=2)
    from shardbroker.bench.jetstream import JsSetup

    notes: dict[str, Any] = {}
    setup = JsSetup(stream="S", expected=6, first_seq=1, last_seq=6)
    errors = verify(cfg, setup, notes, [a.result(), b.result()])
    assert notes["consume"]["distinct"] == 5 and notes["consume"]["duplicates"] == 1
    assert "1 duplicate deliveries" in errors and "1 of 6 messages never delivered" in errors


def hmsg(subject: bytes, header: bytes) -> bytes:
    return b"HMSG %s 1 %d %d\r\n%s" % (subject, len(header), len(header), header) + b"\r\n"


async def test_bench_js_pull_keeps_one_or_two_requests_and_its_share() -> None:
    n, batch = 100, 16
    role, transport, _ = consumer("pull", n, batch=batch)
    role.done = role.conn.loop.create_future()
    role.conn.write(role.request(batch))
    for seq in range(1, n + 1):
        role.conn.data_received(delivery(seq, subject=role.inbox + b"pull"))
        assert role.requested - role.received <= 2 * batch  # one or two requests out
    assert role.requested == n  # never more than its share
    assert role.requests == 7 == bytes(transport.data).count(b"CONSUMER.MSG.NEXT")  # 6x16 + 4
    assert b'"batch":4,"expires":30000000000' in bytes(transport.data)
    # A request that ends early gives back what it still owed: it is asked for again.
    status = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n"
    role.conn.data_received(hmsg(role.inbox + b"pull", status))
    assert role.statuses == {"408 Request Timeout": 1}
    assert role.requests == 8 and role.requested == n
    assert bytes(transport.data).endswith(b'{"batch":5,"expires":30000000000}\r\n')


async def test_bench_js_publisher_counts_acks_once() -> None:
    cfg = build_config("js-pub", server="nats://127.0.0.1:4222", msgs=20, window=8, size=16)
    ctx = ProcessContext(cfg, [0, 0], 0)
    pub = JsPublisher(ClientSpec(index=0, role="jspub", name="jspub-1", msgs=20), ctx)
    transport = Transport()
    conn = Connection("jspub-1", ctx.fail, hist=ctx.hist)
    conn.connection_made(transport)  # type: ignore[arg-type]
    pub.conn = conn
    pub.inbox = b"_INBOX.t."
    pub.heads = [b"PUB s " + pub.inbox]
    pub.tail = b" 2\r\nhi\r\n"
    conn.feed = pub.feed
    conn.on_batch = pub.pump
    pub.done = conn.loop.create_future()
    pub.begin()
    pub.pump()
    assert len(pub.pending) == 8  # the window

    def ack(i: int) -> bytes:
        body = b'{"stream":"S","seq":%d}' % i
        return b"MSG _INBOX.t.%d 1 %d\r\n%s\r\n" % (i, len(body), body)

    feed_in_cuts(conn, b"".join(ack(i) for i in range(1, 9)) + ack(1), 5)  # 1 twice
    assert pub.count == 8 and pub.surplus == 1
    assert len(pub.pending) == 8 and pub.seq == 16  # refilled after the reads
    assert sum(k for _, k in pub.samples) == 8  # put into the histogram after the run
    conn.data_received(hmsg(b"_INBOX.t.9", b"NATS/1.0 503 x\r\n\r\n"))
    assert ctx.failed.done() and "no stream captures subject" in ctx.failed.result()
