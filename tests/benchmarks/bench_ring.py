"""Ring round-trip micro-benchmark: 16-byte-payload frames, written in batches of 64.

    .venv/bin/python tests/benchmarks/bench_ring.py [--seconds 2] [--ring-size 4194304]

Two measurements:

* in-process: one loop does try_write(batch) + peek() + release() (+ doorbell ring and
  drain), i.e. the pure per-batch cost of the ring on both sides;
* two processes: a producer and a consumer process (spawned) stream batches through the
  ring of a real shared-memory segment, waking each other through doorbells.

Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import mmap
import multiprocessing
import os
import select
import time
import uuid
from multiprocessing import reduction
from multiprocessing.connection import Connection

from shardbroker.mesh.doorbell import Doorbell, create_doorbell
from shardbroker.mesh.layout import MeshLayout, attach_segment, create_segment, unlink_segment
from shardbroker.mesh.ring import Ring

BATCH = 64
# A representative inter-shard frame: RMSG control line + 16-byte payload.
FRAME = b"RMSG $G bench.subject 16\r\n" + b"0123456789abcdef" + b"\r\n"
PAYLOAD_BYTES = 16


def _report(label: str, frames: int, seconds: float) -> None:
    rate = frames / seconds
    print(
        f"{label:<34} {rate / 1e6:7.2f} M frames/s  "
        f"{rate * len(FRAME) / 1e6:8.1f} MB/s on the wire  "
        f"{rate * PAYLOAD_BYTES / 1e6:7.1f} MB/s payload  "
        f"{seconds / frames * BATCH * 1e9:7.0f} ns/batch"
    )


def bench_in_process(seconds: float, ring_size: int, with_doorbell: bool) -> None:
    layout = MeshLayout(2, ring_size)
    buf = mmap.mmap(-1, layout.total_size)
    producer = Ring(buf, layout.ring_offset(0, 1), ring_size)
    consumer = Ring(buf, layout.ring_offset(0, 1), ring_size)
    bell = Doorbell(create_doorbell())
    batch = FRAME * BATCH
    try_write, peek, release = producer.try_write, consumer.peek, consumer.release
    ring, drain = bell.ring, bell.drain
    batches = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            try_write(batch)
            if with_doorbell:
                ring()
                drain()
            release(len(peek()))
        batches += 1000
        now = time.perf_counter()
        if now >= deadline:
            break
    label = "in-process + doorbell" if with_doorbell else "in-process, ring only"
    _report(label, batches * BATCH, now - start)
    bell.close()
    producer.close()
    consumer.close()
    buf.close()


class _PassFd:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[object, tuple[object]]:
        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dup: object) -> int:
    return dup.detach()  # type: ignore[attr-defined, no-any-return]


def _producer(name: str, size: int, ring_size: int, own_fd: int, peer_fd: int, n: int) -> None:
    buf = attach_segment(name, size)
    ring = Ring(buf, MeshLayout(2, ring_size).ring_offset(0, 1), ring_size)
    own, peer = Doorbell(own_fd), Doorbell(peer_fd)
    batch = FRAME * BATCH
    try_write, wake = ring.try_write, peer.ring
    for _ in range(n):
        while not try_write(batch):
            select.select([own], [], [])
            own.drain()
        wake()
    ring.close()
    buf.close()


def _consumer(
    name: str, size: int, ring_size: int, own_fd: int, peer_fd: int, total: int, out: Connection
) -> None:
    buf = attach_segment(name, size)
    ring = Ring(buf, MeshLayout(2, ring_size).ring_offset(0, 1), ring_size)
    own, peer = Doorbell(own_fd), Doorbell(peer_fd)
    peek, release = ring.peek, ring.release
    received = 0
    wakeups = 0
    start = None
    while received < total:
        own.drain()
        while data := peek():
            if start is None:
                start = time.perf_counter()  # from the first byte: spawn time excluded
            received += len(data)
            if release(len(data)):
                peer.ring()
        if received < total:
            select.select([own], [], [])
            wakeups += 1
    assert start is not None
    out.send((time.perf_counter() - start, wakeups))
    ring.close()
    buf.close()


def bench_two_processes(seconds: float, ring_size: int) -> None:
    # Roughly `seconds` long at the expected two-process rate.
    n_batches = max(1000, int(seconds * 20_000))
    layout = MeshLayout(2, ring_size)
    name = f"/shardbroker-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    seg = create_segment(name, layout.total_size)
    producer_fd, consumer_fd = create_doorbell(), create_doorbell()
    ctx = multiprocessing.get_context("spawn")
    total = n_batches * BATCH * len(FRAME)
    receive, send = ctx.Pipe(duplex=False)
    procs = [
        ctx.Process(
            target=_consumer,
            args=(
                name,
                layout.total_size,
                ring_size,
                _PassFd(consumer_fd),
                _PassFd(producer_fd),
                total,
                send,
            ),
        ),
        ctx.Process(
            target=_producer,
            args=(
                name,
                layout.total_size,
                ring_size,
                _PassFd(producer_fd),
                _PassFd(consumer_fd),
                n_batches,
            ),
        ),
    ]
    try:
        for p in procs:
            p.start()
        send.close()
        elapsed, wakeups = receive.recv()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise SystemExit("a benchmark process failed")
        _report("two processes + doorbells", n_batches * BATCH, elapsed)
        print(f"{'':<34} consumer woke {wakeups} times for {n_batches} batches")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        seg.close()
        unlink_segment(name)
        os.close(producer_fd)
        os.close(consumer_fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--ring-size", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args()
    print(
        f"frame {len(FRAME)} B ({PAYLOAD_BYTES} B payload), batch {BATCH}, ring {args.ring_size} B"
    )
    bench_in_process(args.seconds, args.ring_size, with_doorbell=False)
    bench_in_process(args.seconds, args.ring_size, with_doorbell=True)
    bench_two_processes(args.seconds, args.ring_size)


if __name__ == "__main__":
    main()
