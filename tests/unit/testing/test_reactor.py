"""Tests for :mod:`clearwater.testing.reactor`: the UDP memory reactor and the lossy link.

The fakes are checked against the Twisted interfaces they claim (``verifyObject``), against the
behaviour of Twisted's real ``udp.Port`` that tests rely on (address checks, connected mode,
``stopListening``), and in the use they exist for: a protocol that retransmits on the reactor's
clock, as RFC 3261 §17.1.1.2 timer A does, gets through a link that loses its first datagrams.
"""

from __future__ import annotations

from typing import Optional

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError, InvalidAddressError, MessageLengthError
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorTCP,
    IReactorTime,
    IReactorUDP,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from typing_extensions import override
from zope.interface.verify import verifyObject

import clearwater.testing
from clearwater.testing import (
    FakeUDPPort,
    LinkDatagram,
    LossyDatagramLink,
    SipMemoryReactor,
    drop_first,
    drop_matching,
    drop_nothing,
    drop_sequence,
)
from clearwater.testing import reactor as reactor_module

Address = tuple[str, int]


class Recorder(DatagramProtocol):
    """Records what happens to it; answers ``PING`` with ``PONG`` when ``echo`` is set."""

    noisy = False

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.received: list[tuple[bytes, Address]] = []
        self.started = 0
        self.stopped = 0

    @override
    def startProtocol(self) -> None:
        self.started += 1

    @override
    def stopProtocol(self) -> None:
        self.stopped += 1

    @override
    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        self.received.append((datagram, addr))
        if self.echo and datagram.startswith(b"PING") and self.transport is not None:
            self.transport.write(b"PONG" + datagram[4:], addr)


def transport_of(protocol: DatagramProtocol) -> object:
    """The protocol's transport, typed loosely (mypy cannot match it with a FakeUDPPort)."""
    return protocol.transport


class Retransmitter(DatagramProtocol):
    """Sends ``REQ`` and resends it at 0.5 s, 1 s, 2 s, ... until ``PONG`` arrives (timer A)."""

    noisy = False

    def __init__(self, clock: IReactorTime, peer: Address) -> None:
        self.clock = clock
        self.peer = peer
        self.interval = 0.5
        self.answered = False
        self.sent = 0

    def send(self) -> None:
        if self.answered or self.transport is None:
            return
        self.sent += 1
        self.transport.write(b"PING " + str(self.sent).encode(), self.peer)
        self.clock.callLater(self.interval, self.send)
        self.interval *= 2

    @override
    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        if datagram.startswith(b"PONG"):
            self.answered = True


# --------------------------------------------------------------------------- reactor


def test_interfaces() -> None:
    reactor = SipMemoryReactor()
    assert verifyObject(IReactorUDP, reactor)
    assert verifyObject(IReactorTCP, reactor)  # still a MemoryReactor
    assert verifyObject(IReactorTime, reactor)  # and a Clock
    port = reactor.listenUDP(5060, Recorder())
    assert verifyObject(IUDPTransport, port)
    assert verifyObject(IListeningPort, port)


def test_exports() -> None:
    for name in reactor_module.__all__:
        assert getattr(clearwater.testing, name) is getattr(reactor_module, name)
    assert set(reactor_module.__all__) <= set(clearwater.testing.__all__)


def test_listen_udp_is_recorded_and_starts_the_protocol() -> None:
    reactor = SipMemoryReactor()
    protocol = Recorder()
    port = reactor.listenUDP(5060, protocol, interface="10.0.0.1", maxPacketSize=4096)
    assert reactor.udpPorts == [(5060, protocol, "10.0.0.1", 4096)]
    assert reactor.udp_listeners == [port]
    assert transport_of(protocol) is port and protocol.started == 1
    assert port.listening and port.max_packet_size == 4096
    assert port.getHost() == IPv4Address("UDP", "10.0.0.1", 5060)
    assert reactor.tcpServers == []  # the TCP records are untouched
    wildcard = reactor.listenUDP(5070, Recorder())
    assert reactor.udpPorts[-1][2:] == ("", 8192)
    assert wildcard.getHost() == IPv4Address("UDP", "0.0.0.0", 5070)
    ipv6 = reactor.listenUDP(5060, Recorder(), interface="::1")
    assert ipv6.getHost() == IPv6Address("UDP", "::1", 5060)
    with pytest.raises(InvalidAddressError):
        reactor.listenUDP(5060, Recorder(), interface="localhost")


