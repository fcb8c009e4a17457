"""Tokens made by config/jwt.py are what nats-server accepts: an operator, an account
preloaded into a MEMORY resolver, and a user connecting with nats-py and a `.creds`
file; a user signed by another account's key is refused. (The broker's own operator
mode builds on this codec; this checks the codec against the reference server.)"""

from __future__ import annotations

from pathlib import Path

import nats
import nats.errors
import pytest

from shardbroker.config import jwt
from tests.helpers.broker import (
    TARGET_ENV,
    barrier,
    collect_refused_sockets,
    is_shardbroker_target,
    run_broker,
    unique,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not is_shardbroker_target(), reason="runs nats-server itself"),
]

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip


async def test_nats_server_accepts_our_operator_account_and_user_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator, account, user = (jwt.new_seed(r) for r in ("operator", "account", "user"))
    stranger = jwt.new_seed("account")
    account_key = jwt.public_key(account)
    conf = tmp_path / "operator.conf"
    conf.write_text(
        f'operator: "{jwt.encode("operator", jwt.public_key(operator), operator, name="op")}"\n'
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f'  {account_key}: "'
        f'{jwt.encode("account", account_key, operator, {"limits": UNLIMITED}, name="A")}"\n'
        "}\n"
    )
    good = tmp_path / "user.creds"
    user_fields = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    good.write_text(
        jwt.format_creds(jwt.encode("user", jwt.public_key(user), account, user_fields), user)
    )
    forged = tmp_path / "forged.creds"
    forged.write_text(
        jwt.format_creds(jwt.encode("user", jwt.public_key(user), stranger, user_fields), user)
    )
    monkeypatch.setenv(TARGET_ENV, "nats-server")
    with run_broker(workers=1, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        nc = await nats.connect(broker.url, user_credentials=str(good), allow_reconnect=False)
        try:
            subject = unique("jwt")
            sub = await nc.subscribe(subject)
            await barrier(nc)
            await nc.publish(subject, b"signed")
            assert (await sub.next_msg(timeout=5)).data == b"signed"
            assert nc._server_info.get("nonce")
        finally:
            await nc.close()
        with pytest.raises((nats.errors.Error, OSError)):
            bad = await nats.connect(
                broker.url, user_credentials=str(forged), allow_reconnect=False
            )
            await bad.close()
        await collect_refused_sockets()
