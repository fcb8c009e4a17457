# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The publish budget scan, compiled: the twin of budget.py, which is the reference.

Same contract, same results (tests/unit/core/ compares them); the bytes of the read are
scanned in C, every index checked against the buffer's length before it is read, and
nothing is allocated but the result.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr

cdef enum:
    DONE = 0
    SPENT = 1
    PARTIAL = 2
    CONNECT = 3
    PARSER = 4
    MAX_SIZE_DIGITS = 9
    VERB_ROOM = 8
    MAX_ARGS = 6


cdef inline Py_ssize_t _size(const char* p, Py_ssize_t start, Py_ssize_t end):
    """budget._size on p[start:end]."""
    cdef Py_ssize_t size = 0, i
    cdef unsigned char c
    if end - start <= 0 or end - start > MAX_SIZE_DIGITS:
        return -1
    for i in range(start, end):
        c = <unsigned char>p[i]
        if c < 48 or c > 57:
            return -1
        size = size * 10 + (c - 48)
    return size


cdef inline bint _verb_is(
    const char* p, Py_ssize_t start, Py_ssize_t end, const char* verb, Py_ssize_t k
):
    """p[start:end].upper() == verb (k bytes, upper case)."""
    cdef Py_ssize_t i
    cdef unsigned char c
    if end - start != k:
        return False
    for i in range(k):
        c = <unsigned char>p[start + i]
        if 97 <= c <= 122:
            c -= 32
        if c != <unsigned char>verb[i]:
            return False
    return True


def pub_budget(
    bytes data,
    Py_ssize_t pos,
    Py_ssize_t max_msgs,
    Py_ssize_t max_bytes,
    Py_ssize_t max_control_line,
    Py_ssize_t max_payload,
    bint stop_at_connect,
):
    """See budget.pub_budget."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t msgs = 0, nbytes = 0
    cdef Py_ssize_t nl, line_end, i, count, size, header, end
    cdef Py_ssize_t starts[MAX_ARGS]
    cdef Py_ssize_t ends[MAX_ARGS]
    cdef const char* q
    cdef unsigned char c
    cdef bint is_pub, is_hpub
    while pos < n:
        q = <const char*>memchr(p + pos, 10, <size_t>(n - pos))
        if q == NULL:
            if n - pos > max_control_line + VERB_ROOM:
                return n, msgs, nbytes, PARSER
            return pos, msgs, nbytes, PARTIAL
        nl = q - p
        line_end = nl - 1 if nl > pos and p[nl - 1] == 13 else nl
        if line_end - pos > max_control_line + VERB_ROOM:
            return n, msgs, nbytes, PARSER
        if line_end == pos or p[pos] == 32 or p[pos] == 9:
            return n, msgs, nbytes, PARSER
        # The arguments, split on blanks (budget.py says why); at most MAX_ARGS kept.
        count = 0
        i = pos
        while i < line_end:
            c = <unsigned char>p[i]
            if c == 32 or c == 9:
                i += 1
                continue
            if count < MAX_ARGS:
                starts[count] = i
            while i < line_end and p[i] != 32 and p[i] != 9:
                i += 1
            if count < MAX_ARGS:
                ends[count] = i
            count += 1
        is_pub = _verb_is(p, starts[0], ends[0], b"PUB", 3)
        is_hpub = not is_pub and _verb_is(p, starts[0], ends[0], b"HPUB", 4)
        if is_pub or is_hpub:
            if (is_pub and count != 3 and count != 4) or (is_hpub and count != 4 and count != 5):
                return n, msgs, nbytes, PARSER
            size = _size(p, starts[count - 1], ends[count - 1])
            if size < 0 or size > max_payload:
                return n, msgs, nbytes, PARSER
            if is_hpub:
                header = _size(p, starts[count - 2], ends[count - 2])
                if header < 0 or header > size:
                    return n, msgs, nbytes, PARSER
            if msgs >= max_msgs or nbytes >= max_bytes:
                return pos, msgs, nbytes, SPENT
            end = nl + 1 + size + 2
            if end > n:
                return pos, msgs, nbytes, PARTIAL
            msgs += 1
            nbytes += size
            pos = end
            continue
        pos = nl + 1
        if stop_at_connect and _verb_is(p, starts[0], ends[0], b"CONNECT", 7):
            return pos, msgs, nbytes, CONNECT
    return pos, msgs, nbytes, DONE
