"""The directory where `shardbroker jwt` keeps operators, accounts and users: their seeds
and JWTs (nsc's store, made simple). The user names the root (`--dir`); each operator
is one directory in it:

    ROOT/OPERATOR/operator.jwt                         the operator JWT
    ROOT/OPERATOR/operator.nk                          its seed
    ROOT/OPERATOR/operator-signing.nk                  a signing key (optional): signs
                                                       the accounts when present
    ROOT/OPERATOR/accounts/ACCOUNT/account.jwt         an account JWT
    ROOT/OPERATOR/accounts/ACCOUNT/account.nk          its seed
    ROOT/OPERATOR/accounts/ACCOUNT/account-signing.nk  a signing key (optional): signs
                                                       the users when present
    ROOT/OPERATOR/accounts/ACCOUNT/users/USER.creds    the user's JWT and seed

Seeds and `.creds` files are secrets: written 0600 (through a temporary file renamed
into place, so a reader never sees half a key), directories 0700. JWTs are public.
Nothing else is kept: the names are the directory names, the keys are in the files.

Runs in the shell; files only, no network. A problem raises StoreError with a sentence
for the user.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.jwt import JWTError
from shardbroker.tools import jwtclaims

OPERATOR_JWT = "operator.jwt"
OPERATOR_SEED = "operator.nk"
OPERATOR_SIGNING_SEED = "operator-signing.nk"
ACCOUNTS = "accounts"
ACCOUNT_JWT = "account.jwt"
ACCOUNT_SEED = "account.nk"
ACCOUNT_SIGNING_SEED = "account-signing.nk"
USERS = "users"
SYSTEM_ACCOUNT = "SYS"
SYSTEM_USER = "sys"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
DIR_MODE = 0o700


class StoreError(Exception):
    """A store that cannot do what was asked (missing, already there, damaged)."""


# -- files -----------------------------------------------------------------------------


def write_file(path: Path, text: str, mode: int) -> None:
    """Write `text` with exactly `mode`: into a new temporary file created with it, then
    renamed over `path`, so neither a reader nor the umask sees other permissions."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_secret(path: Path, text: str) -> None:
    write_file(path, text, SECRET_MODE)


