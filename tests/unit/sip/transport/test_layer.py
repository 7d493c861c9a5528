"""The transport layer on memory transports: RFC 3261 §18, RFC 3581, RFC 5626 keep-alives."""

from __future__ import annotations

from typing import Any, Optional, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from clearwater._types import ISipReactor
from clearwater.errors import TransportError
from clearwater.sip import Request, Response, parse_message
from clearwater.sip.transport import Flow, ListenSpec, Target, TransportLayer, TransportSettings
from clearwater.testing import SipMemoryReactor

OPTIONS = (
    b"OPTIONS sip:bob@10.0.0.2 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK776asdhds%s\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@10.0.0.2>\r\n"
    b"From: <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def options(via_params: bytes = b"") -> bytes:
    return OPTIONS % via_params


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[Request, Flow]] = []
        self.responses: list[tuple[Response, Flow]] = []
        self.lost: list[tuple[str, str, int]] = []

    def request_received(self, request: Request, flow: Flow) -> None:
        self.requests.append((request, flow))

    def response_received(self, response: Response, flow: Flow) -> None:
        self.responses.append((response, flow))

    def connection_lost(self, keys: list[tuple[str, str, int]]) -> None:
        self.lost.extend(keys)


def make(
    settings: Optional[TransportSettings] = None,
) -> tuple[SipMemoryReactor, TransportLayer, Receiver]:
    reactor = SipMemoryReactor()
    receiver = Receiver()
    layer = TransportLayer(cast(ISipReactor, reactor), receiver, settings)
    return reactor, layer, receiver


# ---- listen specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5060", ListenSpec("UDP", "127.0.0.1", 5060)),
        ("TLS:[::1]:5061", ListenSpec("TLS", "::1", 5061)),
        ("ws:0.0.0.0:0", ListenSpec("WS", "0.0.0.0", 0)),
    ],
)
def test_listen_spec_parses(text: str, expected: ListenSpec) -> None:
    assert ListenSpec.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sctp:127.0.0.1:5060", "TRANSPORT:HOST:PORT"),
        ("udp:127.0.0.1", "port number"),
        ("udp:127.0.0.1:70000", "port number"),
        ("udp:example.com:5060", "literal IP"),
    ],
)
def test_listen_spec_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ListenSpec.parse(text)


# ---- receiving over UDP (§18.2.1, RFC 3581)


def test_request_gets_received_when_sent_by_differs_from_the_source() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, options(), ("203.0.113.7", 5999))
    request, flow = receiver.requests[0]
    assert flow == Flow("UDP", "203.0.113.7", 5999, "10.0.0.2", 5060)
    assert request.top_via.received == "203.0.113.7"
    assert request.top_via.rport is None


def test_rport_is_filled_in_with_received_even_for_the_same_host() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, options(b";rport"), ("192.168.1.5", 5999))
    via = receiver.requests[0][0].top_via
    assert via.received == "192.168.1.5" and via.rport == "5999"


def test_matching_source_leaves_the_via_alone() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, options(), ("192.168.1.5", 5060))
    request = receiver.requests[0][0]
    assert request.headers.get("Via") == "SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK776asdhds"


def test_response_goes_to_received_and_rport() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, options(b";rport"), ("203.0.113.7", 6001))
    request, flow = receiver.requests[0]
    response = Response(200, "OK", [(n, v) for n, v in request.headers if n != "Max-Forwards"])
    layer.send_response(response, flow)
    data, address = reactor.udp_listeners[0].written[-1]
    assert address == ("203.0.113.7", 6001)
    assert data.startswith(b"SIP/2.0 200 OK\r\n")


def test_response_without_rport_goes_to_the_sent_by_port() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, options(), ("203.0.113.7", 6001))
    request, flow = receiver.requests[0]
    layer.send_response(Response(200, "OK", list(request.headers)), flow)
    assert reactor.udp_listeners[0].written[-1][1] == ("203.0.113.7", 5060)


def test_malformed_request_with_a_usable_via_gets_400_with_the_reason() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    bad = options().replace(b"CSeq: 63104 OPTIONS", b"CSeq: x OPTIONS")
    reactor.deliver_datagram(5060, bad, ("203.0.113.7", 6001))
    assert receiver.requests == []
    data, address = reactor.udp_listeners[0].written[-1]
    assert address == ("203.0.113.7", 6001)
    # The request's own lines are copied as they were, the broken CSeq included.
    lines = data.split(b"\r\n")
    assert lines[0] == b"SIP/2.0 400 Bad CSeq"
    assert b"Call-ID: a84b4c76e66710" in lines
    assert b"CSeq: x OPTIONS" in lines
    assert any(line.startswith(b"To: <sip:bob@10.0.0.2>;tag=") for line in lines)
    assert layer.stats["UDP"].parse_errors == 1 and layer.stats["UDP"].rejected == 1


