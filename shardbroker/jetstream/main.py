"""Entry point of the storage shard.

``python -m shardbroker.jetstream.main --shard N --boot-fd FD``.

Started by the supervisor by module path when JetStream is enabled; exactly one. Reads its
ShardBoot, dies with the supervisor, opens every stream under the store directory (the
recovery pass), advertises `$JS.API.>` and the streams' subjects, greets its peers and
reports READY. Any failure before READY exits with EXIT_BOOT_FAILURE so the supervisor
halts instead of restart-looping. SIGTERM closes every store cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from shardbroker import const
from shardbroker.config import options as options_mod
from shardbroker.config.options import Options
from shardbroker.jetstream.engine import JetStream
from shardbroker.jetstream.peer import StoragePeer
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.shard.boot import Ticker, attach_slot, meet_peers, shard_main

logger = logging.getLogger("shardbroker.jetstream")

_MONITOR_TICKS = 3  # ticks between copies of the JetStream totals to the shard slot


async def serve(boot: ShardBoot, opts: Options) -> int:
    loop = asyncio.get_running_loop()
    mesh = Mesh(boot.mesh, boot.shard_id)
    slot = attach_slot(boot)
    try:
        engine = JetStream(opts, options_mod.jetstream_dir(opts), boot.server_id)
    except OSError as exc:
        logger.error("cannot open the JetStream store directory: %s", exc)
        return const.EXIT_BOOT_FAILURE
    peer = StoragePeer(boot, loop, mesh, engine)
    engine.attach(peer)
    member = peer.member
    loop.add_reader(mesh.doorbell.fileno(), member.on_doorbell)
    loop.add_signal_handler(signal.SIGTERM, member.stopping.set)

    try:
        met = await meet_peers(member, boot.live)
    except TimeoutError as exc:
        logger.error("storage shard %d: %s; giving up", boot.shard_id, exc)
        engine.close()
        return const.EXIT_BOOT_FAILURE
    if not met:
        engine.close()
        return const.EXIT_OK
    member.report_ready()
    logger.debug("storage shard %d (generation %d) ready", boot.shard_id, boot.generation)

    ticks = 0

    def tick() -> None:
        nonlocal ticks
        engine.tick()
        peer.flush()
        ticks += 1
        if ticks % _MONITOR_TICKS == 1:
            for name, value in engine.monitor_figures().items():
                slot.set(name, value)

    ticker = Ticker(loop, slot, tick)
    ticker.start()
    await member.stopping.wait()
    ticker.stop()
    peer.flush()
    engine.close()
    return const.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return shard_main("storage", serve, argv)


if __name__ == "__main__":
    sys.exit(main())
