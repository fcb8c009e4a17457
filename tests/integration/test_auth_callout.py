"""Auth callout (accounts-and-security.md §7): an external service authorizes clients.

Each scenario runs against nats-server and shardbroker with the same config; the
outcomes must match. The service is examples/auth_callout_service.py, run as a
subprocess (or, for answers a real service would never give, a responder in the test),
and the clients it decides on sit on the other worker than the service, so requests
and answers cross the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from shardbroker.config import jwt
from shardbroker.security.callout import curve_public_key
from tests.helpers.broker import (
    REPO_ROOT,
    Broker,
    barrier,
    collect_refused_sockets,
    connect_on_shard,
    is_shardbroker_target,
    nats_server_binary,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.certs import make_certs
from tests.helpers.differential import on_both
from tests.helpers.wait import async_check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

EXAMPLE = REPO_ROOT / "examples" / "auth_callout_service.py"
ISSUER = jwt.new_seed("account")
ISSUER_KEY = jwt.public_key(ISSUER)
XKEY = jwt.new_seed("curve")
STRANGER = jwt.new_seed("account")
APP_PERMISSIONS = {"allow": ["app.>", "_INBOX.>"]}
USERS = {
    "alice": {"password": "pw", "account": "APP", "pub": APP_PERMISSIONS, "sub": APP_PERMISSIONS},
    "bob": {"password": "pw", "account": "APP"},
    "brief": {"password": "pw", "account": "APP", "expires_in": 2},
}


def config_mode(xkey: bool = False, timeout: float = 2.0) -> str:
    sealed = f"    xkey: {curve_public_key(XKEY)}\n" if xkey else ""
    return (
        "accounts {\n  AUTH { users: [ {user: auth, password: auth} ] }\n  APP {}\n}\n"
        "authorization {\n"
        f"  timeout: {timeout}\n"
        "  auth_callout {\n"
        f"    issuer: {ISSUER_KEY}\n"
        "    auth_users: [ auth ]\n"
        "    account: AUTH\n"
        f"{sealed}"
        "  }\n}\n"
    )


@contextlib.asynccontextmanager
async def example_service(broker: Broker, tmp_path: Path, *args: str) -> AsyncIterator[int]:
    """The example service, connected; yields the worker it sits on (1 for nats-server)."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--url", broker.url, "--issuer-seed", ISSUER,
        "--users", str(users), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.startswith(b"ready "), line
        yield broker.shard_of(int(line.split()[1])) or 1
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def other_worker(shard: int) -> int:
    return 2 if shard == 1 else 1


