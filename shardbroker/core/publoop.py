"""The publish loop, pure Python: the reference twin of the compiled ``_publoop``.

Owner: a worker shard, on its loop; called once per client read by the connection
(worker/client.py) before its parser. Imports nothing of the broker: everything it
touches is handed in.

What it does. From ``pos`` on, it takes the operations of a client read that are
publishes in canonical form, ``PUB <subject> [<reply> ]<size>\\r\\n<payload>\\r\\n``
(one blank each, a size without leading zeros, no subject or reply a connection may not
publish with, a payload within the connection's limit), and routes each one by a *plan*:
the delivery a subject of the publisher's account gets, built once by the router
(``Plans.plan``) and kept until the account's subscriptions change (the sublist's
generation). It stops at the first operation that is anything else, at an incomplete
one, at one whose subject has no plan (a subscription with delivery-time checks), at one
with queue groups from a publisher with echo off, at a request nobody would get from a
client that wants "no responders" answers, and returns where it stopped; the
connection's parser takes the rest exactly as it would have taken all of it. A run of
the same control line is handed whole to ``pub_run`` (the client's ``process_pub_run``,
which the parser calls for runs too): it routes the run with one join per destination.
So this loop only ever does what the general path would do for the same bytes, and the
differential tests (tests/unit/core/) hold the two to the same output.

A plan is ``(targets, peers, rmsg_prefix, queues)``: ``targets`` are ``(subscription,
client, "MSG <subject> <sid>")``, as ``RouteResult.prepare`` makes them; ``peers`` the
shards with plain interest, which get ``RMSG <account> <subject> <size>`` once (an
empty ``rmsg_prefix``: a plan of peers only, shared by many subjects, whose frame the
loop writes from the publisher's account and the subject; see plans.Plans);
``queues`` one ``QueuePlan`` per queue group the subject reaches (``queue_plan``).

Delivery of one message, as ``Router.process_msg_results`` does it: to each target but
the publisher when it has echo off, ``prefix + tail`` appended to the client's output,
its counters bumped, the client marked pending, the subscription's delivered count
bumped (and at its UNSUB max, unsubscribed through the router, after which the plans are
looked at again). Then one member of each queue group, picked as ``QueueGroup.pick``
picks (one ``random()`` per pick of several members, so a seeded run picks alike on
every path): a local member gets the message as a target does; a peer gets the group's
name in its frame. Last, one frame per peer into that peer's batch, naming the queue
groups it was picked for (``RMSG <account> <subject> | <q1> <q2> <size>``).
"""

from __future__ import annotations

from typing import Any

from shardbroker.core.plans import (
    GENERAL_PUBLISH,
    RESERVED_PUBLISH,
    RESERVED_REPLY,
    SMALL_PAYLOAD,
    Plans,
    deliver,
    pick_member,
    queue_frame,
    run_end,
    size_at,
)

_PUB = b"PUB "


def pub_loop(
    client: Any,
    data: bytes,
    pos: int,
    pub_run: Any,
    plans: Plans,
    batches: list[list[bytes]],
    pending: set[Any],
    unsubscribe: Any,
    max_control_line: int,
    max_payload: int,
) -> int:
    """Route the canonical plain publishes of ``data`` from ``pos``; returns the
    position of the first operation left to the parser (``len(data)`` if none)."""
    n = len(data)
    msgs = 0
    size_sum = 0
    while pos < n:
        if not data.startswith(_PUB, pos):
            break
        nl = data.find(b"\r\n", pos)
        if nl < 0 or nl - pos > max_control_line:
            break
        s0 = pos + 4
        s1 = data.find(b" ", s0, nl)
        if s1 <= s0 or any(b <= 32 for b in data[s0:s1]):
            break  # no subject, or a control byte in it
        if data.startswith(RESERVED_PUBLISH, s0):
            break  # the parser's path answers with a permissions violation
        if data.startswith(GENERAL_PUBLISH, s0):
            break  # what the general path routes (plans.GENERAL_PUBLISH)
        # The blank before the size: after the subject, or after a reply.
        z = data.find(b" ", s1 + 1, nl)
        reply = None
        if z < 0:
            z = s1
        else:
            if z == s1 + 1 or data.find(b" ", z + 1, nl) >= 0:
                break  # blanks the parser must judge
            reply = data[s1 + 1 : z]
            if any(b < 32 for b in reply) or reply.startswith(RESERVED_REPLY):
                break
        size = size_at(data, z + 1, nl)
        if size < 0:
            break
        if nl - z > 2 and data[z + 1] == 48:
            break  # a size with leading zeros: the general path writes some frames anew
        end = nl + 2 + size
        if size > max_payload or end + 2 > n or data[end : end + 2] != b"\r\n":
            break
        subject = data[s0:s1]
        # The same control line again: a run, which the run path routes with one join
        # per destination (pub_run, as the parser calls it).
        after = run_end(data, pos, nl + 2, end + 2)
        if after > end + 2:
            if size > SMALL_PAYLOAD:
                break  # a run of large payloads: the parser's blocks
            step = end + 2 - pos
            payloads = [data[at : at + size] for at in range(nl + 2, after, step)]
            pub_run(subject, reply, payloads, data[z + 1 : nl])
            pos = after
            continue
        plan = plans.plan(subject)
        if plan is None:
            break
        targets, peers, rmsg_prefix, queues = plan
        if queues and not client.echo:
            break  # the general path looks for another member than the publisher
        if (
            reply is not None
            and client.no_responders
            and not (peers or queues)
            and all(target is client and not client.echo for _, target, _ in targets)
        ):
            break  # nobody gets it: the general path answers "no responders"
        msgs += 1
        size_sum += size
        if targets or peers or queues:
            tail = data[s1 : end + 2]  # " [<reply> ]<size>\r\n<payload>\r\n"
            for entry in targets:
                if entry[1] is client and not client.echo:
                    continue
                deliver(entry, tail, size, pending, unsubscribe)
            picked: dict[int, list[bytes]] | None = None
            for queue in queues:
                member = pick_member(queue)
                if type(member) is int:
                    if picked is None:
                        picked = {}
                    names = picked.get(member)
                    if names is None:
                        picked[member] = [queue[0]]
                    else:
                        names.append(queue[0])
                    continue
                deliver(member, tail, size, pending, unsubscribe)
            if peers or picked:
                # A plan of peers only names no subject (plans.Plans): write it here.
                head = rmsg_prefix or b"RMSG " + plans.account + b" " + subject + b" "
                frame = head + tail[1:]
                sized = data[z + 1 : end + 2]
                for peer in peers:
                    if picked is not None and peer in picked:
                        batches[peer].append(
                            queue_frame(rmsg_prefix, reply, picked.pop(peer), sized)
                        )
                    else:
                        batches[peer].append(frame)
                if picked:
                    for peer, names in picked.items():
                        batches[peer].append(queue_frame(rmsg_prefix, reply, names, sized))
        pos = end + 2
    if msgs:
        client.in_msgs += msgs
        client.in_bytes += size_sum
    return pos
