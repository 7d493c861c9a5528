"""The sans-IO TURN core (RFC 8656, RFC 8489 §9.2, RFC 6156): every answer checked on the wire
with the codec, time passed explicitly.

The helpers at the top (``ClientSide``, ``CONFIG``, ...) are shared with the other
``test_turn_*`` modules.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Callable, Optional

import attrs
import pytest

from clearwater.stun import (
    MAGIC_COOKIE,
    NOT_LOOKED_UP,
    AddressErrorCode,
    Attr,
    AttributeKey,
    ChannelData,
    Class,
    Client,
    CloseRelay,
    Effect,
    ErrorCode,
    LookUpKey,
    Message,
    Method,
    OpenRelay,
    PeerPolicy,
    SendToClient,
    SendToPeer,
    TurnConfig,
    TurnServer,
    long_term_key,
    parse_channel_data,
    parse_message,
)

REALM = "example.com"
USER = "alice@example.com"
PASSWORD = "secret"
KEY = long_term_key(USER, REALM, PASSWORD)
RELAY_IP = "203.0.113.1"
RELAY = (RELAY_IP, 50000)
RELAY6 = ("2001:db8::1", 50002)
CLIENT = Client("udp", ("198.51.100.7", 40000), (RELAY_IP, 3478))
TCP_CLIENT = Client("tcp", ("198.51.100.7", 40001), (RELAY_IP, 3478), connection=7)
PEER = ("192.0.2.10", 5000)
PEER2 = ("192.0.2.11", 6000)
PEER6 = ("2001:db8:1::10", 5000)
#: Documentation prefixes are refused by default; these tests relay to them.
CONFIG = TurnConfig(
    realm=REALM,
    relay_ipv4=RELAY_IP,
    relay_ipv6="2001:db8::1",
    peers=PeerPolicy(allow=("192.0.2.0/24", "2001:db8:1::/48")),
)


def counter_random() -> Callable[[int], bytes]:
    """Deterministic ``random(n)``: a counter, big-endian."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def make_server(config: TurnConfig = CONFIG, **changes: Any) -> TurnServer:
    if changes:
        config = attrs.evolve(config, **changes)
    return TurnServer(config, secret=b"\x01" * 32, random=counter_random())


def tid(n: int) -> bytes:
    return n.to_bytes(12, "big")


def only_message(effects: Sequence[Effect], client: Client = CLIENT) -> Message:
    """The one STUN message ``effects`` send to ``client``."""
    assert len(effects) == 1, effects
    effect = effects[0]
    assert isinstance(effect, SendToClient)
    assert effect.client == client
    return parse_message(effect.data)


def code_of(message: Message) -> Optional[int]:
    error = message.get(Attr.ERROR_CODE)
    return None if error is None else error.code


def unauthenticated(message: Message) -> None:
    assert Attr.MESSAGE_INTEGRITY not in message
    assert Attr.MESSAGE_INTEGRITY_SHA256 not in message


class ClientSide:
    """A TURN client driving a :class:`TurnServer` with real bytes, answering LookUpKey like a
    shell that knows ``password``."""

    def __init__(
        self,
        server: TurnServer,
        client: Client = CLIENT,
        username: str = USER,
        password: str = PASSWORD,
        now: float = 0.0,
    ) -> None:
        self.server = server
        self.client = client
        self.username = username
        self.key = long_term_key(username, REALM, password)
        self.ids = itertools.count(1000)
        self.nonce = self.challenge(now)

    def challenge(self, now: float) -> str:
        """Send a credential-less Allocate; return the NONCE of the 401."""
        request = Message(
            Method.ALLOCATE, Class.REQUEST, tid(next(self.ids)), [(Attr.REQUESTED_TRANSPORT, 17)]
        )
        answer = only_message(self.server.received(self.client, request.encode(), now), self.client)
        assert code_of(answer) == 401
        nonce = answer.get(Attr.NONCE)
        assert nonce is not None
        return nonce

    def encode(
        self,
        method: int,
        attributes: Sequence[tuple[AttributeKey, Any]] = (),
        *,
        transaction_id: Optional[bytes] = None,
        fingerprint: bool = False,
        sha256: bool = False,
        realm: str = REALM,
        key: Optional[bytes] = None,
    ) -> bytes:
        message = Message(
            method,
            Class.REQUEST,
            transaction_id if transaction_id is not None else tid(next(self.ids)),
            [
                *attributes,
                (Attr.USERNAME, self.username),
                (Attr.REALM, realm),
                (Attr.NONCE, self.nonce),
            ],
        )
        return message.encode(
            key or self.key, sha1=not sha256, sha256=sha256, fingerprint=fingerprint
        )

    def deliver(self, data: bytes, now: float) -> list[Effect]:
        """Deliver ``data``; answer a LookUpKey for it with this client's key."""
        effects = self.server.received(self.client, data, now)
        if effects == [LookUpKey(self.client, data, self.username)]:
            effects = self.server.received(self.client, data, now, key=self.key)
        return effects

    def call(
        self,
        method: int,
        attributes: Sequence[tuple[AttributeKey, Any]] = (),
        now: float = 0.0,
        **options: Any,
    ) -> list[Effect]:
        return self.deliver(self.encode(method, attributes, **options), now)

    def answer(
        self,
        method: int,
        attributes: Sequence[tuple[AttributeKey, Any]] = (),
        now: float = 0.0,
        **options: Any,
    ) -> Message:
        """The one response to a request; its MESSAGE-INTEGRITY must check."""
        response = only_message(self.call(method, attributes, now, **options), self.client)
        assert response.method == method
        assert response.check_integrity(self.key)
        return response

    def allocate(
        self,
        now: float = 0.0,
        attributes: Sequence[tuple[AttributeKey, Any]] = ((Attr.REQUESTED_TRANSPORT, 17),),
        relayed: tuple[str, int] = RELAY,
        **options: Any,
    ) -> int:
        """Allocate; return the allocation id."""
        effects = self.call(Method.ALLOCATE, attributes, now, **options)
        assert len(effects) == 1, effects
        opened = effects[0]
        assert isinstance(opened, OpenRelay)
        response = only_message(
            self.server.relay_opened(opened.allocation, relayed, now), self.client
        )
        assert response.message_class == Class.SUCCESS
        assert response.get(Attr.XOR_RELAYED_ADDRESS) == relayed
        return opened.allocation

    def permit(self, *peers: tuple[str, int], now: float = 0.0) -> None:
        response = self.answer(
            Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, peer) for peer in peers], now
        )
        assert response.message_class == Class.SUCCESS, response

    def bind(self, number: int, peer: tuple[str, int], now: float = 0.0) -> Message:
        return self.answer(
            Method.CHANNEL_BIND,
            [(Attr.CHANNEL_NUMBER, number), (Attr.XOR_PEER_ADDRESS, peer)],
            now,
        )

    def send(self, peer: tuple[str, int], data: bytes, now: float = 0.0) -> list[Effect]:
        indication = Message(
            Method.SEND,
            Class.INDICATION,
            tid(next(self.ids)),
            [(Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data)],
        )
        return self.server.received(self.client, indication.encode(), now)


