"""sd_notify: what a test NOTIFY_SOCKET receives from the supervisor across start,
(reload,) lame duck and stop, in order; the watchdog pauses while a worker is stuck.
The unit file itself is checked with `systemd-analyze verify` where the tool exists."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers.broker import REPO_ROOT, Broker, is_shardbroker_target
from tests.helpers.wait import check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not is_shardbroker_target(), reason="shardbroker's sd_notify"),
]


class NotifySocket:
    """A datagram socket playing systemd: keeps (monotonic time, message) pairs."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        with self.lock:
            return [m for _, m in self.messages]

    def states(self) -> list[str]:
        """The state lines (READY=1, RELOADING=1, STOPPING=1) in order, no watchdog."""
        return [
            line
            for text in self.texts()
            for line in text.split("\n")
            if line in ("READY=1", "RELOADING=1", "STOPPING=1")
        ]

    def watchdog_times(self) -> list[float]:
        with self.lock:
            return [t for t, m in self.messages if m == "WATCHDOG=1"]

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NotifySocket]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        env_value = address
    else:
        name = f"shardbroker-test-{uuid.uuid4().hex}"
        address = "\0" + name
        env_value = "@" + name
    sock = NotifySocket(address)
    monkeypatch.setenv("NOTIFY_SOCKET", env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a WATCHDOG=1 every 0.2 s
    try:
        yield sock
    finally:
        sock.close()


def reload_available() -> bool:
    from shardbroker.supervisor.arbiter import Arbiter

    return hasattr(Arbiter, "handle_hup")


def test_sdnotify_ready_reload_stopping_in_order(
    notify_socket: NotifySocket, broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    conf = tmp_path / "sb.conf"
    conf.write_text("debug: false\n")
    broker = broker_factory(workers=2, extra_args=["-c", str(conf)])
    # The ports file is written just before READY=1 is sent.
    check_for(5, 0.02, lambda: notify_socket.states() == ["READY=1"])
    ready = next(t for t in notify_socket.texts() if "READY=1" in t)
    assert "STATUS=Serving clients on" in ready
    # Only the supervisor speaks to systemd: the shards do not inherit the socket.
    for proc in broker.workers.values():
        assert "NOTIFY_SOCKET" not in proc.environ()
        assert "WATCHDOG_USEC" not in proc.environ()
    check_for(5, 0.05, lambda: len(notify_socket.watchdog_times()) >= 3)

    expected = ["READY=1"]
    if reload_available():
        conf.write_text("debug: true\n")
        broker.proc.send_signal(signal.SIGHUP)
        expected += ["RELOADING=1", "READY=1"]
        check_for(10, 0.05, lambda: notify_socket.states() == expected)
        reloading = next(t for t in notify_socket.texts() if "RELOADING=1" in t)
        usec = int(reloading.split("MONOTONIC_USEC=")[1].split("\n")[0])
        assert abs(usec / 1e6 - time.monotonic()) < 30
    assert broker.stop() == 0
    expected.append("STOPPING=1")
    assert notify_socket.states() == expected


def test_sdnotify_watchdog_pauses_while_a_worker_is_stuck(
    notify_socket: NotifySocket, broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    conf = tmp_path / "sb.conf"
    conf.write_text('worker_heartbeat_timeout: "3s"\n')
    broker = broker_factory(workers=2, extra_args=["-c", str(conf)])
    check_for(5, 0.05, lambda: len(notify_socket.watchdog_times()) >= 3)
    victim = broker.workers[2]
    stopped_at = time.monotonic()
    os.kill(victim.pid, signal.SIGSTOP)
    try:

        def replaced() -> bool:
            current = broker.refresh_workers()
            return 2 in current and current[2].pid != victim.pid

        check_for(20, 0.05, replaced)
        # Pings resume once the stuck worker is gone.
        check_for(10, 0.05, lambda: any(t > stopped_at + 3 for t in notify_socket.watchdog_times()))
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGCONT)
    times = [t for t in notify_socket.watchdog_times() if t >= stopped_at - 0.5]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 1.5, f"the watchdog kept pinging while a worker was stuck: {gaps}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_sdnotify_unit_file_verifies(tmp_path: Path) -> None:
    unit = (REPO_ROOT / "systemd" / "shardbroker.service").read_text()
    # verify wants the ExecStart binary to exist: point it at this checkout's.
    exe = Path(REPO_ROOT / ".venv" / "bin" / "shardbroker")
    local = tmp_path / "shardbroker.service"
    local.write_text(unit.replace("/opt/shardbroker/.venv/bin/shardbroker", str(exe)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(local)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "shardbroker" in line and "not found" not in line.lower()
    ]
    assert done.returncode == 0 or not problems, done.stdout + done.stderr
