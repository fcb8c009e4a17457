"""JSON shapes of the JetStream API, and their encoding and decoding as nats-server does it.

Owner: pure data and functions, imported by the storage process (jetstream/) and by tests.
No I/O, no asyncio.

Structs here mirror nats-server's Go types field for field, in Go's field order, with Go's
JSON names. Two things make our JSON indistinguishable from the Go server's:

- **Encoding** (`encode`): a field tagged ``omitempty`` in Go is listed in its class's
  ``omitempty`` set and left out when it holds its Go zero value (the Python default);
  every other field is always written, ``None`` as ``null``. Map fields are written with
  sorted keys, and ``<``, ``>``, ``&``, U+2028, U+2029 are escaped, as ``encoding/json``
  does.
- **Decoding** (`decode_request`): requests are read the way nats-server 2.15 reads them
  (``json.Decoder`` with ``DisallowUnknownFields``, Go's v1 semantics on the v2 engine): the
  error texts for malformed JSON, unknown fields and wrong types are reproduced byte for
  byte (``invalid JSON: ...``, err_code 10025); ``null`` leaves a scalar untouched; field
  names match case-insensitively; several JSON values in one body are decoded one after
  the other into the same request; enum fields keep Go's quirks (``discard`` is
  case-insensitive, the others are not); timestamps are normalised to RFC 3339 with
  nanoseconds exactly as Go re-renders them.

Durations are integer nanoseconds. Timestamps are strings; `format_time` renders store
times (int ns since the epoch, 0 meaning "no time") as Go's ``RFC3339Nano`` in UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import Meta

from shardbroker.jetstream.jserrors import ApiError, JSInvalidJSONErr

__all__ = [
    "ACCOUNT_INFO_RESPONSE",
    "CONSUMER_CREATE_RESPONSE",
    "CONSUMER_DELETE_RESPONSE",
    "CONSUMER_INFO_RESPONSE",
    "CONSUMER_LIST_RESPONSE",
    "CONSUMER_NAMES_RESPONSE",
    "CONSUMER_PAUSE_RESPONSE",
    "CONSUMER_RESET_RESPONSE",
    "CONSUMER_UNPIN_RESPONSE",
    "JS_API_LIST_LIMIT",
    "JS_API_NAMES_LIMIT",
    "STREAM_CREATE_RESPONSE",
    "STREAM_DELETE_RESPONSE",
    "STREAM_INFO_RESPONSE",
    "STREAM_LIST_RESPONSE",
    "STREAM_MSG_DELETE_RESPONSE",
    "STREAM_MSG_GET_RESPONSE",
    "STREAM_NAMES_RESPONSE",
    "STREAM_PURGE_RESPONSE",
    "STREAM_RESTORE_RESPONSE",
    "STREAM_SNAPSHOT_RESPONSE",
    "STREAM_UPDATE_RESPONSE",
    "SYSTEM_OVERLOADED",
    "SYSTEM_RESPONSE",
    "ZERO_TIME",
    "AccountInfo",
    "AccountLimits",
    "AckPolicy",
    "ApiPaged",
    "ApiResponse",
    "ApiStats",
    "ClusterInfo",
    "ConsumerAction",
    "ConsumerConfig",
    "ConsumerDeleteResponse",
    "ConsumerInfo",
    "ConsumerListResponse",
    "ConsumerNamesResponse",
    "ConsumerPauseRequest",
    "ConsumerPauseResponse",
    "ConsumersRequest",
    "CreateConsumerRequest",
    "DeliverPolicy",
    "DirectGetRequest",
    "ExternalStream",
    "LostStreamData",
    "MsgDeleteRequest",
    "MsgDeleteResponse",
    "MsgGetRequest",
    "MsgGetResponse",
    "NextRequest",
    "PeerInfo",
    "Placement",
    "PriorityGroupState",
    "PriorityPolicy",
    "PubAck",
    "RePublish",
    "ReplayPolicy",
    "SequenceInfo",
    "StoredMsg",
    "StreamAlternate",
    "StreamConfig",
    "StreamConfigRequest",
    "StreamConsumerLimits",
    "StreamConsumerSource",
    "StreamDeleteResponse",
    "StreamInfo",
    "StreamInfoRequest",
    "StreamListRequest",
    "StreamListResponse",
    "StreamNamesRequest",
    "StreamNamesResponse",
    "StreamPurgeRequest",
    "StreamPurgeResponse",
    "StreamSource",
    "StreamSourceInfo",
    "StreamState",
    "SubjectTransformConfig",
    "Tier",
    "api_response",
    "consumer_create_response",
    "consumer_info_response",
    "decode_next_request",
    "decode_request",
    "encode",
    "format_time",
    "go_duration",
    "go_quote",
    "is_empty_request",
    "is_json_object_or_array",
    "parse_time",
    "pub_ack",
    "pub_ack_duplicate",
    "pub_ack_error",
    "pub_ack_prefix",
    "to_builtins",
]

# -- response type strings (jetstream-api.md section 9) -----------------------------------

_TYPE = "io.nats.jetstream.api.v1."
ACCOUNT_INFO_RESPONSE: Final = _TYPE + "account_info_response"
STREAM_CREATE_RESPONSE: Final = _TYPE + "stream_create_response"
STREAM_UPDATE_RESPONSE: Final = _TYPE + "stream_update_response"
STREAM_INFO_RESPONSE: Final = _TYPE + "stream_info_response"
STREAM_DELETE_RESPONSE: Final = _TYPE + "stream_delete_response"
STREAM_NAMES_RESPONSE: Final = _TYPE + "stream_names_response"
STREAM_LIST_RESPONSE: Final = _TYPE + "stream_list_response"
STREAM_PURGE_RESPONSE: Final = _TYPE + "stream_purge_response"
STREAM_MSG_GET_RESPONSE: Final = _TYPE + "stream_msg_get_response"
STREAM_MSG_DELETE_RESPONSE: Final = _TYPE + "stream_msg_delete_response"
STREAM_SNAPSHOT_RESPONSE: Final = _TYPE + "stream_snapshot_response"
STREAM_RESTORE_RESPONSE: Final = _TYPE + "stream_restore_response"
CONSUMER_CREATE_RESPONSE: Final = _TYPE + "consumer_create_response"
CONSUMER_INFO_RESPONSE: Final = _TYPE + "consumer_info_response"
CONSUMER_DELETE_RESPONSE: Final = _TYPE + "consumer_delete_response"
CONSUMER_NAMES_RESPONSE: Final = _TYPE + "consumer_names_response"
CONSUMER_LIST_RESPONSE: Final = _TYPE + "consumer_list_response"
CONSUMER_PAUSE_RESPONSE: Final = _TYPE + "consumer_pause_response"
CONSUMER_RESET_RESPONSE: Final = _TYPE + "consumer_reset_response"
CONSUMER_UNPIN_RESPONSE: Final = _TYPE + "consumer_unpin_response"
SYSTEM_RESPONSE: Final = _TYPE + "system_response"
SYSTEM_OVERLOADED: Final = _TYPE + "system_overloaded"

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time`` as JSON: "no time" in first_ts/last_ts and friends."""

# -- Go-typed scalars ------------------------------------------------------------------------
# The "go" extra is the Go type named in decode errors; the bounds are Go's.

_I64 = (-(1 << 63), (1 << 63) - 1)
Int = Annotated[int, Meta(ge=_I64[0], le=_I64[1], extra={"go": "int"})]
Int32 = Annotated[int, Meta(ge=-(1 << 31), le=(1 << 31) - 1, extra={"go": "int32"})]
Int64 = Annotated[int, Meta(ge=_I64[0], le=_I64[1], extra={"go": "int64"})]
# msgspec bounds stop at int64; the uint64 ceiling is enforced by decode_request ("hi").
Uint64 = Annotated[int, Meta(ge=0, extra={"go": "uint64", "hi": (1 << 64) - 1})]
Duration = Annotated[int, Meta(ge=_I64[0], le=_I64[1], extra={"go": "time.Duration"})]
Time = Annotated[str, Meta(extra={"go": "time.Time", "time": True})]
"""An RFC 3339 timestamp, normalised on decode as Go re-renders it."""

