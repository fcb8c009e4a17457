"""JetStream JSON shapes: encoding as nats-server writes them, decoding as it reads them.

The literals marked "captured" were recorded from a real nats-server v2.15.1 started with
``nats-server -js -sd <tmpdir> -p <port> -a 127.0.0.1`` and driven by nats-py 2.x with
``await nc.request(subject, body)``; subject and body are given beside each literal.
"""

# ruff: noqa: E501  # captured server answers are kept verbatim, one per line

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest

from shardbroker.gofmt import timestamp
from shardbroker.jetstream import jsondecode, jsonencode, schema
from shardbroker.jetstream.jserrors import (
    ApiError,
    JSStreamNotFoundErr,
    JSStreamWrongLastSequenceErrF,
)
from shardbroker.jetstream.schema import (
    AccountInfo,
    ApiPaged,
    ClusterInfo,
    LostStreamData,
    MsgGetRequest,
    Placement,
    RePublish,
    StoredMsg,
    StreamConfig,
    StreamConfigRequest,
    StreamConsumerLimits,
    StreamInfo,
    StreamSource,
    StreamSourceInfo,
    StreamState,
    SubjectTransformConfig,
)

# -- captured answers ----------------------------------------------------------------------

# $JS.API.STREAM.CREATE.ORDERS {"name":"ORDERS","subjects":["orders.*"]}
CAPTURED_CREATE = '{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-11-23T08:12:36.66676467Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-11-23T08:12:36.66848388Z","did_create":true}'

# $JS.API.STREAM.INFO.FULL (empty body) after
# $JS.API.STREAM.CREATE.FULL {"name":"FULL","description":"d","subjects":["full.>"],"retention":"limits","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1000,"discard":"new","storage":"memory","num_replicas":1,"no_ack":false,"duplicate_window":60000000000,"placement":{"cluster":"c","tags":["t1"]},"compression":"none","first_seq":10,"subject_transform":{"src":"full.>","dest":"full.x.>"},"republish":{"dest":"rp.>","headers_only":true},"allow_direct":true,"discard_new_per_subject":true,"deny_delete":true,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":50},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"metadata":{"k":"v"}}
CAPTURED_FULL_INFO = '{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":{"name":"FULL","description":"d","subjects":["full.\\u003e"],"retention":"limits","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1000,"discard":"new","storage":"memory","num_replicas":1,"duplicate_window":60000000000,"placement":{"cluster":"c","tags":["t1"]},"compression":"none","first_seq":10,"subject_transform":{"src":"full.\\u003e","dest":"full.x.\\u003e"},"republish":{"src":"\\u003e","dest":"rp.\\u003e","headers_only":true},"allow_direct":true,"mirror_direct":false,"discard_new_per_subject":true,"sealed":false,"deny_delete":true,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":50},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1","k":"v"}},"created":"2026-11-23T08:14:09.398467757Z","state":{"messages":0,"bytes":0,"first_seq":10,"first_ts":"0001-01-01T00:00:00Z","last_seq":9,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"cluster":{"leader":"NDNXM2COFDABVHRQ2NR3NHP2X3N23S4PMBNPN7EEWL2ORRTTSQNLACHM"},"ts":"2026-11-23T08:14:09.399459804Z"}'

# $JS.API.STREAM.INFO.S {"deleted_details":true,"subjects_filter":">"} on stream S
# (subjects s.>, allow_direct) after publishing s.b "x" and s.d "" and deleting seq 2.
CAPTURED_STATE_DETAILS = '{"messages":1,"bytes":34,"first_seq":1,"first_ts":"2026-11-23T08:14:09.402589906Z","last_seq":2,"last_ts":"2026-11-23T08:14:09.402998885Z","num_subjects":1,"subjects":{"s.b":1},"num_deleted":1,"deleted":[2],"consumer_count":0}'

# $JS.API.INFO after creating FULL (memory, max_bytes 100000) and S.
CAPTURED_ACCOUNT_INFO = '{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":0,"reserved_memory":100000,"reserved_storage":0,"streams":2,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":5,"total":6,"errors":0}}'

# $JS.API.STREAM.CREATE.SRC {"name":"SRC","sources":[{"name":"CNT","filter_subject":"x","opt_start_time":"2020-01-01T00:00:00+01:00"}]}
CAPTURED_SOURCES_CREATE = '{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"SRC","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"sources":[{"name":"CNT","opt_start_time":"2020-01-01T00:00:00+01:00","filter_subject":"x"}],"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}},"created":"2026-11-23T08:14:43.272512318Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"sources":[{"name":"CNT","lag":0,"active":-1,"filter_subject":"x"}],"ts":"2026-11-23T08:14:43.273400851Z","did_create":true}'

