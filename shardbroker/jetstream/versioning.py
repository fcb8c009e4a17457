"""API-level metadata of stream and consumer configs (server/jetstream_versioning.go).

Owner: pure functions, imported by the storage process's API layer and by tests. No I/O.

A stored config carries ``_nats.req.level``: the API level its features need. Answers to
create, update and info add the server's ``_nats.ver`` and ``_nats.level``, which are never
stored. The rules are the same for streams and consumers; only the features that raise the
level differ (`stream_required_level`, `consumer_required_level`).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from shardbroker.gofmt.timestamp import parse_rfc3339
from shardbroker.jetstream.consumer_schema import ConsumerConfig
from shardbroker.jetstream.schema import StreamConfig

__all__ = [
    "REQUIRED_LEVEL_KEY",
    "SERVER_LEVEL_KEY",
    "SERVER_VERSION_KEY",
    "consumer_required_level",
    "copy_metadata",
    "set_dynamic_metadata",
    "set_static_metadata",
    "stream_required_level",
]

REQUIRED_LEVEL_KEY = "_nats.req.level"
SERVER_VERSION_KEY = "_nats.ver"
SERVER_LEVEL_KEY = "_nats.level"

_Config = TypeVar("_Config", StreamConfig, ConsumerConfig)


def stream_required_level(cfg: StreamConfig) -> int:
    """The API level a stream's features need (nats setStaticStreamMetadata)."""
    level = 0
    if cfg.allow_msg_ttl or cfg.subject_delete_marker_ttl > 0:
        level = max(level, 1)  # TTLs: 2.11
    if (
        cfg.allow_msg_counter
        or cfg.allow_atomic
        or cfg.allow_msg_schedules
        or cfg.persist_mode == "async"
    ):
        level = max(level, 2)  # counters, atomic batches, schedules, async persist: 2.12
    if cfg.allow_batched:
        level = max(level, 4)  # fast batch publish: 2.14
    return level


def consumer_required_level(cfg: ConsumerConfig) -> int:
    """The API level a consumer's features need (nats setStaticConsumerMetadata)."""
    level = 0
    if cfg.pause_until is not None and parse_rfc3339(cfg.pause_until) != 0:
        level = 1  # pause: 2.11
    if cfg.priority_policy != "none" or cfg.priority_timeout != 0 or cfg.priority_groups:
        level = 1  # priority groups: 2.11
    if cfg.ack_policy == "flow_control":
        level = 4  # flow-control acks: 2.14
    return level


def _required_level(cfg: StreamConfig | ConsumerConfig) -> int:
    if isinstance(cfg, StreamConfig):
        return stream_required_level(cfg)
    return consumer_required_level(cfg)


def _without_dynamic(metadata: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k not in (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)}


def set_static_metadata(cfg: _Config) -> _Config:
    """Stored metadata: ``_nats.req.level`` from the features used, dynamic keys removed."""
    metadata = _without_dynamic(cfg.metadata)
    metadata[REQUIRED_LEVEL_KEY] = str(_required_level(cfg))
    return msgspec.structs.replace(cfg, metadata=metadata)


def set_dynamic_metadata(cfg: _Config, *, version: str, api_level: int) -> _Config:
    """The config as create/update/info answers show it: plus ``_nats.ver`` and ``_nats.level``."""
    metadata = dict(cfg.metadata)
    metadata[SERVER_VERSION_KEY] = version
    metadata[SERVER_LEVEL_KEY] = str(api_level)
    return msgspec.structs.replace(cfg, metadata=metadata)


def copy_metadata(cfg: _Config, prev: _Config) -> _Config:
    """`cfg` with the stored ``_nats.req.level`` of `prev` (to compare configs regardless of it)."""
    metadata = _without_dynamic(cfg.metadata)
    if REQUIRED_LEVEL_KEY in prev.metadata:
        metadata[REQUIRED_LEVEL_KEY] = prev.metadata[REQUIRED_LEVEL_KEY]
    else:
        metadata.pop(REQUIRED_LEVEL_KEY, None)
    return msgspec.structs.replace(cfg, metadata=metadata)
