"""Client transactions: RFC 3261 §17.1.1 (Figure 5, RFC 6026 §7.2) and §17.1.2 (Figure 6).

Every (state, input) pair of each machine has a row in a table below; the exhaustive tests fail
on a missing row. Helpers for building messages and running a simulated clock are shared with
test_server.py and test_stateful.py.
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional, Union

import pytest

from clearwater.sip import Request, Response, parse_message
from clearwater.sip.headers import header_key
from clearwater.sip.transaction._effects import (
    CancelTimer,
    DeliverToTU,
    Effect,
    Failed,
    FailureReason,
    StartTimer,
    Terminated,
    Transmit,
)
from clearwater.sip.transaction.client import (
    IctInput,
    IctState,
    InviteClientTransaction,
    NictInput,
    NictState,
    NonInviteClientTransaction,
    build_ack,
    build_cancel,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings

# ---------------------------------------------------------------------------- shared helpers


def make_request(method: str = "INVITE", *, extra: str = "") -> Request:
    """A request as a proxy's client transaction sends it: two Vias, Route headers."""
    data = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        "Route: <sip:p1.biloxi.example.com;lr>\r\n"
        "Route: <sip:p2.biloxi.example.com;lr>\r\n"
        "Max-Forwards: 69\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def make_response(request: Request, status: int, to_tag: Optional[str] = "a6c85cf") -> Response:
    """A response to ``request`` as a UAS sends it (To tag added unless ``to_tag`` is None)."""
    headers = [
        (name, value)
        for name, value in request.headers
        if header_key(name) in ("via", "from", "to", "call-id", "cseq")
    ]
    response = Response(status, "Reason", headers)
    if to_tag is not None and status != 100:
        response.headers.set("To", (request.headers.get("To") or "") + ";tag=" + to_tag)
    return response


Machine = Union[InviteClientTransaction, NonInviteClientTransaction]


