"""Stream configuration rules (jetstream-api.md 6.1-6.5).

Expected texts and normalised configs were captured from nats-server v2.15.1 started with
``nats-server -js -sd <tmpdir> -p <port> -a 127.0.0.1``, sending the request bodies shown
to ``$JS.API.STREAM.CREATE.<name>`` / ``$JS.API.STREAM.UPDATE.<name>`` with nats-py
(``await nc.request(subject, body)``).
"""

# ruff: noqa: E501  # captured bodies and answers are kept verbatim, one per line

from __future__ import annotations

import json
from typing import Any

import pytest

from shardbroker.jetstream import checks, jsondecode, jsonencode, stream_validate, versioning
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.schema import (
    MsgGetRequest,
    StreamConfig,
    StreamConfigRequest,
    StreamPurgeRequest,
)


def _request(body: str) -> StreamConfigRequest:
    return jsondecode.decode_request(body.encode(), StreamConfigRequest)


def _create(body: str, existing: dict[str, StreamConfig] | None = None) -> StreamConfig:
    """The create path as the API layer runs it."""
    cfg = _request(body)
    stream_validate.check_create_request(cfg.name, cfg)
    return stream_validate.check_stream_config(cfg, max_payload=1 << 20, existing=existing or {})


def _answer_config(cfg: StreamConfig) -> dict[str, Any]:
    shown = versioning.set_dynamic_metadata(cfg, version="2.15.1", api_level=5)
    return json.loads(jsonencode.encode(shown))


def _error(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    return info.value.to_dict()


def _invalid(text: str) -> dict[str, Any]:
    return {"code": 500, "err_code": 10052, "description": text}


# -- defaults (captured "config" objects of create answers) -----------------------------------

DEFAULTS = [
    (
        '{"name": "ORDERS", "subjects": ["orders.*"], "discard": "old", "discard_new_per_subject": false, "max_msgs_per_subject": -1, "max_msg_size": -1, "no_ack": false, "duplicate_window": 0, "sealed": false, "deny_delete": false, "deny_purge": false, "allow_rollup_hdrs": false, "max_age": 0}',
        '{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"DEF","max_msgs":-5,"max_age":1000000000,"placement":{},"compression":"s2","persist_mode":"default","max_msg_size":-7,"max_consumers":0,"description":"x"}',
        '{"name":"DEF","description":"x","subjects":["DEF"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":1000000000,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":1000000000,"compression":"s2","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"DEF2","persist_mode":"async","allow_msg_schedules":true,"subject_delete_marker_ttl":1000000000,"deny_purge":true,"mirror_direct":false,"sources":[],"placement":{"tags":[]}}',
        '{"name":"DEF2","subjects":["DEF2"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"placement":{},"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,"subject_delete_marker_ttl":1000000000,"allow_msg_schedules":true,"persist_mode":"async","metadata":{"_nats.level":"5","_nats.req.level":"2","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"DEF3","subjects":[],"metadata":{},"first_seq":5,"duplicate_window":0,"max_age":200000000}',
        '{"name":"DEF3","subjects":["DEF3"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":200000000,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":200000000,"compression":"none","first_seq":5,"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"CNT","allow_msg_counter":true,"allow_atomic":true,"allow_batched":true}',
        '{"name":"CNT","subjects":["CNT"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"allow_msg_counter":true,"allow_atomic":true,"allow_batched":true,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"MIR","mirror":{"name":"CNT"}}',
        '{"name":"MIR","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"mirror":{"name":"CNT"},"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        # max_msg_size above max_payload (1 MiB) is accepted at create time.
        '{"name":"MS","max_msg_size":2000000}',
        '{"name":"MS","subjects":["MS"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":2000000,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        '{"name":"FULL","description":"d","subjects":["full.>"],"retention":"limits","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1000,"discard":"new","storage":"memory","num_replicas":1,"no_ack":false,"duplicate_window":60000000000,"placement":{"cluster":"c","tags":["t1"]},"compression":"none","first_seq":10,"subject_transform":{"src":"full.>","dest":"full.x.>"},"republish":{"dest":"rp.>","headers_only":true},"allow_direct":true,"discard_new_per_subject":true,"deny_delete":true,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":50},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"metadata":{"k":"v"}}',
        '{"name":"FULL","description":"d","subjects":["full.\\u003e"],"retention":"limits","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1000,"discard":"new","storage":"memory","num_replicas":1,"duplicate_window":60000000000,"placement":{"cluster":"c","tags":["t1"]},"compression":"none","first_seq":10,"subject_transform":{"src":"full.\\u003e","dest":"full.x.\\u003e"},"republish":{"src":"\\u003e","dest":"rp.\\u003e","headers_only":true},"allow_direct":true,"mirror_direct":false,"discard_new_per_subject":true,"sealed":false,"deny_delete":true,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":50},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1","k":"v"}}',
    ),
]


