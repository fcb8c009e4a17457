"""An auth callout service: it decides who may connect to shardbroker (or nats-server),
to which account, with which permissions.

The server sends it an authorization request for every client that is not one of the
callout's ``auth_users``. This service checks the user name and password the client
presented (or its token ``user:password``, which a client logging in with a user JWT in
operator mode can send besides) against a JSON file of users, and answers with a user
JWT signed with the issuer account's seed, naming the client's account and permissions,
or with an error (the client then gets ``Authorization Violation``). With an xkey seed
it opens sealed requests and seals its answers. It uses only nats-py, nkeys and PyNaCl.

Server config (config mode)::

    accounts { AUTH { users: [ {user: auth, password: auth} ] }, APP {} }
    authorization {
      auth_callout {
        issuer: <public key of the issuer seed>
        auth_users: [ auth ]
        account: AUTH
        xkey: <public key of the xkey seed>        # optional: sealed requests
      }
    }

In operator mode the callout account's JWT carries ``authorization { auth_users: [<the
service's user key>], xkey }`` instead, the issuer seed is that account's, and clients
log in with a user JWT of that account (a "sentinel") plus their token.

Users file::

    {"alice": {"password": "secret", "account": "APP",
               "pub": {"allow": ["orders.>"]}, "sub": {"allow": ["orders.>", "_INBOX.>"]},
               "expires_in": 3600}}

``account`` is where the client goes in config mode (operator mode places it in the
issuer account); ``pub``/``sub`` are the user JWT's permissions (absent: full rights);
``expires_in`` (seconds) ends the connection then.

Run::

    python examples/auth_callout_service.py --url nats://127.0.0.1:4222 \\
        --user auth --password auth --issuer-seed SA... --users users.json \\
        [--xkey-seed SX...] [--creds service.creds]

It prints ``ready <client id>`` once it listens, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing
import nats
import nats.errors
import nkeys

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
XKEY_HEADER = "Nats-Server-Xkey"
XKEY_VERSION = b"xkv1"
NONCE_SIZE = 24
PREFIX_CURVE = 23 << 3  # `X...` public keys, `SX...` seeds (the nkeys package lacks them)
PREFIX_SERVER = 13 << 3


# -- keys ----------------------------------------------------------------------------------


def _b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")


def public_key_bytes(key: str, prefix: int) -> bytes:
    """The 32 raw bytes of a public NKEY with this prefix byte (ValueError if not one)."""
    try:
        raw = _b32decode(key)
    except (binascii.Error, ValueError):
        raise ValueError(f"not a public key: {key!r}") from None
    if len(raw) != 35 or raw[0] != prefix or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise ValueError(f"not a public key: {key!r}")
    return raw[1:33]


def curve_seed_bytes(seed: str) -> bytes:
    raw = _b32decode(seed)
    head = bytes((nkeys.PREFIX_BYTE_SEED | PREFIX_CURVE >> 5, (PREFIX_CURVE & 31) << 3))
    if len(raw) != 36 or raw[:2] != head or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise ValueError("not a curve seed")
    return raw[2:34]


def curve_public_key(seed: str) -> str:
    public = bytes(nacl.public.PrivateKey(curve_seed_bytes(seed)).public_key)
    body = bytes((PREFIX_CURVE,)) + public
    return _b32encode(body + nkeys.crc16_checksum(body))


def seal(message: bytes, sender_seed: str, recipient: str) -> bytes:
    """nkeys' xkey seal: `xkv1`, a random 24-byte nonce, then a NaCl box."""
    box = nacl.public.Box(
        nacl.public.PrivateKey(curve_seed_bytes(sender_seed)),
        nacl.public.PublicKey(public_key_bytes(recipient, PREFIX_CURVE)),
    )
    nonce = os.urandom(NONCE_SIZE)
    return XKEY_VERSION + nonce + box.encrypt(message, nonce).ciphertext


def open_sealed(sealed: bytes, recipient_seed: str, sender: str) -> bytes:
    if len(sealed) <= len(XKEY_VERSION) + NONCE_SIZE or not sealed.startswith(XKEY_VERSION):
        raise ValueError("not a sealed message")
    box = nacl.public.Box(
        nacl.public.PrivateKey(curve_seed_bytes(recipient_seed)),
        nacl.public.PublicKey(public_key_bytes(sender, PREFIX_CURVE)),
    )
    start = len(XKEY_VERSION) + NONCE_SIZE
    return box.decrypt(sealed[start:], sealed[len(XKEY_VERSION) : start])