_TIMES = re.compile(r'"(created|ts)":"[^"]*"')


def _normalise(text: str) -> str:
    """Creation and report times differ run to run; everything else must match."""
    return _TIMES.sub(r'"\1":"T"', text)


def _orders_config() -> StreamConfig:
    return StreamConfig(
        name="ORDERS",
        subjects=["orders.*"],
        max_consumers=-1,
        max_msgs=-1,
        max_bytes=-1,
        max_msgs_per_subject=-1,
        max_msg_size=-1,
        num_replicas=1,
        duplicate_window=120_000_000_000,
        metadata={"_nats.req.level": "0", "_nats.ver": "2.15.1", "_nats.level": "5"},
    )


def test_schema_stream_create_response_matches_nats() -> None:
    info = StreamInfo(
        config=_orders_config(),
        created="2026-11-23T08:12:36.66676467Z",
        state=StreamState(),
        ts="2026-11-23T08:12:36.66848388Z",
    )
    body = jsonencode.encode(
        schema.api_response(schema.STREAM_CREATE_RESPONSE, info, {"did_create": True})
    )
    assert body.decode() == CAPTURED_CREATE


def test_schema_stream_info_with_every_config_field_matches_nats() -> None:
    config = StreamConfig(
        name="FULL",
        description="d",
        subjects=["full.>"],
        max_consumers=10,
        max_msgs=100,
        max_bytes=100000,
        max_age=3600000000000,
        max_msgs_per_subject=5,
        max_msg_size=1000,
        discard="new",
        storage="memory",
        num_replicas=1,
        duplicate_window=60000000000,
        placement=Placement(cluster="c", tags=["t1"]),
        first_seq=10,
        subject_transform=SubjectTransformConfig(src="full.>", dest="full.x.>"),
        republish=RePublish(src=">", dest="rp.>", headers_only=True),
        allow_direct=True,
        discard_new_per_subject=True,
        deny_delete=True,
        allow_rollup_hdrs=True,
        consumer_limits=StreamConsumerLimits(inactive_threshold=5000000000, max_ack_pending=50),
        allow_msg_ttl=True,
        subject_delete_marker_ttl=2000000000,
        # Insertion order differs from the answer's: maps are written sorted, as in Go.
        metadata={"k": "v", "_nats.ver": "2.15.1", "_nats.req.level": "1", "_nats.level": "5"},
    )
    info = StreamInfo(
        config=config,
        created=timestamp.format_rfc3339(1795421649398467757),
        state=StreamState(first_seq=10, last_seq=9),
        cluster=ClusterInfo(leader="NDNXM2COFDABVHRQ2NR3NHP2X3N23S4PMBNPN7EEWL2ORRTTSQNLACHM"),
        ts=timestamp.format_rfc3339(1795421649399459804),
    )
    body = jsonencode.encode(schema.api_response(schema.STREAM_INFO_RESPONSE, ApiPaged(), info))
    assert body.decode() == CAPTURED_FULL_INFO


def test_schema_stream_info_keys_and_types_match_nats() -> None:
    # The same comparison as above, stated as key sets and JSON types, so a failure
    # names the field at fault.
    ours = json.loads(
        jsonencode.encode(
            schema.api_response(
                schema.STREAM_INFO_RESPONSE,
                ApiPaged(),
                StreamInfo(
                    config=_orders_config(),
                    cluster=ClusterInfo(leader="N"),
                    created=timestamp.format_rfc3339(1),
                    ts=timestamp.format_rfc3339(2),
                ),
            )
        )
    )
    theirs = json.loads(CAPTURED_FULL_INFO)

    def shape(obj: dict[str, Any], keys: list[str] | None = None) -> dict[str, str]:
        return {k: type(obj[k]).__name__ for k in (obj if keys is None else keys)}

    assert list(ours) == list(theirs)
    assert shape(ours) == shape(theirs)
    assert shape(ours["state"]) == shape(theirs["state"])
    assert shape(ours["cluster"]) == shape(theirs["cluster"])
    # ORDERS leaves every omitempty field empty: the always-present config keys remain.
    always = [k for k in theirs["config"] if k in ours["config"]]
    assert list(ours["config"]) == always
    assert shape(ours["config"], always) == shape(theirs["config"], always)


def test_schema_stream_state_details_match_nats() -> None:
    state = StreamState(
        messages=1,
        bytes=34,
        first_seq=1,
        first_ts=timestamp.format_rfc3339(1795421649402589906),
        last_seq=2,
        last_ts=timestamp.format_rfc3339(1795421649402998885),
        num_subjects=1,
        subjects={"s.b": 1},
        num_deleted=1,
        deleted=[2],
    )
    assert jsonencode.encode(state).decode() == CAPTURED_STATE_DETAILS


