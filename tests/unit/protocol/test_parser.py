"""The wire parser (protocol.md sections 2, 5-11, 19.3, 19.6).

Client input: every ``cases/*.nats`` file is replayed whole, line by line, byte by byte and
in random chunks; each replay must produce the ops and the ending in parser_cases.CASES.
Mesh input: frames built by frames.py go through parse_mesh to the right handler calls.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.errors import (
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ProtocolError,
)
from shardbroker.protocol import frames
from shardbroker.protocol.parser import ClientParser, block_payloads, parse_mesh, parse_size
from tests.unit.protocol.parser_cases import (
    CASES,
    EMPTY_HDR,
    PING,
    UNKNOWN,
    Case,
    Closed,
    Op,
    Outcome,
    Recorder,
    hpub,
    pub,
    sub,
)

CASES_DIR = Path(__file__).parent / "cases"

# chunks<seed>: random chunk sizes 1..2**(seed+1), so seeds cover tiny to 32-byte reads.
CHUNK_SEEDS = range(5)
MODES = ("whole", "lines", "bytes", *(f"chunks{seed}" for seed in CHUNK_SEEDS))


def split(data: bytes, mode: str) -> list[bytes]:
    """The reads a connection would see for one replay mode."""
    if mode == "whole":
        return [data]
    if mode == "lines":
        return [line for line in re.split(rb"(?<=\n)", data) if line]
    if mode == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    seed = int(mode.removeprefix("chunks"))
    rng = random.Random(seed)
    top = 2 ** (seed + 1)
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, top)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def new_parser(case: Case, recorder: Recorder) -> ClientParser:
    parser = ClientParser(recorder, case.max_control_line, case.max_payload)
    parser.headers = case.headers
    parser.sub_max = case.sub_max
    return parser


def replay(case: Case, chunks: list[bytes]) -> Outcome:
    recorder = Recorder()
    parser = new_parser(case, recorder)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except ProtocolError as exc:
        return recorder.ops, Closed(exc.wire_text)
    return recorder.ops, None


def _case_params() -> list[Any]:
    return [pytest.param(name, mode, id=f"{name}-{mode}") for name in CASES for mode in MODES]


# -- client input: the case files -------------------------------------------------------


def test_parser_every_case_file_has_expectations() -> None:
    files = {path.stem for path in CASES_DIR.glob("*.nats")}
    assert files == set(CASES)


@pytest.mark.parametrize("mode", MODES)
def test_parser_split_modes_keep_every_byte(mode: str) -> None:
    data = b"PUB foo 5\r\nhe\nlo\r\nPING\n\r\nSUB x 1"
    chunks = split(data, mode)
    assert b"".join(chunks) == data
    assert all(chunks)


@pytest.mark.parametrize(("name", "mode"), _case_params())
def test_parser_case(name: str, mode: str) -> None:
    case = CASES[name]
    data = (CASES_DIR / f"{name}.nats").read_bytes()
    assert replay(case, split(data, mode)) == (list(case.ops), case.end)


# -- client input: reads split around payloads -----------------------------------------


ABC = pub(b"foo", b"abc")


@pytest.mark.parametrize(
    ("chunks", "ops"),
    [
        # a read ending exactly at the end of the control line (regression: the payload
        # was then checked against the next read alone)
        ([b"PUB foo 3\r\n", b"a", b"bc\r\n"], [ABC]),
        ([b"PUB foo 3\r\n", b"abc", b"\r\n"], [ABC]),
        ([b"PUB foo 0\r\n", b"\r", b"\n"], [pub(b"foo", b"")]),
        ([b"PING\r\nPUB foo 3\r\n", b"ab", b"c\r\nPING\r\n"], [PING, ABC, PING]),
        ([b"HPUB foo 12 13\r\n", b"NATS/1.0\r\n", b"\r\nx\r\n"], [hpub(b"foo", EMPTY_HDR, b"x")]),
        # payload, CRLF or control line cut anywhere else
        ([b"PUB foo 3\r\na", b"bc\r\n"], [ABC]),
        ([b"PUB foo 3\r\nabc", b"\r", b"\nPING\r\n"], [ABC, PING]),
        ([b"PUB foo 3\r", b"\nabc\r\n"], [ABC]),
        ([b"PUB foo 3\r\nabc\r\n", b"PUB foo 3\r\nab", b"c\r\nPI", b"NG\r\n"], [ABC, ABC, PING]),
    ],
)
def test_parser_payload_spanning_reads(chunks: list[bytes], ops: list[Op]) -> None:
    assert replay(Case((), headers=True), chunks) == (ops, None)


# -- client input: limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "headers"),
    [
        (b"PUB foo 1048577\r\n", False),
        (b"PUB foo bar 1048577\n", False),
        (b"PUB foo 999999999\r\n", False),
        (b"HPUB foo 12 1048577\r\n", True),
        (b"HPUB foo r 0 1048577\r\n", True),
    ],
)
def test_parser_max_payload_raised_on_control_line(line: bytes, headers: bool) -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    parser.headers = headers
    with pytest.raises(ProtocolError) as exc:
        parser.feed(line)
    assert exc.value.wire_text == ERR_MAX_PAYLOAD
    assert recorder.ops == []


def test_parser_max_payload_exact_waits_for_payload() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    payload = bytes(range(256)) * 4096
    parser.feed(b"PUB foo 1048576\r\n" + payload[:1000])
    assert recorder.ops == []
    parser.feed(payload[1000:] + b"\r\n")
    assert recorder.ops == [pub(b"foo", payload)]


class LoweringRecorder(Recorder):
    """A CONNECT lowers the payload limit, as a user JWT's or an account's limit does."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: ClientParser | None = None

    def process_connect(self, body: bytes) -> None:
        super().process_connect(body)
        assert self.parser is not None
        self.parser.max_payload = 4


