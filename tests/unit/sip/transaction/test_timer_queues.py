"""TransactionLayer's timer queues (one FIFO per duration): timers fire in deadline order,
whatever order they were started in and whatever duration they say they have."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.task import Clock

from clearwater.sip.transaction._effects import StartTimer
from clearwater.sip.transaction.layer import TransactionLayer
from clearwater.sip.transaction.timers import Timer


class _Tsx:
    """Just what the layer's timer code touches of a transaction handle."""

    def __init__(self, key: str, fired: list[tuple[str, str, float]], clock: Clock) -> None:
        self.key = key
        self._timers: dict[str, int] = {}
        self._fired = fired
        self._clock = clock

    def _fire(self, timer: Timer) -> None:
        self._fired.append((self.key, timer.value, self._clock.seconds()))


def _layer() -> tuple[TransactionLayer, Clock, list[tuple[str, str, float]]]:
    clock = Clock()
    layer = TransactionLayer(clock, cast(Any, None), cast(Any, None))
    return layer, clock, []


def _start(layer: TransactionLayer, tsx: _Tsx, timer: Timer, at: float, after: float) -> None:
    layer._clients[cast(Any, tsx.key)] = cast(Any, tsx)
    tsx._timers[timer.value] = layer._start_timer(cast(Any, tsx), StartTimer(timer, at, after))


def test_timers_of_several_durations_fire_in_deadline_order() -> None:
    layer, clock, fired = _layer()
    _start(layer, _Tsx("a", fired, clock), Timer.B, 32.0, 32.0)
    _start(layer, _Tsx("b", fired, clock), Timer.A, 0.5, 0.5)
    clock.advance(0.5)  # "b" fires; then two more, started now
    _start(layer, _Tsx("c", fired, clock), Timer.B, 32.5, 32.0)
    _start(layer, _Tsx("d", fired, clock), Timer.A, 1.0, 0.5)
    clock.pump([0.25] * 160)
    assert [(k, at) for k, _, at in fired] == [("b", 0.5), ("d", 1.0), ("a", 32.0), ("c", 32.5)]


def test_timers_started_out_of_order_in_one_queue_still_fire_in_order() -> None:
    # StartTimers without their duration all share one queue: the later deadline started first
    # must not hold back the earlier one.
    layer, clock, fired = _layer()
    _start(layer, _Tsx("late", fired, clock), Timer.B, 32.0, 0.0)
    _start(layer, _Tsx("soon", fired, clock), Timer.A, 0.5, 0.0)
    clock.advance(1)
    assert fired == [("soon", "A", 1.0)]
    clock.advance(31)
    assert [k for k, _, _ in fired] == ["soon", "late"]


def test_a_stopped_timer_is_skipped() -> None:
    layer, clock, fired = _layer()
    tsx = _Tsx("a", fired, clock)
    _start(layer, tsx, Timer.A, 0.5, 0.5)
    del tsx._timers["A"]
    clock.advance(1)
    assert fired == []
