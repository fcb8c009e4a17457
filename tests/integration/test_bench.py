"""`shardbroker bench`, the load-test runner (shardbroker/bench/): every mode against a
real server on small counts, run as the user runs it (`python -m shardbroker bench ...`).

Core modes run against the broker under test (shardbroker with two workers, or
nats-server with SHARDBROKER_TEST_TARGET=nats-server); the JetStream modes against a
nats-server started here with -js, and a few against the broker under test with -js
(fresh, so the runner must wait for its JetStream to answer). Each test uses its own
subject, so one server serves the whole module. Runs that wait for traffic
from another run (sub, reply) announce on stderr when they listen; the tests wait for
that line, never for time to pass.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.broker import (
    HOST,
    REPO_ROOT,
    Broker,
    is_shardbroker_target,
    nats_server_binary,
    run_broker,
    unique,
)
from tests.helpers.wait import check_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RUN_TIMEOUT = 90.0
SERVER_START_TIMEOUT = 10.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers ------------------------------------------------------------------------------


def bench_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "shardbroker", "bench", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bench_argv(*args),
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def bench_json(*args: str) -> dict[str, Any]:
    """Run with --json --no-progress; the run must succeed and print one JSON object."""
    done = run_bench(*args, "--json", "--no-progress")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["ok"] is True and result["errors"] == [], result
    return result


class Background:
    """A bench run in the background (sub, reply) that says on stderr when it listens."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            bench_argv(*args, "--json", "--no-progress"),
            cwd=REPO_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.stderr: list[str] = []

    def wait_ready(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # blocks until the line comes (or the run dies)
            self.stderr.append(line)
            if " ready on " in line:
                return
        out, _ = self.proc.communicate(timeout=RUN_TIMEOUT)
        pytest.fail(f"background bench ended before it was ready:\n{out}\n{''.join(self.stderr)}")

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=RUN_TIMEOUT)
        assert self.proc.returncode == 0, f"{out}\n{''.join(self.stderr)}{err}"
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=RUN_TIMEOUT)


def assert_latency(
    result: dict[str, Any], count: int | None = None, at_most: int | None = None
) -> None:
    """Percentiles in order; `count` samples exactly, or `at_most` (queue members: one
    that never gets a chunk's stamped first frame has no samples)."""
    lat = result["latency_us"]
    assert lat is not None, result
    assert lat["count"] > 0
    if count is not None:
        assert lat["count"] == count
    if at_most is not None:
        assert lat["count"] <= at_most
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat


