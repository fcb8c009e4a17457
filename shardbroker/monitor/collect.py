"""Monitoring data: shard figures + config -> Varz, Healthz, Routez, Statsz ... Structs.

Pure: no I/O, no clock, no asyncio. The supervisor (monitor/service.py) reads the
shared stats segment, process figures and worker snapshots, and hands them in as
``BrokerState``; HTTP handlers, /metrics and the $SYS responder all render what these
functions return. Field names, JSON types and the omitted-when-empty fields follow
nats-server's monitor.go (reference monitoring.md); figures are summed over shards.

Query helpers raise ``QueryError`` with nats-server's texts; the HTTP layer answers 400.

This module owns the inputs (``BrokerState``, ``ShardFigures``), the query helpers and
the server-wide endpoints (/varz, /healthz, /routez, /gatewayz, /leafz, the $SYS server
ping and statsz). The per-connection endpoints are in `connz` (/connz, /subsz), the
account ones in `accountz` (/accountz, /accstatz) and JetStream's in `jsz` (/jsz); they
take the same inputs and use these helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from shardbroker import const, core
from shardbroker.config.options import Options, auth_required, system_account_name
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.mesh.rate_table import RateFigures
from shardbroker.protocol.events import EventServer as ServerInfo

DEFAULT_LIMIT = 1024
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
    # The shard process's pid, CPU percent and resident memory (0 while it is down).
    pid: int = 0
    cpu: float = 0.0
    mem: int = 0


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
    # The supervisor process's own share of mem and cpu (the rest is the shards').
    supervisor_pid: int = 0
    supervisor_mem: int = 0
    supervisor_cpu: float = 0.0
    http_req_stats: dict[str, int] = field(default_factory=dict)
    js_max_memory: int = 0
    js_max_storage: int = 0
    js_store_dir: str = ""
    # Listener down (lame duck, or workers not all up): /healthz says error.
    listening: bool = True
    # What each account's and user's rate limit did ("account:A", "user:b").
    rate_limits: dict[str, RateFigures] = field(default_factory=dict)
    websocket_port: int = 0  # the port the websocket listener has (0: none)

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


class WebsocketVarz(msgspec.Struct, omit_defaults=True, kw_only=True):
    """/varz `websocket`: the block's settings, as nats-server's WebsocketOptsVarz."""

    host: str = ""
    port: int = 0
    advertise: str = ""
    no_auth_user: str = ""
    jwt_cookie: str = ""
    handshake_timeout: int = 0  # nanoseconds
    auth_timeout: float = 0.0
    no_tls: bool = False
    same_origin: bool = False
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    compression: bool = False


class MsgBytes(msgspec.Struct):
    msgs: int = 0
    bytes: int = 0


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
    websocket: WebsocketVarz
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
    tags: tuple[str, ...] = ()
    system_account: str
    slow_consumer_stats: SlowConsumerStats
    stale_connection_stats: SlowConsumerStats
    disk_io_wait_stats: DiskIOWaitStats
    # shardbroker's own: which per-message core the workers run, "compiled" or "pure"
    # (core/__init__.py).
    message_core: str


def _seconds_ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _websocket_varz(state: BrokerState) -> WebsocketVarz:
    ws = state.opts.websocket
    if ws is None or not ws.port:
        return WebsocketVarz()
    return WebsocketVarz(
        host=ws.host,
        port=state.websocket_port or ws.port,
        advertise=ws.advertise,
        no_auth_user=ws.no_auth_user,
        jwt_cookie=ws.jwt_cookie,
        handshake_timeout=_seconds_ns(ws.handshake_timeout),
        auth_timeout=ws.auth_timeout,
        no_tls=ws.no_tls,
        same_origin=ws.same_origin,
        allowed_origins=list(ws.allowed_origins),
        compression=ws.compression,
    )


def _jetstream_varz(state: BrokerState) -> JetStreamVarz:
    opts = state.opts
    if not opts.jetstream:
        return JetStreamVarz()
    return JetStreamVarz(config=js_config(state), stats=js_stats(state))


def js_config(state: BrokerState) -> JSConfig:
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


def js_stats(state: BrokerState) -> JSStats:
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
        message_core=core.IMPLEMENTATION,
        host=opts.host,
        port=state.port,
        auth_required=auth_required(opts),
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
        websocket=_websocket_varz(state),
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
        tags=opts.server_tags,
        system_account=system_account_name(opts),
        slow_consumer_stats=SlowConsumerStats(clients=slow),
        stale_connection_stats=SlowConsumerStats(),
        disk_io_wait_stats=DiskIOWaitStats(),
    )


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
        tags=state.opts.server_tags,
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
