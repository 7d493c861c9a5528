"""Client transactions, sans-IO: RFC 3261 §17.1.1 (INVITE) and §17.1.2 (non-INVITE).

- :class:`InviteClientTransaction` (ICT): RFC 3261 §17.1.1 and Figure 5, as corrected by RFC 6026
  §7.2 and §8.4 (a 2xx moves the transaction to "Accepted", where timer M absorbs the 2xx
  retransmissions and passes each to the TU instead of terminating at once). The ACK for a
  300-699 response is built here (§17.1.1.3, :func:`build_ack`); the ACK for a 2xx is the TU's.
- :class:`NonInviteClientTransaction` (NICT): RFC 3261 §17.1.2 and Figure 6, with timer E reset
  to T2 once a provisional response arrived (§17.1.2.2).
- Transport errors (§17.1.4): the TU is told and the transaction terminates, in every state in
  which the transaction still uses the network (not in ICT "Accepted" or NICT "Completed", which
  send nothing and only absorb retransmissions).

Each machine is driven by calls that return lists of effects (:mod:`._effects`); time is the
caller's, passed in as ``now``. Call :meth:`start` first. Every call is classified into an
input enum and looked up in the machine's ``TRANSITIONS`` table, ``{(state, input): handler}``;
a pair that is not in the table is ignored (empty effect list), and so is a timer that is not
running. Responses are assumed to belong to the transaction (the layer matched them with
:func:`~clearwater.sip.transaction.keys.client_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Optional

from clearwater._enum import IdentityEnum
from clearwater.sip._message import Headers, Message, Request, Response
from clearwater.sip.headers import header_key
from clearwater.sip.transaction._effects import (
    DeliverToTU,
    Effect,
    Failed,
    FailureReason,
    Handler,
    S,
    Transmit,
    _TransactionBase,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings

__all__ = [
    "IctInput",
    "IctState",
    "InviteClientTransaction",
    "NictInput",
    "NictState",
    "NonInviteClientTransaction",
    "build_ack",
    "build_cancel",
]


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a 300-699 response to ``invite`` (RFC 3261 §17.1.1.3).

    Request-URI, From and Call-ID of the INVITE; one Via, the INVITE's top one (same branch: the
    ACK belongs to the INVITE transaction); To of the response (with the tag the UAS added); CSeq
    with the INVITE's number and the method ACK; the INVITE's Route header fields; Max-Forwards
    70 and no body. Unchanged values are copied as text, exactly as they were written.
    """
    headers = _same_path(invite)
    headers.add("To", _text(response, "To"))
    headers.add("From", _text(invite, "From"))
    headers.add("Call-ID", _text(invite, "Call-ID"))
    headers.add("CSeq", str(invite.cseq.seq) + " ACK")
    headers.add("Content-Length", "0")
    return Request("ACK", invite.uri, headers)


def build_cancel(request: Request) -> Request:
    """The CANCEL for ``request`` (RFC 3261 §9.1).

    Request-URI, Call-ID, To (no tag added), From and the top Via (same branch: the CANCEL
    matches the request's server transaction downstream) of the request; CSeq with its number
    and the method CANCEL; its Route header fields; Max-Forwards 70 and no body.
    """
    headers = _same_path(request)
    for name in ("To", "From", "Call-ID"):
        headers.add(name, _text(request, name))
    headers.add("CSeq", str(request.cseq.seq) + " CANCEL")
    headers.add("Content-Length", "0")
    return Request("CANCEL", request.uri, headers)


def _same_path(request: Request) -> Headers:
    """The top Via (its line as written) and the Route lines of ``request``, and Max-Forwards
    70: what an ACK or CANCEL needs to follow the request to the same transaction (§9.1,
    §17.1.1.3)."""
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    for name, value in request.headers:
        if header_key(name) == "route":
            headers.add(name, value)
    headers.add("Max-Forwards", "70")
    return headers


