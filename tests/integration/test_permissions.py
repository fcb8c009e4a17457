"""Permissions (accounts-and-security.md §3): publish and subscribe allow/deny, the
old-style shorthand, default permissions, queue permissions, delivery-time deny and
allow_responses with its count and time limits.

The same config file is given to both servers (SHARDBROKER_TEST_TARGET=nats-server runs
every test against the real server). Publisher, subscriber and responder sit on
different workers, so every check happens on a worker other than the publisher's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    raw_connect_on_shard,
    run_broker,
    unique,
)
from tests.helpers.wait import check_for
from tests.helpers.wire import WireClient, err_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PERMS_CONF = """
authorization {
  default_permissions: { publish: "def.>", subscribe: "def.>" }
  users: [
    {user: admin, password: p, permissions: { publish: ">", subscribe: ">" }}
    {user: pub, password: p, permissions: {
        publish: { allow: ["orders.>", "_INBOX.>"], deny: "orders.secret" }
        subscribe: "_INBOX.>" }}
    {user: short, password: p, permissions: {
        publish: "short.only", subscribe: ["short.a", "short.b"] }}
    {user: sub, password: p, permissions: { subscribe: {
        allow: ["w.>", "foo v1", "bar", "bar v1", "baz v.*"], deny: ["w.secret", "w.q q1"] } }}
    {user: svc, password: p, permissions: { subscribe: "svc.>", allow_responses: true }}
    {user: svc2, password: p, permissions: { subscribe: "svc.>", allow_responses: { max: 2 } }}
    {user: svcx, password: p, permissions: {
        subscribe: "svc.>", allow_responses: { max: -1, expires: "3s" } }}
    {user: svcpub, password: p, permissions: {
        publish: "status.>", subscribe: "svc.>", allow_responses: true }}
    {user: dflt, password: p}
  ]
}
"""


def pub_violation(subject: str) -> bytes:
    return err_line(f'Permissions Violation for Publish to "{subject}"')


def sub_violation(subject: str, queue: str | None = None) -> bytes:
    text = f'Permissions Violation for Subscription to "{subject}"'
    if queue is not None:
        text += f' using queue "{queue}"'
    return err_line(text)


def pub(subject: str, payload: bytes = b"x", reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return f"PUB {subject}{mid} {len(payload)}\r\n".encode() + payload + b"\r\n"


def hpub(subject: str, payload: bytes = b"x") -> bytes:
    hdr = b"NATS/1.0\r\nK: v\r\n\r\n"
    total = len(hdr) + len(payload)
    return f"HPUB {subject} {len(hdr)} {total}\r\n".encode() + hdr + payload + b"\r\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Three workers: requester/publisher, responder/subscriber and a watcher apart."""
    tmp = tmp_path_factory.mktemp("perms")
    conf = tmp / "perms.conf"
    conf.write_text(PERMS_CONF)
    with run_broker(workers=3, tmp_dir=tmp, extra_args=("-c", str(conf))) as b:
        yield b


@contextlib.contextmanager
def login(broker: Broker, shard: int, user: str, **opts: Any) -> Iterator[WireClient]:
    """A raw connection on `shard`, logged in as `user` (CONNECT + PING done)."""
    with raw_connect_on_shard(broker, shard) as client:
        client.handshake(user=user, headers=True, **{"pass": "p"}, **opts)
        yield client


async def connect(clients: NatsClients, shard: int, user: str, **kwargs: Any) -> Any:
    return await clients.on_shard(shard, user=user, password="p", **kwargs)