# Enums decode through Go's custom UnmarshalJSON methods; "enum" names the method's rules.
Retention = Annotated[Literal["limits", "interest", "workqueue"], Meta(extra={"enum": "exact"})]
Discard = Annotated[Literal["old", "new"], Meta(extra={"enum": "fold"})]
Storage = Annotated[Literal["file", "memory"], Meta(extra={"enum": "exact"})]
Compression = Annotated[Literal["none", "s2"], Meta(extra={"enum": "compression"})]
PersistMode = Annotated[Literal["default", "async"], Meta(extra={"enum": "persist"})]


class _Go(msgspec.Struct, kw_only=True):
    """Base of every JSON shape: ``go_name`` is the Go type, ``omitempty`` its omitempty fields."""

    go_name: ClassVar[str] = ""
    omitempty: ClassVar[frozenset[str]] = frozenset()


# -- stream configuration (server/stream.go StreamConfig and friends) ------------------------


class Placement(_Go):
    go_name: ClassVar[str] = "Placement"
    omitempty: ClassVar[frozenset[str]] = frozenset({"cluster", "tags", "preferred"})
    cluster: str = ""
    # None and [] differ, as nil and empty do in Go: {"tags": []} keeps an otherwise
    # empty placement (answered as "placement":{}), an absent one drops it.
    tags: list[str] | None = None
    preferred: str = ""


class SubjectTransformConfig(_Go):
    go_name: ClassVar[str] = "SubjectTransformConfig"
    src: str = ""
    dest: str = ""


class ExternalStream(_Go):
    go_name: ClassVar[str] = "ExternalStream"
    api: str = ""
    deliver: str = ""


class StreamConsumerSource(_Go):
    go_name: ClassVar[str] = "StreamConsumerSource"
    omitempty: ClassVar[frozenset[str]] = frozenset({"name", "deliver_subject"})
    name: str = ""
    deliver_subject: str = ""


class StreamSource(_Go):
    go_name: ClassVar[str] = "StreamSource"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"opt_start_seq", "opt_start_time", "filter_subject", "subject_transforms", "external",
         "consumer"}
    )  # fmt: skip
    name: str = ""
    opt_start_seq: Uint64 = 0
    opt_start_time: Time | None = None
    filter_subject: str = ""
    subject_transforms: list[SubjectTransformConfig] = []
    external: ExternalStream | None = None
    consumer: StreamConsumerSource | None = None


class RePublish(_Go):
    go_name: ClassVar[str] = "RePublish"
    omitempty: ClassVar[frozenset[str]] = frozenset({"src", "headers_only"})
    src: str = ""
    dest: str = ""
    headers_only: bool = False


class StreamConsumerLimits(_Go):
    go_name: ClassVar[str] = "StreamConsumerLimits"
    omitempty: ClassVar[frozenset[str]] = frozenset({"inactive_threshold", "max_ack_pending"})
    inactive_threshold: Duration = 0
    max_ack_pending: Int = 0


_SOURCES_GO = Meta(extra={"go": "[]*server.StreamSource"})


class StreamConfig(_Go):
    """A stream's configuration (jetstream-api.md 6.2).

    Defaults are Go's zero values, i.e. what an absent JSON field decodes to; the server
    defaults (-1 limits, 2 min duplicate window, ...) are applied by
    `validate.check_stream_cfg`.
    """

    go_name: ClassVar[str] = "StreamConfig"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"description", "subjects", "max_msg_size", "no_ack", "duplicate_window", "placement",
         "mirror", "sources", "first_seq", "subject_transform", "republish",
         "discard_new_per_subject", "subject_delete_marker_ttl", "allow_msg_counter",
         "allow_atomic", "allow_msg_schedules", "persist_mode", "allow_batched", "metadata",
         "pedantic"}
    )  # fmt: skip
    name: str = ""
    description: str = ""
    subjects: list[str] = []
    retention: Retention = "limits"
    max_consumers: Int = 0
    max_msgs: Int64 = 0
    max_bytes: Int64 = 0
    max_age: Duration = 0
    max_msgs_per_subject: Int64 = 0
    max_msg_size: Int32 = 0
    discard: Discard = "old"
    storage: Storage = "file"
    num_replicas: Int = 0
    no_ack: bool = False
    duplicate_window: Duration = 0
    placement: Placement | None = None
    mirror: StreamSource | None = None
    sources: Annotated[list[StreamSource], _SOURCES_GO] = []
    compression: Compression = "none"
    first_seq: Uint64 = 0
    subject_transform: SubjectTransformConfig | None = None
    republish: RePublish | None = None
    allow_direct: bool = False
    mirror_direct: bool = False
    discard_new_per_subject: bool = False
    sealed: bool = False
    deny_delete: bool = False
    deny_purge: bool = False
    allow_rollup_hdrs: bool = False
    consumer_limits: StreamConsumerLimits = msgspec.field(default_factory=StreamConsumerLimits)
    allow_msg_ttl: bool = False
    subject_delete_marker_ttl: Duration = 0
    allow_msg_counter: bool = False
    allow_atomic: bool = False
    allow_msg_schedules: bool = False
    persist_mode: PersistMode = "default"
    allow_batched: bool = False
    metadata: dict[str, str] = {}


class StreamConfigRequest(StreamConfig):
    """The body of STREAM.CREATE / STREAM.UPDATE: a StreamConfig plus ``pedantic``."""

    go_name: ClassVar[str] = "StreamConfigRequest"
    pedantic: bool = False

    def config(self) -> StreamConfig:
        """The StreamConfig part (without ``pedantic``)."""
        values = {f: getattr(self, f) for f in StreamConfig.__struct_fields__}
        return StreamConfig(**values)


# -- stream state and info ---------------------------------------------------------------------


class LostStreamData(_Go):
    go_name: ClassVar[str] = "LostStreamData"
    msgs: list[int] | None = None
    bytes: Uint64 = 0


class StreamState(_Go):
    go_name: ClassVar[str] = "StreamState"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"num_subjects", "subjects", "num_deleted", "deleted", "lost"}
    )
    messages: Uint64 = 0
    bytes: Uint64 = 0
    first_seq: Uint64 = 0
    first_ts: Time = ZERO_TIME
    last_seq: Uint64 = 0
    last_ts: Time = ZERO_TIME
    num_subjects: Int = 0
    subjects: dict[str, int] = {}
    num_deleted: Int = 0
    deleted: list[int] = []
    lost: LostStreamData | None = None
    consumer_count: Int = 0


class PeerInfo(_Go):
    go_name: ClassVar[str] = "PeerInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset({"offline", "lag", "pending"})
    name: str = ""
    current: bool = False
    offline: bool = False
    active: Duration = 0
    lag: Uint64 = 0
    peer: str = ""
    pending: bool = False


class ClusterInfo(_Go):
    """A single server answers ``{"leader": "<server name>"}`` on STREAM.INFO."""

    go_name: ClassVar[str] = "ClusterInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"name", "raft_group", "leader", "leader_since", "system_account", "traffic_account",
         "replicas"}
    )  # fmt: skip
    name: str = ""
    raft_group: str = ""
    leader: str = ""
    leader_since: Time | None = None
    system_account: bool = False
    traffic_account: str = ""
    replicas: list[PeerInfo] = []


class ApiErrorBody(_Go):
    """The ``error`` object (jserrors.ApiError.to_dict as a Struct, for decoding)."""

    go_name: ClassVar[str] = "ApiError"
    omitempty: ClassVar[frozenset[str]] = frozenset({"err_code", "description"})
    code: Int = 0
    err_code: int = 0
    description: str = ""


class StreamSourceInfo(_Go):
    go_name: ClassVar[str] = "StreamSourceInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"external", "error", "filter_subject", "subject_transforms"}
    )
    name: str = ""
    external: ExternalStream | None = None
    lag: Uint64 = 0
    active: Duration = 0  # ns since last contact; -1 when never
    error: ApiErrorBody | None = None
    filter_subject: str = ""
    subject_transforms: list[SubjectTransformConfig] = []


