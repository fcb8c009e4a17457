"""/accountz and /accstatz: the accounts (the global one and $SYS) and their traffic.

Pure: no I/O, no clock, no asyncio; called by monitor/service.py with the
`collect.BrokerState` it gathered. Texts and shapes are nats-server's (monitor.go).
"""

from __future__ import annotations

import msgspec

from shardbroker.config.options import system_account_name
from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.monitor.collect import (
    GLOBAL_ACCOUNT,
    SYSTEM_ACCOUNT,
    BrokerState,
    MsgBytes,
    QueryError,
)

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
    name_tag: str = ""
    sublist_stats: SublistStats | None = None


class Accountz(msgspec.Struct, omit_defaults=True, kw_only=True):
    server_id: str
    now: str
    system_account: str
    accounts: list[str] = msgspec.field(default_factory=list)
    account_detail: AccountDetail | None = None


def accountz(state: BrokerState, acc: str = "") -> Accountz:
    now = format_rfc3339(state.now_ns)
    if not acc:
        return Accountz(
            server_id=state.server_id,
            now=now,
            system_account=SYSTEM_ACCOUNT,
            accounts=[SYSTEM_ACCOUNT, GLOBAL_ACCOUNT],
        )
    if acc not in (SYSTEM_ACCOUNT, GLOBAL_ACCOUNT):
        raise QueryError(f"Account {acc} does not exist")
    is_global = acc == GLOBAL_ACCOUNT
    subs = state.total("subscriptions") if is_global else 0
    detail = AccountDetail(
        account_name=acc,
        update_time=format_rfc3339(state.start_ns),
        is_system=not is_global,
        expired=False,
        complete=True,
        # $G has JetStream only while no account but the system account is configured.
        jetstream_enabled=is_global
        and state.opts.jetstream
        and all(a.name == system_account_name(state.opts) for a in state.opts.accounts),
        leafnode_connections=0,
        client_connections=state.total("connections") if is_global else 0,
        subscriptions=subs,
        name_tag=acc,
        sublist_stats=SublistStats(
            num_subscriptions=subs,
            num_cache=state.total("sub_cache") if is_global else 0,
            num_inserts=state.total("sub_inserts") if is_global else 0,
            num_removes=state.total("sub_removes") if is_global else 0,
            num_matches=0,
            cache_hit_rate=0.0,
            max_fanout=0,
            avg_fanout=0.0,
        ),
    )
    return Accountz(
        server_id=state.server_id, now=now, system_account=SYSTEM_ACCOUNT, account_detail=detail
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


def accstatz(state: BrokerState, unused: bool = False) -> Accstatz:
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
