"""Consumer JSON shapes: encoding as nats-server writes them, decoding as it reads them.

The literals marked "captured" were recorded from a real nats-server v2.15.1 started with
``nats-server -js -sd <tmpdir> -a 127.0.0.1 -p <port>`` and driven by nats-py with
``await nc.request(subject, body)``; subject and body are given beside each literal.
Stream S was created with ``{"name": "S", "subjects": ["s.>"]}``, stream L with
``{"name": "L", "subjects": ["l.>"], "consumer_limits": {"inactive_threshold": 10000000000,
"max_ack_pending": 50}, "max_consumers": 2}``.
"""

# ruff: noqa: E501  # captured server answers are kept verbatim, one per line

from __future__ import annotations

import json

import pytest

from shardbroker.gofmt import timestamp
from shardbroker.jetstream import consumer_schema, jsondecode, jsonencode, schema
from shardbroker.jetstream.consumer_schema import (
    ConsumerConfig,
    ConsumerDeleteResponse,
    ConsumerInfo,
    ConsumerListResponse,
    ConsumerNamesResponse,
    ConsumerPauseRequest,
    ConsumerPauseResponse,
    CreateConsumerRequest,
    PriorityGroupState,
    SequenceInfo,
)
from shardbroker.jetstream.jserrors import ApiError, JSConsumerNotFoundErr, JSStreamNotFoundErr

# $JS.API.CONSUMER.INFO.S.full (empty body) after
# $JS.API.CONSUMER.CREATE.S.full {"stream_name": "S", "config": {"durable_name": "full", "name": "full", "description": "d", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T00:00:00+01:00", "ack_policy": "explicit", "ack_wait": 5000000000, "max_deliver": 5, "backoff": [1000000000, 2000000000], "filter_subjects": ["s.a", "s.b.>"], "replay_policy": "original", "rate_limit_bps": 1000, "sample_freq": "50%", "max_ack_pending": 20, "flow_control": true, "headers_only": true, "deliver_subject": "dlv.full", "deliver_group": "g", "idle_heartbeat": 1000000000, "inactive_threshold": 60000000000, "num_replicas": 1, "mem_storage": true, "metadata": {"k": "v", "a": "<b>"}, "pause_until": "2099-01-01T00:00:00Z"}}
CAPTURED_FULL_INFO = '{"type":"io.nats.jetstream.api.v1.consumer_info_response","stream_name":"S","name":"full","created":"2026-11-23T08:32:36.813724008Z","config":{"durable_name":"full","name":"full","description":"d","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T00:00:00+01:00","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"filter_subjects":["s.a","s.b.\\u003e"],"replay_policy":"original","rate_limit_bps":1000,"sample_freq":"50%","max_ack_pending":20,"flow_control":true,"headers_only":true,"deliver_subject":"dlv.full","deliver_group":"g","idle_heartbeat":1000000000,"inactive_threshold":60000000000,"num_replicas":1,"mem_storage":true,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1","a":"\\u003cb\\u003e","k":"v"},"pause_until":"2099-01-01T00:00:00Z"},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"paused":true,"pause_remaining":2275486043185489500,"ts":"2026-11-23T08:32:36.814509739Z"}'

# $JS.API.CONSUMER.CREATE.S.fp.s.x {"stream_name": "S", "config": {"durable_name": "fp", "deliver_policy": "by_start_sequence", "opt_start_seq": 3, "ack_policy": "all", "max_waiting": 10, "max_batch": 5, "max_expires": 2000000000, "max_bytes": 1024, "filter_subject": "s.x", "priority_groups": ["g1"], "priority_policy": "pinned_client", "direct": false}}
CAPTURED_PULL_CREATE = '{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"S","name":"fp","created":"2026-11-23T08:32:36.814984415Z","config":{"durable_name":"fp","name":"fp","deliver_policy":"by_start_sequence","opt_start_seq":3,"ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"filter_subject":"s.x","replay_policy":"instant","max_waiting":10,"max_ack_pending":1000,"max_batch":5,"max_expires":2000000000,"max_bytes":1024,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"priority_groups":["g1"],"priority_policy":"pinned_client","priority_timeout":120000000000},"delivered":{"consumer_seq":0,"stream_seq":2},"ack_floor":{"consumer_seq":0,"stream_seq":2},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-11-23T08:32:36.816071224Z","priority_groups":[{"group":"g1","pinned_ts":"0001-01-01T00:00:00Z"}]}'

