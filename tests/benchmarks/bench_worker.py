"""Micro-benchmark of a worker's hot path, in one process, no sockets.

Two worker shards (tests/helpers/fakes.py) share a real mesh segment. A publisher on
shard 1 is fed PUB batches; subscribers sit on shard 1 or 2. Prints ns per message
for pub-only, local pub/sub, the two sides of a cross-shard pub/sub, fan-out, and the
same when sizes alternate (runs of one subject) and when subjects alternate (no runs).

    .venv/bin/python tests/benchmarks/bench_worker.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers.fakes import connect, shard_pair

BATCH = 2000
ROUNDS = 50


def bench(label: str, fn: Callable[[], float], messages: int) -> None:
    best = min(fn() for _ in range(3))
    print(f"{label:44s} {best / messages * 1e9:7.0f} ns/msg  {messages / best / 1e6:5.2f} M msg/s")


def main() -> None:
    loop = asyncio.new_event_loop()
    with shard_pair(loop, ring_size=1 << 24) as pair:
        a, b = pair.one, pair.two
        pub = connect(a, keep=False)

        def feed(chunk: bytes, receiver_too: bool = False) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                for _ in range(ROUNDS):
                    pub.data_received(chunk)
                    if receiver_too:
                        b.on_doorbell()
                return time.perf_counter() - start

            return run

        n = BATCH * ROUNDS
        bench("pub-only (no interest)", feed(b"PUB none 16\r\n0123456789abcdef\r\n" * BATCH), n)
        connect(a, keep=False).data_received(b"SUB local 1\r\n")
        bench("pubsub 1:1, same shard", feed(b"PUB local 16\r\n0123456789abcdef\r\n" * BATCH), n)
        connect(b, keep=False).data_received(b"SUB remote 1\r\n")
        pair.settle()
        remote = b"PUB remote 16\r\n0123456789abcdef\r\n" * BATCH
        bench("pubsub 1:1, cross-shard (both sides)", feed(remote, receiver_too=True), n)
        for server in (a, a, b, b):
            connect(server, keep=False).data_received(b"SUB fan 1\r\n")
        pair.settle()
        fan = b"PUB fan 16\r\n0123456789abcdef\r\n" * BATCH
        bench("fan-out 1:4 over 2 shards (per delivery)", feed(fan, receiver_too=True), n * 4)
        mixed = b"".join(
            b"PUB remote %d\r\n%s\r\n" % (8 + i % 2, b"x" * (8 + i % 2)) for i in range(BATCH)
        )
        bench("cross-shard, sizes alternate (sized runs)", feed(mixed, receiver_too=True), n)
        connect(b, keep=False).data_received(b"SUB other 1\r\n")
        pair.settle()
        alternating = b"".join(
            b"PUB %s 16\r\n0123456789abcdef\r\n" % (b"remote" if i % 2 else b"other")
            for i in range(BATCH)
        )
        bench("cross-shard, subjects alternate (no runs)", feed(alternating, receiver_too=True), n)
        for server in (a, a, b, b):
            connect(server, keep=False).data_received(b"SUB work grp 1\r\n")
        pair.settle()
        queue = b"PUB work 16\r\n0123456789abcdef\r\n" * BATCH
        bench("queue group, 4 members over 2 shards", feed(queue, receiver_too=True), n)
    loop.close()


if __name__ == "__main__":
    main()
