# -*- test-case-name: tests.unit.stun.test_shell -*-
"""The Twisted shell of the TURN server: sockets, timers and key look-ups around the sans-IO core.

The core (:class:`clearwater.stun.turn.TurnServer`) decides everything the RFCs say (RFC 8489,
RFC 8656, RFC 6156) and returns effects; :class:`TurnDriver` owns one core and carries them out:

- ``SendToClient``: a datagram from the listening UDP port the client reached, or bytes on its
  TCP/TLS connection (RFC 8656 §3.1). A slow stream reader gets at most ``max_write_buffer``
  bytes queued while its transport is paused; later frames are dropped (it is media).
- ``SendToPeer``: a datagram from the allocation's relay port (RFC 8656 §11). Datagrams to our
  own listening ports are dropped: a relay must not loop back into the server.
- ``OpenRelay``: bind a UDP relay port on the ``--relay-ip`` of the family asked for (RFC 6156
  §4.2), a random port (RFC 6056 §3.3) in ``min_port..max_port``, even when EVEN-PORT asks, with
  the next port held for :data:`RESERVATION_LIFETIME` seconds when its R bit asks (RFC 8656
  §7.2 and §14.6); a RESERVATION-TOKEN takes a held port. Then ``relay_opened()`` (with the
  token of a new reservation) or ``relay_failed()`` (the core answers 508).
- ``CloseRelay``: close the relay port.
- RFC 6062 TCP allocations: ``OpenRelay(transport="tcp")`` listens on a TCP relay port; a peer
  connecting to it is offered to the core (``peer_connection_accepted()``: a connection id and
  a ConnectionAttempt, or a refusal that closes it). ``ConnectPeer`` connects to the peer from
  the relay's IP address (an ephemeral port, not the relayed one: RFC 6062 §5.2 asks for the
  relayed address) within :data:`PEER_CONNECT_TIMEOUT` seconds, then ``peer_connected()`` or
  ``peer_connect_failed()``. A peer connection is not read until it is bound.
  ``BindConnection`` splices the client's data connection and the peer connection: raw bytes
  both ways, each side's transport pausing the other when its buffer fills; either closing
  closes the other. ``ClosePeerConnection`` closes a peer connection (and its data connection).
- ``LookUpKey``: ask the :class:`~clearwater.stun.credentials.IKeyProvider` for the user's key
  and give the request back to the core with it. At most ``max_lookups`` are in flight (more are
  dropped: UDP clients retransmit); each is bounded by ``lookup_timeout`` seconds, after which
  the key is ``None``.

One ``callLater`` follows the core's ``next_deadline()``, re-armed after every call into the
core; when it fires the driver calls ``expire()``.

The protocols: :class:`TurnUdpProtocol` (a listening UDP port), :class:`TurnStreamProtocol`
(a TCP or TLS connection, framed by :class:`~clearwater.stun.StreamFramer`; RFC 8489 §6.2.2,
RFC 8656 §12.5), :class:`RelayProtocol` (a UDP relay port), :class:`RelayTcpFactory` (a TCP
relay port) and :class:`PeerConnectionProtocol` (an RFC 6062 peer connection).
"""

from __future__ import annotations

import random as _random
import secrets
from collections.abc import Sequence
from typing import Any, Callable, Optional, Protocol

from twisted.internet import error
from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IListeningPort,
    IPushProducer,
    IReactorTCP,
    IReactorTime,
    IReactorUDP,
    IUDPTransport,
)
from twisted.internet.protocol import ClientFactory, DatagramProtocol, ServerFactory, connectionDone
from twisted.internet.protocol import Protocol as StreamProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater.errors import ParseError
from clearwater.stun import MAX_FRAME_SIZE, StreamFramer
from clearwater.stun.credentials import IKeyProvider
from clearwater.stun.turn import (
    BindConnection,
    Client,
    ClosePeerConnection,
    CloseRelay,
    ConnectPeer,
    LookUpKey,
    OpenRelay,
    SendToClient,
    SendToPeer,
    TurnStats,
)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LOOKUP_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_LOOKUPS",
    "DEFAULT_MAX_WRITE_BUFFER",
    "MAX_DATAGRAM",
    "PEER_CONNECT_TIMEOUT",
    "RESERVATION_LIFETIME",
    "ITurnReactor",
    "PeerConnectionProtocol",
    "RelayProtocol",
    "RelayTcpFactory",
    "TurnCore",
    "TurnDriver",
    "TurnStreamFactory",
    "TurnStreamProtocol",
    "TurnUdpProtocol",
]

