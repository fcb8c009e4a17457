"""`authorization { auth_callout {} }` from a config file to Options (the texts of its
errors are compared with nats-server's in tests/integration/test_auth_callout.py)."""

from __future__ import annotations

import pytest

from shardbroker.config import jwt
from shardbroker.config.merge import options_from_config
from shardbroker.config.options import AuthCallout, Options, decode, encode, validate
from shardbroker.config.parse import ConfigError, parse_with_positions
from shardbroker.security.callout import curve_public_key

ISSUER = jwt.public_key(jwt.new_seed("account"))
XKEY = curve_public_key(jwt.new_seed("curve"))


def options(text: str) -> Options:
    values, positions = parse_with_positions(text, "callout.conf")
    return validate(Options(**options_from_config(values, positions, "callout.conf")))  # type: ignore[arg-type]


def test_callout_config_fields_and_defaults() -> None:
    opts = options(
        "accounts { AUTH {}, APP {} }\n"
        "authorization {\n  users: [{user: auth, password: a}]\n"
        f"  auth_callout {{ issuer: {ISSUER}, auth_users: [auth], account: AUTH,\n"
        f"    xkey: {XKEY}, allowed_accounts: [APP] }}\n}}\n"
    )
    assert opts.authorization is not None
    assert opts.authorization.callout == AuthCallout(
        issuer=ISSUER, account="AUTH", auth_users=("auth",), xkey=XKEY, allowed_accounts=("APP",)
    )
    assert decode(encode(opts)) == opts


def test_callout_config_aliases_and_the_global_account() -> None:
    opts = options(
        "authorization {\n  users: [{user: svc, password: a}]\n"
        f"  auth_hook {{ issuer: {ISSUER}, users: [svc], key: {XKEY} }}\n}}\n"
    )
    assert opts.authorization is not None
    assert opts.authorization.callout == AuthCallout(
        issuer=ISSUER, account="$G", auth_users=("svc",), xkey=XKEY
    )


def test_callout_config_errors_name_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        options(f"authorization {{\n  auth_callout {{\n    issuer: {ISSUER}\n  }}\n}}\n")
    assert str(caught.value) == (
        "callout.conf:3:5: Authorization callouts require authorized users to be specified"
    )
