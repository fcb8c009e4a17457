"""Account JWTs pushed to a running broker (jwt-operator-mode.md §2, §8): the MEMORY
resolver's updates on `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE`, and the nats-based
`full` resolver's `$SYS.REQ.CLAIMS.UPDATE`, LOOKUP, LIST and DELETE, applied at once
to the connections on both workers. Every scenario runs against nats-server too, with
the same config; the outcomes must match."""

from __future__ import annotations

import asyncio
import json
import time
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
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
OPERATOR = jwt.new_seed("operator")
SYSTEM = jwt.new_seed("account")
ACCOUNT = jwt.new_seed("account")
LATE = jwt.new_seed("account")  # pushed to the full resolver while it runs
SYSTEM_KEY, ACCOUNT_KEY, LATE_KEY = (jwt.public_key(s) for s in (SYSTEM, ACCOUNT, LATE))


def account_jwt(seed: str, name: str, **fields: Any) -> str:
    section = {"limits": dict(UNLIMITED)}
    section["limits"].update(fields.pop("limits", {}))
    section.update(fields)
    return jwt.encode("account", jwt.public_key(seed), OPERATOR, section, name=name)


def operator_jwt() -> str:
    return jwt.encode(
        "operator", jwt.public_key(OPERATOR), OPERATOR, {"system_account": SYSTEM_KEY}, name="op"
    )


def user_creds(tmp_path: Path, name: str, account: str = ACCOUNT, **fields: Any) -> Path:
    seed = jwt.new_seed("user")
    section = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, **fields}
    token = jwt.encode("user", jwt.public_key(seed), account, section, name=name)
    path = tmp_path / f"{name}.creds"
    path.write_text(jwt.format_creds(token, seed))
    return path


def user_key(creds: Path) -> str:
    token, _seed = jwt.parse_creds(creds.read_text())
    return jwt.decode(token, "user").sub


def memory_config() -> str:
    return (
        f'operator: "{operator_jwt()}"\n'
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f'  {SYSTEM_KEY}: "{account_jwt(SYSTEM, "SYS")}"\n'
        f'  {ACCOUNT_KEY}: "{account_jwt(ACCOUNT, "A")}"\n'
        "}\n"
    )


def full_config(directory: Path, allow_delete: bool = False) -> str:
    delete = "true" if allow_delete else "false"
    return (
        f'operator: "{operator_jwt()}"\n'
        f'resolver: {{ type: full, dir: "{directory}", allow_delete: {delete} }}\n'
        "resolver_preload: {\n"
        f'  {SYSTEM_KEY}: "{account_jwt(SYSTEM, "SYS")}"\n'
        f'  {ACCOUNT_KEY}: "{account_jwt(ACCOUNT, "A")}"\n'
        "}\n"
    )


class Watched:
    """A nats-py connection whose close the test can wait for."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.nc: Any = None

    async def connect(self, broker: Broker, shard: int, creds: Path) -> Watched:
        async def on_closed() -> None:
            # The attempts that landed on another worker are closed too: not ours.
            if self.nc is not None and self.nc.is_closed:
                self.closed.set()

        async def on_error(exc: Exception) -> None:
            pass  # last_error keeps it

        self.nc = await connect_on_shard(
            broker, shard, user_credentials=str(creds), closed_cb=on_closed, error_cb=on_error
        )
        return self

    async def end(self) -> str:
        """'open', or the error the server closed it with."""
        if not self.closed.is_set():
            await self.nc.close()
            return "open"
        return str(self.nc.last_error)

    async def wait_closed(self) -> str:
        await asyncio.wait_for(self.closed.wait(), 10)
        return str(self.nc.last_error)


async def request(nc: Any, subject: str, body: bytes) -> dict[str, Any]:
    reply = await nc.request(subject, body, timeout=5)
    answer = json.loads(reply.data)
    return {k: v for k, v in answer.items() if k != "server"}


async def outcome(broker: Broker, creds: Path, shard: int) -> str:
    """'ok' after a message through the broker, or what refused it."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    try:
        nc = await connect_on_shard(broker, shard, user_credentials=str(creds), error_cb=on_error)
    except (nats.errors.Error, OSError) as exc:
        errors.append(str(exc))
        nc = None
    if nc is None:
        await collect_refused_sockets()
        return "refused: " + "; ".join(sorted(set(errors)))
    try:
        subject = unique("upd")
        sub = await nc.subscribe(subject)
        await barrier(nc)
        await nc.publish(subject, b"hi")
        return "ok" if (await sub.next_msg(timeout=5)).data == b"hi" else "lost"
    finally:
        await nc.close()