class StreamAlternate(_Go):
    go_name: ClassVar[str] = "StreamAlternate"
    omitempty: ClassVar[frozenset[str]] = frozenset({"domain"})
    name: str = ""
    domain: str = ""
    cluster: str = ""


class StreamInfo(_Go):
    """Config and state of a stream: the body of create/update/info and of each LIST item.

    STREAM.INFO and create/update answers carry the config with the dynamic metadata
    (``_nats.ver``, ``_nats.level``, see `validate.set_dynamic_stream_metadata`); LIST items
    carry the stored config without it and without ``cluster`` (captured from nats-server).
    """

    go_name: ClassVar[str] = "StreamInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"domain", "cluster", "mirror", "sources", "alternates"}
    )
    config: StreamConfig = msgspec.field(default_factory=StreamConfig)
    created: Time = ZERO_TIME
    state: StreamState = msgspec.field(default_factory=StreamState)
    domain: str = ""
    cluster: ClusterInfo | None = None
    mirror: StreamSourceInfo | None = None
    sources: list[StreamSourceInfo] = []
    alternates: list[StreamAlternate] = []
    ts: Time = ZERO_TIME


class StoredMsg(_Go):
    """``message`` of a STREAM.MSG.GET answer; ``hdrs``/``data`` are base64 in JSON."""

    go_name: ClassVar[str] = "StoredMsg"
    omitempty: ClassVar[frozenset[str]] = frozenset({"hdrs", "data"})
    subject: str = ""
    seq: Uint64 = 0
    hdrs: bytes = b""
    data: bytes = b""
    time: Time = ZERO_TIME


# -- account info ($JS.API.INFO) ----------------------------------------------------------------


class AccountLimits(_Go):
    """Account limits; -1 is "unlimited" (the values nats-server reports by default)."""

    go_name: ClassVar[str] = "JetStreamAccountLimits"
    max_memory: Int64 = -1
    max_storage: Int64 = -1
    max_streams: Int = -1
    max_consumers: Int = -1
    max_ack_pending: Int = -1
    memory_max_stream_bytes: Int64 = -1
    storage_max_stream_bytes: Int64 = -1
    max_bytes_required: bool = False


class ApiStats(_Go):
    go_name: ClassVar[str] = "JetStreamAPIStats"
    omitempty: ClassVar[frozenset[str]] = frozenset({"inflight"})
    level: Int = 0
    total: Uint64 = 0
    errors: Uint64 = 0
    inflight: Uint64 = 0


class Tier(_Go):
    go_name: ClassVar[str] = "JetStreamTier"
    memory: Uint64 = 0
    storage: Uint64 = 0
    reserved_memory: Uint64 = 0
    reserved_storage: Uint64 = 0
    streams: Int = 0
    consumers: Int = 0
    limits: AccountLimits = msgspec.field(default_factory=AccountLimits)


class AccountInfo(Tier):
    """JetStreamAccountStats: the body of the ``$JS.API.INFO`` answer."""

    go_name: ClassVar[str] = "JetStreamAccountStats"
    omitempty: ClassVar[frozenset[str]] = frozenset({"domain", "tiers"})
    domain: str = ""
    api: ApiStats = msgspec.field(default_factory=ApiStats)
    tiers: dict[str, Tier] = {}


# -- requests (server/jetstream_api.go JSApi*Request) ----------------------------------------


class StreamInfoRequest(_Go):
    go_name: ClassVar[str] = "JSApiStreamInfoRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"deleted_details", "subjects_filter"})
    offset: Int = 0
    deleted_details: bool = False
    subjects_filter: str = ""


class StreamNamesRequest(_Go):
    go_name: ClassVar[str] = "JSApiStreamNamesRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"subject"})
    offset: Int = 0
    subject: str = ""


class StreamListRequest(StreamNamesRequest):
    go_name: ClassVar[str] = "JSApiStreamListRequest"


class ConsumersRequest(_Go):
    go_name: ClassVar[str] = "JSApiConsumersRequest"
    offset: Int = 0


class StreamPurgeRequest(_Go):
    go_name: ClassVar[str] = "JSApiStreamPurgeRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"seq", "filter", "keep"})
    seq: Uint64 = 0
    filter: str = ""
    keep: Uint64 = 0


class MsgGetRequest(_Go):
    """STREAM.MSG.GET and DIRECT.GET request; ``start_time``/``up_to_time`` None = not set."""

    go_name: ClassVar[str] = "JSApiMsgGetRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"seq", "last_by_subj", "next_by_subj", "batch", "max_bytes", "start_time",
         "multi_last", "up_to_seq", "up_to_time", "no_hdr"}
    )  # fmt: skip
    seq: Uint64 = 0
    last_by_subj: str = ""
    next_by_subj: str = ""
    batch: Int = 0
    max_bytes: Int = 0
    start_time: Time | None = None
    multi_last: list[str] = []
    up_to_seq: Uint64 = 0
    up_to_time: Time | None = None
    no_hdr: bool = False


DirectGetRequest = MsgGetRequest


class MsgDeleteRequest(_Go):
    go_name: ClassVar[str] = "JSApiMsgDeleteRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"no_erase"})
    seq: Uint64 = 0
    no_erase: bool = False


# -- responses -------------------------------------------------------------------------------------
# Go embeds ApiResponse (type, error), ApiPaged and *StreamInfo / *JetStreamAccountStats
# into its responses. Responses that embed a big struct are built with `api_response`,
# which flattens the parts in order; the others are Structs.


class ApiResponse(_Go):
    go_name: ClassVar[str] = "ApiResponse"
    omitempty: ClassVar[frozenset[str]] = frozenset({"error"})
    type: str = ""
    error: ApiErrorBody | None = None


class ApiPaged(_Go):
    go_name: ClassVar[str] = "ApiPaged"
    total: Int = 0
    offset: Int = 0
    limit: Int = 0


class StreamNamesResponse(ApiResponse):
    """``streams`` is ``null`` when empty, as nats-server answers (captured)."""

    type: str = STREAM_NAMES_RESPONSE
    total: Int = 0
    offset: Int = 0
    limit: Int = 0
    streams: list[str] | None = None


class StreamListResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "missing", "offline"})
    type: str = STREAM_LIST_RESPONSE
    total: Int = 0
    offset: Int = 0
    limit: Int = 0
    streams: list[StreamInfo] = []
    missing: list[str] = []
    offline: dict[str, str] = {}


class StreamPurgeResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "success"})
    type: str = STREAM_PURGE_RESPONSE
    success: bool = False
    purged: Uint64 = 0


class StreamDeleteResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "success"})
    type: str = STREAM_DELETE_RESPONSE
    success: bool = False


class MsgDeleteResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "success"})
    type: str = STREAM_MSG_DELETE_RESPONSE
    success: bool = False


class MsgGetResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "message"})
    type: str = STREAM_MSG_GET_RESPONSE
    message: StoredMsg | None = None


class PubAck(_Go):
    """A PubAck as JSON; the publish path builds its bytes with `pub_ack` and friends."""

    go_name: ClassVar[str] = "PubAck"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"error", "domain", "duplicate", "val", "batch", "count"}
    )
    error: ApiErrorBody | None = None
    stream: str = ""
    seq: Uint64 = 0
    domain: str = ""
    duplicate: bool = False
    val: str = ""
    batch: str = ""
    count: Uint64 = 0


def api_response(
    type_: str, *parts: msgspec.Struct | Mapping[str, Any] | None, error: ApiError | None = None
) -> dict[str, Any]:
    """A response envelope: ``type``, ``error`` if any, then each part's fields in order.

    A part is a Struct (its fields, omitempty applied), a mapping (taken as is) or None (an
    absent embedded pointer: nothing). As in Go, the parts of a failed answer are usually
    None, except those nats-server always writes (paging keys, ``purged``)::

        api_response(STREAM_INFO_RESPONSE, ApiPaged(), info)
        api_response(STREAM_INFO_RESPONSE, ApiPaged(), error=err)
        api_response(STREAM_CREATE_RESPONSE, info, {"did_create": True})
    """
    out: dict[str, Any] = {"type": type_}
    if error is not None:
        out["error"] = error.to_dict()
    for part in parts:
        if part is None:
            continue
        out.update(to_builtins(part) if isinstance(part, msgspec.Struct) else part)
    return out


