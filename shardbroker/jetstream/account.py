"""The JetStream state of one account: its limits, its streams, and the index of the
subjects they capture (one `Capture` per stream subject in a sublist, so a publish finds
its stream in one match); and which accounts have JetStream (`jetstream_accounts`).

Owner: the storage shard's engine (engine.py), which keeps one per account; the API
(api.py) reads it. Runs on the storage shard's loop.
"""

from __future__ import annotations

import os
from typing import Any

from shardbroker import const
from shardbroker.config.accounts import is_subset_match, local_subject
from shardbroker.config.options import AccountJetStream, Options, system_account_name
from shardbroker.jetstream.stream import Stream
from shardbroker.protocol.sublist import Sublist

_JS_API_INFO = "$JS.API.INFO"


class Capture:
    """One subject of one stream, as inserted in the account's capture sublist."""

    __slots__ = ("queue", "stream", "subject")

    def __init__(self, subject: bytes, stream: Stream) -> None:
        self.subject = subject
        self.queue = None
        self.stream = stream


def _captures(plain: list[Capture], queue_groups: dict[bytes, list[Any]]) -> tuple[Stream, ...]:
    return tuple({capture.stream: None for capture in plain})


def jetstream_accounts(opts: Options) -> dict[bytes, AccountJetStream | None]:
    """Every account the JetStream API answers in, with its limits (None: JetStream is
    not enabled there, and the API answers 10039), as nats-server enables them: with no
    account but the system account configured, the global account `$G` with no limits;
    else each configured account whose `jetstream` enables it, and `$G` not. Never the
    system account (whose answers differ, see api.py)."""
    system = system_account_name(opts)
    others = [account for account in opts.accounts if account.name != system]
    out: dict[bytes, AccountJetStream | None] = {}
    out[const.GLOBAL_ACCOUNT] = None if others else AccountJetStream()
    for account in others:
        if account.jetstream is None and any(
            imp.service and is_subset_match(_JS_API_INFO, local_subject(imp))
            for imp in account.imports
        ):
            # It reaches another account's JetStream through a service import: no
            # answer of ours beside it (nats-server's serviceImportShadowed).
            continue
        out[account.name.encode()] = account.jetstream
    if system:
        out[system.encode()] = None
    return out


class Account:
    """The JetStream state of one account: its limits, streams and their capture index."""

    def __init__(
        self,
        name: bytes,
        directory: str,
        limits: AccountJetStream | None = None,
        system: bool = False,
    ) -> None:
        self.name = name
        self.directory = directory
        # None: JetStream is not enabled in this account (every API call answers 10039).
        self.limits = limits
        # The system account: its API answers are system_response (nats-server's).
        self.system = system
        self.streams: dict[str, Stream] = {}
        self.captures: Sublist[Capture, tuple[Stream, ...]] = Sublist(_captures)
        self.capture_entries: dict[str, list[Capture]] = {}
        self.api_total = 0
        self.api_errors = 0

    def streams_dir(self) -> str:
        return os.path.join(self.directory, "streams")

    def usage(self, memory: bool) -> int:
        """Bytes held by this account's memory (or file) streams."""
        storage = "memory" if memory else "file"
        return sum(
            stream.store.state(False).bytes
            for stream in self.streams.values()
            if stream.config.storage == storage
        )
