"""Websocket framing (protocol/wsframes.py): what the reader makes of client frames however
reads cut them, nats-server's protocol errors and close answers, the frames the server
writes, and permessage-deflate without context takeover."""

from __future__ import annotations

import itertools
import random
import struct
import zlib

import pytest

from shardbroker.core import ws_unmask_runs
from shardbroker.protocol import wsframes as wf

KEY = b"\x37\xfa\x21\x3d"


def client_frame(
    payload: bytes,
    opcode: int = wf.BINARY,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = KEY,
    length_form: int = 0,
) -> bytes:
    """A frame as a client sends it: masked with `key` (None: unmasked). `length_form`
    forces the 16-bit (126) or 64-bit (127) length form for a short payload."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mask = 0x80 if key is not None else 0
    if length_form == 127 or n >= 65536:
        head = struct.pack(">BBQ", b0, mask | 127, n)
    elif length_form == 126 or n > 125:
        head = struct.pack(">BBH", b0, mask | 126, n)
    else:
        head = struct.pack(">BB", b0, mask | n)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def events_of(data: bytes, cuts: list[int] | None = None, **kwargs: object) -> list[wf.Event]:
    """Feed `data` in pieces (cut at `cuts`), joining consecutive DATA events: what the
    NATS parser would see."""
    reader = wf.FrameReader(ws_unmask_runs, **kwargs)  # type: ignore[arg-type]
    bounds = [0, *(cuts or []), len(data)]
    out: list[wf.Event] = []
    for start, end in itertools.pairwise(bounds):
        for kind, payload in reader.feed(data[start:end]):
            if out and kind == wf.DATA and out[-1][0] == wf.DATA:
                out[-1] = (wf.DATA, out[-1][1] + payload)
            elif out and kind == wf.DEFLATED and out[-1][0] == wf.DEFLATED:
                out[-1] = (wf.DEFLATED, out[-1][1] + payload)
            else:
                out.append((kind, payload))
    return [event for event in out if event != (wf.DATA, b"")]


def test_wsframes_data_of_split_and_packed_ops_is_one_stream_however_cut() -> None:
    # nats-server's live example: a text frame, a non-final binary frame, a final
    # continuation, with a ping between the fragments and NATS ops cut anywhere.
    data = (
        client_frame(b"SUB fo", wf.TEXT)
        + client_frame(b"o 1\r\nPUB foo 2\r\nhi\r\nPI", fin=False)
        + client_frame(b"x", wf.PING)
        + client_frame(b"NG\r\n", wf.CONTINUATION)
        + client_frame(b"A" * 300, length_form=126)
        + client_frame(b"B" * 70000)
        + client_frame(b"C", length_form=127)
    )
    expected = [
        (wf.DATA, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPI"),
        (wf.PING, b"x"),
        (wf.DATA, b"NG\r\n" + b"A" * 300 + b"B" * 70000 + b"C"),
    ]
    assert events_of(data) == expected
    for cut in range(1, 60):
        assert events_of(data, [cut]) == expected, cut
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), 12))
        assert events_of(data, cuts) == expected, cuts
    assert events_of(data, list(range(1, len(data), 997))) == expected


def test_wsframes_every_byte_alone() -> None:
    data = (
        client_frame(b"PING\r\n") + client_frame(b"", wf.PONG) + client_frame(b"PUB a 1\r\nx\r\n")
    )
    assert events_of(data, list(range(1, len(data)))) == [
        (wf.DATA, b"PING\r\n"),
        (wf.PONG, b""),
        (wf.DATA, b"PUB a 1\r\nx\r\n"),
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (client_frame(b"PING\r\n", key=None), "mask bit missing"),
        (client_frame(b"x", 3), "unknown opcode 3"),
        (client_frame(b"x", 11), "unknown opcode 11"),
        (client_frame(b"x", rsv=0x20), "RSV2 and RSV3 must be clear"),
        (client_frame(b"x", rsv=0x10), "RSV2 and RSV3 must be clear"),
        (
            client_frame(b"x", rsv=0x40),
            "compressed frame received without negotiated permessage-deflate",
        ),
        (
            client_frame(b"x" * 126, wf.PING),
            "control frame length bigger than maximum allowed of 125 bytes",
        ),
        (client_frame(b"x", wf.PING, fin=False), "control frame does not have final bit set"),
        (client_frame(b"x", wf.CONTINUATION), "invalid continuation frame"),
        (
            client_frame(b"PI", fin=False) + client_frame(b"NG\r\n"),
            "new message started before final frame for previous message was received",
        ),
        (
            struct.pack(">BBQ", 0x82, 0xFF, 1 << 63) + KEY,
            "invalid 64-bit payload length",
        ),
    ],
)
def test_wsframes_protocol_errors(frame: bytes, reason: str) -> None:
    before = client_frame(b"PING\r\n")
    reader = wf.FrameReader(ws_unmask_runs)
    events = reader.feed(before + frame + client_frame(b"PONG\r\n"))
    # What came before the bad frame is kept (with a fragment before it, if any); nothing
    # after it is read.
    assert events[0][0] == wf.DATA and events[0][1] in (b"PING\r\n", b"PING\r\nPI")
    assert events[-1] == (wf.ERROR, reason.encode())
    assert reader.feed(client_frame(b"PING\r\n")) == []


def test_wsframes_rsv1_on_a_continuation_is_invalid_with_compression() -> None:
    data = client_frame(b"a", rsv=0x40, fin=False) + client_frame(b"b", wf.CONTINUATION, rsv=0x40)
    assert events_of(data, compression=True)[-1] == (wf.ERROR, b"invalid continuation frame")


def test_wsframes_control_frame_must_not_be_compressed() -> None:
    data = client_frame(b"x", wf.PING, rsv=0x40)
    assert events_of(data, compression=True) == [
        (wf.ERROR, b"control frame must not be compressed")
    ]


def test_wsframes_unmasked_frames_when_no_masking_was_agreed() -> None:
    data = client_frame(b"PING\r\n", key=None) + client_frame(b"PONG\r\n")
    assert events_of(data, mask_required=False) == [(wf.DATA, b"PING\r\nPONG\r\n")]


def test_wsframes_compressed_message_in_fragments_then_a_plain_one() -> None:
    text = b"PUB foo 1000\r\n" + b"z" * 1000 + b"\r\nPING\r\n"
    packed = wf.deflate(text)
    data = (
        client_frame(packed[:10], rsv=0x40, fin=False)
        + client_frame(b"", wf.PING)
        + client_frame(packed[10:], wf.CONTINUATION)
        + client_frame(b"PING\r\n")
    )
    for cut in (None, [3], [17], [len(data) - 3]):
        events = events_of(data, cut, compression=True)
        assert events == [
            (wf.DEFLATED, packed[:10]),
            (wf.PING, b""),
            (wf.DEFLATED, packed[10:]),
            (wf.DEFLATED_END, b""),
            (wf.DATA, b"PING\r\n"),
        ]
    assert wf.inflate([packed[:10], packed[10:]], 4096) == text


def test_wsframes_deflate_is_raw_deflate_without_context_and_tail() -> None:
    text = b"MSG foo 1 515\r\n" + b"a" * 515 + b"\r\n"
    packed = wf.deflate(text)
    assert not packed.endswith(b"\x00\x00\xff\xff")
    assert len(packed) < 40  # nats-server sent 22 bytes for a 515-byte MSG
    # Each message on its own: a fresh inflater reads it (no context taken over).
    assert zlib.decompressobj(-15).decompress(packed + b"\x00\x00\xff\xff") == text
    assert wf.deflate(text) == packed


def test_wsframes_inflate_limits() -> None:
    packed = wf.deflate(b"x" * 5000)
    assert wf.inflate([packed], 5000) == b"x" * 5000
    with pytest.raises(wf.InflateError):
        wf.inflate([packed], 4999)
    with pytest.raises(wf.InflateError):
        wf.inflate([b"\xff\xff\xff\xff"], 100)


@pytest.mark.parametrize(
    ("payload", "answer", "error"),
    [
        (b"", b"", ""),
        (b"x", None, "close frame payload cannot be 1 byte"),
        (struct.pack(">H", 1000) + b"bye", struct.pack(">H", 1000) + b"bye", ""),
        (struct.pack(">H", 4999), struct.pack(">H", 4999), ""),
        (struct.pack(">H", 3000), struct.pack(">H", 3000), ""),
        (struct.pack(">H", 1006), None, "invalid close status code 1006"),
        (struct.pack(">H", 1005), None, "invalid close status code 1005"),
        (struct.pack(">H", 1004), None, "invalid close status code 1004"),
        (struct.pack(">H", 1015), None, "invalid close status code 1015"),
        (struct.pack(">H", 1016), None, "invalid close status code 1016"),
        (struct.pack(">H", 2999), None, "invalid close status code 2999"),
        (struct.pack(">H", 999), None, "invalid close status code 999"),
        (struct.pack(">H", 5000), None, "invalid close status code 5000"),
        (
            struct.pack(">H", 1000) + b"\xff\xfe",
            struct.pack(">H", 1007) + b"invalid utf8 body in close frame",
            "",
        ),
    ],
)
def test_wsframes_close_answer(payload: bytes, answer: bytes | None, error: str) -> None:
    assert wf.close_answer(payload) == (answer, error)


def test_wsframes_close_payload_cuts_long_texts() -> None:
    assert wf.close_payload(1008, "Authentication Failure") == b"\x03\xf0Authentication Failure"
    long = wf.close_payload(1011, "x" * 200)
    assert len(long) == 125
    assert long.endswith(b"x...")
    assert len(wf.close_payload(1011, "x" * 123)) == 125  # fits: not cut


def test_wsframes_frame_headers() -> None:
    assert wf.frame_header(6) == b"\x82\x06"
    assert wf.frame_header(125) == b"\x82\x7d"
    assert wf.frame_header(126) == b"\x82\x7e\x00\x7e"
    assert wf.frame_header(65535) == b"\x82\x7e\xff\xff"
    assert wf.frame_header(65536) == b"\x82\x7f" + struct.pack(">Q", 65536)
    assert wf.frame_header(10, rsv1=True) == b"\xc2\x0a"
    assert wf.frame_header(10, wf.CONTINUATION, fin=False) == b"\x00\x0a"
    assert wf.control_frame(wf.PONG, b"hi") == b"\x8a\x02hi"
    assert wf.control_frame(wf.CLOSE) == b"\x88\x00"
