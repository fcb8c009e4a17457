"""Operator mode beyond the basic login (jwt-operator-mode.md §5-§7): scoped signing keys
and their templates, `src` and `times`, activation tokens of private exports,
resolver_pinned_accounts, subscription and payload limits, and malformed tokens in
CONNECT. Each scenario runs against nats-server and shardbroker (2 workers) with the same
config and tokens, with the connections under test on different workers; the outcomes,
often the exact bytes, must match."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nats
import nats.errors
import pytest

from shardbroker.config import jwt
from tests.helpers.broker import (
    Broker,
    NatsClients,
    ShardProbes,
    barrier,
    connect_on_shard,
    is_shardbroker_target,
    raw_connect_on_shard,
)
from tests.helpers.differential import TARGETS_IN_ORDER, broker_on, on_both
from tests.helpers.wait import async_check_for
from tests.helpers.wire import PONG_RE, WireClient, WireError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
USER_UNLIMITED = {"subs": -1, "data": -1, "payload": -1}
OPERATOR = jwt.new_seed("operator")


def operator_config(accounts: dict[str, dict[str, Any]], extra: str = "", **names: str) -> str:
    """A config trusting OPERATOR with these accounts (seed -> JWT fields) preloaded."""
    lines = []
    for seed, fields in accounts.items():
        key = jwt.public_key(seed)
        token = jwt.encode("account", key, OPERATOR, {"limits": UNLIMITED, **fields},
                           name=names.get(key, "acc"))  # fmt: skip
        lines.append(f'  {key}: "{token}"\n')
    operator = jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR, name="op")
    return (
        f'operator: "{operator}"\nresolver: MEMORY\n'
        f"resolver_preload: {{\n{''.join(lines)}}}\n{extra}"
    )


def user(signer: str, account: str = "", name: str = "", **fields: Any) -> tuple[str, str]:
    """(user JWT, user seed) signed by `signer`; `account` names the account when the
    signer is one of its signing keys."""
    seed = jwt.new_seed("user")
    if account:
        fields["issuer_account"] = jwt.public_key(account)
    return jwt.encode("user", jwt.public_key(seed), signer, fields, name=name), seed


def nonce_signature(seed: str, nonce: str) -> str:
    return base64.urlsafe_b64encode(jwt.sign(seed, nonce.encode())).decode().rstrip("=")


def credentials(token: str, seed: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """CONNECT fields of this user for a connection that got `info`."""
    return lambda info: {"jwt": token, "sig": nonce_signature(seed, info["nonce"])}


def login(broker: Broker, shard: int, token: str, seed: str, **connect: Any) -> WireClient:
    """A raw connection on `shard` that sent CONNECT (protocol 1) and PING."""
    client = raw_connect_on_shard(broker, shard)
    fields = {"verbose": False, "pedantic": False, "protocol": 1, **connect}
    client.connect_proto(**fields, **credentials(token, seed)(client.info))
    client.send(b"PING\r\n")
    return client


def answer(client: WireClient) -> Any:
    """The connect-info max_payload once logged in, or the bytes sent before closing."""
    try:
        client.expect(PONG_RE)
    except WireError:
        return client.expect_closed()
    return client.read_info()["max_payload"]


def clock(moment: float, zone: str = "UTC") -> str:
    return datetime.fromtimestamp(moment, ZoneInfo(zone)).strftime("%H:%M:%S")


# -- scoped signing keys ------------------------------------------------------------


async def test_jwt_claims_scoped_signing_key_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scoped key's template gives its users their permissions and limits, with
    {{name()}}, {{tag(...)}} and {{account-name()}} filled in per user; a user with
    permissions of its own, or without a tag a deny entry needs, is refused."""
    account, scoped = jwt.new_seed("account"), jwt.new_seed("account")
    template = {
        "pub": {"allow": ["out.{{name()}}", "acct.{{account-name()}}"]},
        "sub": {"allow": ["in.{{tag(team)}}.>", "out.>"], "deny": ["in.{{tag(team)}}.secret"]},
        "payload": 64,
    }
    scope = {"kind": "user_scope", "key": jwt.public_key(scoped), "role": "dev",
             "template": template}  # fmt: skip
    conf = operator_config(
        {account: {"signing_keys": [scope]}}, **{jwt.public_key(account): "acme"}
    )
    alice = user(scoped, account, "alice", tags=["team:red", "team:blue"])
    bob = user(scoped, account, "bob", tags=["team:red"])
    own_permissions = user(scoped, account, "carol", pub={"allow": [">"]})
    untagged = user(scoped, account, "dave")

    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        with login(broker, 1, *alice) as sub, login(broker, 2, *bob) as pub:
            out["alice max_payload"] = answer(sub)
            out["bob max_payload"] = answer(pub)
            sub.send(b"SUB in.red.x 1\r\nSUB in.blue.x 2\r\nSUB in.green.x 3\r\n"
                     b"SUB in.red.secret 4\r\nSUB out.> 5\r\n")  # fmt: skip
            out["alice subscribes"] = sub.ping_barrier()
            pub.send(b"PUB out.bob 2\r\nhi\r\nPUB out.alice 2\r\nno\r\nPUB acct.acme 0\r\n\r\n")
            out["bob publishes"] = pub.ping_barrier()
            out["alice receives"] = [(m.subject, m.payload) for m in (sub.read_msg(),)]
            out["alice"] = sub.ping_barrier()
        for name, (token, seed) in {
            "own permissions": own_permissions,
            "untagged": untagged,
        }.items():
            with login(broker, 2, token, seed) as client:
                out[name] = answer(client)
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert out["alice max_payload"] == 64
    assert out["alice receives"] == [("out.bob", b"hi")]
    assert out["alice subscribes"] == (
        b"-ERR 'Permissions Violation for Subscription to \"in.green.x\"'\r\n"
        b"-ERR 'Permissions Violation for Subscription to \"in.red.secret\"'\r\n"
    )
    assert out["bob publishes"] == b"-ERR 'Permissions Violation for Publish to \"out.alice\"'\r\n"
    assert out["own permissions"] == out["untagged"] == b"-ERR 'Authorization Violation'\r\n"


