"""Opening the stores a network function's ``--*-store`` URL names (ARCHITECTURE.md §3)."""

from __future__ import annotations

from clearwater._types import ISipReactor
from clearwater.stores.interfaces import ICasStore, ITimerService
from clearwater.stores.urls import StoreUrl

__all__ = ["open_cas_store", "open_timer_service"]


def open_cas_store(url: StoreUrl, reactor: ISipReactor) -> ICasStore:
    """The key-value store of ``url``: Redis, memcached, else memory (the caller closes it)."""
    if url.kind == "redis":
        from clearwater.stores.redis import RedisCasStore, connect

        return RedisCasStore(connect(reactor, url.host, url.port, url.db))  # type: ignore[arg-type]
    if url.kind == "memcached":
        from clearwater.stores.memcached import MemcachedCasStore

        return MemcachedCasStore(reactor, url.host, url.port)  # type: ignore[arg-type]
    from clearwater.stores.memory import MemoryCasStore

    return MemoryCasStore(reactor)


def open_timer_service(url: StoreUrl, reactor: ISipReactor) -> ITimerService:
    """The timer service of ``url``: Redis, else memory (the caller closes it)."""
    if url.kind == "redis":
        from clearwater.stores.redis import RedisTimerService, connect

        client = connect(reactor, url.host, url.port, url.db)  # type: ignore[arg-type]
        return RedisTimerService(client, reactor)
    from clearwater.stores.memory import MemoryTimerService

    return MemoryTimerService(reactor)
