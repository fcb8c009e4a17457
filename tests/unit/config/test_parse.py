"""Config grammar: every syntax form of config.md section 1, positions, errors, round-trip.

Expected values were cross-checked against nats-server 2.15.1 (see parse.py docstring).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardbroker.config.parse import (
    ConfigError,
    Position,
    parse,
    parse_file,
    parse_file_with_positions,
    parse_with_positions,
)

NOENV: dict[str, str] = {}


def p(text: str, **env: str) -> dict:
    return parse(text, "t.conf", env=env)


def err(text: str, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, "t.conf", env=env)
    return info.value


# -- structure -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "port: 4222",
        "port = 4222",
        "port 4222",
        "port:4222",
        "port\t=\t4222",
        "port 4222;",
        "port = 4222,",
    ],
)
def test_config_parse_key_value_separators(text: str) -> None:
    assert p(text) == {"port": 4222}


def test_config_parse_maps_all_forms() -> None:
    text = "a { x: 1 }\nb: { x: 2 }\nc = { x: 3 }\nd {x: 4, y: 5; z: 6\n w: 7}\n"
    assert p(text) == {
        "a": {"x": 1},
        "b": {"x": 2},
        "c": {"x": 3},
        "d": {"x": 4, "y": 5, "z": 6, "w": 7},
    }


def test_config_parse_nested_maps_and_empty() -> None:
    assert p("a { b { c { d: 1 } } }\ne {}") == {"a": {"b": {"c": {"d": 1}}}, "e": {}}


def test_config_parse_top_level_braces() -> None:
    assert p('{\n  "port": 4222,\n  "debug": true\n}\n') == {"port": 4222, "debug": True}


def test_config_parse_arrays() -> None:
    text = "a: [1, 2, 3]\nb: [\n x\n y,\n z\n]\nc: [1, two, 3.5, [4], {k: v}]\nd: []\ne: [1,]\n"
    assert p(text) == {
        "a": [1, 2, 3],
        "b": ["x", "y", "z"],
        "c": [1, "two", 3.5, [4], {"k": "v"}],
        "d": [],
        "e": [1],
    }


def test_config_parse_array_of_maps_without_commas() -> None:
    text = "users = [\n {user: a, password: b}\n {user: c, password: d}\n]"
    assert p(text) == {"users": [{"user": "a", "password": "b"}, {"user": "c", "password": "d"}]}


def test_config_parse_comments_everywhere() -> None:
    text = """# top
