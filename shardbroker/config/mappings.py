"""The `mappings {}` block (alias `maps`), at the top level (the global account $G) and in
an account of `accounts {}` (nats-server parseAccountMappings, parseAccountMapDest).
Pure: config values in, SubjectMapping structs out, in the file's order.

A source maps to a destination string (weight 100), to one `{destination, weight,
cluster}` map, or to a list of them; weights are integers or "NN%" strings, 0..100 each
and at most 100 in total. Each entry is checked by protocol/transform.py, the code that
will apply it, so a file is refused with nats-server's texts exactly when nats-server
refuses it; the one exception is an empty destination, which nats-server accepts and
then crashes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardbroker.config.options import MapDestination, SubjectMapping
from shardbroker.config.parse import KeyPath, Position
from shardbroker.config.users import config_error
from shardbroker.gofmt.quote import go_quote
from shardbroker.gofmt.strconv import GoNumError, go_atoi
from shardbroker.protocol.transform import TransformError, check_mapping, is_valid_source

MAPPINGS_KEYS = ("mappings", "maps")


def mappings_block(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[SubjectMapping, ...]:
    """The block of a config file (the router applies it: worker/router.py)."""
    return parse_mappings(value, positions, path, position)


def parse_mappings(
    value: Any, positions: Mapping[KeyPath, Position], path: KeyPath, position: Position
) -> tuple[SubjectMapping, ...]:
    """`mappings { "<source>": <destination(s)>, ... }`. Raises ConfigError."""
    if not isinstance(value, dict):
        raise config_error(position, f"Expected a map of subject mappings, got {value!r}")
    out = []
    for source, item in value.items():
        where = positions.get((*path, source), position)
        if not is_valid_source(source):
            raise config_error(position, f"Subject {go_quote(source)} is not a valid subject")
        item_path = (*path, source)
        if isinstance(item, str):
            destinations: tuple[MapDestination, ...] = (MapDestination(subject=item),)
            label = f"{go_quote(source)} to {go_quote(item)}"
        elif isinstance(item, list):
            destinations = tuple(
                _map_dest(entry, positions, (*item_path, i), where) for i, entry in enumerate(item)
            )
            label = go_quote(source)
        else:
            destinations = (_map_dest(item, positions, item_path, where),)
            label = go_quote(source)
        try:
            check_mapping(source, [(d.subject, d.weight, d.cluster) for d in destinations])
        except TransformError as exc:
            raise config_error(where, f"Error adding mapping for {label} : {exc}") from None
        out.append(SubjectMapping(source=source, destinations=destinations))
    return tuple(out)


def _map_dest(
    entry: Any, positions: Mapping[KeyPath, Position], path: KeyPath, at: Position
) -> MapDestination:
    """One `{destination, weight, cluster}` (parseAccountMapDest)."""
    where = positions.get(path, at)
    if not isinstance(entry, dict):
        raise config_error(where, "Expected an entry for the mapping destination")
    out: dict[str, Any] = {}
    for key, item in entry.items():
        key_at = positions.get((*path, key), where)
        name = key.lower()
        if name in ("dest", "destination", "cluster"):
            if not isinstance(item, str):
                raise config_error(key_at, f"{key}: expected a string, got {item!r}")
            out["cluster" if name == "cluster" else "subject"] = item
        elif name == "weight":
            out["weight"] = _weight(item, key_at)
        else:
            raise config_error(key_at, f"Unknown field {go_quote(key)} for mapping destination")
    subject = out.setdefault("subject", "")
    if "weight" not in out:
        raise config_error(where, f"Missing weight for mapping destination {go_quote(subject)}")
    return MapDestination(**out)


def _weight(value: Any, at: Position) -> int:
    """An integer or "NN%" (a string: nats's Atoi after one "%" is cut off), 0..100."""
    if isinstance(value, str):
        text = value.removesuffix("%")
        try:
            weight = go_atoi(text)
        except GoNumError:
            raise config_error(
                at, f"Invalid weight {go_quote(text)} for mapping destination"
            ) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        weight = value
    else:
        shown = str(value).lower() if isinstance(value, bool) else value
        raise config_error(at, f"Unknown entry type for weight of {shown}")
    if not 0 <= weight <= 100:
        raise config_error(at, f"Invalid weight {weight} for mapping destination")
    return weight
