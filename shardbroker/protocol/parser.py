"""The NATS wire parser: client verbs (from sockets) and mesh verbs (from rings).

Pure: bytes in, calls on a handler out; no asyncio, no sockets. Imported by workers
(client connections and inbound rings), the storage process and the supervisor.

States, at Python granularity rather than nats-server's byte-at-a-time machine:

* control line: find the line end with one ``bytes.find(b"\\n")`` (a bare LF ends a
  line, a preceding CR is dropped), split the arguments once, dispatch on the verb;
* payload: PUB/HPUB declare a size; the payload is taken by that size (never scanned)
  and must be followed by exactly CRLF;
* split data: a partial control line or payload is kept in one bytearray until the rest
  arrives. ``max_control_line`` is checked on complete lines and on partial ones, and
  ``max_payload`` on the control line, before any payload byte is awaited.

Errors raise ``ProtocolError`` carrying the nats wire text (or None for the silent
closes nats-server does); the caller is the one catch site.

``ClientParser.feed`` is on the hot path: one call per ``data_received``; the handler's
``process_*`` methods are bound once in ``__init__``.
"""

from __future__ import annotations

from itertools import groupby, islice
from typing import Any

from shardbroker.const import ClosedState
from shardbroker.errors import (
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_PROTOCOL,
    ProtocolError,
)
from shardbroker.protocol.frames import CRLF

# nats-server parses at most 9 size digits; longer is a bad size (silent close).
_MAX_SIZE_DIGITS = 9
# Runs of PUBs with payloads this large are passed on as the bytes read (a block):
# cutting them into lines and joining them again is where large messages spent most.
BLOCK_MIN_PAYLOAD = 256
BLOCK_MIN_BYTES = 2 * BLOCK_MIN_PAYLOAD

_PUB = b"PUB"
_HPUB = b"HPUB"
_SUB = b"SUB"
_UNSUB = b"UNSUB"
_PING = b"PING"
_PONG = b"PONG"
_CONNECT = b"CONNECT"
_INFO = b"INFO"
_OK = b"+OK"
_ERR = b"-ERR"

# The atomic auto-unsubscribe extension (docs/sub-max.md): a client that
# sent "sub_max": true in CONNECT may end a SUB with `max=<n>`. The marker keeps the
# line unambiguous, since `SUB <subject> <queue> <sid>` also ends in a bare token.
SUB_LIMIT_MARK = b"max="

_CLIENT_VERBS = frozenset((_PUB, _HPUB, _SUB, _UNSUB, _PING, _PONG, _CONNECT, _INFO, _OK, _ERR))
# Verbs that must be followed by a blank; alone on a line they are unknown operations.
_VERBS_WITH_ARGS = frozenset((_PUB, _HPUB, _SUB, _UNSUB, _CONNECT, _INFO, _ERR))


_BLANKS = b" \t"
_WHITESPACE = b" \t\r\n\x0b\x0c"


def _split_blanks(line: bytes) -> list[bytes]:
    """Split on spaces and tabs only (the slow path for lines with other whitespace)."""
    return [token for token in line.replace(b"\t", b" ").split(b" ") if token]


def _records_end(data: bytes, pos: int, head: bytes, size: int, checked: bool) -> int:
    """Where the records from `pos` on that start with `head` (a control line and its
    CRLF) and carry `size` bytes end: the block that _blocks/_mesh_blocks hand over.
    `checked`: a record must also end with CRLF (client input; ring frames are ours)."""
    record = len(head) + size + 2
    limit = len(data) - record
    startswith = data.startswith
    end = pos
    if checked:
        while end <= limit and startswith(head, end) and startswith(CRLF, end + record - 2):
            end += record
    else:
        while end <= limit and startswith(head, end):
            end += record
    return end


def block_payloads(block: bytes, head_len: int, count: int, size: int) -> list[bytes]:
    """The payloads of a block of `count` records (head, payload, CRLF) of one size."""
    record = head_len + size + 2
    return [block[k : k + size] for k in range(head_len, count * record, record)]


