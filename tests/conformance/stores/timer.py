"""Conformance tests for :class:`~clearwater.stores.interfaces.ITimerService`: Chronos'
timers (spec §3.5, §6.3): pop after the interval, repeat-for, replace and delete by id,
at-least-once delivery with redelivery after a failed pop, one node per pop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import ITimerService
from tests.conformance.stores import StoreConformanceBase, unique

__all__ = ["HandlerError", "TimerServiceConformance"]

#: A pop delivered this much before it is due counts as early (clock granularity).
EARLY = 0.25


class HandlerError(Exception):
    """What the tests' failing handlers raise (the tests flush it from the log)."""


Pop = tuple[str, dict[str, Any], float]  # (timer id, opaque, when)


class TimerServiceConformance(StoreConformanceBase):
    """The :class:`ITimerService` contract, for every back end (memory, Redis).

    Hooks (see :mod:`tests.conformance.stores`):

    - ``make_timer_service(self) -> ITimerService``: a service for this test (cleanup via
      ``self.addCleanup``), on a backend with no timers at the start of the test. Its
      redelivery delay must be :attr:`timer_redelivery_delay`.
    - optional ``make_peer_timer_service(self) -> ITimerService``: another node's service on
      the same backend as the ones ``make_timer_service`` returns in this test (the multi-node
      tests are skipped without it).
    - ``async def advance(self, seconds)`` and ``def now(self)``: the time the timers run on.

    Attributes:

    - ``timer_redelivery_delay: float = 2.0``: the services' redelivery delay (seconds).
    - ``timer_slack: float = 1.0``: how late a pop may be delivered (polling back ends).
      Pops must never come more than 0.25 s early.

    Handlers that fail raise :class:`HandlerError`; the tests flush those from the log, so a
    service may log handler failures with ``log.failure``.
    """

    timer_redelivery_delay: float = 2.0
    timer_slack: float = 1.0

    if TYPE_CHECKING:

        def make_timer_service(self) -> ITimerService:
            """A timer service for this test (hook)."""

        def make_peer_timer_service(self) -> ITimerService:
            """Another node's service on the same backend (optional hook)."""

    def make_peer(self) -> ITimerService:
        """Call the ``make_peer_timer_service`` hook (SkipTest without one)."""
        peer: ITimerService = self.optional_hook("make_peer_timer_service")()
        return peer

    def _record(
        self, service: ITimerService, kind: str, pops: Optional[list[Pop]] = None
    ) -> list[Pop]:
        """Listen for ``kind`` on ``service``, recording every pop in ``pops`` (or a new list)."""
        record: list[Pop] = [] if pops is None else pops

        def handler(timer_id: str, opaque: dict[str, Any]) -> None:
            record.append((timer_id, opaque, self.now()))

        service.listen(kind, handler)
        return record

    async def _wait_for(self, pops: list[Pop], count: int, limit: float) -> bool:
        async def enough() -> bool:
            return len(pops) >= count

        return await self.poll_until(enough, limit)

    def _flush_handler_failures(self) -> None:
        """Drop the HandlerErrors the service logged (a cleanup: it runs even after a failed
        assertion, so trial reports the failure rather than the logged errors)."""
        self.flushLoggedErrors(HandlerError)  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ single node

    async def test_provides_interface(self) -> None:
        assert verifyObject(ITimerService, self.make_timer_service())

    async def test_pops_once_after_its_interval(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        start = self.now()
        opaque = {"aor_id": "sip:alice@example.com"}
        timer_id = await service.set_timer("reg", 2.0, opaque)
        assert isinstance(timer_id, str)
        assert timer_id
        await self.advance(1.0)
        assert pops == []
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack), "never popped"
        assert pops[0][:2] == ((timer_id, opaque))
        assert pops[0][2] >= start + 2.0 - EARLY
        await self.advance(2.0 + self.timer_slack)
        assert len(pops) == 1

    async def test_pops_go_to_the_handler_of_their_kind(self) -> None:
        service = self.make_timer_service()
        reg = self._record(service, "reg")
        auth = self._record(service, "auth-timeout")
        reg_id = await service.set_timer("reg", 1.0, {"aor_id": "sip:a@example.com"})
        auth_id = await service.set_timer(
            "auth-timeout", 1.0, {"impi": "a@example.com", "impu": "sip:a@example.com"}
        )
        assert reg_id != auth_id

        async def both() -> bool:
            return bool(reg) and bool(auth)

        assert await self.poll_until(both, 1.0 + self.timer_slack)
        assert [p[:2] for p in reg] == [(reg_id, {"aor_id": "sip:a@example.com"})]
        assert [p[:2] for p in auth] == [
            (auth_id, {"impi": "a@example.com", "impu": "sip:a@example.com"})
        ]

    async def test_handler_may_listen_after_the_timer_is_set(self) -> None:
        service = self.make_timer_service()
        timer_id = await service.set_timer("late", 1.0, {"n": 1})
        pops = self._record(service, "late")
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        assert pops[0][:2] == ((timer_id, {"n": 1}))

    async def test_opaque_is_delivered_as_set(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        opaque: dict[str, Any] = {
            "aor_id": "sip:ålice;user=phone@exämple.com",
            "nested": {"list": [1, 2.5, True, None, "😀"], "empty": {}},
            "n": 2**40,
        }
        expected = {
            "aor_id": "sip:ålice;user=phone@exämple.com",
            "nested": {"list": [1, 2.5, True, None, "😀"], "empty": {}},
            "n": 2**40,
        }
        await service.set_timer("reg", 1.0, opaque)
        opaque["aor_id"] = "changed after set_timer"
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        assert pops[0][1] == expected

    async def test_many_timers_get_distinct_ids_and_pop_once_each(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        ids = [await service.set_timer("reg", 1.0, {"n": n}) for n in range(20)]
        assert len(set(ids)) == 20
        assert await self._wait_for(pops, 20, 1.0 + self.timer_slack)
        await self.advance(1.0 + self.timer_slack)
        assert sorted((p[0], p[1]["n"]) for p in pops) == sorted(zip(ids, range(20)))

    async def test_pops_come_in_due_order(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        third = await service.set_timer("reg", 3.0, {"n": 3})
        first = await service.set_timer("reg", 1.0, {"n": 1})
        second = await service.set_timer("reg", 2.0, {"n": 2})
        assert await self._wait_for(pops, 3, 3.0 + self.timer_slack)
        assert [p[0] for p in pops] == [first, second, third]

    async def test_set_with_an_id_replaces_the_timer(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        timer_id = await service.set_timer("reg", 3.0, {"v": 1})
        assert await service.set_timer("reg", 1.0, {"v": 2}, timer_id=timer_id) == timer_id
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        await self.advance(2.0 + self.timer_slack)
        assert [p[:2] for p in pops] == [(timer_id, {"v": 2})]

    async def test_replacing_can_push_the_pop_later(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        timer_id = await service.set_timer("reg", 1.0, {"v": 1})
        start = self.now()
        await service.set_timer("reg", 3.0, {"v": 2}, timer_id=timer_id)
        await self.advance(2.0)
        assert pops == []
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        assert pops[0][:2] == ((timer_id, {"v": 2}))
        assert pops[0][2] >= start + 3.0 - EARLY

    async def test_set_with_a_new_id_creates_it(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        chosen = unique("timer")
        assert await service.set_timer("reg", 1.0, {}, timer_id=chosen) == chosen
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        assert pops[0][:2] == ((chosen, {}))

    async def test_deleted_timer_does_not_pop(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        doomed = await service.set_timer("reg", 1.0, {"v": "doomed"})
        kept = await service.set_timer("reg", 1.0, {"v": "kept"})
        await service.delete_timer(doomed)
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        await self.advance(1.0 + self.timer_slack)
        assert [p[0] for p in pops] == [kept]

    async def test_deleting_unknown_or_popped_timers_is_not_an_error(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        await service.delete_timer(unique("never-set"))
        timer_id = await service.set_timer("reg", 1.0, {})
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        await service.delete_timer(timer_id)
        await service.delete_timer(timer_id)

    async def test_repeat_for_pops_every_interval(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "rf-interim")
        start = self.now()
        timer_id = await service.set_timer("rf-interim", 1.0, {"call": "x"}, repeat_for=3.0)
        assert await self._wait_for(pops, 3, 3.0 + self.timer_slack)
        await self.advance(2.0 + self.timer_slack)
        assert [p[:2] for p in pops] == [(timer_id, {"call": "x"})] * 3
        for n, pop in enumerate(pops, 1):
            assert pop[2] >= start + n * 1.0 - EARLY

    async def test_deleting_a_repeating_timer_stops_it(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "rf-interim")
        timer_id = await service.set_timer("rf-interim", 1.0, {}, repeat_for=10.0)
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        await service.delete_timer(timer_id)
        await self.advance(2.0 + self.timer_slack)
        assert len(pops) == 1

    async def test_failing_handler_gets_the_pop_again_after_the_delay(self) -> None:
        self.addCleanup(self._flush_handler_failures)
        service = self.make_timer_service()
        calls: list[Pop] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append((timer_id, opaque, self.now()))
            if len(calls) == 1:
                raise HandlerError("first delivery fails")

        service.listen("reg", handler)
        timer_id = await service.set_timer("reg", 1.0, {"aor_id": "sip:a@example.com"})
        assert await self._wait_for(calls, 1, 1.0 + self.timer_slack)
        await self.advance(self.timer_redelivery_delay - 0.6)
        assert len(calls) == 1, "redelivered before the delay"
        assert await self._wait_for(calls, 2, 0.6 + self.timer_slack), "not redelivered"
        assert calls[1][2] - calls[0][2] >= self.timer_redelivery_delay - EARLY
        await self.advance(self.timer_redelivery_delay + self.timer_slack)
        assert [c[:2] for c in calls] == [(timer_id, {"aor_id": "sip:a@example.com"})] * 2

    async def test_failed_deferred_gets_the_pop_again(self) -> None:
        self.addCleanup(self._flush_handler_failures)
        service = self.make_timer_service()
        calls: list[Pop] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            calls.append((timer_id, opaque, self.now()))
            if len(calls) == 1:
                return fail(HandlerError("first delivery fails"))
            return succeed(None)

        service.listen("reg", handler)
        timer_id = await service.set_timer("reg", 1.0, {"k": "v"})
        assert await self._wait_for(
            calls, 2, 1.0 + self.timer_redelivery_delay + 2 * self.timer_slack
        )
        await self.advance(self.timer_redelivery_delay + self.timer_slack)
        assert [c[:2] for c in calls] == [(timer_id, {"k": "v"})] * 2

    async def test_pop_is_redelivered_until_a_handler_succeeds(self) -> None:
        self.addCleanup(self._flush_handler_failures)
        service = self.make_timer_service()
        calls: list[Pop] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append((timer_id, opaque, self.now()))
            if len(calls) <= 3:
                raise HandlerError(f"delivery {len(calls)} fails")

        service.listen("reg", handler)
        await service.set_timer("reg", 1.0, {})
        limit = 1.0 + 3 * (self.timer_redelivery_delay + self.timer_slack)
        assert await self._wait_for(calls, 4, limit)
        await self.advance(self.timer_redelivery_delay + self.timer_slack)
        assert len(calls) == 4

    async def test_deferred_that_succeeds_later_is_not_redelivered(self) -> None:
        service = self.make_timer_service()
        calls: list[Pop] = []
        pending: list[Deferred[None]] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            calls.append((timer_id, opaque, self.now()))
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d

        service.listen("reg", handler)
        await service.set_timer("reg", 1.0, {})
        assert await self._wait_for(calls, 1, 1.0 + self.timer_slack)
        await self.advance(0.5)
        pending[0].callback(None)
        await self.advance(self.timer_redelivery_delay + self.timer_slack)
        assert len(calls) == 1

    async def test_closed_service_stops_popping(self) -> None:
        service = self.make_timer_service()
        pops = self._record(service, "reg")
        await service.set_timer("reg", 1.0, {})
        await service.close()
        await self.advance(1.0 + self.timer_slack)
        assert pops == []

    # ------------------------------------------------------------------ several nodes

    async def test_each_pop_goes_to_exactly_one_node(self) -> None:
        first = self.make_timer_service()
        second = self.make_peer()
        pops: list[Pop] = []
        self._record(first, "reg", pops)
        self._record(second, "reg", pops)
        ids = [await (first, second)[n % 2].set_timer("reg", 1.0, {"n": n}) for n in range(20)]
        assert await self._wait_for(pops, 20, 1.0 + self.timer_slack)
        await self.advance(1.0 + self.timer_slack)
        assert sorted(p[0] for p in pops) == sorted(ids)

    async def test_timer_outlives_the_node_that_set_it(self) -> None:
        first = self.make_timer_service()
        second = self.make_peer()
        first_pops = self._record(first, "reg")
        second_pops = self._record(second, "reg")
        timer_id = await first.set_timer("reg", 1.0, {"aor_id": "sip:a@example.com"})
        await first.close()
        assert await self._wait_for(second_pops, 1, 1.0 + self.timer_slack)
        assert first_pops == []
        assert second_pops[0][:2] == ((timer_id, {"aor_id": "sip:a@example.com"}))

    async def test_any_node_can_replace_or_delete_a_timer(self) -> None:
        first = self.make_timer_service()
        second = self.make_peer()
        pops: list[Pop] = []
        self._record(first, "reg", pops)
        self._record(second, "reg", pops)
        replaced = await first.set_timer("reg", 3.0, {"v": 1})
        deleted = await first.set_timer("reg", 1.0, {"v": "doomed"})
        await second.set_timer("reg", 1.0, {"v": 2}, timer_id=replaced)
        await second.delete_timer(deleted)
        assert await self._wait_for(pops, 1, 1.0 + self.timer_slack)
        await self.advance(2.0 + self.timer_slack)
        assert [p[:2] for p in pops] == [(replaced, {"v": 2})]

    async def test_pop_failed_on_a_node_that_then_stops_goes_to_another(self) -> None:
        self.addCleanup(self._flush_handler_failures)
        first = self.make_timer_service()
        second = self.make_peer()
        calls: list[str] = []

        def failing(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append("first")
            raise HandlerError("this node fails")

        def working(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append("second")

        first.listen("reg", failing)
        second.listen("reg", working)
        await first.set_timer("reg", 1.0, {})

        async def delivered() -> bool:
            return bool(calls)

        assert await self.poll_until(delivered, 1.0 + self.timer_slack)
        await first.close()

        async def done() -> bool:
            return "second" in calls

        assert await self.poll_until(done, self.timer_redelivery_delay + 2 * self.timer_slack)
        await self.advance(self.timer_redelivery_delay + self.timer_slack)
        assert calls.count("second") == 1