def test_port_zero_gets_ephemeral_ports() -> None:
    reactor = SipMemoryReactor()
    first = reactor.listenUDP(0, Recorder())
    taken = reactor.listenUDP(40001, Recorder())
    second = reactor.listenUDP(0, Recorder(), interface="10.0.0.1")
    assert (first.port, taken.port, second.port) == (40000, 40001, 40002)
    assert second.getHost() == IPv4Address("UDP", "10.0.0.1", 40002)
    assert [record[0] for record in reactor.udpPorts] == [0, 40001, 0]  # as requested


def test_binding_a_port_in_use_fails_until_it_is_released() -> None:
    reactor = SipMemoryReactor()
    port = reactor.listenUDP(5060, Recorder(), interface="10.0.0.1")
    with pytest.raises(CannotListenError):
        reactor.listenUDP(5060, Recorder(), interface="10.0.0.1")
    with pytest.raises(CannotListenError):
        reactor.listenUDP(5060, Recorder())  # the wildcard overlaps
    reactor.listenUDP(5060, Recorder(), interface="10.0.0.2")  # another address is free
    reactor.listenUDP(5060, Recorder(), interface="::")  # another family too
    port.stopListening()
    reactor.listenUDP(5060, Recorder(), interface="10.0.0.1")


def test_writes_are_recorded() -> None:
    reactor = SipMemoryReactor()
    port = reactor.listenUDP(5060, Recorder())
    port.write(b"one", ("192.0.2.1", 5060))
    port.write(b"two", ("192.0.2.2", 5061))
    assert port.written == [(b"one", ("192.0.2.1", 5060)), (b"two", ("192.0.2.2", 5061))]
    assert port.clear() == [(b"one", ("192.0.2.1", 5060)), (b"two", ("192.0.2.2", 5061))]
    assert port.written == []


def test_writes_are_checked_like_a_real_port() -> None:
    reactor = SipMemoryReactor()
    port = reactor.listenUDP(5060, Recorder())
    with pytest.raises(InvalidAddressError):
        port.write(b"x", ("example.com", 5060))  # no DNS in a transport
    with pytest.raises(InvalidAddressError):
        port.write(b"x", ("2001:db8::1", 5060))
    with pytest.raises(ValueError, match="needs an address"):
        port.write(b"x")
    with pytest.raises(MessageLengthError):
        port.write(b"x" * 65508, ("192.0.2.1", 5060))
    port.write(b"x" * 65507, ("192.0.2.1", 5060))
    ipv6 = reactor.listenUDP(5060, Recorder(), interface="::")
    with pytest.raises(InvalidAddressError):
        ipv6.write(b"x", ("192.0.2.1", 5060))
    ipv6.write(b"x" * 65527, ("2001:db8::1", 5060))
    assert len(port.written) == len(ipv6.written) == 1


def test_connected_mode() -> None:
    reactor = SipMemoryReactor()
    protocol = Recorder()
    port = reactor.listenUDP(5060, protocol)
    port.connect("192.0.2.1", 5080)
    port.write(b"a")
    port.write(b"b", ("192.0.2.1", 5080))
    with pytest.raises(ValueError, match="connected"):
        port.write(b"c", ("192.0.2.9", 5080))
    assert port.written == [(b"a", ("192.0.2.1", 5080)), (b"b", ("192.0.2.1", 5080))]
    with pytest.raises(RuntimeError, match="already connected"):
        port.connect("192.0.2.2", 5080)
    reactor.deliver_datagram(5060, b"from elsewhere", ("192.0.2.9", 5080))
    reactor.deliver_datagram(5060, b"from the peer", ("192.0.2.1", 5080))
    assert protocol.received == [(b"from the peer", ("192.0.2.1", 5080))]
    with pytest.raises(InvalidAddressError):
        reactor.listenUDP(0, Recorder()).connect("example.com", 5060)


