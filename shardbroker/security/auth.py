"""Authentication of a CONNECT: credentials in, the user they log in as (or None) out.

Pure: no asyncio, no sockets. Built once per worker from Options (``Authenticator``)
and consulted once per CONNECT, never per message. Follows nats-server's config mode
(accounts-and-security.md §1): users list (client sent ``user``) -> ``no_auth_user``
(client sent no credentials) -> single token -> single user/password. Every failure is
the same answer (None), whatever the reason; the caller sends
``-ERR 'Authorization Violation'``.

Secrets are compared in constant time (``hmac.compare_digest``); a stored secret that
looks like a bcrypt hash (``$2a$``, ``$2b$``, ``$2x$``, ``$2y$`` and a two-digit cost)
is checked with the ``bcrypt`` package. bcrypt is deliberately slow, so successful
checks are remembered (keyed by the hash and a SHA-256 of the presented secret, never
the secret itself) and a client that reconnects does not pay for it again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, NamedTuple

import bcrypt

from shardbroker import const
from shardbroker.config import jwt
from shardbroker.config.nkey import signed_by
from shardbroker.config.operator import jwt_permissions, trusted_keys
from shardbroker.config.options import Options, all_users, has_users, operator_mode
from shardbroker.security.callout import CalloutPolicy
from shardbroker.security.permissions import UserPermissions

_BCRYPT_RE = re.compile(r"^\$2[abxy]\$\d{2}\$.*")
_BCRYPT_CACHE_MAX = 1024

# The user a token or the single user/password logs in as has no name of its own.
ANONYMOUS = ""


def is_bcrypt(stored: str) -> bool:
    return _BCRYPT_RE.match(stored) is not None


_bcrypt_ok: dict[tuple[str, bytes], bool] = {}


def _bcrypt_matches(stored: str, given: str) -> bool:
    key = (stored, hashlib.sha256(given.encode()).digest())
    if key in _bcrypt_ok:
        return True
    # The `$2x$`/`$2y$` variants are the same algorithm; the bcrypt package knows `$2a$`/`$2b$`.
    hashed = stored.encode()
    if hashed[:4] in (b"$2x$", b"$2y$"):
        hashed = b"$2b$" + hashed[4:]
    try:
        ok = bcrypt.checkpw(given.encode(), hashed)
    except ValueError:  # not a well-formed hash after all
        return False
    if ok:
        if len(_bcrypt_ok) >= _BCRYPT_CACHE_MAX:
            _bcrypt_ok.clear()
        _bcrypt_ok[key] = True
    return ok


def secret_matches(stored: str, given: str) -> bool:
    """A presented password or token against the configured one (plain or bcrypt)."""
    if is_bcrypt(stored):
        return _bcrypt_matches(stored, given)
    return hmac.compare_digest(stored.encode(), given.encode())


class Authenticator:
    """The authentication options of a broker, ready for checking CONNECTs."""

    __slots__ = (
        "accounts",
        "callout",
        "jwt_accounts",
        "logins",
        "nkeys",
        "no_auth_user",
        "operator",
        "password",
        "required",
        "timeout",
        "token",
        "user",
        "users",
    )

    def __init__(self, opts: Options) -> None:
        auth = opts.authorization
        self.token = auth.token if auth is not None else ""
        self.user = auth.user if auth is not None else ""
        self.password = auth.password if auth is not None else ""
        listed = all_users(opts)
        self.users: dict[str, str] | None = (
            {e.user.user: e.user.password for e in listed if not e.user.nkey}
            if has_users(opts)
            else None
        )
        # NKEY users log in as their public key.
        self.nkeys = frozenset(e.user.nkey for e in listed if e.user.nkey)
        # The account each listed user logs in to; everyone else is in $G.
        self.accounts = {e.name: e.account.encode() for e in listed}
        self.timeout = auth.timeout if auth is not None else const.AUTH_TIMEOUT
        # Operator mode: the preloaded account JWTs a trusted key signed, and what each
        # user key logged in with (its account, permissions and limits).
        self.operator = operator_mode(opts)
        self.jwt_accounts: dict[str, jwt.Claims] = {}
        if self.operator:
            trusted = trusted_keys(opts.operators, opts.trusted_keys)
            for key, token in opts.resolver_preload:
                claims = jwt.decode(token, "account")
                if claims.iss in trusted:
                    self.jwt_accounts[key] = claims
        self.logins: dict[str, JWTLogin] = {}
        self.required = bool(self.token or self.user or self.users is not None or self.operator)
        # Auth callout (security/callout.py): None when no client can be decided by one.
        self.callout = CalloutPolicy.build(opts, lambda key: self.jwt_accounts.get(key))
        self.no_auth_user = opts.no_auth_user if self.required else ""

    @property
    def advertised(self) -> bool:
        """INFO `auth_required`: hidden when no_auth_user lets credential-less clients in."""
        return self.required and not self.no_auth_user

    @property
    def needs_nonce(self) -> bool:
        """INFO carries a fresh nonce for every connection when NKEY users exist, and
        in operator mode."""
        return bool(self.nkeys) or self.operator

    def check(
        self,
        user: str,
        password: str,
        token: str,
        nkey: str = "",
        sig: str = "",
        nonce: str = "",
        user_jwt: str = "",
    ) -> str | None:
        """The user name these CONNECT credentials log in as, or None (refused).

        Without authentication configured everyone gets in and credentials are ignored.
        In operator mode only a user JWT counts (its user key is the name).
        """
        if not self.required:
            return ANONYMOUS
        if self.operator:
            return self._check_jwt(user_jwt, sig, nonce)
        if nkey:
            # An NKEY user signs this connection's nonce (nats-server checks it first).
            if nkey in self.nkeys and nonce and signed_by(nkey, nonce, sig):
                return nkey
            return None
        users = self.users
        if users is not None:
            if user:
                stored = users.get(user)
                if stored is None:
                    return None
                return user if secret_matches(stored, password) else None
            if self.no_auth_user and not password and not token:
                return self.no_auth_user
            return None
        if self.token:
            return ANONYMOUS if secret_matches(self.token, token) else None
        if hmac.compare_digest(self.user.encode(), user.encode()) and secret_matches(
            self.password, password
        ):
            return user
        return None

    def is_slow(self, user: str, password: str, token: str) -> bool:
        """Would check() run bcrypt (a stored hash whose answer is not cached yet)?

        The caller then runs check() off its event loop: bcrypt takes hundreds of
        milliseconds by design."""
        if not self.required:
            return False
        if self.users is not None:
            stored = self.users.get(user) if user else None
            given = password
        elif self.token:
            stored, given = self.token, token
        else:
            stored, given = self.password, password
        if stored is None or not is_bcrypt(stored):
            return False
        return (stored, hashlib.sha256(given.encode()).digest()) not in _bcrypt_ok

    def _check_jwt(self, token: str, sig: str, nonce: str) -> str | None:
        """nats-server's CONNECT checks of a user JWT (jwt-operator-mode.md §7); the
        user key, or None for any failure."""
        if not token:
            return None
        try:
            user = jwt.decode(token, "user")
        except jwt.JWTError:
            return None
        if user.expired() or user.not_yet_valid():
            return None
        account_key = str(user.nats.get("issuer_account") or user.iss)
        account = self.jwt_accounts.get(account_key)
        if account is None or account.expired():
            return None
        signing = {
            key if isinstance(key, str) else str(key.get("key", ""))
            for key in account.nats.get("signing_keys") or ()
        }
        if user.iss != account_key and user.iss not in signing:
            return None
        limits = account.nats.get("limits") or {}
        if user.nats.get("bearer_token"):
            if limits.get("disallow_bearer"):
                return None
        elif not (nonce and signed_by(user.sub, nonce, sig)):
            return None
        revocations = account.nats.get("revocations") or {}
        revoked = max(int(revocations.get(user.sub, 0)), int(revocations.get("*", 0)))
        if revoked and user.iat <= revoked:
            return None
        types = [str(t).upper() for t in user.nats.get("allowed_connection_types") or ()]
        if types and "STANDARD" not in types and any(t in _CONNECTION_TYPES for t in types):
            return None
        perms = jwt_permissions(user.nats)
        if perms is None and account.nats.get("default_permissions"):
            perms = jwt_permissions(account.nats["default_permissions"])
        v1 = user.version == 1
        self.logins[user.sub] = JWTLogin(
            account_key.encode(),
            UserPermissions(perms) if perms is not None else None,
            _jwt_limit(user.nats, "subs", v1),
            _jwt_limit(user.nats, "payload", v1),
            user.exp,
        )
        return user.sub

    def account_of(self, name: str) -> bytes:
        """The account a logged-in user belongs to (the global one for a token, the
        single user, or when no authentication is configured)."""
        login = self.logins.get(name)
        if login is not None:
            return login.account
        return self.accounts.get(name, const.GLOBAL_ACCOUNT)

    def is_listed(self, name: str) -> bool:
        """Is `name` a user (or NKEY) of the users list?"""
        return name in self.nkeys or (self.users is not None and name in self.users)

    def secret_of(self, name: str) -> str | None:
        """The stored password of a users-list user (None: no such user)."""
        return None if self.users is None else self.users.get(name)

    def plaintext_passwords(self) -> bool:
        """nats-server warns at startup when any secret is not a bcrypt hash."""
        secrets = [self.password] if self.user else []
        if self.users is not None:
            secrets.extend(self.users.values())
        return any(s and not is_bcrypt(s) for s in secrets)


class JWTLogin(NamedTuple):
    """What a user JWT logged in with: its account, permissions and limits (-1: none)."""

    account: bytes
    permissions: UserPermissions | None
    subs: int
    payload: int
    expires: int  # Unix seconds; 0: never


_CONNECTION_TYPES = frozenset(
    ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS")
)


def _jwt_limit(section: dict[str, Any], name: str, v1: bool) -> int:
    """A user JWT limit: -1 unlimited; absent is 0 (nothing) in version 2, -1 in v1."""
    value = section.get(name)
    if value is None:
        return -1 if v1 else 0
    return int(value)


# What a reload does to a logged-in client (nats-server reloadAuthorization).
KEEP = "keep"  # still authorized (possibly as another user name)
GONE = "gone"  # its user was removed: closed without an error, as nats-server does
REFUSED = "refused"  # its credentials no longer pass: -ERR 'Authorization Violation'

Credentials = tuple[str, str, str, str, str]  # CONNECT user, pass, auth_token, nkey, sig


def reauthorize(
    old: Authenticator,
    new: Authenticator,
    logged_in_as: str,
    credentials: Credentials | None,
    memo: dict[Credentials, str | None] | None = None,
) -> tuple[str, str]:
    """(KEEP, user) | (GONE, "") | (REFUSED, "") for a client logged in under `old`.

    `credentials` are what its CONNECT presented, None when it was logged in as
    no_auth_user without one; such a client keeps its login while that user exists with
    the same stored secret. A users-list user whose stored secret did not change is
    kept without checking again, and `memo` (one per reload) keeps one answer per set of
    credentials: a reload must not run bcrypt once per connected client.
    """
    if new.operator and logged_in_as in old.logins:
        # Operator mode reloads keep the operator and its accounts (not reloadable):
        # a JWT login stays what it was.
        new.logins[logged_in_as] = old.logins[logged_in_as]
        return KEEP, logged_in_as
    if old.is_listed(logged_in_as) and not new.is_listed(logged_in_as):
        return GONE, ""
    if not new.required:
        return KEEP, logged_in_as
    if credentials is None:
        if (
            logged_in_as
            and new.no_auth_user == logged_in_as
            and old.secret_of(logged_in_as) == new.secret_of(logged_in_as)
        ):
            return KEEP, logged_in_as
        return REFUSED, ""
    user, password, token, nkey, _sig = credentials
    if nkey:
        # Its signature of this connection's nonce was checked at CONNECT.
        return (KEEP, nkey) if nkey in new.nkeys else (REFUSED, "")
    if user and old.is_listed(user) and old.secret_of(user) == new.secret_of(user):
        return KEEP, user
    key = (user, password, token, "", "")
    if memo is not None and key in memo:
        name = memo[key]
    else:
        name = new.check(user, password, token)
        if memo is not None:
            memo[key] = name
    return (REFUSED, "") if name is None else (KEEP, name)
