"""Server transactions: RFC 3261 §17.2.1 (Figure 7, RFC 6026 §7.1) and §17.2.2 (Figure 8,
RFC 4320 §4.1).

Every (state, input) pair of each machine has a row in a table below; the exhaustive tests fail
on a missing row.
"""

from __future__ import annotations

import itertools
from typing import Callable, Union

import pytest

from clearwater.sip import Request, Response, parse_message
from clearwater.sip.transaction._effects import (
    CancelTimer,
    DeliverToTU,
    Effect,
    Failed,
    FailureReason,
    Retransmit,
    StartTimer,
    Terminated,
    Transmit,
)
from clearwater.sip.transaction.server import (
    InviteServerTransaction,
    IstInput,
    IstState,
    NistInput,
    NistState,
    NonInviteServerTransaction,
    build_response,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings
from tests.unit.sip.transaction.test_client import Timeline, make_request, make_response

INVITE = make_request("INVITE")
BYE = make_request("BYE")
TRYING = build_response(INVITE, 100, "Trying")
R180 = make_response(INVITE, 180)
R200 = make_response(INVITE, 200)
R486 = make_response(INVITE, 486)
ACK = make_request("ACK")
B100 = make_response(BYE, 100)
B200 = make_response(BYE, 200)
DEFAULTS = TimerSettings()
NOW = 10.0  # when the exhaustive tests apply their input; the machines start at 0
IGNORED = None
RAISES = "raises"  # send_response with a response the state does not allow

_G, _H, _I, _J, _L = (CancelTimer(t) for t in (Timer.G, Timer.H, Timer.I, Timer.J, Timer.L))
_TIMEOUT = Failed(FailureReason.TIMEOUT)
_TRANSPORT = Failed(FailureReason.TRANSPORT_ERROR)

Expected = Union[None, str, tuple[list[Effect], object]]


# ---------------------------------------------------------------------------- build_response


def test_build_response_copies_the_section_8_2_6_headers() -> None:
    request = make_request("INVITE", extra="Timestamp: 54.2\r\nContact: <sip:alice@pc33>\r\n")
    assert build_response(request, 100, "Trying").to_bytes() == (
        b"SIP/2.0 100 Trying\r\n"
        b"Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Timestamp: 54.2\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_build_response_keeps_compact_and_comma_separated_vias() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com;branch=z9b\r\n"
        b"Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n"
        b"t: <sip:bob@example.com>\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"i: abc\r\n"
        b"CSeq: 2 OPTIONS\r\n"
        b"l: 0\r\n\r\n"
    )
    request = parse_message(data)
    assert isinstance(request, Request)
    response = build_response(request, 404, "Not Found")
    assert [v.host for v in response.vias] == ["a.example.com", "b.example.com", "c.example.com"]
    assert response.to.tag is None
    assert (response.call_id, str(response.cseq)) == ("abc", "2 OPTIONS")
    assert response.headers.get("Timestamp") is None
    assert (response.status, response.reason, response.body) == (404, "Not Found", b"")


# ---------------------------------------------------------------------------- IST: every pair


def _ist(
    *steps: Callable[[InviteServerTransaction], object], send_trying: bool = True
) -> InviteServerTransaction:
    machine = InviteServerTransaction(INVITE, reliable=False, now=0.0, send_trying=send_trying)
    machine.start(0.0)
    for step in steps:
        step(machine)
    return machine


IST_DRIVE: dict[IstState, Callable[[], InviteServerTransaction]] = {
    IstState.PROCEEDING: lambda: _ist(),
    IstState.COMPLETED: lambda: _ist(lambda m: m.send_response(R486, 0.0)),
    IstState.CONFIRMED: lambda: _ist(
        lambda m: m.send_response(R486, 0.0), lambda m: m.receive_request(ACK, 0.0)
    ),
    IstState.ACCEPTED: lambda: _ist(lambda m: m.send_response(R200, 0.0)),
    IstState.TERMINATED: lambda: _ist(
        lambda m: m.send_response(R200, 0.0), lambda m: m.timer_fired(Timer.L, 32.0)
    ),
}

IST_APPLY: dict[IstInput, Callable[[InviteServerTransaction], list[Effect]]] = {
    IstInput.INVITE: lambda m: m.receive_request(INVITE, NOW),
    IstInput.ACK: lambda m: m.receive_request(ACK, NOW),
    IstInput.TU_1XX: lambda m: m.send_response(R180, NOW),
    IstInput.TU_2XX: lambda m: m.send_response(R200, NOW),
    IstInput.TU_3XX_6XX: lambda m: m.send_response(R486, NOW),
    IstInput.TIMER_G: lambda m: m.timer_fired(Timer.G, NOW),
    IstInput.TIMER_H: lambda m: m.timer_fired(Timer.H, NOW),
    IstInput.TIMER_I: lambda m: m.timer_fired(Timer.I, NOW),
    IstInput.TIMER_L: lambda m: m.timer_fired(Timer.L, NOW),
    IstInput.TRANSPORT_ERROR: lambda m: m.transport_error(NOW),
}

S = IstState
I = IstInput  # noqa: E741
_TU = (I.TU_1XX, I.TU_2XX, I.TU_3XX_6XX)
IST_EXPECTED: dict[tuple[IstState, IstInput], Expected] = {
    # Proceeding: no timer runs; the 100 (Trying) was sent by start()
    (S.PROCEEDING, I.INVITE): ([Retransmit()], S.PROCEEDING),
    (S.PROCEEDING, I.ACK): IGNORED,
    (S.PROCEEDING, I.TU_1XX): ([Transmit(R180)], S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): ([Transmit(R200), StartTimer(Timer.L, NOW + 32)], S.ACCEPTED),
    (S.PROCEEDING, I.TU_3XX_6XX): (
        [Transmit(R486), StartTimer(Timer.G, NOW + 0.5), StartTimer(Timer.H, NOW + 32)],
        S.COMPLETED,
    ),
    (S.PROCEEDING, I.TIMER_G): IGNORED,
    (S.PROCEEDING, I.TIMER_H): IGNORED,
    (S.PROCEEDING, I.TIMER_I): IGNORED,
    (S.PROCEEDING, I.TIMER_L): IGNORED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): ([_TRANSPORT], S.PROCEEDING),  # RFC 6026 §7.1
    # Completed: G and H run
    (S.COMPLETED, I.INVITE): ([Retransmit()], S.COMPLETED),
    (S.COMPLETED, I.ACK): ([_G, _H, StartTimer(Timer.I, NOW + 5)], S.CONFIRMED),
    **{(S.COMPLETED, i): RAISES for i in _TU},
    (S.COMPLETED, I.TIMER_G): ([Retransmit(), StartTimer(Timer.G, NOW + 1.0)], S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): ([_G, _TIMEOUT, Terminated()], S.TERMINATED),
    (S.COMPLETED, I.TIMER_I): IGNORED,
    (S.COMPLETED, I.TIMER_L): IGNORED,
    (S.COMPLETED, I.TRANSPORT_ERROR): ([_TRANSPORT], S.COMPLETED),
    # Confirmed: I runs; ACK retransmissions are absorbed
    (S.CONFIRMED, I.INVITE): IGNORED,
    (S.CONFIRMED, I.ACK): IGNORED,
    **{(S.CONFIRMED, i): RAISES for i in _TU},
    (S.CONFIRMED, I.TIMER_G): IGNORED,
    (S.CONFIRMED, I.TIMER_H): IGNORED,
    (S.CONFIRMED, I.TIMER_I): ([Terminated()], S.TERMINATED),
    (S.CONFIRMED, I.TIMER_L): IGNORED,
    (S.CONFIRMED, I.TRANSPORT_ERROR): IGNORED,
    # Accepted (RFC 6026): L runs; INVITEs absorbed, ACKs to the TU, the TU's 2xx sent
    (S.ACCEPTED, I.INVITE): IGNORED,
    (S.ACCEPTED, I.ACK): ([DeliverToTU(ACK)], S.ACCEPTED),
    (S.ACCEPTED, I.TU_1XX): RAISES,
    (S.ACCEPTED, I.TU_2XX): ([Transmit(R200)], S.ACCEPTED),
    (S.ACCEPTED, I.TU_3XX_6XX): RAISES,
    (S.ACCEPTED, I.TIMER_G): IGNORED,
    (S.ACCEPTED, I.TIMER_H): IGNORED,
    (S.ACCEPTED, I.TIMER_I): IGNORED,
    (S.ACCEPTED, I.TIMER_L): ([Terminated()], S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): ([_TRANSPORT], S.ACCEPTED),
    # Terminated
    **{(S.TERMINATED, i): IGNORED for i in IstInput},
    **{(S.TERMINATED, i): RAISES for i in _TU},
}


