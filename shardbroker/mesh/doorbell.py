"""Doorbells: one eventfd per consumer shard, telling it that its inbound rings moved.

The supervisor creates every doorbell (``create_doorbell``) before spawning the shards,
which inherit the fds. A shard holds a ``Doorbell`` for its own fd (it drains it; its
event loop watches it with ``loop.add_reader``) and one for each peer (it rings them).
Stdlib only; no asyncio. Targets Linux (eventfd).

Protocol:

* Producer: commit a batch of frames to the ring (ring.py), then ``ring()`` the
  consumer's doorbell, once per batch and only when the consumer had applied every
  earlier byte (``Ring.consumer_caught_up``, fenced against the consumer's release, see
  ring.py "Wake-ups"); a consumer still holding earlier bytes finds the batch on its own.
* Consumer: on wake-up, ``drain()`` the eventfd *first*, then empty all its inbound
  rings, re-checking until a full pass finds them all empty. A ring that lands after
  the drain leaves the eventfd readable, so the loop wakes again: no wake-up is lost.
  The write-counter store that preceded a ring is visible to the consumer after its
  drain, because both eventfd calls take the same kernel lock (a locked instruction,
  a full barrier on x86).
* Back-pressure: when ``Ring.release`` reports that the producer was waiting for room,
  the consumer rings the *producer's* doorbell, and the producer retries its write when
  it next drains.

Doorbells are non-blocking: ringing never blocks (an eventfd counter overflow, at 2**64-2,
is ignored: the consumer is already due to wake), and draining an empty one is a no-op.
"""

from __future__ import annotations

import os

__all__ = ["Doorbell", "create_doorbell"]


def create_doorbell() -> int:
    """A new non-blocking, inheritable eventfd (counter 0). Run by the supervisor."""
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    os.set_inheritable(fd, True)
    return fd


class Doorbell:
    """A wrapper over one doorbell eventfd; ring it (producer) or drain it (consumer)."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def ring(self) -> None:
        """Wake the consumer. Once per committed batch (module doc)."""
        # try/except, not contextlib.suppress: no context-manager object per batch.
        try:  # noqa: SIM105
            os.eventfd_write(self._fd, 1)
        except BlockingIOError:
            pass  # the counter is saturated: the consumer already has a wake-up pending

    def drain(self) -> None:
        """Reset the counter to 0, before emptying the inbound rings (module doc)."""
        try:  # noqa: SIM105 (hot path, as in ring())
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass  # nothing was pending

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close the fd (idempotent)."""
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            os.close(fd)

    def __repr__(self) -> str:
        return f"Doorbell(fd={self._fd})"
