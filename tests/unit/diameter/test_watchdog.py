"""The RFC 3539 §3.4 watchdog: its table (Appendix A), deadlines, failover and failback.

The expected rows are written out below from RFC 3539 Appendix A, with their guards on Pending
and NumDWA; the module's table is not used. A constant jitter makes every deadline exact.
"""

from __future__ import annotations

from typing import Callable, Optional

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clearwater.diameter.watchdog import (
    NUM_DWA,
    AttemptOpen,
    CloseConnection,
    Effect,
    Failback,
    Failover,
    SendDWR,
    StartTimer,
    Throwaway,
    Watchdog,
    WatchdogState,
    uniform_jitter,
)

TW = 30.0
JITTER = 0.5
NOW = 1000.0
SET = StartTimer(NOW + TW + JITTER)  # SetWatchdog() at NOW

Input = Callable[[Watchdog, float], list[Effect]]
UP: Input = Watchdog.connection_up
DOWN_: Input = Watchdog.connection_down
DWA: Input = Watchdog.dwa_received
MSG: Input = Watchdog.message_received
TIMER: Input = Watchdog.timer_expired
INPUTS = {"up": UP, "down": DOWN_, "dwa": DWA, "msg": MSG, "timer": TIMER}

S = WatchdogState

# Ways to reach each (state, Pending, NumDWA) the table's guards tell apart, from INITIAL.
CONFIGS: dict[str, list[str]] = {
    "INITIAL": [],
    "INITIAL pending": [],  # reached by hand below: the table never sets Pending in INITIAL
    "OKAY": ["up"],
    "OKAY pending": ["up", "timer"],
    "SUSPECT pending": ["up", "timer", "timer"],
    "DOWN": ["up", "down"],
    "DOWN pending": ["up", "timer", "down"],
    "REOPEN pending NumDWA=0": ["up", "down", "up"],
    "REOPEN NumDWA=1": ["up", "down", "up", "dwa"],
    "REOPEN NumDWA=2": ["up", "down", "up", "dwa", "timer", "dwa"],
    "REOPEN pending NumDWA=2": ["up", "down", "up", "dwa", "timer", "dwa", "timer"],
    "REOPEN pending NumDWA=-1": ["up", "down", "up", "timer"],
    "REOPEN NumDWA=0": ["up", "down", "up", "timer", "dwa"],
}

