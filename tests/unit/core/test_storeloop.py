"""The storage loop against the frame parser: for any ring piece, the storage loop's
messages followed by what ``parse_mesh`` does with the rest it leaves are exactly what
``parse_mesh`` does with the whole piece on the storage shard (every RMSG, alone or in
a run, becomes one ``on_message`` call, in order); and the compiled loop stops where its
pure-Python twin stops, having made the same calls, on any input, malformed included.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker import core
from shardbroker.core import storeloop
from shardbroker.protocol import frames
from shardbroker.protocol.parser import parse_mesh

LOOPS: dict[str, Any] = {
    "pure": storeloop.store_loop,
    "compiled": core.store_loop if core.IMPLEMENTATION == "compiled" else None,
}


class Recorder:
    """The storage peer's view of the frame parser: every message to on_message."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_message(self, *args: Any) -> None:
        self.calls.append(("msg", *args))

    def process_rmsg(
        self, account: bytes, subject: bytes, reply: bytes | None, queues: Any,
        header_size: int, message: bytes, size_token: bytes,
    ) -> None:  # fmt: skip
        if queues:
            self.calls.append(("queued", account, subject, reply, tuple(queues), message))
        else:
            self.on_message(account, subject, reply, message[:header_size], message[header_size:])

    def process_rmsg_run(
        self, account: bytes, subject: bytes, reply: bytes | None, queues: Any,
        payloads: list[bytes], sizes: Any,
    ) -> None:  # fmt: skip
        for payload in payloads:
            self.process_rmsg(account, subject, reply, queues, 0, payload, b"")

    def process_jmsg(self, *args: Any) -> None:
        self.calls.append(("jmsg", *args))

    def process_jrun(self, *args: Any) -> None:
        self.calls.append(("jrun", *args))

    def process_rs_plus(self, *args: Any) -> None:
        self.calls.append(("rs+", *args))

    def process_rs_minus(self, *args: Any) -> None:
        self.calls.append(("rs-", *args))

    def process_control(self, *args: Any) -> None:
        self.calls.append(("control", *args))


_subjects = st.sampled_from([b"orders.1", b"$JS.API.STREAM.INFO.S", b"$JS.ACK.S.c.1.5.5.1.0", b"a"])
_replies = st.sampled_from([None, b"_INBOX.abc.1", b"_INBOX.abc.22", b"$JS.ACK.S.c.1.2.2.1.0"])
_payloads = st.sampled_from([b"", b"x", b"hello world", b"+ACK", b"a\r\nb", b"\r\n", b"RMSG "])
_frame = st.one_of(
    st.builds(lambda s, r, p: frames.rmsg(b"$G", s, r, (), 0, p), _subjects, _replies, _payloads),
    st.builds(lambda s, p: frames.rmsg(b"$G", s, None, (b"q",), 0, p), _subjects, _payloads),
    st.builds(
        lambda s, r, p: frames.rmsg(b"$G", s, r, (b"q", b"w"), 0, p), _subjects, _replies, _payloads
    ),
    st.builds(lambda s, p: frames.rmsg(b"$G", s, None, (), 3, b"h\r\n" + p), _subjects, _payloads),
    st.just(b"RS+ $G foo.> 1\r\n"),
    st.just(b"RS- $G foo.>\r\n"),
)  # fmt: skip


def _frames_with_runs() -> st.SearchStrategy[bytes]:
    # Runs of one frame repeated: the parser's run path.
    return st.lists(st.tuples(_frame, st.integers(1, 4)), max_size=12).map(
        lambda items: b"".join(frame * times for frame, times in items)
    )


def _via_loop(loop: Any, data: bytes) -> list[tuple[Any, ...]]:
    recorder = Recorder()
    pos, msgs = loop(data, 0, recorder.on_message)
    assert msgs == len(recorder.calls)
    if pos < len(data):
        parse_mesh(data[pos:], recorder)
    return recorder.calls


def _via_parser(data: bytes) -> list[tuple[Any, ...]]:
    recorder = Recorder()
    parse_mesh(data, recorder)
    return recorder.calls