@pytest.mark.parametrize(("body", "answered"), DEFAULTS)
def test_validate_defaults_match_nats(body: str, answered: str) -> None:
    cfg = _create(body)
    shown = versioning.set_dynamic_metadata(cfg, version="2.15.1", api_level=5)
    assert jsonencode.encode(shown).decode() == answered
    assert type(cfg) is StreamConfig  # pedantic is not part of what is stored


def test_validate_defaults_leave_the_input_alone() -> None:
    request = _request('{"name":"X"}')
    stream_validate.check_stream_config(request)
    assert (request.max_msgs, request.subjects, request.metadata) == (0, [], {})


# -- create errors ------------------------------------------------------------------------------

CREATE_ERRORS = [
    (
        '{"name":"V","max_age":1000000000,"duplicate_window":2000000000}',
        _invalid("duplicates window can not be larger then max age"),
    ),
    ('{"name":"V","max_age":50000000}', _invalid("max age needs to be >= 100ms")),
    ('{"name":"V","max_age":-1}', _invalid("max age can not be negative")),
    ('{"name":"V","duplicate_window":-1}', _invalid("duplicates window can not be negative")),
    (
        '{"name":"V","duplicate_window":50000000}',
        _invalid("duplicates window needs to be >= 100ms"),
    ),
    (
        '{"name":"V","discard_new_per_subject":true}',
        _invalid("discard new per subject requires discard new policy to be set"),
    ),
    (
        '{"name":"V","discard_new_per_subject":true,"discard":"new"}',
        _invalid("discard new per subject requires max msgs per subject > 0"),
    ),
    (
        '{"name":"V","subjects":["$JS.API.>"]}',
        _invalid("subjects that overlap with jetstream api require no-ack to be true"),
    ),
    (
        '{"name":"V2","subjects":["$SYS.x"]}',
        _invalid("subjects that overlap with system api require no-ack to be true"),
    ),
    (
        '{"name":"V","subjects":[">"]}',
        _invalid("capturing all subjects requires no-ack to be true"),
    ),
    (
        '{"name":"V","subjects":[">"],"no_ack":true,"num_replicas":3}',
        _invalid("capturing all subjects requires replicas of 1"),
    ),
    ('{"name":"V","subjects":["a.*","a.b"]}', _invalid('subject "a.*" overlaps with "a.b"')),
    ('{"name":"V","subjects":["a","a"]}', _invalid('subject "a" overlaps with "a"')),
    ('{"name":"V","subjects":["a..b"]}', _invalid("invalid subject")),
    ('{"name":"V","subjects":[""]}', _invalid("invalid subject")),
    (
        '{"name":"V","num_replicas":3}',
        {
            "code": 500,
            "err_code": 10074,
            "description": "replicas > 1 not supported in non-clustered mode",
        },
    ),
    ('{"name":"V","num_replicas":6}', _invalid("maximum replicas is 5")),
    (
        '{"name":"V","num_replicas":-1}',
        {"code": 400, "err_code": 10133, "description": "replicas count cannot be negative"},
    ),
    ('{"name":"V","sealed":true}', _invalid("stream configuration for create can not be sealed")),
    (
        '{"name":"V","mirror_direct":true}',
        _invalid("stream has no mirror but does have mirror direct"),
    ),
    (
        '{"name":"V","deny_purge":true,"allow_rollup_hdrs":true}',
        _invalid("roll-ups require the purge permission"),
    ),
    (
        '{"name":"V","subject_delete_marker_ttl":500000000}',
        _invalid("subject delete marker TTL must be at least 1 second"),
    ),
    (
        '{"name":"V","subject_delete_marker_ttl":-1}',
        _invalid("subject delete marker TTL must not be negative"),
    ),
    (
        '{"name":"V","subjects":["v.>"],"republish":{"dest":"v.x"}}',
        _invalid("stream configuration for republish destination forms a cycle"),
    ),
    (
        '{"name":"V","placement":{"preferred":"x"}}',
        _invalid("preferred server not permitted in placement"),
    ),
    (
        '{"name":"V","persist_mode":"async","storage":"memory"}',
        _invalid("async persist mode is only supported on file storage"),
    ),
    (
        '{"name":"V","pedantic":true,"max_msgs":-5}',
        {
            "code": 400,
            "err_code": 10157,
            "description": "pedantic mode: max_msgs must be set to -1",
        },
    ),
    (
        '{"name":"V","pedantic":true,"max_age":1000000000}',
        {
            "code": 400,
            "err_code": 10157,
            "description": "pedantic mode: duplicate window cannot be bigger than max age",
        },
    ),
    (
        '{"name":"V","pedantic":true,"subject_delete_marker_ttl":1000000000}',
        _invalid("subject delete marker cannot be set if message TTLs are disabled"),
    ),
    (
        '{"name":"V","mirror":{"name":"OTHER"},"subjects":["x"]}',
        {"code": 400, "err_code": 10034, "description": "stream mirrors can not contain subjects"},
    ),
    (
        '{"name":"WQ","retention":"workqueue","allow_msg_counter":true}',
        _invalid("counter stream can only use limits retention"),
    ),
    (
        '{"name":"T9","sources":[null]}',
        {"code": 400, "err_code": 10141, "description": "sourced stream name is invalid"},
    ),
    # An empty body decodes to an empty name: the subject does not match it.
    (
        "",
        {
            "code": 400,
            "err_code": 10056,
            "description": "stream name in subject does not match request",
        },
    ),
]


