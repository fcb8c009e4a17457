"""The parts of a user JWT's login that go beyond its signature (jwt-operator-mode.md
§5-§7): whether its claims are well formed, the template of a scoped signing key, and
the `src` and `times` limits checked against the client's address and the clock.

Pure; consulted by security/auth.py once per CONNECT. The rules are nats-server's
(`processUserPermissionsTemplate`, `validateSrc`, `validateTimes`) and those of the jwt
library it decodes with (`UserClaims.Validate`, `HasEmptyPermissions`), so that the
same JWT logs in, or fails with `Authorization Violation`, on both servers.

A user section here is a user JWT's `nats` section: `pub`/`sub` (`allow`/`deny`
lists), `resp`, `subs`/`data`/`payload`, `src`, `times`, `times_location`,
`bearer_token`, `allowed_connection_types`, `tags`, `issuer_account`.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import time
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.jwt_claims import permissions_valid
from shardbroker.protocol.subjects import is_valid_subject

# What a scoped signing key's template replaces in a user JWT (the jwt library's
# UserPermissionLimits): a user signed by such a key may set none of them.
TEMPLATE_FIELDS = (
    "pub", "sub", "resp", "src", "times", "times_location", "subs", "data", "payload",
    "bearer_token", "proxy_required", "allowed_connection_types",
)  # fmt: skip
# nats-server's bound on the subjects one template may expand to.
MAX_TEMPLATE_EXPANSIONS = 4096
_PLACEHOLDER = re.compile(r"\{\{([^}]+)\}\}")
# Go's "15:04:05" layout: a one- or two-digit hour, and fractional seconds tolerated.
_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:[.,]\d+)?")
_LOCAL = "Local"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TemplateError(ValueError):
    """A scoped key's template that cannot be applied to this user."""


# -- well-formed claims ---------------------------------------------------------------


def user_claims_valid(section: Mapping[str, Any]) -> bool:
    """The jwt library's checks of a user JWT: valid permission subjects (a queue
    only for subscribe), `src` CIDRs, `times` ranges, an IANA `times_location`, and an
    account key in `issuer_account`."""
    if not permissions_valid(section):
        return False
    cidrs = cidr_list(section.get("src"))
    if cidrs is None or any(_network(cidr) is None for cidr in cidrs):
        return False
    ranges = section.get("times") or []
    if not isinstance(ranges, list) or any(_clock_range(r) is None for r in ranges):
        return False
    if _zone(section.get("times_location") or "") is None:
        return False
    issuer_account = section.get("issuer_account")
    return not issuer_account or jwt.decode_public_key(str(issuer_account), "account") is not None


# -- scoped signing keys ----------------------------------------------------------------


def has_empty_permissions(section: Mapping[str, Any]) -> bool:
    """Does the user JWT set none of the template's fields (the jwt library's
    HasEmptyPermissions)? An empty list counts as set, as Go tells it from none."""
    for direction in ("pub", "sub"):
        lists = section.get(direction)
        if lists is None:
            continue
        if not isinstance(lists, dict) or any(lists.get(n) is not None for n in ("allow", "deny")):
            return False
    if any(section.get(name) is not None for name in ("resp", "src", "times")):
        return False
    if section.get("allowed_connection_types") is not None:
        return False
    return not any(
        section.get(name)
        for name in ("times_location", "subs", "data", "payload", "bearer_token", "proxy_required")
    )


