"""The bench client's counting path (`Connection._count`) and the frames publishers send
(`FrameCycle`): every frame of a stream is counted once, with its payload bytes and one
latency sample, however the stream is cut into reads, whether the subscriber follows the
publishers' cycle (single subject, several sizes, many subjects), sees only a share of it
(a queue member) or sees traffic that is no bench cycle at all."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.bench.client import (
    BLOCK,
    STAMP_SIZE,
    Connection,
    FrameCycle,
    cycle_subjects,
    make_payload,
    new_histogram,
)
from shardbroker.bench.scenarios import spread_sizes
from tests.helpers.fakes import MockTransport

# A plausible send stamp (CLOCK_MONOTONIC ns): the counting path ignores stamps in the
# future or over an hour old, so the stream's stamps must be just before "now".
STAMP_BASE = time.monotonic_ns() - 10**9


class Transport(MockTransport):
    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))


def stamp_bytes(k: int) -> bytes:
    return (STAMP_BASE + k).to_bytes(STAMP_SIZE, "big")


def publisher_stream(
    subjects: int, sizes: list[int], msgs: int, *, offset: int = 0, sid: bytes = b"1"
) -> tuple[bytes, int]:
    """What one subscriber receives from one bench publisher: its chunks translated to
    MSG frames, the first frame of each chunk with its own stamp, the others plain.
    Returns (bytes, payload bytes)."""
    pub = FrameCycle(cycle_subjects("bench", subjects), sizes)
    sub = FrameCycle(cycle_subjects("bench", subjects), sizes, sid, reach=pub.per)
    out, nbytes, j, sent, k = [], 0, offset % sub.length, 0, 0
    while sent < msgs:
        n = min(pub.per, msgs - sent)
        out.append(sub.frames(j, 1, stamp_bytes(k) if sub.slen else b""))
        if n > 1:
            out.append(sub.plain_run((j + 1) % sub.length, n - 1))
        nbytes += sub.pay[j + n] - sub.pay[j]
        j = (j + n) % sub.length
        sent += n
        k += 1
    return b"".join(out), nbytes


def split_frames(stream: bytes) -> list[bytes]:
    """The frames of a MSG stream (test helper: parses by the declared sizes)."""
    frames, pos = [], 0
    while pos < len(stream):
        nl = stream.index(b"\r\n", pos)
        size = int(stream[pos:nl].rsplit(b" ", 1)[1])
        end = nl + 2 + size + 2
        frames.append(stream[pos:end])
        pos = end
    return frames


def feed(conn: Connection, stream: bytes, cuts: list[int]) -> None:
    last = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        if cut > last:
            conn.data_received(stream[last:cut])
            last = cut


def sub_cycle(subjects: int, sizes: list[int]) -> FrameCycle:
    """What a Subscriber counts with (ProcessContext.cycle)."""
    numbered = b"bench." if subjects else b""
    return FrameCycle(cycle_subjects("bench", subjects), sizes, b"1", numbered=numbered)


def counting_conn(cycle: FrameCycle | None) -> tuple[Connection, list[str]]:
    failures: list[str] = []
    conn = Connection("sub-1", failures.append, counting=True, hist=new_histogram())
    conn.connection_made(Transport())  # type: ignore[arg-type]
    conn.cycle = cycle
    return conn, failures


def check(conn: Connection, failures: list[str], msgs: int, nbytes: int, stamped: bool) -> None:
    assert failures == []
    assert conn.count == msgs
    assert conn.nbytes == nbytes
    assert not conn.buf  # nothing left half-parsed
    hist: Any = conn.hist
    assert hist.get_total_count() == (msgs if stamped else 0)


CASES = [
    pytest.param(0, [16], id="one-subject"),
    pytest.param(0, [16, 17], id="mixed-sizes"),
    pytest.param(100, [16], id="100-subjects"),
    pytest.param(10_000, [16], id="10k-subjects"),
    pytest.param(7, [16, 17, 40], id="subjects-and-sizes"),
    pytest.param(3, [1024], id="1k"),
    pytest.param(2, [70_000], id="over-a-read"),
    pytest.param(5, [0, 3], id="no-room-for-stamps"),
    # --size 16-4096: 13 sizes in a shuffled order, over 100 subjects (a cycle of 1,300).
    pytest.param(100, spread_sizes(16, 4096), id="spread-16-4096"),
]


@pytest.mark.parametrize(("subjects", "sizes"), CASES)
@pytest.mark.parametrize("reads", ["whole", "64k", "per-frame-ish", "random"])
async def test_bench_count_follows_the_cycle(subjects: int, sizes: list[int], reads: str) -> None:
    msgs = 3000 if max(sizes) < 1000 else 60
    stream, nbytes = publisher_stream(subjects, sizes, msgs, offset=5)
    rnd = random.Random(7)
    cuts = {
        "whole": [],
        "64k": list(range(0, len(stream), 65536)),
        "per-frame-ish": list(range(0, len(stream), 37)),
        "random": [rnd.randrange(len(stream)) for _ in range(200)],
    }[reads]
    per = FrameCycle(cycle_subjects("bench", subjects), sizes).per
    for cycle, chunk in (
        (sub_cycle(subjects, sizes), per),  # as Subscriber
        (sub_cycle(subjects, sizes), 0),
        (None, 0),
    ):
        conn, failures = counting_conn(cycle)
        conn.chunk = chunk
        feed(conn, stream, cuts)
        check(conn, failures, msgs, nbytes, min(sizes) >= STAMP_SIZE)


async def test_bench_count_predicts_blocks() -> None:
    """A run of one publisher's frames is taken in blocks: only the first frame of each
    chunk (a new stamp) goes through the slow path."""
    stream, nbytes = publisher_stream(100, [16], 20_000)
    cycle = sub_cycle(100, [16])
    looked_up = []

    class Lookup(dict):  # type: ignore[type-arg]
        def get(self, key: bytes, default: Any = None) -> Any:
            looked_up.append(key)
            return super().get(key, default)

    cycle.lookup = Lookup(cycle.lookup)
    conn, failures = counting_conn(cycle)
    feed(conn, stream, list(range(0, len(stream), 65536)))
    check(conn, failures, 20_000, nbytes, True)
    chunks = -(-20_000 // FrameCycle(cycle_subjects("bench", 100), [16]).per)
    assert len(looked_up) <= 2 * chunks, (len(looked_up), chunks)


@pytest.mark.parametrize("subjects", [0, 100])
async def test_bench_count_queue_member_share(subjects: int) -> None:
    """A queue member gets a random share of several publishers' interleaved chunks."""
    rnd = random.Random(3)
    streams = [publisher_stream(subjects, [16], 6000, offset=o)[0] for o in (0, 25, 50)]
    frames = [f for s in streams for f in split_frames(s)]
    rnd.shuffle(frames)
    share = [f for f in frames if rnd.random() < 0.25]
    stamped = [f for f in share if b"01234567" not in f]  # chunks' first frames
    assert stamped and share[0] not in stamped  # some stamps, not from the start
    stream = b"".join(share)
    nbytes = 16 * len(share)
    conn, failures = counting_conn(sub_cycle(subjects, [16]))
    feed(conn, stream, list(range(0, len(stream), 4096)))
    # Frames before the first stamp count with it: one sample per frame all the same.
    check(conn, failures, len(share), nbytes, True)


