"""Config file keys to Options fields, durations, and defaults < file < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config.merge import load, merge, options_from_config
from shardbroker.config.parse import ConfigError, parse_with_positions
from shardbroker.config.value import parse_duration


def fields(text: str) -> dict[str, object]:
    values, positions = parse_with_positions(text, "test.conf")
    return options_from_config(values, positions, "test.conf")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2m", 120.0), ("30s", 30.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5h", 5400.0),
     ("100us", 1e-4), ("0", 0.0), ("1m0.5s", 60.5)],
)  # fmt: skip
def test_config_merge_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "2x", "m", "1h 2m", "1.2.3s"])
def test_config_merge_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_config_merge_every_supported_key() -> None:
    assert fields(
        """
        host: 127.0.0.1
        port: 4333
        server_name: s1
        pid_file: /tmp/x.pid
        ports_file_dir: /tmp
        log_file: /tmp/x.log
        debug: true
        trace: false
        logtime: false
        max_payload: 512KB
        max_pending: 32MB
        max_control_line: 2KB
        max_connections: 100
        max_subscriptions: 10
        ping_interval: "1m"
        ping_max: 3
        write_deadline: "2s"
        """
    ) == {
        "host": "127.0.0.1", "port": 4333, "server_name": "s1", "pid_file": "/tmp/x.pid",
        "ports_file_dir": "/tmp", "log_file": "/tmp/x.log", "debug": True, "trace": False,
        "logtime": False, "max_payload": 512 * 1024, "max_pending": 32 * 1024 * 1024,
        "max_control_line": 2048, "max_connections": 100, "max_subscriptions": 10,
        "ping_interval": 60.0, "ping_max": 3, "write_deadline": 2.0,
    }  # fmt: skip


def test_config_merge_aliases_listen_and_bare_seconds() -> None:
    assert fields("net: 10.0.0.1\nmax_conn: 5\nmax_subs: 2\nping_interval: 30") == {
        "host": "10.0.0.1",
        "max_connections": 5,
        "max_subscriptions": 2,
        "ping_interval": 30.0,
    }
    assert fields("listen: 127.0.0.1:4555") == {"host": "127.0.0.1", "port": 4555}
    assert fields("listen: 4556") == {"port": 4556}
    # nats-server stores max_connections 0 from a file as -1: no client gets in.
    assert fields("max_connections: 0") == {"max_connections": -1}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("port: 1\nfoo: 2\n", 2, 'unknown field "foo"'),
        ("port: 1\n\ngateway: {}\n", 3, "does not support yet"),
        ("cluster {}\n", 1, "does not support yet"),
        ("jetstream {\n  cipher: chacha\n}\n", 2, "not supported by shardbroker yet"),
        ("jetstream {\n  bogus: 1\n}\n", 2, 'unknown field "bogus"'),
        ("jetstream: maybe\n", 1, "expected enabled, disabled or a map"),
        ("port: x\n", 1, "port: expected a number"),
        ("debug: 3\n", 1, "debug: expected true or false"),
        ('ping_interval: "2q"\n', 1, "invalid duration"),
        ("listen: nowhere\n", 1, "expected host:port"),
    ],
)
def test_config_merge_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        fields(text)
    assert exc.value.line == line
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"test.conf:{line}:")


def test_config_merge_jetstream_block() -> None:
    text = (
        'jetstream {\n  store_dir: "/data/sb"\n  max_mem: 1G\n  max_file_store: 10GB\n'
        '  domain: hub\n  sync_interval: "30s"\n}\n'
    )
    assert fields(text) == {
        "jetstream": True,
        "store_dir": "/data/sb",
        "max_memory_store": 1000**3,  # nats: G is decimal, GB binary
        "max_file_store": 10 * 1024**3,
        "jetstream_domain": "hub",
        "sync_interval": 30.0,
    }
    assert fields("jetstream: enabled\nstore_dir: /x") == {"jetstream": True, "store_dir": "/x"}
    assert fields("jetstream: false") == {"jetstream": False}
    assert fields("jetstream { sync_interval: always }") == {
        "jetstream": True,
        "sync_always": True,
    }


def test_config_merge_flags_win_over_the_file_and_the_file_over_defaults() -> None:
    assert merge({"port": 4222, "host": "0.0.0.0"}, {"port": 1, "host": "h"}, {"port": 2}) == {
        "port": 2,
        "host": "h",
    }


def test_config_merge_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        load(tmp_path / "missing.conf")


def test_config_merge_nkey_users() -> None:
    public = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"
    auth = fields(f"authorization {{ users: [ {{nkey: {public}}}, {{user: a, password: b}} ] }}")[
        "authorization"
    ]
    assert [(u.user, u.nkey) for u in auth.users] == [("", public), ("a", "")]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as exc:
        fields("authorization {\n  users: [\n    {nkey: UNOTAKEY}\n  ]\n}\n")
    assert exc.value.line == 3
    assert "not a valid user public NKEY" in str(exc.value)


def test_config_merge_operations_keys() -> None:
    assert fields(
        'lame_duck_duration: "1m"\nlame_duck_grace_period: "5s"\n'
        'worker_heartbeat_timeout: "3s"\nrebalance: true\nrebalance_interval: 10\n'
    ) == {
        "lame_duck_duration": 60.0,
        "lame_duck_grace_period": 5.0,
        "worker_heartbeat_timeout": 3.0,
        "rebalance": True,
        "rebalance_interval": 10.0,
    }
    # nats-server takes the lame duck durations only as strings.
    with pytest.raises(ConfigError, match="expected a duration string"):
        fields("lame_duck_duration: 60\n")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lame_duck_duration": 5.0}, "invalid lame_duck_duration of 5s, minimum is 30 seconds"),
        ({"lame_duck_grace_period": -1.0}, "invalid lame_duck_grace_period, needs to be positive"),
        (
            {"lame_duck_duration": 40.0, "lame_duck_grace_period": 50.0},
            "lame duck grace period (50s) should be strictly lower than lame duck duration (40s)",
        ),
        (
            # Go's durations: an hour is 1h0m0s, not 60m0s.
            {"lame_duck_duration": 3600.0, "lame_duck_grace_period": 5400.0},
            "lame duck grace period (1h30m0s) should be strictly lower than lame duck duration "
            "(1h0m0s)",
        ),
        ({"worker_heartbeat_timeout": 0.5}, "at least 1s"),
        ({"rebalance_interval": 0.0}, "rebalance_interval must be positive"),
    ],
)
def test_config_merge_operations_validation(values: dict[str, float], message: str) -> None:
    from shardbroker.config.options import Options, OptionsError, validate

    with pytest.raises(OptionsError) as exc:
        validate(Options(**values))  # type: ignore[arg-type]
    assert message in str(exc.value)


# A file value of each simple type, and the field value it gives.
_SAMPLES = {int: ("7", 7), str: ('"x"', "x"), bool: ("true", True), float: ('"3s"', 3.0)}


def test_config_merge_every_declared_key_sets_its_field() -> None:
    """The keys come from the Options declarations: each one, alias or block key,
    reaches its field (struct fields: their blocks have tests of their own)."""
    from shardbroker.config.merge import KEYS
    from shardbroker.config.options import DECLARATIONS

    checked = 0
    for decl in DECLARATIONS:
        if decl.type not in _SAMPLES:
            # A block (its tests are its own), or a value form of its own (server_tags).
            assert all(
                KEYS[key].struct is not None or KEYS[key].convert is not None
                for key in decl.setting.keys
            ), decl.name
            continue
        text, expected = _SAMPLES[decl.type]
        for key in decl.setting.keys:
            block, _, name = key.rpartition(".")
            line = f"{name}: {text}"
            got = fields(f"{block} {{ {line} }}" if block else line)
            assert got[decl.name] == expected, (key, got)
            checked += 1
    assert checked > 30
