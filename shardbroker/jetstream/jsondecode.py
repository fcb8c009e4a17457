"""Request bodies decoded into API Structs exactly as nats-server 2.15 decodes them.

Owner: pure functions, imported by the storage process (jetstream/) and by tests.

`decode_request` reads a body the way nats-server's ``json.Decoder`` with
``DisallowUnknownFields`` does (Go's v1 semantics on the v2 engine): the error texts for
malformed JSON, unknown fields and wrong types are reproduced byte for byte (``invalid
JSON: ...``, err_code 10025); ``null`` leaves a scalar untouched; field names match
case-insensitively; several JSON values in one body are decoded one after the other into
the same request; enum fields keep Go's quirks (``discard`` is case-insensitive, the others
are not); timestamps are normalised to RFC 3339 with nanoseconds exactly as Go re-renders
them. `decode_next_request` reads a CONSUMER.MSG.NEXT body as ``nextReqFromMsg`` does.

The syntax is `jsonscan`'s; this module maps scanned values onto a Struct's declared Go
types (`gotypes`), with a plan per class built once and cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final, TypeVar

import msgspec
import msgspec.inspect as mi

from shardbroker.gofmt.quote import go_quote
from shardbroker.gofmt.strconv import GoNumError, go_atoi
from shardbroker.gofmt.timestamp import GoTimeError, normalise_rfc3339
from shardbroker.jetstream.consumer_schema import NextRequest
from shardbroker.jetstream.gotypes import INT64_RANGE, GoStruct
from shardbroker.jetstream.jserrors import ApiError, JSInvalidJSONErr
from shardbroker.jetstream.jsonscan import (
    EOF,
    WHITESPACE,
    JArr,
    JNum,
    JObj,
    JsonSyntaxError,
    JStr,
    Scanner,
    kind_name,
    raw_text,
)

__all__ = ["decode_next_request", "decode_request", "is_empty_request",
           "is_json_object_or_array"]  # fmt: skip


class _GoError(Exception):
    """A decode failure carrying the exact text Go's decoder reports."""


# -- decoding into Structs with Go's rules ----------------------------------------------------


class _Desc:
    """What Go's decoder does for one destination type."""

    __slots__ = ("elem", "enum", "go", "hi", "kind", "lo", "nullable", "plan", "values")

    def __init__(self, kind: str, go: str, **kw: Any) -> None:
        self.kind = kind  # str bool int time enum list map struct
        self.go = go  # the Go type named in errors
        self.nullable = kw.get("nullable", False)  # a Go pointer/slice/map: null resets it
        self.lo = kw.get("lo", 0)
        self.hi = kw.get("hi", 0)
        self.enum = kw.get("enum", "")
        self.values: tuple[str, ...] = kw.get("values", ())
        self.elem: _Desc | None = kw.get("elem")
        self.plan: _StructPlan | None = kw.get("plan")


class _StructPlan:
    __slots__ = ("cls", "exact", "folded", "go_name")

    def __init__(self, cls: type[GoStruct]) -> None:
        self.cls = cls
        self.go_name = cls.go_name or cls.__name__
        self.exact: dict[str, tuple[str, _Desc]] = {}
        self.folded: dict[str, tuple[str, _Desc]] = {}


_PLANS: dict[type, _StructPlan] = {}


def _fold(key: str) -> str:
    # Go matches JSON names case-insensitively with Unicode simple folding: the Kelvin
    # sign folds to "k" and the long s to "s"; other non-ASCII letters never meet ASCII.
    return key.lower().replace("\u017f", "s")


def _plan(cls: type[GoStruct]) -> _StructPlan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _StructPlan(cls)  # registered first: types may recurse
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            entry = (f.encode_name, _describe(f.type))
            plan.exact[f.encode_name] = entry
            plan.folded.setdefault(_fold(f.encode_name), entry)
    return plan


def _describe(t: mi.Type, extra: Mapping[str, Any] | None = None) -> _Desc:
    extra = dict(extra or {})
    nullable = False
    while True:
        if isinstance(t, mi.Metadata):
            extra.update(t.extra or {})
            t = t.type
        elif isinstance(t, mi.UnionType):
            others = [x for x in t.types if not isinstance(x, mi.NoneType)]
            if len(others) != 1:
                raise TypeError(f"unsupported union {t}")
            nullable = True
            t = others[0]
        else:
            break
    go = extra.get("go")
    if isinstance(t, mi.StrType):
        if extra.get("time"):
            return _Desc("time", "time.Time", nullable=nullable)
        return _Desc("str", go or "string")
    if isinstance(t, mi.BoolType):
        return _Desc("bool", "bool")
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else INT64_RANGE[0]
        hi = extra.get("hi", t.le if t.le is not None else INT64_RANGE[1])
        return _Desc("int", go or "int", lo=lo, hi=hi)
    if isinstance(t, mi.LiteralType):
        values = tuple(str(v) for v in t.values)
        return _Desc("enum", go or "string", enum=extra.get("enum", "exact"), values=values)
    if isinstance(t, mi.ListType):
        elem = _describe(t.item_type)
        return _Desc("list", go or "[]" + elem.go, elem=elem, nullable=nullable)
    if isinstance(t, mi.DictType):
        elem = _describe(t.value_type)
        return _Desc("map", go or "map[string]" + elem.go, elem=elem)
    if isinstance(t, mi.StructType) and issubclass(t.cls, GoStruct):
        plan = _plan(t.cls)
        return _Desc("struct", go or "server." + plan.go_name, plan=plan, nullable=nullable)
    raise TypeError(f"unsupported request field type {t}")


