"""The `accounts {}` block: what it parses into, and the checks across accounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config.accounts import (
    export_for,
    is_subset_match,
    local_subject,
    subjects_collide,
)
from shardbroker.config.merge import load
from shardbroker.config.options import (
    Account,
    AccountLimits,
    Export,
    Import,
    Options,
    OptionsError,
    ServiceLatency,
    account_cells,
    all_users,
    validate,
)
from shardbroker.config.parse import ConfigError


def parse(tmp_path: Path, text: str) -> Options:
    conf = tmp_path / "a.conf"
    conf.write_text(text)
    return validate(Options(**load(conf)))


def test_accounts_block_parses_users_exports_imports_and_limits(tmp_path: Path) -> None:
    opts = parse(
        tmp_path,
        """
        accounts {
          A: {
            users: [{user: a, password: p}]
            exports: [
              {stream: "events.>"}
              {service: "svc.*", response_type: chunked, threshold: "5s", accounts: [B]}
              {service: "lat", latency: {sampling: "50%", subject: "lat.metrics"}}
              {service: "acc.*.req", account_token_position: 2}
            ]
          }
          B: {
            users: [{user: b, password: p, permissions: {publish: "x"}}]
            default_permissions: {subscribe: "y"}
            imports: [
              {stream: {account: A, subject: "events.>"}, prefix: from_a}
              {stream: {account: A, subject: "events.x"}, to: "x"}
            ]
          }
          C: {}
        }
        system_account: C
        """,
    )
    a, b, c = opts.accounts
    assert a.exports == (
        Export(service=False, subject="events.>"),
        Export(
            service=True,
            subject="svc.*",
            response_type="chunked",
            response_threshold=5.0,
            accounts=("B",),
        ),
        Export(
            service=True, subject="lat", latency=ServiceLatency(subject="lat.metrics", sampling=50)
        ),
        Export(service=True, subject="acc.*.req", account_token_position=2),
    )
    assert b.imports[0] == Import(service=False, account="A", subject="events.>", prefix="from_a")
    assert local_subject(b.imports[0]) == "from_a.events.>"
    assert local_subject(b.imports[1]) == "x"
    assert c == Account(name="C")
    assert opts.system_account == "C"
    users = {entry.name: entry for entry in all_users(opts)}
    assert users["a"].account == "A" and users["a"].permissions is None
    assert users["b"].permissions is not None and users["b"].permissions.publish is not None


def test_accounts_limits(tmp_path: Path) -> None:
    opts = parse(
        tmp_path, "accounts { A: { limits: {max_conn: 3, max_subs: 4, max_payload: 1KB} } }\n"
    )
    limits = opts.accounts[0].limits
    assert limits == AccountLimits(max_connections=3, max_subscriptions=4, max_payload=1024)
    assert account_cells(opts) == {b"A": (0, 3)}
    with pytest.raises(ConfigError, match="leaf nodes are not supported yet"):
        parse(tmp_path, "accounts { A: { limits: {max_leafnodes: 2} } }\n")


def test_accounts_old_list_form(tmp_path: Path) -> None:
    opts = parse(tmp_path, "accounts: [A, B]\n")
    assert [a.name for a in opts.accounts] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('accounts { A: { exports: [{stream: "a.>", service: "b"}] } }', "but already saw a"),
        ("accounts { A: { exports: [{accounts: [B]}] } }", "Expected a stream or service export"),
        ('accounts { A: { exports: [{stream: "a", latency: lat}] } }', "latency directive"),
        ("accounts { A: { exports: [{service: a, latency: {sampling: x1, subject: l}}] } }",
         'Failed to parse latency sample "x1"'),
        ("accounts { A: { bogus: 1 } }", 'unknown field "bogus"'),
        ("accounts { A: { msg_trace: x } }", "not supported by shardbroker yet"),
        ('accounts { A: { exports: [{service: "a.*", account_token_position: 1}] } }',
         "invalid subject"),
    ],
)  # fmt: skip
def test_accounts_block_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(tmp_path, text + "\n")


def test_accounts_names_must_be_unique_and_the_system_account_defined(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="account missing"):
        parse(tmp_path, "accounts { A: {} }\nsystem_account: B\n")
    # The default system account needs no declaration; declaring it gives it users.
    opts = parse(tmp_path, "accounts { $SYS: { users: [{user: s, password: p}] } }\n")
    assert all_users(opts)[0].account == "$SYS"


def test_accounts_an_account_may_import_its_own_export(tmp_path: Path) -> None:
    parse(
        tmp_path,
        "accounts { A: { exports: [{stream: a}]\n"
        "                imports: [{stream: {account: A, subject: a}}] } }\n",
    )


def test_subjects_collide_and_subset_match() -> None:
    assert subjects_collide("a.*", "a.b")
    assert subjects_collide("a.>", "a.b.c")
    assert not subjects_collide("a.>", "a")
    assert not subjects_collide("a.b", "a.c")
    assert not subjects_collide("a.*", "a.b.c")
    assert is_subset_match("a.b", "a.*")
    assert is_subset_match("a.b.>", "a.>")
    assert not is_subset_match("a.>", "a.*")
    assert not is_subset_match("a", "a.>")
    assert is_subset_match("a.*", "a.*")


def test_export_for_checks_accounts_and_the_token_position() -> None:
    exporter = Account(
        name="E",
        exports=(
            Export(service=True, subject="acc.*.req", account_token_position=2),
            Export(service=False, subject="s.>", accounts=("I",)),
        ),
    )
    own = Import(service=True, account="E", subject="acc.I.req")
    other = Import(service=True, account="E", subject="acc.X.req")
    assert export_for(exporter, own, "I") is exporter.exports[0]
    assert export_for(exporter, other, "I") is None
    stream = Import(service=False, account="E", subject="s.x")
    assert export_for(exporter, stream, "I") is exporter.exports[1]
    assert export_for(exporter, stream, "J") is None
