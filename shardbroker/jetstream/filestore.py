"""FileStore: the JetStream stream store for `storage: file` ([storage] process).

Owns one directory (`<store_dir>/jetstream/<account>/streams/<stream>/msgs`) holding
append-only block files `1.blk`, `2.blk`, ... Everything the stream semantics need is in
`_StoreCore`; this module adds the on-disk format, the in-memory location index, recovery,
compaction and the durability policy.

Record format (little endian); its length is exactly nats' fileStoreMsgSize, so a
message's record length is also what it counts for in `state.bytes` and `max_bytes`:

    len(4) seq(8) ts(8) subj_len(2) subject [hdr_len(4) hdr] data crc(4) len(4)

- `len`: whole record length; bit 31 set when the `hdr_len hdr` part is present.
- `seq`: bit 63 erased, bit 62 tombstone, bit 61 marker; the rest is the sequence.
  * message: as above.
  * erased (secure delete): same length in place, seq|bit63, ts 0, no subject, zero body.
  * tombstone (30 bytes): seq|bit62 of a removed message, ts = its store time (or the
    skip time), nothing else. Makes a delete survive a restart.
  * marker (38 bytes): seq|bit61 = first_seq (every record below it is dead), ts =
    last_ts, 8-byte body = last_seq. Written at the next flush whenever first_seq moved
    (front removals: limits, max_age, purge below a seq, deleting the first message) and
    as the first record of every new block, so the last block alone always knows the
    stream's first/last sequence and older blocks can be dropped without losing numbering.
- `crc`: zlib.crc32 of everything before it. CRC32 runs at memory speed in C and catches
  the accidents we guard against (torn writes, bit rot) with 2**-32 odds of a miss; a
  cryptographic blake2b would cost several times more per record for no gain, since the
  store does not defend against someone who can write its files. The trailing `len`
  copy makes a torn tail obvious.

Removals: a removed first message needs no record (the marker covers it); any other plain
removal appends a tombstone to the last block ("always", not only for older blocks: the
last block's records must not come back either). Secure erase rewrites the block file
atomically (temp file + fsync + rename) with the record erased in place.

Blocks roll at `block_size` (nats defaults: 8 MiB, 4 MiB KV-like, max_bytes/4 clamped).
A block other than the last one is unlinked at the next flush once it holds no live
message and no tombstone. Blocks whose live bytes fall below half their size are compacted
(rewritten atomically without dead records, erased records, superseded markers and stale
tombstones) on `sync()` and after admin ops; a tombstone that still hides a record in
another block is kept, so an emptied block may survive as a few tombstones until that
record's block is compacted or deleted.

Memory: per message, four array slots in its block (offset, length, ts, subject) and one
in its subject's sequence array. The last block keeps at most about 1 MiB of its newest
bytes in memory (the write buffer doubles as the read cache for consumers following the
publishers); everything else is read with pread through a small LRU of fds.

Full purge: write a new block holding only a marker (first = last + 1) to a temp file,
fsync, rename, then unlink the old blocks. A crash before the rename leaves the old blocks
(rolled back: the temp file is removed at open); after it, the marker makes every older
record dead, so the open deletes the old blocks (completed).

Recovery at open: blocks are read in order and every record is checked (framing, length
copy, CRC). At the first bad record the block file is truncated there, a warning names
the file, offset and number of lost messages, and the lost sequences are reported in
`state().lost_msgs` (for this process lifetime). No index snapshot is written: the open
always rescans the blocks (correctness first; a snapshot would only speed the open).

Durability: `store_msg` only appends to the last block's in-memory buffer; `flush()`
writes all buffered bytes with one write(2) per dirty block. The storage process calls it
once per batch of publishes before sending their PubAcks, so an acknowledged message has
reached the OS and survives a crash of the process; `sync()` (timer, nats sync_interval)
fsyncs, and `sync_always=True` fsyncs in every flush. Admin operations (delete, purge,
expiry, limit updates) flush before returning. Loads see unflushed records.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import struct
import time
from array import array
from collections.abc import Callable
from zlib import crc32

from shardbroker.jetstream.store import (
    MAX_RECORD_LEN,
    ErrStoreFull,
    StoreError,
    StoreLimits,
    StoreMsg,
    _StoreCore,
    _Subj,
)

_HEAD = struct.Struct("<IQqH")  # len|hbit, seq|flags, ts, subj_len: 22 bytes
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_TAIL = struct.Struct("<II")  # crc32, len copy
_pack_head = _HEAD.pack
_pack_u32 = _U32.pack
_pack_tail = _TAIL.pack

HBIT = 1 << 31
EBIT = 1 << 63  # erased
TBIT = 1 << 62  # tombstone
MBIT = 1 << 61  # marker
SEQ_MASK = MBIT - 1
LEN_MASK = HBIT - 1
EMPTY_RECORD_LEN = 30
MARKER_LEN = 38

# Slot values in a block's `offs` besides a record offset (>= 0).
DEAD = -1  # removed, the record is still on disk (kept dead by a tombstone or a marker)
GONE = -2  # no record on disk (skipped, erased, or dropped by compaction)

DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
MEDIUM_BLOCK_SIZE = 4 * 1024 * 1024
MIN_BLOCK_SIZE = 32 * 1000
# A skip leaving a gap larger than this starts a new block instead of padding slots.
_MAX_SLOT_PAD = 65536
# Read fds kept open for blocks other than the last one.
_MAX_READ_FDS = 32
# The last block keeps its newest written bytes in memory for reads (consumers follow
# the publishers closely): once more than _TAIL_MAX are held, the buffer is cut down to
# the newest _TAIL_KEEP. Older records are read with pread.
_TAIL_MAX = 1024 * 1024
_TAIL_KEEP = 256 * 1024
# A read from the file that starts at most _READ_GAP bytes after where the previous one
# ended, in the same block, reads _READ_AHEAD bytes and serves the next records from them
# (consumers replay in order; a random get reads just its record).
_READ_AHEAD = 64 * 1024
_READ_GAP = 4096

LogFn = Callable[[str], None]


def default_block_size(limits: StoreLimits) -> int:
    """nats dynBlkSize for a limits stream, plus its KV-like rule."""
    if limits.max_bytes > 0:
        size = limits.max_bytes // 4 + 1
        size += -size % 100
        if size <= MIN_BLOCK_SIZE:
            return MIN_BLOCK_SIZE
        if size >= DEFAULT_BLOCK_SIZE:
            return DEFAULT_BLOCK_SIZE
        return MEDIUM_BLOCK_SIZE
    if limits.max_msgs_per_subject > 0 and limits.max_msgs <= 0:
        return MEDIUM_BLOCK_SIZE
    return DEFAULT_BLOCK_SIZE


def _remove_file(path: str) -> None:
    os.unlink(path)


def _replace_file(src: str, dst: str) -> None:
    os.replace(src, dst)


def _tombstone(seq: int, ts: int) -> bytes:
    head = _pack_head(EMPTY_RECORD_LEN, seq | TBIT, ts, 0)
    return head + _pack_tail(crc32(head), EMPTY_RECORD_LEN)


def _marker(first: int, last: int, last_ts: int) -> bytes:
    body = _pack_head(MARKER_LEN, first | MBIT, last_ts, 0) + _I64.pack(last)
    return body + _pack_tail(crc32(body), MARKER_LEN)


def _erased(seq: int, length: int) -> bytes:
    body = _pack_head(length, seq | EBIT, 0, 0) + bytes(length - EMPTY_RECORD_LEN)
    return body + _pack_tail(crc32(body), length)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    done = 0
    total = len(data)
    with memoryview(data) as view:
        while done < total:
            done += os.write(fd, view[done:])


class _Block:
    """One block file. Slot i describes seq `first + i`: `offs` (record offset, DEAD or
    GONE), `lens` (record length = accounted bytes), `tss`, `subjs` (live only)."""

    __slots__ = (
        "base",
        "buf",
        "doomed",
        "fd",
        "first",
        "flushed",
        "index",
        "lens",
        "live",
        "live_bytes",
        "offs",
        "path",
        "raw",
        "subjs",
        "tombs",
        "tss",
    )

    def __init__(self, index: int, path: str) -> None:
        self.index = index
        self.path = path
        self.first = 0  # seq of slot 0; 0 until the block holds a message record
        self.offs = array("q")
        self.lens = array("i")
        self.tss = array("q")
        self.subjs: list[_Subj | None] = []
        self.live = 0
        self.live_bytes = 0
        self.raw = 0  # bytes in the block, written or buffered
        self.flushed = 0  # bytes already written to the file
        # Bytes from file offset `base` to `raw`: the unwritten tail plus, for the last
        # block, up to _TAIL_MAX written bytes kept as a read cache. None for older
        # blocks once everything is written (they are read with pread).
        self.buf: bytearray | None = None
        self.base = 0
        self.fd: int | None = None
        self.tombs: list[int] = []  # sequences of the tombstones stored in this block
        self.doomed = False


class _Name:
    """A subject read back at recovery, before it gets its `_Subj`."""

    __slots__ = ("subject",)

    def __init__(self, subject: str) -> None:
        self.subject = subject


class _Scan:
    """What recovery gathers across the block files, in order."""

    __slots__ = ("lost", "marker_first", "names", "prev_seq", "tombstoned", "top_seq", "top_ts")

    def __init__(self) -> None:
        self.names: dict[str, _Name] = {}
        self.tombstoned: set[int] = set()
        self.marker_first = 0  # newest marker's first seq, 0 when none
        self.top_seq = 0  # highest sequence any record or marker names, and its ts
        self.top_ts = 0
        self.prev_seq = 0  # last message (or erased) record's seq
        self.lost: list[tuple[int, int]] = []  # seq, length beyond a bad record


def _decode_slots(
    blk: _Block,
    slots: list[int],
    src: bytes | bytearray,
    shift: int,
    verify: bool,
    run: list[StoreMsg],
) -> None:
    """Append the messages of `slots` (live, ascending) of `blk` to `run`, decoded from
    `src`, which holds the block's bytes from file offset `shift` on. With `verify`
    (read back from the disk) each record's checksum and length copy are checked."""
    offs, lens, subjs, tss = blk.offs, blk.lens, blk.subjs, blk.tss
    first = blk.first
    tail = _TAIL.unpack_from
    word = _U32.unpack_from
    # Released on the way out: a live view would keep a buffer from resizing.
    with memoryview(src) as view:
        for i in slots:
            off = offs[i] - shift
            end = off + lens[i] - 8
            if verify:
                crc, length = tail(src, end) if len(src) >= end + 8 else (0, 0)
                if length != lens[i] or crc != crc32(view[off:end]):
                    raise StoreError(f"corrupt record for seq {first + i} in {blk.path}")
            ss = subjs[i]
            assert ss is not None
            p = off + 22 + len(ss.sbytes)
            if word(src, off)[0] & HBIT:
                hlen = word(src, p)[0]
                hdr = bytes(view[p + 4 : p + 4 + hlen])
                p += 4 + hlen
            else:
                hdr = b""
            run.append(StoreMsg(ss.subject, first + i, tss[i], hdr, bytes(view[p:end])))


