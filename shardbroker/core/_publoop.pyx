# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The publish loop, compiled: the twin of publoop.py, which is the reference.

Same contract, same steps, same output (tests/unit/core/ compares them byte for byte);
what differs is how the bytes of the read are scanned: in C, over the buffer of the
``bytes`` object, every index checked against its length before it is read. A subject
is looked up where it lies in the buffer (``_plans.Plans.lookup``), and each delivery is
joined from its head and the buffer in one allocation; the rest is the Python objects
it is handed, touched through the same operations as in publoop.py.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from random import random

from shardbroker.core._plans cimport SHARED_TAIL, Plans, deliver
from shardbroker.core._scan cimport find_blank, find_crlf, has_prefix, join_head, run_end, size_at

from shardbroker.core.plans import SMALL_PAYLOAD


cdef inline bytes _queue_frame(bytes rmsg_prefix, object reply, list names, bytes sized):
    """plans.queue_frame."""
    if reply is None:
        return rmsg_prefix + b"| " + b" ".join(names) + b" " + sized
    return rmsg_prefix + b"+ " + <bytes>reply + b" " + b" ".join(names) + b" " + sized


cdef bytes _rmsg_frame(
    bytes account, const char* subject, Py_ssize_t subject_len, const char* body, Py_ssize_t n
):
    """``RMSG <account> <subject> `` + body[:n], in one allocation."""
    cdef Py_ssize_t a = PyBytes_GET_SIZE(account)
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, 5 + a + 1 + subject_len + 1 + n)
    cdef char* w = PyBytes_AS_STRING(frame)
    memcpy(w, b"RMSG ", 5)
    memcpy(w + 5, PyBytes_AS_STRING(account), <size_t>a)
    w[5 + a] = 32
    memcpy(w + 6 + a, subject, <size_t>subject_len)
    w[6 + a + subject_len] = 32
    memcpy(w + 7 + a + subject_len, body, <size_t>n)
    return frame


cdef inline object _pick_member(tuple queue):
    """plans.pick_member: the same member for the same random()."""
    cdef tuple members = <tuple>queue[1]
    cdef tuple cumulative
    cdef Py_ssize_t i = 0, count = len(members)
    cdef double x
    if count == 1:
        return members[0]
    cumulative = <tuple>queue[2]
    x = <double>random() * <double>queue[3]
    while i < count - 1 and <double>cumulative[i] <= x:  # bisect_right
        i += 1
    return members[i]


