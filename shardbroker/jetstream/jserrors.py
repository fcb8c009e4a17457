"""The JetStream API error table and the exception that carries one entry.

Owner: pure data, imported by the storage process (jetstream/) and by tests. No I/O.

Every error a JetStream API reply or a PubAck can carry is one line below, named as
nats-server names it (``server/errors.json``, 2.15 line) with the same HTTP-like ``code``,
``err_code`` and ``description``. A description may hold ``{placeholders}``; they are
filled by `ApiError.of`. Nothing else in the broker spells these texts.

Invariants: ``err_code`` values are unique (checked at import); `ApiError.to_dict` has
exactly the keys nats-server writes (``code``, ``err_code``, ``description``) because
clients build their exception from that object and reject any other key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Final

__all__ = ["BY_ERR_CODE", "ERRORS", "ApiError", "ErrorDef", "error", "is_error"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ErrorDef:
    """One row of the table: nats constant name, ``code``, ``err_code``, description."""

    __slots__ = ("code", "description", "err_code", "fields", "name")

    def __init__(self, code: int, err_code: int, description: str) -> None:
        self.name = ""  # bound to the module constant's name below
        self.code = code
        self.err_code = err_code
        self.description = description
        self.fields: frozenset[str] = frozenset(_PLACEHOLDER.findall(description))

    def __repr__(self) -> str:
        return f"<ErrorDef {self.name} {self.code}/{self.err_code} {self.description!r}>"


_e = ErrorDef


def _go_text(value: object) -> str:
    """A placeholder value as Go's ``%v`` would print it (bools are lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ApiError(Exception):
    """A JetStream API error, as sent in ``{"error": {...}}`` of a reply or PubAck."""

    __slots__ = ("code", "description", "err_code")

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.err_code = err_code
        self.description = description

    @classmethod
    def of(cls, defn: ErrorDef, **fields: object) -> ApiError:
        """The error `defn` with its ``{placeholders}`` filled from `fields`.

        Like nats-server's ``Unless(err)`` option, an `ApiError` passed as a field value
        is returned unchanged instead of being wrapped: a wrapping error such as
        ``JSStreamCreateErrF`` never hides a more specific API error.
        """
        for value in fields.values():
            if isinstance(value, ApiError):
                return value
        if fields.keys() != defn.fields:
            raise ValueError(
                f"{defn.name} takes fields {sorted(defn.fields)}, got {sorted(fields)}"
            )
        description = defn.description
        for key, value in fields.items():
            description = description.replace("{" + key + "}", _go_text(value))
        return cls(defn.code, defn.err_code, description)

    def to_dict(self) -> dict[str, Any]:
        """The JSON error object; ``err_code``/``description`` omitted when empty (omitempty)."""
        out: dict[str, Any] = {"code": self.code}
        if self.err_code:
            out["err_code"] = self.err_code
        if self.description:
            out["description"] = self.description
        return out

    def __str__(self) -> str:
        # Go's ApiError.Error(): the text nats-server logs and nests in wrapping errors.
        return f"{self.description} ({self.err_code})"

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.err_code}, {self.description!r})"


def error(name: str, **fields: object) -> ApiError:
    """`ApiError.of` by the nats constant name: ``error("JSStreamNotFoundErr")``."""
    try:
        defn = ERRORS[name]
    except KeyError:
        close = difflib.get_close_matches(name, ERRORS, n=3)
        raise KeyError(f"no JetStream error named {name!r}; did you mean {close}?") from None
    return ApiError.of(defn, **fields)


def is_error(err: BaseException | None, *defs: ErrorDef) -> bool:
    """True if `err` is an `ApiError` with the ``err_code`` of any of `defs` (nats IsNatsErr)."""
    if not isinstance(err, ApiError):
        return False
    return any(err.err_code == d.err_code for d in defs)


