"""Diameter test helpers: nodes in memory, on one clock, joined by ``twisted.test.iosim``.

Diameter nodes in memory
========================

:class:`DiameterNetwork` runs :class:`~clearwater.diameter.node.DiameterNode` s (and test
clients) with no sockets. Each node gets a :class:`NodeReactor` for its IP address: its own TCP
tables (``tcpServers``, ``tcpClients``) and the network's single ``Clock``. A node's
``connectTCP`` (what its ``TCP4ClientEndpoint`` calls) waits as a :class:`ConnectAttempt`
until the network completes it against the factory listening at the destination, or fails it
(``clientConnectionFailed``). A completed attempt is a :class:`DiameterLink`: the two
protocols on ``iosim`` fake transports, with the bytes that crossed each way kept for the test
to parse::

    net = DiameterNetwork()
    a = DiameterNode(net.reactor("10.0.0.1"), "a.example.com", "example.com", apps,
                     peers=[PeerConfig("b.example.com", "10.0.0.2")])
    b = DiameterNode(net.reactor("10.0.0.2"), "b.example.com", "example.com", apps,
                     listen=(3868, ""))
    b.startService(); a.startService()
    net.pump()                       # connect, CER/CEA: both open
    net.advance(60)                  # the clock, timer by timer, pumping after each
    [link] = net.links               # a -> b
    cer, *rest = link.client_messages()
    assert cer.command_code == 257 and 280 in [m.command_code for m in rest]

- :meth:`DiameterNetwork.pump` moves bytes until nothing moves, in steps: what every end wrote
  before a step is delivered in that step (so two CERs sent at once cross). While
  ``auto_connect`` is True it also completes each connection attempt to a listening address,
  refuses those to an address nobody listens on, and leaves those to a ``blackholed`` address
  waiting (a lost SYN: the node's own timer decides). With ``auto_connect`` False the test
  completes or refuses each attempt itself (:meth:`~DiameterNetwork.attempts`,
  :meth:`~DiameterNetwork.complete`, :meth:`~DiameterNetwork.refuse`).
- :meth:`DiameterNetwork.advance` moves the clock to each timer in turn and pumps after each,
  so a timer fires with the clock at its own time.
- :class:`DiameterLink`: :meth:`~DiameterLink.stall` holds one direction's bytes (a peer that
  stops answering) until :meth:`~DiameterLink.resume`; :meth:`~DiameterLink.drop` breaks the
  connection under both ends; ``inject_to_server`` / ``inject_to_client`` hand bytes straight
  to one end, as if the other had sent them (they are not in ``client_sent`` /
  ``server_sent``). Closing is modelled on TCP: after ``loseConnection`` what was written is
  still delivered, ``abortConnection`` discards it, an end that closed reads nothing more, and
  both ends see ``connectionLost`` once nothing is left to deliver, a stall notwithstanding.
- :class:`RawPeer`: a protocol for the test to play a peer by hand (a CER that never comes,
  garbage), recording what it receives; :meth:`DiameterNetwork.connect` connects it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Callable, Optional

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
)
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim
from typing_extensions import override
from zope.interface import implementer

from clearwater._types import ISipReactor
from clearwater.diameter.message import Framer, Message, parse_message
from clearwater.testing.reactor import SipMemoryReactor

# ================================================================ Diameter nodes in memory

__all__ = [
    "ConnectAttempt",
    "DiameterLink",
    "DiameterNetwork",
    "NodeReactor",
    "RawPeer",
    "parse_stream",
]

#: The first port number given to the connecting end of a link.
FIRST_CLIENT_PORT = 50000

_WILDCARDS = ("", "0.0.0.0")


def parse_stream(data: bytes) -> list[Message]:
    """The Diameter messages in a byte stream, in order (a message cut short at the end is left
    out); raises on bytes that do not frame or parse."""
    return [parse_message(frame) for frame in Framer(len(data) + 20).feed(data)]


def _failure(error: Exception) -> Failure:
    return Failure(error)  # type: ignore[no-untyped-call]  # untyped in Twisted


@implementer(IListeningPort)
class _ListeningPort:
    """A TCP port a :class:`NodeReactor` listens on, until ``stopListening``."""

    def __init__(self, reactor: NodeReactor, port: int, factory: Any, interface: str) -> None:
        self.reactor = reactor
        self.port = port
        self.factory = factory
        self.interface = interface
        self.listening = True

    def startListening(self) -> None:  # noqa: N802 (IListeningPort)
        self.listening = True

    def stopListening(self) -> None:  # noqa: N802 (IListeningPort)
        self.listening = False

    def getHost(self) -> IPv4Address:  # noqa: N802 (IListeningPort)
        return IPv4Address("TCP", self.interface or self.reactor.address, self.port)


@implementer(ISipReactor)
class NodeReactor(SipMemoryReactor):
    """The reactor of the node at ``address``: a memory reactor whose time is the network's
    clock. ``tcpClients`` and ``tcpServers`` record its calls as ``MemoryReactor`` does;
    ``ports`` are its listening ports (a stopped one refuses connections)."""

    def __init__(self, network: DiameterNetwork, address: str) -> None:
        super().__init__()
        self.network = network
        self.address = address
        self.ports: list[_ListeningPort] = []

    @override
    def seconds(self) -> float:
        return self.network.clock.seconds()

    @override
    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        return self.network.clock.callLater(delay, callable, *args, **kw)

    @override
    def getDelayedCalls(self) -> list[IDelayedCall]:
        return list(self.network.clock.getDelayedCalls())

    @override
    def advance(self, amount: float) -> None:
        self.network.advance(amount)

    @override
    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> _ListeningPort:
        self.tcpServers.append((port, factory, backlog, interface))
        listening = _ListeningPort(self, port, factory, interface)
        self.ports.append(listening)
        return listening


@attrs.frozen
class ConnectAttempt:
    """A ``connectTCP`` from the node at ``source`` to ``host``:``port``, not yet completed."""

    source: str
    host: str
    port: int
    factory: ClientFactory
    connector: IConnector


class _Transport(iosim.FakeTransport):
    """An iosim transport whose ``abortConnection`` discards what was not yet sent."""

    aborted = False

    def __init__(
        self, protocol: IProtocol, is_server: bool, host: IAddress, peer: IAddress
    ) -> None:
        super().__init__(protocol, is_server, host, peer)  # type: ignore[no-untyped-call]

    def take(self) -> bytes:
        """The bytes written since the last take."""
        data: Optional[bytes] = self.getOutBuffer()  # type: ignore[no-untyped-call]  # untyped
        return data or b""

    @override
    def abortConnection(self) -> None:
        self.aborted = True
        self.stream = []
        self.disconnecting = True


class DiameterLink:
    """One connection between a connecting end (``client``, at ``client_address``) and an
    accepting one (``server``). ``client_sent`` / ``server_sent`` are the bytes each end sent
    that reached the other; ``opened_at`` and ``closed_at`` are clock times."""

    def __init__(
        self,
        network: DiameterNetwork,
        client: IProtocol,
        server: IProtocol,
        client_address: IPv4Address,
        server_address: IPv4Address,
    ) -> None:
        self.network = network
        self.client = client
        self.server = server
        self.client_address = client_address
        self.server_address = server_address
        self.client_transport = _Transport(client, False, client_address, server_address)
        self.server_transport = _Transport(server, True, server_address, client_address)
        self.client_sent = bytearray()
        self.server_sent = bytearray()
        self.stalled_to_server = False
        self.stalled_to_client = False
        self.closed = False
        self.opened_at = network.clock.seconds()
        self.closed_at: Optional[float] = None

    @override
    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<DiameterLink {self.client_host} -> {self.server_host} {state}>"

    @property
    def client_host(self) -> str:
        return str(self.client_address.host)

    @property
    def server_host(self) -> str:
        return str(self.server_address.host)

    def client_messages(self) -> list[Message]:
        """The messages the client sent that reached the server."""
        return parse_stream(bytes(self.client_sent))

    def server_messages(self) -> list[Message]:
        """The messages the server sent that reached the client."""
        return parse_stream(bytes(self.server_sent))

    def stall(self, *, to_server: bool = True, to_client: bool = True) -> None:
        """Hold the bytes going one way (or both) until :meth:`resume`."""
        self.stalled_to_server = self.stalled_to_server or to_server
        self.stalled_to_client = self.stalled_to_client or to_client

    def resume(self) -> None:
        self.stalled_to_server = self.stalled_to_client = False

    def inject_to_server(self, data: bytes) -> None:
        """Hand ``data`` to the server now, as if the client had sent it."""
        self.server.dataReceived(data)

    def inject_to_client(self, data: bytes) -> None:
        """Hand ``data`` to the client now, as if the server had sent it."""
        self.client.dataReceived(data)

    def drop(self) -> None:
        """Break the connection now: what was in flight is lost, both ends see
        ``connectionLost`` (ConnectionLost)."""
        if self.closed:
            return
        for transport in (self.client_transport, self.server_transport):
            transport.stream = []
            transport.disconnecting = True
        self._close(ConnectionLost("Link dropped"))

    def pump(self) -> bool:
        """One step of this link alone: deliver what each end had written; if neither had
        written anything and an end closed, end the connection. Whether anything happened."""
        return self._deliver(*self._take())

    def _take(self) -> tuple[bytes, bytes]:
        """What each end wrote since the last step and is not stalled."""
        if self.closed:
            return b"", b""
        up = b"" if self.stalled_to_server else self.client_transport.take()
        down = b"" if self.stalled_to_client else self.server_transport.take()
        return up, down

    def _deliver(self, up: bytes, down: bytes) -> bool:
        """Deliver what :meth:`_take` took; an end that closed meanwhile reads no more."""
        if self.closed:
            return False
        if up and not self.server_transport.disconnecting:
            self.client_sent += up
            self.server.dataReceived(up)
        if down and not self.client_transport.disconnecting:
            self.server_sent += down
            self.client.dataReceived(down)
        if up or down:
            return True
        if self.client_transport.disconnecting or self.server_transport.disconnecting:
            aborted = self.client_transport.aborted or self.server_transport.aborted
            reason: Exception
            if aborted:
                reason = ConnectionLost("Connection aborted")
            else:
                reason = ConnectionDone("Connection closed")
            self._close(reason)
            return True
        return False

    def _close(self, reason: Exception) -> None:
        self.closed = True
        self.closed_at = self.network.clock.seconds()
        # The end that closed learns first, as its own reactor tells it before the peer's does.
        server_closed = self.server_transport.disconnecting and not (
            self.client_transport.disconnecting
        )
        ends = [self.server, self.client] if server_closed else [self.client, self.server]
        for transport in (self.client_transport, self.server_transport):
            transport.stream = []
            transport.disconnecting = True
            transport.disconnected = True
        for end in ends:
            end.connectionLost(_failure(reason))


class RawPeer(Protocol):
    """A peer the test plays by hand: :meth:`send` writes a message (or bytes), ``received``
    holds every byte received, :meth:`messages` parses them, ``lost`` says whether the
    connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lost = False

    @override
    def dataReceived(self, data: bytes) -> None:
        self.received += data

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True

    def send(self, message: Message | bytes) -> None:
        assert self.transport is not None
        self.transport.write(message if isinstance(message, bytes) else bytes(message))

    def messages(self) -> list[Message]:
        return parse_stream(bytes(self.received))