def _apply_and_check(
    apply: Callable[[], list[Effect]],
    get_state: Callable[[], object],
    state: object,
    expected: Expected,
) -> None:
    if isinstance(expected, str):  # RAISES
        with pytest.raises(ValueError, match="cannot send"):
            apply()
        assert get_state() is state
        return
    effects, next_state = ([], state) if expected is None else expected
    assert apply() == effects
    assert get_state() is next_state


@pytest.mark.parametrize(("state", "event"), list(itertools.product(IstState, IstInput)))
def test_ist_every_state_and_input(state: IstState, event: IstInput) -> None:
    machine = IST_DRIVE[state]()
    assert machine.state is state
    expected = IST_EXPECTED[(state, event)]
    _apply_and_check(lambda: IST_APPLY[event](machine), lambda: machine.state, state, expected)


def test_ist_table_is_the_expected_rows() -> None:
    handled = {pair for pair, exp in IST_EXPECTED.items() if exp is not IGNORED and exp != RAISES}
    assert set(InviteServerTransaction.TRANSITIONS) == handled


# ---------------------------------------------------------------------------- NIST: every pair


def _nist(*steps: Callable[[NonInviteServerTransaction], object]) -> NonInviteServerTransaction:
    machine = NonInviteServerTransaction(BYE, reliable=False, now=0.0)
    assert machine.start(0.0) == []
    for step in steps:
        step(machine)
    return machine


