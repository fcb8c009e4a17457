# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The publish budget scan, compiled: the twin of budget.py, which is the reference.

Same contract, same results (tests/unit/core/ and tests/fuzz/ compare them); the bytes
of the read are scanned in C, every index checked against the bounds of the line or the
buffer before it is read, and nothing is allocated but the result.
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


cdef inline bint _blank(char c):
    return c == 32 or c == 9


cdef inline bint _verb(
    const char* p, Py_ssize_t pos, Py_ssize_t line_end, const char* verb, Py_ssize_t k
):
    """budget._verb: the line starts with verb (upper case, k bytes) in any case,
    followed by a blank or its end."""
    cdef Py_ssize_t i
    cdef unsigned char c
    if line_end - pos < k:
        return False
    for i in range(k):
        c = <unsigned char>p[pos + i]
        if 97 <= c <= 122:
            c -= 32
        if c != <unsigned char>verb[i]:
            return False
    return line_end == pos + k or _blank(p[pos + k])


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
    cdef Py_ssize_t nl, line_end, start, end, size, i
    cdef const char* q
    cdef unsigned char c
    cdef bint connect
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
        if line_end == pos or _blank(p[pos]):
            return n, msgs, nbytes, PARSER
        if _verb(p, pos, line_end, b"PUB", 3) or _verb(p, pos, line_end, b"HPUB", 4):
            # The size: the last argument, after any trailing blanks.
            end = line_end
            while end > pos and _blank(p[end - 1]):
                end -= 1
            start = end
            while start > pos and 48 <= <unsigned char>p[start - 1] <= 57:
                start -= 1
            if end - start <= 0 or end - start > MAX_SIZE_DIGITS or not _blank(p[start - 1]):
                return n, msgs, nbytes, PARSER
            size = 0
            for i in range(start, end):
                size = size * 10 + (<unsigned char>p[i] - 48)
            if size > max_payload:
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
        connect = stop_at_connect and _verb(p, pos, line_end, b"CONNECT", 7)
        pos = nl + 1
        if connect:
            return pos, msgs, nbytes, CONNECT
    return pos, msgs, nbytes, DONE