// slashes
port: 4222 # after value
host: h // after value
a {  # after brace
  // inside
  b: 1 # x
}
arr: [ # open
  1 # one
  // between
  2
]
url: nats://h:4222 # the // in a url is not a comment
"""
    assert p(text) == {
        "port": 4222,
        "host": "h",
        "a": {"b": 1},
        "arr": [1, 2],
        "url": "nats://h:4222",
    }


def test_config_parse_quoted_keys() -> None:
    assert p("\"port\": 1\n'host' = h\nm { \"a b\": c, 'd.e': f }") == {
        "port": 1,
        "host": "h",
        "m": {"a b": "c", "d.e": "f"},
    }


def test_config_parse_keys_keep_case_and_last_wins() -> None:
    assert p("Port: 1\nport: 2\nport: 3") == {"Port": 1, "port": 3}


def test_config_parse_key_separator_after_newline() -> None:
    # nats skips any whitespace, new lines included, between a key and its separator.
    assert p("port\n: 4") == {"port": 4}


# -- strings ---------------------------------------------------------------------------


def test_config_parse_double_quoted_escapes() -> None:
    text = r'a: "t\tn\nr\rq\"b\\x\x41\xc3\xa9"'
    assert p(text) == {"a": 't\tn\nr\rq"b\\xAé'}


def test_config_parse_double_quoted_spans_lines_and_keeps_dollar() -> None:
    assert p('a: "x\ny $V # not a comment"') == {"a": "x\ny $V # not a comment"}


def test_config_parse_single_quoted_is_raw() -> None:
    assert p(r"a: 'c:\path\n $X \q'") == {"a": r"c:\path\n $X \q"}


def test_config_parse_invalid_utf8_hex_escape_keeps_bytes() -> None:
    value = p(r'a: "\xff"')["a"]
    assert value.encode("utf-8", "surrogateescape") == b"\xff"


def test_config_parse_bare_strings_and_their_ends() -> None:
    text = (
        "a: nats://host:4222\nb: 127.0.0.1:4222\nc: /var/lib/nats\nd: foo.>\n"
        "e: [x,y]\nf {g: h}\ni: j;k: l\nm: a#b\n"
    )
    assert p(text) == {
        "a": "nats://host:4222",
        "b": "127.0.0.1:4222",
        "c": "/var/lib/nats",
        "d": "foo.>",
        "e": ["x", "y"],
        "f": {"g": "h"},
        "i": "j",
        "k": "l",
        "m": "a#b",
    }


def test_config_parse_bare_string_escapes() -> None:
    assert p(r"a: x\ty") == {"a": "x\ty"}
    # An escape makes the word a string even when it spells a bool or a variable.
    assert p(r"a: tru\x65") == {"a": "true"}


def test_config_parse_digit_words_become_strings() -> None:
    text = (
        "a: 3secret\nb: 12abc.5\nc: 1k2\nd: 1kibx\ne: 1e5\nf: 0x10\ng: 1_000\n"
        "h: +5\ni: 1.2.3\nj: 1.5.6;\n"
    )
    assert p(text) == {
        "a": "3secret",
        "b": "12abc.5",
        "c": "1k2",
        "d": "1kibx",
        "e": "1e5",
        "f": "0x10",
        "g": "1_000",
        "h": "+5",
        "i": "1.2.3",
        "j": "1.5.6",
    }


def test_config_parse_block_string() -> None:
    text = "a: (\nline one\n  (two) )\n)\nb: 1\n"
    assert p(text) == {"a": "\nline one\n  (two) )\n", "b": 1}


# -- numbers, bools, datetimes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("4222", 4222),
        ("-1", -1),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("1k", 1000),
        ("1K", 1000),
        ("1kb", 1024),
        ("1KB", 1024),
        ("1ki", 1024),
        ("1kib", 1024),
        ("1m", 10**6),
        ("2MB", 2097152),
        ("10mb", 10485760),
        ("1mi", 2**20),
        ("1MiB", 2**20),
        ("1G", 10**9),
        ("10GB", 10737418240),
        ("1gi", 2**30),
        ("10G", 10 * 10**9),
        ("1t", 10**12),
        ("1tb", 2**40),
        ("1p", 10**15),
        ("1pib", 2**50),
        ("1e", 10**18),
        ("1eb", 2**60),
        ("-2k", -2000),
    ],
)
def test_config_parse_integers_and_sizes(text: str, value: int) -> None:
    got = p(f"v: {text}")["v"]
    assert got == value
    assert type(got) is int


@pytest.mark.parametrize(
    ("text", "value"), [("1.5", 1.5), ("-0.5", -0.5), ("0.25", 0.25), ("10.0", 10.0)]
)
def test_config_parse_floats(text: str, value: float) -> None:
    got = p(f"v: {text}")["v"]
    assert got == value
    assert type(got) is float


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("on", True),
        ("ON", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("NO", False),
        ("off", False),
        ("oFF", False),
    ],
)
def test_config_parse_booleans(text: str, value: bool) -> None:
    assert p(f"v: {text}")["v"] is value


def test_config_parse_quoted_bool_is_string() -> None:
    assert p("a: \"true\"\nb: 'no'") == {"a": "true", "b": "no"}


def test_config_parse_durations_stay_strings() -> None:
    assert p('a: "2m"\nb: 30s\nc: 1h30m\nd: 500ms') == {
        "a": "2m",
        "b": "30s",
        "c": "1h30m",
        "d": "500ms",
    }


def test_config_parse_datetime_zulu() -> None:
    assert p("t: 2025-01-02T15:04:05Z") == {"t": datetime(2025, 1, 2, 15, 4, 5, tzinfo=UTC)}


# -- variables and environment ---------------------------------------------------------


def test_config_parse_variables_and_scopes() -> None:
    text = """TOKEN: "s3cr3t"
