"""The compiled loops on arbitrary bytes: they never crash, never read or take past the
end of the buffer, and do exactly what their pure-Python twins do (the position they
stop at, what they deliver, what they hand to the run paths), whatever the input:
random bytes, and near-valid frames with one byte changed, cut or repeated."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker import core
from shardbroker.core import budget, meshloop, plans, publoop, storeloop

pytestmark = pytest.mark.skipif(
    core.IMPLEMENTATION != "compiled", reason="the compiled core is not built"
)


def _conn(output: type) -> type:
    class Conn(output):  # type: ignore[misc, valid-type]
        """What the loops touch of a connection."""

        def __init__(self) -> None:
            super().__init__()
            self.in_msgs = 0
            self.in_bytes = 0
            self.echo = True
            self.no_responders = True

    return Conn


class PlainConn:
    """A connection the loops know nothing of: every field a Python attribute."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.out_msgs = 0
        self.out_bytes = 0
        self.in_msgs = 0
        self.in_bytes = 0
        self.echo = True
        self.no_responders = True


class Sublist:
    generation = 0


# The objects the loops are handed: the compiled core's (C structs the compiled loops
# read directly) or the twins' (which they touch as any Python object).
OBJECTS = {
    "compiled": (core.Plans, core.Subscription, _conn(core.Output)),
    "pure": (plans.Plans, plans.Subscription, _conn(plans.Output)),
    "plain": (plans.Plans, plans.Subscription, PlainConn),
}


def world(objects: str) -> tuple[Any, Any, list[list[bytes]], set[Any], list[Any], list[Any]]:
    """A publisher; one subscriber on every subject but "n.*" (no plan) and "e.*"
    (nobody interested); on "q.*" also a queue group "g" of two local members and a
    peer (weight 2), and a group "h" of the peer alone; a peer with plain interest."""
    plans_type, subscription, conn = OBJECTS[objects]
    subs = [subscription(conn(), b"$G", b"x", None, b"%d" % i) for i in (1, 2, 3)]
    sub, first, second = subs
    sub.max = 7  # some deliveries reach the UNSUB max
    second.max = 3
    calls: list[Any] = []

    def build(subject: bytes) -> Any:
        if subject.startswith(b"n."):
            return None
        if subject.startswith(b"e."):
            return (), (), b"", ()  # nobody interested
        if subject.startswith(b"p."):
            return (), (1,), b"", ()  # a peer only: no subject in the plan
        head = b"MSG " + subject + b" "
        targets = ((sub, sub.client, head + b"1"),)
        queues: tuple[Any, ...] = ()
        if subject.startswith(b"q."):
            local = ((first, first.client, head + b"2"), (second, second.client, head + b"3"))
            queues = (
                plans.queue_plan(b"g", (*local, 1), (1, 2, 4), 4, local),
                plans.queue_plan(b"h", (1,), (3,), 3, ()),
            )
        return targets, (1,), b"RMSG $G " + subject + b" ", queues

    def share(subject: bytes) -> int:
        """ "p.<x>.<more>" matches as "p.<x>" decides (a sublist's prefix cache)."""
        tokens = subject.split(b".")
        if tokens[0] != b"p" or len(tokens) < 3 or b"" in tokens:
            return 0
        return len(tokens[0]) + 1 + len(tokens[1])

    account_plans = plans_type(Sublist(), build, b"$G", share)
    return conn(), account_plans, [[], []], set(), calls, subs


def delivered(subs: list[Any]) -> list[Any]:
    """What each subscription's client got (its output as the bytes a flush writes: the
    loops may hand it one message in pieces), and the counters."""
    return [
        (b"".join(s.client.out), s.client.out_msgs, s.client.out_bytes, s.delivered) for s in subs
    ]


def outcome(which: str, data: bytes, pos: int, echo: bool = True, objects: str = "") -> Any:
    publisher, account_plans, batches, pending, calls, conns = world(objects or which)
    publisher.echo = echo
    publisher.no_responders = echo  # both ways, with the echo variations

    def pub_run(*args: Any) -> None:
        calls.append(("run", args))

    def unsubscribe(sub: Any) -> None:
        calls.append(("unsub", sub.delivered))

    loop = core.pub_loop if which == "compiled" else publoop.pub_loop
    random.seed(len(data))
    end = loop(
        publisher, data, pos, pub_run, account_plans, batches, pending, unsubscribe, 4096, 2048
    )
    return end, delivered(conns), batches, calls, publisher.in_msgs, publisher.in_bytes


