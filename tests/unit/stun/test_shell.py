"""The TURN shell: protocols and the driver carrying out the core's effects.

Most tests drive :class:`FakeCore`, which records every call and returns the effects a test
queued, so they show what the shell does with each effect (RFC 8656 and RFC 6062 as the core
asks), on a :class:`~clearwater.testing.SipMemoryReactor` (UDP ports, TCP calls and a clock) and
:class:`~twisted.internet.testing.StringTransport` (TCP and TLS connections). The last ones run
the real :class:`~clearwater.stun.turn.TurnServer` through the shell: Binding, an authenticated
Allocate, relaying both ways and expiry.
"""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from typing import Any, Optional, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, ConnectError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater._types import ISipReactor
from clearwater.services.restund.service import TurnCollector, TurnService, build
from clearwater.services.restund.tap import RestundOptions
from clearwater.stun import (
    Attr,
    Class,
    ErrorCode,
    Message,
    Method,
    new_transaction_id,
    parse_message,
    shell,
)
from clearwater.stun.credentials import IKeyProvider, StaticUsers
from clearwater.stun.shell import (
    PEER_CONNECT_TIMEOUT,
    RESERVATION_LIFETIME,
    ITurnReactor,
    PeerConnectionProtocol,
    RelayTcpFactory,
    TurnCore,
    TurnDriver,
    TurnStreamFactory,
    TurnStreamProtocol,
    TurnUdpProtocol,
)
from clearwater.stun.turn import (
    BindConnection,
    Client,
    ClosePeerConnection,
    CloseRelay,
    ConnectPeer,
    LookUpKey,
    OpenRelay,
    PeerPolicy,
    SendToClient,
    SendToPeer,
    TurnConfig,
    TurnServer,
    TurnStats,
)
from clearwater.testing import FakeUDPPort, SipMemoryReactor

RELAY_V4 = "192.0.2.2"
RELAY_V6 = "2001:db8::2"
SERVER = ("192.0.2.1", 3478)
ALICE = ("198.51.100.7", 5000)
PEER = ("203.0.113.9", 6000)
NOT_GIVEN = object()


