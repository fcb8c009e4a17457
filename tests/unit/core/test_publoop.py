"""The publish and mesh loops against the general path: the same client input, fed in
the same pieces to three pairs of worker shards (the compiled loops, their pure-Python
twins, and no loops at all, where the parsers take everything), gives every subscriber
on either shard the same bytes, and every connection the same counters. Messages for
shard 2's subscribers cross the ring, so the mesh loop is held to the frame parser too.

Inputs mix what the loop takes (plain canonical publishes, runs of one control line)
with everything it must leave to the parser: replies, reserved subjects, headers,
queue groups, UNSUB max, SUB max=<n> (the sub_max extension), large payloads, PINGs,
subscriptions made mid-read, and malformed operations, split at arbitrary points.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker import core
from shardbroker.core import meshloop, publoop
from shardbroker.worker import client as client_module
from shardbroker.worker import server as server_module
from tests.helpers.fakes import ShardPair, connect, output, shard_pair

# (publish loop, mesh loop) of each configuration; None: not available.
LOOPS: dict[str, Any] = {
    "general": (None, None),  # no loops: the parsers take everything
    "pure": (publoop.pub_loop, meshloop.mesh_loop),
    "compiled": (core.pub_loop, core.mesh_loop) if core.IMPLEMENTATION == "compiled" else None,
}

SUBJECTS = [
    b"a",
    b"b.c",
    b"b.d",
    b"q.x",
    b"q.y",
    b"cap.1",
    b"_INBOX.r",
    b"$SYS.x",
    b"none",
    b"a.b.c",
    b"z.1.2",  # peers only, under a shared prefix
    b"z.3.4",
    b"b.c.d",
]

# Subscriptions on each shard: (subject, queue or None, limit or 0). Shard 1 limits
# with UNSUB <sid> <max>, shard 2 with SUB ... max=<n> (the sub_max extension).
# Queue groups: "g" on both shards (two local members on shard 1, one limited on
# shard 2), "h" on shard 1 only (one member, with an UNSUB max), "k" on shard 2 only,
# "p" on both (shard 2's only member limited: picks of shard 2 made before shard 1
# hears it left are passed back, as QMSGs).
SUBS = {
    1: [
        (b"a", None, 0),
        (b"b.*", None, 0),
        (b"q.x", b"g", 0),
        (b"cap.1", None, 3),
        (b"q.*", b"g", 0),
        (b"q.x", b"h", 4),
        (b"q.y", b"p", 0),
    ],
    2: [
        (b"a", None, 0),
        (b"*.>", None, 0),
        (b"q.*", b"g", 0),
        (b"b.d", None, 0),
        (b"q.x", b"k", 0),
        (b"b.c", None, 2),
        (b"q.*", b"g", 3),
        (b"q.y", b"p", 2),
    ],
}


def _leave_to_parser(*args: Any) -> int:
    return args[2]  # pub_loop's position argument: nothing taken


def _leave_to_frame_parser(*args: Any) -> int:
    return args[1]  # mesh_loop's position argument: nothing taken


@contextmanager
def pair_with(loop_name: str) -> Iterator[tuple[ShardPair, Any, dict[int, list[Any]]]]:
    """Two shards with the subscribers of SUBS and a publisher on shard 1, the client
    module using the given loop."""
    pub, mesh = LOOPS[loop_name]
    with ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setattr(client_module, "pub_loop", pub or _leave_to_parser)
        mp.setattr(server_module, "mesh_loop", mesh or _leave_to_frame_parser)
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        pair = stack.enter_context(shard_pair(loop))
        subscribers: dict[int, list[Any]] = {1: [], 2: []}
        for shard, server in ((1, pair.one), (2, pair.two)):
            for sid, (subject, queue, max_msgs) in enumerate(SUBS[shard], 1):
                sub = connect(server, sub_max=True)
                q = b" " + queue if queue else b""
                if max_msgs and shard == 2:
                    sub.data_received(b"SUB %s%s %d max=%d\r\n" % (subject, q, sid, max_msgs))
                else:
                    sub.data_received(b"SUB %s%s %d\r\n" % (subject, q, sid))
                    if max_msgs:
                        sub.data_received(b"UNSUB %d %d\r\n" % (sid, max_msgs))
                assert sub.subs[b"%d" % sid].max == max_msgs
                subscribers[shard].append(sub)
        pair.settle()
        # It wants "no responders" answers to requests nobody gets, on its inbox.
        publisher = connect(pair.one, headers=True, no_responders=True, sub_max=True)
        publisher.data_received(b"SUB reply.* 99\r\n")
        pair.settle()
        yield pair, publisher, subscribers


def run(loop_name: str, pieces: list[bytes]) -> tuple[list[bytes], list[tuple[int, ...]]]:
    """Feed the pieces; everything each connection received, and its counters. Queue
    groups pick members at random: the same seed for every run picks alike."""
    random.seed(7)
    with pair_with(loop_name) as (pair, publisher, subscribers):
        for piece in pieces:
            publisher.data_received(piece)
            pair.settle()
        conns = [publisher, *subscribers[1], *subscribers[2]]
        received = [output(c) for c in conns]
        counters = [(c.in_msgs, c.in_bytes, c.out_msgs, c.out_bytes, c.closed) for c in conns]
        return received, counters


def check_same(pieces: list[bytes]) -> None:
    reference = run("general", pieces)
    for name in ("pure", "compiled"):
        if LOOPS[name] is None:
            continue
        assert run(name, pieces) == reference, name


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- operations ------------------------------------------------------------------------

_subjects = st.sampled_from(SUBJECTS)


@st.composite
def _pub(draw: Callable[..., Any]) -> bytes:
    subject = draw(_subjects)
    size = draw(st.sampled_from([0, 1, 5, 16, 200, 1025, 2000]))
    payload = bytes(draw(st.integers(0, 255)) % 256 for _ in range(min(size, 3))) * (size // 3 + 1)
    payload = payload[:size]
    if draw(st.booleans()) and size:
        payload = b"\r\n" + payload[2:]  # a payload holding CRLF
    reply = b" reply.%d" % draw(st.integers(0, 3)) if draw(st.integers(0, 5)) == 0 else b""
    return b"PUB %s%s %d\r\n%s\r\n" % (subject, reply, size, payload)


@st.composite
def _run(draw: Callable[..., Any]) -> bytes:
    return draw(_pub()) * draw(st.integers(2, 5))


_other = st.sampled_from(
    [
        b"PING\r\n",
        b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        b"SUB b.c 90\r\n",
        b"UNSUB 90\r\n",
        b"SUB a 91 max=2\r\n",
        b"SUB q.* g 92 max=1\r\n",
        b"SUB a 93 max=0\r\n",  # the extension's non-fatal error
        b"pub a 2\r\nhi\r\n",  # lower case: the parser's exact path
        b"PUB  a 2\r\nhi\r\n",  # two blanks
        b"PUB a\t2\r\nhi\r\n",
        b"PUB a 0002\r\nhi\r\n",  # a size token with leading zeros, kept as sent
        b"PUB a 2 \r\nhi\r\n",
    ]
)
_bad = st.sampled_from(
    [
        b"PUB a 2\r\nhello\r\n",  # payload longer than declared
        b"PUB a x\r\n",
        b"PUB a 2\r\nhiXX",
        b"PUB a 9999999999\r\n",
    ]
)
_ops = st.lists(st.one_of(_pub(), _run(), _other), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(_ops, st.lists(st.integers(0, 10_000), max_size=6))
def test_publoop_gives_what_the_general_path_gives(ops: list[bytes], cuts: list[int]) -> None:
    check_same(split(b"".join(ops), cuts))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(_ops, _bad, st.lists(st.integers(0, 10_000), max_size=4))
def test_publoop_leaves_bad_input_to_the_parser(
    ops: list[bytes], bad: bytes, cuts: list[int]
) -> None:
    """Malformed input closes the connection with the parser's -ERR, after exactly the
    messages before it were delivered."""
    check_same(split(b"".join(ops) + bad + b"PUB a 1\r\nx\r\n", cuts))


@pytest.mark.parametrize("loop_name", ["pure", "compiled"])
def test_publoop_varied_subjects_reach_both_shards(loop_name: str) -> None:
    if LOOPS[loop_name] is None:
        pytest.skip("the compiled core is not built")
    stream = b"".join(b"PUB %s 1\r\n%d\r\n" % (SUBJECTS[i % 5], i % 10) for i in range(50))
    received, _ = run(loop_name, [stream])
    assert received == run("general", [stream])[0]
    assert any(b"MSG b.d" in r for r in received)  # routed to shard 2 too


@pytest.mark.parametrize("loop_name", ["pure", "compiled"])
def test_publoop_stale_queue_picks_are_passed_on_alike(loop_name: str) -> None:
    """One read of q.y publishes: shard 1 keeps picking shard 2 for group "p" after
    its limited member there left; shard 2 passes those back, on every path, and the
    group gets every message once (with "g": two deliveries per message in all)."""
    if LOOPS[loop_name] is None:
        pytest.skip("the compiled core is not built")
    stream = b"".join(b"PUB q.y %d\r\n%s\r\n" % (1 + i % 2, b"z" * (1 + i % 2)) for i in range(40))
    received, _ = run(loop_name, [stream])
    assert received == run("general", [stream])[0]
    assert sum(r.count(b"MSG q.y ") for r in received) == 40 * 2 + 40  # p, g; *.> plain


def test_publoop_compiled_is_built() -> None:
    """`pip install` builds the extension (make install, CI); the twin is a reference,
    not a silent fallback, here."""
    assert core.IMPLEMENTATION == "compiled"


def test_plans_do_not_keep_a_closed_connection() -> None:
    """Once a subscription goes, its account's plans are dropped at once, so they do not
    hold the connection until the account's next message."""
    with pair_with("compiled" if LOOPS["compiled"] else "pure") as (pair, publisher, subs):
        publisher.data_received(b"PUB a 1\r\nx\r\n")
        pair.settle()
        plans = pair.one.router.plans[publisher.account]
        assert len(plans) == 1
        subs[1][0].connection_lost(None)  # a subscriber of "a" on shard 1 goes
        assert len(plans) == 0
