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
    cdef Py_ssize_t step, after, at, line_len
    cdef Py_ssize_t limit = max_payload if max_payload < SMALL_PAYLOAD else SMALL_PAYLOAD
    cdef unsigned char c
    cdef bint ok
    cdef bytes subject, tail, frame
    cdef tuple targets, peers, entry
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
        c = <unsigned char>p[s0]
        if c == 95 or c == 36:  # "_" or "$": reserved prefixes, checked by the parser's path
            break
        digits = nl - s1 - 1
        if digits <= 0 or digits > 9:
            break  # no size, too long a size, or a second blank (a reply)
        size = 0
        i = s1 + 1
        while i < nl:
            c = <unsigned char>p[i]
            if c < 48 or c > 57:
                ok = False
                break
            size = size * 10 + (c - 48)
            i += 1
        if not ok:
            break
        end = nl + 2 + size
        if size > limit or end + 2 > n or p[end] != 13 or p[end + 1] != 10:
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
            payloads = [
                PyBytes_FromStringAndSize(p + at, size) for at in range(nl + 2, after, step)
            ]
            pub_run(subject, None, payloads, PyBytes_FromStringAndSize(p + s1 + 1, nl - s1 - 1))
            pos = after
            continue
        plan = plans.plan(subject)
        if plan is None:
            break
        msgs += 1
        size_sum += size
        targets, peers, rmsg_prefix = <tuple>plan
        if targets or peers:
            tail = PyBytes_FromStringAndSize(p + s1, end + 2 - s1)
            for entry in targets:
                sub = entry[0]
                target = entry[1]
                if target is client and not target.echo:
                    continue
                target.out.append(entry[2] + tail)
                target.out_msgs += 1
                target.out_bytes += size
                pending.add(target)
                sub.delivered += 1
                if sub.max and sub.delivered >= sub.max:
                    unsubscribe(sub)
            if peers:
                frame = rmsg_prefix + PyBytes_FromStringAndSize(p + s1 + 1, end + 1 - s1)
                for peer in peers:
                    (<list>batches[peer]).append(frame)
        pos = end + 2
    if msgs:
        client.in_msgs += msgs
        client.in_bytes += size_sum
    return pos
