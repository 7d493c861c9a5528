"""Transaction timer values: RFC 3261 Table 4 and RFC 6026 §7.1, every timer on both kinds."""

from __future__ import annotations

import pytest

from clearwater.sip.transaction import Timer, TimerSettings

# RFC 3261 Table 4 with the defaults T1 = 0.5, T2 = 4, T4 = 5: (unreliable, reliable)
EXPECTED = {
    Timer.A: (0.5, None),
    Timer.B: (32.0, 32.0),
    Timer.C: (180.0, 180.0),
    Timer.D: (32.0, 0.0),
    Timer.E: (0.5, None),
    Timer.F: (32.0, 32.0),
    Timer.G: (0.5, None),
    Timer.H: (32.0, 32.0),
    Timer.I: (5.0, 0.0),
    Timer.J: (32.0, 0.0),
    Timer.K: (5.0, 0.0),
    Timer.L: (32.0, 32.0),
    Timer.M: (32.0, 32.0),
}


@pytest.mark.parametrize("timer", list(Timer))
def test_every_timer_on_both_transport_kinds(timer: Timer) -> None:
    settings = TimerSettings()
    unreliable, reliable = EXPECTED[timer]
    assert settings.duration(timer, reliable=False) == unreliable
    assert settings.duration(timer, reliable=True) == reliable


def test_timers_follow_t1_and_t4() -> None:
    settings = TimerSettings(t1=0.1, t2=1.0, t4=2.0)
    assert settings.duration(Timer.B, reliable=False) == pytest.approx(6.4)
    assert settings.duration(Timer.E, reliable=False) == 0.1
    assert settings.duration(Timer.K, reliable=False) == 2.0


def _schedule(timer: Timer, settings: TimerSettings, count: int) -> list[float]:
    interval = settings.duration(timer, reliable=False)
    assert interval is not None
    out = [interval]
    for _ in range(count - 1):
        interval = settings.next_interval(timer, interval)
        out.append(interval)
    return out


def test_timer_a_doubles_without_cap() -> None:
    assert _schedule(Timer.A, TimerSettings(), 7) == [0.5, 1, 2, 4, 8, 16, 32]


@pytest.mark.parametrize("timer", [Timer.E, Timer.G])
def test_timers_e_and_g_double_up_to_t2(timer: Timer) -> None:
    assert _schedule(timer, TimerSettings(), 7) == [0.5, 1, 2, 4, 4, 4, 4]


def test_non_retransmit_timers_have_no_next_interval() -> None:
    with pytest.raises(ValueError):
        TimerSettings().next_interval(Timer.B, 1.0)


@pytest.mark.parametrize(
    "kwargs", [{"t1": 0.0}, {"t2": -1.0}, {"t1": 5.0, "t2": 4.0}, {"timer_c": 0.0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerSettings(**kwargs)
