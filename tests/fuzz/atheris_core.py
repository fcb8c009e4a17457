"""Coverage-guided fuzzing of the compiled core against its pure-Python twin (atheris).

    python tests/fuzz/atheris_core.py [-atheris_runs=1000000] [tests/fuzz/corpus/core]

Each input is one client read and one ring piece: the compiled publish, mesh and
storage loops and the publish budget scan run on it beside their twins (publoop.py,
meshloop.py, storeloop.py, budget.py), and
any difference in where they stop, what they deliver or what they hand on, or a crash,
fails the run with the input saved. `make fuzz` runs it on a build of the extension with
AddressSanitizer and UndefinedBehaviorSanitizer (tests/fuzz/sanitized.sh), so a read
past a buffer or undefined behaviour ends the run too; tests/fuzz/test_core_fuzz.py
replays the corpus.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from shardbroker.core import budget, meshloop, plans, publoop, storeloop

from shardbroker import core
from tests.fuzz.test_core_fuzz import budget_outcome, mesh_outcome, outcome, store_outcome


def one_input(data: bytes) -> None:
    pos = data[0] % 16 if data else 0
    pos = min(pos, len(data))
    compiled = outcome("compiled", data, pos)
    if compiled != outcome("pure", data, pos) or not pos <= compiled[0] <= len(data):
        raise AssertionError(f"publish loops differ on {data!r}")
    mesh = mesh_outcome("compiled", data, pos)
    if mesh != mesh_outcome("pure", data, pos) or not pos <= mesh[0] <= len(data):
        raise AssertionError(f"mesh loops differ on {data!r}")
    store = store_outcome("compiled", data, pos)
    if store != store_outcome("pure", data, pos) or not pos <= store[0][0] <= len(data):
        raise AssertionError(f"storage loops differ on {data!r}")
    scan = budget_outcome("compiled", data, pos)
    if scan != budget_outcome("pure", data, pos) or not pos <= scan[0] <= len(data):
        raise AssertionError(f"budget scans differ on {data!r}")


def main() -> None:
    if core.IMPLEMENTATION != "compiled":
        sys.exit("the compiled core is not built (make install builds it)")
    assert publoop and meshloop and plans and storeloop and budget  # instrumented, for coverage
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