@pytest.mark.parametrize(("body", "answered"), CREATE_ERRORS)
def test_validate_create_errors_match_nats(body: str, answered: dict[str, Any]) -> None:
    cfg = _request(body)
    subject_name = cfg.name or "X"

    def create() -> None:
        stream_validate.check_create_request(subject_name, cfg)
        stream_validate.check_stream_config(cfg)

    assert _error(create) == answered


@pytest.mark.parametrize(
    ("body", "answered"),
    [
        # Rules of the reference checkStreamCfg that clients cannot reach through the
        # API subject, or that are rarely met; texts from server/stream.go.
        (
            '{"name":"a.b"}',
            _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'"),
        ),
        (
            '{"name":"a b"}',
            _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'"),
        ),
        (
            '{"name":"' + "n" * 256 + '"}',
            _invalid("stream name is too long, maximum allowed is 255"),
        ),
        (
            '{"name":"X","description":"' + "d" * 4097 + '"}',
            _invalid("stream description is too long, maximum allowed is 4096"),
        ),
        (
            '{"name":"X","metadata":{"k":"' + "v" * 131072 + '"}}',
            _invalid("stream metadata exceeds maximum size of 131072 bytes"),
        ),
        (
            '{"name":"X","allow_msg_counter":true,"discard":"new"}',
            _invalid("counter stream cannot use discard new"),
        ),
        (
            '{"name":"X","allow_msg_counter":true,"allow_msg_ttl":true}',
            _invalid("counter stream cannot use message TTLs"),
        ),
        (
            '{"name":"X","allow_msg_counter":true,"allow_msg_schedules":true}',
            _invalid("counter stream cannot use message schedules"),
        ),
        (
            '{"name":"X","allow_msg_schedules":true,"discard":"new"}',
            _invalid("message scheduling cannot use discard new"),
        ),
        (
            '{"name":"X","allow_msg_schedules":true,"pedantic":true}',
            _invalid("message scheduling cannot be set if roll-ups are disabled"),
        ),
        (
            '{"name":"X","subject_delete_marker_ttl":1000000000,"allow_msg_ttl":true,"pedantic":true}',
            _invalid("subject delete marker cannot be set if roll-ups are disabled"),
        ),
        (
            '{"name":"X","persist_mode":"async","allow_atomic":true}',
            _invalid("async persist mode is not supported with atomic batch publish"),
        ),
        (
            '{"name":"X","pedantic":true,"max_bytes":-2}',
            {
                "code": 400,
                "err_code": 10157,
                "description": "pedantic mode: max_bytes must be set to -1",
            },
        ),
        (
            '{"name":"X","pedantic":true,"max_msgs_per_subject":-2}',
            {
                "code": 400,
                "err_code": 10157,
                "description": "pedantic mode: max_msgs_per_subject must be set to -1",
            },
        ),
        (
            '{"name":"X","pedantic":true,"max_msg_size":-2}',
            {
                "code": 400,
                "err_code": 10157,
                "description": "pedantic mode: max_msg_size must be set to -1",
            },
        ),
        (
            '{"name":"X","pedantic":true,"max_consumers":-2}',
            {
                "code": 400,
                "err_code": 10157,
                "description": "pedantic mode: max_consumers must be set to -1",
            },
        ),
        (
            '{"name":"X","pedantic":true,"republish":{"dest":"r.>"}}',
            {
                "code": 400,
                "err_code": 10157,
                "description": "pedantic mode: republish source can not be empty",
            },
        ),
        (
            '{"name":"X","subjects":["x"],"subject_transform":{"src":"a..b","dest":"c"}}',
            {
                "code": 400,
                "err_code": 10155,
                "description": "stream transform source: invalid subject a..b",
            },
        ),
        (
            '{"name":"X","mirror":{"name":"A"},"first_seq":3}',
            {
                "code": 400,
                "err_code": 10143,
                "description": "stream mirrors can not have first sequence configured",
            },
        ),
        (
            '{"name":"X","mirror":{"name":"A"},"sources":[{"name":"B"}]}',
            {
                "code": 400,
                "err_code": 10031,
                "description": "stream mirrors can not also contain other sources",
            },
        ),
        (
            '{"name":"X","mirror":{"name":"A"},"subject_delete_marker_ttl":1000000000}',
            _invalid("subject delete markers forbidden on mirrors"),
        ),
        (
            '{"name":"X","mirror":{"name":"a.b"}}',
            {"code": 400, "err_code": 10142, "description": "mirrored stream name is invalid"},
        ),
        (
            '{"name":"X","mirror":{"name":"A","filter_subject":"x","subject_transforms":[{"src":"y","dest":"z"}]}}',
            {
                "code": 400,
                "err_code": 10150,
                "description": "mirror with multiple subject transforms cannot also have a single subject filter",
            },
        ),
        (
            '{"name":"X","sources":[{"name":"A"},{"name":"A"}]}',
            {
                "code": 400,
                "err_code": 10140,
                "description": "duplicate source configuration detected",
            },
        ),
        (
            '{"name":"X","sources":[{"name":"A","filter_subject":"a"},{"name":"A","filter_subject":"b"}]}',
            None,
        ),
        (
            '{"name":"X","sources":[{"name":"A","external":{"api":"$JS.API","deliver":"d"}}]}',
            {
                "code": 400,
                "err_code": 10021,
                "description": "stream external api prefix $JS.API must not overlap with $JS.API",
            },
        ),
        (
            '{"name":"X","sources":[{"name":"A","external":{"api":"$JS.hub.API","deliver":"d.*"}}]}',
            {
                "code": 400,
                "err_code": 10024,
                "description": "stream external delivery prefix d.* must not contain wildcards",
            },
        ),
        ('{"name":"X","sources":[{"name":"X"}]}', _invalid("detected cycle")),
    ],
)
def test_validate_config_rules_from_nats_source(body: str, answered: dict[str, Any] | None) -> None:
    cfg = _request(body)
    if answered is None:
        stream_validate.check_stream_config(cfg)
        return
    assert _error(stream_validate.check_stream_config, cfg) == answered


