"""Random runs of the four transaction machines against a simulated clock (Hypothesis stateful).

The model keeps the timers the effects start and cancel, fires them in deadline order as time
passes, and throws responses, retransmissions, stray timers and transport errors at the machine.
Checked after every input: nothing after Terminated, which comes last and with no timer left
running; timers are only cancelled while running and never start in the past; a running timer
always does something when it fires; a client transaction delivers at most one non-2xx final
response (an INVITE may deliver many 2xx, never after a non-2xx); a server transaction only
sends what it may (RFC 4320 for the NIST).
"""

from __future__ import annotations

from typing import Union

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from typing_extensions import override

from clearwater.sip import Request, Response
from clearwater.sip.transaction._effects import (
    CancelTimer,
    DeliverToTU,
    Effect,
    Failed,
    Retransmit,
    StartTimer,
    Terminated,
    Transmit,
)
from clearwater.sip.transaction.client import (
    IctState,
    InviteClientTransaction,
    NictState,
    NonInviteClientTransaction,
)
from clearwater.sip.transaction.server import (
    InviteServerTransaction,
    IstState,
    NistState,
    NonInviteServerTransaction,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings
from tests.unit.sip.transaction.test_client import make_request, make_response

Machine = Union[
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]
TERMINATED = (IctState.TERMINATED, NictState.TERMINATED, IstState.TERMINATED, NistState.TERMINATED)

SETTINGS = st.sampled_from([TimerSettings(), TimerSettings(t1=0.1, t2=0.4, t4=1.0)])
STATUS_CODES = [100, 180, 183, 200, 202, 302, 404, 486, 500, 603]
STATUSES = st.sampled_from(STATUS_CODES)
DELAYS = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)

INVITE = make_request("INVITE")
OPTIONS = make_request("OPTIONS")
ACK = make_request("ACK")
RESPONSES = {
    request.method: {status: make_response(request, status) for status in STATUS_CODES}
    for request in (INVITE, OPTIONS)
}


class _TransactionModel(RuleBasedStateMachine):
    """The simulated clock, the model of running timers and the checks every machine shares."""

    machine: Machine
    request: Request

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.timers: dict[Timer, float] = {}
        self.terminated = False
        self.failures = 0

    def check(self, effects: list[Effect]) -> None:
        """Apply one input's effects to the model, checking them."""
        if self.terminated:
            assert effects == [], "input after Terminated did something"
            return
        for index, effect in enumerate(effects):
            if isinstance(effect, StartTimer):
                assert effect.at >= self.now
                self.timers[effect.timer] = effect.at
            elif isinstance(effect, CancelTimer):
                assert effect.timer in self.timers, "cancelled a timer that is not running"
                del self.timers[effect.timer]
            elif isinstance(effect, Terminated):
                assert index == len(effects) - 1, "effects after Terminated"
                assert not self.timers, "Terminated with timers running"
                self.terminated = True
            elif isinstance(effect, Failed):
                self.failures += 1
            self.observe(effect)
        assert (self.machine.state in TERMINATED) == self.terminated

    def observe(self, effect: Effect) -> None:
        """Machine-specific checks of one effect."""

    def fire(self, timer: Timer, now: float) -> list[Effect]:
        return self.machine.timer_fired(timer, now)

    def start_machine(self, machine: Machine) -> None:
        self.machine = machine
        self.check(machine.start(0.0))

    # ---- rules every machine gets

    @rule(delay=DELAYS)
    def wait(self, delay: float) -> None:
        """Let time pass, firing the timers that fall due in deadline order."""
        until = self.now + delay
        while self.timers and min(self.timers.values()) <= until:
            self.fire_earliest()
        self.now = max(self.now, until)

    @precondition(lambda self: bool(self.timers))
    @rule()
    def fire_earliest(self) -> None:
        timer, at = min(self.timers.items(), key=lambda item: item[1])
        del self.timers[timer]
        self.now = max(self.now, at)
        effects = self.fire(timer, self.now)
        assert effects, "a running timer fired and did nothing"
        self.check(effects)

    @rule(timer=st.sampled_from(Timer))
    def stray_timer(self, timer: Timer) -> None:
        """A timer that is not running (cancelled, or never started) fires: ignored."""
        if timer in self.timers:
            return
        state = self.machine.state
        assert self.fire(timer, self.now) == []
        assert self.machine.state is state

    @rule()
    def transport_error(self) -> None:
        self.check(self.machine.transport_error(self.now))

    @invariant()
    def no_timer_after_terminated(self) -> None:
        if self.terminated:
            assert not self.timers


# ---------------------------------------------------------------------------- clients


class _ClientModel(_TransactionModel):
    def __init__(self) -> None:
        super().__init__()
        self.finals: list[int] = []  # statuses of the final responses delivered
        self.acks = 0
        self.request = INVITE

    @rule(status=STATUSES)
    def respond(self, status: int) -> None:
        machine = self.machine
        assert isinstance(machine, (InviteClientTransaction, NonInviteClientTransaction))
        self.check(machine.receive_response(RESPONSES[self.request.method][status], self.now))

    @invariant()
    def at_most_one_failure(self) -> None:
        assert self.failures <= 1

    @override
    def observe(self, effect: Effect) -> None:
        if isinstance(effect, DeliverToTU):
            response = effect.message
            assert isinstance(response, Response)
            if response.status < 200:
                assert not self.finals, "provisional response delivered after a final one"
            else:
                self.finals.append(response.status)
            assert self.failures == 0, "response delivered after a failure"
        elif isinstance(effect, Transmit):
            assert isinstance(effect.message, Request)
            if effect.message.method == "ACK":
                self.acks += 1