# -- src and times ------------------------------------------------------------------


async def test_jwt_claims_src_and_connect_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`src` (a list or a comma-separated string) is matched against the client's
    address and `times` against the clock in `times_location`; a user logged in inside a
    range is closed with 'User Authentication Expired' when the range ends, and the
    other clients of both workers carry on."""
    account = jwt.new_seed("account")
    conf = operator_config({account: {}})
    probe = user(account, **USER_UNLIMITED)

    async def scenario(broker: Broker) -> Any:
        now = time.time()
        zone = "America/New_York"
        cases = {
            "src list": {"src": ["10.0.0.0/8", "127.0.0.0/8"]},
            "src string": {"src": "10.0.0.0/8, 127.0.0.1/32"},
            "src elsewhere": {"src": ["10.0.0.0/8"]},
            "src not a CIDR": {"src": ["127.0.0.1"]},
            "inside in a zone": {"times": [{"start": clock(now - 3600, zone),
                                            "end": clock(now + 3600, zone)}],
                                 "times_location": zone},
            "outside": {"times": [{"start": clock(now + 3600), "end": clock(now + 7200)}],
                        "times_location": "UTC"},
        }  # fmt: skip
        out: dict[str, Any] = {}
        # Logged in first: its range ends while the other cases run.
        ending = [{"start": clock(now - 3600), "end": clock(math.ceil(now + 1.5))}]
        token, seed = user(account, **USER_UNLIMITED, times=ending, times_location="UTC")
        with (
            ShardProbes(broker, credentials(*probe)) as probes,
            login(broker, 2, token, seed) as ends,
        ):
            out["range ends: login"] = answer(ends)
            for index, (name, fields) in enumerate(cases.items()):
                with login(broker, 1 + index % 2, *user(account, **USER_UNLIMITED, **fields)) as c:
                    out[name] = answer(c)
            out["range ends: then"] = ends.expect_closed(timeout=10)
            probes.check()
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    refused = b"-ERR 'Authorization Violation'\r\n"
    assert out["src list"] == out["src string"] == out["inside in a zone"] == 1048576
    assert out["src elsewhere"] == out["src not a CIDR"] == out["outside"] == refused
    assert out["range ends: login"] == 1048576
    assert out["range ends: then"] == b"-ERR 'User Authentication Expired'\r\n"


# -- activation tokens ----------------------------------------------------------------


async def test_jwt_claims_activation_tokens_for_private_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private export (`token_req`) reaches only importers whose import carries a valid
    activation token (from the exporter or its signing key, current, not revoked); the
    other imports are dropped. An import whose token was made for another account makes
    the importing account unusable. Messages cross workers."""
    now = int(time.time())
    exporter, signing_key = jwt.new_seed("account"), jwt.new_seed("account")
    names = ("valid", "signing key", "none", "expired", "revoked", "someone else's")
    importers = {name: jwt.new_seed("account") for name in names}
    keys = {name: jwt.public_key(seed) for name, seed in importers.items()}

    def token(name: str, subject: str, kind: str, signer: str = exporter, **options: Any) -> str:
        fields = {"subject": subject, "kind": kind}
        if signer != exporter:
            fields["issuer_account"] = jwt.public_key(exporter)
        return jwt.encode("activation", keys[name], signer, fields, **options)

    tokens = {
        "valid": token("valid", "feed.>", "stream"),
        "signing key": token("signing key", "feed.>", "stream", signing_key),
        "none": None,
        "expired": token("expired", "feed.>", "stream", expires=now - 5),
        "revoked": token("revoked", "feed.>", "stream", issued_at=now - 100),
        "someone else's": token("valid", "feed.>", "stream"),
    }
    exports = [
        {"subject": "feed.>", "type": "stream", "token_req": True,
         "revocations": {keys["revoked"]: now - 50}},
        {"subject": "svc.echo", "type": "service", "token_req": True},
        {"subject": "public.>", "type": "stream"},
    ]  # fmt: skip
    accounts: dict[str, dict[str, Any]] = {
        exporter: {"exports": exports, "signing_keys": [jwt.public_key(signing_key)]}
    }
    exporter_key = jwt.public_key(exporter)
    for name, seed in importers.items():
        feed = {"subject": "feed.>", "account": exporter_key, "type": "stream"}
        if tokens[name]:
            feed["token"] = tokens[name]
        service = {"subject": "svc.echo", "account": exporter_key, "type": "service"}
        if name == "valid":
            service["token"] = token("valid", "svc.echo", "service")
        marker = {"subject": "public.>", "account": exporter_key, "type": "stream"}
        accounts[seed] = {"imports": [feed, service, marker]}
    conf = operator_config(accounts)
    publisher = user(exporter, **USER_UNLIMITED)
    creds = {}
    for name, seed in {**importers, "exporter": exporter}.items():
        creds[name] = tmp_path / f"{name.replace(' ', '-')}.creds"
        creds[name].write_text(jwt.format_creds(*user(seed, **USER_UNLIMITED)))

    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        subscribers = {}
        for name, seed in importers.items():
            client = login(broker, 2, *user(seed, **USER_UNLIMITED))
            result = answer(client)
            if result != 1048576:
                out[name] = result
                client.close()
                continue
            client.send(b"SUB feed.x 1\r\nSUB public.marker 2\r\n")
            client.ping_barrier()
            subscribers[name] = client
        with login(broker, 1, *publisher) as pub:
            answer(pub)
            # The marker follows the feed message on the same path: whoever gets the
            # marker first did not get the feed message.
            pub.send(b"PUB feed.x 4\r\nfeed\r\nPUB public.marker 6\r\nmarker\r\n")
            pub.ping_barrier()
        for name, client in subscribers.items():
            with client:
                out[name] = client.read_msg().subject
        # Requests through the service import, from worker 2, to a responder on worker 1.
        responder = await connect_on_shard(broker, 1, user_credentials=str(creds["exporter"]))
        try:

            async def echo(msg: Any) -> None:
                await msg.respond(b"pong")

            await responder.subscribe("svc.echo", cb=echo)
            await barrier(responder)
            for name in ("valid", "none"):
                nc = await connect_on_shard(broker, 2, user_credentials=str(creds[name]))
                try:
                    out[f"{name} request"] = (await nc.request("svc.echo", b"ping", 5)).data
                except nats.errors.NoRespondersError:
                    out[f"{name} request"] = "no responders"
                finally:
                    await nc.close()
        finally:
            await responder.close()
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert out == {
        "valid": "feed.x", "signing key": "feed.x", "none": "public.marker",
        "expired": "public.marker", "revoked": "public.marker",
        "someone else's": b"-ERR 'Authorization Violation'\r\n",
        "valid request": b"pong", "none request": "no responders",
    }  # fmt: skip


