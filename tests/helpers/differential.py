"""The same scenario against nats-server and against shardbroker (2 workers), with one
config file: the results must be equal. Owner: test processes only.

`broker_on` starts one target (SHARDBROKER_TEST_TARGET is switched for the start and
put back); `on_both` runs a scenario on nats-server first, then on shardbroker, and
returns shardbroker's result once it equals nats-server's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.broker import TARGET_ENV, Broker, run_broker

Scenario = Callable[[Broker], Awaitable[Any]]
TARGETS_IN_ORDER = ("nats-server", "shardbroker")


@contextlib.contextmanager
def broker_on(
    target: str,
    conf: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: tuple[str, ...] = (),
    jetstream: bool = False,
    store_dir: Path | None = None,
) -> Iterator[Broker]:
    monkeypatch.setenv(TARGET_ENV, target)
    try:
        with run_broker(
            workers=2,
            tmp_dir=tmp_path,
            extra_args=("-c", str(conf), *extra),
            jetstream=jetstream,
            store_dir=store_dir,
        ) as broker:
            yield broker
    finally:
        monkeypatch.setenv(TARGET_ENV, "shardbroker")


async def on_both(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    scenario: Scenario,
    jetstream: bool = False,
) -> Any:
    """Run the scenario against nats-server, then shardbroker; their results must match
    (dict results key by key first, for a readable failure)."""
    conf = tmp_path / "differential.conf"
    conf.write_text(text)
    results = {}
    for target in TARGETS_IN_ORDER:
        with broker_on(target, conf, monkeypatch, tmp_path, jetstream=jetstream) as broker:
            results[target] = await scenario(broker)
    expected, got = results["nats-server"], results["shardbroker"]
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, value in expected.items():
            assert got.get(key) == value, key
    assert got == expected
    return got
