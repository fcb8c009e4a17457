"""SPSC ring: wrap-around, full ring and back-pressure flag, discards, and a real
producer and consumer in two processes talking through a small ring and doorbells.

Most tests use two ``Ring`` objects over the same region, one per role, as the producer
and consumer shards do.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import random
import select
import struct
import uuid
from collections.abc import Callable, Iterator
from multiprocessing import reduction
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.mesh.doorbell import Doorbell, create_doorbell
from shardbroker.mesh.layout import (
    READ_COUNTER_OFFSET,
    WAITING_FLAG_OFFSET,
    WRITE_COUNTER_OFFSET,
    MeshLayout,
    attach_segment,
    create_segment,
    unlink_segment,
)
from shardbroker.mesh.ring import Ring

_U64 = struct.Struct("=Q")


@contextlib.contextmanager
def _ring_pair(size: int = 4096) -> Iterator[tuple[Ring, Ring, mmap.mmap, int]]:
    """(producer view, consumer view, buffer, header offset) over an anonymous map.

    Uses ring 2->0 of a three-shard layout so the ring does not start at offset 0.
    """
    layout = MeshLayout(3, size)
    offset = layout.ring_offset(2, 0)
    buf = mmap.mmap(-1, layout.total_size)
    producer = Ring(buf, offset, size)
    consumer = Ring(buf, offset, size)
    try:
        yield producer, consumer, buf, offset
    finally:
        producer.close()
        consumer.close()
        buf.close()  # raises BufferError if a counter view leaked


@pytest.fixture
def pair() -> Iterator[tuple[Ring, Ring]]:
    with _ring_pair(4096) as (producer, consumer, _, _):
        yield producer, consumer


def _pattern(seq: int, n: int) -> bytes:
    """n deterministic bytes that differ from one seq to the next."""
    return bytes((seq * 7 + i) & 0xFF for i in range(n))


def _header(buf: mmap.mmap, offset: int) -> tuple[int, int, int]:
    return (
        _U64.unpack_from(buf, offset + WRITE_COUNTER_OFFSET)[0],
        _U64.unpack_from(buf, offset + WAITING_FLAG_OFFSET)[0],
        _U64.unpack_from(buf, offset + READ_COUNTER_OFFSET)[0],
    )


# -- single process ------------------------------------------------------------------


def test_ring_starts_empty(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.capacity == 4096
    assert producer.free_space() == 4096
    assert consumer.pending() == 0
    assert consumer.peek() == b""
    assert consumer.write_counter == consumer.read_counter == 0


def test_ring_write_peek_release(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.try_write(b"hello ")
    assert producer.try_write(bytearray(b"mesh"))
    assert producer.try_write(memoryview(b"!!"))
    assert producer.try_write(b"")  # empty write: a no-op that succeeds
    assert consumer.pending() == 12
    assert producer.free_space() == 4096 - 12
    assert consumer.peek() == b"hello mesh!!"
    assert consumer.peek() == b"hello mesh!!"  # peek does not consume
    assert consumer.release(6) is False
    assert consumer.peek() == b"mesh!!"
    assert consumer.read_counter == 6
    assert consumer.release(6) is False
    assert consumer.peek() == b""
    assert (producer.write_counter, producer.read_counter) == (12, 12)
    assert producer.free_space() == 4096


def test_ring_header_layout_in_shared_memory() -> None:
    with _ring_pair(4096) as (producer, consumer, buf, offset):
        assert producer.try_write(b"abcdef")
        consumer.release(2)
        assert _header(buf, offset) == (6, 0, 2)
        assert buf[offset + 640 : offset + 646] == b"abcdef"  # data follows the header
        assert not producer.try_write(bytes(4093))  # 4092 free
        assert _header(buf, offset) == (6, 1, 2)


def test_ring_wraparound_keeps_data_in_order(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    rng = random.Random(1)
    model = bytearray()
    wraps = 0
    for seq in range(5000):
        data = _pattern(seq, rng.randrange(1, 700))
        position = producer.write_counter & (producer.capacity - 1)
        if producer.try_write(data):
            model += data
            if position + len(data) > producer.capacity:
                wraps += 1
        else:
            assert len(data) > 4096 - len(model)
        assert consumer.peek() == model
        # Release whole or part of what is pending, sometimes nothing.
        n = rng.choice((0, len(model), rng.randrange(0, len(model) + 1)))
        consumer.release(n)
        del model[:n]
    assert wraps > 100
    assert consumer.write_counter > 100 * 4096


def test_ring_wrapping_write_of_every_buffer_type(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    for kind in (bytes, bytearray, memoryview):
        # Move the write position to 4000: 96 bytes before the end of the data area.
        filler = (4000 - (producer.write_counter & 4095)) % 4096
        assert producer.try_write(bytes(filler))
        consumer.release(filler)
        data = _pattern(3, 1000)
        assert producer.try_write(kind(data))  # 96 bytes at the end, 904 at the start
        assert consumer.peek() == data
        consumer.release(1000)


def test_ring_full_sets_waiting_flag_and_release_reports_once(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.try_write(bytes(4096))  # exactly the capacity fits
    assert producer.free_space() == 0
    assert producer.try_write(b"x") is False
    assert producer.try_write(b"x") is False
    assert consumer.peek() == bytes(4096)  # the failed writes wrote nothing
    assert consumer.release(1) is True  # the producer was waiting: ring its doorbell
    assert consumer.release(1) is False  # ...only once
    assert producer.try_write(b"xy")
    assert consumer.release(4094) is False
    assert consumer.peek() == b"xy"


def test_ring_frame_larger_than_free_space_waits_for_release(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.try_write(_pattern(1, 3000))
    frame = _pattern(2, 2000)  # < capacity, > free space
    assert producer.try_write(frame) is False
    assert consumer.pending() == 3000
    assert consumer.release(500) is True
    assert producer.try_write(frame) is False  # 1596 free: still too small
    assert consumer.release(404) is True
    assert producer.try_write(frame) is True  # exactly 2000 free
    assert producer.free_space() == 0
    assert consumer.peek() == _pattern(1, 3000)[904:] + frame
    assert consumer.release(4096) is False


def test_ring_frame_larger_than_capacity_raises(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    with pytest.raises(ValueError, match="cannot fit"):
        producer.try_write(bytes(4097))
    assert producer.try_write(b"abc")
    with pytest.raises(ValueError, match="cannot fit"):
        producer.try_write(bytes(5000))
    assert consumer.peek() == b"abc"
    assert consumer.release(3) is False  # a too-large write does not mark the producer waiting


def test_ring_release_beyond_write_raises(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.try_write(b"abcd")
    with pytest.raises(ValueError, match="only 4 pending"):
        consumer.release(5)
    with pytest.raises(ValueError):
        consumer.release(-1)
    assert consumer.read_counter == 0
    assert consumer.release(4) is False
    with pytest.raises(ValueError):
        consumer.release(1)
    assert consumer.release(0) is False


def test_ring_discard_to(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    for seq in range(3):
        assert producer.try_write(_pattern(seq, 100))
    consumer.release(100)
    consumer.discard_to(50)  # behind the read counter: no-op
    assert consumer.read_counter == 100
    consumer.discard_to(301)  # beyond the write counter: no-op
    assert consumer.read_counter == 100
    consumer.discard_to(200)
    assert consumer.read_counter == 200
    assert consumer.peek() == _pattern(2, 100)
    consumer.discard_to(300)
    assert consumer.pending() == 0
    assert consumer.peek() == b""


def test_ring_discard_all(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    assert producer.try_write(bytes(1000))
    assert consumer.discard_all() is False
    assert consumer.pending() == 0
    assert consumer.read_counter == 1000
    assert producer.try_write(bytes(4096))
    assert producer.try_write(b"z") is False
    assert consumer.discard_all() is True  # the producer was waiting: ring its doorbell
    assert producer.free_space() == 4096
    assert producer.try_write(b"z")
    assert consumer.peek() == b"z"


def test_ring_write_rechecks_after_setting_waiting_flag() -> None:
    # The lost-wake-up race: the consumer releases everything between the producer's
    # "no room" check and its flag store. The producer's re-check after the fence must
    # see the room and write, rather than sleep with nobody left to wake it.
    with _ring_pair(4096) as (producer, consumer, buf, offset):
        assert producer.try_write(bytes(4000))
        real_acquire = producer._fence_acquire
        woke: list[bool] = []

        def consumer_runs_inside_the_window() -> bool:
            if not woke:
                woke.append(consumer.release(4000))
            return real_acquire()

        producer._fence_acquire = consumer_runs_inside_the_window  # type: ignore[misc]
        assert producer.try_write(_pattern(9, 200)) is True
        assert woke == [True]  # the consumer saw the flag: at most a spurious doorbell
        assert consumer.peek() == _pattern(9, 200)
        assert _header(buf, offset) == (4200, 0, 4000)


def test_ring_large_counters_keep_positions() -> None:
    # Counters are 64-bit byte counts; positions come from the low bits only.
    with _ring_pair(4096) as (producer, consumer, buf, offset):
        start = 2**40 * 3 + 4000  # 96 bytes before a wrap
        _U64.pack_into(buf, offset + WRITE_COUNTER_OFFSET, start)
        _U64.pack_into(buf, offset + READ_COUNTER_OFFSET, start)
        data = _pattern(5, 300)
        assert producer.try_write(data)
        assert consumer.peek() == data
        assert consumer.release(300) is False
        assert consumer.read_counter == start + 300


def test_ring_rejects_bad_geometry() -> None:
    buf = mmap.mmap(-1, 3 * 4096)
    try:
        with pytest.raises(ValueError, match="power of two"):
            Ring(buf, 0, 3000)
        with pytest.raises(ValueError, match="aligned"):
            Ring(buf, 8, 4096)
        with pytest.raises(ValueError, match="overruns"):
            Ring(buf, 2 * 4096, 4096)
    finally:
        buf.close()


def test_ring_close_releases_the_map() -> None:
    buf = mmap.mmap(-1, 8192)
    ring = Ring(buf, 0, 4096)
    with pytest.raises(BufferError):
        buf.close()  # the counter views export the buffer
    ring.close()
    ring.close()
    assert "closed" in repr(ring)
    buf.close()


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(("write", "release", "discard")), st.integers(0, 5000)),
        max_size=80,
    )
)
def test_ring_matches_a_model(ops: list[tuple[str, int]]) -> None:
    with _ring_pair(4096) as (producer, consumer, _, _):
        model = bytearray()
        waiting = False
        for seq, (op, n) in enumerate(ops):
            if op == "write":
                data = _pattern(seq, n)
                if n > 4096:
                    with pytest.raises(ValueError):
                        producer.try_write(data)
                elif n <= 4096 - len(model):
                    assert producer.try_write(data)
                    model += data
                else:
                    assert not producer.try_write(data)
                    waiting = True
            elif op == "release":
                n = min(n, len(model))
                assert consumer.release(n) is waiting
                waiting = False
                del model[:n]
            else:
                assert consumer.discard_all() is waiting
                waiting = False
                model.clear()
            assert consumer.peek() == model
            assert consumer.pending() == len(model)
            assert producer.free_space() == 4096 - len(model)


def test_ring_bounded_peek_cuts_between_commits(pair: tuple[Ring, Ring]) -> None:
    producer, consumer = pair
    for size in (300, 500, 200):
        assert producer.try_write(b"x" * size)
    assert len(consumer.peek(800)) == 800  # the first two commits fit the limit
    assert len(consumer.peek(799)) == 300  # only the first does
    assert len(consumer.peek(100)) == 300  # the first commit alone is larger: all of it
    assert len(consumer.peek(5000)) == 1000
    assert len(consumer.peek()) == 1000


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 1500), min_size=1, max_size=60),
    st.lists(st.integers(1, 5000), min_size=1, max_size=20),
)
def test_ring_bounded_peeks_return_whole_commits_in_order(
    commits: list[int], limits: list[int]
) -> None:
    """Whatever the limits, bounded reads hand out the stream in whole commits, wrapping
    around the ring many times, and stop near the limit."""
    with _ring_pair(4096) as (producer, consumer, _, _):
        written = bytearray()
        ends: list[int] = []  # stream positions where a commit ended
        received = bytearray()
        turn = 0
        pending = list(enumerate(commits))
        while pending or consumer.pending():
            while pending and producer.free_space() >= pending[0][1]:
                seq, size = pending.pop(0)
                data = _pattern(seq, size)
                assert producer.try_write(data)
                written += data
                ends.append(len(written))
            limit = limits[turn % len(limits)]
            turn += 1
            data = consumer.peek(limit)
            start = len(received)
            received += data
            assert data and len(received) in ends  # progress, cut between whole commits
            # Each of the 64 regions records its last commit end: the cut is never more
            # than a region (4096 / 64 bytes) past the first commit end beyond the limit.
            past = next((end for end in ends if end > start + limit), len(written))
            assert len(data) <= past - start + 4096 // 64
            consumer.release(len(data))
        assert received == written


# -- two processes -------------------------------------------------------------------

_FRAME_HEADER = struct.Struct("<IQ")  # payload size, sequence number
_WAIT_MS = 10_000  # a doorbell silent this long means a lost wake-up
_BATCH_BYTES = 16 * 1024


class _PassFd:
    """An fd handed to a spawned child: multiprocessing dup()s it in via pass_fds."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Callable[..., int], tuple[object]]:
        # Only valid while Process.start() pickles the arguments (spawn context).
        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dup: object) -> int:
    return dup.detach()  # type: ignore[attr-defined, no-any-return]


