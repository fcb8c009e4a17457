"""FileStore: the JetStream stream store for `storage: file` ([storage] process).

Owns one directory (`<store_dir>/jetstream/<account>/streams/<stream>/msgs`) holding
append-only block files `1.blk`, `2.blk`, ... Everything the stream semantics need is in
`_StoreCore`; this module adds the on-disk format, the in-memory location index, recovery,
compaction and the durability policy.

The record format and a block's index are `fileblock`'s; reading blocks back at open is
`filerecover`'s.

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

Recovery at open (`filerecover`): every record is checked; the first bad one truncates its
block there with a warning, and the lost sequences go to `state().lost_msgs`. No index
snapshot is written: the open always rescans the blocks.

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
import time
from collections.abc import Callable

from shardbroker.core import append_record
from shardbroker.jetstream.fileblock import (
    DEAD,
    EBIT,
    GONE,
    HEAD,
    LEN_MASK,
    MBIT,
    SEQ_MASK,
    TBIT,
    Block,
    decode_slots,
    default_block_size,
    erased_record,
    marker_record,
    pad_slots,
    tombstone_record,
    write_all,
)
from shardbroker.jetstream.fileread import BlockReads
from shardbroker.jetstream.filerecover import Scan, index_live, kill_hidden, scan_block, walk_lost
from shardbroker.jetstream.store import (
    MAX_RECORD_LEN,
    ErrStoreFull,
    StoreError,
    StoreLimits,
    StoreMsg,
    _StoreCore,
    _Subj,
)

# A skip leaving a gap larger than this starts a new block instead of padding slots.
_MAX_SLOT_PAD = 65536
# The last block keeps its newest written bytes in memory for reads (consumers follow
# the publishers closely): once more than _TAIL_MAX are held, the buffer is cut down to
# the newest _TAIL_KEEP. Older records are read with pread.
_TAIL_MAX = 1024 * 1024
_TAIL_KEEP = 256 * 1024


# The file operations a crash can interrupt; tests replace them to inject one.
def _remove_file(path: str) -> None:
    os.unlink(path)


def _replace_file(src: str, dst: str) -> None:
    os.replace(src, dst)


LogFn = Callable[[str], None]


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
        self._blks: list[Block] = []
        self._sblks: list[Block] = []  # blocks holding slots, in order
        self._firsts: list[int] = []  # their first seqs, for bisect
        self._pending: list[Block] = []  # blocks with buffered bytes, in order
        self._doomed: list[Block] = []  # empty blocks to unlink at the next flush
        self._cands: set[Block] = set()  # blocks that may need compaction
        self._dirty: set[Block] = set()  # written since the last fsync
        self._dir_dirty = False
        self._reads = BlockReads()  # fds and read-ahead of written block bytes
        self._marker_first = 1  # every record below this is dead on disk (or will be)
        self._lmb: Block
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._recover()
        self._persist()  # finish what the recovery found: empty blocks, half-dead ones

    # ---- paths and fds

    def _block_path(self, index: int) -> str:
        return os.path.join(self._dir, f"{index}.blk")

    def _new_block(self, index: int) -> Block:
        blk = Block(index, self._block_path(index))
        blk.buf = bytearray()
        self._blks.append(blk)
        self._lmb = blk
        return blk

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
        append_record(buf, rlen, seq, ts, sbytes, hdr, data)
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
            pad_slots(blk, seq)
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

    def _roll(self) -> Block:
        """Start a new last block; it opens with a marker (see the module docstring)."""
        old = self._lmb
        blk = self._new_block(old.index + 1)
        self._append(blk, marker_record(self._first_seq, self._last_seq, self._last_ts))
        self._marker_first = max(self._marker_first, self._first_seq)
        if old.flushed == old.raw:
            old.buf = None
        if old.fd is not None:
            self._reads.remember(old)
        if old.live == 0:
            self._retire(old)
        elif old.live_bytes * 2 < old.raw:
            self._cands.add(old)
        return blk

    def _append(self, blk: Block, record: bytes) -> None:
        buf = blk.buf
        assert buf is not None
        if blk.flushed == blk.raw:
            self._pending.append(blk)
        buf += record
        blk.raw += len(record)

    def _append_last(self, record: bytes) -> Block:
        """Append a non-message record to the last block, rolling when it is full."""
        blk = self._lmb
        if blk.raw + len(record) > self._block_size and blk.raw:
            blk = self._roll()
        self._append(blk, record)
        return blk

    def _append_tombstone(self, seq: int, ts: int) -> None:
        self._append_last(tombstone_record(seq, ts)).tombs.append(seq)

    def flush(self) -> None:
        """Write every buffered byte to the OS: one write per block with pending bytes
        (normally one). Called once per publish batch, before the PubAcks. Appends a
        marker first if first_seq moved; unlinks blocks that became empty after."""
        if self._first_seq > self._marker_first:
            self._append_last(marker_record(self._first_seq, self._last_seq, self._last_ts))
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

    def _cut_tail(self, blk: Block) -> None:
        buf = blk.buf
        assert buf is not None
        cut = blk.flushed - _TAIL_KEEP
        del buf[: cut - blk.base]
        blk.base = cut

    def _write_out(self, blk: Block) -> None:
        buf = blk.buf
        assert buf is not None
        if blk.fd is None:
            blk.fd = os.open(blk.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._dir_dirty = True
            if blk is not self._lmb:
                self._reads.remember(blk)
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

    def _doom(self, blk: Block) -> None:
        if not blk.doomed:
            blk.doomed = True
            self._doomed.append(blk)
        self._cands.discard(blk)

    def _tomb_needed(self, seq: int, holder: Block) -> bool:
        """A tombstone stored in `holder` still hides a record in another block."""
        if seq < self._marker_first:
            return False  # the marker hides it
        blk, i = self._slot(seq)
        return blk is not None and blk is not holder and not blk.doomed and blk.offs[i] == DEAD

    def _retire(self, blk: Block) -> None:
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

    def _drop_block(self, blk: Block) -> None:
        self._reads.forget()
        self._reads.close(blk)
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

    def _compact_block(self, blk: Block) -> None:
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
            lf, sf, _ts, _slen = HEAD.unpack_from(data, p)
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

    def _read_block(self, blk: Block) -> bytes:
        """The block's whole content; precondition: everything is written."""
        if blk.buf is not None and blk.base == 0:
            return bytes(blk.buf)
        with open(blk.path, "rb") as f:
            return f.read()

    def _rewrite_block(self, blk: Block, content: bytes | bytearray) -> None:
        self._reads.forget()
        tmp = blk.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace_file(tmp, blk.path)
        self._fsync_dir()
        self._reads.close(blk)
        if blk is self._lmb:
            blk.fd = os.open(blk.path, os.O_RDWR | os.O_APPEND)
        blk.raw = blk.flushed = len(content)
        self._dirty.discard(blk)

    # ---- back-end hooks

    def _slot(self, seq: int) -> tuple[Block | None, int]:
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

    def _load_slots(self, blk: Block, slots: list[int], run: list[StoreMsg]) -> None:
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
        elif (buf is None or hi <= blk.base) and (
            spanned := self._reads.span(blk, lo, hi, self._lmb)
        ):
            # Through the read-ahead window: the next runs are likely in it too.
            src, shift = spanned
            verify = True
        else:
            run += [self._load_slot(blk, i) for i in slots]
            return
        decode_slots(blk, slots, src, shift, verify, run)

    def _load_slot(self, blk: Block, i: int) -> StoreMsg:
        off = blk.offs[i]
        rl = blk.lens[i]
        assert off >= 0
        buf = blk.buf
        msgs: list[StoreMsg] = []
        if buf is not None and off >= blk.base:
            decode_slots(blk, [i], buf, blk.base, False, msgs)
        else:
            src, pos = self._reads.record(blk, off, rl, self._lmb)
            decode_slots(blk, [i], src, off - pos, True, msgs)
        return msgs[0]

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

    def _erase_record(self, blk: Block, off: int, length: int, seq: int) -> None:
        """Secure erase: overwrite the record in place and replace the file atomically."""
        self.flush()
        record = erased_record(seq, length)
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
        blk = Block(old[-1].index + 1 if old else 1, "")
        blk.path = self._block_path(blk.index)
        content = marker_record(first_seq, last_seq, self._last_ts)
        tmp = blk.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace_file(tmp, blk.path)
        self._fsync_dir()
        for ob in old:
            self._reads.close(ob)
        self._blks = [blk]
        self._lmb = blk
        self._sblks = []
        self._firsts = []
        self._pending = []
        self._doomed = []
        self._cands = set()
        self._dirty = set()
        self._reads.reset()
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
        scan = Scan()
        data = b""
        for index in indexes:
            blk = Block(index, self._block_path(index))
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
        kill_hidden(self._sblks, scan, marker_first, self._slot)
        live = index_live(self._sblks, self._psim, self._dmap)
        self._n_bytes += live.n_bytes
        if live.prev_live:
            self._first_seq, self._first_ts = live.first_seq, live.first_ts
        prev_live = live.prev_live
        self._n_msgs = sum(blk.live for blk in self._sblks)
        if prev_live:
            if self._last_seq > prev_live:
                self._dmap.update(range(prev_live + 1, self._last_seq + 1))
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

    def _scan_block(self, blk: Block, scan: Scan) -> bytes:
        """Read and check one block (`filerecover.scan_block`); truncate the file at the
        first bad record and report what was lost. Returns the block's good bytes."""
        path = blk.path
        with open(path, "rb") as f:
            data = f.read()
        p, bad = scan_block(blk, scan, data)
        if not bad:
            return data
        lost = walk_lost(data, p, scan.prev_seq)
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
            self._reads.close(blk)

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
