"""The nats-py helper of the sub_max extension (shardbroker/contrib/natspy.py): what it
writes, against a server that advertises the extension and one that does not."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from shardbroker.contrib import natspy

CONNECT_OPTIONS = {"verbose": False, "pedantic": False, "name": None, "no_echo": None}


def client(info: dict[str, object]) -> tuple[natspy.SubMaxClient, list[bytes]]:
    """A connected-looking client with the server's INFO; what it sends is recorded."""
    nc = natspy.SubMaxClient()
    nc._server_info = info
    nc.options = dict(CONNECT_OPTIONS)
    nc._status = Client.CONNECTED
    sent: list[bytes] = []

    async def send_command(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    async def flush_pending(force_flush: bool = False) -> None:
        return None

    nc._send_command = send_command
    nc._flush_pending = flush_pending
    return nc, sent


def connect_fields(nc: natspy.SubMaxClient) -> dict[str, object]:
    command = nc._connect_command()
    assert command.startswith(b"CONNECT ") and command.endswith(b"\r\n")
    return json.loads(command[len(b"CONNECT ") :])


def send_subscribe(nc: natspy.SubMaxClient, sid: int, queue: str, max_msgs: int) -> None:
    sub = Subscription(nc, sid, "orders.*", queue=queue, max_msgs=max_msgs)
    asyncio.run(nc._send_subscribe(sub))


def test_natspy_asks_for_sub_max_only_where_advertised() -> None:
    advertised, _ = client({"headers": True, "sub_max": True})
    assert advertised.sub_max
    assert connect_fields(advertised)["sub_max"] is True
    plain, _ = client({"headers": True})
    assert not plain.sub_max
    fields = connect_fields(plain)
    assert "sub_max" not in fields
    # Otherwise the CONNECT stock nats-py writes.
    assert fields == json.loads(Client._connect_command(plain)[len(b"CONNECT ") :])


@pytest.mark.parametrize(
    ("queue", "max_msgs", "extended", "fallback"),
    [
        ("", 1, b"SUB orders.* 7 max=1\r\n", b"SUB orders.* 7\r\nUNSUB 7 1\r\n"),
        (
            "workers",
            100,
            b"SUB orders.* workers 7 max=100\r\n",
            b"SUB orders.* workers 7\r\nUNSUB 7 100\r\n",
        ),
    ],
)
def test_natspy_subscribes_with_a_limit_in_one_sub_or_falls_back(
    queue: str, max_msgs: int, extended: bytes, fallback: bytes
) -> None:
    nc, sent = client({"sub_max": True})
    send_subscribe(nc, 7, queue, max_msgs)
    assert sent == [extended]
    nc, sent = client({})
    send_subscribe(nc, 7, queue, max_msgs)
    assert sent == [fallback]


def test_natspy_while_reconnecting_falls_back() -> None:
    """The command waits for a server that may not take the extension."""
    nc, sent = client({"sub_max": True})
    nc._status = Client.RECONNECTING
    send_subscribe(nc, 3, "", 2)
    assert sent == [b"SUB orders.* 3\r\nUNSUB 3 2\r\n"]


@pytest.mark.parametrize("max_msgs", [0, natspy.MAX_LIMIT + 1])
def test_natspy_without_a_limit_the_server_can_take_subscribes_as_nats_py(max_msgs: int) -> None:
    nc, sent = client({"sub_max": True})
    send_subscribe(nc, 5, "", max_msgs)
    assert sent == [b"SUB orders.*  5\r\n"]  # nats-py's own SUB line
