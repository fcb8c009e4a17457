"""Ring-full backpressure: a full ring pauses the publisher, never drops a frame
(ARCHITECTURE.md "The mesh"), and ring sizes that cannot work are refused at start.

shardbroker only: nats-server has no shared-memory rings.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from tests.helpers.broker import (
    Broker,
    free_port_without_shm,
    is_shardbroker_target,
    raw_connect_on_shard,
    run_serve_to_end,
    shm_entries,
    unique,
)
from tests.helpers.wait import check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not is_shardbroker_target(),
        reason="nats-server has no shared-memory rings between processes",
    ),
]

COUNT = 20_000
PAYLOAD_SIZE = 1024
RING_SIZE = 32_768  # the smallest ring that holds two maximal frames for max_payload 8192
BACKPRESSURE_ARGS = ("--max_payload", "8192", "--max_pending", "67108864")
# Generous: 20 MiB through a 32 KiB ring, on a loaded CI machine.
DELIVERY_TIMEOUT = 60.0
STATS_TIMEOUT = 5.0  # workers copy their counters every 100 ms


def payload(seq: int) -> bytes:
    head = f"{seq:08d}:".encode()
    return head + b"x" * (PAYLOAD_SIZE - len(head))


@pytest.mark.parametrize(
    "subjects",
    [
        # One subject: the parser hands the worker runs of identical PUB lines, which are
        # joined into large mesh frames; each must still fit the ring.
        pytest.param(("a",), id="one-subject"),
        # Alternating subjects: no runs, one mesh frame per message.
        pytest.param(("a", "b"), id="alternating-subjects"),
    ],
)
def test_reliability_full_ring_pauses_publisher_and_loses_nothing(
    broker_factory, subjects: tuple[str, ...]
) -> None:
    from shardbroker.mesh import stats

    workers = 2
    b: Broker = broker_factory(
        workers=workers, extra_args=(*BACKPRESSURE_ARGS, "--ring_size", str(RING_SIZE))
    )
    prefix = unique("bp.")
    sub = raw_connect_on_shard(b, 2)
    pub = raw_connect_on_shard(b, 1)
    with sub, pub:
        sub.handshake()
        pub.handshake()
        sub.send(f"SUB {prefix}.* 1\r\n".encode())
        assert sub.ping_barrier() == b""

        received: list[bytes] = []
        failure: list[BaseException] = []

        def read_all() -> None:
            try:
                for i in range(COUNT):
                    msg = sub.read_msg(timeout=DELIVERY_TIMEOUT)
                    expected = f"{prefix}.{subjects[i % len(subjects)]}"
                    assert (msg.subject, msg.sid) == (expected, "1"), msg.raw[:200]
                    received.append(msg.payload)
            except BaseException as exc:  # handed to the test thread
                failure.append(exc)

        reader = threading.Thread(target=read_all, name="subscriber", daemon=True)
        reader.start()
        try:
            heads = [f"PUB {prefix}.{s} {PAYLOAD_SIZE}\r\n".encode() for s in subjects]
            # One write of ~20 MiB: the worker reads it in batches far larger than the
            # ring, so the ring fills and the publisher must be paused.
            data = b"".join(heads[i % len(heads)] + payload(i) + b"\r\n" for i in range(COUNT))
            pub.sock.settimeout(DELIVERY_TIMEOUT)
            pub.sock.sendall(data)
            assert pub.ping_barrier(timeout=DELIVERY_TIMEOUT) == b"", "publisher got an error"
        except BaseException:
            # Do not leave the reader waiting for messages that will never come.
            with contextlib.suppress(OSError):
                sub.sock.shutdown(socket.SHUT_RDWR)
            raise
        finally:
            reader.join(timeout=DELIVERY_TIMEOUT)
        assert not reader.is_alive(), f"subscriber still reading; got {len(received)} messages"
        if failure:
            got = len(received)
            raise AssertionError(f"subscriber failed after {got} messages") from failure[0]
        assert len(received) == COUNT
        bad = next((i for i, p in enumerate(received) if p != payload(i)), None)
        assert bad is None, f"message {bad} is {received[bad][:16]!r}: lost, duplicate or reordered"
        assert sub.ping_barrier() == b"", "more than COUNT messages arrived"
        assert pub.is_open() and sub.is_open()

    # The ring really filled: shard 1 counted it (copied to its slot on its tick).
    n_shards = workers + 1
    buf = stats.attach(b.port, n_shards)
    table = stats.ShardTable(buf, n_shards)
    try:

        def ring_was_full() -> int:
            events = table.slots[1].get("ring_full_events")
            assert events > 0, f"shard 1 ring_full_events = {events}"
            return events

        check_for(STATS_TIMEOUT, 0.05, ring_was_full)
    finally:
        table.release()  # drop the ctypes views, else the mmap cannot close
        buf.close()


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        pytest.param(("--ring_size", "1000"), "4194304", id="not-a-power-of-two"),
        pytest.param(
            ("--max_payload", "8192", "--ring_size", "16384"), "32768", id="smaller-than-two-frames"
        ),
    ],
)
def test_reliability_unusable_ring_size_refused_at_start(
    args: tuple[str, ...], needed: str, tmp_path: Path
) -> None:
    free_port = free_port_without_shm()
    ports_dir = tmp_path / "ports"
    ports_dir.mkdir()
    result = run_serve_to_end(
        "-a", "127.0.0.1", "-p", str(free_port), "--workers", "2",
        "--ports_file_dir", str(ports_dir), *args,
    )  # fmt: skip
    why = result.describe()
    assert result.returncode == 3, why
    assert "Traceback" not in result.stderr, why
    lines = [line for line in result.stderr.splitlines() if "ring_size" in line]
    assert len(lines) == 1, why
    assert "power of two" in lines[0], why
    assert needed in lines[0], f"the message should give the smallest usable size: {why}"
    # Nothing started: no shard, no ports file, no shared memory.
    assert "Starting shardbroker" not in result.stdout + result.stderr, why
    assert result.leftovers == [], why
    assert list(ports_dir.iterdir()) == [], why
    assert shm_entries(free_port) == [], why
