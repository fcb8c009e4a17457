"""A worker's state: its clients, its sublists, and the batch flush; its role in the mesh.

Owner: one worker shard; everything runs on its loop and never blocks.

The worker is a mesh member (shard/member.py) with this role: its subscriptions are
the member's local interest (RS+/RS- to every up peer), the interest peers advertise
lives in the same sublists as `RemoteInterest` entries, and control verbs from the
supervisor arrive at the ``on_<verb>`` methods here (LDM, MONZ, REBALANCE, RELOAD, TRIM).

PONG barrier. A SUB/UNSUB only notes that the connection's interest changed (O(1)).
The next PING records, per up peer, where what we have sent it so far ends
(``MeshMember.barrier_marks``, O(peers)): every interest frame the connection caused
lies before that. While a peer has not applied it (its read counter behind) the PONG is
held; peers ring our doorbell after applying interest frames, and a short timer
re-checks too, so the PONG is released promptly.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import random
import time
from collections import deque
from typing import Any

import msgspec
import uvloop
import uvloop.loop

from shardbroker import const
from shardbroker.config.options import (
    AccountLimits,
    Options,
    account_cells,
    system_account_name,
)
from shardbroker.config.reload import decode_options_arg, diff, kinds
from shardbroker.const import ClosedState
from shardbroker.core import mesh_loop
from shardbroker.errors import ERR_MAX_ACCOUNT_CONNECTIONS, ERR_MAX_CONNECTIONS
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.log import setup as setup_logging
from shardbroker.mesh.account_table import AccountTable
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.mesh.rate_table import RateTable
from shardbroker.mesh.stats import ConnectionLimit, ShardSlot
from shardbroker.protocol import events, frames
from shardbroker.protocol.frames import RELOADED, TRIMMED
from shardbroker.protocol.messages import ServerInfo, encode_info
from shardbroker.protocol.sublist import Sublist
from shardbroker.security.accounts import AccountRoutes
from shardbroker.security.auth import Authenticator, Credentials
from shardbroker.security.permissions import users_permissions
from shardbroker.security.tls import server_context
from shardbroker.shard.member import DRAIN_BUDGET, MeshMember
from shardbroker.worker import snapshot
from shardbroker.worker.callout import AuthCallouts
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.ratelimit import Budget, RateLimits
from shardbroker.worker.responses import ServiceResponses
from shardbroker.worker.route_result import Subscription, make_result
from shardbroker.worker.router import Router

log = logging.getLogger("shardbroker.worker")


# Ticks between copies of the message totals (a pass over every client) to the slot.
_MONITOR_TICKS = 3
# Ticks between two sweeps of the budgets of user JWTs no connection uses any more.
_PRUNE_TICKS = 100
_HOLD_RECHECK = 0.001  # seconds between barrier re-checks while a PONG is held
# Lame duck: nats-server's pause between two closes is at most 1 s (and at least half the
# computed interval); below this many seconds per client, clients are closed in batches.
_LDM_MAX_PAUSE = 1.0
_LDM_MIN_PAUSE = 0.001
# Rebalancing: the clients a worker is asked to shed are closed spread over this long,
# so that their reconnects do not arrive as one burst.
_REBALANCE_SPREAD = 1.0
STALL_MAX = 0.01  # seconds a stalled worker holds publishers and its rings back at once
# Bytes of client input parsed per turn of the loop, over all clients: with the mesh
# member's drain budget, what keeps a turn to a few milliseconds however many clients
# publish at once, so timers and the tick run on time (shard/member.py).
READ_BUDGET = 256 * 1024
# Seconds between two rate limit advisories of one budget on one worker.
RATE_ADVISORY_INTERVAL = 10.0


def ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's own TLS protocol: uvloop's (Cython) under uvloop, asyncio's otherwise.
    Both take loop.start_tls's arguments."""
    if isinstance(loop, uvloop.Loop):
        return uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
    return asyncio.sslproto.SSLProtocol


