"""The JSON of the system account's events and requests (accounts-and-security.md §6):
the server in every message, the client in connect and disconnect advisories.

Pure. Field names, order and omit-when-empty behaviour follow nats-server, since tools
(`nats server`, nats-surveyor, `nats event`) read them.
"""

from __future__ import annotations

import os

import msgspec

_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EVENT_ID_LEN = 22  # a NUID's length

CONNECT_TYPE = "io.nats.server.advisory.v1.client_connect"
DISCONNECT_TYPE = "io.nats.server.advisory.v1.client_disconnect"


def event_id() -> str:
    """A fresh 22-character base-62 id, as nats-server's NUIDs look."""
    return bytes(_BASE62[b % 62] for b in os.urandom(EVENT_ID_LEN)).decode()


class EventServer(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The server that sends an event or answers a request (nats-server's ServerInfo)."""

    name: str
    host: str
    id: str
    domain: str = ""
    ver: str
    jetstream: bool
    flags: int
    seq: int
    time: str


class EventClient(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A client in an event (nats-server's ClientInfo, omitempty)."""

    start: str = ""
    host: str = ""
    id: int = 0
    acc: str = ""
    user: str = ""
    name: str = ""
    lang: str = ""
    ver: str = ""
    rtt: int = 0
    stop: str = ""
    name_tag: str = ""
    kind: str = ""
    client_type: str = ""


class DataStats(msgspec.Struct):
    msgs: int
    bytes: int


class ConnectEvent(msgspec.Struct, kw_only=True):
    type: str = CONNECT_TYPE
    id: str
    timestamp: str
    server: EventServer
    client: EventClient


class DisconnectEvent(msgspec.Struct, kw_only=True):
    type: str = DISCONNECT_TYPE
    id: str
    timestamp: str
    server: EventServer
    client: EventClient
    sent: DataStats
    received: DataStats
    reason: str


encode = msgspec.json.Encoder().encode