# --- the table (server/errors.json, sorted by err_code) ------------------------------------
JSAccountResourcesExceededErr = _e(400, 10002, "resource limits exceeded for account")
JSBadRequestErr = _e(400, 10003, "bad request")
JSClusterIncompleteErr = _e(503, 10004, "incomplete results")
JSClusterNoPeersErrF = _e(400, 10005, "{err}")
JSClusterNotActiveErr = _e(500, 10006, "JetStream not in clustered mode")
JSClusterNotAssignedErr = _e(500, 10007, "JetStream cluster not assigned to this server")
JSClusterNotAvailErr = _e(503, 10008, "JetStream system temporarily unavailable")
JSClusterNotLeaderErr = _e(500, 10009, "JetStream cluster can not handle request")
JSClusterRequiredErr = _e(503, 10010, "JetStream clustering support required")
JSClusterTagsErr = _e(400, 10011, "tags placement not supported for operation")
JSConsumerCreateErrF = _e(500, 10012, "{err}")
JSConsumerNameExistErr = _e(400, 10013, "consumer name already in use")
JSConsumerNotFoundErr = _e(404, 10014, "consumer not found")
JSSnapshotDeliverSubjectInvalidErr = _e(400, 10015, "deliver subject not valid")
JSConsumerDurableNameNotInSubjectErr = _e(
    400, 10016, "consumer expected to be durable but no durable name set in subject"
)
JSConsumerDurableNameNotMatchSubjectErr = _e(
    400, 10017, "consumer name in subject does not match durable name in request"
)
JSConsumerDurableNameNotSetErr = _e(
    400, 10018, "consumer expected to be durable but a durable name was not set"
)
JSConsumerEphemeralWithDurableInSubjectErr = _e(
    400, 10019, "consumer expected to be ephemeral but detected a durable name set in subject"
)
JSConsumerEphemeralWithDurableNameErr = _e(
    400, 10020, "consumer expected to be ephemeral but a durable name was set in request"
)
JSStreamExternalApiOverlapErrF = _e(
    400, 10021, "stream external api prefix {prefix} must not overlap with {subject}"
)
JSStreamExternalDelPrefixOverlapsErrF = _e(
    400, 10022, "stream external delivery prefix {prefix} overlaps with stream subject {subject}"
)
JSInsufficientResourcesErr = _e(503, 10023, "insufficient resources")
JSStreamInvalidExternalDeliverySubjErrF = _e(
    400, 10024, "stream external delivery prefix {prefix} must not contain wildcards"
)
JSInvalidJSONErr = _e(400, 10025, "invalid JSON: {err}")
JSMaximumConsumersLimitErr = _e(400, 10026, "maximum consumers limit reached")
JSMaximumStreamsLimitErr = _e(400, 10027, "maximum number of streams reached")
JSMemoryResourcesExceededErr = _e(500, 10028, "insufficient memory resources available")
JSMirrorConsumerSetupFailedErrF = _e(500, 10029, "{err}")
JSMirrorMaxMessageSizeTooBigErr = _e(
    400, 10030, "stream mirror must have max message size >= source"
)
JSMirrorWithSourcesErr = _e(400, 10031, "stream mirrors can not also contain other sources")
JSMirrorWithStartSeqAndTimeErr = _e(
    400, 10032, "stream mirrors can not have both start seq and start time configured"
)
JSMirrorWithSubjectFiltersErr = _e(400, 10033, "stream mirrors can not contain filtered subjects")
JSMirrorWithSubjectsErr = _e(400, 10034, "stream mirrors can not contain subjects")
JSNoAccountErr = _e(503, 10035, "account not found")
JSClusterUnSupportFeatureErr = _e(503, 10036, "not currently supported in clustered mode")
JSNoMessageFoundErr = _e(404, 10037, "no message found")
JSNotEmptyRequestErr = _e(400, 10038, "expected an empty request payload")
JSNotEnabledForAccountErr = _e(503, 10039, "JetStream not enabled for account")
JSClusterPeerNotMemberErr = _e(400, 10040, "peer not a member")
JSRaftGeneralErrF = _e(500, 10041, "{err}")
JSRestoreSubscribeFailedErrF = _e(
    500, 10042, "JetStream unable to subscribe to restore snapshot {subject}: {err}"
)
JSSequenceNotFoundErrF = _e(400, 10043, "sequence {seq} not found")
JSClusterServerNotMemberErr = _e(400, 10044, "server is not a member of the cluster")
JSSourceConsumerSetupFailedErrF = _e(500, 10045, "{err}")
JSSourceMaxMessageSizeTooBigErr = _e(
    400, 10046, "stream source must have max message size >= target"
)
JSStorageResourcesExceededErr = _e(500, 10047, "insufficient storage resources available")
JSStreamAssignmentErrF = _e(500, 10048, "{err}")
JSStreamCreateErrF = _e(500, 10049, "{err}")
JSStreamDeleteErrF = _e(500, 10050, "{err}")
JSStreamGeneralErrorF = _e(500, 10051, "{err}")
JSStreamInvalidConfigF = _e(500, 10052, "{err}")
JSStreamLimitsErrF = _e(500, 10053, "{err}")
JSStreamMessageExceedsMaximumErr = _e(400, 10054, "message size exceeds maximum allowed")
JSStreamMirrorNotUpdatableErr = _e(400, 10055, "stream mirror configuration can not be updated")
JSStreamMismatchErr = _e(400, 10056, "stream name in subject does not match request")
JSStreamMsgDeleteFailedF = _e(500, 10057, "{err}")
JSStreamNameExistErr = _e(400, 10058, "stream name already in use with a different configuration")
JSStreamNotFoundErr = _e(404, 10059, "stream not found")
JSStreamNotMatchErr = _e(400, 10060, "expected stream does not match")
JSStreamReplicasNotUpdatableErr = _e(400, 10061, "Replicas configuration can not be updated")
JSStreamRestoreErrF = _e(500, 10062, "restore failed: {err}")
JSStreamSequenceNotMatchErr = _e(503, 10063, "expected stream sequence does not match")
JSStreamSnapshotErrF = _e(500, 10064, "snapshot failed: {err}")
JSStreamSubjectOverlapErr = _e(400, 10065, "subjects overlap with an existing stream")
JSStreamTemplateCreateErrF = _e(500, 10066, "{err}")
JSStreamTemplateDeleteErrF = _e(500, 10067, "{err}")
JSStreamTemplateNotFoundErr = _e(404, 10068, "template not found")
JSStreamUpdateErrF = _e(500, 10069, "{err}")
JSStreamWrongLastMsgIDErrF = _e(400, 10070, "wrong last msg ID: {id}")
JSStreamWrongLastSequenceErrF = _e(400, 10071, "wrong last sequence: {seq}")
JSTempStorageFailedErr = _e(500, 10072, "JetStream unable to open temp storage for restore")
JSTemplateNameNotMatchSubjectErr = _e(400, 10073, "template name in subject does not match request")
JSStreamReplicasNotSupportedErr = _e(500, 10074, "replicas > 1 not supported in non-clustered mode")
JSPeerRemapErr = _e(503, 10075, "peer remap failed")
JSNotEnabledErr = _e(503, 10076, "JetStream not enabled")
JSStreamStoreFailedF = _e(503, 10077, "{err}")
JSConsumerConfigRequiredErr = _e(400, 10078, "consumer config required")
JSConsumerDeliverToWildcardsErr = _e(400, 10079, "consumer deliver subject has wildcards")
JSConsumerPushMaxWaitingErr = _e(400, 10080, "consumer in push mode can not set max waiting")
JSConsumerDeliverCycleErr = _e(400, 10081, "consumer deliver subject forms a cycle")
JSConsumerMaxPendingAckPolicyRequiredErr = _e(
    400, 10082, "consumer requires ack policy for max ack pending"
)
JSConsumerSmallHeartbeatErr = _e(400, 10083, "consumer idle heartbeat needs to be >= 100ms")
JSConsumerPullRequiresAckErr = _e(
    400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream"
)
JSConsumerPullNotDurableErr = _e(400, 10085, "consumer in pull mode requires a durable name")
JSConsumerPullWithRateLimitErr = _e(400, 10086, "consumer in pull mode can not have rate limit set")
JSConsumerMaxWaitingNegativeErr = _e(400, 10087, "consumer max waiting needs to be positive")
JSConsumerHBRequiresPushErr = _e(
    400, 10088, "consumer idle heartbeat requires a push based consumer"
)
JSConsumerFCRequiresPushErr = _e(400, 10089, "consumer flow control requires a push based consumer")
JSConsumerDirectRequiresPushErr = _e(400, 10090, "consumer direct requires a push based consumer")
JSConsumerDirectRequiresEphemeralErr = _e(
    400, 10091, "consumer direct requires an ephemeral consumer"
)
JSConsumerOnMappedErr = _e(400, 10092, "consumer direct on a mapped consumer")
JSConsumerFilterNotSubsetErr = _e(
    400, 10093, "consumer filter subject is not a valid subset of the interest subjects"
)
JSConsumerInvalidPolicyErrF = _e(400, 10094, "{err}")
JSConsumerInvalidSamplingErrF = _e(
    400, 10095, "failed to parse consumer sampling configuration: {err}"
)
JSStreamInvalidErr = _e(500, 10096, "stream not valid")
JSStreamHeaderExceedsMaximumErr = _e(400, 10097, "header size exceeds maximum allowed of 64k")
JSConsumerWQRequiresExplicitAckErr = _e(400, 10098, "workqueue stream requires explicit ack")
JSConsumerWQMultipleUnfilteredErr = _e(
    400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"
)
JSConsumerWQConsumerNotUniqueErr = _e(
    400, 10100, "filtered consumer not unique on workqueue stream"
)
JSConsumerWQConsumerNotDeliverAllErr = _e(
    400, 10101, "consumer must be deliver all on workqueue stream"
)
JSConsumerNameTooLongErrF = _e(400, 10102, "consumer name is too long, maximum allowed is {max}")
JSConsumerBadDurableNameErr = _e(400, 10103, "durable name can not contain '.', '*', '>'")
JSConsumerStoreFailedErrF = _e(500, 10104, "error creating store for consumer: {err}")
JSConsumerExistingActiveErr = _e(400, 10105, "consumer already exists and is still active")
JSConsumerReplacementWithDifferentNameErr = _e(
    400, 10106, "consumer replacement durable config not the same"
)
JSConsumerDescriptionTooLongErrF = _e(
    400, 10107, "consumer description is too long, maximum allowed is {max}"
)
JSConsumerWithFlowControlNeedsHeartbeats = _e(
    400, 10108, "consumer with flow control also needs heartbeats"
)
JSStreamSealedErr = _e(400, 10109, "invalid operation on sealed stream")
JSStreamPurgeFailedF = _e(500, 10110, "{err}")
JSStreamRollupFailedF = _e(500, 10111, "{err}")
JSConsumerInvalidDeliverSubject = _e(400, 10112, "invalid push consumer deliver subject")
JSStreamMaxBytesRequired = _e(400, 10113, "account requires a stream config to have max bytes set")
JSConsumerMaxRequestBatchNegativeErr = _e(400, 10114, "consumer max request batch needs to be > 0")
JSConsumerMaxRequestExpiresTooSmall = _e(
    400, 10115, "consumer max request expires needs to be >= 1ms"
)
JSConsumerMaxDeliverBackoffErr = _e(
    400, 10116, "max deliver is required to be > length of backoff values"
)
JSStreamInfoMaxSubjectsErr = _e(500, 10117, "subject details would exceed maximum allowed")
JSStreamOfflineErr = _e(500, 10118, "stream is offline")
JSConsumerOfflineErr = _e(500, 10119, "consumer is offline")
JSNoLimitsErr = _e(400, 10120, "no JetStream default or applicable tiered limit present")
JSConsumerMaxPendingAckExcessErrF = _e(
    400, 10121, "consumer max ack pending exceeds system limit of {limit}"
)
JSStreamMaxStreamBytesExceeded = _e(
    400, 10122, "stream max bytes exceeds account limit max stream bytes"
)
JSStreamMoveAndScaleErr = _e(400, 10123, "can not move and scale a stream in a single update")
JSStreamMoveInProgressErr = _e(400, 10124, "stream move already in progress")
JSConsumerMaxRequestBatchExceededF = _e(
    400, 10125, "consumer max request batch exceeds server limit of {limit}"
)
JSConsumerReplicasExceedsStream = _e(
    400, 10126, "consumer config replica count exceeds parent stream"
)
JSConsumerNameContainsPathSeparatorsErr = _e(
    400, 10127, "Consumer name can not contain path separators"
)
JSStreamNameContainsPathSeparatorsErr = _e(
    400, 10128, "Stream name can not contain path separators"
)
JSStreamReconfigureNotInProgressErr = _e(400, 10129, "stream reconfiguration not in progress")
JSStreamNameExistRestoreFailedErr = _e(400, 10130, "stream name already in use, cannot restore")
JSConsumerCreateFilterSubjectMismatchErr = _e(
    400, 10131, "Consumer create request did not match filtered subject from create subject"
)
JSConsumerCreateDurableAndNameMismatch = _e(
    400, 10132, "Consumer Durable and Name have to be equal if both are provided"
)
JSReplicasCountCannotBeNegative = _e(400, 10133, "replicas count cannot be negative")
JSConsumerReplicasShouldMatchStream = _e(
    400, 10134, "consumer config replicas must match interest retention stream's replicas"
)
JSConsumerMetadataLengthErrF = _e(400, 10135, "consumer metadata exceeds maximum size of {limit}")
JSConsumerDuplicateFilterSubjects = _e(
    400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified"
)
JSConsumerMultipleFiltersNotAllowed = _e(
    400, 10137, "consumer with multiple subject filters cannot use subject based API"
)
JSConsumerOverlappingSubjectFilters = _e(400, 10138, "consumer subject filters cannot overlap")
JSConsumerEmptyFilter = _e(400, 10139, "consumer filter in FilterSubjects cannot be empty")
JSSourceDuplicateDetected = _e(400, 10140, "duplicate source configuration detected")
JSSourceInvalidStreamName = _e(400, 10141, "sourced stream name is invalid")
JSMirrorInvalidStreamName = _e(400, 10142, "mirrored stream name is invalid")
JSMirrorWithFirstSeqErr = _e(400, 10143, "stream mirrors can not have first sequence configured")
JSSourceMultipleFiltersNotAllowed = _e(
    400, 10144, "source with multiple subject transforms cannot also have a single subject filter"
)
JSSourceInvalidSubjectFilter = _e(400, 10145, "source transform source: {err}")
JSSourceInvalidTransformDestination = _e(400, 10146, "source transform: {err}")
JSSourceOverlappingSubjectFilters = _e(400, 10147, "source filters can not overlap")
JSConsumerAlreadyExists = _e(400, 10148, "consumer already exists")
JSConsumerDoesNotExist = _e(400, 10149, "consumer does not exist")
JSMirrorMultipleFiltersNotAllowed = _e(
    400, 10150, "mirror with multiple subject transforms cannot also have a single subject filter"
)
JSMirrorInvalidSubjectFilter = _e(400, 10151, "mirror transform source: {err}")
JSMirrorOverlappingSubjectFilters = _e(400, 10152, "mirror subject filters can not overlap")
JSConsumerInactiveThresholdExcess = _e(
    400, 10153, "consumer inactive threshold exceeds system limit of {limit}"
)
JSMirrorInvalidTransformDestination = _e(400, 10154, "mirror transform: {err}")
JSStreamTransformInvalidSource = _e(400, 10155, "stream transform source: {err}")
JSStreamTransformInvalidDestination = _e(400, 10156, "stream transform: {err}")
JSPedanticErrF = _e(400, 10157, "pedantic mode: {err}")
JSStreamDuplicateMessageConflict = _e(409, 10158, "duplicate message id is in process")
JSConsumerPriorityPolicyWithoutGroup = _e(
    400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set"
)
JSConsumerInvalidPriorityGroupErr = _e(
    400, 10160, "Provided priority group does not exist for this consumer"
)
JSConsumerEmptyGroupName = _e(400, 10161, "Group name cannot be an empty string")
JSConsumerInvalidGroupNameErr = _e(
    400,
    10162,
    "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
)
JSStreamExpectedLastSeqPerSubjectNotReady = _e(
    503, 10163, "expected last sequence per subject temporarily unavailable"
)
JSStreamWrongLastSequenceConstantErr = _e(400, 10164, "wrong last sequence")
JSMessageTTLInvalidErr = _e(400, 10165, "invalid per-message TTL")
JSMessageTTLDisabledErr = _e(400, 10166, "per-message TTL is disabled")
JSStreamTooManyRequests = _e(429, 10167, "too many requests")
JSMessageIncrDisabledErr = _e(400, 10168, "message counters is disabled")
JSMessageIncrMissingErr = _e(400, 10169, "message counter increment is missing")
JSMessageIncrPayloadErr = _e(400, 10170, "message counter has payload")
JSMessageIncrInvalidErr = _e(400, 10171, "message counter increment is invalid")
JSMessageCounterBrokenErr = _e(400, 10172, "message counter is broken")
JSMirrorWithCountersErr = _e(400, 10173, "stream mirrors can not also calculate counters")
JSAtomicPublishDisabledErr = _e(400, 10174, "atomic publish is disabled")
JSAtomicPublishMissingSeqErr = _e(400, 10175, "atomic publish sequence is missing")
JSAtomicPublishIncompleteBatchErr = _e(400, 10176, "atomic publish batch is incomplete")
JSAtomicPublishUnsupportedHeaderBatchErr = _e(
    400, 10177, "atomic publish unsupported header used: {header}"
)
JSConsumerPushWithPriorityGroupErr = _e(
    400, 10178, "priority groups can not be used with push consumers"
)
JSAtomicPublishInvalidBatchIDErr = _e(400, 10179, "atomic publish batch ID is invalid")
JSStreamMinLastSeqErr = _e(412, 10180, "min last sequence")
JSConsumerAckPolicyInvalidErr = _e(400, 10181, "consumer ack policy invalid")
JSConsumerReplayPolicyInvalidErr = _e(400, 10182, "consumer replay policy invalid")
JSConsumerAckWaitNegativeErr = _e(400, 10183, "consumer ack wait needs to be positive")
JSConsumerBackOffNegativeErr = _e(400, 10184, "consumer backoff needs to be positive")
JSRequiredApiLevelErr = _e(412, 10185, "JetStream minimum api level required")
JSMirrorWithMsgSchedulesErr = _e(400, 10186, "stream mirrors can not also schedule messages")
JSSourceWithMsgSchedulesErr = _e(400, 10187, "stream source can not also schedule messages")
JSMessageSchedulesDisabledErr = _e(400, 10188, "message schedules is disabled")
JSMessageSchedulesPatternInvalidErr = _e(400, 10189, "message schedules pattern is invalid")
JSMessageSchedulesTargetInvalidErr = _e(400, 10190, "message schedules target is invalid")
JSMessageSchedulesTTLInvalidErr = _e(400, 10191, "message schedules invalid per-message TTL")
JSMessageSchedulesRollupInvalidErr = _e(400, 10192, "message schedules invalid rollup")
JSStreamExpectedLastSeqPerSubjectInvalid = _e(
    400, 10193, "missing sequence for expected last sequence per subject"
)
JSStreamOfflineReasonErrF = _e(500, 10194, "stream is offline: {err}")
JSConsumerOfflineReasonErrF = _e(500, 10195, "consumer is offline: {err}")
JSConsumerPriorityGroupWithPolicyNone = _e(
    400, 10196, "consumer can not have priority groups when policy is none"
)
JSConsumerPinnedTTLWithoutPriorityPolicyNone = _e(
    400, 10197, "PinnedTTL cannot be set when PriorityPolicy is none"
)
JSMirrorWithAtomicPublishErr = _e(400, 10198, "stream mirrors can not also use atomic publishing")
JSAtomicPublishTooLargeBatchErrF = _e(400, 10199, "atomic publish batch is too large: {size}")
JSAtomicPublishInvalidBatchCommitErr = _e(400, 10200, "atomic publish batch commit is invalid")
JSAtomicPublishContainsDuplicateMessageErr = _e(
    400, 10201, "atomic publish batch contains duplicate message id"
)
JSClusterServerMemberChangeInflightErr = _e(400, 10202, "cluster member change is in progress")
JSMessageSchedulesSourceInvalidErr = _e(400, 10203, "message schedules source is invalid")
JSConsumerInvalidResetErr = _e(400, 10204, "invalid reset: {err}")
JSBatchPublishDisabledErr = _e(400, 10205, "batch publish is disabled")
JSBatchPublishInvalidPatternErr = _e(400, 10206, "batch publish pattern is invalid")
JSBatchPublishInvalidBatchIDErr = _e(400, 10207, "batch publish ID is invalid")
JSBatchPublishUnknownBatchIDErr = _e(400, 10208, "batch publish ID unknown")
JSMirrorWithBatchPublishErr = _e(400, 10209, "stream mirrors can not also use batch publishing")
JSAtomicPublishTooManyInflight = _e(429, 10210, "atomic publish too many inflight")
JSBatchPublishTooManyInflight = _e(429, 10211, "batch publish too many inflight")
JSMessageSchedulesSchedulerInvalidErr = _e(400, 10212, "message schedules invalid scheduler")
JSMirrorDurableConsumerCfgInvalid = _e(400, 10213, "stream mirror consumer config is invalid")
JSMirrorConsumerRequiresAckFCErr = _e(
    400, 10214, "stream mirror consumer requires flow control ack policy"
)
JSSourceDurableConsumerCfgInvalid = _e(400, 10215, "stream source consumer config is invalid")
JSSourceDurableConsumerDuplicateDetected = _e(
    400, 10216, "duplicate stream source consumer detected"
)
JSSourceConsumerRequiresAckFCErr = _e(
    400, 10217, "stream source consumer requires flow control ack policy"
)
JSConsumerAckFCRequiresPushErr = _e(
    400, 10218, "flow control ack policy requires a push based consumer"
)
JSConsumerAckFCRequiresFCErr = _e(400, 10219, "flow control ack policy requires flow control")
JSConsumerAckFCRequiresMaxAckPendingErr = _e(
    400, 10220, "flow control ack policy requires max ack pending"
)
JSConsumerAckFCRequiresNoAckWaitErr = _e(
    400, 10221, "flow control ack policy requires unset ack wait"
)
JSConsumerAckFCRequiresNoMaxDeliverErr = _e(
    400, 10222, "flow control ack policy requires unset max deliver"
)
JSMessageSchedulesTimeZoneInvalidErr = _e(400, 10223, "message schedules time zone is invalid")
JSClusterRescueErr = _e(400, 10224, "JetStream system rescue not applied: {err}")
JSConsumerStreamIdentityMismatchF = _e(
    400, 10225, "consumer's stream identity does not match: {msg}"
)
JSStreamReconfigureInProgressErr = _e(400, 10226, "stream reconfiguration already in progress")
JSMessageSourceHdrNotAllowedErr = _e(400, 10227, "message stream source header is not allowed")


def _bind_names() -> dict[str, ErrorDef]:
    table: dict[str, ErrorDef] = {}
    seen: dict[int, str] = {}
    for name, value in globals().items():
        if isinstance(value, ErrorDef):
            value.name = name
            if value.err_code in seen:
                raise RuntimeError(
                    f"err_code {value.err_code} used by {seen[value.err_code]} and {name}"
                )
            seen[value.err_code] = name
            table[name] = value
    return table


ERRORS: Final[dict[str, ErrorDef]] = _bind_names()
"""Every entry by its nats constant name."""

BY_ERR_CODE: Final[dict[int, ErrorDef]] = {d.err_code: d for d in ERRORS.values()}
"""Every entry by ``err_code``."""