# -- the whole client flow (RFC 8656 §20) ------------------------------------------------------


def test_full_flow_through_the_core() -> None:
    server = make_server()
    client = CLIENT
    # 1. Allocate without credentials: 401 with REALM and NONCE, no integrity.
    first = Message(Method.ALLOCATE, Class.REQUEST, tid(1), [(Attr.REQUESTED_TRANSPORT, 17)])
    challenge = only_message(server.received(client, first.encode(fingerprint=True), 0.0))
    assert challenge.message_class == Class.ERROR
    assert challenge.transaction_id == tid(1)
    assert challenge.get(Attr.ERROR_CODE) == ErrorCode(401)
    assert challenge.get(Attr.REALM) == REALM
    assert challenge.get(Attr.SOFTWARE) == "clearwater restund"
    assert challenge.check_fingerprint()
    unauthenticated(challenge)
    nonce = challenge.get(Attr.NONCE)
    assert nonce is not None
    # 2. Allocate with credentials: the core asks for the key, keeping nothing.
    second = Message(
        Method.ALLOCATE,
        Class.REQUEST,
        tid(2),
        [
            (Attr.REQUESTED_TRANSPORT, 17),
            (Attr.USERNAME, USER),
            (Attr.REALM, REALM),
            (Attr.NONCE, nonce),
        ],
    ).encode(KEY, fingerprint=True)
    assert server.received(client, second, 1.0) == [LookUpKey(client, second, USER)]
    # 3. The shell delivers the same bytes with the key: open a relay.
    effects = server.received(client, second, 1.0, key=KEY)
    assert effects == [OpenRelay(1, 4, False, False, None)]
    assert server.stats.allocations == 0
    # 4. The relay is open: success, integrity-protected with the key.
    success = only_message(server.relay_opened(1, RELAY, 1.5))
    assert success.message_class == Class.SUCCESS
    assert success.transaction_id == tid(2)
    assert success.get(Attr.XOR_RELAYED_ADDRESS) == RELAY
    assert success.get(Attr.LIFETIME) == 600
    assert success.get(Attr.XOR_MAPPED_ADDRESS) == client.address
    assert success.check_integrity(KEY)
    assert success.check_fingerprint()
    assert server.stats.allocations == 1
    assert server.stats.allocations_total == 1
    assert server.next_deadline() == 601.5
    # 5. CreatePermission: the allocation's key is reused, no second look-up.
    permission = Message(
        Method.CREATE_PERMISSION,
        Class.REQUEST,
        tid(3),
        [
            (Attr.XOR_PEER_ADDRESS, PEER),
            (Attr.USERNAME, USER),
            (Attr.REALM, REALM),
            (Attr.NONCE, nonce),
        ],
    ).encode(KEY)
    granted = only_message(server.received(client, permission, 2.0))
    assert granted.message_class == Class.SUCCESS
    assert granted.method == Method.CREATE_PERMISSION
    assert granted.check_integrity(KEY)
    assert Attr.FINGERPRINT not in granted
    assert server.next_deadline() == 302.0
    # 6. Send indication -> to the peer.
    send = Message(
        Method.SEND,
        Class.INDICATION,
        tid(4),
        [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.DATA, b"hello peer")],
    )
    assert server.received(client, send.encode(), 3.0) == [SendToPeer(1, PEER, b"hello peer")]
    # 7. The peer answers: a Data indication (FINGERPRINT, as the Allocate had one).
    data = only_message(server.peer_received(1, PEER, b"hello client", 4.0))
    assert (data.method, data.message_class) == (Method.DATA, Class.INDICATION)
    assert data.get(Attr.XOR_PEER_ADDRESS) == PEER
    assert data.get(Attr.DATA) == b"hello client"
    assert data.check_fingerprint()
    # 8. ChannelBind, then ChannelData both ways.
    bind = Message(
        Method.CHANNEL_BIND,
        Class.REQUEST,
        tid(5),
        [
            (Attr.CHANNEL_NUMBER, 0x4001),
            (Attr.XOR_PEER_ADDRESS, PEER),
            (Attr.USERNAME, USER),
            (Attr.REALM, REALM),
            (Attr.NONCE, nonce),
        ],
    ).encode(KEY)
    bound = only_message(server.received(client, bind, 5.0))
    assert bound.message_class == Class.SUCCESS
    assert bound.check_integrity(KEY)
    frame = ChannelData(0x4001, b"via channel").encode()
    assert server.received(client, frame, 6.0) == [SendToPeer(1, PEER, b"via channel")]
    assert server.peer_received(1, PEER, b"back", 7.0) == [
        SendToClient(client, ChannelData(0x4001, b"back").encode())
    ]
    # 9. Refresh with LIFETIME 0: success with LIFETIME 0, then the relay closes.
    refresh = Message(
        Method.REFRESH,
        Class.REQUEST,
        tid(6),
        [
            (Attr.LIFETIME, 0),
            (Attr.USERNAME, USER),
            (Attr.REALM, REALM),
            (Attr.NONCE, nonce),
        ],
    ).encode(KEY)
    effects = server.received(client, refresh, 8.0)
    assert len(effects) == 2
    assert effects[1] == CloseRelay(1)
    deleted = only_message(effects[:1])
    assert deleted.message_class == Class.SUCCESS
    assert deleted.get(Attr.LIFETIME) == 0
    assert deleted.check_integrity(KEY)
    assert server.stats.allocations == 0
    assert server.stats.relayed_packets_to_peer == 2
    assert server.stats.relayed_bytes_to_peer == len(b"hello peer") + len(b"via channel")
    assert server.stats.relayed_packets_to_client == 2
    assert server.stats.relayed_bytes_to_client == len(b"hello client") + len(b"back")
    assert server.next_deadline() is None
    assert server.received(client, frame, 9.0) == []


