"""GcTuning: survivors frozen, a periodic full collection, nothing left frozen after stop."""

from __future__ import annotations

import gc

import pytest
from twisted.internet.task import Clock

from clearwater.services._gc import GcTuning

pytestmark = pytest.mark.skipif(not hasattr(gc, "freeze"), reason="CPython's gc.freeze only")


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_survivors_are_frozen_and_unfrozen_at_stop() -> None:
    clock = Clock()
    tuning = GcTuning(clock, freeze_every=1.0, collect_every=60.0)
    try:
        tuning.startService()
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        Cycle()
        clock.advance(1.0)  # the periodic freeze
        assert gc.get_freeze_count() > 0
    finally:
        tuning.stopService()
    assert gc.get_freeze_count() == 0
    assert not clock.getDelayedCalls()


def test_the_periodic_collection_reclaims_frozen_cycles() -> None:
    clock = Clock()
    tuning = GcTuning(clock, freeze_every=1.0, collect_every=60.0)
    try:
        tuning.startService()
        for _ in range(10):
            Cycle()  # garbage, only a cyclic collection frees it
        gc.freeze()
        found = tuning.collect()
        assert found is not None and found >= 10
        assert gc.get_freeze_count() > 0  # frozen again
    finally:
        tuning.stopService()
    assert gc.get_freeze_count() == 0