def test_validate_sealed_create_is_refused_before_the_config_is_checked() -> None:
    # nats-server checks sealed (and mirror_direct) in the handler, before the config.
    cfg = _request('{"name":"V","sealed":true,"max_age":-1}')
    answered = _error(stream_validate.check_create_request, "V", cfg)
    assert answered == _invalid("stream configuration for create can not be sealed")


def test_validate_name_in_subject() -> None:
    assert _error(stream_validate.check_stream_mismatch, "A", "B") == {
        "code": 400,
        "err_code": 10056,
        "description": "stream name in subject does not match request",
    }
    assert _error(stream_validate.check_stream_name_token, "a/b") == {
        "code": 400,
        "err_code": 10128,
        "description": "Stream name can not contain path separators",
    }
    stream_validate.check_stream_name_token("ORDERS")
    stream_validate.check_stream_mismatch("ORDERS", "ORDERS")


@pytest.mark.parametrize(
    ("name", "valid"),
    [("ORDERS", True), ("KV_b-1", True), ("", False), ("a.b", False), ("a*", False), ("a>", False),
     ("a b", False), ("a\tb", False), ("a\\b", False), ("a/b", False), ("\u00e9", True)],
)  # fmt: skip
def test_validate_asset_names(name: str, valid: bool) -> None:
    assert checks.is_valid_asset_name(name) is valid


