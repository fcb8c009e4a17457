"""mesh/rate_table.py: budgets in virtual time, shared by rows of one writer each."""

from __future__ import annotations

import mmap

from shardbroker.mesh.rate_table import (
    ADMITTED,
    MSGS,
    REJECTED,
    ROW_WORDS,
    RateTable,
    segment_size,
)

SECOND = 1_000_000_000


def table(shards: int) -> RateTable:
    return RateTable(mmap.mmap(-1, segment_size(shards)), shards)


def test_rate_table_gives_the_burst_then_the_rate() -> None:
    t = table(2)
    now = 50 * SECOND
    # An idle key has its burst (10), no more, however long it was idle.
    assert t.take(0, 3, MSGS, 100, rate=100.0, burst=10, now=now) == (10, 0)
    got, wait = t.take(0, 3, MSGS, 100, rate=100.0, burst=10, now=now)
    assert got == 0 and 0 < wait <= SECOND // 100
    # 0.1 s later: ten more, for any worker.
    assert t.take(1, 3, MSGS, 100, rate=100.0, burst=10, now=now + SECOND // 10)[0] == 10
    # Another key is not touched.
    assert t.take(1, 4, MSGS, 100, rate=100.0, burst=10, now=now)[0] == 10


def test_rate_table_never_lets_more_than_burst_plus_rate_through() -> None:
    """Two workers taking leases in turn over 10 s get burst + rate * 10 s, however
    they interleave (one at a time, no race)."""
    t = table(3)
    start = 10 * SECOND
    taken = 0
    for step in range(1000):
        now = start + step * SECOND // 100
        shard = 1 + step % 2
        taken += t.take(shard, 0, MSGS, 7, rate=300.0, burst=30, now=now)[0]
    assert taken <= 30 + 300 * 10
    assert taken >= 300 * 10 - 7  # and nothing is wasted while both ask


def test_rate_table_concurrent_takes_overshoot_by_a_lease_per_other_worker() -> None:
    """Workers that all read the cells before any of them writes each get a lease from
    the same room: at most (W - 1) leases more than the budget, paid back before anyone
    gets more."""
    shards, lease, burst = 4, 5, 5
    t = table(shards)
    now = SECOND
    before = bytes(t.words.cast("B"))
    taken = 0
    for shard in range(shards):
        # This worker's view: the cells as they were before anybody took.
        view = table(shards)
        view.words.cast("B")[:] = before
        got, _ = view.take(shard, 0, MSGS, lease, rate=100.0, burst=burst, now=now)
        taken += got
        row = slice(shard * ROW_WORDS, (shard + 1) * ROW_WORDS)
        t.words[row] = view.words[row]  # what it writes: its own row only
    assert taken == shards * lease == burst + (shards - 1) * lease
    assert t.take(0, 0, MSGS, lease, rate=100.0, burst=burst, now=now)[0] == 0
    # The overshoot (15 tokens) is paid back at the rate: 0.15 s.
    later = now + 15 * SECOND // 100
    assert t.take(0, 0, MSGS, lease, rate=100.0, burst=burst, now=later - 1)[0] == 0
    assert t.take(0, 0, MSGS, lease, rate=100.0, burst=burst, now=later + SECOND // 100)[0] == 1


def test_rate_table_give_back_and_renumbering() -> None:
    t = table(2)
    now = SECOND
    assert t.take(0, 1, MSGS, 10, rate=10.0, burst=10, now=now)[0] == 10
    assert t.take(1, 1, MSGS, 10, rate=10.0, burst=10, now=now)[0] == 0
    t.give_back(0, 1, MSGS, 4, rate=10.0)
    assert t.take(1, 1, MSGS, 10, rate=10.0, burst=10, now=now)[0] == 4
    t.set(0, 1, REJECTED, 3)
    t.set(1, 1, REJECTED, 2)
    t.set(1, 1, ADMITTED, 9)
    assert t.totals(1)[2:] == (5, 9)
    # A reload moves key 1 to 0 and drops key 2 on shard 0.
    t.set(0, 2, REJECTED, 7)
    t.move_row(0, {1: 0, 2: -1})
    assert t.get(0, 0, REJECTED) == 3 and t.get(0, 1, REJECTED) == 0
    assert t.get(0, 2, REJECTED) == 0
    t.set_names(["account:A", "user:b"])
    assert t.names() == ["account:A", "user:b"]
    t.release()
