"""The on-disk format of FileStore blocks: records, their builders and decoders, a block's index.

Owner: pure data and functions of the storage process, used by `filestore` and
`filerecover`. No state of its own; file helpers write whole buffers.

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

A `Block` is one block file's in-memory index: slot ``i`` describes sequence
``first + i`` (record offset or `DEAD`/`GONE`, length, timestamp, subject).
"""

from __future__ import annotations

import os
import struct
from array import array
from zlib import crc32

from shardbroker.core import decode_records
from shardbroker.jetstream.store import StoreError, StoreLimits, StoreMsg, _Subj

HEAD = struct.Struct("<IQqH")  # len|hbit, seq|flags, ts, subj_len: 22 bytes
U32 = struct.Struct("<I")
I64 = struct.Struct("<q")
TAIL = struct.Struct("<II")  # crc32, len copy
pack_head = HEAD.pack
pack_u32 = U32.pack
pack_tail = TAIL.pack

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


def tombstone_record(seq: int, ts: int) -> bytes:
    head = pack_head(EMPTY_RECORD_LEN, seq | TBIT, ts, 0)
    return head + pack_tail(crc32(head), EMPTY_RECORD_LEN)


def marker_record(first: int, last: int, last_ts: int) -> bytes:
    body = pack_head(MARKER_LEN, first | MBIT, last_ts, 0) + I64.pack(last)
    return body + pack_tail(crc32(body), MARKER_LEN)


def erased_record(seq: int, length: int) -> bytes:
    body = pack_head(length, seq | EBIT, 0, 0) + bytes(length - EMPTY_RECORD_LEN)
    return body + pack_tail(crc32(body), length)


def write_all(fd: int, data: bytes | bytearray) -> None:
    done = 0
    total = len(data)
    with memoryview(data) as view:
        while done < total:
            done += os.write(fd, view[done:])


class Block:
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


def decode_slots(
    blk: Block,
    slots: list[int],
    src: bytes | bytearray,
    shift: int,
    verify: bool,
    run: list[StoreMsg],
) -> None:
    """Append the messages of `slots` (live, ascending) of `blk` to `run`, decoded from
    `src`, which holds the block's bytes from file offset `shift` on. With `verify`
    (read back from the disk) each record's checksum and length copy are checked.
    The loop over the records is the compiled core's (core/storeloop.py)."""
    bad = decode_records(
        blk.offs, blk.lens, blk.tss, blk.subjs, blk.first, slots, src, shift, verify,
        StoreMsg, run,
    )  # fmt: skip
    if bad >= 0:
        raise StoreError(f"corrupt record for seq {blk.first + bad} in {blk.path}")


def pad_slots(blk: Block, seq: int) -> None:
    """Slots for sequences skipped since the block's last message."""
    gap = seq - blk.first - len(blk.offs)
    blk.offs.extend(array("q", (GONE,)) * gap)
    blk.lens.extend(array("i", (0,)) * gap)
    blk.tss.extend(array("q", (0,)) * gap)
    blk.subjs.extend([None] * gap)
