"""JSON shapes of the JetStream API for streams, messages and accounts, as nats-server's.

Owner: pure data and functions, imported by the storage process (jetstream/) and by tests.
No I/O, no asyncio.

Structs here mirror nats-server's Go types field for field, in Go's field order, with Go's
JSON names; a field's Go type is declared with `gotypes`, which is what makes
`jsondecode.decode_request` read a body as Go does and `jsonencode.encode` write one as
Go does. Consumer shapes are in `consumer_schema`. This module also holds the response
``type`` strings, the response envelope (`api_response`) and the PubAck bytes of the
publish path.

Durations are integer nanoseconds. Timestamps are strings (Go's ``RFC3339Nano``, see
`gofmt.timestamp`); Go's zero time, `ZERO_TIME`, means "no time".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final

import msgspec
from msgspec import Meta

from shardbroker.gofmt.timestamp import ZERO_TIME
from shardbroker.jetstream.gotypes import (
    Compression,
    Discard,
    Duration,
    GoStruct,
    Int,
    Int32,
    Int64,
    PersistMode,
    Retention,
    Storage,
    Time,
    Uint64,
)
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.jsonencode import encode, to_builtins

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
    "ApiPaged",
    "ApiResponse",
    "ApiStats",
    "ClusterInfo",
    "ConsumersRequest",
    "DirectGetRequest",
    "ExternalStream",
    "LostStreamData",
    "MsgDeleteRequest",
    "MsgDeleteResponse",
    "MsgGetRequest",
    "MsgGetResponse",
    "PeerInfo",
    "Placement",
    "PubAck",
    "RePublish",
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
    "pub_ack",
    "pub_ack_duplicate",
    "pub_ack_error",
    "pub_ack_prefix",
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


# -- stream configuration (server/stream.go StreamConfig and friends) ------------------------


class Placement(GoStruct):
    go_name: ClassVar[str] = "Placement"
    omitempty: ClassVar[frozenset[str]] = frozenset({"cluster", "tags", "preferred"})
    cluster: str = ""
    # None and [] differ, as nil and empty do in Go: {"tags": []} keeps an otherwise
    # empty placement (answered as "placement":{}), an absent one drops it.
    tags: list[str] | None = None
    preferred: str = ""


class SubjectTransformConfig(GoStruct):
    go_name: ClassVar[str] = "SubjectTransformConfig"
    src: str = ""
    dest: str = ""


class ExternalStream(GoStruct):
    go_name: ClassVar[str] = "ExternalStream"
    api: str = ""
    deliver: str = ""


class StreamConsumerSource(GoStruct):
    go_name: ClassVar[str] = "StreamConsumerSource"
    omitempty: ClassVar[frozenset[str]] = frozenset({"name", "deliver_subject"})
    name: str = ""
    deliver_subject: str = ""


class StreamSource(GoStruct):
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


class RePublish(GoStruct):
    go_name: ClassVar[str] = "RePublish"
    omitempty: ClassVar[frozenset[str]] = frozenset({"src", "headers_only"})
    src: str = ""
    dest: str = ""
    headers_only: bool = False


class StreamConsumerLimits(GoStruct):
    go_name: ClassVar[str] = "StreamConsumerLimits"
    omitempty: ClassVar[frozenset[str]] = frozenset({"inactive_threshold", "max_ack_pending"})
    inactive_threshold: Duration = 0
    max_ack_pending: Int = 0


_SOURCES_GO = Meta(extra={"go": "[]*server.StreamSource"})


class StreamConfig(GoStruct):
    """A stream's configuration (jetstream-api.md 6.2).

    Defaults are Go's zero values, i.e. what an absent JSON field decodes to; the server
    defaults (-1 limits, 2 min duplicate window, ...) are applied by
    `stream_validate.check_stream_cfg`.
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


class LostStreamData(GoStruct):
    go_name: ClassVar[str] = "LostStreamData"
    msgs: list[int] | None = None
    bytes: Uint64 = 0


class StreamState(GoStruct):
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


