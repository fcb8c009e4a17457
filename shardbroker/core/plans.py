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
# Subjects the loops leave to the general path: the system account's requests (which
# every account imports) and service-import responses (latency tracking).
GENERAL_PUBLISH = (b"$SYS.", b"_R_.")
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


def deliver(entry: Any, tail: bytes, size: int, pending: set[Any], unsubscribe: Any) -> None:
    """One message to a plan's local target ``(subscription, client, "MSG <subject>
    <sid>")``: head + tail to the client's output, the counters bumped, the client
    marked pending; at its UNSUB max the subscription is unsubscribed (after which the
    plans are looked at again). ``_plans.pxd`` ``deliver`` is the compiled twin."""
    sub, target, head = entry
    target.out.append(head + tail)
    target.out_msgs += 1
    target.out_bytes += size
    pending.add(target)
    sub.delivered += 1
    if sub.max and sub.delivered >= sub.max:
        unsubscribe(sub)


_DIGITS = frozenset(b"0123456789")


def size_at(data: bytes, start: int, end: int) -> int:
    """The size ``data[start:end]`` spells in 1 to 9 ASCII digits, else -1."""
    if not 0 < end - start <= 9 or not all(b in _DIGITS for b in data[start:end]):
        return -1
    return int(data[start:end])


def run_end(data: bytes, pos: int, line_end: int, end: int) -> int:
    """Where a run of the operation at ``pos`` ends: its control line (up to
    ``line_end``, its CRLF included) repeated with a payload of the same size each time
    (the operation ends at ``end``). ``end`` itself when it is not repeated."""
    line = data[pos:line_end]
    step = end - pos
    after = end
    n = len(data)
    while (
        data.startswith(line, after)
        and after + step <= n
        and data[after + step - 2 : after + step] == b"\r\n"
    ):
        after += step
    return after


def queue_frame(rmsg_prefix: bytes, reply: bytes | None, names: list[bytes], sized: bytes) -> bytes:
    """The RMSG for a peer picked for the named queue groups (the nats route grammar,
    as frames.rmsg); ``sized`` is ``<size>\\r\\n<payload>\\r\\n``."""
    if reply is None:
        return rmsg_prefix + b"| " + b" ".join(names) + b" " + sized
    return rmsg_prefix + b"+ " + reply + b" " + b" ".join(names) + b" " + sized


class Plans:
    """Plans of one account's subjects, valid while its sublist's generation holds.

    A plan without local deliveries or queue groups (nobody here listens; peers only)
    names no subject: its ``rmsg_prefix`` is empty and the loops write the frame's
    ``RMSG <account> <subject>`` themselves. Such a plan serves every subject that
    matches as its own does: when ``share(subject)`` names a leading part of the subject
    that decides its match (the sublist's prefix cache, ``Sublist.shared_prefix``), the
    plan is kept under that prefix, and subjects used once (JetStream acks, unique
    subjects a stream stores) find it there without a build.
    """

    __slots__ = (
        "account",
        "build",
        "generation",
        "plans",
        "prefix_tokens",
        "prefixes",
        "share",
        "sublist",
    )

    def __init__(self, sublist: Any, build: Any, account: bytes = b"", share: Any = None) -> None:
        self.sublist = sublist
        # build(subject) -> plan, or None when the subject needs the general path.
        self.build = build
        self.account = account
        # share(subject) -> length of a prefix that decides its match, or 0.
        self.share = share
        self.plans: dict[bytes, Any] = {}
        self.prefixes: dict[bytes, Any] = {}
        self.prefix_tokens: list[int] = []  # token counts of the keys of prefixes
        self.generation = -1

    def __len__(self) -> int:
        return len(self.plans) + len(self.prefixes)

    def clear(self) -> None:
        """Drop every plan now (a subscription went away: its plans must not keep the
        connection alive until the next message of the account)."""
        self.plans.clear()
        self.prefixes.clear()
        self.prefix_tokens.clear()

    def plan(self, subject: bytes) -> Any:
        sublist = self.sublist
        if sublist.generation != self.generation:
            self.clear()
            self.generation = sublist.generation
        plans = self.plans
        plan = plans.get(subject, plans)  # the dict itself: "not built yet"
        if plan is not plans:
            return plan
        plan = self._by_prefix(subject) if self.prefix_tokens else None
        if plan is None:
            plan = self.build(subject)
            if plan is not None and not plan[2] and self.share is not None:
                length = self.share(subject)
                if length > 0:
                    prefixes = self.prefixes
                    if len(prefixes) >= MAX_PLANS:
                        self.prefixes.clear()
                        self.prefix_tokens.clear()
                    prefixes[subject[:length]] = plan
                    tokens = subject.count(b".", 0, length) + 1
                    if tokens not in self.prefix_tokens:
                        self.prefix_tokens.append(tokens)
        # Kept under the subject too (a lookup there is cheaper), but for single use.
        if not subject.startswith(SINGLE_USE):
            if len(plans) >= MAX_PLANS:
                plans.clear()
            plans[subject] = plan
        return plan

    def _by_prefix(self, subject: bytes) -> Any:
        """A plan kept under a leading part of the subject (whole tokens), or None."""
        if subject.startswith(b".") or subject.endswith(b".") or b".." in subject:
            return None
        for tokens in self.prefix_tokens:
            end = -1
            for _ in range(tokens):
                end = subject.find(b".", end + 1)
                if end < 0:
                    break
            if end > 0:
                plan = self.prefixes.get(subject[:end])
                if plan is not None:
                    return plan
        return None


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
