"""The authorization block, no_auth_user and the auth flags: config file to Options, and
the cross-checks of validate() (nats-server's texts)."""

from __future__ import annotations

import pytest

from shardbroker.config.merge import apply_auth_flags, merge, options_from_config
from shardbroker.config.options import (
    Authorization,
    Options,
    OptionsError,
    User,
    auth_required,
    decode,
    encode,
    validate,
)
from shardbroker.config.parse import ConfigError, parse_with_positions


def fields(text: str) -> dict[str, object]:
    values, positions = parse_with_positions(text, "auth.conf")
    return options_from_config(values, positions, "auth.conf")


def options(text: str) -> Options:
    return validate(Options(**fields(text)))  # type: ignore[arg-type]


def test_auth_config_token() -> None:
    opts = options('authorization { token: "s3cr3t" }')
    assert opts.authorization == Authorization(token="s3cr3t")
    assert auth_required(opts)


def test_auth_config_single_user_and_aliases() -> None:
    assert options("authorization { user: a, password: b }").authorization == Authorization(
        user="a", password="b"
    )
    assert options("authorization { username: a\n pass: b }").authorization == Authorization(
        user="a", password="b"
    )


def test_auth_config_bcrypt_password_unquoted() -> None:
    opts = options("authorization { user: a, password: $2a$04$abcdefghijklmnopqrstuv }")
    assert opts.authorization is not None
    assert opts.authorization.password == "$2a$04$abcdefghijklmnopqrstuv"


def test_auth_config_users_list_timeout_and_no_auth_user() -> None:
    opts = options(
        """
        authorization {
          timeout: 1
          users: [
            {user: a, password: pa}
            {username: b, pass: pb}
          ]
        }
        no_auth_user: a
        """
    )
    assert opts.authorization == Authorization(
        timeout=1.0, users=(User(user="a", password="pa"), User(user="b", password="pb"))
    )
    assert opts.no_auth_user == "a"
    # The children get Options msgpack-encoded: the nested Structs survive.
    assert decode(encode(opts)) == opts


@pytest.mark.parametrize(("text", "seconds"), [("1", 1.0), ('"500ms"', 0.5), ("2.5", 2.5)])
def test_auth_config_timeout_seconds_or_duration(text: str, seconds: float) -> None:
    opts = options(f"authorization {{ token: t, timeout: {text} }}")
    assert opts.authorization is not None
    assert opts.authorization.timeout == seconds


def test_auth_config_no_authorization_means_none() -> None:
    opts = options("port: 4222")
    assert opts.authorization is None and not auth_required(opts)
    assert not auth_required(options("authorization { timeout: 3 }"))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("port: 1\nauthorization {\n  token: t\n  tokn: u\n}\n", 4, 'unknown field "tokn"'),
        (
            "authorization {\n  users: [\n    {user: a, password: b}\n    {user: c, pwd: d}\n"
            "  ]\n}\n",
            4,
            'unknown field "pwd"',
        ),
        (
            "authorization {\n  users: [\n    {user: a, password: b, account: A}\n  ]\n}\n",
            3,
            "'account' is not supported by shardbroker yet",
        ),
        (
            "authorization {\n  default_permissions: { pubish: x }\n  users: []\n}\n",
            2,
            'Unknown field "pubish" parsing permissions',
        ),
        ('authorization {\n  timeout: "2x"\n}\n', 2, "timeout: invalid duration"),
        ("authorization {\n  timeout: true\n}\n", 2, "timeout: expected a duration"),
        ("authorization {\n  users: {user: a}\n}\n", 2, "users: expected an array of users"),
        ("authorization {\n  users: [ a ]\n}\n", 2, "users: expected a map"),
        ("authorization {\n  users: [ {password: x} ]\n}\n", 2, "each user needs a user name"),
        ("\nauthorization: 5\n", 2, "authorization: expected a map"),
        ("\n\nno_auth_user: [a]\n", 3, "no_auth_user: expected a string"),
        ("authorization {\n  token: [x]\n}\n", 2, "token: expected a string"),
    ],
)
def test_auth_config_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        fields(text)
    assert exc.value.line == line, str(exc.value)
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"auth.conf:{line}:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("authorization { user: a, password: b, token: t }", "Cannot have a user/pass and token"),
        (
            "authorization { user: a, password: b, users: [{user: c, password: d}] }",
            "Can not have a single user/pass and a users array",
        ),
        (
            "authorization { token: t, users: [{user: c, password: d}] }",
            "Can not have a token and a users array",
        ),
        (
            "authorization { users: [{user: c, password: d}, {user: c, password: e}] }",
            'Duplicate user "c" detected',
        ),
        ("no_auth_user: a", 'no_auth_user: "a" present, but users/nkeys are not defined'),
        (
            "authorization { user: a, password: b }\nno_auth_user: a",
            'no_auth_user: "a" present, but users/nkeys are not defined',
        ),
        (
            "authorization { users: [{user: c, password: d}] }\nno_auth_user: a",
            'no_auth_user: "a" not present as user or nkey',
        ),
        ("authorization { token: t, timeout: 0 }", "authorization timeout must be positive"),
    ],
)
def test_auth_config_cross_checks(text: str, message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        options(text)


def test_auth_flags_win_over_the_file() -> None:
    from_file = fields("authorization { user: a, password: b, timeout: 3 }")
    merged = merge({}, from_file, {})
    opts = Options(**apply_auth_flags(merged, None, None, "flagpass"))  # type: ignore[arg-type]
    assert opts.authorization == Authorization(user="a", password="flagpass", timeout=3.0)
    assert apply_auth_flags(merged, None, None, None) is merged


def test_auth_flags_without_a_file() -> None:
    opts = validate(Options(**apply_auth_flags({}, "tok", None, None)))  # type: ignore[arg-type]
    assert opts.authorization == Authorization(token="tok")
    with pytest.raises(OptionsError, match="Cannot have a user/pass and token"):
        validate(Options(**apply_auth_flags({}, "tok", "u", "p")))  # type: ignore[arg-type]
