"""The JetStream state of one account: its streams, and the index of the subjects they
capture (one `Capture` per stream subject in a sublist, so a publish finds its stream
in one match).

Owner: the storage shard's engine (engine.py), which keeps one per account; the API
(api.py) reads it. Runs on the storage shard's loop.
"""

from __future__ import annotations

import os
from typing import Any

from shardbroker.jetstream.stream import Stream
from shardbroker.protocol.sublist import Sublist


class Capture:
    """One subject of one stream, as inserted in the account's capture sublist."""

    __slots__ = ("queue", "stream", "subject")

    def __init__(self, subject: bytes, stream: Stream) -> None:
        self.subject = subject
        self.queue = None
        self.stream = stream


def _captures(plain: list[Capture], queue_groups: dict[bytes, list[Any]]) -> tuple[Stream, ...]:
    return tuple({capture.stream: None for capture in plain})


class Account:
    """The JetStream state of one account: its streams and their capture index."""

    def __init__(self, name: bytes, directory: str) -> None:
        self.name = name
        self.directory = directory
        self.streams: dict[str, Stream] = {}
        self.captures: Sublist[Capture, tuple[Stream, ...]] = Sublist(_captures)
        self.capture_entries: dict[str, list[Capture]] = {}
        self.api_total = 0
        self.api_errors = 0

    def streams_dir(self) -> str:
        return os.path.join(self.directory, "streams")
