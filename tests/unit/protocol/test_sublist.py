"""Sublist: trie matching, queue grouping, cache invalidation, pruning (worker/sublist.py)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.protocol import sublist as sublist_module
from shardbroker.protocol.subjects import subject_matches
from shardbroker.protocol.sublist import Sublist


class Sub:
    __slots__ = ("name", "queue", "subject")

    def __init__(self, subject: bytes, queue: bytes | None = None, name: str = "") -> None:
        self.subject = subject
        self.queue = queue
        self.name = name or subject.decode(errors="replace")

    def __repr__(self) -> str:
        return f"Sub({self.subject!r}, {self.queue!r}, {self.name!r})"


@dataclasses.dataclass
class ValueSub:
    """Compares by value and is unhashable, like a non-frozen msgspec Struct."""

    subject: bytes
    queue: bytes | None = None


class Result(NamedTuple):
    plain: tuple
    queues: dict


def make_result(plain: list, queues: dict) -> Result:
    return Result(tuple(plain), {q: tuple(m) for q, m in queues.items()})


def new_sublist(**kw) -> Sublist:
    return Sublist(make_result, **kw)


def sharing_sublist(**kw) -> Sublist:
    return Sublist(make_result, share_tails=True, **kw)


def ids(subs) -> Counter:
    return Counter(id(s) for s in subs)


def names(result: Result) -> list[str]:
    return [s.name for s in result.plain]


def root_is_empty(sl: Sublist) -> bool:
    root = sl._root
    return root.is_empty()


# -- literal and wildcard matching ------------------------------------------------------


def test_sublist_literal_match():
    sl = new_sublist()
    a = Sub(b"foo.bar")
    sl.insert(a)
    sl.insert(Sub(b"foo.baz"))
    assert sl.match(b"foo.bar").plain == (a,)
    assert sl.match(b"foo").plain == ()
    assert sl.match(b"foo.bar.baz").plain == ()
    assert sl.count == 2


@pytest.mark.parametrize(
    ("pattern", "subject", "hit"),
    [
        (b"foo.*", b"foo.bar", True),
        (b"foo.*", b"foo", False),
        (b"foo.*", b"foo.bar.baz", False),
        (b"*.bar", b"foo.bar", True),
        (b"*", b"foo", True),
        (b"*", b"foo.bar", False),
        (b"foo.>", b"foo.bar", True),
        (b"foo.>", b"foo.bar.baz", True),
        (b"foo.>", b"foo", False),
        (b">", b"foo", True),
        (b">", b"a.b.c.d.e", True),
        (b"*.>", b"a", False),
        (b"foo.*.>", b"foo.x.y.z", True),
        # Published wildcard tokens are literal tokens.
        (b"foo.*", b"foo.*", True),
        (b"foo.>", b"foo.*", True),
        (b"foo.bar", b"foo.*", False),
        (b"foo.*", b"foo.>", True),
        (b"foo.bar", b"foo.>", False),
        (b"foo*", b"foo*", True),
        (b"foo*", b"fooX", False),
    ],
)
def test_sublist_wildcard_match(pattern: bytes, subject: bytes, hit: bool):
    sl = new_sublist()
    sub = Sub(pattern)
    sl.insert(sub)
    assert sl.match(subject).plain == ((sub,) if hit else ())


@pytest.mark.parametrize("subject", [b"", b".", b"a..b", b".a", b"a.", b"foo..", b"..foo"])
def test_sublist_empty_token_matches_nothing(subject: bytes):
    sl = new_sublist()
    sl.insert(Sub(b">"))
    sl.insert(Sub(b"*"))
    sl.insert(Sub(b"a.*.b"))
    result = sl.match(subject)
    assert result == Result((), {})
    assert result is sl._empty  # the one shared empty result, built in __init__
    assert subject not in sl._cache


def test_sublist_full_wildcard_matches_everything_nonempty():
    sl = new_sublist()
    everything = Sub(b">")
    sl.insert(everything)
    for subject in (b"a", b"a.b", b"$JS.API.INFO", b"*", b">", b"x.*.>"):
        assert sl.match(subject).plain == (everything,)


def test_sublist_many_matching_patterns():
    sl = new_sublist()
    subs = [Sub(p) for p in (b">", b"foo.>", b"foo.*", b"foo.bar", b"*.bar", b"*.*", b"*.>")]
    for s in subs:
        sl.insert(s)
    sl.insert(Sub(b"foo"))
    sl.insert(Sub(b"foo.bar.baz"))
    sl.insert(Sub(b"bar.*"))
    assert ids(sl.match(b"foo.bar").plain) == ids(subs)


def test_sublist_order_is_deterministic():
    def build():
        sl = new_sublist()
        for i, p in enumerate([b">", b"a.*", b"a.b", b"*.b", b"a.>", b"a.b", b"*.*"]):
            sl.insert(Sub(p, name=str(i)))
        return sl

    assert names(build().match(b"a.b")) == names(build().match(b"a.b"))
    # Insertion order within one node.
    sl = new_sublist()
    for i in range(5):
        sl.insert(Sub(b"x", name=str(i)))
    assert names(sl.match(b"x")) == ["0", "1", "2", "3", "4"]


def test_sublist_long_subject_no_recursion_limit():
    n = 3000
    sl = new_sublist()
    sub = Sub(b".".join([b"*"] * n))
    sl.insert(sub)
    sl.insert(Sub(b".".join([b"*"] * (n - 1) + [b">"])))
    assert len(sl.match(b".".join([b"t"] * n)).plain) == 2


# -- queue groups -----------------------------------------------------------------------


def test_sublist_queue_groups_by_name():
    sl = new_sublist()
    q1 = Sub(b"foo", b"workers")
    q2 = Sub(b"foo", b"workers")
    other = Sub(b"foo", b"other")
    for s in (q1, q2, other):
        sl.insert(s)
    r = sl.match(b"foo")
    assert r.plain == ()
    assert r.queues == {b"workers": (q1, q2), b"other": (other,)}


def test_sublist_queue_group_across_overlapping_patterns():
    sl = new_sublist()
    star = Sub(b"q.*", b"g")
    full = Sub(b"q.>", b"g")
    lit = Sub(b"q.x", b"g")
    sl.insert(star)
    sl.insert(full)
    sl.insert(lit)
    r = sl.match(b"q.x")
    assert list(r.queues) == [b"g"]
    assert ids(r.queues[b"g"]) == ids([star, full, lit])
    assert ids(sl.match(b"q.y").queues[b"g"]) == ids([star, full])
    assert sl.match(b"q.y.z").queues == {b"g": (full,)}


def test_sublist_plain_and_queue_together():
    sl = new_sublist()
    p1 = Sub(b"orders.*")
    p2 = Sub(b"orders.new")
    q = Sub(b"orders.>", b"billing")
    for s in (p1, p2, q):
        sl.insert(s)
    r = sl.match(b"orders.new")
    assert ids(r.plain) == ids([p1, p2])
    assert r.queues == {b"billing": (q,)}


def test_sublist_queue_names_are_plain_strings():
    sl = new_sublist()
    a = Sub(b"foo", b"a.*")
    b = Sub(b"foo", b"a.b")
    sl.insert(a)
    sl.insert(b)
    assert sl.match(b"foo").queues == {b"a.*": (a,), b"a.b": (b,)}


# -- duplicates, identity, remove --------------------------------------------------------


def test_sublist_overlapping_subs_yield_duplicates():
    sl = new_sublist()
    # One connection, three subscriptions (different sids) that all match.
    s1, s2, s3 = Sub(b"foo.bar"), Sub(b"foo.bar"), Sub(b"foo.*")
    for s in (s1, s2, s3):
        sl.insert(s)
    assert ids(sl.match(b"foo.bar").plain) == ids([s1, s2, s3])


def test_sublist_insert_same_object_twice_is_noop():
    sl = new_sublist()
    s = Sub(b"foo")
    sl.insert(s)
    gen = sl.generation
    sl.insert(s)
    q = Sub(b"foo", b"g")
    sl.insert(q)
    sl.insert(q)
    assert sl.count == 2
    assert sl.generation == gen + 1
    assert sl.match(b"foo") == Result((s,), {b"g": (q,)})


def test_sublist_identity_not_equality():
    sl = new_sublist()
    a = ValueSub(b"foo.*")
    b = ValueSub(b"foo.*")
    assert a == b
    sl.insert(a)
    sl.insert(b)
    assert sl.count == 2
    assert sl.remove(b)
    assert sl.match(b"foo.x").plain[0] is a
    assert not sl.remove(ValueSub(b"foo.*"))
    assert sl.count == 1


def test_sublist_remove():
    sl = new_sublist()
    a, b = Sub(b"foo.*"), Sub(b"foo.bar")
    q1, q2 = Sub(b"foo.bar", b"g"), Sub(b"foo.>", b"g")
    for s in (a, b, q1, q2):
        sl.insert(s)
    assert sl.remove(a)
    r = sl.match(b"foo.bar")
    assert r.plain == (b,)
    assert list(r.queues) == [b"g"]
    assert ids(r.queues[b"g"]) == ids([q1, q2])
    assert sl.remove(q1)
    assert sl.match(b"foo.bar") == Result((b,), {b"g": (q2,)})
    assert sl.remove(q2)
    assert sl.match(b"foo.bar") == Result((b,), {})
    assert sl.count == 1
    assert list(sl) == [b]


def test_sublist_remove_missing_returns_false():
    sl = new_sublist()
    s = Sub(b"foo.bar")
    sl.insert(s)
    gen = sl.generation
    assert not sl.remove(Sub(b"foo.bar"))  # same subject, other object
    assert not sl.remove(Sub(b"foo.baz"))
    assert not sl.remove(Sub(b"foo.bar", b"g"))  # no such queue
    assert not sl.remove(Sub(b"foo.>"))
    assert not sl.remove(Sub(b"a..b"))
    sl.insert(Sub(b"foo.bar", b"g"))
    assert not sl.remove(Sub(b"foo.bar", b"g"))  # queue exists, member does not
    assert sl.remove(s)
    assert not sl.remove(s)
    assert sl.count == 1
    assert sl.generation == gen + 2


@pytest.mark.parametrize("subject", [b"", b"a..b", b".a", b"a.", b"foo.>.bar", b">.a", b"a b"])
def test_sublist_insert_invalid_subject_raises(subject: bytes):
    sl = new_sublist()
    with pytest.raises(ValueError, match="invalid subject"):
        sl.insert(Sub(subject))
    assert sl.count == 0
    assert sl.generation == 0
    assert root_is_empty(sl)


def test_sublist_iter_yields_every_subscription():
    sl = new_sublist()
    subs = [
        Sub(b"a"),
        Sub(b"a.b"),
        Sub(b"a.*"),
        Sub(b"a.>"),
        Sub(b">"),
        Sub(b"a", b"q"),
        Sub(b"*.b", b"q"),
        Sub(b"*.b", b"r"),
    ]
    for s in subs:
        sl.insert(s)
    assert ids(sl) == ids(subs)
    assert sl.count == len(subs)


def test_sublist_node_grows_from_tuple_to_dict_keeping_order():
    """A subject's plain subscriptions: a tuple while few, a dict beyond SMALL_NODE;
    either way insertion order, identity, duplicates ignored, removal of any one."""
    sl = Sublist(make_result)
    subs = [ValueSub(b"a.b") for _ in range(3 * sublist_module.SMALL_NODE)]  # all equal
    for count, sub in enumerate(subs, 1):
        sl.insert(sub)
        sl.insert(sub)  # again: a no-op
        assert [id(s) for s in sl.match(b"a.b").plain] == [id(s) for s in subs[:count]]
    for i in (0, 5, len(subs) - 1, 3):
        assert sl.remove(subs[i])
        assert not sl.remove(subs[i])
    kept = [s for i, s in enumerate(subs) if i not in (0, 5, len(subs) - 1, 3)]
    assert [id(s) for s in sl.match(b"a.b").plain] == [id(s) for s in kept]
    assert ids(sl) == ids(kept)
    for sub in kept:
        assert sl.remove(sub)
    assert root_is_empty(sl)


def test_sublist_empty_node_pruning():
    sl = new_sublist()
    keep = Sub(b"a.b")
    sl.insert(keep)
    churn = [Sub(b"a.b.c.d"), Sub(b"a.*.x"), Sub(b"a.b.>"), Sub(b"a.b.c", b"q"), Sub(b"*.*.*")]
    for s in churn:
        sl.insert(s)
    for s in churn:
        assert sl.remove(s)
    root = sl._root
    assert list(root.literals) == [b"a"]
    a = root.literals[b"a"]
    assert root.pwc is None
    assert root.fwc is None
    assert a.pwc is None
    assert a.fwc is None
    assert list(a.literals) == [b"b"]
    b = a.literals[b"b"]
    assert b.is_empty() is False
    assert b.literals == {}
    assert b.fwc is None
    assert sl.remove(keep)
    assert root_is_empty(sl)


def test_sublist_inbox_churn_does_not_grow():
    sl = new_sublist()
    for i in range(200):
        s = Sub(b"_INBOX.%d.*" % i)
        sl.insert(s)
        sl.match(b"_INBOX.%d.x" % i)
        assert sl.remove(s)
    assert root_is_empty(sl)
    assert sl.count == 0


def test_sublist_generation_counter():
    sl = new_sublist()
    assert sl.generation == 0
    a, b = Sub(b"a"), Sub(b"b.*", b"q")
    sl.insert(a)
    sl.insert(b)
    assert sl.generation == 2
    sl.match(b"a")
    sl.clear_cache()
    assert sl.generation == 2
    sl.remove(a)
    assert sl.generation == 3
    sl.remove(a)  # not present: nothing changed
    assert sl.generation == 3
    sl.remove(b)
    assert sl.generation == 4


# -- cache ------------------------------------------------------------------------------


def test_sublist_without_shared_tails_caches_each_subject():
    sl = new_sublist()
    sl.insert(Sub(b"_INBOX.a.*"))
    first = sl.match(b"_INBOX.a.1")
    assert sl.match(b"_INBOX.a.2") is not first
    assert (sl.cache_count, sl.tail_cache_count) == (2, 0)


def test_sublist_cache_hit_returns_identical_object():
    calls = []

    def counting(plain, queues):
        calls.append(1)
        return make_result(plain, queues)

    sl = Sublist(counting)
    sl.insert(Sub(b"foo.*"))
    first = sl.match(b"foo.bar")
    built = len(calls)
    assert sl.match(b"foo.bar") is first
    assert sl.match(b"foo.bar") is first
    assert len(calls) == built
    assert sl.cache_count + sl.tail_cache_count == 1


def test_sublist_cache_stores_negative_results():
    sl = new_sublist()
    r = sl.match(b"nothing")
    assert r == Result((), {})
    assert sl.match(b"nothing") is r
    assert sl.cache_count == 1


def test_sublist_cache_literal_insert_makes_negative_positive():
    sl = new_sublist()
    assert sl.match(b"foo.bar").plain == ()
    other = sl.match(b"foo.baz")
    s = Sub(b"foo.bar")
    sl.insert(s)
    assert sl.match(b"foo.bar").plain == (s,)
    assert sl.match(b"foo.baz") is other  # untouched key survives
    assert sl.remove(s)
    assert sl.match(b"foo.bar").plain == ()
    assert sl.match(b"foo.baz") is other


def test_sublist_cache_literal_queue_insert_and_remove():
    sl = new_sublist()
    assert sl.match(b"work").queues == {}
    q = Sub(b"work", b"g")
    sl.insert(q)
    assert sl.match(b"work").queues == {b"g": (q,)}
    sl.remove(q)
    assert sl.match(b"work").queues == {}


def test_sublist_cache_wildcard_insert_drops_only_matching_keys():
    sl = new_sublist()
    sl.insert(Sub(b"keep.me"))
    subjects = [b"foo.a", b"foo.b", b"foo.a.b", b"bar.a", b"foo", b"keep.me", b"foo.*"]
    before = {s: sl.match(s) for s in subjects}
    star = Sub(b"foo.*")
    sl.insert(star)
    for s in (b"foo.a", b"foo.b", b"foo.*"):
        assert sl.match(s).plain == (star,)
    for s in (b"foo.a.b", b"bar.a", b"foo", b"keep.me"):
        assert sl.match(s) is before[s]
    full = Sub(b">")
    sl.insert(full)
    for s in subjects:
        assert full in sl.match(s).plain
    # Removing the wildcard turns the positive results negative again.
    assert sl.remove(full)
    assert sl.remove(star)
    for s in subjects:
        assert ids(sl.match(s).plain) == ids(before[s].plain)


def test_sublist_cache_wildcard_remove_invalidates():
    sl = new_sublist()
    fwc = Sub(b"orders.>", b"g")
    sl.insert(fwc)
    assert sl.match(b"orders.eu.1").queues == {b"g": (fwc,)}
    unrelated = sl.match(b"payments.1")
    sl.remove(fwc)
    assert sl.match(b"orders.eu.1").queues == {}
    assert sl.match(b"payments.1") is unrelated


def test_sublist_cache_wildcard_in_middle_invalidates():
    sl = new_sublist()
    assert sl.match(b"a.x.c").plain == ()
    kept = sl.match(b"a.x.d")
    s = Sub(b"a.*.c")
    sl.insert(s)
    assert sl.match(b"a.x.c").plain == (s,)
    assert sl.match(b"a.x.d") is kept


def test_sublist_cache_bound_and_sweep():
    sl = new_sublist(cache_max=8, cache_sweep_to=3)
    sl.insert(Sub(b">"))
    # Literal siblings make the last token matter, so each subject takes a slot.
    sl.insert(Sub(b"s.lit"))
    sl.insert(Sub(b"t.lit"))
    for i in range(8):
        sl.match(b"s.%d" % i)
    assert sl.cache_count == 8
    newest = sl.match(b"s.8")  # exceeds the bound: swept down, newest kept
    assert sl.cache_count == 3
    assert set(sl._cache) == {b"s.6", b"s.7", b"s.8"}
    assert sl.match(b"s.8") is newest
    for i in range(100):
        sl.match(b"t.%d" % i)
        assert sl.cache_count <= 8


def test_sublist_cache_defaults_follow_nats():
    sl = new_sublist()
    sl.insert(Sub(b">"))
    sl.insert(Sub(b"x.lit"))
    for i in range(1024):
        sl.match(b"x.%d" % i)
    assert sl.cache_count == 1024
    sl.match(b"x.overflow")
    assert sl.cache_count == 256


def test_sublist_tail_cache_shares_one_entry_per_prefix():
    """Reply inboxes: `_INBOX.a.*` matches every `_INBOX.a.<n>` alike, so unique
    subjects share one tail-cache entry and leave the main cache alone."""
    assert new_sublist().tail_cache_count == 0
    sl = sharing_sublist()
    inbox = Sub(b"_INBOX.a.*")
    sl.insert(inbox)
    first = sl.match(b"_INBOX.a.1")
    assert first.plain == (inbox,)
    for i in range(2, 2000):
        assert sl.match(b"_INBOX.a.%d" % i) is first
    assert (sl.cache_count, sl.tail_cache_count) == (0, 1)
    # A literal subscription on one inbox makes the last token matter again.
    exact = Sub(b"_INBOX.a.7")
    sl.insert(exact)
    assert sl.tail_cache_count == 0
    assert ids(sl.match(b"_INBOX.a.7").plain) == ids([exact, inbox])
    assert sl.match(b"_INBOX.a.8").plain == (inbox,)
    sl.remove(exact)
    assert sl.match(b"_INBOX.a.7").plain == (inbox,)
    # A one-token subject has no prefix to share.
    sl.insert(Sub(b"*"))
    assert len(sl.match(b"solo").plain) == 1


def test_sublist_prefix_cache_shares_one_entry_under_a_full_wildcard():
    """JetStream acks: `$JS.ACK.<stream>.<consumer>.<n>.<seq>...` under `$JS.ACK.>` are
    all unique, and all match alike: one prefix entry, whatever the tail."""
    sl = sharing_sublist()
    acks = Sub(b"$JS.ACK.>")
    sl.insert(acks)
    first = sl.match(b"$JS.ACK.S.C.1.1.1.0.0")
    assert first.plain == (acks,)
    for i in range(2, 2000):
        assert sl.match(b"$JS.ACK.S.C.1.%d.%d.0.0" % (i, i)) is first
    assert (sl.cache_count, sl.tail_cache_count, sl.prefix_cache_count) == (0, 0, 1)
    # Empty tokens match nothing even where the prefix is cached.
    assert sl.match(b"$JS.ACK.S..1").plain == ()
    assert sl.match(b"$JS.ACK.S.1.").plain == ()
    # A deeper subscription makes more tokens matter, and drops the entry.
    deeper = Sub(b"$JS.ACK.S.C.>")
    sl.insert(deeper)
    assert sl.prefix_cache_count == 0
    assert ids(sl.match(b"$JS.ACK.S.C.1.5.5.0.0").plain) == ids([acks, deeper])
    assert sl.match(b"$JS.ACK.T.C.1.5.5.0.0").plain == (acks,)
    assert sl.match(b"$JS.ACK.S.D.1.5.5.0.0").plain == (acks,)
    # The subject made of the prefix alone is matched on its own, not from the entry.
    sl.insert(Sub(b"$JS.ACK.*"))
    assert len(sl.match(b"$JS.ACK.S").plain) == 2
    assert len(sl.match(b"$JS.ACK.S.C.9").plain) == 2


def test_sublist_shared_prefix_names_the_tokens_a_match_depends_on():
    """What the plans of the compiled core are shared under (core/plans.py): the
    leading tokens whose prefix-cache entry answers for the subject, else 0."""
    sl = sharing_sublist()
    acks = Sub(b"$JS.ACK.S.C.>")
    sl.insert(acks)
    ack = b"$JS.ACK.S.C.1.5.5.1733600000000000000.0"
    sl.match(ack)
    assert sl.shared_prefix(ack) == len(b"$JS.ACK.S.C")
    assert sl.match(b"$JS.ACK.S.C.9.6.6.17.0") is sl.match(ack)
    assert sl.shared_prefix(b"$JS.ACK.S.C..1") == 0  # an empty token matches nothing
    assert sl.shared_prefix(b"$JS.ACK.S.C.1.") == 0
    assert sl.shared_prefix(b"$JS.ACK.S.D.1.2") == 0  # another prefix, not cached
    sl.insert(Sub(b"$JS.ACK.S.C.1.*.*.*.0"))  # later tokens count now
    sl.match(ack)
    assert sl.shared_prefix(ack) == 0
    assert new_sublist().shared_prefix(ack) == 0  # a sublist that shares nothing


def test_sublist_prefix_cache_is_only_for_shared_results():
    sl = new_sublist()
    sl.insert(Sub(b"$JS.ACK.>"))
    sl.match(b"$JS.ACK.S.C.1.1.1.0.0")
    sl.match(b"$JS.ACK.S.C.1.2.2.0.0")
    assert (sl.cache_count, sl.prefix_cache_count) == (2, 0)


def test_sublist_clear_cache():
    sl = new_sublist()
    sl.insert(Sub(b"foo"))
    r = sl.match(b"foo")
    sl.clear_cache()
    assert sl.cache_count == 0
    r2 = sl.match(b"foo")
    assert r2 == r
    assert r2 is not r


@pytest.mark.parametrize(("cache_max", "sweep_to"), [(4, 4), (4, 5), (0, 0), (4, -1)])
def test_sublist_rejects_bad_cache_bounds(cache_max: int, sweep_to: int):
    with pytest.raises(ValueError):
        Sublist(make_result, cache_max=cache_max, cache_sweep_to=sweep_to)


# -- property test against brute force ---------------------------------------------------

_PATTERN_TOKENS = [b"a", b"b", b"c", b"*"]
_SUBJECT_TOKENS = [b"a", b"b", b"c", b"*", b">", b""]

_patterns = st.builds(
    lambda toks, fwc: b".".join([*toks, b">"] if fwc else toks),
    st.lists(st.sampled_from(_PATTERN_TOKENS), min_size=0, max_size=3),
    st.booleans(),
).filter(bool)
_subjects = st.lists(st.sampled_from(_SUBJECT_TOKENS), min_size=1, max_size=6).map(b".".join)
_queues = st.sampled_from([None, None, b"q1", b"q2"])

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), _patterns, _queues),
        st.tuples(st.just("remove"), st.integers(0, 50)),
        st.tuples(st.just("match"), _subjects),
    ),
    max_size=60,
)


def _brute_force(subs: list, subject: bytes) -> tuple[Counter, dict]:
    plain: Counter = Counter()
    queues: dict[bytes, Counter] = {}
    for s in subs:
        if subject_matches(s.subject, subject):
            if s.queue is None:
                plain[id(s)] += 1
            else:
                queues.setdefault(s.queue, Counter())[id(s)] += 1
    return plain, queues


def _check(sl: Sublist, subs: list, subject: bytes) -> None:
    r = sl.match(subject)
    plain, queues = _brute_force(subs, subject)
    assert ids(r.plain) == plain, subject
    assert {q: ids(m) for q, m in r.queues.items()} == queues, subject


@settings(max_examples=400, deadline=None)
@given(_ops, st.sampled_from([(4, 1), (16, 4), (1024, 256)]), st.booleans())
def test_sublist_matches_brute_force(ops, cache_bounds, share_tails):
    sl = Sublist(
        make_result,
        cache_max=cache_bounds[0],
        cache_sweep_to=cache_bounds[1],
        share_tails=share_tails,
    )
    live: list = []
    # Longer probes, and ones with an empty token after a prefix another probe caches.
    probes = [b"a", b"a.b", b"a.*", b"*.>", b"c.c.c", b"a.b.c.a", b"a.b.c.a.b", b"a.b..c"]
    probes += [b"a.b.c.", b"c.a.b.c.a", b"c.a..", b"a.c.b.a.c.b"]
    for op in ops:
        if op[0] == "insert":
            sub = Sub(op[1], op[2])
            sl.insert(sub)
            live.append(sub)
        elif op[0] == "remove":
            if live:
                sub = live.pop(op[1] % len(live))
                assert sl.remove(sub)
                assert not sl.remove(sub)
        else:
            _check(sl, live, op[1])
        # Probe through the cache after every change, hits and misses alike.
        for p in probes:
            _check(sl, live, p)
        assert sl.count == len(live)
        assert sl.cache_count <= cache_bounds[0]
        # Nodes start out sharing one empty dict; nothing may ever be stored in it.
        assert sublist_module._SHARED_EMPTY == {}
    assert ids(sl) == ids(live)
    for sub in live:
        assert sl.remove(sub)
    assert sl.count == 0
    assert root_is_empty(sl)
