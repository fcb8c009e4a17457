"""`serve -c FILE`: the file sets options, flags win over it, and a bad file starts
nothing (checked against nats-server for what both servers share)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.broker import is_shardbroker_target, raw_connect, run_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
shardbroker_only = pytest.mark.skipif(
    not is_shardbroker_target(), reason="shardbroker's own command-line behaviour"
)


def test_config_file_sets_options_and_flags_win(tmp_path: Path) -> None:
    conf = tmp_path / "server.conf"
    conf.write_text(
        "# a nats-server config file\n"
        "server_name: fromfile\n"
        "max_payload: 64KB\n"
        "max_pending: 32MB\n"
        'ping_interval: "2m"\n'
        "port: 1\n"  # the harness passes -p -1, which must win over this
    )
    with (
        run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf))) as broker,
        raw_connect(broker) as client,
    ):
        info = client.info
        assert info["server_name"] == "fromfile"
        assert info["max_payload"] == 64 * 1024
        assert info["port"] == broker.port != 1
    with (
        run_broker(
            workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf), "-n", "fromflag")
        ) as broker,
        raw_connect(broker) as client,
    ):
        assert client.info["server_name"] == "fromflag"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shardbroker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@shardbroker_only
def test_config_file_check_config_and_t_flag(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text("port: 4999\nmax_payload: 1MB\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 4999\n\nmax_paylaod: 1MB\n")
    ok = run_cli("check-config", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "is valid" in ok.stdout
    failed = run_cli("check-config", str(bad))
    assert failed.returncode == 1
    assert f'{bad}:3:1: unknown field "max_paylaod"' in failed.stderr
    assert "Traceback" not in failed.stderr
    tested = run_cli("serve", "-c", str(good), "-t")
    assert tested.returncode == 0 and "is valid" in tested.stdout


@shardbroker_only
@pytest.mark.parametrize(
    "text",
    ["websocket { port: 8080 }\n", "max_payload: 2MB\nmax_pending: 1MB\n", "port: x\n"],
    ids=["unsupported-feature", "cross-field", "wrong-type"],
)
def test_config_file_bad_file_starts_nothing(tmp_path: Path, text: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    result = run_cli("serve", "-a", "127.0.0.1", "-p", "-1", "-c", str(conf))
    assert result.returncode == 3
    assert "Starting shardbroker" not in result.stderr
    assert "Traceback" not in result.stderr
    assert str(conf) in result.stderr
