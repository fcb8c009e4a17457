"""The /dashboard page in a real browser (headless Chromium, tests/helpers/browser.py).

shardbroker runs with 2 workers, JetStream and the monitoring port; nats-py publishers
and subscribers on both workers keep messages flowing while the page is open, and a
stream holds a consumer with pending messages. The test reads the page's figures from the
DOM (each carries data-value) on two refreshes: both workers' rates are above zero each
time, the charts gained points, the top connections are the test's own with their rates,
the consumer's pending counts are the ones the test left. Every request the page made went
to the monitoring port. The screenshot it takes is docs/dashboard.png's source: with
SHARDBROKER_UPDATE_DOCS=1 (`make screenshots`) the load runs longer, so the charts show a
minute, and the picture is copied there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from tests.helpers import browser
from tests.helpers.broker import (
    HOST,
    REPO_ROOT,
    Broker,
    barrier,
    connect_on_shard,
    free_port,
    is_shardbroker_target,
    run_broker,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not is_shardbroker_target(), reason="the dashboard is shardbroker's own"),
]

UPDATE_DOCS = os.environ.get("SHARDBROKER_UPDATE_DOCS") == "1"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "dashboard.png"
# Seconds of load between the two readings: a few refreshes, or a minute of charts for the
# README's picture.
READINGS_APART = 60 if UPDATE_DOCS else 1
STREAM = "DASHBOARD"
CONSUMER = "pending-reader"
STORED = 30  # messages the stream holds
FETCHED = 5  # of them, delivered to the consumer and not acknowledged

# Every figure of the page that has a data-value, by "<element id>" or
# "<table id>/<row key=value>/<field>"; the status's refresh count, the charts' points.
READ_FIGURES = """(previous) => {
  const figures = {};
  for (const el of document.querySelectorAll("[data-value]")) {
    let key = el.id;
    if (!key) {
      const tr = el.closest("tr");
      const table = el.closest("table");
      const rowKey = tr ? Object.entries(tr.dataset).map(([k, v]) => `${k}=${v}`).join(",") : "";
      key = `${table ? table.id : ""}/${rowKey}/${el.dataset.field}`;
    }
    figures[key] = Number(el.dataset.value);
  }
  const charts = {};
  for (const canvas of document.querySelectorAll("canvas")) {
    charts[canvas.id] = Number(canvas.dataset.points);
  }
  const status = document.getElementById("status");
  return {
    figures, charts, updates: Number(status.dataset.updates), state: status.dataset.state,
    error: status.dataset.error || "",
    consumers: [...document.querySelectorAll("#js-consumers tbody tr")]
      .map((r) => r.dataset.consumer),
  };
}"""

# A reading is taken once the page shows the load: both workers' rates, the four test
# connections' rates (a publisher held up for a moment only delays it), the consumer's row;
# the second one READINGS_APART refreshes after the first.
TRAFFIC_SHOWN = """(previous) => {
  const value = (el) => (el && el.dataset.value !== undefined ? Number(el.dataset.value) : 0);
  const updates = Number(document.getElementById("status").dataset.updates);
  if (previous && updates < previous.updates + READINGS_APART) return false;
  for (const shard of [1, 2]) {
    for (const field of ["in_msgs_rate", "out_msgs_rate"]) {
      const row = document.querySelector(`#shards tr[data-shard="${shard}"]`);
      if (!(value(row && row.querySelector(`td[data-field="${field}"]`)) > 0)) return false;
    }
  }
  const moving = [...document.querySelectorAll("#top-conns tbody tr")].filter((tr) =>
    value(tr.querySelector('[data-field="in_msgs_rate"]')) +
    value(tr.querySelector('[data-field="out_msgs_rate"]')) > 0);
  return moving.length >= 4 && document.querySelector("#js-consumers tbody tr") !== null;
}""".replace("READINGS_APART", str(READINGS_APART))


@contextlib.asynccontextmanager
async def load(broker: Broker) -> AsyncIterator[dict[str, int]]:
    """Publishers and subscribers on both workers, publishing until the block ends (or
    a deadline); yields the client ids by role."""
    subs = [await connect_on_shard(broker, s, name=f"dash-sub{s}") for s in (1, 2)]
    pubs = [await connect_on_shard(broker, s, name=f"dash-pub{s}") for s in (1, 2)]
    received = [0, 0]

    for index, nc in enumerate(subs):

        async def count(msg: Any, index: int = index) -> None:
            received[index] += 1

        await nc.subscribe("dash.load.>", cb=count)
        await barrier(nc)
    stop = asyncio.Event()

    async def publish() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READINGS_APART + 60
        rounds = 0
        while not stop.is_set() and loop.time() < deadline:
            # A rate that swells and ebbs over half a minute, so the charts have a shape.
            batch = 10 + int(40 * (1 + math.sin(rounds / 50)))
            for shard, nc in enumerate(pubs, 1):
                for _ in range(batch):
                    await nc.publish(f"dash.load.{shard}", b"x" * 64)
                await nc.flush()
            rounds += 1
            # Pacing, not synchronisation: a steady load that leaves the two cores room
            # for the broker and the browser.
            await asyncio.sleep(0.05)

    task = asyncio.create_task(publish())
    try:
        yield {
            "sub1": subs[0].client_id, "sub2": subs[1].client_id,
            "pub1": pubs[0].client_id, "pub2": pubs[1].client_id,
        }  # fmt: skip
    finally:
        stop.set()
        await task
        for nc in subs + pubs:
            await nc.close()
    assert all(received), f"subscribers received {received}"


async def stream_with_pending(broker: Broker) -> None:
    """A stream of STORED messages and a pull consumer that was handed FETCHED of them and
    acknowledged none: pending STORED - FETCHED, ack pending FETCHED."""
    nc = await connect_on_shard(broker, 2, name="dash-js")
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["dash.js.>"])
        for i in range(STORED):
            await js.publish(f"dash.js.{i % 3}", f"event {i}".encode())
        sub = await js.pull_subscribe(
            "dash.js.>", durable=CONSUMER, config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
        )
        fetched = await sub.fetch(FETCHED, timeout=5)
        assert len(fetched) == FETCHED
    finally:
        await nc.close()


async def test_dashboard_shows_live_figures_in_chromium(tmp_path: Path) -> None:
    browser.require()
    mport = free_port()
    with run_broker(
        workers=2, tmp_dir=tmp_path, jetstream=True, extra_args=["-m", str(mport)]
    ) as broker:
        await stream_with_pending(broker)
        shot = tmp_path / "dashboard.png"
        async with load(broker) as cids:
            report = await browser.drive(
                {
                    "url": f"http://{HOST}:{mport}/dashboard",
                    "viewport": {"width": 1400, "height": 1000},
                    "timeoutMs": 20000,
                    "steps": [
                        {"waitFor": TRAFFIC_SHOWN, "collect": READ_FIGURES},
                        {
                            "waitFor": TRAFFIC_SHOWN,
                            "collect": READ_FIGURES,
                            "timeoutMs": (READINGS_APART + 20) * 1000,
                        },
                    ],
                    "screenshot": str(shot),
                    "fullPage": True,
                },
                tmp_path,
                seconds=READINGS_APART + 60,
            )
    first, second = report["samples"]
    for sample in (first, second):
        assert sample["state"] == "ok", sample["error"]
        figures = sample["figures"]
        for shard in (1, 2):
            row = f"shards/shard={shard}"
            # Each worker has a publisher and a subscriber that gets every message.
            assert figures[f"{row}/in_msgs_rate"] > 0, (shard, figures)
            assert figures[f"{row}/out_msgs_rate"] > 0, (shard, figures)
            assert figures[f"{row}/in_bytes_rate"] > 0, (shard, figures)
            assert figures[f"{row}/connections"] >= 2, (shard, figures)
            assert figures[f"{row}/up"] == 1
            assert figures[f"{row}/mem"] > 0
        assert figures["shards/shard=total/connections"] >= 4
        assert figures["total-in_msgs_rate"] > 0 and figures["total-out_msgs_rate"] > 0
        assert figures["total-mem"] > 0
        # The publishers are top connections by rate, the subscribers too.
        for role in ("pub1", "pub2"):
            assert figures[f"top-conns/cid={cids[role]}/in_msgs_rate"] > 0, (role, figures)
        for role in ("sub1", "sub2"):
            assert figures[f"top-conns/cid={cids[role]}/out_msgs_rate"] > 0, (role, figures)
        # What the test left in JetStream.
        consumer = f"js-consumers/consumer=$G/{STREAM}/{CONSUMER}"
        assert figures[f"{consumer}/num_pending"] == STORED - FETCHED, figures
        assert figures[f"{consumer}/num_ack_pending"] == FETCHED, figures
        assert figures[f"js-streams/stream=$G/{STREAM}/messages"] == STORED
        assert figures["total-js_pending"] == STORED - FETCHED
    # The figures moved: later refreshes, longer charts.
    assert second["updates"] >= first["updates"] + READINGS_APART
    for chart, points in second["charts"].items():
        assert points > first["charts"][chart], (chart, first["charts"], second["charts"])
    # Self-contained: every request went to the monitoring port, nothing was refused.
    origins = {urlsplit(url)[:2] for url in report["requests"]}
    assert origins == {("http", f"{HOST}:{mport}")}, origins
    assert not report["pageErrors"], report["pageErrors"]
    assert not report["console"], report["console"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if UPDATE_DOCS:
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
