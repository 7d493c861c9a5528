"""A read-through cache in front of an :class:`ISubscriberStore` (homestead's cache, spec §6.1).

Clearwater's homestead answered sprout from a cache (Cassandra, with TTLs) rather than asking
the HSS each time. Ours keeps the answers of recent lookups in memory for ``ttl`` seconds: a
registration then costs no round trip to SQLite's worker thread or to Redis for the
identities, implicit registration sets and service profiles it reads (eight of them per
REGISTER with digest), only for its registration state; a call to a registered subscriber
costs none.

What is cached: the provisioned data (``get_private``, ``get_public``, the IRS and
service-profile lookups, ``wildcard_publics``) and a registration state that is REGISTERED
(every call to a subscriber reads it: ``reqtype=call``). Any other registration state is read
from the store each time: acting on a stale NOT_REGISTERED, a call would write UNREGISTERED over
another homestead's REGISTERED, and a de-registration would be refused; a stale REGISTERED
costs nothing worse than a call answered 480 from the empty bindings, or a de-registration
written again. ``list_publics`` (paging for administrators) is not cached, nor are failures.

Consistency: a write through this object (provisioning, ``advance_sqn``,
``set_registration``) is seen at once by every later read through it: a provisioning write
empties the cache, ``advance_sqn`` and ``set_registration`` drop the entry they changed, and a
read that was under way when a write began does not put its (possibly older) answer in the
cache. A write by another process sharing the store (a second homestead on the same Redis) is
seen within ``ttl`` seconds. At most ``max_entries`` answers are kept; the oldest goes first,
and expired ones go as new ones come.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from clearwater.stores.interfaces import ISubscriberStore
from clearwater.stores.records import (
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
)

__all__ = ["DEFAULT_CACHE_TTL", "CachedSubscriberStore"]

#: Seconds a cached answer is used (``--subscriber-cache-ttl``): how long a change made by
#: another process sharing the store may go unseen.
DEFAULT_CACHE_TTL = 10.0

_T = TypeVar("_T")


@implementer(ISubscriberStore)
class CachedSubscriberStore:
    """``store`` read through a cache of ``ttl`` seconds on ``clock`` (module notes)."""

    def __init__(
        self,
        store: ISubscriberStore,
        clock: IReactorTime,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = 100_000,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.store = store
        self._clock = clock
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._generation = 0  # bumped by every write: reads begun before it are not kept

    def _read(
        self,
        key: tuple[str, str],
        fetch: Callable[[], Deferred[_T]],
        keep: Callable[[_T], Any],
        keep_if: Callable[[_T], bool] = lambda _: True,
    ) -> Deferred[Any]:
        now = self._clock.seconds()
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > now:
                return defer.succeed(entry[1])
            del self._entries[key]
        generation = self._generation

        def cache(value: _T) -> Any:
            kept = keep(value)
            if generation == self._generation and keep_if(value):
                entries = self._entries
                # Oldest first is (near enough) soonest to expire: drop the expired ones, so
                # the cache holds what was read within the TTL, not the last max_entries.
                while entries and next(iter(entries.values()))[0] <= self._clock.seconds():
                    entries.popitem(last=False)
                if len(entries) >= self._max_entries:
                    entries.popitem(last=False)
                entries.pop(key, None)  # a re-read goes to the end
                entries[key] = (now + self._ttl, kept)
            return kept

        return fetch().addCallback(cache)

    def _read_list(
        self, key: tuple[str, str], fetch: Callable[[], Deferred[list[_T]]]
    ) -> Deferred[list[_T]]:
        """A list answer, kept as a tuple and given as a new list each time."""
        return self._read(key, fetch, tuple).addCallback(list)

    def _write(self, result: Deferred[_T]) -> Deferred[_T]:
        self._forget()
        return result.addBoth(self._forgetting)

    def _forget(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _forgetting(self, result: _T) -> _T:
        self._forget()  # and again: a read begun after the write began may have seen it or not
        return result

    # -- private identities

    def put_private(self, identity: PrivateIdentity) -> Deferred[None]:
        return self._write(self.store.put_private(identity))

    def get_private(self, impi: str) -> Deferred[Optional[PrivateIdentity]]:
        return self._read(("private", impi), lambda: self.store.get_private(impi), _same)

    def delete_private(self, impi: str) -> Deferred[None]:
        return self._write(self.store.delete_private(impi))

    def advance_sqn(self, impi: str, expected: int, sqn: int) -> Deferred[bool]:
        # Only this identity's record changes (often, with AKA): drop it, before and after.
        return self._write_one(("private", impi), self.store.advance_sqn(impi, expected, sqn))

    def _write_one(self, key: tuple[str, str], result: Deferred[_T]) -> Deferred[_T]:
        """``result`` of a write changing only ``key``'s answer: that entry is dropped when
        the write begins and again when it ends (reads begun in between are not kept)."""
        self._generation += 1
        self._entries.pop(key, None)

        def dropped(outcome: _T) -> _T:
            self._generation += 1
            self._entries.pop(key, None)
            return outcome

        return result.addBoth(dropped)

    # -- implicit registration sets

    def create_irs(self, irs: Optional[str] = None) -> Deferred[str]:
        return self._write(self.store.create_irs(irs))

    def delete_irs(self, irs: str) -> Deferred[None]:
        return self._write(self.store.delete_irs(irs))

    def associate(self, irs: str, impi: str) -> Deferred[None]:
        return self._write(self.store.associate(irs, impi))

    def dissociate(self, irs: str, impi: str) -> Deferred[None]:
        return self._write(self.store.dissociate(irs, impi))

    def irs_of_private(self, impi: str) -> Deferred[list[str]]:
        return self._read_list(("irs_of_private", impi), lambda: self.store.irs_of_private(impi))

    def privates_of_irs(self, irs: str) -> Deferred[list[str]]:
        return self._read_list(("privates_of_irs", irs), lambda: self.store.privates_of_irs(irs))

    # -- service profiles

    def create_service_profile(self, irs: str, ifcs_xml: str = "") -> Deferred[ServiceProfile]:
        return self._write(self.store.create_service_profile(irs, ifcs_xml))

    def get_service_profile(self, irs: str, sp: str) -> Deferred[Optional[ServiceProfile]]:
        return self._read(
            ("service_profile", irs + " " + sp),
            lambda: self.store.get_service_profile(irs, sp),
            _same,
        )

    def set_ifcs(self, irs: str, sp: str, ifcs_xml: str) -> Deferred[None]:
        return self._write(self.store.set_ifcs(irs, sp, ifcs_xml))

    def delete_service_profile(self, irs: str, sp: str) -> Deferred[None]:
        return self._write(self.store.delete_service_profile(irs, sp))

    def service_profiles_of_irs(self, irs: str) -> Deferred[list[ServiceProfile]]:
        return self._read_list(
            ("service_profiles_of_irs", irs), lambda: self.store.service_profiles_of_irs(irs)
        )

    # -- public identities

    def put_public(self, identity: PublicIdentity) -> Deferred[None]:
        return self._write(self.store.put_public(identity))

    def get_public(self, impu: str) -> Deferred[Optional[PublicIdentity]]:
        return self._read(("public", impu), lambda: self.store.get_public(impu), _same)

    def delete_public(self, impu: str) -> Deferred[None]:
        return self._write(self.store.delete_public(impu))

    def publics_of_irs(self, irs: str) -> Deferred[list[PublicIdentity]]:
        return self._read_list(("publics_of_irs", irs), lambda: self.store.publics_of_irs(irs))

    def publics_of_private(self, impi: str) -> Deferred[list[str]]:
        return self._read_list(
            ("publics_of_private", impi), lambda: self.store.publics_of_private(impi)
        )

    def wildcard_publics(self) -> Deferred[list[PublicIdentity]]:
        return self._read_list(("wildcard_publics", ""), lambda: self.store.wildcard_publics())

    def list_publics(self, after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        return self.store.list_publics(after, limit)

    # -- registration state (REGISTERED cached: module notes)

    def get_registration(self, irs: str) -> Deferred[RegistrationState]:
        return self._read(
            ("registration", irs),
            lambda: self.store.get_registration(irs),
            _same,
            lambda state: state.state is RegState.REGISTERED,
        )

    def set_registration(self, irs: str, state: RegistrationState) -> Deferred[None]:
        return self._write_one(("registration", irs), self.store.set_registration(irs, state))

    def close(self) -> Deferred[None]:
        self._forget()
        return self.store.close()


def _same(value: _T) -> _T:
    return value