def pub_loop(
    client,
    bytes data,
    Py_ssize_t pos,
    pub_run,
    plans,
    list batches,
    set pending,
    unsubscribe,
    Py_ssize_t max_control_line,
    Py_ssize_t max_payload,
):
    """See publoop.pub_loop."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t nl, s0, s1, i, size, end, msgs = 0, size_sum = 0
    cdef Py_ssize_t step, after, at, z
    cdef Py_ssize_t small = SMALL_PAYLOAD
    cdef unsigned char c
    cdef bint ok
    cdef bytes frame, sized
    cdef object reply, subject
    cdef bint fast_plans = type(plans) is Plans
    cdef bint no_responders = client.no_responders
    cdef tuple targets, peers, entry, queues, queue
    cdef dict picked
    cdef list names
    cdef bint echo = client.echo
    cdef bint has_reply
    cdef const char* tail
    cdef Py_ssize_t tail_len
    while pos < n:
        if n - pos < 4 or p[pos] != 80 or p[pos + 1] != 85 or p[pos + 2] != 66 or p[pos + 3] != 32:
            break  # not "PUB "
        nl = find_crlf(p, pos, n)
        if nl < 0 or nl - pos > max_control_line:
            break
        s0 = pos + 4
        s1 = s0
        ok = True
        while s1 < nl:
            c = <unsigned char>p[s1]
            if c == 32:
                break
            if c < 32:
                ok = False
                break
            s1 += 1
        if not ok or s1 == s0 or s1 >= nl:
            break  # no subject, a control byte in it, or no size
        if has_prefix(p, s0, s1, b"_GR_.", 5) or has_prefix(p, s0, s1, b"$NRG.", 5):
            break  # the parser's path answers with a permissions violation
        if has_prefix(p, s0, s1, b"$SYS.", 5) or has_prefix(p, s0, s1, b"_R_.", 4):
            break  # what the general path routes (plans.GENERAL_PUBLISH)
        # The blank before the size: after the subject, or after a reply.
        z = find_blank(p, s1 + 1, nl)
        has_reply = False
        if z < 0:
            z = s1
        else:
            if z == s1 + 1 or find_blank(p, z + 1, nl) >= 0:
                break  # blanks the parser must judge
            i = s1 + 1
            while i < z and <unsigned char>p[i] >= 32:
                i += 1
            if (
                i < z
                or has_prefix(p, s1 + 1, z, b"_R_.", 4)
                or has_prefix(p, s1 + 1, z, b"$JS.ACK.", 8)
                or has_prefix(p, s1 + 1, z, b"_GR_.", 5)
            ):
                break  # a control byte, or a reply the parser's path refuses
            has_reply = True
        size = size_at(p, z + 1, nl)
        if size < 0 or (nl - z > 2 and p[z + 1] == 48):
            break  # not a size, or leading zeros (the general path writes some frames anew)
        end = nl + 2 + size
        if size > max_payload or end + 2 > n or p[end] != 13 or p[end + 1] != 10:
            break
        # The same control line again: a run, for the run path (see publoop.py).
        after = run_end(p, n, pos, nl + 2, end + 2)
        step = end + 2 - pos
        if after > end + 2:
            if size > small:
                break  # a run of large payloads: the parser's blocks
            payloads = [
                PyBytes_FromStringAndSize(p + at, size) for at in range(nl + 2, after, step)
            ]
            pub_run(
                PyBytes_FromStringAndSize(p + s0, s1 - s0),
                PyBytes_FromStringAndSize(p + s1 + 1, z - s1 - 1) if has_reply else None,
                payloads,
                PyBytes_FromStringAndSize(p + z + 1, nl - z - 1),
            )
            pos = after
            continue
        if fast_plans:
            plan = (<Plans>plans).lookup(p + s0, s1 - s0)
        else:
            plan = plans.plan(PyBytes_FromStringAndSize(p + s0, s1 - s0))
        if plan is None:
            break
        targets, peers, rmsg_prefix, queues = <tuple>plan
        if queues and not echo:
            break  # the general path looks for another member than the publisher
        if has_reply and no_responders and not peers and not queues:
            for entry in targets:
                if entry[1] is not client or echo:
                    break
            else:
                break  # nobody gets it: the general path answers "no responders"
        msgs += 1
        size_sum += size
        if targets or peers or queues:
            tail = p + s1  # " [<reply> ]<size>\r\n<payload>\r\n", in the buffer
            tail_len = end + 2 - s1
            shared = (
                PyBytes_FromStringAndSize(tail, tail_len) if tail_len >= SHARED_TAIL else None
            )
            for entry in targets:
                if entry[1] is client and not echo:
                    continue
                deliver(entry, tail, tail_len, shared, size, pending, unsubscribe)
            picked = None
            for queue in queues:
                member = _pick_member(queue)
                if type(member) is int:
                    if picked is None:
                        picked = {}
                    names = picked.get(member)
                    if names is None:
                        picked[member] = [queue[0]]
                    else:
                        names.append(queue[0])
                    continue
                deliver(<tuple>member, tail, tail_len, shared, size, pending, unsubscribe)
            if peers:
                if PyBytes_GET_SIZE(rmsg_prefix):
                    frame = join_head(<bytes>rmsg_prefix, tail + 1, tail_len - 1)
                else:  # a plan of peers only names no subject (plans.Plans)
                    frame = _rmsg_frame(plans.account, p + s0, s1 - s0, tail + 1, tail_len - 1)
            if picked is not None:
                reply = PyBytes_FromStringAndSize(p + s1 + 1, z - s1 - 1) if has_reply else None
                sized = PyBytes_FromStringAndSize(p + z + 1, end + 1 - z)
            for peer in peers:
                if picked is not None and peer in picked:
                    (<list>batches[peer]).append(
                        _queue_frame(rmsg_prefix, reply, picked.pop(peer), sized)
                    )
                else:
                    (<list>batches[peer]).append(frame)
            if picked:
                for peer, names in picked.items():
                    (<list>batches[peer]).append(_queue_frame(rmsg_prefix, reply, names, sized))
        pos = end + 2
    if msgs:
        client.in_msgs += msgs
        client.in_bytes += size_sum
    return pos