# -- Binding (RFC 8489 §7.3.1) ------------------------------------------------------------------


def test_binding_answers_xor_mapped_address_and_response_origin() -> None:
    server = make_server()
    request = Message(Method.BINDING, Class.REQUEST, tid(9))
    response = only_message(server.received(CLIENT, request.encode(), 0.0))
    assert response.message_class == Class.SUCCESS
    assert response.transaction_id == tid(9)
    assert response.attributes == (
        (Attr.XOR_MAPPED_ADDRESS.code, CLIENT.address),
        (Attr.RESPONSE_ORIGIN.code, CLIENT.local),
        (Attr.SOFTWARE.code, "clearwater restund"),
    )
    assert server.stats.binding_requests == 1


def test_binding_fingerprint_only_when_the_request_had_one() -> None:
    server = make_server()
    request = Message(Method.BINDING, Class.REQUEST, tid(9))
    with_fp = only_message(server.received(CLIENT, request.encode(fingerprint=True), 0.0))
    assert with_fp.check_fingerprint()
    without = only_message(server.received(CLIENT, request.encode(), 0.0))
    assert Attr.FINGERPRINT not in without


def test_binding_ipv6_client_on_wildcard_has_no_response_origin() -> None:
    server = make_server(software="")
    client = Client("udp", ("2001:db8:5::7", 41000), ("::", 3478))
    request = Message(Method.BINDING, Class.REQUEST, tid(9))
    response = only_message(server.received(client, request.encode(), 0.0), client)
    assert response.attributes == ((Attr.XOR_MAPPED_ADDRESS.code, client.address),)


def test_binding_rfc3489_request_gets_mapped_address_without_cookie() -> None:
    server = make_server()
    legacy_id = bytes(range(16))
    request = Message(Method.BINDING, Class.REQUEST, legacy_id).encode()
    assert request[4:8] != MAGIC_COOKIE.to_bytes(4, "big")
    effects = server.received(CLIENT, request, 0.0)
    assert isinstance(effects[0], SendToClient)
    assert effects[0].data[4:20] == legacy_id
    response = only_message(effects)
    assert response.legacy
    assert response.get(Attr.MAPPED_ADDRESS) == CLIENT.address
    assert Attr.XOR_MAPPED_ADDRESS not in response


def test_binding_indication_is_ignored() -> None:
    server = make_server()
    keepalive = Message(Method.BINDING, Class.INDICATION, tid(9)).encode()
    assert server.received(CLIENT, keepalive, 0.0) == []


# -- what is refused before authentication ------------------------------------------------------


def test_unknown_comprehension_required_attribute_gets_420_before_auth() -> None:
    server = make_server()
    request = Message(
        Method.ALLOCATE,
        Class.REQUEST,
        tid(9),
        [(Attr.REQUESTED_TRANSPORT, 17), (0x7F01, b"x"), (0xC001, b"optional"), (0x7F02, b"")],
    )
    response = only_message(server.received(CLIENT, request.encode(fingerprint=True), 0.0))
    assert code_of(response) == 420
    assert response.get(Attr.UNKNOWN_ATTRIBUTES) == (0x7F01, 0x7F02)
    assert response.check_fingerprint()
    unauthenticated(response)


def test_unknown_comprehension_optional_attribute_is_ignored() -> None:
    server = make_server()
    request = Message(Method.BINDING, Class.REQUEST, tid(9), [(0xC001, b"optional")])
    assert code_of(only_message(server.received(CLIENT, request.encode(), 0.0))) is None


@pytest.mark.parametrize("method", [0x0FF, Method.SEND, Method.DATA, Method.CONNECTION_ATTEMPT])
def test_request_of_unknown_or_indication_method_gets_400(method: int) -> None:
    server = make_server()
    request = Message(method, Class.REQUEST, tid(9))
    response = only_message(server.received(CLIENT, request.encode(), 0.0))
    assert response.method == method
    assert code_of(response) == 400
    unauthenticated(response)


def test_request_that_does_not_parse_gets_400_when_its_header_is_sound() -> None:
    server = make_server()
    # XOR-PEER-ADDRESS with family 3: the codec refuses the body.
    body = b"\x00\x12\x00\x08\x00\x03\x12\x34\x01\x02\x03\x04"
    header = (
        Message(Method.CREATE_PERMISSION, Class.REQUEST, tid(9)).encode()[:2]
        + len(body).to_bytes(2, "big")
        + MAGIC_COOKIE.to_bytes(4, "big")
        + tid(9)
    )
    response = only_message(server.received(CLIENT, header + body, 0.0))
    assert (response.method, response.transaction_id) == (Method.CREATE_PERMISSION, tid(9))
    assert code_of(response) == 400


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xff" * 40,
        b"\x80\x01\x00\x00" + bytes(16),
        # an indication whose body does not parse
        b"\x00\x16\x00\x04" + MAGIC_COOKIE.to_bytes(4, "big") + tid(1) + b"\x00\x12\x00\x08",
        # a request with the wrong magic cookie and a method that is not Binding
        b"\x00\x03\x00\x00" + bytes(16),
        # a length that is not a multiple of 4
        b"\x00\x01\x00\x02" + MAGIC_COOKIE.to_bytes(4, "big") + tid(1) + b"\x00\x00",
    ],
)
def test_garbage_is_dropped(data: bytes) -> None:
    assert make_server().received(CLIENT, data, 0.0) == []


def test_responses_and_bad_fingerprints_are_dropped() -> None:
    server = make_server()
    response = Message(Method.BINDING, Class.SUCCESS, tid(9), [(Attr.SOFTWARE, "x")])
    assert server.received(CLIENT, response.encode(), 0.0) == []
    request = bytearray(Message(Method.BINDING, Class.REQUEST, tid(9)).encode(fingerprint=True))
    request[-1] ^= 1
    assert server.received(CLIENT, bytes(request), 0.0) == []


