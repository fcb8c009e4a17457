"""Options: every setting of a broker, validated once in the supervisor.

Children receive the msgspec-encoded Options and never re-read a config file. Field
names are nats-server's config keys. Durations are seconds (floats).
"""

from __future__ import annotations

import os
import tempfile

import msgspec

from shardbroker import const


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


class User(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `authorization { users: [...] }`: a user name with a password (one
    starting with `$2a$`, `$2b$`, `$2x$` or `$2y$` is a bcrypt hash), or an NKEY user
    (`nkey: U...`, who logs in by signing the INFO nonce). None: full rights, unless
    the block has `default_permissions`."""

    user: str = ""
    password: str = ""
    nkey: str = ""
    permissions: Permissions | None = None


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


class Options(msgspec.Struct, frozen=True, kw_only=True):
    host: str = const.DEFAULT_HOST
    port: int = const.DEFAULT_PORT
    server_name: str = ""
    pid_file: str = ""
    ports_file_dir: str = ""
    log_file: str = ""
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    # 0 means one worker per usable core.
    workers: int = 0

    max_payload: int = const.MAX_PAYLOAD
    max_pending: int = const.MAX_PENDING
    max_control_line: int = const.MAX_CONTROL_LINE
    max_connections: int = const.MAX_CONNECTIONS
    max_subscriptions: int = const.MAX_SUBSCRIPTIONS
    ping_interval: float = const.PING_INTERVAL
    ping_max: int = const.PING_MAX
    write_deadline: float = const.WRITE_DEADLINE
    # Bytes of each shared-memory ring between two shards; 0 sizes them from max_payload.
    ring_size: int = 0

    # None: no authentication configured, every client gets in.
    authorization: Authorization | None = None
    # A configured user that clients presenting no credentials are logged in as.
    no_auth_user: str = ""

    # JetStream, served by the storage shard when enabled (`-js`, `jetstream {}`).
    jetstream: bool = False
    # The data directory; like nats-server, "jetstream" is appended to it. Empty: a
    # directory under the system temporary directory.
    store_dir: str = ""
    # Byte budgets for all memory / file streams together; -1: no limit.
    max_memory_store: int = -1
    max_file_store: int = -1
    jetstream_domain: str = ""
    # Seconds between fsyncs of the stores; sync_always fsyncs before every PubAck.
    sync_interval: float = const.JS_SYNC_INTERVAL
    sync_always: bool = False

    # None: plain TCP.
    tls: TLSConfig | None = None

    # Lame duck mode (SIGUSR2, `shardbroker ldm`): stop accepting, send every client an
    # INFO with ldm:true, wait the grace period, then close the clients spread over the
    # rest of the duration, and exit.
    lame_duck_duration: float = const.LAME_DUCK_DURATION
    lame_duck_grace_period: float = const.LAME_DUCK_GRACE_PERIOD

    # Not in nats-server. Seconds a worker's event loop may go without writing its
    # heartbeat (every tick, 0.1 s) before the supervisor kills it with SIGKILL and
    # starts a new one; 0 turns the check off.
    worker_heartbeat_timeout: float = const.WORKER_HEARTBEAT_TIMEOUT
    # Not in nats-server. When clients are unevenly spread over the workers (after a
    # worker restart sent everybody to the survivors), ask crowded workers to close a
    # share of their clients, which reconnect and land on the others. Off by default.
    rebalance: bool = False
    rebalance_interval: float = const.REBALANCE_INTERVAL

    # HTTP monitoring, served by the supervisor (`-m`, `http_port`, `http: host:port`).
    # 0: off; -1: a free port. An empty host means the client `host`.
    http_host: str = ""
    http_port: int = 0
    http_base_path: str = ""


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


class OptionsError(ValueError):
    """An option value that cannot be used; the message says which and why."""


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
    return opts


def _validate_operations(opts: Options) -> None:
    """Lame duck (nats-server's texts), liveness and rebalancing."""
    if opts.lame_duck_duration < const.LAME_DUCK_DURATION_MIN:
        raise OptionsError(
            f"invalid lame_duck_duration of {_go_duration(opts.lame_duck_duration)}, "
            f"minimum is {const.LAME_DUCK_DURATION_MIN:.0f} seconds"
        )
    if opts.lame_duck_grace_period < 0:
        raise OptionsError("invalid lame_duck_grace_period, needs to be positive")
    if opts.lame_duck_grace_period >= opts.lame_duck_duration:
        raise OptionsError(
            f"lame duck grace period ({_go_duration(opts.lame_duck_grace_period)}) should be "
            f"strictly lower than lame duck duration ({_go_duration(opts.lame_duck_duration)})"
        )
    if opts.worker_heartbeat_timeout < 0:
        raise OptionsError("worker_heartbeat_timeout must not be negative (0 turns it off)")
    if 0 < opts.worker_heartbeat_timeout < 1.0:
        # Ten ticks: a busy loop must not be mistaken for a stuck one.
        raise OptionsError("worker_heartbeat_timeout must be at least 1s (or 0: off)")
    if opts.rebalance_interval <= 0:
        raise OptionsError("rebalance_interval must be positive")


def _go_duration(seconds: float) -> str:
    """5.0 -> "5s", 90.0 -> "1m30s": how nats-server prints a duration."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if rest else f"{minutes}m0s"


def _validate_jetstream(opts: Options) -> None:
    if opts.sync_interval <= 0:
        raise OptionsError("jetstream sync_interval must be positive, or \"always\"")
    for name in ("max_memory_store", "max_file_store"):
        value = getattr(opts, name)
        if value < -1 or value == 0:
            raise OptionsError(f"jetstream {name} must be positive, or -1 for no limit")
    domain = opts.jetstream_domain
    if domain and (not domain.replace("-", "").replace("_", "").isalnum()):
        raise OptionsError(f"jetstream domain {domain!r} may only hold letters, digits, - and _")


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


def _validate_auth(opts: Options) -> None:
    """nats-server's cross-checks of the authorization options (same texts)."""
    auth = opts.authorization
    if auth is not None:
        if (auth.user or auth.password) and auth.token:
            raise OptionsError("Cannot have a user/pass and token")
        if auth.users is not None:
            if auth.user:
                raise OptionsError("Can not have a single user/pass and a users array")
            if auth.token:
                raise OptionsError("Can not have a token and a users array")
            seen: set[str] = set()
            for user in auth.users:
                if user.nkey:
                    if user.user or user.password:
                        raise OptionsError(
                            f'Nkey "{user.nkey}" can not have a user name or a password'
                        )
                    if user.nkey in seen:
                        raise OptionsError(f'Duplicate nkey "{user.nkey}" detected')
                    seen.add(user.nkey)
                    continue
                if not user.user:
                    raise OptionsError("a user in the users array has no user name")
                if user.user in seen:
                    raise OptionsError(f'Duplicate user "{user.user}" detected')
                seen.add(user.user)
        if auth.timeout <= 0:
            raise OptionsError("authorization timeout must be positive")
    if opts.no_auth_user:
        users = auth.users if auth is not None else None
        if users is None:
            raise OptionsError(
                f'no_auth_user: "{opts.no_auth_user}" present, but users/nkeys are not defined'
            )
        if not any(opts.no_auth_user in (user.user, user.nkey) for user in users):
            raise OptionsError(
                f'no_auth_user: "{opts.no_auth_user}" not present as user or nkey in '
                "authorization block or account configuration"
            )


def http_host(opts: Options) -> str:
    """Where the monitoring port listens: `http`'s host, else the client host."""
    return opts.http_host or opts.host


def auth_required(opts: Options) -> bool:
    """Whether clients must authenticate (INFO `auth_required` before no_auth_user)."""
    auth = opts.authorization
    return auth is not None and bool(auth.token or auth.user or auth.users is not None)


def encode(opts: Options) -> bytes:
    return msgspec.msgpack.encode(opts)


def decode(data: bytes) -> Options:
    return msgspec.msgpack.decode(data, type=Options)