def test_broadcast_flag() -> None:
    port = SipMemoryReactor().listenUDP(0, Recorder())
    assert not port.getBroadcastAllowed()
    port.setBroadcastAllowed(True)
    assert port.getBroadcastAllowed()


def test_deliver_datagram() -> None:
    reactor = SipMemoryReactor()
    a, b = Recorder(), Recorder()
    port_a = reactor.listenUDP(5060, a, maxPacketSize=8)
    reactor.listenUDP(5070, b)
    reactor.deliver_datagram(5060, b"by number", ("192.0.2.1", 1))
    reactor.deliver_datagram(b, b"by protocol", ("192.0.2.1", 2))
    reactor.deliver_datagram(port_a, b"by port", ("192.0.2.1", 3))
    # maxPacketSize cuts the datagram, as recvfrom does.
    assert a.received == [(b"by numbe", ("192.0.2.1", 1)), (b"by port", ("192.0.2.1", 3))]
    assert b.received == [(b"by protocol", ("192.0.2.1", 2))]
    assert reactor.udp_port(b) is transport_of(b)
    with pytest.raises(LookupError):
        reactor.deliver_datagram(5999, b"x", ("192.0.2.1", 1))
    with pytest.raises(LookupError):
        reactor.deliver_datagram(Recorder(), b"x", ("192.0.2.1", 1))
    reactor.listenUDP(5060, Recorder(), interface="::1")
    with pytest.raises(ValueError, match="several"):
        reactor.deliver_datagram(5060, b"x", ("192.0.2.1", 1))


def test_stop_listening() -> None:
    reactor = SipMemoryReactor()
    protocol = Recorder()
    port = reactor.listenUDP(5060, protocol)
    results: list[Optional[object]] = []
    d = port.stopListening()
    assert d is not None
    d.addCallback(results.append)
    assert results == [None]
    assert not port.listening and protocol.transport is None
    assert protocol.stopped == 1
    assert port.stopListening() is None  # already stopped: nothing happens
    assert protocol.stopped == 1
    with pytest.raises(LookupError):
        reactor.deliver_datagram(5060, b"x", ("192.0.2.1", 1))
    with pytest.raises(LookupError):
        reactor.deliver_datagram(port, b"x", ("192.0.2.1", 1))
    assert not port.deliver(b"x", ("192.0.2.1", 1))
    with pytest.raises(RuntimeError, match="not listening"):
        port.write(b"x", ("192.0.2.1", 1))
    assert protocol.received == []
    # The protocol can listen again (startProtocol runs again).
    reactor.listenUDP(5060, protocol)
    assert protocol.started == 2


def test_stop_protocol_waits_for_the_last_port() -> None:
    reactor = SipMemoryReactor()
    protocol = Recorder()
    one = reactor.listenUDP(5060, protocol, interface="10.0.0.1")
    protocol.transport = None  # a protocol on two ports, as DatagramProtocol allows
    two = reactor.listenUDP(5060, protocol, interface="10.0.0.2")
    assert protocol.started == 1
    one.stopListening()
    assert protocol.stopped == 0
    two.stopListening()
    assert protocol.stopped == 1


def test_clock() -> None:
    reactor = SipMemoryReactor()
    fired: list[float] = []
    reactor.callLater(1.5, lambda: fired.append(reactor.seconds()))
    reactor.advance(1.5)
    assert fired == [1.5]


# --------------------------------------------------------------------------- link


