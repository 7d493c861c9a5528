"""The SIP transport layer: RFC 3261 §18, RFC 3581 (rport), RFC 5626 §3.5.1 (CRLF keep-alive),
RFC 7118 (WebSocket) and RFC 5630 / RFC 5922 (TLS).

:class:`TransportLayer` owns the listeners (UDP, TCP, TLS, WS, WSS) and the connection table, and
turns bytes into messages and back:

- Receiving (§18.2.1, §18.1.2): every message is parsed (:func:`clearwater.sip.parse_message`).
  A request's top Via gets ``received`` when its sent-by host is not the packet's source address,
  and ``rport`` filled in when the client asked for it (RFC 3581 §4). A response whose top Via is
  not one we wrote is dropped. A malformed request with a usable top Via is answered ``400`` (or
  the parser's status) with the parse reason as the reason phrase; other bad input is dropped and
  counted. Whole messages go to the :class:`MessageReceiver` (the transaction layer).
- Sending requests (§18.1.1): :meth:`TransportLayer.prepare_request` picks the transport (a UDP
  request within 200 bytes of the path MTU moves to TCP unless that is turned off) and writes the
  top Via's transport, sent-by and ``rport``; :meth:`TransportLayer.send_request` sends it,
  reusing or opening the connection for the target.
- Sending responses (§18.2.2): back over the connection the request came on; if that is gone, over
  a new connection to the Via's ``received`` address and sent-by port; over UDP to ``received``
  (and ``rport`` when present) from the socket the request arrived on.
- Connections are kept in one table keyed by ``(transport, remote host, remote port)`` and used
  for requests and responses in both directions. Idle connections close after
  ``idle_timeout``; a CRLFCRLF ping is answered with CRLF; a peer that breaks the framing or
  exceeds a size limit is disconnected.

Counters per transport are in :attr:`TransportLayer.stats`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import secrets
import socket
from typing import Any, Callable, Optional, Protocol, Union, cast

import attrs
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IListeningPort,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import ClientFactory, DatagramProtocol, ServerFactory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater._types import ISipReactor
from clearwater.errors import ParseError, TransportError
from clearwater.sip._framing import FramedMessage, KeepAlivePing, StreamFramer
from clearwater.sip._message import Request, Response
from clearwater.sip._parser import parse_message
from clearwater.sip._values import Via
from clearwater.sip.headers import VIA
from clearwater.sip.transport._tls import TlsSettings
from clearwater.sip.transport._types import (
    DEFAULT_PORTS,
    RELIABLE_TRANSPORTS,
    TRANSPORTS,
    EncodedResponse,
    Flow,
    Target,
    _unbracket,
    is_ip_literal,
)
from clearwater.sip.transport._ws import WebSocketSipProtocol

__all__ = [
    "ListenSpec",
    "MessageReceiver",
    "TransportLayer",
    "TransportSettings",
    "TransportStats",
]

_log = Logger()


class MessageReceiver(Protocol):
    """What the transport layer hands parsed messages to (the transaction layer)."""

    def request_received(self, request: Request, flow: Flow) -> None: ...

    def response_received(self, response: Response, flow: Flow) -> None: ...

    def connection_lost(self, keys: list[tuple[str, str, int]]) -> None:
        """A stream connection closed; ``keys`` are its connection-table keys."""


@attrs.define
class TransportStats:
    """Counters for one transport. Messages and bytes count whole SIP messages."""

    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: Messages that failed to parse (answered with 400 when possible, else dropped).
    parse_errors: int = 0
    #: Malformed requests answered with a 4xx/5xx by the transport layer itself.
    rejected: int = 0
    #: Messages dropped without an answer: unparseable responses, responses not for us, ...
    dropped: int = 0
    #: Sends that failed (no route, connection refused or lost, socket error, full queue).
    send_errors: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    connections_failed: int = 0
    #: Connections closed because the peer broke the framing or a size limit.
    limit_disconnects: int = 0
    idle_disconnects: int = 0
    keepalives_answered: int = 0


@attrs.frozen
class ListenSpec:
    """``transport:host:port``, e.g. ``udp:127.0.0.1:5060`` or ``wss:[::1]:443``."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenSpec:
        """Parse a listen spec; raises ValueError naming what is wrong."""
        transport, sep, rest = text.partition(":")
        if not sep or transport.upper() not in TRANSPORTS:
            raise ValueError(
                "listen address must be TRANSPORT:HOST:PORT with TRANSPORT one of "
                + ", ".join(t.lower() for t in TRANSPORTS)
                + ": "
                + repr(text)
            )
        host, sep, port_text = rest.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError("listen address needs a port number 0-65535: " + repr(text))
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not is_ip_literal(host):
            raise ValueError("listen address needs a literal IP address: " + repr(text))
        return cls(transport.upper(), host, int(port_text))

    @override
    def __str__(self) -> str:
        host = "[" + self.host + "]" if ":" in self.host else self.host
        return self.transport.lower() + ":" + host + ":" + str(self.port)


