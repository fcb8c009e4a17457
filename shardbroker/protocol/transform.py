"""Subject mappings (nats-server's `mappings {}`, subject_transform.go and the account's
weighted mappings): a published subject is rewritten before it is matched.

Owner: pure, no state shared between processes. Compiled once per config (or reload) in
whichever process routes messages; `SubjectMappings.map` runs per message. No asyncio.

Compiling (`SubjectTransform`, `check_mapping`) follows nats-server 2.15 step by step, so
the same destinations are refused with the same texts: ValidateMapping, then
NewSubjectTransform (indexPlaceHolders for each destination token), and for a source the
checks of Account.AddWeightedMappings (duplicates, weights).

Rewriting follows Account.selectMappedSubject:

- Mappings are tried in their order (the config file's; nats-server's order is Go's map
  iteration, random at each start, so a subject matched by two sources may go either way
  there). The first whose source matches wins; literal sources are not preferred.
- A mapping's destinations are (subject, weight); weights under 100 in total leave the rest
  to an implicit destination: the subject unchanged. If the source itself is listed as a
  destination, nothing is implicit and the rest of the traffic is dropped (`map` returns
  b""). `draw` in [0, 1) picks a destination as nats picks with a random 0..99.
- A literal source that matches as the first mapping sees no source tokens (nats-server
  does not split the subject then), so its `{{partition(n)}}` hashes the empty string.
- `{{partition(n, i...)}}` is FNV-1a (32-bit) of the tokens concatenated, without dots
  (`partition(n)`: the whole subject), modulo n: the partitions agree with nats-server's.

Destination functions (names case-insensitive in their first letters, as nats's regexes):
`$N` and `{{wildcard(N)}}` the N-th `*` of the source; `{{partition(n, N...)}}`;
`{{split(N, delim)}}`; `{{splitFromLeft(N, pos)}}`, `{{splitFromRight(N, pos)}}`;
`{{sliceFromLeft(N, size)}}`, `{{sliceFromRight(N, size)}}`; `{{left(N, len)}}`,
`{{right(N, len)}}`; `{{random(n)}}`. A `>` source needs a `>` destination, which takes
the tokens the `>` matched.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence

from shardbroker.gofmt.quote import go_quote
from shardbroker.gofmt.strconv import GoNumError, go_atoi

__all__ = [
    "Destination",
    "MappingEntry",
    "SubjectMappings",
    "SubjectTransform",
    "TransformError",
    "check_mapping",
    "fnv1a32",
    "is_valid_source",
    "subject_mappings",
]

# (subject, weight) or (subject, weight, cluster); weight 0..100.
Destination = tuple[str, int] | tuple[str, int, str]
MappingEntry = tuple[str, Sequence[Destination]]

# nats-server's errors (errors.go): one prefix, then the kind; "<kind> in <token>".
_INVALID = "invalid mapping destination"
ERR_INVALID_SUBJECT = f"{_INVALID}: invalid transform"
ERR_NOT_USING_ALL_WILDCARDS = f"{_INVALID}: not using all of the token wildcard(s)"
ERR_UNKNOWN_FUNCTION = f"{_INVALID}: unknown function"
ERR_INDEX_OUT_OF_RANGE = f"{_INVALID}: wildcard index out of range"
ERR_NOT_ENOUGH_ARGS = f"{_INVALID}: not enough arguments passed to the function"
ERR_INVALID_ARG = f"{_INVALID}: function argument is invalid or in the wrong format"
ERR_TOO_MANY_ARGS = f"{_INVALID}: too many arguments passed to the function"
ERR_BAD_SUBJECT = "invalid subject"
# nats-server accepts an empty destination and then crashes on the first message.
ERR_EMPTY_DESTINATION = f"{_INVALID}: empty destination"


class TransformError(ValueError):
    """A source or destination nats-server refuses; str() is nats-server's text."""


def _dest_error(kind: str, token: str) -> TransformError:
    # mappingDestinationErr.Error(): the kind alone when there is no token.
    return TransformError(f"{kind} in {token}" if token else kind)


# -- destination tokens --------------------------------------------------------------