def test_version_error_keeps_its_status() -> None:
    reactor, layer, _ = make()
    layer.listen("udp:10.0.0.2:5060")
    bad = options().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    reactor.deliver_datagram(5060, bad, ("203.0.113.7", 6001))
    assert reactor.udp_listeners[0].written[-1][0].startswith(b"SIP/2.0 505 ")


@pytest.mark.parametrize(
    "bad",
    [
        b"OPTIONS sip:bob@10.0.0.2 SIP/2.0\r\nVia: garbage\r\nCSeq: x\r\n\r\n",
        b"OPTIONS sip:bob@10.0.0.2 SIP/2.0\r\nCSeq: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n\r\n",
        b"ACK sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n"
        b"CSeq: x\r\n\r\n",
        b"\x00\xff\xfe garbage",
    ],
)
def test_unanswerable_garbage_is_dropped_and_counted(bad: bytes) -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, bad, ("203.0.113.7", 6001))
    assert reactor.udp_listeners[0].written == []
    assert receiver.requests == [] and receiver.responses == []
    assert layer.stats["UDP"].dropped == 1


def test_crlf_keepalive_datagrams_are_ignored() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    reactor.deliver_datagram(5060, b"\r\n\r\n", ("203.0.113.7", 6001))
    assert layer.stats["UDP"].messages_received == 0 and receiver.requests == []


# ---- sending requests (§18.1.1)


def request(body: bytes = b"") -> Request:
    message = parse_message(options())
    assert isinstance(message, Request)
    message.body = body
    return message


def test_prepare_request_writes_our_sent_by_and_rport() -> None:
    _, layer, _ = make()
    layer.listen("udp:10.0.0.2:5070")
    message = request()
    target = layer.prepare_request(message, Target("UDP", "10.0.0.9", 5060))
    assert target == Target("UDP", "10.0.0.9", 5060)
    assert message.headers.get("Via") == "SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK776asdhds;rport"


def test_large_udp_request_moves_to_tcp() -> None:
    _, layer, _ = make()
    layer.listen("udp:10.0.0.2:5060")
    layer.listen("tcp:10.0.0.2:5060")
    message = request(b"x" * 1400)
    target = layer.prepare_request(message, Target("UDP", "10.0.0.9", 5060))
    assert target.transport == "TCP"
    assert message.top_via.transport == "TCP"


def test_the_size_rule_can_be_turned_off() -> None:
    _, layer, _ = make(TransportSettings(udp_to_tcp=False))
    layer.listen("udp:10.0.0.2:5060")
    assert (
        layer.prepare_request(request(b"x" * 1400), Target("UDP", "10.0.0.9", 5060)).transport
        == "UDP"
    )


def test_response_not_for_us_is_dropped() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    message = request()
    layer.prepare_request(message, Target("UDP", "10.0.0.9", 5060))
    ours = b"SIP/2.0 200 OK\r\n" + message.to_bytes().split(b"\r\n", 1)[1]
    theirs = ours.replace(b"10.0.0.2:5060", b"10.0.0.77:5060")
    reactor.deliver_datagram(5060, theirs, ("10.0.0.9", 5060))
    reactor.deliver_datagram(5060, ours, ("10.0.0.9", 5060))
    assert len(receiver.responses) == 1
    assert layer.stats["UDP"].dropped == 1


def test_sending_to_a_host_name_fails_clearly() -> None:
    _, layer, _ = make()
    layer.listen("udp:10.0.0.2:5060")
    d = layer.send_request(request(), Target("UDP", "example.com", 5060))
    failure = cast(Failure, _failure(d))
    assert isinstance(failure.value, TransportError)
    assert "resolve it first" in str(failure.value)


def fired(d: Any) -> bool:
    return bool(d.called)


def _failure(d: Any) -> Optional[Failure]:
    out: list[Failure] = []
    d.addErrback(out.append)
    return out[0] if out else None


# ---- streams


def string_transport(local: tuple[str, int], remote: tuple[str, int]) -> Any:
    """A StringTransport (unannotated in Twisted, hence Any) with both addresses."""
    return StringTransport(  # type: ignore[no-untyped-call]  # untyped in Twisted
        hostAddress=IPv4Address("TCP", *local), peerAddress=IPv4Address("TCP", *remote)
    )


