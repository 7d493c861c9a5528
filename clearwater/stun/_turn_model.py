"""The plain data of the sans-IO TURN server: clients, configuration, effects and statistics.

- :class:`Client` names the client side of a 5-tuple (RFC 8656 §2): the transport, the
  client's address and the server address it reached, plus the shell's id for a stream
  connection.
- :class:`TurnConfig` is the frozen configuration (RFC 8656 §7.2, §9, §12 lifetimes;
  quotas; the bandwidth cap; the :class:`~clearwater.stun.PeerPolicy`).
- Effects are what :class:`~clearwater.stun.TurnServer` asks its shell to do, in list order:
  :class:`SendToClient`, :class:`LookUpKey`, :class:`OpenRelay`, :class:`CloseRelay`,
  :class:`SendToPeer`, and for RFC 6062 TCP allocations :class:`ConnectPeer`,
  :class:`ClosePeerConnection` and :class:`BindConnection`.
- :class:`TurnStats` counts what the server did, as plain ints for the metrics page.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import Any, Optional, Union

import attrs

from clearwater.stun._attributes import Address
from clearwater.stun._turn_policy import PeerPolicy

__all__ = [
    "NOT_LOOKED_UP",
    "BindConnection",
    "Client",
    "ClosePeerConnection",
    "CloseRelay",
    "ConnectPeer",
    "Effect",
    "LookUpKey",
    "NotLookedUp",
    "OpenRelay",
    "SendToClient",
    "SendToPeer",
    "TurnConfig",
    "TurnStats",
]


class NotLookedUp(enum.Enum):
    """The type of :data:`NOT_LOOKED_UP`."""

    NOT_LOOKED_UP = "not looked up"


#: ``received(..., key=NOT_LOOKED_UP)``: the shell has not looked the key up (yet).
NOT_LOOKED_UP = NotLookedUp.NOT_LOOKED_UP


@attrs.frozen
class Client:
    """The client side of a 5-tuple (RFC 8656 §2) as the server sees it.

    :ivar transport: ``"udp"``, ``"tcp"`` or ``"tls"``.
    :ivar address: the client's address (IPv6 hosts without brackets).
    :ivar local: the server's address the client reached.
    :ivar connection: for a stream, an id the shell gives the connection; 0 for UDP.
    """

    transport: str
    address: Address
    local: Address
    connection: int = 0

    @property
    def stream(self) -> bool:
        """``True`` for TCP and TLS (ChannelData is padded there, RFC 8656 §12.5)."""
        return self.transport != "udp"


def _positive(instance: Any, attribute: Any, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


def _not_negative(instance: Any, attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def _text(instance: Any, attribute: Any, value: str) -> None:
    # REALM and SOFTWARE: fewer than 128 characters, at most 763 bytes (RFC 8489 §14.9, §14.14)
    if len(value) > 127 or len(value.encode("utf-8")) > 763:
        raise ValueError(f"{attribute.name} must be fewer than 128 characters")


def _ip_of(version: int) -> Any:
    def check(instance: Any, attribute: Any, value: Optional[str]) -> None:
        if value is None:
            return
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{attribute.name}: not an IP address: {value!r}") from None
        if ip.version != version:
            raise ValueError(f"{attribute.name} must be an IPv{version} address")

    return check


def _check_lifetimes(instance: TurnConfig, attribute: Any, value: int) -> None:
    if value < instance.default_lifetime:
        raise ValueError("max_lifetime must be at least default_lifetime")


@attrs.frozen
class TurnConfig:
    """What the TURN server allows (RFC 8656), validated once.

    :ivar realm: the REALM of the long-term credentials (RFC 8489 §9.2); Clearwater uses the
        home domain.
    :ivar software: the SOFTWARE attribute of responses; empty for none.
    :ivar relay_ipv4: the IPv4 relay address, or ``None``: no IPv4 relays (440).
    :ivar relay_ipv6: the IPv6 relay address, or ``None``: no IPv6 relays (RFC 6156).
    :ivar default_lifetime: seconds an allocation lives without a LIFETIME, and the least it
        is granted (RFC 8656 §7.2: 600).
    :ivar max_lifetime: the most an allocation is granted per request.
    :ivar permission_lifetime: RFC 8656 §9: 300 s.
    :ivar channel_lifetime: RFC 8656 §12: 600 s.
    :ivar nonce_lifetime: seconds a NONCE is good for; after it 438 (Stale Nonce).
    :ivar max_allocations: allocations in total; beyond it 508 (Insufficient Capacity).
    :ivar max_allocations_per_user: per USERNAME; beyond it 486 (Allocation Quota Reached).
    :ivar bandwidth: bytes per second per allocation, both directions together; 0: no cap.
    :ivar peers: which peer addresses may be relayed to and from.
    :ivar max_permissions: permissions (peer IP addresses) per allocation; beyond it 508.
    :ivar max_channels: channel numbers in use per allocation, bound or in their five
        minutes of quarantine after expiry (RFC 8656 §12); beyond it 508.
    :ivar max_connections: RFC 6062 peer connections per TCP allocation; beyond it 508.
    """

    realm: str = attrs.field(validator=_text)
    software: str = attrs.field(default="clearwater restund", validator=_text)
    relay_ipv4: Optional[str] = attrs.field(default=None, validator=_ip_of(4))
    relay_ipv6: Optional[str] = attrs.field(default=None, validator=_ip_of(6))
    default_lifetime: int = attrs.field(default=600, validator=_positive)
    max_lifetime: int = attrs.field(default=3600, validator=_check_lifetimes)
    permission_lifetime: int = attrs.field(default=300, validator=_positive)
    channel_lifetime: int = attrs.field(default=600, validator=_positive)
    nonce_lifetime: int = attrs.field(default=3600, validator=_positive)
    max_allocations: int = attrs.field(default=512, validator=_not_negative)
    max_allocations_per_user: int = attrs.field(default=10, validator=_not_negative)
    bandwidth: int = attrs.field(default=0, validator=_not_negative)
    peers: PeerPolicy = attrs.field(factory=PeerPolicy)
    max_permissions: int = attrs.field(default=64, validator=_positive)
    max_channels: int = attrs.field(default=512, validator=_positive)
    max_connections: int = attrs.field(default=128, validator=_positive)


# -- effects ----------------------------------------------------------------------------------


@attrs.frozen
class SendToClient:
    """Send ``data`` to ``client``: a STUN message, or ChannelData (already padded to 4 bytes
    for a stream client, RFC 8656 §12.5)."""

    client: Client
    data: bytes


@attrs.frozen
class LookUpKey:
    """Fetch the long-term key (RFC 8489 §9.2.2) of ``username``, then call
    ``received(client, data, now, key=...)`` again with the key, or ``key=None`` if the user
    is unknown."""

    client: Client
    data: bytes
    username: str


@attrs.frozen
class OpenRelay:
    """Open the relay of ``allocation`` on the relay address of ``family`` (4 or 6), then
    call ``relay_opened()`` or ``relay_failed()``.

    :ivar even_port: the port must be even (EVEN-PORT, RFC 8656 §7.2).
    :ivar reserve: also reserve the next port up and report a token with ``relay_opened(...,
        reservation=token)`` (EVEN-PORT with the R bit).
    :ivar token: use the port reserved under this RESERVATION-TOKEN (``relay_failed()`` if
        the token is unknown or expired).
    :ivar transport: ``"udp"`` (bind a UDP socket) or ``"tcp"`` (listen on a TCP port, an
        RFC 6062 TCP allocation).
    """

    allocation: int
    family: int
    even_port: bool
    reserve: bool
    token: Optional[bytes]
    transport: str = "udp"


@attrs.frozen
class CloseRelay:
    """The allocation ended: close its relay (socket or listening port)."""

    allocation: int


@attrs.frozen
class SendToPeer:
    """Send ``data`` to ``peer`` from the relay of ``allocation``."""

    allocation: int
    peer: Address
    data: bytes


@attrs.frozen
class ConnectPeer:
    """RFC 6062 §5.2: open a TCP connection from the relay of ``allocation`` to ``peer``,
    with a timeout, then call ``peer_connected(connection_id)`` or
    ``peer_connect_failed(connection_id)``."""

    allocation: int
    connection_id: int
    peer: Address


@attrs.frozen
class ClosePeerConnection:
    """RFC 6062: close the peer connection ``connection_id`` (and the client data connection
    spliced to it, if any)."""

    connection_id: int


@attrs.frozen
class BindConnection:
    """RFC 6062 §5.4: after sending the ConnectionBind response on ``client`` (the effect
    before this one), splice that client connection and peer connection ``connection_id``:
    raw bytes both ways from now on."""

    client: Client
    connection_id: int


Effect = Union[
    SendToClient,
    LookUpKey,
    OpenRelay,
    CloseRelay,
    SendToPeer,
    ConnectPeer,
    ClosePeerConnection,
    BindConnection,
]


@attrs.define
class TurnStats:
    """Counters, plain ints. ``allocations`` and ``peer_connections`` are current values;
    the rest only grow.

    :ivar allocations: allocations with an open relay.
    :ivar allocations_total: relays ever opened.
    :ivar auth_failures: requests refused for an unknown user, a wrong REALM or a wrong
        MESSAGE-INTEGRITY (not the first, credential-less request of each exchange).
    :ivar relayed_packets_to_peer: packets relayed client to peer (application data bytes
        in ``relayed_bytes_to_peer``).
    :ivar relayed_packets_to_client: packets relayed peer to client.
    :ivar quota_rejections: Allocate refused with 486 (per user) or 508 (in total).
    :ivar peer_rejections: requests refused with 403 because of the peer policy.
    :ivar bandwidth_drops: packets dropped by the bandwidth cap.
    :ivar permission_drops: packets dropped for lack of a permission (RFC 8656 §9).
    :ivar binding_requests: Binding requests answered.
    :ivar peer_connections: RFC 6062 peer connections the server knows about.
    :ivar peer_connections_total: RFC 6062 peer connections ever established.
    """

    allocations: int = 0
    allocations_total: int = 0
    auth_failures: int = 0
    relayed_packets_to_peer: int = 0
    relayed_bytes_to_peer: int = 0
    relayed_packets_to_client: int = 0
    relayed_bytes_to_client: int = 0
    quota_rejections: int = 0
    peer_rejections: int = 0
    bandwidth_drops: int = 0
    permission_drops: int = 0
    binding_requests: int = 0
    peer_connections: int = 0
    peer_connections_total: int = 0
