"""Operator mode in a config file: `operator`, `trusted_keys`, `resolver: MEMORY` and
`resolver_preload` (jwt-operator-mode.md §2), checked with nats-server's texts, and
the preloaded account JWTs turned into the Account structs every other part of the
broker already serves (limits, exports, imports, default permissions, mappings,
JetStream). Pure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.jwt import JWTError
from shardbroker.config.options import (
    Account,
    AccountJetStream,
    AccountLimits,
    Export,
    Import,
    MapDestination,
    Permissions,
    ResponsePermission,
    ServiceLatency,
    SubjectMapping,
    SubjectPermission,
)
from shardbroker.config.parse import KeyPath, Position
from shardbroker.config.users import config_error

OPERATOR_KEYS = ("operator", "operators", "root", "roots", "root_operator", "root_operators")
RESOLVER_KEYS = ("resolver", "account_resolver", "accounts_resolver")
TRUSTED_KEYS = ("trusted_keys", "trusted")
_MEMORY = ("MEMORY", "MEM")
_RESPONSE_TYPES = {"singleton": "singleton", "stream": "stream", "chunked": "chunked"}


def parse_operator_block(
    values: Mapping[str, Any], positions: Mapping[KeyPath, Position], filename: str
) -> dict[str, Any]:
    """The Options fields of operator mode in a parsed file (empty without it)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.lower()
        at = positions.get((key,), Position(filename, 0, 0))
        if name in OPERATOR_KEYS:
            items = value if isinstance(value, list) else [value]
            out["operators"] = tuple(_operator_jwt(item, at) for item in items)
        elif name in TRUSTED_KEYS:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if not isinstance(item, str) or jwt.decode_public_key(item, "operator") is None:
                    raise config_error(
                        at, f'trust key "{item}" required to be a valid public operator nkey'
                    )
            out["trusted_keys"] = tuple(items)
        elif name in RESOLVER_KEYS:
            if not isinstance(value, str) or value.upper() not in _MEMORY:
                raise config_error(
                    at,
                    f"{key}: only the MEMORY resolver is supported by shardbroker yet "
                    "(not URL or the nats-based full/cache resolvers)",
                )
            out["resolver"] = "MEMORY"
        elif name == "resolver_preload":
            if not isinstance(value, dict):
                raise config_error(at, f"resolver_preload should be a map, got {value!r}")
            preload = []
            for account_key, token in value.items():
                where = positions.get((key, account_key), at)
                try:
                    claims = jwt.decode(str(token), "account")
                except JWTError:
                    raise config_error(where, "invalid account JWT") from None
                if claims.sub != account_key:
                    raise config_error(where, "invalid account JWT")
                preload.append((account_key, str(token)))
            out["resolver_preload"] = tuple(preload)
    return out


def _operator_jwt(value: Any, at: Position) -> str:
    """An operator JWT given inline, or the file holding it (decorated or bare)."""
    if not isinstance(value, str):
        raise config_error(at, f"operator: expected a JWT or a file, got {value!r}")
    text = value
    path = os.path.expanduser(value)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise config_error(at, f'operator: cannot read "{value}": {exc.strerror}') from None
        blocks = [line.strip() for line in text.splitlines() if line.strip().startswith("eyJ")]
        text = blocks[0] if blocks else text.strip()
    elif not value.startswith("eyJ"):
        raise config_error(at, f'operator: "{value}" is neither a file nor a JWT')
    try:
        jwt.decode(text, "operator")
    except JWTError as exc:
        raise config_error(at, f"operator: invalid operator JWT: {exc}") from None
    return text


# -- account JWTs as accounts --------------------------------------------------------------


def trusted_keys(operators: tuple[str, ...], keys: tuple[str, ...]) -> frozenset[str]:
    """The keys account JWTs must be signed by: each operator's own key (unless it asks
    for strict signing-key use) and its signing keys; or the configured trusted keys."""
    trusted = set(keys)
    for token in operators:
        claims = jwt.decode(token, "operator")
        if not claims.nats.get("strict_signing_key_usage"):
            trusted.add(claims.sub)
        trusted.update(str(k) for k in claims.nats.get("signing_keys") or ())
    return frozenset(trusted)


def operator_system_account(operators: tuple[str, ...]) -> str:
    for token in operators:
        system = jwt.decode(token, "operator").nats.get("system_account")
        if system:
            return str(system)
    return ""


