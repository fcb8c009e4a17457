"""The websocket block and server_tags: config file to Options, and nats-server's refusals
with its texts (captured from nats-server 2.15 with the same files)."""

from __future__ import annotations

import pytest

from shardbroker.config.merge import options_from_config
from shardbroker.config.options import (
    Options,
    OptionsError,
    WebsocketConfig,
    decode,
    encode,
    validate,
)
from shardbroker.config.parse import ConfigError, parse_with_positions
from tests.helpers.certs import OPENSSL, Certs, make_certs


def options(text: str) -> Options:
    values, positions = parse_with_positions(text, "ws.conf")
    return validate(Options(**options_from_config(values, positions, "ws.conf")))  # type: ignore[arg-type]


def test_websocket_config_block() -> None:
    opts = options(
        """
        websocket {
          listen: "127.0.0.1:-1"
          no_tls: true
          compress: true
          same_origin: true
          allowed_origins: ["http://a.example", "https://b.example:8443"]
          handshake_timeout: "2s"
          authorization { username: u, password: p, timeout: 3 }
          jwt_cookie: ""
          user_cookie: nuser
          pass_cookie: npass
          token_cookie: ntok
          headers { X-A: "1", X-B: "two" }
          ping_interval: "30s"
          advertise: "ws.example:443"
        }
        """
    )
    assert opts.websocket == WebsocketConfig(
        host="127.0.0.1",
        port=-1,
        no_tls=True,
        compression=True,
        same_origin=True,
        allowed_origins=("http://a.example", "https://b.example:8443"),
        handshake_timeout=2.0,
        user="u",
        password="p",
        auth_timeout=3.0,
        user_cookie="nuser",
        pass_cookie="npass",
        token_cookie="ntok",
        headers=(("X-A", "1"), ("X-B", "two")),
        ping_interval=30.0,
        advertise="ws.example:443",
    )
    assert opts.websocket.auth_override
    assert decode(encode(opts)) == opts
    assert options("port: 1").websocket is None
    short = options(
        'websocket { port: 8080, no_tls: true, handshake_timeout: 5, origin: "http://x" }'
    )
    assert short.websocket is not None
    assert short.websocket.host == "0.0.0.0"
    assert short.websocket.handshake_timeout == 5.0
    # Without a port nothing else is checked (nats-server's rule): no TLS is fine here.
    assert options("websocket { host: a }").websocket == WebsocketConfig(host="a")


def test_websocket_config_tls_block() -> None:
    if OPENSSL is None:
        pytest.skip("needs the openssl command")
    import tempfile
    from pathlib import Path

    certs: Certs = make_certs(Path(tempfile.mkdtemp(prefix="wscerts-")))
    opts = options(
        f'websocket {{ port: -1, tls {{ cert_file: "{certs.server_cert}", '
        f'key_file: "{certs.server_key}" }} }}'
    )
    assert opts.websocket is not None and opts.websocket.tls is not None
    assert opts.websocket.tls.cert_file == str(certs.server_cert)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("websocket { port: -1 }", "websocket requires TLS configuration"),
        (
            'websocket { port: -1, no_tls: true, allowed_origins: ["foo.com"] }',
            'unable to parse allowed origin: parse "foo.com": invalid URI for request',
        ),
        (
            'websocket { port: -1, no_tls: true, allowed_origins: ["ftp://foo.com"] }',
            'unable to parse allowed origin "ftp://foo.com": allowed origins must be absolute '
            "URLs with http or https scheme",
        ),
        (
            'websocket { port: -1, no_tls: true, allowed_origins: ["http://"] }',
            'unable to parse allowed origin "http://": host is required',
        ),
        (
            'websocket { port: -1, no_tls: true, headers: { Host: "x" } }',
            'websocket: invalid header "Host" not allowed',
        ),
        (
            'websocket { port: -1, no_tls: true, headers: { "nats-no-masking": "x" } }',
            'websocket: invalid header "nats-no-masking" not allowed',
        ),
        (
            'websocket { port: -1, no_tls: true, headers: { "sec-websocket-foo": "x" } }',
            'websocket: invalid header "sec-websocket-foo", "Sec-WebSocket-" prefix not allowed',
        ),
        (
            "websocket { port: -1, no_tls: true, no_auth_user: bob }",
            'no_auth_user: "bob" present, but users/nkeys are not defined',
        ),
        (
            "authorization { users: [{user: a, password: b}] }\n"
            "websocket { port: -1, no_tls: true, no_auth_user: bob }",
            'no_auth_user: "bob" not present as user or nkey in authorization block or '
            "account configuration",
        ),
        (
            "websocket { port: -1, no_tls: true, jwt_cookie: jwt }",
            "trusted operators or trusted keys configuration is required for JWT "
            'authentication via cookie "jwt"',
        ),
        (
            "authorization { users: [{user: a, password: b}] }\n"
            "websocket { port: -1, no_tls: true, authorization { user: x, password: y } }",
            "websocket authentication username not compatible with presence of users/nkeys",
        ),
        (
            "authorization { users: [{user: a, password: b}] }\n"
            "websocket { port: -1, no_tls: true, authorization { token: x } }",
            "websocket authentication token not compatible with presence of users/nkeys",
        ),
        ("websocket { port: 70000, no_tls: true }", "websocket port 70000 is out of range"),
    ],
)
def test_websocket_config_refusals(text: str, message: str) -> None:
    with pytest.raises(OptionsError) as exc:
        options(text)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("websocket { port: -1, no_tls: true, foo: 1 }", 'ws.conf:1:37: unknown field "foo"'),
        ("websocket: 5", "Expected websocket to be a map, got int64"),
        (
            "websocket { port: -1, no_tls: true, handshake_timeout: true }",
            "error parsing handshake timeout: unsupported type bool",
        ),
        ('websocket { port: -1, no_tls: true, handshake_timeout: "abc" }', "invalid duration"),
        (
            "websocket { port: -1, no_tls: true, headers: { X: 1 } }",
            "error parsing header key X: unsupported type int64",
        ),
        ("websocket { port: -1, no_tls: 1 }", "expected true or false"),
        (
            "websocket { port: -1, no_tls: true, authorization { users: [] } }",
            'unknown field "users"',
        ),
        ("server_tags: 5", "error parsing tags"),
        ("server_tags: [1]", "error parsing tags"),
    ],
)
def test_websocket_config_file_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        options(text)
    assert message in str(exc.value)


def test_websocket_config_server_tags() -> None:
    # nats-server's TagList: trimmed, lower case, each once.
    assert options('server_tags: ["Foo", "a:B", "foo", " x ", ""]').server_tags == (
        "foo",
        "a:b",
        "x",
    )
    assert options('server_tags: "Region:EU"').server_tags == ("region:eu",)
    assert options("port: 1").server_tags == ()


def test_websocket_config_leafnodes_still_refused_clearly() -> None:
    with pytest.raises(ConfigError) as exc:
        options('leafnodes { listen: "127.0.0.1:-1" }')
    assert "does not support yet" in str(exc.value)
