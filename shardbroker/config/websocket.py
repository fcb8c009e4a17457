"""The `websocket {}` block of a config file (nats-server parseWebsocket), with its texts
for what the file itself gets wrong; what only the whole configuration can judge (TLS
or `no_tls`, origins, users) is options.validate's. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shardbroker.config.options import TLSConfig, WebsocketConfig
from shardbroker.config.parse import KeyPath, Position
from shardbroker.config.users import config_error
from shardbroker.config.value import (
    boolean,
    go_type,
    listen,
    number,
    parse_duration,
    secret,
    string,
)

# The parser of a `tls {}` block (config/merge.py's), handed in: merge imports this module.
TLSParser = Callable[[Any, Mapping[KeyPath, Position], KeyPath, Position], TLSConfig]

_ORIGIN_KEYS = ("allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins",
                "origin")  # fmt: skip
_STRING_KEYS = {
    "advertise": "advertise",
    "jwt_cookie": "jwt_cookie",
    "user_cookie": "user_cookie",
    "pass_cookie": "pass_cookie",
    "token_cookie": "token_cookie",
    "no_auth_user": "no_auth_user",
}
_BOOL_KEYS = {
    "no_tls": "no_tls",
    "same_origin": "same_origin",
    "compression": "compression",
    "compress": "compression",
}


def parse_websocket(
    value: Any,
    positions: Mapping[KeyPath, Position],
    path: KeyPath,
    position: Position,
    *,
    tls: TLSParser,
) -> WebsocketConfig:
    if not isinstance(value, dict):
        raise config_error(position, f"Expected websocket to be a map, got {go_type(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        try:
            if name == "listen":
                address = listen(item)
                out["port"] = address["port"]
                if "host" in address:
                    out["host"] = address["host"]
            elif name == "port":
                out["port"] = number(item)
            elif name in ("host", "net"):
                out["host"] = string(item)
            elif name in _STRING_KEYS:
                out[_STRING_KEYS[name]] = string(item)
            elif name in _BOOL_KEYS:
                out[_BOOL_KEYS[name]] = boolean(item)
            elif name == "tls":
                out["tls"] = tls(item, positions, (*path, key), where)
            elif name in _ORIGIN_KEYS:
                out["allowed_origins"] = _strings(item)
            elif name == "handshake_timeout":
                out["handshake_timeout"] = _handshake_timeout(item)
            elif name in ("authorization", "authentication"):
                out.update(_simple_auth(item, positions, (*path, key), where))
            elif name == "headers":
                out["headers"] = _headers(item, positions, (*path, key), where)
            elif name == "ping_interval":
                out["ping_interval"] = _duration(item)
            else:
                raise config_error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise config_error(where, f"websocket {key}: {exc}") from None
    return WebsocketConfig(**out)


def _strings(value: Any) -> tuple[str, ...]:
    """A string or a list of strings (nats-server parseStringArray)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"expected a string or a list of strings, got {value!r}")
    return tuple(string(item) for item in items)


def _handshake_timeout(value: Any) -> float:
    """Whole seconds, or a duration string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"error parsing handshake timeout: unsupported type {go_type(value)}")


def _duration(value: Any) -> float:
    """nats-server's parseDuration: a duration string, or (deprecated) whole seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return parse_duration(string(value))


def _simple_auth(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> dict[str, Any]:
    """`authorization { user, password, token, timeout }` (nats-server parseSimpleAuth)."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a map, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        if name in ("user", "username"):
            out["user"] = secret(item)
        elif name in ("pass", "password"):
            out["password"] = secret(item)
        elif name == "token":
            out["token"] = secret(item)
        elif name == "timeout":
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise config_error(
                    where, f"websocket authorization timeout: expected seconds, got {item!r}"
                )
            out["auth_timeout"] = float(item)
        else:
            raise config_error(where, f'unknown field "{key}"')
    return out


def _headers(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"error parsing headers: unsupported type {go_type(value)}")
    out = []
    for key, item in value.items():
        if not isinstance(item, str):
            where = positions.get((*path, key), position)
            raise config_error(
                where, f"error parsing header key {key}: unsupported type {go_type(item)}"
            )
        out.append((key, item))
    return tuple(out)