def block_tails(block: bytes, head_len: int, count: int, size: int) -> list[Any]:
    """The block re-headed cheaply: ``new_head.join(tails)`` is the block with every
    record's head replaced by new_head. Tails are payload+CRLF views (no copy) after a
    leading b"", cut at the known record starts, so payload bytes never matter."""
    record = head_len + size + 2
    view = memoryview(block)
    tails: list[Any] = [b""]
    tails += [view[k : k + size + 2] for k in range(head_len, count * record, record)]
    return tails


def _run_length(lines: list[bytes], i: int, last: int) -> int:
    """How many messages from line i on have the control line lines[i] (every other
    line), counting only those whose payload line is complete (index < last)."""
    most = (last - i) // 2
    return len(list(next(groupby(islice(lines, i, i + 2 * most, 2)))[1]))


def _sized_run(
    lines: list[bytes], i: int, last: int, head_len: int, max_line: int, max_payload: int
) -> list[bytes]:
    """The size tokens of the messages from line i on whose control line is the head of
    lines[i] (everything up to the size) followed by a valid size, and whose payload
    line is complete and of that size."""
    head = lines[i][:head_len]
    sizes: list[bytes] = []
    j = i
    while j + 1 < last:
        line = lines[j]
        if not line.startswith(head) or len(line) > max_line:
            break
        token = line[head_len:]
        if not token.isdigit() or len(token) > 9:
            break
        size = int(token)
        if size > max_payload or len(lines[j + 1]) != size:
            break
        sizes.append(token)
        j += 2
    return sizes


def parse_size(token: bytes) -> int:
    """A payload size token: decimal digits only, at most 9 of them; -1 if invalid."""
    if 0 < len(token) <= _MAX_SIZE_DIGITS and token.isdigit():
        return int(token)
    return -1


# What a partial line may start with: a prefix of a client verb, or a verb and a blank.
_VERB_PREFIXES = frozenset(verb[:i] for verb in _CLIENT_VERBS for i in range(1, len(verb) + 1))
_LONGEST_VERB = max(len(verb) for verb in _CLIENT_VERBS) + 1


def _check_partial(data: bytes, pos: int, n: int, max_line: int) -> None:
    """Fail a line that has not ended yet as soon as nats-server would, and exactly as
    the complete line would fail.

    nats-server parses byte by byte, so garbage is refused at its first byte and a
    long line as soon as its arguments pass max_control_line, without waiting for LF.
    """
    if data[pos] in _WHITESPACE:
        raise _unknown()
    end = n - 1 if data[n - 1] == 13 else n  # a CR may be the start of the line end
    head = data[pos : min(end, pos + _LONGEST_VERB)]
    cut = len(head)
    for blank in (b" ", b"\t"):
        k = head.find(blank)
        if 0 <= k < cut:
            cut = k
    verb = head[:cut].upper()
    if verb.startswith(_PING) or verb.startswith(_PONG):
        return  # nats-server never limits a PING/PONG line
    if cut == len(head) and end - pos < _LONGEST_VERB:
        if verb not in _VERB_PREFIXES:
            raise _unknown()
        return
    if verb not in _CLIENT_VERBS:
        raise _unknown()
    if end - pos - len(verb) - 1 > max_line:
        raise ProtocolError(ERR_MAX_CONTROL_LINE, reason=ClosedState.MaxControlLineExceeded)


def _bad_args() -> ProtocolError:
    # nats-server closes without an -ERR on a wrong argument count or a bad size.
    return ProtocolError(None, "bad arguments")


def _unknown() -> ProtocolError:
    return ProtocolError(ERR_UNKNOWN_PROTOCOL)


