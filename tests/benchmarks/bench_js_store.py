"""Micro-benchmark of the JetStream stream stores, in one process.

Per-message cost of store_msg with a flush() every BATCH messages (what the storage
process does per batch of publishes before sending the PubAcks), for the memory store and
the file store (in a temporary directory, so the page cache, no fsync); then the cost of
reading the messages back with load_next_msg and load_msg.

    .venv/bin/python tests/benchmarks/bench_js_store.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shardbroker.jetstream.filestore import FileStore
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.store import StoreLimits, StreamStore

BATCH = 100
MESSAGES = 100_000
PAYLOAD = b"0123456789abcdef"


def bench(label: str, fn: Callable[[], float], messages: int) -> None:
    best = min(fn() for _ in range(3))
    print(f"{label:52s} {best / messages * 1e9:7.0f} ns/msg  {messages / best / 1e6:5.2f} M msg/s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [0]

        def make(kind: str, limits: StoreLimits) -> StreamStore:
            runs[0] += 1
            if kind == "mem":
                return MemStore("BENCH", limits)
            return FileStore(f"{tmp}/{runs[0]}/msgs", "BENCH", limits)

        def publish(kind: str, subjects: list[str], limits: StoreLimits) -> Callable[[], float]:
            def run() -> float:
                store = make(kind, limits)
                n = len(subjects)
                start = time.perf_counter()
                for i in range(0, MESSAGES, BATCH):
                    for j in range(i, i + BATCH):
                        store.store_msg(subjects[j % n], b"", PAYLOAD)
                    store.flush()
                elapsed = time.perf_counter() - start
                store.close()
                return elapsed

            return run

        def read(kind: str) -> Callable[[], float]:
            store = make(kind, StoreLimits())
            for i in range(MESSAGES):
                store.store_msg(f"orders.{i % 8}", b"", PAYLOAD)
            store.flush()

            def run() -> float:
                start = time.perf_counter()
                seq = 0
                while (msg := store.load_next_msg("orders.3", seq)) is not None:
                    seq = msg.seq + 1
                for s in range(1, MESSAGES + 1, 8):
                    store.load_msg(s)
                return time.perf_counter() - start

            return run

        one = ["orders.new"]
        many = [f"orders.{i}" for i in range(1000)]
        for kind in ("mem", "file"):
            bench(
                f"{kind}: store_msg 16 B + flush/{BATCH}, one subject",
                publish(kind, one, StoreLimits()),
                MESSAGES,
            )
            bench(f"{kind}: same, 1000 subjects", publish(kind, many, StoreLimits()), MESSAGES)
            bench(
                f"{kind}: same, at max_msgs=10000 (discard old)",
                publish(kind, one, StoreLimits(max_msgs=10_000)),
                MESSAGES,
            )
            bench(
                f"{kind}: KV-like, 1000 keys, history 1",
                publish(kind, many, StoreLimits(max_msgs_per_subject=1)),
                MESSAGES,
            )
            bench(f"{kind}: load_next (filtered 1/8) + load_msg 1/8", read(kind), MESSAGES // 4)


if __name__ == "__main__":
    main()
