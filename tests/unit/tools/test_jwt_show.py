"""tools/jwtshow.py: what `shardbroker jwt show` says about JWTs, .creds files and seeds;
the seed only when asked."""

from __future__ import annotations

import json

import pytest

from shardbroker.config import jwt
from shardbroker.tools.jwtshow import ShowError, describe, render

ACCOUNT = jwt.new_seed("account")
USER = jwt.new_seed("user")
NOW = 1_800_000_000


def user_token(**kwargs: object) -> str:
    fields = {"pub": {"allow": ["a.>"]}, "sub": {}, "subs": -1}
    return jwt.encode("user", jwt.public_key(USER), ACCOUNT, fields, name="alice", **kwargs)  # type: ignore[arg-type]


def test_creds_file_keeps_its_seed_hidden() -> None:
    creds = jwt.format_creds(user_token(issued_at=NOW - 60, expires=NOW + 3600), USER)
    out = describe(creds, now=NOW)
    assert out.ok and out.kind == "user" and out.signature == "valid"
    assert out.seed_role == "user" and out.seed_public_key == jwt.public_key(USER)
    text = render(out)
    assert USER not in text and USER not in json.dumps(out.as_json())
    assert 'user JWT "alice" (version 2)' in text and "hidden (--show-seed prints it)" in text
    assert "2027-01-15 09:00:00 UTC" in text  # the expiry, NOW + 1h
    assert '"allow": [' in text  # the claims, indented
    shown = describe(creds, show_seed=True, now=NOW)
    assert USER in render(shown) and shown.as_json()["seed"]["seed"] == USER


def test_a_seed_that_is_not_the_jwts_subject_is_a_problem() -> None:
    stranger = jwt.new_seed("user")
    out = describe(jwt.format_creds(user_token(), stranger))
    assert not out.ok
    assert out.problems == [
        f"the seed's public key {jwt.public_key(stranger)} is not the JWT's subject "
        f"{jwt.public_key(USER)}"
    ]
    assert stranger not in render(out)


def test_tampered_and_expired_tokens_are_shown_with_the_problem() -> None:
    header, _, signature = user_token().split(".")
    forged_claims = jwt.encode("user", jwt.public_key(USER), jwt.new_seed("account")).split(".")[1]
    out = describe(f"{header}.{forged_claims}.{signature}")
    assert out.claims is not None and out.signature.startswith("invalid:")
    assert not out.ok and "does not verify" in out.problems[0]
    expired = describe(user_token(expires=NOW - 1), now=NOW)
    assert expired.signature == "valid" and "expired" in expired.problems[0]


def test_bare_seed_and_garbage() -> None:
    out = describe(ACCOUNT + "\n")
    assert out.claims is None and out.seed_role == "account" and ACCOUNT not in render(out)
    broken = ACCOUNT[:10] + ("A" if ACCOUNT[10] != "A" else "B") + ACCOUNT[11:]
    assert "not a valid seed" in describe(broken).problems[0]
    with pytest.raises(ShowError, match="no JWT"):
        describe("hello")
    with pytest.raises(ShowError, match="three segments"):
        describe("eyJhbGciOi.x")
    with pytest.raises(ShowError, match="base64url JSON"):
        describe("eyJ!!.e30.e30")


def test_decorated_operator_file() -> None:
    operator = jwt.new_seed("operator")
    token = jwt.encode("operator", jwt.public_key(operator), operator, name="op")
    out = describe(
        f"-----BEGIN NATS OPERATOR JWT-----\n{token}\n------END NATS OPERATOR JWT------\n"
    )
    assert out.ok and out.kind == "operator" and out.seed_public_key == ""
