"""NATS JWTs: decoding and verifying operator, account, user and activation tokens,
encoding them (for tools and tests), and `.creds` files (jwt-operator-mode.md §3, §9).

Pure; used by the config (operator JWTs, `resolver_preload`) and by authentication
(user JWTs at CONNECT). A token is `base64url(header).base64url(claims).base64url(sig)`,
unpadded. Version 1 tokens (`alg: ed25519`, the claim type at the top level) sign the
claims segment only; version 2 (`alg: ed25519-nkey`, the type in `nats.type`) sign
`header.claims`. The signer is the claims' `iss`, an NKEY whose role must fit the
token: an operator for operator and account tokens, an account for user and
activation tokens. Every problem is a JWTError with a short reason (the server only
logs it: clients see `Authorization Violation`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

MAX_TOKEN_SIZE = 1 << 20  # nats-server refuses longer tokens
VERSION = 2
_ALGORITHMS = {"ed25519": 1, "ed25519-nkey": 2}
_ROLE_PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
    "server": nkeys.PREFIX_BYTE_SERVER,
    "curve": 23 << 3,  # x25519 keys (`X...`), which the nkeys package does not know
}
# Who signs each kind of token.
_ISSUER_ROLE = {
    "operator": "operator",
    "account": "operator",
    "user": "account",
    "activation": "account",
    "authorization_request": "server",
    "authorization_response": "account",
    # Requests of operators to the nats-based resolver ($SYS.REQ.CLAIMS.DELETE).
    "generic": "operator",
}
_CREDS_BLOCK = re.compile(
    r"\s*(?:(?:[-]{3,}.*[-]{3,}\r?\n)([\w\-.=]+)(?:\r?\n[-]{3,}.*[-]{3,}(\r?\n|\Z)))", re.M
)


class JWTError(ValueError):
    """A token that cannot be used: malformed, badly signed, or of the wrong kind."""


# -- NKEYs -----------------------------------------------------------------------------


def decode_public_key(key: str, role: str) -> bytes | None:
    """The raw ed25519 key of a public NKEY of `role`, or None if it is not one."""
    prefix = _ROLE_PREFIX.get(role)
    if prefix is None or not key:
        return None
    try:
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 35 or raw[0] != prefix or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        return None
    return raw[1:33]


def seed_role(seed: str) -> str | None:
    """The role ("operator", "account", "user") of a well-formed seed, else None.
    The checksum is checked too (nkeys.from_seed does not: a seed with a changed
    character would sign as some other key)."""
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 36 or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        return None
    if raw[0] & 0xF8 != nkeys.PREFIX_BYTE_SEED:
        return None
    prefix = (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3
    return next((role for role, byte in _ROLE_PREFIX.items() if byte == prefix), None)


def new_seed(role: str) -> str:
    """A fresh seed (`SO...`, `SA...`, `SU...`, `SN...`, `SX...`) of a role."""
    return encode_seed(os.urandom(32), role)


def encode_seed(raw: bytes, role: str) -> str:
    """The seed of 32 raw bytes: two prefix bytes (seed, role), the bytes, a CRC-16."""
    prefix = _ROLE_PREFIX[role]
    head = bytes((nkeys.PREFIX_BYTE_SEED | prefix >> 5, (prefix & 31) << 3))
    body = head + raw
    return base64.b32encode(body + nkeys.crc16_checksum(body)).decode().rstrip("=")


def decode_seed(seed: str, role: str) -> bytes | None:
    """The 32 raw bytes of a seed of `role`, or None if it is not one."""
    prefix = _ROLE_PREFIX.get(role)
    if prefix is None or not seed:
        return None
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except (binascii.Error, ValueError):
        return None
    head = bytes((nkeys.PREFIX_BYTE_SEED | prefix >> 5, (prefix & 31) << 3))
    if len(raw) != 36 or raw[:2] != head or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        return None
    return raw[2:34]


def encode_public_key(raw: bytes, role: str) -> str:
    """The public NKEY of `role` for 32 raw key bytes."""
    body = bytes((_ROLE_PREFIX[role],)) + raw
    return base64.b32encode(body + nkeys.crc16_checksum(body)).decode().rstrip("=")


def public_key(seed: str) -> str:
    """The public NKEY of a seed."""
    pair = nkeys.from_seed(seed.encode())
    try:
        return pair.public_key.decode()
    finally:
        pair.wipe()


def sign(seed: str, data: bytes) -> bytes:
    pair = nkeys.from_seed(seed.encode())
    try:
        return bytes(pair.sign(data))
    finally:
        pair.wipe()


# -- tokens ---------------------------------------------------------------------------


def _b64decode(segment: str) -> bytes:
    """Unpadded base64url only, as nats-server's decoder accepts."""
    if not segment or "=" in segment or not re.fullmatch(r"[A-Za-z0-9_-]+", segment):
        raise JWTError("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JWTError("not base64url") from None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Claims:
    """A decoded and verified token: its common claims, its type and version, and the
    type-specific section (`nats`, or for version 1 the claims themselves)."""

    __slots__ = (
        "aud", "exp", "iat", "iss", "name", "nats", "nbf", "raw", "sub", "type", "version"
    )  # fmt: skip

    def __init__(self, raw: dict[str, Any], version: int, kind: str) -> None:
        self.raw = raw
        self.version = version
        self.type = kind
        self.iss = str(raw.get("iss", ""))
        self.sub = str(raw.get("sub", ""))
        self.name = str(raw.get("name", ""))
        self.aud = str(raw.get("aud", "") or "")
        self.iat = int(raw.get("iat", 0) or 0)
        self.exp = int(raw.get("exp", 0) or 0)
        self.nbf = int(raw.get("nbf", 0) or 0)
        section = raw.get("nats")
        self.nats: dict[str, Any] = section if isinstance(section, dict) else {}

    def expired(self, now: float | None = None) -> bool:
        return bool(self.exp) and self.exp <= (time.time() if now is None else now)

    def not_yet_valid(self, now: float | None = None) -> bool:
        return bool(self.nbf) and self.nbf > (time.time() if now is None else now)

    def __repr__(self) -> str:
        return f"Claims({self.type} v{self.version} sub={self.sub} iss={self.iss})"


def decode(token: str, expect: str | None = None) -> Claims:
    """Decode and verify a token (of type `expect` when given). Raises JWTError."""
    if len(token) > MAX_TOKEN_SIZE:
        raise JWTError("token too large")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JWTError("expected three segments")
    header = _json(_b64decode(parts[0]), "header")
    claims = _json(_b64decode(parts[1]), "claims")
    signature = _b64decode(parts[2])
    if str(header.get("typ", "")).upper() != "JWT":
        raise JWTError("not a JWT header")
    algorithm = _ALGORITHMS.get(str(header.get("alg", "")).lower())
    if algorithm is None:
        raise JWTError(f"unexpected algorithm {header.get('alg')!r}")
    if "type" in claims:
        version, kind = 1, str(claims["type"])
    else:
        section = claims.get("nats")
        if not isinstance(section, dict):
            raise JWTError("no claim type")
        version = int(section.get("version", 0) or 0)
        if version > VERSION:
            raise JWTError("JWT was generated by a newer version")
        kind = str(section.get("type", ""))
    if expect is not None and kind != expect:
        raise JWTError(f"expected a {expect} JWT, got {kind or 'none'}")
    role = _ISSUER_ROLE.get(kind)
    if role is None:
        raise JWTError(f"unknown claim type {kind!r}")
    issuer = str(claims.get("iss", ""))
    raw_key = decode_public_key(issuer, role)
    if raw_key is None:
        raise JWTError(f"issuer is not a valid {role} key")
    signed = (parts[0] + "." + parts[1]).encode() if version >= 2 else parts[1].encode()
    try:
        nacl.signing.VerifyKey(raw_key).verify(signed, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise JWTError("claim failed signature verification") from None
    return Claims(claims, version, kind)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise JWTError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JWTError(f"{what} is not a JSON object")
    return value


def jti(claims: dict[str, Any]) -> str:
    """The token id: base32 of SHA-512/256 over the claims with an empty `jti`."""
    body = json.dumps({**claims, "jti": ""}, separators=(",", ":")).encode()
    digest = hashlib.new("sha512_256", body).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def encode(kind: str, subject: str, issuer_seed: str, fields: dict[str, Any] | None = None,
           *, name: str = "", audience: str = "", expires: int = 0, not_before: int = 0,
           issued_at: int | None = None, version: int = VERSION) -> str:  # fmt: skip
    """A token of `kind` about `subject`, signed by `issuer_seed`; `fields` go into the
    `nats` section. Version 2 adds `type` and `version` there and signs the header and
    claims; version 1 puts `type` at the top and signs the claims only."""
    claims: dict[str, Any] = {"aud": audience} if audience else {}
    claims |= {
        "jti": "",
        "iat": int(time.time()) if issued_at is None else issued_at,
        "iss": public_key(issuer_seed),
        "sub": subject,
    }
    if name:
        claims["name"] = name
    if expires:
        claims["exp"] = expires
    if not_before:
        claims["nbf"] = not_before
    if version == 1:
        claims["type"] = kind
        claims["nats"] = dict(fields or {})
    else:
        claims["nats"] = {**(fields or {}), "type": kind, "version": VERSION}
    claims["jti"] = jti(claims)
    alg = b"ed25519" if version == 1 else b"ed25519-nkey"
    header = _b64encode(b'{"typ":"JWT","alg":"' + alg + b'"}')
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signed = payload if version == 1 else f"{header}.{payload}"
    signature = _b64encode(sign(issuer_seed, signed.encode()))
    return f"{header}.{payload}.{signature}"


# -- .creds files -----------------------------------------------------------------------


def parse_creds(text: str) -> tuple[str, str]:
    """(user JWT, seed) of a `.creds` file; JWTError when either is missing."""
    blocks = [m.group(1) for m in _CREDS_BLOCK.finditer(text)]
    if len(blocks) < 2 or not blocks[0] or not blocks[1]:
        raise JWTError("credentials need a JWT block and a seed block")
    return blocks[0], blocks[1]


def format_creds(user_jwt: str, seed: str) -> str:
    """A `.creds` file as nsc writes it."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )
