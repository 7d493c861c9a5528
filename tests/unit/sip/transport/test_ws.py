"""Tests for :mod:`clearwater.sip.transport._ws`: SIP over WebSocket (RFC 7118 §4.1, §5) on
wsproto, with the RFC 6455 opening handshake, Origin check, pings and the close handshake.

Server handshakes are hand-written and checked on a ``StringTransport``; fragments and protocol
errors come from a raw wsproto client; client and server pairs talk through ``iosim``.
Hypothesis checks that a whole client session, split anywhere, gives the same SIP messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.interfaces import IProtocol, ITCPTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from typing_extensions import override
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from zope.interface import alsoProvides
from zope.interface.verify import verifyObject

from clearwater.errors import ProtocolError
from clearwater.sip.transport._ws import WebSocketSipProtocol

OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKhjhs8ass877;received=192.0.2.4\r\n"
    b"To: <sip:bob@example.com>;tag=93810874\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, MESSAGE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# An SMS over IP (3GPP TS 24.341) carries a binary RP-DATA body: not UTF-8, so a binary frame.
SMS_BODY = b"\x00\x01\x00\x07\x91\x44\x77\x58\x10\x06\x50\xff\xfe\x80"


def sip_message(body: bytes, *, call_id: str = "3848276298220188511@atlanta.example.com") -> bytes:
    """A MESSAGE request carrying ``body``."""
    head = (
        "MESSAGE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776sgdkse\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:bob@example.com>\r\n"
        "From: <sip:alice@example.com>;tag=49583\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Type: application/vnd.3gpp.sms\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


BINARY_MESSAGE = sip_message(SMS_BODY)

# RFC 6455 §1.3: this key must be answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake(
    *,
    protocols: Optional[bytes] = b"sip",
    origin: Optional[bytes] = None,
    extra: Sequence[bytes] = (),
    method: bytes = b"GET",
) -> bytes:
    lines = [
        method + b" /sip HTTP/1.1",
        b"Host: edge.example.com:5062",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + RFC_KEY,
        b"Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(b"Origin: " + origin)
    if protocols is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + protocols)
    lines.extend(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Recorder:
    """A :class:`WebSocketHandler` that records what it is told."""

    def __init__(self) -> None:
        self.opened = 0
        self.messages: list[bytes] = []
        self.closed: list[str] = []

    def ws_opened(self, ws: WebSocketSipProtocol) -> None:
        self.opened += 1

    def ws_message(self, ws: WebSocketSipProtocol, data: bytes) -> None:
        self.messages.append(data)

    def ws_closed(self, ws: WebSocketSipProtocol, reason: str) -> None:
        self.closed.append(reason)


class Echo(Recorder):
    """Answers every SIP message from inside ``ws_message``."""

    @override
    def ws_message(self, ws: WebSocketSipProtocol, data: bytes) -> None:
        super().ws_message(ws, data)
        ws.send_message(OK_200)


# Twisted's testing helpers are untyped; these typed wrappers hold the only ignores.


def string_transport() -> StringTransport:
    return StringTransport()  # type: ignore[no-untyped-call]  # untyped in Twisted


def attach(protocol: WebSocketSipProtocol, transport: object) -> None:
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]  # untyped in Twisted


def written(transport: StringTransport) -> bytes:
    data: bytes = transport.value()  # type: ignore[no-untyped-call]  # untyped in Twisted
    return data


def take(transport: StringTransport) -> bytes:
    data = written(transport)
    transport.clear()  # type: ignore[no-untyped-call]  # untyped in Twisted
    return data


def dropped(transport: StringTransport) -> bool:
    return bool(transport.disconnecting)


def lost(exception: Exception) -> Failure:
    return Failure(exception)  # type: ignore[no-untyped-call]  # untyped in Twisted


def connect_pair(
    server_protocol: WebSocketSipProtocol, client_protocol: WebSocketSipProtocol
) -> iosim.IOPump:
    pump: iosim.IOPump = iosim.connect(  # type: ignore[no-untyped-call]  # untyped in Twisted
        server_protocol,
        iosim.makeFakeServer(server_protocol),  # type: ignore[no-untyped-call]  # untyped
        client_protocol,
        iosim.makeFakeClient(client_protocol),  # type: ignore[no-untyped-call]  # untyped
    )
    return pump


def flush(pump: iosim.IOPump) -> None:
    pump.flush()  # type: ignore[no-untyped-call]  # untyped in Twisted


def parse_http(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names; repeats joined by ", ") and body of a response."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = headers[key] + ", " + value.strip() if key in headers else value.strip()
    return int(status), headers, body


def server(
    handler: Optional[Recorder] = None, **kwargs: Any
) -> tuple[WebSocketSipProtocol, StringTransport, Recorder]:
    recorder = Recorder() if handler is None else handler
    protocol = WebSocketSipProtocol(recorder, is_client=False, **kwargs)
    transport = string_transport()
    attach(protocol, transport)
    return protocol, transport, recorder


def opened_server(
    **kwargs: Any,
) -> tuple[WebSocketSipProtocol, StringTransport, Recorder, WSConnection]:
    """A server past the handshake, and the raw wsproto client talking to it."""
    protocol, transport, recorder = server(**kwargs)
    client = WSConnection(ConnectionType.CLIENT)
    protocol.dataReceived(
        client.send(Request(host="edge.example.com", target="/", subprotocols=["sip"]))
    )
    client.receive_data(take(transport))
    events = list(client.events())
    assert len(events) == 1
    assert isinstance(events[0], AcceptConnection)
    assert events[0].subprotocol == "sip"
    assert recorder.opened == 1
    return protocol, transport, recorder, client


def client_events(client: WSConnection, data: bytes) -> list[Event]:
    client.receive_data(data)
    return list(client.events())


# Server handshake on a StringTransport


def test_handshake_with_sip_subprotocol_switches_protocols() -> None:
    protocol, transport, recorder = server()
    protocol.dataReceived(handshake())
    status, headers, body = parse_http(written(transport))
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"].lower() == "upgrade"
    assert headers["sec-websocket-protocol"] == "sip"
    assert headers["sec-websocket-accept"].encode() == RFC_ACCEPT
    assert body == b""
    assert protocol.opened
    assert recorder.opened == 1
    assert recorder.closed == []
    assert not dropped(transport)


def test_handshake_selects_sip_among_several_subprotocols() -> None:
    protocol, transport, _ = server()
    protocol.dataReceived(handshake(protocols=b"chat, sip"))
    status, headers, _ = parse_http(written(transport))
    assert status == 101
    assert headers["sec-websocket-protocol"] == "sip"


def test_handshake_fed_one_byte_at_a_time() -> None:
    protocol, transport, recorder = server()
    for byte in iter_bytes(handshake()):
        protocol.dataReceived(byte)
    assert parse_http(written(transport))[0] == 101
    assert recorder.opened == 1


@pytest.mark.parametrize("protocols", [None, b"chat", b"SIP", b"sip2"])
def test_handshake_without_sip_subprotocol_is_refused(protocols: Optional[bytes]) -> None:
    protocol, transport, recorder = server()
    protocol.dataReceived(handshake(protocols=protocols))
    status, headers, body = parse_http(written(transport))
    assert status == 400
    assert "sec-websocket-protocol" not in headers
    assert b"'sip' WebSocket subprotocol is required" in body
    assert int(headers["content-length"]) == len(body)
    assert dropped(transport)
    assert not protocol.opened
    assert recorder.opened == 0
    assert len(recorder.closed) == 1
    assert "HTTP 400" in recorder.closed[0]
    # Later input and the connection loss change nothing.
    protocol.dataReceived(handshake())
    protocol.connectionLost(lost(Exception("gone")))
    assert len(recorder.closed) == 1
    assert parse_http(written(transport))[0] == 400


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (b"https://www.example.com", 101),
        (b"HTTPS://WWW.EXAMPLE.COM", 101),
        (b"https://evil.example.net", 403),
        (b"null", 403),
        (None, 101),  # no Origin: not a browser, which is what the Origin check is about
    ],
)
def test_origin_allow_list(origin: Optional[bytes], status: int) -> None:
    protocol, transport, recorder = server(allowed_origins=["https://www.example.com"])
    protocol.dataReceived(handshake(origin=origin))
    assert parse_http(written(transport))[0] == status
    assert protocol.opened is (status == 101)
    assert dropped(transport) is (status != 101)
    if origin is not None and status == 403:
        assert recorder.closed == [
            "rejected WebSocket handshake: HTTP 403 Origin not allowed: " + origin.decode()
        ]
    else:
        assert recorder.closed == []


def test_any_origin_without_allow_list() -> None:
    protocol, transport, _ = server()
    protocol.dataReceived(handshake(origin=b"https://evil.example.net"))
    assert parse_http(written(transport))[0] == 101


def test_oversize_handshake_is_refused_with_431() -> None:
    protocol, transport, recorder = server()
    protocol.dataReceived(handshake(extra=[b"X-Padding: " + b"a" * 9000]))
    assert parse_http(written(transport))[0] == 431
    assert dropped(transport)
    assert recorder.opened == 0
    assert len(recorder.closed) == 1
    assert "HTTP 431" in recorder.closed[0]


def test_oversize_handshake_is_refused_before_it_ends() -> None:
    protocol, transport, recorder = server(max_handshake_size=100)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nX-Padding: " + b"a" * 100)
    assert parse_http(written(transport))[0] == 431
    assert dropped(transport)
    assert len(recorder.closed) == 1


def test_handshake_size_limit_is_inclusive() -> None:
    request = handshake()
    protocol, transport, _ = server(max_handshake_size=len(request))
    protocol.dataReceived(request)
    assert parse_http(written(transport))[0] == 101
    protocol, transport, _ = server(max_handshake_size=len(request) - 1)
    protocol.dataReceived(request)
    assert parse_http(written(transport))[0] == 431


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (handshake(method=b"POST"), 400),
        (handshake().replace(b"Upgrade: websocket\r\n", b""), 400),
        (handshake().replace(b"Sec-WebSocket-Key: " + RFC_KEY + b"\r\n", b""), 400),
        (handshake().replace(b"Version: 13", b"Version: 8"), 426),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS on a WS port
        (b"GET / HTTP/1.1\r\nHost edge\r\n\r\n", 400),
    ],
)
def test_bad_handshake_gets_an_http_error(request_bytes: bytes, status: int) -> None:
    protocol, transport, recorder = server()
    protocol.dataReceived(request_bytes)
    assert parse_http(written(transport))[0] == status
    assert dropped(transport)
    assert not protocol.opened
    assert len(recorder.closed) == 1
    assert "protocol error" in recorder.closed[0]


def test_frames_sent_along_with_the_handshake_are_delivered() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="edge.example.com", target="/", subprotocols=["sip"]))
    helper, helper_transport, _ = server()
    helper.dataReceived(request)
    client.receive_data(written(helper_transport))
    assert isinstance(next(client.events()), AcceptConnection)
    frames = client.send(TextMessage(data=OPTIONS.decode())) + client.send(
        BytesMessage(data=BINARY_MESSAGE)
    )
    protocol, _, recorder = server()
    protocol.dataReceived(request + frames)
    assert recorder.messages == [OPTIONS, BINARY_MESSAGE]


def test_close_before_the_handshake_drops_the_connection() -> None:
    protocol, transport, recorder = server()
    protocol.close()
    protocol.close()
    assert dropped(transport)
    assert written(transport) == b""
    assert recorder.closed == ["closed before the WebSocket handshake completed"]


def test_connection_lost_before_the_handshake_is_reported_once() -> None:
    protocol, _, recorder = server()
    protocol.dataReceived(handshake()[:20])
    protocol.connectionLost(lost(ConnectionResetError("reset by peer")))
    protocol.connectionLost(lost(ConnectionResetError("reset by peer")))
    assert recorder.opened == 0
    assert len(recorder.closed) == 1
    assert recorder.closed[0].startswith("connection lost")


# Open server, driven by a raw wsproto client


def test_server_delivers_text_and_binary_messages() -> None:
    protocol, transport, recorder, client = opened_server()
    protocol.dataReceived(client.send(TextMessage(data=OPTIONS.decode())))
    protocol.dataReceived(client.send(BytesMessage(data=BINARY_MESSAGE)))
    # A text-frame SIP message may carry non-ASCII UTF-8 (RFC 7118 §5).
    unicode_message = sip_message("Grüße, 世界".encode())
    protocol.dataReceived(client.send(TextMessage(data=unicode_message.decode())))
    assert recorder.messages == [OPTIONS, BINARY_MESSAGE, unicode_message]
    assert written(transport) == b""


def test_server_sends_text_or_binary_frames() -> None:
    protocol, transport, _, client = opened_server()
    protocol.send_message(OK_200)
    protocol.send_message(BINARY_MESSAGE)
    data = take(transport)
    assert data[0] == 0x81  # FIN + text
    events = client_events(client, data)
    assert events == [
        TextMessage(data=OK_200.decode()),
        BytesMessage(data=BINARY_MESSAGE),
    ]


def fragments(message: bytes, cuts: Iterable[int], *, text: bool) -> list[Message[Any]]:
    """``message`` split at ``cuts`` into wsproto message events (text split on characters)."""
    data: Union[str, bytes] = message.decode() if text else message
    points = sorted({0, *cuts, len(data)})
    pieces = [data[a:b] for a, b in zip(points, points[1:])] or [data]
    events: list[Message[Any]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if isinstance(piece, str):
            events.append(TextMessage(data=piece, message_finished=last))
        else:
            events.append(BytesMessage(data=piece, message_finished=last))
    return events


def test_fragments_are_reassembled() -> None:
    protocol, _, recorder, client = opened_server()
    for event in fragments(OPTIONS, [1, 40, 41, 200], text=True):
        protocol.dataReceived(client.send(event))
        if not event.message_finished:
            assert recorder.messages == []
    for event in fragments(BINARY_MESSAGE, [3, len(BINARY_MESSAGE) - 2], text=False):
        protocol.dataReceived(client.send(event))
    assert recorder.messages == [OPTIONS, BINARY_MESSAGE]


def test_text_fragments_split_inside_a_utf8_character() -> None:
    protocol, _, recorder, _ = opened_server()
    message = sip_message("naïve".encode())
    cut = message.index("ï".encode()) + 1  # between the two octets of ï
    # Framed by hand: two masked frames, the first one ending in the middle of ï.
    wire = masked_frame(0x1, message[:cut], fin=False) + masked_frame(0x0, message[cut:])
    protocol.dataReceived(wire)
    assert recorder.messages == [message]


def test_ping_between_fragments_is_answered() -> None:
    protocol, transport, recorder, client = opened_server()
    first, second = fragments(OPTIONS, [100], text=True)
    protocol.dataReceived(client.send(first) + client.send(Ping(payload=b"keepalive")))
    assert client_events(client, take(transport)) == [Pong(payload=b"keepalive")]
    protocol.dataReceived(client.send(second))
    assert recorder.messages == [OPTIONS]


def test_ping_is_answered_with_pong() -> None:
    protocol, transport, recorder, client = opened_server()
    protocol.dataReceived(client.send(Ping(payload=b"\x01\x02")))
    assert client_events(client, take(transport)) == [Pong(payload=b"\x01\x02")]
    assert recorder.messages == []
    assert protocol.opened


@pytest.mark.parametrize("cuts", [[], [50], [10, 20, 30]])
def test_message_bigger_than_the_limit_closes_with_1009(cuts: list[int]) -> None:
    protocol, transport, recorder, client = opened_server(max_message_size=len(OPTIONS) - 1)
    for event in fragments(OPTIONS, cuts, text=True):
        protocol.dataReceived(client.send(event))
    assert recorder.messages == []
    assert not protocol.opened
    events = client_events(client, take(transport))
    assert events == [CloseConnection(code=1009, reason="message too big")]
    with pytest.raises(ProtocolError):
        protocol.send_message(OK_200)
    # The handshake ends when the client answers.
    assert not dropped(transport)
    assert recorder.closed == []
    protocol.dataReceived(client.send(CloseConnection(code=1009)))
    assert dropped(transport)
    assert recorder.closed == ["closed: 1009 message too big"]


def test_message_of_exactly_the_limit_is_delivered() -> None:
    protocol, _, recorder, client = opened_server(max_message_size=len(OPTIONS))
    protocol.dataReceived(client.send(TextMessage(data=OPTIONS.decode())))
    assert recorder.messages == [OPTIONS]


def test_peer_close_is_answered_and_reported() -> None:
    protocol, transport, recorder, client = opened_server()
    protocol.dataReceived(client.send(CloseConnection(code=1001, reason="going away")))
    assert client_events(client, take(transport)) == [
        CloseConnection(code=1001, reason="going away")
    ]
    assert dropped(transport)
    assert not protocol.opened
    assert recorder.closed == ["closed by peer: 1001 going away"]
    protocol.dataReceived(masked_frame(0x1, b"late"))
    protocol.connectionLost(lost(Exception("done")))
    assert recorder.closed == ["closed by peer: 1001 going away"]
    assert recorder.messages == []


def test_local_close_waits_for_the_peer_then_drops() -> None:
    protocol, transport, recorder, client = opened_server()
    protocol.close(1000, "shutting down")
    protocol.close(1001, "again")  # idempotent
    assert not protocol.opened
    assert client_events(client, take(transport)) == [
        CloseConnection(code=1000, reason="shutting down")
    ]
    assert not dropped(transport)
    # Messages the peer sent before seeing our Close are not delivered.
    protocol.dataReceived(masked_frame(0x1, b"late"))
    assert recorder.messages == []
    protocol.dataReceived(client.send(CloseConnection(code=1000)))
    assert dropped(transport)
    assert written(transport) == b""
    assert recorder.closed == ["closed: 1000 shutting down"]
    protocol.connectionLost(lost(Exception("done")))
    assert len(recorder.closed) == 1


def test_local_close_times_out_without_an_answer() -> None:
    clock = Clock()
    protocol, transport, recorder, _ = opened_server(clock=clock, close_timeout=2.0)
    alsoProvides(transport, ITCPTransport)
    protocol.close()
    clock.advance(1.9)
    assert not dropped(transport)
    clock.advance(0.1)
    assert transport.disconnected  # StringTransport's sign of abortConnection
    assert recorder.closed == ["closed: 1000 (the peer did not answer the close)"]
    assert clock.getDelayedCalls() == []


def test_close_answered_in_time_cancels_the_timer() -> None:
    clock = Clock()
    protocol, _, recorder, client = opened_server(clock=clock)
    protocol.close()
    protocol.dataReceived(client.send(CloseConnection(code=1000)))
    assert clock.getDelayedCalls() == []
    assert recorder.closed == ["closed: 1000"]


def test_connection_lost_while_open_is_reported_once() -> None:
    protocol, _, recorder, _ = opened_server()
    protocol.connectionLost(lost(ConnectionResetError("reset by peer")))
    protocol.connectionLost(lost(ConnectionResetError("reset by peer")))
    assert recorder.closed == ["connection lost: reset by peer"]
    assert not protocol.opened
    with pytest.raises(ProtocolError):
        protocol.send_message(OPTIONS)


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame with an all-zero mask (RFC 6455 §5.2), payload under 64 KiB."""
    first = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        length = bytes([0x80 | len(payload)])
    else:
        length = bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return first + length + b"\0\0\0\0" + payload


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x05hello", 1002),  # a client frame must be masked
        (masked_frame(0x1, b"OPTIONS \xff\xfe"), 1007),  # text frame that is not UTF-8
        (masked_frame(0x0, b"continuation without start"), 1002),
        (masked_frame(0x9, b"ping", fin=False), 1002),  # fragmented control frame
    ],
)
def test_protocol_error_fails_the_connection(frame: bytes, code: int) -> None:
    protocol, transport, recorder, client = opened_server()
    protocol.dataReceived(frame)
    events = client_events(client, take(transport))
    assert len(events) == 1
    assert isinstance(events[0], CloseConnection)
    assert events[0].code == code
    assert dropped(transport)
    assert not protocol.opened
    assert len(recorder.closed) == 1
    assert recorder.closed[0].startswith(f"WebSocket protocol error: {code}")
    assert recorder.messages == []