# $JS.API.CONSUMER.LIST.L (empty body) after creating l1 {"name": "l1", "ack_policy": "explicit"}
# and l2 {"durable_name": "l2", "ack_policy": "none"}: stored configs, no dynamic metadata.
CAPTURED_LIST = '{"type":"io.nats.jetstream.api.v1.consumer_list_response","total":2,"offset":0,"limit":256,"consumers":[{"stream_name":"L","name":"l1","created":"2026-11-23T08:32:36.80897737Z","config":{"name":"l1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":10000000000,"num_replicas":0,"metadata":{"_nats.req.level":"0"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-11-23T08:32:36.821556763Z"},{"stream_name":"L","name":"l2","created":"2026-11-23T08:32:36.810452567Z","config":{"durable_name":"l2","name":"l2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":10000000000,"num_replicas":0,"metadata":{"_nats.req.level":"0"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-11-23T08:32:36.821607639Z"}]}'

# $JS.API.CONSUMER.NAMES.S {"offset": 2} with 9 consumers
CAPTURED_NAMES = '{"type":"io.nats.jetstream.api.v1.consumer_names_response","total":9,"offset":2,"limit":1024,"consumers":["dur1","dur2","fp","full","ov","pull1","pull2"]}'
# $JS.API.CONSUMER.NAMES.NOPE and $JS.API.CONSUMER.LIST.NOPE (no such stream)
CAPTURED_NAMES_ERROR = '{"type":"io.nats.jetstream.api.v1.consumer_names_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"consumers":[]}'
CAPTURED_LIST_ERROR = '{"type":"io.nats.jetstream.api.v1.consumer_list_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"consumers":[]}'
# $JS.API.CONSUMER.DELETE.S.pull2 twice
CAPTURED_DELETE = '{"type":"io.nats.jetstream.api.v1.consumer_delete_response","success":true}'
CAPTURED_DELETE_ERROR = '{"type":"io.nats.jetstream.api.v1.consumer_delete_response","error":{"code":404,"err_code":10014,"description":"consumer not found"}}'
# $JS.API.CONSUMER.PAUSE.S.pull1 {"pause_until":"2099-01-01T00:00:00Z"}, then {}
CAPTURED_PAUSE = '{"type":"io.nats.jetstream.api.v1.consumer_pause_response","paused":true,"pause_until":"2099-01-01T00:00:00Z","pause_remaining":2275486043173157836}'
CAPTURED_RESUME = '{"type":"io.nats.jetstream.api.v1.consumer_pause_response","paused":false,"pause_until":"0001-01-01T00:00:00Z"}'
# $JS.API.CONSUMER.INFO.S.nope
CAPTURED_INFO_ERROR = '{"type":"io.nats.jetstream.api.v1.consumer_info_response","error":{"code":404,"err_code":10014,"description":"consumer not found"}}'

_NATS_META = {"_nats.level": "5", "_nats.req.level": "1", "_nats.ver": "2.15.1"}


def test_consumer_schema_full_info_matches_nats() -> None:
    config = ConsumerConfig(
        durable_name="full",
        name="full",
        description="d",
        deliver_policy="by_start_time",
        opt_start_time="2020-01-01T00:00:00+01:00",
        ack_policy="explicit",
        ack_wait=1000000000,
        max_deliver=5,
        backoff=[1000000000, 2000000000],
        filter_subjects=["s.a", "s.b.>"],
        replay_policy="original",
        rate_limit_bps=1000,
        sample_freq="50%",
        max_ack_pending=20,
        flow_control=True,
        headers_only=True,
        deliver_subject="dlv.full",
        deliver_group="g",
        idle_heartbeat=1000000000,
        inactive_threshold=60000000000,
        num_replicas=1,
        mem_storage=True,
        metadata={**_NATS_META, "k": "v", "a": "<b>"},
        pause_until="2099-01-01T00:00:00Z",
    )
    info = ConsumerInfo(
        stream_name="S",
        name="full",
        created="2026-11-23T08:32:36.813724008Z",
        config=config,
        paused=True,
        pause_remaining=2275486043185489500,
        ts="2026-11-23T08:32:36.814509739Z",
    )
    assert (
        jsonencode.encode(consumer_schema.consumer_info_response(info)).decode()
        == CAPTURED_FULL_INFO
    )


