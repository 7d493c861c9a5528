"""The store conformance suite (ARCHITECTURE.md §3, ``clearwater.stores.interfaces``).

One mixin per interface, for :class:`twisted.trial.unittest.TestCase`:

- :class:`tests.conformance.stores.cas.CasStoreConformance` (``ICasStore``)
- :class:`tests.conformance.stores.registration.RegistrationStoreConformance`
  (``IRegistrationStore``)
- :class:`tests.conformance.stores.challenge.ChallengeStoreConformance` (``IChallengeStore``)
- :class:`tests.conformance.stores.subscriber.SubscriberStoreConformance` (``ISubscriberStore``)
- :class:`tests.conformance.stores.timer.TimerServiceConformance` (``ITimerService``)

An implementation's test module mixes one in ahead of ``TestCase`` and provides its hooks::

    class TestRedisCas(CasStoreConformance, TestCase):
        def make_cas_store(self) -> ICasStore: ...
        async def advance(self, seconds: float) -> None: ...
        def now(self) -> float: ...

Hooks shared by every mixin (:class:`StoreConformanceBase`):

``async def advance(self, seconds: float) -> None``
    Let ``seconds`` of store time pass. Memory stores: advance the ``task.Clock`` they run on.
    Real servers: wait that long on the real reactor (e.g. ``task.deferLater``; never
    ``time.sleep``). Tests call it in small steps (0.1 s) while polling, so waits end as soon
    as the awaited thing happens.
``def now(self) -> float``
    Epoch seconds on the clock the store's lifetimes run on (``clock.seconds()``, or
    ``reactor.seconds()`` for real servers).
``async def restart_server(self) -> None`` (optional)
    Stop the backend's server and start it again on the same address and data directory;
    return when it accepts connections. Stores made before the call are not closed by the
    hook: the tests expect them to work again afterwards (reconnecting). Without this hook
    the restart tests are skipped.
``async def stop_server(self) -> None`` (optional)
    Stop the backend's server for the rest of the test (the test case restores whatever later
    tests need, e.g. in a cleanup). Operations must then fail with ``StoreUnavailableError``
    (``StoreTimeoutError`` is one) within :attr:`~StoreConformanceBase.outage_deadline`
    seconds. Without this hook the outage tests are skipped.

Attributes an implementation may override:

``outage_deadline: float = 10.0``
    Seconds (as counted by ``advance``) within which an operation on a stopped server fails.
``server_persists_data: bool = True``
    Whether records written before ``restart_server`` are still there after it (memcached:
    False; the restart tests then only check that the stores work again).

Tests use keys with a random part, so a CAS store need not be empty at the start of a test;
subscriber stores and timer services must be (a new file, database or key prefix per test).
Each ``make_*`` hook is called in every test, possibly more than once, and arranges the
cleanup (``close()``) itself with ``self.addCleanup``.

The hooks exist on the mixins for type checkers only, so they may be defined in any base of
the test case, before or after the mixin (a shared "server" base class after it is fine);
mypy's ``explicit-override`` then wants them marked ``@override``. A missing required hook
is an AttributeError; a missing optional one skips the tests that need it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object

__all__ = [
    "Barrier",
    "StoreConformanceBase",
    "long_identity",
    "run_concurrently",
    "unique",
]

_T = TypeVar("_T")
_E = TypeVar("_E", bound=BaseException)

#: The polling step of :meth:`StoreConformanceBase.poll_until` (seconds).
POLL_STEP = 0.1


def unique(label: str = "k") -> str:
    """A short name with a random part, so tests sharing a server do not collide."""
    return label + "-" + uuid.uuid4().hex[:12]


def long_identity(scheme: str = "sip:") -> str:
    """A 200-character identity with ``;``, ``=``, ``%``, a random part and UTF-8 of 2, 3 and 4
    bytes (208 bytes of UTF-8), e.g. for IMPU and IMPI keys."""
    head = scheme + unique("ülïce") + ";user=phone;x=%3B%25;€=日;😀@"
    tail = ".example.com;transport=tcp"
    out = head + "d" * (200 - len(head) - len(tail)) + tail
    assert len(out) == 200
    return out


def run_concurrently(*coros: Awaitable[_T]) -> Deferred[list[_T]]:
    """Start every coroutine before awaiting any; fires with their results in order (or the
    first failure)."""

    async def wrap(c: Awaitable[_T]) -> _T:
        return await c

    started = [Deferred.fromCoroutine(wrap(c)) for c in coros]
    return gatherResults(started, consumeErrors=True)


class Barrier:
    """``wait()`` fires for everyone once ``parties`` callers are waiting: N read-modify-write
    loops all read the same version before any of them writes, so N - 1 of them must lose
    their first CAS write, whatever the backend's latency (or lack of it)."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._waiting: list[Deferred[None]] = []

    def wait(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if len(self._waiting) == self._parties:
            waiting, self._waiting = self._waiting, []
            for w in waiting:
                w.callback(None)
        return d


class StoreConformanceBase(_Base):
    """Hooks and helpers shared by the store conformance mixins (see the package docstring).

    The hooks are declared here for type checkers only, so a test case may define them in
    any of its bases, before or after the mixin; the mixin's own defaults (the optional
    hooks' SkipTest, the attributes' values) apply only when no class defines them.
    """

    if TYPE_CHECKING:
        outage_deadline: float
        server_persists_data: bool

        async def advance(self, seconds: float) -> None:
            """Let ``seconds`` of store time pass."""

        def now(self) -> float:
            """Epoch seconds on the store's clock."""

        async def restart_server(self) -> None:
            """Restart the backend's server (optional)."""

        async def stop_server(self) -> None:
            """Stop the backend's server (optional)."""

    def setting(self, name: str, default: _T) -> _T:
        """The test case's value of attribute ``name``, or ``default``."""
        value: _T = getattr(self, name, default)
        return value

    def optional_hook(self, name: str) -> Callable[[], Any]:
        """The test case's hook ``name``; SkipTest when it has none."""
        hook: Optional[Callable[[], Any]] = getattr(self, name, None)
        if hook is None:
            raise SkipTest("no " + name + " hook")
        return hook

    async def restart(self) -> None:
        """Call the ``restart_server`` hook (SkipTest without one)."""
        await self.optional_hook("restart_server")()

    async def stop(self) -> None:
        """Call the ``stop_server`` hook (SkipTest without one)."""
        await self.optional_hook("stop_server")()

    @property
    def deadline(self) -> float:
        """``outage_deadline`` (default 10 s)."""
        return float(self.setting("outage_deadline", 10.0))

    @property
    def persists(self) -> bool:
        """``server_persists_data`` (default True)."""
        return bool(self.setting("server_persists_data", True))

    async def poll_until(
        self, check: Callable[[], Awaitable[bool]], limit: float, step: float = POLL_STEP
    ) -> bool:
        """Await ``check()`` after each ``step`` of :meth:`advance` until it is true (True) or
        ``limit`` seconds have passed (False). ``check`` runs once before any wait."""
        waited = 0.0
        while True:
            if await check():
                return True
            if waited >= limit - 1e-9:
                return False
            await self.advance(step)
            waited += step

    async def assert_fails(self, result: Awaitable[object], error: type[_E]) -> _E:
        """Await ``result``, which must fail with ``error``; returns the exception."""
        try:
            await result
        except error as e:
            return e
        raise AssertionError("did not fail with " + error.__name__)

    def assert_failed(self, d: Deferred[Any], error: type[BaseException]) -> None:
        """``d`` has already failed, with ``error`` (the failure is consumed)."""
        failures: list[object] = []

        def keep(failure: Failure) -> None:
            failures.append(failure.value)

        d.addErrback(keep)
        assert failures, "the Deferred has no failure result"
        assert isinstance(failures[0], error), repr(failures[0])

    async def settles_within(self, d: Deferred[Any], limit: float) -> bool:
        """Whether ``d`` has fired within ``limit`` seconds of :meth:`advance`."""

        async def fired() -> bool:
            return d.called

        return await self.poll_until(fired, limit)
