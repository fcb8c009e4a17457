"""Publishing into streams (jetstream-semantics.md §2-3, §5): PubAcks and their order
across workers, de-duplication, the Nats-Expected-* checks, every limit and discard
policy, rollups and the protection flags. Also run against nats-server."""

from __future__ import annotations

import asyncio
import json

import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy, StorageType

from tests.helpers.broker import Broker, NatsClients, assert_different_shards, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

STORAGES = [StorageType.FILE, StorageType.MEMORY]


def name() -> str:
    return unique("P").upper()


async def raw_publish(nc, subject: str, data: bytes, headers: dict | None = None) -> dict:
    msg = await nc.request(subject, data, timeout=5, headers=headers)
    return json.loads(msg.data)


async def test_acks_are_ordered_across_workers(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        first = await clients.on_shard(1)
        second = await clients.on_shard(2)
        assert_different_shards(js_broker, first.client_id, second.client_id)
        stream = name()
        await first.jetstream().add_stream(name=stream, subjects=[f"{stream}.*"])
        count = 300

        async def publish_all(nc, tag: str) -> list[int]:
            js = nc.jetstream()
            futures = [
                await js.publish_async(f"{stream}.{tag}", f"{tag}{i}".encode())
                for i in range(count)
            ]
            acks = await asyncio.gather(*futures)
            return [ack.seq for ack in acks]

        seqs_a, seqs_b = await asyncio.gather(publish_all(first, "a"), publish_all(second, "b"))
        # Each publisher's acks increase; together they are exactly 1..2*count.
        assert seqs_a == sorted(seqs_a) and seqs_b == sorted(seqs_b)
        assert sorted(seqs_a + seqs_b) == list(range(1, 2 * count + 1))
        js = first.jetstream()
        # The stored order matches the acks.
        for seq in (seqs_a[0], seqs_b[-1]):
            msg = await js.get_msg(stream, seq)
            assert msg.data.decode()[0] == ("a" if seq in seqs_a else "b")
        info = await js.stream_info(stream)
        assert info.state.messages == 2 * count


async def test_no_stream_means_no_responders(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await js.publish(unique("nostream."), b"x")


@pytest.mark.parametrize("storage", STORAGES)
async def test_duplicates_within_the_window(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        one = await clients.on_shard(1)
        two = await clients.on_shard(2)
        stream = name()
        await one.jetstream().add_stream(name=stream, subjects=[f"{stream}.*"], storage=storage)
        ack = await one.jetstream().publish(f"{stream}.x", b"a", headers={"Nats-Msg-Id": "m1"})
        assert (ack.seq, ack.duplicate) == (1, None)
        # The same id from another worker is a duplicate of seq 1; nothing is stored.
        dup = await two.jetstream().publish(f"{stream}.x", b"b", headers={"Nats-Msg-Id": "m1"})
        assert (dup.seq, dup.duplicate) == (1, True)
        raw = await raw_publish(two, f"{stream}.x", b"c", {"Nats-Msg-Id": "m1"})
        assert raw == {"stream": stream, "seq": 1, "duplicate": True}
        other = await one.jetstream().publish(f"{stream}.x", b"d", headers={"Nats-Msg-Id": "m2"})
        assert other.seq == 2
        info = await one.jetstream().stream_info(stream)
        assert info.state.messages == 2


async def test_expected_headers(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"])
        await js.publish(f"{stream}.a", b"1", headers={"Nats-Msg-Id": "first"})
        await js.publish(f"{stream}.b", b"2")

        wrong = await raw_publish(nc, f"{stream}.a", b"x", {"Nats-Expected-Last-Sequence": "1"})
        assert wrong == {
            "error": {"code": 400, "err_code": 10071, "description": "wrong last sequence: 2"},
            "stream": stream,
            "seq": 0,
        }
        ok = await raw_publish(nc, f"{stream}.a", b"x", {"Nats-Expected-Last-Sequence": "2"})
        assert ok == {"stream": stream, "seq": 3}

        wrong = await raw_publish(
            nc, f"{stream}.b", b"x", {"Nats-Expected-Last-Subject-Sequence": "1"}
        )
        assert wrong["error"]["description"] == "wrong last sequence: 2"
        ok = await raw_publish(
            nc, f"{stream}.c", b"x", {"Nats-Expected-Last-Subject-Sequence": "0"}
        )
        assert ok["seq"] == 4

        wrong = await raw_publish(nc, f"{stream}.a", b"x", {"Nats-Expected-Stream": "OTHER"})
        assert wrong["error"] == {
            "code": 400,
            "err_code": 10060,
            "description": "expected stream does not match",
        }

        wrong = await raw_publish(nc, f"{stream}.a", b"x", {"Nats-Expected-Last-Msg-Id": "first"})
        assert wrong["error"] == {
            "code": 400,
            "err_code": 10070,
            "description": "wrong last msg ID: ",
        }
        await js.publish(f"{stream}.a", b"5", headers={"Nats-Msg-Id": "fifth"})
        ok = await raw_publish(nc, f"{stream}.a", b"6", {"Nats-Expected-Last-Msg-Id": "fifth"})
        assert ok["seq"] == 6
        info = await js.stream_info(stream)
        assert info.state.messages == 6


@pytest.mark.parametrize("storage", STORAGES)
async def test_max_msgs_discard_old_and_new(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        old, new = name(), name()
        await js.add_stream(name=old, subjects=[f"{old}.*"], max_msgs=3, storage=storage)
        await js.add_stream(
            name=new, subjects=[f"{new}.*"], max_msgs=3, discard=DiscardPolicy.NEW, storage=storage
        )
        for i in range(5):
            await js.publish(f"{old}.x", str(i).encode())
        info = await js.stream_info(old)
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (3, 3, 5)
        for i in range(3):
            await js.publish(f"{new}.x", str(i).encode())
        refused = await raw_publish(nc, f"{new}.x", b"4")
        assert refused == {
            "error": {"code": 503, "err_code": 10077, "description": "maximum messages exceeded"},
            "stream": new,
            "seq": 0,
        }
        info = await js.stream_info(new)
        assert (info.state.messages, info.state.last_seq) == (3, 3)


@pytest.mark.parametrize("storage", STORAGES)
async def test_max_bytes_and_msg_size(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(
            name=stream,
            subjects=[f"{stream}.*"],
            max_bytes=400,
            max_msg_size=100,
            discard=DiscardPolicy.NEW,
            storage=storage,
        )
        too_big = await raw_publish(nc, f"{stream}.x", b"z" * 101)
        assert too_big["error"] == {
            "code": 400,
            "err_code": 10054,
            "description": "message size exceeds maximum allowed",
        }
        stored = 0
        while True:
            answer = await raw_publish(nc, f"{stream}.x", b"y" * 90)
            if "error" in answer:
                assert answer["error"]["description"] == "maximum bytes exceeded"
                assert answer["error"]["err_code"] == 10077
                break
            stored += 1
        info = await js.stream_info(stream)
        assert info.state.messages == stored >= 1
        assert info.state.bytes <= 400


@pytest.mark.parametrize("storage", STORAGES)
async def test_max_msgs_per_subject(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        keep, refuse = name(), name()
        # The captured reference case: max_msgs 2, per subject 1, discard old.
        await js.add_stream(
            name=keep, subjects=[f"{keep}.*"], max_msgs=2, max_msgs_per_subject=1, storage=storage
        )
        for subject in ("a", "a", "b", "c"):
            await js.publish(f"{keep}.{subject}", b"x")
        info = await js.stream_info(keep, subjects_filter=">")
        assert (info.state.first_seq, info.state.last_seq) == (3, 4)
        assert info.state.subjects == {f"{keep}.b": 1, f"{keep}.c": 1}

        await js.add_stream(
            name=refuse,
            subjects=[f"{refuse}.*"],
            max_msgs_per_subject=1,
            discard=DiscardPolicy.NEW,
            discard_new_per_subject=True,
            storage=storage,
        )
        await js.publish(f"{refuse}.a", b"1")
        answer = await raw_publish(nc, f"{refuse}.a", b"2")
        assert answer["error"]["description"] == "maximum messages per subject exceeded"
        await js.publish(f"{refuse}.b", b"other subject is fine")


async def test_max_age_expires_messages(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], max_age=0.5)
        await js.publish(f"{stream}.x", b"short-lived")

        async def expired() -> bool:
            return (await js.stream_info(stream)).state.messages == 0

        for _ in range(100):
            if await expired():
                break
            await asyncio.sleep(0.05)  # waiting on the server's clock, not on a message
        info = await js.stream_info(stream)
        assert info.state.messages == 0
        assert (info.state.first_seq, info.state.last_seq) == (2, 1)


async def test_rollup_and_protection_flags(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], allow_rollup_hdrs=True)
        for i in range(3):
            await js.publish(f"{stream}.a", str(i).encode())
        await js.publish(f"{stream}.b", b"b")
        await js.publish(f"{stream}.a", b"rolled", headers={"Nats-Rollup": "sub"})
        info = await js.stream_info(stream, subjects_filter=">")
        assert info.state.subjects == {f"{stream}.a": 1, f"{stream}.b": 1}
        await js.publish(f"{stream}.a", b"all", headers={"Nats-Rollup": "all"})
        info = await js.stream_info(stream)
        assert (info.state.messages, info.state.first_seq) == (1, 6)
        bad = await raw_publish(nc, f"{stream}.a", b"x", {"Nats-Rollup": "nope"})
        assert bad["error"] == {
            "code": 500,
            "err_code": 10111,
            "description": 'rollup value invalid: "nope"',
        }

        locked = name()
        await js.add_stream(
            name=locked, subjects=[f"{locked}.*"], deny_delete=True, deny_purge=True
        )
        await js.publish(f"{locked}.a", b"1")
        refused = await raw_publish(nc, f"{locked}.a", b"x", {"Nats-Rollup": "sub"})
        assert refused["error"]["description"] == "rollup not permitted"
        with pytest.raises(nats.js.errors.ServerError) as err:
            await js.delete_msg(locked, 1)
        assert err.value.err_code == 10057
        with pytest.raises(nats.js.errors.ServerError) as err:
            await js.purge_stream(locked)
        assert err.value.err_code == 10110
        info = await js.stream_info(locked)
        assert info.state.messages == 1


async def test_sealed_stream_refuses_publishes(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        info = await js.add_stream(name=stream, subjects=[f"{stream}.*"])
        await js.publish(f"{stream}.a", b"1")
        config = info.config
        config.sealed = True
        sealed = await js.update_stream(config)
        assert sealed.config.sealed and sealed.config.deny_delete and sealed.config.deny_purge
        answer = await raw_publish(nc, f"{stream}.a", b"x")
        assert answer["error"] == {
            "code": 400,
            "err_code": 10109,
            "description": "invalid operation on sealed stream",
        }


async def test_interest_stream_without_consumers_stores_nothing(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], retention="interest")
        ack = await js.publish(f"{stream}.a", b"nobody listens")
        assert ack.seq == 1
        info = await js.stream_info(stream)
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (0, 2, 1)


async def test_max_file_store_refuses_with_insufficient_resources(broker_factory, tmp_path) -> None:
    config = tmp_path / "js.conf"
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}", max_file_store: 4096 }}\n')
    server = broker_factory(extra_args=["-c", str(config)])
    async with NatsClients(server) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"])
        stored = 0
        for _ in range(100):
            answer = await raw_publish(nc, f"{stream}.x", b"z" * 200)
            if "error" in answer:
                assert answer == {
                    "error": {
                        "code": 503,
                        "err_code": 10023,
                        "description": "insufficient resources",
                    },
                    "stream": stream,
                    "seq": 0,
                }
                break
            stored += 1
        else:
            raise AssertionError("max_file_store never refused a message")
        info = await js.stream_info(stream)
        assert info.state.messages == stored > 0
        # What is stored stays readable, and the stream still answers.
        assert (await js.get_msg(stream, 1)).data == b"z" * 200
