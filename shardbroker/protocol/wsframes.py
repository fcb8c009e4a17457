"""Websocket framing (RFC 6455 §5, RFC 7692) as nats-server applies it on its websocket
port: decoding what a client sends, encoding what the server sends, close frames and
permessage-deflate without context takeover.

Pure: bytes in, events and bytes out; no asyncio, no sockets. Used by the websocket
listener of a worker (worker/websocket.py), whose connection feeds every read to a
``FrameReader`` and hands the payload bytes of data frames to the NATS parser as one
stream: frame and message boundaries mean nothing to NATS (an op may be cut anywhere,
one frame may hold many ops).

``FrameReader.feed`` keeps its state between reads (a frame header or payload cut by a
read goes on in the next one) and returns events in wire order: payload pieces of data
frames as they arrive (``DATA``, or ``DEFLATED`` pieces of a compressed message closed
by ``DEFLATED_END``), whole control frames (``PING``, ``PONG``, ``CLOSE``), and at most
one ``ERROR`` (a protocol error: its reason goes into a 1002 close frame), after which
the reader reads nothing more. Checks follow nats-server's order and words.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

# Opcodes (RFC 6455 §5.2).
CONTINUATION = 0
TEXT = 1
BINARY = 2
CLOSE = 8
PING = 9
PONG = 10

# Events of FrameReader.feed besides the control opcodes above.
DATA = 0
DEFLATED = 1
DEFLATED_END = 2
ERROR = -1

_FIN = 0x80
_RSV1 = 0x40
_RSV23 = 0x30
_MASK = 0x80
MAX_CONTROL_PAYLOAD = 125

# Close statuses (RFC 6455 §7.4.1) nats-server sends.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TLS_HANDSHAKE = 1015

# permessage-deflate: the tail a sender strips from each message (RFC 7692 §7.2.1), and
# what a receiver appends before inflating (that tail, then an empty final block).
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_INFLATE_TAIL = b"\x00\x00\xff\xff\x01\x00\x00\xff\xff"
# Outgoing data of at most this many bytes is sent uncompressed (nats-server's threshold).
COMPRESS_THRESHOLD = 64

# A payload piece of a read: (start, length, masking key or None, key offset).
Run = tuple[int, int, "bytes | None", int]
# Gathers runs of a read into one bytes object, unmasked (core.ws_unmask_runs).
UnmaskRuns = Callable[[bytes, list[Run]], bytes]
Event = tuple[int, bytes]


class FrameReader:
    """The frames a websocket client sends, decoded read by read (see the module
    docstring). `unmask_runs` is the (compiled) unmasking function: the data frames of
    a read that follow one another become one DATA event, unmasked into one object in
    one pass. `mask_required` is off only when the client asked for no masking and the
    server agreed; `compression` when permessage-deflate was negotiated (RSV1 frames
    are refused otherwise)."""

    __slots__ = (
        "compressed",
        "compression",
        "control",
        "failed",
        "final",
        "head",
        "in_message",
        "key",
        "key_pos",
        "kind",
        "mask_required",
        "remaining",
        "runs",
        "unmask_runs",
    )

    def __init__(
        self, unmask_runs: UnmaskRuns, mask_required: bool = True, compression: bool = False
    ) -> None:
        self.unmask_runs = unmask_runs
        self.mask_required = mask_required
        self.compression = compression
        self.head = b""  # a frame header cut by the end of a read
        self.remaining = 0  # payload bytes of the current frame still to come
        self.key: bytes | None = None  # the current frame's masking key
        self.key_pos = 0
        self.kind = DATA  # the current frame: DATA, DEFLATED or a control opcode
        self.final = False  # the current frame ends its message
        self.control = b""  # a control frame's payload so far
        # A data message is open (its final frame not yet read), and it is compressed.
        self.in_message = False
        self.compressed = False
        self.failed = False
        # Data payload pieces of the current read not yet gathered into an event.
        self.runs: list[Run] = []

    def feed(self, data: bytes) -> list[Event]:
        """Decode a read; the events in wire order (see the module docstring)."""
        events: list[Event] = []
        if self.failed:
            return events
        if self.head:
            data = self.head + data
            self.head = b""
        pos = 0
        n = len(data)
        while pos < n:
            if self.remaining:
                pos = self._payload(data, pos, events)
                continue
            end = self._header(data, pos, events)
            if end < 0:
                if end == -1:  # the header is cut: wait for the rest
                    self.head = data[pos:]
                break
            pos = end
            if not self.remaining:  # an empty payload ends its frame at once
                self._frame_done(data, events)
        self._gather(data, events)
        return events

    def _gather(self, data: bytes, events: list[Event]) -> None:
        """The data pieces since the last event, as one DATA event (before any other)."""
        runs = self.runs
        if runs:
            events.append((DATA, self.unmask_runs(data, runs)))
            self.runs = []

    def _event(self, data: bytes, events: list[Event], kind: int, payload: bytes) -> None:
        self._gather(data, events)
        events.append((kind, payload))

    def _fail(self, data: bytes, events: list[Event], reason: str) -> int:
        self.failed = True
        self._event(data, events, ERROR, reason.encode())
        return -2

    def _header(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Decode the frame header at `pos`: where its payload starts, -1 when the
        header is not whole yet, -2 after a protocol error (its event appended)."""
        n = len(data)
        if n - pos < 2:
            return -1
        b0 = data[pos]
        b1 = data[pos + 1]
        length = b1 & 0x7F
        masked = bool(b1 & _MASK)
        size = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if masked else 0)
        if n - pos < size:
            return -1
        opcode = b0 & 0x0F
        final = bool(b0 & _FIN)
        compressed = bool(b0 & _RSV1)
        if b0 & _RSV23:
            return self._fail(data, events, "RSV2 and RSV3 must be clear")
        if compressed and not self.compression:
            return self._fail(
                data, events, "compressed frame received without negotiated permessage-deflate"
            )
        if self.mask_required and not masked:
            return self._fail(data, events, "mask bit missing")
        if opcode in (CLOSE, PING, PONG):
            if length > MAX_CONTROL_PAYLOAD:
                return self._fail(
                    data,
                    events,
                    "control frame length bigger than maximum allowed of "
                    f"{MAX_CONTROL_PAYLOAD} bytes",
                )
            if not final:
                return self._fail(data, events, "control frame does not have final bit set")
            if compressed:
                return self._fail(data, events, "control frame must not be compressed")
            kind = opcode
        elif opcode in (TEXT, BINARY):
            if self.in_message:
                return self._fail(
                    data,
                    events,
                    "new message started before final frame for previous message was received",
                )
            self.in_message = not final
            self.compressed = compressed
            kind = DEFLATED if compressed else DATA
        elif opcode == CONTINUATION:
            if not self.in_message or compressed:
                return self._fail(data, events, "invalid continuation frame")
            self.in_message = not final
            kind = DEFLATED if self.compressed else DATA
        else:
            return self._fail(data, events, f"unknown opcode {opcode}")
        at = pos + 2
        if length == 126:
            length = struct.unpack_from(">H", data, at)[0]
            at += 2
        elif length == 127:
            length = struct.unpack_from(">Q", data, at)[0]
            if length >> 63:
                return self._fail(data, events, "invalid 64-bit payload length")
            at += 8
        if masked:
            self.key = data[at : at + 4]
            at += 4
        else:
            self.key = None
        self.key_pos = 0
        self.kind = kind
        self.final = final
        self.remaining = length
        self.control = b""
        return at

    def _payload(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Take what the read holds of the current frame's payload; returns the new
        position (the frame ends there when nothing of it remains)."""
        take = min(self.remaining, len(data) - pos)
        run = (pos, take, self.key, self.key_pos)
        self.key_pos = (self.key_pos + take) & 3
        self.remaining -= take
        kind = self.kind
        if kind == DATA:
            self.runs.append(run)
        elif kind == DEFLATED:
            self._event(data, events, DEFLATED, self.unmask_runs(data, [run]))
        else:
            self.control += self.unmask_runs(data, [run])
        if not self.remaining:
            self._frame_done(data, events)
        return pos + take

    def _frame_done(self, data: bytes, events: list[Event]) -> None:
        kind = self.kind
        if kind == DEFLATED:
            if self.final:
                self._event(data, events, DEFLATED_END, b"")
        elif kind != DATA:
            self._event(data, events, kind, self.control)
            self.control = b""


def frame_header(length: int, opcode: int = BINARY, fin: bool = True, rsv1: bool = False) -> bytes:
    """The header of an unmasked frame (what a server sends)."""
    b0 = (_FIN if fin else 0) | (_RSV1 if rsv1 else 0) | opcode
    if length <= 125:
        return bytes((b0, length))
    if length < 65536:
        return struct.pack(">BBH", b0, 126, length)
    return struct.pack(">BBQ", b0, 127, length)


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return frame_header(len(payload), opcode) + payload


def close_payload(status: int, text: str) -> bytes:
    """A close frame's payload: the status, then the text (longer than a control frame
    allows: cut, with "..." as the hint, as nats-server does)."""
    body = text.encode()
    if len(body) > MAX_CONTROL_PAYLOAD - 2:
        body = body[: MAX_CONTROL_PAYLOAD - 5] + b"..."
    return struct.pack(">H", status) + body


def valid_close_status(status: int) -> bool:
    """A status a close frame may carry (nats-server's wsIsValidCloseStatus)."""
    if status in (CLOSE_NO_STATUS, 1004, 1006, CLOSE_TLS_HANDSHAKE):
        return False
    return 1000 <= status < 5000 and not 1016 <= status <= 2999


def close_answer(payload: bytes) -> tuple[bytes | None, str]:
    """What the server answers a client's close frame with: (the payload of its close
    frame, "") or (None, the reason of a protocol error). An empty close is answered
    with an empty one; a status is echoed with its text, unless the text is not UTF-8
    (then 1007)."""
    if len(payload) == 1:
        return None, "close frame payload cannot be 1 byte"
    if not payload:
        return b"", ""
    status = struct.unpack_from(">H", payload)[0]
    if not valid_close_status(status):
        return None, f"invalid close status code {status}"
    body = payload[2:]
    try:
        body.decode()
    except UnicodeDecodeError:
        return close_payload(CLOSE_INVALID_PAYLOAD, "invalid utf8 body in close frame"), ""
    return payload, ""


def deflate(data: bytes) -> bytes:
    """One message compressed with a fresh state (no context takeover), at the fastest
    level, sync-flushed, without the deflate tail (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[: -len(_DEFLATE_TAIL)] if out.endswith(_DEFLATE_TAIL) else out


class InflateError(ValueError):
    """A compressed message that inflates past its limit, or is not deflate data."""


def inflate(parts: list[bytes], limit: int) -> bytes:
    """A compressed message (its frames' payloads) inflated with a fresh state; more
    than `limit` bytes, or bytes that are not deflate data, raise InflateError."""
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(b"".join(parts) + _INFLATE_TAIL, limit + 1)
    except zlib.error as exc:
        raise InflateError(str(exc)) from None
    if len(out) > limit:
        raise InflateError("inflated message exceeds the maximum payload")
    return out
