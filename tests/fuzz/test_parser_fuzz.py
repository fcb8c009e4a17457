"""Property tests of the client parser (STYLE.md section 6, protocol.md sections 2, 5-8).

1. Any bytes, split any way: only ProtocolError is ever raised, and the ops recorded
   (and the error) are the same however the input is split.
2. Generated valid streams of PUB/HPUB/SUB/UNSUB/PING/PONG/CONNECT parse to exactly the
   generated ops, however split (SUBs with the sub_max extension's limits among them).
"""

from __future__ import annotations

import itertools
import json
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shardbroker.errors import ProtocolError
from shardbroker.protocol.parser import ClientParser
from tests.unit.protocol.parser_cases import (
    PING,
    PONG,
    Closed,
    Op,
    Outcome,
    Recorder,
    connect,
    hpub,
    pub,
    sub,
    unsub,
)

FUZZ = settings(max_examples=300, deadline=None)


class Limits:
    def __init__(
        self, headers: bool, max_control_line: int, max_payload: int, sub_max: bool = False
    ) -> None:
        self.headers = headers
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        self.sub_max = sub_max

    def __repr__(self) -> str:
        fields = (self.headers, self.max_control_line, self.max_payload, self.sub_max)
        return f"Limits{fields}"


DEFAULT = Limits(True, 4096, 1024 * 1024, sub_max=True)