# Step kinds (nats's transform types that reach the runtime).
_LITERAL = 0
_WILDCARD = 1
_PARTITION = 2
_SPLIT_FROM_LEFT = 3
_SPLIT_FROM_RIGHT = 4
_SLICE_FROM_LEFT = 5
_SLICE_FROM_RIGHT = 6
_SPLIT = 7
_LEFT = 8
_RIGHT = 9
_RANDOM = 10

# nats's regexes, unanchored as there, searched in the same order. Go's \s is [\t\n\f\r ].
_S = r"[\t\n\f\r ]*"


def _function(name: str) -> Callable[[str], re.Match[str] | None]:
    # "splitFromLeft" -> "[sS]plit[fF]rom[lL]eft": the first letter of each word either case.
    head = "".join(
        f"[{c.lower()}{c.upper()}]" if c.isupper() or i == 0 else c for i, c in enumerate(name)
    )
    return re.compile(r"{{" + _S + head + _S + r"\((.*)\)" + _S + r"}}").search


_FUNCTIONS: tuple[tuple[int, Callable[[str], re.Match[str] | None]], ...] = (
    (_WILDCARD, _function("wildcard")),
    (_PARTITION, _function("partition")),
    (_SPLIT_FROM_LEFT, _function("splitFromLeft")),
    (_SPLIT_FROM_RIGHT, _function("splitFromRight")),
    (_SLICE_FROM_LEFT, _function("sliceFromLeft")),
    (_SLICE_FROM_RIGHT, _function("sliceFromRight")),
    (_RIGHT, _function("right")),
    (_LEFT, _function("left")),
    (_SPLIT, _function("split")),
    (_RANDOM, _function("random")),
)
_ARG_SEPARATOR = re.compile(r"," + r"[\t\n\f\r ]*").split
_MAX_INT32 = (1 << 31) - 1


def _is_function_token(token: str) -> bool:
    return len(token) > 4 and token.startswith("{{") and token.endswith("}}")


def _atoi(text: str) -> int:
    return go_atoi(text.strip(" "))


def _int32(value: int) -> int:
    """Go's int32(value): wraps."""
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


class _Placeholder:
    """What indexPlaceHolders makes of one destination token."""

    __slots__ = ("indexes", "kind", "number", "text")

    def __init__(
        self, kind: int, indexes: tuple[int, ...] = (), number: int = -1, text: str = ""
    ) -> None:
        self.kind = kind
        self.indexes = indexes
        self.number = number
        self.text = text


def _index_and_int(token: str, args: list[str], kind: int) -> _Placeholder:
    """transformIndexIntArgsHelper: (wildcard index, int32)."""
    if len(args) < 2:
        raise _dest_error(ERR_NOT_ENOUGH_ARGS, token)
    if len(args) > 2:
        raise _dest_error(ERR_TOO_MANY_ARGS, token)
    try:
        index = _atoi(args[0])
        number = _atoi(args[1])  # ParseInt(s, 10, 32)
    except GoNumError:
        raise _dest_error(ERR_INVALID_ARG, token) from None
    if not -(1 << 31) <= number <= _MAX_INT32:
        raise _dest_error(ERR_INVALID_ARG, token)
    return _Placeholder(kind, (index,), number)


def _count(token: str, text: str) -> int:
    """A partition or random count: Atoi, at most MaxInt32, then int32()."""
    try:
        value = _atoi(text)
    except GoNumError:
        raise _dest_error(ERR_INVALID_ARG, token) from None
    if value > _MAX_INT32:
        raise _dest_error(ERR_INVALID_ARG, token)
    return _int32(value)