# -- long-term credentials (RFC 8489 §9.2.4) ---------------------------------------------------


def test_missing_username_realm_or_nonce_gets_400() -> None:
    server = make_server()
    side = ClientSide(server)
    request = Message(
        Method.ALLOCATE,
        Class.REQUEST,
        tid(9),
        [(Attr.REQUESTED_TRANSPORT, 17), (Attr.USERNAME, USER), (Attr.REALM, REALM)],
    ).encode(side.key)
    response = only_message(server.received(CLIENT, request, 0.0))
    assert code_of(response) == 400
    unauthenticated(response)


def test_other_realm_gets_401_and_counts_as_failure() -> None:
    server = make_server()
    side = ClientSide(server)
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], realm="other.org")
    response = only_message(server.received(CLIENT, data, 0.0))
    assert code_of(response) == 401
    assert response.get(Attr.REALM) == REALM
    assert response.get(Attr.NONCE)
    unauthenticated(response)
    assert server.stats.auth_failures == 1


def test_unknown_user_gets_401() -> None:
    server = make_server()
    side = ClientSide(server)
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert server.received(CLIENT, data, 0.0) == [LookUpKey(CLIENT, data, USER)]
    response = only_message(server.received(CLIENT, data, 0.0, key=None))
    assert code_of(response) == 401
    assert response.get(Attr.NONCE)
    unauthenticated(response)
    assert server.stats.auth_failures == 1


def test_wrong_password_gets_401() -> None:
    server = make_server()
    side = ClientSide(server, password="wrong")
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    response = only_message(server.received(CLIENT, data, 0.0, key=KEY))
    assert code_of(response) == 401
    assert response.get(Attr.REALM) == REALM
    unauthenticated(response)
    assert server.stats.auth_failures == 1
    assert server.stats.allocations == 0


def test_explicit_not_looked_up_key_asks_again() -> None:
    server = make_server()
    data = ClientSide(server).encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert server.received(CLIENT, data, 0.0, key=NOT_LOOKED_UP) == [LookUpKey(CLIENT, data, USER)]


def test_nonce_goes_stale_after_its_lifetime() -> None:
    server = make_server(nonce_lifetime=100)
    side = ClientSide(server, now=10.0)  # nonce good until 110
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert server.received(CLIENT, data, 109.9) == [LookUpKey(CLIENT, data, USER)]
    stale = only_message(server.received(CLIENT, data, 110.0, key=KEY))
    assert code_of(stale) == 438
    assert stale.get(Attr.REALM) == REALM
    unauthenticated(stale)
    assert server.stats.auth_failures == 0
    fresh = stale.get(Attr.NONCE)
    assert fresh is not None
    side.nonce = fresh
    assert isinstance(
        side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], 110.0)[0], OpenRelay
    )


@pytest.mark.parametrize(
    "nonce",
    ["", "0" * 44, "not a nonce", "00000000ffff" + "0" * 32, "+0000000ffff" + "0" * 32],
)
def test_nonce_not_made_here_gets_438(nonce: str) -> None:
    server = make_server()
    side = ClientSide(server)
    side.nonce = nonce
    response = only_message(side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], 1.0))
    assert code_of(response) == 438
    assert response.get(Attr.NONCE) != nonce


def test_nonce_is_bound_to_the_client_ip() -> None:
    server = make_server()
    side = ClientSide(server)
    elsewhere = Client("udp", ("198.51.100.99", 40000), CLIENT.local)
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert code_of(only_message(server.received(elsewhere, data, 1.0), elsewhere)) == 438
    other_port = Client("udp", ("198.51.100.7", 40999), CLIENT.local)
    assert server.received(other_port, data, 1.0) == [LookUpKey(other_port, data, USER)]


def test_nonce_from_a_server_with_another_secret_is_stale() -> None:
    side = ClientSide(make_server())
    other = TurnServer(CONFIG, secret=b"\x02" * 32)
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert code_of(only_message(other.received(CLIENT, data, 1.0))) == 438


def test_sha256_integrity_is_answered_in_kind() -> None:
    server = make_server()
    side = ClientSide(server)
    effects = side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], sha256=True)
    assert isinstance(effects[0], OpenRelay)
    response = only_message(server.relay_opened(1, RELAY, 0.0))
    assert response.check_integrity_sha256(KEY)
    assert Attr.MESSAGE_INTEGRITY not in response


def test_requests_on_an_allocation_use_its_key_without_look_up() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    data = side.encode(Method.REFRESH, [(Attr.LIFETIME, 700)])
    response = only_message(server.received(CLIENT, data, 1.0))
    assert response.get(Attr.LIFETIME) == 700
    assert response.check_integrity(KEY)


def test_other_user_on_the_allocation_gets_441() -> None:
    server = make_server()
    ClientSide(server).allocate()
    bob = ClientSide(server, username="bob@example.com", password="bobs")
    data = bob.encode(Method.REFRESH)
    assert server.received(CLIENT, data, 1.0) == [LookUpKey(CLIENT, data, "bob@example.com")]
    response = only_message(server.received(CLIENT, data, 1.0, key=bob.key))
    assert code_of(response) == 441
    assert response.check_integrity(bob.key)


# -- Allocate (RFC 8656 §7.2) -----------------------------------------------------------------


def allocate_answer(
    attributes: Sequence[tuple[AttributeKey, Any]],
    server: Optional[TurnServer] = None,
    client: Client = CLIENT,
) -> Message:
    """The response to an Allocate that fails before opening a relay."""
    side = ClientSide(server or make_server(), client)
    response = only_message(side.call(Method.ALLOCATE, attributes), client)
    assert response.message_class == Class.ERROR
    assert response.check_integrity(side.key)
    return response


def test_allocate_without_requested_transport_gets_400() -> None:
    assert code_of(allocate_answer([])) == 400


def test_allocate_of_unknown_transport_gets_442() -> None:
    assert code_of(allocate_answer([(Attr.REQUESTED_TRANSPORT, 132)])) == 442