# -- resolver_pinned_accounts ---------------------------------------------------------


async def test_jwt_claims_pinned_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With resolver_pinned_accounts only the listed accounts and the system account
    log in."""
    pinned, system, other = (jwt.new_seed("account") for _ in range(3))
    conf = operator_config(
        {pinned: {}, system: {}, other: {}},
        f"system_account: {jwt.public_key(system)}\n"
        f'resolver_pinned_accounts: ["{jwt.public_key(pinned)}"]\n',
    )

    async def scenario(broker: Broker) -> Any:
        out = {}
        for shard, (name, seed) in enumerate(
            (("pinned", pinned), ("system", system), ("other", other)), start=1
        ):
            with login(broker, 1 + shard % 2, *user(seed, **USER_UNLIMITED)) as client:
                out[name] = answer(client)
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert out == {"pinned": 1048576, "system": 1048576,
                   "other": b"-ERR 'Authorization Violation'\r\n"}  # fmt: skip


# -- limits -----------------------------------------------------------------------------


async def test_jwt_claims_subscription_and_payload_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `subs` in a version 2 account or user JWT allows no subscription: the client is
    told so once logged in and closed. The connect-info max_payload is the lowest of the
    user's, the account's and the server's. The user's `data` limit is not enforced."""
    open_account, no_subs, small = (jwt.new_seed("account") for _ in range(3))
    conf = operator_config({
        open_account: {},
        no_subs: {"limits": {k: v for k, v in UNLIMITED.items() if k != "subs"}},
        small: {"limits": {**UNLIMITED, "payload": 100}},
    })  # fmt: skip
    users = {
        "user without limits": user(open_account),
        "account without subs": user(no_subs, **USER_UNLIMITED),
        "user 50, account 100": user(small, **{**USER_UNLIMITED, "payload": 50}),
        "user unlimited, account 100": user(small, **USER_UNLIMITED),
        "user 200, account 100": user(small, **{**USER_UNLIMITED, "payload": 200}),
        "data 5": user(open_account, **{**USER_UNLIMITED, "data": 5}),
    }
    at_limit = ("user without limits", "account without subs")

    async def scenario(broker: Broker) -> Any:
        out = {}
        for index, (name, (token, seed)) in enumerate(users.items()):
            with login(broker, 1 + index % 2, token, seed) as client:
                if name in at_limit:
                    # nats-server sends the error from another goroutine: it may come
                    # before or after the PONG and the connect-info INFO.
                    out[name] = sorted(_summary(client.expect_closed()))
                    continue
                max_payload = answer(client)
                if name == "data 5":
                    client.send(b"SUB d 1\r\nPUB d 10\r\n0123456789\r\n")
                    out[name] = (max_payload, client.read_msg().payload)
                elif name == "user 50, account 100":
                    client.send(b"PUB big 51\r\n" + b"x" * 51 + b"\r\n")
                    out[name] = (max_payload, client.expect_closed())
                else:
                    out[name] = (max_payload, client.ping_barrier())
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    exceeded = b"-ERR 'maximum subscriptions exceeded'"
    assert out == {
        "user without limits": sorted([b"PONG", b"max_payload 0", exceeded]),
        "account without subs": sorted([b"PONG", b"max_payload 1048576", exceeded]),
        "user 50, account 100": (50, b"-ERR 'Maximum Payload Violation'\r\n"),
        "user unlimited, account 100": (100, b""),
        "user 200, account 100": (100, b""),
        "data 5": (1048576, b"0123456789"),
    }


