"""The `accounts {}` block: accounts with their users, exports and imports, checked as
nats-server checks them (its texts; file and line of the block for the checks that
span accounts). Pure: config values in, Account structs out.

An import is authorized when an export of the named account covers its subject (a
stream import's subject lies within the export's; a service import's too) and lists
the importer, if it lists anyone, and, with `account_token_position`, names the
importer in that token. Service imports that lead back to where they started form a
cycle and are refused, as are stream imports that do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardbroker import const
from shardbroker.config.mappings import MAPPINGS_KEYS, mappings_block
from shardbroker.config.options import (
    Account,
    AccountJetStream,
    AccountLimits,
    Export,
    Import,
    ServiceLatency,
)
from shardbroker.config.parse import ConfigError, KeyPath, Position
from shardbroker.config.rate_limit import RATE_LIMIT_KEY, parse_rate_limit
from shardbroker.config.users import (
    PERMISSIONS_KEYS,
    VALID_SUBJECT,
    config_error,
    parse_permissions,
    parse_users,
)
from shardbroker.config.value import go_type, number, parse_duration, string

RESERVED = (const.GLOBAL_ACCOUNT.decode(),)

_RESPONSE_TYPES = {
    "single": "singleton",
    "singleton": "singleton",
    "stream": "stream",
    "chunk": "chunked",
    "chunked": "chunked",
}
_THRESHOLD_KEYS = ("threshold", "response_threshold", "response_max_time", "response_time")
# Keys of an account block that nats-server knows and shardbroker does not serve yet:
# refused, never ignored.
_ACCOUNT_NOT_YET = frozenset(("msg_trace", "trace_dest", "cluster_traffic"))
_LIMIT_KEYS = {
    "max_connections": "max_connections",
    "max_conn": "max_connections",
    "max_subscriptions": "max_subscriptions",
    "max_subs": "max_subscriptions",
    "max_payload": "max_payload",
    "max_pay": "max_payload",
    "max_leafnodes": "max_leafnodes",
    "max_leafs": "max_leafnodes",
}


def parse_accounts(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[Account, ...]:
    """`accounts { NAME { users, default_permissions, exports, imports, limits } }`, or
    the old form, a list of names. Raises ConfigError."""
    if isinstance(value, list):
        names = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                where = positions.get((*path, index), position)
                raise config_error(where, f"expected an account name, got {item!r}")
            names.append(item)
        blocks: dict[str, Any] = dict.fromkeys(names)
    elif isinstance(value, dict):
        blocks = value
    else:
        raise config_error(position, f"Expected map to define accounts, got {value!r}")
    accounts = []
    for name, block in blocks.items():
        where = positions.get((*path, name), position)
        if name in RESERVED:
            raise config_error(where, f'"{name}" is a Reserved Account')
        accounts.append(_account(name, block, positions, (*path, name), where))
    out = tuple(accounts)
    check_imports(out, position)
    for account in out:
        if account.limits.max_leafnodes > 0:
            raise config_error(
                position, f"account {account.name}: max_leafnodes: leaf nodes are not supported yet"
            )
    return out


def _account(
    name: str, block: Any, positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> Account:
    if block is None:
        return Account(name=name)
    if not isinstance(block, dict):
        raise config_error(at, f"Expected map entries for accounts, got {block!r}")
    out: dict[str, Any] = {"name": name}
    for key, item in block.items():
        where = positions.get((*path, key), at)
        lower = key.lower()
        try:
            if lower == "users":
                out["users"] = parse_users(item, positions, (*path, key), where)
            elif lower in PERMISSIONS_KEYS:
                out["default_permissions"] = parse_permissions(item, positions, (*path, key), where)
            elif lower == "exports":
                out["exports"] = _entries(item, positions, (*path, key), where, _export)
            elif lower == "imports":
                out["imports"] = _entries(item, positions, (*path, key), where, _import)
            elif lower == "limits":
                out["limits"] = _limits(item, positions, (*path, key), where)
            elif lower in MAPPINGS_KEYS:
                out["mappings"] = mappings_block(item, positions, (*path, key), where)
            elif lower == "jetstream":
                out["jetstream"] = _jetstream(item, positions, (*path, key), where)
            elif lower == RATE_LIMIT_KEY:
                out["rate_limit"] = parse_rate_limit(item, positions, (*path, key), where)
            elif lower == "nkey":
                string(item)  # the account's public key: an identity only in config mode
            elif lower in _ACCOUNT_NOT_YET:
                raise config_error(where, f"account {key!r} is not supported by shardbroker yet")
            else:
                raise config_error(where, f'unknown field "{key}"')
        except ValueError as exc:
            raise config_error(where, f"{key}: {exc}") from None
    return Account(**out)


def _entries(
    value: Any,
    positions: Mapping[KeyPath, Position],
    path: KeyPath,
    at: Position,
    parse: Any,
) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise config_error(at, f"{path[-1]} should be an array, got {value!r}")
    out = []
    for index, entry in enumerate(value):
        where = positions.get((*path, index), at)
        if not isinstance(entry, dict):
            raise config_error(where, f"{path[-1]} entries should be maps, got {entry!r}")
        out.append(parse(entry, positions, (*path, index), where))
    return tuple(out)


def _export(
    entry: dict[str, Any], positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> Export:
    """nats-server parseExportStreamOrService, with its texts."""
    kind = ""
    out: dict[str, Any] = {}
    latency_at: Position | None = None
    for key, item in entry.items():
        where = positions.get((*path, key), at)
        lower = key.lower()
        if lower in ("stream", "service"):
            if kind:
                raise config_error(where, f'Detected {lower} "{item}" but already saw a {kind}')
            kind = lower
            out["subject"] = _subject(item, where, f"Expected {lower} subject to be a string")
        elif lower == "accounts":
            out["accounts"] = _names(item, where)
        elif lower in ("response", "response_type"):
            text = item if isinstance(item, str) else ""
            response = _RESPONSE_TYPES.get(text.lower())
            if response is None:
                raise config_error(where, f'Unknown response type: "{item}"')
            out["response_type"] = response
        elif lower in _THRESHOLD_KEYS:
            try:
                if not isinstance(item, str):
                    raise ValueError
                out["response_threshold"] = parse_duration(item)
            except ValueError:
                raise config_error(
                    where,
                    f'Expected response threshold to be a parseable time duration, got "{item}"',
                ) from None
        elif lower == "latency":
            latency_at = where
            out["latency"] = _latency(item, where)
        elif lower == "account_token_position":
            out["account_token_position"] = _number(item, where)
        elif lower == "allow_trace":
            continue  # message tracing is not served; the switch changes nothing else
        else:
            raise config_error(where, f'unknown field "{key}"')
    if not kind:
        raise config_error(at, "Expected a stream or service export")
    if kind == "stream":
        if latency_at is not None:
            raise config_error(latency_at, "Detected latency directive on non-service")
        if "response_type" in out or "response_threshold" in out:
            raise config_error(at, "Detected response directive on non-service")
    return Export(service=kind == "service", **out)


def _import(
    entry: dict[str, Any], positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> Import:
    """nats-server parseImportStreamOrService, with its texts."""
    kind = ""
    out: dict[str, Any] = {}
    for key, item in entry.items():
        where = positions.get((*path, key), at)
        lower = key.lower()
        if lower in ("stream", "service"):
            if kind:
                raise config_error(where, f'Detected {lower} "{item}" but already saw a {kind}')
            kind = lower
            if not isinstance(item, dict):
                raise config_error(where, f"{lower} import should be a map, got {item!r}")
            account = item.get("account")
            subject = item.get("subject")
            if not isinstance(account, str) or not account:
                raise config_error(where, f"Expect an account name for the {lower} import")
            out["account"] = account
            out["subject"] = _subject(subject, where, f"Expect a subject for the {lower} import")
        elif lower == "prefix":
            out["prefix"] = _subject(item, where, "Expected prefix to be a string")
        elif lower == "to":
            out["to"] = _subject(item, where, "Expected to to be a string")
        elif lower == "share":
            if not isinstance(item, bool):
                raise config_error(where, f"Expected share to be a boolean, got {item!r}")
            out["share"] = item
        elif lower == "allow_trace":
            continue
        else:
            raise config_error(where, f'unknown field "{key}"')
    if not kind:
        raise config_error(at, "Expected a stream or service import")
    if kind == "service":
        out.pop("prefix", None)  # nats-server takes it, and it means nothing there
    return Import(service=kind == "service", **out)


def _latency(value: Any, at: Position) -> ServiceLatency:
    """`latency: subject` or `{sampling: 1..100 | "NN%" | headers, subject}`."""
    if isinstance(value, str):
        return ServiceLatency(subject=value)
    if not isinstance(value, dict):
        raise config_error(at, f"Expected latency to be a subject or a map, got {value!r}")
    sampling = 100
    subject = ""
    for key, item in value.items():
        lower = key.lower()
        if lower == "sampling":
            sampling = _sampling(item, at)
        elif lower == "subject":
            if not isinstance(item, str):
                raise config_error(at, f"Expected latency subject to be a string, got {item!r}")
            subject = item
        else:
            raise config_error(at, f'unknown field "{key}"')
    if not subject:
        raise config_error(at, "Latency subject required in latency config, got none")
    return ServiceLatency(subject=subject, sampling=sampling)


def _sampling(value: Any, at: Position) -> int:
    """A percentage 1..100 (a number or "NN%"), or "headers" (0)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "headers":
            return 0
        text = text.removesuffix("%")
        if not text.isdigit():
            raise config_error(at, f'Failed to parse latency sample "{value}"')
        percent = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        percent = value
    else:
        raise config_error(at, f"Expected latency sample to be a number or string, got {value!r}")
    if not 1 <= percent <= 100:
        raise config_error(at, "bad sampling percentage, should be 1-100")
    return percent


