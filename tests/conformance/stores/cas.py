"""Conformance tests for :class:`~clearwater.stores.interfaces.ICasStore` (Clearwater's
``Store``: cpp-common ``store.h``; spec §1.4, §3.4 "Optimistic concurrency")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import DataContentionError, ICasStore, StoreUnavailableError
from tests.conformance.stores import (
    Barrier,
    StoreConformanceBase,
    long_identity,
    run_concurrently,
    unique,
)

__all__ = ["CasStoreConformance"]

REG = "reg"
IMPI = "impi"
#: A lifetime no test outlives.
LONG_TTL = 300
#: Writers in the concurrency tests.
WRITERS = 10
#: Give up a read-modify-write loop after this many lost races (a livelock is a failure).
MAX_ATTEMPTS = 200


class CasStoreConformance(StoreConformanceBase):
    """The :class:`ICasStore` contract, for every back end (memory, Redis, memcached).

    Hooks (see :mod:`tests.conformance.stores`):

    - ``make_cas_store(self) -> ICasStore``: a store for this test (cleanup via
      ``self.addCleanup``); may be called more than once per test, and every store made in one
      test sees the same data. Tables used: ``reg`` and ``impi``.
    - ``async def advance(self, seconds)`` and ``def now(self)``: store time.
    - optional ``async def restart_server(self)``, ``async def stop_server(self)``, and the
      attributes ``outage_deadline`` and ``server_persists_data``.

    Lifetimes in these tests are a few seconds, and a test allows a record to outlive its TTL
    by up to 1.5 s (memcached counts expiry in whole seconds of its own clock) and never to
    vanish more than 1.5 s early.
    """

    if TYPE_CHECKING:

        def make_cas_store(self) -> ICasStore:
            """A store for this test (hook)."""

    async def _increment(
        self, store: ICasStore, key: str, barrier: Optional[Barrier] = None
    ) -> int:
        """Add 1 to the decimal counter at ``key`` with get / CAS set, retrying lost races;
        returns how many races were lost. With ``barrier``, wait on it after the first read."""
        lost = 0
        while lost < MAX_ATTEMPTS:
            data, cas = await store.get_data(REG, key)
            if barrier is not None:
                await barrier.wait()
                barrier = None
            value = int(data) if data is not None else 0
            try:
                await store.set_data(REG, key, str(value + 1).encode(), cas, LONG_TTL)
            except DataContentionError:
                lost += 1
                continue
            return lost
        self.fail("a writer lost " + str(MAX_ATTEMPTS) + " races in a row")

    # ------------------------------------------------------------------ basics

    async def test_provides_interface(self) -> None:
        assert verifyObject(ICasStore, self.make_cas_store())

    async def test_unknown_key_reads_as_absent(self) -> None:
        store = self.make_cas_store()
        assert await store.get_data(REG, unique()) == ((None, 0))

    async def test_add_with_cas_zero_then_read_back(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b'{"bindings":{}}', 0, LONG_TTL)
        data, cas = await store.get_data(REG, key)
        assert data == b'{"bindings":{}}'
        assert isinstance(cas, int)
        assert cas > 0

    async def test_write_with_current_cas_wins_and_changes_the_token(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"one", 0, LONG_TTL)
        _, cas1 = await store.get_data(REG, key)
        await store.set_data(REG, key, b"two", cas1, LONG_TTL)
        data, cas2 = await store.get_data(REG, key)
        assert data == b"two"
        assert cas2 > 0
        assert cas2 != cas1

    async def test_every_write_gives_a_new_token(self) -> None:
        store = self.make_cas_store()
        key = unique()
        seen = []
        cas = 0
        for i in range(10):
            await store.set_data(REG, key, str(i).encode(), cas, LONG_TTL)
            data, cas = await store.get_data(REG, key)
            assert data == str(i).encode()
            seen.append(cas)
        assert len(set(seen)) == 10

    async def test_stale_cas_raises_data_contention(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"one", 0, LONG_TTL)
        _, stale = await store.get_data(REG, key)
        await store.set_data(REG, key, b"two", stale, LONG_TTL)
        _, current = await store.get_data(REG, key)
        await self.assert_fails(
            store.set_data(REG, key, b"three", stale, LONG_TTL), DataContentionError
        )
        assert await store.get_data(REG, key) == ((b"two", current))

    async def test_cas_zero_on_an_existing_record_raises_data_contention(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"first", 0, LONG_TTL)
        before = await store.get_data(REG, key)
        await self.assert_fails(
            store.set_data(REG, key, b"second", 0, LONG_TTL), DataContentionError
        )
        assert await store.get_data(REG, key) == before

    async def test_nonzero_cas_on_an_absent_record_raises_data_contention(self) -> None:
        store = self.make_cas_store()
        key = unique()
        other = unique()
        await store.set_data(REG, other, b"x", 0, LONG_TTL)
        _, cas = await store.get_data(REG, other)
        await self.assert_fails(store.set_data(REG, key, b"y", cas, LONG_TTL), DataContentionError)
        assert await store.get_data(REG, key) == ((None, 0))

    async def test_delete_removes_the_record(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"x", 0, LONG_TTL)
        await store.delete_data(REG, key)
        assert await store.get_data(REG, key) == ((None, 0))
        await store.set_data(REG, key, b"again", 0, LONG_TTL)
        data, _ = await store.get_data(REG, key)
        assert data == b"again"

    async def test_delete_of_an_unknown_key_is_not_an_error(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.delete_data(REG, key)
        await store.delete_data(REG, key)
        assert await store.get_data(REG, key) == ((None, 0))

    async def test_token_read_before_a_delete_loses(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"x", 0, LONG_TTL)
        _, cas = await store.get_data(REG, key)
        await store.delete_data(REG, key)
        await self.assert_fails(store.set_data(REG, key, b"y", cas, LONG_TTL), DataContentionError)
        assert await store.get_data(REG, key) == ((None, 0))

    async def test_tables_are_separate(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"in reg", 0, LONG_TTL)
        assert await store.get_data(IMPI, key) == ((None, 0))
        await store.set_data(IMPI, key, b"in impi", 0, LONG_TTL)
        assert (await store.get_data(REG, key))[0] == b"in reg"
        assert (await store.get_data(IMPI, key))[0] == b"in impi"
        await store.delete_data(REG, key)
        assert await store.get_data(REG, key) == ((None, 0))
        assert (await store.get_data(IMPI, key))[0] == b"in impi"

    async def test_keys_match_exactly(self) -> None:
        store = self.make_cas_store()
        key = "sip:" + unique("Alice") + "@example.com"
        await store.set_data(REG, key, b"exact", 0, LONG_TTL)
        for other in (key.lower(), key.upper(), key + ";x", key[:-1], "x" + key):
            assert await store.get_data(REG, other) == ((None, 0)), other
        assert (await store.get_data(REG, key))[0] == b"exact"

    async def test_binary_data_round_trips(self) -> None:
        store = self.make_cas_store()
        key = unique()
        data = bytes(range(256)) + b"\r\nEND\r\n\x00" + "ü€😀".encode()
        await store.set_data(REG, key, data, 0, LONG_TTL)
        assert (await store.get_data(REG, key))[0] == data

    async def test_large_value_round_trips(self) -> None:
        store = self.make_cas_store()
        key = unique()
        data = b"".join(b"%06d," % i for i in range(15000))  # 105,000 bytes
        await store.set_data(REG, key, data, 0, LONG_TTL)
        assert (await store.get_data(REG, key))[0] == data

    async def test_long_non_ascii_key(self) -> None:
        store = self.make_cas_store()
        key = long_identity()
        await store.set_data(REG, key, b"long", 0, LONG_TTL)
        data, cas = await store.get_data(REG, key)
        assert data == b"long"
        await store.set_data(REG, key, b"longer", cas, LONG_TTL)
        assert (await store.get_data(REG, key))[0] == b"longer"
        assert await store.get_data(REG, key[:-1]) == ((None, 0))
        await store.delete_data(REG, key)
        assert await store.get_data(REG, key) == ((None, 0))

    async def test_many_keys_are_independent(self) -> None:
        store = self.make_cas_store()
        keys = [unique("many") for _ in range(50)]
        for i, key in enumerate(keys):
            await store.set_data(REG, key, b"value %d" % i, 0, LONG_TTL)
        tokens = set()
        for i, key in enumerate(keys):
            data, cas = await store.get_data(REG, key)
            assert data == b"value %d" % i
            tokens.add(cas)
        assert all(t > 0 for t in tokens)

    async def test_stores_made_in_one_test_share_data(self) -> None:
        first = self.make_cas_store()
        second = self.make_cas_store()
        key = unique()
        await first.set_data(REG, key, b"shared", 0, LONG_TTL)
        data, cas = await second.get_data(REG, key)
        assert data == b"shared"
        await second.set_data(REG, key, b"updated", cas, LONG_TTL)
        await self.assert_fails(
            first.set_data(REG, key, b"stale", cas, LONG_TTL), DataContentionError
        )
        assert (await first.get_data(REG, key))[0] == b"updated"

    # ------------------------------------------------------------------ lifetimes

    async def test_record_expires_after_its_ttl(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"short", 0, 3)
        await self.advance(1.5)
        assert (await store.get_data(REG, key))[0] == b"short"

        async def gone() -> bool:
            return await store.get_data(REG, key) == (None, 0)

        assert await self.poll_until(gone, 3.0), "record outlived its TTL"

    async def test_expired_record_can_be_added_again_with_cas_zero(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"short", 0, 1)
        await self.advance(2.6)
        assert await store.get_data(REG, key) == ((None, 0))
        await store.set_data(REG, key, b"new", 0, LONG_TTL)
        assert (await store.get_data(REG, key))[0] == b"new"

    async def test_token_of_an_expired_record_loses(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"short", 0, 1)
        _, cas = await store.get_data(REG, key)
        await self.advance(2.6)
        await self.assert_fails(
            store.set_data(REG, key, b"late", cas, LONG_TTL), DataContentionError
        )
        assert await store.get_data(REG, key) == ((None, 0))

    async def test_rewrite_sets_a_new_lifetime(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"v1", 0, 2)
        _, cas = await store.get_data(REG, key)
        await store.set_data(REG, key, b"v2", cas, 6)
        await self.advance(3.6)  # past the first lifetime, well within the second
        assert (await store.get_data(REG, key))[0] == b"v2"
        _, cas = await store.get_data(REG, key)
        await store.set_data(REG, key, b"v3", cas, 1)  # and a shorter one replaces it too

        async def gone() -> bool:
            return await store.get_data(REG, key) == (None, 0)

        assert await self.poll_until(gone, 2.6), "the shorter lifetime was ignored"

    async def test_lifetimes_are_per_key(self) -> None:
        store = self.make_cas_store()
        short, long = unique("short"), unique("long")
        await store.set_data(REG, short, b"s", 0, 1)
        await store.set_data(REG, long, b"l", 0, LONG_TTL)
        await self.advance(2.6)
        assert await store.get_data(REG, short) == ((None, 0))
        assert (await store.get_data(REG, long))[0] == b"l"

    async def test_lost_race_leaves_record_and_lifetime_alone(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"keep", 0, 3)
        before = await store.get_data(REG, key)
        await self.assert_fails(
            store.set_data(REG, key, b"lose", before[1] + 1000, LONG_TTL), DataContentionError
        )
        assert await store.get_data(REG, key) == before

        async def gone() -> bool:
            return await store.get_data(REG, key) == (None, 0)

        assert await self.poll_until(gone, 4.5), "a failed write extended the lifetime"

    # ------------------------------------------------------------------ concurrency

    async def test_concurrent_increments_all_apply(self) -> None:
        # All WRITERS read version 0 before any writes (the barrier), so WRITERS - 1 lose their
        # first write; each retries until it wins, and no increment may be lost.
        store = self.make_cas_store()
        key = unique("counter")
        barrier = Barrier(WRITERS)
        lost = await run_concurrently(
            *(self._increment(store, key, barrier) for _ in range(WRITERS))
        )
        data, _ = await store.get_data(REG, key)
        assert data == str(WRITERS).encode()
        assert sum(lost) >= WRITERS - 1
        assert lost.count(0) == 1  # exactly one writer won its first race

    async def test_concurrent_increments_without_coordination(self) -> None:
        store = self.make_cas_store()
        key = unique("counter")
        await run_concurrently(*(self._increment(store, key) for _ in range(WRITERS)))
        assert (await store.get_data(REG, key))[0] == str(WRITERS).encode()

    async def test_concurrent_increments_from_separate_stores(self) -> None:
        stores = [self.make_cas_store() for _ in range(3)]
        key = unique("counter")
        barrier = Barrier(WRITERS)
        await run_concurrently(
            *(self._increment(stores[i % 3], key, barrier) for i in range(WRITERS))
        )
        assert (await stores[0].get_data(REG, key))[0] == str(WRITERS).encode()

    async def test_concurrent_adds_only_one_wins(self) -> None:
        store = self.make_cas_store()
        key = unique()

        async def add(i: int) -> bool:
            try:
                await store.set_data(REG, key, b"writer %d" % i, 0, LONG_TTL)
            except DataContentionError:
                return False
            return True

        won = await run_concurrently(*(add(i) for i in range(WRITERS)))
        assert won.count(True) == 1
        data, _ = await store.get_data(REG, key)
        assert data == b"writer %d" % won.index(True)

    # ------------------------------------------------------------------ servers

    async def test_server_down_fails_within_the_deadline(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"x", 0, LONG_TTL)
        await self.stop()
        late = self.make_cas_store()  # made while the server is down
        for d in (
            store.get_data(REG, key),
            store.set_data(REG, key, b"y", 0, LONG_TTL),
            store.delete_data(REG, key),
            late.get_data(REG, key),
        ):
            assert await self.settles_within(d, self.deadline), "hung with the server down"
            self.assert_failed(d, StoreUnavailableError)

    async def test_data_survives_a_restart(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"durable", 0, LONG_TTL)
        await self.restart()
        fresh = self.make_cas_store()
        data, cas = await fresh.get_data(REG, key)
        if self.persists:
            assert data == b"durable"
            await fresh.set_data(REG, key, b"after", cas, LONG_TTL)
            assert (await fresh.get_data(REG, key))[0] == b"after"
        else:
            await fresh.set_data(REG, key, b"after", cas, LONG_TTL)
            assert (await fresh.get_data(REG, key))[0] == b"after"

    async def test_store_works_again_after_a_restart(self) -> None:
        store = self.make_cas_store()
        key = unique()
        await store.set_data(REG, key, b"before", 0, LONG_TTL)
        await self.restart()
        other = unique()

        async def works() -> bool:
            try:
                await store.set_data(REG, other, b"after", 0, LONG_TTL)
            except DataContentionError:
                return True  # an earlier attempt got through
            except StoreUnavailableError:
                return False
            return True

        assert await self.poll_until(works, self.deadline)
        assert (await store.get_data(REG, other))[0] == b"after"
