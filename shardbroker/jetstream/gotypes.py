"""Go-typed fields and the base class of the JetStream API's JSON shapes.

Owner: pure declarations, imported by the storage process (jetstream/) and by tests.

An API Struct declares each field with the Go type nats-server gives it. The ``Meta`` extras
carry what Go's decoder does that Python's types do not say: ``go`` is the Go type named in
decode errors (``... of type int64``), ``hi`` a bound past msgspec's int64 ceiling, ``time``
marks an RFC 3339 timestamp, and ``enum`` names the rules of the Go type's own
``UnmarshalJSON`` (``exact``, ``fold``, ``compression``, ``persist``, ``deliver``,
``action``, ``priority``; see `jsondecode`). Bounds are Go's.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "INT64_RANGE",
    "AckPolicy",
    "Compression",
    "ConsumerAction",
    "DeliverPolicy",
    "Discard",
    "Duration",
    "GoStruct",
    "Int",
    "Int32",
    "Int64",
    "PersistMode",
    "PriorityPolicy",
    "ReplayPolicy",
    "Retention",
    "Storage",
    "Time",
    "Uint64",
]


INT64_RANGE = (-(1 << 63), (1 << 63) - 1)
Int = Annotated[int, Meta(ge=INT64_RANGE[0], le=INT64_RANGE[1], extra={"go": "int"})]
Int32 = Annotated[int, Meta(ge=-(1 << 31), le=(1 << 31) - 1, extra={"go": "int32"})]
Int64 = Annotated[int, Meta(ge=INT64_RANGE[0], le=INT64_RANGE[1], extra={"go": "int64"})]
# msgspec bounds stop at int64; the uint64 ceiling is enforced by decode_request ("hi").
Uint64 = Annotated[int, Meta(ge=0, extra={"go": "uint64", "hi": (1 << 64) - 1})]
Duration = Annotated[int, Meta(ge=INT64_RANGE[0], le=INT64_RANGE[1], extra={"go": "time.Duration"})]
Time = Annotated[str, Meta(extra={"go": "time.Time", "time": True})]
"""An RFC 3339 timestamp, normalised on decode as Go re-renders it."""

# Enums decode through Go's custom UnmarshalJSON methods; "enum" names the method's rules.
Retention = Annotated[Literal["limits", "interest", "workqueue"], Meta(extra={"enum": "exact"})]
Discard = Annotated[Literal["old", "new"], Meta(extra={"enum": "fold"})]
Storage = Annotated[Literal["file", "memory"], Meta(extra={"enum": "exact"})]
Compression = Annotated[Literal["none", "s2"], Meta(extra={"enum": "compression"})]
PersistMode = Annotated[Literal["default", "async"], Meta(extra={"enum": "persist"})]

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


class GoStruct(msgspec.Struct, kw_only=True):
    """Base of every JSON shape: ``go_name`` is the Go type, ``omitempty`` its omitempty fields."""

    go_name: ClassVar[str] = ""
    omitempty: ClassVar[frozenset[str]] = frozenset()
