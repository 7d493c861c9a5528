"""Tests for :mod:`clearwater.stores.cached`: the ISubscriberStore contract through the cache,
and what the cache keeps, for how long, and what forgets it."""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional, cast

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from typing_extensions import override
from zope.interface.verify import verifyObject

from clearwater.stores.cached import CachedSubscriberStore
from clearwater.stores.interfaces import ISubscriberStore, NotFoundError
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import AkaCredentials, PrivateIdentity, RegistrationState, RegState
from tests.conformance.stores.subscriber import (
    SubscriberStoreConformance,
    digest_private,
    public_identity,
)

START = 1_700_000_000.5


class TestCachedSubscriberStoreConformance(SubscriberStoreConformance, TestCase):
    """The whole contract holds through the cache (one cache per test, as one homestead)."""

    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.subscribers = CachedSubscriberStore(MemorySubscriberStore(), self.clock, ttl=10)

    @override
    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @override
    def make_subscriber_store(self) -> ISubscriberStore:
        return self.subscribers


class _Counting:
    """A store that counts the calls that reach it, and can hold their answers back."""

    def __init__(self, store: ISubscriberStore) -> None:
        self.store = store
        self.calls: collections.Counter[str] = collections.Counter()
        self.held: Optional[list[tuple[Deferred[Any], Any]]] = None

    def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
        method = getattr(self.store, name)

        def call(*args: Any) -> Deferred[Any]:
            self.calls[name] += 1
            result: Deferred[Any] = method(*args)
            if self.held is None:
                return result
            later: Deferred[Any] = Deferred()
            held = self.held
            result.addCallback(lambda value: held.append((later, value)))
            return later

        return call

    def release(self) -> None:
        held, self.held = self.held or [], None
        for d, value in held:
            d.callback(value)


class CacheTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.backing = MemorySubscriberStore()
        self.irs = self.successResultOf(self.backing.create_irs("irs-1"))
        self.sp = self.successResultOf(self.backing.create_service_profile(self.irs)).sp
        self.successResultOf(self.backing.put_private(digest_private("alice@example.com")))
        self.successResultOf(self.backing.associate(self.irs, "alice@example.com"))
        alice = public_identity("sip:alice@example.com", self.irs, self.sp)
        self.successResultOf(self.backing.put_public(alice))
        self.counting = _Counting(self.backing)
        self.store = CachedSubscriberStore(
            cast(ISubscriberStore, self.counting), self.clock, ttl=10, max_entries=3
        )

    def lookups(self) -> list[Any]:
        """One of each cached lookup about alice."""
        return [
            self.successResultOf(self.store.get_private("alice@example.com")),
            self.successResultOf(self.store.get_public("sip:alice@example.com")),
            self.successResultOf(self.store.irs_of_private("alice@example.com")),
        ]

    def test_verify_object(self) -> None:
        assert verifyObject(ISubscriberStore, self.store)

    def test_a_repeated_lookup_is_answered_from_the_cache(self) -> None:
        first = self.lookups()
        assert self.lookups() == first
        assert first[2] == ["irs-1"]
        assert self.counting.calls == {"get_private": 1, "get_public": 1, "irs_of_private": 1}

    def test_lists_are_fresh_copies(self) -> None:
        self.successResultOf(self.store.irs_of_private("alice@example.com")).append("mine")
        assert self.successResultOf(self.store.irs_of_private("alice@example.com")) == ["irs-1"]

    def test_an_answer_expires_after_the_ttl(self) -> None:
        self.lookups()
        self.clock.advance(9.9)
        self.lookups()
        assert self.counting.calls["get_private"] == 1
        self.clock.advance(0.2)
        self.lookups()
        assert self.counting.calls["get_private"] == 2

    def test_a_change_by_another_process_is_seen_within_the_ttl(self) -> None:
        self.lookups()
        self.successResultOf(
            self.backing.put_private(digest_private("alice@example.com", "0" * 32))
        )
        assert self.successResultOf(self.store.get_private("alice@example.com")) == digest_private(
            "alice@example.com"
        )
        self.clock.advance(10)
        changed = self.successResultOf(self.store.get_private("alice@example.com"))
        assert changed is not None and changed.digest_ha1 == "0" * 32

    def test_a_write_through_the_cache_is_seen_at_once(self) -> None:
        self.lookups()
        self.successResultOf(self.store.delete_public("sip:alice@example.com"))
        assert self.successResultOf(self.store.get_public("sip:alice@example.com")) is None
        assert self.counting.calls["get_public"] == 2

    def test_a_read_under_way_when_a_write_begins_is_not_kept(self) -> None:
        self.counting.held = []
        pending = self.store.get_public("sip:alice@example.com")
        self.successResultOf(self.backing.delete_public("sip:alice@example.com"))
        write = self.store.put_private(digest_private("bob@example.com"))
        self.counting.release()
        self.successResultOf(write)
        assert self.successResultOf(pending) is not None  # read before the write: old answer
        assert self.successResultOf(self.store.get_public("sip:alice@example.com")) is None

    def test_advance_sqn_drops_that_private_identity(self) -> None:
        aka = AkaCredentials(k=b"k" * 16, opc=b"o" * 16, amf=b"\x80\x00", sqn=32)
        self.successResultOf(
            self.store.put_private(
                PrivateIdentity(impi="ue@example.com", realm="example.com", aka=aka)
            )
        )
        self.successResultOf(self.store.get_public("sip:alice@example.com"))
        before = self.successResultOf(self.store.get_private("ue@example.com"))
        assert before is not None and before.aka is not None and before.aka.sqn == 32
        assert self.successResultOf(self.store.advance_sqn("ue@example.com", 32, 64)) is True
        after = self.successResultOf(self.store.get_private("ue@example.com"))
        assert after is not None and after.aka is not None and after.aka.sqn == 64
        self.successResultOf(self.store.get_public("sip:alice@example.com"))
        assert self.counting.calls["get_public"] == 1  # the rest of the cache stays

    def test_failures_are_not_kept(self) -> None:
        for _ in range(2):
            self.failureResultOf(  # type: ignore[no-untyped-call]
                self.store.privates_of_irs("irs-2"), NotFoundError
            )
        assert self.counting.calls["privates_of_irs"] == 2

    def test_a_registered_state_is_cached_until_written(self) -> None:
        state = RegistrationState(RegState.REGISTERED, "sip:scscf.example.com", "alice@example.com")
        self.successResultOf(self.store.set_registration(self.irs, state))
        for _ in range(2):
            assert self.successResultOf(self.store.get_registration(self.irs)) == state
        assert self.counting.calls["get_registration"] == 1
        self.successResultOf(self.store.get_public("sip:alice@example.com"))
        unregistered = attrs.evolve(state, state=RegState.UNREGISTERED)
        self.successResultOf(self.store.set_registration(self.irs, unregistered))
        assert self.successResultOf(self.store.get_registration(self.irs)) == unregistered
        assert self.counting.calls["get_registration"] == 2
        self.successResultOf(self.store.get_public("sip:alice@example.com"))
        assert self.counting.calls["get_public"] == 1  # the rest of the cache stays

    def test_other_registration_states_are_not_cached(self) -> None:
        for state in (RegState.NOT_REGISTERED, RegState.UNREGISTERED):
            registration = RegistrationState(state, "sip:scscf.example.com", "alice@example.com")
            self.successResultOf(self.backing.set_registration(self.irs, registration))
            before = self.counting.calls["get_registration"]
            for _ in range(2):
                assert self.successResultOf(self.store.get_registration(self.irs)) == registration
            assert self.counting.calls["get_registration"] == before + 2

    def test_another_writers_registration_is_seen_within_the_ttl(self) -> None:
        registered = RegistrationState(RegState.REGISTERED, "sip:scscf.example.com", "a@b")
        self.successResultOf(self.store.set_registration(self.irs, registered))
        self.successResultOf(self.store.get_registration(self.irs))
        unregistered = attrs.evolve(registered, state=RegState.UNREGISTERED)
        self.successResultOf(self.backing.set_registration(self.irs, unregistered))
        assert self.successResultOf(self.store.get_registration(self.irs)) == registered
        self.clock.advance(10)
        assert self.successResultOf(self.store.get_registration(self.irs)) == unregistered

    def test_the_oldest_answer_goes_when_the_cache_is_full(self) -> None:
        self.lookups()  # three entries: the maximum
        self.successResultOf(self.store.publics_of_irs(self.irs))  # the private's entry goes
        self.lookups()
        assert self.counting.calls["get_private"] == 2

    def test_expired_answers_are_dropped_as_new_ones_come(self) -> None:
        store = CachedSubscriberStore(self.backing, self.clock, ttl=10)
        self.successResultOf(store.get_private("alice@example.com"))
        self.successResultOf(store.get_public("sip:alice@example.com"))
        self.clock.advance(10)
        self.successResultOf(store.irs_of_private("alice@example.com"))
        assert list(store._entries) == [("irs_of_private", "alice@example.com")]

    def test_bad_settings(self) -> None:
        for settings in ({"ttl": 0.0}, {"max_entries": 0}):
            with pytest.raises(ValueError, match="must be positive"):
                CachedSubscriberStore(self.backing, self.clock, **settings)
