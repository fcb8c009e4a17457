"""Publisher rate limits (shardbroker's extension; worker/ratelimit.py): a limited
publisher is slowed, never cut, and loses nothing; an account's limit holds over both
workers within the bound mesh/rate_table.py states; unlimited clients on the same
worker are not held; reloads raise and lower limits live; reject mode refuses excess
publishes with an error that keeps the connection.

Time is the behaviour here (messages per second), so the slow-mode tests assert a
lower bound on elapsed time, which only a broker that lets too much through can break
(a slow machine makes them pass more easily, never fail). The issue's full-size case
(1,000 msg/s, 10,000 messages, >= 9 s) runs with `make soak` (RATE_LIMIT_SOAK=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from shardbroker.config import jwt
from shardbroker.config.rate_limit import JWT_CLAIM
from tests.helpers.broker import (
    Broker,
    barrier,
    connect_on_shard,
    free_port,
    is_shardbroker_target,
    raw_connect_on_shard,
    run_broker,
    shardbroker_command,
    unique,
)
from tests.helpers.differential import broker_on
from tests.helpers.wait import async_check_for, check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not is_shardbroker_target(), reason="a shardbroker extension"),
]

SOAK = os.environ.get("RATE_LIMIT_SOAK", "") == "1"
# The bound of mesh/rate_table.py: 2W - 1 leases over the limit, W = 2 workers.
LEASE_SECONDS = 0.02


@contextlib.contextmanager
def broker_with(tmp_path: Path, text: str) -> Iterator[Broker]:
    conf = tmp_path / "broker.conf"
    conf.write_text(text)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        yield broker


async def publish_all(nc: Any, subject: str, count: int) -> None:
    """Publish as fast as nats-py goes: its pending buffer fills, then TCP pushes back."""
    for i in range(count):
        await nc.publish(subject, str(i).encode())
    await nc.flush(timeout=120)


async def collect(nc: Any, subject: str) -> tuple[list[int], Any]:
    got: list[int] = []

    async def on_msg(msg: Any) -> None:
        got.append(int(msg.data))

    sub = await nc.subscribe(subject, cb=on_msg)
    await barrier(nc)
    return got, sub


async def run_limited_publisher(broker: Broker, rate: int, count: int, burst: int) -> None:
    """One connection limited to `rate` msg/s publishes `count` messages as fast as it
    can: it takes at least (count - burst) / rate seconds and every message arrives, in
    order, at a subscriber on the other worker."""
    sub_nc = await connect_on_shard(broker, 2)
    pub_nc = await connect_on_shard(broker, 1, pending_size=64 * 1024)
    try:
        subject = unique("rl.")
        got, _ = await collect(sub_nc, subject)
        start = time.monotonic()
        await publish_all(pub_nc, subject, count)
        await async_check_for(60, 0.05, lambda: len(got) >= count)
        elapsed = time.monotonic() - start
        assert got == list(range(count))
        assert elapsed >= (count - burst) / rate, f"{count} messages in {elapsed:.2f}s"
    finally:
        await pub_nc.close()
        await sub_nc.close()


async def test_rate_limit_slows_one_connection_and_keeps_every_message(tmp_path: Path) -> None:
    rate, count = (1000, 10_000) if SOAK else (200, 1000)
    with broker_with(tmp_path, f"rate_limit {{ msgs_per_sec: {rate} }}\n") as broker:
        await run_limited_publisher(broker, rate, count, burst=rate // 10)


USERS = """
accounts {
  A {
    users [
      {user: slow, password: s, rate_limit { msgs_per_sec: 50, burst_msgs: 5 }}
      {user: fast, password: f}
    ]
  }
}
"""


@pytest.mark.parametrize("shard", [1, 2])
async def test_rate_limit_holds_only_the_limited_publisher(tmp_path: Path, shard: int) -> None:
    """While a limited user's publisher is held, an unlimited client of the same
    account on the same worker completes its round trips: the worker is not slowed."""
    count = 1000  # 20 s at 50 msg/s: far longer than the round trips take
    with broker_with(tmp_path, USERS) as broker:
        sub_nc = await connect_on_shard(broker, 3 - shard, user="fast", password="f")
        slow_nc = await connect_on_shard(broker, shard, user="slow", password="s")
        fast_nc = await connect_on_shard(broker, shard, user="fast", password="f")
        publishing: asyncio.Task[None] | None = None
        try:
            subject = unique("rl.")
            got, _ = await collect(sub_nc, subject)
            echo = unique("echo.")

            async def answer(msg: Any) -> None:
                await msg.respond(msg.data)

            await sub_nc.subscribe(echo, cb=answer)
            await barrier(sub_nc)
            publishing = asyncio.create_task(publish_all(slow_nc, subject, count))
            # The limited publisher is being held back...
            await async_check_for(10, 0.01, lambda: 5 <= len(got) < count)
            # ...while the unlimited one goes through request after request.
            for i in range(100):
                reply = await fast_nc.request(echo, str(i).encode(), timeout=5)
                assert reply.data == str(i).encode()
            assert len(got) < count, "the limited publisher was not held back"
            assert got == list(range(len(got)))  # what came through so far, in order
        finally:
            if publishing is not None:
                publishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publishing
            for nc in (fast_nc, slow_nc, sub_nc):
                await nc.close()


ACCOUNT_RATE = 100
ACCOUNT_BURST = 10


async def test_rate_limit_of_an_account_holds_over_both_workers(tmp_path: Path) -> None:
    """Publishers of one account on both workers share its budget: together they get
    no more than burst + rate * T + (2W - 1) * lease messages through in T seconds."""
    per_publisher = 150
    conf = f"""
