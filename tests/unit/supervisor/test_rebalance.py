"""How many clients a crowded worker is asked to close (supervisor.rebalance.plan)."""

from __future__ import annotations

import pytest

from shardbroker.supervisor.rebalance import plan


@pytest.mark.parametrize(
    ("connections", "moves"),
    [
        ({1: 10, 2: 10}, {}),
        ({1: 3, 2: 1}, {}),  # two clients of difference are not worth a reconnect
        ({1: 105, 2: 95}, {}),  # within 10% of the mean
        ({1: 20, 2: 0}, {1: 5}),  # a quarter a round at most
        ({1: 8, 2: 0}, {1: 2}),
        ({1: 12, 2: 6, 3: 0}, {1: 3}),
        ({1: 400, 2: 380, 3: 0}, {1: 100, 2: 95}),
        ({1: 5}, {}),
    ],
)
def test_rebalance_plan(connections: dict[int, int], moves: dict[int, int]) -> None:
    assert plan(connections) == moves
