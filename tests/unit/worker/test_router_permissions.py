"""Permission checks at delivery, on two in-process worker shards (no sockets): the
delivery-time deny list and response grants on every routing path (single messages,
runs, headers, queue groups, peer frames and JetStream deliveries)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shardbroker.config.options import (
    Authorization,
    Options,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server
from tests.helpers.fakes import ShardPair, connect, output, shard_pair

SUB_PERMS = Permissions(subscribe=SubjectPermission(allow=("w.>",), deny=("w.secret", "w.q q1")))
SVC_PERMS = Permissions(
    publish=SubjectPermission(allow=()),
    subscribe=SubjectPermission(allow=("svc.>", "deliver.>")),
    allow_responses=ResponsePermission(max_msgs=1, expires=60.0),
)


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    opts = Options(
        port=0,
        ping_interval=3600,
        authorization=Authorization(
            users=(
                User(user="admin", password="p"),
                User(user="sub", password="p", permissions=SUB_PERMS),
                User(user="svc", password="p", permissions=SVC_PERMS),
            )
        ),
    )
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop, opts) as shards:
            yield shards
    finally:
        loop.close()


def login(server: Server, user: str) -> ClientProtocol:
    return connect(server, user=f'"{user}"', headers=True, **{"pass": '"p"'})


def pub(subject: bytes, payload: bytes = b"x", reply: bytes = b"") -> bytes:
    mid = b" " + reply if reply else b""
    return b"PUB %s%s %d\r\n%s\r\n" % (subject, mid, len(payload), payload)


def subjects(data: bytes) -> list[tuple[bytes, bytes]]:
    """(sid, subject) of every MSG/HMSG in the output, in order."""
    out = []
    for line in data.split(b"\r\n"):
        if line.startswith((b"MSG ", b"HMSG ")):
            parts = line.split()
            out.append((parts[2], parts[1]))
    return out


@pytest.mark.parametrize("publisher_shard", ["one", "two"])
def test_router_permissions_delivery_deny_on_every_path(
    pair: ShardPair, publisher_shard: str
) -> None:
    sub = login(pair.two, "sub")
    sub.data_received(b"SUB w.* 1\r\nSUB w.* q1 2\r\nSUB w.q 3\r\n")
    pair.settle()
    assert output(sub) == b""
    publisher = login(getattr(pair, publisher_shard), "admin")
    hdr = b"NATS/1.0\r\n\r\n"
    publisher.data_received(
        pub(b"w.secret")  # single
        + pub(b"w.secret") * 3  # a run
        + pub(b"w.q") * 2  # a run: q1 may not have it, the plain subscriptions may
        + b"HPUB w.secret %d %d\r\n%sx\r\n" % (len(hdr), len(hdr) + 1, hdr)
        + pub(b"w.ok")
    )
    pair.settle()
    got = subjects(output(sub))
    assert sorted(got) == sorted(
        [(b"1", b"w.q"), (b"3", b"w.q")] * 2 + [(b"1", b"w.ok"), (b"2", b"w.ok")]
    )


def test_router_permissions_denied_queue_member_passes_it_on(pair: ShardPair) -> None:
    denied = login(pair.two, "sub")
    allowed = login(pair.two, "admin")
    denied.data_received(b"SUB w.* q1 1\r\n")
    allowed.data_received(b"SUB w.* q1 1\r\n")
    pair.settle()
    publisher = login(pair.one, "admin")
    publisher.data_received(pub(b"w.q") * 30)
    pair.settle()
    assert output(denied) == b""
    assert subjects(output(allowed)) == [(b"1", b"w.q")] * 30


@pytest.mark.parametrize("requester_shard", ["one", "two"])
def test_router_permissions_response_grant(pair: ShardPair, requester_shard: str) -> None:
    svc = login(pair.two, "svc")
    svc.data_received(b"SUB svc.a 1\r\n")
    requester = login(getattr(pair, requester_shard), "admin")
    requester.data_received(b"SUB r.1 9\r\n")
    pair.settle()
    svc.data_received(pub(b"r.1", b"early"))  # no request yet
    assert output(svc) == b"-ERR 'Permissions Violation for Publish to \"r.1\"'\r\n"
    requester.data_received(pub(b"svc.a", b"q", reply=b"r.1"))
    pair.settle()
    assert output(svc) == b"MSG svc.a 1 r.1 1\r\nq\r\n"
    svc.data_received(pub(b"r.1", b"one") + pub(b"r.1", b"two"))
    pair.settle()
    assert output(svc) == b"-ERR 'Permissions Violation for Publish to \"r.1\"'\r\n"
    assert output(requester) == b"MSG r.1 9 3\r\none\r\n"


def test_router_permissions_jetstream_delivery(pair: ShardPair) -> None:
    svc = login(pair.two, "svc")
    svc.data_received(b"SUB deliver.x 1\r\nSUB deliver.q grp 2\r\n")
    pair.settle()
    router = pair.two.router
    router.process_jetstream_delivery(b"$G", b"deliver.x", b"orders.1", b"$JS.ACK.a", None, 0, b"m")
    router.process_jetstream_delivery(
        b"$G", b"deliver.q", b"orders.2", b"$JS.ACK.b", b"grp", 0, b"n"
    )
    pair.two.flush_batch(None)
    assert output(svc) == (
        b"MSG orders.1 1 $JS.ACK.a 1\r\nm\r\nMSG orders.2 2 $JS.ACK.b 1\r\nn\r\n"
    )
    # A responses-only user may acknowledge what it was given.
    svc.data_received(pub(b"$JS.ACK.a", b"+ACK") + pub(b"$JS.ACK.b", b"+ACK"))
    assert output(svc) == b""