@attrs.frozen
class TransportSettings:
    """Tunables of the transport layer; defaults suit a production node."""

    #: Path MTU for the RFC 3261 §18.1.1 size rule.
    mtu: int = 1500
    #: Move UDP requests larger than ``mtu - 200`` bytes to TCP (§18.1.1).
    udp_to_tcp: bool = True
    #: Largest datagram accepted.
    max_datagram_size: int = 65535
    #: Largest header block and body accepted on a stream before the peer is disconnected.
    max_header_size: int = 32 * 1024
    max_body_size: int = 128 * 1024
    #: Seconds without traffic after which a stream connection is closed.
    idle_timeout: float = 300.0
    #: Seconds to wait for an outgoing connection.
    connect_timeout: float = 10.0
    #: Messages queued on a connection while it is being opened.
    max_pending: int = 64
    #: Stream connections open at once (inbound ones beyond this are refused).
    max_connections: int = 10_000
    #: Address written into Via sent-by when a listener is bound to a wildcard address.
    advertised_host: Optional[str] = None
    #: UDP receive buffer requested for each UDP socket (0: the system default).
    udp_receive_buffer: int = 4 * 1024 * 1024
    tls: TlsSettings = attrs.field(factory=TlsSettings)
    #: Origins a WebSocket client may come from (None: any).
    ws_allowed_origins: Optional[frozenset[str]] = None


class _Listener:
    def __init__(self, spec: ListenSpec, port: IListeningPort, udp: Optional[_UdpProtocol]):
        self.spec = spec
        self.port = port
        self.udp = udp
        address = port.getHost()
        self.host: str = getattr(address, "host", spec.host)
        self.port_number: int = getattr(address, "port", spec.port)

    @property
    def ipv6(self) -> bool:
        return ":" in self.host


def _is_ipv6(host: str) -> bool:
    return ":" in host


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def _format_host(host: str) -> str:
    return "[" + host + "]" if ":" in host else host


def _address(address: IAddress) -> tuple[str, int]:
    return str(getattr(address, "host", "")), int(getattr(address, "port", 0))