def mesh_outcome(which: str, data: bytes, pos: int, objects: str = "") -> Any:
    _, account_plans, _, pending, calls, conns = world(objects or which)

    def rmsg_run(*args: Any) -> None:
        calls.append(("run", args))

    def unsubscribe(sub: Any) -> None:
        calls.append(("unsub", sub.delivered))

    loop = core.mesh_loop if which == "compiled" else meshloop.mesh_loop
    random.seed(len(data))
    end = loop(data, pos, lambda account: account_plans, rmsg_run, pending, unsubscribe)
    return end, delivered(conns), calls


_frames = st.sampled_from(
    [
        b"PUB a 2\r\nhi\r\n",
        b"PUB a 2\r\nhi\r\nPUB a 2\r\nho\r\n",
        b"PUB q.x 1\r\nx\r\n",
        b"PUB q.y 3\r\nabc\r\nPUB q.z 1\r\nx\r\n",
        b"PUB n.x 1\r\nx\r\n",
        b"PUB p.a.1 1\r\nx\r\nPUB p.a.2 r 2\r\nxy\r\nPUB p.b 1\r\nx\r\nPUB p.a..3 1\r\nx\r\n",
        b"PUB a 1100\r\n" + b"L" * 1100 + b"\r\n",
        (b"PUB q.x 1100\r\n" + b"L" * 1100 + b"\r\n") * 2,
        b"PUB a 2100\r\n" + b"L" * 2100 + b"\r\n",
        b"PUB a 02\r\nhi\r\n",
        b"PUB b.c 0\r\n\r\n",
        b"PUB _x 1\r\nx\r\n",
        b"PUB a r 1\r\nx\r\n",
        b"PUB e.x r 1\r\nx\r\nPUB e.x 1\r\nx\r\n",
        b"PUB q.x _INBOX.r.1 1\r\nx\r\nPUB q.x _INBOX.r.1 1\r\ny\r\n",
        b"PUB a _R_.x 1\r\nx\r\nPUB a $JS.ACK.x 1\r\nx\r\nPUB a _GR_.x 1\r\nx\r\n",
        b"PUB _GR_.a 1\r\nx\r\nPUB $NRG.a 1\r\nx\r\nPUB _INBOX.a 1\r\nx\r\n",
        b"PUB a  r 1\r\nx\r\nPUB a r  1\r\nx\r\nPUB a r\t 1\r\nx\r\n",
        b"RMSG $G a 2\r\nhi\r\n",
        b"RMSG $G a 2\r\nhi\r\nRMSG $G a 2\r\nho\r\n",
        b"RMSG $G q.x 1\r\nx\r\n",
        b"RMSG $G q.x | g 1\r\nx\r\nRMSG $G q.y | h g 2\r\nxy\r\n",
        b"RMSG $G q.x | g 1\r\nx\r\nRMSG $G q.x | g 1\r\ny\r\n",
        b"RMSG $G q.x |  g 1\r\nx\r\n",
        b"RMSG $G q.x + r g 1\r\nx\r\n",
        b"RMSG $G n.x | g 1\r\nx\r\n",
        b"RMSG $G q.x | g 1100\r\n" + b"L" * 1100 + b"\r\n",
        (b"RMSG $G a 1100\r\n" + b"L" * 1100 + b"\r\n") * 2,
        b"RMSG $G a r 1\r\nx\r\n",
        b"RMSG $G $JS.ACK.S.c.1.5.7.17.0 0\r\n\r\nRMSG $G $JS.ACK.S.c.1.6.8.17.0 4\r\n+ACK\r\n",
        b"RMSG $G $JS.ACK.S.d.1.5.7.17.0 0\r\n\r\nRMSG $G $JS.ACK.S.c.1.x.8.17.0 0\r\n\r\n",
        b"RMSG $G a r 1\r\nx\r\nRMSG $G a r 1\r\ny\r\nRMSG $G a + 1\r\nx\r\n",
        b"RMSG $G q.x + r g h 1\r\nx\r\nRMSG $G q.x + r 1\r\nx\r\n",
        b"RMSG $G q.x + r g 1\r\nx\r\nRMSG $G q.x + r g 1\r\ny\r\n",
        b"RMSG $G a | 1\r\nx\r\nRMSG $G a r\x01 1\r\nx\r\n",
        b"PING\r\n",
    ]
)