NIST_DRIVE: dict[NistState, Callable[[], NonInviteServerTransaction]] = {
    NistState.TRYING: lambda: _nist(),
    NistState.PROCEEDING: lambda: _nist(lambda m: m.send_response(B100, 4.0)),
    NistState.COMPLETED: lambda: _nist(lambda m: m.send_response(B200, 0.0)),
    NistState.TERMINATED: lambda: _nist(
        lambda m: m.send_response(B200, 0.0), lambda m: m.timer_fired(Timer.J, 32.0)
    ),
}

NIST_APPLY: dict[NistInput, Callable[[NonInviteServerTransaction], list[Effect]]] = {
    NistInput.REQUEST: lambda m: m.receive_request(BYE, NOW),
    NistInput.TU_1XX: lambda m: m.send_response(B100, NOW),
    NistInput.TU_FINAL: lambda m: m.send_response(B200, NOW),
    NistInput.TIMER_J: lambda m: m.timer_fired(Timer.J, NOW),
    NistInput.TRANSPORT_ERROR: lambda m: m.transport_error(NOW),
}

N = NistState
J = NistInput
_NIST_COMPLETE: tuple[list[Effect], NistState] = (
    [Transmit(B200), StartTimer(Timer.J, NOW + 32)],
    N.COMPLETED,
)
NIST_EXPECTED: dict[tuple[NistState, NistInput], Expected] = {
    (N.TRYING, J.REQUEST): IGNORED,  # absorbed
    (N.TRYING, J.TU_1XX): ([Transmit(B100)], N.PROCEEDING),
    (N.TRYING, J.TU_FINAL): _NIST_COMPLETE,
    (N.TRYING, J.TIMER_J): IGNORED,
    (N.TRYING, J.TRANSPORT_ERROR): ([_TRANSPORT, Terminated()], N.TERMINATED),
    (N.PROCEEDING, J.REQUEST): ([Retransmit()], N.PROCEEDING),
    (N.PROCEEDING, J.TU_1XX): ([Transmit(B100)], N.PROCEEDING),
    (N.PROCEEDING, J.TU_FINAL): _NIST_COMPLETE,
    (N.PROCEEDING, J.TIMER_J): IGNORED,
    (N.PROCEEDING, J.TRANSPORT_ERROR): ([_TRANSPORT, Terminated()], N.TERMINATED),
    (N.COMPLETED, J.REQUEST): ([Retransmit()], N.COMPLETED),
    (N.COMPLETED, J.TU_1XX): RAISES,
    (N.COMPLETED, J.TU_FINAL): RAISES,
    (N.COMPLETED, J.TIMER_J): ([Terminated()], N.TERMINATED),
    (N.COMPLETED, J.TRANSPORT_ERROR): ([_J, _TRANSPORT, Terminated()], N.TERMINATED),
    (N.TERMINATED, J.REQUEST): IGNORED,
    (N.TERMINATED, J.TU_1XX): RAISES,
    (N.TERMINATED, J.TU_FINAL): RAISES,
    (N.TERMINATED, J.TIMER_J): IGNORED,
    (N.TERMINATED, J.TRANSPORT_ERROR): IGNORED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(NistState, NistInput)))