def test_schema_stream_state_lost_data() -> None:
    state = StreamState(lost=LostStreamData(msgs=[4, 5], bytes=80))
    assert json.loads(jsonencode.encode(state))["lost"] == {"msgs": [4, 5], "bytes": 80}


def test_schema_stream_info_with_sources_matches_nats() -> None:
    config = StreamConfig(
        name="SRC",
        max_consumers=-1,
        max_msgs=-1,
        max_bytes=-1,
        max_msgs_per_subject=-1,
        max_msg_size=-1,
        num_replicas=1,
        sources=[
            StreamSource(name="CNT", filter_subject="x", opt_start_time="2020-01-01T00:00:00+01:00")
        ],
        metadata={"_nats.req.level": "0", "_nats.ver": "2.15.1", "_nats.level": "5"},
    )
    info = StreamInfo(
        config=config,
        sources=[StreamSourceInfo(name="CNT", active=-1, filter_subject="x")],
    )
    body = jsonencode.encode(
        schema.api_response(schema.STREAM_CREATE_RESPONSE, info, {"did_create": True})
    )
    assert _normalise(body.decode()) == _normalise(CAPTURED_SOURCES_CREATE)


def test_schema_account_info_matches_nats() -> None:
    info = AccountInfo(reserved_memory=100000, streams=2, api=schema.ApiStats(level=5, total=6))
    body = jsonencode.encode(schema.api_response(schema.ACCOUNT_INFO_RESPONSE, info))
    assert body.decode() == CAPTURED_ACCOUNT_INFO


def test_schema_account_info_domain_and_tiers() -> None:
    info = AccountInfo(domain="hub", tiers={"R1": schema.Tier(streams=1)})
    out = json.loads(jsonencode.encode(info))
    assert list(out)[-3:] == ["domain", "api", "tiers"]
    assert out["tiers"]["R1"]["streams"] == 1


@pytest.mark.parametrize(
    ("response", "captured"),
    [
        # $JS.API.STREAM.NAMES (no streams)
        (
            schema.StreamNamesResponse(limit=1024),
            '{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}',
        ),
        # $JS.API.STREAM.NAMES {"offset":1} with streams FULL and S
        (
            schema.StreamNamesResponse(total=2, offset=1, limit=1024, streams=["S"]),
            '{"type":"io.nats.jetstream.api.v1.stream_names_response","total":2,"offset":1,"limit":1024,"streams":["S"]}',
        ),
        # $JS.API.STREAM.LIST (no streams)
        (
            schema.StreamListResponse(limit=256),
            '{"type":"io.nats.jetstream.api.v1.stream_list_response","total":0,"offset":0,"limit":256,"streams":[]}',
        ),
        # $JS.API.STREAM.PURGE.S (empty body) with one message
        (
            schema.StreamPurgeResponse(success=True, purged=1),
            '{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":1}',
        ),
        # $JS.API.STREAM.PURGE.NOPE
        (
            schema.StreamPurgeResponse(
                error=schema.ApiErrorBody(code=404, err_code=10059, description="stream not found")
            ),
            '{"type":"io.nats.jetstream.api.v1.stream_purge_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"purged":0}',
        ),
        # $JS.API.STREAM.DELETE.S
        (
            schema.StreamDeleteResponse(success=True),
            '{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}',
        ),
        # $JS.API.STREAM.MSG.DELETE.S {"seq":2}
        (
            schema.MsgDeleteResponse(success=True),
            '{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","success":true}',
        ),
        # $JS.API.STREAM.MSG.GET.S {"seq":1}: subject s.b, payload "x", no headers
        (
            schema.MsgGetResponse(
                message=StoredMsg(
                    subject="s.b",
                    seq=1,
                    data=b"x",
                    time=timestamp.format_rfc3339(1795421649402589906),
                )
            ),
            '{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"s.b","seq":1,"data":"eA==","time":"2026-11-23T08:14:09.402589906Z"}}',
        ),
        # $JS.API.STREAM.MSG.GET.S {"last_by_subj":"s.>"}: s.d with an empty payload
        (
            schema.MsgGetResponse(
                message=StoredMsg(subject="s.d", seq=2, time="2026-11-23T08:14:09.402998885Z")
            ),
            '{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"s.d","seq":2,"time":"2026-11-23T08:14:09.402998885Z"}}',
        ),
    ],
)
def test_schema_small_responses_match_nats(response: msgspec.Struct, captured: str) -> None:
    assert jsonencode.encode(response).decode() == captured