def _text(message: Message, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise ValueError(name + " missing")
    return value


_DEFAULT_SETTINGS = TimerSettings()  # frozen, so one instance serves every default


class _ClientTransaction(_TransactionBase[S]):
    """What both client transactions share: the request they send, kept until the final
    response (after it nothing is sent but an ACK built then, and an INVITE transaction
    lingers up to 64*T1)."""

    __slots__ = ("_request",)

    def __init__(
        self, request: Request, *, reliable: bool, settings: TimerSettings, state: S
    ) -> None:
        super().__init__(reliable=reliable, settings=settings, state=state)
        self._request: Optional[Request] = request

    @property
    def request(self) -> Optional[Request]:
        """The request this transaction was created for; None once a final response came."""
        return self._request

    def _send(self) -> Transmit:
        request = self._request
        assert request is not None, "nothing is (re)sent after the final response"
        return Transmit(request)


# --------------------------------------------------------------------------- INVITE


class IctState(IdentityEnum):
    """States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 §7.2)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class IctInput(IdentityEnum):
    """What can happen to an INVITE client transaction."""

    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_3XX_6XX = "300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "Transport Err."


_ICT_TIMERS = {
    Timer.A: IctInput.TIMER_A,
    Timer.B: IctInput.TIMER_B,
    Timer.D: IctInput.TIMER_D,
    Timer.M: IctInput.TIMER_M,
}


class InviteClientTransaction(_ClientTransaction[IctState]):
    """The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2)."""

    __slots__ = ("_ack",)
    _TERMINATED = IctState.TERMINATED

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        settings: TimerSettings = _DEFAULT_SETTINGS,
        now: float,
    ) -> None:
        super().__init__(request, reliable=reliable, settings=settings, state=IctState.CALLING)
        self._ack: Optional[Request] = None

    # ---- inputs

    def start(self, now: float) -> list[Effect]:
        """Send the INVITE; timer A (unreliable transport only) and timer B (§17.1.1.2)."""
        self._begin()
        return [
            self._send(),
            *self._start_timer(Timer.A, now),
            *self._start_timer(Timer.B, now),
        ]

    def receive_response(self, response: Response, now: float) -> list[Effect]:
        if response.status < 200:
            event = IctInput.RESPONSE_1XX
        elif response.status < 300:
            event = IctInput.RESPONSE_2XX
        else:
            event = IctInput.RESPONSE_3XX_6XX
        return self._dispatch(event, response, now)

    def timer_fired(self, timer: Timer, now: float) -> list[Effect]:
        return self._fire(timer, _ICT_TIMERS.get(timer), now)

    def transport_error(self, now: float) -> list[Effect]:
        return self._dispatch(IctInput.TRANSPORT_ERROR, None, now)

    # ---- transitions

    def _retransmit(self, _: None, now: float) -> list[Effect]:
        # Timer A fires: retransmit, and double the interval (no cap; timer B ends it).
        return [self._send(), *self._restart(Timer.A, now, self._next_interval(Timer.A))]

    def _timeout(self, _: None, now: float) -> list[Effect]:
        return self._terminate(Failed(FailureReason.TIMEOUT))

    def _transport_failed(self, _: None, now: float) -> list[Effect]:
        return self._terminate(Failed(FailureReason.TRANSPORT_ERROR))

    def _provisional(self, response: Response, now: float) -> list[Effect]:
        # Calling -> Proceeding: no more retransmissions, and timer B only guards "Calling".
        self._state = IctState.PROCEEDING
        return [*self._cancel(Timer.A, Timer.B), DeliverToTU(response)]

    def _accept(self, response: Response, now: float) -> list[Effect]:
        # RFC 6026 §7.2: a 2xx moves to "Accepted" for 64*T1 (timer M); the TU sends the ACK.
        self._state = IctState.ACCEPTED
        self._request = None
        return [
            *self._cancel(Timer.A, Timer.B),
            DeliverToTU(response),
            *self._start_timer(Timer.M, now),
        ]

    def _complete(self, response: Response, now: float) -> list[Effect]:
        # §17.1.1.2: ACK even on a reliable transport, pass the response up, timer D.
        request = self._request
        assert request is not None  # "Calling" or "Proceeding"
        self._ack = build_ack(request, response)
        self._request = None
        return [
            *self._cancel(Timer.A, Timer.B),
            Transmit(self._ack),
            DeliverToTU(response),
            *self._wait_or_terminate(IctState.COMPLETED, Timer.D, now),
        ]

    def _resend_ack(self, response: Response, now: float) -> list[Effect]:
        # A retransmitted final response: the ACK is lost, send it again; the TU has it already.
        assert self._ack is not None
        return [Transmit(self._ack)]

    def _deliver(self, response: Response, now: float) -> list[Effect]:
        return [DeliverToTU(response)]

    def _end(self, _: None, now: float) -> list[Effect]:
        return self._terminate()

    #: RFC 3261 Figure 5 as amended by RFC 6026 §7.2 / §8.4, plus §17.1.4 (transport errors).
    TRANSITIONS: ClassVar[Mapping[tuple[IctState, IctInput], Handler]] = {
        (IctState.CALLING, IctInput.TIMER_A): _retransmit,
        (IctState.CALLING, IctInput.TIMER_B): _timeout,
        (IctState.CALLING, IctInput.RESPONSE_1XX): _provisional,
        (IctState.CALLING, IctInput.RESPONSE_2XX): _accept,
        (IctState.CALLING, IctInput.RESPONSE_3XX_6XX): _complete,
        (IctState.CALLING, IctInput.TRANSPORT_ERROR): _transport_failed,
        (IctState.PROCEEDING, IctInput.RESPONSE_1XX): _deliver,
        (IctState.PROCEEDING, IctInput.RESPONSE_2XX): _accept,
        (IctState.PROCEEDING, IctInput.RESPONSE_3XX_6XX): _complete,
        (IctState.PROCEEDING, IctInput.TRANSPORT_ERROR): _transport_failed,  # §17.1.4
        (IctState.COMPLETED, IctInput.RESPONSE_3XX_6XX): _resend_ack,
        (IctState.COMPLETED, IctInput.TIMER_D): _end,
        (IctState.COMPLETED, IctInput.TRANSPORT_ERROR): _transport_failed,  # sending the ACK
        (IctState.ACCEPTED, IctInput.RESPONSE_2XX): _deliver,
        (IctState.ACCEPTED, IctInput.TIMER_M): _end,
    }


# --------------------------------------------------------------------------- non-INVITE


class NictState(IdentityEnum):
    """States of the non-INVITE client transaction (RFC 3261 Figure 6)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class NictInput(IdentityEnum):
    """What can happen to a non-INVITE client transaction."""

    RESPONSE_1XX = "1xx"
    RESPONSE_FINAL = "200-699"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TRANSPORT_ERROR = "Transport Err."


