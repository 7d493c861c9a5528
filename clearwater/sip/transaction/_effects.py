"""What the sans-IO transaction machines ask their caller to do (RFC 3261 §17, RFC 6026 §7).

The machines in :mod:`.client` and :mod:`.server` never touch a socket, a clock or a reactor.
Each input returns a list of effects, to be carried out in order:

- :class:`Transmit`: put this message on the wire (RFC 3261 §17.1.1.2 "pass to the transport
  layer"). The caller knows where: the transaction's target for a client transaction, the
  request's flow / Via for a server transaction (§18.2.2).
- :class:`Retransmit`: send again, byte for byte, the last response this (server) transaction
  transmitted (§17.2.1, §17.2.2: retransmissions of the provisional or final response). The
  server machines keep no messages: a finished transaction lingers for up to 64*T1, and the
  caller can keep the bytes it sent at far less cost than the parsed message.
- :class:`DeliverToTU`: pass this message to the transaction user.
- :class:`StartTimer` / :class:`CancelTimer`: arm (or re-arm: starting a running timer replaces
  it) or disarm a timer; deadlines are absolute, on the caller's clock.
- :class:`Failed`: tell the TU the transaction failed (a timeout, §17.1.1.2 timer B, §17.1.2.2
  timer F, §17.2.1 timer H; or a transport error, §17.1.4, §17.2.4).
- :class:`Terminated`: the transaction is over and the caller forgets it. It is always the last
  effect, every timer still running has been cancelled just before it, and the machine ignores
  any input afterwards.

:class:`_TransactionBase` is the bookkeeping the four machines share: state, the timers they
have running (so that entering Terminated cancels exactly those) and the retransmission
intervals of timers A, E and G.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Callable, ClassVar, Generic, TypeVar, Union

import attrs

from clearwater.sip._message import Message
from clearwater.sip.transaction.timers import Timer, TimerSettings

__all__ = [
    "CancelTimer",
    "DeliverToTU",
    "Effect",
    "Failed",
    "FailureReason",
    "Retransmit",
    "StartTimer",
    "Terminated",
    "Transmit",
]


class FailureReason(enum.Enum):
    """Why a transaction failed."""

    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport error"


@attrs.frozen
class Transmit:
    """Send ``message`` (a request or a response) on the wire."""

    message: Message


@attrs.frozen
class Retransmit:
    """Send the last response transmitted again (server transactions only)."""


@attrs.frozen
class DeliverToTU:
    """Pass ``message`` to the transaction user."""

    message: Message


@attrs.frozen
class StartTimer:
    """Make ``timer`` fire at ``at`` (caller's clock); replaces the timer if it runs.

    ``after`` is ``at`` less the time it was started at: timers started with the same one
    expire in the order they were started, which lets a shell queue them FIFO (not compared).
    """

    timer: Timer
    at: float
    after: float = attrs.field(default=0.0, eq=False)


@attrs.frozen
class CancelTimer:
    """Stop ``timer``."""

    timer: Timer


@attrs.frozen
class Failed:
    """Tell the transaction user the transaction failed."""

    reason: FailureReason


@attrs.frozen
class Terminated:
    """The transaction is over; remove it. Nothing follows."""


Effect = Union[Transmit, Retransmit, DeliverToTU, StartTimer, CancelTimer, Failed, Terminated]

S = TypeVar("S", bound=enum.Enum)

#: A transition handler: ``handler(machine, message or None, now) -> effects``.
Handler = Callable[..., list[Effect]]


class _TransactionBase(Generic[S]):
    """State, running timers and retransmission intervals shared by the four machines.

    Subclasses define ``TRANSITIONS``, the ``{(state, input): handler}`` table of their RFC
    figure; :meth:`_dispatch` looks an input up in it and ignores pairs it does not hold.
    """

    TRANSITIONS: ClassVar[Mapping[tuple[Any, Any], Handler]]
    _TERMINATED: ClassVar[Any]

    __slots__ = ("_intervals", "_reliable", "_settings", "_started", "_state", "_timers")

    def __init__(self, *, reliable: bool, settings: TimerSettings, state: S) -> None:
        self._reliable = reliable
        self._settings = settings
        self._state = state
        self._started = False
        # Running timers and their deadlines, and the current interval of A, E and G; keyed by
        # the timer's letter so that the dicts hold only strings and floats, which the cyclic
        # garbage collector does not track (a loaded server keeps ~100,000 transactions).
        self._timers: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    @property
    def state(self) -> S:
        return self._state

    @property
    def reliable(self) -> bool:
        return self._reliable

    def _begin(self) -> None:
        if self._started:
            raise ValueError(type(self).__name__ + ".start() called twice")
        self._started = True

    def _check_started(self) -> None:
        if not self._started:
            raise ValueError(type(self).__name__ + ": call start() first")

    def _dispatch(self, event: Any, message: object, now: float) -> list[Effect]:
        self._check_started()
        handler = self.TRANSITIONS.get((self._state, event))
        if handler is None:
            return []
        return handler(self, message, now)

    def _fire(self, timer: Timer, event: Any, now: float) -> list[Effect]:
        """A timer fired (``event`` is its input, None for a timer this machine does not use).

        A timer that is not running (cancelled, or never started on this transport) is ignored
        like a pair missing from the table.
        """
        self._check_started()
        if event is None or self._timers.pop(timer._value_, None) is None:
            return []
        return self._dispatch(event, None, now)

    # ---- effect builders

    def _start_timer(self, timer: Timer, now: float) -> list[Effect]:
        """Start ``timer`` with its first duration; nothing if it is unused on this transport."""
        duration = self._settings.duration(timer, reliable=self._reliable)
        if duration is None:
            return []
        if timer in (Timer.A, Timer.E, Timer.G):
            self._intervals[timer._value_] = duration
        self._timers[timer._value_] = now + duration
        return [StartTimer(timer, now + duration, duration)]

    def _restart(self, timer: Timer, now: float, interval: float) -> list[Effect]:
        """Restart retransmission timer A, E or G with ``interval``."""
        self._intervals[timer._value_] = interval
        self._timers[timer._value_] = now + interval
        return [StartTimer(timer, now + interval, interval)]

    def _next_interval(self, timer: Timer) -> float:
        return self._settings.next_interval(timer, self._intervals[timer._value_])

    def _cancel(self, *timers: Timer) -> list[Effect]:
        effects: list[Effect] = []
        for timer in timers:
            if self._timers.pop(timer._value_, None) is not None:
                effects.append(CancelTimer(timer))
        return effects

    def _terminate(self, *effects: Effect) -> list[Effect]:
        """Enter Terminated: cancel every running timer, then ``effects``, then Terminated."""
        self._state = self._TERMINATED
        return [*self._cancel(*[Timer(t) for t in self._timers]), *effects, Terminated()]

    def _wait_or_terminate(self, state: S, timer: Timer, now: float) -> list[Effect]:
        """Enter a state that only waits for timer D, I, J or K; with a duration of zero
        (reliable transport) go straight on to Terminated."""
        if self._settings.duration(timer, reliable=self._reliable) == 0:
            return self._terminate()
        self._state = state
        return self._start_timer(timer, now)
