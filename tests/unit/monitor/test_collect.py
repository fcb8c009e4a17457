"""monitor/collect.py: pure figures -> nats-server shaped Structs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shardbroker.config.options import Options
from shardbroker.mesh.snapshot import (
    AccountJsz,
    ConnSnapshot,
    StorageSnapshot,
    StreamJsz,
    SubSnapshot,
    WorkerSnapshot,
)
from shardbroker.monitor import accountz, collect, connz, jsz
from shardbroker.monitor.collect import BrokerState, QueryError, ShardFigures
from shardbroker.monitor.connz import ConnzQuery
from shardbroker.monitor.prometheus import render

SEC = 1_000_000_000
NOW = 1_700_000_100 * SEC


def state(jetstream: bool = False, up: bool = True) -> BrokerState:
    shards = [
        ShardFigures(1, "worker", up, {"connections": 2, "total_connections": 5, "in_msgs": 10,
                                       "in_bytes": 100, "out_msgs": 7, "out_bytes": 70,
                                       "subscriptions": 3, "slow_consumers": 1}),
        ShardFigures(2, "worker", True, {"connections": 1, "total_connections": 1, "in_msgs": 1,
                                         "in_bytes": 5, "out_msgs": 2, "out_bytes": 9,
                                         "subscriptions": 1}),
    ]  # fmt: skip
    if jetstream:
        shards.append(
            ShardFigures(3, "storage", True, {"js_streams": 2, "js_consumers": 3,
                                              "js_messages": 40, "js_bytes": 400,
                                              "js_storage": 400, "js_api_total": 9,
                                              "js_api_errors": 1, "js_accounts": 1})
        )  # fmt: skip
    return BrokerState(
        server_id="NSERVER", opts=Options(jetstream=jetstream, host="127.0.0.1"), port=4222,
        http_host="127.0.0.1", http_port=8222, start_ns=NOW - 65 * SEC, now_ns=NOW,
        config_load_ns=NOW - 65 * SEC, shards=shards, mem=1000, cpu=1.5, cores=2,
    )  # fmt: skip


def conn(cid: int, **kw: object) -> ConnSnapshot:
    fields: dict[str, object] = dict(
        cid=cid, ip="127.0.0.1", port=5000 + cid, start_ns=NOW - cid * SEC, last_ns=NOW - SEC,
        rtt_ns=683_000, pending_bytes=0, in_msgs=cid, out_msgs=10 - cid, in_bytes=cid * 3,
        out_bytes=1, n_subs=cid % 3, name=f"c{cid}", lang="python3", version="2.16.0",
        user="", account="$G", tls_version="", tls_cipher="",
    )  # fmt: skip
    fields.update(kw)
    return ConnSnapshot(**fields)  # type: ignore[arg-type]


def test_collect_uptime_like_nats() -> None:
    # RFC 3339 times and durations are gofmt's (tests/unit/gofmt).
    assert collect.uptime(9 * SEC) == "9s"
    assert collect.uptime(65 * SEC) == "1m5s"
    assert collect.uptime((2 * 86400 + 3 * 3600 + 7) * SEC) == "2d3h0m7s"
    assert collect.uptime((400 * 86400 + 5) * SEC) == "1y35d0h0m5s"


def test_collect_varz_sums_workers() -> None:
    v = collect.varz(state())
    assert (v.connections, v.total_connections, v.subscriptions) == (3, 6, 4)
    assert (v.in_msgs, v.in_bytes, v.out_msgs, v.out_bytes) == (11, 105, 9, 79)
    assert v.slow_consumers == 1 and v.slow_consumer_stats.clients == 1
    assert v.uptime == "1m5s" and v.gomaxprocs == 2
    doc = msgspec.json.decode(msgspec.json.encode(v))
    assert doc["jetstream"] == {} and doc["cluster"] == {}
    assert "auth_required" not in doc and doc["ping_interval"] == 120 * SEC


def test_collect_varz_and_jsz_with_jetstream() -> None:
    s = state(jetstream=True)
    doc = msgspec.json.decode(msgspec.json.encode(collect.varz(s)))
    assert doc["jetstream"]["stats"]["storage"] == 400
    assert doc["jetstream"]["stats"]["api"]["total"] == 9
    assert doc["jetstream"]["config"]["strict"] is True
    doc = jsz.jsz(s)
    assert (doc.streams, doc.consumers, doc.messages, doc.bytes) == (2, 3, 40, 400)
    off = msgspec.json.decode(msgspec.json.encode(jsz.jsz(state())))
    assert off["disabled"] is True and off["config"] == {"max_memory": 0, "max_storage": 0}


def storage_snapshot() -> StorageSnapshot:
    consumer = {
        "stream_name": "S",
        "name": "C",
        "config": {"durable_name": "C"},
        "delivered": {"consumer_seq": 1, "stream_seq": 1},
        "num_pending": 3,
    }
    streams = [StreamJsz("S", "2026-11-23T00:00:00Z", {"name": "S"}, {"messages": 4}, [consumer])]
    return StorageSnapshot(3, NOW, [AccountJsz("A", 0, 10, 2, 0, []),
                                    AccountJsz("B", 5, 0, 1, 1, streams)])  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, None),
        ({"config": "true"}, None),
        ({"accounts": "true"}, [("A", None), ("B", None)]),
        ({"acc": "B"}, [("B", None)]),
        ({"acc": "NOPE", "streams": "true"}, None),
        ({"streams": "1"}, [("A", []), ("B", [("S", None, None)])]),
        ({"acc": "B", "consumers": "true"}, [("B", [("S", None, [None])])]),
        ({"acc": "B", "consumers": "true", "config": "true"},
         [("B", [("S", {"name": "S"}, [{"durable_name": "C"}])])]),
        ({"accounts": "true", "offset": "1"}, [("B", None)]),
        ({"accounts": "true", "offset": "2"}, None),
        ({"accounts": "true", "limit": "1"}, [("A", None)]),
    ],
)  # fmt: skip
def test_collect_jsz_details(query: dict[str, str], expected: list[Any] | None) -> None:
    q = jsz.JszQuery.from_query(query)
    snap = storage_snapshot() if q.details else None
    doc = msgspec.json.decode(msgspec.json.encode(jsz.jsz(state(jetstream=True), q, snap)))
    details = doc.get("account_details")
    if expected is None:
        assert details is None
        return
    got = []
    for a in details:
        streams = None
        if "stream_detail" in a:
            streams = [
                (st["name"], st.get("config"),
                 [c.get("config") for c in st["consumer_detail"]] if "consumer_detail" in st
                 else None)
                for st in a["stream_detail"]
            ]  # fmt: skip
        got.append((a["name"], streams))
    assert got == expected
    assert list(doc)[-2:] == ["account_details", "total"]
    first = details[0]
    assert first["reserved_memory"] == first["reserved_storage"] == 2**64 - 1
    assert first["id"] == first["name"]


def test_collect_jsz_bad_query() -> None:
    with pytest.raises(QueryError, match="Error decoding boolean for 'streams'"):
        jsz.JszQuery.from_query({"streams": "maybe"})
    with pytest.raises(QueryError, match="Error decoding int for 'offset'"):
        jsz.JszQuery.from_query({"offset": "x"})


def test_collect_connz_sorts_pages_and_filters() -> None:
    snaps = [
        WorkerSnapshot(
            1, NOW, [conn(1), conn(4)], [conn(9, stop_ns=NOW, reason="Client Closed")], []
        ),
        WorkerSnapshot(2, NOW, [conn(2), conn(3, user="bob")], [], []),
    ]  # fmt: skip
    c = connz.connz("N", NOW, snaps, ConnzQuery())
    assert [x.cid for x in c.connections] == [1, 2, 3, 4]
    assert [x.shard for x in c.connections] == [1, 2, 2, 1]
    assert c.connections[0].rtt == "683µs" and c.connections[0].idle == "1s"
    q = ConnzQuery.from_query({"sort": "msgs_from", "limit": "2", "offset": "1"})
    c = connz.connz("N", NOW, snaps, q)
    assert [x.cid for x in c.connections] == [3, 2] and (c.total, c.num_connections) == (4, 2)
    closed = connz.connz("N", NOW, snaps, ConnzQuery.from_query({"state": "closed"}))
    assert [(x.cid, x.reason) for x in closed.connections] == [(9, "Client Closed")]
    assert connz.connz("N", NOW, snaps, ConnzQuery.from_query({"cid": "9"})).total == 1
    assert connz.connz("N", NOW, snaps, ConnzQuery.from_query({"state": "all"})).total == 5
    bob = connz.connz("N", NOW, snaps, ConnzQuery.from_query({"user": "bob", "auth": "1"}))
    assert [x.authorized_user for x in bob.connections] == ["bob"]


def test_collect_connz_subscription_lists() -> None:
    sub = SubSnapshot("foo.*", "q1", "1", 5, 0, "$G", 1)
    snaps = [WorkerSnapshot(1, NOW, [conn(1, subs=[sub])], [], [])]
    plain = connz.connz("N", NOW, snaps, ConnzQuery.from_query({"subs": "true"}))
    assert plain.connections[0].subscriptions_list == ["foo.*"]
    detail = connz.connz("N", NOW, snaps, ConnzQuery.from_query({"subs": "detail"}))
    doc = msgspec.json.decode(msgspec.json.encode(detail.connections[0]))
    assert doc["subscriptions_list_detail"] == [
        {"subject": "foo.*", "qgroup": "q1", "sid": "1", "msgs": 5, "cid": 1}
    ]
    assert "subscriptions_list" not in doc and "name_tag" not in doc


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"sort": "bogus"}, "invalid sorting option: bogus"),
        ({"limit": "abc"},
         "Error decoding int for 'limit': strconv.Atoi: parsing \"abc\": invalid syntax"),
        ({"auth": "maybe"},
         "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax"),
        ({"state": "bogus"}, "Error decoding state for bogus"),
        ({"sort": "stop"}, "sort by stop only valid on closed connections"),
    ],
)  # fmt: skip
def test_collect_connz_query_errors(query: dict[str, str], text: str) -> None:
    with pytest.raises(QueryError) as info:
        ConnzQuery.from_query(query)
    assert str(info.value) == text


def test_collect_subsz_lists_and_tests_subjects() -> None:
    subs = [
        SubSnapshot("foo.*", "", "1", 0, 0, "$G", 1),
        SubSnapshot("bar", "", "2", 0, 0, "$G", 1),
    ]
    s = connz.subsz(state(), connz.SubszQuery.from_query({"subs": "1", "test": "foo.x"}), subs)
    assert s.num_subscriptions == 4 and s.total == 1
    assert [x.subject for x in s.subscriptions_list] == ["foo.*"]
    with pytest.raises(QueryError):
        connz.SubszQuery.from_query({"test": "foo.*"})


def test_collect_healthz_and_accounts() -> None:
    assert collect.healthz(state(), {}) == (200, collect.Healthz("ok"))
    assert collect.healthz(state(up=False), {})[0] == 500
    code, body = collect.healthz(state(), {"stream": "S"})
    assert code == 400 and "account" in body.error
    with pytest.raises(QueryError):
        collect.healthz(state(), {"js-enabled-only": "nope"})
    assert accountz.accountz(state()).accounts == ["$SYS", "$G"]
    detail = accountz.accountz(state(), "$G").account_detail
    assert detail is not None and detail.client_connections == 3
    with pytest.raises(QueryError, match="Account NOPE does not exist"):
        accountz.accountz(state(), "NOPE")


def test_collect_prometheus_render_parses() -> None:
    text = render(state(jetstream=True)).decode()
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["gnatsd_varz_in_msgs"].value == 11
    assert samples["gnatsd_varz_connections"].labels == {"server_id": "NSERVER"}
    assert samples["gnatsd_varz_start"].value == (NOW - 65 * SEC) / 1e6
    assert samples["gnatsd_varz_jetstream_stats_storage"].value == 400
    assert samples["jetstream_server_total_streams"].value == 2
    assert samples["gnatsd_healthz_status"].value == 0
    assert samples["shardbroker_shard_connections"].labels["role"] == "worker"
