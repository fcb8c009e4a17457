"""/accountz and /accstatz: the accounts (the configured ones, the global one and the
system account), their exports, imports and mappings, and their traffic.

Pure: no I/O, no clock, no asyncio; called by monitor/service.py with the
`collect.BrokerState` it gathered. Texts and shapes are nats-server's (monitor.go).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from shardbroker.config.accounts import local_subject
from shardbroker.config.options import Options, system_account_name
from shardbroker.config.rate_limit import default_burst
from shardbroker.gofmt.duration import go_duration
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.jetstream.account import jetstream_accounts
from shardbroker.mesh.rate_table import RateFigures
from shardbroker.monitor.collect import (
    GLOBAL_ACCOUNT,
    BrokerState,
    MsgBytes,
    QueryError,
)
from shardbroker.security.accounts import SYSTEM_IMPORTS

# -- /accountz, /accstatz ----------------------------------------------------------------------


class SublistStats(msgspec.Struct):
    num_subscriptions: int
    num_cache: int
    num_inserts: int
    num_removes: int
    num_matches: int
    cache_hit_rate: float
    max_fanout: int
    avg_fanout: float


class ExportInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    subject: str
    type: str
    response_type: str = ""
    approved_accounts: list[str] | None = None


class ImportInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    subject: str
    account: str
    to: str = ""
    local_subject: str
    type: str
    # Always shown, false included.
    invalid: bool
    share: bool
    tracking: bool


class MapDest(msgspec.Struct):
    subject: str
    weight: int


class RateLimitInfo(msgspec.Struct, kw_only=True):
    """shardbroker's addition: the account's publish rate limit (the bursts in effect)
    and what it did over every worker: publishers held back, for how long, publishes
    refused and messages let through."""

    msgs_per_sec: float
    bytes_per_sec: float
    burst_msgs: int
    burst_bytes: int
    mode: str
    throttled: int
    throttled_time: str
    rejected: int
    admitted: int


class AccountDetail(msgspec.Struct, omit_defaults=True, kw_only=True):
    account_name: str
    update_time: str
    is_system: bool = False
    expired: bool
    complete: bool
    jetstream_enabled: bool
    leafnode_connections: int
    client_connections: int
    subscriptions: int
    mappings: dict[str, list[MapDest]] | None = None
    exports: list[ExportInfo] | None = None
    imports: list[ImportInfo] | None = None
    name_tag: str = ""
    sublist_stats: SublistStats | None = None
    rate_limit: RateLimitInfo | None = None


class Accountz(msgspec.Struct, omit_defaults=True, kw_only=True):
    server_id: str
    now: str
    system_account: str
    accounts: list[str] = msgspec.field(default_factory=list)
    account_detail: AccountDetail | None = None


class AccountFigures(NamedTuple):
    """One account's connections and traffic, summed over the workers' snapshots."""

    conns: int = 0
    subs: int = 0
    in_msgs: int = 0
    in_bytes: int = 0
    out_msgs: int = 0
    out_bytes: int = 0


def account_names(opts: Options) -> list[str]:
    """nats-server's list: the system account, the configured ones, then $G."""
    system = system_account_name(opts)
    names = [system] if system else []
    names += [a.name for a in opts.accounts if a.name not in names]
    return [*names, GLOBAL_ACCOUNT]


_RESPONSE_TYPES = {"singleton": "Singleton", "stream": "Streamed", "chunked": "Chunked"}
USER_INFO = "$SYS.REQ.USER.INFO"  # the one implicit import nats-server shows as shared


def _details(opts: Options, acc: str) -> dict[str, Any]:
    """Mappings, exports and imports of an account, as /accountz shows them."""
    account = next((a for a in opts.accounts if a.name == acc), None)
    mappings = opts.mappings if acc == GLOBAL_ACCOUNT else account.mappings if account else ()
    out: dict[str, Any] = {}
    if mappings:
        out["mappings"] = {
            m.source: [MapDest(d.subject, d.weight) for d in m.destinations] for m in mappings
        }
    if account is not None and account.exports:
        out["exports"] = [
            ExportInfo(
                subject=e.subject,
                type="service" if e.service else "stream",
                response_type=_RESPONSE_TYPES[e.response_type] if e.service else "",
                approved_accounts=list(e.accounts) if e.accounts is not None else None,
            )
            for e in account.exports
        ]
    imports = [
        ImportInfo(
            subject=i.subject,
            account=i.account,
            to=i.to if i.service else "",
            local_subject=local_subject(i),
            type="service" if i.service else "stream",
            invalid=False,
            share=i.share,
            tracking=False,
        )
        for i in (account.imports if account is not None else ())
    ]
    system = system_account_name(opts)
    if system and acc != system:
        imports += [
            ImportInfo(
                subject=named.format(acc=acc), account=system, to=local, local_subject=local,
                type="service", invalid=False, share=local == USER_INFO, tracking=False,
            )
            for local, named in SYSTEM_IMPORTS
        ]  # fmt: skip
    if imports:
        out["imports"] = imports
    return out


