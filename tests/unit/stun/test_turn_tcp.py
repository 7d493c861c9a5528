"""RFC 6062 TCP allocations in the TURN core: Allocate with REQUESTED-TRANSPORT TCP, Connect,
ConnectionBind, ConnectionAttempt, and the 30 s limit on unbound connections."""

from __future__ import annotations

from typing import Any

import pytest

from clearwater.stun import (
    Attr,
    AttributeKey,
    BindConnection,
    ChannelData,
    Class,
    Client,
    ClosePeerConnection,
    CloseRelay,
    ConnectPeer,
    LookUpKey,
    Message,
    Method,
    OpenRelay,
    SendToClient,
    TurnServer,
    parse_message,
)
from tests.unit.stun.test_turn import (
    CLIENT,
    KEY,
    PEER,
    PEER2,
    PEER6,
    RELAY,
    TCP_CLIENT,
    ClientSide,
    code_of,
    make_server,
    only_message,
)

DATA_CLIENT = Client("tcp", ("198.51.100.7", 40005), TCP_CLIENT.local, connection=8)
TCP = [(Attr.REQUESTED_TRANSPORT, 6)]


def tcp_allocation(**changes: Any) -> tuple[TurnServer, ClientSide]:
    server = make_server(**changes)
    side = ClientSide(server, TCP_CLIENT)
    effects = side.call(Method.ALLOCATE, TCP)
    assert effects == [OpenRelay(1, 4, False, False, None, transport="tcp")]
    response = only_message(server.relay_opened(1, RELAY, 0.0), TCP_CLIENT)
    assert response.message_class == Class.SUCCESS
    return server, side


def connect(side: ClientSide, peer: tuple[str, int] = PEER, now: float = 0.0) -> int:
    effects = side.call(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, peer)], now)
    assert len(effects) == 1, effects
    request = effects[0]
    assert isinstance(request, ConnectPeer)
    assert (request.allocation, request.peer) == (1, peer)
    return request.connection_id


def connection_bind(
    side: ClientSide, connection_id: int, client: Client = DATA_CLIENT, now: float = 0.0
) -> list[Any]:
    """ConnectionBind on ``client``, answering a look-up with the right key."""
    data = side.encode(Method.CONNECTION_BIND, [(Attr.CONNECTION_ID, connection_id)])
    effects = side.server.received(client, data, now)
    if effects == [LookUpKey(client, data, side.username)]:
        effects = side.server.received(client, data, now, key=side.key)
    return effects


def test_tcp_allocation_flow_with_connect_and_connection_bind() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    assert server.stats.peer_connections == 1
    success = only_message(server.peer_connected(connection_id, 1.0), TCP_CLIENT)
    assert (success.method, success.message_class) == (Method.CONNECT, Class.SUCCESS)
    assert success.get(Attr.CONNECTION_ID) == connection_id
    assert success.check_integrity(KEY)
    # The data connection authenticates with the allocation's key: no look-up.
    data = side.encode(Method.CONNECTION_BIND, [(Attr.CONNECTION_ID, connection_id)])
    effects = server.received(DATA_CLIENT, data, 2.0)
    assert len(effects) == 2
    bound = only_message(effects[:1], DATA_CLIENT)
    assert (bound.method, bound.message_class) == (Method.CONNECTION_BIND, Class.SUCCESS)
    assert bound.check_integrity(KEY)
    assert effects[1] == BindConnection(DATA_CLIENT, connection_id)
    assert server.stats.peer_connections_total == 1
    assert server.next_deadline() == 600.0  # no ConnectionBind wait left
    # The data connection goes: its peer connection closes.
    assert server.connection_lost(DATA_CLIENT, 3.0) == [ClosePeerConnection(connection_id)]
    assert server.stats.peer_connections == 0
    assert server.connection_lost(DATA_CLIENT, 3.0) == []


def test_tcp_allocation_needs_a_stream_client() -> None:
    side = ClientSide(make_server())
    assert code_of(side.answer(Method.ALLOCATE, TCP)) == 400


@pytest.mark.parametrize(
    "extra",
    [
        [(Attr.EVEN_PORT, False)],
        [(Attr.RESERVATION_TOKEN, b"abcdefgh")],
        [(Attr.DONT_FRAGMENT, True)],
    ],
)
def test_tcp_allocation_refuses_udp_only_attributes(
    extra: list[tuple[AttributeKey, Any]],
) -> None:
    side = ClientSide(make_server(), TCP_CLIENT)
    assert code_of(side.answer(Method.ALLOCATE, [*TCP, *extra])) == 400