@pytest.mark.parametrize("loop_name", ["pure", "compiled"])
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(data=_frames_with_runs())
def test_storeloop_gives_what_the_frame_parser_gives(loop_name: str, data: bytes) -> None:
    loop = LOOPS[loop_name]
    if loop is None:
        pytest.skip("the compiled core is not built")
    assert _via_loop(loop, data) == _via_parser(data)


def test_storeloop_takes_publishes_and_acks() -> None:
    data = (
        frames.rmsg(b"$G", b"orders.1", b"_INBOX.a.1", (), 0, b"one")
        + frames.rmsg(b"$G", b"$JS.ACK.S.c.1.5.5.1.0", None, (), 0, b"")
        + frames.rmsg(b"$G", b"orders.1", b"_INBOX.a.2", (), 0, b"a\r\nb")
        + b"RS+ $G x 1\r\n"
        + frames.rmsg(b"$G", b"orders.2", None, (), 0, b"later")
    )
    for loop in filter(None, LOOPS.values()):
        recorder = Recorder()
        pos, msgs = loop(data, 0, recorder.on_message)
        calls = [call[1:] for call in recorder.calls]
        assert msgs == 3
        assert data[pos:].startswith(b"RS+ ")
        assert calls == [
            (b"$G", b"orders.1", b"_INBOX.a.1", b"", b"one"),
            (b"$G", b"$JS.ACK.S.c.1.5.5.1.0", None, b"", b""),
            (b"$G", b"orders.1", b"_INBOX.a.2", b"", b"a\r\nb"),
        ]


def _outcome(loop: Any, data: bytes) -> tuple[Any, ...]:
    calls: list[Any] = []
    try:
        pos, msgs = loop(data, 0, lambda *args: calls.append(args))
    except Exception as exc:  # both must fail alike, if at all
        return ("raised", type(exc).__name__, calls)
    assert 0 <= pos <= len(data)
    return pos, msgs, calls


_near_valid = st.tuples(_frames_with_runs(), st.integers(0, 400), st.binary(max_size=3)).map(
    lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]) :]
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(data=st.one_of(st.binary(max_size=200), _near_valid, _near_valid.map(lambda d: d[:-3])))
def test_storeloop_compiled_matches_its_twin_on_any_input(data: bytes) -> None:
    compiled = LOOPS["compiled"]
    if compiled is None:
        pytest.skip("the compiled core is not built")
    assert _outcome(compiled, data) == _outcome(storeloop.store_loop, data)


def test_storeloop_compiled_is_built() -> None:
    """pip install builds it (setup.py); a missing build would silently test the twin."""
    assert core.IMPLEMENTATION == "compiled"


