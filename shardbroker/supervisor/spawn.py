"""Creating the shared resources of a broker and starting shards by module path.

Runs in the supervisor. Shards are exec'd (``python -m shardbroker.worker.main``), never
forked from the supervisor: they inherit only the doorbell eventfds and a pipe that
carries their msgpack-encoded ShardBoot.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from shardbroker import const
from shardbroker.mesh import account_table, rate_table, stats
from shardbroker.mesh.doorbell import create_doorbell
from shardbroker.mesh.layout import MeshLayout, create_segment, segment_name, unlink_segment
from shardbroker.mesh.mesh import MeshSpec, ShardBoot, encode_boot

WORKER_MODULE = "shardbroker.worker.main"
STORAGE_MODULE = "shardbroker.jetstream.main"


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def reserve_port(host: str, port: int) -> socket.socket:
    """Check the port is free and hold it for the workers' SO_REUSEPORT listeners.

    A probe bind without SO_REUSEPORT fails if anything uses the port (including
    another broker's reuseport group); the socket kept afterwards is bound but never
    listens, so the kernel hands it no connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, 0 if port == const.RANDOM_PORT else port))
        actual = probe.getsockname()[1]
    finally:
        probe.close()
    keeper = socket.socket(family, socket.SOCK_STREAM)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    keeper.bind((host, actual))
    return keeper


class SharedResources:
    """The mesh segment, the shard table, the connection semaphore and the doorbells."""

    def __init__(self, port: int, n_shards: int, ring_size: int, max_connections: int) -> None:
        self.port = port
        self.n_shards = n_shards
        self.layout = MeshLayout(n_shards, ring_size)
        self.segment = segment_name(port)
        # create_segment unlinks a stale segment of a killed earlier run on this port.
        self.mesh_buf = create_segment(self.segment, self.layout.total_size)
        self.table_buf = stats.create(port, n_shards)
        self.table = stats.ShardTable(self.table_buf, n_shards)
        self.connection_limit = stats.ConnectionLimit(port, create_with=max(0, max_connections))
        self.accounts_buf = account_table.create(port, n_shards)
        self.accounts = account_table.AccountTable(self.accounts_buf, n_shards)
        self.rates_buf = rate_table.create(port, n_shards)
        self.rates = rate_table.RateTable(self.rates_buf, n_shards)
        self.doorbell_fds = [create_doorbell() for _ in range(n_shards)]
        self.spec = MeshSpec(
            port=port,
            segment=self.segment,
            n_shards=n_shards,
            ring_size=ring_size,
            doorbell_fds=self.doorbell_fds,
        )

    def remove(self) -> None:
        """Unlink every named segment; mappings die with the processes."""
        unlink_segment(self.segment)
        stats.unlink(stats.segment_name(self.port))
        self.connection_limit.unlink()
        account_table.unlink(account_table.segment_name(self.port))
        rate_table.unlink(rate_table.segment_name(self.port))
        for fd in self.doorbell_fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def spawn_shard(boot: ShardBoot, doorbell_fds: list[int], module: str = WORKER_MODULE) -> int:
    """Start a shard process; returns its pid. The boot data travels on a pipe."""
    data = encode_boot(boot)
    read_fd, write_fd = os.pipe()
    try:
        # The boot record is small, far below the pipe buffer: write it all up front.
        os.write(write_fd, data)
    finally:
        os.close(write_fd)
    os.set_inheritable(read_fd, True)
    for fd in doorbell_fds:
        os.set_inheritable(fd, True)
    argv = [sys.executable, "-m", module, "--shard", str(boot.shard_id), "--boot-fd", str(read_fd)]
    try:
        return os.posix_spawn(sys.executable, argv, dict(os.environ))
    finally:
        os.close(read_fd)
