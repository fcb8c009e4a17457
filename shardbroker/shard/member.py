"""A mesh member: what every shard process does on the mesh, whatever its role.

Owner: one shard process (a worker, the storage shard, the supervisor), which composes a
``MeshMember`` with its *role*: the object that handles messages and keeps the state
that is only its own. Runs on the process's loop and never blocks.

Drain loop. The doorbell's reader calls ``on_doorbell``: it applies inbound frames in
turns of at most ``DRAIN_BUDGET`` bytes (whole ring commits, mesh.py), lets the role end
the batch (``end_of_drain``: write to clients, commit ring batches), and if the rings
still hold frames it comes back with ``call_soon`` instead of draining on. So however
far behind a shard is, every turn of its loop is short, and its sockets, timers and
tick are served between turns. The doorbell is cleared before a turn reads (mesh.py,
doorbell.py), so no wake-up is lost: a frame committed during a turn either is read in
it or rings the doorbell again, and a turn cut short by the budget schedules the next.

Frames. ``parse_mesh`` is handed the member: frames carrying messages go straight to
the role's ``process_rmsg``, ``process_rmsg_run``, ``process_jmsg``, ``process_jrun``
(and ``process_rmsg_block`` and ``process_qmsg`` if it has them; a QMSG only ever goes
to a shard with queue subscriptions, a worker), bound once here; RS+/RS- update
``remote`` (PeerInterest) and are acknowledged; control verbs are dispatched to the
role's ``on_<verb>`` methods with their arguments read as ``CONTROL_ARGS`` says. A verb
the role has no method for is logged once per verb and dropped. A role with a
``fast_frames(data) -> position`` (the worker: core/meshloop.py) takes the plain
forwarded messages at the start of a piece first; ``parse_mesh`` takes the rest.

Peers. A peer is up from its HELLO until the supervisor's SDOWN for that generation.
HELLO carries the sender's generation, so a restarted peer's HELLO and the SDOWN of its
previous life may arrive in either order: a HELLO of a newer generation replaces
everything known of the peer; an SDOWN older than what we know is ignored. A HELLO is
answered with our own HELLO and all of our interest (RS+ is idempotent, so an answer
crossing the peer's own HELLO does no harm). The role hears of it through the optional
``peer_joined(peer)`` / ``peer_left(peer)``.

Acknowledgements and the PONG barrier. A peer's RS+/RS- is applied before the ring's
read counter moves past it; we then ring the sender's doorbell (``commit``) so that a
PONG it holds is released promptly. ``barrier_marks`` records, per peer that hears our
interest (every up peer but the supervisor, which keeps none), where what we have sent
it so far ends; ``barrier_passed`` tells whether every peer that is still the same
generation applied it. Both are O(peers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from shardbroker import const
from shardbroker.mesh.mesh import Mesh
from shardbroker.mesh.snapshot import MONZ
from shardbroker.protocol import frames
from shardbroker.protocol.frames import (
    ATRIM,
    HELLO,
    LDM,
    READY,
    REBALANCE,
    RELOAD,
    RELOADED,
    SDOWN,
    STOP,
    TRIM,
    TRIMMED,
)
from shardbroker.protocol.parser import parse_mesh
from shardbroker.shard.interest import LocalInterest, PeerInterest

log = logging.getLogger("shardbroker.shard")

# Bytes of inbound frames applied per turn of the loop: about one socket read's worth,
# a few milliseconds of work, so the loop's tick keeps its ~100 ms rhythm under load.
DRAIN_BUDGET = 256 * 1024


def _token(value: bytes) -> bytes:
    return value


def _no_queue_members(*args: Any) -> None:
    """A QMSG for a shard that keeps no queue subscriptions: nobody to give it to."""


# How each control verb's arguments are read (frames.control writes them as tokens),
# and so the signature of the role's on_<verb> method.
CONTROL_ARGS: dict[bytes, tuple[Callable[[bytes], Any], ...]] = {
    HELLO: (int, int),  # shard id, generation
    SDOWN: (int, int, int),  # shard id, generation, end of its ring to us
    READY: (int, int),  # shard id, generation
    STOP: (),
    LDM: (),
    REBALANCE: (int,),  # clients to shed
    RELOAD: (int, _token),  # reload sequence, encoded options
    RELOADED: (int, int, _token),  # shard id, reload sequence, b"ok" | b"failed"
    TRIM: (int,),  # clients to close
    TRIMMED: (int, int),  # shard id, clients closed
    ATRIM: (_token, int),  # account, its clients to close
    MONZ: (int, int),  # request id, flags
}


class ShardRole(Protocol):
    """What a process brings to its membership (optional hooks: see the module doc)."""

    def process_rmsg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        header_size: int,
        message: bytes,
        size_token: bytes,
    ) -> None: ...

    def process_rmsg_run(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None: ...

    def process_jmsg(self, *args: Any) -> None: ...

    def process_jrun(self, *args: Any) -> None: ...

    def end_of_drain(self) -> None:
        """Inbound frames were applied: write what they produced, commit (``commit``)."""


class MeshMember:
    """This process's seat in the mesh (module doc)."""

    __slots__ = (
        "_fast_frames",
        "_handlers",
        "_peer_joined",
        "_peer_left",
        "_unknown_verbs",
        "ack_peers",
        "current_peer",
        "drain_budget",
        "generation",
        "interest_peers",
        "local",
        "loop",
        "mesh",
        "peer_gen",
        "peer_up",
        "process_jmsg",
        "process_jrun",
        "process_qmsg",
        "process_rmsg",
        "process_rmsg_block",
        "process_rmsg_run",
        "remote",
        "role",
        "shard_id",
        "stopping",
    )

    def __init__(
        self,
        shard_id: int,
        generation: int,
        loop: asyncio.AbstractEventLoop,
        mesh: Mesh,
        role: ShardRole,
        sublist_for: Callable[[bytes], Any] | None = None,
    ) -> None:
        self.shard_id = shard_id
        self.generation = generation
        self.loop = loop
        self.mesh = mesh
        self.role = role
        n = mesh.spec.n_shards
        self.peer_up = [False] * n
        self.peer_gen = [-1] * n
        # The peers that are up and hear our interest, in shard order (kept with
        # peer_up). The supervisor is not among them: it keeps no interest (it answers
        # $SYS requests by sending to every worker), so RS+/RS- would only cost it.
        self.interest_peers: list[int] = []
        # Peers whose interest frames we applied in this batch: rung by commit().
        self.ack_peers: set[int] = set()
        self.current_peer = -1
        self.stopping = asyncio.Event()
        self.local = LocalInterest(self.broadcast)
        # Without sublists (the supervisor) peers' interest is acknowledged, not kept.
        self.remote = PeerInterest(n, sublist_for) if sublist_for is not None else None
        # Bytes a turn of on_doorbell may apply; a role may lower it or hold the rings.
        self.drain_budget: Callable[[], int | None] = lambda: DRAIN_BUDGET
        self.process_rmsg = role.process_rmsg
        self.process_rmsg_run = role.process_rmsg_run
        self.process_jmsg = role.process_jmsg
        self.process_jrun = role.process_jrun
        block = getattr(role, "process_rmsg_block", None)
        if block is not None:
            self.process_rmsg_block = block
        self.process_qmsg = getattr(role, "process_qmsg", _no_queue_members)
        self._handlers: dict[bytes, Callable[..., None]] = {
            HELLO: self.on_hello,
            SDOWN: self.on_sdown,
            STOP: self.stopping.set,
        }
        for verb in CONTROL_ARGS:
            method = getattr(role, "on_" + verb.decode().lower(), None)
            if method is not None:
                self._handlers[verb] = method
        self._fast_frames: Callable[[bytes], int] | None = getattr(role, "fast_frames", None)
        self._peer_joined: Callable[[int], None] | None = getattr(role, "peer_joined", None)
        self._peer_left: Callable[[int], None] | None = getattr(role, "peer_left", None)
        self._unknown_verbs: set[bytes] = set()

    # -- the drain loop ----------------------------------------------------------------

    def on_doorbell(self) -> None:
        """Our doorbell rang (or the last turn left frames behind): one bounded turn."""
        budget = self.drain_budget()
        if budget is None:
            # The role holds the rings for now (and will call us again): only clear
            # the doorbell, so the loop does not spin on it.
            self.mesh.doorbell.drain()
            return
        more = self.mesh.drain(self.apply_frames, max_bytes=budget)
        self.role.end_of_drain()
        if more:
            self.loop.call_soon(self.on_doorbell)

    def apply_frames(self, peer: int, data: bytes) -> None:
        self.current_peer = peer
        fast = self._fast_frames
        if fast is not None and data.startswith(b"RMSG "):
            pos = fast(data)
            if pos:
                if pos == len(data):
                    return
                data = data[pos:]
        parse_mesh(data, self)

    def commit(self) -> bool:
        """End of a batch: commit the outbound frames, ring the peers whose interest we
        applied. False when a ring is full (frames wait in its overflow queue)."""
        committed = self.mesh.flush()
        if self.ack_peers:
            doorbells = self.mesh.doorbells
            for peer in self.ack_peers:
                doorbells[peer].ring()
            self.ack_peers.clear()
        return committed

    # -- interest ------------------------------------------------------------------------

    def broadcast(self, frame: bytes) -> None:
        """Send a frame (interest) to every peer that is up, but the supervisor."""
        batches = self.mesh.batches
        for peer in self.interest_peers:
            batches[peer].append(frame)

    def process_rs_plus(
        self, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        peer = self.current_peer
        if self.remote is not None:
            self.remote.plus(peer, account, subject, queue, weight)
        self.ack_peers.add(peer)

    def process_rs_minus(self, account: bytes, subject: bytes, queue: bytes | None) -> None:
        peer = self.current_peer
        if self.remote is not None:
            self.remote.minus(peer, account, subject, queue)
        self.ack_peers.add(peer)

    def barrier_marks(self) -> dict[int, tuple[int, int]]:
        """Per peer that hears our interest: (its generation, where what we sent it so
        far ends)."""
        logical_end = self.mesh.logical_end
        gen = self.peer_gen
        return {peer: (gen[peer], logical_end(peer)) for peer in self.interest_peers}

    def barrier_passed(self, marks: dict[int, tuple[int, int]]) -> bool:
        """Has every peer applied what ``barrier_marks`` recorded? A peer that went
        down or restarted since has nothing left to apply."""
        up = self.peer_up
        gen = self.peer_gen
        applied = self.mesh.applied
        for peer, (peer_gen, position) in marks.items():
            if up[peer] and gen[peer] == peer_gen and not applied(peer, position):
                return False
        return True

    # -- control verbs -------------------------------------------------------------------

    def process_control(self, verb: bytes, args: list[bytes]) -> None:
        handler = self._handlers.get(verb)
        if handler is None:
            if verb not in self._unknown_verbs:
                self._unknown_verbs.add(verb)
                log.warning("unknown control frame %r from shard %d", verb, self.current_peer)
            return
        readers = CONTROL_ARGS.get(verb, ())
        try:
            values = [read(arg) for read, arg in zip(readers, args, strict=True)]
        except ValueError:
            log.warning(
                "malformed control frame %r %r from shard %d", verb, args, self.current_peer
            )
            return
        handler(*values)

    def send_control(self, peer: int, verb: bytes, *args: bytes | int) -> None:
        self.mesh.send(peer, frames.control(verb, *args))

    # -- peers ---------------------------------------------------------------------------

    def say_hello(self, peers: list[int]) -> None:
        """Greet the peers that are alive as we start; each answers with its HELLO."""
        frame = frames.control(HELLO, self.shard_id, self.generation)
        for peer in peers:
            self.mesh.send(peer, frame)
        self.mesh.flush()

    def heard_from(self, peer: int) -> bool:
        """Has this peer said HELLO (or been announced down) since we started?"""
        return self.peer_up[peer] or self.peer_gen[peer] >= 0

    def on_hello(self, peer: int, generation: int) -> None:
        if generation <= self.peer_gen[peer]:
            return
        if self.peer_gen[peer] >= 0:
            self._forget(peer)
        self._set_up(peer, True)
        self.peer_gen[peer] = generation
        send = self.mesh.send
        send(peer, frames.control(HELLO, self.shard_id, self.generation))
        if peer != const.SUPERVISOR_SHARD:
            for frame in self.local.frames():
                send(peer, frame)
        self.ack_peers.add(peer)
        log.debug("shard %d (generation %d) is up", peer, generation)
        if self._peer_joined is not None:
            self._peer_joined(peer)

    def on_sdown(self, peer: int, generation: int, position: int) -> None:
        """The supervisor saw this generation of the peer die; its ring to us ends at
        ``position`` (what lies before is stale)."""
        self.peer_down(peer, generation, position)

    def peer_down(self, peer: int, generation: int, position: int) -> None:
        if generation < self.peer_gen[peer]:
            return
        self.peer_gen[peer] = generation
        self._set_up(peer, False)
        self._forget(peer)
        self.mesh.discard_inbound(peer, position)
        log.debug("shard %d (generation %d) is down", peer, generation)
        if self._peer_left is not None:
            self._peer_left(peer)

    def _set_up(self, peer: int, up: bool) -> None:
        self.peer_up[peer] = up
        supervisor = const.SUPERVISOR_SHARD
        self.interest_peers = [p for p in self.mesh.peers if self.peer_up[p] and p != supervisor]

    def _forget(self, peer: int) -> None:
        if self.remote is not None:
            self.remote.forget(peer)
        self.mesh.forget_peer_output(peer)

    def report_ready(self) -> None:
        """Tell the supervisor this generation of the shard is serving."""
        self.mesh.send(
            const.SUPERVISOR_SHARD, frames.control(READY, self.shard_id, self.generation)
        )
        self.mesh.flush()