accounts {{
  A {{
    users [ {{user: a, password: a}} ]
    rate_limit {{ msgs_per_sec: {ACCOUNT_RATE}, burst_msgs: {ACCOUNT_BURST} }}
  }}
}}
"""
    with broker_with(tmp_path, conf) as broker:
        sub_nc = await connect_on_shard(broker, 1, user="a", password="a")
        publishers = [
            await connect_on_shard(broker, shard, user="a", password="a") for shard in (1, 2)
        ]
        try:
            subject = unique("rl.")
            got: dict[str, list[int]] = {"1": [], "2": []}

            async def on_msg(msg: Any) -> None:
                got[msg.subject.rsplit(".", 1)[1]].append(int(msg.data))

            await sub_nc.subscribe(subject + ".*", cb=on_msg)
            await barrier(sub_nc)
            start = time.monotonic()
            await asyncio.gather(
                *(
                    publish_all(nc, f"{subject}.{shard}", per_publisher)
                    for shard, nc in zip(("1", "2"), publishers, strict=True)
                )
            )
            total = 2 * per_publisher
            await async_check_for(30, 0.05, lambda: sum(map(len, got.values())) >= total)
            elapsed = time.monotonic() - start
            # Nothing lost, each publisher's messages in order.
            assert got["1"] == list(range(per_publisher))
            assert got["2"] == list(range(per_publisher))
            lease = max(1, int(ACCOUNT_RATE * LEASE_SECONDS))
            bound = ACCOUNT_BURST + ACCOUNT_RATE * elapsed + (2 * 2 - 1) * lease
            assert total <= bound, f"{total} messages in {elapsed:.2f}s, bound {bound:.0f}"
        finally:
            for nc in (*publishers, sub_nc):
                await nc.close()


def rejected_err(subject: str) -> str:
    return f'Permissions Violation for Publish to "{subject}": rate limit exceeded'


REJECT_USERS = """
accounts {
  A {
    users [
      {user: r, password: r, rate_limit { msgs_per_sec: 1, burst_msgs: 2, mode: reject }}
      {user: s, password: s}
    ]
  }
}
"""


@pytest.mark.parametrize("with_login", [False, True], ids=["after-login", "with-login"])
def test_rate_limit_reject_mode_refuses_the_excess_and_keeps_the_connection(
    tmp_path: Path, with_login: bool
) -> None:
    """Five publishes in one write: the burst (2) goes through, three are refused, each
    with its own error, in order, and the PING behind them is answered. With the
    CONNECT in the same write, the publishes behind it meet the limit of the user it
    logs in."""
    with (
        broker_with(tmp_path, REJECT_USERS) as broker,
        raw_connect_on_shard(broker, 2) as sub,
        raw_connect_on_shard(broker, 1) as pub,
    ):
        sub.handshake(user="s", **{"pass": "s"})
        login = b'CONNECT {"user":"r","pass":"r","verbose":false,"pedantic":false}\r\n'
        if not with_login:
            pub.handshake(user="r", **{"pass": "r"})
            login = b""
        subject = unique("rj.")
        sub.send(f"SUB {subject} 1\r\n".encode())
        sub.ping_barrier()
        pubs = b"".join(f"PUB {subject} 1\r\n{i}\r\n".encode() for i in range(5))
        pub.send(login + pubs + b"PING\r\n")
        for _ in range(3):
            pub.expect_err(rejected_err(subject))
        pub.expect(b"PONG\r\n")
        assert [sub.read_msg().payload for _ in range(2)] == [b"0", b"1"]
        sub.ping_barrier()
        assert pub.is_open()


async def test_rate_limit_reject_mode_is_not_fatal_for_nats_py(tmp_path: Path) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    with broker_with(tmp_path, REJECT_USERS) as broker:
        nc = await connect_on_shard(broker, 1, user="r", password="r", error_cb=on_error)
        try:
            subject = unique("rj.")
            for i in range(5):
                await nc.publish(subject, str(i).encode())
            await nc.flush()
            await async_check_for(5, 0.01, lambda: len(errors) >= 3)
            assert all(rejected_err(subject).lower() in str(e).lower() for e in errors)
            assert nc.is_connected
            await nc.flush()
        finally:
            await nc.close()


def reload_users(rate: int, burst: int) -> str:
    return f"""
