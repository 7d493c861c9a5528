"""SIP over WebSocket (WS and WSS): a Twisted shim around the sans-IO ``wsproto`` engine.

What it implements:

- RFC 7118 §4.1: the ``sip`` WebSocket subprotocol. The client offers it in
  ``Sec-WebSocket-Protocol``; the server refuses a handshake that does not offer it (HTTP 400) and
  accepts with ``Sec-WebSocket-Protocol: sip``; a client whose server accepts without selecting it
  fails the connection.
- RFC 7118 §5: each SIP message travels in exactly one WebSocket message, text or binary. Received
  fragments are put back together, and every finished message goes to the handler whole. Outbound
  messages go as one text frame when they are valid UTF-8, as one binary frame otherwise.
- RFC 6455 §4.2.1/§4.2.2 (via wsproto): the opening handshake and ``Sec-WebSocket-Accept``;
  §10.2: an optional ``Origin`` allow-list (HTTP 403); §5.5.2/§5.5.3: pings are answered with
  pongs (RFC 7118 leaves keep-alives to WebSocket pings); §7.1.2/§5.5.1: the close handshake;
  §7.4.1: close code 1009 for a message bigger than ``max_message_size``.

The same :class:`WebSocketSipProtocol` serves WS and WSS (TLS is the transport's business), server
side or client side. It does not parse SIP: :class:`WebSocketHandler` (the SIP stack's connection
object) gets whole SIP messages as bytes and is told exactly once when the WebSocket is finished.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Collection
from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from clearwater.errors import ProtocolError

__all__ = ["SIP_SUBPROTOCOL", "WebSocketHandler", "WebSocketSipProtocol"]

log = Logger()

#: The WebSocket subprotocol token of RFC 7118 §4.1.
SIP_SUBPROTOCOL = "sip"

# The end of an HTTP header block, as h11 (wsproto's HTTP engine) finds it: LF, optional CR, LF.
_HEADER_END = re.compile(rb"\n\r?\n")
# Close codes an endpoint may put in a Close frame (RFC 6455 §7.4.1, §7.4.2; IANA registry).
_SENDABLE_CLOSE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))
_MESSAGE_TOO_BIG = 1009
_PROTOCOL_ERROR = 1002


class WebSocketHandler(typing.Protocol):
    """What :class:`WebSocketSipProtocol` reports to; the SIP stack's connection object."""

    def ws_opened(self, ws: WebSocketSipProtocol) -> None:
        """The opening handshake completed; :meth:`WebSocketSipProtocol.send_message` works."""

    def ws_message(self, ws: WebSocketSipProtocol, data: bytes) -> None:
        """One whole SIP message arrived (a text message arrives UTF-8 encoded)."""

    def ws_closed(self, ws: WebSocketSipProtocol, reason: str) -> None:
        """The WebSocket is finished (closed, failed, rejected or lost). Called exactly once,
        even if the handshake never completed; no ``ws_message`` follows it."""


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]