def test_validate_subject_exceptions_for_reserved_spaces() -> None:
    for body in (
        '{"name":"V","subjects":["$JS.EVENT.foo"]}',  # captured: accepted
        '{"name":"V3","subjects":["$SYS.ACCOUNT.x"]}',  # captured: accepted
        '{"name":"V","subjects":["$JS.API.>"],"no_ack":true}',
        '{"name":"V","subjects":[">"],"no_ack":true}',
    ):
        cfg = _create(body)
        assert cfg.subjects == _request(body).subjects


# -- existing streams -----------------------------------------------------------------------------


def test_validate_subject_overlap_with_another_stream() -> None:
    existing = {"ORDERS": _create('{"name":"ORDERS","subjects":["orders.*"]}')}
    assert _error(_create, '{"name":"OTHER","subjects":["orders.new"]}', existing) == {
        "code": 400,
        "err_code": 10065,
        "description": "subjects overlap with an existing stream",
    }
    # A stream named like the other's subject: captured (W with subject "V" next to V).
    _create('{"name":"W","subjects":["x.>"]}', existing)


def test_validate_create_again_same_config_is_idempotent() -> None:
    stored = _create('{"name":"ORDERS","subjects":["orders.*"]}')
    again = _create('{"name":"ORDERS","subjects":["orders.*"],"max_msgs":0}', {"ORDERS": stored})
    assert again == stored
    assert stream_validate.same_config(stored, again)


def test_validate_create_again_different_config() -> None:
    stored = _create('{"name":"U3","subjects":["u3"],"consumer_limits":{"max_ack_pending":10}}')
    body = '{"name":"U3","subjects":["u3"],"consumer_limits":{"max_ack_pending":11}}'
    assert _error(_create, body, {"U3": stored}) == {
        "code": 400,
        "err_code": 10058,
        "description": "stream name already in use with a different configuration",
    }


def test_validate_name_in_use_comes_before_overlap() -> None:
    # Captured: recreating U3 with a subject that collides with U's answers 10058.
    existing = {
        "U": _create('{"name":"U","subjects":["u.>"]}'),
        "U3": _create('{"name":"U3","subjects":["u3"]}'),
    }
    assert _error(_create, '{"name":"U3","subjects":["u.x"]}', existing)["err_code"] == 10058
    assert _error(_create, '{"name":"U4","subjects":["u3"]}', existing)["err_code"] == 10065


def test_validate_mirror_takes_direct_get_from_its_origin() -> None:
    origin = _create('{"name":"O","subjects":["o"],"allow_direct":true}')
    mirror = _create('{"name":"M","mirror":{"name":"O"}}', {"O": origin})
    assert mirror.mirror_direct is True
    pedantic = '{"name":"M","mirror":{"name":"O"},"pedantic":true}'
    assert _error(_create, pedantic, {"O": origin}) == {
        "code": 400,
        "err_code": 10157,
        "description": "pedantic mode: origin stream has direct get set, mirror has it disabled",
    }


def test_validate_source_max_msg_size_must_cover_origin() -> None:
    origin = _create('{"name":"O","subjects":["o"],"max_msg_size":100}')
    body = '{"name":"S","sources":[{"name":"O"}],"max_msg_size":50}'
    assert _error(_create, body, {"O": origin}) == {
        "code": 400,
        "err_code": 10046,
        "description": "stream source must have max message size >= target",
    }


def test_validate_source_cycle_through_other_streams() -> None:
    a = _create('{"name":"A","subjects":["a"]}')
    b = _create('{"name":"B","sources":[{"name":"A"}]}', {"A": a})
    # C -> B -> A: a chain, no cycle.
    _create('{"name":"C","subjects":["c"],"sources":[{"name":"B"}]}', {"A": a, "B": b})
    # A -> B -> A: a cycle.
    assert _error(
        _create, '{"name":"A","subjects":["a"],"sources":[{"name":"B"}]}', {"B": b}
    ) == _invalid("detected cycle")
    # A mirror of a stream that mirrors it back.
    m = _create('{"name":"M","mirror":{"name":"N"}}')
    assert _error(_create, '{"name":"N","mirror":{"name":"M"}}', {"M": m}) == _invalid(
        "detected cycle"
    )


