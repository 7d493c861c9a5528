"""The ``twistd homestead`` service tree (HSS-less mode, spec §6.1 and §6.6).

:func:`build` assembles, from a frozen :class:`~clearwater.services.homestead.tap.HomesteadConfig`,
a named ``MultiService`` (STYLE.md §2.4):

- ``"store"``: the subscriber store ``--store`` names, opened before the ports; a store that
  cannot be opened stops homestead with a critical log line naming it. Closed last on stop;
- ``"http"``: the homestead API (``/impi/...``, ``/impu/...``) with ``/ping`` and ``/metrics``
  on ``--local-ip`` and ``--http-port`` (8888; 0: none);
- ``"prov"``: homestead-prov's provisioning API on ``--prov-address`` (loopback) and
  ``--prov-port`` (8889; 0: none).

In HSS mode (:class:`~clearwater.services.homestead.tap.HssConfig`) :func:`build_hss` makes
instead:

- ``"cache"``: the ``--cache-store`` the HSS's answers are kept in, closed last;
- ``"diameter"``: the :class:`~clearwater.diameter.node.DiameterNode` (Cx, vendor 10415)
  connecting to each HSS and listening on ``--local-ip`` and ``--diameter-port``; it answers
  the HSS's RTR and PPR through :meth:`~clearwater.homestead.hss.HssHomestead.handle_cx_request`,
  which calls sprout's HTTP API at ``--sprout-http-name``. Stopping it sends DPR;
- ``"http"``: the same homestead API, answered by
  :class:`~clearwater.homestead.hss.HssHomestead`.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, cast

from prometheus_client import CollectorRegistry
from twisted.application import internet, service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.homestead.hssless import HsslessHomestead
from clearwater.http.homestead import homestead_resource
from clearwater.http.homestead_prov import homestead_prov_resource
from clearwater.http.management import QuietSite
from clearwater.services._diameter import node_tls
from clearwater.services._stores import open_cas_store
from clearwater.services.homestead.tap import HomesteadConfig, HssConfig
from clearwater.stores.cached import DEFAULT_CACHE_TTL, CachedSubscriberStore
from clearwater.stores.interfaces import ISubscriberStore
from clearwater.stores.urls import StoreUrl

__all__ = ["StoreService", "build", "make_service", "open_subscriber_store"]

_log = Logger()


def open_subscriber_store(
    url: StoreUrl, reactor: ISipReactor, cache_ttl: float = DEFAULT_CACHE_TTL
) -> ISubscriberStore:
    """The subscriber store ``url`` names (opening completes in the background: the first
    operation waits for it and fails if it failed), SQLite and Redis read through a cache of
    ``cache_ttl`` seconds (:mod:`clearwater.stores.cached`; 0: none). Raises ValueError for a
    kind that holds no subscribers or a SQLite directory that cannot be made."""
    store = _open_subscriber_store(url, reactor)
    if url.kind == "memory" or cache_ttl <= 0:
        return store
    return CachedSubscriberStore(store, reactor, ttl=cache_ttl)


def _open_subscriber_store(url: StoreUrl, reactor: ISipReactor) -> ISubscriberStore:
    if url.kind == "memory":
        from clearwater.stores.memory import MemorySubscriberStore

        return MemorySubscriberStore()
    if url.kind == "sqlite":
        from clearwater.stores.sqlite import SqliteSubscriberStore

        directory = os.path.dirname(url.path)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot make the directory of {url}: {e.strerror}") from None
        return SqliteSubscriberStore(reactor, url.path)  # type: ignore[arg-type]
    if url.kind == "redis":
        from clearwater.stores.redis import RedisSubscriberStore, connect

        return RedisSubscriberStore(connect(reactor, url.host, url.port, url.db))  # type: ignore[arg-type]
    raise ValueError(f"{url.kind} cannot hold subscribers")


class StoreService(service.Service):
    """Checks the store opened when homestead starts; closes it when homestead stops."""

    def __init__(self, reactor: ISipReactor, store: ISubscriberStore, url: StoreUrl) -> None:
        self.reactor = reactor
        self.store = store
        self.url = url

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        # Any read proves the store usable (and waits for a SQLite file to open).
        self.store.get_private("").addCallbacks(self._opened, self._failed)

    def _opened(self, _: object) -> None:
        _log.info("homestead: subscribers in {url}", url=str(self.url))

    def _failed(self, reason: Failure) -> None:
        _log.critical(
            "homestead: cannot use the store {url}: {error}", url=str(self.url), error=reason.value
        )
        reactor = cast(IReactorCore, self.reactor)
        # twistd exits 0 after reactor.stop(); a supervisor must see a failure.
        reactor.addSystemEventTrigger("after", "shutdown", _exit_failed)
        reactor.stop()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.store.close()


def build(
    config: HomesteadConfig, reactor: ISipReactor, store: ISubscriberStore
) -> service.MultiService:
    """The homestead service tree for ``config`` serving subscribers from ``store``."""
    top = service.MultiService()
    stores = StoreService(reactor, store, config.store)
    stores.setName("store")  # type: ignore[no-untyped-call]
    stores.setServiceParent(top)  # type: ignore[no-untyped-call]
    if config.http_port:
        homestead = HsslessHomestead(
            store, scscf_uri=config.scscf_uri, home_domain=config.home_domain
        )
        root = homestead_resource(homestead, registry=CollectorRegistry())
        site = QuietSite(root, reactor)
        http = internet.TCPServer(
            config.http_port, site, interface=config.local_ip, reactor=reactor
        )
        http.setName("http")
        http.setServiceParent(top)
    if config.prov_port:
        prov_root = homestead_prov_resource(store, config.home_domain, reactor=reactor)
        prov_site = QuietSite(prov_root, reactor)
        prov = internet.TCPServer(
            config.prov_port, prov_site, interface=config.prov_address, reactor=reactor
        )
        prov.setName("prov")
        prov.setServiceParent(top)
    return top


class _Closing(service.Service):
    """Closes a store when homestead stops."""

    def __init__(self, close: Callable[[], Deferred[None]]) -> None:
        self.close = close

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.close()


def build_hss(
    config: HomesteadConfig, hss: HssConfig, reactor: ISipReactor
) -> service.MultiService:
    """The homestead service tree of HSS mode."""
    from twisted.web.client import Agent, HTTPConnectionPool

    from clearwater.diameter.apps.cx import CX
    from clearwater.diameter.dictionary import APP_CX, VENDOR_3GPP
    from clearwater.diameter.node import Application, DiameterNode, PeerConfig
    from clearwater.homestead.hss import HssHomestead
    from clearwater.http.sprout_client import SproutClient

    top = service.MultiService()
    cache = open_cas_store(hss.cache_store, reactor)
    closing = _Closing(cache.close)
    closing.setName("cache")  # type: ignore[no-untyped-call]
    closing.setServiceParent(top)  # type: ignore[no-untyped-call]
    node = DiameterNode(
        reactor,
        hss.diameter_identity,
        hss.diameter_realm,
        [Application(APP_CX, VENDOR_3GPP, dictionary=CX)],
        peers=[
            PeerConfig(name, address, port, tls=hss.hss_tls) for name, address, port in hss.peers
        ],
        listen=(hss.diameter_port, config.local_ip) if hss.diameter_port else None,
        watchdog_interval=hss.watchdog,
        request_timeout=hss.timeout,
        **node_tls(hss.tls, config.local_ip),
    )
    node.setName("diameter")  # type: ignore[no-untyped-call]
    node.setServiceParent(top)  # type: ignore[no-untyped-call]
    pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
    sprout_host, sprout_port = hss.sprout_http
    bracketed = "[" + sprout_host + "]" if ":" in sprout_host else sprout_host
    sprout = SproutClient(
        Agent(reactor, pool=pool),  # type: ignore[no-untyped-call]
        reactor,
        f"http://{bracketed}:{sprout_port}",
    )
    homestead = HssHomestead(
        node,
        cache,
        sprout,
        hss_realm=hss.hss_realm,
        hss_host=hss.hss_hostname,
        server_name=config.scscf_uri,
        home_domain=config.home_domain,
        reregistration_time=hss.reregistration_time,
        timeout=hss.timeout,
    )
    node.set_handler(APP_CX, homestead.handle_cx_request)
    if config.http_port:
        root = homestead_resource(homestead, registry=CollectorRegistry())
        http = internet.TCPServer(
            config.http_port, QuietSite(root, reactor), interface=config.local_ip, reactor=reactor
        )
        http.setName("http")
        http.setServiceParent(top)
    return top


def make_service(config: HomesteadConfig, reactor: ISipReactor) -> service.MultiService:
    """Open the store and build the tree; a store that cannot be opened is a SystemExit
    naming it."""
    if config.hss is not None:
        return build_hss(config, config.hss, reactor)
    try:
        store = open_subscriber_store(config.store, reactor, config.subscriber_cache_ttl)
    except ValueError as e:
        raise SystemExit("twistd homestead: " + str(e)) from e
    return build(config, reactor, store)


def _exit_failed() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