_records = st.lists(
    st.tuples(
        st.integers(1, (1 << 61) - 1),
        st.integers(0, (1 << 63) - 1),
        st.binary(min_size=1, max_size=40),
        st.one_of(st.just(b""), st.binary(min_size=1, max_size=60)),
        st.binary(max_size=300),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(prefix=st.binary(max_size=40), records=_records)
def test_storeloop_append_record_compiled_matches_its_twin(
    prefix: bytes, records: list[tuple[int, int, bytes, bytes, bytes]]
) -> None:
    if core.IMPLEMENTATION != "compiled":
        pytest.skip("the compiled core is not built")
    pure = bytearray(prefix)
    compiled = bytearray(prefix)
    for seq, ts, sbytes, hdr, data in records:
        rlen = (34 + len(hdr) if hdr else 30) + len(sbytes) + len(data)
        storeloop.append_record(pure, rlen, seq, ts, sbytes, hdr, data)
        core.append_record(compiled, rlen, seq, ts, sbytes, hdr, data)
        assert len(pure) == len(compiled)
    assert pure == compiled


def test_storeloop_append_record_is_a_file_store_record() -> None:
    """Decoded by the file store's own reader, with its checksum verified."""
    from shardbroker.jetstream.fileblock import HBIT, TAIL

    for append in filter(None, (storeloop.append_record, LOOPS["compiled"] and core.append_record)):
        buf = bytearray(b"xx")
        append(buf, 30 + 3 + 5, 7, 1234, b"a.b", b"", b"hello")
        append(buf, 34 + 3 + 4 + 2, 8, 1235, b"a.c", b"H\r\n\r\n"[:4], b"hi")
        first = bytes(buf[2 : 2 + 38])
        assert int.from_bytes(first[:4], "little") == 38
        assert int.from_bytes(first[4:12], "little") == 7
        crc, length = TAIL.unpack_from(first, 30)
        assert length == 38 and crc == zlib.crc32(first[:30])
        second = bytes(buf[40:])
        assert int.from_bytes(second[:4], "little") == 43 | HBIT
        crc, length = TAIL.unpack_from(second, 35)
        assert length == 43 and crc == zlib.crc32(second[:35])


# -- acks in runs (on_acks) ---------------------------------------------------------------

_ack_subjects = st.sampled_from(
    [
        b"$JS.ACK.S.c.1.5.5.1.0",
        b"$JS.ACK.S.c.1.6.7.1.0",
        b"$JS.ACK.S.d.2.6.9.1.3",
        b"$JS.ACK.T.c.1.123456789012345678.1.1.0",
        b"$JS.ACK.S.c.1.1234567890123456789.1.1.0",  # 19 digits: not a plain ack
        b"$JS.ACK.S.c.1.x5.5.1.0",
        b"$JS.ACK.S.c.1.5..1.0",
        b"$JS.ACK.S.c.1.5.5.1",
        b"$JS.ACK.S.c.1.5.5.1.0.9",
        b"$JS.ACK.dom.hash.S.c.1.5.5.1.0.x",
        b"$JS.ACK..c.1.5.5.1.0",
        b"$JS.ACKS.c.1.5.5.1.0.1",
        b"orders.1",
    ]
)
_ack_payloads = st.sampled_from([b"", b"+ACK", b"-NAK", b"+ACK ", b"+WPI", b"x"])
_ack_frame = st.one_of(
    st.builds(
        lambda a, s, p: frames.rmsg(a, s, None, (), 0, p),
        st.sampled_from([b"$G", b"ACC"]),
        _ack_subjects,
        _ack_payloads,
    ),
    st.builds(lambda s: frames.rmsg(b"$G", s, b"_INBOX.x.1", (), 0, b""), _ack_subjects),
    _frame,
)
_ack_pieces = st.lists(st.tuples(_ack_frame, st.integers(1, 3)), max_size=14).map(
    lambda items: b"".join(frame * times for frame, times in items)
)


def _ack_outcome(loop: Any, data: bytes) -> tuple[Any, ...]:
    calls: list[Any] = []
    try:
        pos, msgs = loop(
            data,
            0,
            lambda *args: calls.append(("msg", *args)),
            lambda *args: calls.append(("acks", *args)),
        )
    except Exception as exc:  # both must fail alike, if at all
        return ("raised", type(exc).__name__, calls)
    assert 0 <= pos <= len(data)
    return pos, msgs, calls


def _expanded(data: bytes, loop: Any) -> tuple[int, int, list[tuple[Any, ...]]]:
    """The calls of ``loop`` with on_acks, each ack of a run written out as the
    on_message call it stands for (the subject's sequences read back by rsplit)."""
    calls: list[Any] = []

    def on_acks(account: bytes, head: bytes, seqs: list[int]) -> None:
        assert seqs and len(seqs) % 2 == 0
        assert all(type(s) is int for s in seqs)
        calls.append(("run", account, head, list(seqs)))

    pos, msgs = loop(data, 0, lambda *args: calls.append(("msg", *args)), on_acks)
    return pos, msgs, calls


def _appender(calls: list[tuple[Any, ...]]) -> Any:
    return lambda *args: calls.append(args)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=_ack_pieces)
def test_storeloop_ack_runs_are_the_messages_they_stand_for(data: bytes) -> None:
    """Every ack of a run is a message the loop without on_acks hands over, in the
    same order, with nothing else between the acks of one run."""
    for loop in filter(None, LOOPS.values()):
        plain: list[tuple[Any, ...]] = []
        pos, msgs = loop(data, 0, _appender(plain))
        pos2, msgs2, calls = _expanded(data, loop)
        assert (pos2, msgs2) == (pos, msgs)
        rebuilt: list[tuple[Any, ...]] = []
        for call in calls:
            if call[0] == "msg":
                rebuilt.append(call[1:])
                continue
            _, account, head, seqs = call
            start = len(rebuilt)
            for sseq, dseq in zip(seqs[::2], seqs[1::2], strict=True):
                original = plain[len(rebuilt)]
                assert original[0] == account and original[2] is None
                assert original[4] in (b"", b"+ACK")
                parts = original[1].rsplit(b".", 5)
                assert parts[0] == head and len(original[1].split(b".")) == 9
                assert (int(parts[2]), int(parts[3])) == (sseq, dseq)
                rebuilt.append(original)
            assert len(rebuilt) > start
        assert rebuilt == plain


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.one_of(_ack_pieces, _ack_pieces.map(lambda d: d[:-3]), st.binary(max_size=120)))
def test_storeloop_ack_runs_compiled_match_the_twin(data: bytes) -> None:
    compiled = LOOPS["compiled"]
    if compiled is None:
        pytest.skip("the compiled core is not built")
    assert _ack_outcome(compiled, data) == _ack_outcome(storeloop.store_loop, data)


