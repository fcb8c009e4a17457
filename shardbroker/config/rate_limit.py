"""Publisher rate limits, shardbroker's extension: the `rate_limit {}` block of a config
file and its tagged form in account and user JWTs. Pure: values in, RateLimit out.

A block may stand at the top level (each connection's default), in a user of a users
list and in an account:

    rate_limit { msgs_per_sec: 1000, bytes_per_sec: "10MB", burst_msgs: 100,
                 burst_bytes: "1MB", mode: slow }

Every key is optional, but a block limits messages or bytes (or both). Sizes are
numbers (a bare `10MB` is one already) or strings such as "10MB" (powers of 1024, as
nats-server reads sizes in strings). Bad values are config errors with file and line.

In operator mode the same keys sit in the `nats` section of an account or user JWT
under JWT_CLAIM; nats-server and the jwt library ignore the unknown field (its JSON is
still signed), so one JWT serves both servers. Numbers only there (sizes as bytes); a
claim that cannot be read limits nothing, as nats-server would read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shardbroker.config.options import Options, RateLimit, all_users
from shardbroker.config.parse import ConfigError, KeyPath, Position
from shardbroker.config.value import number, size

RATE_LIMIT_KEY = "rate_limit"
# The field of a JWT's `nats` section that carries a rate limit.
JWT_CLAIM = "shardbroker_rate_limit"
_MODES = ("slow", "reject")


def parse_rate_limit(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> RateLimit:
    """A `rate_limit {}` block of a config file; ConfigError (file, line) if bad."""
    if not isinstance(value, dict):
        raise config_error(position, f"{path[-1]}: expected a map, got {value!r}")
    fields: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        try:
            name, converted = _field(key, item)
        except ValueError as exc:
            raise config_error(where, f"rate_limit {key}: {exc}") from None
        fields[name] = converted
    try:
        return checked(RateLimit(**fields))
    except ValueError as exc:
        raise config_error(position, f"{path[-1]}: {exc}") from None


def config_error(position: Position, message: str) -> ConfigError:
    return ConfigError(message, position.file, position.line, position.column)


def rate_limit_from_claims(section: Mapping[str, Any]) -> RateLimit | None:
    """The rate limit a JWT's `nats` section carries under JWT_CLAIM (None: none, or
    one that cannot be read)."""
    claim = section.get(JWT_CLAIM)
    if not isinstance(claim, dict) or not claim:
        return None
    try:
        return checked(RateLimit(**dict(_field(key, item) for key, item in claim.items())))
    except (ValueError, TypeError):
        return None


def _field(key: str, item: Any) -> tuple[str, Any]:
    name = key.lower()
    if name == "msgs_per_sec":
        return name, _rate(item)
    if name == "bytes_per_sec":
        return name, float(size(item))
    if name == "burst_msgs":
        count = number(item)
        if count < 0:
            raise ValueError(f"expected a count of at least 0, got {count}")
        return name, count
    if name == "burst_bytes":
        return name, size(item)
    if name == "mode":
        mode = item.lower() if isinstance(item, str) else item
        if mode not in _MODES:
            raise ValueError(f"expected slow or reject, got {item!r}")
        return name, mode
    raise ValueError(
        f'unknown field "{key}" (msgs_per_sec, bytes_per_sec, burst_msgs, burst_bytes, mode)'
    )


def _rate(item: Any) -> float:
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise ValueError(f"expected a number of messages per second, got {item!r}")
    if item < 0:
        raise ValueError(f"expected a rate of at least 0, got {item}")
    return float(item)


def checked(limit: RateLimit) -> RateLimit:
    """A limit that limits something, with bursts only for what it limits."""
    if not limit.msgs_per_sec and not limit.bytes_per_sec:
        raise ValueError("a rate limit needs msgs_per_sec or bytes_per_sec")
    if limit.burst_msgs and not limit.msgs_per_sec:
        raise ValueError("burst_msgs needs msgs_per_sec")
    if limit.burst_bytes and not limit.bytes_per_sec:
        raise ValueError("burst_bytes needs bytes_per_sec")
    return limit


def default_burst(rate: float, burst: int) -> int:
    """The burst of a rate: the configured one, or a tenth of a second of it (at least
    one)."""
    return burst if burst > 0 else max(1, math.ceil(rate / 10))


def rate_keys(opts: Options) -> dict[str, RateLimit]:
    """Every account and configured user with a rate limit, by key ("account:A",
    "user:bob"), in key order: the numbering of the shared rate table
    (mesh/rate_table.py), the same on every shard for the same Options."""
    keys = {f"account:{a.name}": a.rate_limit for a in opts.accounts if a.rate_limit}
    for entry in all_users(opts):
        if entry.user.rate_limit is not None:
            keys[f"user:{entry.name}"] = entry.user.rate_limit
    return {key: keys[key] for key in sorted(keys)}