class TransportLayer:
    """Listeners, connections and RFC 3261 §18 message handling for every transport."""

    def __init__(
        self,
        reactor: ISipReactor,
        receiver: Optional[MessageReceiver],
        settings: Optional[TransportSettings] = None,
    ) -> None:
        self._reactor = reactor
        #: Where parsed messages go (the transaction layer); may be set after construction.
        self.receiver = receiver
        self.settings = settings or TransportSettings()
        self.stats: dict[str, TransportStats] = {t: TransportStats() for t in TRANSPORTS}
        self.listeners: list[_Listener] = []
        self._connections: dict[tuple[str, str, int], _Connection] = {}
        self._all_connections: set[_Connection] = set()
        self._sent_by: set[tuple[str, int]] = set()

    # ---- listening

    def listen(self, spec: Union[ListenSpec, str]) -> ListenSpec:
        """Start listening; returns the spec with the real port (for port 0).

        Raises ``twisted.internet.error.CannotListenError`` or ValueError (bad TLS settings).
        """
        if isinstance(spec, str):
            spec = ListenSpec.parse(spec)
        udp: Optional[_UdpProtocol] = None
        port: IListeningPort
        if spec.transport == "UDP":
            udp = _UdpProtocol(self)
            port = self._reactor.listenUDP(
                spec.port, udp, interface=spec.host, maxPacketSize=self.settings.max_datagram_size
            )
            self._grow_receive_buffer(port)
        else:
            factory = _ServerFactory(self, spec.transport)
            if spec.transport in ("TLS", "WSS"):
                options = self.settings.tls.server_options()
                port = self._reactor.listenSSL(spec.port, factory, options, interface=spec.host)
            else:
                port = self._reactor.listenTCP(spec.port, factory, interface=spec.host)
        listener = _Listener(spec, port, udp)
        self.listeners.append(listener)
        self._sent_by.add((self._advertised(listener).lower(), listener.port_number))
        _log.info("SIP listening on {spec}", spec=str(listener.spec))
        return ListenSpec(spec.transport, listener.host, listener.port_number)

    def _grow_receive_buffer(self, port: IListeningPort) -> None:
        size = self.settings.udp_receive_buffer
        sock = getattr(port, "socket", None)
        if size and isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # best effort
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def stop(self) -> Deferred[None]:
        """Stop listening and close every connection; fires when all are closed."""
        waiting: list[Deferred[object]] = []
        for listener in self.listeners:
            d: object = listener.port.stopListening()
            if isinstance(d, Deferred):
                waiting.append(d)
        self.listeners = []
        for connection in list(self._all_connections):
            waiting.append(connection.done)
            connection.abort()
        return gatherResults(waiting, consumeErrors=True).addBoth(lambda _: None)

    def _advertised(self, listener: _Listener) -> str:
        if _wildcard(listener.host):
            return self.settings.advertised_host or ("::1" if listener.ipv6 else "127.0.0.1")
        return listener.host

    def _listener_for(self, transport: str, ipv6: bool) -> Optional[_Listener]:
        fallback = None
        for listener in self.listeners:
            if listener.spec.transport == transport:
                if listener.ipv6 == ipv6 or _wildcard(listener.host):
                    return listener
                fallback = fallback or listener
        return fallback

    @property
    def sent_by(self) -> frozenset[tuple[str, int]]:
        """The (host, port) pairs this layer has written as sent-by in its Vias (hosts lower-case,
        IPv6 without brackets): what §18.1.2 checks responses against, and a proxy's loop check."""
        return frozenset(self._sent_by)

    def local_address(self, transport: str, ipv6: bool = False) -> Optional[tuple[str, int]]:
        """The (advertised host, port) of our listener for ``transport``, for Contact headers."""
        listener = self._listener_for(transport.upper(), ipv6)
        if listener is None:
            return None
        return self._advertised(listener), listener.port_number

    # ---- sending requests (§18.1.1)

    def prepare_request(self, request: Request, target: Target) -> Target:
        """Choose the transport for ``request`` and write its top Via; returns the real target.

        Call once per request; retransmissions reuse the result.
        """
        if (
            target.transport == "UDP"
            and self.settings.udp_to_tcp
            and len(request.to_bytes()) > self.settings.mtu - 200
        ):
            target = Target("TCP", target.host, target.port, server_name=target.server_name)
        via = request.headers.pop_first(VIA)
        if via is None:
            raise ValueError("a request needs a Via header with a branch before it is sent")
        listener = self._listener_for(target.transport, _is_ipv6(target.host))
        if listener is None and target.transport in RELIABLE_TRANSPORTS:
            listener = self._listener_for("UDP", _is_ipv6(target.host))
        host, port = via.host, via.port
        if listener is not None:
            host, port = _format_host(self._advertised(listener)), listener.port_number
        params = via.params
        if not any(name.lower() == "rport" for name, _ in params):
            params = (*params, ("rport", None))
        request.headers.prepend("Via", Via(target.transport, host, port, params, via.protocol))
        self._sent_by.add((host.strip("[]").lower(), port or DEFAULT_PORTS[target.transport]))
        return target

    def send_request(self, request: Request, target: Target) -> Deferred[None]:
        """Send a prepared request to ``target``. Fails with TransportError."""
        return self._send(request.to_bytes(), target, None)

    # ---- sending responses (§18.2.2)

    def send_response(self, response: Response, flow: Flow) -> Deferred[None]:
        """Send a response to the request that arrived on ``flow``. Fails with TransportError."""
        return self.send_encoded_response(self.encode_response(response, flow), flow)

    def encode_response(self, response: Response, flow: Flow) -> EncodedResponse:
        """``response``'s bytes and where §18.2.2 sends them if ``flow``'s connection is gone
        (reliable) or always (UDP: ``maddr``, else ``received``, else the Via host; ``rport``,
        else the Via port)."""
        data = response.to_bytes()
        via = response.top_via
        if flow.reliable:
            host = via.received or via.host
            return (data, _unbracket(host), via.port or DEFAULT_PORTS[flow.transport], via.host)
        host = via.param("maddr") or via.received or via.host
        rport = via.rport
        port = int(rport) if rport and rport.isdigit() else via.port or 5060
        return (data, _unbracket(host), port, "")

    def send_encoded_response(self, encoded: EncodedResponse, flow: Flow) -> Deferred[None]:
        """Send (or send again) an encoded response: on ``flow``'s connection while it is
        open, else to the address :meth:`encode_response` worked out."""
        data, host, port, server_name = encoded
        if flow.reliable:
            connection = self._connections.get(flow.connection_key)
            if connection is not None and not connection.closed:
                return self._count_send(connection.send(data), flow.transport, len(data))
            return self._send(
                data, Target(flow.transport, host, port, server_name=server_name), flow
            )
        if not is_ip_literal(host):
            return self._not_resolved("UDP", host)
        return self._send_datagram(data, host, port, flow)

    # ---- the send path

    def _not_resolved(self, transport: str, host: str) -> Deferred[None]:
        self.stats[transport].send_errors += 1
        return fail(TransportError("cannot send to a host name, resolve it first: " + host))

    def _send(self, data: bytes, target: Target, flow: Optional[Flow]) -> Deferred[None]:
        if not is_ip_literal(target.host):
            return self._not_resolved(target.transport, target.host)
        if target.transport == "UDP":
            return self._send_datagram(data, target.host, target.port, flow)
        connection = self._connections.get(target.connection_key)
        if connection is None or connection.closed:
            if len(self._all_connections) >= self.settings.max_connections:
                self.stats[target.transport].send_errors += 1
                return fail(TransportError("too many connections"))
            connection = self._connect(target)
        return self._count_send(connection.send(data), target.transport, len(data))

    def _count_send(self, d: Deferred[None], transport: str, size: int) -> Deferred[None]:
        stats = self.stats[transport]

        def sent(_: None) -> None:
            stats.messages_sent += 1
            stats.bytes_sent += size

        def failed(f: Failure) -> Failure:
            stats.send_errors += 1
            return f

        return d.addCallbacks(sent, failed)

    def _send_datagram(
        self, data: bytes, host: str, port: int, flow: Optional[Flow]
    ) -> Deferred[None]:
        stats = self.stats["UDP"]
        listener = None
        if flow is not None and flow.transport == "UDP":
            for candidate in self.listeners:
                if (
                    candidate.udp is not None
                    and candidate.port_number == flow.local_port
                    and (candidate.host == flow.local_host or _wildcard(candidate.host))
                ):
                    listener = candidate
                    break
        if listener is None:
            listener = self._listener_for("UDP", _is_ipv6(host))
        if listener is None or listener.udp is None or listener.udp.transport is None:
            stats.send_errors += 1
            return fail(TransportError("no UDP listener to send from"))
        try:
            listener.udp.send(data, (host, port))
        except Exception as e:
            stats.send_errors += 1
            where = str(Target("UDP", host, port))
            return fail(TransportError("UDP send to " + where + " failed: " + str(e)))
        stats.messages_sent += 1
        stats.bytes_sent += len(data)
        return succeed(None)

    def _connect(self, target: Target) -> _Connection:
        connection = _Connection(self, target.transport, outbound=True)
        connection.key = target.connection_key
        self._connections[connection.key] = connection
        endpoint: IStreamClientEndpoint
        timeout = self.settings.connect_timeout
        if _is_ipv6(target.host):
            endpoint = TCP6ClientEndpoint(  # type: ignore[no-untyped-call]  # untyped in Twisted
                self._reactor, target.host, target.port, timeout
            )
        else:
            endpoint = TCP4ClientEndpoint(self._reactor, target.host, target.port, timeout)
        if target.transport in ("TLS", "WSS"):
            try:
                creator = self.settings.tls.client_options(target.server_name or target.host)
            except ValueError as e:
                connection.failed(TransportError(str(e)))
                return connection
            endpoint = wrapClientTLS(creator, endpoint)
        server_name = target.server_name or target.host
        d = endpoint.connect(_ClientFactory(connection, server_name))
        d.addErrback(connection.failed)
        return connection

    # ---- receiving

    def message_received(
        self, data: bytes, flow: Flow, reply: Callable[[bytes, Flow], object]
    ) -> None:
        """One whole message arrived on ``flow``; ``reply(data, flow)`` sends bytes straight
        back (a rejection)."""
        stats = self.stats[flow.transport]
        stats.messages_received += 1
        stats.bytes_received += len(data)
        try:
            message = parse_message(data, max_size=self.settings.max_datagram_size)
        except ParseError as e:
            stats.parse_errors += 1
            rejection = _rejection(data, e)
            if rejection is None:
                stats.dropped += 1
                _log.debug("dropped malformed message from {flow}: {reason}", flow=flow, reason=e)
            else:
                stats.rejected += 1
                reply(rejection, flow)
            return
        receiver = self.receiver
        if receiver is None:
            stats.dropped += 1
            return
        try:
            if isinstance(message, Request):
                _stamp_received(message, flow)
                receiver.request_received(message, flow)
            elif self._is_ours(message.top_via):
                receiver.response_received(message, flow)
            else:
                stats.dropped += 1
        except Exception:
            _log.failure("error handling a message from {flow}", flow=flow)

    def _is_ours(self, via: Via) -> bool:
        """§18.1.2: a response must carry, on top, a sent-by we wrote."""
        port = via.port or DEFAULT_PORTS.get(via.transport.upper(), 5060)
        return (via.host.strip("[]").lower(), port) in self._sent_by

    # ---- connection bookkeeping (called by _Connection)

    def _connection_opened(self, connection: _Connection) -> None:
        flow = connection.flow
        assert flow is not None
        self.stats[flow.transport].connections_opened += 1
        # Inbound connections are keyed by their flow; outbound ones keep their target key too.
        if connection.key is None:
            connection.key = flow.connection_key
        self._connections.setdefault(flow.connection_key, connection)

    def _connection_closed(self, connection: _Connection) -> None:
        self._all_connections.discard(connection)
        keys = [k for k, c in self._connections.items() if c is connection]
        for key in keys:
            del self._connections[key]
        if connection.key is not None and connection.key not in keys:
            keys.append(connection.key)
        if self.receiver is not None and keys:
            try:
                self.receiver.connection_lost(keys)
            except Exception:
                _log.failure("error handling a lost connection")

    @property
    def connection_count(self) -> int:
        return len(self._all_connections)


