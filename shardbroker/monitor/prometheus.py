"""/metrics: the same Structs as the JSON endpoints, in Prometheus text format.

Owner: the supervisor (called by monitor/http.py). Built with prometheus-client. Names
follow prometheus-nats-exporter (reference monitoring.md §11) so its dashboards work:
`gnatsd_varz_*` by its flattening rule, `gnatsd_subsz_*`, `gnatsd_routez_*`,
`gnatsd_connz_*` (sums over open connections), `gnatsd_healthz_status`, and
`jetstream_server_*`; every gauge carries `server_id`. shardbroker adds
`shardbroker_shard_*` gauges labelled `shard` and `role`, one per shard slot counter.

A fresh registry per scrape: the figures are computed when asked, never kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shardbroker.monitor import collect, connz, jsz
from shardbroker.monitor.collect import BrokerState
from shardbroker.monitor.connz import Connz
from shardbroker.monitor.jsz import Jsz, JszAccount

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The exporter keeps these string keys: as epoch ms when a time, else a `value` label.
_STRING_KEYS = {"server_id", "server_name", "version", "domain", "leader", "name", "start",
                "config_load_time"}  # fmt: skip
_SKIPPED = {"leaf", "trusted_operators_claim", "cluster_tls_timeout", "cluster_cluster_port",
            "cluster_auth_timeout", "gateway_port", "gateway_auth_timeout",
            "gateway_tls_timeout", "gateway_connect_retries"}  # fmt: skip
_UNDERSCORES = re.compile(r"_+")

# Slot counters published per shard, with their help text.
SHARD_GAUGES = {
    "connections": "Client connections open on the shard",
    "total_connections": "Client connections accepted by the shard since it started",
    "subscriptions": "Subscriptions held by the shard's clients",
    "in_msgs": "Messages published by the shard's clients",
    "out_msgs": "Messages delivered to the shard's clients",
    "in_bytes": "Bytes published by the shard's clients",
    "out_bytes": "Bytes delivered to the shard's clients",
    "slow_consumers": "Slow consumers cut by the shard",
    "ring_full_events": "Times an outbound ring of the shard was full",
    "ring_fill_pct": "Fill of the shard's fullest outbound ring, percent",
    "stalled_clients": "Clients whose output is stalled",
    "closed_connections": "Closed connections the shard remembers for /connz",
}


# shardbroker_rate_limit_<field>, in the order of mesh/rate_table.RateFigures.
RATE_LIMIT_GAUGES = {
    "throttled": "Times publishers were held back by the limit",
    "throttled_seconds": "Seconds publishers were held back by the limit, added up",
    "rejected": "Publishes refused by the limit (mode reject)",
    "admitted": "Messages the limit let through",
}


# shardbroker_account_<field>: a connection count, then sums of these ConnInfo fields.
_ACCOUNT_FIELDS = ("connections", "subscriptions", "in_msgs", "out_msgs", "in_bytes", "out_bytes")


def _name(*parts: str) -> str:
    return _UNDERSCORES.sub("_", "_".join(parts).replace("/", "_")).strip("_")


def _epoch_ms(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def flatten(prefix: str, data: Any, server_id: str) -> Iterator[GaugeMetricFamily]:
    """prometheus-nats-exporter's generic rule for one endpoint's JSON."""

    def walk(path: str, value: Any) -> Iterator[GaugeMetricFamily]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(_name(path, key) if path else _name(key), item)
            return
        if path in _SKIPPED:
            return
        name = _name(prefix, path)
        if isinstance(value, bool) or value is None or isinstance(value, list):
            return
        if isinstance(value, int | float):
            gauge = GaugeMetricFamily(name, name, labels=["server_id"])
            gauge.add_metric([server_id], float(value))
            yield gauge
        elif isinstance(value, str) and path in _STRING_KEYS:
            epoch = _epoch_ms(value)
            if epoch is not None:
                gauge = GaugeMetricFamily(name, name, labels=["server_id"])
                gauge.add_metric([server_id], epoch)
            else:
                gauge = GaugeMetricFamily(name, name, labels=["server_id", "value"])
                gauge.add_metric([server_id, value], 1.0)
            yield gauge

    yield from walk("", msgspec.to_builtins(data))


class _Figures(Collector):
    def __init__(self, state: BrokerState, connz: Connz | None, jsz: Jsz | None) -> None:
        self.state = state
        self.connz = connz
        self.jsz = jsz

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.state
        sid = state.server_id
        yield from flatten("gnatsd_varz", collect.varz(state), sid)
        yield from flatten("gnatsd_subsz", connz.subsz(state, connz.SubszQuery()), sid)
        yield from flatten("gnatsd_routez", collect.routez(state), sid)
        yield from self._connz(sid)
        _, health = collect.healthz(state, {})
        ok = health.status == "ok"
        gauge = GaugeMetricFamily(
            "gnatsd_healthz_status", "gnatsd_healthz_status", labels=["server_id"]
        )
        gauge.add_metric([sid], 0.0 if ok else 1.0)
        yield gauge
        gauge = GaugeMetricFamily(
            "gnatsd_healthz_status_value",
            "gnatsd_healthz_status_value",
            labels=["server_id", "value"],
        )
        gauge.add_metric([sid, health.status], 1.0 if ok else 0.0)
        yield gauge
        yield from self._jetstream(sid)
        yield from self._shards(sid)
        yield from self._rate_limits(sid)

    def _rate_limits(self, sid: str) -> Iterator[GaugeMetricFamily]:
        """shardbroker_rate_limit_*: what each account's and user's rate limit did, over
        every worker, labelled `limit` ("account:A", "user:b")."""
        figures = self.state.rate_limits
        if not figures:
            return
        for index, (field, help_text) in enumerate(RATE_LIMIT_GAUGES.items()):
            name = f"shardbroker_rate_limit_{field}"
            gauge = GaugeMetricFamily(name, help_text, labels=["server_id", "limit"])
            for key, values in sorted(figures.items()):
                value = values[index] / 1e9 if field == "throttled_seconds" else values[index]
                gauge.add_metric([sid, key], float(value))
            yield gauge

    def _connz(self, sid: str) -> Iterator[GaugeMetricFamily]:
        connz = self.connz
        if connz is None:
            return
        figures = {
            "num_connections": connz.num_connections,
            "total": connz.total,
            "offset": connz.offset,
            "limit": connz.limit,
        }
        for field in ("pending_bytes", "subscriptions", "in_bytes", "out_bytes", "in_msgs",
                      "out_msgs"):  # fmt: skip
            figures[field] = sum(getattr(c, field) for c in connz.connections)
        for field, value in figures.items():
            name = f"gnatsd_connz_{field}"
            gauge = GaugeMetricFamily(name, name, labels=["server_id"])
            gauge.add_metric([sid], float(value))
            yield gauge
        yield from self._accounts(sid, connz)

    @staticmethod
    def _accounts(sid: str, connz: Connz) -> Iterator[GaugeMetricFamily]:
        """shardbroker_account_*: each account's connections, subscriptions and traffic
        (the connections /connz lists, with their accounts)."""
        per_account: dict[str, list[int]] = {}
        for conn in connz.connections:
            sums = per_account.setdefault(conn.account or collect.GLOBAL_ACCOUNT, [0] * 6)
            sums[0] += 1
            for i, field in enumerate(_ACCOUNT_FIELDS[1:], start=1):
                sums[i] += getattr(conn, field)
        for i, field in enumerate(_ACCOUNT_FIELDS):
            name = f"shardbroker_account_{field}"
            gauge = GaugeMetricFamily(name, name, labels=["server_id", "account"])
            for account, sums in sorted(per_account.items()):
                gauge.add_metric([sid, account], float(sums[i]))
            yield gauge

    def _jetstream(self, sid: str) -> Iterator[GaugeMetricFamily]:
        state = self.state
        doc = self.jsz if self.jsz is not None else jsz.jsz(state)
        labels = ["server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader"]
        values = [sid, state.server_name, "", state.opts.jetstream_domain, "", "true"]
        figures = {
            "jetstream_server_jetstream_disabled": 1.0 if doc.disabled else 0.0,
            "jetstream_server_total_streams": doc.streams,
            "jetstream_server_total_consumers": doc.consumers,
            "jetstream_server_total_messages": doc.messages,
            "jetstream_server_total_message_bytes": doc.bytes,
            "jetstream_server_max_memory": state.js_max_memory,
            "jetstream_server_max_storage": state.js_max_storage,
        }
        for name, value in figures.items():
            gauge = GaugeMetricFamily(name, name, labels=labels)
            gauge.add_metric(values, float(value))
            yield gauge
        if doc.account_details:
            yield from _jetstream_details(doc.account_details, labels, values)

    def _shards(self, sid: str) -> Iterator[GaugeMetricFamily]:
        shards = self.state.shards
        labels = ["server_id", "shard", "role"]
        up = GaugeMetricFamily("shardbroker_shard_up", "1 when the shard is running and ready",
                               labels=labels)  # fmt: skip
        for shard in shards:
            up.add_metric([sid, str(shard.shard_id), shard.role], 1.0 if shard.up else 0.0)
        yield up
        now = time.monotonic_ns()
        beat = GaugeMetricFamily(
            "shardbroker_shard_heartbeat_age_seconds",
            "Seconds since the shard's loop last wrote its heartbeat",
            labels=labels,
        )
        for shard in shards:
            last = shard.counters.get("heartbeat_ns", 0)
            if last:
                beat.add_metric(
                    [sid, str(shard.shard_id), shard.role], max(0.0, (now - last) / 1e9)
                )
        yield beat
        for field, help_text in SHARD_GAUGES.items():
            name = f"shardbroker_shard_{field}"
            gauge = GaugeMetricFamily(name, help_text, labels=labels)
            for shard in shards:
                if shard.role == "worker":
                    gauge.add_metric(
                        [sid, str(shard.shard_id), shard.role],
                        float(shard.counters.get(field, 0)),
                    )
            yield gauge


# The exporter's per-account, per-stream and per-consumer gauges: name -> how to read it.
_ACCOUNT_GAUGES = {
    "max_memory": lambda a: a.reserved_memory if a.reserved_memory < 2**63 else -1,
    "max_storage": lambda a: a.reserved_storage if a.reserved_storage < 2**63 else -1,
    "storage_used": lambda a: a.storage,
    "memory_used": lambda a: a.memory,
}
_STREAM_GAUGES = {
    "total_messages": lambda s: s["state"]["messages"],
    "total_bytes": lambda s: s["state"]["bytes"],
    "first_seq": lambda s: s["state"]["first_seq"],
    "last_seq": lambda s: s["state"]["last_seq"],
    "consumer_count": lambda s: s["state"].get("consumer_count", 0),
    "subject_count": lambda s: s["state"].get("num_subjects", 0),
}
_CONSUMER_GAUGES = {
    "delivered_consumer_seq": lambda c: c["delivered"]["consumer_seq"],
    "delivered_stream_seq": lambda c: c["delivered"]["stream_seq"],
    "num_ack_pending": lambda c: c["num_ack_pending"],
    "num_redelivered": lambda c: c["num_redelivered"],
    "num_waiting": lambda c: c["num_waiting"],
    "num_pending": lambda c: c["num_pending"],
    "ack_floor_stream_seq": lambda c: c["ack_floor"]["stream_seq"],
    "ack_floor_consumer_seq": lambda c: c["ack_floor"]["consumer_seq"],
}


def _jetstream_details(
    accounts: list[JszAccount], server_labels: list[str], server_values: list[str]
) -> Iterator[GaugeMetricFamily]:
    """jetstream_account_*, jetstream_stream_* and jetstream_consumer_* with the
    exporter's labels (reference monitoring.md §11.6)."""
    account_labels = [*server_labels, "account", "account_name", "account_id"]
    stream_labels = [*account_labels, "stream_name", "stream_leader", "is_stream_leader",
                     "stream_raft_group"]  # fmt: skip
    consumer_labels = [*stream_labels, "consumer_name", "consumer_leader",
                       "is_consumer_leader", "consumer_desc"]  # fmt: skip
    leader = server_values[1]
    families = {
        **{f"jetstream_account_{k}": GaugeMetricFamily(
            f"jetstream_account_{k}", f"jetstream_account_{k}", labels=account_labels)
           for k in _ACCOUNT_GAUGES},
        **{f"jetstream_stream_{k}": GaugeMetricFamily(
            f"jetstream_stream_{k}", f"jetstream_stream_{k}", labels=stream_labels)
           for k in _STREAM_GAUGES},
        **{f"jetstream_consumer_{k}": GaugeMetricFamily(
            f"jetstream_consumer_{k}", f"jetstream_consumer_{k}", labels=consumer_labels)
           for k in _CONSUMER_GAUGES},
    }  # fmt: skip
    for account in accounts:
        a_values = [*server_values, account.name, account.name, account.id]
        for key, read in _ACCOUNT_GAUGES.items():
            families[f"jetstream_account_{key}"].add_metric(a_values, float(read(account)))
        for stream in account.stream_detail or []:
            s_values = [*a_values, stream["name"], leader, "true", ""]
            for key, read in _STREAM_GAUGES.items():
                families[f"jetstream_stream_{key}"].add_metric(s_values, float(read(stream)))
            for consumer in stream.get("consumer_detail", []):
                description = consumer.get("config", {}).get("description", "")
                c_values = [*s_values, consumer["name"], leader, "true", description]
                for key, read in _CONSUMER_GAUGES.items():
                    families[f"jetstream_consumer_{key}"].add_metric(
                        c_values, float(read(consumer))
                    )
    yield from families.values()


def render(state: BrokerState, connz: Connz | None = None, jsz: Jsz | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(state, connz, jsz))
    return generate_latest(registry)
