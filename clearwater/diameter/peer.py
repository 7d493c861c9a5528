"""The Diameter peer state machine, sans-IO: RFC 6733 §5.6.

:data:`TRANSITIONS` is the table of RFC 6733 §5.6 transcribed row by row: ``{(state, event):
(actions, next_state)}``, each action an effect (below) and the actions in the RFC's order. The
I- and R- prefixes of the RFC (the initiator connection, the one we connected, and the responder
connection, the one the peer connected) stay in the event names and become the ``conn`` field of
the actions that carry one in the table; an action without a prefix in the table has no field.

:class:`PeerMachine` is one peer's machine. It holds no connection, message or clock: the
shell (the Twisted protocol layer) feeds it events with :meth:`PeerMachine.handle`, passing its
clock's ``now``, and carries out the returned effects in order. Effects that speak of "the"
message refer to the message of the event being handled (the CER of an ``R_CONN_CER``, the
request of a ``SEND_MESSAGE``, ...), which the shell keeps; the two exceptions are said below.

What the shell does with each effect (RFC 6733 §5.6.3 names the actions):

- :class:`SendConnReq` (Snd-Conn-Req, always I): connect to the peer; report the outcome as
  ``I_RCV_CONN_ACK`` or ``I_RCV_CONN_NACK``.
- :class:`Accept` (Accept, always R): adopt the incoming connection that brought the
  ``R_CONN_CER`` as this peer's responder connection (§5.6.1).
- :class:`Reject` (Reject, always R): close that incoming connection; it never becomes R.
- :class:`ProcessCER` (Process-CER): examine the CER of the ``R_CONN_CER`` (common
  applications, security) and keep what its CEA needs. The CEA may be sent by a later event
  (``SendCEA`` from Wait-Conn-Ack/Elect or Wait-Returns), so the shell keeps that CER with the
  responder connection until then.
- :class:`SendCER` (Snd-CER, always I): send a CER on the initiator connection.
- :class:`SendCEA` (Snd-CEA): send, on ``conn``, the CEA answering the CER held for it. The
  machine does not model a failed exchange (§5.3, e.g. DIAMETER_NO_COMMON_APPLICATION): the
  shell puts that Result-Code in the CEA and then closes the connection.
- :class:`Cleanup` (Cleanup): the connection attempt failed; free what it held.
- :class:`Error` (Error): close every connection of this peer, abortively if need be, abandon a
  connection attempt in progress, free their resources.
- :class:`ProcessCEA` (Process-CEA): examine the CEA received on the initiator connection.
- :class:`SendDPR`, :class:`SendDPA`, :class:`SendDWA`, :class:`SendMessage` (Snd-DPR, Snd-DPA,
  Snd-DWA, Snd-Message): send that message on ``conn`` (for ``SendMessage``, the message of the
  ``SEND_MESSAGE`` event).
- :class:`Disconnect` (Disc): close ``conn`` and free its resources.
- :class:`Elect` (Elect): nothing to do. The machine holds the election itself (:func:`elect`,
  §5.6.4) and, when the local node wins, the actions of the ensuing Win-Election event follow
  in the same list.
- :class:`ProcessDWR`, :class:`ProcessDWA` (Process-DWR, Process-DWA): service the watchdog
  message (a DWA goes to the RFC 3539 watchdog, :mod:`clearwater.diameter.watchdog`).
- :class:`DeliverMessage` (Process): pass the received message on to routing / the application.
- :class:`StartTimer` / :class:`CancelTimer`: arm (replacing any running one) or disarm this
  peer's single timer; when it fires, feed ``TIMEOUT``. See :class:`PeerMachine` for durations.
- :class:`Unexpected`: the (state, event) pair has no row in the table; see
  :meth:`PeerMachine.handle`.

Snd-DWR (§5.6.3) appears in no row of the table: the RFC 3539 watchdog decides when to send a
DWR, which goes on :attr:`PeerMachine.connection`.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Final, Optional, Union

import attrs

from clearwater._enum import IdentityEnum

__all__ = [
    "TRANSITIONS",
    "Accept",
    "Action",
    "CancelTimer",
    "Cleanup",
    "Conn",
    "DeliverMessage",
    "Disconnect",
    "Effect",
    "Elect",
    "Error",
    "PeerEvent",
    "PeerMachine",
    "PeerState",
    "ProcessCEA",
    "ProcessCER",
    "ProcessDWA",
    "ProcessDWR",
    "Reject",
    "SendCEA",
    "SendCER",
    "SendConnReq",
    "SendDPA",
    "SendDPR",
    "SendDWA",
    "SendMessage",
    "StartTimer",
    "Unexpected",
    "elect",
]


class Conn(IdentityEnum):
    """Which of a peer's two transport connections (RFC 6733 §5.6, the I- and R- prefixes)."""

    INITIATOR = "I"  # the connection we initiated
    RESPONDER = "R"  # the connection the peer initiated (we listened)


