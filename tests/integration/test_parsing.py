"""Lenient parsing over a real socket: whitespace, tabs, case, bare LF, input split at
every byte, leading-zero sizes (protocol.md §2, capture 19.3)."""

from __future__ import annotations

import random

import pytest

from tests.helpers.broker import Broker, raw_connect, raw_connect_on_shard, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _lenient_cases(f: str) -> list[tuple[bytes, bytes]]:
    """(what the client sends, what it must receive before the barrier's PONG)."""
    return [
        (
            f"SUB\t{f}   \t 1\r\nPUB  {f}\t  3\r\nabc\r\n".encode(),
            f"MSG {f} 1 3\r\nabc\r\n".encode(),
        ),
        (
            f"SUB {f} 1\nPUB {f} 3\nabc\r\nPING\n".encode(),
            f"MSG {f} 1 3\r\nabc\r\nPONG\r\n".encode(),
        ),
        (
            f"sub {f} 1\r\npub {f} 1\r\nx\r\npInG\r\n".encode(),
            f"MSG {f} 1 1\r\nx\r\nPONG\r\n".encode(),
        ),
        (f"Sub {f} 1\r\nPub {f} r 1\r\ny\r\n".encode(), f"MSG {f} 1 r 1\r\ny\r\n".encode()),
        (
            f"SUB\t{f}\t1\t\r\nPUB\t{f}\treply\t3\t\r\nabc\r\nPING\t\r\n".encode(),
            f"MSG {f} 1 reply 3\r\nabc\r\nPONG\r\n".encode(),
        ),
        # nats-py's forms: two spaces for "no queue", trailing space after UNSUB's sid.
        (
            f"SUB {f}  1\r\nPUB {f}  2\r\nhi\r\nUNSUB 1 \r\nPUB {f} 2\r\nno\r\n".encode(),
            f"MSG {f} 1 2\r\nhi\r\n".encode(),
        ),
        (f"SUB {f} 1 \r\nPUB {f} 1 \r\nx\r\n".encode(), f"MSG {f} 1 1\r\nx\r\n".encode()),
        (
            f"SUB {f} 1\r\nPING foo\r\nPUB {f} 1\r\nx\r\n".encode(),
            f"PONG\r\nMSG {f} 1 1\r\nx\r\n".encode(),
        ),
        (
            f"SUB {f} 1\r\nhpub {f} 12 14\r\nNATS/1.0\r\n\r\nok\r\n".encode(),
            f"HMSG {f} 1 12 14\r\nNATS/1.0\r\n\r\nok\r\n".encode(),
        ),
    ]


LENIENT_IDS = [
    "tabs_and_runs",
    "bare_lf",
    "lower_case",
    "mixed_case_reply",
    "tabs_everywhere",
    "nats_py_spacing",
    "trailing_space",
    "ping_with_args",
    "lower_case_hpub",
]


@pytest.mark.parametrize("index", range(len(LENIENT_IDS)), ids=LENIENT_IDS)
def test_parsing_lenient_forms(broker: Broker, index: int) -> None:
    with raw_connect(broker) as c:
        c.handshake(headers=True)
        f = unique()
        data, expected = _lenient_cases(f)[index]
        c.send(data)
        c.expect(expected)
        assert c.ping_barrier() == b""