def accept(reactor: SipMemoryReactor, remote: tuple[str, int]) -> tuple[Protocol, Any]:
    """Accept a TCP connection on the last TCP listener."""
    factory: IProtocolFactory = reactor.tcpServers[-1][1]
    protocol = cast(Protocol, factory.buildProtocol(IPv4Address("TCP", *remote)))
    transport = string_transport(("10.0.0.2", 5060), remote)
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]  # untyped in Twisted
    return protocol, transport


def test_tcp_request_and_response_share_the_connection() -> None:
    reactor, layer, receiver = make()
    layer.listen("tcp:10.0.0.2:5060")
    protocol, transport = accept(reactor, ("203.0.113.7", 40000))
    data = options().replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    protocol.dataReceived(data[:20])
    protocol.dataReceived(data[20:])
    request, flow = receiver.requests[0]
    assert flow.connection_key == ("TCP", "203.0.113.7", 40000)
    layer.send_response(Response(200, "OK", list(request.headers)), flow)
    assert transport.value().startswith(b"SIP/2.0 200 OK\r\n")
    assert reactor.tcpClients == []  # no new connection


def test_tcp_keepalive_ping_gets_a_pong() -> None:
    reactor, layer, _ = make()
    layer.listen("tcp:10.0.0.2:5060")
    protocol, transport = accept(reactor, ("203.0.113.7", 40000))
    protocol.dataReceived(b"\r\n\r\n")
    assert transport.value() == b"\r\n"
    assert layer.stats["TCP"].keepalives_answered == 1


def test_tcp_peer_exceeding_the_header_limit_is_disconnected() -> None:
    reactor, layer, _ = make(TransportSettings(max_header_size=1024))
    layer.listen("tcp:10.0.0.2:5060")
    protocol, transport = accept(reactor, ("203.0.113.7", 40000))
    protocol.dataReceived(b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 2000)
    assert transport.disconnecting
    assert layer.stats["TCP"].limit_disconnects == 1


def test_idle_tcp_connection_is_closed() -> None:
    reactor, layer, _ = make(TransportSettings(idle_timeout=30))
    layer.listen("tcp:10.0.0.2:5060")
    protocol, transport = accept(reactor, ("203.0.113.7", 40000))
    reactor.advance(20)
    protocol.dataReceived(b"\r\n\r\n")  # activity restarts the timer
    reactor.advance(20)
    assert not transport.disconnecting
    reactor.advance(11)
    assert transport.disconnecting
    assert layer.stats["TCP"].idle_disconnects == 1


def test_malformed_tcp_request_is_answered_on_the_connection() -> None:
    reactor, layer, _ = make()
    layer.listen("tcp:10.0.0.2:5060")
    protocol, transport = accept(reactor, ("203.0.113.7", 40000))
    protocol.dataReceived(options().replace(b"CSeq: 63104 OPTIONS", b"CSeq: 1 INVITE"))
    assert transport.value().startswith(b"SIP/2.0 400 ")
    assert not transport.disconnecting


def test_outbound_tcp_connection_queues_until_connected_then_is_reused() -> None:
    reactor, layer, _ = make()
    layer.listen("tcp:10.0.0.2:5060")
    target = Target("TCP", "10.0.0.9", 5060)
    first = request()
    layer.prepare_request(first, target)
    d1 = layer.send_request(first, target)
    d2 = layer.send_request(first, target)
    assert len(reactor.tcpClients) == 1 and not fired(d1)
    host, port, factory, _, _ = reactor.tcpClients[0]
    assert (host, port) == ("10.0.0.9", 5060)
    protocol = cast(Protocol, factory.buildProtocol(IPv4Address("TCP", host, port)))
    transport = string_transport(("10.0.0.2", 40001), (host, port))
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]  # untyped in Twisted
    assert fired(d1) and fired(d2)
    assert transport.value().count(b"OPTIONS sip:") == 2
    layer.send_request(first, target)
    assert len(reactor.tcpClients) == 1
    assert layer.stats["TCP"].messages_sent == 3


def test_refused_connection_fails_the_queued_sends() -> None:
    reactor, layer, receiver = make()
    layer.listen("udp:10.0.0.2:5060")
    target = Target("TCP", "10.0.0.9", 5060)
    d = layer.send_request(request(), target)
    _, _, factory, _, _ = reactor.tcpClients[0]
    refused: Any = ConnectionRefusedError
    factory.clientConnectionFailed(cast(Any, None), Failure(refused()))  # type: ignore[no-untyped-call]
    failure = _failure(d)
    assert failure is not None and isinstance(failure.value, TransportError)
    assert layer.stats["TCP"].connections_failed == 1
    assert layer.connection_count == 0
    assert receiver.lost == [("TCP", "10.0.0.9", 5060)]
