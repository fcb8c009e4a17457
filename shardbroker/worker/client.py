"""One client connection: the protocol handler a worker runs per socket.

Owner: a worker shard; runs on its loop and never blocks. ``data_received`` feeds the
whole read to the parser, whose callbacks are the ``process_*`` methods here; it is the
one catch site for protocol errors. Output is collected in ``out`` and written once
per read batch by the server (``flush``), never per message.

A PONG is a barrier (ARCHITECTURE "One server to the outside"): when this connection's
SUB/UNSUB produced interest frames that a peer shard has not applied yet, the PONG and
everything queued after it are held (``hold_index``) until the server sees every peer's
ring read counter pass the recorded position.

TLS: with a ``tls`` block a TLS layer sits between the socket and the connection from
``connection_made`` on (``start_tls``, after the plain INFO, or before any INFO with
``handshake_first``); the connection is counted, timed (PING, auth timeout) and parsed
only once the handshake is done. A failed handshake
closes this connection silently, as nats-server does, and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import ssl
import struct
import time
from collections import deque
from random import random
from typing import TYPE_CHECKING, Any, Protocol

from shardbroker import const
from shardbroker.config.options import Options
from shardbroker.const import ClosedState
from shardbroker.core import pub_loop
from shardbroker.core.plans import RESERVED_PUBLISH as _RESERVED_PUBLISH
from shardbroker.core.plans import RESERVED_REPLY as _RESERVED_REPLY
from shardbroker.errors import (
    ERR_ACCOUNT_EXPIRED,
    ERR_AUTH_TIMEOUT,
    ERR_AUTH_VIOLATION,
    ERR_INVALID_PROTOCOL,
    ERR_INVALID_PUBLISH_SUBJECT,
    ERR_INVALID_SUBJECT,
    ERR_INVALID_SUBSCRIPTION_LIMIT,
    ERR_MAX_ACCOUNT_CONNECTIONS,
    ERR_MAX_CONNECTIONS,
    ERR_MAX_SUBSCRIPTIONS,
    ERR_NO_RESPONDERS_REQUIRES_HEADERS,
    ERR_STALE_CONNECTION,
    ERR_USER_EXPIRED,
    ERR_USER_REVOKED,
    ProtocolError,
    err_publish_reply_violation,
    err_publish_violation,
    err_subscribe_violation,
    err_subscription_removed,
)
from shardbroker.log import TRACE
from shardbroker.protocol import frames
from shardbroker.protocol.messages import ConnectOptions, decode_connect
from shardbroker.protocol.parser import ClientParser, block_payloads
from shardbroker.protocol.subjects import (
    is_valid_literal_subject,
    is_valid_subject,
    subject_matches,
)
from shardbroker.security.auth import (
    ACCOUNT_EXPIRED,
    GONE,
    KEEP,
    REFUSED,
    REVOKED,
    Authenticator,
    Credentials,
    JWTLogin,
    reauthorize,
)
from shardbroker.security.callout import CalloutVerdict, raw_auth_user
from shardbroker.security.permissions import ResponseGrants, UserPermissions
from shardbroker.worker.callout import AuthCallouts
from shardbroker.worker.ratelimit import Budget, Limiter, RateLimits
from shardbroker.worker.responses import ServiceResponses
from shardbroker.worker.route_result import Subscription
from shardbroker.worker.router import Router

if TYPE_CHECKING:
    from shardbroker.core.plans import Output
else:
    # The output list and counters the compiled loops append to and bump as a C struct
    # (core/_plans.pyx), or the twin's (core/plans.py).
    from shardbroker.core import Output


class ClientHost(Protocol):
    """What a connection needs of the worker that serves it (worker/server.py's Server
    is the one): options, loop, security, the router, its batch and the calls back it
    makes as it connects, subscribes, pings and closes. The worker owns its clients; a
    client knows its worker only through this."""

    opts: Options
    loop: asyncio.AbstractEventLoop
    auth: Authenticator
    permissions: dict[str, UserPermissions]
    router: Router
    responses: ServiceResponses
    callouts: AuthCallouts
    rates: RateLimits
    pending: set[ClientProtocol]
    trace: bool
    ssl_context: ssl.SSLContext | None
    ssl_protocol_class: Any
    read_budget: int

    def next_client_id(self) -> int: ...
    def info_for(self, client: ClientProtocol) -> bytes: ...
    def connect_info_for(self, client: ClientProtocol) -> bytes: ...
    def admit(self, client: ClientProtocol) -> bool: ...
    def login_account(self, account: bytes) -> bool: ...
    def logout_account(self, account: bytes) -> None: ...
    def max_payload_for(self, account: bytes) -> int: ...
    def max_subs_for(self, account: bytes) -> int: ...
    def client_event(self, client: ClientProtocol, reason: ClosedState | None = None) -> bool: ...
    def tls_handshake_failed(self, client: ClientProtocol, exc: BaseException) -> None: ...
    def client_closed(self, client: ClientProtocol, reason: ClosedState) -> None: ...
    def add_subscription(self, sub: Subscription) -> None: ...
    def remove_subscription(self, sub: Subscription) -> None: ...
    def hold_pong(self, client: ClientProtocol) -> None: ...
    def flush_batch(self, publisher: ClientProtocol | None) -> None: ...
    def stall(self, client: ClientProtocol) -> None: ...
    def unstall(self, client: ClientProtocol) -> None: ...
    def defer_read(self, client: ClientProtocol, data: bytes) -> None: ...
    def resume_reading(self, client: ClientProtocol) -> None: ...
    def rate_limit_engaged(self, client: ClientProtocol, budget: Budget) -> None: ...


log = logging.getLogger("shardbroker.client")

_RESERVED_FIRST = (b"_", b"$")
_SYSTEM_PREFIX = b"$SYS."
# A response to a request whose latency is measured (worker/responses.py).
_RESPONSE_PREFIX = b"_R_."
_TRACKED = b".T"
_SYS_QUEUE = b"_sys_"
_TRACE_WIDTH = 128
# SO_LINGER on, zero seconds: close() resets the connection instead of ending it.
_LINGER_RESET = struct.pack("ii", 1, 0)
_LINGER_DEFAULT = struct.pack("ii", 0, 0)


class ClientProtocol(Output, asyncio.Protocol):
    # What /connz and $SYS events call this kind of client; websocket clients (a
    # subclass, worker/websocket.py) differ in the few hooks below marked so.
    client_type = "nats"
    websocket = False

    __slots__ = (
        "account",
        "active",
        "auth_handle",
        "awaiting_auth",
        "callout_verdict",
        "cid",
        "closed",
        "connected",
        "counted_account",
        "credentials",
        "deferred",
        "echo",
        "first_ping",
        "grants",
        "guarded",
        "headers",
        "held_input",
        "hold_index",
        "hold_targets",
        "host",
        "in_bytes",
        "in_msgs",
        "info_sent",
        "interest_changed",
        "jwt_login",
        "lang",
        "last_ns",
        "limiter",
        "max_subs",
        "name",
        "no_responders",
        "nonce",
        "parser",
        "pedantic",
        "perms",
        "ping_handle",
        "ping_sent_ns",
        "pings_out",
        "port",
        "protocol",
        "route",
        "route_block",
        "route_run",
        "rtt_ns",
        "server",
        "start_ns",
        "subs",
        "transport",
        "user",
        "verbose",
        "version",
    )

    def __init__(self, server: ClientHost) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        opts = server.opts
        self.parser = ClientParser(self, opts.max_control_line, opts.max_payload)
        self.out: list[bytes] = []
        # Input read while this turn's budget was spent, parsed on a later turn.
        self.deferred: deque[bytes] | None = None
        self.subs: dict[bytes, Subscription] = {}
        self.account = const.GLOBAL_ACCOUNT
        # The account this connection counts against (account limits) once logged in.
        self.counted_account: bytes | None = None
        self.max_subs = opts.max_subscriptions
        self.cid = 0
        self.closed = False
        self.connected = False
        # nats-server's CONNECT defaults, which also serve a client that never sends
        # CONNECT (allowed without auth): verbose, pedantic and echo are on.
        self.verbose = True
        self.pedantic = True
        self.guarded = True  # verbose or pedantic: publishes take the checked path
        self.echo = True
        self.route, self.route_run, self.route_block = server.router.routes_for(self.account)
        self.headers = False
        self.no_responders = False
        self.protocol = 0
        self.name = ""
        self.lang = ""
        self.version = ""
        self.host = ""
        self.port = 0
        self.info_sent = False
        # Monitoring (/connz): in_* count what the client published, out_* what it was
        # sent, bytes being message sizes (headers included) as in nats-server.
        self.in_msgs = 0
        self.out_msgs = 0
        self.in_bytes = 0
        self.out_bytes = 0
        self.start_ns = 0  # wall clock, set once the connection is counted
        self.last_ns = 0  # wall clock of the last read
        self.rtt_ns = 0  # from the last server PING to its PONG
        self.ping_sent_ns = 0
        self.pings_out = 0
        self.active = False
        self.first_ping = False
        self.ping_handle: asyncio.TimerHandle | None = None
        # A SUB/UNSUB since the last PING: that PING's PONG waits for the peers (barrier).
        self.interest_changed = False
        self.hold_index = -1
        self.hold_targets: dict[int, tuple[int, int]] = {}
        # Authentication configured: the first op must be a CONNECT with good credentials
        # (checked in data_received per read, never per message) within the auth timeout.
        self.awaiting_auth = self.authenticator().required
        self.auth_handle: asyncio.TimerHandle | None = None
        # 11 random bytes as 15 base64url characters, signed by NKEY users at CONNECT.
        self.nonce = (
            base64.urlsafe_b64encode(os.urandom(11)).decode().rstrip("=")
            if self.authenticator().needs_nonce
            else ""
        )
        self.user = ""
        # What CONNECT presented, kept for a reload's re-check (nats keeps c.opts too).
        self.credentials: Credentials | None = None
        # What its user JWT logged in with (operator mode).
        self.jwt_login: JWTLogin | None = None
        # What an auth callout allowed, when one logged this connection in.
        self.callout_verdict: CalloutVerdict | None = None
        # While a CONNECT is decided off the parser (bcrypt, auth callout): input that
        # still arrives (read before the socket was paused, or deferred) waits here.
        self.held_input: bytearray | None = None
        # The user's permissions (None: full rights, and no check costs anything) and,
        # with allow_responses, the reply subjects this connection may answer.
        self.perms: UserPermissions | None = None
        self.grants: ResponseGrants | None = None
        # Its publish rate limits (worker/ratelimit.py); None: not limited, no cost.
        self.limiter: Limiter | None = None

    # -- what differs for websocket clients (worker/websocket.py overrides) ----------

    def authenticator(self) -> Authenticator:
        """The authentication rules this connection meets (the worker's may change on
        reload, so they are looked up, never kept)."""
        return self.server.auth

    def ping_interval(self) -> float:
        return self.server.opts.ping_interval

    def connect_options(self, body: bytes) -> ConnectOptions:
        """A CONNECT's options."""
        return decode_connect(body)

    def close_transport(self, reason: ClosedState, abort: bool) -> None:
        """End the connection's transport (its state is already closed)."""
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()

    # -- transport callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        server = self.server
        peer = transport.get_extra_info("peername")
        if peer:
            self.host = peer[0]
            self.port = peer[1]
        self.cid = server.next_client_id()
        ctx = server.ssl_context
        if ctx is not None:
            tls = server.opts.tls
            assert tls is not None
            if not tls.handshake_first:
                transport.write(server.info_for(self))  # type: ignore[attr-defined]
            self.start_tls(transport, ctx, tls.timeout)
            return
        transport.write(server.info_for(self))  # type: ignore[attr-defined]
        self.connection_ready()

    def start_tls(self, raw: asyncio.BaseTransport, ctx: ssl.SSLContext, timeout: float) -> None:
        """Put a TLS layer between the socket and this protocol, now.

        What ``loop.start_tls`` does, but synchronously from ``connection_made``: the
        loop starts reading right after ``connection_made`` returns, and the client's
        first bytes (its ClientHello) must reach the TLS layer, not our parser, which a
        coroutine started later could not guarantee. The handshake's outcome arrives
        in ``tls_handshake_done``; until then nothing is parsed, counted or timed.

        A failed handshake resets the connection (SO_LINGER 0 until it succeeds): the
        TLS layer closes without sending its alert, and a client that believed the
        handshake done (TLS 1.3 checks the client certificate after that) would read a
        clean EOF as no answer at all, where a reset is an unmistakable error.
        """
        _set_linger(raw, _LINGER_RESET)
        server = self.server
        waiter = server.loop.create_future()
        tls_protocol = server.ssl_protocol_class(
            server.loop,
            self,
            ctx,
            waiter,
            server_side=True,
            call_connection_made=False,
            ssl_handshake_timeout=timeout,
        )
        raw.set_protocol(tls_protocol)
        tls_protocol.connection_made(raw)
        self.transport = tls_protocol._get_app_transport()
        waiter.add_done_callback(lambda done: self.tls_handshake_done(raw, done))

    def tls_handshake_done(self, raw: asyncio.BaseTransport, waiter: asyncio.Future[None]) -> None:
        if self.closed:
            return
        server = self.server
        failure = asyncio.CancelledError() if waiter.cancelled() else waiter.exception()
        if failure is not None:
            # A plain-text client, a bad or missing certificate, a timeout: this
            # connection goes, silently, as with nats-server.
            server.tls_handshake_failed(self, failure)
            self.close_connection(ClosedState.TLSHandshakeError, abort=True)
            return
        _set_linger(raw, _LINGER_DEFAULT)
        tls = server.opts.tls
        if tls is not None and tls.handshake_first:
            assert self.transport is not None
            self.transport.write(server.info_for(self))
        self.connection_ready()

    def connection_ready(self) -> None:
        """Plain TCP, or TLS after the handshake: count, time and serve the client."""
        server = self.server
        transport = self.transport
        assert transport is not None
        if not server.admit(self):
            transport.write(frames.err(ERR_MAX_CONNECTIONS))
            self.closed = True
            self.close_transport(ClosedState.MaxConnectionsExceeded, abort=False)
            return
        self.start_ns = self.last_ns = time.time_ns()
        # Past 75% of max_pending the transport calls pause_writing: the stall signal.
        high = server.opts.max_pending * 3 // 4
        transport.set_write_buffer_limits(high=high, low=high // 2)
        self.arm_ping(self.ping_interval())
        if server.rates.configured:
            # Scanned from the first byte: publishes behind a CONNECT meet its login's limits.
            budgets = server.rates.budgets_for(self.account, "", None)
            self.limiter = Limiter(self, budgets, server.loop)
        if self.awaiting_auth:
            self.auth_handle = server.loop.call_later(
                self.authenticator().timeout, self.on_auth_timeout
            )

    def pause_writing(self) -> None:
        self.server.stall(self)

    def resume_writing(self) -> None:
        self.server.unstall(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        server = self.server
        budget = server.read_budget
        if budget <= 0 or self.deferred is not None:
            # This turn of the loop parsed its share: the rest waits for the next turn,
            # in order, and the socket is not read meanwhile (Server.defer_read).
            server.defer_read(self, data)
            return
        if len(data) <= budget:
            server.read_budget = budget - len(data)
            self.consume(data)
            return
        # Up to the budget now, the rest on a later turn (the parser takes any split).
        server.read_budget = 0
        self.consume(data[:budget])
        if not self.closed:
            server.defer_read(self, data[budget:])

    def consume(self, data: bytes) -> None:
        """Parse and act on what the client sent, as far as its rate limits allow."""
        limiter = self.limiter
        if limiter is None or self.held_input is not None:
            self.process_input(data)
        else:
            limiter.feed(data)

    def process_input(self, data: bytes) -> None:
        """Parse and act on what the client sent; write what it caused (one batch)."""
        if self.held_input is not None:
            self.held_input += data
            return
        self.active = True
        self.last_ns = time.time_ns()
        if self.server.trace:
            self.trace("<<-", data)
        if (
            self.awaiting_auth
            and data[:1] not in b"Cc"
            and self.parser.at_op_start()
            and not self.login_no_auth_user()
        ):
            self.close_with_error(ERR_AUTH_VIOLATION, ClosedState.AuthenticationViolation)
            return
        parser = self.parser
        try:
            if not self.guarded and not self.awaiting_auth and not parser.at_op_start():
                # Reads cut operations anywhere: finish the one cut short first, so that
                # the rest of the read can go to the publish loop.
                held = parser.finish_held(data)
                data = b"" if held < 0 else data[held:]
            if (
                not self.guarded
                and not self.awaiting_auth
                and data.startswith(b"PUB ")
                and parser.at_op_start()
            ):
                # Plain publishes go by their subjects' plans (core/publoop.py); the
                # parser takes whatever the loop leaves, as it would have taken it all.
                server = self.server
                router = server.router
                pos = pub_loop(
                    self, data, 0, self.process_pub_run, router.plans_for(self.account),
                    router.batches,
                    server.pending, server.remove_subscription,
                    parser.max_control_line, parser.max_payload,
                )  # fmt: skip
                if pos:
                    data = data[pos:]
            parser.feed(data)  # also with b"": it resumes what it holds (connect_checked)
        except ProtocolError as exc:
            self.server.flush_batch(self)
            self.close_with_error(
                exc.wire_text, ClosedState(exc.reason or ClosedState.ProtocolViolation)
            )
            return
        except Exception:  # a bug must cost one connection, never the worker
            log.exception("cid=%d: internal error while processing input; closing", self.cid)
            self.server.flush_batch(self)
            self.close_connection(ClosedState.ParseError)
            return
        self.server.flush_batch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_connection(ClosedState.ClientClosed)

    # -- authentication ----------------------------------------------------------------

    def login_no_auth_user(self) -> bool:
        """A first op other than CONNECT under auth: only no_auth_user lets it through,
        logging the client in as that user (nats-server's parser does the same)."""
        name = self.authenticator().no_auth_user
        if not name:
            return False
        self.authenticated(name)
        self.connected = True
        return True

    def authenticated(self, user: str, verdict: CalloutVerdict | None = None) -> None:
        """Log in as `user`, to its account (or where an auth callout's verdict puts
        it). Raises ProtocolError when the account's connection limit is reached."""
        server = self.server
        auth = self.authenticator()
        account = auth.account_of(user) if verdict is None else verdict.account
        if account != self.counted_account:
            if not server.login_account(account):
                raise ProtocolError(
                    ERR_MAX_ACCOUNT_CONNECTIONS, reason=ClosedState.MaxAccountConnectionsExceeded
                )
            if self.counted_account is not None:
                server.logout_account(self.counted_account)
            self.counted_account = account
        if account != self.account:
            # A CONNECT that logs in to another account: what it held belongs to the
            # old namespace (a repeated CONNECT drops its subscriptions anyway).
            for sub in list(self.subs.values()):
                server.remove_subscription(sub)
            self.account = account
            self.bind_routes()
        self.parser.max_payload = server.max_payload_for(account)
        self.max_subs = server.max_subs_for(account)
        self.user = user
        self.callout_verdict = verdict
        login = self.jwt_login = auth.logins.get(user) if verdict is None else None
        granted = login if login is not None else verdict
        if granted is not None:
            self.apply_jwt_limits(granted)
            self.start_jwt_timers(granted)
        perms = server.permissions.get(user) if granted is None else granted.permissions
        if auth.callout is not None:
            perms = auth.callout.restrict(account, perms)
        self.perms = perms
        responses = perms.responses if perms is not None else None
        self.grants = None if responses is None else ResponseGrants(responses, time.monotonic())
        if perms is not None:
            self.guarded = True  # every publish goes through check_publish
        self.apply_rate_limits()
        self.awaiting_auth = False
        if self.auth_handle is not None:
            self.auth_handle.cancel()
            self.auth_handle = None

    def apply_rate_limits(self) -> None:
        """The budgets this connection publishes against now (login, reload)."""
        server = self.server
        rates = server.rates
        login = self.jwt_login
        limiter = self.limiter
        budgets = rates.budgets_for(
            self.account,
            self.user,
            login.rate_limit if login is not None else None,
            limiter.budgets if limiter is not None else (),
        )
        if limiter is not None:
            limiter.budgets = budgets
            if not budgets and not limiter.holding and not limiter.carry and self.connected:
                self.limiter = None
        elif budgets:
            self.limiter = Limiter(self, budgets, server.loop)

    def rate_limit_engaged(self, budget: Budget) -> None:
        self.server.rate_limit_engaged(self, budget)

    def rate_limit_released(self) -> None:
        self.server.resume_reading(self)

    def apply_jwt_limits(self, login: JWTLogin | CalloutVerdict) -> None:
        """A user JWT's limits (or a callout's verdict's): the lower of its and the
        account's (already set)."""
        if login.payload >= 0:
            self.parser.max_payload = min(self.parser.max_payload, login.payload)
        # max_subs -1 allows none (every SUB meets the limit in process_sub), 0 any number.
        if login.subs == 0 or self.max_subs < 0:
            self.max_subs = -1
        elif login.subs > 0:
            self.max_subs = min(self.max_subs, login.subs) if self.max_subs else login.subs
        if self.max_subs < 0 or (self.max_subs and len(self.subs) >= self.max_subs):
            # At its limit already (none allowed at login, or fewer than it holds after an
            # update): nats-server says so, and closes the connection a little later.
            self.server.loop.call_soon(self.on_subscriptions_at_limit)

    def on_subscriptions_at_limit(self) -> None:
        if self.closed:
            return
        self.send_err(ERR_MAX_SUBSCRIPTIONS)
        self.server.flush_batch(None)
        self.server.loop.call_later(const.MAX_SUBS_CLOSE_DELAY, self.close_at_subscription_limit)

    def close_at_subscription_limit(self) -> None:
        if not self.closed:
            self.hold_index = -1  # what a held PONG keeps back goes out first
            self.flush()
            self.close_connection(ClosedState.MaxSubscriptionsExceeded)

    def start_jwt_timers(self, login: JWTLogin | CalloutVerdict) -> None:
        """Close the client when its user JWT, or its account's JWT, expires."""
        now = time.time()
        loop = self.server.loop
        if login.expires:
            loop.call_later(max(login.expires - now, 0.0), self.on_jwt_expired, login)
        if isinstance(login, JWTLogin) and login.account_expires:
            loop.call_later(max(login.account_expires - now, 0.0), self.on_account_expiry)

    def on_jwt_expired(self, login: JWTLogin | CalloutVerdict) -> None:
        """Its user JWT expired (unless an update or a new CONNECT replaced it)."""
        if not self.closed and (self.jwt_login is login or self.callout_verdict is login):
            self.close_with_error(ERR_USER_EXPIRED, ClosedState.AuthenticationExpired)

    def on_account_expiry(self) -> None:
        """Its account JWT's expiry time came (an update may have pushed it later)."""
        login = self.jwt_login
        if login is not None and login.account_expires and login.account_expires <= time.time():
            self.account_expired()

    def account_expired(self) -> None:
        """Its account's JWT expired, or an update deleted or expired the account."""
        if not self.closed:
            self.close_with_error(ERR_ACCOUNT_EXPIRED, ClosedState.AuthenticationExpired)

    def recheck_jwt_login(self, new: Authenticator, old: JWTLogin) -> bool:
        """Account claims were updated: re-check this JWT login (nats-server's
        updateAccountClaimsWithRefresh). False when the client was closed."""
        outcome, login = new.recheck(old)
        if outcome == ACCOUNT_EXPIRED:
            self.account_expired()
        elif outcome == REVOKED:
            self.close_with_error(ERR_USER_REVOKED, ClosedState.Revocation)
        elif outcome == REFUSED:
            self.close_with_error(ERR_AUTH_VIOLATION, ClosedState.AuthenticationViolation)
        elif outcome == GONE:
            self.close_connection(ClosedState.AuthenticationViolation)
        if outcome != KEEP:
            log.info(
                "%s - cid:%d - user %s: %s after an account update",
                self.host, self.cid, login.user_key, outcome,
            )  # fmt: skip
            return False
        if login.account_expires and login.account_expires != old.account_expires:
            self.start_jwt_timers(login._replace(expires=0))
        self.jwt_login = login
        # The account's limits as they are now, then the user's own.
        self.parser.max_payload = self.server.max_payload_for(self.account)
        self.max_subs = self.server.max_subs_for(self.account)
        self.apply_jwt_limits(login)
        self.apply_permissions(login.permissions)
        return True

    def bind_routes(self) -> None:
        """The router's routes for this client's account (those that follow stream
        imports when other accounts import from it)."""
        self.route, self.route_run, self.route_block = self.server.router.routes_for(self.account)

    def reauthorize(
        self,
        old: Authenticator,
        new: Authenticator,
        memo: dict[Credentials, str | None] | None = None,
    ) -> bool:
        """A reload changed the authorization: re-check this client against it (nats
        reloadAuthorization). False when the client was closed."""
        if not self.connected:
            # Not logged in yet: its CONNECT will meet the new rules.
            self.awaiting_auth = new.required
            return True
        if self.callout_verdict is not None and new.callout is not None:
            # The callout service's verdict stands (nats-server would ask it again).
            return True
        if self.jwt_login is not None and new.operator:
            return self.recheck_jwt_login(new, self.jwt_login)
        outcome, user = reauthorize(old, new, self.user, self.credentials, memo)
        if outcome == GONE:
            log.info(
                "%s - cid:%d - user %r was removed by a reload", self.host, self.cid, self.user
            )
            self.close_connection(ClosedState.ClientClosed)
            return False
        if outcome == REFUSED:
            log.info("%s - cid:%d - authentication error after a reload", self.host, self.cid)
            self.close_with_error(ERR_AUTH_VIOLATION, ClosedState.AuthenticationViolation)
            return False
        if new.account_of(user) != self.account:
            log.info(
                "%s - cid:%d - user %r was moved to another account by a reload",
                self.host, self.cid, user,
            )  # fmt: skip
            self.close_connection(ClosedState.ClientClosed)
            return False
        self.user = user
        self.apply_permissions(self.server.permissions.get(user))
        return True

    def apply_permissions(self, perms: UserPermissions | None) -> None:
        """New permissions for a logged-in client: they apply to what it sends next, and
        each subscription it may no longer hold is removed with an -ERR (nats
        processSubsOnConfigReload). The caller clears the sublist caches (the
        subscriptions' delivery checks may have changed)."""
        old_responses = self.perms.responses if self.perms is not None else None
        self.perms = perms
        responses = perms.responses if perms is not None else None
        if responses is None:
            self.grants = None
        elif self.grants is None or responses != old_responses:
            self.grants = ResponseGrants(responses, time.monotonic())
        self.guarded = self.verbose or self.pedantic or perms is not None
        if perms is None:
            for sub in self.subs.values():
                sub.checked = 0
            return
        for sub in list(self.subs.values()):
            if perms.can_subscribe(sub.subject, sub.queue):
                sub.checked = perms.needs_delivery_check(sub.subject, sub.queue)
                continue
            self.server.remove_subscription(sub)
            subject = sub.subject.decode(errors="replace")
            queue = None if sub.queue is None else sub.queue.decode(errors="replace")
            sid = sub.sid.decode(errors="replace")
            self.send_err(err_subscription_removed(subject, queue, sid))
            log.info(
                'Removed sub "%s"%s (sid "%s") for User "%s" - not authorized',
                subject,
                "" if queue is None else f' using queue "{queue}"',
                sid,
                self.user,
            )

    def on_auth_timeout(self) -> None:
        self.auth_handle = None
        if self.awaiting_auth and not self.closed:
            self.close_with_error(ERR_AUTH_TIMEOUT, ClosedState.AuthenticationTimeout)

    # -- protocol callbacks ----------------------------------------------------------

    def process_connect(self, body: bytes) -> bool:
        """Returns True when the CONNECT finishes later (bcrypt runs in a thread)."""
        opts = self.connect_options(body)
        auth = self.authenticator()
        if auth.required or auth.callout is not None:
            # Every CONNECT is (re-)authenticated; any failure is the same answer. (A
            # callout decides at CONNECT even when nothing else needs credentials.)
            if not opts.nkey and auth.is_slow(opts.user, opts.password, opts.auth_token):
                self.check_off_loop(opts)
                return True
            user = auth.check(
                opts.user, opts.password, opts.auth_token, opts.nkey, opts.sig, self.nonce,
                opts.jwt, self.host,
            )  # fmt: skip
            if auth.callout is not None and self.call_out(opts, user):
                return True
            if user is None:
                raise ProtocolError(ERR_AUTH_VIOLATION, reason=ClosedState.AuthenticationViolation)
            self.authenticated(user)
        self.apply_connect(opts)
        return False

    def call_out(self, opts: ConnectOptions, user: str | None) -> bool:
        """Ask the auth callout when it decides on this client (True): the connection
        reads nothing more until its verdict (callout_decided)."""
        auth = self.authenticator()
        assert auth.callout is not None
        account = None if user is None else auth.account_of(user)
        callout = auth.callout.callout_for(user, account, raw_auth_user(opts, user))
        if callout is None:
            return False
        self.suspend_reading()
        # As nats-server: the auth timer stops at CONNECT; the callout has its own.
        if self.auth_handle is not None:
            self.auth_handle.cancel()
            self.auth_handle = None
        self.server.callouts.request(self, opts, user, callout)
        return True

    def check_off_loop(self, opts: ConnectOptions) -> None:
        """Run a slow credential check in a thread; the connection reads nothing until
        it is done, then the CONNECT completes and what followed it is parsed."""
        self.suspend_reading()
        auth = self.authenticator()
        future = self.server.loop.run_in_executor(
            None, auth.check, opts.user, opts.password, opts.auth_token
        )
        future.add_done_callback(lambda done: self.connect_checked(opts, done))

    def suspend_reading(self) -> None:
        """Read and parse nothing more until the CONNECT is decided (connect_decided)."""
        transport = self.transport
        assert transport is not None
        transport.pause_reading()
        if self.held_input is None:
            self.held_input = bytearray()

    def connect_checked(self, opts: ConnectOptions, done: asyncio.Future[str | None]) -> None:
        if self.closed:
            return
        user = None if done.cancelled() or done.exception() else done.result()
        if self.authenticator().callout is not None and self.call_out(opts, user):
            return
        self.connect_decided(opts, user)

    def callout_decided(
        self, opts: ConnectOptions, user: str, verdict: CalloutVerdict | None
    ) -> None:
        """The auth callout's verdict (None: refused, or no answer in time)."""
        if not self.closed:
            self.connect_decided(opts, None if verdict is None else user, verdict)

    def connect_decided(
        self, opts: ConnectOptions, user: str | None, verdict: CalloutVerdict | None = None
    ) -> None:
        """Finish a CONNECT that was decided off the parser (bcrypt, auth callout):
        log in or refuse, then parse what the client sent after it."""
        try:
            if user is None:
                raise ProtocolError(ERR_AUTH_VIOLATION)
            self.authenticated(user, verdict)
            self.apply_connect(opts)
        except ProtocolError as exc:
            self.server.flush_batch(self)
            reason = exc.reason or ClosedState.AuthenticationViolation
            self.close_with_error(exc.wire_text, ClosedState(reason))
            return
        transport = self.transport
        assert transport is not None
        transport.resume_reading()
        held = self.held_input or b""
        self.held_input = None
        self.data_received(bytes(held))  # what followed the CONNECT (the parser kept its read)

    def apply_connect(self, opts: ConnectOptions) -> None:
        """The CONNECT options, once the connection is authenticated."""
        if opts.has_account:
            raise ProtocolError(ERR_AUTH_VIOLATION, reason=ClosedState.AuthenticationViolation)
        if opts.protocol not in (0, 1):
            raise ProtocolError(ERR_INVALID_PROTOCOL, reason=ClosedState.BadClientProtocolVersion)
        if opts.no_responders and not opts.headers:
            raise ProtocolError(ERR_NO_RESPONDERS_REQUIRES_HEADERS)
        self.credentials = (opts.user, opts.password, opts.auth_token, opts.nkey, opts.sig)
        self.verbose = opts.verbose
        self.pedantic = opts.pedantic
        self.guarded = opts.verbose or opts.pedantic or self.perms is not None
        self.echo = opts.echo
        self.headers = opts.headers
        self.parser.headers = opts.headers
        self.parser.sub_max = opts.sub_max
        self.no_responders = opts.no_responders
        self.protocol = opts.protocol
        self.name = opts.name
        self.lang = opts.lang
        self.version = opts.version
        first = not self.connected
        if not first:
            # A repeated CONNECT re-binds the connection: nats-server drops its
            # subscriptions and does not add them back.
            for sub in list(self.subs.values()):
                self.server.remove_subscription(sub)
        self.connected = True
        if self.verbose:
            self.out.append(frames.OK)
            self.server.pending.add(self)
        if first:
            self.server.client_event(self)
            self.first_ping = True
            interval = min(self.ping_interval(), const.FIRST_PING_INTERVAL)
            self.arm_ping(interval * (1.0 + 0.2 * random()))

    def process_pub(
        self, subject: bytes, reply: bytes | None, payload: bytes, size_token: bytes
    ) -> None:
        self.in_msgs += 1
        self.in_bytes += len(payload)
        # Checks only when one can apply: verbose/pedantic, a reply, a reserved prefix.
        if (self.guarded or reply is not None or subject[:1] in _RESERVED_FIRST) and (
            not self.check_publish(subject, reply)
        ):
            return
        if subject[:4] == _RESPONSE_PREFIX and subject.endswith(_TRACKED):
            self.server.responses.note_responder(self, self.account, subject)
        route = self.route if subject[:5] != _SYSTEM_PREFIX else self.route_system
        if (
            not route(self, self.account, subject, reply, 0, payload, size_token)
            and reply is not None
            and self.no_responders
        ):
            self.send_no_responders(subject, reply)

    @property
    def route_system(self) -> Any:
        """The route of `$SYS.` subjects: the one that follows imports, since every
        account reaches some of the system account's requests (security/accounts.py)."""
        return self.server.router.process_account_msg

    def process_pub_run(
        self,
        subject: bytes,
        reply: bytes | None,
        payloads: list[bytes],
        sizes: bytes | list[bytes],
    ) -> None:
        """Consecutive PUBs with one subject, routed together when no check or
        no-responders answer can differ from message to message."""
        if (self.guarded or reply is not None or subject[:1] in _RESERVED_FIRST) and not (
            # Permissions alone: one static answer holds for the whole run.
            reply is None
            and not (self.verbose or self.pedantic)
            and subject[:1] not in _RESERVED_FIRST
            and self.perms is not None
            and self.perms.publish_allowed(subject)
        ):
            each = [sizes] * len(payloads) if isinstance(sizes, bytes) else sizes
            for payload, size in zip(payloads, each, strict=True):
                self.process_pub(subject, reply, payload, size)
            return
        self.in_msgs += len(payloads)
        self.in_bytes += sum(map(len, payloads))
        self.route_run(self, self.account, subject, None, payloads, sizes)

    def process_pub_block(
        self, subject: bytes, block: bytes, head: bytes, count: int, size_token: bytes
    ) -> None:
        """Identical large PUBs as the bytes read (see ClientParser._blocks); anything
        a check could answer message by message goes the run's way."""
        if self.guarded or subject[:1] in _RESERVED_FIRST:
            payloads = block_payloads(block, len(head), count, int(size_token))
            self.process_pub_run(subject, None, payloads, size_token)
            return
        self.in_msgs += count
        self.in_bytes += count * int(size_token)
        self.route_block(self, self.account, subject, block, head, count, size_token)

    def process_hpub(
        self,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        header_token: bytes,
        total_token: bytes,
    ) -> None:
        self.in_msgs += 1
        self.in_bytes += len(message)
        if not self.check_publish(subject, reply):
            return
        if subject[:4] == _RESPONSE_PREFIX and subject.endswith(_TRACKED):
            self.server.responses.note_responder(self, self.account, subject)
        route = self.route if subject[:5] != _SYSTEM_PREFIX else self.route_system
        delivered = route(
            self,
            self.account,
            subject,
            reply,
            header_size,
            message,
            None if header_size else total_token,
        )
        if not delivered and reply is not None and self.no_responders:
            self.send_no_responders(subject, reply)

    def check_publish(self, subject: bytes, reply: bytes | None) -> bool:
        """Pedantic, reserved subject, permission and reserved reply checks, in
        nats-server's order; queues +OK. False: do not route."""
        if self.pedantic and not is_valid_literal_subject(subject):
            # nats-server still delivers it after saying so.
            self.send_err(ERR_INVALID_PUBLISH_SUBJECT)
        if subject.startswith(_RESERVED_PUBLISH) or (
            self.perms is not None and not self.publish_permitted(subject)
        ):
            self.send_err(err_publish_violation(subject.decode(errors="replace")))
            return False
        if reply is not None and reply.startswith(_RESERVED_REPLY):
            self.send_err(err_publish_reply_violation(reply.decode(errors="replace")))
            return False
        if self.verbose:
            self.out.append(frames.OK)
            self.server.pending.add(self)
        return True

    def publish_permitted(self, subject: bytes) -> bool:
        """Static permissions, else a response grant (which this publish uses up)."""
        perms = self.perms
        if perms is None or perms.publish_allowed(subject):
            return True
        grants = self.grants
        return grants is not None and grants.use(subject, time.monotonic())

    def send_no_responders(self, subject: bytes, reply: bytes) -> None:
        """The 503 goes to this connection's own plain subscription matching the reply."""
        for sub in self.subs.values():
            if sub.queue is None and subject_matches(sub.subject, reply):
                self.out.append(frames.no_responders(reply, sub.sid, subject))
                self.server.pending.add(self)
                return

    def process_sub(
        self, subject: bytes, queue: bytes | None, sid: bytes, max_msgs: int = 0
    ) -> None:
        """SUB; `max_msgs` (the sub_max extension's `max=<n>`) makes it SUB followed by
        UNSUB <sid> <n> in one step."""
        server = self.server
        perms = self.perms
        if perms is not None and not perms.can_subscribe(subject, queue):
            self.send_err(
                err_subscribe_violation(
                    subject.decode(errors="replace"),
                    None if queue is None else queue.decode(errors="replace"),
                )
            )
            return
        if not is_valid_subject(subject):
            self.send_err(ERR_INVALID_SUBJECT)
            return
        if queue == _SYS_QUEUE:
            self.send_err(err_subscribe_violation(subject.decode(errors="replace"), queue.decode()))
            return
        if sid not in self.subs:
            limit = self.max_subs
            if limit and len(self.subs) >= limit:
                self.send_err(ERR_MAX_SUBSCRIPTIONS)
                return
            sub = Subscription(self, self.account, subject, queue, sid)
            if perms is not None:
                sub.checked = perms.needs_delivery_check(subject, queue)
            if max_msgs:
                # Limited before it can match anything: no message passes the limit.
                sub.max = max_msgs
            self.subs[sid] = sub
            server.add_subscription(sub)
        elif max_msgs:
            self.limit_subscription(self.subs[sid], max_msgs)
        if self.verbose:
            self.out.append(frames.OK)
            server.pending.add(self)

    def process_unsub(self, sid: bytes, max_msgs: int | None) -> None:
        sub = self.subs.get(sid)
        if sub is not None:
            if max_msgs is None:
                self.server.remove_subscription(sub)
            else:
                self.limit_subscription(sub, max_msgs)
        if self.verbose:
            self.out.append(frames.OK)
            self.server.pending.add(self)

    def limit_subscription(self, sub: Subscription, max_msgs: int) -> None:
        """At most `max_msgs` deliveries in all (UNSUB's max): none left, or no positive
        max, unsubscribes now."""
        if max_msgs <= 0 or max_msgs <= sub.delivered:
            self.server.remove_subscription(sub)
        else:
            sub.max = max_msgs

    def process_sub_limit_error(self) -> None:
        self.send_err(ERR_INVALID_SUBSCRIPTION_LIMIT)

    def process_ping(self) -> None:
        server = self.server
        if not self.rtt_ns and self.start_ns:
            # Until a server PING measures it, the RTT is the time from the accept to
            # the client's first PING (nats-server does the same).
            self.rtt_ns = max(time.time_ns() - self.start_ns, 1)
        if self.interest_changed or self.hold_index >= 0:
            server.hold_pong(self)
        self.out.append(frames.PONG)
        if self.connected and not self.info_sent:
            self.info_sent = True
            if self.protocol >= 1:
                self.out.append(server.connect_info_for(self))
        server.pending.add(self)

    def process_pong(self) -> None:
        self.pings_out = 0
        if self.ping_sent_ns:
            self.rtt_ns = time.monotonic_ns() - self.ping_sent_ns
            self.ping_sent_ns = 0

    def process_client_err(self) -> None:
        raise ProtocolError(None, "client sent -ERR", reason=ClosedState.ParseError)

    # -- output ----------------------------------------------------------------------

    def send_err(self, text: str) -> None:
        self.out.append(frames.err(text))
        self.server.pending.add(self)

    def flush(self) -> None:
        """Write queued output, except what a held PONG keeps back."""
        out = self.out
        if not out or self.closed:
            return
        hold = self.hold_index
        if hold >= 0:
            if hold == 0:
                return
            chunks = out[:hold]
            del out[:hold]
            self.hold_index = 0
        else:
            chunks = out
        if self.server.trace:
            self.trace("->>", b"".join(chunks))
        self.write_out(chunks)
        if chunks is out:
            out.clear()

    def write_out(self, chunks: list[bytes]) -> None:
        """One flush of output, in one write (websocket clients: in one frame)."""
        transport = self.transport
        assert transport is not None
        transport.write(b"".join(chunks))

    def trace(self, direction: str, data: bytes) -> None:
        """nats-server's -V lines: one per protocol line, payloads included, shortened."""
        for line in data.split(b"\r\n"):
            if line:
                text = line[:_TRACE_WIDTH].decode(errors="replace")
                more = "..." if len(line) > _TRACE_WIDTH else ""
                log.log(
                    TRACE, "%s - cid:%d - %s [%s%s]", self.host, self.cid, direction, text, more
                )

    # -- keepalive ---------------------------------------------------------------------

    def arm_ping(self, delay: float) -> None:
        if self.ping_handle is not None:
            self.ping_handle.cancel()
        self.ping_handle = self.server.loop.call_later(delay, self.on_ping_timer)

    def on_ping_timer(self) -> None:
        self.ping_handle = None
        if self.closed:
            return
        opts = self.server.opts
        if self.active and not self.first_ping:
            # The client talked to us lately: no need to probe it.
            self.active = False
            self.arm_ping(self.ping_interval())
            return
        if self.pings_out + 1 > opts.ping_max:
            self.close_with_error(ERR_STALE_CONNECTION, ClosedState.StaleConnection)
            return
        self.active = False
        self.first_ping = False
        self.pings_out += 1
        self.ping_sent_ns = time.monotonic_ns()
        self.out.append(frames.PING)
        self.server.pending.add(self)
        self.server.flush_batch(None)
        self.arm_ping(self.ping_interval())

    # -- closing -----------------------------------------------------------------------

    def close_with_error(self, wire_text: str | None, reason: ClosedState) -> None:
        if self.closed:
            return
        if wire_text is not None and self.transport is not None:
            self.hold_index = -1
            self.flush()
            self.transport.write(frames.err(wire_text))
        self.close_connection(reason)

    def close_connection(self, reason: ClosedState, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.ping_handle is not None:
            self.ping_handle.cancel()
            self.ping_handle = None
        if self.auth_handle is not None:
            self.auth_handle.cancel()
            self.auth_handle = None
        if self.limiter is not None:
            self.limiter.cancel()
        self.server.client_closed(self, reason)
        self.close_transport(reason, abort)


def _set_linger(transport: asyncio.BaseTransport, value: bytes) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, value)
