"""gofmt.duration against Go's ``time.Duration.String``.

The texts were printed by nats-server v2.15.1: config errors (``invalid lame_duck_duration of
%v``, ``lame duck grace period (%v) should be ...``), the 409 ``Exceeded MaxRequestExpires of
%v`` of a pull request and the ``rtt`` of /connz.
"""

from __future__ import annotations

import pytest

from shardbroker.gofmt.duration import go_duration, go_duration_seconds

_S = 1_000_000_000
_MAX_INT64 = (1 << 63) - 1


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (7, "7ns"),
        (999, "999ns"),
        (1_500, "1.5µs"),
        (683_000, "683µs"),
        (999_000, "999µs"),
        (1_050_559, "1.050559ms"),  # /connz rtt
        (1_200_000, "1.2ms"),
        (1_500_000, "1.5ms"),
        (-2_000_000, "-2ms"),
        (100_000_000, "100ms"),
        (300_927_518, "300.927518ms"),
        (1_500_000_000, "1.5s"),
        (1_000_000_001, "1.000000001s"),
        (29_999_999_999, "29.999999999s"),
        (10 * _S, "10s"),
        (40 * _S, "40s"),
        (61_500_000_000, "1m1.5s"),
        (65_500_000_000, "1m5.5s"),
        (90 * _S, "1m30s"),
        (90_500_000_000, "1m30.5s"),
        (-90 * _S, "-1m30s"),
        (-5 * _S, "-5s"),
        (3600 * _S, "1h0m0s"),  # Exceeded MaxRequestExpires of 1h0m0s
        (9000 * _S, "2h30m0s"),
        (90_060 * _S, "25h1m0s"),
        (7_199_999_000_000, "1h59m59.999s"),
        (10_800_000_001_000, "3h0m0.000001s"),
        (_MAX_INT64, "2562047h47m16.854775807s"),
        (-_MAX_INT64 - 1, "-2562047h47m16.854775808s"),
    ],
)
def test_gofmt_duration_is_go_text(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30.0, "30s"),
        (1.5, "1.5s"),
        (0.0015, "1.5ms"),
        (90.5, "1m30.5s"),
        (3600.0, "1h0m0s"),  # config texts print a one-hour lame duck duration so
        (9000.0, "2h30m0s"),
        (0.1, "100ms"),  # float seconds round to whole nanoseconds first
    ],
)
def test_gofmt_duration_from_float_seconds(seconds: float, text: str) -> None:
    assert go_duration_seconds(seconds) == text
