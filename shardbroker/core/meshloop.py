"""The mesh loop, pure Python: the reference twin of the compiled ``_meshloop``.

Owner: a worker shard, on its loop; called by the mesh member for each piece of a
peer's ring (shard/member.py, ``apply_frames``) before the frame parser. Imports nothing
of the broker: everything it touches is handed in.

What it does. From ``pos`` on, it takes the frames that are plain forwarded messages in
the form a worker writes them, ``RMSG <account> <subject> <size>\\r\\n<payload>\\r\\n``
with a reply or queue groups in the route grammar (no headers), and delivers
each one to the local subscriptions of the subject's plan (core/plans.py ``Plans``; a
plan's peers are for messages published here and never forwarded again) and to one
local member of each queue group the publishing shard picked this one for, in the plan's
order, as ``Router.process_remote_msg`` does. It stops at any other frame, at a
subject without a plan, at a run of payloads larger than ``SMALL_PAYLOAD`` (the
parser's blocks), at a frame naming a queue group that has no member on this shard any
more (the router passes it on to one elsewhere), and returns where it
stopped: ``parse_mesh`` takes the rest exactly as it would have taken all of it. A run of
the same control line goes whole to ``rmsg_run`` (``Router.process_remote_run``, as the
frame parser calls it). The frames come from our own processes, but the loop checks
every length against the buffer as for a client's bytes.
"""

from __future__ import annotations

from typing import Any

from shardbroker.core.plans import SMALL_PAYLOAD, deliver, pick_local, run_end, size_at

_RMSG = b"RMSG "


def _between(data: bytes, start: int, end: int) -> tuple[bytes | None, list[bytes] | None]:
    """The reply and queue names between the subject and the size (the nats route
    grammar: nothing, ``<reply>``, ``| <q1> <q2>``, ``+ <reply> <q1> <q2>``); names None
    for anything else, which is the frame parser's."""
    if end <= start:
        return None, []
    middle = data[start:end]
    if middle.startswith(b"| "):
        names = middle[2:].split(b" ")
        return None, (None if b"" in names else names)
    if middle.startswith(b"+ "):
        reply, *names = middle[2:].split(b" ")
        return reply, (None if not reply or not names or b"" in names else names)
    if b" " in middle or any(b < 32 for b in middle):
        return None, None
    return middle, []


def mesh_loop(
    data: bytes,
    pos: int,
    plans_for: Any,
    rmsg_run: Any,
    pending: set[Any],
    unsubscribe: Any,
) -> int:
    """Deliver the plain forwarded messages of ``data`` from ``pos``; returns the
    position of the first frame left to the frame parser (``len(data)`` if none)."""
    n = len(data)
    last_account: bytes | None = None
    plans: Any = None
    while pos < n:
        if not data.startswith(_RMSG, pos):
            break
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            break
        a0 = pos + 5
        a1 = data.find(b" ", a0, nl)
        if a1 <= a0:
            break
        s1 = data.find(b" ", a1 + 1, nl)
        if s1 <= a1 + 1:
            break  # no subject
        z = data.rfind(b" ", s1, nl)  # the blank before the size
        reply, names = _between(data, s1 + 1, z)
        if names is None:
            break
        size = size_at(data, z + 1, nl)
        if size < 0:
            break
        end = nl + 2 + size
        if end + 2 > n or data[end : end + 2] != b"\r\n":
            break
        account = data[a0:a1]
        subject = data[a1 + 1 : s1]
        after = run_end(data, pos, nl + 2, end + 2)
        if after > end + 2:
            if size > SMALL_PAYLOAD:
                break  # a run of large payloads: the parser's blocks
            step = end + 2 - pos
            payloads = [data[at : at + size] for at in range(nl + 2, after, step)]
            rmsg_run(account, subject, reply, tuple(names), payloads, data[z + 1 : nl])
            pos = after
            continue
        if account != last_account:
            plans = plans_for(account)
            last_account = account
        plan = plans.plan(subject)
        if plan is None:
            break
        if names and any(not queue[4] for queue in plan[3] if queue[0] in names):
            break  # a picked group has no member here: the router passes it on
        targets = plan[0]
        # " [<reply> ]<size>\r\n<payload>\r\n"
        if reply is None:
            tail = data[z : end + 2]
        elif names:
            tail = b" " + reply + data[z : end + 2]
        else:
            tail = data[s1 : end + 2]
        for entry in targets:
            deliver(entry, tail, size, pending, unsubscribe)
        if names:
            for queue in plan[3]:
                if queue[0] not in names:
                    continue
                member = pick_local(queue)
                if member is not None:
                    deliver(member, tail, size, pending, unsubscribe)
        pos = end + 2
    return pos