async def test_memory_resolver_update_revokes_a_connected_user_on_another_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revocation pushed by a system account user on worker 1 closes the revoked
    user's connection on worker 2 with 'User Authentication Revoked'; other users stay;
    the answer comes once it is in effect, and the revoked JWT cannot log in again. An
    account this server does not know is skipped."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    doomed = user_creds(tmp_path, "doomed")
    kept = user_creds(tmp_path, "kept")
    stranger = jwt.new_seed("account")
    revoking = account_jwt(ACCOUNT, "A", revocations={user_key(doomed): int(time.time()) + 5})

    async def scenario(broker: Broker) -> Any:
        victim = await Watched().connect(broker, 2, doomed)
        bystander = await Watched().connect(broker, 2, kept)
        other_worker = await Watched().connect(broker, 1, kept)
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1, user_credentials=str(admin))
            answer = await request(
                nc, f"$SYS.REQ.ACCOUNT.{ACCOUNT_KEY}.CLAIMS.UPDATE", revoking.encode()
            )
            closed_with = await victim.wait_closed()
            skipped = await request(
                nc,
                f"$SYS.REQ.ACCOUNT.{jwt.public_key(stranger)}.CLAIMS.UPDATE",
                account_jwt(stranger, "S").encode(),
            )
        return {
            "answer": answer,
            "victim": closed_with,
            "bystander": await bystander.end(),
            "other worker": await other_worker.end(),
            "again": await outcome(broker, doomed, 1),
            "kept again": await outcome(broker, kept, 2),
            "skipped": skipped,
        }

    out = await on_both(tmp_path, monkeypatch, memory_config(), scenario)
    assert out["answer"] == {
        "data": {"account": ACCOUNT_KEY, "code": 200, "message": "jwt updated"}
    }
    assert out["victim"] == "nats: user authentication revoked"
    assert out["bystander"] == out["other worker"] == "open"
    assert out["again"].startswith("refused") and out["kept again"] == "ok"
    assert out["skipped"]["data"]["message"] == "jwt update skipped"


async def test_memory_resolver_refuses_bad_updates_with_nats_server_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Garbage, a JWT for another account than the subject names, an empty body, a JWT
    no trusted operator signed: an error answer each, and nothing changes."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    user = user_creds(tmp_path, "user")
    rogue = jwt.new_seed("operator")
    untrusted = jwt.encode("account", ACCOUNT_KEY, rogue, {"limits": {"conn": 0}}, name="A")
    subject = f"$SYS.REQ.ACCOUNT.{ACCOUNT_KEY}.CLAIMS.UPDATE"

    async def scenario(broker: Broker) -> Any:
        # nats-server loads a preloaded account when a user first logs in to it, and
        # skips updates of accounts not loaded yet; shardbroker loads them at start.
        first = await outcome(broker, user, 2)
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(2, user_credentials=str(admin))
            answers = [
                await request(nc, subject, b"not a jwt"),
                await request(nc, subject, account_jwt(SYSTEM, "SYS").encode()),
                await request(nc, subject, untrusted.encode()),
                await request(nc, subject, b""),
            ]
        codes = [(a.get("error") or {}).get("code") for a in answers]
        accounts = [(a.get("error") or {}).get("account") for a in answers]
        mismatch = answers[1]["error"]["description"]
        return first, codes, accounts, mismatch, await outcome(broker, user, 1)

    first, codes, accounts, mismatch, still = await on_both(
        tmp_path, monkeypatch, memory_config(), scenario
    )
    assert first == "ok"
    assert codes == [500, 500, 500, 500]
    assert accounts == [ACCOUNT_KEY] * 4
    assert mismatch == "jwt update resulted in error - subject does not match jwt content"
    assert still == "ok"


