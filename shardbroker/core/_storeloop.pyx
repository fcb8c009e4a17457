# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""The storage loop, compiled: the twin of storeloop.py, which is the reference.

Same contract, same steps, same calls (tests/unit/core/ compares them); the bytes of
the ring piece are scanned in C, every index checked against the length before it is
read.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.string cimport memcmp, memcpy

from shardbroker.core._scan cimport find_crlf, size_at

from shardbroker.core import storeloop as _twin


cdef inline Py_ssize_t _digits(const char* p, Py_ssize_t a, Py_ssize_t b, long long* out):
    """The value of p[a:b] when it is 1 to 18 ASCII digits, else -1."""
    cdef long long v = 0
    cdef Py_ssize_t i
    cdef unsigned char c
    if b - a <= 0 or b - a > 18:
        return -1
    for i in range(a, b):
        c = <unsigned char>p[i]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    out[0] = v
    return 0


cdef inline Py_ssize_t _ack_head(
    const char* p, Py_ssize_t s0, Py_ssize_t s1, long long* sseq, long long* dseq
):
    """The end of the head ``$JS.ACK.<stream>.<consumer>`` of a plain ack subject
    p[s0:s1] (storeloop._plain_ack), with its two sequences; -1 when it is not one."""
    cdef Py_ssize_t dots[8]
    cdef Py_ssize_t ndots = 0
    cdef Py_ssize_t i
    if (
        s1 - s0 < 8 or p[s0] != 36 or p[s0 + 1] != 74 or p[s0 + 2] != 83 or p[s0 + 3] != 46
        or p[s0 + 4] != 65 or p[s0 + 5] != 67 or p[s0 + 6] != 75 or p[s0 + 7] != 46
    ):
        return -1  # not "$JS.ACK."
    for i in range(s0, s1):
        if p[i] == 46:
            if ndots == 8:
                return -1  # a tenth token
            dots[ndots] = i
            ndots += 1
    if ndots != 8:
        return -1
    if _digits(p, dots[4] + 1, dots[5], sseq) < 0 or _digits(p, dots[5] + 1, dots[6], dseq) < 0:
        return -1
    return dots[3]


cdef inline bint _same(bytes known, const char* p, Py_ssize_t a, Py_ssize_t b):
    """Is p[a:b] the bytes ``known``?"""
    cdef Py_ssize_t k = PyBytes_GET_SIZE(known)
    return k == b - a and memcmp(PyBytes_AS_STRING(known), p + a, <size_t>k) == 0


