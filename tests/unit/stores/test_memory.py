"""The in-process stores (clearwater.stores.memory) and the typed registration and challenge
stores over them (clearwater.stores.typed): the conformance suite on a task.Clock, plus what
only these implementations promise (exact timing, memory bounds, corrupt records)."""

from __future__ import annotations

import json
from typing import Any, Optional

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from typing_extensions import override
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater.stores import records
from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    IChallengeStore,
    IRegistrationStore,
    ISubscriberStore,
    ITimerService,
    NotFoundError,
    StoreUnavailableError,
)
from clearwater.stores.memory import (
    SWEEP_INTERVAL,
    MemoryCasStore,
    MemorySubscriberStore,
    MemoryTimerService,
)
from clearwater.stores.records import AoR, Challenge
from clearwater.stores.typed import ChallengeStore, RegistrationStore, ttl_until
from tests.conformance.stores.cas import CasStoreConformance
from tests.conformance.stores.challenge import (
    ChallengeStoreConformance,
    aka_challenge,
    digest_challenge,
)
from tests.conformance.stores.registration import (
    RegistrationStoreConformance,
    make_aor,
    make_binding,
)
from tests.conformance.stores.subscriber import SubscriberStoreConformance
from tests.conformance.stores.timer import HandlerError, TimerServiceConformance


def failure_of(case: SynchronousTestCase, d: Deferred[Any], *types: type[BaseException]) -> Failure:
    """``case.failureResultOf`` (untyped in trial) with types."""
    f: Failure = case.failureResultOf(d, *types)  # type: ignore[no-untyped-call]
    return f


#: Where the test clocks start: a realistic epoch, with a fraction to exercise rounding.
START = 1_700_000_000.5


class _OnClock(TestCase):
    """A task.Clock as the stores' time (the conformance hooks advance and now)."""

    @override
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self._cas: Optional[MemoryCasStore] = None

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def now(self) -> float:
        return self.clock.seconds()

    def shared_cas(self) -> MemoryCasStore:
        """One MemoryCasStore per test, however often a hook asks for a store."""
        if self._cas is None:
            self._cas = MemoryCasStore(self.clock)
            self.addCleanup(self._cas.close)
        return self._cas


# --------------------------------------------------------------------------- conformance


class TestMemoryCasStoreConformance(CasStoreConformance, _OnClock):
    @override
    def make_cas_store(self) -> ICasStore:
        return self.shared_cas()


class TestRegistrationStoreOnMemoryConformance(RegistrationStoreConformance, _OnClock):
    @override
    def make_registration_store(self) -> IRegistrationStore:
        return RegistrationStore(self.shared_cas())


class TestChallengeStoreOnMemoryConformance(ChallengeStoreConformance, _OnClock):
    @override
    def make_challenge_store(self) -> IChallengeStore:
        return ChallengeStore(self.shared_cas())


class TestMemorySubscriberStoreConformance(SubscriberStoreConformance, _OnClock):
    @override
    def setUp(self) -> None:
        super().setUp()
        self.subscribers = MemorySubscriberStore()

    @override
    def make_subscriber_store(self) -> ISubscriberStore:
        return self.subscribers


class TestMemoryTimerServiceConformance(TimerServiceConformance, _OnClock):
    @override
    def make_timer_service(self) -> ITimerService:
        service = MemoryTimerService(self.clock, redelivery_delay=self.timer_redelivery_delay)
        self.addCleanup(service.close)
        return service


# --------------------------------------------------------------------------- MemoryCasStore


class MemoryCasStoreTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryCasStore(self.clock)

    def test_record_expires_exactly_at_its_ttl(self) -> None:
        self.successResultOf(self.store.set_data("reg", "k", b"v", 0, 3))
        self.clock.advance(2.999)
        assert self.successResultOf(self.store.get_data("reg", "k"))[0] == b"v"
        self.clock.advance(0.001)
        assert self.successResultOf(self.store.get_data("reg", "k")) == (None, 0)

    def test_lifetime_below_one_second_is_refused(self) -> None:
        for ttl in (0, -5):
            failure_of(self, self.store.set_data("reg", "k", b"v", 0, ttl), ValueError)
        assert self.successResultOf(self.store.get_data("reg", "k")) == (None, 0)

    def test_expired_records_are_dropped_when_read(self) -> None:
        self.successResultOf(self.store.set_data("reg", "k", b"v", 0, 1))
        assert len(self.store) == 1
        self.clock.advance(1)
        self.successResultOf(self.store.get_data("reg", "k"))
        assert len(self.store) == 0

    def test_a_sweep_drops_expired_records_nobody_reads(self) -> None:
        for n in range(100):
            self.successResultOf(self.store.set_data("reg", str(n), b"v", 0, 1))
        self.successResultOf(self.store.set_data("reg", "live", b"v", 0, 3600))
        self.clock.advance(SWEEP_INTERVAL - 1)
        self.successResultOf(self.store.set_data("reg", "trigger", b"v", 0, 10))
        assert len(self.store) == 102  # not swept yet: sweeps are a minute apart
        self.clock.advance(1)
        self.successResultOf(self.store.set_data("reg", "trigger2", b"v", 0, 10))
        assert len(self.store) == 3  # live, trigger, trigger2

    def test_tokens_are_positive_and_never_reused(self) -> None:
        tokens = set()
        for n in range(20):
            key = str(n % 3)
            _, cas = self.successResultOf(self.store.get_data("reg", key))
            self.successResultOf(self.store.set_data("reg", key, b"v", cas, 10))
            tokens.add(self.successResultOf(self.store.get_data("reg", key))[1])
            if n % 5 == 0:
                self.successResultOf(self.store.delete_data("reg", key))
        assert len(tokens) == 20
        assert min(tokens) > 0

    def test_contention_message_names_the_record(self) -> None:
        self.successResultOf(self.store.set_data("reg", "sip:a@example.com", b"v", 0, 10))
        f = failure_of(
            self, self.store.set_data("reg", "sip:a@example.com", b"w", 0, 10), DataContentionError
        )
        assert "sip:a@example.com" in str(f.value)

    def test_closed_store_is_unavailable(self) -> None:
        self.successResultOf(self.store.set_data("reg", "k", b"v", 0, 10))
        self.successResultOf(self.store.close())
        failure_of(self, self.store.get_data("reg", "k"), StoreUnavailableError)
        failure_of(self, self.store.set_data("reg", "k", b"v", 0, 10), StoreUnavailableError)
        failure_of(self, self.store.delete_data("reg", "k"), StoreUnavailableError)

    def test_stored_bytes_are_a_copy(self) -> None:
        data = bytearray(b"original")
        self.successResultOf(self.store.set_data("reg", "k", data, 0, 10))  # type: ignore[arg-type]
        data[:] = b"mutated!"
        assert self.successResultOf(self.store.get_data("reg", "k"))[0] == b"original"


# --------------------------------------------------------------------------- MemoryTimerService


class MemoryTimerServiceTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.service = MemoryTimerService(self.clock, redelivery_delay=5.0)
        self.pops: list[tuple[str, dict[str, Any], float]] = []
        self.service.listen("reg", self.record)

    def record(self, timer_id: str, opaque: dict[str, Any]) -> None:
        self.pops.append((timer_id, opaque, self.clock.seconds()))

    def test_verify_object(self) -> None:
        assert verifyObject(ITimerService, self.service)

    def test_ids_are_uuid4_hex(self) -> None:
        timer_id = self.successResultOf(self.service.set_timer("reg", 1.0, {}))
        assert len(timer_id) == 32
        assert int(timer_id, 16) >= 0

    def test_pops_exactly_on_time_and_then_forgets_the_timer(self) -> None:
        timer_id = self.successResultOf(self.service.set_timer("reg", 30.0, {"a": 1}))
        self.clock.advance(29.999)
        assert self.pops == []
        self.clock.advance(0.001)
        assert self.pops == [(timer_id, {"a": 1}, START + 30.0)]
        assert len(self.service) == 0
        assert self.clock.getDelayedCalls() == []

    def test_repeat_for_counts_whole_intervals(self) -> None:
        self.successResultOf(self.service.set_timer("reg", 2.0, {}, repeat_for=7.0))
        self.clock.pump([1.0] * 20)
        assert [p[2] - START for p in self.pops] == [2.0, 4.0, 6.0]

    def test_repeat_for_shorter_than_the_interval_pops_once(self) -> None:
        self.successResultOf(self.service.set_timer("reg", 2.0, {}, repeat_for=1.0))
        self.clock.pump([1.0] * 10)
        assert [p[2] - START for p in self.pops] == [2.0]

    def test_repeats_keep_their_schedule_while_a_pop_is_redelivered(self) -> None:
        calls: list[float] = []

        def flaky(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append(self.clock.seconds() - START)
            if len(calls) == 1:
                raise HandlerError("first pop fails")

        self.service.listen("rf", flaky)
        self.successResultOf(self.service.set_timer("rf", 3.0, {}, repeat_for=9.0))
        self.clock.pump([0.5] * 30)
        assert calls == [3.0, 6.0, 8.0, 9.0]
        assert len(self.flushLoggedErrors(HandlerError)) == 1  # type: ignore[no-untyped-call]

    def test_redelivery_comes_exactly_after_the_delay(self) -> None:
        calls: list[float] = []

        def failing(timer_id: str, opaque: dict[str, Any]) -> None:
            calls.append(self.clock.seconds() - START)
            if len(calls) < 3:
                raise HandlerError("not yet")

        self.service.listen("auth", failing)
        self.successResultOf(self.service.set_timer("auth", 1.0, {}))
        self.clock.pump([0.25] * 60)
        assert calls == [1.0, 6.0, 11.0]
        assert len(self.service) == 0
        assert len(self.flushLoggedErrors(HandlerError)) == 2  # type: ignore[no-untyped-call]

    def test_pop_without_a_handler_waits_for_one(self) -> None:
        with capturedLogs() as events:
            timer_id = self.successResultOf(self.service.set_timer("nobody", 1.0, {"x": 1}))
            self.clock.advance(1.0)
        assert [e.get("kind") for e in events] == ["nobody"]
        got: list[str] = []
        self.service.listen("nobody", lambda t, o: got.append(t))
        self.clock.advance(5.0)
        assert got == [timer_id]

    def test_delete_cancels_a_pending_redelivery(self) -> None:
        def failing(timer_id: str, opaque: dict[str, Any]) -> None:
            raise HandlerError("fails")

        self.service.listen("auth", failing)
        timer_id = self.successResultOf(self.service.set_timer("auth", 1.0, {}))
        self.clock.advance(1.0)
        self.successResultOf(self.service.delete_timer(timer_id))
        assert self.clock.getDelayedCalls() == []
        assert len(self.flushLoggedErrors(HandlerError)) == 1  # type: ignore[no-untyped-call]

    def test_replacing_cancels_the_old_schedule(self) -> None:
        timer_id = self.successResultOf(self.service.set_timer("reg", 1.0, {"v": 1}))
        self.successResultOf(self.service.set_timer("reg", 4.0, {"v": 2}, timer_id=timer_id))
        assert len(self.clock.getDelayedCalls()) == 1
        self.clock.pump([1.0] * 6)
        assert [(p[1], p[2] - START) for p in self.pops] == [({"v": 2}, 4.0)]

    def test_each_pop_gets_its_own_opaque(self) -> None:
        seen: list[dict[str, Any]] = []

        def mutating(timer_id: str, opaque: dict[str, Any]) -> None:
            seen.append(dict(opaque))
            opaque["n"] = "mutated"

        self.service.listen("rf", mutating)
        self.successResultOf(self.service.set_timer("rf", 1.0, {"n": 1}, repeat_for=2.0))
        self.clock.pump([1.0, 1.0])
        assert seen == [{"n": 1}, {"n": 1}]

    def test_bad_arguments_fail_the_deferred(self) -> None:
        failure_of(self, self.service.set_timer("reg", 1.0, {"x": object()}), ValueError)
        failure_of(self, self.service.set_timer("reg", 1.0, {"x": float("nan")}), ValueError)
        failure_of(self, self.service.set_timer("reg", -1.0, {}), ValueError)
        failure_of(self, self.service.set_timer("reg", float("nan"), {}), ValueError)
        failure_of(self, self.service.set_timer("reg", 1.0, {}, repeat_for=-1.0), ValueError)
        assert self.clock.getDelayedCalls() == []

    def test_closed_service_refuses_timers_and_cancels_its_calls(self) -> None:
        self.successResultOf(self.service.set_timer("reg", 1.0, {}))
        self.successResultOf(self.service.close())
        assert self.clock.getDelayedCalls() == []
        failure_of(self, self.service.set_timer("reg", 1.0, {}), StoreUnavailableError)

    def test_pending_handler_deferred_holds_the_timer_until_it_fires(self) -> None:
        pending: Deferred[None] = Deferred()
        self.service.listen("slow", lambda t, o: pending)
        self.successResultOf(self.service.set_timer("slow", 1.0, {}))
        self.clock.advance(1.0)
        assert len(self.service) == 1
        pending.callback(None)
        assert len(self.service) == 0
        self.clock.advance(10.0)
        assert self.clock.getDelayedCalls() == []


# --------------------------------------------------------------------------- MemorySubscriberStore


class MemorySubscriberStoreTests(SynchronousTestCase):
    def test_verify_object(self) -> None:
        assert verifyObject(ISubscriberStore, MemorySubscriberStore())

    def test_create_irs_with_an_existing_id_keeps_it(self) -> None:
        store = MemorySubscriberStore()
        irs = self.successResultOf(store.create_irs("fixed"))
        sp = self.successResultOf(store.create_service_profile(irs, "<x/>"))
        assert self.successResultOf(store.create_irs("fixed")) == "fixed"
        assert self.successResultOf(store.service_profiles_of_irs("fixed")) == [sp]

    def test_not_found_messages(self) -> None:
        store = MemorySubscriberStore()
        f = failure_of(self, store.set_ifcs("irs-1", "sp-1", ""), NotFoundError)
        assert str(f.value) == "No implicit registration set irs-1"
        self.successResultOf(store.create_irs("irs-1"))
        f = failure_of(self, store.set_ifcs("irs-1", "sp-1", ""), NotFoundError)
        assert str(f.value) == "No service profile sp-1 in implicit registration set irs-1"
        f = failure_of(self, store.advance_sqn("ue@x", 0, 1), NotFoundError)
        assert str(f.value) == "No AKA credentials for private identity ue@x"

    def test_list_publics_with_a_zero_limit(self) -> None:
        store = MemorySubscriberStore()
        assert self.successResultOf(store.list_publics(limit=0)) == []


# --------------------------------------------------------------------------- typed stores


@implementer(ICasStore)
class RecordingCasStore:
    """An ICasStore that records writes and passes them to a MemoryCasStore."""

    def __init__(self, inner: MemoryCasStore) -> None:
        self.inner = inner
        self.writes: list[tuple[str, str, bytes, int, int]] = []

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        return self.inner.get_data(table, key)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        self.writes.append((table, key, data, cas, ttl))
        return self.inner.set_data(table, key, data, cas, ttl)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        return self.inner.delete_data(table, key)

    def close(self) -> Deferred[None]:
        return self.inner.close()


class TypedStoreTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.cas = RecordingCasStore(MemoryCasStore(self.clock))
        self.registrations = RegistrationStore(self.cas)
        self.challenges = ChallengeStore(self.cas)

    def test_ttl_until(self) -> None:
        assert ttl_until(None, 100.0) == 0
        assert ttl_until(100.0, 100.0) == 0
        assert ttl_until(99.0, 100.0) == 0
        assert ttl_until(100.001, 100.0) == 1
        assert ttl_until(130.5, 100.0) == 31
        assert ttl_until(130.0, 100.0) == 30

    def test_aor_is_written_as_clearwater_json_with_expiry_plus_10s(self) -> None:
        aor = make_aor(int(START) + 30, int(START) - 100)
        self.successResultOf(self.registrations.set_aor("sip:a@example.com", aor, 0, START))
        [(table, key, data, cas, ttl)] = self.cas.writes
        assert (table, key, cas) == ("reg", "sip:a@example.com", 0)
        assert ttl == 40  # 30 - 0.5 + 10, rounded up
        assert data == records.dumps(aor.to_json())
        assert json.loads(data)["bindings"]
        assert set(json.loads(data)) >= {"bindings", "subscriptions", "associated-uris"}

    def test_aor_lifetime_follows_a_later_subscription(self) -> None:
        aor = make_aor(int(START) - 100, int(START) + 600)
        self.successResultOf(self.registrations.set_aor("sip:a@example.com", aor, 0, START))
        assert self.cas.writes[0][4] == 610

    def test_aor_just_inside_its_linger_lives_one_second(self) -> None:
        aor = AoR(bindings=(("b", make_binding(int(START) - 9, 1)),))
        self.successResultOf(self.registrations.set_aor("sip:a@example.com", aor, 0, START))
        assert self.cas.writes[0][2:] == (records.dumps(aor.to_json()), 0, 1)

    def test_empty_or_long_expired_aor_is_a_cas_tombstone(self) -> None:
        self.successResultOf(self.registrations.set_aor("sip:a@example.com", AoR(), 0, START))
        expired = AoR(bindings=(("b", make_binding(int(START) - 11, 1)),))
        _, cas = self.successResultOf(self.registrations.get_aor("sip:a@example.com"))
        self.successResultOf(self.registrations.set_aor("sip:a@example.com", expired, cas, START))
        assert [w[2:] for w in self.cas.writes] == [(b"", 0, 1), (b"", cas, 1)]
        assert self.successResultOf(self.registrations.get_aor("sip:a@example.com"))[0] is None
        self.clock.advance(1)
        assert self.successResultOf(self.registrations.get_aor("sip:a@example.com")) == (None, 0)

    def test_clearwater_record_from_the_store_parses(self) -> None:
        # A record as clearwater-s4 wrote it (spec §3.4), with a member we do not know.
        stored = {
            "bindings": {
                "<urn:uuid:00000000-0000-0000-0000-b4dd32817622>:1": {
                    "uri": "sip:6505550231@192.91.191.29:59934;transport=tcp;ob",
                    "cid": "gfYHoZGaFaRNxhlV0WIwoS-f91NoJ2gq",
                    "cseq": 3,
                    "expires": int(START) + 300,
                    "priority": 0,
                    "params": {
                        "+sip.instance": '"<urn:uuid:00000000-0000-0000-0000-b4dd32817622>"',
                        "reg-id": "1",
                        "+sip.ice": "",
                    },
                    "path_headers": ["<sip:abcdefgh@bono-1.cw-ngv.com;lr;ob>"],
                    "private_id": "6505550231@cw-ngv.com",
                    "emergency_reg": False,
                }
            },
            "subscriptions": {},
            "associated-uris": {"uris": [{"uri": "sip:6505550231@cw-ngv.com", "barring": False}]},
            "notify_cseq": 7,
            "timer_id": "Deprecated",
            "scscf-uri": "sip:scscf.sprout.cw-ngv.com:5054;transport=tcp",
            "s4-extension": {"version": 2},
        }
        data = json.dumps(stored).encode()
        self.successResultOf(self.cas.set_data("reg", "sip:6505550231@cw-ngv.com", data, 0, 300))
        aor, cas = self.successResultOf(self.registrations.get_aor("sip:6505550231@cw-ngv.com"))
        assert aor is not None
        assert aor.notify_cseq == 7
        assert aor.extra == (("s4-extension", {"version": 2}),)
        [(_, binding)] = aor.bindings
        assert binding.path_headers == ("<sip:abcdefgh@bono-1.cw-ngv.com;lr;ob>",)
        # Written back, it is the same JSON.
        self.successResultOf(
            self.registrations.set_aor("sip:6505550231@cw-ngv.com", aor, cas, START)
        )
        assert json.loads(self.cas.writes[-1][2]) == stored

    def test_an_unchanged_aor_is_parsed_once(self) -> None:
        key = "sip:alice@example.com"
        self.successResultOf(self.registrations.set_aor(key, make_aor(int(START) + 60), 0, START))
        first, cas = self.successResultOf(self.registrations.get_aor(key))
        again, cas_again = self.successResultOf(self.registrations.get_aor(key))
        assert again is first and cas_again == cas
        changed = attrs.evolve(make_aor(int(START) + 60), notify_cseq=9)
        self.successResultOf(self.registrations.set_aor(key, changed, cas, START))
        latest, _ = self.successResultOf(self.registrations.get_aor(key))
        assert latest == changed and latest is not changed

    def test_corrupt_aor_reads_as_absent_with_its_cas_and_is_logged(self) -> None:
        for n, bad in enumerate(
            (
                b"\xff\xfe not json",
                b"[1, 2]",
                b'{"bindings": []}',
                b'{"bindings": {"b": {"cseq": "1"}}}',
                b'{"bindings": ' + b"[" * 100_000,
            )
        ):
            key = f"sip:corrupt{n}@example.com"
            self.successResultOf(self.cas.set_data("reg", key, bad, 0, 300))
            _, cas = self.successResultOf(self.cas.get_data("reg", key))
            with capturedLogs() as events:
                assert self.successResultOf(self.registrations.get_aor(key)) == (None, cas)
            assert [e["aor_id"] for e in events] == [key]
            assert events[0]["reason"].startswith("Bad ")
            # A writer that read it replaces it with that CAS.
            aor = make_aor(int(START) + 60)
            self.successResultOf(self.registrations.set_aor(key, aor, cas, START))
            assert self.successResultOf(self.registrations.get_aor(key))[0] == aor

    def test_challenges_are_written_as_auth_challenges_until_the_latest_expiry(self) -> None:
        challenges = (digest_challenge(int(START) + 40), aka_challenge(int(START) + 10))
        self.successResultOf(
            self.challenges.set_challenges("alice@example.com", challenges, 0, START)
        )
        [(table, key, data, cas, ttl)] = self.cas.writes
        assert (table, key, cas, ttl) == ("impi", "alice@example.com", 0, 40)
        body = json.loads(data)
        assert list(body) == ["authChallenges"]
        assert [c["type"] for c in body["authChallenges"]] == ["digest", "aka"]
        assert body["authChallenges"][0]["ha1"] == digest_challenge(0).ha1
        assert body["authChallenges"][1]["response"] == "a54211d5e3ba50bf"

    def test_no_live_challenges_is_a_cas_tombstone(self) -> None:
        self.successResultOf(self.challenges.set_challenges("a@x", (), 0, START))
        _, cas = self.successResultOf(self.challenges.get_challenges("a@x"))
        stale = (digest_challenge(int(START)),)
        self.successResultOf(self.challenges.set_challenges("a@x", stale, cas, START))
        assert [w[2:] for w in self.cas.writes] == [(b"", 0, 1), (b"", cas, 1)]

    def test_corrupt_impi_record_reads_as_no_challenges(self) -> None:
        for n, bad in enumerate(
            (
                b"{",
                b'"text"',
                b'{"authChallenges": {}}',
                b'{"authChallenges": [{"type": "x"}]}',
                b'{"authChallenges": ' + b"[" * 100_000,
            )
        ):
            key = f"corrupt{n}@example.com"
            self.successResultOf(self.cas.set_data("impi", key, bad, 0, 300))
            _, cas = self.successResultOf(self.cas.get_data("impi", key))
            with capturedLogs() as events:
                assert self.successResultOf(self.challenges.get_challenges(key)) == ((), cas)
            assert [e["impi"] for e in events] == [key]
            fresh: tuple[Challenge, ...] = (digest_challenge(int(START) + 40),)
            self.successResultOf(self.challenges.set_challenges(key, fresh, cas, START))
            assert self.successResultOf(self.challenges.get_challenges(key))[0] == fresh

    def test_clearwater_impi_record_parses_and_keeps_unknown_members(self) -> None:
        stored = {
            "authChallenges": [
                {
                    "type": "digest",
                    "nonce": "abcdef0123456789",
                    "nc": 1,
                    "expires": int(START) + 40,
                    "correlator": "c0rr",
                    "scscf-uri": "sip:scscf.example.com",
                    "timer_id": "t1",
                    "realm": "example.com",
                    "qop": "auth",
                    "ha1": "0123456789abcdef0123456789abcdef",
                    "impu": "sip:alice@example.com",
                }
            ]
        }
        self.successResultOf(
            self.cas.set_data("impi", "alice@example.com", json.dumps(stored).encode(), 0, 40)
        )
        challenges, cas = self.successResultOf(self.challenges.get_challenges("alice@example.com"))
        assert challenges[0].extra == (("impu", "sip:alice@example.com"),)
        bumped = (attrs.evolve(challenges[0], nc=2),)
        self.successResultOf(
            self.challenges.set_challenges("alice@example.com", bumped, cas, START)
        )
        stored["authChallenges"][0]["nc"] = 2
        assert json.loads(self.cas.writes[-1][2]) == stored

    def test_verify_object(self) -> None:
        assert verifyObject(IRegistrationStore, self.registrations)
        assert verifyObject(IChallengeStore, self.challenges)
        assert verifyObject(ICasStore, MemoryCasStore(self.clock))
