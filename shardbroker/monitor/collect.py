"""Monitoring data: shard figures + config -> Varz, Connz, Subsz, Jsz, Healthz, ... Structs.

Pure: no I/O, no clock, no asyncio. The supervisor (monitor/service.py) reads the
shared stats segment, process figures and worker snapshots, and hands them in as
``BrokerState``; HTTP handlers, /metrics and the $SYS responder all render what these
functions return. Field names, JSON types and the omitted-when-empty fields follow
nats-server's monitor.go (reference monitoring.md); figures are summed over shards.

Query helpers raise ``QueryError`` with nats-server's texts; the HTTP layer answers 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from shardbroker import const
from shardbroker.config.options import Options
from shardbroker.gofmt.duration import go_duration
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.mesh.snapshot import (
    WANT_CLOSED,
    WANT_SUBS,
    ConnSnapshot,
    StorageSnapshot,
    SubSnapshot,
    WorkerSnapshot,
)
from shardbroker.protocol.subjects import subject_matches

DEFAULT_LIMIT = 1024
SYSTEM_ACCOUNT = "$SYS"
GLOBAL_ACCOUNT = const.GLOBAL_ACCOUNT.decode()


class QueryError(ValueError):
    """A bad query parameter; the message is nats-server's text."""


# -- formatting ----------------------------------------------------------------------------


def uptime(ns: int) -> str:
    """nats-server's myUptime: ``[<y>y][<d>d][<h>h][<m>m]<s>s``."""
    secs = max(0, ns) // 1_000_000_000
    mins, hrs, days = secs // 60, secs // 3600, secs // 86400
    years = days // 365
    if years:
        return f"{years}y{days % 365}d{hrs % 24}h{mins % 60}m{secs % 60}s"
    if days:
        return f"{days}d{hrs % 24}h{mins % 60}m{secs % 60}s"
    if hrs:
        return f"{hrs}h{mins % 60}m{secs % 60}s"
    if mins:
        return f"{mins}m{secs % 60}s"
    return f"{secs}s"


def parse_bool(name: str, value: str) -> bool:
    """Go's strconv.ParseBool, with nats-server's error text."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise QueryError(
        f"Error decoding boolean for '{name}': strconv.ParseBool: parsing \"{value}\": "
        "invalid syntax"
    )


def parse_int(name: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise QueryError(
            f"Error decoding int for '{name}': strconv.Atoi: parsing \"{value}\": invalid syntax"
        ) from None


# -- inputs ---------------------------------------------------------------------------------


@dataclass
class ShardFigures:
    """One shard's slot, as read from the stats segment."""

    shard_id: int
    role: str  # "worker" or "storage"
    up: bool
    counters: dict[str, int]


@dataclass
class BrokerState:
    """Everything the collect functions need, gathered by the supervisor at one instant."""

    server_id: str
    opts: Options
    port: int
    http_host: str
    http_port: int
    start_ns: int
    now_ns: int
    config_load_ns: int
    shards: list[ShardFigures]
    mem: int = 0
    cpu: float = 0.0
    cores: int = 1
    http_req_stats: dict[str, int] = field(default_factory=dict)
    js_max_memory: int = 0
    js_max_storage: int = 0
    js_store_dir: str = ""
    # Listener down (lame duck, or workers not all up): /healthz says error.
    listening: bool = True

    @property
    def server_name(self) -> str:
        return self.opts.server_name or self.server_id

    def total(self, name: str, role: str = "worker") -> int:
        return sum(s.counters.get(name, 0) for s in self.shards if s.role == role)

    def storage(self) -> ShardFigures | None:
        return next((s for s in self.shards if s.role == "storage"), None)


# -- /varz -------------------------------------------------------------------------------------


class JSApiStats(msgspec.Struct):
    level: int
    total: int
    errors: int


class JSConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    max_memory: int
    max_storage: int
    store_dir: str = ""
    sync_interval: int = 0
    sync_always: bool = False
    domain: str = ""
    strict: bool = False  # always true here; a default of False keeps it in the JSON


class JSStats(msgspec.Struct):
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int
    accounts: int
    ha_assets: int
    api: JSApiStats


class JetStreamVarz(msgspec.Struct, omit_defaults=True):
    config: JSConfig | None = None
    stats: JSStats | None = None


class SlowConsumerStats(msgspec.Struct):
    clients: int = 0
    routes: int = 0
    gateways: int = 0
    leafs: int = 0


class DiskIOWaitStats(msgspec.Struct):
    waiters: int = 0
    waits: int = 0
    wait_time: int = 0
    max_wait_time: int = 0


