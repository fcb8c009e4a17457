"""`authorization { auth_callout {...} }` of a config file (nats-server parseAuthCallout),
with its texts: an account NKEY that signs the service's answers, the users that bypass
it, the account the requests go to, an optional curve key to seal them for, and the
accounts whose users it decides on (accounts-and-security.md §7.1). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardbroker.config import jwt
from shardbroker.config.options import AuthCallout
from shardbroker.config.parse import KeyPath, Position
from shardbroker.config.users import config_error
from shardbroker.config.value import go_type

CALLOUT_KEYS = ("auth_callout", "auth_hook")


def parse_auth_callout(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> AuthCallout:
    if not isinstance(value, dict):
        raise config_error(
            position, f"Expected authorization callout to be a map/struct, got {_go_value(value)}"
        )
    out: dict[str, Any] = {}
    last = position  # nats-server reports a missing field at the last value it read
    for key, item in value.items():
        where = last = positions.get((*path, key), position)
        name = key.lower()
        if name == "issuer":
            issuer = _string(item, where)
            if jwt.decode_public_key(issuer, "account") is None:
                raise config_error(
                    where,
                    f'Expected callout user to be a valid public account nkey, got "{issuer}"',
                )
            out["issuer"] = issuer
        elif name in ("account", "acc"):
            out["account"] = _string(item, where)
        elif name in ("auth_users", "users"):
            if not isinstance(item, list):
                raise config_error(
                    where, "Expected auth_users field to be an array, got *conf.token"
                )
            out["auth_users"] = tuple(_string(user, where) for user in item)
        elif name in ("xkey", "key"):
            xkey = _string(item, where)
            if jwt.decode_public_key(xkey, "curve") is None:
                raise config_error(
                    where, f'Expected callout xkey to be a valid public xkey, got "{xkey}"'
                )
            out["xkey"] = xkey
        elif name == "allowed_accounts":
            if not isinstance(item, list):
                raise config_error(
                    where, "Expected allowed accounts field to be an array, got *conf.token"
                )
            out["allowed_accounts"] = tuple(_string(account, where) for account in item)
        else:
            raise config_error(where, f'Unknown field "{key}" parsing authorization callout')
    if not out.get("account"):
        out.pop("account", None)  # an empty name is $G, as nats-server has it
    if not out.get("issuer"):
        raise config_error(last, "Authorization callouts require an issuer to be specified")
    if not out.get("auth_users"):
        raise config_error(last, "Authorization callouts require authorized users to be specified")
    return AuthCallout(**out)


def check_allowed_accounts(callout: AuthCallout, accounts: tuple[str, ...]) -> None:
    """After the whole file: every allowed account is a configured one (ValueError)."""
    for name in callout.allowed_accounts:
        if name not in accounts:
            raise ValueError(
                f'auth_callout allowed account "{name}" not found in configured accounts'
            )


def _string(value: Any, where: Position) -> str:
    """A string field; nats-server's type assertion fails on anything else."""
    if not isinstance(value, str):
        raise config_error(
            where, f"interface conversion: interface {{}} is {go_type(value)}, not string"
        )
    return value


def _go_value(value: Any) -> str:
    """A value as Go's %+v prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in value.items()) + "]"
    return str(value)
