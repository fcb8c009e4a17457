"""Subscription limits: UNSUB <sid> <max> as nats-server reads it, and the atomic
auto-unsubscribe extension (`SUB <subject> [queue] <sid> max=<n>` for clients that send
`"sub_max": true` in CONNECT; docs/protocol-extensions.md).

Subscribers sit on worker 1 and publishers on worker 2, so every limit is counted for
messages that crossed the mesh. Negative checks use a sentinel: per-publisher order means
that once a publisher's sentinel has arrived, everything it published before has too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.broker import (
    Broker,
    assert_different_shards,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.differential import on_both
from tests.helpers.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    mid = f" {reply}" if reply else ""
    return f"PUB {subject}{mid} {len(payload)}\r\n".encode() + payload + b"\r\n"


def two_raw(broker: Broker, **sub_connect: object) -> tuple[WireClient, WireClient]:
    """A subscriber on worker 1 (CONNECT fields `sub_connect`) and a publisher on 2."""
    sub = raw_connect_on_shard(broker, 1)
    try:
        publisher = raw_connect_on_shard(broker, 2)
    except BaseException:
        sub.close()
        raise
    assert_different_shards(broker, sub.client_id, publisher.client_id)
    sub.handshake(**sub_connect)
    publisher.handshake()
    return sub, publisher


def read_until(c: WireClient, sentinel: str) -> list[tuple[str, str, bytes]]:
    """(subject, sid, payload) of every message before the sentinel's."""
    got = []
    while True:
        msg = c.read_msg()
        if msg.subject == sentinel:
            return got
        got.append((msg.subject, msg.sid, msg.payload))


# -- UNSUB <sid> <max> -------------------------------------------------------------------


async def test_sub_max_unsub_max_beyond_nine_digits_as_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-server reads UNSUB's max as a size (1 to 9 digits): a longer one is no
    number, and unsubscribes at once like 0; the connection stays."""

    async def scenario(broker: Broker) -> list[tuple[str, str, bytes]]:
        sub, publisher = two_raw(broker)
        with sub, publisher:
            sentinel = unique("end")
            sub.send(
                f"SUB nine 1\r\nSUB ten 2\r\nSUB huge 3\r\nSUB {sentinel} 9\r\n"
                "UNSUB 1 999999999\r\nUNSUB 2 1000000000\r\n"
                "UNSUB 3 99999999999999999999999999\r\n".encode()
            )
            assert sub.ping_barrier() == b""
            publisher.send(pub("nine", b"a") + pub("ten", b"b") + pub("huge", b"c"))
            publisher.send(pub(sentinel, b"!"))
            return read_until(sub, sentinel)

    got = await on_both(tmp_path, monkeypatch, "", scenario)
    assert got == [("nine", "1", b"a")]