def accounts_from_jwts(
    preload: tuple[tuple[str, str], ...], trusted: frozenset[str]
) -> tuple[Account, ...]:
    """The preloaded accounts signed by a trusted key, as Account structs."""
    out = []
    for key, token in preload:
        claims = jwt.decode(token, "account")
        if claims.iss not in trusted:
            continue  # nobody can log in to it (nats-server only logs this)
        out.append(account_from_claims(key, claims))
    return tuple(out)


def _limit(section: Mapping[str, Any], name: str) -> int:
    """An account JWT limit: -1 unlimited; absent is 0 (nothing), in version 1 tokens
    too (nats-server refuses every connection to an account without `conn`)."""
    value = section.get(name)
    return 0 if value is None else int(value)


def account_from_claims(key: str, claims: jwt.Claims) -> Account:
    nats = claims.nats
    limits = nats.get("limits") or {}
    fields: dict[str, Any] = {
        "name": key,
        "limits": AccountLimits(
            max_connections=_limit(limits, "conn"),
            max_subscriptions=_limit(limits, "subs"),
            max_payload=_limit(limits, "payload"),
            max_leafnodes=-1,
        ),
        "exports": tuple(_export(e) for e in nats.get("exports") or ()),
        "imports": tuple(_import(i) for i in nats.get("imports") or ()),
    }
    defaults = nats.get("default_permissions")
    if defaults:
        fields["default_permissions"] = jwt_permissions(defaults)
    mappings = nats.get("mappings") or {}
    if mappings:
        fields["mappings"] = tuple(
            SubjectMapping(
                source=source,
                destinations=tuple(
                    MapDestination(subject=d["subject"], weight=int(d.get("weight", 100)))
                    for d in dests
                ),
            )
            for source, dests in mappings.items()
        )
    memory = int(limits.get("mem_storage", 0) or 0)
    disk = int(limits.get("disk_storage", 0) or 0)
    if memory or disk:
        fields["jetstream"] = AccountJetStream(
            max_memory=memory,
            max_store=disk,
            max_streams=int(limits.get("streams", -1)),
            max_consumers=int(limits.get("consumer", -1)),
        )
    return Account(**fields)


def _export(entry: Mapping[str, Any]) -> Export:
    service = entry.get("type") == "service"
    latency = entry.get("service_latency")
    out: dict[str, Any] = {"service": service, "subject": str(entry["subject"])}
    if service:
        response = str(entry.get("response_type", "Singleton")).lower()
        out["response_type"] = _RESPONSE_TYPES.get(response, "singleton")
        threshold = entry.get("response_threshold")
        if threshold:
            out["response_threshold"] = int(threshold) / 1e9
        if latency:
            sampling = latency.get("sampling", 100)
            out["latency"] = ServiceLatency(
                subject=str(latency["results"]),
                sampling=0 if sampling == "headers" else int(sampling),
            )
    position = entry.get("account_token_position")
    if position:
        out["account_token_position"] = int(position)
    return Export(**out)


def _import(entry: Mapping[str, Any]) -> Import:
    service = entry.get("type") == "service"
    return Import(
        service=service,
        account=str(entry["account"]),
        subject=str(entry["subject"]),
        to=str(entry.get("local_subject") or entry.get("to") or ""),
        share=bool(entry.get("share", False)) and service,
    )


def jwt_permissions(section: Mapping[str, Any]) -> Permissions | None:
    """`pub`, `sub` and `resp` of a user JWT (or an account's default permissions);
    None when both lists are empty and there is no `resp`."""

    def direction(value: Any) -> SubjectPermission | None:
        if not isinstance(value, dict):
            return None
        allow = tuple(value.get("allow") or ()) or None
        deny = tuple(value.get("deny") or ()) or None
        return SubjectPermission(allow=allow, deny=deny) if allow or deny else None

    publish = direction(section.get("pub"))
    subscribe = direction(section.get("sub"))
    resp = section.get("resp")
    responses = None
    if isinstance(resp, dict):
        responses = ResponsePermission(
            max_msgs=int(resp.get("max", 1) or 1), expires=int(resp.get("ttl", 0) or 0) / 1e9
        )
        if publish is None or publish.allow is None:
            publish = SubjectPermission(
                allow=(), deny=publish.deny if publish is not None else None
            )
    if publish is None and subscribe is None and responses is None:
        return None
    return Permissions(publish=publish, subscribe=subscribe, allow_responses=responses)