async def test_full_resolver_takes_new_accounts_and_applies_updates_on_both_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SYS.REQ.CLAIMS.UPDATE stores a new account in the directory and its users log
    in at once on either worker; LOOKUP and LIST see it; a later update that lowers the
    account's max payload applies to the connections already open on both workers."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    late_user = user_creds(tmp_path, "late", account=LATE)
    user = user_creds(tmp_path, "user")
    results = {}
    for target in TARGETS_IN_ORDER:
        directory = tmp_path / f"jwt-{target}"
        conf = tmp_path / f"{target}.conf"
        conf.write_text(full_config(directory))
        with broker_on(target, conf, monkeypatch, tmp_path) as broker:
            before = await outcome(broker, late_user, 1)
            async with NatsClients(broker) as clients:
                nc = await clients.on_shard(1, user_credentials=str(admin))
                pushed = await request(
                    nc, "$SYS.REQ.CLAIMS.UPDATE", account_jwt(LATE, "L").encode()
                )
                after = [await outcome(broker, late_user, 1), await outcome(broker, late_user, 2)]
                lookup = await nc.request(
                    f"$SYS.REQ.ACCOUNT.{LATE_KEY}.CLAIMS.LOOKUP", b"", timeout=5
                )
                listed = await request(nc, "$SYS.REQ.CLAIMS.LIST", b"")
                missing = await nc.request(
                    f"$SYS.REQ.ACCOUNT.{jwt.public_key(jwt.new_seed('account'))}.CLAIMS.LOOKUP",
                    b"",
                    timeout=5,
                )
                # Connections on both workers, then a lower max payload for their account.
                open_ones = [await Watched().connect(broker, shard, user) for shard in (1, 2)]
                small = account_jwt(ACCOUNT, "A", limits={"payload": 8})
                lowered = await request(nc, "$SYS.REQ.CLAIMS.UPDATE", small.encode())
                # More exports than its limits allow: refused, and nothing changes.
                two = [{"subject": s, "type": "stream"} for s in ("a", "b")]
                invalid = account_jwt(ACCOUNT, "A", limits={"exports": 1}, exports=two)
                refused = await request(nc, "$SYS.REQ.CLAIMS.UPDATE", invalid.encode())
                for watched in open_ones:
                    await watched.nc.publish(unique("big"), b"more than eight bytes")
                closed = [await watched.wait_closed() for watched in open_ones]
            results[target] = {
                "before": before,
                "pushed": pushed,
                "after": after,
                "lookup": lookup.data.decode() == account_jwt_on_disk(directory, LATE_KEY),
                "listed": sorted(listed["data"]),
                "missing": missing.data,
                "lowered": lowered,
                "closed": closed,
                "invalid": (refused["error"]["code"], refused["error"]["description"][:21]),
                "stored": account_jwt_on_disk(directory, ACCOUNT_KEY) == small,
            }
    assert results["shardbroker"] == results["nats-server"]
    out = results["shardbroker"]
    assert out["before"].startswith("refused")
    assert out["pushed"] == {"data": {"account": LATE_KEY, "code": 200, "message": "jwt updated"}}
    assert out["after"] == ["ok", "ok"]
    assert out["lookup"] is True and out["missing"] == b""
    assert out["listed"] == sorted([SYSTEM_KEY, ACCOUNT_KEY, LATE_KEY])
    assert out["closed"] == ["nats: maximum payload violation"] * 2
    assert out["invalid"] == (500, "jwt validation failed")
    assert out["stored"] is True


def account_jwt_on_disk(directory: Path, key: str) -> str:
    return (directory / f"{key}.jwt").read_text().strip()


async def test_full_resolver_delete_closes_the_accounts_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SYS.REQ.CLAIMS.DELETE, signed by the operator, with allow_delete: the account's
    JWT goes (renamed `.deleted`), its connections on both workers are closed with
    'Account Authentication Expired' and its users can no longer log in. A request not
    signed by the operator is refused."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    user = user_creds(tmp_path, "user")
    request_token = jwt.encode(
        "generic", jwt.public_key(OPERATOR), OPERATOR, {"accounts": [ACCOUNT_KEY]}
    )
    rogue = jwt.new_seed("operator")
    untrusted = jwt.encode("generic", jwt.public_key(rogue), rogue, {"accounts": [ACCOUNT_KEY]})
    results = {}
    for target in TARGETS_IN_ORDER:
        directory = tmp_path / f"jwt-{target}"
        conf = tmp_path / f"{target}.conf"
        conf.write_text(full_config(directory, allow_delete=True))
        with broker_on(target, conf, monkeypatch, tmp_path) as broker:
            open_ones = [await Watched().connect(broker, shard, user) for shard in (1, 2)]
            async with NatsClients(broker) as clients:
                nc = await clients.on_shard(2, user_credentials=str(admin))
                refused = await request(nc, "$SYS.REQ.CLAIMS.DELETE", untrusted.encode())
                deleted = await request(nc, "$SYS.REQ.CLAIMS.DELETE", request_token.encode())
                closed = [await watched.wait_closed() for watched in open_ones]
            results[target] = {
                "refused": refused["error"]["description"],
                "deleted": deleted,
                "closed": closed,
                "again": (await outcome(broker, user, 1)).startswith("refused"),
                "files": sorted(p.name for p in directory.iterdir() if ACCOUNT_KEY in p.name),
            }
    assert results["shardbroker"] == results["nats-server"]
    out = results["shardbroker"]
    assert out["refused"] == (
        f"delete accounts request by {jwt.public_key(rogue)} failed - not trusted"
    )
    assert out["deleted"] == {"data": {"code": 200, "message": "deleted 1 accounts"}}
    assert out["closed"] == ["nats: account authentication expired"] * 2
    assert out["again"] is True
    assert out["files"] == [f"{ACCOUNT_KEY}.jwt.deleted"]


