"""NKEY public keys: decoding and checking signatures (pure; used by config and auth).

A public NKEY is base32 (no padding) of one prefix byte (`U` keys: users), the 32-byte
ed25519 public key and a CRC-16 of both, little-endian (the nkeys format).
"""

from __future__ import annotations

import base64
import binascii

import nacl.exceptions
import nacl.signing
import nkeys


def decode_user_nkey(public_key: str) -> bytes | None:
    """The raw ed25519 key of a user public NKEY (`U...`), or None if it is not one."""
    if not public_key.startswith("U"):
        return None
    try:
        raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 35 or raw[0] != nkeys.PREFIX_BYTE_USER:
        return None
    if nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        return None
    return raw[1:33]


def is_user_nkey(public_key: str) -> bool:
    return decode_user_nkey(public_key) is not None


def _signature(sig: str) -> bytes | None:
    """`sig` from CONNECT: base64url without padding; standard base64 is accepted too."""
    padded = sig + "=" * (-len(sig) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            return decode(padded)
        except (binascii.Error, ValueError):
            continue
    return None


def signed_by(public_key: str, nonce: str, sig: str) -> bool:
    """Did the holder of this user NKEY sign these nonce bytes?"""
    raw = decode_user_nkey(public_key)
    signature = _signature(sig)
    if raw is None or signature is None or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(raw).verify(nonce.encode(), signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True
