"""Mesh layout: ring offsets, and the POSIX shared-memory segment helpers."""

from __future__ import annotations

import ctypes
import itertools
import os
import uuid

import posix_ipc
import pytest

from shardbroker.mesh.layout import (
    COMMIT_MARKS,
    COMMIT_MARKS_OFFSET,
    READ_COUNTER_OFFSET,
    RING_HEADER_SIZE,
    WAITING_FLAG_OFFSET,
    WRITE_COUNTER_OFFSET,
    MeshLayout,
    attach_segment,
    create_segment,
    segment_name,
    unlink_segment,
)


def _unique_name() -> str:
    return f"/shardbroker-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def test_layout_header_fields_are_aligned_and_separate() -> None:
    assert RING_HEADER_SIZE == 640
    assert WRITE_COUNTER_OFFSET == 0
    assert WAITING_FLAG_OFFSET == 8
    # The read counter has a cache line of its own, and the commit marks theirs.
    assert READ_COUNTER_OFFSET == 64
    assert COMMIT_MARKS_OFFSET == 128
    assert COMMIT_MARKS_OFFSET + 8 * COMMIT_MARKS == RING_HEADER_SIZE
    assert RING_HEADER_SIZE % 64 == 0
    for offset in (WRITE_COUNTER_OFFSET, WAITING_FLAG_OFFSET, READ_COUNTER_OFFSET):
        assert offset % 8 == 0 and offset + 8 <= COMMIT_MARKS_OFFSET


@pytest.mark.parametrize("n_shards", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("ring_size", [4096, 65536])
def test_layout_rings_do_not_overlap_and_fit(n_shards: int, ring_size: int) -> None:
    layout = MeshLayout(n_shards, ring_size)
    assert layout.n_shards == n_shards
    assert layout.ring_size == ring_size
    assert layout.total_size == n_shards * (n_shards - 1) * (RING_HEADER_SIZE + ring_size)
    spans = []
    for src in range(n_shards):
        for dst in range(n_shards):
            if src == dst:
                continue
            offset = layout.ring_offset(src, dst)
            assert offset % 64 == 0  # every counter naturally aligned
            spans.append((offset, offset + RING_HEADER_SIZE + ring_size))
    spans.sort()
    assert len(spans) == n_shards * (n_shards - 1)
    assert spans[0][0] == 0
    assert spans[-1][1] == layout.total_size
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start


def test_layout_offsets_are_stable() -> None:
    # Writer and reader compute offsets independently: they must agree forever.
    layout = MeshLayout(3, 4096)
    stride = RING_HEADER_SIZE + 4096
    expected = {(0, 1): 0, (0, 2): 1, (1, 0): 2, (1, 2): 3, (2, 0): 4, (2, 1): 5}
    for (src, dst), index in expected.items():
        assert layout.ring_offset(src, dst) == index * stride


def test_layout_single_shard_has_no_rings() -> None:
    assert MeshLayout(1, 4096).total_size == 0


@pytest.mark.parametrize("ring_size", [0, 1, 2048, 4095, 4097, 6144, 65535, -4096])
def test_layout_rejects_bad_ring_size(ring_size: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        MeshLayout(2, ring_size)


def test_layout_rejects_no_shards() -> None:
    with pytest.raises(ValueError):
        MeshLayout(0, 4096)


@pytest.mark.parametrize(("src", "dst"), [(0, 0), (2, 2), (-1, 0), (0, 3), (3, 0), (0, -1)])
def test_layout_rejects_bad_ring_ends(src: int, dst: int) -> None:
    with pytest.raises(ValueError):
        MeshLayout(3, 4096).ring_offset(src, dst)


def test_layout_segment_name() -> None:
    assert segment_name(4222) == "/shardbroker-4222-mesh"


def test_layout_segment_create_attach_unlink() -> None:
    name = _unique_name()
    size = MeshLayout(2, 4096).total_size
    created = create_segment(name, size)
    try:
        assert len(created) == size
        assert created[:] == bytes(size)  # zero-filled: every counter starts at 0
        created[100:105] = b"hello"
        attached = attach_segment(name, size)
        try:
            assert attached[100:105] == b"hello"
            attached[200:203] = b"abc"
            assert created[200:203] == b"abc"
            # Same physical memory through an 8-byte counter view too.
            counter = ctypes.c_uint64.from_buffer(attached, 64)
            counter.value = 2**64 - 1
            assert created[64:72] == b"\xff" * 8
            del counter
        finally:
            attached.close()
    finally:
        created.close()
        assert unlink_segment(name) is True
    assert unlink_segment(name) is False


def test_layout_create_segment_replaces_a_stale_one() -> None:
    name = _unique_name()
    stale = create_segment(name, 4096)
    try:
        stale[:4] = b"old!"
        fresh = create_segment(name, 8192)
        try:
            assert len(fresh) == 8192
            assert fresh[:] == bytes(8192)
            attached = attach_segment(name, 8192)
            attached[:4] = b"new!"
            attached.close()
            assert fresh[:4] == b"new!"
            assert stale[:4] == b"old!"  # the old object lives on until unmapped
        finally:
            fresh.close()
    finally:
        stale.close()
        unlink_segment(name)


def test_layout_attach_missing_segment_raises() -> None:
    with pytest.raises(posix_ipc.ExistentialError):
        attach_segment(_unique_name(), 4096)


def test_layout_attach_too_small_segment_raises() -> None:
    name = _unique_name()
    created = create_segment(name, 4096)
    try:
        with pytest.raises(ValueError, match="expected 8192"):
            attach_segment(name, 8192)
    finally:
        created.close()
        unlink_segment(name)


def test_layout_segment_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        create_segment(_unique_name(), 0)
    with pytest.raises(ValueError):
        attach_segment(_unique_name(), 0)


def test_layout_unlink_missing_segment_is_false() -> None:
    assert unlink_segment(_unique_name()) is False
