"""Polling with a deadline, like nats-server's `checkFor(t, totalWait, sleepDur, f)`.

Use it only for conditions that have no event to wait on (a process appearing or going
away, a port becoming free); message delivery is synchronised with flush()/PING-PONG.
`fn` reports "not yet" by raising AssertionError (or returning False); any other return
value means done and is returned.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _not_yet(result: object) -> bool:
    return result is False


def check_for(timeout: float, interval: float, fn: Callable[[], T]) -> T:
    """Call `fn` every `interval` seconds until it succeeds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = fn()
        except AssertionError as exc:
            last = exc
        else:
            if not _not_yet(result):
                return result
            last = None
        if time.monotonic() >= deadline:
            detail = f": {last}" if last is not None else ""
            raise AssertionError(f"condition not met after {timeout}s{detail}") from last
        time.sleep(interval)


async def async_check_for(
    # The deadline is not a cancellation: like nats checkFor, it fails with the last miss.
    timeout: float,  # noqa: ASYNC109
    interval: float,
    fn: Callable[[], Awaitable[Any] | Any],
) -> Any:
    """`check_for` for use inside a coroutine; `fn` may be sync or async."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except AssertionError as exc:
            last = exc
        else:
            if not _not_yet(result):
                return result
            last = None
        if time.monotonic() >= deadline:
            detail = f": {last}" if last is not None else ""
            raise AssertionError(f"condition not met after {timeout}s{detail}") from last
        await asyncio.sleep(interval)
