"""``twistd ralf`` options (spec §6.4, §7.2, §8; issue #8).

Ralf takes billing events over HTTP (port 10888) and sends them to CDFs as Diameter Rf ACRs
(:mod:`clearwater.ralf.session`). ARCHITECTURE.md §4: command line beats ``--config`` file beats
default, validated once, then frozen in :class:`RalfConfig`.

Names follow Clearwater's where it has them (``--billing-realm``, ``--billing-peer``; the
``shared_config`` keys ``home_domain``, ``local_ip``, ``billing_realm``,
``ralf_diameteridentity``, ``ralf_diameter_watchdog_timer``, ``diameter_blacklist_duration``).
Where Clearwater differs:

- ``--billing-peer`` is repeatable and may say where a CCF is: ``NAME=ADDRESS[:PORT]`` (port
  3868). Clearwater's single ``--billing-peer NAME`` (a fallback peer reached at its name) is
  also accepted. Every listed peer is connected to at start; a CCF a request names that is not
  listed is connected to at its name, port 3868, when first used;
- sessions are kept in ``--session-store`` (``memory:``, ``memcached://`` or ``redis://``;
  Clearwater's ``ralf_session_store`` was a memcached host list) and interim timers in
  ``--timer-store`` (``memory:`` or ``redis://``, in the place of Chronos);
- ``--diameter-timeout`` is in seconds (Clearwater's ``diameter_timeout_ms``: 200 ms).
"""

from __future__ import annotations

from typing import ClassVar, Optional, cast

import attrs
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
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
from clearwater.stores.urls import StoreUrl, parse_store_url

__all__ = ["Options", "RalfConfig", "RalfOptions", "makeService"]

#: Ralf's HTTP port (ralf ``src/main.cpp``) and Diameter port (spec §1.3).
DEFAULT_HTTP_PORT = 10888
DEFAULT_DIAMETER_PORT = 3869


_peer_with_address = diameter_peer(3868)


def _billing_peer(text: str) -> tuple[str, str, int]:
    """``NAME=ADDRESS[:PORT]``, or Clearwater's bare ``NAME`` (reached at NAME, port 3868)."""
    if "=" in text:
        return _peer_with_address(text)
    name = host(text)
    return name, name, 3868


def _session_store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "memcached", "redis"))


def _timer_store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "redis"))


@attrs.frozen
class RalfConfig:
    """Ralf's validated configuration: what ``makeService`` builds from."""

    home_domain: str
    local_ip: str
    http_port: int
    diameter_identity: str
    diameter_realm: str
    diameter_port: int  # 0: do not listen
    billing_realm: str
    billing_peers: tuple[tuple[str, str, int], ...]  # (identity, address, port), in order
    session_store: StoreUrl
    timer_store: StoreUrl
    watchdog: float  # seconds (Tw)
    timeout: float  # seconds, each ACR
    blacklist_duration: float  # seconds
    billing_tls: bool = False  # connect to CDFs over TLS
    tls: Optional[DiameterTls] = None  # None: no TLS at all


HOME_DOMAIN = Setting("home-domain", "home_domain", host, help="Home domain (required)")
LOCAL_IP = Setting(
    "local-ip",
    "local_ip",
    ip_address,
    "127.0.0.1",
    "Address the HTTP API and the Diameter port bind to",
)
HTTP_PORT = Setting(
    "http-port", None, int_range(1, 65535), str(DEFAULT_HTTP_PORT), "Port of ralf's HTTP API"
)
DIAMETER_IDENTITY = Setting(
    "diameter-identity",
    "ralf_diameteridentity",
    host,
    help="Our Diameter identity (Origin-Host)",
    default_help="ralf.<home domain>",
)
DIAMETER_REALM = Setting(
    "diameter-realm",
    None,
    host,
    help="Our Diameter realm (Origin-Realm)",
    default_help="home domain",
)
DIAMETER_PORT = Setting(
    "diameter-port",
    None,
    port_number,
    str(DEFAULT_DIAMETER_PORT),
    "Port CDFs may connect to (on --local-ip); 0: none",
)
BILLING_REALM = Setting(
    "billing-realm",
    "billing_realm",
    host,
    help="Destination-Realm of ACRs",
    default_help="home domain",
)
BILLING_PEER = Repeated(
    "billing-peer",
    _billing_peer,
    "NAME=ADDRESS[:PORT] of a CDF (its Diameter identity and where to reach it, port 3868), "
    "connected to at start; a bare NAME is reached at NAME",
)
SESSION_STORE = Setting(
    "session-store",
    None,
    _session_store,
    "memory:",
    "Where Rf sessions are kept: memory:, memcached://HOST:PORT or redis://HOST:PORT/DB",
)
TIMER_STORE = Setting(
    "timer-store",
    None,
    _timer_store,
    "memory:",
    "Where interim timers are kept: memory: or redis://HOST:PORT/DB",
)
DIAMETER_WATCHDOG = Setting(
    "diameter-watchdog",
    "ralf_diameter_watchdog_timer",
    seconds(6, 3600),
    "6",
    "Seconds between Device-Watchdog requests to an idle CDF (Tw, RFC 3539: at least 6)",
)
DIAMETER_TIMEOUT = Setting(
    "diameter-timeout",
    None,
    seconds(0.01, 60),
    "0.2",
    "Seconds to wait for a CDF's answer before trying the next CCF "
    "(Clearwater's diameter_timeout_ms: 200 ms)",
)
BILLING_TLS = Setting(
    "billing-tls",
    None,
    yes_no,
    "N",
    "Y: connect to the CDFs over TLS (RFC 6733 §2.1; see --diameter-tls-ca)",
)
DIAMETER_BLACKLIST_DURATION = Setting(
    "diameter-blacklist-duration",
    "diameter_blacklist_duration",
    seconds(0, 3600),
    "30",
    "Seconds a CCF that could not be connected to is skipped at once",
)


