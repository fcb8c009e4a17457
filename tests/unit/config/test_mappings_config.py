"""The `mappings {}` / `maps {}` blocks: what they parse into, and nats-server's errors
(texts checked against `nats-server -t -c` 2.15.1) with file and line (our columns
are 1-based; nats-server counts some from 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardbroker.config import mappings as mappings_module
from shardbroker.config.merge import load
from shardbroker.config.options import MapDestination, Options, SubjectMapping, validate
from shardbroker.config.parse import ConfigError, parse_with_positions


def parse_block(text: str) -> tuple[SubjectMapping, ...]:
    values, positions = parse_with_positions(text, "m.conf")
    (key,) = values
    return mappings_module.parse_mappings(values[key], positions, (key,), positions[(key,)])


def load_text(tmp_path: Path, text: str) -> Options:
    conf = tmp_path / "m.conf"
    conf.write_text(text)
    return validate(Options(**load(conf)))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_block(text)
    return str(info.value)


def test_mappings_config_forms_in_file_order() -> None:
    got = parse_block(
        """
        mappings {
          "a.*": "b.$1"
          "w.*": [ {destination: "x.$1", weight: 40}, {dest: "y.$1", weight: "60%"} ]
          one: { destination: two, weight: 10, cluster: east }
          "c.>": "d.>"
        }
        """
    )
    assert got == (
        SubjectMapping(source="a.*", destinations=(MapDestination(subject="b.$1"),)),
        SubjectMapping(
            source="w.*",
            destinations=(
                MapDestination(subject="x.$1", weight=40),
                MapDestination(subject="y.$1", weight=60),
            ),
        ),
        SubjectMapping(
            source="one", destinations=(MapDestination(subject="two", weight=10, cluster="east"),)
        ),
        SubjectMapping(source="c.>", destinations=(MapDestination(subject="d.>"),)),
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            'mappings {\n "a.*": "b.{{foo(1)}}" }',
            'm.conf:2:2: Error adding mapping for "a.*" to "b.{{foo(1)}}" : '
            "invalid mapping destination: unknown function in {{foo(1)}}",
        ),
        (
            'mappings { "a.*": "b.$2" }',
            'm.conf:1:12: Error adding mapping for "a.*" to "b.$2" : '
            "invalid mapping destination: wildcard index out of range in $2: [2]",
        ),
        (
            'mappings { "a.*": "b.*" }',
            'm.conf:1:12: Error adding mapping for "a.*" to "b.*" : invalid subject',
        ),
        ('mappings { "a..b": "b.c" }', 'm.conf:1:1: Subject "a..b" is not a valid subject'),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: 60}, {dest: "c.$1", weight: 50}] }',
            'm.conf:1:12: Error adding mapping for "a.*" : total weight needs to be <= 100',
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: 6}, {dest: "b.$1", weight: 1}] }',
            'm.conf:1:12: Error adding mapping for "a.*" : duplicate entry for "b.$1"',
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: "160%"}] }',
            "m.conf:1:42: Invalid weight 160 for mapping destination",
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: -1}] }',
            "m.conf:1:42: Invalid weight -1 for mapping destination",
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: "x%"}] }',
            'm.conf:1:42: Invalid weight "x" for mapping destination',
        ),
        (
            'mappings { "a.*": [{destination: "b.$1"}] }',
            'm.conf:1:20: Missing weight for mapping destination "b.$1"',
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: 10, foo: 1}] }',
            'm.conf:1:54: Unknown field "foo" for mapping destination',
        ),
        (
            'mappings { "a.*": [{destination: "b.$1", weight: 1.5}] }',
            "m.conf:1:42: Unknown entry type for weight of 1.5",
        ),
        ('mappings { "a.*": 5 }', "m.conf:1:12: Expected an entry for the mapping destination"),
        ('mappings { "a": ["b"] }', "m.conf:1:18: Expected an entry for the mapping destination"),
        (
            'mappings { "a": [{destination: 5, weight: 5}] }',
            "m.conf:1:19: destination: expected a string, got 5",
        ),
        ("mappings: 5", "m.conf:1:1: Expected a map of subject mappings, got 5"),
        (
            'mappings { "a": "" }',
            'm.conf:1:12: Error adding mapping for "a" to "" : '
            "invalid mapping destination: empty destination",
        ),
    ],
)
def test_mappings_config_errors(text: str, error: str) -> None:
    assert error_of(text) == error


def test_mappings_config_in_both_places_checked_first(tmp_path: Path) -> None:
    assert load_text(tmp_path, 'mappings { "a.*": "b.$1" }\n').mappings
    assert load_text(tmp_path, 'accounts { A { maps { "a.*": "b.$1" } } }\n').accounts[0].mappings
    with pytest.raises(ConfigError, match="wildcard index out of range"):
        load_text(tmp_path, 'accounts { A { mappings { "a.*": "b.$3" } } }\n')
    assert load_text(tmp_path, "mappings {}\n").mappings == ()


def test_mappings_config_on_options_and_accounts(tmp_path: Path) -> None:
    opts = load_text(
        tmp_path,
        """
        maps { "g.*": "h.$1" }
        accounts { A { users: [{user: a, password: a}], MAPPINGS { "a": [{dest: b, weight: 5}] } } }
        """,
    )
    assert opts.mappings == (
        SubjectMapping(source="g.*", destinations=(MapDestination(subject="h.$1"),)),
    )
    (account,) = opts.accounts
    assert account.mappings == (
        SubjectMapping(source="a", destinations=(MapDestination(subject="b", weight=5),)),
    )
