"""Auth callout on a worker: the requests about this worker's clients, and their answers
(accounts-and-security.md §7; the rules are security/callout.py's).

Owner: a worker shard; runs on its loop and never blocks. A client the callout decides
on stops at its CONNECT (its reading paused, what it sent after the CONNECT kept) while
the worker publishes an authorization request on ``$SYS.REQ.USER.AUTH`` in the callout
account, as an internal client would, with a reply subject
``$SYS._INBOX.<this worker's token>.<random>``. One internal subscription per callout
account, ``$SYS._INBOX.<token>.*``, advertised to the peers like any interest, brings
every answer here whichever worker the service is connected to: the interest frame goes
into each peer's ring before the request, so it is in effect before the service can
answer. The first answer, or the auth timeout, decides; the client then goes on
(ClientProtocol.callout_decided) or gets ``Authorization Violation``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from shardbroker.config import jwt
from shardbroker.protocol.messages import ConnectOptions
from shardbroker.security.callout import (
    AUTH_CALLOUT_SUBJECT,
    Callout,
    CalloutError,
    CalloutVerdict,
    ClientFacts,
    ServerIdentity,
    build_request,
    curve_public_key,
    new_curve_seed,
)
from shardbroker.security.permissions import CHECK_INTERNAL
from shardbroker.worker.responses import InternalSink, base62
from shardbroker.worker.route_result import Subscription

log = logging.getLogger("shardbroker.callout")

INBOX_PREFIX = b"$SYS._INBOX."
_TLS_VERSIONS = {"TLSv1.2": "1.2", "TLSv1.3": "1.3"}


class Pending:
    """A request waiting for its answer."""

    __slots__ = ("callout", "client", "opts", "timer", "user", "user_nkey")

    def __init__(
        self,
        client: Any,
        opts: ConnectOptions,
        user: str | None,
        callout: Callout,
        user_nkey: str,
        timer: asyncio.TimerHandle,
    ) -> None:
        self.client = client
        self.opts = opts
        self.user = user
        self.callout = callout
        self.user_nkey = user_nkey
        self.timer = timer


class AnswerSink(InternalSink):
    """The internal inbox subscriptions' subscriber: the callout service's answers."""

    __slots__ = ("callouts",)

    def __init__(self, callouts: AuthCallouts) -> None:
        super().__init__()
        self.callouts = callouts

    def internal_message(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
    ) -> bool:
        return self.callouts.answer(subject, message[header_size:])


class AuthCallouts:
    """This worker's callout requests."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.sink = AnswerSink(self)
        self.prefix = INBOX_PREFIX + base62(8) + b"."
        self.subscribed: set[bytes] = set()
        self.pending: dict[bytes, Pending] = {}
        boot = server.boot
        # The broker's identity, shared by every worker (the supervisor made it); a
        # worker started without one (unit tests) makes its own.
        seed = boot.server_seed or jwt.new_seed("server")
        xkey_seed = boot.xkey_seed or new_curve_seed()
        self.seed = seed
        self.xkey_seed = xkey_seed
        self.server_id = boot.server_id if boot.server_seed else jwt.public_key(seed)
        self.xkey = curve_public_key(xkey_seed)

    def identity(self) -> ServerIdentity:
        opts = self.server.opts
        return ServerIdentity(
            self.seed,
            self.server_id,
            opts.server_name or self.server_id,
            opts.host,
            self.xkey_seed,
            self.xkey,
        )

    def request(
        self, client: Any, opts: ConnectOptions, user: str | None, callout: Callout
    ) -> None:
        """Ask the callout service about `client`; its answer (or the timeout) calls
        client.callout_decided."""
        server = self.server
        account = callout.account
        if account not in self.subscribed:
            self.subscribed.add(account)
            sub = Subscription(self.sink, account, self.prefix + b"*", None, b"")
            sub.checked = CHECK_INTERNAL
            server.add_subscription(sub)
        timeout = server.auth.timeout
        facts = ClientFacts(client.host, client.cid, client.nonce, _tls_facts(client))
        request = build_request(callout, self.identity(), facts, opts, user, timeout)
        reply = self.prefix + base62(12)
        timer = server.loop.call_later(timeout, self.timed_out, reply)
        self.pending[reply] = Pending(client, opts, user, callout, request.user_nkey, timer)
        message = request.header + request.payload
        deliver = server.router.routes_for(account)[0]
        deliver(self.sink, account, AUTH_CALLOUT_SUBJECT, reply, len(request.header), message, None)
        # Commit the ring frames now: this may run outside a read batch (after bcrypt).
        server.flush_batch(None)

    def answer(self, subject: bytes, body: bytes) -> bool:
        """An answer reached our inbox; the first one for a request decides."""
        pending = self.pending.pop(subject, None)
        if pending is None:
            return False
        pending.timer.cancel()
        client = pending.client
        if client.closed:
            return True
        verdict: CalloutVerdict | None = None
        policy = self.server.auth.callout  # a reload may have removed the callout since
        try:
            if policy is None:
                raise CalloutError("auth callout is no longer configured")
            verdict = policy.verdict(pending.callout, pending.user_nkey, body, self.identity())
        except CalloutError as exc:
            log.warning("%s - cid:%d - %s", client.host, client.cid, exc)
        name = verdict.name if verdict is not None and verdict.name else None
        client.callout_decided(pending.opts, name or client_user(pending), verdict)
        return True

    def timed_out(self, reply: bytes) -> None:
        pending = self.pending.pop(reply, None)
        if pending is None:
            return
        client = pending.client
        log.debug(
            'Authorization callout response not received in time on account "%s"',
            pending.callout.account.decode(),
        )
        if not client.closed:
            client.callout_decided(pending.opts, client_user(pending), None)


def client_user(pending: Pending) -> str:
    """The name a client the callout let in goes by when the answer names none."""
    opts = pending.opts
    return opts.nkey or opts.user or pending.user or ""


def _tls_facts(client: Any) -> dict[str, Any] | None:
    """The request's `client_tls` for a TLS client: version, cipher and its certificate
    (in `verified_chains` when it was verified, else `certs`; Python gives the peer's
    certificate only, not the chain it was verified with)."""
    transport = client.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    facts: dict[str, Any] = {}
    version = ssl_object.version()
    if version:
        facts["version"] = _TLS_VERSIONS.get(version, version)
    cipher = ssl_object.cipher()
    if cipher:
        facts["cipher"] = cipher[0]
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        pem = ssl.DER_cert_to_PEM_cert(der)
        if client.server.opts.tls is not None and client.server.opts.tls.verify:
            facts["verified_chains"] = [[pem]]
        else:
            facts["certs"] = [pem]
    return facts
