# The compiled plans and subscriptions (_plans.pyx), for the loops to cimport.
from cpython.ref cimport PyObject


cdef struct PlanSlot:
    Py_ssize_t hash
    PyObject* key
    PyObject* plan


cdef class Output:
    cdef public list out
    cdef public Py_ssize_t out_msgs, out_bytes


cdef class Subscription:
    cdef public object client, account, subject, queue, sid
    cdef public Py_ssize_t max, delivered
    cdef public long checked


cdef class Plans:
    cdef public object sublist, build, share
    cdef public bytes account
    cdef public object generation
    # Plans shared under a leading part of their subjects (plans.Plans), and the token
    # counts of those parts.
    cdef public dict prefixes
    cdef public list prefix_tokens
    # The table's keys and plans, referenced from a list the cyclic GC sees (the table
    # itself holds borrowed pointers into it).
    cdef list kept
    cdef PlanSlot* slots
    cdef Py_ssize_t mask, count

    cdef object lookup(self, const char* p, Py_ssize_t n)
    cdef object _by_prefix(self, const char* p, Py_ssize_t n)
    cdef int _clear(self) except -1
    cdef int _clear_exact(self) except -1
    cdef int _grow(self) except -1
    cpdef object plan(self, bytes subject)


# -- scanning and delivery, shared by the loops (inlined into each) ----------------------

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


# From this many bytes on, a message's tail is made once and shared by its deliveries
# (each gets its head and the tail as two pieces of its output): one copy of a large
# payload per message instead of one per delivery. Smaller ones are joined to each head.
cdef enum:
    SHARED_TAIL = 512


cdef inline int deliver(
    tuple entry,
    const char* tail,
    Py_ssize_t n,
    object shared,
    Py_ssize_t size,
    set pending,
    object unsubscribe,
) except -1:
    """One message to a plan's local target ``(subscription, client, "MSG <subject>
    <sid>")``: its head and tail[:n] to the client's output (joined, or the head and
    ``shared``, the tail as bytes, when that is not None), the counters bumped, as
    publoop.py does; at its UNSUB max, the subscription is unsubscribed."""
    cdef Subscription fast
    cdef Output output
    cdef list out
    sub = entry[0]
    target = entry[1]
    if isinstance(target, Output):
        output = <Output>target
        out = output.out
        output.out_msgs += 1
        output.out_bytes += size
    else:
        out = target.out
        target.out_msgs += 1
        target.out_bytes += size
    if shared is None:
        out.append(join_head(<bytes>entry[2], tail, n))
    else:
        out.append(<bytes>entry[2])
        out.append(shared)
    pending.add(target)
    if type(sub) is Subscription:
        fast = <Subscription>sub
        fast.delivered += 1
        if fast.max and fast.delivered >= fast.max:
            unsubscribe(sub)
    else:
        sub.delivered += 1
        if sub.max and sub.delivered >= sub.max:
            unsubscribe(sub)
    return 0