def test_storeloop_ack_runs_break_at_other_messages_and_heads() -> None:
    def ack(subject: bytes, body: bytes = b"") -> bytes:
        return frames.rmsg(b"$G", subject, None, (), 0, body)

    data = (
        ack(b"$JS.ACK.S.c.1.1.1.9.0")
        + ack(b"$JS.ACK.S.c.1.2.2.9.0", b"+ACK")
        + ack(b"$JS.ACK.S.d.1.7.3.9.0")
        + ack(b"$JS.ACK.S.d.1.8.4.9.0", b"-NAK")
        + ack(b"$JS.ACK.S.d.1.9.5.9.0")
        + frames.rmsg(b"$G", b"$JS.ACK.S.d.1.10.6.9.0", b"_INBOX.s", (), 0, b"")
        + b"RS+ $G x 1\r\n"
        + ack(b"$JS.ACK.S.d.1.11.7.9.0")
    )
    for loop in filter(None, LOOPS.values()):
        pos, msgs, calls = _ack_outcome(loop, data)
        assert msgs == 6 and data[pos:].startswith(b"RS+ ")
        assert calls == [
            ("acks", b"$G", b"$JS.ACK.S.c", [1, 1, 2, 2]),
            ("acks", b"$G", b"$JS.ACK.S.d", [7, 3]),
            ("msg", b"$G", b"$JS.ACK.S.d.1.8.4.9.0", None, b"", b"-NAK"),
            ("acks", b"$G", b"$JS.ACK.S.d", [9, 5]),
            ("msg", b"$G", b"$JS.ACK.S.d.1.10.6.9.0", b"_INBOX.s", b"", b""),
        ]


# -- decode_records ------------------------------------------------------------------------


class _Subject:
    __slots__ = ("sbytes", "subject")

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.sbytes = subject.encode()


def _block(records: list[tuple[int, bytes, bytes]], lead: int) -> tuple[Any, ...]:
    """A block's bytes (after `lead` bytes of something else) and its slot fields."""
    from array import array

    buf = bytearray(b"L" * lead)
    offs, lens, tss, subjs = array("q"), array("i"), array("q"), []
    for k, (ts, hdr, data) in enumerate(records):
        entry = _Subject(f"s.{k % 3}")
        rlen = (34 + len(hdr) if hdr else 30) + len(entry.sbytes) + len(data)
        offs.append(len(buf))
        lens.append(rlen)
        tss.append(ts)
        subjs.append(entry)
        storeloop.append_record(buf, rlen, 100 + k, ts, entry.sbytes, hdr, data)
    return buf, offs, lens, tss, subjs


def _decoded(decode: Any, fields: tuple[Any, ...], src: Any, shift: int, verify: bool,
             slots: list[int]) -> tuple[Any, ...]:  # fmt: skip
    _, offs, lens, tss, subjs = fields
    run: list[Any] = []
    try:
        bad = decode(offs, lens, tss, subjs, 100, slots, src, shift, verify,
                     lambda *args: args, run)  # fmt: skip
    except Exception as exc:  # both must fail alike, if at all
        return ("raised", type(exc).__name__, run)
    return bad, run


