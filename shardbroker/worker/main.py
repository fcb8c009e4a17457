"""Entry point of a worker shard: ``python -m shardbroker.worker.main --shard N --boot-fd FD``.

Started by the supervisor by module path, never forked from it. Reads its ShardBoot
(mesh, options, live peers) from the inherited boot fd, dies with the supervisor
(parent-death signal), greets its peers and waits for their HELLO, then binds the
client port with SO_REUSEPORT and reports READY. Any failure before READY exits with
EXIT_BOOT_FAILURE so the supervisor halts instead of restart-looping.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
import time

import uvloop

from shardbroker import const, log
from shardbroker.config import options as options_mod
from shardbroker.config.options import Options
from shardbroker.mesh import stats
from shardbroker.mesh.boot import die_with_parent, read_boot
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server

logger = logging.getLogger("shardbroker.worker")

# Test hook: a comma-separated list of shard ids that fail their boot on purpose, so the
# supervisor's halt-instead-of-restart-loop policy can be exercised end to end.
FAIL_BOOT_ENV = "SHARDBROKER_FAIL_BOOT"
_PEER_WAIT = 15.0
# Connection storms (reconnects after a restart) must not overflow the accept queue.
LISTEN_BACKLOG = max(4096, socket.SOMAXCONN)  # seconds to wait for every live peer's HELLO at boot


def raise_fd_limit() -> None:
    """Every connection is a descriptor: allow as many as the hard limit permits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-files limit to %d: %s", hard, exc)


def listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def serve(boot: ShardBoot, opts: Options) -> int:
    loop = asyncio.get_running_loop()
    mesh = Mesh(boot.mesh, boot.shard_id)
    table = stats.ShardTable(stats.attach(boot.mesh.port, boot.mesh.n_shards), boot.mesh.n_shards)
    slot = table.slots[boot.shard_id]
    slot.set("pid", os.getpid())
    slot.set("generation", boot.generation)
    slot.set("start_ns", time.time_ns())
    limit = stats.ConnectionLimit(boot.mesh.port)
    server = Server(boot, opts, loop, mesh, slot, limit)
    loop.add_reader(mesh.doorbell.fileno(), server.on_doorbell)
    loop.add_signal_handler(signal.SIGTERM, server.stopping.set)

    if str(boot.shard_id) in os.environ.get(FAIL_BOOT_ENV, "").split(","):
        logger.error("shard %d: boot failure injected by %s", boot.shard_id, FAIL_BOOT_ENV)
        return const.EXIT_BOOT_FAILURE
    server.say_hello(boot.live)
    waiting = set(boot.live)
    deadline = loop.time() + _PEER_WAIT
    while True:
        server.on_doorbell()
        waiting = {p for p in waiting if not server.peer_up[p] and server.peer_gen[p] < 0}
        if not waiting:
            break
        if server.stopping.is_set():
            return const.EXIT_OK  # stopped (SIGTERM) while still booting
        if loop.time() > deadline:
            logger.error(
                "shard %d: no HELLO from shards %s; giving up", boot.shard_id, sorted(waiting)
            )
            return const.EXIT_BOOT_FAILURE
        await asyncio.sleep(0.005)

    try:
        sock = listen_socket(opts.host, boot.mesh.port)
    except OSError as exc:
        logger.error(
            "shard %d: cannot listen on %s:%d: %s", boot.shard_id, opts.host, boot.mesh.port, exc
        )
        return const.EXIT_BOOT_FAILURE
    # create_server listens again, with a backlog of 100 unless told otherwise.
    listener = await loop.create_server(
        lambda: ClientProtocol(server), sock=sock, backlog=LISTEN_BACKLOG
    )
    server.listener = listener
    server.report_ready()
    logger.debug("worker shard %d (generation %d) ready", boot.shard_id, boot.generation)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(const.TICK_INTERVAL)
            server.tick()

    tick_task = loop.create_task(ticker())
    await server.stopping.wait()
    tick_task.cancel()
    listener.close()
    server.close_all_clients()
    server.flush_batch(None)
    await asyncio.sleep(0)
    return const.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shardbroker.worker.main")
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
        print(f"shardbroker worker {args.shard}: bad boot data: {exc}", file=sys.stderr)
        return const.EXIT_BOOT_FAILURE
    log.setup(opts.log_file, opts.debug, opts.trace, opts.logtime)
    raise_fd_limit()
    try:
        return uvloop.run(serve(boot, opts))
    except Exception:
        logger.exception("worker shard %d failed", args.shard)
        return 1


if __name__ == "__main__":
    sys.exit(main())
