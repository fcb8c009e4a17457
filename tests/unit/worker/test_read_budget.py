"""Client input in bounded turns: a worker parses at most READ_BUDGET bytes of client input
per turn of its loop; the rest waits in the client, its socket paused, and is parsed on
later turns in order. What subscribers receive is exactly what one unbounded turn gives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shardbroker.worker.server import READ_BUDGET
from tests.helpers.fakes import MockTransport, ShardPair, connect, output, shard_pair


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as shards:
            yield shards
    finally:
        loop.close()


def publishes(count: int, start: int = 0) -> bytes:
    return b"".join(b"PUB load.%d 5\r\nm%04d\r\n" % (i % 7, i % 10000) for i in range(start, count))


def transport_of(client: object) -> MockTransport:
    transport = client.transport  # type: ignore[attr-defined]
    assert isinstance(transport, MockTransport)
    return transport


def test_read_budget_defers_the_rest_of_a_turn_in_order(pair: ShardPair) -> None:
    server = pair.one
    server.read_budget = READ_BUDGET
    subscriber = connect(server)
    subscriber.data_received(b"SUB load.* 1\r\n")
    publisher = connect(server)
    data = publishes(3 * READ_BUDGET // 20)
    assert len(data) > 2 * READ_BUDGET
    # Reads as a socket would deliver them, in pieces that do not respect op borders.
    for i in range(0, len(data), 100_000):
        publisher.data_received(data[i : i + 100_000])
    first = output(subscriber)
    assert 0 < first.count(b"MSG ") < len(data) // 20  # a budget's worth, not all
    assert not transport_of(publisher).reading  # the rest waits, the socket paused
    assert server.deferred_reads
    while server.deferred_reads:
        server.next_read_turn()
    assert transport_of(publisher).reading
    seen = first + output(subscriber)

    # The same input in one unbounded turn on a fresh pair gives the same bytes.
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as other:
            other.one.read_budget = 1 << 40
            reference_sub = connect(other.one)
            reference_sub.data_received(b"SUB load.* 1\r\n")
            reference_pub = connect(other.one)
            other.one.read_budget = 1 << 40
            reference_pub.data_received(data)
            assert not other.one.deferred_reads
            assert output(reference_sub) == seen
    finally:
        loop.close()


def test_read_budget_keeps_a_paused_publisher_paused(pair: ShardPair) -> None:
    """Input deferred by the budget, and a full ring: the socket reads again only when
    both let it."""
    server = pair.one
    publisher = connect(server)
    server.read_budget = 0
    publisher.data_received(publishes(10))
    assert not transport_of(publisher).reading
    server.paused.add(publisher)  # as a full ring would have it
    while server.deferred_reads:
        server.next_read_turn()
    assert not transport_of(publisher).reading
    server.resume_paused()
    assert transport_of(publisher).reading


def test_read_budget_drops_input_of_a_client_closed_meanwhile(pair: ShardPair) -> None:
    server = pair.one
    subscriber = connect(server)
    subscriber.data_received(b"SUB load.* 1\r\n")
    publisher = connect(server)
    server.read_budget = 0
    publisher.data_received(publishes(10))
    publisher.connection_lost(None)
    while server.deferred_reads:
        server.next_read_turn()
    assert output(subscriber) == b""
    assert not server.deferred_reads