_block_records = st.lists(
    st.tuples(
        st.integers(0, (1 << 63) - 1),
        st.one_of(st.just(b""), st.binary(min_size=1, max_size=40)),
        st.binary(max_size=120),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    records=_block_records,
    lead=st.integers(0, 9),
    cut=st.integers(0, 9),
    verify=st.booleans(),
    as_bytes=st.booleans(),
    data=st.data(),
)
def test_storeloop_decode_records_compiled_matches_its_twin(
    records: list[tuple[int, bytes, bytes]], lead: int, cut: int, verify: bool, as_bytes: bool,
    data: st.DataObject,
) -> None:  # fmt: skip
    if core.IMPLEMENTATION != "compiled":
        pytest.skip("the compiled core is not built")
    fields = _block(records, lead)
    buf = fields[0]
    slots = sorted(data.draw(st.sets(st.integers(0, len(records) - 1), min_size=1)))
    shift = min(cut, lead)
    src: Any = bytes(buf[shift:]) if as_bytes else bytearray(buf[shift:])
    pure = _decoded(storeloop.decode_records, fields, src, shift, verify, slots)
    assert pure[0] == -1 and len(pure[1]) == len(slots)
    for (subject, seq, ts, hdr, payload), i in zip(pure[1], slots, strict=True):
        assert (seq, ts, hdr, payload) == (100 + i, records[i][0], records[i][1], records[i][2])
        assert subject == f"s.{i % 3}"
    assert _decoded(core.decode_records, fields, src, shift, verify, slots) == pure
    # Damaged: a byte changed, or the bytes cut short; the twins still agree.
    if data.draw(st.booleans()) and len(src) > 0:
        at = data.draw(st.integers(0, len(src) - 1))
        damaged = bytearray(src)
        damaged[at] ^= data.draw(st.integers(1, 255))
    else:
        damaged = bytearray(src[: data.draw(st.integers(0, len(src)))])
    for view in (bytes(damaged), damaged):
        assert _decoded(core.decode_records, fields, view, shift, verify, slots) == _decoded(
            storeloop.decode_records, fields, view, shift, verify, slots
        )


# -- format_deliveries ---------------------------------------------------------------------


class _Msg:
    __slots__ = ("data", "hdr", "seq", "subject", "ts")

    def __init__(self, subject: str, seq: int, ts: int, hdr: bytes, data: bytes) -> None:
        self.subject, self.seq, self.ts, self.hdr, self.data = subject, seq, ts, hdr, data


_int64 = st.one_of(st.integers(0, 20), st.integers(-(1 << 63), (1 << 63) - 1))
_msgs = st.lists(
    st.builds(
        _Msg,
        st.sampled_from(["a", "orders.1", "é.ü", "x" * 70]),
        _int64,
        _int64,
        st.one_of(st.just(b""), st.binary(min_size=1, max_size=30)),
        st.binary(max_size=60),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    msgs=_msgs,
    dseq=st.integers(0, (1 << 62)),
    npc=st.one_of(st.integers(0, 5), st.integers(0, (1 << 62))),
    track=st.booleans(),
    known=st.lists(_int64, max_size=4),
)
def test_storeloop_format_deliveries_compiled_matches_its_twin(
    msgs: list[_Msg], dseq: int, npc: int, track: bool, known: list[int]
) -> None:
    if core.IMPLEMENTATION != "compiled":
        pytest.skip("the compiled core is not built")
    prefix = b"$JS.ACK.S.c."
    results = []
    for fmt in (storeloop.format_deliveries, core.format_deliveries):
        pending = {seq: [1, 2, 3] for seq in known} if track else None
        records: list[bytes] = []
        answer = fmt(msgs, prefix, dseq, npc, 7, 9, pending, records)
        results.append((answer, records, pending))
    assert results[0] == results[1]
    # The records are what _prepare and frames.jrun_record make.
    (end, left), records, _ = results[0]
    assert end == dseq + len(msgs)
    for msg, record in zip(msgs, records, strict=True):
        npc = max(npc - 1, 0)
        reply = prefix + b"%d.%d.%d.%d.%d" % (1, msg.seq, dseq, msg.ts, npc)
        assert record == frames.jrun_record(msg.subject.encode(), reply, msg.hdr, msg.data)
        dseq += 1
    assert left == npc
