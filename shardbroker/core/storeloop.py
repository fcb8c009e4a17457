"""The storage loop, pure Python: the reference twin of the compiled ``_storeloop``.

Owner: the storage shard, on its loop; called by the mesh member for each piece of a
peer's ring (shard/member.py ``apply_frames``, through the storage peer's
``fast_frames``) before the frame parser. Imports nothing of the broker: the handler is
handed in.

What it does. From ``pos`` on, it takes the frames that are plain forwarded messages,
``RMSG <account> <subject> [<reply>] <size>\\r\\n<payload>\\r\\n`` (no queue groups, no
headers), and hands each one to ``on_message(account, subject, reply, b"", payload)``,
as the frame parser's ``process_rmsg`` and ``process_rmsg_run`` do on the storage shard
(which treats both alike, message by message). Publishes into streams and the acks of
consumers are such frames, one per message: parsing them here in one loop saves the
general parser's line split and dispatch per message. It stops at any other frame (HRMSG,
queue groups, interest, control verbs), at anything malformed or incomplete, and returns
where it stopped, with the count of messages handed over; ``parse_mesh`` takes the rest
exactly as it would have taken all of it.

Acks in runs. With ``on_acks``, the plain acks of a consumer (subject
``$JS.ACK.<stream>.<consumer>.<n>.<sseq>.<dseq>.<ts>.<pending>``, exactly 9 tokens, the
stream and consumer sequences 1 to 18 digits; no reply; payload empty or ``+ACK``) are not
handed over one by one: consecutive ones with the same account and head
(``$JS.ACK.<stream>.<consumer>``) are collected and handed to
``on_acks(account, head, seqs)`` as one flat list ``[sseq, dseq, sseq, dseq, ...]`` of
ints. A run is handed over before any other message, when the head changes, and before
the loop returns, so the handler sees every message in the order of the piece. Each ack
in a run counts as a message.

``append_record`` encodes a message record of the file store (the storage shard's other
per-message step, a store of each publish) into a block's write buffer;
``decode_records`` decodes records of a block back into messages (a consumer's reads);
``format_deliveries`` turns a run of them into a consumer's first deliveries.
"""

from __future__ import annotations

import struct
from typing import Any
from zlib import crc32

from shardbroker.core.plans import size_at

_RMSG = b"RMSG "
_DIGITS = frozenset(b"0123456789")
_ACK_PREFIX = b"$JS.ACK."
_PLUS_ACK = b"+ACK"


def store_loop(data: bytes, pos: int, on_message: Any, on_acks: Any = None) -> tuple[int, int]:
    """Hand the plain forwarded messages of ``data`` from ``pos`` to ``on_message`` (and
    runs of plain acks to ``on_acks``, if given); returns (the position of the first
    frame left to the frame parser, messages)."""
    n = len(data)
    msgs = 0
    run_account = run_head = b""
    seqs: list[int] = []
    while pos < n:
        if not data.startswith(_RMSG, pos):
            break
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            break
        args = data[pos + 5 : nl].split(b" ")
        nargs = len(args)
        if nargs == 3:
            account, subject, size_tok = args
            reply: bytes | None = None
        elif nargs == 4:
            account, subject, reply, size_tok = args
            if not reply or reply[0] in b"+|":
                break  # empty, or the queue-group forms: the parser's
        else:
            break
        if not account or not subject:
            break
        size = size_at(size_tok, 0, len(size_tok))
        if size < 0:
            break
        end = nl + 2 + size
        if end + 2 > n or data[end : end + 2] != b"\r\n":
            break
        payload = data[nl + 2 : end]
        msgs += 1
        pos = end + 2
        if on_acks is not None and reply is None and (not payload or payload == _PLUS_ACK):
            ack = _plain_ack(subject)
            if ack is not None:
                head, sseq, dseq = ack
                if seqs and (account != run_account or head != run_head):
                    on_acks(run_account, run_head, seqs)
                    seqs = []
                if not seqs:
                    run_account, run_head = account, head
                seqs.append(sseq)
                seqs.append(dseq)
                continue
        if seqs:
            on_acks(run_account, run_head, seqs)
            seqs = []
        on_message(account, subject, reply, b"", payload)
    if seqs:
        on_acks(run_account, run_head, seqs)
    return pos, msgs


def _plain_ack(subject: bytes) -> tuple[bytes, int, int] | None:
    """(head, stream seq, consumer seq) of a 9-token ack subject, or None."""
    if not subject.startswith(_ACK_PREFIX):
        return None
    tokens = subject.split(b".")
    if len(tokens) != 9:
        return None
    sseq, dseq = tokens[5], tokens[6]
    for token in (sseq, dseq):
        if not 0 < len(token) <= 18 or not all(b in _DIGITS for b in token):
            return None
    return b".".join(tokens[:4]), int(sseq), int(dseq)


