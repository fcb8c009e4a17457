# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Plans and subscriptions, compiled: the twin of plans.py, which is the reference.

``Plans`` keeps an account's plans in its own open-addressing table keyed by the
subject's bytes, so that the loops look a subject up where it lies in the read buffer,
without making a ``bytes`` of it or calling into Python; only a miss makes one and
calls ``build``. Keys are hashed with the interpreter's own keyed bytes hash (as a
dict's are), so crafted subjects cannot pile up in one chain. ``Subscription`` is a C
struct whose counters the loops bump directly, and ``Output`` (a connection's output
list and counters) likewise; from Python they read as plans.py's.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from libc.string cimport memcmp

from shardbroker.core.plans import MAX_PLANS, SINGLE_USE


cdef extern from "Python.h":
    Py_ssize_t _Py_HashBytes(const void* data, Py_ssize_t length)


cdef Py_ssize_t _START_SLOTS = 64
cdef Py_ssize_t _MAX_PLANS = MAX_PLANS
cdef tuple _SINGLE_USE = SINGLE_USE


cdef class Output:
    """plans.Output, with its fields in C; the base of the worker's client."""

    def __cinit__(self, *args, **kwargs):
        self.out = []
        self.out_msgs = 0
        self.out_bytes = 0


cdef class Subscription:
    """plans.Subscription, with its fields in C."""

    def __init__(self, client, bytes account, bytes subject, queue, bytes sid):
        self.client = client
        self.account = account
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.max = 0
        self.delivered = 0
        self.checked = 0


cdef class Plans:
    """plans.Plans: the plans of one account's subjects, valid while its sublist's
    generation holds."""

    def __cinit__(self, sublist, build, bytes account=b"", share=None):
        self.sublist = sublist
        self.build = build
        self.account = account
        self.share = share
        self.generation = -1
        self.kept = []
        self.prefixes = {}
        self.prefix_tokens = []
        self.slots = <PlanSlot*>calloc(_START_SLOTS, sizeof(PlanSlot))
        if self.slots == NULL:
            raise MemoryError()
        self.mask = _START_SLOTS - 1
        self.count = 0

    def __dealloc__(self):
        if self.slots != NULL:
            free(self.slots)
            self.slots = NULL

    def __len__(self):
        return self.count + len(self.prefixes)

    def clear(self):
        """plans.Plans.clear."""
        self._clear()

    cdef int _clear(self) except -1:
        if self.prefixes:
            self.prefixes.clear()
            del self.prefix_tokens[:]
        return self._clear_exact()

    cdef int _clear_exact(self) except -1:
        if self.count:
            memset(self.slots, 0, (self.mask + 1) * sizeof(PlanSlot))
            self.count = 0
            self.kept.clear()  # last: dropping plans may run arbitrary deallocators
        return 0

    cdef object _by_prefix(self, const char* p, Py_ssize_t n):
        """plans.Plans._by_prefix."""
        cdef Py_ssize_t i, end, tokens, seen
        if n == 0 or p[0] == 46 or p[n - 1] == 46:
            return None
        for i in range(n - 1):
            if p[i] == 46 and p[i + 1] == 46:
                return None
        for token_count in self.prefix_tokens:
            tokens = token_count
            seen = 0
            end = -1
            for i in range(n):
                if p[i] == 46:
                    seen += 1
                    if seen == tokens:
                        end = i
                        break
            if end > 0:
                plan = self.prefixes.get(PyBytes_FromStringAndSize(p, end))
                if plan is not None:
                    return plan
        return None

    cdef int _grow(self) except -1:
        """Twice the slots, every entry moved over."""
        cdef Py_ssize_t old_size = self.mask + 1, size = old_size * 2, i, j
        cdef PlanSlot* old = self.slots
        cdef PlanSlot* slots = <PlanSlot*>calloc(size, sizeof(PlanSlot))
        if slots == NULL:
            raise MemoryError()
        for i in range(old_size):
            if old[i].key != NULL:
                j = old[i].hash & (size - 1)
                while slots[j].key != NULL:
                    j = (j + 1) & (size - 1)
                slots[j] = old[i]
        self.slots = slots
        self.mask = size - 1
        free(old)
        return 0

    cdef object lookup(self, const char* p, Py_ssize_t n):
        """The plan of the subject ``p[:n]``; built (and kept) on a miss."""
        cdef object generation = self.sublist.generation
        cdef Py_ssize_t h, i
        cdef PyObject* key
        cdef bytes subject
        if generation != self.generation:
            self._clear()
            self.generation = generation
        h = _Py_HashBytes(p, n)
        i = h & self.mask
        while True:
            key = self.slots[i].key
            if key == NULL:
                break
            if (
                self.slots[i].hash == h
                and PyBytes_GET_SIZE(<object>key) == n
                and memcmp(PyBytes_AS_STRING(<object>key), p, <size_t>n) == 0
            ):
                return <object>self.slots[i].plan
            i = (i + 1) & self.mask
        plan = self._by_prefix(p, n) if self.prefix_tokens else None
        subject = PyBytes_FromStringAndSize(p, n)
        if plan is None:
            plan = self.build(subject)
            if plan is not None and not (<tuple>plan)[2] and self.share is not None:
                length = self.share(subject)
                if length > 0:
                    if len(self.prefixes) >= _MAX_PLANS:
                        self.prefixes.clear()
                        del self.prefix_tokens[:]
                    self.prefixes[subject[:length]] = plan
                    tokens = subject.count(b".", 0, length) + 1
                    if tokens not in self.prefix_tokens:
                        self.prefix_tokens.append(tokens)
        if subject.startswith(_SINGLE_USE):
            return plan  # subjects used once (see plans.SINGLE_USE)
        if self.count >= _MAX_PLANS:
            self._clear_exact()
        if (self.count + 1) * 2 > self.mask + 1:
            self._grow()
        i = h & self.mask
        while self.slots[i].key != NULL:
            i = (i + 1) & self.mask
        self.kept.append(subject)
        self.kept.append(plan)
        self.slots[i].hash = h
        self.slots[i].key = <PyObject*>subject
        self.slots[i].plan = <PyObject*>plan
        self.count += 1
        return plan

    cpdef object plan(self, bytes subject):
        """plans.Plans.plan."""
        return self.lookup(PyBytes_AS_STRING(subject), PyBytes_GET_SIZE(subject))
