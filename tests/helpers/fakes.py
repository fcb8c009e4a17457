"""In-process fakes: a recording transport and a pair of worker shards on a real mesh.

Used by worker unit tests and the worker micro-benchmark; no sockets, no processes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shardbroker.config.options import Options
from shardbroker.config.options import encode as encode_options
from shardbroker.const import ClosedState
from shardbroker.mesh.doorbell import create_doorbell
from shardbroker.mesh.layout import MeshLayout, create_segment, unlink_segment
from shardbroker.mesh.mesh import Mesh, MeshSpec, ShardBoot
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server


class MockTransport:
    """Keeps what a connection writes (or only counts it, with keep=False)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.data = bytearray()
        self.written = 0
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.keep:
            self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class ShardPair:
    """Worker shards 1 and 2 in this process, sharing a mesh segment (shard 0 unused)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, opts: Options, ring_size: int) -> None:
        layout = MeshLayout(3, ring_size)
        self.segment = f"/shardbroker-test-{os.getpid()}-{id(self)}"
        buf = create_segment(self.segment, layout.total_size)
        self.doorbells = [create_doorbell() for _ in range(3)]
        spec = MeshSpec(
            port=0,
            segment=self.segment,
            n_shards=3,
            ring_size=ring_size,
            doorbell_fds=self.doorbells,
        )
        self.servers: list[Server] = []
        for shard in (1, 2):
            boot = ShardBoot(
                shard_id=shard,
                generation=0,
                mesh=spec,
                live=[],
                server_id="NTEST",
                supervisor_pid=0,
                options=encode_options(opts),
            )
            self.servers.append(Server(boot, opts, loop, Mesh(spec, shard, buf=buf), None, None))
        self.one, self.two = self.servers
        # No loop runs here to start the next turn of client input (Server.next_read_turn):
        # a budget that never runs out, so that whatever a test feeds is parsed at once.
        # Tests of the budget itself set it.
        for server in self.servers:
            server.read_budget = sys.maxsize
        self.one.member.on_hello(2, 0)
        self.two.member.on_hello(1, 0)
        self.settle()

    def settle(self) -> None:
        """Let each shard apply what the other sent, until both rings are empty."""
        for _ in range(4):
            for server in self.servers:
                server.flush_batch(None)
                server.on_doorbell()

    def close(self) -> None:
        for server in self.servers:
            for client in list(server.clients.values()):
                client.close_connection(ClosedState.ServerShutdown)
        unlink_segment(self.segment)
        for fd in self.doorbells:
            os.close(fd)


@contextmanager
def shard_pair(
    loop: asyncio.AbstractEventLoop, opts: Options | None = None, ring_size: int = 1 << 20
) -> Iterator[ShardPair]:
    pair = ShardPair(loop, opts or Options(port=0, ping_interval=3600), ring_size)
    try:
        yield pair
    finally:
        pair.close()


def connect(server: Server, keep: bool = True, **connect_opts: Any) -> ClientProtocol:
    """A connected client on a shard; CONNECT defaults to non-verbose, non-pedantic."""
    client = ClientProtocol(server)
    client.connection_made(MockTransport(keep))  # type: ignore[arg-type]
    fields = {"verbose": False, "pedantic": False, **connect_opts}
    body = ",".join(
        f'"{k}":{str(v).lower() if isinstance(v, bool) else v}' for k, v in fields.items()
    )
    client.data_received(b"CONNECT {" + body.encode() + b"}\r\n")
    transport = client.transport
    assert isinstance(transport, MockTransport)
    transport.data.clear()
    return client


def output(client: ClientProtocol) -> bytes:
    """Everything written to the client so far (and forget it)."""
    transport = client.transport
    assert isinstance(transport, MockTransport)
    data = bytes(transport.data)
    transport.data.clear()
    return data
