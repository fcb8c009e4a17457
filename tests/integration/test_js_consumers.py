"""Consumer management and positions (jetstream-api.md §8, jetstream-semantics.md §6, §12):
create in every subject form (legacy ephemeral, named, named + filter, durable), info,
delete, names, list, the error objects for invalid configs and unknown streams/consumers,
the update rules, every deliver policy, filter_subjects, headers_only, and the
num_pending / num_ack_pending / num_redelivered / delivered / ack_floor accounting. Also
run against nats-server (SHARDBROKER_TEST_TARGET=nats-server), which is how the
expectations were checked."""

from __future__ import annotations

import json
import re
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tests.helpers.broker import Broker, NatsClients, raw_connect_on_shard, unique
from tests.helpers.wait import async_check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NS = 1_000_000_000
CREATE = "io.nats.jetstream.api.v1.consumer_create_response"
INFO = "io.nats.jetstream.api.v1.consumer_info_response"


def name() -> str:
    return unique("C").upper()


async def api(nc, subject: str, body: bytes | dict | None = None) -> dict:
    """A raw API request; the decoded JSON answer."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    msg = await nc.request(subject, body or b"", timeout=5)
    return json.loads(msg.data)


def error(code: int, err_code: int, description: str) -> dict[str, Any]:
    return {"code": code, "err_code": err_code, "description": description}


async def filled(js, count: int = 5, subjects: tuple[str, ...] = ("a", "b")) -> str:
    """A new stream `<S>` on `<S>.>` with `count` messages; message i (1-based) is on
    `<S>.<subjects[(i-1) % len]>` with payload `m<i>`."""
    s = name()
    await js.add_stream(name=s, subjects=[f"{s}.>"])
    for i in range(1, count + 1):
        await js.publish(f"{s}.{subjects[(i - 1) % len(subjects)]}", f"m{i}".encode())
    return s


async def drain(psub, batch: int = 50) -> list[Any]:
    """Everything a pull subscription can get right now (no_wait first fetch)."""
    try:
        return await psub.fetch(batch, timeout=0.5)
    except TimeoutError:
        return []


# -- create / info / delete / names / list ---------------------------------------------------


async def test_js_consumer_durable_create_info_delete(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 3)
        info = await js.add_consumer(s, durable_name="d1", ack_policy=AckPolicy.EXPLICIT)
        assert (info.stream_name, info.name) == (s, "d1")
        assert info.config.durable_name == "d1"
        assert info.config.deliver_policy == DeliverPolicy.ALL
        assert info.config.ack_wait == 30.0
        assert info.config.max_deliver == -1
        assert info.config.max_waiting == 512
        assert info.config.max_ack_pending == 1000
        assert info.config.inactive_threshold is None
        assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (0, 0)
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (0, 0)
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (3, 0, 0)
        assert info.num_waiting == 0
        again = await js.consumer_info(s, "d1")
        assert again.config == info.config and again.created == info.created
        assert (await js.stream_info(s)).state.consumer_count == 1
        assert await js.delete_consumer(s, "d1") is True
        with pytest.raises(nats.js.errors.NotFoundError) as err:
            await js.consumer_info(s, "d1")
        assert err.value.err_code == 10014
        with pytest.raises(nats.js.errors.NotFoundError) as err:
            await js.delete_consumer(s, "d1")
        assert err.value.err_code == 10014
        assert (await js.stream_info(s)).state.consumer_count == 0


async def test_js_consumer_legacy_ephemeral_create(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 2)
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}",
            {"stream_name": s, "config": {"ack_policy": "explicit"}},
        )
        assert answer["type"] == CREATE
        assert re.fullmatch(r"[0-9A-Za-z]{8}", answer["name"]), answer["name"]
        assert "durable_name" not in answer["config"]
        assert answer["config"]["inactive_threshold"] == 5 * NS
        assert answer["num_pending"] == 2
        info = await js.consumer_info(s, answer["name"])
        assert info.name == answer["name"]
        # The legacy ephemeral form refuses a durable name.
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}",
            {"stream_name": s, "config": {"durable_name": "dd", "ack_policy": "explicit"}},
        )
        assert answer == {
            "type": CREATE,
            "error": error(
                400,
                10020,
                "consumer expected to be ephemeral but a durable name was set in request",
            ),
        }


async def test_js_consumer_named_create_with_filter_in_subject(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 4)
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.named.{s}.a",
            {"stream_name": s, "config": {"filter_subject": f"{s}.a", "ack_policy": "explicit"}},
        )
        assert answer["type"] == CREATE
        assert answer["name"] == "named" and answer["config"]["name"] == "named"
        assert answer["config"]["filter_subject"] == f"{s}.a"
        assert answer["num_pending"] == 2
        # A filter in the subject that the body does not match.
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.other.{s}.a",
            {"stream_name": s, "config": {"filter_subject": f"{s}.b", "ack_policy": "explicit"}},
        )
        assert answer["error"] == error(
            400, 10131, "Consumer create request did not match filtered subject from create subject"
        )
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.other.{s}.a",
            {
                "stream_name": s,
                "config": {"filter_subjects": [f"{s}.a", f"{s}.b"], "ack_policy": "explicit"},
            },
        )
        assert answer["error"] == error(
            400, 10137, "consumer with multiple subject filters cannot use subject based API"
        )
        # The name in the subject must match durable_name; stream_name must match too.
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.n1",
            {"stream_name": s, "config": {"durable_name": "n2", "ack_policy": "explicit"}},
        )
        assert answer["error"] == error(
            400, 10017, "consumer name in subject does not match durable name in request"
        )
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.n1",
            {"stream_name": "NOTIT", "config": {"ack_policy": "explicit"}},
        )
        assert answer["error"] == error(400, 10056, "stream name in subject does not match request")


async def test_js_consumer_durable_create_subject(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.dur",
            {"stream_name": s, "config": {"durable_name": "dur", "ack_policy": "explicit"}},
        )
        assert answer["type"] == CREATE and answer["name"] == "dur"
        assert answer["config"]["durable_name"] == "dur"
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.dur2",
            {"stream_name": s, "config": {"ack_policy": "explicit"}},
        )
        assert answer["error"] == error(
            400, 10018, "consumer expected to be durable but a durable name was not set"
        )
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.dur3",
            {"stream_name": s, "config": {"durable_name": "zzz", "ack_policy": "explicit"}},
        )
        assert answer["error"] == error(
            400, 10017, "consumer name in subject does not match durable name in request"
        )


async def test_js_consumer_unknown_stream_and_consumer(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        missing = name()
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{missing}.c1",
            {"stream_name": missing, "config": {"ack_policy": "explicit"}},
        )
        assert answer == {"type": CREATE, "error": error(404, 10059, "stream not found")}
        answer = await api(nc, f"$JS.API.CONSUMER.INFO.{missing}.c1")
        assert answer == {"type": INFO, "error": error(404, 10059, "stream not found")}
        answer = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.c1")
        assert answer == {"type": INFO, "error": error(404, 10014, "consumer not found")}
        answer = await api(nc, f"$JS.API.CONSUMER.DELETE.{s}.c1")
        assert answer == {
            "type": "io.nats.jetstream.api.v1.consumer_delete_response",
            "error": error(404, 10014, "consumer not found"),
        }
        answer = await api(nc, f"$JS.API.CONSUMER.NAMES.{missing}")
        assert answer["error"] == error(404, 10059, "stream not found")
        # INFO requires an empty body.
        await js.add_consumer(s, durable_name="c1")
        answer = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.c1", b'{"x": 1}')
        assert answer["error"] == error(400, 10038, "expected an empty request payload")
        answer = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.c1", b"{}")
        assert answer["type"] == INFO and answer["name"] == "c1"
        # Deleting the stream deletes its consumers.
        await js.delete_stream(s)
        answer = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.c1")
        assert answer["error"]["err_code"] == 10059


INVALID_CONFIGS = [
    (
        {"deliver_subject": "dl.*", "ack_policy": "explicit"},
        error(400, 10079, "consumer deliver subject has wildcards"),
    ),
    (
        {"idle_heartbeat": NS, "ack_policy": "explicit"},
        error(400, 10088, "consumer idle heartbeat requires a push based consumer"),
    ),
    (
        {"flow_control": True, "ack_policy": "explicit"},
        error(400, 10089, "consumer flow control requires a push based consumer"),
    ),
    (
        {"deliver_subject": "dl.x", "idle_heartbeat": 50_000_000, "ack_policy": "explicit"},
        error(400, 10083, "consumer idle heartbeat needs to be >= 100ms"),
    ),
    (
        {"deliver_subject": "dl.x", "flow_control": True, "ack_policy": "explicit"},
        error(400, 10108, "consumer with flow control also needs heartbeats"),
    ),
    (
        {"deliver_subject": "dl.x", "max_waiting": 5, "ack_policy": "explicit"},
        error(400, 10080, "consumer in push mode can not set max waiting"),
    ),
    (
        {"rate_limit_bps": 1000, "ack_policy": "explicit"},
        error(400, 10086, "consumer in pull mode can not have rate limit set"),
    ),
    (
        {"deliver_policy": "by_start_sequence", "ack_policy": "explicit"},
        error(
            400,
            10094,
            "consumer delivery policy is deliver by start sequence, but optional start "
            "sequence is not set",
        ),
    ),
    (
        {"deliver_policy": "all", "opt_start_seq": 3, "ack_policy": "explicit"},
        error(
            400,
            10094,
            "consumer delivery policy is deliver all, but optional start sequence is also set",
        ),
    ),
    (
        {"deliver_policy": "by_start_time", "ack_policy": "explicit"},
        error(
            400,
            10094,
            "consumer delivery policy is deliver by start time, but optional start time is not set",
        ),
    ),
    (
        {"deliver_policy": "last_per_subject", "ack_policy": "explicit"},
        error(
            400,
            10094,
            "consumer delivery policy is deliver last per subject, but optional filter "
            "subject is not set",
        ),
    ),
    (
        {"backoff": [NS, 2 * NS, 3 * NS], "max_deliver": 2, "ack_policy": "explicit"},
        error(400, 10116, "max deliver is required to be > length of backoff values"),
    ),
    (
        {"filter_subject": "{S}.a", "filter_subjects": ["{S}.b"], "ack_policy": "explicit"},
        error(400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified"),
    ),
    (
        {"filter_subjects": ["{S}.a", "{S}.*"], "ack_policy": "explicit"},
        error(400, 10138, "consumer subject filters cannot overlap"),
    ),
    (
        {"filter_subjects": ["{S}.a", ""], "ack_policy": "explicit"},
        error(400, 10139, "consumer filter in FilterSubjects cannot be empty"),
    ),
    (
        {"deliver_subject": "dl.x", "ack_policy": "none", "max_ack_pending": 5},
        error(400, 10082, "consumer requires ack policy for max ack pending"),
    ),
    (
        {"max_expires": 500_000, "ack_policy": "explicit"},
        error(400, 10115, "consumer max request expires needs to be >= 1ms"),
    ),
    (
        {"durable_name": "a/b", "ack_policy": "explicit"},
        error(400, 10127, "Consumer name can not contain path separators"),
    ),
]


@pytest.mark.parametrize(
    ("config", "expected"),
    INVALID_CONFIGS,
    ids=[str(e["err_code"]) + "-" + str(i) for i, (_, e) in enumerate(INVALID_CONFIGS)],
)
async def test_js_consumer_invalid_config_errors(
    js_broker: Broker, config: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        config = json.loads(json.dumps(config).replace("{S}", s))
        # Durables through the named subject, the others through the legacy one.
        subject = f"$JS.API.CONSUMER.CREATE.{s}"
        if "durable_name" in config:
            subject += "." + config["durable_name"]
        answer = await api(nc, subject, {"stream_name": s, "config": config})
        assert answer == {"type": CREATE, "error": expected}
        assert (await js.stream_info(s)).state.consumer_count == 0


async def test_js_consumer_update_rules(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 4)
        subject = f"$JS.API.CONSUMER.CREATE.{s}.u1"
        base = {"durable_name": "u1", "ack_policy": "explicit", "filter_subject": f"{s}.a"}
        first = await api(nc, subject, {"stream_name": s, "config": base})
        assert first["num_pending"] == 2
        # Identical config with action create: returns it.
        same = await api(nc, subject, {"stream_name": s, "config": base, "action": "create"})
        assert same["type"] == CREATE and same["created"] == first["created"]
        changed = {**base, "description": "new", "max_ack_pending": 7, "filter_subject": f"{s}.>"}
        answer = await api(nc, subject, {"stream_name": s, "config": changed, "action": "create"})
        assert answer["error"] == error(400, 10148, "consumer already exists")
        # A plain create of an existing consumer is an update; updating the filter
        # re-computes num_pending.
        answer = await api(nc, subject, {"stream_name": s, "config": changed})
        assert answer["config"]["description"] == "new"
        assert answer["config"]["max_ack_pending"] == 7
        assert answer["num_pending"] == 4
        assert answer["created"] == first["created"]
        answer = await api(
            nc, subject, {"stream_name": s, "config": {**changed, "ack_policy": "all"}}
        )
        assert answer["error"] == error(500, 10012, "ack policy can not be updated")
        answer = await api(
            nc, subject, {"stream_name": s, "config": {**changed, "deliver_policy": "new"}}
        )
        assert answer["error"] == error(500, 10012, "deliver policy can not be updated")
        answer = await api(
            nc, subject, {"stream_name": s, "config": {**changed, "deliver_subject": "dl.u1"}}
        )
        assert answer["error"] == error(500, 10012, "can not update pull consumer to push based")
        answer = await api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{s}.nope",
            {"stream_name": s, "config": {"ack_policy": "explicit"}, "action": "update"},
        )
        assert answer["error"] == error(400, 10149, "consumer does not exist")
        answer = await api(nc, subject, {"stream_name": s, "config": base, "action": "replace"})
        assert answer["error"]["err_code"] == 10025
        # nats-py update through add_consumer keeps the consumer's state.
        info = await js.add_consumer(
            s, config=ConsumerConfig(durable_name="u1", filter_subject=f"{s}.b", ack_wait=9)
        )
        assert info.config.ack_wait == 9.0 and info.num_pending == 2


async def test_js_consumer_names_and_list(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 2)
        for n in ("cc", "aa", "bb"):
            await js.add_consumer(s, durable_name=n)
        infos = await js.consumers_info(s)
        assert [i.name for i in infos] == ["aa", "bb", "cc"]
        assert all(i.stream_name == s and i.num_pending == 2 for i in infos)
        answer = await api(nc, f"$JS.API.CONSUMER.NAMES.{s}")
        assert answer["type"] == "io.nats.jetstream.api.v1.consumer_names_response"
        assert answer["consumers"] == ["aa", "bb", "cc"]
        assert (answer["total"], answer["offset"], answer["limit"]) == (3, 0, 1024)
        answer = await api(nc, f"$JS.API.CONSUMER.LIST.{s}", {"offset": 1})
        assert answer["type"] == "io.nats.jetstream.api.v1.consumer_list_response"
        assert [c["name"] for c in answer["consumers"]] == ["bb", "cc"]
        assert (answer["total"], answer["offset"], answer["limit"]) == (3, 1, 256)
        await js.delete_consumer(s, "bb")
        answer = await api(nc, f"$JS.API.CONSUMER.NAMES.{s}")
        assert answer["consumers"] == ["aa", "cc"] and answer["total"] == 2


async def test_js_consumer_ephemeral_goes_away_when_inactive(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 1)
        info = await js.add_consumer(s, config=ConsumerConfig(inactive_threshold=0.5))
        assert info.config.inactive_threshold == 0.5
        durable = await js.add_consumer(
            s, config=ConsumerConfig(durable_name="stays", inactive_threshold=None)
        )
        assert durable.config.inactive_threshold is None

        async def gone() -> bool:
            answer = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.{info.name}")
            return answer.get("error", {}).get("err_code") == 10014

        await async_check_for(5, 0.1, gone)
        assert [c.name for c in await js.consumers_info(s)] == ["stays"]


# -- deliver policies ----------------------------------------------------------------------


async def test_js_consumer_deliver_policies(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        # seq: 1 a, 2 b, 3 a, 4 b, 5 a, 6 c
        s = await filled(js, 6, ("a", "b", "a", "b", "a", "c"))
        stored = await api(nc, f"$JS.API.STREAM.MSG.GET.{s}", {"seq": 3})
        start_time = stored["message"]["time"]
        cases: list[tuple[str, dict[str, Any], list[int], int, int]] = [
            # policy, extra, expected stream seqs, num_pending at creation, delivered.stream_seq
            ("all", {}, [1, 2, 3, 4, 5, 6], 6, 0),
            ("last", {}, [6], 1, 5),
            ("last", {"filter_subject": f"{s}.b"}, [4], 1, 3),
            ("new", {}, [], 0, 6),
            ("by_start_sequence", {"opt_start_seq": 4}, [4, 5, 6], 3, 3),
            ("by_start_sequence", {"opt_start_seq": 40}, [], 0, 39),
            ("by_start_time", {"opt_start_time": start_time}, [3, 4, 5, 6], 4, 2),
            # The start is the first last-of-a-subject, so the delivered pair starts below it.
            ("last_per_subject", {"filter_subject": f"{s}.>"}, [4, 5, 6], 3, 3),
            ("last_per_subject", {"filter_subject": f"{s}.a"}, [5], 1, 4),
        ]
        for i, (policy, extra, seqs, pending, dstream) in enumerate(cases):
            cname = f"p{i}"
            config = {"durable_name": cname, "ack_policy": "explicit", "deliver_policy": policy}
            answer = await api(
                nc,
                f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.{cname}",
                {"stream_name": s, "config": {**config, **extra}},
            )
            assert "error" not in answer, (policy, answer)
            assert answer["num_pending"] == pending, (policy, extra, answer["num_pending"])
            assert answer["delivered"]["stream_seq"] == dstream, (policy, answer["delivered"])
            assert answer["delivered"]["consumer_seq"] == 0
            assert answer["ack_floor"] == answer["delivered"], policy
            psub = await js.pull_subscribe_bind(cname, stream=s)
            got = await drain(psub)
            assert [m.metadata.sequence.stream for m in got] == seqs, (policy, extra)
            assert [m.metadata.sequence.consumer for m in got] == list(range(1, len(seqs) + 1))
            if got:
                assert got[-1].metadata.num_pending == 0
        # Everything after the start is delivered too, for every policy but the far
        # start sequence.
        await js.publish(f"{s}.a", b"m7")
        for i, (policy, extra, _, _, _) in enumerate(cases):
            psub = await js.pull_subscribe_bind(f"p{i}", stream=s)
            got = await drain(psub)
            want = (
                []
                if extra.get("opt_start_seq") == 40 or extra.get("filter_subject") == (f"{s}.b")
                else [7]
            )
            assert [m.metadata.sequence.stream for m in got] == want, (policy, extra)


async def test_js_consumer_filter_subjects(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 6, ("a", "b", "c"))
        info = await js.add_consumer(
            s, config=ConsumerConfig(durable_name="f", filter_subjects=[f"{s}.a", f"{s}.c"])
        )
        assert info.config.filter_subjects == [f"{s}.a", f"{s}.c"]
        assert info.num_pending == 4
        psub = await js.pull_subscribe_bind("f", stream=s)
        got = await drain(psub)
        assert [m.subject for m in got] == [f"{s}.a", f"{s}.c"] * 2
        assert [m.metadata.sequence.stream for m in got] == [1, 3, 4, 6]
        assert [m.metadata.num_pending for m in got] == [3, 2, 1, 0]
        await js.publish(f"{s}.b", b"no")
        await js.publish(f"{s}.c", b"yes")
        assert (await js.consumer_info(s, "f")).num_pending == 1
        got = await drain(psub)
        assert [m.data for m in got] == [b"yes"]


async def test_js_consumer_headers_only(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = name()
        await js.add_stream(name=s, subjects=[f"{s}.>"])
        await js.publish(f"{s}.a", b"x" * 100)
        await js.publish(f"{s}.a", b"hello", headers={"X-Tag": "t1"})
        await js.add_consumer(s, config=ConsumerConfig(durable_name="h", headers_only=True))
        raw = raw_connect_on_shard(js_broker, 2)
        try:
            raw.handshake(headers=True)
            raw.send(b"SUB _HO.inbox 1\r\n")
            body = json.dumps({"batch": 2}).encode()
            raw.send(
                f"PUB $JS.API.CONSUMER.MSG.NEXT.{s}.h _HO.inbox {len(body)}\r\n".encode()
                + body
                + b"\r\n"
            )
            first, second = raw.read_msg(), raw.read_msg()
        finally:
            raw.close()
        assert (first.op, first.subject, first.payload) == ("HMSG", f"{s}.a", b"")
        assert first.header == b"NATS/1.0\r\nNats-Msg-Size: 100\r\n\r\n"
        assert second.header == b"NATS/1.0\r\nX-Tag: t1\r\nNats-Msg-Size: 5\r\n\r\n"
        assert second.payload == b""


# -- accounting ------------------------------------------------------------------------------


async def test_js_consumer_accounting(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        other = await clients.on_shard(2)
        js = nc.jetstream()
        s = await filled(js, 5)
        await js.add_consumer(s, config=ConsumerConfig(durable_name="acc", ack_wait=30))
        psub = await other.jetstream().pull_subscribe_bind("acc", stream=s)
        m1, m2, m3 = await psub.fetch(3, timeout=2)
        info = await js.consumer_info(s, "acc")
        assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (3, 3)
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (0, 0)
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (2, 3, 0)
        assert info.delivered.last_active is not None and info.ack_floor.last_active is None
        await m1.ack_sync()
        await m2.nak(delay=30)
        await m3.in_progress()
        await m3.ack_sync()
        info = await js.consumer_info(s, "acc")
        # seq 2 is still pending: the floor stays at 1.
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (1, 1)
        assert info.ack_floor.last_active is not None
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (2, 1, 0)
        m4, m5 = await psub.fetch(2, timeout=2)
        assert (m4.metadata.sequence.consumer, m4.metadata.sequence.stream) == (4, 4)
        await m4.ack_sync()
        await m5.ack_sync()
        info = await js.consumer_info(s, "acc")
        assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (5, 5)
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (1, 1)
        assert (info.num_pending, info.num_ack_pending) == (0, 1)
        # Acking the last pending one moves the floor to the delivered pair.
        await nc.request(m2.reply, b"+ACK", timeout=2)
        info = await js.consumer_info(s, "acc")
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (5, 5)
        assert info.num_ack_pending == 0
        # New messages count in num_pending at once.
        await js.publish(f"{s}.a", b"m6")
        await js.publish(f"{s}.zzz", b"m7")
        assert (await js.consumer_info(s, "acc")).num_pending == 2


async def test_js_consumer_pending_drops_with_stream_purge(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 6)
        psub = await js.pull_subscribe(f"{s}.>", durable="pp", stream=s)
        got = await psub.fetch(2, timeout=2)
        assert len(got) == 2
        await js.purge_stream(s)
        info = await js.consumer_info(s, "pp")
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        await js.publish(f"{s}.a", b"after")
        (msg,) = await psub.fetch(1, timeout=2)
        assert (msg.data, msg.metadata.sequence.stream) == (b"after", 7)


# -- pause -------------------------------------------------------------------------------------


async def test_js_consumer_pause_and_resume(js_broker: Broker) -> None:
    async with NatsClients(js_broker) as clients:
        nc = await clients.on_shard(1)
        js = nc.jetstream()
        s = await filled(js, 2)
        await js.add_consumer(s, durable_name="pz")
        answer = await api(
            nc, f"$JS.API.CONSUMER.PAUSE.{s}.pz", {"pause_until": "2099-01-01T00:00:00Z"}
        )
        assert answer["type"] == "io.nats.jetstream.api.v1.consumer_pause_response"
        assert answer["paused"] is True and answer["pause_until"] == "2099-01-01T00:00:00Z"
        assert answer["pause_remaining"] > 0
        info = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.pz")
        assert info["paused"] is True and info["config"]["pause_until"] == "2099-01-01T00:00:00Z"
        psub = await js.pull_subscribe_bind("pz", stream=s)
        assert await drain(psub) == []
        resumed = await js.resume_consumer(s, "pz")
        assert resumed.paused is False
        got = await drain(psub)
        assert [m.data for m in got] == [b"m1", b"m2"]
        info = await api(nc, f"$JS.API.CONSUMER.INFO.{s}.pz")
        assert "paused" not in info and "pause_remaining" not in info
