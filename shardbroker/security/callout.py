"""Auth callout (accounts-and-security.md §7): which clients an external service
authorizes, the request JWT the server sends it, and the checks its answer must pass
before the client is placed in an account with the permissions it names.

Pure: no asyncio, no sockets, no logging. The worker's side (publishing the request on
``$SYS.REQ.USER.AUTH``, waiting for the answer, applying the verdict) is
worker/callout.py. Follows nats-server's auth_callout.go:

- Config mode (``authorization { auth_callout }``): every client whose user is not one
  of ``auth_users`` (that names a configured user) is decided by the service, after
  normal authentication and whatever its outcome, unless it logged in to an account
  other than ``$G`` that ``allowed_accounts`` leaves out. The user JWT must be issued
  by ``issuer``; its ``aud`` names the account the client goes to.
- Operator mode: a client whose user JWT belongs to an account with
  ``authorization.auth_users`` (and is not one of them) is decided by the service of
  that account; the user JWT's issuer account is where the client goes (the callout
  account itself, or one ``allowed_accounts`` admits).

Requests are signed by the server's own NKEY (its id); with an ``xkey`` they are sealed
for the service's curve key (``xkv1``, a 24-byte nonce, a NaCl box: the nkeys format)
and the service may seal its answer back to the server's curve key. Every failure is a
CalloutError whose text is what nats-server logs; the client only ever sees
``Authorization Violation``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import nacl.exceptions
import nacl.public
import nacl.signing

from shardbroker import const
from shardbroker.config import jwt
from shardbroker.config.operator import jwt_permissions
from shardbroker.config.options import (
    AuthCallout,
    Options,
    Permissions,
    SubjectPermission,
    all_users,
    operator_mode,
    system_account_name,
)
from shardbroker.protocol import headers
from shardbroker.protocol.messages import ConnectOptions
from shardbroker.security.permissions import UserPermissions

AUTH_CALLOUT_SUBJECT = b"$SYS.REQ.USER.AUTH"
REQUEST_AUDIENCE = "nats-authorization-request"
XKEY_HEADER = b"Nats-Server-Xkey"
XKEY_VERSION = b"xkv1"
_NONCE_SIZE = 24
_JWT_PREFIX = b"eyJ"
_ANY_ACCOUNT = "*"
_CONNECTION_TYPES = frozenset(
    ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS")
)
# What a token login shows as its user (nats getRawAuthUser).
_REDACTED = "[REDACTED]"


class CalloutError(ValueError):
    """Why a callout did not authorize a client (logged; the client sees
    Authorization Violation)."""


# -- curve keys ----------------------------------------------------------------------------


def new_curve_seed() -> str:
    return jwt.new_seed("curve")


def curve_public_key(seed: str) -> str:
    """The public curve key (`X...`) of a curve seed (`SX...`)."""
    return jwt.encode_public_key(bytes(_private(seed).public_key), "curve")


def _private(seed: str) -> nacl.public.PrivateKey:
    raw = jwt.decode_seed(seed, "curve")
    if raw is None:
        raise CalloutError("not a curve seed")
    return nacl.public.PrivateKey(raw)


def _public(key: str) -> nacl.public.PublicKey:
    raw = jwt.decode_public_key(key, "curve")
    if raw is None:
        raise CalloutError("not a public curve key")
    return nacl.public.PublicKey(raw)


def seal(message: bytes, sender_seed: str, recipient: str) -> bytes:
    """`message` sealed from the sender's curve key to the recipient's (nkeys Seal)."""
    nonce = os.urandom(_NONCE_SIZE)
    box = nacl.public.Box(_private(sender_seed), _public(recipient))
    return XKEY_VERSION + nonce + box.encrypt(message, nonce).ciphertext


def open_sealed(sealed: bytes, recipient_seed: str, sender: str) -> bytes:
    """What `sender` sealed for the holder of `recipient_seed` (nkeys Open)."""
    if len(sealed) <= len(XKEY_VERSION) + _NONCE_SIZE:
        raise CalloutError("nkeys: invalid encrypted data")
    if not sealed.startswith(XKEY_VERSION):
        raise CalloutError("nkeys: encrypted input is not valid")
    nonce = sealed[len(XKEY_VERSION) : len(XKEY_VERSION) + _NONCE_SIZE]
    box = nacl.public.Box(_private(recipient_seed), _public(sender))
    try:
        return box.decrypt(sealed[len(XKEY_VERSION) + _NONCE_SIZE :], nonce)
    except nacl.exceptions.CryptoError:
        raise CalloutError("nkeys: could not decrypt input") from None


# -- who is decided by a callout -----------------------------------------------------------


class ServerIdentity(NamedTuple):
    """The server as the callout service sees it."""

    seed: str  # its NKEY seed (`SN...`): signs the requests
    id: str  # the public key: the requests' issuer, the answers' audience
    name: str
    host: str
    xkey_seed: str  # its curve seed (`SX...`): seals and opens
    xkey: str


class Callout(NamedTuple):
    """Where one client's request goes, and whom the answer must come from."""

    account: bytes  # the request is published, and the answer comes back, in it
    issuer: str  # config mode: the configured issuer; operator mode: the account's key
    xkey: str  # the service's curve key ("": requests are not sealed)
    allowed_accounts: tuple[str, ...]  # operator mode: where else clients may go
    operator: bool