def test_schema_msg_get_with_headers_is_base64() -> None:
    # jetstream-api.md 6.9 (captured): hdrs is the header block exactly as published.
    msg = StoredMsg(
        subject="orders.new",
        seq=1,
        hdrs=b"NATS/1.0\r\nNats-Msg-Id: id0\r\n\r\n",
        data=b"o0",
        time="2026-11-23T04:20:55.039554928Z",
    )
    assert jsonencode.encode(msg) == (
        b'{"subject":"orders.new","seq":1,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiBpZDANCg0K",'
        b'"data":"bzA=","time":"2026-11-23T04:20:55.039554928Z"}'
    )


def test_schema_error_envelopes_match_nats() -> None:
    # $JS.API.STREAM.INFO.NOPE: the paging keys follow the error.
    err = ApiError.of(JSStreamNotFoundErr)
    body = jsonencode.encode(
        schema.api_response(schema.STREAM_INFO_RESPONSE, ApiPaged(), error=err)
    )
    assert body == (
        b'{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,'
        b'"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}'
    )
    # $JS.API.STREAM.MSG.GET.NOPE {"seq":1}: nothing after the error.
    body = jsonencode.encode(schema.api_response(schema.STREAM_MSG_GET_RESPONSE, None, error=err))
    assert body == (
        b'{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,'
        b'"err_code":10059,"description":"stream not found"}}'
    )


def test_schema_response_type_strings() -> None:
    prefix = "io.nats.jetstream.api.v1."
    names = {
        "ACCOUNT_INFO_RESPONSE": "account_info_response",
        "STREAM_CREATE_RESPONSE": "stream_create_response",
        "STREAM_UPDATE_RESPONSE": "stream_update_response",
        "STREAM_INFO_RESPONSE": "stream_info_response",
        "STREAM_DELETE_RESPONSE": "stream_delete_response",
        "STREAM_NAMES_RESPONSE": "stream_names_response",
        "STREAM_LIST_RESPONSE": "stream_list_response",
        "STREAM_PURGE_RESPONSE": "stream_purge_response",
        "STREAM_MSG_GET_RESPONSE": "stream_msg_get_response",
        "STREAM_MSG_DELETE_RESPONSE": "stream_msg_delete_response",
        "STREAM_SNAPSHOT_RESPONSE": "stream_snapshot_response",
        "STREAM_RESTORE_RESPONSE": "stream_restore_response",
        "CONSUMER_CREATE_RESPONSE": "consumer_create_response",
        "CONSUMER_INFO_RESPONSE": "consumer_info_response",
        "CONSUMER_DELETE_RESPONSE": "consumer_delete_response",
        "CONSUMER_NAMES_RESPONSE": "consumer_names_response",
        "CONSUMER_LIST_RESPONSE": "consumer_list_response",
        "CONSUMER_PAUSE_RESPONSE": "consumer_pause_response",
        "CONSUMER_RESET_RESPONSE": "consumer_reset_response",
        "CONSUMER_UNPIN_RESPONSE": "consumer_unpin_response",
        "SYSTEM_RESPONSE": "system_response",
        "SYSTEM_OVERLOADED": "system_overloaded",
    }
    assert {n: getattr(schema, n) for n in names} == {n: prefix + t for n, t in names.items()}


# -- PubAcks ------------------------------------------------------------------------------------


def test_schema_pub_ack_bytes_match_nats() -> None:
    # Captured: publishes to p.a on stream P (the duplicate carries Nats-Msg-Id m1 twice).
    prefix = schema.pub_ack_prefix("P")
    assert schema.pub_ack(prefix, 1) == b'{"stream":"P","seq":1}'
    assert schema.pub_ack_duplicate(prefix, 1) == b'{"stream":"P","seq":1,"duplicate": true}'
    err = ApiError.of(JSStreamWrongLastSequenceErrF, seq=1)
    assert schema.pub_ack_error("P", err) == (
        b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},'
        b'"stream":"P","seq":0}'
    )


def test_schema_pub_ack_with_domain_puts_domain_before_seq() -> None:
    prefix = schema.pub_ack_prefix("S", domain="D")
    assert schema.pub_ack(prefix, 1) == b'{"stream":"S","domain":"D","seq":1}'


def test_schema_pub_ack_struct_omits_falsy_fields() -> None:
    assert jsonencode.encode(schema.PubAck(stream="S", seq=3)) == b'{"stream":"S","seq":3}'
    assert jsonencode.encode(schema.PubAck(stream="S", seq=3, domain="D", duplicate=True)) == (
        b'{"stream":"S","seq":3,"domain":"D","duplicate":true}'
    )


# -- encoding details ----------------------------------------------------------------------------


def test_schema_encode_escapes_like_go() -> None:
    out = jsonencode.encode({"a": "x>y<z&w\u2028\u2029"})
    assert out == b'{"a":"x\\u003ey\\u003cz\\u0026w\\u2028\\u2029"}'
    assert json.loads(out) == {"a": "x>y<z&w\u2028\u2029"}