def _placeholder(token: str) -> _Placeholder:
    """nats-server indexPlaceHolders: the kind of a destination token and its arguments."""
    if len(token) > 1 and token[0] == "$":
        try:
            return _Placeholder(_WILDCARD, (go_atoi(token[1:]),))
        except GoNumError:
            return _Placeholder(_LITERAL)  # "$foo": other things rely on such tokens
    if not _is_function_token(token):
        return _Placeholder(_LITERAL)
    for kind, search in _FUNCTIONS:
        match = search(token)
        if match is None:
            continue
        args = _ARG_SEPARATOR(match.group(1))
        if kind == _WILDCARD:
            if len(args) == 1 and not args[0]:
                raise _dest_error(ERR_NOT_ENOUGH_ARGS, token)
            if len(args) > 1:
                raise _dest_error(ERR_TOO_MANY_ARGS, token)
            try:
                return _Placeholder(_WILDCARD, (_atoi(args[0]),))
            except GoNumError:
                raise _dest_error(ERR_INVALID_ARG, token) from None
        if kind == _PARTITION:
            count = _count(token, args[0])
            try:
                indexes = tuple(_atoi(arg) for arg in args[1:])
            except GoNumError:
                raise _dest_error(ERR_INVALID_ARG, token) from None
            return _Placeholder(_PARTITION, indexes, count)
        if kind == _SPLIT:
            if len(args) < 2:
                raise _dest_error(ERR_NOT_ENOUGH_ARGS, token)
            if len(args) > 2:
                raise _dest_error(ERR_TOO_MANY_ARGS, token)
            try:
                index = _atoi(args[0])
            except GoNumError:
                raise _dest_error(ERR_INVALID_ARG, token) from None
            if " " in args[1] or "." in args[1]:
                raise _dest_error(ERR_INVALID_ARG, token)
            return _Placeholder(_SPLIT, (index,), -1, args[1])
        if kind == _RANDOM:
            if len(args) != 1:
                raise _dest_error(ERR_NOT_ENOUGH_ARGS, token)  # sic
            return _Placeholder(_RANDOM, (), _count(token, args[0]))
        return _index_and_int(token, args, kind)
    raise _dest_error(ERR_UNKNOWN_FUNCTION, token)


def _validate_destination(destination: str) -> None:
    """nats-server ValidateMapping, before the transform is built."""
    if not destination:
        raise TransformError(ERR_EMPTY_DESTINATION)
    after_fwc = False
    for token in destination.split("."):
        if not token or after_fwc:
            raise _dest_error(ERR_INVALID_SUBJECT, token)
        if _is_function_token(token):
            if not any(search(token) for _, search in _FUNCTIONS):
                raise _dest_error(ERR_UNKNOWN_FUNCTION, token)
            continue
        if token == ">":
            after_fwc = True
        elif any(c in token for c in "\t\n\f\r "):
            raise TransformError(ERR_INVALID_SUBJECT)


def _subject_info(subject: str) -> tuple[bool, list[str], int, bool]:
    """nats subjectInfo: valid (no empty token, nothing after `>`), tokens, number of
    `*`, has `>`. Whitespace is not checked here."""
    tokens = subject.split(".")
    pwcs = 0
    fwc = False
    for token in tokens:
        if not token or fwc:
            return False, tokens, 0, False
        if token == ">":
            fwc = True
        elif token == "*":
            pwcs += 1
    return True, tokens, pwcs, fwc


# -- running a transform ---------------------------------------------------------------

_UTF8_CHAR = re.compile(
    rb"[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}|.",
    re.DOTALL,
).findall