def linked(drop: reactor_module.DropPolicy = drop_nothing) -> tuple[
    SipMemoryReactor, Recorder, FakeUDPPort, Recorder, FakeUDPPort, LossyDatagramLink
]:  # fmt: skip
    reactor = SipMemoryReactor()
    client, server = Recorder(), Recorder(echo=True)
    client_port = reactor.listenUDP(0, client, interface="10.0.0.1")
    server_port = reactor.listenUDP(5060, server, interface="10.0.0.2")
    link = LossyDatagramLink(client_port, server_port, drop=drop)
    return reactor, client, client_port, server, server_port, link


def test_link_delivers_both_ways() -> None:
    _, client, client_port, server, _, link = linked()
    client_port.write(b"PING 1", ("10.0.0.2", 5060))
    client_port.write(b"PING 2", ("10.0.0.2", 5060))
    assert link.pending == 2 and server.received == []
    assert link.pump() == 4  # two pings, then the two pongs they provoked
    assert server.received == [(b"PING 1", ("10.0.0.1", 40000)), (b"PING 2", ("10.0.0.1", 40000))]
    assert client.received == [(b"PONG 1", ("10.0.0.2", 5060)), (b"PONG 2", ("10.0.0.2", 5060))]
    assert link.delivered == [
        LinkDatagram(0, b"PING 1", ("10.0.0.1", 40000), ("10.0.0.2", 5060)),
        LinkDatagram(1, b"PING 2", ("10.0.0.1", 40000), ("10.0.0.2", 5060)),
        LinkDatagram(2, b"PONG 1", ("10.0.0.2", 5060), ("10.0.0.1", 40000)),
        LinkDatagram(3, b"PONG 2", ("10.0.0.2", 5060), ("10.0.0.1", 40000)),
    ]
    assert link.dropped == [] and link.undeliverable == [] and link.pending == 0
    assert link.pump() == 0  # quiet
    # The ports still record what was written.
    assert [data for data, _ in client_port.written] == [b"PING 1", b"PING 2"]


def test_link_drop_first() -> None:
    _, client, client_port, server, _, link = linked(drop_first(2))
    for n in range(3):
        client_port.write(b"PING %d" % n, ("10.0.0.2", 5060))
    link.pump()
    assert [d.seq for d in link.dropped] == [0, 1]
    assert [d.data for d in link.delivered] == [b"PING 2", b"PONG 2"]
    assert [d for d, _ in server.received] == [b"PING 2"]
    assert [d for d, _ in client.received] == [b"PONG 2"]


def test_link_drop_sequence_counts_both_directions() -> None:
    _, client, client_port, _, _, link = linked(drop_sequence(1))
    client_port.write(b"PING 1", ("10.0.0.2", 5060))
    link.pump()  # 0: PING 1 delivered, 1: PONG 1 dropped
    client_port.write(b"PING 2", ("10.0.0.2", 5060))
    link.pump()  # 2: PING 2, 3: PONG 2
    assert [(d.seq, d.data) for d in link.dropped] == [(1, b"PONG 1")]
    assert [d.seq for d in link.delivered] == [0, 2, 3]
    assert [d for d, _ in client.received] == [b"PONG 2"]


def test_link_drop_every_other_and_by_predicate() -> None:
    _, _, client_port, server, _, link = linked(lambda data, seq: seq % 2 == 0)
    for n in range(4):
        client_port.write(b"DATA %d" % n, ("10.0.0.2", 5060))
    link.pump()
    assert [d.data for d in link.dropped] == [b"DATA 0", b"DATA 2"]
    assert [d for d, _ in server.received] == [b"DATA 1", b"DATA 3"]

    policy = drop_matching(lambda data: data.startswith(b"PONG"), limit=1)
    _, client, client_port, _, _, link = linked(policy)
    for n in range(2):
        client_port.write(b"PING %d" % n, ("10.0.0.2", 5060))
    link.pump()
    assert [d.data for d in link.dropped] == [b"PONG 0"]  # the limit: only one
    assert [d for d, _ in client.received] == [b"PONG 1"]
    unlimited = drop_matching(lambda data: data == b"x")
    assert all(unlimited(b"x", seq) for seq in range(10)) and not unlimited(b"y", 10)


