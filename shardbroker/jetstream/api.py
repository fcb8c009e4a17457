"""The `$JS.API.>` service: subject -> handler, and the JSON envelopes of the answers.

Owner: the storage shard. Shapes, `type` strings, error objects and their order of
checks follow jetstream-api.md (captured from nats-server). A request without a reply
subject is ignored; an unknown API subject gets no answer (as the reference server).
Every handler either returns the fields of its response or raises ApiError; the
envelope (``type``, and the fields a response type always carries, such as paging keys
or ``purged``) is added here, so an error answer has exactly the shape nats-server's has.

In an account without JetStream every JSON request is answered with 10039 (its own
response type); a direct get or pull request finds no responder (503), as the stream's
or consumer's own subscription it would reach in nats-server does not exist. The system
account answers `INFO` with 10039 and everything else with a 10039 system_response.
Each account's JetStream limits are enforced here (streams, consumers, reservations,
max bytes) and by the engine on publish (memory and storage totals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from shardbroker import const
from shardbroker.config.options import AccountJetStream, Options
from shardbroker.gofmt import timestamp
from shardbroker.jetstream import (
    consumer_schema,
    consumer_validate,
    jserrors,
    jsondecode,
    jsonencode,
    schema,
    stream_validate,
    versioning,
)
from shardbroker.jetstream.account import Account
from shardbroker.jetstream.consumer import Consumer
from shardbroker.jetstream.store import ErrMsgNotFound, StoreError
from shardbroker.jetstream.stream import Stream
from shardbroker.protocol import headers
from shardbroker.protocol.subjects import subjects_overlap

TYPE_PREFIX = "io.nats.jetstream.api.v1."
API_LEVEL = 1
NAMES_LIMIT = 1024
LIST_LIMIT = 256
SUBJECTS_LIMIT = 100_000
REQUIRED_API_LEVEL = b"Nats-Required-Api-Level"
ACCOUNT_API_PREFIX = b"$JS.API.ACCOUNT."

# A handler gets (account, the subject tokens after the verb, the request body) and
# returns the response fields.
Handler = Callable[["Account", list[bytes], bytes], Any]
# A raw handler gets the reply subject too, and returns (header block, body) to send
# there, or None when it answers later or not at all.
RawHandler = Callable[["Account", list[bytes], bytes, bytes], tuple[bytes, bytes] | None]


class Route(msgspec.Struct, frozen=True):
    """A request answered with a JSON response."""

    kind: str  # the response type without its prefix
    handler: Handler
    # Fields an answer of this type always carries, also next to an error.
    always: dict[str, Any] = {}


class RawRoute(msgspec.Struct, frozen=True):
    """A request answered with a message (direct get, pull next), not JSON."""

    handler: RawHandler


def _empty(body: bytes) -> bool:
    stripped = body.strip()
    return not stripped or stripped == b"{}"


def _decode(body: bytes, kind: type[Any]) -> Any:
    """An optional JSON request: empty (or not an object) means all defaults."""
    stripped = body.strip()
    if not stripped or stripped[:1] not in (b"{", b"["):
        return kind()
    return jsondecode.decode_request(stripped, kind)


def _time(ns: int) -> str:
    return timestamp.format_rfc3339(ns)


class ApiHost(Protocol):
    """What the API needs of the JetStream engine (engine.py's JetStream is the one):
    options, names and clock for the answers, the streams it adds, updates and deletes,
    the streams with writes to flush, and the way out for replies."""

    opts: Options
    domain: str
    server_name: str
    clock: Callable[[], int]
    dirty: set[Stream]

    def add_stream(self, account: Account, config: schema.StreamConfig) -> Stream: ...

    def update_stream(
        self, account: Account, stream: Stream, config: schema.StreamConfig
    ) -> None: ...

    def delete_stream(self, account: Account, stream: Stream) -> None: ...

    def send(self, account: bytes, subject: bytes, body: bytes, hdr: bytes = b"") -> None: ...

    def interest_for(self, account: bytes, subject: bytes, group: bytes | None) -> bool: ...


class Api:
    def __init__(self, engine: ApiHost) -> None:
        self.engine = engine
        paged = {"total": 0, "offset": 0, "limit": 0}
        self.routes: dict[bytes, Route | RawRoute] = {
            b"INFO": Route("account_info_response", self.account_info),
            b"STREAM.CREATE": Route("stream_create_response", self.stream_create),
            b"STREAM.UPDATE": Route("stream_update_response", self.stream_update),
            b"STREAM.INFO": Route("stream_info_response", self.stream_info, paged),
            b"STREAM.DELETE": Route("stream_delete_response", self.stream_delete),
            b"STREAM.NAMES": Route(
                "stream_names_response", self.stream_names, {**paged, "streams": None}
            ),
            b"STREAM.LIST": Route(
                "stream_list_response", self.stream_list, {**paged, "streams": []}
            ),
            b"STREAM.PURGE": Route("stream_purge_response", self.stream_purge, {"purged": 0}),
            b"STREAM.MSG.GET": Route("stream_msg_get_response", self.msg_get),
            b"STREAM.MSG.DELETE": Route("stream_msg_delete_response", self.msg_delete),
            b"DIRECT.GET": RawRoute(self.direct_get),
            b"CONSUMER.CREATE": Route("consumer_create_response", self.consumer_create),
            b"CONSUMER.DURABLE.CREATE": Route(
                "consumer_create_response", self.consumer_durable_create
            ),
            b"CONSUMER.INFO": Route("consumer_info_response", self.consumer_info),
            b"CONSUMER.DELETE": Route("consumer_delete_response", self.consumer_delete),
            b"CONSUMER.NAMES": Route(
                "consumer_names_response", self.consumer_names, {**paged, "consumers": []}
            ),
            b"CONSUMER.LIST": Route(
                "consumer_list_response", self.consumer_list, {**paged, "consumers": []}
            ),
            b"CONSUMER.PAUSE": Route("consumer_pause_response", self.consumer_pause),
            b"CONSUMER.MSG.NEXT": RawRoute(self.consumer_next),
        }

    # -- dispatch -----------------------------------------------------------------------

    def _route(self, tokens: list[bytes]) -> tuple[Route | RawRoute | None, list[bytes]]:
        for length in (3, 2, 1):
            route = self.routes.get(b".".join(tokens[:length]))
            if route is not None:
                return route, tokens[length:]
        return None, []

    def handle(
        self, account: Account, subject: bytes, reply: bytes | None, hdr: bytes, body: bytes
    ) -> None:
        if reply is None:
            return
        route, args = self._route(subject.split(b".")[2:])
        if account.limits is None:
            self._not_enabled(account, subject, route, reply, hdr)
            return
        if route is None:
            return
        if isinstance(route, RawRoute):
            account.api_total += 1
            answer = route.handler(account, args, body, reply)
            if answer is not None:
                self.engine.send(account.name, reply, answer[1], answer[0])
            return
        kind = TYPE_PREFIX + route.kind
        try:
            level = headers.header_value(hdr, REQUIRED_API_LEVEL) if hdr else None
            if level is not None and (not level.isdigit() or int(level) > API_LEVEL):
                raise jserrors.error("JSRequiredApiLevelErr")
            response = schema.api_response(kind, route.handler(account, args, body))
        except jserrors.ApiError as err:
            account.api_errors += 1
            response = schema.api_response(kind, route.always or None, error=err)
        # Counted once answered, as nats-server does: INFO shows the calls before it.
        account.api_total += 1
        self.engine.send(account.name, reply, jsonencode.encode(response))

    def _not_enabled(
        self,
        account: Account,
        subject: bytes,
        route: Route | RawRoute | None,
        reply: bytes,
        hdr: bytes,
    ) -> None:
        """The answer of an account without JetStream (nats-server's, see above)."""
        error = jserrors.error("JSNotEnabledForAccountErr")
        if account.system:
            if subject.startswith(ACCOUNT_API_PREFIX):
                return  # nats-server leaves these to its cluster machinery
            info = isinstance(route, Route) and route.handler == self.account_info
            kind = TYPE_PREFIX + ("account_info_response" if info else "system_response")
            self.engine.send(
                account.name, reply, jsonencode.encode(schema.api_response(kind, error=error))
            )
            return
        if route is None:
            return
        if isinstance(route, RawRoute):
            no_responders = headers.build([(b"Nats-Subject", subject)], status=503)
            self.engine.send(account.name, reply, b"", no_responders)
            return
        level = headers.header_value(hdr, REQUIRED_API_LEVEL) if hdr else None
        if level is not None and (not level.isdigit() or int(level) > API_LEVEL):
            error = jserrors.error("JSRequiredApiLevelErr")
        response = schema.api_response(TYPE_PREFIX + route.kind, route.always or None, error=error)
        self.engine.send(account.name, reply, jsonencode.encode(response))

    def _stream(self, account: Account, args: list[bytes]) -> Stream:
        if len(args) != 1:
            raise jserrors.error("JSStreamNotFoundErr")
        stream = account.streams.get(args[0].decode(errors="replace"))
        if stream is None:
            raise jserrors.error("JSStreamNotFoundErr")
        return stream

    # -- account ------------------------------------------------------------------------------

    def account_info(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        memory = storage = reserved_memory = reserved_storage = 0
        for stream in account.streams.values():
            used = stream.store.state(False).bytes
            reserved = max(stream.config.max_bytes, 0)
            if stream.config.storage == "memory":
                memory += used
                reserved_memory += reserved
            else:
                storage += used
                reserved_storage += reserved
        info: dict[str, Any] = {
            "memory": memory,
            "storage": storage,
            "reserved_memory": reserved_memory,
            "reserved_storage": reserved_storage,
            "streams": len(account.streams),
            "consumers": sum(len(s.consumers) for s in account.streams.values()),
            "limits": self._limits_shown(account),
            "api": {"level": API_LEVEL, "total": account.api_total, "errors": account.api_errors},
        }
        if self.engine.domain:
            info["domain"] = self.engine.domain
        return info

    def _limits_shown(self, account: Account) -> dict[str, Any]:
        """The account's limits as `INFO` shows them. `$G`, JetStream's only account
        when no account is configured, shows the server's memory and storage budgets
        where nats-server shows -1 (a choice of ours: what the budgets are is useful)."""
        limits = account.limits or AccountJetStream()
        max_memory, max_storage = limits.max_memory, limits.max_store
        if account.name == const.GLOBAL_ACCOUNT:
            opts = self.engine.opts
            max_memory, max_storage = opts.max_memory_store, opts.max_file_store
        return {
            "max_memory": max_memory,
            "max_storage": max_storage,
            "max_streams": limits.max_streams,
            "max_consumers": limits.max_consumers,
            "max_ack_pending": limits.max_ack_pending,
            "memory_max_stream_bytes": limits.memory_max_stream_bytes,
            "storage_max_stream_bytes": limits.store_max_stream_bytes,
            "max_bytes_required": limits.max_bytes_required,
        }

    # -- streams ----------------------------------------------------------------------------

    def _check_stream_limits(self, account: Account, config: schema.StreamConfig) -> None:
        """nats jsNonClusteredStreamLimitsCheck and checkLimits for a stream to create
        in `account` (its other streams count, a stream of the same name does not):
        the number of streams, the stream's max consumers, and the bytes its max bytes
        reserve (at least 1) beside the other streams' reservations of that storage."""
        limits = account.limits
        assert limits is not None
        others = [s for name, s in account.streams.items() if name != config.name]
        if 0 < limits.max_streams <= len(others):
            raise jserrors.error("JSMaximumStreamsLimitErr")
        self._check_bytes_limits(account, config, others, config.max_bytes, 0)

    def _check_bytes_limits(
        self,
        account: Account,
        config: schema.StreamConfig,
        others: list[Stream],
        add: int,
        more_reserved: int,
    ) -> None:
        """nats checkLimits: the stream's max consumers within the account's, and `add`
        more bytes (at least 1 if negative) beside what the account's other streams of
        that storage reserve (plus `more_reserved`) within its memory or storage."""
        limits = account.limits
        assert limits is not None
        if 0 < limits.max_consumers < config.max_consumers:
            raise jserrors.error("JSMaximumConsumersLimitErr")
        memory = config.storage == "memory"
        limit = limits.max_memory if memory else limits.max_store
        if limit < 0:
            return
        reserved = more_reserved + sum(
            s.config.max_bytes
            for s in others
            if s.config.max_bytes > 0 and (s.config.storage == "memory") == memory
        )
        if add < 0:
            add = 1
        if reserved > limit or add > limit - reserved:
            raise jserrors.error(
                "JSMemoryResourcesExceededErr" if memory else "JSStorageResourcesExceededErr"
            )

    def _config_from(self, args: list[bytes], body: bytes) -> schema.StreamConfigRequest:
        config = (
            jsondecode.decode_request(body, schema.StreamConfigRequest)
            if body.strip()
            else (schema.StreamConfigRequest())
        )
        subject_name = b".".join(args).decode(errors="replace")
        stream_validate.check_create_request(subject_name, config)
        return config

    def _configs(self, account: Account) -> dict[str, schema.StreamConfig]:
        return {name: stream.config for name, stream in account.streams.items()}

    def stream_create(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        request = self._config_from(args, body)
        self._check_stream_limits(account, request)
        config = stream_validate.check_stream_config(
            request, existing=self._configs(account), account=account.limits
        )
        existing = account.streams.get(config.name)
        if existing is None:
            # Again with the defaults filled in (max bytes -1 reserves 1 byte), as nats
            # addStream does for a stream it creates.
            self._check_stream_limits(account, config)
            existing = self.engine.add_stream(account, _plain(config))
        return {**self.info_of(existing, dynamic=True), "did_create": True}

    def stream_update(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        request = (
            jsondecode.decode_request(body, schema.StreamConfigRequest)
            if body.strip()
            else (schema.StreamConfigRequest())
        )
        # nats order: the config is validated before the name in the subject is checked.
        stream_validate.check_stream_cfg(versioning.set_static_metadata(request))
        stream_validate.check_stream_mismatch(
            b".".join(args).decode(errors="replace"), request.name
        )
        stream = account.streams.get(request.name)
        if stream is None:
            raise jserrors.error("JSStreamNotFoundErr")
        config = stream_validate.check_stream_update(
            stream.config, request, existing=self._configs(account), account=account.limits
        )
        # nats configUpdateCheck: only what max bytes grows by is reserved anew.
        grows = max(max(config.max_bytes, 0) - max(stream.config.max_bytes, 0), 0)
        others = [s for s in account.streams.values() if s is not stream]
        kept = max(config.max_bytes - grows, 0)
        self._check_bytes_limits(account, config, others, grows, kept)
        self.engine.update_stream(account, stream, _plain(config))
        return self.info_of(stream, dynamic=True)

    def stream_info(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream(account, args)
        request = _decode(body, schema.StreamInfoRequest)
        info = self.info_of(
            stream,
            deleted_details=request.deleted_details,
            subjects_filter=request.subjects_filter,
            offset=request.offset,
            dynamic=True,
            paged=True,
        )
        return info

    def info_of(
        self,
        stream: Stream,
        *,
        deleted_details: bool = False,
        subjects_filter: str = "",
        offset: int = 0,
        dynamic: bool = False,
        paged: bool = False,
    ) -> dict[str, Any]:
        """StreamInfo fields. `dynamic` answers (create, update, info) show the
        server's version and API level in the config metadata, STREAM.LIST items do
        not; only STREAM.INFO (`paged`) names the leader and carries paging keys, as in
        nats-server."""
        store_state = stream.store.state(deleted_details)
        state: dict[str, Any] = {
            "messages": store_state.msgs,
            "bytes": store_state.bytes,
            "first_seq": store_state.first_seq,
            "first_ts": _time(store_state.first_ts),
            "last_seq": store_state.last_seq,
            "last_ts": _time(store_state.last_ts),
        }
        if store_state.num_subjects:
            state["num_subjects"] = store_state.num_subjects
        paging = {"total": 0, "offset": 0, "limit": 0}
        if subjects_filter:
            subjects = stream.store.subjects_state(subjects_filter)
            names = sorted(subjects)
            offset = min(max(offset, 0), len(names))
            page = names[offset : offset + SUBJECTS_LIMIT]
            if page:
                state["subjects"] = {name: subjects[name] for name in page}
            paging = {"total": len(names), "offset": offset, "limit": SUBJECTS_LIMIT}
        if store_state.num_deleted:
            state["num_deleted"] = store_state.num_deleted
            if deleted_details:
                state["deleted"] = list(store_state.deleted)
        if store_state.lost_msgs:
            state["lost"] = {"msgs": list(store_state.lost_msgs), "bytes": store_state.lost_bytes}
        state["consumer_count"] = len(stream.consumers)
        config = stream.config
        if dynamic:
            config = versioning.set_dynamic_metadata(
                config, version=const.SERVER_VERSION, api_level=API_LEVEL
            )
        info: dict[str, Any] = {
            "config": config,
            "created": _time(stream.meta.created),
            "state": state,
        }
        if paged:
            info["cluster"] = {"leader": self.engine.server_name}
        info["ts"] = _time(self.engine.clock())
        if paged:
            info.update(paging)
        if self.engine.domain:
            info["domain"] = self.engine.domain
        return info

    def stream_delete(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        if not _empty(body):
            raise jserrors.error("JSNotEmptyRequestErr")
        stream = self._stream(account, args)
        self.engine.delete_stream(account, stream)
        return {"success": True}

    def _matching_names(self, account: Account, body: bytes) -> list[str]:
        request = _decode(body, schema.StreamNamesRequest)
        names = sorted(account.streams)
        if request.subject:
            wanted = request.subject
            names = [
                name
                for name in names
                if any(
                    subjects_overlap(wanted.encode(), s.encode())
                    for s in account.streams[name].config.subjects or ()
                )
            ]
        return names

    def stream_names(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        names = self._matching_names(account, body)
        request = _decode(body, schema.StreamNamesRequest)
        offset = min(max(request.offset, 0), len(names))
        page = names[offset : offset + NAMES_LIMIT]
        return {
            "total": len(names),
            "offset": offset,
            "limit": NAMES_LIMIT,
            "streams": page or None,
        }

    def stream_list(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        names = self._matching_names(account, body)
        request = _decode(body, schema.StreamNamesRequest)
        offset = min(max(request.offset, 0), len(names))
        page = names[offset : offset + LIST_LIMIT]
        return {
            "total": len(names),
            "offset": offset,
            "limit": LIST_LIMIT,
            "streams": [self.info_of(account.streams[name]) for name in page],
        }

    def stream_purge(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream(account, args)
        request = _decode(body, schema.StreamPurgeRequest)
        if stream.config.sealed:
            raise jserrors.error("JSStreamSealedErr")
        if stream.config.deny_purge:
            raise jserrors.error("JSStreamPurgeFailedF", err="stream purge not permitted")
        stream_validate.check_purge_request(request)
        purged = stream.store.purge(subject=request.filter, seq=request.seq, keep=request.keep)
        self.engine.dirty.add(stream)
        stream.messages_removed()
        return {"success": True, "purged": purged}

    # -- messages -------------------------------------------------------------------------------

    def _find(self, stream: Stream, request: Any) -> Any:
        """The message a MSG.GET / DIRECT.GET request selects (ErrMsgNotFound if none)."""
        store = stream.store
        if request.last_by_subj:
            msg = store.load_last_msg(request.last_by_subj)
        elif request.next_by_subj:
            msg = store.load_next_msg(request.next_by_subj, max(request.seq, 1))
        elif request.start_time is not None:
            msg = _first_at_or_after(stream, request.start_time)
        else:
            msg = store.load_msg(request.seq)
        if msg is None:
            raise ErrMsgNotFound("no message found")
        return msg

    def msg_get(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream(account, args)
        if not body.strip():
            raise jserrors.error("JSBadRequestErr")
        request = jsondecode.decode_request(body, schema.MsgGetRequest)
        stream_validate.check_msg_get_request(request)
        try:
            msg = self._find(stream, request)
        except StoreError:
            raise jserrors.error("JSNoMessageFoundErr") from None
        message = schema.StoredMsg(
            subject=msg.subject,
            seq=msg.seq,
            hdrs=b"" if request.no_hdr else msg.hdr,
            data=msg.data,
            time=_time(msg.ts),
        )
        return {"message": message}

    def msg_delete(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream(account, args)
        if not body.strip():
            raise jserrors.error("JSBadRequestErr")
        request = jsondecode.decode_request(body, schema.MsgDeleteRequest)
        if stream.config.sealed:
            raise jserrors.error("JSStreamSealedErr")
        if stream.config.deny_delete:
            raise jserrors.error("JSStreamMsgDeleteFailedF", err="message delete not permitted")
        if not stream.store.remove_msg(request.seq, erase=not request.no_erase):
            raise jserrors.error("JSSequenceNotFoundErrF", seq=request.seq)
        self.engine.dirty.add(stream)
        stream.messages_removed()
        return {"success": True}

    def direct_get(
        self, account: Account, args: list[bytes], body: bytes, reply: bytes
    ) -> tuple[bytes, bytes] | None:
        """Raw message answers (jetstream-api.md §7); None: not served (no answer)."""
        if not args:
            return None
        stream = account.streams.get(args[0].decode(errors="replace"))
        if stream is None or not stream.config.allow_direct:
            return None
        subject = b".".join(args[1:]).decode(errors="replace")
        try:
            if subject:
                request = (
                    _decode(body, schema.MsgGetRequest) if body.strip() else schema.MsgGetRequest()
                )
                if (
                    request.last_by_subj
                    or request.next_by_subj
                    or request.seq
                    or request.batch
                    or request.start_time
                    or request.multi_last
                ):
                    return _status(408, b"Bad Request"), b""
                request = msgspec.structs.replace(request, last_by_subj=subject)
            else:
                if not body.strip():
                    return _status(408, b"Empty Request"), b""
                request = jsondecode.decode_request(body, schema.MsgGetRequest)
                if request.batch or request.multi_last:
                    return self._direct_batch(stream, request)
                try:
                    stream_validate.check_msg_get_request(request)
                except jserrors.ApiError:
                    return _status(408, b"Bad Request"), b""
        except jserrors.ApiError:
            return _status(408, b"Malformed Request"), b""
        try:
            msg = self._find(stream, request)
        except StoreError:
            return _status(404, b"Message Not Found"), b""
        return _direct_headers(stream, msg, request.no_hdr), msg.data

    # -- consumers ---------------------------------------------------------------------------

    def _stream_of(self, account: Account, args: list[bytes]) -> Stream:
        return self._stream(account, args[:1])

    def consumer_create(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        return self._create_consumer(account, args, body, durable_form=False)

    def consumer_durable_create(
        self, account: Account, args: list[bytes], body: bytes
    ) -> dict[str, Any]:
        return self._create_consumer(account, args, body, durable_form=True)

    def _create_consumer(
        self, account: Account, args: list[bytes], body: bytes, durable_form: bool
    ) -> dict[str, Any]:
        request = (
            jsondecode.decode_request(body, consumer_schema.CreateConsumerRequest)
            if body.strip()
            else consumer_schema.CreateConsumerRequest()
        )
        verb = "CONSUMER.DURABLE.CREATE." if durable_form else "CONSUMER.CREATE."
        subject = "$JS.API." + verb + b".".join(args).decode(errors="replace")
        stream = account.streams.get(args[0].decode(errors="replace")) if args else None
        existing = stream.consumers if stream is not None else {}
        limits = account.limits or AccountJetStream()
        name, config = consumer_validate.check_consumer_create(
            subject,
            request,
            stream.config if stream is not None else None,
            {n: c.config for n, c in existing.items()},
            limits=consumer_validate.ConsumerLimits(
                account_max_ack_pending=max(limits.max_ack_pending, 0),
                account_max_consumers=max(limits.max_consumers, 0),
            ),
            has_interest=lambda deliver: self.engine.interest_for(
                account.name, deliver.encode(), None
            ),
        )
        assert stream is not None
        current = stream.consumers.get(name)
        if current is None:
            current = stream.add_consumer(name, config)
        elif config != current.config:
            stream.update_consumer(current, config)
        return self.consumer_info_of(current, dynamic=True)

    def consumer_info_of(self, consumer: Consumer, dynamic: bool = False) -> dict[str, Any]:
        info = consumer.info()
        if dynamic:
            info["config"] = versioning.set_dynamic_metadata(
                info["config"], version=const.SERVER_VERSION, api_level=API_LEVEL
            )
        return info

    def consumer_info(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        if not _empty(body):
            raise jserrors.error("JSNotEmptyRequestErr")
        stream = self._stream_of(account, args)
        consumer = _consumer(stream, args)
        consumer.save_now = True  # what the client is shown is what survives a crash
        stream.save_consumers(self.engine.clock())
        return self.consumer_info_of(consumer, dynamic=True)

    def consumer_delete(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        if not _empty(body):
            raise jserrors.error("JSNotEmptyRequestErr")
        stream = self._stream_of(account, args)
        stream.delete_consumer(_consumer(stream, args))
        return {"success": True}

    def consumer_names(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream_of(account, args)
        request = _decode(body, schema.ConsumersRequest)
        names = sorted(stream.consumers)
        offset = min(max(request.offset, 0), len(names))
        page = names[offset : offset + NAMES_LIMIT]
        return {"total": len(names), "offset": offset, "limit": NAMES_LIMIT, "consumers": page}

    def consumer_list(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream_of(account, args)
        request = _decode(body, schema.ConsumersRequest)
        names = sorted(stream.consumers)
        offset = min(max(request.offset, 0), len(names))
        page = names[offset : offset + LIST_LIMIT]
        return {
            "total": len(names),
            "offset": offset,
            "limit": LIST_LIMIT,
            "consumers": [stream.consumers[name].info() for name in page],
        }

    def consumer_pause(self, account: Account, args: list[bytes], body: bytes) -> dict[str, Any]:
        stream = self._stream_of(account, args)
        consumer = _consumer(stream, args)
        request = _decode(body, consumer_schema.ConsumerPauseRequest)
        until = timestamp.parse_rfc3339(request.pause_until) if request.pause_until else 0
        now = self.engine.clock()
        paused = until > now
        config = msgspec.structs.replace(
            consumer.config, pause_until=request.pause_until if paused else None
        )
        stream.update_consumer(consumer, config)
        answer: dict[str, Any] = {
            "paused": paused,
            "pause_until": request.pause_until if paused else timestamp.ZERO_TIME,
        }
        if paused:
            answer["pause_remaining"] = until - now
        return answer

    def consumer_next(
        self, account: Account, args: list[bytes], body: bytes, reply: bytes
    ) -> tuple[bytes, bytes] | None:
        """A pull request: queued, or answered at once with a status line."""
        stream = account.streams.get(args[0].decode(errors="replace")) if args else None
        consumer = None
        if stream is not None and len(args) == 2:
            consumer = stream.consumers.get(args[1].decode(errors="replace"))
        if consumer is None:
            # nats-server subscribes per consumer: a missing one means no responders.
            subject = b"$JS.API.CONSUMER.MSG.NEXT." + b".".join(args)
            return headers.build([(b"Nats-Subject", subject)], status=503), b""
        try:
            request = consumer_validate.check_next_request(body, consumer.config)
        except consumer_validate.NextRequestError as refused:
            return refused.status(), b""
        answer = consumer.add_request(reply, request, self.engine.clock())
        if answer is not None:
            return answer, b""
        return None

    def _direct_batch(self, stream: Stream, request: Any) -> tuple[bytes, bytes]:
        # Batched and multi-last direct gets answer with several messages; served
        # with consumers' delivery machinery later. Refused clearly for now.
        return _status(408, b"Bad Request"), b""


def _consumer(stream: Stream, args: list[bytes]) -> Consumer:
    consumer = stream.consumers.get(args[1].decode(errors="replace")) if len(args) == 2 else None
    if consumer is None:
        raise jserrors.error("JSConsumerNotFoundErr")
    return consumer


def _plain(config: schema.StreamConfig) -> schema.StreamConfig:
    """The config to keep: a StreamConfigRequest loses its request-only ``pedantic``."""
    if type(config) is schema.StreamConfig:
        return config
    return schema.StreamConfig(
        **{name: getattr(config, name) for name in schema.StreamConfig.__struct_fields__}
    )


def _status(code: int, description: bytes) -> bytes:
    return headers.build(status=code, description=description)


def _direct_headers(stream: Stream, msg: Any, no_hdr: bool) -> bytes:
    if no_hdr:
        return b""
    extra = [
        (b"Nats-Stream", stream.name_bytes),
        (b"Nats-Subject", msg.subject.encode()),
        (b"Nats-Sequence", str(msg.seq).encode()),
        (b"Nats-Time-Stamp", _time(msg.ts).encode()),
    ]
    if msg.hdr:
        lines = b"".join(key + b": " + value + b"\r\n" for key, value in extra)
        return msg.hdr[:-2] + lines + b"\r\n"
    return headers.build(extra)


def _first_at_or_after(stream: Stream, ts: int) -> Any:
    store = stream.store
    seq = store.state(False).first_seq
    while True:
        msg = store.load_next_msg("", seq)
        if msg is None or msg.ts >= ts:
            return msg
        seq = msg.seq + 1
