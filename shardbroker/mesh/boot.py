"""What every shard process (worker or storage) does first: read its ShardBoot from the
inherited boot fd and tie its life to the supervisor's."""

from __future__ import annotations

import ctypes
import os
import signal

from shardbroker import const
from shardbroker.mesh.mesh import ShardBoot, decode_boot

_PR_SET_PDEATHSIG = 1


def read_boot(fd: int) -> ShardBoot:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return decode_boot(b"".join(chunks))


def die_with_parent(supervisor_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies; check it is not gone already."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor_pid:
        os._exit(const.EXIT_BOOT_FAILURE)
