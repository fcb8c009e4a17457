"""Finding a running broker's supervisor: by PID, by pid file, or by client port.

Runs in the shell (`shardbroker ldm`, `shardbroker stats`). By port, the supervisor's pid
is read from slot 0 of the broker's stats segment (named from the port), read-only.
Whatever the way, the process must exist and be a shardbroker, so that a stale pid file
whose number was reused never gets a signal meant for the broker.
"""

from __future__ import annotations

import os

import posix_ipc
import psutil

from shardbroker import const
from shardbroker.mesh.stats import StatsReader


class BrokerNotFoundError(Exception):
    """No running broker where the user pointed; the message says where we looked."""


def is_shardbroker(pid: int) -> bool:
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # someone else's process with our name; the signal will say
    return any("shardbroker" in arg for arg in cmdline[:3])


def open_stats(port: int) -> StatsReader:
    try:
        return StatsReader(port)
    except posix_ipc.ExistentialError:
        raise BrokerNotFoundError(
            f"no shardbroker is running on port {port} (no shared memory segment "
            f"/dev/shm/shardbroker-{port}-shards)"
        ) from None


def pid_from_port(port: int) -> int:
    reader = open_stats(port)
    try:
        pid = reader.slot(const.SUPERVISOR_SHARD)["pid"]
    finally:
        reader.close()
    if not pid or not is_shardbroker(pid):
        raise BrokerNotFoundError(
            f"no shardbroker is running on port {port} (its shared memory is left from a "
            "broker that is gone)"
        )
    return pid


def pid_from_file(path: str) -> int:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as exc:
        raise BrokerNotFoundError(
            f"no shardbroker pid file at {path}: {exc.strerror or exc}"
        ) from None
    if not text.isdigit():
        raise BrokerNotFoundError(f"no shardbroker pid in {path}: {text[:40]!r}")
    pid = int(text)
    if not is_shardbroker(pid):
        raise BrokerNotFoundError(f"no shardbroker is running with pid {pid} (from {path})")
    return pid


def supervisor_pid(pid: int | None = None, pid_file: str = "", port: int | None = None) -> int:
    """The supervisor's pid: the given one, or from the pid file, or from the port
    (the default client port if nothing is given)."""
    if pid is not None:
        if not is_shardbroker(pid):
            raise BrokerNotFoundError(f"no shardbroker is running with pid {pid}")
        return pid
    if pid_file:
        return pid_from_file(pid_file)
    return pid_from_port(const.DEFAULT_PORT if port is None else port)


def port_of(pid: int) -> int | None:
    """The client port a supervisor serves, from its stats segment's name in its maps."""
    try:
        maps = psutil.Process(pid).memory_maps(grouped=True)
    except (psutil.Error, OSError):
        return None
    for entry in maps:
        name = os.path.basename(entry.path)
        if name.startswith("shardbroker-") and name.endswith("-shards"):
            number = name[len("shardbroker-") : -len("-shards")]
            if number.isdigit():
                return int(number)
    return None
