"""Go's ``time.Time`` as RFC 3339 text: formatting, and ``time.Parse`` with Go's errors.

Owner: pure functions, imported by any process (leaf: imports nothing from shardbroker).
Monitoring (``start``, ``now`` of /varz) and the JetStream API (``created``, ``ts``,
``first_ts``, ``pause_until``) carry times as Go's ``RFC3339Nano``; the store keeps them as
int nanoseconds since the epoch, UTC.

- `format_rfc3339` renders ns in UTC: ``2026-12-07T15:54:00.39701843Z`` (fraction trimmed
  of trailing zeros, left out when zero); 0 is Go's zero time, `ZERO_TIME`, which is
  what nats-server shows for "no time".
- `parse_rfc3339` reads text as ``time.Parse(time.RFC3339, text)`` does (any offset, a
  ``.`` or ``,`` fraction, a one-digit hour) back to ns, Go's zero time giving 0; it raises
  `GoTimeError` whose text is Go's, byte for byte.
- `normalise_rfc3339` is parse then format at the text's own offset: how Go re-renders a
  time it decoded from JSON (``...T03:04:05.1200Z`` -> ``...T03:04:05.12Z``).

Dates are proleptic Gregorian for any year, so the zero time and pre-1970 instants work.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ZERO_TIME", "GoTimeError", "format_rfc3339", "normalise_rfc3339", "parse_rfc3339"]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time`` as JSON: "no time" in first_ts/last_ts and friends."""

_NS = 1_000_000_000
_DAY = 86_400
_RFC3339 = "2006-01-02T15:04:05Z07:00"


class GoTimeError(ValueError):
    """A time Go's ``time.Parse`` rejects; the message is Go's error text."""


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


_ZERO_TIME_NS: Final = _days_from_civil(1, 1, 1) * _DAY * _NS


def _format(unix_ns: int, offset: int = 0) -> str:
    """RFC3339Nano of an instant shown at a UTC offset (seconds); "Z" for offset 0."""
    secs, frac = divmod(unix_ns + offset * _NS, _NS)
    days, rem = divmod(secs, _DAY)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if offset == 0:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    oh, om = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{oh:02d}:{om:02d}"


def format_rfc3339(ns: int) -> str:
    """Ns since the epoch as Go's ``RFC3339Nano`` in UTC; 0 is Go's zero time."""
    if ns == 0:
        return ZERO_TIME
    return _format(ns)


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 time as ns since the epoch (UTC); Go's zero time gives 0, as in the store.

    Raises `GoTimeError` (a ValueError) with Go's ``time.Parse`` text when it is not valid.
    """
    ns, _ = _parse(text)
    return 0 if ns == _ZERO_TIME_NS else ns


def normalise_rfc3339(text: str) -> str:
    """The time re-rendered at its own offset, as Go marshals a ``time.Time`` it parsed."""
    ns, offset = _parse(text)
    return _format(ns, offset)


def _time_quote(text: str) -> str:
    # The time package's own quote(): non-ASCII and control bytes as \xNN.
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse(value: str) -> tuple[int, int]:
    """Go's ``time.Parse(time.RFC3339, value)``: (unix ns, UTC offset in seconds).

    Mirrors the Go parser element by element so that failures read as Go's do
    (``parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"``).
    """

    def bad(layout_elem: str, value_elem: str) -> GoTimeError:
        return GoTimeError(
            f"parsing time {_time_quote(value)} as {_time_quote(_RFC3339)}: "
            f"cannot parse {_time_quote(value_elem)} as {_time_quote(layout_elem)}"
        )

    def out_of_range(what: str) -> GoTimeError:
        return GoTimeError(f"parsing time {_time_quote(value)}: {what} out of range")

    def lit(v: str, prefix: str) -> str:
        if not v.startswith(prefix):
            raise bad(prefix, v)
        return v[len(prefix) :]

    def num2(v: str, elem: str, fixed: bool = True) -> tuple[int, str]:
        if not _digit(v, 0):
            raise bad(elem, v)
        if not _digit(v, 1):
            if fixed:
                raise bad(elem, v)
            return int(v[0]), v[1:]
        return int(v[:2]), v[2:]

    v = value
    if len(v) < 4 or not _digit(v, 0) or not all("0" <= c <= "9" for c in v[:4]):
        raise bad("2006", v)
    year, v = int(v[:4]), v[4:]
    v = lit(v, "-")
    month, rest = num2(v, "01")
    if not 1 <= month <= 12:
        raise out_of_range("month")
    v = lit(rest, "-")
    day, v = num2(v, "02")
    v = lit(v, "T")
    hour, rest = num2(v, "15", fixed=False)
    if hour >= 24:
        raise out_of_range("hour")
    v = lit(rest, ":")
    minute, rest = num2(v, "04")
    if minute >= 60:
        raise out_of_range("minute")
    v = lit(rest, ":")
    second, v = num2(v, "05")
    if second >= 60:
        raise out_of_range("second")
    nsec = 0
    if len(v) >= 2 and v[0] in ".," and _digit(v, 1):
        n = 2
        while _digit(v, n):
            n += 1
        digits = v[1:n][:9]
        nsec = int(digits) * 10 ** (9 - len(digits))
        v = v[n:]
    offset = 0
    if v.startswith("Z"):
        v = v[1:]
    else:
        # Go checks the offset's ranges before its parse errors and its sign.
        if len(v) < 6 or v[3] != ":":
            raise bad("Z07:00", v)
        oh = om = 0
        ok = _digit(v, 1) and _digit(v, 2)
        if ok:
            oh = int(v[1:3])
            ok = _digit(v, 4) and _digit(v, 5)
            if ok:
                om = int(v[4:6])
        if oh > 24:
            raise out_of_range("time zone offset hour")
        if om > 60:
            raise out_of_range("time zone offset minute")
        if not ok or v[0] not in "+-":
            raise bad("Z07:00", v)
        offset = (oh * 60 + om) * 60 * (-1 if v[0] == "-" else 1)
        v = v[6:]
    if v:
        raise GoTimeError(f"parsing time {_time_quote(value)}: extra text: {_time_quote(v)}")
    if day < 1 or day > _days_in(month, year):
        raise out_of_range("day")
    secs = _days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + second
    return (secs - offset) * _NS + nsec, offset
