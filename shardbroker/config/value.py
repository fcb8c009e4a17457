"""The value forms of a nats-server config file: numbers, strings, booleans, durations,
listen addresses and secrets.

Pure (no asyncio). Imported by config/options.py, whose declarations name a form where a
field's type alone does not say it, and by config/merge.py, which picks one by the
field's type otherwise. Each form takes a value as config/parse.py produced it and
returns the Options value, or raises ValueError saying why (the caller adds the file,
line and key).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# A value form: a parsed config value in, an Options value out (ValueError if unfit).
Converter = Callable[[Any], Any]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration string ("2m", "1h30m", "500ms", "1.5h") in seconds."""
    pos = 0
    total = 0.0
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        pos = 1
    if text[pos:] == "0":
        return 0.0
    if pos == len(text):
        raise ValueError(f"invalid duration {text!r}")
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    return value


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def seconds(value: Any) -> float:
    """A duration string, or a bare integer meaning seconds (nats-server allows both)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f'expected a duration such as "2m", got {value!r}')


def duration_string(value: Any) -> float:
    """A duration that nats-server accepts only as a string ("2m", "10s")."""
    if not isinstance(value, str):
        raise ValueError(f'expected a duration string such as "2m", got {value!r}')
    return parse_duration(value)


def listen(value: Any) -> dict[str, Any]:
    """`listen: host:port` or `listen: port`: {"host": ..., "port": ...} (host if given)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"port": value}
    text = string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.lstrip("-").isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return {"host": host.strip("[]") or "0.0.0.0", "port": int(port)}


def secret(value: Any) -> str:
    """A user name, password or token. nats-server takes a bare number as its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return string(value)


_SIZE_STRING = re.compile(r"(\d+)\s*(?:([kmgtpe])(ib|b|i)?)?", re.IGNORECASE)
_SIZE_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def size(value: Any) -> int:
    """A byte count: a number (a bare `10MB` in a file already is one, config/parse.py),
    or a string such as "10MB", "512K" or "1GiB". As nats-server's sizes in strings
    (getStorageSize), a suffix in a string counts in powers of 1024."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"expected a size of at least 0, got {value}")
        return value
    if isinstance(value, str):
        match = _SIZE_STRING.fullmatch(value.strip())
        if match is not None:
            digits, suffix, _ = match.groups()
            return int(digits) * 1024 ** _SIZE_POWERS[suffix.lower()] if suffix else int(digits)
    raise ValueError(f'expected a size such as 1048576 or "10MB", got {value!r}')


def tags(value: Any) -> tuple[str, ...]:
    """`server_tags`: a string or a list of strings, each trimmed and lower-cased, empty
    ones and repeats dropped (nats-server's TagList)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"error parsing tags: expected a string or a list, got {value!r}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"error parsing tags: expected a string, got {item!r}")
        tag = item.strip().lower()
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


def go_type(value: Any) -> str:
    """The Go type nats-server's config parser gives a value, as %T prints it in its
    "unsupported type" and "Expected ..., got" errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__
