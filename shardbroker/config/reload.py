"""What a configuration reload changes: ``diff(old, new) -> list[Change]``, by kind.

Pure (no asyncio, no processes). The supervisor runs it to accept or reject a reload
(any change that cannot be reloaded rejects the whole reload, as in nats-server's
reload.go); every shard runs it again on the Options it receives, to apply each change
by its kind.

An Options field is reloadable only if its Setting (config/options.py) names the kind
of change; a field added to Options later is therefore *not* reloadable until someone
decides it is (the safe default, and nats-server's: "every other option not listed").
Refusals name the option by its Setting's Go name.

Special rules (nats-server's):
- ``max_memory_store``/``max_file_store`` may only grow (-1 is "no limit", the most);
- ``no_auth_user`` may only be removed, and only together with its user;
- ``max_payload``/``max_control_line`` are reloadable as long as the shared-memory
  rings, sized at start, still hold maximal frames (shardbroker's own limit).
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from shardbroker.config.options import (
    DECLARATIONS,
    SETTINGS,
    ChangeKind,
    Options,
    all_users,
    decode,
    encode,
    min_ring_size,
)

# Options field -> the kind of change a reload of it is (its Setting's `reload`).
RELOADABLE: dict[str, ChangeKind] = {
    decl.name: decl.setting.reload for decl in DECLARATIONS if decl.setting.reload is not None
}


class Change(msgspec.Struct, frozen=True):
    """One option whose value differs between the running and the new Options."""

    name: str
    kind: ChangeKind
    old: Any
    new: Any

    def describe(self) -> str:
        """nats-server's `Reloaded: <what>` text."""
        if self.kind in ("auth", "tls"):
            return "authorization" if self.name == "authorization" else self.name
        return f"{self.name} = {go_value(self.new)}"


class ReloadError(ValueError):
    """The new Options cannot be applied to a running broker; nothing was changed."""


def go_name(field: str) -> str:
    """nats-server's name of an option (its Setting's `go`), as its messages print it."""
    return SETTINGS[field].go


def go_value(value: Any) -> str:
    """A value as Go's %v prints it (true/false, no quotes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}s" if value else "0s"
    if isinstance(value, float):
        return f"{value}s"
    if value is None:
        return "<nil>"
    if isinstance(value, msgspec.Struct):
        return "{...}"
    return str(value)


def _not_supported(field: str, old: Any, new: Any, why: str = "") -> ReloadError:
    text = (
        f"config reload not supported for {go_name(field)}: "
        f"old={go_value(old)}, new={go_value(new)}"
    )
    return ReloadError(f"{text} ({why})" if why else text)


def _user_names(opts: Options) -> set[str]:
    return {entry.name for entry in all_users(opts)}


def _grows(old: int, new: int) -> bool:
    """A JetStream budget may only grow; -1 (no limit) is the largest."""
    if new == -1:
        return True
    return old != -1 and new >= old


def diff(old: Options, new: Options, ring_size: int | None = None) -> list[Change]:
    """The changes from `old` to `new`, in Options field order.

    Raises ReloadError, naming the first option that cannot change on a running broker.
    `ring_size` is the size of the rings in effect (the supervisor knows it); when given,
    a max_payload or max_control_line too large for them is refused.
    """
    changes: list[Change] = []
    for field in old.__struct_fields__:
        before = getattr(old, field)
        after = getattr(new, field)
        if before == after:
            continue
        kind = RELOADABLE.get(field)
        if kind is None:
            raise _not_supported(field, before, after)
        if kind == "jetstream" and not _grows(before, after):
            raise _not_supported(field, before, after, "JetStream limits may only increase")
        if field == "no_auth_user" and (after or before in _user_names(new)):
            raise _not_supported(field, before, after)
        changes.append(Change(field, kind, before, after))
    if ring_size is not None and any(
        c.name in ("max_payload", "max_control_line") for c in changes
    ):
        need = min_ring_size(new.max_payload, new.max_control_line)
        if need > ring_size:
            field = "max_payload" if new.max_payload != old.max_payload else "max_control_line"
            raise _not_supported(
                field,
                getattr(old, field),
                getattr(new, field),
                f"the shared-memory rings of {ring_size} bytes cannot hold such frames; "
                "restart the broker to resize them",
            )
    return changes


def kinds(changes: list[Change]) -> set[ChangeKind]:
    return {change.kind for change in changes}


def encode_options_arg(opts: Options) -> bytes:
    """Options as one blank-free control frame argument (msgpack, base64)."""
    return base64.b64encode(encode(opts))


def decode_options_arg(arg: bytes) -> Options:
    return decode(base64.b64decode(arg))
