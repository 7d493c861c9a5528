"""The application-layer watchdog of RFC 3539 §3.4, sans-IO (Diameter: RFC 6733 §5.5.3).

:class:`Watchdog` is the algorithm of RFC 3539 §3.4.1 in the form of its state table (Appendix
A, the Peer Control Block and its transitions): states INITIAL, OKAY, SUSPECT, DOWN and REOPEN,
the flag ``pending`` (a DWR is outstanding) and the counter NumDWA (DWAs received in REOPEN;
:data:`NUM_DWA` of them, answering DWRs sent one per Tw, prove a reopened connection). Each row
is in :data:`TRANSITIONS`; guards on ``pending`` and NumDWA are tested in its handlers.

The shell (the Twisted protocol layer) reports five inputs, each with its clock's ``now``:
:meth:`~Watchdog.connection_up` (the peer connection is open, i.e. the RFC 6733 peer state
machine reached I-Open or R-Open), :meth:`~Watchdog.connection_down`,
:meth:`~Watchdog.dwa_received`, :meth:`~Watchdog.message_received` (any other message from the
peer: RFC 3539 counts all traffic as a sign of life; call one of the two per message, never
both) and :meth:`~Watchdog.timer_expired`. Each returns effects, to carry out in order:

- :class:`SendDWR`: send a Device-Watchdog-Request on the peer connection.
- :class:`StartTimer`: (re)arm the watchdog timer for ``at`` = now + Tw + jitter (SetWatchdog());
  it replaces a running one. When it fires, call :meth:`~Watchdog.timer_expired`.
- :class:`CloseConnection`: close the peer connection (the peer state machine's Stop / Error).
- :class:`Failover`: the peer is unusable: send its pending requests and new ones elsewhere
  (RFC 6733 §5.5.4).
- :class:`Failback`: the peer is usable again.
- :class:`AttemptOpen`: try to reopen the connection (feed START to the peer state machine if it
  is Closed). RFC 3539 has the client retry every Tw while DOWN.
- :class:`Throwaway`: do not route or deliver the message just received (INITIAL, DOWN, REOPEN:
  the connection is not trusted yet). Base-protocol duties still apply: a DWR is answered.

A starting watchdog is INITIAL with no timer: call :meth:`~Watchdog.connection_up` when the
connection opens, or :meth:`~Watchdog.timer_expired` once to begin the RFC's INITIAL
AttemptOpen() loop. Inputs with no row in the table (connection up while it is up, down while
it is down) return no effect and change nothing.
"""

from __future__ import annotations

import random
import types
from collections.abc import Mapping
from typing import Callable, Final, Optional, Union

import attrs

from clearwater._enum import IdentityEnum

__all__ = [
    "JITTER",
    "NUM_DWA",
    "TRANSITIONS",
    "TW_INIT",
    "TW_MIN",
    "AttemptOpen",
    "CloseConnection",
    "Effect",
    "Failback",
    "Failover",
    "SendDWR",
    "StartTimer",
    "Throwaway",
    "Watchdog",
    "WatchdogInput",
    "WatchdogState",
    "uniform_jitter",
]

#: The default Tw, TWINIT (RFC 3539 §3.4.1: 30 seconds).
TW_INIT: Final = 30.0
#: Tw may not be set lower than this (RFC 3539 §3.4.1).
TW_MIN: Final = 6.0
#: Tw is jittered by up to this much either way (RFC 3539 §3.4.1: ±2 seconds).
JITTER: Final = 2.0
#: DWAs needed in REOPEN before the connection is OKAY again (RFC 3539 §3.4.1, Appendix A).
NUM_DWA: Final = 3


def uniform_jitter() -> float:
    """A jitter drawn uniformly from [-2, 2] seconds (the default source)."""
    return random.uniform(-JITTER, JITTER)


class WatchdogState(IdentityEnum):
    """The watchdog states of RFC 3539 Appendix A."""

    INITIAL = "INITIAL"
    OKAY = "OKAY"
    SUSPECT = "SUSPECT"
    DOWN = "DOWN"
    REOPEN = "REOPEN"


class WatchdogInput(IdentityEnum):
    """The events of RFC 3539 Appendix A."""

    CONNECTION_UP = "Connection up"
    CONNECTION_DOWN = "Connection down"
    RECEIVE_DWA = "Receive DWA"
    RECEIVE_NON_DWA = "Receive non-DWA"
    TIMER_EXPIRES = "Timer expires"


