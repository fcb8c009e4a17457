"""config/jwt_claims.py: signers, revocations, activation tokens and the validity of
account JWTs; config/operator.py: imports kept only where an export authorizes them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shardbroker.config import jwt
from shardbroker.config.jwt_claims import (
    account_claims_valid,
    account_signers,
    activation_granted,
    is_revoked,
    next_activation_change,
)
from shardbroker.config.operator import accounts_from_jwts, loadable_accounts

OPERATOR = jwt.new_seed("operator")
TRUSTED = frozenset({jwt.public_key(OPERATOR)})
EXPORTER = jwt.new_seed("account")
EXPORTER_KEY = jwt.public_key(EXPORTER)
SIGNER = jwt.new_seed("account")  # a signing key of EXPORTER
IMPORTER = jwt.new_seed("account")
IMPORTER_KEY = jwt.public_key(IMPORTER)
UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
NOW = 1_800_000_000


def account(seed: str, **fields: Any) -> jwt.Claims:
    fields.setdefault("limits", UNLIMITED)
    return jwt.decode(jwt.encode("account", jwt.public_key(seed), OPERATOR, fields), "account")


def activation(subject: str = "priv.>", kind: str = "stream", signer: str = EXPORTER,
               sub: str = IMPORTER_KEY, **options: Any) -> str:  # fmt: skip
    fields: dict[str, Any] = {"subject": subject, "kind": kind}
    if signer != EXPORTER:
        fields["issuer_account"] = EXPORTER_KEY
    options.setdefault("issued_at", NOW - 100)
    return jwt.encode("activation", sub, signer, fields, **options)


def stream_import(token: str | None, subject: str = "priv.a") -> dict[str, Any]:
    entry = {"subject": subject, "account": EXPORTER_KEY, "type": "stream"}
    if token is not None:
        entry["token"] = token
    return entry


PRIVATE = {"subject": "priv.>", "type": "stream", "token_req": True}


def test_account_signers_are_its_key_and_signing_keys_with_their_templates() -> None:
    scoped = jwt.public_key(jwt.new_seed("account"))
    claims = account(EXPORTER, signing_keys=[
        jwt.public_key(SIGNER),
        {"kind": "user_scope", "key": scoped, "role": "r", "template": {"payload": 10}},
        {"kind": "other", "key": "x"}, 5,
    ])  # fmt: skip
    assert account_signers(claims) == {
        jwt.public_key(SIGNER): None,
        scoped: {"subs": -1, "data": -1, "payload": 10},
        EXPORTER_KEY: None,
    }


@pytest.mark.parametrize(
    ("revocations", "revoked"),
    [
        ({}, False),
        ({"UKEY": NOW}, True),  # issued at the revocation time: revoked
        ({"UKEY": NOW - 1}, False),
        ({"*": NOW + 5}, True),
        ({"*": NOW - 5, "UKEY": NOW - 5}, False),
        ({"OTHER": NOW + 5}, False),
        ({"UKEY": "soon"}, False),
        (None, False),
    ],
)
def test_revocations_cover_tokens_issued_at_or_before_their_time(
    revocations: Any, revoked: bool
) -> None:
    assert is_revoked(revocations, "UKEY", NOW) is revoked


def test_activation_granted_by_the_exporter_or_its_signing_key() -> None:
    exporter = account(EXPORTER, exports=[PRIVATE], signing_keys=[jwt.public_key(SIGNER)])
    for token in (activation(), activation(signer=SIGNER), activation(">")):
        assert activation_granted(IMPORTER_KEY, stream_import(token), exporter, PRIVATE, NOW)


@pytest.mark.parametrize(
    "case",
    ["no token", "expired", "not yet valid", "revoked", "revoked all", "other account",
     "stranger", "unknown signing key", "narrower subject", "other kind", "not a JWT",
     "user token"],
)  # fmt: skip
def test_activation_refused(case: str) -> None:
    export = {**PRIVATE, "revocations": {IMPORTER_KEY: NOW - 100}} if case == "revoked" else PRIVATE
    if case == "revoked all":
        export = {**PRIVATE, "revocations": {"*": NOW - 50}}
    exporter = account(EXPORTER, exports=[export], signing_keys=[jwt.public_key(SIGNER)])
    stranger = jwt.new_seed("account")
    token = {
        "no token": None,
        "expired": activation(expires=NOW - 1),
        "not yet valid": activation(not_before=NOW + 60),
        "revoked": activation(),
        "revoked all": activation(),
        "other account": activation(sub=jwt.public_key(stranger)),
        # Signed by an account that is neither the exporter nor names it.
        "stranger": jwt.encode(
            "activation", IMPORTER_KEY, stranger, {"subject": "priv.>", "kind": "stream"}
        ),
        "unknown signing key": activation(signer=jwt.new_seed("account")),
        "narrower subject": activation("priv.b"),
        "other kind": activation(kind="service"),
        "not a JWT": "eyJnot.a.jwt",
        "user token": jwt.encode("user", jwt.public_key(jwt.new_seed("user")), EXPORTER, {}),
    }[case]
    assert not activation_granted(IMPORTER_KEY, stream_import(token), exporter, export, NOW)


def test_activation_of_a_service_import_with_the_old_to_field() -> None:
    """A service import's `to` is the subject its token must cover (the jwt library)."""
    export = {"subject": "svc.>", "type": "service", "token_req": True}
    exporter = account(EXPORTER, exports=[export])
    entry = {"subject": "svc.x", "to": "svc.y", "account": EXPORTER_KEY, "type": "service",
             "token": activation("svc.y", "service")}  # fmt: skip
    assert activation_granted(IMPORTER_KEY, entry, exporter, export, NOW)
    entry["token"] = activation("svc.x", "service")
    assert not activation_granted(IMPORTER_KEY, entry, exporter, export, NOW)


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({}, True),
        ({"exports": [PRIVATE]}, True),
        ({"exports": [PRIVATE], "limits": {"conn": -1}}, False),  # no exports allowed
        ({"exports": [PRIVATE], "limits": {**UNLIMITED, "wildcards": False}}, True),
        ({"exports": [PRIVATE], "limits": {**UNLIMITED, "exports": 5, "wildcards": False}},
         False),
        ({"exports": [{"subject": "a", "type": "stream"}],
          "limits": {**UNLIMITED, "exports": 1, "wildcards": False}}, True),
        ({"exports": [PRIVATE, {"subject": "priv.a", "type": "stream"}]}, False),  # overlap
        ({"exports": [PRIVATE, {"subject": "priv.a", "type": "service"}]}, True),
        ({"exports": [{"subject": "a", "type": "stream", "response_type": "Stream"}]}, False),
        ({"exports": [{"subject": "a", "type": "service", "response_type": "stream"}]}, False),
        ({"exports": [{"subject": "a.*", "type": "service", "account_token_position": 2}]},
         True),
        ({"exports": [{"subject": "a.b", "type": "service", "account_token_position": 2}]},
         False),
        ({"exports": [{"subject": "a", "type": "service",
                       "service_latency": {"sampling": "headers", "results": "lat"}}]}, True),
        ({"exports": [{"subject": "a", "type": "service",
                       "service_latency": {"sampling": 101, "results": "lat"}}]}, False),
        ({"exports": [{"subject": "a..b", "type": "stream"}]}, False),
        ({"imports": [stream_import(None)], "limits": {"conn": -1}}, False),
        ({"imports": [stream_import(None)]}, True),
        ({"imports": [stream_import(activation())]}, True),
        ({"imports": [stream_import(activation(expires=NOW - 1))]}, True),  # only drops it
        ({"imports": [stream_import(activation(sub=EXPORTER_KEY))]}, False),
        ({"imports": [stream_import(activation("priv.b"))]}, False),
        ({"imports": [stream_import(activation(kind="service"))]}, False),
        ({"imports": [stream_import("garbage")]}, False),
        ({"imports": [{**stream_import(None), "share": True}]}, False),
        ({"imports": [{**stream_import(None), "local_subject": "mine.a"}]}, True),
        ({"imports": [{**stream_import(None, "priv.*"), "local_subject": "mine.$1"}]}, True),
        ({"imports": [{**stream_import(None, "priv.*"), "local_subject": "mine.$2"}]}, False),
        ({"imports": [{**stream_import(None, "priv.>"), "local_subject": "mine"}]}, False),
        ({"imports": [{"subject": "s.a", "account": EXPORTER_KEY, "type": "service"},
                      {"subject": "s.*", "account": EXPORTER_KEY, "type": "service"}]}, False),
        ({"signing_keys": [jwt.public_key(SIGNER)]}, True),
        ({"signing_keys": ["ABAD"]}, False),
        ({"signing_keys": [{"kind": "user_scope", "key": "ABAD"}]}, False),
        ({"default_permissions": {"pub": {"allow": ["a b"]}}}, False),
        ({"default_permissions": {"sub": {"allow": ["a b"]}}}, True),
        ({"mappings": {"a": [{"subject": "b", "weight": 60}, {"subject": "c", "weight": 50}]}},
         False),
        ({"mappings": {"a": [{"subject": "b", "weight": 60}, {"subject": "c", "weight": 40}]}},
         True),
    ],
)  # fmt: skip
def test_account_claims_valid(fields: dict[str, Any], valid: bool) -> None:
    assert account_claims_valid(account(IMPORTER, **fields)) is valid


