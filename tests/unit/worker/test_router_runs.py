"""Routing of messages, one by one and as runs of identical control lines, on two
in-process worker shards (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.helpers.fakes import ShardPair, connect, output, shard_pair


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as shards:
            yield shards
    finally:
        loop.close()


def msgs(subject: bytes, sid: bytes, payloads: list[bytes]) -> bytes:
    return b"".join(b"MSG %s %s %d\r\n%s\r\n" % (subject, sid, len(p), p) for p in payloads)


def test_router_run_local_and_remote_in_order(pair: ShardPair) -> None:
    local = connect(pair.one)
    remote = connect(pair.two)
    local.data_received(b"SUB run.x 1\r\n")
    remote.data_received(b"SUB run.* 7\r\n")
    pair.settle()
    publisher = connect(pair.one)
    payloads = [b"%04d" % i for i in range(300)]
    publisher.data_received(b"".join(b"PUB run.x 4\r\n%s\r\n" % p for p in payloads))
    pair.settle()
    assert output(local) == msgs(b"run.x", b"1", payloads)
    assert output(remote) == msgs(b"run.x", b"7", payloads)


def test_router_run_stops_at_unsub_max(pair: ShardPair) -> None:
    local = connect(pair.one)
    remote = connect(pair.two)
    local.data_received(b"SUB m 1\r\nUNSUB 1 3\r\n")
    remote.data_received(b"SUB m 2\r\nUNSUB 2 5\r\n")
    pair.settle()
    publisher = connect(pair.one)
    payloads = [b"%02d" % i for i in range(10)]
    publisher.data_received(b"".join(b"PUB m 2\r\n%s\r\n" % p for p in payloads))
    pair.settle()
    assert output(local) == msgs(b"m", b"1", payloads[:3])
    assert output(remote) == msgs(b"m", b"2", payloads[:5])
    assert not local.subs and not remote.subs


def test_router_run_respects_echo_off(pair: ShardPair) -> None:
    publisher = connect(pair.one, echo=False)
    other = connect(pair.one)
    publisher.data_received(b"SUB e 1\r\n")
    other.data_received(b"SUB e 2\r\n")
    publisher.data_received(b"PUB e 1\r\na\r\n" * 5)
    assert output(publisher) == b""
    assert output(other) == msgs(b"e", b"2", [b"a"] * 5)


def test_router_run_with_reply_and_queue_group_exactly_once(pair: ShardPair) -> None:
    members = [connect(pair.one), connect(pair.two), connect(pair.two)]
    for member in members:
        member.data_received(b"SUB work grp 1\r\n")
    pair.settle()
    publisher = connect(pair.one)
    publisher.data_received(b"PUB work inbox.1 2\r\nok\r\n" * 400)
    pair.settle()
    received = [output(member).count(b"MSG work 1 inbox.1 2\r\nok\r\n") for member in members]
    assert sum(received) == 400
    assert all(count > 0 for count in received)


def test_router_run_fan_out_counts(pair: ShardPair) -> None:
    subs = [connect(pair.one, keep=False) for _ in range(2)] + [
        connect(pair.two, keep=False) for _ in range(2)
    ]
    for sub in subs:
        sub.data_received(b"SUB fan 1\r\n")
    pair.settle()
    publisher = connect(pair.one)
    publisher.data_received(b"PUB fan 3\r\nabc\r\n" * 1000)
    pair.settle()
    for sub in subs:
        assert sub.out_msgs == 1000
        assert sub.subs[b"1"].delivered == 1000


def test_router_run_with_varying_sizes_local_and_remote(pair: ShardPair) -> None:
    local = connect(pair.one)
    remote = connect(pair.two)
    local.data_received(b"SUB var 1\r\n")
    remote.data_received(b"SUB var 2\r\nUNSUB 2 30\r\n")
    pair.settle()
    publisher = connect(pair.one)
    payloads = [b"z" * (i % 11) for i in range(50)]
    publisher.data_received(b"".join(b"PUB var %d\r\n%s\r\n" % (len(p), p) for p in payloads))
    pair.settle()
    assert output(local) == msgs(b"var", b"1", payloads)
    assert output(remote) == msgs(b"var", b"2", payloads[:30])


def test_router_run_with_varying_sizes_to_a_queue_group(pair: ShardPair) -> None:
    members = [connect(pair.one), connect(pair.two)]
    for member in members:
        member.data_received(b"SUB vq g 1\r\n")
    pair.settle()
    publisher = connect(pair.one)
    payloads = [b"q" * (1 + i % 3) for i in range(300)]
    publisher.data_received(b"".join(b"PUB vq %d\r\n%s\r\n" % (len(p), p) for p in payloads))
    pair.settle()
    received = b"".join(output(member) for member in members)
    assert received.count(b"MSG vq 1 ") == 300


def test_router_reply_inboxes_share_a_result_but_keep_their_subjects(pair: ShardPair) -> None:
    """`_INBOX.a.*` makes every `_INBOX.a.<n>` match alike: the sublist shares one result
    for them, and each delivery must still show its own subject (locally and remotely)."""
    requester = connect(pair.one)
    requester.data_received(b"SUB _INBOX.a.* 1\r\n")
    pair.settle()
    local = connect(pair.one)
    remote = connect(pair.two)
    subjects = [b"_INBOX.a.%d" % i for i in range(1, 40)]
    local.data_received(b"".join(b"PUB %s 2\r\nlo\r\n" % s for s in subjects))
    remote.data_received(b"".join(b"PUB %s 2\r\nre\r\n" % s for s in subjects))
    pair.settle()
    delivered = output(requester)
    expected_local = b"".join(b"MSG %s 1 2\r\nlo\r\n" % s for s in subjects)
    expected_remote = b"".join(b"MSG %s 1 2\r\nre\r\n" % s for s in subjects)
    assert expected_local in delivered and expected_remote in delivered
    assert len(delivered) == len(expected_local) + len(expected_remote)
    sublist = pair.one.sublist_for(b"$G")
    assert sublist.tail_cache_count == 1