# -- PubAck bytes (the publish path; no msgspec per message) -------------------------------


def pub_ack_prefix(stream: str, domain: str = "") -> bytes:
    """The constant head of a stream's PubAcks, up to and including ``"seq":``."""
    head = b'{"stream":' + msgspec.json.encode(stream)
    if domain:
        head += b',"domain":' + msgspec.json.encode(domain)
    return head + b',"seq":'


def pub_ack(prefix: bytes, seq: int) -> bytes:
    """``{"stream":"S","seq":N}`` (nats-server's exact bytes)."""
    return prefix + str(seq).encode() + b"}"


def pub_ack_duplicate(prefix: bytes, seq: int) -> bytes:
    """A duplicate's ack; nats-server writes ``"duplicate": true`` with that space."""
    return prefix + str(seq).encode() + b',"duplicate": true}'


def pub_ack_error(stream: str, error: ApiError) -> bytes:
    """``{"error":{...},"stream":"S","seq":0}``: a refused publish."""
    return encode({"error": error.to_dict(), "stream": stream, "seq": 0})


# -- encoding -------------------------------------------------------------------------------------


class _EncField:
    __slots__ = ("attr", "default", "is_map", "key", "omit")

    def __init__(self, attr: str, key: str, omit: bool, default: Any, is_map: bool) -> None:
        self.attr = attr
        self.key = key
        self.omit = omit
        self.default = default
        self.is_map = is_map


_ENC_PLANS: dict[type, tuple[_EncField, ...]] = {}


def _enc_plan(cls: type[msgspec.Struct]) -> tuple[_EncField, ...]:
    plan = _ENC_PLANS.get(cls)
    if plan is None:
        omit = getattr(cls, "omitempty", frozenset())
        fields = []
        for f in msgspec.structs.fields(cls):
            if f.default is not msgspec.NODEFAULT:
                default = f.default
            elif f.default_factory is not msgspec.NODEFAULT:
                default = f.default_factory()
            else:
                default = msgspec.NODEFAULT
            is_map = isinstance(_unwrap(mi.type_info(f.type)), mi.DictType)
            fields.append(_EncField(f.name, f.encode_name, f.name in omit, default, is_map))
        plan = _ENC_PLANS[cls] = tuple(fields)
    return plan


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(others) == 1:
            return _unwrap(others[0])
    return t


def to_builtins(obj: Any) -> Any:
    """Structs to dicts as Go would marshal them (omitempty, sorted maps); the rest as is."""
    if isinstance(obj, msgspec.Struct):
        out: dict[str, Any] = {}
        for f in _enc_plan(type(obj)):
            value = getattr(obj, f.attr)
            if f.omit and (not value or value == f.default):
                continue
            if f.is_map and value:
                value = {k: to_builtins(value[k]) for k in sorted(value)}
            else:
                value = to_builtins(value)
            out[f.key] = value
        return out
    if isinstance(obj, dict):
        return {k: to_builtins(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_builtins(v) for v in obj]
    if isinstance(obj, ApiError):
        return obj.to_dict()
    return obj


_HTML_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def encode(obj: Any) -> bytes:
    """JSON bytes of a Struct, a response dict (values may be Structs) or any builtin.

    Key set and order are nats-server's. Go's escaping of ``<``, ``>``, ``&``, U+2028 and
    U+2029 inside strings is reproduced (those bytes only ever occur inside strings).
    """
    out = msgspec.json.encode(to_builtins(obj))
    for raw, escaped in _HTML_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


# -- Go's quoting --------------------------------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_escape(ch: str, quote: str) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if ch.isprintable():
        return ch
    esc = _GO_ESCAPES.get(ch)
    if esc is not None:
        return esc
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): non-printable characters escaped, the rest kept."""
    return '"' + "".join(_go_escape(ch, '"') for ch in text) + '"'


def _go_quote_rune(ch: str) -> str:
    return "'" + _go_escape(ch, "'") + "'"


# -- time ------------------------------------------------------------------------------------

_NS = 1_000_000_000
_DAY = 86_400


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _format_go_time(unix_ns: int, offset: int = 0) -> str:
    """Go's RFC3339Nano for an instant shown at a UTC offset (seconds); "Z" for offset 0."""
    secs, frac = divmod(unix_ns + offset * _NS, _NS)
    days, rem = divmod(secs, _DAY)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if offset == 0:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    oh, om = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{oh:02d}:{om:02d}"


_ZERO_TIME_NS: Final = _days_from_civil(1, 1, 1) * _DAY * _NS


def format_time(ns: int) -> str:
    """A store time (ns since the epoch, UTC) as nats-server renders it; 0 is Go's zero time."""
    if ns == 0:
        return ZERO_TIME
    return _format_go_time(ns)


class _GoError(Exception):
    """A decode failure carrying the exact text Go's decoder reports."""


_RFC3339 = "2006-01-02T15:04:05Z07:00"


def _time_quote(text: str) -> str:
    # The time package's own quote(): non-ASCII and control bytes as \xNN.
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse_go_time(value: str) -> tuple[int, int]:
    """Go's ``time.Parse(time.RFC3339, value)``: (unix ns, UTC offset in seconds).

    Mirrors the Go parser element by element so that failures read as Go's do
    (``parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"``).
    """

    def bad(layout_elem: str, value_elem: str) -> _GoError:
        return _GoError(
            f"parsing time {_time_quote(value)} as {_time_quote(_RFC3339)}: "
            f"cannot parse {_time_quote(value_elem)} as {_time_quote(layout_elem)}"
        )

    def out_of_range(what: str) -> _GoError:
        return _GoError(f"parsing time {_time_quote(value)}: {what} out of range")

    def lit(v: str, prefix: str) -> str:
        if not v.startswith(prefix):
            raise bad(prefix, v)
        return v[len(prefix) :]

    def num2(v: str, elem: str, fixed: bool = True) -> tuple[int, str]:
        if not _digit(v, 0):
            raise bad(elem, v)
        if not _digit(v, 1):
            if fixed:
                raise bad(elem, v)
            return int(v[0]), v[1:]
        return int(v[:2]), v[2:]

    v = value
    if len(v) < 4 or not _digit(v, 0) or not all("0" <= c <= "9" for c in v[:4]):
        raise bad("2006", v)
    year, v = int(v[:4]), v[4:]
    v = lit(v, "-")
    month, rest = num2(v, "01")
    if not 1 <= month <= 12:
        raise out_of_range("month")
    v = lit(rest, "-")
    day, v = num2(v, "02")
    v = lit(v, "T")
    hour, rest = num2(v, "15", fixed=False)
    if hour >= 24:
        raise out_of_range("hour")
    v = lit(rest, ":")
    minute, rest = num2(v, "04")
    if minute >= 60:
        raise out_of_range("minute")
    v = lit(rest, ":")
    second, v = num2(v, "05")
    if second >= 60:
        raise out_of_range("second")
    nsec = 0
    if len(v) >= 2 and v[0] in ".," and _digit(v, 1):
        n = 2
        while _digit(v, n):
            n += 1
        digits = v[1:n][:9]
        nsec = int(digits) * 10 ** (9 - len(digits))
        v = v[n:]
    offset = 0
    if v.startswith("Z"):
        v = v[1:]
    else:
        # Go checks the offset's ranges before its parse errors and its sign.
        if len(v) < 6 or v[3] != ":":
            raise bad("Z07:00", v)
        oh = om = 0
        ok = _digit(v, 1) and _digit(v, 2)
        if ok:
            oh = int(v[1:3])
            ok = _digit(v, 4) and _digit(v, 5)
            if ok:
                om = int(v[4:6])
        if oh > 24:
            raise out_of_range("time zone offset hour")
        if om > 60:
            raise out_of_range("time zone offset minute")
        if not ok or v[0] not in "+-":
            raise bad("Z07:00", v)
        offset = (oh * 60 + om) * 60 * (-1 if v[0] == "-" else 1)
        v = v[6:]
    if v:
        raise _GoError(f"parsing time {_time_quote(value)}: extra text: {_time_quote(v)}")
    if day < 1 or day > _days_in(month, year):
        raise out_of_range("day")
    secs = _days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + second
    return (secs - offset) * _NS + nsec, offset


