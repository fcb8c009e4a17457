"""The tls block and the --tls* flags: config file to Options, files that cannot be
used refused with file, line and key, and the server context built from them."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from shardbroker.config.merge import apply_tls_flags, options_from_config
from shardbroker.config.options import Options, OptionsError, TLSConfig, decode, encode, validate
from shardbroker.config.parse import ConfigError, parse_with_positions
from shardbroker.security.tls import TLSConfigError, server_context
from tests.helpers.certs import OPENSSL, Certs, make_certs

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def options(text: str) -> Options:
    values, positions = parse_with_positions(text, "tls.conf")
    return validate(Options(**options_from_config(values, positions, "tls.conf")))  # type: ignore[arg-type]


def block(certs: Certs, *extra: str) -> str:
    lines = [f'cert_file: "{certs.server_cert}"', f'key_file: "{certs.server_key}"', *extra]
    return "port: 1\ntls {\n  " + "\n  ".join(lines) + "\n}\n"


def test_tls_config_block(certs: Certs) -> None:
    opts = options(
        block(
            certs, f'ca_file: "{certs.ca}"', "verify: true", 'timeout: "1.5s"', "min_version: 1.3"
        )
    )
    assert opts.tls == TLSConfig(
        cert_file=str(certs.server_cert),
        key_file=str(certs.server_key),
        ca_file=str(certs.ca),
        verify=True,
        timeout=1.5,
        min_version="1.3",
    )
    assert decode(encode(opts)) == opts
    assert options("port: 1").tls is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [("handshake_first: true", True), ('first: "on"', True), ("immediate: false", False)],
)
def test_tls_config_handshake_first(certs: Certs, line: str, expected: bool) -> None:
    opts = options(block(certs, line))
    assert opts.tls is not None and opts.tls.handshake_first is expected


def test_tls_config_auth_timeout_follows_the_tls_timeout(certs: Certs) -> None:
    text = block(certs, "timeout: 3") + "authorization { token: t }\n"
    auth = options(text).authorization
    assert auth is not None and auth.timeout == 4.0  # nats-server: TLS timeout + 1 s
    auth = options(block(certs) + "authorization { token: t, timeout: 7 }\n").authorization
    assert auth is not None and auth.timeout == 7.0


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("verify_and_map: true", 5, "tls verify_and_map: mapping client certificates"),
        ("cipher_suites: [x]", 5, "tls cipher_suites: not supported by shardbroker yet"),
        ("pinned_certs: []", 5, "tls pinned_certs: not supported"),
        ('handshake_first: "300ms"', 5, "only true or false are supported"),
        ('min_version: "1.1"', 5, "unsupported TLS version: 1.1"),
        ("verify: 1", 5, "tls verify: expected true or false"),
        ("cert_fle: x", 5, 'error parsing tls config, unknown field "cert_fle"'),
        ('ca_file: "/nonexistent/ca.pem"', 5, 'tls ca_file: cannot read "/nonexistent/ca.pem"'),
    ],
)
def test_tls_config_errors_name_the_line(certs: Certs, extra: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        options(block(certs, extra))
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"tls.conf:{line}:"), str(exc.value)


def test_tls_config_unusable_files(certs: Certs, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (f'cert_file: "{tmp_path}/missing.pem"\n  key_file: "{certs.server_key}"', 4,
         "No such file or directory"),
        (f'cert_file: "{garbage}"\n  key_file: "{certs.server_key}"', 4,
         "no PEM certificate or key in it"),
        (f'cert_file: "{certs.server_cert}"\n  key_file: "{certs.client_key}"', 4,
         "key values mismatch"),
        (f'cert_file: "{certs.server_cert}"\n  key_file: "{certs.server_key}"\n'
         f'  ca_file: "{garbage}"', 6, f'tls ca_file: cannot load "{garbage}"'),
    ]  # fmt: skip
    for body, line, message in cases:
        with pytest.raises(ConfigError) as exc:
            options("port: 1\n\ntls {\n  " + body + "\n}\n")
        assert message in str(exc.value), str(exc.value)
        assert str(exc.value).startswith(f"tls.conf:{line}:"), str(exc.value)


def test_tls_config_missing_files_named_like_nats_server(certs: Certs) -> None:
    for body, message in (
        (f'cert_file: "{certs.server_cert}"', "missing 'key_file' in TLS configuration"),
        (f'key_file: "{certs.server_key}"', "missing 'cert_file' in TLS configuration"),
        ("verify: true", "TLS Server certificate must be present and valid"),
    ):
        with pytest.raises(OptionsError, match=message):
            options("tls {\n  " + body + "\n}\n")


def test_tls_flags_replace_the_files_and_keep_the_rest(certs: Certs) -> None:
    base = {"tls": TLSConfig(cert_file="a", key_file="b", ca_file="c", timeout=5.0)}
    assert apply_tls_flags(base, False, None, None, None, False) is base
    fields = apply_tls_flags(
        base, True, str(certs.server_cert), str(certs.server_key), str(certs.ca), True
    )
    assert fields["tls"] == TLSConfig(
        cert_file=str(certs.server_cert),
        key_file=str(certs.server_key),
        ca_file=str(certs.ca),
        verify=True,
        timeout=5.0,
    )
    # --tls alone: nats-server asks for the certificate.
    with pytest.raises(OptionsError, match="TLS Server certificate must be present"):
        validate(Options(**apply_tls_flags({}, True, None, None, None, False)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r'--tlscert: cannot read "/nonexistent\.pem"'):
        apply_tls_flags({}, True, "/nonexistent.pem", str(certs.server_key), None, False)


def test_tls_server_context(certs: Certs, tmp_path: Path) -> None:
    plain = server_context(
        TLSConfig(cert_file=str(certs.server_cert), key_file=str(certs.server_key))
    )
    assert plain.verify_mode == ssl.CERT_NONE
    assert plain.minimum_version == ssl.TLSVersion.TLSv1_2
    verifying = server_context(
        TLSConfig(
            cert_file=str(certs.server_cert),
            key_file=str(certs.server_key),
            ca_file=str(certs.ca),
            verify=True,
            min_version="1.3",
        )
    )
    assert verifying.verify_mode == ssl.CERT_REQUIRED
    assert verifying.minimum_version == ssl.TLSVersion.TLSv1_3
    missing = tmp_path / "gone.pem"
    with pytest.raises(TLSConfigError, match=r"cert_file, key_file.*No such file"):
        server_context(TLSConfig(cert_file=str(missing), key_file=str(certs.server_key)))