@attrs.frozen
class SendDWR:
    """SendWatchdog(): send a DWR to the peer."""


@attrs.frozen
class StartTimer:
    """SetWatchdog(): arm the watchdog timer for ``at`` (caller's clock), replacing it if it
    runs."""

    at: float


@attrs.frozen
class CloseConnection:
    """CloseConnection(): close the connection to the peer."""


@attrs.frozen
class Failover:
    """Failover(): stop using the peer; send its pending and new requests elsewhere."""


@attrs.frozen
class Failback:
    """Failback(): the peer may be used again."""


@attrs.frozen
class AttemptOpen:
    """AttemptOpen(): try to open a connection to the peer."""


@attrs.frozen
class Throwaway:
    """Throwaway(): discard the message just received."""


Effect = Union[SendDWR, StartTimer, CloseConnection, Failover, Failback, AttemptOpen, Throwaway]


class Watchdog:
    """One peer connection's RFC 3539 watchdog.

    ``tw`` is TWINIT, the base interval (at least :data:`TW_MIN`, else ValueError); each
    SetWatchdog() arms the timer for ``now + tw + jitter()``, with ``jitter`` injected (the
    default, :func:`uniform_jitter`, draws from ±2 s; tests pass a constant).
    """

    __slots__ = ("_deadline", "_jitter", "_num_dwa", "_pending", "_state", "_tw")

    def __init__(self, tw: float = TW_INIT, jitter: Callable[[], float] = uniform_jitter) -> None:
        if not tw >= TW_MIN:
            raise ValueError(f"Tw must be at least {TW_MIN} s (RFC 3539 §3.4.1), not {tw!r}")
        self._tw = tw
        self._jitter = jitter
        self._state = WatchdogState.INITIAL
        self._pending = False
        self._num_dwa = 0
        self._deadline: Optional[float] = None

    @property
    def state(self) -> WatchdogState:
        return self._state

    @property
    def pending(self) -> bool:
        """Whether a DWR is outstanding (the RFC's Pending)."""
        return self._pending

    @property
    def num_dwa(self) -> int:
        """The RFC's NumDWA: DWAs counted in REOPEN, -1 after a Tw without one."""
        return self._num_dwa

    @property
    def tw(self) -> float:
        return self._tw

    @property
    def deadline(self) -> Optional[float]:
        """When the last StartTimer asked the timer to fire; None before the first."""
        return self._deadline

    # ---- inputs

    def connection_up(self, now: float) -> list[Effect]:
        return self._dispatch(WatchdogInput.CONNECTION_UP, now)

    def connection_down(self, now: float) -> list[Effect]:
        return self._dispatch(WatchdogInput.CONNECTION_DOWN, now)

    def dwa_received(self, now: float) -> list[Effect]:
        return self._dispatch(WatchdogInput.RECEIVE_DWA, now)

    def message_received(self, now: float) -> list[Effect]:
        """Any message from the peer other than a DWA."""
        return self._dispatch(WatchdogInput.RECEIVE_NON_DWA, now)

    def timer_expired(self, now: float) -> list[Effect]:
        return self._dispatch(WatchdogInput.TIMER_EXPIRES, now)

    def _dispatch(self, event: WatchdogInput, now: float) -> list[Effect]:
        handler = TRANSITIONS.get((self._state, event))
        if handler is None:
            return []
        return handler(self, now)

    # ---- actions

    def _set_watchdog(self, now: float) -> StartTimer:
        self._deadline = now + self._tw + self._jitter()
        return StartTimer(self._deadline)

    # ---- transitions (RFC 3539 Appendix A), named state_event

    def _initial_up(self, now: float) -> list[Effect]:
        self._state = WatchdogState.OKAY
        return [self._set_watchdog(now)]

    def _down_up(self, now: float) -> list[Effect]:
        self._num_dwa = 0
        self._pending = True
        self._state = WatchdogState.REOPEN
        return [SendDWR(), self._set_watchdog(now)]

    def _okay_down(self, now: float) -> list[Effect]:
        self._state = WatchdogState.DOWN
        return [CloseConnection(), Failover(), self._set_watchdog(now)]

    def _suspect_or_reopen_down(self, now: float) -> list[Effect]:
        self._state = WatchdogState.DOWN
        return [CloseConnection(), self._set_watchdog(now)]

    def _throwaway_dwa(self, now: float) -> list[Effect]:
        """INITIAL or DOWN, Receive DWA: Pending = FALSE, Throwaway()."""
        self._pending = False
        return [Throwaway()]

    def _throwaway(self, now: float) -> list[Effect]:
        """INITIAL, DOWN or REOPEN, Receive non-DWA: Throwaway()."""
        return [Throwaway()]

    def _okay_dwa(self, now: float) -> list[Effect]:
        self._pending = False
        return [self._set_watchdog(now)]

    def _okay_message(self, now: float) -> list[Effect]:
        return [self._set_watchdog(now)]

    def _suspect_dwa(self, now: float) -> list[Effect]:
        self._pending = False
        return self._suspect_message(now)

    def _suspect_message(self, now: float) -> list[Effect]:
        self._state = WatchdogState.OKAY
        return [Failback(), self._set_watchdog(now)]

    def _reopen_dwa(self, now: float) -> list[Effect]:
        self._pending = False
        self._num_dwa += 1
        if self._num_dwa < NUM_DWA:  # "NumDWA < 2" before the increment
            return []
        self._state = WatchdogState.OKAY  # "NumDWA == 2" before the increment
        return [Failback()]

    def _okay_timer(self, now: float) -> list[Effect]:
        if not self._pending:
            self._pending = True
            return [SendDWR(), self._set_watchdog(now)]
        self._state = WatchdogState.SUSPECT
        return [Failover(), self._set_watchdog(now)]

    def _suspect_timer(self, now: float) -> list[Effect]:
        self._state = WatchdogState.DOWN
        return [CloseConnection(), self._set_watchdog(now)]

    def _reopen_timer(self, now: float) -> list[Effect]:
        if not self._pending:
            self._pending = True
            return [SendDWR(), self._set_watchdog(now)]
        if self._num_dwa < 0:
            self._state = WatchdogState.DOWN
            return [CloseConnection(), self._set_watchdog(now)]
        self._num_dwa = -1
        return [self._set_watchdog(now)]

    def _attempt_open(self, now: float) -> list[Effect]:
        """INITIAL or DOWN, Timer expires: AttemptOpen(), SetWatchdog()."""
        return [AttemptOpen(), self._set_watchdog(now)]