authorization { token: $TOKEN }
outer {
  inner_var: 5
  deep { x: $inner_var, y: $TOKEN, z: [$inner_var, {w: $TOKEN}] }
}
"""
    assert p(text) == {
        "TOKEN": "s3cr3t",
        "authorization": {"token": "s3cr3t"},
        "outer": {"inner_var": 5, "deep": {"x": 5, "y": "s3cr3t", "z": [5, {"w": "s3cr3t"}]}},
    }


def test_config_parse_variable_map_is_copied() -> None:
    cfg = p("perms { publish: [a] }\nu1 { permissions: $perms }\nu2 { permissions: $perms }")
    cfg["u1"]["permissions"]["publish"].append("b")
    assert cfg["u2"]["permissions"] == {"publish": ["a"]}


def test_config_parse_inner_scope_shadows_outer() -> None:
    assert p("v: 1\nm { v: 2, w: $v }\nw: $v") == {"v": 1, "m": {"v": 2, "w": 2}, "w": 1}


def test_config_parse_variable_must_be_defined_before_use() -> None:
    e = err("a: $later\nlater: 1")
    assert (e.line, e.message) == (1, "variable reference for 'later' on line 1 can not be found")


def test_config_parse_environment_fallback_typed() -> None:
    cfg = p(
        "port: $NATS_PORT\ntoken: $TOK\nsize: $SZ\nflag: $F\nlist: $L",
        NATS_PORT="4222",
        TOK="abc",
        SZ="1MB",
        F="yes",
        L="[1, 2]",
    )
    assert cfg == {"port": 4222, "token": "abc", "size": 1048576, "flag": True, "list": [1, 2]}


def test_config_parse_file_variables_win_over_environment() -> None:
    assert p("X: 1\ny: $X", X="2") == {"X": 1, "y": 1}


def test_config_parse_environment_chain_and_cycle() -> None:
    assert p("a: $X", X="$Y", Y="hi") == {"a": "hi"}
    e = err("a: $X", X="$X")
    assert "variable reference cycle for 'X'" in e.message
    assert e.line == 1


def test_config_parse_environment_value_that_does_not_parse() -> None:
    e = err("\na: $X", X="[a")
    assert e.line == 2
    assert e.message.startswith("variable reference for 'X' on line 2 could not be parsed:")


def test_config_parse_env_default_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDBROKER_TEST_PORT", "4333")
    assert parse("port: $SHARDBROKER_TEST_PORT") == {"port": 4333}


def test_config_parse_bcrypt_and_partial_dollar() -> None:
    cfg = p('a: $2a$11$abcdefg\nb: "$2b$11$xyz"\nc: "$VAR"\nd: host:$P')
    assert cfg == {"a": "$2a$11$abcdefg", "b": "$2b$11$xyz", "c": "$VAR", "d": "host:$P"}


# -- include ---------------------------------------------------------------------------


def test_config_parse_include_relative_and_nested(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.conf").write_text(
        "port: 1\ninclude sub/auth.conf\nmore {\n  include 'sub/limits.conf'\n}\n"
        'include "./sub/top.conf"; debug: true\n'
    )
    (tmp_path / "sub" / "auth.conf").write_text("authorization { user: a, password: b }\n")
    (tmp_path / "sub" / "limits.conf").write_text("include inner.conf\nmax_payload: 1MB\n")
    (tmp_path / "sub" / "inner.conf").write_text("ping_max: 3\n")
    (tmp_path / "sub" / "top.conf").write_text("port: 2\n")
    cfg, pos = parse_file_with_positions(tmp_path / "main.conf", env=NOENV)
    assert cfg == {
        "port": 2,
        "authorization": {"user": "a", "password": "b"},
        "more": {"ping_max": 3, "max_payload": 1048576},
        "debug": True,
    }
    assert pos[("more", "ping_max")] == Position(str(tmp_path / "sub" / "inner.conf"), 1, 1)
    assert pos[("authorization", "password")].line == 1
    assert pos[("debug",)] == Position(str(tmp_path / "main.conf"), 6, 27)


def test_config_parse_include_from_string_uses_filename_dir(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("a: 1")
    assert parse("include x.conf", str(tmp_path / "main.conf"), env=NOENV) == {"a": 1}


def test_config_parse_include_missing_file(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text("port: 1\n\n  include nope.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(main, env=NOENV)
    e = info.value
    assert (e.file, e.line, e.column) == (str(main), 3, 3)
    assert e.message.startswith("error parsing include file 'nope.conf', open ")
    assert "no such file or directory" in e.message


def test_config_parse_include_error_inside_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text("include bad.conf\n")
    (tmp_path / "bad.conf").write_text('a: 1\nb: "open\n')
    with pytest.raises(ConfigError) as info:
        parse_file(tmp_path / "main.conf", env=NOENV)
    e = info.value
    assert (e.file, e.line) == (str(tmp_path / "main.conf"), 1)
    assert f"{tmp_path / 'bad.conf'}:3:1: Unexpected EOF" in e.message
    assert isinstance(e.__cause__, ConfigError)
    assert e.__cause__.line == 3


def test_config_parse_include_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("x: 1\ninclude b.conf\n")
    (tmp_path / "b.conf").write_text("\ninclude a.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(tmp_path / "a.conf", env=NOENV)
    assert info.value.line == 2
    assert "include cycle" in str(info.value)


def test_config_parse_include_keyword_needs_a_path() -> None:
    e = err("include\nport: 1")
    assert (e.line, e.message) == (1, "Expected include value but found new line")


# -- positions -------------------------------------------------------------------------


def test_config_parse_positions() -> None:
    text = "port: 4222\nauthorization {\n  users = [\n    {user: a, password: b}\n  ]\n}\n"
    cfg, pos = parse_with_positions(text, "s.conf", env=NOENV)
    assert cfg["authorization"]["users"][0]["user"] == "a"
    assert pos[()] == Position("s.conf", 1, 1)
    assert pos[("port",)] == Position("s.conf", 1, 1)
    assert pos[("authorization",)] == Position("s.conf", 2, 1)
    assert pos[("authorization", "users")] == Position("s.conf", 3, 3)
    assert pos[("authorization", "users", 0)] == Position("s.conf", 4, 5)
    assert pos[("authorization", "users", 0, "password")] == Position("s.conf", 4, 15)
    assert str(pos[("port",)]) == "s.conf:1:1"


def test_config_parse_positions_follow_variables() -> None:
    _, pos = parse_with_positions("P { a: 1 }\n\nm: $P", "s.conf", env=NOENV)
    assert pos[("m",)] == Position("s.conf", 3, 1)
    assert pos[("m", "a")] == Position("s.conf", 1, 5)


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('port: 1\nname: "abc\n', 3, "Unexpected EOF: unterminated string opened on line 2."),
        ("port: 1\nname: 'abc\n", 3, "Unexpected EOF: unterminated string opened on line 2."),
        ("a {\n b: 1\n", 3, "Unexpected EOF processing map (opened on line 1)."),
        ("a: [1,\n 2\n", 3, "Unexpected EOF processing array (opened on line 1)."),
        ("x: 1\na: (\ntext\n", 4, "Unexpected EOF: block string opened on line 2"),
        ('\na: "a\\qb"', 2, "Invalid escape character 'q'."),
        ('a: "\\x4"', 1, "Expected two hexadecimal digits after '\\x', but got '4\"'"),
        ('a: "\\xzz"', 1, "Expected two hexadecimal digits after '\\x', but got 'zz'"),
        ("a:\n", 1, "Expected value but found new line"),
        ("a:", 1, "Expected value but found EOF"),
        (
            "\nlisten: 127.0.0.1:$P\n",
            2,
            "Expected a top-level value to end with a new line, "
            "comment or EOF, but got '$' instead.",
        ),
        ("a: 1 x\n", 1, "Expected a top-level value to end with a new line"),
        (
            "a {b: 1 c}\n",
            1,
            'Expected a map value terminator "," or a map terminator "}", but got \'c\' instead.',
        ),
        (
            "a: [x y]\n",
            1,
            'Expected an array value terminator "," or an array terminator "]", '
            "but got 'y' instead.",
        ),
        ("a: [a,,b]", 1, "Unexpected array value terminator ','."),
        ("a: [,]", 1, "Unexpected array value terminator ','."),
        ("\n\na: .5", 3, "Floats must start with a digit"),
        ("a: -.5", 1, "Floats must start with a digit, not '.'."),
        ("a: -x", 1, "Expected a digit but got 'x'."),
        ("a: 1.x", 1, "Floats must have a digit after the '.', but got 'x' instead."),
        ("a: 1.5x", 1, "but got 'x' instead."),
        ("a: 1.5k", 1, "but got 'k' instead."),
        ("a: -1x", 1, "but got 'x' instead."),
        ("a: 12-3", 1, "All ISO8601 dates must be in full Zulu form."),
        ("a: 2025-01-02", 1, "All ISO8601 dates must be in full Zulu form."),
        ("\na: 99999999999999999999", 2, "integer '99999999999999999999' is out of the range"),
        ("a: 90000000000G", 1, "integer '90000000000G' is out of the range"),
        ("\n\nport: $NOPE", 3, "variable reference for 'NOPE' on line 3 can not be found"),
        ("a {\n  : 1\n}", 2, "Unexpected key separator ':'."),
        ("a: 1\n}", 2, "Unexpected '}' at top level."),
        ("{ a: 1 }\nb: 2", 2, "Unexpected 'b' after the top-level map."),
        ("\n'key: 1", 2, "Unexpected EOF: unterminated key opened on line 2."),
        ("include [a]", 1, "Expected include value but found start of an array"),
    ],
)
def test_config_parse_errors_with_line(text: str, line: int, message: str) -> None:
    e = err(text)
    assert e.file == "t.conf"
    assert e.line == line
    assert message in e.message
    assert str(e).startswith(f"t.conf:{line}:{e.column}: ")


def test_config_parse_error_column() -> None:
    e = err("a: 1\nbb: [x y]")
    assert (e.line, e.column) == (2, 8)


def test_config_parse_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_file(tmp_path / "missing.conf", env=NOENV)
    assert "no such file or directory" in info.value.message
    bad = tmp_path / "bad.conf"
    bad.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        parse_file(bad, env=NOENV)


# -- realistic files -------------------------------------------------------------------

SERVER_CONF = """\
# A typical server
port: 4222
listen: 127.0.0.1:4222
server_name: n1
max_payload: 1MB
max_pending = 64MB
ping_interval: "2m"
write_deadline: 10s
debug: false, trace: off
http_port: 8222

