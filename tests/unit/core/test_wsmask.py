"""Unmasking websocket payloads: the compiled twin (core/_wsmask.pyx) against the pure one
(core/wsmask.py) and the definition, at every key offset, around the 8-byte steps, and
for several runs of one read gathered into one object."""

from __future__ import annotations

import os
import random

import pytest

from shardbroker import core
from shardbroker.core import wsmask

KEY = b"\x37\xfa\x21\x3d"
OTHER = b"\x01\x80\xff\x10"
# Where the extension is not built (or SHARDBROKER_PURE_CORE asks for the twin), the
# compiled one is not there to compare.
needs_compiled = pytest.mark.skipif(
    core.IMPLEMENTATION != "compiled", reason="the compiled core is not in use"
)
SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 4096, 65537]


def xor(data: bytes, key: bytes, offset: int) -> bytes:
    return bytes(b ^ key[(offset + i) % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", SIZES)
def test_wsmask_pure_is_the_definition(size: int) -> None:
    data = os.urandom(size)
    for offset in range(4):
        assert wsmask.unmask(data, KEY, offset) == xor(data, KEY, offset)
        assert wsmask.unmask_runs(data, [(0, size, KEY, offset)]) == xor(data, KEY, offset)


def runs_cases() -> list[tuple[bytes, list[wsmask.Run]]]:
    rng = random.Random(5)
    data = os.urandom(70_000)
    cases: list[tuple[bytes, list[wsmask.Run]]] = [
        (data, [(0, len(data), None, 0)]),
        (data, [(10, 0, KEY, 0)]),
        (data, [(3, 9, KEY, 1), (20, 100, None, 0), (200, 65_000, OTHER, 3)]),
        (b"", []),
    ]
    for _ in range(20):
        runs: list[wsmask.Run] = []
        pos = 0
        while pos < len(data) and len(runs) < 6:
            pos += rng.randrange(0, 14)
            length = min(rng.randrange(0, 20_000), len(data) - pos)
            runs.append((pos, length, rng.choice([KEY, OTHER, None]), rng.randrange(4)))
            pos += length
        cases.append((data, runs))
    return cases


@pytest.mark.parametrize(("data", "runs"), runs_cases())
def test_wsmask_runs_gather_in_order(data: bytes, runs: list[wsmask.Run]) -> None:
    expected = b"".join(
        data[s : s + n] if k is None else xor(data[s : s + n], k, o) for s, n, k, o in runs
    )
    assert wsmask.unmask_runs(data, runs) == expected
    assert core.ws_unmask_runs(data, runs) == expected


def test_wsmask_one_plain_run_of_everything_is_the_data_itself() -> None:
    data = os.urandom(1000)
    assert core.ws_unmask_runs(data, [(0, 1000, None, 0)]) is data
    assert wsmask.unmask_runs(data, [(0, 1000, None, 0)]) is data


@pytest.mark.parametrize("run", [(-1, 2, None, 0), (5, 10, KEY, 0), (0, -1, None, 0)])
def test_wsmask_runs_outside_the_data_are_refused(run: wsmask.Run) -> None:
    for gather in (wsmask.unmask_runs, core.ws_unmask_runs):
        with pytest.raises(ValueError):
            gather(b"0123456789", [run, (0, 1, None, 0)])


@needs_compiled
@pytest.mark.parametrize("size", SIZES)
def test_wsmask_compiled_is_the_pure_one(size: int) -> None:
    from shardbroker.core import _wsmask  # type: ignore[attr-defined]  # built by pip

    data = os.urandom(size)
    for offset in range(4):
        assert _wsmask.unmask(data, KEY, offset) == wsmask.unmask(data, KEY, offset)
        assert _wsmask.unmask(memoryview(data)[1:], KEY, offset) == wsmask.unmask(
            data[1:], KEY, offset
        )
