"""/connz and /subsz: connections and subscriptions, from the workers' snapshots.

Pure: no I/O, no clock, no asyncio; called by monitor/service.py and /metrics with the
`collect.BrokerState` and the worker snapshots it gathered. Field names, sort options and
query errors are nats-server's (monitor.go Connz/Subsz).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from shardbroker.gofmt.duration import go_duration
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.mesh.snapshot import (
    WANT_CLOSED,
    WANT_SUBS,
    ConnSnapshot,
    SubSnapshot,
    WorkerSnapshot,
)
from shardbroker.monitor.collect import (
    DEFAULT_LIMIT,
    GLOBAL_ACCOUNT,
    BrokerState,
    QueryError,
    parse_bool,
    parse_int,
    uptime,
)
from shardbroker.protocol.subjects import subject_matches

# -- /connz ------------------------------------------------------------------------------------


class SubDetail(msgspec.Struct, omit_defaults=True, kw_only=True):
    account: str = ""
    account_tag: str = ""
    subject: str
    qgroup: str = ""
    sid: str
    msgs: int
    max: int = 0
    cid: int


class ConnInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    cid: int
    kind: str
    type: str
    ip: str
    port: int
    start: str
    last_activity: str
    stop: str = ""
    reason: str = ""
    rtt: str = ""
    uptime: str
    idle: str
    pending_bytes: int
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    subscriptions: int
    name: str = ""
    lang: str = ""
    version: str = ""
    tls_version: str = ""
    tls_cipher_suite: str = ""
    authorized_user: str = ""
    account: str = ""
    subscriptions_list: list[str] = msgspec.field(default_factory=list)
    subscriptions_list_detail: list[SubDetail] = msgspec.field(default_factory=list)
    name_tag: str = ""
    # shardbroker's addition: the worker shard that holds the connection.
    shard: int
    # shardbroker's additions for publish rate limits (left out when there is none):
    # the budgets the connection publishes against ("connection", "user:<name>",
    # "account:<name>"), times it was held back, for how long in all, publishes refused.
    rate_limits: list[str] = msgspec.field(default_factory=list)
    throttled: int = 0
    throttled_time: str = ""
    rate_rejected: int = 0


class Connz(msgspec.Struct, kw_only=True):
    server_id: str
    now: str
    num_connections: int
    total: int
    offset: int
    limit: int
    connections: list[ConnInfo]


SORT_OPTIONS = {
    # name: (key on a ConnSnapshot given now, descending)
    "cid": (lambda c, now: c.cid, False),
    "start": (lambda c, now: c.start_ns, False),
    "subs": (lambda c, now: c.n_subs, True),
    "pending": (lambda c, now: c.pending_bytes, True),
    "msgs_to": (lambda c, now: c.out_msgs, True),
    "msgs_from": (lambda c, now: c.in_msgs, True),
    "bytes_to": (lambda c, now: c.out_bytes, True),
    "bytes_from": (lambda c, now: c.in_bytes, True),
    "last": (lambda c, now: c.last_ns, True),
    "idle": (lambda c, now: (c.stop_ns or now) - c.last_ns, True),
    "uptime": (lambda c, now: (c.stop_ns or now) - c.start_ns, False),
    "rtt": (lambda c, now: c.rtt_ns, True),
    "stop": (lambda c, now: c.stop_ns, True),
    "reason": (lambda c, now: c.reason, False),
}


@dataclass
class ConnzQuery:
    sort: str = "cid"
    auth: bool = False
    subs: bool = False
    subs_detail: bool = False
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    cid: int = 0
    state: str = "open"  # open, closed, all
    user: str = ""
    acc: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str]) -> ConnzQuery:
        q = cls()
        sort = query.get("sort", "")
        if sort:
            if sort not in SORT_OPTIONS:
                raise QueryError(f"invalid sorting option: {sort}")
            q.sort = sort
        if "auth" in query:
            q.auth = parse_bool("auth", query["auth"])
        subs = query.get("subs", "")
        if subs == "detail":
            q.subs = q.subs_detail = True
        elif subs:
            q.subs = parse_bool("subs", subs)
        if "offset" in query:
            q.offset = max(0, parse_int("offset", query["offset"]))
        if "limit" in query:
            q.limit = parse_int("limit", query["limit"])
            if q.limit <= 0:
                q.limit = DEFAULT_LIMIT
        if "cid" in query:
            q.cid = parse_int("cid", query["cid"])
        state = query.get("state", "open").lower()
        if state in ("all", "any"):
            q.state = "all"
        elif state in ("open", "closed"):
            q.state = state
        else:
            raise QueryError(f"Error decoding state for {query['state']}")
        if q.sort in ("stop", "reason") and q.state != "closed":
            raise QueryError(f"sort by {q.sort} only valid on closed connections")
        q.user = query.get("user", "")
        q.acc = query.get("acc", "")
        return q

    @property
    def snapshot_flags(self) -> int:
        flags = WANT_SUBS if self.subs else 0
        if self.state != "open" or self.cid:
            flags |= WANT_CLOSED
        return flags


def _sub_detail(s: SubSnapshot, with_account: bool = False) -> SubDetail:
    return SubDetail(
        account=s.account if with_account else "",
        account_tag=s.account if with_account else "",
        subject=s.subject,
        qgroup=s.queue,
        sid=s.sid,
        msgs=s.msgs,
        max=s.max,
        cid=s.cid,
    )


def conn_info(c: ConnSnapshot, shard: int, now_ns: int, q: ConnzQuery) -> ConnInfo:
    end = c.stop_ns or now_ns
    subs = c.subs or []
    return ConnInfo(
        cid=c.cid,
        kind="Client",
        type=c.type,
        ip=c.ip,
        port=c.port,
        start=format_rfc3339(c.start_ns),
        last_activity=format_rfc3339(c.last_ns),
        stop=format_rfc3339(c.stop_ns) if c.stop_ns else "",
        reason=c.reason,
        rtt=go_duration(c.rtt_ns),
        uptime=uptime(end - c.start_ns),
        idle=uptime(end - c.last_ns),
        pending_bytes=c.pending_bytes,
        in_msgs=c.in_msgs,
        out_msgs=c.out_msgs,
        in_bytes=c.in_bytes,
        out_bytes=c.out_bytes,
        subscriptions=c.n_subs if not c.stop_ns else len(subs),
        name=c.name,
        lang=c.lang,
        version=c.version,
        tls_version=c.tls_version,
        tls_cipher_suite=c.tls_cipher,
        authorized_user=c.user if q.auth else "",
        account=c.account if q.auth and c.account != GLOBAL_ACCOUNT else "",
        subscriptions_list=[s.subject for s in subs] if q.subs and not q.subs_detail else [],
        subscriptions_list_detail=[_sub_detail(s) for s in subs] if q.subs_detail else [],
        name_tag=c.account if q.auth else "",
        shard=shard,
        rate_limits=c.rate_limits.split(",") if c.rate_limits else [],
        throttled=c.throttled,
        throttled_time=go_duration(c.throttled_ns) if c.throttled_ns else "",
        rate_rejected=c.rate_rejected,
    )


def connz(server_id: str, now_ns: int, snapshots: list[WorkerSnapshot], q: ConnzQuery) -> Connz:
    rows: list[tuple[ConnSnapshot, int]] = []
    for snap in snapshots:
        if q.cid:
            rows += [(c, snap.shard) for c in snap.conns if c.cid == q.cid]
            rows += [(c, snap.shard) for c in snap.closed if c.cid == q.cid]
            continue
        if q.state in ("open", "all"):
            rows += [(c, snap.shard) for c in snap.conns]
        if q.state in ("closed", "all"):
            rows += [(c, snap.shard) for c in snap.closed]
    if q.user:
        rows = [r for r in rows if r[0].user == q.user]
    if q.acc:
        rows = [r for r in rows if r[0].account == q.acc]
    key, descending = SORT_OPTIONS[q.sort]
    rows.sort(key=lambda r: (key(r[0], now_ns), r[0].cid), reverse=descending)
    if q.state == "closed" and q.sort == "cid":
        # nats-server keeps the newest closed connections.
        rows = rows[-10_000:]
    page = rows[q.offset : q.offset + q.limit]
    return Connz(
        server_id=server_id,
        now=format_rfc3339(now_ns),
        num_connections=len(page),
        total=len(rows),
        offset=q.offset,
        limit=q.limit,
        connections=[conn_info(c, shard, now_ns, q) for c, shard in page],
    )


# -- /subsz ------------------------------------------------------------------------------------


class Subsz(msgspec.Struct, omit_defaults=True, kw_only=True):
    server_id: str
    now: str
    num_subscriptions: int
    num_cache: int
    num_inserts: int
    num_removes: int
    num_matches: int
    cache_hit_rate: float
    max_fanout: int
    avg_fanout: float
    total: int
    offset: int
    limit: int
    subscriptions_list: list[SubDetail] = msgspec.field(default_factory=list)


@dataclass
class SubszQuery:
    subs: bool = False
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    test: str = ""
    acc: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str]) -> SubszQuery:
        q = cls()
        if "subs" in query:
            q.subs = query["subs"] == "detail" or parse_bool("subs", query["subs"])
        if "offset" in query:
            q.offset = max(0, parse_int("offset", query["offset"]))
        if "limit" in query:
            q.limit = parse_int("limit", query["limit"])
            if q.limit <= 0:
                q.limit = DEFAULT_LIMIT
        q.test = query.get("test", "")
        if q.test and any(t in ("*", ">") or not t for t in q.test.split(".")):
            raise QueryError(f"Bad test subject: {q.test}")
        q.acc = query.get("acc", "")
        return q


def subsz(state: BrokerState, q: SubszQuery, subs: list[SubSnapshot] | None = None) -> Subsz:
    out = Subsz(
        server_id=state.server_id,
        now=format_rfc3339(state.now_ns),
        num_subscriptions=state.total("subscriptions"),
        num_cache=state.total("sub_cache"),
        num_inserts=state.total("sub_inserts"),
        num_removes=state.total("sub_removes"),
        num_matches=0,
        cache_hit_rate=0.0,
        max_fanout=0,
        avg_fanout=0.0,
        total=0,
        offset=q.offset,
        limit=q.limit,
    )
    if q.subs and subs is not None:
        found = subs
        if q.acc:
            found = [s for s in found if s.account == q.acc]
        if q.test:
            test = q.test.encode()
            found = [s for s in found if subject_matches(s.subject.encode(), test)]
        found = sorted(found, key=lambda s: (s.account, s.subject, s.cid, s.sid))
        out.total = len(found)
        out.subscriptions_list = [
            _sub_detail(s, True) for s in found[q.offset : q.offset + q.limit]
        ]
    return out
