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
# shardbroker's own: a publish rate limit began to hold back (or refuse) an account's
# publishers, on `$SYS.ACCOUNT.<account>.RATE_LIMIT`.
RATE_LIMIT_TYPE = "io.shardbroker.advisory.v1.rate_limit"


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
    tags: tuple[str, ...] = ()
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
    server: str = ""
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


class RateLimitEvent(msgspec.Struct, kw_only=True):
    """A rate limit engaged: which (`limit`: "account:<name>", "user:<name>" or
    "connection"), in which mode, and the client that met it first."""

    type: str = RATE_LIMIT_TYPE
    id: str
    timestamp: str
    server: EventServer
    client: EventClient
    limit: str
    mode: str
    msgs_per_sec: float
    bytes_per_sec: float


encode = msgspec.json.Encoder().encode


LATENCY_TYPE = "io.nats.server.metric.v1.service_latency"
LATENCY_STATUS = {
    400: "Bad Request",
    408: "Request Timeout",
    503: "Service Unavailable",
    504: "Service Timeout",
}


class ServiceLatency(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The metric a service export with `latency` publishes in its account."""

    type: str  # LATENCY_TYPE (a default would be left out)
    id: str
    timestamp: str
    status: int
    description: str = ""
    requestor: EventClient | None = None
    responder: EventClient | None = None
    header: dict[str, list[str]] | None = None
    # Always there, zero included.
    start: str
    service: int
    system: int
    total: int


class ResponderNote(msgspec.Struct, array_like=True):
    """What a responder's worker tells the requester's about a tracked response: the
    responder, and when (CLOCK_MONOTONIC ns, one clock for every process of the host)
    its response arrived there."""

    responder: EventClient
    at: int


def canonical_key(key: str) -> str:
    """A header name as Go's textproto writes it (`traceparent` -> `Traceparent`)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def _flag_set(value: str, sep: str, index: int) -> bool:
    parts = value.split(sep)
    try:
        return bool(int(parts[index], 16) & 1)
    except (IndexError, ValueError):
        return False


def sampled_trace_headers(block: bytes) -> dict[str, list[str]] | None:
    """The trace headers of a request that asks for sampling (W3C `traceparent` with
    the sampled flag, Zipkin `X-B3-Sampled: 1`, `X-B3-TraceId`, a `B3` not ending in
    `-0`, Jaeger `Uber-Trace-Id` with the sampled flag); None when it does not."""
    found: dict[str, list[str]] = {}
    for line in block.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        name = canonical_key(key.decode(errors="replace").strip())
        found.setdefault(name, []).append(value.decode(errors="replace").strip())

    def first(name: str) -> str | None:
        values = found.get(name)
        return values[0] if values else None

    traceparent = first("Traceparent")
    if traceparent is not None:
        if not _flag_set(traceparent, "-", 3):
            return None
        return {k: v for k, v in found.items() if k in ("Traceparent", "Tracestate")}
    b3_sampled = first("X-B3-Sampled")
    if b3_sampled is not None or first("X-B3-Traceid") is not None:
        if b3_sampled == "0":
            return None
        return {k: v for k, v in found.items() if k.startswith("X-B3-")}
    b3 = first("B3")
    if b3 is not None:
        if b3 == "0" or b3.endswith("-0") or "-0-" in b3:
            return None
        return {"B3": found["B3"]}
    uber = first("Uber-Trace-Id")
    if uber is not None:
        if not _flag_set(uber, ":", 3):
            return None
        return {k: v for k, v in found.items() if k == "Uber-Trace-Id" or k.startswith("Uberctx-")}
    return None
