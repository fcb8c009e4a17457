"""Micro-benchmark of a worker's hot path, in one process, no sockets.

Two Server objects (shards 1 and 2) share a real mesh segment. A publisher client on
shard 1 is fed PUB batches; a subscriber client on shard 2 receives. Prints ns per
message for: pub-only (no interest anywhere), local pub/sub on one shard, the
publishing side of a cross-shard pub/sub (parse, route, ring write) and the
receiving side (ring frames to MSG bytes).

    .venv/bin/python tests/benchmarks/bench_worker.py
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from shardbroker.config.options import Options
from shardbroker.config.options import encode as encode_options
from shardbroker.mesh.doorbell import create_doorbell
from shardbroker.mesh.layout import MeshLayout, create_segment, unlink_segment
from shardbroker.mesh.mesh import Mesh, MeshSpec, ShardBoot
from shardbroker.worker.client import ClientProtocol
from shardbroker.worker.server import Server

BATCH = 2000
ROUNDS = 100


class NullTransport:
    """Collects nothing; counts bytes written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def make_servers(loop: asyncio.AbstractEventLoop) -> tuple[Server, Server, str]:
    layout = MeshLayout(3, 1 << 24)
    name = f"/shardbroker-bench-{os.getpid()}"
    buf = create_segment(name, layout.total_size)
    spec = MeshSpec(
        port=0,
        segment=name,
        n_shards=3,
        ring_size=1 << 24,
        doorbell_fds=[create_doorbell() for _ in range(3)],
    )
    opts = Options(port=0, ping_interval=3600)
    servers = []
    for shard in (1, 2):
        boot = ShardBoot(
            shard_id=shard,
            generation=0,
            mesh=spec,
            live=[],
            server_id="NBENCH",
            supervisor_pid=0,
            options=encode_options(opts),
        )
        server = Server(boot, opts, loop, Mesh(spec, shard, buf=buf), None, None)
        servers.append(server)
    a, b = servers
    a.on_hello(2, 0)
    b.on_hello(1, 0)
    return a, b, name


def connect(server: Server, headers: bool = False) -> ClientProtocol:
    client = ClientProtocol(server)
    client.connection_made(NullTransport())  # type: ignore[arg-type]
    body = b'{"verbose":false,"pedantic":false,"headers":%s}' % (b"true" if headers else b"false")
    client.data_received(b"CONNECT " + body + b"\r\n")
    return client


def drain_into(receiver: Server) -> float:
    """Apply everything waiting in the receiver's inbound rings; returns seconds spent."""
    start = time.perf_counter()
    receiver.on_doorbell()
    return time.perf_counter() - start


def bench(label: str, fn: Any, messages: int) -> None:
    best = min(fn() for _ in range(3))
    print(f"{label:38s} {best / messages * 1e9:7.0f} ns/msg  {messages / best / 1e6:5.2f} M msg/s")


async def main() -> None:
    loop = asyncio.get_running_loop()
    a, b, name = make_servers(loop)
    try:
        pub = connect(a)
        chunk = b"PUB nobody 16\r\n0123456789abcdef\r\n" * BATCH

        def pub_only() -> float:
            start = time.perf_counter()
            for _ in range(ROUNDS):
                pub.data_received(chunk)
            return time.perf_counter() - start

        bench("pub-only (no interest)", pub_only, BATCH * ROUNDS)

        local_sub = connect(a)
        local_sub.data_received(b"SUB local 1\r\n")
        local_chunk = b"PUB local 16\r\n0123456789abcdef\r\n" * BATCH

        def local_pubsub() -> float:
            start = time.perf_counter()
            for _ in range(ROUNDS):
                pub.data_received(local_chunk)
            return time.perf_counter() - start

        bench("pubsub 1:1, same shard", local_pubsub, BATCH * ROUNDS)

        remote_sub = connect(b)
        remote_sub.data_received(b"SUB remote 1\r\n")
        drain_into(a)  # shard 1 learns shard 2's interest
        remote_chunk = b"PUB remote 16\r\n0123456789abcdef\r\n" * BATCH
        recv_time = [0.0]

        def cross_publish() -> float:
            start = time.perf_counter()
            spent_receiving = 0.0
            for _ in range(ROUNDS):
                pub.data_received(remote_chunk)
                spent_receiving += drain_into(b)
            recv_time[0] = spent_receiving
            return time.perf_counter() - start - spent_receiving

        bench("pubsub 1:1, publishing shard", cross_publish, BATCH * ROUNDS)
        print(
            f"{'pubsub 1:1, receiving shard':38s} "
            f"{recv_time[0] / (BATCH * ROUNDS) * 1e9:7.0f} ns/msg"
        )

        fan = [connect(b) for _ in range(4)]
        for client in fan:
            client.data_received(b"SUB fan 1\r\n")
        drain_into(a)
        fan_chunk = b"PUB fan 16\r\n0123456789abcdef\r\n" * BATCH

        def fanout() -> float:
            start = time.perf_counter()
            for _ in range(ROUNDS):
                pub.data_received(fan_chunk)
                drain_into(b)
            return time.perf_counter() - start

        bench("fan-out 1:4 across shards (both sides)", fanout, BATCH * ROUNDS * 4)
    finally:
        unlink_segment(name)


if __name__ == "__main__":
    asyncio.run(main())
