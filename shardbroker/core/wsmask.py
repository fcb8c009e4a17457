"""Unmasking websocket payloads, pure Python: the reference twin of the compiled
``_wsmask``.

Every frame a websocket client sends is XORed with a 4-byte key (RFC 6455 §5.3); the
server undoes it on every payload byte, so this is a per-byte loop of the websocket
listener (worker/websocket.py), as hot as parsing. ``unmask_runs`` gathers the payloads
of the data frames of one read into one bytes object in one pass: one allocation and
one copy however many frames the read holds. Layer 0: imports nothing of the broker.
"""

from __future__ import annotations

# A payload piece in a read: (start, length, masking key or None, key offset).
Run = tuple[int, int, "bytes | None", int]

# XOR tables: _TABLES[k] maps every byte to byte ^ k, so that bytes.translate applies one
# key byte to a whole stride of the payload at C speed.
_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def unmask(data: bytes | memoryview, key: bytes, offset: int) -> bytes:
    """`data` XORed with the repeated 4-byte `key`, starting at key byte `offset` (a
    payload cut over several reads goes on where its previous piece stopped)."""
    n = len(data)
    if n == 0:
        return b""
    raw = bytes(data)
    out = bytearray(n)
    for i in range(min(4, n)):
        out[i::4] = raw[i::4].translate(_TABLES[key[(offset + i) & 3]])
    return bytes(out)


def unmask_runs(data: bytes, runs: list[Run]) -> bytes:
    """The runs of `data` one after the other, each unmasked with its key (None: not
    masked); `data` itself when one unmasked run covers it all."""
    if len(runs) == 1:
        start, length, key, offset = runs[0]
        if key is None and start == 0 and length == len(data):
            return data
    parts = []
    for start, length, key, offset in runs:
        if start < 0 or length < 0 or start + length > len(data):
            raise ValueError("a run outside the data")
        piece = data[start : start + length]
        parts.append(piece if key is None else unmask(piece, key, offset))
    return b"".join(parts)
