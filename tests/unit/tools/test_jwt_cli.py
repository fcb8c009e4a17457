"""`shardbroker jwt` (tools/jwt_cli.py) in process: the commands, their help, and each
refusal as one line on stderr with exit status 1."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shardbroker.cli import app
from shardbroker.config import jwt
from shardbroker.tools.jwt_cli import _push_outcome
from shardbroker.tools.jwtstore import Store

runner = CliRunner()


def run(*args: str, code: int = 0) -> tuple[str, str]:
    result = runner.invoke(app, ["jwt", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout, result.stderr


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with operator acme (and SYS), account app, user alice; also the default
    store of the commands, through $SHARDBROKER_JWT_DIR."""
    monkeypatch.setenv("SHARDBROKER_JWT_DIR", str(tmp_path / "keys"))
    run("operator", "acme", "--system-account")
    run("account", "app", "--conn", "3", "--payload", "1K", "--js-disk", "1G")
    run("user", "alice", "--account", "app", "--pub-allow", "orders.>", "--sub-deny", "secret.>")
    return tmp_path / "keys"


def test_help_lists_the_commands_and_the_layout() -> None:
    out, _ = run("--help")
    for command in ("operator", "account", "user", "config", "push", "show"):
        assert command in out
    assert "operator.nk" in out and "USER.creds" in out and "0600" in out
    assert "--pub-allow" in run("user", "--help")[0]


def test_a_session(keys: Path, tmp_path: Path) -> None:
    operator = Store(keys).operator()
    app_account = operator.account("app")
    assert app_account.claims.nats["limits"]["conn"] == 3
    assert app_account.claims.nats["limits"]["payload"] == 1024
    assert app_account.claims.nats["limits"]["disk_storage"] == 1 << 30
    user_jwt, _ = jwt.parse_creds(app_account.creds_path("alice").read_text())
    user = jwt.decode(user_jwt, "user")
    assert user.nats["pub"] == {"allow": ["orders.>"]} and user.nats["sub"] == {
        "deny": ["secret.>"]
    }
    # A copy of the creds where the client wants it, 0600 too.
    copy = tmp_path / "bob.creds"
    out, _ = run("user", "bob", "--account", "app", "--creds", str(copy), "--expires", "1h")
    assert str(copy) in out and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert jwt.decode(jwt.parse_creds(copy.read_text())[0], "user").exp
    # Imports name an account of the store.
    run("account", "shop", "--export-service", "svc.price")
    run("account", "web", "--import-service", "shop:svc.price:price")
    (imported,) = operator.account("web").claims.nats["imports"]
    assert imported["account"] == operator.account("shop").key
    conf = tmp_path / "op.conf"
    assert "configuration written" in run("config", "--out", str(conf))[0]
    assert app_account.key in conf.read_text()
    assert run("config")[0] == conf.read_text()
    # The configuration names the system account, which must be among the accounts.
    checked = runner.invoke(app, ["check-config", str(conf)])
    assert checked.exit_code == 0 and "is valid" in checked.stdout, checked.stderr


def test_show_creds_hides_the_seed(keys: Path) -> None:
    creds = keys / "acme" / "accounts" / "app" / "users" / "alice.creds"
    _, seed = jwt.parse_creds(creds.read_text())
    out, _ = run("show", str(creds))
    assert 'user JWT "alice"' in out and "signature  valid" in out and seed not in out
    assert seed in run("show", str(creds), "--show-seed")[0]
    described = json.loads(run("show", str(creds), "--json")[0])
    assert described["claims"]["name"] == "alice" and described["problems"] == []
    token = (keys / "acme" / "accounts" / "app" / "account.jwt").read_text().strip()
    assert "account JWT" in run("show", token)[0]
    # A creds file whose seed is some other user's: a failed check.
    other = jwt.new_seed("user")
    creds.write_text(jwt.format_creds(jwt.parse_creds(creds.read_text())[0], other))
    out, _ = run("show", str(creds), code=1)
    assert "is not the JWT's subject" in out and other not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("operator", "acme"), 'operator "acme" already exists'),
        (("operator", "a/b"), "operator name 'a/b'"),
        (("account", "app"), 'account "app" already exists'),
        (("account", "x", "--conn", "many"), "--conn: 'many' is not -1 or a number"),
        (("account", "x", "--import", "nowhere:a"), 'no account "nowhere"'),
        (("account", "x", "--export", "a..b"), "--export: 'a..b' is not a valid subject"),
        (("user", "u", "--account", "nope"), 'no account "nope"'),
        (("user", "u", "--account", "app", "--pub-allow", "a b"), "--pub-allow: 'a b'"),
        (("user", "u", "--account", "app", "--expires", "yesterday"), "--expires"),
        (("config", "--resolver", "url"), "use one of memory, full"),
        (("config", "--operator", "other"), 'no operator "other"'),
        (("show", "nothing-here"), "no JWT"),
        (("push", "nope"), 'no account "nope"'),
    ],
)
def test_refusals(keys: Path, args: tuple[str, ...], message: str) -> None:
    _, err = run(*args, code=1)
    assert err.startswith(f"shardbroker jwt {args[0]}: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_push_refuses_a_bad_seed_before_connecting(keys: Path, tmp_path: Path) -> None:
    sys_creds = keys / "acme" / "accounts" / "SYS" / "users" / "sys.creds"
    user_jwt, seed = jwt.parse_creds(sys_creds.read_text())
    changed = seed[:10] + ("A" if seed[10] != "A" else "B") + seed[11:]
    bad = tmp_path / "bad.creds"
    bad.write_text(jwt.format_creds(user_jwt, changed))
    # Port 1 is never served here: a refusal after connecting would say "cannot connect".
    _, err = run("push", "app", "-s", "nats://127.0.0.1:1", "--creds", str(bad), code=1)
    assert "the seed is not a valid user seed" in err
    bad.write_text(jwt.format_creds(user_jwt, jwt.new_seed("user")))
    _, err = run("push", "app", "-s", "nats://127.0.0.1:1", "--creds", str(bad), code=1)
    assert "the seed does not belong to the user JWT" in err
    _, err = run("push", "app", "-s", "nats://127.0.0.1:1", code=1)
    assert "cannot connect to nats://127.0.0.1:1" in err


def test_push_outcome_of_each_reply() -> None:
    server = {"name": "N1", "id": "N1"}
    data = {"account": "A", "code": 200, "message": "jwt updated"}
    reply = json.dumps({"server": server, "data": data}).encode()
    assert _push_outcome("app", reply) == (True, 'pushed "app" to server N1: jwt updated')
    error = {"account": "A", "code": 500, "description": "jwt validation failed"}
    reply = json.dumps({"server": server, "error": error}).encode()
    assert _push_outcome("app", reply) == (False, 'server N1 refused "app": jwt validation failed')
    assert _push_outcome("app", b"[1]")[0] is False
    assert _push_outcome("app", b"not json") == (False, "unexpected reply: b'not json'")
