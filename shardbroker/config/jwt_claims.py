"""What an account JWT says beyond its limits: whether nats-server would load it at all,
who may sign for the account (its own key and its signing keys, some of them scoped to
a user template), which tokens its revocation lists revoke, and whether an activation
token lets another account import one of its private exports (jwt-operator-mode.md §5).

Pure; used by config/operator.py when account JWTs become accounts (validity,
activations) and by authentication (signers and revocations at CONNECT). The rules are
nats-server's (`Account.hasIssuer`, `isRevoked`, `checkActivation`) and the jwt
library's validation of account claims (`AccountClaims.Validate`): an account that
fails it is not loaded, so none of its users log in; a failing activation only drops
its import. Both happen silently for clients, as in nats-server, which only logs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.jwt import JWTError

# A revocation of this key covers every token of the list's kind.
REVOKE_ALL = "*"
USER_SCOPE = "user_scope"
# The limits of a scoped key's template when it names none (the jwt library's
# NewUserScope): unlimited, not the nothing a user JWT without them gets.
_TEMPLATE_DEFAULT_LIMITS = {"subs": -1, "data": -1, "payload": -1}


def account_signers(account: jwt.Claims) -> dict[str, dict[str, Any] | None]:
    """The keys that may sign users and activations for this account: its own key and
    each signing key, with the user template of a scoped one (None: not scoped).

    A template's missing limits are unlimited. Entries that are neither a key nor a
    user scope are left out.
    """
    signers: dict[str, dict[str, Any] | None] = {}
    for entry in account.nats.get("signing_keys") or ():
        if isinstance(entry, str):
            signers[entry] = None
        elif isinstance(entry, dict) and entry.get("kind") == USER_SCOPE:
            template = entry.get("template")
            template = template if isinstance(template, dict) else {}
            signers[str(entry.get("key", ""))] = {**_TEMPLATE_DEFAULT_LIMITS, **template}
    signers[account.sub] = None
    return signers


def is_revoked(revocations: Any, subject: str, issued_at: int) -> bool:
    """Does a revocation list (key or `*` -> Unix time) revoke a token about `subject`
    issued at `issued_at`? A token issued at or before the time is revoked."""
    if not isinstance(revocations, dict):
        return False
    for key in (subject, REVOKE_ALL):
        revoked_at = revocations.get(key)
        if type(revoked_at) is int and issued_at <= revoked_at:
            return True
    return False


def activation_granted(
    importer: str,
    imported: Mapping[str, Any],
    exporter: jwt.Claims,
    export: Mapping[str, Any],
    now: float | None = None,
) -> bool:
    """Does the `token` of import `imported` (an entry of the importing account's
    `imports`) let account `importer` import `export` of `exporter`?

    The token must be an activation JWT about `importer`, of the import's kind, for a
    subject that contains the import's, issued by the exporter (or by one of its
    signing keys, naming it in `issuer_account`), current, and not revoked by the
    export's `revocations`.
    """
    token = imported.get("token")
    if not token or imported.get("account") != exporter.sub:
        return False
    if not _import_valid(importer, imported):
        return False
    activation = jwt.decode(str(token), "activation")  # _import_valid decoded it
    _kind, issuer_account = _activation_fields(activation)
    if issuer_account and (
        issuer_account != exporter.sub or activation.iss not in account_signers(exporter)
    ):
        return False
    now = time.time() if now is None else now
    if activation.expired(now) or activation.not_yet_valid(now):
        return False
    return not is_revoked(export.get("revocations"), activation.sub, activation.iat)


def next_activation_change(jwts: Iterable[str], now: float) -> float | None:
    """The next time an import's activation token expires or becomes valid, over these
    account JWTs (what imports are granted changes then); None: never."""
    times: list[int] = []
    for token in jwts:
        try:
            account = jwt.decode(token, "account")
        except jwt.JWTError:
            continue
        for imported in account.nats.get("imports") or ():
            if not isinstance(imported, dict) or not imported.get("token"):
                continue
            try:
                activation = jwt.decode(str(imported["token"]), "activation")
            except jwt.JWTError:
                continue
            times.extend(t for t in (activation.exp, activation.nbf) if t and t > now)
    return float(min(times)) if times else None


def _activation_fields(activation: jwt.Claims) -> tuple[Any, str]:
    """(kind granted, issuer account) of an activation token; version 1 tokens keep
    the kind in `nats.type` and the issuer account at the top."""
    if activation.version == 1:
        return activation.nats.get("type"), str(activation.raw.get("issuer_account") or "")
    return activation.nats.get("kind"), str(activation.nats.get("issuer_account") or "")


def _valid_subject(subject: Any) -> bool:
    """The jwt library's subject check: not empty, no spaces, no empty token."""
    return (
        isinstance(subject, str)
        and bool(subject)
        and " " not in subject
        and "" not in subject.split(".")
    )


