# -*- test-case-name: tests.unit.services.test_ralf_options -*-
"""The ``twistd ralf`` service tree (spec §6.4, §7.2).

:func:`build` assembles, from a frozen :class:`~clearwater.services.ralf.tap.RalfConfig`, a named
``MultiService`` (STYLE.md §2.4), started in this order and stopped in the reverse one:

- ``"sessions"``: the session store and the timer service. Starting it subscribes the
  :class:`~clearwater.ralf.session.RalfSessionManager` to interim timer pops; stopping it
  closes the timer service, then the store;
- ``"diameter"``: the :class:`~clearwater.diameter.node.DiameterNode` (Origin-Host
  ``--diameter-identity``, Origin-Realm ``--diameter-realm``) advertising Diameter base
  accounting (Acct-Application-Id 3) with the Rf dictionary, connected to every
  ``--billing-peer`` at start and to other CCFs on demand, listening on ``--local-ip`` and
  ``--diameter-port`` (3869; 0: none). Stopping it sends DPR to every peer;
- ``"http"``: ralf's HTTP API (:mod:`clearwater.http.ralf`) with ``/ping`` and ``/metrics`` on
  ``--local-ip`` and ``--http-port`` (10888).

Metrics (read from the manager's counters when scraped):

=============================================  =========  ====================================
name                                           labels     meaning
=============================================  =========  ====================================
``clearwater_ralf_requests_total``             type       billing requests handled, by record
                                                          type (event, start, interim, stop)
``clearwater_ralf_requests_completed_total``   outcome    ``success``, ``rejected``,
                                                          ``undelivered``, ``no_session``,
                                                          ``no_peers``, ``failed``
``clearwater_ralf_requests_in_progress``                  requests being handled (gauge)
``clearwater_ralf_ccf_failovers_total``                   moves to the next CCF
``clearwater_ralf_interim_pops_total``                    interim timer pops
``clearwater_ralf_timer_operations_total``     operation  ``set``, ``deleted``, ``failed``
``clearwater_ralf_cdf_peers_usable``                      Diameter peers usable now (gauge)
=============================================  =========  ====================================
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application import internet, service
from twisted.internet.defer import Deferred
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.diameter.apps import rf
from clearwater.diameter.dictionary import APP_ACCOUNTING
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.http.management import QuietSite
from clearwater.http.ralf import ralf_resource
from clearwater.ralf.session import CcfConnector, Outcome, RalfSessionManager
from clearwater.services._diameter import node_tls
from clearwater.services._stores import open_cas_store, open_timer_service
from clearwater.services.ralf.tap import RalfConfig
from clearwater.stores.interfaces import ICasStore, ITimerService

__all__ = ["RalfCollector", "SessionsService", "build", "make_service"]


class SessionsService(service.Service):
    """Subscribes the manager to interim timer pops on start; closes the timer service and
    the session store on stop."""

    def __init__(
        self, manager: RalfSessionManager, sessions: ICasStore, timers: ITimerService
    ) -> None:
        self.manager = manager
        self.sessions = sessions
        self.timers = timers

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.manager.start()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        d = self.timers.close()
        d.addBoth(lambda _: self.sessions.close())
        return d


class RalfCollector(Collector):
    """The ralf metrics (module docstring), from the manager's counters at scrape time."""

    def __init__(self, manager: RalfSessionManager, node: DiameterNode) -> None:
        self.manager = manager
        self.node = node

    @override
    def collect(self) -> Iterable[Metric]:
        manager = self.manager
        requests = CounterMetricFamily(
            "clearwater_ralf_requests", "Billing requests handled, by record type.", labels=["type"]
        )
        for kind in rf.AccountingRecordType:
            name = kind.name.lower()
            requests.add_metric([name], manager.requests[name])
        completed = CounterMetricFamily(
            "clearwater_ralf_requests_completed",
            "Billing requests finished, by outcome.",
            labels=["outcome"],
        )
        for outcome in Outcome:
            completed.add_metric([outcome.value], manager.outcomes[outcome])
        timers = CounterMetricFamily(
            "clearwater_ralf_timer_operations",
            "Interim timer operations, by kind.",
            labels=["operation"],
        )
        for operation in ("set", "deleted", "failed"):
            timers.add_metric([operation], manager.timers[operation])
        return [
            requests,
            completed,
            GaugeMetricFamily(
                "clearwater_ralf_requests_in_progress",
                "Billing requests being handled.",
                value=manager.in_flight,
            ),
            CounterMetricFamily(
                "clearwater_ralf_ccf_failovers", "Moves to the next CCF.", value=manager.failovers
            ),
            CounterMetricFamily(
                "clearwater_ralf_interim_pops", "Interim timer pops.", value=manager.interim_pops
            ),
            timers,
            GaugeMetricFamily(
                "clearwater_ralf_cdf_peers_usable",
                "Diameter peers usable now.",
                value=len(self.node.usable_peers()),
            ),
        ]


def build(
    config: RalfConfig,
    reactor: ISipReactor,
    sessions: ICasStore,
    timers: ITimerService,
    *,
    connect_timeout: float = 2.0,
) -> service.MultiService:
    """The ralf service tree for ``config`` keeping sessions in ``sessions`` and timers in
    ``timers``; ``connect_timeout`` is how long an ACR waits for a CCF's connection."""
    node = DiameterNode(
        reactor,
        config.diameter_identity,
        config.diameter_realm,
        [Application(APP_ACCOUNTING, accounting=True, dictionary=rf.RF)],
        peers=[
            PeerConfig(name, address, port, tls=config.billing_tls)
            for name, address, port in config.billing_peers
        ],
        listen=(config.diameter_port, config.local_ip) if config.diameter_port else None,
        watchdog_interval=config.watchdog,
        request_timeout=config.timeout,
        **node_tls(config.tls, config.local_ip),
    )
    connector = CcfConnector(
        node,
        reactor,
        peers={name: (address, port) for name, address, port in config.billing_peers},
        connect_timeout=connect_timeout,
        blacklist_duration=config.blacklist_duration,
        tls=config.billing_tls,
    )
    manager = RalfSessionManager(
        node,
        sessions,
        timers,
        origin_host=config.diameter_identity,
        origin_realm=config.diameter_realm,
        billing_realm=config.billing_realm,
        connector=connector,
        request_timeout=config.timeout,
    )
    top = service.MultiService()
    stores = SessionsService(manager, sessions, timers)
    stores.setName("sessions")  # type: ignore[no-untyped-call]
    stores.setServiceParent(top)  # type: ignore[no-untyped-call]
    node.setName("diameter")  # type: ignore[no-untyped-call]
    node.setServiceParent(top)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(RalfCollector(manager, node))
    site = QuietSite(ralf_resource(manager, registry=registry), reactor)
    http = internet.TCPServer(config.http_port, site, interface=config.local_ip, reactor=reactor)
    http.setName("http")
    http.setServiceParent(top)
    return top


def make_service(config: RalfConfig, reactor: ISipReactor) -> service.MultiService:
    """Open the stores ``config`` names and build the tree."""
    sessions = open_cas_store(config.session_store, reactor)
    timers = open_timer_service(config.timer_store, reactor)
    return build(config, reactor, sessions, timers)
