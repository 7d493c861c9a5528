"""In-process store implementations (ARCHITECTURE.md §3: the embedded default for
registrations, challenges and timers; the test double for everything else).

- :class:`MemoryCasStore`: Clearwater's ``Store`` (cpp-common ``store.h``; spec §1.4, §3.4)
  as a dict, with CAS tokens and lifetimes on an injected clock.
- :class:`MemorySubscriberStore`: homestead-prov's provisioning model (spec §6.6) in dicts.
- :class:`MemoryTimerService`: Chronos' timers (spec §3.5, §6.3) as reactor calls, with
  at-least-once delivery: a failed pop is delivered again after the redelivery delay.

Every method answers with an already-fired Deferred; nothing raises synchronously.
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from typing import Any, Optional

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    ISubscriberStore,
    ITimerService,
    NotFoundError,
    StoreUnavailableError,
    TimerHandler,
)
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServiceProfile,
)

__all__ = ["MemoryCasStore", "MemorySubscriberStore", "MemoryTimerService"]

log = Logger()

#: Seconds between full sweeps of expired records (records are also dropped when read).
SWEEP_INTERVAL = 60.0


# --------------------------------------------------------------------------- CAS store


@implementer(ICasStore)
class MemoryCasStore:
    """:class:`ICasStore` in a dict: ``(table, key) → (data, cas, expires_at)``.

    CAS tokens come from one counter, so every write of any key gets a new token. Lifetimes
    run on ``clock``: an expired record reads as absent and is dropped when touched, and a
    sweep every :data:`SWEEP_INTERVAL` seconds (run from a write, never a timer) drops the
    rest, so the dict holds no more than the live records plus a minute's worth of dead ones.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[bytes, int, float]] = {}
        self._tokens = itertools.count(1)
        self._next_sweep = clock.seconds() + SWEEP_INTERVAL
        self._closed = False

    def __len__(self) -> int:
        """Records held, live or not yet swept."""
        return len(self._records)

    def _live(self, table: str, key: str, now: float) -> Optional[tuple[bytes, int, float]]:
        record = self._records.get((table, key))
        if record is not None and record[2] <= now:
            del self._records[(table, key)]
            return None
        return record

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for k in [k for k, (_, _, expires) in self._records.items() if expires <= now]:
            del self._records[k]

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        if self._closed:
            return defer.fail(StoreUnavailableError("The store is closed"))
        record = self._live(table, key, self._clock.seconds())
        if record is None:
            return defer.succeed((None, 0))
        return defer.succeed((record[0], record[1]))

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        if self._closed:
            return defer.fail(StoreUnavailableError("The store is closed"))
        if ttl < 1:
            return defer.fail(ValueError("A record lives at least 1 s, not " + repr(ttl)))
        now = self._clock.seconds()
        self._sweep(now)
        record = self._live(table, key, now)
        current = 0 if record is None else record[1]
        if cas != current:
            what = "already exists" if cas == 0 else "changed or vanished"
            return defer.fail(DataContentionError(table + " record " + key + " " + what))
        self._records[(table, key)] = (bytes(data), next(self._tokens), now + ttl)
        return defer.succeed(None)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        if self._closed:
            return defer.fail(StoreUnavailableError("The store is closed"))
        self._records.pop((table, key), None)
        return defer.succeed(None)

    def close(self) -> Deferred[None]:
        self._closed = True
        self._records.clear()
        return defer.succeed(None)


# --------------------------------------------------------------------------- subscriber store


@attrs.define
class _ServiceProfile:
    ifcs_xml: str
    publics: dict[str, int] = attrs.Factory(dict)  # IMPU → provisioning sequence number


@attrs.define
class _Irs:
    privates: set[str] = attrs.Factory(set)
    profiles: dict[str, _ServiceProfile] = attrs.Factory(dict)
    registration: RegistrationState = attrs.Factory(RegistrationState)


