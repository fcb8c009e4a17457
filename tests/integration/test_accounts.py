"""Accounts (accounts-and-security.md §2, §4; config.md §2.5): users inside accounts,
isolation of each account's subjects across workers, no_auth_user and NKEY users in
accounts, and the config errors. Each scenario runs against nats-server and against
shardbroker (2 workers, the clients spread over both) with the same config file, and
what the clients saw must be the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.broker import (
    REPO_ROOT,
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    connect_on_shard,
    free_port,
    is_shardbroker_target,
    nats_server_binary,
    raw_connect_on_shard,
    run_broker,
)
from tests.helpers.differential import TARGETS_IN_ORDER, Scenario, broker_on, on_both

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

NKEY_SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
NKEY_PUBLIC = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"

ACCOUNTS_CONF = f"""
accounts {{
  A: {{ users: [ {{user: a1, password: p}}, {{user: a2, password: p}} ] }}
  B: {{
    users: [ {{user: b1, password: p}}, {{nkey: {NKEY_PUBLIC}}} ]
    default_permissions: {{ publish: "open.>", subscribe: ">" }}
  }}
}}
authorization {{ users: [ {{user: g, password: p}} ] }}
no_auth_user: a2
"""


async def on_both_http(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    scenario: Callable[[Broker, str], Awaitable[Any]],
) -> Any:
    """on_both, with the monitoring port on: the scenario gets its base URL too."""
    conf = tmp_path / "accounts.conf"
    conf.write_text(text)
    results = {}
    for target in TARGETS_IN_ORDER:
        port = free_port()
        with broker_on(target, conf, monkeypatch, tmp_path, ("-m", str(port))) as broker:
            results[target] = await scenario(broker, f"http://127.0.0.1:{port}")
    assert results["shardbroker"] == results["nats-server"]
    return results["shardbroker"]


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def get_json_url(url: str) -> Any:
    return json.loads(get_text(url))


async def collect(sub: Any, count: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(count):
        msg = await sub.next_msg(timeout=5)
        out.append((msg.subject, msg.data))
    return out


async def nothing_more(*subs: Any) -> bool:
    """After a barrier: no subscription has anything left."""
    return all(sub.pending_msgs == 0 for sub in subs)


async def test_accounts_isolate_subjects_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            a_sub = await clients.on_shard(1, user="a1", password="p")
            b_sub = await clients.on_shard(2, user="b1", password="p")
            g_sub = await clients.on_shard(1, user="g", password="p")
            a_pub = await clients.on_shard(2, user="a1", password="p")
            b_pub = await clients.on_shard(1, user="b1", password="p")
            g_pub = await clients.on_shard(2, user="g", password="p")
            assert_different_shards(broker, a_sub.client_id, a_pub.client_id)
            assert_different_shards(broker, b_sub.client_id, b_pub.client_id)
            subs = []
            for nc in (a_sub, b_sub, g_sub):
                subs.append(await nc.subscribe("open.>"))
                subs.append(await nc.subscribe("open.q", queue="workers"))
                await barrier(nc)
            for nc, name in ((a_pub, "A"), (b_pub, "B"), (g_pub, "G")):
                await nc.publish("open.x", name.encode())
                await nc.publish("open.q", name.encode())
                await barrier(nc)
            seen = [await collect(sub, 1 if i % 2 else 2) for i, sub in enumerate(subs)]
            for nc in (a_sub, b_sub, g_sub):
                await barrier(nc)
            return seen, await nothing_more(*subs)

    seen, quiet = await on_both(tmp_path, monkeypatch, ACCOUNTS_CONF, scenario)
    assert quiet
    assert seen[0] == [("open.x", b"A"), ("open.q", b"A")]  # A's wildcard subscriber
    assert seen[1] == [("open.q", b"A")]  # A's queue group
    assert seen[2] == [("open.x", b"B"), ("open.q", b"B")]
    assert seen[4] == [("open.x", b"G"), ("open.q", b"G")]


async def test_accounts_no_auth_user_and_nkey_users_log_in_to_their_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            anonymous = await clients.on_shard(1)  # no credentials: a2 in A
            a1 = await clients.on_shard(2, user="a1", password="p")
            nkey = await clients.on_shard(1, nkeys_seed_str=NKEY_SEED)
            b1 = await clients.on_shard(2, user="b1", password="p")
            a_sub = await a1.subscribe("open.>")
            b_sub = await b1.subscribe("open.>")
            await barrier(a1)
            await barrier(b1)
            await anonymous.publish("open.from", b"anonymous")
            await nkey.publish("open.from", b"nkey")
            await barrier(anonymous)
            await barrier(nkey)
            return await collect(a_sub, 1), await collect(b_sub, 1)

    a_seen, b_seen = await on_both(tmp_path, monkeypatch, ACCOUNTS_CONF, scenario)
    assert a_seen == [("open.from", b"anonymous")]
    assert b_seen == [("open.from", b"nkey")]


async def test_accounts_default_permissions_apply_to_the_accounts_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's default_permissions allow publishing on open.> only: b1 gets a permissions
    violation for anything else, and the connection stays up."""

    async def scenario(broker: Broker) -> Any:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        async with NatsClients(broker) as clients:
            b1 = await clients.on_shard(1, user="b1", password="p", error_cb=on_error)
            sub = await b1.subscribe("closed.x")
            await barrier(b1)
            await b1.publish("closed.x", b"no")
            await barrier(b1)
            await b1.publish("open.x", b"yes")
            await barrier(b1)
            return errors, sub.pending_msgs, b1.is_connected

    errors, pending, connected = await on_both(tmp_path, monkeypatch, ACCOUNTS_CONF, scenario)
    assert errors and "permissions violation for publish" in errors[0].lower()
    assert pending == 0 and connected


