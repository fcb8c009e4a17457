"""Subject validation, matching and overlap (protocol.md section 13)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardbroker.protocol.subjects import (
    has_wildcard,
    is_valid_literal_subject,
    is_valid_subject,
    str_tokens_match,
    subject_matches,
    subjects_overlap,
    tokens_match,
)

# subject, valid (SUB), valid literal (pedantic PUB), has_wildcard
VALIDATION = [
    (b"foo", True, True, False),
    (b"foo.bar.baz", True, True, False),
    (b"*", True, False, True),
    (b">", True, False, True),
    (b"foo.*", True, False, True),
    (b"foo.>", True, False, True),
    (b"*.bar.>", True, False, True),
    (b"foo.*.baz", True, False, True),
    (b"foo*", True, True, False),
    (b"*foo", True, True, False),
    (b"f>o", True, True, False),
    (b"a>", True, True, False),
    (b">>", True, True, False),
    (b"**", True, True, False),
    (b"foo.bar>", True, True, False),
    (b"a>.b", True, True, False),
    (b"$JS.API.>", True, False, True),
    (b"_INBOX.abc123.*", True, False, True),
    ("ünïcode.subjęct".encode(), True, True, False),
    (b"foo-bar_baz:1/2", True, True, False),
    (b"", False, False, False),
    (b".", False, False, False),
    (b"..", False, False, False),
    (b"foo..bar", False, False, False),
    (b".foo", False, False, False),
    (b"foo.", False, False, False),
    (b"foo.>.bar", False, False, True),
    (b">.foo", False, False, True),
    (b">.>", False, False, True),
    (b"foo.*.", False, False, True),
    (b"foo bar", False, False, False),
    (b"foo\tbar", False, False, False),
    (b"foo\rbar", False, False, False),
    (b"foo\nbar", False, False, False),
    (b"foo\x0cbar", False, False, False),
    (b"foo\x0bbar", False, False, False),
    (b" foo", False, False, False),
    (b"foo ", False, False, False),
    (b"foo.\t", False, False, False),
    (b"foo.* ", False, False, False),
]


@pytest.mark.parametrize(("subject", "valid", "literal", "wild"), VALIDATION)
def test_subjects_validation_table(subject: bytes, valid: bool, literal: bool, wild: bool):
    assert is_valid_subject(subject) is valid
    assert is_valid_literal_subject(subject) is literal
    assert has_wildcard(subject) is wild


_WS = b" \t\r\n\x0c\x0b"


def _reference_valid(subject: bytes, literal: bool) -> bool:
    if not subject or any(c in _WS for c in subject):
        return False
    tokens = subject.split(b".")
    if b"" in tokens:
        return False
    if literal:
        return b"*" not in tokens and b">" not in tokens
    return b">" not in tokens[:-1]


_subject_bytes = st.lists(
    st.sampled_from([b"a", b"b", b".", b"*", b">", b" ", b"\t", b"\x0b", b"\xc3\xa9", b"-"]),
    max_size=8,
).map(b"".join)


@given(_subject_bytes)
def test_subjects_validation_matches_reference(subject: bytes):
    assert is_valid_subject(subject) is _reference_valid(subject, literal=False)
    assert is_valid_literal_subject(subject) is _reference_valid(subject, literal=True)
    tokens = subject.split(b".")
    assert has_wildcard(subject) is (b"*" in tokens or b">" in tokens)


# pattern, published subject, matches
MATCHING = [
    (b"foo", b"foo", True),
    (b"foo", b"bar", False),
    (b"foo.bar", b"foo.bar", True),
    (b"foo.bar", b"foo", False),
    (b"foo", b"foo.bar", False),
    (b"foo.*", b"foo.bar", True),
    (b"foo.*", b"foo", False),
    (b"foo.*", b"foo.bar.baz", False),
    (b"*.bar", b"foo.bar", True),
    (b"*.*", b"a.b", True),
    (b"*", b"a", True),
    (b"*", b"a.b", False),
    (b"foo.>", b"foo.bar", True),
    (b"foo.>", b"foo.bar.baz", True),
    (b"foo.>", b"foo", False),
    (b"foo.>", b"bar.baz", False),
    (b"foo.*.>", b"foo.a.b", True),
    (b"foo.*.>", b"foo.a", False),
    (b">", b"foo", True),
    (b">", b"a.b.c.d", True),
    (b"*.>", b"a", False),
    (b"*.>", b"a.b", True),
    # A wildcard token in a published subject is a literal token.
    (b"foo.*", b"foo.*", True),
    (b"foo.>", b"foo.*", True),
    (b"foo.bar", b"foo.*", False),
    (b"foo.>", b"foo.>", True),
    (b"foo.*", b"foo.>", True),
    (b"foo.bar", b"foo.>", False),
    (b">", b"*", True),
    # Wildcard characters inside a token are ordinary characters.
    (b"foo*", b"foo*", True),
    (b"foo*", b"fooX", False),
    (b"foo.*", b"foo.bar*", True),
    # A published subject with an empty token matches nothing.
    (b">", b"", False),
    (b">", b".", False),
    (b">", b"a..b", False),
    (b">", b".a", False),
    (b">", b"a.", False),
    (b"a.*.b", b"a..b", False),
    (b"a..b", b"a..b", False),
    (b"*", b"", False),
    (b"", b"", False),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), MATCHING)
def test_subjects_matching_table(pattern: bytes, subject: bytes, expected: bool):
    assert subject_matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"), [row for row in MATCHING if b"" not in row[1].split(b".")]
)
def test_subjects_str_tokens_match_agrees(pattern: bytes, subject: bytes, expected: bool):
    tokens = pattern.decode().split(".")
    assert str_tokens_match(tokens, subject.decode()) is expected


def test_subjects_tokens_match_presplit():
    assert tokens_match([b"a", b"*"], [b"a", b"b"])
    assert tokens_match([b"a", b">"], [b"a", b"b", b"c"])
    assert not tokens_match([b"a", b">"], [b"a"])
    assert not tokens_match([b"a", b"b"], [b"a"])
    assert not tokens_match([b"a"], [b"a", b"b"])


# a, b, overlap
OVERLAP = [
    (b"foo", b"foo", True),
    (b"foo", b"bar", False),
    (b"foo.*", b"foo.bar", True),
    (b"foo.*", b"*.bar", True),
    (b"foo.*", b"bar.*", False),
    (b"foo.>", b"foo", False),
    (b"foo.>", b"foo.bar.baz", True),
    (b"foo.>", b"*.*.*", True),
    (b">", b"foo", True),
    (b">", b"*.*", True),
    (b"*", b"foo.bar", False),
    (b"*.>", b"foo", False),
    (b"*.*", b"foo.>", True),
    (b"foo.*.baz", b"foo.bar.*", True),
    (b"foo.*.baz", b"foo.bar.qux", False),
    (b"foo..bar", b">", False),
    (b"", b">", False),
    (b"a.", b"a.", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), OVERLAP)
def test_subjects_overlap_table(a: bytes, b: bytes, expected: bool):
    assert subjects_overlap(a, b) is expected
    assert subjects_overlap(b, a) is expected


def _patterns(literals: list[bytes], max_tokens: int) -> list[bytes]:
    out = []
    for n in range(1, max_tokens + 1):
        for toks in itertools.product([*literals, b"*"], repeat=n):
            out.append(b".".join(toks))
            out.append(b".".join((*toks[:-1], b">")))
    return sorted(set(out))


def test_subjects_overlap_exhaustive_against_witnesses():
    # Patterns use literals a/b; a witness needs at most one token beyond the longer
    # pattern (for ">"), and the token c covers every "*"-against-"*" position.
    patterns = _patterns([b"a", b"b"], 3)
    witnesses = [
        b".".join(t) for n in range(1, 5) for t in itertools.product([b"a", b"b", b"c"], repeat=n)
    ]
    for a in patterns:
        matched_a = {w for w in witnesses if subject_matches(a, w)}
        for b in patterns:
            expected = any(subject_matches(b, w) for w in matched_a)
            assert subjects_overlap(a, b) is expected, (a, b)
