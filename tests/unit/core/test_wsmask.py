"""Unmasking websocket payloads: the compiled twin (core/_wsmask.pyx) against the pure one
(core/wsmask.py) and the definition, at every key offset and around the 8-byte steps."""

from __future__ import annotations

import os

import pytest

from shardbroker import core
from shardbroker.core import wsmask

KEY = b"\x37\xfa\x21\x3d"
# Where the extension is not built (or SHARDBROKER_PURE_CORE asks for the twin), the
# compiled one is not there to compare.
needs_compiled = pytest.mark.skipif(
    core.IMPLEMENTATION != "compiled", reason="the compiled core is not in use"
)


SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 4096, 65537]


@pytest.mark.parametrize("size", SIZES)
def test_wsmask_pure_is_the_definition(size: int) -> None:
    data = os.urandom(size)
    for offset in range(4):
        expected = bytes(b ^ KEY[(offset + i) % 4] for i, b in enumerate(data))
        assert wsmask.unmask(data, KEY, offset) == expected


@needs_compiled
@pytest.mark.parametrize("size", SIZES)
def test_wsmask_compiled_is_the_pure_one(size: int) -> None:
    data = os.urandom(size)
    for offset in range(4):
        assert core.ws_unmask(data, KEY, offset) == wsmask.unmask(data, KEY, offset)


@needs_compiled
def test_wsmask_takes_a_memoryview_slice() -> None:
    data = os.urandom(100)
    view = memoryview(data)[3:50]
    assert core.ws_unmask(view, KEY, 2) == wsmask.unmask(view, KEY, 2)
