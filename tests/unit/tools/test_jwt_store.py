"""tools/jwtstore.py: the `shardbroker jwt` store: layout, file modes, who signs what,
re-issuing, and the `.creds` files clients read."""

from __future__ import annotations

import stat
from pathlib import Path

import nats.aio.client
import pytest

from shardbroker.config import jwt
from shardbroker.tools import jwtclaims
from shardbroker.tools.jwtstore import (
    Store,
    StoreError,
    save_account,
    save_user,
    temporary_system_user,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def limits(**values: int) -> dict[str, object]:
    return {"limits": jwtclaims.account_limits(**values)}  # type: ignore[arg-type]


def test_operator_with_system_account(tmp_path: Path) -> None:
    store = Store(tmp_path / "keys")
    operator = store.create_operator("acme", system_account=True)
    root = tmp_path / "keys" / "acme"
    assert sorted(p.name for p in root.iterdir()) == ["accounts", "operator.jwt", "operator.nk"]
    assert operator.claims.iss == operator.claims.sub == jwt.public_key(operator.seed)
    system = operator.system_account()
    assert system is not None and system.name == "SYS"
    assert operator.system_account_key == system.key
    # As nsc makes it: a signing key, the account monitoring exports, a user `sys`
    # signed by the signing key on behalf of the account.
    assert system.claims.nats["signing_keys"] == [jwt.public_key(system.signing_seed or "")]
    assert {e["subject"] for e in system.claims.nats["exports"]} == {
        "$SYS.REQ.ACCOUNT.*.*", "$SYS.ACCOUNT.*.>",
    }  # fmt: skip
    user_jwt, seed = jwt.parse_creds(system.creds_path("sys").read_text())
    claims = jwt.decode(user_jwt, "user")
    assert claims.iss == jwt.public_key(system.signing_seed or "")
    assert claims.nats["issuer_account"] == system.key and claims.sub == jwt.public_key(seed)


def test_secrets_are_0600_and_directories_0700(tmp_path: Path) -> None:
    store = Store(tmp_path / "keys")
    operator = store.create_operator("acme", signing_key=True, system_account=True)
    account = save_account(operator, "app", limits(), signing_key=True)
    save_user(account, "alice", jwtclaims.user_fields())
    secrets = sorted((tmp_path / "keys").rglob("*.nk")) + sorted(
        (tmp_path / "keys").rglob("*.creds")
    )
    assert len(secrets) == 8  # operator and its signing key, 2 x 2 account keys, 2 users
    assert {mode(p) for p in secrets} == {0o600}
    directories = [p for p in (tmp_path / "keys").rglob("*") if p.is_dir()]
    assert {mode(p) for p in [tmp_path / "keys", *directories]} == {0o700}
    assert mode(account.path / "account.jwt") == 0o644
    assert not [p for p in (tmp_path / "keys").rglob("*.tmp")]


def test_signing_keys_sign_accounts_and_users(tmp_path: Path) -> None:
    operator = Store(tmp_path).create_operator("acme", signing_key=True)
    (signing_key,) = operator.claims.nats["signing_keys"]
    plain = save_account(operator, "plain", limits())
    assert plain.claims.iss == signing_key and plain.claims.iss != operator.key
    assert "signing_keys" not in plain.claims.nats
    key, creds = save_user(plain, "bob", jwtclaims.user_fields())
    claims = jwt.decode(jwt.parse_creds(creds)[0], "user")
    assert claims.iss == plain.key and "issuer_account" not in claims.nats and claims.sub == key
    signed = save_account(operator, "signed", limits(), signing_key=True)
    _, creds = save_user(signed, "carol", jwtclaims.user_fields())
    claims = jwt.decode(jwt.parse_creds(creds)[0], "user")
    assert claims.iss == signed.claims.nats["signing_keys"][0]
    assert claims.nats["issuer_account"] == signed.key


def test_update_keeps_the_keys_and_reissues_the_jwt(tmp_path: Path) -> None:
    operator = Store(tmp_path).create_operator("acme", system_account=True)
    first = save_account(operator, "app", limits(conn=5))
    key, _ = save_user(first, "alice", jwtclaims.user_fields())
    with pytest.raises(StoreError, match=r"already exists.*--update"):
        save_account(operator, "app", limits())
    with pytest.raises(StoreError, match=r"already exists.*--update"):
        save_user(first, "alice", jwtclaims.user_fields())
    with pytest.raises(StoreError, match="no account"):
        save_account(operator, "nope", limits(), update=True)
    second = save_account(operator, "app", limits(conn=7), update=True)
    assert second.key == first.key and second.seed == first.seed
    assert second.claims.nats["limits"]["conn"] == 7
    again, creds = save_user(second, "alice", jwtclaims.user_fields(payload=9), update=True)
    assert again == key and jwt.decode(jwt.parse_creds(creds)[0], "user").nats["payload"] == 9
    # The system account keeps what makes it one when re-issued.
    system = save_account(operator, "SYS", limits(), update=True)
    assert len(system.claims.nats["exports"]) == 2 and system.signing_seed


def test_creds_file_is_what_nats_py_reads(tmp_path: Path) -> None:
    operator = Store(tmp_path).create_operator("acme")
    account = save_account(operator, "app", limits())
    key, _ = save_user(account, "alice", jwtclaims.user_fields(), expires=4_000_000_000)
    path = account.creds_path("alice")
    client = nats.aio.client.Client()
    user_jwt = bytes(client._read_creds_user_jwt(str(path))).decode()
    seed = bytes(client._read_creds_user_nkey(str(path))).decode()
    assert jwt.decode(user_jwt, "user").sub == key == jwt.public_key(seed)
    assert jwt.decode(user_jwt, "user").exp == 4_000_000_000


def test_choosing_the_operator(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="no operator in"):
        store.operator()
    store.create_operator("one")
    assert store.operator().name == "one"
    store.create_operator("two")
    with pytest.raises(StoreError, match=r"several operators.*--operator"):
        store.operator()
    assert store.operator("two").name == "two"
    with pytest.raises(StoreError, match='no operator "three"'):
        store.operator("three")
    with pytest.raises(StoreError, match="already exists"):
        store.create_operator("one")
    with pytest.raises(StoreError, match='no account "app"'):
        store.operator("one").account("app")


def test_damaged_files_are_reported(tmp_path: Path) -> None:
    store = Store(tmp_path)
    operator = store.create_operator("acme")
    account = save_account(operator, "app", limits())
    (account.path / "account.nk").write_text(jwt.new_seed("user") + "\n")
    with pytest.raises(StoreError, match=r"account\.nk does not hold a valid account seed"):
        operator.account("app")
    (account.path / "account.nk").write_text("SAnotaseed\n")
    with pytest.raises(StoreError, match="valid account seed"):
        operator.account("app")
    (tmp_path / "acme" / "operator.jwt").write_text("eyJnope")
    with pytest.raises(StoreError, match=r"operator\.jwt does not hold a valid operator JWT"):
        store.operator("acme")


def test_temporary_system_user(tmp_path: Path) -> None:
    operator = Store(tmp_path).create_operator("acme", system_account=True)
    user_jwt, seed = temporary_system_user(operator, ["$SYS.REQ.CLAIMS.UPDATE"], 120)
    claims = jwt.decode(user_jwt, "user")
    system = operator.system_account()
    assert system is not None and claims.nats["issuer_account"] == system.key
    assert claims.nats["pub"] == {"allow": ["$SYS.REQ.CLAIMS.UPDATE"]}
    assert claims.exp > claims.iat and claims.sub == jwt.public_key(seed)
    bare = Store(tmp_path / "bare").create_operator("bare")
    with pytest.raises(StoreError, match="no system account"):
        temporary_system_user(bare, ["x"], 120)
