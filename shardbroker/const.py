"""Limits, defaults, exit codes and shard ids shared by every process.

Names follow nats-server where one exists (MAX_PAYLOAD, MAX_CONTROL_LINE, ...).
"""

from __future__ import annotations

from enum import IntEnum

# The version advertised in INFO. Clients parse it as semver and gate features on
# it (nats.py needs 2.x with x >= 9 for the named consumer-create API).
SERVER_VERSION = "2.10.0"
PROTO = 1
API_LEVEL = 1

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 4222
RANDOM_PORT = -1

MAX_PAYLOAD = 1024 * 1024
MAX_CONTROL_LINE = 4096
MAX_PENDING = 64 * 1024 * 1024
MAX_CONNECTIONS = 64 * 1024
MAX_SUBSCRIPTIONS = 0  # unlimited
PING_INTERVAL = 120.0  # seconds
PING_MAX = 2
FIRST_PING_INTERVAL = 2.0  # the first server PING, for RTT, comes this soon after CONNECT
WRITE_DEADLINE = 10.0
AUTH_TIMEOUT = 2.0
# A client at its subscription limit from its login (a limit of none) is told so, then
# closed this many seconds later, as nats-server does: what it sent meanwhile is answered.
MAX_SUBS_CLOSE_DELAY = 0.02
TLS_TIMEOUT = 2.0  # seconds a client has to finish the TLS handshake
# allow_responses: true means one response within two minutes.
DEFAULT_ALLOW_RESPONSE_MAX_MSGS = 1
DEFAULT_ALLOW_RESPONSE_EXPIRATION = 120.0  # seconds

GLOBAL_ACCOUNT = b"$G"
SYSTEM_ACCOUNT = "$SYS"  # the default system account's name
# Configured accounts whose connections the shared account table counts, at most.
MAX_COUNTED_ACCOUNTS = 1024
# Accounts and users with a rate limit that the shared rate table holds, at most.
MAX_RATE_KEYS = 4096
# How long a service import's stream or chunked responses may pause before the mapping goes.
DEFAULT_RESPONSE_THRESHOLD = 120.0  # seconds

# JetStream (nats-server defaults).
JS_SYNC_INTERVAL = 120.0  # seconds between fsyncs of the stores
JS_API_PREFIX = b"$JS.API."

# Shard ids: the supervisor is shard 0, workers are 1..N, the storage process follows.
SUPERVISOR_SHARD = 0
MAX_SHARDS = 64

# A client id carries its shard and the shard's generation in the high bits, so ids
# are unique broker-wide and across worker restarts without any shared counter:
#   cid = ((generation << 8 | shard_id) << CID_SHARD_SHIFT) | per-process counter
# It stays below 2**53 (JSON-safe) for the first 8192 restarts of a shard.
CID_SHARD_SHIFT = 32


def shard_of_client_id(cid: int) -> int:
    """The shard (worker) a connection with this client id lives on."""
    return (cid >> CID_SHARD_SHIFT) & 0xFF


# Exit codes are a contract between shards and the supervisor.
EXIT_OK = 0
EXIT_BOOT_FAILURE = 3  # config, port, shared memory: halt, never restart-loop

# The mesh.
DEFAULT_RING_SIZE = 4 * 1024 * 1024
TICK_INTERVAL = 0.1  # seconds between worker housekeeping ticks
READY_TIMEOUT = 20.0  # seconds the supervisor waits for all shards to report ready

# Lame duck mode (nats-server defaults; the duration may not be set below the minimum).
LAME_DUCK_DURATION = 120.0  # seconds over which clients are closed
LAME_DUCK_GRACE_PERIOD = 10.0  # seconds between the ldm INFO and the first close
LAME_DUCK_DURATION_MIN = 30.0

# Operations that nats-server has no equivalent of.
WORKER_HEARTBEAT_TIMEOUT = 5.0  # a worker whose loop misses its heartbeat this long is killed
REBALANCE_INTERVAL = 30.0  # seconds between two looks at how clients are spread


class ClosedState(IntEnum):
    """Why a connection ended: nats-server's ClosedState, names and numbers alike.

    ``str()`` gives the text /connz shows as a closed connection's ``reason``.
    """

    ClientClosed = 1
    AuthenticationTimeout = 2
    AuthenticationViolation = 3
    TLSHandshakeError = 4
    SlowConsumerPendingBytes = 5
    SlowConsumerWriteDeadline = 6
    WriteError = 7
    ReadError = 8
    ParseError = 9
    StaleConnection = 10
    ProtocolViolation = 11
    BadClientProtocolVersion = 12
    WrongPort = 13
    MaxAccountConnectionsExceeded = 14
    MaxConnectionsExceeded = 15
    MaxPayloadExceeded = 16
    MaxControlLineExceeded = 17
    MaxSubscriptionsExceeded = 18
    DuplicateRoute = 19
    RouteRemoved = 20
    ServerShutdown = 21
    AuthenticationExpired = 22
    Revocation = 25

    def __str__(self) -> str:
        return _CLOSED_REASONS[self]


_CLOSED_REASONS = {
    ClosedState.ClientClosed: "Client Closed",
    ClosedState.AuthenticationTimeout: "Authentication Timeout",
    ClosedState.AuthenticationViolation: "Authentication Failure",
    ClosedState.TLSHandshakeError: "TLS Handshake Failure",
    ClosedState.SlowConsumerPendingBytes: "Slow Consumer (Pending Bytes)",
    ClosedState.SlowConsumerWriteDeadline: "Slow Consumer (Write Deadline)",
    ClosedState.WriteError: "Write Error",
    ClosedState.ReadError: "Read Error",
    ClosedState.ParseError: "Parse Error",
    ClosedState.StaleConnection: "Stale Connection",
    ClosedState.ProtocolViolation: "Protocol Violation",
    ClosedState.BadClientProtocolVersion: "Bad Client Protocol Version",
    ClosedState.WrongPort: "Incorrect Port",
    ClosedState.MaxAccountConnectionsExceeded: "Maximum Account Connections Exceeded",
    ClosedState.MaxConnectionsExceeded: "Maximum Connections Exceeded",
    ClosedState.MaxPayloadExceeded: "Maximum Message Payload Exceeded",
    ClosedState.MaxControlLineExceeded: "Maximum Control Line Exceeded",
    ClosedState.MaxSubscriptionsExceeded: "Maximum Subscriptions Exceeded",
    ClosedState.DuplicateRoute: "Duplicate Route",
    ClosedState.RouteRemoved: "Route Removed",
    ClosedState.ServerShutdown: "Server Shutdown",
    ClosedState.AuthenticationExpired: "Authentication Expired",
    ClosedState.Revocation: "Credentials Revoked",
}
