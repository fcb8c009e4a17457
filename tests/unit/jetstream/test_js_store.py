"""Stream store semantics: one test body over the memory store and the file store
(nats runs its store tests the same way). References: jetstream-semantics.md §3 and §5,
nats-server memstore.go / filestore.go."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shardbroker.jetstream.filestore import FileStore
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.store import (
    ErrMaxBytes,
    ErrMaxMsgs,
    ErrMaxMsgsPerSubject,
    ErrMsgDeleted,
    ErrMsgNotFound,
    ErrMsgTooBig,
    ErrMsgTooLarge,
    ErrSequenceMismatch,
    ErrStoreClosed,
    StoreError,
    StoreLimits,
    StreamStore,
)

HDR = b"NATS/1.0\r\nX: y\r\n\r\n"  # 18 bytes

MakeStore = Callable[..., StreamStore]


@pytest.fixture(params=["mem", "file"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(kind: str, tmp_path: Path) -> Iterator[MakeStore]:
    stores: list[StreamStore] = []

    def make(limits: StoreLimits | None = None, **kw: object) -> StreamStore:
        limits = limits or StoreLimits()
        store: StreamStore
        if kind == "mem":
            store = MemStore("S", limits)
        else:
            # Small blocks so every test also crosses block boundaries.
            store = FileStore(str(tmp_path / "msgs"), "S", limits, block_size=512)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def msg_size(kind: str, subject: str, hdr: bytes, data: bytes) -> int:
    if kind == "mem":
        return len(subject) + len(hdr) + len(data) + 16
    return 22 + len(subject) + (4 + len(hdr) if hdr else 0) + len(data) + 8


def fill(store: StreamStore, subjects: list[str], data: bytes = b"x") -> list[int]:
    return [store.store_msg(s, b"", data)[0] for s in subjects]


def live(store: StreamStore) -> list[int]:
    """Every live sequence, by walking load_next_msg."""
    out = []
    seq = 1
    while (msg := store.load_next_msg("", seq)) is not None:
        out.append(msg.seq)
        seq = msg.seq + 1
    return out


# --- store and load -----------------------------------------------------------------------


def test_store_store_and_load(make_store: MakeStore, kind: str) -> None:
    store = make_store()
    seq, ts = store.store_msg("orders.new", HDR, b"hello")
    assert seq == 1
    assert ts > 0
    seq2, _ = store.store_msg("orders.old", b"", b"")
    assert seq2 == 2
    msg = store.load_msg(1)
    assert (msg.subject, msg.seq, msg.ts, msg.hdr, msg.data) == ("orders.new", 1, ts, HDR, b"hello")
    empty = store.load_msg(2)
    assert (empty.hdr, empty.data) == (b"", b"")
    state = store.state()
    assert (state.msgs, state.first_seq, state.last_seq, state.num_subjects) == (2, 1, 2, 2)
    assert state.first_ts == ts
    assert state.last_ts == empty.ts
    assert state.bytes == msg_size(kind, "orders.new", HDR, b"hello") + msg_size(
        kind, "orders.old", b"", b""
    )


def test_store_byte_accounting_matches_nats(make_store: MakeStore, kind: str) -> None:
    # Captured against nats-server (jetstream-semantics.md §3.4): file store 76 and 36.
    store = make_store()
    store.store_msg("orders.new", b"h" * 30, b"ab")
    store.store_msg("old.b", b"", b"x")
    first, second = (76, 36) if kind == "file" else (10 + 30 + 2 + 16, 5 + 1 + 16)
    assert store.state().bytes == first + second


def test_store_explicit_timestamp(make_store: MakeStore) -> None:
    store = make_store()
    assert store.store_msg("a", b"", b"1", ts=1234) == (1, 1234)
    assert store.load_msg(1).ts == 1234


def test_store_load_missing_and_deleted(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "c"])
    assert store.remove_msg(2)
    with pytest.raises(ErrMsgDeleted) as deleted:
        store.load_msg(2)
    assert isinstance(deleted.value, ErrMsgNotFound)
    with pytest.raises(ErrMsgNotFound) as missing:
        store.load_msg(4)
    assert not isinstance(missing.value, ErrMsgDeleted)
    assert str(missing.value) == "no message found"
    with pytest.raises(ErrMsgNotFound):
        store.load_msg(0)


def test_store_loads_see_unflushed_records(make_store: MakeStore) -> None:
    store = make_store()
    for i in range(40):
        store.store_msg(f"s.{i % 4}", b"", b"%d" % i)
    assert store.load_msg(40).data == b"39"
    assert store.load_last_msg("s.3") is not None
    assert live(store) == list(range(1, 41))


# --- filtered reads -----------------------------------------------------------------------


def test_store_load_next_literal_and_wildcards(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["orders.new", "orders.old", "users.a.b", "orders.new", "users.x.b", "zzz"])

    def nxt(filt: str, start: int) -> int | None:
        msg = store.load_next_msg(filt, start)
        return msg.seq if msg else None

    assert nxt("orders.new", 1) == 1
    assert nxt("orders.new", 2) == 4
    assert nxt("orders.new", 5) is None
    assert nxt("orders.*", 2) == 2
    assert nxt("orders.*", 3) == 4
    assert nxt("orders.>", 5) is None
    assert nxt("users.*.b", 1) == 3
    assert nxt("users.>", 4) == 5
    assert nxt("*.a.*", 1) == 3
    assert nxt("*", 1) == 6
    assert nxt(">", 4) == 4
    assert nxt("", 0) == 1
    assert nxt("nothing", 1) is None
    assert nxt("orders", 1) is None  # a literal matches whole subjects only
    assert nxt("", 7) is None
    store.remove_msg(4)
    assert nxt("orders.new", 2) is None
    assert nxt("orders.*", 3) is None
    assert nxt("", 4) == 5


def test_store_load_run_is_load_next_repeated(make_store: MakeStore) -> None:
    """load_run (the consumers' read-ahead) returns what walking load_next_msg does,
    across block boundaries and around removed messages, never past `limit`."""
    store = make_store()
    fill(store, [f"s.{i % 3}" for i in range(60)], data=b"p" * 20)
    for seq in (1, 2, 7, 8, 9, 30, 59):
        store.remove_msg(seq)

    def walk(start: int, limit: int) -> list[tuple[int, str, bytes]]:
        out = []
        while len(out) < limit and (msg := store.load_next_msg("", start)) is not None:
            out.append((msg.seq, msg.subject, msg.data))
            start = msg.seq + 1
        return out

    for start in (0, 1, 3, 7, 10, 29, 55, 60, 61, 100):
        for limit in (1, 4, 17, 64):
            run = store.load_run(start, limit)
            assert [(m.seq, m.subject, m.data) for m in run] == walk(start, limit), (start, limit)
    store.purge()
    assert store.load_run(1, 10) == []


def test_store_wildcard_over_many_subjects_uses_scan(make_store: MakeStore) -> None:
    # More subjects than the subject-index threshold: the linear scan path answers.
    store = make_store()
    fill(store, [f"k.{i}" for i in range(300)] + ["other.1", "k.5", "other.2"])
    assert store.load_next_msg("other.*", 1).seq == 301  # type: ignore[union-attr]
    assert store.load_next_msg("k.*", 301).seq == 302  # type: ignore[union-attr]
    assert store.load_next_msg("other.*", 302).seq == 303  # type: ignore[union-attr]
    assert store.load_next_msg("nope.*", 1) is None
    assert store.num_pending(1, "other.*") == 2
    assert store.load_last_msg("k.*").seq == 302  # type: ignore[union-attr]


def test_store_load_last_and_prev(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a.1", "a.2", "b.1", "a.1", "b.2"])
    assert store.load_last_msg("a.1").seq == 4  # type: ignore[union-attr]
    assert store.load_last_msg("a.*").seq == 4  # type: ignore[union-attr]
    assert store.load_last_msg("b.>").seq == 5  # type: ignore[union-attr]
    assert store.load_last_msg("").seq == 5  # type: ignore[union-attr]
    assert store.load_last_msg("c") is None
    store.remove_msg(5)
    assert store.load_last_msg(">").seq == 4  # type: ignore[union-attr]
    assert store.load_last_msg("b.2") is None
    store.remove_msg(4)
    assert store.load_last_msg("a.1").seq == 1  # type: ignore[union-attr]
    assert store.load_prev_msg("a.*", 3).seq == 2  # type: ignore[union-attr]
    assert store.load_prev_msg("a.1", 3).seq == 1  # type: ignore[union-attr]
    assert store.load_prev_msg(">", 100).seq == 3  # type: ignore[union-attr]
    assert store.load_prev_msg("b.*", 2) is None


# --- limits -------------------------------------------------------------------------------


def test_store_max_msgs_discard_old(make_store: MakeStore) -> None:
    store = make_store(StoreLimits(max_msgs=3))
    fill(store, ["a", "b", "c", "d", "e"])
    state = store.state()
    assert (state.msgs, state.first_seq, state.last_seq) == (3, 3, 5)
    assert live(store) == [3, 4, 5]
    assert store.subjects_state(">") == {"c": 1, "d": 1, "e": 1}


def test_store_max_msgs_discard_new(make_store: MakeStore) -> None:
    store = make_store(StoreLimits(max_msgs=2, discard_new=True))
    fill(store, ["a", "b"])
    with pytest.raises(ErrMaxMsgs) as exc:
        store.store_msg("c", b"", b"x")
    assert str(exc.value) == "maximum messages exceeded"
    assert store.state().last_seq == 2  # no sequence consumed
    store.remove_msg(1)
    assert store.store_msg("c", b"", b"x")[0] == 3


def test_store_max_bytes_discard_old(make_store: MakeStore, kind: str) -> None:
    size = msg_size(kind, "a", b"", b"0123456789")
    store = make_store(StoreLimits(max_bytes=3 * size))
    fill(store, ["a"] * 5, b"0123456789")
    state = store.state()
    assert (state.msgs, state.bytes, state.first_seq) == (3, 3 * size, 3)
    # A bigger message pushes out as many old ones as needed.
    store.store_msg("a", b"", b"0123456789" * 2)
    assert store.state().msgs == 2
    assert store.state().bytes <= 3 * size


def test_store_max_bytes_discard_new(make_store: MakeStore, kind: str) -> None:
    size = msg_size(kind, "a", b"", b"0123456789")
    small = msg_size(kind, "b", b"", b"")
    store = make_store(StoreLimits(max_bytes=2 * size + small, discard_new=True))
    fill(store, ["a", "a"], b"0123456789")
    with pytest.raises(ErrMaxBytes) as exc:
        store.store_msg("a", b"", b"0123456789")
    assert str(exc.value) == "maximum bytes exceeded"
    store.store_msg("b", b"", b"")  # still fits
    with pytest.raises(ErrMaxBytes):
        store.store_msg("b", b"", b"")


def test_store_max_msgs_per_subject_discard_old(make_store: MakeStore) -> None:
    store = make_store(StoreLimits(max_msgs_per_subject=2))
    fill(store, ["k.a", "k.b", "k.a", "k.a", "k.b", "k.a"])
    assert store.subjects_state(">") == {"k.a": 2, "k.b": 2}
    assert live(store) == [2, 4, 5, 6]
    state = store.state()
    assert (state.first_seq, state.num_deleted, state.deleted) == (2, 1, [3])


def test_store_captured_max_msgs_and_per_subject(make_store: MakeStore) -> None:
    # jetstream-semantics.md §3.1, captured against nats-server.
    store = make_store(StoreLimits(max_msgs=2, max_msgs_per_subject=1))
    fill(store, ["old.a", "old.a", "old.b", "old.c"])
    state = store.state()
    assert (state.first_seq, state.last_seq, state.msgs) == (3, 4, 2)
    assert store.subjects_state("") == {"old.b": 1, "old.c": 1}


def test_store_discard_new_with_per_subject_limit_still_evicts(make_store: MakeStore) -> None:
    # KV buckets: discard new + history; a subject at its limit replaces its oldest even
    # when the stream is at max_msgs.
    store = make_store(StoreLimits(max_msgs=2, max_msgs_per_subject=1, discard_new=True))
    fill(store, ["kv.a", "kv.b"])
    assert store.store_msg("kv.a", b"", b"new")[0] == 3
    assert store.subjects_state(">") == {"kv.a": 1, "kv.b": 1}
    with pytest.raises(ErrMaxMsgs):
        store.store_msg("kv.c", b"", b"x")


def test_store_discard_new_bytes_at_subject_limit(make_store: MakeStore, kind: str) -> None:
    size = msg_size(kind, "kv.a", b"", b"12345")
    limits = StoreLimits(max_bytes=2 * size, max_msgs_per_subject=1, discard_new=True)
    store = make_store(limits)
    fill(store, ["kv.a", "kv.b"], b"12345")
    store.store_msg("kv.a", b"", b"54321")  # its oldest is as large: replaced
    with pytest.raises(ErrMaxBytes):
        store.store_msg("kv.a", b"", b"123456")  # larger than the one it would evict


def test_store_discard_new_per_subject(make_store: MakeStore) -> None:
    limits = StoreLimits(max_msgs_per_subject=1, discard_new=True, discard_new_per_subject=True)
    store = make_store(limits)
    store.store_msg("kv.a", b"", b"1")
    with pytest.raises(ErrMaxMsgsPerSubject) as exc:
        store.store_msg("kv.a", b"", b"2")
    assert str(exc.value) == "maximum messages per subject exceeded"
    store.store_msg("kv.b", b"", b"1")
    # A rollup message is exempt and replaces the old one.
    rollup = b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n"
    seq, _ = store.store_msg("kv.a", rollup, b"3")
    assert store.load_last_msg("kv.a").seq == seq  # type: ignore[union-attr]
    assert store.subjects_state("kv.a") == {"kv.a": 1}


def test_store_max_msg_size(make_store: MakeStore) -> None:
    store = make_store(StoreLimits(max_msg_size=10))
    store.store_msg("a", b"12345", b"12345")  # hdr + data == limit is fine
    with pytest.raises(ErrMsgTooBig) as exc:
        store.store_msg("a", b"12345", b"123456")
    assert str(exc.value) == "message size exceeds maximum allowed"
    assert store.state().msgs == 1


def test_store_message_too_large(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(ErrMsgTooLarge):
        store.store_msg("a", b"", bytes(32 * 1024 * 1024))
    assert store.state().last_seq == 0


def test_store_max_age_expire(make_store: MakeStore) -> None:
    second = 1_000_000_000
    store = make_store(StoreLimits(max_age=10 * second))
    base = 1_000 * second
    for i in range(5):
        store.store_msg("a", b"", b"x", ts=base + i * second)
    assert store.expire(base + 5 * second) == base + 10 * second
    assert store.state().msgs == 5
    # At now = base + 12 s, messages stored at base+0..base+2 are >= 10 s old.
    assert store.expire(base + 12 * second) == base + 13 * second
    state = store.state()
    assert (state.msgs, state.first_seq, state.first_ts) == (2, 4, base + 3 * second)
    assert store.expire(base + 100 * second) is None
    state = store.state()
    assert (state.msgs, state.first_seq, state.last_seq, state.first_ts) == (0, 6, 5, 0)
    assert state.last_ts == base + 4 * second
    assert make_store(StoreLimits()).expire(base) is None


# --- removes, purges and sequences ---------------------------------------------------------


def test_store_remove(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "c", "d", "e"])
    assert store.remove_msg(3)
    assert not store.remove_msg(3)
    assert not store.remove_msg(99)
    state = store.state()
    assert (state.msgs, state.num_deleted, state.deleted) == (4, 1, [3])
    assert store.remove_msg(1)
    assert store.remove_msg(2)
    state = store.state()
    # Deleting the first messages moves first_seq past the deleted 3 as well.
    assert (state.first_seq, state.num_deleted, state.deleted) == (4, 0, [])
    assert state.first_ts == store.load_msg(4).ts
    assert store.remove_msg(5, erase=True)
    assert store.remove_msg(4)
    state = store.state()
    assert (state.msgs, state.bytes, state.first_seq, state.last_seq) == (0, 0, 6, 5)
    assert (state.first_ts, state.num_subjects) == (0, 0)
    assert store.store_msg("f", b"", b"")[0] == 6


def test_store_purge_all_keeps_numbering(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "c"])
    last_ts = store.state().last_ts
    assert store.purge() == 3
    state = store.state()
    assert (state.msgs, state.bytes, state.first_seq, state.last_seq) == (0, 0, 4, 3)
    assert (state.first_ts, state.last_ts, state.num_subjects) == (0, last_ts, 0)
    assert store.load_next_msg("", 0) is None
    assert store.store_msg("a", b"", b"")[0] == 4
    assert store.purge(">") == 1
    assert store.state().first_seq == 5


def test_store_purge_by_subject(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["kv.a", "kv.b", "kv.a", "other", "kv.c", "kv.a"])
    assert store.purge("kv.a") == 3
    assert live(store) == [2, 4, 5]
    assert store.purge("kv.*") == 2
    assert live(store) == [4]
    assert store.purge("kv.*") == 0
    state = store.state()
    assert (state.first_seq, state.last_seq, state.msgs) == (4, 6, 1)


def test_store_purge_below_seq(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "a", "b", "a"])
    assert store.purge(seq=1) == 0
    assert store.purge(seq=3) == 2
    assert store.state().first_seq == 3
    assert store.purge(subject="a", seq=5) == 1  # strictly below 5
    assert live(store) == [4, 5]


def test_store_purge_keep(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "a", "b", "a", "b"])
    assert store.purge("a", keep=1) == 2
    assert live(store) == [2, 4, 5, 6]
    assert store.purge(keep=2) == 2
    assert live(store) == [5, 6]
    assert store.purge(keep=5) == 0
    assert store.purge("b", keep=1) == 0


def test_store_purge_past_the_end_moves_first_seq(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b"])
    assert store.purge(seq=10) == 2
    state = store.state()
    assert (state.first_seq, state.last_seq, state.msgs) == (10, 9, 0)
    assert store.store_msg("a", b"", b"")[0] == 10


def test_store_first_seq_of_empty_stream(make_store: MakeStore) -> None:
    store = make_store()
    state = store.state()
    assert (state.first_seq, state.last_seq, state.first_ts, state.last_ts) == (0, 0, 0, 0)
    store.set_first_seq(100)
    state = store.state()
    assert (state.first_seq, state.last_seq, state.msgs) == (100, 99, 0)
    assert store.store_msg("a", b"", b"")[0] == 100
    with pytest.raises(StoreError):
        store.set_first_seq(200)  # not empty


def test_store_purge_of_unused_store(make_store: MakeStore) -> None:
    store = make_store()
    assert store.purge() == 0
    state = store.state()
    assert (state.first_seq, state.last_seq) == (1, 0)  # nats: first = last + 1


def test_store_skip(make_store: MakeStore) -> None:
    store = make_store()
    assert store.skip_msg() == 1
    state = store.state()
    assert (state.first_seq, state.last_seq, state.msgs) == (2, 1, 0)
    fill(store, ["a"])
    store.skip_msgs(3, 3)
    assert store.store_msg("b", b"", b"")[0] == 6
    state = store.state()
    assert (state.first_seq, state.last_seq, state.num_deleted, state.deleted) == (
        2,
        6,
        3,
        [3, 4, 5],
    )
    with pytest.raises(ErrSequenceMismatch):
        store.skip_msgs(3, 1)
    store.remove_msg(2)
    assert store.state().first_seq == 6


def test_store_state_deleted_list(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, [f"s.{i % 3}" for i in range(12)])
    for seq in (2, 5, 6, 11):
        store.remove_msg(seq)
    state = store.state()
    assert (state.msgs, state.num_deleted, state.deleted) == (8, 4, [2, 5, 6, 11])
    assert state.num_subjects == 3
    assert store.state(deleted_details=False).deleted == []
    store.remove_msg(1)
    assert store.state().deleted == [5, 6, 11]


def test_store_subjects_state(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a.x", "a.y", "a.x", "b.x", "b.y.z"])
    assert store.subjects_state("") == {"a.x": 2, "a.y": 1, "b.x": 1, "b.y.z": 1}
    assert store.subjects_state("a.*") == {"a.x": 2, "a.y": 1}
    assert store.subjects_state("*.x") == {"a.x": 2, "b.x": 1}
    assert store.subjects_state("b.>") == {"b.x": 1, "b.y.z": 1}
    assert store.subjects_state("a.x") == {"a.x": 2}
    assert store.subjects_state("c") == {}


def test_store_num_pending(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a.1", "a.2", "b.1", "a.1", "b.1", "a.2"])
    assert store.num_pending(1, "") == 6
    assert store.num_pending(0, ">") == 6
    assert store.num_pending(4, "") == 3
    assert store.num_pending(1, "a.*") == 4
    assert store.num_pending(3, "a.1") == 1
    assert store.num_pending(1, "", last_per_subject=True) == 3
    assert store.num_pending(5, "", last_per_subject=True) == 2
    assert store.num_pending(1, "a.>", last_per_subject=True) == 2
    assert store.num_pending(7, "") == 0
    store.remove_msg(4)
    assert store.num_pending(1, "a.1") == 1
    assert store.num_pending(2, "") == 4


def test_store_update_limits_trims(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a", "b", "a", "b", "a", "c"])
    store.update_limits(StoreLimits(max_msgs_per_subject=1))
    assert store.subjects_state(">") == {"a": 1, "b": 1, "c": 1}
    store.update_limits(StoreLimits(max_msgs=2))
    assert live(store) == [5, 6]
    # Discard new: count and byte limits are not trimmed on update (nats).
    store.update_limits(StoreLimits(max_msgs=1, discard_new=True))
    assert store.state().msgs == 2
    with pytest.raises(ErrMaxMsgs):
        store.store_msg("d", b"", b"")


def test_store_closed(make_store: MakeStore) -> None:
    store = make_store()
    fill(store, ["a"])
    store.close()
    with pytest.raises(ErrStoreClosed):
        store.store_msg("a", b"", b"")
    with pytest.raises(ErrStoreClosed):
        store.load_msg(1)
