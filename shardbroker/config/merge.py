"""From a parsed config file to Options fields, and the merge of defaults < file < flags.

Pure (no asyncio). Runs in the supervisor and in `shardbroker check-config`.

Key names, aliases and value forms follow nats-server (reference config.md §1.6, §2).
An unknown key is an error (`unknown field "x"`), as in nats-server. A key of a
nats-server feature shardbroker does not have yet is an error too, never ignored:
silently dropping `authorization {}` would leave a broker open that the file meant to
close.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from shardbroker.config.nkey import is_user_nkey
from shardbroker.config.options import Authorization, User
from shardbroker.config.parse import ConfigError, KeyPath, Position, parse_file_with_positions

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# nats-server features that a config file may name but shardbroker does not serve yet.
NOT_YET_SUPPORTED = frozenset(
    (
        "accounts", "system_account", "operator",
        "resolver", "tls", "cluster", "gateway", "leafnodes", "websocket",
        "mqtt", "http", "http_port", "https", "https_port", "monitor_port",
        "lame_duck_duration", "lame_duck_grace_period", "client_advertise",
    )
)  # fmt: skip


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


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    """A duration string, or a bare integer meaning seconds (nats-server allows both)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f'expected a duration such as "2m", got {value!r}')


def _listen(value: Any) -> dict[str, Any]:
    """`listen: host:port` or `listen: port`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"port": value}
    text = _str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.lstrip("-").isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return {"host": host.strip("[]") or "0.0.0.0", "port": int(port)}


Converter = Callable[[Any], Any]

# config key (lower case) -> (Options field, converter); aliases share a field.
KEYS: dict[str, tuple[str, Converter]] = {
    "host": ("host", _str),
    "net": ("host", _str),
    "port": ("port", _int),
    "server_name": ("server_name", _str),
    "pid_file": ("pid_file", _str),
    "ports_file_dir": ("ports_file_dir", _str),
    "log_file": ("log_file", _str),
    "debug": ("debug", _bool),
    "trace": ("trace", _bool),
    "logtime": ("logtime", _bool),
    "max_payload": ("max_payload", _int),
    "max_pending": ("max_pending", _int),
    "max_control_line": ("max_control_line", _int),
    "max_connections": ("max_connections", _int),
    "max_conn": ("max_connections", _int),
    "max_subscriptions": ("max_subscriptions", _int),
    "max_subs": ("max_subscriptions", _int),
    "ping_interval": ("ping_interval", _seconds),
    "ping_max": ("ping_max", _int),
    "write_deadline": ("write_deadline", _seconds),
}


def options_from_config(
    values: Mapping[str, Any], positions: Mapping[KeyPath, Position], filename: str
) -> dict[str, Any]:
    """Options fields set by a parsed config file. Raises ConfigError for the first
    unknown, unsupported or badly typed key, naming its file and line."""
    fields: dict[str, Any] = {}
    for key, value in values.items():
        position = positions.get((key,), Position(filename, 0, 0))
        name = key.lower()
        if name == "authorization":
            fields["authorization"] = _authorization(value, positions, (key,), position)
            continue
        if name == "jetstream":
            fields.update(_jetstream(value, positions, (key,), position))
            continue
        if name in ("store_dir", "store", "storedir"):
            try:
                fields["store_dir"] = _str(value)
            except ValueError as exc:
                raise _error(position, f"{key}: {exc}") from None
            continue
        if name == "no_auth_user":
            try:
                fields["no_auth_user"] = _str(value)
            except ValueError as exc:
                raise _error(position, f"{key}: {exc}") from None
            continue
        if name == "listen":
            try:
                fields.update(_listen(value))
            except ValueError as exc:
                raise _error(position, f"listen: {exc}") from None
            continue
        entry = KEYS.get(name)
        if entry is None:
            if name in NOT_YET_SUPPORTED:
                raise _error(
                    position,
                    f"{key!r} is a nats-server option that shardbroker does not support yet",
                )
            raise _error(position, f'unknown field "{key}"')
        field, convert = entry
        try:
            converted = convert(value)
        except ValueError as exc:
            raise _error(position, f"{key}: {exc}") from None
        if field == "max_connections" and converted == 0:
            converted = -1  # nats-server: 0 in a file rejects every client
        fields[field] = converted
    return fields


# Keys nats-server knows in an authorization block or a user entry that are not
# served yet: refused, never ignored (ignoring permissions would widen access).
_AUTH_NOT_YET = frozenset(
    ("default_permissions", "permissions", "permission", "auth_callout", "nkey", "nkeys")
)
_USER_NOT_YET = frozenset(
    ("permissions", "permission", "allowed_connection_types",
     "allowed_connection_type", "account")
)  # fmt: skip


def _authorization(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> Authorization:
    """`authorization { token | user+password | users: [...], timeout }`."""
    if not isinstance(value, dict):
        raise _error(position, f"{path[-1]}: expected a map, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        try:
            if name == "token":
                out["token"] = _secret(item)
            elif name in ("user", "username"):
                out["user"] = _secret(item)
            elif name in ("pass", "password"):
                out["password"] = _secret(item)
            elif name == "timeout":
                out["timeout"] = _seconds(item)
            elif name == "users":
                out["users"] = _users(item, positions, (*path, key), where)
            elif name in _AUTH_NOT_YET:
                raise _error(where, f"authorization {key!r} is not supported by shardbroker yet")
            else:
                raise _error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise _error(where, f"{key}: {exc}") from None
    return Authorization(**out)


def _users(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[User, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected an array of users, got {value!r}")
    users = []
    for index, entry in enumerate(value):
        at = positions.get((*path, index), position)
        if not isinstance(entry, dict):
            raise _error(at, f"users: expected a map {{user: a, password: b}}, not {entry!r}")
        user: dict[str, str] = {}
        for key, item in entry.items():
            where = positions.get((*path, index, key), at)
            name = key.lower()
            try:
                if name in ("user", "username"):
                    user["user"] = _secret(item)
                elif name in ("pass", "password"):
                    user["password"] = _secret(item)
                elif name == "nkey":
                    key = _str(item)
                    if not is_user_nkey(key):
                        raise ValueError(f"not a valid user public NKEY: {key!r}")
                    user["nkey"] = key
                elif name in _USER_NOT_YET:
                    raise _error(where, f"user {key!r} is not supported by shardbroker yet")
                else:
                    raise _error(where, f'unknown field "{key}"')
            except ValueError as exc:
                raise _error(where, f"{key}: {exc}") from None
        if not user.get("user") and not user.get("nkey"):
            raise _error(at, "users: each user needs a user name or an nkey")
        users.append(User(**user))
    return tuple(users)


_JETSTREAM_SWITCH = {"enabled": True, "enable": True, "disabled": False, "disable": False}
_JETSTREAM_KEYS: dict[str, tuple[str, Converter]] = {
    "store_dir": ("store_dir", _str),
    "store": ("store_dir", _str),
    "storedir": ("store_dir", _str),
    "max_memory_store": ("max_memory_store", _int),
    "max_mem_store": ("max_memory_store", _int),
    "max_mem": ("max_memory_store", _int),
    "max_file_store": ("max_file_store", _int),
    "max_file": ("max_file_store", _int),
    "domain": ("jetstream_domain", _str),
}


def _jetstream(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> dict[str, Any]:
    """`jetstream: enabled|disabled|true|false` or `jetstream { store_dir, ... }`."""
    if isinstance(value, bool):
        return {"jetstream": value}
    if isinstance(value, str):
        switch = _JETSTREAM_SWITCH.get(value.lower())
        if switch is None:
            raise _error(position, f"jetstream: expected enabled, disabled or a map, not {value!r}")
        return {"jetstream": switch}
    if not isinstance(value, dict):
        raise _error(position, f"jetstream: expected a map, got {value!r}")
    out: dict[str, Any] = {"jetstream": True}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        try:
            if name == "enabled":
                out["jetstream"] = _bool(item)
            elif name == "sync_interval":
                if isinstance(item, str) and item.lower() == "always":
                    out["sync_always"] = True
                else:
                    out["sync_interval"] = _seconds(item)
            elif name in ("strict", "max_outstanding_catchup", "max_buffered_msgs"):
                continue  # accepted for compatibility; shardbroker always behaves strictly
            elif name in _JETSTREAM_KEYS:
                field, convert = _JETSTREAM_KEYS[name]
                out[field] = convert(item)
            elif name in ("cipher", "key", "prev_key", "limits", "unique_tag", "max_ack_pending",
                          "request_queue_limit", "extension_hint", "tpm"):
                raise _error(
                    where, f"jetstream {key!r} is not supported by shardbroker yet"
                )
            else:
                raise _error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise _error(where, f"{key}: {exc}") from None
    return out


def _secret(value: Any) -> str:
    """A user name, password or token. nats-server takes a bare number as its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _str(value)


def _error(position: Position, message: str) -> ConfigError:
    return ConfigError(message, position.file, position.line, position.column)


def load(path: str | Path) -> dict[str, Any]:
    """Options fields from a config file (ConfigError on any problem)."""
    values, positions = parse_file_with_positions(path)  # reports unreadable files itself
    return options_from_config(values, positions, str(path))


def merge(
    defaults: Mapping[str, Any], from_file: Mapping[str, Any], from_flags: Mapping[str, Any]
) -> dict[str, Any]:
    """nats-server's order: defaults < config file < command-line flags."""
    return {**defaults, **from_file, **from_flags}


def apply_auth_flags(
    fields: dict[str, Any], token: str | None, user: str | None, password: str | None
) -> dict[str, Any]:
    """--auth, --user and --pass win over the file's authorization block (nats-server's
    MergeOptions); validation then refuses combinations such as a user and a users list."""
    if token is None and user is None and password is None:
        return fields
    auth = fields.get("authorization") or Authorization()
    changes = {
        name: value
        for name, value in (("token", token), ("user", user), ("password", password))
        if value is not None
    }
    return {**fields, "authorization": msgspec.structs.replace(auth, **changes)}