def _limits(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> AccountLimits:
    if not isinstance(value, dict):
        raise config_error(at, f"Expected account limits to be a map, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), at)
        field = _LIMIT_KEYS.get(key.lower())
        if field is None:
            raise config_error(where, f'Unknown field "{key}" parsing account limits')
        out[field] = _number(item, where)
    return AccountLimits(**out)


# An account's `jetstream` map (nats-server parseJetStreamForAccount): key -> field.
_JETSTREAM_KEYS = {
    **dict.fromkeys(("max_memory", "max_mem", "mem", "memory"), "max_memory"),
    **dict.fromkeys(("max_store", "max_file", "max_disk", "store", "disk"), "max_store"),
    **dict.fromkeys(("max_streams", "streams"), "max_streams"),
    **dict.fromkeys(("max_consumers", "consumers"), "max_consumers"),
    **dict.fromkeys(("max_bytes_required", "max_stream_bytes", "max_bytes"), "max_bytes_required"),
    **dict.fromkeys(("mem_max_stream_bytes", "memory_max_stream_bytes"), "memory_max_stream_bytes"),
    **dict.fromkeys(("disk_max_stream_bytes", "store_max_stream_bytes"), "store_max_stream_bytes"),
    "max_ack_pending": "max_ack_pending",
}


def _jetstream(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> AccountJetStream | None:
    """`jetstream: enabled | disabled | true | false | { limits }` (None: not enabled),
    with nats-server's texts."""
    if isinstance(value, bool):
        return AccountJetStream() if value else None
    if isinstance(value, str):
        word = value.lower()
        if word in ("enabled", "enable"):
            return AccountJetStream()
        if word in ("disabled", "disable"):
            return None
        raise config_error(at, f"Expected 'enabled' or 'disabled' for string value, got '{value}'")
    if not isinstance(value, dict):
        raise config_error(
            at, f"Expected map, bool or string to define JetStream, got {go_type(value)}"
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = positions.get((*path, key), at)
        lower = key.lower()
        field = _JETSTREAM_KEYS.get(lower)
        if lower == "cluster_traffic":
            # Whose account carries a clustered stream's replication traffic: nothing
            # to carry in one server, but checked as nats-server checks it.
            if not isinstance(item, str):
                raise config_error(
                    where,
                    f"Expected either 'system' or 'owner' string value for \"{key}\", "
                    f"got {_go_value(item)}",
                )
            if item not in ("system", "", "owner"):
                raise config_error(
                    where, f"Expected 'system' or 'owner' string value for \"{key}\", got {item}"
                )
        elif field is None:
            raise config_error(where, f'unknown field "{key}"')
        elif field == "max_bytes_required":
            if not isinstance(item, bool):
                raise config_error(
                    where, f'Expected a parseable bool for "{key}", got {_go_value(item)}'
                )
            out[field] = item
        else:
            if isinstance(item, bool) or not isinstance(item, int):
                raise config_error(
                    where, f'Expected a parseable size for "{key}", got {_go_value(item)}'
                )
            out[field] = item
    return AccountJetStream(**out)


def _go_value(value: Any) -> str:
    """A config value as Go's %v prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    return str(value)


def _subject(value: Any, at: Position, wrong_type: str) -> str:
    if not isinstance(value, str) or not value:
        raise config_error(at, f"{wrong_type}, got {value!r}")
    return value


def _names(value: Any, at: Position) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise config_error(at, f"Expected accounts to be a list of names, got {value!r}")
    return tuple(value)


def _number(value: Any, at: Position) -> int:
    try:
        return number(value)
    except ValueError as exc:
        raise config_error(at, str(exc)) from None


# -- checks across accounts -------------------------------------------------------------


def tokens(subject: str) -> list[str]:
    return subject.split(".")


def subjects_collide(a: str, b: str) -> bool:
    """Could one subject match both patterns (nats SubjectsCollide)?"""
    ta, tb = tokens(a), tokens(b)
    for x, y in zip(ta, tb, strict=False):
        if x == ">" or y == ">":
            return True
        if x != y and x != "*" and y != "*":
            return False
    return len(ta) == len(tb)


def is_subset_match(subject: str, of: str) -> bool:
    """Does every subject `subject` matches also match `of` (nats isSubsetMatch)?"""
    ts, to = tokens(subject), tokens(of)
    for i, t in enumerate(to):
        if t == ">":
            return i < len(ts)
        if i >= len(ts):
            return False
        s = ts[i]
        if t == "*":
            if s == ">":
                return False
            continue
        if s != t:
            return False
    return len(ts) == len(to)


def wildcards(subject: str) -> list[str]:
    """The wildcard tokens of a subject, in order."""
    return [t for t in tokens(subject) if t in ("*", ">")]


def export_for(exporter: Account, imp: Import, importer: str) -> Export | None:
    """The export of `exporter` that authorizes this import by `importer`, if any."""
    for export in exporter.exports:
        if export.service != imp.service:
            continue
        if not is_subset_match(imp.subject, export.subject):
            continue
        if export.accounts is not None and importer not in export.accounts:
            continue
        position = export.account_token_position
        if position:
            parts = tokens(imp.subject)
            if position > len(parts) or parts[position - 1] != importer:
                continue
        return export
    return None


def check_imports(accounts: tuple[Account, ...], at: Position) -> None:
    """nats-server's checks of exports and imports across accounts (its texts, at the
    position of the `accounts` block, as it reports them)."""
    by_name = {account.name: account for account in accounts}
    for account in accounts:
        for export in account.exports:
            _check_export(export, at)
        for imp in account.imports:
            kind = "service" if imp.service else "stream"
            exporter = by_name.get(imp.account)
            if exporter is None:
                raise config_error(at, f'"{imp.account}" account not defined for {kind} import')
            _check_import_subjects(imp, at)
            if export_for(exporter, imp, account.name) is None:
                raise config_error(
                    at, f'Error adding {kind} import "{imp.subject}": {kind} import not authorized'
                )
    for account in accounts:
        for imp in account.imports:
            if imp.account == account.name:
                continue  # nats-server takes an account's import of its own export
            local = local_subject(imp)
            if _forms_cycle(by_name, imp.service, account.name, imp.account, imp.subject, local):
                kind = "service" if imp.service else "stream"
                text = f'Error adding {kind} import "{local}": import forms a cycle'
                raise config_error(at, text)


def local_subject(imp: Import) -> str:
    """The subject an import is seen under in the importing account."""
    if imp.prefix:
        return f"{imp.prefix}.{imp.subject}"
    return imp.to or imp.subject


def _check_export(export: Export, at: Position) -> None:
    kind = "service" if export.service else "stream"
    if not VALID_SUBJECT(export.subject):
        raise config_error(
            at, f'Error adding {kind} export "{export.subject}": sublist: invalid subject'
        )
    position = export.account_token_position
    if position and (
        position > len(tokens(export.subject)) or tokens(export.subject)[position - 1] != "*"
    ):
        raise config_error(
            at, f'Error adding {kind} export "{export.subject}": sublist: invalid subject'
        )
    latency = export.latency
    if latency is not None:
        where = f'Error adding service latency sampling for "{export.subject}" on subject '
        if export.response_type != "singleton":
            raise config_error(at, f'{where}"{latency.subject}": bad service response type')
        if not VALID_SUBJECT(latency.subject) or wildcards(latency.subject):
            raise config_error(at, f'{where}"{latency.subject}": invalid publish subject')


def _check_import_subjects(imp: Import, at: Position) -> None:
    kind = "service" if imp.service else "stream"
    head = f'Error adding {kind} import "{imp.subject}": '
    if not VALID_SUBJECT(imp.subject):
        raise config_error(at, head + "invalid subject")
    if imp.prefix and (wildcards(imp.prefix) or not VALID_SUBJECT(imp.prefix)):
        raise config_error(at, head + "stream import prefix can not contain wildcard tokens")
    bad_to = not VALID_SUBJECT(imp.to) or (
        wildcards(imp.to) and wildcards(imp.to) != wildcards(imp.subject)
    )
    if imp.to and bad_to:
        source, target = (imp.to, imp.subject) if imp.service else (imp.subject, imp.to)
        raise config_error(
            at,
            head + f"failed to create mapping transform for {kind} import subject from "
            f'"{source}" to "{target}": invalid subject',
        )


def _forms_cycle(
    by_name: Mapping[str, Account],
    service: bool,
    start: str,
    exporter: str,
    subject: str,
    local: str,
) -> bool:
    """Do imports of the same kind lead from `exporter`'s `subject` back to `start`?

    A service request for `local` in `start` goes to `exporter` as `subject`; if
    `exporter` imports a service whose local subject collides with it, the request
    goes on, and so on. For streams the flow runs the other way round, which visits
    the same edges backwards: a loop either way is a loop."""
    visited = {start}
    todo = [(exporter, subject)]
    while todo:
        name, wanted = todo.pop()
        account = by_name.get(name)
        if account is None:
            continue
        for imp in account.imports:
            if imp.service != service or not subjects_collide(wanted, local_subject(imp)):
                continue
            if imp.account in visited:
                return True
            visited.add(imp.account)
            todo.append((imp.account, imp.subject))
    return False


__all__ = ["ConfigError", "parse_accounts"]
