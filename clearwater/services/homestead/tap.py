"""``twistd homestead`` options (spec §6.1, §6.6, §8; issue #5).

Homestead in HSS-less mode: subscribers are provisioned through homestead-prov's API and kept in
the store ``--store`` names (a SQLite file by default, so nothing provisioned is lost on a
restart; ``redis://`` for a cluster). ARCHITECTURE.md §4: command line beats ``--config`` file
beats default, validated once, then frozen in :class:`HomesteadConfig`.

Choices where Clearwater differs or is silent:

- the homestead API (8888) binds to ``--local-ip`` (sprout, on another node, calls it); the
  provisioning API (8889, no authentication: Clearwater said to firewall it) binds to
  ``--prov-address``, loopback by default (ARCHITECTURE.md §6);
- the S-CSCF that UAR and LIR answers name (spec §6.1: HSS-less mode answers with "the
  configured S-CSCF URI") is ``--scscf-uri``, by default sprout's S-CSCF URI,
  ``sip:scscf.<sprout hostname>;transport=tcp`` (spec §2.9);
- subscriber data read from a SQLite or Redis store is reused for ``--subscriber-cache-ttl``
  seconds (:mod:`clearwater.stores.cached`, in the place of Clearwater's Cassandra cache).

HSS mode (issue #8, spec §6.1, §7.1): ``--hss-hostname`` or ``--hss-peer`` turns on Diameter
Cx. Homestead then answers from the HSS (:mod:`clearwater.homestead.hss`), caching its answers
in ``--cache-store`` (memory by default, as the HSS holds the data: a restarted homestead asks
it again); the subscriber store and the provisioning API are not used. ``--hss-hostname`` is
Clearwater's single HSS, named as Destination-Host on every request and reached at its name
and ``--hss-port``; ``--hss-peer NAME=ADDRESS[:PORT]`` (repeatable) lists HSSs reached at fixed
addresses, tried in order within ``--hss-realm`` (Destination-Host is then set only when
``--hss-hostname`` names one of them).
"""

from __future__ import annotations

import os
from typing import Callable, ClassVar, Optional, cast

import attrs
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.errors import ParseError
from clearwater.services._diameter import (
    DIAMETER_TLS_CA,
    DIAMETER_TLS_CERT,
    DIAMETER_TLS_KEY,
    DIAMETER_TLS_PORT,
    DiameterTls,
    diameter_tls,
)
from clearwater.services._options import (
    AnySetting,
    ConfigOptions,
    Repeated,
    Setting,
    diameter_peer,
    host,
    int_range,
    ip_address,
    port_number,
    seconds,
    yes_no,
)
from clearwater.sip import parse_sip_uri
from clearwater.stores.urls import StoreUrl, parse_store_url

__all__ = [
    "HomesteadConfig",
    "HomesteadOptions",
    "HssConfig",
    "Options",
    "default_store",
    "makeService",
]


#: Where subscribers live when ``--store`` is not given.
def default_store() -> str:
    """``sqlite:`` in ``$XDG_DATA_HOME/clearwater`` (``~/.local/share/clearwater``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return "sqlite:" + os.path.join(base, "clearwater", "homestead.db")


def _store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "sqlite", "redis"))


def _listen_host_port(default_port: int) -> Callable[[str], tuple[str, int]]:
    """``HOST[:PORT]`` (an IPv6 address in brackets when a port follows)."""

    def convert(text: str) -> tuple[str, int]:
        text = text.strip()
        port = default_port
        if text.startswith("["):
            end = text.find("]")
            if end == -1:
                raise ValueError("unclosed [")
            name, rest = text[1:end], text[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError("expected HOST:PORT")
                port = int_range(1, 65535)(rest[1:])
        elif text.count(":") == 1:
            name, rest = text.split(":")
            port = int_range(1, 65535)(rest)
        else:
            name = text
        return host(name), port

    return convert


def _scscf_uri(text: str) -> str:
    try:
        return str(parse_sip_uri(text))
    except ParseError as e:
        raise ValueError(e.reason) from None


def _cache_store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "memcached", "redis"))


@attrs.frozen
class HssConfig:
    """HSS mode: where the HSS is, our Diameter identity, and the cache."""

    hss_realm: str
    hss_hostname: Optional[str]  # Destination-Host, if one
    peers: tuple[tuple[str, str, int], ...]  # (identity, address, port), in order
    diameter_identity: str
    diameter_realm: str
    diameter_port: int  # 0: do not listen
    watchdog: float
    timeout: float
    reregistration_time: int
    sprout_http: tuple[str, int]
    cache_store: StoreUrl
    hss_tls: bool = False  # connect to the HSSs over TLS
    tls: Optional[DiameterTls] = None  # None: no TLS at all


@attrs.frozen
class HomesteadConfig:
    """Homestead's validated configuration: what ``makeService`` builds from."""

    home_domain: str
    sprout_hostname: str
    scscf_uri: str
    local_ip: str
    http_port: int  # 0: none
    prov_address: str
    prov_port: int  # 0: none
    store: StoreUrl
    subscriber_cache_ttl: int = 10  # seconds; 0: no cache
    hss: Optional[HssConfig] = None  # None: HSS-less mode


