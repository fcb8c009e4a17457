"""The atomic auto-unsubscribe extension on two in-process worker shards (no sockets):
`SUB <subject> [queue] <sid> max=<n>` from a client that sent "sub_max": true is the
state SUB then UNSUB <sid> <n> leaves, set before the subscription can match, and its
interest leaves both shards when the count is reached."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shardbroker.protocol.frames import err
from tests.helpers.fakes import ShardPair, connect, output, shard_pair

GLOBAL = b"$G"
LIMIT_ERROR = err("Invalid Subscription Limit")


@pytest.fixture
def pair() -> Iterator[ShardPair]:
    loop = asyncio.new_event_loop()
    try:
        with shard_pair(loop) as shards:
            yield shards
    finally:
        loop.close()


def msgs(subject: bytes, sid: bytes, payloads: list[bytes]) -> bytes:
    return b"".join(b"MSG %s %s %d\r\n%s\r\n" % (subject, sid, len(p), p) for p in payloads)


def interest(pair: ShardPair, subject: bytes, queue: bytes | None = None) -> tuple[bool, bool]:
    """Whether shard 1 counts local interest in the subject, and shard 2 holds it as
    shard 1's remote interest."""
    key = (GLOBAL, subject, queue)
    return key in pair.one.member.local.counts, key in pair.two.member.remote.tables[1]


def pubs(subject: bytes, payloads: list[bytes]) -> bytes:
    return b"".join(b"PUB %s %d\r\n%s\r\n" % (subject, len(p), p) for p in payloads)


@pytest.mark.parametrize(
    ("shape", "payload_size"),
    [("one by one", 3), ("runs", 3), ("blocks", 300)],
    ids=["single", "run", "block"],
)
def test_sub_max_exact_across_shards_then_interest_gone(
    pair: ShardPair, shape: str, payload_size: int
) -> None:
    """Publishers on both shards; the limit holds whichever path delivers (single
    messages, runs of one control line, blocks of identical large ones)."""
    sub = connect(pair.one, sub_max=True)
    sub.data_received(b"SUB lim.* 5 max=100\r\n")
    assert sub.subs[b"5"].max == 100
    assert interest(pair, b"lim.*") == (True, False)
    pair.settle()
    assert interest(pair, b"lim.*") == (True, True)
    remote, local = connect(pair.two), connect(pair.one)
    payloads = [b"%0*d" % (payload_size, i) for i in range(40)]
    for publisher in (remote, local, remote):
        if shape == "one by one":
            for i, payload in enumerate(payloads):
                publisher.data_received(pubs(b"lim.%d" % (i % 3), [payload]))
        else:
            publisher.data_received(pubs(b"lim.x", payloads))
        pair.settle()
    got = output(sub)
    assert got.count(b"MSG lim.") == 100
    assert sub.out_msgs == 100
    assert not sub.subs
    assert interest(pair, b"lim.*") == (False, False)
    remote.data_received(pubs(b"lim.x", [b"late"]))
    pair.settle()
    assert output(sub) == b""


def test_sub_max_queue_member_limit_then_others_take_the_rest(pair: ShardPair) -> None:
    limited = connect(pair.one, sub_max=True)
    limited.data_received(b"SUB work grp 1 max=3\r\n")
    other = connect(pair.two)
    other.data_received(b"SUB work grp 1\r\n")
    pair.settle()
    publisher = connect(pair.two)
    for i in range(200):
        publisher.data_received(b"PUB work 3\r\n%03d\r\n" % i)
        pair.settle()
    assert output(limited).count(b"MSG work 1 ") == 3
    assert output(other).count(b"MSG work 1 ") == 197
    assert interest(pair, b"work", b"grp") == (False, False)


def test_sub_max_is_sub_then_unsub_max(pair: ShardPair) -> None:
    """Both ways leave the same subscription, and the same bytes to the client."""
    extended = connect(pair.one, sub_max=True)
    classic = connect(pair.one)
    extended.data_received(b"SUB same 1 max=2\r\nSUB same q 2 max=4\r\n")
    classic.data_received(b"SUB same 1\r\nUNSUB 1 2\r\nSUB same q 2\r\nUNSUB 2 4\r\n")
    for client in (extended, classic):
        assert [(s.subject, s.queue, s.max, s.delivered) for s in client.subs.values()] == [
            (b"same", None, 2, 0),
            (b"same", b"q", 4, 0),
        ]
    publisher = connect(pair.two)
    publisher.data_received(b"PUB same 1\r\nx\r\n" * 5)
    pair.settle()
    assert output(extended) == output(classic)


def test_sub_max_on_a_taken_sid_limits_that_subscription(pair: ShardPair) -> None:
    """As SUB (ignored: the sid is taken) then UNSUB <sid> <n>."""
    client = connect(pair.one, sub_max=True)
    client.data_received(b"SUB a 1\r\nPUB a 1\r\nx\r\nPUB a 1\r\nx\r\nSUB b 1 max=5\r\n")
    assert (client.subs[b"1"].subject, client.subs[b"1"].max) == (b"a", 5)
    client.data_received(b"SUB c 1 max=2\r\n")  # two delivered already: gone now
    assert not client.subs
    assert interest(pair, b"a") == (False, False)