@pytest.mark.parametrize("between", [b"", b"SUB a 1\r\n", b"PUB a 1\r\nx\r\n"])
def test_parser_max_payload_lowered_by_connect_in_the_same_read(between: bytes) -> None:
    recorder = LoweringRecorder()
    parser = recorder.parser = ClientParser(recorder, 4096, 1024 * 1024)
    with pytest.raises(ProtocolError) as exc:
        parser.feed(b"CONNECT {}\r\n" + between + b"PUB foo 5\r\nhello\r\nPING\r\n")
    assert exc.value.wire_text == ERR_MAX_PAYLOAD
    assert ("ping",) not in recorder.ops


@pytest.mark.parametrize("prefix", [b"SUB ", b"PUB ", b"UNSUB ", b"CONNECT ", b"sub\t"])
@pytest.mark.parametrize("piece", [1, 7, 100, 1000, 5000])
def test_parser_partial_control_line_over_limit(prefix: bytes, piece: int) -> None:
    """A line without its newline is refused once it is over the limit, without waiting
    for the newline: never while the buffered line is within max_control_line, and at
    the latest on the read that takes its arguments over it."""
    limit = 4096
    recorder = Recorder()
    parser = ClientParser(recorder, limit, 1024 * 1024)
    parser.feed(prefix)
    buffered = len(prefix)
    while buffered - len(prefix) <= limit:
        try:
            parser.feed(b"a" * piece)
        except ProtocolError as exc:
            assert exc.wire_text == ERR_MAX_CONTROL_LINE
            assert buffered + piece > limit, "refused a partial line within the limit"
            break
        buffered += piece
    else:
        pytest.fail(f"no error with {buffered - len(prefix)} argument bytes buffered")
    assert recorder.ops == []


def _line_with_args(verb: bytes, nargs: int, eol: bytes) -> tuple[bytes, Op]:
    """`verb <subject> 0` whose argument bytes (after `verb `) number exactly nargs."""
    subject = b"s" * (nargs - 2)
    if verb == b"SUB":
        return b"SUB " + subject + b" 0" + eol, sub(subject, b"0")
    return b"PUB " + subject + b" 0" + eol + b"\r\n", pub(subject, b"")


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("verb", [b"SUB", b"PUB"])
def test_parser_control_line_over_limit(verb: bytes, eol: bytes) -> None:
    line, _ = _line_with_args(verb, 65, eol)
    recorder = Recorder()
    with pytest.raises(ProtocolError) as exc:
        ClientParser(recorder, 64, 1024).feed(line)
    assert exc.value.wire_text == ERR_MAX_CONTROL_LINE
    assert recorder.ops == []


