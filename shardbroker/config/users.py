"""The users and permissions of a config file: `users: [...]` entries and
`permissions {}` blocks, as the `authorization {}` block and every account's block
write them (nats-server parseUsers, parseUserPermissions). Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from shardbroker.config.nkey import is_user_nkey
from shardbroker.config.options import (
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from shardbroker.config.parse import ConfigError, KeyPath, Position
from shardbroker.config.rate_limit import RATE_LIMIT_KEY, parse_rate_limit
from shardbroker.config.value import number, parse_duration, secret, string

# protocol.subjects.is_valid_subject, on str: config may not import protocol (layers).
VALID_SUBJECT = re.compile(r"(?:(?!>\.)[^. \t\r\n\f\v]+\.)*[^. \t\r\n\f\v]+").fullmatch

_USER_NOT_YET = frozenset(
    ("allowed_connection_types", "allowed_connection_type", "connection_types", "clients",
     "account", "proxy_required")
)  # fmt: skip
PERMISSIONS_KEYS = ("permissions", "permission", "default_permissions", "default_permission")
_USER_PERMISSIONS_KEYS = ("permissions", "permission", "authorization")


def config_error(position: Position, message: str) -> ConfigError:
    return ConfigError(message, position.file, position.line, position.column)


def parse_users(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[User, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected an array of users, got {value!r}")
    users = []
    for index, entry in enumerate(value):
        at = positions.get((*path, index), position)
        if not isinstance(entry, dict):
            raise config_error(at, f"users: expected a map {{user: a, password: b}}, not {entry!r}")
        user: dict[str, Any] = {}
        for key, item in entry.items():
            where = positions.get((*path, index, key), at)
            name = key.lower()
            try:
                if name in ("user", "username"):
                    user["user"] = secret(item)
                elif name in ("pass", "password"):
                    user["password"] = secret(item)
                elif name == "nkey":
                    key = string(item)
                    if not is_user_nkey(key):
                        raise ValueError(f"not a valid user public NKEY: {key!r}")
                    user["nkey"] = key
                elif name in _USER_PERMISSIONS_KEYS:
                    user["permissions"] = parse_permissions(
                        item, positions, (*path, index, key), where
                    )
                elif name == RATE_LIMIT_KEY:
                    user["rate_limit"] = parse_rate_limit(
                        item, positions, (*path, index, key), where
                    )
                elif name in _USER_NOT_YET:
                    raise config_error(where, f"user {key!r} is not supported by shardbroker yet")
                else:
                    raise config_error(where, f'unknown field "{key}"')
            except ValueError as exc:
                raise config_error(where, f"{key}: {exc}") from None
        if not user.get("user") and not user.get("nkey"):
            raise config_error(at, "users: each user needs a user name or an nkey")
        users.append(User(**user))
    return tuple(users)


def parse_permissions(
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
                raise config_error(where, f'Unknown field "{key}" parsing permissions')
        except ValueError as exc:
            raise config_error(where, f"{key}: {exc}") from None
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
    if VALID_SUBJECT(subject):
        return
    parts = subject.split()
    if not allow_queue or len(parts) != 2:
        raise ValueError(f'subject "{subject}" is not a valid subject')
    if not VALID_SUBJECT(parts[0]):
        raise ValueError(f'subject "{parts[0]}" is not a valid subject')
    if not VALID_SUBJECT(parts[1]):
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
            count = number(item)
            if count != 0:
                out["max_msgs"] = count
        elif name in ("expires", "expiration", "ttl"):
            if not isinstance(item, str):
                raise ValueError("error parsing expires, not a duration string")
            try:
                expires = parse_duration(item)
            except ValueError as exc:
                raise ValueError(f"error parsing expires: {exc}") from None
            if expires != 0:
                out["expires"] = expires
        else:
            raise ValueError(f'Unknown field "{key}" parsing permissions')
    return ResponsePermission(**out)
