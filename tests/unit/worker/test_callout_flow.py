"""The auth callout flow on two in-process worker shards (no sockets): the request a
client's CONNECT causes reaches a service on the other shard, its answer comes back,
and until then nothing the client sent after its CONNECT is processed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from shardbroker.config import jwt
from shardbroker.config.options import AuthCallout, Authorization, Options, User
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server
from tests.helpers.fakes import MockTransport, ShardPair, connect, output, shard_pair

ISSUER = jwt.new_seed("account")
MSG_RE = re.compile(rb"MSG \$SYS\.REQ\.USER\.AUTH 1 (\S+) (\d+)\r\n")


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    opts = Options(
        port=0,
        ping_interval=3600,
        authorization=Authorization(
            users=(User(user="auth", password="p"),),
            callout=AuthCallout(issuer=jwt.public_key(ISSUER), auth_users=("auth",)),
        ),
    )
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop, opts) as shards:
            yield shards
    finally:
        loop.close()


def service_on(pair: ShardPair) -> ClientProtocol:
    service = connect(pair.one, user='"auth"', **{"pass": '"p"'})
    service.data_received(b"SUB $SYS.REQ.USER.AUTH 1\r\nSUB app 2\r\n")
    pair.settle()
    output(service)
    return service


def client_on(server: Server, data: bytes) -> ClientProtocol:
    client = ClientProtocol(server)
    client.connection_made(MockTransport())  # type: ignore[arg-type]
    output(client)
    client.data_received(data)
    return client


def request_for(pair: ShardPair, service: ClientProtocol) -> tuple[bytes, jwt.Claims]:
    """The request the service received: its reply subject and verified claims."""
    pair.settle()
    data = output(service)
    found = MSG_RE.search(data)
    assert found is not None, data
    start = found.end()
    token = data[start : start + int(found.group(2))].decode()
    return found.group(1), jwt.decode(token, "authorization_request")


def answer(
    service: ClientProtocol, reply: bytes, request: jwt.Claims, user_fields: dict | None = None
) -> None:
    user_nkey = request.nats["user_nkey"]
    if user_fields is None:
        inner = {"error": "no"}
    else:
        section = {"subs": -1, "data": -1, "payload": -1, **user_fields}
        user = jwt.encode("user", user_nkey, ISSUER, section, audience="$G", name="alice")
        inner = {"jwt": user}
    token = jwt.encode(
        "authorization_response", user_nkey, ISSUER, inner, audience=request.iss
    ).encode()
    service.data_received(b"PUB %s %d\r\n%s\r\n" % (reply, len(token), token))


CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"user":"alice","pass":"pw","protocol":1}\r\n'


def test_callout_request_crosses_shards_and_the_verdict_lets_the_client_in(
    pair: ShardPair,
) -> None:
    service = service_on(pair)
    client = client_on(pair.two, CONNECT + b"PUB app 2\r\nhi\r\nPING\r\n")
    transport = client.transport
    assert isinstance(transport, MockTransport)
    assert not transport.reading
    # Read before the socket was paused: held too, and parsed after the verdict.
    client.data_received(b"PUB app 3\r\nbye\r\n")
    reply, request = request_for(pair, service)
    assert output(client) == b""
    assert request.aud == "nats-authorization-request"
    assert request.iss == pair.two.callouts.server_id
    assert request.sub == jwt.public_key(ISSUER)
    assert request.nats["connect_opts"] == {
        "user": "alice", "pass": "pw", "protocol": 1,
    }  # fmt: skip
    assert request.nats["client_info"]["user"] == "alice"
    assert request.nats["client_info"]["kind"] == "Client"
    assert jwt.decode_public_key(request.nats["user_nkey"], "user") is not None

    answer(service, reply, request, {"pub": {"allow": ["app"]}})
    pair.settle()
    assert transport.reading
    assert client.user == "alice" and client.account == b"$G"
    assert output(client).startswith(b"PONG\r\nINFO ")
    # What the client sent after its CONNECT went out only after the verdict, in order.
    delivered = output(service)
    assert delivered.index(b"hi") < delivered.index(b"bye")
    # The answer's permissions apply.
    client.data_received(b"PUB other 1\r\nx\r\n")
    pair.settle()
    assert b'Permissions Violation for Publish to "other"' in output(client)


def test_callout_refusal_and_timeout_are_authorization_violations(pair: ShardPair) -> None:
    service = service_on(pair)
    refused = client_on(pair.two, CONNECT + b"PING\r\n")
    reply, request = request_for(pair, service)
    answer(service, reply, request)
    pair.settle()
    assert output(refused) == b"-ERR 'Authorization Violation'\r\n"
    assert refused.closed

    waiting = client_on(pair.two, CONNECT + b"PING\r\n")
    reply, _ = request_for(pair, service)
    pair.two.callouts.timed_out(reply)  # what the auth timeout's timer calls
    assert output(waiting) == b"-ERR 'Authorization Violation'\r\n"
    assert waiting.closed
    assert not pair.two.callouts.pending


def test_callout_auth_users_bypass_it_and_may_not_publish_requests(pair: ShardPair) -> None:
    service = service_on(pair)
    assert service.connected and service.user == "auth"
    service.data_received(b"PUB $SYS.REQ.USER.AUTH 1\r\nx\r\n")
    assert b'Permissions Violation for Publish to "$SYS.REQ.USER.AUTH"' in output(service)
