"""The PONG barrier: a PONG is written only once every peer shard applied the interest
the connection's earlier SUB/UNSUB caused (ARCHITECTURE "One server to the outside")."""

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


def test_pong_barrier_holds_until_the_peer_applied_the_sub(pair: ShardPair) -> None:
    client = connect(pair.one)
    client.data_received(b"SUB held 1\r\nPING\r\n")
    # Shard 2 has not read its ring yet: the PONG waits.
    assert output(client) == b""
    assert client in pair.one.holding
    pair.two.on_doorbell()  # applies RS+ and rings shard 1 back
    pair.one.on_doorbell()
    assert output(client) == b"PONG\r\n"
    assert client not in pair.one.holding
    # And shard 2 now routes to it.
    publisher = connect(pair.two)
    publisher.data_received(b"PUB held 2\r\nok\r\n")
    pair.settle()
    assert output(client) == b"MSG held 1 2\r\nok\r\n"


def test_pong_barrier_keeps_later_output_behind_the_held_pong(pair: ShardPair) -> None:
    client = connect(pair.one)
    client.data_received(b"SUB a 1\r\nPING\r\nSUB b 2\r\nPUB a 1\r\nx\r\nPING\r\n")
    assert output(client) == b""
    pair.settle()
    assert output(client) == b"PONG\r\nMSG a 1 1\r\nx\r\nPONG\r\n"


def test_pong_barrier_needs_nothing_without_interest_changes(pair: ShardPair) -> None:
    client = connect(pair.one)
    client.data_received(b"PUB nobody 1\r\nx\r\nPING\r\n")
    assert output(client) == b"PONG\r\n"


def test_pong_barrier_released_when_the_peer_is_down(pair: ShardPair) -> None:
    client = connect(pair.one)
    client.data_received(b"SUB gone 1\r\nPING\r\n")
    assert output(client) == b""
    ring = pair.one.mesh.outbound[2]
    assert ring is not None
    # The supervisor announces shard 2 (generation 0) dead.
    pair.one.member.on_sdown(2, 0, pair.two.mesh.outbound[1].write_counter)  # type: ignore[union-attr]
    pair.one.flush_batch(None)
    assert output(client) == b"PONG\r\n"