class ClientParser:
    """Parses what a client sends. The handler receives:

    process_pub(subject, reply|None, payload, size_token)
    process_pub_run(subject, reply|None, payloads, sizes)
        (at least 2 consecutive PUBs with one subject and reply; sizes is one size token
        when the control lines were identical, else a list of one token per message)
    process_pub_block(subject, block, head, count, size_token)
        (at least 2 consecutive identical ``PUB <subject> <size>`` of BLOCK_MIN_PAYLOAD
        bytes or more, as the bytes read: ``block`` is ``count`` records of ``head``
        (the control line with its CRLF), payload and CRLF; see block_payloads)
    process_hpub(subject, reply|None, header_size, message, header_token, total_token)
        (message = header block + payload)
    process_sub(subject, queue|None, sid[, max_msgs])
        (max_msgs: a negotiated client's `max=<n>`, 1 to 999,999,999; see sub_max)
    process_sub_limit_error()
        (a negotiated client's SUB with a `max=` token that is not that; non-fatal)
    process_unsub(sid, max_msgs|None)    (max_msgs -1 when present but not 1 to 9 digits)
    process_ping(), process_pong(), process_client_err()
    process_connect(json_bytes) -> bool: True suspends parsing after the CONNECT (the rest
        of the read is kept); the handler resumes it with feed(b"")
    """

    __slots__ = (
        "_buf",
        "_connect",
        "_err",
        "_hpub",
        "_need",
        "_pending",
        "_ping",
        "_pong",
        "_pub",
        "_pub_block",
        "_pub_run",
        "_sub",
        "_sub_limit_error",
        "_unsub",
        "headers",
        "max_control_line",
        "max_payload",
        "sub_max",
    )

    def __init__(self, handler: Any, max_control_line: int, max_payload: int) -> None:
        self._pub = handler.process_pub
        self._pub_run = handler.process_pub_run
        self._pub_block = handler.process_pub_block
        self._hpub = handler.process_hpub
        self._sub = handler.process_sub
        self._sub_limit_error = handler.process_sub_limit_error
        self._unsub = handler.process_unsub
        self._ping = handler.process_ping
        self._pong = handler.process_pong
        self._connect = handler.process_connect
        self._err = handler.process_client_err
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        # Set by the connection once CONNECT asked for headers; HPUB is refused before.
        self.headers = False
        # Set by the connection once CONNECT asked for the extension: a SUB's `max=`
        # token after the subject is then its limit, never a queue or sid.
        self.sub_max = False
        self._buf = bytearray()
        # A control line whose payload has not fully arrived: (is_hpub, args, size).
        self._pending: tuple[bool, list[bytes], int] | None = None
        self._need = 0

    def _blocks(self, data: bytes) -> int:
        """Hand runs of identical large PUBs (no reply) over as the bytes read, without
        cutting them into lines and payloads; returns the bytes used (0: none here).

        A record is found by its declared size, so payloads may hold anything,
        CRLFs and PUB lines included. Stops at the first record that differs, is
        incomplete, or is not plainly valid; the line parser takes it from there.
        """
        pos = 0
        n = len(data)
        startswith = data.startswith
        while n - pos >= BLOCK_MIN_BYTES and startswith(b"PUB ", pos):
            eol = data.find(b"\r\n", pos, pos + self.max_control_line + 2)
            if eol < 0:
                break
            line = data[pos:eol]
            args = line.split(b" ")
            if len(args) != 3 or not args[1] or b"\t" in line:
                break
            size_tok = args[2]
            if not size_tok.isdigit() or len(size_tok) > 9:
                break
            size = int(size_tok)
            if size < BLOCK_MIN_PAYLOAD or size > self.max_payload:
                break
            head = data[pos : eol + 2]
            end = _records_end(data, pos, head, size, checked=True)
            count = (end - pos) // (len(head) + size + 2)
            if count < 2:
                break
            block = data if pos == 0 and end == n else data[pos:end]
            self._pub_block(args[1], block, head, count, size_tok)
            pos = end
        return pos

    def at_op_start(self) -> bool:
        """True when the next byte fed starts a new operation (nothing partial is held)."""
        return not self._buf and self._pending is None

    def finish_held(self, data: bytes) -> int:
        """Complete the one operation an earlier read left unfinished with the start of
        this read: a payload still to come, or a control line cut short. Returns the
        position in ``data`` after it, or -1 when all of ``data`` went into it (still
        unfinished, held). When what is held is more than that (the rest of a read kept
        across a slow CONNECT), or nothing, returns 0 and touches nothing: ``feed`` takes
        it all. Raises ProtocolError as ``feed`` does. So a read can go on past a cut
        that fell inside an operation, to the compiled publish loop (core/publoop.py).
        """
        buf = self._buf
        pending = self._pending
        if pending is not None:
            need = self._need - len(buf)
            if len(data) < need:
                buf += data
                return -1
            whole = bytes(buf) + data[:need]
            buf.clear()
            self._pending = None
            self._deliver(whole, 0, *pending)
            return need
        if not buf or b"\n" in buf:
            return 0
        held = len(buf)
        whole = bytes(buf) + data
        buf.clear()
        pos = self._one(whole, 0)
        return -1 if pos < 0 else pos - held

    def feed(self, data: bytes) -> None:
        """Parse one read. Raises ProtocolError; the parser is then unusable.

        Fast path: the read is split into CRLF-terminated lines in one C call, and
        canonical PUBs (single blanks, upper case) are taken line by line, the payload
        being the next line when its length matches the declared size. Anything else
        is handed to ``_one`` (the exact, nats-compatible path) for one operation, and
        the fast path resumes if that operation ended on a CRLF.
        """
        buf = self._buf
        if self._pending is not None:
            # The payload may not have started yet: the buffer can be empty here.
            buf += data
            if len(buf) < self._need:
                return
            data = bytes(buf)
            buf.clear()
            is_hpub, args, size = self._pending
            self._pending = None
            pos = self._deliver(data, 0, is_hpub, args, size)
            if pos == len(data):
                return
            data = data[pos:]
        elif buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        if len(data) >= BLOCK_MIN_BYTES and data[:4] == b"PUB ":
            used = self._blocks(data)
            if used:
                if used == len(data):
                    return
                data = data[used:]
        n = len(data)
        lines = data.split(b"\r\n")
        last = len(lines) - 1
        max_line = self.max_control_line
        max_payload = self.max_payload
        pub = self._pub
        pub_run = self._pub_run
        count = data.count
        i = 0
        # The byte position of line i is only needed off the fast path: it is brought
        # up to date from the last known (line, position) pair when it is.
        known_i = 0
        pos = 0
        while i < last:
            line = lines[i]
            if line[:4] == b"PUB " and len(line) <= max_line and b"\t" not in line:
                args = line.split(b" ")
                nargs = len(args)
                if nargs == 3:
                    reply = None
                    size_tok = args[2]
                elif nargs == 4 and args[2]:
                    reply = args[2]
                    size_tok = args[3]
                else:
                    size_tok = b""
                if args[1] and size_tok.isdigit() and len(size_tok) <= 9:
                    size = int(size_tok)
                    if size <= max_payload:
                        if i + 1 < last:
                            payload = lines[i + 1]
                            if len(payload) == size:
                                if i + 3 < last:
                                    following = lines[i + 2]
                                    if following == line:
                                        # A run of identical control lines: one call.
                                        run = _run_length(lines, i, last)
                                        payloads = lines[i + 1 : i + 2 * run : 2]
                                        if (
                                            max(map(len, payloads))
                                            == size
                                            == min(map(len, payloads))
                                        ):
                                            pub_run(args[1], reply, payloads, size_tok)
                                            i += 2 * run
                                            continue
                                    elif (
                                        len(following) >= len(line) - len(size_tok)
                                        and following[len(line) - len(size_tok) - 1] == 32
                                        and following.startswith(line[: len(line) - len(size_tok)])
                                    ):
                                        # Same subject and reply, other sizes.
                                        sizes = _sized_run(
                                            lines, i, last, len(line) - len(size_tok), max_line,
                                            max_payload,
                                        )  # fmt: skip
                                        if len(sizes) > 1:
                                            pub_run(
                                                args[1], reply,
                                                lines[i + 1 : i + 2 * len(sizes) : 2], sizes,
                                            )  # fmt: skip
                                            i += 2 * len(sizes)
                                            continue
                                pub(args[1], reply, payload, size_tok)
                                i += 2
                                continue
                        # The payload holds CRLFs, or has not fully arrived.
                        if known_i < i:
                            pos += sum(map(len, lines[known_i:i])) + 2 * (i - known_i)
                        start = pos + len(line) + 2
                        end = start + size
                        if end + 2 > n:
                            self._pending = (False, args, size)
                            self._need = size + 2
                            buf += data[start:]
                            return
                        if data[end : end + 2] != b"\r\n":
                            raise _unknown()
                        pub(args[1], reply, data[start:end], size_tok)
                        i += 1 + count(b"\r\n", start, end + 2)
                        pos = end + 2
                        known_i = i
                        continue
            # Anything else: one operation the exact way, then resync with the lines.
            if known_i < i:
                pos += sum(map(len, lines[known_i:i])) + 2 * (i - known_i)
            new_pos = self._one(data, pos)
            if new_pos < 0:
                return
            # A CONNECT may have lowered it (the user's or account's payload limit).
            max_payload = self.max_payload
            if data[new_pos - 2 : new_pos] != b"\r\n":
                pos = new_pos
                break  # a bare LF: the split lines no longer line up
            i += count(b"\r\n", pos, new_pos)
            pos = new_pos
            known_i = i
        else:
            if known_i < i:
                pos += sum(map(len, lines[known_i:i])) + 2 * (i - known_i)
        while pos < n:
            pos = self._one(data, pos)
            if pos < 0:
                return

    def _one(self, data: bytes, pos: int) -> int:
        """Parse one operation at pos the way nats-server does; returns the position
        after it, or -1 when it waits for more data (kept in the buffer)."""
        n = len(data)
        nl = data.find(b"\n", pos)
        if nl < 0:
            _check_partial(data, pos, n, self.max_control_line)
            self._buf += data[pos:]
            return -1
        # Only the CR right before the LF is dropped; a blank before the verb, or a
        # CR/VT/FF anywhere else, is part of the line as in nats-server.
        line = data[pos : nl - 1] if nl > pos and data[nl - 1] == 13 else data[pos:nl]
        args = line.split()
        start = pos
        pos = nl + 1
        if not args or line[0] in _BLANKS:
            raise _unknown()
        if b"\r" in line or b"\x0b" in line or b"\x0c" in line:
            args = _split_blanks(line)
        verb = args[0]
        if verb not in _CLIENT_VERBS:
            verb = verb.upper()
            if verb not in _CLIENT_VERBS:
                if verb.startswith(_PING):
                    self._ping()
                    return pos
                if verb.startswith(_PONG):
                    self._pong()
                    return pos
                raise _unknown()
            args[0] = verb
        max_line = self.max_control_line
        if (
            len(line) > max_line
            and len(line) - len(verb) - 1 > max_line
            and verb not in (_PING, _PONG)
        ):
            # The limit counts the argument bytes after the verb and its blank.
            raise ProtocolError(ERR_MAX_CONTROL_LINE, reason=ClosedState.MaxControlLineExceeded)
        if verb == _PUB:
            nargs = len(args)
            if nargs == 3:
                size_tok = args[2]
            elif nargs == 4:
                size_tok = args[3]
            else:
                raise self._arg_error(data, start, nl, verb)
            size = parse_size(size_tok)
            if size < 0:
                raise _bad_args()
            if size > self.max_payload:
                raise ProtocolError(ERR_MAX_PAYLOAD, reason=ClosedState.MaxPayloadExceeded)
            return self._wait_payload(data, pos, False, args, size)
        return self._control(data, start, nl, pos, verb, args)

    def _arg_error(self, data: bytes, start: int, nl: int, verb: bytes) -> ProtocolError:
        """`UNSUB` alone is an unknown operation; `UNSUB ` with bad args a silent close."""
        after = start + len(verb)
        if after >= nl or data[after] not in b" \t":
            return _unknown()
        return _bad_args()

    def _control(
        self, data: bytes, start: int, nl: int, pos: int, verb: bytes, args: list[bytes]
    ) -> int:
        """Every verb but PUB. Returns the new position, -1 to stop."""
        nargs = len(args)
        if verb == _PING:
            self._ping()
            return pos
        if verb == _PONG:
            self._pong()
            return pos
        if verb == _CONNECT and nargs == 1:
            raise _bad_args()  # nats-server: an empty CONNECT is bad JSON, a silent close
        if verb in _VERBS_WITH_ARGS and nargs == 1:
            raise self._arg_error(data, start, nl, verb)
        if verb == _SUB:
            if self.sub_max and any(arg.startswith(SUB_LIMIT_MARK) for arg in args[2:]):
                self._limited_sub(args)
            elif nargs == 3:
                self._sub(args[1], None, args[2])
            elif nargs == 4:
                self._sub(args[1], args[2], args[3])
            else:
                raise _bad_args()
            return pos
        if verb == _UNSUB:
            if nargs == 2:
                self._unsub(args[1], None)
            elif nargs == 3:
                # nats-server reads the max as a size: 1 to 9 digits, else -1 (which,
                # like 0, unsubscribes at once).
                self._unsub(args[1], parse_size(args[2]))
            else:
                raise _bad_args()
            return pos
        if verb == _HPUB:
            if not self.headers:
                raise _bad_args()
            if nargs not in (4, 5):
                raise _bad_args()
            hsize = parse_size(args[-2])
            tsize = parse_size(args[-1])
            if hsize < 0 or tsize < 0 or hsize > tsize:
                raise _bad_args()
            if tsize > self.max_payload:
                raise ProtocolError(ERR_MAX_PAYLOAD, reason=ClosedState.MaxPayloadExceeded)
            return self._wait_payload(data, pos, True, args, tsize)
        if verb == _CONNECT:
            line = data[start:nl]
            if self._connect(line[line.upper().find(_CONNECT) + len(_CONNECT) :].strip()):
                # The handler finishes this CONNECT later (a slow credential check):
                # keep the rest of the read until it feeds us again.
                self._buf += data[pos:]
                return -1
            return pos
        if verb == _ERR:
            self._err()
            return -1
        # INFO and +OK from a client are ignored.
        return pos

    def _limited_sub(self, args: list[bytes]) -> None:
        """A SUB with a marked token: exactly ``SUB <subject> [<queue>] <sid> max=<n>``,
        n of 1 to 9 digits and not 0 (UNSUB's numbers, as nats-server parses them), or a
        non-fatal error: the line is framed, so nothing after it is misread, and the
        connection and its other subscriptions stay (as for nats-server's 'Invalid
        Subject')."""
        nargs = len(args)
        last = args[-1]
        limit = -1
        if (
            nargs in (4, 5)
            and last.startswith(SUB_LIMIT_MARK)
            and not any(arg.startswith(SUB_LIMIT_MARK) for arg in args[2:-1])
        ):
            limit = parse_size(last[len(SUB_LIMIT_MARK) :])
        if limit <= 0:
            self._sub_limit_error()
        elif nargs == 4:
            self._sub(args[1], None, args[2], limit)
        else:
            self._sub(args[1], args[2], args[3], limit)

    def _wait_payload(
        self, data: bytes, pos: int, is_hpub: bool, args: list[bytes], size: int
    ) -> int:
        """Deliver now if the payload is here, else keep the rest for the next read."""
        if pos + size + 2 <= len(data):
            return self._deliver(data, pos, is_hpub, args, size)
        self._pending = (is_hpub, args, size)
        self._need = size + 2
        self._buf += data[pos:]
        return -1

    def _deliver(self, data: bytes, pos: int, is_hpub: bool, args: list[bytes], size: int) -> int:
        end = pos + size
        if data[end : end + 2] != b"\r\n":
            raise _unknown()
        if is_hpub:
            reply = args[2] if len(args) == 5 else None
            hdr_tok = args[-2]
            self._hpub(args[1], reply, int(hdr_tok), data[pos:end], hdr_tok, args[-1])
        else:
            self._pub(args[1], args[2] if len(args) == 4 else None, data[pos:end], args[-1])
        return end + 2


