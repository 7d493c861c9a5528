"""Conformance tests for :class:`~clearwater.stores.interfaces.IRegistrationStore`: AoR
records with CAS and a lifetime of their latest expiry + 10 s (spec §3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import attrs
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import DataContentionError, IRegistrationStore
from clearwater.stores.records import AoR, AssociatedUri, Binding, Subscription
from tests.conformance.stores import (
    Barrier,
    StoreConformanceBase,
    long_identity,
    run_concurrently,
    unique,
)

__all__ = ["RegistrationStoreConformance", "make_aor", "make_binding", "make_subscription"]

WRITERS = 10
MAX_ATTEMPTS = 200


def make_binding(expires: int, n: int = 1) -> Binding:
    """A binding shaped like the ones sprout writes for an outbound (RFC 5626) UE."""
    return Binding(
        uri=f"sip:alice@192.0.2.{n}:5060;transport=tcp;ob",
        cid=f"0gQAAC8WAAACBAAALxYAAAL8m7qgJp{n}@192.0.2.{n}",
        cseq=17 + n,
        expires=expires,
        priority=1000,
        params=(
            ("+sip.instance", f'"<urn:uuid:00000000-0000-0000-0000-b4dd3281762{n}>"'),
            ("reg-id", "1"),
            ("expires", "3600"),
        ),
        path_headers=(f"<sip:token{n}@bono.example.com:5058;transport=TCP;lr;ob>",),
        private_id="alice@example.com",
        emergency_reg=False,
    )


def make_subscription(expires: int, tag: str = "to-tag-1") -> Subscription:
    """A reg-event subscription as sprout stores it (RFC 3680)."""
    return Subscription(
        req_uri="sip:alice@192.0.2.1:5060;transport=tcp",
        from_uri="<sip:alice@example.com>",
        from_tag="from-" + tag,
        to_uri="<sip:alice@example.com>",
        to_tag=tag,
        cid="sub-call-id-" + tag,
        routes=("<sip:bono.example.com:5058;transport=TCP;lr>",),
        expires=expires,
    )


def make_aor(
    binding_expires: Optional[int] = None,
    subscription_expires: Optional[int] = None,
    bindings: int = 1,
) -> AoR:
    """An AoR with ``bindings`` bindings expiring at ``binding_expires`` (none if None) and one
    subscription expiring at ``subscription_expires`` (none if None), with associated URIs, a
    wildcard mapping and Clearwater's other members set."""
    return AoR(
        bindings=tuple(
            (
                f"<urn:uuid:00000000-0000-0000-0000-b4dd3281762{n}>:1",
                make_binding(binding_expires, n),
            )
            for n in range(1, bindings + 1)
        )
        if binding_expires is not None
        else (),
        subscriptions=(("to-tag-1", make_subscription(subscription_expires)),)
        if subscription_expires is not None
        else (),
        associated_uris=(
            AssociatedUri("sip:alice@example.com"),
            AssociatedUri("tel:+15551234567", barring=True),
        ),
        wildcard_mapping=("sip:alice@example.com", "sip:!.*!@example.com"),
        notify_cseq=4,
        timer_id="6d7b1c9e0f2a4b3c8d5e:1",
        scscf_uri="sip:scscf.sprout.example.com:5054;transport=tcp",
    )


