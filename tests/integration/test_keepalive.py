"""Server keepalive: PINGs every ping_interval, `-ERR 'Stale Connection'` after ping_max
unanswered ones; clients that answer stay (protocol.md §10, capture 19.8)."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.broker import NatsClients, barrier, raw_connect_on_shard, unique
from tests.helpers.wire import PING_RE, WireClient, err_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LIMITS = {"ping_interval": 1, "ping_max": 2}
# Generous per-step timeouts: the steps come about 1 s apart; no timing is asserted.
STEP = 5.0


def _silent_sequence(c: WireClient) -> bytes:
    c.expect(PING_RE, timeout=STEP)
    c.expect(PING_RE, timeout=STEP)
    c.expect(err_line("Stale Connection"), timeout=STEP)
    return c.expect_closed(timeout=STEP)


async def test_keepalive_stale_connection_and_healthy_clients(broker_factory) -> None:
    broker = broker_factory(limits=LIMITS)
    silent = raw_connect_on_shard(broker, 1, auto_pong=False)  # never answers PING
    answering = raw_connect_on_shard(broker, 2)  # auto_pong answers every server PING
    answering_local = raw_connect_on_shard(broker, 1)
    try:
        silent.send(b'CONNECT {"verbose":false}\r\n')
        answering.handshake()
        answering_local.handshake()
        async with NatsClients(broker) as clients:
            # nats-py answers server PINGs from its read loop.
            ncs = [await clients.on_shard(s) for s in broker.shard_ids]
            # Blocking socket reads run in threads so nats-py's loop keeps answering.
            leftover, _, _ = await asyncio.gather(
                asyncio.to_thread(_silent_sequence, silent),
                # More PINGs than ping_max allows unanswered: answering keeps them alive.
                asyncio.to_thread(answering.wait_server_pings, 3, 4 * STEP),
                asyncio.to_thread(answering_local.wait_server_pings, 3, 4 * STEP),
            )
            assert leftover == b""

            f = unique()
            answering.send(f"SUB {f} 1\r\n".encode())
            assert answering.ping_barrier() == b""
            answering_local.send(f"PUB {f} 2\r\nok\r\n".encode())
            assert answering.read_msg().payload == b"ok"
            assert answering_local.ping_barrier() == b""
            for nc in ncs:
                assert nc.is_connected
                await barrier(nc)
            sub = await ncs[0].subscribe(f)
            await barrier(ncs[0])
            await ncs[-1].publish(f, b"nats-py ok")
            assert (await sub.next_msg(timeout=5)).data == b"nats-py ok"
    finally:
        for c in (silent, answering, answering_local):
            c.close()


def test_keepalive_client_pong_resets_outstanding(broker_factory) -> None:
    # Answering each PING by hand, after the first PONG to the client's own PING.
    broker = broker_factory(limits=LIMITS)
    with raw_connect_on_shard(broker, 2, auto_pong=False) as c:
        c.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
        c.expect(b"PONG\r\n")
        for _ in range(3):
            c.expect(PING_RE, timeout=STEP)
            c.send(b"PONG\r\n")
        assert c.ping_barrier() == b""