def test_allocate_tcp_over_udp_gets_400() -> None:
    assert code_of(allocate_answer([(Attr.REQUESTED_TRANSPORT, 6)])) == 400


def test_allocate_retransmission_gets_the_same_answer() -> None:
    server = make_server()
    side = ClientSide(server)
    data = side.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], transaction_id=tid(77))
    assert isinstance(side.deliver(data, 0.0)[0], OpenRelay)
    assert server.received(CLIENT, data, 0.5) == []  # the relay is still opening
    [success] = server.relay_opened(1, RELAY, 1.0)
    assert server.received(CLIENT, data, 2.0) == [success]
    assert server.stats.allocations_total == 1


def test_second_allocate_on_the_five_tuple_gets_437() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    response = side.answer(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], 1.0)
    assert code_of(response) == 437
    # also while the first is still opening
    other = Client("udp", ("198.51.100.7", 40002), CLIENT.local)
    side2 = ClientSide(server, other)
    assert isinstance(side2.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])[0], OpenRelay)
    assert code_of(side2.answer(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])) == 437


def test_allocate_dont_fragment_is_accepted_for_udp() -> None:
    side = ClientSide(make_server())
    effects = side.call(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.DONT_FRAGMENT, True)]
    )
    assert effects == [OpenRelay(1, 4, False, False, None)]


def test_allocate_even_port_with_reservation() -> None:
    server = make_server()
    side = ClientSide(server)
    effects = side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True)])
    assert effects == [OpenRelay(1, 4, True, True, None)]
    token = b"12345678"
    response = only_message(server.relay_opened(1, RELAY, 0.0, reservation=token))
    assert response.get(Attr.RESERVATION_TOKEN) == token
    assert response.check_integrity(KEY)


def test_allocate_even_port_without_reservation() -> None:
    side = ClientSide(make_server())
    effects = side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, False)])
    assert effects == [OpenRelay(1, 4, True, False, None)]


def test_allocate_with_reservation_token() -> None:
    server = make_server()
    side = ClientSide(server)
    effects = side.call(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, b"abcdefgh")]
    )
    assert effects == [OpenRelay(1, 4, False, False, b"abcdefgh")]
    response = only_message(server.relay_failed(1, 0.0))
    assert code_of(response) == 508
    assert response.check_integrity(KEY)


@pytest.mark.parametrize(
    "extra",
    [
        [(Attr.EVEN_PORT, False)],
        [(Attr.REQUESTED_ADDRESS_FAMILY, 1)],
        [(Attr.ADDITIONAL_ADDRESS_FAMILY, 2)],
    ],
)
def test_reservation_token_with_port_or_family_attributes_gets_400(
    extra: list[tuple[AttributeKey, Any]],
) -> None:
    attributes: list[tuple[AttributeKey, Any]] = [
        (Attr.REQUESTED_TRANSPORT, 17),
        (Attr.RESERVATION_TOKEN, b"abcdefgh"),
        *extra,
    ]
    assert code_of(allocate_answer(attributes)) == 400


def test_allocate_ipv6_relay() -> None:
    server = make_server()
    side = ClientSide(server)
    effects = side.call(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 2)]
    )
    assert effects == [OpenRelay(1, 6, False, False, None)]
    response = only_message(server.relay_opened(1, RELAY6, 0.0))
    assert response.get(Attr.XOR_RELAYED_ADDRESS) == RELAY6
    # a permission for an IPv4 peer on an IPv6 relay: 443
    response = side.answer(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER)])
    assert code_of(response) == 443
    side.permit(PEER6)


@pytest.mark.parametrize(
    ("config", "family", "code"),
    [
        (attrs.evolve(CONFIG, relay_ipv6=None), 2, 440),
        (attrs.evolve(CONFIG, relay_ipv4=None), 1, 440),
        (CONFIG, 3, 440),
        (CONFIG, 0, 440),
    ],
)
def test_allocate_family_without_relay_gets_440(config: TurnConfig, family: int, code: int) -> None:
    attributes = [(Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, family)]
    assert code_of(allocate_answer(attributes, make_server(config))) == code


def test_allocate_without_family_and_without_ipv4_relay_gets_440() -> None:
    server = make_server(relay_ipv4=None)
    assert code_of(allocate_answer([(Attr.REQUESTED_TRANSPORT, 17)], server)) == 440


def test_allocate_both_family_attributes_gets_400() -> None:
    attributes = [
        (Attr.REQUESTED_TRANSPORT, 17),
        (Attr.REQUESTED_ADDRESS_FAMILY, 1),
        (Attr.ADDITIONAL_ADDRESS_FAMILY, 2),
    ]
    assert code_of(allocate_answer(attributes)) == 400


def test_additional_family_ipv4_gets_400() -> None:
    attributes = [(Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 1)]
    assert code_of(allocate_answer(attributes)) == 400


def test_additional_family_with_even_port_reservation_gets_400() -> None:
    attributes: list[tuple[AttributeKey, Any]] = [
        (Attr.REQUESTED_TRANSPORT, 17),
        (Attr.ADDITIONAL_ADDRESS_FAMILY, 2),
        (Attr.EVEN_PORT, True),
    ]
    assert code_of(allocate_answer(attributes)) == 400


@pytest.mark.parametrize(
    ("config", "family", "error"),
    [
        (CONFIG, 4, AddressErrorCode(2, 508)),
        (attrs.evolve(CONFIG, relay_ipv6=None), 4, AddressErrorCode(2, 440)),
        (attrs.evolve(CONFIG, relay_ipv4=None), 6, AddressErrorCode(1, 440)),
    ],
)
def test_dual_allocation_gets_one_family_and_address_error_code(
    config: TurnConfig, family: int, error: AddressErrorCode
) -> None:
    server = make_server(config)
    side = ClientSide(server)
    effects = side.call(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 2)]
    )
    assert effects == [OpenRelay(1, family, False, False, None)]
    relayed = RELAY if family == 4 else RELAY6
    response = only_message(server.relay_opened(1, relayed, 0.0))
    assert response.message_class == Class.SUCCESS
    assert response.get(Attr.ADDRESS_ERROR_CODE) == error