authorization {
  timeout: 2.5
  users = [
    {user: a, password: b}
    {user: "svc", password: "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG",
     permissions: { publish: ["svc.>", "_INBOX.>"], subscribe: "svc.req", allow_responses: true }}
    {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}
  ]
}

jetstream {
  store_dir: "/x"
  max_file_store: 10G
  max_memory_store: 1GB
}

accounts {
  A: {
    users: [ {user: ua, password: pa} ]
    exports: [
      {stream: "events.>"}
      {service: "svc.>", response_type: singleton, latency: {sampling: 100, subject: "lat.svc"}}
    ]
    limits: { max_connections: 10, max_payload: 64KB }
    mappings: { "orders.*": "orders.new.{{wildcard(1)}}" }
    jetstream: enabled
  }
  B: {
    users: [ {user: ub, password: pb} ]
    imports: [
      {service: {account: A, subject: "svc.help"}, to: "a.help"}
      {stream: {account: A, subject: "events.>"}, prefix: from_a}
    ]
  }
  SYS: { users: [ {user: admin, password: admin} ] }
}
system_account: SYS
cluster { name: C1, listen: 127.0.0.1:6222, routes: [nats://127.0.0.1:6223], pool_size: 3 }
"""


def test_config_parse_realistic_server_file(tmp_path: Path) -> None:
    path = tmp_path / "server.conf"
    path.write_text(SERVER_CONF)
    cfg, pos = parse_file_with_positions(path, env=NOENV)
    assert cfg["port"] == 4222
    assert cfg["listen"] == "127.0.0.1:4222"
    assert cfg["max_payload"] == 1048576
    assert cfg["max_pending"] == 64 * 1048576
    assert cfg["ping_interval"] == "2m"
    assert cfg["write_deadline"] == "10s"
    assert (cfg["debug"], cfg["trace"]) == (False, False)
    auth = cfg["authorization"]
    assert auth["timeout"] == 2.5
    assert auth["users"][0] == {"user": "a", "password": "b"}
    assert auth["users"][1]["password"].startswith("$2a$11$")
    assert auth["users"][1]["permissions"] == {
        "publish": ["svc.>", "_INBOX.>"],
        "subscribe": "svc.req",
        "allow_responses": True,
    }
    assert auth["users"][2]["nkey"].startswith("UDXU")
    assert cfg["jetstream"] == {
        "store_dir": "/x",
        "max_file_store": 10 * 10**9,
        "max_memory_store": 2**30,
    }
    acc = cfg["accounts"]
    assert acc["A"]["exports"][1]["latency"] == {"sampling": 100, "subject": "lat.svc"}
    assert acc["A"]["limits"] == {"max_connections": 10, "max_payload": 65536}
    assert acc["A"]["mappings"] == {"orders.*": "orders.new.{{wildcard(1)}}"}
    assert acc["A"]["jetstream"] == "enabled"
    assert acc["B"]["imports"][0] == {
        "service": {"account": "A", "subject": "svc.help"},
        "to": "a.help",
    }
    assert acc["B"]["imports"][1]["prefix"] == "from_a"
    assert cfg["system_account"] == "SYS"
    assert cfg["cluster"]["routes"] == ["nats://127.0.0.1:6223"]
    assert pos[("jetstream", "max_file_store")] == Position(str(path), 24, 3)
    assert pos[("accounts", "B", "imports", 1)].line == 43


def test_config_parse_json_file() -> None:
    text = (
        '{"port": 4222, "authorization": {"users": [{"user": "a", "password": "b"}]},'
        ' "tags": ["x", "y"], "on": true, "f": 1.5}'
    )
    assert p(text) == {
        "port": 4222,
        "authorization": {"users": [{"user": "a", "password": "b"}]},
        "tags": ["x", "y"],
        "on": True,
        "f": 1.5,
    }


# -- round trip ------------------------------------------------------------------------

_KEY = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k.lower() not in {"include", "true", "false", "yes", "no", "on", "off"}
)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_SCALAR = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    # nats floats have no exponent syntax: keep to values whose repr has none.
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12).filter(
        lambda f: "e" not in repr(f)
    ),
    _TEXT,
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEY, inner, max_size=4)),
    max_leaves=12,
)
_BARE_OK = re.compile(r"[a-z][a-z0-9_./>*-]*")


def _emit(value: object, draw, indent: str = "") -> str:
    if isinstance(value, bool):
        return draw(
            st.sampled_from(
                ["true", "yes", "on", "TRUE"] if value else ["false", "no", "off", "False"]
            )
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if (
            _BARE_OK.fullmatch(value)
            and value.lower() not in {"true", "false", "yes", "no", "on", "off"}
            and draw(st.booleans())
        ):
            return value
        if "'" not in value and draw(st.booleans()):
            return f"'{value}'"
        esc = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        esc = esc.replace("\t", "\\t").replace("\r", "\\r")
        return f'"{esc}"'
    if isinstance(value, list):
        items = [_emit(v, draw, indent + "  ") for v in value]
        if draw(st.booleans()):
            return "[" + ", ".join(items) + "]"
        return "[\n" + "".join(f"{indent}  {i}\n" for i in items) + f"{indent}]"
    assert isinstance(value, dict)
    return "{\n" + _emit_entries(value, draw, indent + "  ") + f"{indent}}}"


def _emit_entries(d: dict, draw, indent: str) -> str:
    out = []
    for k, v in d.items():
        sep = draw(st.sampled_from([": ", " = ", " ", ":", "="]))
        if isinstance(v, dict) and draw(st.booleans()):
            sep = " "
        if draw(st.booleans()):
            k = f'"{k}"'
        end = draw(st.sampled_from(["\n", ",\n", ";\n", " # c\n", " // c\n"]))
        out.append(f"{indent}{k}{sep}{_emit(v, draw, indent)}{end}")
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY, _VALUE, max_size=6), st.data())
def test_config_parse_round_trip(doc: dict, data: st.DataObject) -> None:
    text = _emit_entries(doc, data.draw, "")
    if data.draw(st.booleans()):
        text = "{\n" + text + "}\n"
    assert parse(text, env=NOENV) == doc