def scoped_section(
    user: jwt.Claims, account: jwt.Claims, template: Mapping[str, Any]
) -> dict[str, Any]:
    """The user section a scoped key's user logs in with: the user's own, with the
    template's permissions and limits in place of its (empty) ones and the template's
    placeholders expanded. Raises TemplateError, which refuses the login."""
    if not has_empty_permissions(user.nats):
        raise TemplateError("scoped users require no permissions or limits set")
    section = {k: v for k, v in user.nats.items() if k not in TEMPLATE_FIELDS}
    section.update(template)
    for direction in ("sub", "pub"):
        lists = template.get(direction)
        if not isinstance(lists, dict):
            continue
        allow = lists.get("allow") or []
        deny = lists.get("deny") or []
        expanded_allow = expand_subjects(allow, user, account, refuse_invalid=False)
        expanded_deny = expand_subjects(deny, user, account, refuse_invalid=True)
        if allow and not expanded_allow and ">" not in expanded_deny:
            # Nothing left to allow must not mean everything is allowed.
            expanded_deny.append(">")
        section[direction] = {**lists, "allow": expanded_allow, "deny": expanded_deny}
    return section


def expand_subjects(
    subjects: list[Any], user: jwt.Claims, account: jwt.Claims, refuse_invalid: bool
) -> list[str]:
    """A template's subject list with its placeholders filled in: `{{name()}}`,
    `{{subject()}}`, `{{account-name()}}`, `{{account-subject()}}`, `{{tag(k)}}` and
    `{{account-tag(k)}}` (one subject per combination of tag values).

    Once any entry holds a placeholder, every entry that is not a valid subject
    afterwards is dropped, or raises TemplateError where `refuse_invalid` (deny lists);
    a tag the user does not have gives such an invalid subject.
    """
    if not any(isinstance(s, str) and _PLACEHOLDER.search(s) for s in subjects):
        return [str(s) for s in subjects]
    out: list[str] = []
    for subject in subjects:
        subject = str(subject)
        placeholders = [m.group(0) for m in _PLACEHOLDER.finditer(subject)]
        choices = [_values(p, subject, user, account, refuse_invalid) for p in placeholders]
        count = 1
        for values in choices:
            count *= len(values)
            if count > MAX_TEMPLATE_EXPANSIONS or len(out) + count > MAX_TEMPLATE_EXPANSIONS:
                raise TemplateError("template expansion exceeds limit")
        for combination in itertools.product(*choices):
            expanded = subject
            for placeholder, value in zip(placeholders, combination, strict=True):
                expanded = expanded.replace(placeholder, value)
            if is_valid_subject(expanded.encode()):
                out.append(expanded)
            elif refuse_invalid:
                raise TemplateError(f"generated invalid subject {expanded!r}")
    return out


def _values(
    placeholder: str, subject: str, user: jwt.Claims, account: jwt.Claims, refuse_missing: bool
) -> list[str]:
    operation = placeholder[2:-2].strip()
    lower = operation.lower()
    if lower == "name()":
        return [user.name]
    if lower == "subject()":
        return [user.sub]
    if lower == "account-name()":
        return [account.name]
    if lower == "account-subject()":
        return [str(user.nats.get("issuer_account", ""))]
    tag = _tag_operation(operation)
    if tag is None:
        raise TemplateError(f"template operation in {subject!r}: {operation!r} is not defined")
    owner, key = tag
    tags = _tags(account if owner == "account-tag" else user)
    prefix = key.lower() + ":"
    values = [t[len(prefix) :] for t in tags if t.startswith(prefix)]
    if values:
        return values
    if refuse_missing:
        raise TemplateError(f"generated invalid subject {subject!r}: {key!r} is not defined")
    return [" "]  # an invalid subject: the entry is dropped


def _tag_operation(operation: str) -> tuple[str, str] | None:
    """("tag" | "account-tag", key) for `tag(key)` / `account-tag(key)`. The name is
    matched in any case, but only its lower-case spelling is cut off the key, as
    nats-server does."""
    for name in ("tag", "account-tag"):
        opening = name + "("
        if operation[: len(opening)].lower() == opening and operation.endswith(")"):
            key = operation.removeprefix(opening)
            return name, key[:-1] if key.endswith(")") else key
    return None


