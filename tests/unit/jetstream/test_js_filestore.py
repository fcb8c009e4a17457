"""File store only: restart, crash, torn and corrupt tails, secure erase, compaction,
block rolling, interrupted purge, budget, and a randomized run checked against the
memory store and against a reopen."""

from __future__ import annotations

import logging
import os
import random
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shardbroker.jetstream import fileread, filestore
from shardbroker.jetstream.filestore import FileStore
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.store import (
    ErrMsgDeleted,
    ErrMsgNotFound,
    ErrStoreFull,
    StoreError,
    StoreLimits,
    StoreState,
    StreamStore,
)

OpenStore = Callable[..., FileStore]


@pytest.fixture
def msgs_dir(tmp_path: Path) -> Path:
    return tmp_path / "jetstream" / "$G" / "streams" / "S" / "msgs"


@pytest.fixture
def open_store(msgs_dir: Path) -> Iterator[OpenStore]:
    opened: list[FileStore] = []

    def open_(limits: StoreLimits | None = None, block_size: int = 1024, **kw: Any) -> FileStore:
        limits = limits or StoreLimits()
        store = FileStore(str(msgs_dir), "S", limits, block_size=block_size, **kw)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store._close_fds()


def crash(store: FileStore) -> None:
    """Drop the store the way a killed process would: no flush, no close."""
    store._close_fds()


def blocks(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.blk"), key=lambda p: int(p.stem))


def raw_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in blocks(directory))


def comparable(state: StoreState, same_store: bool = True) -> tuple[object, ...]:
    """The state fields to compare; across the two stores, bytes differ by design and a
    skip's last_ts is each store's own clock reading."""
    return (
        state.msgs,
        state.bytes if same_store else None,
        state.first_seq,
        state.first_ts,
        state.last_seq,
        state.last_ts if same_store else None,
        state.num_subjects,
        state.num_deleted,
        state.deleted,
    )


def contents(store: StreamStore) -> list[tuple[int, str, bytes, bytes, int]]:
    out = []
    seq = 0
    while (msg := store.load_next_msg("", seq)) is not None:
        out.append((msg.seq, msg.subject, msg.hdr, msg.data, msg.ts))
        seq = msg.seq + 1
    return out


# --- layout and write path ----------------------------------------------------------------


def test_filestore_directory_and_file_modes(open_store: OpenStore, msgs_dir: Path) -> None:
    store = open_store()
    store.store_msg("a", b"", b"x")
    store.flush()
    assert stat.S_IMODE(msgs_dir.stat().st_mode) == 0o700
    assert [p.name for p in blocks(msgs_dir)] == ["1.blk"]
    assert stat.S_IMODE(blocks(msgs_dir)[0].stat().st_mode) == 0o600


