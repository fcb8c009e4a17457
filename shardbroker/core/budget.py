"""The publish budget scan, pure Python: the reference twin of the compiled ``_budget``.

Owner: a worker shard, on its loop; called once per read of a rate-limited connection
(worker/ratelimit.py), never for the others. Imports nothing of the broker.

What it does. It walks the operations of a client read from ``pos``, as the client
parser cuts them (a line ends at LF, arguments are split on whitespace, a PUB or HPUB
carries the payload its last argument sizes, then CRLF), and says how far the
connection may go with the budget it has: every publish that starts while some of the
budget is left (``max_msgs`` messages and ``max_bytes`` payload bytes, headers
included) is taken and counted, so the last one may overdraw the bytes; every other
operation is taken as it comes. It stops

* at the first publish that starts with the budget spent (SPENT),
* at an operation that has not arrived whole (PARTIAL): the caller keeps it, so the
  next scan starts on an operation boundary,
* after a CONNECT when ``stop_at_connect`` (CONNECT): the login decides the limits of
  what follows,
* or it gives up (PARSER) on what the parser will refuse anyway (a control line too
  long, a size it cannot read or over ``max_payload``, a line starting with a blank):
  everything from there goes to the parser, which closes the connection,

and returns ``(end, msgs, nbytes, stop)``: where the taken part ends, what it holds,
and why it stopped (DONE: at the end of the data, on a boundary). It only measures;
nothing is routed here.
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


def _size(token: bytes) -> int:
    if 0 < len(token) <= _MAX_SIZE_DIGITS and token.isdigit():
        return int(token)
    return -1


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
        if line_end == pos or data[pos] in b" \t":
            return n, msgs, nbytes, PARSER
        # Blanks only: the parser splits on all whitespace, but a line holding no LF has
        # no other whitespace than blanks unless it holds CR, VT or FF, and then the
        # parser splits on blanks only too.
        args = data[pos:line_end].replace(b"\t", b" ").split(b" ")
        args = [arg for arg in args if arg]
        verb = args[0].upper()
        if verb == b"PUB" or verb == b"HPUB":
            if len(args) not in ((3, 4) if verb == b"PUB" else (4, 5)):
                return n, msgs, nbytes, PARSER
            size = _size(args[-1])
            if size < 0 or size > max_payload:
                return n, msgs, nbytes, PARSER
            if verb == b"HPUB":
                header = _size(args[-2])
                if header < 0 or header > size:
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
        pos = nl + 1
        if stop_at_connect and verb == b"CONNECT":
            return pos, msgs, nbytes, CONNECT
    return pos, msgs, nbytes, DONE
