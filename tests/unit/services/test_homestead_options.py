"""Tests for ``twistd homestead``'s options and the subscriber store they open."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import TestCase

from clearwater._types import ISipReactor
from clearwater.services.homestead.service import open_subscriber_store
from clearwater.services.homestead.tap import HomesteadOptions
from clearwater.stores.cached import CachedSubscriberStore
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.sqlite import SqliteSubscriberStore
from clearwater.stores.urls import StoreUrl, parse_store_url

REACTOR = cast(ISipReactor, _reactor)


def test_subscriber_cache_ttl() -> None:
    options = HomesteadOptions()
    options.parseOptions(["--home-domain=example.com"])
    assert options.config().subscriber_cache_ttl == 10
    options = HomesteadOptions()
    options.parseOptions(["--home-domain=example.com", "--subscriber-cache-ttl=0"])
    assert options.config().subscriber_cache_ttl == 0
    with pytest.raises(usage.UsageError, match="--subscriber-cache-ttl"):
        HomesteadOptions().parseOptions(["--home-domain=example.com", "--subscriber-cache-ttl=x"])


class OpenSubscriberStoreTests(TestCase):
    async def test_sqlite_is_read_through_the_cache_unless_it_is_off(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        url = parse_store_url("sqlite:" + os.path.join(directory, "subscribers.db"))
        cached = open_subscriber_store(url, REACTOR, 5)
        try:
            assert isinstance(cached, CachedSubscriberStore)
            assert isinstance(cached.store, SqliteSubscriberStore)
        finally:
            await cached.close()
        plain = open_subscriber_store(url, REACTOR, 0)
        try:
            assert isinstance(plain, SqliteSubscriberStore)
        finally:
            await plain.close()


def test_memory_needs_no_cache() -> None:
    store = open_subscriber_store(StoreUrl("memory"), cast(ISipReactor, Clock()), 5)
    assert isinstance(store, MemorySubscriberStore)
