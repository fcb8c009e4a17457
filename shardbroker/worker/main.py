"""Entry point of a worker shard: ``python -m shardbroker.worker.main --shard N --boot-fd FD``.

Started by the supervisor by module path, never forked from it. Reads its ShardBoot
(mesh, options, live peers) from the inherited boot fd, dies with the supervisor
(parent-death signal), greets its peers and waits for their HELLO, then binds the
client port (and the websocket port, when configured) with SO_REUSEPORT and reports
READY. Any failure before READY exits with
EXIT_BOOT_FAILURE so the supervisor halts instead of restart-looping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import sys

from shardbroker import const
from shardbroker.config.options import Options
from shardbroker.mesh import account_table, rate_table, stats
from shardbroker.mesh.account_table import AccountTable
from shardbroker.mesh.mesh import Mesh, ShardBoot
from shardbroker.shard.boot import Ticker, attach_slot, meet_peers, shard_main
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server
from shardbroker.worker.websocket import WebSocketListener

logger = logging.getLogger("shardbroker.worker")

# Test hook: a comma-separated list of shard ids that fail their boot on purpose, so the
# supervisor's halt-instead-of-restart-loop policy can be exercised end to end.
FAIL_BOOT_ENV = "SHARDBROKER_FAIL_BOOT"
# Connection storms (reconnects after a restart) must not overflow the accept queue.
LISTEN_BACKLOG = max(4096, socket.SOMAXCONN)


def raise_fd_limit(opts: Options) -> None:
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
    slot = attach_slot(boot)
    limit = stats.ConnectionLimit(boot.mesh.port)
    n = boot.mesh.n_shards
    accounts = AccountTable(account_table.attach(boot.mesh.port, n), n)
    rates = rate_table.RateTable(rate_table.attach(boot.mesh.port, n), n)
    server = Server(boot, opts, loop, mesh, slot, limit, accounts, rates)
    member = server.member
    loop.add_reader(mesh.doorbell.fileno(), member.on_doorbell)
    loop.add_signal_handler(signal.SIGTERM, member.stopping.set)

    if str(boot.shard_id) in os.environ.get(FAIL_BOOT_ENV, "").split(","):
        logger.error("shard %d: boot failure injected by %s", boot.shard_id, FAIL_BOOT_ENV)
        return const.EXIT_BOOT_FAILURE
    try:
        if not await meet_peers(member, boot.live):
            return const.EXIT_OK  # stopped (SIGTERM) while still booting
    except TimeoutError as exc:
        logger.error("shard %d: %s; giving up", boot.shard_id, exc)
        return const.EXIT_BOOT_FAILURE

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
    ws = opts.websocket
    if ws is not None and boot.websocket_port:
        try:
            ws_sock = listen_socket(ws.host, boot.websocket_port)
        except OSError as exc:
            logger.error(
                "shard %d: cannot listen for websocket clients on %s:%d: %s",
                boot.shard_id, ws.host, boot.websocket_port, exc,
            )  # fmt: skip
            return const.EXIT_BOOT_FAILURE
        server.ws_listener = await loop.create_server(
            WebSocketListener(server, ws), sock=ws_sock, backlog=LISTEN_BACKLOG
        )
    member.report_ready()
    logger.debug("worker shard %d (generation %d) ready", boot.shard_id, boot.generation)

    ticker = Ticker(loop, slot, server.tick)
    ticker.start()
    await member.stopping.wait()
    ticker.stop()
    listener.close()
    if server.ws_listener is not None:
        server.ws_listener.close()
    server.close_all_clients()
    server.flush_batch(None)
    await asyncio.sleep(0)
    return const.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return shard_main("worker", serve, argv, prepare=raise_fd_limit)


if __name__ == "__main__":
    sys.exit(main())
