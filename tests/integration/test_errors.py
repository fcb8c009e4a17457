"""Every -ERR and silent close of protocol.md §11 / capture 19.6 that applies without
auth or permissions, plus bad input. Each fatal case runs once on every worker, and an
already-connected probe client on each worker must still work afterwards: a broken
client harms nobody else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.broker import (
    Broker,
    ShardProbes,
    raw_connect,
    raw_connect_on_shard,
    unique,
)
from tests.helpers.wait import check_for
from tests.helpers.wire import OK_RE, WireClient, WireError, err_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UPO = "Unknown Protocol Operation"
PLAIN: dict[str, Any] = {}  # handshake() with defaults: verbose false, pedantic false
HEADERS: dict[str, Any] = {"headers": True}
NO_CONNECT = None  # send the bytes right after INFO


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    err: str | None  # the -ERR text before the close, None for a silent close
    connect: dict[str, Any] | None = None

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


FATAL_CASES = [
    # -ERR 'Unknown Protocol Operation', close
    Case("unknown_op", b"FOO bar\r\n", UPO, PLAIN),
    Case("misspelled_op", b"PUBX foo 1\r\n", UPO, PLAIN),
    Case("client_msg", b"MSG foo 1 2\r\nhi\r\n", UPO, PLAIN),
    Case("client_hmsg", b"HMSG foo 1 2 2\r\nhi\r\n", UPO, HEADERS),
    Case("client_rs_plus", b"RS+ $G foo\r\n", UPO, PLAIN),
    Case("client_ls_plus", b"LS+ foo\r\n", UPO, PLAIN),
    Case("client_a_plus", b"A+ foo\r\n", UPO, PLAIN),
    Case("unsub_without_space", b"UNSUB\r\n", UPO, PLAIN),
    Case("pub_without_space", b"PUB\r\n", UPO, PLAIN),
    Case("payload_longer_than_size", b"PUB foo 3\r\nabcd\r\n", UPO, PLAIN),
    Case("payload_bad_terminator", b"PUB foo 1\r\nx\n\r\n", UPO, PLAIN),
    Case("leading_whitespace", b" PUB foo 1\r\nx\r\n", UPO, PLAIN),
    Case("empty_line", b"\r\n", UPO, PLAIN),
    Case("binary_garbage", b"\x00\xff\x13garbage\r\n", UPO, PLAIN),
    Case("garbage_before_connect", b"\xff" * 100, UPO, NO_CONNECT),
    Case("long_garbage_without_newline", b"a" * 10000, UPO, PLAIN),
    # -ERR 'Maximum Payload Violation' on the control line, before any payload
    Case("max_payload_pub", b"PUB foo 1048577\r\n", "Maximum Payload Violation", PLAIN),
    Case("max_payload_hpub", b"HPUB foo 10 1048577\r\n", "Maximum Payload Violation", HEADERS),
    # -ERR 'maximum control line exceeded'
    Case(
        "control_line_complete",
        b"SUB " + b"a" * 5000 + b" 1\r\n",
        "maximum control line exceeded",
        PLAIN,
    ),
    Case("control_line_partial", b"PUB " + b"a" * 5000, "maximum control line exceeded", PLAIN),
    Case(
        "control_line_one_over",
        b"SUB " + b"a" * 4095 + b" 1\r\n",
        "maximum control line exceeded",
        PLAIN,
    ),
    # CONNECT problems
    Case(
        "connect_protocol_2",
        b'CONNECT {"verbose":false,"protocol":2}\r\n',
        "invalid client protocol",
        NO_CONNECT,
    ),
    Case(
        "connect_protocol_negative",
        b'CONNECT {"verbose":false,"protocol":-1}\r\n',
        "invalid client protocol",
        NO_CONNECT,
    ),
    Case(
        "connect_no_responders_without_headers",
        b'CONNECT {"verbose":false,"no_responders":true}\r\n',
        "no responders requires headers support",
        NO_CONNECT,
    ),
    Case(
        "connect_obsolete_account",
        b'CONNECT {"verbose":false,"account":"A"}\r\n',
        "Authorization Violation",
        NO_CONNECT,
    ),
    # Silent closes: bad argument counts, bad sizes, bad CONNECT JSON, client -ERR
    Case("pub_one_arg", b"PUB foo\r\n", None, PLAIN),
    Case("pub_empty_args", b"PUB \r\n", None, PLAIN),
    Case("pub_four_args", b"PUB a b c d\r\n", None, PLAIN),
    Case("sub_one_arg", b"SUB foo\r\n", None, PLAIN),
    Case("sub_four_args", b"SUB foo q1 q2 1\r\n", None, PLAIN),
    Case("unsub_three_args", b"UNSUB 1 2 3\r\n", None, PLAIN),
    Case("pub_size_not_a_number", b"PUB foo x\r\n", None, PLAIN),
    Case("pub_size_plus", b"PUB foo +1\r\n", None, PLAIN),
    Case("pub_size_negative", b"PUB foo -1\r\n", None, PLAIN),
    Case("pub_size_hex", b"PUB foo 0x10\r\n", None, PLAIN),
    Case("pub_size_overflow", b"PUB foo 99999999999999999999\r\n", None, PLAIN),
    Case("pub_size_with_cr", b"PUB foo 1\r\r\n", None, PLAIN),
    Case("hpub_header_larger_than_total", b"HPUB foo 10 5\r\n", None, HEADERS),
    Case("hpub_bad_size", b"HPUB foo x 5\r\n", None, HEADERS),
    Case("hpub_without_headers", b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n", None, PLAIN),
    Case("connect_invalid_json", b"CONNECT {verbose:false}\r\n", None, NO_CONNECT),
    Case("connect_wrong_type", b'CONNECT {"verbose":"no"}\r\n', None, NO_CONNECT),
    Case("connect_trailing_garbage", b'CONNECT {"verbose":false} x\r\n', None, NO_CONNECT),
    Case("connect_without_json", b"CONNECT\r\n", None, NO_CONNECT),
    Case("client_err", b"-ERR 'x'\r\n", None, PLAIN),
]


def _open_offender(broker: Broker, shard: int, case: Case) -> WireClient:
    c = raw_connect_on_shard(broker, shard)
    if case.connect is not None:
        c.handshake(**case.connect)
    return c


@pytest.mark.parametrize("case", [c.param() for c in FATAL_CASES])
def test_errors_fatal(broker: Broker, case: Case) -> None:
    expected = err_line(case.err) if case.err is not None else b""
    with ShardProbes(broker) as probes:
        for shard in broker.shard_ids:
            with _open_offender(broker, shard, case) as c:
                c.send(case.data)
                assert c.expect_closed() == expected, f"offender on shard {shard}"
            probes.check()


def test_errors_max_payload_boundary_is_accepted(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        foo = unique()
        payload = b"z" * 1048576
        c.send(f"SUB {foo} 1\r\nPUB {foo} 1048576\r\n".encode() + payload + b"\r\n")
        msg = c.read_msg(timeout=10)
        assert msg.payload == payload
        assert c.ping_barrier() == b""


def test_errors_control_line_at_limit_is_accepted(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        # 4096 argument bytes after "SUB " is exactly max_control_line.
        c.send(b"SUB " + b"a" * 4094 + b" 1\r\n")
        assert c.ping_barrier() == b""


# -- non-fatal errors ---------------------------------------------------------------------


def test_errors_invalid_subject_is_not_fatal(broker: Broker) -> None:
    c = raw_connect_on_shard(broker, 1)
    p = raw_connect_on_shard(broker, 2)
    with c, p:
        c.handshake()
        p.handshake()
        t = unique()
        c.send(f"SUB {t}..bar 1\r\nSUB {t}.>.bar 2\r\nSUB .{t} 3\r\n".encode())
        c.expect(err_line("Invalid Subject") * 3)
        # `foo*` is a literal token and `>` alone is valid.
        c.send(f"SUB {t}* 4\r\nSUB > 5\r\n".encode())
        assert c.ping_barrier() == b""
        p.send(f"PUB {t}* 1\r\nx\r\n".encode())
        got = {c.read_msg().sid for _ in range(2)}
        assert got == {"4", "5"}
        assert c.ping_barrier() == b""


def test_errors_invalid_subject_verbose_gets_no_ok(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b'CONNECT {"verbose":true}\r\n')
        c.expect(OK_RE)
        c.send(b"SUB foo..bar 1\r\nSUB q _sys_ 2\r\n")
        c.expect(err_line("Invalid Subject"))
        c.expect(err_line('Permissions Violation for Subscription to "q" using queue "_sys_"'))
        assert c.ping_barrier() == b""


def test_errors_sys_queue_is_reserved(broker: Broker) -> None:
    c = raw_connect_on_shard(broker, 1)
    p = raw_connect_on_shard(broker, 2)
    with c, p:
        c.handshake()
        p.handshake()
        q = unique("q")
        sentinel = unique("end")
        c.send(f"SUB {q} _sys_ 1\r\nSUB {sentinel} 2\r\n".encode())
        c.expect(err_line(f'Permissions Violation for Subscription to "{q}" using queue "_sys_"'))
        assert c.ping_barrier() == b""
        p.send(f"PUB {q} 1\r\nx\r\nPUB {sentinel} 0\r\n\r\n".encode())
        assert c.read_msg().subject == sentinel  # nothing was subscribed


@pytest.mark.parametrize(
    ("subject", "reply", "err"),
    [
        ("foo", "$JS.ACK.x", 'Permissions Violation for Publish with Reply of "$JS.ACK.x"'),
        ("foo", "_R_.x", 'Permissions Violation for Publish with Reply of "_R_.x"'),
        ("foo", "_GR_.x", 'Permissions Violation for Publish with Reply of "_GR_.x"'),
        ("_GR_.abc.def", None, 'Permissions Violation for Publish to "_GR_.abc.def"'),
        ("$NRG.x", None, 'Permissions Violation for Publish to "$NRG.x"'),
    ],
)
@pytest.mark.parametrize("op", ["PUB", "HPUB"])
def test_errors_reserved_publish_subjects(
    broker: Broker, subject: str, reply: str | None, err: str, op: str
) -> None:
    c = raw_connect_on_shard(broker, 1)
    watcher = raw_connect_on_shard(broker, 2)
    with c, watcher:
        c.send(b'CONNECT {"verbose":true,"pedantic":false,"headers":true}\r\n')
        c.expect(OK_RE)
        watcher.handshake()
        sentinel = unique("end")
        watcher.send(f"SUB > 1\r\nSUB {sentinel} 2\r\n".encode())
        assert watcher.ping_barrier() == b""
        c.send(b"SUB > 9\r\n")
        c.expect(OK_RE)
        mid = f" {reply}" if reply else ""
        if op == "PUB":
            c.send(f"PUB {subject}{mid} 1\r\nx\r\n".encode())
        else:
            c.send(f"HPUB {subject}{mid} 12 13\r\nNATS/1.0\r\n\r\nx\r\n".encode())
        c.expect(err_line(err))  # only the -ERR: no +OK and no delivery
        assert c.ping_barrier() == b""
        c.send(f"PUB {sentinel} 0\r\n\r\n".encode())
        c.expect(OK_RE)
        assert c.read_msg().subject == sentinel
        # Not delivered anywhere: the watcher on the other worker sees only the sentinel.
        assert watcher.read_msg().subject == sentinel


def test_errors_max_subscriptions(broker_factory) -> None:
    broker = broker_factory(limits={"max_subscriptions": 2})
    c = raw_connect_on_shard(broker, 1)
    p = raw_connect_on_shard(broker, 2)
    with c, p:
        c.handshake()
        p.handshake()
        a, b, d = unique(), unique(), unique()
        c.send(f"SUB {a} 1\r\nSUB {b} 2\r\nSUB {d} 3\r\n".encode())
        c.expect(err_line("maximum subscriptions exceeded"))
        assert c.ping_barrier() == b""  # still open
        p.send(f"PUB {d} 1\r\nx\r\nPUB {b} 1\r\ny\r\n".encode())
        assert c.read_msg().raw == f"MSG {b} 2 1\r\ny\r\n".encode()  # sid 3 never existed
        # Room again after an UNSUB.
        c.send(f"UNSUB 1\r\nSUB {d} 4\r\n".encode())
        assert c.ping_barrier() == b""
        p.send(f"PUB {d} 1\r\nz\r\n".encode())
        assert c.read_msg().raw == f"MSG {d} 4 1\r\nz\r\n".encode()
        c.send(f"SUB {a} 5\r\n".encode())
        c.expect(err_line("maximum subscriptions exceeded"))
        assert c.ping_barrier() == b""


def test_errors_max_connections(broker_factory) -> None:
    broker = broker_factory(limits={"max_connections": 3})
    with ShardProbes(broker) as probes:  # one connection per worker (two)
        third = raw_connect(broker)
        with third:
            third.handshake()
            for _ in range(4):
                with raw_connect(broker) as rejected:
                    # INFO first, then the -ERR before any client byte, then close.
                    assert rejected.expect_closed() == err_line("maximum connections exceeded")
            probes.check()
            assert third.ping_barrier() == b""
        # Once the third connection is gone, a new one is accepted (the count is updated
        # when the server notices the close, so poll).

        def accepted() -> bool:
            c = raw_connect(broker)
            with c:
                try:
                    c.handshake()
                    return c.ping_barrier() == b""
                except (WireError, OSError):  # rejected: closed under our feet
                    return False

        check_for(5, 0.05, accepted)
        probes.check()


# -- bad input ----------------------------------------------------------------------------


def test_errors_no_connect_can_ping_sub_and_pub(broker: Broker) -> None:
    # Without auth, a client that never sends CONNECT is served with the CONNECT
    # defaults, verbose and pedantic included.
    sub = raw_connect_on_shard(broker, 1)
    pub = raw_connect_on_shard(broker, 2)
    with sub, pub:
        foo = unique()
        sub.send(b"PING\r\n")
        sub.expect(b"PONG\r\n")
        sub.send(f"SUB {foo} 1\r\n".encode())
        sub.expect(OK_RE)
        assert sub.ping_barrier() == b""
        pub.send(f"PUB {foo} 5\r\nhello\r\n".encode())
        pub.expect(OK_RE)
        assert sub.read_msg().raw == f"MSG {foo} 1 5\r\nhello\r\n".encode()
        pub.send(f"PUB {foo}.* 1\r\nx\r\n".encode())
        pub.expect(err_line("Invalid Publish Subject") + b"+OK\r\n")
        assert pub.ping_barrier() == b""
        assert sub.ping_barrier() == b""


def test_errors_partial_op_waits_without_error(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        c.send(b"PIN")
        c.assert_nothing()
        c.send(b"G\r\n")
        c.expect(b"PONG\r\n")
        assert c.ping_barrier() == b""


def test_errors_client_ok_info_pong_are_ignored(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        c.send(b'+OK\r\nINFO {}\r\nINFO {"x":1}\r\nPONG\r\n')
        assert c.ping_barrier() == b""


def test_errors_many_bad_clients_do_not_harm_others(broker: Broker) -> None:
    with ShardProbes(broker) as probes:
        for case in FATAL_CASES:
            with _open_offender(broker, 1 + len(case.id) % len(broker.shard_ids), case) as c:
                c.send(case.data)
                c.expect_closed()
        probes.check()
