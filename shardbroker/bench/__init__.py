"""`shardbroker bench`: a load-test runner for any NATS server (shardbroker or nats-server).

Owner: the shell (the `bench` command) and the client processes it spawns. Imports only
the standard library here, so that `cli.py` can import the command lazily and cheaply.

Modules:
  runner.py     orchestration: argument checks, the coordinator, client processes, progress
  scenarios.py  the modes (what clients a run has, when it ends, what it verifies) and the
                core roles (publisher, subscriber, requester, responder)
  client.py     a raw-socket NATS client (asyncio Protocol on uvloop): handshake, batched
                writes, the publishers' cycle of subjects and sizes (FrameCycle), MSG
                counting that predicts that cycle and skips other payloads by their size
  jetstream.py  JetStream roles and the `$JS.API` requests (msgspec JSON)
  report.py     statistics, HDR histograms, text / JSON / CSV output, the --plot chart
  probe.py      --server-pid: the server's CPU time per process (psutil)

Process model: the coordinator (the `shardbroker bench` process) never drives clients.
It checks the server, spawns `--procs` client processes (multiprocessing "spawn"), hands
each a share of the clients (from 2 processes on, senders and receivers never share one:
scenarios.plan), and steps them through ready -> go -> stop -> result over a pipe.
Progress is read from a shared array of per-client counters, which each client process
writes once per read batch or write chunk and the coordinator only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_FAILED = 1  # the run failed: server unreachable, count mismatch, timeout, ...
EXIT_USAGE = 2  # bad arguments (click/typer use 2 for usage errors too)
EXIT_INTERRUPTED = 130  # Ctrl-C in a mode that had a job to finish

DEFAULT_SERVER = "nats://127.0.0.1:4222"
DEFAULT_MSGS = 100_000
DEFAULT_SIZE = 128
DEFAULT_SUBJECT = "bench"
DEFAULT_QUEUE = "bench"
DEFAULT_STREAM = "benchstream"
DEFAULT_WINDOW = 256
DEFAULT_BATCH = 100
DEFAULT_TIMEOUT = 10.0  # seconds without any progress before a run is declared stuck

MODES = ("pub", "sub", "pubsub", "request", "reply", "queue", "js-pub", "js-consume")


class BenchError(Exception):
    """A run cannot start or did not complete; the message is one line for the user."""

    exit_status = EXIT_FAILED

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class UsageError(BenchError):
    """Bad arguments."""

    exit_status = EXIT_USAGE


@dataclass(frozen=True)
class BenchConfig:
    """Validated settings of one run (built by scenarios.build_config). Pickled to the
    client processes, so plain values only."""

    mode: str
    server: str  # URL as given (credentials included); `server_display` is safe to print
    server_display: str
    pubs: int
    subs: int
    msgs: int  # total to publish (split over publishers), per subscriber in `sub`; 0 = no limit
    msgs_given: bool
    duration: float  # seconds; 0 = run by --msgs
    size: int
    rate: float  # messages per second per publisher; 0 = as fast as possible
    subject: str
    queue: str
    procs: int
    ack: str  # js-pub: "sync" | "async"
    window: int  # js-pub async: PubAcks in flight; js-consume: max_ack_pending
    consumer: str  # js-consume: "push" | "pull"
    batch: int  # js-consume pull: messages per pull request
    stream: str
    storage: str  # "file" | "memory"
    create: bool
    keep: bool
    responders: bool  # request: start responders in this run
    timeout: float
    json: bool = False
    csv: str = ""
    plot: str = ""
    progress: bool = True
    # Publishers cycle over these payload sizes, message by message (`size` is the first).
    sizes: tuple[int, ...] = ()
    subjects: int = 0  # --subjects N: publish to <subject>.0 .. N-1, subscribe <subject>.*
    spread: int = 0  # --spread W: place connections on alternating workers 1..W
    warmup: int = 0  # request, js-pub: untimed round trips / acked publishes per client
    ack_policy: str = "explicit"  # js-consume: the consumer's ack policy
    server_pid: int = 0  # --server-pid: measure this process tree's CPU (0: don't)


@dataclass(frozen=True)
class ClientSpec:
    """One benchmark client: its role, its share of the work and where it runs."""

    index: int  # position in the run; also its slot in the shared counters
    role: str  # pub | sub | req | rep | jspub | jspush | jspull
    name: str  # e.g. "pub-1"
    proc: int = 0  # client process it runs in
    msgs: int = 0  # active roles: messages / requests to send (0: until --duration)
    queue: str = ""  # queue group ("" = none)
    unsub_after: int = 0  # sub mode: UNSUB <sid> <n> right after SUB
    target: int = 0  # --spread: the worker this client should land on (0: anywhere)
    offset: int = 0  # publishers: where in the cycle of subjects and sizes it starts
    extra: dict[str, str] = field(default_factory=dict)  # JetStream names, consumer config