class _Plan:
    """The frames both sides agree on, derived from a seed: sizes and payloads."""

    def __init__(self, count: int, seed: int) -> None:
        rng = random.Random(seed)
        # Mostly small frames, a few large ones (up to 8 KiB) to exercise "too big for
        # the free space right now".
        self.sizes = [
            rng.randrange(0, 200) if rng.random() < 0.95 else rng.randrange(200, 8192)
            for _ in range(count)
        ]
        self.blob = rng.randbytes(16384)

    def payload(self, seq: int) -> bytes:
        start = (seq * 131) % 8192
        return self.blob[start : start + self.sizes[seq]]

    def frame(self, seq: int) -> bytes:
        return _FRAME_HEADER.pack(self.sizes[seq], seq) + self.payload(seq)


def _producer_main(
    name: str,
    segment_size: int,
    offset: int,
    ring_size: int,
    own_fd: int,
    consumer_fd: int,
    count: int,
    seed: int,
    blocked_once: Event,
    results: Connection,
) -> None:
    buf = attach_segment(name, segment_size)
    ring = Ring(buf, offset, ring_size)
    own, consumer = Doorbell(own_fd), Doorbell(consumer_fd)
    poller = select.poll()
    poller.register(own_fd, select.POLLIN)
    plan = _Plan(count, seed)
    sizes = plan.sizes
    rng = random.Random(seed + 1)
    blocked = 0
    seq = 0
    while seq < count:
        end, total, limit = seq, 0, seq + rng.randint(1, 32)
        while end < count and end < limit and total < _BATCH_BYTES:
            total += _FRAME_HEADER.size + sizes[end]
            end += 1
        batch = b"".join([plan.frame(i) for i in range(seq, end)])
        while not ring.try_write(batch):
            blocked += 1
            blocked_once.set()
            if not poller.poll(_WAIT_MS):
                raise AssertionError(f"producer: no doorbell for {_WAIT_MS} ms at seq {seq}")
            own.drain()
        consumer.ring()  # once per batch
        seq = end
    blocked_once.set()  # in case the consumer kept up all along
    results.send(("producer", blocked, ring.write_counter))
    ring.close()
    buf.close()