@implementer(ISubscriberStore)
class MemorySubscriberStore:
    """:class:`ISubscriberStore` in dicts (lost on restart: for tests and throw-away setups;
    the embedded default that keeps subscribers is SQLite).

    Semantics where the interface leaves room, shared by every back end through the
    conformance suite (``tests/conformance/stores/subscriber.py``): list lookups naming a
    missing IRS or private identity fail with NotFoundError; replacing a private identity
    keeps its IRSs; replacing a public identity in its service profile keeps its place in
    :meth:`publics_of_irs`, moving it to another service profile puts it last.
    """

    def __init__(self) -> None:
        self._privates: dict[str, PrivateIdentity] = {}
        self._irs_of_private: dict[str, set[str]] = {}
        self._irs: dict[str, _Irs] = {}
        self._publics: dict[str, PublicIdentity] = {}
        self._sequence = itertools.count(1)

    # -- helpers

    def _get_irs(self, irs: str) -> _Irs:
        found = self._irs.get(irs)
        if found is None:
            raise NotFoundError("No implicit registration set " + irs)
        return found

    def _get_profile(self, irs: str, sp: str) -> _ServiceProfile:
        found = self._get_irs(irs).profiles.get(sp)
        if found is None:
            raise NotFoundError("No service profile " + sp + " in implicit registration set " + irs)
        return found

    def _get_private(self, impi: str) -> PrivateIdentity:
        found = self._privates.get(impi)
        if found is None:
            raise NotFoundError("No private identity " + impi)
        return found

    def _remove_public(self, impu: str) -> None:
        old = self._publics.pop(impu, None)
        if old is not None:
            self._irs[old.irs].profiles[old.sp].publics.pop(impu, None)

    # -- private identities

    def put_private(self, identity: PrivateIdentity) -> Deferred[None]:
        self._privates[identity.impi] = identity
        self._irs_of_private.setdefault(identity.impi, set())
        return defer.succeed(None)

    def get_private(self, impi: str) -> Deferred[Optional[PrivateIdentity]]:
        return defer.succeed(self._privates.get(impi))

    def delete_private(self, impi: str) -> Deferred[None]:
        try:
            self._get_private(impi)
        except NotFoundError:
            return defer.fail()
        del self._privates[impi]
        for irs in self._irs_of_private.pop(impi, set()):
            self._irs[irs].privates.discard(impi)
        return defer.succeed(None)

    def advance_sqn(self, impi: str, expected: int, sqn: int) -> Deferred[bool]:
        identity = self._privates.get(impi)
        if identity is None or identity.aka is None:
            return defer.fail(NotFoundError("No AKA credentials for private identity " + impi))
        if identity.aka.sqn != expected:
            return defer.succeed(False)
        aka: AkaCredentials = attrs.evolve(identity.aka, sqn=sqn)
        self._privates[impi] = attrs.evolve(identity, aka=aka)
        return defer.succeed(True)

    # -- implicit registration sets

    def create_irs(self, irs: Optional[str] = None) -> Deferred[str]:
        if irs is None:
            irs = str(uuid.uuid4())
        self._irs.setdefault(irs, _Irs())
        return defer.succeed(irs)

    def delete_irs(self, irs: str) -> Deferred[None]:
        try:
            found = self._get_irs(irs)
        except NotFoundError:
            return defer.fail()
        for profile in found.profiles.values():
            for impu in profile.publics:
                del self._publics[impu]
        for impi in found.privates:
            self._irs_of_private[impi].discard(irs)
        del self._irs[irs]
        return defer.succeed(None)

    def associate(self, irs: str, impi: str) -> Deferred[None]:
        try:
            found = self._get_irs(irs)
            self._get_private(impi)
        except NotFoundError:
            return defer.fail()
        found.privates.add(impi)
        self._irs_of_private[impi].add(irs)
        return defer.succeed(None)

    def dissociate(self, irs: str, impi: str) -> Deferred[None]:
        found = self._irs.get(irs)
        if found is not None:
            found.privates.discard(impi)
        self._irs_of_private.get(impi, set()).discard(irs)
        return defer.succeed(None)

    def irs_of_private(self, impi: str) -> Deferred[list[str]]:
        try:
            self._get_private(impi)
        except NotFoundError:
            return defer.fail()
        return defer.succeed(sorted(self._irs_of_private[impi]))

    def privates_of_irs(self, irs: str) -> Deferred[list[str]]:
        try:
            return defer.succeed(sorted(self._get_irs(irs).privates))
        except NotFoundError:
            return defer.fail()

    # -- service profiles

    def create_service_profile(self, irs: str, ifcs_xml: str = "") -> Deferred[ServiceProfile]:
        try:
            found = self._get_irs(irs)
        except NotFoundError:
            return defer.fail()
        sp = str(uuid.uuid4())
        found.profiles[sp] = _ServiceProfile(ifcs_xml)
        return defer.succeed(ServiceProfile(irs, sp, ifcs_xml))

    def get_service_profile(self, irs: str, sp: str) -> Deferred[Optional[ServiceProfile]]:
        found = self._irs.get(irs)
        profile = found.profiles.get(sp) if found is not None else None
        if profile is None:
            return defer.succeed(None)
        return defer.succeed(ServiceProfile(irs, sp, profile.ifcs_xml))

    def set_ifcs(self, irs: str, sp: str, ifcs_xml: str) -> Deferred[None]:
        try:
            self._get_profile(irs, sp).ifcs_xml = ifcs_xml
        except NotFoundError:
            return defer.fail()
        return defer.succeed(None)

    def delete_service_profile(self, irs: str, sp: str) -> Deferred[None]:
        try:
            profile = self._get_profile(irs, sp)
        except NotFoundError:
            return defer.fail()
        for impu in profile.publics:
            del self._publics[impu]
        del self._irs[irs].profiles[sp]
        return defer.succeed(None)

    def service_profiles_of_irs(self, irs: str) -> Deferred[list[ServiceProfile]]:
        try:
            found = self._get_irs(irs)
        except NotFoundError:
            return defer.fail()
        return defer.succeed(
            [ServiceProfile(irs, sp, found.profiles[sp].ifcs_xml) for sp in sorted(found.profiles)]
        )

    # -- public identities

    def put_public(self, identity: PublicIdentity) -> Deferred[None]:
        try:
            profile = self._get_profile(identity.irs, identity.sp)
        except NotFoundError:
            return defer.fail()
        old = self._publics.get(identity.impu)
        if old is None or (old.irs, old.sp) != (identity.irs, identity.sp):
            self._remove_public(identity.impu)
            profile.publics[identity.impu] = next(self._sequence)
        self._publics[identity.impu] = identity
        return defer.succeed(None)

    def get_public(self, impu: str) -> Deferred[Optional[PublicIdentity]]:
        return defer.succeed(self._publics.get(impu))

    def delete_public(self, impu: str) -> Deferred[None]:
        if impu not in self._publics:
            return defer.fail(NotFoundError("No public identity " + impu))
        self._remove_public(impu)
        return defer.succeed(None)

    def publics_of_irs(self, irs: str) -> Deferred[list[PublicIdentity]]:
        try:
            found = self._get_irs(irs)
        except NotFoundError:
            return defer.fail()
        ordered = sorted(
            (seq, impu)
            for profile in found.profiles.values()
            for impu, seq in profile.publics.items()
        )
        return defer.succeed([self._publics[impu] for _, impu in ordered])

    def publics_of_private(self, impi: str) -> Deferred[list[str]]:
        try:
            self._get_private(impi)
        except NotFoundError:
            return defer.fail()
        impus = {
            impu
            for irs in self._irs_of_private[impi]
            for profile in self._irs[irs].profiles.values()
            for impu in profile.publics
        }
        return defer.succeed(sorted(impus))

    def wildcard_publics(self) -> Deferred[list[PublicIdentity]]:
        return defer.succeed(
            [self._publics[impu] for impu in sorted(self._publics) if self._publics[impu].wildcard]
        )

    def list_publics(self, after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        impus = sorted(impu for impu in self._publics if impu > after)[: max(limit, 0)]
        return defer.succeed([self._publics[impu] for impu in impus])

    # -- registration state

    def get_registration(self, irs: str) -> Deferred[RegistrationState]:
        found = self._irs.get(irs)
        return defer.succeed(found.registration if found is not None else RegistrationState())

    def set_registration(self, irs: str, state: RegistrationState) -> Deferred[None]:
        try:
            self._get_irs(irs).registration = state
        except NotFoundError:
            return defer.fail()
        return defer.succeed(None)

    def close(self) -> Deferred[None]:
        return defer.succeed(None)


# --------------------------------------------------------------------------- timer service


@attrs.define
class _Timer:
    kind: str
    interval: float
    opaque: str  # JSON: each pop gets its own copy
    start: float
    pops: int  # how many pops in all (repeat_for // interval, at least 1)
    popped: int = 0
    call: Optional[IDelayedCall] = None
    redeliveries: list[IDelayedCall] = attrs.Factory(list)

    def cancel(self) -> None:
        for call in [self.call, *self.redeliveries]:
            if call is not None and call.active():
                call.cancel()
        self.call = None
        self.redeliveries.clear()


@implementer(ITimerService)
class MemoryTimerService:
    """:class:`ITimerService` on ``reactor.callLater``: timers live as long as this process.

    A timer pops ``interval`` seconds after it is set, then every ``interval`` until
    ``repeat_for`` has passed: ``repeat_for // interval`` pops (spec §6.3), but at least one
    (Chronos pops none when ``repeat_for < interval``; the interface promises the first).

    A pop whose handler raises, whose Deferred fails, or whose kind nobody listens for is
    delivered again ``redelivery_delay`` seconds later, until a handler succeeds or the timer
    is replaced or deleted. Each delivery gets its own copy of the opaque.
    """

    def __init__(self, reactor: IReactorTime, redelivery_delay: float = 10.0) -> None:
        self._reactor = reactor
        self._redelivery_delay = redelivery_delay
        self._handlers: dict[str, TimerHandler] = {}
        self._timers: dict[str, _Timer] = {}
        self._closed = False

    def __len__(self) -> int:
        """Timers with pops (or redeliveries) still to come."""
        return len(self._timers)

    def listen(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    def set_timer(
        self,
        kind: str,
        interval: float,
        opaque: dict[str, Any],
        timer_id: Optional[str] = None,
        repeat_for: Optional[float] = None,
    ) -> Deferred[str]:
        if self._closed:
            return defer.fail(StoreUnavailableError("The timer service is closed"))
        if not interval >= 0 or (repeat_for is not None and not repeat_for >= 0):
            return defer.fail(ValueError("Bad timer interval or repeat_for"))
        try:
            encoded = json.dumps(opaque, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            return defer.fail(ValueError("Timer opaque is not JSON: " + str(e)))
        if timer_id is None:
            timer_id = uuid.uuid4().hex
        else:
            self._cancel(timer_id)
        pops = 1
        if repeat_for is not None and interval > 0:
            pops = max(1, math.floor(repeat_for / interval + 1e-9))
        timer = _Timer(kind, interval, encoded, self._reactor.seconds(), pops)
        self._timers[timer_id] = timer
        self._schedule(timer_id, timer)
        return defer.succeed(timer_id)

    def delete_timer(self, timer_id: str) -> Deferred[None]:
        self._cancel(timer_id)
        return defer.succeed(None)

    def close(self) -> Deferred[None]:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        return defer.succeed(None)

    # -- internals

    def _cancel(self, timer_id: str) -> None:
        timer = self._timers.pop(timer_id, None)
        if timer is not None:
            timer.cancel()

    def _schedule(self, timer_id: str, timer: _Timer) -> None:
        due = timer.start + (timer.popped + 1) * timer.interval
        delay = max(0.0, due - self._reactor.seconds())
        timer.call = self._reactor.callLater(delay, self._pop, timer_id, timer)

    def _pop(self, timer_id: str, timer: _Timer) -> None:
        timer.call = None
        timer.popped += 1
        if timer.popped < timer.pops:
            self._schedule(timer_id, timer)
        self._deliver(timer_id, timer)

    def _finished(self, timer_id: str, timer: _Timer) -> None:
        if timer.call is None and not timer.redeliveries and self._timers.get(timer_id) is timer:
            del self._timers[timer_id]

    def _deliver(self, timer_id: str, timer: _Timer) -> None:
        if self._timers.get(timer_id) is not timer:
            return  # replaced or deleted meanwhile
        handler = self._handlers.get(timer.kind)
        if handler is None:
            log.warn("No handler for {kind} timer {timer_id}", kind=timer.kind, timer_id=timer_id)
            self._redeliver(timer_id, timer)
            return
        try:
            result = handler(timer_id, json.loads(timer.opaque))
        except Exception:
            log.failure(
                "{kind} timer {timer_id} handler failed", kind=timer.kind, timer_id=timer_id
            )
            self._redeliver(timer_id, timer)
            return
        if result is None:
            self._finished(timer_id, timer)
            return

        def done(_: None) -> None:
            self._finished(timer_id, timer)

        def failed(failure: Failure) -> None:
            log.failure(
                "{kind} timer {timer_id} handler failed",
                failure,
                kind=timer.kind,
                timer_id=timer_id,
            )
            self._redeliver(timer_id, timer)

        result.addCallbacks(done, failed)

    def _redeliver(self, timer_id: str, timer: _Timer) -> None:
        if self._timers.get(timer_id) is not timer:
            return

        def again() -> None:
            if call in timer.redeliveries:
                timer.redeliveries.remove(call)
            self._deliver(timer_id, timer)

        call = self._reactor.callLater(self._redelivery_delay, again)
        timer.redeliveries.append(call)