_log = Logger()

Address = tuple[str, int]

#: The largest datagram read: a whole UDP payload, so no STUN message or ChannelData is cut.
MAX_DATAGRAM = 65535
#: Key look-ups in flight at most.
DEFAULT_MAX_LOOKUPS = 256
#: Seconds a key look-up may take before the key counts as unknown.
DEFAULT_LOOKUP_TIMEOUT = 5.0
#: TCP and TLS client connections at most.
DEFAULT_MAX_CONNECTIONS = 4096
#: Seconds a client connection may stay silent (an allocation is refreshed well within).
DEFAULT_IDLE_TIMEOUT = 3660.0
#: Bytes queued for a client connection whose transport asked us to pause, at most.
DEFAULT_MAX_WRITE_BUFFER = 1 << 20
#: Seconds the port after an EVEN-PORT allocation is held for its RESERVATION-TOKEN
#: (RFC 8656 §7.2: "about 30 seconds").
RESERVATION_LIFETIME = 30.0
#: Seconds an RFC 6062 Connect may take to reach the peer (then 447).
PEER_CONNECT_TIMEOUT = 10.0
#: Bytes a peer connection may send before it is bound (it is not read meanwhile; a transport
#: that delivers anyway is held to this).
_MAX_EARLY_PEER_DATA = 1 << 16
#: Random ports tried before a relay allocation fails with 508.
BIND_ATTEMPTS = 64
#: UDP client addresses whose ``Client`` objects are kept for reuse, at most.
_CLIENT_CACHE = 10000


class ITurnReactor(IReactorUDP, IReactorTCP, IReactorTime):
    """What the driver needs of a reactor: UDP ports, TCP (RFC 6062 relays) and timers."""


class TurnCore(Protocol):
    """What the driver needs of the sans-IO core (:class:`clearwater.stun.turn.TurnServer`)."""

    @property
    def stats(self) -> TurnStats: ...

    def received(
        self, client: Client, data: bytes, now: float, *, key: Optional[bytes] = ...
    ) -> Sequence[object]: ...

    def relay_opened(
        self, allocation: int, relayed: Address, now: float, *, reservation: Optional[bytes] = ...
    ) -> Sequence[object]: ...

    def relay_failed(self, allocation: int, now: float) -> Sequence[object]: ...

    def peer_received(
        self, allocation: int, peer: Address, data: bytes, now: float
    ) -> Sequence[object]: ...

    def connection_lost(self, client: Client, now: float) -> Sequence[object]: ...

    def next_deadline(self) -> Optional[float]: ...

    def expire(self, now: float) -> Sequence[object]: ...

    def peer_connected(self, connection_id: int, now: float) -> Sequence[object]: ...

    def peer_connect_failed(self, connection_id: int, now: float) -> Sequence[object]: ...

    def peer_connection_accepted(
        self, allocation: int, peer: Address, now: float
    ) -> tuple[Optional[int], Sequence[object]]: ...

    def peer_connection_lost(self, connection_id: int, now: float) -> Sequence[object]: ...


class _Reservation:
    """A relay port held for a RESERVATION-TOKEN, and the timer that frees it."""

    __slots__ = ("relay", "timer")

    def __init__(self, relay: RelayProtocol, timer: IDelayedCall) -> None:
        self.relay = relay
        self.timer = timer


