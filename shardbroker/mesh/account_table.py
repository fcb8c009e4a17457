"""Connections per account and per worker, in shared memory, for account limits that
hold broker-wide (`limits { max_connections }`).

Owner: each worker writes only its own row (one 8-byte cell per limited account) at
every login and close; the supervisor clears the row of a dead worker. A worker admits
a connection to an account when the cells of the other workers plus its own count stay
under the limit: reads are plain aligned loads, no lock and no round trip.

Two workers admitting at the same instant may both see room for the last connection:
the broker can exceed an account's limit by at most one connection per worker but the
first, and only for connections that log in within the same few microseconds. A
worker rewrites its whole row from its clients on every tick, so a reload that renumbers
the limited accounts is corrected within one tick.

Accounts are numbered by `limited_accounts` (their names in sorted order, among those
with a connection limit), the same on every shard for the same Options.
"""

from __future__ import annotations

import contextlib
import mmap

import posix_ipc

from shardbroker.const import MAX_LIMITED_ACCOUNTS

ROW_SIZE = MAX_LIMITED_ACCOUNTS * 8


def segment_name(port: int) -> str:
    return f"/shardbroker-{port}-accounts"


def create(port: int, n_shards: int) -> mmap.mmap:
    name = segment_name(port)
    unlink(name)
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=n_shards * ROW_SIZE)
    try:
        return mmap.mmap(shm.fd, n_shards * ROW_SIZE)
    finally:
        shm.close_fd()


def attach(port: int, n_shards: int) -> mmap.mmap:
    shm = posix_ipc.SharedMemory(segment_name(port))
    try:
        return mmap.mmap(shm.fd, n_shards * ROW_SIZE)
    finally:
        shm.close_fd()


def unlink(name: str) -> None:
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory(name)


class AccountTable:
    """Every shard's row of account connection counts."""

    def __init__(self, buf: mmap.mmap, n_shards: int) -> None:
        self.buf = buf
        self.n_shards = n_shards
        # Aligned 8-byte words: each store and load is one move, never torn.
        self.words = memoryview(buf).cast("Q")

    def set(self, shard: int, index: int, value: int) -> None:
        self.words[shard * MAX_LIMITED_ACCOUNTS + index] = value

    def others(self, shard: int, index: int) -> int:
        """The account's connections on every shard but `shard`."""
        words = self.words
        return sum(
            words[other * MAX_LIMITED_ACCOUNTS + index]
            for other in range(self.n_shards)
            if other != shard
        )

    def total(self, index: int) -> int:
        return self.others(-1, index)

    def clear_row(self, shard: int) -> None:
        base = shard * MAX_LIMITED_ACCOUNTS
        self.words[base : base + MAX_LIMITED_ACCOUNTS] = memoryview(bytes(ROW_SIZE)).cast("Q")

    def release(self) -> None:
        self.words.release()
