"""Key/value buckets through nats-py's KeyValue API end to end (kv-and-objects.md §1):
bucket create/bind/status/delete, put/get/update with revisions, create, delete and
purge markers, history, keys, watch, purge_deletes. Also run against nats-server
(SHARDBROKER_TEST_TARGET=nats-server), which is how the expectations were checked."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.js.api import KeyValueConfig

from tests.helpers.broker import Broker, NatsClients, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def bucket() -> str:
    return unique("kv")


async def test_js_kv_create_bucket_and_status(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        b = bucket()
        kv = await js.create_key_value(KeyValueConfig(bucket=b, history=5, ttl=60))
        status = await kv.status()
        assert status.bucket == b
        assert (status.values, status.history, status.ttl) == (0, 5, 60.0)
        info = await js.stream_info(f"KV_{b}")
        assert info.config.subjects == [f"$KV.{b}.>"]
        assert info.config.max_msgs_per_subject == 5
        assert info.config.deny_delete is True and info.config.allow_rollup_hdrs is True
        # Creating the same bucket again is fine; binding finds it.
        await js.create_key_value(KeyValueConfig(bucket=b, history=5, ttl=60))
        bound = await js.key_value(b)
        assert (await bound.status()).history == 5
        await kv.put("k", b"v")
        assert (await kv.status()).values == 1


async def test_js_kv_put_get_update_and_revisions(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        writer = (await clients.on_shard(1)).jetstream()
        reader = (await clients.on_shard(2)).jetstream()
        b = bucket()
        kv = await writer.create_key_value(bucket=b, history=3)
        kv2 = await reader.key_value(b)
        assert await kv.put("a.b", b"one") == 1
        assert await kv.put("c", b"x") == 2
        assert await kv.put("a.b", b"two") == 3
        entry = await kv2.get("a.b")
        assert (entry.key, entry.value, entry.revision, entry.bucket) == ("a.b", b"two", 3, b)
        old = await kv2.get("a.b", revision=1)
        assert old.value == b"one"
        # A revision of another key is not this key's.
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv2.get("a.b", revision=2)
        assert await kv.update("a.b", b"three", last=3) == 4
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError) as err:
            await kv2.update("a.b", b"stale", last=3)
        # nats-py maps err_code 10071 to this error and keeps only the description.
        assert err.value.description == "wrong last sequence: 4"
        assert (await kv2.get("a.b")).value == b"three"
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv2.get("missing")
        # History 3: a fourth revision of a.b pushes out the first.
        assert (await kv2.get("a.b", revision=1)).value == b"one"
        assert await kv2.put("a.b", b"four") == 5
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv2.get("a.b", revision=1)


async def test_js_kv_create_delete_and_purge_markers(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        b = bucket()
        kv = await js.create_key_value(bucket=b, history=10)
        assert await kv.create("k", b"v1") == 1
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError) as err:
            await kv.create("k", b"again")
        assert err.value.description == "wrong last sequence: 1"
        assert await kv.delete("k") is True
        with pytest.raises(nats.js.errors.KeyNotFoundError) as nf:
            await kv.get("k")
        assert nf.value.op == "DEL"
        # The delete marker is a message carrying the header.
        marker = await js.get_msg(f"KV_{b}", 2)
        assert marker.headers == {"KV-Operation": "DEL"} and not marker.data
        # Create over a deleted key works.
        assert await kv.create("k", b"v2") == 3
        await kv.put("k", b"v3")
        await kv.put("other", b"o")
        assert await kv.purge("k") is True
        with pytest.raises(nats.js.errors.KeyNotFoundError) as nf:
            await kv.get("k")
        assert nf.value.op == "PURGE"
        # The purge rolled up every earlier revision of k; other is untouched.
        status = await kv.status()
        assert status.values == 2
        history = await kv.history("k")
        assert [(e.revision, e.operation) for e in history] == [(6, "PURGE")]
        # A delete with a wrong expected revision fails.
        with pytest.raises(nats.js.errors.BadRequestError) as bad:
            await kv.delete("other", last=1)
        assert (bad.value.err_code, bad.value.description) == (10071, "wrong last sequence: 5")


async def test_js_kv_history_and_keys(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(2)).jetstream()
        b = bucket()
        kv = await js.create_key_value(bucket=b, history=4)
        with pytest.raises(nats.js.errors.NoKeysError):
            await kv.keys()
        for i in range(6):
            await kv.put("h", f"v{i}".encode())
        await kv.put("x.y", b"1")
        await kv.put("gone", b"1")
        await kv.delete("gone")
        history = await kv.history("h")
        assert [e.value for e in history] == [b"v2", b"v3", b"v4", b"v5"]
        assert [e.revision for e in history] == [3, 4, 5, 6]
        assert [e.delta for e in history] == [3, 2, 1, 0]
        assert all(e.operation is None for e in history)
        assert all(e.created is not None for e in history)
        assert sorted(await kv.keys()) == ["h", "x.y"]
        with pytest.raises(nats.js.errors.NoKeysError):
            await kv.history("never")


async def test_js_kv_watch(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        other = (await clients.on_shard(2)).jetstream()
        b = bucket()
        kv = await js.create_key_value(bucket=b, history=5)
        await kv.put("a", b"1")
        await kv.put("b", b"2")
        await kv.put("a", b"3")
        watcher = await kv.watchall()
        # Initial values: the last of each key, in stream order, then the None marker.
        first = await watcher.updates(timeout=3)
        second = await watcher.updates(timeout=3)
        assert (first.key, first.value, first.revision, first.delta) == ("b", b"2", 2, 1)
        assert (second.key, second.value, second.revision, second.delta) == ("a", b"3", 3, 0)
        assert await watcher.updates(timeout=3) is None
        # Updates from another worker, deletes and purges.
        kv2 = await other.key_value(b)
        await kv2.put("c", b"4")
        await kv2.delete("a")
        await kv2.purge("b")
        update = await watcher.updates(timeout=3)
        assert (update.key, update.value, update.revision, update.operation) == ("c", b"4", 4, None)
        deleted = await watcher.updates(timeout=3)
        assert (deleted.key, deleted.revision, deleted.operation) == ("a", 5, "DEL")
        purged = await watcher.updates(timeout=3)
        assert (purged.key, purged.revision, purged.operation) == ("b", 6, "PURGE")
        await watcher.stop()
        # A watch on one key of an empty-for-it bucket starts with the None marker.
        only = await kv.watch("nothing.here")
        assert await only.updates(timeout=3) is None
        await kv.put("nothing.here", b"now")
        entry = await only.updates(timeout=3)
        assert (entry.key, entry.value) == ("nothing.here", b"now")
        await only.stop()


async def test_js_kv_watch_ignore_deletes_and_meta_only(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        b = bucket()
        kv = await js.create_key_value(bucket=b)
        await kv.put("k1", b"value-1")
        await kv.put("k2", b"value-2")
        await kv.delete("k2")
        watcher = await kv.watchall(ignore_deletes=True, meta_only=True)
        entry = await watcher.updates(timeout=3)
        assert (entry.key, entry.revision) == ("k1", 1)
        assert not entry.value  # headers only: no payload
        assert await watcher.updates(timeout=3) is None
        await watcher.stop()


async def test_js_kv_purge_deletes(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        b = bucket()
        kv = await js.create_key_value(bucket=b, history=5)
        await kv.put("keep", b"1")
        for i in range(3):
            await kv.put("del", f"{i}".encode())
        await kv.delete("del")
        await kv.put("pur", b"x")
        await kv.purge("pur")
        assert (await kv.status()).values == 6
        # olderthan <= 0: remove the markers too.
        await kv.purge_deletes(olderthan=-1)
        assert (await kv.status()).values == 1
        assert (await kv.get("keep")).value == b"1"
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("del")


async def test_js_kv_direct_get(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        reader = (await clients.on_shard(2)).jetstream()
        b = bucket()
        kv = await js.create_key_value(KeyValueConfig(bucket=b, direct=True, history=3))
        assert (await js.stream_info(f"KV_{b}")).config.allow_direct is True
        await kv.put("d", b"1")
        await kv.put("d", b"2")
        await kv.delete("d")
        await kv.put("e", b"3")
        kv2 = await reader.key_value(b)
        assert (await kv2.get("e")).value == b"3"
        assert (await kv2.get("d", revision=2)).value == b"2"
        with pytest.raises(nats.js.errors.KeyNotFoundError) as nf:
            await kv2.get("d")
        assert nf.value.op == "DEL"
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv2.get("never")


async def test_js_kv_delete_bucket_and_bind_missing(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await js.key_value(bucket())
        b = bucket()
        kv = await js.create_key_value(bucket=b)
        await kv.put("k", b"v")
        assert await js.delete_key_value(b) is True
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await js.key_value(b)
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(f"KV_{b}")
