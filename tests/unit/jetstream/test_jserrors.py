"""The JetStream error table and ApiError (jetstream-api.md section 3)."""

# ruff: noqa: E501  # the tables hold nats-server's texts verbatim, one entry per line

from __future__ import annotations

import pytest

from shardbroker.jetstream import jserrors
from shardbroker.jetstream.jserrors import ApiError

# (name, code, err_code, description) as nats-server 2.15 has them (server/errors.json),
# covering jetstream-api.md 3.1-3.3 and what publishing and KV meet.
TABLE = [
    ("JSBadRequestErr", 400, 10003, "bad request"),
    ("JSConsumerCreateErrF", 500, 10012, "{err}"),
    ("JSConsumerNameExistErr", 400, 10013, "consumer name already in use"),
    ("JSConsumerNotFoundErr", 404, 10014, "consumer not found"),
    ("JSMaximumConsumersLimitErr", 400, 10026, "maximum consumers limit reached"),
    ("JSNoMessageFoundErr", 404, 10037, "no message found"),
    ("JSNotEnabledForAccountErr", 503, 10039, "JetStream not enabled for account"),
    ("JSStreamNameExistErr", 400, 10058, "stream name already in use with a different configuration"),
    ("JSStreamNotFoundErr", 404, 10059, "stream not found"),
    ("JSStreamWrongLastSequenceErrF", 400, 10071, "wrong last sequence: {seq}"),
    ("JSNotEnabledErr", 503, 10076, "JetStream not enabled"),
    ("JSConsumerExistingActiveErr", 400, 10105, "consumer already exists and is still active"),
    ("JSConsumerAlreadyExists", 400, 10148, "consumer already exists"),
    ("JSConsumerDoesNotExist", 400, 10149, "consumer does not exist"),
    ("JSStreamWrongLastSequenceConstantErr", 400, 10164, "wrong last sequence"),
    ("JSConsumerInvalidResetErr", 400, 10204, "invalid reset: {err}"),
    ("JSAccountResourcesExceededErr", 400, 10002, "resource limits exceeded for account"),
    ("JSClusterNotAvailErr", 503, 10008, "JetStream system temporarily unavailable"),
    ("JSInsufficientResourcesErr", 503, 10023, "insufficient resources"),
    ("JSInvalidJSONErr", 400, 10025, "invalid JSON: {err}"),
    ("JSMaximumStreamsLimitErr", 400, 10027, "maximum number of streams reached"),
    ("JSNotEmptyRequestErr", 400, 10038, "expected an empty request payload"),
    ("JSSequenceNotFoundErrF", 400, 10043, "sequence {seq} not found"),
    ("JSStorageResourcesExceededErr", 500, 10047, "insufficient storage resources available"),
    ("JSStreamCreateErrF", 500, 10049, "{err}"),
    ("JSStreamDeleteErrF", 500, 10050, "{err}"),
    ("JSStreamGeneralErrorF", 500, 10051, "{err}"),
    ("JSStreamInvalidConfigF", 500, 10052, "{err}"),
    ("JSStreamLimitsErrF", 500, 10053, "{err}"),
    ("JSStreamMessageExceedsMaximumErr", 400, 10054, "message size exceeds maximum allowed"),
    ("JSStreamMirrorNotUpdatableErr", 400, 10055, "stream mirror configuration can not be updated"),
    ("JSStreamMismatchErr", 400, 10056, "stream name in subject does not match request"),
    ("JSStreamMsgDeleteFailedF", 500, 10057, "{err}"),
    ("JSStreamNotMatchErr", 400, 10060, "expected stream does not match"),
    ("JSStreamSequenceNotMatchErr", 503, 10063, "expected stream sequence does not match"),
    ("JSStreamSubjectOverlapErr", 400, 10065, "subjects overlap with an existing stream"),
    ("JSStreamUpdateErrF", 500, 10069, "{err}"),
    ("JSStreamWrongLastMsgIDErrF", 400, 10070, "wrong last msg ID: {id}"),
    ("JSStreamReplicasNotSupportedErr", 500, 10074, "replicas > 1 not supported in non-clustered mode"),
    ("JSStreamStoreFailedF", 503, 10077, "{err}"),
    ("JSStreamHeaderExceedsMaximumErr", 400, 10097, "header size exceeds maximum allowed of 64k"),
    ("JSStreamSealedErr", 400, 10109, "invalid operation on sealed stream"),
    ("JSStreamPurgeFailedF", 500, 10110, "{err}"),
    ("JSStreamRollupFailedF", 500, 10111, "{err}"),
    ("JSStreamMaxBytesRequired", 400, 10113, "account requires a stream config to have max bytes set"),
    ("JSStreamInfoMaxSubjectsErr", 500, 10117, "subject details would exceed maximum allowed"),
    ("JSStreamMaxStreamBytesExceeded", 400, 10122, "stream max bytes exceeds account limit max stream bytes"),
    ("JSStreamNameContainsPathSeparatorsErr", 400, 10128, "Stream name can not contain path separators"),
    ("JSReplicasCountCannotBeNegative", 400, 10133, "replicas count cannot be negative"),
    ("JSPedanticErrF", 400, 10157, "pedantic mode: {err}"),
    ("JSMessageTTLInvalidErr", 400, 10165, "invalid per-message TTL"),
    ("JSMessageTTLDisabledErr", 400, 10166, "per-message TTL is disabled"),
    ("JSStreamTooManyRequests", 429, 10167, "too many requests"),
    ("JSRequiredApiLevelErr", 412, 10185, "JetStream minimum api level required"),
    ("JSStreamExpectedLastSeqPerSubjectInvalid", 400, 10193, "missing sequence for expected last sequence per subject"),
    ("JSMessageSourceHdrNotAllowedErr", 400, 10227, "message stream source header is not allowed"),
    ("JSConsumerConfigRequiredErr", 400, 10078, "consumer config required"),
    ("JSConsumerDeliverToWildcardsErr", 400, 10079, "consumer deliver subject has wildcards"),
    ("JSConsumerPushMaxWaitingErr", 400, 10080, "consumer in push mode can not set max waiting"),
    ("JSConsumerDeliverCycleErr", 400, 10081, "consumer deliver subject forms a cycle"),
    ("JSConsumerMaxPendingAckPolicyRequiredErr", 400, 10082, "consumer requires ack policy for max ack pending"),
    ("JSConsumerSmallHeartbeatErr", 400, 10083, "consumer idle heartbeat needs to be >= 100ms"),
    ("JSConsumerPullRequiresAckErr", 400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream"),
    ("JSConsumerPullWithRateLimitErr", 400, 10086, "consumer in pull mode can not have rate limit set"),
    ("JSConsumerMaxWaitingNegativeErr", 400, 10087, "consumer max waiting needs to be positive"),
    ("JSConsumerHBRequiresPushErr", 400, 10088, "consumer idle heartbeat requires a push based consumer"),
    ("JSConsumerFCRequiresPushErr", 400, 10089, "consumer flow control requires a push based consumer"),
    ("JSConsumerDirectRequiresPushErr", 400, 10090, "consumer direct requires a push based consumer"),
    ("JSConsumerDirectRequiresEphemeralErr", 400, 10091, "consumer direct requires an ephemeral consumer"),
    ("JSConsumerInvalidPolicyErrF", 400, 10094, "{err}"),
    ("JSConsumerInvalidSamplingErrF", 400, 10095, "failed to parse consumer sampling configuration: {err}"),
    ("JSConsumerWQRequiresExplicitAckErr", 400, 10098, "workqueue stream requires explicit ack"),
    ("JSConsumerWQMultipleUnfilteredErr", 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"),
    ("JSConsumerWQConsumerNotUniqueErr", 400, 10100, "filtered consumer not unique on workqueue stream"),
    ("JSConsumerWQConsumerNotDeliverAllErr", 400, 10101, "consumer must be deliver all on workqueue stream"),
    ("JSConsumerNameTooLongErrF", 400, 10102, "consumer name is too long, maximum allowed is {max}"),
    ("JSConsumerBadDurableNameErr", 400, 10103, "durable name can not contain '.', '*', '>'"),
    ("JSConsumerStoreFailedErrF", 500, 10104, "error creating store for consumer: {err}"),
    ("JSConsumerReplacementWithDifferentNameErr", 400, 10106, "consumer replacement durable config not the same"),
    ("JSConsumerDescriptionTooLongErrF", 400, 10107, "consumer description is too long, maximum allowed is {max}"),
    ("JSConsumerWithFlowControlNeedsHeartbeats", 400, 10108, "consumer with flow control also needs heartbeats"),
    ("JSConsumerInvalidDeliverSubject", 400, 10112, "invalid push consumer deliver subject"),
    ("JSConsumerMaxRequestBatchNegativeErr", 400, 10114, "consumer max request batch needs to be > 0"),
    ("JSConsumerMaxRequestExpiresTooSmall", 400, 10115, "consumer max request expires needs to be >= 1ms"),
    ("JSConsumerMaxDeliverBackoffErr", 400, 10116, "max deliver is required to be > length of backoff values"),
    ("JSConsumerMaxPendingAckExcessErrF", 400, 10121, "consumer max ack pending exceeds system limit of {limit}"),
    ("JSConsumerMaxRequestBatchExceededF", 400, 10125, "consumer max request batch exceeds server limit of {limit}"),
    ("JSConsumerReplicasExceedsStream", 400, 10126, "consumer config replica count exceeds parent stream"),
    ("JSConsumerNameContainsPathSeparatorsErr", 400, 10127, "Consumer name can not contain path separators"),
    ("JSConsumerCreateFilterSubjectMismatchErr", 400, 10131, "Consumer create request did not match filtered subject from create subject"),
    ("JSConsumerCreateDurableAndNameMismatch", 400, 10132, "Consumer Durable and Name have to be equal if both are provided"),
    ("JSConsumerReplicasShouldMatchStream", 400, 10134, "consumer config replicas must match interest retention stream's replicas"),
    ("JSConsumerMetadataLengthErrF", 400, 10135, "consumer metadata exceeds maximum size of {limit}"),
    ("JSConsumerDuplicateFilterSubjects", 400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified"),
    ("JSConsumerMultipleFiltersNotAllowed", 400, 10137, "consumer with multiple subject filters cannot use subject based API"),
    ("JSConsumerOverlappingSubjectFilters", 400, 10138, "consumer subject filters cannot overlap"),
    ("JSConsumerEmptyFilter", 400, 10139, "consumer filter in FilterSubjects cannot be empty"),
    ("JSConsumerInactiveThresholdExcess", 400, 10153, "consumer inactive threshold exceeds system limit of {limit}"),
    ("JSConsumerAckPolicyInvalidErr", 400, 10181, "consumer ack policy invalid"),
    ("JSConsumerReplayPolicyInvalidErr", 400, 10182, "consumer replay policy invalid"),
    ("JSConsumerAckWaitNegativeErr", 400, 10183, "consumer ack wait needs to be positive"),
    ("JSConsumerBackOffNegativeErr", 400, 10184, "consumer backoff needs to be positive"),
    ("JSConsumerDurableNameNotInSubjectErr", 400, 10016, "consumer expected to be durable but no durable name set in subject"),
    ("JSConsumerDurableNameNotMatchSubjectErr", 400, 10017, "consumer name in subject does not match durable name in request"),
    ("JSConsumerDurableNameNotSetErr", 400, 10018, "consumer expected to be durable but a durable name was not set"),
    ("JSConsumerEphemeralWithDurableNameErr", 400, 10020, "consumer expected to be ephemeral but a durable name was set in request"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "code", "err_code", "description"), TABLE)
def test_jserrors_entry_matches_nats(name: str, code: int, err_code: int, description: str) -> None:
    defn = getattr(jserrors, name)
    assert (defn.name, defn.code, defn.err_code, defn.description) == (
        name,
        code,
        err_code,
        description,
    )
    assert jserrors.ERRORS[name] is defn
    assert jserrors.BY_ERR_CODE[err_code] is defn


def test_jserrors_table_is_complete_and_unique() -> None:
    # errors.json of the 2.15 line has 226 entries; every err_code is distinct.
    assert len(jserrors.ERRORS) == 226
    assert len(jserrors.BY_ERR_CODE) == 226
    assert all(name == d.name for name, d in jserrors.ERRORS.items())


@pytest.mark.parametrize(
    ("defn", "fields", "expected"),
    [
        # Captured from nats-server 2.15.1 (publishes with expectation headers).
        (
            jserrors.JSStreamWrongLastSequenceErrF,
            {"seq": 1},
            (400, 10071, "wrong last sequence: 1"),
        ),
        (jserrors.JSStreamWrongLastMsgIDErrF, {"id": "m1"}, (400, 10070, "wrong last msg ID: m1")),
        (jserrors.JSStreamWrongLastMsgIDErrF, {"id": ""}, (400, 10070, "wrong last msg ID: ")),
        (jserrors.JSSequenceNotFoundErrF, {"seq": 2}, (400, 10043, "sequence 2 not found")),
        (
            jserrors.JSStreamStoreFailedF,
            {"err": "maximum messages exceeded"},
            (503, 10077, "maximum messages exceeded"),
        ),
        (
            jserrors.JSStreamStoreFailedF,
            {"err": "maximum bytes exceeded"},
            (503, 10077, "maximum bytes exceeded"),
        ),
        (
            jserrors.JSStreamStoreFailedF,
            {"err": "maximum messages per subject exceeded"},
            (503, 10077, "maximum messages per subject exceeded"),
        ),
        (
            jserrors.JSStreamRollupFailedF,
            {"err": 'rollup value invalid: "bad"'},
            (500, 10111, 'rollup value invalid: "bad"'),
        ),
        (
            jserrors.JSStreamPurgeFailedF,
            {"err": "stream purge not permitted"},
            (500, 10110, "stream purge not permitted"),
        ),
        (
            jserrors.JSStreamMsgDeleteFailedF,
            {"err": "message delete not permitted"},
            (500, 10057, "message delete not permitted"),
        ),
        (
            jserrors.JSConsumerNameTooLongErrF,
            {"max": 255},
            (400, 10102, "consumer name is too long, maximum allowed is 255"),
        ),
        (
            jserrors.JSStreamExternalDelPrefixOverlapsErrF,
            {"prefix": "p", "subject": "s"},
            (400, 10022, "stream external delivery prefix p overlaps with stream subject s"),
        ),
    ],
)
def test_jserrors_of_fills_placeholders(
    defn: jserrors.ErrorDef, fields: dict[str, object], expected: tuple[int, int, str]
) -> None:
    err = ApiError.of(defn, **fields)
    assert (err.code, err.err_code, err.description) == expected


def test_jserrors_to_dict_has_exactly_the_nats_keys() -> None:
    err = ApiError.of(jserrors.JSStreamNotFoundErr)
    assert err.to_dict() == {"code": 404, "err_code": 10059, "description": "stream not found"}
    assert list(err.to_dict()) == ["code", "err_code", "description"]


def test_jserrors_to_dict_omits_empty_fields_like_go() -> None:
    assert ApiError(503, 0, "").to_dict() == {"code": 503}


def test_jserrors_of_requires_exactly_the_placeholders() -> None:
    with pytest.raises(ValueError, match="seq"):
        ApiError.of(jserrors.JSStreamWrongLastSequenceErrF)
    with pytest.raises(ValueError, match="bogus"):
        ApiError.of(jserrors.JSStreamNotFoundErr, bogus=1)


def test_jserrors_of_passes_an_api_error_through() -> None:
    # nats-server's Unless(err): a wrapping error never hides a specific one.
    inner = ApiError.of(jserrors.JSStreamSubjectOverlapErr)
    assert ApiError.of(jserrors.JSStreamCreateErrF, err=inner) is inner


def test_jserrors_placeholder_values_print_like_go() -> None:
    err = ApiError.of(jserrors.JSStreamCreateErrF, err=True)
    assert err.description == "true"


def test_jserrors_str_is_go_error_text() -> None:
    err = ApiError.of(jserrors.JSStreamWrongLastSequenceErrF, seq=5)
    assert str(err) == "wrong last sequence: 5 (10071)"
    assert repr(err) == "ApiError(400, 10071, 'wrong last sequence: 5')"


def test_jserrors_error_by_name() -> None:
    err = jserrors.error("JSSequenceNotFoundErrF", seq=7)
    assert err.to_dict() == {"code": 400, "err_code": 10043, "description": "sequence 7 not found"}


def test_jserrors_error_by_unknown_name_suggests_names() -> None:
    with pytest.raises(KeyError, match="JSStreamWrongLastSequenceErrF"):
        jserrors.error("JSStreamWrongLastSequenceErr", seq=1)


def test_jserrors_is_error() -> None:
    err = ApiError.of(jserrors.JSStreamNotFoundErr)
    assert jserrors.is_error(err, jserrors.JSConsumerNotFoundErr, jserrors.JSStreamNotFoundErr)
    assert not jserrors.is_error(err, jserrors.JSConsumerNotFoundErr)
    assert not jserrors.is_error(ValueError("stream not found"), jserrors.JSStreamNotFoundErr)
    assert not jserrors.is_error(None, jserrors.JSStreamNotFoundErr)
