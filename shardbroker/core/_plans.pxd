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


# -- delivery, shared by the loops (inlined into each) --------------------------------

from shardbroker.core._scan cimport join_head


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
