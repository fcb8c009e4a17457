"""Auth callout rules (security/callout.py): the xkey seal, who is decided by the
callout, the request JWT and the checks of the service's answer."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shardbroker.config import jwt
from shardbroker.config.options import (
    Account,
    AuthCallout,
    Authorization,
    Options,
    Permissions,
    SubjectPermission,
    User,
)
from shardbroker.protocol import headers
from shardbroker.protocol.messages import ConnectOptions
from shardbroker.security.callout import (
    XKEY_HEADER,
    Callout,
    CalloutError,
    CalloutPolicy,
    ClientFacts,
    ServerIdentity,
    build_request,
    curve_public_key,
    open_sealed,
    seal,
)
from shardbroker.security.permissions import UserPermissions

ISSUER = jwt.new_seed("account")
ISSUER_KEY = jwt.public_key(ISSUER)
SERVER_SEED = jwt.new_seed("server")
SERVER = ServerIdentity(
    SERVER_SEED,
    jwt.public_key(SERVER_SEED),
    "srv",
    "127.0.0.1",
    (xkey_seed := jwt.new_seed("curve")),
    curve_public_key(xkey_seed),
)
SERVICE_XKEY = jwt.new_seed("curve")


def policy(**callout: Any) -> CalloutPolicy:
    opts = Options(
        accounts=(Account(name="APP"), Account(name="OTHER"), Account(name="AUTH")),
        authorization=Authorization(
            users=(User(user="auth", password="p"),),
            callout=AuthCallout(issuer=ISSUER_KEY, auth_users=("auth", "ghost"), **callout),
        ),
    )
    built = CalloutPolicy.build(opts, lambda key: None)
    assert built is not None
    return built


def test_callout_seal_opens_only_for_its_recipient() -> None:
    server, service = jwt.new_seed("curve"), jwt.new_seed("curve")
    sealed = seal(b"eyJ...", server, curve_public_key(service))
    # nkeys' format: version, 24-byte nonce, the box (16-byte tag + the message).
    assert sealed.startswith(b"xkv1") and len(sealed) == 4 + 24 + 16 + 6
    assert open_sealed(sealed, service, curve_public_key(server)) == b"eyJ..."
    stranger = jwt.new_seed("curve")
    with pytest.raises(CalloutError, match="could not decrypt"):
        open_sealed(sealed, stranger, curve_public_key(server))
    with pytest.raises(CalloutError, match="not valid"):
        open_sealed(b"xkv2" + sealed[4:], service, curve_public_key(server))
    with pytest.raises(CalloutError, match="invalid encrypted"):
        open_sealed(sealed[:28], service, curve_public_key(server))


def test_callout_curve_keys_are_nkeys_of_their_own_role() -> None:
    seed = jwt.new_seed("curve")
    assert seed.startswith("SX") and len(seed) == 58
    public = curve_public_key(seed)
    assert public.startswith("X") and len(public) == 56
    assert jwt.decode_public_key(public, "curve") is not None
    assert jwt.decode_public_key(public, "account") is None


def test_callout_decides_on_whom_config_mode() -> None:
    p = policy(account="AUTH", allowed_accounts=("APP",))
    # Refused by normal auth, or logged in to $G: the callout decides.
    assert p.callout_for(None, None, "zed") == Callout(b"AUTH", ISSUER_KEY, "", (), False)
    assert p.callout_for("bob", b"$G", "bob") is not None
    # An allowed account's users too; another account's keep their login.
    assert p.callout_for("a", b"APP", "a") is not None
    assert p.callout_for("o", b"OTHER", "o") is None
    # The service's own users bypass it (a name that is no configured user does not).
    assert p.callout_for("auth", b"AUTH", "auth") is None
    assert p.callout_for(None, None, "auth") is None
    assert p.callout_for(None, None, "ghost") is not None
    assert policy().callout_for("o", b"OTHER", "o") is not None  # no allowed list: all


def test_callout_account_members_may_not_publish_requests() -> None:
    p = policy(account="AUTH")
    denied = p.restrict(b"AUTH", None)
    assert denied is not None and not denied.publish_allowed(b"$SYS.REQ.USER.AUTH")
    assert denied.publish_allowed(b"anything.else")
    own = UserPermissions(Permissions(publish=SubjectPermission(deny=("x.>",))))
    merged = p.restrict(b"AUTH", own)
    assert merged is not own and not merged.publish_allowed(b"x.y")
    assert not merged.publish_allowed(b"$SYS.REQ.USER.AUTH")
    assert own.publish_allowed(b"$SYS.REQ.USER.AUTH")  # the shared original is untouched
    assert p.restrict(b"APP", own) is own


def test_callout_request_is_signed_by_the_server_and_sealed_with_xkey() -> None:
    callout = Callout(b"AUTH", ISSUER_KEY, curve_public_key(SERVICE_XKEY), (), False)
    opts = ConnectOptions(user="bob", password="pw", name="app", protocol=1, sig="s")
    facts = ClientFacts("10.0.0.1", 7, "nonce", None)
    request = build_request(callout, SERVER, facts, opts, None, 2.0)
    assert headers.header_value(request.header, XKEY_HEADER) == SERVER.xkey.encode()
    token = open_sealed(request.payload, SERVICE_XKEY, SERVER.xkey).decode()
    claims = jwt.decode(token, "authorization_request")
    assert (claims.iss, claims.sub, claims.aud) == (
        SERVER.id,
        ISSUER_KEY,
        "nats-authorization-request",
    )
    assert time.time() < claims.exp <= time.time() + 3
    nats = claims.nats
    assert nats["user_nkey"] == request.user_nkey
    assert nats["server_id"] == {
        "name": "srv", "host": "127.0.0.1", "id": SERVER.id,
        "version": nats["server_id"]["version"], "xkey": SERVER.xkey,
    }  # fmt: skip
    assert nats["client_info"] == {
        "host": "10.0.0.1", "id": 7, "user": "bob", "name": "app", "kind": "Client",
        "type": "nats", "nonce": "nonce",
    }  # fmt: skip
    assert nats["connect_opts"] == {
        "sig": "s", "user": "bob", "pass": "pw", "name": "app", "protocol": 1,
    }  # fmt: skip
    plain = build_request(callout._replace(xkey=""), SERVER, facts, opts, None, 2.0)
    assert plain.header == b"" and plain.payload.startswith(b"eyJ")


def answer(user_nkey: str, *, inner: dict[str, Any] | None = None, **claims: Any) -> bytes:
    user = jwt.encode(
        "user", user_nkey, ISSUER, {"pub": {"allow": ["a.>"]}}, audience="APP", name="bob"
    )
    signer = claims.pop("signer", ISSUER)
    return jwt.encode(
        "authorization_response",
        claims.pop("subject", user_nkey),
        signer,
        inner if inner is not None else {"jwt": user},
        audience=claims.pop("audience", SERVER.id),
        **claims,
    ).encode()


def test_callout_verdict_of_a_good_answer() -> None:
    p = policy(account="AUTH")
    callout = p.callout_for(None, None, "bob")
    assert callout is not None
    nkey = jwt.public_key(jwt.new_seed("user"))
    verdict = p.verdict(callout, nkey, answer(nkey), SERVER)
    assert (verdict.account, verdict.name, verdict.subs, verdict.payload) == (b"APP", "bob", -1, -1)
    assert verdict.permissions is not None and not verdict.permissions.publish_allowed(b"b")
    sealed = seal(answer(nkey), SERVICE_XKEY, SERVER.xkey)
    with_xkey = callout._replace(xkey=curve_public_key(SERVICE_XKEY))
    assert p.verdict(with_xkey, nkey, sealed, SERVER).account == b"APP"


def _user(nkey: str, signer: str = ISSUER, **fields: Any) -> str:
    audience = fields.pop("aud", "APP")
    return jwt.encode("user", nkey, signer, fields, audience=audience, **fields.pop("claims", {}))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("empty", 'Auth callout violation: "no reason supplied" on account "AUTH"'),
        ("garbage", "Expected three segments"),
        ("other subject", "not for expected user"),
        ("other audience", "not for server"),
        ("bad audience", "Audience must be a server public key"),
        ("both", "Only Error or Jwt can be set"),
        ("refusal", "Auth callout service returned an error: nope"),
        ("expired answer", "claim is expired"),
        ("user for another", "Expected authorized user of"),
        ("user by stranger", "Wrong issuer for auth callout response"),
        ("issuer_account", "attempted to use issuer_account"),
        ("no such account", 'No valid account "NOPE"'),
        ("expired user", "Error validating user JWT: claim is expired"),
        ("bad connection types", "using invalid connection type"),
    ],
)
def test_callout_bad_answers_are_refused_with_nats_servers_reasons(case: str, reason: str) -> None:
    p = policy(account="AUTH")
    callout = p.callout_for(None, None, "bob")
    assert callout is not None
    nkey = jwt.public_key(jwt.new_seed("user"))
    other = jwt.public_key(jwt.new_seed("user"))
    stranger = jwt.new_seed("account")
    bodies = {
        "empty": lambda: b"",
        "garbage": lambda: b"eyJ-not-a-token",
        "other subject": lambda: answer(nkey, subject=other),
        "other audience": lambda: answer(nkey, audience=jwt.public_key(jwt.new_seed("server"))),
        "bad audience": lambda: answer(nkey, audience="APP"),
        "both": lambda: answer(nkey, inner={"jwt": _user(nkey), "error": "x"}),
        "refusal": lambda: answer(nkey, inner={"error": "nope"}),
        "expired answer": lambda: answer(nkey, expires=int(time.time()) - 1),
        "user for another": lambda: answer(nkey, inner={"jwt": _user(other)}),
        "user by stranger": lambda: answer(nkey, inner={"jwt": _user(nkey, stranger)}),
        "issuer_account": lambda: answer(
            nkey, inner={"jwt": _user(nkey, issuer_account=ISSUER_KEY)}
        ),
        "no such account": lambda: answer(nkey, inner={"jwt": _user(nkey, aud="NOPE")}),
        "expired user": lambda: answer(
            nkey, inner={"jwt": _user(nkey, claims={"expires": int(time.time()) - 1})}
        ),
        "bad connection types": lambda: answer(
            nkey, inner={"jwt": _user(nkey, allowed_connection_types=["CARRIER_PIGEON"])}
        ),
    }
    with pytest.raises(CalloutError, match=reason.replace("(", r"\(")) as caught:
        p.verdict(callout, nkey, bodies[case](), SERVER)
    assert reason in str(caught.value)
