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

import contextlib
import os
import random
import time
from typing import Any

import msgspec

from shardbroker.gofmt.timestamp import format_rfc3339
from shardbroker.protocol import events, headers
from shardbroker.security.accounts import AccountRoutes, ServiceImportRoute
from shardbroker.security.permissions import CHECK_INTERNAL
from shardbroker.worker.route_result import Subscription

REQUEST_INFO = b"Nats-Request-Info"
REPLY_PREFIX = b"_R_."
# The end of a tracked request's reply subject, and of the note about its response.
TRACKED = b".T"
NOTE = b".L"
_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(count: int) -> bytes:
    """`count` random base-62 characters (nats-server's reply tokens are 6 of them)."""
    return bytes(_BASE62[b % 62] for b in os.urandom(count))


_encode = msgspec.json.Encoder().encode


def request_info(requester: Any, account: bytes, share: bool, server_id: str) -> bytes:
    """The Nats-Request-Info header value for a request from `requester`."""
    if not share:
        return _encode(events.EventClient(acc=account.decode(), rtt=requester.rtt_ns))
    return _encode(
        events.EventClient(
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
            client_type=getattr(requester, "client_type", "nats"),
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


class Tracking:
    """A request whose latency is measured (a sampled request of an export with
    `latency`): what the metric needs besides the response."""

    __slots__ = ("forwarded", "header", "received_ns", "requestor", "responder")

    def __init__(self, requestor: events.EventClient, header: dict[str, list[str]] | None) -> None:
        self.requestor = requestor
        self.header = header
        self.received_ns = time.time_ns()
        self.forwarded = time.monotonic_ns()
        self.responder: events.ResponderNote | None = None


class Mapping:
    """One forwarded request: where its responses go, and until when."""

    __slots__ = ("expires", "importer", "reply", "route", "tracking")

    def __init__(
        self,
        importer: bytes,
        reply: bytes,
        route: ServiceImportRoute,
        now: float,
        tracking: Tracking | None = None,
    ):
        self.importer = importer
        self.reply = reply
        self.route = route
        self.expires = now + route.export.response_threshold
        self.tracking = tracking


class InternalSink:
    """The subscriber behind a worker's internal subscriptions: what the router needs of
    a subscriber (every message, headers included, no permissions); subclasses take
    what it receives in `internal_message`."""

    __slots__ = ("echo", "headers", "interest_changed", "perms", "subs")

    def __init__(self) -> None:
        self.echo = True
        self.headers = True
        self.perms = None
        self.subs: dict[bytes, Subscription] = {}
        self.interest_changed = False


class ResponseSink(InternalSink):
    """The internal `_R_.<prefix>.>` subscriptions' subscriber: responses to service
    imports."""

    __slots__ = ("responses",)

    def __init__(self, responses: ServiceResponses) -> None:
        super().__init__()
        self.responses = responses

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
        tracking = self._tracking(publisher, account, route, message[:header_size])
        mapped: bytes | None = None
        if reply is not None:
            mapped = self._prefix(exporter) + base62(6)
            if tracking is not None:
                mapped += TRACKED  # the responder's worker reports on its response
            self.mappings[mapped] = Mapping(account, reply, route, time.monotonic(), tracking)
        elif tracking is not None:
            self._publish_latency(route, tracking, 400)
        info = request_info(publisher, account, route.share, self.server.boot.server_id)
        header_size, message = with_header(header_size, message, REQUEST_INFO, info)
        deliver = self.router.routes_for(exporter)[0]
        delivered = deliver(
            publisher, exporter, exporter_subject, mapped, header_size, message, None
        )
        if not delivered and mapped is not None:
            del self.mappings[mapped]
            if tracking is not None:
                self._publish_latency(route, tracking, 503)
        return delivered

    def _tracking(
        self, publisher: Any, account: bytes, route: ServiceImportRoute, header: bytes
    ) -> Tracking | None:
        """A Tracking when this request's latency is measured (sampled), else None."""
        latency = route.export.latency
        if latency is None:
            return None
        trace: dict[str, list[str]] | None = None
        if latency.sampling == 0:  # headers
            trace = events.sampled_trace_headers(header) if header else None
            if trace is None:
                return None
        elif latency.sampling < 100 and random.random() * 100 >= latency.sampling:
            return None
        info = msgspec.json.decode(
            request_info(publisher, account, route.share, self.server.boot.server_id),
            type=events.EventClient,
        )
        return Tracking(info, trace)

    def note_responder(self, client: Any, account: bytes, subject: bytes) -> None:
        """A client of this worker answers a tracked request (`_R_....T`): tell the
        requester's worker who answered, and when, before the response itself."""
        note = events.ResponderNote(
            events.EventClient(
                start=format_rfc3339(client.start_ns), host=client.host, id=client.cid,
                acc=account.decode(), user=client.user, name=client.name, lang=client.lang,
                ver=client.version, rtt=client.rtt_ns, server=self.server.boot.server_id,
                kind="Client", client_type=getattr(client, "client_type", "nats"),
            ),
            time.monotonic_ns(),
        )  # fmt: skip
        deliver = self.router.routes_for(account)[0]
        deliver(self.sink, account, subject + NOTE, None, 0, msgspec.json.encode(note), None)

    def response(
        self, exporter: bytes, subject: bytes, reply: bytes | None, header_size: int, message: bytes
    ) -> bool:
        """A response reached our `_R_` subscription: to the requester, by the mapping.
        (Or the note of a tracked response's responder, which comes just before it.)"""
        if subject.endswith(NOTE):
            noted = self.mappings.get(subject[: -len(NOTE)])
            if noted is not None and noted.tracking is not None:
                # Not a worker's note (a client published there): ignored.
                with contextlib.suppress(msgspec.DecodeError):
                    noted.tracking.responder = msgspec.json.decode(
                        message[header_size:], type=events.ResponderNote
                    )
            return noted is not None
        mapping = self.mappings.get(subject)
        if mapping is None:
            return False
        arrived = time.monotonic_ns()
        importer = mapping.importer
        deliver = self.router.routes_for(importer)[0]
        # The sink stands in for the responder: it is nobody's subscriber there.
        delivered = deliver(self.sink, importer, mapping.reply, reply, header_size, message, None)
        response_type = mapping.route.export.response_type
        if not delivered or response_type == "singleton" or len(message) == header_size:
            del self.mappings[subject]
        else:
            mapping.expires = time.monotonic() + mapping.route.export.response_threshold
        if mapping.tracking is not None:
            status = 200 if delivered else 408
            self._publish_latency(mapping.route, mapping.tracking, status, arrived)
            mapping.tracking = None
        return delivered

    def _publish_latency(
        self, route: ServiceImportRoute, tracking: Tracking, status: int, arrived: int = 0
    ) -> None:
        """The service latency metric, in the exporting account on its latency subject."""
        latency = route.export.latency
        assert latency is not None
        now = time.time_ns()
        requestor = tracking.requestor
        metric = events.ServiceLatency(
            type=events.LATENCY_TYPE, id=events.event_id(), timestamp=format_rfc3339(now),
            status=status,
            description=events.LATENCY_STATUS.get(status, ""), requestor=requestor,
            header=tracking.header,
            start=format_rfc3339(tracking.received_ns - requestor.rtt),
            service=0, system=0, total=0,
        )  # fmt: skip
        if status in (200, 408):
            note = tracking.responder
            answered = note.at if note is not None else arrived
            responder_rtt = note.responder.rtt if note is not None else 0
            metric.responder = note.responder if note is not None else None
            metric.service = max(answered - tracking.forwarded - responder_rtt, 0)
            # The hand-over from the responder's worker to ours, and our own part.
            metric.system = max(time.monotonic_ns() - answered, 0)
            metric.total = requestor.rtt + responder_rtt + metric.service + metric.system
        exporter = route.exporter
        deliver = self.router.routes_for(exporter)[0]
        subject = latency.subject.encode()
        deliver(self.sink, exporter, subject, None, 0, events.encode(metric), None)

    def expire(self, now: float) -> None:
        """Drop the mappings whose threshold passed (the worker's tick); a tracked one
        that got no response reports a service timeout."""
        if not self.mappings:
            return
        gone = [key for key, mapping in self.mappings.items() if mapping.expires <= now]
        for key in gone:
            mapping = self.mappings.pop(key)
            if mapping.tracking is not None:
                self._publish_latency(mapping.route, mapping.tracking, 504)