HOME_DOMAIN = Setting("home-domain", "home_domain", host, help="Home SIP domain (required)")
SPROUT_HOSTNAME = Setting(
    "sprout-hostname",
    "sprout_hostname",
    host,
    help="Cluster host name of sprout",
    default_help="sprout.<home domain>",
)
SCSCF_URI = Setting(
    "scscf-uri",
    "scscf_uri",
    _scscf_uri,
    help="The S-CSCF that registration-status and location answers name",
    default_help="sip:scscf.<sprout hostname>;transport=tcp",
)
LOCAL_IP = Setting(
    "local-ip", "local_ip", ip_address, "127.0.0.1", "Address the homestead API binds to"
)
HTTP_PORT = Setting("http-port", None, port_number, "8888", "Port of the homestead API; 0: none")
PROV_ADDRESS = Setting(
    "prov-address",
    None,
    ip_address,
    "127.0.0.1",
    "Address the provisioning API binds to (it has no authentication: keep it private)",
)
PROV_PORT = Setting("prov-port", None, port_number, "8889", "Port of the provisioning API; 0: none")
STORE = Setting(
    "store",
    "homestead_store",
    _store,
    help="Where subscribers are kept: sqlite:PATH, redis://HOST:PORT/DB or memory:",
    default_help="sqlite:$XDG_DATA_HOME/clearwater/homestead.db",
)
SUBSCRIBER_CACHE_TTL = Setting(
    "subscriber-cache-ttl",
    None,
    int_range(0, 3600),
    "10",
    "Seconds subscriber data read from the store is reused (a change made through another "
    "process sharing the store is seen within it); 0: no cache",
)

HSS_HOSTNAME = Setting(
    "hss-hostname",
    "hss_hostname",
    host,
    help="The HSS (its Diameter identity, also the host connected to): turns on HSS mode",
)
HSS_PORT = Setting("hss-port", "hss_port", int_range(1, 65535), "3868", "Diameter port of the HSS")
HSS_PEER = Repeated(
    "hss-peer",
    diameter_peer(3868),
    "NAME=ADDRESS[:PORT] of an HSS (Diameter identity and where to reach it); turns on HSS mode",
)
HSS_REALM = Setting(
    "hss-realm",
    "hss_realm",
    host,
    help="Destination-Realm of Cx requests",
    default_help="home domain",
)
DIAMETER_IDENTITY = Setting(
    "diameter-identity",
    "hs_diameteridentity",
    host,
    help="Our Diameter identity (Origin-Host)",
    default_help="homestead.<home domain>",
)
DIAMETER_REALM = Setting(
    "diameter-realm",
    None,
    host,
    help="Our Diameter realm (Origin-Realm)",
    default_help="home domain",
)
DIAMETER_PORT = Setting(
    "diameter-port", None, port_number, "3868", "Port HSSs may connect to (on --local-ip); 0: none"
)
DIAMETER_WATCHDOG = Setting(
    "diameter-watchdog",
    "homestead_diameter_watchdog_timer",
    seconds(6, 3600),
    "6",
    "Seconds between Device-Watchdog requests to an idle HSS (Tw, RFC 3539: at least 6)",
)
DIAMETER_TIMEOUT = Setting(
    "diameter-timeout",
    None,
    seconds(0.01, 60),
    "0.2",
    "Seconds to wait for the HSS's answer (Clearwater's diameter_timeout_ms: 200 ms)",
)
HSS_REREGISTRATION_TIME = Setting(
    "hss-reregistration-time",
    "hss_reregistration_time",
    int_range(60, 86400),
    "1800",
    "Seconds after which a re-registration is told to the HSS again (cached twice as long)",
)
SPROUT_HTTP_NAME = Setting(
    "sprout-http-name",
    "sprout_http_name",
    _listen_host_port(9888),
    help="HOST[:PORT] of sprout's HTTP API, for the HSS's RTR and PPR",
    default_help="<sprout hostname>:9888",
)
HSS_TLS = Setting(
    "hss-tls",
    None,
    yes_no,
    "N",
    "Y: connect to the HSSs over TLS (RFC 6733 §2.1; see --diameter-tls-ca)",
)
CACHE_STORE = Setting(
    "cache-store",
    None,
    _cache_store,
    "memory:",
    "Where HSS answers are cached: memory:, memcached://HOST:PORT or redis://HOST:PORT/DB",
)


