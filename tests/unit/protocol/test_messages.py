"""protocol/messages.py: CONNECT bodies decoded as Go's encoding/json decodes them."""

from __future__ import annotations

import pytest

from shardbroker.errors import ProtocolError
from shardbroker.protocol.messages import ConnectOptions, decode_connect


def test_connect_decodes_fields_in_any_case() -> None:
    opts = decode_connect(b'{"JWT":"a.b.c","Sig":"s","pass":"p","verbose":false,"x":1}')
    assert (opts.jwt, opts.sig, opts.password, opts.verbose) == ("a.b.c", "s", "p", False)


def test_connect_null_fields_keep_their_defaults() -> None:
    """Go leaves a field at its zero value for null: a null `jwt` is no JWT (the login
    then fails with Authorization Violation), a null `account` no account."""
    opts = decode_connect(b'{"jwt":null,"verbose":null,"user":null,"account":null}')
    assert opts == ConnectOptions()


def test_connect_sub_max_extension_is_off_unless_asked() -> None:
    assert decode_connect(b"{}").sub_max is False
    assert decode_connect(b'{"sub_max":true}').sub_max is True
    assert decode_connect(b'{"Sub_Max":true}').sub_max is True


@pytest.mark.parametrize(
    "body",
    [b'{"jwt":5}', b'{"verbose":"yes"}', b'{"protocol":true}', b'{"sub_max":1}', b"[1]", b"{"],
)
def test_connect_wrong_types_close_silently(body: bytes) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_connect(body)
    assert exc.value.wire_text is None