async def test_accounts_connect_info_names_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw CONNECT with each user's credentials, then a PING: the same bytes back (a
    PONG, or the authorization error and a close for an unknown user)."""

    async def scenario(broker: Broker) -> Any:
        answers = []
        for user in ("a1", "b1", "g", "nobody"):
            client = raw_connect_on_shard(broker, 2)
            with client:
                client.send(
                    b'CONNECT {"verbose":false,"user":"' + user.encode() + b'","pass":"p"}\r\n'
                    b"PING\r\n"
                )
                if user == "nobody":
                    answers.append(client.expect_closed())
                else:
                    answers.append(client.expect(b"PONG\r\n").group(0))
        return answers

    await on_both(tmp_path, monkeypatch, ACCOUNTS_CONF, scenario)


BAD_CONFIGS = {
    "reserved": "accounts { $G: { users: [{user: a, password: a}] } }\n",
    "duplicate-user": (
        "accounts {\n  A: { users: [{user: a, password: a}] }\n"
        "  B: { users: [{user: a, password: b}] }\n}\n"
    ),
    "restricted-export": (
        'accounts {\n  A: { exports: [{stream: "priv.>", accounts: [C]}] }\n'
        '  B: { imports: [{stream: {account: A, subject: "priv.>"}}] }\n  C: {}\n}\n'
    ),
    "no-such-export": (
        'accounts {\n  A: {}\n  B: { imports: [{service: {account: A, subject: "svc"}}] }\n}\n'
    ),
    "cycle": (
        "accounts {\n"
        "  A: { exports: [{service: a}]\n"
        "       imports: [{service: {account: B, subject: b}, to: a}] }\n"
        "  B: { exports: [{service: b}]\n"
        "       imports: [{service: {account: A, subject: a}, to: b}] }\n"
        "}\n"
    ),
    "response-type": "accounts { A: { exports: [{service: svc, response_type: bogus}] } }\n",
    "latency-type": (
        "accounts { A: { exports: [{service: svc, response_type: stream, latency: lat}] } }\n"
    ),
    "sampling": (
        "accounts { A: { exports: [{service: svc, latency: {sampling: 200, subject: lat}}] } }\n"
    ),
    "undefined-account": (
        'accounts {\n  A: { exports: [{stream: "x.>"}] }\n'
        '  B: { imports: [{stream: {account: Z, subject: "x.>"}}] }\n}\n'
    ),
    "limits-key": "accounts { A: { limits: { max_connections: 1, bogus: 3 } } }\n",
    "system-account": "accounts { A: {} }\nsystem_account: X\n",
    "no-auth-user": "accounts { A: { users: [{user: a, password: a}] } }\nno_auth_user: z\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_accounts_bad_configs_are_refused_with_nats_servers_texts(
    tmp_path: Path, name: str
) -> None:
    conf = tmp_path / f"{name}.conf"
    conf.write_text(BAD_CONFIGS[name])
    # Not `-t`: nats-server checks the system account and no_auth_user only at start.
    reference = subprocess.run(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", "-1", "-c", str(conf)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-m", "shardbroker", "serve", "-c", str(conf), "-t"],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
    )  # fmt: skip
    assert reference.returncode != 0, reference.stdout + reference.stderr
    assert ours.returncode != 0 and "Traceback" not in ours.stderr
    expected = (reference.stderr + reference.stdout).strip().splitlines()[-1]
    got = (ours.stderr + ours.stdout).strip().splitlines()[-1]
    assert got.rsplit(": ", 1)[-1] == expected.rsplit(": ", 1)[-1], (got, expected)


async def test_accounts_clients_stay_apart_when_a_reused_connection_logs_in_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interest of one account never leaks: a subscriber in A on one worker and a
    publisher in B on the other; then the same subject from A arrives."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            a_sub = await clients.on_shard(1, user="a1", password="p")
            b_pub = await clients.on_shard(2, user="b1", password="p")
            a_pub = await clients.on_shard(2, user="a1", password="p")
            sub = await a_sub.subscribe("open.only")
            await barrier(a_sub)
            for i in range(50):
                await b_pub.publish("open.only", f"b{i}".encode())
            await b_pub.publish("open.only", b"stop")
            await barrier(b_pub)
            await a_pub.publish("open.only", b"a")
            await barrier(a_pub)
            return await collect(sub, 1), await asyncio.wait_for(nothing_more(sub), 5)

    got, quiet = await on_both(tmp_path, monkeypatch, ACCOUNTS_CONF, scenario)
    assert got == [("open.only", b"a")] and quiet


STREAMS_CONF = """
accounts {
  E: {
    users: [ {user: e, password: p} ]
    exports: [
      {stream: "events.>"}
      {stream: "private.*", accounts: [P]}
      {stream: "orders.*.created"}
    ]
  }
  P: {
    users: [ {user: p, password: p} ]
    imports: [
      {stream: {account: E, subject: "events.>"}, prefix: "from_e"}
      {stream: {account: E, subject: "private.*"}}
      {stream: {account: E, subject: "orders.*.created"}, to: "new.*"}
    ]
  }
  Q: {
    users: [ {user: q, password: p, permissions: {subscribe: {deny: "events.secret"}}} ]
    imports: [ {stream: {account: E, subject: "events.>"}} ]
  }
}
"""


async def test_accounts_stream_imports_with_prefix_and_to_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E publishes on one worker; importers subscribe on the other (and on the same):
    each sees the messages its imports take, under its local subjects, with the
    importer's delivery permissions applied; E's own subscribers see E's subjects."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            e_pub = await clients.on_shard(1, user="e", password="p")
            e_sub = await clients.on_shard(2, user="e", password="p")
            p_far = await clients.on_shard(2, user="p", password="p")
            p_near = await clients.on_shard(1, user="p", password="p")
            q_far = await clients.on_shard(2, user="q", password="p")
            assert_different_shards(broker, e_pub.client_id, p_far.client_id)
            subs = {
                "e": await e_sub.subscribe(">"),
                "p_far": await p_far.subscribe(">"),
                "p_near": await p_near.subscribe("from_e.>"),
                "p_new": await p_far.subscribe("new.*", queue="q"),
                "q_far": await q_far.subscribe("events.*"),
            }
            for nc in (e_sub, p_far, p_near, q_far):
                await barrier(nc)
            for subject in (
                "events.a", "events.secret", "private.x", "orders.7.created", "orders.7.paid",
                "other",
            ):  # fmt: skip
                await e_pub.publish(subject, subject.encode())
            await e_pub.publish("events.h", b"with headers", headers={"K": "v"})
            await barrier(e_pub)
            seen = {
                "e": await collect(subs["e"], 7),
                "p_far": sorted(await collect(subs["p_far"], 5)),
                "p_near": await collect(subs["p_near"], 3),
                "p_new": await collect(subs["p_new"], 1),
                "q_far": await collect(subs["q_far"], 2),
            }
            for nc in (e_sub, p_far, p_near, q_far):
                await barrier(nc)
            return seen, await nothing_more(*subs.values())

    seen, quiet = await on_both(tmp_path, monkeypatch, STREAMS_CONF, scenario)
    assert quiet
    assert seen["p_near"] == [
        ("from_e.events.a", b"events.a"),
        ("from_e.events.secret", b"events.secret"),
        ("from_e.events.h", b"with headers"),
    ]
    assert seen["p_new"] == [("new.7", b"orders.7.created")]
    assert ("private.x", b"private.x") in seen["p_far"]
    # Q's subscriber may not have events.secret: its deny list holds on delivery.
    assert seen["q_far"] == [("events.a", b"events.a"), ("events.h", b"with headers")]


async def test_accounts_stream_import_of_a_run_and_of_large_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs (many messages on one subject in one read) and large payloads reach the
    importer in order, as single messages do."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            e_pub = await clients.on_shard(1, user="e", password="p")
            p_sub = await clients.on_shard(2, user="p", password="p")
            sub = await p_sub.subscribe("from_e.events.run")
            await barrier(p_sub)
            bodies = [f"m{i}".encode() for i in range(200)] + [b"x" * 70000] * 3
            for body in bodies:
                await e_pub.publish("events.run", body)
            await barrier(e_pub)
            got = await collect(sub, len(bodies))
            return [data for _, data in got] == bodies

    assert await on_both(tmp_path, monkeypatch, STREAMS_CONF, scenario)


SERVICES_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    exports: [
      {service: "help"}
      {service: "feed", response_type: stream}
      {service: "parts", response_type: chunked}
      {service: "slow", response_type: stream, threshold: "500ms"}
      {service: "who.*"}
      {service: "nobody"}
    ]
  }
  B: {
    users: [ {user: b, password: p} ]
    imports: [
      {service: {account: A, subject: "help"}, to: "b.help"}
      {service: {account: A, subject: "feed"}}
      {service: {account: A, subject: "parts"}}
      {service: {account: A, subject: "slow"}}
      {service: {account: A, subject: "who.*"}, to: "ask.*", share: true}
      {service: {account: A, subject: "nobody"}}
    ]
  }
}
"""

