"""Entry point of the storage shard.

``python -m shardbroker.jetstream.main --shard N --boot-fd FD``.

Started by the supervisor by module path when JetStream is enabled; exactly one. Reads its
ShardBoot, dies with the supervisor, opens every stream under the store directory (the
recovery pass), advertises `$JS.API.>` and the streams' subjects, greets its peers and
reports READY. Any failure before READY exits with EXIT_BOOT_FAILURE so the supervisor
halts instead of restart-looping. SIGTERM closes every store cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

import uvloop

from shardbroker import const, log
from shardbroker.config import options as options_mod
from shardbroker.config.options import Options
from shardbroker.jetstream.engine import JetStream
from shardbroker.jetstream.peer import StoragePeer
from shardbroker.mesh import stats
from shardbroker.mesh.boot import die_with_parent, read_boot
from shardbroker.mesh.mesh import Mesh, ShardBoot

logger = logging.getLogger("shardbroker.jetstream")

_PEER_WAIT = 15.0  # seconds to wait for every live peer's HELLO at boot
_MONITOR_TICKS = 3  # ticks between copies of the JetStream totals to the shard slot


async def serve(boot: ShardBoot, opts: Options) -> int:
    loop = asyncio.get_running_loop()
    mesh = Mesh(boot.mesh, boot.shard_id)
    table = stats.ShardTable(stats.attach(boot.mesh.port, boot.mesh.n_shards), boot.mesh.n_shards)
    slot = table.slots[boot.shard_id]
    slot.set("pid", os.getpid())
    slot.set("generation", boot.generation)
    slot.set("start_ns", time.time_ns())
    try:
        engine = JetStream(opts, options_mod.jetstream_dir(opts), boot.server_id)
    except OSError as exc:
        logger.error("cannot open the JetStream store directory: %s", exc)
        return const.EXIT_BOOT_FAILURE
    peer = StoragePeer(boot, loop, mesh, engine)
    engine.attach(peer)
    loop.add_reader(mesh.doorbell.fileno(), peer.on_doorbell)
    loop.add_signal_handler(signal.SIGTERM, peer.stopping.set)

    peer.say_hello(boot.live)
    waiting = set(boot.live)
    deadline = loop.time() + _PEER_WAIT
    while True:
        peer.on_doorbell()
        waiting = {p for p in waiting if not peer.peer_up[p] and peer.peer_gen[p] < 0}
        if not waiting:
            break
        if peer.stopping.is_set():
            engine.close()
            return const.EXIT_OK
        if loop.time() > deadline:
            logger.error(
                "storage shard %d: no HELLO from shards %s; giving up",
                boot.shard_id,
                sorted(waiting),
            )
            engine.close()
            return const.EXIT_BOOT_FAILURE
        await asyncio.sleep(0.005)
    peer.report_ready()
    logger.debug("storage shard %d (generation %d) ready", boot.shard_id, boot.generation)

    async def ticker() -> None:
        ticks = 0
        while True:
            await asyncio.sleep(const.TICK_INTERVAL)
            slot.set("heartbeat_ns", time.monotonic_ns())
            engine.tick()
            peer.flush()
            ticks += 1
            if ticks % _MONITOR_TICKS == 1:
                for name, value in engine.monitor_figures().items():
                    slot.set(name, value)

    tick_task = loop.create_task(ticker())
    await peer.stopping.wait()
    tick_task.cancel()
    peer.flush()
    engine.close()
    return const.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shardbroker.jetstream.main")
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
        print(f"shardbroker storage {args.shard}: bad boot data: {exc}", file=sys.stderr)
        return const.EXIT_BOOT_FAILURE
    log.setup(opts.log_file, opts.debug, opts.trace, opts.logtime)
    try:
        return uvloop.run(serve(boot, opts))
    except Exception:
        logger.exception("storage shard %d failed", args.shard)
        return 1


if __name__ == "__main__":
    sys.exit(main())
