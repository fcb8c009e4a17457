"""sd_notify messages on a socketpair-like datagram socket; no broker."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from shardbroker.supervisor.sdnotify import Notifier


def test_sdnotify_abstract_address_and_environment_taken() -> None:
    name = f"sb-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000", "OTHER": "x"}
        n = Notifier(env)
        assert env == {"OTHER": "x"}, "the shards must not inherit the notify variables"
        assert n.watchdog_interval == 1.0
        assert n.send("READY=1", "STATUS=up")
        assert server.recv(100) == b"READY=1\nSTATUS=up"
        n.close()


def test_sdnotify_path_address_and_watchdog_of_another_pid(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        n = Notifier(
            {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid() + 1)}
        )
        assert n.watchdog_interval == 0.0 and not n.watchdog_due()
        n.watchdog()
        assert server.recv(100) == b"WATCHDOG=1"
        n.close()


def test_sdnotify_without_socket_does_nothing(tmp_path: Path) -> None:
    n = Notifier({})
    assert not n.enabled and not n.send("READY=1")
    # A socket that went away is reported once, never raised.
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not gone.send("READY=1") and not gone.send("STOPPING=1")
    gone.close()
