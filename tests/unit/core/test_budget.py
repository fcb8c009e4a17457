"""The publish budget scan (core/budget.py) and its compiled twin: where a rate-limited
read is cut, for every operation the client parser knows, whole or cut anywhere."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker import core
from shardbroker.core import budget
from shardbroker.core.budget import CONNECT, DONE, PARSER, PARTIAL, SPENT

SCANS = {"pure": budget.pub_budget}
if core.IMPLEMENTATION == "compiled":
    SCANS["compiled"] = core.pub_budget

OPS = [
    b"PUB a 5\r\nhello\r\n",
    b"pub\tb.c  reply 3\r\nabc\r\n",
    b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    b"hpub h r 12 12\r\nNATS/1.0\r\n\r\n\r\n",
    b"SUB a 1\r\n",
    b"UNSUB 1 5\r\n",
    b"PING\r\n",
    b"PONG\n",
    b'CONNECT {"verbose":false}\r\n',
    b"PUB empty 0\r\n\r\n",
    b"PUB trailing 2 \t\r\nab\r\n",
    b"PUBX not.a.publish\r\n",
    b"connect {}\n",
]
BAD = [
    b"PUB a 1234567890\r\n",  # a size of 10 digits
    b"PUB a 99\r\n",  # over max_payload (64 below)
    b"PUB a x\r\n",  # no size
    b"PUB\r\n",
    b" PUB a 1\r\nx\r\n",  # a leading blank
    b"\r\n",
]
# Lines the parser refuses, but whose last argument is a size: the scan cuts by it (the
# parser closes the connection when it gets there, wherever the cut is).
REFUSED_LATER = [
    b"PUB a b c 1\r\nx\r\n",  # too many arguments
    b"HPUB h 5 3\r\nabc\r\n",  # headers larger than the message
]


def scan(name: str, data: bytes, msgs: int = 1 << 40, nbytes: int = 1 << 40, connect: bool = False):
    return SCANS[name](data, 0, msgs, nbytes, 128, 64, connect)


@pytest.mark.parametrize("name", SCANS)
def test_budget_takes_whole_operations_within_the_budget(name: str) -> None:
    data = b"".join(OPS)
    assert scan(name, data) == (len(data), 6, 5 + 3 + 14 + 12 + 2, DONE)
    # Two messages: the scan stops at the third publish, before it.
    third = data.index(b"HPUB h 12")
    assert scan(name, data, msgs=2) == (third, 2, 8, SPENT)
    assert scan(name, data, msgs=4) == (data.index(b"PUB empty"), 4, 8 + 14 + 12, SPENT)
    # Bytes: a publish is taken while any byte is left, so it may overdraw.
    assert scan(name, data, nbytes=1) == (data.index(b"pub\tb.c"), 1, 5, SPENT)
    assert scan(name, data, nbytes=0) == (0, 0, 0, SPENT)
    # Other operations pass with nothing left, up to the next publish.
    assert scan(name, b"PING\r\nSUB a 1\r\nPUB a 1\r\nx\r\n", msgs=0) == (15, 0, 0, SPENT)
    assert scan(name, b"PING\r\nSUB a 1\r\n", msgs=0) == (15, 0, 0, DONE)


@pytest.mark.parametrize("name", SCANS)
def test_budget_stops_before_what_has_not_arrived_and_after_connect(name: str) -> None:
    assert scan(name, b"PUB a 5\r\nhello\r\nPUB a 5\r\nhel") == (16, 1, 5, PARTIAL)
    assert scan(name, b"PUB a 5\r\nhello\r\nSUB a") == (16, 1, 5, PARTIAL)
    data = b"CONNECT {}\r\nPUB a 1\r\nx\r\n"
    assert scan(name, data, connect=True) == (12, 0, 0, CONNECT)
    assert scan(name, data, connect=False) == (len(data), 1, 1, DONE)


@pytest.mark.parametrize("name", SCANS)
@pytest.mark.parametrize("bad", BAD)
def test_budget_leaves_what_the_parser_refuses_to_the_parser(name: str, bad: bytes) -> None:
    data = b"PUB a 1\r\nx\r\n" + bad + b"PUB a 1\r\nx\r\n"
    assert scan(name, data) == (len(data), 1, 1, PARSER)
    for refused in REFUSED_LATER:
        data = b"PUB a 1\r\nx\r\n" + refused
        assert scan(name, data) == (len(data), 2, 1 + int(refused.split(b"\r")[0][-1:]), DONE)
    # A control line longer than the parser takes, even before its end arrives.
    long = b"PUB a" + b"b" * 200
    assert scan(name, long) == (len(long), 0, 0, PARSER)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(st.sampled_from(OPS + BAD + REFUSED_LATER), max_size=12),
    cut=st.integers(0, 400),
    msgs=st.integers(0, 6),
    nbytes=st.integers(0, 60),
    connect=st.booleans(),
)
def test_budget_twins_agree_and_cut_on_operation_boundaries(
    ops: list[bytes], cut: int, msgs: int, nbytes: int, connect: bool
) -> None:
    data = b"".join(ops)[:cut]
    results = {name: scan(name, data, msgs, nbytes, connect) for name in SCANS}
    assert len(set(results.values())) == 1, results
    end, used_msgs, used_bytes, stop = results["pure"]
    if stop != PARSER:
        # Whatever was taken is whole operations: rescanning it takes all of it.
        again = scan("pure", data[:end])
        assert again[0] == end and again[1] == used_msgs and again[2] == used_bytes
        assert used_msgs <= msgs or msgs == 0


def test_budget_random_reads_add_up_to_the_whole() -> None:
    """Fed in random pieces, carrying what is cut, the scan takes every message once."""
    rng = random.Random(7)
    ops = [rng.choice(OPS) for _ in range(300)]
    data = b"".join(ops)
    for name in SCANS:
        carry = b""
        total = 0
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 40)
            piece = carry + data[pos : pos + step]
            pos += step
            end, used, _, stop = scan(name, piece, msgs=rng.randint(0, 3))
            assert stop in (DONE, PARTIAL, SPENT)
            total += used
            carry = piece[end:]
        while carry:
            end, used, _, stop = scan(name, carry)
            total += used
            carry = carry[end:]
        assert total == sum(op.upper().startswith((b"PUB ", b"PUB\t", b"HPUB ")) for op in ops)