RTT = re.compile(rb'"rtt":\d+')
MASKED_INFO = re.compile(rb'"(start|server|host)":"[^"]*"|"id":\d+')


def request_info(headers: dict[str, str] | None) -> bytes:
    """The Nats-Request-Info a responder saw, with what differs between runs masked."""
    value = (headers or {}).get("Nats-Request-Info", "").encode()
    return MASKED_INFO.sub(b"<masked>", RTT.sub(b'"rtt":<rtt>', value))


async def test_accounts_service_import_response_types_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requester in B on one worker, responder in A on the other: a singleton export
    passes one response; stream and chunked ones pass every response up to an empty
    one, and nothing after it. The responder sees the export's subject, an `_R_.` reply
    and the requester's account in Nats-Request-Info."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(1, user="a", password="p", name="resp")
            requester = await clients.on_shard(2, user="b", password="p", name="req")
            assert_different_shards(broker, responder.client_id, requester.client_id)
            requests = {
                subject: await responder.subscribe(subject) for subject in ("help", "feed", "parts")
            }
            await barrier(responder)
            answers = {}
            for subject, exported, count in (("b.help", "help", 2), ("feed", "feed", 11),
                                             ("parts", "parts", 3)):  # fmt: skip
                inbox = requester.new_inbox()
                sub = await requester.subscribe(inbox)
                await barrier(requester)
                await requester.publish(subject, b"req", reply=inbox)
                request = await requests[exported].next_msg(timeout=5)
                assert request.reply.startswith("_R_.")
                for i in range(count):
                    await responder.publish(request.reply, f"r{i}".encode())
                await responder.publish(request.reply, b"")
                await responder.publish(request.reply, b"after the end")
                await barrier(responder)
                got = []
                with contextlib.suppress(TimeoutError):
                    while True:
                        got.append((await sub.next_msg(timeout=0.5)).data)
                answers[subject] = (request.subject, request_info(request.headers), got)
            return answers

    answers = await on_both(tmp_path, monkeypatch, SERVICES_CONF, scenario)
    assert answers["b.help"] == ("help", b'{"acc":"B","rtt":<rtt>}', [b"r0"])
    assert answers["feed"][2] == [f"r{i}".encode() for i in range(11)] + [b""]
    assert answers["parts"][2] == [b"r0", b"r1", b"r2", b""]


