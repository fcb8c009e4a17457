# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The publish loop, compiled: the twin of publoop.py, which is the reference.

Same contract, same steps, same output (tests/unit/core/ compares them byte for byte);
what differs is how the bytes of the read are scanned: in C, over the buffer of the
``bytes`` object, every index checked against its length before it is read. Everything
it routes to is a Python object it is handed, touched through the same operations as in
publoop.py.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp

from random import random

from shardbroker.core.publoop import SMALL_PAYLOAD


cdef inline Py_ssize_t _find_crlf(const char* p, Py_ssize_t start, Py_ssize_t n):
    """Index of the first CRLF at or after start, or -1."""
    cdef const char* q
    cdef Py_ssize_t at = start
    while at < n:
        q = <const char*>memchr(p + at, 13, <size_t>(n - at))
        if q == NULL:
            return -1
        at = q - p
        if at + 1 < n and p[at + 1] == 10:
            return at
        at += 1
    return -1


cdef inline Py_ssize_t _find_blank(const char* p, Py_ssize_t start, Py_ssize_t end):
    """Index of the first blank in [start, end), or -1."""
    cdef const char* q
    if start >= end:
        return -1
    q = <const char*>memchr(p + start, 32, <size_t>(end - start))
    return -1 if q == NULL else q - p


cdef inline bint _has_prefix(
    const char* p, Py_ssize_t start, Py_ssize_t end, const char* prefix, Py_ssize_t length
):
    """Whether p[start:end] starts with the prefix."""
    return end - start >= length and memcmp(p + start, prefix, <size_t>length) == 0


cdef inline bytes _queue_frame(bytes rmsg_prefix, object reply, list names, bytes sized):
    """publoop.queue_frame."""
    if reply is None:
        return rmsg_prefix + b"| " + b" ".join(names) + b" " + sized
    return rmsg_prefix + b"+ " + <bytes>reply + b" " + b" ".join(names) + b" " + sized


cdef inline object _pick_member(tuple queue):
    """publoop.pick_member: the same member for the same random()."""
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


cdef inline int _deliver(
    object client_entry, bytes tail, Py_ssize_t size, set pending, object unsubscribe
) except -1:
    """One message to a local subscription: a plan's (subscription, client, prefix)."""
    cdef tuple entry = <tuple>client_entry
    sub = entry[0]
    target = entry[1]
    target.out.append(<bytes>entry[2] + tail)
    target.out_msgs += 1
    target.out_bytes += size
    pending.add(target)
    sub.delivered += 1
    if sub.max and sub.delivered >= sub.max:
        unsubscribe(sub)
    return 0


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
    cdef Py_ssize_t nl, s0, s1, i, size, end, digits, msgs = 0, size_sum = 0
    cdef Py_ssize_t step, after, at, line_len, z
    cdef Py_ssize_t small = SMALL_PAYLOAD
    cdef unsigned char c
    cdef bint ok
    cdef bytes subject, tail, frame, body, sized
    cdef object reply
    cdef bint no_responders = client.no_responders
    cdef tuple targets, peers, entry, queues, queue
    cdef dict picked
    cdef list names
    cdef bint echo = client.echo
    while pos < n:
        if n - pos < 4 or p[pos] != 80 or p[pos + 1] != 85 or p[pos + 2] != 66 or p[pos + 3] != 32:
            break  # not "PUB "
        nl = _find_crlf(p, pos, n)
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
        if _has_prefix(p, s0, s1, b"_GR_.", 5) or _has_prefix(p, s0, s1, b"$NRG.", 5):
            break  # the parser's path answers with a permissions violation
        # The blank before the size: after the subject, or after a reply.
        z = _find_blank(p, s1 + 1, nl)
        reply = None
        if z < 0:
            z = s1
        else:
            if z == s1 + 1 or _find_blank(p, z + 1, nl) >= 0:
                break  # blanks the parser must judge
            i = s1 + 1
            while i < z and <unsigned char>p[i] >= 32:
                i += 1
            if (
                i < z
                or _has_prefix(p, s1 + 1, z, b"_R_.", 4)
                or _has_prefix(p, s1 + 1, z, b"$JS.ACK.", 8)
                or _has_prefix(p, s1 + 1, z, b"_GR_.", 5)
            ):
                break  # a control byte, or a reply the parser's path refuses
            reply = PyBytes_FromStringAndSize(p + s1 + 1, z - s1 - 1)
        digits = nl - z - 1
        if digits <= 0 or digits > 9:
            break  # no size, or too long a size
        size = 0
        i = z + 1
        while i < nl:
            c = <unsigned char>p[i]
            if c < 48 or c > 57:
                ok = False
                break
            size = size * 10 + (c - 48)
            i += 1
        if not ok or (digits > 1 and p[z + 1] == 48):
            break  # not digits, or leading zeros (the general path writes some frames anew)
        end = nl + 2 + size
        if size > max_payload or end + 2 > n or p[end] != 13 or p[end + 1] != 10:
            break
        subject = PyBytes_FromStringAndSize(p + s0, s1 - s0)
        # The same control line again: a run, for the run path (see publoop.py).
        line_len = nl + 2 - pos
        step = end + 2 - pos
        after = end + 2
        while (
            after + step <= n
            and memcmp(p + after, p + pos, <size_t>line_len) == 0
            and p[after + step - 2] == 13
            and p[after + step - 1] == 10
        ):
            after += step
        if after > end + 2:
            if size > small:
                break  # a run of large payloads: the parser's blocks
            payloads = [
                PyBytes_FromStringAndSize(p + at, size) for at in range(nl + 2, after, step)
            ]
            pub_run(subject, reply, payloads, PyBytes_FromStringAndSize(p + z + 1, nl - z - 1))
            pos = after
            continue
        plan = plans.plan(subject)
        if plan is None:
            break
        targets, peers, rmsg_prefix, queues = <tuple>plan
        if queues and not echo:
            break  # the general path looks for another member than the publisher
        if reply is not None and no_responders and not peers and not queues:
            for entry in targets:
                if entry[1] is not client or echo:
                    break
            else:
                break  # nobody gets it: the general path answers "no responders"
        msgs += 1
        size_sum += size
        if targets or peers or queues:
            tail = PyBytes_FromStringAndSize(p + s1, end + 2 - s1)
            for entry in targets:
                target = entry[1]
                if target is client and not echo:
                    continue
                _deliver(entry, tail, size, pending, unsubscribe)
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
                _deliver(member, tail, size, pending, unsubscribe)
            if peers or picked:
                body = PyBytes_FromStringAndSize(p + s1 + 1, end + 1 - s1)
                frame = rmsg_prefix + body
                sized = (
                    None if picked is None else PyBytes_FromStringAndSize(p + z + 1, end + 1 - z)
                )
                for peer in peers:
                    if picked is not None and peer in picked:
                        (<list>batches[peer]).append(
                            _queue_frame(rmsg_prefix, reply, picked.pop(peer), sized)
                        )
                    else:
                        (<list>batches[peer]).append(frame)
                if picked:
                    for peer, names in picked.items():
                        (<list>batches[peer]).append(
                            _queue_frame(rmsg_prefix, reply, names, sized)
                        )
        pos = end + 2
    if msgs:
        client.in_msgs += msgs
        client.in_bytes += size_sum
    return pos