class CalloutVerdict(NamedTuple):
    """What a callout allowed: the account, permissions and limits (-1: none; the
    user JWT's own limits are not applied, as nats-server does not) and expiry."""

    account: bytes
    permissions: UserPermissions | None
    subs: int
    payload: int
    expires: int  # Unix seconds; 0: never
    name: str  # the user name the connection goes by ("": the one it presented)


class ClientFacts(NamedTuple):
    """What the request tells the service about the client, besides its CONNECT."""

    host: str
    cid: int
    nonce: str
    tls: dict[str, Any] | None


AccountClaims = Callable[[str], "jwt.Claims | None"]


def raw_auth_user(opts: ConnectOptions, user: str | None) -> str:
    """The user a client presented (nats getRawAuthUser): its NKEY, user name, JWT
    user key, a placeholder for a token, or nothing."""
    if opts.nkey:
        return opts.nkey
    if opts.user:
        return opts.user
    if opts.jwt and user:
        return user
    if opts.auth_token:
        return _REDACTED
    return ""


class CalloutPolicy:
    """The auth callout settings of a broker (config or operator mode), ready for
    CONNECTs. One per worker, next to its Authenticator; rebuilt by a reload."""

    __slots__ = ("account_claims", "accounts", "config", "listed", "operator")

    def __init__(self, opts: Options, account_claims: AccountClaims) -> None:
        auth = opts.authorization
        self.config: AuthCallout | None = auth.callout if auth is not None else None
        self.operator = operator_mode(opts)
        # Operator mode: an account's claims (None: unknown or not trusted), looked up
        # when needed, so that live account updates count.
        self.account_claims = account_claims
        # Config mode: the accounts a user JWT's `aud` may name.
        names = {a.name for a in opts.accounts} | {const.GLOBAL_ACCOUNT.decode()}
        system = system_account_name(opts)
        if system:
            names.add(system)
        self.accounts = frozenset(names)
        # nats-server 2.15.1 lets only configured users (and NKEYs) bypass the callout
        # as auth_users: with no such user, even an auth_users name is called out.
        self.listed = frozenset(entry.name for entry in all_users(opts))

    @classmethod
    def build(cls, opts: Options, account_claims: AccountClaims) -> CalloutPolicy | None:
        """A policy when a callout can apply: configured, or operator mode (where any
        account JWT may ask for one)."""
        auth = opts.authorization
        if operator_mode(opts) or (auth is not None and auth.callout is not None):
            return cls(opts, account_claims)
        return None

    def _external(self, account: str) -> dict[str, Any] | None:
        """An account JWT's `authorization` section, when it turns the callout on."""
        claims = self.account_claims(account)
        if claims is None:
            return None
        section = claims.nats.get("authorization")
        if not isinstance(section, dict) or not section.get("auth_users"):
            return None
        return section

    def callout_for(self, user: str | None, account: bytes | None, raw_user: str) -> Callout | None:
        """The callout deciding on a client that normal authentication logged in as
        `user` to `account` (None: refused), or None when its result stands."""
        config = self.config
        if config is not None and not self.operator:
            if (
                account is not None
                and account != const.GLOBAL_ACCOUNT
                and config.allowed_accounts
                and account.decode() not in config.allowed_accounts
            ):
                return None
            if raw_user in config.auth_users and raw_user in self.listed:
                return None
            return Callout(config.account.encode(), config.issuer, config.xkey, (), False)
        if not self.operator or user is None or account is None:
            return None
        key = account.decode()
        section = self._external(key)
        if section is None or raw_user in (section.get("auth_users") or ()):
            return None
        allowed = tuple(str(a) for a in section.get("allowed_accounts") or ())
        return Callout(account, key, str(section.get("xkey") or ""), allowed, True)

    def restrict(self, account: bytes, perms: UserPermissions | None) -> UserPermissions | None:
        """A member of a callout account may not publish authorization requests."""
        config = self.config
        if self.operator:
            member = self._external(account.decode()) is not None
        else:
            member = config is not None and account == config.account.encode()
        if not member:
            return perms
        if perms is None:
            return UserPermissions(
                Permissions(publish=SubjectPermission(deny=(AUTH_CALLOUT_SUBJECT.decode(),)))
            )
        return perms.with_publish_denied(AUTH_CALLOUT_SUBJECT)

    # -- the answer ------------------------------------------------------------------------

    def verdict(
        self, callout: Callout, user_nkey: str, body: bytes, server: ServerIdentity
    ) -> CalloutVerdict:
        """Check the service's answer to a request about `user_nkey`; what it allows,
        or CalloutError with nats-server's reason."""
        account = callout.account.decode()
        response = _response(callout, user_nkey, body, server)
        if callout.operator and not response.encrypted:
            signer = str(response.claims.nats.get("issuer_account") or response.claims.iss)
            if signer != account and signer not in _signing_keys(self.account_claims(account)):
                raise CalloutError("Auth callout signing key is unknown")
        try:
            user = jwt.decode(str(response.claims.nats.get("jwt")), "user")
        except jwt.JWTError as exc:
            raise CalloutError(str(exc)) from None
        if user.nats.get("proxy_required"):
            raise CalloutError("Proxy is required")
        if user.expired():
            raise CalloutError("Error validating user JWT: claim is expired")
        if user.not_yet_valid():
            raise CalloutError("Error validating user JWT: claim is not yet valid")
        if user.sub != user_nkey:
            raise CalloutError(
                f'Expected authorized user of "{user_nkey}" but got "{user.sub}" on account '
                f'"{account}"'
            )
        types = [str(t).upper() for t in user.nats.get("allowed_connection_types") or ()]
        if types and not any(t in _CONNECTION_TYPES for t in types):
            raise CalloutError(
                f'Authorized user on account "{account}" using invalid connection type'
            )
        target = self._placement(callout, user)
        perms = jwt_permissions(user.nats)
        if perms is None and callout.operator:
            claims = self.account_claims(target)
            defaults = claims.nats.get("default_permissions") if claims is not None else None
            if defaults:
                perms = jwt_permissions(defaults)
        return CalloutVerdict(
            target.encode(),
            UserPermissions(perms) if perms is not None else None,
            -1,
            -1,
            user.exp,
            user.name,
        )

    def _placement(self, callout: Callout, user: jwt.Claims) -> str:
        """The account the client goes to (nats getIssuerAccount and
        assignAccountAndPermissions)."""
        account = callout.account.decode()
        issuer = user.iss
        issuer_account = str(user.nats.get("issuer_account") or "")
        if issuer_account:
            if not callout.operator:
                raise CalloutError(
                    f'Error non operator mode account "{account}": attempted to use issuer_account'
                )
            issuer = issuer_account
        if issuer != callout.issuer:
            if not callout.operator:
                raise CalloutError(
                    f'Wrong issuer for auth callout response on account "{account}", expected '
                    f'"{callout.issuer}" got "{issuer}"'
                )
            allowed = callout.allowed_accounts
            if not (allowed == (_ANY_ACCOUNT,) or issuer in allowed):
                raise CalloutError(
                    f'Account "{user.iss}" not permitted as valid account option for auth '
                    f'callout for account "{account}"'
                )
        if not callout.operator:
            if user.aud not in self.accounts:
                raise CalloutError(
                    f'No valid account "{user.aud}" for auth callout response on account '
                    f'"{account}": account not found'
                )
            return user.aud
        target = self.account_claims(issuer)
        if target is None:
            raise CalloutError(
                f'No valid account "{issuer}" for auth callout response on account '
                f'"{account}": account not found'
            )
        if user.iss != issuer and user.iss not in _signing_keys(target):
            raise CalloutError(f'User JWT issuer "{user.iss}" is not known')
        return issuer


