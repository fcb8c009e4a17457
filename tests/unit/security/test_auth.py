"""security.auth: credentials in, the user they log in as (or None) out."""

from __future__ import annotations

import bcrypt
import pytest

from shardbroker.config.options import Authorization, Options, User
from shardbroker.security import auth as auth_module
from shardbroker.security.auth import ANONYMOUS, Authenticator, is_bcrypt, secret_matches


def hashed(secret: str) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode()


def authenticator(no_auth_user: str = "", **fields: object) -> Authenticator:
    return Authenticator(
        Options(authorization=Authorization(**fields), no_auth_user=no_auth_user)  # type: ignore[arg-type]
    )


def test_auth_nothing_configured_lets_everyone_in_and_ignores_credentials() -> None:
    auth = Authenticator(Options())
    assert not auth.required and not auth.advertised
    assert auth.check("", "", "") == ANONYMOUS
    assert auth.check("who", "ever", "tok") == ANONYMOUS


def test_auth_timeout_alone_requires_nothing() -> None:
    assert not authenticator(timeout=1.0).required


def test_auth_token() -> None:
    auth = authenticator(token="s3cr3t")
    assert auth.required and auth.advertised
    assert auth.check("", "", "s3cr3t") == ANONYMOUS
    assert auth.check("", "", "s3cr3") is None
    assert auth.check("", "", "") is None
    assert auth.check("s3cr3t", "s3cr3t", "") is None


def test_auth_bcrypt_token() -> None:
    auth = authenticator(token=hashed("tok"))
    assert auth.check("", "", "tok") == ANONYMOUS
    assert auth.check("", "", "tik") is None


def test_auth_single_user_plain_password() -> None:
    auth = authenticator(user="a", password="b")
    assert auth.check("a", "b", "") == "a"
    assert auth.check("a", "x", "") is None
    assert auth.check("x", "b", "") is None
    assert auth.check("", "", "") is None
    assert auth.check("", "", "b") is None
    assert auth.plaintext_passwords()


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_auth_single_user_bcrypt_password(prefix: str) -> None:
    stored = prefix + hashed("pw")[4:]
    assert is_bcrypt(stored)
    auth = authenticator(user="a", password=stored)
    assert auth.check("a", "pw", "") == "a"
    assert auth.check("a", "pw", "") == "a"  # the remembered success
    assert auth.check("a", "px", "") is None
    assert auth.check("a", stored, "") is None  # the hash itself is not the password
    assert not auth.plaintext_passwords()


def test_auth_bcrypt_lookalike_that_is_not_a_hash_fails_closed() -> None:
    assert is_bcrypt("$2a$10$short")
    assert not secret_matches("$2a$10$short", "$2a$10$short")


def test_auth_users_list() -> None:
    auth = authenticator(
        users=(User(user="a", password="pa"), User(user="b", password=hashed("pb")))
    )
    assert auth.required and auth.advertised
    assert auth.check("a", "pa", "") == "a"
    assert auth.check("b", "pb", "") == "b"
    assert auth.check("a", "pb", "") is None
    assert auth.check("c", "pa", "") is None
    assert auth.check("", "", "") is None
    assert auth.check("", "", "pa") is None


def test_auth_empty_users_list_lets_nobody_in() -> None:
    auth = authenticator(users=())
    assert auth.required
    assert auth.check("", "", "") is None


def test_auth_no_auth_user() -> None:
    auth = authenticator(
        no_auth_user="a", users=(User(user="a", password="pa"), User(user="b", password="pb"))
    )
    assert auth.required and not auth.advertised
    assert auth.check("", "", "") == "a"
    # Credentials, when given, are checked: no falling back to the no_auth_user.
    assert auth.check("b", "pb", "") == "b"
    assert auth.check("b", "bad", "") is None
    assert auth.check("", "pa", "") is None
    assert auth.check("", "", "tok") is None


def test_auth_plain_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    assert authenticator(token="t").check("", "", "t") == ANONYMOUS
    assert authenticator(user="a", password="b").check("a", "x", "") is None
    assert authenticator(users=(User(user="a", password="b"),)).check("a", "b", "") == "a"
    assert (b"t", b"t") in calls
    assert (b"b", b"x") in calls
    assert (b"b", b"b") in calls