def _at_limit_params() -> list[Any]:
    return [
        pytest.param(verb, eol, mode, id=f"{verb.decode()}-{eol_id}-{mode}")
        for verb in (b"SUB", b"PUB")
        for eol, eol_id in ((b"\r\n", "crlf"), (b"\n", "lf"))
        for mode in ("whole", "lines", "bytes", "cut_before_lf")
    ]


@pytest.mark.parametrize(("verb", "eol", "mode"), _at_limit_params())
def test_parser_control_line_at_limit_accepted(verb: bytes, eol: bytes, mode: str) -> None:
    """nats-server measures the argument bytes after the verb and its blanks, without the
    CR; exactly max_control_line of them is fine, however the line is split."""
    line, op = _line_with_args(verb, 64, eol)
    if mode == "cut_before_lf":
        cut = line.index(b"\n")
        chunks = [line[:cut], line[cut:]]
    else:
        chunks = split(line, mode)
    assert replay(Case((), max_control_line=64), chunks) == ([op], None)


# -- client input: odds and ends ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "chunks"),
    [
        (b"\rpub\tqCONNECT", [b"\rpu", b"b\tqCONNECT"]),
        (b"\x0bSUB", [b"\x0bSU", b"B"]),
        (b"PONGxxxxxxxxxxxxxxxx\r\n", [b"PONGxxxxxxxxxxxxxxxx", b"\r\n"]),
        (b"PING\rSUB\t0INFO\r\n", [b"PING\rSUB\t0INFO", b"\r\n"]),
    ],
)
def test_parser_partial_line_checked_like_complete_line(data: bytes, chunks: list[bytes]) -> None:
    case = Case((), max_control_line=8)
    assert replay(case, chunks) == replay(case, [data])


@pytest.mark.parametrize("blank", [b"\r", b"\x0b", b"\x0c", b"\r\r"])
def test_parser_partial_line_of_whitespace(blank: bytes) -> None:
    """A line of whitespace is an unknown operation, whether the read ends inside it."""
    assert replay(Case(()), [b"PING\r\n" + blank, b"\n"]) == ([PING], UNKNOWN)


