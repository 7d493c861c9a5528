"""The RFC 6733 §5.6 peer state machine: the table, its timer, the election, a connection race.

The expected table below is the RFC's, copied as text (state, event, actions, next state) and
read with the RFC's own names; it does not use the module's table.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clearwater.diameter.peer import (
    Accept,
    Action,
    CancelTimer,
    Cleanup,
    Conn,
    DeliverMessage,
    Disconnect,
    Effect,
    Elect,
    Error,
    PeerEvent,
    PeerMachine,
    PeerState,
    ProcessCEA,
    ProcessCER,
    ProcessDWA,
    ProcessDWR,
    Reject,
    SendCEA,
    SendCER,
    SendConnReq,
    SendDPA,
    SendDPR,
    SendDWA,
    SendMessage,
    StartTimer,
    Unexpected,
    elect,
)

I = Conn.INITIATOR  # noqa: E741 - the RFC's prefix
R = Conn.RESPONDER

# ------------------------------------------------------------------- RFC 6733 §5.6, as text

RFC_6733_TABLE = [
    # state                event              actions                              next state
    ("Closed", "Start", "I-Snd-Conn-Req", "Wait-Conn-Ack"),
    ("Closed", "R-Conn-CER", "R-Accept, Process-CER, R-Snd-CEA", "R-Open"),
    ("Wait-Conn-Ack", "I-Rcv-Conn-Ack", "I-Snd-CER", "Wait-I-CEA"),
    ("Wait-Conn-Ack", "I-Rcv-Conn-Nack", "Cleanup", "Closed"),
    ("Wait-Conn-Ack", "R-Conn-CER", "R-Accept, Process-CER", "Wait-Conn-Ack/Elect"),
    ("Wait-Conn-Ack", "Timeout", "Error", "Closed"),
    ("Wait-I-CEA", "I-Rcv-CEA", "Process-CEA", "I-Open"),
    ("Wait-I-CEA", "R-Conn-CER", "R-Accept, Process-CER, Elect", "Wait-Returns"),
    ("Wait-I-CEA", "I-Peer-Disc", "I-Disc", "Closed"),
    ("Wait-I-CEA", "I-Rcv-Non-CEA", "Error", "Closed"),
    ("Wait-I-CEA", "Timeout", "Error", "Closed"),
    ("Wait-Conn-Ack/Elect", "I-Rcv-Conn-Ack", "I-Snd-CER, Elect", "Wait-Returns"),
    ("Wait-Conn-Ack/Elect", "I-Rcv-Conn-Nack", "R-Snd-CEA", "R-Open"),
    ("Wait-Conn-Ack/Elect", "R-Peer-Disc", "R-Disc", "Wait-Conn-Ack"),
    ("Wait-Conn-Ack/Elect", "R-Conn-CER", "R-Reject", "Wait-Conn-Ack/Elect"),
    ("Wait-Conn-Ack/Elect", "Timeout", "Error", "Closed"),
    ("Wait-Returns", "Win-Election", "I-Disc, R-Snd-CEA", "R-Open"),
    ("Wait-Returns", "I-Peer-Disc", "I-Disc, R-Snd-CEA", "R-Open"),
    ("Wait-Returns", "I-Rcv-CEA", "R-Disc", "I-Open"),
    ("Wait-Returns", "R-Peer-Disc", "R-Disc", "Wait-I-CEA"),
    ("Wait-Returns", "R-Conn-CER", "R-Reject", "Wait-Returns"),
    ("Wait-Returns", "Timeout", "Error", "Closed"),
    ("R-Open", "Send-Message", "R-Snd-Message", "R-Open"),
    ("R-Open", "R-Rcv-Message", "Process", "R-Open"),
    ("R-Open", "R-Rcv-DWR", "Process-DWR, R-Snd-DWA", "R-Open"),
    ("R-Open", "R-Rcv-DWA", "Process-DWA", "R-Open"),
    ("R-Open", "R-Conn-CER", "R-Reject", "R-Open"),
    ("R-Open", "Stop", "R-Snd-DPR", "Closing"),
    ("R-Open", "R-Rcv-DPR", "R-Snd-DPA", "Closing"),
    ("R-Open", "R-Peer-Disc", "R-Disc", "Closed"),
    ("I-Open", "Send-Message", "I-Snd-Message", "I-Open"),
    ("I-Open", "I-Rcv-Message", "Process", "I-Open"),
    ("I-Open", "I-Rcv-DWR", "Process-DWR, I-Snd-DWA", "I-Open"),
    ("I-Open", "I-Rcv-DWA", "Process-DWA", "I-Open"),
    ("I-Open", "R-Conn-CER", "R-Reject", "I-Open"),
    ("I-Open", "Stop", "I-Snd-DPR", "Closing"),
    ("I-Open", "I-Rcv-DPR", "I-Snd-DPA", "Closing"),
    ("I-Open", "I-Peer-Disc", "I-Disc", "Closed"),
    ("Closing", "I-Rcv-DPA", "I-Disc", "Closed"),
    ("Closing", "R-Rcv-DPA", "R-Disc", "Closed"),
    ("Closing", "Timeout", "Error", "Closed"),
    ("Closing", "I-Peer-Disc", "I-Disc", "Closed"),
    ("Closing", "R-Peer-Disc", "R-Disc", "Closed"),
]

# RFC 6733 §5.6.3 action names (without their prefix) and the effect each one is.
RFC_ACTIONS: dict[str, type[Action]] = {
    "Snd-Conn-Req": SendConnReq,
    "Accept": Accept,
    "Reject": Reject,
    "Process-CER": ProcessCER,
    "Snd-CER": SendCER,
    "Snd-CEA": SendCEA,
    "Cleanup": Cleanup,
    "Error": Error,
    "Process-CEA": ProcessCEA,
    "Snd-DPR": SendDPR,
    "Snd-DPA": SendDPA,
    "Disc": Disconnect,
    "Elect": Elect,
    "Snd-Message": SendMessage,
    "Snd-DWA": SendDWA,
    "Process-DWR": ProcessDWR,
    "Process-DWA": ProcessDWA,
    "Process": DeliverMessage,
}


def rfc_action(text: str) -> Action:
    """One action as the RFC writes it: "I-Disc" is Disconnect(I), "Elect" is Elect()."""
    prefix, _, rest = text.partition("-")
    if prefix in ("I", "R"):
        return RFC_ACTIONS[rest](Conn(prefix))  # type: ignore[call-arg]
    return RFC_ACTIONS[text]()  # type: ignore[call-arg]


EXPECTED: dict[tuple[PeerState, PeerEvent], tuple[list[Action], PeerState]] = {
    (PeerState(state), PeerEvent(event)): (
        [rfc_action(name.strip()) for name in actions.split(",")],
        PeerState(next_state),
    )
    for state, event, actions, next_state in RFC_6733_TABLE
}

# ------------------------------------------------------------------- machines in each state

LOCAL = "aaa.example.net"
HIGHER = "zzz.example.net"  # a peer that wins every election against LOCAL
LOWER = "000.example.net"  # a peer that loses every election against LOCAL
TC, CEA_TIMEOUT, CLOSING_TIMEOUT = 30.0, 10.0, 5.0
NOW = 1000.0

# From Closed to each state; (event, Origin-Host of its CER).
PATHS: dict[PeerState, list[tuple[PeerEvent, Optional[str]]]] = {
    PeerState.CLOSED: [],
    PeerState.WAIT_CONN_ACK: [(PeerEvent.START, None)],
    PeerState.WAIT_I_CEA: [(PeerEvent.START, None), (PeerEvent.I_RCV_CONN_ACK, None)],
    PeerState.WAIT_CONN_ACK_ELECT: [(PeerEvent.START, None), (PeerEvent.R_CONN_CER, HIGHER)],
    PeerState.WAIT_RETURNS: [
        (PeerEvent.START, None),
        (PeerEvent.I_RCV_CONN_ACK, None),
        (PeerEvent.R_CONN_CER, HIGHER),
    ],
    PeerState.R_OPEN: [(PeerEvent.R_CONN_CER, HIGHER)],
    PeerState.I_OPEN: [
        (PeerEvent.START, None),
        (PeerEvent.I_RCV_CONN_ACK, None),
        (PeerEvent.I_RCV_CEA, None),
    ],
    PeerState.CLOSING: [(PeerEvent.R_CONN_CER, HIGHER), (PeerEvent.STOP, None)],
}


def machine_in(state: PeerState, local: str = LOCAL) -> PeerMachine:
    machine = PeerMachine(local, tc=TC, cea_timeout=CEA_TIMEOUT, closing_timeout=CLOSING_TIMEOUT)
    for step, (event, origin_host) in enumerate(PATHS[state]):
        machine.handle(event, float(step), origin_host=origin_host)
    assert machine.state is state
    return machine


def feed(machine: PeerMachine, event: PeerEvent, now: float = NOW) -> list[Effect]:
    """``event``, with a CER from HIGHER when it is an R-Conn-CER (so LOCAL loses elections)."""
    origin_host = HIGHER if event is PeerEvent.R_CONN_CER else None
    return machine.handle(event, now, origin_host=origin_host)


def state_of(machine: PeerMachine) -> PeerState:
    """The state, read anew (mypy keeps narrowing ``machine.state`` after an assert)."""
    return machine.state


def table_actions(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if not isinstance(e, (StartTimer, CancelTimer))]


ALL_PAIRS = list(itertools.product(PeerState, PeerEvent))
INTERMEDIATE = {
    PeerState.WAIT_CONN_ACK,
    PeerState.WAIT_I_CEA,
    PeerState.WAIT_CONN_ACK_ELECT,
    PeerState.WAIT_RETURNS,
    PeerState.CLOSING,
}


def pair_id(pair: tuple[PeerState, PeerEvent]) -> str:
    return f"{pair[0].value}|{pair[1].value}"


# ------------------------------------------------------------------- the table


def test_the_rfc_table_has_43_rows_in_8_states_over_22_events() -> None:
    assert len(EXPECTED) == len(RFC_6733_TABLE) == 43
    assert {state for state, _ in EXPECTED} == set(PeerState)
    assert {event for _, event in EXPECTED} == set(PeerEvent)
    assert len(PeerState) == 8
    assert len(PeerEvent) == 22


def test_enum_values_are_the_rfc_names() -> None:
    assert PeerState.WAIT_CONN_ACK_ELECT.value == "Wait-Conn-Ack/Elect"
    assert PeerEvent.I_RCV_NON_CEA.value == "I-Rcv-Non-CEA"
    assert Conn("I") is Conn.INITIATOR and Conn("R") is Conn.RESPONDER


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=pair_id)
def test_every_pair_follows_the_rfc_table(pair: tuple[PeerState, PeerEvent]) -> None:
    state, event = pair
    machine = machine_in(state)
    deadline = machine.deadline
    effects = feed(machine, event)
    if pair in EXPECTED:
        actions, next_state = EXPECTED[pair]
        assert table_actions(effects) == actions
        assert machine.state is next_state
    else:
        assert effects == [Unexpected(state, event)]
        assert machine.state is state
        assert machine.deadline == deadline


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=pair_id)
def test_the_timer_runs_exactly_in_intermediate_states(pair: tuple[PeerState, PeerEvent]) -> None:
    state, event = pair
    machine = machine_in(state)
    assert (machine.deadline is not None) == (state in INTERMEDIATE)
    before = machine.deadline
    timers = [e for e in feed(machine, event) if isinstance(e, (StartTimer, CancelTimer))]
    assert (machine.deadline is not None) == (machine.state in INTERMEDIATE)
    if machine.deadline is None:
        # Cancelled if it ran, unless it is the timer that fired.
        ran = before is not None and event is not PeerEvent.TIMEOUT
        assert timers == ([CancelTimer()] if ran else [])
    elif machine.deadline == before:
        assert timers == []
    else:
        assert timers == [StartTimer(machine.deadline)]


# ------------------------------------------------------------------- timer durations


def test_a_connection_attempt_waits_tc() -> None:
    machine = machine_in(PeerState.CLOSED)
    assert machine.handle(PeerEvent.START, 100.0) == [SendConnReq(I), StartTimer(100.0 + TC)]
    assert machine.deadline == 100.0 + TC


def test_a_cer_waits_cea_timeout() -> None:
    machine = machine_in(PeerState.WAIT_CONN_ACK)
    effects = machine.handle(PeerEvent.I_RCV_CONN_ACK, 105.0)
    assert effects == [SendCER(I), StartTimer(105.0 + CEA_TIMEOUT)]


def test_accepting_the_peer_does_not_restart_the_connection_timer() -> None:
    machine = machine_in(PeerState.CLOSED)
    machine.handle(PeerEvent.START, 100.0)
    effects = machine.handle(PeerEvent.R_CONN_CER, 101.0, origin_host=HIGHER)
    assert effects == [Accept(R), ProcessCER()]
    assert machine.deadline == 100.0 + TC
    # Wait-Conn-Ack/Elect -> Wait-Returns sends a CER: the CEA wait starts.
    effects = machine.handle(PeerEvent.I_RCV_CONN_ACK, 102.0)
    assert effects == [SendCER(I), Elect(), StartTimer(102.0 + CEA_TIMEOUT)]


def test_losing_the_responder_connection_keeps_waiting_for_the_same_cea() -> None:
    machine = machine_in(PeerState.WAIT_RETURNS)
    deadline = machine.deadline
    assert machine.handle(PeerEvent.R_PEER_DISC, NOW) == [Disconnect(R)]
    assert machine.state is PeerState.WAIT_I_CEA
    assert machine.deadline == deadline


def test_closing_waits_closing_timeout_and_a_timeout_is_an_error() -> None:
    machine = machine_in(PeerState.I_OPEN)
    assert machine.handle(PeerEvent.STOP, 200.0) == [
        SendDPR(I),
        StartTimer(200.0 + CLOSING_TIMEOUT),
    ]
    assert machine.handle(PeerEvent.TIMEOUT, 200.0 + CLOSING_TIMEOUT) == [Error()]
    assert machine.state is PeerState.CLOSED
    assert machine.deadline is None


def test_reaching_open_cancels_the_timer() -> None:
    machine = machine_in(PeerState.WAIT_I_CEA)
    assert machine.handle(PeerEvent.I_RCV_CEA, NOW) == [ProcessCEA(), CancelTimer()]


def test_a_stale_timeout_in_a_stable_state_is_unexpected() -> None:
    machine = machine_in(PeerState.R_OPEN)
    assert machine.handle(PeerEvent.TIMEOUT, NOW) == [
        Unexpected(PeerState.R_OPEN, PeerEvent.TIMEOUT)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tc": 0.0},
        {"cea_timeout": -1.0},
        {"closing_timeout": float("nan")},
    ],
)
def test_durations_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PeerMachine(LOCAL, **kwargs)


def test_local_host_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        PeerMachine("")


# ------------------------------------------------------------------- inputs


def test_r_conn_cer_needs_the_origin_host() -> None:
    with pytest.raises(ValueError):
        machine_in(PeerState.CLOSED).handle(PeerEvent.R_CONN_CER, NOW)


def test_other_events_refuse_an_origin_host() -> None:
    with pytest.raises(ValueError):
        machine_in(PeerState.CLOSED).handle(PeerEvent.START, NOW, origin_host=HIGHER)


def test_the_connection_in_use_follows_the_state() -> None:
    assert machine_in(PeerState.I_OPEN).connection is I
    assert machine_in(PeerState.R_OPEN).connection is R
    assert machine_in(PeerState.CLOSING).connection is R  # it closes R-Open's connection
    for state in (PeerState.CLOSED, *INTERMEDIATE - {PeerState.CLOSING}):
        assert machine_in(state).connection is None
    machine = machine_in(PeerState.CLOSING)
    machine.handle(PeerEvent.R_RCV_DPA, NOW)
    assert machine.connection is None


def test_a_peer_opens_talks_and_closes() -> None:
    machine = PeerMachine(LOCAL, tc=TC, cea_timeout=CEA_TIMEOUT, closing_timeout=CLOSING_TIMEOUT)
    assert machine.handle(PeerEvent.R_CONN_CER, 1.0, origin_host=HIGHER) == [
        Accept(R),
        ProcessCER(),
        SendCEA(R),
    ]
    assert machine.remote_host == HIGHER
    assert machine.handle(PeerEvent.SEND_MESSAGE, 2.0) == [SendMessage(R)]
    assert machine.handle(PeerEvent.R_RCV_MESSAGE, 3.0) == [DeliverMessage()]
    assert machine.handle(PeerEvent.R_RCV_DWR, 4.0) == [ProcessDWR(), SendDWA(R)]
    assert machine.handle(PeerEvent.R_RCV_DWA, 5.0) == [ProcessDWA()]
    # A second connection from the same peer is turned away.
    assert machine.handle(PeerEvent.R_CONN_CER, 6.0, origin_host=HIGHER) == [Reject(R)]
    assert machine.handle(PeerEvent.R_RCV_DPR, 7.0) == [
        SendDPA(R),
        StartTimer(7.0 + CLOSING_TIMEOUT),
    ]
    assert machine.handle(PeerEvent.R_PEER_DISC, 8.0) == [Disconnect(R), CancelTimer()]
    assert machine.state is PeerState.CLOSED


# ------------------------------------------------------------------- election (§5.6.4)


def test_the_higher_origin_host_wins() -> None:
    assert elect("bbb.example.net", "aaa.example.net")
    assert not elect("aaa.example.net", "bbb.example.net")


def test_a_longer_host_beats_its_own_prefix() -> None:
    assert elect("peer.example.net", "peer.example")
    assert not elect("peer.example", "peer.example.net")


def test_equal_hosts_both_lose() -> None:
    assert not elect("peer.example.net", "peer.example.net")


def test_case_does_not_count() -> None:
    # As raw octets 'B' (0x42) < 'a' (0x61); without case it is b > a.
    assert elect("B.example.net", "a.example.net")
    assert not elect("a.example.net", "B.example.net")
    assert not elect("PEER.example.net", "peer.example.net")
    assert not elect("peer.example.net", "PEER.example.net")


def test_octets_not_characters_are_compared() -> None:
    # U+00E9 is 0xC3 0xA9 in UTF-8, above any ASCII octet.
    assert elect("\u00e9.example", "z.example")


def test_winning_in_wait_i_cea_keeps_the_responder_connection() -> None:
    machine = machine_in(PeerState.WAIT_I_CEA)
    effects = machine.handle(PeerEvent.R_CONN_CER, NOW, origin_host=LOWER)
    assert effects == [
        Accept(R),
        ProcessCER(),
        Elect(),
        Disconnect(I),  # Win-Election: I-Disc, R-Snd-CEA
        SendCEA(R),
        CancelTimer(),
    ]
    assert machine.state is PeerState.R_OPEN
    assert machine.connection is R
    assert machine.deadline is None


def test_losing_in_wait_i_cea_waits_for_the_cea() -> None:
    machine = machine_in(PeerState.WAIT_I_CEA)
    effects = machine.handle(PeerEvent.R_CONN_CER, NOW, origin_host=HIGHER)
    assert effects == [Accept(R), ProcessCER(), Elect()]
    assert state_of(machine) is PeerState.WAIT_RETURNS
    assert machine.handle(PeerEvent.I_RCV_CEA, NOW + 1) == [Disconnect(R), CancelTimer()]
    assert state_of(machine) is PeerState.I_OPEN
    assert machine.connection is I


def test_winning_in_wait_conn_ack_elect_uses_the_accepted_peers_host() -> None:
    machine = machine_in(PeerState.CLOSED)
    machine.handle(PeerEvent.START, 1.0)
    machine.handle(PeerEvent.R_CONN_CER, 2.0, origin_host=LOWER)
    effects = machine.handle(PeerEvent.I_RCV_CONN_ACK, 3.0)
    assert effects == [SendCER(I), Elect(), Disconnect(I), SendCEA(R), CancelTimer()]
    assert machine.state is PeerState.R_OPEN


def test_a_rejected_cer_does_not_change_the_peer_we_elect_against() -> None:
    machine = machine_in(PeerState.WAIT_CONN_ACK_ELECT)  # accepted HIGHER
    assert feed(machine, PeerEvent.R_CONN_CER) == [Reject(R)]
    machine.handle(PeerEvent.R_CONN_CER, NOW, origin_host=LOWER)  # rejected too
    assert machine.remote_host == HIGHER
    effects = machine.handle(PeerEvent.I_RCV_CONN_ACK, NOW)
    assert effects == [SendCER(I), Elect(), StartTimer(NOW + CEA_TIMEOUT)]
    assert machine.state is PeerState.WAIT_RETURNS


def test_election_is_case_insensitive_in_the_machine() -> None:
    machine = machine_in(PeerState.WAIT_I_CEA, local="AAA.example.net")
    machine.handle(PeerEvent.R_CONN_CER, NOW, origin_host="aaa.example.net")
    assert machine.state is PeerState.WAIT_RETURNS  # equal: no Win-Election


# ------------------------------------------------------------------- a connection race


class _Wire:
    """A transport connection between the two nodes: who connected, which ends are still
    open, and what is in flight towards each end (in order)."""

    def __init__(self, initiator: str, acceptor: str) -> None:
        self.initiator = initiator
        self.acceptor = acceptor
        self.open = {initiator, acceptor}
        self.inflight: dict[str, deque[str]] = {initiator: deque(), acceptor: deque()}

    def other(self, name: str) -> str:
        return self.acceptor if name == self.initiator else self.initiator


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.machine = PeerMachine(name)
        self.conns: dict[Conn, Optional[_Wire]] = {I: None, R: None}


class Network:
    """Two nodes whose machines race: both connect to the other at once. The network
    carries CER, CEA and disconnections (FIN), each connection in order; a test picks which
    pending delivery (or connection completion) happens next."""

    def __init__(self, a: str, b: str) -> None:
        self.nodes = {a: _Node(a), b: _Node(b)}
        self.wires: list[_Wire] = []
        self.connecting: list[str] = []
        self.unexpected: list[Unexpected] = []
        self.now = 0.0

    def feed(
        self,
        name: str,
        event: PeerEvent,
        wire: Optional[_Wire] = None,
        origin_host: Optional[str] = None,
    ) -> list[Effect]:
        self.now += 1.0
        node = self.nodes[name]
        effects = node.machine.handle(event, self.now, origin_host=origin_host)
        for effect in effects:
            self._apply(node, effect, wire)
        return effects

    def steps(self) -> list[tuple[str, Optional[_Wire]]]:
        """What can happen next: a node's connection attempt completes, or the next thing in
        flight on a connection arrives."""
        steps: list[tuple[str, Optional[_Wire]]] = [(name, None) for name in self.connecting]
        for wire in self.wires:
            for name in sorted(wire.inflight):
                if wire.inflight[name]:
                    steps.append((name, wire))
        return steps

    def step(self, name: str, wire: Optional[_Wire]) -> list[Effect]:
        """Take one of :meth:`steps`; return the effects of the event it fed (if any)."""
        if wire is None:
            self.connecting.remove(name)
            return self.feed(name, PeerEvent.I_RCV_CONN_ACK)
        node = self.nodes[name]
        what = wire.inflight[name].popleft()
        conn = I if wire.initiator == name else R
        if what == "CER":
            assert conn is R
            return self.feed(name, PeerEvent.R_CONN_CER, wire, origin_host=wire.other(name))
        if node.conns[conn] is not wire:
            self._close(name, wire)  # a connection the machine never took (or let go)
            return []
        if what == "CEA":
            assert conn is I
            return self.feed(name, PeerEvent.I_RCV_CEA, wire)
        assert what == "FIN"
        return self.feed(name, PeerEvent.I_PEER_DISC if conn is I else PeerEvent.R_PEER_DISC)

    def run(self, choose: Optional[list[int]] = None) -> None:
        """Run until nothing is left to happen, taking steps in the order ``choose`` gives
        (indexes into :meth:`steps`, modulo its length; first step when exhausted)."""
        picks = deque(choose or [])
        for _ in range(100):
            steps = self.steps()
            if not steps:
                return
            pick = picks.popleft() % len(steps) if picks else 0
            self.step(*steps[pick])
        raise AssertionError("the race did not settle")

    # ---- effects

    def _apply(self, node: _Node, effect: Effect, wire: Optional[_Wire]) -> None:
        if isinstance(effect, SendConnReq):
            (other,) = set(self.nodes) - {node.name}
            new = _Wire(node.name, other)
            self.wires.append(new)
            node.conns[I] = new
            self.connecting.append(node.name)
        elif isinstance(effect, Accept):
            assert wire is not None
            node.conns[R] = wire
        elif isinstance(effect, Reject):
            assert wire is not None
            self._close(node.name, wire)
        elif isinstance(effect, (SendCER, SendCEA)):
            sent = node.conns[effect.conn]
            assert sent is not None
            self._send(node.name, sent, "CER" if isinstance(effect, SendCER) else "CEA")
        elif isinstance(effect, Disconnect):
            gone = node.conns[effect.conn]
            if gone is not None:
                self._close(node.name, gone)
            node.conns[effect.conn] = None
        elif isinstance(effect, (Error, Cleanup)):
            for conn, held in node.conns.items():
                if held is not None:
                    self._close(node.name, held)
                node.conns[conn] = None
        elif isinstance(effect, Unexpected):
            self.unexpected.append(effect)

    def _send(self, name: str, wire: _Wire, what: str) -> None:
        assert name in wire.open
        if wire.other(name) in wire.open:
            wire.inflight[wire.other(name)].append(what)

    def _close(self, name: str, wire: _Wire) -> None:
        if name in wire.open:
            wire.open.discard(name)
            wire.inflight[name].clear()
            self._send_fin(name, wire)

    def _send_fin(self, name: str, wire: _Wire) -> None:
        if wire.other(name) in wire.open:
            wire.inflight[wire.other(name)].append("FIN")


def check_race_outcome(network: Network) -> None:
    """One connection survives, the one the loser initiated: the winner closed its own
    (RFC 6733 §5.6.4) and is R-Open, the loser is I-Open."""
    assert network.unexpected == []
    first, second = network.nodes.values()
    winner, loser = (first, second) if elect(first.name, second.name) else (second, first)
    open_wires = [w for w in network.wires if len(w.open) == 2]
    assert len(network.wires) == 2
    assert len(open_wires) == 1
    (survivor,) = open_wires
    assert survivor.initiator == loser.name
    assert winner.machine.state is PeerState.R_OPEN
    assert winner.conns == {I: None, R: survivor}
    assert loser.machine.state is PeerState.I_OPEN
    assert loser.conns == {I: survivor, R: None}
    for node in (winner, loser):
        assert node.machine.deadline is None


def test_connection_race_step_by_step() -> None:
    a, b = "a.example.net", "b.example.net"  # b wins
    net = Network(a, b)
    assert net.feed(a, PeerEvent.START) == [SendConnReq(I), StartTimer(1.0 + 30.0)]
    assert net.feed(b, PeerEvent.START) == [SendConnReq(I), StartTimer(2.0 + 30.0)]
    # Both connections come up; each side sends its CER on its own connection.
    net.step(a, None)
    net.step(b, None)
    a_to_b, b_to_a = net.wires
    assert a_to_b.inflight[b] == deque(["CER"]) and b_to_a.inflight[a] == deque(["CER"])
    # b gets a's CER while waiting for its CEA: b wins, drops its own connection, answers.
    net.step(b, a_to_b)
    assert net.nodes[b].machine.state is PeerState.R_OPEN
    assert b_to_a.open == {a}
    assert b_to_a.inflight[a] == deque(["CER", "FIN"])
    assert a_to_b.inflight[a] == deque(["CEA"])
    # a gets b's CER: a loses and waits for its CEA.
    net.step(a, b_to_a)
    assert net.nodes[a].machine.state is PeerState.WAIT_RETURNS
    # b's connection goes away: a forgets it.
    net.step(a, b_to_a)
    assert net.nodes[a].machine.state is PeerState.WAIT_I_CEA
    # b's CEA: a is open on its own connection.
    net.step(a, a_to_b)
    assert net.steps() == []
    check_race_outcome(net)


def test_connection_race_where_the_cea_overtakes_the_cer() -> None:
    a, b = "b.example.net", "a.example.net"  # a wins this time
    net = Network(a, b)
    net.feed(a, PeerEvent.START)
    net.feed(b, PeerEvent.START)
    net.step(a, None)
    net.step(b, None)
    a_to_b, b_to_a = net.wires
    net.step(a, b_to_a)  # a (the winner) gets b's CER first
    assert net.nodes[a].machine.state is PeerState.R_OPEN
    net.step(b, b_to_a)  # b gets the CEA on its own connection before a's CER
    assert net.nodes[b].machine.state is PeerState.I_OPEN
    # a's CER then reaches b, which is open already: R-Reject.
    assert net.step(b, a_to_b) == [Reject(R)]
    net.run()
    check_race_outcome(net)


@pytest.mark.parametrize(("a", "b"), [("a.example.net", "b.example.net"), ("b.example", "a")])
@given(choose=st.lists(st.integers(min_value=0, max_value=7), max_size=30))
def test_connection_race_settles_in_any_order(a: str, b: str, choose: list[int]) -> None:
    net = Network(a, b)
    net.feed(a, PeerEvent.START)
    net.feed(b, PeerEvent.START)
    net.run(choose)
    check_race_outcome(net)


def test_a_race_against_a_node_that_only_listens() -> None:
    """No race: b never connects, a's CER meets a Closed machine and b is R-Open."""
    a, b = "a.example.net", "b.example.net"
    net = Network(a, b)
    net.feed(a, PeerEvent.START)
    net.run()
    assert net.nodes[a].machine.state is PeerState.I_OPEN
    assert net.nodes[b].machine.state is PeerState.R_OPEN
    assert net.unexpected == []