def store_loop(bytes data, Py_ssize_t pos, on_message, on_acks=None):
    """See storeloop.store_loop."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t nl, i, size, end, nargs, msgs = 0, head_end
    cdef Py_ssize_t starts[5]
    cdef Py_ssize_t ends[5]
    cdef long long sseq, dseq
    cdef unsigned char c
    cdef bint ok
    cdef bint collect = on_acks is not None
    cdef object reply
    cdef bytes run_account = b""
    cdef bytes run_head = b""
    cdef list seqs = []
    while pos < n:
        if (
            n - pos < 5 or p[pos] != 82 or p[pos + 1] != 77 or p[pos + 2] != 83
            or p[pos + 3] != 71 or p[pos + 4] != 32
        ):
            break  # not "RMSG "
        nl = find_crlf(p, pos, n)
        if nl < 0:
            break
        # Split the arguments at single blanks, as bytes.split(b" ") does: up to 4.
        nargs = 0
        starts[0] = pos + 5
        ok = True
        i = pos + 5
        while i < nl:
            if p[i] == 32:
                ends[nargs] = i
                nargs += 1
                if nargs == 4:
                    ok = False  # a fifth argument: queue groups
                    break
                starts[nargs] = i + 1
            i += 1
        if not ok:
            break
        ends[nargs] = nl
        nargs += 1
        if nargs != 3 and nargs != 4:
            break
        if ends[0] == starts[0] or ends[1] == starts[1]:
            break  # no account or no subject
        if nargs == 4:
            if ends[2] == starts[2]:
                break
            c = <unsigned char>p[starts[2]]
            if c == 43 or c == 124:  # "+" or "|": the queue-group forms
                break
        size = size_at(p, starts[nargs - 1], nl)
        if size < 0:
            break
        end = nl + 2 + size
        if end + 2 > n or p[end] != 13 or p[end + 1] != 10:
            break
        msgs += 1
        if collect and nargs == 3 and (
            size == 0
            or (
                size == 4 and p[nl + 2] == 43 and p[nl + 3] == 65 and p[nl + 4] == 67
                and p[nl + 5] == 75
            )
        ):
            head_end = _ack_head(p, starts[1], ends[1], &sseq, &dseq)
            if head_end >= 0:
                if seqs and (
                    not _same(run_account, p, starts[0], ends[0])
                    or not _same(run_head, p, starts[1], head_end)
                ):
                    on_acks(run_account, run_head, seqs)
                    seqs = []
                if not seqs:
                    run_account = PyBytes_FromStringAndSize(p + starts[0], ends[0] - starts[0])
                    run_head = PyBytes_FromStringAndSize(p + starts[1], head_end - starts[1])
                seqs.append(sseq)
                seqs.append(dseq)
                pos = end + 2
                continue
        if seqs:
            on_acks(run_account, run_head, seqs)
            seqs = []
        if nargs == 4:
            reply = PyBytes_FromStringAndSize(p + starts[2], ends[2] - starts[2])
        else:
            reply = None
        on_message(
            PyBytes_FromStringAndSize(p + starts[0], ends[0] - starts[0]),
            PyBytes_FromStringAndSize(p + starts[1], ends[1] - starts[1]),
            reply,
            b"",
            PyBytes_FromStringAndSize(p + nl + 2, size),
        )
        pos = end + 2
    if seqs:
        on_acks(run_account, run_head, seqs)
    return pos, msgs


cdef unsigned int _CRC_TABLE[256]


cdef void _crc_init():
    cdef unsigned int c, i, k
    for i in range(256):
        c = i
        for k in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLE[i] = c


_crc_init()


cdef inline unsigned int _crc32(const unsigned char* p, Py_ssize_t n):
    """zlib's crc32 (IEEE 802.3, reflected), table-driven: records are short."""
    cdef unsigned int c = 0xFFFFFFFF
    cdef Py_ssize_t i
    for i in range(n):
        c = _CRC_TABLE[(c ^ p[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


cdef inline void _put_u32(unsigned char* q, unsigned int v):
    q[0] = v & 0xFF
    q[1] = (v >> 8) & 0xFF
    q[2] = (v >> 16) & 0xFF
    q[3] = (v >> 24) & 0xFF


cdef inline void _put_u64(unsigned char* q, unsigned long long v):
    cdef int i
    for i in range(8):
        q[i] = (v >> (8 * i)) & 0xFF


def append_record(
    bytearray buf, Py_ssize_t rlen, unsigned long long seq, long long ts,
    bytes sbytes, bytes hdr, bytes data,
):
    """See storeloop.append_record."""
    cdef Py_ssize_t slen = PyBytes_GET_SIZE(sbytes)
    cdef Py_ssize_t hlen = PyBytes_GET_SIZE(hdr)
    cdef Py_ssize_t dlen = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t need = 22 + slen + (4 + hlen if hlen else 0) + dlen + 8
    cdef Py_ssize_t off = PyByteArray_GET_SIZE(buf)
    cdef unsigned char* q
    cdef Py_ssize_t at
    if rlen < 0 or rlen > 0x7FFFFFFF or slen > 0xFFFF or hlen > 0xFFFFFFFF:
        raise OverflowError("record field out of range")
    if PyByteArray_Resize(buf, off + need) < 0:
        raise MemoryError()
    q = <unsigned char*>PyByteArray_AS_STRING(buf) + off
    _put_u32(q, <unsigned int>(rlen | (0x80000000 if hlen else 0)))
    _put_u64(q + 4, seq)
    _put_u64(q + 12, <unsigned long long>ts)
    q[20] = slen & 0xFF
    q[21] = (slen >> 8) & 0xFF
    at = 22
    memcpy(q + at, PyBytes_AS_STRING(sbytes), <size_t>slen)
    at += slen
    if hlen:
        _put_u32(q + at, <unsigned int>hlen)
        at += 4
        memcpy(q + at, PyBytes_AS_STRING(hdr), <size_t>hlen)
        at += hlen
    memcpy(q + at, PyBytes_AS_STRING(data), <size_t>dlen)
    at += dlen
    _put_u32(q + at, _crc32(q, at))
    _put_u32(q + at + 4, <unsigned int>rlen)


cdef inline unsigned int _get_u32(const unsigned char* q):
    return q[0] | (<unsigned int>q[1] << 8) | (<unsigned int>q[2] << 16) | (<unsigned int>q[3] << 24)


def decode_records(
    offs, lens, tss, list subjs, long long first, list slots, src, Py_ssize_t shift,
    bint verify, make, list run,
):
    """See storeloop.decode_records. A record whose offsets do not lie inside ``src``
    (a damaged block) is left to the twin, with the slots after it."""
    cdef const unsigned char[::1] view = src
    cdef const long long[::1] offv = offs
    cdef const int[::1] lenv = lens
    cdef const long long[::1] tsv = tss
    cdef const unsigned char* q
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t nslots = len(slots)
    cdef Py_ssize_t k, i, off, end, p, hlen
    cdef object ss, sb, hdr
    if n == 0:
        return _twin.decode_records(offs, lens, tss, subjs, first, slots, src, shift, verify, make, run)
    q = &view[0]
    for k in range(nslots):
        i = slots[k]
        if i < 0 or i >= offv.shape[0] or i >= lenv.shape[0] or i >= tsv.shape[0]:
            break
        off = offv[i] - shift
        end = off + lenv[i] - 8
        if off < 0 or end > n or end - off < 22:
            break
        if verify:
            if end + 8 > n:
                break
            if _get_u32(q + end + 4) != <unsigned int>lenv[i] or _get_u32(q + end) != _crc32(q + off, end - off):
                return i
        ss = subjs[i]
        sb = ss.sbytes
        p = off + 22 + len(sb)
        if p > end:
            break
        if _get_u32(q + off) & 0x80000000:
            if p + 4 > end:
                break
            hlen = _get_u32(q + p)
            if hlen > end - p - 4:
                break
            hdr = PyBytes_FromStringAndSize(<const char*>q + p + 4, hlen)
            p += 4 + hlen
        else:
            hdr = b""
        run.append(make(ss.subject, first + i, tsv[i], hdr, PyBytes_FromStringAndSize(<const char*>q + p, end - p)))
    else:
        return -1
    return _twin.decode_records(offs, lens, tss, subjs, first, slots[k:], src, shift, verify, make, run)


cdef inline int _ndigits(long long v):
    """Characters %d writes for v."""
    cdef int k = 1
    cdef unsigned long long u
    if v < 0:
        k = 2
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while u >= 10:
        u //= 10
        k += 1
    return k


cdef inline char* _put_int(char* q, long long v, int width):
    """Write v in its `width` characters (from _ndigits) at q; returns the end."""
    cdef unsigned long long u
    cdef char* at = q + width
    if v < 0:
        q[0] = 45  # "-"
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        at -= 1
        at[0] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    return q + width


def format_deliveries(
    list msgs, bytes prefix, long long dseq, long long npc, now, deadline, pending,
    list records,
):
    """See storeloop.format_deliveries."""
    cdef Py_ssize_t slen, plen = PyBytes_GET_SIZE(prefix), hlen, dlen, size
    cdef const char* sp
    cdef char* q
    cdef long long seq, ts
    cdef int wseq, wdseq, wts, wnpc, whl, wtot
    cdef object msg, hdr, data, record, entry
    cdef bint track = pending is not None
    cdef dict table = pending if track else None
    for msg in msgs:
        if npc > 0:
            npc -= 1
        hdr = msg.hdr
        data = msg.data
        seq = msg.seq
        ts = msg.ts
        sp = PyUnicode_AsUTF8AndSize(msg.subject, &slen)
        hlen = PyBytes_GET_SIZE(<bytes?>hdr)
        dlen = PyBytes_GET_SIZE(<bytes?>data)
        wseq = _ndigits(seq)
        wdseq = _ndigits(dseq)
        wts = _ndigits(ts)
        wnpc = _ndigits(npc)
        whl = _ndigits(hlen)
        wtot = _ndigits(hlen + dlen)
        # "<subject> <prefix>1.<seq>.<dseq>.<ts>.<npc> <hlen> <total>\r\n<hdr><data>\r\n"
        size = (slen + 1 + plen + 2 + wseq + 1 + wdseq + 1 + wts + 1 + wnpc + 1 + whl + 1
                + wtot + 2 + hlen + dlen + 2)
        record = PyBytes_FromStringAndSize(NULL, size)
        q = PyBytes_AS_STRING(record)
        memcpy(q, sp, <size_t>slen)
        q += slen
        q[0] = 32
        q += 1
        memcpy(q, PyBytes_AS_STRING(prefix), <size_t>plen)
        q += plen
        q[0] = 49  # "1"
        q[1] = 46
        q = _put_int(q + 2, seq, wseq)
        q[0] = 46
        q = _put_int(q + 1, dseq, wdseq)
        q[0] = 46
        q = _put_int(q + 1, ts, wts)
        q[0] = 46
        q = _put_int(q + 1, npc, wnpc)
        q[0] = 32
        q = _put_int(q + 1, hlen, whl)
        q[0] = 32
        q = _put_int(q + 1, hlen + dlen, wtot)
        q[0] = 13
        q[1] = 10
        q += 2
        memcpy(q, PyBytes_AS_STRING(<bytes>hdr), <size_t>hlen)
        q += hlen
        memcpy(q, PyBytes_AS_STRING(<bytes>data), <size_t>dlen)
        q += dlen
        q[0] = 13
        q[1] = 10
        records.append(record)
        if track:
            entry = table.get(msg.seq)
            if entry is None:
                table[msg.seq] = [dseq, now, deadline]
            else:
                entry[1] = now
                entry[2] = deadline
        dseq += 1
    return dseq, npc
