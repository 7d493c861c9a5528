"""Properties of the TURN core: whatever bytes arrive, from clients or peers, and in whatever
order things happen, it returns effects (never raises), every message it sends parses, and
nothing is left due after ``expire(now)``."""

from __future__ import annotations

import itertools
from typing import Any, Union

from hypothesis import given
from hypothesis import strategies as st

from clearwater.stun import (
    MAGIC_COOKIE,
    NOT_LOOKED_UP,
    Attr,
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
    NotLookedUp,
    OpenRelay,
    SendToClient,
    SendToPeer,
    TurnServer,
    parse_datagram,
)
from tests.unit.stun.test_turn import (
    CLIENT,
    KEY,
    PEER,
    PEER2,
    RELAY,
    TCP_CLIENT,
    ClientSide,
    make_server,
    tid,
)

EFFECTS = (
    SendToClient,
    LookUpKey,
    OpenRelay,
    CloseRelay,
    SendToPeer,
    ConnectPeer,
    ClosePeerConnection,
    BindConnection,
)
OTHER = Client("udp", ("198.51.100.50", 1), CLIENT.local)
DATA_CLIENT = Client("tls", ("198.51.100.7", 40005), TCP_CLIENT.local, connection=8)
CLIENTS = (CLIENT, TCP_CLIENT, OTHER, DATA_CLIENT)
Key = Union[bytes, None, NotLookedUp]
KEYS: list[Key] = [NOT_LOOKED_UP, None, KEY, b"wrong key"]
keys: st.SearchStrategy[Key] = st.sampled_from(KEYS)


def check(effects: Any) -> None:
    assert isinstance(effects, list)
    for effect in effects:
        assert isinstance(effect, EFFECTS)
        if isinstance(effect, SendToClient):
            parse_datagram(effect.data)


def ready() -> tuple[TurnServer, list[bytes]]:
    """A server with a UDP allocation (a permission and a channel) on CLIENT and a TCP one (a
    connection waiting for ConnectionBind) on TCP_CLIENT, and valid requests for both."""
    server = make_server(bandwidth=5000)
    udp = ClientSide(server)
    udp.allocate(0.0, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 1200)])
    udp.permit(PEER)
    udp.bind(0x4000, PEER)
    tcp = ClientSide(server, TCP_CLIENT)
    tcp.call(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 6)])
    server.relay_opened(2, ("203.0.113.1", 50001), 0.0)
    [connect] = tcp.call(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, PEER)])
    assert isinstance(connect, ConnectPeer)
    server.peer_connected(connect.connection_id, 0.0)
    requests = [
        Message(Method.BINDING, Class.REQUEST, tid(1)).encode(fingerprint=True),
        udp.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True)]),
        udp.encode(Method.REFRESH, [(Attr.LIFETIME, 900)], fingerprint=True),
        udp.encode(Method.REFRESH, [(Attr.LIFETIME, 0)]),
        udp.encode(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER2)]),
        udp.encode(
            Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, 0x4001), (Attr.XOR_PEER_ADDRESS, PEER2)]
        ),
        udp.encode(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], sha256=True),
        tcp.encode(Method.CONNECT, [(Attr.XOR_PEER_ADDRESS, PEER2)]),
        tcp.encode(Method.CONNECTION_BIND, [(Attr.CONNECTION_ID, connect.connection_id)]),
        Message(
            Method.SEND,
            Class.INDICATION,
            tid(2),
            [(Attr.XOR_PEER_ADDRESS, PEER), (Attr.DATA, b"payload")],
        ).encode(),
        ChannelData(0x4000, b"channel payload").encode(pad=True),
    ]
    return server, requests


@given(st.binary(max_size=300), st.sampled_from(CLIENTS), keys)
def test_random_bytes_give_effects(data: bytes, client: Client, key: Key) -> None:
    server, _ = ready()
    check(server.received(client, data, 1.0, key=key))


