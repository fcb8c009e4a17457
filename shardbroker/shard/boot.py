"""How a shard process starts, meets its peers, ticks and ends: the scaffold that the
worker and the storage shard share (``python -m shardbroker.<role>.main --shard N
--boot-fd FD``).

Owner: a shard process (worker or storage), before and around its role's own work.

Order: read the ShardBoot from the inherited boot fd and tie our life to the
supervisor's (parent-death signal), set up logging from the Options in it, then run the
role's ``serve`` coroutine on uvloop. Inside it the role attaches its slot of the stats
segment (``attach_slot``), greets the live peers and waits for their HELLO
(``meet_peers``), starts serving, reports READY, and ticks (``Ticker``) until it is
asked to stop. Any failure before READY exits with EXIT_BOOT_FAILURE, so the
supervisor halts the broker instead of restart-looping.

The tick is the heartbeat (STYLE.md, "Heartbeat from the loop itself"): written by a
timer on the shard's own loop, so it stops when the loop is stuck, never from a side
thread. It keeps its rhythm under load because every turn of the loop is bounded
(member.py, the drain budget).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from shardbroker import const
from shardbroker import log as logs
from shardbroker.config import options as options_mod
from shardbroker.config.options import Options
from shardbroker.mesh import stats
from shardbroker.mesh.mesh import ShardBoot, decode_boot
from shardbroker.shard.member import MeshMember

log = logging.getLogger("shardbroker.shard")

_PR_SET_PDEATHSIG = 1
# The cyclic collector runs its youngest generation after this many new container
# objects (CPython's default is 700). A shard holds many long-lived ones (subscriptions,
# interest, trie nodes, consumers): at the default cadence, collections cost as much as
# the work itself while they are being made (a connection subscribing to 100,000
# subjects). Cyclic garbage is rare here; waiting longer for it costs little memory.
GC_THRESHOLD = 50_000
PEER_WAIT = 15.0  # seconds to wait for every live peer's HELLO at boot
_PEER_POLL = 0.005  # seconds between drains while waiting for HELLOs


def read_boot(fd: int) -> ShardBoot:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return decode_boot(b"".join(chunks))


def die_with_parent(supervisor_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies; check it is not gone already."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor_pid:
        os._exit(const.EXIT_BOOT_FAILURE)


def shard_main(
    role: str,
    serve: Callable[[ShardBoot, Options], Coroutine[Any, Any, int]],
    argv: list[str] | None = None,
    prepare: Callable[[Options], None] | None = None,
) -> int:
    """The whole life of a shard process; returns its exit status."""
    parser = argparse.ArgumentParser(prog=f"shardbroker.{role}.main")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--boot-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # so is a reload (or a terminal hangup)
    try:
        boot = read_boot(args.boot_fd)
        die_with_parent(boot.supervisor_pid)
        opts = options_mod.decode(boot.options)
    except Exception as exc:
        # Logging is set up from these very options: stderr (the supervisor's) is all we have.
        print(f"shardbroker {role} {args.shard}: bad boot data: {exc}", file=sys.stderr)  # noqa: T201
        return const.EXIT_BOOT_FAILURE
    logs.setup(opts.log_file, opts.debug, opts.trace, opts.logtime)
    if prepare is not None:
        prepare(opts)
    # What exists now (modules, options) lives as long as the process: keep it out of
    # every collection.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        return uvloop.run(serve(boot, opts))
    except Exception:
        log.exception("%s shard %d failed", role, args.shard)
        return 1


def attach_slot(boot: ShardBoot) -> stats.ShardSlot:
    """Our slot of the stats segment, with who we are in it."""
    n = boot.mesh.n_shards
    table = stats.ShardTable(stats.attach(boot.mesh.port, n), n)
    slot = table.slots[boot.shard_id]
    slot.set("pid", os.getpid())
    slot.set("generation", boot.generation)
    slot.set("start_ns", time.time_ns())
    return slot


async def meet_peers(member: MeshMember, live: list[int], wait: float = PEER_WAIT) -> bool:
    """Greet the live peers and serve the mesh until each has answered (or was
    announced down). False if stopped meanwhile; raises TimeoutError after ``wait``."""
    loop = asyncio.get_running_loop()
    member.say_hello(live)
    waiting = set(live)
    deadline = loop.time() + wait
    while True:
        member.on_doorbell()
        waiting = {p for p in waiting if not member.heard_from(p)}
        if not waiting:
            return True
        if member.stopping.is_set():
            return False
        if loop.time() > deadline:
            raise TimeoutError(f"no HELLO from shards {sorted(waiting)}")
        await asyncio.sleep(_PEER_POLL)


class Ticker:
    """Every TICK_INTERVAL: the heartbeat, then the role's tick.

    A timer of the loop's own (``call_at`` on a fixed cadence), so a tick runs in the
    first turn after it is due, not a turn later as a task woken by its timer would;
    after a long turn it runs once, not in a burst. It is rescheduled before the role's
    tick runs, so a tick that fails (the loop logs it) does not stop the heartbeat.
    """

    __slots__ = ("_due", "_handle", "_loop", "_slot", "_tick")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        slot: stats.ShardSlot | None,
        tick: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._slot = slot
        self._tick = tick
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due = self._loop.time() + const.TICK_INTERVAL
        self._handle = self._loop.call_at(self._due, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        loop = self._loop
        self._due = max(self._due + const.TICK_INTERVAL, loop.time())
        self._handle = loop.call_at(self._due, self._run)
        if self._slot is not None:
            self._slot.set("heartbeat_ns", time.monotonic_ns())
        self._tick()
