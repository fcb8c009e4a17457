"""Operator mode made with `shardbroker jwt` alone (no nsc): the commands run as a user
runs them (`python -m shardbroker jwt ...`), then nats-server and shardbroker (2 workers)
start with the configuration they wrote, and nats-py clients connect with the `.creds`
files. Permissions, limits and refusals must be the same on both servers; `push` must
be answered as nsc's push is.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from shardbroker.config import jwt
from tests.helpers.broker import (
    Broker,
    NatsClients,
    barrier,
    collect_refused_sockets,
    connect_on_shard,
    is_shardbroker_target,
    unique,
)
from tests.helpers.differential import TARGETS_IN_ORDER, broker_on, on_both
from tests.helpers.wait import async_check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

CLI_TIMEOUT = 30


class Keys:
    """A `shardbroker jwt` store in a test's directory, filled through the command."""

    def __init__(self, tmp_path: Path) -> None:
        self.work = tmp_path
        self.dir = tmp_path / "keys"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "shardbroker", "jwt", *args],
            cwd=self.work,
            env={**os.environ, "SHARDBROKER_JWT_DIR": str(self.dir)},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    async def arun(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`run` from a test coroutine, without blocking its event loop (and clients)."""
        return await asyncio.to_thread(self.run, *args, ok=ok)

    def creds(self, account: str, user: str) -> Path:
        return self.dir / "acme" / "accounts" / account / "users" / f"{user}.creds"


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Operator acme with SYS and a signing key; account app (limits, an export) with
    alice (permissions; her creds also in alice.creds); account tiny (one connection,
    a signing key) with bob. Made once per module; each test works on a copy."""
    keys = Keys(tmp_path_factory.mktemp("jwt-tools"))
    keys.run("operator", "acme", "--system-account", "--signing-key")
    keys.run("account", "app", "--conn", "10", "--payload", "1K", "--export", "orders.>")
    keys.run("account", "tiny", "--conn", "1", "--signing-key")
    keys.run(
        "user", "alice", "--account", "app", "--creds", str(keys.work / "alice.creds"),
        "--pub-allow", "orders.>", "--pub-deny", "orders.secret",
        "--sub-allow", "orders.>", "--sub-allow", "_INBOX.>",
    )  # fmt: skip
    keys.run("user", "bob", "--account", "tiny")
    return keys.work


@pytest.fixture
def keys(made_keys: Path, tmp_path: Path) -> Keys:
    """This test's copy of the module's store (file modes kept)."""
    shutil.copytree(made_keys / "keys", tmp_path / "keys")
    shutil.copy2(made_keys / "alice.creds", tmp_path / "alice.creds")
    return Keys(tmp_path)


async def bad_seed_creds(keys: Keys, tmp_path: Path) -> dict[str, Path]:
    """alice's JWT with a seed that is not alice's: another user's, and alice's own with
    one character changed (nkeys signs with it as some other key)."""
    user_jwt, seed = jwt.parse_creds((tmp_path / "alice.creds").read_text())
    changed = seed[:20] + ("A" if seed[20] != "A" else "B") + seed[21:]
    out = {}
    for name, other in (("other seed", jwt.new_seed("user")), ("changed seed", changed)):
        path = tmp_path / f"{name.replace(' ', '-')}.creds"
        path.write_text(jwt.format_creds(user_jwt, other))
        out[name] = path
    # `show` sees it before any server does.
    shown = await keys.arun("show", str(out["other seed"]), ok=False)
    assert "is not the JWT's subject" in shown.stdout
    return out


async def login(broker: Broker, creds: Path, shard: int = 1) -> str:
    """'ok' when the user logs in, else the error that refused it."""
    try:
        nc = await connect_on_shard(broker, shard, user_credentials=str(creds))
    except (nats.errors.Error, OSError) as exc:
        error = str(exc).lower()
        nc = None
    if nc is None:
        # Outside the except block: its traceback no longer holds the refused client.
        await collect_refused_sockets()
        for known in ("authorization violation", "maximum account active connections exceeded"):
            if known in error:
                return known
        return error
    await nc.close()
    return "ok"


async def test_jwt_tools_operator_mode_on_both_servers(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = await bad_seed_creds(keys, tmp_path)
    await keys.arun("config", "--out", str(tmp_path / "operator.conf"))
    alice = tmp_path / "alice.creds"

    async def scenario(broker: Broker) -> Any:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        async with NatsClients(broker) as clients:
            reader = await clients.on_shard(1, user_credentials=str(alice), error_cb=on_error)
            writer = await clients.on_shard(2, user_credentials=str(alice), error_cb=on_error)
            orders = await reader.subscribe("orders.>")
            await barrier(reader)
            for subject in ("orders.new", "orders.secret", "billing.new"):
                await writer.publish(subject, subject.encode())
            await reader.subscribe("billing.>")
            await barrier(writer)
            await barrier(reader)
            first = await orders.next_msg(timeout=5)
            delivered = [first.subject]
            await writer.publish("orders.last", b"")
            delivered.append((await orders.next_msg(timeout=5)).subject)
            # The three -ERRs came before the PONGs; nats-py hands them to error_cb in tasks.
            await async_check_for(5, 0.01, lambda: len(errors) >= 3)
            out: dict[str, Any] = {
                "delivered": delivered,
                "errors": sorted(errors),
                "system user": await login(broker, keys.creds("SYS", "sys"), 2),
                "other seed": await login(broker, bad["other seed"]),
                "changed seed": await login(broker, bad["changed seed"], 2),
            }
            await clients.on_shard(1, user_credentials=str(keys.creds("tiny", "bob")))
            out["second bob"] = await login(broker, keys.creds("tiny", "bob"), 2)
            # app's payload limit (1K); nats-py does not know it, the server closes.
            big = await clients.on_shard(2, user_credentials=str(alice))
            await big.publish("orders.big", b"x" * 1025)
            await async_check_for(5, 0.01, lambda: big.is_closed)
            out["1025 bytes"] = str(big.last_error).lower()
        return out

    out = await on_both(tmp_path, monkeypatch, (tmp_path / "operator.conf").read_text(), scenario)
    assert out == {
        "delivered": ["orders.new", "orders.last"],  # not orders.secret: refused
        "errors": [
            'nats: permissions violation for publish to "billing.new"',
            'nats: permissions violation for publish to "orders.secret"',
            'nats: permissions violation for subscription to "billing.>"',
        ],
        "system user": "ok",
        "other seed": "authorization violation",
        "changed seed": "authorization violation",
        "second bob": "maximum account active connections exceeded",
        "1025 bytes": "nats: maximum payload violation",
    }


async def push(
    keys: Keys, broker: Broker, account: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return await keys.arun("push", account, "--server", broker.url, *extra, ok=False)


@pytest.mark.parametrize("target", TARGETS_IN_ORDER)
async def test_jwt_push_to_the_full_resolver(
    target: str, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `resolver { type: full }` only the system account is preloaded: a user of
    app is refused until app is pushed, then logs in (nsc's workflow)."""
    conf = tmp_path / "full.conf"
    resolver_dir = str(tmp_path / "resolver")
    await keys.arun("config", "--resolver", "full", "--resolver-dir", resolver_dir, "-o", str(conf))
    alice = tmp_path / "alice.creds"
    tiny_key = jwt.decode((keys.dir / "acme/accounts/tiny/account.jwt").read_text()).sub
    with broker_on(target, conf, monkeypatch, tmp_path) as broker:
        assert await login(broker, alice) == "authorization violation"
        # A temporary system user made from the store's keys, as nsc push does.
        pushed = await push(keys, broker, "app")
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.startswith('pushed "app" to server ')
        assert pushed.stdout.rstrip().endswith(": jwt updated")
        assert await login(broker, alice, 2) == "ok"
        # The system user's creds file, and the reply as JSON.
        sys_creds = str(keys.creds("SYS", "sys"))
        pushed = await push(keys, broker, "tiny", "--creds", sys_creds, "--json")
        assert pushed.returncode == 0, pushed.stderr
        reply = json.loads(pushed.stdout)
        assert reply["data"] == {"account": tiny_key, "code": 200, "message": "jwt updated"}
        assert await login(broker, keys.creds("tiny", "bob")) == "ok"
        # Expecting more servers than answer: all replies printed, then a failure.
        pushed = await push(keys, broker, "tiny", "--servers", "2", "--timeout", "0.5")
        assert pushed.returncode == 1 and pushed.stdout.rstrip().endswith(": jwt updated")
        assert "1 of 2 servers replied within 0.5s" in pushed.stderr


@pytest.mark.parametrize("target", TARGETS_IN_ORDER)
async def test_jwt_push_to_the_memory_resolver(
    target: str, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MEMORY resolver takes updates on $SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE only (and
    keeps them in memory): a raised connection limit applies at once."""
    conf = tmp_path / "memory.conf"
    await keys.arun("config", "--out", str(conf))
    bob = keys.creds("tiny", "bob")
    with broker_on(target, conf, monkeypatch, tmp_path) as broker:
        async with NatsClients(broker) as clients:
            first = await clients.on_shard(1, user_credentials=str(bob))
            assert await login(broker, bob, 2) == "maximum account active connections exceeded"
            await keys.arun("account", "tiny", "--conn", "2", "--update")
            pushed = await push(keys, broker, "tiny", "--per-account-subject")
            assert pushed.returncode == 0, pushed.stderr
            assert pushed.stdout.rstrip().endswith(": jwt updated")
            plain = await push(keys, broker, "tiny")
            assert plain.returncode == 1
            assert "no responders on $SYS.REQ.CLAIMS.UPDATE" in plain.stderr
            assert "--per-account-subject" in plain.stderr
            subject = unique("tiny")
            second = await clients.on_shard(2, user_credentials=str(bob))
            sub = await second.subscribe(subject)
            await barrier(second)
            await first.publish(subject, b"both in")
            assert (await sub.next_msg(timeout=5)).data == b"both in"
