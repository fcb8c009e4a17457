"""sd_notify: telling systemd (Type=notify) what the broker is doing.

Runs in the supervisor only; the shards never speak to systemd (the variables are taken
out of the environment the shards inherit, as sd_notify(unset_environment=1) does, and
with NotifyAccess=main systemd would ignore them anyway).

The protocol is one datagram of ``KEY=VALUE`` lines on an AF_UNIX SOCK_DGRAM socket
whose address is $NOTIFY_SOCKET: a filesystem path, or an abstract-namespace name when it
starts with ``@`` (the ``@`` stands for a leading NUL byte). No compiled dependency.
Without $NOTIFY_SOCKET every call does nothing, so the broker runs the same outside
systemd. A send error is logged once and otherwise ignored: systemd being gone must not
stop the broker.

What the supervisor sends:

- ``READY=1`` (with STATUS) once every shard reported READY and the port is served;
- ``RELOADING=1`` with ``MONOTONIC_USEC`` when a SIGHUP reload starts, ``READY=1``
  when it is done (applied or refused: the broker runs either way);
- ``STOPPING=1`` when it starts stopping (signal, lame duck's end, a halt);
- ``WATCHDOG=1`` every half of $WATCHDOG_USEC, and only while every ready shard's
  heartbeat is fresh: a broker whose loops are stuck is let go, and systemd restarts it;
- ``STATUS=...``: one line for `systemctl status`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("shardbroker.supervisor")


class Notifier:
    """One connection to systemd's notification socket (or nothing)."""

    def __init__(self, env: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.pop("NOTIFY_SOCKET", "")
        usec = env.pop("WATCHDOG_USEC", "")
        watchdog_pid = env.pop("WATCHDOG_PID", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        elif path:
            log.warning("NOTIFY_SOCKET %r is not a unix socket; not notifying systemd", path)
        # Seconds between two WATCHDOG=1, 0 when systemd does not watch us.
        self.watchdog_interval = 0.0
        ours = not watchdog_pid or watchdog_pid == str(os.getpid())
        if usec.isdigit() and int(usec) > 0 and ours:
            self.watchdog_interval = int(usec) / 2e6
        self._last_watchdog = 0.0
        self._failed = False
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        sock = self._sock
        if sock is None or self.address is None:
            return False
        try:
            sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
            return False
        return True

    def watchdog_due(self) -> bool:
        return bool(self.watchdog_interval) and (
            time.monotonic() - self._last_watchdog >= self.watchdog_interval
        )

    def watchdog(self) -> None:
        self._last_watchdog = time.monotonic()
        self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_notifier: Notifier | None = None


def notifier() -> Notifier:
    """The supervisor's notifier, made from (and taken out of) the environment once."""
    global _notifier
    if _notifier is None:
        _notifier = Notifier()
    return _notifier


def notify_ready(status: str = "") -> None:
    """Started, or a reload is over."""
    lines = ["READY=1"]
    if status:
        lines.append("STATUS=" + status)
    notifier().send(*lines)


def notify_reloading(status: str = "Reloading configuration") -> None:
    """A reload starts; notify_ready() must follow when it is applied or refused."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier().send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=" + status)


def notify_stopping(status: str = "Stopping") -> None:
    notifier().send("STOPPING=1", "STATUS=" + status)


def notify_status(status: str) -> None:
    notifier().send("STATUS=" + status)


def notify_watchdog_if_due(healthy: bool) -> None:
    """From the supervisor's tick: WATCHDOG=1 every half period, while healthy."""
    n = notifier()
    if healthy and n.watchdog_due():
        n.watchdog()