class PeerState(IdentityEnum):
    """The states of RFC 6733 §5.6. Closed, I-Open and R-Open are stable, the others
    intermediate."""

    CLOSED = "Closed"
    WAIT_CONN_ACK = "Wait-Conn-Ack"
    WAIT_I_CEA = "Wait-I-CEA"
    WAIT_CONN_ACK_ELECT = "Wait-Conn-Ack/Elect"
    WAIT_RETURNS = "Wait-Returns"
    R_OPEN = "R-Open"
    I_OPEN = "I-Open"
    CLOSING = "Closing"


class PeerEvent(IdentityEnum):
    """The events of RFC 6733 §5.6.2, as the table of §5.6 uses them (with their prefixes)."""

    START = "Start"
    R_CONN_CER = "R-Conn-CER"
    I_RCV_CONN_ACK = "I-Rcv-Conn-Ack"
    I_RCV_CONN_NACK = "I-Rcv-Conn-Nack"
    TIMEOUT = "Timeout"
    I_RCV_CEA = "I-Rcv-CEA"
    I_RCV_NON_CEA = "I-Rcv-Non-CEA"
    I_PEER_DISC = "I-Peer-Disc"
    R_PEER_DISC = "R-Peer-Disc"
    WIN_ELECTION = "Win-Election"
    SEND_MESSAGE = "Send-Message"
    I_RCV_MESSAGE = "I-Rcv-Message"
    R_RCV_MESSAGE = "R-Rcv-Message"
    I_RCV_DWR = "I-Rcv-DWR"
    R_RCV_DWR = "R-Rcv-DWR"
    I_RCV_DWA = "I-Rcv-DWA"
    R_RCV_DWA = "R-Rcv-DWA"
    STOP = "Stop"
    I_RCV_DPR = "I-Rcv-DPR"
    R_RCV_DPR = "R-Rcv-DPR"
    I_RCV_DPA = "I-Rcv-DPA"
    R_RCV_DPA = "R-Rcv-DPA"


# ---------------------------------------------------------------- actions (RFC 6733 §5.6.3)


@attrs.frozen
class SendConnReq:
    """Snd-Conn-Req: initiate a transport connection to the peer."""

    conn: Conn


@attrs.frozen
class Accept:
    """Accept: adopt the incoming connection of the R-Conn-CER as the responder connection."""

    conn: Conn


@attrs.frozen
class Reject:
    """Reject: disconnect the incoming connection of the R-Conn-CER."""

    conn: Conn


@attrs.frozen
class ProcessCER:
    """Process-CER: process the CER of the R-Conn-CER."""


@attrs.frozen
class SendCER:
    """Snd-CER: send a CER."""

    conn: Conn


@attrs.frozen
class SendCEA:
    """Snd-CEA: send the CEA answering the CER of the R-Conn-CER."""

    conn: Conn


@attrs.frozen
class Cleanup:
    """Cleanup: shut the connection down if necessary, free local resources."""


@attrs.frozen
class Error:
    """Error: disconnect the transport connection(s) after an error, free local resources."""


@attrs.frozen
class ProcessCEA:
    """Process-CEA: process the received CEA."""


