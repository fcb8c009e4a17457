"""The server's TLS context for the client port, built from Options.

Pure (no asyncio): the supervisor builds one at start to refuse unusable certificates
with a clear message before any worker starts, and every worker builds its own (an
SSLContext cannot cross processes). Follows nats-server's defaults: TLS 1.2 at least,
no client certificate unless `verify`, and then one signed by `ca_file` (or, without a
ca_file, by the system's trusted roots) is required.
"""

from __future__ import annotations

import os
import ssl

from shardbroker.config.merge import tls_error_text
from shardbroker.config.options import TLSConfig


class TLSConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it."""


def server_context(tls: TLSConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    cert = os.path.expanduser(tls.cert_file)
    key = os.path.expanduser(tls.key_file)
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f'tls: cannot load the certificate "{tls.cert_file}" with the key '
            f'"{tls.key_file}" (cert_file, key_file): {tls_error_text(exc)}'
        ) from None
    if tls.ca_file:
        try:
            ctx.load_verify_locations(cafile=os.path.expanduser(tls.ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(
                f'tls: cannot load the CA certificates "{tls.ca_file}" (ca_file): '
                f"{tls_error_text(exc)}"
            ) from None
    elif tls.verify:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE
    return ctx