def test_schema_encode_empty_placement_tags_like_go() -> None:
    # {"placement":{"tags":[]}} is kept by nats-server and answered as "placement":{}.
    assert jsonencode.encode(Placement(tags=[])) == b"{}"


def test_schema_encode_plain_dict_keeps_its_order_and_struct_values() -> None:
    out = jsonencode.encode({"z": 1, "config": StreamConsumerLimits(max_ack_pending=2), "a": None})
    assert out == b'{"z":1,"config":{"max_ack_pending":2},"a":null}'


def test_schema_stream_config_round_trips_through_plain_msgspec() -> None:
    # The storage layer persists configs with msgspec's own encoder.
    config = StreamConfig(
        name="X",
        subjects=["x.>"],
        sources=[StreamSource(name="Y", opt_start_time="2020-01-01T00:00:00Z")],
        metadata={"a": "b"},
    )
    assert msgspec.json.decode(msgspec.json.encode(config), type=StreamConfig) == config


def test_schema_stream_config_request_config_drops_pedantic() -> None:
    request = StreamConfigRequest(name="X", pedantic=True, max_msgs=5)
    config = request.config()
    assert type(config) is StreamConfig
    assert (config.name, config.max_msgs) == ("X", 5)
    assert b"pedantic" not in jsonencode.encode(config)


# -- decoding: what nats-server answers -----------------------------------------------------------