accounts {{
  A {{
    users [ {{user: a, password: a}} ]
    rate_limit {{ msgs_per_sec: {rate}, burst_msgs: {burst} }}
  }}
}}
"""


async def test_rate_limit_reload_raises_and_lowers_a_limit_live(tmp_path: Path) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text(reload_users(20, 2))
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        sub_nc = await connect_on_shard(broker, 2, user="a", password="a")
        pub_nc = await connect_on_shard(broker, 1, user="a", password="a")
        try:
            subject = unique("rl.")
            got, _ = await collect(sub_nc, subject)
            # 1,000 messages at 20 msg/s would take 50 s...
            publishing = asyncio.create_task(publish_all(pub_nc, subject, 1000))
            await async_check_for(10, 0.01, lambda: 2 <= len(got) < 1000)
            # ...raised live: the rest comes through at once.
            reloaded = broker.log_text().count("Reloaded server configuration")
            conf.write_text(reload_users(1_000_000, 1000))
            os.kill(broker.pid, signal.SIGHUP)
            await async_check_for(20, 0.05, lambda: len(got) >= 1000)
            await publishing
            assert got == list(range(1000))
            assert broker.log_text().count("Reloaded server configuration") > reloaded
            # Lowered live: 200 more at 50 msg/s take at least (200 - 5) / 50 s.
            conf.write_text(reload_users(50, 5))
            os.kill(broker.pid, signal.SIGHUP)
            await async_check_for(
                10,
                0.05,
                lambda: broker.log_text().count("Reloaded server configuration") > reloaded + 1,
            )
            del got[:]
            start = time.monotonic()
            await publish_all(pub_nc, subject, 200)
            await async_check_for(20, 0.05, lambda: len(got) >= 200)
            elapsed = time.monotonic() - start
            assert got == list(range(200))
            assert elapsed >= (200 - 5 - 3 * 1) / 50, f"200 messages in {elapsed:.2f}s"
        finally:
            await pub_nc.close()
            await sub_nc.close()


# -- operator mode: the limit as a tagged claim of account and user JWTs -----------------

OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
ACCOUNT_KEY = jwt.public_key(ACCOUNT)
UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
ACCOUNT_CLAIM = {"msgs_per_sec": 100, "burst_msgs": 10}


def operator_config() -> str:
    account = jwt.encode(
        "account", ACCOUNT_KEY, OPERATOR,
        {"limits": UNLIMITED, JWT_CLAIM: ACCOUNT_CLAIM}, name="A",
    )  # fmt: skip
    operator = jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR, name="op")
    return (
        f'operator: "{operator}"\n'
        "resolver: MEMORY\n"
        f'resolver_preload: {{\n  {ACCOUNT_KEY}: "{account}"\n}}\n'
    )


def user_creds(tmp_path: Path, name: str, claim: dict[str, Any] | None) -> Path:
    seed = jwt.new_seed("user")
    section: dict[str, Any] = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    if claim is not None:
        section[JWT_CLAIM] = claim
    token = jwt.encode("user", jwt.public_key(seed), ACCOUNT, section, name=name)
    path = tmp_path / f"{name}.creds"
    path.write_text(jwt.format_creds(token, seed))
    return path


async def test_rate_limit_claims_are_accepted_by_nats_server_and_applied_by_shardbroker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same JWTs log in and deliver on both servers (nats-server ignores the tagged
    field); shardbroker applies the user's limit (reject, one message a second) and the
    account's (100 msg/s over both workers)."""
    limited = user_creds(
        tmp_path, "limited", {"msgs_per_sec": 1, "burst_msgs": 1, "mode": "reject"}
    )
    plain = user_creds(tmp_path, "plain", None)

    async def scenario(broker: Broker) -> Any:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        sub_nc = await connect_on_shard(broker, 2, user_credentials=str(plain))
        pub_nc = await connect_on_shard(broker, 1, user_credentials=str(limited), error_cb=on_error)
        try:
            subject = unique("op.")
            got, _ = await collect(sub_nc, subject)
            for i in range(3):
                await pub_nc.publish(subject, str(i).encode())
            await pub_nc.flush()
            await sub_nc.flush()
            await async_check_for(5, 0.01, lambda: len(got) + len(errors) >= 3)
            return {"delivered": list(got), "errors": len(errors), "connected": pub_nc.is_connected}
        finally:
            await pub_nc.close()
            await sub_nc.close()

    conf = tmp_path / "operator.conf"
    conf.write_text(operator_config())
    results = {}
    for target in ("nats-server", "shardbroker"):
        with broker_on(target, conf, monkeypatch, tmp_path) as broker:
            results[target] = await scenario(broker)
            if target == "shardbroker":
                await account_limit_holds(broker, plain)
    assert results["nats-server"] == {"delivered": [0, 1, 2], "errors": 0, "connected": True}
    assert results["shardbroker"] == {"delivered": [0], "errors": 2, "connected": True}