class Empty(msgspec.Struct):
    """nats-server's `{}` for a cluster, gateway, leaf, mqtt or websocket not configured."""


class Varz(msgspec.Struct, omit_defaults=True, kw_only=True):
    server_id: str
    server_name: str
    version: str
    proto: int
    go: str
    host: str
    port: int
    auth_required: bool = False
    tls_required: bool = False
    tls_verify: bool = False
    max_connections: int
    ping_interval: int
    ping_max: int
    http_host: str
    http_port: int
    http_base_path: str
    https_port: int
    auth_timeout: float
    max_control_line: int
    max_payload: int
    max_pending: int
    cluster: Empty
    gateway: Empty
    leaf: Empty
    mqtt: Empty
    websocket: Empty
    jetstream: JetStreamVarz
    tls_timeout: float
    write_deadline: int
    start: str
    now: str
    uptime: str
    mem: int
    cores: int
    gomaxprocs: int
    cpu: float
    connections: int
    total_connections: int
    routes: int
    remotes: int
    leafnodes: int
    in_msgs: int
    in_bytes: int
    in_client_msgs: int
    in_client_bytes: int
    out_msgs: int
    out_bytes: int
    out_client_msgs: int
    out_client_bytes: int
    slow_consumers: int
    stale_connections: int
    stalled_clients: int
    subscriptions: int
    http_req_stats: dict[str, int]
    config_load_time: str
    config_digest: str
    system_account: str
    slow_consumer_stats: SlowConsumerStats
    stale_connection_stats: SlowConsumerStats
    disk_io_wait_stats: DiskIOWaitStats


def _seconds_ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _jetstream_varz(state: BrokerState) -> JetStreamVarz:
    opts = state.opts
    if not opts.jetstream:
        return JetStreamVarz()
    return JetStreamVarz(config=_js_config(state), stats=_js_stats(state))


def _js_config(state: BrokerState) -> JSConfig:
    opts = state.opts
    return JSConfig(
        max_memory=state.js_max_memory,
        max_storage=state.js_max_storage,
        store_dir=state.js_store_dir,
        sync_interval=_seconds_ns(opts.sync_interval),
        sync_always=opts.sync_always,
        domain=opts.jetstream_domain,
        strict=True,
    )


def _js_stats(state: BrokerState) -> JSStats:
    storage = state.storage()
    c = storage.counters if storage is not None else {}
    return JSStats(
        memory=c.get("js_memory", 0),
        storage=c.get("js_storage", 0),
        reserved_memory=0,
        reserved_storage=0,
        accounts=c.get("js_accounts", 0),
        ha_assets=0,
        api=JSApiStats(
            level=const.API_LEVEL, total=c.get("js_api_total", 0), errors=c.get("js_api_errors", 0)
        ),
    )


def varz(state: BrokerState) -> Varz:
    opts = state.opts
    auth = opts.authorization
    in_msgs, in_bytes = state.total("in_msgs"), state.total("in_bytes")
    out_msgs, out_bytes = state.total("out_msgs"), state.total("out_bytes")
    slow = state.total("slow_consumers")
    return Varz(
        server_id=state.server_id,
        server_name=state.server_name,
        version=const.SERVER_VERSION,
        proto=const.PROTO,
        go="python",
        host=opts.host,
        port=state.port,
        auth_required=bool(auth is not None and (auth.token or auth.user or auth.users)),
        tls_required=opts.tls is not None,
        tls_verify=opts.tls is not None and opts.tls.verify,
        max_connections=opts.max_connections,
        ping_interval=_seconds_ns(opts.ping_interval),
        ping_max=opts.ping_max,
        http_host=state.http_host,
        http_port=state.http_port,
        http_base_path=opts.http_base_path,
        https_port=0,
        auth_timeout=auth.timeout if auth is not None else const.AUTH_TIMEOUT,
        max_control_line=opts.max_control_line,
        max_payload=opts.max_payload,
        max_pending=opts.max_pending,
        cluster=Empty(),
        gateway=Empty(),
        leaf=Empty(),
        mqtt=Empty(),
        websocket=Empty(),
        jetstream=_jetstream_varz(state),
        tls_timeout=opts.tls.timeout if opts.tls is not None else const.TLS_TIMEOUT,
        write_deadline=_seconds_ns(opts.write_deadline),
        start=format_rfc3339(state.start_ns),
        now=format_rfc3339(state.now_ns),
        uptime=uptime(state.now_ns - state.start_ns),
        mem=state.mem,
        cores=state.cores,
        gomaxprocs=sum(1 for s in state.shards if s.role == "worker"),
        cpu=state.cpu,
        connections=state.total("connections"),
        total_connections=state.total("total_connections"),
        routes=0,
        remotes=0,
        leafnodes=0,
        in_msgs=in_msgs,
        in_bytes=in_bytes,
        in_client_msgs=in_msgs,
        in_client_bytes=in_bytes,
        out_msgs=out_msgs,
        out_bytes=out_bytes,
        out_client_msgs=out_msgs,
        out_client_bytes=out_bytes,
        slow_consumers=slow,
        stale_connections=0,
        stalled_clients=state.total("stalled_clients"),
        subscriptions=state.total("subscriptions"),
        http_req_stats=dict(state.http_req_stats),
        config_load_time=format_rfc3339(state.config_load_ns),
        config_digest="",
        system_account=SYSTEM_ACCOUNT,
        slow_consumer_stats=SlowConsumerStats(clients=slow),
        stale_connection_stats=SlowConsumerStats(),
        disk_io_wait_stats=DiskIOWaitStats(),
    )


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
        type="nats",
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


