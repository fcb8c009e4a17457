"""Fast-producer stall: while a client is past its high-water mark (75% of
max_pending), publishers feeding the worker are held back instead of the client being
cut, for at most STALL_MAX at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shardbroker.const import ClosedState
from tests.helpers.fakes import MockTransport, ShardPair, connect, output, shard_pair


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as shards:
            yield shards
    finally:
        loop.close()


def transport_of(client: object) -> MockTransport:
    transport = client.transport  # type: ignore[attr-defined]
    assert isinstance(transport, MockTransport)
    return transport


def test_stall_holds_the_rings_until_the_client_drains(pair: ShardPair) -> None:
    slow = connect(pair.one)
    slow.data_received(b"SUB s 1\r\n")
    pair.settle()
    slow.pause_writing()  # the transport passed its high-water mark
    publisher = connect(pair.two)
    publisher.data_received(b"PUB s 1\r\nx\r\n")
    pair.one.on_doorbell()
    inbound = pair.one.mesh.inbound[2]
    assert inbound is not None
    assert inbound.pending() > 0, "a stalled worker must leave its rings alone"
    assert output(slow) == b""
    slow.resume_writing()  # drained below the low-water mark: serve at once
    assert inbound.pending() == 0
    assert output(slow) == b"MSG s 1 1\r\nx\r\n"


def test_stall_pauses_a_local_publisher_and_lets_it_go(pair: ShardPair) -> None:
    slow = connect(pair.one)
    slow.data_received(b"SUB s 1\r\n")
    slow.pause_writing()
    publisher = connect(pair.one)
    publisher.data_received(b"PUB s 1\r\nx\r\n")
    assert not transport_of(publisher).reading
    pair.one.end_stall()  # the STALL_MAX timer fired
    assert transport_of(publisher).reading
    assert slow in pair.one.stalled  # still behind: the next batch is held again
    publisher.data_received(b"PUB s 1\r\ny\r\n")
    assert not transport_of(publisher).reading


def test_stall_ends_when_the_stalled_client_goes(pair: ShardPair) -> None:
    slow = connect(pair.one)
    slow.data_received(b"SUB s 1\r\n")
    slow.pause_writing()
    publisher = connect(pair.one)
    publisher.data_received(b"PUB s 1\r\nx\r\n")
    assert not transport_of(publisher).reading
    slow.close_connection(ClosedState.ClientClosed)
    assert not pair.one.stalled
    assert transport_of(publisher).reading
