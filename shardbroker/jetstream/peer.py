"""The storage shard's seat in the mesh: peers, interest, and messages in and out.

Owner: the storage shard; runs on its loop and never blocks.

The storage shard takes part like a worker without clients (ARCHITECTURE.md). It
advertises interest (RS+) in `$JS.API.>` and in every stream's subjects; workers then
forward matching publishes to it as RMSG frames, which go to the `handler`
(``on_message``). What JetStream sends (API replies, PubAcks, deliveries) is routed out
by the remote interest the workers advertised: one RMSG per interested worker, and for a
queue group one member shard picked by weight and named with ``| queue``.

Peers follow the same generation rules as a worker's (worker/server.py): HELLO of a newer
generation replaces what we knew, the supervisor's SDOWN drops a dead shard's interest and
its stale frames. Interest frames are acknowledged by ringing the sender once they are
applied, which is what a worker's PONG barrier waits for.

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
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.mesh.snapshot import MONZ, StorageSnapshot, encode_parts
from shardbroker.protocol import frames
from shardbroker.protocol.frames import HELLO, READY, RELOAD, RELOADED, SDOWN, STOP
from shardbroker.protocol.parser import parse_mesh
from shardbroker.protocol.sublist import Sublist

log = logging.getLogger("shardbroker.jetstream")


class MessageHandler(Protocol):
    def on_message(
        self, account: bytes, subject: bytes, reply: bytes | None, hdr: bytes, data: bytes
    ) -> None: ...

    def end_of_batch(self) -> None: ...

    def interest_appeared(self) -> None: ...

    def apply_options(self, new: Options) -> None: ...

    def jsz_snapshot(self, shard: int) -> StorageSnapshot: ...


class RemoteInterest:
    """A subscription a peer shard advertised (RS+), weighted for queue groups."""

    __slots__ = ("account", "peer", "queue", "subject", "weight")

    def __init__(
        self, peer: int, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        self.peer = peer
        self.account = account
        self.subject = subject
        self.queue = queue
        self.weight = weight


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


InterestKey = tuple[bytes, bytes, bytes | None]


class StoragePeer:
    def __init__(
        self,
        boot: ShardBoot,
        loop: asyncio.AbstractEventLoop,
        mesh: Mesh,
        handler: MessageHandler,
    ) -> None:
        self.shard_id = boot.shard_id
        self.generation = boot.generation
        self.loop = loop
        self.mesh = mesh
        self.handler = handler
        n = boot.mesh.n_shards
        self.peer_up = [False] * n
        self.peer_gen = [-1] * n
        self.remote: list[dict[InterestKey, RemoteInterest]] = [{} for _ in range(n)]
        self.sublists: dict[bytes, Sublist[Any, Any]] = {}
        # What we advertise: (account, subject) -> reference count.
        self.local_interest: dict[tuple[bytes, bytes], int] = {}
        self.ack_peers: set[int] = set()
        self.current_peer = -1
        self.stopping = asyncio.Event()
        self.messages_in = 0
        self.messages_out = 0
        # A peer advertised new interest during this batch (push consumers may resume).
        self._new_interest = False

    def _sublist(self, account: bytes) -> Sublist[Any, Any]:
        sublist = self.sublists.get(account)
        if sublist is None:
            sublist = self.sublists[account] = Sublist(Interested, share_tails=True)
        return sublist

    # -- our interest ------------------------------------------------------------------

    def advertise(self, account: bytes, subject: bytes) -> None:
        key = (account, subject)
        count = self.local_interest.get(key, 0) + 1
        self.local_interest[key] = count
        if count == 1:
            self._broadcast(frames.rs_plus(account, subject))

    def withdraw(self, account: bytes, subject: bytes) -> None:
        key = (account, subject)
        count = self.local_interest.get(key, 0) - 1
        if count > 0:
            self.local_interest[key] = count
            return
        if self.local_interest.pop(key, None) is not None:
            self._broadcast(frames.rs_minus(account, subject))

    def _broadcast(self, frame: bytes) -> None:
        up = self.peer_up
        for peer in self.mesh.peers:
            if up[peer]:
                self.mesh.send(peer, frame)

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

    def on_doorbell(self) -> None:
        mesh = self.mesh
        more = mesh.drain(self.apply_frames)
        if self._new_interest:
            self._new_interest = False
            self.handler.interest_appeared()
        self.handler.end_of_batch()
        if mesh.overflowing:
            mesh.retry_overflow()
        mesh.flush()
        if self.ack_peers:
            for peer in self.ack_peers:
                mesh.doorbells[peer].ring()
            self.ack_peers.clear()
        if more:
            self.loop.call_soon(self.on_doorbell)

    def flush(self) -> None:
        """Commit what a timer (not the doorbell) produced, and retry a full ring."""
        self.handler.end_of_batch()
        if self.mesh.overflowing:
            self.mesh.retry_overflow()
        self.mesh.flush()

    def apply_frames(self, peer: int, data: bytes) -> None:
        self.current_peer = peer
        parse_mesh(data, self)

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

    def process_rs_plus(
        self, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        peer = self.current_peer
        table = self.remote[peer]
        key = (account, subject, queue)
        sublist = self._sublist(account)
        old = table.get(key)
        if old is not None:
            if queue is None or old.weight == weight:
                self.ack_peers.add(peer)
                return
            sublist.remove(old)
        interest = RemoteInterest(peer, account, subject, queue, weight)
        table[key] = interest
        sublist.insert(interest)
        self.ack_peers.add(peer)
        self._new_interest = True

    def process_rs_minus(self, account: bytes, subject: bytes, queue: bytes | None) -> None:
        peer = self.current_peer
        interest = self.remote[peer].pop((account, subject, queue), None)
        if interest is not None:
            self._sublist(account).remove(interest)
        self.ack_peers.add(peer)

    def process_control(self, verb: bytes, args: list[bytes]) -> None:
        if verb == HELLO:
            self.on_hello(int(args[0]), int(args[1]))
        elif verb == SDOWN:
            self.on_shard_down(int(args[0]), int(args[1]), int(args[2]))
        elif verb == STOP:
            self.stopping.set()
        elif verb == RELOAD:
            self.on_reload(int(args[0]), args[1])
        elif verb == MONZ:
            self.answer_monz(args)
        else:
            log.warning("unknown control frame %r from shard %d", verb, self.current_peer)

    def answer_monz(self, args: list[bytes]) -> None:
        """MONZ <request id> <flags> from the supervisor: the JetStream snapshot."""
        try:
            request_id = int(args[0])
        except (IndexError, ValueError):
            return
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
        self.mesh.send(const.SUPERVISOR_SHARD, frames.control(RELOADED, self.shard_id, seq, status))
        self.mesh.flush()

    # -- peers -------------------------------------------------------------------------------

    def say_hello(self, peers: list[int]) -> None:
        frame = frames.control(HELLO, self.shard_id, self.generation)
        for peer in peers:
            self.mesh.send(peer, frame)
        self.mesh.flush()

    def on_hello(self, peer: int, generation: int) -> None:
        if generation <= self.peer_gen[peer]:
            return
        if self.peer_gen[peer] >= 0:
            self.forget_peer(peer)
            self.mesh.forget_peer_output(peer)
        self.peer_gen[peer] = generation
        self.peer_up[peer] = True
        send = self.mesh.send
        send(peer, frames.control(HELLO, self.shard_id, self.generation))
        for account, subject in self.local_interest:
            send(peer, frames.rs_plus(account, subject))
        self.ack_peers.add(peer)
        log.debug("shard %d (generation %d) is up", peer, generation)

    def on_shard_down(self, peer: int, generation: int, position: int) -> None:
        if generation < self.peer_gen[peer]:
            return
        self.peer_gen[peer] = generation
        self.peer_up[peer] = False
        self.forget_peer(peer)
        self.mesh.forget_peer_output(peer)
        self.mesh.discard_inbound(peer, position)
        log.debug("shard %d (generation %d) is down", peer, generation)

    def forget_peer(self, peer: int) -> None:
        table = self.remote[peer]
        for interest in table.values():
            self._sublist(interest.account).remove(interest)
        table.clear()

    def report_ready(self) -> None:
        self.mesh.send(
            const.SUPERVISOR_SHARD, frames.control(READY, self.shard_id, self.generation)
        )
        self.mesh.flush()