class _Response(NamedTuple):
    claims: jwt.Claims
    encrypted: bool


def _response(callout: Callout, user_nkey: str, body: bytes, server: ServerIdentity) -> _Response:
    """The answer's authorization_response claims, opened and checked (nats
    decodeResponse): for this user, for this server, and not a refusal."""
    account = callout.account.decode()
    if not body:
        raise CalloutError(f'Auth callout violation: "no reason supplied" on account "{account}"')
    encrypted = False
    if callout.xkey and not body.startswith(_JWT_PREFIX):
        try:
            body = open_sealed(body, server.xkey_seed, callout.xkey)
        except CalloutError as exc:
            raise CalloutError(
                f'Error decrypting auth callout response on account "{account}": {exc}'
            ) from None
        encrypted = True
    try:
        claims = jwt.decode(body.decode(errors="replace"), "authorization_response")
    except jwt.JWTError as exc:
        raise CalloutError(_title_case(str(exc))) from None
    nats = claims.nats
    issues = []
    if jwt.decode_public_key(claims.sub, "user") is None:
        issues.append("Subject must be a user public key")
    if jwt.decode_public_key(claims.aud, "server") is None:
        issues.append("Audience must be a server public key")
    error, user_jwt = str(nats.get("error") or ""), str(nats.get("jwt") or "")
    if not error and not user_jwt:
        issues.append("Error or Jwt is required")
    if error and user_jwt:
        issues.append("Only Error or Jwt can be set")
    issuer_account = str(nats.get("issuer_account") or "")
    if issuer_account and jwt.decode_public_key(issuer_account, "account") is None:
        issues.append("issuer_account is not an account public key")
    if claims.expired():
        issues.append("claim is expired")
    if claims.not_yet_valid():
        issues.append("claim is not yet valid")
    if issues:
        raise CalloutError(f"Authorization response had validation errors: {issues[0]}")
    if claims.sub != user_nkey:
        raise CalloutError("Auth callout violation: auth callout response is not for expected user")
    if claims.aud != server.id:
        raise CalloutError("Auth callout violation: auth callout response is not for server")
    if error:
        raise CalloutError(f"Auth callout service returned an error: {error}")
    return _Response(claims, encrypted)


