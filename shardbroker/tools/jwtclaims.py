"""The claims `shardbroker jwt` writes into account and user JWTs, built from command-line
values the way nsc builds them (jwt-operator-mode.md §5, §6): every limit -1 (unlimited)
unless given, JetStream off unless a storage limit is given, exports and imports from
short `ACCOUNT:SUBJECT[:LOCAL]` forms, permission subjects checked, an expiry from a
duration or a date. Pure: values in, dicts out; a refused value raises ClaimsError with
the reason.

Zero-valued limits are left out, as nsc's encoder (Go's `omitempty`) leaves them out:
in a version 2 token an absent limit means 0, nothing allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.value import parse_duration
from shardbroker.protocol.subjects import is_valid_subject

UNLIMITED = -1
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(I?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")
_DAYS = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(.*)")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
# What nsc puts into a system account it creates: the account-scoped monitoring
# services and streams, for other accounts to import.
SYSTEM_ACCOUNT_EXPORTS = (
    {
        "name": "account-monitoring-services",
        "subject": "$SYS.REQ.ACCOUNT.*.*",
        "type": "service",
        "response_type": "Stream",
        "account_token_position": 4,
    },
    {
        "name": "account-monitoring-streams",
        "subject": "$SYS.ACCOUNT.*.>",
        "type": "stream",
        "account_token_position": 3,
    },
)


class ClaimsError(ValueError):
    """A command-line value that cannot go into a JWT."""


def check_name(name: str, what: str) -> str:
    """Names become directory names and the JWT's `name`: letters, digits, `_`, `-`, `.`,
    not starting with `.`, at most 64 characters."""
    if not _NAME.fullmatch(name):
        raise ClaimsError(
            f"{what} name {name!r}: use letters, digits, '_', '-' and '.' (not first), "
            "at most 64 characters"
        )
    return name


def parse_limit(text: str, what: str) -> int:
    """A count or size limit: -1 (unlimited), or a number with an optional binary unit
    (`1024`, `64K`, `512MB`, `2GiB`)."""
    text = text.strip()
    if text == "-1":
        return UNLIMITED
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ClaimsError(f"{what}: {text!r} is not -1 or a number (units K, M, G, T allowed)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def parse_expiry(text: str, now: float) -> int:
    """The Unix time a JWT expires: `text` is a duration from now (Go's form, plus days
    and weeks: `90s`, `12h`, `7d`, `1w2d`) or a date (`2027-01-31`, an ISO date and
    time; UTC unless it names a zone)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ClaimsError(f"--expires: {text!r} is not a valid date") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        at = int(when.timestamp())
    else:
        match = _DAYS.fullmatch(text)
        assert match is not None  # the last group takes anything
        weeks, days, rest = match.groups()
        seconds = (int(weeks or 0) * 7 + int(days or 0)) * 86400.0
        if rest:
            try:
                seconds += parse_duration(rest)
            except ValueError:
                raise ClaimsError(
                    f"--expires: {text!r} is neither a duration (90s, 12h, 7d) nor a date "
                    "(2027-01-31)"
                ) from None
        elif weeks is None and days is None:
            raise ClaimsError("--expires: empty")
        at = int(now + seconds)
    if at <= now:
        raise ClaimsError(f"--expires: {text!r} is not in the future")
    return at


def _check_count(value: int, what: str) -> int:
    if value < UNLIMITED:
        raise ClaimsError(f"{what}: {value} is below -1 (use -1 for unlimited)")
    return value


def _drop_zeros(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value not in (0, False)}


