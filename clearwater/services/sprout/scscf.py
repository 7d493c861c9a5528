"""The built-in S-CSCF of ``twistd sprout`` (issue #6): its stores, homestead and timers,
opened from the options, and the :class:`StoresService` that closes them at the end.

- registrations (``--registration-store``) and challenges (``--impi-store``, default the
  same): in memory, on Redis or on memcached, as Clearwater's JSON records;
- timers: on Redis when the registration store is (so any node pops them, and they survive a
  restart), else in memory;
- homestead: over HTTP at ``--hs-hostname``, or, with none, in process over
  ``--subscriber-store`` (what ``twistd homestead`` would serve from the same store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.homestead.hssless import HsslessHomestead
from clearwater.http.homestead_client import HomesteadClient
from clearwater.scscf import ScscfConfig, build_scscf
from clearwater.scscf.hss import Homestead
from clearwater.scscf.subscribers import Sender, SubscriberManager
from clearwater.services._stores import open_cas_store, open_timer_service
from clearwater.services.sprout.tap import SproutConfig
from clearwater.sip.sproutlet import Sproutlet
from clearwater.stores.interfaces import (
    ICasStore,
    IChallengeStore,
    ISubscriberStore,
    ITimerService,
)
from clearwater.stores.typed import ChallengeStore, RegistrationStore
from clearwater.stores.urls import StoreUrl

__all__ = ["Scscf", "StoresService", "scscf_config", "scscf_sproutlets"]

_log = Logger()


class StoresService(service.Service):
    """Closes what the S-CSCF opened (stores, timers) when sprout stops."""

    def __init__(self) -> None:
        self.closers: list[Callable[[], Deferred[Any]]] = []

    @override
    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        return DeferredList([close() for close in self.closers], consumeErrors=True)


def scscf_config(config: SproutConfig) -> ScscfConfig:
    """The S-CSCF's settings from sprout's."""
    local = [config.local_ip, config.sprout_hostname, *config.local_aliases]
    local += [h for h in (config.public_ip, config.public_hostname) if h]
    return ScscfConfig(
        home_domains=(config.home_domain, *config.additional_home_domains),
        scscf_uri=str(config.sproutlet("scscf").uri),
        reg_max_expires=config.reg_max_expires,
        sub_max_expires=config.sub_max_expires,
        authentication=config.authentication,
        nonce_count_supported=config.nonce_count_supported,
        non_register_authentication=config.non_register_authentication,
        digest_algorithms=config.digest_algorithms,
        local_hosts=tuple(local),
        reg_min_expires=config.reg_min_expires,
        reg_event_partial_state=config.reg_event_partial_state,
        session_expires=config.default_session_expires,
    )


def _cas_store(url: StoreUrl, reactor: ISipReactor, closers: StoresService) -> ICasStore:
    store = open_cas_store(url, reactor)
    closers.closers.append(store.close)
    return store


def _timers(url: StoreUrl, reactor: ISipReactor, closers: StoresService) -> ITimerService:
    timers = open_timer_service(url, reactor)
    closers.closers.append(timers.close)
    return timers


def _homestead(
    config: SproutConfig,
    scscf: ScscfConfig,
    reactor: ISipReactor,
    closers: StoresService,
    subscribers: Optional[ISubscriberStore],
) -> Homestead:
    if config.hs_hostname is not None:
        host, port = config.hs_hostname
        pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        closers.closers.append(pool.closeCachedConnections)
        bracketed = "[" + host + "]" if ":" in host else host
        return HomesteadClient(
            reactor,
            Agent(reactor, pool=pool),  # type: ignore[no-untyped-call]
            ["http://" + bracketed + ":" + str(port)],
            timeout=config.homestead_timeout,
        )
    store = subscribers
    if store is None:
        from clearwater.services.homestead.service import open_subscriber_store

        store = open_subscriber_store(config.subscriber_store, reactor, config.subscriber_cache_ttl)
        closers.closers.append(store.close)
    return HsslessHomestead(store, scscf_uri=scscf.scscf_uri, home_domain=scscf.home_domain)


@attrs.frozen
class Scscf:
    """What :func:`scscf_sproutlets` built: the sproutlets, first stage first; the service
    closing their stores; the subscriber manager and the challenge store (for sprout's HTTP
    API)."""

    sproutlets: tuple[Sproutlet, ...]
    stores: StoresService
    manager: SubscriberManager
    challenges: IChallengeStore


def scscf_sproutlets(
    config: SproutConfig,
    reactor: ISipReactor,
    send: Sender,
    *,
    subscribers: Optional[ISubscriberStore] = None,
    authenticate_auto_reg: bool = False,
) -> Optional[Scscf]:
    """The S-CSCF when ``--scscf`` is not 0 (else None). ``subscribers``: the in-process
    homestead's store, when the caller opened (and closes) it."""
    settings = config.sproutlet("scscf")
    if not settings.enabled:
        return None
    stores = StoresService()
    scscf = attrs.evolve(scscf_config(config), authenticate_auto_reg=authenticate_auto_reg)
    registrations = _cas_store(config.registration_store, reactor, stores)
    if config.impi_store == config.registration_store:
        impis = registrations
    else:
        impis = _cas_store(config.impi_store, reactor, stores)
    challenges = ChallengeStore(impis)
    sproutlets, manager = build_scscf(
        scscf,
        _homestead(config, scscf, reactor, stores, subscribers),
        RegistrationStore(registrations),
        challenges,
        _timers(config.registration_store, reactor, stores),
        reactor,
        send,
        service_name=settings.name,
        port=settings.port,
        uri=str(settings.uri),
    )
    return Scscf(tuple(sproutlets), stores, manager, challenges)