def _tags(claims: jwt.Claims) -> list[str]:
    tags = claims.raw.get("tags") if claims.version == 1 else claims.nats.get("tags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


# -- src ------------------------------------------------------------------------------


def cidr_list(value: Any) -> list[str] | None:
    """`src` as a list of CIDRs: a JSON list as it is, or one comma-separated string
    (lower-cased, trimmed, without blanks or repeats); None when it is neither."""
    if value is None:
        return []
    if isinstance(value, str):
        out: list[str] = []
        for part in value.lower().split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
        return out
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def src_allows(section: Mapping[str, Any], host: str) -> bool:
    """Does the user's `src` let a client at `host` in (nats-server validateSrc)? An
    empty list lets everyone in; an unreadable CIDR stops the search."""
    cidrs = cidr_list(section.get("src"))
    if cidrs is None:
        return False
    if not cidrs:
        return True
    address = _address(host)
    if address is None:
        return False
    for cidr in cidrs:
        network = _network(cidr)
        if network is None:
            return False
        if _contains(network, address):
            return True
    return False


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(cidr: str) -> Network | None:
    """A CIDR as Go's net.ParseCIDR reads it: an address and a decimal prefix length."""
    address, slash, prefix = cidr.partition("/")
    if not slash or not (prefix.isascii() and prefix.isdigit()) or "%" in address:
        return None
    try:
        return ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        return None


def _contains(network: Network, address: Address) -> bool:
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            # An IPv4-mapped network is an IPv4 one to Go.
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network.version == address.version and address in network


# -- times ------------------------------------------------------------------------------


def connect_window(section: Mapping[str, Any], now: float | None = None) -> tuple[bool, float]:
    """(may the user connect now, when its current range ends as Unix time; 0: no
    `times`) by `times` and `times_location` (nats-server validateTimes).

    Each range is today's `start`..`end` in the zone (server local time by default),
    ends excluded; one whose start is after its end crosses midnight. Of the ranges
    that hold `now`, the one ending last counts.
    """
    ranges = section.get("times") or []
    if not ranges:
        return True, 0.0
    zone = _zone(section.get("times_location") or "")
    if zone is None or not isinstance(ranges, list):
        return False, 0.0
    now = time.time() if now is None else now
    # Local time as naive datetimes: timestamp() then follows the local zone's rules.
    moment = datetime.fromtimestamp(now, zone if isinstance(zone, tzinfo) else None)
    ends = 0.0
    for entry in ranges:
        clocks = _clock_range(entry)
        if clocks is None:
            return False, 0.0
        start, end = (
            moment.replace(hour=h, minute=m, second=s, microsecond=0) for h, m, s in clocks
        )
        range_end = _range_end(start, end, now)
        if range_end is not None and range_end > ends:
            ends = range_end
    return ends > 0, ends


def _range_end(start: datetime, end: datetime, now: float) -> float | None:
    """The end of a range holding `now`, or None (nats-server validateTimeRangeAt)."""
    start_at, end_at = start.timestamp(), end.timestamp()
    if start_at < now < end_at:
        return end_at
    if start_at > end_at:
        # Crosses midnight: now is either after the start of yesterday's range...
        if end_at > now:
            return end_at
        # ...or after the start of today's, which ends tomorrow.
        end_at = (end + timedelta(days=1)).timestamp()
        if start_at < now < end_at:
            return end_at
    return None


def _clock_range(entry: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    if not isinstance(entry, dict):
        return None
    start, end = _clock(entry.get("start")), _clock(entry.get("end"))
    return None if start is None or end is None else (start, end)


def _clock(text: Any) -> tuple[int, int, int] | None:
    """A clock time `HH:MM:SS` as Go parses its "15:04:05" layout."""
    match = _CLOCK.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    hour, minute, second = (int(g) for g in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _zone(name: str) -> tzinfo | str | None:
    """The zone of `times_location`: _LOCAL for server local time, None if unknown."""
    if name in ("", _LOCAL):
        return _LOCAL
    if name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None