async def test_lowered_connection_limit_closes_the_excess_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three connections of an account over two workers, then an update with `conn: 1`:
    two are closed with 'maximum account active connections exceeded', one stays, and a
    new connection is refused."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    user = user_creds(tmp_path, "user")
    one = account_jwt(ACCOUNT, "A", limits={"conn": 1})

    async def scenario(broker: Broker) -> Any:
        watched = [await Watched().connect(broker, shard, user) for shard in (1, 2, 2)]
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1, user_credentials=str(admin))
            answer = await request(
                nc, f"$SYS.REQ.ACCOUNT.{ACCOUNT_KEY}.CLAIMS.UPDATE", one.encode()
            )

            await async_check_for(10, 0.02, lambda: sum(w.closed.is_set() for w in watched) == 2)
            again = await outcome(broker, user, 1)  # while one is still open
            errors = sorted([await w.end() for w in watched])
        return answer["data"]["message"], errors, again

    message, errors, again = await on_both(tmp_path, monkeypatch, memory_config(), scenario)
    assert message == "jwt updated"
    assert errors == ["nats: maximum account active connections exceeded"] * 2 + ["open"]
    assert again.startswith("refused") and "maximum account active connections" in again


async def test_cache_resolver_updates_only_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`resolver { type: cache }`: an update of a loaded account is stored and applied
    ('jwt updated cache'), one of an account it does not hold is skipped, and LOOKUP is
    not answered by a cache."""
    admin = user_creds(tmp_path, "admin", account=SYSTEM)
    user = user_creds(tmp_path, "user")
    results = {}
    for target in TARGETS_IN_ORDER:
        directory = tmp_path / f"cache-{target}"
        conf = tmp_path / f"{target}.conf"
        conf.write_text(
            full_config(directory)
            .replace("type: full", "type: cache")
            .replace(", allow_delete: false", "")
        )
        with broker_on(target, conf, monkeypatch, tmp_path) as broker:
            first = await outcome(broker, user, 2)  # loads the account on nats-server
            async with NatsClients(broker) as clients:
                nc = await clients.on_shard(1, user_credentials=str(admin))
                small = account_jwt(ACCOUNT, "A", limits={"payload": 8})
                updated = await request(nc, "$SYS.REQ.CLAIMS.UPDATE", small.encode())
                skipped = await request(
                    nc, "$SYS.REQ.CLAIMS.UPDATE", account_jwt(LATE, "L").encode()
                )
                try:
                    await nc.request(
                        f"$SYS.REQ.ACCOUNT.{ACCOUNT_KEY}.CLAIMS.LOOKUP", b"", timeout=1
                    )
                    lookup = "answered"
                except nats.errors.NoRespondersError:
                    lookup = "no responders"
                except nats.errors.TimeoutError:
                    lookup = "timeout"
                watched = await Watched().connect(broker, 1, user)
                await watched.nc.publish(unique("big"), b"more than eight bytes")
                closed = await watched.wait_closed()
            results[target] = {
                "first": first, "updated": updated, "skipped": skipped,
                "lookup": lookup, "closed": closed,
                "stored": account_jwt_on_disk(directory, ACCOUNT_KEY) == small,
            }  # fmt: skip
    assert results["shardbroker"] == results["nats-server"]
    out = results["shardbroker"]
    assert out["updated"]["data"]["message"] == "jwt updated cache"
    assert out["skipped"]["data"]["message"] == "jwt update cache skipped"
    assert out["closed"] == "nats: maximum payload violation" and out["stored"] is True