async def test_accounts_service_import_shares_the_requester_and_maps_wildcards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(2, user="a", password="p")
            requester = await clients.on_shard(1, user="b", password="p", name="req")
            sub = await responder.subscribe("who.*")
            await barrier(responder)

            async def answer() -> Any:
                msg = await sub.next_msg(timeout=5)
                await responder.publish(msg.reply, b"it is me: " + msg.subject.encode())
                return msg

            task = asyncio.ensure_future(answer())
            reply = await requester.request("ask.you", b"?", timeout=5)
            msg = await task
            return msg.subject, request_info(msg.headers), reply.data

    subject, info, data = await on_both(tmp_path, monkeypatch, SERVICES_CONF, scenario)
    assert subject == "who.you" and data == b"it is me: who.you"
    assert b'"acc":"B","user":"b","name":"req"' in info and b'"kind":"Client"' in info


async def test_accounts_service_import_without_responder_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            await clients.on_shard(1, user="a", password="p")
            requester = await clients.on_shard(2, user="b", password="p")
            with pytest.raises(nats.errors.NoRespondersError):
                await requester.request("nobody", b"?", timeout=5)
            return True

    assert await on_both(tmp_path, monkeypatch, SERVICES_CONF, scenario)


async def test_accounts_stream_response_mapping_expires_after_its_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`slow` has a 500ms threshold: a response after a longer silence finds no
    mapping, while responses within it keep the mapping alive."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(1, user="a", password="p")
            requester = await clients.on_shard(2, user="b", password="p")
            requests = await responder.subscribe("slow")
            inbox = requester.new_inbox()
            sub = await requester.subscribe(inbox)
            await barrier(responder)
            await barrier(requester)
            await requester.publish("slow", b"req", reply=inbox)
            request = await requests.next_msg(timeout=5)
            await responder.publish(request.reply, b"soon")
            await barrier(responder)
            first = (await sub.next_msg(timeout=5)).data
            # The behaviour under test is the passing of time: wait out the threshold
            # (and the worker's tick that sweeps mappings).
            await asyncio.sleep(1.5)
            await responder.publish(request.reply, b"too late")
            await barrier(responder)
            await barrier(requester)
            return first, sub.pending_msgs

    assert await on_both(tmp_path, monkeypatch, SERVICES_CONF, scenario) == (b"soon", 0)


SYSTEM_CONF = """
accounts {
  A: {
    users: [ {
      user: a, password: p
      permissions: {
        publish: {allow: ["x.>", "$SYS.>", "_INBOX.>"], deny: "y"}
        subscribe: ["z", "_INBOX.>"]
        allow_responses: true
      }
    } ]
  }
  $SYS: { users: [ {user: sys, password: p} ] }
}
authorization { users: [ {user: g, password: p} ] }
"""


