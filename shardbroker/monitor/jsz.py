"""/jsz: JetStream totals, and per account, stream and consumer details on request.

Pure: no I/O, no clock, no asyncio; called by monitor/service.py and /metrics with the
`collect.BrokerState` and the storage shard's `StorageSnapshot`. Query options and shapes
are nats-server's (monitor.go Jsz/JSzOptions); the config and totals are the ones /varz
shows under ``jetstream``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.mesh.snapshot import (
    StorageSnapshot,
)
from shardbroker.monitor.collect import (
    BrokerState,
    JSApiStats,
    JSConfig,
    js_config,
    js_stats,
    parse_bool,
    parse_int,
)

# -- /jsz ----------------------------------------------------------------------------------------


class Jsz(msgspec.Struct, omit_defaults=True, kw_only=True):
    disabled: bool = False
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int
    accounts: int
    ha_assets: int
    api: JSApiStats
    server_id: str
    now: str
    config: JSConfig | None = None
    streams: int
    consumers: int
    messages: int
    bytes: int
    account_details: list[JszAccount] | None = None
    total: int


class JszAccount(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    id: str
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int
    accounts: int
    ha_assets: int
    api: JSApiStats
    stream_detail: list[dict[str, Any]] | None = None


# What nats-server shows as an account's reservation when it has none (uint64 -1).
NO_RESERVATION = 2**64 - 1
DEFAULT_JSZ_LIMIT = 1024


@dataclass
class JszQuery:
    """/jsz options (nats-server JSzOptions): `acc`, `accounts`, `streams`, `consumers`
    (implies streams), `config`, `offset`, `limit` over the accounts."""

    acc: str = ""
    accounts: bool = False
    streams: bool = False
    consumers: bool = False
    config: bool = False
    offset: int = 0
    limit: int = DEFAULT_JSZ_LIMIT

    @classmethod
    def from_query(cls, query: dict[str, str]) -> JszQuery:
        q = cls(acc=query.get("acc", ""))
        for name in ("accounts", "streams", "consumers", "config"):
            if name in query:
                setattr(q, name, parse_bool(name, query[name]))
        if "offset" in query:
            q.offset = max(0, parse_int("offset", query["offset"]))
        if "limit" in query:
            q.limit = parse_int("limit", query["limit"])
            if q.limit <= 0:
                q.limit = DEFAULT_JSZ_LIMIT
        return q

    @property
    def details(self) -> bool:
        """Does the answer list accounts (and so need the storage shard's snapshot)?"""
        return bool(self.acc) or self.accounts or self.streams or self.consumers


def _account_details(
    state: BrokerState, q: JszQuery, snap: StorageSnapshot
) -> list[JszAccount] | None:
    accounts = [a for a in snap.accounts if not q.acc or a.name == q.acc]
    accounts = accounts[q.offset : q.offset + q.limit]
    if not accounts:
        return None
    out = []
    for account in accounts:
        streams: list[dict[str, Any]] | None = None
        if q.streams or q.consumers:
            streams = []
            for stream in account.streams:
                detail: dict[str, Any] = {
                    "name": stream.name,
                    "created": stream.created,
                    "cluster": {"leader": state.server_name},
                }
                if q.config:
                    detail["config"] = stream.config
                detail["state"] = stream.state
                if q.consumers:
                    detail["consumer_detail"] = [
                        c if q.config else {k: v for k, v in c.items() if k != "config"}
                        for c in stream.consumers
                    ]
                streams.append(detail)
        out.append(
            JszAccount(
                name=account.name, id=account.name, memory=account.memory,
                storage=account.storage, reserved_memory=NO_RESERVATION,
                reserved_storage=NO_RESERVATION, accounts=0, ha_assets=0,
                api=JSApiStats(0, account.api_total, account.api_errors),
                stream_detail=streams,
            )
        )  # fmt: skip
    return out


def jsz(state: BrokerState, q: JszQuery | None = None, snap: StorageSnapshot | None = None) -> Jsz:
    """/jsz; with `q` asking for details, `snap` is the storage shard's snapshot."""
    if not state.opts.jetstream:
        return Jsz(
            disabled=True, memory=0, storage=0, reserved_memory=0, reserved_storage=0,
            accounts=0, ha_assets=0, api=JSApiStats(0, 0, 0), server_id=state.server_id,
            now=format_rfc3339(state.now_ns), config=JSConfig(max_memory=0, max_storage=0),
            streams=0, consumers=0, messages=0, bytes=0, total=0,
        )  # fmt: skip
    stats = js_stats(state)
    storage = state.storage()
    c = storage.counters if storage is not None else {}
    return Jsz(
        memory=stats.memory,
        storage=stats.storage,
        reserved_memory=stats.reserved_memory,
        reserved_storage=stats.reserved_storage,
        accounts=stats.accounts,
        ha_assets=0,
        api=stats.api,
        server_id=state.server_id,
        now=format_rfc3339(state.now_ns),
        config=js_config(state),
        streams=c.get("js_streams", 0),
        consumers=c.get("js_consumers", 0),
        messages=c.get("js_messages", 0),
        bytes=c.get("js_bytes", 0),
        account_details=(
            _account_details(state, q, snap) if q is not None and q.details and snap else None
        ),
        total=stats.accounts,
    )
