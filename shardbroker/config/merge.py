"""From a parsed config file to Options fields, and the merge of defaults < file < flags.

Pure (no asyncio). Runs in the supervisor and in `shardbroker check-config`.

Key names, aliases and value forms follow nats-server (reference config.md §1.6, §2).
Which key sets which option, and in which form, comes from the Options declarations
(config/options.py: KEYS and _JETSTREAM_KEYS are derived from them); this module adds
the parsers of the blocks and keys that set more than one option, and the refusals.
An unknown key is an error (`unknown field "x"`), as in nats-server. A key of a
nats-server feature shardbroker does not have yet is an error too, never ignored:
silently dropping `authorization {}` would leave a broker open that the file meant to
close.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, get_args

import msgspec

from shardbroker.config.accounts import parse_accounts
from shardbroker.config.callout import CALLOUT_KEYS, check_allowed_accounts, parse_auth_callout
from shardbroker.config.mappings import MAPPINGS_KEYS, mappings_block
from shardbroker.config.operator import (
    OPERATOR_KEYS,
    PINNED_KEY,
    RESOLVER_KEYS,
    TRUSTED_KEYS,
    account_jwts_at_start,
    accounts_from_jwts,
    operator_system_account,
    parse_operator_block,
    trusted_keys,
)
from shardbroker.config.options import (
    DECLARATIONS,
    Authorization,
    Options,
    RateLimit,
    TLSConfig,
    WebsocketConfig,
    validate,
)
from shardbroker.config.parse import KeyPath, Position, parse_file_with_positions
from shardbroker.config.rate_limit import parse_rate_limit
from shardbroker.config.users import PERMISSIONS_KEYS, config_error, parse_permissions, parse_users
from shardbroker.config.value import (
    Converter,
    boolean,
    listen,
    number,
    seconds,
    secret,
    string,
)
from shardbroker.config.websocket import parse_websocket

# nats-server features that a config file may name but shardbroker does not serve yet.
NOT_YET_SUPPORTED = frozenset(
    (
 "allow_non_tls", "ocsp",
        "cluster", "gateway", "leafnodes",
        "mqtt", "https", "https_port", "client_advertise",
    )
)  # fmt: skip


class FileKey(NamedTuple):
    """What a config file key sets: an Options field, from a value of this form; or, for
    a struct field, from a block of its own (`authorization {}`, `tls {}`) that the
    parser of that struct reads, with the positions of what is inside."""

    field: str
    convert: Converter | None
    struct: type[msgspec.Struct] | None


# The form of a value by its field's type, where the Setting names none.
_FORMS: dict[Any, Converter] = {int: number, str: string, bool: boolean, float: seconds}


def _file_keys(block: str) -> dict[str, FileKey]:
    """The keys of `block` ("": the top level) that the Options declarations name, lower
    case (aliases share a field). TypeError at import for a key no form can read."""
    keys: dict[str, FileKey] = {}
    for decl in DECLARATIONS:
        convert = decl.setting.convert or _FORMS.get(decl.type)
        struct = None if convert is not None else _struct_of(decl.type)
        if convert is None and struct is None and decl.setting.keys:
            raise TypeError(f"Options.{decl.name}: no config value form for {decl.type}")
        for key in decl.setting.keys:
            head, _, name = key.lower().rpartition(".")
            if head == block:
                if name in keys:
                    raise TypeError(f"config key {key!r} declared for two Options fields")
                keys[name] = FileKey(decl.name, convert, struct)
    return keys


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct type of an optional struct field (`TLSConfig | None`), else None."""
    for arg in get_args(tp) or (tp,):
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


# Top-level keys, from the Options declarations.
KEYS = _file_keys("")
# Keys inside `jetstream {}`.
_JETSTREAM_KEYS = _file_keys("jetstream")