async def connected(broker: Broker, shard: int, **kwargs: Any) -> tuple[Any, list[str]]:
    """(a nats-py connection or None when refused, the errors it saw, lower case)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    try:
        nc = await connect_on_shard(broker, shard, error_cb=on_error, **kwargs)
    except (nats.errors.Error, OSError) as exc:
        errors.append(str(exc).lower())
        nc = None
    if nc is None:
        await collect_refused_sockets()
    return nc, errors


async def outcome(broker: Broker, shard: int, **kwargs: Any) -> Any:
    """'ok' after a message through the broker, 'refused', or the errors seen."""
    nc, errors = await connected(broker, shard, **kwargs)
    if nc is None:
        return "refused" if any("authorization violation" in e for e in errors) else errors
    try:
        subject = "app." + unique()
        sub = await nc.subscribe(subject)
        await barrier(nc)
        await nc.publish(subject, b"hi")
        return "ok" if (await sub.next_msg(timeout=5)).data == b"hi" else "lost"
    finally:
        await nc.close()


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "xkey"])
async def test_auth_callout_decides_and_its_user_jwt_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sealed: bool
) -> None:
    """Allowed, refused (wrong password, unknown user), placed in the account the user
    JWT names with its permissions; the service's own account may not publish auth
    requests."""
    extra = ("--xkey-seed", XKEY) if sealed else ()

    async def scenario(broker: Broker) -> Any:
        async with example_service(broker, tmp_path, *extra) as service:
            far = other_worker(service)
            out: dict[str, Any] = {
                "alice far": await outcome(broker, far, user="alice", password="pw"),
                "alice near": await outcome(broker, service, user="alice", password="pw"),
                "wrong password": await outcome(broker, far, user="alice", password="no"),
                "unknown user": await outcome(broker, far, user="zed", password="pw"),
                "no credentials": await outcome(broker, far),
            }
            alice, alice_errors = await connected(broker, far, user="alice", password="pw")
            bob, _ = await connected(broker, service, user="bob", password="pw")
            auth, auth_errors = await connected(broker, far, user="auth", password="auth")
            try:
                # alice and bob are both in APP (the user JWT's `aud`), whatever their
                # workers; auth, in AUTH, is not.
                sub = await alice.subscribe("app.news")
                await alice.subscribe("secret.x")
                await barrier(alice)
                await auth.publish("app.news", b"from AUTH")
                await barrier(auth)
                await bob.publish("app.news", b"from APP")
                await alice.publish("secret.y", b"x")
                await auth.publish("$SYS.REQ.USER.AUTH", b"x")
                await barrier(bob)
                await barrier(alice)
                await barrier(auth)
                out["delivered"] = (await sub.next_msg(timeout=5)).data.decode()
                out["alice errors"] = sorted(alice_errors)
                out["auth errors"] = sorted(auth_errors)
            finally:
                for nc in (alice, bob, auth):
                    await nc.close()
            return out

    out = await on_both(tmp_path, monkeypatch, config_mode(xkey=sealed), scenario)
    assert out["alice far"] == out["alice near"] == "ok"
    assert out["wrong password"] == out["unknown user"] == out["no credentials"] == "refused"
    assert out["delivered"] == "from APP"
    assert out["alice errors"] == [
        'nats: permissions violation for publish to "secret.y"',
        'nats: permissions violation for subscription to "secret.x"',
    ]
    assert out["auth errors"] == ['nats: permissions violation for publish to "$sys.req.user.auth"']


async def test_auth_callout_without_an_answer_refuses_after_the_auth_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No service: the client gets Authorization Violation once the auth timeout has
    passed since its CONNECT, and nothing it sent after the CONNECT is answered."""

    async def scenario(broker: Broker) -> Any:
        client = raw_connect_on_shard(broker, 2)
        with client:
            client.connect_proto(user="alice", password="pw", verbose=False, protocol=1)
            client.send(b"PING\r\nSUB x 1\r\nPING\r\n")
            raw = await asyncio.to_thread(client.expect_closed, 10)
        return raw, await outcome(broker, 1, user="alice", password="pw", connect_timeout=5)

    raw, refused = await on_both(tmp_path, monkeypatch, config_mode(timeout=0.5), scenario)
    assert raw == b"-ERR 'Authorization Violation'\r\n"
    assert refused == "refused"


def request_shape(request: jwt.Claims) -> dict[str, Any]:
    """What a request holds, without the values that differ from server to server."""
    nats = request.nats
    info = nats["client_info"]
    return {
        "claims": sorted(request.raw),
        "nats": sorted(nats),
        "server_id": sorted(nats["server_id"]),
        "client_info": sorted(info),
        "client user and kind": [info["user"], info["kind"], info["type"], info["name"]],
        "connect_opts": nats["connect_opts"],
        "subject is the issuer": request.sub == ISSUER_KEY,
        # The auth timeout (2 s) from now (a second may pass between the two clocks).
        "expires in time": 1 <= request.exp - request.iat <= 2,
    }


