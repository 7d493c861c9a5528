"""A sans-IO TURN server: RFC 8656 (TURN), RFC 8489 (STUN), RFC 6156 (IPv6), RFC 6062 (TCP).

:class:`TurnServer` takes bytes and the time and returns effects (:mod:`._turn_model`); it
never touches a socket or a clock. Its shell delivers each UDP datagram, or each frame a
:class:`~clearwater.stun.StreamFramer` cuts from a TCP/TLS stream, to :meth:`~TurnServer.
received`, each datagram a relay gets to :meth:`~TurnServer.peer_received`, and keeps one
timer for :meth:`~TurnServer.next_deadline`, calling :meth:`~TurnServer.expire` when it fires.

What it does with a message from a client:

- Binding requests (RFC 8489 §6.3.1.1, §12) need no credentials: a success with XOR-MAPPED-ADDRESS,
  or MAPPED-ADDRESS for an RFC 3489 request (no magic cookie, RFC 8489 §11); RESPONSE-ORIGIN
  (RFC 5780 §7.3) when the shell names a specific local address. Binding indications
  (keepalives) are ignored.
- A request that does not parse but has a sound request header gets 400; other bytes that do
  not parse, responses, and messages whose FINGERPRINT is wrong are dropped. An unknown
  request method gets 400, unknown comprehension-required attributes 420 with
  UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1; at most 32 listed). Both come before authentication.
- Every other request needs long-term credentials (RFC 8489 §9.2.4): without
  MESSAGE-INTEGRITY(-SHA256) 401 with REALM and a fresh NONCE; without USERNAME, REALM or
  NONCE 400; another REALM 401; a NONCE this server did not make for this client IP, or one
  past its lifetime, 438 with a fresh one (see :mod:`._turn_nonce`). Then the key: requests
  on an allocation (or, for ConnectionBind, on the allocation of its CONNECTION-ID) with the
  allocation's USERNAME use the key the allocation was made with; otherwise the server asks
  for it with :class:`LookUpKey` and keeps nothing, as the shell hands the same bytes back
  with ``key=``. An unknown user (``key=None``) or a wrong MESSAGE-INTEGRITY gets 401. Every
  later response carries MESSAGE-INTEGRITY (or -SHA256, as the request did) with that key,
  and FINGERPRINT when the request had one. A request on an allocation under another
  USERNAME gets 441 (RFC 8656 §5).
- Allocate (RFC 8656 §7.2): a retransmission (same 5-tuple and transaction id) gets the same
  success again, unauthenticated, or nothing while the relay is being opened; another
  Allocate on the 5-tuple 437. REQUESTED-TRANSPORT missing 400; UDP; TCP (RFC 6062 §5.1) only
  from a TCP/TLS client (else 400, as RFC 6062 §5.1 says) and without EVEN-PORT,
  RESERVATION-TOKEN or DONT-FRAGMENT (400); anything else 442. DONT-FRAGMENT is accepted and
  ignored for UDP relays (the relay sends with the host's default). RESERVATION-TOKEN with
  EVEN-PORT or an address family attribute 400; both address family attributes 400;
  REQUESTED-ADDRESS-FAMILY of a family without a relay address 440, as is no attribute
  without an IPv4 relay. ADDITIONAL-ADDRESS-FAMILY (IPv4 value 400, with EVEN-PORT's R bit
  400) gets one relay, IPv4 if there is one, and ADDRESS-ERROR-CODE for the other family
  (440 without a relay address of it, else 508): the RFC allows that partial answer, and the
  shell keeps one relay per allocation. Per-user quota 486, the total 508 (both counted as
  quota rejections). LIFETIME is clamped to [default, max]. Then :class:`OpenRelay`; the
  success (XOR-RELAYED-ADDRESS, LIFETIME, RESERVATION-TOKEN if one was reserved,
  ADDRESS-ERROR-CODE, XOR-MAPPED-ADDRESS) goes out on :meth:`~TurnServer.relay_opened`, 508 on
  :meth:`~TurnServer.relay_failed`. A relay not reported within 30 s is given up
  (:class:`CloseRelay`).
- Refresh (§8.2): no allocation 437; REQUESTED-ADDRESS-FAMILY not the allocation's 443;
  LIFETIME 0 deletes (success with LIFETIME 0, then :class:`CloseRelay`); else the clamped
  lifetime starts again.
- CreatePermission (§10.2): one or more XOR-PEER-ADDRESS (none 400); all are installed or none:
  a peer of the other family 443, one the :class:`PeerPolicy` refuses 403, more peer IPs
  than ``max_permissions`` 508. Permissions last ``permission_lifetime`` (300 s).
- ChannelBind (§12.2): CHANNEL-NUMBER 0x4000-0x7FFF (RFC 5766 §11's range, which coturn's
  clients still draw from; RFC 8656 narrowed it to 0x4FFF) and XOR-PEER-ADDRESS with a port, else
  400; the number bound to another peer, the peer to another number, or either in the five
  minutes of quarantine after such a binding expired, 400; family 443; policy 403; capacity
  508. It binds or refreshes the channel (600 s) and installs or refreshes the permission.
- Send indications (§11.2) and ChannelData (§12.4, §12.6) are relayed with
  :class:`SendToPeer` if the 5-tuple has a UDP allocation, the peer a live permission (and the
  channel a live binding), and the bandwidth cap allows; else silently dropped.
- Data from a peer (§11.3, §12.7) without a live permission is dropped; otherwise it goes to
  the client as ChannelData if a channel is bound to the peer's transport address (padded to
  4 bytes on TCP/TLS) or as a Data indication (with FINGERPRINT if the Allocate had one).
- The bandwidth cap is a token bucket per allocation, ``bandwidth`` bytes per second of
  application data both ways together, holding at most one second's worth; a packet passes if
  the bucket holds its size (or is full: a packet bigger than the bucket then overdraws it),
  else it is dropped and counted.
- RFC 6062: Connect (§5.2) on a TCP allocation (UDP allocation 400), XOR-PEER-ADDRESS needed
  (400), family 443, policy 403, a connection to that peer already 446, capacity 508; then
  :class:`ConnectPeer` and, on :meth:`~TurnServer.peer_connected`, success with CONNECTION-ID,
  on :meth:`~TurnServer.peer_connect_failed` 447. As in coturn, Connect checks the peer policy
  and needs no permission; a connection from a peer (§5.3) does need one. ConnectionBind
  (§5.4) on a fresh TCP/TLS connection names a connection waiting for it (else 400) and
  ends in :class:`BindConnection`. A connection id not bound within 30 s is closed
  (:class:`ClosePeerConnection`). ChannelBind on a TCP allocation 400; Send indications and
  ChannelData to it are dropped.
- Lifetimes: allocations end at their lifetime, permissions and channels at theirs (data
  paths compare against ``now`` as well, so they end exactly on time even before ``expire``
  runs). :meth:`~TurnServer.connection_lost` ends the allocation of a TCP/TLS client (or the
  peer connection spliced to a data connection). Every table is bounded by the
  configuration.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union, cast

from clearwater.errors import ParseError
from clearwater.stun._attributes import Address, AddressErrorCode, Attr, ErrorCode
from clearwater.stun._codec import (
    HEADER_SIZE,
    MAGIC_COOKIE,
    AttributeKey,
    Class,
    Message,
    Method,
    parse_message,
    unknown_comprehension_required,
)
from clearwater.stun._turn_model import (
    NOT_LOOKED_UP,
    BindConnection,
    Client,
    ClosePeerConnection,
    CloseRelay,
    ConnectPeer,
    Effect,
    LookUpKey,
    NotLookedUp,
    OpenRelay,
    SendToClient,
    SendToPeer,
    TurnConfig,
    TurnStats,
)
from clearwater.stun._turn_nonce import NonceMint
from clearwater.stun._turn_policy import PeerPolicy
from clearwater.stun._turn_state import (
    Allocation,
    Channel,
    ConnectionState,
    Entry,
    Kind,
    PeerConnection,
    Reply,
    Timers,
)

__all__ = [
    "NOT_LOOKED_UP",
    "Address",
    "BindConnection",
    "Client",
    "ClosePeerConnection",
    "CloseRelay",
    "ConnectPeer",
    "Effect",
    "LookUpKey",
    "NotLookedUp",
    "OpenRelay",
    "PeerPolicy",
    "SendToClient",
    "SendToPeer",
    "TurnConfig",
    "TurnServer",
    "TurnStats",
]

_UDP = 17  # REQUESTED-TRANSPORT protocol numbers (RFC 8656 §18.7)
_TCP = 6
_IPV4 = 0x01  # address family codes (RFC 8656 §18.6, §18.11)
_IPV6 = 0x02
_FAMILY_CODE = {4: _IPV4, 6: _IPV6}
_CHANNEL_MIN = 0x4000  # RFC 8656 §12
_CHANNEL_MAX = 0x7FFF
#: RFC 8656 §12: a channel number or peer stays unbindable elsewhere 5 minutes after expiry.
_QUARANTINE = 300.0
#: How long the shell has to report an OpenRelay.
_RELAY_OPEN_TIMEOUT = 30.0
#: RFC 6062 §5.2, §5.3: a connection id not bound within 30 s is closed.
_CONNECTION_BIND_TIMEOUT = 30.0
_MAX_UNKNOWN = 32
_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_REQUESTS = frozenset(
    (
        Method.BINDING,
        Method.ALLOCATE,
        Method.REFRESH,
        Method.CREATE_PERMISSION,
        Method.CHANNEL_BIND,
        Method.CONNECT,
        Method.CONNECTION_BIND,
    )
)
_UNSPECIFIED = frozenset(("0.0.0.0", "::"))

_Attributes = Sequence[tuple[AttributeKey, Any]]
_Handler = Callable[[Client, Message, Reply, float], list[Effect]]


def _family(host: str) -> int:
    return 6 if ":" in host else 4


def _plain(address: Address) -> Address:
    """``address`` without an IPv6 zone (``%eth0``), which STUN cannot carry."""
    host, port = address
    return host.split("%", 1)[0], port


def _canonical(host: str) -> str:
    """RFC 5952 text for an IPv6 address (as the codec produces), else ``host``."""
    if ":" not in host:
        return host
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
    except (OSError, ValueError):
        return host


class TurnServer:
    """The TURN server core: allocations, permissions, channels and their lifetimes.

    :param config: what is allowed.
    :param secret: the nonce HMAC key; random by default. Servers sharing a secret accept
        each other's nonces.
    :param random: ``random(n) -> n bytes``, for transaction ids of indications and RFC 6062
        connection ids.
    """

    def __init__(
        self,
        config: TurnConfig,
        *,
        secret: Optional[bytes] = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self.stats = TurnStats()
        self._random = random
        self._nonces = NonceMint(
            secrets.token_bytes(32) if secret is None else secret, config.nonce_lifetime
        )
        self._rate = config.bandwidth
        self._software: list[tuple[AttributeKey, Any]] = (
            [(Attr.SOFTWARE, config.software)] if config.software else []
        )
        self._allocations: dict[int, Allocation] = {}
        self._by_client: dict[Client, Allocation] = {}
        self._per_user: dict[str, int] = {}
        self._connections: dict[int, PeerConnection] = {}
        self._data_clients: dict[Client, int] = {}
        self._next_allocation = 1
        self._next_connection = 1
        self._timers = Timers(self._timer_valid)
        self._handlers: dict[int, _Handler] = {
            Method.ALLOCATE: self._allocate,
            Method.REFRESH: self._refresh,
            Method.CREATE_PERMISSION: self._create_permission,
            Method.CHANNEL_BIND: self._channel_bind,
            Method.CONNECT: self._connect,
            Method.CONNECTION_BIND: self._connection_bind,
        }

    # -- inputs ----------------------------------------------------------------------------

    def received(
        self,
        client: Client,
        data: bytes,
        now: float,
        *,
        key: Union[bytes, NotLookedUp, None] = NOT_LOOKED_UP,
    ) -> list[Effect]:
        """One STUN message or ChannelData message from ``client``: a UDP datagram or a
        frame from :class:`~clearwater.stun.StreamFramer`.

        :param key: the long-term key of the request's USERNAME after a :class:`LookUpKey`
            (``None``: no such user); leave it out otherwise.
        """
        if not data:
            return []
        first = data[0]
        if first & 0xC0:
            if first & 0x80:
                return []
            return self._channel_data(client, data, now)
        try:
            message = parse_message(data)
        except ParseError:
            return self._malformed(client, data)
        fingerprint = Attr.FINGERPRINT in message
        if fingerprint and not message.check_fingerprint():
            return []
        if message.message_class == Class.INDICATION:
            return self._indication(client, message, now)
        if message.message_class != Class.REQUEST:
            return []
        method = message.method
        reply = Reply(method, message.transaction_id, fingerprint)
        if method not in _REQUESTS:
            return self._answer(client, reply, 400)
        unknown = unknown_comprehension_required(message)
        if unknown:
            return self._answer(
                client, reply, 420, [(Attr.UNKNOWN_ATTRIBUTES, unknown[:_MAX_UNKNOWN])]
            )
        if method == Method.BINDING:
            return self._binding(client, message, reply)
        if method == Method.ALLOCATE:
            again = self._allocate_again(client, message, now)
            if again is not None:
                return again
        refused = self._authenticate(client, message, bytes(data), now, key, reply)
        if refused is not None:
            return refused
        return self._handlers[method](client, message, reply, now)

    def relay_opened(
        self,
        allocation: int,
        relayed: Address,
        now: float,
        *,
        reservation: Optional[bytes] = None,
    ) -> list[Effect]:
        """The relay of ``allocation`` is open at ``relayed`` (with the 8-byte token of the
        port reserved next to it, for EVEN-PORT with the R bit): the Allocate succeeds."""
        alloc = self._allocations.get(allocation)
        if alloc is None:
            return [CloseRelay(allocation)]
        if alloc.active:
            return []
        alloc.active = True
        alloc.relayed = relayed
        alloc.family = _family(relayed[0])
        alloc.expires = now + alloc.lifetime
        alloc.stamp = now
        self._timers.push(alloc.expires, Kind.ALLOCATION, alloc.id)
        self.stats.allocations += 1
        self.stats.allocations_total += 1
        attributes: list[tuple[AttributeKey, Any]] = [
            (Attr.XOR_RELAYED_ADDRESS, relayed),
            (Attr.LIFETIME, alloc.lifetime),
        ]
        if reservation is not None:
            attributes.append((Attr.RESERVATION_TOKEN, reservation))
        attributes += alloc.extra
        attributes.append((Attr.XOR_MAPPED_ADDRESS, _plain(alloc.client.address)))
        response = self._send(alloc.client, alloc.reply, 0, attributes)
        alloc.response = response.data
        return [response]

    def relay_failed(self, allocation: int, now: float) -> list[Effect]:
        """The relay of ``allocation`` could not be opened: 508 (Insufficient Capacity)."""
        alloc = self._allocations.get(allocation)
        if alloc is None or alloc.active:
            return []
        self._forget(alloc)
        return self._answer(alloc.client, alloc.reply, 508)

    def peer_received(
        self, allocation: int, peer: Address, data: bytes, now: float
    ) -> list[Effect]:
        """A datagram from ``peer`` on the relay of ``allocation`` (RFC 8656 §11.3, §12.7)."""
        alloc = self._allocations.get(allocation)
        if alloc is None or not alloc.active or alloc.expires <= now:
            return []
        expiry = alloc.permissions.get(peer[0])
        if expiry is None:
            host = _canonical(peer[0])
            peer = (host, peer[1])
            expiry = alloc.permissions.get(host)
        if expiry is None or expiry <= now:
            self.stats.permission_drops += 1
            return []
        n = len(data)
        if self._rate and not self._admit(alloc, n, now):
            return []
        client = alloc.client
        channel = alloc.channel_by_peer.get(peer)
        if channel is not None and channel.expires > now and n <= 0xFFFF:
            header = ((channel.number << 16) | n).to_bytes(4, "big")
            pad = bytes(-n % 4) if client.stream else b""
            wire = header + data + pad
        else:
            indication = Message(
                Method.DATA,
                Class.INDICATION,
                self._random(12),
                [(Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data)],
            )
            try:
                wire = indication.encode(fingerprint=alloc.fingerprint)
            except ValueError:  # too big for a STUN message
                return []
        self.stats.relayed_packets_to_client += 1
        self.stats.relayed_bytes_to_client += n
        return [SendToClient(client, wire)]

    def connection_lost(self, client: Client, now: float) -> list[Effect]:
        """The TCP/TLS connection of ``client`` is gone: its allocation ends, or the peer
        connection spliced to it (an RFC 6062 data connection) is closed."""
        effects: list[Effect] = []
        alloc = self._by_client.get(client)
        if alloc is not None:
            effects += self._end(alloc)
        connection_id = self._data_clients.get(client)
        if connection_id is not None:
            self._drop_connection(self._connections[connection_id])
            effects.append(ClosePeerConnection(connection_id))
        return effects

    def next_deadline(self) -> Optional[float]:
        """When :meth:`expire` next has work: the earliest end of an allocation, permission,
        channel binding, channel quarantine, relay wait or ConnectionBind wait."""
        return self._timers.next_deadline()

    def expire(self, now: float) -> list[Effect]:
        """End what is due at ``now``."""
        effects: list[Effect] = []
        for deadline, _, kind, owner, key in self._timers.due(now):
            if kind == Kind.CONNECTION:
                self._drop_connection(self._connections[owner])
                effects.append(ClosePeerConnection(owner))
                continue
            alloc = self._allocations[owner]
            if kind == Kind.ALLOCATION:
                effects += self._end(alloc)
            elif kind == Kind.PERMISSION:
                del alloc.permissions[cast(str, key)]
            elif kind == Kind.CHANNEL:
                number = cast(int, key)
                channel = alloc.channels.pop(number)
                del alloc.channel_by_peer[channel.peer]
                until = deadline + _QUARANTINE
                alloc.quarantine[number] = (channel.peer, until)
                alloc.quarantine_by_peer[channel.peer] = number
                self._timers.push(until, Kind.QUARANTINE, owner, number)
            else:
                peer, _ = alloc.quarantine.pop(cast(int, key))
                del alloc.quarantine_by_peer[peer]
        return effects

    # -- RFC 6062 inputs -------------------------------------------------------------------

    def peer_connected(self, connection_id: int, now: float) -> list[Effect]:
        """The connection a :class:`ConnectPeer` asked for is up: the Connect succeeds."""
        conn = self._connections.get(connection_id)
        if conn is None:
            return [ClosePeerConnection(connection_id)]
        if conn.state is not ConnectionState.CONNECTING or conn.reply is None:
            return []
        alloc = self._allocations[conn.allocation]
        conn.state = ConnectionState.WAITING_BIND
        conn.expires = now + _CONNECTION_BIND_TIMEOUT
        self._timers.push(conn.expires, Kind.CONNECTION, connection_id)
        self.stats.peer_connections_total += 1
        reply, conn.reply = conn.reply, None
        return [self._send(alloc.client, reply, 0, [(Attr.CONNECTION_ID, connection_id)])]

    def peer_connect_failed(self, connection_id: int, now: float) -> list[Effect]:
        """The connection a :class:`ConnectPeer` asked for failed or timed out: 447."""
        conn = self._connections.get(connection_id)
        if conn is None or conn.state is not ConnectionState.CONNECTING or conn.reply is None:
            return []
        alloc = self._allocations[conn.allocation]
        self._drop_connection(conn)
        return self._answer(alloc.client, conn.reply, 447)

    def peer_connection_accepted(
        self, allocation: int, peer: Address, now: float
    ) -> tuple[Optional[int], list[Effect]]:
        """A peer connected to the TCP relay of ``allocation`` (RFC 6062 §5.3). Returns the
        connection id and a ConnectionAttempt indication for the client, or ``None`` (no
        permission, or no room): the shell closes the connection."""
        alloc = self._allocations.get(allocation)
        if alloc is None or not alloc.active or alloc.expires <= now or alloc.transport != "tcp":
            return None, []
        peer = (_canonical(peer[0]), peer[1])
        expiry = alloc.permissions.get(peer[0])
        if expiry is None or expiry <= now:
            self.stats.permission_drops += 1
            return None, []
        if self._connected_to(alloc, peer) or len(alloc.connections) >= self.config.max_connections:
            return None, []
        conn = self._add_connection(
            alloc, peer, ConnectionState.WAITING_BIND, now + _CONNECTION_BIND_TIMEOUT, None
        )
        self._timers.push(conn.expires, Kind.CONNECTION, conn.id)
        self.stats.peer_connections_total += 1
        indication = Message(
            Method.CONNECTION_ATTEMPT,
            Class.INDICATION,
            self._random(12),
            [(Attr.CONNECTION_ID, conn.id), (Attr.XOR_PEER_ADDRESS, peer)],
        )
        wire = indication.encode(fingerprint=alloc.fingerprint)
        return conn.id, [SendToClient(alloc.client, wire)]

    def peer_connection_lost(self, connection_id: int, now: float) -> list[Effect]:
        """Peer connection ``connection_id`` closed; the shell closes the client data
        connection spliced to it itself. A Connect still waiting for it gets 447."""
        conn = self._connections.get(connection_id)
        if conn is None:
            return []
        self._drop_connection(conn)
        if conn.state is ConnectionState.CONNECTING and conn.reply is not None:
            return self._answer(self._allocations[conn.allocation].client, conn.reply, 447)
        return []

    # -- responses -------------------------------------------------------------------------

    def _send(
        self, client: Client, reply: Reply, code: int, attributes: _Attributes = ()
    ) -> SendToClient:
        """A success (``code`` 0) or error response, integrity-protected once authenticated."""
        items = list(attributes)
        if code:
            items.insert(0, (Attr.ERROR_CODE, ErrorCode(code)))
        items += self._software
        message = Message(
            reply.method,
            Class.ERROR if code else Class.SUCCESS,
            reply.transaction_id,
            items,
        )
        if reply.key is None:
            wire = message.encode(fingerprint=reply.fingerprint)
        else:
            wire = message.encode(
                reply.key,
                sha1=not reply.sha256,
                sha256=reply.sha256,
                fingerprint=reply.fingerprint,
            )
        return SendToClient(client, wire)

    def _answer(
        self, client: Client, reply: Reply, code: int, attributes: _Attributes = ()
    ) -> list[Effect]:
        return [self._send(client, reply, code, attributes)]

    def _challenge(self, client: Client, reply: Reply, code: int, now: float) -> list[Effect]:
        """401 or 438 with REALM and a fresh NONCE (RFC 8489 §9.2.4)."""
        nonce = self._nonces.new(client.address[0], now)
        return self._answer(
            client, reply, code, [(Attr.REALM, self.config.realm), (Attr.NONCE, nonce)]
        )

    def _malformed(self, client: Client, data: bytes) -> list[Effect]:
        """400 for a request whose header is sound but whose body does not parse."""
        n = len(data)
        if n < HEADER_SIZE or data[4:8] != _COOKIE:
            return []
        message_type = (data[0] << 8) | data[1]
        length = (data[2] << 8) | data[3]
        if message_type & 0x0110 or length & 3 or HEADER_SIZE + length != n:
            return []  # not a request (class bits), or not STUN framing
        method = (
            (message_type & 0x000F)
            | ((message_type & 0x00E0) >> 1)
            | ((message_type & 0x3E00) >> 2)
        )
        return self._answer(client, Reply(method, bytes(data[8:HEADER_SIZE]), False), 400)

    # -- authentication (RFC 8489 §9.2.4) --------------------------------------------------

    def _authenticate(
        self,
        client: Client,
        message: Message,
        data: bytes,
        now: float,
        key: Union[bytes, NotLookedUp, None],
        reply: Reply,
    ) -> Optional[list[Effect]]:
        """``None`` if ``message`` is authenticated (``reply`` then holds the key), else the
        effects that answer it: a challenge, an error, or :class:`LookUpKey`."""
        sha256 = Attr.MESSAGE_INTEGRITY_SHA256 in message
        if not sha256 and Attr.MESSAGE_INTEGRITY not in message:
            return self._challenge(client, reply, 401, now)
        username = message.get(Attr.USERNAME)
        realm = message.get(Attr.REALM)
        nonce = message.get(Attr.NONCE)
        if username is None or realm is None or nonce is None:
            return self._answer(client, reply, 400)
        if realm != self.config.realm:
            self.stats.auth_failures += 1
            return self._challenge(client, reply, 401, now)
        if not self._nonces.valid(nonce, client.address[0], now):
            return self._challenge(client, reply, 438, now)
        if isinstance(key, NotLookedUp):
            cached = self._cached_key(client, message, username)
            if cached is None:
                return [LookUpKey(client, data, username)]
            key = cached
        if key is None or not (
            message.check_integrity_sha256(key) if sha256 else message.check_integrity(key)
        ):
            self.stats.auth_failures += 1
            return self._challenge(client, reply, 401, now)
        reply.key = key
        reply.sha256 = sha256
        reply.username = username
        return None

    def _cached_key(self, client: Client, message: Message, username: str) -> Optional[bytes]:
        """The key of the allocation the request is about, if made by ``username``."""
        alloc: Optional[Allocation]
        if message.method == Method.CONNECTION_BIND:
            connection_id = message.get(Attr.CONNECTION_ID)
            conn = None if connection_id is None else self._connections.get(connection_id)
            alloc = None if conn is None else self._allocations.get(conn.allocation)
        else:
            alloc = self._by_client.get(client)
        if alloc is None or alloc.username != username:
            return None
        return alloc.key

    # -- Binding (RFC 8489 §6.3.1.1, §12) --------------------------------------------------

    def _binding(self, client: Client, message: Message, reply: Reply) -> list[Effect]:
        self.stats.binding_requests += 1
        mapped = _plain(client.address)
        if message.legacy:
            return self._answer(client, reply, 0, [(Attr.MAPPED_ADDRESS, mapped)])
        attributes: list[tuple[AttributeKey, Any]] = [(Attr.XOR_MAPPED_ADDRESS, mapped)]
        local = _plain(client.local)
        if local[0] not in _UNSPECIFIED:
            attributes.append((Attr.RESPONSE_ORIGIN, local))
        return self._answer(client, reply, 0, attributes)

    # -- Allocate (RFC 8656 §7.2, RFC 6062 §5.1) -------------------------------------------

    def _allocate_again(
        self, client: Client, message: Message, now: float
    ) -> Optional[list[Effect]]:
        """The answer to a retransmitted Allocate, or ``None`` if it is not one."""
        alloc = self._by_client.get(client)
        if (
            alloc is None
            or alloc.reply.transaction_id != message.transaction_id
            or alloc.expires <= now
        ):
            return None
        if alloc.response is None:
            return []  # still opening: the answer comes with relay_opened()
        return [SendToClient(client, alloc.response)]

    def _allocate(self, client: Client, message: Message, reply: Reply, now: float) -> list[Effect]:
        existing = self._by_client.get(client)
        if existing is None:
            return self._new_allocation(client, message, reply, now)
        if existing.expires > now:
            return self._answer(client, reply, 437)
        return self._end(existing) + self._new_allocation(client, message, reply, now)

    def _new_allocation(
        self, client: Client, message: Message, reply: Reply, now: float
    ) -> list[Effect]:
        config = self.config
        protocol = message.get(Attr.REQUESTED_TRANSPORT)
        if protocol is None:
            return self._answer(client, reply, 400)
        if protocol == _UDP:
            transport = "udp"
        elif protocol == _TCP:
            if not client.stream:
                return self._answer(client, reply, 400)
            transport = "tcp"
        else:
            return self._answer(client, reply, 442)
        even = message.get(Attr.EVEN_PORT)
        token = message.get(Attr.RESERVATION_TOKEN)
        requested = message.get(Attr.REQUESTED_ADDRESS_FAMILY)
        additional = message.get(Attr.ADDITIONAL_ADDRESS_FAMILY)
        if transport == "tcp" and (
            even is not None or token is not None or Attr.DONT_FRAGMENT in message
        ):
            return self._answer(client, reply, 400)
        if token is not None and (
            even is not None or requested is not None or additional is not None
        ):
            return self._answer(client, reply, 400)
        if requested is not None and additional is not None:
            return self._answer(client, reply, 400)
        has_v4 = config.relay_ipv4 is not None
        has_v6 = config.relay_ipv6 is not None
        extra: list[tuple[Any, Any]] = []
        if requested is not None:
            if requested == _IPV4 and has_v4:
                family = 4
            elif requested == _IPV6 and has_v6:
                family = 6
            else:
                return self._answer(client, reply, 440)
        elif additional is not None:
            if additional == _IPV4 or even:
                return self._answer(client, reply, 400)
            if additional != _IPV6 or not (has_v4 or has_v6):
                return self._answer(client, reply, 440)
            if has_v4:
                family = 4
                refused = AddressErrorCode(_IPV6, 508 if has_v6 else 440)
                extra.append((Attr.ADDRESS_ERROR_CODE, refused))
            else:
                family = 6
                extra.append((Attr.ADDRESS_ERROR_CODE, AddressErrorCode(_IPV4, 440)))
        elif has_v4:
            family = 4
        elif token is not None and has_v6:
            family = 6
        else:
            return self._answer(client, reply, 440)
        count = self._per_user.get(reply.username, 0)
        if count >= config.max_allocations_per_user:
            self.stats.quota_rejections += 1
            return self._answer(client, reply, 486)
        if len(self._allocations) >= config.max_allocations:
            self.stats.quota_rejections += 1
            return self._answer(client, reply, 508)
        allocation_id = self._next_allocation
        self._next_allocation += 1
        alloc = Allocation(
            allocation_id,
            client,
            reply,
            family,
            transport,
            self._lifetime(message.get(Attr.LIFETIME)),
            now + _RELAY_OPEN_TIMEOUT,
            float(self._rate),
            now,
        )
        alloc.extra = extra
        self._allocations[allocation_id] = alloc
        self._by_client[client] = alloc
        self._per_user[reply.username] = count + 1
        self._timers.push(alloc.expires, Kind.ALLOCATION, allocation_id)
        return [OpenRelay(allocation_id, family, even is not None, bool(even), token, transport)]

    def _lifetime(self, requested: Optional[int]) -> int:
        """RFC 8656 §7.2: the requested lifetime within [default, max]."""
        config = self.config
        if requested is None:
            return config.default_lifetime
        return max(config.default_lifetime, min(requested, config.max_lifetime))

    # -- Refresh (RFC 8656 §8.2) -----------------------------------------------------------

    def _live(self, client: Client, now: float) -> Optional[Allocation]:
        """The allocation of ``client``'s 5-tuple, if its relay is open and it has not ended."""
        alloc = self._by_client.get(client)
        if alloc is None or not alloc.active or alloc.expires <= now:
            return None
        return alloc

    def _owned(self, client: Client, reply: Reply, now: float) -> Union[Allocation, list[Effect]]:
        """The live allocation of the 5-tuple if ``reply``'s user made it, else 437 or 441."""
        alloc = self._live(client, now)
        if alloc is None:
            return self._answer(client, reply, 437)
        if alloc.username != reply.username:
            return self._answer(client, reply, 441)
        return alloc

    def _refresh(self, client: Client, message: Message, reply: Reply, now: float) -> list[Effect]:
        alloc = self._owned(client, reply, now)
        if not isinstance(alloc, Allocation):
            return alloc
        requested = message.get(Attr.REQUESTED_ADDRESS_FAMILY)
        if requested is not None and requested != _FAMILY_CODE[alloc.family]:
            return self._answer(client, reply, 443)
        lifetime = message.get(Attr.LIFETIME)
        if lifetime == 0:
            response = self._send(client, reply, 0, [(Attr.LIFETIME, 0)])
            return [response, *self._end(alloc)]
        granted = self._lifetime(lifetime)
        alloc.expires = now + granted
        self._timers.push(alloc.expires, Kind.ALLOCATION, alloc.id)
        return self._answer(client, reply, 0, [(Attr.LIFETIME, granted)])

    # -- CreatePermission (RFC 8656 §10) and ChannelBind (§12) -----------------------------

    def _peer_refusal(self, alloc: Allocation, host: str) -> int:
        """0 if ``alloc`` may have a permission for ``host``, else 443 or 403."""
        if _family(host) != alloc.family:
            return 443
        if not self.config.peers.allowed(host):
            self.stats.peer_rejections += 1
            return 403
        return 0

    def _permit(self, alloc: Allocation, host: str, now: float) -> None:
        expires = now + self.config.permission_lifetime
        if alloc.permissions.get(host) != expires:
            alloc.permissions[host] = expires
            self._timers.push(expires, Kind.PERMISSION, alloc.id, host)

    def _create_permission(
        self, client: Client, message: Message, reply: Reply, now: float
    ) -> list[Effect]:
        alloc = self._owned(client, reply, now)
        if not isinstance(alloc, Allocation):
            return alloc
        peers = message.get_all(Attr.XOR_PEER_ADDRESS)
        if not peers:
            return self._answer(client, reply, 400)
        hosts: dict[str, None] = {}
        for host, _ in peers:
            refusal = self._peer_refusal(alloc, host)
            if refusal:
                return self._answer(client, reply, refusal)
            hosts[host] = None
        added = sum(1 for host in hosts if host not in alloc.permissions)
        if len(alloc.permissions) + added > self.config.max_permissions:
            return self._answer(client, reply, 508)
        for host in hosts:
            self._permit(alloc, host, now)
        return self._answer(client, reply, 0)

    def _channel_bind(
        self, client: Client, message: Message, reply: Reply, now: float
    ) -> list[Effect]:
        alloc = self._owned(client, reply, now)
        if not isinstance(alloc, Allocation):
            return alloc
        number = message.get(Attr.CHANNEL_NUMBER)
        peer = message.get(Attr.XOR_PEER_ADDRESS)
        if (
            alloc.transport != "udp"
            or number is None
            or peer is None
            or not _CHANNEL_MIN <= number <= _CHANNEL_MAX
            or peer[1] == 0
        ):
            return self._answer(client, reply, 400)
        refusal = self._peer_refusal(alloc, peer[0])
        if refusal:
            return self._answer(client, reply, refusal)
        channel = alloc.channels.get(number)
        other = alloc.channel_by_peer.get(peer)
        resting = alloc.quarantine.get(number)
        resting_number = alloc.quarantine_by_peer.get(peer)
        if (
            (channel is not None and channel.peer != peer)
            or (other is not None and other.number != number)
            or (resting is not None and resting[0] != peer)
            or (resting_number is not None and resting_number != number)
        ):
            return self._answer(client, reply, 400)
        config = self.config
        if peer[0] not in alloc.permissions and len(alloc.permissions) >= config.max_permissions:
            return self._answer(client, reply, 508)
        expires = now + config.channel_lifetime
        if channel is None:
            if resting is not None:
                del alloc.quarantine[number]
                del alloc.quarantine_by_peer[peer]
            elif len(alloc.channels) + len(alloc.quarantine) >= config.max_channels:
                return self._answer(client, reply, 508)
            channel = Channel(number, peer, expires)
            alloc.channels[number] = channel
            alloc.channel_by_peer[peer] = channel
            self._timers.push(expires, Kind.CHANNEL, alloc.id, number)
        elif channel.expires != expires:
            channel.expires = expires
            self._timers.push(expires, Kind.CHANNEL, alloc.id, number)
        self._permit(alloc, peer[0], now)
        return self._answer(client, reply, 0)

    # -- data from the client (RFC 8656 §11.2, §12.6) --------------------------------------

    def _indication(self, client: Client, message: Message, now: float) -> list[Effect]:
        if message.method != Method.SEND or unknown_comprehension_required(message):
            return []
        alloc = self._live(client, now)
        if alloc is None or alloc.transport != "udp":
            return []
        peer = message.get(Attr.XOR_PEER_ADDRESS)
        data = message.get(Attr.DATA)
        if peer is None or data is None or peer[1] == 0:
            return []
        return self._to_peer(alloc, peer, data, now)

    def _channel_data(self, client: Client, data: bytes, now: float) -> list[Effect]:
        n = len(data)
        if n < 4:
            return []
        number = (data[0] << 8) | data[1]
        if number > _CHANNEL_MAX:
            return []
        end = 4 + ((data[2] << 8) | data[3])
        if end > n or n - end > 3:
            return []
        alloc = self._by_client.get(client)
        if alloc is None or not alloc.active or alloc.expires <= now:
            return []
        channel = alloc.channels.get(number)
        if channel is None or channel.expires <= now:
            return []
        return self._to_peer(alloc, channel.peer, bytes(data[4:end]), now)

    def _to_peer(self, alloc: Allocation, peer: Address, data: bytes, now: float) -> list[Effect]:
        expiry = alloc.permissions.get(peer[0])
        if expiry is None or expiry <= now:
            self.stats.permission_drops += 1
            return []
        n = len(data)
        if self._rate and not self._admit(alloc, n, now):
            return []
        self.stats.relayed_packets_to_peer += 1
        self.stats.relayed_bytes_to_peer += n
        return [SendToPeer(alloc.id, peer, data)]

    def _admit(self, alloc: Allocation, n: int, now: float) -> bool:
        """Take ``n`` bytes from the allocation's token bucket, or count a drop."""
        rate = self._rate
        tokens = alloc.tokens
        elapsed = now - alloc.stamp
        if elapsed > 0:
            tokens = min(float(rate), tokens + elapsed * rate)
            alloc.stamp = now
        if tokens >= (n if n < rate else rate):
            alloc.tokens = tokens - n
            return True
        alloc.tokens = tokens
        self.stats.bandwidth_drops += 1
        return False

    # -- RFC 6062 requests -----------------------------------------------------------------

    def _connected_to(self, alloc: Allocation, peer: Address) -> bool:
        return any(self._connections[cid].peer == peer for cid in alloc.connections)

    def _new_connection_id(self) -> int:
        for _ in range(8):
            connection_id = int.from_bytes(self._random(4), "big")
            if connection_id and connection_id not in self._connections:
                return connection_id
        connection_id = self._next_connection
        while connection_id == 0 or connection_id in self._connections:
            connection_id = (connection_id + 1) & 0xFFFFFFFF
        self._next_connection = connection_id + 1
        return connection_id

    def _add_connection(
        self,
        alloc: Allocation,
        peer: Address,
        state: ConnectionState,
        expires: float,
        reply: Optional[Reply],
    ) -> PeerConnection:
        conn = PeerConnection(self._new_connection_id(), alloc.id, peer, state, expires, reply)
        self._connections[conn.id] = conn
        alloc.connections.add(conn.id)
        self.stats.peer_connections += 1
        return conn

    def _drop_connection(self, conn: PeerConnection) -> None:
        del self._connections[conn.id]
        alloc = self._allocations.get(conn.allocation)
        if alloc is not None:
            alloc.connections.discard(conn.id)
        if conn.client is not None:
            self._data_clients.pop(conn.client, None)
        self.stats.peer_connections -= 1

    def _connect(self, client: Client, message: Message, reply: Reply, now: float) -> list[Effect]:
        alloc = self._owned(client, reply, now)
        if not isinstance(alloc, Allocation):
            return alloc
        peer = message.get(Attr.XOR_PEER_ADDRESS)
        if alloc.transport != "tcp" or peer is None or peer[1] == 0:
            return self._answer(client, reply, 400)
        refusal = self._peer_refusal(alloc, peer[0])
        if refusal:
            return self._answer(client, reply, refusal)
        if self._connected_to(alloc, peer):
            return self._answer(client, reply, 446)
        if len(alloc.connections) >= self.config.max_connections:
            return self._answer(client, reply, 508)
        conn = self._add_connection(alloc, peer, ConnectionState.CONNECTING, 0.0, reply)
        return [ConnectPeer(alloc.id, conn.id, peer)]

    def _connection_bind(
        self, client: Client, message: Message, reply: Reply, now: float
    ) -> list[Effect]:
        connection_id = message.get(Attr.CONNECTION_ID)
        conn = None if connection_id is None else self._connections.get(connection_id)
        if (
            not client.stream
            or client in self._by_client
            or client in self._data_clients
            or conn is None
            or conn.state is not ConnectionState.WAITING_BIND
            or conn.expires <= now
        ):
            return self._answer(client, reply, 400)
        if self._allocations[conn.allocation].username != reply.username:
            return self._answer(client, reply, 441)
        conn.state = ConnectionState.BOUND
        conn.client = client
        self._data_clients[client] = conn.id
        return [self._send(client, reply, 0), BindConnection(client, conn.id)]

    # -- bookkeeping -----------------------------------------------------------------------

    def _forget(self, alloc: Allocation) -> list[int]:
        """Drop ``alloc`` from every table; the ids of its peer connections."""
        del self._allocations[alloc.id]
        if self._by_client.get(alloc.client) is alloc:
            del self._by_client[alloc.client]
        count = self._per_user[alloc.username] - 1
        if count:
            self._per_user[alloc.username] = count
        else:
            del self._per_user[alloc.username]
        if alloc.active:
            self.stats.allocations -= 1
        closed = sorted(alloc.connections)
        for connection_id in closed:
            self._drop_connection(self._connections[connection_id])
        return closed

    def _end(self, alloc: Allocation) -> list[Effect]:
        """End ``alloc``: close its relay and its peer connections."""
        closed = self._forget(alloc)
        effects: list[Effect] = [CloseRelay(alloc.id)]
        effects += [ClosePeerConnection(connection_id) for connection_id in closed]
        return effects

    def _timer_valid(self, entry: Entry) -> bool:
        deadline, _, kind, owner, key = entry
        if kind == Kind.CONNECTION:
            conn = self._connections.get(owner)
            return (
                conn is not None
                and conn.state is ConnectionState.WAITING_BIND
                and conn.expires == deadline
            )
        alloc = self._allocations.get(owner)
        if alloc is None:
            return False
        if kind == Kind.ALLOCATION:
            return alloc.expires == deadline
        if kind == Kind.PERMISSION:
            return alloc.permissions.get(cast(str, key)) == deadline
        if kind == Kind.CHANNEL:
            channel = alloc.channels.get(cast(int, key))
            return channel is not None and channel.expires == deadline
        resting = alloc.quarantine.get(cast(int, key))
        return resting is not None and resting[1] == deadline