def parse_time(text: str) -> int:
    """An RFC 3339 time as ns since the epoch (UTC); Go's zero time gives 0, as in the store.

    Raises ValueError with Go's ``time.Parse`` text when the time is not valid.
    """
    try:
        ns, _ = _parse_go_time(text)
    except _GoError as exc:
        raise ValueError(str(exc)) from None
    return 0 if ns == _ZERO_TIME_NS else ns


def _normalise_time(text: str) -> str:
    ns, offset = _parse_go_time(text)
    return _format_go_time(ns, offset)


# -- reading JSON as Go's decoder does ----------------------------------------------------------
# A small scanner turns the body into values that keep what Go's messages need: raw number
# text, the raw text of every value (enum errors quote it), duplicate object keys in order.


class _Str(str):
    """A JSON string: its decoded text, with the literal as written in ``raw``."""

    raw: str


class _Num(str):
    """A JSON number, kept as its literal text."""

    __slots__ = ()


class _Arr(list[Any]):
    __slots__ = ("raw",)
    raw: str


class _Obj(list[tuple[str, Any]]):
    """A JSON object as (key, value) pairs in document order, duplicates kept."""

    __slots__ = ("raw",)
    raw: str


class _Syntax(Exception):
    def __init__(self, message: str, offset: int | None) -> None:
        super().__init__(message)
        self.offset = offset

    def text(self) -> str:
        if self.offset is None:
            return str(self)
        return f"{self} at offset {self.offset}"


_EOF = "unexpected EOF"
_WS = b" \t\r\n"
_SIMPLE_STRING = re.compile(rb'"[^"\\\x00-\x1f\x80-\xff]*"')
_ESCAPED_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_HEX = b"0123456789abcdefABCDEF"


def _rune_at(data: bytes, i: int) -> tuple[str, int]:
    """The character at byte `i`, Go-quoted, and its length in bytes."""
    for size in (1, 2, 3, 4):
        try:
            ch = data[i : i + size].decode()
        except UnicodeDecodeError:
            continue
        return _go_quote_rune(ch), size
    return f"'\\x{data[i]:02x}'", 1


class _Scanner:
    __slots__ = ("data", "n")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)

    def _ws(self, i: int) -> int:
        data, n = self.data, self.n
        while i < n and data[i] in _WS:
            i += 1
        return i

    def _invalid(self, i: int, where: str) -> _Syntax:
        quoted, size = _rune_at(self.data, i)
        return _Syntax(f"invalid character {quoted} {where}", i + size)

    def values(self) -> Iterator[Any]:
        """Each top-level value in turn (Go's Decoder reads a stream of them)."""
        i = 0
        while True:
            i = self._ws(i)
            if i >= self.n:
                return
            value, i = self._value(i)
            yield value

    def _value(self, i: int) -> tuple[Any, int]:
        i = self._ws(i)
        if i >= self.n:
            raise _Syntax(_EOF, None)
        c = self.data[i]
        if c == 0x22:  # "
            return self._string(i)
        if c == 0x7B:  # {
            return self._object(i)
        if c == 0x5B:  # [
            return self._array(i)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self._number(i)
        if c == 0x74:
            return True, self._literal(i, b"true")
        if c == 0x66:
            return False, self._literal(i, b"false")
        if c == 0x6E:
            return None, self._literal(i, b"null")
        raise self._invalid(i, "looking for beginning of value")

    def _literal(self, i: int, lit: bytes) -> int:
        data = self.data
        for k in range(len(lit)):
            if i + k >= self.n:
                raise _Syntax(_EOF, None)
            if data[i + k] != lit[k]:
                word = lit.decode()
                expecting = _go_quote_rune(word[k])
                raise self._invalid(i + k, f"in literal {word} (expecting {expecting})")
        return i + len(lit)

    def _number(self, start: int) -> tuple[_Num, int]:
        data, n = self.data, self.n
        i = start
        if data[i] == 0x2D:
            i += 1
        if i >= n:
            raise _Syntax(_EOF, None)
        if data[i] == 0x30:
            i += 1
        elif 0x31 <= data[i] <= 0x39:
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        else:
            raise self._invalid(i, "in numeric literal")
        if i < n and data[i] == 0x2E:
            i += 1
            if i >= n:
                raise _Syntax(_EOF, None)
            if not 0x30 <= data[i] <= 0x39:
                raise self._invalid(i, "in numeric literal")
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        if i < n and data[i] in b"eE":
            i += 1
            if i < n and data[i] in b"+-":
                i += 1
            if i >= n:
                raise _Syntax(_EOF, None)
            if not 0x30 <= data[i] <= 0x39:
                raise self._invalid(i, "in numeric literal")
            while i < n and 0x30 <= data[i] <= 0x39:
                i += 1
        return _Num(data[start:i].decode()), i

    def _string(self, start: int) -> tuple[_Str, int]:
        data = self.data
        m = _SIMPLE_STRING.match(data, start)
        if m is not None:
            raw = m.group().decode()
            s = _Str(raw[1:-1])
            s.raw = raw
            return s, m.end()
        m = _ESCAPED_STRING.match(data, start)
        end = m.end() if m is not None else self._string_end(start)
        raw = data[start:end].decode(errors="replace")
        text = json.loads(raw) if "\\" in raw else raw[1:-1]
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            # Unpaired surrogates become U+FFFD, as Go's decoder does with invalid UTF-16.
            text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
        s = _Str(text)
        s.raw = raw
        return s, end

    def _string_end(self, start: int) -> int:
        """The end of a string the fast patterns refused: find its error, or accept it
        (invalid UTF-8 is allowed and replaced, as in Go's v1 decoding)."""
        data, n = self.data, self.n
        i = start + 1
        while True:
            if i >= n:
                raise _Syntax(_EOF, None)
            c = data[i]
            if c == 0x22:
                return i + 1
            if c == 0x5C:
                if i + 1 >= n:
                    raise _Syntax(_EOF, None)
                e = data[i + 1]
                if e in b'"\\/bfnrt':
                    i += 2
                    continue
                if e == 0x75:  # u
                    hexpart = data[i + 2 : i + 6]
                    if len(hexpart) < 4:
                        if all(h in _HEX for h in hexpart):
                            raise _Syntax(_EOF, None)
                        raise self._bad_escape(i, data[i:])
                    if not all(h in _HEX for h in hexpart):
                        raise self._bad_escape(i, data[i : i + 6])
                    i += 6
                    continue
                raise self._bad_escape(i, data[i : i + 2])
            if c < 0x20:
                raise self._invalid(i, "in string")
            i += 1

    @staticmethod
    def _bad_escape(i: int, what: bytes) -> _Syntax:
        text = what.decode(errors="replace")
        if any(ch == "`" or ch == "\ufffd" or ch.isspace() or not ch.isprintable() for ch in text):
            shown = go_quote(text)
        else:
            shown = "`" + text + "`"
        return _Syntax(f"invalid escape sequence {shown} in string", i + len(what))

    def _object(self, start: int) -> tuple[_Obj, int]:
        data = self.data
        obj = _Obj()
        i = self._ws(start + 1)
        if i < self.n and data[i] == 0x7D:
            obj.raw = data[start : i + 1].decode(errors="replace")
            return obj, i + 1
        while True:
            if i >= self.n:
                raise _Syntax(_EOF, None)
            if data[i] != 0x22:
                raise self._invalid(i, "looking for beginning of object key string")
            key, i = self._string(i)
            i = self._ws(i)
            if i >= self.n:
                raise _Syntax(_EOF, None)
            if data[i] != 0x3A:
                raise self._invalid(i, "after object key")
            value, i = self._value(i + 1)
            obj.append((str(key), value))
            i = self._ws(i)
            if i >= self.n:
                raise _Syntax(_EOF, None)
            if data[i] == 0x2C:
                i = self._ws(i + 1)
                continue
            if data[i] == 0x7D:
                obj.raw = data[start : i + 1].decode(errors="replace")
                return obj, i + 1
            raise self._invalid(i, "after object key:value pair")

    def _array(self, start: int) -> tuple[_Arr, int]:
        data = self.data
        arr = _Arr()
        i = self._ws(start + 1)
        if i < self.n and data[i] == 0x5D:
            arr.raw = data[start : i + 1].decode(errors="replace")
            return arr, i + 1
        while True:
            value, i = self._value(i)
            arr.append(value)
            i = self._ws(i)
            if i >= self.n:
                raise _Syntax(_EOF, None)
            if data[i] == 0x2C:
                i += 1
                continue
            if data[i] == 0x5D:
                arr.raw = data[start : i + 1].decode(errors="replace")
                return arr, i + 1
            raise self._invalid(i, "after array element")