def fnv1a32(data: bytes) -> int:
    """Go's hash/fnv New32a: the hash of {{partition}}."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _split(token: bytes, delimiter: bytes) -> bytes:
    """{{split}}: Go strings.Split, then nats's rule for the dots between the pieces (no
    empty token made by leading, trailing or doubled delimiters)."""
    pieces = token.split(delimiter) if delimiter else _UTF8_CHAR(token)
    out = []
    last = len(pieces) - 1
    for j, piece in enumerate(pieces):
        if piece:
            out.append(piece)
        if j < last and pieces[j + 1] and not (j == 0 and not piece):
            out.append(b".")
    return b"".join(out)


def _slice_from_left(token: bytes, size: int) -> bytes:
    if not 0 < size < len(token):
        return token
    return b".".join([token[i : i + size] for i in range(0, len(token), size)])


def _slice_from_right(token: bytes, size: int) -> bytes:
    if not 0 < size < len(token):
        return token
    rest = len(token) % size
    head = [token[:rest]] if rest else []
    return b".".join(head + [token[i : i + size] for i in range(rest, len(token), size)])


class SubjectTransform:
    """One compiled source -> destination (nats subjectTransform)."""

    __slots__ = ("_constant", "_steps", "_tail", "destination", "has_random", "source")

    def __init__(self, source: str, destination: str) -> None:
        """nats-server NewSubjectTransform (not strict). Raises TransformError."""
        if not destination:
            raise TransformError(ERR_EMPTY_DESTINATION)
        self.source = source or ">"
        self.destination = destination
        valid, source_tokens, pwcs, fwc = _subject_info(self.source)
        dvalid, dest_tokens, dpwcs, dfwc = _subject_info(destination)
        if not valid or not dvalid or dpwcs > 0 or fwc != dfwc:
            raise TransformError(ERR_BAD_SUBJECT)
        # Position in the subject of the N-th "*" (1-based); any other N reads token 0,
        # as nats's map lookup that misses does.
        stars = [i for i, token in enumerate(source_tokens) if token == "*"]
        positions = {n + 1: i for n, i in enumerate(stars)}
        steps: list[tuple[int, tuple[int, ...], int, bytes]] = []
        for token in dest_tokens:
            ph = _placeholder(token)
            if ph.kind == _LITERAL:
                steps.append((_LITERAL, (), -1, token.encode()))
            elif ph.kind == _RANDOM or (ph.kind == _PARTITION and not (pwcs or fwc)):
                # Without wildcards in the source a partition hashes the whole subject.
                steps.append((ph.kind, (), ph.number, b""))
            elif not (pwcs or fwc):
                raise _dest_error(ERR_INDEX_OUT_OF_RANGE, token)
            else:
                for index in ph.indexes:
                    if index > pwcs:
                        raise _dest_error(ERR_INDEX_OUT_OF_RANGE, f"{token}: [{index}]")
                at = tuple(positions.get(index, 0) for index in ph.indexes)
                steps.append((ph.kind, at, ph.number, ph.text.encode()))
        # A ">" destination ends the steps and takes the subject's tokens from the
        # position of the source's ">" on.
        self._tail = len(source_tokens) - 1 if dest_tokens[-1] == ">" else -1
        if self._tail >= 0:
            steps.pop()
        self._steps = tuple(steps)
        self.has_random = any(step[0] == _RANDOM for step in steps)
        self._constant = (
            b".".join(step[3] for step in steps)
            if self._tail < 0 and all(step[0] == _LITERAL for step in steps)
            else None
        )

    def transform(self, tokens: list[bytes], rand: Callable[[], float] = random.random) -> bytes:
        """The destination for a subject split on "." that matched the source (nats
        TransformTokenizedSubject). `rand` feeds {{random}}."""
        if self._constant is not None:
            return self._constant
        out: list[bytes] = []
        append = out.append
        for kind, at, number, text in self._steps:
            if kind == _LITERAL:
                append(text)
                continue
            if kind == _WILDCARD:
                append(tokens[at[0]] if at[0] < len(tokens) else b"")
                continue
            if kind == _PARTITION:
                key = b"".join([tokens[i] for i in at]) if at else b".".join(tokens)
                buckets = number & 0xFFFFFFFF  # Go's uint32(n)
                append(str(fnv1a32(key) % buckets).encode() if buckets else b"0")
                continue
            if kind == _RANDOM:
                ceiling = abs(number)
                append(str(int(rand() * 2147483648.0) % ceiling).encode() if ceiling else b"0")
                continue
            token = tokens[at[0]]
            size = len(token)
            if kind == _SPLIT:
                append(_split(token, text))
            elif kind == _SLICE_FROM_LEFT:
                append(_slice_from_left(token, number))
            elif kind == _SLICE_FROM_RIGHT:
                append(_slice_from_right(token, number))
            elif not 0 < number < size:
                append(token)  # too short to split or cut: unchanged
            elif kind == _SPLIT_FROM_LEFT:
                append(token[:number] + b"." + token[number:])
            elif kind == _SPLIT_FROM_RIGHT:
                append(token[: size - number] + b"." + token[size - number :])
            elif kind == _LEFT:
                append(token[:number])
            else:  # _RIGHT
                append(token[size - number :])
        if self._tail >= 0:
            out.extend(tokens[self._tail :])
        return b".".join(out)


def _tokenize_wildcards(subject: str) -> str:
    """nats transformTokenize: "foo.*.*" -> "foo.$1.$2"."""
    out = []
    n = 0
    for token in subject.split("."):
        if token == "*":
            n += 1
            out.append(f"${n}")
        else:
            out.append(token)
    return ".".join(out)


# -- a source with its weighted destinations -------------------------------------------


class _Mapping:
    """One source (nats mapping): its destinations with cumulative weights."""

    __slots__ = ("dests", "deterministic", "literal", "single", "source", "source_tokens")

    def __init__(self, source: str, destinations: Sequence[Destination], cluster: str) -> None:
        """Account.AddWeightedMappings for one source. Raises TransformError."""
        self.source = source
        self.source_tokens = source.encode().split(b".")
        self.literal = "*" not in source.split(".") and ">" not in source.split(".")
        seen: set[str] = set()
        totals: dict[str, int] = {}
        by_cluster: dict[str, list[tuple[int, SubjectTransform]]] = {}
        for dest in destinations:
            subject, weight = dest[0], dest[1]
            where = dest[2] if len(dest) > 2 else ""
            if subject in seen:
                raise TransformError(f"duplicate entry for {go_quote(subject)}")
            seen.add(subject)
            if weight > 100:
                raise TransformError("individual weights need to be <= 100")
            totals[where] = totals.get(where, 0) + weight
            if totals[where] > 100:
                raise TransformError("total weight needs to be <= 100")
            _validate_destination(subject)
            by_cluster.setdefault(where, []).append((weight, SubjectTransform(source, subject)))
        chosen = by_cluster.get(cluster) if cluster else None
        dests = self._complete(chosen or by_cluster.get("", []), source in seen)
        for name, listed in by_cluster.items():
            if name:  # checked as nats-server does, though only one list is used
                self._complete(listed, source in seen)
        self.dests = tuple(dests)
        self.single = dests[0][1] if len(dests) == 1 and dests[0][0] == 100 else None
        self.deterministic = self.single is not None and not self.single.has_random

    def _complete(
        self, dests: list[tuple[int, SubjectTransform]], have_source: bool
    ) -> list[tuple[int, SubjectTransform]]:
        """processDestinations: the implicit "unchanged" destination, weights sorted
        (stable, as Go's sort is for short lists) and made cumulative."""
        total = sum(weight for weight, _ in dests)
        dests = list(dests)
        if total != 100 and not have_source:
            identity = SubjectTransform(self.source, _tokenize_wildcards(self.source))
            dests.append((100 - total, identity))
        dests.sort(key=lambda dest: dest[0])
        out = []
        cumulative = 0
        for weight, transform in dests:
            cumulative += weight
            out.append((cumulative, transform))
        return out

    def select(self, tokens: list[bytes], draw: float, rand: Callable[[], float]) -> bytes:
        """The destination subject; b"" when the draw falls in the dropped share."""
        single = self.single
        if single is not None:
            return single.transform(tokens, rand)
        w = int(draw * 100)
        for cumulative, transform in self.dests:
            if w < cumulative:
                return transform.transform(tokens, rand)
        return b""


def check_mapping(source: str, destinations: Sequence[Destination]) -> None:
    """Would nats-server take this mapping? Raises TransformError with its text
    (without the "Error adding mapping for ..." the config parser puts in front)."""
    if not is_valid_source(source):
        raise TransformError(ERR_BAD_SUBJECT)
    _Mapping(source, destinations, "")


_SOURCE = re.compile(r"(?:(?!>\.)[^. \t\r\n\f]+\.)*[^. \t\r\n\f]+").fullmatch


def is_valid_source(source: str) -> bool:
    """nats IsValidSubject: no empty token, no whitespace, `>` only last."""
    return _SOURCE(source) is not None


def _subset_match(tokens: list[bytes], test: list[bytes]) -> bool:
    """nats isSubsetMatchTokenized for a published subject: a `*` token in it is reached
    only by a source `*`, a `>` or an empty token in it by nothing but an earlier `>`."""
    n = len(tokens)
    for i, t2 in enumerate(test):
        if i >= n:
            return False
        if t2 == b">":
            return True
        t1 = tokens[i]
        if not t1 or t1 == b">":
            return False
        if t1 == b"*":
            if t2 != b"*":
                return False
            continue
        if t2 != b"*" and t1 != t2:
            return False
    return n == len(test)


# -- the per-account table ---------------------------------------------------------------

_CACHE_MAX = 4096
# A cached lookup: no mapping, the fixed destination, or what a draw chooses from.
_Hit = bytes | tuple[_Mapping, list[bytes]] | None


class SubjectMappings:
    """An account's mappings, compiled; `map` per published message.

    What a subject maps to is looked up once and cached (a bounded dict cleared when
    full): `None` (no mapping), the destination itself when it is fixed (one destination,
    no {{random}}), or the mapping and the subject's tokens for a draw.
    """

    __slots__ = ("_cache", "_literal", "_mappings", "_rand", "_wild")

    def __init__(
        self,
        entries: Iterable[MappingEntry],
        cluster: str = "",
        rand: Callable[[], float] = random.random,
    ) -> None:
        """`entries`: (source, destinations) in the config's order; a source listed
        again replaces the earlier one in its place. `cluster`: the cluster name for
        cluster-scoped destinations (shardbroker has none: ""). `rand` feeds
        {{random(n)}}. Raises TransformError with nats-server's texts."""
        mappings: dict[str, _Mapping] = {}
        for source, destinations in entries:
            if not is_valid_source(source):
                raise TransformError(ERR_BAD_SUBJECT)
            mappings[source] = _Mapping(source, destinations, cluster)
        self._mappings = tuple(mappings.values())
        self._literal = {m.source.encode(): i for i, m in enumerate(self._mappings) if m.literal}
        self._wild = tuple((i, m) for i, m in enumerate(self._mappings) if not m.literal)
        self._rand = rand
        self._cache: dict[bytes, _Hit] = {}

    def __len__(self) -> int:
        return len(self._mappings)

    def _lookup(self, subject: bytes) -> _Hit:
        literal = self._literal.get(subject)
        found = None
        tokens: list[bytes] = []
        if literal == 0:
            found = self._mappings[0]  # matched before nats splits the subject
        else:
            tokens = subject.split(b".")
            for index, mapping in self._wild:
                if literal is not None and index > literal:
                    break
                if _subset_match(tokens, mapping.source_tokens):
                    found = mapping
                    break
            if found is None and literal is not None:
                found = self._mappings[literal]
        if found is None:
            result: _Hit = None
        elif found.deterministic:
            result = found.select(tokens, 0.0, self._rand)
        else:
            result = (found, tokens)
        cache = self._cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[subject] = result
        return result

    def map(self, subject: bytes, draw: float) -> bytes | None:
        """The subject a published `subject` is delivered on: None when no mapping
        applies, b"" when a weighted mapping drops it. `draw` in [0, 1) chooses among
        weighted destinations (random.random() in production)."""
        try:
            hit = self._cache[subject]
        except KeyError:
            hit = self._lookup(subject)
        if hit is None or isinstance(hit, bytes):
            return hit
        mapping, tokens = hit
        return mapping.select(tokens, draw, self._rand)

    def matches(self, subject: bytes) -> bool:
        """Does some mapping apply to `subject`? (Cached as `map` is.)"""
        try:
            return self._cache[subject] is not None
        except KeyError:
            return self._lookup(subject) is not None


def subject_mappings(
    entries: Iterable[MappingEntry],
    cluster: str = "",
    rand: Callable[[], float] = random.random,
) -> SubjectMappings | None:
    """`SubjectMappings`, or None for an account without mappings, so that the router's
    test is `if mappings is not None`."""
    table = SubjectMappings(entries, cluster, rand)
    return table if len(table) else None
