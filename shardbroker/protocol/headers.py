"""NATS message headers: the ``NATS/1.0`` block in front of an HPUB/HMSG payload.

Pure. Lookups are by exact, case-sensitive key, as nats-server's own header scan is:
JetStream headers (``Nats-Msg-Id``, ``Nats-Expected-*``, ``Nats-Rollup``) are matched the
way the reference server matches them.
"""

from __future__ import annotations

from collections.abc import Iterable

CRLF = b"\r\n"
VERSION_LINE = b"NATS/1.0"


def header_value(block: bytes, key: bytes) -> bytes | None:
    """The value of the first header named `key`, stripped; None when absent."""
    if not block:
        return None
    start = 0
    needle = CRLF + key + b":"
    while True:
        at = block.find(needle, start)
        if at < 0:
            return None
        value_start = at + len(needle)
        end = block.find(CRLF, value_start)
        if end < 0:
            end = len(block)
        return block[value_start:end].strip()


def status_of(block: bytes) -> tuple[int, bytes]:
    """The inline status of a header block (``NATS/1.0 503``): (code, description);
    (0, b"") when there is none."""
    first = block.split(CRLF, 1)[0]
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, b""
    return int(parts[1]), parts[2] if len(parts) == 3 else b""


def build(
    pairs: Iterable[tuple[bytes, bytes]] = (), status: int = 0, description: bytes = b""
) -> bytes:
    """A header block with an optional inline status line."""
    first = VERSION_LINE
    if status:
        first += b" " + str(status).encode()
        if description:
            first += b" " + description
    parts = [first]
    parts.extend(key + b": " + value for key, value in pairs)
    return CRLF.join(parts) + CRLF + CRLF


def remove(block: bytes, keys: Iterable[bytes]) -> bytes:
    """The block without the named headers (an empty block when none remain)."""
    drop = set(keys)
    lines = block.split(CRLF)
    kept = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        name = line.split(b":", 1)[0]
        if name not in drop:
            kept.append(line)
    if len(kept) == 1 and kept[0] == VERSION_LINE:
        return b""
    return CRLF.join(kept) + CRLF + CRLF