class ErrorLog:
    """An error_cb for nats-py that queues what it gets, to await the next error."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def callback(self, exc: Exception) -> None:
        await self.queue.put(str(exc).lower())

    async def next(self) -> str:
        async with asyncio.timeout(5.0):
            return await self.queue.get()


# -- publish ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["PUB", "HPUB"])
def test_permissions_publish_allow_deny(broker: Broker, op: str) -> None:
    u = unique()
    encode = pub if op == "PUB" else hpub
    with login(broker, 1, "pub", verbose=True) as p, login(broker, 2, "admin") as w:
        w.send(b"SUB orders.> 1\r\nSUB other.> 2\r\n")
        assert w.ping_barrier() == b""
        p.send(
            encode(f"orders.{u}")
            + encode("orders.secret")
            + encode(f"other.{u}")
            + encode(f"orders.{u}.2")
        )
        # A denied message gets its -ERR instead of +OK; the connection stays open.
        assert p.ping_barrier() == (
            b"+OK\r\n" + pub_violation("orders.secret") + pub_violation(f"other.{u}") + b"+OK\r\n"
        )
        got = [w.read_msg().subject for _ in range(2)]
        assert got == [f"orders.{u}", f"orders.{u}.2"]
        assert w.ping_barrier() == b""


def test_permissions_publish_run_of_denied_messages(broker: Broker) -> None:
    # Many identical PUBs in one read: each denied one gets its own -ERR.
    u = unique()
    with login(broker, 1, "pub") as p, login(broker, 2, "admin") as w:
        w.send(b"SUB > 1\r\n")
        assert w.ping_barrier() == b""
        p.send(pub(f"nope.{u}") * 5 + pub(f"orders.{u}") * 3)
        assert p.ping_barrier() == pub_violation(f"nope.{u}") * 5
        assert [w.read_msg().subject for _ in range(3)] == [f"orders.{u}"] * 3
        assert w.ping_barrier() == b""


async def test_permissions_publish_nats_py_stays_connected(broker: Broker) -> None:
    errors = ErrorLog()
    u = unique()
    async with NatsClients(broker) as clients:
        publisher = await connect(clients, 1, "pub", error_cb=errors.callback)
        subscriber = await connect(clients, 2, "admin")
        assert_different_shards(broker, publisher.client_id, subscriber.client_id)
        sub = await subscriber.subscribe(f"orders.{u}")
        await barrier(subscriber)
        await publisher.publish("orders.secret", b"no")
        await barrier(publisher)
        assert 'permissions violation for publish to "orders.secret"' in await errors.next()
        assert publisher.is_connected
        await publisher.publish(f"orders.{u}", b"yes")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"yes"


def test_permissions_shorthand_and_default_permissions(broker: Broker) -> None:
    u = unique()
    with login(broker, 1, "short") as s, login(broker, 2, "admin") as w:
        w.send(b"SUB short.> 1\r\nSUB def.> 2\r\nSUB x.> 3\r\n")
        assert w.ping_barrier() == b""
        s.send(pub("short.only") + pub("short.other") + b"SUB short.a 1\r\nSUB short.c 2\r\n")
        assert s.ping_barrier() == pub_violation("short.other") + sub_violation("short.c")
        assert w.read_msg().subject == "short.only"
        with login(broker, 3, "dflt") as d:
            # No permissions of its own: the users list's default_permissions.
            d.send(pub(f"def.{u}") + pub(f"x.{u}") + b"SUB def.> 1\r\nSUB x.> 2\r\n")
            assert d.ping_barrier() == pub_violation(f"x.{u}") + sub_violation("x.>")
            assert w.read_msg().subject == f"def.{u}"
        with login(broker, 3, "admin") as a:
            a.send(pub(f"x.{u}"))  # own permissions: the defaults do not apply
            assert a.ping_barrier() == b""
            assert w.read_msg().subject == f"x.{u}"
        assert w.ping_barrier() == b""


# -- subscribe -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "err"),
    [
        ("SUB w.a 1", b""),
        ("SUB w.* 1", b""),
        ("SUB w.> 1", b""),
        ("SUB > 1", sub_violation(">")),
        ("SUB w.secret 1", sub_violation("w.secret")),
        ("SUB other 1", sub_violation("other")),
        # queue permissions (the table of accounts-and-security.md §3.4)
        ("SUB foo 1", sub_violation("foo")),
        ("SUB foo v1 1", b""),
        ("SUB foo v2 1", sub_violation("foo", "v2")),
        ("SUB bar 1", b""),
        ("SUB bar v1 1", b""),
        ("SUB bar v2 1", sub_violation("bar", "v2")),
        ("SUB baz v1 1", sub_violation("baz", "v1")),
        ("SUB baz v.x 1", b""),
        ("SUB baz v.* 1", b""),
        ("SUB baz v.x.y 1", sub_violation("baz", "v.x.y")),
        ("SUB w.q q1 1", sub_violation("w.q", "q1")),
        ("SUB w.q q2 1", b""),
        ("SUB w.* q1 1", b""),
        ("SUB w.secret q2 1", sub_violation("w.secret", "q2")),
    ],
)
def test_permissions_subscribe(broker: Broker, line: str, err: bytes) -> None:
    with login(broker, 1, "sub", verbose=True) as s:
        s.send(line.encode() + b"\r\n")
        # Verbose: +OK when allowed, only the -ERR when not; the connection stays open.
        assert s.ping_barrier() == (err or b"+OK\r\n")


async def test_permissions_subscribe_nats_py_stays_connected(broker: Broker) -> None:
    errors = ErrorLog()
    u = unique()
    async with NatsClients(broker) as clients:
        subscriber = await connect(clients, 1, "sub", error_cb=errors.callback)
        publisher = await connect(clients, 2, "admin")
        await subscriber.subscribe("other")
        await subscriber.subscribe("foo", queue="v2")
        await barrier(subscriber)
        assert 'permissions violation for subscription to "other"' in await errors.next()
        assert 'to "foo" using queue "v2"' in await errors.next()
        assert subscriber.is_connected
        sub = await subscriber.subscribe(f"w.{u}")
        queue_sub = await subscriber.subscribe("foo", queue="v1")
        await barrier(subscriber)
        await publisher.publish(f"w.{u}", b"a")
        await publisher.publish("foo", b"b")
        assert (await sub.next_msg(timeout=5)).data == b"a"
        assert (await queue_sub.next_msg(timeout=5)).data == b"b"


# -- delivery-time deny ----------------------------------------------------------------


@pytest.mark.parametrize("publisher_shard", [1, 2], ids=["same-shard", "other-shard"])
def test_permissions_delivery_time_deny(broker: Broker, publisher_shard: int) -> None:
    u = unique()
    with login(broker, 1, "sub") as s, login(broker, publisher_shard, "admin") as p:
        s.send(
            b"SUB w.> 1\r\nSUB w.* 2\r\nSUB w.* q1 3\r\nSUB w.q q2 4\r\n"
            + f"SUB w.{u} 5\r\n".encode()
        )
        assert s.ping_barrier() == b""
        # Single messages, a run of identical ones, one with headers, then a sentinel.
        p.send(
            pub("w.secret")
            + pub("w.q")
            + pub("w.public")
            + pub("w.secret") * 3
            + hpub("w.secret")
            + hpub("w.public")
            + pub("w.q", reply="x.r") * 2
            + pub(f"w.{u}")
        )
        assert p.ping_barrier() == b""
        # w.secret reaches nobody; w.q reaches every subscription but the q1 group.
        expected = sorted(
            [("1", "w.q"), ("2", "w.q"), ("4", "w.q")] * 3
            + [("1", "w.public"), ("2", "w.public"), ("3", "w.public")] * 2
            + [("1", f"w.{u}"), ("2", f"w.{u}"), ("3", f"w.{u}"), ("5", f"w.{u}")]
        )
        got = [s.read_msg() for _ in expected]
        # The sentinel is the last message of every subscription: nothing else follows.
        assert s.ping_barrier() == b""
    assert sorted((m.sid, m.subject) for m in got) == expected


def test_permissions_denied_queue_member_passes_the_message_on(broker: Broker) -> None:
    # Two members of q1 on one worker: one may not receive w.q, so the other gets it.
    with (
        login(broker, 1, "sub") as denied,
        login(broker, 1, "admin") as allowed,
        login(broker, 2, "admin") as p,
    ):
        denied.send(b"SUB w.* q1 1\r\n")
        allowed.send(b"SUB w.* q1 1\r\n")
        assert denied.ping_barrier() == b""
        assert allowed.ping_barrier() == b""
        p.send(pub("w.q") * 20)
        assert p.ping_barrier() == b""
        assert [allowed.read_msg().subject for _ in range(20)] == ["w.q"] * 20
        assert allowed.ping_barrier() == b""
        assert denied.ping_barrier() == b""


# -- allow_responses ---------------------------------------------------------------------


async def test_permissions_allow_responses_across_shards(broker: Broker) -> None:
    errors = ErrorLog()
    u = unique()
    async with NatsClients(broker) as clients:
        requester = await connect(clients, 1, "admin")
        responder = await connect(clients, 2, "svc", error_cb=errors.callback)
        watcher = await connect(clients, 3, "admin")
        assert_different_shards(broker, requester.client_id, responder.client_id, watcher.client_id)
        seen = await watcher.subscribe(f"svc.{u}")
        requests = await responder.subscribe(f"svc.{u}")
        await barrier(responder)
        await barrier(watcher)
        for i in range(3):
            task = asyncio.ensure_future(requester.request(f"svc.{u}", str(i).encode(), timeout=5))
            msg = await requests.next_msg(timeout=5)
            assert (await seen.next_msg(timeout=5)).data == str(i).encode()
            await msg.respond(b"re:" + msg.data)
            assert (await task).data == f"re:{i}".encode()
            # A second response to the same request is over the default max of 1.
            await msg.respond(b"again")
            await responder.publish(f"svc.{u}.elsewhere", b"no")
            await barrier(responder)
            assert f'publish to "{msg.reply.lower()}"' in await errors.next()
            assert f'publish to "svc.{u}.elsewhere"' in await errors.next()
        assert responder.is_connected


def test_permissions_allow_responses_max(broker: Broker) -> None:
    u = unique()
    reply = f"r.{u}"
    with login(broker, 1, "admin") as req, login(broker, 2, "svc2") as svc:
        req.send(f"SUB {reply} 1\r\n".encode())
        assert req.ping_barrier() == b""
        svc.send(f"SUB svc.{u} 1\r\n".encode())
        assert svc.ping_barrier() == b""
        req.send(pub(f"svc.{u}", b"q", reply=reply))
        assert svc.read_msg().reply == reply
        svc.send(pub(reply, b"1") + pub(reply, b"2") + pub(reply, b"3"))
        assert svc.ping_barrier() == pub_violation(reply)  # max 2: the third is refused
        assert [req.read_msg().payload for _ in range(2)] == [b"1", b"2"]
        assert req.ping_barrier() == b""
        # A new request with the same reply grants it afresh.
        req.send(pub(f"svc.{u}", b"q", reply=reply))
        assert svc.read_msg().reply == reply
        svc.send(pub(reply, b"4"))
        assert svc.ping_barrier() == b""
        assert req.read_msg().payload == b"4"


def test_permissions_allow_responses_repeated_request_uses_the_grant(broker: Broker) -> None:
    # nats-server 2.15.1: a request whose reply is already granted (and live) counts
    # as one use of that grant rather than renewing it.
    u = unique()
    reply = f"r.{u}"
    with login(broker, 1, "admin") as req, login(broker, 2, "svc2") as svc:
        req.send(f"SUB {reply} 1\r\n".encode())
        assert req.ping_barrier() == b""
        svc.send(f"SUB svc.{u} 1\r\n".encode())
        assert svc.ping_barrier() == b""
        req.send(pub(f"svc.{u}", b"q", reply=reply) * 2)
        assert [svc.read_msg().reply for _ in range(2)] == [reply, reply]
        svc.send(pub(reply, b"1") + pub(reply, b"2") + pub(reply, b"3"))
        assert svc.ping_barrier() == pub_violation(reply) * 2
        assert req.read_msg().payload == b"1"
        assert req.ping_barrier() == b""


def test_permissions_allow_responses_expires(broker: Broker) -> None:
    u = unique()
    reply = f"r.{u}"
    with login(broker, 1, "admin") as req, login(broker, 2, "svcx") as svc:
        req.send(f"SUB {reply} 1\r\n".encode())
        assert req.ping_barrier() == b""
        svc.send(f"SUB svc.{u} 1\r\n".encode())
        assert svc.ping_barrier() == b""
        req.send(pub(f"svc.{u}", b"q", reply=reply))
        assert svc.read_msg().reply == reply
        svc.send(pub(reply, b"a") * 3)  # max -1: no count limit
        assert svc.ping_barrier() == b""
        assert [req.read_msg().payload for _ in range(3)] == [b"a"] * 3

        def refused_now() -> bool:
            # Answer again until the 3 s grant has expired.
            svc.send(pub(reply, b"b"))
            out = svc.ping_barrier()
            if out == b"":
                assert req.read_msg().payload == b"b"
                return False
            assert out == pub_violation(reply)
            return True

        check_for(15.0, 0.2, refused_now)
        svc.send(pub(reply, b"c"))
        assert svc.ping_barrier() == pub_violation(reply)
        assert req.ping_barrier() == b""


def test_permissions_allow_responses_with_publish_allow(broker: Broker) -> None:
    u = unique()
    reply = f"r.{u}"
    with login(broker, 1, "admin") as req, login(broker, 2, "svcpub") as svc:
        req.send(f"SUB {reply} 1\r\nSUB status.> 2\r\n".encode())
        assert req.ping_barrier() == b""
        svc.send(f"SUB svc.{u} 1\r\n".encode())
        assert svc.ping_barrier() == b""
        svc.send(pub(reply) + pub(f"status.{u}") + pub(f"other.{u}"))
        # No request yet: no grant. Its explicit allow list still works.
        assert svc.ping_barrier() == pub_violation(reply) + pub_violation(f"other.{u}")
        assert req.read_msg().subject == f"status.{u}"
        req.send(pub(f"svc.{u}", b"q", reply=reply))
        assert svc.read_msg().reply == reply
        svc.send(pub(reply, b"ok"))
        assert svc.ping_barrier() == b""
        assert req.read_msg().payload == b"ok"
        assert req.ping_barrier() == b""


def test_permissions_responses_only_user_publishes_nothing_else(broker: Broker) -> None:
    u = unique()
    with login(broker, 2, "svc", verbose=True) as svc:
        svc.send(pub(f"svc.{u}") + pub(f"_INBOX.{u}"))
        assert svc.ping_barrier() == pub_violation(f"svc.{u}") + pub_violation(f"_INBOX.{u}")


async def test_permissions_unrestricted_users_get_everything(broker: Broker) -> None:
    u = unique()
    async with NatsClients(broker) as clients:
        subs = []
        for shard in broker.shard_ids:
            nc = await connect(clients, shard, "admin")
            subs.append(await nc.subscribe(f"all.{u}"))
            await barrier(nc)
        publisher = await connect(clients, 1, "admin")
        for i in range(10):
            await publisher.publish(f"all.{u}", str(i).encode())
        for sub in subs:
            assert [(await sub.next_msg(timeout=5)).data for _ in range(10)] == [
                str(i).encode() for i in range(10)
            ]