def test_connect_on_udp_allocation_gets_400() -> None:
    side = ClientSide(make_server(), TCP_CLIENT)
    side.allocate()
    assert code_of(side.answer(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, PEER)])) == 400


def test_connect_without_allocation_gets_437() -> None:
    side = ClientSide(make_server(), TCP_CLIENT)
    assert code_of(side.answer(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, PEER)])) == 437


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ([], 400),
        ([(Attr.XOR_PEER_ADDRESS, ("192.0.2.10", 0))], 400),
        ([(Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 80))], 403),
        ([(Attr.XOR_PEER_ADDRESS, PEER6)], 443),
    ],
)
def test_connect_refusals(attributes: list[tuple[AttributeKey, Any]], code: int) -> None:
    server, side = tcp_allocation()
    assert code_of(side.answer(Method.CONNECT, attributes)) == code
    assert server.stats.peer_connections == 0


def test_connect_to_a_connected_peer_gets_446() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    attributes = [(Attr.XOR_PEER_ADDRESS, PEER)]
    assert code_of(side.answer(Method.CONNECT, attributes)) == 446  # still connecting
    server.peer_connected(connection_id, 1.0)
    assert code_of(side.answer(Method.CONNECT, attributes, 1.0)) == 446
    connect(side, ("192.0.2.10", 5001), 1.0)  # another port is another peer


def test_connect_failure_gets_447() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    response = only_message(server.peer_connect_failed(connection_id, 5.0), TCP_CLIENT)
    assert (response.method, code_of(response)) == (Method.CONNECT, 447)
    assert response.check_integrity(KEY)
    assert server.peer_connect_failed(connection_id, 5.0) == []
    assert server.peer_connected(connection_id, 5.0) == [ClosePeerConnection(connection_id)]
    connect(side, PEER, 6.0)  # the peer may be tried again


def test_peer_connection_lost_while_connecting_gets_447() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    assert code_of(only_message(server.peer_connection_lost(connection_id, 1.0), TCP_CLIENT)) == 447
    assert server.peer_connection_lost(connection_id, 1.0) == []


def test_connection_limit_gets_508() -> None:
    server, side = tcp_allocation(max_connections=1)
    connect(side)
    assert code_of(side.answer(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, PEER2)])) == 508
    side.permit(PEER2)
    assert server.peer_connection_accepted(1, PEER2, 1.0) == (None, [])


def test_unbound_connection_closes_after_30_seconds() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    server.peer_connected(connection_id, 10.0)
    assert server.next_deadline() == 40.0
    assert code_of(only_message(connection_bind(side, connection_id, now=40.0), DATA_CLIENT)) == 400
    assert server.expire(39.9) == []
    assert server.expire(40.0) == [ClosePeerConnection(connection_id)]
    assert server.stats.peer_connections == 0
    assert server.next_deadline() == 600.0


@pytest.mark.parametrize("kind", ["unknown id", "udp", "control connection", "no id"])
def test_connection_bind_refusals_get_400(kind: str) -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    server.peer_connected(connection_id, 0.0)
    client = DATA_CLIENT
    attributes: list[tuple[AttributeKey, Any]] = [(Attr.CONNECTION_ID, connection_id)]
    if kind == "unknown id":
        attributes = [(Attr.CONNECTION_ID, connection_id ^ 1)]
    elif kind == "udp":
        client = Client("udp", DATA_CLIENT.address, DATA_CLIENT.local)
    elif kind == "control connection":
        client = TCP_CLIENT
    else:
        attributes = []
    data = side.encode(Method.CONNECTION_BIND, attributes)
    effects = server.received(client, data, 1.0)
    if effects == [LookUpKey(client, data, side.username)]:
        effects = server.received(client, data, 1.0, key=side.key)
    response = only_message(effects, client)
    assert (response.method, code_of(response)) == (Method.CONNECTION_BIND, 400)
    assert response.check_integrity(KEY)


def test_connection_bind_twice_gets_400() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    server.peer_connected(connection_id, 0.0)
    assert len(connection_bind(side, connection_id)) == 2
    other = Client("tcp", ("198.51.100.7", 40006), TCP_CLIENT.local, connection=9)
    assert code_of(only_message(connection_bind(side, connection_id, other), other)) == 400
    # nor may the bound data connection bind another
    second = connect(side, PEER2)
    server.peer_connected(second, 0.0)
    assert code_of(only_message(connection_bind(side, second), DATA_CLIENT)) == 400


