"""gofmt.timestamp against Go's ``time.Time`` RFC 3339 texts.

Pairs of (ns, text) were read from nats-server v2.15.1: the timestamp token of a JetStream
ack reply subject beside the ``time`` its STREAM.MSG.GET answer shows for that message; the
parse cases are CONSUMER.PAUSE ``pause_until`` values as nats-server echoed them.
"""

from __future__ import annotations

import pytest

from shardbroker.gofmt.timestamp import (
    ZERO_TIME,
    GoTimeError,
    format_rfc3339,
    normalise_rfc3339,
    parse_rfc3339,
)

SEC = 1_000_000_000


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0001-01-01T00:00:00Z"),  # first_ts of an empty stream
        (1796658840396862462, "2026-12-07T15:54:00.396862462Z"),
        (1796658840397018430, "2026-12-07T15:54:00.39701843Z"),
        (1796658840397026100, "2026-12-07T15:54:00.3970261Z"),
        (1796658840397083500, "2026-12-07T15:54:00.3970835Z"),
        (1796658840397100780, "2026-12-07T15:54:00.39710078Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (1795421649398467757, "2026-11-23T08:14:09.398467757Z"),
        (1795421556666764670, "2026-11-23T08:12:36.66676467Z"),
        (1795421556000000000, "2026-11-23T08:12:36Z"),
        (951782400_500_000_000, "2000-02-29T00:00:00.5Z"),
        (-1_000_000_000, "1969-12-31T23:59:59Z"),
        (1_700_000_000 * SEC + 114_881_600, "2023-11-14T22:13:20.1148816Z"),
        (1_700_000_000 * SEC, "2023-11-14T22:13:20Z"),
    ],
)
def test_gofmt_timestamp_format_and_parse(ns: int, text: str) -> None:
    assert format_rfc3339(ns) == text
    assert parse_rfc3339(text) == ns


def test_gofmt_timestamp_zero_time() -> None:
    assert ZERO_TIME == "0001-01-01T00:00:00Z"
    assert parse_rfc3339(ZERO_TIME) == 0


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-11-23T09:14:09.398467757+01:00", 1795421649398467757),
        ("2026-11-23T01:44:09.398467757-06:30", 1795421649398467757),
        ("2026-11-23T08:14:09,5Z", 1795421649500000000),
        ("2026-11-23T8:14:09Z", 1795421649000000000),
    ],
)
def test_gofmt_timestamp_parse_with_offsets(text: str, ns: int) -> None:
    assert parse_rfc3339(text) == ns


@pytest.mark.parametrize(
    ("text", "pause_until"),
    [
        # nats-server answers CONSUMER.PAUSE in UTC; the instants are these.
        ("2026-01-02T03:04:05.123456789+02:00", "2026-01-02T01:04:05.123456789Z"),
        ("2026-01-02T03:04:05.1200Z", "2026-01-02T03:04:05.12Z"),
        ("2026-01-02T03:04:05,5-00:30", "2026-01-02T03:34:05.5Z"),
    ],
)
def test_gofmt_timestamp_instants_as_nats_echoes_them(text: str, pause_until: str) -> None:
    assert format_rfc3339(parse_rfc3339(text)) == pause_until


def test_gofmt_timestamp_normalise_keeps_the_offset() -> None:
    assert normalise_rfc3339("2026-01-02T03:04:05.1200Z") == "2026-01-02T03:04:05.12Z"
    assert normalise_rfc3339("2020-01-01T01:00:00+01:00") == "2020-01-01T01:00:00+01:00"
    assert normalise_rfc3339("2020-01-01T1:00:00.000-00:30") == "2020-01-01T01:00:00-00:30"


def test_gofmt_timestamp_parse_error_is_go_text() -> None:
    with pytest.raises(
        GoTimeError,
        match=r'^parsing time "2020-01-01T00:00:00\+05:61": time zone offset minute out of range$',
    ):
        parse_rfc3339("2020-01-01T00:00:00+05:61")
    with pytest.raises(ValueError, match=r'cannot parse "2o20-01-01T00:00:00Z" as "2006"'):
        parse_rfc3339("2o20-01-01T00:00:00Z")
