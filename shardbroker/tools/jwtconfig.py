"""The server configuration for an operator of the `shardbroker jwt` store: the lines
that put nats-server or shardbroker in operator mode (jwt-operator-mode.md §2), as nsc's
`generate config` writes them.

- MEMORY resolver: `operator`, `system_account`, `resolver: MEMORY` and every account of
  the store in `resolver_preload`. A changed account needs a new config and a reload, or
  a push to `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` (kept in memory only).
- full resolver (nats-based, needs the system account): `resolver { type: full, dir }`
  and only the system account preloaded; the other accounts are pushed
  (`shardbroker jwt push`) and the server keeps them in `dir`.

Pure: an Operator in, text out; ConfigTextError when the operator cannot have this
resolver.
"""

from __future__ import annotations

import json
from pathlib import Path

from shardbroker.tools.jwtstore import Account, Operator

RESOLVERS = ("memory", "full")


class ConfigTextError(ValueError):
    """An operator the asked-for configuration cannot be written for."""


def _quoted(text: str) -> str:
    return json.dumps(text)


def _preload(accounts: list[Account]) -> list[str]:
    lines = ["resolver_preload: {"]
    for account in sorted(accounts, key=lambda a: a.name):
        lines.append(f"  # Account {_quoted(account.name)}")
        lines.append(f"  {account.key}: {_quoted(account.token)}")
    lines.append("}")
    return lines


def server_config(operator: Operator, resolver: str, resolver_dir: Path | None = None) -> str:
    """The configuration text; `resolver_dir` is the full resolver's directory (made
    absolute: both servers resolve a relative one against their working directory)."""
    if resolver not in RESOLVERS:
        raise ConfigTextError(f"resolver {resolver!r}: use one of {', '.join(RESOLVERS)}")
    system = operator.system_account()
    if operator.system_account_key and system is None:
        raise ConfigTextError(
            f"the operator JWT names system account {operator.system_account_key}, "
            "which is not in the store"
        )
    lines = [
        f"# Operator {_quoted(operator.name)}: written by `shardbroker jwt config`",
        f"operator: {_quoted(operator.token)}",
    ]
    if system is not None:
        lines.append(f"# System account {_quoted(system.name)}")
        lines.append(f"system_account: {system.key}")
    lines.append("")
    if resolver == "memory":
        lines.append("resolver: MEMORY")
        lines.extend(_preload(list(operator.accounts())))
    else:
        if system is None:
            raise ConfigTextError(
                f'the full resolver needs a system account, and operator "{operator.name}" '
                "has none (create the operator with --system-account)"
            )
        where = (resolver_dir or operator.path / "resolver").expanduser().absolute()
        lines.extend(
            [
                "# The nats-based resolver: accounts are pushed to the server",
                "# (`shardbroker jwt push ACCOUNT`), which keeps them in `dir`.",
                "resolver {",
                "  type: full",
                f"  dir: {_quoted(str(where))}",
                "}",
                "# The system account, so that the first push can log in.",
            ]
        )
        lines.extend(_preload([system]))
    return "\n".join(lines) + "\n"