def _title_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _signing_keys(claims: jwt.Claims | None) -> set[str]:
    if claims is None:
        return set()
    return {
        key if isinstance(key, str) else str(key.get("key", ""))
        for key in claims.nats.get("signing_keys") or ()
    }


# -- the request ---------------------------------------------------------------------------


class CalloutRequest(NamedTuple):
    user_nkey: str  # the fresh user key the answer must be about
    header: bytes  # b"", or the header block naming the server's curve key
    payload: bytes  # the request JWT, sealed when the callout has an xkey


def new_user_nkey() -> str:
    """A fresh user public key, so that an answer cannot be replayed for another
    connection (nobody ever signs with it)."""
    raw = bytes(nacl.signing.SigningKey.generate().verify_key)
    return jwt.encode_public_key(raw, "user")


def build_request(
    callout: Callout,
    server: ServerIdentity,
    client: ClientFacts,
    opts: ConnectOptions,
    user: str | None,
    timeout: float,
) -> CalloutRequest:
    """The authorization_request about a client (nats processClientOrLeafCallout)."""
    user_nkey = new_user_nkey()
    server_id: dict[str, Any] = {
        "name": server.name,
        "host": server.host,
        "id": server.id,
        "version": const.SERVER_VERSION,
    }
    if callout.xkey:
        server_id["xkey"] = server.xkey
    info: dict[str, Any] = {
        "host": client.host,
        "id": client.cid,
        "user": raw_auth_user(opts, user),
        "name": opts.name,
    }
    # Operator mode: the tags and name of the user JWT the client logged in with.
    user_jwt = opts.jwt if callout.operator else ""
    if user_jwt:
        try:
            claims = jwt.decode(user_jwt, "user")
        except jwt.JWTError:
            claims = None
        if claims is not None:
            info["tags"] = claims.nats.get("tags") or []
            info["name_tag"] = claims.name
    info |= {"kind": "Client", "type": "nats"}
    if opts.sig:
        info["nonce"] = client.nonce
    connect: dict[str, Any] = {
        "jwt": user_jwt,
        "nkey": opts.nkey,
        "sig": opts.sig,
        "auth_token": opts.auth_token,
        "user": opts.user,
        "pass": opts.password,
        "name": opts.name,
        "lang": opts.lang,
        "version": opts.version,
    }
    # Go's omitempty: empty fields are left out (protocol is always there).
    section: dict[str, Any] = {
        "server_id": server_id,
        "user_nkey": user_nkey,
        "client_info": {k: v for k, v in info.items() if v},
        "connect_opts": {k: v for k, v in connect.items() if v} | {"protocol": opts.protocol},
    }
    if client.tls is not None:
        section["client_tls"] = client.tls
    token = jwt.encode(
        "authorization_request",
        callout.issuer,
        server.seed,
        section,
        audience=REQUEST_AUDIENCE,
        expires=int(time.time() + timeout),
    )
    payload = token.encode()
    if not callout.xkey:
        return CalloutRequest(user_nkey, b"", payload)
    sealed = seal(payload, server.xkey_seed, callout.xkey)
    header = headers.build(((XKEY_HEADER, server.xkey.encode()),))
    return CalloutRequest(user_nkey, header, sealed)
