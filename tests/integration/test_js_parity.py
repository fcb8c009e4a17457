"""The same JetStream API conversation with nats-server and with shardbroker, answer
by answer: after masking what legitimately differs (timestamps, server version and API
level, the leader's name, request counters), the JSON must be identical."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.helpers.broker import TARGET_ENV, is_shardbroker_target, run_broker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MASKED_METADATA = ("_nats.ver", "_nats.level")


def mask(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in MASKED_METADATA or key == "leader":
                out[key] = "<masked>"
            elif key == "api" and isinstance(item, dict):
                out[key] = {k: "<masked>" for k in item}
            elif key in ("max_memory", "max_storage"):
                out[key] = "<masked>"
            else:
                out[key] = mask(item)
        return out
    if isinstance(value, list):
        return [mask(item) for item in value]
    if isinstance(value, str) and TIMESTAMP.match(value) and not value.startswith("0001"):
        return "<time>"
    return value


# (subject, body, headers): requests whose JSON answers are compared one by one.
CONVERSATION: list[tuple[str, bytes, dict[str, str] | None]] = [
    (
        "$JS.API.STREAM.CREATE.PAR",
        b'{"name":"PAR","subjects":["par.*"],"max_msgs_per_subject":5}',
        None,
    ),
    (
        "$JS.API.STREAM.CREATE.PAR",
        b'{"name":"PAR","subjects":["par.*"],"max_msgs_per_subject":5}',
        None,
    ),
    ("par.a", b"one", {"Nats-Msg-Id": "m1"}),
    ("par.b", b"two", None),
    ("par.a", b"three", {"X-Other": "x"}),
    ("par.a", b"dup", {"Nats-Msg-Id": "m1"}),
    ("par.a", b"x", {"Nats-Expected-Last-Sequence": "1"}),
    ("par.a", b"x", {"Nats-Expected-Last-Subject-Sequence": "3"}),
    ("par.c", b"x", {"Nats-Expected-Stream": "NOPE"}),
    ("$JS.API.STREAM.INFO.PAR", b'{"subjects_filter":">","deleted_details":true}', None),
    ("$JS.API.STREAM.MSG.DELETE.PAR", b'{"seq":2}', None),
    ("$JS.API.STREAM.MSG.DELETE.PAR", b'{"seq":2}', None),
    ("$JS.API.STREAM.INFO.PAR", b'{"deleted_details":true}', None),
    ("$JS.API.STREAM.MSG.GET.PAR", b'{"seq":1}', None),
    ("$JS.API.STREAM.MSG.GET.PAR", b'{"last_by_subj":"par.a"}', None),
    ("$JS.API.STREAM.MSG.GET.PAR", b'{"next_by_subj":"par.*","seq":2}', None),
    ("$JS.API.STREAM.MSG.GET.PAR", b'{"seq":99}', None),
    ("$JS.API.STREAM.MSG.GET.PAR", b"", None),
    ("$JS.API.STREAM.NAMES", b"", None),
    ("$JS.API.STREAM.NAMES", b'{"subject":"par.zzz"}', None),
    ("$JS.API.STREAM.NAMES", b'{"subject":"nomatch"}', None),
    ("$JS.API.STREAM.LIST", b"", None),
    ("$JS.API.INFO", b"", None),
    ("$JS.API.STREAM.CREATE.OTHER", b'{"name":"OTHER","subjects":["par.b"]}', None),
    ("$JS.API.STREAM.CREATE.PAR", b'{"name":"PAR","subjects":["par.x"]}', None),
    ("$JS.API.STREAM.CREATE.BAD", b"{nope", None),
    ("$JS.API.STREAM.CREATE.BAD", b'{"name":"BAD","bogus":1}', None),
    ("$JS.API.STREAM.CREATE.BAD", b'{"name":"ELSE"}', None),
    ("$JS.API.STREAM.CREATE.BAD", b'{"name":"BAD","max_age":-5}', None),
    ("$JS.API.STREAM.UPDATE.PAR", b'{"name":"PAR","subjects":["par.*"],"storage":"memory"}', None),
    (
        "$JS.API.STREAM.UPDATE.PAR",
        b'{"name":"PAR","subjects":["par.*","more.>"],"max_msgs":2,"max_msgs_per_subject":5}',
        None,
    ),
    ("$JS.API.STREAM.PURGE.PAR", b'{"filter":"par.a","keep":1}', None),
    ("$JS.API.STREAM.PURGE.PAR", b'{"seq":2,"keep":1}', None),
    ("$JS.API.STREAM.INFO.PAR", b"", None),
    ("$JS.API.STREAM.DELETE.PAR", b'{"x":1}', None),
    ("$JS.API.STREAM.INFO.NOPE", b"", None),
    ("$JS.API.STREAM.DELETE.PAR", b"", None),
    ("$JS.API.STREAM.NAMES", b"", None),
    ("$JS.API.STREAM.LIST", b"", None),
]


async def converse(url: str) -> list[Any]:
    nc = await nats.connect(url)
    try:
        answers = []
        for subject, body, headers in CONVERSATION:
            msg = await nc.request(subject, body, timeout=5, headers=headers)
            answers.append(mask(json.loads(msg.data)))
        return answers
    finally:
        await nc.close()


async def test_api_answers_match_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TARGET_ENV, "nats-server")
    with run_broker(workers=1, tmp_dir=tmp_path / "nats", jetstream=True) as reference:
        expected = await converse(reference.url)
    monkeypatch.setenv(TARGET_ENV, "shardbroker")
    with run_broker(workers=2, tmp_dir=tmp_path / "sb", jetstream=True) as broker:
        actual = await converse(broker.url)
    for (subject, body, _), want, got in zip(CONVERSATION, expected, actual, strict=True):
        assert got == want, f"{subject} {body!r}"
