# -*- test-case-name: tests.unit.diameter.test_node -*-
"""A Diameter node: connections, peers, routing and applications (RFC 6733 §2, §5, §6).

:class:`DiameterNode` is a Twisted service. It listens for peers (``listen``), connects to the
peers it is configured with (``peers``), runs for each peer the RFC 6733 §5.6 state machine
(:class:`~clearwater.diameter.peer.PeerMachine`) and the RFC 3539 watchdog
(:class:`~clearwater.diameter.watchdog.Watchdog`), and gives its applications
:class:`~clearwater.diameter.interfaces.IDiameterNode`: ``request`` to send, ``set_handler``
to answer.

Peers and connections

- One connection carries a peer's traffic, as the state machine says: a second connection
  from the same Origin-Host is settled by the election (§5.6.4) or rejected. A peer is named
  by its Origin-Host; a configured peer whose CEA names another host is refused (a
  configuration error that would defeat this rule). Peers that connect to us unconfigured are
  accepted (``accept_unknown``), or answered DIAMETER_UNKNOWN_PEER.
- Capabilities exchange (§5.3): our CER/CEA carry Origin-Host, Origin-Realm, Host-IP-Address
  (the connection's local address), Vendor-Id, Product-Name, Origin-State-Id, the
  Supported-Vendor-Ids and each application (vendor ones inside
  Vendor-Specific-Application-Id). A peer with no application in common (the relay
  application counts as every one) gets DIAMETER_NO_COMMON_APPLICATION and is disconnected.
- Configured peers are connected at start. When a peer's machine falls back to Closed the
  node connects again after a back-off (Twisted's ``backoffPolicy``: 1 s growing to ``tc``),
  and the watchdog asks again every Tw while the peer is DOWN. Twisted's ``ClientService``
  is not used: it reconnects whenever its connection drops, which would fight the state
  machine (the loser of an election, a peer already open on its own connection).
- Connections are TCP, or TLS from the first byte (RFC 6733 §2.1) for peers configured with
  ``tls`` and on ``tls_listen``.
- Stopping the node sends DPR (Disconnect-Cause REBOOTING) to every open peer and waits for
  their DPAs (at most ``closing_timeout``) before closing; peers still connecting or
  exchanging capabilities are given up at once; requests still pending fail with
  :class:`~clearwater.diameter.interfaces.NoPeerError`. A peer's DPR is answered and its
  connection closed; one saying BUSY or DO_NOT_WANT_TO_TALK_TO_YOU is not reconnected for
  ``tc`` seconds.

Routing (§6.1): a request with a Destination-Host goes to that peer, and only to it; otherwise
to the first usable peer, in configuration order, of the Destination-Realm that supports the
request's application. A peer is usable while its connection is open and its watchdog OKAY.
When a peer fails with requests pending (its connection drops, or the watchdog fails it
over), each is sent again with the T flag to another usable peer (§5.5.4), or fails with
:class:`~clearwater.diameter.interfaces.NoPeerError`. Every request has a timeout; at most
``max_pending`` wait at once.

Malformed input (§7): a request that does not parse is answered with the result code the
codec gives (:mod:`.message`) and Failed-AVP; one of an application we do not serve with
DIAMETER_APPLICATION_UNSUPPORTED; one carrying an AVP with the M flag that its application's
dictionary does not know with DIAMETER_AVP_UNSUPPORTED and that AVP as Failed-AVP; 3xxx
answers set the E flag. A handler's exception, or an answer that is not a message that can be
sent, is answered DIAMETER_UNABLE_TO_COMPLY. A stream that cannot be framed (a length below 20
or above ``max_message``) is closed. Nothing a peer sends raises out of the node.
"""

from __future__ import annotations

import itertools
import random
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional

import attrs
from twisted.application import service
from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater._types import ISipReactor
from clearwater.diameter import peer as pm
from clearwater.diameter import watchdog as wd
from clearwater.diameter.dictionary import (
    APP_RELAY,
    BASE,
    Dictionary,
)
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
    RequestHandler,
)
from clearwater.diameter.message import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMITTED,
    Avp,
    DiameterDecodeError,
    Framer,
    FramingError,
    Message,
    make_answer,
    parse_message,
)
from clearwater.diameter.peer import Conn, PeerEvent, PeerMachine, PeerState
from clearwater.diameter.results import ResultCode
from clearwater.diameter.watchdog import Watchdog, WatchdogState

__all__ = [
    "Application",
    "DiameterNode",
    "PeerConfig",
]

_log = Logger()

CER = 257
DWR = 280
DPR = 282

# Disconnect-Cause (RFC 6733 §5.4.3).
_REBOOTING = 0
_BUSY = 1
_DO_NOT_WANT_TO_TALK_TO_YOU = 2

_OPEN = (PeerState.I_OPEN, PeerState.R_OPEN)


@attrs.frozen
class Application:
    """An application this node serves (advertised in CER/CEA): its id, the vendor it is
    advertised under (0: none; otherwise inside Vendor-Specific-Application-Id), whether it is
    an accounting application (Acct-Application-Id) and the dictionary its requests are
    checked against."""

    application_id: int
    vendor_id: int = 0
    accounting: bool = False
    dictionary: Dictionary = BASE


@attrs.frozen
class PeerConfig:
    """A peer to connect to: its Diameter identity and the address to reach it on; ``tls``:
    over TLS from the first byte (RFC 6733 §2.1, port 5658 by IANA), checked against the
    node's ``tls_client`` options for ``host``."""

    host: str
    address: str
    port: int = 3868
    tls: bool = False


@attrs.define(eq=False)
class _Pending:
    """A request waiting for its answer."""

    message: Message
    deferred: Deferred[Message]
    peer: _Peer
    timeout: Optional[IDelayedCall] = None
    tried: set[str] = attrs.field(factory=set)

    def stop_timer(self) -> None:
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()


