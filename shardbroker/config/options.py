"""Options: every setting of a broker, validated once in the supervisor.

Children receive the msgspec-encoded Options and never re-read a config file. Field
names are nats-server's config keys. Durations are seconds (floats).

Each Options field is declared once, with its Setting beside it: config file keys and
aliases, serve's flags, nats-server's Go name, reload kind and help. merge.py (keys),
cli.py (flags, help, README table) and reload.py (what may change, names in refusals)
derive theirs from DECLARATIONS; nothing keeps a list of its own.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple, get_args, get_origin, get_type_hints

import msgspec

from shardbroker import const
from shardbroker.config.value import Converter, duration_string, number, tags
from shardbroker.gofmt.duration import go_duration_seconds


class SubjectPermission(msgspec.Struct, frozen=True, kw_only=True):
    """Allow and deny lists of one direction (publish or subscribe).

    None: no such list (everything allowed / nothing denied). An empty allow tuple
    denies everything; only `allow_responses` creates one (a config file's empty list
    reads as None, as in nats-server). Subscribe entries may be `"<subject> <queue>"`.
    """

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None


class ResponsePermission(msgspec.Struct, frozen=True, kw_only=True):
    """`allow_responses`: publish to the reply subject of a received request, at most
    `max_msgs` times within `expires` seconds (a negative value: no limit)."""

    max_msgs: int = const.DEFAULT_ALLOW_RESPONSE_MAX_MSGS
    expires: float = const.DEFAULT_ALLOW_RESPONSE_EXPIRATION


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """A user's `permissions {}` (or the `default_permissions` of its users list)."""

    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    allow_responses: ResponsePermission | None = None


RateLimitMode = Literal["slow", "reject"]


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """A `rate_limit {}` block (shardbroker's extension; config/rate_limit.py reads it):
    how fast a publisher may go, in messages and in payload bytes (headers included) per
    second (0: no limit of that kind), with a burst of each (0: a tenth of a second's
    worth, at least one message). Past it a publisher is slowed (`slow`: its socket is
    not read until tokens return) or its publishes are refused (`reject`)."""

    msgs_per_sec: float = 0.0
    bytes_per_sec: float = 0.0
    burst_msgs: int = 0
    burst_bytes: int = 0
    mode: RateLimitMode = "slow"


