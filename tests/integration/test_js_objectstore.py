"""Object store buckets through nats-py's ObjectStore API (kv-and-objects.md §2): create,
put with chunking, get (an ordered consumer reading the chunks), info, list, watch,
delete, replacing an object, missing objects and buckets. Also run against nats-server
(SHARDBROKER_TEST_TARGET=nats-server), which is how the expectations were checked."""

from __future__ import annotations

import base64
import hashlib
import os

import nats.js.errors
import pytest

from tests.helpers.broker import Broker, NatsClients, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CHUNK = 128 * 1024


def bucket() -> str:
    return unique("obj")


def digest(data: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


async def test_js_objectstore_put_get_info_chunks(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        writer = (await clients.on_shard(1)).jetstream()
        reader = (await clients.on_shard(2)).jetstream()
        b = bucket()
        obs = await writer.create_object_store(b)
        data = os.urandom(300 * 1024)
        info = await obs.put("big.bin", data)
        assert (info.name, info.bucket, info.size, info.chunks) == ("big.bin", b, len(data), 3)
        assert info.digest == digest(data)
        stream = await writer.stream_info(f"OBJ_{b}")
        assert stream.config.subjects == [f"$O.{b}.C.>", f"$O.{b}.M.>"]
        # Three chunks and one meta message.
        assert stream.state.messages == 4
        obs2 = await reader.object_store(b)
        got = await obs2.get("big.bin")
        assert got.data == data
        assert got.info.digest == digest(data)
        assert (await obs2.get_info("big.bin")).size == len(data)
        # A small object: one chunk; an empty one: no chunk at all.
        await obs.put("small.txt", b"hello")
        assert (await obs2.get("small.txt")).data == b"hello"
        empty = await obs.put("empty", b"")
        assert (empty.size, empty.chunks) == (0, 0)
        assert (await obs2.get("empty")).data == b""
        status = await obs.status()
        assert (
            status.bucket == b and status.size == (await writer.stream_info(f"OBJ_{b}")).state.bytes
        )


async def test_js_objectstore_replace_and_delete(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        b = bucket()
        obs = await js.create_object_store(b)
        first = os.urandom(2 * CHUNK + 10)
        await obs.put("doc", first)
        second = b"replacement"
        info = await obs.put("doc", second)
        assert info.size == len(second)
        assert (await obs.get("doc")).data == second
        # The old chunks were purged: one chunk + one meta left.
        assert (await js.stream_info(f"OBJ_{b}")).state.messages == 2
        await obs.delete("doc")
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get("doc")
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get_info("doc")
        deleted = await obs.get_info("doc", show_deleted=True)
        assert deleted.deleted is True and deleted.size == 0
        # Only the deletion's meta message remains.
        assert (await js.stream_info(f"OBJ_{b}")).state.messages == 1


async def test_js_objectstore_list_and_watch(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        other = (await clients.on_shard(2)).jetstream()
        b = bucket()
        obs = await js.create_object_store(b)
        with pytest.raises(nats.js.errors.NotFoundError):
            await obs.list()
        for n in ("a", "b", "c"):
            await obs.put(n, n.encode() * 10)
        await obs.delete("b")
        listed = await obs.list(ignore_deletes=True)
        assert sorted(i.name for i in listed) == ["a", "c"]
        everything = await obs.list()
        assert sorted((i.name, bool(i.deleted)) for i in everything) == [
            ("a", False),
            ("b", True),
            ("c", False),
        ]
        watcher = await obs.watch(include_history=False)
        initial = []
        while (entry := await watcher.updates(timeout=3)) is not None:
            initial.append(entry.name)
        assert sorted(initial) == ["a", "b", "c"]
        obs2 = await other.object_store(b)
        await obs2.put("d", b"new")
        update = await watcher.updates(timeout=3)
        assert (update.name, update.size) == ("d", 3)
        await watcher.stop()


async def test_js_objectstore_missing_object_and_bucket(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await js.object_store(bucket())
        b = bucket()
        obs = await js.create_object_store(b)
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get("nope")
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get_info("nope")
        assert await js.delete_object_store(b) is True
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await js.object_store(b)
