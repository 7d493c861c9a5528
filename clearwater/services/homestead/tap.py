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
"""

from __future__ import annotations

import os
from typing import ClassVar, Optional, cast

import attrs
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.errors import ParseError
from clearwater.services._options import (
    AnySetting,
    ConfigOptions,
    Setting,
    host,
    int_range,
    ip_address,
    port_number,
)
from clearwater.sip import parse_sip_uri
from clearwater.stores.urls import StoreUrl, parse_store_url

__all__ = ["HomesteadConfig", "HomesteadOptions", "Options", "default_store", "makeService"]


#: Where subscribers live when ``--store`` is not given.
def default_store() -> str:
    """``sqlite:`` in ``$XDG_DATA_HOME/clearwater`` (``~/.local/share/clearwater``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return "sqlite:" + os.path.join(base, "clearwater", "homestead.db")


def _store(text: str) -> StoreUrl:
    return parse_store_url(text, kinds=("memory", "sqlite", "redis"))


def _scscf_uri(text: str) -> str:
    try:
        return str(parse_sip_uri(text))
    except ParseError as e:
        raise ValueError(e.reason) from None


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


class HomesteadOptions(ConfigOptions):
    """Options of ``twistd homestead``; :meth:`config` returns the frozen result."""

    longdesc = (
        "Homestead (HSS-less mode): the subscriber data sprout reads over HTTP, provisioned "
        "through homestead-prov's API (clearwater-provision). Options not given are read from "
        "--config files (Clearwater's shared_config format), else defaulted."
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