def _raw(node: Any) -> str:
    if node is None:
        return "null"
    if node is True:
        return "true"
    if node is False:
        return "false"
    if isinstance(node, _Num):
        return str(node)
    return str(node.raw)


def _kind(node: Any) -> str:
    if isinstance(node, _Obj):
        return "object"
    if isinstance(node, _Arr):
        return "array"
    if isinstance(node, _Str):
        return "string"
    if isinstance(node, _Num):
        return "number"
    return "bool"


# -- decoding into Structs with Go's rules ----------------------------------------------------


class _Desc:
    """What Go's decoder does for one destination type."""

    __slots__ = ("elem", "enum", "go", "hi", "kind", "lo", "nullable", "plan", "values")

    def __init__(self, kind: str, go: str, **kw: Any) -> None:
        self.kind = kind  # str bool int time enum list map struct
        self.go = go  # the Go type named in errors
        self.nullable = kw.get("nullable", False)  # a Go pointer/slice/map: null resets it
        self.lo = kw.get("lo", 0)
        self.hi = kw.get("hi", 0)
        self.enum = kw.get("enum", "")
        self.values: tuple[str, ...] = kw.get("values", ())
        self.elem: _Desc | None = kw.get("elem")
        self.plan: _StructPlan | None = kw.get("plan")


class _StructPlan:
    __slots__ = ("cls", "exact", "folded", "go_name")

    def __init__(self, cls: type[_Go]) -> None:
        self.cls = cls
        self.go_name = cls.go_name or cls.__name__
        self.exact: dict[str, tuple[str, _Desc]] = {}
        self.folded: dict[str, tuple[str, _Desc]] = {}


_PLANS: dict[type, _StructPlan] = {}


def _fold(key: str) -> str:
    # Go matches JSON names case-insensitively with Unicode simple folding: the Kelvin
    # sign folds to "k" and the long s to "s"; other non-ASCII letters never meet ASCII.
    return key.lower().replace("\u017f", "s")


def _plan(cls: type[_Go]) -> _StructPlan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _StructPlan(cls)  # registered first: types may recurse
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            entry = (f.encode_name, _describe(f.type))
            plan.exact[f.encode_name] = entry
            plan.folded.setdefault(_fold(f.encode_name), entry)
    return plan


def _describe(t: mi.Type, extra: Mapping[str, Any] | None = None) -> _Desc:
    extra = dict(extra or {})
    nullable = False
    while True:
        if isinstance(t, mi.Metadata):
            extra.update(t.extra or {})
            t = t.type
        elif isinstance(t, mi.UnionType):
            others = [x for x in t.types if not isinstance(x, mi.NoneType)]
            if len(others) != 1:
                raise TypeError(f"unsupported union {t}")
            nullable = True
            t = others[0]
        else:
            break
    go = extra.get("go")
    if isinstance(t, mi.StrType):
        if extra.get("time"):
            return _Desc("time", "time.Time", nullable=nullable)
        return _Desc("str", go or "string")
    if isinstance(t, mi.BoolType):
        return _Desc("bool", "bool")
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else _I64[0]
        hi = extra.get("hi", t.le if t.le is not None else _I64[1])
        return _Desc("int", go or "int", lo=lo, hi=hi)
    if isinstance(t, mi.LiteralType):
        values = tuple(str(v) for v in t.values)
        return _Desc("enum", go or "string", enum=extra.get("enum", "exact"), values=values)
    if isinstance(t, mi.ListType):
        elem = _describe(t.item_type)
        return _Desc("list", go or "[]" + elem.go, elem=elem, nullable=nullable)
    if isinstance(t, mi.DictType):
        elem = _describe(t.value_type)
        return _Desc("map", go or "map[string]" + elem.go, elem=elem)
    if isinstance(t, mi.StructType):
        plan = _plan(t.cls)
        return _Desc("struct", go or "server." + plan.go_name, plan=plan, nullable=nullable)
    raise TypeError(f"unsupported request field type {t}")


_T = TypeVar("_T", bound=msgspec.Struct)
_KEEP = object()  # a JSON null into a Go scalar or struct value: leave it as it is


def _type_error(node: Any, desc: _Desc, top: str, path: list[str], what: str = "") -> _GoError:
    what = what or _kind(node)
    if not path:
        where = "Go value"
        return _GoError(f"json: cannot unmarshal {what} into Go value of type {desc.go}")
    where = top + "." + ".".join(path)
    if not path[-1].isdigit():
        where = "Go struct field " + where
    return _GoError(f"json: cannot unmarshal {what} into {where} of type {desc.go}")


def _zero(desc: _Desc) -> Any:
    """The Go zero value of an element set to null inside an array or map."""
    if desc.kind == "struct":
        return {}
    return {"str": "", "bool": False, "int": 0, "list": [], "map": {}}.get(desc.kind)


def _decode(node: Any, desc: _Desc, top: str, path: list[str], current: Any) -> Any:
    kind = desc.kind
    if node is None:
        if kind == "enum":
            if desc.enum == "compression":
                raise _GoError("unknown compression algorithm")
            return _decode_enum(node, desc)  # UnmarshalJSON sees "null" too
        if kind == "list":
            return None if desc.nullable else []
        if kind == "map":
            return {}
        if desc.nullable:
            return None
        return _KEEP
    if kind == "str":
        if not isinstance(node, _Str):
            raise _type_error(node, desc, top, path)
        return str(node)
    if kind == "int":
        if not isinstance(node, _Num):
            raise _type_error(node, desc, top, path)
        text = str(node)
        if "." in text or "e" in text or "E" in text or not desc.lo <= int(text) <= desc.hi:
            raise _type_error(node, desc, top, path, "number " + text)
        return int(text)
    if kind == "bool":
        if node is not True and node is not False:
            raise _type_error(node, desc, top, path)
        return node
    if kind == "struct":
        if not isinstance(node, _Obj):
            raise _type_error(node, desc, top, path)
        assert desc.plan is not None
        return _decode_struct(node, desc.plan, top, path, current)
    if kind == "list":
        if not isinstance(node, _Arr):
            raise _type_error(node, desc, top, path)
        elem = desc.elem
        assert elem is not None
        out = []
        for index, item in enumerate(node):
            value = _decode(item, elem, top, [*path, str(index)], None)
            out.append(_zero(elem) if value is _KEEP or value is None else value)
        return out
    if kind == "map":
        if not isinstance(node, _Obj):
            raise _type_error(node, desc, top, path)
        elem = desc.elem
        assert elem is not None
        out_map = dict(current) if isinstance(current, dict) else {}
        for key, item in node:
            value = _decode(item, elem, top, [*path, key], out_map.get(key))
            out_map[key] = _zero(elem) if value is _KEEP else value
        return out_map
    if kind == "time":
        if not isinstance(node, _Str):
            raise _type_error(node, desc, top, path)
        return _normalise_time(str(node))
    return _decode_enum(node, desc)


