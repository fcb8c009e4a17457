"""Publish budgets of accounts and users, shared by every worker through shared memory:
what makes a `rate_limit` on an account (or a user) hold broker-wide.

Layout: a names area (how many keys, then each key in 64 bytes, layout.TABLE_NAME_SIZE, NUL padded:
"account:A", "user:bob"), then one row per shard of CELLS 8-byte cells per key.

The budget is a token bucket in virtual time (GCRA). For a key and a kind of token
(messages, or payload bytes), each worker w owns two cells: TAKEN_w, the virtual time
(ns) of every token it has taken so far (a token costs 1e9 / rate ns), and FLOOR_w. The
bucket's theoretical arrival time is

    TAT = max_w FLOOR_w + sum_w TAKEN_w

A worker may take tokens at time ``now`` while TAT stays below ``now + tau`` (tau: the
burst's virtual time). When TAT lies in the past (the key was idle) the worker raises
its FLOOR to ``now - sum TAKEN``: idle time never accrues more than the burst. Both
combine without a lock: a sum of cells each written by one worker, and a maximum,
which two workers raising their floors at once cannot overshoot (the larger wins).

Workers take tokens in leases (a few milliseconds of the rate, see worker/ratelimit.py)
when their local share runs out, never per message; an unused lease is given back on
the tick (TAKEN_w lowered by its worker). The clock is CLOCK_MONOTONIC, the same in
every process of the machine.

Worst case. Two workers that read the cells at the same instant may both take a lease
of L tokens from the same room: the tokens taken in any interval of T seconds are at
most burst + rate * T + (W - 1) * L for W workers. A lease taken before the interval
may be spent within it (one per worker at most), so what publishers get through in any
interval of T seconds is bounded by

    burst + rate * T + (2W - 1) * L

(for bytes, plus one message's overdraft per worker: a message is taken whole once any
byte of budget is left). A dead worker's cells stay as they were: its unused lease is
lost, never doubled.

Owners: each worker writes only its own row (TAKEN, FLOOR and its throttling counters);
the supervisor writes the names (at start and on reload). Keys are numbered by
`rate_keys` (config/options.py order: the same on every shard for the same Options);
a reload that renumbers them has each worker move its own cells to the new numbers
when it applies the reload (worker/ratelimit.py), so for a moment two workers may read
one key's cells under different names: a reload can let through up to one lease more.
"""

from __future__ import annotations

import math
import mmap
from typing import NamedTuple

from shardbroker.const import MAX_RATE_KEYS
from shardbroker.mesh.layout import (
    attach_readonly_segment,
    attach_segment,
    create_segment,
    names_area_size,
    read_names,
    unlink_segment,
    write_names,
)

NAMES_SIZE = names_area_size(MAX_RATE_KEYS)
CELLS = 8
ROW_WORDS = MAX_RATE_KEYS * CELLS
ROW_SIZE = ROW_WORDS * 8

# Cells of a key: per kind of token (MSGS, BYTES) its TAKEN and FLOOR, then counters of
# what the limit did on this worker, for monitoring (read-only for everyone else).
MSGS = 0
BYTES = 2
THROTTLES = 4  # times a publisher was held back
THROTTLED_NS = 5  # how long publishers were held, added up
REJECTED = 6  # publishes refused (mode reject)
ADMITTED = 7  # messages let through


class RateFigures(NamedTuple):
    """What a key's limit did, over every worker (monitoring)."""

    throttles: int = 0  # publishers held back
    throttled_ns: int = 0  # time they were held, added up
    rejected: int = 0  # publishes refused
    admitted: int = 0  # messages let through


def segment_name(port: int) -> str:
    return f"/shardbroker-{port}-rates"


def segment_size(n_shards: int) -> int:
    return NAMES_SIZE + n_shards * ROW_SIZE


def create(port: int, n_shards: int) -> mmap.mmap:
    return create_segment(segment_name(port), segment_size(n_shards))