@attrs.frozen
class SendDPR:
    """Snd-DPR: send a DPR."""

    conn: Conn


@attrs.frozen
class SendDPA:
    """Snd-DPA: send a DPA answering the received DPR."""

    conn: Conn


@attrs.frozen
class Disconnect:
    """Disc: disconnect the transport connection, free local resources."""

    conn: Conn


@attrs.frozen
class Elect:
    """Elect: an election was held (§5.6.4); informational, the machine acted on it."""


@attrs.frozen
class SendMessage:
    """Snd-Message: send the message of the Send-Message event."""

    conn: Conn


@attrs.frozen
class SendDWA:
    """Snd-DWA: send a DWA answering the received DWR."""

    conn: Conn


@attrs.frozen
class ProcessDWR:
    """Process-DWR: service the received DWR."""


@attrs.frozen
class ProcessDWA:
    """Process-DWA: service the received DWA."""


@attrs.frozen
class DeliverMessage:
    """Process: service the received message (pass it to routing or the application)."""


Action = Union[
    SendConnReq,
    Accept,
    Reject,
    ProcessCER,
    SendCER,
    SendCEA,
    Cleanup,
    Error,
    ProcessCEA,
    SendDPR,
    SendDPA,
    Disconnect,
    Elect,
    SendMessage,
    SendDWA,
    ProcessDWR,
    ProcessDWA,
    DeliverMessage,
]


# ---------------------------------------------------------------- effects outside the table


@attrs.frozen
class StartTimer:
    """Arm this peer's timer to fire at ``at`` (caller's clock), replacing a running one."""

    at: float


@attrs.frozen
class CancelTimer:
    """Disarm this peer's timer."""


@attrs.frozen
class Unexpected:
    """``event`` has no row for ``state`` in the table; the machine did nothing."""

    state: PeerState
    event: PeerEvent


Effect = Union[Action, StartTimer, CancelTimer, Unexpected]


# ---------------------------------------------------------------- the table (RFC 6733 §5.6)

_I: Final = Conn.INITIATOR
_R: Final = Conn.RESPONDER

_Row = tuple[tuple[Action, ...], PeerState]

