"""Interest between shards: what this shard advertises, and what its peers advertised.

Owner: any shard process (worker, storage, supervisor); runs on its loop, never blocks.

``LocalInterest`` counts this shard's own interest per (account, subject, queue) and
speaks for it on the mesh: ``RS+`` when a key goes 0 -> 1, ``RS-`` when it goes
1 -> 0, and for a queue group an ``RS+`` carrying the new member count on every change
(the weight peers pick members with). RS+ and RS- are idempotent, so the whole set
can be sent again to a peer that (re)appears (``frames``).

``PeerInterest`` keeps what every peer advertised, one ``RemoteInterest`` per
(peer, account, subject, queue), inserted into the shard's own sublists: the shard
decides what a match result is (a worker's holds its local subscriptions too), so one
walk finds everybody. ``appeared`` is set when interest is new or its weight changed,
for a shard that waits for somebody to listen (the storage shard's push consumers).

Every change costs O(1) plus one sublist insert or remove: no scan of what is already
there, however many subscriptions a shard holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardbroker.protocol import frames

InterestKey = tuple[bytes, bytes, bytes | None]


class RemoteInterest:
    """Interest a peer shard advertised with RS+ (a queue group carries a member count)."""

    __slots__ = ("account", "peer", "queue", "subject", "weight")

    def __init__(
        self, peer: int, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        self.peer = peer
        self.account = account
        self.subject = subject
        self.queue = queue
        self.weight = weight


class LocalInterest:
    """This shard's interest, counted per key, announced to peers through ``broadcast``."""

    __slots__ = ("_broadcast", "counts", "total")

    def __init__(self, broadcast: Callable[[bytes], None]) -> None:
        self._broadcast = broadcast
        self.counts: dict[InterestKey, int] = {}
        # The sum of all counts (a worker's subscription count), kept as it changes.
        self.total = 0

    def add(self, account: bytes, subject: bytes, queue: bytes | None = None) -> None:
        key = (account, subject, queue)
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        self.total += 1
        if count == 1 or queue is not None:
            self._broadcast(frames.rs_plus(account, subject, queue, count))

    def remove(self, account: bytes, subject: bytes, queue: bytes | None = None) -> None:
        key = (account, subject, queue)
        count = self.counts.get(key, 0) - 1
        if count < 0:
            return  # never added: nothing to withdraw
        self.total -= 1
        if count == 0:
            del self.counts[key]
            self._broadcast(frames.rs_minus(account, subject, queue))
        else:
            self.counts[key] = count
            if queue is not None:
                self._broadcast(frames.rs_plus(account, subject, queue, count))

    def frames(self) -> list[bytes]:
        """RS+ for everything advertised: what a peer that just said HELLO must hear."""
        rs_plus = frames.rs_plus
        return [rs_plus(a, s, q, count) for (a, s, q), count in self.counts.items()]


class PeerInterest:
    """What each peer advertised, kept in the sublists ``sublist_for(account)`` returns."""

    __slots__ = ("_accounts", "appeared", "sublist_for", "tables")

    def __init__(self, n_shards: int, sublist_for: Callable[[bytes], Any]) -> None:
        self.sublist_for = sublist_for
        self.tables: list[dict[InterestKey, RemoteInterest]] = [{} for _ in range(n_shards)]
        self.appeared = False
        # One bytes object per account name, shared by every entry (a frame's are new).
        self._accounts: dict[bytes, bytes] = {}

    def plus(
        self, peer: int, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        table = self.tables[peer]
        account = self._accounts.setdefault(account, account)
        key = (account, subject, queue)
        sublist = self.sublist_for(account)
        old = table.get(key)
        if old is not None:
            if queue is None or old.weight == weight:
                return
            sublist.remove(old)
        interest = RemoteInterest(peer, account, subject, queue, weight)
        table[key] = interest
        sublist.insert(interest, checked=True)  # the advertising shard validated it
        self.appeared = True

    def minus(self, peer: int, account: bytes, subject: bytes, queue: bytes | None) -> None:
        interest = self.tables[peer].pop((account, subject, queue), None)
        if interest is not None:
            self.sublist_for(account).remove(interest)

    def forget(self, peer: int) -> None:
        """The peer is gone (or restarted): none of what it advertised holds any more."""
        table = self.tables[peer]
        sublist_for = self.sublist_for
        for interest in table.values():
            sublist_for(interest.account).remove(interest)
        table.clear()