# The file store's record (jetstream/fileblock.py has the format): head, subject,
# optional header block, payload, then the checksum of all of that and the length again.
_HEAD = struct.Struct("<IQqH")  # len|hbit, seq, ts, subject length: 22 bytes
_U32 = struct.Struct("<I")
_TAIL = struct.Struct("<II")  # crc32, len copy
HBIT = 1 << 31


def append_record(
    buf: bytearray, rlen: int, seq: int, ts: int, sbytes: bytes, hdr: bytes, data: bytes
) -> None:
    """Append one message record of ``rlen`` bytes to ``buf`` (a block's write buffer);
    the record is the file store's (fileblock.py), its checksum zlib's crc32."""
    slen = len(sbytes)
    if hdr:
        head = _HEAD.pack(rlen | HBIT, seq, ts, slen)
        hl = _U32.pack(len(hdr))
        crc = crc32(data, crc32(hdr, crc32(hl, crc32(sbytes, crc32(head)))))
        buf += head
        buf += sbytes
        buf += hl
        buf += hdr
    else:
        head = _HEAD.pack(rlen, seq, ts, slen)
        crc = crc32(data, crc32(sbytes, crc32(head)))
        buf += head
        buf += sbytes
    buf += data
    buf += _TAIL.pack(crc, rlen)


def decode_records(
    offs: Any, lens: Any, tss: Any, subjs: list[Any], first: int, slots: list[int],
    src: bytes | bytearray, shift: int, verify: bool, make: Any, run: list[Any],
) -> int:  # fmt: skip
    """Append ``make(subject, seq, ts, hdr, data)`` for each of ``slots`` of a block to
    ``run`` (jetstream/fileblock.py ``decode_slots`` has the block's fields: record
    offsets, lengths, times, per-subject entries with ``subject`` and ``sbytes``, the seq
    of slot 0), decoded from ``src``, which holds the block's bytes from file offset
    ``shift`` on. With ``verify`` each record's checksum and length copy are checked
    first: returns the slot of the first record that fails, -1 when none does."""
    tail = _TAIL.unpack_from
    word = _U32.unpack_from
    # Released on the way out: a live view would keep a buffer from resizing.
    with memoryview(src) as view:
        for i in slots:
            off = offs[i] - shift
            end = off + lens[i] - 8
            if verify:
                crc, length = tail(src, end) if len(src) >= end + 8 else (0, 0)
                if length != lens[i] or crc != crc32(view[off:end]):
                    return i
            ss = subjs[i]
            p = off + 22 + len(ss.sbytes)
            if word(src, off)[0] & HBIT:
                hlen = word(src, p)[0]
                hdr = bytes(view[p + 4 : p + 4 + hlen])
                p += 4 + hlen
            else:
                hdr = b""
            run.append(make(ss.subject, first + i, tss[i], hdr, bytes(view[p:end])))
    return -1


def format_deliveries(
    msgs: list[Any], prefix: bytes, dseq: int, npc: int, now: int, deadline: int,
    pending: dict[int, list[int]] | None, records: list[bytes],
) -> tuple[int, int]:  # fmt: skip
    """First deliveries of stored messages (``subject`` str, ``seq``, ``ts``, ``hdr``,
    ``data``), as a consumer's pull stretch makes them (jetstream/consumer.py): for each,
    the pending count goes down (not below 0), a JRUN record with the ack reply
    ``<prefix>1.<seq>.<dseq>.<ts>.<pending>`` is appended to ``records``, and the
    message becomes pending (``[dseq, now, deadline]``, or an entry already there gets
    the new times) unless ``pending`` is None; each takes the next consumer seq.
    Returns (next consumer seq, pending count). Sequences and times are int64."""
    append = records.append
    for msg in msgs:
        if npc > 0:
            npc -= 1
        hdr, data = msg.hdr, msg.data
        seq = msg.seq
        append(
            b"%s %s1.%d.%d.%d.%d %d %d\r\n%s%s\r\n"
            % (msg.subject.encode(), prefix, seq, dseq, msg.ts, npc,
               len(hdr), len(hdr) + len(data), hdr, data)
        )  # fmt: skip
        if pending is not None:
            entry = pending.get(seq)
            if entry is None:
                pending[seq] = [dseq, now, deadline]
            else:
                entry[1] = now
                entry[2] = deadline
        dseq += 1
    return dseq, npc
