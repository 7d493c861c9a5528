# -*- test-case-name: tests.unit.services.test_restund_options -*-
"""``twistd restund`` options: a STUN/TURN server (RFC 8489, RFC 8656; spec §5, issue #7).

Clearwater ran restund beside bono, with TURN credentials from homestead (realm = home domain,
username = IMPI, key = the digest HA1 of ``GET /impi/<username>/digest``; 512 allocations at
most, 600 s lifetime). ARCHITECTURE.md §4: command line beats ``--config`` file beats default,
validated once, then frozen in :class:`RestundConfig`.

Choices where Clearwater differs or is silent:

- ``--listen`` defaults to ``127.0.0.1:3478`` (ARCHITECTURE.md §6: nothing faces the network
  unless told to); TLS listens only with ``--tls-cert`` and ``--tls-key``, by default on port
  5349 of each ``--listen`` address;
- the relay address defaults to the ``--listen`` address of each family; with only wildcard
  listen addresses, ``--relay-ip`` is required (a relayed address must be a real one);
- exactly one credentials scheme: ``--user`` (repeatable), ``--static-auth-secret`` (coturn's
  TURN REST API) or homestead (``--hs-hostname``, which a ``--config`` file may also give: it
  is then used only when the command line names no other scheme);
- peers on loopback, private and other special-purpose addresses are refused unless
  ``--allow-loopback-peers`` or ``--allow-peer`` says otherwise (RFC 8656 §21.2.3).
"""

from __future__ import annotations

import ipaddress
from typing import Callable, ClassVar, Optional, cast

import attrs
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.services._options import (
    AnySetting,
    ConfigOptions,
    Repeated,
    Setting,
    host,
    int_range,
    ip_address,
    port_number,
    readable_file,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "Options",
    "RestundConfig",
    "RestundOptions",
    "makeService",
]

#: STUN/TURN over UDP and TCP (RFC 8489 §6.2; RFC 8656 §2.1); spec §1.3.
DEFAULT_PORT = 3478
#: STUN/TURN over TLS (RFC 8489 §6.2.2).
DEFAULT_TLS_PORT = 5349

Address = tuple[str, int]


def _listen_address(default_port: int) -> Callable[[str], Address]:
    """``HOST[:PORT]``: an IP address (IPv6 in brackets when a port follows), port 1-65535."""

    def convert(text: str) -> Address:
        text = text.strip()
        if text.startswith("["):
            end = text.find("]")
            if end == -1:
                raise ValueError("unclosed [")
            name, rest = text[1:end], text[end + 1 :]
            if rest and not rest.startswith(":"):
                raise ValueError("expected HOST:PORT")
            port_text = rest[1:] if rest else ""
        elif text.count(":") == 1:
            name, _, port_text = text.partition(":")
        else:
            name, port_text = text, ""
        address = ip_address(name)
        port = _port(port_text) if port_text else default_port
        return address, port

    return convert


_port = int_range(1, 65535)


def _host_port(text: str) -> Address:
    """``HOST[:PORT]`` of homestead (port 8888 when not given)."""
    name, colon, port = text.rpartition(":")
    if not colon or "]" in port or (":" in name and not name.startswith("[")):
        name, port = text, "8888"
    return host(name.strip("[]")), _port(port)


def _relay_ip(text: str) -> str:
    address = ip_address(text)
    if ipaddress.ip_address(address).is_unspecified:
        raise ValueError("a relay address must be a real address, not a wildcard")
    return address


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError("not an address or CIDR network") from None


