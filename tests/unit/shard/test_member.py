"""MeshMember: peers by generation, interest in and out, control verbs dispatched to the
role's on_<verb> methods, bounded drain turns, acknowledgements and the PONG barrier's
marks. Three members on one real mesh segment, in this process, with recording roles."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from shardbroker.mesh.doorbell import create_doorbell
from shardbroker.mesh.layout import MeshLayout, create_segment, unlink_segment
from shardbroker.mesh.mesh import Mesh, MeshSpec
from shardbroker.protocol import frames
from shardbroker.protocol.frames import REBALANCE, RELOAD, SDOWN
from shardbroker.protocol.sublist import Sublist
from shardbroker.shard.interest import RemoteInterest
from shardbroker.shard.member import DRAIN_BUDGET, MeshMember

RING = 1 << 20


class Role:
    """Records what the member hands it."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.drains = 0
        self.sublists: dict[bytes, Sublist[Any, Any]] = {}
        self.member: MeshMember | None = None

    def sublist_for(self, account: bytes) -> Sublist[Any, Any]:
        sublist = self.sublists.get(account)
        if sublist is None:
            sublist = self.sublists[account] = Sublist(lambda plain, queues: (plain, queues))
        return sublist

    def process_rmsg(self, *args: Any) -> None:
        self.messages.append(("rmsg", *args))

    def process_rmsg_run(self, *args: Any) -> None:
        # A run of identical frames: one entry per message, as process_rmsg would make.
        account, subject, reply, queues, payloads, _ = args
        self.messages += [("rmsg", account, subject, reply, queues) for _ in payloads]

    def process_jmsg(self, *args: Any) -> None:
        self.messages.append(("jmsg", *args))

    def process_jrun(self, *args: Any) -> None:
        self.messages.append(("jrun", *args))

    def end_of_drain(self) -> None:
        self.drains += 1
        assert self.member is not None
        self.member.commit()

    def on_reload(self, seq: int, options: bytes) -> None:
        self.calls.append(("reload", seq, options))

    def on_rebalance(self, count: int) -> None:
        self.calls.append(("rebalance", count))

    def peer_joined(self, peer: int) -> None:
        self.calls.append(("joined", peer))

    def peer_left(self, peer: int) -> None:
        self.calls.append(("left", peer))