class FakeCore:
    """Records each call as ``(method, args...)``; returns the next effects queued for that
    method (``script[method]``), or none. ``deadline`` is what ``next_deadline()`` says."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.script: defaultdict[str, list[list[object]]] = defaultdict(list)
        self.deadline: Optional[float] = None
        self.deadline_calls = 0
        self.stats = TurnStats()

    def _next(self, method: str) -> list[object]:
        queue = self.script[method]
        return queue.pop(0) if queue else []

    def received(
        self, client: Any, data: bytes, now: float, *, key: Any = NOT_GIVEN
    ) -> list[object]:
        self.calls.append(("received", client, data, now, key))
        return self._next("received")

    def relay_opened(
        self, allocation: int, relayed: tuple[str, int], now: float, *, reservation: Any = None
    ) -> list[object]:
        self.calls.append(("relay_opened", allocation, relayed, now, reservation))
        return self._next("relay_opened")

    def relay_failed(self, allocation: int, now: float) -> list[object]:
        self.calls.append(("relay_failed", allocation, now))
        return self._next("relay_failed")

    def peer_received(
        self, allocation: int, peer: tuple[str, int], data: bytes, now: float
    ) -> list[object]:
        self.calls.append(("peer_received", allocation, peer, data, now))
        return self._next("peer_received")

    def connection_lost(self, client: Any, now: float) -> list[object]:
        self.calls.append(("connection_lost", client, now))
        return self._next("connection_lost")

    def next_deadline(self) -> Optional[float]:
        self.deadline_calls += 1
        return self.deadline

    def expire(self, now: float) -> list[object]:
        self.calls.append(("expire", now))
        return self._next("expire")

    def peer_connected(self, connection_id: int, now: float) -> list[object]:
        self.calls.append(("peer_connected", connection_id, now))
        return self._next("peer_connected")

    def peer_connect_failed(self, connection_id: int, now: float) -> list[object]:
        self.calls.append(("peer_connect_failed", connection_id, now))
        return self._next("peer_connect_failed")

    def peer_connection_accepted(
        self, allocation: int, peer: tuple[str, int], now: float
    ) -> tuple[Optional[int], list[object]]:
        self.calls.append(("peer_connection_accepted", allocation, peer, now))
        queue = self.script["peer_connection_accepted"]
        if not queue:
            return None, []
        connection, *effects = queue.pop(0)
        return cast(Optional[int], connection), effects

    def peer_connection_lost(self, connection_id: int, now: float) -> list[object]:
        self.calls.append(("peer_connection_lost", connection_id, now))
        return self._next("peer_connection_lost")

    def named(self, method: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == method]


@implementer(IListeningPort)
class FakeTcpPort:
    """A listening TCP port that remembers being stopped."""

    def __init__(self, host: str, port: int, factory: ServerFactory) -> None:
        self.host, self.port, self.factory = host, port, factory
        self.listening = True

    def startListening(self) -> None:  # noqa: N802 (IListeningPort)
        pass

    def stopListening(self) -> None:  # noqa: N802 (IListeningPort)
        self.listening = False

    def getHost(self) -> IPv4Address:  # noqa: N802 (IListeningPort)
        return IPv4Address("TCP", self.host, self.port)


class TurnMemoryReactor(SipMemoryReactor):
    """Also: TCP ports that record stopping, and port numbers that are taken."""

    def __init__(self) -> None:
        super().__init__()
        self.tcp_ports: list[FakeTcpPort] = []
        self.taken_tcp: set[int] = set()

    @override
    def listenTCP(
        self, port: int, factory: ServerFactory, backlog: int = 50, interface: str = ""
    ) -> FakeTcpPort:
        self.tcpServers.append((port, factory, backlog, interface))
        if port in self.taken_tcp:
            raise CannotListenError(interface, port, OSError("in use"))  # type: ignore[no-untyped-call]
        listening = FakeTcpPort(interface, port, factory)
        self.tcp_ports.append(listening)
        return listening


@implementer(IKeyProvider)
class FakeKeys:
    """Hands out a Deferred per look-up, for the test to fire (or a fixed answer)."""

    def __init__(self, answer: Any = NOT_GIVEN) -> None:
        self.asked: list[str] = []
        self.pending: list[Deferred[Optional[bytes]]] = []
        self.answer = answer

    def key(self, username: str) -> Deferred[Optional[bytes]]:
        self.asked.append(username)
        if self.answer is not NOT_GIVEN:
            return succeed(self.answer)
        d: Deferred[Optional[bytes]] = Deferred()
        self.pending.append(d)
        return d


class Rig:
    """A driver over a fake core on a memory reactor, listening on UDP at SERVER."""

    def __init__(self, keys: Optional[FakeKeys] = None, **options: Any) -> None:
        self.reactor = TurnMemoryReactor()
        self.reactor.advance(1000.0)
        self.core = FakeCore()
        self.keys = keys if keys is not None else FakeKeys()
        options.setdefault("relay_ipv4", RELAY_V4)
        options.setdefault("relay_ipv6", RELAY_V6)
        options.setdefault("min_port", 50000)
        options.setdefault("max_port", 50099)
        options.setdefault("random", random.Random(7))
        self.driver = TurnDriver(
            cast(ITurnReactor, self.reactor), cast(TurnCore, self.core), self.keys, **options
        )
        self.udp = self.reactor.listenUDP(
            SERVER[1], TurnUdpProtocol(self.driver), interface=SERVER[0]
        )
        self.alice = Client("udp", ALICE, SERVER)

    def from_alice(self, data: bytes, effects: Optional[list[object]] = None) -> None:
        if effects is not None:
            self.core.script["received"].append(effects)
        self.udp.deliver(data, ALICE)

    def relay_ports(self) -> list[FakeUDPPort]:
        return [p for p in self.reactor.udp_listeners if p.listening and p is not self.udp]

    def connect(
        self, transport_name: str = "tcp", peer: tuple[str, int] = ALICE
    ) -> tuple[TurnStreamProtocol, StringTransport]:
        factory = TurnStreamFactory(self.driver, transport_name)
        protocol = factory.buildProtocol(IPv4Address("TCP", *peer))
        return protocol, _connected(protocol, SERVER, peer)

    def delayed(self) -> list[float]:
        return sorted(call.getTime() for call in self.reactor.getDelayedCalls())


def _connected(protocol: Any, local: tuple[str, int], peer: tuple[str, int]) -> StringTransport:
    transport = StringTransport(  # type: ignore[no-untyped-call]
        hostAddress=IPv4Address("TCP", *local), peerAddress=IPv4Address("TCP", *peer)
    )
    protocol.makeConnection(transport)
    return transport


def _closing(transport: StringTransport) -> bool:
    return bool(transport.disconnecting)


def _listening(port: FakeUDPPort) -> bool:
    return port.listening


def _client(protocol: TurnStreamProtocol) -> Client:
    assert protocol.client is not None
    return protocol.client


def _value(transport: StringTransport) -> bytes:
    value: bytes = transport.value()  # type: ignore[no-untyped-call]
    return value


# A Binding request (RFC 8489 §5): 20 bytes of header, no attributes.
BINDING = bytes.fromhex("0001 0000 2112a442 000102030405060708090a0b")
# ChannelData (RFC 8656 §12.4) for channel 0x4000 with 5 bytes, padded to 8 on streams.
CHANNEL_DATA = bytes.fromhex("4000 0005") + b"hello" + bytes(3)


# --- UDP


def test_udp_datagram_goes_to_the_core_and_the_answer_back() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [SendToClient(rig.alice, b"answer")])
    assert rig.core.calls == [("received", rig.alice, BINDING, 1000.0, NOT_GIVEN)]
    assert rig.udp.clear() == [(b"answer", ALICE)]


def test_udp_answer_to_a_client_of_another_port() -> None:
    rig = Rig()
    other = rig.reactor.listenUDP(3479, TurnUdpProtocol(rig.driver), interface=SERVER[0])
    bob = Client("udp", ("198.51.100.8", 7000), (SERVER[0], 3479))
    rig.from_alice(BINDING, [SendToClient(bob, b"to bob")])
    assert rig.udp.clear() == []
    assert other.clear() == [(b"to bob", ("198.51.100.8", 7000))]
    # a port that stopped: the answer is dropped, and counted
    other.stopListening()
    rig.from_alice(BINDING, [SendToClient(bob, b"lost")])
    assert rig.driver.send_failures == 1


def test_udp_ipv6_client() -> None:
    rig = Rig()
    udp6 = rig.reactor.listenUDP(3478, TurnUdpProtocol(rig.driver), interface="2001:db8::1")
    carol = Client("udp", ("2001:db8::7", 5000), ("2001:db8::1", 3478))
    rig.core.script["received"].append([SendToClient(carol, b"hi")])
    udp6.deliver(BINDING, ("2001:db8::7", 5000))
    assert rig.core.calls[0][1] == carol
    assert udp6.clear() == [(b"hi", ("2001:db8::7", 5000))]


# --- streams


def test_tcp_frames_are_cut_and_answers_written() -> None:
    rig = Rig()
    protocol, transport = rig.connect("tcp")
    client = Client("tcp", ALICE, SERVER, 1)
    assert protocol.client == client
    rig.core.script["received"] += [[SendToClient(client, b"answer")], []]
    protocol.dataReceived(BINDING[:7])
    assert rig.core.calls == []
    protocol.dataReceived(BINDING[7:] + CHANNEL_DATA[:3])
    assert rig.core.calls == [("received", client, BINDING, 1000.0, NOT_GIVEN)]
    assert _value(transport) == b"answer"
    protocol.dataReceived(CHANNEL_DATA[3:])
    assert rig.core.calls[1][:3] == ("received", client, CHANNEL_DATA)
    assert rig.driver.connections == 1


def test_tls_clients_are_tls_and_get_their_own_connection_ids() -> None:
    rig = Rig()
    first, _ = rig.connect("tls")
    second, transport = rig.connect("tls", ("198.51.100.8", 7000))
    assert first.client == Client("tls", ALICE, SERVER, 1)
    assert second.client == Client("tls", ("198.51.100.8", 7000), SERVER, 2)
    rig.from_alice(BINDING, [SendToClient(second.client, b"x")])
    assert _value(transport) == b"x"


def test_framing_error_closes_the_connection_and_ends_its_allocations() -> None:
    rig = Rig()
    protocol, transport = rig.connect()
    client = _client(protocol)
    protocol.dataReceived(b"\xff" * 20)
    assert transport.disconnecting
    assert rig.core.calls == []
    protocol.connectionLost()
    assert rig.core.calls == [("connection_lost", client, 1000.0)]
    assert rig.driver.connections == 0
    # later answers to it are dropped
    rig.from_alice(BINDING, [SendToClient(client, b"late")])
    assert _value(transport) == b""


def test_too_many_connections_are_refused() -> None:
    rig = Rig(max_connections=1)
    rig.connect()
    protocol, transport = rig.connect()
    assert protocol.client is None
    assert transport.disconnecting
    protocol.connectionLost()
    assert rig.core.named("connection_lost") == []
    assert rig.driver.connections == 1


def test_a_slow_reader_gets_a_bounded_queue() -> None:
    rig = Rig(max_write_buffer=10)
    protocol, transport = rig.connect()
    assert transport.producer is protocol
    client = _client(protocol)
    protocol.pauseProducing()
    rig.from_alice(BINDING, [SendToClient(client, b"123456"), SendToClient(client, b"7890")])
    rig.from_alice(BINDING, [SendToClient(client, b"x")])  # would pass 10 bytes: dropped
    assert _value(transport) == b"1234567890"
    assert rig.driver.send_failures == 1
    protocol.resumeProducing()
    rig.from_alice(BINDING, [SendToClient(client, b"y")])
    assert _value(transport) == b"1234567890y"


def test_silent_connection_is_closed_after_the_idle_timeout() -> None:
    rig = Rig(idle_timeout=100.0)
    protocol, transport = rig.connect()
    rig.reactor.advance(60)
    protocol.dataReceived(BINDING)
    rig.reactor.advance(60)
    assert not _closing(transport)  # heard from 60 s ago
    rig.reactor.advance(40)
    assert _closing(transport)
    protocol.connectionLost()
    assert rig.reactor.getDelayedCalls() == []


# --- relays


def test_open_relay_binds_a_port_in_range_and_relays_both_ways() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(7, 4, False, False, None)])
    (relay,) = rig.relay_ports()
    assert relay.interface == RELAY_V4
    assert 50000 <= relay.port <= 50099
    assert rig.core.named("relay_opened") == [
        ("relay_opened", 7, (RELAY_V4, relay.port), 1000.0, None)
    ]
    rig.core.script["peer_received"].append([SendToClient(rig.alice, b"data")])
    relay.deliver(b"media", PEER)
    assert rig.core.named("peer_received") == [("peer_received", 7, PEER, b"media", 1000.0)]
    assert rig.udp.clear() == [(b"data", ALICE)]
    rig.from_alice(BINDING, [SendToPeer(7, PEER, b"to peer")])
    assert relay.clear() == [(b"to peer", PEER)]
    rig.from_alice(BINDING, [CloseRelay(7)])
    assert not relay.listening
    assert rig.driver.relays == 0
    rig.from_alice(BINDING, [SendToPeer(7, PEER, b"gone")])  # no relay: nothing
    assert relay.written == []


def test_ipv6_relay() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(1, 6, False, False, None)])
    (relay,) = rig.relay_ports()
    assert relay.interface == RELAY_V6
    assert rig.core.named("relay_opened")[0][2] == (RELAY_V6, relay.port)
    rig.from_alice(BINDING, [SendToPeer(1, ("2001:db8::9", 6000), b"x")])
    assert relay.clear() == [(b"x", ("2001:db8::9", 6000))]


def test_no_relay_address_for_the_family_fails() -> None:
    rig = Rig(relay_ipv6=None)
    rig.core.script["relay_failed"].append([SendToClient(rig.alice, b"508")])
    rig.from_alice(BINDING, [OpenRelay(1, 6, False, False, None)])
    assert rig.core.named("relay_failed") == [("relay_failed", 1, 1000.0)]
    assert rig.udp.clear() == [(b"508", ALICE)]
    assert rig.relay_ports() == []


def test_ports_in_use_are_skipped_and_an_exhausted_range_fails() -> None:
    rig = Rig(min_port=50000, max_port=50001)
    rig.reactor.listenUDP(50000, TurnUdpProtocol(rig.driver), interface=RELAY_V4)  # someone's
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, None)])
    assert rig.core.named("relay_opened")[0][2] == (RELAY_V4, 50001)
    rig.from_alice(BINDING, [OpenRelay(2, 4, False, False, None)])
    assert rig.core.named("relay_failed") == [("relay_failed", 2, 1000.0)]
    assert rig.driver.relay_bind_failures == 1
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, None)])  # allocation 1 has one
    assert rig.core.named("relay_failed")[-1][1] == 1


def test_even_port() -> None:
    rig = Rig(min_port=50001, max_port=50099)
    for allocation in range(10):
        rig.from_alice(BINDING, [OpenRelay(allocation, 4, True, False, None)])
    ports = [call[2][1] for call in rig.core.named("relay_opened")]
    assert len(ports) == 10
    assert all(port % 2 == 0 and 50002 <= port <= 50098 for port in ports)
    assert all(call[4] is None for call in rig.core.named("relay_opened"))


def test_reserved_port_goes_to_the_allocation_with_the_token() -> None:
    rig = Rig(token=lambda n: b"T" * n)
    rig.from_alice(BINDING, [OpenRelay(1, 4, True, True, None)])
    (_, _, (ip, port), _, token) = rig.core.named("relay_opened")[0]
    assert token == b"TTTTTTTT"
    assert port % 2 == 0
    held = [p for p in rig.relay_ports() if p.port == port + 1]
    assert len(held) == 1
    held[0].deliver(b"early", PEER)  # a held port belongs to no allocation yet
    assert rig.core.named("peer_received") == []
    rig.reactor.advance(RESERVATION_LIFETIME - 1)
    rig.from_alice(BINDING, [OpenRelay(2, 4, False, False, token)])
    assert rig.core.named("relay_opened")[1][1:3] == (2, (ip, port + 1))
    held[0].deliver(b"now", PEER)
    assert rig.core.named("peer_received")[0][1:4] == (2, PEER, b"now")
    rig.reactor.advance(10)
    assert held[0].listening  # taken: no longer expires
    # the token is used up
    rig.from_alice(BINDING, [OpenRelay(3, 4, False, False, token)])
    assert rig.core.named("relay_failed") == [("relay_failed", 3, rig.reactor.seconds())]


def test_unused_reservation_expires() -> None:
    rig = Rig(token=lambda n: b"T" * n)
    rig.from_alice(BINDING, [OpenRelay(1, 4, True, True, None)])
    assert len(rig.relay_ports()) == 2
    assert rig.driver.relays == 2
    rig.reactor.advance(RESERVATION_LIFETIME)
    assert len(rig.relay_ports()) == 1
    rig.from_alice(BINDING, [OpenRelay(2, 4, False, False, b"T" * 8)])
    assert rig.core.named("relay_failed")[0][1] == 2


def test_unknown_token_fails() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, b"12345678")])
    assert rig.core.named("relay_failed")[0][1] == 1


def test_no_relaying_into_our_own_listening_ports() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, None)])
    (relay,) = rig.relay_ports()
    rig.from_alice(BINDING, [SendToPeer(1, SERVER, b"loop")])
    assert relay.written == []
    assert rig.driver.send_failures == 1
    rig.from_alice(BINDING, [SendToPeer(1, (SERVER[0], 3479), b"fine")])
    assert relay.clear() == [(b"fine", (SERVER[0], 3479))]


def test_send_failures_are_counted_not_raised() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, None)])
    (relay,) = rig.relay_ports()
    rig.from_alice(BINDING, [SendToPeer(1, PEER, bytes(70000))])  # too long for UDP
    rig.from_alice(BINDING, [SendToPeer(1, ("2001:db8::9", 1), b"x")])  # wrong family
    assert relay.written == []
    assert rig.driver.send_failures == 2


# --- key look-ups


def test_lookup_redelivers_with_the_key() -> None:
    rig = Rig()
    rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "alice")])
    assert rig.keys.asked == ["alice"]
    assert rig.driver.lookups == 1
    rig.reactor.advance(1)
    rig.core.script["received"].append([SendToClient(rig.alice, b"200")])
    rig.keys.pending[0].callback(b"k" * 16)
    assert rig.core.calls[-1] == ("received", rig.alice, b"allocate", 1001.0, b"k" * 16)
    assert rig.udp.clear() == [(b"200", ALICE)]
    assert rig.driver.lookups == 0
    assert rig.driver.lookup_results["found"] == 1
    assert rig.reactor.getDelayedCalls() == []  # the look-up's timeout was cancelled


def test_lookup_of_an_unknown_user_redelivers_with_none() -> None:
    rig = Rig()
    rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "mallory")])
    rig.keys.pending[0].callback(None)
    assert rig.core.calls[-1] == ("received", rig.alice, b"allocate", 1000.0, None)
    assert rig.driver.lookup_results["unknown"] == 1


def test_synchronous_provider_redelivers_at_once_without_a_timer() -> None:
    rig = Rig(keys=FakeKeys(answer=b"k" * 16))
    rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "alice")])
    assert rig.core.calls[-1][4] == b"k" * 16
    assert rig.reactor.getDelayedCalls() == []


def test_lookup_timeout_gives_none() -> None:
    rig = Rig(lookup_timeout=5.0)
    rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "alice")])
    rig.reactor.advance(4.9)
    assert len(rig.core.calls) == 1
    rig.reactor.advance(0.1)
    assert rig.core.calls[-1] == ("received", rig.alice, b"allocate", 1005.0, None)
    assert rig.driver.lookup_results["failed"] == 1
    assert rig.driver.lookups == 0


def test_lookups_in_flight_are_bounded() -> None:
    rig = Rig(max_lookups=2)
    for _ in range(3):
        rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "alice")])
    assert len(rig.keys.asked) == 2
    assert rig.driver.lookup_results["dropped"] == 1
    rig.keys.pending[0].callback(None)
    rig.from_alice(b"allocate", [LookUpKey(rig.alice, b"allocate", "alice")])
    assert len(rig.keys.asked) == 3


def test_no_redelivery_for_a_closed_connection() -> None:
    rig = Rig()
    protocol, _ = rig.connect()
    client = _client(protocol)
    rig.core.script["received"].append([LookUpKey(client, BINDING, "alice")])
    protocol.dataReceived(BINDING)
    protocol.connectionLost()
    rig.keys.pending[0].callback(b"k" * 16)
    assert [call[0] for call in rig.core.calls] == ["received", "connection_lost"]
    assert rig.driver.lookups == 0


# --- the one timer


def test_one_timer_follows_next_deadline() -> None:
    rig = Rig()
    rig.core.deadline = 1600.0
    rig.from_alice(BINDING)
    assert rig.delayed() == [1600.0]
    rig.core.deadline = 1300.0  # an earlier deadline: the same timer moves
    rig.from_alice(BINDING)
    assert rig.delayed() == [1300.0]
    rig.core.deadline = 1900.0
    rig.from_alice(BINDING)
    assert rig.delayed() == [1900.0]
    rig.core.script["expire"].append([SendToClient(rig.alice, b"expired")])
    rig.core.deadline = 2000.0
    rig.reactor.advance(899)
    assert rig.core.named("expire") == []
    rig.reactor.advance(1)
    assert rig.core.named("expire") == [("expire", 1900.0)]
    assert rig.udp.clear() == [(b"expired", ALICE)]
    assert rig.delayed() == [2000.0]
    rig.core.deadline = None
    rig.from_alice(BINDING)
    assert rig.delayed() == []


def test_a_past_deadline_fires_at_once() -> None:
    rig = Rig()
    rig.core.deadline = 900.0
    rig.from_alice(BINDING)
    assert rig.delayed() == [1000.0]
    rig.core.deadline = None
    rig.reactor.advance(0)
    assert rig.core.named("expire") == [("expire", 1000.0)]


def test_deadline_is_asked_after_every_call() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [OpenRelay(1, 4, False, False, None)])
    (relay,) = rig.relay_ports()
    before = rig.core.deadline_calls
    relay.deliver(b"x", PEER)
    assert rig.core.deadline_calls == before + 1


# --- RFC 6062 TCP allocations


def _tcp_relay(rig: Rig, allocation: int = 5) -> Any:
    rig.from_alice(BINDING, [OpenRelay(allocation, 4, False, False, None, "tcp")])
    return rig.reactor.tcp_ports[-1]


def test_tcp_relay_listens_in_range_and_closes() -> None:
    rig = Rig()
    relay = _tcp_relay(rig)
    assert relay.host == RELAY_V4
    assert 50000 <= relay.port <= 50099
    assert isinstance(relay.factory, RelayTcpFactory)
    assert rig.core.named("relay_opened") == [
        ("relay_opened", 5, (RELAY_V4, relay.port), 1000.0, None)
    ]
    assert rig.relay_ports() == []  # no UDP socket for a TCP allocation
    assert rig.driver.relays == 1
    rig.from_alice(BINDING, [CloseRelay(5)])
    assert not relay.listening
    assert rig.driver.relays == 0


def test_tcp_relay_skips_taken_ports_and_fails_when_none_is_free() -> None:
    rig = Rig(min_port=50000, max_port=50001)
    rig.reactor.taken_tcp = {50000}
    assert _tcp_relay(rig, 1).port == 50001
    rig.reactor.taken_tcp = {50000, 50001}
    rig.from_alice(BINDING, [OpenRelay(2, 4, False, False, None, "tcp")])
    assert rig.core.named("relay_failed") == [("relay_failed", 2, 1000.0)]
    assert rig.driver.relay_bind_failures == 1


def _connect_peer(rig: Rig, connection: int = 77) -> tuple[PeerConnectionProtocol, StringTransport]:
    rig.from_alice(BINDING, [ConnectPeer(5, connection, PEER)])
    host, port, factory, timeout, bind = cast(Any, rig.reactor.tcpClients[-1])
    assert (host, port, timeout, bind) == (*PEER, PEER_CONNECT_TIMEOUT, (RELAY_V4, 0))
    peer: PeerConnectionProtocol = factory.buildProtocol(IPv4Address("TCP", *PEER))
    return peer, _connected(peer, (RELAY_V4, 40000), PEER)


def test_connect_peer_success_holds_the_connection_unread() -> None:
    rig = Rig()
    _tcp_relay(rig)
    rig.core.script["peer_connected"].append([SendToClient(rig.alice, b"connect ok")])
    peer, transport = _connect_peer(rig)
    assert transport.producerState == "paused"  # not read until bound
    assert rig.core.named("peer_connected") == [("peer_connected", 77, 1000.0)]
    assert rig.udp.clear() == [(b"connect ok", ALICE)]
    assert rig.driver.peer_connections == 1
    peer.dataReceived(b"early")  # a transport delivering anyway is held to a bound
    peer.dataReceived(bytes(1 << 16))
    assert transport.disconnecting


def test_connect_peer_failure() -> None:
    rig = Rig()
    _tcp_relay(rig)
    rig.from_alice(BINDING, [ConnectPeer(5, 77, PEER)])
    factory = rig.reactor.tcpClients[-1][2]
    factory.clientConnectionFailed(rig.reactor.connectors[-1], Failure(ConnectError()))  # type: ignore[no-untyped-call]
    assert rig.core.named("peer_connect_failed") == [("peer_connect_failed", 77, 1000.0)]
    assert rig.driver.peer_connections == 0


def test_connect_peer_refused_at_once_without_a_relay_or_into_ourselves() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [ConnectPeer(5, 77, PEER)])  # no TCP relay
    _tcp_relay(rig)
    rig.from_alice(BINDING, [ConnectPeer(5, 78, SERVER)])  # our own port
    assert [call[1] for call in rig.core.named("peer_connect_failed")] == [77, 78]
    assert rig.reactor.tcpClients == []


def test_close_peer_connection_while_connecting() -> None:
    rig = Rig()
    _tcp_relay(rig)
    rig.from_alice(BINDING, [ConnectPeer(5, 77, PEER)])
    rig.from_alice(BINDING, [ClosePeerConnection(77)])
    connector = rig.reactor.connectors[-1]
    assert connector.stoppedConnecting
    rig.reactor.tcpClients[-1][2].clientConnectionFailed(connector, Failure(ConnectError()))  # type: ignore[no-untyped-call]
    assert rig.core.named("peer_connect_failed") == []  # the core asked: no news for it


def test_bind_connection_splices_both_ways() -> None:
    rig = Rig()
    _tcp_relay(rig)
    peer, peer_transport = _connect_peer(rig)
    data, data_transport = rig.connect(peer=("198.51.100.7", 5001))
    data_client = _client(data)
    rig.core.script["received"].append(
        [SendToClient(data_client, b"bind ok"), BindConnection(data_client, 77)]
    )
    data.dataReceived(BINDING + b"\x00\x01\x00")  # the bind, then raw bytes already
    assert _value(data_transport) == b"bind ok"
    assert _value(peer_transport) == b"\x00\x01\x00"
    assert peer_transport.producerState == "producing"
    data.dataReceived(b"\xff raw client bytes")  # not STUN: raw now
    assert _value(peer_transport) == b"\x00\x01\x00\xff raw client bytes"
    peer.dataReceived(b"\xfe raw peer bytes")
    assert _value(data_transport) == b"bind ok\xfe raw peer bytes"
    from_data = [call for call in rig.core.named("received") if call[1] == data_client]
    assert len(from_data) == 1  # nothing raw reached the core
    # each side's full buffer stops reading the other
    data.pauseProducing()
    assert peer_transport.producerState == "paused"
    data.resumeProducing()
    assert peer_transport.producerState == "producing"
    peer.pauseProducing()
    assert data_transport.producerState == "paused"
    peer.resumeProducing()
    assert data_transport.producerState == "producing"
    # the peer closes: the core hears of it, the data connection is closed
    peer.connectionLost()
    assert rig.core.named("peer_connection_lost") == [("peer_connection_lost", 77, 1000.0)]
    assert data_transport.disconnecting
    assert rig.driver.peer_connections == 0


def test_bind_after_an_asynchronous_key_hands_over_buffered_bytes() -> None:
    rig = Rig()
    _tcp_relay(rig)
    _, peer_transport = _connect_peer(rig)
    data, _ = rig.connect(peer=("198.51.100.7", 5001))
    data_client = _client(data)
    rig.core.script["received"].append([LookUpKey(data_client, BINDING, "alice")])
    data.dataReceived(BINDING + b"\x00\x01")
    rig.core.script["received"].append([BindConnection(data_client, 77)])
    rig.keys.pending[0].callback(b"k" * 16)
    assert _value(peer_transport) == b"\x00\x01"


def test_data_connection_closing_closes_the_peer() -> None:
    rig = Rig()
    _tcp_relay(rig)
    peer, peer_transport = _connect_peer(rig)
    data, _ = rig.connect(peer=("198.51.100.7", 5001))
    data_client = _client(data)
    rig.core.script["received"].append([BindConnection(data_client, 77)])
    data.dataReceived(BINDING)
    rig.core.script["connection_lost"].append([ClosePeerConnection(77)])
    data.connectionLost()
    assert rig.core.named("connection_lost") == [("connection_lost", data_client, 1000.0)]
    assert peer_transport.disconnecting
    peer.connectionLost()
    assert rig.core.named("peer_connection_lost") == []  # the core closed it itself


def test_bind_to_a_gone_peer_closes_the_data_connection() -> None:
    rig = Rig()
    data, data_transport = rig.connect()
    rig.from_alice(BINDING, [BindConnection(_client(data), 99)])
    assert data_transport.disconnecting


def test_peer_connecting_to_the_relay() -> None:
    rig = Rig()
    relay = _tcp_relay(rig)
    rig.core.script["peer_connection_accepted"].append([88, SendToClient(rig.alice, b"attempt")])
    peer = relay.factory.buildProtocol(IPv4Address("TCP", *PEER))
    transport = _connected(peer, (RELAY_V4, relay.port), PEER)
    assert rig.core.named("peer_connection_accepted") == [
        ("peer_connection_accepted", 5, PEER, 1000.0)
    ]
    assert peer.connection_id == 88
    assert transport.producerState == "paused"
    assert rig.udp.clear() == [(b"attempt", ALICE)]
    assert rig.driver.peer_connections == 1
    # one without a permission is refused
    refused = relay.factory.buildProtocol(IPv4Address("TCP", "203.0.113.10", 1))
    refused_transport = _connected(refused, (RELAY_V4, relay.port), ("203.0.113.10", 1))
    assert refused_transport.disconnecting
    refused.connectionLost()
    assert rig.core.named("peer_connection_lost") == []
    assert rig.driver.peer_connections == 1


# --- stopping, unknown effects


def test_stop_closes_everything() -> None:
    rig = Rig(token=lambda n: b"T" * n)
    rig.core.deadline = 2000.0
    rig.from_alice(BINDING, [OpenRelay(1, 4, True, True, None)])
    protocol, transport = rig.connect()
    assert len(rig.relay_ports()) == 2
    rig.driver.stop()
    assert rig.relay_ports() == []
    assert rig.reactor.getDelayedCalls() == []
    assert transport.disconnecting
    protocol.connectionLost()
    rig.from_alice(BINDING, [SendToClient(rig.alice, b"x")])
    assert rig.udp.clear() == []
    assert rig.core.named("connection_lost") == []


def test_unknown_effect_is_logged_and_skipped() -> None:
    rig = Rig()
    rig.from_alice(BINDING, [object(), SendToClient(rig.alice, b"ok")])
    assert rig.udp.clear() == [(b"ok", ALICE)]


# --- the service


def _config(*args: str) -> Any:
    options = RestundOptions()
    options.parseOptions(["--realm=example.com", "--user=alice:secret", *args])
    return options.config()


def test_service_listens_serves_metrics_and_stops() -> None:
    reactor = SipMemoryReactor()
    core = FakeCore()
    registry = CollectorRegistry()
    config = _config("--listen=192.0.2.1", "--listen=[2001:db8::1]:3479", "--http-port=8478")
    top = build(
        config, cast(ISipReactor, reactor), FakeKeys(), core=cast(TurnCore, core), registry=registry
    )
    turn_service = top.getServiceNamed("turn")
    assert isinstance(turn_service, TurnService)
    top.privilegedStartService()
    top.startService()
    assert [(p, i) for p, _, i, _ in reactor.udpPorts] == [
        (3478, "192.0.2.1"),
        (3479, "2001:db8::1"),
    ]
    assert [(p, i) for p, _, _, i in reactor.tcpServers] == [
        (3478, "192.0.2.1"),
        (3479, "2001:db8::1"),
        (8478, "127.0.0.1"),
    ]
    assert all(isinstance(f, TurnStreamFactory) for _, f, _, _ in reactor.tcpServers[:2])
    assert turn_service.driver.relay_ipv4 == "192.0.2.1"
    assert turn_service.driver.relay_ipv6 == "2001:db8::1"
    # a request on the IPv6 UDP port reaches the core
    reactor.udp_listeners[1].deliver(BINDING, ("2001:db8::7", 5000))
    assert core.calls[0][1] == Client("udp", ("2001:db8::7", 5000), ("2001:db8::1", 3479))
    core.stats.allocations = 3
    core.stats.allocations_total = 11
    core.stats.relayed_bytes_to_peer = 1234
    core.stats.relayed_packets_to_client = 5
    core.stats.quota_rejections = 2
    core.stats.auth_failures = 4
    text = generate_latest(registry).decode()
    assert "clearwater_turn_allocations_active 3.0" in text
    assert "clearwater_turn_allocations_total 11.0" in text
    assert 'clearwater_turn_relayed_bytes_total{direction="to_peer"} 1234.0' in text
    assert 'clearwater_turn_relayed_packets_total{direction="to_client"} 5.0' in text
    assert 'clearwater_turn_rejections_total{reason="quota"} 2.0' in text
    assert "clearwater_turn_auth_failures_total 4.0" in text
    assert 'clearwater_turn_key_lookups_total{result="dropped"} 0.0' in text
    assert "alice" not in text
    d = top.stopService()
    assert d is not None
    assert not any(p.listening for p in reactor.udp_listeners)


def test_collector_alone() -> None:
    rig = Rig()
    registry = CollectorRegistry()
    registry.register(TurnCollector(rig.driver))
    rig.connect()
    text = generate_latest(registry).decode()
    assert "clearwater_turn_connections_active 1.0" in text


def test_service_with_tls_uses_the_certificate(tmp_path: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    reactor = SipMemoryReactor()
    config = _config(f"--tls-cert={cert_path}", f"--tls-key={key_path}", "--http-port=0")
    top = build(config, cast(ISipReactor, reactor), FakeKeys(), core=cast(TurnCore, FakeCore()))
    top.startService()
    ((port, factory, context, _, interface),) = reactor.sslServers
    assert (port, interface) == (5349, "127.0.0.1")
    assert isinstance(factory, TurnStreamFactory) and factory.transport_name == "tls"
    assert context.getContext() is not None
    top.stopService()


def test_module_exports() -> None:
    for name in shell.__all__:
        assert hasattr(shell, name)
    with pytest.raises(ValueError):
        TurnStreamFactory(Rig().driver, "udp")
    with pytest.raises(ValueError):
        Rig(min_port=50001, max_port=50000)


# --- the real core through the shell

REALM = "example.com"


class RealRig:
    """The real TurnServer with a static user, through a driver, on UDP at SERVER."""

    def __init__(self) -> None:
        self.reactor = TurnMemoryReactor()
        self.reactor.advance(1000.0)
        config = TurnConfig(
            realm=REALM,
            relay_ipv4=RELAY_V4,
            peers=PeerPolicy(allow=cast(Any, ("203.0.113.0/24",))),
        )
        self.core = TurnServer(config)
        self.driver = TurnDriver(
            cast(ITurnReactor, self.reactor),
            cast(TurnCore, self.core),
            StaticUsers(REALM, [("alice", "secret")]),
            relay_ipv4=RELAY_V4,
            min_port=50000,
            max_port=50099,
        )
        self.udp = self.reactor.listenUDP(
            SERVER[1], TurnUdpProtocol(self.driver), interface=SERVER[0]
        )
        self.nonce: Optional[str] = None

    def ask(self, request: Message, key: Optional[bytes] = None) -> Message:
        self.udp.deliver(request.encode(key), ALICE)
        ((data, destination),) = self.udp.clear()
        assert destination == ALICE
        answer = parse_message(data)
        assert answer.transaction_id == request.transaction_id
        return answer

    def ask_signed(self, method: int, attributes: list[tuple[Any, Any]]) -> Message:
        key = _long_term_key("alice", REALM, "secret")
        if self.nonce is None:
            challenge = self.ask(Message(method, Class.REQUEST, new_transaction_id(), attributes))
            assert challenge.message_class == Class.ERROR
            assert challenge.get(Attr.ERROR_CODE) == ErrorCode(401)
            assert challenge.get(Attr.REALM) == REALM
            self.nonce = challenge.get(Attr.NONCE)
        credentials = [(Attr.USERNAME, "alice"), (Attr.REALM, REALM), (Attr.NONCE, self.nonce)]
        request = Message(method, Class.REQUEST, new_transaction_id(), attributes + credentials)
        return self.ask(request, key)

    def relay_ports(self) -> list[FakeUDPPort]:
        return [p for p in self.reactor.udp_listeners if p.listening and p is not self.udp]


def _long_term_key(username: str, realm: str, password: str) -> bytes:
    from clearwater.stun import long_term_key

    return long_term_key(username, realm, password)


def test_real_core_binding() -> None:
    rig = RealRig()
    answer = rig.ask(Message(Method.BINDING, Class.REQUEST, new_transaction_id()))
    assert answer.message_class == Class.SUCCESS
    assert answer.get(Attr.XOR_MAPPED_ADDRESS) == ALICE


def test_real_core_allocate_relay_and_expire() -> None:
    rig = RealRig()
    answer = rig.ask_signed(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert answer.message_class == Class.SUCCESS, answer.get(Attr.ERROR_CODE)
    (relay,) = rig.relay_ports()
    assert answer.get(Attr.XOR_RELAYED_ADDRESS) == (RELAY_V4, relay.port)
    assert answer.get(Attr.LIFETIME) == 600
    permission = rig.ask_signed(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER)])
    assert permission.message_class == Class.SUCCESS
    send = Message(
        Method.SEND,
        Class.INDICATION,
        new_transaction_id(),
        [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.DATA, b"hello")],
    )
    rig.udp.deliver(send.encode(), ALICE)
    assert relay.clear() == [(b"hello", PEER)]
    relay.deliver(b"back", PEER)
    ((data, destination),) = rig.udp.clear()
    assert destination == ALICE
    indication = parse_message(data)
    assert (indication.method, indication.message_class) == (Method.DATA, Class.INDICATION)
    assert indication.get(Attr.DATA) == b"back"
    assert indication.get(Attr.XOR_PEER_ADDRESS) == PEER
    assert rig.core.stats.relayed_packets_to_peer == 1
    assert rig.core.stats.relayed_bytes_to_client == 4
    # one timer, whatever the core has pending; the allocation ends at its lifetime
    assert len(rig.reactor.getDelayedCalls()) == 1
    rig.reactor.advance(599)
    assert _listening(relay)
    assert len(rig.reactor.getDelayedCalls()) == 1
    rig.reactor.advance(1)
    assert not _listening(relay)
    assert rig.core.stats.allocations == 0
    assert rig.driver.relays == 0


def test_real_core_wrong_password_is_401() -> None:
    rig = RealRig()
    allocate: list[tuple[Any, Any]] = [(Attr.REQUESTED_TRANSPORT, 17)]
    challenge = rig.ask(Message(Method.ALLOCATE, Class.REQUEST, new_transaction_id(), allocate))
    credentials = [
        (Attr.USERNAME, "alice"),
        (Attr.REALM, REALM),
        (Attr.NONCE, challenge.get(Attr.NONCE)),
    ]
    bad = Message(Method.ALLOCATE, Class.REQUEST, new_transaction_id(), allocate + credentials)
    answer = rig.ask(bad, _long_term_key("alice", REALM, "wrong"))
    assert answer.get(Attr.ERROR_CODE) == ErrorCode(401)
    assert rig.driver.lookup_results["found"] == 1
    assert rig.core.stats.auth_failures == 1
    assert rig.relay_ports() == []
