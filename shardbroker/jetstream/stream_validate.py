"""Stream configuration rules: server defaults, validation, create and update checks.

Owner: pure functions, imported by the storage process's API layer and by tests. No I/O.
The stream half of the config checks (`consumer_validate` is the consumer half, `checks`
what both use, `versioning` the API-level metadata of both).

The checks run in nats-server's order (``checkStreamCfg``, ``addStream``,
``configUpdateCheck`` in server/stream.go and the create/update handlers in
server/jetstream_api.go), so the first failure is the one nats-server reports, with its
exact text. Inputs are never modified: every function returns a new StreamConfig.

Not modelled (later work): subject-transform mapping functions (only a transform's source
subject is checked), account limits (max streams, reserved bytes; the caller checks them)
and the server limit on duplicate windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from shardbroker.config.options import AccountJetStream
from shardbroker.gofmt.quote import go_quote
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
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.jetstream.schema import (
    MsgGetRequest,
    Placement,
    StreamConfig,
    StreamPurgeRequest,
    StreamSource,
)
from shardbroker.jetstream.versioning import copy_metadata, set_static_metadata
from shardbroker.protocol.subjects import is_valid_literal_subject

MAX_REPLICAS = 5  # StreamMaxReplicas
DEFAULT_DUPLICATE_WINDOW = 120_000_000_000  # StreamDefaultDuplicatesWindow, 2 min in ns


# -- names ---------------------------------------------------------------------------------


def check_stream_name(name: str) -> None:
    """The name rules of a stream config (10052), as checkStreamCfg applies them."""
    if not is_valid_asset_name(name):
        raise invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")
    if byte_len(name) > MAX_NAME_LEN:
        raise invalid(f"stream name is too long, maximum allowed is {MAX_NAME_LEN}")


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
        raise invalid("stream configuration for create can not be sealed")
    if cfg.mirror_direct and cfg.mirror is None:
        raise invalid("stream has no mirror but does have mirror direct")


def _plain(cfg: StreamConfig) -> StreamConfig:
    """A StreamConfig proper (a StreamConfigRequest loses ``pedantic``)."""
    if type(cfg) is StreamConfig:
        return cfg
    return StreamConfig(**{f: getattr(cfg, f) for f in StreamConfig.__struct_fields__})


def same_config(stored: StreamConfig, new: StreamConfig) -> bool:
    """Is a create for an existing stream idempotent? (nats compares the normalised new
    config with the stored one after copying the stored server metadata over)."""
    return _plain(copy_metadata(new, stored)) == _plain(stored)


def _check_subjects(cfg: StreamConfig) -> None:
    seen: set[str] = set()
    subjects = cfg.subjects
    for i, subj in enumerate(subjects):
        if not valid_subject(subj):
            raise invalid("invalid subject")
        if subj in seen:
            raise invalid("duplicate subjects detected")
        if subj == ">":
            if not cfg.no_ack:
                raise invalid("capturing all subjects requires no-ack to be true")
            if cfg.num_replicas != 1:
                raise invalid("capturing all subjects requires replicas of 1")
        if not cfg.no_ack:
            for namespace in ("$JS.>", "$JSC.>", "$NRG.>"):
                # Streams on $JS.EVENT.> may exist from before this rule.
                if subjects_collide(subj, namespace) and not is_subset_match(subj, "$JS.EVENT.>"):
                    raise invalid(
                        "subjects that overlap with jetstream api require no-ack to be true"
                    )
            if subjects_collide(subj, "$SYS.>") and not is_subset_match(subj, "$SYS.ACCOUNT.>"):
                raise invalid("subjects that overlap with system api require no-ack to be true")
        for other in subjects[i + 1 :]:
            if subjects_collide(other, subj):
                raise invalid(f"subject {go_quote(subj)} overlaps with {go_quote(other)}")
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
        raise invalid("subject delete markers forbidden on mirrors")
    transforms = mirror.subject_transforms
    for i, tr in enumerate(transforms):
        if tr.src and not valid_subject(tr.src):
            raise ApiError.of(e.JSMirrorInvalidSubjectFilter, err=f"invalid subject {tr.src}")
        for j, other in enumerate(transforms):
            if i != j and subjects_collide(tr.src, other.src):
                raise ApiError.of(e.JSMirrorOverlappingSubjectFilters)
    if mirror.external is None:
        if not is_valid_asset_name(mirror.name):
            raise ApiError.of(e.JSMirrorInvalidStreamName)
        origin = streams.get(mirror.name)
        if origin is not None:
            if 0 < cfg.max_msg_size < origin.max_msg_size:
                raise ApiError.of(e.JSMirrorMaxMessageSizeTooBigErr)
            if pedantic and cfg.mirror_direct != origin.allow_direct:
                raise pedantic_error("origin stream has direct get set, mirror has it disabled")
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
            if tr.src and not valid_subject(tr.src):
                raise ApiError.of(e.JSSourceInvalidSubjectFilter, err=f"invalid subject {tr.src}")
        for i, tr in enumerate(src.subject_transforms):
            for j, other in enumerate(src.subject_transforms):
                if i != j and is_subset_match(tr.src, other.src):
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
            if subjects_collide(subj, f"{prefix}.{subj}"):
                raise ApiError.of(
                    e.JSStreamExternalDelPrefixOverlapsErrF, prefix=prefix, subject=subj
                )
    for prefix in api_prefixes:
        if not is_valid_literal_subject(prefix.encode()):
            quoted = go_quote(prefix)
            raise invalid(
                f"stream external api prefix {quoted} must be a valid subject without wildcards"
            )
        if subjects_collide(prefix, "$JS.API"):
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
                    subjects_collide(s, src.filter_subject) for s in current.subjects
                ):
                    raise invalid("detected cycle")
            elif src.name in streams:
                to_visit.append(streams[src.name])
        mirror = current.mirror
        if mirror is not None and mirror.external is None:
            if mirror.name in visited:
                raise invalid("detected cycle")
            if mirror.name in streams:
                to_visit.append(streams[mirror.name])


# -- the configuration ---------------------------------------------------------------------


def _limit(value: int, field: str, pedantic: bool) -> int:
    # 0 and anything below -1 mean "unlimited" (-1); pedantic refuses the latter.
    if value == 0 or value < -1:
        if pedantic and value < -1:
            raise pedantic_error(f"{field} must be set to -1")
        return -1
    return value


def check_stream_cfg(
    cfg: StreamConfig,
    *,
    pedantic: bool = False,
    streams: Mapping[str, StreamConfig] | None = None,
    account: AccountJetStream | None = None,
) -> StreamConfig:
    """nats checkStreamCfg: the config with server defaults filled in, or ApiError.

    `streams` are the account's other streams by name, consulted for mirrors and sources
    (origin limits, direct get inheritance, cycles). Overlap with their subjects is not
    checked here (see `check_stream_config`), nor is the single-server replica limit.
    `account` holds the account's JetStream limits: max bytes required, and the largest
    max bytes of a stream per storage type.
    """
    streams = streams or {}
    check_stream_name(cfg.name)
    if byte_len(cfg.description) > MAX_DESCRIPTION_LEN:
        raise invalid(f"stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")
    if sum(byte_len(k) + byte_len(v) for k, v in cfg.metadata.items()) > MAX_METADATA_LEN:
        raise invalid(f"stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")
    if cfg.retention not in ("limits", "interest", "workqueue"):
        raise invalid("invalid retention")
    if cfg.discard not in ("old", "new"):
        raise invalid("invalid discard policy")
    if cfg.compression not in ("none", "s2"):
        raise invalid("invalid compression")
    storage = cfg.storage or "file"
    if storage not in ("file", "memory"):
        raise invalid("invalid storage type")
    replicas = cfg.num_replicas or 1
    if replicas > MAX_REPLICAS:
        raise invalid(f"maximum replicas is {MAX_REPLICAS}")
    if replicas < 0:
        raise ApiError.of(e.JSReplicasCountCannotBeNegative)
    max_msgs = _limit(cfg.max_msgs, "max_msgs", pedantic)
    max_msgs_per_subject = _limit(cfg.max_msgs_per_subject, "max_msgs_per_subject", pedantic)
    max_bytes = _limit(cfg.max_bytes, "max_bytes", pedantic)
    max_msg_size = _limit(cfg.max_msg_size, "max_msg_size", pedantic)
    max_consumers = _limit(cfg.max_consumers, "max_consumers", pedantic)
    max_age = cfg.max_age
    if max_age < 0:
        raise invalid("max age can not be negative")
    if 0 < max_age < 100 * MS:
        raise invalid("max age needs to be >= 100ms")
    duplicates = cfg.duplicate_window
    if duplicates == 0 and cfg.mirror is None and not cfg.sources:
        if max_age != 0 and max_age < DEFAULT_DUPLICATE_WINDOW:
            if pedantic:
                raise pedantic_error("duplicate window cannot be bigger than max age")
            duplicates = max_age
        else:
            duplicates = DEFAULT_DUPLICATE_WINDOW
    if duplicates < 0:
        raise invalid("duplicates window can not be negative")
    if max_age != 0 and duplicates > max_age:
        raise invalid("duplicates window can not be larger then max age")
    if 0 < duplicates < 100 * MS:
        raise invalid("duplicates window needs to be >= 100ms")
    allow_rollup, deny_purge, allow_msg_ttl = (
        cfg.allow_rollup_hdrs,
        cfg.deny_purge,
        cfg.allow_msg_ttl,
    )
    if deny_purge and allow_rollup:
        raise invalid("roll-ups require the purge permission")
    if cfg.allow_msg_counter:
        if cfg.discard == "new":
            raise invalid("counter stream cannot use discard new")
        if allow_msg_ttl:
            raise invalid("counter stream cannot use message TTLs")
        if cfg.allow_msg_schedules:
            raise invalid("counter stream cannot use message schedules")
        if cfg.retention != "limits":
            raise invalid("counter stream can only use limits retention")
    if cfg.discard_new_per_subject:
        if cfg.discard != "new":
            raise invalid("discard new per subject requires discard new policy to be set")
        if max_msgs_per_subject <= 0:
            raise invalid("discard new per subject requires max msgs per subject > 0")
    marker_ttl = cfg.subject_delete_marker_ttl
    if marker_ttl > 0:
        if marker_ttl < SECOND:
            raise invalid("subject delete marker TTL must be at least 1 second")
        if not allow_msg_ttl:
            if pedantic:
                raise invalid("subject delete marker cannot be set if message TTLs are disabled")
            allow_msg_ttl = True
        if not allow_rollup:
            if pedantic:
                raise invalid("subject delete marker cannot be set if roll-ups are disabled")
            allow_rollup, deny_purge = True, False
    elif marker_ttl < 0:
        raise invalid("subject delete marker TTL must not be negative")
    if cfg.allow_msg_schedules:
        if cfg.discard == "new":
            raise invalid("message scheduling cannot use discard new")
        if not allow_rollup:
            if pedantic:
                raise invalid("message scheduling cannot be set if roll-ups are disabled")
            allow_rollup, deny_purge = True, False
    if cfg.persist_mode == "async":
        if storage != "file":
            raise invalid("async persist mode is only supported on file storage")
        if replicas > 1:
            raise invalid("async persist mode is not supported on replicated streams")
        if cfg.allow_atomic:
            raise invalid("async persist mode is not supported with atomic batch publish")

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
        raise invalid("stream needs at least one configured subject or be a source/mirror")
    if account is not None:
        # nats maxBytesLimits: both are independent of each other.
        if out.storage == "memory":
            limit = account.memory_max_stream_bytes
        else:
            limit = account.store_max_stream_bytes
        if account.max_bytes_required and out.max_bytes <= 0:
            raise ApiError.of(e.JSStreamMaxBytesRequired)
        if limit > 0 and out.max_bytes > limit:
            raise ApiError.of(e.JSStreamMaxStreamBytesExceeded)

    transform = out.subject_transform
    if transform is not None and transform.src and not valid_subject(transform.src):
        raise ApiError.of(e.JSStreamTransformInvalidSource, err=f"invalid subject {transform.src}")

    republish = out.republish
    if republish is not None:
        src, dest = republish.src, republish.dest
        if not src:
            if pedantic:
                raise pedantic_error("republish source can not be empty")
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
                raise pedantic_error("implicit republish based on subject transform")
            src = dest = transform.dest
        if any(subjects_collide(dest, subj) for subj in out.subjects):
            raise invalid("stream configuration for republish destination forms a cycle")
        out = msgspec.structs.replace(
            out, republish=msgspec.structs.replace(republish, src=src, dest=dest)
        )

    placement = out.placement
    if placement is not None:
        if placement == Placement():
            out = msgspec.structs.replace(out, placement=None)
        elif placement.preferred:
            raise invalid("preferred server not permitted in placement")
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
            if any(subjects_collide(mine, subj) for mine in cfg.subjects):
                raise ApiError.of(e.JSStreamSubjectOverlapErr)


def check_stream_config(
    cfg: StreamConfig,
    *,
    max_payload: int = 0,
    existing: Mapping[str, StreamConfig] | None = None,
    pedantic: bool = False,
    account: AccountJetStream | None = None,
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
    cfg = set_static_metadata(cfg)
    out = check_stream_cfg(cfg, pedantic=pedantic, streams=existing, account=account)
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
    account: AccountJetStream | None = None,
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
    cfg = check_stream_cfg(
        set_static_metadata(new), pedantic=pedantic, streams=existing, account=account
    )
    if cfg.name != old.name:
        raise invalid("stream configuration name must match original")
    _check_replicas(cfg)
    if cfg.storage != old.storage:
        raise invalid("stream configuration update can not change storage type")
    if cfg.retention != old.retention and "workqueue" in (cfg.retention, old.retention):
        raise invalid(
            "stream configuration update can not change retention policy to/from workqueue"
        )
    if old.sealed and not cfg.sealed:
        raise invalid("stream configuration update can not unseal a sealed stream")
    if old.deny_delete and not cfg.deny_delete:
        raise invalid("stream configuration update can not cancel deny message deletes")
    if old.deny_purge and not cfg.deny_purge:
        raise invalid("stream configuration update can not cancel deny purge")
    # Removing the mirror promotes a mirror to a normal stream; changing it is refused.
    if cfg.mirror is not None and cfg.mirror != old.mirror:
        raise ApiError.of(e.JSStreamMirrorNotUpdatableErr)
    if cfg.discard_new_per_subject:
        if cfg.discard != "new":
            raise invalid("discard new per subject requires discard new policy to be set")
        if cfg.max_msgs_per_subject <= 0:
            raise invalid("discard new per subject requires max msgs per subject > 0")
    if old.allow_msg_ttl and not cfg.allow_msg_ttl:
        raise invalid("message TTL status can not be disabled")
    if cfg.allow_msg_counter != old.allow_msg_counter:
        raise invalid("stream configuration update can not change message counter setting")
    if old.allow_msg_schedules and not cfg.allow_msg_schedules:
        raise invalid("message schedules can not be disabled")
    if old.persist_mode != cfg.persist_mode:
        raise invalid("stream configuration update can not change persist mode")
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
