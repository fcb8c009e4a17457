"""nats config grammar -> plain dict (pure; knows nothing of Options).

Owns the nats-server configuration file syntax (reference config.md section 1): maps,
arrays, quoted/bare/block strings, numbers with size suffixes, booleans, datetimes,
comments, ``include`` and ``$VARIABLE`` references. It returns plain Python values
(dict, list, str, int, float, bool, datetime) and, on request, the source Position of
every key path. Imported by the supervisor and the CLI (``check-config``); no asyncio,
stdlib only.

Invariants:

* Keys are kept exactly as written; matching option names case-insensitively is the
  Options layer's job. A repeated key in one map: the last one wins.
* Durations stay strings (``"2m"``); the Options layer converts them.
* A position path is a tuple of map keys (str) and array indexes (int); the position of a
  map entry is its key's, of an array element its value's, and of ``()`` the file start.
  Lines and columns are 1-based (columns count characters).
* Every failure is a ``ConfigError`` naming file, line and column; messages use
  nats-server's wording where it has one.

Behaviour checked against ``nats-server`` v2.15.1 (``nats-server -c FILE -t``; its
"valid" line prints ``sha256(json(parsed map) + "\\n")``, which let us compare values):

* Size suffixes: ``k m g t p e`` are powers of 1000; with ``b``, ``i`` or ``ib`` after
  them powers of 1024 (``1mib`` = 1048576, ``1K`` = 1000, ``1e`` = 10**18), any case.
* A word starting with a digit is a number only when a value terminator follows;
  otherwise it is a bare string (``3secret``, ``1k2``, ``1kibx``, ``1e5``, ``0x10``,
  ``1_000``). Two or more dots make it a string too (``1.2.3``, ``1.2.3.4:42``), but a
  float followed by a letter (``1.5x``, ``1.5k``) and a negative number followed by
  one (``-1x``) are errors, and ``12-3`` is a malformed datetime.
* ``+5`` is the string ``"+5"``; ``.5`` and ``-.5`` are errors.
* Bare strings honour the double-quote escapes (``a\\tb`` holds a tab) and are
  neither bools nor variables when they contain one.
* ``listen: 127.0.0.1:$P`` is a syntax error (the value ends at ``$``), while
  ``host:$P`` is the plain string ``"host:$P"``.
* ``$2a$...`` bare values are bcrypt hashes, kept as strings.
* An environment value is parsed as a value (``PORT=4222`` -> 4222); an environment
  value that refers to itself is ``variable reference cycle for 'X'``; one that does
  not parse is ``variable reference for 'X' on line N could not be parsed: ...``.
  Maps and arrays from the environment parse too (``T='{a: b}'`` gives a map).
* ``(`` starts a block string that ends at a ``)`` alone on its line; the value is
  the text between, including the newline before ``)``.

Deliberate differences (all stricter or clearer, never accepting less valid input):

* ``key:`` at end of file and an unterminated block string are errors (nats-server
  stores an empty string, or loops forever).
* A ``}`` after a top-level value is accepted only when the file opened with ``{``.
* Include cycles are reported (``include cycle: a -> b -> a``) instead of recursing.
* Unterminated strings, maps and arrays are reported at end of input like nats, but
  the message names the line where they were opened.
* ``\\xHH`` escapes build bytes that are decoded as UTF-8; invalid sequences are kept
  with ``surrogateescape`` so ``s.encode("utf-8", "surrogateescape")`` gives the bytes.
"""

from __future__ import annotations

import bisect
import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "KeyPath",
    "Position",
    "parse",
    "parse_file",
    "parse_file_with_positions",
    "parse_with_positions",
]

KeyPath = tuple[str | int, ...]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_SUFFIX_BASE = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE_HELP = 'Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\", \\\\.'
# A bare word ends at one of these (or at end of input); so does a number.
_BARE_END = frozenset("\r\n;,]} \t")
_SPACE = " \t"
_NL = "\r\n"
_ENV_KEY = "pk"
_BCRYPT_PREFIX = "2a$"

_DIGITS = re.compile(r"\d+")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_SUFFIX = re.compile(r"([kmgtpe])(ib|b|i)?", re.IGNORECASE)
_IP_TAIL = re.compile(r"[\d.:\-]*")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a key or value was written: file name, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ConfigError(Exception):
    """A config file that can not be parsed; str() is ``<file>:<line>:<col>: <message>``."""

    def __init__(self, message: str, file: str, line: int, column: int) -> None:
        super().__init__(message, file, line, column)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    @property
    def position(self) -> Position:
        return Position(self.file, self.line, self.column)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def parse(text: str, filename: str = "<string>", env: Mapping[str, str] | None = None) -> dict:
    """Parse config text into plain values; ``include`` is relative to ``filename``'s dir."""
    return parse_with_positions(text, filename, env)[0]


