"""The ``twistd sprout`` service tree: the sproutlet proxy and the management HTTP port.

:func:`build` assembles, from a frozen :class:`~clearwater.services.sprout.tap.SproutConfig`, a
named ``MultiService`` (STYLE.md §2.4):

- ``"sip"``, a :class:`SipService`: the :class:`~clearwater.sip.sproutlet.SproutletProxy` with
  the sproutlets the plugins loaded (spec §2.10), listening on UDP and TCP at ``--local-ip`` on
  ``--sip-port`` and on the port of every sproutlet that has one. The ports are bound before the
  reactor runs (``privilegedStartService``), so a port in use stops start-up. Stopping it is
  graceful: new dialogs and standalone requests are refused with 503 (the clients try another
  node), the transactions in progress finish (for at most :data:`QUIESCE_TIMEOUT` seconds), then
  the sockets close;
- ``"http"``: ``GET /ping`` and ``GET /metrics`` (ARCHITECTURE.md §6) on ``--http-address``
  (loopback by default) and ``--http-port`` (9888; 0: none);
- ``"gc"`` (from :func:`make_service`): CPython's garbage collector tuned for lingering
  transactions (:mod:`clearwater.services._gc`).

The built-in sproutlets (S-CSCF, I-CSCF, BGCF, the application servers) come with later issues;
their options are accepted already. Until then sprout hosts the plugins' sproutlets and proxies
everything else on by its Route or Request-URI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import attrs
from twisted.application import internet, service
from twisted.internet.defer import Deferred, TimeoutError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.http import management_site
from clearwater.http.sprout import sprout_site
from clearwater.metrics import SipMetrics
from clearwater.scscf import ScscfConfig
from clearwater.services._gc import GcTuning
from clearwater.services.sprout.scscf import scscf_config, scscf_sproutlets
from clearwater.services.sprout.tap import SproutConfig
from clearwater.sip import SipUri
from clearwater.sip.sproutlet import (
    PluginError,
    Sproutlet,
    SproutletProxy,
    discover,
    load_sproutlets,
    parse_plugin_option,
)
from clearwater.sip.transaction import TimerSettings
from clearwater.sip.transport import TlsSettings, TransportSettings
from clearwater.stores.interfaces import ISubscriberStore

__all__ = [
    "QUIESCE_TIMEOUT",
    "EdgePort",
    "SipService",
    "build",
    "listening_ports",
    "load_plugins",
    "make_service",
]

_log = Logger()

#: How long a graceful stop waits for the transactions in progress (64*T1, RFC 3261 §17).
QUIESCE_TIMEOUT = 32.0


def load_plugins(config: SproutConfig) -> list[Sproutlet]:
    """The sproutlets of every plugin (spec §2.10). Raises :class:`PluginError`."""
    plugins = discover(config.plugin_paths)
    options = [parse_plugin_option(text) for text in config.plugin_options]
    return load_sproutlets(plugins, options)


def listening_ports(config: SproutConfig, sproutlets: Sequence[Sproutlet]) -> list[int]:
    """``--sip-port`` and the sproutlets' ports, each once, in that order."""
    ports = [config.sip_port] if config.sip_port else []
    for sproutlet in sproutlets:
        if sproutlet.port and sproutlet.port not in ports:
            ports.append(sproutlet.port)
    return ports