async def test_bench_count_no_stamp_no_samples() -> None:
    """A subscriber that never sees a chunk's first frame records no latency."""
    stream, _ = publisher_stream(0, [16], 3000)
    frames = split_frames(stream)
    rest = b"".join(f for f in frames if b"01234567" in f)
    conn, failures = counting_conn(sub_cycle(0, [16]))
    feed(conn, rest, [])
    assert failures == [] and conn.count == len(frames) - 2  # 2 chunks of 2048 at most
    assert conn.hist.get_total_count() == 0  # type: ignore[union-attr]


async def test_bench_count_foreign_traffic_and_control_lines() -> None:
    """Frames outside the cycle (other subjects, headers, replies), PINGs and +OK between
    them: all counted, PING answered, nothing mistaken for a stamp run."""
    payload = make_payload(20)
    parts = [
        b"MSG other 1 20\r\n" + payload + b"\r\n",
        b"MSG other 1 20\r\n" + payload + b"\r\n",
        b"PING\r\n",
        b"HMSG bench 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        b"+OK\r\n",
        b"MSG bench 1 _INBOX.x 3\r\nabc\r\n",
        b"MSG bench 1 16\r\n" + stamp_bytes(1) + make_payload(16)[8:] + b"\r\n",
    ] * 50
    stream = b"".join(parts)
    transport = Transport()
    failures: list[str] = []
    conn = Connection("sub-1", failures.append, counting=True, hist=new_histogram())
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.cycle = sub_cycle(0, [16])
    feed(conn, stream, list(range(0, len(stream), 11)))
    assert failures == []
    assert conn.count == 5 * 50
    assert conn.nbytes == (20 + 20 + 14 + 3 + 16) * 50  # HMSG: headers included
    assert bytes(transport.data) == b"PONG\r\n" * 50
    # The payloads of `other` carry no stamp (their filler is the plain one): every frame
    # is taken for sent at the last stamp seen, those before the first one included.
    assert conn.hist.get_total_count() == 5 * 50  # type: ignore[union-attr]