# -- /routez, /gatewayz, /leafz ----------------------------------------------------------------


class Routez(msgspec.Struct):
    server_id: str
    server_name: str
    now: str
    num_routes: int
    routes: list[Any]


class Gatewayz(msgspec.Struct):
    server_id: str
    now: str
    outbound_gateways: dict[str, Any]
    inbound_gateways: dict[str, Any]


class Leafz(msgspec.Struct):
    server_id: str
    now: str
    leafnodes: int
    leafs: list[Any]


def routez(state: BrokerState) -> Routez:
    return Routez(state.server_id, state.server_name, format_rfc3339(state.now_ns), 0, [])


def gatewayz(state: BrokerState) -> Gatewayz:
    return Gatewayz(state.server_id, format_rfc3339(state.now_ns), {}, {})


def leafz(state: BrokerState) -> Leafz:
    return Leafz(state.server_id, format_rfc3339(state.now_ns), 0, [])


# -- /accountz, /accstatz ----------------------------------------------------------------------


class SublistStats(msgspec.Struct):
    num_subscriptions: int
    num_cache: int
    num_inserts: int
    num_removes: int
    num_matches: int
    cache_hit_rate: float
    max_fanout: int
    avg_fanout: float


class AccountDetail(msgspec.Struct, omit_defaults=True, kw_only=True):
    account_name: str
    update_time: str
    is_system: bool = False
    expired: bool
    complete: bool
    jetstream_enabled: bool
    leafnode_connections: int
    client_connections: int
    subscriptions: int
    name_tag: str = ""
    sublist_stats: SublistStats | None = None


class Accountz(msgspec.Struct, omit_defaults=True, kw_only=True):
    server_id: str
    now: str
    system_account: str
    accounts: list[str] = msgspec.field(default_factory=list)
    account_detail: AccountDetail | None = None


def accountz(state: BrokerState, acc: str = "") -> Accountz:
    now = format_rfc3339(state.now_ns)
    if not acc:
        return Accountz(
            server_id=state.server_id,
            now=now,
            system_account=SYSTEM_ACCOUNT,
            accounts=[SYSTEM_ACCOUNT, GLOBAL_ACCOUNT],
        )
    if acc not in (SYSTEM_ACCOUNT, GLOBAL_ACCOUNT):
        raise QueryError(f"Account {acc} does not exist")
    is_global = acc == GLOBAL_ACCOUNT
    subs = state.total("subscriptions") if is_global else 0
    detail = AccountDetail(
        account_name=acc,
        update_time=format_rfc3339(state.start_ns),
        is_system=not is_global,
        expired=False,
        complete=True,
        jetstream_enabled=is_global and state.opts.jetstream,
        leafnode_connections=0,
        client_connections=state.total("connections") if is_global else 0,
        subscriptions=subs,
        name_tag=acc,
        sublist_stats=SublistStats(
            num_subscriptions=subs,
            num_cache=state.total("sub_cache") if is_global else 0,
            num_inserts=state.total("sub_inserts") if is_global else 0,
            num_removes=state.total("sub_removes") if is_global else 0,
            num_matches=0,
            cache_hit_rate=0.0,
            max_fanout=0,
            avg_fanout=0.0,
        ),
    )
    return Accountz(
        server_id=state.server_id, now=now, system_account=SYSTEM_ACCOUNT, account_detail=detail
    )


class MsgBytes(msgspec.Struct):
    msgs: int = 0
    bytes: int = 0