class FileStore(_StoreCore):
    def __init__(
        self,
        directory: str,
        name: str,
        limits: StoreLimits,
        *,
        block_size: int | None = None,
        sync_always: bool = False,
        max_file_store: int = -1,
        log: logging.Logger | LogFn | None = None,
    ) -> None:
        super().__init__(name, limits)
        self._dir = directory
        self._fixed_block_size = block_size
        self._block_size = block_size or default_block_size(limits)
        self._sync_always = sync_always
        self._max_file_store = max_file_store
        if log is None:
            log = logging.getLogger("shardbroker.jetstream")
        self._warn: LogFn = log.warning if isinstance(log, logging.Logger) else log
        self._blks: list[_Block] = []
        self._sblks: list[_Block] = []  # blocks holding slots, in order
        self._firsts: list[int] = []  # their first seqs, for bisect
        self._pending: list[_Block] = []  # blocks with buffered bytes, in order
        self._doomed: list[_Block] = []  # empty blocks to unlink at the next flush
        self._cands: set[_Block] = set()  # blocks that may need compaction
        self._dirty: set[_Block] = set()  # written since the last fsync
        self._dir_dirty = False
        self._rfds: dict[int, _Block] = {}  # LRU of older blocks with an open fd
        # Read-ahead window: (block, file offset, bytes), and where the last read ended.
        self._window: tuple[_Block | None, int, bytes] = (None, 0, b"")
        self._read_end: tuple[_Block | None, int] = (None, 0)
        self._marker_first = 1  # every record below this is dead on disk (or will be)
        self._lmb: _Block
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._recover()
        self._persist()  # finish what the recovery found: empty blocks, half-dead ones

    # ---- paths and fds

    def _block_path(self, index: int) -> str:
        return os.path.join(self._dir, f"{index}.blk")

    def _new_block(self, index: int) -> _Block:
        blk = _Block(index, self._block_path(index))
        blk.buf = bytearray()
        self._blks.append(blk)
        self._lmb = blk
        return blk

    def _read_fd(self, blk: _Block) -> int:
        fd = blk.fd
        rfds = self._rfds
        if fd is not None:
            if blk is not self._lmb and blk.index in rfds:
                rfds[blk.index] = rfds.pop(blk.index)  # most recently used last
            return fd
        # Read-write: a block just rolled may still have bytes to write through this fd.
        fd = blk.fd = os.open(blk.path, os.O_RDWR | os.O_APPEND)
        if blk is not self._lmb:
            self._remember_fd(blk)
        return fd

    def _remember_fd(self, blk: _Block) -> None:
        """Keep the fd of a block other than the last one, closing the least recently
        used beyond _MAX_READ_FDS (a closed one is reopened when needed)."""
        rfds = self._rfds
        rfds[blk.index] = blk
        while len(rfds) > _MAX_READ_FDS:
            self._close_fd(rfds[next(iter(rfds))])

    def _close_fd(self, blk: _Block) -> None:
        if blk.fd is not None:
            os.close(blk.fd)
            blk.fd = None
        self._rfds.pop(blk.index, None)

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._dir_dirty = False

    # ---- the write path

    def store_msg(
        self, subject: str, hdr: bytes, data: bytes, ts: int | None = None
    ) -> tuple[int, int]:
        """Append a message to the write buffer; returns (seq, ts). Raises the size,
        budget and discard-new errors before storing; evicts per discard-old after."""
        if self._closed:
            self._check_open()
        ss = self._psim.get(subject)
        sbytes = subject.encode() if ss is None else ss.sbytes
        slen = len(sbytes)
        hlen = len(hdr)
        dlen = len(data)
        rlen = (34 + hlen if hlen else 30) + slen + dlen
        if rlen > MAX_RECORD_LEN or self._max_msg_size >= 0:
            self._check_size(hlen, dlen, rlen)
        if 0 <= self._max_file_store < self._n_bytes + rlen:
            raise ErrStoreFull()
        if self._discard_new or self._discard_new_per:
            self._check_discard_new(subject, ss, rlen, hdr)
        seq = self._last_seq + 1
        if ts is None:
            ts = time.time_ns()
        blk = self._lmb
        if blk.raw + rlen > self._block_size and blk.raw:
            blk = self._roll()
        buf = blk.buf
        assert buf is not None
        off = blk.raw
        if hlen:
            head = _pack_head(rlen | HBIT, seq, ts, slen)
            hl = _pack_u32(hlen)
            crc = crc32(data, crc32(hdr, crc32(hl, crc32(sbytes, crc32(head)))))
            buf += head
            buf += sbytes
            buf += hl
            buf += hdr
        else:
            head = _pack_head(rlen, seq, ts, slen)
            crc = crc32(data, crc32(sbytes, crc32(head)))
            buf += head
            buf += sbytes
        buf += data
        buf += _pack_tail(crc, rlen)
        if blk.flushed == off:
            self._pending.append(blk)
        blk.raw = off + rlen
        if ss is None:
            ss = self._psim[subject] = _Subj(subject, sbytes, seq)
        else:
            ss.seqs.append(seq)
        first = blk.first
        if not first:
            blk.first = seq
            self._sblks.append(blk)
            self._firsts.append(seq)
        elif seq - first != len(blk.offs):
            self._pad_slots(blk, seq)
        blk.offs.append(off)
        blk.lens.append(rlen)
        blk.tss.append(ts)
        blk.subjs.append(ss)
        blk.live += 1
        blk.live_bytes += rlen
        if not self._n_msgs:
            self._first_seq = seq
            self._first_ts = ts
        self._n_msgs += 1
        self._n_bytes += rlen
        self._last_seq = seq
        self._last_ts = ts
        if self._maxp or self._max_msgs or self._max_bytes:
            self._enforce_after_store(ss)
        return seq, ts

    def _pad_slots(self, blk: _Block, seq: int) -> None:
        """Slots for sequences skipped since the block's last message."""
        gap = seq - blk.first - len(blk.offs)
        blk.offs.extend(array("q", (GONE,)) * gap)
        blk.lens.extend(array("i", (0,)) * gap)
        blk.tss.extend(array("q", (0,)) * gap)
        blk.subjs.extend([None] * gap)

    def _roll(self) -> _Block:
        """Start a new last block; it opens with a marker (see the module docstring)."""
        old = self._lmb
        blk = self._new_block(old.index + 1)
        self._append(blk, _marker(self._first_seq, self._last_seq, self._last_ts))
        self._marker_first = max(self._marker_first, self._first_seq)
        if old.flushed == old.raw:
            old.buf = None
        if old.fd is not None:
            self._remember_fd(old)
        if old.live == 0:
            self._retire(old)
        elif old.live_bytes * 2 < old.raw:
            self._cands.add(old)
        return blk

    def _append(self, blk: _Block, record: bytes) -> None:
        buf = blk.buf
        assert buf is not None
        if blk.flushed == blk.raw:
            self._pending.append(blk)
        buf += record
        blk.raw += len(record)

    def _append_last(self, record: bytes) -> _Block:
        """Append a non-message record to the last block, rolling when it is full."""
        blk = self._lmb
        if blk.raw + len(record) > self._block_size and blk.raw:
            blk = self._roll()
        self._append(blk, record)
        return blk

    def _append_tombstone(self, seq: int, ts: int) -> None:
        self._append_last(_tombstone(seq, ts)).tombs.append(seq)

    def flush(self) -> None:
        """Write every buffered byte to the OS: one write per block with pending bytes
        (normally one). Called once per publish batch, before the PubAcks. Appends a
        marker first if first_seq moved; unlinks blocks that became empty after."""
        if self._first_seq > self._marker_first:
            self._append_last(_marker(self._first_seq, self._last_seq, self._last_ts))
            self._marker_first = self._first_seq
        pending = self._pending
        if pending:
            lmb = self._lmb
            for blk in pending:
                if blk.doomed and blk is not lmb:
                    continue
                if blk.flushed < blk.raw:
                    self._write_out(blk)
                if blk is not lmb:
                    blk.buf = None
                elif blk.flushed - blk.base > _TAIL_MAX:
                    self._cut_tail(blk)
            pending.clear()
        if self._doomed:
            self._unlink_doomed()

    def _cut_tail(self, blk: _Block) -> None:
        buf = blk.buf
        assert buf is not None
        cut = blk.flushed - _TAIL_KEEP
        del buf[: cut - blk.base]
        blk.base = cut

    def _write_out(self, blk: _Block) -> None:
        buf = blk.buf
        assert buf is not None
        if blk.fd is None:
            blk.fd = os.open(blk.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._dir_dirty = True
            if blk is not self._lmb:
                self._remember_fd(blk)
        fd = blk.fd
        try:
            base = blk.base
            with memoryview(buf) as view:
                while blk.flushed < blk.raw:  # one write unless the OS writes short
                    blk.flushed += os.write(fd, view[blk.flushed - base : blk.raw - base])
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ErrStoreFull() from exc
            raise StoreError(f"write to {blk.path} failed: {exc.strerror}") from exc
        if self._sync_always:
            os.fsync(fd)
        else:
            self._dirty.add(blk)

    def sync(self) -> None:
        """fsync the blocks written since the last sync (timer, nats sync_interval), then
        compact the blocks that are more than half dead."""
        self._check_open()
        self.flush()
        lmb = self._lmb
        for blk in self._blks:
            if blk is not lmb and blk.live_bytes * 2 < blk.raw:
                self._cands.add(blk)
        for blk in self._dirty:
            if blk.fd is not None:
                os.fsync(blk.fd)
            elif not blk.doomed:
                fd = os.open(blk.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._dirty.clear()
        self._compact_blocks()
        if self._dir_dirty:
            self._fsync_dir()

    def _persist(self) -> None:
        self.flush()
        if self._cands:
            self._compact_blocks()

    # ---- block deletion and compaction

    def _doom(self, blk: _Block) -> None:
        if not blk.doomed:
            blk.doomed = True
            self._doomed.append(blk)
        self._cands.discard(blk)

    def _tomb_needed(self, seq: int, holder: _Block) -> bool:
        """A tombstone stored in `holder` still hides a record in another block."""
        if seq < self._marker_first:
            return False  # the marker hides it
        blk, i = self._slot(seq)
        return blk is not None and blk is not holder and not blk.doomed and blk.offs[i] == DEAD

    def _retire(self, blk: _Block) -> None:
        """A block other than the last one lost its last live message. Without tombstones
        it goes at the next flush; with some, compaction decides (a tombstone that still
        hides a record elsewhere keeps the block, shrunk to the tombstones)."""
        if blk.tombs:
            self._cands.add(blk)
        else:
            self._doom(blk)

    def _unlink_doomed(self) -> None:
        lmb = self._lmb
        for blk in self._doomed:
            if blk is lmb or blk.live:
                blk.doomed = False
                continue
            self._drop_block(blk)
        self._doomed = []

    def _drop_block(self, blk: _Block) -> None:
        self._forget_reads()
        self._close_fd(blk)
        with contextlib.suppress(FileNotFoundError):  # never flushed
            _remove_file(blk.path)
        self._dir_dirty = True
        self._blks.remove(blk)
        if blk.first:
            j = self._sblks.index(blk)
            del self._sblks[j]
            del self._firsts[j]
        self._cands.discard(blk)
        self._dirty.discard(blk)

    def _compact_blocks(self) -> None:
        for blk in list(self._cands):
            self._cands.discard(blk)
            if blk is self._lmb or blk.doomed or blk.live_bytes * 2 >= blk.raw:
                continue
            if blk.live == 0 and not any(self._tomb_needed(t, blk) for t in blk.tombs):
                self._doom(blk)
                continue
            self._compact_block(blk)
        if self._doomed:
            self.flush()

    def _compact_block(self, blk: _Block) -> None:
        """Rewrite a block without its dead records; atomic (temp file + rename)."""
        if blk.flushed < blk.raw:
            self.flush()
        data = self._read_block(blk)
        out = bytearray()
        tombs = []
        offs = blk.offs
        first = blk.first
        n = len(offs)
        p = 0
        end = len(data)
        while p < end:
            lf, sf, _ts, _slen = _HEAD.unpack_from(data, p)
            rl = lf & LEN_MASK
            if sf & TBIT:
                seq = sf & SEQ_MASK
                if self._tomb_needed(seq, blk):
                    tombs.append(seq)
                    out += data[p : p + rl]
            elif not sf & (MBIT | EBIT):  # a message; markers and erased records go
                i = sf - first
                if 0 <= i < n:
                    if offs[i] == p:
                        offs[i] = len(out)
                        out += data[p : p + rl]
                    elif offs[i] == DEAD:
                        offs[i] = GONE
            p += rl
        if len(out) < len(data):
            self._rewrite_block(blk, out)
        blk.tombs = tombs

    def _read_block(self, blk: _Block) -> bytes:
        """The block's whole content; precondition: everything is written."""
        if blk.buf is not None and blk.base == 0:
            return bytes(blk.buf)
        with open(blk.path, "rb") as f:
            return f.read()

    def _rewrite_block(self, blk: _Block, content: bytes | bytearray) -> None:
        self._forget_reads()
        tmp = blk.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace_file(tmp, blk.path)
        self._fsync_dir()
        self._close_fd(blk)
        if blk is self._lmb:
            blk.fd = os.open(blk.path, os.O_RDWR | os.O_APPEND)
        blk.raw = blk.flushed = len(content)
        self._dirty.discard(blk)

    # ---- back-end hooks

    def _slot(self, seq: int) -> tuple[_Block | None, int]:
        blk = self._lmb
        first = blk.first
        if first and seq >= first:
            i = seq - first
            return (blk, i) if i < len(blk.offs) else (None, 0)
        j = bisect.bisect_right(self._firsts, seq) - 1
        if j < 0:
            return None, 0
        blk = self._sblks[j]
        i = seq - blk.first
        return (blk, i) if i < len(blk.offs) else (None, 0)

    def _is_live(self, seq: int) -> bool:
        blk, i = self._slot(seq)
        return blk is not None and blk.offs[i] >= 0

    def _subject_at(self, seq: int) -> str | None:
        blk, i = self._slot(seq)
        if blk is None:
            return None
        ss = blk.subjs[i]
        return ss.subject if ss is not None else None

    def _size_at(self, seq: int) -> int:
        blk, i = self._slot(seq)
        assert blk is not None
        return blk.lens[i]

    def _ts_at(self, seq: int) -> int:
        blk, i = self._slot(seq)
        assert blk is not None
        return blk.tss[i]

    def _load(self, seq: int) -> StoreMsg:
        blk, i = self._slot(seq)
        assert blk is not None
        return self._load_slot(blk, i)

    def load_run(self, start_seq: int, limit: int) -> list[StoreMsg]:
        """As _StoreCore.load_run, walking the blocks' slots directly."""
        self._check_open()
        run: list[StoreMsg] = []
        seq = max(start_seq, self._first_seq)
        if seq > self._last_seq or not self._n_msgs:
            return run
        sblks = self._sblks
        j = max(bisect.bisect_right(self._firsts, seq) - 1, 0)
        while j < len(sblks):
            blk = sblks[j]
            offs = blk.offs
            first = blk.first
            i = seq - first if seq > first else 0
            n = len(offs)
            slots: list[int] = []
            want = limit - len(run)
            while i < n and len(slots) < want:
                if offs[i] >= 0:
                    slots.append(i)
                i += 1
            if slots:
                self._load_slots(blk, slots, run)
                if len(run) == limit:
                    return run
            j += 1
        return run

    def _load_slots(self, blk: _Block, slots: list[int], run: list[StoreMsg]) -> None:
        """Append the messages of live `slots` (ascending) of one block to `run`, from
        one read of the bytes they span (or the block's buffer) where that is small."""
        offs, lens = blk.offs, blk.lens
        lo = offs[slots[0]]
        hi = offs[slots[-1]] + lens[slots[-1]]
        buf = blk.buf
        if buf is not None and lo >= blk.base:
            src: bytes | bytearray = buf
            shift = blk.base
            verify = False  # written by this process, never read back from the disk
        elif (buf is None or hi <= blk.base) and hi - lo <= _READ_AHEAD:
            # Through the read-ahead window: the next runs are likely in it too.
            wblk, shift, src = self._window
            if not (wblk is blk and shift <= lo and hi <= shift + len(src)):
                src = os.pread(self._read_fd(blk), _READ_AHEAD, lo)
                shift = lo
                if len(src) < hi - lo:
                    raise StoreError(f"short read of {blk.path} at {lo}")
                self._window = (blk, lo, src)
            verify = True
        else:
            run += [self._load_slot(blk, i) for i in slots]
            return
        _decode_slots(blk, slots, src, shift, verify, run)

    def _load_slot(self, blk: _Block, i: int) -> StoreMsg:
        off = blk.offs[i]
        rl = blk.lens[i]
        assert off >= 0
        buf = blk.buf
        msgs: list[StoreMsg] = []
        if buf is not None and off >= blk.base:
            _decode_slots(blk, [i], buf, blk.base, False, msgs)
        else:
            src, pos = self._read_record(blk, off, rl)
            _decode_slots(blk, [i], src, off - pos, True, msgs)
        return msgs[0]

    def _read_record(self, blk: _Block, off: int, length: int) -> tuple[bytes, int]:
        """Bytes holding the record at file offset `off`, and its offset in them."""
        wblk, start, data = self._window
        if wblk is blk and start <= off and off + length <= start + len(data):
            src, pos = data, off - start
        else:
            last_blk, last_end = self._read_end
            size = length
            if last_blk is blk and last_end <= off <= last_end + _READ_GAP:
                size = max(length, _READ_AHEAD)
            src, pos = os.pread(self._read_fd(blk), size, off), 0
            if size > length:
                self._window = (blk, off, src)
        self._read_end = (blk, off + length)
        return src, pos

    def _forget_reads(self) -> None:
        """Block content changed or went away: drop the read-ahead window."""
        self._window = (None, 0, b"")
        self._read_end = (None, 0)

    def _next_live(self, seq: int) -> int:
        sblks = self._sblks
        j = max(bisect.bisect_right(self._firsts, seq) - 1, 0)
        while j < len(sblks):
            blk = sblks[j]
            offs = blk.offs
            first = blk.first
            i = seq - first if seq > first else 0
            n = len(offs)
            while i < n:
                if offs[i] >= 0:
                    return first + i
                i += 1
            j += 1
        return 0

    def _prev_live(self, seq: int) -> int:
        sblks = self._sblks
        j = bisect.bisect_right(self._firsts, seq) - 1
        while j >= 0:
            blk = sblks[j]
            offs = blk.offs
            first = blk.first
            i = min(seq - first, len(offs) - 1)
            while i >= 0:
                if offs[i] >= 0:
                    return first + i
                i -= 1
            j -= 1
        return 0

    def _drop(self, seq: int, erase: bool, front: bool) -> tuple[_Subj, int] | None:
        blk, i = self._slot(seq)
        if blk is None:
            return None
        off = blk.offs[i]
        if off < 0:
            return None
        size = blk.lens[i]
        ss = blk.subjs[i]
        assert ss is not None
        if erase:
            self._erase_record(blk, off, size, seq)
            blk.offs[i] = GONE
        else:
            blk.offs[i] = DEAD
            if not front:
                self._append_tombstone(seq, blk.tss[i])
        blk.subjs[i] = None
        blk.live -= 1
        blk.live_bytes -= size
        if blk is not self._lmb:
            if not blk.live:
                self._retire(blk)
            elif blk.live_bytes * 2 < blk.raw:
                self._cands.add(blk)
        return ss, size

    def _erase_record(self, blk: _Block, off: int, length: int, seq: int) -> None:
        """Secure erase: overwrite the record in place and replace the file atomically."""
        self.flush()
        record = _erased(seq, length)
        content = bytearray(self._read_block(blk))
        content[off : off + length] = record
        buf = blk.buf
        if buf is not None and off >= blk.base:
            buf[off - blk.base : off - blk.base + length] = record
        self._rewrite_block(blk, content)

    def _note_skip(self, first: int, last: int) -> None:
        if self._n_msgs:
            self._append_tombstone(last, self._last_ts)
            lmb = self._lmb
            if lmb.first and last - lmb.first - len(lmb.offs) > _MAX_SLOT_PAD:
                self._roll()  # rather than padding the slots over a huge gap
        # With no messages the new first seq goes out as a marker at the flush.

    def update_limits(self, limits: StoreLimits) -> None:
        super().update_limits(limits)
        if self._fixed_block_size is None:
            self._block_size = default_block_size(limits)

    def _reset(self, first_seq: int, last_seq: int) -> None:
        """Full purge, crash-safe: the new block with the marker is in place (renamed)
        before any old block is unlinked."""
        old = list(self._blks)
        blk = _Block(old[-1].index + 1 if old else 1, "")
        blk.path = self._block_path(blk.index)
        content = _marker(first_seq, last_seq, self._last_ts)
        tmp = blk.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace_file(tmp, blk.path)
        self._fsync_dir()
        for ob in old:
            self._close_fd(ob)
        self._blks = [blk]
        self._lmb = blk
        self._sblks = []
        self._firsts = []
        self._pending = []
        self._doomed = []
        self._cands = set()
        self._dirty = set()
        self._rfds = {}
        self._forget_reads()
        blk.buf = bytearray(content)
        blk.raw = blk.flushed = len(content)
        blk.fd = os.open(blk.path, os.O_RDWR | os.O_APPEND)
        self._marker_first = first_seq
        for ob in old:
            if os.path.exists(ob.path):
                _remove_file(ob.path)
        self._fsync_dir()

    # ---- recovery

    def _recover(self) -> None:
        """Rebuild the index from the block files (see the module docstring). Memory
        stays at the index itself: each block's slot arrays are filled while it is
        scanned, then tombstones and the newest marker are applied to them."""
        names = os.listdir(self._dir)
        for name in names:
            if name.endswith(".tmp"):
                _remove_file(os.path.join(self._dir, name))  # an unfinished rewrite
        indexes = sorted(
            int(name[:-4]) for name in names if name.endswith(".blk") and name[:-4].isdigit()
        )
        if not indexes:
            self._new_block(1)
            return
        scan = _Scan()
        data = b""
        for index in indexes:
            blk = _Block(index, self._block_path(index))
            self._blks.append(blk)
            data = self._scan_block(blk, scan)
            if blk.first:
                self._sblks.append(blk)
                self._firsts.append(blk.first)
        lmb = self._lmb = self._blks[-1]
        marker_first = max(1, scan.marker_first)
        self._marker_first = marker_first
        self._last_seq = scan.top_seq
        self._last_ts = scan.top_ts
        # Kill what the tombstones and the marker hide.
        for seq in scan.tombstoned:
            blk, i = self._slot(seq)
            if blk is not None and blk.offs[i] >= 0:
                blk.offs[i] = DEAD
        for blk in self._sblks:
            if blk.first >= marker_first:
                break
            offs = blk.offs
            for i in range(min(len(offs), marker_first - blk.first)):
                if offs[i] >= 0:
                    offs[i] = DEAD
        # Subjects, counters and the interior deletes, in sequence order.
        psim = self._psim
        dmap = self._dmap
        prev_live = 0
        for blk in self._sblks:
            offs, lens, subjs = blk.offs, blk.lens, blk.subjs
            first = blk.first
            for i, off in enumerate(offs):
                if off < 0:
                    subjs[i] = None
                    continue
                seq = first + i
                subject = subjs[i].subject  # type: ignore[union-attr]  # a _Name for now
                ss = psim.get(subject)
                if ss is None:
                    ss = psim[subject] = _Subj(subject, subject.encode(), seq)
                else:
                    ss.seqs.append(seq)
                subjs[i] = ss
                rl = lens[i]
                blk.live += 1
                blk.live_bytes += rl
                self._n_bytes += rl
                if prev_live:
                    if seq > prev_live + 1:
                        dmap.update(range(prev_live + 1, seq))
                else:
                    self._first_seq = seq
                    self._first_ts = blk.tss[i]
                prev_live = seq
        self._n_msgs = sum(blk.live for blk in self._sblks)
        if prev_live:
            if self._last_seq > prev_live:
                dmap.update(range(prev_live + 1, self._last_seq + 1))
        elif self._last_seq or scan.marker_first:
            self._first_seq = self._last_seq + 1
        lmb.base = max(0, len(data) - _TAIL_KEEP)
        lmb.buf = bytearray(data[lmb.base :])
        lmb.fd = os.open(lmb.path, os.O_RDWR | os.O_APPEND)
        for blk in self._blks:
            if blk is lmb:
                continue
            if not blk.live:
                self._retire(blk)
            elif blk.live_bytes * 2 < blk.raw:
                self._cands.add(blk)
        for seq, length in scan.lost:
            if seq >= marker_first and seq not in scan.tombstoned:
                self._lost_msgs.append(seq)
                self._lost_bytes += length

    def _scan_block(self, blk: _Block, scan: _Scan) -> bytes:
        """Read and check one block, filling its slots (with `_Name` placeholders for the
        subjects) and `scan`; truncate the file at the first bad record. Returns the
        block's good bytes."""
        path = blk.path
        with open(path, "rb") as f:
            data = f.read()
        n = len(data)
        names = scan.names
        offs, lens, tss, subjs = blk.offs, blk.lens, blk.tss, blk.subjs
        p = 0
        bad = ""
        with memoryview(data) as mv:
            while p < n:
                if n - p < EMPTY_RECORD_LEN:
                    bad = "torn record"
                    break
                lf, sf, ts, slen = _HEAD.unpack_from(data, p)
                rl = lf & LEN_MASK
                if rl < EMPTY_RECORD_LEN or rl > MAX_RECORD_LEN:
                    bad = "bad record length"
                    break
                if p + rl > n:
                    bad = "torn record"
                    break
                crc, copy = _TAIL.unpack_from(data, p + rl - 8)
                if copy != rl or crc != crc32(mv[p : p + rl - 8]):
                    bad = "checksum mismatch"
                    break
                seq = sf & SEQ_MASK
                if sf & MBIT:
                    if rl != MARKER_LEN:
                        bad = "bad marker"
                        break
                    last = _I64.unpack_from(data, p + 22)[0]
                    scan.marker_first = max(scan.marker_first, seq)
                    if last >= scan.top_seq:
                        scan.top_seq, scan.top_ts = last, ts
                    p += rl
                    continue
                if sf & TBIT:
                    blk.tombs.append(seq)
                    scan.tombstoned.add(seq)
                elif seq <= scan.prev_seq:
                    pass  # out of order: never written by us; ignore
                else:
                    name: _Name | None = None
                    if not sf & EBIT:
                        fixed = 34 if lf & HBIT else 30
                        if fixed + slen > rl or (
                            lf & HBIT
                            and fixed + slen + _U32.unpack_from(data, p + 22 + slen)[0] > rl
                        ):
                            bad = "bad length field"
                            break
                        try:
                            subject = data[p + 22 : p + 22 + slen].decode()
                        except UnicodeDecodeError:
                            bad = "bad subject"
                            break
                        name = names.get(subject)
                        if name is None:
                            name = names[subject] = _Name(subject)
                    scan.prev_seq = seq
                    if not blk.first:
                        blk.first = seq
                    elif seq - blk.first != len(offs):
                        self._pad_slots(blk, seq)
                    offs.append(p if name is not None else GONE)
                    lens.append(rl if name is not None else 0)
                    tss.append(ts)
                    subjs.append(name)  # type: ignore[arg-type]
                if seq >= scan.top_seq:
                    scan.top_seq, scan.top_ts = seq, ts
                p += rl
        blk.raw = blk.flushed = p
        if not bad:
            return data
        lost = _walk_lost(data, p, scan.prev_seq)
        scan.lost.extend(lost)
        with open(path, "r+b") as f:
            f.truncate(p)
            f.flush()
            os.fsync(f.fileno())
        seqs = [seq for seq, _ in lost]
        self._warn(
            f"filestore {self.name}: {bad} in {path} at offset {p}: truncated the "
            f"block there, lost {len(seqs)} message(s)"
            + (f" (seqs {seqs[0]}..{seqs[-1]})" if seqs else "")
        )
        return data[:p]

    # ---- lifecycle

    def close(self) -> None:
        """Flush, fsync and release the fds. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            for blk in self._dirty:
                if blk.fd is not None:
                    os.fsync(blk.fd)
            self._dirty.clear()
            if self._dir_dirty:
                self._fsync_dir()
        finally:
            self._close_fds()
            self._closed = True

    def _close_fds(self) -> None:
        for blk in self._blks:
            self._close_fd(blk)

    def delete(self) -> None:
        """Remove every file of the store and its directory."""
        self._close_fds()
        self._closed = True
        for name in os.listdir(self._dir):
            if name.endswith((".blk", ".tmp")):
                _remove_file(os.path.join(self._dir, name))
        with contextlib.suppress(OSError):  # something else lives there: leave it
            os.rmdir(self._dir)
        self._blks = []
        self._clear(0)


def _walk_lost(data: bytes, p: int, prev_seq: int) -> list[tuple[int, int]]:
    """Sequences of the message records at and after a bad offset, found by following
    the length fields as far as they stay plausible (checksums are not trusted here)."""
    lost: list[tuple[int, int]] = []
    n = len(data)
    while n - p >= 12:
        lf, sf = struct.unpack_from("<IQ", data, p)
        rl = lf & LEN_MASK
        seq = sf & SEQ_MASK
        if rl < EMPTY_RECORD_LEN or rl > MAX_RECORD_LEN:
            break
        if not sf & (TBIT | MBIT | EBIT) and prev_seq < seq < prev_seq + (1 << 32):
            lost.append((seq, rl))
            prev_seq = seq
        p += rl
    return lost
