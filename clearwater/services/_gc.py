"""CPython's cyclic garbage collector, tuned for a SIP server (ARCHITECTURE.md §5).

A SIP server holds every finished transaction for up to 64*T1 (RFC 3261 §17: 32 s) to absorb
retransmissions. At a few hundred calls per second that is hundreds of thousands of long-lived
objects, and each full collection of the cyclic GC walks all of them: measured on sprout, half
of the process's CPU went to the collector. The SIP stack makes no reference cycles per
transaction, so those objects are freed by reference counting when their timers end; the
collector only needs to see young objects.

:class:`GcTuning` therefore moves the objects that survived a second into the permanent
generation (:func:`gc.freeze`) every ``freeze_every`` seconds, so collections stay small, and every
``collect_every`` seconds unfreezes and runs one full collection, so that a cycle made by
something else (a plugin, a Failure's traceback) is still reclaimed; that collection's pause is
logged. On PyPy, whose collector is generational and incremental, it does nothing.
"""

from __future__ import annotations

import gc
import time
from typing import Optional

from twisted.application import service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from typing_extensions import override

__all__ = ["GcTuning"]

_log = Logger()


class GcTuning(service.Service):
    """Freeze the survivors every ``freeze_every`` seconds; a full collection every
    ``collect_every`` seconds (see the module docstring)."""

    def __init__(
        self, reactor: IReactorTime, *, freeze_every: float = 1.0, collect_every: float = 600.0
    ) -> None:
        self.reactor = reactor
        self.freeze_every = freeze_every
        self.collect_every = collect_every
        self._loops: list[LoopingCall] = []

    @property
    def enabled(self) -> bool:
        return hasattr(gc, "freeze")

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if not self.enabled:
            return
        gc.freeze()  # what start-up made (modules, plugins) is never scanned again
        for interval, action in (
            (self.freeze_every, gc.freeze),
            (self.collect_every, self.collect),
        ):
            loop = LoopingCall(action)
            loop.clock = self.reactor
            loop.start(interval, now=False)
            self._loops.append(loop)

    def collect(self) -> Optional[int]:
        """One full collection of everything, frozen objects included; then freeze again."""
        if not self.enabled:
            return None
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        _log.info(
            "full garbage collection: {found} unreachable objects in {ms:.0f} ms",
            found=found,
            ms=(time.perf_counter() - started) * 1000,
        )
        return found

    @override
    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self.enabled:
            gc.unfreeze()
