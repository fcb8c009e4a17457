"""config/jwt.py: NATS JWTs decoded and verified, encoded, and .creds files."""

from __future__ import annotations

import base64
import json

import pytest

from shardbroker.config import jwt
from shardbroker.config.jwt import JWTError

OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
USER = jwt.new_seed("user")
OTHER_ACCOUNT = jwt.new_seed("account")


def user_token(**kwargs: object) -> str:
    return jwt.encode("user", jwt.public_key(USER), ACCOUNT, {"subs": -1}, **kwargs)  # type: ignore[arg-type]


def segments(token: str) -> list[str]:
    return token.split(".")


def reencode(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")


def test_round_trip_of_each_kind() -> None:
    operator = jwt.decode(jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR), "operator")
    account = jwt.decode(
        jwt.encode("account", jwt.public_key(ACCOUNT), OPERATOR, {"limits": {"conn": 3}}),
        "account",
    )
    user = jwt.decode(user_token(name="u", expires=4_000_000_000), "user")
    assert operator.sub == operator.iss == jwt.public_key(OPERATOR)
    assert account.nats["limits"] == {"conn": 3} and account.version == 2
    assert (user.iss, user.name, user.exp) == (jwt.public_key(ACCOUNT), "u", 4_000_000_000)
    assert not user.expired() and not user.not_yet_valid()


def test_version_1_tokens_sign_the_claims_segment() -> None:
    claims = {"jti": "x", "iat": 1, "iss": jwt.public_key(ACCOUNT), "sub": jwt.public_key(USER),
              "type": "user", "nats": {"pub": {}, "sub": {}}}  # fmt: skip
    header = reencode({"typ": "jwt", "alg": "ed25519"})
    payload = reencode(claims)
    signature = base64.urlsafe_b64encode(jwt.sign(ACCOUNT, payload.encode())).decode()
    token = f"{header}.{payload}.{signature.rstrip('=')}"
    decoded = jwt.decode(token, "user")
    assert decoded.version == 1 and decoded.type == "user"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t + "x",  # the signature no longer matches
        lambda t: t + "==",  # padded base64
        lambda t: "!" + t,  # not base64
        lambda t: ".".join(segments(t)[:2]),  # two segments
        lambda t: "x" * (jwt.MAX_TOKEN_SIZE + 1),  # huge
        lambda t: ".".join([reencode({"typ": "JWT", "alg": "RS256"}), *segments(t)[1:]]),
        lambda t: ".".join([segments(t)[0], reencode({"iss": "x"}), segments(t)[2]]),
    ],
    ids=["truncated", "bad-signature", "padded", "not-base64", "two-segments", "huge",
         "algorithm", "no-type"],
)  # fmt: skip
def test_bad_tokens_are_refused(mangle: object) -> None:
    with pytest.raises(JWTError):
        jwt.decode(mangle(user_token()), "user")  # type: ignore[operator]


def test_wrong_issuer_role_and_wrong_kind_are_refused() -> None:
    # A user token signed by an operator key: the issuer must be an account.
    with pytest.raises(JWTError, match="issuer"):
        jwt.decode(jwt.encode("user", jwt.public_key(USER), OPERATOR))
    with pytest.raises(JWTError, match="expected a account"):
        jwt.decode(user_token(), "account")


def test_newer_version_is_refused() -> None:
    token = user_token()
    claims = json.loads(base64.urlsafe_b64decode(segments(token)[1] + "=="))
    claims["nats"]["version"] = 3
    header = segments(token)[0]
    payload = reencode(claims)
    signature = base64.urlsafe_b64encode(jwt.sign(ACCOUNT, f"{header}.{payload}".encode()))
    with pytest.raises(JWTError, match="newer version"):
        jwt.decode(f"{header}.{payload}.{signature.decode().rstrip('=')}")


def test_times() -> None:
    expired = jwt.decode(user_token(expires=1))
    early = jwt.decode(user_token(not_before=4_000_000_000))
    assert expired.expired() and early.not_yet_valid()


def test_creds_files() -> None:
    token = user_token()
    text = jwt.format_creds(token, USER)
    assert jwt.parse_creds(text) == (token, USER)
    assert jwt.parse_creds(text.replace("\n", "\r\n")) == (token, USER)
    with pytest.raises(JWTError):
        jwt.parse_creds(text.split("-----BEGIN USER NKEY SEED-----")[0])


def test_public_keys_by_role() -> None:
    assert jwt.decode_public_key(jwt.public_key(USER), "user") is not None
    assert jwt.decode_public_key(jwt.public_key(USER), "account") is None
    assert jwt.decode_public_key("Unot-a-key", "user") is None


def test_seed_role_checks_the_prefix_and_the_checksum() -> None:
    assert [jwt.seed_role(s) for s in (OPERATOR, ACCOUNT, USER)] == ["operator", "account", "user"]
    changed = ACCOUNT[:10] + ("A" if ACCOUNT[10] != "A" else "B") + ACCOUNT[11:]
    # nkeys itself takes the changed seed, as some other key.
    assert jwt.public_key(changed) != jwt.public_key(ACCOUNT)
    assert jwt.seed_role(changed) is None
    assert jwt.seed_role(jwt.public_key(ACCOUNT)) is None  # a public key, not a seed
    assert jwt.seed_role("SA" + "!" * 56) is None
    assert jwt.seed_role("") is None