def account_limits(
    *,
    conn: int = UNLIMITED,
    subs: int = UNLIMITED,
    payload: int = UNLIMITED,
    data: int = UNLIMITED,
    leaf: int = UNLIMITED,
    imports: int = UNLIMITED,
    exports: int = UNLIMITED,
    disallow_bearer: bool = False,
    js_memory: int = 0,
    js_disk: int = 0,
    js_streams: int = UNLIMITED,
    js_consumers: int = UNLIMITED,
) -> dict[str, Any]:
    """An account's `limits`: JetStream is on iff a memory or disk limit is non-zero (-1
    is unlimited storage); its stream and consumer counts are written only then."""
    limits: dict[str, Any] = {
        "subs": _check_count(subs, "--subs"),
        "data": _check_count(data, "--data"),
        "payload": _check_count(payload, "--payload"),
        "imports": _check_count(imports, "--imports"),
        "exports": _check_count(exports, "--exports"),
        "wildcards": True,
        "disallow_bearer": disallow_bearer,
        "conn": _check_count(conn, "--conn"),
        "leaf": _check_count(leaf, "--leaf"),
    }
    if js_memory or js_disk:
        limits["mem_storage"] = _check_count(js_memory, "--js-mem")
        limits["disk_storage"] = _check_count(js_disk, "--js-disk")
        limits["streams"] = _check_count(js_streams, "--js-streams")
        limits["consumer"] = _check_count(js_consumers, "--js-consumers")
    return _drop_zeros(limits)


def _subject(subject: str, what: str, queue_allowed: bool = False) -> str:
    name, _, queue = subject.partition(" ") if queue_allowed else (subject, "", "")
    if not is_valid_subject(name.encode()) or (queue and not is_valid_subject(queue.encode())):
        raise ClaimsError(f"{what}: {subject!r} is not a valid subject")
    return subject


def export_claim(subject: str, service: bool) -> dict[str, Any]:
    """A stream or service export of `subject` (services answer one response each)."""
    what = "--export-service" if service else "--export"
    claim: dict[str, Any] = {"name": subject, "subject": _subject(subject, what)}
    claim["type"] = "service" if service else "stream"
    if service:
        claim["response_type"] = "Singleton"
    return claim


def import_claim(spec: str, service: bool, account_key: Callable[[str], str]) -> dict[str, Any]:
    """An import from `ACCOUNT:SUBJECT[:LOCAL]`: ACCOUNT is an account name (turned into its
    key by `account_key`) or an account's public key; LOCAL the subject the importer
    uses, when it differs."""
    what = "--import-service" if service else "--import"
    account, _, rest = spec.partition(":")
    subject, _, local = rest.partition(":")
    if not account or not subject:
        raise ClaimsError(f"{what}: {spec!r} is not ACCOUNT:SUBJECT[:LOCAL]")
    key = account if jwt.decode_public_key(account, "account") else account_key(account)
    claim: dict[str, Any] = {
        "name": subject,
        "subject": _subject(subject, what),
        "account": key,
        "type": "service" if service else "stream",
    }
    if local:
        claim["local_subject"] = _subject(local, what)
    return claim


def _direction(allow: Sequence[str], deny: Sequence[str], what: str) -> dict[str, Any]:
    queue_allowed = what == "sub"
    section: dict[str, Any] = {}
    if allow:
        section["allow"] = [_subject(s, f"--{what}-allow", queue_allowed) for s in allow]
    if deny:
        section["deny"] = [_subject(s, f"--{what}-deny", queue_allowed) for s in deny]
    return section


def user_fields(
    *,
    pub_allow: Sequence[str] = (),
    pub_deny: Sequence[str] = (),
    sub_allow: Sequence[str] = (),
    sub_deny: Sequence[str] = (),
    subs: int = UNLIMITED,
    payload: int = UNLIMITED,
    data: int = UNLIMITED,
    bearer: bool = False,
) -> dict[str, Any]:
    """A user JWT's section: permissions (empty: the account's defaults, else anything),
    limits (-1 unlimited) and a bearer flag (no nonce signature needed). Subscribe
    entries may name a queue group: `"subject queue"`."""
    fields: dict[str, Any] = {
        "pub": _direction(pub_allow, pub_deny, "pub"),
        "sub": _direction(sub_allow, sub_deny, "sub"),
        "subs": _check_count(subs, "--subs"),
        "data": _check_count(data, "--data"),
        "payload": _check_count(payload, "--payload"),
    }
    if bearer:
        fields["bearer_token"] = True
    return fields