def _consumer_main(
    name: str,
    segment_size: int,
    offset: int,
    ring_size: int,
    own_fd: int,
    producer_fd: int,
    count: int,
    seed: int,
    blocked_once: Event,
    results: Connection,
) -> None:
    buf = attach_segment(name, segment_size)
    ring = Ring(buf, offset, ring_size)
    own, producer = Doorbell(own_fd), Doorbell(producer_fd)
    poller = select.poll()
    poller.register(own_fd, select.POLLIN)
    plan = _Plan(count, seed)
    sizes, payload = plan.sizes, plan.payload
    unpack_from, header_size = _FRAME_HEADER.unpack_from, _FRAME_HEADER.size
    # Let the producer fill the ring first so that back-pressure happens at least once.
    if not blocked_once.wait(_WAIT_MS / 1000):
        raise AssertionError("consumer: the producer never started")
    expected = 0
    wakeups = 0
    while expected < count:
        # The documented consumer protocol: drain the doorbell, then empty the ring.
        own.drain()
        while data := ring.peek():
            pos, n = 0, len(data)
            while pos < n:
                size, seq = unpack_from(data, pos)
                pos += header_size
                if seq != expected or size != sizes[seq]:
                    raise AssertionError(f"consumer: frame {seq} ({size} B), expected {expected}")
                if data[pos : pos + size] != payload(seq):
                    raise AssertionError(f"consumer: frame {seq} payload corrupted")
                pos += size
                expected += 1
            if pos != n:
                raise AssertionError("consumer: a frame was split across commits")
            if ring.release(n):
                wakeups += 1
                producer.ring()
        if expected < count and not poller.poll(_WAIT_MS):
            raise AssertionError(f"consumer: no doorbell for {_WAIT_MS} ms at seq {expected}")
    results.send(("consumer", expected, ring.read_counter, ring.pending(), wakeups))
    ring.close()
    buf.close()