# -- JWTs ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(
    kind: str, subject: str, seed: str, nats_section: dict[str, Any], **claims: Any
) -> str:
    """A version 2 NATS JWT signed by `seed` (`jti` is the SHA-512/256 of the claims)."""
    pair = nkeys.from_seed(seed.encode())
    body: dict[str, Any] = {k: v for k, v in claims.items() if v}
    body |= {"jti": "", "iat": int(time.time()), "iss": pair.public_key.decode(), "sub": subject}
    body["nats"] = {**nats_section, "type": kind, "version": 2}
    digest = hashlib.new("sha512_256", json.dumps(body, separators=(",", ":")).encode())
    body["jti"] = _b32encode(digest.digest())
    header = _b64(b'{"typ":"JWT","alg":"ed25519-nkey"}')
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = _b64(pair.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


def decode_request(token: str) -> dict[str, Any]:
    """The claims of an authorization request, whose signature by the server's key
    (its `iss`) checks out."""
    header, payload, signature = token.split(".")
    claims: dict[str, Any] = json.loads(_unb64(payload))
    key = public_key_bytes(claims["iss"], PREFIX_SERVER)
    nacl.signing.VerifyKey(key).verify(f"{header}.{payload}".encode(), _unb64(signature))
    if claims.get("aud") != "nats-authorization-request":
        raise ValueError("not an authorization request")
    if claims.get("nats", {}).get("type") != "authorization_request":
        raise ValueError("not an authorization request")
    return claims


# -- the service ---------------------------------------------------------------------------


def credentials(connect: dict[str, Any]) -> tuple[str, str]:
    """(user, password) from the client's CONNECT: its user and password, or a token
    `user:password` (what a client that logs in with a user JWT can send besides)."""
    if connect.get("user"):
        return str(connect["user"]), str(connect.get("pass", ""))
    name, _, password = str(connect.get("auth_token", "")).partition(":")
    return name, password


class CalloutService:
    """Answers authorization requests from a table of users."""

    def __init__(self, users: dict[str, Any], issuer_seed: str, xkey_seed: str = "") -> None:
        self.users = users
        self.issuer_seed = issuer_seed
        self.xkey_seed = xkey_seed

    def answer(self, data: bytes, server_xkey: str | None) -> bytes | None:
        """The response to one request (sealed when the request was); None when the
        request cannot be read (no answer: the server times out)."""
        try:
            if server_xkey:
                if not self.xkey_seed:
                    return None
                data = open_sealed(data, self.xkey_seed, server_xkey)
            request = decode_request(data.decode())
        except (ValueError, KeyError, nacl.exceptions.CryptoError):
            return None
        details = request["nats"]
        user_nkey = details["user_nkey"]
        server_id = details["server_id"]["id"]
        name, password = credentials(details.get("connect_opts", {}))
        user = self.users.get(name)
        if user is None or not hmac.compare_digest(user["password"].encode(), password.encode()):
            response = {"error": "bad user name or password"}
        else:
            response = {"jwt": self.user_jwt(user_nkey, name, user)}
        token = encode_jwt(
            "authorization_response", user_nkey, self.issuer_seed, response, aud=server_id
        ).encode()
        return seal(token, self.xkey_seed, server_xkey) if server_xkey else token

    def user_jwt(self, user_nkey: str, name: str, user: dict[str, Any]) -> str:
        """The user JWT: its subject is the key the server asked about, its `aud` the
        account (config mode); permissions as listed, no limits."""
        section: dict[str, Any] = {"subs": -1, "data": -1, "payload": -1}
        for direction in ("pub", "sub"):
            if direction in user:
                section[direction] = user[direction]
        expires = int(time.time()) + int(user["expires_in"]) if user.get("expires_in") else 0
        return encode_jwt(
            "user", user_nkey, self.issuer_seed, section,
            aud=user.get("account", ""), name=name, exp=expires,
        )  # fmt: skip


async def serve(args: argparse.Namespace, users: dict[str, Any]) -> None:
    service = CalloutService(users, args.issuer_seed, args.xkey_seed or "")
    options: dict[str, Any] = {"servers": [args.url], "name": "auth-callout-service"}
    if args.creds:
        options["user_credentials"] = args.creds
    else:
        options |= {"user": args.user, "password": args.password}
    nc = await nats.connect(**options)

    async def on_request(msg: Any) -> None:
        server_xkey = msg.headers.get(XKEY_HEADER) if msg.headers else None
        response = service.answer(msg.data, server_xkey)
        if response is not None and msg.reply:
            await msg.respond(response)

    await nc.subscribe(AUTH_SUBJECT, cb=on_request)
    await nc.flush()
    print(f"ready {nc.client_id}", flush=True)  # noqa: T201  (its one line of output)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(nats.errors.Error):
        await nc.drain()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--user", default="auth")
    parser.add_argument("--password", default="auth")
    parser.add_argument("--creds", help="a .creds file to log in with (operator mode)")
    parser.add_argument("--issuer-seed", required=True, help="account seed signing the answers")
    parser.add_argument("--xkey-seed", help="curve seed (SX...) when the server seals requests")
    parser.add_argument("--users", required=True, help="JSON file of users")
    args = parser.parse_args()
    with open(args.users, encoding="utf-8") as handle:
        users = json.load(handle)
    try:
        asyncio.run(serve(args, users))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