def test_nist_every_state_and_input(state: NistState, event: NistInput) -> None:
    machine = NIST_DRIVE[state]()
    assert machine.state is state
    expected = NIST_EXPECTED[(state, event)]
    _apply_and_check(lambda: NIST_APPLY[event](machine), lambda: machine.state, state, expected)


def test_nist_table_is_the_expected_rows() -> None:
    handled = {pair for pair, exp in NIST_EXPECTED.items() if exp is not IGNORED and exp != RAISES}
    assert set(NonInviteServerTransaction.TRANSITIONS) == handled


# ---------------------------------------------------------------------------- IST details


def test_ist_start_sends_100_trying_built_from_the_request() -> None:
    machine = InviteServerTransaction(INVITE, reliable=False, now=0.0)
    assert machine.state is IstState.PROCEEDING
    effects = machine.start(0.0)
    assert effects == [Transmit(TRYING)]
    trying = effects[0].message  # type: ignore[union-attr]
    assert isinstance(trying, Response)
    assert (trying.status, trying.reason, trying.to.tag) == (100, "Trying", None)


def test_ist_without_trying_resends_nothing_until_a_provisional() -> None:
    machine = _ist(send_trying=False)
    assert machine.receive_request(INVITE, 1.0) == []
    machine.send_response(R180, 2.0)
    assert machine.receive_request(INVITE, 3.0) == [Retransmit()]


def test_ist_resends_the_latest_provisional() -> None:
    machine = _ist()
    machine.send_response(R180, 1.0)
    r183 = make_response(INVITE, 183)
    machine.send_response(r183, 2.0)
    assert machine.receive_request(INVITE, 3.0) == [Retransmit()]


def test_ist_rejects_other_methods() -> None:
    with pytest.raises(ValueError, match="BYE"):
        _ist().receive_request(BYE, 1.0)


def test_ist_timer_g_capped_at_t2_and_timer_h() -> None:
    machine = _ist()
    timeline = Timeline()
    timeline.apply(machine.send_response(R486, 0.0))
    timeline.run(machine.timer_fired)
    assert timeline.times((Transmit, Retransmit)) == [
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
    assert timeline.log[-3:] == [(32.0, _G), (32.0, _TIMEOUT), (32.0, Terminated())]


def test_ist_custom_settings() -> None:
    settings = TimerSettings(t1=0.1, t2=0.4, t4=1.0)
    machine = InviteServerTransaction(INVITE, reliable=False, settings=settings, now=0.0)
    machine.start(0.0)
    timeline = Timeline()
    timeline.apply(machine.send_response(R486, 0.0))
    timeline.run(machine.timer_fired, until=1.55)
    assert timeline.times((Transmit, Retransmit)) == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.1, 1.5])
    timeline.apply(machine.receive_request(ACK, 1.6))
    timeline.run(machine.timer_fired)
    assert timeline.log[-1][0] == pytest.approx(2.6)  # timer I = T4
    assert timeline.log[-1][1] == Terminated()


def test_ist_reliable_has_no_timer_g_and_ack_terminates() -> None:
    machine = InviteServerTransaction(INVITE, reliable=True, now=0.0)
    machine.start(0.0)
    assert machine.send_response(R486, 1.0) == [Transmit(R486), StartTimer(Timer.H, 33.0)]
    assert machine.receive_request(ACK, 2.0) == [_H, Terminated()]
    assert machine.state is IstState.TERMINATED


def test_ist_reliable_2xx_waits_for_timer_l() -> None:
    machine = InviteServerTransaction(INVITE, reliable=True, now=0.0)
    machine.start(0.0)
    assert machine.send_response(R200, 1.0) == [Transmit(R200), StartTimer(Timer.L, 33.0)]