# RFC 3539 Appendix A for each configuration and input:
# (configuration, input, actions, new state, Pending after, NumDWA after).
# NumDWA is None where the row leaves it alone (it is then what the configuration had).
Row = tuple[str, str, list[Effect], WatchdogState, bool, Optional[int]]
APPENDIX_A: list[Row] = [
    # INITIAL  Connection up      SetWatchdog()                          OKAY
    ("INITIAL", "up", [SET], S.OKAY, False, None),
    # INITIAL  Receive DWA        Pending = FALSE, Throwaway()           INITIAL
    ("INITIAL pending", "dwa", [Throwaway()], S.INITIAL, False, None),
    ("INITIAL", "dwa", [Throwaway()], S.INITIAL, False, None),
    # INITIAL  Receive non-DWA    Throwaway()                            INITIAL
    ("INITIAL", "msg", [Throwaway()], S.INITIAL, False, None),
    # INITIAL  Timer expires      AttemptOpen(), SetWatchdog()           INITIAL
    ("INITIAL", "timer", [AttemptOpen(), SET], S.INITIAL, False, None),
    # OKAY     Connection down    CloseConnection(), Failover(), SetWatchdog()   DOWN
    ("OKAY", "down", [CloseConnection(), Failover(), SET], S.DOWN, False, None),
    ("OKAY pending", "down", [CloseConnection(), Failover(), SET], S.DOWN, True, None),
    # OKAY     Receive DWA        Pending = FALSE, SetWatchdog()         OKAY
    ("OKAY", "dwa", [SET], S.OKAY, False, None),
    ("OKAY pending", "dwa", [SET], S.OKAY, False, None),
    # OKAY     Receive non-DWA    SetWatchdog()                          OKAY
    ("OKAY", "msg", [SET], S.OKAY, False, None),
    ("OKAY pending", "msg", [SET], S.OKAY, True, None),
    # OKAY     Timer expires & !Pending   SendWatchdog(), SetWatchdog(), Pending = TRUE   OKAY
    ("OKAY", "timer", [SendDWR(), SET], S.OKAY, True, None),
    # OKAY     Timer expires & Pending    Failover(), SetWatchdog()      SUSPECT
    ("OKAY pending", "timer", [Failover(), SET], S.SUSPECT, True, None),
    # SUSPECT  Connection down    CloseConnection(), SetWatchdog()       DOWN
    ("SUSPECT pending", "down", [CloseConnection(), SET], S.DOWN, True, None),
    # SUSPECT  Receive DWA        Pending = FALSE, Failback(), SetWatchdog()   OKAY
    ("SUSPECT pending", "dwa", [Failback(), SET], S.OKAY, False, None),
    # SUSPECT  Receive non-DWA    Failback(), SetWatchdog()              OKAY
    ("SUSPECT pending", "msg", [Failback(), SET], S.OKAY, True, None),
    # SUSPECT  Timer expires      CloseConnection(), SetWatchdog()       DOWN
    ("SUSPECT pending", "timer", [CloseConnection(), SET], S.DOWN, True, None),
    # DOWN     Connection up      NumDWA = 0, SendWatchdog(), SetWatchdog(), Pending = TRUE  REOPEN
    ("DOWN", "up", [SendDWR(), SET], S.REOPEN, True, 0),
    # DOWN     Receive DWA        Pending = FALSE, Throwaway()           DOWN
    ("DOWN pending", "dwa", [Throwaway()], S.DOWN, False, None),
    ("DOWN", "dwa", [Throwaway()], S.DOWN, False, None),
    # DOWN     Receive non-DWA    Throwaway()                            DOWN
    ("DOWN", "msg", [Throwaway()], S.DOWN, False, None),
    # DOWN     Timer expires      AttemptOpen(), SetWatchdog()           DOWN
    ("DOWN", "timer", [AttemptOpen(), SET], S.DOWN, False, None),
    # REOPEN   Connection down    CloseConnection(), SetWatchdog()       DOWN
    ("REOPEN pending NumDWA=0", "down", [CloseConnection(), SET], S.DOWN, True, None),
    ("REOPEN NumDWA=1", "down", [CloseConnection(), SET], S.DOWN, False, None),
    # REOPEN   Receive DWA & NumDWA == 2   Pending = FALSE, NumDWA++, Failback()   OKAY
    ("REOPEN NumDWA=2", "dwa", [Failback()], S.OKAY, False, 3),
    ("REOPEN pending NumDWA=2", "dwa", [Failback()], S.OKAY, False, 3),
    # REOPEN   Receive DWA & NumDWA < 2    Pending = FALSE, NumDWA++     REOPEN
    ("REOPEN pending NumDWA=0", "dwa", [], S.REOPEN, False, 1),
    ("REOPEN NumDWA=1", "dwa", [], S.REOPEN, False, 2),
    ("REOPEN pending NumDWA=-1", "dwa", [], S.REOPEN, False, 0),
    ("REOPEN NumDWA=0", "dwa", [], S.REOPEN, False, 1),
    # REOPEN   Receive non-DWA    Throwaway()                            REOPEN
    ("REOPEN pending NumDWA=0", "msg", [Throwaway()], S.REOPEN, True, None),
    ("REOPEN NumDWA=2", "msg", [Throwaway()], S.REOPEN, False, None),
    # REOPEN   Timer expires & !Pending    SendWatchdog(), SetWatchdog(), Pending = TRUE  REOPEN
    ("REOPEN NumDWA=1", "timer", [SendDWR(), SET], S.REOPEN, True, None),
    ("REOPEN NumDWA=2", "timer", [SendDWR(), SET], S.REOPEN, True, None),
    ("REOPEN NumDWA=0", "timer", [SendDWR(), SET], S.REOPEN, True, None),
    # REOPEN   Timer expires & Pending & NumDWA < 0    CloseConnection(), SetWatchdog()  DOWN
    ("REOPEN pending NumDWA=-1", "timer", [CloseConnection(), SET], S.DOWN, True, None),
    # REOPEN   Timer expires & Pending & NumDWA >= 0   NumDWA = -1, SetWatchdog()   REOPEN
    ("REOPEN pending NumDWA=0", "timer", [SET], S.REOPEN, True, -1),
    ("REOPEN pending NumDWA=2", "timer", [SET], S.REOPEN, True, -1),
]

