"""Connections per account and per worker, in shared memory: for account limits that
hold broker-wide (`limits { max_connections }`) and for `shardbroker stats`.

Layout: a names area (how many accounts, then each name in 64 bytes (layout.TABLE_NAME_SIZE), NUL
padded), then one row per shard of an 8-byte cell per account.

Owners: each worker writes only its own row, at every login and close; the supervisor
writes the names (at start and on reload) and clears the row of a dead worker. A
worker admits a connection to a limited account when the cells of the other workers
plus its own count stay under the limit: reads are plain aligned loads, no lock and no
round trip.

Two workers admitting at the same instant may both see room for the last connection:
the broker can exceed an account's limit by at most one connection per worker but the
first, and only for connections that log in within the same few microseconds. A
worker rewrites its whole row from its clients on every tick, so a reload that
renumbers the accounts is corrected within one tick.

Accounts are numbered by `config.options.account_cells` (the configured accounts in
name order), the same on every shard for the same Options.
"""

from __future__ import annotations

import mmap

from shardbroker.const import MAX_COUNTED_ACCOUNTS
from shardbroker.mesh.layout import (
    attach_readonly_segment,
    attach_segment,
    create_segment,
    names_area_size,
    read_names,
    unlink_segment,
    write_names,
)

NAMES_SIZE = names_area_size(MAX_COUNTED_ACCOUNTS)
ROW_SIZE = MAX_COUNTED_ACCOUNTS * 8


def segment_name(port: int) -> str:
    return f"/shardbroker-{port}-accounts"


def segment_size(n_shards: int) -> int:
    return NAMES_SIZE + n_shards * ROW_SIZE


def create(port: int, n_shards: int) -> mmap.mmap:
    return create_segment(segment_name(port), segment_size(n_shards))


def attach(port: int, n_shards: int) -> mmap.mmap:
    return attach_segment(segment_name(port), segment_size(n_shards))


def attach_readonly(port: int) -> AccountTable:
    """The table of a running broker, read-only (`shardbroker stats`, the monitor).
    Raises ``posix_ipc.ExistentialError`` when there is none on that port."""
    buf = attach_readonly_segment(segment_name(port))
    return AccountTable(buf, (len(buf) - NAMES_SIZE) // ROW_SIZE)


def unlink(name: str) -> None:
    unlink_segment(name)


class AccountTable:
    """The names, and every shard's row of account connection counts."""

    def __init__(self, buf: mmap.mmap, n_shards: int) -> None:
        self.buf = buf
        self.n_shards = n_shards
        # Aligned 8-byte words after the names area: one move per store or load.
        self.words = memoryview(buf)[NAMES_SIZE:].cast("Q")

    # -- names (the supervisor writes, readers read) -----------------------------------

    def set_names(self, names: list[str]) -> None:
        """The accounts the cells count, in cell order (the supervisor)."""
        write_names(self.buf, names, MAX_COUNTED_ACCOUNTS)

    def names(self) -> list[str]:
        return read_names(self.buf, MAX_COUNTED_ACCOUNTS)

    # -- cells ---------------------------------------------------------------------------

    def set(self, shard: int, index: int, value: int) -> None:
        self.words[shard * MAX_COUNTED_ACCOUNTS + index] = value

    def get(self, shard: int, index: int) -> int:
        return self.words[shard * MAX_COUNTED_ACCOUNTS + index]

    def others(self, shard: int, index: int) -> int:
        """The account's connections on every shard but `shard`."""
        words = self.words
        return sum(
            words[other * MAX_COUNTED_ACCOUNTS + index]
            for other in range(self.n_shards)
            if other != shard
        )

    def total(self, index: int) -> int:
        return self.others(-1, index)

    def clear_row(self, shard: int) -> None:
        base = shard * MAX_COUNTED_ACCOUNTS
        self.words[base : base + MAX_COUNTED_ACCOUNTS] = memoryview(bytes(ROW_SIZE)).cast("Q")

    def connections(self) -> dict[str, int]:
        """Connections per named account, over every shard (`shardbroker stats`)."""
        return {name: self.total(index) for index, name in enumerate(self.names())}

    def release(self) -> None:
        self.words.release()