async def account_limit_holds(broker: Broker, creds: Path) -> None:
    """The account JWT's limit: 300 messages from both workers take their time."""
    sub_nc = await connect_on_shard(broker, 1, user_credentials=str(creds))
    pubs = [await connect_on_shard(broker, s, user_credentials=str(creds)) for s in (1, 2)]
    try:
        subject = unique("op.")
        got, _ = await collect(sub_nc, subject)
        start = time.monotonic()
        await asyncio.gather(publish_all(pubs[0], subject, 150), publish_all(pubs[1], subject, 150))
        await async_check_for(20, 0.05, lambda: len(got) >= 300)
        elapsed = time.monotonic() - start
        rate, burst = ACCOUNT_CLAIM["msgs_per_sec"], ACCOUNT_CLAIM["burst_msgs"]
        lease = max(1, int(rate * LEASE_SECONDS))
        assert burst + rate * elapsed + 3 * lease >= 300, f"300 messages in {elapsed:.2f}s"
    finally:
        for nc in (*pubs, sub_nc):
            await nc.close()


# -- what monitoring shows -------------------------------------------------------------

VISIBLE = """
accounts {
  A {
    users [ {user: a, password: a} ]
    rate_limit { msgs_per_sec: 50, burst_msgs: 5 }
  }
  B { users [ {user: b, password: b} ] }
  $SYS { users [ {user: sys, password: p} ] }
}
"""


