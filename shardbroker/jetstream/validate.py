"""Stream configuration rules: server defaults, validation, create and update checks.

Owner: pure functions, imported by the storage process's API layer and by tests. No I/O.

The checks run in nats-server's order (``checkStreamCfg``, ``addStream``,
``configUpdateCheck`` in server/stream.go and the create/update handlers in
server/jetstream_api.go), so the first failure is the one nats-server reports, with its
exact text. Inputs are never modified: every function returns a new StreamConfig.

Not modelled (later work): subject-transform mapping functions (only a transform's source
subject is checked), account limits (max streams, reserved bytes; the caller checks them)
and the server limit on duplicate windows.

The consumer half (below the stream half) does the same for CONSUMER.CREATE and
CONSUMER.DURABLE.CREATE (jsConsumerCreateRequest, setConsumerConfigDefaults,
checkConsumerCfg, addConsumerWithAssignment, checkNewConsumerConfig) and for the
immediate status replies to CONSUMER.MSG.NEXT (processNextMsgRequest).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from shardbroker.gofmt.duration import (
    go_duration,
)
from shardbroker.gofmt.quote import (
    go_quote,
)
from shardbroker.gofmt.timestamp import (
    format_rfc3339 as format_time,
)
from shardbroker.gofmt.timestamp import (
    parse_rfc3339 as parse_time,
)
from shardbroker.jetstream import jserrors as e
from shardbroker.jetstream.consumer_schema import (
    ConsumerConfig,
    CreateConsumerRequest,
    NextRequest,
)
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.jsondecode import (
    decode_next_request,
)
from shardbroker.jetstream.schema import (
    MsgGetRequest,
    Placement,
    StreamConfig,
    StreamPurgeRequest,
    StreamSource,
)
from shardbroker.protocol.subjects import (
    is_valid_literal_subject,
    is_valid_subject,
    subject_is_subset_match,
    subjects_overlap,
)

__all__ = [
    "ACK_WAIT_DEFAULT",
    "CONSUMER_NAME_LEN",
    "DEFAULT_DUPLICATE_WINDOW",
    "DELETE_WAIT_TIME_DEFAULT",
    "MAX_ACK_PENDING_DEFAULT",
    "MAX_DESCRIPTION_LEN",
    "MAX_METADATA_LEN",
    "MAX_NAME_LEN",
    "MAX_REPLICAS",
    "PINNED_TTL_DEFAULT",
    "SOURCE_HEALTH_HB",
    "WAIT_QUEUE_DEFAULT_MAX",
    "ConsumerCreateSubject",
    "ConsumerForm",
    "ConsumerLimits",
    "NextRequestError",
    "add_consumer_config",
    "check_consumer_cfg",
    "check_consumer_create",
    "check_consumer_request",
    "check_consumer_update",
    "check_create_request",
    "check_msg_get_request",
    "check_next_request",
    "check_purge_request",
    "check_stream_cfg",
    "check_stream_config",
    "check_stream_mismatch",
    "check_stream_name",
    "check_stream_name_token",
    "check_stream_update",
    "copy_consumer_metadata",
    "copy_stream_metadata",
    "create_consumer_name",
    "is_valid_asset_name",
    "parse_consumer_create_subject",
    "parse_consumer_subject",
    "same_config",
    "set_consumer_config_defaults",
    "set_dynamic_consumer_metadata",
    "set_dynamic_stream_metadata",
    "set_static_consumer_metadata",
    "set_static_stream_metadata",
]

MAX_NAME_LEN = 255  # JSMaxNameLen
MAX_DESCRIPTION_LEN = 4 * 1024  # JSMaxDescriptionLen
MAX_METADATA_LEN = 128 * 1024  # JSMaxMetadataLen
MAX_REPLICAS = 5  # StreamMaxReplicas
DEFAULT_DUPLICATE_WINDOW = 120_000_000_000  # StreamDefaultDuplicatesWindow, 2 min in ns
_MS = 1_000_000
_SECOND = 1_000_000_000

REQUIRED_LEVEL_KEY = "_nats.req.level"
SERVER_VERSION_KEY = "_nats.ver"
SERVER_LEVEL_KEY = "_nats.level"

_ILLEGAL_NAME_CHARS = frozenset(" \t\r\n\f.*>\\/")


def _invalid(text: str) -> ApiError:
    return ApiError.of(e.JSStreamInvalidConfigF, err=text)


def _pedantic(text: str) -> ApiError:
    return ApiError.of(e.JSPedanticErrF, err=text)


def _size(text: str) -> int:
    return len(text.encode())


# -- names ---------------------------------------------------------------------------------


def is_valid_asset_name(name: str) -> bool:
    """nats isValidAssetName: non-empty, none of space, tab, CR, LF, FF, ``.*>\\/``."""
    return bool(name) and _ILLEGAL_NAME_CHARS.isdisjoint(name)


def check_stream_name(name: str) -> None:
    """The name rules of a stream config (10052), as checkStreamCfg applies them."""
    if not is_valid_asset_name(name):
        raise _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")
    if _size(name) > MAX_NAME_LEN:
        raise _invalid(f"stream name is too long, maximum allowed is {MAX_NAME_LEN}")


def check_stream_name_token(token: str) -> None:
    """The stream name taken from an API subject: no path separators (10128)."""
    if "/" in token or "\\" in token:
        raise ApiError.of(e.JSStreamNameContainsPathSeparatorsErr)


def check_stream_mismatch(subject_name: str, config_name: str) -> None:
    """The name in the API subject must be the one in the request body (10056)."""
    if subject_name != config_name:
        raise ApiError.of(e.JSStreamMismatchErr)


def check_create_request(subject_name: str, cfg: StreamConfig) -> None:
    """STREAM.CREATE's checks before the config itself is looked at, in nats order.

    An empty body decodes to an empty name, so it fails here with 10056 as in nats.
    """
    check_stream_mismatch(subject_name, cfg.name)
    check_stream_name_token(subject_name)
    if cfg.sealed:
        raise _invalid("stream configuration for create can not be sealed")
    if cfg.mirror_direct and cfg.mirror is None:
        raise _invalid("stream has no mirror but does have mirror direct")


# -- metadata (server/jetstream_versioning.go) ---------------------------------------------


def _required_api_level(cfg: StreamConfig) -> int:
    level = 0
    if cfg.allow_msg_ttl or cfg.subject_delete_marker_ttl > 0:
        level = max(level, 1)  # TTLs: 2.11
    if (
        cfg.allow_msg_counter
        or cfg.allow_atomic
        or cfg.allow_msg_schedules
        or cfg.persist_mode == "async"
    ):
        level = max(level, 2)  # counters, atomic batches, schedules, async persist: 2.12
    if cfg.allow_batched:
        level = max(level, 4)  # fast batch publish: 2.14
    return level


def set_static_stream_metadata(cfg: StreamConfig) -> StreamConfig:
    """Stored metadata: ``_nats.req.level`` set from the features used, dynamic keys removed."""
    metadata = {
        k: v for k, v in cfg.metadata.items() if k not in (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)
    }
    metadata[REQUIRED_LEVEL_KEY] = str(_required_api_level(cfg))
    return msgspec.structs.replace(cfg, metadata=metadata)


def set_dynamic_stream_metadata(cfg: StreamConfig, *, version: str, api_level: int) -> StreamConfig:
    """The config as create/update/info answers show it: plus ``_nats.ver`` and ``_nats.level``."""
    metadata = dict(cfg.metadata)
    metadata[SERVER_VERSION_KEY] = version
    metadata[SERVER_LEVEL_KEY] = str(api_level)
    return msgspec.structs.replace(cfg, metadata=metadata)


def copy_stream_metadata(cfg: StreamConfig, prev: StreamConfig) -> StreamConfig:
    """`cfg` with the server-stamped metadata of `prev` (to compare configs regardless of it)."""
    metadata = {
        k: v for k, v in cfg.metadata.items() if k not in (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)
    }
    if REQUIRED_LEVEL_KEY in prev.metadata:
        metadata[REQUIRED_LEVEL_KEY] = prev.metadata[REQUIRED_LEVEL_KEY]
    else:
        metadata.pop(REQUIRED_LEVEL_KEY, None)
    return msgspec.structs.replace(cfg, metadata=metadata)


def _plain(cfg: StreamConfig) -> StreamConfig:
    """A StreamConfig proper (a StreamConfigRequest loses ``pedantic``)."""
    if type(cfg) is StreamConfig:
        return cfg
    return StreamConfig(**{f: getattr(cfg, f) for f in StreamConfig.__struct_fields__})


def same_config(stored: StreamConfig, new: StreamConfig) -> bool:
    """Is a create for an existing stream idempotent? (nats compares the normalised new
    config with the stored one after copying the stored server metadata over)."""
    return _plain(copy_stream_metadata(new, stored)) == _plain(stored)


# -- subjects ------------------------------------------------------------------------------


def _valid_subject(subject: str) -> bool:
    return is_valid_subject(subject.encode())


def _collide(a: str, b: str) -> bool:
    return a == b or subjects_overlap(a.encode(), b.encode())


def _is_subset_match(subject: str, test: str) -> bool:
    return subject_is_subset_match(subject.encode(), test.encode())


def _check_subjects(cfg: StreamConfig) -> None:
    seen: set[str] = set()
    subjects = cfg.subjects
    for i, subj in enumerate(subjects):
        if not _valid_subject(subj):
            raise _invalid("invalid subject")
        if subj in seen:
            raise _invalid("duplicate subjects detected")
        if subj == ">":
            if not cfg.no_ack:
                raise _invalid("capturing all subjects requires no-ack to be true")
            if cfg.num_replicas != 1:
                raise _invalid("capturing all subjects requires replicas of 1")
        if not cfg.no_ack:
            for namespace in ("$JS.>", "$JSC.>", "$NRG.>"):
                # Streams on $JS.EVENT.> may exist from before this rule.
                if _collide(subj, namespace) and not _is_subset_match(subj, "$JS.EVENT.>"):
                    raise _invalid(
                        "subjects that overlap with jetstream api require no-ack to be true"
                    )
            if _collide(subj, "$SYS.>") and not _is_subset_match(subj, "$SYS.ACCOUNT.>"):
                raise _invalid("subjects that overlap with system api require no-ack to be true")
        for other in subjects[i + 1 :]:
            if _collide(other, subj):
                raise _invalid(f"subject {go_quote(subj)} overlaps with {go_quote(other)}")
        seen.add(subj)


# -- mirrors and sources (structure only; sourcing itself is later work) -------------------


def _compose_iname(src: StreamSource) -> str:
    # nats composeIName: what makes two sources "the same" (hashes replaced by the values).
    name = src.name
    if src.external is not None:
        name += ":" + src.external.api
    if src.consumer is not None:
        name += ":C=" + src.consumer.name
    transforms = src.subject_transforms
    if not transforms:
        source = src.filter_subject or ">"
        destination = ">"
    else:
        source = "\f".join(t.src or ">" for t in transforms)
        destination = "\f".join(t.dest or ">" for t in transforms)
    return " ".join((name, source, destination))


def _check_mirror(
    cfg: StreamConfig, streams: Mapping[str, StreamConfig], pedantic: bool
) -> StreamConfig:
    mirror = cfg.mirror
    assert mirror is not None
    if cfg.first_seq > 0:
        raise ApiError.of(e.JSMirrorWithFirstSeqErr)
    if cfg.subjects:
        raise ApiError.of(e.JSMirrorWithSubjectsErr)
    if cfg.sources:
        raise ApiError.of(e.JSMirrorWithSourcesErr)
    if cfg.allow_msg_counter:
        raise ApiError.of(e.JSMirrorWithCountersErr)
    if cfg.allow_atomic:
        raise ApiError.of(e.JSMirrorWithAtomicPublishErr)
    if cfg.allow_batched:
        raise ApiError.of(e.JSMirrorWithBatchPublishErr)
    if cfg.allow_msg_schedules:
        raise ApiError.of(e.JSMirrorWithMsgSchedulesErr)
    consumer = mirror.consumer
    if consumer is not None and (
        not is_valid_asset_name(consumer.name)
        or not is_valid_literal_subject(consumer.deliver_subject.encode())
        or mirror.opt_start_seq != 0
        or mirror.opt_start_time is not None
        or mirror.filter_subject
    ):
        raise ApiError.of(e.JSMirrorDurableConsumerCfgInvalid)
    if mirror.filter_subject and mirror.subject_transforms:
        raise ApiError.of(e.JSMirrorMultipleFiltersNotAllowed)
    if cfg.subject_delete_marker_ttl > 0:
        raise _invalid("subject delete markers forbidden on mirrors")
    transforms = mirror.subject_transforms
    for i, tr in enumerate(transforms):
        if tr.src and not _valid_subject(tr.src):
            raise ApiError.of(e.JSMirrorInvalidSubjectFilter, err=f"invalid subject {tr.src}")
        for j, other in enumerate(transforms):
            if i != j and _collide(tr.src, other.src):
                raise ApiError.of(e.JSMirrorOverlappingSubjectFilters)
    if mirror.external is None:
        if not is_valid_asset_name(mirror.name):
            raise ApiError.of(e.JSMirrorInvalidStreamName)
        origin = streams.get(mirror.name)
        if origin is not None:
            if 0 < cfg.max_msg_size < origin.max_msg_size:
                raise ApiError.of(e.JSMirrorMaxMessageSizeTooBigErr)
            if pedantic and cfg.mirror_direct != origin.allow_direct:
                raise _pedantic("origin stream has direct get set, mirror has it disabled")
            cfg = msgspec.structs.replace(cfg, mirror_direct=origin.allow_direct)
    return cfg


def _check_sources(cfg: StreamConfig, streams: Mapping[str, StreamConfig]) -> None:
    if cfg.sources and cfg.allow_msg_schedules:
        raise ApiError.of(e.JSSourceWithMsgSchedulesErr)
    inames: set[str] = set()
    cnames: set[str] = set()
    for src in cfg.sources:
        if not is_valid_asset_name(src.name):
            raise ApiError.of(e.JSSourceInvalidStreamName)
        iname = _compose_iname(src)
        if iname in inames:
            raise ApiError.of(e.JSSourceDuplicateDetected)
        inames.add(iname)
        if src.filter_subject and src.subject_transforms:
            raise ApiError.of(e.JSSourceMultipleFiltersNotAllowed)
        for tr in src.subject_transforms:
            if tr.src and not _valid_subject(tr.src):
                raise ApiError.of(e.JSSourceInvalidSubjectFilter, err=f"invalid subject {tr.src}")
        for i, tr in enumerate(src.subject_transforms):
            for j, other in enumerate(src.subject_transforms):
                if i != j and _is_subset_match(tr.src, other.src):
                    raise ApiError.of(e.JSSourceOverlappingSubjectFilters)
        consumer = src.consumer
        if consumer is not None:
            if (
                not is_valid_asset_name(consumer.name)
                or not is_valid_literal_subject(consumer.deliver_subject.encode())
                or src.opt_start_seq != 0
                or src.opt_start_time is not None
                or src.filter_subject
            ):
                raise ApiError.of(e.JSSourceDurableConsumerCfgInvalid)
            cname = (
                src.name + (":" + src.external.api if src.external else "") + " " + consumer.name
            )
            if cname in cnames:
                raise ApiError.of(e.JSSourceDurableConsumerDuplicateDetected)
            cnames.add(cname)
        if src.external is None:
            origin = streams.get(src.name)
            if origin is not None and 0 < cfg.max_msg_size < origin.max_msg_size:
                raise ApiError.of(e.JSSourceMaxMessageSizeTooBigErr)


def _check_external_prefixes(cfg: StreamConfig, streams: Mapping[str, StreamConfig]) -> None:
    stream_subjects: list[str] = []
    deliver_prefixes: list[str] = []
    api_prefixes: list[str] = []
    origins = [cfg.mirror] if cfg.mirror is not None else []
    for src in [*origins, *cfg.sources]:
        if src.external is None:
            origin = streams.get(src.name)
            if origin is not None:
                stream_subjects.extend(origin.subjects)
            continue
        if src.external.deliver:
            deliver_prefixes.append(src.external.deliver)
        if src.external.api:
            api_prefixes.append(src.external.api)
    for prefix in deliver_prefixes:
        if not is_valid_literal_subject(prefix.encode()):
            raise ApiError.of(e.JSStreamInvalidExternalDeliverySubjErrF, prefix=prefix)
        for subj in stream_subjects:
            if _collide(subj, f"{prefix}.{subj}"):
                raise ApiError.of(
                    e.JSStreamExternalDelPrefixOverlapsErrF, prefix=prefix, subject=subj
                )
    for prefix in api_prefixes:
        if not is_valid_literal_subject(prefix.encode()):
            quoted = go_quote(prefix)
            raise _invalid(
                f"stream external api prefix {quoted} must be a valid subject without wildcards"
            )
        if _collide(prefix, "$JS.API"):
            raise ApiError.of(e.JSStreamExternalApiOverlapErrF, prefix=prefix, subject="$JS.API")


def _check_cycles(cfg: StreamConfig, streams: Mapping[str, StreamConfig]) -> None:
    to_visit = [cfg]
    visited: set[str] = set()
    while to_visit:
        current = to_visit.pop(0)
        visited.add(current.name)
        for src in current.sources:
            if src.external is not None:
                continue
            if src.name in visited:
                if not src.filter_subject or any(
                    _collide(s, src.filter_subject) for s in current.subjects
                ):
                    raise _invalid("detected cycle")
            elif src.name in streams:
                to_visit.append(streams[src.name])
        mirror = current.mirror
        if mirror is not None and mirror.external is None:
            if mirror.name in visited:
                raise _invalid("detected cycle")
            if mirror.name in streams:
                to_visit.append(streams[mirror.name])


# -- the configuration ---------------------------------------------------------------------


def _limit(value: int, field: str, pedantic: bool) -> int:
    # 0 and anything below -1 mean "unlimited" (-1); pedantic refuses the latter.
    if value == 0 or value < -1:
        if pedantic and value < -1:
            raise _pedantic(f"{field} must be set to -1")
        return -1
    return value


def check_stream_cfg(
    cfg: StreamConfig,
    *,
    pedantic: bool = False,
    streams: Mapping[str, StreamConfig] | None = None,
) -> StreamConfig:
    """nats checkStreamCfg: the config with server defaults filled in, or ApiError.

    `streams` are the account's other streams by name, consulted for mirrors and sources
    (origin limits, direct get inheritance, cycles). Overlap with their subjects is not
    checked here (see `check_stream_config`), nor is the single-server replica limit.
    """
    streams = streams or {}
    check_stream_name(cfg.name)
    if _size(cfg.description) > MAX_DESCRIPTION_LEN:
        raise _invalid(f"stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")
    if sum(_size(k) + _size(v) for k, v in cfg.metadata.items()) > MAX_METADATA_LEN:
        raise _invalid(f"stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")
    if cfg.retention not in ("limits", "interest", "workqueue"):
        raise _invalid("invalid retention")
    if cfg.discard not in ("old", "new"):
        raise _invalid("invalid discard policy")
    if cfg.compression not in ("none", "s2"):
        raise _invalid("invalid compression")
    storage = cfg.storage or "file"
    if storage not in ("file", "memory"):
        raise _invalid("invalid storage type")
    replicas = cfg.num_replicas or 1
    if replicas > MAX_REPLICAS:
        raise _invalid(f"maximum replicas is {MAX_REPLICAS}")
    if replicas < 0:
        raise ApiError.of(e.JSReplicasCountCannotBeNegative)
    max_msgs = _limit(cfg.max_msgs, "max_msgs", pedantic)
    max_msgs_per_subject = _limit(cfg.max_msgs_per_subject, "max_msgs_per_subject", pedantic)
    max_bytes = _limit(cfg.max_bytes, "max_bytes", pedantic)
    max_msg_size = _limit(cfg.max_msg_size, "max_msg_size", pedantic)
    max_consumers = _limit(cfg.max_consumers, "max_consumers", pedantic)
    max_age = cfg.max_age
    if max_age < 0:
        raise _invalid("max age can not be negative")
    if 0 < max_age < 100 * _MS:
        raise _invalid("max age needs to be >= 100ms")
    duplicates = cfg.duplicate_window
    if duplicates == 0 and cfg.mirror is None and not cfg.sources:
        if max_age != 0 and max_age < DEFAULT_DUPLICATE_WINDOW:
            if pedantic:
                raise _pedantic("duplicate window cannot be bigger than max age")
            duplicates = max_age
        else:
            duplicates = DEFAULT_DUPLICATE_WINDOW
    if duplicates < 0:
        raise _invalid("duplicates window can not be negative")
    if max_age != 0 and duplicates > max_age:
        raise _invalid("duplicates window can not be larger then max age")
    if 0 < duplicates < 100 * _MS:
        raise _invalid("duplicates window needs to be >= 100ms")
    allow_rollup, deny_purge, allow_msg_ttl = (
        cfg.allow_rollup_hdrs,
        cfg.deny_purge,
        cfg.allow_msg_ttl,
    )
    if deny_purge and allow_rollup:
        raise _invalid("roll-ups require the purge permission")
    if cfg.allow_msg_counter:
        if cfg.discard == "new":
            raise _invalid("counter stream cannot use discard new")
        if allow_msg_ttl:
            raise _invalid("counter stream cannot use message TTLs")
        if cfg.allow_msg_schedules:
            raise _invalid("counter stream cannot use message schedules")
        if cfg.retention != "limits":
            raise _invalid("counter stream can only use limits retention")
    if cfg.discard_new_per_subject:
        if cfg.discard != "new":
            raise _invalid("discard new per subject requires discard new policy to be set")
        if max_msgs_per_subject <= 0:
            raise _invalid("discard new per subject requires max msgs per subject > 0")
    marker_ttl = cfg.subject_delete_marker_ttl
    if marker_ttl > 0:
        if marker_ttl < _SECOND:
            raise _invalid("subject delete marker TTL must be at least 1 second")
        if not allow_msg_ttl:
            if pedantic:
                raise _invalid("subject delete marker cannot be set if message TTLs are disabled")
            allow_msg_ttl = True
        if not allow_rollup:
            if pedantic:
                raise _invalid("subject delete marker cannot be set if roll-ups are disabled")
            allow_rollup, deny_purge = True, False
    elif marker_ttl < 0:
        raise _invalid("subject delete marker TTL must not be negative")
    if cfg.allow_msg_schedules:
        if cfg.discard == "new":
            raise _invalid("message scheduling cannot use discard new")
        if not allow_rollup:
            if pedantic:
                raise _invalid("message scheduling cannot be set if roll-ups are disabled")
            allow_rollup, deny_purge = True, False
    if cfg.persist_mode == "async":
        if storage != "file":
            raise _invalid("async persist mode is only supported on file storage")
        if replicas > 1:
            raise _invalid("async persist mode is not supported on replicated streams")
        if cfg.allow_atomic:
            raise _invalid("async persist mode is not supported with atomic batch publish")

    out = msgspec.structs.replace(
        _plain(cfg),
        storage=storage,
        num_replicas=replicas,
        max_msgs=max_msgs,
        max_msgs_per_subject=max_msgs_per_subject,
        max_bytes=max_bytes,
        max_msg_size=max_msg_size,
        max_consumers=max_consumers,
        duplicate_window=duplicates,
        allow_rollup_hdrs=allow_rollup,
        deny_purge=deny_purge,
        allow_msg_ttl=allow_msg_ttl,
    )
    if out.mirror is not None:
        out = _check_mirror(out, streams, pedantic)
    _check_sources(out, streams)
    _check_external_prefixes(out, streams)
    _check_cycles(out, streams)

    if not out.subjects:
        if out.mirror is None and not out.sources:
            out = msgspec.structs.replace(out, subjects=[out.name])
    else:
        if out.mirror is not None:
            raise ApiError.of(e.JSMirrorWithSubjectsErr)
        _check_subjects(out)
    if not out.subjects and not out.sources and out.mirror is None:
        raise _invalid("stream needs at least one configured subject or be a source/mirror")

    transform = out.subject_transform
    if transform is not None and transform.src and not _valid_subject(transform.src):
        raise ApiError.of(e.JSStreamTransformInvalidSource, err=f"invalid subject {transform.src}")

    republish = out.republish
    if republish is not None:
        src, dest = republish.src, republish.dest
        if not src:
            if pedantic:
                raise _pedantic("republish source can not be empty")
            src = ">"
        if (
            dest == ">"
            and src == ">"
            and transform is not None
            and len(out.subjects) == 1
            and transform.src == out.subjects[0]
        ):
            # An implicit republish of the transformed subjects.
            if pedantic:
                raise _pedantic("implicit republish based on subject transform")
            src = dest = transform.dest
        if any(_collide(dest, subj) for subj in out.subjects):
            raise _invalid("stream configuration for republish destination forms a cycle")
        out = msgspec.structs.replace(
            out, republish=msgspec.structs.replace(republish, src=src, dest=dest)
        )

    placement = out.placement
    if placement is not None:
        if placement == Placement():
            out = msgspec.structs.replace(out, placement=None)
        elif placement.preferred:
            raise _invalid("preferred server not permitted in placement")
    return out


def _check_replicas(cfg: StreamConfig) -> None:
    # This is a single server: streams are R1 (R0 was turned into R1 above).
    if cfg.num_replicas > 1:
        raise ApiError.of(e.JSStreamReplicasNotSupportedErr)


def _check_overlap(cfg: StreamConfig, existing: Mapping[str, StreamConfig]) -> None:
    for name, other in existing.items():
        if name == cfg.name:
            continue
        for subj in other.subjects:
            if any(_collide(mine, subj) for mine in cfg.subjects):
                raise ApiError.of(e.JSStreamSubjectOverlapErr)


def check_stream_config(
    cfg: StreamConfig,
    *,
    max_payload: int = 0,
    existing: Mapping[str, StreamConfig] | None = None,
    pedantic: bool = False,
) -> StreamConfig:
    """STREAM.CREATE's config checks from normalisation on, in nats order.

    Returns the config to store: server defaults filled, ``_nats.req.level`` set. Raises:
    10052/10133/10157 (`check_stream_cfg`), 10074 (replicas > 1 on a single server),
    10058 if `existing` holds a stream of this name with a different config (an equal one
    is an idempotent create: the stored config is returned), 10065 if the subjects
    collide with another stream's.

    `existing` is the account's streams by name; passing the stream itself too lets the
    name check come before the overlap check, as in nats. `max_payload` is accepted for
    the API layer's convenience but not checked: nats-server 2.15 accepts
    ``max_msg_size`` above ``max_payload`` at create time (verified) and enforces the
    payload limit per message. The account limits are the caller's.
    """
    del max_payload
    existing = existing or {}
    if hasattr(cfg, "pedantic"):  # a StreamConfigRequest
        pedantic = pedantic or bool(cfg.pedantic)
    cfg = set_static_stream_metadata(cfg)
    out = check_stream_cfg(cfg, pedantic=pedantic, streams=existing)
    _check_replicas(out)
    stored = existing.get(out.name)
    if stored is not None:
        if same_config(stored, out):
            return stored
        raise ApiError.of(e.JSStreamNameExistErr)
    _check_overlap(out, existing)
    return out


def check_stream_update(
    old: StreamConfig,
    new: StreamConfig,
    *,
    max_payload: int = 0,
    existing: Mapping[str, StreamConfig] | None = None,
    pedantic: bool = False,
    consumers: Iterable[tuple[str, int, int]] = (),
) -> StreamConfig:
    """STREAM.UPDATE's checks (nats configUpdateCheck and stream.update), in nats order.

    `old` is the stored config, `new` the decoded request. Returns the config to store
    (normalised, sealing applied, ``_nats.req.level`` set). `consumers` are the stream's
    consumers as ``(name, inactive_threshold, max_ack_pending)``: raising the stream's
    consumer limits below one of theirs fails with 10069. Overlap with the account's
    other streams in `existing` fails with 10065. `max_payload` is not checked (see
    `check_stream_config`).
    """
    del max_payload
    existing = existing or {}
    if hasattr(new, "pedantic"):  # a StreamConfigRequest
        pedantic = pedantic or bool(new.pedantic)
    cfg = check_stream_cfg(set_static_stream_metadata(new), pedantic=pedantic, streams=existing)
    if cfg.name != old.name:
        raise _invalid("stream configuration name must match original")
    _check_replicas(cfg)
    if cfg.storage != old.storage:
        raise _invalid("stream configuration update can not change storage type")
    if cfg.retention != old.retention and "workqueue" in (cfg.retention, old.retention):
        raise _invalid(
            "stream configuration update can not change retention policy to/from workqueue"
        )
    if old.sealed and not cfg.sealed:
        raise _invalid("stream configuration update can not unseal a sealed stream")
    if old.deny_delete and not cfg.deny_delete:
        raise _invalid("stream configuration update can not cancel deny message deletes")
    if old.deny_purge and not cfg.deny_purge:
        raise _invalid("stream configuration update can not cancel deny purge")
    # Removing the mirror promotes a mirror to a normal stream; changing it is refused.
    if cfg.mirror is not None and cfg.mirror != old.mirror:
        raise ApiError.of(e.JSStreamMirrorNotUpdatableErr)
    if cfg.discard_new_per_subject:
        if cfg.discard != "new":
            raise _invalid("discard new per subject requires discard new policy to be set")
        if cfg.max_msgs_per_subject <= 0:
            raise _invalid("discard new per subject requires max msgs per subject > 0")
    if old.allow_msg_ttl and not cfg.allow_msg_ttl:
        raise _invalid("message TTL status can not be disabled")
    if cfg.allow_msg_counter != old.allow_msg_counter:
        raise _invalid("stream configuration update can not change message counter setting")
    if old.allow_msg_schedules and not cfg.allow_msg_schedules:
        raise _invalid("message schedules can not be disabled")
    if old.persist_mode != cfg.persist_mode:
        raise _invalid("stream configuration update can not change persist mode")
    if cfg.sealed:
        cfg = msgspec.structs.replace(
            cfg,
            max_age=0,
            discard="new",
            deny_delete=True,
            deny_purge=True,
            allow_rollup_hdrs=False,
        )
    _check_consumer_limits(old, cfg, consumers)
    _check_overlap(cfg, {n: c for n, c in existing.items() if n != old.name})
    return cfg


def _check_consumer_limits(
    old: StreamConfig, cfg: StreamConfig, consumers: Iterable[tuple[str, int, int]]
) -> None:
    new_inactive = cfg.consumer_limits.inactive_threshold
    new_pending = cfg.consumer_limits.max_ack_pending
    changed = (new_inactive > 0 and new_inactive != old.consumer_limits.inactive_threshold) or (
        new_pending > 0 and new_pending != old.consumer_limits.max_ack_pending
    )
    if not changed:
        return
    violating = [
        name
        for name, inactive, pending in consumers
        if (new_inactive > 0 and inactive > new_inactive)
        or (new_pending > 0 and pending > new_pending)
    ]
    if violating:
        raise ApiError.of(
            e.JSStreamUpdateErrF, err="change to limits violates consumers: " + ", ".join(violating)
        )


# -- request checks ------------------------------------------------------------------------


def check_msg_get_request(req: MsgGetRequest) -> None:
    """STREAM.MSG.GET: no batching, and one consistent selector (else 10003 bad request)."""
    if req.batch > 0 or req.max_bytes > 0:
        raise ApiError.of(e.JSBadRequestErr)
    has_time = req.start_time is not None
    if (
        (req.seq > 0 and req.last_by_subj)
        or (req.seq == 0 and not req.last_by_subj and not req.next_by_subj and not has_time)
        or (req.seq > 0 and has_time)
        or (has_time and req.last_by_subj)
        or (req.last_by_subj and req.next_by_subj)
    ):
        raise ApiError.of(e.JSBadRequestErr)


def check_purge_request(req: StreamPurgeRequest) -> None:
    """STREAM.PURGE: ``seq`` and ``keep`` together are a bad request (10003)."""
    if req.seq > 0 and req.keep > 0:
        raise ApiError.of(e.JSBadRequestErr)


# =============================================================================================
# Consumers: create subjects, server defaults, validation, create-vs-existing, MSG.NEXT
# =============================================================================================
# In nats-server's order: jsConsumerCreateRequest (server/jetstream_api.go) checks the
# subject against the body (`check_consumer_request`); the caller looks the stream up
# (10059); addConsumerWithAssignment (server/consumer.go) applies
# setConsumerConfigDefaults and checkConsumerCfg, then the existing-consumer, limit and
# workqueue rules (`add_consumer_config`). `check_consumer_create` runs all of it.
#
# Not modelled: clustering, sourcing/direct consumers created by streams (the API's
# interest-stream upgrade and stream identity header), replacement of a bound push durable
# (10105/10106: unreachable through the API on one server), the 423 pin-id mismatch of a
# pull request (consumer state).

ACK_WAIT_DEFAULT = 30 * _SECOND  # JsAckWaitDefault
DELETE_WAIT_TIME_DEFAULT = 5 * _SECOND  # JsDeleteWaitTimeDefault: ephemeral inactive threshold
MAX_ACK_PENDING_DEFAULT = 1000  # JsDefaultMaxAckPending
WAIT_QUEUE_DEFAULT_MAX = 512  # JSWaitQueueDefaultMax: pull max_waiting
PINNED_TTL_DEFAULT = 120 * _SECOND  # JsDefaultPinnedTTL
SOURCE_HEALTH_HB = _SECOND  # sourceHealthHB: heartbeat of flow-control-acked consumers
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


# -- metadata ------------------------------------------------------------------------------


def _consumer_required_level(cfg: ConsumerConfig) -> int:
    level = 0
    if cfg.pause_until is not None and parse_time(cfg.pause_until) != 0:
        level = 1  # pause: 2.11
    if cfg.priority_policy != "none" or cfg.priority_timeout != 0 or cfg.priority_groups:
        level = 1  # priority groups: 2.11
    if cfg.ack_policy == "flow_control":
        level = 4  # flow-control acks: 2.14
    return level


def set_static_consumer_metadata(cfg: ConsumerConfig) -> ConsumerConfig:
    """Stored metadata: ``_nats.req.level`` from the features used, dynamic keys removed."""
    metadata = {
        k: v for k, v in cfg.metadata.items() if k not in (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)
    }
    metadata[REQUIRED_LEVEL_KEY] = str(_consumer_required_level(cfg))
    return msgspec.structs.replace(cfg, metadata=metadata)


def set_dynamic_consumer_metadata(
    cfg: ConsumerConfig, *, version: str, api_level: int
) -> ConsumerConfig:
    """The config as create/info answers show it: plus ``_nats.ver`` and ``_nats.level``."""
    metadata = dict(cfg.metadata)
    metadata[SERVER_VERSION_KEY] = version
    metadata[SERVER_LEVEL_KEY] = str(api_level)
    return msgspec.structs.replace(cfg, metadata=metadata)


def copy_consumer_metadata(cfg: ConsumerConfig, prev: ConsumerConfig) -> ConsumerConfig:
    """`cfg` with the stored ``_nats.req.level`` of `prev` (to compare configs)."""
    metadata = {
        k: v for k, v in cfg.metadata.items() if k not in (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)
    }
    if REQUIRED_LEVEL_KEY in prev.metadata:
        metadata[REQUIRED_LEVEL_KEY] = prev.metadata[REQUIRED_LEVEL_KEY]
    else:
        metadata.pop(REQUIRED_LEVEL_KEY, None)
    return msgspec.structs.replace(cfg, metadata=metadata)


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
            raise _pedantic("max_deliver must be set to -1")
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
            raise _pedantic("max_waiting must not be negative")
        values["max_waiting"] = 0
    if values["max_ack_pending"] < -1:
        if pedantic:
            raise _pedantic("max_ack_pending must be set to -1")
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
                raise _pedantic(f"{field} must not be negative")
            values[field] = 0
    pull = not cfg.deliver_subject
    if pull and values["max_waiting"] == 0:
        values["max_waiting"] = WAIT_QUEUE_DEFAULT_MAX
    ack_wait = cfg.ack_wait
    if ack_wait == 0 and cfg.ack_policy in ("explicit", "all"):
        ack_wait = ACK_WAIT_DEFAULT
    if cfg.backoff:
        if pedantic and ack_wait != cfg.backoff[0]:
            raise _pedantic("first backoff value has to equal batch AckWait")
        ack_wait = cfg.backoff[0]
    stream_limits = stream.consumer_limits
    if values["max_ack_pending"] == 0:
        if pedantic and stream_limits.max_ack_pending > 0:
            raise _pedantic("max_ack_pending must be set if it's configured in stream limits")
        values["max_ack_pending"] = stream_limits.max_ack_pending
    if values["inactive_threshold"] == 0:
        if pedantic and stream_limits.inactive_threshold > 0:
            raise _pedantic("inactive_threshold must be set if it's configured in stream limits")
        values["inactive_threshold"] = stream_limits.inactive_threshold
    if values["max_ack_pending"] == 0 and cfg.ack_policy != "none":
        pending = MAX_ACK_PENDING_DEFAULT
        for limit in (limits.max_ack_pending, limits.account_max_ack_pending):
            if 0 < limit < pending:
                pending = limit
        values["max_ack_pending"] = pending
    if pull and values["max_batch"] == 0 and limits.max_request_batch > 0:
        if pedantic:
            raise _pedantic("max_request_batch must be set if it's JetStream limits are set")
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


def _go_atoi_error(text: str) -> str | None:
    """The error ``strconv.Atoi(text)`` returns (None when it parses)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax"
    if not -(1 << 63) <= int(text) < (1 << 63):
        return f"strconv.Atoi: parsing {go_quote(text)}: value out of range"
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
        raise _invalid(_CONSUMER_NAME_CHARS)
    if cfg.durable_name and not is_valid_asset_name(cfg.durable_name):
        raise _invalid("consumer durable name can not contain '.', '*', '>', '\\', '/'")
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
            raise _invalid("flow control ack policy heartbeat needs to be 1s")
        if cfg.max_ack_pending <= 0:
            raise ApiError.of(e.JSConsumerAckFCRequiresMaxAckPendingErr)
        if cfg.ack_wait != 0 or backoff:
            raise ApiError.of(e.JSConsumerAckFCRequiresNoAckWaitErr)
        if cfg.max_deliver > 0:
            raise ApiError.of(e.JSConsumerAckFCRequiresNoMaxDeliverErr)
    if backoff and cfg.max_deliver != -1 and len(backoff) > cfg.max_deliver:
        raise ApiError.of(e.JSConsumerMaxDeliverBackoffErr)
    if _size(cfg.description) > MAX_DESCRIPTION_LEN:
        raise ApiError.of(e.JSConsumerDescriptionTooLongErrF, max=MAX_DESCRIPTION_LEN)
    if push:
        deliver = cfg.deliver_subject
        if not _subject_is_literal(deliver):
            raise ApiError.of(e.JSConsumerDeliverToWildcardsErr)
        if not _valid_subject(deliver):
            raise ApiError.of(e.JSConsumerInvalidDeliverSubject)
        if any(_is_subset_match(deliver, subj) for subj in stream.subjects):
            raise ApiError.of(e.JSConsumerDeliverCycleErr)
        if cfg.max_waiting != 0:
            raise ApiError.of(e.JSConsumerPushMaxWaitingErr)
        if cfg.max_ack_pending > 0 and cfg.ack_policy == "none":
            raise ApiError.of(e.JSConsumerMaxPendingAckPolicyRequiredErr)
        if 0 < cfg.idle_heartbeat < 100 * _MS:
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
        if cfg.max_expires != 0 and cfg.max_expires < _MS:
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
    if cfg.filter_subject and not _valid_subject(cfg.filter_subject):
        raise _invalid("invalid subject")
    if any(not f for f in cfg.filter_subjects or []):
        raise ApiError.of(e.JSConsumerEmptyFilter)
    filters = _filters(cfg)
    for i, subj in enumerate(filters):
        if not _valid_subject(subj):
            raise _invalid("invalid subject")
        for j, other in enumerate(filters):
            if i != j and _is_subset_match(subj, other):
                raise ApiError.of(e.JSConsumerOverlappingSubjectFilters)
    _check_deliver_policy(cfg)
    if cfg.sample_freq:
        text = cfg.sample_freq.removesuffix("%")
        err = _go_atoi_error(text)
        if err is not None or int(text) < 0:
            raise ApiError.of(e.JSConsumerInvalidSamplingErrF, err=err or "<nil>")
    if cfg.flow_control and cfg.idle_heartbeat == 0:
        raise ApiError.of(e.JSConsumerWithFlowControlNeedsHeartbeats)
    if cfg.durable_name and cfg.name and cfg.name != cfg.durable_name:
        raise ApiError.of(e.JSConsumerCreateDurableAndNameMismatch)
    if sum(_size(k) + _size(v) for k, v in cfg.metadata.items()) > MAX_METADATA_LEN:
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
        raise _invalid("preferred server not permitted in placement")


# -- updates (checkNewConsumerConfig) -------------------------------------------------------


def _same_time(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return parse_time(a) == parse_time(b)


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
        changes["pause_until"] = format_time(parse_time(new.pause_until))
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
            if not others or any(_collide(subj, o) for o in others):
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
        if action == "create" and copy_consumer_metadata(cfg, stored) != stored:
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
        if _size(cfg.durable_name) > MAX_NAME_LEN:
            raise ApiError.of(e.JSConsumerNameTooLongErrF, max=MAX_NAME_LEN)
    elif not cfg.name:
        # The generated name is the consumer's, not written into its config (verified:
        # the answer's "config" of a nameless legacy ephemeral has no "name").
        name = create_consumer_name()
        while name in existing:
            name = create_consumer_name()
    if not is_valid_asset_name(name):
        raise ApiError.of(e.JSConsumerBadDurableNameErr)
    if stream.storage == "file" and not cfg.mem_storage and not cfg.direct and _size(name) > 255:
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
    cfg = set_static_consumer_metadata(cfg)
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