def test_connection_bind_by_another_user_gets_441() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    server.peer_connected(connection_id, 0.0)
    bob = ClientSide(server, DATA_CLIENT, username="bob", password="b")
    data = bob.encode(Method.CONNECTION_BIND, [(Attr.CONNECTION_ID, connection_id)])
    assert server.received(DATA_CLIENT, data, 1.0) == [LookUpKey(DATA_CLIENT, data, "bob")]
    response = only_message(server.received(DATA_CLIENT, data, 1.0, key=bob.key), DATA_CLIENT)
    assert code_of(response) == 441
    assert response.check_integrity(bob.key)


def test_inbound_peer_connection_needs_a_permission() -> None:
    server, side = tcp_allocation()
    assert server.peer_connection_accepted(1, PEER, 0.0) == (None, [])
    assert server.stats.permission_drops == 1
    side.permit(PEER)
    connection_id, effects = server.peer_connection_accepted(1, PEER, 1.0)
    assert connection_id is not None
    attempt = only_message(effects, TCP_CLIENT)
    assert (attempt.method, attempt.message_class) == (
        Method.CONNECTION_ATTEMPT,
        Class.INDICATION,
    )
    assert attempt.get(Attr.CONNECTION_ID) == connection_id
    assert attempt.get(Attr.XOR_PEER_ADDRESS) == PEER
    assert server.peer_connection_accepted(1, PEER, 1.0) == (None, [])  # one per peer
    assert server.next_deadline() == 31.0
    effects = connection_bind(side, connection_id, now=2.0)
    assert effects[1] == BindConnection(DATA_CLIENT, connection_id)
    assert server.stats.peer_connections_total == 1


def test_inbound_peer_connection_on_a_udp_allocation_is_refused() -> None:
    server = make_server()
    side = ClientSide(server, TCP_CLIENT)
    side.allocate()
    side.permit(PEER)
    assert server.peer_connection_accepted(1, PEER, 0.0) == (None, [])
    assert server.peer_connection_accepted(99, PEER, 0.0) == (None, [])


def test_allocation_end_closes_its_peer_connections() -> None:
    server, side = tcp_allocation()
    first = connect(side)
    server.peer_connected(first, 0.0)
    connection_bind(side, first)
    second = connect(side, PEER2)
    effects = server.connection_lost(TCP_CLIENT, 1.0)
    assert effects == [CloseRelay(1), *(ClosePeerConnection(c) for c in sorted((first, second)))]
    assert server.stats.peer_connections == 0
    assert server.connection_lost(DATA_CLIENT, 1.0) == []
    assert server.peer_connected(second, 2.0) == [ClosePeerConnection(second)]
    assert server.next_deadline() is None


def test_refresh_to_zero_closes_peer_connections() -> None:
    _, side = tcp_allocation()
    connection_id = connect(side)
    effects = side.call(Method.REFRESH, [(Attr.LIFETIME, 0)], 1.0)
    assert effects[1:] == [CloseRelay(1), ClosePeerConnection(connection_id)]


def test_peer_connection_lost_forgets_it() -> None:
    server, side = tcp_allocation()
    connection_id = connect(side)
    server.peer_connected(connection_id, 0.0)
    assert server.peer_connection_lost(connection_id, 1.0) == []
    assert server.stats.peer_connections == 0
    assert code_of(only_message(connection_bind(side, connection_id, now=1.0), DATA_CLIENT)) == 400
    assert server.next_deadline() == 600.0


def test_tcp_allocation_has_no_channels_or_send_indications() -> None:
    server, side = tcp_allocation()
    side.permit(PEER)
    assert code_of(side.bind(0x4000, PEER)) == 400
    assert side.send(PEER, b"x") == []
    assert server.received(TCP_CLIENT, ChannelData(0x4000, b"x").encode(pad=True), 0.0) == []


def test_connection_ids_are_unique_even_with_a_poor_random_source() -> None:
    server = TurnServer(make_server().config, secret=b"s", random=lambda n: bytes(n))
    side = ClientSide(server, TCP_CLIENT)
    side.call(Method.ALLOCATE, TCP)
    server.relay_opened(1, RELAY, 0.0)
    ids = {connect(side, ("192.0.2.10", port)) for port in range(1, 6)}
    assert len(ids) == 5
    assert 0 not in ids


def test_tcp_flow_keeps_the_udp_client_apart() -> None:
    server, _ = tcp_allocation()
    request = Message(Method.BINDING, Class.REQUEST, bytes(12)).encode()
    [answer] = server.received(CLIENT, request, 0.0)
    assert isinstance(answer, SendToClient)
    assert parse_message(answer.data).get(Attr.XOR_MAPPED_ADDRESS) == CLIENT.address