def test_ist_transport_error_keeps_absorbing_retransmissions() -> None:
    # RFC 6026 §7.1: the state is kept, so a retransmitted INVITE is not a new request.
    machine = _ist(lambda m: m.send_response(R200, 0.0))
    assert machine.transport_error(1.0) == [_TRANSPORT]
    assert machine.receive_request(INVITE, 2.0) == []
    assert machine.timer_fired(Timer.L, 32.0) == [Terminated()]


# ---------------------------------------------------------------------------- NIST, RFC 4320


def test_nist_start_sends_nothing() -> None:
    machine = NonInviteServerTransaction(BYE, reliable=False, now=0.0)
    assert machine.start(0.0) == []
    assert machine.state is NistState.TRYING
    assert machine.receive_request(BYE, 0.1) == []  # absorbed


@pytest.mark.parametrize("status", [101, 180, 183, 199])
def test_nist_refuses_provisionals_other_than_100(status: int) -> None:
    machine = _nist()
    with pytest.raises(ValueError, match="RFC 4320"):
        machine.send_response(make_response(BYE, status), 10.0)
    assert machine.state is NistState.TRYING


def test_nist_no_early_100_on_unreliable_transport() -> None:
    machine = _nist()
    assert machine.send_response(B100, 3.49) == []  # before timer E reaches T2 (3.5 s)
    assert machine.receive_request(BYE, 3.49) == []  # still Trying: nothing to resend
    assert machine.send_response(B100, 3.5) == [Transmit(B100)]
    assert machine.state is NistState.PROCEEDING


def test_nist_early_100_measured_from_creation() -> None:
    machine = NonInviteServerTransaction(BYE, reliable=False, now=100.0)
    machine.start(100.0)
    assert machine.send_response(B100, 103.4) == []
    assert machine.send_response(B100, 103.5) == [Transmit(B100)]


def test_nist_early_100_follows_the_settings() -> None:
    machine = NonInviteServerTransaction(
        BYE, reliable=False, settings=TimerSettings(t1=0.1, t2=0.4), now=0.0
    )
    machine.start(0.0)
    assert machine.send_response(B100, 0.29) == []  # 0.1 + 0.2
    assert machine.send_response(B100, 0.31) == [Transmit(B100)]
    same = NonInviteServerTransaction(BYE, reliable=False, settings=TimerSettings(1, 1), now=0)
    same.start(0.0)
    assert same.send_response(B100, 0.0) == [Transmit(B100)]  # T1 = T2: at once


def test_nist_100_at_once_on_reliable_transport() -> None:
    machine = NonInviteServerTransaction(BYE, reliable=True, now=0.0)
    machine.start(0.0)
    assert machine.send_response(B100, 0.0) == [Transmit(B100)]


def test_nist_final_is_allowed_at_once() -> None:
    assert _nist().send_response(B200, 0.0) == [Transmit(B200), StartTimer(Timer.J, 32.0)]


def test_nist_reliable_final_terminates_at_once() -> None:
    machine = NonInviteServerTransaction(BYE, reliable=True, now=0.0)
    machine.start(0.0)
    assert machine.send_response(B200, 1.0) == [Transmit(B200), Terminated()]
    assert machine.state is NistState.TERMINATED


def test_nist_custom_timer_j() -> None:
    settings = TimerSettings(t1=0.1, t2=0.4)
    machine = NonInviteServerTransaction(BYE, reliable=False, settings=settings, now=0.0)
    machine.start(0.0)
    transmit, start = machine.send_response(B200, 1.0)
    assert transmit == Transmit(B200)
    assert isinstance(start, StartTimer)
    assert start.timer is Timer.J
    assert start.at == pytest.approx(7.4)


# ---------------------------------------------------------------------------- both


ServerMachine = Union[InviteServerTransaction, NonInviteServerTransaction]


@pytest.mark.parametrize("cls", [InviteServerTransaction, NonInviteServerTransaction])
def test_start_first_and_only_once(cls: type[ServerMachine]) -> None:
    request = INVITE if cls is InviteServerTransaction else BYE
    machine = cls(request, reliable=False, now=0.0)
    calls: list[Callable[[], object]] = [
        lambda: machine.receive_request(request, 0.0),
        lambda: machine.send_response(make_response(request, 200), 0.0),
        lambda: machine.timer_fired(Timer.J, 0.0),
        lambda: machine.transport_error(0.0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="start"):
            call()
    machine.start(0.0)
    with pytest.raises(ValueError, match="twice"):
        machine.start(0.0)
