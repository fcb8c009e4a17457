"""Publisher rate limits on a worker: the budgets a connection publishes against, and the
limiter that holds its input back (or refuses publishes) when they are spent.

Owner: a worker shard; runs on its loop and never blocks. A connection without a limit
has no limiter and pays nothing (one attribute test per read). A limited connection
pays one budget look-up and one scan of its read per batch (core pub_budget: operation
boundaries and sizes, in C), never a check per message on the routing path.

Budgets. A connection is limited by every budget that applies to it:

* its own, from the top-level `rate_limit` (each connection whose user has no limit of
  its own), a local token bucket;
* its user's (a user of a users list, or a user JWT's extension), shared by all the
  user's connections;
* its account's, shared by all the account's connections.

A shared budget of a configured user or account holds broker-wide: each worker takes
leases of tokens (LEASE_SECONDS of the rate) from the shared rate table
(mesh/rate_table.py, which states the worst case: burst + rate * T + (2W - 1) * lease
over any T seconds, for W workers) when its share runs out, and gives back what it did
not use on the tick. A user JWT's limit (users are not known in advance) is shared by
the user's connections on each worker: broker-wide it can reach the limit times the
workers its connections sit on.

Tokens. A bucket starts full (its burst: `burst_msgs`/`burst_bytes`, by default a tenth
of a second of the rate, at least one message). A publish is let through while any of
the budget is left, so one message may overdraw the bytes, paid back before the next.

Slow mode (the default): the publish that meets a spent budget, and everything read
after it, waits in the limiter (``carry``) with the socket paused, so TCP pushes back on
the client; a timer brings it back, in order, when tokens return (at least WAKE_SECONDS
of the rate, or the burst). Other connections of the worker are not held. Reject mode:
that publish is dropped with ``-ERR 'Permissions Violation for Publish to "<subject>":
rate limit exceeded'`` (non-fatal for clients, as every permissions violation), and
reading goes on.

A connection is scanned from its first byte when any limit is configured: the read is
cut after a CONNECT, so that the publishes behind it meet the limits of the user the
CONNECT logs in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from shardbroker import const
from shardbroker.config.options import Options, RateLimit
from shardbroker.config.rate_limit import default_burst, rate_keys
from shardbroker.core import pub_budget
from shardbroker.core.budget import CONNECT, PARTIAL, SPENT
from shardbroker.errors import err_rate_limited
from shardbroker.mesh.rate_table import (
    ADMITTED,
    BYTES,
    MSGS,
    REJECTED,
    THROTTLED_NS,
    THROTTLES,
    RateTable,
)

# A worker takes this much of a shared budget's rate at once (at least one message).
LEASE_SECONDS = 0.02
# A held publisher is woken when this much of its rate (or its burst) is back.
WAKE_SECONDS = 0.01
UNLIMITED = 1 << 62
# The key of a connection's own budget (the top-level rate_limit).
CONNECTION = "connection"


class _LocalTokens:
    """One kind of token (messages or bytes) of a budget this worker keeps alone."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic_ns()

    def available(self, now: int) -> int:
        tokens = self.tokens + (now - self.stamp) * self.rate / 1e9
        self.tokens = tokens if tokens < self.burst else float(self.burst)
        self.stamp = now
        return int(self.tokens) if self.tokens >= 1 else 0

    def spend(self, count: int) -> None:
        self.tokens -= count

    def wait(self) -> float:
        want = min(self.burst, max(1.0, self.rate * WAKE_SECONDS))
        return max(want - self.tokens, 0.0) / self.rate

    def give_back(self) -> None:
        pass

    def reconfigure(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = min(self.tokens, float(burst))


class _SharedTokens:
    """One kind of token of a budget shared broker-wide: this worker's lease."""

    __slots__ = (
        "burst",
        "index",
        "kind",
        "lease",
        "rate",
        "shard",
        "table",
        "tokens",
        "used",
        "wait_ns",
    )

    def __init__(
        self, table: RateTable, shard: int, index: int, kind: int, rate: float, burst: int
    ) -> None:
        self.table = table
        self.shard = shard
        self.index = index
        self.kind = kind
        self.tokens = 0
        self.used = False
        self.wait_ns = 0
        self.rate = rate
        self.burst = burst
        self.lease = max(1, min(burst, math.ceil(rate * LEASE_SECONDS)))

    def available(self, now: int) -> int:
        self.used = True
        if self.tokens < 1:
            got, self.wait_ns = self.table.take(
                self.shard, self.index, self.kind, self.lease - self.tokens, self.rate,
                self.burst, now,
            )  # fmt: skip
            self.tokens += got
        return self.tokens if self.tokens >= 1 else 0

    def spend(self, count: int) -> None:
        self.tokens -= count

    def wait(self) -> float:
        want = max(1.0, min(self.lease, self.rate * WAKE_SECONDS))
        return max(self.wait_ns / 1e9, (want - 1) / self.rate)

    def give_back(self) -> None:
        """On the tick: a lease nobody drew on since the last tick goes back."""
        if not self.used and self.tokens >= 1:
            self.table.give_back(self.shard, self.index, self.kind, self.tokens, self.rate)
            self.tokens = 0
        self.used = False

    def reconfigure(self, rate: float, burst: int) -> None:
        if rate != self.rate and self.tokens >= 1:
            # Tokens leased at the old rate go back; the new rate leases anew.
            self.table.give_back(self.shard, self.index, self.kind, self.tokens, self.rate)
            self.tokens = 0
        self.rate = rate
        self.burst = burst
        self.lease = max(1, min(burst, math.ceil(rate * LEASE_SECONDS)))


Tokens = _LocalTokens | _SharedTokens


class Budget:
    """A publish budget: messages and/or bytes, with the mode that applies when it is
    spent and what it did (for monitoring)."""

    __slots__ = (
        "admitted",
        "bytes",
        "key",
        "limit",
        "mode",
        "msgs",
        "rejected",
        "throttled_ns",
        "throttles",
    )

    def __init__(self, key: str, limit: RateLimit, tokens: Callable[[int, float, int], Tokens]):
        self.key = key
        self.limit = limit
        self.mode = limit.mode
        self.msgs: Tokens | None = None
        self.bytes: Tokens | None = None
        self.throttles = 0
        self.throttled_ns = 0
        self.rejected = 0
        self.admitted = 0
        self.reconfigure(limit, tokens)

    def reconfigure(self, limit: RateLimit, tokens: Callable[[int, float, int], Tokens]) -> None:
        self.limit = limit
        self.mode = limit.mode
        for kind, rate, burst in (
            (MSGS, limit.msgs_per_sec, limit.burst_msgs),
            (BYTES, limit.bytes_per_sec, limit.burst_bytes),
        ):
            current = self.msgs if kind == MSGS else self.bytes
            if not rate:
                new = None
            elif current is None:
                new = tokens(kind, rate, default_burst(rate, burst))
            else:
                current.reconfigure(rate, default_burst(rate, burst))
                new = current
            if kind == MSGS:
                self.msgs = new
            else:
                self.bytes = new

    def available(self, now: int) -> tuple[int, int]:
        msgs = self.msgs.available(now) if self.msgs is not None else UNLIMITED
        nbytes = self.bytes.available(now) if self.bytes is not None else UNLIMITED
        return msgs, nbytes

    def spend(self, msgs: int, nbytes: int) -> None:
        if self.msgs is not None:
            self.msgs.spend(msgs)
        if self.bytes is not None:
            self.bytes.spend(nbytes)
        self.admitted += msgs

    def spent(self) -> bool:
        """No message may pass now (after available and spend)."""
        msgs, nbytes = self.msgs, self.bytes
        return (msgs is not None and msgs.tokens < 1) or (nbytes is not None and nbytes.tokens < 1)

    def wait(self) -> float:
        """Seconds until enough is back to be worth waking a publisher for."""
        waits = [
            tokens.wait()
            for tokens in (self.msgs, self.bytes)
            if tokens is not None and tokens.tokens < 1
        ]
        return max(waits, default=WAKE_SECONDS)

    def give_back(self) -> None:
        for tokens in (self.msgs, self.bytes):
            if tokens is not None:
                tokens.give_back()


def _local(kind: int, rate: float, burst: int) -> Tokens:
    return _LocalTokens(rate, burst)


class RateLimits:
    """A worker's budgets: the shared ones by key, and how to find those of a client."""

    def __init__(self, opts: Options, table: RateTable | None, shard_id: int) -> None:
        self.table = table
        self.shard_id = shard_id
        self.default: RateLimit | None = None
        self.indexes: dict[str, int] = {}
        self.shared: dict[str, Budget] = {}
        # User JWTs' budgets, per worker (see the module docstring).
        self.jwt_users: dict[str, Budget] = {}
        self.configure(opts)

    @property
    def configured(self) -> bool:
        """Any limit at all: connections are then scanned from their first byte."""
        return self.default is not None or bool(self.indexes) or self.jwt_possible

    def configure(self, opts: Options) -> None:
        """At start and on reload: the limits in effect; budgets that stay keep their
        tokens (and this worker's cells move to the keys' new numbers)."""
        self.default = opts.rate_limit
        self.jwt_possible = bool(opts.operators or opts.trusted_keys)
        keys = rate_keys(opts)
        indexes = {key: i for i, key in enumerate(keys) if i < const.MAX_RATE_KEYS}
        if self.table is not None and indexes != self.indexes:
            moves = {old: indexes.get(key, -1) for key, old in self.indexes.items()}
            self.table.move_row(self.shard_id, moves)
        self.indexes = indexes
        shared: dict[str, Budget] = {}
        for key, index in indexes.items():
            limit = keys[key]
            budget = self.shared.get(key)
            tokens = self.tokens_for(index)
            if budget is None:
                budget = Budget(key, limit, tokens)
            else:
                for kind in (budget.msgs, budget.bytes):
                    if isinstance(kind, _SharedTokens):
                        kind.index = index
                budget.reconfigure(limit, tokens)
            shared[key] = budget
        self.shared = shared

    def tokens_for(self, index: int) -> Callable[[int, float, int], Tokens]:
        table = self.table
        if table is None:
            return _local
        shard = self.shard_id

        def make(kind: int, rate: float, burst: int) -> Tokens:
            return _SharedTokens(table, shard, index, kind, rate, burst)

        return make

    def budgets_for(
        self,
        account: bytes,
        user: str,
        jwt_limit: RateLimit | None,
        current: tuple[Budget, ...] = (),
    ) -> tuple[Budget, ...]:
        """The budgets a client of `account` logged in as `user` publishes against
        (`current`: those it has, whose own budget keeps its tokens)."""
        out: list[Budget] = []
        mine = self.shared.get("user:" + user) if user else None
        if mine is None and jwt_limit is not None:
            mine = self.jwt_users.get(user)
            if mine is None:
                mine = self.jwt_users[user] = Budget("user:" + user, jwt_limit, _local)
            else:
                mine.reconfigure(jwt_limit, _local)
        if mine is None and self.default is not None:
            mine = next((b for b in current if b.key == CONNECTION), None)
            if mine is None:
                mine = Budget(CONNECTION, self.default, _local)
            else:
                mine.reconfigure(self.default, _local)
        if mine is not None:
            out.append(mine)
        theirs = self.shared.get("account:" + account.decode(errors="replace"))
        if theirs is not None:
            out.append(theirs)
        return tuple(out)

    def tick(self) -> None:
        """Give back unused leases; publish this worker's counters per key."""
        table = self.table
        for key, budget in self.shared.items():
            budget.give_back()
            if table is not None:
                index = self.indexes[key]
                shard = self.shard_id
                table.set(shard, index, THROTTLES, budget.throttles)
                table.set(shard, index, THROTTLED_NS, budget.throttled_ns)
                table.set(shard, index, REJECTED, budget.rejected)
                table.set(shard, index, ADMITTED, budget.admitted)

    def forget_jwt_users(self, in_use: set[int]) -> None:
        """Drop the budgets of user JWTs no connection publishes against (by id)."""
        for user, budget in list(self.jwt_users.items()):
            if id(budget) not in in_use:
                del self.jwt_users[user]


class LimitedClient(Protocol):
    """What the limiter needs of its connection (worker/client.py's ClientProtocol)."""

    closed: bool
    connected: bool
    held_input: bytearray | None
    parser: Any
    transport: Any
    limiter: Limiter | None

    def process_input(self, data: bytes) -> None: ...
    def send_err(self, text: str) -> None: ...
    def consume(self, data: bytes) -> None: ...
    def rate_limit_engaged(self, budget: Budget) -> None: ...
    def rate_limit_released(self) -> None: ...


class Limiter:
    """A limited connection's gate between its socket and its parser."""

    __slots__ = (
        "budgets",
        "carry",
        "client",
        "held_by",
        "held_since",
        "loop",
        "rejected",
        "throttled_ns",
        "throttles",
        "timer",
    )

    def __init__(self, client: LimitedClient, budgets: tuple[Budget, ...], loop: Any) -> None:
        self.client = client
        self.budgets = budgets
        self.loop = loop
        self.carry = b""
        self.timer: Any = None
        self.held_since = 0
        self.held_by: list[Budget] = []
        self.throttles = 0
        self.throttled_ns = 0
        self.rejected = 0

    @property
    def holding(self) -> bool:
        return self.timer is not None

    def throttled_total_ns(self) -> int:
        """Time held so far, the current hold included."""
        current = time.monotonic_ns() - self.held_since if self.held_since else 0
        return self.throttled_ns + current

    def feed(self, data: bytes) -> None:
        """Take a read: what the budgets allow goes to the parser now, in order; the
        rest waits here (slow), or its excess publishes are refused (reject)."""
        client = self.client
        renewed = False
        while True:
            if self.carry:
                data = self.carry + data
                self.carry = b""
            if self.timer is not None:
                self.carry = data
                return
            now = time.monotonic_ns()
            msgs = nbytes = UNLIMITED
            for budget in self.budgets:
                m, b = budget.available(now)
                if m < msgs:
                    msgs = m
                if b < nbytes:
                    nbytes = b
            parser = client.parser
            end, used_msgs, used_bytes, stop = pub_budget(
                data, 0, msgs, nbytes, parser.max_control_line, parser.max_payload,
                not client.connected,
            )  # fmt: skip
            if used_msgs:
                renewed = False
                for budget in self.budgets:
                    budget.spend(used_msgs, used_bytes)
            if stop == SPENT and not renewed:
                # A shared budget's lease ran out: the next look takes a new one, if
                # its account (or user) has any left.
                renewed = True
                client.process_input(data[:end])
                data = data[end:]
                if client.closed:
                    return
                continue
            if stop == SPENT:
                spent = [budget for budget in self.budgets if budget.spent()]
                if not spent or any(budget.mode == "slow" for budget in spent):
                    self.carry = data[end:]
                    client.process_input(data[:end])
                    self.hold(now, spent)
                    return
                skip = self.refuse(data, end, spent)
                if skip < 0:  # the refused publish has not arrived whole
                    self.carry = data[end:]
                    client.process_input(data[:end])
                    return
                client.process_input(data[:end])
                data = data[skip:]
                if client.closed:
                    return
                continue
            if stop in (PARTIAL, CONNECT):
                self.carry = data[end:]
                data = data[:end]
            client.process_input(data)
            if stop != CONNECT or client.closed or client.held_input is not None:
                return
            # Logged in (or not): the rest meets the limits of the login.
            if not self.budgets and client.limiter is self:
                client.limiter = None
                rest, self.carry = self.carry, b""
                client.process_input(rest)
                return
            data = b""

    def refuse(self, data: bytes, at: int, spent: list[Budget]) -> int:
        """Refuse the publish at `at` (reject mode): queue the error, count it; returns
        where the operation ends, or -1 when it is not all there yet."""
        nl = data.find(b"\n", at)
        line = data[at : nl - 1 if data[nl - 1] == 13 else nl]
        args = line.replace(b"\t", b" ").split()
        end = nl + 1 + int(args[-1]) + 2
        if end > len(data):
            return -1
        client = self.client
        client.send_err(err_rate_limited(args[1].decode(errors="replace")))
        client.rate_limit_engaged(spent[0])
        self.rejected += 1
        for budget in spent:
            budget.rejected += 1
        return end

    def hold(self, now: int, spent: list[Budget]) -> None:
        """Stop reading the socket until the budgets that ran out have tokens again."""
        client = self.client
        waits = [budget.wait() for budget in spent if budget.mode == "slow"]
        delay = max(max(waits, default=WAKE_SECONDS), 0.001)
        if client.closed:
            return
        if client.transport is not None:
            client.transport.pause_reading()
        self.timer = self.loop.call_later(delay, self.on_tokens)
        if not self.held_since:
            self.held_since = now
            self.held_by = spent
            self.throttles += 1
            for budget in spent:
                budget.throttles += 1
            if spent:
                client.rate_limit_engaged(spent[0])

    def on_tokens(self) -> None:
        """The timer: go on with what waits, and read again once it is all through."""
        self.timer = None
        client = self.client
        if client.closed:
            return
        client.consume(b"")
        if self.timer is None and self.held_since:
            held = time.monotonic_ns() - self.held_since
            self.throttled_ns += held
            for budget in self.held_by:
                budget.throttled_ns += held
            self.held_since = 0
            self.held_by = []
            client.rate_limit_released()
        if not self.budgets and not self.carry and self.timer is None and client.connected:
            client.limiter = None  # a reload took its limits away

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
