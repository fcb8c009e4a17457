"""The storage shard's role in the mesh: messages in and out of JetStream.

Owner: the storage shard; runs on its loop and never blocks.

The storage shard takes part like a worker without clients (ARCHITECTURE.md); what
every shard does on the mesh (peers, interest, the drain loop, control verbs) is its
``MeshMember`` (shard/member.py). It advertises interest (RS+) in `$JS.API.>` and in
every stream's subjects; workers then forward matching publishes to it as RMSG frames,
which go to the `handler` (``on_message``). What JetStream sends (API replies, PubAcks,
deliveries) is routed out by the remote interest the workers advertised: one RMSG per
interested worker, and for a queue group one member shard picked by weight and named
with ``| queue``.

End of batch: after the inbound rings are drained the handler's ``end_of_batch`` runs
(the stores write what they buffered) and only then are our outbound frames committed,
so no PubAck leaves before its message reached the operating system.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

from shardbroker import const
from shardbroker.config.options import Options
from shardbroker.config.reload import decode_options_arg
from shardbroker.core import store_loop
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.mesh.snapshot import StorageSnapshot, encode_parts
from shardbroker.protocol import frames
from shardbroker.protocol.frames import RELOADED
from shardbroker.protocol.sublist import Sublist
from shardbroker.shard.member import MeshMember

log = logging.getLogger("shardbroker.jetstream")


class MessageHandler(Protocol):
    def on_message(
        self, account: bytes, subject: bytes, reply: bytes | None, hdr: bytes, data: bytes
    ) -> None: ...

    def on_acks(self, account: bytes, head: bytes, seqs: list[int]) -> None: ...

    def end_of_batch(self) -> None: ...

    def interest_appeared(self) -> None: ...

    def apply_options(self, new: Options) -> None: ...

    def jsz_snapshot(self, shard: int) -> StorageSnapshot: ...


class Interested:
    """Who wants a subject: peers with plain interest, and per queue group the
    (peer, weight) members to pick one from."""

    __slots__ = ("groups", "peers")

    def __init__(self, plain: list[Any], queue_groups: dict[bytes, list[Any]]) -> None:
        self.peers = frozenset(interest.peer for interest in plain)
        self.groups = [
            (name, [m.peer for m in members], [m.weight for m in members])
            for name, members in queue_groups.items()
        ]


class StoragePeer:
    def __init__(
        self,
        boot: ShardBoot,
        loop: asyncio.AbstractEventLoop,
        mesh: Mesh,
        handler: MessageHandler,
    ) -> None:
        self.shard_id = boot.shard_id
        self.loop = loop
        self.mesh = mesh
        self.handler = handler
        self.sublists: dict[bytes, Sublist[Any, Any]] = {}
        self.messages_in = 0
        self.messages_out = 0
        self.member = MeshMember(
            boot.shard_id, boot.generation, loop, mesh, self, sublist_for=self._sublist
        )

    def _sublist(self, account: bytes) -> Sublist[Any, Any]:
        sublist = self.sublists.get(account)
        if sublist is None:
            sublist = self.sublists[account] = Sublist(Interested, share_tails=True)
        return sublist

    # -- our interest ------------------------------------------------------------------

    def advertise(self, account: bytes, subject: bytes) -> None:
        self.member.local.add(account, subject)

    def withdraw(self, account: bytes, subject: bytes) -> None:
        self.member.local.remove(account, subject)

    # -- out ---------------------------------------------------------------------------------

    def has_interest(self, account: bytes, subject: bytes) -> bool:
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result = sublist.match(subject)
        return bool(result.peers or result.groups)

    def publish(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        hdr: bytes,
        data: bytes,
    ) -> bool:
        """Send a message to every shard with interest; False when nobody has any."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result: Interested = sublist.match(subject)
        if not result.peers and not result.groups:
            return False
        message = hdr + data if hdr else data
        send = self.mesh.send
        if not result.groups:
            frame = frames.rmsg(account, subject, reply, (), len(hdr), message)
            for peer in result.peers:
                send(peer, frame)
            self.messages_out += 1
            return True
        # One frame per shard: the plain subscribers there, plus the queue groups it
        # was picked for (a second frame would deliver to its plain subscribers twice).
        picked: dict[int, list[bytes]] = {peer: [] for peer in result.peers}
        for name, peers, weights in result.groups:
            peer = peers[0] if len(peers) == 1 else random.choices(peers, weights)[0]
            picked.setdefault(peer, []).append(name)
        for peer, queues in picked.items():
            send(peer, frames.rmsg(account, subject, reply, queues, len(hdr), message))
        self.messages_out += 1
        return True

    def reply(self, account: bytes, subject: bytes, body: bytes) -> None:
        """A message without headers or reply (a PubAck) to whoever subscribes, as
        ``publish`` sends it; the frame is built in one step when no queue group has
        interest (the common case: the publisher's inbox)."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return
        result: Interested = sublist.match(subject)
        peers = result.peers
        if result.groups or not peers:
            self.publish(account, subject, None, b"", body)
            return
        frame = b"RMSG %s %s %d\r\n%s\r\n" % (account, subject, len(body), body)
        batches = self.mesh.batches
        for peer in peers:
            batches[peer].append(frame)
        self.messages_out += 1

    def interest_for(self, account: bytes, subject: bytes, group: bytes | None) -> bool:
        """Does some shard subscribe to `subject` (in queue group `group`, if given)?"""
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result: Interested = sublist.match(subject)
        if group is None:
            return bool(result.peers)
        return any(name == group for name, _, _ in result.groups)

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
        """Send a consumer's delivery to the shards subscribed to `deliver_subject` (one
        member of `group` when set); False when nobody is. Subscribers see `subject`."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result: Interested = sublist.match(deliver_subject)
        message = hdr + data if hdr else data
        if group is None:
            if not result.peers:
                return False
            frame = frames.jmsg(account, deliver_subject, subject, reply, None, len(hdr), message)
            for peer in result.peers:
                self.mesh.send(peer, frame)
            self.messages_out += 1
            return True
        for name, peers, weights in result.groups:
            if name != group:
                continue
            # A core publish to the deliver subject: plain subscribers everywhere get it,
            # and one member of the group (the chosen shard delivers to both).
            chosen = peers[0] if len(peers) == 1 else random.choices(peers, weights)[0]
            size = len(hdr)
            for peer in result.peers | {chosen}:
                queue = group if peer == chosen else None
                self.mesh.send(
                    peer,
                    frames.jmsg(account, deliver_subject, subject, reply, queue, size, message),
                )
            self.messages_out += 1
            return True
        return False

    def deliver_run(self, account: bytes, deliver_subject: bytes, records: list[bytes]) -> bool:
        """Deliveries (frames.jrun_record) to the shards subscribed to `deliver_subject`,
        no queue group, as JRUN frames of at most one ring commit each."""
        sublist = self.sublists.get(account)
        if sublist is None:
            return False
        result: Interested = sublist.match(deliver_subject)
        if not result.peers:
            return False
        limit = self.mesh.max_commit - len(account) - len(deliver_subject) - 32
        run: list[bytes] = []
        size = 0
        out: list[bytes] = []
        for record in records:
            if run and size + len(record) > limit:
                out.append(frames.jrun(account, deliver_subject, run))
                run = []
                size = 0
            run.append(record)
            size += len(record)
        out.append(frames.jrun(account, deliver_subject, run))
        send = self.mesh.send
        for peer in result.peers:
            for frame in out:
                send(peer, frame)
        self.messages_out += len(records)
        return True

    def congested(self) -> bool:
        """Some ring out of here is full: producers of deliveries should wait."""
        return bool(self.mesh.overflowing)

    # -- in ----------------------------------------------------------------------------------

    def fast_frames(self, data: bytes) -> int:
        """The plain forwarded messages at the start of a ring piece (publishes, acks),
        handed to the handler by the storage loop (core/storeloop.py), the plain acks
        of a consumer in runs (``on_acks``); returns where the frame parser takes over."""
        handler = self.handler
        pos, msgs = store_loop(data, 0, handler.on_message, handler.on_acks)
        self.messages_in += msgs
        return pos

    def end_of_drain(self) -> None:
        """After a turn of ring frames: wake push consumers if somebody new listens,
        let the stores write what they buffered, then commit (module doc)."""
        remote = self.member.remote
        if remote is not None and remote.appeared:
            remote.appeared = False
            self.handler.interest_appeared()
        self.flush()

    def flush(self) -> None:
        """Commit what a batch or a timer produced, and retry a full ring."""
        self.handler.end_of_batch()
        if self.mesh.overflowing:
            self.mesh.retry_overflow()
        self.member.commit()

    def process_rmsg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        header_size: int,
        message: bytes,
        size_token: bytes,
    ) -> None:
        self.messages_in += 1
        if header_size:
            self.handler.on_message(
                account, subject, reply, message[:header_size], message[header_size:]
            )
        else:
            self.handler.on_message(account, subject, reply, b"", message)

    def process_rmsg_run(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None:
        self.messages_in += len(payloads)
        on_message = self.handler.on_message
        for payload in payloads:
            on_message(account, subject, reply, b"", payload)

    def process_jmsg(self, *args: object) -> None:
        """Deliveries only flow out of the storage shard."""

    def process_jrun(self, *args: object) -> None:
        """As process_jmsg."""

    # -- control verbs from the supervisor ----------------------------------------------

    def on_monz(self, request_id: int, flags: int) -> None:
        """The supervisor asks for the JetStream snapshot (/jsz)."""
        snap = self.handler.jsz_snapshot(self.shard_id)
        for frame in encode_parts(request_id, self.shard_id, snap, self.mesh.max_commit):
            self.mesh.send(const.SUPERVISOR_SHARD, frame)
        self.mesh.flush()

    def on_reload(self, seq: int, options_arg: bytes) -> None:
        """The supervisor accepted a reload: apply it and confirm (RELOADED)."""
        status = b"ok"
        try:
            self.handler.apply_options(decode_options_arg(options_arg))
        except Exception:  # a bad reload must not cost the storage shard
            log.exception("storage shard: cannot apply the reloaded configuration")
            status = b"failed"
        self.member.send_control(const.SUPERVISOR_SHARD, RELOADED, self.shard_id, seq, status)
        self.mesh.flush()
