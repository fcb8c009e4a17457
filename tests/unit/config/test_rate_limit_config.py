"""`rate_limit {}` blocks (config/rate_limit.py): at the top level, on users and on
accounts, and the same keys in JWT claims; bad values are errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config.merge import load
from shardbroker.config.options import Options, RateLimit, validate
from shardbroker.config.parse import ConfigError
from shardbroker.config.rate_limit import JWT_CLAIM, rate_keys, rate_limit_from_claims
from shardbroker.config.value import size


def parse(tmp_path: Path, text: str) -> Options:
    conf = tmp_path / "r.conf"
    conf.write_text(text)
    return validate(Options(**load(conf)))


def test_rate_limit_config_in_its_three_places(tmp_path: Path) -> None:
    opts = parse(
        tmp_path,
        """
rate_limit { msgs_per_sec: 1000, bytes_per_sec: "10MB", burst_msgs: 100,
             burst_bytes: 1MB, mode: slow }
authorization { users [ {user: g, password: g, rate_limit { msgs_per_sec: 2.5 }} ] }
accounts {
  A {
    users [ {user: a, password: a, rate_limit { bytes_per_sec: 512K, mode: REJECT }} ]
    rate_limit { msgs_per_sec: 50 }
  }
  B { users [ {user: b, password: b} ] }
}
""",
    )
    assert opts.rate_limit == RateLimit(
        msgs_per_sec=1000, bytes_per_sec=10 * 1024 * 1024, burst_msgs=100,
        burst_bytes=1024 * 1024, mode="slow",
    )  # fmt: skip
    assert opts.authorization is not None and opts.authorization.users is not None
    assert opts.authorization.users[0].rate_limit == RateLimit(msgs_per_sec=2.5)
    a, b = opts.accounts
    assert a.rate_limit == RateLimit(msgs_per_sec=50)
    assert a.users[0].rate_limit == RateLimit(bytes_per_sec=512_000, mode="reject")
    assert b.rate_limit is None and b.users[0].rate_limit is None
    # The shared table's keys: accounts and users with a limit, in key order.
    assert list(rate_keys(opts)) == ["account:A", "user:a", "user:g"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "rate_limit { msgs_per_sec: -1 }",
            1,
            "rate_limit msgs_per_sec: expected a rate of at least 0",
        ),
        ("rate_limit {\n  msgs_per_sec: fast }", 2, "rate_limit msgs_per_sec: expected a number"),
        ('rate_limit { bytes_per_sec: "10XB" }', 1, 'expected a size such as 1048576 or "10MB"'),
        (
            "rate_limit { msgs_per_sec: 1, mode: fast }",
            1,
            "rate_limit mode: expected slow or reject",
        ),
        ("rate_limit { msgs_per_sec: 1, speed: 2 }", 1, 'unknown field "speed"'),
        ("rate_limit { burst_msgs: 5 }", 1, "a rate limit needs msgs_per_sec or bytes_per_sec"),
        ("rate_limit { msgs_per_sec: 5, burst_bytes: 5 }", 1, "burst_bytes needs bytes_per_sec"),
        ("rate_limit: 5", 1, "rate_limit: expected a map"),
        (
            "accounts {\n  A {\n    rate_limit { msgs_per_sec: 1, burst_msgs: -3 }\n  }\n}",
            3,
            "rate_limit burst_msgs: expected a count of at least 0",
        ),
        (
            "accounts { A { users [\n  {user: a, rate_limit { mode: slow }}\n] } }",
            2,
            "a rate limit needs msgs_per_sec or bytes_per_sec",
        ),
    ],
)
def test_rate_limit_config_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(tmp_path, text + "\n")
    assert message in str(caught.value)
    assert caught.value.line == line
    assert str(tmp_path / "r.conf") in str(caught.value)


def test_rate_limit_sizes_in_strings_count_in_powers_of_1024() -> None:
    assert size(1000) == 1000
    assert size("10MB") == size("10M") == size("10MiB") == 10 * 1024**2
    assert size("1k") == 1024
    assert size("42") == 42
    for bad in ("", "1.5M", "-1", "10XB", True, 1.5):
        with pytest.raises(ValueError):
            size(bad)


def test_rate_limit_from_jwt_claims() -> None:
    section = {JWT_CLAIM: {"msgs_per_sec": 10, "burst_bytes": 4096, "bytes_per_sec": 8192}}
    assert rate_limit_from_claims(section) == RateLimit(
        msgs_per_sec=10, bytes_per_sec=8192, burst_bytes=4096
    )
    assert rate_limit_from_claims({JWT_CLAIM: {"msgs_per_sec": 1, "mode": "reject"}}) == (
        RateLimit(msgs_per_sec=1, mode="reject")
    )
    # Nothing, or nothing readable: no limit (nats-server ignores the field too).
    for claim in (None, {}, {"msgs_per_sec": "x"}, {"mode": "slow"}, {"other": 1}, [1]):
        assert rate_limit_from_claims({JWT_CLAIM: claim}) is None
    assert rate_limit_from_claims({}) is None
