"""The limiter of a rate-limited connection (worker/ratelimit.py), driven by hand: what
it holds waits in order with the socket paused, comes back as tokens return (the timer's
callback, called here directly), and mixes with the read budget's deferral and with
other holds; unlimited connections have no limiter at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shardbroker.config.options import Options, RateLimit
from tests.helpers.fakes import MockTransport, ShardPair, connect, output, shard_pair


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    loop = asyncio.new_event_loop()
    opts = Options(port=0, ping_interval=3600, rate_limit=RateLimit(msgs_per_sec=1, burst_msgs=2))
    try:
        with shard_pair(loop, opts) as shards:
            yield shards
    finally:
        loop.close()


def transport_of(client: object) -> MockTransport:
    transport = client.transport  # type: ignore[attr-defined]
    assert isinstance(transport, MockTransport)
    return transport


def refill(client: object, tokens: float) -> None:
    """As if time had passed: the connection's bucket holds `tokens` messages."""
    limiter = client.limiter  # type: ignore[attr-defined]
    limiter.budgets[0].msgs.tokens = tokens
    limiter.timer.cancel()
    limiter.on_tokens()


def test_rate_limiter_holds_in_order_and_lets_through_as_tokens_return(pair: ShardPair) -> None:
    sub = connect(pair.two)
    sub.data_received(b"SUB x 1\r\nPING\r\n")
    pair.settle()
    output(sub)
    pub = connect(pair.one)
    pub.data_received(b"".join(b"PUB x 1\r\n%d\r\n" % i for i in range(5)) + b"PING\r\n")
    pair.settle()
    # The burst went through; the rest waits, the socket is paused, no PONG yet.
    assert output(sub) == b"MSG x 1 1\r\n0\r\nMSG x 1 1\r\n1\r\n"
    assert not transport_of(pub).reading and pub.limiter is not None and pub.limiter.holding
    assert output(pub) == b""
    # Input that still arrives (read before the pause) queues behind, in order.
    pub.consume(b"PUB x 1\r\n5\r\n")
    refill(pub, 2)
    pair.settle()
    assert output(sub) == b"MSG x 1 1\r\n2\r\nMSG x 1 1\r\n3\r\n"
    assert not transport_of(pub).reading
    refill(pub, 1)
    pair.settle()
    assert output(sub) == b"MSG x 1 1\r\n4\r\n"
    assert output(pub) == b"PONG\r\n"
    assert not transport_of(pub).reading  # the sixth message still waits
    refill(pub, 1)
    pair.settle()
    assert output(sub) == b"MSG x 1 1\r\n5\r\n"
    assert transport_of(pub).reading and not pub.limiter.holding
    assert (pub.limiter.throttles, pub.in_msgs) == (1, 6)
    assert pub.limiter.throttled_ns > 0


def test_rate_limiter_keeps_a_socket_paused_for_another_reason(pair: ShardPair) -> None:
    """A held publisher whose socket a full ring paused too is resumed by neither alone."""
    pub = connect(pair.one)
    pub.data_received(b"PUB x 1\r\na\r\n" * 3)
    assert not transport_of(pub).reading
    pair.one.paused.add(pub)
    refill(pub, 5)
    assert not transport_of(pub).reading  # the ring still holds it
    pair.one.resume_paused()
    assert transport_of(pub).reading


def test_rate_limiter_stops_with_its_connection(pair: ShardPair) -> None:
    pub = connect(pair.one)
    pub.data_received(b"PUB x 1\r\na\r\n" * 3)
    limiter = pub.limiter
    assert limiter is not None and limiter.holding
    timer = limiter.timer
    pub.connection_lost(None)
    assert timer.cancelled() and not limiter.holding


def test_rate_limiter_is_absent_without_limits() -> None:
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as shards:
            client = connect(shards.one)
            client.data_received(b"PUB x 1\r\na\r\n" * 10)
            assert client.limiter is None and client.in_msgs == 10
    finally:
        loop.close()