def test_invalid_close_code_is_refused() -> None:
    protocol, _, _, _ = opened_server()
    with pytest.raises(ValueError):
        protocol.close(1005)
    with pytest.raises(ValueError):
        protocol.close(999)
    assert protocol.opened


# Client side on a StringTransport


def client(**kwargs: Any) -> tuple[WebSocketSipProtocol, StringTransport, Recorder]:
    recorder = Recorder()
    kwargs.setdefault("host", "edge.example.com:5062")
    protocol = WebSocketSipProtocol(recorder, is_client=True, **kwargs)
    transport = string_transport()
    attach(protocol, transport)
    return protocol, transport, recorder


def test_client_sends_the_handshake_request() -> None:
    protocol, transport, recorder = client(resource="/ws")
    request = written(transport)
    assert request.startswith(b"GET /ws HTTP/1.1\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (
            line.partition(b":") for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        )
    }
    assert headers[b"host"] == b"edge.example.com:5062"
    assert headers[b"sec-websocket-protocol"] == b"sip"
    assert headers[b"upgrade"].lower() == b"websocket"
    assert headers[b"sec-websocket-version"] == b"13"
    assert not protocol.opened
    with pytest.raises(ProtocolError):
        protocol.send_message(OPTIONS)
    assert recorder.opened == 0


