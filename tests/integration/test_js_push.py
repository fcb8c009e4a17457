"""Push consumers (jetstream-semantics.md §6.1, §11): nats-py `js.subscribe` with durable
and ephemeral consumers, raw subscriptions on a deliver subject, deliver groups across
workers, idle heartbeats, flow control, ordered consumers and rate_limit_bps. Also run
against nats-server (SHARDBROKER_TEST_TARGET=nats-server), which is how the expectations
were checked."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.wait import async_check_for
from tests.helpers.wire import Msg, WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NS = 1_000_000_000


def name() -> str:
    return unique("PS").upper()


async def filled(js, count: int, payload: bytes | None = None) -> str:
    s = name()
    await js.add_stream(name=s, subjects=[f"{s}.>"])
    for i in range(1, count + 1):
        await js.publish(f"{s}.x", payload if payload is not None else f"m{i}".encode())
    return s


def raw_sub(broker: Broker, shard: int, subject: str, sid: str = "1") -> WireClient:
    client = raw_connect_on_shard(broker, shard)
    client.handshake(headers=True)
    # No PING barrier: deliveries may follow the SUB at once.
    client.send(f"SUB {subject} {sid}\r\n".encode())
    return client


def ack_tokens(reply: str | None) -> list[str]:
    assert reply is not None
    tokens = reply.split(".")
    assert len(tokens) == 9 and tokens[:2] == ["$JS", "ACK"], reply
    return tokens


async def api(nc: Any, subject: str, body: bytes = b"") -> dict[str, Any]:
    """A JetStream API answer as JSON (times the typed nats-py results leave out)."""
    return json.loads((await nc.request(subject, body, timeout=2)).data)


def parse_rfc3339_ns(text: str) -> int:
    """Unix ns of a Go RFC3339Nano UTC time (`2026-11-23T04:21:14.206048194Z`)."""
    assert text.endswith("Z"), text
    base, _, frac = text[:-1].partition(".")
    secs = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(secs) * NS + int((frac or "0").ljust(9, "0"))


def heartbeat(last_consumer: int, last_stream: int) -> bytes:
    return (
        b"NATS/1.0 100 Idle Heartbeat\r\n"
        + f"Nats-Last-Consumer: {last_consumer}\r\nNats-Last-Stream: {last_stream}\r\n\r\n".encode()
    )


# -- nats-py subscribe -----------------------------------------------------------------------


async def test_js_push_durable_subscribe_across_workers(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        sub_nc = await clients.on_shard(2)
        assert_different_shards(js_broker, pub.client_id, sub_nc.client_id)
        s = await filled(pub.jetstream(), 3)
        sub = await sub_nc.jetstream().subscribe(f"{s}.x", durable="dur", manual_ack=True)
        info = await sub.consumer_info()
        assert info.config.durable_name == "dur"
        assert info.config.deliver_subject is not None
        got = [await sub.next_msg(timeout=2) for _ in range(3)]
        assert [m.data for m in got] == [b"m1", b"m2", b"m3"]
        assert [m.subject for m in got] == [f"{s}.x"] * 3
        for m in got:
            await m.ack_sync()
        # Live publishes from another worker flow too.
        for i in range(4, 7):
            await pub.jetstream().publish(f"{s}.x", f"m{i}".encode())
        live = [await sub.next_msg(timeout=2) for _ in range(3)]
        assert [m.metadata.sequence.stream for m in live] == [4, 5, 6]
        for m in live:
            await m.ack_sync()
        info = await sub.consumer_info()
        assert info.push_bound is True
        assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (6, 6)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def test_js_push_ephemeral_subscribe(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 2)
        received: list[bytes] = []
        done = asyncio.Event()

        async def cb(msg) -> None:
            received.append(msg.data)
            if len(received) == 3:
                done.set()

        sub = await js.subscribe(f"{s}.x", cb=cb, deliver_policy=DeliverPolicy.ALL)
        info = await sub.consumer_info()
        assert info.config.durable_name is None
        assert info.config.inactive_threshold == 5.0
        await js.publish(f"{s}.x", b"m3")
        await asyncio.wait_for(done.wait(), 5)
        assert received == [b"m1", b"m2", b"m3"]

        async def all_acked() -> bool:
            return (await sub.consumer_info()).num_ack_pending == 0

        # The callback auto-acks.
        await async_check_for(5, 0.05, all_acked)


async def test_js_push_redelivery_after_ack_wait(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        sub = await js.subscribe(
            f"{s}.x", durable="rd", manual_ack=True, config=ConsumerConfig(ack_wait=0.5)
        )
        first = await sub.next_msg(timeout=2)
        start = time.monotonic()
        again = await sub.next_msg(timeout=3)
        assert time.monotonic() - start >= 0.4
        assert (again.data, again.metadata.num_delivered) == (b"m1", 2)
        assert again.metadata.sequence.consumer == 2
        await again.ack_sync()
        assert first.metadata.num_delivered == 1
        info = await sub.consumer_info()
        assert (info.num_ack_pending, info.num_redelivered) == (0, 0)


# -- raw deliver subject ---------------------------------------------------------------------


async def test_js_push_raw_deliver_subject_and_interest(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 2)
        deliver = unique("dl.")
        info = await js.add_consumer(s, durable_name="raw", deliver_subject=deliver)
        # Nobody listens yet: not bound, nothing delivered.
        assert info.push_bound is None
        info = await js.consumer_info(s, "raw")
        assert info.push_bound is None and info.delivered.stream_seq == 0
        client = raw_sub(js_broker, 2, deliver, sid="5")
        try:
            msgs = [client.read_msg(), client.read_msg()]
            for i, msg in enumerate(msgs, start=1):
                assert (msg.op, msg.subject, msg.sid, msg.payload) == (
                    "MSG",
                    f"{s}.x",
                    "5",
                    f"m{i}".encode(),
                )
                tokens = ack_tokens(msg.reply)
                assert tokens[2:7] == [s, "raw", "1", str(i), str(i)]
                assert tokens[8] == str(2 - i)
            info = await js.consumer_info(s, "raw")
            assert info.push_bound is True
            assert (info.delivered.stream_seq, info.num_ack_pending) == (2, 2)
            # An ack over the raw connection, confirmed.
            client.send(f"SUB _ACKR.x 9\r\nPUB {msgs[0].reply} _ACKR.x 4\r\n+ACK\r\n".encode())
            confirm = client.read_msg()
            assert (confirm.subject, confirm.payload) == ("_ACKR.x", b"")
            info = await js.consumer_info(s, "raw")
            assert (info.ack_floor.stream_seq, info.num_ack_pending) == (1, 1)
        finally:
            client.close()

        async def unbound() -> bool:
            return (await js.consumer_info(s, "raw")).push_bound is None

        await async_check_for(5, 0.05, unbound)
        # Published while nobody listens: kept for the next subscriber.
        await js.publish(f"{s}.x", b"m3")
        client = raw_sub(js_broker, 1, deliver, sid="6")
        try:
            msg = client.read_msg()
            assert (msg.payload, msg.sid) == (b"m3", "6")
        finally:
            client.close()


async def test_js_push_headers_to_clients_with_and_without_header_support(
    js_broker: Broker,
) -> None:
    """Deliveries in order to several subscribers of one deliver subject on both
    workers: HMSG to a client that asked for headers, MSG without the header block to
    one that did not, and an UNSUB max that stops exactly."""
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = name()
        await js.add_stream(name=s, subjects=[f"{s}.>"])
        sent: list[tuple[str, dict[str, str] | None, bytes]] = []
        for i in range(1, 41):
            hdrs = {"K": f"v{i}"} if i % 3 == 0 else None
            payload = f"m{i}\r\nPUB x 1".encode()
            await js.publish(f"{s}.x{i % 2}", payload, headers=hdrs)
            sent.append((f"{s}.x{i % 2}", hdrs, payload))
        deliver = unique("dl.")
        with_headers = raw_sub(js_broker, 2, deliver, sid="1")
        without = raw_connect_on_shard(js_broker, 1)
        limited = raw_connect_on_shard(js_broker, 2)
        try:
            without.handshake(headers=False)
            without.send(f"SUB {deliver} 2\r\n".encode())
            # Its own consumer: a subscriber with a limit is served message by message.
            limited.handshake(headers=True)
            limited_deliver = unique("dl.")
            limited.send(
                f"SUB {limited_deliver} 3\r\nUNSUB 3 5\r\nSUB {limited_deliver} 4\r\n".encode()
            )
            for c in (with_headers, without, limited):
                assert c.ping_barrier() == b""
            await js.add_consumer(s, durable_name="h", deliver_subject=deliver)
            await js.add_consumer(s, durable_name="l", deliver_subject=limited_deliver)
            got_h = [with_headers.read_msg() for _ in sent]
            got_plain = [without.read_msg() for _ in sent]
            got_limited = [limited.read_msg() for _ in range(len(sent) + 5)]
            for i, (subject, hdrs, payload) in enumerate(sent, start=1):
                h, plain = got_h[i - 1], got_plain[i - 1]
                assert (h.subject, h.sid, plain.subject, plain.sid) == (subject, "1", subject, "2")
                assert ack_tokens(h.reply)[5] == str(i) and plain.reply == h.reply
                assert plain.op == "MSG" and plain.payload == payload
                if hdrs:
                    assert h.op == "HMSG" and h.payload == payload
                    assert h.header == f"NATS/1.0\r\nK: v{i}\r\n\r\n".encode()
                else:
                    assert h.op == "MSG" and h.payload == payload
            limited_payloads = {
                sid: [m.payload for m in got_limited if m.sid == sid] for sid in ("3", "4")
            }
            assert limited_payloads == {
                "3": [x for _, _, x in sent[:5]],  # nothing after the fifth
                "4": [x for _, _, x in sent],
            }
            assert limited.ping_barrier() == b""
        finally:
            for c in (with_headers, without, limited):
                c.close()


async def test_js_push_deliver_group_across_workers(js_broker: Broker) -> None:
    total = 100
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        members = [await clients.on_shard(1), await clients.on_shard(2)]
        assert_different_shards(js_broker, members[0].client_id, members[1].client_id)
        s = await filled(pub.jetstream(), 0)
        got: dict[int, list[int]] = {0: [], 1: []}
        done = asyncio.Event()

        def handler(index: int):
            async def cb(msg) -> None:
                got[index].append(msg.metadata.sequence.stream)
                await msg.ack()
                if len(got[0]) + len(got[1]) >= total:
                    done.set()

            return cb

        subs = [
            await m.jetstream().subscribe(f"{s}.x", queue="grp", cb=handler(i))
            for i, m in enumerate(members)
        ]
        info = await subs[0].consumer_info()
        assert (info.config.deliver_group, info.config.durable_name) == ("grp", "grp")
        for m in members:
            await barrier(m)
        js = pub.jetstream()
        acks = await asyncio.gather(
            *[await js.publish_async(f"{s}.x", f"q{i}".encode()) for i in range(total)]
        )
        assert len(acks) == total
        await asyncio.wait_for(done.wait(), 10)
        everything = got[0] + got[1]
        assert sorted(everything) == list(range(1, total + 1))
        assert got[0] and got[1], "one member got nothing"

        async def all_acked() -> bool:
            info = await subs[0].consumer_info()
            return info.num_ack_pending == 0 and info.num_redelivered == 0

        await async_check_for(5, 0.05, all_acked)


async def test_js_push_deliver_group_ignores_plain_subscribers(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        deliver = unique("dl.")
        await js.add_consumer(s, durable_name="g", deliver_subject=deliver, deliver_group="grp")
        plain = raw_sub(js_broker, 2, deliver, sid="1")
        try:
            assert plain.ping_barrier() == b""
            plain.assert_nothing(0.5)
            assert plain.pending == b""
            plain.send(f"SUB {deliver} grp 2\r\n".encode())
            # Now the group has a member: delivered (a core publish, so the plain
            # subscription on the same connection sees it too).
            msgs = [plain.read_msg(), plain.read_msg()]
            assert sorted(m.sid for m in msgs) == ["1", "2"]
            assert {m.payload for m in msgs} == {b"m1"}
            assert plain.ping_barrier() == b""
        finally:
            plain.close()


# -- heartbeats, flow control ------------------------------------------------------------------


async def test_js_push_idle_heartbeat(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 0)
        deliver = unique("dl.")
        await js.add_consumer(s, durable_name="hb", deliver_subject=deliver, idle_heartbeat=0.25)
        client = raw_sub(js_broker, 2, deliver, sid="3")
        try:
            start = time.monotonic()
            hb = client.read_msg()
            assert time.monotonic() - start >= 0.15
            assert (hb.op, hb.subject, hb.sid, hb.reply) == ("HMSG", deliver, "3", None)
            assert (hb.header, hb.payload) == (heartbeat(0, 0), b"")
            await js.publish(f"{s}.x", b"a")
            await js.publish(f"{s}.x", b"b")
            msgs = [client.read_msg(), client.read_msg()]
            assert [m.payload for m in msgs] == [b"a", b"b"]
            hb = client.read_msg()
            assert hb.header == heartbeat(2, 2)
        finally:
            client.close()


async def test_js_push_flow_control_raw(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        chunk = 64 * 1024
        total = 40  # 2.5 MiB: above the 2 MiB starting window
        s = await filled(js, total, b"f" * chunk)
        deliver = unique("dl.")
        await js.add_consumer(
            s,
            durable_name="fc",
            deliver_subject=deliver,
            flow_control=True,
            idle_heartbeat=5,
            ack_policy=AckPolicy.NONE,
        )
        client = raw_sub(js_broker, 2, deliver, sid="4")
        try:
            data: list[Msg] = []
            fc: list[tuple[int, Msg]] = []
            while len(data) < 32:
                msg = client.read_msg()
                if msg.payload:
                    data.append(msg)
                else:
                    fc.append((len(data), msg))
            # One request once more than half the window (1 MiB) was in flight.
            assert len(fc) == 1
            count, request = fc[0]
            assert count == 16
            assert (request.op, request.subject, request.sid) == ("HMSG", deliver, "4")
            assert request.header == b"NATS/1.0 100 FlowControl Request\r\n\r\n"
            assert request.payload == b""
            tokens = (request.reply or "").split(".")
            assert tokens[:4] == ["$JS", "FC", s, "fc"] and len(tokens) == 5, request.reply
            # Delivery stalls at the window until the request is answered.
            client.assert_nothing(0.5)
            assert client.pending == b""
            assert (await js.consumer_info(s, "fc")).delivered.stream_seq == 32
            client.send(f"PUB {request.reply} 0\r\n\r\n".encode())
            while len(data) < total:
                msg = client.read_msg()
                if msg.payload:
                    data.append(msg)
            assert [int(ack_tokens(m.reply)[5]) for m in data] == list(range(1, total + 1))
        finally:
            client.close()


async def test_js_push_flow_control_nats_py(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        sub_nc = await clients.on_shard(2)
        total = 48
        s = await filled(pub.jetstream(), total, b"p" * (64 * 1024))
        sub = await sub_nc.jetstream().subscribe(
            f"{s}.x", durable="fcpy", flow_control=True, idle_heartbeat=1, manual_ack=True
        )
        seqs = []
        for _ in range(total):
            msg = await sub.next_msg(timeout=3)
            seqs.append(msg.metadata.sequence.stream)
            await msg.ack()
        assert seqs == list(range(1, total + 1))


async def test_js_push_ordered_consumer(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        pub = await clients.on_shard(1)
        sub_nc = await clients.on_shard(2)
        s = await filled(pub.jetstream(), 5)
        sub = await sub_nc.jetstream().subscribe(f"{s}.x", ordered_consumer=True)
        info = await sub.consumer_info()
        config = info.config
        assert config.ack_policy == AckPolicy.NONE
        assert (config.max_deliver, config.flow_control, config.mem_storage) == (1, True, True)
        assert config.idle_heartbeat == 5.0 and config.durable_name is None
        got = [await sub.next_msg(timeout=2) for _ in range(5)]
        for i in range(6, 11):
            await pub.jetstream().publish(f"{s}.x", f"m{i}".encode())
        got += [await sub.next_msg(timeout=2) for _ in range(5)]
        assert [m.data for m in got] == [f"m{i}".encode() for i in range(1, 11)]
        assert [m.metadata.sequence.consumer for m in got] == list(range(1, 11))
        assert [m.metadata.num_pending for m in got[:5]] == [4, 3, 2, 1, 0]
        info = await sub.consumer_info()
        assert info.num_ack_pending == 0
        assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (10, 10)


async def test_js_push_rate_limit(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        chunk = 128 * 1024
        total = 20  # 2.5 MiB at 1 MiB/s after a burst of at most 1 MiB
        s = await filled(js, total, b"r" * chunk)
        deliver = unique("dl.")
        info = await js.add_consumer(
            s,
            durable_name="rl",
            deliver_subject=deliver,
            rate_limit_bps=8 * 1024 * 1024,
            ack_policy=AckPolicy.NONE,
        )
        assert info.config.rate_limit_bps == 8 * 1024 * 1024
        client = raw_sub(js_broker, 2, deliver)
        try:
            for i in range(1, total + 1):
                msg = client.read_msg()
                assert ack_tokens(msg.reply)[5] == str(i)
        finally:
            client.close()
        # The server's own times: when the last message left against when the consumer
        # was created, whatever the pace at which this client read them.
        info = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.rl")
        spread = parse_rfc3339_ns(info["delivered"]["last_active"]) - parse_rfc3339_ns(
            info["created"]
        )
        assert spread >= 1.2 * NS, spread


async def test_js_push_without_filter_in_order_with_exact_ack_subjects(js_broker: Broker) -> None:
    """A consumer of every subject hands out long stretches at once: over several passes
    every ack subject still carries the right delivery count, sequences and pending
    count, max_ack_pending holds exactly, and acks let the next stretch go."""
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 300)
        deliver = unique("dl.")
        await js.add_consumer(
            s, durable_name="all", deliver_subject=deliver, max_ack_pending=100,
            ack_policy=AckPolicy.EXPLICIT,
        )  # fmt: skip
        none_deliver = unique("dl.")
        await js.add_consumer(
            s, durable_name="none", deliver_subject=none_deliver, ack_policy=AckPolicy.NONE
        )
        client = raw_sub(js_broker, 2, deliver)
        quiet = raw_sub(js_broker, 1, none_deliver)
        try:
            for i in range(1, 301):
                msg = quiet.read_msg()
                assert msg.payload == f"m{i}".encode()
                tokens = ack_tokens(msg.reply)
                assert (tokens[4:7], tokens[8]) == (["1", str(i), str(i)], str(300 - i))
            info = await js.consumer_info(s, "none")
            assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (300, 300)
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            for start in (1, 101, 201):
                got = [client.read_msg() for _ in range(100)]
                assert client.ping_barrier() == b""  # max_ack_pending: nothing more yet
                for i, msg in enumerate(got, start=start):
                    tokens = ack_tokens(msg.reply)
                    assert (msg.payload, tokens[4:7], tokens[8]) == (
                        f"m{i}".encode(),
                        ["1", str(i), str(i)],
                        str(300 - i),
                    )
                info = await js.consumer_info(s, "all")
                assert (info.num_ack_pending, info.delivered.stream_seq) == (100, start + 99)
                client.send(b"".join(f"PUB {m.reply} 0\r\n\r\n".encode() for m in got))
            assert client.ping_barrier() == b""

            async def all_acked() -> bool:
                info = await js.consumer_info(s, "all")
                return (info.ack_floor.stream_seq, info.num_ack_pending) == (300, 0)

            await async_check_for(5, 0.05, all_acked)
        finally:
            client.close()
            quiet.close()


async def test_js_push_max_ack_pending_stops_delivery(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 5)
        sub = await js.subscribe(
            f"{s}.x", durable="map", manual_ack=True, config=ConsumerConfig(max_ack_pending=2)
        )
        first = [await sub.next_msg(timeout=2) for _ in range(2)]
        with pytest.raises(TimeoutError):
            await sub.next_msg(timeout=0.3)
        await first[0].ack_sync()
        third = await sub.next_msg(timeout=2)
        assert third.data == b"m3"
        with pytest.raises(TimeoutError):
            await sub.next_msg(timeout=0.3)
        info = await sub.consumer_info()
        assert (info.num_ack_pending, info.num_pending) == (2, 2)


async def test_js_push_replay_original_keeps_the_gaps(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 0)
        await js.publish(f"{s}.x", b"a")

        async def stored_ts(seq: int) -> int:
            answer = await api(nc, f"$JS.API.STREAM.MSG.GET.{s}", b'{"seq": %d}' % seq)
            return parse_rfc3339_ns(answer["message"]["time"])

        first_ts = await stored_ts(1)

        async def server_moved_on() -> bool:
            now = parse_rfc3339_ns((await api(nc, f"$JS.API.STREAM.INFO.{s}"))["ts"])
            return now - first_ts >= 0.6 * NS

        # The gap between the stored messages is the data here: b is stored once the
        # server's clock is 0.6 s past a.
        await async_check_for(10, 0.05, server_moved_on)
        await js.publish(f"{s}.x", b"b")
        gap = await stored_ts(2) - first_ts
        deliver = unique("dl.")
        await js.add_consumer(
            s,
            durable_name="rp",
            deliver_subject=deliver,
            replay_policy=ReplayPolicy.ORIGINAL,
            ack_policy=AckPolicy.NONE,
        )
        client = raw_sub(js_broker, 2, deliver)
        try:
            first = client.read_msg()
            second = client.read_msg()
        finally:
            client.close()
        assert (first.payload, second.payload) == (b"a", b"b")
        # b left the server at least the stored gap after the consumer began (server
        # times, so a slow reader here cannot shrink or stretch it).
        info = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.rp")
        sent = parse_rfc3339_ns(info["delivered"]["last_active"])
        assert sent - parse_rfc3339_ns(info["created"]) >= gap, (gap, info)


async def test_js_push_ephemeral_goes_away_without_interest(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        sub = await js.subscribe(f"{s}.x", inactive_threshold=0.5, manual_ack=True)
        info = await sub.consumer_info()
        assert info.config.inactive_threshold == 0.5
        await (await sub.next_msg(timeout=2)).ack()

        async def threshold_passed() -> bool:
            raw = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.{info.name}")
            idle = parse_rfc3339_ns(raw["ts"]) - parse_rfc3339_ns(raw["delivered"]["last_active"])
            return idle >= 1.0 * NS

        # Still there while subscribed, well past the threshold on the server's clock.
        await async_check_for(10, 0.1, threshold_passed)
        assert [c.name for c in await js.consumers_info(s)] == [info.name]
        await sub.unsubscribe()

        async def gone() -> bool:
            return not await js.consumers_info(s)

        await async_check_for(5, 0.1, gone)
