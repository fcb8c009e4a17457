"""Consumer create rules, defaults, updates and MSG.NEXT checks (jetstream-api.md 8, semantics 10.2).

The transcripts below were captured from nats-server v2.15.1 started with
``nats-server -js -sd <tmpdir> -a 127.0.0.1 -p <port>``: each request body was sent with
nats-py (``await nc.request(subject, body)``) in the order listed, on one fresh server per
transcript, and the answer's ``error`` object, or its ``config`` object, was kept verbatim.
``<c*N>`` stands for the character c repeated N times. MSG.NEXT status lines were captured
with a raw socket (``PUB $JS.API.CONSUMER.MSG.NEXT.S.<c> _IN.<n> <len>``, the HMSG header
block read back).
"""

# ruff: noqa: E501  # captured bodies and answers are kept verbatim, one per line

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest

from shardbroker.jetstream import (
    consumer_validate,
    jsondecode,
    jsonencode,
    stream_validate,
    versioning,
)
from shardbroker.jetstream.consumer_schema import (
    ConsumerConfig,
    CreateConsumerRequest,
)
from shardbroker.jetstream.consumer_validate import ConsumerLimits, NextRequestError
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.schema import (
    StreamConfig,
    StreamConfigRequest,
)

# -- captured transcripts -----------------------------------------------------------------
# (subject, request body, answer): the answer is "" for a stream create (not compared),
# the error object for a refusal, else the answer's config (with the dynamic metadata).