# Bodies sent to $JS.API.STREAM.CREATE.<name> and the 10025 description nats-server 2.15.1
# answered (captured; the "invalid JSON: " prefix is part of the description).
DECODE_ERRORS = [
    (b"{x", "invalid character 'x' looking for beginning of object key string at offset 2"),
    (b"x", "invalid character 'x' looking for beginning of value at offset 1"),
    (b'  {"name":}', "invalid character '}' looking for beginning of value at offset 11"),
    (b'{"name" 1}', "invalid character '1' after object key at offset 9"),
    (b"{} x", "invalid character 'x' looking for beginning of value at offset 4"),
    (b'{"name":"X"', "unexpected EOF"),
    (b'{"name":"Z\\', "unexpected EOF"),
    (b'{"name":"Z\\u12', "unexpected EOF"),
    (b"[1,2", "unexpected EOF"),
    (b"tru", "unexpected EOF"),
    (b'{"name":"Z"} {"x', "unexpected EOF"),
    (b'{"name":"X","bogus":1}', 'json: unknown field "bogus"'),
    (b'{"name":"X","consumer_limits":{"bogus":1}}', 'json: unknown field "bogus"'),
    (b'{"name":"Y","sources":[{"name":"a","bogus":5}]}', 'json: unknown field "bogus"'),
    (b'{"\xe2\x80\xa8":1}', 'json: unknown field "\\u2028"'),
    (b'{"name":"T2","maxmsgs":5}', 'json: unknown field "maxmsgs"'),
    (
        b'{"name":"X","max_msgs":"a"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"name":"X","first_seq":-1}',
        "json: cannot unmarshal number -1 into Go struct field StreamConfigRequest.first_seq of type uint64",
    ),
    (
        b'{"name":"X","max_msgs":1.5}',
        "json: cannot unmarshal number 1.5 into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"max_msgs":1e3}',
        "json: cannot unmarshal number 1e3 into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"name":"Y","max_msgs":1E+2}',
        "json: cannot unmarshal number 1E+2 into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"max_msgs":99999999999999999999}',
        "json: cannot unmarshal number 99999999999999999999 into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"name":"X","max_msg_size":3000000000}',
        "json: cannot unmarshal number 3000000000 into Go struct field StreamConfigRequest.max_msg_size of type int32",
    ),
    (
        b'{"name":"X","max_age":"1s"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_age of type time.Duration",
    ),
    (
        b'{"name":"Y","max_age":100000000.0}',
        "json: cannot unmarshal number 100000000.0 into Go struct field StreamConfigRequest.max_age of type time.Duration",
    ),
    (
        b'{"name":"X","consumer_limits":{"max_ack_pending":"x"}}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.consumer_limits.max_ack_pending of type int",
    ),
    (
        b'{"name":"Y","consumer_limits":{"inactive_threshold":1.0}}',
        "json: cannot unmarshal number 1.0 into Go struct field StreamConfigRequest.consumer_limits.inactive_threshold of type time.Duration",
    ),
    (
        b'{"name":"X","subjects":[1]}',
        "json: cannot unmarshal number into StreamConfigRequest.subjects.0 of type string",
    ),
    (
        b'{"name":"Z" , "subjects" : [ "a" , 1 ] }',
        "json: cannot unmarshal number into StreamConfigRequest.subjects.1 of type string",
    ),
    (
        b'{"name":"X","subjects":"a"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.subjects of type []string",
    ),
    (b"[]", "json: cannot unmarshal array into Go value of type server.StreamConfigRequest"),
    (b'"x"', "json: cannot unmarshal string into Go value of type server.StreamConfigRequest"),
    (b"{}{}[]", "json: cannot unmarshal array into Go value of type server.StreamConfigRequest"),
    (
        b'{"name":"Y","sources":[{"name":5}]}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.sources.0.name of type string",
    ),
    (
        b'{"name":"Y","sources":5}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.sources of type []*server.StreamSource",
    ),
    (
        b'{"name":"Y","sources":[5]}',
        "json: cannot unmarshal number into StreamConfigRequest.sources.0 of type server.StreamSource",
    ),
    (
        b'{"name":"Y","metadata":{"a":1}}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.metadata.a of type string",
    ),
    (
        b'{"name":"Y","metadata":[]}',
        "json: cannot unmarshal array into Go struct field StreamConfigRequest.metadata of type map[string]string",
    ),
    (
        b'{"name":"Y","placement":{"tags":[1]}}',
        "json: cannot unmarshal number into StreamConfigRequest.placement.tags.0 of type string",
    ),
    (
        b'{"name":"Y","placement":5}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.placement of type server.Placement",
    ),
    (
        b'{"name":5}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.name of type string",
    ),
    (
        b'{"name":true}',
        "json: cannot unmarshal bool into Go struct field StreamConfigRequest.name of type string",
    ),
    (
        b'{"name":"Y","sealed":"x"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.sealed of type bool",
    ),
    (
        b'{"name":"Y","sealed":1}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.sealed of type bool",
    ),
    (
        b'{"name":"Y","pedantic":"x"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.pedantic of type bool",
    ),
    (
        b'{"name":"Y","subject_transform":{"src":1}}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.subject_transform.src of type string",
    ),
    (
        b'{"name":"Y","republish":{"dest":1}}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.republish.dest of type string",
    ),
    # The first problem in document order wins.
    (b'{"bogus":1,"retention":"x"}', 'json: unknown field "bogus"'),
    (
        b'{"max_msgs":"x","bogus":1}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    (
        b'{"name":"Y","max_msgs":1,"max_msgs":"q"}',
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
    ),
    # Enums go through nats' own UnmarshalJSON methods.
    (b'{"name":"X","retention":"x"}', 'can not unmarshal "\\"x\\""'),
    (b'{"name":"X","retention":null}', 'can not unmarshal "null"'),
    (b'{"name":"Y","storage":"FILE"}', 'can not unmarshal "\\"FILE\\""'),
    (b'{"name":"T10","storage":5}', 'can not unmarshal "5"'),
    (b'{"name":"T10","discard":null}', 'can not unmarshal "null"'),
    (b'{"name":"Y","persist_mode":"x"}', 'can not unmarshal "\\"x\\""'),
    (b'{"name":"T10","persist_mode":null}', 'can not unmarshal "null"'),
    (b'{"name":"X","compression":"zz"}', "unknown compression algorithm"),
    (b'{"name":"T10","compression":null}', "unknown compression algorithm"),
    (b'{"name":"X","compression":5}', "json: cannot unmarshal number into Go value of type string"),
    # Times.
    (
        b'{"name":"Y","mirror":{"opt_start_time":"x"}}',
        'parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":5}]}',
        "json: cannot unmarshal number into Go struct field StreamConfigRequest.sources.0.opt_start_time of type time.Time",
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-13-01T00:00:00Z"}]}',
        'parsing time "2020-13-01T00:00:00Z": month out of range',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-02-30T00:00:00Z"}]}',
        'parsing time "2020-02-30T00:00:00Z": day out of range',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T00:00:00"}]}',
        'parsing time "2020-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00"',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01 00:00:00Z"}]}',
        'parsing time "2020-01-01 00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 00:00:00Z" as "T"',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T00:00:00Zx"}]}',
        'parsing time "2020-01-01T00:00:00Zx": extra text: "x"',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T25:00:00Z"}]}',
        'parsing time "2020-01-01T25:00:00Z": hour out of range',
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T00:00:00+25:00"}]}',
        'parsing time "2020-01-01T00:00:00+25:00": time zone offset hour out of range',
    ),
    # Syntax.
    (b'{"name":"Y\x00"}', "invalid character '\\x00' in string at offset 11"),
    (b'{"name":"a\tb"}', "invalid character '\\t' in string at offset 11"),
    (
        b'{"name":\xc3\xa9}',
        "invalid character '\u00e9' looking for beginning of value at offset 10",
    ),
    (b"{\xff}", "invalid character '\\xff' looking for beginning of object key string at offset 2"),
    (
        b'\xef\xbb\xbf{"name":"Z"}',
        "invalid character '\\ufeff' looking for beginning of value at offset 3",
    ),
    (b'{"name":"Z"}]', "invalid character ']' looking for beginning of value at offset 13"),
    (b'{"name":"Z"}}', "invalid character '}' looking for beginning of value at offset 13"),
    (b'{"name":"Z"}garbage', "invalid character 'g' looking for beginning of value at offset 13"),
    (
        b'{"name":"Y","max_msgs":01}',
        "invalid character '1' after object key:value pair at offset 25",
    ),
    (b'{"name":"Y","max_msgs":1.}', "invalid character '}' in numeric literal at offset 26"),
    (b'{"name":"Z","max_msgs":1.e5}', "invalid character 'e' in numeric literal at offset 26"),
    (b'{"name":"Z","max_msgs":1e+}', "invalid character '}' in numeric literal at offset 27"),
    (b'{"name":1e}', "invalid character '}' in numeric literal at offset 11"),
    (b'{"name":-}', "invalid character '}' in numeric literal at offset 10"),
    (
        b'{"name":"Z","max_msgs":+1}',
        "invalid character '+' looking for beginning of value at offset 24",
    ),
    (
        b'{"name":"Z","max_msgs":.5}',
        "invalid character '.' looking for beginning of value at offset 24",
    ),
    (b'{"name":"Y","a":tru}', "invalid character '}' in literal true (expecting 'e') at offset 20"),
    (
        b'{"name":"Z","max_msgs":nul}',
        "invalid character '}' in literal null (expecting 'l') at offset 27",
    ),
    (
        b'{"name":"Z","max_msgs":fals}',
        "invalid character '}' in literal false (expecting 'e') at offset 28",
    ),
    (b'{"name":"Y\\q"}', "invalid escape sequence `\\q` in string at offset 12"),
    (b'{"name":"\\u12g4"}', "invalid escape sequence `\\u12g4` in string at offset 15"),
    (
        b'{"name":"Y",}',
        "invalid character '}' looking for beginning of object key string at offset 13",
    ),
    (
        b'{"name":"Z",\'a\':1}',
        "invalid character '\\'' looking for beginning of object key string at offset 13",
    ),
    (b'{"name":["Y",]}', "invalid character ']' looking for beginning of value at offset 14"),
    (
        b'{"name":"Z","subjects":["a",]}',
        "invalid character ']' looking for beginning of value at offset 29",
    ),
    (b'{"name":"Y"]', "invalid character ']' after object key:value pair at offset 12"),
    (
        b'{"name":"Z","subjects":["a" "b"]}',
        "invalid character '\"' after array element at offset 29",
    ),
]


