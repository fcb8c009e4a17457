"""Service imports on a worker: requests that cross into the exporting account, and
their responses finding the way back (accounts-and-security.md §4.4).

Owner: a worker shard; runs on its loop. The worker of the requester owns the mapping
of each request it forwards: the request reaches the exporter's responders with the
reply subject ``_R_.<prefix>.<random>``, where the prefix is this worker's own for that
account, and an internal subscription on ``_R_.<prefix>.>`` in the exporting account
(advertised to the peers like any other interest) brings every response here,
whichever worker the responder sits on. The response then goes to the requester's
reply subject in the importing account through the ordinary routes.

A mapping lives, by the export's response type: singleton, until its first response;
stream and chunked, until a response with an empty payload, a response nobody
received (the requester lost interest) or no response for the threshold (each
response restarts it). Every mapping ends after the threshold without a response.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.protocol import headers
from shardbroker.security.accounts import AccountRoutes, ServiceImportRoute
from shardbroker.security.permissions import CHECK_INTERNAL
from shardbroker.worker.route_result import Subscription

REQUEST_INFO = b"Nats-Request-Info"
REPLY_PREFIX = b"_R_."
_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(count: int) -> bytes:
    """`count` random base-62 characters (nats-server's reply tokens are 6 of them)."""
    return bytes(_BASE62[b % 62] for b in os.urandom(count))


class RequestInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The requester as the exporter sees it (nats-server's ClientInfo, omitempty):
    with `share` all of it, else the account and the RTT (always there, 0 included)."""

    start: str = ""
    host: str = ""
    id: int = 0
    acc: str = ""
    user: str = ""
    name: str = ""
    lang: str = ""
    ver: str = ""
    rtt: int
    server: str = ""
    kind: str = ""
    client_type: str = ""


_encode = msgspec.json.Encoder().encode


def request_info(requester: Any, account: bytes, share: bool, server_id: str) -> bytes:
    """The Nats-Request-Info header value for a request from `requester`."""
    if not share:
        return _encode(RequestInfo(acc=account.decode(), rtt=requester.rtt_ns))
    return _encode(
        RequestInfo(
            start=format_rfc3339(requester.start_ns),
            host=requester.host,
            id=requester.cid,
            acc=account.decode(),
            user=requester.user,
            name=requester.name,
            lang=requester.lang,
            ver=requester.version,
            rtt=requester.rtt_ns,
            server=server_id,
            kind="Client",
            client_type="nats",
        )
    )


def with_header(header_size: int, message: bytes, key: bytes, value: bytes) -> tuple[int, bytes]:
    """The message with one more header (a header block is made if it had none)."""
    line = key + b": " + value + headers.CRLF
    if header_size:
        block = message[:header_size]
        # Before the blank line that ends the block.
        block = block[: -len(headers.CRLF)] + line + headers.CRLF
        return len(block), block + message[header_size:]
    block = headers.VERSION_LINE + headers.CRLF + line + headers.CRLF
    return len(block), block + message


class Mapping:
    """One forwarded request: where its responses go, and until when."""

    __slots__ = ("expires", "importer", "reply", "route")

    def __init__(self, importer: bytes, reply: bytes, route: ServiceImportRoute, now: float):
        self.importer = importer
        self.reply = reply
        self.route = route
        self.expires = now + route.export.response_threshold


class ResponseSink:
    """The subscriber behind the internal `_R_.<prefix>.>` subscriptions: what the
    router needs of a subscriber, and the hand-over of what it receives."""

    __slots__ = ("echo", "headers", "interest_changed", "perms", "responses", "subs")

    def __init__(self, responses: ServiceResponses) -> None:
        self.responses = responses
        self.echo = True
        self.headers = True
        self.perms = None
        self.subs: dict[bytes, Subscription] = {}
        self.interest_changed = False

    def internal_message(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
    ) -> bool:
        return self.responses.response(sub.account, subject, reply, header_size, message)


class ServiceResponses:
    """This worker's service-import mappings."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.router = server.router
        self.sink = ResponseSink(self)
        # Per exporting account: "_R_.<prefix>." and the internal subscription.
        self.prefixes: dict[bytes, bytes] = {}
        self.mappings: dict[bytes, Mapping] = {}

    @property
    def accounts(self) -> AccountRoutes:
        return self.router.accounts

    def _prefix(self, exporter: bytes) -> bytes:
        prefix = self.prefixes.get(exporter)
        if prefix is None:
            prefix = self.prefixes[exporter] = REPLY_PREFIX + base62(6) + b"."
            sub = Subscription(self.sink, exporter, prefix + b">", None, b"")
            sub.checked = CHECK_INTERNAL
            self.server.add_subscription(sub)
        return prefix

    def request(
        self,
        publisher: Any,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
    ) -> bool | None:
        """Forward a request through a service import of `account`; None when
        `subject` is no import's. True when a responder may receive it."""
        target = self.accounts.service_target(account, subject)
        if target is None:
            return None
        route, exporter_subject = target
        exporter = route.exporter
        mapped: bytes | None = None
        if reply is not None:
            mapped = self._prefix(exporter) + base62(6)
            self.mappings[mapped] = Mapping(account, reply, route, time.monotonic())
        info = request_info(publisher, account, route.share, self.server.boot.server_id)
        header_size, message = with_header(header_size, message, REQUEST_INFO, info)
        deliver = self.router.routes_for(exporter)[0]
        delivered = deliver(
            publisher, exporter, exporter_subject, mapped, header_size, message, None
        )
        if not delivered and mapped is not None:
            del self.mappings[mapped]
        return delivered

    def response(
        self, exporter: bytes, subject: bytes, reply: bytes | None, header_size: int, message: bytes
    ) -> bool:
        """A response reached our `_R_` subscription: to the requester, by the mapping."""
        mapping = self.mappings.get(subject)
        if mapping is None:
            return False
        importer = mapping.importer
        deliver = self.router.routes_for(importer)[0]
        # The sink stands in for the responder: it is nobody's subscriber there.
        delivered = deliver(self.sink, importer, mapping.reply, reply, header_size, message, None)
        response_type = mapping.route.export.response_type
        if not delivered or response_type == "singleton" or len(message) == header_size:
            del self.mappings[subject]
        else:
            mapping.expires = time.monotonic() + mapping.route.export.response_threshold
        return delivered

    def expire(self, now: float) -> None:
        """Drop the mappings whose threshold passed (the worker's tick)."""
        if not self.mappings:
            return
        gone = [key for key, mapping in self.mappings.items() if mapping.expires <= now]
        for key in gone:
            del self.mappings[key]