def accountz(
    state: BrokerState, acc: str = "", figures: dict[str, AccountFigures] | None = None
) -> Accountz:
    """/accountz: the account names, or with `acc` one account's detail. `figures`: per
    account connections and traffic (None: every connection is in $G, as the shard
    totals say)."""
    now = format_rfc3339(state.now_ns)
    opts = state.opts
    system = system_account_name(opts)
    names = account_names(opts)
    if not acc:
        return Accountz(server_id=state.server_id, now=now, system_account=system, accounts=names)
    if acc not in names:
        raise QueryError(f"Account {acc} does not exist")
    if figures is None:
        is_global = acc == GLOBAL_ACCOUNT
        figure = AccountFigures(
            conns=state.total("connections") if is_global else 0,
            subs=state.total("subscriptions") if is_global else 0,
        )
        inserts = state.total("sub_inserts") if is_global else 0
        removes = state.total("sub_removes") if is_global else 0
        cache = state.total("sub_cache") if is_global else 0
    else:
        figure = figures.get(acc, AccountFigures())
        inserts, removes, cache = figure.subs, 0, 0
    detail = AccountDetail(
        account_name=acc,
        update_time=format_rfc3339(state.start_ns),
        is_system=acc == system,
        expired=False,
        complete=True,
        jetstream_enabled=opts.jetstream
        and jetstream_accounts(opts).get(acc.encode(), None) is not None,
        leafnode_connections=0,
        client_connections=figure.conns,
        subscriptions=figure.subs,
        name_tag=acc,
        sublist_stats=SublistStats(
            num_subscriptions=figure.subs,
            num_cache=cache,
            num_inserts=inserts,
            num_removes=removes,
            num_matches=0,
            cache_hit_rate=0.0,
            max_fanout=0,
            avg_fanout=0.0,
        ),
        rate_limit=_rate_limit(state, acc),
        **_details(opts, acc),
    )
    return Accountz(
        server_id=state.server_id, now=now, system_account=system, account_detail=detail
    )


def _rate_limit(state: BrokerState, acc: str) -> RateLimitInfo | None:
    account = next((a for a in state.opts.accounts if a.name == acc), None)
    limit = account.rate_limit if account is not None else None
    if limit is None:
        return None
    figures = state.rate_limits.get("account:" + acc, RateFigures())
    return RateLimitInfo(
        msgs_per_sec=limit.msgs_per_sec,
        bytes_per_sec=limit.bytes_per_sec,
        burst_msgs=default_burst(limit.msgs_per_sec, limit.burst_msgs) if limit.msgs_per_sec else 0,
        burst_bytes=(
            default_burst(limit.bytes_per_sec, limit.burst_bytes) if limit.bytes_per_sec else 0
        ),
        mode=limit.mode,
        throttled=figures.throttles,
        throttled_time=go_duration(figures.throttled_ns),
        rejected=figures.rejected,
        admitted=figures.admitted,
    )


class DataStats(msgspec.Struct):
    msgs: int
    bytes: int
    gateways: MsgBytes
    routes: MsgBytes
    leafs: MsgBytes


class AccountStat(msgspec.Struct):
    acc: str
    name: str
    conns: int
    leafnodes: int
    total_conns: int
    num_subscriptions: int
    sent: DataStats
    received: DataStats
    slow_consumers: int


class Accstatz(msgspec.Struct):
    server_id: str
    now: str
    account_statz: list[AccountStat]


def _data_stats(msgs: int, size: int) -> DataStats:
    return DataStats(msgs, size, MsgBytes(), MsgBytes(), MsgBytes())


def accstatz(
    state: BrokerState, unused: bool = False, figures: dict[str, AccountFigures] | None = None
) -> Accstatz:
    """/accstatz: accounts with connections (all of them with `unused`). `figures` as
    for accountz."""
    if figures is None:
        conns = state.total("connections")
        stats: list[AccountStat] = []
        if conns or unused:
            stats.append(
                AccountStat(
                    acc=GLOBAL_ACCOUNT,
                    name=GLOBAL_ACCOUNT,
                    conns=conns,
                    leafnodes=0,
                    total_conns=state.total("total_connections"),
                    num_subscriptions=state.total("subscriptions"),
                    sent=_data_stats(state.total("out_msgs"), state.total("out_bytes")),
                    received=_data_stats(state.total("in_msgs"), state.total("in_bytes")),
                    slow_consumers=state.total("slow_consumers"),
                )
            )
        return Accstatz(state.server_id, format_rfc3339(state.now_ns), stats)
    stats = []
    for name in account_names(state.opts):
        figure = figures.get(name, AccountFigures())
        if not figure.conns and not unused:
            continue
        stats.append(
            AccountStat(
                acc=name, name=name, conns=figure.conns, leafnodes=0,
                total_conns=figure.conns, num_subscriptions=figure.subs,
                sent=_data_stats(figure.out_msgs, figure.out_bytes),
                received=_data_stats(figure.in_msgs, figure.in_bytes),
                slow_consumers=0,
            )
        )  # fmt: skip
    return Accstatz(state.server_id, format_rfc3339(state.now_ns), stats)