def parse_with_positions(
    text: str, filename: str = "<string>", env: Mapping[str, str] | None = None
) -> tuple[dict, dict[KeyPath, Position]]:
    """Like parse(), plus the Position of every key path."""
    base = Path.cwd() if filename == "<string>" else Path(filename).parent
    parser = _Parser(text, filename, base, os.environ if env is None else env, (), ())
    return parser.run()


def parse_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict:
    """Parse a config file; ``include`` paths are relative to the including file."""
    return parse_file_with_positions(path, env)[0]


def parse_file_with_positions(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> tuple[dict, dict[KeyPath, Position]]:
    """Like parse_file(), plus the Position of every key path."""
    name = os.fspath(path)
    text = _read(name, name, 1, 1)
    parser = _Parser(
        text,
        name,
        Path(name).parent,
        os.environ if env is None else env,
        (os.path.realpath(name),),
        (),
    )
    return parser.run()


def _read(path: str, where: str, line: int, column: int) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise ConfigError(f"open {path}: {reason}", where, line, column) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not valid UTF-8: {e}", where, line, column) from e


def _show(ch: str) -> str:
    """A character as nats-server quotes it in messages ('' at end of input)."""
    return "\\n" if ch == "\n" else ch


class _Parser:
    """Recursive descent over one file's text, with nats-server's lexer rules."""

    def __init__(
        self,
        text: str,
        filename: str,
        base: Path,
        env: Mapping[str, str],
        includes: tuple[str, ...],
        env_refs: tuple[str, ...],
    ) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.file = filename
        self.base = base
        self.env = env
        self.includes = includes  # real paths of the files being parsed, outermost first
        self.env_refs = env_refs  # environment variables being expanded (cycle check)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.positions: dict[KeyPath, Position] = {}
        # Maps being built, innermost last, with their paths: the variable scopes.
        self.scopes: list[tuple[dict, KeyPath]] = []

    # -- positions and errors ------------------------------------------------------

    def pos(self, i: int) -> Position:
        line = bisect.bisect_right(self.line_starts, i)
        return Position(self.file, line, i - self.line_starts[line - 1] + 1)

    def error(self, message: str, i: int | None = None) -> ConfigError:
        p = self.pos(self.i if i is None else i)
        return ConfigError(message, p.file, p.line, p.column)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    # -- structure -------------------------------------------------------------------

    def run(self) -> tuple[dict, dict[KeyPath, Position]]:
        root: dict = {}
        self.positions[()] = self.pos(0)
        self.skip_blank()
        if self.peek() == "{":
            self.i += 1
            self.parse_map_body(root, (), self.i - 1, braced_top=True)
            self.skip_blank()
            if self.i < self.n:
                raise self.error(f"Unexpected '{_show(self.peek())}' after the top-level map.")
        else:
            self.parse_map_body(root, (), None, braced_top=False)
        return root, self.positions

    def skip_comment(self) -> bool:
        """Skip a '#' or '//' comment up to (not including) the line end."""
        s, i = self.s, self.i
        if s.startswith("#", i) or s.startswith("//", i):
            end = min((k for k in (s.find("\n", i), s.find("\r", i)) if k >= 0), default=self.n)
            self.i = end
            return True
        return False

    def skip_blank(self) -> None:
        """Skip whitespace, newlines and comments."""
        while self.i < self.n:
            if self.s[self.i].isspace():
                self.i += 1
            elif not self.skip_comment():
                return

    def skip_space(self) -> None:
        while self.i < self.n and self.s[self.i] in _SPACE:
            self.i += 1

    def parse_map_body(
        self, ctx: dict, path: KeyPath, open_at: int | None, *, braced_top: bool = False
    ) -> None:
        """Entries up to the closing '}' (consumed) or, at top level, end of input."""
        self.scopes.append((ctx, path))
        try:
            while True:
                self.skip_blank()
                ch = self.peek()
                if ch == "":
                    if open_at is None:
                        return
                    raise self.error(
                        f"Unexpected EOF processing map (opened on line {self.pos(open_at).line})."
                    )
                if ch == "}":
                    if open_at is None:
                        raise self.error("Unexpected '}' at top level.")
                    self.i += 1
                    return
                if self.parse_entry(ctx, path) and self.end_of_value(open_at, braced_top):
                    return
        finally:
            self.scopes.pop()

    def end_of_value(self, open_at: int | None, braced_top: bool) -> bool:
        """After a map value: True when the map was closed (or input ended at top level)."""
        while True:
            self.skip_space()
            ch = self.peek()
            if self.skip_comment():
                continue
            if ch in (";", ",", "\n", "\r"):
                self.i += 1
                return False
            if ch == "}" and open_at is not None:
                self.i += 1
                return True
            if ch == "":
                if open_at is None:
                    return True
                raise self.error(
                    f"Unexpected EOF processing map (opened on line {self.pos(open_at).line})."
                )
            if open_at is None or braced_top:
                raise self.error(
                    "Expected a top-level value to end with a new line, comment or EOF, "
                    f"but got '{_show(ch)}' instead."
                )
            raise self.error(
                'Expected a map value terminator "," or a map terminator "}", '
                f"but got '{_show(ch)}' instead."
            )

    def parse_key(self) -> tuple[str, int, bool]:
        """A key: its text, its start and whether it was bare."""
        s, start = self.s, self.i
        ch = s[start]
        if ch in ":=":
            raise self.error(f"Unexpected key separator '{ch}'.")
        if ch in "\"'":
            end = s.find(ch, start + 1)
            if end < 0:
                self.i = self.n
                raise self.error(
                    f"Unexpected EOF: unterminated key opened on line {self.pos(start).line}."
                )
            self.i = end + 1
            return s[start + 1 : end], start, False
        i = start
        while i < self.n and not s[i].isspace() and s[i] not in ":=":
            i += 1
        self.i = i
        return s[start:i], start, True

    def parse_entry(self, ctx: dict, path: KeyPath) -> bool:
        """One `key [:=] value` or `include path`; False for an include (no value end)."""
        key, key_at, bare = self.parse_key()
        if bare and key.lower() == "include" and self.peek().isspace():
            self.include(ctx, path, key_at)
            return True
        # Whitespace, even new lines, may separate a key from its separator.
        while self.i < self.n and self.s[self.i].isspace():
            self.i += 1
        if self.peek() in (":", "="):
            self.i += 1
        kpath = (*path, key)
        self.positions[kpath] = self.pos(key_at)
        value = self.parse_value(kpath)
        ctx[key] = value
        return True

    def parse_array(self, path: KeyPath, open_at: int) -> list:
        out: list = []
        while True:
            self.skip_blank()
            ch = self.peek()
            if ch == "]":
                self.i += 1
                return out
            if ch == ",":
                raise self.error("Unexpected array value terminator ','.")
            if ch == "":
                raise self.error(
                    f"Unexpected EOF processing array (opened on line {self.pos(open_at).line})."
                )
            epath = (*path, len(out))
            self.positions[epath] = self.pos(self.i)
            out.append(self.parse_value(epath))
            while True:
                self.skip_space()
                if self.skip_comment():
                    continue
                ch = self.peek()
                if ch in (",", "\n", "\r"):
                    self.i += 1
                    break
                if ch == "]":
                    self.i += 1
                    return out
                if ch == "":
                    raise self.error(
                        "Unexpected EOF processing array "
                        f"(opened on line {self.pos(open_at).line})."
                    )
                raise self.error(
                    'Expected an array value terminator "," or an array terminator "]", '
                    f"but got '{_show(ch)}' instead."
                )

    # -- values ----------------------------------------------------------------------

    def parse_value(self, path: KeyPath) -> Any:
        self.skip_space()
        start = self.i
        ch = self.peek()
        if ch == "":
            raise self.error("Expected value but found EOF")
        if ch in _NL:
            raise self.error("Expected value but found new line")
        if ch == "[":
            self.i += 1
            return self.parse_array(path, start)
        if ch == "{":
            self.i += 1
            m: dict = {}
            self.parse_map_body(m, path, start)
            return m
        if ch == "'":
            end = self.s.find("'", start + 1)
            if end < 0:
                self.i = self.n
                raise self.error(
                    f"Unexpected EOF: unterminated string opened on line {self.pos(start).line}."
                )
            self.i = end + 1
            return self.s[start + 1 : end]
        if ch == '"':
            return self.parse_dq_string()
        if ch == "(":
            return self.parse_block()
        if ch == "-":
            return self.parse_negative()
        if ch.isdigit():
            return self.parse_number(path)
        if ch == ".":
            raise self.error("Floats must start with a digit")
        return self.parse_bare(path)

    def escape(self, buf: bytearray) -> None:
        """One escape after a consumed backslash, appended to buf as UTF-8 bytes."""
        ch = self.peek()
        if ch == "x":
            digits = self.s[self.i + 1 : self.i + 3]
            if any(c in _NL for c in digits) or len(digits) < 2:
                raise self.error("Expected two hexadecimal digits after '\\x', but hit end of line")
            try:
                buf += bytes.fromhex(digits)
            except ValueError:
                raise self.error(
                    f"Expected two hexadecimal digits after '\\x', but got '{digits}'"
                ) from None
            self.i += 3
            return
        if ch not in _ESCAPES:
            raise self.error(f"Invalid escape character '{_show(ch)}'. {_ESCAPE_HELP}")
        buf += _ESCAPES[ch].encode()
        self.i += 1

    def parse_dq_string(self) -> str:
        s, start = self.s, self.i
        self.i += 1
        buf = bytearray()
        while True:
            j = self.i
            while j < self.n and s[j] not in '"\\':
                j += 1
            buf += s[self.i : j].encode("utf-8", "surrogateescape")
            self.i = j
            if j >= self.n:
                raise self.error(
                    f"Unexpected EOF: unterminated string opened on line {self.pos(start).line}."
                )
            self.i += 1
            if s[j] == '"':
                return buf.decode("utf-8", "surrogateescape")
            self.escape(buf)

    def parse_block(self) -> str:
        start = self.i
        m = re.compile(r"\n\)(?=\n|$)").search(self.s, start + 1)
        if m is None:
            self.i = self.n
            raise self.error(
                f"Unexpected EOF: block string opened on line {self.pos(start).line} "
                "has no ')' on a line of its own."
            )
        self.i = m.end()
        return self.s[start + 1 : m.start() + 1]

    def parse_bare(self, path: KeyPath, start: int | None = None) -> Any:
        """A bare word: bool, variable reference or string (escapes as in "...")."""
        s = self.s
        if start is not None:
            self.i = start
        start = self.i
        buf = bytearray()
        escaped = False
        while True:
            j = self.i
            while j < self.n and s[j] not in _BARE_END and s[j] not in "\\'":
                j += 1
            buf += s[self.i : j].encode("utf-8", "surrogateescape")
            self.i = j
            if j < self.n and s[j] == "\\":
                self.i += 1
                escaped = True
                self.escape(buf)
                continue
            if j < self.n and s[j] == "'":
                # nats ends a bare word at a single quote and drops the quote.
                self.i += 1
            break
        word = buf.decode("utf-8", "surrogateescape")
        if escaped:
            return word
        b = _BOOLS.get(word.lower())
        if b is not None:
            return b
        if word.startswith("$"):
            return self.variable(word[1:], start, path)
        return word

    def parse_negative(self) -> Any:
        start = self.i
        self.i += 1
        ch = self.peek()
        if ch == ".":
            raise self.error("Floats must start with a digit, not '.'.")
        if not ch.isdigit():
            raise self.error(f"Expected a digit but got '{_show(ch)}'.")
        m = _DIGITS.match(self.s, self.i)
        assert m is not None
        self.i = m.end()
        ch = self.peek()
        if ch == ".":
            return self.parse_float(start)
        mult = 1
        sm = _SUFFIX.match(self.s, self.i)
        if sm:
            mult = self.multiplier(sm)
            self.i = sm.end()
        return self.make_int(self.s[start : m.end()], mult, start)

    def parse_number(self, path: KeyPath) -> Any:
        """Integer, size, float, datetime or IP-like string; a word if letters follow."""
        s, start = self.s, self.i
        m = _DIGITS.match(s, start)
        assert m is not None
        end = m.end()
        nxt = s[end] if end < self.n else ""
        if nxt == "-":
            dm = _DATETIME.match(s, start)
            if dm is None:
                self.i = end
                raise self.error("All ISO8601 dates must be in full Zulu form.")
            self.i = dm.end()
            return datetime.strptime(dm.group(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        self.i = end
        if nxt == ".":
            return self.parse_float(start)
        if nxt == "" or nxt in _BARE_END:
            return self.make_int(m.group(), 1, start)
        sm = _SUFFIX.match(s, end)
        if sm and (sm.end() >= self.n or s[sm.end()] in _BARE_END):
            self.i = sm.end()
            return self.make_int(m.group(), self.multiplier(sm), start)
        return self.parse_bare(path, start)

    def parse_float(self, start: int) -> Any:
        """After the digits and at the '.': a float, or an IP-like string if a dot follows."""
        self.i += 1
        ch = self.peek()
        if not ch.isdigit():
            raise self.error(
                f"Floats must have a digit after the '.', but got '{_show(ch)}' instead."
            )
        m = _DIGITS.match(self.s, self.i)
        assert m is not None
        self.i = m.end()
        if self.peek() == ".":
            tail = _IP_TAIL.match(self.s, self.i)
            assert tail is not None
            self.i = tail.end()
            return self.s[start : self.i]
        return float(self.s[start : self.i])

    @staticmethod
    def multiplier(sm: re.Match[str]) -> int:
        power = _SUFFIX_BASE[sm.group(1).lower()]
        return (1024 if sm.group(2) else 1000) ** power

    def make_int(self, digits: str, mult: int, start: int) -> int:
        value = int(digits) * mult
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise self.error(f"integer '{self.s[start : self.i]}' is out of the range", start)
        return value

    # -- variables and includes ------------------------------------------------------

    def variable(self, name: str, at: int, path: KeyPath) -> Any:
        if name.startswith(_BCRYPT_PREFIX):
            return "$" + name
        line = self.pos(at).line
        for ctx, ctx_path in reversed(self.scopes):
            if name in ctx:
                self.copy_positions((*ctx_path, name), path)
                return copy.deepcopy(ctx[name])
        raw = self.env.get(name)
        if raw is None:
            raise self.error(f"variable reference for '{name}' on line {line} can not be found", at)
        if name in self.env_refs:
            raise self.error(f"variable reference cycle for '{name}'", at)
        inner = _Parser(
            f"{_ENV_KEY}={raw}", "<env>", self.base, self.env, (), (*self.env_refs, name)
        )
        try:
            value = inner.run()[0]
        except ConfigError as e:
            raise self.error(
                f"variable reference for '{name}' on line {line} could not be parsed: {e.message}",
                at,
            ) from e
        if _ENV_KEY not in value:
            raise self.error(
                f"variable reference for '{name}' on line {line} could not be parsed: empty value",
                at,
            )
        return value[_ENV_KEY]

    def copy_positions(self, src: KeyPath, dst: KeyPath) -> None:
        """A variable's value keeps the positions of its parts, re-rooted at dst."""
        n = len(src)
        for p, where in list(self.positions.items()):
            if len(p) > n and p[:n] == src:
                self.positions[dst + p[n:]] = where

    def include(self, ctx: dict, path: KeyPath, key_at: int) -> None:
        self.skip_space()
        s, start = self.s, self.i
        ch = self.peek()
        if ch in ("'", '"'):
            end = s.find(ch, start + 1)
            if end < 0:
                self.i = self.n
                raise self.error("Unexpected EOF in include path.")
            name, self.i = s[start + 1 : end], end + 1
        else:
            if ch == "" or ch in _NL:
                raise self.error("Expected include value but found new line")
            for bad, what in (("[", "an array"), ("{", "a map"), ("(", "a block")):
                if ch == bad:
                    raise self.error(f"Expected include value but found start of {what}")
            if ch.isdigit() or ch == "-":
                raise self.error("Expected include value but found start of a number")
            j = start
            while j < self.n and s[j] not in "\r\n;} \t'":
                j += 1
            name, self.i = s[start:j], j
        full = str(self.base / name)
        where = self.pos(key_at)
        real = os.path.realpath(full)
        if real in self.includes:
            chain = " -> ".join([*self.includes, real])
            raise ConfigError(f"include cycle: {chain}", where.file, where.line, where.column)
        try:
            text = _read(full, where.file, where.line, where.column)
            sub = _Parser(
                text, full, Path(full).parent, self.env, (*self.includes, real), self.env_refs
            )
            values, positions = sub.run()
        except ConfigError as e:
            detail = e.message if e.file == where.file else str(e)
            raise ConfigError(
                f"error parsing include file '{name}', {detail}",
                where.file,
                where.line,
                where.column,
            ) from e
        for p, at in positions.items():
            if p:
                self.positions[path + p] = at
        ctx.update(values)
