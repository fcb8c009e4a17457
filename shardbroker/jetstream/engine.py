"""JetStream in the storage shard: the streams of each account and where messages go.

Owner: the storage shard; runs on its loop and never blocks for long (store writes go
to the page cache; fsync happens on the sync timer, or per batch with sync_always).

A message the mesh hands over (``on_message``) is either an API request (`$JS.API.>`,
answered by api.py) or a publish that one stream captures (stream subjects never
overlap, so at most one). ``end_of_batch`` writes what the stores buffered; the peer
commits our outbound frames (the PubAcks) only after it, which is the durability
policy: a PubAck leaves only once its record reached the operating system.

Accounts (`jetstream_accounts`): JetStream lives in `$G` when no account is configured,
else in each account whose `jetstream` enables it, with that account's limits. The API
is advertised in every account (the others get 10039 answers); acks and flow control
only where JetStream is. Only those accounts' streams are opened from disk.

On disk (layout as nats-server's, so an operator finds their way around):
    <store_dir>/jetstream/<account>/streams/<stream>/meta.inf   config + created (JSON)
    <store_dir>/jetstream/<account>/streams/<stream>/meta.sum   checksum of meta.inf
    <store_dir>/jetstream/<account>/streams/<stream>/msgs/      the file store's blocks
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shardbroker import const
from shardbroker.config.options import AccountJetStream, Options, system_account_name
from shardbroker.config.reload import diff, kinds
from shardbroker.jetstream import api, jsonencode, schema
from shardbroker.jetstream.account import Account, Capture, jetstream_accounts
from shardbroker.jetstream.store import file_store_msg_size, mem_store_msg_size
from shardbroker.jetstream.stream import Stream, StreamMeta, load_meta
from shardbroker.log import setup as setup_logging
from shardbroker.mesh.snapshot import AccountJsz, StorageSnapshot, StreamJsz

if TYPE_CHECKING:
    from shardbroker.jetstream.consumer import Consumer
    from shardbroker.jetstream.peer import StoragePeer

log = logging.getLogger("shardbroker.jetstream")

# Publishes stored before the stores write and the PubAcks leave, even when more wait
# in the rings: the worker forwards earlier acks while we store the rest.
ACK_CHUNK = 64
API_SUBJECT = b"$JS.API.>"
ACK_SUBJECT = b"$JS.ACK.>"
ACK_PREFIX = b"$JS.ACK."
ACK_TARGETS_MAX = 1024  # remembered ack-subject heads (one per consumer in use)
FC_SUBJECT = b"$JS.FC.>"
FC_PREFIX = b"$JS.FC."


class JetStream:
    def __init__(
        self, opts: Options, root: str, server_id: str, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.opts = opts
        # Wall-clock ns for every timer and timestamp of the streams and consumers.
        self.clock = clock
        self.root = root
        self.server_id = server_id
        self.server_name = opts.server_name or server_id
        self.domain = opts.jetstream_domain
        # With a domain, clients may address the API as $JS.<domain>.API.> (nats-server
        # maps it onto $JS.API.>; nats.py's jetstream(domain=...) does so).
        self.domain_api_prefix = b"$JS.%s.API." % self.domain.encode() if self.domain else b""
        self.peer: StoragePeer | None = None
        # Each account the API answers in, with its JetStream limits (None: not enabled).
        self.settings = jetstream_accounts(opts)
        self.system_account = system_account_name(opts).encode()
        self.accounts: dict[bytes, Account] = {}
        # Streams whose store holds records not yet written to the OS.
        self.dirty: set[Stream] = set()
        # Consumers that may have something to deliver.
        self.ready: set[Consumer] = set()
        self._pass_scheduled = False
        self.unflushed = 0
        # Ack subject head (account, `$JS.ACK.<stream>.<consumer>`) -> its consumer.
        self._ack_targets: dict[tuple[bytes, bytes], Consumer] = {}
        self._next_sync = time.monotonic() + opts.sync_interval
        self._next_expire = 0.0
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.api = api.Api(self)
        self._load()

    # -- accounts and streams -----------------------------------------------------------

    def account(self, name: bytes) -> Account:
        account = self.accounts.get(name)
        if account is None:
            directory = os.path.join(self.root, name.decode())
            account = self.accounts[name] = Account(
                name, directory, self.settings.get(name), name == self.system_account
            )
        return account

    def enabled(self, name: bytes) -> bool:
        """Is JetStream enabled in this account?"""
        return self.settings.get(name) is not None

    def _load(self) -> None:
        """Open every stream found on disk in the accounts with JetStream (each store
        runs its recovery pass); another account's directory stays as it is."""
        for account_name in sorted(os.listdir(self.root)):
            if self.enabled(account_name.encode()):
                self._load_account(account_name)

    def _load_account(self, account_name: str) -> None:
        streams_dir = os.path.join(self.root, account_name, "streams")
        if not os.path.isdir(streams_dir):
            return
        account = self.account(account_name.encode())
        for stream_name in sorted(os.listdir(streams_dir)):
            directory = os.path.join(streams_dir, stream_name)
            try:
                meta = load_meta(directory)
            except (OSError, ValueError) as exc:
                log.error("skipping stream directory %s: %s", directory, exc)
                continue
            stream = Stream.open(self, account.name, directory, meta)
            self._register(account, stream)
            log.info(
                "Restored %d messages for stream '%s > %s'",
                stream.store.state(False).msgs,
                account_name,
                stream.name,
            )

    def attach(self, peer: StoragePeer) -> None:
        """Start advertising: the API in every account, acks and flow control in those
        with JetStream, and each stream's subjects."""
        self.peer = peer
        for name, limits in self.settings.items():
            self._advertise_api(name, limits is not None, True)
        for account in self.accounts.values():
            for stream in account.streams.values():
                for subject in stream.capture_subjects():
                    peer.advertise(account.name, subject)

    def _advertise_api(self, name: bytes, enabled: bool, on: bool) -> None:
        """Advertise (or withdraw) the API in an account, and acks and flow control
        where JetStream is enabled."""
        peer = self.peer
        if peer is None:
            return
        subjects = [API_SUBJECT]
        if self.domain_api_prefix:
            subjects.append(self.domain_api_prefix + b">")
        if enabled:
            subjects += [ACK_SUBJECT, FC_SUBJECT]
        for subject in subjects:
            if on:
                peer.advertise(name, subject)
            else:
                peer.withdraw(name, subject)

    def _apply_settings(self, settings: dict[bytes, AccountJetStream | None]) -> None:
        """A reload changed the accounts: new limits apply at once; an account that
        gains JetStream opens its streams from disk, one that loses it closes them
        (its files stay, as in nats-server); the API follows the accounts."""
        old = self.settings
        self.settings = settings
        for name in sorted(old.keys() | settings.keys()):
            before, after = old.get(name), settings.get(name)
            account = self.accounts.get(name)
            if account is not None:
                account.limits = after
            if name in old and (name not in settings or (before is None) != (after is None)):
                self._advertise_api(name, before is not None, False)
                if before is not None:
                    self._close_account(name)
            if name in settings and (name not in old or (before is None) != (after is None)):
                self._advertise_api(name, after is not None, True)
                if after is not None:
                    self._load_account(name.decode())
        self._ack_targets.clear()

    def _close_account(self, name: bytes) -> None:
        account = self.accounts.get(name)
        if account is None:
            return
        for stream in list(account.streams.values()):
            stream.save_consumers(force=True)
            for consumer in stream.consumers.values():
                consumer.stop()
                self.ready.discard(consumer)
            self._unregister(account, stream)
            try:
                stream.close()
            except OSError as exc:
                log.error("stream '%s': close failed: %s", stream.name, exc)

    def _register(self, account: Account, stream: Stream) -> None:
        account.streams[stream.name] = stream
        entries = [Capture(subject, stream) for subject in stream.capture_subjects()]
        account.capture_entries[stream.name] = entries
        for entry in entries:
            account.captures.insert(entry)
            if self.peer is not None:
                self.peer.advertise(account.name, entry.subject)

    def _unregister(self, account: Account, stream: Stream) -> None:
        account.streams.pop(stream.name, None)
        self.dirty.discard(stream)
        for entry in account.capture_entries.pop(stream.name, []):
            account.captures.remove(entry)
            if self.peer is not None:
                self.peer.withdraw(account.name, entry.subject)

    def add_stream(self, account: Account, config: schema.StreamConfig) -> Stream:
        directory = os.path.join(account.streams_dir(), config.name)
        meta = StreamMeta(config=config, created=self.clock())
        stream = Stream.create(self, account.name, directory, meta)
        self._register(account, stream)
        return stream

    def update_stream(self, account: Account, stream: Stream, config: schema.StreamConfig) -> None:
        self._unregister(account, stream)
        try:
            stream.update(config)
        finally:
            self._register(account, stream)

    def delete_stream(self, account: Account, stream: Stream) -> None:
        self._unregister(account, stream)
        stream.delete()

    def storage_used(self) -> tuple[int, int]:
        """Bytes held by (memory, file) streams over every account."""
        memory = storage = 0
        for account in self.accounts.values():
            for stream in account.streams.values():
                used = stream.store.state(False).bytes
                if stream.config.storage == "memory":
                    memory += used
                else:
                    storage += used
        return memory, storage

    def jsz_snapshot(self, shard: int) -> StorageSnapshot:
        """Every account's streams and consumers as their INFO answers show them, for
        the details of /jsz (asked by the supervisor, never on a timer)."""
        accounts: list[AccountJsz] = []
        for account in sorted(self.accounts.values(), key=lambda a: a.name):
            memory = storage = 0
            streams: list[StreamJsz] = []
            for name in sorted(account.streams):
                stream = account.streams[name]
                info = jsonencode.to_builtins(self.api.info_of(stream))  # as the API shows it
                if stream.config.storage == "memory":
                    memory += info["state"]["bytes"]
                else:
                    storage += info["state"]["bytes"]
                consumers = [
                    jsonencode.to_builtins(self.api.consumer_info_of(stream.consumers[c]))
                    for c in sorted(stream.consumers)
                ]
                streams.append(
                    StreamJsz(name, info["created"], info["config"], info["state"], consumers)
                )
            accounts.append(
                AccountJsz(
                    account.name.decode(errors="replace"), memory, storage,
                    account.api_total, account.api_errors, streams,
                )
            )  # fmt: skip
        return StorageSnapshot(shard, self.clock(), accounts)

    def monitor_figures(self) -> dict[str, int]:
        """Totals for /jsz, /varz and /metrics, copied to the shard slot by the tick."""
        streams = consumers = messages = size = memory = storage = api_total = api_errors = 0
        for account in self.accounts.values():
            api_total += account.api_total
            api_errors += account.api_errors
            for stream in account.streams.values():
                state = stream.store.state(False)
                streams += 1
                consumers += len(stream.consumers)
                messages += state.msgs
                size += state.bytes
                if stream.config.storage == "memory":
                    memory += state.bytes
                else:
                    storage += state.bytes
        return {
            "js_streams": streams,
            "js_consumers": consumers,
            "js_messages": messages,
            "js_bytes": size,
            "js_memory": memory,
            "js_storage": storage,
            "js_api_total": api_total,
            "js_api_errors": api_errors,
            "js_accounts": sum(1 for a in self.accounts.values() if a.streams or a.api_total),
        }

    def file_budget_exceeded(self, stream: Stream, size: int) -> bool:
        """Would `size` more bytes exceed max_memory_store / max_file_store? Only
        computed when such a limit is set (the sum runs over every stream)."""
        memory_stream = stream.config.storage == "memory"
        limit = self.opts.max_memory_store if memory_stream else self.opts.max_file_store
        if limit < 0:
            return False
        memory, storage = self.storage_used()
        return (memory if memory_stream else storage) + size > limit

    def account_budget_exceeded(
        self, stream: Stream, subject: bytes, hdr: bytes, data: bytes
    ) -> bool:
        """Would this message take the stream's account past its max_memory / max_store
        (nats wouldExceedLimits: the bytes the account's streams hold, plus the
        message's size as the store counts it)? Summed only when such a limit is set."""
        limits = self.settings.get(stream.account)
        if limits is None:
            return False
        memory_stream = stream.config.storage == "memory"
        limit = limits.max_memory if memory_stream else limits.max_store
        if limit < 0:
            return False
        size = (mem_store_msg_size if memory_stream else file_store_msg_size)(
            len(subject), len(hdr), len(data)
        )
        return self.account(stream.account).usage(memory_stream) + size > limit

    # -- messages ---------------------------------------------------------------------------

    def on_message(
        self, account: bytes, subject: bytes, reply: bytes | None, hdr: bytes, data: bytes
    ) -> None:
        if subject.startswith(const.JS_API_PREFIX):
            self.api.handle(self.account(account), subject, reply, hdr, data)
            return
        domain_prefix = self.domain_api_prefix
        if domain_prefix and subject.startswith(domain_prefix):
            subject = const.JS_API_PREFIX + subject[len(domain_prefix) :]
            self.api.handle(self.account(account), subject, reply, hdr, data)
            return
        if subject.startswith(ACK_PREFIX):
            self._ack(account, subject, reply, data)
            return
        if subject.startswith(FC_PREFIX):
            consumer = self._consumer_of(account, subject.split(b".")[2:4])
            if consumer is not None:
                consumer.flow_control_reply(subject)
            return
        state = self.accounts.get(account)
        if state is None:
            return
        peer = self.peer
        for stream in state.captures.match(subject):
            answer = stream.process_publish(subject, reply, hdr, data)
            if answer is not None and reply is not None and peer is not None:
                if answer[0]:
                    peer.publish(account, reply, None, answer[0], answer[1])
                else:
                    peer.reply(account, reply, answer[1])
            self.unflushed += 1
            if self.unflushed >= ACK_CHUNK and peer is not None:
                peer.flush()

    def _consumer_of(self, account: bytes, names: list[bytes]) -> Consumer | None:
        state = self.accounts.get(account)
        if state is None or len(names) != 2:
            return None
        stream = state.streams.get(names[0].decode(errors="replace"))
        if stream is None:
            return None
        return stream.consumers.get(names[1].decode(errors="replace"))

    def _ack(self, account: bytes, subject: bytes, reply: bytes | None, body: bytes) -> None:
        """`$JS.ACK.<stream>.<consumer>.<n>.<sseq>.<dseq>.<ts>.<pending>` (v1), or the v2
        form with domain and account hash in front; anything else is ignored."""
        # Fast path: the consumer of a v1 ack subject, remembered by the subject's head
        # `$JS.ACK.<stream>.<consumer>` (every ack of a consumer shares it).
        parts = subject.rsplit(b".", 5)  # head, n, sseq, dseq, ts, pending
        head = parts[0]
        consumer = self._ack_targets.get((account, head))
        if consumer is not None and not consumer.deleted:
            sseq, dseq = parts[2], parts[3]
            if sseq.isdigit() and dseq.isdigit():
                consumer.process_ack(int(sseq), int(dseq), body, reply, self.clock())
            return
        tokens = subject.split(b".")
        if len(tokens) == 9:
            names, numbers = tokens[2:4], tokens[4:9]
        elif len(tokens) >= 11:
            names, numbers = tokens[4:6], tokens[6:11]
        else:
            return
        consumer = self._consumer_of(account, names)
        if consumer is None or not all(n.isdigit() for n in numbers[1:3]):
            return
        if len(tokens) == 9:
            targets = self._ack_targets
            if len(targets) >= ACK_TARGETS_MAX:
                targets.clear()
            targets[(account, head)] = consumer
        consumer.process_ack(int(numbers[1]), int(numbers[2]), body, reply, self.clock())

    def on_acks(self, account: bytes, head: bytes, seqs: list[int]) -> None:
        """A run of plain acks (no reply, empty or ``+ACK``) of the consumer whose v1 ack
        subjects start with `head`, ``$JS.ACK.<stream>.<consumer>``, as
        [sseq, dseq, ...] (core/storeloop.py): what ``_ack`` does with each, in order."""
        key = (account, head)
        consumer = self._ack_targets.get(key)
        if consumer is None:
            consumer = self._consumer_of(account, head.split(b".")[2:4])
            if consumer is None:
                return
            targets = self._ack_targets
            if len(targets) >= ACK_TARGETS_MAX:
                targets.clear()
            targets[key] = consumer
        elif consumer.deleted:
            return
        consumer.ack_run(seqs, self.clock())

    def send(self, account: bytes, subject: bytes, body: bytes, hdr: bytes = b"") -> None:
        """Publish a message from JetStream (a reply, an ack) to whoever subscribes."""
        if self.peer is not None:
            self.peer.publish(account, subject, None, hdr, body)

    def publish(
        self, account: bytes, subject: bytes, reply: bytes | None, hdr: bytes, data: bytes
    ) -> None:
        if self.peer is not None:
            self.peer.publish(account, subject, reply, hdr, data)

    def deliver(
        self,
        account: bytes,
        deliver_subject: bytes,
        subject: bytes,
        reply: bytes,
        group: bytes | None,
        hdr: bytes,
        data: bytes,
    ) -> bool:
        if self.peer is None:
            return False
        return self.peer.deliver(account, deliver_subject, subject, reply, group, hdr, data)

    def deliver_run(self, account: bytes, deliver_subject: bytes, records: list[bytes]) -> bool:
        """Deliveries without a queue group, in order (see frames.jrun_record)."""
        if self.peer is None:
            return False
        return self.peer.deliver_run(account, deliver_subject, records)

    def interest_for(self, account: bytes, subject: bytes, group: bytes | None) -> bool:
        return self.peer is not None and self.peer.interest_for(account, subject, group)

    def congested(self) -> bool:
        return self.peer is not None and self.peer.congested()

    def interest_appeared(self) -> None:
        """New interest somewhere: push consumers without a subscriber may deliver now."""
        for account in self.accounts.values():
            for stream in account.streams.values():
                for consumer in stream.consumers.values():
                    if not consumer.is_pull and not consumer.active:
                        self.ready.add(consumer)

    def end_of_batch(self) -> None:
        self.unflushed = 0
        if self.dirty:
            for stream in self.dirty:
                stream.flush()
            self.dirty.clear()
        if self.ready:
            self._run_deliveries()
        now = self.clock()
        for account in self.accounts.values():
            for stream in account.streams.values():
                if stream.consumers:
                    stream.save_consumers(now)

    def _run_deliveries(self) -> None:
        now = self.clock()
        ready = self.ready
        self.ready = set()
        more = False
        for consumer in ready:
            if consumer.deliver(now):
                self.ready.add(consumer)
                more = True
        if more and not self._pass_scheduled and self.peer is not None:
            self._pass_scheduled = True
            self.peer.loop.call_soon(self._another_pass)

    def call_later(self, delay: float, callback: Any) -> Any:
        assert self.peer is not None
        return self.peer.loop.call_later(delay, callback)

    def kick(self, consumer: Consumer) -> None:
        """Let a consumer deliver now (from a timer, outside a batch)."""
        self.ready.add(consumer)
        if self.peer is not None:
            self.peer.flush()

    def _another_pass(self) -> None:
        self._pass_scheduled = False
        if self.peer is not None:
            self.peer.flush()

    # -- housekeeping -----------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        wall = self.clock()
        for account in self.accounts.values():
            for stream in list(account.streams.values()):
                stream.tick(wall)
                if stream.consumers:
                    stream.tick_consumers(wall)
        if now >= self._next_sync:
            self._next_sync = now + self.opts.sync_interval
            self.sync()

    def apply_options(self, new: Options) -> None:
        """A reload the supervisor accepted: logging, and JetStream budgets (which only
        ever grow, so no stored data is over a limit afterwards)."""
        changed = kinds(diff(self.opts, new))
        self.opts = new
        if "logging" in changed:
            setup_logging(new.log_file, new.debug, new.trace, new.logtime)
        settings = jetstream_accounts(new)
        if settings != self.settings:
            self._apply_settings(settings)

    def sync(self) -> None:
        for account in self.accounts.values():
            for stream in account.streams.values():
                try:
                    stream.store.sync()
                except OSError as exc:
                    log.error("stream '%s': sync failed: %s", stream.name, exc)

    def close(self) -> None:
        self.end_of_batch()
        for account in self.accounts.values():
            for stream in account.streams.values():
                stream.save_consumers(force=True)
        for account in self.accounts.values():
            for stream in account.streams.values():
                try:
                    stream.close()
                except OSError as exc:
                    log.error("stream '%s': close failed: %s", stream.name, exc)
