"""Conformance tests for :class:`~clearwater.stores.interfaces.IChallengeStore`: an IMPI's
outstanding challenges with CAS, living until the latest challenge expiry (spec §3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import attrs
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import DataContentionError, IChallengeStore
from clearwater.stores.records import Challenge
from tests.conformance.stores import (
    Barrier,
    StoreConformanceBase,
    long_identity,
    run_concurrently,
    unique,
)

__all__ = ["ChallengeStoreConformance", "aka_challenge", "digest_challenge"]

WRITERS = 10
MAX_ATTEMPTS = 200


def digest_challenge(expires: int, nonce: str = "7a3f9c21d4e8b6a0") -> Challenge:
    """A digest challenge as sprout stores it."""
    return Challenge(
        type="digest",
        nonce=nonce,
        expires=expires,
        nc=1,
        correlator="corr-" + nonce,
        scscf_uri="sip:scscf.sprout.example.com:5054;transport=tcp",
        timer_id="auth-timer-" + nonce,
        realm="example.com",
        qop="auth",
        ha1="2c8e0a4f5b7d9e1f3a5c7e9b1d3f5a7c",
    )


def aka_challenge(expires: int) -> Challenge:
    """An AKA challenge (the nonce is base64 RAND || AUTN, the response the XRES)."""
    return Challenge(
        type="aka",
        nonce="ZGV0ZXJtaW5pc3RpY3JhbmRhdXRuc2VxdWVuY2U=",
        expires=expires,
        nc=1,
        correlator="corr-aka",
        scscf_uri="sip:scscf.sprout.example.com:5054;transport=tcp",
        response="a54211d5e3ba50bf",
    )


class ChallengeStoreConformance(StoreConformanceBase):
    """The :class:`IChallengeStore` contract (``ChallengeStore`` over every ``ICasStore``).

    Hooks (see :mod:`tests.conformance.stores`):

    - ``make_challenge_store(self) -> IChallengeStore``: a store for this test (cleanup via
      ``self.addCleanup``); every store made in one test sees the same data.
    - ``async def advance(self, seconds)`` and ``def now(self)``: store time.
      ``set_challenges`` is given ``now()`` as its ``now``.

    Lifetimes: a record whose latest challenge expires about 3 s ahead may outlive that by
    1.5 s and never vanish 1.5 s early.
    """

    if TYPE_CHECKING:

        def make_challenge_store(self) -> IChallengeStore:
            """A store for this test (hook)."""

    def _impi(self) -> str:
        return unique("alice") + "@example.com"

    async def _absent(self, store: IChallengeStore, impi: str) -> bool:
        challenges, _ = await store.get_challenges(impi)
        return challenges == ()

    async def test_provides_interface(self) -> None:
        assert verifyObject(IChallengeStore, self.make_challenge_store())

    async def test_unknown_impi_has_no_challenges(self) -> None:
        store = self.make_challenge_store()
        assert await store.get_challenges(self._impi()) == (((), 0))

    async def test_round_trip_keeps_order_and_every_member(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        soon = int(self.now()) + 40
        challenges = (
            attrs.evolve(digest_challenge(soon), extra=(("future", [1, {"x": "ü"}]),)),
            aka_challenge(soon - 10),
            digest_challenge(soon - 5, nonce="0123456789abcdef"),
        )
        await store.set_challenges(impi, challenges, 0, self.now())
        got, cas = await store.get_challenges(impi)
        assert got == challenges
        assert cas > 0

    async def test_update_with_current_cas_and_stale_cas(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        soon = int(self.now()) + 40
        await store.set_challenges(impi, (digest_challenge(soon),), 0, self.now())
        _, stale = await store.get_challenges(impi)
        updated = (attrs.evolve(digest_challenge(soon), nc=2),)
        await store.set_challenges(impi, updated, stale, self.now())
        got, cas = await store.get_challenges(impi)
        assert got == updated
        assert cas != stale
        await self.assert_fails(
            store.set_challenges(impi, (aka_challenge(soon),), stale, self.now()),
            DataContentionError,
        )
        assert (await store.get_challenges(impi))[0] == updated

    async def test_cas_zero_on_an_existing_record_raises_data_contention(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        first = (digest_challenge(int(self.now()) + 40),)
        await store.set_challenges(impi, first, 0, self.now())
        await self.assert_fails(
            store.set_challenges(impi, (aka_challenge(int(self.now()) + 40),), 0, self.now()),
            DataContentionError,
        )
        assert (await store.get_challenges(impi))[0] == first

    async def test_record_lives_until_the_latest_challenge_expiry(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        now = int(self.now())
        challenges = (digest_challenge(now - 100), aka_challenge(now + 3))
        await store.set_challenges(impi, challenges, 0, self.now())
        await self.advance(1.5)
        assert (await store.get_challenges(impi))[0] == challenges
        assert await self.poll_until(lambda: self._absent(store, impi), 3.0), (
            "the record outlived its latest challenge"
        )

    async def test_all_expired_is_not_kept(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        now = int(self.now())
        await store.set_challenges(
            impi, (digest_challenge(now - 1), aka_challenge(now - 30)), 0, self.now()
        )
        assert (await store.get_challenges(impi))[0] == (())

    async def test_no_challenges_left_deletes_the_record(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        soon = int(self.now()) + 40
        await store.set_challenges(impi, (digest_challenge(soon),), 0, self.now())
        _, cas = await store.get_challenges(impi)
        await store.set_challenges(impi, (), cas, self.now())
        got, cas = await store.get_challenges(impi)
        assert got == (())
        fresh = (aka_challenge(soon),)
        await store.set_challenges(impi, fresh, cas, self.now())
        assert (await store.get_challenges(impi))[0] == fresh

    async def test_emptying_with_a_stale_cas_loses(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        soon = int(self.now()) + 40
        await store.set_challenges(impi, (digest_challenge(soon),), 0, self.now())
        _, stale = await store.get_challenges(impi)
        winner = (aka_challenge(soon),)
        await store.set_challenges(impi, winner, stale, self.now())
        await self.assert_fails(
            store.set_challenges(impi, (), stale, self.now()), DataContentionError
        )
        assert (await store.get_challenges(impi))[0] == winner

    async def test_long_non_ascii_impi(self) -> None:
        store = self.make_challenge_store()
        impi = long_identity(scheme="")
        challenges = (digest_challenge(int(self.now()) + 40),)
        await store.set_challenges(impi, challenges, 0, self.now())
        assert (await store.get_challenges(impi))[0] == challenges
        assert await store.get_challenges(impi[:-1]) == (((), 0))

    async def test_concurrent_nonce_count_updates_all_apply(self) -> None:
        store = self.make_challenge_store()
        impi = self._impi()
        soon = int(self.now()) + 40
        await store.set_challenges(impi, (digest_challenge(soon),), 0, self.now())
        barrier = Barrier(WRITERS)

        async def bump() -> int:
            wait: Optional[Barrier] = barrier
            for lost in range(MAX_ATTEMPTS):
                challenges, cas = await store.get_challenges(impi)
                if wait is not None:
                    await wait.wait()
                    wait = None
                bumped = tuple(attrs.evolve(c, nc=c.nc + 1) for c in challenges)
                try:
                    await store.set_challenges(impi, bumped, cas, self.now())
                except DataContentionError:
                    continue
                return lost
            self.fail("a writer kept losing")

        lost = await run_concurrently(*(bump() for _ in range(WRITERS)))
        assert sum(lost) >= WRITERS - 1
        challenges, _ = await store.get_challenges(impi)
        assert [c.nc for c in challenges] == [1 + WRITERS]
