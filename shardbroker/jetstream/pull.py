"""Pull requests of a pull consumer: queueing, expiry and the pull delivery pass.

Owner: the storage shard; runs on its loop. `PullDelivery` holds the pull half of
`consumer.Consumer` (which inherits it): the state it uses is the consumer's (``waiting``,
``config``, the delivery cursor), described in consumer.py. Requests are answered with
nats-server's status lines (``408 Request Timeout``, ``409 Exceeded MaxWaiting``, ...)
built by `status`; consecutive deliveries to one reply subject leave as one JRUN frame
(`ReplyRun`). Times are ns on the consumer's clock, passed in as ``now``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from shardbroker.gofmt import duration
from shardbroker.jetstream import jsondecode
from shardbroker.jetstream.store import StoreMsg
from shardbroker.protocol import headers
from shardbroker.protocol.frames import jrun_record

# Deliveries per consumer before other work gets a turn; also what the worker gets to
# forward while the next pass is built (one big pass would leave it idle meanwhile).
MAX_BATCH_PER_PASS = 128


class PullRequest:
    __slots__ = (
        "batch", "bytes_left", "delivered", "expires_at", "heartbeat", "max_bytes",
        "next_heartbeat", "no_wait", "reply",
    )  # fmt: skip

    def __init__(
        self, reply: bytes, batch: int, max_bytes: int, expires_at: int, no_wait: bool,
        heartbeat: int, now: int,
    ) -> None:  # fmt: skip
        self.reply = reply
        self.batch = batch
        self.max_bytes = max_bytes
        self.bytes_left = max_bytes
        self.expires_at = expires_at
        self.no_wait = no_wait
        self.heartbeat = heartbeat
        self.next_heartbeat = now + heartbeat if heartbeat else 0
        self.delivered = 0


class ReplyRun:
    """Consecutive pull deliveries to one reply subject, sent as one JRUN frame. A
    status for a request is sent after flush(), so it follows the messages before it."""

    __slots__ = ("account", "engine", "records", "reply")

    def __init__(self, engine: Any, account: bytes) -> None:
        self.engine = engine
        self.account = account
        self.reply = b""
        self.records: list[bytes] = []

    def add(self, reply: bytes, record: bytes) -> None:
        if reply != self.reply:
            self.flush()
            self.reply = reply
        self.records.append(record)

    def extend(self, reply: bytes, records: list[bytes]) -> None:
        """add() for each of `records`."""
        if reply != self.reply:
            self.flush()
            self.reply = reply
        self.records += records

    def flush(self) -> None:
        if self.records:
            self.engine.deliver_run(self.account, self.reply, self.records)
            self.records = []


def status(code: int, description: str, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    return headers.build(extra or (), status=code, description=description.encode())


def pending_headers(messages: int, size: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"Nats-Pending-Messages", str(messages).encode()),
        (b"Nats-Pending-Bytes", str(size).encode()),
    ]


def next_request(body: bytes) -> Any:
    """The pull request a +NXT body means; None when it is not valid."""
    try:
        return jsondecode.decode_next_request(body)
    except ValueError:
        return None


class PullDelivery:
    """The pull half of a consumer (a mixin of `consumer.Consumer`)."""

    # Provided by Consumer.
    config: Any
    engine: Any
    account: bytes
    waiting: deque[PullRequest]
    rdq: list[int]
    last_activity: int

    def num_pending(self) -> int:
        raise NotImplementedError

    def _next_message(self) -> tuple[StoreMsg, int] | None:
        raise NotImplementedError

    def _prepare(self, msg: StoreMsg, count: int, now: int) -> tuple[bytes, bytes, bytes]:
        raise NotImplementedError

    def _undo(self, msg: StoreMsg, count: int) -> None:
        raise NotImplementedError

    def _plain_stretch(self) -> bool:
        raise NotImplementedError

    def _pull_stretch(self, now: int, out: ReplyRun, listening: set[bytes], most: int) -> int:
        raise NotImplementedError

    def _send_status(self, subject: bytes, block: bytes, reply: bytes | None = None) -> None:
        raise NotImplementedError

    def _live_waiting(self, now: int) -> list[PullRequest]:
        return [r for r in self.waiting if not r.expires_at or r.expires_at > now]

    def add_request(self, reply: bytes, request: Any, now: int) -> bytes | None:
        """Queue a pull request; a status header block to answer at once, or None."""
        config = self.config
        self.last_activity = now
        batch = max(request.batch, 1)
        expires = request.expires
        if request.idle_heartbeat and request.idle_heartbeat * 2 > expires:
            return status(400, "Bad Request - heartbeat value too large")
        if config.max_batch and batch > config.max_batch:
            return status(409, f"Exceeded MaxRequestBatch of {config.max_batch}")
        if config.max_expires and expires > config.max_expires:
            limit = duration.go_duration(config.max_expires)
            return status(409, f"Exceeded MaxRequestExpires of {limit}")
        if config.max_bytes and request.max_bytes > config.max_bytes:
            return status(409, f"Exceeded MaxRequestMaxBytes of {config.max_bytes}")
        self._expire_requests(now)
        if request.no_wait:
            deliverable = len(self.rdq) + self.num_pending()
            if not deliverable and not expires:
                return status(404, "No Messages")
            asked = sum(r.batch - r.delivered for r in self.waiting)
            if deliverable and deliverable <= asked:
                return status(408, "Requests Pending")
        if config.max_waiting and len(self.waiting) >= config.max_waiting:
            if request.idle_heartbeat:
                return None
            return status(409, "Exceeded MaxWaiting")
        self.waiting.append(
            PullRequest(
                reply,
                batch,
                request.max_bytes,
                now + expires if expires else 0,
                request.no_wait,
                request.idle_heartbeat,
                now,
            )
        )
        self.engine.ready.add(self)
        return None

    def _expire_requests(self, now: int) -> None:
        if not self.waiting:
            return
        kept: deque[PullRequest] = deque()
        for request in self.waiting:
            if request.expires_at and request.expires_at <= now:
                left = request.batch - request.delivered
                self._send_status(
                    request.reply,
                    status(408, "Request Timeout", pending_headers(left, request.bytes_left)),
                )
            elif not self.engine.interest_for(self.account, request.reply, None):
                continue  # nobody waits for its answers any more
            else:
                kept.append(request)
        self.waiting = kept

    def _deliver_pull(self, now: int) -> bool:
        if self.engine.congested():  # rings only fill up when a batch is committed
            return False
        out = ReplyRun(self.engine, self.account)
        try:
            return self._pull_pass(now, out)
        finally:
            out.flush()

    def _pull_pass(self, now: int, out: ReplyRun) -> bool:
        engine = self.engine
        flush = out.flush
        sent = 0
        listening: set[bytes] = set()  # reply subjects seen with interest in this pass
        while self.waiting and sent < MAX_BATCH_PER_PASS:
            request = self.waiting[0]
            if request.expires_at and request.expires_at <= now:
                flush()
                self._expire_requests(now)
                continue
            if request.reply not in listening:
                if not engine.interest_for(self.account, request.reply, None):
                    self.waiting.popleft()  # nobody waits for its answers any more
                    continue
                listening.add(request.reply)
            if not request.max_bytes and self._plain_stretch():
                taken = self._pull_stretch(now, out, listening, MAX_BATCH_PER_PASS - sent)
                if taken:
                    sent += taken
                    continue
            found = self._next_message()
            if found is None:
                flush()
                self._out_of_messages()
                return False
            msg, count = found
            reply, hdr, data = self._prepare(msg, count, now)
            subject = msg.subject.encode()
            if request.max_bytes:
                size = len(subject) + len(reply) + len(hdr) + len(data)
                if size > request.bytes_left:
                    self._undo(msg, count)
                    self.waiting.popleft()
                    left = request.batch - request.delivered
                    flush()
                    self._send_status(
                        request.reply,
                        status(
                            409,
                            "Message Size Exceeds MaxBytes",
                            pending_headers(left, request.bytes_left),
                        ),
                    )
                    continue
                request.bytes_left -= size
            out.add(request.reply, jrun_record(subject, reply, hdr, data))
            sent += 1
            request.delivered += 1
            if request.heartbeat:
                request.next_heartbeat = now + request.heartbeat
            self.waiting.popleft()
            if request.delivered >= request.batch:
                if request.max_bytes and request.bytes_left:
                    flush()
                    self._send_status(
                        request.reply,
                        status(409, "Batch Completed", pending_headers(0, request.bytes_left)),
                    )
            elif request.max_bytes and request.bytes_left == 0:
                pass  # filled exactly: done
            else:
                self.waiting.append(request)
        return bool(self.waiting) and sent >= MAX_BATCH_PER_PASS

    def _out_of_messages(self) -> None:
        """No message to hand out: no_wait requests end as the reference ends them."""
        kept: deque[PullRequest] = deque()
        for request in self.waiting:
            if request.no_wait and (not request.expires_at or request.delivered):
                self._send_status(request.reply, status(404, "No Messages"))
            else:
                kept.append(request)
        self.waiting = kept