def test_sub_max_verbose_answers_once(pair: ShardPair) -> None:
    client = connect(pair.one, sub_max=True, verbose=True)
    output(client)
    client.data_received(b"SUB v 1 max=1\r\n")
    assert output(client) == b"+OK\r\n"
    client.data_received(b"SUB v 2 max=0\r\n")
    assert output(client) == LIMIT_ERROR


@pytest.mark.parametrize(
    "line",
    [
        b"SUB bad 9 max=",
        b"SUB bad 9 max=0",
        b"SUB bad 9 max=-1",
        b"SUB bad 9 max=abc",
        b"SUB bad 9 max=1 max=2",
        b"SUB bad 9 max=1 x",
        b"SUB bad max=1 9",
        b"SUB bad max=1",
        b"SUB bad 9 max=1000000000",
        b"SUB bad 9 max=184467440737095516160",
    ],
)
def test_sub_max_malformed_is_refused_and_harms_nothing(pair: ShardPair, line: bytes) -> None:
    client = connect(pair.one, sub_max=True)
    client.data_received(b"SUB ok 1\r\n")
    pair.settle()
    client.data_received(line + b"\r\nPING\r\n")
    assert output(client) == LIMIT_ERROR + b"PONG\r\n"
    assert not client.closed
    assert list(client.subs) == [b"1"]
    assert interest(pair, b"bad") == (False, False)
    publisher = connect(pair.two)
    publisher.data_received(b"PUB ok 2\r\nhi\r\nPUB bad 2\r\nno\r\n")
    pair.settle()
    assert output(client) == msgs(b"ok", b"1", [b"hi"])


def test_sub_max_not_negotiated_reads_tokens_as_nats_server(pair: ShardPair) -> None:
    """Without "sub_max" in CONNECT a `max=` token is a queue or a sid."""
    client = connect(pair.one)
    client.data_received(b"SUB old max=1 7\r\nSUB old 8 max=1\r\nPING\r\n")
    pair.settle()  # the PONG waits for shard 2 to take the interest
    assert output(client) == b"PONG\r\n"
    assert [(s.queue, s.sid, s.max) for s in client.subs.values()] == [
        (b"max=1", b"7", 0),
        (b"8", b"max=1", 0),
    ]


def test_sub_max_a_later_connect_turns_it_off(pair: ShardPair) -> None:
    client = connect(pair.one, sub_max=True)
    client.data_received(b'CONNECT {"verbose":false}\r\nSUB off 3 max=1\r\n')
    assert [(s.queue, s.sid, s.max) for s in client.subs.values()] == [(b"3", b"max=1", 0)]


def test_sub_max_advertised_in_every_info(pair: ShardPair) -> None:
    client = connect(pair.one)
    for info in (
        pair.one.info_for(client),
        pair.one.connect_info_for(client),
        pair.one.ldm_info_for(client),
    ):
        assert b'"sub_max":true' in info


@pytest.mark.parametrize("publisher_shard", [1, 2], ids=["local-run", "remote-run"])
def test_sub_max_queue_run_gives_a_limited_members_surplus_to_the_others(
    pair: ShardPair, publisher_shard: int
) -> None:
    """A run of identical publishes picks queue members all at once; a limited member's
    picks past its limit go to the group's other members, not nowhere (the run goes
    message by message), whether the run was published here or on the other shard."""
    limited = connect(pair.one, sub_max=True)
    limited.data_received(b"SUB job grp 1 max=3\r\n")
    other = connect(pair.one)
    other.data_received(b"SUB job grp 1\r\n")
    pair.settle()
    publisher = connect(pair.one if publisher_shard == 1 else pair.two)
    publisher.data_received(b"PUB job 2\r\nok\r\n" * 200)
    pair.settle()
    assert output(limited).count(b"MSG job 1 2\r\nok\r\n") == 3
    assert output(other).count(b"MSG job 1 2\r\nok\r\n") == 197


def _one_read(shape: str, count: int) -> bytes:
    if shape == "run":
        return b"PUB job 2\r\nok\r\n" * count
    if shape == "headers":
        return b"HPUB job 12 14\r\nNATS/1.0\r\n\r\nok\r\n" * count
    return b"".join(b"PUB job %d\r\n%s\r\n" % (1 + i % 3, b"x" * (1 + i % 3)) for i in range(count))


@pytest.mark.parametrize("shape", ["run", "one by one", "headers"])
def test_sub_max_queue_group_loses_nothing_when_a_workers_last_member_leaves(
    pair: ShardPair, shape: str
) -> None:
    """Shard 1 routes a whole read with the view it had before it: it keeps picking
    shard 2 after the group's only member there took its one message and left. Shard 2
    passes those messages back (QMSG) to the member left on shard 1; a plain subscriber
    gets each message once."""
    limited = connect(pair.two, sub_max=True)
    limited.data_received(b"SUB job grp 1 max=1\r\n")
    other = connect(pair.one, headers=True)
    other.data_received(b"SUB job grp 2\r\n")
    plain = connect(pair.one, headers=True)
    plain.data_received(b"SUB job 3\r\n")
    pair.settle()
    publisher = connect(pair.one, headers=True)
    publisher.data_received(_one_read(shape, 300))
    pair.settle()
    assert limited.out_msgs == 1
    assert other.out_msgs == 299
    assert plain.out_msgs == 300
    assert (GLOBAL, b"job", b"grp") not in pair.one.member.remote.tables[2]
