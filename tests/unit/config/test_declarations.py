"""The Options declarations and what derives from them outside config/: the options of
`shardbroker serve` (flags, help, defaults) and the README's flag table.

UPDATE_README=1 rewrites the README's table from the declarations instead of failing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer.main

from shardbroker.cli import app, flag_table
from shardbroker.config.options import DECLARATIONS

README = Path(__file__).resolve().parents[3] / "README.md"
_TABLE = re.compile(
    r"(<!-- serve flags:[^\n]*\n(?:[^\n]*-->\n)?)(.*?)(<!-- end of serve flags -->)", re.S
)


def serve_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params}


def test_config_declarations_give_serve_its_options() -> None:
    """Each declared flag is an option of serve with the declaration's help and default."""
    options = serve_options()
    declared = [decl for decl in DECLARATIONS if decl.setting.flags]
    assert {"port", "workers", "http_port", "store_dir"} <= {decl.name for decl in declared}
    for decl in declared:
        option = options[decl.name]
        assert [*option.opts, *option.secondary_opts] == list(decl.setting.flags), decl.name  # type: ignore[attr-defined]
        assert option.help == decl.setting.help, decl.name  # type: ignore[attr-defined]
        default = decl.setting.flag_default if decl.setting.from_flag else decl.default
        assert option.default == default, decl.name  # type: ignore[attr-defined]
    # The options that set no field of their own (-c, -t, --signal, auth and TLS flags).
    others = set(options) - {decl.name for decl in declared}
    assert others == {
        "config", "check_only", "signal_command", "auth", "user", "password", "tls",
        "tlscert", "tlskey", "tlscacert", "tlsverify", "show_version",
    }  # fmt: skip


def test_config_declarations_flags_and_keys_are_unique() -> None:
    flags = [flag for decl in DECLARATIONS for flag in decl.setting.flags]
    assert len(flags) == len(set(flags))
    keys = [key.lower() for decl in DECLARATIONS for key in decl.setting.keys]
    assert len(keys) == len(set(keys))


def test_config_declarations_readme_flag_table() -> None:
    text = README.read_text()
    match = _TABLE.search(text)
    assert match is not None, "README.md lost its <!-- serve flags --> markers"
    table = flag_table()
    if match.group(2) != table and os.environ.get("UPDATE_README"):
        README.write_text(text[: match.start(2)] + table + text[match.end(2) :])
        return
    assert match.group(2) == table, (
        "README.md's flag table differs from serve's options; rerun with UPDATE_README=1"
    )
