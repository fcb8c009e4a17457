"""A broker that cannot boot halts with EXIT_BOOT_FAILURE (3) and a clear message instead
of restart-looping, and leaves nothing behind: no process of its tree, no shared memory
(shardbroker/supervisor/arbiter.py, shardbroker/worker/main.py FAIL_BOOT_ENV).

shardbroker only: the failure hook and the process tree are ours.
"""

from __future__ import annotations

import socket

import pytest

from tests.helpers.broker import (
    HOST,
    free_port_without_shm,
    is_shardbroker_target,
    run_serve_to_end,
    shm_entries,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not is_shardbroker_target(),
        reason="nats-server is one process: no worker boot to fail, no supervisor to halt",
    ),
]

EXIT_BOOT_FAILURE = 3
FAIL_BOOT_ENV = "SHARDBROKER_FAIL_BOOT"  # shardbroker/worker/main.py
INJECTED = "boot failure injected by " + FAIL_BOOT_ENV


def test_reliability_worker_boot_failure_halts_the_broker() -> None:
    free_port = free_port_without_shm()
    # A fixed port instead of -p -1, so the shared memory (named after it) can be checked.
    result = run_serve_to_end(
        "-a", HOST, "-p", str(free_port), "--workers", "2", env={FAIL_BOOT_ENV: "2"}
    )  # fmt: skip
    why = result.describe()
    assert result.returncode == EXIT_BOOT_FAILURE, why
    assert "Traceback" not in result.stderr, why
    # The last word, from cli.py, is one line naming the shard and the reason.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("shardbroker: "), why
    assert "shard 2" in last and "before it was ready" in last, why
    # Halted, not restarted: the failure happened exactly once.
    assert result.stderr.count(INJECTED) == 1, why
    assert "restarting in" not in result.stderr, why  # arbiter: "...; restarting in 0.10s"
    assert "Server is ready" not in result.stderr, why
    # Nothing left: every process of the tree exited with the supervisor ...
    assert result.leftovers == [], f"processes of the tree outlived it: {why}"
    # ... and the shared memory was removed.
    assert shm_entries(free_port) == [], why


def test_reliability_port_in_use_is_a_clear_boot_failure() -> None:
    free_port = free_port_without_shm()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, free_port))
        holder.listen(1)
        result = run_serve_to_end("-a", HOST, "-p", str(free_port), "--workers", "2")
        why = result.describe()
        assert result.returncode == EXIT_BOOT_FAILURE, why
        assert "Traceback" not in result.stderr, why
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("shardbroker: "), why
        assert f"{HOST}:{free_port}" in last and "in use" in last, why
        # Refused before anything was started.
        assert "Starting shardbroker" not in result.stderr, why
        assert result.leftovers == [], f"processes of the tree outlived it: {why}"
        assert shm_entries(free_port) == [], why
        # The port still belongs to its owner.
        with socket.create_connection((HOST, free_port), timeout=5):
            pass