def _decode_enum(node: Any, desc: _Desc) -> str:
    raw = _raw(node)
    mode = desc.enum
    if mode == "compression":
        # StoreCompression.UnmarshalJSON: json.Unmarshal into a string first.
        if not isinstance(node, _Str):
            raise _GoError(f"json: cannot unmarshal {_kind(node)} into Go value of type string")
        if str(node) not in desc.values:
            raise _GoError("unknown compression algorithm")
        return str(node)
    if mode == "persist" and raw == '""':
        return "default"
    if mode == "deliver" and raw == '"undefined"':
        return "all"  # DeliverPolicy reads its own "undefined" rendering as DeliverAll
    probe = raw.lower() if mode == "fold" else raw
    for value in desc.values:
        if probe == '"' + value + '"':
            return value
    if mode in _ENUM_ERRORS:
        raise _GoError(_ENUM_ERRORS[mode] + raw)
    raise _GoError("can not unmarshal " + go_quote(raw))


# Consumer enums whose UnmarshalJSON reports the raw JSON with %v instead of %q.
_ENUM_ERRORS: Final = {
    "action": "unknown consumer action: ",
    "priority": "unknown priority policy: ",
}


def _decode_struct(
    node: _Obj, plan: _StructPlan, top: str, path: list[str], current: Any
) -> dict[str, Any]:
    out: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    exact, folded = plan.exact, plan.folded
    for key, item in node:
        entry = exact.get(key) or folded.get(_fold(key))
        if entry is None:
            raise _GoError("json: unknown field " + go_quote(key))
        name, desc = entry
        value = _decode(item, desc, top, [*path, name], out.get(name))
        if value is not _KEEP:
            out[name] = value
    return out


def decode_request(data: bytes, cls: type[_T]) -> _T:
    """Decode an API request body into `cls` exactly as nats-server would.

    An empty (or all-whitespace) body gives ``cls()``. Any failure raises the ApiError
    nats-server answers: 400/10025 ``invalid JSON: <Go's decoder message>``.
    """
    plan = _plan(cls)  # type: ignore[arg-type]
    top = plan.go_name
    desc = _Desc("struct", "server." + top, plan=plan)
    merged: Any = {}
    try:
        for node in _Scanner(data).values():
            value = _decode(node, desc, top, [], merged)
            if value is not _KEEP:
                merged = value
    except _Syntax as exc:
        raise ApiError.of(JSInvalidJSONErr, err=exc.text()) from None
    except _GoError as exc:
        raise ApiError.of(JSInvalidJSONErr, err=str(exc)) from None
    except RecursionError:
        raise ApiError.of(JSInvalidJSONErr, err="exceeded max depth") from None
    return msgspec.convert(merged, cls)


def is_json_object_or_array(body: bytes) -> bool:
    """nats isJSONObjectOrArray: after JSON whitespace the body starts with ``{`` or ``[``.

    Handlers with an optional body decode it only when this holds, and otherwise ignore it.
    """
    stripped = body.lstrip(_WS)
    return stripped[:1] in (b"{", b"[")


def is_empty_request(body: bytes) -> bool:
    """nats isEmptyRequest: no body, or a JSON object without members (``{}``, ``{ }``)."""
    if not body or body == b"{}":
        return True
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and not value


# =============================================================================================
# Consumers (server/consumer.go ConsumerConfig, ConsumerInfo; jetstream_api.go JSApiConsumer*)
# =============================================================================================
# Same rules as above: Go field order, Go JSON names, omitempty sets, Go zero defaults. The
# server defaults (ack_wait 30 s, max_deliver -1, ...) are applied by
# `validate.set_consumer_config_defaults`, never here.

DeliverPolicy = Annotated[
    Literal["all", "last", "new", "by_start_sequence", "by_start_time", "last_per_subject"],
    Meta(extra={"enum": "deliver"}),
]
AckPolicy = Annotated[
    Literal["none", "all", "explicit", "flow_control"], Meta(extra={"enum": "exact"})
]
ReplayPolicy = Annotated[Literal["instant", "original"], Meta(extra={"enum": "exact"})]
PriorityPolicy = Annotated[
    Literal["none", "overflow", "pinned_client", "prioritized"], Meta(extra={"enum": "priority"})
]
ConsumerAction = Annotated[Literal["", "create", "update"], Meta(extra={"enum": "action"})]

_DURATIONS_GO = Meta(extra={"go": "[]time.Duration"})


class ConsumerConfig(_Go):
    """A consumer's configuration (jetstream-api.md 8.3).

    ``backoff``, ``filter_subjects`` and ``priority_groups`` are None when absent and a list
    when sent, even empty: nats-server compares configs with ``reflect.DeepEqual``, which
    tells a nil slice from an empty one (an ``action: "create"`` resend with ``"backoff":
    []`` is "consumer already exists"). Both encode to nothing (omitempty).
    """

    go_name: ClassVar[str] = "ConsumerConfig"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"durable_name", "name", "description", "opt_start_seq", "opt_start_time", "ack_wait",
         "max_deliver", "backoff", "filter_subject", "filter_subjects", "rate_limit_bps",
         "sample_freq", "max_waiting", "max_ack_pending", "flow_control", "headers_only",
         "max_batch", "max_expires", "max_bytes", "deliver_subject", "deliver_group",
         "idle_heartbeat", "inactive_threshold", "mem_storage", "direct", "sourcing",
         "metadata", "pause_until", "priority_groups", "priority_policy", "priority_timeout"}
    )  # fmt: skip
    durable_name: str = ""
    name: str = ""
    description: str = ""
    deliver_policy: DeliverPolicy = "all"
    opt_start_seq: Uint64 = 0
    opt_start_time: Time | None = None
    ack_policy: AckPolicy = "none"
    ack_wait: Duration = 0
    max_deliver: Int = 0
    backoff: Annotated[list[Duration], _DURATIONS_GO] | None = None
    filter_subject: str = ""
    filter_subjects: list[str] | None = None
    replay_policy: ReplayPolicy = "instant"
    rate_limit_bps: Uint64 = 0
    sample_freq: str = ""
    max_waiting: Int = 0
    max_ack_pending: Int = 0
    flow_control: bool = False
    headers_only: bool = False
    max_batch: Int = 0
    max_expires: Duration = 0
    max_bytes: Int = 0
    deliver_subject: str = ""
    deliver_group: str = ""
    idle_heartbeat: Duration = 0
    inactive_threshold: Duration = 0
    num_replicas: Int = 0
    mem_storage: bool = False
    direct: bool = False
    sourcing: bool = False
    metadata: dict[str, str] = {}
    pause_until: Time | None = None
    priority_groups: list[str] | None = None
    priority_policy: PriorityPolicy = "none"
    priority_timeout: Duration = 0


class CreateConsumerRequest(_Go):
    """The body of CONSUMER.CREATE and CONSUMER.DURABLE.CREATE (jetstream-api.md 8.1).

    ``config`` is a Go value, not a pointer: ``"config": null`` or no config at all leaves
    an empty config (nats never answers 10078 "consumer config required" here).
    """

    go_name: ClassVar[str] = "CreateConsumerRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"pedantic"})
    stream_name: str = ""
    config: ConsumerConfig = msgspec.field(default_factory=ConsumerConfig)
    action: ConsumerAction = ""
    pedantic: bool = False


class SequenceInfo(_Go):
    """``delivered`` / ``ack_floor`` of a ConsumerInfo; ``last_active`` None = never."""

    go_name: ClassVar[str] = "SequenceInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset({"last_active"})
    consumer_seq: Uint64 = 0
    stream_seq: Uint64 = 0
    last_active: Time | None = None


class PriorityGroupState(_Go):
    """One priority group in a ConsumerInfo (captured: ``{"group":"g1","pinned_ts":
    "0001-01-01T00:00:00Z"}``: a time.Time value is never empty to omitempty)."""

    go_name: ClassVar[str] = "PriorityGroupState"
    omitempty: ClassVar[frozenset[str]] = frozenset({"pinned_client_id"})
    group: str = ""
    pinned_client_id: str = ""
    pinned_ts: Time = ZERO_TIME


