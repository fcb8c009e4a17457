"""From a parsed config file to Options fields, and the merge of defaults < file < flags.

Pure (no asyncio). Runs in the supervisor and in `shardbroker check-config`.

Key names, aliases and value forms follow nats-server (reference config.md §1.6, §2).
An unknown key is an error (`unknown field "x"`), as in nats-server. A key of a
nats-server feature shardbroker does not have yet is an error too, never ignored:
silently dropping `authorization {}` would leave a broker open that the file meant to
close.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from shardbroker.config.nkey import is_user_nkey
from shardbroker.config.options import (
    Authorization,
    Options,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    TLSConfig,
    User,
    validate,
)
from shardbroker.config.parse import ConfigError, KeyPath, Position, parse_file_with_positions
from shardbroker.config.value import (
    Converter,
    boolean,
    duration_string,
    listen,
    number,
    parse_duration,
    seconds,
    secret,
    string,
)

# protocol.subjects.is_valid_subject, on str: config may not import protocol (layers).
_VALID_SUBJECT = re.compile(r"(?:(?!>\.)[^. \t\r\n\f\v]+\.)*[^. \t\r\n\f\v]+").fullmatch

# nats-server features that a config file may name but shardbroker does not serve yet.
NOT_YET_SUPPORTED = frozenset(
    (
        "accounts", "system_account", "operator", "resolver", "allow_non_tls", "ocsp",
        "cluster", "gateway", "leafnodes", "websocket",
        "mqtt", "https", "https_port", "client_advertise",
    )
)  # fmt: skip


# config key (lower case) -> (Options field, converter); aliases share a field.
KEYS: dict[str, tuple[str, Converter]] = {
    "host": ("host", string),
    "net": ("host", string),
    "port": ("port", number),
    "server_name": ("server_name", string),
    "pid_file": ("pid_file", string),
    "ports_file_dir": ("ports_file_dir", string),
    "log_file": ("log_file", string),
    "debug": ("debug", boolean),
    "trace": ("trace", boolean),
    "logtime": ("logtime", boolean),
    "max_payload": ("max_payload", number),
    "max_pending": ("max_pending", number),
    "max_control_line": ("max_control_line", number),
    "max_connections": ("max_connections", number),
    "max_conn": ("max_connections", number),
    "max_subscriptions": ("max_subscriptions", number),
    "max_subs": ("max_subscriptions", number),
    "ping_interval": ("ping_interval", seconds),
    "ping_max": ("ping_max", number),
    "write_deadline": ("write_deadline", seconds),
    "lame_duck_duration": ("lame_duck_duration", duration_string),
    "lame_duck_grace_period": ("lame_duck_grace_period", duration_string),
    # Not in nats-server (see Options).
    "worker_heartbeat_timeout": ("worker_heartbeat_timeout", seconds),
    "rebalance": ("rebalance", boolean),
    "rebalance_interval": ("rebalance_interval", seconds),
    "http_port": ("http_port", number),
    "monitor_port": ("http_port", number),
    "http_base_path": ("http_base_path", string),
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
                fields["store_dir"] = string(value)
            except ValueError as exc:
                raise _error(position, f"{key}: {exc}") from None
            continue
        if name == "tls":
            fields["tls"] = _tls(value, positions, (key,), position)
            continue
        if name == "no_auth_user":
            try:
                fields["no_auth_user"] = string(value)
            except ValueError as exc:
                raise _error(position, f"{key}: {exc}") from None
            continue
        if name == "listen":
            try:
                fields.update(listen(value))
            except ValueError as exc:
                raise _error(position, f"listen: {exc}") from None
            continue
        if name == "http":
            try:
                address = listen(value)
            except ValueError as exc:
                raise _error(position, f"http: {exc}") from None
            fields["http_port"] = address["port"]
            if "host" in address:
                fields["http_host"] = address["host"]
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
    auth = fields.get("authorization")
    tls = fields.get("tls")
    auth_block = next((v for k, v in values.items() if k.lower() == "authorization"), None)
    if auth is not None and tls is not None and not _has_key(auth_block, "timeout"):
        # nats-server: the default auth timeout is the TLS timeout plus one second.
        fields["authorization"] = msgspec.structs.replace(auth, timeout=tls.timeout + 1.0)
    return fields


def _has_key(block: Any, name: str) -> bool:
    return isinstance(block, dict) and any(key.lower() == name for key in block)


# Keys of nats-server's tls block that shardbroker does not serve yet: refused with a
# clear message, never ignored.
_TLS_NOT_YET = frozenset(
    ("insecure", "verify_cert_and_check_known_urls", "allow_insecure_cipher_suites",
     "cipher_suites", "curve_preferences", "connection_rate_limit", "pinned_certs",
     "cert_store", "cert_match_by", "cert_match", "ca_certs_match", "cert_match_skip_invalid",
     "ocsp_peer", "certs", "certificates")
)  # fmt: skip


def _tls(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> TLSConfig:
    """`tls { cert_file, key_file, ca_file, verify, timeout, handshake_first, min_version }`.

    The files must be readable now: a broker never starts without its certificates.
    """
    if not isinstance(value, dict):
        raise _error(position, f"{path[-1]}: expected a map, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), position)
        name = key.lower()
        try:
            if name in ("cert_file", "key_file", "ca_file"):
                if not isinstance(item, str):
                    raise ValueError(f"error parsing tls config, expected '{name}' to be filename")
                _check_readable(item)
                out[name] = item
            elif name == "verify":
                out["verify"] = boolean(item)
            elif name == "verify_and_map":
                if boolean(item):
                    raise ValueError(
                        "mapping client certificates to users is not supported by shardbroker yet"
                    )
            elif name == "timeout":
                out["timeout"] = seconds(item)
            elif name in ("handshake_first", "first", "immediate"):
                out["handshake_first"] = _handshake_first(item)
            elif name == "min_version":
                # nats-server wants a string; an unquoted 1.2 (a number) is taken too.
                version = str(item) if isinstance(item, float) else string(item)
                if version not in ("1.2", "1.3"):
                    raise ValueError(f"unsupported TLS version: {version}")
                out["min_version"] = version
            elif name in _TLS_NOT_YET:
                raise ValueError("not supported by shardbroker yet")
            else:
                raise _error(where, f'error parsing tls config, unknown field "{key}"')
        except ValueError as exc:
            raise _error(where, f"tls {key}: {exc}") from None
    cert, key = out.get("cert_file"), out.get("key_file")
    try:
        if cert and key:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                os.path.expanduser(cert), os.path.expanduser(key)
            )
    except (ssl.SSLError, OSError) as exc:
        where = positions.get((*path, _key_named(value, "cert_file")), position)
        raise _error(
            where,
            f'tls cert_file, key_file: cannot load "{cert}" with "{key}": {tls_error_text(exc)}',
        ) from None
    ca = out.get("ca_file")
    try:
        if ca:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(
                cafile=os.path.expanduser(ca)
            )
    except (ssl.SSLError, OSError) as exc:
        where = positions.get((*path, _key_named(value, "ca_file")), position)
        raise _error(where, f'tls ca_file: cannot load "{ca}": {tls_error_text(exc)}') from None
    return TLSConfig(**out)


def _key_named(block: dict[str, Any], name: str) -> str:
    return next((key for key in block if key.lower() == name), name)


def tls_error_text(exc: BaseException) -> str:
    """A readable reason for a certificate or key that does not load."""
    text = str(exc)
    if "PEM lib" in text or "NO_START_LINE" in text:
        return "no PEM certificate or key in it"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text


def _handshake_first(value: Any) -> bool:
    """true/false (or "on"/"off"). nats-server's fallback forms ("auto", a delay) send
    a plain INFO when the client stays silent; shardbroker does not do that yet."""
    if isinstance(value, bool):
        return value
    text = string(value).lower()
    if text in ("true", "on"):
        return True
    if text in ("false", "off"):
        return False
    raise ValueError(f"{value!r}: only true or false are supported (no fallback delay yet)")


def _check_readable(path: str) -> None:
    try:
        with open(os.path.expanduser(path), "rb"):
            pass
    except OSError as exc:
        raise ValueError(f'cannot read "{path}": {exc.strerror}') from None


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
                out["token"] = secret(item)
            elif name in ("user", "username"):
                out["user"] = secret(item)
            elif name in ("pass", "password"):
                out["password"] = secret(item)
            elif name == "timeout":
                out["timeout"] = seconds(item)
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
                    user["user"] = secret(item)
                elif name in ("pass", "password"):
                    user["password"] = secret(item)
                elif name == "nkey":
                    key = string(item)
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
    "store_dir": ("store_dir", string),
    "store": ("store_dir", string),
    "storedir": ("store_dir", string),
    "max_memory_store": ("max_memory_store", number),
    "max_mem_store": ("max_memory_store", number),
    "max_mem": ("max_memory_store", number),
    "max_file_store": ("max_file_store", number),
    "max_file": ("max_file_store", number),
    "domain": ("jetstream_domain", string),
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
                out["jetstream"] = boolean(item)
            elif name == "sync_interval":
                if isinstance(item, str) and item.lower() == "always":
                    out["sync_always"] = True
                else:
                    out["sync_interval"] = seconds(item)
            elif name in ("strict", "max_outstanding_catchup", "max_buffered_msgs"):
                continue  # accepted for compatibility; shardbroker always behaves strictly
            elif name in _JETSTREAM_KEYS:
                field, convert = _JETSTREAM_KEYS[name]
                out[field] = convert(item)
            elif name in (
                "cipher",
                "key",
                "prev_key",
                "limits",
                "unique_tag",
                "max_ack_pending",
                "request_queue_limit",
                "extension_hint",
                "tpm",
            ):
                raise _error(where, f"jetstream {key!r} is not supported by shardbroker yet")
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


def apply_tls_flags(
    fields: dict[str, Any],
    tls: bool,
    cert: str | None,
    key: str | None,
    ca: str | None,
    verify: bool,
) -> dict[str, Any]:
    """Any --tls* flag replaces the file's certificates and verify setting with the
    flags' (nats-server overrideTLS); the file's timeout and handshake_first stay."""
    if not (tls or verify or cert is not None or key is not None or ca is not None):
        return fields
    base = fields.get("tls") or TLSConfig()
    for flag, path in (("--tlscert", cert), ("--tlskey", key), ("--tlscacert", ca)):
        if path:
            try:
                _check_readable(path)
            except ValueError as exc:
                raise ValueError(f"{flag}: {exc}") from None
    return {
        **fields,
        "tls": msgspec.structs.replace(
            base, cert_file=cert or "", key_file=key or "", ca_file=ca or "", verify=verify
        ),
    }


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


class OptionsSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a broker's Options come from: the config file and the command-line flags.

    The supervisor keeps it so that a reload re-reads the same file and applies the same
    flags on top (flags win over the file after every reload, as in nats-server).
    """

    config: str = ""
    # Options fields set on the command line, by field name.
    flags: dict[str, Any] = msgspec.field(default_factory=dict)
    # --auth, --user, --pass (None where not given).
    auth_flags: tuple[str | None, str | None, str | None] = (None, None, None)
    # --tls, --tlscert, --tlskey, --tlscacert, --tlsverify.
    tls_flags: tuple[bool, str | None, str | None, str | None, bool] = (
        False,
        None,
        None,
        None,
        False,
    )


def build_options(source: OptionsSource) -> Options:
    """defaults < config file < flags, validated. Raises ConfigError (file, line, key)
    for the file, OptionsError or ValueError for values; the TLS files are not loaded
    here (the caller does that with security.tls, which config may not import)."""
    from_file = load(source.config) if source.config else {}
    fields = merge(msgspec.structs.asdict(Options()), from_file, source.flags)
    fields = apply_auth_flags(fields, *source.auth_flags)
    fields = apply_tls_flags(fields, *source.tls_flags)
    return validate(Options(**fields))
