"""Mesh.drain: passes over the inbound rings, bounded by passes and by bytes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from shardbroker.mesh.doorbell import create_doorbell
from shardbroker.mesh.layout import MeshLayout, create_segment, unlink_segment
from shardbroker.mesh.mesh import Mesh, MeshSpec

RING = 1 << 16


@pytest.fixture
def meshes() -> Iterator[tuple[Mesh, Mesh, Mesh]]:
    """Shards 0, 1 and 2 on one segment; shard 0 is the one drained."""
    segment = f"/shardbroker-test-drain-{os.getpid()}"
    buf = create_segment(segment, MeshLayout(3, RING).total_size)
    doorbells = [create_doorbell() for _ in range(3)]
    spec = MeshSpec(port=0, segment=segment, n_shards=3, ring_size=RING, doorbell_fds=doorbells)
    try:
        yield Mesh(spec, 0, buf=buf), Mesh(spec, 1, buf=buf), Mesh(spec, 2, buf=buf)
    finally:
        unlink_segment(segment)
        for fd in doorbells:
            os.close(fd)


def test_mesh_drain_stops_after_a_pass_that_reached_max_bytes(
    meshes: tuple[Mesh, Mesh, Mesh],
) -> None:
    own, one, two = meshes
    seen: list[tuple[int, bytes]] = []
    applied = [0]

    def apply(peer: int, data: bytes) -> None:
        seen.append((peer, data))
        applied[0] += 1
        # Producers keep writing while we apply: every pass finds more, 20 times.
        if applied[0] < 20:
            (one if peer == 1 else two).send(0, b"y" * 1000)
            (one if peer == 1 else two).flush()

    one.send(0, b"a" * 1000)
    two.send(0, b"b" * 1000)
    one.flush()
    two.flush()
    # 2,000 bytes a pass: a 3,000-byte budget ends the drain after the second pass.
    assert own.drain(apply, max_bytes=3000) is True
    assert [peer for peer, _ in seen] == [1, 2, 1, 2]
    # Without a budget, max_passes bounds it; what is left is still there.
    seen.clear()
    assert own.drain(apply, max_passes=3) is True
    assert len(seen) == 6
    seen.clear()
    assert own.drain(apply) is False  # the producers stopped: the rings run empty
    assert applied[0] == 21
    assert sum(len(data) for _, data in seen) == 1000 * len(seen)


def test_mesh_logical_end_counts_every_byte_handed_over(
    meshes: tuple[Mesh, Mesh, Mesh],
) -> None:
    """logical_end is the count of bytes ever handed to a peer, however they were
    handed (send, or appended to the batch as the router does), committed, queued
    behind a full ring or still batched; asked any number of times in between."""
    own, one, _ = meshes
    rng = random.Random(7)
    handed = 0
    for step in range(3000):
        action = rng.random()
        if action < 0.5:
            frame = b"f" * rng.randint(1, 3000)
            if rng.random() < 0.5:
                own.send(1, frame)
            else:
                own.batches[1].append(frame)
            handed += len(frame)
        elif action < 0.6:
            own.flush()
        elif action < 0.7:
            one.drain(lambda peer, data: None)  # frees room; the overflow moves on
            own.retry_overflow()
        assert own.logical_end(1) == handed, step
    own.flush()
    while own.overflowing:
        one.drain(lambda peer, data: None)
        own.retry_overflow()
    ring = own.outbound[1]
    assert ring is not None and ring.write_counter == handed == own.logical_end(1)
