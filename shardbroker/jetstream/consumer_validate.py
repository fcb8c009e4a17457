"""Consumer configuration rules: create subjects, server defaults, validation,
create-vs-existing, and the immediate answers to CONSUMER.MSG.NEXT.

Owner: pure functions, imported by the storage process's API layer and by tests. No I/O.
The consumer half of the config checks (`stream_validate` is the stream half, `checks`
what both use, `versioning` the API-level metadata of both).

In nats-server's order: jsConsumerCreateRequest (server/jetstream_api.go) checks the
subject against the body (`check_consumer_request`); the caller looks the stream up
(10059); addConsumerWithAssignment (server/consumer.go) applies
setConsumerConfigDefaults and checkConsumerCfg, then the existing-consumer, limit and
workqueue rules (`add_consumer_config`). `check_consumer_create` runs all of it.

Not modelled: clustering, sourcing/direct consumers created by streams (the API's
interest-stream upgrade and stream identity header), replacement of a bound push durable
(10105/10106: unreachable through the API on one server), the 423 pin-id mismatch of a
pull request (consumer state).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from shardbroker.gofmt.duration import go_duration
from shardbroker.gofmt.strconv import GoNumError, go_atoi
from shardbroker.gofmt.timestamp import format_rfc3339, parse_rfc3339
from shardbroker.jetstream import jserrors as e
from shardbroker.jetstream.checks import (
    MAX_DESCRIPTION_LEN,
    MAX_METADATA_LEN,
    MAX_NAME_LEN,
    MS,
    SECOND,
    byte_len,
    invalid,
    is_subset_match,
    is_valid_asset_name,
    pedantic_error,
    subjects_collide,
    valid_subject,
)
from shardbroker.jetstream.consumer_schema import (
    ConsumerConfig,
    CreateConsumerRequest,
    NextRequest,
)
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.jsondecode import decode_next_request
from shardbroker.jetstream.schema import StreamConfig
from shardbroker.jetstream.versioning import copy_metadata, set_static_metadata

ACK_WAIT_DEFAULT = 30 * SECOND  # JsAckWaitDefault
DELETE_WAIT_TIME_DEFAULT = 5 * SECOND  # JsDeleteWaitTimeDefault: ephemeral inactive threshold
MAX_ACK_PENDING_DEFAULT = 1000  # JsDefaultMaxAckPending
WAIT_QUEUE_DEFAULT_MAX = 512  # JSWaitQueueDefaultMax: pull max_waiting
PINNED_TTL_DEFAULT = 120 * SECOND  # JsDefaultPinnedTTL
SOURCE_HEALTH_HB = SECOND  # sourceHealthHB: heartbeat of flow-control-acked consumers
CONSUMER_NAME_LEN = 8  # createConsumerName: 8 base62 characters

_VALID_GROUP_NAME = re.compile(r"[a-zA-Z0-9/_=-]{1,16}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CONSUMER_NAME_CHARS = "consumer name can not contain '.', '*', '>', '\\', '/'"


def create_consumer_name() -> str:
    """A generated consumer name: nats hashes a fresh NUID with SHA-256 and maps the first
    8 bytes onto base62 (``digits[b % 62]``), e.g. ``9AT70OBt``."""
    digest = hashlib.sha256(secrets.token_bytes(22)).digest()
    return "".join(_BASE62[b % 62] for b in digest[:CONSUMER_NAME_LEN])


# -- API subjects ---------------------------------------------------------------------------

ConsumerForm = Literal["ephemeral", "named", "durable"]


class ConsumerCreateSubject(NamedTuple):
    """What a create subject says: the form (jetstream-api.md 8.2), stream, consumer, filter.

    ``consumer`` is empty for the legacy ephemeral form (the body's ``config.name`` is used).
    ``tokens`` is the subject's token count: a DURABLE.CREATE subject needs 7 (10016).
    """

    form: ConsumerForm
    stream: str
    consumer: str
    filter: str
    tokens: int


def parse_consumer_create_subject(subject: str) -> ConsumerCreateSubject | None:
    """Read ``$JS.API.CONSUMER.CREATE.<S>[.<C>[.<F...>]]`` or
    ``$JS.API.CONSUMER.DURABLE.CREATE.<S>.<C>``; None when nats ignores it (< 5 tokens)."""
    tokens = subject.split(".")
    n = len(tokens)
    if n < 5:
        return None
    if n == 5:
        return ConsumerCreateSubject("ephemeral", tokens[4], "", "", n)
    if tokens[3] == "DURABLE":
        return ConsumerCreateSubject("durable", tokens[5], tokens[6] if n > 6 else "", "", n)
    return ConsumerCreateSubject("named", tokens[4], tokens[5], ".".join(tokens[6:]), n)


def parse_consumer_subject(subject: str) -> tuple[str, str]:
    """(stream, consumer) of ``$JS.API.CONSUMER.<OP>.<S>.<C>`` (INFO, DELETE, PAUSE,
    MSG.NEXT take tokens 5 and 6 as nats's streamNameFromSubject/consumerNameFromSubject;
    MSG.NEXT has one more token: pass the subject without ``MSG.``)."""
    tokens = subject.split(".")
    stream = tokens[4] if len(tokens) > 4 else ""
    consumer = tokens[5] if len(tokens) > 5 else ""
    return stream, consumer


def check_consumer_request(
    subject: ConsumerCreateSubject, req: CreateConsumerRequest
) -> ConsumerConfig:
    """jsConsumerCreateRequest's checks of the subject against the body, in nats order.

    Returns the request's config with ``name`` forced to the subject's consumer name (the
    named and durable forms). Raises 10016, 10056, 10127, 10018, 10017, 10020, 10137, 10131
    and 10074 (replicas > 1 on a single server). The stream lookup (10059) comes next and
    is the caller's.
    """
    cfg = req.config
    if subject.form == "durable" and subject.tokens != 7:
        raise ApiError.of(e.JSConsumerDurableNameNotInSubjectErr)
    consumer = cfg.name if subject.form == "ephemeral" else subject.consumer
    if subject.stream != req.stream_name:
        raise ApiError.of(e.JSStreamMismatchErr)
    if "/" in consumer or "\\" in consumer:
        raise ApiError.of(e.JSConsumerNameContainsPathSeparatorsErr)
    if subject.form == "durable":
        if not cfg.durable_name:
            raise ApiError.of(e.JSConsumerDurableNameNotSetErr)
        if consumer != cfg.durable_name:
            raise ApiError.of(e.JSConsumerDurableNameNotMatchSubjectErr)
        cfg = msgspec.structs.replace(cfg, name=consumer)
    elif subject.form == "named":
        if cfg.durable_name and consumer != cfg.durable_name:
            raise ApiError.of(e.JSConsumerDurableNameNotMatchSubjectErr)
        cfg = msgspec.structs.replace(cfg, name=consumer)
    elif cfg.durable_name:
        raise ApiError.of(e.JSConsumerEphemeralWithDurableNameErr)
    if subject.filter:
        if cfg.filter_subjects:
            raise ApiError.of(e.JSConsumerMultipleFiltersNotAllowed)
        if cfg.filter_subject != subject.filter:
            raise ApiError.of(e.JSConsumerCreateFilterSubjectMismatchErr)
    if cfg.num_replicas > 1:
        raise ApiError.of(e.JSStreamReplicasNotSupportedErr)
    return cfg


# -- defaults (setConsumerConfigDefaults) -----------------------------------------------------


class ConsumerLimits(NamedTuple):
    """Server (``jetstream { limits {} }``) and account limits a consumer is held to; 0 = none."""

    max_request_batch: int = 0
    max_ack_pending: int = 0
    account_max_ack_pending: int = 0
    account_max_consumers: int = 0


_NO_LIMITS = ConsumerLimits()


def set_consumer_config_defaults(
    cfg: ConsumerConfig,
    stream: StreamConfig,
    limits: ConsumerLimits = _NO_LIMITS,
    *,
    pedantic: bool = False,
) -> ConsumerConfig:
    """nats setConsumerConfigDefaults: the config with server defaults, or 10157 (pedantic).

    The ephemeral inactive threshold (5 s) is not set here but once the consumer is made
    (`add_consumer_config`), as in nats: an existing ephemeral compared for ``action:
    "create"`` without it differs from its stored config.
    """
    changes: dict[str, Any] = {}
    max_deliver = cfg.max_deliver
    if max_deliver == 0 or max_deliver < -1:
        if pedantic and max_deliver < -1:
            raise pedantic_error("max_deliver must be set to -1")
        max_deliver = -1
    values = {
        "max_waiting": cfg.max_waiting,
        "max_ack_pending": cfg.max_ack_pending,
        "max_batch": cfg.max_batch,
        "max_expires": cfg.max_expires,
        "max_bytes": cfg.max_bytes,
        "idle_heartbeat": cfg.idle_heartbeat,
        "inactive_threshold": cfg.inactive_threshold,
        "priority_timeout": cfg.priority_timeout,
    }
    if values["max_waiting"] < 0:
        if pedantic:
            raise pedantic_error("max_waiting must not be negative")
        values["max_waiting"] = 0
    if values["max_ack_pending"] < -1:
        if pedantic:
            raise pedantic_error("max_ack_pending must be set to -1")
        values["max_ack_pending"] = -1
    for field in (
        "max_batch",
        "max_expires",
        "max_bytes",
        "idle_heartbeat",
        "inactive_threshold",
        "priority_timeout",
    ):
        if values[field] < 0:
            if pedantic:
                raise pedantic_error(f"{field} must not be negative")
            values[field] = 0
    pull = not cfg.deliver_subject
    if pull and values["max_waiting"] == 0:
        values["max_waiting"] = WAIT_QUEUE_DEFAULT_MAX
    ack_wait = cfg.ack_wait
    if ack_wait == 0 and cfg.ack_policy in ("explicit", "all"):
        ack_wait = ACK_WAIT_DEFAULT
    if cfg.backoff:
        if pedantic and ack_wait != cfg.backoff[0]:
            raise pedantic_error("first backoff value has to equal batch AckWait")
        ack_wait = cfg.backoff[0]
    stream_limits = stream.consumer_limits
    if values["max_ack_pending"] == 0:
        if pedantic and stream_limits.max_ack_pending > 0:
            raise pedantic_error("max_ack_pending must be set if it's configured in stream limits")
        values["max_ack_pending"] = stream_limits.max_ack_pending
    if values["inactive_threshold"] == 0:
        if pedantic and stream_limits.inactive_threshold > 0:
            raise pedantic_error(
                "inactive_threshold must be set if it's configured in stream limits"
            )
        values["inactive_threshold"] = stream_limits.inactive_threshold
    if values["max_ack_pending"] == 0 and cfg.ack_policy != "none":
        pending = MAX_ACK_PENDING_DEFAULT
        for limit in (limits.max_ack_pending, limits.account_max_ack_pending):
            if 0 < limit < pending:
                pending = limit
        values["max_ack_pending"] = pending
    if pull and values["max_batch"] == 0 and limits.max_request_batch > 0:
        if pedantic:
            raise pedantic_error("max_request_batch must be set if it's JetStream limits are set")
        values["max_batch"] = limits.max_request_batch
    if cfg.priority_policy == "pinned_client" and values["priority_timeout"] == 0:
        values["priority_timeout"] = PINNED_TTL_DEFAULT
    if cfg.ack_policy == "flow_control" and not pedantic:
        changes["flow_control"] = True
        values["idle_heartbeat"] = SOURCE_HEALTH_HB
    changes.update(values, max_deliver=max_deliver, ack_wait=ack_wait)
    return msgspec.structs.replace(cfg, **changes)


# -- validation (checkConsumerCfg) --------------------------------------------------------------


def _subject_is_literal(subject: str) -> bool:
    return not any(t in ("*", ">") for t in subject.split("."))


def _filters(cfg: ConsumerConfig) -> list[str]:
    """nats gatherSubjectFilters: filter_subjects plus filter_subject when set."""
    filters = list(cfg.filter_subjects or [])
    if cfg.filter_subject:
        filters.append(cfg.filter_subject)
    return filters


def _atoi_error(text: str) -> str | None:
    """The error ``strconv.Atoi(text)`` returns (None when it parses)."""
    try:
        go_atoi(text)
    except GoNumError as exc:
        return str(exc)
    return None


def _bad_start(policy: str, start: str) -> ApiError:
    return ApiError.of(
        e.JSConsumerInvalidPolicyErrF,
        err=f"consumer delivery policy is deliver {policy}, but optional start {start} is also set",
    )


def _not_set(policy: str, what: str) -> ApiError:
    return ApiError.of(
        e.JSConsumerInvalidPolicyErrF,
        err=f"consumer delivery policy is deliver {policy}, but optional {what} is not set",
    )


def _check_deliver_policy(cfg: ConsumerConfig) -> None:
    policy = cfg.deliver_policy
    has_seq = cfg.opt_start_seq > 0
    has_time = cfg.opt_start_time is not None
    if policy in ("all", "last", "new", "last_per_subject"):
        shown = "last per subject" if policy == "last_per_subject" else policy
        if has_seq:
            raise _bad_start(shown, "sequence")
        if has_time:
            raise _bad_start(shown, "time")
        if policy == "last_per_subject" and not cfg.filter_subject and not cfg.filter_subjects:
            raise _not_set(shown, "filter subject")
    elif policy == "by_start_sequence":
        if not has_seq:
            raise _not_set("by start sequence", "start sequence")
        if has_time:
            raise _bad_start("by start sequence", "time")
    elif policy == "by_start_time":
        if not has_time:
            raise _not_set("by start time", "start time")
        if cfg.opt_start_seq != 0:
            raise _bad_start("by start time", "start sequence")  # sic: "start start sequence"


def check_consumer_cfg(
    cfg: ConsumerConfig, stream: StreamConfig, limits: ConsumerLimits = _NO_LIMITS
) -> None:
    """nats checkConsumerCfg on a config with defaults applied: the first failure, in order.

    Note the nats quirks kept here: bad names and filter subjects are 10052 (stream config
    code, status 500); a filter need not match the stream's subjects.
    """
    if cfg.name and not is_valid_asset_name(cfg.name):
        raise invalid(_CONSUMER_NAME_CHARS)
    if cfg.durable_name and not is_valid_asset_name(cfg.durable_name):
        raise invalid("consumer durable name can not contain '.', '*', '>', '\\', '/'")
    stream_replicas = stream.num_replicas
    if cfg.num_replicas > 0 and cfg.num_replicas > stream_replicas:
        raise ApiError.of(e.JSConsumerReplicasExceedsStream)
    if cfg.num_replicas < 0:
        raise ApiError.of(e.JSReplicasCountCannotBeNegative)
    if (
        stream.retention in ("interest", "workqueue")
        and cfg.num_replicas != 0
        and cfg.num_replicas != stream_replicas
    ):
        raise ApiError.of(e.JSConsumerReplicasShouldMatchStream)
    backoff = cfg.backoff or []
    if any(b < 0 for b in backoff):
        raise ApiError.of(e.JSConsumerBackOffNegativeErr)
    if cfg.ack_wait < 0:
        raise ApiError.of(e.JSConsumerAckWaitNegativeErr)
    push = bool(cfg.deliver_subject)
    if cfg.ack_policy == "flow_control":
        if not push:
            raise ApiError.of(e.JSConsumerAckFCRequiresPushErr)
        if not cfg.flow_control:
            raise ApiError.of(e.JSConsumerAckFCRequiresFCErr)
        if cfg.idle_heartbeat != SOURCE_HEALTH_HB:
            raise invalid("flow control ack policy heartbeat needs to be 1s")
        if cfg.max_ack_pending <= 0:
            raise ApiError.of(e.JSConsumerAckFCRequiresMaxAckPendingErr)
        if cfg.ack_wait != 0 or backoff:
            raise ApiError.of(e.JSConsumerAckFCRequiresNoAckWaitErr)
        if cfg.max_deliver > 0:
            raise ApiError.of(e.JSConsumerAckFCRequiresNoMaxDeliverErr)
    if backoff and cfg.max_deliver != -1 and len(backoff) > cfg.max_deliver:
        raise ApiError.of(e.JSConsumerMaxDeliverBackoffErr)
    if byte_len(cfg.description) > MAX_DESCRIPTION_LEN:
        raise ApiError.of(e.JSConsumerDescriptionTooLongErrF, max=MAX_DESCRIPTION_LEN)
    if push:
        deliver = cfg.deliver_subject
        if not _subject_is_literal(deliver):
            raise ApiError.of(e.JSConsumerDeliverToWildcardsErr)
        if not valid_subject(deliver):
            raise ApiError.of(e.JSConsumerInvalidDeliverSubject)
        if any(is_subset_match(deliver, subj) for subj in stream.subjects):
            raise ApiError.of(e.JSConsumerDeliverCycleErr)
        if cfg.max_waiting != 0:
            raise ApiError.of(e.JSConsumerPushMaxWaitingErr)
        if cfg.max_ack_pending > 0 and cfg.ack_policy == "none":
            raise ApiError.of(e.JSConsumerMaxPendingAckPolicyRequiredErr)
        if 0 < cfg.idle_heartbeat < 100 * MS:
            raise ApiError.of(e.JSConsumerSmallHeartbeatErr)
    else:
        if cfg.ack_policy == "none" and stream.retention == "workqueue":
            raise ApiError.of(e.JSConsumerPullRequiresAckErr)
        if cfg.rate_limit_bps > 0:
            raise ApiError.of(e.JSConsumerPullWithRateLimitErr)
        if cfg.max_waiting < 0:
            raise ApiError.of(e.JSConsumerMaxWaitingNegativeErr)
        if cfg.idle_heartbeat > 0:
            raise ApiError.of(e.JSConsumerHBRequiresPushErr)
        if cfg.flow_control:
            raise ApiError.of(e.JSConsumerFCRequiresPushErr)
        if cfg.max_batch < 0:
            raise ApiError.of(e.JSConsumerMaxRequestBatchNegativeErr)
        if cfg.max_expires != 0 and cfg.max_expires < MS:
            raise ApiError.of(e.JSConsumerMaxRequestExpiresTooSmall)
        if 0 < limits.max_request_batch < cfg.max_batch:
            raise ApiError.of(e.JSConsumerMaxRequestBatchExceededF, limit=limits.max_request_batch)
    for limit in (
        limits.max_ack_pending,
        limits.account_max_ack_pending,
        stream.consumer_limits.max_ack_pending,
    ):
        if 0 < limit < cfg.max_ack_pending:
            raise ApiError.of(e.JSConsumerMaxPendingAckExcessErrF, limit=limit)
    threshold_limit = stream.consumer_limits.inactive_threshold
    if 0 < threshold_limit < cfg.inactive_threshold:
        raise ApiError.of(e.JSConsumerInactiveThresholdExcess, limit=go_duration(threshold_limit))
    if cfg.direct:
        if not push:
            raise ApiError.of(e.JSConsumerDirectRequiresPushErr)
        if cfg.durable_name:
            raise ApiError.of(e.JSConsumerDirectRequiresEphemeralErr)
    if cfg.filter_subject and cfg.filter_subjects:
        raise ApiError.of(e.JSConsumerDuplicateFilterSubjects)
    if cfg.filter_subject and not valid_subject(cfg.filter_subject):
        raise invalid("invalid subject")
    if any(not f for f in cfg.filter_subjects or []):
        raise ApiError.of(e.JSConsumerEmptyFilter)
    filters = _filters(cfg)
    for i, subj in enumerate(filters):
        if not valid_subject(subj):
            raise invalid("invalid subject")
        for j, other in enumerate(filters):
            if i != j and is_subset_match(subj, other):
                raise ApiError.of(e.JSConsumerOverlappingSubjectFilters)
    _check_deliver_policy(cfg)
    if cfg.sample_freq:
        text = cfg.sample_freq.removesuffix("%")
        err = _atoi_error(text)
        if err is not None or int(text) < 0:
            raise ApiError.of(e.JSConsumerInvalidSamplingErrF, err=err or "<nil>")
    if cfg.flow_control and cfg.idle_heartbeat == 0:
        raise ApiError.of(e.JSConsumerWithFlowControlNeedsHeartbeats)
    if cfg.durable_name and cfg.name and cfg.name != cfg.durable_name:
        raise ApiError.of(e.JSConsumerCreateDurableAndNameMismatch)
    if sum(byte_len(k) + byte_len(v) for k, v in cfg.metadata.items()) > MAX_METADATA_LEN:
        raise ApiError.of(e.JSConsumerMetadataLengthErrF, limit=f"{MAX_METADATA_LEN // 1024}KB")
    groups = cfg.priority_groups or []
    if cfg.priority_policy != "none":
        if push:
            raise ApiError.of(e.JSConsumerPushWithPriorityGroupErr)
        if not groups:
            raise ApiError.of(e.JSConsumerPriorityPolicyWithoutGroup)
        for group in groups:
            if not group:
                raise ApiError.of(e.JSConsumerEmptyGroupName)
            if _VALID_GROUP_NAME.fullmatch(group) is None:
                raise ApiError.of(e.JSConsumerInvalidGroupNameErr)
    else:
        if groups:
            raise ApiError.of(e.JSConsumerPriorityGroupWithPolicyNone)
        if cfg.priority_timeout > 0:
            raise ApiError.of(e.JSConsumerPinnedTTLWithoutPriorityPolicyNone)
    if stream.placement is not None and stream.placement.preferred:
        raise invalid("preferred server not permitted in placement")


# -- updates (checkNewConsumerConfig) -------------------------------------------------------


def _same_time(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return parse_rfc3339(a) == parse_rfc3339(b)


def check_consumer_update(
    old: ConsumerConfig,
    new: ConsumerConfig,
    *,
    has_interest: Callable[[str], bool] | None = None,
) -> None:
    """nats checkNewConsumerConfig: may the stored `old` become `new` (both normalised)?

    Failures are 10012 (status 500) with the reason text, 10013 when a push consumer's
    deliver subject changes while the old one still has interest (`has_interest`), 10116
    for backoff against max_deliver.
    """
    if old == new:
        return
    reason = ""
    if old.deliver_policy != new.deliver_policy:
        reason = "deliver policy can not be updated"
    elif old.mem_storage != new.mem_storage:
        reason = "storage type can not be updated"
    elif old.direct != new.direct:
        reason = "direct can not be updated"
    elif old.sourcing != new.sourcing:
        reason = "sourcing can not be updated"
    elif old.opt_start_seq != new.opt_start_seq:
        reason = "start sequence can not be updated"
    elif not _same_time(old.opt_start_time, new.opt_start_time):
        reason = "start time can not be updated"
    elif old.ack_policy != new.ack_policy:
        reason = "ack policy can not be updated"
    elif old.replay_policy != new.replay_policy:
        reason = "replay policy can not be updated"
    elif old.idle_heartbeat != new.idle_heartbeat:
        reason = "heart beats can not be updated"
    elif old.flow_control != new.flow_control:
        reason = "flow control can not be updated"
    elif old.deliver_subject != new.deliver_subject:
        if not old.deliver_subject:
            reason = "can not update pull consumer to push based"
        elif not new.deliver_subject:
            reason = "can not update push consumer to pull based"
        elif has_interest is not None and has_interest(old.deliver_subject):
            raise ApiError.of(e.JSConsumerNameExistErr)
    if not reason and old.max_waiting != new.max_waiting:
        reason = "max waiting can not be updated"
    if reason:
        raise ApiError.of(e.JSConsumerCreateErrF, err=reason)
    backoff = new.backoff or []
    if backoff and new.max_deliver != -1 and len(backoff) > new.max_deliver:
        raise ApiError.of(e.JSConsumerMaxDeliverBackoffErr)


def _updated_config(old: ConsumerConfig, new: ConsumerConfig) -> ConsumerConfig:
    """What nats updateConfig stores: pause_until in UTC, an ephemeral's threshold stamped."""
    changes: dict[str, Any] = {}
    if new.pause_until is not None:
        changes["pause_until"] = format_rfc3339(parse_rfc3339(new.pause_until))
    # updateInactiveThreshold runs only on a change, and asks the *old* config for durability.
    if (
        new.inactive_threshold != old.inactive_threshold
        and not old.durable_name
        and new.inactive_threshold <= 0
    ):
        changes["inactive_threshold"] = DELETE_WAIT_TIME_DEFAULT
    return msgspec.structs.replace(new, **changes) if changes else new


# -- the create path ------------------------------------------------------------------------


def _partition_unique(
    name: str, filters: list[str], existing: Mapping[str, ConsumerConfig]
) -> bool:
    """nats partitionUnique: no other public consumer's filter collides with `filters`."""
    for subj in filters:
        for other_name, other in existing.items():
            if other_name == name or other.direct or other.sourcing:
                continue
            others = _filters(other)
            if not others or any(subjects_collide(subj, o) for o in others):
                return False
    return True


def _limitable(existing: Mapping[str, ConsumerConfig]) -> int:
    """nats numLimitableConsumers: consumers that count against limits (not sourcing)."""
    return sum(1 for c in existing.values() if not c.sourcing)


def add_consumer_config(
    cfg: ConsumerConfig,
    stream: StreamConfig,
    existing: Mapping[str, ConsumerConfig],
    *,
    action: str = "",
    pedantic: bool = False,
    limits: ConsumerLimits = _NO_LIMITS,
    has_interest: Callable[[str], bool] | None = None,
) -> tuple[str, ConsumerConfig]:
    """nats addConsumerWithAssignment's checks: (consumer name, config to store), or ApiError.

    `cfg` comes from `check_consumer_request` with the static metadata set (and, for an
    existing consumer, ``pause_until`` already replaced by the stored one: see
    `check_consumer_create`). `existing` is the stream's consumers by name (stored
    configs). The name is the durable name, else ``config.name``, else a generated one
    (which nats keeps out of the stored config); the request updates an existing
    consumer when that name is in `existing`.
    """
    cfg = set_consumer_config_defaults(cfg, stream, limits, pedantic=pedantic)
    check_consumer_cfg(cfg, stream, limits)
    name = cfg.durable_name or cfg.name
    workqueue = stream.retention == "workqueue"
    stored = existing.get(name) if name else None
    if stored is not None:
        if action == "create" and copy_metadata(cfg, stored) != stored:
            raise ApiError.of(e.JSConsumerAlreadyExists)
        if workqueue and not _partition_unique(name, _filters(cfg), existing):
            raise ApiError.of(e.JSConsumerWQConsumerNotUniqueErr)
        check_consumer_update(stored, cfg, has_interest=has_interest)
        return name, _updated_config(stored, cfg)
    if action == "update":
        raise ApiError.of(e.JSConsumerDoesNotExist)
    max_consumers = stream.max_consumers
    account_max = limits.account_max_consumers
    if max_consumers <= 0 or 0 < account_max < max_consumers:
        max_consumers = account_max
    if max_consumers > 0 and _limitable(existing) >= max_consumers:
        raise ApiError.of(e.JSMaximumConsumersLimitErr)
    if workqueue and not cfg.direct and not cfg.sourcing:
        if cfg.ack_policy not in ("explicit", "flow_control"):
            raise ApiError.of(e.JSConsumerWQRequiresExplicitAckErr)
        if cfg.deliver_policy != "all":
            raise ApiError.of(e.JSConsumerWQConsumerNotDeliverAllErr)
        if _limitable(existing) > 0:
            filters = _filters(cfg)
            if not filters:
                raise ApiError.of(e.JSConsumerWQMultipleUnfilteredErr)
            if not _partition_unique(name, filters, existing):
                raise ApiError.of(e.JSConsumerWQConsumerNotUniqueErr)
    if cfg.durable_name:
        if byte_len(cfg.durable_name) > MAX_NAME_LEN:
            raise ApiError.of(e.JSConsumerNameTooLongErrF, max=MAX_NAME_LEN)
    elif not cfg.name:
        # The generated name is the consumer's, not written into its config (verified:
        # the answer's "config" of a nameless legacy ephemeral has no "name").
        name = create_consumer_name()
        while name in existing:
            name = create_consumer_name()
    if not is_valid_asset_name(name):
        raise ApiError.of(e.JSConsumerBadDurableNameErr)
    if stream.storage == "file" and not cfg.mem_storage and not cfg.direct and byte_len(name) > 255:
        # The file store keeps a consumer in obs/<name>/: a longer name is ENAMETOOLONG,
        # reported by nats as this (verified).
        raise ApiError.of(e.JSConsumerCreateErrF, err="error creating store for consumer")
    if not cfg.durable_name and cfg.inactive_threshold <= 0:
        cfg = msgspec.structs.replace(cfg, inactive_threshold=DELETE_WAIT_TIME_DEFAULT)
    return name, cfg


def check_consumer_create(
    subject: str | ConsumerCreateSubject,
    req: CreateConsumerRequest,
    stream: StreamConfig | None,
    existing: Mapping[str, ConsumerConfig],
    *,
    limits: ConsumerLimits = _NO_LIMITS,
    has_interest: Callable[[str], bool] | None = None,
) -> tuple[str, ConsumerConfig]:
    """The whole CONSUMER.CREATE / DURABLE.CREATE check after decoding, in nats order.

    `subject` is the API subject (``$JS.API...``, domain already mapped) or its parsed
    form; `stream` is the stream's stored config, None if it does not exist (10059).
    Returns (consumer name, config to store) as `add_consumer_config`; the request is an
    update of an existing consumer when that name is in `existing`. Raises ApiError as
    nats answers.
    """
    parsed = parse_consumer_create_subject(subject) if isinstance(subject, str) else subject
    if parsed is None:
        raise ValueError(f"not a consumer create subject: {subject!r}")
    cfg = check_consumer_request(parsed, req)
    if stream is None:
        raise ApiError.of(e.JSStreamNotFoundErr)
    stored = existing.get(parsed.consumer or cfg.name) if (parsed.consumer or cfg.name) else None
    if stored is not None:
        # An existing consumer's pause is changed through CONSUMER.PAUSE only.
        cfg = msgspec.structs.replace(cfg, pause_until=stored.pause_until)
    cfg = set_static_metadata(cfg)
    return add_consumer_config(
        cfg,
        stream,
        existing,
        action=req.action,
        pedantic=req.pedantic,
        limits=limits,
        has_interest=has_interest,
    )


# -- CONSUMER.MSG.NEXT ----------------------------------------------------------------------


class NextRequestError(Exception):
    """A pull request refused at once with a status message (jetstream-semantics.md 10.2)."""

    __slots__ = ("code", "description")

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description

    def status(self) -> bytes:
        """The header block nats sends: ``NATS/1.0 <code> <description>\\r\\n\\r\\n``."""
        return f"NATS/1.0 {self.code} {self.description}\r\n\r\n".encode()


def _wrap64(value: int) -> int:
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def check_next_request(body: bytes, cfg: ConsumerConfig) -> NextRequest:
    """processNextMsgRequest's stateless checks, in nats order: the request, or the status.

    Raises NextRequestError for: a push consumer (409 Consumer is push based), bad JSON
    (400 Bad Request - <Go message>), ``idle_heartbeat * 2 > expires`` (400 ... heartbeat
    value too large), batch/expires/max_bytes above the consumer's limits (409 Exceeded
    ...), priority fields the consumer's policy does not allow (400 ...). The checks that
    need consumer state (404 No Messages, 408 Requests Pending, 409 Exceeded MaxWaiting,
    423 pin id) and the 412 API level header are the caller's.
    """
    if cfg.deliver_subject:
        raise NextRequestError(409, "Consumer is push based")
    try:
        req = decode_next_request(body)
    except ValueError as exc:
        raise NextRequestError(400, f"Bad Request - {exc}") from None
    if req.idle_heartbeat > 0 and _wrap64(req.idle_heartbeat * 2) > req.expires:
        raise NextRequestError(400, "Bad Request - heartbeat value too large")
    if 0 < cfg.max_batch < req.batch:
        raise NextRequestError(409, f"Exceeded MaxRequestBatch of {cfg.max_batch}")
    if req.expires > 0 and 0 < cfg.max_expires < req.expires:
        raise NextRequestError(409, f"Exceeded MaxRequestExpires of {go_duration(cfg.max_expires)}")
    if req.max_bytes > 0 and 0 < cfg.max_bytes < req.max_bytes:
        raise NextRequestError(409, f"Exceeded MaxRequestMaxBytes of {cfg.max_bytes}")
    if req.priority_group:
        policy = cfg.priority_policy
        if (req.min_pending != 0 or req.min_ack_pending != 0) and policy != "overflow":
            raise NextRequestError(400, "Bad Request - Not a Overflow Priority consumer")
        if req.id and policy != "pinned_client":
            raise NextRequestError(400, "Bad Request - Not a Pinned Client Priority consumer")
        if not 0 <= req.priority <= 9:
            raise NextRequestError(400, "Bad Request - Priority must be between 0 and 9")
        if policy != "none":
            if not req.group:
                raise NextRequestError(400, "Bad Request - Priority Group missing")
            if req.group not in (cfg.priority_groups or []):
                raise NextRequestError(400, "Bad Request - Invalid Priority Group")
    return req
