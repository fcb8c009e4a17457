"""Micro-benchmark: Sublist.match throughput for cache hits and misses.

Run: python tests/benchmarks/bench_sublist.py [--subs N] [--seconds S]
Not collected by pytest (no test_ prefix). Prints matches/second per scenario.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from shardbroker.protocol.subjects import is_valid_subject, subject_matches
from shardbroker.protocol.sublist import Sublist


class Sub:
    __slots__ = ("queue", "subject")

    def __init__(self, subject: bytes, queue: bytes | None = None) -> None:
        self.subject = subject
        self.queue = queue


def make_result(plain: list, queues: dict) -> tuple:
    return (tuple(plain), tuple((q, tuple(m)) for q, m in queues.items()))


def build(n_subs: int) -> Sublist:
    """A mix like a busy account: literals, inbox wildcards, a few broad wildcards."""
    sl: Sublist = Sublist(make_result)
    for i in range(n_subs):
        kind = i % 10
        if kind < 6:
            sl.insert(Sub(b"orders.%d.created" % i))
        elif kind < 8:
            sl.insert(Sub(b"_INBOX.%d.*" % i))
        elif kind == 8:
            sl.insert(Sub(b"orders.%d.*" % (i % 50), b"workers"))
        else:
            sl.insert(Sub(b"metrics.%d.>" % (i % 20)))
    sl.insert(Sub(b"orders.>"))
    return sl


def rate(fn: Callable[[], int], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += fn()
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subs", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()

    sl = build(args.subs)
    match = sl.match
    hot = [b"orders.%d.created" % i for i in range(0, 600, 10)]  # fits in the cache
    for s in hot:
        match(s)

    def hits() -> int:
        for s in hot:
            match(s)
        return len(hot)

    # Distinct subjects each round, more than the cache holds: every match is a miss
    # and the cache sweeps (its cost is included, as in production).
    counter = [0]

    def misses() -> int:
        base = counter[0]
        counter[0] = base + 100
        for i in range(base, base + 100):
            match(b"orders.%d.created" % (i % args.subs))
            match(b"metrics.%d.cpu.load" % i)
        return 200

    def misses_uncached() -> int:
        for s in hot[:50]:
            sl.clear_cache()
            match(s)
        return 50

    def validate() -> int:
        for s in hot:
            is_valid_subject(s)
        return len(hot)

    def brute() -> int:
        for s in hot[:20]:
            subject_matches(b"orders.*.created", s)
        return 20

    print(f"sublist: {args.subs} subscriptions, {args.seconds:.1f}s per scenario")
    for name, fn in (
        ("match, cache hit", hits),
        ("match, cache miss (sweeping)", misses),
        ("match, cache miss (cleared)", misses_uncached),
        ("is_valid_subject", validate),
        ("subject_matches", brute),
    ):
        print(f"  {name:32s} {rate(fn, args.seconds):>14,.0f} /s")


if __name__ == "__main__":
    main()
