"""The shard-state segment: one slot of plain 64-bit counters per shard.

Owner: each shard writes only its own slot; the supervisor (and later
`shardbroker stats` and the monitor) only read, except that the supervisor clears the
slot of a dead shard before it is respawned. Counters are copied from plain in-process
ints on the worker's tick, except ``connections``, which is stored at every accept and
close so the supervisor knows exactly how many connection slots a dead worker held.

Fields a shard never writes itself (``restarts`` of a shard, everything in slot 0)
are written by the supervisor; see FIELDS.

The worker tick (and the storage shard's) also copies what monitoring reads: message
and byte totals, ring fill, subscription index counters and, from the storage shard,
JetStream totals. Per-connection detail is not here: the supervisor asks workers for
it over the mesh (mesh/snapshot.py) only when /connz or /subsz is requested.

Every field is one aligned 8-byte store or load (ctypes c_uint64), so readers never
see a torn value; a reader may see fields of one slot from different ticks.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap

import posix_ipc

SLOT_SIZE = 512  # room for 64 counters
FIELDS = (
    "pid",
    "generation",
    "heartbeat_ns",
    "connections",
    "total_connections",
    "subscriptions",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "slow_consumers",
    "ring_full_events",
    # Written by the supervisor into a shard's slot after it (re)spawned it: how many
    # times this shard was restarted. In the supervisor's own slot 0: its pid and
    # heartbeat, and "workers" (how many of the slots after it are worker shards).
    "restarts",
    "workers",
    # 1 once the broker entered lame duck mode: slot 0 by the supervisor (what /healthz
    # reads), each worker's own slot by the worker when it got the LDM frame.
    "lame_duck",
    # Clients a worker closed because the supervisor asked it to rebalance.
    "rebalanced",
    # Appended for monitoring (/varz, /subsz, /jsz, /metrics); readers use names only.
    "ring_fill_pct",  # fullest outbound ring, percent of its size, at the last tick
    "start_ns",  # wall clock (time.time_ns) when the shard started
    "stalled_clients",
    "sub_inserts",
    "sub_removes",
    "sub_cache",
    "closed_connections",
    # The storage shard's JetStream figures (zero elsewhere).
    "js_streams",
    "js_consumers",
    "js_messages",
    "js_bytes",
    "js_memory",
    "js_storage",
    "js_api_total",
    "js_api_errors",
    "js_accounts",
)
assert len(FIELDS) * 8 <= SLOT_SIZE, "a slot holds at most 64 counters"
_FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}


def segment_name(port: int) -> str:
    return f"/shardbroker-{port}-shards"


def connection_semaphore_name(port: int) -> str:
    return f"/shardbroker-{port}-conns"


class ShardSlot:
    """One shard's counters, as attributes backed by shared memory."""

    __slots__ = ("_cells",)

    def __init__(self, buf: mmap.mmap, shard_id: int) -> None:
        base = shard_id * SLOT_SIZE
        self._cells = [ctypes.c_uint64.from_buffer(buf, base + 8 * i) for i in range(len(FIELDS))]

    def set(self, name: str, value: int) -> None:
        self._cells[_FIELD_INDEX[name]].value = value

    def get(self, name: str) -> int:
        return self._cells[_FIELD_INDEX[name]].value

    def cell(self, name: str) -> ctypes.c_uint64:
        """The raw cell, for a writer that stores into it often."""
        return self._cells[_FIELD_INDEX[name]]

    def clear(self) -> None:
        for cell in self._cells:
            cell.value = 0

    def snapshot(self) -> dict[str, int]:
        return {name: cell.value for name, cell in zip(FIELDS, self._cells, strict=True)}


class ShardTable:
    """The whole segment: a slot per shard."""

    def __init__(self, buf: mmap.mmap, n_shards: int) -> None:
        self.buf = buf
        self.slots = [ShardSlot(buf, i) for i in range(n_shards)]

    def release(self) -> None:
        """Drop the ctypes views so the mapping can be closed."""
        self.slots = []


def create(port: int, n_shards: int) -> mmap.mmap:
    name = segment_name(port)
    unlink(name)
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=n_shards * SLOT_SIZE)
    try:
        return mmap.mmap(shm.fd, n_shards * SLOT_SIZE)
    finally:
        shm.close_fd()


def attach(port: int, n_shards: int) -> mmap.mmap:
    shm = posix_ipc.SharedMemory(segment_name(port))
    try:
        return mmap.mmap(shm.fd, n_shards * SLOT_SIZE)
    finally:
        shm.close_fd()


def unlink(name: str) -> bool:
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True


class ConnectionLimit:
    """Broker-wide max_connections as a POSIX counting semaphore shared by all workers."""

    def __init__(self, port: int, create_with: int | None = None) -> None:
        name = connection_semaphore_name(port)
        if create_with is not None:
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_semaphore(name)
            self._sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, initial_value=create_with)
        else:
            self._sem = posix_ipc.Semaphore(name)
        self.name = name

    def try_acquire(self) -> bool:
        try:
            self._sem.acquire(0)
        except posix_ipc.BusyError:
            return False
        return True

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._sem.release()

    def close(self) -> None:
        self._sem.close()

    def unlink(self) -> None:
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_semaphore(self.name)


class StatsReader:
    """A read-only view of a running broker's segment, for `shardbroker stats`.

    Mapped PROT_READ from a read-only descriptor: the reader can never write into the
    broker, and it takes no lock, so it cannot slow it down. Each counter is read as one
    aligned 8-byte load (a memoryview cast to "Q"). The number of slots is the segment's
    size, so the reader needs nothing but the port. Raises ``posix_ipc.ExistentialError``
    when no broker created the segment on that port.
    """

    def __init__(self, port: int) -> None:
        shm = posix_ipc.SharedMemory(segment_name(port), read_only=True)
        try:
            size = shm.size
            self._map = mmap.mmap(shm.fd, size, prot=mmap.PROT_READ)
        finally:
            shm.close_fd()
        self.port = port
        self.n_shards = size // SLOT_SIZE
        self._words = memoryview(self._map).cast("Q")

    def slot(self, shard_id: int) -> dict[str, int]:
        base = shard_id * SLOT_SIZE // 8
        words = self._words
        return {name: words[base + i] for i, name in enumerate(FIELDS)}

    def close(self) -> None:
        self._words.release()
        self._map.close()