class _Connection(Protocol):
    """One transport connection (RFC 6733 §2.1): frames messages and hands them to the node.
    ``conn`` says which of its peer's connections it is (I: we connected)."""

    def __init__(self, node: DiameterNode, conn: Conn, peer: Optional[_Peer]) -> None:
        self.node = node
        self.conn = conn
        self.peer = peer
        self.framer = Framer(node.max_message)
        self.closed = False
        self.closing = False  # we closed it: what it still delivers is not read
        self.cer: Optional[Message] = None  # a CER held for its CEA (responder connections)
        self.cer_timer: Optional[IDelayedCall] = None

    @override
    def connectionMade(self) -> None:
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)  # one message per write: no Nagle delay on answers
        if self.conn is Conn.RESPONDER:
            # A connection that sends no CER is dropped (RFC 6733 §5.6.1 leaves it unbound).
            self.cer_timer = self.node.reactor.callLater(self.node.cea_timeout, self.abort)

    @override
    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FramingError as e:
            _log.warn("Diameter: closing {address}: {error}", address=self.address, error=e)
            self.abort()
            return
        for frame in frames:
            if self.closed or self.closing:
                return
            self.node._received(self, frame)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        if self.cer_timer is not None and self.cer_timer.active():
            self.cer_timer.cancel()
        self.node._connection_lost(self)

    @property
    def address(self) -> str:
        if self.transport is None:
            return ""
        remote = self.transport.getPeer()
        return f"{getattr(remote, 'host', '')}:{getattr(remote, 'port', '')}"

    def local_address(self) -> str:
        assert self.transport is not None
        return str(getattr(self.transport.getHost(), "host", "127.0.0.1"))

    def send(self, message: Message) -> None:
        self.write(bytes(message))

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closing = True
            self.transport.loseConnection()

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.closing = True
            transport = self.transport
            if ITCPTransport.providedBy(transport):
                transport.abortConnection()
            else:
                transport.loseConnection()


class _Peer:
    """One peer: its state machine, watchdog, connections and timers."""

    def __init__(self, node: DiameterNode, host: str, config: Optional[PeerConfig]) -> None:
        self.node = node
        self.host = host
        self.config = config
        self.realm = ""
        self.applications: frozenset[int] = frozenset()
        self.machine = PeerMachine(
            node.identity,
            tc=node.tc,
            cea_timeout=node.cea_timeout,
            closing_timeout=node.closing_timeout,
        )
        self.watchdog = Watchdog(node.watchdog_interval, node.jitter)
        self.watchdog_state = self.watchdog.state  # as last logged
        self.connections: dict[Conn, _Connection] = {}
        self.queue: deque[tuple[PeerEvent, Optional[str], dict[str, Any]]] = deque()
        self.timer: Optional[IDelayedCall] = None
        self.watchdog_timer: Optional[IDelayedCall] = None
        self.reconnect: Optional[IDelayedCall] = None
        self.connecting: Optional[Deferred[Any]] = None  # the connection attempt in progress
        self.attempts = 0
        self.quiet_until = 0.0
        self.address = ""
        self.closed: Deferred[None] = Deferred()  # fires when the machine is Closed (stopping)

    @property
    def usable(self) -> bool:
        return self.machine.state in _OPEN and self.watchdog.state is WatchdogState.OKAY

    def serves(self, application_id: int) -> bool:
        return application_id in self.applications or APP_RELAY in self.applications

    def info(self) -> PeerInfo:
        return PeerInfo(self.host, self.realm, self.address)


