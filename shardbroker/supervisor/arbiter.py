"""The supervisor: shard 0 of the mesh, and the parent of every other shard.

gunicorn's arbiter on an asyncio loop: signal handlers only record what happened;
the loop reaps children, restarts crashed workers with jittered backoff, and stops the
tree. On the mesh it is a member like any shard (shard/member.py): it drains its rings,
answers HELLO, advertises the $SYS subjects the monitor answers, and takes the verbs
meant for it (READY, RELOADED, TRIMMED) as ``on_<verb>`` methods; it keeps no interest
of its peers. Exit codes are a contract (const.py): a shard that exits before it reported READY
halts the whole broker with EXIT_BOOT_FAILURE instead of restart-looping.

When a worker dies the supervisor (1) tells every other shard ``SDOWN <id> <gen>
<pos>``, where pos is where the dead shard's ring to that shard ends, so the survivor
drops its interest and skips its stale frames, (2) returns the connection slots it held
to the broker-wide semaphore, and (3) before the respawn, empties every ring into the
dead shard (its consumer is gone, so the supervisor may move the read counter).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import time

import uvloop

from shardbroker import const, core
from shardbroker.config import jwt
from shardbroker.config import options as options_mod
from shardbroker.config.merge import OptionsSource
from shardbroker.config.options import Options, account_names
from shardbroker.config.rate_limit import rate_keys
from shardbroker.errors import HaltBroker
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.mesh.ring import Ring
from shardbroker.monitor.service import Monitor
from shardbroker.protocol import frames
from shardbroker.protocol.frames import ATRIM, LDM, REBALANCE, SDOWN
from shardbroker.shard.member import MeshMember
from shardbroker.supervisor import liveness, rebalance, sdnotify
from shardbroker.supervisor.claims import AccountClaims
from shardbroker.supervisor.reload import Reloader, remove_file
from shardbroker.supervisor.spawn import (
    STORAGE_MODULE,
    WORKER_MODULE,
    SharedResources,
    reserve_port,
    spawn_shard,
    usable_cores,
)

log = logging.getLogger("shardbroker.supervisor")


_STOP_GRACE = 5.0  # seconds shards get to exit after SIGTERM before SIGKILL
_KILL_GRACE = 5.0  # seconds for a SIGKILLed shard to end (only a stuck syscall delays it)
_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0
_STABLE_AFTER = 10.0  # a worker up this long resets its backoff
_TICK = 0.25  # seconds between supervisor ticks (heartbeats, watchdog, rebalancing)
_FRESH = 1.0  # seconds: a heartbeat older than this holds the systemd watchdog back


def new_server_seed() -> str:
    """The broker's server NKEY seed: its public key is the server id, as nats-server's."""
    return jwt.new_seed("server")


class ShardProcess:
    __slots__ = (
        "failures",
        "generation",
        "module",
        "pid",
        "ready",
        "ready_ns",
        "restarts",
        "role",
        "sentenced",
        "shard_id",
        "started",
    )

    def __init__(self, shard_id: int, role: str = "worker", module: str = WORKER_MODULE) -> None:
        self.shard_id = shard_id
        self.role = role
        self.module = module
        self.generation = -1
        self.pid = 0
        self.ready = False
        self.started = 0.0
        self.failures = 0
        self.restarts = 0
        # monotonic_ns of its READY; liveness judges a shard that has not ticked yet from it.
        self.ready_ns = 0
        # Killed for a stuck loop and not reaped yet: do not kill it again.
        self.sentenced = False


class Arbiter:
    def __init__(self, opts: Options, source: OptionsSource | None = None) -> None:
        # The running Options; a reload replaces them (and shards spawned later boot
        # with the new ones). `source` is where they came from, re-read on reload.
        self.opts = opts
        self.reloader = Reloader(self, source)
        # Operator mode: account JWTs pushed on $SYS (supervisor/claims.py).
        self.claims = AccountClaims(self)
        self.server_seed = new_server_seed()
        self.server_id = jwt.public_key(self.server_seed)
        self.xkey_seed = jwt.new_seed("curve")
        self.n_workers = opts.workers or usable_cores()
        # The storage shard, when JetStream is on, comes after the workers.
        self.n_shards = 1 + self.n_workers + (1 if opts.jetstream else 0)
        self.shards = {i: ShardProcess(i) for i in range(1, self.n_workers + 1)}
        if opts.jetstream:
            storage = self.n_workers + 1
            self.shards[storage] = ShardProcess(storage, "storage", STORAGE_MODULE)
        self.stopping = False
        self.lame_duck = False
        self.halt_reason: str | None = None
        self.port = 0
        self.websocket_port = 0  # 0: no websocket listener
        self.ports_file = ""
        self.resources: SharedResources | None = None
        self.mesh: Mesh | None = None
        # Our seat in the mesh (shard/member.py), once the shared memory exists.
        self.member: MeshMember | None = None
        # Set by handle_stop: the main flow then stops the shards (stop_shards).
        self.stop_requested: asyncio.Event | None = None
        # Set once every shard has exited after a stop was requested.
        self.done: asyncio.Event | None = None
        self.all_ready: asyncio.Event | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._next_rebalance = 0.0
        self._stuck_storage_reported = False
        # HTTP monitoring and $SYS.REQ.SERVER answers (monitor/service.py).
        self.monitor: Monitor | None = None

    # -- entry ---------------------------------------------------------------------------

    def run(self) -> int:
        return uvloop.run(self.main())

    async def main(self) -> int:
        self.done = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.all_ready = asyncio.Event()
        opts = self.opts
        try:
            keeper = reserve_port(opts.host, opts.port)
        except OSError as exc:
            raise HaltBroker(
                f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}"
            ) from exc
        self.port = keeper.getsockname()[1]
        ws_keeper = None
        ws = opts.websocket
        try:
            if ws is not None and ws.port:
                try:
                    ws_keeper = reserve_port(ws.host, ws.port)
                except OSError as exc:
                    raise HaltBroker(
                        f"cannot listen for websocket clients on {ws.host}:{ws.port}: "
                        f"{exc.strerror or exc}"
                    ) from exc
                self.websocket_port = ws_keeper.getsockname()[1]
            return await self._serve()
        finally:
            keeper.close()
            if ws_keeper is not None:
                ws_keeper.close()
            if self.monitor is not None:
                self.monitor.close()
            self._stop_watching_mesh()
            self._cleanup()

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        opts = self.opts
        ring_size = options_mod.ring_size(opts)
        try:
            self.resources = SharedResources(
                self.port, self.n_shards, ring_size, opts.max_connections
            )
        except OSError as exc:
            raise HaltBroker(f"cannot create shared memory: {exc}") from exc
        res = self.resources
        res.accounts.set_names(account_names(opts))
        res.rates.set_names(list(rate_keys(opts)))
        # Before any shard is spawned: takes NOTIFY_SOCKET out of the shards' environment.
        sdnotify.notifier()
        self.mesh = Mesh(res.spec, const.SUPERVISOR_SHARD, buf=res.mesh_buf)
        member = self.member = MeshMember(const.SUPERVISOR_SHARD, 0, loop, self.mesh, self)
        self.monitor = Monitor(self, res.table, res.rates)
        # The $SYS requests the monitor answers, in the system account: every shard
        # that says HELLO hears of them.
        system = options_mod.system_account_name(opts).encode()
        if system:
            for subject in (*self.monitor.sys_subjects(), *self.claims.subjects()):
                member.local.add(system, subject)
        self.claims.start()
        loop.add_reader(self.mesh.doorbell.fileno(), member.on_doorbell)
        loop.add_signal_handler(signal.SIGINT, self.handle_stop)
        loop.add_signal_handler(signal.SIGTERM, self.handle_term)
        loop.add_signal_handler(signal.SIGUSR2, self.handle_usr2)
        loop.add_signal_handler(signal.SIGHUP, self.handle_hup)

        log.info("Starting shardbroker")
        log.info("  Version:  %s", const.SERVER_VERSION)
        log.info("  ID:       %s", self.server_id)
        log.info("  Workers:  %d", self.n_workers)
        if core.IMPLEMENTATION == "compiled":
            log.info("  Core:     compiled")
        else:
            log.warning(
                "  Core:     pure Python (%s); messages take the slower path",
                "asked for by " + core.PURE_ENV
                if os.environ.get(core.PURE_ENV)
                else "the compiled core is not built: pip install -e . builds it",
            )
        if opts.jetstream:
            log.info("Starting JetStream")
            log.info("  Store Directory: %s", options_mod.jetstream_dir(opts))
        # The storage shard first: every worker then has it among the live peers it waits
        # for, so no worker listens before JetStream's interest ($JS.API.>) reached it.
        for shard in sorted(self.shards.values(), key=lambda s: s.role != "storage"):
            self.spawn(shard)
        assert self.all_ready is not None and self.stop_requested is not None
        ready_wait = asyncio.ensure_future(self.all_ready.wait())
        done_wait = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait(
            {ready_wait, done_wait},
            timeout=const.READY_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        ready_wait.cancel()
        done_wait.cancel()
        if not self.all_ready.is_set():
            if self.halt_reason is None and not self.stopping:
                self.halt_reason = "workers did not report ready in time"
            await self.stop_shards()
            if self.halt_reason is not None:
                raise HaltBroker(self.halt_reason)
            return const.EXIT_OK
        if self.websocket_port:
            assert opts.websocket is not None
            scheme = "wss" if opts.websocket.tls is not None else "ws"
            log.info(
                "Listening for websocket clients on %s://%s:%d",
                scheme, opts.websocket.host, self.websocket_port,
            )  # fmt: skip
            if opts.websocket.tls is None:
                log.warning("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!")
        log.info("Listening for client connections on %s:%d", opts.host, self.port)
        if opts.http_port:
            assert self.monitor is not None
            try:
                await self.monitor.start_http()
            except OSError as exc:
                self.halt_reason = (
                    f"cannot listen for monitoring on {options_mod.http_host(opts)}:"
                    f"{opts.http_port}: {exc.strerror or exc}"
                )
                await self.stop_shards()
                raise HaltBroker(self.halt_reason) from exc
        self._write_files()
        log.info("Server is ready")
        sdnotify.notify_ready(
            f"Serving clients on {opts.host}:{self.port} with {self.n_workers} workers"
        )
        self.tick()
        # A stop request, not the shards' exit: a shard that is stuck would never exit
        # on SIGTERM, and stop_shards kills it after the grace period.
        await self.stop_requested.wait()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        await self.stop_shards()
        if self.halt_reason is not None:
            raise HaltBroker(self.halt_reason)
        return const.EXIT_OK

    def _stop_watching_mesh(self) -> None:
        if self.mesh is not None:
            asyncio.get_running_loop().remove_reader(self.mesh.doorbell.fileno())

    # -- files -----------------------------------------------------------------------------

    def _write_files(self) -> None:
        opts = self.opts
        if opts.pid_file:
            with open(opts.pid_file, "w") as f:
                f.write(str(os.getpid()))
        if opts.ports_file_dir:
            host = opts.host if opts.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            self.ports_file = os.path.join(opts.ports_file_dir, f"shardbroker_{os.getpid()}.ports")
            tmp = self.ports_file + ".tmp"
            ports: dict[str, list[str]] = {"nats": [f"nats://{host}:{self.port}"]}
            if self.monitor is not None and self.monitor.http_port:
                ports["monitoring"] = [f"http://{host}:{self.monitor.http_port}"]
            ws = opts.websocket
            if self.websocket_port and ws is not None:
                ws_host = ws.host if ws.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
                scheme = "wss" if ws.tls is not None else "ws"
                ports["websocket"] = [f"{scheme}://{ws_host}:{self.websocket_port}"]
            with open(tmp, "w") as f:
                json.dump(ports, f)
            os.replace(tmp, self.ports_file)

    def rewrite_files(self, old: Options) -> None:
        """A reload changed pid_file or ports_file_dir: move the files."""
        if old.pid_file != self.opts.pid_file:
            remove_file(old.pid_file)
        if old.ports_file_dir != self.opts.ports_file_dir:
            remove_file(self.ports_file)
            self.ports_file = ""
        assert self.all_ready is not None
        if self.all_ready.is_set():
            self._write_files()

    def _cleanup(self) -> None:
        for path in (self.ports_file, self.opts.pid_file):
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if self.resources is not None:
            self.resources.remove()

    # -- shards ----------------------------------------------------------------------------

    def live_shards(self, excluding: int) -> list[int]:
        return [const.SUPERVISOR_SHARD] + [
            s.shard_id for s in self.shards.values() if s.pid and s.shard_id != excluding
        ]

    def spawn(self, shard: ShardProcess) -> None:
        res = self.resources
        mesh = self.mesh
        assert res is not None and mesh is not None
        # Whatever waits in rings into this shard was meant for its previous life.
        self._empty_rings_into(shard.shard_id)
        slot = res.table.slots[shard.shard_id]
        slot.clear()
        shard.generation += 1
        if shard.generation > 0:
            shard.restarts += 1
        slot.set("restarts", shard.restarts)
        shard.ready = False
        shard.sentenced = False
        shard.started = time.monotonic()
        boot = ShardBoot(
            shard_id=shard.shard_id,
            generation=shard.generation,
            mesh=res.spec,
            live=self.live_shards(excluding=shard.shard_id),
            server_id=self.server_id,
            supervisor_pid=os.getpid(),
            options=options_mod.encode(self.opts),
            server_seed=self.server_seed,
            xkey_seed=self.xkey_seed,
            websocket_port=self.websocket_port,
        )
        shard.pid = spawn_shard(boot, res.doorbell_fds, shard.module)
        # A pidfd becomes readable when the process exits (uvloop keeps SIGCHLD to itself).
        pidfd = os.pidfd_open(shard.pid)
        asyncio.get_running_loop().add_reader(pidfd, self.on_shard_exit, shard, shard.pid, pidfd)
        log.debug(
            "spawned shard %d (generation %d) as pid %d",
            shard.shard_id,
            shard.generation,
            shard.pid,
        )

    def _ring(self, src: int, dst: int) -> Ring:
        """A view of any ring of the mesh (the supervisor's own are in self.mesh)."""
        res = self.resources
        assert res is not None
        return Ring(res.mesh_buf, res.layout.ring_offset(src, dst), res.layout.ring_size)

    def _empty_rings_into(self, shard_id: int) -> None:
        mesh = self.mesh
        assert mesh is not None
        for peer in range(self.n_shards):
            if peer == shard_id:
                continue
            ring = self._ring(peer, shard_id)
            if ring.discard_all():
                mesh.doorbells[peer].ring()  # its producer waited for room
            ring.close()

    def on_shard_exit(self, shard: ShardProcess, pid: int, pidfd: int) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        if shard.pid == pid:
            self.shard_exited(shard, code)

    def shard_exited(self, shard: ShardProcess, code: int) -> None:
        was_ready = shard.ready
        shard.pid = 0
        shard.ready = False
        self.announce_down(shard)
        self.reloader.shard_gone(shard.shard_id)
        assert self.done is not None
        if self.stopping:
            if all(s.pid == 0 for s in self.shards.values()):
                self.done.set()
            return
        if self.lame_duck and shard.role == "worker":
            # Done with its clients (or gone anyway): lame duck restarts no worker.
            if not any(s.pid for s in self.shards.values() if s.role == "worker"):
                self.handle_stop()
            return
        if not was_ready:
            how = "exited" if code >= 0 else f"was killed by signal {-code}"
            self.halt_reason = (
                f"{shard.role} shard {shard.shard_id} {how} (code {code}) before it was ready; "
                "stopping the broker instead of restarting it (see the lines above)"
            )
            log.error("%s", self.halt_reason)
            self.handle_stop()
            return
        if time.monotonic() - shard.started > _STABLE_AFTER:
            shard.failures = 0
        delay = min(_BACKOFF_MAX, _BACKOFF_START * (2**shard.failures))
        delay *= 0.5 + random.random()
        shard.failures += 1
        how = f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}"
        log.warning("%s shard %d %s; restarting in %.2fs", shard.role, shard.shard_id, how, delay)
        asyncio.get_running_loop().call_later(delay, self._respawn, shard)

    def _respawn(self, shard: ShardProcess) -> None:
        if self.lame_duck and shard.role == "worker":
            return
        if not self.stopping and shard.pid == 0:
            self.spawn(shard)

    def announce_down(self, shard: ShardProcess) -> None:
        """Tell every other shard that this generation of the shard is gone."""
        res = self.resources
        mesh = self.mesh
        member = self.member
        assert res is not None and mesh is not None and member is not None
        dead = shard.shard_id
        for other in self.shards.values():
            if other.shard_id == dead or other.pid == 0:
                continue
            ring = self._ring(dead, other.shard_id)
            end = ring.write_counter
            ring.close()
            mesh.send(other.shard_id, frames.control(SDOWN, dead, shard.generation, end))
        inbound = mesh.inbound[dead]
        assert inbound is not None
        member.peer_down(dead, shard.generation, inbound.write_counter)
        held = res.table.slots[dead].get("connections")
        if held:
            res.connection_limit.release(held)
        res.table.slots[dead].clear()
        res.accounts.clear_row(dead)
        res.table.slots[dead].set("restarts", shard.restarts)
        mesh.flush()

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> None:
        """Every _TICK once the broker is ready: own heartbeat, then judge the shards'."""
        res = self.resources
        if res is None or self.stopping:
            return
        own = res.table.slots[const.SUPERVISOR_SHARD]
        own.set("pid", os.getpid())
        own.set("workers", self.n_workers)
        own.set("heartbeat_ns", time.monotonic_ns())
        self.check_heartbeats()
        sdnotify.notify_watchdog_if_due(self.heartbeats_fresh())
        if self.monitor is not None and not self.lame_duck:
            self.monitor.account_events_due()
        if self.opts.rebalance and not self.lame_duck:
            now = time.monotonic()
            if now >= self._next_rebalance:
                self._next_rebalance = now + self.opts.rebalance_interval
                self.rebalance_workers()
        self._tick_handle = asyncio.get_running_loop().call_later(_TICK, self.tick)

    def check_heartbeats(self) -> None:
        """Kill (SIGKILL) every worker whose loop is stuck; reaping restarts it."""
        res = self.resources
        assert res is not None
        timeout = self.opts.worker_heartbeat_timeout
        slots = res.table.slots
        stuck = liveness.stuck_shards(
            self.shards.values(),
            lambda shard_id: slots[shard_id].get("heartbeat_ns"),
            time.monotonic_ns(),
            int(timeout * 1e9),
        )
        for shard, silent_ns in stuck:
            if shard.role != "worker":
                if not self._stuck_storage_reported:
                    self._stuck_storage_reported = True
                    log.warning(
                        "%s shard %d (pid %d) has not ticked for %.1fs",
                        shard.role, shard.shard_id, shard.pid, silent_ns / 1e9,
                    )  # fmt: skip
                continue
            log.error(
                "worker shard %d (pid %d) is stuck: no heartbeat for %.1fs "
                "(worker_heartbeat_timeout %gs); killing it",
                shard.shard_id, shard.pid, silent_ns / 1e9, timeout,
            )  # fmt: skip
            shard.sentenced = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(shard.pid, signal.SIGKILL)

    def rebalance_workers(self) -> None:
        """Ask crowded workers to shed clients (supervisor/rebalance.py); only when every
        worker is up and ready, so that the shed clients have somewhere to go."""
        res = self.resources
        mesh = self.mesh
        assert res is not None and mesh is not None
        workers = [s for s in self.shards.values() if s.role == "worker"]
        if not all(s.pid and s.ready for s in workers):
            return
        counts = {s.shard_id: res.table.slots[s.shard_id].get("connections") for s in workers}
        moves = rebalance.plan(counts)
        for shard_id, count in moves.items():
            log.info(
                "rebalancing: worker shard %d holds %d of %d clients; asking it to close %d",
                shard_id, counts[shard_id], sum(counts.values()), count,
            )  # fmt: skip
            mesh.send(shard_id, frames.control(REBALANCE, count))
        if moves:
            mesh.flush()

    def heartbeats_fresh(self) -> bool:
        """Every ready shard ticked within the last second (ten ticks): what the systemd
        watchdog vouches for. A stuck worker pauses the pings; with liveness on it is
        replaced (and the pings resume) before a WatchdogSec above the timeout runs out,
        with liveness off systemd restarts the broker."""
        res = self.resources
        assert res is not None
        limit_ns = int(_FRESH * 1e9)
        now = time.monotonic_ns()
        slots = res.table.slots
        return all(
            liveness.silent_for_ns(shard, slots[shard.shard_id].get("heartbeat_ns"), now)
            <= limit_ns
            for shard in self.shards.values()
            if shard.pid and shard.ready
        )

    # -- reload ------------------------------------------------------------------------------

    def handle_hup(self) -> None:
        """SIGHUP: reload the configuration (supervisor/reload.py)."""
        log.info('Trapped "hangup" signal')
        if not self.stopping:
            sdnotify.notify_reloading()
            self.reloader.reload()

    # -- stopping ----------------------------------------------------------------------------

    def handle_term(self) -> None:
        """SIGTERM stops the broker, except in lame duck mode, which ends on its own
        (nats-server ignores SIGTERM then too; SIGINT still stops at once)."""
        if self.lame_duck:
            log.info("lame duck mode in progress; SIGTERM ignored (SIGINT stops now)")
            return
        self.handle_stop()

    def handle_usr2(self) -> None:
        """Lame duck mode (nats-server: SIGUSR2, `--signal ldm`): every worker stops
        accepting, sends its clients an INFO with ldm:true, waits lame_duck_grace_period,
        closes them spread over lame_duck_duration and exits; then the broker stops."""
        res = self.resources
        mesh = self.mesh
        assert self.all_ready is not None
        if self.stopping or self.lame_duck or not self.all_ready.is_set():
            return
        assert res is not None and mesh is not None
        self.lame_duck = True
        log.info("Entering lame duck mode, stop accepting new clients")
        sdnotify.notify_status("Lame duck mode: not accepting clients, closing the others")
        res.table.slots[const.SUPERVISOR_SHARD].set("lame_duck", 1)
        workers = [s for s in self.shards.values() if s.role == "worker" and s.pid]
        for shard in workers:
            mesh.send(shard.shard_id, frames.control(LDM))
        mesh.flush()
        if not workers:
            self.handle_stop()
            return
        asyncio.get_running_loop().call_later(
            self.opts.lame_duck_grace_period, self._lame_duck_closing
        )

    def _lame_duck_closing(self) -> None:
        if not self.stopping:
            log.info("Closing existing clients")

    def handle_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        assert self.stop_requested is not None
        self.stop_requested.set()
        log.info("Initiating Shutdown...")
        sdnotify.notify_stopping("Shutting down")
        for shard in self.shards.values():
            if shard.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(shard.pid, signal.SIGTERM)
        assert self.done is not None
        if all(s.pid == 0 for s in self.shards.values()):
            self.done.set()

    async def stop_shards(self) -> None:
        """Wait for every shard to exit after SIGTERM; SIGKILL what is left.

        Each shard is reaped by its pidfd reader (on_shard_exit), which sets ``done`` once
        the last one is gone while stopping; a killed shard is reaped the same way.
        """
        self.handle_stop()
        done = self.done
        assert done is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_GRACE):
                await done.wait()
        if not done.is_set():
            for shard in self.shards.values():
                if shard.pid:
                    log.warning("shard %d did not stop in time; killing it", shard.shard_id)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(shard.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_KILL_GRACE):
                    await done.wait()
            for shard in self.shards.values():
                if shard.pid:
                    log.error("shard %d (pid %d) outlived SIGKILL", shard.shard_id, shard.pid)
                    shard.pid = 0
        log.info("Server Exiting..")

    # -- mesh --------------------------------------------------------------------------------

    def end_of_drain(self) -> None:
        mesh = self.mesh
        member = self.member
        assert mesh is not None and member is not None
        if mesh.overflowing:
            mesh.retry_overflow()
        member.commit()

    def process_rmsg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: object,
        header_size: int,
        message: bytes,
        size_token: bytes | None,
    ) -> None:
        """Worker snapshots and $SYS requests, for the monitor; account claims."""
        if self.claims.is_claims_request(subject):
            if account == options_mod.system_account_name(self.opts).encode():
                self.claims.on_request(account, subject, reply, message[header_size:])
            return
        if self.monitor is not None and self.member is not None:
            self.monitor.on_message(
                self.member.current_peer,
                account,
                subject,
                reply,
                message[header_size:],
                message[:header_size],
            )

    def process_rmsg_run(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: object,
        payloads: list[bytes],
        sizes: object,
    ) -> None:
        """As process_rmsg, message by message."""
        if self.claims.is_claims_request(subject):
            if account == options_mod.system_account_name(self.opts).encode():
                for payload in payloads:
                    self.claims.on_request(account, subject, reply, payload)
            return
        if self.monitor is not None and self.member is not None:
            peer = self.member.current_peer
            for payload in payloads:
                self.monitor.on_message(peer, account, subject, reply, payload)

    def process_jrun(self, *args: object) -> None:
        """Deliveries are for workers' clients only."""

    def process_jmsg(self, *args: object) -> None:
        """As process_jrun."""

    # -- control verbs from the shards ----------------------------------------------------

    def on_ready(self, peer: int, generation: int) -> None:
        shard = self.shards.get(peer)
        if shard is not None and shard.generation == generation and shard.pid:
            shard.ready = True
            shard.ready_ns = time.monotonic_ns()
            if shard.generation > 0:
                log.info("%s shard %d restarted (pid %d)", shard.role, peer, shard.pid)
            assert self.all_ready is not None
            if all(s.ready for s in self.shards.values()):
                self.all_ready.set()

    def on_reloaded(self, shard_id: int, seq: int, status: bytes) -> None:
        self.reloader.on_reloaded(shard_id, seq, status)

    def apply_claims(self, new: Options) -> asyncio.Future[None]:
        """Account JWTs pushed on $SYS: in effect on every shard, as a reload is."""
        return self.reloader.apply(new, announce=False)

    def trim_account(self, account: str, limit: int) -> None:
        """An update lowered an account's connection limit below its connections: the
        workers close the excess (each its newest clients), the workers holding most
        of the account's clients first."""
        res = self.resources
        mesh = self.mesh
        if res is None or mesh is None:
            return
        names = res.accounts.names()
        if account not in names:
            return
        index = names.index(account)
        held = sorted(
            (
                (res.accounts.get(s.shard_id, index), s.shard_id)
                for s in self.shards.values()
                if s.pid and s.role == "worker"
            ),
            reverse=True,
        )
        excess = sum(count for count, _ in held) - limit
        for count, shard_id in held:
            take = min(excess, count)
            if take <= 0:
                break
            mesh.send(shard_id, frames.control(ATRIM, account.encode(), take))
            excess -= take
        mesh.flush()

    def on_trimmed(self, shard_id: int, count: int) -> None:
        self.reloader.on_trimmed(count)
