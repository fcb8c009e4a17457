"""Publish and subscribe permissions of a user, compiled for checking.

Pure: no asyncio, no sockets, no clock (callers pass ``now``). Imported by worker
shards. Behaviour follows nats-server's client.go (accounts-and-security.md §3), so a
client is judged the same whichever worker it landed on: every worker compiles the same
`UserPermissions` from the same Options, once per user, shared by that user's clients.

Matching. A permission entry is a pattern; the subject checked is taken *literally*,
token for token, even when it is a subscription subject with wildcards (nats matches it
through a sublist the same way). So allow ``foo.>`` admits ``SUB foo.*``, allow
``foo.bar`` does not admit ``SUB foo.*``, and (nats quirk, kept for compatibility)
allow ``foo.*`` admits ``SUB foo.>``.

Publish. Allow list (if any) must match, deny list (if any) must not. The answer
depends only on the subject, so it is cached per subject (bounded, oldest swept first).
When static permissions deny, a response grant (`ResponseGrants`) may still allow it.

Subscribe (at SUB time, `can_subscribe`). Entries may carry a queue (``"foo v1"``):
a plain SUB needs a matching allow entry without a queue; a queue SUB needs a matching
entry, and if any matching entry has a queue, its queue must match one of them. A
matching deny entry without a queue denies; one with a queue denies the queues it names.
Queue names match exactly, or by subset when the entry's queue has wildcards.

Delivery-time deny (`needs_delivery_check`, `delivery_denied`). A wildcard or queue
subscription can be allowed yet overlap a deny entry (``SUB foo.*`` with deny
``foo.secret``); its messages are then checked against the deny list one by one and
the denied ones silently skipped. Other subscriptions are never checked.

Responses (`ResponseGrants`, one per connection). A message with a reply subject
delivered to the connection grants it the right to publish to that reply (unless its
static permissions already allow it), at most ``max_msgs`` times within ``expires``
seconds. nats-server quirk kept: a further delivery with the same reply while the grant
is live uses up one response instead of renewing it.
"""

from __future__ import annotations

from itertools import islice

from shardbroker.config.options import Options, Permissions, ResponsePermission, all_users
from shardbroker.protocol.subjects import (
    has_wildcard,
    subject_is_subset_match,
    subject_matches,
    subjects_overlap,
)

# Cached answers per user; past the maximum the oldest are dropped down to the sweep.
PERM_CACHE_MAX = 1024
PERM_CACHE_SWEEP = 256
# Response grants are pruned at most once a second, or after this many new grants.
REPLY_PRUNE_INTERVAL = 1.0  # seconds (nats replyPruneTime)
REPLY_PRUNE_COUNT = 4096  # nats replyPermLimit

# Subscription.checked flags: which per-message checks a subscription's deliveries need.
CHECK_DENY = 1
CHECK_REPLIES = 2
# Not a client's: an internal subscription of the worker, which takes its messages itself.
CHECK_INTERNAL = 4


class SubjectList:
    """Patterns; `matches(subject)` if any matches. Literal patterns are a set lookup."""

    __slots__ = ("literals", "wildcards")

    def __init__(self, patterns: tuple[bytes, ...] | list[bytes]) -> None:
        self.literals = frozenset(p for p in patterns if not has_wildcard(p))
        self.wildcards = tuple(p for p in patterns if has_wildcard(p))

    def matches(self, subject: bytes) -> bool:
        if subject in self.literals:
            return True
        return any(subject_matches(p, subject) for p in self.wildcards)


class QueueEntries:
    """Subscribe entries: patterns, some with a queue (``"<subject> <queue>"``)."""

    __slots__ = ("plain", "queued", "subjects")

    def __init__(self, entries: tuple[str, ...]) -> None:
        plain: list[bytes] = []
        queued: list[tuple[bytes, bytes]] = []
        for entry in entries:
            parts = entry.split()
            if len(parts) == 2:
                queued.append((parts[0].encode(), parts[1].encode()))
            else:
                plain.append(entry.encode())
        self.plain = SubjectList(plain)
        self.queued = tuple(queued)
        # Every entry's subject part (for the overlap test of delivery-time deny).
        self.subjects = tuple(plain) + tuple(s for s, _ in queued)

    def match(self, subject: bytes) -> tuple[bool, list[bytes]]:
        """(a plain entry matches, the queues of matching queue entries)."""
        queues = [q for s, q in self.queued if subject_matches(s, subject)]
        return self.plain.matches(subject), queues


def queue_matches(queue: bytes, names: list[bytes]) -> bool:
    """nats queueMatches: the queue equals a name, or is a subset of a wildcard name."""
    if not names:
        return True
    return any(
        queue == name or (has_wildcard(name) and subject_is_subset_match(queue, name))
        for name in names
    )


def _bounded_put(cache: dict[bytes, bool], key: bytes, value: bool) -> None:
    cache[key] = value
    if len(cache) > PERM_CACHE_MAX:
        for old in list(islice(cache, len(cache) - PERM_CACHE_SWEEP)):
            del cache[old]