class HomesteadOptions(ConfigOptions):
    """Options of ``twistd homestead``; :meth:`config` returns the frozen result."""

    longdesc = (
        "Homestead: the subscriber data sprout reads over HTTP. HSS-less mode (the default): "
        "subscribers provisioned through homestead-prov's API (clearwater-provision). HSS mode "
        "(--hss-hostname or --hss-peer): answers from an HSS over Diameter Cx, cached. Options "
        "not given are read from --config files (Clearwater's shared_config format), else "
        "defaulted."
    )
    settings: ClassVar[tuple[AnySetting, ...]] = (
        HOME_DOMAIN,
        SPROUT_HOSTNAME,
        SCSCF_URI,
        LOCAL_IP,
        HTTP_PORT,
        PROV_ADDRESS,
        PROV_PORT,
        STORE,
        SUBSCRIBER_CACHE_TTL,
        HSS_HOSTNAME,
        HSS_PORT,
        HSS_PEER,
        HSS_REALM,
        DIAMETER_IDENTITY,
        DIAMETER_REALM,
        DIAMETER_PORT,
        DIAMETER_WATCHDOG,
        DIAMETER_TIMEOUT,
        HSS_REREGISTRATION_TIME,
        SPROUT_HTTP_NAME,
        CACHE_STORE,
        HSS_TLS,
        DIAMETER_TLS_CERT,
        DIAMETER_TLS_KEY,
        DIAMETER_TLS_CA,
        DIAMETER_TLS_PORT,
    )

    def __init__(self) -> None:
        super().__init__()
        self._config: Optional[HomesteadConfig] = None

    @override
    def postOptions(self) -> None:
        super().postOptions()
        home_domain = self.required_value(HOME_DOMAIN)
        hostname = self.value_or_derived(SPROUT_HOSTNAME, "sprout." + home_domain)
        http_port = self.required_value(HTTP_PORT)
        prov_port = self.required_value(PROV_PORT)
        if http_port and http_port == prov_port:
            raise usage.UsageError(f"--http-port and --prov-port both use port {http_port}")
        self._config = HomesteadConfig(
            home_domain=home_domain,
            sprout_hostname=hostname,
            scscf_uri=self.value_or_derived(SCSCF_URI, "sip:scscf." + hostname + ";transport=tcp"),
            local_ip=self.required_value(LOCAL_IP),
            http_port=http_port,
            prov_address=self.required_value(PROV_ADDRESS),
            prov_port=prov_port,
            store=self.value_or_derived(STORE, default_store()),
            subscriber_cache_ttl=self.required_value(SUBSCRIBER_CACHE_TTL),
            hss=self._hss(home_domain, hostname, http_port),
        )

    def _hss(self, home_domain: str, sprout_hostname: str, http_port: int) -> Optional[HssConfig]:
        hostname = self.setting_value(HSS_HOSTNAME)
        peers = self.repeated_values(HSS_PEER)
        if hostname is None and not peers:
            return None
        if hostname is not None and not any(p[0].lower() == hostname.lower() for p in peers):
            peers = ((hostname, hostname, self.required_value(HSS_PORT)), *peers)
        names = [p[0].lower() for p in peers]
        if len(set(names)) != len(names):
            raise usage.UsageError("--hss-peer names one HSS twice")
        hss_tls = self.required_value(HSS_TLS)
        diameter_port = self.required_value(DIAMETER_PORT)
        if diameter_port and diameter_port == http_port:
            raise usage.UsageError(f"--diameter-port and --http-port both use port {diameter_port}")
        return HssConfig(
            hss_realm=self.value_or_derived(HSS_REALM, home_domain),
            hss_hostname=hostname,
            peers=tuple(peers),
            diameter_identity=self.value_or_derived(DIAMETER_IDENTITY, "homestead." + home_domain),
            diameter_realm=self.value_or_derived(DIAMETER_REALM, home_domain),
            diameter_port=diameter_port,
            watchdog=self.required_value(DIAMETER_WATCHDOG),
            timeout=self.required_value(DIAMETER_TIMEOUT),
            reregistration_time=self.required_value(HSS_REREGISTRATION_TIME),
            sprout_http=self.value_or_derived(SPROUT_HTTP_NAME, sprout_hostname + ":9888"),
            cache_store=self.required_value(CACHE_STORE),
            hss_tls=hss_tls,
            tls=diameter_tls(self, hss_tls, "hss-tls"),
        )

    def config(self) -> HomesteadConfig:
        """The frozen configuration; only after :meth:`parseOptions` succeeded."""
        if self._config is None:
            raise RuntimeError("HomesteadOptions.config() before parseOptions()")
        return self._config


#: twistd's name for the options class (``ServiceMaker`` looks up ``options``).
Options = HomesteadOptions


def makeService(options: HomesteadOptions) -> IService:  # noqa: N802 (twistd's name)
    """The ``twistd homestead`` service tree (see :mod:`clearwater.services.homestead.service`)."""
    from twisted.internet import reactor

    from clearwater.services.homestead.service import make_service

    return make_service(options.config(), cast(ISipReactor, reactor))