class SipService(service.Service):
    """The sproutlet proxy as a service: listens before the reactor runs, stops gracefully."""

    def __init__(
        self,
        reactor: ISipReactor,
        proxy: SproutletProxy,
        listen: Sequence[str],
        *,
        quiesce_timeout: float = QUIESCE_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.proxy = proxy
        self.listen = tuple(listen)
        self.quiesce_timeout = quiesce_timeout
        self._listening = False

    @override
    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self._listen()

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._listen()

    def _listen(self) -> None:
        if self._listening:
            return
        self._listening = True
        for spec in self.listen:
            bound = self.proxy.listen(spec)
            _log.info("sprout listening on {spec}", spec=str(bound))

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        active = self.proxy.active_transactions
        if active:
            _log.info("sprout quiescing: {count} transactions in progress", count=active)
        d = self.proxy.quiesce()
        d.addTimeout(self.quiesce_timeout, self.reactor)
        d.addErrback(self._gave_up)
        d.addCallback(lambda _: self.proxy.stop())
        d.addCallback(lambda _: None)
        return d

    def _gave_up(self, reason: Failure) -> None:
        if not isinstance(reason.value, TimeoutError):
            _log.failure("sprout: graceful stop failed", reason)
            return
        _log.warn(
            "sprout stopped with {count} transactions unfinished",
            count=self.proxy.active_transactions,
        )


def build(
    config: SproutConfig,
    reactor: ISipReactor,
    sproutlets: Sequence[Sproutlet],
    *,
    metrics: Optional[SipMetrics] = None,
    edge: Optional[EdgePort] = None,
    subscribers: Optional[ISubscriberStore] = None,
) -> service.MultiService:
    """The sprout service tree for ``config`` hosting the built-in sproutlets (the S-CSCF
    unless ``--scscf 0``) and ``sproutlets`` (the plugins'). ``edge`` adds an untrusted port
    owned by one sproutlet (the all-in-one's phone port); ``subscribers`` is the in-process
    homestead's store when the caller opened it.

    Raises ValueError when there is nothing to listen on or two sproutlets clash.
    """
    proxies: list[SproutletProxy] = []
    scscf = scscf_sproutlets(
        config,
        reactor,
        lambda r: proxies[0].originate(r),
        subscribers=subscribers,
        authenticate_auto_reg=edge is not None,
    )
    sproutlets = [*(scscf.sproutlets if scscf else ()), *sproutlets]
    if edge is not None:
        sproutlets.append(edge.make(scscf_config(config)))
    ports = listening_ports(config, sproutlets)
    if not ports:
        raise ValueError(
            "nothing to listen on: give --sip-port or load a sproutlet that has a port"
        )
    metrics = metrics or SipMetrics("sprout")
    local_hosts = [
        config.local_ip,
        config.home_domain,
        *config.additional_home_domains,
        *config.local_aliases,
        *(host for host in (config.public_ip, config.public_hostname) if host),
    ]
    proxy = SproutletProxy(
        reactor,
        sproutlets,
        hostname=config.sprout_hostname,
        local_hosts=local_hosts,
        remote_hosts=config.remote_aliases,
        root_uri=SipUri(config.sprout_hostname, port=ports[0]),
        max_sproutlet_depth=config.max_sproutlet_depth,
        always_serve_remote_aliases=config.always_serve_remote_aliases,
        timer_settings=TimerSettings(timer_c=float(config.timer_c)),
        observer=metrics,
        edge_ports=dict.fromkeys(edge.ports, edge.name) if edge is not None else None,
        transport_settings=TransportSettings(tls=edge.tls) if edge and edge.tls else None,
    )
    proxies.append(proxy)
    host = config.local_ip
    bracketed = "[" + host + "]" if ":" in host else host
    listen = [t + ":" + bracketed + ":" + str(port) for port in ports for t in ("udp", "tcp")]
    if edge is not None and edge.tls_port:
        listen.append("tls:" + bracketed + ":" + str(edge.tls_port))
    top = service.MultiService()
    if scscf is not None:  # started first, so stopped last: after the SIP side quiesced
        scscf.stores.setName("stores")  # type: ignore[no-untyped-call]
        scscf.stores.setServiceParent(top)  # type: ignore[no-untyped-call]
    sip = SipService(reactor, proxy, listen)
    sip.setName("sip")  # type: ignore[no-untyped-call]
    sip.setServiceParent(top)  # type: ignore[no-untyped-call]
    if config.http_port:
        site: Site
        if scscf is not None:
            site = sprout_site(
                metrics.registry, scscf.manager, challenges=scscf.challenges, reactor=reactor
            )
        else:
            site = management_site(metrics.registry, reactor=reactor)
        http = internet.TCPServer(
            config.http_port, site, interface=config.http_address, reactor=reactor
        )
        http.setName("http")
        http.setServiceParent(top)
    return top


@attrs.frozen
class EdgePort:
    """Untrusted ports owned by one sproutlet (``SproutletProxy(edge_ports=...)``): ``port``
    (UDP and TCP; the sproutlet's own) and ``tls_port`` (TLS with ``tls``; 0: none). ``make``
    builds the sproutlet from the S-CSCF's settings."""

    name: str
    port: int
    make: Callable[[ScscfConfig], Sproutlet]
    tls_port: int = 0
    tls: Optional[TlsSettings] = None

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.tls_port) if self.tls_port else (self.port,)


def make_service(config: SproutConfig, reactor: ISipReactor) -> service.MultiService:
    """Load the plugins and build the tree; a failure is a SystemExit naming its cause, as
    sprout refused to start (spec §2.10)."""
    try:
        sproutlets = load_plugins(config)
        top = build(config, reactor, sproutlets)
    except (PluginError, ValueError) as e:
        raise SystemExit("twistd sprout: " + str(e)) from e
    tuning = GcTuning(reactor)
    tuning.setName("gc")  # type: ignore[no-untyped-call]
    tuning.setServiceParent(top)  # type: ignore[no-untyped-call]
    return top
