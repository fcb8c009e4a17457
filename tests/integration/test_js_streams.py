"""JetStream streams through the nats-py manager API: create/update/info/list/names/
delete/purge, message get/delete, direct get, account info, and the error objects
(jetstream-api.md §4-7). The same tests run against nats-server
(SHARDBROKER_TEST_TARGET=nats-server), which is how their expectations were checked."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

from tests.helpers.broker import Broker, NatsClients, run_broker, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STORAGES = [StorageType.FILE, StorageType.MEMORY]


def name() -> str:
    return unique("S").upper()


async def api(nc, subject: str, body: bytes | dict | None = None) -> dict:
    """A raw API request; the decoded JSON answer."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    msg = await nc.request(subject, body or b"", timeout=5)
    return json.loads(msg.data)


# -- create / info / update / delete ------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
async def test_create_info_and_delete(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        info = await js.add_stream(name=stream, subjects=[f"{stream}.*"], storage=storage)
        assert info.config.name == stream
        assert info.config.subjects == [f"{stream}.*"]
        assert info.config.storage == storage
        assert info.config.retention == RetentionPolicy.LIMITS
        assert info.config.discard == DiscardPolicy.OLD
        assert info.config.duplicate_window == 120.0
        assert info.config.max_msgs == -1 and info.config.max_bytes == -1
        assert info.config.num_replicas == 1
        assert info.state.messages == 0 and info.state.first_seq == 0 and info.state.last_seq == 0

        again = await js.stream_info(stream)
        assert again.config == info.config
        assert again.created == info.created

        # Creating it again with the same config is fine; with another it is not.
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], storage=storage)
        with pytest.raises(nats.js.errors.BadRequestError) as err:
            await js.add_stream(name=stream, subjects=[f"{stream}.other"], storage=storage)
        assert err.value.err_code == 10058
        assert err.value.description == "stream name already in use with a different configuration"

        assert await js.delete_stream(stream) is True
        with pytest.raises(nats.js.errors.NotFoundError) as err:
            await js.stream_info(stream)
        assert err.value.err_code == 10059


