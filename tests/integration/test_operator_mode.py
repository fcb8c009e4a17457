"""Operator mode with the MEMORY resolver (jwt-operator-mode.md §1-§7): an operator, a
preloaded account, users connecting with `.creds` files over both workers. Each scenario
runs against nats-server and shardbroker with the same config and files; the outcomes
must match."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import pytest

from shardbroker.config import jwt
from tests.helpers.broker import (
    Broker,
    NatsClients,
    barrier,
    collect_refused_sockets,
    connect_on_shard,
    is_shardbroker_target,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.differential import on_both

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
SIGNER = jwt.new_seed("account")  # a signing key of ACCOUNT
STRANGER = jwt.new_seed("account")
ACCOUNT_KEY = jwt.public_key(ACCOUNT)


def user_creds(tmp_path: Path, name: str, signer: str = ACCOUNT, **fields: Any) -> tuple[Path, str]:
    seed = jwt.new_seed("user")
    expires = fields.pop("expires", 0)
    section = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, **fields}
    if signer != ACCOUNT:
        section["issuer_account"] = ACCOUNT_KEY
    token = jwt.encode("user", jwt.public_key(seed), signer, section, name=name, expires=expires)
    path = tmp_path / f"{name}.creds"
    path.write_text(jwt.format_creds(token, seed))
    return path, jwt.public_key(seed)


def config() -> str:
    account = jwt.encode(
        "account", ACCOUNT_KEY, OPERATOR,
        {"limits": UNLIMITED, "signing_keys": [jwt.public_key(SIGNER)]}, name="A",
    )  # fmt: skip
    operator = jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR, name="op")
    return (
        f'operator: "{operator}"\n'
        "resolver: MEMORY\n"
        f'resolver_preload: {{\n  {ACCOUNT_KEY}: "{account}"\n}}\n'
    )


async def outcome(broker: Broker, creds: Path, shard: int = 1) -> Any:
    """'ok' after a message through the broker, or 'refused'."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    try:
        nc = await connect_on_shard(broker, shard, user_credentials=str(creds), error_cb=on_error)
    except (nats.errors.Error, OSError) as exc:
        errors.append(str(exc))
        nc = None
    if nc is None:
        # Outside the except block: its traceback no longer holds the refused client.
        await collect_refused_sockets()
        return "refused" if any("authorization" in e.lower() for e in errors) else errors
    try:
        subject = unique("op")
        sub = await nc.subscribe(subject)
        await barrier(nc)
        await nc.publish(subject, b"hi")
        return "ok" if (await sub.next_msg(timeout=5)).data == b"hi" else "lost"
    finally:
        await nc.close()


async def test_operator_mode_users_with_creds_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, _ = user_creds(tmp_path, "good")
    signed, _ = user_creds(tmp_path, "signed", signer=SIGNER)
    forged, _ = user_creds(tmp_path, "forged", signer=STRANGER)
    expired, _ = user_creds(tmp_path, "expired", expires=int(time.time()) - 10)

    async def scenario(broker: Broker) -> Any:
        out = {
            "good on worker 1": await outcome(broker, good, 1),
            "good on worker 2": await outcome(broker, good, 2),
            "signing key": await outcome(broker, signed, 2),
            "forged": await outcome(broker, forged),
            "expired": await outcome(broker, expired),
        }
        return out

    out = await on_both(tmp_path, monkeypatch, config(), scenario)
    assert out == {
        "good on worker 1": "ok", "good on worker 2": "ok", "signing key": "ok",
        "forged": "refused", "expired": "refused",
    }  # fmt: skip


async def test_operator_mode_user_permissions_and_limits_from_the_jwt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pub/sub permissions of the user JWT; INFO carries a nonce in operator mode."""
    limited, _ = user_creds(
        tmp_path, "limited", pub={"allow": ["ok.>"]}, sub={"allow": ["ok.>"]}, payload=16
    )

    async def scenario(broker: Broker) -> Any:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        client = raw_connect_on_shard(broker, 2)
        info = client.info
        with client:
            pass
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1, user_credentials=str(limited), error_cb=on_error)
            await nc.subscribe("no.x")
            await barrier(nc)
            await nc.publish("no.x", b"x")
            await barrier(nc)
        return bool(info.get("nonce")), sorted(errors)

    nonce, errors = await on_both(tmp_path, monkeypatch, config(), scenario)
    assert nonce
    assert any("subscription" in e for e in errors) and any("publish" in e for e in errors)


async def test_operator_mode_version_1_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version 1 tokens nats.py's own tests use (claims-only signatures, the type at
    the top); an account without a `conn` limit takes no connections, in version 1 too."""
    operator, account, user = (jwt.new_seed(r) for r in ("operator", "account", "user"))
    account_key = jwt.public_key(account)
    account_token = jwt.encode("account", account_key, operator, {"limits": UNLIMITED}, version=1)
    closed = jwt.new_seed("account")
    closed_token = jwt.encode(
        "account", jwt.public_key(closed), operator, {"limits": {"wildcards": True}}, version=1
    )
    conf = (
        f'operator: "{jwt.encode("operator", jwt.public_key(operator), operator, version=1)}"\n'
        "resolver: MEMORY\n"
        f'resolver_preload: {{\n  {account_key}: "{account_token}"\n'
        f'  {jwt.public_key(closed)}: "{closed_token}"\n}}\n'
    )
    creds = tmp_path / "v1.creds"
    token = jwt.encode("user", jwt.public_key(user), account, {"pub": {}, "sub": {}}, version=1)
    creds.write_text(jwt.format_creds(token, user))
    shut = tmp_path / "v1-closed.creds"
    token = jwt.encode("user", jwt.public_key(user), closed, {"pub": {}, "sub": {}}, version=1)
    shut.write_text(jwt.format_creds(token, user))

    async def scenario(broker: Broker) -> Any:
        results = [await outcome(broker, creds, 1), await outcome(broker, creds, 2)]
        return [*results, await outcome(broker, shut, 2)]

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert out[:2] == ["ok", "ok"]
    assert any("maximum account active connections exceeded" in e for e in out[2])


async def test_operator_mode_raw_callbacks_and_a_wrong_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py's `user_jwt_cb`/`signature_cb` (the JWT and the nonce signature given by
    the application) log in on both workers; a .creds file whose seed is not the user
    JWT's key is refused with Authorization Violation, and nothing else is harmed."""
    good, _ = user_creds(tmp_path, "callbacks")
    token, seed = jwt.parse_creds(good.read_text())
    wrong = tmp_path / "wrong-seed.creds"
    wrong.write_text(jwt.format_creds(token, jwt.new_seed("user")))

    def sign(nonce: str) -> bytes:
        return base64.b64encode(nkeys.from_seed(seed.encode()).sign(nonce.encode()))

    async def scenario(broker: Broker) -> Any:
        results = {}
        async with NatsClients(broker) as clients:
            for shard in (1, 2):
                nc = await clients.on_shard(
                    shard, user_jwt_cb=lambda: token.encode(), signature_cb=sign
                )
                subject = unique("cb")
                sub = await nc.subscribe(subject)
                await barrier(nc)
                await nc.publish(subject, b"x")
                results[f"callbacks on worker {shard}"] = (await sub.next_msg(timeout=5)).data
            results["wrong seed"] = await outcome(broker, wrong, 2)
            results["others unharmed"] = await outcome(broker, good, 1)
        return results

    out = await on_both(tmp_path, monkeypatch, config(), scenario)
    assert out == {
        "callbacks on worker 1": b"x", "callbacks on worker 2": b"x",
        "wrong seed": "refused", "others unharmed": "ok",
    }  # fmt: skip