# Connection up while up, down while down: not in the table; nothing happens.
NOT_IN_TABLE = [
    ("INITIAL", "down"),
    ("OKAY", "up"),
    ("OKAY pending", "up"),
    ("SUSPECT pending", "up"),
    ("DOWN", "down"),
    ("REOPEN pending NumDWA=0", "up"),
    ("REOPEN NumDWA=2", "up"),
]


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def watchdog_in(config: str) -> Watchdog:
    watchdog = Watchdog(tw=TW, jitter=constant(JITTER))
    for step, name in enumerate(CONFIGS[config]):
        INPUTS[name](watchdog, float(step))
    if config == "INITIAL pending":
        watchdog._pending = True
    state, *guards = config.split()
    assert watchdog.state is WatchdogState(state)
    assert watchdog.pending == ("pending" in guards)
    for guard in guards:
        if guard.startswith("NumDWA="):
            assert watchdog.num_dwa == int(guard.partition("=")[2])
    return watchdog


def test_every_state_and_input_is_covered() -> None:
    covered = {(config, name) for config, name, *_ in APPENDIX_A} | set(NOT_IN_TABLE)
    assert {config for config, _ in covered} == set(CONFIGS)
    for state in WatchdogState:
        for name in INPUTS:
            assert any(c.split()[0] == state.value and n == name for c, n in covered), (
                f"no row for {state.value} / {name}"
            )


@pytest.mark.parametrize(
    "row", APPENDIX_A, ids=[f"{config}|{name}" for config, name, *_ in APPENDIX_A]
)
def test_appendix_a_rows(row: Row) -> None:
    config, name, actions, state, pending, num_dwa = row
    watchdog = watchdog_in(config)
    before = watchdog.num_dwa
    assert INPUTS[name](watchdog, NOW) == actions
    assert watchdog.state is state
    assert watchdog.pending is pending
    assert watchdog.num_dwa == (before if num_dwa is None else num_dwa)
    if SET in actions:
        assert watchdog.deadline == SET.at


@pytest.mark.parametrize(("config", "name"), NOT_IN_TABLE, ids=["|".join(p) for p in NOT_IN_TABLE])
def test_inputs_outside_the_table_change_nothing(config: str, name: str) -> None:
    watchdog = watchdog_in(config)
    before = (watchdog.state, watchdog.pending, watchdog.num_dwa, watchdog.deadline)
    assert INPUTS[name](watchdog, NOW) == []
    assert (watchdog.state, watchdog.pending, watchdog.num_dwa, watchdog.deadline) == before


def state_of(watchdog: Watchdog) -> WatchdogState:
    """The state, read anew (mypy keeps narrowing ``watchdog.state`` after an assert)."""
    return watchdog.state


def pending_of(watchdog: Watchdog) -> bool:
    return watchdog.pending


def test_num_dwa_is_three() -> None:
    assert NUM_DWA == 3


# ------------------------------------------------------------------- walks with exact deadlines