class WebSocketSipProtocol(Protocol):
    """SIP over one WebSocket connection (RFC 7118), on an already connected TCP or TLS stream.

    :param handler: told of the opening, of each SIP message and of the end.
    :param is_client: send the opening handshake (client) or answer it (server).
    :param host: the client's ``Host`` header value, with the port when it is not the default
        one (e.g. ``"edge.example.com:5062"``). Required on the client side.
    :param resource: the client's request target, e.g. ``"/"`` or ``"/sip"``.
    :param max_message_size: the biggest SIP message accepted, in octets; a bigger one closes the
        WebSocket with code 1009.
    :param max_handshake_size: the biggest HTTP header block accepted in the opening handshake;
        a server answers a bigger request with HTTP 431.
    :param allowed_origins: when given, a server refuses (HTTP 403) a handshake whose ``Origin``
        is not in it (compared case-insensitively). A handshake without ``Origin`` comes from a
        non-browser client and is let through, since only browsers are bound by Origin.
    :param clock: when given, a close handshake that the peer does not finish within
        ``close_timeout`` seconds ends with the connection being aborted.
    """

    def __init__(
        self,
        handler: WebSocketHandler,
        *,
        is_client: bool,
        host: str = "",
        resource: str = "/",
        max_message_size: int = 65535,
        max_handshake_size: int = 8192,
        allowed_origins: Optional[Collection[str]] = None,
        clock: Optional[IReactorTime] = None,
        close_timeout: float = 5.0,
    ) -> None:
        if is_client and not host:
            raise ValueError("a WebSocket client needs a host")
        self._handler = handler
        self._is_client = is_client
        self._host = host
        self._resource = resource
        self._max_message_size = max_message_size
        self._max_handshake_size = max_handshake_size
        self._allowed_origins = (
            None if allowed_origins is None else frozenset(o.lower() for o in allowed_origins)
        )
        self._clock = clock
        self._close_timeout = close_timeout
        self._ws = WSConnection(ConnectionType.CLIENT if is_client else ConnectionType.SERVER)
        #: True while messages can be sent: after the opening handshake, before any close.
        self.opened = False
        self._handshaking = True
        self._handshake_buffer = bytearray()
        self._closing = False  # we sent a Close frame and wait for the peer's
        self._finished = False  # the connection is being dropped; input is ignored
        self._reported = False
        self._close_reason = ""
        self._message = bytearray()
        self._close_timer: Optional[IDelayedCall] = None

    # Twisted's side

    @override
    def connectionMade(self) -> None:
        if self._is_client:
            request = Request(
                host=self._host, target=self._resource, subprotocols=[SIP_SUBPROTOCOL]
            )
            self._write(self._ws.send(request))

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._finished:
            return
        try:
            if self._handshaking:
                self._receive_handshake(data)
            else:
                self._ws.receive_data(data)
                self._process_events()
        except (LocalProtocolError, RemoteProtocolError) as exc:
            self._protocol_error(exc)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_close_timer()
        self.opened = False
        self._finished = True
        if self._closing:
            self._report(self._close_reason)
        else:
            self._report("connection lost: " + _printable(reason.getErrorMessage()))

    # The handler's side

    def send_message(self, data: bytes) -> None:
        """Send one SIP message as one WebSocket message (RFC 7118 §5).

        It goes as a text frame when it is valid UTF-8, else as a binary frame.

        :raises ProtocolError: the WebSocket is not open (handshake pending, closing or closed).
        """
        if not self.opened:
            raise ProtocolError("WebSocket is not open")
        try:
            event: Event = TextMessage(data=data.decode("utf-8"))
        except UnicodeDecodeError:
            event = BytesMessage(data=data)
        self._write(self._ws.send(event))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (RFC 6455 §7.1.2); the connection drops when the peer
        answers. Before the handshake completes, the connection just drops. Idempotent."""
        if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
            raise ValueError("not a close code an endpoint may send: " + str(code))
        if self._finished or self._closing:
            return
        if not self.opened:
            self._fail("closed before the WebSocket handshake completed")
            return
        self._start_close(code, reason)

    # Opening handshake

    def _receive_handshake(self, data: bytes) -> None:
        buffer = self._handshake_buffer
        search_from = max(0, len(buffer) - 2)
        buffer += data
        while self._handshaking and not self._finished:
            match = _HEADER_END.search(buffer, search_from)
            size = len(buffer) if match is None else match.end()
            if size > self._max_handshake_size:
                self._handshake_too_big()
                return
            if match is None:
                return
            head = bytes(buffer[: match.end()])
            del buffer[: match.end()]
            search_from = 0
            self._ws.receive_data(head)
            self._process_events()
        if not self._finished and buffer:
            # Bytes after the handshake (e.g. frames sent along with it) belong to the WebSocket.
            rest = bytes(buffer)
            buffer.clear()
            self._ws.receive_data(rest)
            self._process_events()

    def _handshake_too_big(self) -> None:
        if self._is_client:
            self._fail("WebSocket handshake response too large")
        else:
            self._reject(431, "WebSocket handshake request too large")

    def _on_request(self, request: Request) -> None:
        if self._allowed_origins is not None:
            for name, value in request.extra_headers:
                if name.lower() == b"origin":
                    origin = bytes(value).decode("latin-1")
                    if origin.lower() not in self._allowed_origins:
                        self._reject(403, "Origin not allowed", detail=": " + origin)
                        return
        if SIP_SUBPROTOCOL not in request.subprotocols:
            self._reject(400, "The 'sip' WebSocket subprotocol is required (RFC 7118)")
            return
        self._write(self._ws.send(AcceptConnection(subprotocol=SIP_SUBPROTOCOL)))
        self._open()

    def _on_accept(self, event: AcceptConnection) -> None:
        if event.subprotocol != SIP_SUBPROTOCOL:
            # RFC 6455 §4.1: the client fails the WebSocket connection. RFC 7118 §4.1: without
            # the sip subprotocol this is not a SIP connection.
            self._fail(
                "server did not select the sip WebSocket subprotocol",
                close_code=_PROTOCOL_ERROR,
                close_reason="sip subprotocol required",
            )
            return
        self._open()

    def _open(self) -> None:
        self._handshaking = False
        self.opened = True
        self._handler.ws_opened(self)

    def _reject(self, status: int, text: str, *, detail: str = "") -> None:
        """Answer the handshake request with an HTTP error whose body is ``text``, and drop,
        reporting ``text`` and ``detail``."""
        body = (text + "\r\n").encode("utf-8")
        headers = [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(body)).encode("ascii")),
            (b"Connection", b"close"),
        ]
        data = self._send_or_empty(
            RejectConnection(status_code=status, headers=headers, has_body=True)
        )
        if data:
            data += self._send_or_empty(RejectData(data=body, body_finished=True))
        self._write(data)
        self._fail(f"rejected WebSocket handshake: HTTP {status} {_printable(text + detail)}")

    def _send_or_empty(self, event: Event) -> bytes:
        try:
            return self._ws.send(event)
        except Exception:  # wsproto also lets h11's own errors through
            log.failure("cannot send {event!r}", event=event)
            return b""

    # Open WebSocket

    def _process_events(self) -> None:
        for event in self._ws.events():
            if self._finished:
                return
            if isinstance(event, (TextMessage, BytesMessage)):
                self._on_data(event)
            elif isinstance(event, Ping):
                if self._ws.state is ConnectionState.OPEN:
                    self._write(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._on_close(event)
            elif isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, AcceptConnection):
                self._on_accept(event)
            elif isinstance(event, RejectConnection):
                self._fail(f"WebSocket handshake rejected: HTTP {event.status_code}")
            # Pong and RejectData need nothing.

    def _on_data(self, event: typing.Union[TextMessage, BytesMessage]) -> None:
        if self._closing:
            # Data after our Close frame (RFC 6455 §5.5.1 allows it) is not delivered.
            return
        if isinstance(event, TextMessage):
            self._message += event.data.encode("utf-8")
        else:
            self._message += event.data
        if len(self._message) > self._max_message_size:
            self._message.clear()
            self._start_close(_MESSAGE_TOO_BIG, "message too big")
            return
        if event.message_finished:
            message = bytes(self._message)
            self._message.clear()
            self._handler.ws_message(self, message)

    def _on_close(self, event: CloseConnection) -> None:
        state = self._ws.state
        summary = f"{int(event.code)} {_printable(event.reason or '')}"
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close handshake: answer it (RFC 6455 §5.5.1) and drop.
            self._write(self._ws.send(event.response()))
            self._fail("closed by peer: " + summary.rstrip())
        elif state is ConnectionState.CLOSED:
            # The peer answered our Close frame.
            self._fail(self._close_reason)
        else:
            # wsproto turns a frame it cannot parse into a CloseConnection carrying the code to
            # fail with (1002, 1007, 1009 ...) without changing state.
            self._fail(
                "WebSocket protocol error: " + summary.rstrip(),
                close_code=event.code,
                close_reason=event.reason or "",
            )

    def _start_close(self, code: int, reason: str) -> None:
        self.opened = False
        self._closing = True
        self._close_reason = f"closed: {code} {_printable(reason)}".rstrip()
        self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        if self._clock is not None:
            self._close_timer = self._clock.callLater(self._close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self._finished:
            return
        self._finished = True
        transport = self.transport
        if transport is not None:
            if ITCPTransport.providedBy(transport):
                transport.abortConnection()
            else:
                transport.loseConnection()
        self._report(self._close_reason + " (the peer did not answer the close)")

    # Endings

    def _protocol_error(self, exc: typing.Union[LocalProtocolError, RemoteProtocolError]) -> None:
        reason = _printable(str(exc))
        if (
            self._handshaking
            and not self._is_client
            and not self._finished
            and isinstance(exc, RemoteProtocolError)
            and isinstance(exc.event_hint, RejectConnection)
        ):
            # A bad handshake request: answer it with wsproto's HTTP error (400 or 426).
            self._write(self._send_or_empty(exc.event_hint))
        self._fail("WebSocket protocol error: " + reason)

    def _fail(
        self, reason: str, *, close_code: Optional[int] = None, close_reason: str = ""
    ) -> None:
        """Drop the connection now, after a Close frame when ``close_code`` is given and the
        WebSocket can still send one, and report ``reason``."""
        if close_code is not None and self._ws.state in (
            ConnectionState.OPEN,
            ConnectionState.REMOTE_CLOSING,
        ):
            self._write(self._ws.send(CloseConnection(code=close_code, reason=close_reason)))
        self.opened = False
        self._finished = True
        self._cancel_close_timer()
        if self.transport is not None:
            self.transport.loseConnection()
        self._report(reason)

    def _report(self, reason: str) -> None:
        if not self._reported:
            self._reported = True
            self._handler.ws_closed(self, reason)

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            if self._close_timer.active():
                self._close_timer.cancel()
            self._close_timer = None

    def _write(self, data: bytes) -> None:
        transport: Optional[ITransport] = self.transport
        if data and transport is not None:
            transport.write(data)