class DiameterNetwork:
    """Nodes on one clock (``clock``) and the links between them; see the module docstring.
    ``links`` holds every link made, closed ones included, oldest first."""

    def __init__(self, *, auto_connect: bool = True) -> None:
        self.clock = Clock()
        self.auto_connect = auto_connect
        self.blackholed: set[str] = set()
        self.links: list[DiameterLink] = []
        self._reactors: dict[str, NodeReactor] = {}
        self._client_ports = itertools.count(FIRST_CLIENT_PORT)

    def reactor(self, address: str) -> NodeReactor:
        """The reactor of the node at ``address`` (an IPv4 literal), made on first use."""
        reactor = self._reactors.get(address)
        if reactor is None:
            reactor = self._reactors[address] = NodeReactor(self, address)
        return reactor

    def listener(self, host: str, port: int) -> Optional[IProtocolFactory]:
        """The factory listening on ``host``:``port``, or None."""
        reactor = self._reactors.get(host)
        if reactor is None:
            return None
        for listening in reactor.ports:
            if (
                listening.listening
                and listening.port == port
                and listening.interface in (*_WILDCARDS, host)
            ):
                factory: IProtocolFactory = listening.factory
                return factory
        return None

    # ---- connection attempts

    def attempts(self) -> list[ConnectAttempt]:
        """The connection attempts waiting, oldest first per node."""
        return list(self._attempts())

    def _attempts(self) -> Iterator[ConnectAttempt]:
        for reactor in self._reactors.values():
            # An attempt its node gave up (stopConnecting) is gone, as with a real connector.
            kept = [
                (call, connector)
                for call, connector in zip(reactor.tcpClients, reactor.connectors)
                if not getattr(connector, "stoppedConnecting", False)
            ]
            reactor.tcpClients[:] = [call for call, _ in kept]
            reactor.connectors[:] = [connector for _, connector in kept]
            for (host, port, factory, _, _), connector in kept:
                yield ConnectAttempt(reactor.address, host, port, factory, connector)

    def _take(self, attempt: ConnectAttempt) -> None:
        reactor = self._reactors[attempt.source]
        for index, connector in enumerate(reactor.connectors):
            if connector is attempt.connector:
                del reactor.connectors[index]
                del reactor.tcpClients[index]
                return
        raise LookupError(f"{attempt} is not waiting")

    def complete(self, attempt: ConnectAttempt) -> DiameterLink:
        """Connect ``attempt`` to the factory listening at its destination (LookupError if
        none): both protocols are built and connected; nothing is pumped yet."""
        factory = self.listener(attempt.host, attempt.port)
        if factory is None:
            raise LookupError(f"Nothing listens on {attempt.host}:{attempt.port}")
        self._take(attempt)
        client_address = IPv4Address("TCP", attempt.source, next(self._client_ports))
        server_address = IPv4Address("TCP", attempt.host, attempt.port)
        client = attempt.factory.buildProtocol(server_address)
        server = factory.buildProtocol(client_address)
        assert client is not None and server is not None
        return self._link(client, server, client_address, server_address)

    def refuse(self, attempt: ConnectAttempt, reason: Optional[Exception] = None) -> None:
        """Fail ``attempt`` (ConnectionRefusedError unless ``reason`` is given)."""
        self._take(attempt)
        error = reason if reason is not None else ConnectionRefusedError()  # type: ignore[no-untyped-call]
        attempt.factory.clientConnectionFailed(attempt.connector, _failure(error))

    def connect(
        self, client: IProtocol, host: str, port: int = 3868, source: str = "192.0.2.250"
    ) -> DiameterLink:
        """Connect a test's own ``client`` (e.g. a :class:`RawPeer`), from ``source``, to the
        factory listening on ``host``:``port``."""
        factory = self.listener(host, port)
        if factory is None:
            raise LookupError(f"Nothing listens on {host}:{port}")
        client_address = IPv4Address("TCP", source, next(self._client_ports))
        server_address = IPv4Address("TCP", host, port)
        server = factory.buildProtocol(client_address)
        assert server is not None
        return self._link(client, server, client_address, server_address)

    def _link(
        self,
        client: IProtocol,
        server: IProtocol,
        client_address: IPv4Address,
        server_address: IPv4Address,
    ) -> DiameterLink:
        link = DiameterLink(self, client, server, client_address, server_address)
        self.links.append(link)
        server.makeConnection(link.server_transport)
        client.makeConnection(link.client_transport)
        return link

    # ---- running

    def open_links(self) -> list[DiameterLink]:
        return [link for link in self.links if not link.closed]

    def links_between(self, client: str, server: str) -> list[DiameterLink]:
        """The links (closed ones too) from the node at ``client`` to the one at ``server``."""
        return [
            link for link in self.links if link.client_host == client and link.server_host == server
        ]

    def messages(self, sender: str, receiver: str) -> list[Message]:
        """What the node at ``sender`` sent the one at ``receiver`` on every link, link by
        link."""
        out: list[Message] = []
        for link in self.links:
            if (link.client_host, link.server_host) == (sender, receiver):
                out.extend(link.client_messages())
            elif (link.server_host, link.client_host) == (sender, receiver):
                out.extend(link.server_messages())
        return out

    def pump(self) -> None:
        """Run what is due now, connect (when ``auto_connect``) and move bytes until nothing
        moves."""
        for _ in range(10_000):
            self.clock.advance(0)
            moved = False
            if self.auto_connect:
                for attempt in self.attempts():
                    if attempt.host in self.blackholed:
                        continue
                    if self.listener(attempt.host, attempt.port) is None:
                        self.refuse(attempt)
                    else:
                        self.complete(attempt)
                    moved = True
            # Every end's bytes of this step are in flight together (two CERs cross).
            batch = [(link, link._take()) for link in self.links if not link.closed]
            for link, (up, down) in batch:
                moved = link._deliver(up, down) or moved
            if not moved:
                return
        raise AssertionError("The Diameter network never went quiet")

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, stopping at each timer due meanwhile to run it and
        pump."""
        end = self.clock.seconds() + seconds
        self.pump()
        for _ in range(100_000):
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            next_due = min((at for at in due if at <= end), default=None)
            if next_due is None:
                break
            self.clock.advance(max(0.0, next_due - self.clock.seconds()))
            self.pump()
        else:
            raise AssertionError("Timers kept firing without the clock moving on")
        self.clock.advance(max(0.0, end - self.clock.seconds()))
        self.pump()
