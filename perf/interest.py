"""Interest at scale: how long a server takes to put many subscriptions in effect, and
what they cost it in memory, shardbroker against nats-server in one run.

    python -m perf.interest [--subs 100000] [--conns 10000] [--per-conn 10]
                            [--repeat 3] [--workers 2] [--out FILE]

Two scenarios, each run R times on a fresh server of each kind, interleaved:

- one connection: a client sends N SUBs on distinct subjects and a PING; the time from
  its first SUB to the PONG (a PONG means every worker applied the interest).
- many connections: C clients each send P SUBs and a PING, at most 256 connecting at
  once; the time until every PONG.

Memory is the growth of the resident memory of the server and all its processes from
before the first SUB to after the last PONG (RSS and PSS, as perf/compare.py measures
the idle connections). The clients are raw asyncio sockets, so the figures are the
servers' own work, not a client library's. Prints a markdown table (medians, min-max)
with the ratio shardbroker / nats-server, and writes it with --out.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from perf.compare import NATS, SB, Server

CONNECT = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
FLUSH_TIMEOUT = 300.0  # seconds; far beyond either server
GATE = 256  # connections being set up at once


async def _next_op(reader: asyncio.StreamReader) -> bytes:
    """The next line that is not a server PING."""
    while True:
        line = await reader.readline()
        if line != b"PING\r\n":
            return line


async def _subscriber(
    host: str, port: int, index: int, per_conn: int, gate: asyncio.Semaphore, opened: list[Any]
) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        opened.append(writer)
        await reader.readline()  # INFO
        subs = b"".join(b"SUB scale.%d.%d %d\r\n" % (index, i, i + 1) for i in range(per_conn))
        writer.write(CONNECT + subs + b"PING\r\n")
        line = await _next_op(reader)
        if line != b"PONG\r\n":
            raise RuntimeError(f"expected PONG, got {line[:80]!r}")


async def _subscribe_all(host: str, port: int, conns: int, per_conn: int) -> float:
    opened: list[Any] = []
    gate = asyncio.Semaphore(GATE)
    try:
        start = time.monotonic()
        async with asyncio.timeout(FLUSH_TIMEOUT):
            await asyncio.gather(
                *(_subscriber(host, port, c, per_conn, gate, opened) for c in range(conns))
            )
        return time.monotonic() - start
    finally:
        for writer in opened:
            writer.close()


def run_once(kind: str, workers: int, conns: int, per_conn: int) -> dict[str, float]:
    """One run on a fresh server: seconds until every PONG, memory growth in bytes."""
    server = Server(kind, workers)
    server.start(60.0)
    try:
        before = server.memory()
        host, port = "127.0.0.1", server.port
        seconds = asyncio.run(_subscribe_all(host, port, conns, per_conn))
        after = server.memory()
        if not server.alive():
            raise RuntimeError(f"{kind} died during the run")
        return {
            "seconds": seconds,
            "rss": after["rss"] - before["rss"],
            "pss": (after["pss"] or 0) - (before["pss"] or 0),
        }
    finally:
        server.stop()


def _cell(values: list[float], scale: float, fmt: str) -> str:
    med = statistics.median(values) / scale
    return f"{med:{fmt}} ({min(values) / scale:{fmt}}-{max(values) / scale:{fmt}})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.interest", description=__doc__.split("\n")[0])
    p.add_argument("--subs", type=int, default=100_000, help="SUBs on the one connection")
    p.add_argument("--conns", type=int, default=10_000, help="connections of the second run")
    p.add_argument("--per-conn", type=int, default=10, help="SUBs per connection there")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="shardbroker workers")
    p.add_argument("--out", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    scenarios = [
        (f"{args.subs:,} subscriptions, one connection", 1, args.subs),
        (f"{args.conns:,} connections x {args.per_conn} subscriptions", args.conns, args.per_conn),
    ]
    rows = [
        "| scenario | server | PONG after, s | memory growth, MiB RSS | MiB PSS |",
        "|---|---|---:|---:|---:|",
    ]
    ratios = []
    for title, conns, per_conn in scenarios:
        runs: dict[str, list[dict[str, float]]] = {NATS: [], SB: []}
        for _ in range(args.repeat):
            for kind in (NATS, SB):
                runs[kind].append(run_once(kind, args.workers, conns, per_conn))
        for kind in (NATS, SB):
            got = runs[kind]
            rows.append(
                f"| {title} | {kind} | {_cell([r['seconds'] for r in got], 1, '.2f')} | "
                f"{_cell([r['rss'] for r in got], 2**20, ',.0f')} | "
                f"{_cell([r['pss'] for r in got], 2**20, ',.0f')} |"
            )
        med = {
            k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "rss")}
            for k, v in runs.items()
        }
        ratios.append(
            f"- {title}: time {med[SB]['seconds'] / med[NATS]['seconds']:.2f}x, "
            f"memory (RSS) {med[SB]['rss'] / med[NATS]['rss']:.2f}x nats-server's"
        )
    text = "\n".join(
        [
            "# Interest at scale: shardbroker vs nats-server",
            "",
            f"medians of {args.repeat} runs (min-max), {args.workers} shardbroker workers, "
            "a fresh server per run",
            "",
            *rows,
            "",
            "Ratios shardbroker / nats-server (medians):",
            "",
            *ratios,
            "",
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
