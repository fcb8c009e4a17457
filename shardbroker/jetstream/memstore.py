"""MemStore: the JetStream stream store for `storage: memory` ([storage] process).

Messages live in a dict seq -> StoreMsg (the frozen instance is handed out by loads, so
a load allocates nothing). Semantics, limits and errors are those of `_StoreCore`, shared
with FileStore. Nothing survives a restart. Byte accounting is nats memStoreMsgSize:
len(subject) + len(hdr) + len(data) + 16. Secure erase is a plain delete here, as in nats.
"""

from __future__ import annotations

import time

from shardbroker.jetstream.store import (
    MAX_RECORD_LEN,
    StoreLimits,
    StoreMsg,
    _StoreCore,
    _Subj,
    mem_store_msg_size,
)


class MemStore(_StoreCore):
    def __init__(self, name: str, limits: StoreLimits) -> None:
        super().__init__(name, limits)
        self._msgs: dict[int, StoreMsg] = {}

    def store_msg(
        self, subject: str, hdr: bytes, data: bytes, ts: int | None = None
    ) -> tuple[int, int]:
        """Store a message; returns (seq, ts). Raises the discard-new/size errors."""
        if self._closed:
            self._check_open()
        ss = self._psim.get(subject)
        if ss is None:
            sbytes = subject.encode()
            slen = len(sbytes)
        else:
            slen = len(ss.sbytes)
        hlen = len(hdr)
        dlen = len(data)
        size = slen + hlen + dlen + 16
        rec_len = (34 + hlen if hlen else 30) + slen + dlen  # the file store's record size
        if rec_len > MAX_RECORD_LEN or self._max_msg_size >= 0:
            self._check_size(hlen, dlen, rec_len)
        if self._discard_new or self._discard_new_per:
            self._check_discard_new(subject, ss, size, hdr)
        seq = self._last_seq + 1
        if ts is None:
            ts = time.time_ns()
        self._msgs[seq] = StoreMsg(subject, seq, ts, hdr, data)
        if ss is None:
            ss = self._psim[subject] = _Subj(subject, sbytes, seq)
        else:
            ss.seqs.append(seq)
        if not self._n_msgs:
            self._first_seq = seq
            self._first_ts = ts
        self._n_msgs += 1
        self._n_bytes += size
        self._last_seq = seq
        self._last_ts = ts
        if self._maxp or self._max_msgs or self._max_bytes:
            self._enforce_after_store(ss)
        return seq, ts

    # ---- back-end hooks

    def _is_live(self, seq: int) -> bool:
        return seq in self._msgs

    def _subject_at(self, seq: int) -> str | None:
        sm = self._msgs.get(seq)
        return sm.subject if sm is not None else None

    def _size_at(self, seq: int) -> int:
        sm = self._msgs[seq]
        return mem_store_msg_size(len(self._psim[sm.subject].sbytes), len(sm.hdr), len(sm.data))

    def _ts_at(self, seq: int) -> int:
        return self._msgs[seq].ts

    def _load(self, seq: int) -> StoreMsg:
        return self._msgs[seq]

    def _next_live(self, seq: int) -> int:
        msgs = self._msgs
        last = self._last_seq
        while seq <= last:
            if seq in msgs:
                return seq
            seq += 1
        return 0

    def _prev_live(self, seq: int) -> int:
        msgs = self._msgs
        first = self._first_seq
        while seq >= first and seq > 0:
            if seq in msgs:
                return seq
            seq -= 1
        return 0

    def _drop(self, seq: int, erase: bool, front: bool) -> tuple[_Subj, int] | None:
        sm = self._msgs.pop(seq, None)
        if sm is None:
            return None
        ss = self._psim[sm.subject]
        return ss, mem_store_msg_size(len(ss.sbytes), len(sm.hdr), len(sm.data))

    def _reset(self, first_seq: int, last_seq: int) -> None:
        self._msgs = {}

    # ---- lifecycle

    def flush(self) -> None:
        """Nothing to write."""

    def sync(self) -> None:
        """Nothing to sync."""

    def close(self) -> None:
        self._closed = True

    def delete(self) -> None:
        self._msgs = {}
        self._clear(0)
        self._closed = True