# ------------------------------------------------------------------- random event sequences

EVENTS = st.sampled_from(list(PeerEvent))
HOSTS = st.sampled_from([LOWER, HIGHER, LOCAL, "AAA.example.net", "aaa.example"])


class PeerMachineModel(RuleBasedStateMachine):
    """Any sequence of events: the machine follows its table or reports Unexpected, its
    timer runs exactly in intermediate states, and it names the connection it uses."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = PeerMachine(LOCAL, tc=TC, cea_timeout=CEA_TIMEOUT)
        self.now = 0.0

    @rule(event=EVENTS, host=HOSTS, delay=st.floats(min_value=0.0, max_value=50.0))
    def event(self, event: PeerEvent, host: str, delay: float) -> None:
        self.now += delay
        state = self.machine.state
        origin_host = host if event is PeerEvent.R_CONN_CER else None
        effects = self.machine.handle(event, self.now, origin_host=origin_host)
        if (state, event) not in EXPECTED:
            assert effects == [Unexpected(state, event)]
            assert self.machine.state is state
            return
        actions, next_state = EXPECTED[(state, event)]
        rest = table_actions(effects)
        assert rest[: len(actions)] == actions
        if Elect() in actions and elect(LOCAL, self.machine.remote_host or ""):
            win, next_state = EXPECTED[(next_state, PeerEvent.WIN_ELECTION)]
            assert rest[len(actions) :] == win
        else:
            assert rest == actions
        assert self.machine.state is next_state
        for effect in effects:
            if isinstance(effect, StartTimer):
                assert effect.at > self.now

    @invariant()
    def timer_runs_in_intermediate_states(self) -> None:
        assert (self.machine.deadline is not None) == (self.machine.state in INTERMEDIATE)

    @invariant()
    def connection_matches_the_state(self) -> None:
        expected = {PeerState.I_OPEN: I, PeerState.R_OPEN: R}.get(self.machine.state)
        if self.machine.state is not PeerState.CLOSING:
            assert self.machine.connection is expected
        else:
            assert self.machine.connection in (I, R)


TestPeerMachineModel = PeerMachineModel.TestCase
