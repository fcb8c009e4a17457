"""The `shardbroker` command line: the nats-server flags `serve` shares (-n, -P, -l, -D),
--workers, argument errors, `version` and `--help` (shardbroker/cli.py).

-n/-P/-l/-D mean the same to nats-server, so those tests also run against it; the rest
start `python -m shardbroker` itself and are shardbroker only.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.broker import (
    HOST,
    REPO_ROOT,
    free_port_without_shm,
    is_shardbroker_target,
    raw_connect,
    raw_connect_on_shard,
    run_broker,
    run_serve_to_end,
    shardbroker_command,
    shm_entries,
    unique,
)
from tests.helpers.wait import check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

shardbroker_only = pytest.mark.skipif(
    not is_shardbroker_target(),
    reason="exercises the shardbroker command itself (nats-server has other flags)",
)

LOG_TIMEOUT = 5.0
# Tries to see every worker at least once; each connection lands on one of three.
SEE_ALL_SHARDS_TRIES = 300


def test_cli_name_pid_log_flags(tmp_path: Path) -> None:
    pid_file = tmp_path / "sb.pid"
    log_file = tmp_path / "sb.log"
    flags = ("-n", "myname", "-P", str(pid_file), "-l", str(log_file))
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=flags) as b:
        for shard in b.shard_ids:
            with raw_connect_on_shard(b, shard) as client:
                assert client.info["server_name"] == "myname", client.info
        # Written before the ports file, so it is there by now.
        assert pid_file.read_text().strip() == str(b.pid)
        check_for(LOG_TIMEOUT, 0.05, lambda: "Server is ready" in log_file.read_text())
        assert b.stop(signal.SIGTERM) == 0
    if is_shardbroker_target():
        # Our addition: nats-server 2.x leaves its pid file behind.
        assert not pid_file.exists(), "pid file left behind after a clean stop"
    log = log_file.read_text()
    assert "Server is ready" in log
    assert "[DBG]" not in log, "debug lines without -D"


def test_cli_debug_flag_logs_connections(tmp_path: Path) -> None:
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-D",)) as b:
        client = raw_connect(b)
        cid = client.client_id
        with client:
            client.handshake()
        assert cid is not None
        # shardbroker: "[DBG] cid=N closed: ..."; nats-server: "[DBG] ... - cid:N - ...".
        line = re.compile(rf"\[DBG\].*\bcid[=:]{cid}\b")
        check_for(LOG_TIMEOUT, 0.05, lambda: line.search(b.log_text()) is not None)


def test_cli_trace_flag_logs_protocol(tmp_path: Path) -> None:
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-V",)) as b:
        client = raw_connect(b)
        subject = unique()
        with client:
            client.handshake()
            client.send(f"SUB {subject} 1\r\nPUB {subject} 5\r\nhello\r\n".encode())
            assert client.read_msg().payload == b"hello"
        # Both servers write "<<- [op ...]" for what a client sent and "->> [...]" back.
        sent = re.compile(rf"\[TRC\].*<<- \[PUB {subject} 5\]")
        delivered = re.compile(rf"\[TRC\].*->> \[MSG {subject} 1 5\]")
        check_for(LOG_TIMEOUT, 0.05, lambda: sent.search(b.log_text()) is not None)
        check_for(LOG_TIMEOUT, 0.05, lambda: delivered.search(b.log_text()) is not None)


@shardbroker_only
def test_cli_workers_count(tmp_path: Path) -> None:
    with run_broker(workers=3, tmp_dir=tmp_path) as b:
        # run_broker checked the process tree: workers with --shard 1, 2 and 3.
        assert sorted(b.workers) == [1, 2, 3]
        assert len({p.pid for p in b.workers.values()}) == 3
        seen: set[int | None] = set()
        for _ in range(SEE_ALL_SHARDS_TRIES):
            with raw_connect(b) as client:
                seen.add(b.shard_of(client.client_id))
            if seen >= {1, 2, 3}:
                break
        assert seen == {1, 2, 3}, f"connections landed only on shards {seen}"

        one = raw_connect_on_shard(b, 1)
        three = raw_connect_on_shard(b, 3)
        with one, three:
            one.handshake()
            three.handshake()
            subject = unique("cli.")
            one.send(f"SUB {subject} 1\r\n".encode())
            three.send(f"SUB {subject} 3\r\n".encode())
            assert one.ping_barrier() == b""
            assert three.ping_barrier() == b""
            one.send(f"PUB {subject} 6\r\nfrom 1\r\n".encode())
            three.send(f"PUB {subject} 6\r\nfrom 3\r\n".encode())
            for client, sid in ((one, "1"), (three, "3")):
                got = sorted(client.read_msg().payload for _ in range(2))
                assert got == [b"from 1", b"from 3"], f"sid {sid} got {got}"
                assert client.ping_barrier() == b""


@shardbroker_only
@pytest.mark.parametrize(
    ("args", "reason"),
    [
        pytest.param(("--workers", "0"), re.compile(r"at least one worker"), id="workers-0"),
        pytest.param(("--workers", "many"), re.compile(r"'many'"), id="workers-many"),
        pytest.param(("-p", "70000"), re.compile(r"port 70000 is out of range"), id="port-70000"),
        pytest.param(
            ("--max_payload", "0"), re.compile(r"max_payload must be positive"), id="max_payload-0"
        ),
    ],
)
def test_cli_bad_arguments(args: tuple[str, ...], reason: re.Pattern[str], tmp_path: Path) -> None:
    free_port = free_port_without_shm()
    ports_dir = tmp_path / "ports"
    ports_dir.mkdir()
    result = run_serve_to_end(
        "-a", HOST, "-p", str(free_port), "--workers", "2", "--ports_file_dir", str(ports_dir),
        *args,  # later flags win
    )  # fmt: skip
    why = result.describe()
    assert result.returncode != 0, why
    assert "Traceback" not in result.stderr + result.stdout, why
    # The whole reason fits on one line of stderr.
    lines = [line for line in result.stderr.splitlines() if reason.search(line)]
    assert len(lines) == 1, why
    # Nothing started.
    assert "Starting shardbroker" not in result.stderr + result.stdout, why
    assert result.leftovers == [], why
    assert list(ports_dir.iterdir()) == [], why
    assert shm_entries(free_port) == [], why


@shardbroker_only
def test_cli_version_and_help() -> None:
    from shardbroker import __version__

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            shardbroker_command(*args), capture_output=True, text=True, timeout=30,
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    version = run("version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"shardbroker {__version__}"), version.stdout

    helped = run("serve", "--help")
    assert helped.returncode == 0, helped.stderr
    for flag in ("--port", "--workers", "--ports_file_dir"):
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", helped.stdout), (flag, helped.stdout)
