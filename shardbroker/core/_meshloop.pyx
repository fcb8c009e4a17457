# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The mesh loop, compiled: the twin of meshloop.py, which is the reference.

Same contract, same steps, same output (tests/unit/core/ compares them byte for byte);
the bytes of the ring piece are scanned in C, every index checked against the length
before it is read.
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


cdef inline object _pick_local(tuple queue):
    """publoop.pick_local: the same member for the same random()."""
    cdef tuple local = <tuple>queue[4]
    cdef Py_ssize_t count = len(local)
    if count == 0:
        return None
    if count == 1:
        return local[0]
    return local[<Py_ssize_t>(<double>random() * count)]


cdef inline Py_ssize_t _find_last_blank(const char* p, Py_ssize_t start, Py_ssize_t end):
    """Index of the last blank in [start, end), or -1."""
    cdef Py_ssize_t at = end - 1
    while at >= start:
        if p[at] == 32:
            return at
        at -= 1
    return -1


cdef object _between(const char* p, Py_ssize_t start, Py_ssize_t end):
    """meshloop._between for a non-empty [start, end): (reply, names or None for a
    plain reply), or None for what is the frame parser's."""
    cdef bytes middle = PyBytes_FromStringAndSize(p + start, end - start)
    cdef object names, reply
    cdef Py_ssize_t i
    if end - start >= 2 and p[start] == 124 and p[start + 1] == 32:  # "| "
        names = middle[2:].split(b" ")
        return None if b"" in names else (None, names)
    if end - start >= 2 and p[start] == 43 and p[start + 1] == 32:  # "+ "
        names = middle[2:].split(b" ")
        reply = names.pop(0)
        if not reply or not names or b"" in names:
            return None
        return reply, names
    for i in range(start, end):
        if p[i] == 32 or <unsigned char>p[i] < 32:
            return None
    return middle, None


def mesh_loop(bytes data, Py_ssize_t pos, plans_for, rmsg_run, set pending, unsubscribe):
    """See meshloop.mesh_loop."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t nl, a0, a1, s1, z, i, size, end, digits, step, after, at, line_len
    cdef Py_ssize_t small = SMALL_PAYLOAD
    cdef unsigned char c
    cdef bint ok
    cdef bytes account, subject, tail, last_account = None
    cdef tuple targets, entry, queue
    cdef object names, reply
    plans = None
    while pos < n:
        if (
            n - pos < 5 or p[pos] != 82 or p[pos + 1] != 77 or p[pos + 2] != 83
            or p[pos + 3] != 71 or p[pos + 4] != 32
        ):
            break  # not "RMSG "
        nl = _find_crlf(p, pos, n)
        if nl < 0:
            break
        a0 = pos + 5
        a1 = _find_blank(p, a0, nl)
        if a1 <= a0:
            break
        s1 = _find_blank(p, a1 + 1, nl)
        if s1 <= a1 + 1:
            break  # no subject
        z = _find_last_blank(p, s1, nl)  # the blank before the size
        reply = None
        names = None
        if z > s1:
            between = _between(p, s1 + 1, z)
            if between is None:
                break
            reply, names = <tuple>between
        digits = nl - z - 1
        if digits <= 0 or digits > 9:
            break
        size = 0
        ok = True
        i = z + 1
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
        if end + 2 > n or p[end] != 13 or p[end + 1] != 10:
            break
        account = PyBytes_FromStringAndSize(p + a0, a1 - a0)
        subject = PyBytes_FromStringAndSize(p + a1 + 1, s1 - a1 - 1)
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
            rmsg_run(
                account, subject, reply, () if names is None else tuple(names), payloads,
                PyBytes_FromStringAndSize(p + z + 1, nl - z - 1),
            )
            pos = after
            continue
        if last_account is None or account != last_account:
            plans = plans_for(account)
            last_account = account
        plan = plans.plan(subject)
        if plan is None:
            break
        targets = <tuple>(<tuple>plan)[0]
        # " [<reply> ]<size>\r\n<payload>\r\n"
        if reply is None:
            tail = PyBytes_FromStringAndSize(p + z, end + 2 - z)
        elif names is None:
            tail = PyBytes_FromStringAndSize(p + s1, end + 2 - s1)
        else:
            tail = b" " + <bytes>reply + PyBytes_FromStringAndSize(p + z, end + 2 - z)
        for entry in targets:
            _deliver(entry, tail, size, pending, unsubscribe)
        if names:
            for queue in <tuple>(<tuple>plan)[3]:
                if queue[0] not in names:
                    continue
                member = _pick_local(queue)
                if member is not None:
                    _deliver(member, tail, size, pending, unsubscribe)
        pos = end + 2
    return pos
