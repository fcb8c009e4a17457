"""JetStream stream stores: the shared types, errors and the logic both back-ends run.

Imported by the storage process only ([storage]); `filestore.FileStore` and
`memstore.MemStore` implement `StreamStore`. The stores are synchronous and not
thread-safe: the storage process calls them from its event loop.

`_StoreCore` holds everything that does not depend on where the bytes live, so the two
back-ends cannot drift apart on semantics (nats-server keeps two copies of this logic;
we keep one):

- stream counters (`msgs`, `bytes`, first/last seq and ts), kept incrementally;
- `_dmap`: the interior deleted sequences, i.e. every non-live seq in (first, last];
- `_psim`: subject -> `_Subj`, whose `seqs[head:]` are exactly the live sequences of
  that subject in ascending order (front removals move `head`, others delete in place);
- limits (discard old / new, per subject, max_age via `expire`), deletes and purges.

A back-end provides the index of live messages (`_is_live`, `_subject_at`, `_size_at`,
`_ts_at`, `_load`, `_next_live`, `_prev_live`), the physical removal (`_drop`), the
reset used by full purges (`_reset`), and `_persist` (make an admin operation durable).

Empty-stream rules (jetstream-semantics.md §3.3): a never-used store reports first=last=0;
once everything is removed, first = last + 1 and first_ts = 0, last_ts is kept.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from array import array
from typing import ClassVar, Protocol

import msgspec

from shardbroker.errors import ShardbrokerError
from shardbroker.protocol.subjects import str_tokens_match

# A file store record may not exceed this (nats rlBadThresh); both stores refuse it so a
# stream behaves the same whatever its storage.
MAX_RECORD_LEN = 32 * 1024 * 1024
# Wildcard filters are answered by a linear scan instead of by the subject index when
# there are more distinct subjects than this (nats linearScanMaxFSS).
_LINEAR_SCAN_MAX_SUBJECTS = 256


class StoreMsg(msgspec.Struct, frozen=True, gc=False):
    """One stored message (nats StoreMsg; the API's JSON shape is `schema.StoredMsg`).

    Frozen: the memory store hands out the instance it keeps.
    """

    subject: str
    seq: int
    ts: int  # Unix ns
    hdr: bytes  # b"" when the message has no headers
    data: bytes


class StoreLimits(msgspec.Struct):
    """The stream limits a store enforces. -1 (or 0) means unlimited, as in nats."""

    max_msgs: int = -1
    max_bytes: int = -1
    max_age: int = 0  # ns, 0 = none
    max_msgs_per_subject: int = -1
    max_msg_size: int = -1
    discard_new: bool = False
    discard_new_per_subject: bool = False


class StoreState(msgspec.Struct):
    msgs: int = 0
    bytes: int = 0
    first_seq: int = 0
    first_ts: int = 0
    last_seq: int = 0
    last_ts: int = 0
    num_subjects: int = 0
    num_deleted: int = 0
    deleted: list[int] = msgspec.field(default_factory=list)
    lost_msgs: list[int] = msgspec.field(default_factory=list)
    lost_bytes: int = 0


# --- errors: texts as nats-server reports them (server/store.go, stream.go) -------------


class StoreError(ShardbrokerError):
    """Base of the store errors; `str(err)` is the nats-server text."""

    text: ClassVar[str] = "store error"

    def __init__(self, text: str | None = None) -> None:
        super().__init__(text or self.text)


class ErrMaxMsgs(StoreError):
    text = "maximum messages exceeded"


class ErrMaxBytes(StoreError):
    text = "maximum bytes exceeded"


class ErrMaxMsgsPerSubject(StoreError):
    text = "maximum messages per subject exceeded"


class ErrMsgTooBig(StoreError):
    """len(hdr) + len(data) > max_msg_size (API error 10054)."""

    text = "message size exceeds maximum allowed"


class ErrMsgTooLarge(StoreError):
    """The record would exceed MAX_RECORD_LEN (nats ErrMsgTooLarge, API error 10077)."""

    text = "message too large"


class ErrStoreFull(StoreError):
    """Disk full or the store's max_file_store budget is used up (API error 10023)."""

    text = "insufficient resources"


class ErrMsgNotFound(StoreError):
    text = "no message found"


class ErrMsgDeleted(ErrMsgNotFound):
    """The sequence is inside [first_seq, last_seq] but was removed (nats errDeletedMsg)."""

    text = "deleted message"


class ErrStoreClosed(StoreError):
    text = "store is closed"


class ErrSequenceMismatch(StoreError):
    text = "expected sequence does not match store"


# --- the interface ----------------------------------------------------------------------


class StreamStore(Protocol):
    """What the stream layer calls; implemented by FileStore and MemStore."""

    def store_msg(
        self, subject: str, hdr: bytes, data: bytes, ts: int | None = None
    ) -> tuple[int, int]: ...
    def skip_msg(self) -> int: ...
    def skip_msgs(self, seq: int, count: int) -> None: ...
    def set_first_seq(self, seq: int) -> None: ...
    def load_msg(self, seq: int) -> StoreMsg: ...
    def load_next_msg(self, filter_subject: str, start_seq: int) -> StoreMsg | None: ...
    def load_run(self, start_seq: int, limit: int) -> list[StoreMsg]: ...
    def load_last_msg(self, filter_subject: str) -> StoreMsg | None: ...
    def load_prev_msg(self, filter_subject: str, start_seq: int) -> StoreMsg | None: ...
    def remove_msg(self, seq: int, erase: bool = False) -> bool: ...
    def purge(self, subject: str = "", seq: int = 0, keep: int = 0) -> int: ...
    def state(self, deleted_details: bool = True) -> StoreState: ...
    def subjects_state(self, filter_subject: str) -> dict[str, int]: ...
    def num_pending(
        self, start_seq: int, filter_subject: str, last_per_subject: bool = False
    ) -> int: ...
    def update_limits(self, limits: StoreLimits) -> None: ...
    def expire(self, now_ns: int) -> int | None: ...
    def flush(self) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...
    def delete(self) -> None: ...


# --- subjects ---------------------------------------------------------------------------


def filter_is_all(filter_subject: str) -> bool:
    return filter_subject == "" or filter_subject == ">"


def filter_is_literal(filter_subject: str) -> bool:
    if "*" not in filter_subject and ">" not in filter_subject:
        return True
    tokens = filter_subject.split(".")
    return "*" not in tokens and tokens[-1] != ">"


def file_store_msg_size(subject_len: int, hdr_len: int, data_len: int) -> int:
    """nats fileStoreMsgSize: the record length, also the bytes a message accounts for."""
    if hdr_len:
        return 22 + subject_len + 4 + hdr_len + data_len + 8
    return 22 + subject_len + data_len + 8


def mem_store_msg_size(subject_len: int, hdr_len: int, data_len: int) -> int:
    """nats memStoreMsgSize."""
    return subject_len + hdr_len + data_len + 16


def has_rollup_header(hdr: bytes) -> bool:
    """A `Nats-Rollup` header line (exempts a message from discard_new_per_subject)."""
    return b"\r\nNats-Rollup:" in hdr


class _Subj:
    """Per-subject index: `seqs[head:]` are this subject's live sequences, ascending."""

    __slots__ = ("head", "sbytes", "seqs", "subject")

    def __init__(self, subject: str, sbytes: bytes, seq: int) -> None:
        self.subject = subject
        self.sbytes = sbytes  # encoded once, reused by every record on this subject
        self.seqs = array("q", (seq,))
        self.head = 0


# --- shared logic -----------------------------------------------------------------------


class _StoreCore:
    """Counters, subject index, limits, deletes and purges common to both stores."""

    # Subclasses that can be closed reuse these names; slots are declared by subclasses.
    _limits: StoreLimits

    def __init__(self, name: str, limits: StoreLimits) -> None:
        self.name = name
        self._n_msgs = 0
        self._n_bytes = 0
        self._first_seq = 0
        self._first_ts = 0
        self._last_seq = 0
        self._last_ts = 0
        self._dmap: set[int] = set()
        self._dmap_gen = 0  # bumped by whatever may change `_dmap`
        self._deleted_cache: tuple[int, list[int]] = (-1, [])
        self._psim: dict[str, _Subj] = {}
        self._lost_msgs: list[int] = []
        self._lost_bytes = 0
        self._closed = False
        self._set_limits(limits)

    # ---- back-end hooks (documented here, implemented by FileStore and MemStore)

    def _is_live(self, seq: int) -> bool:
        raise NotImplementedError

    def _subject_at(self, seq: int) -> str | None:
        """The subject of live message `seq`, None when not live."""
        raise NotImplementedError

    def _size_at(self, seq: int) -> int:
        raise NotImplementedError

    def _ts_at(self, seq: int) -> int:
        raise NotImplementedError

    def _load(self, seq: int) -> StoreMsg:
        """Precondition: `seq` is live."""
        raise NotImplementedError

    def _next_live(self, seq: int) -> int:
        """Smallest live seq >= seq, 0 if none."""
        raise NotImplementedError

    def _prev_live(self, seq: int) -> int:
        """Largest live seq <= seq, 0 if none."""
        raise NotImplementedError

    def _drop(self, seq: int, erase: bool, front: bool) -> tuple[_Subj, int] | None:
        """Take `seq` out of the back-end index; None if it is not live. `front`: it is
        the first message (its removal is recorded by the new first seq, not a tombstone)."""
        raise NotImplementedError

    def _reset(self, first_seq: int, last_seq: int) -> None:
        """Drop every message; the store restarts at `first_seq` (full purge)."""
        raise NotImplementedError

    def _note_skip(self, first: int, last: int) -> None:
        """Sequences first..last were consumed without storing anything."""

    def _persist(self) -> None:
        """Make the effect of an admin operation (delete, purge, expiry...) durable."""

    # ---- limits

    def _set_limits(self, limits: StoreLimits) -> None:
        self._limits = limits
        # Hot copies; <= 0 means unlimited for the counts (nats).
        self._max_msgs = limits.max_msgs if limits.max_msgs > 0 else 0
        self._max_bytes = limits.max_bytes if limits.max_bytes > 0 else 0
        self._maxp = limits.max_msgs_per_subject if limits.max_msgs_per_subject > 0 else 0
        # nats turns a configured 0 into -1 before it reaches the store, so 0 is unlimited.
        self._max_msg_size = limits.max_msg_size if limits.max_msg_size > 0 else -1
        self._max_age = limits.max_age if limits.max_age > 0 else 0
        self._discard_new = limits.discard_new
        self._discard_new_per = limits.discard_new_per_subject

    def _check_discard_new(self, subject: str, ss: _Subj | None, size: int, hdr: bytes) -> None:
        """Discard-new rejections, in nats order (memstore.storeRawMsg)."""
        maxp = self._maxp
        at_subject_limit = ss is not None and maxp > 0 and len(ss.seqs) - ss.head >= maxp
        if at_subject_limit and self._discard_new_per and not has_rollup_header(hdr):
            raise ErrMaxMsgsPerSubject()
        if self._max_msgs and self._n_msgs >= self._max_msgs and not at_subject_limit:
            raise ErrMaxMsgs()
        if self._max_bytes and self._n_bytes + size > self._max_bytes:
            if not at_subject_limit:
                raise ErrMaxBytes()
            # The subject's oldest message will be evicted: enough room only if it is at
            # least as large as the new one.
            assert ss is not None
            if self._size_at(ss.seqs[ss.head]) < size:
                raise ErrMaxBytes()

    def _check_size(self, hdr_len: int, data_len: int, record_len: int) -> None:
        if record_len > MAX_RECORD_LEN:
            raise ErrMsgTooLarge()
        if 0 <= self._max_msg_size < hdr_len + data_len:
            raise ErrMsgTooBig()

    def _enforce_after_store(self, ss: _Subj) -> None:
        """Discard-old and per-subject eviction after a store."""
        if self._maxp:
            while len(ss.seqs) - ss.head > self._maxp:
                self._remove(ss.seqs[ss.head])
        if not self._discard_new:
            if self._max_msgs:
                while self._n_msgs > self._max_msgs:
                    self._remove(self._first_seq)
            if self._max_bytes:
                while self._n_bytes > self._max_bytes:
                    self._remove(self._first_seq)

    def update_limits(self, limits: StoreLimits) -> None:
        """Apply new limits and trim at once, as nats does on a stream update. Count and
        byte limits only trim with discard old; per-subject limits always do."""
        self._check_open()
        old_maxp = self._maxp
        self._set_limits(limits)
        removed = False
        if self._maxp and (old_maxp == 0 or self._maxp < old_maxp):
            for ss in list(self._psim.values()):
                while len(ss.seqs) - ss.head > self._maxp:
                    self._remove(ss.seqs[ss.head])
                    removed = True
        if not self._discard_new:
            while self._max_msgs and self._n_msgs > self._max_msgs:
                removed = self._remove(self._first_seq) or removed
            while self._max_bytes and self._n_bytes > self._max_bytes:
                removed = self._remove(self._first_seq) or removed
        if removed:
            self._persist()

    def expire(self, now_ns: int) -> int | None:
        """Remove messages older than max_age, oldest first, stopping at the first one that
        is young enough (nats expireMsgs). Returns when the next one expires (Unix ns)."""
        self._check_open()
        max_age = self._max_age
        if not max_age:
            return None
        cutoff = now_ns - max_age
        removed = False
        while self._n_msgs and self._first_ts <= cutoff:
            self._remove(self._first_seq)
            removed = True
        if removed:
            self._persist()
        return self._first_ts + max_age if self._n_msgs else None

    # ---- removal core

    def _remove(self, seq: int, erase: bool = False) -> bool:
        front = seq == self._first_seq
        dropped = self._drop(seq, erase, front)
        if dropped is None:
            return False
        ss, size = dropped
        self._dmap_gen += 1
        self._n_msgs -= 1
        self._n_bytes -= size
        self._unindex_subject(ss, seq)
        if front:
            self._advance_first(seq)
        else:
            self._dmap.add(seq)
        return True

    def _unindex_subject(self, ss: _Subj, seq: int) -> None:
        seqs = ss.seqs
        head = ss.head
        if seqs[head] == seq:
            head += 1
            if head == len(seqs):
                del self._psim[ss.subject]
                return
            if head >= 32 and head * 2 >= len(seqs):
                del seqs[:head]
                head = 0
            ss.head = head
        elif seqs[-1] == seq:
            seqs.pop()
        else:
            i = bisect.bisect_left(seqs, seq, head)
            if i < len(seqs) and seqs[i] == seq:
                del seqs[i]

    def _advance_first(self, old_first: int) -> None:
        """The first message was removed: move first_seq to the next live message and
        forget the deleted sequences it skips (all of them are in `_dmap`)."""
        if not self._n_msgs:
            self._first_seq = self._last_seq + 1
            self._first_ts = 0
            self._dmap.clear()
            return
        nxt = self._next_live(old_first + 1)
        dmap = self._dmap
        if nxt - old_first - 1 > len(dmap):
            self._dmap = {s for s in dmap if s > nxt}
        else:
            for s in range(old_first + 1, nxt):
                dmap.discard(s)
        self._first_seq = nxt
        self._first_ts = self._ts_at(nxt)

    def remove_msg(self, seq: int, erase: bool = False) -> bool:
        """Delete one message; False if it is not there. `erase` overwrites its bytes."""
        self._check_open()
        if not self._remove(seq, erase):
            return False
        self._persist()
        return True

    # ---- sequences

    def skip_msg(self) -> int:
        """Consume the next sequence without storing (interest retention with no
        interest; nats SkipMsgNoInterest). Publish path: made durable by the next flush."""
        self._check_open()
        seq = self._last_seq + 1
        self._last_seq = seq
        self._last_ts = time.time_ns()
        if self._n_msgs == 0:
            self._first_seq = seq + 1
            self._first_ts = 0
        else:
            self._dmap.add(seq)
            self._dmap_gen += 1
        self._note_skip(seq, seq)
        return seq

    def skip_msgs(self, seq: int, count: int) -> None:
        """Consume sequences seq..seq+count-1 without storing (nats SkipMsgs); `seq` must
        be last_seq + 1."""
        self._check_open()
        if seq != self._last_seq + 1:
            raise ErrSequenceMismatch()
        if count <= 0:
            return
        last = seq + count - 1
        self._last_seq = last
        if not self._last_ts:
            self._last_ts = time.time_ns()
        if self._n_msgs == 0:
            self._first_seq = last + 1
            self._first_ts = 0
        else:
            self._dmap.update(range(seq, last + 1))
            self._dmap_gen += 1
        self._note_skip(seq, last)
        self._persist()

    def set_first_seq(self, seq: int) -> None:
        """Make an empty store start at `seq` (stream `first_seq`; nats purge(fseq))."""
        self._check_open()
        if self._n_msgs:
            raise StoreError("first sequence can only be set on an empty store")
        if seq <= self._last_seq:
            raise ErrSequenceMismatch()
        self._compact(seq)

    # ---- purge (STREAM.PURGE, jetstream-semantics.md §5.2; nats PurgeEx)

    def purge(self, subject: str = "", seq: int = 0, keep: int = 0) -> int:
        """Remove messages: all, those on `subject` (wildcards ok), those below `seq`, all
        but the newest `keep`. Returns how many were removed. Numbering is preserved."""
        self._check_open()
        if seq == 1:  # "below 1" is nothing
            return 0
        if filter_is_all(subject):
            if keep == 0 and seq == 0:
                return self._purge_all()
            if seq > 1:
                return self._compact(seq)
            subject = ">"
        candidates = self._matching_subjects(subject)
        total = sum(len(ss.seqs) - ss.head for ss in candidates)
        if total == 0:
            return 0
        limit = total
        if keep > 0:
            if keep >= total:
                return 0
            limit = total - keep
        upper = seq - 1 if seq > 1 else self._last_seq
        # Snapshot the victims first: removal edits the arrays being merged.
        streams = [ss.seqs[ss.head :] for ss in candidates]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams)
        victims = list(itertools.islice(itertools.takewhile(lambda s: s <= upper, merged), limit))
        purged = 0
        for s in victims:
            if self._remove(s):
                purged += 1
        if purged:
            self._persist()
        return purged

    def _purge_all(self) -> int:
        purged = self._n_msgs
        first = self._last_seq + 1
        self._reset(first, self._last_seq)
        self._clear(first)
        return purged

    def _compact(self, seq: int) -> int:
        """Remove everything below `seq` (nats Compact). Past the end the store restarts at
        `seq`: first = seq, last = seq - 1."""
        if self._first_seq > seq:
            return 0
        if seq <= self._last_seq:
            purged = 0
            while self._n_msgs and self._first_seq < seq:
                self._remove(self._first_seq)
                purged += 1
            if purged:
                self._persist()
            return purged
        purged = self._n_msgs
        self._reset(seq, seq - 1)
        self._last_seq = seq - 1
        self._clear(seq)
        return purged

    def _clear(self, first: int) -> None:
        self._n_msgs = 0
        self._n_bytes = 0
        self._first_seq = first
        self._first_ts = 0
        self._dmap = set()
        self._dmap_gen += 1
        self._psim = {}

    # ---- reads

    def load_msg(self, seq: int) -> StoreMsg:
        self._check_open()
        if self._is_live(seq):
            return self._load(seq)
        if self._first_seq <= seq <= self._last_seq:
            raise ErrMsgDeleted()
        raise ErrMsgNotFound()

    def _matching_subjects(self, filter_subject: str) -> list[_Subj]:
        psim = self._psim
        if filter_is_all(filter_subject):
            return list(psim.values())
        if filter_is_literal(filter_subject):
            ss = psim.get(filter_subject)
            return [ss] if ss is not None else []
        tokens = filter_subject.split(".")
        return [ss for subj, ss in psim.items() if str_tokens_match(tokens, subj)]

    def load_next_msg(self, filter_subject: str, start_seq: int) -> StoreMsg | None:
        """First live message with seq >= start_seq on a subject matching the filter."""
        self._check_open()
        start = max(start_seq, self._first_seq)
        if start > self._last_seq or not self._n_msgs:
            return None
        if filter_is_all(filter_subject):
            seq = self._next_live(start)
            return self._load(seq) if seq else None
        psim = self._psim
        if filter_is_literal(filter_subject):
            ss = psim.get(filter_subject)
            if ss is None:
                return None
            seqs = ss.seqs
            i = bisect.bisect_left(seqs, start, ss.head)
            return self._load(seqs[i]) if i < len(seqs) else None
        tokens = filter_subject.split(".")
        if 2 * (self._last_seq - start) < len(psim) or len(psim) > _LINEAR_SCAN_MAX_SUBJECTS:
            seq = self._scan_forward(tokens, start)
            return self._load(seq) if seq else None
        best = 0
        for subj, ss in psim.items():
            seqs = ss.seqs
            if seqs[-1] < start or (best and seqs[ss.head] >= best):
                continue
            if str_tokens_match(tokens, subj):
                i = bisect.bisect_left(seqs, start, ss.head)
                if i < len(seqs) and (not best or seqs[i] < best):
                    best = seqs[i]
        return self._load(best) if best else None

    def load_run(self, start_seq: int, limit: int) -> list[StoreMsg]:
        """Up to `limit` live messages from start_seq on, in order, any subject: what
        `limit` calls of load_next_msg("", previous + 1) would return."""
        self._check_open()
        run: list[StoreMsg] = []
        seq = max(start_seq, self._first_seq)
        if seq > self._last_seq or not self._n_msgs:
            return run
        while len(run) < limit:
            seq = self._next_live(seq)
            if not seq:
                break
            run.append(self._load(seq))
            seq += 1
        return run

    def _scan_forward(self, tokens: list[str], start: int) -> int:
        seen: dict[str, bool] = {}
        seq = self._next_live(start)
        while seq:
            subj = self._subject_at(seq)
            assert subj is not None
            hit = seen.get(subj)
            if hit is None:
                hit = seen[subj] = str_tokens_match(tokens, subj)
            if hit:
                return seq
            seq = self._next_live(seq + 1)
        return 0

    def load_last_msg(self, filter_subject: str) -> StoreMsg | None:
        """Last live message on a subject matching the filter."""
        self._check_open()
        if not self._n_msgs:
            return None
        if filter_is_all(filter_subject):
            seq = self._prev_live(self._last_seq)
            return self._load(seq) if seq else None
        best = 0
        for ss in self._matching_subjects(filter_subject):
            best = max(best, ss.seqs[-1])
        return self._load(best) if best else None

    def load_prev_msg(self, filter_subject: str, start_seq: int) -> StoreMsg | None:
        """Last live message with seq <= start_seq on a subject matching the filter."""
        self._check_open()
        start = min(start_seq, self._last_seq)
        if start < self._first_seq or not self._n_msgs:
            return None
        if filter_is_all(filter_subject):
            seq = self._prev_live(start)
            return self._load(seq) if seq else None
        best = 0
        for ss in self._matching_subjects(filter_subject):
            seqs = ss.seqs
            i = bisect.bisect_right(seqs, start, ss.head)
            if i > ss.head:
                best = max(best, seqs[i - 1])
        return self._load(best) if best else None

    # ---- state

    def state(self, deleted_details: bool = True) -> StoreState:
        """Counters are kept incrementally; `deleted` comes from the delete set, sorted
        again only after it changed (deleted_details=False leaves it empty)."""
        first, last = self._first_seq, self._last_seq
        num_deleted = last - first + 1 - self._n_msgs if self._n_msgs else 0
        return StoreState(
            msgs=self._n_msgs,
            bytes=self._n_bytes,
            first_seq=first,
            first_ts=self._first_ts,
            last_seq=last,
            last_ts=self._last_ts,
            num_subjects=len(self._psim),
            num_deleted=num_deleted,
            deleted=self._deleted() if deleted_details and num_deleted else [],
            lost_msgs=list(self._lost_msgs),
            lost_bytes=self._lost_bytes,
        )

    def _deleted(self) -> list[int]:
        gen, deleted = self._deleted_cache
        if gen != self._dmap_gen:
            deleted = sorted(self._dmap)
            self._deleted_cache = (self._dmap_gen, deleted)
        return list(deleted)

    def subjects_state(self, filter_subject: str) -> dict[str, int]:
        """subject -> number of live messages, for subjects matching the filter."""
        matching = self._matching_subjects(filter_subject)
        return {ss.subject: len(ss.seqs) - ss.head for ss in matching}

    def num_pending(
        self, start_seq: int, filter_subject: str, last_per_subject: bool = False
    ) -> int:
        """Live messages with seq >= start_seq matching the filter; with last_per_subject,
        the matching subjects whose newest message is >= start_seq."""
        start = max(start_seq, self._first_seq)
        if start > self._last_seq or not self._n_msgs:
            return 0
        is_all = filter_is_all(filter_subject)
        if is_all and start <= self._first_seq:
            return len(self._psim) if last_per_subject else self._n_msgs
        if is_all and not last_per_subject and self._last_seq - start < len(self._psim):
            n = 0
            seq = self._next_live(start)
            while seq:
                n += 1
                seq = self._next_live(seq + 1)
            return n
        total = 0
        for ss in self._matching_subjects(filter_subject):
            seqs = ss.seqs
            if seqs[-1] < start:
                continue
            if last_per_subject:
                total += 1
            else:
                total += len(seqs) - bisect.bisect_left(seqs, start, ss.head)
        return total

    # ---- misc

    def _check_open(self) -> None:
        if self._closed:
            raise ErrStoreClosed()