def _responder_answers(server_id: str) -> dict[str, Callable[[str], bytes]]:
    """Per client user name: the answer the test responder gives to a request about
    `user_nkey` (all wrong except "good")."""

    def response(user_nkey: str, *, signer: str = ISSUER, audience: str = server_id,
                 subject: str = "", limits: int = -1, **user: Any) -> bytes:  # fmt: skip
        user_jwt = jwt.encode(
            "user", user.pop("sub", user_nkey), user.pop("user_signer", signer),
            {"subs": limits, "data": limits, "payload": limits},
            audience=user.pop("aud", "APP"), **user,
        )  # fmt: skip
        token = jwt.encode(
            "authorization_response", subject or user_nkey, signer, {"jwt": user_jwt},
            audience=audience,
        )  # fmt: skip
        return token.encode()

    other_user = jwt.public_key(jwt.new_seed("user"))
    other_server = jwt.public_key(jwt.new_seed("server"))
    return {
        "good": lambda key: response(key),
        # The user JWT's own limits do not apply (nats-server drops the JWT before it
        # would read them): with subs and payload 0, pub/sub still works.
        "no-limits-applied": lambda key: response(key, limits=0),
        "garbage": lambda key: b"not a token",
        "empty": lambda key: b"",
        "wrong-signer": lambda key: response(key, signer=STRANGER),
        "wrong-user-signer": lambda key: response(key, user_signer=STRANGER),
        "wrong-audience": lambda key: response(key, audience=other_server),
        "wrong-subject": lambda key: response(key, subject=other_user),
        "user-for-another": lambda key: response(key, sub=other_user),
        "no-such-account": lambda key: response(key, aud="NOPE"),
        "expired": lambda key: response(key, expires=int(time.time()) - 5),
        "refusal": lambda key: jwt.encode(
            "authorization_response", key, ISSUER, {"error": "go away"}, audience=server_id
        ).encode(),
    }


async def test_auth_callout_bad_answers_are_violations_and_harm_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A responder in the test answers each client by its user name: garbage, an empty
    answer, wrong signers, audiences and subjects, an unknown account, an expired user
    JWT, a refusal. Each is an Authorization Violation; a good answer after them still
    lets its client in, and the responder's connection is unharmed."""

    async def scenario(broker: Broker) -> Any:
        service = await connect_on_shard(broker, 1, user="auth", password="auth")
        seen: list[str] = []
        shapes: list[dict[str, Any]] = []

        async def on_request(msg: Any) -> None:
            request = jwt.decode(msg.data.decode(), "authorization_request")
            seen.append(request.aud)
            answers = _responder_answers(request.iss)
            name = request.nats["connect_opts"].get("user", "")
            if name == "good":
                shapes.append(request_shape(request))
            await msg.respond(answers[name](request.nats["user_nkey"]))

        try:
            await service.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
            await barrier(service)
            names = list(_responder_answers(""))
            out = {name: await outcome(broker, 2, user=name, password="x") for name in names}
            out["good again"] = await outcome(broker, 2, user="good", password="x")
            await barrier(service)
            out["audiences"] = sorted(set(seen))
            out["request shape"] = shapes[0]
            return out
        finally:
            await service.close()

    out = await on_both(tmp_path, monkeypatch, config_mode(), scenario)
    assert out.pop("good") == out.pop("good again") == out.pop("no-limits-applied") == "ok"
    assert out.pop("audiences") == ["nats-authorization-request"]
    assert out.pop("request shape")["connect_opts"]["user"] == "good"
    assert set(out.values()) == {"refused"}, out


async def test_auth_callout_user_jwt_expiry_closes_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user JWT's `exp`: the connection is closed with User Authentication Expired."""

    async def scenario(broker: Broker) -> Any:
        async with example_service(broker, tmp_path) as service:
            nc, _ = await connected(broker, other_worker(service), user="brief", password="pw")
            try:
                await barrier(nc)
                await async_check_for(8, 0.1, lambda: nc.is_closed)
            finally:
                await nc.close()
            return str(nc.last_error)

    error = await on_both(tmp_path, monkeypatch, config_mode(), scenario)
    assert error == "nats: user authentication expired"


def _callout_block(body: str, accounts: str = "") -> str:
    return (
        f"{accounts}authorization {{\n  users: [ {{user: auth, password: auth}} ]\n"
        f"  auth_callout {{\n{body}  }}\n}}\n"
    )


