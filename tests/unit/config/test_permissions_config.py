"""Permissions in a config file: every form nats-server accepts, to Options, and the
errors (nats-server's texts) with file and line."""

from __future__ import annotations

import pytest

from shardbroker.config.merge import options_from_config
from shardbroker.config.options import (
    Options,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    decode,
    encode,
    validate,
)
from shardbroker.config.parse import ConfigError, parse_with_positions


def options(text: str) -> Options:
    values, positions = parse_with_positions(text, "perms.conf")
    return validate(Options(**options_from_config(values, positions, "perms.conf")))  # type: ignore[arg-type]


def user_perms(body: str) -> Permissions | None:
    opts = options(f"authorization {{ users: [ {{user: u, password: p, {body}}} ] }}")
    assert opts.authorization is not None and opts.authorization.users is not None
    return opts.authorization.users[0].permissions


def test_permissions_config_allow_deny_lists() -> None:
    perms = user_perms(
        'permissions: { publish: { allow: ["a.>", "b"], deny: "a.secret" }, '
        'subscribe: { allow: ["c.*", "work.* workers"], deny: ["c.admin"] } }'
    )
    assert perms == Permissions(
        publish=SubjectPermission(allow=("a.>", "b"), deny=("a.secret",)),
        subscribe=SubjectPermission(allow=("c.*", "work.* workers"), deny=("c.admin",)),
    )


@pytest.mark.parametrize(
    "body",
    [
        'permissions: { publish: "a.>", subscribe: ["b", "c"] }',
        'permissions: { pub: ["a.>"], sub: { allow: ["b", "c"] } }',
        'permission: { import: "a.>", export: ["b", "c"] }',
        'authorization: { publish: "a.>", subscribe: ["b", "c"] }',
    ],
)
def test_permissions_config_shorthand_and_aliases(body: str) -> None:
    assert user_perms(body) == Permissions(
        publish=SubjectPermission(allow=("a.>",)), subscribe=SubjectPermission(allow=("b", "c"))
    )


def test_permissions_config_empty_lists_mean_no_list() -> None:
    perms = user_perms("permissions: { publish: [], subscribe: { allow: [], deny: [] } }")
    assert perms == Permissions(publish=SubjectPermission(), subscribe=SubjectPermission())
    assert user_perms("permissions: { publish: {} }") == Permissions()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", ResponsePermission(max_msgs=1, expires=120.0)),
        ("{ max: 5 }", ResponsePermission(max_msgs=5, expires=120.0)),
        ('{ max: 0, expires: "0s" }', ResponsePermission(max_msgs=1, expires=120.0)),
        ('{ max_msgs: -1, ttl: "1m" }', ResponsePermission(max_msgs=-1, expires=60.0)),
        ('{ max_responses: 2, expiration: "500ms" }', ResponsePermission(max_msgs=2, expires=0.5)),
    ],
)
def test_permissions_config_allow_responses(value: str, expected: ResponsePermission) -> None:
    perms = user_perms(f"permissions: {{ allow_responses: {value} }}")
    # Responses alone: the user may publish nothing else (an empty allow list).
    assert perms == Permissions(publish=SubjectPermission(allow=()), allow_responses=expected)


def test_permissions_config_allow_responses_keeps_an_explicit_allow_list() -> None:
    for body in (
        'permissions: { publish_allow_responses: true, publish: { allow: "x", deny: "y" } }',
        'permissions: { publish: { allow: "x", deny: "y" }, allow_responses: true }',
    ):
        perms = user_perms(body)
        assert perms is not None
        assert perms.publish == SubjectPermission(allow=("x",), deny=("y",))
        assert perms.allow_responses == ResponsePermission()
    perms = user_perms('permissions: { publish: { deny: "y" }, allow_responses: true }')
    assert perms is not None and perms.publish == SubjectPermission(allow=(), deny=("y",))
    assert user_perms("permissions: { allow_responses: false }") == Permissions()


def test_permissions_config_default_permissions_and_round_trip() -> None:
    for key in ("default_permissions", "default_permission", "permissions"):
        opts = options(
            f'authorization {{ {key}: {{ publish: "x" }}, '
            "users: [ {user: a, password: b}, "
            "{user: c, password: d, permissions: {subscribe: y}} ] }"
        )
        assert opts.authorization is not None
        assert opts.authorization.default_permissions == Permissions(
            publish=SubjectPermission(allow=("x",))
        )
        assert decode(encode(opts)) == opts


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('permissions: { publish: "a b" }', 'subject "a b" is not a valid subject'),
        ('permissions: { publish: "a..b" }', 'subject "a..b" is not a valid subject'),
        ('permissions: { subscribe: "a b c" }', 'subject "a b c" is not a valid subject'),
        ('permissions: { subscribe: "a.>.b q" }', 'subject "a.>.b" is not a valid subject'),
        ('permissions: { subscribe: "a q..x" }', 'queue "q..x" is not a valid queue'),
        ("permissions: { subscribe: [1] }", "Subject in permissions array cannot be cast"),
        ("permissions: { publish: 5 }", "Expected subject permissions to be a subject"),
        ("permissions: { publish: { allw: x } }", 'Unknown field name "allw" parsing subject'),
        ("permissions: { pubish: x }", 'Unknown field "pubish" parsing permissions'),
        ("permissions: { allow_responses: 1 }", "expected a boolean or a map"),
        ("permissions: { allow_responses: { expires: 5 } }", "not a duration string"),
        ('permissions: { allow_responses: { expires: "5x" } }', "error parsing expires"),
        ("permissions: { allow_responses: { mx: 1 } }", 'Unknown field "mx" parsing permissions'),
        ("permissions: [a]", "Expected permissions to be a map/struct"),
    ],
)
def test_permissions_config_errors_name_the_line(body: str, message: str) -> None:
    text = f"port: 1\nauthorization {{\n  users: [\n    {{user: u, password: p, {body}}}\n  ]\n}}\n"
    with pytest.raises(ConfigError) as exc:
        options(text)
    assert message in str(exc.value)
    assert str(exc.value).startswith("perms.conf:4:"), str(exc.value)