def test_filestore_nothing_written_before_flush_then_one_write(
    open_store: OpenStore, msgs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(block_size=1 << 20)
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(filestore.os, "write", counting_write)
    for i in range(100):
        store.store_msg("orders", b"", b"%016d" % i)
    assert writes == []
    store.flush()
    assert writes == [100 * (22 + 6 + 16 + 8)]
    store.flush()
    assert len(writes) == 1


def test_filestore_sync_always_fsyncs_each_flush(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(sync_always=True)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(filestore.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    store.store_msg("a", b"", b"x")
    store.flush()
    assert len(synced) == 1


def test_filestore_blocks_roll_and_empty_blocks_go(open_store: OpenStore, msgs_dir: Path) -> None:
    record = 22 + 1 + 100 + 8  # 131 bytes
    store = open_store(block_size=1000)
    for _ in range(30):
        store.store_msg("a", b"", b"x" * 100)
    store.flush()
    files = blocks(msgs_dir)
    # 7 records per block; every block but the first opens with a 38-byte marker.
    assert [p.stat().st_size for p in files] == [7 * record] + [38 + 7 * record] * 3 + [
        38 + 2 * record
    ]
    # Discard old: the blocks that empty out are deleted at once (28 is in block 4).
    store.update_limits(StoreLimits(max_msgs=3))
    assert [p.name for p in blocks(msgs_dir)] == ["4.blk", "5.blk"]
    for _ in range(30):
        store.store_msg("a", b"", b"x" * 100)
    store.flush()
    assert len(blocks(msgs_dir)) <= 2
    assert [m[0] for m in contents(store)] == [58, 59, 60]


def test_filestore_runs_read_from_disk_check_each_record(
    open_store: OpenStore, msgs_dir: Path
) -> None:
    """load_run reads sealed blocks a span at a time, with every record's checksum
    checked: a payload changed on disk under an open store is an error, as for load_msg."""
    store = open_store(block_size=1000)
    for i in range(30):
        store.store_msg("a", b"NATS/1.0\r\nK: v\r\n\r\n" if i % 3 == 0 else b"", b"%03d" % i * 30)
    store.flush()
    expected = [store.load_msg(seq) for seq in range(1, 31)]
    assert store.load_run(1, 64) == expected
    assert store.load_run(5, 3) == expected[4:7]
    first = blocks(msgs_dir)[0]
    data = bytearray(first.read_bytes())
    spot = data.index(b"002" * 30)
    data[spot] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt record for seq 3"):
        store.load_run(1, 64)
    with pytest.raises(StoreError, match="corrupt record for seq 3"):
        store.load_msg(3)
    assert store.load_run(8, 4) == expected[7:11]  # other blocks are unaffected


def test_filestore_last_block_beyond_its_memory_tail(open_store: OpenStore) -> None:
    # Only the newest part of the last block stays in memory; older records in it are
    # read from the file, and erased there too.
    store = open_store(block_size=8 << 20)
    for i in range(3000):
        store.store_msg(f"s.{i % 7}", b"", b"%04d" % i + b"." * 496)
        if i % 100 == 99:
            store.flush()
    store.flush()
    buf = store._lmb.buf
    assert buf is not None and len(buf) < 1 << 20 and store._lmb.base > 0
    assert store.load_msg(1).data.startswith(b"0000.")
    assert store.load_next_msg("s.3", 1).seq == 4  # type: ignore[union-attr]
    assert store.remove_msg(2, erase=True)
    assert store.remove_msg(2999, erase=True)
    expected_state, expected = store.state(), contents(store)
    assert len(expected) == 2998
    store.close()
    reopened = open_store(block_size=8 << 20)
    assert comparable(reopened.state()) == comparable(expected_state)
    assert contents(reopened) == expected


def test_filestore_reads_between_roll_and_flush_with_few_fds(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A block rolled with bytes still unwritten, its fd evicted by a read of another
    # block, then read again before the flush: the flush must still write it.
    monkeypatch.setattr(filestore, "_TAIL_MAX", 200)
    monkeypatch.setattr(filestore, "_TAIL_KEEP", 50)
    monkeypatch.setattr(fileread, "_MAX_READ_FDS", 1)
    store = open_store(block_size=1000)
    for i in range(30):  # 76-byte records: blocks 1 and 2 full, 3 started
        store.store_msg("a", b"", b"%05d" % i + b"-" * 40)
    store.flush()
    lmb = store._lmb
    first_in_lmb = lmb.first
    assert lmb.base > 0  # its older records are read from the file
    while store._lmb is lmb:  # fill it up and roll, without a flush
        store.store_msg("a", b"", b"x" * 45)
    assert lmb.flushed < lmb.raw
    store.load_msg(1)  # block 1 takes the only read fd
    assert store.load_msg(first_in_lmb).data.startswith(b"%05d" % (first_in_lmb - 1))
    store.flush()
    expected = contents(store)
    store.close()
    assert contents(open_store(block_size=1000)) == expected


def test_filestore_open_fds_stay_bounded(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileread, "_MAX_READ_FDS", 4)
    before = len(os.listdir("/proc/self/fd"))
    store = open_store(block_size=500)
    for i in range(2000):
        store.store_msg("a", b"", b"x" * 40)
        if i % 10 == 9:
            store.flush()
        if i % 7 == 0:
            store.load_msg(i // 2 + 1)
    assert len(store._blks) > 100
    assert len(os.listdir("/proc/self/fd")) - before <= 5  # 4 older blocks + the last


# --- restart and crash --------------------------------------------------------------------


def test_filestore_restart_keeps_data_deletes_and_purges(open_store: OpenStore) -> None:
    store = open_store()
    for i in range(40):
        store.store_msg(f"s.{i % 4}", b"NATS/1.0\r\n\r\n" if i % 3 else b"", b"data-%d" % i)
    store.remove_msg(7)  # interior: tombstone
    store.remove_msg(1)  # first: marker
    store.remove_msg(25, erase=True)
    assert store.purge("s.2") == 9
    before, items = store.state(), contents(store)
    store.close()
    reopened = open_store()
    assert comparable(reopened.state()) == comparable(before)
    assert contents(reopened) == items
    with pytest.raises(ErrMsgDeleted):
        reopened.load_msg(7)
    assert reopened.store_msg("s.0", b"", b"next")[0] == 41
    reopened.purge()
    reopened.close()
    again = open_store()
    state = again.state()
    assert (state.msgs, state.first_seq, state.last_seq, state.first_ts) == (0, 42, 41, 0)
    assert state.last_ts == reopened.state().last_ts
    assert again.store_msg("s.0", b"", b"")[0] == 42


def test_filestore_restart_keeps_first_seq_and_limit_removals(open_store: OpenStore) -> None:
    store = open_store()
    store.set_first_seq(1000)
    store.close()
    store = open_store()
    assert (store.state().first_seq, store.state().last_seq) == (1000, 999)
    for _ in range(10):
        store.store_msg("a", b"", b"x")
    store.update_limits(StoreLimits(max_msgs=4))  # front removals: recorded by a marker
    store.close()
    # Raising the limit must not bring the trimmed messages back.
    store = open_store(StoreLimits(max_msgs=100))
    assert [m[0] for m in contents(store)] == [1006, 1007, 1008, 1009]


def test_filestore_crash_keeps_flushed_records(open_store: OpenStore) -> None:
    store = open_store()
    for i in range(50):
        store.store_msg(f"s.{i % 5}", b"", b"%d" % i)
    store.remove_msg(10)
    store.flush()
    expected_state, expected = store.state(), contents(store)
    store.store_msg("s.0", b"", b"never flushed")
    crash(store)
    reopened = open_store()
    assert comparable(reopened.state()) == comparable(expected_state)
    assert contents(reopened) == expected
    assert reopened.state().lost_msgs == []


def _flushed_store(open_store: OpenStore, n: int = 10) -> FileStore:
    store = open_store(block_size=1 << 20)
    for i in range(n):
        store.store_msg("orders", b"", b"payload-%02d" % i)
    store.flush()
    store.close()
    return store


def test_filestore_torn_tail_is_truncated(
    open_store: OpenStore, msgs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _flushed_store(open_store)
    block = blocks(msgs_dir)[-1]
    size = block.stat().st_size
    record = 22 + 6 + 10 + 8
    with open(block, "r+b") as f:
        f.truncate(size - 5)  # the last record loses its tail
    with caplog.at_level(logging.WARNING, logger="shardbroker.jetstream"):
        store = open_store(block_size=1 << 20)
    state = store.state()
    assert (state.msgs, state.last_seq) == (9, 9)
    assert (state.lost_msgs, state.lost_bytes) == ([10], record)
    assert block.stat().st_size == size - record
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert str(block) in warning.getMessage()
    assert f"offset {size - record}" in warning.getMessage()
    assert "lost 1 message" in warning.getMessage()
    assert store.store_msg("orders", b"", b"again")[0] == 10


def test_filestore_corrupt_last_record(
    open_store: OpenStore, msgs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _flushed_store(open_store)
    block = blocks(msgs_dir)[-1]
    data = bytearray(block.read_bytes())
    data[-12] ^= 0xFF  # a payload byte of the last record
    block.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="shardbroker.jetstream"):
        store = open_store(block_size=1 << 20)
    assert store.state().lost_msgs == [10]
    assert [m[0] for m in contents(store)] == list(range(1, 10))
    assert "checksum mismatch" in caplog.text


def test_filestore_corrupt_middle_record_loses_the_rest_of_the_block(
    open_store: OpenStore, msgs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _flushed_store(open_store)
    block = blocks(msgs_dir)[-1]
    record = 22 + 6 + 10 + 8
    data = bytearray(block.read_bytes())
    data[6 * record + 30] ^= 0x01  # inside record 7
    block.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="shardbroker.jetstream"):
        store = open_store(block_size=1 << 20)
    state = store.state()
    assert state.lost_msgs == [7, 8, 9, 10]
    assert (state.msgs, state.last_seq) == (6, 6)
    assert "lost 4 message" in caplog.text


# --- erase, tombstones, compaction ---------------------------------------------------------


def test_filestore_secure_erase_overwrites_payload(open_store: OpenStore, msgs_dir: Path) -> None:
    store = open_store(block_size=300)
    store.store_msg("a", b"", b"SECRET-IN-OLD-BLOCK")
    store.store_msg("a", b"", b"PLAIN-DELETED")
    for _ in range(6):
        store.store_msg("a", b"", b"filler" * 5)
    store.store_msg("a", b"", b"SECRET-IN-LAST-BLOCK")
    store.store_msg("a", b"", b"tail")
    store.flush()
    assert len(blocks(msgs_dir)) > 1
    assert b"SECRET-IN-OLD-BLOCK" in raw_bytes(msgs_dir)
    assert store.remove_msg(1, erase=True)
    assert store.remove_msg(9, erase=True)
    assert store.remove_msg(2)
    raw = raw_bytes(msgs_dir)
    assert b"SECRET-IN-OLD-BLOCK" not in raw
    assert b"SECRET-IN-LAST-BLOCK" not in raw
    assert b"PLAIN-DELETED" in raw  # a plain delete only adds a tombstone
    store.close()
    reopened = open_store(block_size=300)
    for seq in (1, 2):  # below first_seq now
        with pytest.raises(ErrMsgNotFound):
            reopened.load_msg(seq)
    with pytest.raises(ErrMsgDeleted):
        reopened.load_msg(9)
    assert reopened.state().first_seq == 3
    assert reopened.load_msg(10).data == b"tail"


def test_filestore_compaction_shrinks_files(open_store: OpenStore, msgs_dir: Path) -> None:
    store = open_store(block_size=2000)
    for i in range(100):
        store.store_msg(f"k.{i % 10}", b"", b"v" * 50)
    store.flush()
    before = sum(p.stat().st_size for p in blocks(msgs_dir))
    for seq in range(2, 100):
        if seq % 5:
            store.remove_msg(seq)  # interior deletes: tombstones, nothing shrinks yet
    store.sync()
    after = sum(p.stat().st_size for p in blocks(msgs_dir))
    assert after < before / 2
    expected_state, expected = store.state(), contents(store)
    store.close()
    reopened = open_store(block_size=2000)
    assert comparable(reopened.state()) == comparable(expected_state)
    assert contents(reopened) == expected


def test_filestore_tombstone_outlives_its_block(open_store: OpenStore, msgs_dir: Path) -> None:
    # The tombstone for seq 3 lands in a later block; when that block empties it must
    # survive (compacted down to the tombstone) as long as seq 3's record still exists.
    store = open_store(block_size=200)
    record = 22 + 1 + 10 + 8  # 41: 4 per block
    for _ in range(4):
        store.store_msg("a", b"", b"0123456789")
    assert store.remove_msg(3)
    for _ in range(8):
        store.store_msg("b", b"", b"0123456789")
    store.flush()
    assert record * 4 <= 200
    assert store.purge("b") == 8  # the blocks holding the tombstone empty out
    store.sync()
    store.close()
    reopened = open_store(block_size=200)
    assert [m[0] for m in contents(reopened)] == [1, 2, 4]
    with pytest.raises(ErrMsgDeleted):
        reopened.load_msg(3)


# --- purge crash safety ---------------------------------------------------------------------


def _store_with_blocks(open_store: OpenStore) -> FileStore:
    store = open_store(block_size=300)
    for i in range(20):
        store.store_msg(f"s.{i % 3}", b"", b"0123456789")
    store.remove_msg(5)
    store.flush()
    return store


def test_filestore_interrupted_purge_is_completed_at_open(
    open_store: OpenStore, msgs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with_blocks(open_store)
    old = blocks(msgs_dir)
    assert len(old) > 2
    removed: list[str] = []

    def die_after_one(path: str) -> None:
        if removed:
            raise OSError("killed")
        removed.append(path)
        os.unlink(path)

    monkeypatch.setattr(filestore, "_remove_file", die_after_one)
    with pytest.raises(OSError, match="killed"):
        store.purge()
    monkeypatch.undo()
    crash(store)
    reopened = open_store(block_size=300)
    state = reopened.state()
    assert (state.msgs, state.first_seq, state.last_seq) == (0, 21, 20)
    assert [p.name for p in blocks(msgs_dir)] == [f"{int(old[-1].stem) + 1}.blk"]
    assert reopened.store_msg("x", b"", b"")[0] == 21


def test_filestore_interrupted_purge_before_rename_rolls_back(
    open_store: OpenStore, msgs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with_blocks(open_store)
    expected_state, expected = store.state(), contents(store)

    def die(src: str, dst: str) -> None:
        raise OSError("killed")

    monkeypatch.setattr(filestore, "_replace_file", die)
    with pytest.raises(OSError, match="killed"):
        store.purge()
    monkeypatch.undo()
    crash(store)
    assert list(msgs_dir.glob("*.tmp"))
    reopened = open_store(block_size=300)
    assert comparable(reopened.state()) == comparable(expected_state)
    assert contents(reopened) == expected
    assert not list(msgs_dir.glob("*.tmp"))


# --- budget and lifecycle -------------------------------------------------------------------


def test_filestore_max_file_store(open_store: OpenStore) -> None:
    record = 22 + 1 + 10 + 8
    store = open_store(max_file_store=3 * record)
    for _ in range(3):
        store.store_msg("a", b"", b"0123456789")
    with pytest.raises(ErrStoreFull) as exc:
        store.store_msg("a", b"", b"0123456789")
    assert str(exc.value) == "insufficient resources"
    store.remove_msg(1)
    store.store_msg("a", b"", b"0123456789")


def test_filestore_delete_removes_files(open_store: OpenStore, msgs_dir: Path) -> None:
    store = open_store()
    store.store_msg("a", b"", b"x")
    store.flush()
    store.delete()
    assert not msgs_dir.exists()


# --- randomized: file store == memory store, and == itself after a reopen ------------------


def _load_result(store: StreamStore, seq: int) -> object:
    try:
        return store.load_msg(seq)
    except ErrMsgNotFound as exc:
        return type(exc)


@pytest.mark.parametrize(("seed", "block_size"), [(1, 700), (2, 300), (3, 4096)])
def test_filestore_random_ops_match_memstore_and_restart(
    open_store: OpenStore, seed: int, block_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        filestore.os, "fsync", lambda fd: None
    )  # speed: crashes here are in-process
    rng = random.Random(seed)
    limits = StoreLimits(max_msgs=150, max_msgs_per_subject=12, max_age=400)
    fs = open_store(limits, block_size=block_size)
    ms = MemStore("S", limits)
    subjects = [f"s.{i}" for i in range(8)] + ["t.a.b", "t.c.b"]
    now = 1_000_000
    for _ in range(2500):
        now += 1
        op = rng.random()
        if op < 0.65:
            subject = rng.choice(subjects)
            hdr = b"NATS/1.0\r\nK: v\r\n\r\n" if rng.random() < 0.3 else b""
            data = rng.randbytes(rng.randrange(0, 60))
            assert fs.store_msg(subject, hdr, data, now) == ms.store_msg(subject, hdr, data, now)
        elif op < 0.8:
            seq = rng.randrange(1, ms.state().last_seq + 2)
            erase = rng.random() < 0.3
            assert fs.remove_msg(seq, erase) == ms.remove_msg(seq, erase)
        elif op < 0.83:
            filt = rng.choice(["s.*", "t.>", "s.3", ""])
            keep = rng.choice([0, 0, 3])
            assert fs.purge(filt, keep=keep) == ms.purge(filt, keep=keep)
        elif op < 0.85:
            seq = ms.state().first_seq + rng.randrange(0, 20)
            assert fs.purge(seq=seq) == ms.purge(seq=seq)
        elif op < 0.86:
            if rng.random() < 0.5:
                fs.skip_msg()
                ms.skip_msg()
            else:
                n = rng.randrange(1, 5)
                fs.skip_msgs(ms.state().last_seq + 1, n)
                ms.skip_msgs(ms.state().last_seq + 1, n)
        elif op < 0.87:
            assert fs.expire(now) == ms.expire(now)
        elif op < 0.88:
            limits = StoreLimits(
                max_msgs=rng.choice([60, 150, -1]),
                max_msgs_per_subject=rng.choice([3, 12, -1]),
                max_age=400,
            )
            fs.update_limits(limits)
            ms.update_limits(limits)
        elif op < 0.9:
            fs.flush()
            fs.sync()
        elif op < 0.94:
            filt = rng.choice([">", "s.*", "t.*.b", "s.5"])
            start = rng.randrange(0, ms.state().last_seq + 2)
            assert fs.load_next_msg(filt, start) == ms.load_next_msg(filt, start)
            assert fs.load_prev_msg(filt, start) == ms.load_prev_msg(filt, start)
            assert fs.load_last_msg(filt) == ms.load_last_msg(filt)
            assert fs.num_pending(start, filt) == ms.num_pending(start, filt)
            assert _load_result(fs, start) == _load_result(ms, start)
        elif op < 0.95:
            fs.close()
            fs = open_store(limits, block_size=block_size)
        elif op < 0.96:
            fs.flush()
            crash(fs)
            fs = open_store(limits, block_size=block_size)
        else:
            assert comparable(fs.state(), False) == comparable(ms.state(), False)
            assert fs.subjects_state(">") == ms.subjects_state(">")
    assert comparable(fs.state(), False) == comparable(ms.state(), False)
    assert contents(fs) == contents(ms)
    final_state, final = fs.state(), contents(fs)
    fs.flush()
    crash(fs)
    fs = open_store(limits, block_size=block_size)
    assert comparable(fs.state()) == comparable(final_state)
    assert contents(fs) == final
    # The counters against a recount.
    state = fs.state()
    assert state.msgs == len(final)
    assert state.bytes == sum(
        22 + len(s) + (4 + len(h) if h else 0) + len(d) + 8 for _, s, h, d, _ in final
    )
    live = {seq for seq, *_ in final}
    assert state.deleted == [s for s in range(state.first_seq, state.last_seq + 1) if s not in live]
