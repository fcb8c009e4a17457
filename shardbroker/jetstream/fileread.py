"""Reading written FileStore block bytes: an LRU of fds and a read-ahead window.

Owner: one `BlockReads` per FileStore, in the storage process; used only by `filestore`.
The last block's newest bytes are served from its in-memory buffer by FileStore itself;
what is read here comes from the files with pread.

- fds: the last block keeps its fd (it is appended to); older blocks' fds are kept in an
  LRU of at most `_MAX_READ_FDS`, closed beyond that and reopened when needed.
- read-ahead: a read that starts at most `_READ_GAP` bytes after where the previous one
  ended, in the same block, reads `_READ_AHEAD` bytes and serves the next records from them
  (consumers replay in order; a random get reads just its record). `forget` must be called
  whenever block content changes or goes away (rewrite, drop, purge).
"""

from __future__ import annotations

import os

from shardbroker.jetstream.fileblock import Block
from shardbroker.jetstream.store import StoreError

__all__ = ["BlockReads"]

# Read fds kept open for blocks other than the last one.
_MAX_READ_FDS = 32
_READ_AHEAD = 64 * 1024
_READ_GAP = 4096


class BlockReads:
    """The fds and the read-ahead window of one store's older blocks."""

    __slots__ = ("_read_end", "_rfds", "_window")

    def __init__(self) -> None:
        self._rfds: dict[int, Block] = {}  # LRU of older blocks with an open fd
        # Read-ahead window: (block, file offset, bytes), and where the last read ended.
        self._window: tuple[Block | None, int, bytes] = (None, 0, b"")
        self._read_end: tuple[Block | None, int] = (None, 0)

    def fd(self, blk: Block, last: Block) -> int:
        """An fd to read `blk` (`last` is the store's last block, whose fd is its own)."""
        fd = blk.fd
        rfds = self._rfds
        if fd is not None:
            if blk is not last and blk.index in rfds:
                rfds[blk.index] = rfds.pop(blk.index)  # most recently used last
            return fd
        # Read-write: a block just rolled may still have bytes to write through this fd.
        fd = blk.fd = os.open(blk.path, os.O_RDWR | os.O_APPEND)
        if blk is not last:
            self.remember(blk)
        return fd

    def remember(self, blk: Block) -> None:
        """Keep the fd of a block other than the last one, closing the least recently
        used beyond _MAX_READ_FDS (a closed one is reopened when needed)."""
        rfds = self._rfds
        rfds[blk.index] = blk
        while len(rfds) > _MAX_READ_FDS:
            self.close(rfds[next(iter(rfds))])

    def close(self, blk: Block) -> None:
        if blk.fd is not None:
            os.close(blk.fd)
            blk.fd = None
        self._rfds.pop(blk.index, None)

    def reset(self) -> None:
        """Every block went away (full purge); their fds were closed by the caller."""
        self._rfds = {}
        self.forget()

    def forget(self) -> None:
        """Block content changed or went away: drop the read-ahead window."""
        self._window = (None, 0, b"")
        self._read_end = (None, 0)

    def span(self, blk: Block, lo: int, hi: int, last: Block) -> tuple[bytes, int] | None:
        """Bytes holding file offsets [lo, hi) of `blk` and the offset they start at, read
        through the window; None when the span is too big for it (read record by record)."""
        if hi - lo > _READ_AHEAD:
            return None
        wblk, shift, src = self._window
        if not (wblk is blk and shift <= lo and hi <= shift + len(src)):
            src = os.pread(self.fd(blk, last), _READ_AHEAD, lo)
            shift = lo
            if len(src) < hi - lo:
                raise StoreError(f"short read of {blk.path} at {lo}")
            self._window = (blk, lo, src)
        return src, shift

    def record(self, blk: Block, off: int, length: int, last: Block) -> tuple[bytes, int]:
        """Bytes holding the record at file offset `off`, and its offset in them."""
        wblk, start, data = self._window
        if wblk is blk and start <= off and off + length <= start + len(data):
            src, pos = data, off - start
        else:
            last_blk, last_end = self._read_end
            size = length
            if last_blk is blk and last_end <= off <= last_end + _READ_GAP:
                size = max(length, _READ_AHEAD)
            src, pos = os.pread(self.fd(blk, last), size, off), 0
            if size > length:
                self._window = (blk, off, src)
        self._read_end = (blk, off + length)
        return src, pos
