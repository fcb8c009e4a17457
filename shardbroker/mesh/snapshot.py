"""Snapshots: what a worker tells the supervisor for /connz and /subsz, and what the
storage shard tells it for the details of /jsz.

Imported by workers (they build and send snapshots) and by the monitor in the
supervisor (it asks and decodes). Pure: msgspec and bytes only.

Conversation, only when someone asks (never on a timer, never per message):

    supervisor -> worker   control frame ``MONZ <request id> <flags>``
    worker -> supervisor   ``RMSG $MON _MON.<request id>.<shard>.<part>.<parts> <size>``
                           frames carrying one msgpack-encoded ``WorkerSnapshot``, cut
                           into parts that each fit a ring commit
    storage -> supervisor  the same, carrying a ``StorageSnapshot`` (flag WANT_JSZ)

Each part has its own subject, so the mesh parser never folds parts into a run. The
supervisor waits a bounded time for every live worker and answers with what arrived:
a stuck worker costs the monitor its connections, never a hang.
"""

from __future__ import annotations

from typing import Any

import msgspec

MONZ = b"MONZ"
MON_ACCOUNT = b"$MON"
MON_PREFIX = b"_MON."

# MONZ flags.
WANT_SUBS = 1  # subscription detail per connection
WANT_CLOSED = 2  # the worker's recently closed connections too
WANT_ALL_SUBS = 4  # every subscription of the worker (/subsz?subs=1)
WANT_JSZ = 8  # the storage shard's accounts, streams and consumers (/jsz details)

# Room for the RMSG control line inside one ring commit.
_PART_OVERHEAD = 256


class SubSnapshot(msgspec.Struct, array_like=True, frozen=True):
    subject: str
    queue: str
    sid: str
    msgs: int
    max: int
    account: str
    cid: int


class ConnSnapshot(msgspec.Struct, array_like=True, frozen=True):
    cid: int
    ip: str
    port: int
    start_ns: int
    last_ns: int
    rtt_ns: int
    pending_bytes: int
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    n_subs: int
    name: str
    lang: str
    version: str
    user: str
    account: str
    tls_version: str
    tls_cipher: str
    # Only with WANT_SUBS (always kept for closed connections).
    subs: list[SubSnapshot] | None = None
    stop_ns: int = 0
    reason: str = ""
    # Publish rate limits (worker/ratelimit.py): the budgets it publishes against ("":
    # none), times it was held back, for how long in all, publishes refused.
    rate_limits: str = ""
    throttled: int = 0
    throttled_ns: int = 0
    rate_rejected: int = 0
    # The client's type as /connz shows it: "nats", or "websocket".
    type: str = "nats"


class WorkerSnapshot(msgspec.Struct, array_like=True):
    shard: int
    now_ns: int
    conns: list[ConnSnapshot]
    closed: list[ConnSnapshot]
    # With WANT_ALL_SUBS.
    subs: list[SubSnapshot]


class StreamJsz(msgspec.Struct, array_like=True):
    """One stream as STREAM.INFO shows it (config, created, state), and its consumers
    as CONSUMER.INFO does."""

    name: str
    created: str
    config: dict[str, Any]
    state: dict[str, Any]
    consumers: list[dict[str, Any]]


class AccountJsz(msgspec.Struct, array_like=True):
    name: str
    memory: int
    storage: int
    api_total: int
    api_errors: int
    streams: list[StreamJsz]


class StorageSnapshot(msgspec.Struct, array_like=True):
    shard: int
    now_ns: int
    accounts: list[AccountJsz]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WorkerSnapshot)
_storage_decoder = msgspec.msgpack.Decoder(StorageSnapshot)


def encode_parts(
    request_id: int, shard: int, snap: WorkerSnapshot | StorageSnapshot, max_commit: int
) -> list[bytes]:
    """The RMSG frames that carry a snapshot to the supervisor."""
    blob = _encoder.encode(snap)
    size = max(1024, max_commit - _PART_OVERHEAD)
    pieces = [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]
    n = len(pieces)
    head = MON_PREFIX + b"%d.%d." % (request_id, shard)
    return [
        b"RMSG %s %s%d.%d %d\r\n%s\r\n" % (MON_ACCOUNT, head, i, n, len(piece), piece)
        for i, piece in enumerate(pieces)
    ]


def parse_part_subject(subject: bytes) -> tuple[int, int, int, int] | None:
    """(request id, shard, part, parts) of a snapshot part's subject, or None."""
    if not subject.startswith(MON_PREFIX):
        return None
    try:
        request_id, shard, part, parts = (int(t) for t in subject[len(MON_PREFIX) :].split(b"."))
    except ValueError:
        return None
    if not 0 <= part < parts:
        return None
    return request_id, shard, part, parts


def decode(blob: bytes) -> WorkerSnapshot:
    return _decoder.decode(blob)


def decode_storage(blob: bytes) -> StorageSnapshot:
    return _storage_decoder.decode(blob)