def accept_response(request: bytes, *, subprotocol: Optional[str] = "sip") -> bytes:
    """A server's 101 for ``request``, made by a raw wsproto server."""
    raw = WSConnection(ConnectionType.SERVER)
    raw.receive_data(request)
    (event,) = raw.events()
    assert isinstance(event, Request)
    return raw.send(AcceptConnection(subprotocol=subprotocol))


def test_client_opens_on_101_with_sip() -> None:
    protocol, transport, recorder = client()
    protocol.dataReceived(accept_response(take(transport)))
    assert protocol.opened
    assert recorder.opened == 1
    protocol.send_message(OPTIONS)
    frame = written(transport)
    assert frame[0] == 0x81
    assert frame[1] & 0x80  # client frames are masked


def test_client_fails_when_server_selects_no_subprotocol() -> None:
    protocol, transport, recorder = client()
    protocol.dataReceived(accept_response(take(transport), subprotocol=None))
    assert not protocol.opened
    assert recorder.opened == 0
    assert recorder.closed == ["server did not select the sip WebSocket subprotocol"]
    assert dropped(transport)


def test_client_reports_a_rejection_with_its_status() -> None:
    protocol, transport, recorder = client()
    take(transport)
    protocol.dataReceived(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nForbidden")
    assert recorder.closed == ["WebSocket handshake rejected: HTTP 403"]
    assert dropped(transport)
    assert written(transport) == b""


def test_client_fails_on_a_bad_accept_token() -> None:
    protocol, transport, recorder = client()
    response = accept_response(take(transport)).replace(b"Accept: ", b"Accept: x")
    protocol.dataReceived(response)
    assert recorder.closed == ["WebSocket protocol error: Bad accept token"]
    assert dropped(transport)
    assert written(transport) == b""


def test_client_fails_on_an_oversize_response() -> None:
    protocol, transport, recorder = client(max_handshake_size=64)
    take(transport)
    protocol.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nX-Padding: " + b"a" * 64)
    assert recorder.closed == ["WebSocket handshake response too large"]
    assert dropped(transport)


def test_client_needs_a_host() -> None:
    with pytest.raises(ValueError):
        WebSocketSipProtocol(Recorder(), is_client=True)


# Client and server in memory (iosim)


def pair(
    server_handler: Optional[Recorder] = None, **server_kwargs: Any
) -> tuple[WebSocketSipProtocol, Recorder, WebSocketSipProtocol, Recorder, iosim.IOPump]:
    server_recorder = Recorder() if server_handler is None else server_handler
    client_recorder = Recorder()
    server_protocol = WebSocketSipProtocol(server_recorder, is_client=False, **server_kwargs)
    client_protocol = WebSocketSipProtocol(
        client_recorder, is_client=True, host="edge.example.com", resource="/"
    )
    pump = connect_pair(server_protocol, client_protocol)
    return server_protocol, server_recorder, client_protocol, client_recorder, pump


def test_pair_opens_and_exchanges_messages_both_ways() -> None:
    server_protocol, server_recorder, client_protocol, client_recorder, pump = pair()
    assert server_protocol.opened
    assert client_protocol.opened
    assert server_recorder.opened == client_recorder.opened == 1
    client_protocol.send_message(OPTIONS)
    client_protocol.send_message(BINARY_MESSAGE)
    server_protocol.send_message(OK_200)
    server_protocol.send_message(BINARY_MESSAGE)
    flush(pump)
    assert server_recorder.messages == [OPTIONS, BINARY_MESSAGE]
    assert client_recorder.messages == [OK_200, BINARY_MESSAGE]


def test_pair_with_a_handler_answering_from_ws_message() -> None:
    _, _, client_protocol, client_recorder, pump = pair(Echo())
    client_protocol.send_message(OPTIONS)
    flush(pump)
    assert client_recorder.messages == [OK_200]


@pytest.mark.parametrize("closer", ["client", "server"])
def test_pair_clean_close(closer: str) -> None:
    server_protocol, server_recorder, client_protocol, client_recorder, pump = pair()
    (client_protocol if closer == "client" else server_protocol).close(1000, "bye")
    flush(pump)
    local, remote = (
        (client_recorder, server_recorder)
        if closer == "client"
        else (server_recorder, client_recorder)
    )
    assert local.closed == ["closed: 1000 bye"]
    assert remote.closed == ["closed by peer: 1000 bye"]
    assert not server_protocol.opened
    assert not client_protocol.opened
    assert pump.serverIO.disconnected and pump.clientIO.disconnected
    with pytest.raises(ProtocolError):
        client_protocol.send_message(OPTIONS)


def test_pair_oversize_message_closes_with_1009() -> None:
    _, server_recorder, client_protocol, client_recorder, pump = pair(max_message_size=100)
    client_protocol.send_message(OPTIONS)
    flush(pump)
    assert server_recorder.messages == []
    assert server_recorder.closed == ["closed: 1009 message too big"]
    assert client_recorder.closed == ["closed by peer: 1009 message too big"]


def test_pair_client_sees_the_server_refusal() -> None:
    server_protocol, server_recorder, client_protocol, client_recorder, pump = pair(
        max_handshake_size=50
    )
    flush(pump)
    assert not client_protocol.opened
    assert not server_protocol.opened
    assert client_recorder.closed == ["WebSocket handshake rejected: HTTP 431"]
    assert len(server_recorder.closed) == 1


def test_pair_connection_lost_is_reported_once_each() -> None:
    _, server_recorder, client_protocol, client_recorder, pump = pair()
    assert client_protocol.transport is not None
    client_protocol.transport.loseConnection()
    flush(pump)
    assert len(server_recorder.closed) == 1
    assert len(client_recorder.closed) == 1
    assert server_recorder.closed[0].startswith("connection lost")


# Random splits of a whole client session


def iter_bytes(data: bytes) -> Iterable[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, *cuts, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


bodies = st.one_of(
    st.text(max_size=80).map(lambda text: text.encode("utf-8")),
    st.binary(max_size=80),
)


@given(
    bodies=st.lists(st.tuples(bodies, st.lists(st.integers(0, 400), max_size=3)), max_size=5),
    data=st.data(),
)
def test_random_splits_of_a_client_session(
    bodies: list[tuple[bytes, list[int]]], data: st.DataObject
) -> None:
    messages = [OPTIONS]
    messages += [
        sip_message(body, call_id=f"{i}@example.com") for i, (body, _) in enumerate(bodies)
    ]
    cuts_per_message: list[list[int]] = [[]]
    cuts_per_message += [cuts for _, cuts in bodies]
    raw = WSConnection(ConnectionType.CLIENT)
    session = raw.send(Request(host="edge.example.com", target="/sip", subprotocols=["sip"]))
    helper, helper_transport, _ = server()
    helper.dataReceived(session)
    raw.receive_data(written(helper_transport))
    assert isinstance(next(raw.events()), AcceptConnection)
    for message, cuts in zip(messages, cuts_per_message):
        try:
            message.decode("utf-8")
            text = True
        except UnicodeDecodeError:
            text = False
        cuts = [cut % (len(message) + 1) for cut in cuts]
        if text:
            cuts = [cut for cut in cuts if cut <= len(message.decode())]
        for event in fragments(message, cuts, text=text):
            session += raw.send(event)
        session += raw.send(Ping(payload=b"k"))
    session += raw.send(CloseConnection(code=1000, reason="done"))

    chunk_cuts = data.draw(st.lists(st.integers(0, len(session)), max_size=12))
    protocol, transport, recorder = server()
    for chunk in split_at(session, chunk_cuts):
        protocol.dataReceived(chunk)
    assert recorder.opened == 1
    assert recorder.messages == messages
    assert recorder.closed == ["closed by peer: 1000 done"]
    assert dropped(transport)
    status, _, rest = parse_http(written(transport))
    assert status == 101
    assert client_events(raw, rest) == [Pong(payload=b"k")] * len(messages) + [
        CloseConnection(code=1000, reason="done")
    ]


# Client frames with any opcode, FIN bit and payload, mixed with raw bytes.
frames_or_bytes = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.builds(
        lambda opcode, payload, fin: masked_frame(opcode, payload, fin=fin),
        st.integers(0, 15),
        st.binary(max_size=200),
        st.booleans(),
    ),
)


@given(garbage=st.lists(frames_or_bytes, max_size=8), after_open=st.booleans())
def test_arbitrary_input_never_raises(garbage: list[bytes], after_open: bool) -> None:
    if after_open:
        protocol, _, recorder, _ = opened_server(max_message_size=300)
    else:
        protocol, _, recorder = server(max_handshake_size=256)
    for chunk in garbage:
        protocol.dataReceived(chunk)
    protocol.connectionLost(lost(ConnectionResetError("reset by peer")))
    assert len(recorder.closed) == 1
    assert not protocol.opened


def test_provides_iprotocol() -> None:
    assert verifyObject(IProtocol, WebSocketSipProtocol(Recorder(), is_client=False))