class UserPermissions:
    """One user's permissions, ready for checks; shared by the user's connections."""

    __slots__ = (
        "_deny_cache",
        "_pub_cache",
        "pub_allow",
        "pub_deny",
        "responses",
        "sub_allow",
        "sub_deny",
    )

    def __init__(self, perms: Permissions) -> None:
        pub = perms.publish
        sub = perms.subscribe
        self.pub_allow = (
            SubjectList([s.encode() for s in pub.allow])
            if pub is not None and pub.allow is not None
            else None
        )
        self.pub_deny = (
            SubjectList([s.split()[0].encode() for s in pub.deny])
            if pub is not None and pub.deny
            else None
        )
        self.sub_allow = QueueEntries(sub.allow) if sub is not None and sub.allow else None
        self.sub_deny = QueueEntries(sub.deny) if sub is not None and sub.deny else None
        self.responses: ResponsePermission | None = perms.allow_responses
        self._pub_cache: dict[bytes, bool] = {}
        self._deny_cache: dict[bytes, bool] = {}

    def with_publish_denied(self, subject: bytes) -> UserPermissions:
        """These permissions with one more publish deny entry (nats
        mergeDenyPermissions), as a new object: the original stays shared."""
        merged = UserPermissions(Permissions())
        merged.pub_allow = self.pub_allow
        deny = self.pub_deny
        patterns = [*deny.literals, *deny.wildcards] if deny is not None else []
        merged.pub_deny = SubjectList([*patterns, subject])
        merged.sub_allow = self.sub_allow
        merged.sub_deny = self.sub_deny
        merged.responses = self.responses
        return merged

    # -- publish ---------------------------------------------------------------------

    def publish_allowed(self, subject: bytes) -> bool:
        """The static answer (allow, then deny), cached per subject."""
        cached = self._pub_cache.get(subject)
        if cached is not None:
            return cached
        allow = self.pub_allow
        allowed = allow is None or allow.matches(subject)
        if allowed and self.pub_deny is not None:
            allowed = not self.pub_deny.matches(subject)
        _bounded_put(self._pub_cache, subject, allowed)
        return allowed

    # -- subscribe -------------------------------------------------------------------

    def can_subscribe(self, subject: bytes, queue: bytes | None) -> bool:
        allowed = True
        allow = self.sub_allow
        if allow is not None:
            plain, queues = allow.match(subject)
            allowed = plain
            if queue is not None and queues:
                # A matching entry with a queue restricts the queue names.
                allowed = queue_matches(queue, queues)
        deny = self.sub_deny
        if allowed and deny is not None:
            plain, queues = deny.match(subject)
            allowed = not plain
            if allowed and queue is not None and queues:
                allowed = not queue_matches(queue, queues)
        return allowed

    def needs_delivery_check(self, subject: bytes, queue: bytes | None) -> int:
        """`CHECK_*` flags for an allowed subscription's deliveries (0: none)."""
        flags = CHECK_REPLIES if self.responses is not None else 0
        deny = self.sub_deny
        if (
            deny is not None
            and (queue is not None or has_wildcard(subject))
            and any(subjects_overlap(d, subject) for d in deny.subjects)
        ):
            flags |= CHECK_DENY
        return flags

    def delivery_denied(self, subject: bytes, queue: bytes | None) -> bool:
        """Is a message on `subject` kept from a subscription (with `queue`)?"""
        key = subject if queue is None else subject + b" " + queue
        cached = self._deny_cache.get(key)
        if cached is not None:
            return cached
        deny = self.sub_deny
        assert deny is not None
        plain, queues = deny.match(subject)
        denied = plain or (queue is not None and bool(queues) and queue_matches(queue, queues))
        _bounded_put(self._deny_cache, key, denied)
        return denied


class ResponseGrants:
    """A connection's reply subjects it may publish to once: reply -> [created, used]."""

    __slots__ = ("expires", "grants", "last_prune", "max_msgs", "since_prune")

    def __init__(self, responses: ResponsePermission, now: float) -> None:
        self.max_msgs = responses.max_msgs
        self.expires = responses.expires
        self.grants: dict[bytes, list[float]] = {}
        self.since_prune = 0
        self.last_prune = now

    def use(self, subject: bytes, now: float) -> bool:
        """Publishing to `subject` on a grant: counts one use; False (and the grant is
        gone) past its count or age. (nats responseAllowed)"""
        grant = self.grants.get(subject)
        if grant is None:
            return False
        grant[1] += 1
        if (self.max_msgs > 0 and grant[1] > self.max_msgs) or (
            self.expires > 0 and now - grant[0] > self.expires
        ):
            del self.grants[subject]
            return False
        return True

    def on_delivery(self, perms: UserPermissions, reply: bytes, now: float) -> None:
        """A message with `reply` was delivered to the connection (nats deliverMsg)."""
        if perms.publish_allowed(reply) or self.use(reply, now):
            return
        self.grants[reply] = [now, 0]
        self.since_prune += 1
        if self.since_prune > REPLY_PRUNE_COUNT or now - self.last_prune > REPLY_PRUNE_INTERVAL:
            self.prune(now)

    def prune(self, now: float) -> None:
        max_msgs = self.max_msgs
        expires = self.expires
        self.grants = {
            reply: grant
            for reply, grant in self.grants.items()
            if not (
                (max_msgs > 0 and grant[1] >= max_msgs)
                or (expires > 0 and now - grant[0] > expires)
            )
        }
        self.since_prune = 0
        self.last_prune = now


def users_permissions(opts: Options) -> dict[str, UserPermissions]:
    """Compiled permissions by the name a client logs in as (user name or NKEY).

    Only listed users (of `authorization` or of an account) have permissions; their
    block's `default_permissions` covers those that have none of their own. Users
    without any are absent (full rights).
    """
    compiled: dict[int, UserPermissions] = {}  # one object per distinct Permissions
    out: dict[str, UserPermissions] = {}
    for entry in all_users(opts):
        perms = entry.permissions
        if perms is None:
            continue
        shared = compiled.get(id(perms))
        if shared is None:
            shared = compiled[id(perms)] = UserPermissions(perms)
        out[entry.name] = shared
    return out
