"""Plans and subscriptions, pure Python: the reference twin of the compiled ``_plans``.

Owner: a worker shard, on its loop. Imports nothing of the broker.

A *plan* is what a subject of an account gets when a message is published on it: the
local subscriptions with their ``MSG`` heads, the peers with interest, the queue groups
to pick a member of (publoop.py says how the loops execute one). ``Plans`` keeps the
plans of one account while its sublist's generation holds; the router builds them.
``Subscription`` is the worker's subscription and ``Output`` a connection's output, here
because the compiled loops append to them and bump their counters as C structs. The
helpers pick queue members and write queue frames the way the general path
(worker/router.py) does, draw for draw.
"""

from __future__ import annotations

from random import random
from typing import Any

# Runs of larger payloads are left to the parser: it passes runs of large identical
# publishes on as the bytes read (blocks) instead of copying each payload out.
SMALL_PAYLOAD = 1024
# Plans kept per account; past this many (subjects that come and go, inboxes) they are
# all dropped and built again as messages come. A plan is a few references.
MAX_PLANS = 1 << 16
# Subjects used once, whose plans are not kept: replies (nats clients' inboxes) and
# JetStream acks (each names its message's sequence numbers).
SINGLE_USE = (b"_INBOX.", b"$JS.ACK.")
# Subjects and replies a connection may not publish with (worker/client.py's checks):
# the loop leaves them to the parser's path, which answers them.
RESERVED_PUBLISH = (b"_GR_.", b"$NRG.")
RESERVED_REPLY = (b"_R_.", b"$JS.ACK.", b"_GR_.")


# A queue group a subject reaches: (name, members, cumulative weights, total weight,
# local members). A member is a local ``(subscription, client, "MSG <subject> <sid>")``
# or a peer's shard number; the weights are those of ``QueueGroup`` (1 per local member,
# a peer's member count), so picks balance over all shards as the general path's do.
QueuePlan = tuple[bytes, tuple[Any, ...], tuple[float, ...], float, tuple[Any, ...]]


def queue_plan(
    name: bytes, members: tuple[Any, ...], cumulative: Any, total: float, local: tuple[Any, ...]
) -> QueuePlan:
    return name, members, tuple(map(float, cumulative)), float(total), local


def pick_member(queue: QueuePlan) -> Any:
    """One member of a queue group, weighted: ``QueueGroup.pick``'s choice for the same
    ``random()``."""
    members = queue[1]
    if len(members) == 1:
        return members[0]
    cumulative = queue[2]
    x = random() * queue[3]
    i = 0
    while cumulative[i] <= x:  # bisect_right
        i += 1
    return members[i]


def pick_local(queue: QueuePlan) -> Any:
    """One local member for a message a peer picked this shard for, or None:
    ``QueueGroup.pick_local``'s choice for the same ``random()``."""
    local = queue[4]
    if not local:
        return None
    if len(local) == 1:
        return local[0]
    return local[int(random() * len(local))]


def queue_frame(rmsg_prefix: bytes, reply: bytes | None, names: list[bytes], sized: bytes) -> bytes:
    """The RMSG for a peer picked for the named queue groups (the nats route grammar,
    as frames.rmsg); ``sized`` is ``<size>\\r\\n<payload>\\r\\n``."""
    if reply is None:
        return rmsg_prefix + b"| " + b" ".join(names) + b" " + sized
    return rmsg_prefix + b"+ " + reply + b" " + b" ".join(names) + b" " + sized


class Plans:
    """Plans of one account's subjects, valid while its sublist's generation holds."""

    __slots__ = ("build", "generation", "plans", "sublist")

    def __init__(self, sublist: Any, build: Any) -> None:
        self.sublist = sublist
        # build(subject) -> plan, or None when the subject needs the general path.
        self.build = build
        self.plans: dict[bytes, Any] = {}
        self.generation = -1

    def __len__(self) -> int:
        return len(self.plans)

    def clear(self) -> None:
        """Drop every plan now (a subscription went away: its plans must not keep the
        connection alive until the next message of the account)."""
        self.plans.clear()

    def plan(self, subject: bytes) -> Any:
        sublist = self.sublist
        if sublist.generation != self.generation:
            self.plans.clear()
            self.generation = sublist.generation
        plans = self.plans
        plan = plans.get(subject, plans)  # the dict itself: "not built yet"
        if plan is plans:
            plan = self.build(subject)
            if not subject.startswith(SINGLE_USE):
                if len(plans) >= MAX_PLANS:
                    plans.clear()
                plans[subject] = plan
        return plan


class Output:
    """A connection's output and its counters, as the loops append and bump them: the
    base of the worker's client (worker/client.py). The compiled core's twin keeps them
    in a C struct."""

    __slots__ = ("out", "out_bytes", "out_msgs")

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.out_msgs = 0
        self.out_bytes = 0


class Subscription:
    """A client's subscription on a worker shard (what worker/route_result.py calls
    ``Subscription``): the compiled core's twin is a C struct the loops read and bump
    directly; this one is the reference, with the same fields."""

    __slots__ = ("account", "checked", "client", "delivered", "max", "queue", "sid", "subject")

    def __init__(
        self,
        client: Any,
        account: bytes,
        subject: bytes,
        queue: bytes | None,
        sid: bytes,
    ) -> None:
        self.client = client
        self.account = account
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.max = 0
        self.delivered = 0
        # permissions.CHECK_* flags; set before the subscription enters the sublist.
        self.checked = 0