# -- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "level"),
    [
        ('{"name":"X"}', "0"),
        ('{"name":"X","allow_msg_ttl":true}', "1"),
        ('{"name":"X","subject_delete_marker_ttl":1000000000}', "1"),
        ('{"name":"X","allow_msg_counter":true}', "2"),
        ('{"name":"X","allow_atomic":true}', "2"),
        ('{"name":"X","allow_msg_schedules":true}', "2"),
        ('{"name":"X","persist_mode":"async"}', "2"),
        ('{"name":"X","allow_batched":true}', "4"),
    ],
)
def test_validate_required_api_level(body: str, level: str) -> None:
    assert _create(body).metadata == {"_nats.req.level": level}


def test_validate_static_metadata_replaces_what_the_client_sent() -> None:
    # Captured: {"metadata":{"_nats.req.level":"9","_nats.ver":"x"}} is stored as level 0.
    cfg = _create('{"name":"DEF3","metadata":{"_nats.req.level":"9","_nats.ver":"x","k":"v"}}')
    assert cfg.metadata == {"_nats.req.level": "0", "k": "v"}
    assert _answer_config(cfg)["metadata"] == {
        "_nats.level": "5",
        "_nats.req.level": "0",
        "_nats.ver": "2.15.1",
        "k": "v",
    }


def test_validate_copy_metadata_for_comparison() -> None:
    prev = StreamConfig(name="X", metadata={"_nats.req.level": "1"})
    new = StreamConfig(name="X", metadata={"_nats.req.level": "0", "_nats.ver": "2", "k": "v"})
    assert versioning.copy_metadata(new, prev).metadata == {"k": "v", "_nats.req.level": "1"}
    assert versioning.copy_metadata(new, StreamConfig(name="X")).metadata == {"k": "v"}


# -- update -------------------------------------------------------------------------------------


def _update(old: StreamConfig, body: str, **kwargs: Any) -> StreamConfig:
    return stream_validate.check_stream_update(old, _request(body), max_payload=1 << 20, **kwargs)


U = '{"name":"U","subjects":["u.>"],"allow_msg_ttl":true,"deny_delete":true,"deny_purge":true'