def test_consumer_schema_pull_create_with_priority_groups_matches_nats() -> None:
    config = ConsumerConfig(
        durable_name="fp",
        name="fp",
        deliver_policy="by_start_sequence",
        opt_start_seq=3,
        ack_policy="all",
        ack_wait=30000000000,
        max_deliver=-1,
        filter_subject="s.x",
        max_waiting=10,
        max_ack_pending=1000,
        max_batch=5,
        max_expires=2000000000,
        max_bytes=1024,
        metadata=_NATS_META,
        priority_groups=["g1"],
        priority_policy="pinned_client",
        priority_timeout=120000000000,
    )
    info = ConsumerInfo(
        stream_name="S",
        name="fp",
        created="2026-11-23T08:32:36.814984415Z",
        config=config,
        delivered=SequenceInfo(stream_seq=2),
        ack_floor=SequenceInfo(stream_seq=2),
        ts="2026-11-23T08:32:36.816071224Z",
        priority_groups=[PriorityGroupState(group="g1")],
    )
    assert (
        jsonencode.encode(consumer_schema.consumer_create_response(info)).decode()
        == CAPTURED_PULL_CREATE
    )


def test_consumer_schema_captured_answers_decode_and_encode_back() -> None:
    # Every captured answer decodes into our shapes and encodes to the same bytes.
    for text, cls in [
        (CAPTURED_LIST, ConsumerListResponse),
        (CAPTURED_NAMES, ConsumerNamesResponse),
        (CAPTURED_NAMES_ERROR, ConsumerNamesResponse),
        (CAPTURED_LIST_ERROR, ConsumerListResponse),
        (CAPTURED_DELETE, ConsumerDeleteResponse),
        (CAPTURED_DELETE_ERROR, ConsumerDeleteResponse),
        (CAPTURED_PAUSE, ConsumerPauseResponse),
        (CAPTURED_RESUME, ConsumerPauseResponse),
    ]:
        assert jsonencode.encode(jsondecode.decode_request(text.encode(), cls)).decode() == text


def test_consumer_schema_responses_built_from_scratch() -> None:
    assert jsonencode.encode(ConsumerDeleteResponse(success=True)).decode() == CAPTURED_DELETE
    err = ApiError.of(JSConsumerNotFoundErr)
    assert jsonencode.encode(ConsumerDeleteResponse(error=err)).decode() == CAPTURED_DELETE_ERROR  # type: ignore[arg-type]
    assert (
        jsonencode.encode(consumer_schema.consumer_info_response(None, err)).decode()
        == CAPTURED_INFO_ERROR
    )
    missing = ApiError.of(JSStreamNotFoundErr)
    assert jsonencode.encode(ConsumerNamesResponse(error=missing)).decode() == CAPTURED_NAMES_ERROR  # type: ignore[arg-type]
    assert jsonencode.encode(ConsumerPauseResponse()).decode() == CAPTURED_RESUME
    names = ConsumerNamesResponse(
        total=9,
        offset=2,
        limit=schema.JS_API_NAMES_LIMIT,
        consumers=["dur1", "dur2", "fp", "full", "ov", "pull1", "pull2"],
    )
    assert jsonencode.encode(names).decode() == CAPTURED_NAMES
    assert schema.JS_API_LIST_LIMIT == 256


