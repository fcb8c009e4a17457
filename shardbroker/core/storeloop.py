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

``append_record`` encodes a message record of the file store (the storage shard's other
per-message step, a store of each publish) into a block's write buffer.
"""

from __future__ import annotations

import struct
from typing import Any
from zlib import crc32

_RMSG = b"RMSG "
_DIGITS = frozenset(b"0123456789")


def store_loop(data: bytes, pos: int, on_message: Any) -> tuple[int, int]:
    """Hand the plain forwarded messages of ``data`` from ``pos`` to ``on_message``;
    returns (the position of the first frame left to the frame parser, messages)."""
    n = len(data)
    msgs = 0
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
        if not 0 < len(size_tok) <= 9 or not all(b in _DIGITS for b in size_tok):
            break
        size = int(size_tok)
        end = nl + 2 + size
        if end + 2 > n or data[end : end + 2] != b"\r\n":
            break
        on_message(account, subject, reply, b"", data[nl + 2 : end])
        msgs += 1
        pos = end + 2
    return pos, msgs


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
