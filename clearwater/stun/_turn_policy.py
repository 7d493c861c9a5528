"""Which peer addresses a TURN relay may talk to (RFC 8656 §21.2.3, RFC 6156 §9.1).

A relay open to the internet must not become a way into the networks behind it. By default
:class:`PeerPolicy` refuses every address that is not global unicast, from fixed tables of the
IANA special-purpose registries (RFC 6890 and its updates), so the answer does not depend on
the Python version's ``ipaddress`` tables:

- IPv4: 0/8 ("this network"), 10/8, 172.16/12 and 192.168/16 (RFC 1918), 100.64/10 (CGNAT,
  RFC 6598), 127/8 (loopback), 169.254/16 (link-local), 192.0.0/24 (IETF protocol
  assignments), 192.0.2/24, 198.51.100/24 and 203.0.113/24 (documentation, RFC 5737),
  192.88.99/24 (6to4 relay anycast, deprecated), 198.18/15 (benchmarking), 224/4 (multicast)
  and 240/4 (reserved, with the limited broadcast address).
- IPv6: ``::`` and ``::1``, ``::/96`` (IPv4-compatible, deprecated), ``::ffff:0:0:0/96``
  (IPv4-translated), 64:ff9b:1::/48 (local-use NAT64), 100::/64 (discard), 2001::/23 (IETF
  protocol assignments, Teredo among them), 2001:db8::/32 and 3fff::/20 (documentation),
  5f00::/16 (SRv6), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site-local,
  deprecated) and ff00::/8 (multicast).
- IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are judged as the IPv4 address they carry,
  for every rule. NAT64 (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16, RFC 3056) addresses are
  also refused when the IPv4 address they embed is refused, since they reach it through a
  translator.

The operator's lists come first: an address in ``allow`` is allowed, then one in ``deny`` is
refused, then ``allow_loopback`` lets 127/8 and ``::1`` through (tests and single-host setups),
then the defaults apply. Host names and unparsable text are refused. Which ports of the
relay's own addresses a peer may reach is the shell's business, not this module's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Optional, Union

import attrs

__all__ = ["PeerPolicy"]

_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: ``(version, network as int, mask as int)`` per CIDR.
_Net = tuple[int, int, int]

_DENY_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_DENY_V6 = (
    "::/96",
    "::ffff:0:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _to_net(cidr: str) -> _Net:
    network = ipaddress.ip_network(cidr, strict=False)
    return network.version, int(network.network_address), int(network.netmask)


def _nets(cidrs: Iterable[str]) -> tuple[_Net, ...]:
    return tuple(_to_net(cidr) for cidr in cidrs)


def _matches(ip: _IP, nets: tuple[_Net, ...]) -> bool:
    version = ip.version
    value = int(ip)
    return any(v == version and value & mask == net for v, net, mask in nets)


_DEFAULT_DENY = _nets(_DENY_V4 + _DENY_V6)


def _parse(host: str) -> Optional[_IP]:
    """The address ``host`` names (an IPv4-mapped IPv6 address as its IPv4 address), or
    ``None`` for anything that is not an IP address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded(ip: _IP) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address a NAT64 or 6to4 address reaches, if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip in _SIX_TO_FOUR:
            return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _cidrs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _check_cidrs(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{attribute.name}: not a CIDR: {cidr!r}") from None


@attrs.frozen
class PeerPolicy:
    """The peer addresses a relay may send to and accept from (RFC 8656 §21.2.3).

    :ivar allow_loopback: let 127/8 and ``::1`` through (tests only).
    :ivar allow: CIDRs always allowed; checked first.
    :ivar deny: CIDRs always refused; checked after ``allow``.
    """

    allow_loopback: bool = False
    allow: tuple[str, ...] = attrs.field(default=(), converter=_cidrs, validator=_check_cidrs)
    deny: tuple[str, ...] = attrs.field(default=(), converter=_cidrs, validator=_check_cidrs)
    _allow_nets: tuple[_Net, ...] = attrs.field(init=False, eq=False, repr=False)
    _deny_nets: tuple[_Net, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_allow_nets", _nets(self.allow))
        object.__setattr__(self, "_deny_nets", _nets(self.deny))

    def allowed(self, host: str) -> bool:
        """``True`` if a relay may exchange packets with ``host`` (an IP address as text)."""
        ip = _parse(host)
        if ip is None:
            return False
        if _matches(ip, self._allow_nets):
            return True
        if _matches(ip, self._deny_nets):
            return False
        if ip.is_loopback and self.allow_loopback:
            return True
        if _matches(ip, _DEFAULT_DENY):
            return False
        embedded = _embedded(ip)
        return embedded is None or not _matches(embedded, _DEFAULT_DENY)