_ISSUER_LINE = f"    issuer: {ISSUER_KEY}\n"
BAD_CONFIGS = {
    "not-a-map": "authorization {\n  users: [ {user: auth, password: auth} ]\n"
    "  auth_callout: 5\n}\n",
    "bad-issuer": _callout_block('    issuer: "ABAD"\n    auth_users: [ auth ]\n'),
    "issuer-not-a-string": _callout_block("    issuer: 5\n    auth_users: [ auth ]\n"),
    "no-issuer": _callout_block("    auth_users: [ auth ]\n"),
    "no-auth-users": _callout_block(_ISSUER_LINE),
    "auth-users-not-a-list": _callout_block(_ISSUER_LINE + "    auth_users: auth\n"),
    "bad-xkey": _callout_block(
        _ISSUER_LINE + f"    auth_users: [ auth ]\n    xkey: {ISSUER_KEY}\n"
    ),
    "unknown-field": _callout_block(_ISSUER_LINE + "    auth_users: [ auth ]\n    bogus: 1\n"),
    "allowed-not-a-list": _callout_block(
        _ISSUER_LINE + "    auth_users: [ auth ]\n    allowed_accounts: A\n"
    ),
    "allowed-unknown": _callout_block(
        _ISSUER_LINE + "    auth_users: [ auth ]\n    allowed_accounts: [ A, B ]\n",
        accounts="accounts { A {} }\n",
    ),
}


def _operator_with_callout() -> str:
    operator = jwt.new_seed("operator")
    account = jwt.encode("account", ISSUER_KEY, operator, {"limits": {"conn": -1}})
    operator_jwt = jwt.encode("operator", jwt.public_key(operator), operator)
    return (
        f'operator: "{operator_jwt}"\nresolver: MEMORY\n'
        f'resolver_preload: {{\n  {ISSUER_KEY}: "{account}"\n}}\n'
        f"authorization {{\n  auth_callout {{\n{_ISSUER_LINE}    auth_users: [ auth ]\n  }}\n}}\n"
    )


@pytest.mark.parametrize("name", [*sorted(BAD_CONFIGS), "operator-mode"])
def test_auth_callout_bad_configs_are_refused_with_nats_servers_texts(
    tmp_path: Path, name: str
) -> None:
    conf = tmp_path / f"{name}.conf"
    conf.write_text(BAD_CONFIGS[name] if name in BAD_CONFIGS else _operator_with_callout())
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


# -- operator mode -------------------------------------------------------------------------

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
OPERATOR = jwt.new_seed("operator")
AUTH_SIGNER = jwt.new_seed("account")  # a signing key of the callout account (ISSUER)
APP = jwt.new_seed("account")
OTHER = jwt.new_seed("account")
SYSTEM = jwt.new_seed("account")
SERVICE_USER = jwt.new_seed("user")
SENTINEL_USER = jwt.new_seed("user")


def operator_mode(sealed: bool = False) -> str:
    """The callout account is ISSUER's; its service user bypasses the callout, which
    may also place clients in APP (not OTHER). (nats-server 2.15.1 crashes on a callout
    without a system account: it has one.)"""
    authorization: dict[str, Any] = {
        "auth_users": [jwt.public_key(SERVICE_USER)],
        "allowed_accounts": [jwt.public_key(APP)],
    }
    if sealed:
        authorization["xkey"] = curve_public_key(XKEY)
    accounts = {
        ISSUER_KEY: jwt.encode(
            "account",
            ISSUER_KEY,
            OPERATOR,
            {
                "limits": UNLIMITED,
                "authorization": authorization,
                "signing_keys": [jwt.public_key(AUTH_SIGNER)],
            },
            name="AUTH",
        ),
        jwt.public_key(APP): jwt.encode(
            "account", jwt.public_key(APP), OPERATOR, {"limits": UNLIMITED}, name="APP"
        ),
        jwt.public_key(OTHER): jwt.encode(
            "account", jwt.public_key(OTHER), OPERATOR, {"limits": UNLIMITED}, name="OTHER"
        ),
        jwt.public_key(SYSTEM): jwt.encode(
            "account", jwt.public_key(SYSTEM), OPERATOR, {"limits": UNLIMITED}, name="SYS"
        ),
    }
    operator = jwt.encode("operator", jwt.public_key(OPERATOR), OPERATOR, name="op")
    preload = "".join(f'  {key}: "{token}"\n' for key, token in accounts.items())
    return (
        f'operator: "{operator}"\nsystem_account: {jwt.public_key(SYSTEM)}\n'
        f"resolver: MEMORY\nresolver_preload: {{\n{preload}}}\n"
    )


