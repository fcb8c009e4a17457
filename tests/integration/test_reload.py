"""Hot reload (reference config.md §5): SIGHUP, `shardbroker reload` and `--signal reload`.

Each test starts a broker on a config file, rewrites the file and reloads. A reload is
over when the broker logs `Reloaded server configuration` (every shard applied it) or
`Failed to reload server configuration`; tests wait for that line with a deadline.
With SHARDBROKER_TEST_TARGET=nats-server the same scenarios run against the real
server (checked there: a removed user's connection is closed without an -ERR, a changed
password gets -ERR 'Authorization Violation', a subscription a reload denies is removed
with an -ERR naming it and its sid, the connection stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.broker import (
    Broker,
    NatsClients,
    barrier,
    is_shardbroker_target,
    nats_server_binary,
    raw_connect,
    raw_connect_on_shard,
    run_broker,
    shardbroker_command,
    unique,
)
from tests.helpers.wait import check_for
from tests.helpers.wire import WireClient, err_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RELOADED = "Reloaded server configuration"
FAILED = "Failed to reload server configuration"
RELOAD_TIMEOUT = 15.0
PONG_OR_MAX_CONN = re.compile(rb"PONG\r\n|-ERR 'maximum connections exceeded'\r\n")

USERS_AB = """
authorization {
  users: [
    {user: a, password: pa}
    {user: b, password: pb}
  ]
}
"""


def users_conf(*entries: str, extra: str = "") -> str:
    return "authorization {\n  users: [\n    " + "\n    ".join(entries) + "\n  ]\n}\n" + extra


class Reloadable:
    """A running broker and its config file; `reload(text)` rewrites the file, signals
    the broker and waits for its verdict in the log."""

    def __init__(self, broker: Broker, conf: Path) -> None:
        self.broker = broker
        self.conf = conf

    def _counts(self) -> tuple[int, int]:
        text = self.broker.log_text()
        return text.count(RELOADED), text.count(FAILED)

    def reload(self, text: str | None = None, ok: bool = True, how: str = "hup") -> str:
        """Returns the log written since the signal."""
        if text is not None:
            self.conf.write_text(text)
        before = self._counts()
        start = len(self.broker.log_text())
        self.signal(how)

        def verdict() -> bool:
            now = self._counts()
            return now[0] > before[0] or now[1] > before[1]

        check_for(RELOAD_TIMEOUT, 0.02, verdict)
        written = self.broker.log_text()[start:]
        if ok:
            assert self._counts()[1] == before[1], f"reload refused:\n{written}"
        else:
            assert self._counts()[0] == before[0], f"reload accepted:\n{written}"
        return written

    def signal(self, how: str) -> None:
        broker = self.broker
        if how == "hup":
            os.kill(broker.pid, signal.SIGHUP)
            return
        if broker.is_shardbroker:
            argv = {
                "cli-port": shardbroker_command("reload", "-p", str(broker.port)),
                "cli-pid": shardbroker_command("reload", str(broker.pid)),
                "serve-signal": shardbroker_command("serve", "--signal", f"reload={broker.pid}"),
            }[how]
        else:
            argv = [nats_server_binary(), "--signal", f"reload={broker.pid}"]
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")


@contextlib.contextmanager
def reloadable(tmp_path: Path, text: str, workers: int = 3, **kwargs: Any) -> Iterator[Reloadable]:
    conf = tmp_path / "broker.conf"
    conf.write_text(text)
    with run_broker(
        workers=workers, tmp_dir=tmp_path, extra_args=("-c", str(conf)), **kwargs
    ) as broker:
        yield Reloadable(broker, conf)


@contextlib.contextmanager
def login(
    broker: Broker, shard: int, user: str, password: str, **opts: Any
) -> Iterator[WireClient]:
    with raw_connect_on_shard(broker, shard) as client:
        client.handshake(user=user, **{"pass": password}, **opts)
        yield client


def refused(broker: Broker, user: str, password: str) -> bool:
    """Does a CONNECT with these credentials get the Authorization Violation?"""
    with raw_connect_on_shard(broker, 1) as client:
        client.connect_proto(user=user, **{"pass": password}, verbose=False, pedantic=False)
        client.send(b"PING\r\n")
        data = client.expect_closed()
        return data.startswith(err_line("Authorization Violation"))


def pub(subject: str, payload: bytes = b"x") -> bytes:
    return f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n"


def assert_alive(client: WireClient) -> None:
    """The connection works: it gets its own message back through the broker."""
    subject = unique("alive")
    client.send(f"SUB {subject} 99\r\n".encode())
    assert client.ping_barrier() == b""
    client.send(pub(subject, b"ok"))
    msg = client.read_msg()
    assert (msg.subject, msg.sid, msg.payload) == (subject, "99", b"ok")
    assert client.ping_barrier() == b""
    client.send(b"UNSUB 99\r\n")


# -- users -------------------------------------------------------------------------------


def test_reload_adds_a_user(tmp_path: Path) -> None:
    with reloadable(tmp_path, users_conf("{user: a, password: pa}")) as r:
        assert refused(r.broker, "b", "pb")
        with login(r.broker, 2, "a", "pa") as a:
            r.reload(users_conf("{user: a, password: pa}", "{user: b, password: pb}"))
            for shard in r.broker.shard_ids:
                with login(r.broker, shard, "b", "pb") as b:
                    assert_alive(b)
            assert_alive(a)  # undisturbed


def test_reload_removes_a_user_and_closes_its_connections(tmp_path: Path) -> None:
    with reloadable(tmp_path, USERS_AB) as r:
        with login(r.broker, 1, "a", "pa") as a, login(r.broker, 2, "b", "pb") as b:
            with login(r.broker, 3, "b", "pb") as b3:
                r.reload(users_conf("{user: a, password: pa}"))
                # nats-server closes them without an -ERR (the user no longer exists).
                assert b.expect_closed() == b""
                assert b3.expect_closed() == b""
            assert_alive(a)
        assert refused(r.broker, "b", "pb")


def test_reload_changed_password_disconnects_with_authorization_violation(
    tmp_path: Path,
) -> None:
    with reloadable(tmp_path, USERS_AB) as r:
        with login(r.broker, 1, "a", "pa") as a, login(r.broker, 2, "b", "pb") as b:
            r.reload(users_conf("{user: a, password: pa}", "{user: b, password: changed}"))
            assert b.expect_closed() == err_line("Authorization Violation")
            assert_alive(a)
        assert refused(r.broker, "b", "pb")
        with login(r.broker, 3, "b", "changed") as b:
            assert_alive(b)


def test_reload_token_change(tmp_path: Path) -> None:
    with (
        reloadable(tmp_path, "authorization { token: t1 }\n") as r,
        raw_connect_on_shard(r.broker, 2) as client,
    ):
        client.handshake(auth_token="t1")
        r.reload("authorization { token: t1, timeout: 3 }\n")
        assert_alive(client)  # same token: untouched
        r.reload("authorization { token: t2 }\n")
        assert client.expect_closed() == err_line("Authorization Violation")


# -- permissions -------------------------------------------------------------------------


def sub_removed(subject: str, sid: str, queue: str | None = None) -> bytes:
    text = f'Permissions Violation for Subscription to "{subject}"'
    if queue is not None:
        text += f' using queue "{queue}"'
    return err_line(f'{text} (sid "{sid}")')


PERMS_BEFORE = users_conf(
    "{user: pub, password: p}",
    "{user: watch, password: p}",
    '{user: sub, password: p, permissions: { subscribe: "orders.>" }}',
)
PERMS_AFTER = users_conf(
    "{user: pub, password: p}",
    "{user: watch, password: p}",
    "{user: sub, password: p, permissions: { subscribe: {"
    ' allow: "orders.>", deny: ["orders.secret", "orders.q grp"] } }}',
)


def test_reload_tightened_permission_applies_to_existing_subscriptions(tmp_path: Path) -> None:
    with reloadable(tmp_path, PERMS_BEFORE) as r:
        broker = r.broker
        with login(broker, 1, "pub", "p") as p, login(broker, 2, "sub", "p") as s:
            s.send(b"SUB orders.> 1\r\nSUB orders.secret 2\r\nSUB orders.q grp 3\r\n")
            s.send(b"SUB orders.x 4\r\n")
            assert s.ping_barrier() == b""
            p.send(pub("orders.secret", b"before"))
            assert {s.read_msg().sid for _ in range(2)} == {"1", "2"}
            assert s.ping_barrier() == b""

            r.reload(PERMS_AFTER)
            # The subscriptions now denied are gone, each with its -ERR; the
            # connection stays.
            # (in no particular order with nats-server)
            errors = s.ping_barrier().splitlines(keepends=True)
            assert sorted(errors) == [
                sub_removed("orders.q", "3", "grp"),
                sub_removed("orders.secret", "2"),
            ]
            # The wildcard subscription no longer receives the denied subject; the
            # publisher (on another worker) is not told anything.
            p.send(pub("orders.secret", b"after") + pub("orders.q") + pub("orders.x", b"ok"))
            assert p.ping_barrier() == b""
            got = [(m.subject, m.sid) for m in (s.read_msg(), s.read_msg(), s.read_msg())]
            assert sorted(got) == [("orders.q", "1"), ("orders.x", "1"), ("orders.x", "4")]
            assert s.ping_barrier() == b""
            # New subscriptions meet the new rules too.
            s.send(b"SUB orders.secret 5\r\n")
            assert s.ping_barrier() == err_line(
                'Permissions Violation for Subscription to "orders.secret"'
            )


async def test_reload_unaffected_clients_lose_nothing(tmp_path: Path) -> None:
    """A steady stream between two unaffected users on different workers goes on
    through reloads: every message arrives, in order, on the same connections."""
    count = 3000
    with reloadable(tmp_path, PERMS_BEFORE) as r:
        async with NatsClients(r.broker) as clients:
            publisher = await clients.on_shard(1, user="pub", password="p")
            watcher = await clients.on_shard(3, user="watch", password="p")
            subject = unique("steady")
            sub = await watcher.subscribe(subject)
            await barrier(watcher)

            async def publish() -> None:
                for i in range(count):
                    await publisher.publish(subject, str(i).encode())
                    if i % 100 == 0:
                        await asyncio.sleep(0)
                await barrier(publisher)

            task = asyncio.create_task(publish())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, r.reload, PERMS_AFTER)
            await loop.run_in_executor(None, r.reload, PERMS_BEFORE + "debug: false\n")
            await task
            got = [int((await sub.next_msg(timeout=10)).data) for _ in range(count)]
            assert got == list(range(count))
            assert publisher.is_connected and watcher.is_connected


# -- refused reloads -----------------------------------------------------------------------


def test_reload_with_a_non_reloadable_change_is_refused_whole(tmp_path: Path) -> None:
    with (
        reloadable(tmp_path, users_conf("{user: a, password: pa}")) as r,
        login(r.broker, 1, "a", "pa") as a,
    ):
        written = r.reload(
            users_conf("{user: a, password: pa}", "{user: b, password: pb}")
            + "max_pending: 10MB\n",
            ok=False,
        )
        assert (
            f"{FAILED}: config reload not supported for MaxPending: "
            "old=67108864, new=10485760" in written
        )
        # Nothing of it applied: the new user is still unknown.
        assert refused(r.broker, "b", "pb")
        assert_alive(a)
        # A later good reload works.
        r.reload(users_conf("{user: a, password: pa}", "{user: b, password: pb}"))
        with login(r.broker, 2, "b", "pb") as b:
            assert_alive(b)


@pytest.mark.parametrize(
    ("text", "expected", "nats_expected"),
    [
        # (shardbroker names file, line and key; nats-server not always)
        ("authorization { users: [ {user: a, password: pa} ]\n", "broker.conf:2:", "line 2"),
        ("authorization { users: [ {user: a, password: pa} ] }\nbogus: 1\n", "bogus", "bogus"),
        ("include missing.conf\n", "missing.conf", "missing.conf"),
        ('max_payload: "abc"\n', "broker.conf:1:1: max_payload", "broker.conf:1:"),
        (
            "tls { cert_file: /nonexistent.pem, key_file: /x.key }\n",
            "nonexistent.pem",
            "nonexistent.pem",
        ),
    ],
)
def test_reload_bad_file_is_refused_and_broker_keeps_running(
    tmp_path: Path, text: str, expected: str, nats_expected: str
) -> None:
    good = users_conf("{user: a, password: pa}")
    with reloadable(tmp_path, good) as r, login(r.broker, 2, "a", "pa") as a:
        written = r.reload(text, ok=False)
        line = next(ln for ln in written.splitlines() if FAILED in ln)
        assert (expected if r.broker.is_shardbroker else nats_expected) in line, line
        assert r.broker.proc.poll() is None
        assert_alive(a)
        r.reload(good + "debug: true\n")
        assert_alive(a)


# -- live limits and logging ------------------------------------------------------------


def test_reload_max_payload_applies_to_live_connections(tmp_path: Path) -> None:
    with reloadable(tmp_path, "max_payload: 1000\n") as r:
        with raw_connect_on_shard(r.broker, 2) as client:
            client.handshake()
            client.send(pub("big", b"x" * 600))
            assert client.ping_barrier() == b""
            r.reload("max_payload: 500\n")
            client.send(pub("big", b"x" * 600))
            assert client.expect_closed() == err_line("Maximum Payload Violation")
        with raw_connect_on_shard(r.broker, 1) as client:
            assert client.info["max_payload"] == 500


def test_reload_turns_debug_logging_on(tmp_path: Path) -> None:
    with reloadable(tmp_path, "debug: false\n") as r:
        assert "[DBG]" not in r.broker.log_text()
        r.reload("debug: true\n")
        for shard in r.broker.shard_ids:
            with raw_connect_on_shard(r.broker, shard) as client:
                client.handshake()
        check_for(10, 0.05, lambda: "[DBG]" in r.broker.log_text())


# -- how a reload is asked for ----------------------------------------------------------


@pytest.mark.parametrize("how", ["cli-port", "cli-pid", "serve-signal"])
def test_reload_requested_from_the_command_line(tmp_path: Path, how: str) -> None:
    with reloadable(tmp_path, users_conf("{user: a, password: pa}"), workers=2) as r:
        if how != "cli-port" and not r.broker.is_shardbroker:
            pytest.skip("one nats-server --signal run is enough")
        r.reload(users_conf("{user: a, password: pa}", "{user: b, password: pb}"), how=how)
        with login(r.broker, 2, "b", "pb") as b:
            assert_alive(b)


def test_reload_without_config_file_is_refused(tmp_path: Path) -> None:
    with run_broker(workers=2, tmp_dir=tmp_path) as broker:
        r = Reloadable(broker, tmp_path / "unused.conf")
        written = r.reload(ok=False)
        assert "can only reload config when a file is provided using -c or --config" in written


# -- shardbroker specifics -----------------------------------------------------------------


def test_reload_restarted_worker_boots_with_reloaded_options(tmp_path: Path) -> None:
    if not is_shardbroker_target():
        pytest.skip("worker processes are shardbroker's")
    with reloadable(tmp_path, users_conf("{user: a, password: pa}"), workers=2) as r:
        broker = r.broker
        r.reload(users_conf("{user: a, password: pa}", "{user: b, password: pb}"))
        old = broker.refresh_workers()[1]
        old.kill()
        check_for(15, 0.05, lambda: "worker shard 1 restarted" in broker.log_text())
        with login(broker, 1, "b", "pb") as b:
            assert_alive(b)


async def test_reload_jetstream_limits_reach_the_storage_shard(tmp_path: Path) -> None:
    if not is_shardbroker_target():
        pytest.skip("nats-server reports the account limits of the global account differently")
    conf = "jetstream { max_memory_store: 1MB, max_file_store: 10MB }\n"
    with reloadable(tmp_path, conf, workers=2, jetstream=True) as r:
        async with NatsClients(r.broker) as clients:
            nc = await clients.on_shard(1)
            js = nc.jetstream()
            info = await js.account_info()
            assert (info.limits.max_memory, info.limits.max_storage) == (1 << 20, 10 << 20)
            r.reload("jetstream { max_memory_store: 2MB, max_file_store: 10MB }\n")
            info = await js.account_info()
            assert info.limits.max_memory == 2 << 20
            written = r.reload(
                "jetstream { max_memory_store: 1MB, max_file_store: 10MB }\n", ok=False
            )
            assert "JetStreamMaxMemory" in written


def test_reload_keeps_command_line_flags_winning(tmp_path: Path) -> None:
    """nats-server re-applies its flags after every reload; so does shardbroker."""
    if not is_shardbroker_target():
        pytest.skip("run_broker gives nats-server its limits in a config file, not as flags")
    conf = tmp_path / "flags.conf"
    conf.write_text("max_payload: 1000\n")
    with run_broker(
        workers=2, tmp_dir=tmp_path, limits={"max_payload": 2000}, extra_args=("-c", str(conf))
    ) as broker:
        r = Reloadable(broker, conf)
        r.reload("max_payload: 500\ndebug: true\n")
        with raw_connect_on_shard(broker, 1) as client:
            assert client.info["max_payload"] == 2000
            client.handshake()
            client.send(pub("p", b"x" * 1500))
            assert client.ping_barrier() == b""


def test_reload_lower_max_connections_closes_the_excess(tmp_path: Path) -> None:
    with reloadable(tmp_path, "max_connections: 10\n") as r:
        broker = r.broker
        clients = [raw_connect_on_shard(broker, 1 + i % 3) for i in range(6)]
        try:
            for client in clients:
                client.handshake()
            r.reload("max_connections: 4\n")
            closed = 0
            for client in clients:
                client.send(b"PING\r\n")
                data = client.expect(PONG_OR_MAX_CONN).group(0)
                if data.startswith(b"-ERR"):
                    client.expect_closed()
                    closed += 1
            assert closed == 2
            # Full: a new client is turned away until the limit goes up again.
            with raw_connect(broker) as extra:
                assert extra.expect_closed().startswith(err_line("maximum connections exceeded"))
            r.reload("max_connections: 10\n")
            with raw_connect(broker) as extra:
                extra.handshake()
                assert_alive(extra)
        finally:
            for client in clients:
                client.close()


# -- accounts ----------------------------------------------------------------------------

ACCOUNTS_V1 = """
accounts {
  A: { users: [ {user: a, password: pa} ], exports: [ {stream: "ev.>"} ] }
  B: { users: [ {user: b, password: pb} ] }
  C: { users: [ {user: c, password: pc} ] }
}
"""
ACCOUNTS_V2 = """
accounts {
  A: {
    users: [ {user: a, password: pa} ]
    exports: [ {stream: "ev.>"} ]
    limits: { max_connections: 10 }
  }
  C: {
    users: [ {user: c, password: pc} ]
    imports: [ {stream: {account: A, subject: "ev.>"}, prefix: "from_a"} ]
  }
  D: { users: [ {user: d, password: pd} ] }
}
"""


def test_reload_accounts_added_removed_and_imports_changed(tmp_path: Path) -> None:
    """A reload removes account B (its clients are closed), adds D and a stream import
    into C; clients connected before the reload publish and receive by the new imports."""
    with reloadable(tmp_path, ACCOUNTS_V1) as r:
        with (
            login(r.broker, 1, "a", "pa") as a,
            login(r.broker, 2, "b", "pb") as b,
            login(r.broker, 3, "c", "pc") as c,
        ):
            c.send(b"SUB from_a.ev.> 1\r\n")
            assert c.ping_barrier() == b""
            a.send(pub("ev.before"))
            assert a.ping_barrier() == b""
            assert c.ping_barrier() == b""  # no import yet: nothing for C
            r.reload(ACCOUNTS_V2)
            assert b.expect_closed() == b""
            a.send(pub("ev.after", b"new"))
            assert a.ping_barrier() == b""
            msg = c.read_msg()
            assert (msg.subject, msg.payload) == ("from_a.ev.after", b"new")
            assert_alive(a)
            assert_alive(c)
        assert refused(r.broker, "b", "pb")
        for shard in r.broker.shard_ids:
            with login(r.broker, shard, "d", "pd") as d:
                assert_alive(d)
