"""Subject mappings (accounts-and-security.md §4.6) against nats-server itself: the real
server runs a config of many mappings (every destination function, partitions over many
subjects, weights), a `>` subscriber records the subject each published message is
delivered on, and protocol/transform.py, fed the same file through config/mappings.py,
must map every published subject to that subject. Weighted mappings are compared as
counts over 10,000 messages, ours drawn with random draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from shardbroker.config.mappings import parse_mappings
from shardbroker.config.parse import parse_with_positions
from shardbroker.protocol.transform import SubjectMappings
from tests.helpers.broker import TARGET_ENV, Broker, is_shardbroker_target, run_broker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker's mappings with nats-server"
    ),
]

# Sources do not overlap: nats-server tries mappings in Go's map order, random per start.
CONF = """
mappings {
  "w.*": "w1.$1"
  "w2.*.*": "w2.{{wildcard(2)}}.{{ Wildcard ( 1 ) }}"
  "fw.*.>": "fw1.$1.>"
  "all.>": ">"
  "z.*.*": "z1.$0.$-1.$foo.{{wildcard(1)}}x"
  "p.*.*": "p1.{{partition(10,1,2)}}.$1.$2"
  "pa.*": "pa1.{{partition(7)}}.$1"
  "pb.*.*": "pb1.{{partition(5,2,1,0)}}"
  "pz.*": "pz1.{{partition(0,1)}}"
  "pn.*": "pn1.{{partition(-3,1)}}"
  "sp.*": "sp1.{{split(1,-)}}.end"
  "sp2.*": "sp2.{{split(1,ab)}}"
  "sfl.*": "sfl1.{{splitFromLeft(1,2)}}"
  "sfr.*": "sfr1.{{SplitFromRight(1,3)}}"
  "sll.*": "sll1.{{sliceFromLeft(1,2)}}"
  "slr.*": "slr1.{{sliceFromRight(1,3)}}"
  "lr.*": "lr1.{{left(1,2)}}.{{right(1,3)}}.{{left(1,0)}}"
  "lit": "lit1.x"
  "lit2.a": "lit2.{{partition(4)}}"
  "one.*": { destination: "one1.$1", weight: 100 }
  "wt.*": [ {destination: "wa.$1", weight: 30}, {destination: "wb.$1", weight: "50%"} ]
  "drop": [ {destination: "drop", weight: 40}, {destination: "kept", weight: 20} ]
  "rnd.*": "rnd1.{{random(5)}}.$1"
}
"""

TOKENS = [
    "a", "ab", "abc", "abcd", "abcdef", "abcdefg", "0123456789", "a-b", "a-b-c", "-a-",
    "a--b", "ab-", "xab-yab", "abab", "x_y", "UPPER", "$1", "{{x}}",
]  # fmt: skip
WEIGHTED = 10_000


def table_of(text: str) -> SubjectMappings:
    values, positions = parse_with_positions(text, "mappings.conf")
    parsed = parse_mappings(values["mappings"], positions, ("mappings",), positions[("mappings",)])
    return SubjectMappings(
        [(m.source, [(d.subject, d.weight, d.cluster) for d in m.destinations]) for m in parsed]
    )


def deterministic_subjects() -> list[str]:
    subjects = []
    for t in TOKENS:
        subjects += [
            f"w.{t}", f"w2.{t}.x", f"fw.{t}.b.c", f"all.{t}", f"z.{t}.q", f"pa.{t}", f"pz.{t}",
            f"pn.{t}", f"sp.{t}", f"sp2.{t}", f"sfl.{t}", f"sfr.{t}", f"sll.{t}", f"slr.{t}",
            f"lr.{t}", f"one.{t}", f"nomap.{t}", f"w.{t}.extra",
        ]  # fmt: skip
    subjects += [f"p.{i}.{j}" for i in range(40) for j in ("k", "kk", "key-3")]
    subjects += [f"pb.{i}.{i * 7}" for i in range(200)]
    # Not through the byte-cutting functions: nats-py drops a subject that is not UTF-8.
    subjects += ["sp.-", "sp.--", "sp.é-ü", "w.é", "p.é.ü", "pa.é"]
    subjects += ["lit", "lit2.a", "lit2.b", "lit.x", "w", "fw.a", "all", "drop.x"]
    return subjects


def delivered_on(subject: str, mapped: bytes | None) -> str | None:
    """Where a `>` subscriber sees the message: a mapped subject with an empty token
    ({{split}} of "ab" on "ab") matches no subscription, so it is not seen at all."""
    if mapped is None:
        return subject
    out = mapped.decode()
    return None if "" in out.split(".") else out


@contextlib.contextmanager
def nats_server(conf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Broker]:
    monkeypatch.setenv(TARGET_ENV, "nats-server")
    try:
        with run_broker(workers=1, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
            yield broker
    finally:
        monkeypatch.setenv(TARGET_ENV, "shardbroker")


async def deliveries(broker: Broker, subjects: list[str]) -> list[str | None]:
    """Publish each subject (payload: its index) and return the subject each arrived on
    at a `>` subscriber, None where it did not arrive."""
    nc = await nats.connect(broker.url, allow_reconnect=False, connect_timeout=5)
    try:
        got: list[str | None] = [None] * len(subjects)
        done = asyncio.get_running_loop().create_future()

        async def on_msg(msg: Any) -> None:
            if msg.subject == "zz.done":
                done.set_result(None)
            else:
                got[int(msg.data)] = msg.subject

        await nc.subscribe(">", cb=on_msg, pending_msgs_limit=10 * WEIGHTED)
        await nc.flush()
        for i, subject in enumerate(subjects):
            await nc.publish(subject, str(i).encode())
        await nc.publish("zz.done", b"")
        await asyncio.wait_for(done, 30)
        return got
    finally:
        await nc.close()


async def test_mappings_reference_every_function_matches_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "mappings.conf"
    conf.write_text(CONF)
    subjects = deterministic_subjects()
    rnd = [f"rnd.{i}" for i in range(300)]
    weighted = [f"wt.{i % 50}" for i in range(WEIGHTED)] + ["drop"] * WEIGHTED
    with nats_server(conf, monkeypatch, tmp_path) as broker:
        got = await deliveries(broker, subjects + rnd + weighted)
    table = table_of(CONF)

    fixed = got[: len(subjects)]
    ours = [table.map(s.encode(), 0.0) for s in subjects]
    expected = [delivered_on(s, m) for s, m in zip(subjects, ours, strict=True)]
    mismatches = [
        (s, theirs, mine)
        for s, theirs, mine in zip(subjects, fixed, expected, strict=True)
        if theirs != mine
    ]
    assert not mismatches, mismatches[:20]
    assert len({s for s in fixed if s and s.startswith("p1.")}) > 30  # partitions spread

    # {{random(5)}}: the same shape and the same values, whoever draws them.
    rng = random.Random(1)
    theirs_rnd = got[len(subjects) : len(subjects) + len(rnd)]
    mine_rnd = [table.map(s.encode(), rng.random()) for s in rnd]
    assert {s.split(".")[1] for s in theirs_rnd if s} == {"0", "1", "2", "3", "4"}
    assert {m.decode().split(".")[1] for m in mine_rnd if m} == {"0", "1", "2", "3", "4"}
    assert [s.split(".", 2)[2] for s in theirs_rnd if s] == [str(i) for i in range(300)]

    # Weights: 30% wa, 50% wb, 20% unchanged; "drop": 40% drop, 20% kept, 40% lost.
    theirs_w = Counter(
        None if s is None else s.split(".")[0] for s in got[len(subjects) + len(rnd) :]
    )
    mine_w: Counter[str | None] = Counter()
    for subject in weighted:
        out = table.map(subject.encode(), rng.random())
        assert out is not None
        mine_w[out.decode().split(".")[0] or None] += 1
    tolerance = WEIGHTED * 0.04
    for key in ("wa", "wb", "wt", "drop", "kept", None):
        assert abs(theirs_w[key] - mine_w[key]) < tolerance, (key, theirs_w, mine_w)
    assert abs(theirs_w["wa"] - 3000) < tolerance and abs(theirs_w[None] - 4000) < tolerance


async def test_mappings_reference_first_literal_partition_hashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a single mapping (so no question of order) a literal source's partition hash
    # covers no tokens: nats-server does not split the subject before the first mapping.
    text = 'mappings { "c.d": "z.{{partition(7)}}", }\n'
    conf = tmp_path / "literal.conf"
    conf.write_text(text)
    with nats_server(conf, monkeypatch, tmp_path) as broker:
        got = await deliveries(broker, ["c.d", "c.e"])
    table = table_of(text)
    assert got == ["z.2", "c.e"]
    assert [table.map(b"c.d", 0.0), table.map(b"c.e", 0.0)] == [b"z.2", None]
