"""Reading FileStore blocks back at open: the record scan and the accounting of losses.

Owner: functions of the storage process, used by `filestore` when it opens a store
(FileStore._recover reads each block file and builds its index with these). They work on
bytes already read and on the blocks' slot arrays; no file I/O here.

- `scan_block` checks every record (framing, length copy, CRC), filling the block's slots
  and the `Scan`; it stops at the first bad record, where the caller truncates the file,
  and `walk_lost` follows the length fields past it to name the messages lost (checksums
  are not trusted there).
- `kill_hidden` applies the tombstones and the newest marker; `index_live` then gives the
  live slots their subjects and counts, and fills the interior deletes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple
from zlib import crc32

from shardbroker.jetstream.fileblock import (
    DEAD,
    EBIT,
    EMPTY_RECORD_LEN,
    GONE,
    HBIT,
    HEAD,
    I64,
    LEN_MASK,
    MARKER_LEN,
    MBIT,
    SEQ_MASK,
    TAIL,
    TBIT,
    U32,
    Block,
    pad_slots,
)
from shardbroker.jetstream.store import MAX_RECORD_LEN, _Subj


class Name:
    """A subject read back at recovery, before it gets its `_Subj`."""

    __slots__ = ("subject",)

    def __init__(self, subject: str) -> None:
        self.subject = subject


class Scan:
    """What recovery gathers across the block files, in order."""

    __slots__ = ("lost", "marker_first", "names", "prev_seq", "tombstoned", "top_seq", "top_ts")

    def __init__(self) -> None:
        self.names: dict[str, Name] = {}
        self.tombstoned: set[int] = set()
        self.marker_first = 0  # newest marker's first seq, 0 when none
        self.top_seq = 0  # highest sequence any record or marker names, and its ts
        self.top_ts = 0
        self.prev_seq = 0  # last message (or erased) record's seq
        self.lost: list[tuple[int, int]] = []  # seq, length beyond a bad record


def scan_block(blk: Block, scan: Scan, data: bytes) -> tuple[int, str]:
    """Check the records of one block's bytes, filling its slots (with `Name` placeholders
    for the subjects) and `scan`. Returns where the good records end and, when a bad
    record stops the scan there, why ("" when the whole block is good)."""
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
            lf, sf, ts, slen = HEAD.unpack_from(data, p)
            rl = lf & LEN_MASK
            if rl < EMPTY_RECORD_LEN or rl > MAX_RECORD_LEN:
                bad = "bad record length"
                break
            if p + rl > n:
                bad = "torn record"
                break
            crc, copy = TAIL.unpack_from(data, p + rl - 8)
            if copy != rl or crc != crc32(mv[p : p + rl - 8]):
                bad = "checksum mismatch"
                break
            seq = sf & SEQ_MASK
            if sf & MBIT:
                if rl != MARKER_LEN:
                    bad = "bad marker"
                    break
                last = I64.unpack_from(data, p + 22)[0]
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
                name: Name | None = None
                if not sf & EBIT:
                    fixed = 34 if lf & HBIT else 30
                    if fixed + slen > rl or (
                        lf & HBIT and fixed + slen + U32.unpack_from(data, p + 22 + slen)[0] > rl
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
                        name = names[subject] = Name(subject)
                scan.prev_seq = seq
                if not blk.first:
                    blk.first = seq
                elif seq - blk.first != len(offs):
                    pad_slots(blk, seq)
                offs.append(p if name is not None else GONE)
                lens.append(rl if name is not None else 0)
                tss.append(ts)
                subjs.append(name)  # type: ignore[arg-type]
            if seq >= scan.top_seq:
                scan.top_seq, scan.top_ts = seq, ts
            p += rl
    blk.raw = blk.flushed = p
    return p, bad


def kill_hidden(
    sblks: list[Block],
    scan: Scan,
    marker_first: int,
    slot: Callable[[int], tuple[Block | None, int]],
) -> None:
    """Mark DEAD the slots that the tombstones and the newest marker hide."""
    for seq in scan.tombstoned:
        blk, i = slot(seq)
        if blk is not None and blk.offs[i] >= 0:
            blk.offs[i] = DEAD
    for blk in sblks:
        if blk.first >= marker_first:
            break
        offs = blk.offs
        for i in range(min(len(offs), marker_first - blk.first)):
            if offs[i] >= 0:
                offs[i] = DEAD


class LiveIndex(NamedTuple):
    """What `index_live` counted: bytes of the live messages, the first one, the last one."""

    n_bytes: int
    first_seq: int
    first_ts: int
    prev_live: int  # the last live sequence, 0 when nothing is live


def index_live(sblks: list[Block], psim: dict[str, _Subj], dmap: set[int]) -> LiveIndex:
    """Give the live slots their `_Subj` (replacing the `Name` placeholders), count them
    into each block, and add the interior deletes between them to `dmap`, in order."""
    n_bytes = first_seq = first_ts = prev_live = 0
    for blk in sblks:
        offs, lens, subjs = blk.offs, blk.lens, blk.subjs
        first = blk.first
        for i, off in enumerate(offs):
            if off < 0:
                subjs[i] = None
                continue
            seq = first + i
            subject = subjs[i].subject  # type: ignore[union-attr]  # a Name for now
            ss = psim.get(subject)
            if ss is None:
                ss = psim[subject] = _Subj(subject, subject.encode(), seq)
            else:
                ss.seqs.append(seq)
            subjs[i] = ss
            rl = lens[i]
            blk.live += 1
            blk.live_bytes += rl
            n_bytes += rl
            if prev_live:
                if seq > prev_live + 1:
                    dmap.update(range(prev_live + 1, seq))
            else:
                first_seq = seq
                first_ts = blk.tss[i]
            prev_live = seq
    return LiveIndex(n_bytes, first_seq, first_ts, prev_live)


def walk_lost(data: bytes, p: int, prev_seq: int) -> list[tuple[int, int]]:
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