class RegistrationStoreConformance(StoreConformanceBase):
    """The :class:`IRegistrationStore` contract (``RegistrationStore`` over every
    ``ICasStore``).

    Hooks (see :mod:`tests.conformance.stores`):

    - ``make_registration_store(self) -> IRegistrationStore``: a store for this test (cleanup
      via ``self.addCleanup``); every store made in one test sees the same data.
    - ``async def advance(self, seconds)`` and ``def now(self)``: store time. ``set_aor`` is
      given ``now()`` as its ``now``.

    Lifetimes: records are written with bindings that expired 7 s ago, so they live about 3 s
    (expiry + 10 s); a record may outlive that by 1.5 s and never vanish 1.5 s early.
    """

    if TYPE_CHECKING:

        def make_registration_store(self) -> IRegistrationStore:
            """A store for this test (hook)."""

    def _soon(self) -> int:
        """A binding expiry an hour ahead."""
        return int(self.now()) + 3600

    async def _absent(self, store: IRegistrationStore, aor_id: str) -> bool:
        aor, _ = await store.get_aor(aor_id)
        return aor is None

    # ------------------------------------------------------------------ basics

    async def test_provides_interface(self) -> None:
        assert verifyObject(IRegistrationStore, self.make_registration_store())

    async def test_unknown_aor_reads_as_absent(self) -> None:
        store = self.make_registration_store()
        assert await store.get_aor("sip:" + unique() + "@example.com") == ((None, 0))

    async def test_round_trip_keeps_every_member(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        soon = self._soon()
        aor = attrs.evolve(
            make_aor(soon, soon - 600, bindings=3),
            extra=(("future-member", {"nested": [1, "two", None]}),),
        )
        await store.set_aor(aor_id, aor, 0, self.now())
        got, cas = await store.get_aor(aor_id)
        assert got == aor
        assert cas > 0

    async def test_update_with_current_cas(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        soon = self._soon()
        await store.set_aor(aor_id, make_aor(soon), 0, self.now())
        _, cas = await store.get_aor(aor_id)
        updated = attrs.evolve(make_aor(soon, bindings=2), notify_cseq=5)
        await store.set_aor(aor_id, updated, cas, self.now())
        got, cas2 = await store.get_aor(aor_id)
        assert got == updated
        assert cas2 != cas

    async def test_stale_cas_raises_data_contention(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        soon = self._soon()
        await store.set_aor(aor_id, make_aor(soon), 0, self.now())
        _, stale = await store.get_aor(aor_id)
        winner = make_aor(soon, bindings=2)
        await store.set_aor(aor_id, winner, stale, self.now())
        await self.assert_fails(
            store.set_aor(aor_id, make_aor(soon, bindings=3), stale, self.now()),
            DataContentionError,
        )
        assert (await store.get_aor(aor_id))[0] == winner

    async def test_cas_zero_on_an_existing_record_raises_data_contention(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        first = make_aor(self._soon())
        await store.set_aor(aor_id, first, 0, self.now())
        await self.assert_fails(
            store.set_aor(aor_id, make_aor(self._soon(), bindings=2), 0, self.now()),
            DataContentionError,
        )
        assert (await store.get_aor(aor_id))[0] == first

    async def test_get_does_not_filter_expired_bindings(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        now = int(self.now())
        aor = AoR(
            bindings=(("old", make_binding(now - 5, 1)), ("new", make_binding(now + 3600, 2))),
            subscriptions=(("gone", make_subscription(now - 5, "gone")),),
        )
        await store.set_aor(aor_id, aor, 0, self.now())
        got, _ = await store.get_aor(aor_id)
        assert got == aor
        assert got is not None
        assert [k for k, _ in got.without_expired(self.now()).bindings] == ["new"]

    async def test_delete_aor(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        await store.set_aor(aor_id, make_aor(self._soon()), 0, self.now())
        await store.delete_aor(aor_id)
        assert await store.get_aor(aor_id) == ((None, 0))
        await store.set_aor(aor_id, make_aor(self._soon()), 0, self.now())
        assert (await store.get_aor(aor_id))[0] is not None

    async def test_delete_of_an_unknown_aor_is_not_an_error(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        await store.delete_aor(aor_id)
        assert await store.get_aor(aor_id) == ((None, 0))

    async def test_long_non_ascii_aor_id(self) -> None:
        store = self.make_registration_store()
        aor_id = long_identity()
        aor = make_aor(self._soon())
        await store.set_aor(aor_id, aor, 0, self.now())
        got, cas = await store.get_aor(aor_id)
        assert got == aor
        await store.set_aor(aor_id, make_aor(self._soon(), bindings=2), cas, self.now())
        assert await store.get_aor(aor_id[:-1]) == ((None, 0))
        await store.delete_aor(aor_id)
        assert await store.get_aor(aor_id) == ((None, 0))

    # ------------------------------------------------------------------ lifetimes

    async def test_record_lives_until_latest_binding_expiry_plus_10s(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        now = int(self.now())
        # One binding long gone, the latest expired 7 s ago: about 3 s of life left.
        aor = AoR(bindings=(("a", make_binding(now - 500, 1)), ("b", make_binding(now - 7, 2))))
        await store.set_aor(aor_id, aor, 0, self.now())
        await self.advance(1.5)
        assert (await store.get_aor(aor_id))[0] == aor
        assert await self.poll_until(lambda: self._absent(store, aor_id), 3.0), (
            "the record outlived its latest expiry + 10 s"
        )

    async def test_subscriptions_count_towards_the_lifetime(self) -> None:
        store = self.make_registration_store()
        by_subscription = "sip:" + unique() + "@example.com"
        by_binding = "sip:" + unique() + "@example.com"
        now = int(self.now())
        await store.set_aor(by_subscription, make_aor(now - 500, now - 7), 0, self.now())
        await store.set_aor(by_binding, make_aor(now - 7, now - 500), 0, self.now())
        await self.advance(1.5)
        assert (await store.get_aor(by_subscription))[0] is not None
        assert (await store.get_aor(by_binding))[0] is not None

        async def both_gone() -> bool:
            return await self._absent(store, by_subscription) and await self._absent(
                store, by_binding
            )

        assert await self.poll_until(both_gone, 3.0)

    async def test_live_record_outlasts_short_waits(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        aor = make_aor(int(self.now()) + 20)
        await store.set_aor(aor_id, aor, 0, self.now())
        await self.advance(4.0)
        assert (await store.get_aor(aor_id))[0] == aor

    async def test_aor_expired_more_than_10s_ago_is_not_kept(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        now = int(self.now())
        await store.set_aor(aor_id, make_aor(now - 11, now - 12), 0, self.now())
        assert (await store.get_aor(aor_id))[0] is None

    async def test_aor_without_bindings_or_subscriptions_is_deleted(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        await store.set_aor(aor_id, make_aor(self._soon()), 0, self.now())
        _, cas = await store.get_aor(aor_id)
        await store.set_aor(aor_id, make_aor(None, None), cas, self.now())
        got, cas = await store.get_aor(aor_id)
        assert got is None
        # The caller re-reads and writes with the CAS it got: that must win.
        fresh = make_aor(self._soon(), bindings=2)
        await store.set_aor(aor_id, fresh, cas, self.now())
        assert (await store.get_aor(aor_id))[0] == fresh

    async def test_emptying_with_a_stale_cas_loses(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        await store.set_aor(aor_id, make_aor(self._soon()), 0, self.now())
        _, stale = await store.get_aor(aor_id)
        winner = make_aor(self._soon(), bindings=2)
        await store.set_aor(aor_id, winner, stale, self.now())
        await self.assert_fails(
            store.set_aor(aor_id, AoR(), stale, self.now()), DataContentionError
        )
        assert (await store.get_aor(aor_id))[0] == winner

    async def test_emptying_with_cas_zero_over_a_record_loses(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        aor = make_aor(self._soon())
        await store.set_aor(aor_id, aor, 0, self.now())
        await self.assert_fails(store.set_aor(aor_id, AoR(), 0, self.now()), DataContentionError)
        assert (await store.get_aor(aor_id))[0] == aor

    # ------------------------------------------------------------------ concurrency

    async def test_concurrent_binding_additions_are_all_kept(self) -> None:
        store = self.make_registration_store()
        aor_id = "sip:" + unique() + "@example.com"
        barrier = Barrier(WRITERS)
        soon = self._soon()

        async def add_binding(n: int) -> int:
            wait: Optional[Barrier] = barrier
            for lost in range(MAX_ATTEMPTS):
                aor, cas = await store.get_aor(aor_id)
                if wait is not None:
                    await wait.wait()
                    wait = None
                base = aor if aor is not None else AoR()
                new = attrs.evolve(
                    base,
                    bindings=(*base.bindings, (f"binding-{n}", make_binding(soon, n))),
                    notify_cseq=base.notify_cseq + 1,
                )
                try:
                    await store.set_aor(aor_id, new, cas, self.now())
                except DataContentionError:
                    continue
                return lost
            self.fail("a writer kept losing")

        lost = await run_concurrently(*(add_binding(n) for n in range(WRITERS)))
        assert sum(lost) >= WRITERS - 1
        aor, _ = await store.get_aor(aor_id)
        assert aor is not None
        assert sorted(k for k, _ in aor.bindings) == sorted(f"binding-{n}" for n in range(WRITERS))
        assert aor.notify_cseq == 1 + WRITERS
