"""tools/natsrequest.py: cutting a server's bytes into frames, wherever reads split them;
URLs; the CONNECT a user JWT logs in with."""

from __future__ import annotations

import base64
import json

import nacl.signing
import pytest

from shardbroker.config import jwt
from shardbroker.tools.natsrequest import (
    Frame,
    FrameReader,
    RequestError,
    _connect_fields,
    parse_url,
    status_of,
)

STREAM = (
    b'INFO {"server_id":"x","nonce":"abc"}\r\n'
    b"PING\r\n"
    b"MSG _INBOX.a 1 5\r\nhello\r\n"
    b"HMSG _INBOX.a 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    b"MSG _INBOX.a 1 reply.x 0\r\n\r\n"
    b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n"
)
FRAMES = [
    Frame("INFO", ('{"server_id":"x","nonce":"abc"}',)),
    Frame("PING", ("",)),
    Frame("MSG", ("_INBOX.a", "1", "5"), b"", b"hello"),
    Frame("HMSG", ("_INBOX.a", "1", "16", "16"), b"NATS/1.0 503\r\n\r\n", b""),
    Frame("MSG", ("_INBOX.a", "1", "reply.x", "0"), b"", b""),
    Frame("-ERR", ("'Permissions Violation for Publish to \"x\"'",)),
]


@pytest.mark.parametrize("chunk", [1, 2, 7, len(STREAM)])
def test_frames_whatever_the_reads(chunk: int) -> None:
    reader = FrameReader()
    frames = []
    for at in range(0, len(STREAM), chunk):
        frames += reader.feed(STREAM[at : at + chunk])
    assert frames == FRAMES


def test_protocol_errors() -> None:
    with pytest.raises(RequestError, match="protocol error"):
        FrameReader().feed(b"MSG subject 1 many\r\n")
    with pytest.raises(RequestError, match="without its end"):
        FrameReader().feed(b"x" * ((1 << 20) + 1))


def test_status_of() -> None:
    assert status_of(b"NATS/1.0 503\r\n\r\n") == "503"
    assert status_of(b"NATS/1.0\r\nA: b\r\n\r\n") == ""
    assert status_of(b"") == ""


def test_parse_url() -> None:
    assert parse_url("nats://127.0.0.1:4333") == ("127.0.0.1", 4333)
    assert parse_url("localhost") == ("localhost", 4222)
    with pytest.raises(RequestError, match="TLS"):
        parse_url("tls://host:4222")
    with pytest.raises(RequestError, match="only nats://"):
        parse_url("http://host")


def test_connect_signs_the_nonce_with_the_user_seed() -> None:
    seed = jwt.new_seed("user")
    fields = _connect_fields({"nonce": "abcdefghijklmno"}, "the.user.jwt", seed)
    assert fields["jwt"] == "the.user.jwt" and fields["headers"] and fields["no_responders"]
    signature = base64.urlsafe_b64decode(str(fields["sig"]) + "==")
    raw = jwt.decode_public_key(jwt.public_key(seed), "user")
    assert raw is not None
    nacl.signing.VerifyKey(raw).verify(b"abcdefghijklmno", signature)
    assert "sig" not in _connect_fields({}, "t", seed)
    assert json.dumps(fields)  # CONNECT is JSON