# -- mesh frames -----------------------------------------------------------------------

_RMSG = b"RMSG"
_HRMSG = b"HRMSG"
_JMSG = b"JMSG"
_QMSG = b"QMSG"
_JRUN = b"JRUN"
_NO_QUEUE = b"-"
_RS_PLUS = b"RS+"
_RS_MINUS = b"RS-"
_PLUS = b"+"
_BAR = b"|"


def _split_rmsg(args: list[bytes], nsizes: int) -> tuple[bytes | None, tuple[bytes, ...]]:
    """The reply and queue names between the subject and the size tokens.

    Grammar (nats route RMSG): ``subj size``, ``subj reply size``,
    ``subj + reply q1 q2 size``, ``subj | q1 q2 size`` (HRMSG: two size tokens).
    """
    middle = args[3 : len(args) - nsizes]
    if not middle:
        return None, ()
    first = middle[0]
    if first == _PLUS:
        return middle[1], tuple(middle[2:])
    if first == _BAR:
        return None, tuple(middle[1:])
    return first, ()


def _payload_at(
    data: bytes, lines: list[bytes], i: int, last: int, start: int, size: int
) -> tuple[bytes, int]:
    """The payload of the frame whose control line is lines[i], starting at byte
    `start` of `data`, and the index of the line after it: the next line when its
    length matches, else cut out by size (it holds CRLFs)."""
    payload = lines[i + 1] if i + 1 < last else None
    if payload is not None and len(payload) == size:
        return payload, i + 2
    end = start + size
    return data[start:end], i + 1 + data.count(b"\r\n", start, end + 2)


