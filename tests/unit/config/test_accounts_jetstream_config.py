"""An account's `jetstream` key (nats-server parseJetStreamForAccount): enabled or
disabled, or a map of limits with nats-server's keys, aliases and texts; and the checks
made when JetStream is enabled for the accounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config.merge import load
from shardbroker.config.options import AccountJetStream, Options, OptionsError, validate
from shardbroker.config.parse import ConfigError


def parse(tmp_path: Path, text: str) -> Options:
    conf = tmp_path / "a.conf"
    conf.write_text(text)
    return validate(Options(**load(conf)))


def jetstream_of(tmp_path: Path, value: str) -> AccountJetStream | None:
    opts = parse(tmp_path, f"accounts {{\n  A: {{ jetstream: {value} }}\n}}\n")
    return opts.accounts[0].jetstream


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        ("enabled", True), ("ENABLE", True), ("true", True), ("{}", True),
        ("disabled", False), ("Disable", False), ("false", False),
    ],
)  # fmt: skip
def test_accounts_jetstream_switches(tmp_path: Path, value: str, enabled: bool) -> None:
    got = jetstream_of(tmp_path, value)
    assert got == (AccountJetStream() if enabled else None)


def test_accounts_jetstream_absent_is_not_enabled(tmp_path: Path) -> None:
    opts = parse(tmp_path, "accounts { A: { users: [{user: a, password: p}] } }\n")
    assert opts.accounts[0].jetstream is None


def test_accounts_jetstream_limits_with_aliases_and_sizes(tmp_path: Path) -> None:
    got = jetstream_of(
        tmp_path,
        "{ max_mem: 1MB, max_file: 2G, MAX_STREAMS: 3, consumers: 4, max_ack_pending: 5,"
        " mem_max_stream_bytes: 1KiB, store_max_stream_bytes: 6, max_bytes: true,"
        " cluster_traffic: owner }",
    )
    assert got == AccountJetStream(
        max_memory=1 << 20,
        max_store=2_000_000_000,
        max_streams=3,
        max_consumers=4,
        max_ack_pending=5,
        memory_max_stream_bytes=1024,
        store_max_stream_bytes=6,
        max_bytes_required=True,
    )
    assert jetstream_of(tmp_path, "{ memory: 7, disk: 8, streams: -1 }") == AccountJetStream(
        max_memory=7, max_store=8
    )
    assert jetstream_of(tmp_path, "{ max_memory: 7, max_store: 8 }") == AccountJetStream(
        max_memory=7, max_store=8
    )
    got = jetstream_of(tmp_path, "{ max_disk: 9, disk_max_stream_bytes: 10, store: 11 }")
    assert got == AccountJetStream(max_store=11, store_max_stream_bytes=10)
    got = jetstream_of(tmp_path, "{ max_bytes_required: true, max_stream_bytes: false }")
    assert got == AccountJetStream(max_bytes_required=False)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", "Expected 'enabled' or 'disabled' for string value, got 'maybe'"),
        ("5", "Expected map, bool or string to define JetStream, got int64"),
        ('["x"]', r"Expected map, bool or string to define JetStream, got \[\]interface \{\}"),
        ('{ max_mem: "1GB" }', 'Expected a parseable size for "max_mem", got 1GB'),
        ("{ max_streams: 1.5 }", 'Expected a parseable size for "max_streams", got 1.5'),
        ("{ Max_Consumers: true }", 'Expected a parseable size for "Max_Consumers", got true'),
        ("{ max_bytes_required: 1 }", 'Expected a parseable bool for "max_bytes_required", got 1'),
        ("{ bogus: 1 }", 'unknown field "bogus"'),
        ("{ cluster_traffic: bogus }",
         "Expected 'system' or 'owner' string value for \"cluster_traffic\", got bogus"),
    ],
)  # fmt: skip
def test_accounts_jetstream_errors(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        jetstream_of(tmp_path, value)
    assert str(caught.value).startswith(f"{tmp_path / 'a.conf'}:2:")


def test_accounts_jetstream_not_in_the_system_account(tmp_path: Path) -> None:
    text = "accounts {\n  A: { jetstream: enabled }\n  S: { jetstream: enabled }\n}\n"
    with pytest.raises(OptionsError, match="Not allowed to enable JetStream on the system"):
        parse(tmp_path, "jetstream: {}\n" + text + "system_account: S\n")
    with pytest.raises(OptionsError, match="Not allowed to enable JetStream on the system"):
        parse(tmp_path, "jetstream: {}\naccounts { $SYS: { jetstream: enabled } }\n")
    # Without JetStream in the server nothing is enabled, and nothing is refused.
    parse(tmp_path, text + "system_account: S\n")


def test_accounts_jetstream_limits_must_fit_the_servers(tmp_path: Path) -> None:
    accounts = (
        "accounts {\n  A: { jetstream: { max_mem: 600KB, max_file: 1MB } }\n"
        "  B: { jetstream: { max_mem: 600KB } }\n  C: { jetstream: enabled }\n}\n"
    )
    with pytest.raises(OptionsError, match=r"insufficient memory resources available \(10028\)"):
        parse(tmp_path, "jetstream: { max_mem: 1MB }\n" + accounts)
    with pytest.raises(OptionsError, match=r"insufficient storage resources available \(10047\)"):
        parse(tmp_path, "jetstream: { max_mem: 2MB, max_file: 999KB }\n" + accounts)
    opts = parse(tmp_path, "jetstream: { max_mem: 2MB, max_file: 1MB }\n" + accounts)
    assert [a.jetstream is not None for a in opts.accounts] == [True, True, True]
