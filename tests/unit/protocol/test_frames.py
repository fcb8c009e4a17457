"""Exact bytes of the frames the broker writes (protocol.md sections 3, 9, 11, 16, 19)."""

from __future__ import annotations

import pytest

from shardbroker import errors
from shardbroker.protocol import frames


def test_frames_constants() -> None:
    assert frames.PING == b"PING\r\n"
    assert frames.PONG == b"PONG\r\n"
    assert frames.OK == b"+OK\r\n"
    assert frames.CRLF == b"\r\n"


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        (errors.ERR_UNKNOWN_PROTOCOL, b"-ERR 'Unknown Protocol Operation'\r\n"),
        (errors.ERR_MAX_PAYLOAD, b"-ERR 'Maximum Payload Violation'\r\n"),
        (errors.ERR_MAX_CONTROL_LINE, b"-ERR 'maximum control line exceeded'\r\n"),
        (errors.ERR_STALE_CONNECTION, b"-ERR 'Stale Connection'\r\n"),
        (errors.ERR_INVALID_SUBJECT, b"-ERR 'Invalid Subject'\r\n"),
        (
            errors.err_publish_violation("_GR_.abc.def"),
            b"-ERR 'Permissions Violation for Publish to \"_GR_.abc.def\"'\r\n",
        ),
        (
            errors.err_subscribe_violation("q", "_sys_"),
            b'-ERR \'Permissions Violation for Subscription to "q" using queue "_sys_"\'\r\n',
        ),
    ],
)
def test_frames_err(text: str, wire: bytes) -> None:
    assert frames.err(text) == wire


def test_frames_info_has_blank_before_crlf() -> None:
    body = b'{"server_id":"x","max_payload":1048576}'
    assert frames.info(body) == b'INFO {"server_id":"x","max_payload":1048576} \r\n'


@pytest.mark.parametrize(
    ("reply", "sid", "subject", "capture"),
    [
        # protocol.md 19.5, nats-server 2.15.1
        (
            b"_INBOX.abc.1",
            b"7",
            b"svc.none",
            b"HMSG _INBOX.abc.1 7 40 40\r\nNATS/1.0 503\r\nNats-Subject: svc.none\r\n\r\n\r\n",
        ),
        (
            b"_INBOX.x",
            b"2",
            b"foo",
            b"HMSG _INBOX.x 2 35 35\r\nNATS/1.0 503\r\nNats-Subject: foo\r\n\r\n\r\n",
        ),
    ],
)
def test_frames_no_responders_matches_capture(
    reply: bytes, sid: bytes, subject: bytes, capture: bytes
) -> None:
    assert frames.no_responders(reply, sid, subject) == capture


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        ((b"$G", b"foo"), b"RS+ $G foo\r\n"),
        ((b"$G", b"foo.*", None), b"RS+ $G foo.*\r\n"),
        ((b"$G", b"foo", b"q"), b"RS+ $G foo q 1\r\n"),
        ((b"acc", b"foo.>", b"q", 12), b"RS+ acc foo.> q 12\r\n"),
    ],
)
def test_frames_rs_plus(args: tuple[bytes, ...], wire: bytes) -> None:
    assert frames.rs_plus(*args) == wire


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        ((b"$G", b"foo"), b"RS- $G foo\r\n"),
        ((b"$G", b"foo", None), b"RS- $G foo\r\n"),
        ((b"acc", b"foo.>", b"q"), b"RS- acc foo.> q\r\n"),
    ],
)
def test_frames_rs_minus(args: tuple[bytes, ...], wire: bytes) -> None:
    assert frames.rs_minus(*args) == wire


HDR = b"NATS/1.0\r\n\r\n"


@pytest.mark.parametrize(
    ("reply", "queues", "header_size", "message", "wire"),
    [
        (None, (), 0, b"hi", b"RMSG $G foo 2\r\nhi\r\n"),
        (None, (), 0, b"", b"RMSG $G foo 0\r\n\r\n"),
        (b"r", (), 0, b"hi", b"RMSG $G foo r 2\r\nhi\r\n"),
        (None, (b"q1", b"q2"), 0, b"hi", b"RMSG $G foo | q1 q2 2\r\nhi\r\n"),
        (b"r", (b"q1", b"q2"), 0, b"hi", b"RMSG $G foo + r q1 q2 2\r\nhi\r\n"),
        (b"r", [b"q"], 0, b"a\r\nb", b"RMSG $G foo + r q 4\r\na\r\nb\r\n"),
        (None, (), 12, HDR + b"hi", b"HRMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        (b"r", (), 12, HDR, b"HRMSG $G foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        (None, (b"q",), 12, HDR, b"HRMSG $G foo | q 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        (b"r", (b"q",), 12, HDR + b"x", b"HRMSG $G foo + r q 12 13\r\nNATS/1.0\r\n\r\nx\r\n"),
    ],
)
def test_frames_rmsg(
    reply: bytes | None,
    queues: tuple[bytes, ...],
    header_size: int,
    message: bytes,
    wire: bytes,
) -> None:
    assert frames.rmsg(b"$G", b"foo", reply, queues, header_size, message) == wire


@pytest.mark.parametrize(
    ("verb", "args", "wire"),
    [
        (b"READY", (), b"READY\r\n"),
        (b"SDOWN", (3,), b"SDOWN 3\r\n"),
        (b"HELLO", (b"w1", 0, 42), b"HELLO w1 0 42\r\n"),
        (b"STOP", (b"now",), b"STOP now\r\n"),
    ],
)
def test_frames_control(verb: bytes, args: tuple[bytes | int, ...], wire: bytes) -> None:
    assert frames.control(verb, *args) == wire
