"""A JSON scanner that keeps what Go's decoder reports: the syntax layer of `jsondecode`.

Owner: pure functions, imported by the storage process (jetstream/) and by tests.

`Scanner` turns a request body into values that keep what Go's messages need: raw number
text (`JNum`), the raw text of every value (enum errors quote it; `raw_text`), and
duplicate object keys in document order (`JObj`). Malformed input raises
`JsonSyntaxError` with Go's text and byte offset (``invalid character 'x' looking for
beginning of object key string``, ``unexpected EOF``). Only JSON syntax lives here: what a
value means for a Go type is `jsondecode`'s business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from shardbroker.gofmt.quote import go_quote, go_quote_rune

__all__ = ["EOF", "WHITESPACE", "JArr", "JNum", "JObj", "JStr", "JsonSyntaxError", "Scanner",
           "kind_name", "raw_text"]  # fmt: skip


class JStr(str):
    """A JSON string: its decoded text, with the literal as written in ``raw``."""

    __slots__ = ("raw",)
    raw: str


class JNum(str):
    """A JSON number, kept as its literal text."""

    __slots__ = ()


class JArr(list[Any]):
    __slots__ = ("raw",)
    raw: str


class JObj(list[tuple[str, Any]]):
    """A JSON object as (key, value) pairs in document order, duplicates kept."""

    __slots__ = ("raw",)
    raw: str


class JsonSyntaxError(Exception):
    def __init__(self, message: str, offset: int | None) -> None:
        super().__init__(message)
        self.offset = offset

    def text(self) -> str:
        if self.offset is None:
            return str(self)
        return f"{self} at offset {self.offset}"


EOF = "unexpected EOF"
WHITESPACE = b" \t\r\n"
_SIMPLE_STRING = re.compile(rb'"[^"\\\x00-\x1f\x80-\xff]*"')
_ESCAPED_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_HEX = b"0123456789abcdefABCDEF"


def _rune_at(data: bytes, i: int) -> tuple[str, int]:
    """The character at byte `i`, Go-quoted, and its length in bytes."""
    for size in (1, 2, 3, 4):
        try:
            ch = data[i : i + size].decode()
        except UnicodeDecodeError:
            continue
        return go_quote_rune(ch), size
    return f"'\\x{data[i]:02x}'", 1


class Scanner:
    __slots__ = ("data", "n")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)

    def _ws(self, i: int) -> int:
        data, n = self.data, self.n
        while i < n and data[i] in WHITESPACE:
            i += 1
        return i

    def _invalid(self, i: int, where: str) -> JsonSyntaxError:
        quoted, size = _rune_at(self.data, i)
        return JsonSyntaxError(f"invalid character {quoted} {where}", i + size)

    def single(self) -> Any:
        """One value with nothing but white space after it (``json.Unmarshal``)."""
        value, end = self._value(0)
        end = self._ws(end)
        if end < self.n:
            raise self._invalid(end, "after top-level value")
        return value

    def values(self) -> Iterator[Any]:
        """Each top-level value in turn (Go's Decoder reads a stream of them)."""
        i = 0
        while True:
            i = self._ws(i)
            if i >= self.n:
                return
            value, i = self._value(i)
            yield value

    def _value(self, i: int) -> tuple[Any, int]:
        i = self._ws(i)
        if i >= self.n:
            raise JsonSyntaxError(EOF, None)
        c = self.data[i]
        if c == 0x22:  # "
            return self._string(i)
        if c == 0x7B:  # {
            return self._object(i)
        if c == 0x5B:  # [
            return self._array(i)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self._number(i)
        if c == 0x74:
            return True, self._literal(i, b"true")
        if c == 0x66:
            return False, self._literal(i, b"false")
        if c == 0x6E:
            return None, self._literal(i, b"null")
        raise self._invalid(i, "looking for beginning of value")

    def _literal(self, i: int, lit: bytes) -> int:
        data = self.data
        for k in range(len(lit)):
            if i + k >= self.n:
                raise JsonSyntaxError(EOF, None)
            if data[i + k] != lit[k]:
                word = lit.decode()
                expecting = go_quote_rune(word[k])
                raise self._invalid(i + k, f"in literal {word} (expecting {expecting})")
        return i + len(lit)

    def _number(self, start: int) -> tuple[JNum, int]:
        data, n = self.data, self.n
        i = start
        if data[i] == 0x2D:
            i += 1
        if i >= n:
            raise JsonSyntaxError(EOF, None)
        if data[i] == 0x30:
            i += 1
        elif 0x31 <= data[i] <= 0x39:
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        else:
            raise self._invalid(i, "in numeric literal")
        if i < n and data[i] == 0x2E:
            i += 1
            if i >= n:
                raise JsonSyntaxError(EOF, None)
            if not 0x30 <= data[i] <= 0x39:
                raise self._invalid(i, "in numeric literal")
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        if i < n and data[i] in b"eE":
            i += 1
            if i < n and data[i] in b"+-":
                i += 1
            if i >= n:
                raise JsonSyntaxError(EOF, None)
            if not 0x30 <= data[i] <= 0x39:
                raise self._invalid(i, "in numeric literal")
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        return JNum(data[start:i].decode()), i

    def _string(self, start: int) -> tuple[JStr, int]:
        data = self.data
        m = _SIMPLE_STRING.match(data, start)
        if m is not None:
            raw = m.group().decode()
            s = JStr(raw[1:-1])
            s.raw = raw
            return s, m.end()
        m = _ESCAPED_STRING.match(data, start)
        end = m.end() if m is not None else self._string_end(start)
        raw = data[start:end].decode(errors="replace")
        text = json.loads(raw) if "\\" in raw else raw[1:-1]
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            # Unpaired surrogates become U+FFFD, as Go's decoder does with invalid UTF-16.
            text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
        s = JStr(text)
        s.raw = raw
        return s, end

    def _string_end(self, start: int) -> int:
        """The end of a string the fast patterns refused: find its error, or accept it
        (invalid UTF-8 is allowed and replaced, as in Go's v1 decoding)."""
        data, n = self.data, self.n
        i = start + 1
        while True:
            if i >= n:
                raise JsonSyntaxError(EOF, None)
            c = data[i]
            if c == 0x22:
                return i + 1
            if c == 0x5C:
                if i + 1 >= n:
                    raise JsonSyntaxError(EOF, None)
                e = data[i + 1]
                if e in b'"\\/bfnrt':
                    i += 2
                    continue
                if e == 0x75:  # u
                    hexpart = data[i + 2 : i + 6]
                    if len(hexpart) < 4:
                        if all(h in _HEX for h in hexpart):
                            raise JsonSyntaxError(EOF, None)
                        raise self._bad_escape(i, data[i:])
                    if not all(h in _HEX for h in hexpart):
                        raise self._bad_escape(i, data[i : i + 6])
                    i += 6
                    continue
                raise self._bad_escape(i, data[i : i + 2])
            if c < 0x20:
                raise self._invalid(i, "in string")
            i += 1

    @staticmethod
    def _bad_escape(i: int, what: bytes) -> JsonSyntaxError:
        text = what.decode(errors="replace")
        if any(ch == "`" or ch == "\ufffd" or ch.isspace() or not ch.isprintable() for ch in text):
            shown = go_quote(text)
        else:
            shown = "`" + text + "`"
        return JsonSyntaxError(f"invalid escape sequence {shown} in string", i + len(what))

    def _object(self, start: int) -> tuple[JObj, int]:
        data = self.data
        obj = JObj()
        i = self._ws(start + 1)
        if i < self.n and data[i] == 0x7D:
            obj.raw = data[start : i + 1].decode(errors="replace")
            return obj, i + 1
        while True:
            if i >= self.n:
                raise JsonSyntaxError(EOF, None)
            if data[i] != 0x22:
                raise self._invalid(i, "looking for beginning of object key string")
            key, i = self._string(i)
            i = self._ws(i)
            if i >= self.n:
                raise JsonSyntaxError(EOF, None)
            if data[i] != 0x3A:
                raise self._invalid(i, "after object key")
            value, i = self._value(i + 1)
            obj.append((str(key), value))
            i = self._ws(i)
            if i >= self.n:
                raise JsonSyntaxError(EOF, None)
            if data[i] == 0x2C:
                i = self._ws(i + 1)
                continue
            if data[i] == 0x7D:
                obj.raw = data[start : i + 1].decode(errors="replace")
                return obj, i + 1
            raise self._invalid(i, "after object key:value pair")

    def _array(self, start: int) -> tuple[JArr, int]:
        data = self.data
        arr = JArr()
        i = self._ws(start + 1)
        if i < self.n and data[i] == 0x5D:
            arr.raw = data[start : i + 1].decode(errors="replace")
            return arr, i + 1
        while True:
            value, i = self._value(i)
            arr.append(value)
            i = self._ws(i)
            if i >= self.n:
                raise JsonSyntaxError(EOF, None)
            if data[i] == 0x2C:
                i += 1
                continue
            if data[i] == 0x5D:
                arr.raw = data[start : i + 1].decode(errors="replace")
                return arr, i + 1
            raise self._invalid(i, "after array element")


def raw_text(node: Any) -> str:
    if node is None:
        return "null"
    if node is True:
        return "true"
    if node is False:
        return "false"
    if isinstance(node, JNum):
        return str(node)
    return str(node.raw)


def kind_name(node: Any) -> str:
    if isinstance(node, JObj):
        return "object"
    if isinstance(node, JArr):
        return "array"
    if isinstance(node, JStr):
        return "string"
    if isinstance(node, JNum):
        return "number"
    return "bool"
