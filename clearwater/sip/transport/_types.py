"""Addresses the SIP transport layer works with (RFC 3261 §18, RFC 3263 §4, RFC 7118 §5).

- :class:`Target` is where a message goes: a transport and a literal IP address and port, as the
  RFC 3263 resolver produces them (the "destination" of RFC 3261 §18.1.1).
- :class:`Flow` is where a message came from: the transport, the remote address and the local
  address it arrived on. Responses to a request go back along the request's flow (§18.2.2); the
  connection table is keyed by ``(transport, remote host, remote port)``.

Transport names are the Via tokens of RFC 3261 §20.42 and RFC 7118 §5 (``UDP``, ``TCP``, ``TLS``,
``WS``, ``WSS``), upper-case.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Optional

import attrs
from typing_extensions import override

__all__ = [
    "DEFAULT_PORTS",
    "RELIABLE_TRANSPORTS",
    "SECURE_TRANSPORTS",
    "TRANSPORTS",
    "EncodedResponse",
    "Flow",
    "Target",
    "is_ip_literal",
]

#: Every transport the stack speaks, as written in a Via header.
TRANSPORTS = ("UDP", "TCP", "TLS", "WS", "WSS")
#: Transports with reliable delivery: RFC 3261 §17 timers A, E, G are off and D, I, J, K are 0.
RELIABLE_TRANSPORTS = frozenset(("TCP", "TLS", "WS", "WSS"))
#: Transports that satisfy a sips: URI (RFC 3261 §26.2).
SECURE_TRANSPORTS = frozenset(("TLS", "WSS"))
#: The port a transport uses when none is given (RFC 3261 §19.1.2, RFC 7118 §5).
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


def _transport(value: str) -> str:
    upper = value.upper()
    if upper not in TRANSPORTS:
        raise ValueError("unknown SIP transport: " + value)
    return upper


def _port(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(attribute.name + " out of range: " + str(value))


@functools.lru_cache(maxsize=4096)  # asked on every send; peers repeat
def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or IPv6 address (IPv6 with or without brackets)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@attrs.frozen
class Target:
    """A resolved destination: transport, literal IP address (no brackets) and port."""

    transport: str = attrs.field(converter=_transport)
    host: str = attrs.field(converter=_unbracket)
    port: int = attrs.field(validator=_port)
    #: The name a TLS peer's certificate must match (RFC 5922 §4); None means the host.
    server_name: Optional[str] = attrs.field(default=None, kw_only=True, eq=False)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def connection_key(self) -> tuple[str, str, int]:
        """The connection-table key for this destination."""
        return (self.transport, self.host, self.port)

    @override
    def __str__(self) -> str:
        host = "[" + self.host + "]" if ":" in self.host else self.host
        return self.transport.lower() + ":" + host + ":" + str(self.port)


#: A response as put on the wire and where RFC 3261 §18.2.2 sends it: ``(bytes, host, port,
#: server_name)``, the server name being what a TLS peer's certificate must match if a new
#: connection is needed ("" for UDP). A server transaction keeps this, not the parsed response,
#: to retransmit: a plain tuple of bytes, strings and an int is not tracked by the cyclic
#: garbage collector, and a finished transaction lingers for 64*T1.
EncodedResponse = tuple[bytes, str, int, str]


@attrs.frozen
class Flow:
    """How a message arrived: transport, remote address and local address."""

    transport: str = attrs.field(converter=_transport)
    remote_host: str = attrs.field(converter=_unbracket)
    remote_port: int = attrs.field(validator=_port)
    local_host: str = attrs.field(converter=_unbracket)
    local_port: int = attrs.field(validator=_port)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def connection_key(self) -> tuple[str, str, int]:
        """The connection-table key of the connection this message arrived on."""
        return (self.transport, self.remote_host, self.remote_port)

    @property
    def remote(self) -> Target:
        """The remote end as a target (where a reply over a new connection would go)."""
        return Target(self.transport, self.remote_host, self.remote_port)