def _has_wildcards(subject: str) -> bool:
    """The jwt library's HasWildCards."""
    return (
        subject in ("*", ">")
        or subject.endswith((".>", ".*"))
        or subject.startswith("*.")
        or ".*." in subject
    )


def permissions_valid(section: Mapping[str, Any]) -> bool:
    """`pub`/`sub` lists with valid subjects, a queue only in subscribe entries
    (`"subject queue"`): the jwt library's Permissions.Validate."""
    for direction, queue_allowed in (("pub", False), ("sub", True)):
        lists = section.get(direction)
        if lists is None:
            continue
        if not isinstance(lists, dict):
            return False
        for name in ("allow", "deny"):
            entries = lists.get(name) or []
            if not isinstance(entries, list):
                return False
            for entry in entries:
                parts = entry.split(" ") if isinstance(entry, str) else [None, None, None]
                if len(parts) > 2 or (len(parts) == 2 and not queue_allowed):
                    return False
                if not all(_valid_subject(part) for part in parts):
                    return False
    return True


# -- loading an account JWT ---------------------------------------------------------------

# The limits of an account JWT whose absence makes its `limits` empty.
_LIMIT_NAMES = (
    "subs", "data", "payload", "imports", "exports", "wildcards", "disallow_bearer", "conn",
    "leaf", "mem_storage", "disk_storage", "streams", "consumer", "max_ack_pending",
    "mem_max_stream_bytes", "disk_max_stream_bytes", "max_bytes_required",
)  # fmt: skip
_JETSTREAM_LIMITS = _LIMIT_NAMES[9:]
_RESPONSE_TYPES = ("", "Singleton", "Stream", "Chunked")
_CLUSTER_TRAFFIC = ("", "system", "owner")


def account_claims_valid(account: jwt.Claims) -> bool:
    """Would nats-server load this account JWT (the jwt library's blocking validation
    issues, expiry aside: authentication checks that at each login)? Its imports, exports,
    limits on their number, signing keys, default permissions and mappings."""
    nats = account.nats
    imports, exports = nats.get("imports") or [], nats.get("exports") or []
    limits = nats.get("limits") or {}
    if not (isinstance(imports, list) and isinstance(exports, list) and isinstance(limits, dict)):
        return False
    return (
        _imports_valid(account.sub, imports)
        and _exports_valid(exports)
        and _limits_valid(limits, imports, exports)
        and _signing_keys_valid(nats.get("signing_keys") or [])
        and permissions_valid(nats.get("default_permissions") or {})
        and _mappings_valid(nats.get("mappings") or {})
        and nats.get("cluster_traffic", "") in _CLUSTER_TRAFFIC
    )


def _imports_valid(account_key: str, imports: list[Any]) -> bool:
    by_exporter: dict[str, list[str]] = {}
    for imp in imports:
        if not isinstance(imp, dict) or not _import_valid(account_key, imp):
            return False
        if imp.get("type") == "service":
            # Service imports from one account must not overlap.
            local = imp.get("to") or _references_as_wildcards(imp.get("local_subject") or "")
            local = local or imp["subject"]
            others = by_exporter.setdefault(imp["account"], [])
            if any(_contained_in(local, o) or _contained_in(o, local) for o in others):
                return False
            others.append(local)
    return True


def _import_valid(account_key: str, imp: Mapping[str, Any]) -> bool:
    """The jwt library's Import.Validate for an import of account `account_key`."""
    kind: Any = imp.get("type")
    subject: Any = imp.get("subject")
    if kind not in ("stream", "service") or (kind == "service" and imp.get("allow_trace")):
        return False
    if not isinstance(imp.get("account"), str) or not imp["account"]:
        return False
    if not _valid_subject(subject) or (imp.get("share") and kind != "service"):
        return False
    local = imp.get("local_subject")
    if local and (imp.get("to") or not _renaming_valid(local, subject)):
        return False
    token = imp.get("token")
    if not token:
        return True
    try:
        activation = jwt.decode(str(token), "activation")
    except JWTError:
        return False
    granted_kind, issuer_account = _activation_fields(activation)
    if imp["account"] not in (activation.iss, issuer_account) or activation.sub != account_key:
        return False
    granted: Any = activation.nats.get("subject")
    if granted_kind != kind or not _valid_subject(granted):
        return False
    if issuer_account and jwt.decode_public_key(issuer_account, "account") is None:
        return False
    checked = imp["to"] if kind == "service" and imp.get("to") else subject
    return _valid_subject(checked) and _contained_in(checked, granted)


def _renaming_valid(local: Any, subject: str) -> bool:
    """A `local_subject` for `subject`: both end in `>` or neither, and its `*` and
    `$N` references account for every `*` of the subject."""
    if not _valid_subject(local):
        return False
    if (local == ">" or local.endswith(".>")) != (subject == ">" or subject.endswith(".>")):
        return False
    wildcards = subject.split(".").count("*")
    references = 0
    for token in local.split("."):
        if token == "*":
            references += 1
        elif len(token) > 1 and token[0] == "$" and token[1:].isdigit():
            if int(token[1:]) > wildcards:
                return False
            references += 1
    return references == wildcards