def test_auth_bcrypt_goes_through_the_bcrypt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = hashed("fresh-secret")
    seen: list[bytes] = []
    real = auth_module.bcrypt.checkpw

    def spy(password: bytes, hashed_password: bytes) -> bool:
        seen.append(password)
        return real(password, hashed_password)

    monkeypatch.setattr(auth_module.bcrypt, "checkpw", spy)
    assert secret_matches(stored, "fresh-secret")
    assert not secret_matches(stored, "other")
    assert seen == [b"fresh-secret", b"other"]


# -- a reload's re-check of logged-in clients (nats reloadAuthorization) ---------------

KEEP, GONE, REFUSED = auth_module.KEEP, auth_module.GONE, auth_module.REFUSED
reauthorize = auth_module.reauthorize


def _users(*pairs: tuple[str, str], no_auth_user: str = "") -> Authenticator:
    return authenticator(no_auth_user, users=tuple(User(user=u, password=p) for u, p in pairs))


def test_auth_reauthorize_removed_user_is_gone() -> None:
    old = _users(("a", "pa"), ("b", "pb"))
    creds = ("b", "pb", "", "", "")
    assert reauthorize(old, _users(("a", "pa")), "b", creds) == (GONE, "")
    # Also when the new config has no users list at all (nats-server does the same).
    assert reauthorize(old, Authenticator(Options()), "b", creds) == (GONE, "")


def test_auth_reauthorize_changed_password_is_refused_others_kept() -> None:
    old = _users(("a", "pa"), ("b", "pb"))
    new = _users(("a", "new"), ("b", "pb"))
    assert reauthorize(old, new, "a", ("a", "pa", "", "", "")) == (REFUSED, "")
    assert reauthorize(old, new, "b", ("b", "pb", "", "", "")) == (KEEP, "b")


def test_auth_reauthorize_token_and_single_user() -> None:
    old = authenticator(token="t1")
    creds = ("", "", "t1", "", "")
    assert reauthorize(old, authenticator(token="t2"), "", creds) == (REFUSED, "")
    assert reauthorize(old, authenticator(token="t1", timeout=5.0), "", creds) == (KEEP, "")
    single = authenticator(user="u", password="p")
    changed = authenticator(user="u", password="q")
    assert reauthorize(single, changed, "u", ("u", "p", "", "", "")) == (REFUSED, "")


def test_auth_reauthorize_auth_newly_required_refuses_anonymous() -> None:
    old = Authenticator(Options())
    assert reauthorize(old, authenticator(token="t"), "", ("", "", "", "", "")) == (REFUSED, "")


def test_auth_reauthorize_no_auth_user_login() -> None:
    old = _users(("a", "pa"), ("n", "pn"), no_auth_user="n")
    same = _users(("a", "pa"), ("n", "pn"), ("c", "pc"), no_auth_user="n")
    assert reauthorize(old, same, "n", None) == (KEEP, "n")
    changed = _users(("a", "pa"), ("n", "other"), no_auth_user="n")
    assert reauthorize(old, changed, "n", None) == (REFUSED, "")
    assert reauthorize(old, _users(("a", "pa")), "n", None) == (GONE, "")


def test_auth_reauthorize_runs_bcrypt_once_per_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    old = authenticator(token=hashed("t1"))
    new = authenticator(token=hashed("t1"))
    calls = []
    real = auth_module._bcrypt_matches

    def counting(stored: str, given: str) -> bool:
        calls.append(given)
        return real(stored, given)

    monkeypatch.setattr(auth_module, "_bcrypt_matches", counting)
    memo: dict[auth_module.Credentials, str | None] = {}
    for _ in range(5):
        assert reauthorize(old, new, "", ("", "", "t1", "", ""), memo) == (KEEP, "")
    assert len(calls) == 1


def test_auth_reauthorize_unchanged_listed_user_is_not_checked_again() -> None:
    stored = hashed("pa")
    old = _users(("a", stored), ("b", "pb"))
    new = _users(("a", stored))
    # The stored hash is the one the client logged in against: no bcrypt run again.
    assert reauthorize(old, new, "a", ("a", "pa", "", "", "")) == (KEEP, "a")
