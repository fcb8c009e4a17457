"""ClosedState: nats-server's numbers and the reason texts /connz shows for them
(server/client.go ClosedState, server/monitor.go ClosedState.String)."""

from __future__ import annotations

from shardbroker.const import ClosedState

# (number in nats-server, name, text) for every state shardbroker knows.
NATS_CLOSED_STATES = [
    (1, "ClientClosed", "Client Closed"),
    (2, "AuthenticationTimeout", "Authentication Timeout"),
    (3, "AuthenticationViolation", "Authentication Failure"),
    (4, "TLSHandshakeError", "TLS Handshake Failure"),
    (5, "SlowConsumerPendingBytes", "Slow Consumer (Pending Bytes)"),
    (6, "SlowConsumerWriteDeadline", "Slow Consumer (Write Deadline)"),
    (7, "WriteError", "Write Error"),
    (8, "ReadError", "Read Error"),
    (9, "ParseError", "Parse Error"),
    (10, "StaleConnection", "Stale Connection"),
    (11, "ProtocolViolation", "Protocol Violation"),
    (12, "BadClientProtocolVersion", "Bad Client Protocol Version"),
    (13, "WrongPort", "Incorrect Port"),
    (14, "MaxAccountConnectionsExceeded", "Maximum Account Connections Exceeded"),
    (15, "MaxConnectionsExceeded", "Maximum Connections Exceeded"),
    (16, "MaxPayloadExceeded", "Maximum Message Payload Exceeded"),
    (17, "MaxControlLineExceeded", "Maximum Control Line Exceeded"),
    (18, "MaxSubscriptionsExceeded", "Maximum Subscriptions Exceeded"),
    (19, "DuplicateRoute", "Duplicate Route"),
    (20, "RouteRemoved", "Route Removed"),
    (21, "ServerShutdown", "Server Shutdown"),
    (22, "AuthenticationExpired", "Authentication Expired"),
    (25, "Revocation", "Credentials Revoked"),
]


def test_closed_state_numbers_names_and_texts_are_nats_servers() -> None:
    assert [(s.value, s.name, str(s)) for s in ClosedState] == NATS_CLOSED_STATES


def test_closed_state_formats_as_its_text_in_logs() -> None:
    assert "%s" % ClosedState.SlowConsumerPendingBytes == "Slow Consumer (Pending Bytes)"  # noqa: UP031 (what logging does)