def per_client(result: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [c for c in result["per_client"] if c["role"] == role]


# -- servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The broker under test (two workers), shared by this module's core-mode tests."""
    with run_broker(workers=2, tmp_dir=tmp_path_factory.mktemp("bench")) as b:
        yield b


@pytest.fixture(scope="module")
def js_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server with JetStream (file store in a temporary directory)."""
    base = tmp_path_factory.mktemp("js")
    store, ports = base / "store", base / "ports"
    store.mkdir()
    ports.mkdir()
    argv = [
        nats_server_binary(),
        "-a",
        HOST,
        "-p",
        "-1",
        "-js",
        "-sd",
        str(store),
        "--ports_file_dir",
        str(ports),
    ]
    with open(base / "nats-server.log", "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        ports_file = ports / f"nats-server_{proc.pid}.ports"

        def url() -> str:
            assert proc.poll() is None, (base / "nats-server.log").read_text()
            return str(json.loads(ports_file.read_text())["nats"][0])

        def ready() -> str | bool:
            try:
                return url()
            except (OSError, ValueError, KeyError, IndexError):
                return False

        yield check_for(SERVER_START_TIMEOUT, 0.02, ready)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- core modes -----------------------------------------------------------------------------


def test_bench_pub_counts(server: Broker) -> None:
    r = bench_json("pub", "-s", server.url, "--subject", unique(), "--pubs", "2", "--msgs", "2001")
    assert (r["mode"], r["sent"], r["received"]) == ("pub", 2001, 0)
    pubs = per_client(r, "pub")
    assert sorted(c["msgs"] for c in pubs) == [1000, 1001]
    assert r["pub"]["clients"] == 2 and r["pub"]["msgs"] == 2001
    assert r["msgs_per_s"] > 0 and r["bytes_per_s"] > 0 and r["elapsed_s"] > 0
    assert r["pub"]["min"] <= r["pub"]["avg"] <= r["pub"]["max"]
    assert r["latency_us"] is None


def test_bench_pubsub_counts_and_latency(server: Broker) -> None:
    r = bench_json(
        "pubsub",
        "-s",
        server.url,
        "--subject",
        unique(),
        "--pubs",
        "2",
        "--subs",
        "2",
        "--msgs",
        "2000",
    )
    assert (r["sent"], r["received"]) == (2000, 4000)
    assert [c["msgs"] for c in per_client(r, "sub")] == [2000, 2000]
    assert sum(c["msgs"] for c in per_client(r, "pub")) == 2000
    assert r["sub"]["bytes"] == 4000 * 128
    # Every message carried a send stamp (128 >= 8 bytes): one sample per delivery.
    assert_latency(r, count=4000)
    assert r["latency_kind"].startswith("End-to-end")


def test_bench_pubsub_procs_csv_plot(server: Broker, tmp_path: Path) -> None:
    csv_path, png_path = tmp_path / "run.csv", tmp_path / "run.png"
    r = bench_json(
        "pubsub",
        "-s",
        server.url,
        "--subject",
        unique(),
        "--pubs",
        "2",
        "--subs",
        "2",
        "--msgs",
        "2000",
        "--procs",
        "2",
        "--csv",
        str(csv_path),
        "--plot",
        str(png_path),
    )
    assert r["procs"] == 2
    assert {c["proc"] for c in r["per_client"]} == {0, 1}
    assert (r["sent"], r["received"]) == (2000, 4000)
    assert_latency(r, count=4000)
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [row["role"] for row in rows] == ["pub", "pub", "sub", "sub", "aggregate"]
    assert [int(row["msgs"]) for row in rows] == [1000, 1000, 2000, 2000, 6000]
    agg = rows[-1]
    assert float(agg["p50_us"]) <= float(agg["p99_us"]) <= float(agg["max_us"])
    assert png_path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("size", [0, 7])
def test_bench_pubsub_small_payloads_without_latency(server: Broker, size: int) -> None:
    r = bench_json(
        "pubsub", "-s", server.url, "--subject", unique(), "--msgs", "2000", "--size", str(size)
    )
    assert (r["sent"], r["received"]) == (2000, 2000)
    assert r["sub"]["bytes"] == 2000 * size
    assert r["latency_us"] is None  # no room for a send stamp


def test_bench_pubsub_duration_and_rate(server: Broker) -> None:
    r = bench_json(
        "pubsub",
        "-s",
        server.url,
        "--subject",
        unique(),
        "--duration",
        "0.5",
        "--rate",
        "4000",
        "--subs",
        "2",
    )
    sent = r["sent"]
    # Paced at 4,000/s for half a second (the first message goes at once).
    assert 1000 <= sent <= 2002, r
    assert [c["msgs"] for c in per_client(r, "sub")] == [sent, sent]
    assert_latency(r, count=2 * sent)


def test_bench_pubsub_text_report(server: Broker) -> None:
    done = run_bench(
        "pubsub", "-s", server.url, "--subject", unique(), "--msgs", "2000", "--subs", "2"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "NATS Pub/Sub stats:" in out and "msgs/sec" in out, out
    assert "2,000 sent, 4,000 received" in out
    assert " Pub stats: " in out and " Sub stats: " in out
    assert "min " in out and "stddev" in out  # two subscribers: the spread line
    assert "p50 " in out and "p99.9 " in out
    assert done.stderr == ""  # stderr is not a terminal: no progress bar


def test_bench_queue_exactly_once(server: Broker) -> None:
    r = bench_json(
        "queue",
        "-s",
        server.url,
        "--subject",
        unique(),
        "--pubs",
        "2",
        "--subs",
        "3",
        "--msgs",
        "2000",
        "--procs",
        "2",
    )
    assert (r["sent"], r["received"]) == (2000, 2000)
    members = per_client(r, "sub")
    assert len(members) == 3
    assert sum(c["msgs"] for c in members) == 2000
    assert_latency(r, at_most=2000)


def test_bench_request_reply_round_trips(server: Broker) -> None:
    r = bench_json(
        "request",
        "-s",
        server.url,
        "--subject",
        unique(),
        "--pubs",
        "2",
        "--subs",
        "2",
        "--msgs",
        "1000",
    )
    assert (r["sent"], r["received"]) == (1000, 1000)
    assert sorted(c["msgs"] for c in per_client(r, "req")) == [500, 500]
    assert sum(c["msgs"] for c in per_client(r, "rep")) == 1000  # queue group: once each
    assert_latency(r, count=1000)
    assert r["latency_kind"].startswith("Round-trip")


def test_bench_sub_counts_an_external_publisher(server: Broker) -> None:
    subject = unique()
    sub = Background("sub", "-s", server.url, "--subject", subject, "--subs", "2", "--msgs", "2000")
    try:
        sub.wait_ready()
        pub = bench_json("pub", "-s", server.url, "--subject", subject, "--msgs", "2500")
        assert pub["sent"] == 2500
        r = sub.result()
    finally:
        sub.kill()
    # Each subscriber stops at --msgs (UNSUB with a maximum), whatever else was sent.
    assert r["received"] == 4000 and r["ok"], r
    assert [c["msgs"] for c in per_client(r, "sub")] == [2000, 2000]
    assert_latency(r, count=4000)  # the publisher's stamps, same machine


def test_bench_reply_serves_an_external_requester(server: Broker) -> None:
    subject = unique()
    rep = Background(
        "reply", "-s", server.url, "--subject", subject, "--subs", "2", "--msgs", "1000"
    )
    try:
        rep.wait_ready()
        req = bench_json(
            "request",
            "-s",
            server.url,
            "--subject",
            subject,
            "--no-responders-started",
            "--pubs",
            "2",
            "--msgs",
            "1000",
        )
        assert (req["sent"], req["received"]) == (1000, 1000)
        assert per_client(req, "rep") == []
        assert_latency(req, count=1000)
        r = rep.result()
    finally:
        rep.kill()
    assert r["received"] == 1000 and r["ok"], r
    assert sum(c["msgs"] for c in per_client(r, "rep")) == 1000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bench_reply_stops_on_signal_with_a_report(server: Broker, sig: int) -> None:
    rep = Background("reply", "-s", server.url, "--subject", unique())
    try:
        rep.wait_ready()
        rep.proc.send_signal(sig)  # Ctrl-C / SIGTERM is how an open-ended reply run ends
        r = rep.result()
    finally:
        rep.kill()
    assert r["interrupted"] is True and r["ok"] is True
    assert r["received"] == 0


def test_bench_request_without_responders_fails_clearly(server: Broker) -> None:
    subject = unique()
    done = run_bench(
        "request",
        "-s",
        server.url,
        "--subject",
        subject,
        "--no-responders-started",
        "--msgs",
        "10",
        "--no-progress",
    )
    assert done.returncode == 1
    assert f"no responders on subject '{subject}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_pubsub_subjects_and_sizes(server: Broker) -> None:
    """--subjects and several --size values: consecutive messages differ in subject and
    size; every subscriber (on <subject>.*) gets each exactly once, bytes add up."""
    r = bench_json(
        "pubsub", "-s", server.url, "--subject", unique(), "--subjects", "100",
        "--size", "16,17,40", "--pubs", "2", "--subs", "3", "--procs", "2", "--msgs", "3000",
    )  # fmt: skip
    assert (r["sent"], r["received"]) == (3000, 9000)
    assert (r["subjects"], r["sizes"]) == (100, [16, 17, 40])
    # Each publisher cycles from its own offset: 1,500 messages, 500 of each size.
    assert r["pub"]["bytes"] == 3000 * (16 + 17 + 40) // 3
    assert [c["bytes"] for c in per_client(r, "sub")] == [3000 * 73 // 3] * 3
    assert {c["proc"] for c in per_client(r, "sub")} == {0}  # receivers apart from
    assert {c["proc"] for c in per_client(r, "pub")} == {1}  # the publishers
    assert_latency(r, count=9000)


def test_bench_pubsub_size_range_over_subjects(server: Broker) -> None:
    """--size 16-4096 --subjects 100: 13 sizes in a seeded order over 100 subjects (a
    cycle of 1,300 messages, every subject with every size); each frame is counted once
    with its payload bytes, the large ones included."""
    subject = unique()
    r = bench_json(
        "pubsub", "-s", server.url, "--subject", subject, "--subjects", "100",
        "--size", "16-4096", "--pubs", "2", "--subs", "2", "--procs", "2", "--msgs", "2600",
    )  # fmt: skip
    sizes = r["sizes"]
    assert sorted(sizes)[0] == 16 and sorted(sizes)[-1] == 4096 and len(set(sizes)) == 13
    assert (r["sent"], r["received"]) == (2600, 5200)
    # Two publishers, 1,300 messages each from its own offset: every size 200 times.
    assert r["pub"]["bytes"] == 200 * sum(sizes)
    assert [c["bytes"] for c in per_client(r, "sub")] == [200 * sum(sizes)] * 2
    assert_latency(r, count=5200)
    text = run_bench(
        "pub", "-s", server.url, "--subject", subject, "--size", "16-4096", "--msgs", "100"
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "13 payload sizes in turn, 16-4,096 B" in text.stdout


def test_bench_server_pid_reports_cpu_per_process(server: Broker) -> None:
    """--server-pid: the server's CPU time during the run, per process (shardbroker: the
    supervisor and each worker; nats-server: its one process), summing to the total."""
    # Enough messages for each worker's CPU time to pass the clock tick (10 ms) that
    # the kernel counts it in: at about 0.15 us a message, 20,000 did not.
    r = bench_json(
        "pubsub", "-s", server.url, "--subject", unique(), "--subjects", "100",
        "--msgs", "300000", "--procs", "2", "--spread", "2", "--server-pid", str(server.pid),
    )  # fmt: skip
    by_process = r["server_cpu_by_process"]
    if server.is_shardbroker:
        assert list(by_process) == ["supervisor", "worker 1", "worker 2"], by_process
        assert by_process["worker 1"] > 0 and by_process["worker 2"] > 0, by_process
    else:
        assert list(by_process) == ["nats-server"], by_process
    assert r["server_cpu_s"] == pytest.approx(sum(by_process.values()), abs=1e-3)
    text = run_bench(
        "pub", "-s", server.url, "--subject", unique(), "--msgs", "20000",
        "--server-pid", str(server.pid), "--no-progress",
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert " Server CPU: " in text.stdout and "s per million sent" in text.stdout
    if server.is_shardbroker:
        assert "  per process, s per million: supervisor " in text.stdout, text.stdout
    r = bench_json("pub", "-s", server.url, "--subject", unique(), "--msgs", "100")
    assert r["server_cpu_s"] is None and r["server_cpu_by_process"] is None


def test_bench_pubsub_many_subjects(server: Broker) -> None:
    r = bench_json(
        "pubsub", "-s", server.url, "--subject", unique(), "--subjects", "10000",
        "--size", "16", "--msgs", "25000", "--procs", "2",
    )  # fmt: skip
    assert (r["sent"], r["received"]) == (25000, 25000)
    assert_latency(r, count=25000)


def test_bench_queue_subjects_exactly_once(server: Broker) -> None:
    r = bench_json(
        "queue", "-s", server.url, "--subject", unique(), "--subjects", "100",
        "--pubs", "4", "--subs", "4", "--size", "32", "--msgs", "8000", "--procs", "2",
    )  # fmt: skip
    assert (r["sent"], r["received"]) == (8000, 8000)
    assert sum(c["msgs"] for c in per_client(r, "sub")) == 8000
    assert_latency(r, at_most=8000)


def test_bench_pub_subjects_text_report(server: Broker) -> None:
    subject = unique()
    done = run_bench(
        "pub", "-s", server.url, "--subject", subject, "--subjects", "100", "--size", "8,9",
        "--msgs", "1000",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"subjects {subject}.0 .. {subject}.99, 8/9 B payloads in turn" in done.stdout


@pytest.mark.skipif(not is_shardbroker_target(), reason="placement is shardbroker's")
@pytest.mark.parametrize("spread_mode", ["pubsub", "queue"])
def test_bench_spread_places_connections_on_workers(server: Broker, spread_mode: str) -> None:
    r = bench_json(
        spread_mode, "-s", server.url, "--subject", unique(), "--spread", "2",
        "--pubs", "2", "--subs", "3", "--msgs", "2000", "--procs", "2",
    )  # fmt: skip
    shards = {c["name"]: (c["shard"], c["target"]) for c in r["per_client"]}
    prefix = "sub" if spread_mode == "pubsub" else "member"
    assert shards == {
        f"{prefix}-1": (2, 2),
        f"{prefix}-2": (1, 1),
        f"{prefix}-3": (2, 2),
        "pub-1": (1, 1),
        "pub-2": (2, 2),
    }, shards
    assert not any(c["missed"] for c in r["per_client"])
    assert r["placement"] == f"{prefix}:2,1,2 pub:1,2"


def test_bench_spread_is_harmless_without_workers(server: Broker) -> None:
    """A server that names no worker in its client ids (nats-server) is taken as is."""
    r = bench_json("pubsub", "-s", server.url, "--subject", unique(), "--spread", "2",
                   "--msgs", "1000")  # fmt: skip
    assert r["received"] == 1000
    if not is_shardbroker_target():
        assert r["placement"] == "sub:0 pub:0"


def test_bench_request_warmup_is_untimed(server: Broker) -> None:
    r = bench_json(
        "request", "-s", server.url, "--subject", unique(), "--warmup", "50",
        "--msgs", "500", "--procs", "2", "--subjects", "10",
    )  # fmt: skip
    assert (r["sent"], r["received"], r["warmup"]) == (500, 500, 50)
    assert sum(c["msgs"] for c in per_client(r, "rep")) == 550  # the responders saw all
    assert_latency(r, count=500)


# -- JetStream modes --------------------------------------------------------------------------


@pytest.mark.parametrize("ack", ["sync", "async"])
def test_bench_js_pub(js_url: str, ack: str) -> None:
    stream = unique("S")
    r = bench_json(
        "js-pub",
        "-s",
        js_url,
        "--stream",
        stream,
        "--subject",
        unique(),
        "--ack",
        ack,
        "--pubs",
        "2",
        "--msgs",
        "1000",
        "--window",
        "64",
    )
    assert (r["sent"], r["received"]) == (1000, 1000)
    js = r["jetstream"]
    assert js["stream"] == stream and js["stream_msgs"] == 1000
    assert js["stream_created"] is True and js["stream_deleted"] is True
    assert_latency(r, count=1000)
    assert r["latency_kind"].startswith("Ack latency")


@pytest.mark.parametrize("consumer", ["push", "pull"])
def test_bench_js_consume(js_url: str, consumer: str) -> None:
    r = bench_json(
        "js-consume",
        "-s",
        js_url,
        "--stream",
        unique("S"),
        "--subject",
        unique(),
        "--consumer",
        consumer,
        "--subs",
        "2",
        "--msgs",
        "2000",
        "--batch",
        "50",
        "--storage",
        "memory",
    )
    assert r["received"] == 2000
    assert sum(c["msgs"] for c in per_client(r, f"js{consumer}")) == 2000
    c = r["jetstream"]["consumer"]
    assert c["type"] == consumer and c["num_pending"] == 0 and c["num_redelivered"] == 0
    assert r["jetstream"]["stream_deleted"] is True


def test_bench_js_pub_warmup_and_subjects(js_url: str) -> None:
    """Warm-up publishes are stored and acked but not timed; with --subjects the stream
    captures <subject>.* and publishes cycle over the subjects."""
    r = bench_json(
        "js-pub", "-s", js_url, "--stream", unique("S"), "--subject", unique(),
        "--subjects", "10", "--ack", "sync", "--warmup", "20", "--pubs", "2", "--msgs", "200",
    )  # fmt: skip
    assert (r["sent"], r["received"], r["warmup"]) == (200, 200, 40)
    js = r["jetstream"]
    assert js["stream_msgs"] == js["stream_last_seq"] == js["acked"] == js["published"] == 240
    assert js["bad_acks"] == js["surplus_acks"] == 0
    assert_latency(r, count=200)


def test_bench_js_consume_pull_checks_every_message(js_url: str) -> None:
    r = bench_json(
        "js-consume", "-s", js_url, "--stream", unique("S"), "--subject", unique(),
        "--consumer", "pull", "--batch", "64", "--msgs", "1000", "--spread", "2",
    )  # fmt: skip
    c = r["jetstream"]["consume"]
    assert (c["expected"], c["received"], c["distinct"]) == (1000, 1000, 1000)
    assert c["duplicates"] == c["missing"] == c["redelivered"] == c["no_reply"] == 0
    assert c["requests"] == 16  # 1000 / 64, never more than the share
    info = r["jetstream"]["consumer"]
    assert info["delivered_seq"] == info["ack_floor_seq"] == 1000
    assert info["num_ack_pending"] == info["num_pending"] == 0
    assert info["settle_s"] is not None
    assert r["jetstream"]["fill"]["msgs"] == 1000
    assert r["placement"] == "prefill:0 consumer:0"  # nats-server: no workers


@pytest.mark.parametrize("policy", ["none", "explicit"])
def test_bench_js_consume_push_ack_policy(js_url: str, policy: str) -> None:
    r = bench_json(
        "js-consume", "-s", js_url, "--stream", unique("S"), "--subject", unique(),
        "--consumer", "push", "--ack-policy", policy, "--msgs", "2000",
    )  # fmt: skip
    c = r["jetstream"]["consume"]
    assert (c["received"], c["distinct"], c["out_of_order"]) == (2000, 2000, 0)
    info = r["jetstream"]["consumer"]
    assert info["ack_policy"] == policy and info["settle_s"] is not None
    assert info["ack_floor_seq"] == 2000 and info["num_ack_pending"] == 0
    assert c["first_delivery_s"] is not None and c["first_delivery_s"] >= 0


@pytest.mark.parametrize("consumer", ["push", "pull"])
def test_bench_js_consume_broker_under_test(tmp_path: Path, consumer: str) -> None:
    """A broker that has just started: the runner waits until its JetStream answers."""
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True) as b:
        r = bench_json(
            "js-consume", "-s", b.url, "--stream", unique("S"), "--subject", unique(),
            "--consumer", consumer, "--msgs", "500", "--spread", "2",
        )  # fmt: skip
    c = r["jetstream"]["consume"]
    assert (c["received"], c["distinct"], c["duplicates"]) == (500, 500, 0)
    assert r["jetstream"]["consumer"]["settle_s"] is not None
    if is_shardbroker_target():
        assert r["placement"] == "prefill:1 consumer:2"


def test_bench_js_consume_existing_stream(js_url: str) -> None:
    stream, subject = unique("S"), unique()
    filled = bench_json(
        "js-pub", "-s", js_url, "--stream", stream, "--subject", subject, "--msgs", "1000", "--keep"
    )
    assert filled["jetstream"]["stream_deleted"] is False
    again = run_bench(
        "js-pub", "-s", js_url, "--stream", stream, "--subject", subject, "--msgs", "10"
    )
    assert again.returncode == 1
    assert f"stream '{stream}' already exists" in again.stderr and "--no-create" in again.stderr
    # The last 600 of the 1,000 messages, from the stream the first run kept.
    r = bench_json(
        "js-consume",
        "-s",
        js_url,
        "--stream",
        stream,
        "--no-create",
        "--consumer",
        "pull",
        "--msgs",
        "600",
    )
    assert r["received"] == 600
    js = r["jetstream"]
    assert js["stream_msgs"] == 1000 and not js["stream_created"] and not js["stream_deleted"]
    more = run_bench(
        "js-consume", "-s", js_url, "--stream", stream, "--no-create", "--msgs", "5000"
    )
    assert more.returncode == 1
    assert "holds 1000 messages, fewer than --msgs 5000" in more.stderr


def test_bench_js_mode_without_jetstream(server: Broker) -> None:
    done = run_bench("js-pub", "-s", server.url, "--msgs", "10")
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "does not have JetStream enabled; mode js-pub needs it (nats-server: start it with -js)"
    ), done.stderr


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["pub", "--pubs", "0"], "--pubs must be at least 1 for mode pub (got 0)", 2),
        (["pubsub", "--pubs", "0"], "--pubs must be at least 1 for mode pubsub (got 0)", 2),
        (["js-pub", "--pubs", "0"], "--pubs must be at least 1 for mode js-pub (got 0)", 2),
        (["sub", "--subs", "0"], "--subs must be at least 1 for mode sub (got 0)", 2),
        (["pubsub", "--subs", "0"], "--subs must be at least 1 for mode pubsub (got 0)", 2),
        (["queue", "--subs", "0"], "--subs must be at least 1 for mode queue (got 0)", 2),
        (["pub", "--msgs", "0"], "--msgs must be at least 1 (got 0)", 2),
        (["pub", "--size", "-1"], "--size must be 0 or more bytes (got -1)", 2),
        (["pub", "--duration", "0"], "--duration must be more than 0 seconds (got 0)", 2),
        (["pub", "--rate", "-5"], "--rate must be more than 0 messages per second", 2),
        (["pub", "--msgs", "10", "--duration", "1"], "use either --msgs or --duration", 2),
        (["pub", "--subs", "2"], "--subs does not apply to mode pub", 2),
        (["pub", "--subject", "a.*"], "is not a valid subject to publish to", 2),
        (["pub", "--procs", "0"], "--procs must be at least 1 (got 0)", 2),
        (["js-pub", "--ack", "maybe"], "--ack takes sync or async, not 'maybe'", 2),
        (["nonsense"], "unknown mode 'nonsense'; choose one of: pub, sub, pubsub", 2),
        (["request", "--size", "16,17"], "several --size values apply to modes", 2),
        (["pub", "--size", "4096-16"], "a range needs 0 <= MIN < MAX", 2),
        (["pub", "--server-pid", "-3"], "--server-pid must be a process id (got -3)", 2),
        (["pub", "--server-pid", "999999999"], "--server-pid 999999999: ", 2),
        (["pub", "--warmup", "10"], "--warmup applies to modes request, js-pub, not pub", 2),
        (["js-consume", "--ack-policy", "none"], "--ack-policy none applies to push", 2),
        (["pub", "--subjects", "-1"], "--subjects must be 0 (one subject) or more", 2),
        (["pub", "--spread", "-2"], "--spread must be 0 (off) or a number of workers", 2),
        (["pub", "-s", "tls://127.0.0.1:4222"], "only nats:// and ws:// are supported", 2),
        (
            ["pub", "-s", "nats://127.0.0.1:1"],
            "cannot connect to nats://127.0.0.1:1: Connection refused",
            1,
        ),
    ],
)
def test_bench_bad_arguments(args: list[str], message: str, status: int) -> None:
    done = run_bench(*args, "--no-progress")
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert lines[0].startswith("shardbroker bench: ") and message in lines[0], lines[0]
    assert done.stdout == ""


def test_bench_plot_without_matplotlib(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(_env(), PYTHONPATH=str(shadow.parent))
    done = subprocess.run(
        bench_argv("pub", "--plot", str(tmp_path / "x.png"), "--no-progress"),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "shardbroker bench: --plot needs matplotlib, which is not installed "
        "(pip install 'shardbroker[plot]')"
    ]


def test_bench_size_over_max_payload(server: Broker) -> None:
    done = run_bench("pub", "-s", server.url, "--size", str(2 * 1024 * 1024), "--msgs", "10")
    assert done.returncode == 2
    assert "is larger than the server's max_payload (1048576 bytes)" in done.stderr
