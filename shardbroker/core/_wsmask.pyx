# cython: boundscheck=False, wraparound=False, cdivision=True
"""Unmasking websocket payloads, compiled: the twin of wsmask.py (same contract), eight
bytes at a time, into one output object."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.string cimport memcpy


cdef inline void _xor(const unsigned char* src, unsigned char* dst, Py_ssize_t n,
                      const unsigned char* kp, Py_ssize_t offset) noexcept nogil:
    cdef unsigned char k[8]
    cdef uint64_t word, k64
    cdef Py_ssize_t i
    for i in range(8):
        k[i] = kp[(offset + i) & 3]
    memcpy(&k64, k, 8)
    i = 0
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= k64
        memcpy(dst + i, &word, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ k[i & 3]
        i += 1


def unmask(const unsigned char[::1] data, bytes key, Py_ssize_t offset):
    """`data` XORed with the repeated 4-byte `key`, starting at key byte `offset`."""
    cdef Py_ssize_t n = data.shape[0]
    if len(key) != 4:
        raise ValueError("a websocket masking key has 4 bytes")
    out = PyBytes_FromStringAndSize(NULL, n)
    if n:
        _xor(&data[0], <unsigned char*>PyBytes_AS_STRING(out), n,
             <const unsigned char*>PyBytes_AS_STRING(key), offset)
    return out


def unmask_runs(bytes data, list runs):
    """The runs (start, length, key or None, key offset) of `data` one after the other,
    each unmasked with its key; `data` itself when one unmasked run covers it all."""
    cdef Py_ssize_t n = len(data)
    cdef Py_ssize_t total = 0, start, length, offset, pos = 0
    cdef const unsigned char* src = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef unsigned char* dst
    if len(runs) == 1:
        start, length, key, offset = runs[0]
        if key is None and start == 0 and length == n:
            return data
    for run in runs:
        start, length, key, offset = run
        if start < 0 or length < 0 or start + length > n:
            raise ValueError("a run outside the data")
        if key is not None and len(<bytes>key) != 4:
            raise ValueError("a websocket masking key has 4 bytes")
        total += length
    out = PyBytes_FromStringAndSize(NULL, total)
    dst = <unsigned char*>PyBytes_AS_STRING(out)
    for run in runs:
        start, length, key, offset = run
        if key is None:
            memcpy(dst + pos, src + start, length)
        else:
            _xor(src + start, dst + pos, length,
                 <const unsigned char*>PyBytes_AS_STRING(<bytes>key), offset)
        pos += length
    return out
