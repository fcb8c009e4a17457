"""The compiled per-message core, and its pure-Python twin.

Python builds plans, the core executes them (ARCHITECTURE "Milestone 2"): for each
subject of an account the worker builds a plan once (who gets the message, with which
bytes), and a loop written for speed takes a whole read, routes every message it can by
its plan, and hands the connection's parser only what needs the general path. Every
compiled module here has a pure-Python twin with the same contract, which is the
reference the differential tests (tests/unit/core/) compare it with, byte for byte.

``IMPLEMENTATION`` says which runs: "compiled" when the extension was built (``pip
install`` builds it with Cython and the C compiler), "pure" when it was not, or when
``SHARDBROKER_PURE_CORE=1`` asks for the twin. Layer 0: imports nothing of the broker.
"""

from __future__ import annotations

import os
from typing import Any

from shardbroker.core import budget, meshloop, plans, publoop, storeloop, wsmask

PURE_ENV = "SHARDBROKER_PURE_CORE"

pub_loop = publoop.pub_loop
pub_budget = budget.pub_budget
mesh_loop = meshloop.mesh_loop
store_loop = storeloop.store_loop
append_record = storeloop.append_record
decode_records = storeloop.decode_records
format_deliveries = storeloop.format_deliveries
Plans: Any = plans.Plans
Subscription: Any = plans.Subscription
Output: Any = plans.Output
ws_unmask_runs = wsmask.unmask_runs
IMPLEMENTATION = "pure"
if os.environ.get(PURE_ENV, "") not in ("1", "true", "yes"):
    try:
        from shardbroker.core import (  # type: ignore[attr-defined]  # built by pip
            _budget,
            _meshloop,
            _plans,
            _publoop,
            _storeloop,
            _wsmask,
        )
    except ImportError:
        pass  # not built: the twins serve (the supervisor logs which runs)
    else:
        pub_loop = _publoop.pub_loop
        pub_budget = _budget.pub_budget
        mesh_loop = _meshloop.mesh_loop
        store_loop = _storeloop.store_loop
        append_record = _storeloop.append_record
        decode_records = _storeloop.decode_records
        format_deliveries = _storeloop.format_deliveries
        Plans = _plans.Plans
        Subscription = _plans.Subscription
        Output = _plans.Output
        ws_unmask_runs = _wsmask.unmask_runs
        IMPLEMENTATION = "compiled"

__all__ = [
    "IMPLEMENTATION",
    "PURE_ENV",
    "Output",
    "Plans",
    "Subscription",
    "append_record",
    "decode_records",
    "format_deliveries",
    "mesh_loop",
    "pub_budget",
    "pub_loop",
    "store_loop",
    "ws_unmask_runs",
]
