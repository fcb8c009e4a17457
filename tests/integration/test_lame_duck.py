"""Lame duck mode end to end with nats-py: SIGUSR2 (and `shardbroker ldm`) stops
accepting, sends INFO ldm:true, closes the clients after the grace period without -ERR,
one by one, and the server exits 0 (protocol.md §17; config.md signals).

Runs against both targets: nats-server takes the same config file and signal.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import nats.errors
import pytest

from tests.helpers.broker import (
    Broker,
    barrier,
    connect_on_shard,
    is_shardbroker_target,
    port_accepts,
    raw_connect,
    shardbroker_command,
    unique,
)
from tests.helpers.wait import async_check_for, check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

GRACE = 1.0
CLIENTS_PER_SHARD = 2


def ldm_config(tmp_path: Path) -> Path:
    conf = tmp_path / "ldm.conf"
    # 30s is the smallest duration nats-server accepts; with a few clients the closes
    # are at most 1s apart, so the whole sequence takes a few seconds.
    conf.write_text(f'lame_duck_duration: "30s"\nlame_duck_grace_period: "{GRACE:g}s"\n')
    return conf


async def test_lame_duck_notifies_then_closes_clients_then_exits(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    broker = broker_factory(workers=2, extra_args=["-c", str(ldm_config(tmp_path))])
    # connect_on_shard closes the connections that land on the wrong worker, so the
    # close times are polled from the chosen ones rather than taken from closed_cb.
    ldm_at: dict[int, float] = {}
    closed_at: dict[int, float] = {}

    def closed_now() -> int:
        for i, (nc, _) in enumerate(clients):
            if nc.is_closed and i not in closed_at:
                closed_at[i] = time.monotonic()
        return len(closed_at)

    clients = []
    for shard in broker.shard_ids:
        for _ in range(CLIENTS_PER_SHARD):
            i = len(clients)

            async def on_ldm(i: int = i) -> None:
                ldm_at[i] = time.monotonic()

            errors: list[Exception] = []

            async def on_error(exc: Exception, errors: list[Exception] = errors) -> None:
                errors.append(exc)

            nc = await connect_on_shard(
                broker, shard, lame_duck_mode_cb=on_ldm, error_cb=on_error,
            )  # fmt: skip
            await barrier(nc)  # the first PONG: only then is a client sent async INFO
            clients.append((nc, errors))
    subject = unique("ldm.")
    sub = await clients[-1][0].subscribe(subject)
    await barrier(clients[-1][0])

    # A raw client that never sent PING is not told (nats-server: no first PONG yet).
    silent = raw_connect(broker)
    silent.send(b'CONNECT {"verbose":false,"protocol":1}\r\n')

    sent = time.monotonic()
    broker.proc.send_signal(signal.SIGUSR2)
    await async_check_for(10, 0.02, lambda: len(ldm_at) == len(clients))
    # New connections are refused at once.
    await async_check_for(5, 0.05, lambda: not port_accepts(broker.port))
    # SIGTERM does not cut lame duck mode short.
    broker.proc.send_signal(signal.SIGTERM)
    # Within the grace period the clients are still served.
    await clients[0][0].publish(subject, b"still here")
    await barrier(clients[0][0])
    assert (await sub.next_msg(timeout=5)).data == b"still here"
    assert not closed_now(), "a client was closed within the grace period"

    await async_check_for(20, 0.01, lambda: closed_now() == len(clients))
    assert min(closed_at.values()) - sent >= GRACE * 0.9
    # Closed one after another, not all at once; and without -ERR.
    assert max(closed_at.values()) - min(closed_at.values()) >= 0.3
    # (nats-py reports the plain close as UnexpectedEOF; an -ERR would be another error.)
    for _, errors in clients:
        assert all(isinstance(e, nats.errors.UnexpectedEOF) for e in errors), errors
    for nc, _ in clients:
        assert nc.is_closed
    # The silent client got no INFO ldm:true, but it was closed too.
    silent.expect_closed(timeout=10)
    assert b'"ldm":true' not in silent.received
    silent.close()

    assert broker.proc.wait(timeout=20) == 0


@pytest.mark.skipif(not is_shardbroker_target(), reason="the shardbroker ldm command")
def test_lame_duck_command_by_port_and_pid_file(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    pid_file = tmp_path / "sb.pid"
    broker = broker_factory(
        workers=2, extra_args=["-c", str(ldm_config(tmp_path)), "--pid", str(pid_file)]
    )
    client = raw_connect(broker)
    client.handshake(protocol=1)
    done = subprocess.run(
        shardbroker_command("ldm", "-p", str(broker.port)),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(broker.pid) in done.stdout
    client.expect(re.compile(rb'INFO \{[^\r]*"ldm":true[^\r]*\r\n'), timeout=10)
    check_for(20, 0.05, lambda: broker.proc.poll() is not None)
    assert broker.proc.returncode == 0
    client.close()
    # No broker any more: a clear message and a non-zero exit.
    for args in (("-p", str(broker.port)), ("--pid-file", str(pid_file))):
        done = subprocess.run(
            shardbroker_command("ldm", *args),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode != 0
        assert "no shardbroker" in done.stderr.lower(), done.stderr