class RalfOptions(ConfigOptions):
    """Options of ``twistd ralf``; :meth:`config` returns the frozen result."""

    longdesc = (
        "Ralf: takes billing events from sprout over HTTP (POST /call-id/<id>) and sends them "
        "to CDFs as Diameter Rf accounting requests, with sessions, interim timers and CCF "
        "fail-over. Options not given are read from --config files (Clearwater's "
        "shared_config format), else defaulted."
    )
    settings: ClassVar[tuple[AnySetting, ...]] = (
        HOME_DOMAIN,
        LOCAL_IP,
        HTTP_PORT,
        DIAMETER_IDENTITY,
        DIAMETER_REALM,
        DIAMETER_PORT,
        BILLING_REALM,
        BILLING_PEER,
        SESSION_STORE,
        TIMER_STORE,
        DIAMETER_WATCHDOG,
        DIAMETER_TIMEOUT,
        DIAMETER_BLACKLIST_DURATION,
        BILLING_TLS,
        DIAMETER_TLS_CERT,
        DIAMETER_TLS_KEY,
        DIAMETER_TLS_CA,
        DIAMETER_TLS_PORT,
    )

    def __init__(self) -> None:
        super().__init__()
        self._config: Optional[RalfConfig] = None

    @override
    def postOptions(self) -> None:
        super().postOptions()
        home_domain = self.required_value(HOME_DOMAIN)
        http_port = self.required_value(HTTP_PORT)
        diameter_port = self.required_value(DIAMETER_PORT)
        if diameter_port == http_port:
            raise usage.UsageError(f"--diameter-port and --http-port both use port {http_port}")
        billing_tls = self.required_value(BILLING_TLS)
        peers = self.repeated_values(BILLING_PEER)
        names = [name.lower() for name, _, _ in peers]
        for name in names:
            if names.count(name) > 1:
                raise usage.UsageError(f"--billing-peer {name} given twice")
        self._config = RalfConfig(
            home_domain=home_domain,
            local_ip=self.required_value(LOCAL_IP),
            http_port=http_port,
            diameter_identity=self.value_or_derived(DIAMETER_IDENTITY, "ralf." + home_domain),
            diameter_realm=self.value_or_derived(DIAMETER_REALM, home_domain),
            diameter_port=diameter_port,
            billing_realm=self.value_or_derived(BILLING_REALM, home_domain),
            billing_peers=tuple(peers),
            session_store=self.required_value(SESSION_STORE),
            timer_store=self.required_value(TIMER_STORE),
            watchdog=self.required_value(DIAMETER_WATCHDOG),
            timeout=self.required_value(DIAMETER_TIMEOUT),
            blacklist_duration=self.required_value(DIAMETER_BLACKLIST_DURATION),
            billing_tls=billing_tls,
            tls=diameter_tls(self, billing_tls, "billing-tls"),
        )

    def config(self) -> RalfConfig:
        """The frozen configuration; only after :meth:`parseOptions` succeeded."""
        if self._config is None:
            raise RuntimeError("RalfOptions.config() before parseOptions()")
        return self._config


#: twistd's name for the options class (``ServiceMaker`` looks up ``options``).
Options = RalfOptions


def makeService(options: RalfOptions) -> IService:  # noqa: N802 (twistd's name)
    """The ``twistd ralf`` service tree (see :mod:`clearwater.services.ralf.service`)."""
    from twisted.internet import reactor

    from clearwater.services.ralf.service import make_service

    return make_service(options.config(), cast(ISipReactor, reactor))