def options_from_config(
    values: Mapping[str, Any], positions: Mapping[KeyPath, Position], filename: str
) -> dict[str, Any]:
    """Options fields set by a parsed config file. Raises ConfigError for the first
    unknown, unsupported or badly typed key, naming its file and line."""
    fields: dict[str, Any] = {}
    for key, value in values.items():
        position = positions.get((key,), Position(filename, 0, 0))
        name = key.lower()
        if name == "jetstream":
            # A switch, or a block of keys of other options (_JETSTREAM_KEYS).
            fields.update(_jetstream(value, positions, (key,), position))
            continue
        if name == "accounts":
            fields["accounts"] = parse_accounts(value, positions, (key,), position)
            continue
        if name in OPERATOR_FILE_KEYS:
            continue  # parse_operator_block, below
        if name in MAPPINGS_KEYS:
            fields["mappings"] = mappings_block(value, positions, (key,), position)
            continue
        if name in ("listen", "http"):
            # One key, two options: host and port.
            try:
                address = listen(value)
            except ValueError as exc:
                raise _error(position, f"{name}: {exc}") from None
            prefix = "" if name == "listen" else "http_"
            fields.update({prefix + part: item for part, item in address.items()})
            continue
        entry = KEYS.get(name)
        if entry is None:
            if name in NOT_YET_SUPPORTED:
                raise _error(
                    position,
                    f"{key!r} is a nats-server option that shardbroker does not support yet",
                )
            raise _error(position, f'unknown field "{key}"')
        if entry.struct is not None:
            parse = _BLOCK_PARSERS[entry.struct]
            fields[entry.field] = parse(value, positions, (key,), position)
            continue
        try:
            fields[entry.field] = entry.convert(value)  # type: ignore[misc]
        except ValueError as exc:
            raise _error(position, f"{key}: {exc}") from None
    auth: Authorization | None = fields.get("authorization")
    if auth is not None and auth.callout is not None:
        at = positions.get((_key_named(values, "authorization"),), Position(filename, 0, 0))
        accounts = tuple(account.name for account in fields.get("accounts", ()))
        try:
            check_allowed_accounts(auth.callout, accounts)
        except ValueError as exc:
            raise _error(at, str(exc)) from None
    operator = parse_operator_block(values, positions, filename)
    if operator:
        _check_operator_mode(operator, fields, values, positions, filename)
        fields.update(operator)
    auth = fields.get("authorization")
    tls = fields.get("tls")
    auth_block = next((v for k, v in values.items() if k.lower() == "authorization"), None)
    if auth is not None and tls is not None and not _has_key(auth_block, "timeout"):
        # nats-server: the default auth timeout is the TLS timeout plus one second.
        fields["authorization"] = msgspec.structs.replace(auth, timeout=tls.timeout + 1.0)
    return fields


OPERATOR_FILE_KEYS = frozenset(
    (*OPERATOR_KEYS, *RESOLVER_KEYS, *TRUSTED_KEYS, "resolver_preload", PINNED_KEY)
)


def _check_operator_mode(
    operator: dict[str, Any],
    fields: dict[str, Any],
    values: Mapping[str, Any],
    positions: Mapping[KeyPath, Position],
    filename: str,
) -> None:
    """nats-server's refusals of an operator-mode file (its texts)."""
    first = next(iter(values), "")
    at = positions.get((first,), Position(filename, 0, 0))
    operators = operator.get("operators", ())
    if not operators and not operator.get("trusted_keys"):
        return
    if operators and operator.get("trusted_keys"):
        raise _error(at, "conflicting options for 'TrustedKeys' and 'TrustedOperators'")
    if not operator.get("resolver"):
        raise _error(at, "operators require an account resolver to be configured")
    if fields.get("accounts"):
        raise _error(at, "operators do not allow Accounts to be configured directly")
    auth = fields.get("authorization")
    if auth is not None and (auth.users is not None or auth.user or auth.token):
        raise _error(at, "operators do not allow users to be configured directly")
    system = fields.get("system_account", "")
    from_jwt = operator_system_account(operators)
    if system and from_jwt and system != from_jwt:
        raise _error(at, "system_account in config and operator JWT must be identical")
    if operator.get("resolver_store") is not None and not (system or from_jwt):
        raise _error(
            at,
            "using nats based account resolver - the system account needs to be "
            "specified in configuration or the operator jwt",
        )
    if auth is not None and auth.callout is not None:
        raise _error(at, "operators do not allow authorization callouts to be configured directly")


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


