"""JSON bytes of API Structs and responses, written as nats-server's ``encoding/json`` does.

Owner: pure functions, imported by the storage process (jetstream/) and by tests.

A field tagged ``omitempty`` in Go is listed in its class's ``omitempty`` set and left out
when it holds its Go zero value (the Python default); every other field is always
written, ``None`` as ``null``. Map fields are written with sorted keys, and ``<``, ``>``,
``&``, U+2028, U+2029 are escaped inside strings, as ``encoding/json`` does. ``bytes``
fields come out base64, as Go's ``[]byte``. The per-class plans are built once and cached.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from shardbroker.jetstream.jserrors import ApiError

__all__ = ["encode", "to_builtins"]


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
        omit: frozenset[str] = getattr(cls, "omitempty", frozenset())
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
