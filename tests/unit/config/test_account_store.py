"""config/account_store.py: the nats-based resolver's directory of account JWTs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config import account_store, jwt
from shardbroker.config.account_store import StoreError
from shardbroker.config.options import ResolverStore

OPERATOR = jwt.new_seed("operator")


def account() -> tuple[str, str]:
    seed = jwt.new_seed("account")
    key = jwt.public_key(seed)
    return key, jwt.encode("account", key, OPERATOR, {"limits": {"conn": -1}})


def test_save_load_and_same_jwt_again(tmp_path: Path) -> None:
    store = ResolverStore(dir=str(tmp_path / "jwt"))
    key, token = account()
    assert account_store.load(store) == {}  # no directory yet: an empty store
    assert account_store.save(store, key, token) is True
    assert account_store.save(store, key, token) is False
    assert account_store.load(store) == {key: token}
    assert (tmp_path / "jwt" / f"{key}.jwt").read_text() == token
    assert not [p for p in (tmp_path / "jwt").iterdir() if p.name.endswith(".tmp")]


def test_load_leaves_out_files_that_are_not_the_accounts_jwt(tmp_path: Path) -> None:
    store = ResolverStore(dir=str(tmp_path))
    key, token = account()
    other, _ = account()
    (tmp_path / f"{other}.jwt").write_text(token)  # another account's JWT
    (tmp_path / f"{key}.jwt").write_text("garbage")
    assert account_store.load(store) == {}


def test_invalid_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid public key"):
        account_store.save(ResolverStore(dir=str(tmp_path)), "../../etc/passwd", "x")


def test_delete_renames_unless_hard_and_needs_allow_delete(tmp_path: Path) -> None:
    key, token = account()
    store = ResolverStore(dir=str(tmp_path))
    account_store.save(store, key, token)
    with pytest.raises(StoreError):
        account_store.delete(store, key)
    account_store.delete(ResolverStore(dir=str(tmp_path), allow_delete=True), key)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.jwt.deleted"]
    account_store.save(store, key, token)
    account_store.delete(ResolverStore(dir=str(tmp_path), allow_delete=True, hard_delete=True), key)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.jwt.deleted"]
    account_store.delete(ResolverStore(dir=str(tmp_path), allow_delete=True), key)  # gone: fine


def test_limit_full_store_refuses_cache_evicts_oldest(tmp_path: Path) -> None:
    (first, t1), (second, t2), (third, t3) = account(), account(), account()
    full = ResolverStore(dir=str(tmp_path / "full"), limit=2)
    account_store.save(full, first, t1)
    account_store.save(full, second, t2)
    with pytest.raises(StoreError, match="jwt store is full"):
        account_store.save(full, third, t3)
    cache = ResolverStore(dir=str(tmp_path / "cache"), cache=True, limit=2)
    account_store.save(cache, first, t1)
    account_store.save(cache, second, t2)
    account_store.save(cache, third, t3)
    assert set(account_store.load(cache)) == {second, third}
