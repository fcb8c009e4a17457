"""INFO and CONNECT: the two JSON messages of the core protocol.

Pure. Field names, order and omit-when-empty behaviour follow nats-server, since
clients read them (protocol.md sections 3 and 4).
"""

from __future__ import annotations

from typing import Any

import msgspec

from shardbroker.errors import ProtocolError


class ServerInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The INFO a client gets. Keys in nats-server's order; empty ones are left out."""

    server_id: str
    server_name: str
    version: str
    proto: int
    git_commit: str = ""
    go: str
    host: str
    port: int
    headers: bool
    auth_required: bool = False
    tls_required: bool = False
    tls_verify: bool = False
    tls_available: bool = False
    max_payload: int
    jetstream: bool = False
    client_id: int = 0
    client_ip: str = ""
    nonce: str = ""
    cluster: str = ""
    domain: str = ""
    connect_urls: list[str] = msgspec.field(default_factory=list)
    ldm: bool = False
    connect_info: bool = False
    remote_account: str = ""
    acc_is_sys: bool = False
    api_lvl: int = 0
    xkey: str = ""
    # Extensions (README, Protocol extensions); clients ignore keys they do not know.
    sub_max: bool = False


_info_encoder = msgspec.json.Encoder()


def encode_info(info: ServerInfo) -> bytes:
    return _info_encoder.encode(info)


class ConnectOptions(msgspec.Struct, kw_only=True):
    """What a client asked for in CONNECT. Absent verbose/pedantic/echo mean true."""

    verbose: bool = True
    pedantic: bool = True
    tls_required: bool = False
    auth_token: str = ""
    user: str = ""
    password: str = ""
    name: str = ""
    lang: str = ""
    version: str = ""
    protocol: int = 0
    echo: bool = True
    sig: str = ""
    jwt: str = ""
    nkey: str = ""
    no_responders: bool = False
    headers: bool = False
    # The atomic auto-unsubscribe extension: SUB may end with `max=<n>`.
    sub_max: bool = False
    # Obsolete fields whose presence is an Authorization Violation.
    has_account: bool = False


_BOOL_FIELDS = frozenset(
    ("verbose", "pedantic", "tls_required", "echo", "no_responders", "headers", "sub_max")
)
_STR_FIELDS = frozenset(("auth_token", "user", "name", "lang", "version", "sig", "jwt", "nkey"))


def decode_connect(body: bytes) -> ConnectOptions:
    """Decode a CONNECT body like Go's encoding/json: keys case-insensitive, unknown keys
    ignored, a wrongly typed field or bad JSON fails (ProtocolError, silent close)."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(None, "invalid CONNECT json") from exc
    if not isinstance(raw, dict):
        raise ProtocolError(None, "CONNECT is not a JSON object")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue  # null leaves a field at its default in Go
        name = key.lower()
        if name == "pass":
            name = "password"
        if name in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise ProtocolError(None, f"CONNECT field {key} is not a boolean")
        elif name in _STR_FIELDS or name == "password":
            if not isinstance(value, str):
                raise ProtocolError(None, f"CONNECT field {key} is not a string")
        elif name == "protocol":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ProtocolError(None, "CONNECT protocol is not a number")
        elif name in ("account", "new_account"):
            fields["has_account"] = True
            continue
        else:
            continue
        fields[name] = value
    return ConnectOptions(**fields)