def _key_named(block: Mapping[str, Any], name: str) -> str:
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


# Keys nats-server knows in an authorization block that are not served yet: refused,
# never ignored (ignoring them could widen access).
_AUTH_NOT_YET = frozenset(("nkey", "nkeys", "proxy_required"))


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
                out["users"] = parse_users(item, positions, (*path, key), where)
            elif name in CALLOUT_KEYS:
                out["callout"] = parse_auth_callout(item, positions, (*path, key), where)
            elif name in PERMISSIONS_KEYS:
                # nats-server: these apply to the users list only (not to a single
                # user or a token), to each user without permissions of its own.
                out["default_permissions"] = parse_permissions(item, positions, (*path, key), where)
            elif name in _AUTH_NOT_YET:
                raise _error(where, f"authorization {key!r} is not supported by shardbroker yet")
            else:
                raise _error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise _error(where, f"{key}: {exc}") from None
    return Authorization(**out)


_JETSTREAM_SWITCH = {"enabled": True, "enable": True, "disabled": False, "disable": False}
# Accepted for compatibility; shardbroker always behaves strictly.
_JETSTREAM_IGNORED = frozenset(("strict", "max_outstanding_catchup", "max_buffered_msgs"))
_JETSTREAM_NOT_YET = frozenset(
    ("cipher", "key", "prev_key", "limits", "unique_tag", "max_ack_pending",
     "request_queue_limit", "extension_hint", "tpm")
)  # fmt: skip


def _jetstream(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> dict[str, Any]:
    """`jetstream: enabled|disabled|true|false` or `jetstream { store_dir, ... }`, whose
    keys the Options declarations name as "jetstream.<key>"."""
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
            if name == "sync_interval" and isinstance(item, str) and item.lower() == "always":
                out["sync_always"] = True
            elif name in _JETSTREAM_KEYS:
                field, convert, _ = _JETSTREAM_KEYS[name]
                out[field] = convert(item)  # type: ignore[misc]
            elif name in _JETSTREAM_IGNORED:
                continue
            elif name in _JETSTREAM_NOT_YET:
                raise _error(where, f"jetstream {key!r} is not supported by shardbroker yet")
            else:
                raise _error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise _error(where, f"{key}: {exc}") from None
    return out


BlockParser = Callable[[Any, Mapping[KeyPath, Position], KeyPath, Position], Any]

# The parser of each struct an Options field holds, for its block in a file.
_BLOCK_PARSERS: dict[type[msgspec.Struct], BlockParser] = {
    Authorization: _authorization,
    TLSConfig: _tls,
    RateLimit: parse_rate_limit,
    WebsocketConfig: functools.partial(parse_websocket, tls=_tls),
}


_error = config_error


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
    if fields.get("operators") or fields.get("trusted_keys"):
        # The preloaded accounts signed by a trusted key are the accounts; the system
        # account is the configured one, else the operator's, else none.
        trusted = trusted_keys(fields["operators"], fields["trusted_keys"])
        fields["account_jwts"] = account_jwts_at_start(
            fields["resolver_preload"], fields["resolver_store"]
        )
        fields["accounts"] = accounts_from_jwts(fields["account_jwts"], trusted)
        if fields["system_account"] == Options().system_account:
            system = operator_system_account(fields["operators"])
            if system:
                fields["system_account"] = system
            else:
                fields["no_system_account"] = True
    return validate(Options(**fields))