def _user(text: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` (split at the first colon); the password may be ``0x<32 hex>``, the
    key itself."""
    from clearwater.stun import saslprep

    name, colon, password = text.partition(":")
    if not colon or not name or not password:
        raise ValueError("expected NAME:PASSWORD")
    try:
        saslprep(password, allow_unassigned=True)
    except ValueError as e:
        raise ValueError(str(e)) from None
    return name, password


def _realm(text: str) -> str:
    realm = text.strip()
    if not realm or len(realm.encode("utf-8")) > 763:  # RFC 8489 §14.9
        raise ValueError("a realm is 1 to 763 bytes")
    return realm


def _secret(text: str) -> str:
    if not text:
        raise ValueError("empty secret")
    return text


@attrs.frozen
class RestundConfig:
    """restund's validated configuration: what ``makeService`` builds from."""

    realm: str
    listen: tuple[Address, ...]  # UDP and TCP on each
    relay_ipv4: Optional[str]
    relay_ipv6: Optional[str]
    tls_listen: tuple[Address, ...] = ()  # empty: no TLS
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    min_port: int = 49152
    max_port: int = 65535
    users: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    static_auth_secret: Optional[str] = attrs.field(default=None, repr=False)
    hs_hostname: Optional[Address] = None
    homestead_timeout: float = 1.2  # seconds
    key_cache_ttl: int = 30  # seconds
    allow_loopback_peers: bool = False
    allow_peers: tuple[str, ...] = ()
    deny_peers: tuple[str, ...] = ()
    max_allocations: int = 512
    user_quota: int = 10
    bandwidth: int = 0  # bytes per second per allocation; 0: no cap
    lifetime: int = 600
    max_lifetime: int = 3600
    http_address: str = "127.0.0.1"
    http_port: int = 0  # 0: none

    @property
    def credentials(self) -> str:
        """The credentials scheme: ``"users"``, ``"secret"`` or ``"homestead"``."""
        if self.users:
            return "users"
        if self.static_auth_secret is not None:
            return "secret"
        return "homestead"


HOME_DOMAIN = Setting(
    "home-domain", "home_domain", host, help="Home domain: the default realm (spec §5)"
)
REALM = Setting(
    "realm", None, _realm, help="The TURN realm (RFC 8489 §9.2)", default_help="--home-domain"
)
LISTEN = Repeated(
    "listen",
    _listen_address(DEFAULT_PORT),
    f"HOST[:PORT] to serve STUN/TURN on, over UDP and TCP (port {DEFAULT_PORT}) "
    f"[default: 127.0.0.1:{DEFAULT_PORT}]",
)
TLS_LISTEN = Repeated(
    "tls-listen",
    _listen_address(DEFAULT_TLS_PORT),
    f"HOST[:PORT] to serve STUN/TURN over TLS on (port {DEFAULT_TLS_PORT}); needs --tls-cert "
    f"[default with --tls-cert: port {DEFAULT_TLS_PORT} of each --listen address]",
)


TLS_CERT = Setting("tls-cert", None, readable_file, help="PEM certificate (chain) for TLS")
TLS_KEY = Setting("tls-key", None, readable_file, help="PEM private key for TLS")
RELAY_IP = Repeated(
    "relay-ip",
    _relay_ip,
    "Address relayed transport addresses are on: one IPv4 and/or one IPv6 "
    "[default: the --listen address of each family]",
)
MIN_PORT = Setting("min-port", None, _port, "49152", "Lowest relay port")
MAX_PORT = Setting("max-port", None, _port, "65535", "Highest relay port")
USER = Repeated(
    "user", _user, "NAME:PASSWORD of a TURN user (PASSWORD 0x<32 hex>: the key itself)", short="u"
)
STATIC_AUTH_SECRET = Setting(
    "static-auth-secret",
    None,
    _secret,
    help="Shared secret of the TURN REST API scheme (usernames expiry:user, as coturn)",
)
HS_HOSTNAME = Setting(
    "hs-hostname",
    "hs_hostname",
    _host_port,
    help="Homestead HOST[:PORT] (port 8888) to take keys from (GET /impi/<user>/digest)",
)
HOMESTEAD_TIMEOUT = Setting(
    "homestead-timeout", None, int_range(10, 60000), "1200", "Milliseconds to wait for homestead"
)
KEY_CACHE_TTL = Setting(
    "key-cache-ttl",
    None,
    int_range(0, 3600),
    "30",
    "Seconds an answer from homestead is reused; 0: never",
)
ALLOW_PEER = Repeated(
    "allow-peer", _network, "CIDR of peers always allowed (checked before --deny-peer)"
)
DENY_PEER = Repeated("deny-peer", _network, "CIDR of peers always refused")
MAX_ALLOCATIONS = Setting(
    "max-allocations", None, int_range(1, 1000000), "512", "Allocations at most, in total"
)
USER_QUOTA = Setting(
    "user-quota", None, int_range(1, 1000000), "10", "Allocations at most per username"
)
BANDWIDTH = Setting(
    "bandwidth",
    None,
    int_range(0, 10**12),
    "0",
    "Bytes per second an allocation may relay each way; 0: no cap",
)
LIFETIME = Setting(
    "lifetime", None, int_range(30, 86400), "600", "Default allocation lifetime, seconds"
)
MAX_LIFETIME = Setting(
    "max-lifetime", None, int_range(30, 86400), "3600", "Longest allocation lifetime, seconds"
)
HTTP_ADDRESS = Setting(
    "http-address", None, ip_address, "127.0.0.1", "Address of the management HTTP port"
)
HTTP_PORT = Setting(
    "http-port", None, port_number, "8478", "Management HTTP port (/ping, /metrics); 0: none"
)

_WILDCARDS = ("0.0.0.0", "::")


class RestundOptions(ConfigOptions):
    """Options of ``twistd restund``; :meth:`config` returns the frozen result."""

    longdesc = (
        "restund: a STUN/TURN server (RFC 8489, RFC 8656, RFC 6156) for phones and WebRTC "
        "clients behind NAT, with long-term credentials from homestead, static users or a "
        "shared secret. Options not given are read from --config files (Clearwater's "
        "shared_config format), else defaulted."
    )
    optFlags: ClassVar[list[list[Optional[str]]]] = [  # noqa: N815 (Twisted's name)
        [
            "allow-loopback-peers",
            None,
            "Allow relaying to loopback peers (tests only; RFC 8656 §21.2.3)",
        ],
    ]
    settings: ClassVar[tuple[AnySetting, ...]] = (
        HOME_DOMAIN,
        REALM,
        LISTEN,
        TLS_LISTEN,
        TLS_CERT,
        TLS_KEY,
        RELAY_IP,
        MIN_PORT,
        MAX_PORT,
        USER,
        STATIC_AUTH_SECRET,
        HS_HOSTNAME,
        HOMESTEAD_TIMEOUT,
        KEY_CACHE_TTL,
        ALLOW_PEER,
        DENY_PEER,
        MAX_ALLOCATIONS,
        USER_QUOTA,
        BANDWIDTH,
        LIFETIME,
        MAX_LIFETIME,
        HTTP_ADDRESS,
        HTTP_PORT,
    )

    def __init__(self) -> None:
        super().__init__()
        self._config: Optional[RestundConfig] = None

    @override
    def postOptions(self) -> None:
        """Merge the sources, derive the dependent defaults, check and freeze the result."""
        hs_on_command_line = self[HS_HOSTNAME.name] is not None
        super().postOptions()
        realm = self.setting_value(REALM)
        if realm is None:
            home_domain = self.setting_value(HOME_DOMAIN)
            if home_domain is None:
                raise usage.UsageError(
                    "--realm or --home-domain (shared_config key home_domain) is required"
                )
            realm = home_domain
        listen = self.repeated_values(LISTEN) or (("127.0.0.1", DEFAULT_PORT),)
        _check_addresses("--listen", listen)
        tls_listen = self._tls_listen(listen)
        relay_ipv4, relay_ipv6 = self._relay_ips(listen)
        min_port, max_port = self.required_value(MIN_PORT), self.required_value(MAX_PORT)
        if min_port > max_port:
            raise usage.UsageError(f"--min-port {min_port} is above --max-port {max_port}")
        lifetime, max_lifetime = self.required_value(LIFETIME), self.required_value(MAX_LIFETIME)
        if lifetime > max_lifetime:
            raise usage.UsageError(f"--lifetime {lifetime} is above --max-lifetime {max_lifetime}")
        users = self.repeated_values(USER)
        secret = self.setting_value(STATIC_AUTH_SECRET)
        hs_hostname = self.setting_value(HS_HOSTNAME)
        given = []
        if users:
            given.append("--user")
        if secret is not None:
            given.append("--static-auth-secret")
        if hs_on_command_line:
            given.append("--hs-hostname")
        if len(given) > 1:
            raise usage.UsageError(" and ".join(given) + ": give one credentials scheme")
        if not given and hs_hostname is None:
            raise usage.UsageError(
                "no credentials: give --user, --static-auth-secret or --hs-hostname"
            )
        if given and given[0] != "--hs-hostname":
            hs_hostname = None  # a config file's hs_hostname gives way to the command line
        names = [name for name, _ in users]
        for name in names:
            if names.count(name) > 1:
                raise usage.UsageError(f"--user {name} given twice")
        self._config = RestundConfig(
            realm=realm,
            listen=tuple(listen),
            relay_ipv4=relay_ipv4,
            relay_ipv6=relay_ipv6,
            tls_listen=tls_listen,
            tls_cert=self.setting_value(TLS_CERT),
            tls_key=self.setting_value(TLS_KEY),
            min_port=min_port,
            max_port=max_port,
            users=tuple(users),
            static_auth_secret=secret,
            hs_hostname=hs_hostname,
            homestead_timeout=self.required_value(HOMESTEAD_TIMEOUT) / 1000,
            key_cache_ttl=self.required_value(KEY_CACHE_TTL),
            allow_loopback_peers=bool(self["allow-loopback-peers"]),
            allow_peers=self.repeated_values(ALLOW_PEER),
            deny_peers=self.repeated_values(DENY_PEER),
            max_allocations=self.required_value(MAX_ALLOCATIONS),
            user_quota=self.required_value(USER_QUOTA),
            bandwidth=self.required_value(BANDWIDTH),
            lifetime=lifetime,
            max_lifetime=max_lifetime,
            http_address=self.required_value(HTTP_ADDRESS),
            http_port=self.required_value(HTTP_PORT),
        )

    def _tls_listen(self, listen: tuple[Address, ...]) -> tuple[Address, ...]:
        cert, key = self.setting_value(TLS_CERT), self.setting_value(TLS_KEY)
        if (cert is None) != (key is None):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        given = self.repeated_values(TLS_LISTEN)
        if cert is None:
            if given:
                raise usage.UsageError("--tls-listen needs --tls-cert and --tls-key")
            return ()
        hosts = list(dict.fromkeys(address for address, _ in listen))
        tls_listen = given or tuple((address, DEFAULT_TLS_PORT) for address in hosts)
        _check_addresses("--tls-listen", tls_listen)
        for address in tls_listen:
            if _clashes(address, listen):
                raise usage.UsageError(
                    f"--tls-listen {_show(address)} and --listen use the same TCP port"
                )
        return tls_listen

    def _relay_ips(self, listen: tuple[Address, ...]) -> tuple[Optional[str], Optional[str]]:
        given = self.repeated_values(RELAY_IP)
        v4 = [a for a in given if ipaddress.ip_address(a).version == 4]
        v6 = [a for a in given if ipaddress.ip_address(a).version == 6]
        if len(v4) > 1 or len(v6) > 1:
            raise usage.UsageError("--relay-ip: at most one IPv4 and one IPv6 address")
        if given:
            return (v4[0] if v4 else None), (v6[0] if v6 else None)
        specific = [a for a, _ in listen if a not in _WILDCARDS]
        relay_v4 = next((a for a in specific if ipaddress.ip_address(a).version == 4), None)
        relay_v6 = next((a for a in specific if ipaddress.ip_address(a).version == 6), None)
        if relay_v4 is None and relay_v6 is None:
            raise usage.UsageError(
                "--relay-ip is required when every --listen address is a wildcard"
            )
        return relay_v4, relay_v6

    def config(self) -> RestundConfig:
        """The frozen configuration; only after :meth:`parseOptions` succeeded."""
        if self._config is None:
            raise RuntimeError("RestundOptions.config() before parseOptions()")
        return self._config


def _show(address: Address) -> str:
    host_, port = address
    return (f"[{host_}]" if ":" in host_ else host_) + ":" + str(port)


def _clashes(address: Address, others: tuple[Address, ...]) -> bool:
    """Whether binding ``address`` would clash with one of ``others`` (same port, same family,
    same address or a wildcard)."""
    host_, port = address
    family = ipaddress.ip_address(host_).version
    for other_host, other_port in others:
        if other_port != port or ipaddress.ip_address(other_host).version != family:
            continue
        if other_host == host_ or host_ in _WILDCARDS or other_host in _WILDCARDS:
            return True
    return False


def _check_addresses(option: str, addresses: tuple[Address, ...]) -> None:
    for i, address in enumerate(addresses):
        if _clashes(address, addresses[:i]):
            raise usage.UsageError(f"{option} {_show(address)}: that port is given twice")


#: twistd's name for the options class (``ServiceMaker`` looks up ``options``).
Options = RestundOptions


def makeService(options: RestundOptions) -> IService:  # noqa: N802 (twistd's name)
    """The ``twistd restund`` service tree (see :mod:`clearwater.services.restund.service`)."""
    from twisted.internet import reactor

    from clearwater.services.restund.service import make_service

    return make_service(options.config(), cast(ISipReactor, reactor))