def test_parser_headers_off_by_default_and_enabled_mid_stream() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024)
    assert parser.headers is False
    parser.feed(b'CONNECT {"headers":true}\r\n')
    parser.headers = True
    parser.feed(b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n")
    assert recorder.ops == [("connect", b'{"headers":true}'), hpub(b"foo", EMPTY_HDR, b"")]


@pytest.mark.parametrize(
    ("token", "size"),
    [
        (b"0", 0),
        (b"5", 5),
        (b"05", 5),
        (b"000000000", 0),
        (b"999999999", 999999999),
        (b"1234567890", -1),
        (b"", -1),
        (b"+1", -1),
        (b"-1", -1),
        (b"0x10", -1),
        (b"1.0", -1),
        (b"1e3", -1),
        (b" 1", -1),
        ("\u0661".encode(), -1),
    ],
)
def test_parser_parse_size(token: bytes, size: int) -> None:
    assert parse_size(token) == size


# -- mesh frames -----------------------------------------------------------------------------


class MeshRecorder:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.runs = 0

    def process_rmsg_run(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None:
        assert len(payloads) >= 2
        self.runs += 1
        each = [sizes] * len(payloads) if isinstance(sizes, bytes) else sizes
        for payload, size in zip(payloads, each, strict=True):
            self.process_rmsg(account, subject, reply, queues, 0, payload, size)

    def process_rmsg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        header_size: int,
        message: bytes,
        size_token: bytes,
    ) -> None:
        assert int(size_token) == len(message)
        self.ops.append(("rmsg", account, subject, reply, tuple(queues), header_size, message))

    def process_jmsg(
        self,
        account: bytes,
        deliver: bytes,
        subject: bytes,
        reply: bytes,
        queue: bytes | None,
        header_size: int,
        message: bytes,
    ) -> None:
        self.ops.append(("jmsg", account, deliver, subject, reply, queue, header_size, message))

    def process_jrun(
        self, account: bytes, deliver: bytes, entries: list[tuple[bytes, bytes, int, bytes]]
    ) -> None:
        self.ops.append(("jrun", account, deliver, list(entries)))

    def process_qmsg(
        self,
        account: bytes,
        subject: bytes,
        queue: bytes,
        hops: int,
        reply: bytes | None,
        header_size: int,
        message: bytes,
    ) -> None:
        self.ops.append(("qmsg", account, subject, queue, hops, reply, header_size, message))

    def process_rs_plus(
        self, account: bytes, subject: bytes, queue: bytes | None, weight: int
    ) -> None:
        self.ops.append(("rs+", account, subject, queue, weight))

    def process_rs_minus(self, account: bytes, subject: bytes, queue: bytes | None) -> None:
        self.ops.append(("rs-", account, subject, queue))

    def process_control(self, verb: bytes, args: list[bytes]) -> None:
        self.ops.append(("control", verb, list(args)))


def mesh_ops(data: bytes) -> list[Op]:
    recorder = MeshRecorder()
    parse_mesh(data, recorder)
    return recorder.ops


HDR = b"NATS/1.0\r\nA: b\r\n\r\n"
CRLF_PAYLOAD = b"x\r\nRMSG $G a 1\r\n\r\n"

# (frame, the handler call it must produce)
MESH_FRAMES: dict[str, tuple[bytes, Op]] = {
    "jmsg": (
        frames.jmsg(b"$G", b"_INBOX.a.b", b"orders.new", b"$JS.ACK.S.C.1.1.1.9.0", None, 0, b"hi"),
        ("jmsg", b"$G", b"_INBOX.a.b", b"orders.new", b"$JS.ACK.S.C.1.1.1.9.0", None, 0, b"hi"),
    ),
    "jmsg_queue_headers_crlf": (
        frames.jmsg(b"$G", b"d", b"s", b"r", b"grp", len(HDR), HDR + b"a\r\nb"),
        ("jmsg", b"$G", b"d", b"s", b"r", b"grp", len(HDR), HDR + b"a\r\nb"),
    ),
    "rmsg": (
        frames.rmsg(b"$G", b"foo", None, (), 0, b"hello"),
        ("rmsg", b"$G", b"foo", None, (), 0, b"hello"),
    ),
    "rmsg_empty": (
        frames.rmsg(b"$G", b"foo", None, (), 0, b""),
        ("rmsg", b"$G", b"foo", None, (), 0, b""),
    ),
    "rmsg_reply": (
        frames.rmsg(b"acc", b"foo.bar", b"_INBOX.x", (), 0, b"hi"),
        ("rmsg", b"acc", b"foo.bar", b"_INBOX.x", (), 0, b"hi"),
    ),
    "rmsg_queues": (
        frames.rmsg(b"$G", b"foo", None, (b"q1", b"q2"), 0, b"hi"),
        ("rmsg", b"$G", b"foo", None, (b"q1", b"q2"), 0, b"hi"),
    ),
    "rmsg_queue_reply": (
        frames.rmsg(b"$G", b"foo", b"r", (b"q1",), 0, b"hi"),
        ("rmsg", b"$G", b"foo", b"r", (b"q1",), 0, b"hi"),
    ),
    "rmsg_queues_reply": (
        frames.rmsg(b"$G", b"foo", b"r", (b"q1", b"q2", b"q3"), 0, b"hi"),
        ("rmsg", b"$G", b"foo", b"r", (b"q1", b"q2", b"q3"), 0, b"hi"),
    ),
    "rmsg_crlf_payload": (
        frames.rmsg(b"$G", b"foo", b"r", (), 0, CRLF_PAYLOAD),
        ("rmsg", b"$G", b"foo", b"r", (), 0, CRLF_PAYLOAD),
    ),
    "hrmsg": (
        frames.rmsg(b"$G", b"foo", None, (), len(HDR), HDR + b"hello"),
        ("rmsg", b"$G", b"foo", None, (), len(HDR), HDR + b"hello"),
    ),
    "hrmsg_header_only": (
        frames.rmsg(b"$G", b"foo", None, (), len(EMPTY_HDR), EMPTY_HDR),
        ("rmsg", b"$G", b"foo", None, (), len(EMPTY_HDR), EMPTY_HDR),
    ),
    "hrmsg_reply": (
        frames.rmsg(b"$G", b"foo", b"r", (), len(HDR), HDR + CRLF_PAYLOAD),
        ("rmsg", b"$G", b"foo", b"r", (), len(HDR), HDR + CRLF_PAYLOAD),
    ),
    "hrmsg_queues": (
        frames.rmsg(b"$G", b"foo", None, (b"q",), len(HDR), HDR + b"x"),
        ("rmsg", b"$G", b"foo", None, (b"q",), len(HDR), HDR + b"x"),
    ),
    "hrmsg_queues_reply": (
        frames.rmsg(b"$G", b"foo", b"r", (b"q1", b"q2"), len(HDR), HDR + b"x"),
        ("rmsg", b"$G", b"foo", b"r", (b"q1", b"q2"), len(HDR), HDR + b"x"),
    ),
    "qmsg": (
        frames.qmsg(b"$G", b"jobs", b"workers", 1, None, 0, b"hi"),
        ("qmsg", b"$G", b"jobs", b"workers", 1, None, 0, b"hi"),
    ),
    "qmsg_reply_headers_crlf": (
        frames.qmsg(b"acc", b"jobs.a", b"q", 3, b"_INBOX.r", len(HDR), HDR + CRLF_PAYLOAD),
        ("qmsg", b"acc", b"jobs.a", b"q", 3, b"_INBOX.r", len(HDR), HDR + CRLF_PAYLOAD),
    ),
    "rs_plus": (frames.rs_plus(b"$G", b"foo.*"), ("rs+", b"$G", b"foo.*", None, 1)),
    "rs_plus_queue": (
        frames.rs_plus(b"$G", b"foo", b"q"),
        ("rs+", b"$G", b"foo", b"q", 1),
    ),
    "rs_plus_queue_weight": (
        frames.rs_plus(b"acc", b"foo.>", b"q", 7),
        ("rs+", b"acc", b"foo.>", b"q", 7),
    ),
    "rs_minus": (frames.rs_minus(b"$G", b"foo"), ("rs-", b"$G", b"foo", None)),
    "rs_minus_queue": (frames.rs_minus(b"$G", b"foo", b"q"), ("rs-", b"$G", b"foo", b"q")),
    "control_bare": (frames.control(b"READY"), ("control", b"READY", [])),
    "control_args": (
        frames.control(b"HELLO", 3, b"abc", 0),
        ("control", b"HELLO", [b"3", b"abc", b"0"]),
    ),
    "control_one_arg": (frames.control(b"SDOWN", 2), ("control", b"SDOWN", [b"2"])),
}


@pytest.mark.parametrize("name", MESH_FRAMES)
def test_parser_mesh_frame(name: str) -> None:
    frame, op = MESH_FRAMES[name]
    assert mesh_ops(frame) == [op]


def test_parser_mesh_stream_of_every_frame() -> None:
    stream = b"".join(frame for frame, _ in MESH_FRAMES.values())
    assert mesh_ops(stream) == [op for _, op in MESH_FRAMES.values()]


def test_parser_mesh_empty_input() -> None:
    assert mesh_ops(b"") == []


_token = st.text("abcXYZ019_-$*>", min_size=1, max_size=6).map(str.encode)
_subject = st.lists(_token, min_size=1, max_size=4).map(b".".join)


@st.composite
def _rmsg_calls(draw: st.DrawFn) -> Op:
    message = draw(st.binary(max_size=64))
    header_size = draw(st.integers(0, len(message)))
    return (
        "rmsg",
        draw(_token),
        draw(_subject),
        draw(st.none() | _subject),
        tuple(draw(st.lists(_token, max_size=3))),
        header_size,
        message,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(_rmsg_calls(), min_size=1, max_size=5))
def test_parser_mesh_rmsg_roundtrip(calls: list[Op]) -> None:
    stream = b"".join(frames.rmsg(*call[1:]) for call in calls)
    assert mesh_ops(stream) == calls


# -- runs: consecutive messages with an identical control line ---------------------------------


def test_parser_run_of_identical_pubs_is_one_call() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    parser.feed(b"PUB a 2\r\nx1\r\n" * 50 + b"PUB b 2\r\ny1\r\n" + b"PUB a 2\r\nx2\r\n" * 3)
    assert recorder.runs == 2
    assert recorder.ops == (
        [("pub", b"a", None, b"x1", b"2")] * 50
        + [("pub", b"b", None, b"y1", b"2")]
        + [("pub", b"a", None, b"x2", b"2")] * 3
    )


def test_parser_run_stops_at_a_payload_of_another_length_or_with_crlf() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    data = b"PUB a 4\r\nabcd\r\n" * 3 + b"PUB a 4\r\na\r\nb\r\n" + b"PUB a 4\r\nwxyz\r\n" * 2
    parser.feed(data)
    assert recorder.ops == (
        [("pub", b"a", None, b"abcd", b"4")] * 3
        + [("pub", b"a", None, b"a\r\nb", b"4")]
        + [("pub", b"a", None, b"wxyz", b"4")] * 2
    )


@pytest.mark.parametrize("cut", range(1, 60))
def test_parser_run_split_anywhere(cut: int) -> None:
    data = b"PUB q r 3\r\nabc\r\n" * 4 + b"PING\r\n"
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    parser.feed(data[:cut])
    parser.feed(data[cut:])
    assert recorder.ops == [("pub", b"q", b"r", b"abc", b"3")] * 4 + [PING]


def _large(i: int) -> bytes:
    """A 300-byte payload holding CRLFs and a PUB line of its own (never a record)."""
    body = b"%03d\r\nPUB a 300\r\n" % i
    return body + b"z" * (300 - len(body))


def test_parser_block_of_identical_large_pubs_is_one_call() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    records = b"".join(b"PUB a 300\r\n" + _large(i) + b"\r\n" for i in range(40))
    parser.feed(records + b"PUB b 300\r\n" + _large(99) + b"\r\nPING\r\n")
    assert recorder.blocks == 1
    assert recorder.ops == (
        [("pub", b"a", None, _large(i), b"300") for i in range(40)]
        + [("pub", b"b", None, _large(99), b"300"), PING]
    )


def test_parser_block_leaves_replies_small_payloads_and_bad_records_to_the_line_parser() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    with_reply = b"PUB a r 300\r\n" + _large(1) + b"\r\n"
    small = b"PUB a 255\r\n" + b"s" * 255 + b"\r\n"
    too_long = b"PUB a 300\r\n" + _large(2) + b"!\r\n"
    parser.feed(with_reply * 3 + small * 3)
    assert recorder.blocks == 0
    assert len(recorder.ops) == 6
    good = b"PUB a 300\r\n" + _large(3) + b"\r\n"
    with pytest.raises(ProtocolError):
        parser.feed(good * 3 + too_long)
    assert recorder.blocks == 1
    assert recorder.ops[6:] == [("pub", b"a", None, _large(3), b"300")] * 3


@pytest.mark.parametrize("cut", [1, 5, 11, 12, 200, 313, 314, 315, 320, 626, 1000, 1570])
def test_parser_block_split_anywhere(cut: int) -> None:
    data = b"".join(b"PUB q 300\r\n" + _large(i) + b"\r\n" for i in range(5)) + b"PING\r\n"
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    parser.feed(data[:cut])
    parser.feed(data[cut:])
    assert recorder.ops == [("pub", b"q", None, _large(i), b"300") for i in range(5)] + [PING]


class MeshBlockRecorder(MeshRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = 0

    def process_rmsg_block(
        self, account: bytes, subject: bytes, block: bytes, head: bytes, count: int, size: bytes
    ) -> None:
        assert head == b"RMSG %s %s %s\r\n" % (account, subject, size)
        assert len(block) == count * (len(head) + int(size) + 2)
        self.blocks += 1
        for payload in block_payloads(block, len(head), count, int(size)):
            self.process_rmsg(account, subject, None, (), 0, payload, size)


@pytest.mark.parametrize("recorder_type", [MeshRecorder, MeshBlockRecorder])
def test_parser_mesh_blocks_of_large_rmsg(recorder_type: type[MeshRecorder]) -> None:
    """Leading runs of identical large RMSGs come as blocks (or runs without the hook),
    payloads holding CRLFs and RMSG lines included; the frames after them as usual."""
    first = [frames.rmsg(b"$G", b"a", None, (), 0, _large(i)) for i in range(7)]
    second = [frames.rmsg(b"$G", b"b", None, (), 0, _large(i)) for i in range(3)]
    rest = frames.rmsg(b"$G", b"a", b"r", (), 0, _large(8)) * 2 + frames.rmsg(
        b"$G", b"a", None, (), 0, b"small"
    )
    recorder = recorder_type()
    parse_mesh(b"".join(first + second) + rest, recorder)
    if isinstance(recorder, MeshBlockRecorder):
        assert recorder.blocks == 2
    assert recorder.ops == (
        [("rmsg", b"$G", b"a", None, (), 0, _large(i)) for i in range(7)]
        + [("rmsg", b"$G", b"b", None, (), 0, _large(i)) for i in range(3)]
        + [("rmsg", b"$G", b"a", b"r", (), 0, _large(8))] * 2
        + [("rmsg", b"$G", b"a", None, (), 0, b"small")]
    )


def test_parser_mesh_jrun_between_other_frames() -> None:
    """A JRUN frame: deliveries in order, payloads with CRLFs and headers intact."""
    hdr = b"NATS/1.0\r\nK: v\r\n\r\n"
    records = [
        frames.jrun_record(b"s.1", b"$JS.ACK.S.C.1.1.1.0.2", b"", b"plain"),
        frames.jrun_record(b"s.2", b"$JS.ACK.S.C.1.2.2.0.1", hdr, b"with\r\nheaders"),
        frames.jrun_record(b"s.3", b"$JS.ACK.S.C.1.3.3.0.0", b"", b""),
    ]
    data = (
        frames.rmsg(b"$G", b"x", None, (), 0, b"a")
        + frames.jrun(b"$G", b"_INBOX.d", records)
        + frames.rmsg(b"$G", b"y", None, (), 0, b"b")
    )
    recorder = MeshRecorder()
    parse_mesh(data, recorder)
    assert recorder.ops == [
        ("rmsg", b"$G", b"x", None, (), 0, b"a"),
        (
            "jrun", b"$G", b"_INBOX.d",
            [
                (b"s.1", b"$JS.ACK.S.C.1.1.1.0.2", 0, b"plain"),
                (b"s.2", b"$JS.ACK.S.C.1.2.2.0.1", len(hdr), hdr + b"with\r\nheaders"),
                (b"s.3", b"$JS.ACK.S.C.1.3.3.0.0", 0, b""),
            ],
        ),
        ("rmsg", b"$G", b"y", None, (), 0, b"b"),
    ]  # fmt: skip


def test_parser_mesh_run_of_identical_rmsg_is_one_call() -> None:
    frame = frames.rmsg(b"$G", b"foo", None, (), 0, b"0123")
    recorder = MeshRecorder()
    parse_mesh(frame * 10 + frames.rmsg(b"$G", b"foo", b"r", (b"q",), 0, b"zz") * 2, recorder)
    assert recorder.runs == 2
    assert (
        recorder.ops
        == [("rmsg", b"$G", b"foo", None, (), 0, b"0123")] * 10
        + [("rmsg", b"$G", b"foo", b"r", (b"q",), 0, b"zz")] * 2
    )


def test_parser_run_of_one_subject_with_varying_sizes_is_one_call() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    payloads = [b"x" * (i % 7) for i in range(40)]
    parser.feed(b"".join(b"PUB s r %d\r\n%s\r\n" % (len(p), p) for p in payloads) + b"PING\r\n")
    assert recorder.runs == 1
    assert recorder.ops == [("pub", b"s", b"r", p, b"%d" % len(p)) for p in payloads] + [PING]


def test_parser_sized_run_stops_where_the_head_or_a_size_differs() -> None:
    recorder = Recorder()
    parser = ClientParser(recorder, 4096, 1024 * 1024)
    # "PUB s 12" then "PUB s r 2": the second shares the head "PUB s " but its rest is
    # not a size, so it is not part of the run.
    parser.feed(b"PUB s 1\r\na\r\nPUB s 2\r\nbb\r\nPUB s r 2\r\ncc\r\nPUB s 4\r\nd\r\ne\r\n")
    assert recorder.ops == [
        ("pub", b"s", None, b"a", b"1"),
        ("pub", b"s", None, b"bb", b"2"),
        ("pub", b"s", b"r", b"cc", b"2"),
        ("pub", b"s", None, b"d\r\ne", b"4"),
    ]


def test_parser_mesh_run_with_varying_sizes() -> None:
    payloads = [b"y" * n for n in (1, 5, 2, 9)]
    recorder = MeshRecorder()
    parse_mesh(b"".join(frames.rmsg(b"$G", b"v", None, (), 0, p) for p in payloads), recorder)
    assert recorder.runs == 1
    assert recorder.ops == [("rmsg", b"$G", b"v", None, (), 0, p) for p in payloads]
