"""``twistd clearwater``: the all-in-one IMS core in one process (issue #6, ARCHITECTURE.md's
embedded default).

Sprout with its S-CSCF, homestead (HSS-less, subscribers in a SQLite file by default, so
nothing provisioned is lost on restart) with its API and the provisioning API, registrations
and challenges in memory (``--registration-store`` for Redis or memcached), and the phone port
(:mod:`clearwater.scscf.phones`): UDP and TCP on ``--phone-port`` (5060), TLS on
``--tls-port`` (5061) when ``--tls-cert`` and ``--tls-key`` are given. Every sprout option
applies (``twistd clearwater --help``); ``--hs-hostname`` does not (homestead is in here).
"""

from __future__ import annotations

from typing import ClassVar, Optional, cast

import attrs
from twisted.application import internet, service
from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.services._options import AnySetting, Setting, port_number
from clearwater.services.sprout.tap import SproutConfig, SproutOptions

__all__ = ["ClearwaterConfig", "ClearwaterOptions", "Options", "makeService"]


def _file(text: str) -> str:
    """A readable file (checked now, so a typo is a usage error naming the option)."""
    try:
        with open(text, "rb"):
            pass
    except OSError as e:
        raise ValueError(e.strerror or "cannot read") from None
    return text


PHONE_PORT = Setting(
    "phone-port", None, port_number, "5060", "Port phones use (UDP and TCP); untrusted"
)
TLS_PORT = Setting("tls-port", None, port_number, "5061", "TLS port for phones (with --tls-cert)")
TLS_CERT = Setting("tls-cert", None, _file, help="PEM certificate (chain) for the TLS port")
TLS_KEY = Setting("tls-key", None, _file, help="PEM private key for the TLS port")
HS_PORT = Setting("hs-port", None, port_number, "8888", "Homestead's API port; 0: none")
PROV_PORT = Setting("prov-port", None, port_number, "8889", "Provisioning API port; 0: none")


@attrs.frozen
class ClearwaterConfig:
    """The all-in-one's configuration: sprout's, plus the phone and homestead ports."""

    sprout: SproutConfig
    phone_port: int
    tls_port: int
    tls_cert: Optional[str]
    tls_key: Optional[str]
    hs_port: int
    prov_port: int


class ClearwaterOptions(SproutOptions):
    """Options of ``twistd clearwater``."""

    longdesc = (
        "The all-in-one IMS core: sprout (S-CSCF) with homestead and the provisioning API in one "
        "process. Phones register and call on --phone-port. Sprout's options all apply."
    )
    settings: ClassVar[tuple[AnySetting, ...]] = (
        PHONE_PORT,
        TLS_PORT,
        TLS_CERT,
        TLS_KEY,
        HS_PORT,
        PROV_PORT,
    )

    def __init__(self) -> None:
        super().__init__()
        self._all: Optional[ClearwaterConfig] = None

    @override
    def postOptions(self) -> None:
        super().postOptions()
        sprout = super().config()
        if sprout.hs_hostname is not None:
            raise usage.UsageError("--hs-hostname: homestead runs inside twistd clearwater")
        if not sprout.sproutlet("scscf").enabled:
            raise usage.UsageError("--scscf 0: the all-in-one needs its S-CSCF")
        cert, key = self.setting_value(TLS_CERT), self.setting_value(TLS_KEY)
        if (cert is None) != (key is None):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        phone = self.required_value(PHONE_PORT)
        tls = self.required_value(TLS_PORT) if cert else 0
        taken = {s.port: "--" + s.name for s in sprout.sproutlets if s.enabled}
        if sprout.sip_port:
            taken[sprout.sip_port] = "--sip-port"
        for option, port in (("--phone-port", phone), ("--tls-port", tls)):
            if port and port in taken:
                raise usage.UsageError(f"{option} and {taken[port]} both use port {port}")
        if tls and tls == phone:
            raise usage.UsageError("--tls-port and --phone-port both use port " + str(tls))
        self._all = ClearwaterConfig(
            sprout=sprout,
            phone_port=phone,
            tls_port=tls,
            tls_cert=cert,
            tls_key=key,
            hs_port=self.required_value(HS_PORT),
            prov_port=self.required_value(PROV_PORT),
        )

    def all_in_one(self) -> ClearwaterConfig:
        if self._all is None:
            raise RuntimeError("ClearwaterOptions.all_in_one() before parseOptions()")
        return self._all