def test_retransmissions_recover_lost_datagrams() -> None:
    # The use the link is for: timer A resends at 0.5 s, 1 s, 2 s (RFC 3261 §17.1.1.2); the
    # first two requests are lost, the third gets through and is answered at t = 1.5 s.
    reactor = SipMemoryReactor()
    client = Retransmitter(reactor, ("10.0.0.2", 5060))
    server = Recorder(echo=True)
    client_port = reactor.listenUDP(0, client, interface="10.0.0.1")
    server_port = reactor.listenUDP(5060, server, interface="10.0.0.2")
    link = LossyDatagramLink(client_port, server_port, drop=drop_first(2))
    client.send()
    link.pump()
    for _ in range(4):
        reactor.advance(0.5)
        link.pump()
    assert client.answered and client.sent == 3
    assert [d.data for d in link.dropped] == [b"PING 1", b"PING 2"]
    assert [d.data for d in link.delivered] == [b"PING 3", b"PONG 3"]
    assert reactor.seconds() == 2.0
    reactor.advance(10)
    assert client.sent == 3  # answered: no more retransmissions


def test_pump_terminates() -> None:
    class Ping(DatagramProtocol):
        """Answers every datagram: two of them talk forever."""

        noisy = False

        @override
        def datagramReceived(self, datagram: bytes, addr: Address) -> None:
            assert self.transport is not None
            self.transport.write(datagram, addr)

    link = LossyDatagramLink.between(
        Ping(), ("10.0.0.1", 5060), Ping(), ("10.0.0.2", 5060), max_rounds=50
    )
    link.a.write(b"hello", ("10.0.0.2", 5060))
    with pytest.raises(RuntimeError, match="still busy after 50 rounds"):
        link.pump()
    assert len(link.delivered) == 50
    # Dropping breaks the loop: the next round ends quiet.
    link.drop = lambda data, seq: True
    assert link.pump() == 0 and link.pending == 0
    assert len(link.dropped) == 1


def test_undeliverable_datagrams() -> None:
    _, _, client_port, server, server_port, link = linked()
    client_port.write(b"elsewhere", ("10.0.0.3", 5060))
    client_port.write(b"wrong port", ("10.0.0.2", 5061))
    assert link.pending == 0
    assert [(d.seq, d.data) for d in link.undeliverable] == [(0, b"elsewhere"), (1, b"wrong port")]
    client_port.write(b"too late", ("10.0.0.2", 5060))
    server_port.stopListening()
    assert link.pump() == 0
    assert [d.data for d in link.undeliverable][-1] == b"too late"
    assert server.received == []


def test_between_and_wildcard_addresses() -> None:
    a, b = Recorder(), Recorder(echo=True)
    link = LossyDatagramLink.between(a, ("0.0.0.0", 5060), b, ("192.0.2.2", 5080))
    assert a.started == b.started == 1
    assert transport_of(a) is link.a
    link.a.write(b"PING", ("192.0.2.2", 5080))
    link.pump()
    # A wildcard-bound side sends from loopback and receives anything sent to its port.
    assert b.received == [(b"PING", ("127.0.0.1", 5060))]
    assert a.received == [(b"PONG", ("192.0.2.2", 5080))]
    link.b.write(b"any address", ("198.51.100.7", 5060))
    link.pump()
    assert a.received[-1] == (b"any address", ("192.0.2.2", 5080))
    with pytest.raises(ValueError, match="two different ports"):
        LossyDatagramLink(link.a, link.a)


def test_close_stops_carrying() -> None:
    _, _, client_port, server, _, link = linked()
    link.close()
    client_port.write(b"PING", ("10.0.0.2", 5060))
    assert link.pending == 0 and link.pump() == 0
    assert server.received == []
    link.close()  # twice is fine
