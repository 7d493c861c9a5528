"""In-memory UDP for tests: a memory reactor with ``listenUDP`` and a lossy datagram link.

Twisted's :class:`~twisted.internet.testing.MemoryReactorClock` records TCP, SSL and UNIX
calls but has no ``listenUDP`` (``IReactorUDP``); SIP over UDP (RFC 3261 §18) and STUN/TURN need
one. This module adds it, in the style of :mod:`twisted.internet.testing`:

- :class:`SipMemoryReactor`: a ``MemoryReactorClock`` that also provides ``IReactorUDP``.
  ``listenUDP`` records its call in ``udpPorts`` and connects the protocol to a
  :class:`FakeUDPPort`, which records every datagram written in ``written``.
  :meth:`SipMemoryReactor.deliver_datagram` feeds a datagram to a listening protocol.
- :class:`LossyDatagramLink`: two :class:`FakeUDPPort` endpoints joined in memory. Datagrams
  written by one side are queued for the other; :meth:`~LossyDatagramLink.pump` delivers them
  (and the answers they provoke) until the link is quiet, dropping those a ``drop`` policy
  picks. This is how transaction-layer tests show that retransmissions (RFC 3261 §17.1.1.2
  timer A, §17.1.2.2 timer E) recover lost datagrams::

      reactor = SipMemoryReactor()
      client_port = reactor.listenUDP(0, client, interface="10.0.0.1")
      server_port = reactor.listenUDP(5060, server, interface="10.0.0.2")
      link = LossyDatagramLink(client_port, server_port, drop=drop_first(1))
      client.send_request(("10.0.0.2", 5060))  # your protocol; datagram 0 is lost
      link.pump()
      reactor.advance(0.5)                     # timer A fires: datagram 1 goes through
      link.pump()
      assert [d.seq for d in link.dropped] == [0]

  ``drop`` is any ``Callable[[bytes, int], bool]`` given each datagram and its sequence
  number on the link (0, 1, 2, ... in the order they were written, both directions counted
  together): ``drop_first(n)``, ``drop_sequence(2, 5)``,
  ``drop_matching(lambda d: d.startswith(b"INVITE "), limit=2)`` or a lambda such as
  ``lambda data, seq: seq % 2 == 0`` (every other datagram).

No sockets, no DNS, no wall clock: time is the reactor's ``Clock``.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional, Union

import attrs
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, InvalidAddressError, MessageLengthError
from twisted.internet.interfaces import IListeningPort, IReactorUDP, IUDPTransport
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from typing_extensions import override
from zope.interface import implementer

__all__ = [
    "DropPolicy",
    "FakeUDPPort",
    "LinkDatagram",
    "LossyDatagramLink",
    "SipMemoryReactor",
    "drop_first",
    "drop_matching",
    "drop_nothing",
    "drop_sequence",
]

#: ``(host, port)`` of a UDP endpoint, host an IP address literal.
Address = tuple[str, int]

#: Decides whether a datagram is lost: called with its bytes and its sequence number.
DropPolicy = Callable[[bytes, int], bool]

#: The first port number handed out for ``listenUDP(0, ...)``.
FIRST_EPHEMERAL_PORT = 40000

# Largest UDP payload: 65535 - 8 (UDP header) - 20 (IPv4 header); IPv6 has no header in the
# payload length, so 65535 - 8.
_MAX_PAYLOAD_IPV4 = 65507
_MAX_PAYLOAD_IPV6 = 65527

_WILDCARDS = ("", "0.0.0.0", "::")


def _is_wildcard(host: str) -> bool:
    return host in _WILDCARDS


def _invalid_address(host: str, message: str) -> InvalidAddressError:
    return InvalidAddressError(host, message)  # type: ignore[no-untyped-call]  # untyped in Twisted


@implementer(IUDPTransport, IListeningPort)
class FakeUDPPort:
    """A UDP port in memory: the transport of one ``DatagramProtocol`` and its listening port.

    Like Twisted's real ``udp.Port`` it is both :class:`IUDPTransport` and
    :class:`IListeningPort`. Writes are checked as the real one checks them (an IP address,
    not a host name, of the port's family; at most one UDP payload) and recorded in
    ``written`` as ``(bytes, (host, port))``; nothing is sent anywhere.

    :ivar protocol: the protocol this port delivers to.
    :ivar interface: the interface it was bound to, as given (``""`` for all IPv4).
    :ivar port: the port number (the allocated one for ``listenUDP(0, ...)``).
    :ivar max_packet_size: datagrams delivered to the protocol are cut to this size, as
        ``recvfrom(maxPacketSize)`` does.
    :ivar written: every datagram written, in order.
    :ivar listening: True from :meth:`startListening` until :meth:`stopListening`.
    """

    def __init__(
        self, protocol: DatagramProtocol, interface: str, port: int, max_packet_size: int = 8192
    ) -> None:
        self.protocol = protocol
        self.interface = interface
        self.port = port
        self.max_packet_size = max_packet_size
        self.written: list[tuple[bytes, Address]] = []
        self.listening = False
        self.broadcast_allowed = False
        self.connected_to: Optional[Address] = None
        self._ipv6 = isIPv6Address(interface)
        self._observers: list[Callable[[FakeUDPPort, bytes, Address], None]] = []

    # ---- IListeningPort

    def startListening(self) -> None:  # noqa: N802 (IListeningPort)
        """Connect the protocol to this port (``makeConnection``, so ``startProtocol`` runs)."""
        if self.listening:
            return
        self.listening = True
        self.protocol.makeConnection(self)

    def stopListening(self) -> Optional[Deferred[None]]:  # noqa: N802 (IListeningPort)
        """Stop at once: the protocol's ``doStop`` runs (``stopProtocol`` when it was its last
        port). Returns a fired Deferred, or None if the port was not listening, as
        ``udp.Port`` does."""
        if not self.listening:
            return None
        self.listening = False
        self.protocol.doStop()  # type: ignore[no-untyped-call]  # untyped in Twisted
        return succeed(None)

    def getHost(self) -> Union[IPv4Address, IPv6Address]:  # noqa: N802 (IUDPTransport)
        """``IPv4Address("UDP", interface or "0.0.0.0", port)`` (IPv6Address for IPv6)."""
        if self._ipv6:
            return IPv6Address("UDP", self.interface, self.port)
        return IPv4Address("UDP", self.interface or "0.0.0.0", self.port)

    # ---- IUDPTransport

    def write(self, packet: bytes, addr: Optional[Address] = None) -> None:
        """Record ``packet`` as sent to ``addr`` (the connected address if None)."""
        if not self.listening:
            raise RuntimeError("write() on a UDP port that is not listening")
        if self.connected_to is not None:
            if addr not in (None, self.connected_to):
                raise ValueError("connected UDP port can only write to " + repr(self.connected_to))
            addr = self.connected_to
        elif addr is None:
            raise ValueError("write() needs an address unless the port is connected")
        else:
            self._check_address(addr[0])
        limit = _MAX_PAYLOAD_IPV6 if self._ipv6 else _MAX_PAYLOAD_IPV4
        if len(packet) > limit:
            raise MessageLengthError("message too long")
        destination = (addr[0], addr[1])
        self.written.append((packet, destination))
        for observer in list(self._observers):
            observer(self, packet, destination)

    def connect(self, host: str, port: int) -> None:
        """Connected mode: writes go to (host, port) only, and only datagrams from there are
        delivered."""
        if self.connected_to is not None:
            raise RuntimeError("already connected, reconnecting is not currently supported")
        if not isIPAddress(host) and not isIPv6Address(host):
            raise _invalid_address(host, "not an IPv4 or IPv6 address.")
        self.connected_to = (host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:  # noqa: N802 (IUDPTransport)
        self.broadcast_allowed = bool(enabled)

    def getBroadcastAllowed(self) -> bool:  # noqa: N802 (IUDPTransport)
        return self.broadcast_allowed

    # ---- test helpers

    def deliver(self, data: bytes, addr: Address) -> bool:
        """Hand a datagram from ``addr`` to the protocol's ``datagramReceived``.

        It is cut to ``max_packet_size``. Returns False (nothing delivered) if the port is
        not listening, or is connected to another address.
        """
        if not self.listening:
            return False
        if self.connected_to is not None and tuple(addr) != self.connected_to:
            return False
        self.protocol.datagramReceived(data[: self.max_packet_size], addr)
        return True

    def clear(self) -> list[tuple[bytes, Address]]:
        """Return and forget the datagrams written so far."""
        written, self.written = self.written, []
        return written

    def _check_address(self, host: str) -> None:
        if not isIPAddress(host) and not isIPv6Address(host):
            raise _invalid_address(host, "write() only accepts IP addresses, not hostnames")
        if isIPAddress(host) and self._ipv6:
            raise _invalid_address(host, "IPv6 port write() called with IPv4 address")
        if isIPv6Address(host) and not self._ipv6:
            raise _invalid_address(host, "IPv4 port write() called with IPv6 address")

    @override
    def __repr__(self) -> str:
        state = "listening" if self.listening else "stopped"
        return f"<FakeUDPPort {self.interface or '*'}:{self.port} {state}>"


@implementer(IReactorUDP)
class SipMemoryReactor(MemoryReactorClock):
    """A ``MemoryReactorClock`` that also provides ``IReactorUDP``.

    :ivar udpPorts: every ``listenUDP`` call, as ``(port, protocol, interface,
        maxPacketSize)`` with the port as requested (0 for "any"), like ``tcpServers``.
    :ivar udp_listeners: the :class:`FakeUDPPort` of each call, in the same order.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.udpPorts: list[tuple[int, DatagramProtocol, str, int]] = []
        self.udp_listeners: list[FakeUDPPort] = []
        self._next_ephemeral = FIRST_EPHEMERAL_PORT

    def listenUDP(  # noqa: N802 (IReactorUDP)
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,  # noqa: N803 (IReactorUDP)
    ) -> FakeUDPPort:
        """Bind ``protocol`` to a :class:`FakeUDPPort` and start it.

        Port 0 gets the next free number from 40000 up. Binding a port number that a
        listening port already holds on the same interface (or either is a wildcard, within
        one address family) raises ``CannotListenError``, as a real bind would.
        """
        if interface and not isIPAddress(interface) and not isIPv6Address(interface):
            raise _invalid_address(interface, "not an IPv4 or IPv6 address.")
        self.udpPorts.append((port, protocol, interface, maxPacketSize))
        if port == 0:
            port = self._allocate(interface)
        elif self._in_use(interface, port):
            in_use = OSError("Address already in use")
            raise CannotListenError(interface, port, in_use)  # type: ignore[no-untyped-call]  # untyped
        listener = FakeUDPPort(protocol, interface, port, maxPacketSize)
        self.udp_listeners.append(listener)
        listener.startListening()
        return listener

    def udp_port(self, target: Union[int, DatagramProtocol, FakeUDPPort]) -> FakeUDPPort:
        """The listening port for a port number or a protocol (a port is returned as is).

        Raises ``LookupError`` if none is listening, ``ValueError`` if several are.
        """
        if isinstance(target, FakeUDPPort):
            return target
        if isinstance(target, int):
            found = [p for p in self.udp_listeners if p.listening and p.port == target]
        else:
            found = [p for p in self.udp_listeners if p.listening and p.protocol is target]
        if not found:
            raise LookupError("no UDP port listening for " + repr(target))
        if len(found) > 1:
            raise ValueError("several UDP ports listening for " + repr(target))
        return found[0]

    def deliver_datagram(
        self, target: Union[int, DatagramProtocol, FakeUDPPort], data: bytes, addr: Address
    ) -> None:
        """Feed ``data``, sent from ``addr``, to the ``datagramReceived`` of the protocol
        listening on ``target`` (a port number, the protocol, or its port).

        Raises ``LookupError`` if nothing listens there (see :meth:`udp_port`).
        """
        listener = self.udp_port(target)
        if not listener.listening:
            raise LookupError("UDP port is not listening: " + repr(listener))
        listener.deliver(data, addr)

    def _allocate(self, interface: str) -> int:
        while self._in_use(interface, self._next_ephemeral):
            self._next_ephemeral += 1
        port = self._next_ephemeral
        self._next_ephemeral += 1
        return port

    def _in_use(self, interface: str, port: int) -> bool:
        ipv6 = isIPv6Address(interface)
        for p in self.udp_listeners:
            if not p.listening or p.port != port or isIPv6Address(p.interface) != ipv6:
                continue
            if p.interface == interface or _is_wildcard(p.interface) or _is_wildcard(interface):
                return True
        return False


