"""This shard's view of the mesh: its inbound ring from every peer, its outbound ring to
every peer, and the doorbells. Imported by every shard (workers, storage, supervisor).

Outbound frames are batched per peer and committed at the end of a read batch
(``flush``), with one doorbell ring per peer that got data and had applied all
earlier data (a peer still busy with earlier frames finds the new ones by itself).
A ring that is full never loses a frame: the rest of the batch goes to a per-peer
overflow queue, every later frame for that peer queues behind it (order is never
changed), and ``flush`` reports it so the caller can pause the publisher. The consumer
rings our doorbell when it frees space while we wait; ``retry_overflow`` then moves the
queue into the ring.

``logical_end(peer)`` is the write position after the last frame handed to
``send`` (committed, queued in the overflow, or still in the batch). Because a
ring's write counter is the count of all bytes ever committed in order, a peer has
applied every frame up to a position P exactly when its read counter is >= P: that
is the PONG barrier. It costs O(frames added since the last call): the bytes of the
batch already counted are remembered until the batch is committed (batches are only
appended to between commits, and cleared only here).

``drain`` applies inbound frames in bounded turns: with ``max_bytes`` it reads at most
about that many bytes (whole commits, ring.py "Bounded reads"), so a shard far behind
its peers still gets back to its loop (sockets, timers, its tick) between turns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from shardbroker.mesh.doorbell import Doorbell
from shardbroker.mesh.layout import MeshLayout, attach_segment
from shardbroker.mesh.ring import Ring


class MeshSpec(msgspec.Struct, frozen=True):
    """Everything a shard needs to attach to the mesh."""

    port: int
    segment: str
    n_shards: int
    ring_size: int
    doorbell_fds: list[int]


class ShardBoot(msgspec.Struct, frozen=True):
    """What the supervisor hands a shard on its boot fd."""

    shard_id: int
    generation: int
    mesh: MeshSpec
    live: list[int]
    server_id: str
    supervisor_pid: int
    options: bytes
    # The broker's NKEY seed (server_id is its public key) and curve seed (INFO xkey):
    # one identity for every worker (auth callout requests are signed and sealed by it).
    server_seed: str = ""
    xkey_seed: str = ""
    # The websocket port every worker listens on (the configured one, or the one the
    # supervisor picked for -1); 0: no websocket listener.
    websocket_port: int = 0


def encode_boot(boot: ShardBoot) -> bytes:
    return msgspec.msgpack.encode(boot)


def decode_boot(data: bytes) -> ShardBoot:
    return msgspec.msgpack.decode(data, type=ShardBoot)


class Mesh:
    """Rings and doorbells of one shard. Runs on the shard's loop; never blocks."""

    def __init__(self, spec: MeshSpec, shard_id: int, buf: Any = None) -> None:
        self.spec = spec
        self.shard_id = shard_id
        self.layout = MeshLayout(spec.n_shards, spec.ring_size)
        self.buf = buf if buf is not None else attach_segment(spec.segment, self.layout.total_size)
        n = spec.n_shards
        self.peers = [p for p in range(n) if p != shard_id]
        self.inbound: list[Ring | None] = [None] * n
        self.outbound: list[Ring | None] = [None] * n
        for p in self.peers:
            self.inbound[p] = Ring(self.buf, self.layout.ring_offset(p, shard_id), spec.ring_size)
            self.outbound[p] = Ring(self.buf, self.layout.ring_offset(shard_id, p), spec.ring_size)
        self.doorbells = [Doorbell(fd) for fd in spec.doorbell_fds]
        self.doorbell = self.doorbells[shard_id]
        # Frames waiting for the end of the read batch, per peer. The lists are never
        # replaced, so a hot loop may hold one and append to it directly.
        self.batches: list[list[bytes]] = [[] for _ in range(n)]
        self._overflow: list[deque[bytes]] = [deque() for _ in range(n)]
        self.overflowing: set[int] = set()
        # Bytes committed to, or queued in the overflow for, each outbound ring.
        self._handed = [0] * n
        # logical_end's memo: how many frames of the batch it has counted, and their bytes.
        self._counted = [0] * n
        self._counted_bytes = [0] * n
        for p in self.peers:
            ring = self.outbound[p]
            assert ring is not None
            self._handed[p] = ring.write_counter
        # Commit in pieces no larger than this so one piece always fits an empty ring;
        # producers that join many messages into one frame keep their frames below it.
        self.max_commit = self._chunk = spec.ring_size // 4
        self.ring_full_events = 0

    # -- producer side -------------------------------------------------------------

    def send(self, peer: int, frame: bytes) -> None:
        """Queue a frame for a peer; it is committed by the next flush."""
        self.batches[peer].append(frame)

    def logical_end(self, peer: int) -> int:
        """The ring position just after the last frame handed to ``send`` so far."""
        batch = self.batches[peer]
        counted = self._counted[peer]
        if len(batch) > counted:
            self._counted_bytes[peer] += sum(map(len, batch[counted:]))
            self._counted[peer] = len(batch)
        return self._handed[peer] + self._counted_bytes[peer]

    def _batch_taken(self, peer: int) -> None:
        """The batch was committed or dropped: logical_end counts from the ring again."""
        self._counted[peer] = 0
        self._counted_bytes[peer] = 0

    def flush(self) -> bool:
        """Commit every batch and ring each peer that got data once.

        Returns False when some peer's ring is full and frames wait in its overflow
        queue (the caller pauses whoever published them).
        """
        batches = self.batches
        for peer in self.peers:
            frames = batches[peer]
            if not frames:
                continue
            size = sum(map(len, frames))
            chunks = [b"".join(frames)] if size <= self._chunk else self._chunked(frames)
            frames.clear()
            self._batch_taken(peer)
            self._handed[peer] += size
            ring = self.outbound[peer]
            assert ring is not None
            overflow = self._overflow[peer]
            start = ring.write_counter
            wrote = False
            for chunk in chunks:
                if overflow or not ring.try_write(chunk):
                    if not overflow:
                        self.ring_full_events += 1
                    overflow.append(chunk)
                    self.overflowing.add(peer)
                else:
                    wrote = True
            if wrote and ring.consumer_caught_up(start):
                self.doorbells[peer].ring()
        return not self.overflowing

    def _chunked(self, frames: list[bytes]) -> list[bytes]:
        """Join frames into pieces of at most _chunk bytes (one frame may be longer)."""
        chunks: list[bytes] = []
        current: list[bytes] = []
        current_size = 0
        limit = self._chunk
        for frame in frames:
            if current and current_size + len(frame) > limit:
                chunks.append(b"".join(current))
                current = []
                current_size = 0
            current.append(frame)
            current_size += len(frame)
        if current:
            chunks.append(b"".join(current))
        return chunks

    def retry_overflow(self) -> bool:
        """Move queued chunks into rings that have room again; True when none wait."""
        for peer in list(self.overflowing):
            ring = self.outbound[peer]
            assert ring is not None
            overflow = self._overflow[peer]
            start = ring.write_counter
            wrote = False
            while overflow and ring.try_write(overflow[0]):
                overflow.popleft()
                wrote = True
            if wrote and ring.consumer_caught_up(start):
                self.doorbells[peer].ring()
            if not overflow:
                self.overflowing.discard(peer)
        return not self.overflowing

    def forget_peer_output(self, peer: int) -> None:
        """Drop everything queued for a peer that died, and resync the logical end."""
        self.batches[peer].clear()
        self._batch_taken(peer)
        self._overflow[peer].clear()
        self.overflowing.discard(peer)
        ring = self.outbound[peer]
        assert ring is not None
        self._handed[peer] = ring.write_counter

    def outbound_fill_pct(self) -> int:
        """How full the fullest outbound ring is, in percent (for monitoring)."""
        size = self.spec.ring_size
        fullest = 0
        for peer in self.peers:
            ring = self.outbound[peer]
            assert ring is not None
            fullest = max(fullest, size - ring.free_space())
        return fullest * 100 // size

    def applied(self, peer: int, position: int) -> bool:
        """Has the peer applied every frame we sent it up to this logical position?"""
        ring = self.outbound[peer]
        assert ring is not None
        return ring.read_counter >= position

    # -- consumer side -------------------------------------------------------------

    def drain(
        self, apply: Callable[[int, bytes], None], max_passes: int = 8, max_bytes: int = 0
    ) -> bool:
        """Clear the doorbell, then apply every inbound ring until all are empty.

        ``apply(peer, data)`` handles whole frames; a ring's read counter moves past
        them only after it returns (the acknowledgement the PONG barrier waits for).
        A producer that waits for space is rung once we freed some. After
        ``max_passes`` busy passes, or a pass that brought the total to
        ``max_bytes`` (when set; each read is then cut to what is left of it, in
        whole commits), it returns True (more may be waiting) so the caller can
        serve its sockets and come back: the doorbell is already cleared, so the
        caller must schedule the next drain itself.
        """
        self.doorbell.drain()
        inbound = self.inbound
        doorbells = self.doorbells
        peers = self.peers
        busy = True
        passes = 0
        taken = 0
        while busy:
            if passes == max_passes or (max_bytes and taken >= max_bytes):
                return True
            passes += 1
            busy = False
            for peer in peers:
                ring = inbound[peer]
                assert ring is not None
                data = ring.peek(max(max_bytes - taken, 1) if max_bytes else 0)
                if data:
                    busy = True
                    taken += len(data)
                    apply(peer, data)
                    if ring.release(len(data)):
                        doorbells[peer].ring()
        return False

    def discard_inbound(self, peer: int, position: int) -> None:
        """Skip what a dead producer left in its ring, up to its last commit."""
        ring = self.inbound[peer]
        assert ring is not None
        ring.discard_to(position)
