"""The websocket port of a worker: NATS clients over websockets (browsers, nats.ws,
nats.py's ws:// URLs), served by the same client code as the client port.

Owner: a worker shard; everything runs on its loop and never blocks. Every worker
listens on the websocket port with SO_REUSEPORT (worker/main.py), as on the client
port; the upgrade, the framing and compression are per connection and stay in the
worker that accepted it.

An adapter, so that the NATS side stays the client port's: ``WebSocketConnection`` is
the protocol of the accepted socket (TLS first for ``wss://``, then the HTTP upgrade as
protocol/wshandshake.py answers it); once upgraded it unframes what the client sends
(protocol/wsframes.py) and feeds the payload bytes to a ``WebSocketClient`` through
``data_received``, as one stream; and ``WebSocketTransport`` is the transport that
client writes through: each write (one per flush of its output) becomes one binary
frame, as nats-server sends one per flush, the INFO alone in the first. Messages thus
take the same compiled per-message path as on the client port once unframed.

``WebSocketClient`` is a ``ClientProtocol`` with the few differences nats-server makes
for websocket clients: the websocket block's authorization override, cookies and
ping interval, the JWT connection type WEBSOCKET, the listener's INFO, its type in
/connz and events, and a close frame whose status says why the server closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, cast

import msgspec

from shardbroker.config.options import WebsocketConfig
from shardbroker.const import ClosedState
from shardbroker.core import ws_unmask_runs
from shardbroker.errors import ERR_UNKNOWN_PROTOCOL
from shardbroker.protocol import frames
from shardbroker.protocol import wsframes as wf
from shardbroker.protocol import wshandshake as hs
from shardbroker.protocol.messages import ConnectOptions, decode_connect
from shardbroker.security.auth import Authenticator
from shardbroker.security.tls import server_context
from shardbroker.worker.client import ClientHost, ClientProtocol

log = logging.getLogger("shardbroker.websocket")

# Outgoing data for a browser is cut into messages of at most this many bytes
# (nats-server's experience: browsers handle them better).
BROWSER_FRAME = 4096
# Compressed messages may hold this many times max_payload (at most _MAX_COMPRESSED).
_COMPRESSED_MULTIPLE = 8
_MAX_COMPRESSED = 64 * 1024 * 1024
# Above this size a frame's header and payload are handed to the transport as two
# buffers rather than joined (a copy of the payload).
_JOIN_LIMIT = 16 * 1024

# What Go's HTTP server answers a plain-text request on its TLS port (the first bytes
# look like an HTTP method, not a TLS record), on the socket itself.
_HTTP_ON_TLS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_METHODS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
_RECORD_HEADER = 5  # bytes of a TLS record header

# Connection states.
_FIRST = -1  # a wss:// listener: waiting for the first bytes (TLS, or plain HTTP)
_TLS = 0  # the TLS handshake of a wss:// listener runs
_HTTP = 1  # reading the upgrade request
_OPEN = 2  # upgraded: frames
_CLOSED = 3

# Close reasons after which nats-server sends no close frame (it does not flush).
_NO_CLOSE_FRAME = frozenset(
    (
        ClosedState.ReadError,
        ClosedState.WriteError,
        ClosedState.SlowConsumerPendingBytes,
        ClosedState.SlowConsumerWriteDeadline,
        ClosedState.TLSHandshakeError,
    )
)
_POLICY = frozenset(
    (
        ClosedState.AuthenticationTimeout,
        ClosedState.AuthenticationViolation,
        ClosedState.SlowConsumerPendingBytes,
        ClosedState.SlowConsumerWriteDeadline,
        ClosedState.MaxAccountConnectionsExceeded,
        ClosedState.MaxConnectionsExceeded,
        ClosedState.MaxControlLineExceeded,
        ClosedState.MaxSubscriptionsExceeded,
        ClosedState.AuthenticationExpired,
        ClosedState.Revocation,
    )
)
_PROTOCOL = frozenset(
    (ClosedState.ParseError, ClosedState.ProtocolViolation, ClosedState.BadClientProtocolVersion)
)
_GOING_AWAY = frozenset(
    (
        ClosedState.WriteError,
        ClosedState.ReadError,
        ClosedState.StaleConnection,
        ClosedState.ServerShutdown,
    )
)


def close_status(reason: ClosedState) -> int:
    """The status of the close frame the server sends when it closes for `reason`
    (nats-server's wsEnqueueCloseMessage)."""
    if reason == ClosedState.ClientClosed:
        return wf.CLOSE_NORMAL
    if reason in _POLICY:
        return wf.CLOSE_POLICY_VIOLATION
    if reason == ClosedState.TLSHandshakeError:
        return wf.CLOSE_TLS_HANDSHAKE
    if reason in _PROTOCOL:
        return wf.CLOSE_PROTOCOL_ERROR
    if reason == ClosedState.MaxPayloadExceeded:
        return wf.CLOSE_MESSAGE_TOO_BIG
    if reason in _GOING_AWAY:
        return wf.CLOSE_GOING_AWAY
    return wf.CLOSE_INTERNAL_ERROR


class WebSocketHost(ClientHost, Protocol):
    """What the websocket port needs of its worker besides what any client does: the
    authorization rules as websocket clients meet them (rebuilt by a reload)."""

    ws_auth: Authenticator


class WebSocketListener:
    """The websocket block as one worker serves it: the protocol factory of its
    listening socket. The block cannot change on reload, so this is built once."""

    __slots__ = ("config", "cookie_names", "header_lines", "origins", "server", "ssl_context")

    def __init__(self, server: WebSocketHost, config: WebsocketConfig) -> None:
        self.server = server
        self.config = config
        self.ssl_context = server_context(config.tls) if config.tls is not None else None
        self.origins = hs.origin_policy(
            config.same_origin, config.allowed_origins, config.tls is not None
        )
        self.header_lines = hs.header_lines(config.headers)
        self.cookie_names = frozenset(
            name
            for name in (
                config.jwt_cookie,
                config.user_cookie,
                config.pass_cookie,
                config.token_cookie,
            )
            if name
        )

    def __call__(self) -> WebSocketConnection:
        return WebSocketConnection(self)


class WebSocketConnection(asyncio.Protocol):
    """One socket accepted on the websocket port (see the module docstring)."""

    __slots__ = (
        "browser",
        "client",
        "close_sent",
        "compression",
        "cookies",
        "deflated",
        "deflated_size",
        "listener",
        "peer",
        "raw",
        "reader",
        "request",
        "safari",
        "searched",
        "skip",
        "socket",
        "state",
        "timer",
    )

    def __init__(self, listener: WebSocketListener) -> None:
        self.listener = listener
        # What this connection reads from and writes to: the socket's transport, or the
        # TLS layer's over it; `socket` is the socket's own.
        self.raw: asyncio.Transport | None = None
        self.socket: asyncio.Transport | None = None
        self.state = _HTTP
        self.peer = ""
        # The upgrade request read so far (or a wss:// client's first bytes), and how far
        # the search for its end got: a request arriving a byte at a time costs no more
        # than one arriving at once.
        self.request = bytearray()
        self.searched = 0
        self.skip = 0  # bytes of a refused request's body still to skip
        self.timer: asyncio.TimerHandle | None = None
        self.reader: wf.FrameReader | None = None
        self.client: WebSocketClient | None = None
        self.compression = False
        self.browser = False
        self.safari = False
        self.cookies: dict[str, str] = {}
        self.deflated: list[bytes] = []  # the frames of a compressed message so far
        self.deflated_size = 0
        self.close_sent = False

    # -- the socket ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = self.socket = transport  # type: ignore[assignment]  # uvloop's are no subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        listener = self.listener
        timeout = listener.config.handshake_timeout
        loop = listener.server.loop
        if timeout > 0:
            self.timer = loop.call_later(timeout, self.handshake_timed_out)
        if listener.ssl_context is not None:
            self.state = _FIRST

    def first_bytes(self, data: bytes) -> None:
        """A wss:// client's first bytes: the TLS handshake's, or a plain HTTP request,
        which Go's server answers in plain text before it closes."""
        self.request += data
        data = bytes(self.request)
        if len(data) < _RECORD_HEADER:
            return
        self.request = bytearray()
        socket = self.socket
        assert socket is not None
        if data[:_RECORD_HEADER] in _HTTP_METHODS:
            self.state = _CLOSED
            self.cancel_timer()
            socket.write(_HTTP_ON_TLS)
            socket.close()
            return
        ctx = self.listener.ssl_context
        self.start_tls(socket, ctx, self.listener.config.handshake_timeout, data)

    def start_tls(self, raw: asyncio.BaseTransport, ctx: Any, timeout: float, first: bytes) -> None:
        """A TLS layer between the socket and this protocol (as worker/client.py's
        start_tls), given the bytes it read already."""
        self.state = _TLS
        server = self.listener.server
        tls = self.listener.config.tls
        assert tls is not None
        waiter = server.loop.create_future()
        tls_protocol = server.ssl_protocol_class(
            server.loop,
            self,
            ctx,
            waiter,
            server_side=True,
            call_connection_made=False,
            ssl_handshake_timeout=timeout if timeout > 0 else tls.timeout,
        )
        raw.set_protocol(tls_protocol)
        tls_protocol.connection_made(raw)
        self.raw = tls_protocol._get_app_transport()
        waiter.add_done_callback(self.tls_handshake_done)
        # Both loops' TLS protocols are buffered protocols: hand them what was read.
        view = memoryview(first)
        while view:
            buffer = tls_protocol.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls_protocol.buffer_updated(size)
            view = view[size:]

    def tls_handshake_done(self, waiter: asyncio.Future[None]) -> None:
        if self.state != _TLS:
            return
        failure = asyncio.CancelledError() if waiter.cancelled() else waiter.exception()
        if failure is not None:
            log.debug("%s - websocket TLS handshake error: %s", self.peer, failure)
            self.state = _CLOSED
            self.cancel_timer()
            if self.socket is not None:
                self.socket.abort()
            return
        self.state = _HTTP

    def handshake_timed_out(self) -> None:
        self.timer = None
        if self.state in (_FIRST, _TLS, _HTTP):
            log.debug("%s - websocket handshake error: timed out", self.peer)
            self.state = _CLOSED
            if self.socket is not None:
                self.socket.abort()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        if self.state == _OPEN:
            self.frames_received(data)
        elif self.state == _HTTP:
            self.request_received(data)
        elif self.state == _FIRST:
            self.first_bytes(data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_timer()
        self.state = _CLOSED
        if self.client is not None:
            self.client.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_writing()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_writing()

    # -- the upgrade ---------------------------------------------------------------------

    def request_received(self, data: bytes) -> None:
        """Read upgrade requests until one is accepted (a refused one may be followed by
        another on the same connection, as with Go's HTTP server)."""
        raw = self.raw
        assert raw is not None
        if self.skip:
            skipped = min(self.skip, len(data))
            self.skip -= skipped
            data = data[skipped:]
        buffer = self.request
        buffer += data
        while buffer:
            end = hs.request_end(buffer, self.searched)
            if end < 0:
                self.searched = len(buffer)
                if len(buffer) > hs.MAX_HEADER_BYTES:
                    self.refuse(hs.server_error(431))
                return
            request = hs.read_request(bytes(buffer[:end]))
            del buffer[:end]
            self.searched = 0
            if isinstance(request, hs.Refusal):
                self.refuse(request)
                return
            listener = self.listener
            outcome = hs.check_upgrade(
                request,
                listener.origins,
                listener.config.compression,
                listener.header_lines,
                listener.cookie_names,
            )
            if isinstance(outcome, hs.Refusal):
                if not self.refuse(outcome):
                    return
                body = hs.body_length(request)
                self.skip = max(0, body - len(buffer))
                del buffer[:body]
                continue
            if buffer:
                # Frames sent before the 101 arrived: nats-server closes without a word.
                log.debug(
                    "%s - websocket handshake error: client sent data before handshake is complete",
                    self.peer,
                )
                self.state = _CLOSED
                raw.close()
                return
            self.request = bytearray()
            self.upgrade(outcome)
            return

    def refuse(self, refusal: hs.Refusal) -> bool:
        """Answer a refused request; True when the connection stays open."""
        log.debug("%s - websocket handshake error: %s", self.peer, refusal.reason)
        raw = self.raw
        assert raw is not None
        raw.write(refusal.answer)
        if refusal.close:
            self.state = _CLOSED
            self.cancel_timer()
            raw.close()
            return False
        return True

    def upgrade(self, upgrade: hs.Upgrade) -> None:
        raw = self.raw
        assert raw is not None
        raw.write(upgrade.answer)
        self.cancel_timer()
        if upgrade.leafnode:
            log.debug("%s - not configured to accept leaf node connections", self.peer)
            self.state = _CLOSED
            raw.close()
            return
        self.state = _OPEN
        self.compression = upgrade.compression
        self.browser = upgrade.browser
        self.safari = upgrade.safari
        self.cookies = upgrade.cookies
        self.reader = wf.FrameReader(
            ws_unmask_runs,
            mask_required=not upgrade.no_masking,
            compression=upgrade.compression,
        )
        client = self.client = WebSocketClient(self.listener.server, self)
        client.connection_made(cast(asyncio.Transport, WebSocketTransport(self)))

    # -- frames in -----------------------------------------------------------------------

    def frames_received(self, data: bytes) -> None:
        """Unframe a read: data goes to the client as one stream, control frames are
        answered in their place."""
        reader = self.reader
        client = self.client
        assert reader is not None and client is not None
        pieces: list[bytes] = []
        for kind, payload in reader.feed(data):
            if kind == wf.DATA:
                pieces.append(payload)
                continue
            if kind == wf.DEFLATED:
                self.deflated.append(payload)
                self.deflated_size += len(payload)
                if self.deflated_size > self.compressed_limit():
                    self.deliver(pieces)
                    self.too_big()
                    return
                continue
            if kind == wf.DEFLATED_END:
                try:
                    pieces.append(wf.inflate(self.deflated, client.parser.max_payload))
                except wf.InflateError as exc:
                    self.deliver(pieces)
                    log.debug("%s - websocket: %s", self.peer, exc)
                    self.too_big()
                    return
                self.deflated = []
                self.deflated_size = 0
                continue
            # A control frame or an error: what came before it goes first.
            pieces = self.deliver(pieces)
            if client.closed:
                return
            if kind == wf.PING:
                self.send_control(wf.PONG, payload)
            elif kind == wf.CLOSE:
                self.close_received(payload)
                return
            elif kind == wf.ERROR:
                self.protocol_error(payload.decode())
                return
        self.deliver(pieces)

    def deliver(self, pieces: list[bytes]) -> list[bytes]:
        """Hand the payload bytes gathered so far to the NATS client; returns a fresh list."""
        client = self.client
        if pieces and client is not None and not client.closed:
            client.data_received(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        return []

    def compressed_limit(self) -> int:
        client = self.client
        assert client is not None
        return min(_COMPRESSED_MULTIPLE * client.parser.max_payload, _MAX_COMPRESSED)

    def too_big(self) -> None:
        """A compressed message over its limits: nats-server ends the read loop with a
        max payload error, which closes the connection as a read error."""
        client = self.client
        if client is not None and not client.closed:
            client.close_connection(ClosedState.ReadError)

    def close_received(self, payload: bytes) -> None:
        """The client closes: echo its close frame, then close (nats-server's order)."""
        answer, error = wf.close_answer(payload)
        if answer is None:
            self.protocol_error(error)
            return
        self.send_close(answer)
        client = self.client
        if client is not None:
            client.close_connection(ClosedState.ClientClosed)

    def protocol_error(self, reason: str) -> None:
        """A frame broke the websocket protocol: a 1002 close frame with the reason
        (nats-server's is best effort; here it is always sent), then the connection
        ends as a read error."""
        log.debug("%s - websocket protocol error: %s", self.peer, reason)
        self.send_close(wf.close_payload(wf.CLOSE_PROTOCOL_ERROR, reason))
        client = self.client
        if client is not None:
            client.close_connection(ClosedState.ReadError)

    # -- frames out ----------------------------------------------------------------------

    def send_control(self, opcode: int, payload: bytes) -> None:
        raw = self.raw
        if raw is not None and not self.close_sent and not raw.is_closing():
            raw.write(wf.control_frame(opcode, payload))

    def send_close(self, payload: bytes) -> None:
        """The one close frame this connection sends; nothing follows it."""
        self.send_control(wf.CLOSE, payload)
        self.close_sent = True

    def send_chunks(self, chunks: list[bytes]) -> None:
        """One flush of the client's output (a list it clears afterwards): plain, its
        frame header joined in front, so the payload is copied once, as on the client
        port; otherwise as send_data."""
        raw = self.raw
        if raw is None or self.close_sent or self.state == _CLOSED or not chunks:
            return
        if self.compression or self.browser:
            self.send_data(b"".join(chunks))
            return
        chunks.insert(0, wf.frame_header(sum(map(len, chunks))))
        raw.write(b"".join(chunks))

    def send_data(self, data: bytes) -> None:
        """One flush of the client's output as one binary message (for a browser, cut
        into messages of at most BROWSER_FRAME bytes); compressed when that was agreed
        and it is worth it."""
        raw = self.raw
        if raw is None or self.close_sent or self.state == _CLOSED or not data:
            return
        if self.compression and len(data) > wf.COMPRESS_THRESHOLD:
            payload = wf.deflate(data)
            if self.browser and not self.safari and len(payload) > BROWSER_FRAME:
                # One compressed message in fragments (RSV1 on the first only).
                parts = []
                last = len(payload) - BROWSER_FRAME
                for at in range(0, len(payload), BROWSER_FRAME):
                    chunk = payload[at : at + BROWSER_FRAME]
                    opcode = wf.BINARY if at == 0 else wf.CONTINUATION
                    parts.append(wf.frame_header(len(chunk), opcode, at >= last, at == 0))
                    parts.append(chunk)
                raw.write(b"".join(parts))
                return
            raw.write(wf.frame_header(len(payload), rsv1=True) + payload)
            return
        size = len(data)
        if self.browser and size > BROWSER_FRAME:
            parts = []
            for at in range(0, size, BROWSER_FRAME):
                chunk = data[at : at + BROWSER_FRAME]
                parts.append(wf.frame_header(len(chunk)))
                parts.append(chunk)
            raw.write(b"".join(parts))
        elif size <= _JOIN_LIMIT:
            raw.write(wf.frame_header(size) + data)
        else:
            raw.writelines((wf.frame_header(size), data))

    def end(self, reason: ClosedState, abort: bool) -> None:
        """The client closed (for `reason`): the close frame that says why, unless one
        was sent or nats-server sends none for that reason, then the transport."""
        self.state = _CLOSED
        self.cancel_timer()
        raw = self.raw
        if raw is None:
            return
        if abort:
            raw.abort()
            return
        if not self.close_sent and reason not in _NO_CLOSE_FRAME:
            self.send_close(wf.close_payload(close_status(reason), str(reason)))
        raw.close()


class WebSocketTransport:
    """What a WebSocketClient writes through and pauses (see the module docstring);
    everything else is the underlying transport's."""

    __slots__ = ("conn",)

    def __init__(self, conn: WebSocketConnection) -> None:
        self.conn = conn

    @property
    def raw(self) -> asyncio.Transport:
        raw = self.conn.raw
        assert raw is not None
        return raw

    def write(self, data: bytes) -> None:
        self.conn.send_data(data)

    def writelines(self, chunks: Any) -> None:
        self.conn.send_data(b"".join(chunks))

    def close(self) -> None:
        self.conn.end(ClosedState.ClientClosed, abort=False)

    def abort(self) -> None:
        self.conn.end(ClosedState.ClientClosed, abort=True)

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)


class WebSocketClient(ClientProtocol):
    """A NATS client on the websocket port (see the module docstring)."""

    client_type = "websocket"
    websocket = True

    __slots__ = ("ws",)

    def __init__(self, server: WebSocketHost, ws: WebSocketConnection) -> None:
        self.ws = ws
        super().__init__(server)

    def authenticator(self) -> Authenticator:
        return cast(WebSocketHost, self.server).ws_auth

    def ping_interval(self) -> float:
        return self.ws.listener.config.ping_interval or self.server.opts.ping_interval

    def connect_options(self, body: bytes) -> ConnectOptions:
        """CONNECT fields a browser cannot set come from the upgrade's cookies, each
        only where the CONNECT left it empty."""
        opts = decode_connect(body)
        cookies = self.ws.cookies
        if not cookies:
            return opts
        config = self.ws.listener.config
        changes = {}
        for field, name in (
            ("jwt", config.jwt_cookie),
            ("user", config.user_cookie),
            ("password", config.pass_cookie),
            ("auth_token", config.token_cookie),
        ):
            if name and not getattr(opts, field):
                changes[field] = cookies.get(name, "")
        return msgspec.structs.replace(opts, **changes) if changes else opts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The upgrade is done (any TLS came before it): INFO, then serve."""
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.host = peer[0]
            self.port = peer[1]
        self.cid = self.server.next_client_id()
        transport.write(self.server.info_for(self))  # type: ignore[attr-defined]
        self.connection_ready()

    def close_with_error(self, wire_text: str | None, reason: ClosedState) -> None:
        """As on the client port, but the -ERR goes in the frame of what was pending,
        and a NATS parse failure ends the connection as a read error (no close frame),
        as nats-server's websocket read loop does."""
        if self.closed:
            return
        if reason == ClosedState.ProtocolViolation and wire_text in (None, ERR_UNKNOWN_PROTOCOL):
            reason = ClosedState.ReadError
        if wire_text is not None:
            self.out.append(frames.err(wire_text))
        self.hold_index = -1
        self.flush()
        self.close_connection(reason)

    def close_transport(self, reason: ClosedState, abort: bool) -> None:
        self.ws.end(reason, abort)

    def write_out(self, chunks: list[bytes]) -> None:
        self.ws.send_chunks(chunks)
