"""Doorbell: eventfd creation, ring, drain, close."""

from __future__ import annotations

import fcntl
import os
import select
from collections.abc import Iterator

import pytest

from shardbroker.mesh.doorbell import Doorbell, create_doorbell

_EVENTFD_MAX = 2**64 - 2


@pytest.fixture
def doorbell() -> Iterator[Doorbell]:
    bell = Doorbell(create_doorbell())
    yield bell
    bell.close()


def _readable(bell: Doorbell) -> bool:
    return bool(select.select([bell], [], [], 0)[0])


def test_doorbell_fd_is_inheritable_and_non_blocking(doorbell: Doorbell) -> None:
    fd = doorbell.fileno()
    assert os.get_inheritable(fd)
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK


def test_doorbell_starts_quiet(doorbell: Doorbell) -> None:
    assert not _readable(doorbell)
    doorbell.drain()  # draining an empty doorbell is a no-op
    assert not _readable(doorbell)


def test_doorbell_ring_then_drain(doorbell: Doorbell) -> None:
    doorbell.ring()
    assert _readable(doorbell)
    doorbell.drain()
    assert not _readable(doorbell)


def test_doorbell_many_rings_one_drain(doorbell: Doorbell) -> None:
    for _ in range(100):
        doorbell.ring()
    assert _readable(doorbell)
    doorbell.drain()
    assert not _readable(doorbell)


def test_doorbell_rings_through_a_second_wrapper(doorbell: Doorbell) -> None:
    # The producer and the consumer each wrap the same fd (inherited in real life).
    producer_side = Doorbell(os.dup(doorbell.fileno()))
    try:
        producer_side.ring()
        assert _readable(doorbell)
        doorbell.drain()
        assert not _readable(producer_side)
    finally:
        producer_side.close()


def test_doorbell_ring_on_saturated_counter_does_not_raise(doorbell: Doorbell) -> None:
    os.eventfd_write(doorbell.fileno(), _EVENTFD_MAX)
    doorbell.ring()  # would block: swallowed, a wake-up is already pending
    assert _readable(doorbell)
    doorbell.drain()
    assert not _readable(doorbell)


def test_doorbell_close_is_idempotent() -> None:
    bell = Doorbell(create_doorbell())
    bell.close()
    bell.close()  # must not close whatever fd reused the number meanwhile
    assert bell.fileno() == -1