_NICT_TIMERS = {Timer.E: NictInput.TIMER_E, Timer.F: NictInput.TIMER_F, Timer.K: NictInput.TIMER_K}


class NonInviteClientTransaction(_ClientTransaction[NictState]):
    """The non-INVITE client transaction (RFC 3261 §17.1.2, RFC 4320)."""

    __slots__ = ()
    _TERMINATED = NictState.TERMINATED

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        settings: TimerSettings = _DEFAULT_SETTINGS,
        now: float,
    ) -> None:
        super().__init__(request, reliable=reliable, settings=settings, state=NictState.TRYING)

    # ---- inputs

    def start(self, now: float) -> list[Effect]:
        """Send the request; timer E (unreliable transport only) and timer F (§17.1.2.2)."""
        self._begin()
        return [
            self._send(),
            *self._start_timer(Timer.E, now),
            *self._start_timer(Timer.F, now),
        ]

    def receive_response(self, response: Response, now: float) -> list[Effect]:
        event = NictInput.RESPONSE_1XX if response.status < 200 else NictInput.RESPONSE_FINAL
        return self._dispatch(event, response, now)

    def timer_fired(self, timer: Timer, now: float) -> list[Effect]:
        return self._fire(timer, _NICT_TIMERS.get(timer), now)

    def transport_error(self, now: float) -> list[Effect]:
        return self._dispatch(NictInput.TRANSPORT_ERROR, None, now)

    # ---- transitions

    def _retransmit_trying(self, _: None, now: float) -> list[Effect]:
        # Timer E in "Trying": retransmit, interval MIN(2*interval, T2).
        return [self._send(), *self._restart(Timer.E, now, self._next_interval(Timer.E))]

    def _retransmit_proceeding(self, _: None, now: float) -> list[Effect]:
        # Timer E in "Proceeding": retransmit, interval T2.
        return [self._send(), *self._restart(Timer.E, now, self._settings.t2)]

    def _timeout(self, _: None, now: float) -> list[Effect]:
        return self._terminate(Failed(FailureReason.TIMEOUT))

    def _transport_failed(self, _: None, now: float) -> list[Effect]:
        return self._terminate(Failed(FailureReason.TRANSPORT_ERROR))

    def _provisional(self, response: Response, now: float) -> list[Effect]:
        self._state = NictState.PROCEEDING
        return [DeliverToTU(response)]

    def _deliver(self, response: Response, now: float) -> list[Effect]:
        return [DeliverToTU(response)]

    def _complete(self, response: Response, now: float) -> list[Effect]:
        # Timer K (T4) absorbs response retransmissions; zero on a reliable transport.
        self._request = None
        return [
            *self._cancel(Timer.E, Timer.F),
            DeliverToTU(response),
            *self._wait_or_terminate(NictState.COMPLETED, Timer.K, now),
        ]

    def _end(self, _: None, now: float) -> list[Effect]:
        return self._terminate()

    #: RFC 3261 Figure 6 (non-INVITE client transaction); responses in "Completed" are absorbed.
    TRANSITIONS: ClassVar[Mapping[tuple[NictState, NictInput], Handler]] = {
        (NictState.TRYING, NictInput.TIMER_E): _retransmit_trying,
        (NictState.TRYING, NictInput.TIMER_F): _timeout,
        (NictState.TRYING, NictInput.RESPONSE_1XX): _provisional,
        (NictState.TRYING, NictInput.RESPONSE_FINAL): _complete,
        (NictState.TRYING, NictInput.TRANSPORT_ERROR): _transport_failed,
        (NictState.PROCEEDING, NictInput.TIMER_E): _retransmit_proceeding,
        (NictState.PROCEEDING, NictInput.TIMER_F): _timeout,
        (NictState.PROCEEDING, NictInput.RESPONSE_1XX): _deliver,
        (NictState.PROCEEDING, NictInput.RESPONSE_FINAL): _complete,
        (NictState.PROCEEDING, NictInput.TRANSPORT_ERROR): _transport_failed,
        (NictState.COMPLETED, NictInput.TIMER_K): _end,
    }