async def test_default_subject_is_the_name(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        stream = name()
        info = await js.add_stream(name=stream)
        assert info.config.subjects == [stream]
        ack = await js.publish(stream, b"x")
        assert (ack.stream, ack.seq) == (stream, 1)


async def test_update_changes_subjects_and_limits(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.a"])
        for i in range(5):
            await js.publish(f"{stream}.a", str(i).encode())
        info = await js.update_stream(
            name=stream, subjects=[f"{stream}.a", f"{stream}.b"], max_msgs=2
        )
        assert info.config.subjects == [f"{stream}.a", f"{stream}.b"]
        # Lowering a limit applies at once.
        assert info.state.messages == 2 and info.state.first_seq == 4
        ack = await js.publish(f"{stream}.b", b"new subject")
        assert ack.seq == 6

        with pytest.raises(nats.js.errors.ServerError) as err:
            await js.update_stream(
                name=stream, subjects=[f"{stream}.a"], storage=StorageType.MEMORY
            )
        assert err.value.err_code == 10052
        assert err.value.description == "stream configuration update can not change storage type"

        with pytest.raises(nats.js.errors.NotFoundError) as err:
            await js.update_stream(name=name(), subjects=["nowhere.x"])
        assert err.value.err_code == 10059


async def test_subjects_overlap_is_refused(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        js = (await clients.on_shard(1)).jetstream()
        first, second = name(), name()
        await js.add_stream(name=first, subjects=[f"{first}.*"])
        with pytest.raises(nats.js.errors.BadRequestError) as err:
            await js.add_stream(name=second, subjects=[f"{first}.new"])
        assert err.value.err_code == 10065
        assert err.value.description == "subjects overlap with an existing stream"
        # Nothing of the first stream was harmed.
        ack = await js.publish(f"{first}.new", b"still mine")
        assert ack.stream == first


async def test_list_names_and_find_by_subject(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        prefix = unique("L").upper()
        names = sorted(f"{prefix}{i}" for i in range(3))
        for n in names:
            await js.add_stream(name=n, subjects=[f"{n}.>"])
        listed = [s.config.name for s in await js.streams_info()]
        assert [n for n in listed if n.startswith(prefix)] == names
        answer = await api(nc, "$JS.API.STREAM.NAMES", {"subject": f"{names[1]}.x.y"})
        assert answer["type"] == "io.nats.jetstream.api.v1.stream_names_response"
        assert answer["streams"] == [names[1]]
        assert answer["total"] == 1 and answer["offset"] == 0 and answer["limit"] == 1024
        assert await js.find_stream_name_by_subject(f"{names[2]}.q") == names[2]
        page = await api(nc, "$JS.API.STREAM.NAMES", {"offset": 1})
        assert page["offset"] == 1 and page["total"] == len(page["streams"]) + 1


async def test_account_info_counts_streams_and_storage(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        before = await js.account_info()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.x"])
        await js.publish(f"{stream}.x", b"abcd")
        after = await js.account_info()
        assert after.streams == before.streams + 1
        # File store accounting: 22 + subject + payload + 8.
        assert after.storage - before.storage == 22 + len(stream) + 2 + 4 + 8
        raw = await api(nc, "$JS.API.INFO")
        assert raw["type"] == "io.nats.jetstream.api.v1.account_info_response"
        assert raw["limits"]["max_streams"] == -1
        assert raw["api"]["level"] >= 1
        assert raw["api"]["total"] >= 1


# -- purge ---------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
async def test_purge_full_filtered_seq_and_keep(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], storage=storage)
        for i in range(10):
            await js.publish(f"{stream}.{'a' if i % 2 else 'b'}", str(i).encode())
        # keep the newest 2 of subject a (a = seqs 2,4,6,8,10)
        await js.purge_stream(stream, subject=f"{stream}.a", keep=2)
        info = await js.stream_info(stream, subjects_filter=">")
        assert info.state.subjects == {f"{stream}.a": 2, f"{stream}.b": 5}
        # everything below seq 5
        answer = await api(nc, f"$JS.API.STREAM.PURGE.{stream}", {"seq": 5})
        assert answer == {
            "type": "io.nats.jetstream.api.v1.stream_purge_response",
            "success": True,
            "purged": 2,
        }
        answer = await api(nc, f"$JS.API.STREAM.PURGE.{stream}", {"seq": 5, "keep": 1})
        assert answer["error"]["err_code"] == 10003
        await js.purge_stream(stream)
        info = await js.stream_info(stream)
        assert info.state.messages == 0
        assert info.state.first_seq == 11 and info.state.last_seq == 10
        ack = await js.publish(f"{stream}.a", b"after")
        assert ack.seq == 11


# -- message get / delete / direct get -----------------------------------------------------


@pytest.mark.parametrize("storage", STORAGES)
async def test_get_by_seq_last_and_next(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage=storage)
        await js.publish(f"{stream}.a", b"one", headers={"X-A": "1"})
        await js.publish(f"{stream}.b.c", b"two")
        await js.publish(f"{stream}.a", b"three")
        msg = await js.get_msg(stream, 1)
        assert (msg.subject, msg.seq, msg.data) == (f"{stream}.a", 1, b"one")
        assert msg.headers == {"X-A": "1"}
        last = await js.get_last_msg(stream, f"{stream}.a")
        assert (last.seq, last.data) == (3, b"three")
        wild = await js.get_last_msg(stream, f"{stream}.b.>")
        assert wild.seq == 2
        following = await js.get_msg(stream, 2, subject=f"{stream}.a", next=True)
        assert following.seq == 3
        with pytest.raises(nats.js.errors.NotFoundError) as err:
            await js.get_msg(stream, 99)
        assert err.value.err_code == 10037
        raw = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": 2})
        assert raw["type"] == "io.nats.jetstream.api.v1.stream_msg_get_response"
        assert raw["message"]["subject"] == f"{stream}.b.c"
        assert raw["message"]["time"].endswith("Z")
        assert "hdrs" not in raw["message"]
        empty = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}")
        assert empty["error"]["err_code"] == 10003


@pytest.mark.parametrize("storage", STORAGES)
async def test_delete_message(js_broker: Broker, storage: StorageType) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], storage=storage)
        for i in range(4):
            await js.publish(f"{stream}.x", str(i).encode())
        assert await js.delete_msg(stream, 2) is True
        answer = await api(nc, f"$JS.API.STREAM.MSG.DELETE.{stream}", {"seq": 3, "no_erase": True})
        assert answer == {
            "type": "io.nats.jetstream.api.v1.stream_msg_delete_response",
            "success": True,
        }
        answer = await api(nc, f"$JS.API.STREAM.MSG.DELETE.{stream}", {"seq": 2})
        assert answer["error"] == {
            "code": 400,
            "err_code": 10043,
            "description": "sequence 2 not found",
        }
        raw = await api(nc, f"$JS.API.STREAM.INFO.{stream}", {"deleted_details": True})
        assert raw["state"]["messages"] == 2
        assert raw["state"]["num_deleted"] == 2
        assert raw["state"]["deleted"] == [2, 3]
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_msg(stream, 2)


async def test_direct_get(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(2)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.*"], allow_direct=True)
        await js.publish(f"{stream}.k", b"v1", headers={"X-A": "1"})
        await js.publish(f"{stream}.k", b"v2")
        msg = await nc.request(f"$JS.API.DIRECT.GET.{stream}.{stream}.k", b"", timeout=5)
        assert msg.data == b"v2"
        assert msg.headers is not None
        assert msg.headers["Nats-Stream"] == stream
        assert msg.headers["Nats-Subject"] == f"{stream}.k"
        assert msg.headers["Nats-Sequence"] == "2"
        assert msg.headers["Nats-Time-Stamp"].endswith("Z")
        first = await js.get_msg(stream, 1, direct=True)
        assert first.data == b"v1"
        assert first.headers is not None and first.headers["X-A"] == "1"
        assert first.headers["Nats-Sequence"] == "1"
        missing = await nc.request(f"$JS.API.DIRECT.GET.{stream}", b'{"seq": 9}', timeout=5)
        assert missing.headers is not None
        assert missing.headers.get("Status") == "404"


# -- bad input ------------------------------------------------------------------------------


async def test_bad_requests_get_error_objects(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        stream = name()
        await js.add_stream(name=stream, subjects=[f"{stream}.x"])
        await js.publish(f"{stream}.x", b"kept")

        bad_json = await api(nc, f"$JS.API.STREAM.CREATE.{name()}", b"{not json")
        assert bad_json["error"]["err_code"] == 10025
        assert bad_json["error"]["code"] == 400

        other = name()
        mismatch = await api(nc, f"$JS.API.STREAM.CREATE.{other}", {"name": "ELSE"})
        assert mismatch["error"]["err_code"] == 10056

        unknown = await api(nc, f"$JS.API.STREAM.CREATE.{other}", {"name": other, "bogus_field": 1})
        assert unknown["error"]["err_code"] == 10025

        illegal = await api(nc, "$JS.API.STREAM.CREATE.A*B", {"name": "A*B"})
        assert "error" in illegal

        missing = await api(nc, f"$JS.API.STREAM.INFO.{name()}")
        assert missing["error"] == {
            "code": 404,
            "err_code": 10059,
            "description": "stream not found",
        }
        assert missing["type"] == "io.nats.jetstream.api.v1.stream_info_response"

        not_empty = await api(nc, f"$JS.API.STREAM.DELETE.{stream}", {"x": 1})
        assert not_empty["error"]["err_code"] == 10038

        # The stream and its message survived all of it.
        info = await js.stream_info(stream)
        assert info.state.messages == 1


async def test_domain_api_prefix(tmp_path: Path) -> None:
    """With `jetstream { domain: hub }`, clients that name the domain reach the API as
    $JS.hub.API.> (nats.py jetstream(domain=...)); the plain prefix still works."""
    conf = tmp_path / "domain.conf"
    conf.write_text(f'jetstream {{\n  store_dir: "{tmp_path / "store"}"\n  domain: hub\n}}\n')
    with run_broker(extra_args=["-c", str(conf)], tmp_dir=tmp_path) as broker:
        nc = await nats.connect(broker.url)
        try:
            js = nc.jetstream(domain="hub")
            info = await js.account_info()
            assert info.domain == "hub"
            await js.add_stream(name="DOM", subjects=["dom.>"])
            ack = await js.publish("dom.x", b"one")
            assert (ack.stream, ack.seq, ack.domain) == ("DOM", 1, "hub")
            psub = await js.pull_subscribe("dom.x", durable="d", stream="DOM")
            (msg,) = await psub.fetch(1, timeout=2)
            assert msg.data == b"one"
            await msg.ack_sync()
            plain = await nc.jetstream().stream_info("DOM")
            assert plain.state.messages == 1
            consumer = await js.consumer_info("DOM", "d")
            assert consumer.ack_floor.stream_seq == 1
        finally:
            await nc.close()
