"""Error types, and the exact error texts nats-server writes on the wire.

Wire texts are verbatim from nats-server; clients compare lower-cased prefixes, so
never invent new ones. They live only here.
"""

from __future__ import annotations

from shardbroker.const import EXIT_BOOT_FAILURE
from shardbroker.gofmt.quote import go_quote

ERR_UNKNOWN_PROTOCOL = "Unknown Protocol Operation"
ERR_AUTH_VIOLATION = "Authorization Violation"
ERR_AUTH_TIMEOUT = "Authentication Timeout"
ERR_INVALID_PROTOCOL = "invalid client protocol"
ERR_NO_RESPONDERS_REQUIRES_HEADERS = "no responders requires headers support"
ERR_MAX_CONTROL_LINE = "maximum control line exceeded"
ERR_MAX_PAYLOAD = "Maximum Payload Violation"
ERR_MAX_CONNECTIONS = "maximum connections exceeded"
ERR_MAX_SUBSCRIPTIONS = "maximum subscriptions exceeded"
ERR_MAX_ACCOUNT_CONNECTIONS = "maximum account active connections exceeded"
ERR_USER_EXPIRED = "User Authentication Expired"
ERR_USER_REVOKED = "User Authentication Revoked"
ERR_ACCOUNT_EXPIRED = "Account Authentication Expired"
ERR_STALE_CONNECTION = "Stale Connection"
ERR_INVALID_SUBJECT = "Invalid Subject"
ERR_INVALID_PUBLISH_SUBJECT = "Invalid Publish Subject"
# Our protocol extensions' own texts (README, Protocol extensions), not nats-server's.
ERR_INVALID_SUBSCRIPTION_LIMIT = "Invalid Subscription Limit"


def err_publish_violation(subject: str) -> str:
    return f"Permissions Violation for Publish to {go_quote(subject)}"


def err_rate_limited(subject: str) -> str:
    """shardbroker's own: a publish refused by a rate limit in mode reject. A
    permissions violation in form, so that clients keep the connection (nats-py and
    nats.go treat every "permissions violation" as non-fatal)."""
    return f"{err_publish_violation(subject)}: rate limit exceeded"


def err_publish_reply_violation(reply: str) -> str:
    return f"Permissions Violation for Publish with Reply of {go_quote(reply)}"


def err_subscribe_violation(subject: str, queue: str | None = None) -> str:
    if queue is None:
        return f"Permissions Violation for Subscription to {go_quote(subject)}"
    return (
        f"Permissions Violation for Subscription to {go_quote(subject)} "
        f"using queue {go_quote(queue)}"
    )


def err_subscription_removed(subject: str, queue: str | None, sid: str) -> str:
    """A reload took a subscription's permission away (nats processSubsOnConfigReload)."""
    return f"{err_subscribe_violation(subject, queue)} (sid {go_quote(sid)})"


class ShardbrokerError(Exception):
    """Base of every error the broker raises on purpose."""


class ProtocolError(ShardbrokerError):
    """A client broke the protocol.

    `wire_text` is the -ERR text to send before closing, or None for a silent close.
    """

    def __init__(self, wire_text: str | None, detail: str = "", reason: int = 0) -> None:
        super().__init__(detail or wire_text or "protocol error")
        self.wire_text = wire_text
        # The ClosedState the connection closes with; 0: a protocol violation.
        self.reason = reason


class HaltBroker(BaseException):
    """Stop the whole broker with a reason and an exit status; caught only in cli.py."""

    def __init__(self, reason: str, exit_status: int = EXIT_BOOT_FAILURE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status