def test_okay_suspect_down_reopen_okay() -> None:
    watchdog = Watchdog(tw=30.0, jitter=constant(1.0))  # every interval is 31 s
    assert state_of(watchdog) is WatchdogState.INITIAL
    assert watchdog.connection_up(0.0) == [StartTimer(31.0)]
    assert state_of(watchdog) is WatchdogState.OKAY
    # Quiet for Tw: probe with a DWR.
    assert watchdog.timer_expired(31.0) == [SendDWR(), StartTimer(62.0)]
    assert pending_of(watchdog)
    # No answer for another Tw: SUSPECT, route elsewhere.
    assert watchdog.timer_expired(62.0) == [Failover(), StartTimer(93.0)]
    assert state_of(watchdog) is WatchdogState.SUSPECT
    # Still nothing: DOWN, close the connection.
    assert watchdog.timer_expired(93.0) == [CloseConnection(), StartTimer(124.0)]
    assert state_of(watchdog) is WatchdogState.DOWN
    assert watchdog.connection_down(93.5) == []  # the close we asked for
    # While DOWN, try to reopen every Tw.
    assert watchdog.timer_expired(124.0) == [AttemptOpen(), StartTimer(155.0)]
    # The connection is up again: REOPEN, probe at once.
    assert watchdog.connection_up(130.0) == [SendDWR(), StartTimer(161.0)]
    assert state_of(watchdog) is WatchdogState.REOPEN
    assert (watchdog.pending, watchdog.num_dwa) == (True, 0)
    # Application messages are not trusted yet.
    assert watchdog.message_received(130.5) == [Throwaway()]
    # First DWA.
    assert watchdog.dwa_received(131.0) == []
    assert (watchdog.pending, watchdog.num_dwa) == (False, 1)
    # One DWR per Tw; second DWA.
    assert watchdog.timer_expired(161.0) == [SendDWR(), StartTimer(192.0)]
    assert watchdog.dwa_received(162.0) == []
    assert watchdog.num_dwa == 2
    assert state_of(watchdog) is WatchdogState.REOPEN
    # Third DWA: OKAY again, use the peer again. The timer set at 192 keeps running.
    assert watchdog.timer_expired(192.0) == [SendDWR(), StartTimer(223.0)]
    assert watchdog.dwa_received(193.0) == [Failback()]
    assert state_of(watchdog) is WatchdogState.OKAY
    assert watchdog.deadline == 223.0
    assert not pending_of(watchdog)
    # And the usual rhythm resumes.
    assert watchdog.timer_expired(223.0) == [SendDWR(), StartTimer(254.0)]


def test_a_dwa_in_suspect_fails_back() -> None:
    watchdog = Watchdog(tw=10.0, jitter=constant(-2.0))  # every interval is 8 s
    watchdog.connection_up(0.0)
    assert watchdog.timer_expired(8.0) == [SendDWR(), StartTimer(16.0)]
    assert watchdog.timer_expired(16.0) == [Failover(), StartTimer(24.0)]
    assert watchdog.dwa_received(17.5) == [Failback(), StartTimer(25.5)]
    assert watchdog.state is WatchdogState.OKAY
    assert not watchdog.pending


def test_any_message_in_suspect_fails_back_but_leaves_the_dwr_pending() -> None:
    watchdog = watchdog_in("SUSPECT pending")
    assert watchdog.message_received(NOW) == [Failback(), SET]
    assert watchdog.state is WatchdogState.OKAY
    assert watchdog.pending
    # The DWR is still unanswered a Tw later: SUSPECT again at once.
    assert watchdog.timer_expired(SET.at) == [Failover(), StartTimer(SET.at + TW + JITTER)]


def test_traffic_postpones_the_dwr() -> None:
    watchdog = Watchdog(tw=30.0, jitter=constant(0.0))
    watchdog.connection_up(0.0)
    assert watchdog.message_received(20.0) == [StartTimer(50.0)]
    assert watchdog.message_received(45.0) == [StartTimer(75.0)]
    assert watchdog.deadline == 75.0
    assert not watchdog.pending


def test_a_missed_dwa_in_reopen_closes_after_two_intervals() -> None:
    watchdog = watchdog_in("REOPEN pending NumDWA=0")
    assert watchdog.timer_expired(NOW) == [SET]
    assert watchdog.num_dwa == -1
    later = SET.at
    assert watchdog.timer_expired(later) == [
        CloseConnection(),
        StartTimer(later + TW + JITTER),
    ]
    assert watchdog.state is WatchdogState.DOWN


def test_losing_the_connection_when_okay_fails_over() -> None:
    watchdog = watchdog_in("OKAY")
    assert watchdog.connection_down(NOW) == [CloseConnection(), Failover(), SET]
    assert watchdog.state is WatchdogState.DOWN


def test_losing_the_connection_when_suspect_does_not_fail_over_twice() -> None:
    watchdog = watchdog_in("SUSPECT pending")
    assert Failover() not in watchdog.connection_down(NOW)


