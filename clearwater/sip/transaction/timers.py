"""SIP transaction timers: RFC 3261 §17 and Table 4 (Appendix A), RFC 6026 §7.1 (L and M).

:class:`TimerSettings` holds T1, T2, T4 and the timers an operator may want to tune, and answers
"how long does timer X run" for a reliable (TCP, TLS, WS, SCTP) or unreliable (UDP) transport:

======  ==========================================  ============  ==========
timer   meaning                                     unreliable    reliable
======  ==========================================  ============  ==========
A       INVITE request retransmit interval (ICT)    T1, doubling  not used
B       INVITE transaction timeout (ICT)            64*T1         64*T1
C       proxy INVITE transaction timeout            180 s (>3m)   180 s
D       wait for response retransmits (ICT)         32 s          0
E       non-INVITE retransmit interval (NICT)       T1, doubling  not used
                                                    up to T2
F       non-INVITE transaction timeout (NICT)       64*T1         64*T1
G       INVITE response retransmit interval (IST)   T1, doubling  not used
                                                    up to T2
H       wait for ACK receipt (IST)                  64*T1         64*T1
I       wait for ACK retransmits (IST)              T4            0
J       wait for request retransmits (NIST)         64*T1         0
K       wait for response retransmits (NICT)        T4            0
L       wait for INVITE retransmits (IST Accepted)  64*T1         64*T1
M       wait for 2xx retransmits (ICT Accepted)     64*T1         64*T1
======  ==========================================  ============  ==========

Timer A doubles without a cap (§17.1.1.2); E and G double up to T2 (§17.1.2.2, §17.2.1), and E
runs at T2 once a provisional response arrived (§17.1.2.2).
"""

from __future__ import annotations

from typing import Optional

import attrs

from clearwater._enum import IdentityEnum

__all__ = ["Timer", "TimerSettings"]


class Timer(IdentityEnum):
    """The RFC 3261 / RFC 6026 transaction timers."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 (the RFC's name)
    J = "J"
    K = "K"
    L = "L"
    M = "M"


# Tuples, not sets: membership by identity, without hashing (Enum.__hash__ is Python code).
_RETRANSMIT = (Timer.A, Timer.E, Timer.G)
_ZERO_WHEN_RELIABLE = (Timer.D, Timer.I, Timer.J, Timer.K)


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(attribute.name + " must be positive")


@attrs.frozen
class TimerSettings:
    """T1, T2, T4 (seconds) and the timers with fixed values; all others derive from these.

    Defaults are RFC 3261's: T1 0.5 s, T2 4 s, T4 5 s, timer C 180 s, timer D 32 s.
    """

    t1: float = attrs.field(default=0.5, validator=_positive)
    t2: float = attrs.field(default=4.0, validator=_positive)
    t4: float = attrs.field(default=5.0, validator=_positive)
    timer_c: float = attrs.field(default=180.0, validator=_positive)
    timer_d: float = attrs.field(default=32.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")

    def duration(self, timer: Timer, *, reliable: bool) -> Optional[float]:
        """How long ``timer`` runs first; None when it is not used on this kind of transport.

        For A, E and G this is the first retransmission interval; see :meth:`next_interval`.
        """
        if reliable:
            if timer in _RETRANSMIT:
                return None
            if timer in _ZERO_WHEN_RELIABLE:
                return 0.0
        if timer in _RETRANSMIT:
            return self.t1
        if timer is Timer.C:
            return self.timer_c
        if timer is Timer.D:
            return self.timer_d
        if timer in (Timer.I, Timer.K):
            return self.t4
        return 64 * self.t1  # B, F, H, J, L, M

    def next_interval(self, timer: Timer, previous: float) -> float:
        """The retransmission interval after ``previous`` for timer A, E or G."""
        if timer is Timer.A:
            return 2 * previous
        if timer in (Timer.E, Timer.G):
            return min(2 * previous, self.t2)
        raise ValueError("timer " + timer.value + " does not retransmit")
