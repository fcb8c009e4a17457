"""The publish budget scan, pure Python: the reference twin of the compiled ``_budget``.

Owner: a worker shard, on its loop; called once per read of a rate-limited connection
(worker/ratelimit.py), never for the others. Imports nothing of the broker.

What it does. It walks the operations of a client read from ``pos``, cut where the
client parser cuts them (a line ends at LF; a PUB or HPUB carries the payload its last
argument sizes, then CRLF), and says how far the connection may go with the budget it
has: every publish that starts while some of the budget is left (``max_msgs`` messages
and ``max_bytes`` payload bytes, headers included) is taken and counted, so the last one
may overdraw the bytes; every other operation is taken as it comes. It stops

* at the first publish that starts with the budget spent (SPENT),
* at an operation that has not arrived whole (PARTIAL): the caller keeps it, so the
  next scan starts on an operation boundary,
* after a CONNECT when ``stop_at_connect`` (CONNECT): the login decides the limits of
  what follows,
* or it gives up (PARSER) where the parser will close the connection anyway (a control
  line too long, a line starting with a blank, a publish whose last argument is not a
  size or is over ``max_payload``): everything from there goes to the parser,

and returns ``(end, msgs, nbytes, stop)``: where the taken part ends, what it holds,
and why it stopped (DONE: at the end of the data, on a boundary). It only measures;
nothing is routed here.

What it reads of a line is what fixes the boundaries and no more: the verb and the last
argument. Every line the parser accepts is cut where the parser cuts it; a line it
refuses (a wrong number of arguments, headers larger than the message) closes the
connection when the parser reaches it, wherever the scan cut.
"""

from __future__ import annotations

DONE = 0
SPENT = 1
PARTIAL = 2
CONNECT = 3
PARSER = 4

# nats-server parses at most 9 size digits.
_MAX_SIZE_DIGITS = 9
# A control line's verb and blank, beyond max_control_line (parser._LONGEST_VERB).
_VERB_ROOM = 8
_BLANKS = b" \t"
_DIGITS = b"0123456789"


def _verb(data: bytes, pos: int, line_end: int, verb: bytes) -> bool:
    """Does the line start with `verb` (any case) followed by a blank or its end?"""
    k = len(verb)
    return (
        line_end - pos >= k
        and data[pos : pos + k].upper() == verb
        and (line_end == pos + k or data[pos + k] in _BLANKS)
    )


def pub_budget(
    data: bytes,
    pos: int,
    max_msgs: int,
    max_bytes: int,
    max_control_line: int,
    max_payload: int,
    stop_at_connect: bool,
) -> tuple[int, int, int, int]:
    """See the module docstring."""
    n = len(data)
    msgs = 0
    nbytes = 0
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            if n - pos > max_control_line + _VERB_ROOM:
                return n, msgs, nbytes, PARSER
            return pos, msgs, nbytes, PARTIAL
        line_end = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
        if line_end - pos > max_control_line + _VERB_ROOM:
            return n, msgs, nbytes, PARSER
        if line_end == pos or data[pos] in _BLANKS:
            return n, msgs, nbytes, PARSER
        if _verb(data, pos, line_end, b"PUB") or _verb(data, pos, line_end, b"HPUB"):
            # The size: the last argument, after any trailing blanks.
            end = line_end
            while end > pos and data[end - 1] in _BLANKS:
                end -= 1
            start = end
            while start > pos and data[start - 1] in _DIGITS:
                start -= 1
            if not 0 < end - start <= _MAX_SIZE_DIGITS or data[start - 1] not in _BLANKS:
                return n, msgs, nbytes, PARSER
            size = int(data[start:end])
            if size > max_payload:
                return n, msgs, nbytes, PARSER
            if msgs >= max_msgs or nbytes >= max_bytes:
                return pos, msgs, nbytes, SPENT
            end = nl + 1 + size + 2
            if end > n:
                return pos, msgs, nbytes, PARTIAL
            msgs += 1
            nbytes += size
            pos = end
            continue
        connect = stop_at_connect and _verb(data, pos, line_end, b"CONNECT")
        pos = nl + 1
        if connect:
            return pos, msgs, nbytes, CONNECT
    return pos, msgs, nbytes, DONE
