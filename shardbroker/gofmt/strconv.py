"""Go's ``strconv.Atoi``, with its error texts: nats-server reports them verbatim.

Owner: pure functions, imported by any process (leaf: imports nothing from shardbroker).
A consumer's ``sample_freq`` is read with Atoi (``failed to parse consumer sampling
configuration: strconv.Atoi: parsing "5x": invalid syntax``), and so is the integer body
of a pull request. Atoi takes an optional sign and ASCII decimal digits only (no spaces,
no ``_``, no other scripts' digits), within int64 on the 64-bit platforms nats runs on.
"""

from __future__ import annotations

from shardbroker.gofmt.quote import go_quote

__all__ = ["GoNumError", "go_atoi"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class GoNumError(ValueError):
    """A text Atoi rejects; the message is Go's ``*strconv.NumError`` text."""


def go_atoi(text: str) -> int:
    """``strconv.Atoi(text)``: the value, or `GoNumError` with Go's message."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise GoNumError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise GoNumError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value
