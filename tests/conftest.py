"""Shared fixtures: free port, temporary directories, the broker under test.

Nothing here imports the `shardbroker` package, so the integration suite can run against
the real nats-server (SHARDBROKER_TEST_TARGET=nats-server) before the broker exists.

`async def` tests are run with `asyncio.run` by `pytest_pyfunc_call` below (the venv has
no pytest-asyncio); each test gets a fresh event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:  # `tests.helpers` must import under plain `pytest` too
    sys.path.insert(0, _REPO_ROOT)

from tests.helpers import broker as broker_helpers  # noqa: E402
from tests.helpers.broker import Broker, run_broker  # noqa: E402

LOG_TAIL_CHARS = 20_000


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run coroutine test functions in a fresh event loop."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(func(**kwargs))
    return True


def pytest_runtest_setup(item: pytest.Item) -> None:
    broker_helpers.started_brokers.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Attach the log of every broker the test started to a failing report."""
    report = yield
    if report.failed:
        for b in broker_helpers.started_brokers:
            log = b.log_text()
            if len(log) > LOG_TAIL_CHARS:
                log = "...\n" + log[-LOG_TAIL_CHARS:]
            report.sections.append((f"broker log (pid {b.pid}, port {b.port})", log))
    return report


@pytest.fixture
def free_port() -> int:
    """A TCP port that was free a moment ago (for tests that need a fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """The broker under test with two workers and default limits."""
    with run_broker(workers=2, tmp_dir=tmp_path) as b:
        yield b


@pytest.fixture
def js_broker(tmp_path: Path) -> Iterator[Broker]:
    """The broker under test with two workers and JetStream (storage shard) on."""
    with run_broker(workers=2, tmp_dir=tmp_path, jetstream=True) as b:
        yield b


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """`broker_factory(workers=2, limits=None, extra_args=())` starts a broker that is
    stopped (and checked) when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(
            workers: int = 2,
            limits: dict[str, Any] | None = None,
            extra_args: tuple[str, ...] | list[str] = (),
            jetstream: bool = False,
            store_dir: Path | None = None,
        ) -> Broker:
            return stack.enter_context(
                run_broker(
                    workers=workers,
                    limits=limits,
                    extra_args=extra_args,
                    tmp_dir=tmp_path,
                    jetstream=jetstream,
                    store_dir=store_dir,
                )
            )

        yield start
