"""What a consumer writes to disk (``o.dat``) to resume exactly after a restart.

Owner: the storage process; `stream` reads and writes one file per consumer directory.
The file is msgpack of `ConsumerState`, replaced atomically (temp file + rename); an
unreadable one is logged and the consumer starts afresh.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import msgspec

log = logging.getLogger("shardbroker.jetstream")

STATE_FILE = "o.dat"


class ConsumerState(msgspec.Struct, array_like=True):
    """What o.dat holds (msgpack), enough to resume exactly after a restart."""

    sseq: int
    dseq: int
    floor_dseq: int
    floor_sseq: int
    pending: list[tuple[int, int, int]]  # (stream seq, consumer seq, delivered at)
    redelivered: list[tuple[int, int]]  # (stream seq, deliveries)
    last_per_subject: list[int] = []


class _HasState(Protocol):
    def state(self) -> ConsumerState: ...


def state_count(state: ConsumerState, seq: int) -> int:
    for s, count in state.redelivered:
        if s == seq:
            return count
    return 1


def write_state(directory: str, consumer: _HasState) -> None:
    path = os.path.join(directory, STATE_FILE)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(msgspec.msgpack.encode(consumer.state()))
    os.replace(tmp, path)


def read_state(directory: str) -> ConsumerState | None:
    try:
        with open(os.path.join(directory, STATE_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        return msgspec.msgpack.decode(data, type=ConsumerState)
    except msgspec.DecodeError as exc:
        log.warning("consumer state %s is unreadable (%s); starting it afresh", directory, exc)
        return None
