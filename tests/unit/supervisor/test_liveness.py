"""Judging shard heartbeats (supervisor.liveness); no processes."""

from __future__ import annotations

from dataclasses import dataclass

from shardbroker.supervisor.liveness import stuck_shards

S = 1_000_000_000


@dataclass
class Shard:
    shard_id: int
    role: str = "worker"
    pid: int = 100
    ready: bool = True
    ready_ns: int = 0
    sentenced: bool = False


def test_liveness_judges_only_ready_live_unsentenced_shards() -> None:
    shards = [
        Shard(1),  # silent since its beat at 1 s: stuck at 10 s
        Shard(2),  # fresh beat
        Shard(3, ready=False),  # still booting: READY_TIMEOUT's business
        Shard(4, pid=0),  # dead, being restarted
        Shard(5, sentenced=True),  # already killed, not reaped yet
        Shard(6, ready_ns=8 * S),  # ready lately, has not ticked yet
    ]
    beats = {1: 1 * S, 2: 9 * S, 3: 0, 4: 0, 5: 0, 6: 0}
    stuck = stuck_shards(shards, beats.__getitem__, 10 * S, 5 * S)
    assert [(s.shard_id, silent) for s, silent in stuck] == [(1, 9 * S)]


def test_liveness_timeout_zero_is_off() -> None:
    assert stuck_shards([Shard(1)], lambda _: 0, 100 * S, 0) == []