@st.composite
def _mutated(draw: Any) -> bytes:
    data = bytearray(b"".join(draw(st.lists(_frames, min_size=1, max_size=8))))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 2))
        if kind == 0 and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == 1:
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
    return bytes(data)


_inputs = st.one_of(st.binary(max_size=300), _mutated())


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(_inputs, st.integers(0, 40))
def test_core_pub_loop_matches_its_twin_on_any_bytes(data: bytes, pos: int) -> None:
    pos = min(pos, len(data))
    compiled = outcome("compiled", data, pos)
    assert pos <= compiled[0] <= len(data)
    assert compiled == outcome("pure", data, pos)
    assert outcome("compiled", data, pos, echo=False) == outcome("pure", data, pos, echo=False)
    # The compiled loop with the twins' objects: its generic branches.
    assert outcome("compiled", data, pos, objects="plain") == outcome("pure", data, pos)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(_inputs, st.integers(0, 40))
def test_core_mesh_loop_matches_its_twin_on_any_bytes(data: bytes, pos: int) -> None:
    pos = min(pos, len(data))
    compiled = mesh_outcome("compiled", data, pos)
    assert pos <= compiled[0] <= len(data)
    assert compiled == mesh_outcome("pure", data, pos)
    assert mesh_outcome("compiled", data, pos, objects="plain") == mesh_outcome("pure", data, pos)


def store_outcome(which: str, data: bytes, pos: int) -> Any:
    """The storage loop without and with a taker of ack runs."""
    calls: list[Any] = []

    def on_message(*args: Any) -> None:
        calls.append(args)

    def on_acks(*args: Any) -> None:
        calls.append(("acks", *args))

    loop = core.store_loop if which == "compiled" else storeloop.store_loop
    plain = loop(data, pos, on_message)
    return plain, loop(data, pos, on_message, on_acks), calls


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(_inputs, st.integers(0, 40))
def test_core_store_loop_matches_its_twin_on_any_bytes(data: bytes, pos: int) -> None:
    pos = min(pos, len(data))
    compiled = store_outcome("compiled", data, pos)
    assert pos <= compiled[0][0] <= len(data)
    assert compiled == store_outcome("pure", data, pos)


def budget_outcome(which: str, data: bytes, pos: int) -> Any:
    """The publish budget scan, with a budget and options drawn from the input's bytes."""
    scan = core.pub_budget if which == "compiled" else budget.pub_budget
    msgs = data[-1] % 8 if data else 0
    nbytes = (data[-2] if len(data) > 1 else 0) * 4
    connect = len(data) > 2 and bool(data[-3] & 1)
    return scan(data, pos, msgs, nbytes, 64, 256, connect)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(_inputs, st.integers(0, 40))
def test_core_budget_scan_matches_its_twin_on_any_bytes(data: bytes, pos: int) -> None:
    pos = min(pos, len(data))
    compiled = budget_outcome("compiled", data, pos)
    assert pos <= compiled[0] <= len(data)
    assert compiled == budget_outcome("pure", data, pos)


CORPUS = Path(__file__).parent / "corpus" / "core"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_core_corpus_replays(path: Path) -> None:
    """The fuzzer's corpus (tests/fuzz/atheris_core.py, `make fuzz`), replayed."""
    data = path.read_bytes()
    for pos in (0, 1, min(len(data), 7)):
        assert outcome("compiled", data, pos) == outcome("pure", data, pos)
        assert budget_outcome("compiled", data, pos) == budget_outcome("pure", data, pos)
        assert mesh_outcome("compiled", data, pos) == mesh_outcome("pure", data, pos)
        assert store_outcome("compiled", data, pos) == store_outcome("pure", data, pos)