def http_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return str(answer.read().decode())


def stats_doc(port: int) -> Any:
    done = subprocess.run(
        shardbroker_command("stats", "--json", "--interval", "0.2", "-p", str(port)),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def metric(text: str, name: str, limit: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'limit="{limit}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} for {limit}")


async def test_rate_limit_is_visible_in_monitoring_stats_and_an_advisory(tmp_path: Path) -> None:
    mport = free_port()
    conf = tmp_path / "broker.conf"
    conf.write_text(VISIBLE)
    extra = ("-c", str(conf), "-m", str(mport))
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=extra) as broker:
        watcher = await connect_on_shard(broker, 2, user="sys", password="p")
        limited = await connect_on_shard(broker, 1, user="a", password="a", name="limited")
        free = await connect_on_shard(broker, 1, user="b", password="b", name="free")
        try:
            advisories = await watcher.subscribe("$SYS.ACCOUNT.A.RATE_LIMIT")
            await barrier(watcher)
            await publish_all(limited, unique("v."), 30)  # 5 at once, then 50 msg/s
            await publish_all(free, unique("v."), 30)
            event = json.loads((await advisories.next_msg(timeout=5)).data)
            assert event["type"] == "io.shardbroker.advisory.v1.rate_limit"
            assert (event["limit"], event["mode"], event["msgs_per_sec"]) == (
                "account:A",
                "slow",
                50,
            )
            assert (event["client"]["acc"], event["client"]["name"]) == ("A", "limited")
            # Once per account and worker within RATE_ADVISORY_INTERVAL, not per hold.
            await publish_all(limited, unique("v."), 10)
            await barrier(watcher)
            with pytest.raises(nats.errors.TimeoutError):
                await advisories.next_msg(timeout=0.2)

            conns = {c["name"]: c for c in http_json(mport, "/connz?auth=1")["connections"]}
            assert conns["limited"]["rate_limits"] == ["account:A"]
            assert conns["limited"]["throttled"] >= 1
            assert conns["limited"]["throttled_time"]
            assert "rate_rejected" not in conns["limited"]  # none refused: left out
            # The unlimited client on the same worker was never held: nothing to show.
            assert not {"rate_limits", "throttled", "throttled_time"} & set(conns["free"])

            def account_figures() -> Any:
                detail = http_json(mport, "/accountz?acc=A")["account_detail"]["rate_limit"]
                assert detail["admitted"] >= 40 and detail["throttled"] >= 1, detail
                return detail

            detail = check_for(5, 0.05, account_figures)
            assert (detail["msgs_per_sec"], detail["burst_msgs"], detail["mode"]) == (50, 5, "slow")
            assert "rate_limit" not in http_json(mport, "/accountz?acc=B")["account_detail"]
            text = http_text(mport, "/metrics")
            assert metric(text, "shardbroker_rate_limit_throttled", "account:A") >= 1
            assert metric(text, "shardbroker_rate_limit_admitted", "account:A") >= 40
            figures = stats_doc(broker.port)["rate_limits"]["account:A"]
            assert figures["throttled"] >= 1 and figures["admitted"] >= 40
        finally:
            for nc in (free, limited, watcher):
                await nc.close()