class InviteClientModel(_ClientModel):
    @initialize(reliable=st.booleans(), settings=SETTINGS)
    def create(self, reliable: bool, settings: TimerSettings) -> None:
        self.start_machine(
            InviteClientTransaction(self.request, reliable=reliable, settings=settings, now=0.0)
        )

    @invariant()
    def finals_are_one_non_2xx_or_only_2xx(self) -> None:
        non_2xx = [status for status in self.finals if status >= 300]
        assert not non_2xx or self.finals == non_2xx[:1]

    @invariant()
    def ack_only_for_a_non_2xx(self) -> None:
        if self.acks:
            assert self.finals[0] >= 300


class NonInviteClientModel(_ClientModel):
    @initialize(reliable=st.booleans(), settings=SETTINGS)
    def create(self, reliable: bool, settings: TimerSettings) -> None:
        self.request = OPTIONS
        self.start_machine(
            NonInviteClientTransaction(self.request, reliable=reliable, settings=settings, now=0.0)
        )

    @invariant()
    def at_most_one_final(self) -> None:
        assert len(self.finals) <= 1


# ---------------------------------------------------------------------------- servers


class _ServerModel(_TransactionModel):
    def __init__(self) -> None:
        super().__init__()
        self.finals: list[int] = []  # final statuses the TU handed over and the machine took
        self.transmitted: list[Response] = []

    @property
    def server(self) -> Union[InviteServerTransaction, NonInviteServerTransaction]:
        machine = self.machine
        assert isinstance(machine, (InviteServerTransaction, NonInviteServerTransaction))
        return machine

    @rule()
    def retransmission(self) -> None:
        self.check(self.server.receive_request(self.request, self.now))

    @rule(status=STATUSES)
    def tu_response(self, status: int) -> None:
        state = self.server.state
        try:
            effects = self.server.send_response(make_response(self.request, status), self.now)
        except ValueError:
            assert self.server.state is state
            return
        if status >= 200:
            self.finals.append(status)
        self.check(effects)

    @override
    def observe(self, effect: Effect) -> None:
        if isinstance(effect, Transmit):
            assert isinstance(effect.message, Response)
            self.transmitted.append(effect.message)
        elif isinstance(effect, Retransmit):
            assert self.transmitted, "Retransmit before any response was sent"
            assert self.transmitted[-1].status != 100 or not self.finals


class InviteServerModel(_ServerModel):
    @initialize(reliable=st.booleans(), settings=SETTINGS, send_trying=st.booleans())
    def create(self, reliable: bool, settings: TimerSettings, send_trying: bool) -> None:
        self.request = INVITE
        self.start_machine(
            InviteServerTransaction(
                INVITE, reliable=reliable, settings=settings, now=0.0, send_trying=send_trying
            )
        )

    @rule()
    def ack(self) -> None:
        self.check(self.server.receive_request(ACK, self.now))

    @override
    def observe(self, effect: Effect) -> None:
        super().observe(effect)
        if isinstance(effect, DeliverToTU):
            assert self.server.state is IstState.ACCEPTED  # an ACK for the 2xx

    @invariant()
    def one_non_2xx_final_or_only_2xx(self) -> None:
        non_2xx = [status for status in self.finals if status >= 300]
        assert not non_2xx or self.finals == non_2xx[:1]


class NonInviteServerModel(_ServerModel):
    @initialize(reliable=st.booleans(), settings=SETTINGS)
    def create(self, reliable: bool, settings: TimerSettings) -> None:
        self.reliable = reliable
        self.settings = settings
        self.request = OPTIONS
        self.start_machine(
            NonInviteServerTransaction(OPTIONS, reliable=reliable, settings=settings, now=0.0)
        )

    @override
    def observe(self, effect: Effect) -> None:
        super().observe(effect)
        assert not isinstance(effect, DeliverToTU)
        if isinstance(effect, Transmit):
            status = self.transmitted[-1].status
            assert status == 100 or status >= 200  # RFC 4320 §4.1
            if status == 100 and not self.reliable:
                interval, threshold = self.settings.t1, 0.0
                while interval < self.settings.t2:
                    threshold += interval
                    interval = self.settings.next_interval(Timer.E, interval)
                assert self.now >= threshold

    @invariant()
    def one_final(self) -> None:
        assert len(self.finals) <= 1


# Short runs: a transaction is over within a few dozen inputs (the profile sets the rest).
for _model in (InviteClientModel, NonInviteClientModel, InviteServerModel, NonInviteServerModel):
    _model.TestCase.settings = settings(stateful_step_count=25)

TestInviteClient = InviteClientModel.TestCase
TestNonInviteClient = NonInviteClientModel.TestCase
TestInviteServer = InviteServerModel.TestCase
TestNonInviteServer = NonInviteServerModel.TestCase
