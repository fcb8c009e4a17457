"""Authentication (accounts-and-security.md §1, protocol.md §1 rule 4, §11, capture 19.7):
token, user/password (plain and bcrypt), users list, no_auth_user, the auth timeout and
the --auth/--user/--pass flags. The same config file is given to both servers with -c.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import nats
import nats.errors
import pytest

from tests.helpers.broker import Broker, raw_connect, raw_connect_on_shard, run_broker, unique
from tests.helpers.wait import check_for
from tests.helpers.wire import INFO_RE, OK_RE, PONG_RE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"
AUTH_TIMEOUT = b"-ERR 'Authentication Timeout'\r\n"
BCRYPT_PASSWORD = "bcrypt-secret"
BCRYPT_HASH = bcrypt.hashpw(BCRYPT_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

USERS_CONF = f"""
authorization {{
  timeout: 1
  users: [
    {{user: alice, password: apass}}
    {{user: bob, password: "{BCRYPT_HASH}"}}
  ]
}}
"""


@contextlib.contextmanager
def broker_with(tmp_path: Path, text: str, *flags: str) -> Iterator[Broker]:
    conf = tmp_path / f"{unique('auth')}.conf"
    conf.write_text(text)
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("-c", str(conf), *flags)) as b:
        yield b


async def roundtrip(url: str, **kwargs: object) -> None:
    """Connect with nats-py, see one message through, close."""
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5, **kwargs)
    try:
        subject = unique("auth")
        sub = await nc.subscribe(subject)
        await nc.flush()
        await nc.publish(subject, b"hi")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"hi"
    finally:
        await nc.close()


async def refused(url: str, **kwargs: object) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(repr(exc))

    try:
        nc = await nats.connect(
            url, allow_reconnect=False, connect_timeout=5, error_cb=on_error, **kwargs
        )
    except (nats.errors.Error, OSError) as exc:
        # nats-py raises nats.errors.Error("nats: 'Authorization Violation'") from connect.
        errors.append(repr(exc))
    else:
        await nc.close()
        raise AssertionError(f"connected to {url} with {kwargs}")
    assert any(
        "AuthorizationError" in e or "authorization violation" in e.lower() for e in errors
    ), errors
    # nats-py leaves the refused connection's socket for the garbage collector.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def url_with(broker: Broker, userinfo: str) -> str:
    return f"nats://{userinfo}@127.0.0.1:{broker.port}"


# -- nats-py, good and bad credentials ---------------------------------------------------


async def test_auth_token(tmp_path: Path) -> None:
    with broker_with(tmp_path, 'authorization { token: "s3cr3t" }\n') as broker:
        with raw_connect(broker) as client:
            assert client.info["auth_required"] is True
        await roundtrip(broker.url, token="s3cr3t")
        await refused(broker.url, token="wrong")
        await refused(broker.url)


async def test_auth_single_user_plain_and_bcrypt(tmp_path: Path) -> None:
    with broker_with(tmp_path, "authorization { user: a, password: b }\n") as broker:
        await roundtrip(url_with(broker, "a:b"))
        await refused(url_with(broker, "a:x"))
        await refused(url_with(broker, "x:b"))
        await refused(broker.url)
    text = f'authorization {{ user: a, password: "{BCRYPT_HASH}" }}\n'
    with broker_with(tmp_path, text) as broker:
        await roundtrip(broker.url, user="a", password=BCRYPT_PASSWORD)
        await refused(broker.url, user="a", password=BCRYPT_HASH)


async def test_auth_users_list(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker:
        await roundtrip(url_with(broker, "alice:apass"))
        await roundtrip(broker.url, user="bob", password=BCRYPT_PASSWORD)
        await refused(broker.url, user="alice", password=BCRYPT_PASSWORD)
        await refused(url_with(broker, "carol:apass"))
        await refused(broker.url)


# -- exact bytes -------------------------------------------------------------------------


def test_auth_bad_password_exact_bytes(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        assert client.info["auth_required"] is True
        client.send(b'CONNECT {"verbose":false,"user":"alice","pass":"x"}\r\nPING\r\n')
        assert client.expect_closed() == AUTH_VIOLATION


def test_auth_good_password_exact_bytes(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.send(b'CONNECT {"verbose":true,"user":"alice","pass":"apass"}\r\nPING\r\n')
        client.expect(OK_RE)
        client.expect(PONG_RE)
        assert client.is_open()


@pytest.mark.parametrize(
    "first",
    [b"PING\r\n", b"SUB foo 1\r\n", b"PUB foo 1\r\nx\r\n", b"\r\n", b"P"],
    ids=["ping", "sub", "pub", "empty-line", "partial"],
)
def test_auth_first_op_must_be_connect(tmp_path: Path, first: bytes) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.send(first)
        assert client.expect_closed() == AUTH_VIOLATION


def test_auth_connect_split_over_reads_is_accepted(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.send_bytewise(b'CONNECT {"verbose":false,"user":"alice","pass":"apass"}\r\n')
        client.send(b"PING\r\n")
        client.expect(PONG_RE)


def test_auth_timeout(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        # timeout: 1 in the file; nothing is sent, the server gives up by itself.
        data = check_for(5.0, 0.05, lambda: client.expect_closed(timeout=0.05))
        assert data == AUTH_TIMEOUT


def test_auth_timeout_is_cancelled_by_connect(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.handshake(user="alice", **{"pass": "apass"})
        # Past the 1 s auth timeout, the connection is still served.
        with pytest.raises(AssertionError):
            client.expect_closed(timeout=1.5)
        assert client.is_open()


def test_auth_repeated_connect_is_reauthenticated(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.handshake(user="alice", **{"pass": "apass"})
        client.send(b'CONNECT {"verbose":false,"user":"alice","pass":"nope"}\r\n')
        assert client.expect_closed() == AUTH_VIOLATION


# -- no_auth_user ----------------------------------------------------------------------------


async def test_auth_no_auth_user(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF + "no_auth_user: alice\n") as broker:
        with raw_connect(broker) as client:
            assert "auth_required" not in client.info
            # No CONNECT at all: the first op logs the client in as alice.
            client.send(b"PING\r\n")
            client.expect(PONG_RE)
        with raw_connect(broker) as client:
            client.handshake(protocol=1)
            assert client.is_open()
        await roundtrip(broker.url)
        await roundtrip(broker.url, user="bob", password=BCRYPT_PASSWORD)
        await refused(url_with(broker, "bob:wrong"))


# -- flags ---------------------------------------------------------------------------------------


async def test_auth_token_flag(tmp_path: Path) -> None:
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=("--auth", "flagtok")) as broker:
        await roundtrip(broker.url, token="flagtok")
        await refused(broker.url, token="nope")


async def test_auth_user_flags_win_over_the_file(tmp_path: Path) -> None:
    text = "authorization { user: a, password: filepass }\n"
    with broker_with(tmp_path, text, "--user", "u", "--pass", "flagpass") as broker:
        await roundtrip(url_with(broker, "u:flagpass"))
        await refused(url_with(broker, "a:filepass"))


async def test_auth_credentials_ignored_without_auth(broker: Broker) -> None:
    with raw_connect(broker) as client:
        assert "auth_required" not in client.info
    await roundtrip(url_with(broker, "who:ever"))


def test_auth_info_unchanged_after_connect(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        client.connect_proto(verbose=False, protocol=1, user="alice", **{"pass": "apass"})
        client.send(b"PING\r\n")
        client.expect(PONG_RE)
        m = client.expect(INFO_RE)
        assert b'"connect_info":true' in m.group(0)


def test_auth_timeout_applies_with_no_auth_user(tmp_path: Path) -> None:
    # nats-server arms the auth timer even when no_auth_user hides auth_required.
    with (
        broker_with(tmp_path, USERS_CONF + "no_auth_user: alice\n") as broker,
        raw_connect(broker) as client,
    ):
        data = check_for(5.0, 0.05, lambda: client.expect_closed(timeout=0.05))
        assert data == AUTH_TIMEOUT


def test_auth_bcrypt_check_does_not_stall_the_worker(tmp_path: Path) -> None:
    # A deliberately slow hash (cost 13, most of a second): a CONNECT with a wrong
    # password must not hold up another client on the same worker meanwhile.
    slow_hash = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()
    conf = (
        f'authorization {{ timeout: 30, users: [ {{user: slow, password: "{slow_hash}"}}, '
        "{user: fast, password: fastpass} ] }\n"
    )
    with broker_with(tmp_path, conf) as broker:
        shard = 1 if broker.is_shardbroker else None
        other = raw_connect_on_shard(broker, shard) if shard else raw_connect(broker)
        checked = raw_connect_on_shard(broker, shard) if shard else raw_connect(broker)
        with other, checked:
            other.send(b'CONNECT {"verbose":false,"user":"fast","pass":"fastpass"}\r\nPING\r\n')
            other.expect(PONG_RE)
            checked.send(b'CONNECT {"verbose":false,"user":"slow","pass":"wrong"}\r\nPING\r\n')
            other.send(b"PING\r\n")
            other.expect(PONG_RE)
            # The check is still running: nothing has come back on the checked
            # connection yet (a check on the loop would have answered before the PONG).
            checked.assert_nothing(timeout=0.05)
            assert checked.expect_closed(timeout=20) == AUTH_VIOLATION


def test_auth_bcrypt_login_then_pipelined_ops(tmp_path: Path) -> None:
    # What follows the CONNECT in the same write waits for the check, then runs.
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        subject = unique()
        client.send(
            b'CONNECT {"verbose":false,"user":"bob","pass":"' + BCRYPT_PASSWORD.encode()
            + b'"}\r\nSUB ' + subject.encode() + b" 1\r\nPUB " + subject.encode()
            + b" 2\r\nhi\r\nPING\r\n"
        )  # fmt: skip
        assert client.read_msg().payload == b"hi"
        client.expect(PONG_RE)


NKEY_SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
NKEY_PUBLIC = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"
OTHER_NKEY_SEED = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y"


async def test_auth_nkey_user_signs_the_nonce(tmp_path: Path) -> None:
    conf = f"authorization {{ users: [ {{nkey: {NKEY_PUBLIC}}}, {{user: a, password: b}} ] }}\n"
    with broker_with(tmp_path, conf) as broker:
        with raw_connect(broker) as client:
            nonce = client.info["nonce"]
            assert isinstance(nonce, str) and len(nonce) == 15
        with raw_connect(broker) as second:
            assert second.info["nonce"] != nonce  # fresh per connection
        await roundtrip(broker.url, nkeys_seed_str=NKEY_SEED)
        await refused(broker.url, nkeys_seed_str=OTHER_NKEY_SEED)
        await roundtrip(url_with(broker, "a:b"))


def test_auth_nkey_bad_signature_exact_bytes(tmp_path: Path) -> None:
    conf = f"authorization {{ users: [ {{nkey: {NKEY_PUBLIC}}} ] }}\n"
    with broker_with(tmp_path, conf) as broker, raw_connect(broker) as client:
        client.send(
            b'CONNECT {"verbose":false,"nkey":"' + NKEY_PUBLIC.encode() + b'","sig":"AAAA"}\r\n'
        )
        assert client.expect_closed() == AUTH_VIOLATION


def test_auth_no_nonce_without_nkey_users(tmp_path: Path) -> None:
    with broker_with(tmp_path, USERS_CONF) as broker, raw_connect(broker) as client:
        assert "nonce" not in client.info
