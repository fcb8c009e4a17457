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

import msgspec

from shardbroker.config import account_store, jwt
from shardbroker.config.accounts import is_subset_match
from shardbroker.config.jwt import JWTError
from shardbroker.config.jwt_claims import account_claims_valid, activation_granted
from shardbroker.config.options import (
    Account,
    AccountJetStream,
    AccountLimits,
    Export,
    Import,
    MapDestination,
    Permissions,
    ResolverStore,
    ResponsePermission,
    ServiceLatency,
    SubjectMapping,
    SubjectPermission,
)
from shardbroker.config.parse import KeyPath, Position
from shardbroker.config.rate_limit import rate_limit_from_claims
from shardbroker.config.users import config_error
from shardbroker.config.value import go_type, parse_duration

OPERATOR_KEYS = ("operator", "operators", "root", "roots", "root_operator", "root_operators")
RESOLVER_KEYS = ("resolver", "account_resolver", "accounts_resolver")
TRUSTED_KEYS = ("trusted_keys", "trusted")
PINNED_KEY = "resolver_pinned_accounts"
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
            out["resolver"], out["resolver_store"] = _resolver(key, value, at)
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
        elif name == PINNED_KEY:
            out["resolver_pinned_accounts"] = _pinned_accounts(value, at)
    if out.get("operators"):
        # nats-server checks the pinned keys along with the operators.
        for account in out.get("resolver_pinned_accounts", ()):
            if jwt.decode_public_key(account, "account") is None:
                at = next(
                    positions.get((k,), Position(filename, 0, 0))
                    for k in values
                    if k.lower() == PINNED_KEY
                )
                raise config_error(
                    at, f'pinned account key "{account}" is not a valid public account nkey'
                )
    return out


_RESOLVER_FORMS = (
    'error parsing account resolver, should be MEM or  URL("url") or a map containing '
    "dir and type state=[FULL|CACHE])"
)


def _resolver(key: str, value: Any, at: Position) -> tuple[str, ResolverStore | None]:
    """`resolver: MEMORY`, or the nats-based `resolver { type: full|cache, dir, ... }`;
    nats-server's refusals, in its words."""
    if isinstance(value, str):
        if value.strip().upper() in _MEMORY:
            return "MEMORY", None
        if value.strip().upper().startswith("URL"):
            raise config_error(
                at,
                f"{key}: the URL resolver is not supported by shardbroker; use MEMORY or "
                "the nats-based resolver { type: full, dir: ... }",
            )
        raise config_error(at, _RESOLVER_FORMS)
    if not isinstance(value, dict):
        kind = "bool" if isinstance(value, bool) else type(value).__name__
        raise config_error(at, f"error parsing operator resolver, wrong type {kind}")
    block = {k.lower(): v for k, v in value.items()}
    kind = str(block.get("type", "")).upper()
    if kind in _MEMORY:
        return "MEMORY", None
    if kind not in ("FULL", "CACHE"):
        raise config_error(at, _RESOLVER_FORMS)
    try:
        interval = parse_duration(str(block["interval"])) if "interval" in block else None
        ttl = parse_duration(str(block["ttl"])) if "ttl" in block else 0.0
        timeout = parse_duration(str(block["timeout"])) if "timeout" in block else 1.9
    except ValueError as exc:
        raise config_error(at, str(exc)) from None
    directory = str(block.get("dir", ""))
    if not directory:
        raise config_error(at, "dir has no value and needs to point to a directory")
    if os.path.exists(directory) and (
        not os.path.isdir(directory) or not os.stat(directory).st_mode & 0o200
    ):
        raise config_error(at, "dir needs to point to an accessible directory")
    allow_delete = bool(block.get("allow_delete", False))
    hard_delete = bool(block.get("hard_delete", False))
    if kind == "CACHE":
        for _name, present, what in (
            ("interval", interval is not None, "sync"),
            ("allow_delete", allow_delete, "allow_delete"),
            ("hard_delete", "hard_delete" in block, "hard_delete"),
        ):
            if present:
                raise config_error(at, f"CACHE does not accept {what}")
    else:
        if ttl:
            raise config_error(at, "FULL does not accept ttl")
        if "hard_delete" in block and not allow_delete:
            raise config_error(at, "hard_delete has no effect without delete")
    if timeout <= 0:
        raise config_error(at, f"Fetch timeout {block.get('timeout')} is too smal")
    limit = int(block.get("limit", 0) or 0)
    store = ResolverStore(
        dir=os.path.abspath(os.path.expanduser(directory)),
        cache=kind == "CACHE",
        allow_delete=allow_delete,
        hard_delete=hard_delete,
        limit=limit if limit > 0 else (1000 if kind == "CACHE" else 0),
        interval=interval if interval is not None else 120.0,
        ttl=ttl,
        timeout=timeout,
    )
    return kind.lower(), store


