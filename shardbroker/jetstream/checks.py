"""What the stream and consumer config checks share: nats's limits and the str adapters.

Owner: pure functions, imported by the storage process's API layer (through
`stream_validate` and `consumer_validate`) and by tests. No I/O.

Config subjects are ``str`` here and ``bytes`` in `protocol.subjects`, which owns their
rules; the adapters below encode and ask it. ``invalid`` and ``pedantic`` build the two
errors most checks raise (10052 and 10157) with nats-server's texts.
"""

from __future__ import annotations

from shardbroker.jetstream import jserrors as e
from shardbroker.jetstream.jserrors import ApiError
from shardbroker.protocol.subjects import (
    is_valid_subject,
    subject_is_subset_match,
    subjects_overlap,
)

__all__ = [
    "MAX_DESCRIPTION_LEN",
    "MAX_METADATA_LEN",
    "MAX_NAME_LEN",
    "MS",
    "SECOND",
    "byte_len",
    "invalid",
    "is_subset_match",
    "is_valid_asset_name",
    "pedantic_error",
    "subjects_collide",
    "valid_subject",
]

MAX_NAME_LEN = 255  # JSMaxNameLen
MAX_DESCRIPTION_LEN = 4 * 1024  # JSMaxDescriptionLen
MAX_METADATA_LEN = 128 * 1024  # JSMaxMetadataLen
MS = 1_000_000
SECOND = 1_000_000_000

_ILLEGAL_NAME_CHARS = frozenset(" \t\r\n\f.*>\\/")


def invalid(text: str) -> ApiError:
    """10052 JSStreamInvalidConfigF (nats uses it for consumer configs too)."""
    return ApiError.of(e.JSStreamInvalidConfigF, err=text)


def pedantic_error(text: str) -> ApiError:
    """10157 JSPedanticErrF: a value pedantic mode refuses instead of adjusting."""
    return ApiError.of(e.JSPedanticErrF, err=text)


def byte_len(text: str) -> int:
    """The length nats compares with its limits: UTF-8 bytes, not characters."""
    return len(text.encode())


def is_valid_asset_name(name: str) -> bool:
    """nats isValidAssetName: non-empty, none of space, tab, CR, LF, FF, ``.*>\\/``."""
    return bool(name) and _ILLEGAL_NAME_CHARS.isdisjoint(name)


def valid_subject(subject: str) -> bool:
    return is_valid_subject(subject.encode())


def subjects_collide(a: str, b: str) -> bool:
    """nats SubjectsCollide: could one literal subject match both?"""
    return a == b or subjects_overlap(a.encode(), b.encode())


def is_subset_match(subject: str, test: str) -> bool:
    """nats subjectIsSubsetMatch: does everything `subject` matches also match `test`?"""
    return subject_is_subset_match(subject.encode(), test.encode())
