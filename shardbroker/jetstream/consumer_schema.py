"""JSON shapes of the consumer API (server/consumer.go ConsumerConfig, ConsumerInfo;
jetstream_api.go JSApiConsumer*), as nats-server writes and reads them.

Owner: pure data, imported by the storage process (jetstream/) and by tests.

Same rules as `schema`: Go field order, Go JSON names, omitempty sets, Go zero defaults.
The server defaults (ack_wait 30 s, max_deliver -1, ...) are applied by
`consumer_validate.set_consumer_config_defaults`, never here.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from shardbroker.gofmt.timestamp import ZERO_TIME
from shardbroker.jetstream.gotypes import (
    AckPolicy,
    ConsumerAction,
    DeliverPolicy,
    Duration,
    GoStruct,
    Int,
    Int64,
    PriorityPolicy,
    ReplayPolicy,
    Time,
    Uint64,
)
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.schema import (
    CONSUMER_CREATE_RESPONSE,
    CONSUMER_DELETE_RESPONSE,
    CONSUMER_INFO_RESPONSE,
    CONSUMER_LIST_RESPONSE,
    CONSUMER_NAMES_RESPONSE,
    CONSUMER_PAUSE_RESPONSE,
    ApiResponse,
    ClusterInfo,
    api_response,
)

__all__ = [
    "ConsumerConfig",
    "ConsumerDeleteResponse",
    "ConsumerInfo",
    "ConsumerListResponse",
    "ConsumerNamesResponse",
    "ConsumerPauseRequest",
    "ConsumerPauseResponse",
    "CreateConsumerRequest",
    "NextRequest",
    "PriorityGroupState",
    "SequenceInfo",
    "consumer_create_response",
    "consumer_info_response",
]


_DURATIONS_GO = Meta(extra={"go": "[]time.Duration"})


class ConsumerConfig(GoStruct):
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


class CreateConsumerRequest(GoStruct):
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


class SequenceInfo(GoStruct):
    """``delivered`` / ``ack_floor`` of a ConsumerInfo; ``last_active`` None = never."""

    go_name: ClassVar[str] = "SequenceInfo"
    omitempty: ClassVar[frozenset[str]] = frozenset({"last_active"})
    consumer_seq: Uint64 = 0
    stream_seq: Uint64 = 0
    last_active: Time | None = None


class PriorityGroupState(GoStruct):
    """One priority group in a ConsumerInfo (captured: ``{"group":"g1","pinned_ts":
    "0001-01-01T00:00:00Z"}``: a time.Time value is never empty to omitempty)."""

    go_name: ClassVar[str] = "PriorityGroupState"
    omitempty: ClassVar[frozenset[str]] = frozenset({"pinned_client_id"})
    group: str = ""
    pinned_client_id: str = ""
    pinned_ts: Time = ZERO_TIME


class ConsumerInfo(GoStruct):
    """A consumer's config and state: the body of create/info and of each LIST item.

    create/info answers carry the config with the dynamic metadata (``_nats.ver``,
    ``_nats.level``, `versioning.set_dynamic_metadata`); LIST items carry the stored
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


class ConsumerPauseRequest(GoStruct):
    """CONSUMER.PAUSE body; ``{}`` or a past time resumes (Go value: zero time = unset)."""

    go_name: ClassVar[str] = "JSApiConsumerPauseRequest"
    omitempty: ClassVar[frozenset[str]] = frozenset({"pause_until"})
    pause_until: Time = ZERO_TIME


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


class NextRequest(GoStruct):
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