def creds(tmp_path: Path, name: str, seed: str, **section: Any) -> str:
    fields = {"subs": -1, "data": -1, "payload": -1, **section}
    token = jwt.encode("user", jwt.public_key(seed), ISSUER, fields, name=name)
    path = tmp_path / f"{name}.creds"
    path.write_text(jwt.format_creds(token, seed))
    return str(path)


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "xkey"])
async def test_auth_callout_operator_mode_with_the_example_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sealed: bool
) -> None:
    """The account JWT's `authorization`: a sentinel user JWT of the callout account
    gets its client to the service, which lets it in with its own user JWT."""
    service_creds = creds(tmp_path, "service", SERVICE_USER)
    sentinel = creds(tmp_path, "sentinel", SENTINEL_USER, pub={"deny": [">"]}, sub={"deny": [">"]})
    extra = ("--creds", service_creds, *(("--xkey-seed", XKEY) if sealed else ()))

    async def scenario(broker: Broker) -> Any:
        async with example_service(broker, tmp_path, *extra) as service:
            far = other_worker(service)
            out: dict[str, Any] = {
                "alice": await outcome(broker, far, user_credentials=sentinel, token="alice:pw"),
                "wrong password": await outcome(
                    broker, far, user_credentials=sentinel, token="alice:no"
                ),
                "no token": await outcome(broker, far, user_credentials=sentinel),
            }
            alice, errors = await connected(
                broker, far, user_credentials=sentinel, token="alice:pw"
            )
            try:
                await alice.publish("secret", b"x")
                await alice.publish("$SYS.REQ.USER.AUTH", b"x")
                await barrier(alice)
            finally:
                await alice.close()
            out["alice errors"] = sorted(errors)
            return out

    out = await on_both(tmp_path, monkeypatch, operator_mode(sealed), scenario)
    assert out["alice"] == "ok"
    assert out["wrong password"] == out["no token"] == "refused"
    assert out["alice errors"] == [
        'nats: permissions violation for publish to "$sys.req.user.auth"',
        'nats: permissions violation for publish to "secret"',
    ]