class PeerInfo(GoStruct):
    go_name: ClassVar[str] = "PeerInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset({"offline", "lag", "pending"})
    name: str = ""
    current: bool = False
    offline: bool = False
    active: Duration = 0
    lag: Uint64 = 0
    peer: str = ""
    pending: bool = False


class ClusterInfo(GoStruct):
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


class ApiErrorBody(GoStruct):
    """The ``error`` object (jserrors.ApiError.to_dict as a Struct, for decoding)."""

    go_name: ClassVar[str] = "ApiError"
    omitempty: ClassVar[frozenset[str]] = frozenset({"err_code", "description"})
    code: Int = 0
    err_code: int = 0
    description: str = ""


class StreamSourceInfo(GoStruct):
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


class StreamAlternate(GoStruct):
    go_name: ClassVar[str] = "StreamAlternate"
    omitempty: ClassVar[frozenset[str]] = frozenset({"domain"})
    name: str = ""
    domain: str = ""
    cluster: str = ""


class StreamInfo(GoStruct):
    """Config and state of a stream: the body of create/update/info and of each LIST item.

    STREAM.INFO and create/update answers carry the config with the dynamic metadata
    (``_nats.ver``, ``_nats.level``, see `versioning.set_dynamic_metadata`); LIST items
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


class StoredMsg(GoStruct):
    """``message`` of a STREAM.MSG.GET answer; ``hdrs``/``data`` are base64 in JSON."""

    go_name: ClassVar[str] = "StoredMsg"
    omitempty: ClassVar[frozenset[str]] = frozenset({"hdrs", "data"})
    subject: str = ""
    seq: Uint64 = 0
    hdrs: bytes = b""
    data: bytes = b""
    time: Time = ZERO_TIME


# -- account info ($JS.API.INFO) ----------------------------------------------------------------


class AccountLimits(GoStruct):
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


class ApiStats(GoStruct):
    go_name: ClassVar[str] = "JetStreamAPIStats"
    omitempty: ClassVar[frozenset[str]] = frozenset({"inflight"})
    level: Int = 0
    total: Uint64 = 0
    errors: Uint64 = 0
    inflight: Uint64 = 0


class Tier(GoStruct):
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


class StreamInfoRequest(GoStruct):
    go_name: ClassVar[str] = "JSApiStreamInfoRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"deleted_details", "subjects_filter"})
    offset: Int = 0
    deleted_details: bool = False
    subjects_filter: str = ""


class StreamNamesRequest(GoStruct):
    go_name: ClassVar[str] = "JSApiStreamNamesRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"subject"})
    offset: Int = 0
    subject: str = ""


class StreamListRequest(StreamNamesRequest):
    go_name: ClassVar[str] = "JSApiStreamListRequest"


class ConsumersRequest(GoStruct):
    go_name: ClassVar[str] = "JSApiConsumersRequest"
    offset: Int = 0


class StreamPurgeRequest(GoStruct):
    go_name: ClassVar[str] = "JSApiStreamPurgeRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"seq", "filter", "keep"})
    seq: Uint64 = 0
    filter: str = ""
    keep: Uint64 = 0


class MsgGetRequest(GoStruct):
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


class MsgDeleteRequest(GoStruct):
    go_name: ClassVar[str] = "JSApiMsgDeleteRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"no_erase"})
    seq: Uint64 = 0
    no_erase: bool = False


# -- responses -------------------------------------------------------------------------------------
# Go embeds ApiResponse (type, error), ApiPaged and *StreamInfo / *JetStreamAccountStats
# into its responses. Responses that embed a big struct are built with `api_response`,
# which flattens the parts in order; the others are Structs.


class ApiResponse(GoStruct):
    go_name: ClassVar[str] = "ApiResponse"
    omitempty: ClassVar[frozenset[str]] = frozenset({"error"})
    type: str = ""
    error: ApiErrorBody | None = None


class ApiPaged(GoStruct):
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


class PubAck(GoStruct):
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


JS_API_NAMES_LIMIT: Final = 1024
"""JSApiNamesLimit: page size of STREAM.NAMES and CONSUMER.NAMES."""
JS_API_LIST_LIMIT: Final = 256
"""JSApiListLimit: page size of STREAM.LIST and CONSUMER.LIST."""
