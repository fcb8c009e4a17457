"""nats-server's `--signal <command>[=<pid or pid file>]` for `shardbroker serve`.

Runs in the shell. The commands and the signals they send are nats-server's (reference
config.md §4); the supervisor is found by ops.locate (a PID, a pid file, or the port).
"""

from __future__ import annotations

import os
import signal

from shardbroker.ops.locate import BrokerNotFoundError, supervisor_pid

# nats-server's --signal commands.
SIGNALS: dict[str, signal.Signals] = {
    "reload": signal.SIGHUP,
    "quit": signal.SIGINT,
    "term": signal.SIGTERM,
    "reopen": signal.SIGUSR1,
    "ldm": signal.SIGUSR2,
    "stop": signal.SIGKILL,
}


class SignalError(BrokerNotFoundError):
    """A bad --signal value, or a broker that cannot be signalled."""


def parse_signal_option(value: str) -> tuple[str, str]:
    """`reload` or `reload=<pid or pid file>` -> (command, target or "")."""
    command, _, target = value.partition("=")
    command = command.strip().lower()
    if command not in SIGNALS:
        raise SignalError(
            f"unknown signal {command!r}; expected one of {', '.join(sorted(SIGNALS))}"
        )
    return command, target.strip()


def signal_broker(value: str, pid_file: str = "", port: int | None = None) -> int:
    """Send the --signal `value` to the broker it names (else found by -P, then -p, then
    the default port); returns the PID signalled. Raises BrokerNotFoundError."""
    command, target = parse_signal_option(value)
    if target.isdigit():
        pid = supervisor_pid(int(target))
    elif target:
        pid = supervisor_pid(pid_file=target)
    else:
        pid = supervisor_pid(pid_file=pid_file, port=port)
    try:
        os.kill(pid, SIGNALS[command])
    except ProcessLookupError:
        raise SignalError(f"no process with PID {pid}") from None
    except PermissionError:
        raise SignalError(f"not allowed to signal PID {pid}") from None
    return pid