class TurnDriver:
    """Owns one TURN core and carries out its effects (see the module docstring).

    :param reactor: UDP ports for relays, and the clock (``seconds()`` is the core's ``now``).
    :param core: the sans-IO TURN server.
    :param keys: where long-term keys come from.
    :param relay_ipv4: the IPv4 address relay ports bind to (None: no IPv4 relays).
    :param relay_ipv6: the IPv6 address relay ports bind to (None: no IPv6 relays).
    :param min_port: the lowest relay port.
    :param max_port: the highest relay port.
    :param random: picks relay ports (a seeded ``random.Random`` in tests).
    """

    def __init__(
        self,
        reactor: ITurnReactor,
        core: TurnCore,
        keys: IKeyProvider,
        *,
        relay_ipv4: Optional[str] = None,
        relay_ipv6: Optional[str] = None,
        min_port: int = 49152,
        max_port: int = 65535,
        max_lookups: int = DEFAULT_MAX_LOOKUPS,
        lookup_timeout: float = DEFAULT_LOOKUP_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
        random: Optional[_random.Random] = None,
        token: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not 1 <= min_port <= max_port <= 65535:
            raise ValueError("relay ports must be 1 <= min_port <= max_port <= 65535")
        self.reactor = reactor
        self.core = core
        self.keys = keys
        self.relay_ipv4 = relay_ipv4
        self.relay_ipv6 = relay_ipv6
        self.min_port = min_port
        self.max_port = max_port
        self.max_lookups = max_lookups
        self.lookup_timeout = lookup_timeout
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_write_buffer = max_write_buffer
        self._random = random if random is not None else _random.Random(secrets.randbits(64))
        self._token = token
        self._seconds = reactor.seconds
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            SendToPeer: self._send_to_peer,
            SendToClient: self._send_to_client,
            LookUpKey: self._look_up,
            OpenRelay: self._open_relay,
            CloseRelay: self._close_relay,
            ConnectPeer: self._connect_peer,
            ClosePeerConnection: self._close_peer_connection,
            BindConnection: self._bind_connection,
        }
        self._udp: dict[Address, IUDPTransport] = {}
        self._streams: dict[int, TurnStreamProtocol] = {}
        self._next_connection = 1
        self._relays: dict[int, RelayProtocol] = {}
        self._bound: set[Address] = set()
        self._reservations: dict[bytes, _Reservation] = {}
        self._tcp_relays: dict[int, tuple[Address, IListeningPort]] = {}
        self._bound_tcp: set[Address] = set()
        self._peers: dict[int, PeerConnectionProtocol] = {}
        self._connecting: dict[int, IConnector] = {}
        self._own: set[Address] = set()  # our listening addresses
        self._own_wildcard_ports: set[int] = set()  # ports we listen on at a wildcard address
        self._timer: Optional[IDelayedCall] = None
        self._armed_for: Optional[float] = None
        self._stopped = False
        #: Key look-ups in flight.
        self.lookups = 0
        #: Key look-ups by outcome: ``found``, ``unknown``, ``failed`` (error or timeout) and
        #: ``dropped`` (too many in flight).
        self.lookup_results: dict[str, int] = dict.fromkeys(
            ("found", "unknown", "failed", "dropped"), 0
        )
        #: Relay allocations that found no free port.
        self.relay_bind_failures = 0
        #: Datagrams and frames that could not be sent (socket errors, full buffers, loops).
        self.send_failures = 0

    # -- what the protocols call

    @property
    def connections(self) -> int:
        """TCP and TLS client connections open."""
        return len(self._streams)

    @property
    def relays(self) -> int:
        """Relay ports open, held reservations and TCP relays included."""
        return len(self._relays) + len(self._reservations) + len(self._tcp_relays)

    @property
    def peer_connections(self) -> int:
        """RFC 6062 peer connections open."""
        return len(self._peers)

    def received(self, client: Client, data: bytes) -> None:
        """A datagram, or a frame of a stream, from ``client``."""
        now = self._seconds()
        self._apply(self.core.received(client, data, now), now)

    def peer_received(self, allocation: int, peer: Address, data: bytes) -> None:
        """A datagram from ``peer`` on the relay port of ``allocation``."""
        now = self._seconds()
        self._apply(self.core.peer_received(allocation, peer, data, now), now)

    def udp_listening(self, local: Address, transport: IUDPTransport) -> None:
        """A listening UDP port: answers to clients that reached ``local`` leave from it."""
        self._udp[local] = transport
        self.stream_listening(local)

    def udp_stopped(self, local: Address) -> None:
        self._udp.pop(local, None)

    def stream_listening(self, local: Address) -> None:
        """A listening TCP or TLS port (relayed datagrams must not be sent to it)."""
        self._own.add(local)
        if local[0] in ("", "0.0.0.0", "::"):
            self._own_wildcard_ports.add(local[1])

    def stream_opened(self, stream: TurnStreamProtocol) -> Optional[int]:
        """A new client connection: its connection id, or None if there are too many."""
        if self._stopped or len(self._streams) >= self.max_connections:
            return None
        connection = self._next_connection
        self._next_connection += 1
        self._streams[connection] = stream
        return connection

    def stream_closed(self, stream: TurnStreamProtocol) -> None:
        """A client connection is gone: so are its allocations (RFC 8656 §3.1)."""
        client = stream.client
        if client is None or self._streams.get(client.connection) is not stream:
            return
        del self._streams[client.connection]
        if self._stopped:
            return
        now = self._seconds()
        self._apply(self.core.connection_lost(client, now), now)

    def stop(self) -> None:
        """Stop: no more timers, relays closed, client connections aborted."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._armed_for = None
        for relay in list(self._relays.values()):
            relay.close()
        self._relays.clear()
        for reservation in list(self._reservations.values()):
            if reservation.timer.active():
                reservation.timer.cancel()
            reservation.relay.close()
        self._reservations.clear()
        self._bound.clear()
        for _, port in self._tcp_relays.values():
            port.stopListening()
        self._tcp_relays.clear()
        self._bound_tcp.clear()
        for connector in self._connecting.values():
            connector.stopConnecting()
        self._connecting.clear()
        for peer in list(self._peers.values()):
            peer.abort()
        self._peers.clear()
        for stream in list(self._streams.values()):
            stream.abort()
        self._streams.clear()

    # -- effects

    def _apply(self, effects: Sequence[object], now: float) -> None:
        if self._stopped:
            return
        handlers = self._handlers
        for effect in effects:
            handler = handlers.get(type(effect))
            if handler is None:
                _log.error("TURN: unknown effect {effect!r}", effect=effect)
                continue
            handler(effect, now)
        self._arm(now)

    def _arm(self, now: float) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._armed_for:
            return
        self._armed_for = deadline
        timer = self._timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        delay = deadline - now if deadline > now else 0.0
        if timer is not None:
            timer.reset(delay)
        else:
            self._timer = self.reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._armed_for = None
        now = self._seconds()
        self._apply(self.core.expire(now), now)

    def _is_own(self, peer: Address) -> bool:
        """Whether ``peer`` is one of our listening ports: relaying there would loop."""
        return peer in self._own or peer[1] in self._own_wildcard_ports

    def _send_to_peer(self, effect: SendToPeer, now: float) -> None:
        relay = self._relays.get(effect.allocation)
        if relay is None or relay.transport is None:
            return
        peer = effect.peer
        if self._is_own(peer):
            self.send_failures += 1
            return
        try:
            relay.transport.write(effect.data, peer)
        except (OSError, error.MessageLengthError, error.InvalidAddressError):
            self.send_failures += 1

    def _send_to_client(self, effect: SendToClient, now: float) -> None:
        client = effect.client
        if client.transport == "udp":
            transport = self._udp.get(client.local)
            if transport is None:
                self.send_failures += 1
                return
            try:
                transport.write(effect.data, client.address)
            except (OSError, error.MessageLengthError, error.InvalidAddressError):
                self.send_failures += 1
            return
        stream = self._streams.get(client.connection)
        if stream is None or not stream.send(effect.data):
            self.send_failures += 1

    def _look_up(self, effect: LookUpKey, now: float) -> None:
        if self.lookups >= self.max_lookups:
            self.lookup_results["dropped"] += 1
            return
        self.lookups += 1
        try:
            d = self.keys.key(effect.username)
        except Exception:
            _log.failure("TURN: key provider raised")
            self._key_failed(Failure(), effect)  # type: ignore[no-untyped-call]
            return
        if not d.called:
            d.addTimeout(self.lookup_timeout, self.reactor)
        d.addCallbacks(
            self._key_found, self._key_failed, callbackArgs=(effect,), errbackArgs=(effect,)
        )
        d.addErrback(self._redelivery_failed)

    def _key_found(self, key: object, effect: LookUpKey) -> None:
        self.lookups -= 1
        if isinstance(key, bytes) and key:
            self.lookup_results["found"] += 1
            self._redeliver(effect, key)
        else:
            self.lookup_results["unknown"] += 1
            self._redeliver(effect, None)

    def _key_failed(self, reason: Failure, effect: LookUpKey) -> None:
        self.lookups -= 1
        self.lookup_results["failed"] += 1
        _log.warn(
            "TURN: no key for {username}: {error}", username=effect.username, error=reason.value
        )
        self._redeliver(effect, None)

    def _redeliver(self, effect: LookUpKey, key: Optional[bytes]) -> None:
        client = effect.client
        if self._stopped:
            return
        if client.transport != "udp" and client.connection not in self._streams:
            return  # the connection closed while we looked
        now = self._seconds()
        self._apply(self.core.received(client, effect.data, now, key=key), now)

    def _redelivery_failed(self, reason: Failure) -> None:
        _log.failure("TURN: a request failed after its key look-up", reason)

    def _open_relay(self, effect: OpenRelay, now: float) -> None:
        ip = {4: self.relay_ipv4, 6: self.relay_ipv6}.get(effect.family)
        allocation = effect.allocation
        if ip is None or allocation in self._relays or allocation in self._tcp_relays:
            self._apply(self.core.relay_failed(allocation, now), now)
            return
        if effect.transport == "tcp":
            self._open_tcp_relay(allocation, ip, now)
            return
        if effect.token is not None:
            reservation = self._reservations.pop(effect.token, None)
            if reservation is None or reservation.relay.address[0] != ip:
                if reservation is not None:
                    self._reservations[effect.token] = reservation
                self._apply(self.core.relay_failed(allocation, now), now)
                return
            if reservation.timer.active():
                reservation.timer.cancel()
            relay = reservation.relay
            relay.allocation = allocation
            self._relays[allocation] = relay
            self._apply(self.core.relay_opened(allocation, relay.address, now), now)
            return
        bound = self._bind(ip, effect.even_port or effect.reserve, effect.reserve)
        if bound is None:
            self.relay_bind_failures += 1
            _log.warn("TURN: no free relay port on {ip}", ip=ip)
            self._apply(self.core.relay_failed(allocation, now), now)
            return
        relay, held = bound
        relay.allocation = allocation
        self._relays[allocation] = relay
        token = None
        if held is not None:
            token = self._token(8)
            timer = self.reactor.callLater(RESERVATION_LIFETIME, self._release, token)
            self._reservations[token] = _Reservation(held, timer)
        self._apply(self.core.relay_opened(allocation, relay.address, now, reservation=token), now)

    def _close_relay(self, effect: CloseRelay, now: float) -> None:
        relay = self._relays.pop(effect.allocation, None)
        if relay is not None:
            self._bound.discard(relay.address)
            relay.close()
        tcp = self._tcp_relays.pop(effect.allocation, None)
        if tcp is not None:
            self._bound_tcp.discard(tcp[0])
            tcp[1].stopListening()

    # -- RFC 6062

    def _open_tcp_relay(self, allocation: int, ip: str, now: float) -> None:
        count = self.max_port - self.min_port + 1
        for _ in range(BIND_ATTEMPTS):
            address = (ip, self.min_port + self._random.randrange(count))
            if address in self._bound_tcp:
                continue
            try:
                port = self.reactor.listenTCP(
                    address[1], RelayTcpFactory(self, allocation), interface=ip
                )
            except error.CannotListenError:
                continue
            self._bound_tcp.add(address)
            self._tcp_relays[allocation] = (address, port)
            self._apply(self.core.relay_opened(allocation, address, now), now)
            return
        self.relay_bind_failures += 1
        _log.warn("TURN: no free TCP relay port on {ip}", ip=ip)
        self._apply(self.core.relay_failed(allocation, now), now)

    def _connect_peer(self, effect: ConnectPeer, now: float) -> None:
        connection = effect.connection_id
        relay = self._tcp_relays.get(effect.allocation)
        if relay is None or self._is_own(effect.peer) or connection in self._peers:
            self._apply(self.core.peer_connect_failed(connection, now), now)
            return
        factory = _PeerConnectFactory(self, connection)
        host, port = effect.peer
        self._connecting[connection] = self.reactor.connectTCP(
            host, port, factory, timeout=PEER_CONNECT_TIMEOUT, bindAddress=(relay[0][0], 0)
        )

    def _close_peer_connection(self, effect: ClosePeerConnection, now: float) -> None:
        connection = effect.connection_id
        connector = self._connecting.pop(connection, None)
        if connector is not None:
            connector.stopConnecting()
        peer = self._peers.pop(connection, None)
        if peer is not None:
            peer.close()

    def _bind_connection(self, effect: BindConnection, now: float) -> None:
        stream = self._streams.get(effect.client.connection)
        peer = self._peers.get(effect.connection_id)
        if stream is None or peer is None:
            if stream is not None:
                stream.close()
            return
        stream.splice(peer)

    def peer_connected(self, peer: PeerConnectionProtocol) -> None:
        """An outbound peer connection (``ConnectPeer``) is up."""
        connection = peer.connection_id
        assert connection is not None
        self._connecting.pop(connection, None)
        now = self._seconds()
        if self._stopped:
            peer.abort()
            return
        self._peers[connection] = peer
        self._apply(self.core.peer_connected(connection, now), now)

    def peer_connect_failed(self, connection: int) -> None:
        """An outbound peer connection failed or timed out."""
        if self._connecting.pop(connection, None) is None:
            return  # we stopped it: the core knows
        now = self._seconds()
        self._apply(self.core.peer_connect_failed(connection, now), now)

    def peer_accepted(self, peer: PeerConnectionProtocol, allocation: int) -> bool:
        """A peer connected to the TCP relay of ``allocation``: False if the core refuses."""
        if self._stopped:
            return False
        now = self._seconds()
        connection, effects = self.core.peer_connection_accepted(allocation, peer.address, now)
        if connection is not None:
            peer.connection_id = connection
            self._peers[connection] = peer
        self._apply(effects, now)
        return connection is not None

    def peer_lost(self, peer: PeerConnectionProtocol) -> None:
        """A peer connection closed: tell the core (unless it asked for that) and close the
        data connection spliced to it."""
        connection = peer.connection_id
        if connection is None or self._peers.get(connection) is not peer:
            return
        del self._peers[connection]
        if self._stopped:
            return
        now = self._seconds()
        self._apply(self.core.peer_connection_lost(connection, now), now)

    def _release(self, token: bytes) -> None:
        reservation = self._reservations.pop(token, None)
        if reservation is not None:
            self._bound.discard(reservation.relay.address)
            reservation.relay.close()

    # -- relay ports

    def _bind(
        self, ip: str, even: bool, reserve: bool
    ) -> Optional[tuple[RelayProtocol, Optional[RelayProtocol]]]:
        low, high = self.min_port, self.max_port
        if reserve:
            high -= 1  # the next port is held too
        if even:
            low += low % 2
            high -= high % 2
        if low > high:
            return None
        step = 2 if even else 1
        count = (high - low) // step + 1
        for _ in range(BIND_ATTEMPTS):
            port = low + step * self._random.randrange(count)
            if (ip, port) in self._bound or (reserve and (ip, port + 1) in self._bound):
                continue
            relay = self._listen(ip, port)
            if relay is None:
                continue
            if not reserve:
                return relay, None
            held = self._listen(ip, port + 1)
            if held is None:
                self._bound.discard(relay.address)
                relay.close()
                continue
            return relay, held
        return None

    def _listen(self, ip: str, port: int) -> Optional[RelayProtocol]:
        relay = RelayProtocol(self, (ip, port))
        try:
            self.reactor.listenUDP(port, relay, interface=ip, maxPacketSize=MAX_DATAGRAM)
        except error.CannotListenError:
            return None
        self._bound.add(relay.address)
        return relay


class TurnUdpProtocol(DatagramProtocol):
    """A listening UDP port of the TURN server (RFC 8489 §6.1, RFC 8656 §2.1)."""

    noisy = False

    def __init__(self, driver: TurnDriver) -> None:
        self.driver = driver
        self.local: Address = ("", 0)
        self._clients: dict[Any, Client] = {}

    @override
    def logPrefix(self) -> str:
        return "TURN"

    @override
    def startProtocol(self) -> None:
        host = self.transport.getHost()  # type: ignore[union-attr]
        self.local = (host.host, host.port)
        self.driver.udp_listening(self.local, self.transport)  # type: ignore[arg-type]

    @override
    def stopProtocol(self) -> None:
        self.driver.udp_stopped(self.local)

    @override
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        client = self._clients.get(addr)
        if client is None:
            if len(self._clients) >= _CLIENT_CACHE:
                self._clients.clear()
            client = Client("udp", (addr[0], addr[1]), self.local)
            self._clients[addr] = client
        self.driver.received(client, datagram)


class RelayProtocol(DatagramProtocol):
    """A relay port (RFC 8656 §2.2): datagrams from peers go to the core with the allocation's
    number; a port held for a reservation has none yet and drops them."""

    noisy = False

    def __init__(self, driver: TurnDriver, address: Address) -> None:
        self.driver = driver
        self.address = address
        self.allocation: Optional[int] = None

    @override
    def logPrefix(self) -> str:
        return "TURN relay"

    @override
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        allocation = self.allocation
        if allocation is not None:
            self.driver.peer_received(allocation, (addr[0], addr[1]), datagram)

    def close(self) -> None:
        self.allocation = None
        port = self.transport
        if port is not None:
            port.stopListening()


@implementer(IPushProducer)
class TurnStreamProtocol(StreamProtocol):
    """A TCP or TLS client connection: STUN messages and ChannelData framed on the stream
    (RFC 8489 §6.2.2, RFC 8656 §12.5). A framing error closes it; so does ``idle_timeout``
    seconds without a byte from the client. After an RFC 6062 ConnectionBind it is spliced to
    a peer connection and carries raw bytes (RFC 6062 §5.4)."""

    def __init__(self, driver: TurnDriver, transport_name: str) -> None:
        self.driver = driver
        self.transport_name = transport_name
        self.client: Optional[Client] = None
        #: The peer connection this data connection is spliced to, if any.
        self.spliced: Optional[PeerConnectionProtocol] = None
        self._framer = StreamFramer(max_frame_size=MAX_FRAME_SIZE)
        self._paused = False
        self._queued_while_paused = 0
        self._last_heard = 0.0
        self._idle: Optional[IDelayedCall] = None
        self._receiving = False

    @override
    def connectionMade(self) -> None:
        connection = self.driver.stream_opened(self)
        if connection is None:
            _log.warn("TURN: too many client connections; refusing one")
            self.abort()
            return
        transport: Any = self.transport
        peer, local = transport.getPeer(), transport.getHost()
        self.client = Client(
            self.transport_name, (peer.host, peer.port), (local.host, local.port), connection
        )
        transport.registerProducer(self, True)
        reactor = self.driver.reactor
        self._last_heard = reactor.seconds()
        self._idle = reactor.callLater(self.driver.idle_timeout, self._check_idle)

    @override
    def dataReceived(self, data: bytes) -> None:
        spliced = self.spliced
        if spliced is not None:
            spliced.write(data)
            return
        client = self.client
        if client is None:
            return
        self._last_heard = self.driver.reactor.seconds()
        try:
            frames = self._framer.feed(data)
        except ParseError as e:
            _log.info("TURN: closing {client}: {error}", client=client.address, error=e)
            self.abort()
            return
        driver = self.driver
        self._receiving = True
        try:
            for i, frame in enumerate(frames):
                driver.received(client, frame)
                if self.client is None:
                    return  # closed while handling the frame
                if self.spliced is not None:  # ConnectionBind: the rest is raw
                    rest = b"".join(frames[i + 1 :]) + self._framer.detach()
                    if rest:
                        self.spliced.write(rest)
                    return
        finally:
            self._receiving = False

    def send(self, data: bytes) -> bool:
        """Write ``data`` unless the transport is paused with ``max_write_buffer`` bytes queued
        already; False if dropped."""
        transport = self.transport
        if transport is None or self.client is None or self.spliced is not None:
            return False
        if self._paused:
            if self._queued_while_paused + len(data) > self.driver.max_write_buffer:
                return False
            self._queued_while_paused += len(data)
        transport.write(data)
        return True

    def splice(self, peer: PeerConnectionProtocol) -> None:
        """From now on, bytes both ways between this connection and ``peer``."""
        self.spliced = peer
        peer.spliced = self
        self._stop_idle_timer()  # the allocation's lifetime bounds it now
        if not self._receiving:  # else dataReceived hands over what follows the bind
            rest = self._framer.detach()
            if rest:
                peer.write(rest)
        peer.start()

    def write(self, data: bytes) -> None:
        """Raw bytes from the spliced peer."""
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Close after writing what is queued."""
        self._stop_idle_timer()
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Close the connection at once (its idle timer with it)."""
        self._stop_idle_timer()
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _stop_idle_timer(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_idle_timer()
        if self.client is not None:
            self.driver.stream_closed(self)
            self.client = None

    def _check_idle(self) -> None:
        reactor = self.driver.reactor
        silent = reactor.seconds() - self._last_heard
        if silent >= self.driver.idle_timeout:
            self._idle = None
            self.abort()
            return
        self._idle = reactor.callLater(self.driver.idle_timeout - silent, self._check_idle)

    # IPushProducer: the transport tells us when its buffer is full. Spliced, the peer stops
    # being read meanwhile; otherwise frames beyond ``max_write_buffer`` are dropped.

    def pauseProducing(self) -> None:  # noqa: N802 (IPushProducer)
        self._paused = True
        self._queued_while_paused = 0
        if self.spliced is not None:
            self.spliced.pause_reading()

    def resumeProducing(self) -> None:  # noqa: N802 (IPushProducer)
        self._paused = False
        self._queued_while_paused = 0
        if self.spliced is not None:
            self.spliced.resume_reading()

    def stopProducing(self) -> None:  # noqa: N802 (IPushProducer)
        self._paused = True

    def pause_reading(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.pauseProducing()

    def resume_reading(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.resumeProducing()


class TurnStreamFactory(ServerFactory):
    """Builds :class:`TurnStreamProtocol` for a TCP (``"tcp"``) or TLS (``"tls"``) port."""

    noisy = False

    def __init__(self, driver: TurnDriver, transport_name: str) -> None:
        if transport_name not in ("tcp", "tls"):
            raise ValueError("transport_name must be tcp or tls")
        self.driver = driver
        self.transport_name = transport_name

    @override
    def buildProtocol(self, addr: Any) -> TurnStreamProtocol:
        protocol = TurnStreamProtocol(self.driver, self.transport_name)
        protocol.factory = self
        return protocol


@implementer(IPushProducer)
class PeerConnectionProtocol(StreamProtocol):
    """An RFC 6062 peer connection of a TCP allocation: made by ``ConnectPeer``
    (``connection_id`` given) or accepted on the relay port (``allocation`` given; the core
    gives the id). It is not read until spliced to the client's data connection."""

    def __init__(
        self,
        driver: TurnDriver,
        *,
        connection_id: Optional[int] = None,
        allocation: Optional[int] = None,
    ) -> None:
        self.driver = driver
        self.connection_id = connection_id
        self.allocation = allocation
        self.address: Address = ("", 0)
        #: The client data connection this one is spliced to, if any.
        self.spliced: Optional[TurnStreamProtocol] = None
        self._early = bytearray()

    @override
    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        self.address = (peer.host, peer.port)
        transport.pauseProducing()  # not read until bound
        transport.registerProducer(self, True)
        if self.allocation is None:
            self.driver.peer_connected(self)
        elif not self.driver.peer_accepted(self, self.allocation):
            self.abort()

    def start(self) -> None:
        """Spliced: hand over anything held and start reading."""
        early, self._early = bytes(self._early), bytearray()
        if early and self.spliced is not None:
            self.spliced.write(early)
        self.resume_reading()

    @override
    def dataReceived(self, data: bytes) -> None:
        spliced = self.spliced
        if spliced is not None:
            spliced.write(data)
            return
        self._early += data
        if len(self._early) > _MAX_EARLY_PEER_DATA:
            self.abort()

    def write(self, data: bytes) -> None:
        """Raw bytes from the spliced client."""
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Close after writing what is queued; the spliced data connection too."""
        if self.transport is not None:
            self.transport.loseConnection()
        if self.spliced is not None:
            self.spliced.close()

    def abort(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.driver.peer_lost(self)
        if self.spliced is not None:
            self.spliced.close()

    def pause_reading(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.pauseProducing()

    def resume_reading(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.resumeProducing()

    # IPushProducer: our transport's buffer is full: stop reading the spliced client.

    def pauseProducing(self) -> None:  # noqa: N802 (IPushProducer)
        if self.spliced is not None:
            self.spliced.pause_reading()

    def resumeProducing(self) -> None:  # noqa: N802 (IPushProducer)
        if self.spliced is not None:
            self.spliced.resume_reading()

    def stopProducing(self) -> None:  # noqa: N802 (IPushProducer)
        pass


class RelayTcpFactory(ServerFactory):
    """The listening TCP relay port of an RFC 6062 allocation: peers connect here."""

    noisy = False

    def __init__(self, driver: TurnDriver, allocation: int) -> None:
        self.driver = driver
        self.allocation = allocation

    @override
    def buildProtocol(self, addr: Any) -> PeerConnectionProtocol:
        return PeerConnectionProtocol(self.driver, allocation=self.allocation)


class _PeerConnectFactory(ClientFactory):
    """Connects to the peer of a ``ConnectPeer``."""

    noisy = False

    def __init__(self, driver: TurnDriver, connection_id: int) -> None:
        self.driver = driver
        self.connection_id = connection_id

    @override
    def buildProtocol(self, addr: Any) -> PeerConnectionProtocol:
        return PeerConnectionProtocol(self.driver, connection_id=self.connection_id)

    @override
    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.driver.peer_connect_failed(self.connection_id)