def attach(port: int, n_shards: int) -> mmap.mmap:
    return attach_segment(segment_name(port), segment_size(n_shards))


def attach_readonly(port: int) -> RateTable:
    """The table of a running broker, read-only (`shardbroker stats`, the monitor).
    Raises ``posix_ipc.ExistentialError`` when there is none on that port."""
    buf = attach_readonly_segment(segment_name(port))
    return RateTable(buf, (len(buf) - NAMES_SIZE) // ROW_SIZE)


def unlink(name: str) -> None:
    unlink_segment(name)


class RateTable:
    """The key names, and every shard's row of budget cells."""

    def __init__(self, buf: mmap.mmap, n_shards: int) -> None:
        self.buf = buf
        self.n_shards = n_shards
        # Aligned 8-byte signed words after the names: one move per store or load.
        self.words = memoryview(buf)[NAMES_SIZE:].cast("q")

    # -- names (the supervisor writes, readers read) -----------------------------------

    def set_names(self, names: list[str]) -> None:
        write_names(self.buf, names, MAX_RATE_KEYS)

    def names(self) -> list[str]:
        return read_names(self.buf, MAX_RATE_KEYS)

    # -- budgets (each worker its own row) ----------------------------------------------

    def take(
        self, shard: int, index: int, kind: int, want: int, rate: float, burst: int, now: int
    ) -> tuple[int, int]:
        """Take up to `want` tokens of `kind` (MSGS or BYTES) for key `index` at time
        `now` (monotonic ns): (tokens taken, ns until some room returns when none)."""
        words = self.words
        n = self.n_shards
        cell = index * CELLS + kind
        taken = 0
        floor = 0
        for other in range(n):
            base = other * ROW_WORDS + cell
            taken += words[base]
            value = words[base + 1]
            if value > floor:
                floor = value
        tat = floor + taken
        own = shard * ROW_WORDS + cell
        if tat < now:
            words[own + 1] = now - taken
            tat = now
        cost = 1e9 / rate
        room = now + burst * cost - tat
        tokens = min(want, int(room / cost)) if room > 0 else 0
        if tokens <= 0:
            return 0, max(int(cost - room), 1)
        words[own] += math.ceil(tokens * cost)
        return tokens, 0

    def give_back(self, shard: int, index: int, kind: int, tokens: int, rate: float) -> None:
        """Return tokens taken and not spent (only ever by the worker that took them)."""
        self.words[shard * ROW_WORDS + index * CELLS + kind] -= int(tokens * 1e9 / rate)

    def get(self, shard: int, index: int, cell: int) -> int:
        return self.words[shard * ROW_WORDS + index * CELLS + cell]

    def set(self, shard: int, index: int, cell: int, value: int) -> None:
        self.words[shard * ROW_WORDS + index * CELLS + cell] = value

    def move_row(self, shard: int, moves: dict[int, int]) -> None:
        """Renumber this shard's cells (old index -> new index) after a reload; keys
        that are gone are cleared."""
        words = self.words
        base = shard * ROW_WORDS
        saved = {old: list(words[base + old * CELLS : base + (old + 1) * CELLS]) for old in moves}
        words[base : base + ROW_WORDS] = memoryview(bytes(ROW_SIZE)).cast("q")
        for old, new in moves.items():
            if 0 <= new < MAX_RATE_KEYS:
                for i, value in enumerate(saved[old]):
                    words[base + new * CELLS + i] = value

    def totals(self, index: int) -> RateFigures:
        """The monitoring counters of key `index`, summed over every shard."""
        words = self.words
        return RateFigures(
            *(
                sum(words[s * ROW_WORDS + index * CELLS + cell] for s in range(self.n_shards))
                for cell in (THROTTLES, THROTTLED_NS, REJECTED, ADMITTED)
            )
        )

    def figures(self) -> dict[str, RateFigures]:
        """Every named key's counters (`shardbroker stats`, the monitor)."""
        return {name: self.totals(index) for index, name in enumerate(self.names())}

    def release(self) -> None:
        self.words.release()
