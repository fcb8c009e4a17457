# Scanning helpers shared by the compiled loops, inlined into each (no module of its
# own). Every index is checked against the bound it is given before a byte is read.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy


cdef inline Py_ssize_t find_crlf(const char* p, Py_ssize_t start, Py_ssize_t n):
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


cdef inline Py_ssize_t find_blank(const char* p, Py_ssize_t start, Py_ssize_t end):
    """Index of the first blank in [start, end), or -1."""
    cdef const char* q
    if start >= end:
        return -1
    q = <const char*>memchr(p + start, 32, <size_t>(end - start))
    return -1 if q == NULL else q - p


cdef inline bint has_prefix(
    const char* p, Py_ssize_t start, Py_ssize_t end, const char* prefix, Py_ssize_t length
):
    """Whether p[start:end] starts with the prefix."""
    return end - start >= length and memcmp(p + start, prefix, <size_t>length) == 0


cdef inline bytes join_head(bytes head, const char* tail, Py_ssize_t n):
    """head + tail[:n] in one allocation (tail points into a live buffer)."""
    cdef Py_ssize_t k = PyBytes_GET_SIZE(head)
    cdef bytes joined = PyBytes_FromStringAndSize(NULL, k + n)
    cdef char* w = PyBytes_AS_STRING(joined)
    memcpy(w, PyBytes_AS_STRING(head), <size_t>k)
    memcpy(w + k, tail, <size_t>n)
    return joined


cdef inline Py_ssize_t size_at(const char* p, Py_ssize_t start, Py_ssize_t end):
    """The size p[start:end] spells in 1 to 9 ASCII digits, else -1 (plans.size_at)."""
    cdef Py_ssize_t size = 0, i
    cdef unsigned char c
    if end - start <= 0 or end - start > 9:
        return -1
    for i in range(start, end):
        c = <unsigned char>p[i]
        if c < 48 or c > 57:
            return -1
        size = size * 10 + (c - 48)
    return size


cdef inline Py_ssize_t run_end(
    const char* p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t line_end, Py_ssize_t end
):
    """Where a run of the operation at ``pos`` ends (plans.run_end): its control line,
    p[pos:line_end], repeated with a payload of the same size each time; ``end``, the
    end of the operation, when it is not repeated."""
    cdef Py_ssize_t step = end - pos, after = end
    while (
        after + step <= n
        and memcmp(p + after, p + pos, <size_t>(line_end - pos)) == 0
        and p[after + step - 2] == 13
        and p[after + step - 1] == 10
    ):
        after += step
    return after
