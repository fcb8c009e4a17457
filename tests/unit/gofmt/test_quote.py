"""gofmt.quote against Go's ``strconv.Quote`` / ``QuoteRune``.

The quoted texts are nats-server v2.15.1's own: STREAM.CREATE with an unknown field answers
``invalid JSON: json: unknown field %q``, and with a bad byte ``invalid character %q ...``
(encoding/json's quoteChar, which is QuoteRune but for ``'"'``).
"""

from __future__ import annotations

import pytest

from shardbroker.gofmt.quote import go_quote, go_quote_rune


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("bogus", '"bogus"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\t\n\x01\x7f", '"\\t\\n\\x01\\x7f"'),
        ("é\u2028\ufeff\U0001f600", '"é\\u2028\\ufeff\U0001f600"'),
        ("\U000e0001", '"\\U000e0001"'),
        # json: unknown field "na\tme\u2028é\x01\x7f\u0085\ufeff😀\U000e0001 \"q\" \\"
        (
            'na\tme\u2028é\x01\x7f\x85\ufeff\U0001f600\U000e0001 "q" \\',
            '"na\\tme\\u2028é\\x01\\x7f\\u0085\\ufeff\U0001f600\\U000e0001 \\"q\\" \\\\"',
        ),
        ("Permissions.\x00.x", '"Permissions.\\x00.x"'),
        ("", '""'),
    ],
)
def test_gofmt_quote_is_go_text(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(
    ("ch", "quoted"),
    [
        ("x", "'x'"),  # invalid character 'x' looking for beginning of object key string
        ("\x01", "'\\x01'"),
        ("'", "'\\''"),
        ("\\", "'\\\\'"),
        ("é", "'é'"),
        ("\a", "'\\a'"),  # invalid character '\a' in string
        ('"', "'\"'"),
    ],
)
def test_gofmt_quote_rune_is_go_text(ch: str, quoted: str) -> None:
    assert go_quote_rune(ch) == quoted