def _summary(data: bytes) -> list[bytes]:
    """The lines a server sent, with the connect-info INFO as its max_payload."""
    lines = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"INFO "):
            line = b"max_payload %d" % json.loads(line[5:])["max_payload"]
        if line:
            lines.append(line)
    return lines


# -- malformed tokens ---------------------------------------------------------------------


async def test_jwt_claims_bad_tokens_get_the_same_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of bad `jwt` or `sig` in CONNECT gets nats-server's exact answer and
    closes only that connection: clients of both workers carry on."""
    account, stranger = jwt.new_seed("account"), jwt.new_seed("account")
    conf = operator_config({account: {}})
    good, seed = user(account, **USER_UNLIMITED)
    other, _ = user(account, name="other", **USER_UNLIMITED)
    header, claims, _signature = good.split(".")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    tokens: dict[str, Any] = {
        "truncated": good[:-12],
        "wrong signature": f"{header}.{claims}.{other.split('.')[2]}",
        "wrong issuer": user(stranger, **USER_UNLIMITED)[0],
        "not base64": "eyJ!!!.@@@.###",
        "not JSON": f"{header}.{b64(b'not json')}.{_signature}",
        "claims not an object": f"{header}.{b64(json.dumps([1]).encode())}.{_signature}",
        "two segments": f"{header}.{claims}",
        "padded": good + "==",
        "an account JWT": jwt.encode("account", jwt.public_key(account), OPERATOR, {}),
        "large": "eyJ" + "A" * 3000,
        "over max_control_line": "eyJ" + "A" * 5000,
        "empty": "",
        "null": None,
        "a number": 12,
    }

    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        with ShardProbes(broker, credentials(good, seed)) as probes:
            cases: list[tuple[str, Any, Any]] = [(n, t, "good") for n, t in tokens.items()]
            cases += [
                ("no sig", good, None),
                ("sig not base64", good, "!!!"),
                ("sig of another nonce", good, nonce_signature(seed, "abcdefghijklmno")),
                ("sig by another key", good, nonce_signature(jwt.new_seed("user"), "x")),
            ]
            for index, (name, token, sig) in enumerate(cases):
                client = raw_connect_on_shard(broker, 1 + index % 2)
                with client:
                    fields: dict[str, Any] = {"verbose": False, "pedantic": False, "jwt": token}
                    if sig == "good":
                        sig = nonce_signature(seed, client.info["nonce"])
                    if sig is not None:
                        fields["sig"] = sig
                    client.connect_proto(**fields)
                    client.send(b"PING\r\n")
                    out[name] = client.expect_closed()
            probes.check()
        return out

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    refused = b"-ERR 'Authorization Violation'\r\n"
    assert out.pop("over max_control_line") == b"-ERR 'maximum control line exceeded'\r\n"
    assert out.pop("a number") == b""  # a CONNECT nats-server cannot decode: closed
    assert set(out.values()) == {refused}


async def test_jwt_claims_scoped_user_with_creds_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scoped key's user connects with nats-py and a .creds file on each worker and
    exchanges messages within its template."""
    account, scoped = jwt.new_seed("account"), jwt.new_seed("account")
    template = {"pub": {"allow": ["team.{{tag(team)}}.>"]},
                "sub": {"allow": ["team.{{tag(team)}}.>"]}}  # fmt: skip
    scope = {"kind": "user_scope", "key": jwt.public_key(scoped), "role": "r", "template": template}
    conf = operator_config({account: {"signing_keys": [scope]}})
    creds = tmp_path / "scoped.creds"
    creds.write_text(jwt.format_creds(*user(scoped, account, "erin", tags=["team:red"])))

    async def scenario(broker: Broker) -> Any:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        sub = await connect_on_shard(broker, 1, user_credentials=str(creds), error_cb=on_error)
        pub = await connect_on_shard(broker, 2, user_credentials=str(creds), error_cb=on_error)
        try:
            inbox = await sub.subscribe("team.red.news")
            await barrier(sub)
            await pub.publish("team.red.news", b"red")
            await pub.publish("team.blue.news", b"blue")
            await barrier(pub)
            got = (await inbox.next_msg(timeout=5)).data
            return got, [e.lower() for e in errors]
        finally:
            await sub.close()
            await pub.close()

    got, errors = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert got == b"red"
    assert errors == ['nats: permissions violation for publish to "team.blue.news"']


