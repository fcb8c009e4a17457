"""config/operator.py: operator mode in a config file, and account JWTs as accounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config import jwt
from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.config.options import AccountLimits, operator_mode
from shardbroker.config.parse import ConfigError

OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
OTHER = jwt.new_seed("account")
OPERATOR_JWT = jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR, name="op")


def build(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    conf = tmp_path / "op.conf"
    conf.write_text(text)
    return build_options(OptionsSource(config=str(conf)))


def account_jwt(seed: str, signer: str = OPERATOR, **fields: object) -> str:
    return jwt.encode("account", jwt.public_key(seed), signer, fields, name="A")


def test_preloaded_accounts_become_accounts(tmp_path: Path) -> None:
    token = account_jwt(
        ACCOUNT,
        limits={"conn": 5, "subs": -1, "payload": 1024, "exports": -1},
        exports=[{"subject": "svc", "type": "service", "response_type": "Stream"}],
        default_permissions={"pub": {"allow": ["a.>"]}},
        mappings={"m.*": [{"subject": "n.$1", "weight": 100}]},
    )
    untrusted = account_jwt(OTHER, signer=jwt.new_seed("operator"))
    key, other = jwt.public_key(ACCOUNT), jwt.public_key(OTHER)
    opts = build(
        tmp_path,
        f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\n'
        f'resolver_preload: {{\n  {key}: "{token}"\n  {other}: "{untrusted}"\n}}\n',
    )
    assert operator_mode(opts) and opts.no_system_account
    (account,) = opts.accounts  # the one an untrusted operator signed is left out
    assert account.name == key
    assert account.limits == AccountLimits(
        max_connections=5, max_subscriptions=-1, max_payload=1024, max_leafnodes=-1, from_jwt=True
    )
    assert account.exports[0].response_type == "stream"
    assert account.default_permissions is not None
    assert account.mappings[0].source == "m.*"


def test_operator_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "op.jwt"
    path.write_text(f"-----BEGIN NATS OPERATOR JWT-----\n{OPERATOR_JWT}\n------END------\n")
    opts = build(tmp_path, f'operator: "{path}"\nresolver: MEMORY\n')
    assert opts.operators == (OPERATOR_JWT,)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (f'operator: "{OPERATOR_JWT}"\n', "operators require an account resolver"),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\naccounts {{ A: {{}} }}\n',
         "operators do not allow Accounts to be configured directly"),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\n'
         "authorization { users: [{user: a, password: b}] }\n",
         "operators do not allow users to be configured directly"),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\n'
         f'trusted_keys: ["{jwt.public_key(OPERATOR)}"]\n',
         "conflicting options for 'TrustedKeys' and 'TrustedOperators'"),
        ('trusted_keys: ["OBAD"]\nresolver: MEMORY\n',
         'trust key "OBAD" required to be a valid public operator nkey'),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\n'
         f'resolver_preload: {{ {jwt.public_key(ACCOUNT)}: "eyJnot" }}\n',
         "invalid account JWT"),
        (f'operator: "{OPERATOR_JWT}"\nresolver: URL("http://x/")\n',
         "the URL resolver is not supported"),
        ('operator: "not-a-file-or-jwt"\n', "neither a file nor a JWT"),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\nresolver_pinned_accounts: ["ABAD"]\n',
         'pinned account key "ABAD" is not a valid public account nkey'),
        (f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\nresolver_pinned_accounts: 5\n',
         "error parsing resolver_pinned_accounts: unsupported type int64"),
    ],
)  # fmt: skip
def test_operator_mode_errors(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        build(tmp_path, text)


SYSTEM = jwt.new_seed("account")
SYSTEM_OPERATOR_JWT = jwt.encode(
    "operator", jwt.public_key(OPERATOR), OPERATOR,
    {"system_account": jwt.public_key(SYSTEM)}, name="op",
)  # fmt: skip


@pytest.mark.parametrize(
    ("resolver", "error"),
    [
        ("{ type: full }", "dir has no value and needs to point to a directory"),
        ("{ type: cache, dir: DIR, interval: \"1m\" }", "CACHE does not accept sync"),
        ("{ type: cache, dir: DIR, allow_delete: true }", "CACHE does not accept allow_delete"),
        ("{ type: full, dir: DIR, ttl: \"1m\" }", "FULL does not accept ttl"),
        ("{ type: full, dir: DIR, hard_delete: true }", "hard_delete has no effect without delete"),
        ("{ type: other, dir: DIR }", "should be MEM or"),
        ("42", "error parsing operator resolver, wrong type int"),
        ("SOMETHING", "should be MEM or"),
    ],
)  # fmt: skip
def test_nats_based_resolver_errors(tmp_path: Path, resolver: str, error: str) -> None:
    text = (
        f'operator: "{SYSTEM_OPERATOR_JWT}"\nresolver: {resolver.replace("DIR", str(tmp_path))}\n'
    )
    with pytest.raises(ConfigError, match=error):
        build(tmp_path, text)


def test_nats_based_resolver_needs_a_system_account(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the system account needs to be specified"):
        build(
            tmp_path, f'operator: "{OPERATOR_JWT}"\nresolver: {{ type: full, dir: "{tmp_path}" }}\n'
        )


def test_full_resolver_reads_its_directory_and_takes_newer_preloads(tmp_path: Path) -> None:
    """The directory's JWTs are accounts; a preloaded JWT replaces a stored one only if
    it was issued later."""
    key, other = jwt.public_key(ACCOUNT), jwt.public_key(OTHER)
    store = tmp_path / "jwt"
    store.mkdir()
    stored = jwt.encode("account", key, OPERATOR, {"limits": {"conn": 1}}, issued_at=2000)
    older = jwt.encode("account", key, OPERATOR, {"limits": {"conn": 2}}, issued_at=1000)
    (store / f"{key}.jwt").write_text(stored)
    (store / "unrelated.txt").write_text("not a jwt")
    newer = jwt.encode("account", other, OPERATOR, {"limits": {"conn": 3}})
    system = jwt.encode("account", jwt.public_key(SYSTEM), OPERATOR)
    (store / f"{other}.jwt").write_text(
        jwt.encode("account", other, OPERATOR, {"limits": {"conn": 4}}, issued_at=1000)
    )
    opts = build(
        tmp_path,
        f'operator: "{SYSTEM_OPERATOR_JWT}"\n'
        f'resolver: {{ type: full, dir: "{store}", allow_delete: true, interval: "2m" }}\n'
        f'resolver_preload: {{\n  {key}: "{older}"\n  {other}: "{newer}"\n'
        f'  {jwt.public_key(SYSTEM)}: "{system}"\n}}\n',
    )
    assert opts.resolver == "full"
    assert opts.resolver_store is not None and opts.resolver_store.allow_delete
    jwts = dict(opts.account_jwts)
    assert (jwts[key], jwts[other]) == (stored, newer)
    limits = {a.name: a.limits.max_connections for a in opts.accounts}
    assert (limits[key], limits[other]) == (1, 3)


def test_resolver_pinned_accounts(tmp_path: Path) -> None:
    key = jwt.public_key(ACCOUNT)
    opts = build(
        tmp_path, f'operator: "{OPERATOR_JWT}"\nresolver: MEMORY\nresolver_pinned_accounts: {key}\n'
    )
    assert opts.resolver_pinned_accounts == (key,)
    # nats-server checks the keys only along with operators.
    opts = build(
        tmp_path,
        f'trusted_keys: ["{jwt.public_key(OPERATOR)}"]\nresolver: MEMORY\n'
        'resolver_pinned_accounts: ["ABAD", "ABAD"]\n',
    )
    assert opts.resolver_pinned_accounts == ("ABAD",)