def test_dual_allocation_without_relays_gets_440() -> None:
    server = make_server(relay_ipv4=None, relay_ipv6=None)
    attributes = [(Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 2)]
    assert code_of(allocate_answer(attributes, server)) == 440


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, 600), (0, 600), (100, 600), (1000, 1000), (3600, 3600), (99999, 3600)],
)
def test_allocate_lifetime_is_clamped(requested: Optional[int], granted: int) -> None:
    server = make_server()
    side = ClientSide(server)
    attributes: list[tuple[AttributeKey, Any]] = [(Attr.REQUESTED_TRANSPORT, 17)]
    if requested is not None:
        attributes.append((Attr.LIFETIME, requested))
    side.call(Method.ALLOCATE, attributes, 10.0)
    response = only_message(server.relay_opened(1, RELAY, 20.0))
    assert response.get(Attr.LIFETIME) == granted
    assert server.next_deadline() == 20.0 + granted


def test_per_user_quota_gets_486() -> None:
    server = make_server(max_allocations_per_user=2)
    for port in (1, 2):
        ClientSide(server, Client("udp", ("198.51.100.7", port), CLIENT.local)).allocate()
    third = Client("udp", ("198.51.100.7", 3), CLIENT.local)
    assert code_of(allocate_answer([(Attr.REQUESTED_TRANSPORT, 17)], server, third)) == 486
    assert server.stats.quota_rejections == 1
    # another user still may
    bob = ClientSide(server, third, username="bob", password="b")
    assert isinstance(bob.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])[0], OpenRelay)


def test_per_user_quota_counts_pending_and_frees_on_end() -> None:
    server = make_server(max_allocations_per_user=1)
    first = ClientSide(server)
    first.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    second = Client("udp", ("198.51.100.7", 2), CLIENT.local)
    assert code_of(allocate_answer([(Attr.REQUESTED_TRANSPORT, 17)], server, second)) == 486
    assert code_of(only_message(server.relay_failed(1, 0.0))) == 508
    ClientSide(server, second).allocate(relayed=("203.0.113.1", 50010))


def test_total_quota_gets_508() -> None:
    server = make_server(max_allocations=1)
    ClientSide(server).allocate()
    other = ClientSide(server, Client("udp", ("198.51.100.8", 1), CLIENT.local), username="bob")
    response = only_message(
        other.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)]), other.client
    )
    assert code_of(response) == 508
    assert server.stats.quota_rejections == 1


def test_relay_reports_for_unknown_allocations() -> None:
    server = make_server()
    assert server.relay_opened(42, RELAY, 0.0) == [CloseRelay(42)]
    assert server.relay_failed(42, 0.0) == []
    ClientSide(server).allocate()
    assert server.relay_opened(1, RELAY, 1.0) == []
    assert server.relay_failed(1, 1.0) == []
    assert server.stats.allocations == 1


def test_relay_not_reported_in_time_is_given_up() -> None:
    server = make_server()
    side = ClientSide(server)
    side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], 5.0)
    assert server.next_deadline() == 35.0
    assert server.expire(34.9) == []
    assert server.expire(35.0) == [CloseRelay(1)]
    assert server.relay_opened(1, RELAY, 36.0) == [CloseRelay(1)]
    assert server.next_deadline() is None


# -- Refresh (RFC 8656 §7.3) ------------------------------------------------------------------


def test_refresh_without_allocation_gets_437() -> None:
    side = ClientSide(make_server())
    assert code_of(side.answer(Method.REFRESH)) == 437


def test_refresh_extends_the_lifetime() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0)
    assert server.next_deadline() == 600.0
    response = side.answer(Method.REFRESH, [], 500.0)
    assert response.get(Attr.LIFETIME) == 600
    assert server.next_deadline() == 1100.0
    assert server.expire(600.0) == []
    assert server.expire(1100.0) == [CloseRelay(1)]
    assert server.stats.allocations == 0


def test_refresh_with_other_family_gets_443() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    assert code_of(side.answer(Method.REFRESH, [(Attr.REQUESTED_ADDRESS_FAMILY, 2)])) == 443
    response = side.answer(Method.REFRESH, [(Attr.REQUESTED_ADDRESS_FAMILY, 1)])
    assert response.message_class == Class.SUCCESS


def test_refresh_after_the_lifetime_gets_437_even_before_expire_runs() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0)
    assert code_of(side.answer(Method.REFRESH, [], 600.0)) == 437


def test_allocate_after_an_uncollected_expiry_starts_afresh() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0)
    effects = side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], 700.0)
    assert effects == [CloseRelay(1), OpenRelay(2, 4, False, False, None)]


# -- lifetimes and the one deadline ----------------------------------------------------------


def test_allocation_ends_at_its_lifetime() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(10.0)
    assert server.next_deadline() == 610.0
    assert server.expire(609.99) == []
    assert server.expire(610.0) == [CloseRelay(1)]
    assert server.next_deadline() is None
    assert server.stats.allocations == 0
    assert server.peer_received(1, PEER, b"late", 611.0) == []


def test_connection_lost_ends_the_stream_allocation() -> None:
    server = make_server()
    side = ClientSide(server, TCP_CLIENT)
    side.allocate()
    assert server.connection_lost(CLIENT, 1.0) == []
    assert server.connection_lost(TCP_CLIENT, 1.0) == [CloseRelay(1)]
    assert server.stats.allocations == 0
    assert server.next_deadline() is None


def test_connection_lost_while_the_relay_opens() -> None:
    server = make_server()
    side = ClientSide(server, TCP_CLIENT)
    side.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)])
    assert server.connection_lost(TCP_CLIENT, 1.0) == [CloseRelay(1)]
    assert server.relay_opened(1, RELAY, 2.0) == [CloseRelay(1)]


def test_next_deadline_is_the_earliest_of_everything() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    assert server.next_deadline() == 3600.0
    side.bind(0x4000, PEER, 100.0)  # channel 700, permission 400
    assert server.next_deadline() == 400.0
    side.permit(PEER, now=350.0)  # permission 650
    assert server.next_deadline() == 650.0
    assert server.expire(650.0) == []
    assert server.next_deadline() == 700.0
    assert server.expire(700.0) == []
    assert server.next_deadline() == 1000.0  # the channel's quarantine
    assert server.expire(1000.0) == []
    assert server.next_deadline() == 3600.0