def sorted_lists(value: Any) -> Any:
    """nats-server lists permission subjects in no fixed order."""
    if isinstance(value, dict):
        return {key: sorted_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted(value)
    return value


SERVER_ONLY = ("$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.IDZ", "$SYS.REQ.SERVER.PING.VARZ")


async def test_accounts_system_account_requests_and_what_other_accounts_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every account learns its own user (USER.INFO) and its own connections (PING.CONNZ,
    ACCOUNT.PING.STATZ) through the system account's implicit imports; only the system
    account's users get the server's requests. Clients on both workers."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            out: dict[str, Any] = {}
            conns = {
                "a": await clients.on_shard(1, user="a", password="p", name="a-client"),
                "g": await clients.on_shard(2, user="g", password="p", name="g-client"),
                "sys": await clients.on_shard(2, user="sys", password="p", name="s-client"),
            }
            for user, nc in conns.items():
                info = json.loads((await nc.request("$SYS.REQ.USER.INFO", b"", timeout=5)).data)
                connz = json.loads(
                    (await nc.request("$SYS.REQ.SERVER.PING.CONNZ", b"", timeout=5)).data
                )
                statz = json.loads(
                    (await nc.request("$SYS.REQ.ACCOUNT.PING.STATZ", b"", timeout=5)).data
                )
                refused = []
                for subject in SERVER_ONLY:
                    try:
                        await nc.request(subject, b"", timeout=5)
                    except nats.errors.NoRespondersError:
                        refused.append(subject)
                stats = statz["data"]["account_statz"]
                out[user] = (
                    sorted_lists(info["data"]),
                    sorted(c.get("name", "") for c in connz["data"]["connections"]),
                    sorted((s["acc"], s["conns"]) for s in stats),
                    refused,
                )
            return out

    seen = await on_both(tmp_path, monkeypatch, SYSTEM_CONF, scenario)
    assert seen["a"][0]["permissions"]["responses"] == {"max": 1, "ttl": 120000000000}
    assert seen["g"] == (
        {"user": "g", "account": "$G", "account_name": "$G"},
        ["g-client"],
        [("$G", 1)],
        list(SERVER_ONLY),
    )
    assert seen["sys"][3] == []  # the system account's user reaches everything
    assert seen["sys"][1] == ["a-client", "g-client", "s-client"]


LIMITS_CONF = """
accounts {
  L: {
    users: [ {user: l, password: p} ]
    limits: { max_connections: 3, max_subscriptions: 2, max_payload: 100 }
  }
  F: { users: [ {user: f, password: p} ] }
}
"""


async def test_accounts_limits_hold_broker_wide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L may hold 3 connections whichever workers they land on: the fourth is refused
    with nats-server's error, another account is not affected, and a closed connection
    frees its place. Its connections may hold 2 subscriptions each, and publish at most
    100 bytes (the connect-info INFO says so)."""

    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        held = [raw_connect_on_shard(broker, shard) for shard in (1, 2, 1)]
        try:
            for client in held:
                client.send(b'CONNECT {"verbose":false,"user":"l","pass":"p","protocol":1}\r\n')
                client.send(b"PING\r\n")
                client.expect(b"PONG\r\n")
            info = held[0].expect(re.compile(rb"INFO (\{.*\}) ?\r\n"))
            out["max_payload"] = json.loads(info.group(1))["max_payload"]
            fourth = raw_connect_on_shard(broker, 2)
            with fourth:
                fourth.send(b'CONNECT {"verbose":false,"user":"l","pass":"p"}\r\nPING\r\n')
                out["fourth"] = fourth.expect_closed()
            other = raw_connect_on_shard(broker, 2)
            with other:
                other.send(b'CONNECT {"verbose":false,"user":"f","pass":"p"}\r\nPING\r\n')
                out["other account"] = other.expect(b"PONG\r\n").group(0)
            held[0].send(b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n")
            out["subs"] = held[0].expect(re.compile(rb".*?PONG\r\n", re.S)).group(0)
            held[1].send(b"PUB a 101\r\n" + b"x" * 101 + b"\r\n")
            out["payload"] = held[1].expect_closed().splitlines()[-1]
            held[0].close()
            # Both places are free again (the closes are seen by every worker).
            again = []
            for shard in (2, 1):
                client = raw_connect_on_shard(broker, shard)
                held.append(client)
                client.send(b'CONNECT {"verbose":false,"user":"l","pass":"p"}\r\nPING\r\n')
                again.append(client.expect(b"PONG\r\n").group(0))
            out["again"] = again
        finally:
            for client in held:
                client.close()
        return out

    out = await on_both(tmp_path, monkeypatch, LIMITS_CONF, scenario)
    assert out["max_payload"] == 100
    assert b"maximum account active connections exceeded" in out["fourth"]
    assert out["subs"].startswith(b"-ERR 'maximum subscriptions exceeded'")
    assert b"Maximum Payload Violation" in out["payload"]


MAPPINGS_CONF = """
mappings {
  "g.*": "gm.{{wildcard(1)}}"
}
accounts {
  M: {
    users: [ {user: m, password: p} ]
    mappings: {
      "orders.*.*": "new.{{wildcard(2)}}.{{wildcard(1)}}"
      "part.*": "p.{{partition(4,1)}}.{{wildcard(1)}}"
      "split": [ {destination: "left", weight: 30%}, {destination: "right", weight: 70%} ]
    }
  }
}
authorization { users: [ {user: g, password: p} ] }
"""


async def test_accounts_subject_mappings_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published subjects are rewritten before routing, in the publisher's account, for
    subscribers on the other worker: wildcards, partitions, and a 30/70 weighted split
    (within a tolerance over 10,000 messages)."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            pub = await clients.on_shard(1, user="m", password="p")
            sub_nc = await clients.on_shard(2, user="m", password="p")
            g_pub = await clients.on_shard(1, user="g", password="p")
            g_sub = await clients.on_shard(2, user="g", password="p")
            everything = await sub_nc.subscribe(">")
            g_all = await g_sub.subscribe(">")
            await barrier(sub_nc)
            await barrier(g_sub)
            fixed = ["orders.7.created", "part.a", "part.b", "part.c", "part.zz", "other"]
            for subject in fixed:
                await pub.publish(subject, subject.encode())
            await g_pub.publish("g.x", b"g")
            await barrier(pub)
            await barrier(g_pub)
            mapped = await collect(everything, len(fixed))
            g_mapped = await collect(g_all, 1)
            counts = {"left": 0, "right": 0, "split": 0}
            total = 10_000
            for _ in range(total):
                await pub.publish("split", b"")
            await barrier(pub)
            for _ in range(total):
                msg = await everything.next_msg(timeout=5)
                counts[msg.subject] += 1
            return mapped, g_mapped, counts

    mapped, g_mapped, split = await on_both(
        tmp_path, monkeypatch, MAPPINGS_CONF, lambda b: _with_counts_masked(scenario, b)
    )
    assert split == "split within tolerance"
    assert ("new.created.7", b"orders.7.created") in mapped
    assert ("other", b"other") in mapped
    assert g_mapped == [("gm.x", b"g")]


async def _with_counts_masked(scenario: Scenario, broker: Broker) -> Any:
    """The split is random: each run's counts must be within 3% of 30/70; the rest of
    the results are compared as they are."""
    mapped, g_mapped, counts = await scenario(broker)
    total = sum(counts.values())
    assert counts["split"] == 0
    assert abs(counts["left"] / total - 0.30) < 0.03, counts
    return mapped, g_mapped, "split within tolerance"


EVENTS_CONF = """
accounts {
  A: { users: [ {user: a, password: p} ] }
  $SYS: { users: [ {user: sys, password: p} ] }
}
"""


def event_shape(data: bytes) -> Any:
    """An advisory with what differs between runs and servers masked."""
    event = json.loads(data)
    event["id"] = len(event["id"])
    event["timestamp"] = "<time>"
    event["server"] = sorted(set(event["server"]) - {"feature_flags"})
    client = event["client"]
    for key in ("start", "stop", "host", "id", "rtt", "ver"):
        if key in client:
            client[key] = "<masked>"
    return event


async def test_accounts_connect_and_disconnect_advisories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system account user sees `$SYS.ACCOUNT.A.CONNECT` and `.DISCONNECT` (with the
    client's traffic and the reason) for a client of A on the other worker."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            watcher = await clients.on_shard(1, user="sys", password="p")
            sub = await watcher.subscribe("$SYS.ACCOUNT.A.*")
            await barrier(watcher)
            nc = await connect_on_shard(broker, 2, user="a", password="p", name="a-client")
            await nc.publish("x", b"hello")
            await barrier(nc)
            my_id = nc.client_id
            await nc.close()
            # Connections that landed on the wrong worker came and went first.
            mine = []
            while len(mine) < 2:
                msg = await sub.next_msg(timeout=5)
                if json.loads(msg.data)["client"]["id"] == my_id:
                    mine.append((msg.subject, event_shape(msg.data)))
            return mine

    (c_subject, connect), (d_subject, disconnect) = await on_both(
        tmp_path, monkeypatch, EVENTS_CONF, scenario
    )
    assert c_subject == "$SYS.ACCOUNT.A.CONNECT" and connect["client"]["name"] == "a-client"
    assert d_subject == "$SYS.ACCOUNT.A.DISCONNECT"
    assert disconnect["sent"] == {"msgs": 1, "bytes": 5}
    assert disconnect["reason"] == "Client Closed"


LATENCY_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    exports: [
      {service: "svc", latency: {sampling: 100, subject: "lat.svc"}}
      {service: "hsvc", latency: {sampling: headers, subject: "lat.h"}}
      {service: "gone", latency: "lat.gone"}
    ]
  }
  B: {
    users: [ {user: b, password: p} ]
    imports: [
      {service: {account: A, subject: "svc"}}
      {service: {account: A, subject: "hsvc"}}
      {service: {account: A, subject: "gone"}}
    ]
  }
}
"""
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"
METRIC_TIMES = ("service", "system", "total")


def metric_shape(data: bytes) -> Any:
    """A latency metric with ids, times and durations masked (durations checked apart)."""
    metric = json.loads(data)
    metric["id"] = len(metric["id"])
    for key in ("timestamp", "start", *METRIC_TIMES):
        if key in metric:
            metric[key] = "<masked>"
    for side in ("requestor", "responder"):
        for key in ("start", "rtt", "host", "id", "server", "ver"):
            if key in metric.get(side, {}):
                metric[side][key] = "<masked>"
    return metric


async def test_accounts_service_latency_metrics_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requester in B and responder in A on different workers: sampling 100 gives a
    metric for each request; headers sampling only for a sampled W3C traceparent (its
    headers copied); a request nobody answers gives a 503 metric. The metric's shape is
    nats-server's; its durations are consistent (total covers the service time)."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(1, user="a", password="p", name="resp")
            requester = await clients.on_shard(2, user="b", password="p", name="req")
            metrics = await responder.subscribe("lat.>")

            async def answer(msg: Any) -> None:
                await responder.publish(msg.reply, b"ok")

            await responder.subscribe("svc", cb=answer)
            await responder.subscribe("hsvc", cb=answer)
            await barrier(responder)
            seen = []
            assert (await requester.request("svc", b"x", timeout=5)).data == b"ok"
            seen.append(await metrics.next_msg(timeout=5))
            sampled = {"traceparent": TRACEPARENT + "01", "tracestate": "k=v"}
            await requester.request("hsvc", b"x", timeout=5, headers=sampled)
            seen.append(await metrics.next_msg(timeout=5))
            unsampled = {"traceparent": TRACEPARENT + "00"}
            await requester.request("hsvc", b"x", timeout=5, headers=unsampled)
            with pytest.raises(nats.errors.NoRespondersError):
                await requester.request("gone", b"x", timeout=5)
            seen.append(await metrics.next_msg(timeout=5))
            await barrier(responder)
            for msg in seen[:2]:
                metric = json.loads(msg.data)
                assert 0 <= metric["service"] <= metric["total"], metric
                assert metric["system"] >= 0
            return [(msg.subject, metric_shape(msg.data)) for msg in seen], metrics.pending_msgs

    seen, left = await on_both(tmp_path, monkeypatch, LATENCY_CONF, scenario)
    assert left == 0  # nothing for the unsampled request
    (s1, svc), (s2, hsvc), (s3, gone) = seen
    assert (s1, svc["status"], svc["requestor"]["acc"]) == ("lat.svc", 200, "B")
    assert svc["responder"]["name"] == "resp" and svc["responder"]["acc"] == "A"
    assert s2 == "lat.h" and hsvc["header"]["Traceparent"] == [TRACEPARENT + "01"]
    assert (s3, gone["status"]) == ("lat.gone", 503)


ACCOUNTZ_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    exports: [ {service: "svc", response_type: stream, accounts: [B]}, {stream: "ev.>"} ]
    mappings: { "m.*": "n.{{wildcard(1)}}" }
  }
  B: {
    users: [ {user: b, password: p} ]
    imports: [
      {stream: {account: A, subject: "ev.>"}, prefix: "a"}
      {service: {account: A, subject: "svc"}, to: "asvc"}
    ]
  }
}
"""


async def test_accounts_monitoring_accountz_and_accstatz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/accountz lists the accounts and shows each one's exports, imports (the system
    account's implicit ones included) and mappings; /accstatz counts each account's
    connections, whichever worker they are on. Compared with nats-server (counts of
    internal subscriptions aside)."""

    async def scenario(broker: Broker, base: str) -> Any:
        async with NatsClients(broker) as clients:
            await clients.on_shard(1, user="a", password="p")
            await clients.on_shard(2, user="a", password="p")
            await clients.on_shard(2, user="b", password="p")
            names = sorted(get_json_url(base + "/accountz")["accounts"])
            details = {}
            for acc in ("A", "B"):
                detail = get_json_url(f"{base}/accountz?acc={acc}")["account_detail"]
                for key in ("update_time", "subscriptions", "sublist_stats"):
                    detail.pop(key, None)
                detail["exports"] = sorted(detail.get("exports", []), key=lambda e: e["subject"])
                detail["imports"] = sorted(
                    detail.get("imports", []), key=lambda e: (e["subject"], e["local_subject"])
                )
                details[acc] = detail
            statz = get_json_url(base + "/accstatz")["account_statz"]
            conns = sorted((s["acc"], s["conns"]) for s in statz)
            return names, details, conns

    names, details, conns = await on_both_http(tmp_path, monkeypatch, ACCOUNTZ_CONF, scenario)
    assert names == ["$G", "$SYS", "A", "B"]
    assert conns == [("A", 2), ("B", 1)]
    assert details["A"]["mappings"] == {"m.*": [{"subject": "n.{{wildcard(1)}}", "weight": 100}]}