@implementer(IDiameterNode)
class DiameterNode(service.Service):
    """A Diameter node (module docstring).

    ``reactor`` runs its connections and timers; ``identity`` and ``realm`` are our Origin-Host
    and Origin-Realm; ``applications`` what it serves and advertises; ``peers`` the peers it
    connects to, in routing preference order; ``listen`` a ``(port, interface)`` to accept
    peers on (port 0: any free port, see :attr:`port`).

    TLS (RFC 6733 §2.1: from the first byte): ``tls_listen`` accepts peers with the
    ``tls_server`` options; a :class:`PeerConfig` with ``tls`` is connected with
    ``tls_client(host)``'s options (e.g. ``TlsSettings.client_options`` of
    :mod:`clearwater.sip.transport`, which checks that the certificate names the peer).

    Timers in seconds: ``watchdog_interval`` Tw (RFC 3539, at least 6), ``tc`` (RFC 6733
    §2.1: the longest back-off between connection attempts and a connection attempt's limit),
    ``cea_timeout``, ``closing_timeout``, ``request_timeout`` (a request's default).
    ``jitter`` is the watchdog's jitter source."""

    def __init__(
        self,
        reactor: ISipReactor,
        identity: str,
        realm: str,
        applications: Sequence[Application],
        *,
        peers: Sequence[PeerConfig] = (),
        listen: Optional[tuple[int, str]] = None,
        tls_listen: Optional[tuple[int, str]] = None,
        tls_server: Optional[IOpenSSLContextFactory] = None,
        tls_client: Optional[Callable[[str], IOpenSSLClientConnectionCreator]] = None,
        accept_unknown: bool = True,
        product_name: str = "clearwater",
        vendor_id: int = 0,
        watchdog_interval: float = wd.TW_INIT,
        tc: float = 30.0,
        cea_timeout: float = 10.0,
        closing_timeout: float = 5.0,
        request_timeout: float = 5.0,
        max_pending: int = 10_000,
        max_message: int = 1 << 20,
        jitter: Callable[[], float] = wd.uniform_jitter,
        random_source: Optional[random.Random] = None,
    ) -> None:
        self.reactor = reactor
        self.identity = identity
        self.realm = realm
        self.applications = {app.application_id: app for app in applications}
        self.peer_configs = tuple(peers)
        self.listen_on = listen
        if tls_listen is not None and tls_server is None:
            raise ValueError("tls_listen needs tls_server options")
        if tls_client is None and any(config.tls for config in peers):
            raise ValueError("a TLS peer needs tls_client options")
        self.tls_listen_on = tls_listen
        self.tls_server = tls_server
        self.tls_client = tls_client
        self.accept_unknown = accept_unknown
        self.product_name = product_name
        self.vendor_id = vendor_id
        self.watchdog_interval = watchdog_interval
        self.tc = tc
        self.cea_timeout = cea_timeout
        self.closing_timeout = closing_timeout
        self.request_timeout = request_timeout
        self.max_pending = max_pending
        self.max_message = max_message
        self.jitter = jitter
        self._random = random_source or random.SystemRandom()
        self._handlers: dict[int, RequestHandler] = {}
        self._waiters: dict[str, list[Deferred[None]]] = {}
        self._peers: dict[str, _Peer] = {}
        self._order: list[_Peer] = []
        self._pending: dict[int, _Pending] = {}
        self._hop_by_hop = itertools.count(self._random.getrandbits(32))
        # RFC 6733 §3: high 12 bits from the low bits of the start time, low 20 random.
        started = int(time.time())
        self._end_to_end = itertools.count(((started & 0xFFF) << 20) | self._random.getrandbits(20))
        self._session_high = started & 0xFFFFFFFF
        self._session_low = itertools.count(self._random.getrandbits(16) << 16)
        self._origin_state_id = started & 0xFFFFFFFF
        self._backoff = backoffPolicy(initialDelay=1.0, maxDelay=tc, jitter=self._random.random)
        self._port: Optional[IListeningPort] = None
        self._tls_port: Optional[IListeningPort] = None
        self._running = False
        self.stats = {"requests_sent": 0, "answers_received": 0, "requests_received": 0}
        for config in self.peer_configs:
            self._add_peer(config.host, config)

    # ---- IDiameterNode

    def new_session_id(self, suffix: str = "") -> str:
        low = next(self._session_low) & 0xFFFFFFFF
        sid = f"{self.identity};{self._session_high};{low}"
        return sid + ";" + suffix if suffix else sid

    def set_handler(self, application_id: int, handler: RequestHandler) -> None:
        if application_id not in self.applications:
            raise ValueError(f"Application {application_id} is not one this node serves")
        self._handlers[application_id] = handler

    def request(self, message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
        if len(self._pending) >= self.max_pending:
            return defer.fail(NoPeerError(f"{self.max_pending} requests already pending"))
        e2e = next(self._end_to_end) & 0xFFFFFFFF
        message = attrs.evolve(message, flags=message.flags | FLAG_REQUEST, end_to_end=e2e)
        peer = self._route(message, ())
        if peer is None:
            return defer.fail(NoPeerError(_no_peer_reason(message, BASE)))

        def cancel(_: Deferred[Message]) -> None:
            self._cancel_pending(pending)

        pending = _Pending(message, Deferred(cancel), peer)
        delay = self.request_timeout if timeout is None else timeout
        pending.timeout = self.reactor.callLater(delay, self._timed_out, pending)
        try:
            self._send_pending(pending, peer)
        except (ValueError, struct.error) as e:  # a message that cannot be encoded
            pending.stop_timer()
            return defer.fail(e)
        return pending.deferred

    # ---- inspection

    @property
    def port(self) -> int:
        """The port the node listens on (0 when not listening)."""
        if self._port is None:
            return 0
        return int(getattr(self._port.getHost(), "port", 0))

    @property
    def tls_port(self) -> int:
        """The port the node listens on for TLS (0 when not listening)."""
        if self._tls_port is None:
            return 0
        return int(getattr(self._tls_port.getHost(), "port", 0))

    def peer_state(self, host: str) -> Optional[tuple[PeerState, WatchdogState]]:
        """A peer's state machine and watchdog states, or None for an unknown peer."""
        peer = self._peers.get(host.lower())
        return None if peer is None else (peer.machine.state, peer.watchdog.state)

    def usable_peers(self) -> list[str]:
        return [peer.host for peer in self._order if peer.usable]

    def add_peer(self, config: PeerConfig) -> None:
        """Connect to one more peer (after the configured ones in routing order), at once if
        the node runs. A peer of that host already known is left as it is."""
        if config.host.lower() in self._peers:
            return
        peer = self._add_peer(config.host, config)
        if self._running:
            self._start(peer)

    def wait_usable(self, host: str, timeout: float) -> Deferred[None]:
        """Fires when peer ``host`` is usable, or fails with NoPeerError after ``timeout``."""
        peer = self._peers.get(host.lower())
        if peer is not None and peer.usable:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.setdefault(host.lower(), []).append(d)

        def expire() -> None:
            waiting = self._waiters.get(host.lower(), [])
            if d in waiting:
                waiting.remove(d)
                d.errback(NoPeerError(f"Peer {host} not usable within {timeout} s"))

        timer = self.reactor.callLater(timeout, expire)
        return d.addBoth(_cancel_then, timer)

    def _notify_usable(self, peer: _Peer) -> None:
        if peer.usable:
            for d in self._waiters.pop(peer.host.lower(), []):
                d.callback(None)

    # ---- service

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._running = True
        if self.listen_on is not None:
            port, interface = self.listen_on
            self._port = self.reactor.listenTCP(port, _ServerFactory(self), interface=interface)
        if self.tls_listen_on is not None:
            port, interface = self.tls_listen_on
            assert self.tls_server is not None
            self._tls_port = self.reactor.listenSSL(
                port, _ServerFactory(self), self.tls_server, interface=interface
            )
        for peer in self._order:
            if peer.config is not None:
                self._start(peer)

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        self._running = False
        waits: list[Deferred[Any]] = []
        for listening in (self._port, self._tls_port):
            if listening is not None:
                waits.append(defer.maybeDeferred(listening.stopListening))
        self._port = self._tls_port = None
        for peer in list(self._order):
            if peer.reconnect is not None and peer.reconnect.active():
                peer.reconnect.cancel()
            peer.reconnect = None
            self._cancel_watchdog(peer)
            if peer.machine.state is PeerState.CLOSED:
                continue
            if peer.machine.state in _OPEN:
                peer.closed = Deferred()
                waits.append(peer.closed)
                self._feed(peer, PeerEvent.STOP)
            else:
                # Connecting, exchanging capabilities or closing: give up now, as if the
                # state's timer had run out (every intermediate state has a Timeout row that
                # ends in Closed).
                self._feed(peer, PeerEvent.TIMEOUT)
        for pending in list(self._pending.values()):
            self._fail(pending, NoPeerError("Diameter node stopping"))
        return defer.DeferredList(waits).addCallback(lambda _: None)

    # ---- peers

    def _add_peer(self, host: str, config: Optional[PeerConfig]) -> _Peer:
        peer = _Peer(self, host, config)
        self._peers[host.lower()] = peer
        self._order.append(peer)
        return peer

    def _start(self, peer: _Peer) -> None:
        peer.reconnect = None
        if self._running and peer.machine.state is PeerState.CLOSED:
            self._feed(peer, PeerEvent.START)

    def _schedule_reconnect(self, peer: _Peer) -> None:
        if not self._running or peer.config is None or peer.reconnect is not None:
            return
        delay = self._backoff(peer.attempts)
        peer.attempts += 1
        delay = max(delay, peer.quiet_until - self.reactor.seconds())
        peer.reconnect = self.reactor.callLater(delay, self._start, peer)

    def _connect(self, peer: _Peer) -> None:
        config = peer.config
        if config is None:  # an unconfigured peer is never connected to
            self.reactor.callLater(0, self._feed, peer, PeerEvent.I_RCV_CONN_NACK)
            return
        endpoint: IStreamClientEndpoint = TCP4ClientEndpoint(
            self.reactor, config.address, config.port, timeout=max(1, int(self.tc))
        )
        if config.tls:
            if self.tls_client is None:
                raise ValueError("a TLS peer needs tls_client options")
            endpoint = wrapClientTLS(self.tls_client(config.host), endpoint)
        connection = _Connection(self, Conn.INITIATOR, peer)
        attempt: Deferred[Any] = endpoint.connect(_OneShotFactory(connection))
        peer.connecting = attempt
        attempt.addCallbacks(
            lambda _: self._connected(peer, attempt, connection),
            lambda failure: self._connect_failed(failure, peer, attempt),
        )

    def _connected(self, peer: _Peer, attempt: Deferred[Any], connection: _Connection) -> None:
        if peer.connecting is not attempt:
            connection.abort()  # the attempt was given up meanwhile
            return
        peer.connecting = None
        if not self._running:
            connection.abort()
            self._connect_failed(Failure(NoPeerError("Diameter node stopping")), peer, None)  # type: ignore[no-untyped-call]
            return
        if peer.machine.state not in (PeerState.WAIT_CONN_ACK, PeerState.WAIT_CONN_ACK_ELECT):
            connection.abort()
            return
        peer.connections[Conn.INITIATOR] = connection
        self._feed(peer, PeerEvent.I_RCV_CONN_ACK)

    def _connect_failed(
        self, failure: Failure, peer: _Peer, attempt: Optional[Deferred[Any]]
    ) -> None:
        if attempt is not None:
            if peer.connecting is not attempt:
                return  # given up meanwhile (cancelled)
            peer.connecting = None
        _log.info(
            "Diameter: cannot connect to {host}: {error}", host=peer.host, error=failure.value
        )
        if peer.machine.state in (PeerState.WAIT_CONN_ACK, PeerState.WAIT_CONN_ACK_ELECT):
            self._feed(peer, PeerEvent.I_RCV_CONN_NACK)

    # ---- the state machine's effects

    def _feed(
        self, peer: _Peer, event: PeerEvent, origin_host: Optional[str] = None, **context: Any
    ) -> list[pm.Effect]:
        """Feed ``event`` to the peer's machine and carry out its effects. An event raised
        while effects are being carried out (a connection lost on the way) waits its turn, so
        that transitions are handled in the machine's order; its effects are not returned."""
        peer.queue.append((event, origin_host, context))
        if len(peer.queue) > 1:
            return []
        first: Optional[list[pm.Effect]] = None
        while peer.queue:
            event, origin_host, context = peer.queue[0]
            before = peer.machine.state
            effects = peer.machine.handle(event, self.reactor.seconds(), origin_host=origin_host)
            after = peer.machine.state
            try:
                for effect in effects:
                    self._apply(peer, effect, context)
                if after is not before:
                    self._state_changed(peer, before, after)
            except Exception:
                # A bug, not the peer's doing; the events queued behind this one still run.
                _log.failure("Diameter: {event} for {host}", event=event.value, host=peer.host)
            finally:
                peer.queue.popleft()
            if first is None:
                first = effects
        return first or []

    def _apply(self, peer: _Peer, effect: pm.Effect, context: dict[str, Any]) -> None:
        if isinstance(effect, pm.SendConnReq):
            self._connect(peer)
        elif isinstance(effect, pm.Accept):
            connection: _Connection = context["connection"]
            connection.peer = peer
            peer.connections[Conn.RESPONDER] = connection
        elif isinstance(effect, pm.Reject):
            rejected: _Connection = context["connection"]
            if rejected.cer is not None:
                rejected.send(
                    self._cea(rejected, rejected.cer, ResultCode.DIAMETER_UNABLE_TO_COMPLY)
                )
            rejected.close()
        elif isinstance(effect, pm.ProcessCER):
            cer_connection: _Connection = context["connection"]
            peer.realm = context["realm"]
            peer.applications = context["applications"]
            peer.address = cer_connection.address
        elif isinstance(effect, pm.SendCER):
            self._send_on(peer, effect.conn, self._cer(peer.connections[effect.conn]))
        elif isinstance(effect, pm.SendCEA):
            responder = peer.connections.get(effect.conn)
            if responder is not None and responder.cer is not None:
                responder.send(self._cea(responder, responder.cer, ResultCode.DIAMETER_SUCCESS))
                responder.cer = None
        elif isinstance(effect, (pm.Cleanup, pm.Error)):
            self._abort_all(peer)
        elif isinstance(effect, pm.ProcessCEA):
            peer.realm = context["realm"]
            peer.applications = context["applications"]
            peer.address = peer.connections[Conn.INITIATOR].address
        elif isinstance(effect, pm.SendDPR):
            self._send_on(peer, effect.conn, self._dpr())
        elif isinstance(effect, pm.SendDPA):
            self._send_on(peer, effect.conn, context["answer"])
        elif isinstance(effect, pm.Disconnect):
            gone = peer.connections.pop(effect.conn, None)
            if gone is not None:
                gone.peer = None
                gone.close()
        elif isinstance(effect, pm.SendMessage):
            carrier = peer.connections.get(effect.conn)
            if carrier is not None:
                carrier.write(context["data"])
        elif isinstance(effect, pm.SendDWA):
            self._send_on(peer, effect.conn, context["answer"])
        elif isinstance(effect, pm.ProcessDWA):
            self._watchdog(peer, peer.watchdog.dwa_received(self.reactor.seconds()))
        elif isinstance(effect, pm.ProcessDWR):
            self._watchdog(peer, peer.watchdog.message_received(self.reactor.seconds()))
        elif isinstance(effect, pm.DeliverMessage):
            self._deliver(peer, context["message"])
        elif isinstance(effect, pm.StartTimer):
            self._set_timer(peer, effect.at)
        elif isinstance(effect, pm.CancelTimer):
            if peer.timer is not None and peer.timer.active():
                peer.timer.cancel()
            peer.timer = None
        elif isinstance(effect, pm.Unexpected):
            _log.debug(
                "Diameter: {event} in {state} for {host}",
                event=effect.event.value,
                state=effect.state.value,
                host=peer.host,
            )
        # Elect: the machine held the election itself.

    def _set_timer(self, peer: _Peer, at: float) -> None:
        if peer.timer is not None and peer.timer.active():
            peer.timer.cancel()
        delay = max(0.0, at - self.reactor.seconds())
        peer.timer = self.reactor.callLater(delay, self._peer_timeout, peer)

    def _peer_timeout(self, peer: _Peer) -> None:
        peer.timer = None
        self._feed(peer, PeerEvent.TIMEOUT)

    def _send_on(self, peer: _Peer, conn: Conn, message: Message) -> None:
        connection = peer.connections.get(conn)
        if connection is not None:
            connection.send(message)

    def _abort_all(self, peer: _Peer) -> None:
        attempt, peer.connecting = peer.connecting, None
        if attempt is not None and not attempt.called:
            attempt.cancel()
        for connection in list(peer.connections.values()):
            connection.peer = None
            connection.abort()
        peer.connections.clear()

    def _state_changed(self, peer: _Peer, before: PeerState, after: PeerState) -> None:
        _log.info(
            "Diameter: peer {host} {before} -> {after}",
            host=peer.host,
            before=before.value,
            after=after.value,
        )
        now = self.reactor.seconds()
        if after in _OPEN and before not in _OPEN:
            peer.attempts = 0
            self._watchdog(peer, peer.watchdog.connection_up(now))
            self._notify_usable(peer)
        elif before in _OPEN:
            self._fail_over(peer)  # Closing: new requests go elsewhere already
        if after is PeerState.CLOSED:
            self._abort_all(peer)
            self._watchdog(peer, peer.watchdog.connection_down(now))
            if not peer.closed.called:
                peer.closed.callback(None)
            self._fail_over(peer)
            if peer.config is None:
                self._forget(peer)  # unconfigured peers are not kept: their number is unbounded
            else:
                self._schedule_reconnect(peer)

    def _forget(self, peer: _Peer) -> None:
        self._cancel_watchdog(peer)
        if peer.timer is not None and peer.timer.active():
            peer.timer.cancel()
        if self._peers.get(peer.host.lower()) is peer:
            del self._peers[peer.host.lower()]
        self._order.remove(peer)

    # ---- the watchdog's effects

    def _watchdog(self, peer: _Peer, effects: Iterable[wd.Effect]) -> bool:
        """Carry out watchdog effects; False if one said to throw the message away."""
        keep = True
        for effect in effects:
            if isinstance(effect, wd.SendDWR):
                conn = peer.machine.connection
                if conn is not None and peer.machine.state in _OPEN:
                    self._send_on(peer, conn, self._dwr())
            elif isinstance(effect, wd.StartTimer):
                delay = max(0.0, effect.at - self.reactor.seconds())
                timer = peer.watchdog_timer
                if not self._running:
                    self._cancel_watchdog(peer)
                elif timer is not None and timer.active():
                    timer.reset(delay)  # cheaper than cancel + callLater on every message
                else:
                    peer.watchdog_timer = self.reactor.callLater(delay, self._watchdog_fired, peer)
            elif isinstance(effect, wd.CloseConnection):
                for connection in list(peer.connections.values()):
                    connection.abort()
            elif isinstance(effect, wd.Failover):
                if self._running and peer.machine.state in _OPEN:
                    _log.warn("Diameter: peer {host} is not answering", host=peer.host)
                self._fail_over(peer)
            elif isinstance(effect, wd.Failback):
                _log.info("Diameter: peer {host} is usable", host=peer.host)
                self.reactor.callLater(0, self._notify_usable, peer)
            elif isinstance(effect, wd.AttemptOpen):
                if peer.config is not None and peer.reconnect is None:
                    self._start(peer)
            elif isinstance(effect, wd.Throwaway):
                keep = False
        state = peer.watchdog.state
        if state is not peer.watchdog_state:
            _log.info(
                "Diameter: peer {host} watchdog {before} -> {after}",
                host=peer.host,
                before=peer.watchdog_state.value,
                after=state.value,
            )
            peer.watchdog_state = state
        return keep

    def _watchdog_fired(self, peer: _Peer) -> None:
        peer.watchdog_timer = None
        self._watchdog(peer, peer.watchdog.timer_expired(self.reactor.seconds()))

    def _cancel_watchdog(self, peer: _Peer) -> None:
        if peer.watchdog_timer is not None and peer.watchdog_timer.active():
            peer.watchdog_timer.cancel()
        peer.watchdog_timer = None

    # ---- receiving

    def _received(self, connection: _Connection, frame: bytes) -> None:
        try:
            message = parse_message(frame)
        except DiameterDecodeError as e:
            self._malformed(connection, e)
            return
        peer = connection.peer
        code = message.command_code
        if code == CER and message.is_request:
            self._cer_received(connection, message)
            return
        if peer is None:
            _log.warn(
                "Diameter: closing {address}: command {code} before the capabilities exchange",
                address=connection.address,
                code=code,
            )
            connection.abort()
            return
        conn = connection.conn
        initiator = conn is Conn.INITIATOR
        if peer.machine.state is PeerState.WAIT_I_CEA or (
            peer.machine.state is PeerState.WAIT_RETURNS and initiator
        ):
            if initiator and code == CER:
                self._cea_received(peer, message)
            elif initiator:
                self._feed(peer, PeerEvent.I_RCV_NON_CEA)
            return
        now = self.reactor.seconds()
        if code == DWR:
            if message.is_request:
                answer = self._base_answer(message, ResultCode.DIAMETER_SUCCESS)
                event = PeerEvent.I_RCV_DWR if initiator else PeerEvent.R_RCV_DWR
                self._feed(peer, event, answer=answer)
            else:
                self._feed(peer, PeerEvent.I_RCV_DWA if initiator else PeerEvent.R_RCV_DWA)
            return
        if code == DPR:
            if message.is_request:
                self._dpr_received(peer, message, initiator)
            else:
                self._feed(peer, PeerEvent.I_RCV_DPA if initiator else PeerEvent.R_RCV_DPA)
            return
        if not self._watchdog(peer, peer.watchdog.message_received(now)):
            if message.is_request:
                connection.send(self._base_answer(message, ResultCode.DIAMETER_UNABLE_TO_COMPLY))
            return
        event = PeerEvent.I_RCV_MESSAGE if initiator else PeerEvent.R_RCV_MESSAGE
        effects = self._feed(peer, event, message=message)
        if any(isinstance(e, pm.Unexpected) for e in effects) and message.is_request:
            connection.send(self._base_answer(message, ResultCode.DIAMETER_UNABLE_TO_COMPLY))

    def _malformed(self, connection: _Connection, error: DiameterDecodeError) -> None:
        header = error.header
        _log.warn(
            "Diameter: malformed message from {address}: {error}",
            address=connection.address,
            error=error,
        )
        if header is None or not header.is_request:
            if header is not None and connection.peer is not None:
                pending = self._pending.get(header.hop_by_hop)
                if (
                    pending is not None
                    and pending.peer is connection.peer
                    and pending.message.end_to_end == header.end_to_end
                ):
                    self._fail(pending, error)
            return
        request = Message(
            header.command_code,
            header.application_id,
            (),
            header.flags & (FLAG_REQUEST | FLAG_PROXIABLE),
            header.hop_by_hop,
            header.end_to_end,
        )
        connection.send(self._error_answer(request, error.result_code, error.failed_avp))
        if connection.peer is None:
            connection.close()  # a CER that does not parse: no capabilities exchange

    def _capabilities(self, message: Message) -> tuple[str, str, frozenset[int]]:
        host = BASE.get(message, "Origin-Host") or ""
        realm = BASE.get(message, "Origin-Realm") or ""
        apps = set(BASE.get_all(message, "Auth-Application-Id"))
        apps.update(BASE.get_all(message, "Acct-Application-Id"))
        apps.update(BASE.get_all(message, "Vendor-Specific-Application-Id", "Auth-Application-Id"))
        apps.update(BASE.get_all(message, "Vendor-Specific-Application-Id", "Acct-Application-Id"))
        return host, realm, frozenset(apps)

    def _common(self, applications: frozenset[int]) -> bool:
        return APP_RELAY in applications or bool(applications & set(self.applications))

    def _cer_received(self, connection: _Connection, cer: Message) -> None:
        if connection.conn is not Conn.RESPONDER or connection.peer is not None:
            connection.send(self._base_answer(cer, ResultCode.DIAMETER_UNABLE_TO_COMPLY))
            return
        if connection.cer_timer is not None and connection.cer_timer.active():
            connection.cer_timer.cancel()
        if not self._running:  # accepted before the node stopped listening
            connection.send(self._cea(connection, cer, ResultCode.DIAMETER_UNABLE_TO_COMPLY))
            connection.close()
            return
        try:
            host, realm, applications = self._capabilities(cer)
        except DiameterDecodeError as e:
            connection.send(self._cea(connection, cer, e.result_code, e.failed_avp))
            connection.close()
            return
        if not host or not realm:
            missing = BASE.avp("Origin-Host" if not host else "Origin-Realm", "")
            connection.send(self._cea(connection, cer, ResultCode.DIAMETER_MISSING_AVP, missing))
            connection.close()
            return
        if not self._common(applications):
            connection.send(self._cea(connection, cer, ResultCode.DIAMETER_NO_COMMON_APPLICATION))
            connection.close()
            return
        peer = self._peers.get(host.lower())
        if peer is None:
            if not self.accept_unknown:
                connection.send(self._cea(connection, cer, ResultCode.DIAMETER_UNKNOWN_PEER))
                connection.close()
                return
            peer = self._add_peer(host, None)
        connection.cer = cer
        effects = self._feed(
            peer,
            PeerEvent.R_CONN_CER,
            origin_host=host,
            connection=connection,
            realm=realm,
            applications=applications,
        )
        if any(isinstance(e, pm.Unexpected) for e in effects):
            connection.send(self._cea(connection, cer, ResultCode.DIAMETER_UNABLE_TO_COMPLY))
            connection.close()

    def _cea_received(self, peer: _Peer, cea: Message) -> None:
        try:
            host, realm, applications = self._capabilities(cea)
            result = BASE.get(cea, "Result-Code")
        except DiameterDecodeError:
            host, realm, applications, result = "", "", frozenset(), None
        problem = ""
        if result != ResultCode.DIAMETER_SUCCESS:
            problem = f"CEA result {result}"
        elif host.lower() != peer.host.lower():
            problem = f"CEA from {host!r}, expected {peer.host!r}"
        elif not self._common(applications):
            problem = "no application in common"
        if problem:
            _log.warn("Diameter: peer {host} refused: {problem}", host=peer.host, problem=problem)
            connection = peer.connections.get(Conn.INITIATOR)
            if connection is not None:
                connection.abort()  # I-Peer-Disc follows
            return
        self._feed(peer, PeerEvent.I_RCV_CEA, realm=realm, applications=applications)

    def _dpr_received(self, peer: _Peer, dpr: Message, initiator: bool) -> None:
        try:
            cause = BASE.get(dpr, "Disconnect-Cause")
        except DiameterDecodeError:
            cause = None
        if cause in (_BUSY, _DO_NOT_WANT_TO_TALK_TO_YOU):
            peer.quiet_until = self.reactor.seconds() + self.tc
        answer = self._base_answer(dpr, ResultCode.DIAMETER_SUCCESS)
        self._feed(peer, PeerEvent.I_RCV_DPR if initiator else PeerEvent.R_RCV_DPR, answer=answer)
        # The sender of the DPR closes once it has our DPA; should it not, Closing times out.

    def _connection_lost(self, connection: _Connection) -> None:
        peer = connection.peer
        if peer is None or peer.connections.get(connection.conn) is not connection:
            return
        del peer.connections[connection.conn]
        connection.peer = None
        initiator = connection.conn is Conn.INITIATOR
        self._feed(peer, PeerEvent.I_PEER_DISC if initiator else PeerEvent.R_PEER_DISC)

    # ---- requests and answers

    def _deliver(self, peer: _Peer, message: Message) -> None:
        if not message.is_request:
            self._answer_received(peer, message)
            return
        self.stats["requests_received"] += 1
        app = self.applications.get(message.application_id)
        handler = self._handlers.get(message.application_id)
        if app is None or handler is None:
            self._answer(
                peer, self._base_answer(message, ResultCode.DIAMETER_APPLICATION_UNSUPPORTED)
            )
            return
        if app.dictionary.command_for(message.command_code, message.application_id) is None:
            self._answer(peer, self._base_answer(message, ResultCode.DIAMETER_COMMAND_UNSUPPORTED))
            return
        for avp in message.avps:
            if avp.mandatory and app.dictionary.definition(avp) is None:
                self._answer(
                    peer,
                    self._error_answer(message, ResultCode.DIAMETER_AVP_UNSUPPORTED, avp),
                )
                return
        d = defer.maybeDeferred(handler, message, peer.info())
        d.addCallbacks(
            lambda answer: self._handler_answered(peer, message, answer),
            lambda failure: self._handler_failed(peer, message, failure),
        )

    def _handler_answered(self, peer: _Peer, request: Message, answer: object) -> None:
        try:
            if not isinstance(answer, Message):
                raise TypeError(f"Handler answered {answer!r}, not a Message")
            data = bytes(answer)
        except Exception:
            _log.failure("Diameter: handler's answer unusable")
            self._answer(peer, self._base_answer(request, ResultCode.DIAMETER_UNABLE_TO_COMPLY))
            return
        self._feed(peer, PeerEvent.SEND_MESSAGE, data=data)

    def _handler_failed(self, peer: _Peer, request: Message, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, DiameterDecodeError):
            self._answer(peer, self._error_answer(request, error.result_code, error.failed_avp))
            return
        _log.failure("Diameter: handler failed", failure)
        self._answer(peer, self._base_answer(request, ResultCode.DIAMETER_UNABLE_TO_COMPLY))

    def _answer(self, peer: _Peer, answer: Message) -> None:
        self._feed(peer, PeerEvent.SEND_MESSAGE, data=bytes(answer))

    def _answer_received(self, peer: _Peer, answer: Message) -> None:
        pending = self._pending.get(answer.hop_by_hop)
        if pending is None or pending.peer is not peer:
            _log.debug("Diameter: unexpected answer from {host}", host=peer.host)
            return
        if pending.message.end_to_end != answer.end_to_end:
            _log.debug("Diameter: answer from {host} with another end-to-end", host=peer.host)
            return
        del self._pending[answer.hop_by_hop]
        self.stats["answers_received"] += 1
        pending.stop_timer()
        pending.deferred.callback(answer)

    def _route(self, message: Message, tried: Iterable[str]) -> Optional[_Peer]:
        destination = BASE.get(message, "Destination-Host")
        if destination is not None:
            peer = self._peers.get(destination.lower())
            if peer is not None and peer.usable and peer.host not in tried:
                return peer
            return None
        realm = BASE.get(message, "Destination-Realm")
        for peer in self._order:
            if (
                peer.usable
                and peer.host not in tried
                and (realm is None or peer.realm.lower() == realm.lower())
                and peer.serves(message.application_id)
            ):
                return peer
        return None

    def _send_pending(self, pending: _Pending, peer: _Peer) -> None:
        hbh = next(self._hop_by_hop) & 0xFFFFFFFF
        while hbh in self._pending:
            hbh = next(self._hop_by_hop) & 0xFFFFFFFF
        retransmit = FLAG_RETRANSMITTED if pending.tried else 0
        message = attrs.evolve(
            pending.message, hop_by_hop=hbh, flags=pending.message.flags | retransmit
        )
        data = bytes(message)
        pending.message = message
        pending.peer = peer
        pending.tried.add(peer.host)
        self._pending[hbh] = pending
        self.stats["requests_sent"] += 1
        self._feed(peer, PeerEvent.SEND_MESSAGE, data=data)

    def _fail_over(self, peer: _Peer) -> None:
        for hbh, pending in list(self._pending.items()):
            if pending.peer is not peer:
                continue
            del self._pending[hbh]
            other = self._route(pending.message, pending.tried) if self._running else None
            if other is None:
                self._fail(pending, NoPeerError(f"Peer {peer.host} failed"), popped=True)
            else:
                self._send_pending(pending, other)

    def _fail(self, pending: _Pending, error: Exception, popped: bool = False) -> None:
        if not popped:
            self._forget_pending(pending)
        pending.stop_timer()
        if not pending.deferred.called:
            pending.deferred.errback(error)

    def _forget_pending(self, pending: _Pending) -> None:
        hbh = pending.message.hop_by_hop
        if self._pending.get(hbh) is pending:
            del self._pending[hbh]

    def _timed_out(self, pending: _Pending) -> None:
        self._forget_pending(pending)
        if not pending.deferred.called:
            pending.deferred.errback(DiameterTimeoutError("No Diameter answer in time"))

    def _cancel_pending(self, pending: _Pending) -> None:
        self._forget_pending(pending)
        pending.stop_timer()

    # ---- base protocol messages

    def _identity_avps(self) -> list[Avp]:
        return [BASE.avp("Origin-Host", self.identity), BASE.avp("Origin-Realm", self.realm)]

    def _capability_avps(self, connection: _Connection) -> list[Avp]:
        avps = self._identity_avps()
        avps.append(BASE.avp("Host-IP-Address", connection.local_address()))
        avps.append(BASE.avp("Vendor-Id", self.vendor_id))
        avps.append(BASE.avp("Product-Name", self.product_name))
        avps.append(BASE.avp("Origin-State-Id", self._origin_state_id))
        vendors = sorted({app.vendor_id for app in self.applications.values() if app.vendor_id})
        avps.extend(BASE.avp("Supported-Vendor-Id", vendor) for vendor in vendors)
        for app in self.applications.values():
            name = "Acct-Application-Id" if app.accounting else "Auth-Application-Id"
            if app.vendor_id:
                avps.append(
                    BASE.group(
                        "Vendor-Specific-Application-Id",
                        BASE.avp("Vendor-Id", app.vendor_id),
                        BASE.avp(name, app.application_id),
                    )
                )
            else:
                avps.append(BASE.avp(name, app.application_id))
        return avps

    def _cer(self, connection: _Connection) -> Message:
        return Message(
            CER,
            0,
            tuple(self._capability_avps(connection)),
            FLAG_REQUEST,
            next(self._hop_by_hop) & 0xFFFFFFFF,
            next(self._end_to_end) & 0xFFFFFFFF,
        )

    def _cea(
        self,
        connection: _Connection,
        cer: Message,
        result: int,
        failed_avp: Optional[Avp] = None,
    ) -> Message:
        avps = [BASE.avp("Result-Code", result), *self._capability_avps(connection)]
        if failed_avp is not None:
            avps.append(BASE.group("Failed-AVP", failed_avp))
        error = 3000 <= result < 4000
        return make_answer(cer, avps, error=error)

    def _dwr(self) -> Message:
        avps = (*self._identity_avps(), BASE.avp("Origin-State-Id", self._origin_state_id))
        return Message(
            DWR,
            0,
            avps,
            FLAG_REQUEST,
            next(self._hop_by_hop) & 0xFFFFFFFF,
            next(self._end_to_end) & 0xFFFFFFFF,
        )

    def _dpr(self) -> Message:
        avps = (*self._identity_avps(), BASE.avp("Disconnect-Cause", _REBOOTING))
        return Message(
            DPR,
            0,
            avps,
            FLAG_REQUEST,
            next(self._hop_by_hop) & 0xFFFFFFFF,
            next(self._end_to_end) & 0xFFFFFFFF,
        )

    def _base_answer(self, request: Message, result: int) -> Message:
        avps = [BASE.avp("Result-Code", result), *self._identity_avps()]
        if request.command_code == DWR:
            avps.append(BASE.avp("Origin-State-Id", self._origin_state_id))
        return make_answer(request, avps, error=3000 <= result < 4000)

    def _error_answer(self, request: Message, result: int, failed_avp: Optional[Avp]) -> Message:
        # Error-Reporting-Host is left out: it is sent only when it differs from the Origin-Host
        # (RFC 6733 §7.3), and we answer for ourselves.
        avps = [BASE.avp("Result-Code", result), *self._identity_avps()]
        if failed_avp is not None:
            avps.append(BASE.group("Failed-AVP", failed_avp))
        return make_answer(request, avps, error=3000 <= result < 4000)


def _cancel_then(result: Any, timer: IDelayedCall) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _no_peer_reason(message: Message, dictionary: Dictionary) -> str:
    host = dictionary.get(message, "Destination-Host")
    if host is not None:
        return f"Peer {host} is not usable"
    return f"No usable peer for realm {dictionary.get(message, 'Destination-Realm')}"


class _ServerFactory(ServerFactory):
    """Accepts peers' connections."""

    def __init__(self, node: DiameterNode) -> None:
        self.node = node

    @override
    def buildProtocol(self, addr: Any) -> _Connection:
        return _Connection(self.node, Conn.RESPONDER, None)


class _OneShotFactory(Factory):
    """Hands out one prepared connection (for one connection attempt)."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    @override
    def buildProtocol(self, addr: Any) -> _Connection:
        return self.connection