def test_timer_heap_stays_bounded_under_refreshes() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    now = 0.0
    for _ in range(5000):
        now += 0.5
        side.permit(PEER, now=now)
    assert len(server._timers) <= 2100
    assert server.next_deadline() == now + 300


# -- CreatePermission (RFC 8656 §10) ---------------------------------------------------------


def test_create_permission_without_peer_gets_400() -> None:
    side = ClientSide(make_server())
    side.allocate()
    assert code_of(side.answer(Method.CREATE_PERMISSION)) == 400


def test_create_permission_without_allocation_gets_437() -> None:
    side = ClientSide(make_server())
    response = side.answer(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER)])
    assert code_of(response) == 437


def test_create_permission_refused_peer_gets_403_and_installs_nothing() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    response = side.answer(
        Method.CREATE_PERMISSION,
        [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 9))],
    )
    assert code_of(response) == 403
    assert server.stats.peer_rejections == 1
    assert server.peer_received(1, PEER, b"x", 1.0) == []
    assert server.stats.permission_drops == 1


def test_create_permission_installs_several_peers_by_ip() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    side.permit(PEER, PEER2)
    assert len(server.peer_received(1, ("192.0.2.10", 1), b"x", 1.0)) == 1  # any port
    assert len(server.peer_received(1, PEER2, b"x", 1.0)) == 1
    assert side.send(("192.0.2.11", 7), b"y", 1.0) == [SendToPeer(1, ("192.0.2.11", 7), b"y")]


def test_permission_limit_gets_508() -> None:
    server = make_server(max_permissions=2)
    side = ClientSide(server)
    side.allocate()
    side.permit(PEER, PEER2)
    side.permit(PEER)  # a refresh takes no room
    response = side.answer(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, ("192.0.2.12", 1))])
    assert code_of(response) == 508


def test_permission_expires_after_300_seconds() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    side.permit(PEER, now=10.0)
    assert len(server.peer_received(1, PEER, b"x", 309.9)) == 1
    assert server.peer_received(1, PEER, b"x", 310.0) == []  # before expire() even runs
    assert side.send(PEER, b"y", 310.0) == []
    assert server.next_deadline() == 310.0
    assert server.expire(310.0) == []
    assert server.next_deadline() == 3600.0
    side.permit(PEER, now=320.0)
    assert len(server.peer_received(1, PEER, b"x", 619.9)) == 1
    assert server.peer_received(1, PEER, b"x", 620.0) == []


def test_permission_refresh_extends_it() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    side.permit(PEER, now=0.0)
    side.permit(PEER, now=200.0)
    assert server.expire(300.0) == []
    assert len(server.peer_received(1, PEER, b"x", 499.0)) == 1
    assert server.peer_received(1, PEER, b"x", 500.0) == []


# -- ChannelBind (RFC 8656 §12) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        [(Attr.CHANNEL_NUMBER, 0x3FFF), (Attr.XOR_PEER_ADDRESS, PEER)],
        [(Attr.CHANNEL_NUMBER, 0x8000), (Attr.XOR_PEER_ADDRESS, PEER)],
        [(Attr.CHANNEL_NUMBER, 0xFFFF), (Attr.XOR_PEER_ADDRESS, PEER)],
        [(Attr.XOR_PEER_ADDRESS, PEER)],
        [(Attr.CHANNEL_NUMBER, 0x4000)],
        [(Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("192.0.2.10", 0))],
    ],
)
def test_channel_bind_bad_request_gets_400(attributes: list[tuple[AttributeKey, Any]]) -> None:
    side = ClientSide(make_server())
    side.allocate()
    assert code_of(side.answer(Method.CHANNEL_BIND, attributes)) == 400


def test_channel_bind_refused_peer_and_family() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    assert code_of(side.bind(0x4000, ("10.0.0.1", 5000))) == 403
    assert code_of(side.bind(0x4000, PEER6)) == 443
    assert server.stats.peer_rejections == 1


def test_channel_bind_conflicts_get_400() -> None:
    side = ClientSide(make_server())
    side.allocate()
    assert side.bind(0x4000, PEER).message_class == Class.SUCCESS
    assert code_of(side.bind(0x4000, PEER2)) == 400  # the number is taken
    assert code_of(side.bind(0x4001, PEER)) == 400  # the peer has a number
    assert code_of(side.bind(0x4000, ("192.0.2.10", 5001))) == 400  # same IP, other port
    assert side.bind(0x4000, PEER, 10.0).message_class == Class.SUCCESS  # a refresh


def test_channel_bind_installs_the_permission() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    side.bind(0x4000, PEER)
    assert server.peer_received(1, ("192.0.2.10", 9), b"other port", 1.0) != []
    assert server.received(CLIENT, ChannelData(0x4000, b"x").encode(), 1.0) == [
        SendToPeer(1, PEER, b"x")
    ]


def test_channel_bind_limit_gets_508() -> None:
    side = ClientSide(make_server(max_channels=1))
    side.allocate()
    side.bind(0x4000, PEER)
    assert code_of(side.bind(0x4001, PEER2)) == 508


def test_channel_bind_needs_room_for_its_permission() -> None:
    side = ClientSide(make_server(max_permissions=1))
    side.allocate()
    side.bind(0x4000, PEER)
    assert code_of(side.bind(0x4001, PEER2)) == 508


def test_channel_expires_and_rests_five_minutes() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    side.bind(0x4000, PEER, 0.0)
    side.permit(PEER, now=500.0)  # the permission outlives the channel
    frame = ChannelData(0x4000, b"x").encode()
    assert server.received(CLIENT, frame, 599.9) == [SendToPeer(1, PEER, b"x")]
    assert server.received(CLIENT, frame, 600.0) == []  # gone, even before expire()
    data = only_message(server.peer_received(1, PEER, b"y", 600.0))
    assert data.method == Method.DATA  # no channel: a Data indication
    assert server.expire(600.0) == []
    # the number and the peer rest until 900
    assert code_of(side.bind(0x4000, PEER2, 899.0)) == 400
    assert code_of(side.bind(0x4001, PEER, 899.0)) == 400
    assert server.expire(900.0) == []
    assert side.bind(0x4000, PEER2, 900.0).message_class == Class.SUCCESS
    assert side.bind(0x4001, PEER, 900.0).message_class == Class.SUCCESS


