"""NKEY users: public key decoding, nonce signatures, and the authenticator's order."""

from __future__ import annotations

import base64

import nkeys
import pytest

from shardbroker.config.nkey import decode_user_nkey, is_user_nkey, signed_by
from shardbroker.config.options import Authorization, Options, OptionsError, User, validate
from shardbroker.security.auth import Authenticator

SEED = b"SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
OTHER_SEED = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER)
KEYS = nkeys.from_seed(SEED)
PUBLIC = KEYS.public_key.decode()
NONCE = "bsxXb23AGcLCRC8"


def sign(keys: nkeys.KeyPair, nonce: str, urlsafe: bool = True) -> str:
    raw = keys.sign(nonce.encode())
    encoded = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    return encoded.decode().rstrip("=") if urlsafe else encoded.decode()


def test_nkey_decode_user_public_keys_only() -> None:
    assert decode_user_nkey(PUBLIC) is not None and len(decode_user_nkey(PUBLIC) or b"") == 32
    assert not is_user_nkey(PUBLIC[:-1] + ("A" if PUBLIC[-1] != "A" else "B"))  # bad CRC
    assert not is_user_nkey("N" + PUBLIC[1:])
    assert not is_user_nkey(SEED.decode())
    assert not is_user_nkey("U")


def test_nkey_signature_over_the_nonce() -> None:
    assert signed_by(PUBLIC, NONCE, sign(KEYS, NONCE))
    assert signed_by(PUBLIC, NONCE, sign(KEYS, NONCE, urlsafe=False))  # standard base64 too
    assert not signed_by(PUBLIC, "another-nonce!!", sign(KEYS, NONCE))
    assert not signed_by(PUBLIC, NONCE, sign(nkeys.from_seed(OTHER_SEED), NONCE))
    assert not signed_by(PUBLIC, NONCE, "not base64 at all!")


def nkey_options(*users: User, no_auth_user: str = "") -> Options:
    return validate(
        Options(authorization=Authorization(users=tuple(users)), no_auth_user=no_auth_user)
    )


def test_nkey_authenticator_checks_the_nkey_first() -> None:
    auth = Authenticator(nkey_options(User(nkey=PUBLIC), User(user="a", password="p")))
    assert auth.required and auth.needs_nonce
    assert auth.check("", "", "", PUBLIC, sign(KEYS, NONCE), NONCE) == PUBLIC
    assert auth.check("", "", "", PUBLIC, sign(KEYS, NONCE), "") is None  # no nonce
    assert auth.check("a", "p", "", PUBLIC, "bad", NONCE) is None  # the nkey decides
    other = nkeys.from_seed(OTHER_SEED).public_key.decode()
    assert auth.check("", "", "", other, sign(nkeys.from_seed(OTHER_SEED), NONCE), NONCE) is None
    assert auth.check("a", "p", "") == "a"


def test_nkey_no_nonce_without_nkey_users() -> None:
    assert not Authenticator(nkey_options(User(user="a", password="p"))).needs_nonce


def test_nkey_validation() -> None:
    with pytest.raises(OptionsError, match="can not have a user name or a password"):
        nkey_options(User(nkey=PUBLIC, password="x"))
    with pytest.raises(OptionsError, match="Duplicate nkey"):
        nkey_options(User(nkey=PUBLIC), User(nkey=PUBLIC))
    assert nkey_options(User(nkey=PUBLIC), no_auth_user=PUBLIC).no_auth_user == PUBLIC
