"""Single-producer/single-consumer byte ring over a region of the shared mesh segment.

Imported by every shard (producer side of its outbound rings, consumer side of its
inbound rings) and by the supervisor (``discard_all`` for a dead consumer). Stdlib only;
no asyncio. **Targets x86-64 Linux only**: the ordering argument below relies on the
x86-64 memory model (TSO) and on CPython's C implementation; it does not hold on ARM or
POWER, where the plain stores and loads used here may be reordered.

Layout (see layout.py): a 128-byte header, then ``size`` data bytes. The header holds the
write counter (offset 0), the producer-waiting flag (offset 8) and the read counter
(offset 64, its own cache line). Counters are monotonic 64-bit byte counts that never
wrap in practice (2**64 bytes); a byte's position is ``counter & (size - 1)``.
``write - read`` is the number of committed, unreleased bytes, ``0 <= write - read <= size``.

Ownership: one writer per counter. The producer (shard src) alone stores the write
counter; the consumer (shard dst) alone stores the read counter, except that the
supervisor may store it for a consumer that is dead (``discard_all``). The waiting flag
is set only by the producer and cleared only by the consumer (or the supervisor standing
in for a dead one).

Memory ordering (x86-64 TSO):

* Publish. The producer copies the frame bytes into the data area, *then* stores the new
  write counter with one aligned 8-byte store (``ctypes.c_uint64.value``). The consumer
  loads the write counter, *then* copies the bytes below it. TSO keeps store->store and
  load->load order, so a consumer that sees write counter W sees every byte before W.
* Reuse. The consumer copies the bytes out (``peek``) and applies them, *then* stores
  the read counter; the producer loads the read counter *before* overwriting the space
  it frees. TSO does not reorder a load with a later store (load->store), so the
  producer never overwrites bytes the consumer has not finished reading. The read
  counter is therefore the consumer's acknowledgement that every frame before it has been
  *applied*, not merely seen (the PONG barrier relies on this).
* Atomicity. Each counter is naturally aligned, and ctypes reads and writes it with
  one 8-byte ``memcpy``, i.e. one ``mov``: readers never see a torn value. Every Python
  step is a call into C, which is a compiler barrier, so the C compiler cannot move the
  byte copies across the counter accesses either.
* Back-pressure wake-up. A full ring is a Dekker pattern: the producer stores
  ``waiting = 1`` then loads the read counter; the consumer stores the read counter then
  loads ``waiting``. TSO *does* reorder a load before an earlier store (the store
  buffer), so without a fence both could read stale values and the producer would sleep
  with no one to wake it (and even in program order the plain check-then-set would lose
  a wake-up). Both sides therefore execute a full fence between the store and the load,
  and the producer re-checks for space after setting the flag. The fence is an
  uncontended ``threading.Lock`` acquire/release: CPython implements it with a
  LOCK-prefixed read-modify-write (glibc ``sem_trywait``/``sem_post`` through 3.12,
  ``PyMutex`` compare-and-swap from 3.13), and locked instructions are full barriers on
  x86 (Intel SDM vol. 3, 8.2.2). With the fences, either the producer's re-check sees the
  space, or the consumer's release sees the flag and the caller rings the producer's
  doorbell. A flag left set after a successful re-check costs one spurious doorbell.

Wake-ups. A producer rings the consumer's doorbell after a batch only when the consumer
had applied everything before it (``consumer_caught_up``): a consumer still holding
unreleased bytes is inside its drain loop, which releases them (a fenced store of the
read counter) and peeks again before it stops, so it finds the new batch by itself.

Bounded reads. ``peek(limit)`` lets a consumer apply part of what is pending, so one
turn of its loop stays short however far behind it is; it must still cut between whole
frames. The producer stores, with every commit and before the write counter, the commit's
end into the commit mark of the region that end falls in (layout.py); every value a mark
ever holds is thus a commit end, i.e. a frame boundary. The consumer loads the write
counter W first, then the marks: a mark M with ``read < M <= W`` is a boundary of bytes it
may read (load->load order, as for the bytes themselves); a mark written after the load of
W is above W and is ignored, and a mark from an earlier lap is at most ``read``. It cuts at
the highest such mark within the limit, else at the lowest one past it, else at W. Marks
are 8-byte aligned single stores: never torn.

Crash behaviour: the producer publishes only whole writes (all-or-nothing), so a
producer that dies mid-copy leaves the write counter at its last commit; the consumer
never sees a torn frame. ``discard_to`` drops a dead producer's stale frames,
``discard_all`` drops everything for a dead consumer.
"""