@pytest.mark.parametrize(("body", "description"), DECODE_ERRORS)
def test_schema_decode_errors_match_nats(body: bytes, description: str) -> None:
    with pytest.raises(ApiError) as info:
        jsondecode.decode_request(body, StreamConfigRequest)
    assert info.value.to_dict() == {
        "code": 400,
        "err_code": 10025,
        "description": "invalid JSON: " + description,
    }


def test_schema_decode_error_names_the_request_type() -> None:
    with pytest.raises(ApiError) as info:
        jsondecode.decode_request(b'{"seq":"1"}', MsgGetRequest)
    assert info.value.description == (
        "invalid JSON: json: cannot unmarshal string into Go struct field "
        "JSApiMsgGetRequest.seq of type uint64"
    )
    with pytest.raises(ApiError) as info:
        jsondecode.decode_request(b'{"offset":1,"bogus":true}', schema.StreamInfoRequest)
    assert info.value.description == 'invalid JSON: json: unknown field "bogus"'


# Bodies nats-server 2.15.1 accepts, and what they decode to (captured: the stream was
# created with the values shown, or a later create was compared with them).
DECODE_ACCEPTED: list[tuple[bytes, dict[str, Any]]] = [
    (b"", {"name": ""}),
    (b" \n", {"name": ""}),
    (b"null", {"name": ""}),
    (b'{"name":"X","discard":"NEW"}', {"discard": "new"}),
    (b'{"name":"T10","discard":"Old"}', {"discard": "old"}),
    (b'{"name":"X","max_msgs":null, "subjects":null}', {"max_msgs": 0, "subjects": []}),
    (b'{"NAME":"X"}', {"name": "X"}),
    (b'{"name":"T1","MAX_MSGS":5}', {"max_msgs": 5}),
    (b'{"name":"T4","max_msgs":5,"Max_Msgs":7}', {"max_msgs": 7}),
    (b'{"name":"T5","Max_Msgs":7,"max_msgs":5}', {"max_msgs": 5}),
    (b'{"name":"X"}{"subjects":["q"]}', {"name": "X", "subjects": ["q"]}),
    (b'{"name":"Z"}null', {"name": "Z"}),
    (b'{"name":"Y","name":"Z"}', {"name": "Z"}),
    (b'{"name":"Y","max_msgs":-0}', {"max_msgs": 0}),
    (b'{"name":"Y","persist_mode":""}', {"persist_mode": "default"}),
    (b'{"name":"Y","persist_mode":"async"}', {"persist_mode": "async"}),
    (b'{"name":"Y","subjects":["a",null]}', {"subjects": ["a", ""]}),
    (b'{"name":"Y","consumer_limits":null}', {"consumer_limits": StreamConsumerLimits()}),
    (b'{"name":"Z\xff"}', {"name": "Z\ufffd"}),
    (b'{"name":"\\ud800"}', {"name": "\ufffd"}),
    (b'{"name":"a\\ud800\\u0041"}', {"name": "a\ufffdA"}),
    (b'{"name":"Z","description":"\xe2\x80\xa8"}', {"description": "\u2028"}),
    (b'{"name":"T8","placement":{"tags":[]}}', {"placement": Placement(tags=[])}),
    (b'{"name":"T9","metadata":{"a":null}}', {"metadata": {"a": ""}}),
    (b'{"name":"T9","sources":[null]}', {"sources": [StreamSource()]}),
    (b'{"name":"T11","subject_transform":null,"republish":null,"mirror":null}', {"mirror": None}),
    (b'{"name":"Y","pedantic":true}', {"pedantic": True}),
    # Times come back as Go re-renders them.
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T1:00:00Z"}]}',
        {"sources": [StreamSource(name="A", opt_start_time="2020-01-01T01:00:00Z")]},
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":"2020-01-01T00:00:00.123456789123Z"}]}',
        {"sources": [StreamSource(name="A", opt_start_time="2020-01-01T00:00:00.123456789Z")]},
    ),
    (
        b'{"name":"T7","sources":[{"name":"A","opt_start_time":"2020-01-01T00:00:00.5-07:30"}]}',
        {"sources": [StreamSource(name="A", opt_start_time="2020-01-01T00:00:00.5-07:30")]},
    ),
    (
        b'{"name":"T6","sources":[{"name":"A","opt_start_time":null}]}',
        {"sources": [StreamSource(name="A")]},
    ),
]