def _pinned_accounts(value: Any, at: Position) -> tuple[str, ...]:
    """`resolver_pinned_accounts`: one account key or a list of them."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise config_error(
            at, f"error parsing resolver_pinned_accounts: unsupported type {go_type(value)}"
        )
    for item in value:
        if not isinstance(item, str):
            raise config_error(
                at,
                "error parsing resolver_pinned_accounts: unsupported type in array "
                f"{go_type(item)}",
            )
    return tuple(dict.fromkeys(value))


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


def account_jwts_at_start(
    preload: tuple[tuple[str, str], ...], store: ResolverStore | None
) -> tuple[tuple[str, str], ...]:
    """The account JWTs a broker starts with: the preloaded ones, and for the nats-based
    resolver those in its directory, where a preloaded JWT counts only when it was
    issued later than the stored one (nats-server stores it then)."""
    jwts = dict(preload)
    if store is not None:
        for key, token in account_store.load(store).items():
            preloaded = jwts.get(key)
            if preloaded is None or not _issued_later(preloaded, token):
                jwts[key] = token
    return tuple(sorted(jwts.items()))


def _issued_later(token: str, than: str) -> bool:
    return jwt.decode(token, "account").iat > jwt.decode(than, "account").iat


def loadable_accounts(
    jwts: tuple[tuple[str, str], ...], trusted: frozenset[str]
) -> dict[str, jwt.Claims]:
    """The account JWTs nats-server would load: signed by a trusted key and valid
    (jwt_claims.account_claims_valid). Nobody logs in to the others (nats-server only
    logs them)."""
    out = {}
    for key, token in jwts:
        claims = jwt.decode(token, "account")
        if claims.iss in trusted and account_claims_valid(claims):
            out[key] = claims
    return out


def accounts_from_jwts(
    jwts: tuple[tuple[str, str], ...], trusted: frozenset[str], now: float | None = None
) -> tuple[Account, ...]:
    """The loadable account JWTs as Account structs.

    An import goes only where an export authorizes it, as in nats-server, which drops
    (and only logs) the others: a public export, one whose account token names the
    importer, or a private one (`token_req`) when the import's activation token is
    valid. A private export lists the accounts whose imports were activated.
    """
    claims = loadable_accounts(jwts, trusted)
    accounts = {key: account_from_claims(key, decoded) for key, decoded in claims.items()}
    activated: dict[tuple[str, int], set[str]] = {}
    imports: dict[str, tuple[Import, ...]] = {}
    for key, decoded in claims.items():
        kept = []
        for entry in _entries(decoded.nats, "imports", "account"):
            imp = _import(entry)
            exporter = accounts.get(imp.account)
            index = None if exporter is None else _covering_export(exporter, imp)
            if exporter is None or index is None:
                continue
            export = exporter.exports[index]
            position = export.account_token_position
            if position:
                parts = imp.subject.split(".")
                if position > len(parts) or parts[position - 1] != key:
                    continue
            elif export.accounts is not None:
                raw_export = _entries(claims[imp.account].nats, "exports")[index]
                if not activation_granted(key, entry, claims[imp.account], raw_export, now):
                    continue
                activated.setdefault((imp.account, index), set()).add(key)
            kept.append(imp)
        imports[key] = tuple(kept)
    out = []
    for key, account in accounts.items():
        exports = tuple(
            msgspec.structs.replace(export, accounts=tuple(sorted(activated.get((key, i), ()))))
            if export.accounts is not None
            else export
            for i, export in enumerate(account.exports)
        )
        out.append(msgspec.structs.replace(account, exports=exports, imports=imports[key]))
    return tuple(out)


def _entries(section: Mapping[str, Any], name: str, *required: str) -> list[dict[str, Any]]:
    """The `exports` or `imports` of an account JWT of a known type (stream or service)
    with a subject (and the other `required` keys) as strings; nats-server cannot add
    the others either."""
    items = section.get(name)
    if not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and item.get("type") in ("stream", "service")
        and all(isinstance(item.get(field), str) for field in ("subject", *required))
    ]


def _covering_export(exporter: Account, imp: Import) -> int | None:
    """The index of the export an import falls under: one of its kind with the same
    subject (nats-server looks for that first), else the first whose subject covers
    the import's."""
    candidates = [
        i
        for i, export in enumerate(exporter.exports)
        if export.service == imp.service and is_subset_match(imp.subject, export.subject)
    ]
    exact = [i for i in candidates if exporter.exports[i].subject == imp.subject]
    return exact[0] if exact else candidates[0] if candidates else None


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
            from_jwt=True,
        ),
        "exports": tuple(_export(e) for e in _entries(nats, "exports")),
        "imports": tuple(_import(i) for i in _entries(nats, "imports", "account")),
    }
    rate_limit = rate_limit_from_claims(nats)
    if rate_limit is not None:
        fields["rate_limit"] = rate_limit
    defaults = nats.get("default_permissions")
    if defaults:
        fields["default_permissions"] = jwt_permissions(defaults)
    mappings = nats.get("mappings") or {}
    if mappings:
        fields["mappings"] = tuple(
            SubjectMapping(
                source=source,
                destinations=tuple(
                    MapDestination(subject=d["subject"], weight=int(d.get("weight") or 100))
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
    elif entry.get("token_req"):
        # Private: open to the accounts whose imports carry an activation token
        # (accounts_from_jwts lists them).
        out["accounts"] = ()
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