#: RFC 6733 §5.6, row by row: ``(state, event) -> (actions, next state)``.
TRANSITIONS: Final[Mapping[tuple[PeerState, PeerEvent], _Row]] = types.MappingProxyType(
    {
        # Closed
        (PeerState.CLOSED, PeerEvent.START): ((SendConnReq(_I),), PeerState.WAIT_CONN_ACK),
        (PeerState.CLOSED, PeerEvent.R_CONN_CER): (
            (Accept(_R), ProcessCER(), SendCEA(_R)),
            PeerState.R_OPEN,
        ),
        # Wait-Conn-Ack
        (PeerState.WAIT_CONN_ACK, PeerEvent.I_RCV_CONN_ACK): (
            (SendCER(_I),),
            PeerState.WAIT_I_CEA,
        ),
        (PeerState.WAIT_CONN_ACK, PeerEvent.I_RCV_CONN_NACK): ((Cleanup(),), PeerState.CLOSED),
        (PeerState.WAIT_CONN_ACK, PeerEvent.R_CONN_CER): (
            (Accept(_R), ProcessCER()),
            PeerState.WAIT_CONN_ACK_ELECT,
        ),
        (PeerState.WAIT_CONN_ACK, PeerEvent.TIMEOUT): ((Error(),), PeerState.CLOSED),
        # Wait-I-CEA
        (PeerState.WAIT_I_CEA, PeerEvent.I_RCV_CEA): ((ProcessCEA(),), PeerState.I_OPEN),
        (PeerState.WAIT_I_CEA, PeerEvent.R_CONN_CER): (
            (Accept(_R), ProcessCER(), Elect()),
            PeerState.WAIT_RETURNS,
        ),
        (PeerState.WAIT_I_CEA, PeerEvent.I_PEER_DISC): ((Disconnect(_I),), PeerState.CLOSED),
        (PeerState.WAIT_I_CEA, PeerEvent.I_RCV_NON_CEA): ((Error(),), PeerState.CLOSED),
        (PeerState.WAIT_I_CEA, PeerEvent.TIMEOUT): ((Error(),), PeerState.CLOSED),
        # Wait-Conn-Ack/Elect
        (PeerState.WAIT_CONN_ACK_ELECT, PeerEvent.I_RCV_CONN_ACK): (
            (SendCER(_I), Elect()),
            PeerState.WAIT_RETURNS,
        ),
        (PeerState.WAIT_CONN_ACK_ELECT, PeerEvent.I_RCV_CONN_NACK): (
            (SendCEA(_R),),
            PeerState.R_OPEN,
        ),
        (PeerState.WAIT_CONN_ACK_ELECT, PeerEvent.R_PEER_DISC): (
            (Disconnect(_R),),
            PeerState.WAIT_CONN_ACK,
        ),
        (PeerState.WAIT_CONN_ACK_ELECT, PeerEvent.R_CONN_CER): (
            (Reject(_R),),
            PeerState.WAIT_CONN_ACK_ELECT,
        ),
        (PeerState.WAIT_CONN_ACK_ELECT, PeerEvent.TIMEOUT): ((Error(),), PeerState.CLOSED),
        # Wait-Returns
        (PeerState.WAIT_RETURNS, PeerEvent.WIN_ELECTION): (
            (Disconnect(_I), SendCEA(_R)),
            PeerState.R_OPEN,
        ),
        (PeerState.WAIT_RETURNS, PeerEvent.I_PEER_DISC): (
            (Disconnect(_I), SendCEA(_R)),
            PeerState.R_OPEN,
        ),
        (PeerState.WAIT_RETURNS, PeerEvent.I_RCV_CEA): ((Disconnect(_R),), PeerState.I_OPEN),
        (PeerState.WAIT_RETURNS, PeerEvent.R_PEER_DISC): (
            (Disconnect(_R),),
            PeerState.WAIT_I_CEA,
        ),
        (PeerState.WAIT_RETURNS, PeerEvent.R_CONN_CER): (
            (Reject(_R),),
            PeerState.WAIT_RETURNS,
        ),
        (PeerState.WAIT_RETURNS, PeerEvent.TIMEOUT): ((Error(),), PeerState.CLOSED),
        # R-Open
        (PeerState.R_OPEN, PeerEvent.SEND_MESSAGE): ((SendMessage(_R),), PeerState.R_OPEN),
        (PeerState.R_OPEN, PeerEvent.R_RCV_MESSAGE): ((DeliverMessage(),), PeerState.R_OPEN),
        (PeerState.R_OPEN, PeerEvent.R_RCV_DWR): (
            (ProcessDWR(), SendDWA(_R)),
            PeerState.R_OPEN,
        ),
        (PeerState.R_OPEN, PeerEvent.R_RCV_DWA): ((ProcessDWA(),), PeerState.R_OPEN),
        (PeerState.R_OPEN, PeerEvent.R_CONN_CER): ((Reject(_R),), PeerState.R_OPEN),
        (PeerState.R_OPEN, PeerEvent.STOP): ((SendDPR(_R),), PeerState.CLOSING),
        (PeerState.R_OPEN, PeerEvent.R_RCV_DPR): ((SendDPA(_R),), PeerState.CLOSING),
        (PeerState.R_OPEN, PeerEvent.R_PEER_DISC): ((Disconnect(_R),), PeerState.CLOSED),
        # I-Open
        (PeerState.I_OPEN, PeerEvent.SEND_MESSAGE): ((SendMessage(_I),), PeerState.I_OPEN),
        (PeerState.I_OPEN, PeerEvent.I_RCV_MESSAGE): ((DeliverMessage(),), PeerState.I_OPEN),
        (PeerState.I_OPEN, PeerEvent.I_RCV_DWR): (
            (ProcessDWR(), SendDWA(_I)),
            PeerState.I_OPEN,
        ),
        (PeerState.I_OPEN, PeerEvent.I_RCV_DWA): ((ProcessDWA(),), PeerState.I_OPEN),
        (PeerState.I_OPEN, PeerEvent.R_CONN_CER): ((Reject(_R),), PeerState.I_OPEN),
        (PeerState.I_OPEN, PeerEvent.STOP): ((SendDPR(_I),), PeerState.CLOSING),
        (PeerState.I_OPEN, PeerEvent.I_RCV_DPR): ((SendDPA(_I),), PeerState.CLOSING),
        (PeerState.I_OPEN, PeerEvent.I_PEER_DISC): ((Disconnect(_I),), PeerState.CLOSED),
        # Closing
        (PeerState.CLOSING, PeerEvent.I_RCV_DPA): ((Disconnect(_I),), PeerState.CLOSED),
        (PeerState.CLOSING, PeerEvent.R_RCV_DPA): ((Disconnect(_R),), PeerState.CLOSED),
        (PeerState.CLOSING, PeerEvent.TIMEOUT): ((Error(),), PeerState.CLOSED),
        (PeerState.CLOSING, PeerEvent.I_PEER_DISC): ((Disconnect(_I),), PeerState.CLOSED),
        (PeerState.CLOSING, PeerEvent.R_PEER_DISC): ((Disconnect(_R),), PeerState.CLOSED),
    }
)