from __future__ import annotations

import ctypes
import mmap
import threading

from shardbroker.mesh.layout import (
    COMMIT_MARKS,
    COMMIT_MARKS_OFFSET,
    READ_COUNTER_OFFSET,
    RING_HEADER_SIZE,
    WAITING_FLAG_OFFSET,
    WRITE_COUNTER_OFFSET,
)

__all__ = ["Ring"]

_Buffer = bytes | bytearray | memoryview


class Ring:
    """One SPSC byte ring: header at ``offset`` of ``buf``, then ``size`` data bytes.

    A process uses a given ring either as its producer (``try_write``, ``free_space``)
    or as its consumer (``peek``, ``release``, ``pending``, ``discard_to``). Counter views
    hold exports of ``buf``: call ``close()`` before closing the mmap.
    """

    __slots__ = (
        "_buf",
        "_data",
        "_end",
        "_fence_acquire",
        "_fence_release",
        "_mark_shift",
        "_marks",
        "_mask",
        "_rc",
        "_wait",
        "_wc",
        "capacity",
    )

    def __init__(self, buf: mmap.mmap, offset: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size must be a power of two, not {size}")
        if offset < 0 or offset % 64:
            raise ValueError(f"ring offset must be 64-byte aligned, not {offset}")
        if offset + RING_HEADER_SIZE + size > len(buf):
            raise ValueError(f"ring at {offset} of {size} bytes overruns a {len(buf)}-byte map")
        self._buf = buf
        self._wc = ctypes.c_uint64.from_buffer(buf, offset + WRITE_COUNTER_OFFSET)
        self._wait = ctypes.c_uint64.from_buffer(buf, offset + WAITING_FLAG_OFFSET)
        self._rc = ctypes.c_uint64.from_buffer(buf, offset + READ_COUNTER_OFFSET)
        marks = ctypes.c_uint64 * COMMIT_MARKS
        self._marks = marks.from_buffer(buf, offset + COMMIT_MARKS_OFFSET)
        # Position -> commit mark: (position & mask) >> shift is below COMMIT_MARKS.
        self._mark_shift = max(0, size.bit_length() - COMMIT_MARKS.bit_length())
        self._data = offset + RING_HEADER_SIZE
        self._end = self._data + size
        self._mask = size - 1
        self.capacity = size
        # Private per ring, hence never contended: it is used only as a full fence.
        fence = threading.Lock()
        self._fence_acquire = fence.acquire
        self._fence_release = fence.release

    # -- producer side ---------------------------------------------------------------

    def try_write(self, data: _Buffer) -> bool:
        """Copy all of ``data`` in and commit it, or write nothing and return False.

        On False the producer-waiting flag is set: the consumer's next ``release``
        returns True and its caller rings this producer's doorbell; retry then.
        Owner: the producer. Raises ValueError if ``data`` could never fit. A
        memoryview must be contiguous and byte-formatted (``len`` counts bytes).
        """
        n = len(data)
        wc = self._wc
        w = wc.value
        size = self.capacity
        if n > size - (w - self._rc.value):
            if n > size:
                raise ValueError(f"a {n}-byte write cannot fit a {size}-byte ring")
            self._wait.value = 1
            # Full fence between the flag store and the read-counter re-load (module doc).
            self._fence_acquire()
            self._fence_release()
            if n > size - (w - self._rc.value):
                return False
            # The consumer made room meanwhile; the flag stays set (one spurious doorbell).
        pos = self._data + (w & self._mask)
        end = pos + n
        buf = self._buf
        if end <= self._end:
            buf[pos:end] = data
        else:
            # Wraps: the head goes to the end of the data area, the rest to its start.
            split = self._end - pos
            with memoryview(data) as view:
                buf[pos : self._end] = view[:split]
                buf[self._data : self._data + n - split] = view[split:]
        # Publish: bytes first, then the commit mark, then one aligned 8-byte store of
        # the counter (module doc, "Bounded reads").
        w += n
        self._marks[(w & self._mask) >> self._mark_shift] = w
        wc.value = w
        return True

    def free_space(self) -> int:
        """Bytes a ``try_write`` could take right now (grows only as the consumer releases)."""
        return self.capacity - (self._wc.value - self._rc.value)

    # -- consumer side ---------------------------------------------------------------

    def peek(self, limit: int = 0) -> bytes:
        """A copy of the committed, unreleased bytes; ``b""`` if none. Owner: the consumer.

        With a ``limit``, whole commits of about that many bytes: cut at the highest
        recorded commit end within the limit, else at the lowest one past it. Each
        region of the ring records only its last commit end, so a cut may fall short
        of the limit, or pass the first commit end beyond it by at most a region
        (module doc, "Bounded reads").
        """
        r = self._rc.value
        # Load the write counter before copying (and before the marks): load->load order.
        w = self._wc.value
        n = w - r
        if not n:
            return b""
        if limit and n > limit:
            n = self._cut(r, w, r + limit) - r
        pos = self._data + (r & self._mask)
        end = pos + n
        buf = self._buf
        if end <= self._end:
            return buf[pos:end]
        return buf[pos : self._end] + buf[self._data : end - self.capacity]

    def _cut(self, r: int, w: int, want: int) -> int:
        """A commit end in (r, w]: the highest one <= want, else the lowest above it."""
        below = 0
        above = w
        for mark in self._marks[:]:
            if r < mark <= want:
                if mark > below:
                    below = mark
            elif want < mark < above:
                above = mark
        return below or above

    def release(self, n: int) -> bool:
        """Mark ``n`` more bytes as applied; True if the producer was waiting for room.

        On True the flag has been cleared and the caller must ring the producer's
        doorbell so that it retries. Owner: the consumer.
        """
        rc = self._rc
        r = rc.value + n
        if n < 0 or r > self._wc.value:
            raise ValueError(f"cannot release {n} bytes: only {self.pending()} pending")
        rc.value = r
        return self._check_waiting()

    def pending(self) -> int:
        """Committed bytes not yet released."""
        return self._wc.value - self._rc.value

    def discard_to(self, pos: int) -> None:
        """Drop unread bytes up to write position ``pos`` (a dead producer's stale frames).

        A no-op unless ``read < pos <= write``. Owner: the consumer; ``pos`` must be a
        frame boundary, i.e. a write counter value the producer committed.
        """
        rc = self._rc
        if rc.value < pos <= self._wc.value:
            rc.value = pos

    def discard_all(self) -> bool:
        """Drop every committed byte (for a dead consumer, before its respawn).

        Run by the supervisor while the consumer is dead, so it is then the only writer
        of the read counter. Returns True, like ``release``, if the producer was waiting:
        the caller should ring the producer's doorbell.
        """
        self._rc.value = self._wc.value
        return self._check_waiting()

    def consumer_caught_up(self, position: int) -> bool:
        """Producer, right after a commit: had the consumer applied everything before
        ``position`` (the write counter before this batch)? Then it may be idle and
        needs a doorbell; otherwise it still has earlier bytes to release and will
        see this batch on its next pass (module doc, "Wake-ups").

        A Dekker pattern again: we store the write counter then load the read counter;
        the consumer stores the read counter (``release``, fenced in ``_check_waiting``)
        then loads the write counter on its next ``peek``. With a full fence on both
        sides, either we see it caught up and ring, or its next peek sees our batch.
        """
        self._fence_acquire()
        self._fence_release()
        return self._rc.value >= position

    def _check_waiting(self) -> bool:
        # Full fence between the read-counter store and the flag load (module doc).
        self._fence_acquire()
        self._fence_release()
        wait = self._wait
        if wait.value:
            wait.value = 0
            return True
        return False

    # -- both ------------------------------------------------------------------------

    @property
    def write_counter(self) -> int:
        """Bytes ever committed by the producer."""
        return self._wc.value

    @property
    def read_counter(self) -> int:
        """Bytes ever applied by the consumer: it has passed P iff ``read_counter >= P``."""
        return self._rc.value

    def close(self) -> None:
        """Drop the counter views so the mmap can be closed; the ring is unusable after."""
        for name in ("_wc", "_rc", "_wait", "_marks"):
            if hasattr(self, name):
                delattr(self, name)

    def __repr__(self) -> str:
        if not hasattr(self, "_wc"):
            return f"Ring(data={self._data}, capacity={self.capacity}, closed)"
        return (
            f"Ring(data={self._data}, capacity={self.capacity}, "
            f"write={self._wc.value}, read={self._rc.value})"
        )