@pytest.mark.parametrize(("body", "fields"), DECODE_ACCEPTED)
def test_schema_decode_accepts_what_nats_accepts(body: bytes, fields: dict[str, Any]) -> None:
    request = jsondecode.decode_request(body, StreamConfigRequest)
    assert type(request) is StreamConfigRequest
    assert {k: getattr(request, k) for k in fields} == fields


def test_schema_decode_merges_repeated_objects_like_go() -> None:
    request = jsondecode.decode_request(
        b'{"consumer_limits":{"max_ack_pending":3},"consumer_limits":{"inactive_threshold":5},'
        b'"metadata":{"a":"1"},"metadata":{"b":"2"}}',
        StreamConfigRequest,
    )
    assert request.consumer_limits == StreamConsumerLimits(inactive_threshold=5, max_ack_pending=3)
    assert request.metadata == {"a": "1", "b": "2"}


def test_schema_decode_msg_get_request() -> None:
    request = jsondecode.decode_request(
        b'{"next_by_subj":"a.>","seq":5,"start_time":"2026-01-02T03:04:05.5+01:00"}', MsgGetRequest
    )
    assert (request.next_by_subj, request.seq) == ("a.>", 5)
    assert request.start_time == "2026-01-02T03:04:05.5+01:00"
    assert jsondecode.decode_request(b'{"seq":1}', MsgGetRequest).start_time is None


def test_schema_decode_deeply_nested_json_is_refused() -> None:
    body = b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(ApiError) as info:
        jsondecode.decode_request(body, StreamConfigRequest)
    assert info.value.err_code == 10025


# -- requests with optional bodies (nats isJSONObjectOrArray / isEmptyRequest) -------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", False),
        (b"  ", False),
        (b" \n{}", True),
        (b"[1]", True),
        (b"5", False),
        (b'"{"', False),
    ],
)
def test_schema_is_json_object_or_array(body: bytes, expected: bool) -> None:
    assert jsondecode.is_json_object_or_array(body) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", True),
        (b"{}", True),
        (b" { } ", True),
        (b'{"a":1}', False),
        (b"x", False),
        (b"[]", False),
    ],
)
def test_schema_is_empty_request(body: bytes, expected: bool) -> None:
    assert jsondecode.is_empty_request(body) is expected