async def test_accounts_metrics_per_account(tmp_path: Path) -> None:
    """/metrics: shardbroker_account_* gauges labelled with each account."""
    conf = tmp_path / "metrics.conf"
    conf.write_text(ACCOUNTZ_CONF)
    port = free_port()
    with run_broker(
        workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf), "-m", str(port))
    ) as b:
        async with NatsClients(b) as clients:
            a1 = await clients.on_shard(1, user="a", password="p")
            await clients.on_shard(2, user="a", password="p")
            await clients.on_shard(2, user="b", password="p")
            await a1.subscribe("x")
            await barrier(a1)
            text = get_text(f"http://127.0.0.1:{port}/metrics")
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("shardbroker_account_"):
                values[(sample.name, sample.labels["account"])] = sample.value
    assert values[("shardbroker_account_connections", "A")] == 2
    assert values[("shardbroker_account_connections", "B")] == 1
    assert values[("shardbroker_account_subscriptions", "A")] >= 1


async def test_accounts_system_account_asks_about_one_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$SYS.REQ.ACCOUNT.A.<INFO|CONNZ|SUBSZ|STATZ|CONNS>` from a system account user:
    the same keys as nats-server's answers, about A alone."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            a_nc = await clients.on_shard(1, user="a", password="p", name="a-client")
            await a_nc.subscribe("z")
            await barrier(a_nc)
            await clients.on_shard(2, user="g", password="p")
            sys_nc = await clients.on_shard(2, user="sys", password="p")
            out = {}
            for endpoint in ("INFO", "CONNZ", "SUBSZ", "STATZ", "CONNS"):
                reply = await sys_nc.request(f"$SYS.REQ.ACCOUNT.A.{endpoint}", b"", timeout=5)
                body = json.loads(reply.data)
                data = body.get("data", body)
                keys = sorted(set(data) - {"server", "feature_flags"})
                if endpoint == "CONNZ":
                    keys.append(sorted(c.get("name", "") for c in data["connections"]))
                if endpoint in ("STATZ",):
                    keys.append([(s["acc"], s["conns"]) for s in data["account_statz"]])
                if endpoint in ("INFO",):
                    keys.append((data["account_name"], data["client_connections"]))
                if endpoint == "CONNS":
                    keys.append((data["type"], data["acc"], data["conns"]))
                out[endpoint] = keys
            return out

    out = await on_both(tmp_path, monkeypatch, SYSTEM_CONF, scenario)
    assert out["CONNZ"][-1] == ["a-client"]
    assert out["CONNS"][-1] == ("io.nats.server.advisory.v1.account_connections", "A", 1)


async def test_accounts_connections_advisory_follows_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$SYS.ACCOUNT.A.SERVER.CONNS` when A's connections change: one client connects
    on a worker (1), then leaves (0)."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            watcher = await clients.on_shard(1, user="sys", password="p")
            sub = await watcher.subscribe("$SYS.ACCOUNT.A.SERVER.CONNS")
            await barrier(watcher)
            nc = await connect_on_shard(broker, 2, user="a", password="p")
            counts = []

            async def next_count() -> int:
                data = json.loads((await sub.next_msg(timeout=10)).data)
                assert data["type"] == "io.nats.server.advisory.v1.account_connections"
                assert data["acc"] == "A"
                return int(data["conns"])

            # Connections that landed on the wrong worker may have come and gone first.
            while not counts or counts[-1] != 1:
                counts.append(await next_count())
            await nc.close()
            while counts[-1] != 0:
                counts.append(await next_count())
            return counts[-2:]

    assert await on_both(tmp_path, monkeypatch, EVENTS_CONF, scenario) == [1, 0]


