"""Go's ``strconv.Quote`` and ``strconv.QuoteRune``: the ``%q`` of nats-server's error texts.

Owner: pure functions, imported by any process (leaf: imports nothing from shardbroker).
Permission errors (``Permissions Violation for Publish to "x"``), JSON decode errors
(``json: unknown field "x"``, ``invalid character 'x'``) and config checks quote this way.

Printable characters are kept as they are (Go's ``IsPrint``, which like Python's
``isprintable`` excludes every space but U+0020); the quote and backslash are escaped;
``\\a \\b \\f \\n \\r \\t \\v`` get their short escapes; other characters become ``\\xNN``
below U+0080, ``\\uNNNN`` in the BMP and ``\\UNNNNNNNN`` above it.
"""

from __future__ import annotations

__all__ = ["go_quote", "go_quote_rune"]

_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _escape(ch: str, quote: str) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if ch.isprintable():
        return ch
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """``strconv.Quote(text)``: ``"a\\"b"``, ``"\\t\\x01"``, ``"é\\u2028"``."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'  # the common case: nothing to escape
    return '"' + "".join(_escape(ch, '"') for ch in text) + '"'


def go_quote_rune(ch: str) -> str:
    """``strconv.QuoteRune(ch)``: ``'x'``, ``'\\''``, ``'"'``, ``'\\x00'``."""
    return "'" + _escape(ch, "'") + "'"