class DataStats(msgspec.Struct):
    msgs: int
    bytes: int
    gateways: MsgBytes
    routes: MsgBytes
    leafs: MsgBytes


class AccountStat(msgspec.Struct):
    acc: str
    name: str
    conns: int
    leafnodes: int
    total_conns: int
    num_subscriptions: int
    sent: DataStats
    received: DataStats
    slow_consumers: int


class Accstatz(msgspec.Struct):
    server_id: str
    now: str
    account_statz: list[AccountStat]


def _data_stats(msgs: int, size: int) -> DataStats:
    return DataStats(msgs, size, MsgBytes(), MsgBytes(), MsgBytes())


def accstatz(state: BrokerState, unused: bool = False) -> Accstatz:
    conns = state.total("connections")
    stats: list[AccountStat] = []
    if conns or unused:
        stats.append(
            AccountStat(
                acc=GLOBAL_ACCOUNT,
                name=GLOBAL_ACCOUNT,
                conns=conns,
                leafnodes=0,
                total_conns=state.total("total_connections"),
                num_subscriptions=state.total("subscriptions"),
                sent=_data_stats(state.total("out_msgs"), state.total("out_bytes")),
                received=_data_stats(state.total("in_msgs"), state.total("in_bytes")),
                slow_consumers=state.total("slow_consumers"),
            )
        )
    return Accstatz(state.server_id, format_rfc3339(state.now_ns), stats)


# -- /jsz ----------------------------------------------------------------------------------------


class Jsz(msgspec.Struct, omit_defaults=True, kw_only=True):
    disabled: bool = False
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int
    accounts: int
    ha_assets: int
    api: JSApiStats
    server_id: str
    now: str
    config: JSConfig | None = None
    streams: int
    consumers: int
    messages: int
    bytes: int
    account_details: list[JszAccount] | None = None
    total: int