class Timeline:
    """Runs a machine against a simulated clock: keeps the running timers from the effects and
    fires the earliest one. ``log`` records ``(time, effect)``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.timers: dict[Timer, float] = {}
        self.log: list[tuple[float, Effect]] = []
        self.terminated = False

    def apply(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            assert not self.terminated, "effect after Terminated"
            self.log.append((self.now, effect))
            if isinstance(effect, StartTimer):
                assert effect.at >= self.now
                self.timers[effect.timer] = effect.at
            elif isinstance(effect, CancelTimer):
                assert effect.timer in self.timers, "cancelled a timer that is not running"
                del self.timers[effect.timer]
            elif isinstance(effect, Terminated):
                assert not self.timers, "Terminated with timers running"
                self.terminated = True
        return effects

    def fire_next(self, fire: Callable[[Timer, float], list[Effect]]) -> Timer:
        timer, at = min(self.timers.items(), key=lambda item: item[1])
        del self.timers[timer]
        self.now = at
        self.apply(fire(timer, at))
        return timer

    def run(self, fire: Callable[[Timer, float], list[Effect]], until: float = 1e9) -> None:
        while self.timers and min(self.timers.values()) <= until:
            self.fire_next(fire)

    def times(
        self, kind: Union[type, tuple[type, ...]], timer: Optional[Timer] = None
    ) -> list[float]:
        """When effects of ``kind`` happened (for StartTimer/CancelTimer: of ``timer`` only)."""
        return [
            t
            for t, e in self.log
            if isinstance(e, kind) and (timer is None or getattr(e, "timer", None) is timer)
        ]


# ---------------------------------------------------------------------------- fixtures

INVITE = make_request("INVITE")
OPTIONS = make_request("OPTIONS")
R180 = make_response(INVITE, 180)
R200 = make_response(INVITE, 200)
R486 = make_response(INVITE, 486)
ACK = build_ack(INVITE, R486)
O180 = make_response(OPTIONS, 180)
O200 = make_response(OPTIONS, 200)
DEFAULTS = TimerSettings()
NOW = 10.0  # when the exhaustive tests apply their input; the machines start at 0
IGNORED = None


# ---------------------------------------------------------------------------- ICT: every pair


def _ict(*steps: Callable[[InviteClientTransaction], object]) -> InviteClientTransaction:
    machine = InviteClientTransaction(INVITE, reliable=False, now=0.0)
    machine.start(0.0)
    for step in steps:
        step(machine)
    return machine


ICT_DRIVE: dict[IctState, Callable[[], InviteClientTransaction]] = {
    IctState.CALLING: lambda: _ict(),
    IctState.PROCEEDING: lambda: _ict(lambda m: m.receive_response(R180, 0.0)),
    IctState.COMPLETED: lambda: _ict(lambda m: m.receive_response(R486, 0.0)),
    IctState.ACCEPTED: lambda: _ict(lambda m: m.receive_response(R200, 0.0)),
    IctState.TERMINATED: lambda: _ict(lambda m: m.timer_fired(Timer.B, 32.0)),
}

ICT_APPLY: dict[IctInput, Callable[[InviteClientTransaction], list[Effect]]] = {
    IctInput.RESPONSE_1XX: lambda m: m.receive_response(R180, NOW),
    IctInput.RESPONSE_2XX: lambda m: m.receive_response(R200, NOW),
    IctInput.RESPONSE_3XX_6XX: lambda m: m.receive_response(R486, NOW),
    IctInput.TIMER_A: lambda m: m.timer_fired(Timer.A, NOW),
    IctInput.TIMER_B: lambda m: m.timer_fired(Timer.B, NOW),
    IctInput.TIMER_D: lambda m: m.timer_fired(Timer.D, NOW),
    IctInput.TIMER_M: lambda m: m.timer_fired(Timer.M, NOW),
    IctInput.TRANSPORT_ERROR: lambda m: m.transport_error(NOW),
}

_A, _B, _D, _M = (CancelTimer(t) for t in (Timer.A, Timer.B, Timer.D, Timer.M))
_TIMEOUT = Failed(FailureReason.TIMEOUT)
_TRANSPORT = Failed(FailureReason.TRANSPORT_ERROR)

S = IctState
I = IctInput  # noqa: E741
ICT_EXPECTED: dict[tuple[IctState, IctInput], Optional[tuple[list[Effect], IctState]]] = {
    # Calling: A and B run
    (S.CALLING, I.RESPONSE_1XX): ([_A, _B, DeliverToTU(R180)], S.PROCEEDING),
    (S.CALLING, I.RESPONSE_2XX): (
        [_A, _B, DeliverToTU(R200), StartTimer(Timer.M, NOW + 32)],
        S.ACCEPTED,
    ),
    (S.CALLING, I.RESPONSE_3XX_6XX): (
        [_A, _B, Transmit(ACK), DeliverToTU(R486), StartTimer(Timer.D, NOW + 32)],
        S.COMPLETED,
    ),
    (S.CALLING, I.TIMER_A): ([Transmit(INVITE), StartTimer(Timer.A, NOW + 1.0)], S.CALLING),
    (S.CALLING, I.TIMER_B): ([_A, _TIMEOUT, Terminated()], S.TERMINATED),
    (S.CALLING, I.TIMER_D): IGNORED,
    (S.CALLING, I.TIMER_M): IGNORED,
    (S.CALLING, I.TRANSPORT_ERROR): ([_A, _B, _TRANSPORT, Terminated()], S.TERMINATED),
    # Proceeding: no timer runs
    (S.PROCEEDING, I.RESPONSE_1XX): ([DeliverToTU(R180)], S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): (
        [DeliverToTU(R200), StartTimer(Timer.M, NOW + 32)],
        S.ACCEPTED,
    ),
    (S.PROCEEDING, I.RESPONSE_3XX_6XX): (
        [Transmit(ACK), DeliverToTU(R486), StartTimer(Timer.D, NOW + 32)],
        S.COMPLETED,
    ),
    (S.PROCEEDING, I.TIMER_A): IGNORED,
    (S.PROCEEDING, I.TIMER_B): IGNORED,
    (S.PROCEEDING, I.TIMER_D): IGNORED,
    (S.PROCEEDING, I.TIMER_M): IGNORED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): ([_TRANSPORT, Terminated()], S.TERMINATED),
    # Completed: D runs; retransmitted final responses get the same ACK
    (S.COMPLETED, I.RESPONSE_1XX): IGNORED,
    (S.COMPLETED, I.RESPONSE_2XX): IGNORED,
    (S.COMPLETED, I.RESPONSE_3XX_6XX): ([Transmit(ACK)], S.COMPLETED),
    (S.COMPLETED, I.TIMER_A): IGNORED,
    (S.COMPLETED, I.TIMER_B): IGNORED,
    (S.COMPLETED, I.TIMER_D): ([Terminated()], S.TERMINATED),
    (S.COMPLETED, I.TIMER_M): IGNORED,
    (S.COMPLETED, I.TRANSPORT_ERROR): ([_D, _TRANSPORT, Terminated()], S.TERMINATED),
    # Accepted (RFC 6026): M runs; every 2xx goes to the TU
    (S.ACCEPTED, I.RESPONSE_1XX): IGNORED,
    (S.ACCEPTED, I.RESPONSE_2XX): ([DeliverToTU(R200)], S.ACCEPTED),
    (S.ACCEPTED, I.RESPONSE_3XX_6XX): IGNORED,
    (S.ACCEPTED, I.TIMER_A): IGNORED,
    (S.ACCEPTED, I.TIMER_B): IGNORED,
    (S.ACCEPTED, I.TIMER_D): IGNORED,
    (S.ACCEPTED, I.TIMER_M): ([Terminated()], S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): IGNORED,
    **{(S.TERMINATED, i): IGNORED for i in IctInput},
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(IctState, IctInput)))
def test_ict_every_state_and_input(state: IctState, event: IctInput) -> None:
    machine = ICT_DRIVE[state]()
    assert machine.state is state
    expected = ICT_EXPECTED[(state, event)]
    effects, next_state = ([], state) if expected is IGNORED else expected
    assert ICT_APPLY[event](machine) == effects
    assert machine.state is next_state


def test_ict_table_is_the_expected_rows() -> None:
    handled = {pair for pair, expected in ICT_EXPECTED.items() if expected is not IGNORED}
    assert set(InviteClientTransaction.TRANSITIONS) == handled


# ---------------------------------------------------------------------------- NICT: every pair


def _nict(*steps: Callable[[NonInviteClientTransaction], object]) -> NonInviteClientTransaction:
    machine = NonInviteClientTransaction(OPTIONS, reliable=False, now=0.0)
    machine.start(0.0)
    for step in steps:
        step(machine)
    return machine


NICT_DRIVE: dict[NictState, Callable[[], NonInviteClientTransaction]] = {
    NictState.TRYING: lambda: _nict(),
    NictState.PROCEEDING: lambda: _nict(lambda m: m.receive_response(O180, 0.0)),
    NictState.COMPLETED: lambda: _nict(lambda m: m.receive_response(O200, 0.0)),
    NictState.TERMINATED: lambda: _nict(lambda m: m.timer_fired(Timer.F, 32.0)),
}

NICT_APPLY: dict[NictInput, Callable[[NonInviteClientTransaction], list[Effect]]] = {
    NictInput.RESPONSE_1XX: lambda m: m.receive_response(O180, NOW),
    NictInput.RESPONSE_FINAL: lambda m: m.receive_response(O200, NOW),
    NictInput.TIMER_E: lambda m: m.timer_fired(Timer.E, NOW),
    NictInput.TIMER_F: lambda m: m.timer_fired(Timer.F, NOW),
    NictInput.TIMER_K: lambda m: m.timer_fired(Timer.K, NOW),
    NictInput.TRANSPORT_ERROR: lambda m: m.transport_error(NOW),
}

_E, _F, _K = (CancelTimer(t) for t in (Timer.E, Timer.F, Timer.K))
N = NictState
J = NictInput
_NICT_COMPLETE: tuple[list[Effect], NictState] = (
    [_E, _F, DeliverToTU(O200), StartTimer(Timer.K, NOW + 5)],
    N.COMPLETED,
)
NICT_EXPECTED: dict[tuple[NictState, NictInput], Optional[tuple[list[Effect], NictState]]] = {
    # Trying: E and F run
    (N.TRYING, J.RESPONSE_1XX): ([DeliverToTU(O180)], N.PROCEEDING),
    (N.TRYING, J.RESPONSE_FINAL): _NICT_COMPLETE,
    (N.TRYING, J.TIMER_E): ([Transmit(OPTIONS), StartTimer(Timer.E, NOW + 1.0)], N.TRYING),
    (N.TRYING, J.TIMER_F): ([_E, _TIMEOUT, Terminated()], N.TERMINATED),
    (N.TRYING, J.TIMER_K): IGNORED,
    (N.TRYING, J.TRANSPORT_ERROR): ([_E, _F, _TRANSPORT, Terminated()], N.TERMINATED),
    # Proceeding: E (now at T2) and F run
    (N.PROCEEDING, J.RESPONSE_1XX): ([DeliverToTU(O180)], N.PROCEEDING),
    (N.PROCEEDING, J.RESPONSE_FINAL): _NICT_COMPLETE,
    (N.PROCEEDING, J.TIMER_E): (
        [Transmit(OPTIONS), StartTimer(Timer.E, NOW + 4.0)],
        N.PROCEEDING,
    ),
    (N.PROCEEDING, J.TIMER_F): ([_E, _TIMEOUT, Terminated()], N.TERMINATED),
    (N.PROCEEDING, J.TIMER_K): IGNORED,
    (N.PROCEEDING, J.TRANSPORT_ERROR): ([_E, _F, _TRANSPORT, Terminated()], N.TERMINATED),
    # Completed: K runs; responses are absorbed
    (N.COMPLETED, J.RESPONSE_1XX): IGNORED,
    (N.COMPLETED, J.RESPONSE_FINAL): IGNORED,
    (N.COMPLETED, J.TIMER_E): IGNORED,
    (N.COMPLETED, J.TIMER_F): IGNORED,
    (N.COMPLETED, J.TIMER_K): ([Terminated()], N.TERMINATED),
    (N.COMPLETED, J.TRANSPORT_ERROR): IGNORED,
    **{(N.TERMINATED, i): IGNORED for i in NictInput},
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(NictState, NictInput)))
def test_nict_every_state_and_input(state: NictState, event: NictInput) -> None:
    machine = NICT_DRIVE[state]()
    assert machine.state is state
    expected = NICT_EXPECTED[(state, event)]
    effects, next_state = ([], state) if expected is IGNORED else expected
    assert NICT_APPLY[event](machine) == effects
    assert machine.state is next_state


def test_nict_table_is_the_expected_rows() -> None:
    handled = {pair for pair, expected in NICT_EXPECTED.items() if expected is not IGNORED}
    assert set(NonInviteClientTransaction.TRANSITIONS) == handled


# ---------------------------------------------------------------------------- start


def test_ict_start_unreliable() -> None:
    machine = InviteClientTransaction(INVITE, reliable=False, now=5.0)
    assert machine.state is IctState.CALLING
    assert machine.request is INVITE
    assert machine.start(5.0) == [
        Transmit(INVITE),
        StartTimer(Timer.A, 5.5),
        StartTimer(Timer.B, 37.0),
    ]


def test_ict_start_reliable_has_no_timer_a() -> None:
    machine = InviteClientTransaction(INVITE, reliable=True, now=0.0)
    assert machine.start(0.0) == [Transmit(INVITE), StartTimer(Timer.B, 32.0)]


def test_nict_start() -> None:
    unreliable = NonInviteClientTransaction(OPTIONS, reliable=False, now=0.0)
    assert unreliable.start(0.0) == [
        Transmit(OPTIONS),
        StartTimer(Timer.E, 0.5),
        StartTimer(Timer.F, 32.0),
    ]
    reliable = NonInviteClientTransaction(OPTIONS, reliable=True, now=0.0)
    assert reliable.start(0.0) == [Transmit(OPTIONS), StartTimer(Timer.F, 32.0)]


@pytest.mark.parametrize("cls", [InviteClientTransaction, NonInviteClientTransaction])
def test_start_first_and_only_once(cls: type[Machine]) -> None:
    machine = cls(INVITE, reliable=False, now=0.0)
    with pytest.raises(ValueError, match="start"):
        machine.receive_response(R180, 0.0)
    with pytest.raises(ValueError, match="start"):
        machine.timer_fired(Timer.A, 0.0)
    with pytest.raises(ValueError, match="start"):
        machine.transport_error(0.0)
    machine.start(0.0)
    with pytest.raises(ValueError, match="twice"):
        machine.start(0.0)


def test_timers_of_other_machines_are_ignored() -> None:
    ict = _ict()
    nict = _nict()
    for timer in Timer:
        if timer not in (Timer.A, Timer.B, Timer.D, Timer.M):
            assert ict.timer_fired(timer, 1.0) == []
        if timer not in (Timer.E, Timer.F, Timer.K):
            assert nict.timer_fired(timer, 1.0) == []
    assert ict.state is IctState.CALLING
    assert nict.state is NictState.TRYING


# ---------------------------------------------------------------------------- schedules


def _ict_timeline(
    reliable: bool = False, settings: TimerSettings = DEFAULTS
) -> tuple[InviteClientTransaction, Timeline]:
    machine = InviteClientTransaction(INVITE, reliable=reliable, settings=settings, now=0.0)
    timeline = Timeline()
    timeline.apply(machine.start(0.0))
    return machine, timeline


def test_ict_timer_a_doubles_until_timer_b() -> None:
    machine, timeline = _ict_timeline()
    timeline.run(machine.timer_fired)
    # the INVITE at 0, then a retransmission each time A fires; B ends it at 64*T1
    assert timeline.times(Transmit) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeline.log[-3:] == [
        (32.0, CancelTimer(Timer.A)),
        (32.0, Failed(FailureReason.TIMEOUT)),
        (32.0, Terminated()),
    ]
    assert machine.state is IctState.TERMINATED


def test_ict_custom_settings() -> None:
    machine, timeline = _ict_timeline(settings=TimerSettings(t1=0.1, t2=0.4))
    timeline.run(machine.timer_fired)
    assert timeline.times(Transmit) == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert timeline.times(Failed) == pytest.approx([6.4])


def test_ict_no_retransmission_once_proceeding() -> None:
    machine, timeline = _ict_timeline()
    timeline.run(machine.timer_fired, until=2.0)  # A at 0.5 and 1.5
    timeline.apply(machine.receive_response(R180, 2.0))
    assert timeline.timers == {}  # A and B cancelled: §17.1.1.2
    assert timeline.times(Transmit) == [0.0, 0.5, 1.5]


def test_ict_reliable_final_terminates_at_once() -> None:
    machine, _ = _ict_timeline(reliable=True)
    assert machine.receive_response(R486, 1.0) == [
        CancelTimer(Timer.B),
        Transmit(ACK),  # the ACK is sent even on a reliable transport
        DeliverToTU(R486),
        Terminated(),
    ]
    assert machine.state is IctState.TERMINATED


def test_ict_reliable_2xx_still_waits_for_timer_m() -> None:
    machine, _ = _ict_timeline(reliable=True)
    assert machine.receive_response(R200, 1.0) == [
        CancelTimer(Timer.B),
        DeliverToTU(R200),
        StartTimer(Timer.M, 33.0),
    ]


def test_ict_accepted_passes_every_2xx_from_every_fork() -> None:
    machine, timeline = _ict_timeline()
    timeline.apply(machine.receive_response(R200, 1.0))
    other_fork = make_response(INVITE, 200, to_tag="fork2")
    assert machine.receive_response(R200, 2.0) == [DeliverToTU(R200)]
    assert machine.receive_response(other_fork, 3.0) == [DeliverToTU(other_fork)]
    assert machine.receive_response(R486, 3.0) == []
    timeline.run(machine.timer_fired)
    assert timeline.log[-1] == (33.0, Terminated())


def test_ict_completed_unreliable_timer_d() -> None:
    machine, timeline = _ict_timeline()
    timeline.apply(machine.receive_response(R486, 1.0))
    assert machine.receive_response(R486, 2.0) == [Transmit(ACK)]
    timeline.run(machine.timer_fired)
    assert timeline.log[-1] == (33.0, Terminated())  # timer D: 32 s


def _nict_timeline(
    reliable: bool = False, settings: TimerSettings = DEFAULTS
) -> tuple[NonInviteClientTransaction, Timeline]:
    machine = NonInviteClientTransaction(OPTIONS, reliable=reliable, settings=settings, now=0.0)
    timeline = Timeline()
    timeline.apply(machine.start(0.0))
    return machine, timeline


def test_nict_timer_e_capped_at_t2_until_timer_f() -> None:
    machine, timeline = _nict_timeline()
    timeline.run(machine.timer_fired)
    assert timeline.times(Transmit) == [
        0.0,
        0.5,
        1.5,
        3.5,
        7.5,
        11.5,
        15.5,
        19.5,
        23.5,
        27.5,
        31.5,
    ]
    assert timeline.log[-3:] == [
        (32.0, CancelTimer(Timer.E)),
        (32.0, Failed(FailureReason.TIMEOUT)),
        (32.0, Terminated()),
    ]


def test_nict_timer_e_goes_to_t2_after_a_provisional() -> None:
    machine, timeline = _nict_timeline()
    timeline.run(machine.timer_fired, until=0.6)  # E at 0.5; next E due at 1.5
    timeline.apply(machine.receive_response(O180, 0.7))
    timeline.run(machine.timer_fired)
    assert timeline.times(Transmit) == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert timeline.times(Failed) == [32.0]


def test_nict_custom_settings() -> None:
    machine, timeline = _nict_timeline(settings=TimerSettings(t1=0.1, t2=0.4, t4=1.0))
    timeline.run(machine.timer_fired, until=1.2)
    assert timeline.times(Transmit) == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.1])
    timeline.apply(machine.receive_response(O200, 1.2))
    timeline.run(machine.timer_fired)
    assert timeline.log[-1][0] == pytest.approx(2.2)  # timer K = T4
    assert timeline.log[-1][1] == Terminated()


def test_nict_reliable_final_terminates_at_once() -> None:
    machine, _ = _nict_timeline(reliable=True)
    assert machine.receive_response(O200, 1.0) == [
        CancelTimer(Timer.F),
        DeliverToTU(O200),
        Terminated(),
    ]


# ---------------------------------------------------------------------------- ACK (§17.1.1.3)


def test_ack_for_non_2xx_on_the_wire() -> None:
    assert build_ack(INVITE, R486).to_bytes() == (
        b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n"
        b"Route: <sip:p1.biloxi.example.com;lr>\r\n"
        b"Route: <sip:p2.biloxi.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 ACK\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_ack_fields() -> None:
    body_invite = make_request(extra="Content-Type: application/sdp\r\n")
    body_invite.body = b"v=0\r\n"
    ack = build_ack(body_invite, make_response(body_invite, 603, to_tag="xyz"))
    assert ack.method == "ACK"
    assert str(ack.uri) == "sip:bob@biloxi.example.com"
    assert [v.branch for v in ack.vias] == ["z9hG4bK2d4790.1"]  # one Via, the top one
    assert ack.to.tag == "xyz"
    assert ack.from_.tag == "1928301774"
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.body == b""
    assert ack.content_type is None
    assert ack.max_forwards == 70


def test_ack_comma_separated_vias_and_no_route() -> None:
    data = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP a.example.com;branch=z9hG4bKa, SIP/2.0/TCP b.example.com;branch=z9b\r\n"
        b"t: <sip:bob@example.com>\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"i: abc\r\n"
        b"CSeq: 2 INVITE\r\n"
        b"l: 0\r\n\r\n"
    )
    invite = parse_message(data)
    assert isinstance(invite, Request)
    ack = build_ack(invite, make_response(invite, 404))
    assert [str(v) for v in ack.vias] == ["SIP/2.0/TCP a.example.com;branch=z9hG4bKa"]
    assert ack.headers.get_all("Route") == []
    assert ack.to.tag == "a6c85cf"
    assert ack.call_id == "abc"


def test_cancel_on_the_wire() -> None:
    # RFC 3261 §9.1: the request's Request-URI, Call-ID, To (no tag), From, top Via and Route;
    # CSeq number with the method CANCEL.
    assert build_cancel(INVITE).to_bytes() == (
        b"CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n"
        b"Route: <sip:p1.biloxi.example.com;lr>\r\n"
        b"Route: <sip:p2.biloxi.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 CANCEL\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_ict_resends_the_same_ack_object() -> None:
    machine = _ict(lambda m: m.receive_response(R486, 0.0))
    first = machine.receive_response(R486, 1.0)
    second = machine.receive_response(R486, 2.0)
    assert isinstance(first[0], Transmit) and isinstance(second[0], Transmit)
    assert first[0].message is second[0].message


@pytest.mark.parametrize(
    ("machine", "final"),
    [
        (lambda: _ict_timeline()[0], R200),  # Accepted: lingers 64*T1
        (lambda: _ict_timeline()[0], R486),  # Completed: the ACK is built first
        (lambda: _nict_timeline()[0], O200),
    ],
)
def test_request_forgotten_at_the_final_response(
    machine: Callable[[], Machine], final: Response
) -> None:
    m = machine()
    provisional = R180 if isinstance(m, InviteClientTransaction) else O180
    m.receive_response(provisional, 0.5)
    assert m.request is not None  # after a provisional response: still (re)sent if need be
    effects = m.receive_response(final, 1.0)
    assert _request_of(m) is None
    assert DeliverToTU(final) in effects
    if final is R486:
        assert Transmit(ACK) in effects


def _request_of(machine: Machine) -> Optional[Request]:
    return machine.request  # a fresh read: mypy keeps the narrowing across method calls
