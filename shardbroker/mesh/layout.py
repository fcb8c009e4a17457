"""Where every ring lives in the mesh segment: one source of byte offsets for writer and reader.

Imported by the supervisor (which creates the segment before spawning any shard) and by
every shard (which attaches to it). Stdlib and posix_ipc only; no asyncio.

The segment holds one single-producer/single-consumer ring per ordered pair of shards,
``n * (n - 1)`` rings in all, back to back. Each ring is a 640-byte header followed by
``ring_size`` data bytes::

    offset   0  write counter      u64   written only by the producer (shard src)
    offset   8  producer waiting   u64   set by the producer, cleared by the consumer
    offset  64  read counter       u64   written only by the consumer (shard dst)
    offset 128  commit marks       64 x u64, written only by the producer
    offset 640  data               ring_size bytes

The read counter sits on its own 64-byte cache line so that the consumer's stores do not
bounce the line the producer writes on every commit. The commit marks split the data
area into ``COMMIT_MARKS`` equal regions; mark ``i`` holds the write counter after the
last commit that ended in region ``i``, so a consumer can take a bounded part of what is
pending and still cut it between whole frames (ring.py, "Bounded reads"). Because
``ring_size`` is a power of two of at least 4096 and the header is a multiple of 64
bytes, every ring starts on a 64-byte boundary of the (page-aligned) mapping, so every
counter is naturally aligned: an 8-byte aligned load or store is a single, untorn access
on x86-64 (see ring.py for the ordering rules).

Invariants: rings never overlap; all lie within ``total_size``; the layout depends only on
``(n_shards, ring_size)``, so processes that agree on those two numbers agree on every offset.
"""

from __future__ import annotations

import mmap

import posix_ipc

__all__ = [
    "COMMIT_MARKS",
    "COMMIT_MARKS_OFFSET",
    "READ_COUNTER_OFFSET",
    "RING_HEADER_SIZE",
    "WAITING_FLAG_OFFSET",
    "WRITE_COUNTER_OFFSET",
    "MeshLayout",
    "attach_readonly_segment",
    "attach_segment",
    "create_segment",
    "segment_name",
    "unlink_segment",
]

WRITE_COUNTER_OFFSET = 0
WAITING_FLAG_OFFSET = 8
READ_COUNTER_OFFSET = 64
COMMIT_MARKS_OFFSET = 128
COMMIT_MARKS = 64
RING_HEADER_SIZE = COMMIT_MARKS_OFFSET + 8 * COMMIT_MARKS

MIN_RING_SIZE = 4096

# Owner read/write only: the mesh carries every message of every account.
_SEGMENT_MODE = 0o600


class MeshLayout:
    """Byte offsets of the ``n_shards * (n_shards - 1)`` rings in one mesh segment.

    Shards are numbered ``0..n_shards-1``. The ring for frames from ``src`` to ``dst``
    is at index ``src * (n_shards - 1) + (dst if dst < src else dst - 1)``: the rings
    one shard produces into are contiguous, in destination order.
    """

    __slots__ = ("_stride", "n_shards", "ring_size", "total_size")

    def __init__(self, n_shards: int, ring_size: int) -> None:
        if n_shards < 1:
            raise ValueError(f"n_shards must be at least 1, not {n_shards}")
        if ring_size < MIN_RING_SIZE or ring_size & (ring_size - 1):
            raise ValueError(
                f"ring_size must be a power of two >= {MIN_RING_SIZE}, not {ring_size}"
            )
        self.n_shards = n_shards
        self.ring_size = ring_size
        self._stride = RING_HEADER_SIZE + ring_size
        # Zero for a single shard: there is nobody to talk to.
        self.total_size = n_shards * (n_shards - 1) * self._stride

    def ring_offset(self, src: int, dst: int) -> int:
        """Offset of the header of the ring carrying frames from shard src to shard dst."""
        n = self.n_shards
        if not (0 <= src < n and 0 <= dst < n) or src == dst:
            raise ValueError(f"no ring from shard {src} to shard {dst} among {n} shards")
        index = src * (n - 1) + (dst if dst < src else dst - 1)
        return index * self._stride

    def __repr__(self) -> str:
        return f"MeshLayout(n_shards={self.n_shards}, ring_size={self.ring_size})"


def segment_name(port: int) -> str:
    """The POSIX shared-memory name of the mesh of the broker listening on ``port``."""
    return f"/shardbroker-{port}-mesh"


def create_segment(name: str, size: int) -> mmap.mmap:
    """Create (replacing any stale one) and map a zero-filled segment of ``size`` bytes.

    Runs in the supervisor before any shard exists. A segment left by a broker that died
    without cleaning up is unlinked first; O_CREX then guarantees we map a fresh object
    (the kernel zero-fills it, so every counter starts at 0). The fd is closed once
    mapped; the mapping keeps the object alive until unlinked and unmapped everywhere.
    """
    if size <= 0:
        raise ValueError(f"segment size must be positive, not {size}")
    unlink_segment(name)
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=_SEGMENT_MODE, size=size)
    try:
        return mmap.mmap(shm.fd, size)
    finally:
        shm.close_fd()


def attach_segment(name: str, size: int) -> mmap.mmap:
    """Map an existing segment (created by the supervisor) of at least ``size`` bytes.

    Raises ``posix_ipc.ExistentialError`` if it does not exist and ``ValueError`` if it
    is smaller than ``size`` (a shard started with a different layout).
    """
    if size <= 0:
        raise ValueError(f"segment size must be positive, not {size}")
    shm = posix_ipc.SharedMemory(name)
    try:
        if shm.size < size:
            raise ValueError(f"segment {name} holds {shm.size} bytes, expected {size}")
        return mmap.mmap(shm.fd, size)
    finally:
        shm.close_fd()


def attach_readonly_segment(name: str) -> mmap.mmap:
    """Map a whole existing segment read-only (`shardbroker stats`, the monitor).
    Raises ``posix_ipc.ExistentialError`` if it does not exist."""
    shm = posix_ipc.SharedMemory(name, read_only=True)
    try:
        return mmap.mmap(shm.fd, shm.size, prot=mmap.PROT_READ)
    finally:
        shm.close_fd()


# The names area of a table of named cells (mesh/account_table.py, mesh/rate_table.py):
# how many names (8 bytes), then each name in TABLE_NAME_SIZE bytes, NUL padded.
TABLE_NAME_SIZE = 64


def names_area_size(capacity: int) -> int:
    return 8 + capacity * TABLE_NAME_SIZE


def write_names(buf: mmap.mmap, names: list[str], capacity: int) -> None:
    """The names in order (at most `capacity`); the count last, so that a reader never
    sees a count ahead of its names."""
    count = min(len(names), capacity)
    for i, name in enumerate(names[:count]):
        start = 8 + i * TABLE_NAME_SIZE
        buf[start : start + TABLE_NAME_SIZE] = name.encode()[:TABLE_NAME_SIZE].ljust(
            TABLE_NAME_SIZE, b"\0"
        )
    buf[0:8] = count.to_bytes(8, "little")


def read_names(buf: mmap.mmap, capacity: int) -> list[str]:
    count = min(int.from_bytes(buf[0:8], "little"), capacity)
    return [
        buf[8 + i * TABLE_NAME_SIZE : 8 + (i + 1) * TABLE_NAME_SIZE]
        .rstrip(b"\0")
        .decode(errors="replace")
        for i in range(count)
    ]


def unlink_segment(name: str) -> bool:
    """Remove the segment's name; True if it existed. Existing mappings stay valid."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True