class JszAccount(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    id: str
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int
    accounts: int
    ha_assets: int
    api: JSApiStats
    stream_detail: list[dict[str, Any]] | None = None


# What nats-server shows as an account's reservation when it has none (uint64 -1).
NO_RESERVATION = 2**64 - 1
DEFAULT_JSZ_LIMIT = 1024


@dataclass
class JszQuery:
    """/jsz options (nats-server JSzOptions): `acc`, `accounts`, `streams`, `consumers`
    (implies streams), `config`, `offset`, `limit` over the accounts."""

    acc: str = ""
    accounts: bool = False
    streams: bool = False
    consumers: bool = False
    config: bool = False
    offset: int = 0
    limit: int = DEFAULT_JSZ_LIMIT

    @classmethod
    def from_query(cls, query: dict[str, str]) -> JszQuery:
        q = cls(acc=query.get("acc", ""))
        for name in ("accounts", "streams", "consumers", "config"):
            if name in query:
                setattr(q, name, parse_bool(name, query[name]))
        if "offset" in query:
            q.offset = max(0, parse_int("offset", query["offset"]))
        if "limit" in query:
            q.limit = parse_int("limit", query["limit"])
            if q.limit <= 0:
                q.limit = DEFAULT_JSZ_LIMIT
        return q

    @property
    def details(self) -> bool:
        """Does the answer list accounts (and so need the storage shard's snapshot)?"""
        return bool(self.acc) or self.accounts or self.streams or self.consumers


def _account_details(
    state: BrokerState, q: JszQuery, snap: StorageSnapshot
) -> list[JszAccount] | None:
    accounts = [a for a in snap.accounts if not q.acc or a.name == q.acc]
    accounts = accounts[q.offset : q.offset + q.limit]
    if not accounts:
        return None
    out = []
    for account in accounts:
        streams: list[dict[str, Any]] | None = None
        if q.streams or q.consumers:
            streams = []
            for stream in account.streams:
                detail: dict[str, Any] = {
                    "name": stream.name,
                    "created": stream.created,
                    "cluster": {"leader": state.server_name},
                }
                if q.config:
                    detail["config"] = stream.config
                detail["state"] = stream.state
                if q.consumers:
                    detail["consumer_detail"] = [
                        c if q.config else {k: v for k, v in c.items() if k != "config"}
                        for c in stream.consumers
                    ]
                streams.append(detail)
        out.append(
            JszAccount(
                name=account.name, id=account.name, memory=account.memory,
                storage=account.storage, reserved_memory=NO_RESERVATION,
                reserved_storage=NO_RESERVATION, accounts=0, ha_assets=0,
                api=JSApiStats(0, account.api_total, account.api_errors),
                stream_detail=streams,
            )
        )  # fmt: skip
    return out


def jsz(state: BrokerState, q: JszQuery | None = None, snap: StorageSnapshot | None = None) -> Jsz:
    """/jsz; with `q` asking for details, `snap` is the storage shard's snapshot."""
    if not state.opts.jetstream:
        return Jsz(
            disabled=True, memory=0, storage=0, reserved_memory=0, reserved_storage=0,
            accounts=0, ha_assets=0, api=JSApiStats(0, 0, 0), server_id=state.server_id,
            now=format_rfc3339(state.now_ns), config=JSConfig(max_memory=0, max_storage=0),
            streams=0, consumers=0, messages=0, bytes=0, total=0,
        )  # fmt: skip
    stats = _js_stats(state)
    storage = state.storage()
    c = storage.counters if storage is not None else {}
    return Jsz(
        memory=stats.memory,
        storage=stats.storage,
        reserved_memory=stats.reserved_memory,
        reserved_storage=stats.reserved_storage,
        accounts=stats.accounts,
        ha_assets=0,
        api=stats.api,
        server_id=state.server_id,
        now=format_rfc3339(state.now_ns),
        config=_js_config(state),
        streams=c.get("js_streams", 0),
        consumers=c.get("js_consumers", 0),
        messages=c.get("js_messages", 0),
        bytes=c.get("js_bytes", 0),
        account_details=(
            _account_details(state, q, snap) if q is not None and q.details and snap else None
        ),
        total=stats.accounts,
    )


# -- /healthz ------------------------------------------------------------------------------------


class Healthz(msgspec.Struct, omit_defaults=True):
    status: str
    error: str = ""


def healthz(state: BrokerState, query: dict[str, str]) -> tuple[int, Healthz]:
    """(HTTP status, body), nats-server's healthz rules for a single server."""
    flags = {}
    for name in ("js-enabled-only", "js-server-only", "js-meta-only", "js-enabled", "details"):
        if name in query:
            flags[name] = parse_bool(name, query[name])
    account, stream, consumer = (query.get(k, "") for k in ("account", "stream", "consumer"))
    if stream and not account:
        return 400, Healthz("error", '"account" must not be empty when checking stream health')
    if consumer and not stream:
        return 400, Healthz("error", '"stream" must not be empty when checking consumer health')
    workers = [s for s in state.shards if s.role == "worker"]
    if not state.listening or not all(s.up for s in workers):
        return 500, Healthz("error", "failed to be ready for connections after 1ms: server")
    if flags.get("js-server-only"):
        return 200, Healthz("ok")
    if state.opts.jetstream:
        storage = state.storage()
        if storage is None or not storage.up:
            return 503, Healthz("unavailable", "JetStream has not been initialized")
    return 200, Healthz("ok")


# -- $SYS.REQ.SERVER.PING ------------------------------------------------------------------------


class ServerInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    host: str
    id: str
    domain: str = ""
    ver: str
    jetstream: bool
    flags: int
    seq: int
    time: str


class Statsz(msgspec.Struct, omit_defaults=True, kw_only=True):
    start: str
    mem: int
    cores: int
    cpu: float
    connections: int
    total_connections: int
    active_accounts: int
    subscriptions: int
    sent: MsgBytes
    received: MsgBytes
    slow_consumers: int
    active_servers: int
    gomaxprocs: int = 0


def server_info(state: BrokerState, seq: int) -> ServerInfo:
    return ServerInfo(
        name=state.server_name,
        host=state.opts.host,
        id=state.server_id,
        domain=state.opts.jetstream_domain,
        ver=const.SERVER_VERSION,
        jetstream=state.opts.jetstream,
        flags=1 if state.opts.jetstream else 0,
        seq=seq,
        time=format_rfc3339(state.now_ns),
    )


def statsz(state: BrokerState) -> Statsz:
    return Statsz(
        start=format_rfc3339(state.start_ns),
        mem=state.mem,
        cores=state.cores,
        cpu=state.cpu,
        connections=state.total("connections"),
        total_connections=state.total("total_connections"),
        active_accounts=1 if state.total("connections") else 0,
        subscriptions=state.total("subscriptions"),
        sent=MsgBytes(state.total("out_msgs"), state.total("out_bytes")),
        received=MsgBytes(state.total("in_msgs"), state.total("in_bytes")),
        slow_consumers=state.total("slow_consumers"),
        active_servers=1,
        gomaxprocs=sum(1 for s in state.shards if s.role == "worker"),
    )