def _stamp_received(request: Request, flow: Flow) -> None:
    """§18.2.1 and RFC 3581 §4: record the source address in the top Via."""
    via = request.top_via
    rport_requested = any(name.lower() == "rport" for name, _ in via.params) and not via.rport
    host = via.host.strip("[]")
    same_host = host == flow.remote_host
    if not same_host and is_ip_literal(host):
        try:
            same_host = ipaddress.ip_address(host) == ipaddress.ip_address(flow.remote_host)
        except ValueError:
            same_host = False
    if same_host and not rport_requested:
        return
    stamped = via.with_param("received", flow.remote_host)
    if rport_requested:
        stamped = stamped.with_param("rport", str(flow.remote_port))
    request.headers.pop_first(VIA)
    request.headers.prepend("Via", stamped)


_REJECT_HEADERS = frozenset((b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"))


def _rejection(data: bytes, error: ParseError) -> Optional[bytes]:
    """The stateless answer to a malformed request, or None when it cannot be answered.

    Only requests other than ACK with a top Via that parses get one: its Via, From, To, Call-ID
    and CSeq lines are copied (§8.2.6.2) and the reason phrase is the parse error's reason.
    """
    head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[0].upper().startswith(b"SIP/"):
        return None
    if request_line[0] == b"ACK":
        return None
    unfolded: list[bytes] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and unfolded:
            unfolded[-1] += b" " + line.strip()
        else:
            unfolded.append(line)
    copied: list[bytes] = []
    top_via: Optional[str] = None
    has_to_tag = True
    for line in unfolded:
        name, sep, value = line.partition(b":")
        key = name.strip().lower()
        if not sep or key not in _REJECT_HEADERS or b"\r" in line or b"\n" in line:
            continue
        text = value.strip()
        if key in (b"via", b"v") and top_via is None:
            top_via = text.decode("utf-8", "replace").split(",")[0]
        if key in (b"to", b"t"):
            has_to_tag = b";tag=" in text.replace(b" ", b"").lower()
            if not has_to_tag:
                line = line.rstrip() + b";tag=" + secrets.token_hex(4).encode()
        copied.append(line)
    if top_via is None:
        return None
    try:
        Via.parse(top_via.strip())
    except ParseError:
        return None
    status = error.status if 400 <= error.status <= 699 else 400
    start = b"SIP/2.0 " + str(status).encode() + b" " + error.reason.encode("ascii")
    return b"\r\n".join([start, *copied, b"Content-Length: 0", b"", b""])


# ---- stream connections


class _Connection:
    """One TCP, TLS, WS or WSS connection, inbound or outbound, as the transport layer sees it."""

    def __init__(self, layer: TransportLayer, transport: str, *, outbound: bool) -> None:
        self.layer = layer
        self.transport_name = transport
        self.outbound = outbound
        self.key: Optional[tuple[str, str, int]] = None
        self.flow: Optional[Flow] = None
        self.closed = False
        self._open = False
        self._pending: list[tuple[bytes, Deferred[None]]] = []
        self._write: Optional[Callable[[bytes], None]] = None
        self._lose: Optional[Callable[[], None]] = None
        self._idle: Optional[IDelayedCall] = None
        #: Fires when the connection is closed (or failed to open).
        self.done: Deferred[object] = Deferred()
        layer._all_connections.add(self)

    # -- lifecycle

    def opened(
        self,
        transport: ITransport,
        write: Callable[[bytes], None],
        lose: Callable[[], None],
    ) -> None:
        remote_host, remote_port = _address(transport.getPeer())
        local_host, local_port = _address(transport.getHost())
        self.flow = Flow(self.transport_name, remote_host, remote_port, local_host, local_port)
        self._write, self._lose = write, lose
        self._open = True
        self.layer._connection_opened(self)
        self.activity()
        pending, self._pending = self._pending, []
        for data, d in pending:
            self._write_now(data, d)

    def failed(self, reason: Union[Failure, Exception]) -> None:
        """The outbound connection could not be made."""
        if self.closed:
            return
        if isinstance(reason, Failure):
            reason = cast(Exception, reason.value)
        self.layer.stats[self.transport_name].connections_failed += 1
        _log.info("SIP connection to {key} failed: {reason}", key=self.key, reason=reason)
        self._finish(TransportError("connection failed: " + str(reason)))

    def lost(self, reason: str) -> None:
        if self.closed:
            return
        if self._open:
            self.layer.stats[self.transport_name].connections_closed += 1
        self._finish(TransportError("connection closed before the message was sent: " + reason))

    def _finish(self, error: Exception) -> None:
        self.closed = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self.layer._connection_closed(self)
        pending, self._pending = self._pending, []
        for _, d in pending:
            d.errback(error)
        if not self._open:  # never connected: there is no socket to wait for
            self.socket_closed()

    def socket_closed(self) -> None:
        """The underlying TCP connection is gone."""
        if not self.done.called:
            self.done.callback(None)

    def abort(self) -> None:
        if self._lose is not None:
            self._lose()
        else:
            self.lost("transport layer stopped")

    # -- traffic

    def send(self, data: bytes) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.closed:
            d.errback(TransportError("connection closed"))
        elif not self._open:
            if len(self._pending) >= self.layer.settings.max_pending:
                d.errback(TransportError("send queue full while connecting"))
            else:
                self._pending.append((data, d))
        else:
            self._write_now(data, d)
        return d

    def _write_now(self, data: bytes, d: Deferred[None]) -> None:
        assert self._write is not None
        try:
            self._write(data)
        except Exception as e:
            d.errback(TransportError("send failed: " + str(e)))
            return
        self.activity()
        d.callback(None)

    def message(self, data: bytes) -> None:
        self.activity()
        assert self.flow is not None
        self.layer.message_received(data, self.flow, self._reply)

    def _reply(self, data: bytes, flow: Flow) -> None:
        if self._write is not None and not self.closed:
            self._write(data)

    def keepalive(self) -> None:
        self.activity()
        self.layer.stats[self.transport_name].keepalives_answered += 1
        if self._write is not None and self.transport_name in ("TCP", "TLS"):
            self._write(b"\r\n")

    def limit_exceeded(self, error: ParseError) -> None:
        self.layer.stats[self.transport_name].limit_disconnects += 1
        _log.info("closing SIP connection {flow}: {reason}", flow=self.flow, reason=error.reason)
        if self._lose is not None:
            self._lose()

    def activity(self) -> None:
        timeout = self.layer.settings.idle_timeout
        if self._idle is not None and self._idle.active():
            self._idle.reset(timeout)
        elif not self.closed:
            self._idle = self.layer._reactor.callLater(timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle = None
        self.layer.stats[self.transport_name].idle_disconnects += 1
        if self._lose is not None:
            self._lose()

    # -- WebSocketHandler

    def ws_opened(self, ws: WebSocketSipProtocol) -> None:
        assert ws.transport is not None
        self.opened(ws.transport, ws.send_message, ws.close)

    def ws_message(self, ws: WebSocketSipProtocol, data: bytes) -> None:
        self.message(data)

    def ws_closed(self, ws: WebSocketSipProtocol, reason: str) -> None:
        if self._open:
            self.lost(reason)
        else:
            self.failed(TransportError("WebSocket handshake failed: " + reason))


@implementer(IHandshakeListener)
class _StreamProtocol(TwistedProtocol):
    """SIP over TCP or TLS: frames bytes into messages (RFC 3261 §18.3).

    A TLS connection counts as open only once its handshake completed: messages queued for it
    are failed, not lost, when the peer's certificate is refused.
    """

    def __init__(self, connection: _Connection) -> None:
        settings = connection.layer.settings
        self._connection = connection
        self._tls = connection.transport_name == "TLS"
        self._framer = StreamFramer(
            initiator=connection.outbound,
            max_header_size=settings.max_header_size,
            max_body_size=settings.max_body_size,
        )

    @override
    def connectionMade(self) -> None:
        if not self._tls:
            self._open()

    def handshakeCompleted(self) -> None:  # noqa: N802 (IHandshakeListener)
        self._open()

    def _open(self) -> None:
        assert self.transport is not None
        transport = self.transport
        self._connection.opened(transport, transport.write, transport.loseConnection)

    @override
    def dataReceived(self, data: bytes) -> None:
        try:
            events = self._framer.feed(data)
        except ParseError as e:
            self._connection.limit_exceeded(e)
            return
        for event in events:
            if isinstance(event, FramedMessage):
                self._connection.message(event.data)
            elif isinstance(event, KeepAlivePing):
                self._connection.keepalive()
            else:
                self._connection.activity()

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._connection.lost(str(reason.value))
        self._connection.socket_closed()


class _WebSocketProtocol(WebSocketSipProtocol):
    """The RFC 7118 shim, telling its connection when the socket itself is gone."""

    def __init__(self, connection: _Connection, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self._connection = connection

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self._connection.lost(str(reason.value))
        self._connection.socket_closed()


def _protocol_for(connection: _Connection, server_name: str) -> TwistedProtocol:
    if connection.transport_name in ("WS", "WSS"):
        settings = connection.layer.settings
        return _WebSocketProtocol(
            connection,
            is_client=connection.outbound,
            host=server_name,
            max_message_size=min(
                settings.max_datagram_size, settings.max_header_size + settings.max_body_size
            ),
            allowed_origins=settings.ws_allowed_origins,
            clock=connection.layer._reactor,
        )
    return _StreamProtocol(connection)


class _ServerFactory(ServerFactory):
    def __init__(self, layer: TransportLayer, transport: str) -> None:
        self._layer = layer
        self._transport = transport

    @override
    def buildProtocol(self, addr: Optional[IAddress]) -> Optional[TwistedProtocol]:
        if self._layer.connection_count >= self._layer.settings.max_connections:
            self._layer.stats[self._transport].connections_failed += 1
            return None
        return _protocol_for(_Connection(self._layer, self._transport, outbound=False), "")


class _ClientFactory(ClientFactory):
    def __init__(self, connection: _Connection, server_name: str) -> None:
        self._connection = connection
        self._server_name = server_name

    @override
    def buildProtocol(self, addr: Optional[IAddress]) -> Optional[TwistedProtocol]:
        return _protocol_for(self._connection, self._server_name)


# ---- UDP


_MAX_FLOWS = 4096


class _UdpProtocol(DatagramProtocol):
    """SIP over UDP: one datagram, one message (RFC 3261 §18.3)."""

    def __init__(self, layer: TransportLayer) -> None:
        self._layer = layer
        self._local: Optional[tuple[str, int]] = None
        self._socket: Optional[socket.socket] = None
        # One Flow per remote address, shared by its messages (and by the transactions that
        # keep one), up to _MAX_FLOWS addresses; then the cache starts again.
        self._flows: dict[tuple[str, int], Flow] = {}

    @override
    def startProtocol(self) -> None:
        assert self.transport is not None
        self._local = _address(self.transport.getHost())
        # A real port's socket (twisted.internet.udp.Port.socket); memory transports have none.
        sock = getattr(self.transport, "socket", None)
        self._socket = sock if isinstance(sock, socket.socket) else None

    @override
    def stopProtocol(self) -> None:
        self._socket = None

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram to ``addr``, whose host the caller has checked is an IP address.

        Straight to the socket when there is one: Twisted's ``Port.write`` checks the address
        again (three ``isIPAddress`` calls a datagram). Socket errors are handled as
        ``Port.write`` does: EINTR retried, EAGAIN/ENOBUFS drop the datagram (the
        transactions retransmit), ECONNREFUSED (an earlier datagram's ICMP error) ignored,
        EMSGSIZE and anything else raised.
        """
        sock = self._socket
        if sock is None:
            assert self.transport is not None
            self.transport.write(data, addr)
            return
        while True:
            try:
                sock.sendto(data, addr)
                return
            except InterruptedError:
                continue
            except (BlockingIOError, ConnectionRefusedError):
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    return
                raise

    @override
    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if not datagram.strip(b"\r\n \t"):  # keep-alive noise (RFC 5626 §4.4.1 uses STUN)
            return
        flow = self._flows.get(addr)
        if flow is None:
            if len(self._flows) >= _MAX_FLOWS:
                self._flows.clear()
            local_host, local_port = self._local or ("0.0.0.0", 0)
            flow = self._flows[addr] = Flow("UDP", addr[0], addr[1], local_host, local_port)
        self._layer.message_received(datagram, flow, self._reply)

    def _reply(self, data: bytes, flow: Flow) -> None:
        if self.transport is not None:
            self.send(data, (flow.remote_host, flow.remote_port))