def preload(*accounts: tuple[str, dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    out = []
    for seed, fields in accounts:
        fields.setdefault("limits", UNLIMITED)
        out.append(
            (jwt.public_key(seed), jwt.encode("account", jwt.public_key(seed), OPERATOR, fields))
        )
    return tuple(out)


def test_imports_kept_only_where_an_export_authorizes_them() -> None:
    now = time.time()
    other = jwt.new_seed("account")
    exports = [
        PRIVATE,
        {"subject": "pub.>", "type": "stream"},
        {"subject": "svc.*", "type": "service", "account_token_position": 2},
    ]
    kept = [
        stream_import(activation(issued_at=int(now))),
        stream_import(None, "pub.x"),
        {"subject": f"svc.{IMPORTER_KEY}", "account": EXPORTER_KEY, "type": "service"},
    ]
    dropped = [
        stream_import(activation(expires=int(now) - 1), "priv.c"),  # expired
        {"subject": "pub.y", "account": jwt.public_key(other), "type": "stream"},  # not loaded
        {"subject": "svc.x", "account": EXPORTER_KEY, "type": "service"},  # token position
        {"subject": "nothing", "account": EXPORTER_KEY, "type": "stream"},  # no export
        {"subject": "pub.z", "account": EXPORTER_KEY, "type": "service"},  # other kind
    ]
    # An account whose import carries a token made for another account (and another
    # subject) fails validation: it does not load at all.
    refused = jwt.new_seed("account")
    accounts = accounts_from_jwts(
        preload(
            (EXPORTER, {"exports": exports}),
            (IMPORTER, {"imports": kept + dropped}),
            (refused, {"imports": [stream_import(activation("priv.b"))]}),
        ),
        TRUSTED,
    )
    by_name = {a.name: a for a in accounts}
    assert set(by_name) == {EXPORTER_KEY, IMPORTER_KEY}
    importer = by_name[IMPORTER_KEY]
    assert [i.subject for i in importer.imports] == ["priv.a", "pub.x", f"svc.{IMPORTER_KEY}"]
    private, public, positional = by_name[EXPORTER_KEY].exports
    assert private.accounts == (IMPORTER_KEY,)
    assert public.accounts is None and positional.accounts is None


def test_private_export_without_valid_activations_is_open_to_nobody() -> None:
    accounts = accounts_from_jwts(
        preload(
            (EXPORTER, {"exports": [PRIVATE]}),
            (IMPORTER, {"imports": [stream_import(activation(expires=int(time.time()) - 1))]}),
        ),
        TRUSTED,
    )
    exporter, importer = accounts
    assert exporter.exports[0].accounts == ()
    assert importer.imports == ()


def test_loadable_accounts_are_trusted_and_valid() -> None:
    stranger = jwt.new_seed("operator")
    untrusted = jwt.new_seed("account")
    table = preload((EXPORTER, {}), (IMPORTER, {"exports": [PRIVATE], "limits": {"conn": -1}}))
    token = jwt.encode("account", jwt.public_key(untrusted), stranger, {"limits": UNLIMITED})
    table += ((jwt.public_key(untrusted), token),)
    assert set(loadable_accounts(table, TRUSTED)) == {EXPORTER_KEY}


def test_next_activation_change_is_the_nearest_future_expiry_or_start() -> None:
    exporter, importer = jwt.new_seed("account"), jwt.new_seed("account")
    now = 1_000_000

    def importing(**times: int) -> str:
        token = jwt.encode(
            "activation", jwt.public_key(importer), exporter,
            {"subject": "a.>", "kind": "stream"}, **times,
        )  # fmt: skip
        imports = [{"subject": "a.>", "account": jwt.public_key(exporter), "type": "stream",
                    "token": token}]  # fmt: skip
        return jwt.encode("account", jwt.public_key(importer), OPERATOR, {"imports": imports})

    plain = jwt.encode("account", jwt.public_key(exporter), OPERATOR, {})
    assert next_activation_change([plain], now) is None
    assert next_activation_change([importing(expires=now - 1)], now) is None
    assert next_activation_change([importing(expires=now + 50)], now) == now + 50
    both = [importing(expires=now + 50), importing(not_before=now + 20), plain, "garbage"]
    assert next_activation_change(both, now) == now + 20