async def test_bench_count_rejects_a_payload_without_crlf() -> None:
    conn, failures = counting_conn(None)
    conn.data_received(b"MSG bench 1 4\r\nabcdXY")
    assert failures and "payload not followed by CRLF" in failures[0]


@pytest.mark.parametrize("subjects", [0, 3, 100])
@pytest.mark.parametrize("sizes", [[16], [16, 17], [0], [9, 2000]])
def test_bench_cycle_runs_equal_single_frames(subjects: int, sizes: list[int]) -> None:
    """`frames(j, k)` is the concatenation of k single frames from position j (with
    prebuilt links and without), and the prefix sums agree with it."""
    cycle = FrameCycle(cycle_subjects("s", subjects), sizes)
    stamp = stamp_bytes(1) if cycle.slen else b""
    for j in (0, 1, cycle.length - 1):
        for k in (1, 2, BLOCK, cycle.per):
            run = cycle.frames(j, k, stamp)
            one = b"".join(cycle.frames((j + i) % cycle.length, 1, stamp) for i in range(k))
            assert run == one
            assert len(run) == cycle.span[j + k] - cycle.span[j]
            assert len(split_frames(run)) == k
    links = cycle.links
    cycle.links = None
    assert cycle.frames(1 % cycle.length, 5, stamp) == (
        b"".join(cycle.frames((1 + i) % cycle.length, 1, stamp) for i in range(5))
    )
    cycle.links = links


def test_bench_cycle_consecutive_messages_differ() -> None:
    cycle = FrameCycle(cycle_subjects("bench", 100), [16])
    heads = [cycle.heads[j] for j in range(cycle.length + 1)]
    assert all(a != b for a, b in itertools.pairwise(heads))
    assert heads[0] == b"PUB bench.0 16\r\n" and heads[99] == b"PUB bench.99 16\r\n"
    mixed = FrameCycle(cycle_subjects("bench", 0), [16, 17])
    assert mixed.length == 2 and mixed.heads[0] != mixed.heads[1]


@pytest.mark.parametrize("subjects", [100, 1000])
def test_bench_cycle_spread_sizes_differ_in_subject_and_size(subjects: int) -> None:
    """--size 16-4096 --subjects N: no two consecutive messages (the wrap of the cycle
    included) share subject or size, and every subject is sent with every size."""
    sizes = spread_sizes(16, 4096)
    cycle = FrameCycle(cycle_subjects("bench", subjects), sizes)
    assert cycle.length == subjects * len(sizes)  # 13 is prime to 100 and 1,000
    order = [(cycle.heads[j].split()[1], cycle.sizes[j]) for j in range(cycle.length + 1)]
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in itertools.pairwise(order))
    seen: dict[bytes, set[int]] = {}
    for subject, size in order:
        seen.setdefault(subject, set()).add(size)
    assert all(found == set(sizes) for found in seen.values())


@settings(max_examples=60, deadline=None)
@given(
    subjects=st.sampled_from([0, 1, 4, 100]),
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=3),
    msgs=st.integers(1, 400),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    offset=st.integers(0, 1000),
    chunk=st.integers(0, 3000),  # the expected chunk length, right or wrong
)
def test_bench_count_any_reads(
    subjects: int, sizes: list[int], msgs: int, cuts: list[int], offset: int, chunk: int
) -> None:
    import asyncio

    stream, nbytes = publisher_stream(subjects, sizes, msgs, offset=offset)

    async def run() -> None:
        conn, failures = counting_conn(sub_cycle(subjects, sizes))
        conn.chunk = chunk
        feed(conn, stream, [c % (len(stream) + 1) for c in cuts])
        check(conn, failures, msgs, nbytes, min(sizes) >= STAMP_SIZE)

    asyncio.run(run())