def test_ring_producer_and_consumer_in_two_processes() -> None:
    count, seed, ring_size = 200_000, 20240611, 64 * 1024
    layout = MeshLayout(2, ring_size)
    offset = layout.ring_offset(1, 0)
    name = f"/shardbroker-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    ctx = multiprocessing.get_context("spawn")
    seg = create_segment(name, layout.total_size)
    producer_fd, consumer_fd = create_doorbell(), create_doorbell()
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        blocked_once = ctx.Event()
        results = []
        for target, own_fd, peer_fd in (
            (_consumer_main, consumer_fd, producer_fd),
            (_producer_main, producer_fd, consumer_fd),
        ):
            receive, send = ctx.Pipe(duplex=False)
            args = (name, layout.total_size, offset, ring_size, _PassFd(own_fd),
                    _PassFd(peer_fd), count, seed, blocked_once, send)  # fmt: skip
            process = ctx.Process(target=target, args=args, daemon=True)
            process.start()
            processes.append(process)
            send.close()
            results.append(receive)
        reports = {}
        for receive in results:
            assert receive.poll(60), "a child sent no result (see its traceback above)"
            report = receive.recv()
            reports[report[0]] = report[1:]
            receive.close()
        for process in processes:
            process.join(30)
            assert process.exitcode == 0
        blocked, written = reports["producer"]
        frames, read, pending, wakeups = reports["consumer"]
        assert frames == count
        assert read == written
        assert pending == 0
        assert blocked >= 1  # back-pressure was exercised...
        assert wakeups >= 1  # ...and the consumer woke the producer up
        total = sum(_FRAME_HEADER.size + size for size in _Plan(count, seed).sizes)
        assert written == total
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()  # only the children this test started
                process.join()
        seg.close()
        unlink_segment(name)
        os.close(producer_fd)
        os.close(consumer_fd)
