"""protocol/events.py: header-driven latency sampling, and the event JSON."""

from __future__ import annotations

import pytest

from shardbroker.protocol.events import (
    EventClient,
    ServiceLatency,
    canonical_key,
    encode,
    sampled_trace_headers,
)


def block(*lines: str) -> bytes:
    return ("NATS/1.0\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["traceparent: 00-ab-cd-01", "tracestate: k=v"],
         {"Traceparent": ["00-ab-cd-01"], "Tracestate": ["k=v"]}),
        (["traceparent: 00-ab-cd-00"], None),
        (["X-B3-Sampled: 1", "X-B3-TraceId: ab"], {"X-B3-Sampled": ["1"], "X-B3-Traceid": ["ab"]}),
        (["X-B3-Sampled: 0", "X-B3-TraceId: ab"], None),
        (["X-B3-TraceId: ab"], {"X-B3-Traceid": ["ab"]}),
        (["b3: ab-cd-1-ef"], {"B3": ["ab-cd-1-ef"]}),
        (["b3: ab-cd-0"], None),
        (["b3: 0"], None),
        (["uber-trace-id: a:b:c:1"], {"Uber-Trace-Id": ["a:b:c:1"]}),
        (["uber-trace-id: a:b:c:2"], None),
        (["Other: x"], None),
        ([], None),
    ],
)  # fmt: skip
def test_sampled_trace_headers(lines: list[str], expected: object) -> None:
    assert sampled_trace_headers(block(*lines)) == expected


def test_canonical_key_is_gos() -> None:
    assert canonical_key("x-b3-traceid") == "X-B3-Traceid"
    assert canonical_key("TRACEPARENT") == "Traceparent"


def test_latency_metric_keeps_zero_durations_and_its_type() -> None:
    metric = ServiceLatency(
        type="io.nats.server.metric.v1.service_latency", id="i", timestamp="t", status=503,
        requestor=EventClient(acc="B"), start="s", service=0, system=0, total=0,
    )  # fmt: skip
    assert encode(metric) == (
        b'{"type":"io.nats.server.metric.v1.service_latency","id":"i","timestamp":"t",'
        b'"status":503,"requestor":{"acc":"B"},"start":"s","service":0,"system":0,"total":0}'
    )