#: twistd's name for the options class.
Options = ClearwaterOptions


def make_service(config: ClearwaterConfig, reactor: ISipReactor) -> service.MultiService:
    """Sprout (S-CSCF + phone port) and homestead's two APIs over one subscriber store."""
    from prometheus_client import CollectorRegistry

    from clearwater.homestead.hssless import HsslessHomestead
    from clearwater.http import QuietSite
    from clearwater.http.homestead import homestead_resource
    from clearwater.http.homestead_prov import homestead_prov_resource
    from clearwater.scscf.phones import PhonePortSproutlet
    from clearwater.services.homestead.service import StoreService, open_subscriber_store
    from clearwater.services.sprout.scscf import scscf_config
    from clearwater.services.sprout.service import EdgePort, build, load_plugins
    from clearwater.sip.sproutlet import PluginError
    from clearwater.sip.transport import TlsSettings

    sprout = config.sprout
    try:
        store = open_subscriber_store(sprout.subscriber_store, reactor, sprout.subscriber_cache_ttl)
    except ValueError as e:
        raise SystemExit("twistd clearwater: " + str(e)) from e
    top = service.MultiService()
    stores = StoreService(reactor, store, sprout.subscriber_store)
    stores.setName("subscribers")  # type: ignore[no-untyped-call]
    stores.setServiceParent(top)  # type: ignore[no-untyped-call]
    tls = None
    if config.tls_cert is not None:
        tls = TlsSettings(certificate=config.tls_cert, key=config.tls_key)
    edge = EdgePort(
        "phones",
        config.phone_port,
        lambda scscf: PhonePortSproutlet(
            scscf,
            host=sprout.local_ip,
            port=config.phone_port,
            tls_port=config.tls_port if tls is not None else 0,
        ),
        config.tls_port if tls is not None else 0,
        tls,
    )
    try:
        sip = build(sprout, reactor, load_plugins(sprout), edge=edge, subscribers=store)
    except (PluginError, ValueError) as e:
        raise SystemExit("twistd clearwater: " + str(e)) from e
    sip.setName("sprout")
    sip.setServiceParent(top)
    scscf = scscf_config(sprout)
    if config.hs_port:
        homestead = HsslessHomestead(
            store, scscf_uri=scscf.scscf_uri, home_domain=scscf.home_domain
        )
        site = QuietSite(homestead_resource(homestead, registry=CollectorRegistry()), reactor)
        http = internet.TCPServer(config.hs_port, site, interface=sprout.http_address,
                                  reactor=reactor)  # fmt: skip
        http.setName("homestead")
        http.setServiceParent(top)
    if config.prov_port:
        prov_site = QuietSite(homestead_prov_resource(store, scscf.home_domain, reactor=reactor),
                              reactor)  # fmt: skip
        prov = internet.TCPServer(config.prov_port, prov_site, interface=sprout.http_address,
                                  reactor=reactor)  # fmt: skip
        prov.setName("prov")
        prov.setServiceParent(top)
    return top


def makeService(options: ClearwaterOptions) -> IService:  # noqa: N802 (twistd's name)
    from twisted.internet import reactor

    from clearwater.services._gc import GcTuning

    top = make_service(options.all_in_one(), cast(ISipReactor, reactor))
    tuning = GcTuning(cast(ISipReactor, reactor))
    tuning.setName("gc")  # type: ignore[no-untyped-call]
    tuning.setServiceParent(top)  # type: ignore[no-untyped-call]
    return top
