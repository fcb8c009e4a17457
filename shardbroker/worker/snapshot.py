"""A worker's answer to the supervisor's MONZ: its connections, for /connz and /subsz.

Owner: a worker shard; runs on its loop. It costs time in proportion to this worker's
connections (and subscriptions, when asked for them), and only when the monitor asks;
nothing here runs per message. Closed connections are kept in a bounded deque, one
snapshot taken as each connection closes.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from shardbroker import const
from shardbroker.const import ClosedState
from shardbroker.mesh.mesh import Mesh
from shardbroker.mesh.snapshot import (
    WANT_ALL_SUBS,
    WANT_CLOSED,
    WANT_SUBS,
    ConnSnapshot,
    SubSnapshot,
    WorkerSnapshot,
    encode_parts,
)
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.route_result import Subscription


class SnapshotSource(Protocol):
    """What a snapshot reads of its worker (worker/server.py's Server)."""

    shard_id: int
    mesh: Mesh
    clients: dict[int, ClientProtocol]
    closed_conns: deque[ConnSnapshot]


# nats-server keeps the last 10000 closed connections; each worker keeps that many of
# its own and the monitor keeps the newest overall.
MAX_CLOSED = 10_000


def closed_connections() -> deque[ConnSnapshot]:
    return deque(maxlen=MAX_CLOSED)


def sub_snapshot(sub: Subscription, cid: int) -> SubSnapshot:
    return SubSnapshot(
        subject=sub.subject.decode(errors="replace"),
        queue=sub.queue.decode(errors="replace") if sub.queue is not None else "",
        sid=sub.sid.decode(errors="replace"),
        msgs=sub.delivered,
        max=sub.max,
        account=sub.account.decode(errors="replace"),
        cid=cid,
    )


def conn_snapshot(
    client: ClientProtocol, with_subs: bool, stop_ns: int = 0, reason: str = ""
) -> ConnSnapshot:
    transport = client.transport
    pending = 0
    tls_version = tls_cipher = ""
    if transport is not None:
        try:
            pending = transport.get_write_buffer_size()
        except Exception:  # a transport already torn down
            pending = 0
        if client.server.ssl_context is not None or client.websocket:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                tls_version = ssl_object.version() or ""
                cipher = ssl_object.cipher()
                tls_cipher = cipher[0] if cipher else ""
    cid = client.cid
    limiter = client.limiter
    return ConnSnapshot(
        cid=cid,
        ip=client.host,
        port=client.port,
        start_ns=client.start_ns,
        last_ns=client.last_ns,
        rtt_ns=client.rtt_ns,
        pending_bytes=pending,
        in_msgs=client.in_msgs,
        out_msgs=client.out_msgs,
        in_bytes=client.in_bytes,
        out_bytes=client.out_bytes,
        n_subs=len(client.subs),
        name=client.name,
        lang=client.lang,
        version=client.version,
        user=client.user,
        account=client.account.decode(errors="replace"),
        tls_version=tls_version,
        tls_cipher=tls_cipher,
        subs=[sub_snapshot(s, cid) for s in client.subs.values()] if with_subs else None,
        stop_ns=stop_ns,
        reason=reason,
        rate_limits=",".join(b.key for b in limiter.budgets) if limiter is not None else "",
        throttled=limiter.throttles if limiter is not None else 0,
        throttled_ns=limiter.throttled_total_ns() if limiter is not None else 0,
        rate_rejected=limiter.rejected if limiter is not None else 0,
        type=client.client_type,
    )


def on_closed(server: SnapshotSource, client: ClientProtocol, reason: ClosedState) -> None:
    """Remember a connection as it closes (before its subscriptions are dropped)."""
    if not client.cid or not client.start_ns:
        return  # never got as far as being counted
    server.closed_conns.append(conn_snapshot(client, True, time.time_ns(), str(reason)))


def worker_snapshot(server: SnapshotSource, flags: int) -> WorkerSnapshot:
    with_subs = bool(flags & WANT_SUBS)
    conns = [conn_snapshot(c, with_subs) for c in server.clients.values()]
    closed = list(server.closed_conns) if flags & WANT_CLOSED else []
    subs: list[SubSnapshot] = []
    if flags & WANT_ALL_SUBS:
        for client in server.clients.values():
            cid = client.cid
            subs += [sub_snapshot(s, cid) for s in client.subs.values()]
    return WorkerSnapshot(
        shard=server.shard_id, now_ns=time.time_ns(), conns=conns, closed=closed, subs=subs
    )


def answer_monz(server: SnapshotSource, request_id: int, flags: int) -> None:
    """MONZ <request id> <flags>: send the snapshot back in ring-sized parts."""
    snap = worker_snapshot(server, flags)
    mesh = server.mesh
    for frame in encode_parts(request_id, server.shard_id, snap, mesh.max_commit):
        mesh.send(const.SUPERVISOR_SHARD, frame)
    mesh.flush()