UPDATE_ERRORS = [
    (
        U + ',"deny_delete":false}',
        _invalid("stream configuration update can not cancel deny message deletes"),
    ),
    (U + ',"deny_purge":false}', _invalid("stream configuration update can not cancel deny purge")),
    (U + ',"allow_msg_ttl":false}', _invalid("message TTL status can not be disabled")),
    (U + ',"allow_msg_counter":true}', _invalid("counter stream cannot use message TTLs")),
    (
        U + ',"storage":"memory"}',
        _invalid("stream configuration update can not change storage type"),
    ),
    (
        U + ',"retention":"workqueue"}',
        _invalid("stream configuration update can not change retention policy to/from workqueue"),
    ),
    (
        U + ',"num_replicas":3}',
        {
            "code": 500,
            "err_code": 10074,
            "description": "replicas > 1 not supported in non-clustered mode",
        },
    ),
    (
        U + ',"persist_mode":"async"}',
        _invalid("stream configuration update can not change persist mode"),
    ),
    (
        U + ',"mirror":{"name":"Q"},"subjects":[]}',
        {
            "code": 400,
            "err_code": 10055,
            "description": "stream mirror configuration can not be updated",
        },
    ),
    ('{"name":"U2","subjects":["u.>"]}', _invalid("stream configuration name must match original")),
    # An empty update body fails on the name rule (captured: $JS.API.STREAM.UPDATE.V with no body).
    ("", _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")),
]


@pytest.mark.parametrize(("body", "answered"), UPDATE_ERRORS)
def test_validate_update_errors_match_nats(body: str, answered: dict[str, Any]) -> None:
    old = _create(U + "}")
    assert _error(_update, old, body) == answered


def test_validate_update_retention_limits_to_interest() -> None:
    old = _create(U + "}")
    new = _update(old, U + ',"retention":"interest"}')
    assert new.retention == "interest"


def test_validate_update_seal_forces_read_only_settings() -> None:
    # Captured: the duplicate window is derived from max_age before sealing clears it.
    old = _create(U + "}")
    sealed = _update(old, U + ',"sealed":true,"max_age":5000000000,"discard":"old"}')
    assert _answer_config(sealed) == json.loads(
        '{"name":"U","subjects":["u.\\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"file","num_replicas":1,"duplicate_window":5000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":true,"deny_delete":true,"deny_purge":true,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":true,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"}}'
    )
    assert _error(_update, sealed, U + "}") == _invalid(
        "stream configuration update can not unseal a sealed stream"
    )


def test_validate_update_message_schedules_cannot_be_disabled() -> None:
    old = _create('{"name":"U2","subjects":["u2"],"allow_msg_schedules":true}')
    assert _error(_update, old, '{"name":"U2","subjects":["u2"]}') == _invalid(
        "message schedules can not be disabled"
    )


def test_validate_update_consumer_limits_below_a_consumer() -> None:
    # Captured: consumer c1 inherited max_ack_pending 10 from the stream's limits.
    old = _create('{"name":"U3","subjects":["u3"],"consumer_limits":{"max_ack_pending":10}}')
    body = '{"name":"U3","subjects":["u3"],"consumer_limits":{"max_ack_pending":5}}'
    consumers = [("c1", 0, 10), ("c2", 0, 5), ("c3", 0, 7)]
    assert _error(_update, old, body, consumers=consumers) == {
        "code": 500,
        "err_code": 10069,
        "description": "change to limits violates consumers: c1, c3",
    }
    same = '{"name":"U3","subjects":["u3"],"consumer_limits":{"max_ack_pending":10}}'
    _update(old, same, consumers=consumers)


def test_validate_update_subject_overlap_with_another_stream() -> None:
    old = _create('{"name":"U2","subjects":["u2"]}')
    existing = {"U": _create(U + "}"), "U2": old}
    assert _error(_update, old, '{"name":"U2","subjects":["u.x"]}', existing=existing) == {
        "code": 400,
        "err_code": 10065,
        "description": "subjects overlap with an existing stream",
    }
    assert _update(old, '{"name":"U2","subjects":["u2","v2"]}', existing=existing).subjects == [
        "u2",
        "v2",
    ]


def test_validate_update_keeps_required_level_current() -> None:
    old = _create('{"name":"X"}')
    new = _update(old, '{"name":"X","allow_msg_ttl":true}')
    assert new.metadata == {"_nats.req.level": "1"}


# -- request checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ('{"seq":1}', True),
        ('{"last_by_subj":"a.>"}', True),
        ('{"next_by_subj":"a","seq":5}', True),
        ('{"next_by_subj":"a"}', True),
        ('{"start_time":"2026-01-01T00:00:00Z"}', True),
        ('{"start_time":"2026-01-01T00:00:00Z","next_by_subj":"a"}', True),
        ("{}", False),  # captured: 10003
        ('{"seq":1,"batch":2}', False),
        ('{"seq":1,"max_bytes":2}', False),
        ('{"seq":1,"last_by_subj":"a"}', False),
        ('{"seq":1,"start_time":"2026-01-01T00:00:00Z"}', False),
        ('{"last_by_subj":"a","start_time":"2026-01-01T00:00:00Z"}', False),
        ('{"last_by_subj":"a","next_by_subj":"b"}', False),
    ],
)
def test_validate_msg_get_request(body: str, ok: bool) -> None:
    request = jsondecode.decode_request(body.encode(), MsgGetRequest)
    if ok:
        stream_validate.check_msg_get_request(request)
    else:
        assert _error(stream_validate.check_msg_get_request, request) == {
            "code": 400,
            "err_code": 10003,
            "description": "bad request",
        }


def test_validate_purge_request() -> None:
    # Captured: {"seq":2,"keep":1} -> 10003.
    assert _error(stream_validate.check_purge_request, StreamPurgeRequest(seq=2, keep=1)) == {
        "code": 400,
        "err_code": 10003,
        "description": "bad request",
    }
    stream_validate.check_purge_request(StreamPurgeRequest(seq=2, filter="a"))
    stream_validate.check_purge_request(StreamPurgeRequest(keep=1, filter="a"))
