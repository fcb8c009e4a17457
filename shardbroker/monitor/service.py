"""The monitor in the supervisor: reads shard figures, asks workers for connection
snapshots, answers `$SYS.REQ.SERVER.*` requests and runs the HTTP port.

Owner: the supervisor; runs on its loop. Nothing here ever waits on a worker: the stats
segment is read with plain loads, and a snapshot request (MONZ over the mesh) waits at
most SNAPSHOT_TIMEOUT for each worker, answering with what arrived. Workers only spend
time on a snapshot when one is asked for.

`$SYS` requests. The supervisor takes part in the mesh like a shard without clients: when
a worker says HELLO it advertises (RS+) interest in `$SYS.REQ.SERVER.PING`,
`$SYS.REQ.SERVER.PING.*` and `$SYS.REQ.SERVER.<id>.*` in the global account, so a
request from any client reaches it once, whatever worker the client is on. The reply goes
as an RMSG to every up worker; only those with interest in the reply subject deliver it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import time
from typing import Any, Protocol

import msgspec
import psutil

from shardbroker import const
from shardbroker.config.options import (
    Options,
    Permissions,
    all_users,
    http_host,
    jetstream_dir,
    system_account_name,
)
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.mesh.rate_table import RateTable
from shardbroker.mesh.snapshot import (
    MON_ACCOUNT,
    MONZ,
    WANT_ALL_SUBS,
    WANT_JSZ,
    StorageSnapshot,
    WorkerSnapshot,
    decode,
    decode_storage,
    parse_part_subject,
)
from shardbroker.mesh.stats import ShardTable
from shardbroker.monitor import accountz, collect, connz, jsz, shardz
from shardbroker.monitor.collect import BrokerState, QueryError, ShardFigures
from shardbroker.monitor.http import serve
from shardbroker.protocol import frames, headers
from shardbroker.protocol.events import event_id

log = logging.getLogger("shardbroker.monitor")

SNAPSHOT_TIMEOUT = 2.0  # seconds to wait for workers' connection snapshots
PROCESS_SAMPLE_INTERVAL = 0.5  # seconds between two CPU/memory samples of the processes
# Seconds between account_connections advisories while an account has connections.
ACCOUNT_CONNS_INTERVAL = 30.0
ACCOUNT_CONNS_MIN_GAP = 1.0
_SYS_PREFIX = b"$SYS.REQ.SERVER."
_ACCOUNT_PREFIX = b"$SYS.REQ.ACCOUNT."
_USER_INFO = b"$SYS.REQ.USER.INFO"


class ShardView(Protocol):
    shard_id: int
    role: str
    pid: int
    ready: bool


class MeshView(Protocol):
    def send(self, peer: int, frame: bytes) -> None: ...

    def flush(self) -> bool: ...


class BrokerView(Protocol):
    """What the monitor reads of the arbiter (kept narrow so the arbiter stays free)."""

    server_id: str
    opts: Options
    port: int
    websocket_port: int
    shards: dict[int, Any]
    mesh: Any
    stopping: bool


class _Pending:
    __slots__ = ("future", "parts", "waiting")

    def __init__(self, future: asyncio.Future[None], waiting: set[int]) -> None:
        self.future = future
        self.waiting = waiting
        # shard -> parts received (index -> bytes), with the expected count.
        self.parts: dict[int, tuple[int, dict[int, bytes]]] = {}


class Monitor:
    def __init__(
        self, broker: BrokerView, table: ShardTable, rates: RateTable | None = None
    ) -> None:
        self.broker = broker
        self.table = table
        self.rates = rates
        self.start_ns = time.time_ns()
        self.config_load_ns = self.start_ns
        self.http_req_stats: dict[str, int] = {}
        self.http_port = 0
        self.http_server: asyncio.Server | None = None
        self._request_ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._seq = itertools.count(1)
        self._procs: dict[int, psutil.Process] = {}
        self._proc_figures: dict[int, tuple[float, int]] = {}
        self._procs_sampled_at = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._js_limits: tuple[int, int] | None = None
        # Account connection advisories: the broker's connection count they last saw,
        # when they were last sent, the counts they sent, and the task sending them.
        self._conns_seen = 0
        self._conns_sent_at = 0.0
        self._conns_by_account: dict[str, int] = {}
        self._conns_task: asyncio.Task[None] | None = None

    # -- figures ------------------------------------------------------------------------

    def base_path(self) -> str:
        """The monitoring port's base path, without a trailing slash."""
        return self.broker.opts.http_base_path.rstrip("/")

    def state(self) -> BrokerState:
        broker = self.broker
        opts = broker.opts
        figures = self._process_figures()
        shards = []
        for shard in sorted(broker.shards.values(), key=lambda s: s.shard_id):
            slots = self.table.slots
            counters = slots[shard.shard_id].snapshot() if shard.shard_id < len(slots) else {}
            cpu, mem = figures.get(shard.pid, (0.0, 0)) if shard.pid else (0.0, 0)
            shards.append(
                ShardFigures(
                    shard.shard_id, shard.role, bool(shard.pid and shard.ready), counters,
                    pid=shard.pid or 0, cpu=cpu, mem=mem,
                )
            )  # fmt: skip
        own_cpu, own_mem = figures.get(os.getpid(), (0.0, 0))
        max_memory, max_storage = self._js_limits_for(opts)
        return BrokerState(
            server_id=broker.server_id,
            opts=opts,
            port=broker.port,
            websocket_port=broker.websocket_port,
            http_host=http_host(opts),
            http_port=self.http_port,
            start_ns=self.start_ns,
            now_ns=time.time_ns(),
            config_load_ns=self.config_load_ns,
            shards=shards,
            mem=sum(mem for _, mem in figures.values()),
            cpu=round(sum(cpu for cpu, _ in figures.values()), 2),
            cores=os.cpu_count() or 1,
            supervisor_pid=os.getpid(),
            supervisor_mem=own_mem,
            supervisor_cpu=own_cpu,
            http_req_stats=self.http_req_stats,
            js_max_memory=max_memory,
            js_max_storage=max_storage,
            js_store_dir=jetstream_dir(opts) if opts.jetstream else "",
            # Lame duck closes the listeners: /healthz says error (nats-server does too).
            listening=not (broker.stopping or getattr(broker, "lame_duck", False)),
            rate_limits=self.rates.figures() if self.rates is not None else {},
        )

    def _process_figures(self) -> dict[int, tuple[float, int]]:
        """pid -> (CPU%, RSS) of the supervisor and every shard (psutil, /proc reads).

        CPU% is the share since the previous sample, so samples closer together than
        PROCESS_SAMPLE_INTERVAL reuse the last one: a page that reads /varz and /shardz
        at once gets one measure over a second, not a second one over a millisecond.
        """
        now = time.monotonic()
        if now - self._procs_sampled_at < PROCESS_SAMPLE_INTERVAL:
            return self._proc_figures
        pids = {os.getpid()} | {s.pid for s in self.broker.shards.values() if s.pid}
        for pid in list(self._procs):
            if pid not in pids:
                del self._procs[pid]
        figures: dict[int, tuple[float, int]] = {}
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first call only starts the measure
                figures[pid] = (round(proc.cpu_percent(None), 2), proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
        self._proc_figures = figures
        self._procs_sampled_at = now
        return figures

    def _js_limits_for(self, opts: Options) -> tuple[int, int]:
        """nats-server's defaults when unlimited: 75% of RAM, 75% of the disk's free space."""
        if not opts.jetstream:
            return 0, 0
        if self._js_limits is None:
            memory = opts.max_memory_store
            if memory < 0:
                memory = psutil.virtual_memory().total * 3 // 4
            storage = opts.max_file_store
            if storage < 0:
                path = jetstream_dir(opts)
                while path and not os.path.exists(path):
                    path = os.path.dirname(path)
                try:
                    storage = shutil.disk_usage(path or "/").free * 3 // 4
                except OSError:
                    storage = 0
            self._js_limits = (memory, storage)
        return self._js_limits

    # -- worker snapshots ---------------------------------------------------------------

    def live_workers(self) -> list[int]:
        return sorted(
            s.shard_id
            for s in self.broker.shards.values()
            if s.role == "worker" and s.pid and s.ready
        )

    async def _gather(self, shards: list[int], flags: int, what: str) -> dict[int, bytes]:
        """Send MONZ to `shards`; the whole answers that arrive within SNAPSHOT_TIMEOUT.

        The wait is a deadline, not a cancellation: what came in time is the answer.
        """
        mesh = self.broker.mesh
        if mesh is None or not shards:
            return {}
        request_id = next(self._request_ids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending[request_id] = _Pending(future, set(shards))
        frame = frames.control(MONZ, request_id, flags)
        for shard in shards:
            mesh.send(shard, frame)
        mesh.flush()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), SNAPSHOT_TIMEOUT)
        finally:
            del self._pending[request_id]
        if pending.waiting:
            log.warning("no %s from shard(s) %s in time", what, sorted(pending.waiting))
        return {
            shard: b"".join(parts[i] for i in range(count))
            for shard, (count, parts) in sorted(pending.parts.items())
            if shard not in pending.waiting and len(parts) == count
        }

    async def snapshots(self, flags: int) -> list[WorkerSnapshot]:
        """Ask every live worker for its connections; what arrives within SNAPSHOT_TIMEOUT."""
        blobs = await self._gather(self.live_workers(), flags, "connection snapshot")
        out = []
        for shard, blob in blobs.items():
            try:
                out.append(decode(blob))
            except (msgspec.DecodeError, KeyError):
                log.warning("bad connection snapshot from worker %d", shard)
        return out

    async def storage_snapshot(self) -> StorageSnapshot | None:
        """Ask the storage shard for its streams and consumers; None if it cannot say."""
        storage = [
            s.shard_id
            for s in self.broker.shards.values()
            if s.role == "storage" and s.pid and s.ready
        ]
        blobs = await self._gather(storage, WANT_JSZ, "JetStream snapshot")
        for shard, blob in blobs.items():
            try:
                return decode_storage(blob)
            except (msgspec.DecodeError, KeyError):
                log.warning("bad JetStream snapshot from shard %d", shard)
        return None

    def on_snapshot_part(self, subject: bytes, message: bytes) -> None:
        parsed = parse_part_subject(subject)
        if parsed is None:
            return
        request_id, shard, part, count = parsed
        pending = self._pending.get(request_id)
        if pending is None or shard not in pending.waiting:
            return  # a late answer to a request that timed out
        _, parts = pending.parts.setdefault(shard, (count, {}))
        parts[part] = message
        if len(parts) == count:
            pending.waiting.discard(shard)
            if not pending.waiting and not pending.future.done():
                pending.future.set_result(None)

    # -- the mesh -------------------------------------------------------------------------

    def sys_subjects(self) -> list[bytes]:
        """The requests the monitor answers, all in the system account. Other accounts
        reach the ones about themselves through implicit imports (the worker maps them,
        security/accounts.py), which bring the requester's account and user along."""
        server_id = self.broker.server_id.encode()
        return [
            _SYS_PREFIX + b"PING",
            _SYS_PREFIX + b"PING.*",
            _SYS_PREFIX + server_id + b".*",
            _USER_INFO,
            _ACCOUNT_PREFIX + b"*.*",
        ]

    def on_message(
        self,
        peer: int,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        message: bytes,
        header: bytes = b"",
    ) -> None:
        """An RMSG that reached the supervisor: a snapshot part or a $SYS request."""
        if account == MON_ACCOUNT:
            self.on_snapshot_part(subject, message)
            return
        if account != self.system_account or not reply:
            return
        if subject.startswith((_SYS_PREFIX, _ACCOUNT_PREFIX, _USER_INFO)):
            requester = _requester(header)
            task = asyncio.get_running_loop().create_task(
                self.answer_sys(account, subject, reply, message, requester)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def system_account(self) -> bytes:
        return system_account_name(self.broker.opts).encode()

    @property
    def system_listeners(self) -> bool:
        """Can anybody hear the system account's advisories (has it users)?"""
        system = system_account_name(self.broker.opts)
        return bool(system) and any(e.account == system for e in all_users(self.broker.opts))

    async def answer_sys(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes,
        message: bytes,
        requester: dict[str, Any] | None = None,
    ) -> None:
        try:
            body = await self.sys_reply(subject.decode(errors="replace"), message, requester)
        except Exception:  # a bad request must never cost the supervisor
            log.exception("error answering %s", subject.decode(errors="replace"))
            return
        if body is not None:
            self.send_reply(account, reply, body)

    def send_reply(self, account: bytes, reply: bytes, body: bytes) -> None:
        """An answer to a request, to every worker (the requester's has the reply
        subscription; the others drop it)."""
        mesh = self.broker.mesh
        if mesh is None:
            return
        frame = frames.rmsg(account, reply, None, (), 0, body)
        for shard in self.live_workers():
            mesh.send(shard, frame)
        mesh.flush()

    def server_info(self) -> collect.ServerInfo:
        """The `server` object of an answer to a $SYS request."""
        return collect.server_info(self.state(), next(self._seq))

    async def sys_reply(
        self, subject: str, message: bytes, requester: dict[str, Any] | None = None
    ) -> bytes | None:
        """The JSON answer to a $SYS request, or None to stay silent. `requester`: the
        client info of a request that came through an implicit import (its account's
        own data is the answer); None for a system account user's own request."""
        tokens = subject.split(".")
        if len(tokens) < 4:
            return None
        if subject == _USER_INFO.decode():
            return self.user_info(requester)
        if requester is not None:
            # Through an import: about the requester's own account, whatever it asked.
            account = str(requester.get("acc", ""))
            if tokens[-1] == "STATZ":
                return await self.account_statz(account)
            subject = f"$SYS.REQ.ACCOUNT.{account}.CONNZ"
            tokens = subject.split(".")
        if tokens[2] == "ACCOUNT":
            return await self.account_reply(tokens, message)
        target = tokens[3]
        if target == "PING" and len(tokens) == 4:
            state = self.state()
            return msgspec.json.encode(
                {
                    "server": collect.server_info(state, next(self._seq)),
                    "statsz": collect.statsz(state),
                }
            )
        if len(tokens) != 5 or target not in ("PING", self.broker.server_id):
            return None
        endpoint = tokens[4]
        options = _request_options(message)
        state = self.state()
        if _filtered_out(state, options):
            return None
        if endpoint == "IDZ":
            return msgspec.json.encode(
                {"name": state.server_name, "host": state.opts.host, "id": state.server_id}
            )
        info = collect.server_info(state, next(self._seq))
        try:
            data = await self.endpoint_data(endpoint, state, _sys_query(endpoint, options))
        except QueryError as exc:
            return msgspec.json.encode(
                {"server": info, "error": {"code": 400, "description": str(exc)}}
            )
        if data is None:
            error = {"code": 400, "description": f"unknown endpoint {endpoint}"}
            return msgspec.json.encode({"server": info, "error": error})
        return msgspec.json.encode({"server": info, "data": data})

    def user_info(self, requester: dict[str, Any] | None) -> bytes | None:
        """$SYS.REQ.USER.INFO: the requester's user, account and permissions."""
        if requester is None:
            return None  # the request itself; its imported twin carries who asked
        user = str(requester.get("user", ""))
        account = str(requester.get("acc", ""))
        data: dict[str, Any] = {"user": user, "account": account, "account_name": account}
        perms = next((e.permissions for e in all_users(self.broker.opts) if e.name == user), None)
        if perms is not None:
            data["permissions"] = permissions_json(perms)
        info = collect.server_info(self.state(), next(self._seq))
        return msgspec.json.encode({"server": info, "data": data})

    async def account_reply(self, tokens: list[str], message: bytes) -> bytes | None:
        """`$SYS.REQ.ACCOUNT.<acc>.<CONNZ|SUBSZ|STATZ|INFO|...>` and
        `$SYS.REQ.ACCOUNT.PING.<STATZ|CONNZ>` from a system account user."""
        if len(tokens) != 5:
            return None
        account, endpoint = tokens[3], tokens[4]
        if account == "PING":
            if endpoint == "STATZ":
                return await self.account_statz("")
            account = ""
        if endpoint == "STATZ":
            return await self.account_statz(account)
        if endpoint not in ("CONNZ", "SUBSZ", "JSZ", "INFO", "CONNS", "LEAFZ"):
            return None
        state = self.state()
        if endpoint == "INFO" and account:
            # The account's /accountz detail, alone.
            info = collect.server_info(state, next(self._seq))
            try:
                found = await self.endpoint_data("ACCOUNTZ", state, {"acc": account})
            except QueryError as exc:
                error = {"code": 400, "description": str(exc)}
                return msgspec.json.encode({"server": info, "error": error})
            return msgspec.json.encode({"server": info, "data": found.account_detail})
        if endpoint == "CONNS" and account:
            return await self.account_connections(account)
        options = _request_options(message)
        if account:
            options["acc"] = account
            if endpoint == "SUBSZ":
                options.setdefault("subscriptions", True)  # nats-server lists them here
        info = collect.server_info(state, next(self._seq))
        try:
            data = await self.endpoint_data(endpoint, state, _sys_query(endpoint, options))
        except QueryError as exc:
            return msgspec.json.encode(
                {"server": info, "error": {"code": 400, "description": str(exc)}}
            )
        return msgspec.json.encode({"server": info, "data": data})

    def account_events_due(self) -> None:
        """The supervisor's tick: when the broker's connection count changed, or every
        ACCOUNT_CONNS_INTERVAL while accounts have connections, publish
        `$SYS.ACCOUNT.<acc>.SERVER.CONNS` (and the legacy
        `$SYS.SERVER.ACCOUNT.<acc>.CONNS`) for the accounts concerned, as nats-server
        does; one round at a time, from the workers' snapshots."""
        if self._conns_task is not None or not self.system_listeners:
            return
        now = time.monotonic()
        if now - self._conns_sent_at < ACCOUNT_CONNS_MIN_GAP:
            return  # connections come and go: one round a second at most
        total = sum(slot.get("connections") for slot in self.table.slots)
        periodic = bool(self._conns_by_account) and (
            now - self._conns_sent_at >= ACCOUNT_CONNS_INTERVAL
        )
        if total == self._conns_seen and not periodic:
            return
        self._conns_seen = total
        task = asyncio.get_running_loop().create_task(self.send_account_events(periodic))
        self._conns_task = task

        def done(_: asyncio.Task[None]) -> None:
            self._conns_task = None

        task.add_done_callback(done)

    async def send_account_events(self, periodic: bool) -> None:
        try:
            figures = await self.account_figures()
        except Exception:  # monitoring must never cost the supervisor
            log.exception("cannot gather account connections")
            return
        counts = {name: figure.conns for name, figure in figures.items()}
        before = self._conns_by_account
        names = set(counts) | set(before) if periodic else {
            name for name in set(counts) | set(before) if counts.get(name, 0) != before.get(name, 0)
        }  # fmt: skip
        self._conns_by_account = {name: n for name, n in counts.items() if n}
        self._conns_sent_at = time.monotonic()
        mesh = self.broker.mesh
        if mesh is None or not names:
            return
        system = self.system_account
        for name in sorted(names):
            body = self.account_connections_event(name, figures.get(name))
            for subject in (
                f"$SYS.ACCOUNT.{name}.SERVER.CONNS", f"$SYS.SERVER.ACCOUNT.{name}.CONNS"
            ):  # fmt: skip
                frame = frames.rmsg(system, subject.encode(), None, (), 0, body)
                for shard in self.live_workers():
                    mesh.send(shard, frame)
        mesh.flush()

    def account_connections_event(
        self, account: str, figures: accountz.AccountFigures | None
    ) -> bytes:
        """The account_connections advisory of an account."""
        state = self.state()
        stat = _account_stat(account, figures or accountz.AccountFigures())
        advisory = {
            "type": "io.nats.server.advisory.v1.account_connections",
            "id": event_id(),
            "timestamp": format_rfc3339(state.now_ns),
            "server": collect.server_info(state, next(self._seq)),
            **stat,
        }
        return msgspec.json.encode(advisory)

    async def account_connections(self, account: str) -> bytes:
        """`$SYS.REQ.ACCOUNT.<acc>.CONNS`: the account_connections advisory, on demand."""
        figures = await self.account_figures()
        return self.account_connections_event(account, figures.get(account))

    async def account_statz(self, account: str) -> bytes:
        """Per-account statistics (`account_statz`), from the workers' connection
        snapshots; one account, or every account with connections."""
        state = self.state()
        figures = await self.account_figures()
        names = [account] if account else sorted(figures)
        data = {
            "server_id": state.server_id,
            "now": format_rfc3339(state.now_ns),
            "account_statz": [
                _account_stat(name, figures[name]) for name in names if name in figures
            ],
        }
        info = collect.server_info(state, next(self._seq))
        return msgspec.json.encode({"server": info, "data": data})

    async def account_figures(self) -> dict[str, accountz.AccountFigures]:
        """Connections and traffic per account, from the workers' snapshots."""
        sums: dict[str, list[int]] = {}
        for snap in await self.snapshots(0):
            for conn in snap.conns:
                entry = sums.setdefault(conn.account, [0] * 6)
                entry[0] += 1
                entry[1] += conn.n_subs
                entry[2] += conn.in_msgs
                entry[3] += conn.in_bytes
                entry[4] += conn.out_msgs
                entry[5] += conn.out_bytes
        return {name: accountz.AccountFigures(*values) for name, values in sums.items()}

    async def endpoint_data(self, endpoint: str, state: BrokerState, query: dict[str, str]) -> Any:
        """The Struct an endpoint returns (shared by HTTP and $SYS); None if unknown."""
        ep = endpoint.upper()
        if ep in ("VARZ",):
            return collect.varz(state)
        if ep == "STATSZ":
            return collect.statsz(state)
        if ep == "CONNZ":
            q = connz.ConnzQuery.from_query(query)
            snaps = await self.snapshots(q.snapshot_flags)
            return connz.connz(state.server_id, state.now_ns, snaps, q)
        if ep in ("SUBSZ", "SUBSCRIPTIONSZ"):
            sq = connz.SubszQuery.from_query(query)
            subs = None
            if sq.subs:
                subs = [s for snap in await self.snapshots(WANT_ALL_SUBS) for s in snap.subs]
            return connz.subsz(state, sq, subs)
        if ep == "ROUTEZ":
            return collect.routez(state)
        if ep == "GATEWAYZ":
            return collect.gatewayz(state)
        if ep == "LEAFZ":
            return collect.leafz(state)
        if ep == "ACCOUNTZ":
            figures = await self.account_figures() if state.opts.accounts else None
            return accountz.accountz(state, query.get("acc", ""), figures)
        if ep == "ACCSTATZ":
            unused = collect.parse_bool("unused", query["unused"]) if "unused" in query else False
            figures = await self.account_figures() if state.opts.accounts else None
            return accountz.accstatz(state, unused, figures)
        if ep == "JSZ":
            jq = jsz.JszQuery.from_query(query)
            snap = await self.storage_snapshot() if jq.details and state.opts.jetstream else None
            return jsz.jsz(state, jq, snap)
        if ep == "HEALTHZ":
            return collect.healthz(state, query)[1]
        if ep == "SHARDZ":
            return shardz.shardz(state)
        return None

    # -- HTTP ---------------------------------------------------------------------------------

    async def start_http(self) -> None:
        """Listen on the monitoring port (raises OSError when it cannot)."""
        opts = self.broker.opts
        port = 0 if opts.http_port == const.RANDOM_PORT else opts.http_port
        self.http_server = await serve(self, http_host(opts), port)
        sockets = self.http_server.sockets
        self.http_port = sockets[0].getsockname()[1] if sockets else port
        log.info("Starting http monitor on %s:%d", http_host(opts), self.http_port)

    def close(self) -> None:
        if self.http_server is not None:
            self.http_server.close()
            self.http_server = None
        for task in list(self._tasks):
            task.cancel()


def _request_options(message: bytes) -> dict[str, Any]:
    """A $SYS request's JSON options; {} for an empty or unreadable body."""
    try:
        options = msgspec.json.decode(message) if message.strip() else {}
    except msgspec.DecodeError:
        return {}
    return options if isinstance(options, dict) else {}


def _requester(header: bytes) -> dict[str, Any] | None:
    """The Nats-Request-Info of a request that came through an import, else None."""
    if not header:
        return None
    value = headers.header_value(header, b"Nats-Request-Info")
    if value is None:
        return None
    try:
        info = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return None
    return info if isinstance(info, dict) else None


def _traffic(msgs: int, size: int) -> dict[str, Any]:
    zero = {"msgs": 0, "bytes": 0}
    return {"msgs": msgs, "bytes": size, "gateways": dict(zero), "routes": dict(zero),
            "leafs": dict(zero)}  # fmt: skip


def _account_stat(name: str, figures: accountz.AccountFigures) -> dict[str, Any]:
    """An account's entry of account_statz (and of its connections advisory)."""
    return {
        "acc": name, "name": name, "conns": figures.conns, "leafnodes": 0,
        "total_conns": figures.conns, "num_subscriptions": figures.subs,
        "sent": _traffic(figures.out_msgs, figures.out_bytes),
        "received": _traffic(figures.in_msgs, figures.in_bytes), "slow_consumers": 0,
    }  # fmt: skip


def permissions_json(perms: Permissions) -> dict[str, Any]:
    """A user's permissions as $SYS.REQ.USER.INFO shows them (nats-server's JSON)."""
    out: dict[str, Any] = {}
    for name, direction in (("publish", perms.publish), ("subscribe", perms.subscribe)):
        if direction is None:
            continue
        lists = {}
        if direction.allow:
            lists["allow"] = list(direction.allow)
        if direction.deny:
            lists["deny"] = list(direction.deny)
        if lists:
            out[name] = lists
    responses = perms.allow_responses
    if responses is not None:
        out["responses"] = {
            "max": responses.max_msgs,
            "ttl": int(responses.expires * 1_000_000_000),
        }
    return out


def _sys_query(endpoint: str, options: dict[str, Any]) -> dict[str, str]:
    """A $SYS request's JSON options as the HTTP query they stand for."""
    out: dict[str, str] = {}
    names = {
        "subscriptions": "subs",
        "subscriptions_detail": "subs",
        "account": "acc",
        "consumer": "consumers",  # JszOptions
    }
    for key, value in options.items():
        if key in ("server_name", "cluster", "host", "tags", "domain", "exact_match"):
            continue
        name = names.get(key, key)
        if key == "subscriptions_detail" and value:
            out[name] = "detail"
        elif isinstance(value, bool):
            if name not in out:
                out[name] = "true" if value else "false"
        elif isinstance(value, int | str):
            out[name] = str(value)
    return out


def _filtered_out(state: BrokerState, options: dict[str, Any]) -> bool:
    tags = options.get("tags")
    if isinstance(tags, list) and any(
        str(tag).strip().lower() not in state.opts.server_tags for tag in tags
    ):
        return True  # every tag asked for must be one of ours
    name = options.get("server_name")
    if isinstance(name, str) and name:
        if options.get("exact_match"):
            return name != state.server_name
        return name not in state.server_name
    host = options.get("host")
    return bool(isinstance(host, str) and host and host != state.opts.host)
