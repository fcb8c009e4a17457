# cython: boundscheck=False, wraparound=False, cdivision=True
"""Unmasking websocket payloads, compiled: the twin of wsmask.py (same contract), eight
bytes at a time."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.string cimport memcpy


def unmask(const unsigned char[::1] data, bytes key, Py_ssize_t offset):
    """`data` XORed with the repeated 4-byte `key`, starting at key byte `offset`."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t i
    cdef unsigned char k[8]
    cdef uint64_t word, k64
    if len(key) != 4:
        raise ValueError("a websocket masking key has 4 bytes")
    cdef const unsigned char* kp = <const unsigned char*>PyBytes_AS_STRING(key)
    out = PyBytes_FromStringAndSize(NULL, n)
    if n == 0:
        return out
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef const unsigned char* src = &data[0]
    for i in range(8):
        k[i] = kp[(offset + i) & 3]
    memcpy(&k64, k, 8)
    i = 0
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= k64
        memcpy(o + i, &word, 8)
        i += 8
    while i < n:
        o[i] = src[i] ^ k[i & 3]
        i += 1
    return out
