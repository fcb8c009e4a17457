# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The mesh loop, compiled: the twin of meshloop.py, which is the reference.

Same contract, same steps, same output (tests/unit/core/ compares them byte for byte);
the bytes of the ring piece are scanned in C, every index checked against the length
before it is read. Account and subject are looked up where they lie in the buffer
(``_plans.Plans.lookup``), and deliveries joined from the buffer (``_plans.deliver``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp

from random import random

from shardbroker.core._plans cimport SHARED_TAIL, Plans, deliver
from shardbroker.core._scan cimport find_blank, find_crlf, run_end, size_at

from shardbroker.core.plans import SMALL_PAYLOAD


cdef inline object _pick_local(tuple queue):
    """publoop.pick_local: the same member for the same random()."""
    cdef tuple local = <tuple>queue[4]
    cdef Py_ssize_t count = len(local)
    if count == 0:
        return None
    if count == 1:
        return local[0]
    return local[<Py_ssize_t>(<double>random() * count)]


cdef inline bint _stranded(tuple queues, object names):
    """Whether a queue group named in the frame has no local member (meshloop.py)."""
    cdef tuple queue
    for queue in queues:
        if not queue[4] and queue[0] in names:
            return True
    return False


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
    cdef Py_ssize_t nl, a0, a1, s1, z, size, end, step, after, at
    cdef Py_ssize_t small = SMALL_PAYLOAD
    cdef bytes tail_bytes, last_account = None
    cdef const char* tail
    cdef Py_ssize_t tail_len
    cdef tuple targets, entry, queue
    cdef object names, reply
    plans = None
    while pos < n:
        if (
            n - pos < 5 or p[pos] != 82 or p[pos + 1] != 77 or p[pos + 2] != 83
            or p[pos + 3] != 71 or p[pos + 4] != 32
        ):
            break  # not "RMSG "
        nl = find_crlf(p, pos, n)
        if nl < 0:
            break
        a0 = pos + 5
        a1 = find_blank(p, a0, nl)
        if a1 <= a0:
            break
        s1 = find_blank(p, a1 + 1, nl)
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
        size = size_at(p, z + 1, nl)
        if size < 0:
            break
        end = nl + 2 + size
        if end + 2 > n or p[end] != 13 or p[end + 1] != 10:
            break
        after = run_end(p, n, pos, nl + 2, end + 2)
        step = end + 2 - pos
        if after > end + 2:
            if size > small:
                break  # a run of large payloads: the parser's blocks
            payloads = [
                PyBytes_FromStringAndSize(p + at, size) for at in range(nl + 2, after, step)
            ]
            rmsg_run(
                PyBytes_FromStringAndSize(p + a0, a1 - a0),
                PyBytes_FromStringAndSize(p + a1 + 1, s1 - a1 - 1),
                reply, () if names is None else tuple(names), payloads,
                PyBytes_FromStringAndSize(p + z + 1, nl - z - 1),
            )
            pos = after
            continue
        if (
            last_account is None
            or PyBytes_GET_SIZE(last_account) != a1 - a0
            or memcmp(PyBytes_AS_STRING(last_account), p + a0, <size_t>(a1 - a0)) != 0
        ):
            last_account = PyBytes_FromStringAndSize(p + a0, a1 - a0)
            plans = plans_for(last_account)
        if type(plans) is Plans:
            plan = (<Plans>plans).lookup(p + a1 + 1, s1 - a1 - 1)
        else:
            plan = plans.plan(PyBytes_FromStringAndSize(p + a1 + 1, s1 - a1 - 1))
        if plan is None:
            break
        if names and _stranded(<tuple>(<tuple>plan)[3], names):
            break  # a picked group has no member here: the router passes it on
        targets = <tuple>(<tuple>plan)[0]
        # " [<reply> ]<size>\r\n<payload>\r\n"
        if reply is None:
            tail = p + z
            tail_len = end + 2 - z
        elif names is None:
            tail = p + s1
            tail_len = end + 2 - s1
        else:
            tail_bytes = b" " + <bytes>reply + PyBytes_FromStringAndSize(p + z, end + 2 - z)
            tail = PyBytes_AS_STRING(tail_bytes)
            tail_len = PyBytes_GET_SIZE(tail_bytes)
        shared = PyBytes_FromStringAndSize(tail, tail_len) if tail_len >= SHARED_TAIL else None
        for entry in targets:
            deliver(entry, tail, tail_len, shared, size, pending, unsubscribe)
        if names:
            for queue in <tuple>(<tuple>plan)[3]:
                if queue[0] not in names:
                    continue
                member = _pick_local(queue)
                if member is not None:
                    deliver(<tuple>member, tail, tail_len, shared, size, pending, unsubscribe)
        pos = end + 2
    return pos