class ConsumerInfo(_Go):
    """A consumer's config and state: the body of create/info and of each LIST item.

    create/info answers carry the config with the dynamic metadata (``_nats.ver``,
    ``_nats.level``, `validate.set_dynamic_consumer_metadata`); LIST items carry the stored
    config without it (captured). A single server sends no ``cluster`` (captured).
    ``priority_groups`` follows ``ts``, as in Go.
    """

    go_name: ClassVar[str] = "ConsumerInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"config", "cluster", "push_bound", "paused", "pause_remaining", "priority_groups"}
    )
    stream_name: str = ""
    name: str = ""
    created: Time = ZERO_TIME
    config: ConsumerConfig | None = None
    delivered: SequenceInfo = msgspec.field(default_factory=SequenceInfo)
    ack_floor: SequenceInfo = msgspec.field(default_factory=SequenceInfo)
    num_ack_pending: Int = 0
    num_redelivered: Int = 0
    num_waiting: Int = 0
    num_pending: Uint64 = 0
    cluster: ClusterInfo | None = None
    push_bound: bool = False
    paused: bool = False
    pause_remaining: Duration = 0
    ts: Time = ZERO_TIME
    priority_groups: list[PriorityGroupState] = []


class ConsumerPauseRequest(_Go):
    """CONSUMER.PAUSE body; ``{}`` or a past time resumes (Go value: zero time = unset)."""

    go_name: ClassVar[str] = "JSApiConsumerPauseRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"pause_until"})
    pause_until: Time = ZERO_TIME


JS_API_NAMES_LIMIT: Final = 1024
"""JSApiNamesLimit: page size of STREAM.NAMES and CONSUMER.NAMES."""
JS_API_LIST_LIMIT: Final = 256
"""JSApiListLimit: page size of STREAM.LIST and CONSUMER.LIST."""


class ConsumerNamesResponse(ApiResponse):
    """``consumers`` is ``[]`` when empty, also on errors (captured), unlike stream names."""

    type: str = CONSUMER_NAMES_RESPONSE
    total: Int = 0
    offset: Int = 0
    limit: Int = 0
    consumers: list[str] = []


class ConsumerListResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "missing", "offline"})
    type: str = CONSUMER_LIST_RESPONSE
    total: Int = 0
    offset: Int = 0
    limit: Int = 0
    consumers: list[ConsumerInfo] = []
    missing: list[str] = []
    offline: dict[str, str] = {}


class ConsumerDeleteResponse(ApiResponse):
    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "success"})
    type: str = CONSUMER_DELETE_RESPONSE
    success: bool = False


class ConsumerPauseResponse(ApiResponse):
    """``pause_until`` is always written (zero time when resumed, captured)."""

    omitempty: ClassVar[frozenset[str]] = frozenset({"error", "pause_remaining"})
    type: str = CONSUMER_PAUSE_RESPONSE
    paused: bool = False
    pause_until: Time = ZERO_TIME
    pause_remaining: Duration = 0


def consumer_create_response(
    info: ConsumerInfo | None, error: ApiError | None = None
) -> dict[str, Any]:
    """The CONSUMER.CREATE / DURABLE.CREATE answer (a failure has only type and error)."""
    return api_response(CONSUMER_CREATE_RESPONSE, info, error=error)


def consumer_info_response(
    info: ConsumerInfo | None, error: ApiError | None = None
) -> dict[str, Any]:
    """The CONSUMER.INFO answer (a failure has only type and error, captured)."""
    return api_response(CONSUMER_INFO_RESPONSE, info, error=error)


# -- CONSUMER.MSG.NEXT ----------------------------------------------------------------------


class NextRequest(_Go):
    """A pull request (JSApiConsumerGetNextRequest with its embedded PriorityGroup).

    Built by `decode_next_request`; ``priority_group`` says whether the body was JSON,
    as nats only checks the priority fields then. A JSON body without ``batch`` asks for
    batch 0 (nats does not turn it into 1); an empty or integer body has no expiry.
    """

    go_name: ClassVar[str] = ""  # Go names the struct "" in its errors (captured)
    omitempty: ClassVar[frozenset[str]] = frozenset(
        {"expires", "batch", "max_bytes", "no_wait", "idle_heartbeat", "group", "min_pending",
         "min_ack_pending", "id", "priority"}
    )  # fmt: skip
    expires: Duration = 0
    batch: Int = 0
    max_bytes: Int = 0
    no_wait: bool = False
    idle_heartbeat: Duration = 0
    group: str = ""
    min_pending: Int64 = 0
    min_ack_pending: Int64 = 0
    id: str = ""
    priority: Int = 0
    priority_group: ClassVar[bool] = False


class _JsonNextRequest(NextRequest):
    """What a JSON body decodes to: nats then holds a PriorityGroup to check."""

    priority_group: ClassVar[bool] = True


_EOI = "unexpected end of JSON input"
_UNICODE_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


def _go_trim_space(body: bytes) -> bytes:
    """Go's ``bytes.TrimSpace``: Unicode white space at both ends (UTF-8 aware)."""
    body = body.strip(b" \t\n\v\f\r")
    if body and (body[0] >= 0x80 or body[-1] >= 0x80):
        try:
            return body.decode().strip(_UNICODE_SPACE).encode()
        except UnicodeDecodeError:
            return body
    return body


def _go_atoi(text: str) -> int | None:
    """``strconv.Atoi`` on a 64-bit platform: the value, or None when it fails."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if _I64[0] <= value <= _I64[1] else None


def decode_next_request(body: bytes) -> NextRequest:
    """A MSG.NEXT body read as nats ``nextReqFromMsg`` reads it.

    After trimming white space: empty = batch 1; starting with ``{`` = JSON, decoded with
    ``json.Unmarshal`` (unknown fields ignored; errors without offsets: ``unexpected end of
    JSON input``, ``invalid character 'x' after top-level value``); otherwise a decimal
    integer (``strconv.Atoi``: sign allowed, negative kept) is the batch, and anything
    unparsable is batch 1. Raises ValueError with Go's message for bad JSON, which the
    consumer answers with ``400 Bad Request - <message>``.
    """
    req = _go_trim_space(body)
    if not req:
        return NextRequest(batch=1)
    if req[:1] != b"{":
        n = _go_atoi(req.decode(errors="replace"))
        return NextRequest(batch=1 if n is None else n)
    scanner = _Scanner(req)
    try:
        node, end = scanner._value(0)
        end = scanner._ws(end)
        if end < len(req):
            raise scanner._invalid(end, "after top-level value")
    except _Syntax as exc:
        raise ValueError(_EOI if str(exc) == _EOF else str(exc)) from None
    except RecursionError:
        raise ValueError("exceeded max depth") from None
    plan = _plan(_JsonNextRequest)
    out: dict[str, Any] = {}
    try:
        for key, item in node:
            entry = plan.exact.get(key) or plan.folded.get(_fold(key))
            if entry is None:
                continue  # json.Unmarshal ignores unknown fields
            name, desc = entry
            # json.Unmarshal names the field as the body spells it ("Go struct field .Batch").
            value = _decode(item, desc, "", [key], out.get(name))
            if value is not _KEEP:
                out[name] = value
    except _GoError as exc:
        raise ValueError(str(exc)) from None
    return msgspec.convert(out, _JsonNextRequest)


# -- Go's time.Duration.String ----------------------------------------------------------------


def go_duration(ns: int) -> str:
    """Go's ``time.Duration(ns).String()``: ``0s``, ``1.5µs``, ``100ms``, ``1m30s``, ``2h0m0s``.

    Error and status texts print durations this way (``consumer inactive threshold exceeds
    system limit of 10s``, ``409 Exceeded MaxRequestExpires of 1.5s``).
    """
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < _NS:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _fraction(u, size) + unit
    secs, frac = divmod(u, _NS)
    text = _fraction(secs % 60 * _NS + frac, _NS) + "s"
    minutes = secs // 60
    if minutes:
        text = f"{minutes % 60}m" + text
        hours = minutes // 60
        if hours:
            text = f"{hours}h" + text
    return sign + text


def _fraction(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{width}d}".rstrip("0")