def test_timer_expiry_in_initial_starts_the_open_loop() -> None:
    watchdog = Watchdog(tw=TW, jitter=constant(JITTER))
    assert watchdog.deadline is None
    assert watchdog.timer_expired(NOW) == [AttemptOpen(), SET]
    assert watchdog.state is WatchdogState.INITIAL


# ------------------------------------------------------------------- Tw and jitter


@pytest.mark.parametrize("tw", [5.999, 0.0, -30.0, float("nan")])
def test_tw_below_six_seconds_is_refused(tw: float) -> None:
    with pytest.raises(ValueError):
        Watchdog(tw=tw)


def test_tw_of_six_seconds_is_allowed() -> None:
    watchdog = Watchdog(tw=6.0, jitter=constant(0.0))
    assert watchdog.tw == 6.0
    assert watchdog.connection_up(1.0) == [StartTimer(7.0)]


def test_defaults_are_thirty_seconds_and_two_seconds_of_jitter() -> None:
    watchdog = Watchdog()
    assert watchdog.tw == 30.0
    runs = [(0.0, watchdog.connection_up(0.0))]
    runs += [(now, watchdog.message_received(now)) for now in range(100, 20000, 100)]
    for now, effects in runs:
        (timer,) = effects
        assert isinstance(timer, StartTimer)
        assert now + 28.0 <= timer.at <= now + 32.0


def test_uniform_jitter_stays_within_two_seconds() -> None:
    values = [uniform_jitter() for _ in range(1000)]
    assert all(-2.0 <= value <= 2.0 for value in values)
    assert len(set(values)) > 1


def test_the_jitter_source_is_called_once_per_timer() -> None:
    calls: list[float] = []

    def jitter() -> float:
        calls.append(0.25)
        return 0.25

    watchdog = Watchdog(tw=20.0, jitter=jitter)
    assert watchdog.connection_up(0.0) == [StartTimer(20.25)]
    assert watchdog.dwa_received(1.0) == [StartTimer(21.25)]
    assert len(calls) == 2


# ------------------------------------------------------------------- random runs

INPUT_NAMES = st.sampled_from(sorted(INPUTS))
FAILED_OVER = {WatchdogState.SUSPECT, WatchdogState.DOWN, WatchdogState.REOPEN}


class WatchdogModel(RuleBasedStateMachine):
    """Any sequence of inputs and jitters: Failover and Failback alternate, starting with
    Failover; the peer counts as failed over exactly in SUSPECT, DOWN and REOPEN once it has
    been OKAY; every timer is set Tw ± 2 s ahead; NumDWA stays in -1..3."""

    def __init__(self) -> None:
        super().__init__()
        self.next_jitter = 0.0
        self.watchdog = Watchdog(tw=TW, jitter=lambda: self.next_jitter)
        self.now = 0.0
        self.failed_over = False
        self.been_okay = False

    @rule(
        name=INPUT_NAMES,
        delay=st.floats(min_value=0.0, max_value=40.0),
        jitter=st.floats(min_value=-2.0, max_value=2.0),
    )
    def input(self, name: str, delay: float, jitter: float) -> None:
        self.now += delay
        self.next_jitter = jitter
        effects = INPUTS[name](self.watchdog, self.now)
        for effect in effects:
            if isinstance(effect, Failover):
                assert not self.failed_over
                self.failed_over = True
            elif isinstance(effect, Failback):
                assert self.failed_over
                self.failed_over = False
            elif isinstance(effect, StartTimer):
                assert effect.at == self.now + TW + jitter
                assert self.watchdog.deadline == effect.at
        timers = [e for e in effects if isinstance(e, StartTimer)]
        assert len(timers) <= 1
        self.been_okay = self.been_okay or self.watchdog.state is WatchdogState.OKAY

    @invariant()
    def failed_over_exactly_when_not_okay(self) -> None:
        expected = self.been_okay and self.watchdog.state in FAILED_OVER
        assert self.failed_over == expected

    @invariant()
    def num_dwa_in_range(self) -> None:
        assert -1 <= self.watchdog.num_dwa <= NUM_DWA


TestWatchdogModel = WatchdogModel.TestCase
