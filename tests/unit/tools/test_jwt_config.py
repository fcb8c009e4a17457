"""tools/jwtconfig.py: the server configuration for an operator of the store, read back
by the broker's own config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.config.options import operator_mode
from shardbroker.config.parse import parse_file
from shardbroker.tools import jwtclaims
from shardbroker.tools.jwtconfig import ConfigTextError, server_config
from shardbroker.tools.jwtstore import Operator, Store, save_account


def operator_with_accounts(tmp_path: Path, system: bool = True) -> Operator:
    operator = Store(tmp_path / "keys").create_operator("acme", system_account=system)
    save_account(operator, "app", {"limits": jwtclaims.account_limits(conn=3, payload=1024)})
    return Store(tmp_path / "keys").operator()


def test_memory_resolver_config_loads(tmp_path: Path) -> None:
    operator = operator_with_accounts(tmp_path)
    text = server_config(operator, "memory")
    conf = tmp_path / "op.conf"
    conf.write_text(text)
    opts = build_options(OptionsSource(config=str(conf)))
    app = operator.account("app")
    system = operator.system_account()
    assert system is not None
    assert operator_mode(opts) and opts.resolver == "MEMORY"
    assert opts.operators == (operator.token,)
    assert opts.system_account == system.key
    assert dict(opts.resolver_preload) == {app.key: app.token, system.key: system.token}
    by_name = {a.name: a for a in opts.accounts}
    assert by_name[app.key].limits.max_connections == 3
    assert by_name[app.key].limits.max_payload == 1024
    # Comments name each account for the reader.
    assert '# Account "app"' in text and '# System account "SYS"' in text


def test_memory_resolver_without_system_account(tmp_path: Path) -> None:
    text = server_config(operator_with_accounts(tmp_path, system=False), "memory")
    assert "system_account" not in text
    conf = tmp_path / "op.conf"
    conf.write_text(text)
    assert build_options(OptionsSource(config=str(conf))).no_system_account


def test_full_resolver_config(tmp_path: Path) -> None:
    operator = operator_with_accounts(tmp_path)
    conf = tmp_path / "full.conf"
    conf.write_text(server_config(operator, "full", Path("relative/jwt")))
    values = parse_file(str(conf))
    system = operator.system_account()
    assert system is not None
    assert values["resolver"] == {"type": "full", "dir": str(Path("relative/jwt").absolute())}
    # Only the system account: the others are pushed.
    assert values["resolver_preload"] == {system.key: system.token}
    assert values["system_account"] == system.key and values["operator"] == operator.token
    default = server_config(operator, "full")
    assert f'dir: "{operator.path.absolute() / "resolver"}"' in default


def test_refusals(tmp_path: Path) -> None:
    bare = operator_with_accounts(tmp_path, system=False)
    with pytest.raises(ConfigTextError, match="full resolver needs a system account"):
        server_config(bare, "full")
    with pytest.raises(ConfigTextError, match="use one of memory, full"):
        server_config(bare, "url")