def test_parsing_connect_lenient_whitespace_and_case(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.send(b'connect \t {"verbose":false}  \r\nPING\r\n')
        c.expect(b"PONG\r\n")
        assert c.ping_barrier() == b""


@pytest.mark.parametrize("with_reply", [False, True])
def test_parsing_pub_split_at_every_byte(broker: Broker, with_reply: bool) -> None:
    sub = raw_connect_on_shard(broker, 1)
    pub = raw_connect_on_shard(broker, 2)
    with sub, pub:
        sub.handshake()
        pub.handshake()
        f = unique()
        sub.send(f"SUB {f} 1\r\n".encode())
        assert sub.ping_barrier() == b""
        mid = " rep.ly" if with_reply else ""
        data = f"PUB {f}{mid} 5\r\nhe\r\no\r\n".encode()
        expected = f"MSG {f} 1{mid} 5\r\nhe\r\no\r\n".encode()
        for cut in range(1, len(data)):
            pub.send(data[:cut])
            pub.send(data[cut:])
            assert sub.read_msg().raw == expected, f"split at {cut}"
        # And one byte per write.
        pub.send_bytewise(data)
        assert sub.read_msg().raw == expected
        assert pub.ping_barrier() == b""


def test_parsing_every_op_one_byte_at_a_time(broker: Broker) -> None:
    c = raw_connect_on_shard(broker, 1)
    with c:
        f = unique()
        c.send_bytewise(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        c.send_bytewise(f"SUB {f} 1\r\nSUB {f} q 2\r\n".encode())
        c.send_bytewise(f"HPUB {f} r 12 15\r\nNATS/1.0\r\n\r\nabc\r\n".encode())
        c.send_bytewise(b"UNSUB 2\r\n")
        c.send_bytewise(f"PUB {f} 0\r\n\r\n".encode())
        c.send_bytewise(b"PING\r\n")
        got = {c.read_msg().raw for _ in range(2)}
        assert got == {
            f"HMSG {f} 1 r 12 15\r\nNATS/1.0\r\n\r\nabc\r\n".encode(),
            f"HMSG {f} 2 r 12 15\r\nNATS/1.0\r\n\r\nabc\r\n".encode(),
        }
        c.expect(f"MSG {f} 1 0\r\n\r\nPONG\r\n".encode())


def test_parsing_leading_zero_size_is_echoed(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        f = unique()
        c.send(f"SUB {f} 1\r\nPUB {f} 05\r\nhello\r\nPUB {f} 000\r\n\r\n".encode())
        assert c.ping_barrier() == f"MSG {f} 1 05\r\nhello\r\nMSG {f} 1 000\r\n\r\n".encode()


def test_parsing_leading_zero_size_across_shards(broker: Broker) -> None:
    sub = raw_connect_on_shard(broker, 2)
    pub = raw_connect_on_shard(broker, 1)
    with sub, pub:
        sub.handshake()
        pub.handshake()
        f = unique()
        sub.send(f"SUB {f} 1\r\n".encode())
        assert sub.ping_barrier() == b""
        pub.send(f"PUB {f} 05\r\nhello\r\n".encode())
        msg = sub.read_msg()
        # nats-server copies the token through; a size of 5 in canonical form is also
        # a correct delivery for a remote subscriber.
        assert msg.payload == b"hello"
        assert msg.size_tokens[0] in ("05", "5"), msg.raw


def test_parsing_payload_is_skipped_by_size(broker: Broker) -> None:
    with raw_connect(broker) as c:
        c.handshake()
        f = unique()
        tricky = b"PING\r\nPUB x 1\r\ny\r\nMSG a 1 1\r\n-ERR 'x'\r\n"
        c.send(f"SUB {f} 1\r\nPUB {f} {len(tricky)}\r\n".encode() + tricky + b"\r\n")
        assert c.ping_barrier() == f"MSG {f} 1 {len(tricky)}\r\n".encode() + tricky + b"\r\n"


def test_parsing_large_pipelined_batch_in_random_chunks(broker: Broker) -> None:
    rng = random.Random(1234)
    sub = raw_connect_on_shard(broker, 1)
    pub = raw_connect_on_shard(broker, 2)
    with sub, pub:
        sub.handshake()
        pub.handshake(headers=True)
        f = unique()
        sub.send(f"SUB {f}.> 1\r\n".encode())
        assert sub.ping_barrier() == b""
        frames = []
        expected = []
        for i in range(500):
            body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
            if i % 3 == 0:
                hdr = f"NATS/1.0\r\nI: {i}\r\n\r\n".encode()
                frames.append(
                    f"HPUB {f}.{i} {len(hdr)} {len(hdr) + len(body)}\r\n".encode()
                    + hdr
                    + body
                    + b"\r\n"
                )
                expected.append(f"MSG {f}.{i} 1 {len(body)}\r\n".encode() + body + b"\r\n")
            else:
                frames.append(f"PUB {f}.{i} {len(body)}\r\n".encode() + body + b"\r\n")
                expected.append(f"MSG {f}.{i} 1 {len(body)}\r\n".encode() + body + b"\r\n")
        stream = b"".join(frames)
        pos = 0
        while pos < len(stream):
            step = rng.randrange(1, 700)
            pub.send(stream[pos : pos + step])
            pos += step
        for i, exp in enumerate(expected):
            assert sub.read_msg().raw == exp, i
        assert pub.ping_barrier() == b""
