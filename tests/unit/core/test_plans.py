"""The compiled plans (core/_plans.pyx) against their twin (core/plans.py): the same
plan for every subject, builds on the same misses, kept and dropped alike (generation
changes, inboxes, the MAX_PLANS cap), and subscriptions with the same fields."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from shardbroker import core
from shardbroker.core import plans

pytestmark = pytest.mark.skipif(
    core.IMPLEMENTATION != "compiled", reason="the compiled core is not built"
)


class Sublist:
    def __init__(self) -> None:
        self.generation = 0


def _pair() -> tuple[Sublist, list[Any]]:
    """A sublist and, per implementation, its Plans with the builds they asked for."""
    sublist = Sublist()
    made = []
    for plans_type in (core.Plans, plans.Plans):
        builds: list[bytes] = []

        def build(subject: bytes, builds: list[bytes] = builds) -> Any:
            builds.append(subject)
            return None if subject.endswith(b".none") else ((subject,), (), b"", ())

        made.append((plans_type(sublist, build), builds))
    return sublist, made


def _ask(made: list[Any], subject: bytes) -> None:
    answers = [p.plan(subject) for p, _ in made]
    assert answers[0] == answers[1]
    compiled, pure = made[0][1], made[1][1]
    assert len(compiled) == len(pure)
    assert compiled[-1:] == pure[-1:]


def test_plans_build_once_and_keep() -> None:
    _, made = _pair()
    subjects = [b"s.%d" % i for i in range(3000)] + [b"x.none", b"", b"a" * 300]
    for _ in range(2):
        for subject in subjects:
            _ask(made, subject)
    assert made[0][1] == subjects  # each built once, then kept (the table grew)
    assert len(made[0][0]) == len(subjects)


def test_plans_drop_everything_when_the_generation_moves() -> None:
    sublist, made = _pair()
    _ask(made, b"a")
    sublist.generation += 1
    _ask(made, b"a")
    _ask(made, b"a")
    assert made[0][1] == [b"a", b"a"]


def test_plans_do_not_keep_inboxes_and_acks() -> None:
    _, made = _pair()
    for _ in range(3):
        _ask(made, b"_INBOX.abc.1")
        _ask(made, b"$JS.ACK.S.c.1.5.5.1733600000000000000.0")
    assert made[0][1] == [b"_INBOX.abc.1", b"$JS.ACK.S.c.1.5.5.1733600000000000000.0"] * 3
    assert len(made[0][0]) == 0


def test_plans_start_over_past_the_cap() -> None:
    _, made = _pair()
    for i in range(plans.MAX_PLANS + 5):
        _ask(made, b"c.%d" % i)
    _ask(made, b"c.0")  # dropped at the cap: built again
    assert made[0][1][-1] == b"c.0"
    assert len(made[0][0]) == 6


def test_compiled_subscription_reads_as_the_twin() -> None:
    fields = ("client", "account", "subject", "queue", "sid", "max", "delivered", "checked")
    client = object()
    subs = [
        kind(client, b"$G", b"a.b", b"q", b"7") for kind in (core.Subscription, plans.Subscription)
    ]
    for sub in subs:
        sub.max = 5
        sub.delivered += 2
        sub.checked = 3
    assert [tuple(getattr(s, f) for f in fields) for s in subs] == [
        (client, b"$G", b"a.b", b"q", b"7", 5, 2, 3)
    ] * 2
    assert len({subs[0], subs[0]}) == 1  # hashable, by identity


def test_plans_clear_drops_everything_now() -> None:
    _, made = _pair()
    for subject in (b"a", b"b"):
        _ask(made, subject)
    for p, _ in made:
        p.clear()
        p.clear()  # nothing left: still fine
    _ask(made, b"a")
    assert made[0][1] == [b"a", b"b", b"a"]
    assert len(made[0][0]) == 1


def test_compiled_plans_let_the_collector_break_cycles() -> None:
    """What the table keeps is visible to the cyclic GC: a plan that refers back to its
    Plans (as a client does, through the router) is collected with it."""

    class Thing:
        plans: Any = None

    made = {"thing": Thing()}

    def build(subject: bytes) -> Any:
        return ((made["thing"],), (), b"", ())

    compiled = core.Plans(Sublist(), build)
    made["thing"].plans = compiled
    compiled.plan(b"a")
    gone = weakref.ref(made.pop("thing"))
    del compiled
    gc.collect()
    assert gone() is None


def test_plans_share_a_peers_only_plan_under_its_prefix() -> None:
    """A plan that names no subject is kept under the prefix ``share`` gives, and found
    there by every subject that extends it, in both implementations alike."""
    sublist = Sublist()
    made = []
    for plans_type in (core.Plans, plans.Plans):
        builds: list[bytes] = []

        def build(subject: bytes, builds: list[bytes] = builds) -> Any:
            builds.append(subject)
            return (), (2,), b"", ()

        def share(subject: bytes) -> int:
            return 6 if subject.startswith(b"ack.s1.") and subject.count(b".") >= 2 else 0

        made.append((plans_type(sublist, build, b"$G", share), builds))
    for subject in (b"ack.s1.1", b"ack.s1.2.x", b"ack.s1", b"ack.s1..3", b"ack.s1.", b"ack.s2.1"):
        _ask(made, subject)
    # Built: the first ack.s1.*, then each subject the prefix cannot answer for.
    assert made[0][1] == [b"ack.s1.1", b"ack.s1", b"ack.s1..3", b"ack.s1.", b"ack.s2.1"]
    sublist.generation += 1
    _ask(made, b"ack.s1.9")
    assert made[0][1][-1] == b"ack.s1.9"  # the generation moved: built again