def test_channel_can_be_bound_again_to_the_same_peer_while_resting() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)])
    side.bind(0x4000, PEER, 0.0)
    assert server.expire(600.0) == []
    assert side.bind(0x4000, PEER, 700.0).message_class == Class.SUCCESS
    frame = ChannelData(0x4000, b"x").encode()
    assert server.received(CLIENT, frame, 701.0) == [SendToPeer(1, PEER, b"x")]
    assert server.expire(900.0) == []  # the old quarantine entry is stale
    side.permit(PEER, now=1100.0)
    assert server.received(CLIENT, frame, 1299.9) == [SendToPeer(1, PEER, b"x")]
    assert server.received(CLIENT, frame, 1300.0) == []


# -- data (RFC 8656 §11, §12.4, §12.5) --------------------------------------------------------


def test_send_indication_needs_allocation_permission_peer_and_data() -> None:
    server = make_server()
    side = ClientSide(server)
    assert side.send(PEER, b"x", 0.0) == []  # no allocation
    side.allocate()
    assert side.send(PEER, b"x", 0.0) == []  # no permission
    assert server.stats.permission_drops == 1
    side.permit(PEER)
    for attributes in ([(Attr.XOR_PEER_ADDRESS, PEER)], [(Attr.DATA, b"x")]):
        indication = Message(Method.SEND, Class.INDICATION, tid(1), attributes).encode()
        assert server.received(CLIENT, indication, 1.0) == []
    unknown = Message(
        Method.SEND,
        Class.INDICATION,
        tid(1),
        [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.DATA, b"x"), (0x7F01, b"")],
    ).encode()
    assert server.received(CLIENT, unknown, 1.0) == []
    other = Client("udp", ("198.51.100.7", 1), CLIENT.local)
    sent = Message(
        Method.SEND, Class.INDICATION, tid(2), [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.DATA, b"x")]
    ).encode()
    assert server.received(other, sent, 1.0) == []  # another 5-tuple
    assert server.received(CLIENT, sent, 1.0) == [SendToPeer(1, PEER, b"x")]


def test_channel_data_from_the_client() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    side.bind(0x4000, PEER)
    padded = ChannelData(0x4000, b"abcde").encode(pad=True)
    assert server.received(CLIENT, padded, 1.0) == [SendToPeer(1, PEER, b"abcde")]
    assert server.received(CLIENT, ChannelData(0x4001, b"x").encode(), 1.0) == []  # unbound
    assert server.received(CLIENT, b"\x40\x00\x00\x09abc", 1.0) == []  # truncated
    assert server.received(CLIENT, b"\x40\x00\x00\x01abcdef", 1.0) == []  # trailing bytes
    assert server.received(CLIENT, b"\x50\x00\x00\x01a", 1.0) == []  # reserved number
    assert server.received(CLIENT, b"\x40\x00", 1.0) == []


def test_channel_data_to_a_stream_client_is_padded() -> None:
    server = make_server()
    side = ClientSide(server, TCP_CLIENT)
    side.allocate()
    side.bind(0x4ABC, PEER)
    [sent] = server.peer_received(1, PEER, b"abcde", 1.0)
    assert sent == SendToClient(TCP_CLIENT, ChannelData(0x4ABC, b"abcde").encode(pad=True))
    assert isinstance(sent, SendToClient)
    assert len(sent.data) == 12
    assert parse_channel_data(sent.data).data == b"abcde"
    # UDP clients get it unpadded (ChannelData test in the flow above)


def test_data_indication_without_fingerprint_when_allocate_had_none() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate()
    side.permit(PEER)
    message = only_message(server.peer_received(1, PEER, b"z", 1.0))
    assert Attr.FINGERPRINT not in message
    assert message.transaction_id != tid(0)


def test_peer_data_on_ipv6_relay_matches_noncanonical_text() -> None:
    server = make_server()
    side = ClientSide(server)
    side.allocate(
        attributes=[(Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 2)],
        relayed=RELAY6,
    )
    side.bind(0x4000, PEER6)
    long_form = ("2001:0db8:0001:0000:0000:0000:0000:0010", 5000)
    assert server.peer_received(1, long_form, b"v6", 1.0) == [
        SendToClient(CLIENT, ChannelData(0x4000, b"v6").encode())
    ]


def test_bandwidth_cap_drops_excess_both_ways() -> None:
    server = make_server(bandwidth=1000)
    side = ClientSide(server)
    side.allocate(0.0)
    side.permit(PEER)
    assert len(side.send(PEER, b"a" * 600, 0.0)) == 1  # 400 left
    assert server.peer_received(1, PEER, b"b" * 600, 0.0) == []  # dropped
    assert len(server.peer_received(1, PEER, b"b" * 400, 0.0)) == 1  # 0 left
    assert side.send(PEER, b"a", 0.0) == []
    assert len(side.send(PEER, b"a" * 100, 0.1)) == 1  # 100 back after 0.1 s
    assert server.stats.bandwidth_drops == 2
    assert len(side.send(PEER, b"a" * 1000, 10.0)) == 1  # the bucket holds 1 s at most
    assert side.send(PEER, b"a", 10.0) == []
    # a packet bigger than the bucket passes on a full bucket, and overdraws it
    assert len(side.send(PEER, b"a" * 1500, 11.0)) == 1
    assert side.send(PEER, b"a", 11.4) == []
    assert len(side.send(PEER, b"a", 11.6)) == 1
    assert server.stats.bandwidth_drops == 4
    assert server.stats.relayed_packets_to_peer == 5
    assert server.stats.relayed_packets_to_client == 1


def test_bandwidth_buckets_are_per_allocation() -> None:
    server = make_server(bandwidth=100)
    first = ClientSide(server)
    first.allocate()
    first.permit(PEER)
    second = ClientSide(server, Client("udp", ("198.51.100.9", 1), CLIENT.local), username="bob")
    second.allocate(relayed=("203.0.113.1", 50001))
    second.permit(PEER)
    assert len(first.send(PEER, b"a" * 100, 0.0)) == 1
    assert first.send(PEER, b"a", 0.0) == []
    assert len(second.send(PEER, b"a" * 100, 0.0)) == 1
