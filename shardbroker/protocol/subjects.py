"""Subject validation, literal matching and wildcard overlap (protocol.md section 13).

Owner: pure functions, imported by every process that routes or checks permissions
(worker shards, the storage shard, security/). No asyncio, no state.

Subjects are ``bytes`` exactly as they came off the wire. A subject is tokens joined by
``.``. A token is a *wildcard* only when it is exactly ``*`` (one token) or ``>`` (one or
more trailing tokens, last position only); ``foo*`` or ``a>b`` are ordinary characters.

Invariants the rest of the broker relies on:

- A *published* subject with an empty token (``a..b``, ``.a``, ``a.``, ``b""``) matches
  nothing; non-pedantic PUB is never validated, so matching must tolerate it.
- A ``*``/``>`` token in a *published* subject is a literal token: it is reached by a
  pattern's ``*``/``>`` position but never by a literal pattern token.
- Whitespace (space, tab, CR, LF, FF, VT) never appears in a valid subject. nats-server
  accepts VT; the parser splits arguments on it, so it can never reach us from the wire.
"""

from __future__ import annotations

import re

# One anchored regex per check: the C regex engine beats split() + Python loops on the
# short subjects we see. A token is one or more bytes that are neither "." nor whitespace.
# Every token but the last is followed by "."; the lookaheads forbid a *whole* token ">"
# (or "*"/">" for literals) without touching tokens such as "a>" or ">>".
_TOKEN = rb"[^. \t\r\n\f\v]+"
_VALID_SUBJECT = re.compile(rb"(?:(?!>\.)" + _TOKEN + rb"\.)*" + _TOKEN).fullmatch
_VALID_LITERAL = re.compile(rb"(?:(?![*>]\.)" + _TOKEN + rb"\.)*(?![*>]\Z)" + _TOKEN).fullmatch

PWC = b"*"  # partial wildcard token (nats pwc)
FWC = b">"  # full wildcard token (nats fwc)
TSEP = b"."  # token separator (nats tsep)


def is_valid_subject(subject: bytes) -> bool:
    """A subject acceptable to SUB and in permissions/imports/exports (wildcards allowed).

    Non-empty, no empty token, no whitespace, ``>`` only as the whole last token.
    """
    return _VALID_SUBJECT(subject) is not None


def is_valid_literal_subject(subject: bytes) -> bool:
    """A valid subject without any ``*``/``>`` token (the pedantic PUB check)."""
    return _VALID_LITERAL(subject) is not None


def has_wildcard(subject: bytes) -> bool:
    """True if any whole token is ``*`` or ``>``. Does not validate."""
    if PWC not in subject and FWC not in subject:  # common case, no split
        return False
    tokens = subject.split(TSEP)
    return PWC in tokens or FWC in tokens


def tokens_match(pattern_tokens: list[bytes], subject_tokens: list[bytes]) -> bool:
    """`subject_matches` on pre-split tokens; the subject must have no empty token.

    For callers that test one pattern against many subjects (cache invalidation).
    A ``>`` token matches the rest, provided at least one subject token is left.
    """
    n = len(subject_tokens)
    for i, pt in enumerate(pattern_tokens):
        if i >= n:
            return False
        if pt == FWC:
            return True
        if pt != PWC and pt != subject_tokens[i]:
            return False
    return len(pattern_tokens) == n


def str_tokens_match(pattern_tokens: list[str], subject: str) -> bool:
    """`tokens_match` for subjects held as ``str`` (the storage shard's stores and filters).

    `subject` must have no empty token, as every subject a stream stores; `pattern_tokens`
    is a pattern split on ``.`` once by the caller. Kept beside `tokens_match`, and tested
    on the same table, so that the two cannot drift apart.
    """
    tokens = subject.split(".")
    n = len(tokens)
    for i, pt in enumerate(pattern_tokens):
        if pt == ">":
            return n > i
        if i >= n or (pt != "*" and pt != tokens[i]):
            return False
    return n == len(pattern_tokens)


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """Does the published (literal) `subject` match `pattern` (possibly with wildcards)?

    `pattern` should be a valid subject. A published subject with an empty token matches
    nothing; a ``*``/``>`` token in it is matched only by a pattern ``*``/``>``.
    """
    subject_tokens = subject.split(TSEP)
    if b"" in subject_tokens:
        return False
    if pattern == subject:
        return True
    return tokens_match(pattern.split(TSEP), subject_tokens)


def subjects_overlap(a: bytes, b: bytes) -> bool:
    """Could some valid literal subject match both patterns `a` and `b`? (nats SubjectsCollide)

    Symmetric. A pattern with an empty token matches nothing, so it overlaps nothing.
    """
    ta = a.split(TSEP)
    tb = b.split(TSEP)
    if b"" in ta or b"" in tb:
        return False
    na = len(ta)
    nb = len(tb)
    for i in range(min(na, nb)):
        x = ta[i]
        y = tb[i]
        if x == FWC or y == FWC:
            # Both still have a token here; ">" absorbs this one and whatever follows
            # in the other pattern ("*" and literals alike can be instantiated).
            return True
        if x != y and x != PWC and y != PWC:
            return False
    return na == nb


def subject_is_subset_match(subject: bytes, test: bytes) -> bool:
    """Is every subject `subject` can match also matched by `test`? (nats subjectIsSubsetMatch)

    Both may have wildcards: ``foo.bar`` and ``foo.*`` are subsets of ``foo.*``, ``foo.*``
    is a subset of ``foo.>``, but ``foo.>`` is not a subset of ``foo.*``. Used where a
    pattern stands for a set, e.g. a queue name with wildcards in a queue permission.
    """
    tokens = subject.split(TSEP)
    for i, t2 in enumerate(test.split(TSEP)):
        if i >= len(tokens) or not t2:
            return False
        if t2 == FWC:
            return True
        t1 = tokens[i]
        if not t1 or t1 == FWC:
            return False
        if t1 == PWC:
            if t2 != PWC:
                return False
            continue
        if t2 != PWC and t1 != t2:
            return False
    return len(tokens) == len(test.split(TSEP))