# ---------------------------------------------------------------- election (RFC 6733 §5.6.4)


def elect(local_host: str, remote_host: str) -> bool:
    """Whether the local node wins the election of RFC 6733 §5.6.4.

    The two Origin-Hosts are compared as strings of octets, ASCII letters without regard to
    case (the RFC makes the comparison consistent with DNS case insensitivity); the local node
    wins when its Origin-Host comes lexicographically after the peer's, so a longer identity
    wins over its own prefix. Equal identities (a misconfiguration) make both sides lose.
    """
    return _octets(local_host) > _octets(remote_host)


def _octets(host: str) -> bytes:
    # bytes.lower() folds only the ASCII letters A-Z, as the RFC asks.
    return host.encode("utf-8").lower()


# ---------------------------------------------------------------- the machine

_STABLE: Final = frozenset({PeerState.CLOSED, PeerState.I_OPEN, PeerState.R_OPEN})
_ELECT: Final = Elect()
_ACCEPT: Final = Accept(_R)


class PeerMachine:
    """One peer's RFC 6733 §5.6 state machine.

    ``local_host`` is our Origin-Host, for the election. The remote Origin-Host comes with
    each ``R_CONN_CER`` (``handle(PeerEvent.R_CONN_CER, now, origin_host=...)``, the Origin-Host
    of its CER, required for that event and refused for any other); the machine keeps the one
    of the accepted responder connection, and when an Elect action runs it holds the election
    and, if the local node wins, goes on with the Win-Election row at once, as the RFC has
    the Win-Election event "issued locally".

    The Timeout event: the machine runs one timer, ``StartTimer`` / ``CancelTimer`` effects,
    and expects ``TIMEOUT`` when it fires. The timer runs exactly while the machine is in an
    intermediate state:

    - a connection attempt (Snd-Conn-Req) waits at most ``tc``: RFC 6733 §2.1's Tc, the
      interval between connection attempts (30 s recommended), bounds each attempt. Accepting
      the peer's connection meanwhile (Wait-Conn-Ack/Elect) does not restart it;
    - a CER sent waits ``cea_timeout`` for its CEA (Wait-I-CEA, Wait-Returns), again not
      restarted by the election or by the loss of the responder connection;
    - Closing waits ``closing_timeout`` for the DPA or for the peer to disconnect.

    Reconnecting after the machine fell back to Closed (RFC 6733 §2.1: every Tc) is the
    shell's: it feeds ``START`` again.
    """

    __slots__ = (
        "_cea_timeout",
        "_closing_timeout",
        "_connection",
        "_deadline",
        "_local_host",
        "_remote_host",
        "_state",
        "_tc",
    )

    def __init__(
        self,
        local_host: str,
        *,
        tc: float = 30.0,
        cea_timeout: float = 10.0,
        closing_timeout: float = 10.0,
    ) -> None:
        if not local_host:
            raise ValueError("local_host must not be empty")
        for name, value in (
            ("tc", tc),
            ("cea_timeout", cea_timeout),
            ("closing_timeout", closing_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self._local_host = local_host
        self._tc = tc
        self._cea_timeout = cea_timeout
        self._closing_timeout = closing_timeout
        self._state = PeerState.CLOSED
        self._remote_host: Optional[str] = None
        self._connection: Optional[Conn] = None
        self._deadline: Optional[float] = None

    @property
    def state(self) -> PeerState:
        return self._state

    @property
    def local_host(self) -> str:
        return self._local_host

    @property
    def remote_host(self) -> Optional[str]:
        """The Origin-Host of the CER of the last accepted responder connection, if any."""
        return self._remote_host

    @property
    def connection(self) -> Optional[Conn]:
        """The connection that carries the traffic: I in I-Open, R in R-Open, the one that was
        open in Closing, None otherwise."""
        return self._connection

    @property
    def deadline(self) -> Optional[float]:
        """When the running timer fires; None when it is not running."""
        return self._deadline

    def handle(
        self, event: PeerEvent, now: float, *, origin_host: Optional[str] = None
    ) -> list[Effect]:
        """Feed ``event``; return the effects to carry out, in order.

        A pair with no row in the table leaves the machine as it is and returns
        ``[Unexpected(state, event)]``. RFC 6733 §5.6 says nothing of such events, and only
        constrains what the peer can see on the wire; by analogy with §8.1 ("any event not
        listed in the state machines MUST be considered an error condition, and an answer, if
        applicable, MUST be returned") the shell treats them as errors it resolves itself:
        answer a request received outside I-Open / R-Open with an error (e.g.
        DIAMETER_UNABLE_TO_COMPLY) or drop it, fail a ``SEND_MESSAGE`` locally (route the
        request elsewhere), close the connection of an ``R_CONN_CER`` in Closing, and ignore
        a ``START`` when not Closed or a ``STOP`` when not open.
        """
        if (event is PeerEvent.R_CONN_CER) != (origin_host is not None):
            raise ValueError("origin_host goes with R_CONN_CER, and only with it")
        state = self._state
        row = TRANSITIONS.get((state, event))
        if row is None:
            return [Unexpected(state, event)]
        actions, next_state = row
        if event is PeerEvent.TIMEOUT:
            self._deadline = None  # it fired
        if _ACCEPT in actions:
            self._remote_host = origin_host
        effects: list[Effect] = list(actions)
        if _ELECT in actions:
            assert self._remote_host is not None, "Elect follows an accepted R-Conn-CER"
            if elect(self._local_host, self._remote_host):
                won, next_state = TRANSITIONS[(next_state, PeerEvent.WIN_ELECTION)]
                effects.extend(won)
        self._state = next_state
        effects.extend(self._timer(state, next_state, actions, now))
        if next_state is PeerState.I_OPEN:
            self._connection = _I
        elif next_state is PeerState.R_OPEN:
            self._connection = _R
        elif next_state is not PeerState.CLOSING:
            self._connection = None
        return effects

    def _timer(
        self, state: PeerState, next_state: PeerState, actions: tuple[Action, ...], now: float
    ) -> list[Effect]:
        """The timer effects of a transition: see the class docstring."""
        if next_state in _STABLE:
            if self._deadline is None:
                return []
            self._deadline = None
            return [CancelTimer()]
        if any(isinstance(action, SendConnReq) for action in actions):
            duration = self._tc
        elif any(isinstance(action, SendCER) for action in actions):
            duration = self._cea_timeout
        elif next_state is PeerState.CLOSING and state is not PeerState.CLOSING:
            duration = self._closing_timeout
        else:
            return []  # the running timer keeps running
        self._deadline = now + duration
        return [StartTimer(self._deadline)]