def test_consumer_schema_sequence_info_last_active() -> None:
    seq = SequenceInfo(
        consumer_seq=3, stream_seq=3, last_active=timestamp.format_rfc3339(1_500_000_000)
    )
    assert (
        jsonencode.encode(seq)
        == b'{"consumer_seq":3,"stream_seq":3,"last_active":"1970-01-01T00:00:01.5Z"}'
    )


# -- decoding the create request (captured 10025 texts) ------------------------------------

DECODE_ERRORS = [
    ('{"stream_name": "S", "config": {}, "action": "bogus"}', 'unknown consumer action: "bogus"'),
    ('{"stream_name": "S", "config": {}, "action": null}', "unknown consumer action: null"),
    ('{"stream_name": "S", "config": {}, "action": 5}', "unknown consumer action: 5"),
    (
        '{"stream_name": "S", "config": {"priority_policy": "bogus"}}',
        'unknown priority policy: "bogus"',
    ),
    ('{"stream_name": "S", "config": {"deliver_policy": "ALL"}}', 'can not unmarshal "\\"ALL\\""'),
    ('{"stream_name": "S", "config": {"ack_policy": null}}', 'can not unmarshal "null"'),
    ('{"stream_name": "S", "config": {"bogus": 1}}', 'json: unknown field "bogus"'),
    ('{"stream_name": "S", "config": {}, "bogus": 1}', 'json: unknown field "bogus"'),
    (
        '{"stream_name": "S", "config": {"durable_name": "d3", "ack_wait": "x"}}',
        "json: cannot unmarshal string into Go struct field CreateConsumerRequest.config.ack_wait of type time.Duration",
    ),
    (
        '{"stream_name": "S", "config": {"durable_name": "d3", "backoff": ["x"]}}',
        "json: cannot unmarshal string into CreateConsumerRequest.config.backoff.0 of type time.Duration",
    ),
    (
        '{"stream_name": "S", "config": {"durable_name": "d3", "opt_start_time": "x"}}',
        'parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"',
    ),
    (
        '{"stream_name": "S", "config": "x"}',
        "json: cannot unmarshal string into Go struct field CreateConsumerRequest.config of type server.ConsumerConfig",
    ),
]


@pytest.mark.parametrize(("body", "text"), DECODE_ERRORS)
def test_consumer_schema_create_request_decode_errors_match_nats(body: str, text: str) -> None:
    with pytest.raises(ApiError) as info:
        jsondecode.decode_request(body.encode(), CreateConsumerRequest)
    assert info.value.to_dict() == {
        "code": 400,
        "err_code": 10025,
        "description": "invalid JSON: " + text,
    }


def test_consumer_schema_create_request_decoding() -> None:
    req = jsondecode.decode_request(
        b'{"stream_name":"S","config":{"deliver_policy":"undefined","backoff":[],"opt_start_time":"2020-01-01T01:00:00+01:00"},"action":"create","pedantic":true}',
        CreateConsumerRequest,
    )
    assert req.action == "create" and req.pedantic
    assert req.config.deliver_policy == "all"  # "undefined" reads as all (captured)
    assert req.config.backoff == [] and req.config.filter_subjects is None
    assert req.config.opt_start_time == "2020-01-01T01:00:00+01:00"  # offset kept (captured)
    empty = jsondecode.decode_request(b'{"stream_name":"S","config":null}', CreateConsumerRequest)
    assert empty.config == ConsumerConfig() and empty.action == ""
    pause = jsondecode.decode_request(b"{}", ConsumerPauseRequest)
    assert pause.pause_until == timestamp.ZERO_TIME


def test_consumer_schema_config_encoding_omits_go_zero_values() -> None:
    assert json.loads(jsonencode.encode(ConsumerConfig())) == {
        "deliver_policy": "all",
        "ack_policy": "none",
        "replay_policy": "instant",
        "num_replicas": 0,
    }
    # pause_until set to the zero time is still written (a non-nil pointer in Go, captured).
    cfg = ConsumerConfig(pause_until=timestamp.ZERO_TIME, backoff=[])
    assert json.loads(jsonencode.encode(cfg))["pause_until"] == "0001-01-01T00:00:00Z"
    assert "backoff" not in json.loads(jsonencode.encode(cfg))