class User(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `authorization { users: [...] }`: a user name with a password (one
    starting with `$2a$`, `$2b$`, `$2x$` or `$2y$` is a bcrypt hash), or an NKEY user
    (`nkey: U...`, who logs in by signing the INFO nonce). None: full rights, unless
    the block has `default_permissions`."""

    user: str = ""
    password: str = ""
    nkey: str = ""
    permissions: Permissions | None = None
    # The user's publish budget, shared by all its connections broker-wide.
    rate_limit: RateLimit | None = None


class AuthCallout(msgspec.Struct, frozen=True, kw_only=True):
    """`authorization { auth_callout {} }`: clients are authorized by an external
    service (accounts-and-security.md §7). `issuer` signs its answers; `auth_users`
    (the service's own) bypass it; requests go to `account`; with `xkey` they are
    sealed for the service; `allowed_accounts` limits which accounts' users it decides
    on (empty: all)."""

    issuer: str
    account: str = const.GLOBAL_ACCOUNT.decode()
    auth_users: tuple[str, ...] = ()
    xkey: str = ""
    allowed_accounts: tuple[str, ...] = ()


class Authorization(msgspec.Struct, frozen=True, kw_only=True):
    """The `authorization {}` block (and --auth/--user/--pass). A token, a single
    user, or a users list; never more than one of them (validate)."""

    token: str = ""
    user: str = ""
    password: str = ""
    users: tuple[User, ...] | None = None
    # For the users (and NKEY users) of `users` that have no permissions of their own.
    default_permissions: Permissions | None = None
    # Seconds a client has to send CONNECT once it got INFO.
    timeout: float = const.AUTH_TIMEOUT
    callout: AuthCallout | None = None


ResponseType = Literal["singleton", "stream", "chunked"]


class ServiceLatency(msgspec.Struct, frozen=True, kw_only=True):
    """`latency` of a service export: where its metrics go, for what share of requests
    (1..100 percent; 0: the requests whose trace headers ask for sampling)."""

    subject: str
    sampling: int = 100


class Export(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an account's `exports`: a stream (messages flow to importers) or a
    service (importers' requests reach this account's responders)."""

    service: bool
    subject: str
    # Accounts allowed to import it; None: public.
    accounts: tuple[str, ...] | None = None
    # Services only.
    response_type: ResponseType = "singleton"
    response_threshold: float = const.DEFAULT_RESPONSE_THRESHOLD
    latency: ServiceLatency | None = None
    # The token of the subject that must name the importing account (1-based; 0: none).
    account_token_position: int = 0


class Import(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an account's `imports`: `subject` of `account`'s export, seen here
    under `to` (default: the same subject) or, for streams, under `prefix.` + subject."""

    service: bool
    account: str
    subject: str
    to: str = ""
    prefix: str = ""
    # Services only: the exporter sees the requester's full client info.
    share: bool = False


class AccountLimits(msgspec.Struct, frozen=True, kw_only=True):
    """An account's `limits {}` (-1: no limit)."""

    max_connections: int = -1
    max_subscriptions: int = -1
    max_payload: int = -1
    max_leafnodes: int = -1
    # The limits of an account JWT, where max_subscriptions 0 allows no subscription at
    # all (in a config file it means no limit).
    from_jwt: bool = False


class MapDestination(msgspec.Struct, frozen=True, kw_only=True):
    """One destination of a subject mapping: where `weight` percent of the messages go."""

    subject: str
    weight: int = 100
    # Used only by a server of that cluster (nats-server); "" for every server.
    cluster: str = ""


class SubjectMapping(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `mappings {}`: a published subject matching `source` is rewritten to
    one of the destinations (protocol/transform.py compiles and applies them)."""

    source: str
    destinations: tuple[MapDestination, ...]


class AccountJetStream(msgspec.Struct, frozen=True, kw_only=True):
    """An account's `jetstream` (enabled, or a map of limits): nats-server's
    JetStreamAccountLimits, -1 meaning no limit."""

    max_memory: int = -1
    max_store: int = -1
    max_streams: int = -1
    max_consumers: int = -1
    max_ack_pending: int = -1
    memory_max_stream_bytes: int = -1
    store_max_stream_bytes: int = -1
    max_bytes_required: bool = False


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """One account of the `accounts {}` block: its own subject namespace, its users,
    and what it shares with other accounts."""

    name: str
    users: tuple[User, ...] = ()
    # For its users that have no permissions of their own.
    default_permissions: Permissions | None = None
    exports: tuple[Export, ...] = ()
    imports: tuple[Import, ...] = ()
    limits: AccountLimits = AccountLimits()
    # `mappings {}` (alias `maps`), in the file's order.
    mappings: tuple[SubjectMapping, ...] = ()
    # JetStream for this account (None: not enabled), with its limits.
    jetstream: AccountJetStream | None = None
    # The account's publish budget, shared by all its connections broker-wide.
    rate_limit: RateLimit | None = None


class ResolverStore(msgspec.Struct, frozen=True, kw_only=True):
    """Where the nats-based account resolver (`resolver { type: full|cache, dir }`)
    keeps account JWTs: one `<account key>.jwt` file each under `dir`."""

    dir: str
    # `full` keeps every account pushed to it; `cache` (a cache of another server's
    # full resolver) keeps at most `limit`, the least recently used going first.
    cache: bool = False
    # $SYS.REQ.CLAIMS.DELETE is refused unless allowed; deleted files are renamed to
    # `<key>.jwt.deleted` unless hard_delete.
    allow_delete: bool = False
    hard_delete: bool = False
    limit: int = 0  # 0: no limit
    # Seconds between syncs with the other servers of a cluster (none in one broker).
    interval: float = 120.0
    ttl: float = 0.0
    timeout: float = 1.9


class TLSConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The `tls {}` block of the client port (or --tls, --tlscert, --tlskey, --tlscacert,
    --tlsverify). Clients must upgrade right after INFO, or, with `handshake_first`,
    start with the TLS handshake before any INFO."""

    cert_file: str = ""
    key_file: str = ""
    # CA certificates for verifying client certificates (with `verify`).
    ca_file: str = ""
    # Require a client certificate signed by ca_file: INFO `tls_verify`.
    verify: bool = False
    timeout: float = const.TLS_TIMEOUT
    handshake_first: bool = False
    # Lowest protocol version accepted, "1.2" or "1.3".
    min_version: str = "1.2"


class WebsocketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The `websocket {}` block: a listener for NATS clients over websockets (browsers,
    nats.ws), on every worker like the client port. Port 0: no listener; -1: a free one.
    `tls` makes it `wss://`; without it `no_tls` must say plain `ws://` is meant.
    `user`/`password`/`token`/`no_auth_user` (the block's `authorization {}` and its own
    `no_auth_user`) replace the server-wide single user or token for websocket clients;
    the `*_cookie` names take CONNECT credentials a browser cannot set from the upgrade
    request's cookies. `headers` go into every 101 answer, in the file's order."""

    host: str = const.DEFAULT_HOST
    port: int = 0
    advertise: str = ""
    no_tls: bool = False
    tls: TLSConfig | None = None
    compression: bool = False
    same_origin: bool = False
    allowed_origins: tuple[str, ...] = ()
    # Seconds the TLS handshake and the upgrade request may take (0: no limit).
    handshake_timeout: float = 0.0
    user: str = ""
    password: str = ""
    token: str = ""
    # The authorization timeout of websocket clients (0: the server's).
    auth_timeout: float = 0.0
    no_auth_user: str = ""
    jwt_cookie: str = ""
    user_cookie: str = ""
    pass_cookie: str = ""
    token_cookie: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    # Seconds between server PINGs to websocket clients (0: the server's ping_interval).
    ping_interval: float = 0.0

    @property
    def auth_override(self) -> bool:
        """The block names its own credentials: they replace the server's single user
        or token for websocket clients (nats-server's authOverride)."""
        return bool(self.user or self.token or self.no_auth_user)


# -- one declaration per setting ------------------------------------------------------

ChangeKind = Literal["logging", "files", "limits", "auth", "tls", "jetstream"]


class OptionsError(ValueError):
    """An option value that cannot be used; the message says which and why."""


class Setting(msgspec.Struct, frozen=True, kw_only=True):
    """What an Options field is besides its type and default, written beside it as
    ``Annotated[type, Setting(...)]``. Everything else derives from it: the config
    file keys merge.py accepts, the flags of `shardbroker serve` and their help (and the
    README's flag table), and which reloads config/reload.py accepts and how it names
    the option when it refuses one."""

    # One line for --help and the docs.
    help: str
    # nats-server's Go field name ("MaxConn"), for "config reload not supported for X";
    # shardbroker's own options get names of the same form.
    go: str
    # Config file keys, nats-server's name first, then its aliases (any case in a file).
    # "jetstream.domain" is the key `domain` inside the `jetstream {}` block.
    keys: tuple[str, ...] = ()
    # Flags of `shardbroker serve` ("-p", "--port"); none: not settable on the command line.
    flags: tuple[str, ...] = ()
    # The kind of change a reload of it is; None: a change refuses the reload (the safe
    # default, and nats-server's: "every other option not listed").
    reload: ChangeKind | None = None
    # The value form in a config file (config/value.py); None: by the field's type.
    convert: Converter | None = None
    # The flag takes text, turned into the value by this; None: click converts by type.
    from_flag: Callable[[str], Any] | None = None
    # With from_flag: the default shown for the flag.
    flag_default: str = ""


class Declaration(NamedTuple):
    """One Options field with its Setting: what the derived tables are built from."""

    name: str
    type: Any  # the field's type, without the Setting
    default: Any
    setting: Setting


def parse_workers(value: str) -> int:
    """`auto` (0: one per usable core) or a positive count."""
    if value == "auto":
        return 0
    if not value.isdigit() or int(value) < 1:
        raise OptionsError(
            f"--workers takes 'auto' or a count of at least one worker, not {value!r}"
        )
    return int(value)


def _file_max_connections(value: Any) -> int:
    """nats-server stores max_connections 0 from a file as -1: no client gets in."""
    count = number(value)
    return -1 if count == 0 else count


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of a broker. Each field declares its Setting; a field without one
    makes `declarations` (run at import) refuse the module."""

    # fmt: off
    host: Annotated[str, Setting(
        keys=("host", "net"), flags=("-a", "--addr", "--net"), go="Host",
        help="Bind to host address.",
    )] = const.DEFAULT_HOST
    port: Annotated[int, Setting(
        keys=("port",), flags=("-p", "--port"), go="Port",
        help="Client port (-1 picks a free one).",
    )] = const.DEFAULT_PORT
    server_name: Annotated[str, Setting(
        keys=("server_name",), flags=("-n", "--name", "--server_name"), go="ServerName",
        help="Server name (default: the server id).",
    )] = ""
    # Lower case, without duplicates (nats-server's TagList): /varz `tags`, $SYS events.
    server_tags: Annotated[tuple[str, ...], Setting(
        keys=("server_tags",), convert=tags, go="Tags",
        help="Tags of this server, shown in /varz and in $SYS server events.",
    )] = ()
    pid_file: Annotated[str, Setting(
        keys=("pid_file",), flags=("-P", "--pid"), go="PidFile", reload="files",
        help="File to write the supervisor's pid to.",
    )] = ""
    ports_file_dir: Annotated[str, Setting(
        keys=("ports_file_dir",), flags=("--ports_file_dir",), go="PortsFileDir",
        reload="files", help="Write a ports file into this directory.",
    )] = ""
    log_file: Annotated[str, Setting(
        keys=("log_file",), flags=("-l", "--log"), go="LogFile", reload="logging",
        help="File to redirect log output to.",
    )] = ""
    debug: Annotated[bool, Setting(
        keys=("debug",), flags=("-D", "--debug"), go="Debug", reload="logging",
        help="Enable debug output.",
    )] = False
    trace: Annotated[bool, Setting(
        keys=("trace",), flags=("-V", "--trace"), go="Trace", reload="logging",
        help="Trace the raw protocol.",
    )] = False
    logtime: Annotated[bool, Setting(
        keys=("logtime",), go="Logtime", reload="logging",
        help="Timestamp log lines.",
    )] = True
    # 0 means one worker per usable core.
    workers: Annotated[int, Setting(
        flags=("--workers",), from_flag=parse_workers, flag_default="auto", go="Workers",
        help="Worker processes: a number or 'auto' (one per core).",
    )] = 0

    max_payload: Annotated[int, Setting(
        keys=("max_payload",), flags=("--max_payload",), go="MaxPayload", reload="limits",
        help="Largest message payload in bytes.",
    )] = const.MAX_PAYLOAD
    max_pending: Annotated[int, Setting(
        keys=("max_pending",), flags=("--max_pending",), go="MaxPending",
        help="Bytes pending for a client before it is a slow consumer.",
    )] = const.MAX_PENDING
    max_control_line: Annotated[int, Setting(
        keys=("max_control_line",), flags=("--max_control_line",), go="MaxControlLine",
        reload="limits", help="Longest protocol control line.",
    )] = const.MAX_CONTROL_LINE
    max_connections: Annotated[int, Setting(
        keys=("max_connections", "max_conn"), convert=_file_max_connections,
        flags=("--max_connections",), go="MaxConn", reload="limits",
        help="Most client connections broker-wide.",
    )] = const.MAX_CONNECTIONS
    max_subscriptions: Annotated[int, Setting(
        keys=("max_subscriptions", "max_subs"), flags=("--max_subscriptions",),
        go="MaxSubs", help="Most subscriptions per connection (0: no limit).",
    )] = const.MAX_SUBSCRIPTIONS
    ping_interval: Annotated[float, Setting(
        keys=("ping_interval",), flags=("--ping_interval",), go="PingInterval",
        reload="limits", help="Seconds between server PINGs to idle clients.",
    )] = const.PING_INTERVAL
    ping_max: Annotated[int, Setting(
        keys=("ping_max",), flags=("--ping_max",), go="MaxPingsOut", reload="limits",
        help="Unanswered PINGs before a connection is stale.",
    )] = const.PING_MAX
    write_deadline: Annotated[float, Setting(
        keys=("write_deadline",), flags=("--write_deadline",), go="WriteDeadline",
        reload="limits",
        help="Seconds a write may stay blocked before the client is a slow consumer.",
    )] = const.WRITE_DEADLINE
    # 0 sizes the rings from max_payload (see ring_size()).
    ring_size: Annotated[int, Setting(
        flags=("--ring_size",), go="RingSize",
        help="Bytes per shared-memory ring between two shards (0: automatic).",
    )] = 0

    # None: no authentication configured, every client gets in.
    authorization: Annotated[Authorization | None, Setting(
        keys=("authorization",), go="Authorization", reload="auth",
        help="The authorization {} block: a token, a user, or a users list.",
    )] = None
    no_auth_user: Annotated[str, Setting(
        keys=("no_auth_user",), go="NoAuthUser", reload="auth",
        help="A configured user that clients presenting no credentials are logged in as.",
    )] = ""

    # Accounts besides the global one ($G) and the system account; a user belongs to the
    # account that lists it (users of `authorization` belong to $G).
    accounts: Annotated[tuple[Account, ...], Setting(
        go="Accounts", reload="auth",
        help="The accounts {} block: isolated subject namespaces with their users.",
    )] = ()
    # The top-level `mappings {}` (alias `maps`): the global account's ($G).
    mappings: Annotated[tuple[SubjectMapping, ...], Setting(
        go="Mappings", reload="auth",
        help="The mappings {} block: subject mappings of the global account.",
    )] = ()
    system_account: Annotated[str, Setting(
        keys=("system_account", "system"), go="SystemAccount",
        help="The account that receives server events and may ask the server requests.",
    )] = const.SYSTEM_ACCOUNT
    no_system_account: Annotated[bool, Setting(
        keys=("no_system_account", "no_system", "no_sys_acc"), go="NoSystemAccount",
        help="Run without a system account.",
    )] = False

    # Operator mode: operator JWTs (or trusted operator keys), and the MEMORY resolver's
    # preloaded account JWTs, which become `accounts` (config/operator.py).
    operators: Annotated[tuple[str, ...], Setting(
        go="TrustedOperators", help="Operator JWTs (the `operator` key: a JWT or a file).",
    )] = ()
    trusted_keys: Annotated[tuple[str, ...], Setting(
        go="TrustedKeys", help="Public operator keys trusted to sign account JWTs.",
    )] = ()
    resolver: Annotated[str, Setting(
        go="AccountResolver",
        help="The account resolver of operator mode: MEMORY, full or cache.",
    )] = ""
    resolver_store: Annotated[ResolverStore | None, Setting(
        go="AccountResolverDir", help="The directory of the full or cache resolver.",
    )] = None
    resolver_preload: Annotated[tuple[tuple[str, str], ...], Setting(
        go="ResolverPreload", help="Account public key and JWT, for the MEMORY resolver.",
    )] = ()
    # The account JWTs in effect, by account key: the preloaded ones, those in the
    # resolver's directory, and those pushed on $SYS.REQ.CLAIMS.UPDATE since (the
    # supervisor replaces them, as a reload does). `accounts` derives from them.
    account_jwts: Annotated[tuple[tuple[str, str], ...], Setting(
        go="AccountClaims", reload="auth",
        help="The account JWTs in effect (operator mode).",
    )] = ()
    resolver_pinned_accounts: Annotated[tuple[str, ...], Setting(
        go="ResolverPinnedAccounts",
        help="The only accounts (with the system account) whose users may log in.",
    )] = ()

    # JetStream, served by the storage shard when enabled.
    jetstream: Annotated[bool, Setting(
        keys=("jetstream", "jetstream.enabled"), flags=("-js", "--jetstream"),
        go="JetStream", help="Enable JetStream (starts the storage process).",
    )] = False
    # Empty: a directory under the system temporary directory.
    store_dir: Annotated[str, Setting(
        keys=("store_dir", "store", "storedir",
              "jetstream.store_dir", "jetstream.store", "jetstream.storedir"),
        flags=("-sd", "--store_dir"), go="StoreDir",
        help='JetStream data directory ("jetstream" is appended).',
    )] = ""
    max_memory_store: Annotated[int, Setting(
        keys=("jetstream.max_memory_store", "jetstream.max_mem_store", "jetstream.max_mem"),
        go="JetStreamMaxMemory", reload="jetstream",
        help="Bytes for all memory streams together (-1: no limit).",
    )] = -1
    max_file_store: Annotated[int, Setting(
        keys=("jetstream.max_file_store", "jetstream.max_file"),
        go="JetStreamMaxStore", reload="jetstream",
        help="Bytes for all file streams together (-1: no limit).",
    )] = -1
    jetstream_domain: Annotated[str, Setting(
        keys=("jetstream.domain",), go="JetStreamDomain",
        help="JetStream domain: the API also answers on $JS.<domain>.API.>.",
    )] = ""
    # `sync_interval: always` in the file sets sync_always instead (merge.py).
    sync_interval: Annotated[float, Setting(
        keys=("jetstream.sync_interval",), go="SyncInterval",
        help="Seconds between fsyncs of the stores.",
    )] = const.JS_SYNC_INTERVAL
    sync_always: Annotated[bool, Setting(
        go="SyncAlways", help="Fsync before every PubAck (jetstream { sync_interval: always }).",
    )] = False

    # Not in nats-server: the publish budget of each connection whose user has none of
    # its own (config/rate_limit.py).
    rate_limit: Annotated[RateLimit | None, Setting(
        keys=("rate_limit",), go="RateLimit", reload="limits",
        help="The rate_limit {} block: each connection's default publish rate limit.",
    )] = None

    # None: plain TCP.
    tls: Annotated[TLSConfig | None, Setting(
        keys=("tls",), go="TLSConfig", reload="tls",
        help="The tls {} block of the client port.",
    )] = None
    # None: no websocket listener (nor with port 0).
    websocket: Annotated[WebsocketConfig | None, Setting(
        keys=("websocket",), go="Websocket",
        help="The websocket {} block: a listener for NATS clients over websockets.",
    )] = None

    # Lame duck mode (SIGUSR2, `shardbroker ldm`): stop accepting, send every client an
    # INFO with ldm:true, wait the grace period, then close the clients spread over the
    # rest of the duration, and exit.
    lame_duck_duration: Annotated[float, Setting(
        keys=("lame_duck_duration",), convert=duration_string, go="LameDuckDuration",
        help="Seconds over which lame duck mode closes the clients.",
    )] = const.LAME_DUCK_DURATION
    lame_duck_grace_period: Annotated[float, Setting(
        keys=("lame_duck_grace_period",), convert=duration_string, go="LameDuckGracePeriod",
        help="Seconds lame duck mode waits before it closes the first client.",
    )] = const.LAME_DUCK_GRACE_PERIOD

    # Not in nats-server. Seconds a worker's event loop may go without writing its
    # heartbeat (every tick, 0.1 s) before the supervisor kills it with SIGKILL and
    # starts a new one; 0 turns the check off.
    worker_heartbeat_timeout: Annotated[float, Setting(
        keys=("worker_heartbeat_timeout",), go="WorkerHeartbeatTimeout",
        help="Seconds a stuck worker may go without a heartbeat before it is killed (0: off).",
    )] = const.WORKER_HEARTBEAT_TIMEOUT
    # Not in nats-server. When clients are unevenly spread over the workers (after a
    # worker restart sent everybody to the survivors), ask crowded workers to close a
    # share of their clients, which reconnect and land on the others. Off by default.
    rebalance: Annotated[bool, Setting(
        keys=("rebalance",), go="Rebalance",
        help="Move clients off crowded workers.",
    )] = False
    rebalance_interval: Annotated[float, Setting(
        keys=("rebalance_interval",), go="RebalanceInterval",
        help="Seconds between rebalancing checks.",
    )] = const.REBALANCE_INTERVAL

    # HTTP monitoring, served by the supervisor (`http: host:port` sets both).
    # An empty host means the client `host`.
    http_host: Annotated[str, Setting(
        go="HTTPHost", help="HTTP monitoring host (default: the client host).",
    )] = ""
    http_port: Annotated[int, Setting(
        keys=("http_port", "monitor_port"), flags=("-m", "--http_port"), go="HTTPPort",
        help="HTTP monitoring port (-1: a free one; 0: off).",
    )] = 0
    http_base_path: Annotated[str, Setting(
        keys=("http_base_path",), go="HTTPBasePath",
        help="Path prefix of the monitoring endpoints.",
    )] = ""
    # fmt: on


def declarations(struct: type[msgspec.Struct]) -> tuple[Declaration, ...]:
    """Every field of `struct` with its Setting, in field order; TypeError naming the
    first field that has none (so a new option cannot go undeclared)."""
    hints = get_type_hints(struct, include_extras=True)
    out = []
    for field in msgspec.structs.fields(struct):
        hint = hints[field.name]
        extras = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
        setting = next((extra for extra in extras if isinstance(extra, Setting)), None)
        if setting is None:
            raise TypeError(
                f"{struct.__name__}.{field.name} has no Setting: declare its keys, flags, Go "
                "name, reload kind and help beside it (config/options.py)"
            )
        out.append(Declaration(field.name, get_args(hint)[0], field.default, setting))
    return tuple(out)


# Options' fields in order, each with its Setting.
DECLARATIONS = declarations(Options)
SETTINGS: dict[str, Setting] = {decl.name: decl.setting for decl in DECLARATIONS}


def min_ring_size(max_payload: int, max_control_line: int) -> int:
    """The smallest ring that holds two maximal frames, rounded up to a power of two."""
    need = 2 * (max_payload + max_control_line + 1024)
    size = 4096
    while size < need:
        size *= 2
    return size


def ring_size(opts: Options) -> int:
    """The ring size in effect: the configured one, or at least 4 maximal frames."""
    if opts.ring_size:
        return opts.ring_size
    return max(const.DEFAULT_RING_SIZE, 2 * min_ring_size(opts.max_payload, opts.max_control_line))


def validate(opts: Options) -> Options:
    """Check values that types alone cannot; returns opts or raises OptionsError."""
    if not (opts.port == const.RANDOM_PORT or 0 <= opts.port <= 65535):
        raise OptionsError(f"port {opts.port} is out of range (0-65535, or -1 for a free port)")
    if opts.workers < 0 or opts.workers > const.MAX_SHARDS - 2:
        raise OptionsError(f"workers must be between 1 and {const.MAX_SHARDS - 2}, or auto")
    if opts.max_payload <= 0:
        raise OptionsError("max_payload must be positive")
    if opts.max_control_line <= 0:
        raise OptionsError("max_control_line must be positive")
    if opts.max_pending <= 0:
        raise OptionsError("max_pending must be positive")
    if opts.max_payload > opts.max_pending:
        # nats-server refuses this too: one maximal message would make a slow consumer.
        raise OptionsError(
            f"max_payload ({opts.max_payload}) cannot be higher than max_pending "
            f"({opts.max_pending})"
        )
    if opts.ring_size:
        need = min_ring_size(opts.max_payload, opts.max_control_line)
        if opts.ring_size & (opts.ring_size - 1) or opts.ring_size < need:
            raise OptionsError(
                f"ring_size must be a power of two of at least {need} bytes "
                "(two maximal messages), or 0 for automatic"
            )
    if opts.ping_interval <= 0:
        raise OptionsError("ping_interval must be positive")
    if opts.write_deadline <= 0:
        raise OptionsError("write_deadline must be positive")
    if opts.ping_max < 0:
        raise OptionsError("ping_max must not be negative")
    _validate_operations(opts)
    if not (opts.http_port == const.RANDOM_PORT or 0 <= opts.http_port <= 65535):
        raise OptionsError(
            f"http_port {opts.http_port} is out of range (0-65535, or -1 for a free port)"
        )
    _validate_auth(opts)
    _validate_jetstream(opts)
    _validate_tls(opts.tls)
    _validate_websocket(opts)
    return opts


def _validate_operations(opts: Options) -> None:
    """Lame duck (nats-server's texts), liveness and rebalancing."""
    if opts.lame_duck_duration < const.LAME_DUCK_DURATION_MIN:
        raise OptionsError(
            f"invalid lame_duck_duration of {go_duration_seconds(opts.lame_duck_duration)}, "
            f"minimum is {const.LAME_DUCK_DURATION_MIN:.0f} seconds"
        )
    if opts.lame_duck_grace_period < 0:
        raise OptionsError("invalid lame_duck_grace_period, needs to be positive")
    if opts.lame_duck_grace_period >= opts.lame_duck_duration:
        grace = go_duration_seconds(opts.lame_duck_grace_period)
        duration = go_duration_seconds(opts.lame_duck_duration)
        raise OptionsError(
            f"lame duck grace period ({grace}) should be "
            f"strictly lower than lame duck duration ({duration})"
        )
    if opts.worker_heartbeat_timeout < 0:
        raise OptionsError("worker_heartbeat_timeout must not be negative (0 turns it off)")
    if 0 < opts.worker_heartbeat_timeout < 1.0:
        # Ten ticks: a busy loop must not be mistaken for a stuck one.
        raise OptionsError("worker_heartbeat_timeout must be at least 1s (or 0: off)")
    if opts.rebalance_interval <= 0:
        raise OptionsError("rebalance_interval must be positive")


def _validate_jetstream(opts: Options) -> None:
    if opts.sync_interval <= 0:
        raise OptionsError('jetstream sync_interval must be positive, or "always"')
    for name in ("max_memory_store", "max_file_store"):
        value = getattr(opts, name)
        if value < -1 or value == 0:
            raise OptionsError(f"jetstream {name} must be positive, or -1 for no limit")
    domain = opts.jetstream_domain
    if domain and (not domain.replace("-", "").replace("_", "").isalnum()):
        raise OptionsError(f"jetstream domain {domain!r} may only hold letters, digits, - and _")
    if opts.jetstream:
        _validate_account_jetstream(opts)


def _validate_account_jetstream(opts: Options) -> None:
    """nats-server's checks when it enables JetStream for the accounts (its texts): not
    in the system account, and the accounts' memory and storage limits fit the server's."""
    system = system_account_name(opts)
    memory = storage = 0
    for account in opts.accounts:
        limits = account.jetstream
        if limits is None:
            continue
        if account.name == system:
            raise OptionsError("Not allowed to enable JetStream on the system account")
        memory += max(limits.max_memory, 0)
        storage += max(limits.max_store, 0)
    why = "Can't start JetStream: Error enabling jetstream on configured accounts: "
    if 0 <= opts.max_memory_store < memory:
        raise OptionsError(why + "insufficient memory resources available (10028)")
    if 0 <= opts.max_file_store < storage:
        raise OptionsError(why + "insufficient storage resources available (10047)")


def jetstream_dir(opts: Options) -> str:
    """Where the storage shard keeps its data: store_dir + "/jetstream", as nats-server."""
    base = opts.store_dir or os.path.join(tempfile.gettempdir(), "shardbroker")
    return os.path.join(base, "jetstream")


def _validate_tls(tls: TLSConfig | None) -> None:
    """nats-server's texts; whether the files can be loaded is checked by security.tls."""
    if tls is None:
        return
    if not tls.cert_file and not tls.key_file:
        raise OptionsError("TLS Server certificate must be present and valid")
    if not tls.key_file:
        raise OptionsError("missing 'key_file' in TLS configuration")
    if not tls.cert_file:
        raise OptionsError("missing 'cert_file' in TLS configuration")
    if tls.timeout <= 0:
        raise OptionsError("tls timeout must be positive")
    if tls.min_version not in ("1.2", "1.3"):
        raise OptionsError(f"unsupported TLS version: {tls.min_version!r} (1.2 or 1.3)")


# Response headers a `websocket { headers }` block may not set (nats-server's list).
_RESERVED_WS_HEADERS = frozenset(
    ("host", "content-length", "connection", "upgrade", "nats-no-masking")
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def origin_scheme_host(text: str) -> tuple[str, str]:
    """The scheme and host of an `allowed_origins` entry, as Go's url.ParseRequestURI
    reads them (ValueError in its words); the websocket listener parses them again
    (protocol/wshandshake.py), config may not import it."""
    match = _SCHEME.match(text)
    scheme, rest = (match.group(1).lower(), text[match.end() :]) if match else ("", text)
    if not text:
        raise ValueError('parse "": empty url')
    if not rest.startswith("/"):
        raise ValueError(f'parse "{text}": invalid URI for request')
    authority = rest[2:].split("/", 1)[0] if rest.startswith("//") else ""
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    elif host.count(":") > 1:
        raise ValueError(f"address {host}: too many colons in address")
    return scheme, host


def websocket_listens(opts: Options) -> bool:
    """A websocket listener is configured (a block with a port other than 0)."""
    return opts.websocket is not None and opts.websocket.port != 0


def _validate_websocket(opts: Options) -> None:
    """nats-server's validateWebsocketOptions (its texts); nothing is checked without a
    port, as there."""
    ws = opts.websocket
    if ws is None or ws.port == 0:
        return
    if not (ws.port == const.RANDOM_PORT or 0 < ws.port <= 65535):
        raise OptionsError(f"websocket port {ws.port} is out of range (1-65535, or -1)")
    if ws.tls is None and not ws.no_tls:
        raise OptionsError("websocket requires TLS configuration")
    _validate_tls(ws.tls)
    for allowed in ws.allowed_origins:
        try:
            scheme, host = origin_scheme_host(allowed)
        except ValueError as exc:
            raise OptionsError(f"unable to parse allowed origin: {exc}") from None
        if scheme not in ("http", "https"):
            raise OptionsError(
                f'unable to parse allowed origin "{allowed}": allowed origins must be absolute '
                "URLs with http or https scheme"
            )
        if not host:
            raise OptionsError(f'unable to parse allowed origin "{allowed}": host is required')
    if ws.no_auth_user:
        _validate_no_auth_user(opts, ws.no_auth_user)
    if all_users(opts):
        if ws.user:
            raise OptionsError(
                "websocket authentication username not compatible with presence of users/nkeys"
            )
        if ws.token:
            raise OptionsError(
                "websocket authentication token not compatible with presence of users/nkeys"
            )
    if ws.jwt_cookie and not operator_mode(opts):
        raise OptionsError(
            "trusted operators or trusted keys configuration is required for JWT "
            f'authentication via cookie "{ws.jwt_cookie}"'
        )
    for name, _ in ws.headers:
        lower = name.lower()
        if lower in _RESERVED_WS_HEADERS:
            raise OptionsError(f'websocket: invalid header "{name}" not allowed')
        if lower.startswith("sec-websocket-"):
            raise OptionsError(
                f'websocket: invalid header "{name}", "Sec-WebSocket-" prefix not allowed'
            )


class AccountUser(NamedTuple):
    """A user of the users list or of an account, with the account it logs in to and
    the permissions it has (its own, else its block's defaults; None: full rights)."""

    user: User
    account: str
    permissions: Permissions | None

    @property
    def name(self) -> str:
        """What the client logs in as: the NKEY of an NKEY user, else the user name."""
        return self.user.nkey or self.user.user


GLOBAL_ACCOUNT_NAME = const.GLOBAL_ACCOUNT.decode()


def all_users(opts: Options) -> list[AccountUser]:
    """Every configured user: those of `authorization` (in $G), then each account's."""
    auth = opts.authorization
    listed: list[tuple[str, Authorization | Account]] = []
    if auth is not None and auth.users is not None:
        listed.append((GLOBAL_ACCOUNT_NAME, auth))
    listed += [(account.name, account) for account in opts.accounts]
    return [
        AccountUser(user, name, user.permissions or block.default_permissions)
        for name, block in listed
        for user in block.users or ()
    ]


def has_users(opts: Options) -> bool:
    """A users list exists: `authorization { users }` or users in any account."""
    auth = opts.authorization
    return (auth is not None and auth.users is not None) or any(a.users for a in opts.accounts)


def account_cells(opts: Options) -> dict[bytes, tuple[int, int]]:
    """Every configured account: name -> (its cell in the shared account table, its
    max_connections or -1). Cells number the accounts in name order, the same on every
    shard (mesh/account_table.py)."""
    ordered = sorted(opts.accounts, key=lambda a: a.name)
    return {
        account.name.encode(): (index, account.limits.max_connections)
        for index, account in enumerate(ordered)
    }


def account_names(opts: Options) -> list[str]:
    """The configured accounts in the order of their cells (account_cells)."""
    return [name.decode() for name in account_cells(opts)]


def operator_mode(opts: Options) -> bool:
    """Users log in with JWTs of accounts an operator signed (no users in the file)."""
    return bool(opts.operators or opts.trusted_keys)


def system_account_name(opts: Options) -> str:
    """The system account in effect ("" with no_system_account)."""
    return "" if opts.no_system_account else opts.system_account


def _validate_auth(opts: Options) -> None:
    """nats-server's cross-checks of the authorization options (same texts)."""
    auth = opts.authorization
    users = all_users(opts)
    if auth is not None:
        if (auth.user or auth.password) and auth.token:
            raise OptionsError("Cannot have a user/pass and token")
        if auth.timeout <= 0:
            raise OptionsError("authorization timeout must be positive")
    if users or (auth is not None and auth.users is not None):
        if auth is not None and auth.user:
            raise OptionsError("Can not have a single user/pass and a users array")
        if auth is not None and auth.token:
            raise OptionsError("Can not have a token and a users array")
        seen: set[str] = set()
        for entry in users:
            user = entry.user
            if user.nkey:
                if user.user or user.password:
                    raise OptionsError(f'Nkey "{user.nkey}" can not have a user name or a password')
                if user.nkey in seen:
                    raise OptionsError(f'Duplicate nkey "{user.nkey}" detected')
                seen.add(user.nkey)
                continue
            if not user.user:
                raise OptionsError("a user in the users array has no user name")
            if user.user in seen:
                raise OptionsError(f'Duplicate user "{user.user}" detected')
            seen.add(user.user)
    names = [account.name for account in opts.accounts]
    if len(set(names)) != len(names):
        raise OptionsError("an account is defined twice in the accounts block")
    if len(opts.accounts) > const.MAX_COUNTED_ACCOUNTS:
        raise OptionsError(f"at most {const.MAX_COUNTED_ACCOUNTS} accounts may be configured")
    system = system_account_name(opts)
    # Operator mode may start without the system account's JWT (nats-server uses a
    # bootstrapping system account until one is pushed).
    if (
        system
        and system != const.SYSTEM_ACCOUNT
        and system not in names
        and not operator_mode(opts)
    ):
        raise OptionsError("error resolving system account: account missing")
    if opts.no_auth_user:
        _validate_no_auth_user(opts, opts.no_auth_user)


def _validate_no_auth_user(opts: Options, name: str) -> None:
    """A no_auth_user (top-level or websocket) names a configured user (its texts)."""
    if not has_users(opts):
        raise OptionsError(f'no_auth_user: "{name}" present, but users/nkeys are not defined')
    if not any(name == entry.name for entry in all_users(opts)):
        raise OptionsError(
            f'no_auth_user: "{name}" not present as user or nkey in '
            "authorization block or account configuration"
        )


def http_host(opts: Options) -> str:
    """Where the monitoring port listens: `http`'s host, else the client host."""
    return opts.http_host or opts.host


def auth_required(opts: Options) -> bool:
    """Whether clients must authenticate (INFO `auth_required` before no_auth_user)."""
    auth = opts.authorization
    return has_users(opts) or (auth is not None and bool(auth.token or auth.user))


def encode(opts: Options) -> bytes:
    return msgspec.msgpack.encode(opts)


def decode(data: bytes) -> Options:
    return msgspec.msgpack.decode(data, type=Options)
