"""Rebalancing clients across workers (not in nats-server; off unless `rebalance: true`).

Runs in the supervisor, on its tick, every `rebalance_interval`. The kernel spreads new
connections over the workers' SO_REUSEPORT listeners, but connections stay where they
landed: after a worker restart, its clients reconnected to the survivors and stay
there. The supervisor reads each ready worker's ``connections`` from the stats segment
and asks a crowded worker (a ``REBALANCE <count>`` mesh frame) to close a measured share;
the clients reconnect (nats clients do so on their own) and the kernel deals them over
every worker again, the crowded one included, so a few rounds may be needed.

The share: only above the mean by more than the tolerance (2 clients, or 10% of the
mean), only the excess over the mean, at most a quarter of the worker's clients a
round, so that a round never causes a reconnect storm.
"""

from __future__ import annotations

import math

_MIN_SPREAD = 2  # clients of imbalance that are never worth moving
_TOLERANCE = 0.10  # of the mean
_MAX_SHARE = 0.25  # of a worker's clients, per round


def plan(connections: dict[int, int]) -> dict[int, int]:
    """worker shard id -> how many clients it should close this round."""
    if len(connections) < 2:
        return {}
    total = sum(connections.values())
    mean = total / len(connections)
    if max(connections.values()) - min(connections.values()) <= max(_MIN_SPREAD, _TOLERANCE * mean):
        return {}
    target = math.ceil(mean)
    out = {}
    for shard, count in connections.items():
        excess = count - target
        if excess > 0:
            out[shard] = min(excess, max(1, int(count * _MAX_SHARE)))
    return out