async def test_auth_callout_operator_mode_placement_and_signers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A responder in the test: answers signed by the account or its signing key are
    taken, an unknown signer's are not; a user JWT of an allowed account places the
    client there, one of another account is refused."""
    service_creds = creds(tmp_path, "service", SERVICE_USER)
    sentinel = creds(tmp_path, "sentinel", SENTINEL_USER)

    def answer(kind: str, user_nkey: str, server_id: str) -> bytes:
        user_signer = {"in APP": APP, "in OTHER": OTHER}.get(kind, ISSUER)
        section = {"subs": -1, "data": -1, "payload": -1}
        user = jwt.encode("user", user_nkey, user_signer, section)
        signer = {"by signing key": AUTH_SIGNER, "by stranger": STRANGER}.get(kind, ISSUER)
        inner: dict[str, Any] = {"jwt": user}
        if signer == AUTH_SIGNER:
            inner["issuer_account"] = ISSUER_KEY
        token = jwt.encode("authorization_response", user_nkey, signer, inner, audience=server_id)
        return token.encode()

    async def scenario(broker: Broker) -> Any:
        service = await connect_on_shard(broker, 1, user_credentials=service_creds)

        async def on_request(msg: Any) -> None:
            request = jwt.decode(msg.data.decode(), "authorization_request")
            kind = request.nats["connect_opts"].get("auth_token", "")
            await msg.respond(answer(kind, request.nats["user_nkey"], request.iss))

        try:
            await service.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
            await barrier(service)
            kinds = ("by account", "by signing key", "by stranger", "in APP", "in OTHER")
            results = {}
            for kind in kinds:
                results[kind] = await outcome(broker, 2, user_credentials=sentinel, token=kind)
            # Who is where: AUTH's publishes (from worker 1) do not reach APP; an APP
            # client's publish from the same worker, sent after them, does.
            in_app, _ = await connected(broker, 2, user_credentials=sentinel, token="in APP")
            in_auth, _ = await connected(broker, 1, user_credentials=sentinel, token="by account")
            marker, _ = await connected(broker, 1, user_credentials=sentinel, token="in APP")
            try:
                sub = await in_app.subscribe("where")
                await barrier(in_app)
                await in_auth.publish("where", b"AUTH")
                await barrier(in_auth)
                await service.publish("where", b"AUTH too")
                await barrier(service)
                await marker.publish("where", b"APP")
                await barrier(marker)
                first = (await sub.next_msg(timeout=5)).data
                results["APP hears"] = [first.decode(), sub.pending_msgs]
            finally:
                for nc in (in_app, in_auth, marker):
                    await nc.close()
            return results
        finally:
            await service.close()

    out = await on_both(tmp_path, monkeypatch, operator_mode(), scenario)
    assert out == {
        "by account": "ok", "by signing key": "ok", "by stranger": "refused",
        "in APP": "ok", "in OTHER": "refused", "APP hears": ["APP", 0],
    }  # fmt: skip


async def test_auth_callout_decides_at_connect_even_without_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no users to authenticate, INFO does not ask for credentials, yet every
    CONNECT goes to the callout: an auth_users name that is no configured user does not
    bypass it (here nobody answers, so nobody gets in)."""
    conf = (
        "authorization {\n  timeout: 0.5\n"
        f"  auth_callout {{\n{_ISSUER_LINE}    auth_users: [ auth ]\n  }}\n}}\n"
    )

    async def scenario(broker: Broker) -> Any:
        info = raw_connect_on_shard(broker, 1)
        with info:
            required = info.info.get("auth_required", False)
        return {
            "auth_required": required,
            "auth": await outcome(broker, 2, user="auth", password="auth"),
            "anonymous": await outcome(broker, 1),
        }

    out = await on_both(tmp_path, monkeypatch, conf, scenario)
    assert out == {"auth_required": False, "auth": "refused", "anonymous": "refused"}


@pytest.mark.parametrize("verify", [False, True], ids=["certs", "verified"])
async def test_auth_callout_request_describes_a_tls_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    """`client_tls`: the TLS version and cipher, and, when the server verifies clients,
    the client's certificate in `verified_chains` (nats-server puts the CA after it,
    which Python's TLS layer does not tell us before 3.13)."""
    certs = make_certs(tmp_path / "certs")
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    client_pem = certs.client_cert.read_text()
    tls = (
        f'tls {{\n  cert_file: "{certs.server_cert}"\n  key_file: "{certs.server_key}"\n'
        f'  ca_file: "{certs.ca}"\n  verify: {str(verify).lower()}\n}}\n'
    )

    async def scenario(broker: Broker) -> Any:
        service = await connect_on_shard(broker, 1, user="auth", password="auth", tls=ctx)
        described: list[dict[str, Any]] = []

        async def on_request(msg: Any) -> None:
            request = jwt.decode(msg.data.decode(), "authorization_request")
            described.append(request.nats.get("client_tls", {}))
            await msg.respond(_responder_answers(request.iss)["good"](request.nats["user_nkey"]))

        try:
            await service.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
            await barrier(service)
            allowed = await outcome(broker, 2, user="good", password="x", tls=ctx)
        finally:
            await service.close()
        got = described[0]
        chain = (got.get("verified_chains") or [[]])[0]
        return {
            "allowed": allowed,
            "fields": sorted(got),
            "version": got.get("version"),
            "client certificate": bool(chain) and _same_pem(chain[0], client_pem),
        }

    out = await on_both(tmp_path, monkeypatch, config_mode() + tls, scenario)
    assert out["allowed"] == "ok" and out["version"] == "1.3"
    # Without verify the server asks for no certificate at all.
    assert out["client certificate"] is verify
    assert out["fields"] == (
        ["cipher", "verified_chains", "version"] if verify else ["cipher", "version"]
    )


def _same_pem(a: str, b: str) -> bool:
    def body(pem: str) -> str:
        return "".join(line for line in pem.split() if "CERTIFICATE" not in line)

    return body(a) == body(b)
