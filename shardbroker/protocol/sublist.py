"""The subscription index of one account: a token trie plus a bounded match cache.

Owner: a worker shard or the storage shard, one `Sublist` per account, kept by the
caller in a dict account -> Sublist. Runs on the event loop; pure Python, never blocks,
not thread-safe (one loop owns it). Port of nats-server's ``server/sublist.go``.

Trie
    One `_Node` per token position. A node keeps its literal children in a dict
    (token -> node) and its ``*`` and ``>`` children in separate slots, so a published
    ``*``/``>`` token (a literal there, protocol.md section 5) is looked up among the
    literals and never mistaken for a wildcard. Each node holds the subscriptions whose
    pattern ends there: plain ones, and queue ones grouped by queue name. A ``>`` node
    never has children (``>`` is only valid last).

    Subscriptions are any objects with ``.subject`` (bytes, a valid subject) and
    ``.queue`` (bytes, or None for a plain subscription). They are stored by identity,
    in dicts keyed by ``id(sub)``: O(1) removal, insertion order kept, and no
    ``__eq__``/``__hash__`` needed (a msgspec Struct compares by value, which would
    confuse ``list.remove``). The dict holds the object, so its id cannot be reused while
    it is stored. ``.subject`` and ``.queue`` must not change while a sub is inserted.
    A node's plain subscriptions are a tuple while there are at most ``SMALL_NODE`` of
    them (most subjects have one or two: a tuple of one costs a fifth of a dict, and a
    shard may hold hundreds of thousands), and such a dict beyond that; a node's dicts
    start out as one shared empty dict and become its own on the first insert.

    Invariant: no node other than the root is empty (no subs and no children); `remove`
    prunes the path it emptied, so churn of unique subjects (inboxes) does not leak.

Match
    Walks the tokens iteratively (an explicit stack for the ``*`` branches, so a long
    subject cannot hit the recursion limit). A subject with an empty token (``a..b``,
    ``.a``, ``a.``) matches nothing. One entry per matching subscription: overlapping
    subscriptions of one connection each appear (the caller de-duplicates if it wants).
    Queue groups are keyed by queue name only, so members subscribed with ``q.*`` and
    ``q.>`` form one group for ``q.x``. The order is deterministic for a given set of
    inserts (insertion order within a node, then trie order).

    The result is whatever ``make_result(plain_subs, queue_groups)`` builds; it must be
    immutable (it is shared by every later hit) and must not be None. The lists and dict
    passed in are fresh and may be kept. A match with no subscribers returns one shared
    empty result built once in ``__init__``.

Cache (STYLE.md hot-path rule 5, nats ``slCacheMax``/``slCacheSweep``)
    - dict subject -> result. A hit is a single ``dict.get``: the first lines of `match`.
    - Bounded at ``cache_max`` entries: when an insert makes it exceed that, the oldest
      entries are dropped until ``cache_sweep_to`` remain (the newest, just added, stays).
    - Subjects with an empty token are not cached (they cannot match; caching them would
      only let garbage subjects evict useful entries).
    - Every change (insert, successful remove) bumps ``generation`` and drops only the
      affected keys: for a literal pattern the one equal key; for a wildcard pattern the
      cached subjects it matches (pre-filtered by its literal prefix). Nothing else is
      touched, so the cache is always exactly what a fresh match would return.
    - Tail cache (``share_tails=True``, for results that do not embed the subject, as
      the storage shard's): when no node reached at the last token has literal children, the last
      token cannot change the result (reply inboxes under ``_INBOX.x.*``). Such a result
      is kept under the leading tokens instead, shared by every subject with them, so
      unique reply subjects neither miss each time nor evict the main cache. Any insert
      or remove drops the whole tail cache.
    - Prefix cache (``share_tails=True`` too): when every branch of the walk ended on a
      literal lookup that failed, only the tokens up to the deepest such lookup were
      read, so every subject starting with those tokens has the result. It is kept
      under that prefix (JetStream ack subjects ``$JS.ACK.<stream>.<consumer>.<n>...``
      under ``$JS.ACK.>`` interest: one entry instead of a miss per ack). A miss tries
      the few prefix lengths in use; dropped whole on any insert or remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from shardbroker.protocol.subjects import FWC, PWC, TSEP, is_valid_subject, tokens_match

SMALL_NODE = 8  # plain subscriptions a node keeps in a tuple, before a dict
SLCACHE_MAX = 1024  # nats slCacheMax
SLCACHE_SWEEP = 256  # nats slCacheSweep
MAX_PREFIX_LENGTHS = 4  # token counts the prefix cache tries on a miss


class Subscription(Protocol):
    """What the sublist needs from a subscription object."""

    @property
    def subject(self) -> bytes: ...

    @property
    def queue(self) -> bytes | None: ...


S = TypeVar("S", bound=Subscription)
R = TypeVar("R")


# Every node starts with this one dict in each of its three dict slots, and gets a dict
# of its own only when something is stored there (insert): most nodes use one or two of
# the three, and a shard may hold hundreds of thousands of nodes. Never written to.
_SHARED_EMPTY: dict[Any, Any] = {}


class _Node:
    """One token position of the trie (nats merges `level` and `node`; we keep one class)."""

    __slots__ = ("fwc", "literals", "psubs", "pwc", "qsubs")

    def __init__(self) -> None:
        self.literals: dict[bytes, _Node] = _SHARED_EMPTY
        self.pwc: _Node | None = None  # child for a "*" token
        self.fwc: _Node | None = None  # child for a ">" token; never has children
        # Plain subscriptions ending here: a tuple (up to SMALL_NODE), else id(sub) -> sub.
        self.psubs: tuple[Any, ...] | dict[int, Any] = ()
        self.qsubs: dict[bytes, dict[int, Any]] = _SHARED_EMPTY  # queue -> {id(sub): sub}

    def is_empty(self) -> bool:
        return not (
            self.psubs
            or self.qsubs
            or self.literals
            or self.pwc is not None
            or self.fwc is not None
        )


def _match_tokens(
    root: _Node, tokens: list[bytes], plain: list[Any], queues: dict[bytes, list[Any]]
) -> tuple[bool, int]:
    """Collect every sub whose pattern matches `tokens` (nats matchLevel, iterative).

    Precondition: no empty token. At each position a ">" child matches the rest (at least
    one token remains, so "foo.>" never matches "foo"); a "*" child is saved on a stack
    and resumed at the next position; the literal child continues the walk. Adding a
    node's subs (nats addNodeToResults) is written out twice instead of being a helper:
    the call overhead was about a third of a miss in the benchmark. A node's plain subs
    are told apart with ``type(psubs) is dict``: it costs half an ``isinstance`` that
    fails, and its true branch is the one the type checker narrows (``.values()``).

    Returns ``(tail_free, prefix)`` for the caches of `Sublist.match`. ``tail_free``: no
    node reached at the last position has literal children, so the last token cannot
    change the result of a subject as long as this one (tail cache). ``prefix``: when no
    branch consumed every token, every branch stopped at a literal lookup that failed,
    and only the first ``prefix`` tokens were read (a lookup in a node without literal
    children fails whatever the token, so it reads none, though the token must exist):
    any subject with more than ``prefix`` tokens that starts with them matches alike
    (prefix cache). Else 0.
    """
    n = len(tokens)
    last = n - 1
    tail_matters = False
    completed = False  # some branch consumed every token
    read = 0  # tokens read by the branches that stopped on a failed lookup
    stack: list[tuple[_Node, int]] | None = None  # allocated only if a "*" branch exists
    node = root
    i = 0
    while True:
        while i < n:
            if i == last and node.literals:
                tail_matters = True
            fwc = node.fwc
            if fwc is not None:
                psubs = fwc.psubs
                if psubs:
                    plain.extend(psubs.values() if type(psubs) is dict else psubs)
                if fwc.qsubs:
                    for queue, members in fwc.qsubs.items():
                        group = queues.get(queue)
                        if group is None:
                            queues[queue] = list(members.values())
                        else:
                            group.extend(members.values())
            pwc = node.pwc
            if pwc is not None:
                if stack is None:
                    stack = [(pwc, i + 1)]
                else:
                    stack.append((pwc, i + 1))
            literals = node.literals
            nxt = literals.get(tokens[i])
            if nxt is None:
                # It read the tokens before i, and token i unless no token could match.
                stop = i + 1 if literals else i
                if stop > read:
                    read = stop
                break
            node = nxt
            i += 1
        else:
            # All tokens consumed on a literal/"*" path: the subs ending here match.
            completed = True
            psubs = node.psubs
            if psubs:
                plain.extend(psubs.values() if type(psubs) is dict else psubs)
            if node.qsubs:
                for queue, members in node.qsubs.items():
                    group = queues.get(queue)
                    if group is None:
                        queues[queue] = list(members.values())
                    else:
                        group.extend(members.values())
        if not stack:
            return not tail_matters, 0 if completed else read
        node, i = stack.pop()


class Sublist(Generic[S, R]):
    """Subscriptions of one account, matched by published subject through a cache."""

    __slots__ = (
        "_cache",
        "_cache_max",
        "_cache_sweep_to",
        "_empty",
        "_make_result",
        "_prefix_cache",
        "_prefix_lengths",
        "_root",
        "_share_tails",
        "_tail_cache",
        "count",
        "generation",
    )

    def __init__(
        self,
        make_result: Callable[[list[S], dict[bytes, list[S]]], R],
        cache_max: int = SLCACHE_MAX,
        cache_sweep_to: int = SLCACHE_SWEEP,
        share_tails: bool = False,
    ) -> None:
        if not 0 <= cache_sweep_to < cache_max:
            raise ValueError("need 0 <= cache_sweep_to < cache_max")
        self._make_result = make_result
        self._cache_max = cache_max
        self._cache_sweep_to = cache_sweep_to
        # Never rebound (clear() empties it in place), so `match` can rely on it.
        self._cache: dict[bytes, R] = {}
        # Leading tokens -> result, for subjects whose last token cannot change it
        # (`prefix.*` interest such as reply inboxes): unique subjects then share one
        # entry instead of each taking and evicting a slot of the main cache.
        self._tail_cache: dict[bytes, R] = {}
        # Only for results that do not depend on the subject they were built for (a
        # worker's results embed the subject in prebuilt MSG lines: no sharing there).
        self._share_tails = share_tails
        # First tokens -> result, for subjects whose walk never read past them (see
        # _match_tokens); the token counts in use are tried in order on a miss.
        self._prefix_cache: dict[bytes, R] = {}
        self._prefix_lengths: list[int] = []
        self._root = _Node()
        self._empty: R = make_result([], {})
        self.count = 0  # number of subscriptions stored; read-only outside this class
        self.generation = 0  # bumped on every insert and successful remove

    # -- reads ---------------------------------------------------------------------------

    def match(self, subject: bytes) -> R:
        """The result for a published subject; a cache hit is one dict lookup.

        `subject` must be ``bytes`` (a cache key), not a bytearray or memoryview slice.
        """
        r = self._cache.get(subject)
        if r is not None:
            return r
        dot = subject.rfind(TSEP) if self._share_tails else -1
        if dot == len(subject) - 1:
            dot = -1  # empty last token: never from the tail cache (it matches nothing)
        if dot > 0:
            r = self._tail_cache.get(subject[:dot])
            if r is not None:
                return r
            # An empty token anywhere matches nothing; its prefix must not answer for it.
            if self._prefix_lengths and b".." not in subject:
                prefix_cache = self._prefix_cache
                for length in self._prefix_lengths:
                    end = -1
                    for _ in range(length):
                        end = subject.find(TSEP, end + 1)
                        if end < 0:
                            break
                    if end > 0:
                        r = prefix_cache.get(subject[:end])
                        if r is not None:
                            return r
        tokens = subject.split(TSEP)
        if b"" in tokens:
            return self._empty  # empty token: matches nothing, not cached
        plain: list[S] = []
        queues: dict[bytes, list[S]] = {}
        tail_free, prefix = _match_tokens(self._root, tokens, plain, queues)
        r = self._make_result(plain, queues) if plain or queues else self._empty
        if dot > 0 and 0 < prefix < len(tokens) and self._keep_prefix(prefix):
            prefix_cache = self._prefix_cache
            if len(prefix_cache) >= self._cache_max:
                prefix_cache.clear()
            prefix_cache[TSEP.join(tokens[:prefix])] = r
            return r
        if dot > 0 and tail_free:
            tail_cache = self._tail_cache
            if len(tail_cache) >= self._cache_max:
                tail_cache.clear()
            tail_cache[subject[:dot]] = r
            return r
        cache = self._cache
        cache[subject] = r
        if len(cache) > self._cache_max:
            # Dicts iterate oldest first; the entry just added is the newest and stays.
            for key in list(islice(cache, len(cache) - self._cache_sweep_to)):
                del cache[key]
        return r

    def shared_prefix(self, subject: bytes) -> int:
        """The length of a leading part of ``subject``, whole tokens, such that every
        subject made of it and more tokens matches as ``subject`` does (the prefix
        cache holds its result); 0 if there is none. Callers may then keep what they
        derive from a match under that prefix, until the generation moves."""
        if (
            not self._share_tails
            or not self._prefix_lengths
            or subject.startswith(TSEP)
            or subject.endswith(TSEP)
            or b".." in subject
        ):
            return 0
        prefix_cache = self._prefix_cache
        for length in self._prefix_lengths:
            end = -1
            for _ in range(length):
                end = subject.find(TSEP, end + 1)
                if end < 0:
                    break
            if end > 0 and subject[:end] in prefix_cache:
                return end
        return 0

    @property
    def cache_count(self) -> int:
        """Entries currently in the main cache (nats CacheCount); for monitoring and tests."""
        return len(self._cache)

    def _keep_prefix(self, length: int) -> bool:
        """Track a prefix length for lookups; a miss tries each, so keep few."""
        lengths = self._prefix_lengths
        if length in lengths:
            return True
        if len(lengths) >= MAX_PREFIX_LENGTHS:
            return False
        lengths.append(length)
        return True

    @property
    def prefix_cache_count(self) -> int:
        """Prefixes in the prefix cache."""
        return len(self._prefix_cache)

    @property
    def tail_cache_count(self) -> int:
        """Prefixes in the tail cache (each bounded by cache_max too)."""
        return len(self._tail_cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._tail_cache.clear()
        self._prefix_cache.clear()
        self._prefix_lengths.clear()

    def __iter__(self) -> Iterator[S]:
        """Every stored subscription, in trie order (not the hot path)."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            psubs = node.psubs
            yield from psubs if isinstance(psubs, tuple) else psubs.values()
            for members in node.qsubs.values():
                yield from members.values()
            stack.extend(node.literals.values())
            if node.pwc is not None:
                stack.append(node.pwc)
            if node.fwc is not None:
                stack.append(node.fwc)

    # -- changes -------------------------------------------------------------------------

    def insert(self, sub: S, checked: bool = False) -> None:
        """Add `sub` under ``sub.subject``; inserting the same object again is a no-op.

        Raises ValueError if the subject is not valid (the caller sends -ERR before that);
        ``checked``: the caller has validated it already (``is_valid_subject``).
        """
        subject = sub.subject
        if not checked and not is_valid_subject(subject):
            raise ValueError(f"invalid subject {subject!r}")
        tokens = subject.split(TSEP)
        node = self._root
        for token in tokens:
            if token == PWC:
                nxt = node.pwc
                if nxt is None:
                    nxt = node.pwc = _Node()
            elif token == FWC:
                nxt = node.fwc
                if nxt is None:
                    nxt = node.fwc = _Node()
            else:
                nxt = node.literals.get(token)
                if nxt is None:
                    if node.literals is _SHARED_EMPTY:
                        node.literals = {}
                    nxt = node.literals[token] = _Node()
            node = nxt
        key = id(sub)
        queue = sub.queue
        if queue is None:
            psubs = node.psubs
            if isinstance(psubs, tuple):
                for other in psubs:
                    if other is sub:
                        return
                if len(psubs) < SMALL_NODE:
                    node.psubs = (*psubs, sub)
                else:
                    grown = {id(other): other for other in psubs}
                    grown[key] = sub
                    node.psubs = grown
            else:
                if key in psubs:
                    return
                psubs[key] = sub
        else:
            members = node.qsubs.get(queue)
            if members is None:
                if node.qsubs is _SHARED_EMPTY:
                    node.qsubs = {}
                members = node.qsubs[queue] = {}
            elif key in members:
                return
            members[key] = sub
        self.count += 1
        self.generation += 1
        self._invalidate(subject, tokens)

    def remove(self, sub: S) -> bool:
        """Remove `sub` (by identity); False if it was not stored. Prunes emptied nodes."""
        subject = sub.subject
        tokens = subject.split(TSEP)
        node = self._root
        path: list[tuple[_Node, bytes]] = []  # (parent, token leading to the child)
        for token in tokens:
            if token == PWC:
                nxt = node.pwc
            elif token == FWC:
                nxt = node.fwc
            else:
                nxt = node.literals.get(token)
            if nxt is None:
                return False
            path.append((node, token))
            node = nxt
        key = id(sub)
        queue = sub.queue
        if queue is None:
            psubs = node.psubs
            if isinstance(psubs, tuple):
                for i, other in enumerate(psubs):
                    if other is sub:
                        node.psubs = psubs[:i] + psubs[i + 1 :]
                        break
                else:
                    return False
            elif psubs.pop(key, None) is None:
                return False
        else:
            members = node.qsubs.get(queue)
            if members is None or members.pop(key, None) is None:
                return False
            if not members:
                del node.qsubs[queue]
        # Prune bottom-up while the child is empty; stop at the first node still in use.
        for parent, token in reversed(path):
            if not node.is_empty():
                break
            if token == PWC:
                parent.pwc = None
            elif token == FWC:
                parent.fwc = None
            else:
                del parent.literals[token]
            node = parent
        self.count -= 1
        self.generation += 1
        self._invalidate(subject, tokens)
        return True

    def _invalidate(self, subject: bytes, tokens: list[bytes]) -> None:
        """Drop the cached results a change of pattern `subject` can affect, no others.
        The tail cache is dropped whole: any new pattern may make a tail matter."""
        if self._tail_cache:
            self._tail_cache.clear()
        if self._prefix_lengths:
            self._prefix_cache.clear()
            self._prefix_lengths.clear()
        cache = self._cache
        if not cache:
            return
        if PWC not in tokens and FWC not in tokens:
            # A literal pattern matches exactly one published subject: itself.
            cache.pop(subject, None)
            return
        # Every subject the pattern matches starts with its literal prefix (the tokens
        # before the first wildcard); startswith() is a cheap C-level pre-filter.
        literal = 0
        while tokens[literal] != PWC and tokens[literal] != FWC:
            literal += 1
        prefix = TSEP.join(tokens[:literal]) + TSEP if literal else b""
        stale = [
            key for key in cache if key.startswith(prefix) and tokens_match(tokens, key.split(TSEP))
        ]
        for key in stale:
            del cache[key]