def _mesh_blocks(data: bytes, handler: Any) -> int:
    """Runs of identical large RMSGs (no reply, no queues) at the start of `data`, as
    ClientParser._blocks; returns the bytes used. A ring holds only whole frames."""
    block_handler = getattr(handler, "process_rmsg_block", None)
    pos = 0
    n = len(data)
    startswith = data.startswith
    while n - pos >= BLOCK_MIN_BYTES and startswith(b"RMSG ", pos):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        args = data[pos:eol].split(b" ")
        if len(args) != 4:
            break
        size_tok = args[3]
        size = int(size_tok)
        if size < BLOCK_MIN_PAYLOAD:
            break
        head = data[pos : eol + 2]
        end = _records_end(data, pos, head, size, checked=False)
        count = (end - pos) // (len(head) + size + 2)
        if count < 2:
            break
        block = data if pos == 0 and end == n else data[pos:end]
        if block_handler is not None:
            block_handler(args[1], args[2], block, head, count, size_tok)
        else:
            payloads = block_payloads(block, len(head), count, size)
            handler.process_rmsg_run(args[1], args[2], None, (), payloads, size_tok)
        pos = end
    return pos


def parse_mesh(data: bytes, handler: Any) -> None:
    """Parse frames read from an inbound ring.

    A ring only ever holds whole frames (the producer commits frame by frame), so
    there is no partial state to keep. Handler methods:

    process_rmsg(account, subject, reply|None, queues, header_size, message, size_token)
        (header_size 0 for RMSG; message = header block + payload)
    process_rmsg_run(account, subject, reply|None, queues, payloads, sizes)
        (at least 2 consecutive RMSGs with one account, subject, reply and queues;
        sizes as for process_pub_run)
    process_jmsg(account, deliver, subject, reply, queue|None, header_size, message)
        (a JetStream delivery: match `deliver`, show `subject`; see frames.jmsg)
    process_jrun(account, deliver, [(subject, reply, header_size, message), ...])
        (deliveries to `deliver` without a queue group, in order; see frames.jrun)
    process_qmsg(account, subject, queue, hops, reply|None, header_size, message)
        (a queue group's message passed on for one member of `queue`; see frames.qmsg)
    process_rs_plus(account, subject, queue|None, weight)
    process_rs_minus(account, subject, queue|None)
    process_control(verb, args)   (HELLO, SDOWN, READY, STOP and other shard control)

    process_rmsg_block(account, subject, block, head, count, size_token)   (optional)
        (leading runs of identical large ``RMSG <account> <subject> <size>``, as the
        bytes of the ring, as process_pub_block; without the method they come to
        process_rmsg_run)

    Like the client parser, the data is split into lines once and a payload is the
    next line when its length matches; one holding CRLFs is cut out by its size.
    """
    if len(data) >= BLOCK_MIN_BYTES and data[:5] == b"RMSG ":
        used = _mesh_blocks(data, handler)
        if used:
            if used == len(data):
                return
            data = data[used:]
    lines = data.split(b"\r\n")
    last = len(lines) - 1
    count = data.count
    rmsg = handler.process_rmsg
    rmsg_run = handler.process_rmsg_run
    i = 0
    pos = 0
    while i < last:
        line = lines[i]
        args = line.split(b" ")
        verb = args[0]
        if verb in (_RMSG, _HRMSG):
            size_tok = args[-1]
            size = int(size_tok)
            if verb == _RMSG:
                nargs = len(args)
                if nargs == 4:
                    reply: bytes | None = None
                    queues: tuple[bytes, ...] = ()
                elif nargs == 5:
                    reply = args[3]
                    queues = ()
                else:
                    reply, queues = _split_rmsg(args, 1)
                header_size = 0
            else:
                reply, queues = _split_rmsg(args, 2)
                header_size = int(args[-2])
            payload = lines[i + 1] if i + 1 < last else None
            if payload is not None and len(payload) == size:
                if not header_size and i + 3 < last:
                    following = lines[i + 2]
                    if following == line:
                        run = _run_length(lines, i, last)
                        payloads = lines[i + 1 : i + 2 * run : 2]
                        if max(map(len, payloads)) == size == min(map(len, payloads)):
                            rmsg_run(args[1], args[2], reply, queues, payloads, size_tok)
                            pos += run * (len(line) + size + 4)
                            i += 2 * run
                            continue
                    elif (
                        len(following) >= len(line) - len(size_tok)
                        and following[len(line) - len(size_tok) - 1] == 32
                        and following.startswith(line[: len(line) - len(size_tok)])
                    ):
                        sizes = _sized_run(
                            lines, i, last, len(line) - len(size_tok), 1 << 30, 1 << 30
                        )
                        if len(sizes) > 1:
                            payloads = lines[i + 1 : i + 2 * len(sizes) : 2]
                            rmsg_run(args[1], args[2], reply, queues, payloads, sizes)
                            pos += (
                                sum(map(len, payloads))
                                + len(sizes) * 4
                                + sum(map(len, lines[i : i + 2 * len(sizes) : 2]))
                            )
                            i += 2 * len(sizes)
                            continue
                rmsg(args[1], args[2], reply, queues, header_size, payload, size_tok)
                pos += len(line) + size + 4
                i += 2
                continue
            start = pos + len(line) + 2
            end = start + size
            rmsg(args[1], args[2], reply, queues, header_size, data[start:end], size_tok)
            i += 1 + count(b"\r\n", start, end + 2)
            pos = end + 2
            continue
        if verb == _JRUN:
            pos += len(line) + 2
            i += 1
            entries: list[tuple[bytes, bytes, int, bytes]] = []
            for _ in range(int(args[3])):
                record = lines[i]
                subject, reply_, hsize, size_tok = record.split(b" ")
                start = pos + len(record) + 2
                payload, i = _payload_at(data, lines, i, last, start, int(size_tok))
                pos = start + len(payload) + 2
                entries.append((subject, reply_, int(hsize), payload))
            handler.process_jrun(args[1], args[2], entries)
            continue
        if verb == _JMSG:
            start = pos + len(line) + 2
            payload, i = _payload_at(data, lines, i, last, start, int(args[7]))
            pos = start + len(payload) + 2
            queue = args[5]
            handler.process_jmsg(
                args[1], args[2], args[3], args[4],
                None if queue == _NO_QUEUE else queue, int(args[6]), payload,
            )  # fmt: skip
            continue
        if verb == _QMSG:
            start = pos + len(line) + 2
            payload, i = _payload_at(data, lines, i, last, start, int(args[-1]))
            pos = start + len(payload) + 2
            handler.process_qmsg(
                args[1], args[2], args[3], int(args[4]),
                args[5] if len(args) == 8 else None, int(args[-2]), payload,
            )  # fmt: skip
            continue
        pos += len(line) + 2
        i += 1
        if verb == _RS_PLUS:
            if len(args) == 5:
                handler.process_rs_plus(args[1], args[2], args[3], int(args[4]))
            else:
                handler.process_rs_plus(args[1], args[2], None, 1)
        elif verb == _RS_MINUS:
            handler.process_rs_minus(args[1], args[2], args[3] if len(args) == 4 else None)
        else:
            handler.process_control(verb, args[1:])