_Handler = Callable[[Watchdog, float], list[Effect]]

_S = WatchdogState
_E = WatchdogInput

#: RFC 3539 Appendix A: ``(state, event) -> handler``; a handler tests the row's guards.
TRANSITIONS: Final[Mapping[tuple[WatchdogState, WatchdogInput], _Handler]] = types.MappingProxyType(
    {
        (_S.INITIAL, _E.CONNECTION_UP): Watchdog._initial_up,
        (_S.INITIAL, _E.RECEIVE_DWA): Watchdog._throwaway_dwa,
        (_S.INITIAL, _E.RECEIVE_NON_DWA): Watchdog._throwaway,
        (_S.INITIAL, _E.TIMER_EXPIRES): Watchdog._attempt_open,
        (_S.OKAY, _E.CONNECTION_DOWN): Watchdog._okay_down,
        (_S.OKAY, _E.RECEIVE_DWA): Watchdog._okay_dwa,
        (_S.OKAY, _E.RECEIVE_NON_DWA): Watchdog._okay_message,
        (_S.OKAY, _E.TIMER_EXPIRES): Watchdog._okay_timer,
        (_S.SUSPECT, _E.CONNECTION_DOWN): Watchdog._suspect_or_reopen_down,
        (_S.SUSPECT, _E.RECEIVE_DWA): Watchdog._suspect_dwa,
        (_S.SUSPECT, _E.RECEIVE_NON_DWA): Watchdog._suspect_message,
        (_S.SUSPECT, _E.TIMER_EXPIRES): Watchdog._suspect_timer,
        (_S.DOWN, _E.CONNECTION_UP): Watchdog._down_up,
        (_S.DOWN, _E.RECEIVE_DWA): Watchdog._throwaway_dwa,
        (_S.DOWN, _E.RECEIVE_NON_DWA): Watchdog._throwaway,
        (_S.DOWN, _E.TIMER_EXPIRES): Watchdog._attempt_open,
        (_S.REOPEN, _E.CONNECTION_DOWN): Watchdog._suspect_or_reopen_down,
        (_S.REOPEN, _E.RECEIVE_DWA): Watchdog._reopen_dwa,
        (_S.REOPEN, _E.RECEIVE_NON_DWA): Watchdog._throwaway,
        (_S.REOPEN, _E.TIMER_EXPIRES): Watchdog._reopen_timer,
    }
)