# --------------------------------------------------------------------------- lossy link


@attrs.frozen
class LinkDatagram:
    """One datagram that crossed (or failed to cross) a :class:`LossyDatagramLink`.

    :ivar seq: its number on the link: 0, 1, 2, ... in the order written, both directions.
    """

    seq: int
    data: bytes
    source: Address
    destination: Address


def drop_nothing(data: bytes, seq: int) -> bool:
    """The default policy: a perfect link."""
    return False


def drop_first(n: int) -> DropPolicy:
    """Drop datagrams 0 to ``n - 1``."""
    return lambda data, seq: seq < n


def drop_sequence(*seqs: int) -> DropPolicy:
    """Drop the datagrams with these sequence numbers."""
    chosen = frozenset(seqs)
    return lambda data, seq: seq in chosen


def drop_matching(predicate: Callable[[bytes], bool], limit: Optional[int] = None) -> DropPolicy:
    """Drop datagrams for which ``predicate(data)`` is true, at most ``limit`` of them."""
    dropped = 0

    def policy(data: bytes, seq: int) -> bool:
        nonlocal dropped
        if (limit is not None and dropped >= limit) or not predicate(data):
            return False
        dropped += 1
        return True

    return policy


class LossyDatagramLink:
    """Two UDP ports joined in memory; datagrams between them cross on :meth:`pump`.

    A datagram one side writes to the other side's address is queued; the policy ``drop``
    decides, when it is pumped, whether it is lost (``dropped``) or handed to the other
    protocol's ``datagramReceived`` from the writer's address (``delivered``). Datagrams
    written to any other address, or pumped to a port that stopped listening, go to
    ``undeliverable``. Only datagrams written after the link was made are carried.

    A side's address is its ``getHost()``; a wildcard-bound side (``0.0.0.0`` / ``::``)
    sends from the loopback address and receives whatever is sent to its port number.

    :ivar delivered: the datagrams delivered, in order.
    :ivar dropped: the datagrams the policy dropped, in order.
    :ivar undeliverable: datagrams for nobody on this link, in order.
    """

    def __init__(
        self,
        a: FakeUDPPort,
        b: FakeUDPPort,
        *,
        drop: DropPolicy = drop_nothing,
        max_rounds: int = 1000,
    ) -> None:
        if a is b:
            raise ValueError("a link needs two different ports")
        self.a = a
        self.b = b
        self.drop = drop
        self.max_rounds = max_rounds
        self.delivered: list[LinkDatagram] = []
        self.dropped: list[LinkDatagram] = []
        self.undeliverable: list[LinkDatagram] = []
        self._queue: deque[tuple[FakeUDPPort, LinkDatagram]] = deque()
        self._seq = 0
        a._observers.append(self._written)
        b._observers.append(self._written)

    @classmethod
    def between(
        cls,
        protocol_a: DatagramProtocol,
        address_a: Address,
        protocol_b: DatagramProtocol,
        address_b: Address,
        *,
        drop: DropPolicy = drop_nothing,
        max_rounds: int = 1000,
    ) -> LossyDatagramLink:
        """Give two protocols a :class:`FakeUDPPort` each, bound to these addresses, started
        (so ``startProtocol`` runs), and link them."""
        a = FakeUDPPort(protocol_a, address_a[0], address_a[1])
        b = FakeUDPPort(protocol_b, address_b[0], address_b[1])
        link = cls(a, b, drop=drop, max_rounds=max_rounds)
        a.startListening()
        b.startListening()
        return link

    @property
    def pending(self) -> int:
        """How many datagrams are queued, waiting for :meth:`pump`."""
        return len(self._queue)

    def pump(self) -> int:
        """Deliver or drop everything queued, then what that provoked, until nothing is queued.

        Returns how many datagrams were delivered. Raises ``RuntimeError`` if the link is
        still busy after ``max_rounds`` rounds (two protocols answering each other forever).
        """
        count = 0
        for _ in range(self.max_rounds):
            if not self._queue:
                return count
            batch = list(self._queue)
            self._queue.clear()
            for target, datagram in batch:
                if self.drop(datagram.data, datagram.seq):
                    self.dropped.append(datagram)
                elif target.deliver(datagram.data, datagram.source):
                    self.delivered.append(datagram)
                    count += 1
                else:
                    self.undeliverable.append(datagram)
        if self._queue:
            raise RuntimeError(f"link still busy after {self.max_rounds} rounds")
        return count

    def close(self) -> None:
        """Stop carrying datagrams (those already queued stay queued)."""
        for port in (self.a, self.b):
            if self._written in port._observers:
                port._observers.remove(self._written)

    def _written(self, port: FakeUDPPort, data: bytes, destination: Address) -> None:
        peer = self.b if port is self.a else self.a
        datagram = LinkDatagram(self._seq, data, _address_of(port), destination)
        self._seq += 1
        if _accepts(peer, destination):
            self._queue.append((peer, datagram))
        else:
            self.undeliverable.append(datagram)


def _address_of(port: FakeUDPPort) -> Address:
    """Where a port's datagrams come from: its bound address, loopback for a wildcard."""
    host = port.interface
    if _is_wildcard(host):
        host = "::1" if host == "::" else "127.0.0.1"
    return (host, port.port)


def _accepts(port: FakeUDPPort, destination: Address) -> bool:
    host, number = destination
    return number == port.port and (_is_wildcard(port.interface) or host == port.interface)