async def test_jwt_claims_activation_expiring_while_running_drops_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import whose activation token expires while the broker runs stops delivering
    at that moment, over workers, as in nats-server; the public import next to it
    carries on."""
    exporter, importer = jwt.new_seed("account"), jwt.new_seed("account")
    exporter_key = jwt.public_key(exporter)
    creds = {}
    for name, seed in (("exporter", exporter), ("importer", importer)):
        creds[name] = tmp_path / f"{name}.creds"
        creds[name].write_text(jwt.format_creds(*user(seed, **USER_UNLIMITED)))

    def config(expires: int) -> str:
        activation = jwt.encode(
            "activation", jwt.public_key(importer), exporter,
            {"subject": "feed.>", "kind": "stream"}, expires=expires,
        )  # fmt: skip
        return operator_config({
            exporter: {"exports": [{"subject": "feed.>", "type": "stream", "token_req": True},
                                   {"subject": "public.>", "type": "stream"}]},
            importer: {"imports": [
                {"subject": "feed.>", "account": exporter_key, "type": "stream",
                 "token": activation},
                {"subject": "public.>", "account": exporter_key, "type": "stream"},
            ]},
        })  # fmt: skip

    async def scenario(broker: Broker, expires: int) -> Any:
        seen: asyncio.Queue[str] = asyncio.Queue()

        async def on_msg(msg: Any) -> None:
            await seen.put(msg.subject)

        async with NatsClients(broker) as clients:
            sub = await clients.on_shard(2, user_credentials=str(creds["importer"]))
            pub = await clients.on_shard(1, user_credentials=str(creds["exporter"]))
            await sub.subscribe("feed.x", cb=on_msg)
            await sub.subscribe("public.marker", cb=on_msg)
            await barrier(sub)

            async def round_trip() -> list[str]:
                """What arrives up to the marker (the feed message first, if any)."""
                await pub.publish("feed.x", b"feed")
                await pub.publish("public.marker", b"marker")
                got = [await asyncio.wait_for(seen.get(), 5)]
                if got[0] != "public.marker":
                    got.append(await asyncio.wait_for(seen.get(), 5))
                return got

            before = await round_trip()

            async def dropped() -> bool:
                return await round_trip() == ["public.marker"]

            await async_check_for(15, 0.2, dropped)
            return before, time.time() >= expires

    results = {}
    for target in TARGETS_IN_ORDER:
        # Room for a broker to start and the first round trip on a loaded machine.
        expires = int(time.time()) + 8
        conf = tmp_path / f"{target}.conf"
        conf.write_text(config(expires))
        with broker_on(target, conf, monkeypatch, tmp_path) as broker:
            results[target] = await scenario(broker, expires)
    assert results["shardbroker"] == results["nats-server"] == (["feed.x", "public.marker"], True)
