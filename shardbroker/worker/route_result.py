"""What a match of a subject yields on a worker, ready to route: the cached result.

Owner: a worker shard; runs on its loop. The sublist of an account holds both local
subscriptions (`Subscription`, a client and a sid) and the interest other shards
advertised (`RemoteInterest`, a peer and a queue weight). A match result is turned once,
when it is cached, into a `RouteResult`: the local plain subscriptions, the peers with
plain interest, and per queue group (`QueueGroup`) the members to pick from, so the
router (router.py) only walks tuples.

Queue groups are exactly-once broker-wide: the publishing shard picks one member among
its local members (weight 1 each) and the peers that advertised the group (weight =
their member count), so deliveries balance over all shards.

Permissions. A subscription whose deliveries need a per-message check (``checked``) is
kept apart in a result (``RouteResult.checked``) and in queue groups
(``QueueGroup.checked``), so the paths that carry everyone else's messages test nothing
more than one attribute per message.
"""

from __future__ import annotations

from bisect import bisect_right
from random import random
from typing import TYPE_CHECKING, Any, Protocol

from shardbroker.security.permissions import ResponseGrants, UserPermissions
from shardbroker.shard.interest import RemoteInterest

if TYPE_CHECKING:
    from shardbroker.core.plans import Subscription
else:
    # A client's subscription on this shard: the compiled core's when it is built (its
    # loops bump its counters as a C struct), else the twin (core/plans.py).
    from shardbroker.core import Subscription

__all__ = ["QueueGroup", "RouteResult", "Subscriber", "Subscription", "make_result"]


class Subscriber(Protocol):
    """What routing and the subscription index need of a connection (worker/client.py's
    ClientProtocol is the one): its output chunks and counters, its CONNECT choices, its
    permissions, its subscriptions, and whether they changed since its last PING."""

    out: list[bytes]
    out_msgs: int
    out_bytes: int
    echo: bool
    headers: bool
    perms: UserPermissions | None
    grants: ResponseGrants | None
    subs: dict[bytes, Subscription]
    interest_changed: bool


class QueueGroup:
    """The members of one queue group that a subject reaches."""

    __slots__ = ("checked", "cumulative", "local", "members", "name", "total")

    def __init__(self, name: bytes, subs: list[Any]) -> None:
        self.name = name
        self.local: tuple[Subscription, ...] = tuple(s for s in subs if type(s) is Subscription)
        # A local member's deliveries need a check: pick message by message.
        self.checked = any(s.checked for s in self.local)
        remote = [s for s in subs if type(s) is RemoteInterest]
        # Local members first, then peers; weights 1 for local, member count for peers.
        self.members: tuple[Any, ...] = (*self.local, *remote)
        cumulative: list[float] = []
        total = 0
        for member in self.members:
            total += member.weight if type(member) is RemoteInterest else 1
            cumulative.append(total)
        self.cumulative = cumulative
        self.total = total

    def pick(self) -> Any:
        """One member, weighted; a local Subscription or a RemoteInterest."""
        if len(self.members) == 1:
            return self.members[0]
        return self.members[bisect_right(self.cumulative, random() * self.total)]

    def pick_local(self) -> Subscription | None:
        local = self.local
        if not local:
            return None
        if len(local) == 1:
            # As for a run (``choices``): no draw for one member, so that a run and the
            # same messages one by one pick alike from a seed.
            return local[0]
        return local[int(random() * len(local))]


class RouteResult:
    """A cached match, ready to route.

    The sublist caches a result under its subject, or shares one among the subjects
    that differ only in a last token no subscription depends on (reply inboxes). The
    first message routed with it fills ``targets`` (each local subscription with its
    ``MSG <subject> <sid>`` prefix) and ``rmsg_prefix`` for ``prepared_for``, so later
    messages on that subject only join bytes; another subject prepares it again. The
    shared empty result is never prepared.
    """

    __slots__ = (
        "checked",
        "checked_queues",
        "empty",
        "local",
        "peers",
        "prepared_for",
        "queues",
        "rmsg_prefix",
        "targets",
    )

    def __init__(self, plain: list[Any], queue_groups: dict[bytes, list[Any]]) -> None:
        local = [s for s in plain if type(s) is Subscription]
        self.local: tuple[Subscription, ...] = tuple(s for s in local if not s.checked)
        # Local plain subscriptions whose deliveries are checked one by one.
        self.checked: tuple[Subscription, ...] = tuple(s for s in local if s.checked)
        self.peers: tuple[int, ...] = tuple(
            sorted({s.peer for s in plain if type(s) is RemoteInterest})
        )
        self.queues: tuple[QueueGroup, ...] = tuple(
            QueueGroup(name, subs) for name, subs in queue_groups.items()
        )
        self.checked_queues = any(group.checked for group in self.queues)
        self.empty = not (self.local or self.checked or self.peers or self.queues)
        self.targets: tuple[tuple[Subscription, Subscriber, bytes], ...] | None = None
        self.rmsg_prefix = b""
        self.prepared_for = b""

    def prepare(
        self, account: bytes, subject: bytes
    ) -> tuple[tuple[Subscription, Subscriber, bytes], ...]:
        head = b"MSG " + subject + b" "
        self.prepared_for = subject
        self.targets = tuple((sub, sub.client, head + sub.sid) for sub in self.local)
        self.rmsg_prefix = b"RMSG " + account + b" " + subject + b" "
        return self.targets


def make_result(plain: list[Any], queue_groups: dict[bytes, list[Any]]) -> RouteResult:
    return RouteResult(plain, queue_groups)
