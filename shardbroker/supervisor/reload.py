"""Hot reload in the supervisor (SIGHUP, `shardbroker reload`, `serve --signal reload`).

Runs on the supervisor's loop. The procedure follows nats-server's reload.go:

1. re-read the same config file and re-apply the command-line flags on top
   (``OptionsSource``), validate, load the TLS files;
2. ``config.reload.diff`` the running Options against the new ones; any change that
   cannot be reloaded rejects the whole reload with one ERR line
   (``Failed to reload server configuration: config reload not supported for X: ...``)
   and nothing changes;
3. otherwise the supervisor applies its own part (logging, pid and ports files, the
   broker-wide connection limit), keeps the new Options for every shard it spawns from
   now on (a respawned worker boots with them), and sends ``RELOAD <seq> <options>`` to
   every live shard, which applies the changes by kind and answers ``RELOADED``;
4. once every shard answered, it logs ``Reloaded server configuration``.

A file that cannot be read or parsed never touches the running broker. Nothing here
blocks for long: the file is small and read once per signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Protocol

from shardbroker import log as log_setup
from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.config.options import Options, OptionsError, account_names
from shardbroker.config.parse import ConfigError
from shardbroker.config.rate_limit import rate_keys
from shardbroker.config.reload import Change, ReloadError, diff, encode_options_arg, kinds
from shardbroker.mesh.mesh import Mesh
from shardbroker.monitor.service import Monitor
from shardbroker.protocol import frames
from shardbroker.protocol.frames import RELOAD, TRIM
from shardbroker.security.tls import TLSConfigError, server_context
from shardbroker.supervisor import sdnotify
from shardbroker.supervisor.claims import AccountClaims
from shardbroker.supervisor.spawn import SharedResources


class ReloadedShard(Protocol):
    """What a reload reads of a shard process the supervisor keeps."""

    shard_id: int
    pid: int
    role: str


class ReloadHost(Protocol):
    """What a reload needs of the supervisor (arbiter.py's Arbiter is the one): the
    running Options it replaces, the shards and the mesh to tell, the shared resources
    whose connection slots it takes back, and the files to move."""

    opts: Options
    claims: AccountClaims
    resources: SharedResources | None
    mesh: Mesh | None
    monitor: Monitor | None
    stopping: bool

    @property
    def shards(self) -> Mapping[int, ReloadedShard]: ...

    def rewrite_files(self, old: Options) -> None: ...


log = logging.getLogger("shardbroker.supervisor")

RELOAD_FAILED = "Failed to reload server configuration"
RELOADED = "Reloaded server configuration"
NO_CONFIG_FILE = "can only reload config when a file is provided using -c or --config"
_ACK_TIMEOUT = 10.0  # seconds the shards have to confirm a reload
_LIMIT_RETRY = 0.1  # seconds between attempts to take back connection slots


def load_options(source: OptionsSource) -> Options:
    """The Options a reload would run with; raises ReloadError with a one-line reason
    naming the file, line and key where there is one."""
    if not source.config:
        raise ReloadError(NO_CONFIG_FILE)
    try:
        opts = build_options(source)
        if opts.tls is not None:
            server_context(opts.tls)
    except ConfigError as exc:
        raise ReloadError(str(exc)) from None
    except (OptionsError, TLSConfigError, ValueError) as exc:
        raise ReloadError(f"{source.config}: {exc}") from None
    return opts


class Reloader:
    """The supervisor's reload state: the sequence number, and the shards that have not
    confirmed the latest reload yet."""

    def __init__(self, arbiter: ReloadHost, source: OptionsSource | None) -> None:
        self.arbiter = arbiter
        self.source = source or OptionsSource()
        self.seq = 0
        self.waiting: set[int] = set()
        # Done when the shards confirmed the reload (or a later one).
        self.applied: list[asyncio.Future[None]] = []
        # A configuration reload is logged and told to systemd; an account update
        # pushed on $SYS is not.
        self.announce = True
        self._timer: asyncio.TimerHandle | None = None
        # Connection slots still to take back after max_connections was lowered.
        self.slot_debt = 0
        self._debt_timer: asyncio.TimerHandle | None = None

    # -- the procedure -------------------------------------------------------------------

    def reload(self) -> bool:
        """Reload now; False (and one ERR line) when the reload was refused."""
        try:
            new = self.arbiter.claims.keep_pushed(load_options(self.source))
            self.apply(new)
        except ReloadError as exc:
            log.error("%s: %s", RELOAD_FAILED, exc)
            sdnotify.notify_ready("Configuration reload refused; the previous one stays in effect")
            return False
        return True

    def apply(self, new: Options, announce: bool = True) -> asyncio.Future[None]:
        """Put `new` in effect: here, and in every live shard. The future is done once
        every shard confirmed it (or died, or the confirmation timed out). Raises
        ReloadError, changing nothing, for a change a running broker cannot take."""
        arbiter = self.arbiter
        res = arbiter.resources
        changes = diff(
            arbiter.opts, new, ring_size=res.layout.ring_size if res is not None else None
        )
        frame = frames.control(RELOAD, self.seq + 1, encode_options_arg(new))
        mesh = arbiter.mesh
        if mesh is not None and len(frame) > mesh.max_commit:
            raise ReloadError(
                f"the new options take {len(frame)} bytes, more than a shared-memory "
                f"ring frame can hold ({mesh.max_commit}); restart the broker instead"
            )
        self.seq += 1
        old = arbiter.opts
        arbiter.opts = new  # every shard spawned from now on boots with it
        if arbiter.monitor is not None:
            arbiter.monitor.config_load_ns = time.time_ns()  # /varz config_load_time
        self.apply_here(old, new, changes)
        # A configuration reload still waiting for its confirmations stays announced.
        self.announce = announce or (self.announce and bool(self.waiting))
        if announce:
            for change in changes:
                log.info("Reloaded: %s", change.describe())
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.applied.append(applied)
        self.waiting.clear()
        if changes and mesh is not None:
            for shard in arbiter.shards.values():
                if shard.pid:
                    mesh.send(shard.shard_id, frame)
                    self.waiting.add(shard.shard_id)
            mesh.flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.waiting:
            self._timer = asyncio.get_running_loop().call_later(_ACK_TIMEOUT, self._ack_timeout)
        else:
            self._done("Configuration reloaded")
        return applied

    def _done(self, status: str) -> None:
        """The shards confirmed (or will boot with it): systemd hears that the reload
        is over (arbiter.handle_hup said it began)."""
        if self.announce:
            log.info("%s", RELOADED)
            sdnotify.notify_ready(status)
        self._settle()

    def _settle(self) -> None:
        """Whoever waits for it hears that it is in effect (a shard applies reloads in
        order: a later one confirmed means the earlier ones are in effect too)."""
        applied, self.applied = self.applied, []
        for future in applied:
            if not future.done():
                future.set_result(None)

    def apply_here(self, old: Options, new: Options, changes: list[Change]) -> None:
        """The supervisor's own share of a reload."""
        changed = kinds(changes)
        if "logging" in changed:
            log_setup.setup(new.log_file, new.debug, new.trace, new.logtime)
        if "files" in changed:
            self.arbiter.rewrite_files(old)
        if any(c.name == "max_connections" for c in changes):
            self.resize_connection_limit(old.max_connections, new.max_connections)
        resources = self.arbiter.resources
        if resources is not None and any(c.name == "accounts" for c in changes):
            resources.accounts.set_names(account_names(new))
        if resources is not None:
            resources.rates.set_names(list(rate_keys(new)))

    # -- confirmations -----------------------------------------------------------------

    def on_reloaded(self, shard_id: int, seq: int, status: bytes) -> None:
        if seq != self.seq or shard_id not in self.waiting:
            return
        if status != b"ok":
            log.warning("shard %d could not apply all of the reload (see its log)", shard_id)
        self.shard_gone(shard_id)

    def shard_gone(self, shard_id: int) -> None:
        """A shard confirmed, or died (its next life boots with the new Options)."""
        if shard_id not in self.waiting:
            return
        self.waiting.discard(shard_id)
        if not self.waiting:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._done("Configuration reloaded")

    def _ack_timeout(self) -> None:
        self._timer = None
        if self.waiting:
            log.warning(
                "shards %s did not confirm the reload within %.0fs",
                sorted(self.waiting),
                _ACK_TIMEOUT,
            )
            self.waiting.clear()
            self._done("Configuration reloaded (some shards did not confirm)")

    # -- max_connections ---------------------------------------------------------------

    def resize_connection_limit(self, old: int, new: int) -> None:
        """The semaphore counts free slots. A higher limit adds slots; a lower one takes
        slots back: the free ones at once, and for the rest the workers close clients
        over the new limit at random (nats-server does the same) and keep their slots."""
        res = self.arbiter.resources
        if res is None:
            return
        self.slot_debt += max(0, old) - max(0, new)
        self._settle_debt()
        if self.slot_debt > 0:
            self._ask_workers_to_trim(self.slot_debt)

    def _ask_workers_to_trim(self, count: int) -> None:
        arbiter = self.arbiter
        res = arbiter.resources
        mesh = arbiter.mesh
        assert res is not None and mesh is not None
        held = sorted(
            (
                (res.table.slots[s.shard_id].get("connections"), s.shard_id)
                for s in arbiter.shards.values()
                if s.pid and s.role == "worker"
            ),
            reverse=True,
        )
        for connections, shard_id in held:
            take = min(count, connections)
            if take <= 0:
                continue
            mesh.send(shard_id, frames.control(TRIM, take))
            count -= take
        mesh.flush()

    def on_trimmed(self, count: int) -> None:
        """A worker closed `count` clients and kept their slots."""
        self.slot_debt -= count
        self._settle_debt()

    def _settle_debt(self) -> None:
        """Take free slots while some are owed; give back any taken twice (a client that
        left on its own while a worker was closing one for the same slot)."""
        if self._debt_timer is not None:
            self._debt_timer.cancel()
            self._debt_timer = None
        res = self.arbiter.resources
        if res is None:
            return
        limit = res.connection_limit
        if self.slot_debt < 0:
            limit.release(-self.slot_debt)
            self.slot_debt = 0
        while self.slot_debt and limit.try_acquire():
            self.slot_debt -= 1
        if self.slot_debt and not self.arbiter.stopping:
            self._debt_timer = asyncio.get_running_loop().call_later(
                _LIMIT_RETRY, self._settle_debt
            )


def remove_file(path: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