class Trio:
    """Shards 0 (supervisor, no peer interest kept), 1 and 2 on one segment."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.segment = f"/shardbroker-test-member-{os.getpid()}-{id(self)}"
        buf = create_segment(self.segment, MeshLayout(3, RING).total_size)
        self.doorbells = [create_doorbell() for _ in range(3)]
        spec = MeshSpec(
            port=0, segment=self.segment, n_shards=3, ring_size=RING, doorbell_fds=self.doorbells
        )
        self.roles = [Role() for _ in range(3)]
        self.members = []
        for shard, role in enumerate(self.roles):
            member = MeshMember(
                shard, 0, loop, Mesh(spec, shard, buf=buf), role,
                sublist_for=None if shard == 0 else role.sublist_for,
            )  # fmt: skip
            role.member = member
            self.members.append(member)

    def settle(self) -> None:
        """Commit and apply everything in flight, until the rings are quiet."""
        for _ in range(6):
            for member in self.members:
                member.commit()
                member.on_doorbell()

    def close(self) -> None:
        unlink_segment(self.segment)
        for fd in self.doorbells:
            os.close(fd)


@pytest.fixture
def trio() -> Iterator[Trio]:
    loop = asyncio.new_event_loop()
    shards = Trio(loop)
    try:
        yield shards
    finally:
        shards.close()
        loop.close()


def greet(trio: Trio) -> None:
    for member in trio.members:
        member.say_hello([p for p in range(3) if p != member.shard_id])
    trio.settle()


def remote_of(trio: Trio, shard: int, peer: int) -> dict[Any, RemoteInterest]:
    remote = trio.members[shard].remote
    assert remote is not None
    return remote.tables[peer]


def test_member_hello_makes_peers_up_and_sends_interest(trio: Trio) -> None:
    one, two = trio.members[1], trio.members[2]
    one.local.add(b"$G", b"early")  # advertised before anybody is up
    greet(trio)
    assert one.peer_up == [True, False, True] and two.peer_gen == [0, 0, -1]
    assert one.interest_peers == [2]  # never the supervisor
    assert (b"$G", b"early", None) in remote_of(trio, 2, 1)
    assert ("joined", 2) in trio.roles[1].calls


def test_member_interest_frames_follow_counts_and_queue_weights(trio: Trio) -> None:
    greet(trio)
    one = trio.members[1]
    one.local.add(b"$G", b"a")
    one.local.add(b"$G", b"a")
    one.local.add(b"$G", b"q", b"workers")
    one.local.add(b"$G", b"q", b"workers")
    trio.settle()
    table = remote_of(trio, 2, 1)
    assert set(table) == {(b"$G", b"a", None), (b"$G", b"q", b"workers")}
    assert table[(b"$G", b"q", b"workers")].weight == 2
    assert one.local.total == 4
    one.local.remove(b"$G", b"a")
    one.local.remove(b"$G", b"q", b"workers")
    trio.settle()
    assert (b"$G", b"a", None) in table  # one subscription left
    assert table[(b"$G", b"q", b"workers")].weight == 1
    one.local.remove(b"$G", b"a")
    trio.settle()
    assert (b"$G", b"a", None) not in table
    assert trio.roles[2].sublists[b"$G"].match(b"a") == ([], {})
    one.local.remove(b"$G", b"never-added")  # nothing to withdraw, nothing sent
    assert one.local.total == 1


def test_member_restarted_peer_replaces_what_its_old_life_advertised(trio: Trio) -> None:
    greet(trio)
    one, two = trio.members[1], trio.members[2]
    two.local.add(b"$G", b"old")
    trio.settle()
    assert (b"$G", b"old", None) in remote_of(trio, 1, 2)
    one.on_hello(2, 1)  # generation 1 of shard 2 says hello before its SDOWN
    assert remote_of(trio, 1, 2) == {}
    assert one.peer_gen[2] == 1 and one.peer_up[2]
    one.on_sdown(2, 0, 0)  # the SDOWN of the previous life, late: ignored
    assert one.peer_up[2]
    one.on_sdown(2, 1, 0)
    assert not one.peer_up[2] and one.interest_peers == []
    assert ("left", 2) in trio.roles[1].calls


def test_member_dispatches_control_verbs_with_typed_arguments(trio: Trio) -> None:
    greet(trio)
    zero = trio.members[0]
    zero.send_control(1, RELOAD, 7, b"opts")
    zero.send_control(1, REBALANCE, 3)
    trio.settle()
    assert ("reload", 7, b"opts") in trio.roles[1].calls
    assert ("rebalance", 3) in trio.roles[1].calls


def test_member_drops_unknown_and_malformed_control_frames(
    trio: Trio, caplog: pytest.LogCaptureFixture
) -> None:
    greet(trio)
    one = trio.members[1]
    one.current_peer = 0
    with caplog.at_level(logging.WARNING, logger="shardbroker.shard"):
        one.process_control(b"BOGUS", [])
        one.process_control(b"BOGUS", [])  # the same unknown verb: logged once
        one.process_control(REBALANCE, [b"many"])
        one.process_control(REBALANCE, [b"1", b"2"])
        one.process_control(SDOWN, [b"2"])
    texts = [r.getMessage() for r in caplog.records]
    assert sum("unknown control frame" in t for t in texts) == 1
    assert sum("malformed control frame" in t for t in texts) == 3
    assert trio.roles[1].calls == [("joined", 0), ("joined", 2)]  # nothing reached the role
    assert one.peer_up[2]


def test_member_acknowledges_interest_by_ringing_the_sender(trio: Trio) -> None:
    greet(trio)
    one, two = trio.members[1], trio.members[2]
    one.local.add(b"$G", b"ack")
    marks = one.barrier_marks()
    one.commit()
    assert not one.barrier_passed(marks)  # shard 2 has not applied it yet
    one.mesh.doorbell.drain()
    two.on_doorbell()  # applies RS+ and rings shard 1
    assert os.eventfd_read(one.mesh.doorbell.fileno()) >= 1
    assert one.barrier_passed(marks)


def test_member_barrier_passes_for_a_peer_that_went_down(trio: Trio) -> None:
    greet(trio)
    one = trio.members[1]
    one.local.add(b"$G", b"lost")
    marks = one.barrier_marks()
    one.commit()
    assert not one.barrier_passed(marks)
    one.on_sdown(2, 0, 0)
    assert one.barrier_passed(marks)


def test_member_drain_turns_are_bounded_and_resume(trio: Trio) -> None:
    greet(trio)
    one, two = trio.members[1], trio.members[2]
    payload = b"x" * 1000
    frame = frames.rmsg(b"$G", b"bulk", None, (), 0, payload)
    count = 3 * DRAIN_BUDGET // len(frame)
    for _ in range(count):
        one.mesh.send(2, frame)
        if len(one.mesh.batches[2]) * len(frame) >= one.mesh.max_commit // 2:
            one.commit()
    one.commit()
    ready: list[Any] = []
    two.loop.call_soon = lambda fn, *args: ready.append(fn)  # type: ignore[method-assign]
    two.on_doorbell()
    first_turn = len(trio.roles[2].messages)
    assert 0 < first_turn < count  # one turn took about a budget's worth, not all
    assert ready == [two.on_doorbell]  # and asked to come back
    while ready:
        ready.pop()()
    messages = trio.roles[2].messages
    assert len(messages) == count
    assert all(m[1:3] == (b"$G", b"bulk") for m in messages)


def test_member_role_can_hold_the_rings(trio: Trio) -> None:
    greet(trio)
    one, two = trio.members[1], trio.members[2]
    one.mesh.send(2, frames.rmsg(b"$G", b"held", None, (), 0, b"x"))
    one.commit()
    two.drain_budget = lambda: None
    two.on_doorbell()
    inbound = two.mesh.inbound[1]
    assert inbound is not None and inbound.pending() > 0
    assert trio.roles[2].messages == []
    two.drain_budget = lambda: DRAIN_BUDGET
    two.on_doorbell()
    assert [m[:3] for m in trio.roles[2].messages] == [("rmsg", b"$G", b"held")]


def test_member_supervisor_keeps_no_peer_interest_and_hears_none(trio: Trio) -> None:
    greet(trio)
    zero, one = trio.members[0], trio.members[1]
    zero.local.add(b"$G", b"$SYS.REQ.SERVER.PING")
    trio.settle()
    assert (b"$G", b"$SYS.REQ.SERVER.PING", None) in remote_of(trio, 1, 0)
    assert zero.remote is None
    outbound = one.mesh.outbound[0]
    assert outbound is not None
    before = outbound.write_counter
    one.local.add(b"$G", b"plenty")
    one.commit()
    assert outbound.write_counter == before  # no RS+ went to the supervisor
    assert one.peer_up[0] and zero.peer_up[1]
