"""The CPU time a server spends on a bench run, per process (`--server-pid`).

Owner: the coordinator (`shardbroker bench --server-pid PID`, and perf/compare.py, which
passes a probe for each server it starts). Reads /proc through psutil, never signals.

A `ServerProbe` follows a process and its descendants: `start` (right before "go") and
`stop` (after the last client reported) each read the CPU time (user + system) of every
process of the tree, and `stop` returns the difference per process *role*:

  supervisor   the root of a shardbroker tree (`shardbroker serve`)
  worker N     `-m shardbroker.worker.main --shard N`
  storage      `-m shardbroker.jetstream.main` (JetStream)
  <name>       any other process by its name (`nats-server`)
  exited       CPU of children that ended and were reaped during the run (it moves into
               their parent's children_user/children_system)

The roles come from command lines, so bench knows shardbroker's processes without
importing any of them (it talks to servers over the wire only). A process that starts
during the run counts from zero (a restarted worker); one that ends unreaped is lost,
and one that ended reaped counts under `exited`. Processes are told apart by pid and
start time, so a reused pid is never taken for the old process.
"""

from __future__ import annotations

import contextlib
import re

import psutil

SUPERVISOR = "supervisor"
STORAGE = "storage"
EXITED = "exited"
_WORKER_MODULE = "shardbroker.worker.main"
_STORAGE_MODULE = "shardbroker.jetstream.main"

ProcessKey = tuple[int, float]  # pid, start time


def role_of(cmdline: list[str], name: str, root: bool) -> str:
    """The role of a process from its command line (see the module docstring)."""
    if _WORKER_MODULE in cmdline:
        try:
            return f"worker {int(cmdline[cmdline.index('--shard') + 1])}"
        except (ValueError, IndexError):
            return "worker"
    if _STORAGE_MODULE in cmdline:
        return STORAGE
    if root and "serve" in cmdline and any("shardbroker" in part for part in cmdline):
        return SUPERVISOR
    return name or "process"


def role_order(role: str) -> tuple[int, int, str]:
    """Sort key: supervisor, workers by number, storage, others, exited."""
    if role == SUPERVISOR:
        return (0, 0, role)
    match = re.fullmatch(r"worker (\d+)", role)
    if match:
        return (1, int(match.group(1)), role)
    if role == STORAGE:
        return (2, 0, role)
    if role == EXITED:
        return (4, 0, role)
    return (3, 0, role)


class ServerProbe:
    """CPU seconds per process role of the tree rooted at `pid`, from `start` to `stop`."""

    __slots__ = ("_before", "_known", "_roles", "root")

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)  # psutil.NoSuchProcess if there is none
        self._known: dict[ProcessKey, psutil.Process] = {}
        self._roles: dict[ProcessKey, str] = {}
        self._before: dict[ProcessKey, tuple[float, float]] = {}

    def _tree(self) -> dict[ProcessKey, psutil.Process]:
        """Every process of the tree seen so far that still runs (the root first)."""
        procs = [self.root]
        with contextlib.suppress(psutil.Error):
            procs += self.root.children(recursive=True)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                key = (p.pid, p.create_time())
                if key not in self._known:
                    self._known[key] = p
                    try:
                        cmdline = p.cmdline()
                    except psutil.Error:
                        cmdline = []
                    self._roles[key] = role_of(cmdline, p.name(), p.pid == self.root.pid)
        return {k: p for k, p in self._known.items() if _alive(p)}

    def _sample(self) -> dict[ProcessKey, tuple[float, float]]:
        """(own CPU, reaped children's CPU) per live process, in seconds."""
        out: dict[ProcessKey, tuple[float, float]] = {}
        for key, p in self._tree().items():
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            out[key] = (t.user + t.system, t.children_user + t.children_system)
        return out

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds per role since `start`, in role order (see role_order)."""
        after = self._sample()
        by_role: dict[str, float] = {}
        reaped = 0.0
        for key, (own, children) in after.items():
            own0, children0 = self._before.get(key, (0.0, children))
            role = self._roles[key]
            by_role[role] = by_role.get(role, 0.0) + max(0.0, own - own0)
            reaped += max(0.0, children - children0)
        if reaped > 0:
            by_role[EXITED] = reaped
        return {role: by_role[role] for role in sorted(by_role, key=role_order)}


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