def replay(chunks: list[bytes], limits: Limits) -> Outcome:
    """Feed the reads; anything but ProtocolError escapes and fails the test."""
    recorder = Recorder()
    parser = ClientParser(recorder, limits.max_control_line, limits.max_payload)
    parser.headers = limits.headers
    parser.sub_max = limits.sub_max
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except ProtocolError as exc:
        return recorder.ops, Closed(exc.wire_text)
    return recorder.ops, None


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` cut into reads at arbitrary points (sometimes byte by byte)."""
    if len(data) > 1 and draw(st.integers(0, 9)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=16))
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def check_split_invariant(data: bytes, chunks: list[bytes], limits: Limits) -> None:
    assert replay(chunks, limits) == replay([data], limits)


# -- 1. arbitrary bytes -----------------------------------------------------------------

FRAGMENTS = [
    b"PUB",
    b"pub",
    b"HPUB",
    b"SUB",
    b"UNSUB",
    b"PING",
    b"PONG",
    b"CONNECT",
    b"INFO",
    b"+OK",
    b"-ERR",
    b"MSG",
    b" ",
    b"  ",
    b"\t",
    b"\r\n",
    b"\n",
    b"\r",
    b"foo",
    b"q",
    b"0",
    b"1",
    b"3",
    b"05",
    b"12",
    b"-1",
    b"+2",
    b"99999",
    b"1234567890",
    b"NATS/1.0\r\n\r\n",
    b"{}",
    b"max=",
    b"max=1",
    b"\x00",
    b"\x0b",
    b"\xff",
]

protocolish = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=4), max_size=60).map(
    b"".join
)
limits = st.builds(
    Limits,
    headers=st.booleans(),
    max_control_line=st.sampled_from([8, 24, 4096]),
    max_payload=st.sampled_from([0, 8, 1024]),
    sub_max=st.booleans(),
)


@st.composite
def inputs(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(st.binary(max_size=200) | protocolish)
    return data, draw(splits(data))


@FUZZ
@given(inputs(), limits)
@example((b"PING\r\n\r", [b"PING\r\n\r"]), DEFAULT)
@example((b"SUB abcdef 1\r\n", [b"SUB abcdef 1\r", b"\n"]), Limits(False, 8, 0))
@example((b"\x0bSUB", [b"\x0bSU", b"B"]), Limits(False, 8, 0))
@example((b"PONGxxxxxxxxxxxxxxxx\r\n", [b"PONGxxxxxxxxxxxxxxxx", b"\r\n"]), Limits(False, 8, 0))
@example((b"PUB foo 3\r\nabc\r\n", [b"PUB foo 3\r\n", b"a", b"bc\r\n"]), DEFAULT)
@example((b"PUB foo 3\r\nabcd\r\n", [b"PUB f", b"oo 3\r\nab", b"cd\r\n"]), DEFAULT)
@example((b"SUB " + b"a" * 40, [b"SUB ", b"a" * 20, b"a" * 20]), Limits(False, 24, 8))
def test_fuzz_parser_any_bytes_any_split(inp: tuple[bytes, list[bytes]], limits: Limits) -> None:
    data, chunks = inp
    check_split_invariant(data, chunks, limits)


# -- 2. valid streams ---------------------------------------------------------------------

_token = st.text(string.ascii_letters + string.digits + "_-$", min_size=1, max_size=8).map(
    str.encode
)
subject = st.lists(_token, min_size=1, max_size=4).map(b".".join)
sub_subject = st.lists(_token | st.just(b"*"), min_size=1, max_size=3).map(b".".join) | st.just(
    b">"
)
sid = st.integers(0, 10**9).map(lambda n: str(n).encode())
blank = st.lists(st.sampled_from([b" ", b"\t"]), min_size=1, max_size=3).map(b"".join)
trailing = st.just(b"") | blank
eol = st.sampled_from([b"\r\n", b"\n"])
payload = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b"PUB foo 1\r\n", b"x", b" "]), max_size=8
).map(b"".join)


def size_token(draw: st.DrawFn, size: int) -> bytes:
    """The size, sometimes with leading zeros (echoed verbatim); at most 9 digits."""
    digits = str(size)
    return digits.zfill(draw(st.integers(len(digits), 9))).encode()


def verb(draw: st.DrawFn, name: str) -> bytes:
    return "".join(draw(st.sampled_from([c.lower(), c])) for c in name).encode()


@st.composite
def pub_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    subj, body = draw(subject), draw(payload)
    reply = draw(st.none() | subject)
    tok = size_token(draw, len(body))
    line = [verb(draw, "PUB"), draw(blank), subj]
    if reply is not None:
        line += [draw(blank), reply]
    line += [draw(blank), tok, draw(trailing), draw(eol)]
    return b"".join(line) + body + b"\r\n", pub(subj, body, reply=reply, size=tok)


@st.composite
def hpub_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    subj, body = draw(subject), draw(payload)
    reply = draw(st.none() | subject)
    fields = draw(st.lists(st.tuples(_token, _token), max_size=3))
    headers = b"NATS/1.0\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in fields) + b"\r\n"
    line = [verb(draw, "HPUB"), draw(blank), subj]
    if reply is not None:
        line += [draw(blank), reply]
    total = len(headers) + len(body)
    line += [draw(blank), str(len(headers)).encode(), draw(blank), str(total).encode()]
    line += [draw(trailing), draw(eol)]
    return b"".join(line) + headers + body + b"\r\n", hpub(subj, headers, body, reply=reply)


@st.composite
def sub_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    subj, s = draw(sub_subject), draw(sid)
    queue = draw(st.none() | _token)
    line = [verb(draw, "SUB"), draw(blank), subj]
    if queue is not None:
        line += [draw(blank), queue]
    line += [draw(blank), s]
    # DEFAULT negotiated the sub_max extension: a SUB may end with its limit.
    max_msgs = draw(st.just(0) | st.integers(1, 10**9 - 1))
    if max_msgs:
        line += [draw(blank), b"max=" + size_token(draw, max_msgs)]
    line += [draw(trailing), draw(eol)]
    return b"".join(line), sub(subj, s, queue, max_msgs)


@st.composite
def unsub_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    s = draw(sid)
    line = [verb(draw, "UNSUB"), draw(blank), s]
    max_msgs: int | None = None
    if draw(st.booleans()):
        max_msgs = draw(st.integers(0, 10**6))
        line += [draw(blank), str(max_msgs).encode()]
    line += [draw(trailing), draw(eol)]
    return b"".join(line), unsub(s, max_msgs)


@st.composite
def ping_pong_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    name = draw(st.sampled_from(["PING", "PONG"]))
    junk = draw(st.just(b"") | st.tuples(blank, _token).map(b"".join))
    return verb(draw, name) + junk + draw(eol), PING if name == "PING" else PONG


@st.composite
def connect_op(draw: st.DrawFn) -> tuple[bytes, Op]:
    fields = draw(
        st.dictionaries(
            st.text(string.ascii_lowercase, min_size=1, max_size=8),
            st.booleans() | st.integers() | st.text(max_size=12),
            max_size=4,
        )
    )
    body = json.dumps(fields, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    line = verb(draw, "CONNECT") + draw(blank) + body.encode() + draw(trailing) + draw(eol)
    return line, connect(body.encode())


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[Op], list[bytes]]:
    ops = draw(
        st.lists(
            pub_op() | hpub_op() | sub_op() | unsub_op() | ping_pong_op() | connect_op(),
            max_size=12,
        )
    )
    data = b"".join(wire for wire, _ in ops)
    return data, [op for _, op in ops], draw(splits(data))


@FUZZ
@given(streams())
@example(
    (
        b"PUB foo 3\r\nabc\r\n",
        [pub(b"foo", b"abc")],
        [b"PUB foo 3\r\n", b"ab", b"c\r\n"],
    )
)
def test_fuzz_parser_valid_stream(stream: tuple[bytes, list[Op], list[bytes]]) -> None:
    data, expected, chunks = stream
    assert replay([data], DEFAULT) == (expected, None)
    check_split_invariant(data, chunks, DEFAULT)
