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

import copy
import hashlib
import hmac
import json
import re
from typing import Any, NamedTuple

import bcrypt

from shardbroker import const
from shardbroker.config import jwt
from shardbroker.config.jwt_claims import account_signers, is_revoked
from shardbroker.config.nkey import signed_by
from shardbroker.config.operator import jwt_permissions, loadable_accounts, trusted_keys
from shardbroker.config.options import (
    Options,
    RateLimit,
    WebsocketConfig,
    all_users,
    has_users,
    operator_mode,
    system_account_name,
)
from shardbroker.config.rate_limit import rate_limit_from_claims
from shardbroker.security.callout import CalloutPolicy
from shardbroker.security.jwt_login import (
    TemplateError,
    connect_window,
    scoped_section,
    src_allows,
    user_claims_valid,
)
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
        "connection_type",
        "jwt_accounts",
        "logins",
        "nkeys",
        "no_auth_user",
        "operator",
        "password",
        "pinned",
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
            self.jwt_accounts = loadable_accounts(opts.account_jwts, trusted)
        # resolver_pinned_accounts: only these accounts (and the system account) log in.
        self.pinned = frozenset(opts.resolver_pinned_accounts)
        if self.pinned and opts.operators and system_account_name(opts):
            self.pinned |= {system_account_name(opts)}
        self.logins: dict[str, JWTLogin] = {}
        self.required = bool(self.token or self.user or self.users is not None or self.operator)
        # Auth callout (security/callout.py): None when no client can be decided by one.
        self.callout = CalloutPolicy.build(opts, lambda key: self.jwt_accounts.get(key))
        self.no_auth_user = opts.no_auth_user if self.required else ""
        # What a user JWT's allowed_connection_types must name for these clients.
        self.connection_type = "STANDARD"

    def for_websocket(self, ws: WebsocketConfig | None) -> Authenticator:
        """These rules as websocket clients meet them (nats-server's websocket auth
        override): the same users, accounts, JWT logins and callout (shared, not
        copied: a login recorded by one is found by the other), the block's single
        user, token and no_auth_user instead of the server's when it names any, its
        authorization timeout, and JWTs that allow the WEBSOCKET connection type."""
        view = copy.copy(self)
        view.connection_type = "WEBSOCKET"
        if ws is not None:
            if ws.auth_timeout:
                view.timeout = ws.auth_timeout
            if ws.auth_override:
                view.token, view.user, view.password = ws.token, ws.user, ws.password
                view.no_auth_user = ws.no_auth_user
                view.required = True
        return view

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
        host: str = "",
    ) -> str | None:
        """The user name these CONNECT credentials log in as, or None (refused).

        Without authentication configured everyone gets in and credentials are ignored.
        In operator mode only a user JWT counts (its user key is the name); `host`, the
        client's address, is checked against its `src`.
        """
        if not self.required:
            return ANONYMOUS
        if self.operator:
            return self._check_jwt(user_jwt, sig, nonce, host)
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

    def _check_jwt(self, token: str, sig: str, nonce: str, host: str) -> str | None:
        """nats-server's CONNECT checks of a user JWT (jwt-operator-mode.md §7); the
        user key, or None for any failure."""
        if not token:
            return None
        try:
            user = jwt.decode(token, "user")
        except jwt.JWTError:
            return None
        if user.expired() or user.not_yet_valid() or not user_claims_valid(user.nats):
            return None
        account_key = str(user.nats.get("issuer_account") or user.iss)
        if self.pinned and account_key not in self.pinned:
            return None
        account = self.jwt_accounts.get(account_key)
        if account is None or account.expired() or account.not_yet_valid():
            return None
        signers = account_signers(account)
        if user.iss not in signers:
            return None
        section = user.nats
        template = signers[user.iss]
        if template is not None:
            # Signed by a scoped key: the key's template is the user's permissions.
            try:
                section = scoped_section(user, account, template)
            except TemplateError:
                return None
        limits = account.nats.get("limits") or {}
        if section.get("bearer_token"):
            if limits.get("disallow_bearer"):
                return None
        elif not (nonce and signed_by(user.sub, nonce, sig)):
            return None
        if is_revoked(account.nats.get("revocations"), user.sub, user.iat):
            return None
        types = [str(t).upper() for t in section.get("allowed_connection_types") or ()]
        if (
            types
            and self.connection_type not in types
            and any(t in _CONNECTION_TYPES for t in types)
        ):
            return None
        allowed_now, window_ends = connect_window(section)
        if not src_allows(section, host) or not allowed_now:
            return None
        perms = jwt_permissions(section)
        defaults = perms is None
        if defaults and account.nats.get("default_permissions"):
            perms = jwt_permissions(account.nats["default_permissions"])
        # Limits a scoped key's template leaves out are unlimited, as in version 1.
        unlimited = user.version == 1 or template is not None
        expires = user.exp
        if window_ends and (not expires or window_ends < expires):
            expires = int(window_ends)  # closed when its connect-time range ends
        self.logins[user.sub] = JWTLogin(
            account_key.encode(),
            UserPermissions(perms) if perms is not None else None,
            _jwt_limit(section, "subs", unlimited),
            _jwt_limit(section, "payload", unlimited),
            expires,
            account.exp,
            user.sub,
            user.iat,
            bool(user.nats.get("bearer_token")),
            user.iss if user.iss != account_key else "",
            defaults,
            _scope_text(template),
            rate_limit_from_claims(section),
        )
        return user.sub

    def recheck(self, login: JWTLogin) -> tuple[str, JWTLogin]:
        """A JWT login against the account claims in effect now (after an update was
        pushed), as nats-server re-checks its clients on a claims update: KEEP (with the
        account's default permissions as they are now, if it has none of its own),
        ACCOUNT_EXPIRED (the account is gone or expired), REFUSED (a bearer token the
        account no longer allows), REVOKED (its user key is revoked) or GONE (the
        signing key that issued it was removed, or its scope changed)."""
        account = self.jwt_accounts.get(login.account.decode())
        if account is None or account.expired():
            return ACCOUNT_EXPIRED, login
        if login.bearer and (account.nats.get("limits") or {}).get("disallow_bearer"):
            return REFUSED, login
        if is_revoked(account.nats.get("revocations"), login.user_key, login.issued):
            return REVOKED, login
        if login.signer:
            signers = account_signers(account)
            if login.signer not in signers or _scope_text(signers[login.signer]) != login.scope:
                return GONE, login
        if login.default_permissions:
            defaults = jwt_permissions(account.nats.get("default_permissions") or {})
            login = login._replace(
                permissions=UserPermissions(defaults) if defaults is not None else None
            )
        self.logins[login.user_key] = login
        return KEEP, login

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
    """What a user JWT logged in with: its account, permissions and limits (-1: none),
    and what a claims update re-checks."""

    account: bytes
    permissions: UserPermissions | None
    subs: int
    payload: int
    expires: int  # Unix seconds; 0: never
    account_expires: int  # the account JWT's expiry, Unix seconds; 0: never
    user_key: str
    issued: int  # the user JWT's iat
    bearer: bool
    signer: str  # the account signing key that issued it; "": the account's own key
    default_permissions: bool  # its permissions are the account's defaults
    scope: str  # the signer's user template (_scope_text); "": not a scoped key
    # Its publish budget (the JWT's rate limit extension, config/rate_limit.py).
    rate_limit: RateLimit | None = None


def _scope_text(template: dict[str, Any] | None) -> str:
    """A scoped key's template in a form a later claims update compares with."""
    return "" if template is None else json.dumps(template, sort_keys=True)


_CONNECTION_TYPES = frozenset(
    ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS")
)


def _jwt_limit(section: dict[str, Any], name: str, unlimited: bool) -> int:
    """A user JWT limit: -1 unlimited; absent is 0 (nothing) in version 2, -1 where
    `unlimited` (version 1, a scoped key's template)."""
    value = section.get(name)
    if value is None:
        return -1 if unlimited else 0
    return int(value)


# What a reload does to a logged-in client (nats-server reloadAuthorization).
KEEP = "keep"  # still authorized (possibly as another user name)
GONE = "gone"  # its user was removed: closed without an error, as nats-server does
REFUSED = "refused"  # its credentials no longer pass: -ERR 'Authorization Violation'
# What a claims update does to a JWT login besides KEEP.
REVOKED = "revoked"  # -ERR 'User Authentication Revoked'
ACCOUNT_EXPIRED = "account expired"  # -ERR 'Account Authentication Expired'

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