_T = TypeVar("_T", bound=msgspec.Struct)
_KEEP = object()  # a JSON null into a Go scalar or struct value: leave it as it is


def _type_error(node: Any, desc: _Desc, top: str, path: list[str], what: str = "") -> _GoError:
    what = what or kind_name(node)
    if not path:
        where = "Go value"
        return _GoError(f"json: cannot unmarshal {what} into Go value of type {desc.go}")
    where = top + "." + ".".join(path)
    if not path[-1].isdigit():
        where = "Go struct field " + where
    return _GoError(f"json: cannot unmarshal {what} into {where} of type {desc.go}")


def _zero(desc: _Desc) -> Any:
    """The Go zero value of an element set to null inside an array or map."""
    if desc.kind == "struct":
        return {}
    return {"str": "", "bool": False, "int": 0, "list": [], "map": {}}.get(desc.kind)


def _decode(node: Any, desc: _Desc, top: str, path: list[str], current: Any) -> Any:
    kind = desc.kind
    if node is None:
        if kind == "enum":
            if desc.enum == "compression":
                raise _GoError("unknown compression algorithm")
            return _decode_enum(node, desc)  # UnmarshalJSON sees "null" too
        if kind == "list":
            return None if desc.nullable else []
        if kind == "map":
            return {}
        if desc.nullable:
            return None
        return _KEEP
    if kind == "str":
        if not isinstance(node, JStr):
            raise _type_error(node, desc, top, path)
        return str(node)
    if kind == "int":
        if not isinstance(node, JNum):
            raise _type_error(node, desc, top, path)
        text = str(node)
        if "." in text or "e" in text or "E" in text or not desc.lo <= int(text) <= desc.hi:
            raise _type_error(node, desc, top, path, "number " + text)
        return int(text)
    if kind == "bool":
        if node is not True and node is not False:
            raise _type_error(node, desc, top, path)
        return node
    if kind == "struct":
        if not isinstance(node, JObj):
            raise _type_error(node, desc, top, path)
        assert desc.plan is not None
        return _decode_struct(node, desc.plan, top, path, current)
    if kind == "list":
        if not isinstance(node, JArr):
            raise _type_error(node, desc, top, path)
        elem = desc.elem
        assert elem is not None
        out = []
        for index, item in enumerate(node):
            value = _decode(item, elem, top, [*path, str(index)], None)
            out.append(_zero(elem) if value is _KEEP or value is None else value)
        return out
    if kind == "map":
        if not isinstance(node, JObj):
            raise _type_error(node, desc, top, path)
        elem = desc.elem
        assert elem is not None
        out_map = dict(current) if isinstance(current, dict) else {}
        for key, item in node:
            value = _decode(item, elem, top, [*path, key], out_map.get(key))
            out_map[key] = _zero(elem) if value is _KEEP else value
        return out_map
    if kind == "time":
        if not isinstance(node, JStr):
            raise _type_error(node, desc, top, path)
        try:
            return normalise_rfc3339(str(node))
        except GoTimeError as exc:
            raise _GoError(str(exc)) from None
    return _decode_enum(node, desc)


def _decode_enum(node: Any, desc: _Desc) -> str:
    raw = raw_text(node)
    mode = desc.enum
    if mode == "compression":
        # StoreCompression.UnmarshalJSON: json.Unmarshal into a string first.
        if not isinstance(node, JStr):
            raise _GoError(f"json: cannot unmarshal {kind_name(node)} into Go value of type string")
        if str(node) not in desc.values:
            raise _GoError("unknown compression algorithm")
        return str(node)
    if mode == "persist" and raw == '""':
        return "default"
    if mode == "deliver" and raw == '"undefined"':
        return "all"  # DeliverPolicy reads its own "undefined" rendering as DeliverAll
    probe = raw.lower() if mode == "fold" else raw
    for value in desc.values:
        if probe == '"' + value + '"':
            return value
    if mode in _ENUM_ERRORS:
        raise _GoError(_ENUM_ERRORS[mode] + raw)
    raise _GoError("can not unmarshal " + go_quote(raw))