def _references_as_wildcards(local: str) -> str:
    return ".".join(
        "*" if len(t) > 1 and t[0] == "$" and t[1:].isdigit() else t for t in local.split(".")
    )


def _exports_valid(exports: list[Any]) -> bool:
    subjects: dict[str, list[str]] = {"stream": [], "service": []}
    for export in exports:
        if not isinstance(export, dict) or not _export_valid(export):
            return False
        subjects[export["type"]].append(export["subject"])
    for same_kind in subjects.values():
        # No export of a kind may lie within another of the same kind.
        for i, one in enumerate(same_kind):
            if any(i != j and _contained_in(one, other) for j, other in enumerate(same_kind)):
                return False
    return True


def _export_valid(export: Mapping[str, Any]) -> bool:
    """The jwt library's Export.Validate."""
    kind: Any = export.get("type")
    subject: Any = export.get("subject")
    response_type = export.get("response_type", "")
    if kind not in ("stream", "service") or not _valid_subject(subject):
        return False
    if kind == "service" and response_type not in _RESPONSE_TYPES:
        return False
    if kind == "stream" and (response_type or export.get("allow_trace")):
        return False
    latency = export.get("service_latency")
    if latency is not None:
        if kind != "service" or not isinstance(latency, dict):
            return False
        sampling = latency.get("sampling", 0)
        if isinstance(sampling, str) and sampling.lower() == "headers":
            sampling = 0
        if type(sampling) is not int or (sampling and not 1 <= sampling <= 100):
            return False
        results: Any = latency.get("results")
        if not _valid_subject(results) or _has_wildcards(results):
            return False
    threshold = export.get("response_threshold", 0)
    if type(threshold) is not int or threshold < 0 or (threshold and kind != "service"):
        return False
    position = export.get("account_token_position", 0)
    if type(position) is not int or position < 0:
        return False
    if position:
        tokens = subject.split(".")
        if not _has_wildcards(subject) or position > len(tokens) or tokens[position - 1] != "*":
            return False
    return True


def _limits_valid(limits: Mapping[str, Any], imports: list[Any], exports: list[Any]) -> bool:
    """Flat or tiered JetStream limits, not both; no more imports and exports than the
    limits allow (0 when absent), wildcard exports only where allowed."""
    tiers = limits.get("tiered_limits") or {}
    if tiers and (any(limits.get(n) for n in _JETSTREAM_LIMITS) or "" in tiers):
        return False
    empty = not tiers and not any(limits.get(n) for n in _LIMIT_NAMES)
    most_imports = limits.get("imports", 0)
    most_exports = limits.get("exports", 0)
    if type(most_imports) is not int or type(most_exports) is not int:
        return False
    if not empty and most_imports >= 0 and len(imports) > most_imports:
        return False
    if most_imports != -1 and len(imports) > most_imports:
        return False
    if most_exports != -1:
        if len(exports) > most_exports:
            return False
        if not limits.get("wildcards") and any(_has_wildcards(e["subject"]) for e in exports):
            return False
    return True


def _signing_keys_valid(keys: Any) -> bool:
    if not isinstance(keys, list):
        return False
    for entry in keys:
        if isinstance(entry, dict):
            if entry.get("kind") != USER_SCOPE:
                return False  # nats-server cannot decode the JWT
            key = entry.get("key")
        elif isinstance(entry, str):
            key = entry
        else:
            continue
        if jwt.decode_public_key(str(key), "account") is None:
            return False
    return True


def _mappings_valid(mappings: Any) -> bool:
    """Valid subjects, weights of 100 or less adding up to 100 or less (per cluster)."""
    if not isinstance(mappings, dict):
        return False
    for source, destinations in mappings.items():
        if not _valid_subject(source) or not isinstance(destinations, list):
            return False
        totals: dict[str, int] = {}
        for destination in destinations:
            if not isinstance(destination, dict) or not _valid_subject(destination.get("subject")):
                return False
            weight = destination.get("weight") or 100
            if type(weight) is not int or not 0 < weight <= 100:
                return False
            cluster = str(destination.get("cluster") or "")
            totals[cluster] = totals.get(cluster, 0) + weight
        if any(total > 100 for total in totals.values()):
            return False
    return True


def _contained_in(subject: str, granted: str) -> bool:
    """Is every subject `subject` covers also covered by `granted` (the jwt library's
    IsContainedIn, where wildcards in `subject` count as literal tokens)?"""
    mine, theirs = subject.split("."), granted.split(".")
    if len(mine) > len(theirs) and theirs[-1] != ">":
        return False
    if len(mine) < len(theirs):
        return False
    for index, token in enumerate(theirs):
        if index == len(theirs) - 1 and token == ">":
            return True
        if token not in (mine[index], "*"):
            return False
    return True
