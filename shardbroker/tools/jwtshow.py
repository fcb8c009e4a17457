"""What `shardbroker jwt show` prints about a JWT, a `.creds` file or a seed: the
header and claims, whether the signature verifies, the times in words, and for a seed
its role and public key (and whether it belongs to the JWT beside it). The seed itself
is a secret: it is in the result only when asked for.

Pure: text in, a Description out. Tokens are read without trusting them first (a token
that fails to verify is still shown, with the reason).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.jwt import JWTError

_SEED = re.compile(r"S[OAU][A-Z2-7]{56}")
_SEED_ROLES = {"O": "operator", "A": "account", "U": "user"}


class ShowError(ValueError):
    """Text that holds neither a JWT nor a seed."""


@dataclass
class Description:
    """The parts of a JWT and/or seed, and the checks made on them."""

    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    kind: str = ""
    signature: str = ""  # "valid", or "invalid: <reason>"
    seed_role: str = ""
    seed_public_key: str = ""
    seed: str = ""  # only when asked for
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.claims is not None:
            out.update(header=self.header, claims=self.claims, kind=self.kind)
            out["signature"] = self.signature
        if self.seed_public_key:
            out["seed"] = {"role": self.seed_role, "public_key": self.seed_public_key}
            if self.seed:
                out["seed"]["seed"] = self.seed
        out["problems"] = self.problems
        return out


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise ShowError("not a JWT: a segment is not base64url JSON") from None
    if not isinstance(value, dict):
        raise ShowError("not a JWT: a segment is not a JSON object")
    return value


def _kind(claims: dict[str, Any]) -> str:
    if "type" in claims:
        return str(claims["type"])
    section = claims.get("nats")
    return str(section.get("type", "")) if isinstance(section, dict) else ""


def describe(text: str, show_seed: bool = False, now: float | None = None) -> Description:
    """Describe the JWT and/or seed in `text`: a bare token, a seed, a JWT file (also
    nsc's decorated ones) or a `.creds` file."""
    now = time.time() if now is None else now
    lines = [line.strip() for line in text.splitlines()]
    token = next((line for line in lines if line.startswith("eyJ")), "")
    seed = next((line for line in lines if _SEED.fullmatch(line)), "")
    if not token and not seed:
        raise ShowError("no JWT (a line starting eyJ) and no seed found")
    out = Description()
    if token:
        parts = token.split(".")
        if len(parts) != 3:
            raise ShowError("not a JWT: expected three segments")
        out.header, out.claims = _segment(parts[0]), _segment(parts[1])
        out.kind = _kind(out.claims)
        try:
            jwt.decode(token)
            out.signature = "valid"
        except JWTError as exc:
            out.signature = f"invalid: {exc}"
            out.problems.append(f"the JWT does not verify: {exc}")
        expires = int(out.claims.get("exp") or 0)
        if expires and expires <= now:
            out.problems.append(f"the JWT expired at {_when(expires)}")
    if seed:
        out.seed_role = _SEED_ROLES.get(seed[1], "other")
        if jwt.seed_role(seed) is None:
            out.problems.append("the seed is not a valid seed (bad checksum or encoding)")
        else:
            out.seed_public_key = jwt.public_key(seed)
        if show_seed:
            out.seed = seed
        subject = str((out.claims or {}).get("sub", ""))
        if out.seed_public_key and subject and out.seed_public_key != subject:
            out.problems.append(
                f"the seed's public key {out.seed_public_key} is not the JWT's subject {subject}"
            )
    return out


def _when(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(out: Description) -> str:
    """The description for a person: a summary, then the claims as indented JSON."""
    rows: list[tuple[str, str]] = []
    lines: list[str] = []
    if out.claims is not None:
        claims = out.claims
        version = 1 if "type" in claims else (claims.get("nats") or {}).get("version", "?")
        title = f"{out.kind or 'unknown'} JWT"
        if claims.get("name"):
            title += f" {json.dumps(claims['name'])}"
        lines.append(f"{title} (version {version})")
        rows += [("subject", str(claims.get("sub", ""))), ("issuer", str(claims.get("iss", "")))]
        issuer_account = (claims.get("nats") or {}).get("issuer_account")
        if issuer_account:
            rows.append(("issuer account", str(issuer_account)))
        if claims.get("iat"):
            rows.append(("issued", _when(int(claims["iat"]))))
        rows.append(("expires", _when(int(claims["exp"])) if claims.get("exp") else "never"))
        if claims.get("nbf"):
            rows.append(("not before", _when(int(claims["nbf"]))))
        rows.append(("signature", out.signature))
    if out.seed_public_key:
        shown = out.seed or "hidden (--show-seed prints it)"
        rows += [("seed", f"{out.seed_role} seed, {shown}"), ("seed key", out.seed_public_key)]
    width = max((len(name) for name, _ in rows), default=0)
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines += [f"  problem: {problem}" for problem in out.problems]
    if out.claims is not None:
        lines.append("claims:")
        lines.append(json.dumps(out.claims, indent=2, sort_keys=True))
    return "\n".join(lines)