@st.composite
def stun_shaped(draw: st.DrawFn) -> bytes:
    """Random bodies behind a sound STUN header, so that parsing gets further."""
    body = draw(st.binary(max_size=120))
    body += bytes(-len(body) % 4)
    method = draw(st.sampled_from([*Method, 0x0FF]))
    message_class = draw(st.sampled_from(list(Class)))
    message_type = Message(method, message_class, bytes(12)).message_type
    header = message_type.to_bytes(2, "big") + len(body).to_bytes(2, "big")
    transaction_id = draw(st.binary(min_size=12, max_size=12))
    return header + MAGIC_COOKIE.to_bytes(4, "big") + transaction_id + body


@given(stun_shaped(), st.sampled_from(CLIENTS), keys)
def test_stun_shaped_junk_gives_effects(data: bytes, client: Client, key: Key) -> None:
    server, _ = ready()
    check(server.received(client, data, 1.0, key=key))


@st.composite
def mutated(draw: st.DrawFn, requests: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(requests)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


_, REQUESTS = ready()


def test_every_request_from_every_client_with_every_key() -> None:
    answered = set()
    for data, client, key in itertools.product(REQUESTS, CLIENTS, KEYS):
        server, _ = ready()
        effects = server.received(client, data, 1.0, key=key)
        check(effects)
        answered |= {type(effect) for effect in effects}
    assert answered == set(EFFECTS)


@given(
    st.one_of(st.sampled_from(REQUESTS), mutated(REQUESTS)),
    st.sampled_from(CLIENTS),
    keys,
    st.floats(0.0, 2000.0),
)
def test_mutated_requests_give_effects(data: bytes, client: Client, key: Key, now: float) -> None:
    server, _ = ready()
    check(server.received(client, data, now, key=key))


operations = st.one_of(
    st.tuples(
        st.just("request"),
        st.one_of(st.sampled_from(REQUESTS), mutated(REQUESTS)),
        st.sampled_from(CLIENTS),
        keys,
    ),
    st.tuples(
        st.just("peer"),
        st.integers(1, 4),
        st.sampled_from([PEER, PEER2, ("192.0.2.10", 1), ("2001:db8:1::1", 5)]),
        st.binary(max_size=40),
    ),
    st.tuples(st.just("opened"), st.integers(1, 5), st.sampled_from([RELAY, ("2001:db8::1", 9)])),
    st.tuples(st.just("failed"), st.integers(1, 5)),
    st.tuples(st.just("lost"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("connected"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("accepted"), st.integers(1, 4), st.sampled_from([PEER, PEER2])),
    st.tuples(st.just("wait"), st.floats(0.0, 400.0)),
)


@given(st.lists(operations, max_size=25))
def test_any_sequence_of_events_keeps_the_core_sound(steps: list[tuple[Any, ...]]) -> None:
    server, _ = ready()
    now = 1.0
    connection_ids: list[int] = []
    for step in steps:
        kind = step[0]
        if kind == "request":
            effects = server.received(step[2], step[1], now, key=step[3])
            connection_ids += [e.connection_id for e in effects if isinstance(e, ConnectPeer)]
        elif kind == "peer":
            effects = server.peer_received(step[1], step[2], step[3], now)
        elif kind == "opened":
            effects = server.relay_opened(step[1], step[2], now)
        elif kind == "failed":
            effects = server.relay_failed(step[1], now)
        elif kind == "lost":
            effects = server.connection_lost(step[1], now)
        elif kind == "connected":
            target = connection_ids[step[1] % len(connection_ids)] if connection_ids else step[1]
            effects = server.peer_connected(target, now)
        elif kind == "accepted":
            connection_id, effects = server.peer_connection_accepted(step[1], step[2], now)
            assert connection_id is None or connection_id > 0
        else:
            now += step[1]
            effects = server.expire(now)
            deadline = server.next_deadline()
            assert deadline is None or deadline > now
        check(effects)
        assert 0 <= server.stats.allocations <= server.config.max_allocations
        assert server.stats.peer_connections >= 0
