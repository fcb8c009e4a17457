"""One stream: its config, its store, and the publish path (jetstream-semantics.md §2).

Owner: the storage shard. The publish path runs once per captured message, so it
stays lean: a message without headers costs the sealed and size checks, one
``store_msg`` and one preformatted PubAck; header checks only run when a header
block carries a ``Nats-`` key.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from typing import Any, Protocol

import msgspec

from shardbroker.jetstream import consumer_schema, jserrors, jsondecode, jsonencode, schema
from shardbroker.jetstream.consumer import SAVE_INTERVAL, Consumer, ConsumerHost
from shardbroker.jetstream.consumer_state import read_state, write_state
from shardbroker.jetstream.filestore import FileStore
from shardbroker.jetstream.memstore import MemStore
from shardbroker.jetstream.store import (
    ErrMaxBytes,
    ErrMaxMsgs,
    ErrMaxMsgsPerSubject,
    ErrMsgTooBig,
    ErrMsgTooLarge,
    ErrStoreFull,
    StoreError,
    StoreLimits,
    StreamStore,
)
from shardbroker.protocol.headers import header_value


class StreamHost(ConsumerHost, Protocol):
    """What a stream needs of the JetStream engine (engine.py's JetStream is the one),
    beyond what its consumers need: the streams with writes to flush, the domain its
    PubAcks name, and the server-wide and account storage budgets."""

    domain: str
    dirty: set[Stream]

    def file_budget_exceeded(self, stream: Stream, size: int) -> bool: ...

    def account_budget_exceeded(
        self, stream: Stream, subject: bytes, hdr: bytes, data: bytes
    ) -> bool: ...


log = logging.getLogger("shardbroker.jetstream")

META_FILE = "meta.inf"
META_SUM = "meta.sum"
MSGS_DIR = "msgs"
CONSUMERS_DIR = "obs"
MAX_HEADERS = 65535

NATS_ = b"Nats-"
MSG_ID = b"Nats-Msg-Id"
EXPECTED_STREAM = b"Nats-Expected-Stream"
EXPECTED_LAST_SEQ = b"Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJECT_SEQ = b"Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = b"Nats-Expected-Last-Subject-Sequence-Subject"
EXPECTED_LAST_MSG_ID = b"Nats-Expected-Last-Msg-Id"
ROLLUP = b"Nats-Rollup"
TTL = b"Nats-TTL"
STREAM_SOURCE = b"Nats-Stream-Source"

# Answer of process_publish: (header block, body) for the reply subject.
Answer = tuple[bytes, bytes]


class StreamMeta(msgspec.Struct):
    """What meta.inf holds: the normalised config and the creation time (Unix ns)."""

    config: schema.StreamConfig
    created: int


class ConsumerMeta(msgspec.Struct):
    """A consumer's meta.inf: its name, config and creation time (Unix ns)."""

    name: str
    config: Any  # a consumer_schema.ConsumerConfig once decoded (see _load_consumers)
    created: int


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_meta(directory: str, meta: StreamMeta | ConsumerMeta) -> None:
    fields: dict[str, Any] = {}
    if isinstance(meta, ConsumerMeta):
        fields["name"] = meta.name
    fields["config"] = jsonencode.to_builtins(meta.config)
    fields["created"] = meta.created
    data = msgspec.json.encode(fields)
    _write_atomic(os.path.join(directory, META_FILE), data)
    _write_atomic(os.path.join(directory, META_SUM), hashlib.sha256(data).hexdigest().encode())
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_meta(directory: str, kind: type[Any] = StreamMeta) -> Any:
    """Read and verify meta.inf; ValueError when it is missing its checksum or corrupt."""
    with open(os.path.join(directory, META_FILE), "rb") as f:
        data = f.read()
    try:
        with open(os.path.join(directory, META_SUM), "rb") as f:
            expected = f.read().strip()
    except FileNotFoundError:
        raise ValueError(f"{META_SUM} is missing") from None
    if hashlib.sha256(data).hexdigest().encode() != expected:
        raise ValueError(f"{META_FILE} does not match its checksum")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{META_FILE} is not valid: {exc}") from None


def limits_of(config: schema.StreamConfig) -> StoreLimits:
    return StoreLimits(
        max_msgs=config.max_msgs,
        max_bytes=config.max_bytes,
        max_age=config.max_age,
        max_msgs_per_subject=config.max_msgs_per_subject,
        max_msg_size=config.max_msg_size,
        discard_new=config.discard == "new",
        discard_new_per_subject=config.discard_new_per_subject,
    )


def _error_answer(stream_name: bytes, error: jserrors.ApiError) -> Answer:
    return b"", schema.pub_ack_error(stream_name.decode(), error)


class Stream:
    def __init__(
        self,
        engine: StreamHost,
        account: bytes,
        directory: str,
        meta: StreamMeta,
        store: StreamStore,
    ) -> None:
        self.engine = engine
        self.account = account
        self.directory = directory
        self.meta = meta
        self.store = store
        self._configure(meta.config)
        # Nats-Msg-Id -> (sequence, store time ns), oldest first.
        self.msg_ids: dict[bytes, tuple[int, int]] = {}
        self.last_msg_id = b""
        self._next_expiry: int | None = 0
        self._rebuild_msg_ids()
        self.consumers: dict[str, Consumer] = {}

    # -- life -----------------------------------------------------------------------------

    @classmethod
    def create(cls, engine: StreamHost, account: bytes, directory: str, meta: StreamMeta) -> Stream:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        save_meta(directory, meta)
        stream = cls(engine, account, directory, meta, _open_store(engine, directory, meta))
        first = meta.config.first_seq
        if first and first > 1:
            stream.store.set_first_seq(first)
        return stream

    @classmethod
    def open(cls, engine: StreamHost, account: bytes, directory: str, meta: StreamMeta) -> Stream:
        stream = cls(engine, account, directory, meta, _open_store(engine, directory, meta))
        stream._load_consumers()
        return stream

    # -- consumers ----------------------------------------------------------------------------

    def _consumer_dir(self, name: str) -> str:
        return os.path.join(self.directory, CONSUMERS_DIR, name)

    def _persistent(self, consumer: Consumer) -> bool:
        return self.config.storage != "memory" and not consumer.config.mem_storage

    def _load_consumers(self) -> None:
        root = os.path.join(self.directory, CONSUMERS_DIR)
        if not os.path.isdir(root):
            return
        for name in sorted(os.listdir(root)):
            directory = os.path.join(root, name)
            try:
                meta = load_meta(directory, ConsumerMeta)
            except (OSError, ValueError) as exc:
                log.error("skipping consumer directory %s: %s", directory, exc)
                continue
            try:
                config = jsondecode.decode_request(
                    msgspec.json.encode(meta.config), consumer_schema.ConsumerConfig
                )
            except jserrors.ApiError as exc:
                log.error("skipping consumer %s: bad config: %s", directory, exc)
                continue
            consumer = Consumer(self, meta.name, config, meta.created)
            state = read_state(directory)
            if state is not None:
                consumer.restore(state)
            else:
                consumer.set_start()
            self.consumers[meta.name] = consumer
            self.engine.ready.add(consumer)

    def add_consumer(self, name: str, config: Any) -> Consumer:
        consumer = Consumer(self, name, config, self.engine.clock())
        consumer.set_start()
        if self._persistent(consumer):
            directory = self._consumer_dir(name)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            save_meta(directory, ConsumerMeta(name=name, config=config, created=consumer.created))
            write_state(directory, consumer)
            consumer.dirty = False
        self.consumers[name] = consumer
        self.engine.ready.add(consumer)
        return consumer

    def update_consumer(self, consumer: Consumer, config: Any) -> None:
        consumer.configure(config)
        if self._persistent(consumer):
            save_meta(
                self._consumer_dir(consumer.name),
                ConsumerMeta(name=consumer.name, config=config, created=consumer.created),
            )
        self.engine.ready.add(consumer)

    def delete_consumer(self, consumer: Consumer, reason: str = "Consumer Deleted") -> None:
        consumer.stop(reason)
        self.consumers.pop(consumer.name, None)
        self.engine.ready.discard(consumer)
        shutil.rmtree(self._consumer_dir(consumer.name), ignore_errors=True)
        if self.interest_retention:
            self._drop_uninteresting()

    def save_consumers(self, now: int = 0, force: bool = False) -> None:
        """Write the state of consumers that changed: at once when forced or asked
        (`save_now`), else when the last write is SAVE_INTERVAL old."""
        for consumer in self.consumers.values():
            if not consumer.dirty:
                continue
            if not (force or consumer.save_now or now - consumer.saved_at >= SAVE_INTERVAL):
                continue
            consumer.dirty = False
            consumer.save_now = False
            consumer.saved_at = now
            if not self._persistent(consumer):
                continue
            try:
                write_state(self._consumer_dir(consumer.name), consumer)
            except OSError as exc:
                log.error(
                    "consumer '%s > %s': cannot save state: %s", self.name, consumer.name, exc
                )

    def tick_consumers(self, now: int) -> None:
        for consumer in list(self.consumers.values()):
            consumer.tick(now)
            threshold = consumer.config.inactive_threshold
            if threshold and consumer.inactive_for(now) > threshold:
                log.debug("consumer '%s > %s' inactive; deleting it", self.name, consumer.name)
                self.delete_consumer(consumer)

    def acknowledged(self, consumer: Consumer, seqs: list[int]) -> None:
        """A consumer is done with these messages: retention may remove them."""
        retention = self.config.retention
        if retention == "limits":
            return
        store = self.store
        for seq in seqs:
            if retention == "workqueue":
                store.remove_msg(seq)
                continue
            try:
                subject = store.load_msg(seq).subject
            except StoreError:
                continue
            if all(c.acked(seq) for c in self.consumers.values() if c.matches(subject)):
                store.remove_msg(seq)
        self.engine.dirty.add(self)

    def _drop_uninteresting(self) -> None:
        """Interest retention after a consumer went: remove what nobody still needs."""
        store = self.store
        seq = store.state(False).first_seq
        while True:
            msg = store.load_next_msg("", seq)
            if msg is None:
                break
            interested = [c for c in self.consumers.values() if c.matches(msg.subject)]
            if all(c.acked(msg.seq) for c in interested):
                store.remove_msg(msg.seq)
            seq = msg.seq + 1
        self.engine.dirty.add(self)

    def messages_removed(self) -> None:
        """Messages went (purge, delete, limits): consumers recount and drop what vanished."""
        first = self.store.state(False).first_seq
        for consumer in self.consumers.values():
            consumer.npc_stale = True
            if consumer.sseq < first:
                consumer.sseq = first
            dropped = False
            for seq in list(consumer.pending):
                if seq < first or not self._exists(seq):
                    del consumer.pending[seq]
                    consumer.rdc.pop(seq, None)
                    dropped = True
            if dropped:
                consumer._move_floor()
            if consumer.floor_sseq < first - 1 and not consumer.pending:
                consumer.floor_sseq = first - 1
            consumer.dirty = True

    def _exists(self, seq: int) -> bool:
        try:
            self.store.load_msg(seq)
        except StoreError:
            return False
        return True

    def _configure(self, config: schema.StreamConfig) -> None:
        self.config = config
        self.name = config.name
        self.name_bytes = config.name.encode()
        self.ack_prefix = schema.pub_ack_prefix(config.name, self.engine.domain)
        self.sealed = config.sealed
        self.no_ack = config.no_ack
        self.max_msg_size = config.max_msg_size
        self.window = config.duplicate_window
        self.interest_retention = config.retention == "interest"
        # Limits can drop old messages as a side effect of storing a new one.
        self.limited = bool(
            config.max_msgs > 0 or config.max_bytes > 0 or config.max_msgs_per_subject > 0
        )
        self.allow_rollup = config.allow_rollup_hdrs and not config.deny_purge

    def capture_subjects(self) -> list[bytes]:
        return [subject.encode() for subject in self.config.subjects or ()]

    def update(self, config: schema.StreamConfig) -> None:
        meta = StreamMeta(config=config, created=self.meta.created)
        save_meta(self.directory, meta)
        self.meta = meta
        self._configure(config)
        self.store.update_limits(limits_of(config))
        self._next_expiry = 0

    def flush(self) -> None:
        try:
            self.store.flush()
        except (StoreError, OSError) as exc:
            log.error("stream '%s': write failed: %s", self.name, exc)

    def close(self) -> None:
        self.store.close()

    def delete(self) -> None:
        for consumer in list(self.consumers.values()):
            consumer.stop()
            self.engine.ready.discard(consumer)
        self.consumers.clear()
        self.store.delete()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- publish ----------------------------------------------------------------------------

    def process_publish(
        self, subject: bytes, reply: bytes | None, hdr: bytes, data: bytes
    ) -> Answer | None:
        """Store one captured message; the answer for its reply subject (None: no answer)."""
        if self.sealed:
            return self._refuse(jserrors.error("JSStreamSealedErr"))
        msg_id = b""
        rollup = b""
        if hdr:
            if len(hdr) > MAX_HEADERS:
                return self._refuse(jserrors.error("JSStreamHeaderExceedsMaximumErr"))
            if NATS_ in hdr:
                refused, msg_id, rollup = self._check_headers(subject, hdr)
                if refused is not None:
                    return None if self.no_ack else refused
        if self.max_msg_size >= 0 and len(hdr) + len(data) > self.max_msg_size:
            return self._refuse(jserrors.error("JSStreamMessageExceedsMaximumErr"))
        engine = self.engine
        if engine.file_budget_exceeded(self, len(subject) + len(hdr) + len(data)):
            return self._refuse(jserrors.error("JSInsufficientResourcesErr"))
        if engine.account_budget_exceeded(self, subject, hdr, data):
            return self._refuse(jserrors.error("JSAccountResourcesExceededErr"))
        try:
            if self.interest_retention and not self.has_interest(subject):
                seq = self.store.skip_msg()
                ts = 0
            else:
                seq, ts = self.store.store_msg(subject.decode(), hdr, data)
        except (ErrMaxMsgs, ErrMaxBytes, ErrMaxMsgsPerSubject) as exc:
            return self._refuse(jserrors.error("JSStreamStoreFailedF", err=str(exc)))
        except ErrMsgTooBig:
            return self._refuse(jserrors.error("JSStreamMessageExceedsMaximumErr"))
        except ErrMsgTooLarge as exc:
            return self._refuse(jserrors.error("JSStreamStoreFailedF", err=str(exc)))
        except ErrStoreFull:
            return self._refuse(jserrors.error("JSInsufficientResourcesErr"))
        except (StoreError, OSError) as exc:
            log.error("stream '%s': store failed: %s", self.name, exc)
            return self._refuse(jserrors.error("JSStreamStoreFailedF", err=str(exc)))
        engine.dirty.add(self)
        if msg_id:
            self.msg_ids[msg_id] = (seq, ts or self.engine.clock())
        self.last_msg_id = msg_id
        if rollup:
            if rollup == b"sub":
                self.store.purge(subject=subject.decode(), seq=seq)
            else:
                self.store.purge(seq=seq)
            if self.consumers:
                self.messages_removed()
        if self.consumers and ts:
            text = subject.decode()
            limited = self.limited
            for consumer in self.consumers.values():
                if limited:
                    consumer.npc_stale = True
                consumer.on_new_message(seq, text)
        if self.no_ack:
            return None
        return b"", self.ack_prefix + str(seq).encode() + b"}"

    def _refuse(self, error: jserrors.ApiError) -> Answer | None:
        return None if self.no_ack else _error_answer(self.name_bytes, error)

    def _check_headers(self, subject: bytes, hdr: bytes) -> tuple[Answer | None, bytes, bytes]:
        """The header checks in the reference's order: (the answer when the message is
        refused or a duplicate, else None; its msg id; its rollup value)."""
        refused = self._header_checks(subject, hdr)
        if refused is not None:
            return refused, b"", b""
        msg_id = header_value(hdr, MSG_ID) or b""
        if msg_id and self.window:
            seen = self.msg_ids.get(msg_id)
            if seen is not None and self.engine.clock() - seen[1] < self.window:
                return (b"", schema.pub_ack_duplicate(self.ack_prefix, seen[0])), b"", b""
        value = header_value(hdr, EXPECTED_LAST_MSG_ID)
        if value is not None and value != self.last_msg_id:
            error = jserrors.error("JSStreamWrongLastMsgIDErrF", id=self.last_msg_id.decode())
            return _error_answer(self.name_bytes, error), b"", b""
        rollup = header_value(hdr, ROLLUP)
        if rollup is not None:
            refused = self._check_rollup(rollup)
            if refused is not None:
                return refused, b"", b""
            rollup = rollup.lower()
        return None, msg_id, rollup or b""

    def _header_checks(self, subject: bytes, hdr: bytes) -> Answer | None:
        """The checks that run before de-duplication."""
        expected = header_value(hdr, EXPECTED_STREAM)
        if expected is not None and expected != self.name_bytes:
            return _error_answer(self.name_bytes, jserrors.error("JSStreamNotMatchErr"))
        if header_value(hdr, TTL) is not None and not self.config.allow_msg_ttl:
            return _error_answer(self.name_bytes, jserrors.error("JSMessageTTLDisabledErr"))
        value = header_value(hdr, EXPECTED_LAST_SUBJECT_SEQ)
        if value is not None:
            wanted = _parse_seq(value)
            on = header_value(hdr, EXPECTED_LAST_SUBJECT_SEQ_SUBJECT) or subject
            last = self.store.load_last_msg(on.decode())
            actual = last.seq if last is not None else 0
            if wanted is None or wanted != actual:
                return _error_answer(
                    self.name_bytes, jserrors.error("JSStreamWrongLastSequenceErrF", seq=actual)
                )
        elif header_value(hdr, EXPECTED_LAST_SUBJECT_SEQ_SUBJECT) is not None:
            return _error_answer(
                self.name_bytes, jserrors.error("JSStreamExpectedLastSeqPerSubjectInvalid")
            )
        value = header_value(hdr, EXPECTED_LAST_SEQ)
        if value is not None:
            last_seq = self.store.state(False).last_seq
            if _parse_seq(value) != last_seq:
                return _error_answer(
                    self.name_bytes, jserrors.error("JSStreamWrongLastSequenceErrF", seq=last_seq)
                )
        if header_value(hdr, STREAM_SOURCE) is not None:
            return _error_answer(self.name_bytes, jserrors.error("JSMessageSourceHdrNotAllowedErr"))
        return None

    def _check_rollup(self, rollup: bytes) -> Answer | None:
        if not self.allow_rollup:
            error = jserrors.error("JSStreamRollupFailedF", err="rollup not permitted")
            return _error_answer(self.name_bytes, error)
        if rollup.lower() not in (b"sub", b"all"):
            error = jserrors.error(
                "JSStreamRollupFailedF", err=f'rollup value invalid: "{rollup.decode()}"'
            )
            return _error_answer(self.name_bytes, error)
        return None

    def has_interest(self, subject: bytes) -> bool:
        """Interest retention: does any consumer want this subject?"""
        text = subject.decode()
        return any(consumer.matches(text) for consumer in self.consumers.values())

    # -- deduplication ------------------------------------------------------------------------

    def _rebuild_msg_ids(self) -> None:
        """After a restart: the ids of messages stored within the window, newest last."""
        state = self.store.state(False)
        if not state.msgs:
            return
        last = None
        with contextlib.suppress(StoreError):
            last = self.store.load_msg(state.last_seq)
        if last is not None:
            self.last_msg_id = header_value(last.hdr, MSG_ID) or b""
        if not self.window:
            return
        cutoff = self.engine.clock() - self.window
        found: list[tuple[bytes, int, int]] = []
        seq = state.last_seq
        while seq >= state.first_seq:
            try:
                msg = self.store.load_msg(seq)
            except StoreError:
                seq -= 1
                continue
            if msg.ts < cutoff:
                break
            msg_id = header_value(msg.hdr, MSG_ID)
            if msg_id:
                found.append((msg_id, msg.seq, msg.ts))
            seq -= 1
        for msg_id, seq, ts in reversed(found):
            self.msg_ids[msg_id] = (seq, ts)

    def tick(self, now_ns: int) -> None:
        """Expire messages past max_age and msg-ids past the duplicate window."""
        ids = self.msg_ids
        if ids:
            cutoff = now_ns - self.window
            while ids:
                msg_id, (_, ts) = next(iter(ids.items()))
                if ts > cutoff:
                    break
                del ids[msg_id]
        if self.config.max_age and self._next_expiry is not None and now_ns >= self._next_expiry:
            self._next_expiry = self.store.expire(now_ns) or None
            if self._next_expiry is None:
                # Nothing left to expire now; the next stored message re-arms the check.
                self._next_expiry = now_ns + min(self.config.max_age, 1_000_000_000)


def _parse_seq(value: bytes) -> int | None:
    return int(value) if value.isdigit() else None


def _open_store(engine: StreamHost, directory: str, meta: StreamMeta) -> StreamStore:
    config = meta.config
    limits = limits_of(config)
    if config.storage == "memory":
        return MemStore(config.name, limits)
    return FileStore(
        os.path.join(directory, MSGS_DIR),
        config.name,
        limits,
        sync_always=engine.opts.sync_always,
    )
