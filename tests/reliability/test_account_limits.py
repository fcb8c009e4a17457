"""An account's connection limit after a worker dies: the connections it held are
given back (the supervisor clears the dead worker's row of account counts), so the
account may connect again up to its limit on the survivors and the restarted worker.

shardbroker only: nats-server has no workers to kill.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers.broker import is_shardbroker_target, raw_connect_on_shard, run_broker
from tests.helpers.wait import check_for
from tests.helpers.wire import WireClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not is_shardbroker_target(), reason="kills a shardbroker worker"),
]

RESTART_TIMEOUT = 20.0
CONF = """
accounts {
  L: { users: [ {user: l, password: p} ], limits: { max_connections: 2 } }
}
"""


def login(client: WireClient) -> bytes:
    """CONNECT as l, PING: the PONG, or what came before the close."""
    client.send(b'CONNECT {"verbose":false,"user":"l","pass":"p"}\r\nPING\r\n')
    return client.expect(b"PONG\r\n").group(0)


def test_account_connections_of_a_killed_worker_are_given_back(tmp_path: Path) -> None:
    conf = tmp_path / "limits.conf"
    conf.write_text(CONF)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker:
        held = [raw_connect_on_shard(broker, 1) for _ in range(2)]
        try:
            for client in held:
                assert login(client) == b"PONG\r\n"
            third = raw_connect_on_shard(broker, 2)
            with third:
                third.send(b'CONNECT {"verbose":false,"user":"l","pass":"p"}\r\nPING\r\n')
                assert b"maximum account active connections exceeded" in third.expect_closed()
            victim = broker.refresh_workers()[1]
            os.kill(victim.pid, signal.SIGKILL)
            for client in held:
                client.expect_closed()

            def restarted() -> None:
                current = broker.refresh_workers()
                assert 1 in current and current[1].pid != victim.pid

            check_for(RESTART_TIMEOUT, 0.1, restarted)
            for shard in (2, 1):
                # The restarted worker listens again a moment after it runs.
                client = check_for(
                    RESTART_TIMEOUT, 0.1, lambda shard=shard: raw_connect_on_shard(broker, shard)
                )
                held.append(client)
                assert login(client) == b"PONG\r\n"
        finally:
            for client in held:
                client.close()