class Server:
    """Everything one worker shard owns, except the listening socket (main.py)."""

    def __init__(
        self,
        boot: ShardBoot,
        opts: Options,
        loop: asyncio.AbstractEventLoop,
        mesh: Mesh,
        slot: ShardSlot | None,
        connection_limit: ConnectionLimit | None,
        account_table: AccountTable | None = None,
        rate_table: RateTable | None = None,
    ) -> None:
        self.boot = boot
        # Connections per account on every worker (account limits), and ours.
        self.account_table = account_table
        self.system_account = system_account_name(opts).encode()
        self.event_seq = 0
        self.account_cells = account_cells(opts)
        self.account_conns: dict[bytes, int] = {}
        self.opts = opts
        self.loop = loop
        self.mesh = mesh
        self.slot = slot
        self.connection_limit = connection_limit
        self.shard_id = boot.shard_id
        self.generation = boot.generation
        self.sublists: dict[bytes, Sublist[Any, Any]] = {}
        self.sublist_for(const.GLOBAL_ACCOUNT)
        self.pending: set[ClientProtocol] = set()
        self.clients: dict[int, ClientProtocol] = {}
        # Clients closed by a TRIM whose connection slot must not be given back.
        self.keep_slots: set[int] = set()
        self.holding: set[ClientProtocol] = set()
        self.paused: set[ClientProtocol] = set()
        # Clients whose last write left bytes in the socket buffer, with since when.
        self.blocked: dict[ClientProtocol, float] = {}
        # Fast-producer stall: clients past the high-water mark, publishers held back.
        self.stalled: set[ClientProtocol] = set()
        self.stall_paused: set[ClientProtocol] = set()
        # Client input per turn: what is left of the budget, and the clients whose input
        # waits for a later turn (their sockets paused), in the order they came.
        self.read_budget = READ_BUDGET
        self.deferred_reads: deque[ClientProtocol] = deque()
        self._read_turn: asyncio.Handle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._stall_breather = False
        self.router = Router(self)
        self.responses = self.router.responses = ServiceResponses(self)
        self.callouts = AuthCallouts(self)
        # Publish budgets (worker/ratelimit.py); accounts' and users' shared broker-wide.
        self.rates = RateLimits(opts, rate_table, boot.shard_id)
        # When each account's last rate limit advisory went out (monotonic seconds).
        self.rate_advisories: dict[bytes, float] = {}
        # Ring frames carrying messages go straight to the router (parse_mesh's hook).
        self.process_rmsg = self.router.process_remote_msg
        self.process_rmsg_run = self.router.process_remote_run
        self.process_rmsg_block = self.router.process_remote_block
        self.process_jmsg = self.router.process_jetstream_delivery
        self.process_jrun = self.router.process_jetstream_run
        self.process_qmsg = self.router.process_remote_queue_msg
        self.member = MeshMember(
            boot.shard_id, boot.generation, loop, mesh, self, sublist_for=self.sublist_for
        )
        self.member.drain_budget = self.drain_budget
        self.stopping = self.member.stopping
        # The listening servers (main.py sets them once listening); lame duck closes them.
        self.listener: asyncio.AbstractServer | None = None
        self.ws_listener: asyncio.AbstractServer | None = None
        self.lame_duck = False
        self._hold_timer: asyncio.TimerHandle | None = None
        self._cid_base = ((self.generation << 8) | self.shard_id) << const.CID_SHARD_SHIFT
        self._cid_next = 0
        self.total_connections = 0
        self.slow_consumers = 0
        # Monitoring: message and byte totals of connections already closed (live ones
        # are summed at the tick), subscription index counters, closed connections.
        self.closed_totals = [0, 0, 0, 0]  # in_msgs, out_msgs, in_bytes, out_bytes
        self.sub_inserts = 0
        self.sub_removes = 0
        self.closed_conns = snapshot.closed_connections()
        self._ticks = 0
        self.rebalanced = 0
        # -V: trace the protocol of every connection (decided once, not per message).
        self.trace = opts.trace
        self.auth = Authenticator(opts)
        # The same rules as websocket clients meet them (security/auth.py).
        self.ws_auth = self.auth.for_websocket(opts.websocket)
        # User name (or NKEY) -> compiled permissions; users with full rights are absent.
        self.permissions = users_permissions(opts)
        # TLS on the client port: one context for every connection of this worker.
        self.ssl_context = server_context(opts.tls) if opts.tls is not None else None
        self.ssl_protocol_class = ssl_protocol_class(loop)
        self.tls_errors_seen: set[str] = set()
        self._info = self.make_info()
        self._ws_info = self.make_ws_info()

    def make_ws_info(self) -> ServerInfo:
        """The INFO of the websocket port: its listener's address and TLS, and the
        websocket authorization override (nats-server's generateClientInfoJSON)."""
        ws = self.opts.websocket
        if ws is None:
            return self._info
        tls = ws.tls is not None
        return msgspec.structs.replace(
            self._info,
            host=ws.host,
            port=self.boot.websocket_port,
            tls_required=tls,
            tls_available=tls,
            auth_required=self.auth.advertised or ws.auth_override,
        )

    def make_info(self) -> ServerInfo:
        """The INFO every new connection starts from (rebuilt by a reload)."""
        opts = self.opts
        boot = self.boot
        return ServerInfo(
            server_id=boot.server_id,
            server_name=opts.server_name or boot.server_id,
            version=const.SERVER_VERSION,
            proto=const.PROTO,
            go="python",
            host=opts.host,
            port=boot.mesh.port,
            headers=True,
            auth_required=self.auth.advertised,
            tls_required=opts.tls is not None,
            tls_verify=opts.tls is not None and opts.tls.verify,
            max_payload=opts.max_payload,
            jetstream=opts.jetstream,
            domain=opts.jetstream_domain,
            xkey=self.callouts.xkey,
            sub_max=True,
        )

    def sublist_for(self, account: bytes) -> Sublist[Any, Any]:
        sublist = self.sublists.get(account)
        if sublist is None:
            sublist = self.sublists[account] = Sublist(make_result, share_tails=True)
        return sublist

    # -- connections -------------------------------------------------------------------

    def next_client_id(self) -> int:
        self._cid_next += 1
        return self._cid_base | self._cid_next

    def info_for(self, client: ClientProtocol) -> bytes:
        info = msgspec.structs.replace(
            self._ws_info if client.websocket else self._info,
            client_id=client.cid,
            client_ip=client.host,
            nonce=client.nonce,
        )
        return frames.info(encode_info(info))

    def max_payload_for(self, account: bytes, opts: Options | None = None) -> int:
        """The server's max_payload, lowered by the account's `limits { max_payload }`."""
        opts = opts or self.opts
        limits = self.account_limits(account, opts)
        if limits is not None and limits.max_payload >= 0:
            return min(opts.max_payload, limits.max_payload)
        return opts.max_payload

    def max_subs_for(self, account: bytes) -> int:
        """Subscriptions a connection of `account` may hold (0: no limit, -1: none): the
        server's max_subscriptions, lowered by the account's limit (per connection, as
        in nats-server)."""
        limit = self.opts.max_subscriptions
        limits = self.account_limits(account, self.opts)
        if limits is not None and limits.from_jwt and limits.max_subscriptions == 0:
            return -1
        if limits is not None and limits.max_subscriptions >= 0:
            return min(limit, limits.max_subscriptions) if limit else limits.max_subscriptions
        return limit

    @staticmethod
    def account_limits(account: bytes, opts: Options) -> AccountLimits | None:
        name = account.decode()
        return next((a.limits for a in opts.accounts if a.name == name), None)

    def connect_info_for(self, client: ClientProtocol) -> bytes:
        info = msgspec.structs.replace(
            self._ws_info if client.websocket else self._info,
            client_id=client.cid,
            client_ip=client.host,
            connect_info=True,
            remote_account=client.account.decode(),
            max_payload=client.parser.max_payload,
        )
        return frames.info(encode_info(info))

    def admit(self, client: ClientProtocol) -> bool:
        """Count a new connection against the broker-wide limit."""
        limit = self.connection_limit
        if limit is not None and not limit.try_acquire():
            return False
        self.clients[client.cid] = client
        self.total_connections += 1
        if self.slot is not None:
            self.slot.set("connections", len(self.clients))
        return True

    # -- system account advisories ------------------------------------------------------

    def client_event(self, client: ClientProtocol, reason: ClosedState | None = None) -> bool:
        """`$SYS.ACCOUNT.<acc>.CONNECT` (reason None) or `.DISCONNECT`, published in the
        system account when somebody there listens. True when it was."""
        system = self.system_account
        if not system:
            return False
        subject = (
            b"$SYS.ACCOUNT." + client.account + (b".CONNECT" if reason is None else b".DISCONNECT")
        )
        if not self.router.has_interest(system, subject):
            return False
        now = time.time_ns()
        server = self.event_server(now)
        who = events.EventClient(
            start=format_rfc3339(client.start_ns), host=client.host, id=client.cid,
            acc=client.account.decode(), user=client.user, name=client.name, lang=client.lang,
            ver=client.version, rtt=client.rtt_ns if reason is not None else 0,
            stop=format_rfc3339(now) if reason is not None else "",
            name_tag=client.account.decode(), kind="Client", client_type=client.client_type,
        )  # fmt: skip
        event: events.ConnectEvent | events.DisconnectEvent
        if reason is None:
            event = events.ConnectEvent(
                id=events.event_id(), timestamp=format_rfc3339(now), server=server, client=who
            )
        else:
            event = events.DisconnectEvent(
                id=events.event_id(), timestamp=format_rfc3339(now), server=server, client=who,
                sent=events.DataStats(client.in_msgs, client.in_bytes),
                received=events.DataStats(client.out_msgs, client.out_bytes),
                reason=str(reason),
            )  # fmt: skip
        route = self.router.routes_for(system)[0]
        route(self.responses.sink, system, subject, None, 0, events.encode(event), None)
        return True

    def event_server(self, now: int) -> events.EventServer:
        """This server, as an event names it (with the next event sequence number)."""
        self.event_seq += 1
        opts = self.opts
        return events.EventServer(
            name=opts.server_name or self.boot.server_id, host=opts.host, id=self.boot.server_id,
            domain=opts.jetstream_domain, ver=const.SERVER_VERSION, tags=opts.server_tags,
            jetstream=opts.jetstream, flags=1 if opts.jetstream else 0, seq=self.event_seq,
            time=format_rfc3339(now),
        )  # fmt: skip

    def rate_limit_engaged(self, client: ClientProtocol, budget: Budget) -> None:
        """`$SYS.ACCOUNT.<acc>.RATE_LIMIT` when a limit begins to hold back or refuse a
        publisher of the account, at most once per RATE_ADVISORY_INTERVAL per account
        and worker, and only when somebody in the system account listens."""
        system = self.system_account
        mono = time.monotonic()
        last = self.rate_advisories.get(client.account)
        if not system or (last is not None and mono - last < RATE_ADVISORY_INTERVAL):
            return
        self.rate_advisories[client.account] = mono
        subject = b"$SYS.ACCOUNT." + client.account + b".RATE_LIMIT"
        if not self.router.has_interest(system, subject):
            return
        now = time.time_ns()
        limit = budget.limit
        event = events.RateLimitEvent(
            id=events.event_id(), timestamp=format_rfc3339(now), server=self.event_server(now),
            client=events.EventClient(
                start=format_rfc3339(client.start_ns), host=client.host, id=client.cid,
                acc=client.account.decode(), user=client.user, name=client.name,
                lang=client.lang, ver=client.version, kind="Client", client_type="nats",
            ),
            limit=budget.key, mode=limit.mode, msgs_per_sec=limit.msgs_per_sec,
            bytes_per_sec=limit.bytes_per_sec,
        )  # fmt: skip
        route = self.router.routes_for(system)[0]
        route(self.responses.sink, system, subject, None, 0, events.encode(event), None)

    def login_account(self, account: bytes) -> bool:
        """Count a client logging in to `account`; False when the account's connection
        limit is reached broker-wide (mesh/account_table.py)."""
        count = self.account_conns.get(account, 0)
        cell = self.account_cells.get(account)
        table = self.account_table
        if cell is not None:
            index, limit = cell
            if limit >= 0:
                others = table.others(self.shard_id, index) if table is not None else 0
                if others + count >= limit:
                    return False
            if table is not None:
                table.set(self.shard_id, index, count + 1)
        self.account_conns[account] = count + 1
        return True

    def logout_account(self, account: bytes) -> None:
        count = self.account_conns.get(account, 0) - 1
        if count > 0:
            self.account_conns[account] = count
        else:
            self.account_conns.pop(account, None)
        cell = self.account_cells.get(account)
        if cell is not None and self.account_table is not None:
            self.account_table.set(self.shard_id, cell[0], max(count, 0))

    def write_account_counts(self) -> None:
        """Our whole row of account connections, from our clients (the tick): corrects a
        renumbering by a reload within one tick."""
        table = self.account_table
        if table is None:
            return
        for account, (index, _) in self.account_cells.items():
            table.set(self.shard_id, index, self.account_conns.get(account, 0))

    def tls_handshake_failed(self, client: ClientProtocol, exc: BaseException) -> None:
        """nats-server logs every failed handshake as an error; a port scanner or a
        plain-text client would flood the log, so each distinct reason is logged once
        per worker at WRN and again only at DBG."""
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        level = logging.DEBUG
        if reason not in self.tls_errors_seen and len(self.tls_errors_seen) < 64:
            self.tls_errors_seen.add(reason)
            level = logging.WARNING
        log.log(level, "%s - cid:%d - TLS handshake error: %s", client.host, client.cid, reason)

    def client_closed(self, client: ClientProtocol, reason: ClosedState) -> None:
        snapshot.on_closed(self, client, reason)
        # A close outside a read batch: what the advisory reached is written at once.
        advised = client.connected and self.client_event(client, reason)
        totals = self.closed_totals
        totals[0] += client.in_msgs
        totals[1] += client.out_msgs
        totals[2] += client.in_bytes
        totals[3] += client.out_bytes
        had_subs = bool(client.subs)
        for sub in list(client.subs.values()):
            self.remove_subscription(sub)
        if had_subs:
            # A close is not a read batch: commit the RS- frames now, or peers would
            # keep routing to this interest until the next batch on this worker.
            self.mesh.flush()
        self.pending.discard(client)
        self.holding.discard(client)
        self.paused.discard(client)
        self.blocked.pop(client, None)
        self.stall_paused.discard(client)
        if client in self.stalled:
            self.unstall(client)
        if client.counted_account is not None:
            self.logout_account(client.counted_account)
            client.counted_account = None
        if self.clients.pop(client.cid, None) is not None:
            if client.cid in self.keep_slots:
                self.keep_slots.discard(client.cid)
            elif self.connection_limit is not None:
                self.connection_limit.release()
            if self.slot is not None:
                self.slot.set("connections", len(self.clients))
        if advised:
            self.flush_batch(None)
        log.debug("cid=%d closed: %s", client.cid, reason)

    # -- subscriptions and interest ------------------------------------------------------

    def add_subscription(self, sub: Subscription) -> None:
        """Add a subscription whose subject the caller validated (process_sub)."""
        self.sublist_for(sub.account).insert(sub, checked=True)
        self.sub_inserts += 1
        self.member.local.add(sub.account, sub.subject, sub.queue)
        sub.client.interest_changed = True

    def remove_subscription(self, sub: Subscription) -> None:
        client = sub.client
        if client.subs.get(sub.sid) is sub:
            del client.subs[sub.sid]
        if not self.sublist_for(sub.account).remove(sub):
            return
        self.router.drop_plans(sub.account)
        self.sub_removes += 1
        self.member.local.remove(sub.account, sub.subject, sub.queue)
        client.interest_changed = True

    def hold_pong(self, client: ClientProtocol) -> None:
        """Called on PING after a SUB/UNSUB, or while an earlier PONG is held: hold this
        PONG (and what follows) until the interest is in effect on every peer."""
        if not client.interest_changed:
            return  # only queued behind the PONG already held
        client.interest_changed = False
        marks = self.member.barrier_marks()
        if client.hold_index < 0:
            if self.member.barrier_passed(marks):
                return
            client.hold_index = len(client.out)
            client.hold_targets = marks
        else:
            client.hold_targets.update(marks)
        self.holding.add(client)
        if self._hold_timer is None:
            self._hold_timer = self.loop.call_later(_HOLD_RECHECK, self._recheck_holding)

    def check_holding(self) -> None:
        passed = self.member.barrier_passed
        for client in list(self.holding):
            if passed(client.hold_targets):
                self.holding.discard(client)
                client.hold_index = -1
                client.hold_targets = {}
                self.pending.add(client)

    def _recheck_holding(self) -> None:
        self._hold_timer = None
        self.check_holding()
        self.flush_batch(None)
        if self.holding:
            self._hold_timer = self.loop.call_later(_HOLD_RECHECK, self._recheck_holding)

    # -- the batch -------------------------------------------------------------------------

    def flush_batch(self, publisher: ClientProtocol | None) -> None:
        """End of a read batch: write every touched client once, commit ring batches."""
        # A peer's ring is full: stop reading from whoever is publishing until the
        # consumer makes room (it rings our doorbell).
        if (
            not self.member.commit()
            and publisher is not None
            and not publisher.closed
            and publisher not in self.paused
            and publisher.transport is not None
        ):
            publisher.transport.pause_reading()
            self.paused.add(publisher)
        if (
            self.stalled
            and publisher is not None
            and not publisher.closed
            and publisher.transport is not None
            and publisher not in self.stall_paused
        ):
            publisher.transport.pause_reading()
            self.stall_paused.add(publisher)
            if self._stall_timer is None:
                self._stall_timer = self.loop.call_later(STALL_MAX, self.end_stall)
        pending = self.pending
        if pending:
            max_pending = self.opts.max_pending
            clients = list(pending)
            pending.clear()
            blocked = self.blocked
            for client in clients:
                client.flush()
                transport = client.transport
                if transport is None or client.closed:
                    continue
                buffered = transport.get_write_buffer_size()
                if buffered > max_pending:
                    self.slow_consumer(client, ClosedState.SlowConsumerPendingBytes)
                elif buffered and client not in blocked:
                    # The socket did not take everything: the tick watches how long.
                    blocked[client] = self.loop.time()

    def slow_consumer(self, client: ClientProtocol, reason: ClosedState) -> None:
        """Cut a client that cannot keep up, without an -ERR, as nats-server does."""
        self.slow_consumers += 1
        log.info("%s - cid:%d - Slow Consumer Detected: %s", client.host, client.cid, reason)
        client.close_connection(reason, abort=True)

    # -- fast-producer stall ---------------------------------------------------------
    # nats-server makes a publisher wait (at most 10 ms a batch) while a subscriber it
    # feeds is past 75% of max_pending, so a healthy but slower reader is not cut.
    # Here: a client's transport says so through pause_writing/resume_writing (its
    # high-water mark is set to that 75%); while any client is stalled, the worker
    # pauses the local publisher and stops draining its inbound rings, for at most
    # STALL_MAX at a time, then serves one more batch and re-checks.

    def stall(self, client: ClientProtocol) -> None:
        self.stalled.add(client)
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(STALL_MAX, self.end_stall)

    def unstall(self, client: ClientProtocol) -> None:
        self.stalled.discard(client)
        if not self.stalled and self._stall_timer is not None:
            self._stall_timer.cancel()
            self.end_stall()

    def end_stall(self) -> None:
        self._stall_timer = None
        self._stall_breather = True
        stall_paused = list(self.stall_paused)
        self.stall_paused.clear()
        for client in stall_paused:
            self.resume_reading(client)
        self.on_doorbell()  # whatever the rings hold now

    def check_write_deadlines(self) -> None:
        """Cut clients whose output stayed stuck in the socket past write_deadline."""
        now = self.loop.time()
        deadline = self.opts.write_deadline
        for client, since in list(self.blocked.items()):
            transport = client.transport
            if client.closed or transport is None or not transport.get_write_buffer_size():
                del self.blocked[client]
            elif now - since > deadline:
                del self.blocked[client]
                self.slow_consumer(client, ClosedState.SlowConsumerWriteDeadline)

    def resume_paused(self) -> None:
        paused = list(self.paused)
        self.paused.clear()
        for client in paused:
            self.resume_reading(client)

    def resume_reading(self, client: ClientProtocol) -> None:
        """Read from the client's socket again, unless another reason still holds it:
        a full ring (paused), a stall (stall_paused) or input left for a later turn."""
        if (
            client.closed
            or client.transport is None
            or client in self.paused
            or client in self.stall_paused
            or client.deferred is not None
            or (client.limiter is not None and client.limiter.holding)
        ):
            return
        client.transport.resume_reading()

    # -- client input in bounded turns ------------------------------------------------------
    # uvloop reads a socket up to 32 times per readiness event, 256 KiB at a time, and
    # every readable socket in one turn: unbounded, a few busy publishers would keep the
    # loop in one turn for seconds. So each turn parses at most READ_BUDGET bytes; input
    # read beyond it waits in the client (socket paused) for the next turn, in order.

    def defer_read(self, client: ClientProtocol, data: bytes) -> None:
        if client.deferred is None:
            client.deferred = deque((data,))
            self.deferred_reads.append(client)
            if client.transport is not None:
                client.transport.pause_reading()
        else:
            client.deferred.append(data)
        self.end_read_turn()

    def end_read_turn(self) -> None:
        """The budget is spent: the next turn of the loop starts a new one."""
        if self._read_turn is None:
            self._read_turn = self.loop.call_soon(self.next_read_turn)

    def next_read_turn(self) -> None:
        """A new turn: a fresh budget, spent first on input deferred by earlier turns."""
        self._read_turn = None
        self.read_budget = READ_BUDGET
        waiting = self.deferred_reads
        while waiting and self.read_budget > 0:
            client = waiting[0]
            chunks = client.deferred
            if chunks and not client.closed:
                data = chunks.popleft()
                budget = self.read_budget
                if len(data) > budget:
                    chunks.appendleft(data[budget:])
                    data = data[:budget]
                self.read_budget = budget - len(data)
                client.consume(data)
                if chunks and not client.closed:
                    continue
            waiting.popleft()
            client.deferred = None
            self.resume_reading(client)
        if waiting or self.read_budget <= 0:
            self.end_read_turn()

    # -- the mesh ----------------------------------------------------------------------------

    def on_doorbell(self) -> None:
        """Apply what the rings hold now (one bounded turn of the mesh member)."""
        self.member.on_doorbell()

    def drain_budget(self) -> int | None:
        """Bytes of ring frames the next turn may apply; None holds the rings.

        While a local client is far behind (stalled) the rings are left alone for a
        moment, so the peers' publishers meet a full ring and pause; then one turn is
        served and the rings are held again."""
        if not self.stalled:
            return DRAIN_BUDGET
        if self._stall_timer is None and not self._stall_breather:
            self._stall_timer = self.loop.call_later(STALL_MAX, self.end_stall)
        if self._stall_timer is not None:
            return None
        self._stall_breather = False  # serve what is there now, then hold again
        return DRAIN_BUDGET

    def fast_frames(self, data: bytes) -> int:
        """Plain forwarded messages at the start of a ring piece, delivered by their
        subjects' plans (core/meshloop.py); returns where the frame parser takes over."""
        router = self.router
        return mesh_loop(
            data, 0, router.plans_for, router.process_remote_run, self.pending,
            self.remove_subscription,
        )  # fmt: skip

    def end_of_drain(self) -> None:
        """After a turn of ring frames: retry our own overflow, release held PONGs,
        write to the clients the frames were for, commit."""
        mesh = self.mesh
        if mesh.overflowing:
            if mesh.retry_overflow():
                self.resume_paused()
        elif self.paused:
            self.resume_paused()
        if self.holding:
            self.check_holding()
        self.flush_batch(None)

    def peer_left(self, peer: int) -> None:
        """A peer went down: PONGs waiting for it wait no more."""
        if self.holding:
            self.check_holding()

    # -- control verbs from the supervisor --------------------------------------------------

    def on_ldm(self) -> None:
        self.enter_lame_duck()

    def on_monz(self, request_id: int, flags: int) -> None:
        snapshot.answer_monz(self, request_id, flags)

    def on_rebalance(self, count: int) -> None:
        self.shed_clients(count)

    def on_trim(self, count: int) -> None:
        self.trim_connections(count)

    def on_atrim(self, account: bytes, count: int) -> None:
        """An account update lowered the account's connection limit below what it has:
        close our share of the excess, newest clients first, as nats-server does."""
        clients = [c for c in self.clients.values() if c.counted_account == account]
        clients.sort(key=lambda c: c.start_ns, reverse=True)
        for client in clients[:count]:
            client.close_with_error(
                ERR_MAX_ACCOUNT_CONNECTIONS, ClosedState.MaxAccountConnectionsExceeded
            )
        if clients[:count]:
            log.info(
                "closed %d clients of account %s over its lowered connection limit",
                len(clients[:count]), account.decode(errors="replace"),
            )  # fmt: skip

    # -- reload ------------------------------------------------------------------------------

    def on_reload(self, seq: int, options_arg: bytes) -> None:
        """The supervisor accepted a reload: apply it and confirm (RELOADED)."""
        status = b"ok"
        try:
            self.apply_options(decode_options_arg(options_arg))
        except Exception:  # a bad reload must not cost the worker; the supervisor hears of it
            log.exception("shard %d: cannot apply the reloaded configuration", self.shard_id)
            status = b"failed"
        self.member.send_control(const.SUPERVISOR_SHARD, RELOADED, self.shard_id, seq, status)

    def trim_connections(self, count: int) -> None:
        """max_connections went below the number of clients: close `count` of them, at
        random, with nats-server's error. Their connection slots are not given back:
        they are the ones the lower limit took away (the supervisor counts them)."""
        victims = random.sample(list(self.clients.values()), min(count, len(self.clients)))
        for client in victims:
            self.keep_slots.add(client.cid)
            client.close_with_error(ERR_MAX_CONNECTIONS, ClosedState.MaxConnectionsExceeded)
        if victims:
            log.info("closed %d clients over the reloaded max_connections", len(victims))
        self.member.send_control(const.SUPERVISOR_SHARD, TRIMMED, self.shard_id, len(victims))

    def apply_options(self, new: Options) -> None:
        """Swap in reloaded Options, change by change kind (config/reload.py)."""
        changed = kinds(diff(self.opts, new))
        self.opts = new
        if "logging" in changed:
            setup_logging(new.log_file, new.debug, new.trace, new.logtime)
            self.trace = new.trace
        if "limits" in changed or "auth" in changed:
            # Pushed into every live connection (nats-server does the same).
            for client in self.clients.values():
                client.parser.max_payload = self.max_payload_for(client.account, new)
                client.parser.max_control_line = new.max_control_line
        if "tls" in changed:
            # New connections only; established TLS sessions carry on.
            self.ssl_context = server_context(new.tls) if new.tls is not None else None
        if "auth" in changed:
            old_auth, old_ws_auth = self.auth, self.ws_auth
            self.auth = Authenticator(new)
            self.ws_auth = self.auth.for_websocket(new.websocket)
            self.permissions = users_permissions(new)
            memo: dict[Credentials, str | None] = {}
            ws_memo: dict[Credentials, str | None] = {}
            for client in list(self.clients.values()):
                if client.closed:
                    continue
                if client.websocket:
                    client.reauthorize(old_ws_auth, self.ws_auth, ws_memo)
                else:
                    client.reauthorize(old_auth, self.auth, memo)
            # Subscriptions' delivery checks may have changed: cached results go.
            for sublist in self.sublists.values():
                sublist.clear_cache()
            self.account_cells = account_cells(new)
            if self.account_table is not None:
                self.account_table.clear_row(self.shard_id)
            self.write_account_counts()
            self.router.set_accounts(AccountRoutes(new))
            for client in self.clients.values():
                client.bind_routes()
        if "limits" in changed or "auth" in changed:
            self.rates.configure(new)
            for client in list(self.clients.values()):
                if not client.closed:
                    client.apply_rate_limits()
        self._info = self.make_info()
        self._ws_info = self.make_ws_info()

    # -- housekeeping -----------------------------------------------------------------------

    def tick(self) -> None:
        """Every TICK_INTERVAL, after the heartbeat: counters into the shard slot, retries."""
        slot = self.slot
        if slot is not None:
            slot.set("connections", len(self.clients))
            slot.set("total_connections", self.total_connections)
            slot.set("subscriptions", self.member.local.total)
            slot.set("slow_consumers", self.slow_consumers)
            slot.set("ring_full_events", self.mesh.ring_full_events)
            self._ticks += 1
            if self._ticks % _MONITOR_TICKS == 0:
                self.publish_monitor_counters(slot)
            if self._ticks % _PRUNE_TICKS == 0 and self.rates.jwt_users:
                self.rates.forget_jwt_users(
                    {id(b) for c in self.clients.values() if c.limiter for b in c.limiter.budgets}
                )
            slot.set("rebalanced", self.rebalanced)
        if self.mesh.overflowing and self.mesh.retry_overflow():
            self.resume_paused()
        self.responses.expire(time.monotonic())
        self.write_account_counts()
        self.rates.tick()
        if self.holding:
            self.check_holding()
            self.flush_batch(None)
        if self.blocked:
            self.check_write_deadlines()

    # -- lame duck mode --------------------------------------------------------------------
    # nats-server's lameDuckMode, per worker: stop accepting, tell the clients (INFO
    # ldm:true to those with protocol >= 1 that had their first PONG), wait the grace
    # period, then close the clients one by one spread over the rest of the duration
    # (pause min(1 s, rest / clients), randomised between half and all of it), without
    # -ERR. The worker then stops (exit 0); the supervisor does not restart it.

    def ldm_info_for(self, client: ClientProtocol) -> bytes:
        info = msgspec.structs.replace(
            self._ws_info if client.websocket else self._info,
            client_id=client.cid,
            client_ip=client.host,
            ldm=True,
        )
        return frames.info(encode_info(info))

    def enter_lame_duck(self) -> None:
        if self.lame_duck or self.stopping.is_set():
            return
        self.lame_duck = True
        if self.slot is not None:
            self.slot.set("lame_duck", 1)
        for listener in (self.listener, self.ws_listener):
            if listener is not None:
                listener.close()
        clients = [c for c in self.clients.values() if not c.closed]
        if not clients:
            self.stopping.set()
            return
        for client in clients:
            if client.protocol >= 1 and client.info_sent:
                client.out.append(self.ldm_info_for(client))
                self.pending.add(client)
        self.flush_batch(None)
        opts = self.opts
        rest = max(opts.lame_duck_duration - opts.lame_duck_grace_period, 1.0)
        pause = min(_LDM_MAX_PAUSE, rest / len(clients))
        batch = 1
        if pause < _LDM_MIN_PAUSE:
            pause = _LDM_MIN_PAUSE
            batch = -(-len(clients) // int(rest / _LDM_MIN_PAUSE))
        log.debug(
            "shard %d: lame duck: closing %d clients in %.1fs, then every %.3fs",
            self.shard_id, len(clients), opts.lame_duck_grace_period, pause,
        )  # fmt: skip
        self.loop.call_later(
            opts.lame_duck_grace_period, self._lame_duck_close, clients, 0, pause, batch
        )

    def _lame_duck_close(
        self, clients: list[ClientProtocol], index: int, pause: float, batch: int
    ) -> None:
        n = len(clients)
        closed = 0
        while index < n and closed < batch:
            client = clients[index]
            index += 1
            if not client.closed:  # one that left on its own costs no pause
                client.close_connection(ClosedState.ServerShutdown)
                closed += 1
        while index < n and clients[index].closed:
            index += 1
        if index >= n:
            self.stopping.set()
            return
        delay = random.uniform(pause / 2, pause)
        self.loop.call_later(delay, self._lame_duck_close, clients, index, pause, batch)

    def publish_monitor_counters(self, slot: ShardSlot) -> None:
        """Message totals and the rest of what monitoring reads, a few times a second:
        a pass over this worker's clients, never a per-message store."""
        clients = self.clients.values()
        closed = self.closed_totals
        slot.set("in_msgs", closed[0] + sum(c.in_msgs for c in clients))
        slot.set("out_msgs", closed[1] + sum(c.out_msgs for c in clients))
        slot.set("in_bytes", closed[2] + sum(c.in_bytes for c in clients))
        slot.set("out_bytes", closed[3] + sum(c.out_bytes for c in clients))
        slot.set("ring_fill_pct", self.mesh.outbound_fill_pct())
        slot.set("stalled_clients", len(self.stalled))
        slot.set("sub_inserts", self.sub_inserts)
        slot.set("sub_removes", self.sub_removes)
        slot.set("sub_cache", sum(s.cache_count for s in self.sublists.values()))
        slot.set("closed_connections", len(self.closed_conns))

    # -- rebalancing ---------------------------------------------------------------------

    def shed_clients(self, count: int) -> None:
        """The supervisor found this worker crowded: close `count` clients, the most
        recently connected first (after a worker restart those are the ones that came
        over), without -ERR and spread over _REBALANCE_SPREAD, so that they reconnect
        and the kernel spreads them over every listening worker."""
        if self.lame_duck or self.stopping.is_set() or count <= 0:
            return
        chosen = [c for c in reversed(list(self.clients.values())) if not c.closed][:count]
        if not chosen:
            return
        log.info(
            "shard %d: closing %d clients to rebalance the workers", self.shard_id, len(chosen)
        )
        step = _REBALANCE_SPREAD / len(chosen)
        for i, client in enumerate(chosen):
            self.loop.call_later(i * step, self._shed, client)

    def _shed(self, client: ClientProtocol) -> None:
        if client.closed or self.lame_duck:
            return
        self.rebalanced += 1
        client.close_connection(ClosedState.ServerShutdown)

    def close_all_clients(self) -> None:
        for client in list(self.clients.values()):
            client.close_connection(ClosedState.ServerShutdown)