def _make_dir(path: Path) -> None:
    """`path` and its missing parents, each 0700 (they hold keys)."""
    if path.is_dir():
        return
    _make_dir(path.parent)
    path.mkdir(mode=DIR_MODE, exist_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None


def read_seed(path: Path, role: str) -> str:
    """The seed in `path`, which must be a valid seed of `role`."""
    seed = _read(path).strip()
    if jwt.seed_role(seed) != role:
        raise StoreError(f"{path} does not hold a valid {role} seed")
    return seed


def _read_token(path: Path, kind: str) -> tuple[str, jwt.Claims]:
    token = _read(path).strip()
    try:
        return token, jwt.decode(token, kind)
    except JWTError as exc:
        raise StoreError(f"{path} does not hold a valid {kind} JWT: {exc}") from None


def _optional_seed(path: Path, role: str) -> str | None:
    return read_seed(path, role) if path.exists() else None


# -- operators, accounts, users --------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """An account of the store: its JWT, seed and optional signing key."""

    path: Path
    name: str
    token: str
    claims: jwt.Claims
    seed: str
    signing_seed: str | None

    @property
    def key(self) -> str:
        return self.claims.sub

    @property
    def signer_seed(self) -> str:
        """The key users are signed with: the signing key when there is one."""
        return self.signing_seed or self.seed

    def creds_path(self, user: str) -> Path:
        return self.path / USERS / f"{user}.creds"

    def user_names(self) -> list[str]:
        users = self.path / USERS
        return sorted(p.stem for p in users.glob("*.creds")) if users.is_dir() else []


@dataclass(frozen=True)
class Operator:
    """An operator of the store: its JWT, seed and optional signing key."""

    path: Path
    name: str
    token: str
    claims: jwt.Claims
    seed: str
    signing_seed: str | None

    @property
    def key(self) -> str:
        return self.claims.sub

    @property
    def signer_seed(self) -> str:
        """The key accounts are signed with: the signing key when there is one."""
        return self.signing_seed or self.seed

    @property
    def system_account_key(self) -> str:
        return str(self.claims.nats.get("system_account") or "")

    def account_names(self) -> list[str]:
        accounts = self.path / ACCOUNTS
        if not accounts.is_dir():
            return []
        return sorted(p.name for p in accounts.iterdir() if (p / ACCOUNT_JWT).is_file())

    def accounts(self) -> Iterator[Account]:
        for name in self.account_names():
            yield self.account(name)

    def account(self, name: str) -> Account:
        path = self.path / ACCOUNTS / name
        if not (path / ACCOUNT_JWT).is_file():
            known = ", ".join(self.account_names()) or "none yet"
            raise StoreError(
                f'no account "{name}" under operator "{self.name}" (accounts: {known})'
            )
        token, claims = _read_token(path / ACCOUNT_JWT, "account")
        return Account(
            path=path,
            name=name,
            token=token,
            claims=claims,
            seed=read_seed(path / ACCOUNT_SEED, "account"),
            signing_seed=_optional_seed(path / ACCOUNT_SIGNING_SEED, "account"),
        )

    def account_by_key(self, key: str) -> Account | None:
        return next((a for a in self.accounts() if a.key == key), None)

    def system_account(self) -> Account | None:
        key = self.system_account_key
        return self.account_by_key(key) if key else None


class Store:
    """The root directory of the operators (`--dir`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def operator_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / OPERATOR_JWT).is_file())

    def operator(self, name: str | None = None) -> Operator:
        """The operator called `name`, or the only one when no name is given."""
        names = self.operator_names()
        if name is None:
            if not names:
                raise StoreError(
                    f"no operator in {self.root}: create one with "
                    f"`shardbroker jwt operator NAME --dir {self.root}`"
                )
            if len(names) > 1:
                raise StoreError(
                    f"{self.root} holds several operators ({', '.join(names)}): "
                    "choose one with --operator"
                )
            name = names[0]
        elif name not in names:
            raise StoreError(
                f'no operator "{name}" in {self.root} (operators: {", ".join(names) or "none"})'
            )
        path = self.root / name
        token, claims = _read_token(path / OPERATOR_JWT, "operator")
        return Operator(
            path=path,
            name=name,
            token=token,
            claims=claims,
            seed=read_seed(path / OPERATOR_SEED, "operator"),
            signing_seed=_optional_seed(path / OPERATOR_SIGNING_SEED, "operator"),
        )

    # -- writing ---------------------------------------------------------------------

    def create_operator(
        self, name: str, *, signing_key: bool = False, system_account: bool = False
    ) -> Operator:
        """A new operator; with `system_account`, also the system account SYS (with a
        signing key and the monitoring exports nsc gives it) and its user `sys`, and the
        operator JWT names SYS as its `system_account`."""
        jwtclaims.check_name(name, "operator")
        path = self.root / name
        if path.exists():
            raise StoreError(f'operator "{name}" already exists in {self.root}')
        _make_dir(path)
        seed = jwt.new_seed("operator")
        write_secret(path / OPERATOR_SEED, seed + "\n")
        fields: dict[str, Any] = {}
        signer = seed
        if signing_key:
            signer = jwt.new_seed("operator")
            write_secret(path / OPERATOR_SIGNING_SEED, signer + "\n")
            fields["signing_keys"] = [jwt.public_key(signer)]
        system_seed = jwt.new_seed("account") if system_account else ""
        if system_account:
            fields["system_account"] = jwt.public_key(system_seed)
        token = jwt.encode("operator", jwt.public_key(seed), seed, fields, name=name)
        write_file(path / OPERATOR_JWT, token + "\n", PUBLIC_MODE)
        operator = self.operator(name)
        if system_account:
            account = save_account(
                operator, SYSTEM_ACCOUNT, {"limits": jwtclaims.account_limits()},
                signing_key=True, seed=system_seed,
            )  # fmt: skip
            save_user(account, SYSTEM_USER, jwtclaims.user_fields())
        return operator


def save_account(
    operator: Operator,
    name: str,
    fields: dict[str, Any],
    *,
    signing_key: bool = False,
    update: bool = False,
    seed: str = "",
) -> Account:
    """Write the account `name` with these JWT fields, signed by the operator's signer.
    A new account gets a new key (or `seed`); `update` re-issues an existing one's JWT
    from `fields`, keeping its keys. The system account keeps its monitoring exports."""
    jwtclaims.check_name(name, "account")
    path = operator.path / ACCOUNTS / name
    exists = (path / ACCOUNT_JWT).exists()
    if exists and not update:
        raise StoreError(
            f'account "{name}" already exists under operator "{operator.name}" '
            "(--update re-issues its JWT from the options given)"
        )
    if update and not exists:
        raise StoreError(f'no account "{name}" under operator "{operator.name}" to update')
    _make_dir(path)
    if exists:
        previous = operator.account(name)
        seed, signing_seed = previous.seed, previous.signing_seed
    else:
        seed = seed or jwt.new_seed("account")
        signing_seed = None
        write_secret(path / ACCOUNT_SEED, seed + "\n")
    if signing_key and signing_seed is None:
        signing_seed = jwt.new_seed("account")
        write_secret(path / ACCOUNT_SIGNING_SEED, signing_seed + "\n")
    key = jwt.public_key(seed)
    section: dict[str, Any] = {**fields, "default_permissions": {"pub": {}, "sub": {}}}
    if key == operator.system_account_key:
        own = {e["subject"] for e in section.get("exports", ())}
        extra = [dict(e) for e in jwtclaims.SYSTEM_ACCOUNT_EXPORTS if e["subject"] not in own]
        section["exports"] = [*section.get("exports", ()), *extra]
    if signing_seed is not None:
        section["signing_keys"] = [jwt.public_key(signing_seed)]
    token = jwt.encode("account", key, operator.signer_seed, section, name=name)
    write_file(path / ACCOUNT_JWT, token + "\n", PUBLIC_MODE)
    return operator.account(name)


def save_user(
    account: Account,
    name: str,
    fields: dict[str, Any],
    *,
    expires: int = 0,
    update: bool = False,
) -> tuple[str, str]:
    """Write the user `name`'s `.creds` file (signed by the account's signer; through a
    signing key the JWT names the account in `issuer_account`). `update` re-issues an
    existing user's JWT, keeping its key. Returns (user key, creds text)."""
    jwtclaims.check_name(name, "user")
    creds_path = account.creds_path(name)
    if creds_path.exists() and not update:
        raise StoreError(
            f'user "{name}" already exists in account "{account.name}" '
            "(--update re-issues its JWT from the options given)"
        )
    if update and not creds_path.exists():
        raise StoreError(f'no user "{name}" in account "{account.name}" to update')
    if update:
        try:
            _, seed = jwt.parse_creds(_read(creds_path))
        except JWTError as exc:
            raise StoreError(f"{creds_path}: {exc}") from None
    else:
        seed = jwt.new_seed("user")
    section = dict(fields)
    if account.signing_seed is not None:
        section["issuer_account"] = account.key
    key = jwt.public_key(seed)
    token = jwt.encode("user", key, account.signer_seed, section, name=name, expires=expires)
    creds = jwt.format_creds(token, seed)
    _make_dir(creds_path.parent)
    write_secret(creds_path, creds)
    return key, creds


def temporary_system_user(
    operator: Operator, allow_pub: list[str], lifetime: int
) -> tuple[str, str]:
    """(user JWT, seed) of a short-lived user of the system account, made from the keys
    in the store (nsc push does the same when not given a system user)."""
    account = operator.system_account()
    if account is None:
        raise StoreError(
            f'operator "{operator.name}" has no system account in the store: '
            "give a system user's --creds"
        )
    seed = jwt.new_seed("user")
    section = jwtclaims.user_fields(pub_allow=allow_pub, sub_allow=["_INBOX.>"])
    if account.signing_seed is not None:
        section["issuer_account"] = account.key
    token = jwt.encode(
        "user", jwt.public_key(seed), account.signer_seed, section,
        name="shardbroker jwt push", expires=int(time.time()) + lifetime,
    )  # fmt: skip
    return token, seed
