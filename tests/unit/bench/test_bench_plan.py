"""`shardbroker bench` plans and settings: which client runs in which process, which
worker --spread wants for it, where publishers start in the cycle, and the checks of the
new options (--size lists, --subjects, --spread, --warmup, --ack-policy)."""

from __future__ import annotations

from typing import Any

import pytest

from shardbroker.bench import UsageError
from shardbroker.bench.scenarios import build_config, plan, spread_sizes


def cfg(mode: str, **options: Any) -> Any:
    return build_config(mode, server="nats://127.0.0.1:4222", **options)


def layout(mode: str, **options: Any) -> list[tuple[str, int, int]]:
    return [(s.name, s.proc, s.target) for s in plan(cfg(mode, **options))]


def test_bench_plan_one_process_by_default() -> None:
    assert layout("pubsub", pubs=2, subs=2) == [
        ("sub-1", 0, 0),
        ("sub-2", 0, 0),
        ("pub-1", 0, 0),
        ("pub-2", 0, 0),
    ]


@pytest.mark.parametrize(
    ("mode", "options", "procs"),
    [
        ("pubsub", {"pubs": 1, "subs": 1}, [0, 1]),
        ("pubsub", {"pubs": 1, "subs": 4}, [0, 0, 0, 0, 1]),  # fan-out 1:4
        ("pubsub", {"pubs": 32, "subs": 1}, [0] + [1] * 32),  # fan-in 32:1
        ("queue", {"pubs": 4, "subs": 4}, [0, 0, 0, 0, 1, 1, 1, 1]),
        ("request", {"pubs": 1, "subs": 1}, [0, 1]),
    ],
)
def test_bench_plan_two_processes_split_senders_and_receivers(
    mode: str, options: dict[str, int], procs: list[int]
) -> None:
    assert [p for _, p, _ in layout(mode, procs=2, **options)] == procs


def test_bench_plan_more_processes_are_shared_by_size() -> None:
    procs = [p for _, p, _ in layout("queue", pubs=4, subs=4, procs=4)]
    assert procs == [0, 1, 0, 1, 2, 3, 2, 3]
    procs = [p for _, p, _ in layout("pubsub", pubs=1, subs=6, procs=3)]
    assert procs == [0, 1, 0, 1, 0, 1, 2]
    assert [p for _, p, _ in layout("pub", pubs=3, procs=2)] == [0, 1, 0]


@pytest.mark.parametrize(
    ("mode", "options", "targets"),
    [
        ("pub", {}, [1]),
        ("pubsub", {}, [2, 1]),  # sub:2 pub:1, every message crosses workers
        ("pubsub", {"subs": 4}, [2, 1, 2, 1, 1]),  # half local, half remote
        ("queue", {"pubs": 4, "subs": 4}, [2, 1, 2, 1, 1, 2, 1, 2]),
        ("request", {}, [2, 1]),  # responder:2 requester:1
        ("js-pub", {"pubs": 3}, [1, 2, 1]),
    ],
)
def test_bench_plan_spread_targets(mode: str, options: dict[str, int], targets: list[int]) -> None:
    assert [t for _, _, t in layout(mode, spread=2, **options)] == targets


def test_bench_plan_three_workers() -> None:
    assert [t for _, _, t in layout("pubsub", spread=3, subs=4)] == [2, 3, 1, 2, 1]


def test_bench_plan_publishers_start_apart_in_the_cycle() -> None:
    specs = plan(cfg("pubsub", pubs=4, subs=4, subjects=100))
    assert [s.offset for s in specs if s.role == "pub"] == [0, 25, 50, 75]
    specs = plan(cfg("pubsub", pubs=2, size="16,17"))
    assert [s.offset for s in specs if s.role == "pub"] == [0, 1]


def test_bench_plan_pullers_share_the_messages() -> None:
    c = cfg("js-consume", subs=3, msgs=1000)
    specs = plan(c, {"stream": "S"}, expected=1000)
    assert [s.msgs for s in specs] == [334, 333, 333]


def test_bench_config_size_list() -> None:
    c = cfg("pubsub", size="16,17")
    assert (c.size, c.sizes) == (16, (16, 17))
    assert cfg("pub", size=8).sizes == (8,)
    assert cfg("pub").sizes == (128,)


def test_bench_config_size_range_is_a_seeded_spread() -> None:
    """--size MIN-MAX: 13 distinct sizes, log-spaced from MIN to MAX, always in the same
    shuffled order (both servers of a comparison get the same traffic)."""
    c = cfg("pubsub", size="16-4096")
    assert sorted(c.sizes) == [16, 25, 40, 64, 102, 161, 256, 406, 645, 1024, 1625, 2580, 4096]
    assert c.sizes == cfg("queue", size=" 16-4096").sizes == tuple(spread_sizes(16, 4096))
    assert c.sizes != tuple(sorted(c.sizes))  # shuffled, not a ramp
    assert c.size == c.sizes[0]
    assert sorted(cfg("pub", size="16-20").sizes) == [16, 17, 18, 19, 20]  # fewer if tight
    assert sorted(cfg("pub", size="0-1").sizes) == [0, 1]


@pytest.mark.parametrize(
    ("mode", "options", "message"),
    [
        ("pub", {"size": "16,x"}, "give a byte count, several separated by commas"),
        ("pub", {"size": "16-x"}, "a range is MIN-MAX, two byte counts"),
        ("pub", {"size": "4096-16"}, "a range needs 0 <= MIN < MAX"),
        ("request", {"size": "16-4096"}, "several --size values apply to modes pub, sub"),
        ("pub", {"size": "16,-1"}, "--size must be 0 or more bytes (got -1)"),
        ("request", {"size": "16,17"}, "several --size values apply to modes pub, sub"),
        ("js-pub", {"size": "16,17"}, "several --size values apply to modes"),
        ("pub", {"subjects": -1}, "--subjects must be 0 (one subject) or more"),
        ("pub", {"subjects": 2_000_000}, "--subjects is at most 1,000,000"),
        ("sub", {"subjects": 10, "subject": "a.*"}, "not a valid subject to add subject numbers"),
        ("js-consume", {"subjects": 10, "no_create": True}, "with --no-create it publishes none"),
        ("pub", {"spread": -1}, "--spread must be 0 (off) or a number of workers"),
        ("pub", {"warmup": 5}, "--warmup applies to modes request, js-pub, not pub"),
        ("request", {"warmup": -1}, "--warmup must be 0 or more"),
        ("js-consume", {"ack_policy": "all"}, "--ack-policy takes explicit or none"),
        ("js-consume", {"ack_policy": "none"}, "--ack-policy none applies to push consumers"),
    ],
)
def test_bench_config_rejects(mode: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as err:
        cfg(mode, **options)
    assert message in str(err.value)


def test_bench_config_accepts_new_options() -> None:
    c = cfg("queue", subjects=100, spread=2, procs=2)
    assert (c.subjects, c.spread, c.procs) == (100, 2, 2)
    assert cfg("request", warmup=200).warmup == 200
    assert cfg("js-pub", warmup=10).warmup == 10
    assert cfg("js-consume", consumer="push", ack_policy="none").ack_policy == "none"
