"""Worker liveness: judging the heartbeats that shards write from their own event loop.

Runs in the supervisor, on its tick. Each shard's loop stores ``time.monotonic_ns()`` into
``heartbeat_ns`` of its slot of the stats segment every TICK_INTERVAL (server.py
``tick``); CLOCK_MONOTONIC is one clock for every process of the machine, so the
supervisor compares it with its own reading. Nothing here talks to a shard: a loop that
is stuck (an endless loop, a blocking call, SIGSTOP) cannot answer anyway, which is why
liveness is never asked from a side thread of the shard.

Judged: worker shards that reported READY and were not already sentenced. A worker that
has not ticked yet since READY is judged from the moment READY arrived. The storage
shard blocks on disk by design (fsync, recovery), so it is only reported, never killed.
nats-server has no equivalent (it is one process); the option is
``worker_heartbeat_timeout`` (0: off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol


class Judged(Protocol):
    """What liveness needs to know of a shard (arbiter.ShardProcess)."""

    shard_id: int
    role: str
    pid: int
    ready: bool
    ready_ns: int
    sentenced: bool


def silent_for_ns(shard: Judged, heartbeat_ns: int, now_ns: int) -> int:
    """How long the shard's loop has not written a heartbeat (since READY at worst)."""
    last = max(heartbeat_ns, shard.ready_ns)
    return max(0, now_ns - last)


def stuck_shards(
    shards: Iterable[Judged],
    heartbeat_of: Callable[[int], int],
    now_ns: int,
    timeout_ns: int,
) -> list[tuple[Judged, int]]:
    """(shard, silent ns) for every live, ready, not yet sentenced shard past the timeout."""
    if timeout_ns <= 0:
        return []
    found = []
    for shard in shards:
        if not shard.pid or not shard.ready or shard.sentenced:
            continue
        silent = silent_for_ns(shard, heartbeat_of(shard.shard_id), now_ns)
        if silent > timeout_ns:
            found.append((shard, silent))
    return found