LIMITS_AND_DEFAULTS = [
    ("$JS.API.STREAM.CREATE.S", '{"name": "S", "subjects": ["s.>"]}', ""),
    ("$JS.API.STREAM.CREATE.W", '{"name": "W", "subjects": ["w.>"], "retention": "workqueue"}', ""),
    ("$JS.API.STREAM.CREATE.I", '{"name": "I", "subjects": ["i.>"], "retention": "interest"}', ""),
    (
        "$JS.API.STREAM.CREATE.L",
        '{"name": "L", "subjects": ["l.>"], "consumer_limits": {"inactive_threshold": 10000000000, "max_ack_pending": 50}, "max_consumers": 2}',
        "",
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.pull1",
        '{"stream_name": "S", "config": {"name": "pull1", "ack_policy": "explicit"}}',
        '{"name":"pull1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.pull2",
        '{"stream_name": "S", "config": {"name": "pull2"}}',
        '{"name":"pull2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"deliver_subject": "dlv.1"}}',
        '{"deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","deliver_subject":"dlv.1","inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {}}',
        '{"deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.dur1",
        '{"stream_name": "S", "config": {"durable_name": "dur1", "deliver_subject": "dlv.2", "ack_policy": "all"}}',
        '{"durable_name":"dur1","name":"dur1","deliver_policy":"all","ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"deliver_subject":"dlv.2","num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.dur2.s.a",
        '{"stream_name": "S", "config": {"durable_name": "dur2", "filter_subject": "s.a", "ack_policy": "explicit"}}',
        '{"durable_name":"dur2","name":"dur2","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"filter_subject":"s.a","replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.l1",
        '{"stream_name": "L", "config": {"name": "l1", "ack_policy": "explicit"}}',
        '{"name":"l1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":10000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.l2",
        '{"stream_name": "L", "config": {"durable_name": "l2", "ack_policy": "none"}}',
        '{"durable_name":"l2","name":"l2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":10000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.l3",
        '{"stream_name": "L", "config": {"durable_name": "l3"}}',
        '{"code":400,"err_code":10026,"description":"maximum consumers limit reached"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.full",
        '{"stream_name": "S", "config": {"durable_name": "full", "name": "full", "description": "d", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T00:00:00+01:00", "ack_policy": "explicit", "ack_wait": 5000000000, "max_deliver": 5, "backoff": [1000000000, 2000000000], "filter_subjects": ["s.a", "s.b.>"], "replay_policy": "original", "rate_limit_bps": 1000, "sample_freq": "50%", "max_ack_pending": 20, "flow_control": true, "headers_only": true, "deliver_subject": "dlv.full", "deliver_group": "g", "idle_heartbeat": 1000000000, "inactive_threshold": 60000000000, "num_replicas": 1, "mem_storage": true, "metadata": {"k": "v", "a": "<b>"}, "pause_until": "2099-01-01T00:00:00Z"}}',
        '{"durable_name":"full","name":"full","description":"d","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T00:00:00+01:00","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"filter_subjects":["s.a","s.b.>"],"replay_policy":"original","rate_limit_bps":1000,"sample_freq":"50%","max_ack_pending":20,"flow_control":true,"headers_only":true,"deliver_subject":"dlv.full","deliver_group":"g","idle_heartbeat":1000000000,"inactive_threshold":60000000000,"num_replicas":1,"mem_storage":true,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1","a":"<b>","k":"v"},"pause_until":"2099-01-01T00:00:00Z"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.fp.s.x",
        '{"stream_name": "S", "config": {"durable_name": "fp", "deliver_policy": "by_start_sequence", "opt_start_seq": 3, "ack_policy": "all", "max_waiting": 10, "max_batch": 5, "max_expires": 2000000000, "max_bytes": 1024, "filter_subject": "s.x", "priority_groups": ["g1"], "priority_policy": "pinned_client", "direct": false}}',
        '{"durable_name":"fp","name":"fp","deliver_policy":"by_start_sequence","opt_start_seq":3,"ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"filter_subject":"s.x","replay_policy":"instant","max_waiting":10,"max_ack_pending":1000,"max_batch":5,"max_expires":2000000000,"max_bytes":1024,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"priority_groups":["g1"],"priority_policy":"pinned_client","priority_timeout":120000000000}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.ov",
        '{"stream_name": "S", "config": {"name": "ov", "priority_groups": ["A"], "priority_policy": "overflow", "priority_timeout": 1000}}',
        '{"name":"ov","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"priority_groups":["A"],"priority_policy":"overflow","priority_timeout":1000}',
    ),
]
ERRORS = [
    ("$JS.API.STREAM.CREATE.S", '{"name": "S", "subjects": ["s.>"]}', ""),
    ("$JS.API.STREAM.CREATE.W", '{"name": "W", "subjects": ["w.>"], "retention": "workqueue"}', ""),
    ("$JS.API.STREAM.CREATE.I", '{"name": "I", "subjects": ["i.>"], "retention": "interest"}', ""),
    (
        "$JS.API.STREAM.CREATE.L",
        '{"name": "L", "subjects": ["l.>"], "consumer_limits": {"inactive_threshold": 10000000000, "max_ack_pending": 50}}',
        "",
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"durable_name": "d"}}',
        '{"code":400,"err_code":10020,"description":"consumer expected to be ephemeral but a durable name was set in request"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c1",
        '{"stream_name": "S", "config": {"durable_name": "x"}}',
        '{"code":400,"err_code":10017,"description":"consumer name in subject does not match durable name in request"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c1",
        '{"stream_name": "S", "config": {"name": "other"}}',
        '{"name":"c1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.c2",
        '{"stream_name": "S", "config": {}}',
        '{"code":400,"err_code":10018,"description":"consumer expected to be durable but a durable name was not set"}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.c2",
        '{"stream_name": "S", "config": {"durable_name": "x"}}',
        '{"code":400,"err_code":10017,"description":"consumer name in subject does not match durable name in request"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c3.s.a",
        '{"stream_name": "S", "config": {"filter_subject": "s.b"}}',
        '{"code":400,"err_code":10131,"description":"Consumer create request did not match filtered subject from create subject"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c3.s.a",
        '{"stream_name": "S", "config": {}}',
        '{"code":400,"err_code":10131,"description":"Consumer create request did not match filtered subject from create subject"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c3.s.a",
        '{"stream_name": "S", "config": {"filter_subjects": ["s.a"]}}',
        '{"code":400,"err_code":10137,"description":"consumer with multiple subject filters cannot use subject based API"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c3",
        '{"stream_name": "X", "config": {}}',
        '{"code":400,"err_code":10056,"description":"stream name in subject does not match request"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c3",
        "",
        '{"code":400,"err_code":10056,"description":"stream name in subject does not match request"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"name": "a/b"}}',
        '{"code":400,"err_code":10127,"description":"Consumer name can not contain path separators"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"name": "a.b"}}',
        "{\"code\":500,\"err_code\":10052,\"description\":\"consumer name can not contain '.', '*', '>', '\\\\', '/'\"}",
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"num_replicas": 2}}',
        '{"code":500,"err_code":10074,"description":"replicas > 1 not supported in non-clustered mode"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"num_replicas": -1}}',
        '{"code":400,"err_code":10133,"description":"replicas count cannot be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.NOPE.c4",
        '{"stream_name": "NOPE", "config": {}}',
        '{"code":404,"err_code":10059,"description":"stream not found"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {}, "action": "bogus"}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: unknown consumer action: \\"bogus\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {}, "action": null}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: unknown consumer action: null"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {}, "action": 5}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: unknown consumer action: 5"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"priority_policy": "bogus"}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: unknown priority policy: \\"bogus\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"deliver_policy": "undefined"}}',
        '{"name":"c4","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"deliver_policy": "ALL"}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: can not unmarshal \\"\\\\\\"ALL\\\\\\"\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"ack_policy": null}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: can not unmarshal \\"null\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {"bogus": 1}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \\"bogus\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": null}',
        '{"name":"c4","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.c4",
        '{"stream_name": "S", "config": {}, "bogus": 1}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \\"bogus\\""}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.<d*256>",
        '{"stream_name": "S", "config": {"durable_name": "<d*256>"}}',
        '{"code":400,"err_code":10102,"description":"consumer name is too long, maximum allowed is 255"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.<n*256>",
        '{"stream_name": "S", "config": {}}',
        '{"code":500,"err_code":10012,"description":"error creating store for consumer"}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.a*",
        '{"stream_name": "S", "config": {"durable_name": "a*"}}',
        "{\"code\":500,\"err_code\":10052,\"description\":\"consumer name can not contain '.', '*', '>', '\\\\', '/'\"}",
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "backoff": [-1]}}',
        '{"code":400,"err_code":10184,"description":"consumer backoff needs to be positive"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_wait": -1}}',
        '{"code":400,"err_code":10183,"description":"consumer ack wait needs to be positive"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control"}}',
        '{"code":400,"err_code":10218,"description":"flow control ack policy requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1"}}',
        '{"name":"e1","deliver_policy":"all","ack_policy":"flow_control","max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"flow_control":true,"deliver_subject":"fc.1","idle_heartbeat":1000000000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1"}, "pedantic": true}',
        '{"code":400,"err_code":10219,"description":"flow control ack policy requires flow control"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1", "flow_control": true, "idle_heartbeat": 1000000000}, "pedantic": true}',
        '{"name":"e1","deliver_policy":"all","ack_policy":"flow_control","max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"flow_control":true,"deliver_subject":"fc.1","idle_heartbeat":1000000000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1", "ack_wait": 5}}',
        '{"code":400,"err_code":10221,"description":"flow control ack policy requires unset ack wait"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1", "max_deliver": 5}}',
        '{"code":400,"err_code":10222,"description":"flow control ack policy requires unset max deliver"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "flow_control", "deliver_subject": "fc.1", "max_ack_pending": -1}}',
        '{"code":400,"err_code":10220,"description":"flow control ack policy requires max ack pending"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "backoff": [1, 2, 3], "max_deliver": 2}}',
        '{"code":400,"err_code":10116,"description":"max deliver is required to be > length of backoff values"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "description": "<x*4097>"}}',
        '{"code":400,"err_code":10107,"description":"consumer description is too long, maximum allowed is 4096"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "a.*"}}',
        '{"code":400,"err_code":10079,"description":"consumer deliver subject has wildcards"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "a..b"}}',
        '{"code":400,"err_code":10112,"description":"invalid push consumer deliver subject"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "s.x"}}',
        '{"code":400,"err_code":10081,"description":"consumer deliver subject forms a cycle"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": ">"}}',
        '{"code":400,"err_code":10079,"description":"consumer deliver subject has wildcards"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "d.1", "max_waiting": 5}}',
        '{"code":400,"err_code":10080,"description":"consumer in push mode can not set max waiting"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "d.1", "max_ack_pending": 5}}',
        '{"code":400,"err_code":10082,"description":"consumer requires ack policy for max ack pending"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "d.1", "idle_heartbeat": 50000000}}',
        '{"code":400,"err_code":10083,"description":"consumer idle heartbeat needs to be >= 100ms"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.e1",
        '{"stream_name": "W", "config": {"name": "e1"}}',
        '{"code":400,"err_code":10084,"description":"consumer in pull mode requires explicit ack policy on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "rate_limit_bps": 5}}',
        '{"code":400,"err_code":10086,"description":"consumer in pull mode can not have rate limit set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_waiting": -5}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_waiting": -5}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_waiting must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "idle_heartbeat": 1000000000}}',
        '{"code":400,"err_code":10088,"description":"consumer idle heartbeat requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "flow_control": true}}',
        '{"code":400,"err_code":10089,"description":"consumer flow control requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_batch": -1}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_expires": 500000}}',
        '{"code":400,"err_code":10115,"description":"consumer max request expires needs to be >= 1ms"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.e1",
        '{"stream_name": "L", "config": {"name": "e1", "max_ack_pending": 51}}',
        '{"code":400,"err_code":10121,"description":"consumer max ack pending exceeds system limit of 50"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.e1",
        '{"stream_name": "L", "config": {"name": "e1", "inactive_threshold": 11000000000}}',
        '{"code":400,"err_code":10153,"description":"consumer inactive threshold exceeds system limit of 10s"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.e1",
        '{"stream_name": "L", "config": {"name": "e1", "inactive_threshold": 1500000000}}',
        '{"name":"e1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":1500000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "direct": true}}',
        '{"code":400,"err_code":10090,"description":"consumer direct requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"durable_name": "e1", "direct": true, "deliver_subject": "d.2"}}',
        '{"code":400,"err_code":10091,"description":"consumer direct requires an ephemeral consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subject": "s.a", "filter_subjects": ["s.b"]}}',
        '{"code":400,"err_code":10136,"description":"consumer cannot have both FilterSubject and FilterSubjects specified"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subject": "s..a"}}',
        '{"code":500,"err_code":10052,"description":"invalid subject"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subjects": ["s.a", ""]}}',
        '{"code":400,"err_code":10139,"description":"consumer filter in FilterSubjects cannot be empty"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subjects": ["s.a", "s.*"]}}',
        '{"code":400,"err_code":10138,"description":"consumer subject filters cannot overlap"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subjects": ["s.a", "s..b"]}}',
        '{"code":500,"err_code":10052,"description":"invalid subject"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subject": "x.y"}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "filter_subject": ">"}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "all", "opt_start_seq": 1}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver all, but optional start sequence is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "all", "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver all, but optional start time is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "last", "opt_start_seq": 1}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last, but optional start sequence is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "last", "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last, but optional start time is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "last_per_subject", "opt_start_seq": 1}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last per subject, but optional start sequence is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "last_per_subject", "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last per subject, but optional start time is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "last_per_subject"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last per subject, but optional filter subject is not set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "new", "opt_start_seq": 1}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver new, but optional start sequence is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "new", "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver new, but optional start time is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "by_start_sequence"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver by start sequence, but optional start sequence is not set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "by_start_sequence", "opt_start_seq": 1, "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver by start sequence, but optional start time is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "by_start_time"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver by start time, but optional start time is not set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_policy": "by_start_time", "opt_start_seq": 1, "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver by start time, but optional start start sequence is also set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "sample_freq": "abc"}}',
        '{"code":400,"err_code":10095,"description":"failed to parse consumer sampling configuration: strconv.Atoi: parsing \\"abc\\": invalid syntax"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "sample_freq": "-5"}}',
        '{"code":400,"err_code":10095,"description":"failed to parse consumer sampling configuration: <nil>"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "sample_freq": "5%%"}}',
        '{"code":400,"err_code":10095,"description":"failed to parse consumer sampling configuration: strconv.Atoi: parsing \\"5%\\": invalid syntax"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "sample_freq": ""}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "deliver_subject": "d.3", "flow_control": true}}',
        '{"code":400,"err_code":10108,"description":"consumer with flow control also needs heartbeats"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "metadata": {"k": "<x*131072>"}}}',
        '{"code":400,"err_code":10135,"description":"consumer metadata exceeds maximum size of 128KB"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_policy": "overflow", "priority_groups": ["A"], "deliver_subject": "d.4"}}',
        '{"code":400,"err_code":10178,"description":"priority groups can not be used with push consumers"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_policy": "overflow"}}',
        '{"code":400,"err_code":10159,"description":"Setting PriorityPolicy requires at least one PriorityGroup to be set"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_policy": "overflow", "priority_groups": [""]}}',
        '{"code":400,"err_code":10161,"description":"Group name cannot be an empty string"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_policy": "overflow", "priority_groups": ["bad group"]}}',
        '{"code":400,"err_code":10162,"description":"Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_policy": "overflow", "priority_groups": ["abcdefghijklmnopq"]}}',
        '{"code":400,"err_code":10162,"description":"Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_groups": ["A"]}}',
        '{"code":400,"err_code":10196,"description":"consumer can not have priority groups when policy is none"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_timeout": 5}}',
        '{"code":400,"err_code":10197,"description":"PinnedTTL cannot be set when PriorityPolicy is none"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_deliver": -5}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_deliver must be set to -1"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_ack_pending": -5}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_ack_pending must be set to -1"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_batch": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_batch must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_expires": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_expires must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "max_bytes": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_bytes must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "idle_heartbeat": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: idle_heartbeat must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "inactive_threshold": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: inactive_threshold must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "priority_timeout": -1}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: priority_timeout must not be negative"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e1",
        '{"stream_name": "S", "config": {"name": "e1", "ack_policy": "explicit", "backoff": [1000000000]}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: first backoff value has to equal batch AckWait"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.e1",
        '{"stream_name": "L", "config": {"name": "e1", "ack_policy": "explicit"}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: max_ack_pending must be set if it\'s configured in stream limits"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.L.e1",
        '{"stream_name": "L", "config": {"name": "e1", "ack_policy": "explicit", "max_ack_pending": 5}, "pedantic": true}',
        '{"code":400,"err_code":10157,"description":"pedantic mode: inactive_threshold must be set if it\'s configured in stream limits"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        '{"stream_name": "W", "config": {"name": "w1", "deliver_subject": "wd.1"}}',
        '{"code":400,"err_code":10098,"description":"workqueue stream requires explicit ack"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        '{"stream_name": "W", "config": {"name": "w1", "ack_policy": "explicit", "deliver_policy": "new"}}',
        '{"code":400,"err_code":10101,"description":"consumer must be deliver all on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        '{"stream_name": "W", "config": {"name": "w1", "ack_policy": "all"}}',
        '{"code":400,"err_code":10098,"description":"workqueue stream requires explicit ack"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        '{"stream_name": "W", "config": {"name": "w1", "ack_policy": "explicit"}}',
        '{"name":"w1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w2",
        '{"stream_name": "W", "config": {"name": "w2", "ack_policy": "explicit"}}',
        '{"code":400,"err_code":10099,"description":"multiple non-filtered consumers not allowed on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w2",
        '{"stream_name": "W", "config": {"name": "w2", "ack_policy": "explicit", "filter_subject": "w.a"}}',
        '{"code":400,"err_code":10100,"description":"filtered consumer not unique on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        '{"stream_name": "W", "config": {"name": "w1", "ack_policy": "explicit", "filter_subject": "w.a"}}',
        '{"name":"w1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"filter_subject":"w.a","replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w3",
        '{"stream_name": "W", "config": {"name": "w3", "ack_policy": "explicit", "filter_subject": "w.b"}}',
        '{"name":"w3","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"filter_subject":"w.b","replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w4",
        '{"stream_name": "W", "config": {"name": "w4", "ack_policy": "explicit", "filter_subject": "w.*"}}',
        '{"code":400,"err_code":10100,"description":"filtered consumer not unique on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w3",
        '{"stream_name": "W", "config": {"name": "w3", "ack_policy": "explicit", "filter_subject": "w.a"}}',
        '{"code":400,"err_code":10100,"description":"filtered consumer not unique on workqueue stream"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.I.i1",
        '{"stream_name": "I", "config": {"name": "i1"}}',
        '{"name":"i1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.I.i2",
        '{"stream_name": "I", "config": {"name": "i2", "num_replicas": 1}}',
        '{"name":"i2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":1,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit"}}',
        '{"durable_name":"u1","name":"u1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit"}, "action": "create"}',
        '{"durable_name":"u1","name":"u1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "description": "x"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u9",
        '{"stream_name": "S", "config": {"durable_name": "u9", "ack_policy": "explicit"}, "action": "update"}',
        '{"code":400,"err_code":10149,"description":"consumer does not exist"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "description": "x", "max_deliver": 3, "ack_wait": 1000000000}, "action": "update"}',
        '{"durable_name":"u1","name":"u1","description":"x","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":3,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "deliver_policy": "new"}}',
        '{"code":500,"err_code":10012,"description":"deliver policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "mem_storage": true}}',
        '{"code":500,"err_code":10012,"description":"storage type can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "direct": true}}',
        '{"code":400,"err_code":10090,"description":"consumer direct requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "deliver_policy": "by_start_sequence", "opt_start_seq": 2}}',
        '{"code":500,"err_code":10012,"description":"deliver policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "all"}}',
        '{"code":500,"err_code":10012,"description":"ack policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "replay_policy": "original"}}',
        '{"code":500,"err_code":10012,"description":"replay policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "deliver_subject": "x.y"}}',
        '{"code":500,"err_code":10012,"description":"can not update pull consumer to push based"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "max_waiting": 7}}',
        '{"code":500,"err_code":10012,"description":"max waiting can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "backoff": [1, 2], "max_deliver": 1}}',
        '{"code":400,"err_code":10116,"description":"max deliver is required to be > length of backoff values"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "sourcing": true}}',
        '{"code":500,"err_code":10012,"description":"sourcing can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "idle_heartbeat": 1000000000}}',
        '{"code":400,"err_code":10088,"description":"consumer idle heartbeat requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.u1",
        '{"stream_name": "S", "config": {"durable_name": "u1", "ack_policy": "explicit", "flow_control": true}}',
        '{"code":400,"err_code":10089,"description":"consumer flow control requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "pd.1", "idle_heartbeat": 1000000000, "flow_control": true}}',
        '{"durable_name":"p1","name":"p1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","flow_control":true,"deliver_subject":"pd.1","idle_heartbeat":1000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "", "idle_heartbeat": 1000000000, "flow_control": true}}',
        '{"code":400,"err_code":10088,"description":"consumer idle heartbeat requires a push based consumer"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "pd.2", "idle_heartbeat": 1000000000, "flow_control": true}}',
        '{"durable_name":"p1","name":"p1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","flow_control":true,"deliver_subject":"pd.2","idle_heartbeat":1000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "pd.1", "idle_heartbeat": 2000000000, "flow_control": true}}',
        '{"code":500,"err_code":10012,"description":"heart beats can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "pd.1", "idle_heartbeat": 1000000000, "flow_control": false}}',
        '{"code":500,"err_code":10012,"description":"flow control can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.p1",
        '{"stream_name": "S", "config": {"durable_name": "p1", "deliver_subject": "pd.3", "idle_heartbeat": 1000000000, "flow_control": true, "max_waiting": 4}}',
        '{"code":400,"err_code":10080,"description":"consumer in push mode can not set max waiting"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.t1",
        '{"stream_name": "S", "config": {"durable_name": "t1", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T00:00:00Z"}}',
        '{"durable_name":"t1","name":"t1","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T00:00:00Z","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.t1",
        '{"stream_name": "S", "config": {"durable_name": "t1", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T01:00:00+01:00"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.t1",
        '{"stream_name": "S", "config": {"durable_name": "t1", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T01:00:00+01:00"}}',
        '{"durable_name":"t1","name":"t1","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T01:00:00+01:00","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.t1",
        '{"stream_name": "S", "config": {"durable_name": "t1", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T00:00:00.5Z"}}',
        '{"code":500,"err_code":10012,"description":"start time can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.t1",
        '{"stream_name": "S", "config": {"durable_name": "t1", "deliver_policy": "by_start_time", "opt_start_time": "2020-01-01T00:00:00Z"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
]
MORE = [
    ("$JS.API.STREAM.CREATE.S", '{"name": "S", "subjects": ["s.>"]}', ""),
    ("$JS.API.STREAM.CREATE.M", '{"name": "M", "subjects": ["m.>"], "storage": "memory"}', ""),
    (
        "$JS.API.CONSUMER.CREATE.S.p",
        '{"stream_name": "S", "config": {"name": "p", "inactive_threshold": 60000000000}}',
        '{"name":"p","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":60000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f1",
        '{"stream_name": "S", "config": {"name": "f1", "max_waiting": -5}}',
        '{"name":"f1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f2",
        '{"stream_name": "S", "config": {"name": "f2", "max_batch": -1}}',
        '{"name":"f2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f3",
        '{"stream_name": "S", "config": {"name": "f3", "filter_subject": "x.y"}}',
        '{"name":"f3","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"filter_subject":"x.y","replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f4",
        '{"stream_name": "S", "config": {"name": "f4", "filter_subject": ">"}}',
        '{"name":"f4","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"filter_subject":">","replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f5",
        '{"stream_name": "S", "config": {"name": "f5", "sample_freq": "", "ack_policy": "explicit"}}',
        '{"name":"f5","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f6",
        '{"stream_name": "S", "config": {"name": "f6", "sample_freq": "101"}}',
        '{"name":"f6","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","sample_freq":"101","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f7",
        '{"stream_name": "S", "config": {"name": "f7", "sample_freq": "+5%"}}',
        '{"name":"f7","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","sample_freq":"+5%","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f8",
        '{"stream_name": "S", "config": {"name": "f8", "filter_subjects": ["x.>", "s.a"]}}',
        '{"name":"f8","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"filter_subjects":["x.>","s.a"],"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f9",
        '{"stream_name": "S", "config": {"name": "f9", "deliver_subject": "s.>"}}',
        '{"code":400,"err_code":10079,"description":"consumer deliver subject has wildcards"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f10",
        '{"stream_name": "S", "config": {"name": "f10", "deliver_subject": "d.x", "deliver_group": "a.b", "max_ack_pending": -1}}',
        '{"name":"f10","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_ack_pending":-1,"deliver_subject":"d.x","deliver_group":"a.b","inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f11",
        '{"stream_name": "S", "config": {"name": "f11", "ack_policy": "explicit", "max_ack_pending": -1, "backoff": [1000000000, 5000000000], "max_deliver": 2}}',
        '{"name":"f11","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":2,"backoff":[1000000000,5000000000],"replay_policy":"instant","max_waiting":512,"max_ack_pending":-1,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.<n*256>",
        '{"stream_name": "S", "config": {"name": "<n*256>", "mem_storage": true}}',
        '{"name":"<n*256>","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"mem_storage":true,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.M.<n*256>",
        '{"stream_name": "M", "config": {"name": "<n*256>"}}',
        '{"name":"<n*256>","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.<n*255>",
        '{"stream_name": "S", "config": {"name": "<n*255>"}}',
        '{"name":"<n*255>","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.<n*256>",
        '{"stream_name": "S", "config": {"name": "<n*256>", "direct": true, "deliver_subject": "d.y"}}',
        '{"code":500,"err_code":10012,"description":"storage type can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f12",
        '{"stream_name": "S", "config": {"name": "f12", "description": "<é*2049>"}}',
        '{"code":400,"err_code":10107,"description":"consumer description is too long, maximum allowed is 4096"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f13",
        '{"stream_name": "S", "config": {"name": "f13", "num_replicas": 1, "opt_start_time": "2020-01-01T00:00:00Z", "deliver_policy": "by_start_time"}}',
        '{"name":"f13","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T00:00:00Z","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":1,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f14",
        '{"stream_name": "S", "config": {"name": "f14", "pause_until": "2020-01-01T00:00:00Z"}}',
        '{"name":"f14","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"pause_until":"2020-01-01T00:00:00Z"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f15",
        '{"stream_name": "S", "config": {"name": "f15", "pause_until": "0001-01-01T00:00:00Z"}}',
        '{"name":"f15","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"},"pause_until":"0001-01-01T00:00:00Z"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f16",
        '{"stream_name": "S", "config": {"name": "f16", "metadata": {"_nats.ver": "x", "_nats.req.level": "9", "_nats.level": "1"}}}',
        '{"name":"f16","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f17",
        '{"stream_name": "S", "config": {"name": "f17", "headers_only": true, "max_expires": 1000000, "max_bytes": 5}}',
        '{"name":"f17","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"headers_only":true,"max_expires":1000000,"max_bytes":5,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f14",
        '{"stream_name": "S", "config": {"name": "f14", "pause_until": "2099-01-01T00:00:00Z"}}',
        '{"name":"f14","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"pause_until":"2020-01-01T00:00:00Z"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f14",
        '{"stream_name": "S", "config": {"name": "f14", "pause_until": "2099-01-01T00:00:00Z"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f14",
        '{"stream_name": "S", "config": {"name": "f14"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f16",
        '{"stream_name": "S", "config": {"name": "f16", "metadata": {"_nats.ver": "x", "_nats.req.level": "9", "_nats.level": "1"}}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f16",
        '{"stream_name": "S", "config": {"name": "f16"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f1",
        '{"stream_name": "S", "config": {"name": "f1", "inactive_threshold": 5000000000}, "action": "create"}',
        '{"name":"f1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f1",
        '{"stream_name": "S", "config": {"name": "f1", "max_waiting": 512, "max_deliver": -1}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f1",
        '{"stream_name": "S", "config": {"name": "f1", "backoff": []}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.f1",
        '{"stream_name": "S", "config": {"name": "f1", "filter_subjects": [], "metadata": {}}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"name": "f1"}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"name": "f1", "deliver_policy": "new"}}',
        '{"code":500,"err_code":10012,"description":"deliver policy can not be updated"}',
    ),
    (
        "$JS.API.CONSUMER.DURABLE.CREATE.S.f1",
        '{"stream_name": "S", "config": {"durable_name": "f1"}}',
        '{"durable_name":"f1","name":"f1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
]
EXISTING = [
    ("$JS.API.STREAM.CREATE.S", '{"name": "S", "subjects": ["s.>"]}', ""),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1"}}',
        '{"durable_name":"d1","name":"d1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1", "backoff": []}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1", "filter_subjects": []}, "action": "create"}',
        '{"code":400,"err_code":10148,"description":"consumer already exists"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1", "metadata": {}}, "action": "create"}',
        '{"durable_name":"d1","name":"d1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1", "metadata": {"_nats.ver": "1"}}, "action": "create"}',
        '{"durable_name":"d1","name":"d1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d1",
        '{"stream_name": "S", "config": {"durable_name": "d1", "pause_until": "2099-01-01T00:00:00Z"}, "action": "create"}',
        '{"durable_name":"d1","name":"d1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d2",
        '{"stream_name": "S", "config": {"durable_name": "d2", "pause_until": "2099-01-01T01:00:00+01:00"}}',
        '{"durable_name":"d2","name":"d2","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"pause_until":"2099-01-01T01:00:00+01:00"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d2",
        '{"stream_name": "S", "config": {"durable_name": "d2", "description": "x"}}',
        '{"durable_name":"d2","name":"d2","description":"x","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.1"},"pause_until":"2099-01-01T00:00:00Z"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d3",
        '{"stream_name": "S", "config": {"durable_name": "d3", "ack_wait": "x"}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into Go struct field CreateConsumerRequest.config.ack_wait of type time.Duration"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d3",
        '{"stream_name": "S", "config": {"durable_name": "d3", "backoff": ["x"]}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into CreateConsumerRequest.config.backoff.0 of type time.Duration"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d3",
        '{"stream_name": "S", "config": {"durable_name": "d3", "opt_start_time": "x"}}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: parsing time \\"x\\" as \\"2006-01-02T15:04:05Z07:00\\": cannot parse \\"x\\" as \\"2006\\""}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d3",
        '{"stream_name": "S", "config": "x"}',
        '{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into Go struct field CreateConsumerRequest.config of type server.ConsumerConfig"}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d4",
        '{"stream_name": "S", "config": {"durable_name": "d4", "deliver_subject": "p.4"}}',
        '{"durable_name":"d4","name":"d4","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","deliver_subject":"p.4","num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.d4",
        '{"stream_name": "S", "config": {"durable_name": "d4", "deliver_subject": "p.5", "inactive_threshold": 0}}',
        '{"durable_name":"d4","name":"d4","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","deliver_subject":"p.5","num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S",
        '{"stream_name": "S", "config": {"name": "e5", "inactive_threshold": 2000000000}}',
        '{"name":"e5","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":2000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
    (
        "$JS.API.CONSUMER.CREATE.S.e5",
        '{"stream_name": "S", "config": {"durable_name": "e5", "inactive_threshold": 0}}',
        '{"durable_name":"e5","name":"e5","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}',
    ),
]

_RUN = re.compile(r"<(.)\*(\d+)>")


def _expand(text: str) -> str:
    return _RUN.sub(lambda m: m.group(1) * int(m.group(2)), text)


def _replay(transcript: list[tuple[str, str, str]]) -> list[str]:
    """Run a transcript through the create path as the API layer would; list mismatches."""
    streams: dict[str, StreamConfig] = {}
    consumers: dict[str, dict[str, ConsumerConfig]] = {}
    mismatches = []
    for raw_subject, raw_body, answer in transcript:
        subject, body = _expand(raw_subject), _expand(raw_body).encode()
        if ".STREAM.CREATE." in subject:
            cfg = stream_validate.check_stream_config(
                jsondecode.decode_request(body, StreamConfigRequest), existing=streams
            )
            streams[cfg.name] = cfg
            consumers[cfg.name] = {}
            continue
        got: Any
        try:
            req = jsondecode.decode_request(body, CreateConsumerRequest)
            parsed = consumer_validate.parse_consumer_create_subject(subject)
            assert parsed is not None
            name, cfg = consumer_validate.check_consumer_create(
                parsed, req, streams.get(parsed.stream), consumers.get(parsed.stream, {})
            )
        except ApiError as exc:
            got = exc.to_dict()
        else:
            consumers[parsed.stream][name] = cfg
            shown = versioning.set_dynamic_metadata(cfg, version="2.15.1", api_level=5)
            got = json.loads(jsonencode.encode(shown))
        if got != json.loads(_expand(answer)):
            mismatches.append(f"{raw_subject} {raw_body[:200]}\n  nats: {answer}\n  ours: {got}")
    return mismatches


@pytest.mark.parametrize(
    "transcript",
    [LIMITS_AND_DEFAULTS, ERRORS, MORE, EXISTING],
    ids=["limits_and_defaults", "errors", "more", "existing"],
)
def test_consumer_create_transcripts_match_nats(transcript: list[tuple[str, str, str]]) -> None:
    assert _replay(transcript) == []


def test_consumer_create_transcripts_are_not_vacuous() -> None:
    # A transcript replayed against a wrong answer must fail.
    subject, body, _ = ERRORS[4]
    broken = [*ERRORS[:4], (subject, body, '{"code":400,"err_code":1,"description":"x"}')]
    assert len(_replay(broken)) == 1
    assert sum(1 for _, _, a in ERRORS if a.startswith('{"code"')) > 80


# -- helpers ---------------------------------------------------------------------------------


def _stream(**kw: Any) -> StreamConfig:
    body = {"name": "S", "subjects": ["s.>"], **kw}
    return stream_validate.check_stream_config(
        jsondecode.decode_request(json.dumps(body).encode(), StreamConfigRequest)
    )


def _create(
    subject: str,
    config: dict[str, Any],
    *,
    stream: StreamConfig | None = None,
    existing: dict[str, ConsumerConfig] | None = None,
    **kw: Any,
) -> tuple[str, ConsumerConfig]:
    body = {"stream_name": "S", "config": config, **kw.pop("body", {})}
    req = jsondecode.decode_request(json.dumps(body).encode(), CreateConsumerRequest)
    return consumer_validate.check_consumer_create(
        subject, req, stream or _stream(), existing if existing is not None else {}, **kw
    )


def _error(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    return info.value.to_dict()


def _shown(cfg: ConsumerConfig) -> dict[str, Any]:
    return json.loads(jsonencode.encode(cfg))


# -- subjects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "parsed"),
    [
        ("$JS.API.CONSUMER.CREATE.S", ("ephemeral", "S", "", "", 5)),
        ("$JS.API.CONSUMER.CREATE.S.c", ("named", "S", "c", "", 6)),
        ("$JS.API.CONSUMER.CREATE.S.c.ev.>", ("named", "S", "c", "ev.>", 8)),
        ("$JS.API.CONSUMER.DURABLE.CREATE.S.c", ("durable", "S", "c", "", 7)),
        ("$JS.API.CONSUMER.DURABLE.CREATE.S.c.x", ("durable", "S", "c", "", 8)),
        ("$JS.API.CONSUMER.CREATE", None),
    ],
)
def test_consumer_create_subject_forms(subject: str, parsed: tuple[Any, ...] | None) -> None:
    assert consumer_validate.parse_consumer_create_subject(subject) == parsed


def test_consumer_durable_subject_with_wrong_token_count() -> None:
    # nats subscribes DURABLE.CREATE.*.* so such a subject never reaches it over the wire;
    # the handler's own answer is 10016.
    assert _error(_create, "$JS.API.CONSUMER.DURABLE.CREATE.S.c.x", {"durable_name": "c"}) == {
        "code": 400,
        "err_code": 10016,
        "description": "consumer expected to be durable but no durable name set in subject",
    }


def test_consumer_stream_must_exist() -> None:
    req = CreateConsumerRequest(stream_name="S")
    err = _error(
        consumer_validate.check_consumer_create, "$JS.API.CONSUMER.CREATE.S.c", req, None, {}
    )
    assert err == {"code": 404, "err_code": 10059, "description": "stream not found"}


def test_consumer_subject_tokens() -> None:
    assert consumer_validate.parse_consumer_subject("$JS.API.CONSUMER.INFO.S.c") == ("S", "c")
    assert consumer_validate.parse_consumer_subject("$JS.API.CONSUMER.NAMES.S") == ("S", "")


def test_consumer_generated_names() -> None:
    names = {consumer_validate.create_consumer_name() for _ in range(200)}
    assert len(names) == 200
    assert all(re.fullmatch(r"[0-9A-Za-z]{8}", n) for n in names)


def test_consumer_legacy_ephemeral_gets_a_generated_name_outside_its_config() -> None:
    name, cfg = _create("$JS.API.CONSUMER.CREATE.S", {"deliver_subject": "dlv"})
    assert re.fullmatch(r"[0-9A-Za-z]{8}", name)
    assert cfg.name == ""
    other, _ = _create("$JS.API.CONSUMER.CREATE.S", {}, existing={name: cfg})
    assert other != name


# -- defaults --------------------------------------------------------------------------------


def test_consumer_defaults_pull_durable() -> None:
    name, cfg = _create(
        "$JS.API.CONSUMER.CREATE.S.d", {"durable_name": "d", "ack_policy": "explicit"}
    )
    assert name == "d"
    assert _shown(cfg) == {
        "durable_name": "d",
        "name": "d",
        "deliver_policy": "all",
        "ack_policy": "explicit",
        "ack_wait": 30_000_000_000,
        "max_deliver": -1,
        "replay_policy": "instant",
        "max_waiting": 512,
        "max_ack_pending": 1000,
        "num_replicas": 0,
        "metadata": {"_nats.req.level": "0"},
    }


def test_consumer_defaults_push_ephemeral() -> None:
    _, cfg = _create("$JS.API.CONSUMER.CREATE.S", {"deliver_subject": "dlv", "ack_policy": "all"})
    assert (cfg.max_waiting, cfg.ack_wait, cfg.max_ack_pending) == (0, 30_000_000_000, 1000)
    assert cfg.inactive_threshold == 5_000_000_000


def test_consumer_defaults_backoff_sets_ack_wait_and_limits_apply() -> None:
    limits = ConsumerLimits(max_request_batch=100, max_ack_pending=300, account_max_ack_pending=200)
    _, cfg = _create(
        "$JS.API.CONSUMER.CREATE.S.c",
        {"ack_policy": "explicit", "backoff": [2_000_000_000, 4_000_000_000]},
        limits=limits,
    )
    assert (cfg.ack_wait, cfg.max_ack_pending, cfg.max_batch) == (2_000_000_000, 200, 100)
    err = _error(_create, "$JS.API.CONSUMER.CREATE.S.c", {"max_batch": 101}, limits=limits)
    assert err == {
        "code": 400,
        "err_code": 10125,
        "description": "consumer max request batch exceeds server limit of 100",
    }
    err = _error(_create, "$JS.API.CONSUMER.CREATE.S.c", {"max_ack_pending": 250}, limits=limits)
    assert err["description"] == "consumer max ack pending exceeds system limit of 200"


def test_consumer_defaults_pinned_policy_gets_a_ttl() -> None:
    _, cfg = _create(
        "$JS.API.CONSUMER.CREATE.S.c",
        {"priority_policy": "pinned_client", "priority_groups": ["A"]},
    )
    assert cfg.priority_timeout == 120_000_000_000
    assert cfg.metadata == {"_nats.req.level": "1"}


def test_consumer_defaults_leave_the_input_alone() -> None:
    cfg = ConsumerConfig(name="c", ack_policy="explicit", max_deliver=-5)
    out = consumer_validate.set_consumer_config_defaults(cfg, _stream())
    assert cfg.max_deliver == -5 and cfg.ack_wait == 0
    assert out.max_deliver == -1 and out.ack_wait == 30_000_000_000


def test_consumer_account_max_consumers() -> None:
    existing = {"a": ConsumerConfig(name="a"), "b": ConsumerConfig(name="b", sourcing=True)}
    limits = ConsumerLimits(account_max_consumers=2)
    _create("$JS.API.CONSUMER.CREATE.S.c", {}, existing=existing, limits=limits)  # b is exempt
    existing["c"] = ConsumerConfig(name="c")
    err = _error(_create, "$JS.API.CONSUMER.CREATE.S.d", {}, existing=existing, limits=limits)
    assert err == {"code": 400, "err_code": 10026, "description": "maximum consumers limit reached"}


def test_consumer_name_too_long_for_the_file_store() -> None:
    long = "n" * 256
    err = _error(_create, f"$JS.API.CONSUMER.CREATE.S.{long}", {})
    assert err == {
        "code": 500,
        "err_code": 10012,
        "description": "error creating store for consumer",
    }
    _create(f"$JS.API.CONSUMER.CREATE.S.{long}", {}, stream=_stream(storage="memory"))
    _create(f"$JS.API.CONSUMER.CREATE.S.{long}", {"mem_storage": True})


# -- updates ---------------------------------------------------------------------------------


def test_consumer_update_of_a_bound_push_consumer_deliver_subject() -> None:
    _, stored = _create(
        "$JS.API.CONSUMER.CREATE.S.p", {"durable_name": "p", "deliver_subject": "d.1"}
    )
    existing = {"p": stored}
    new = {"durable_name": "p", "deliver_subject": "d.2"}
    err = _error(
        _create,
        "$JS.API.CONSUMER.CREATE.S.p",
        new,
        existing=existing,
        has_interest=lambda s: s == "d.1",
    )
    assert err == {"code": 400, "err_code": 10013, "description": "consumer name already in use"}
    _, cfg = _create(
        "$JS.API.CONSUMER.CREATE.S.p", new, existing=existing, has_interest=lambda s: False
    )
    assert cfg.deliver_subject == "d.2"


def test_consumer_update_keeps_the_stored_pause() -> None:
    _, stored = _create(
        "$JS.API.CONSUMER.CREATE.S.d",
        {"durable_name": "d", "pause_until": "2099-01-01T01:00:00+01:00"},
    )
    assert stored.pause_until == "2099-01-01T01:00:00+01:00"  # kept as sent on create
    _, cfg = _create(
        "$JS.API.CONSUMER.CREATE.S.d",
        {"durable_name": "d", "description": "x"},
        existing={"d": stored},
    )
    assert cfg.pause_until == "2099-01-01T00:00:00Z"  # in UTC once updated
    assert cfg.metadata == {"_nats.req.level": "1"}


def test_consumer_update_rules_directly() -> None:
    old = ConsumerConfig(
        durable_name="d", opt_start_time="2020-01-01T00:00:00Z", deliver_policy="by_start_time"
    )
    same_instant = msgspec.structs.replace(old, opt_start_time="2020-01-01T01:00:00+01:00")
    consumer_validate.check_consumer_update(old, same_instant)
    later = msgspec.structs.replace(old, opt_start_time="2020-01-01T00:00:01Z")
    assert (
        _error(consumer_validate.check_consumer_update, old, later)["description"]
        == "start time can not be updated"
    )


def test_consumer_action_create_tells_nil_from_empty_lists() -> None:
    _, stored = _create("$JS.API.CONSUMER.CREATE.S.d", {"durable_name": "d"})
    existing = {"d": stored}
    _create(
        "$JS.API.CONSUMER.CREATE.S.d",
        {"durable_name": "d"},
        existing=existing,
        body={"action": "create"},
    )
    err = _error(
        _create,
        "$JS.API.CONSUMER.CREATE.S.d",
        {"durable_name": "d", "backoff": []},
        existing=existing,
        body={"action": "create"},
    )
    assert err["err_code"] == 10148


# -- MSG.NEXT --------------------------------------------------------------------------------

_PULL = ConsumerConfig(
    name="p",
    ack_policy="explicit",
    max_batch=5,
    max_expires=2_000_000_000,
    max_bytes=100,
    max_waiting=512,
)

# (body, captured status line without "NATS/1.0 ") on consumer p above (stream empty);
# None: accepted (the captured answer was a later 404/408 from consumer state).
NEXT_CASES = [
    ('{"batch": 10}', "409 Exceeded MaxRequestBatch of 5"),
    ('{"expires": 3000000000}', "409 Exceeded MaxRequestExpires of 2s"),
    ('{"max_bytes": 200}', "409 Exceeded MaxRequestMaxBytes of 100"),
    ('{"batch":1,"idle_heartbeat":1000000000}', "400 Bad Request - heartbeat value too large"),
    (
        '{"batch":1,"idle_heartbeat":1000000000,"expires":1999999999}',
        "400 Bad Request - heartbeat value too large",
    ),
    ('{"bogus":1,"no_wait":true}', None),
    ('{"batch":', "400 Bad Request - unexpected end of JSON input"),
    (
        '{"batch":"x"}',
        "400 Bad Request - json: cannot unmarshal string into Go struct field .batch of type int",
    ),
    ("{} x", "400 Bad Request - invalid character 'x' after top-level value"),
    ("{}{}", "400 Bad Request - invalid character '{' after top-level value"),
    (' {"no_wait":true} ', None),
    ('{"min_pending": 1, "no_wait":true}', "400 Bad Request - Not a Overflow Priority consumer"),
    ('{"id":"x","no_wait":true}', "400 Bad Request - Not a Pinned Client Priority consumer"),
    ('{"priority": 10,"no_wait":true}', "400 Bad Request - Priority must be between 0 and 9"),
    ('{"group":"g","no_wait":true}', None),
    ('{"batch":6,"expires":3000000000}', "409 Exceeded MaxRequestBatch of 5"),
    (
        '{"batch":1.5}',
        "400 Bad Request - json: cannot unmarshal number 1.5 into Go struct field .batch of type int",
    ),
    (
        '{"expires":"1s"}',
        "400 Bad Request - json: cannot unmarshal string into Go struct field .expires of type time.Duration",
    ),
    (
        '{"batch":9223372036854775808}',
        "400 Bad Request - json: cannot unmarshal number 9223372036854775808 into Go struct field .batch of type int",
    ),
    ('{"batch":x}', "400 Bad Request - invalid character 'x' looking for beginning of value"),
    (
        '{"batch":1,}',
        "400 Bad Request - invalid character '}' looking for beginning of object key string",
    ),
    ('{"a\\q":1}', "400 Bad Request - invalid escape sequence `\\q` in string"),
    ('{"batch":1 "x":2}', "400 Bad Request - invalid character '\"' after object key:value pair"),
    ('{"no_wait":tru}', "400 Bad Request - invalid character '}' in literal true (expecting 'e')"),
    ('{"batch":-}', "400 Bad Request - invalid character '}' in numeric literal"),
    ('{"batch":01}', "400 Bad Request - invalid character '1' after object key:value pair"),
    ('{"batch":"\x01"}', "400 Bad Request - invalid character '\\x01' in string"),
    (
        '{"batch":true}',
        "400 Bad Request - json: cannot unmarshal bool into Go struct field .batch of type int",
    ),
    (
        '{"no_wait":1}',
        "400 Bad Request - json: cannot unmarshal number into Go struct field .no_wait of type bool",
    ),
    (
        '{"batch":[1]}',
        "400 Bad Request - json: cannot unmarshal array into Go struct field .batch of type int",
    ),
    (
        '{"group":5}',
        "400 Bad Request - json: cannot unmarshal number into Go struct field .group of type string",
    ),
    (
        '{"priority":1.0}',
        "400 Bad Request - json: cannot unmarshal number 1.0 into Go struct field .priority of type int",
    ),
    ('{"min_pending":-1,"no_wait":true}', "400 Bad Request - Not a Overflow Priority consumer"),
    ('{"expires":-5,"no_wait":true}', None),
    (
        '{"batch":1,"batch":"x"}',
        "400 Bad Request - json: cannot unmarshal string into Go struct field .batch of type int",
    ),
    (
        '{"Batch":"x"}',
        "400 Bad Request - json: cannot unmarshal string into Go struct field .Batch of type int",
    ),
    (
        '{"max_bytes":{}}',
        "400 Bad Request - json: cannot unmarshal object into Go struct field .max_bytes of type int",
    ),
    ('{"no_wait":null}', None),
    ('{"batch":1}\n', None),
    ('{"batch":1}\x00', "400 Bad Request - invalid character '\\x00' after top-level value"),
    ("\t\n {}", None),
    (
        '\u00a0{"batch":"x"}',
        "400 Bad Request - json: cannot unmarshal string into Go struct field .batch of type int",
    ),
]


@pytest.mark.parametrize(("body", "status"), NEXT_CASES)
def test_consumer_next_request_status_matches_nats(body: str, status: str | None) -> None:
    if status is None:
        consumer_validate.check_next_request(body.encode(), _PULL)
        return
    with pytest.raises(NextRequestError) as info:
        consumer_validate.check_next_request(body.encode(), _PULL)
    assert f"{info.value.code} {info.value.description}" == status
    assert info.value.status() == f"NATS/1.0 {status}\r\n\r\n".encode()


def test_consumer_next_request_push_and_go_duration_text() -> None:
    push = ConsumerConfig(deliver_subject="d")
    with pytest.raises(NextRequestError) as info:
        consumer_validate.check_next_request(b"", push)
    assert info.value.status() == b"NATS/1.0 409 Consumer is push based\r\n\r\n"
    q = msgspec.structs.replace(_PULL, max_batch=0, max_expires=1_500_000_000)
    with pytest.raises(NextRequestError) as info:
        consumer_validate.check_next_request(b'{"expires": 1600000000, "no_wait": true}', q)
    assert info.value.description == "Exceeded MaxRequestExpires of 1.5s"  # captured


@pytest.mark.parametrize(
    ("body", "batch", "json_body"),
    [(b"", 1, False), (b"3", 3, False), (b" +2 ", 2, False), (b"-1", -1, False), (b"abc", 1, False),
     (b"[1]", 1, False), (b"{}", 0, True), (b'{"batch":4}', 4, True)],
)  # fmt: skip
def test_consumer_next_request_body_forms(body: bytes, batch: int, json_body: bool) -> None:
    req = consumer_validate.check_next_request(body, _PULL)
    assert (req.batch, req.priority_group) == (batch, json_body)


def test_consumer_next_request_priority_groups() -> None:
    overflow = msgspec.structs.replace(_PULL, priority_policy="overflow", priority_groups=["A"])
    req = consumer_validate.check_next_request(b'{"group":"A","min_pending":3}', overflow)
    assert (req.group, req.min_pending) == ("A", 3)
    for body, text in [
        (b"{}", "Priority Group missing"),
        (b'{"group":"B"}', "Invalid Priority Group"),
    ]:
        with pytest.raises(NextRequestError) as info:
            consumer_validate.check_next_request(body, overflow)
        assert info.value.description == "Bad Request - " + text
    consumer_validate.check_next_request(b"5", overflow)  # no JSON, no priority group to check
