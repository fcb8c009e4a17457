"""Go's ``time.Duration.String``: how nats-server prints a duration in texts.

Owner: pure functions, imported by any process (leaf: imports nothing from shardbroker).
Error texts and monitoring fields print durations this way: ``invalid lame_duck_duration of
1.5s``, ``Exceeded MaxRequestExpires of 1h0m0s``, the ``rtt`` of /connz.

Rules (time/time.go): zero is ``0s``; under one second a single unit of ns, µs (U+00B5)
or ms with a trimmed decimal fraction; from one second on ``[<h>h][<m>m]<s>[.<frac>]s``,
where minutes appear whenever hours do (``1h0m0s``) and seconds always do.
"""

from __future__ import annotations

__all__ = ["go_duration", "go_duration_seconds"]

_SECOND = 1_000_000_000
_SUB_SECOND_UNITS = (("ns", 1), ("µs", 1_000), ("ms", 1_000_000))


def go_duration(ns: int) -> str:
    """``time.Duration(ns).String()``: ``0s``, ``999ns``, ``1.5µs``, ``100ms``, ``1m30s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = -ns if ns < 0 else ns
    if u < _SECOND:
        for unit, size in _SUB_SECOND_UNITS:
            if u < size * 1000:
                return sign + _fraction(u, size) + unit
    secs, frac = divmod(u, _SECOND)
    text = _fraction(secs % 60 * _SECOND + frac, _SECOND) + "s"
    minutes = secs // 60
    if minutes:
        hours = minutes // 60
        text = f"{minutes % 60}m" + text
        if hours:
            text = f"{hours}h" + text
    return sign + text


def go_duration_seconds(seconds: float) -> str:
    """`go_duration` of a duration held as float seconds (rounded to whole nanoseconds)."""
    return go_duration(round(seconds * _SECOND))


def _fraction(value: int, size: int) -> str:
    """``value / size`` with the fraction's trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{width}d}".rstrip("0")
