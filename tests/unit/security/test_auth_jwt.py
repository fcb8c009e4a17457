"""security.auth in operator mode: a user JWT's login with scoped signing keys, `src`,
`times` and resolver_pinned_accounts (jwt-operator-mode.md §7)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.security.auth import GONE, KEEP, Authenticator

OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
ACCOUNT_KEY = jwt.public_key(ACCOUNT)
OTHER = jwt.new_seed("account")
SYSTEM = jwt.new_seed("account")
SCOPED = jwt.new_seed("account")
NONCE = "nonce-of-15-chr"
UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
TEMPLATE = {"pub": {"allow": ["out.{{name()}}"]}, "sub": {"allow": ["in.{{tag(team)}}"]},
            "payload": 64}  # fmt: skip


def authenticator(
    tmp_path: Path, extra: str = "", not_before: int = 0, **account: Any
) -> Authenticator:
    account.setdefault("limits", UNLIMITED)
    account.setdefault(
        "signing_keys",
        [{"kind": "user_scope", "key": jwt.public_key(SCOPED), "role": "r", "template": TEMPLATE}],
    )
    preload = {
        ACCOUNT_KEY: jwt.encode(
            "account", ACCOUNT_KEY, OPERATOR, account, name="acme", not_before=not_before
        ),
        jwt.public_key(OTHER): jwt.encode(
            "account", jwt.public_key(OTHER), OPERATOR, {"limits": UNLIMITED}
        ),
        jwt.public_key(SYSTEM): jwt.encode(
            "account", jwt.public_key(SYSTEM), OPERATOR, {"limits": UNLIMITED}
        ),
    }
    lines = "".join(f'  {key}: "{token}"\n' for key, token in preload.items())
    conf = tmp_path / "op.conf"
    conf.write_text(
        f'operator: "{jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR)}"\n'
        f"system_account: {jwt.public_key(SYSTEM)}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n{lines}}}\n{extra}"
    )
    return Authenticator(build_options(OptionsSource(config=str(conf))))


def login(
    auth: Authenticator, signer: str = ACCOUNT, host: str = "127.0.0.1", name: str = "bob",
    **fields: Any,
) -> str | None:  # fmt: skip
    seed = jwt.new_seed("user")
    if signer != ACCOUNT and signer not in (OTHER, SYSTEM):
        fields["issuer_account"] = ACCOUNT_KEY
    token = jwt.encode("user", jwt.public_key(seed), signer, fields, name=name)
    sig = base64.urlsafe_b64encode(jwt.sign(seed, NONCE.encode())).decode().rstrip("=")
    return auth.check("", "", "", sig=sig, nonce=NONCE, user_jwt=token, host=host)


def test_auth_jwt_scoped_key_user_gets_the_template(tmp_path: Path) -> None:
    auth = authenticator(tmp_path)
    key = login(auth, SCOPED, tags=["team:red"])
    assert key is not None
    granted = auth.logins[key]
    assert granted.payload == 64 and granted.subs == -1  # absent in a template: unlimited
    perms = granted.permissions
    assert perms is not None
    assert perms.can_subscribe(b"in.red", None) and not perms.can_subscribe(b"in.blue", None)


def test_auth_jwt_scoped_key_user_with_its_own_permissions_or_limits_is_refused(
    tmp_path: Path,
) -> None:
    auth = authenticator(tmp_path)
    assert login(auth, SCOPED, pub={"allow": ["x"]}) is None
    assert login(auth, SCOPED, subs=-1) is None
    assert login(auth, SCOPED, bearer_token=True) is None


def test_auth_jwt_src_is_checked_against_the_client_address(tmp_path: Path) -> None:
    auth = authenticator(tmp_path)
    assert login(auth, src="127.0.0.0/8", host="127.0.0.1") is not None
    assert login(auth, src=["10.0.0.0/8"], host="127.0.0.1") is None
    assert login(auth, src=["10.0.0.0/8"], host="10.1.2.3") is not None
    assert login(auth, src=["10.0.0.0/8", "nonsense"], host="10.1.2.3") is None  # invalid JWT


def test_auth_jwt_times_refuse_outside_and_end_the_login_with_the_range(
    tmp_path: Path,
) -> None:
    auth = authenticator(tmp_path)
    now = time.time()

    def clock(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")

    inside = [{"start": clock(now - 600), "end": clock(now + 600)}]
    outside = [{"start": clock(now + 600), "end": clock(now + 1200)}]
    assert login(auth, times=outside, times_location="UTC") is None
    key = login(auth, times=inside, times_location="UTC")
    assert key is not None
    ends = auth.logins[key].expires
    assert 0 < ends - now <= 601
    # The user JWT's own expiry wins when it comes first.
    seed = jwt.new_seed("user")
    fields = {"times": inside, "times_location": "UTC"}
    token = jwt.encode("user", jwt.public_key(seed), ACCOUNT, fields, expires=int(now) + 60)
    sig = base64.urlsafe_b64encode(jwt.sign(seed, NONCE.encode())).decode().rstrip("=")
    key = auth.check("", "", "", sig=sig, nonce=NONCE, user_jwt=token, host="127.0.0.1")
    assert key is not None and auth.logins[key].expires == int(now) + 60


def test_auth_jwt_pinned_accounts_and_the_system_account(tmp_path: Path) -> None:
    auth = authenticator(tmp_path, f'resolver_pinned_accounts: ["{ACCOUNT_KEY}"]\n')
    assert login(auth) is not None
    assert login(auth, SYSTEM) is not None  # always allowed
    assert login(auth, OTHER) is None
    unpinned = authenticator(tmp_path)
    assert login(unpinned, OTHER) is not None


def test_auth_jwt_account_not_yet_valid_or_invalid(tmp_path: Path) -> None:
    auth = authenticator(tmp_path, not_before=int(time.time()) + 3600)
    assert login(auth) is None
    auth = authenticator(tmp_path, exports=[{"subject": "a", "type": "stream"}],
                         limits={"conn": -1})  # fmt: skip
    assert login(auth) is None  # no exports allowed: nats-server does not load the account


def test_auth_jwt_claims_update_closes_users_of_a_changed_scope(tmp_path: Path) -> None:
    """nats-server closes the users of a scoped key whose template an update changed."""
    old = authenticator(tmp_path)
    key = login(old, SCOPED, tags=["team:red"])
    assert key is not None
    same = authenticator(tmp_path)
    assert same.recheck(old.logins[key])[0] == KEEP
    scope = {"kind": "user_scope", "key": jwt.public_key(SCOPED), "role": "r",
             "template": {**TEMPLATE, "payload": 32}}  # fmt: skip
    changed = authenticator(tmp_path, signing_keys=[scope])
    assert changed.recheck(old.logins[key])[0] == GONE
