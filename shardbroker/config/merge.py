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
from shardbroker.config.options import (
    Authorization,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from shardbroker.config.parse import ConfigError, KeyPath, Position, parse_file_with_positions

# protocol.subjects.is_valid_subject, on str: config may not import protocol (layers).
_VALID_SUBJECT = re.compile(r"(?:(?!>\.)[^. \t\r\n\f\v]+\.)*[^. \t\r\n\f\v]+").fullmatch
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
# served yet: refused, never ignored (ignoring them could widen access).
_AUTH_NOT_YET = frozenset(("auth_callout", "auth_hook", "nkey", "nkeys", "proxy_required"))
_USER_NOT_YET = frozenset(
    ("allowed_connection_types", "allowed_connection_type", "connection_types", "clients",
     "account", "proxy_required")
)  # fmt: skip
_PERMISSIONS_KEYS = ("permissions", "permission", "default_permissions", "default_permission")
_USER_PERMISSIONS_KEYS = ("permissions", "permission", "authorization")


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
            elif name in _PERMISSIONS_KEYS:
                # nats-server: these apply to the users list only (not to a single
                # user or a token), to each user without permissions of its own.
                out["default_permissions"] = _permissions(item, positions, (*path, key), where)
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
        user: dict[str, Any] = {}
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
                elif name in _USER_PERMISSIONS_KEYS:
                    user["permissions"] = _permissions(item, positions, (*path, index, key), where)
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


def _permissions(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> Permissions:
    """`permissions { publish, subscribe, allow_responses }` (nats parseUserPermissions).

    `publish`/`subscribe` take `{allow, deny}` or, old style, a subject or a list of
    subjects meaning `allow`. `allow_responses` turns the publish allow list into an
    empty one (publish nothing but responses) when it has none.
    """
    if not isinstance(value, dict):
        raise ValueError(f"Expected permissions to be a map/struct, got {value!r}")
    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    responses: ResponsePermission | None = None
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        try:
            if name in ("pub", "publish", "import"):
                publish = _subject_permission(item, allow_queue=False)
            elif name in ("sub", "subscribe", "export"):
                subscribe = _subject_permission(item, allow_queue=True)
            elif name in ("allow_responses", "publish_allow_responses"):
                responses = _response_permission(item)
            else:
                raise _error(where, f'Unknown field "{key}" parsing permissions')
        except ValueError as exc:
            raise _error(where, f"{key}: {exc}") from None
    if responses is not None:
        publish = publish or SubjectPermission()
        if publish.allow is None:
            publish = msgspec.structs.replace(publish, allow=())
    return Permissions(publish=publish, subscribe=subscribe, allow_responses=responses)


def _subject_permission(value: Any, allow_queue: bool) -> SubjectPermission | None:
    if not isinstance(value, dict):
        return SubjectPermission(allow=_perm_subjects(value, allow_queue))
    if not value:
        return None
    lists: dict[str, tuple[str, ...] | None] = {}
    for key, item in value.items():
        name = key.lower()
        if name not in ("allow", "deny"):
            raise ValueError(
                f'Unknown field name "{key}" parsing subject permissions, '
                "only 'allow' or 'deny' are permitted"
            )
        lists[name] = _perm_subjects(item, allow_queue)
    return SubjectPermission(**lists)


def _perm_subjects(value: Any, allow_queue: bool) -> tuple[str, ...] | None:
    """A subject or a list of them, each valid; None for an empty list (no list)."""
    if isinstance(value, str):
        subjects = [value]
    elif isinstance(value, list):
        subjects = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError("Subject in permissions array cannot be cast to string")
            subjects.append(item)
    else:
        raise ValueError(
            f"Expected subject permissions to be a subject, or array of subjects, got {value!r}"
        )
    for subject in subjects:
        check_permission_subject(subject, allow_queue)
    return tuple(subjects) or None


def check_permission_subject(subject: str, allow_queue: bool) -> None:
    """nats checkPermSubjectArray: a valid subject, or for subscribe `<subject> <queue>`."""
    if _VALID_SUBJECT(subject):
        return
    parts = subject.split()
    if not allow_queue or len(parts) != 2:
        raise ValueError(f'subject "{subject}" is not a valid subject')
    if not _VALID_SUBJECT(parts[0]):
        raise ValueError(f'subject "{parts[0]}" is not a valid subject')
    if not _VALID_SUBJECT(parts[1]):
        raise ValueError(f'queue "{parts[1]}" is not a valid queue')


def _response_permission(value: Any) -> ResponsePermission | None:
    """`true`/`false`, or `{max, expires}`; 0 means the default, negative no limit."""
    if isinstance(value, bool):
        return ResponsePermission() if value else None
    if not isinstance(value, dict):
        raise ValueError("error parsing response permissions, expected a boolean or a map")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key.lower()
        if name in ("max", "max_msgs", "max_messages", "max_responses"):
            count = _int(item)
            if count != 0:
                out["max_msgs"] = count
        elif name in ("expires", "expiration", "ttl"):
            if not isinstance(item, str):
                raise ValueError("error parsing expires, not a duration string")
            try:
                seconds = parse_duration(item)
            except ValueError as exc:
                raise ValueError(f"error parsing expires: {exc}") from None
            if seconds != 0:
                out["expires"] = seconds
        else:
            raise ValueError(f'Unknown field "{key}" parsing permissions')
    return ResponsePermission(**out)


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
