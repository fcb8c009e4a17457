"""Expected results for the client parser cases in ``cases/*.nats``.

Each ``cases/<name>.nats`` file is raw client input; ``CASES[name]`` says which handler
calls it must produce, in order, and how the connection ends (``None``: still open;
``Closed(text)``: ProtocolError with that wire text, ``Closed(None)`` a silent close).
test_parser.py replays every file whole, line by line, byte by byte and in random
chunks, and expects the same result each time.

Also home of ``Recorder``, the handler that turns every ``process_*`` callback into a
tuple; the fuzz tests import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shardbroker.errors import (
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_PROTOCOL,
    ProtocolError,
)
from shardbroker.protocol.parser import block_payloads

Op = tuple[Any, ...]


class Recorder:
    """A ClientParser handler recording each callback as a tuple.

    ("pub", subject, reply, payload, size_token)
    ("hpub", subject, reply, header_size, message, header_token, total_token)
    ("sub", subject, queue, sid[, max_msgs])   ("sub_limit_error",)   ("unsub", sid, max_msgs)
    ("ping",) ("pong",) ("connect", body) ("err",)
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.runs = 0
        self.blocks = 0

    def process_pub(
        self, subject: bytes, reply: bytes | None, payload: bytes, size_token: bytes
    ) -> None:
        self.ops.append(("pub", subject, reply, payload, size_token))

    def process_pub_run(
        self,
        subject: bytes,
        reply: bytes | None,
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None:
        # A run is the same messages in one call: record them one by one, so every
        # expectation holds whichever way the parser grouped them.
        assert len(payloads) >= 2
        self.runs += 1
        each = [sizes] * len(payloads) if isinstance(sizes, bytes) else sizes
        assert len(each) == len(payloads)
        for payload, size in zip(payloads, each, strict=True):
            assert len(payload) == int(size)
            self.ops.append(("pub", subject, reply, payload, size))

    def process_pub_block(
        self, subject: bytes, block: bytes, head: bytes, count: int, size_token: bytes
    ) -> None:
        # A block is the bytes of `count` identical PUBs: check that, then record them.
        assert count >= 2
        size = int(size_token)
        assert head == b"PUB %s %s\r\n" % (subject, size_token)
        assert len(block) == count * (len(head) + size + 2)
        self.blocks += 1
        for payload in block_payloads(block, len(head), count, size):
            assert len(payload) == size
            self.ops.append(("pub", subject, None, payload, size_token))

    def process_hpub(
        self,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        header_token: bytes,
        total_token: bytes,
    ) -> None:
        self.ops.append(("hpub", subject, reply, header_size, message, header_token, total_token))

    def process_sub(
        self, subject: bytes, queue: bytes | None, sid: bytes, max_msgs: int = 0
    ) -> None:
        self.ops.append(sub(subject, sid, queue, max_msgs))

    def process_sub_limit_error(self) -> None:
        self.ops.append(SUB_LIMIT_ERROR)

    def process_unsub(self, sid: bytes, max_msgs: int | None) -> None:
        self.ops.append(("unsub", sid, max_msgs))

    def process_ping(self) -> None:
        self.ops.append(("ping",))

    def process_pong(self) -> None:
        self.ops.append(("pong",))

    def process_connect(self, body: bytes) -> None:
        self.ops.append(("connect", body))

    def process_client_err(self) -> None:
        # Like worker/client.py: a client -ERR closes the connection without a reply.
        self.ops.append(("err",))
        raise ProtocolError(None, "client sent -ERR")


@dataclass(frozen=True)
class Closed:
    """The parser raised ProtocolError with this wire text (None: silent close)."""

    wire_text: str | None


# What a replay ends with: the ops recorded, and how the connection ended.
Outcome = tuple[list[Op], Closed | None]

SILENT = Closed(None)
UNKNOWN = Closed(ERR_UNKNOWN_PROTOCOL)
MAX_PAYLOAD = Closed(ERR_MAX_PAYLOAD)
MAX_CONTROL_LINE = Closed(ERR_MAX_CONTROL_LINE)


@dataclass(frozen=True)
class Case:
    ops: tuple[Op, ...]
    end: Closed | None = None
    headers: bool = False
    sub_max: bool = False  # CONNECT asked for the atomic auto-unsubscribe extension
    max_payload: int = 1024 * 1024
    max_control_line: int = 4096


# -- op builders ---------------------------------------------------------------------


def pub(
    subject: bytes, payload: bytes, reply: bytes | None = None, size: bytes | None = None
) -> Op:
    return ("pub", subject, reply, payload, str(len(payload)).encode() if size is None else size)


def hpub(subject: bytes, headers: bytes, payload: bytes, reply: bytes | None = None) -> Op:
    total = len(headers) + len(payload)
    return (
        "hpub",
        subject,
        reply,
        len(headers),
        headers + payload,
        str(len(headers)).encode(),
        str(total).encode(),
    )


def sub(subject: bytes, sid: bytes, queue: bytes | None = None, max_msgs: int = 0) -> Op:
    if max_msgs:
        return ("sub", subject, queue, sid, max_msgs)
    return ("sub", subject, queue, sid)


def unsub(sid: bytes, max_msgs: int | None = None) -> Op:
    return ("unsub", sid, max_msgs)


def connect(body: bytes) -> Op:
    return ("connect", body)


PING: Op = ("ping",)
PONG: Op = ("pong",)
CLIENT_ERR: Op = ("err",)
SUB_LIMIT_ERROR: Op = ("sub_limit_error",)

EMPTY_HDR = b"NATS/1.0\r\n\r\n"
FOO_HDR = b"NATS/1.0\r\nFoo: Bar\r\n\r\n"

CASES: dict[str, Case] = {
    # -- every verb, normal form ---------------------------------------------------------
    "pub": Case((pub(b"foo", b"hello"),)),
    "pub_reply": Case((pub(b"foo", b"hello", reply=b"bar"),)),
    "pub_zero_payload": Case((pub(b"NOTIFY", b""), pub(b"foo", b"", reply=b"bar"))),
    "pub_payload_with_crlf": Case(
        (pub(b"foo", b"ab\r\nPUB x 1\r\n\r\ncd"), pub(b"foo", b"\r\n")),
    ),
    "pub_leading_zero_size": Case(
        (pub(b"foo", b"hello", size=b"05"), pub(b"foo", b"", reply=b"bar", size=b"000")),
    ),
    "pub_blanks": Case((pub(b"foo", b"abc"), pub(b"foo", b"abc", reply=b"bar"))),
    "pub_binary_payload": Case((pub(b"bin", b"\x00\xff\n\r\t "),)),
    "pub_vt_ff_not_blanks": Case((pub(b"foo\x0b", b"abc"), sub(b"a\x0cb", b"1"))),
    "sub": Case(
        (sub(b"foo", b"1"), sub(b"foo", b"2", b"q1"), sub(b"foo.*", b"3"), sub(b">", b"4")),
    ),
    "sub_blanks": Case((sub(b"foo", b"1"), sub(b"foo", b"2"), sub(b"foo", b"3", b"q"))),
    # The atomic auto-unsubscribe extension, negotiated: `max=<n>` ends a SUB; the
    # marker is looked for after the subject only, and is lower case.
    "sub_max": Case(
        (
            sub(b"orders.*", b"7", max_msgs=1),
            sub(b"jobs", b"8", b"workers", 100),
            sub(b"a", b"9", max_msgs=999_999_999),
            sub(b"a", b"10", max_msgs=7),
            sub(b"a", b"11", max_msgs=2),
            sub(b"a", b"12", b"q", 3),
            sub(b"max=5", b"13"),
            sub(b"a", b"14"),
            sub(b"a", b"15", b"q"),
            sub(b"a", b"MAX=1", b"16"),
            sub(b"a", b"maximum=1", b"17"),
        ),
        sub_max=True,
    ),
    # Every malformed extended SUB gets the non-fatal error, and the next line is read.
    "sub_max_malformed": Case(
        (*[SUB_LIMIT_ERROR] * 12, sub(b"a", b"1", max_msgs=1), PING), sub_max=True
    ),
    # Not negotiated: a `max=` token is a queue or a sid, as nats-server reads it, and
    # one token too many is the usual silent close.
    "sub_max_not_negotiated": Case(
        (
            sub(b"a", b"max=1", b"7"),
            sub(b"a", b"7", b"max=1"),
            sub(b"a", b"max="),
            sub(b"a", b"max=0", b"q"),
        ),
        SILENT,
    ),
    "unsub": Case(
        (
            unsub(b"1"),
            unsub(b"1"),
            unsub(b"2", 5),
            unsub(b"3", 0),
            unsub(b"4", -1),
            unsub(b"5", -1),
            unsub(b"6", -1),
            # As nats-server's parseSize: at most 9 digits, leading zeros allowed.
            unsub(b"7", 999_999_999),
            unsub(b"8", -1),
            unsub(b"9", -1),
            unsub(b"10", 7),
        ),
    ),
    "ping_pong": Case((PING, PONG, PING, PONG, PING)),
    "verbs_case_insensitive": Case(
        (
            PING,
            PING,
            PONG,
            PONG,
            sub(b"foo", b"1"),
            sub(b"foo", b"2", b"q"),
            unsub(b"1"),
            unsub(b"2", 3),
            connect(b"{}"),
        ),
    ),
    "pub_case_insensitive": Case(
        (pub(b"foo", b"a"), pub(b"foo", b"b", reply=b"r"), pub(b"foo", b"")),
    ),
    "hpub_case_insensitive": Case(
        (hpub(b"foo", EMPTY_HDR, b""), hpub(b"foo", EMPTY_HDR, b"x", reply=b"r")),
        headers=True,
    ),
    "bare_lf": Case((sub(b"foo", b"1"), pub(b"foo", b"abc"), PING, PONG, unsub(b"1"))),
    "connect": Case(
        (
            connect(b'{"verbose": false, "pedantic": false, "name": "a b", "lang": "python3"}'),
            connect(b'{"verbose":true}'),
        ),
    ),
    "ok_info_ignored": Case((PING,)),
    "session": Case(
        (
            connect(b'{"verbose":true,"pedantic":false}'),
            sub(b"foo", b"1"),
            sub(b"foo", b"2", b"q1"),
            pub(b"foo", b"hello"),
            pub(b"foo", b"", reply=b"bar"),
            unsub(b"1"),
            unsub(b"99"),
            pub(b"foo", b"hi"),
            PING,
        ),
    ),
    "hpub": Case((hpub(b"foo", FOO_HDR, b"hello"),), headers=True),
    "hpub_reply": Case((hpub(b"foo", FOO_HDR, b"hello", reply=b"_INBOX.1"),), headers=True),
    "hpub_header_only": Case((hpub(b"foo", EMPTY_HDR, b""),), headers=True),
    "hpub_zero_header": Case((hpub(b"foo", b"", b"hello"),), headers=True),
    "hpub_blanks_and_crlf_payload": Case(
        (hpub(b"foo", EMPTY_HDR, b"a\r\nb", reply=b"r"),), headers=True
    ),
    # -- a client -ERR closes silently; nothing after it is parsed -------------------------
    "client_err": Case((sub(b"foo", b"1"), CLIENT_ERR), SILENT),
    # -- Unknown Protocol Operation ----------------------------------------------------
    "err_unknown_verb": Case((PING,), UNKNOWN),
    "err_misspelt_verb": Case((), UNKNOWN),
    "err_client_msg": Case((), UNKNOWN),
    "err_client_hmsg": Case((), UNKNOWN, headers=True),
    "err_client_route_op": Case((), UNKNOWN),
    "err_unsub_alone": Case((PING,), UNKNOWN),
    "err_pub_alone": Case((), UNKNOWN),
    "err_sub_alone": Case((), UNKNOWN),
    "err_hpub_alone": Case((), UNKNOWN, headers=True),
    "err_leading_blank": Case((PING,), UNKNOWN),
    "err_leading_tab": Case((), UNKNOWN),
    "err_empty_line": Case((PING,), UNKNOWN),
    "err_unknown_verb_no_newline": Case((PING,), UNKNOWN),
    "err_payload_too_long": Case((), UNKNOWN),
    "err_payload_lf_only": Case((), UNKNOWN),
    "err_payload_cr_only": Case((), UNKNOWN),
    "err_hpub_payload_too_long": Case((), UNKNOWN, headers=True),
    # -- silent close ------------------------------------------------------------------
    "err_pub_no_size": Case((sub(b"foo", b"1"),), SILENT),
    "err_pub_blank_only": Case((), SILENT),
    "err_pub_size_not_digits": Case((), SILENT),
    "err_pub_size_negative": Case((), SILENT),
    "err_pub_size_plus": Case((), SILENT),
    "err_pub_size_hex": Case((), SILENT),
    "err_pub_size_ten_digits": Case((), SILENT),
    "err_pub_too_many_args": Case((), SILENT),
    "err_sub_no_sid": Case((), SILENT),
    "err_sub_too_many_args": Case((), SILENT),
    "err_unsub_too_many_args": Case((), SILENT),
    "err_hpub_without_headers": Case((sub(b"foo", b"1"),), SILENT),
    "err_hpub_header_over_total": Case((), SILENT, headers=True),
    "err_hpub_bad_size": Case((), SILENT, headers=True),
    "err_hpub_one_size": Case((), SILENT, headers=True),
    # -- limits (the files hold only the control line: the error must not wait for a
    #    payload) ---------------------------------------------------------------------
    "err_max_payload": Case((PING,), MAX_PAYLOAD),
    "err_max_payload_reply": Case((), MAX_PAYLOAD),
    "err_hpub_max_payload": Case((), MAX_PAYLOAD, headers=True),
    "max_payload_exact": Case((pub(b"foo", b"x" * 32),), max_payload=32),
    "err_max_payload_small": Case((), MAX_PAYLOAD, max_payload=32),
    # 64 argument bytes after "SUB " (bare LF: see test_parser for the CRLF split)
    "control_line_at_limit": Case((sub(b"s" * 62, b"0"),), max_control_line=64),
    "err_control_line_over_limit": Case((), MAX_CONTROL_LINE, max_control_line=64),
    "err_max_control_line": Case((PING,), MAX_CONTROL_LINE),
    # No newline at all: the partial line alone must trip the limit.
    "err_max_control_line_no_newline": Case((PING,), MAX_CONTROL_LINE),
}