TOKEN_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    exports: [ {service: "acc.*.req", account_token_position: 2} ]
  }
  B: {
    users: [ {user: b, password: p} ]
    imports: [ {service: {account: A, subject: "acc.B.req"}, to: "req"} ]
  }
}
"""


async def test_accounts_service_export_with_the_importers_name_in_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export whose second token must be the importer's name: B's request reaches
    A's responder on `acc.B.req`, across workers."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(2, user="a", password="p")
            requester = await clients.on_shard(1, user="b", password="p")

            async def answer(msg: Any) -> None:
                await responder.publish(msg.reply, msg.subject.encode())

            await responder.subscribe("acc.*.req", cb=answer)
            await barrier(responder)
            return (await requester.request("req", b"?", timeout=5)).data

    assert await on_both(tmp_path, monkeypatch, TOKEN_CONF, scenario) == b"acc.B.req"


SLOW_LATENCY_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    exports: [
      {service: "slow", threshold: "500ms", latency: {sampling: 100, subject: "lat.slow"}}
    ]
  }
  B: { users: [ {user: b, password: p} ], imports: [ {service: {account: A, subject: "slow"}} ] }
}
"""


async def test_accounts_service_latency_bad_request_and_service_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracked request without a reply subject gives a 400 metric; one that no
    responder answers within the threshold, a 504."""

    async def scenario(broker: Broker) -> Any:
        async with NatsClients(broker) as clients:
            responder = await clients.on_shard(1, user="a", password="p")
            requester = await clients.on_shard(2, user="b", password="p")
            metrics = await responder.subscribe("lat.>")
            await responder.subscribe("slow")  # never answers
            await barrier(responder)
            await requester.publish("slow", b"no reply")
            await barrier(requester)
            bad = metric_shape((await metrics.next_msg(timeout=5)).data)
            inbox = requester.new_inbox()
            await requester.subscribe(inbox)
            await barrier(requester)
            await requester.publish("slow", b"x", reply=inbox)
            timeout = metric_shape((await metrics.next_msg(timeout=10)).data)
            return bad, timeout

    bad, timeout = await on_both(tmp_path, monkeypatch, SLOW_LATENCY_CONF, scenario)
    assert (bad["status"], bad["description"]) == (400, "Bad Request")
    assert (timeout["status"], timeout["description"]) == (504, "Service Timeout")