# Consumer enums whose UnmarshalJSON reports the raw JSON with %v instead of %q.
_ENUM_ERRORS: Final = {
    "action": "unknown consumer action: ",
    "priority": "unknown priority policy: ",
}


def _decode_struct(
    node: JObj, plan: _StructPlan, top: str, path: list[str], current: Any
) -> dict[str, Any]:
    out: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    exact, folded = plan.exact, plan.folded
    for key, item in node:
        entry = exact.get(key) or folded.get(_fold(key))
        if entry is None:
            raise _GoError("json: unknown field " + go_quote(key))
        name, desc = entry
        value = _decode(item, desc, top, [*path, name], out.get(name))
        if value is not _KEEP:
            out[name] = value
    return out


def decode_request(data: bytes, cls: type[_T]) -> _T:
    """Decode an API request body into `cls` exactly as nats-server would.

    An empty (or all-whitespace) body gives ``cls()``. Any failure raises the ApiError
    nats-server answers: 400/10025 ``invalid JSON: <Go's decoder message>``.
    """
    plan = _plan(cls)  # type: ignore[arg-type]
    top = plan.go_name
    desc = _Desc("struct", "server." + top, plan=plan)
    merged: Any = {}
    try:
        for node in Scanner(data).values():
            value = _decode(node, desc, top, [], merged)
            if value is not _KEEP:
                merged = value
    except JsonSyntaxError as exc:
        raise ApiError.of(JSInvalidJSONErr, err=exc.text()) from None
    except _GoError as exc:
        raise ApiError.of(JSInvalidJSONErr, err=str(exc)) from None
    except RecursionError:
        raise ApiError.of(JSInvalidJSONErr, err="exceeded max depth") from None
    return msgspec.convert(merged, cls)


def is_json_object_or_array(body: bytes) -> bool:
    """nats isJSONObjectOrArray: after JSON whitespace the body starts with ``{`` or ``[``.

    Handlers with an optional body decode it only when this holds, and otherwise ignore it.
    """
    stripped = body.lstrip(WHITESPACE)
    return stripped[:1] in (b"{", b"[")


def is_empty_request(body: bytes) -> bool:
    """nats isEmptyRequest: no body, or a JSON object without members (``{}``, ``{ }``)."""
    if not body or body == b"{}":
        return True
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and not value


# -- CONSUMER.MSG.NEXT ----------------------------------------------------------------------


class _JsonNextRequest(NextRequest):
    """What a JSON body decodes to: nats then holds a PriorityGroup to check."""

    priority_group: ClassVar[bool] = True


_EOI = "unexpected end of JSON input"
_UNICODE_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


def _go_trim_space(body: bytes) -> bytes:
    """Go's ``bytes.TrimSpace``: Unicode white space at both ends (UTF-8 aware)."""
    body = body.strip(b" \t\n\v\f\r")
    if body and (body[0] >= 0x80 or body[-1] >= 0x80):
        try:
            return body.decode().strip(_UNICODE_SPACE).encode()
        except UnicodeDecodeError:
            return body
    return body


def _go_atoi(text: str) -> int | None:
    """``strconv.Atoi`` on a 64-bit platform: the value, or None when it fails."""
    try:
        return go_atoi(text)
    except GoNumError:
        return None


def decode_next_request(body: bytes) -> NextRequest:
    """A MSG.NEXT body read as nats ``nextReqFromMsg`` reads it.

    After trimming white space: empty = batch 1; starting with ``{`` = JSON, decoded with
    ``json.Unmarshal`` (unknown fields ignored; errors without offsets: ``unexpected end of
    JSON input``, ``invalid character 'x' after top-level value``); otherwise a decimal
    integer (``strconv.Atoi``: sign allowed, negative kept) is the batch, and anything
    unparsable is batch 1. Raises ValueError with Go's message for bad JSON, which the
    consumer answers with ``400 Bad Request - <message>``.
    """
    req = _go_trim_space(body)
    if not req:
        return NextRequest(batch=1)
    if req[:1] != b"{":
        n = _go_atoi(req.decode(errors="replace"))
        return NextRequest(batch=1 if n is None else n)
    try:
        node = Scanner(req).single()
    except JsonSyntaxError as exc:
        raise ValueError(_EOI if str(exc) == EOF else str(exc)) from None
    except RecursionError:
        raise ValueError("exceeded max depth") from None
    plan = _plan(_JsonNextRequest)
    out: dict[str, Any] = {}
    try:
        for key, item in node:
            entry = plan.exact.get(key) or plan.folded.get(_fold(key))
            if entry is None:
                continue  # json.Unmarshal ignores unknown fields
            name, desc = entry
            # json.Unmarshal names the field as the body spells it ("Go struct field .Batch").
            value = _decode(item, desc, "", [key], out.get(name))
            if value is not _KEEP:
                out[name] = value
    except _GoError as exc:
        raise ValueError(str(exc)) from None
    return msgspec.convert(out, _JsonNextRequest)
