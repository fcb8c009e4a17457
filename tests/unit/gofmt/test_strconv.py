"""gofmt.strconv against Go's ``strconv.Atoi``.

The error texts are nats-server v2.15.1's answers to CONSUMER.CREATE with these
``sample_freq`` values (``failed to parse consumer sampling configuration: <Atoi error>``).
"""

from __future__ import annotations

import pytest

from shardbroker.gofmt.strconv import GoNumError, go_atoi


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("50", 50), ("+5", 5), ("-1", -1), ("007", 7),
     ("9223372036854775807", (1 << 63) - 1), ("-9223372036854775808", -(1 << 63))],
)  # fmt: skip
def test_gofmt_atoi_values(text: str, value: int) -> None:
    assert go_atoi(text) == value


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "99999999999999999999",
            'strconv.Atoi: parsing "99999999999999999999": value out of range',
        ),
        ("9223372036854775808", 'strconv.Atoi: parsing "9223372036854775808": value out of range'),
        (
            "-9223372036854775809",
            'strconv.Atoi: parsing "-9223372036854775809": value out of range',
        ),
        ("1_0", 'strconv.Atoi: parsing "1_0": invalid syntax'),
        ("٣", 'strconv.Atoi: parsing "٣": invalid syntax'),
        ("+5x", 'strconv.Atoi: parsing "+5x": invalid syntax'),
        (" 5", 'strconv.Atoi: parsing " 5": invalid syntax'),
        ("abc", 'strconv.Atoi: parsing "abc": invalid syntax'),
        ("5%", 'strconv.Atoi: parsing "5%": invalid syntax'),
        ("", 'strconv.Atoi: parsing "": invalid syntax'),
        ("-", 'strconv.Atoi: parsing "-": invalid syntax'),
    ],
)
def test_gofmt_atoi_errors_are_go_text(text: str, error: str) -> None:
    with pytest.raises(GoNumError) as exc:
        go_atoi(text)
    assert str(exc.value) == error
