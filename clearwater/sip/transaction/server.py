"""Server transactions, sans-IO: RFC 3261 §17.2.1 (INVITE) and §17.2.2 (non-INVITE).

- :class:`InviteServerTransaction` (IST): RFC 3261 §17.2.1 and Figure 7, as corrected by RFC 6026
  §7.1 and §8.5-§8.8: a 2xx from the TU moves the transaction to "Accepted", where timer L
  absorbs INVITE retransmissions, the TU's 2xx retransmissions (§13.3.1.4) are sent, and ACKs
  are passed to the TU. A transport error is reported to the TU and the transaction stays where
  it is (RFC 6026 §7.1: it "MUST NOT discard transaction state based only on encountering a
  non-recoverable transport error when sending a response"; §8.8 rewrites RFC 3261 §17.2.4 to
  "MUST remain in the current state"): its timers end it, and meanwhile INVITE retransmissions
  are still absorbed instead of looking like new requests.
- :class:`NonInviteServerTransaction` (NIST): RFC 3261 §17.2.2 and Figure 8, with RFC 4320 §4.1:
  no provisional response but 100, and on an unreliable transport no 100 before the client's
  timer E would have reached T2. A transport error is reported and terminates it (Figure 8).
- :func:`build_response`: a response with the fields RFC 3261 §8.2.6 copies from the request.

The layer passes the initial request to the TU when it creates the transaction; a server
transaction only delivers ACKs (IST "Accepted"). :meth:`send_response` with a response the
current state does not allow is a bug in the TU and raises :class:`ValueError`. Other inputs
follow the ``TRANSITIONS`` table, ``{(state, input): handler}``: a pair it does not hold is
ignored, and so is a timer that is not running.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar

from clearwater._enum import IdentityEnum
from clearwater.sip._message import Request, Response
from clearwater.sip.transaction._effects import (
    DeliverToTU,
    Effect,
    Failed,
    FailureReason,
    Handler,
    Retransmit,
    S,
    Transmit,
    _TransactionBase,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings

__all__ = [
    "InviteServerTransaction",
    "IstInput",
    "IstState",
    "NistInput",
    "NistState",
    "NonInviteServerTransaction",
    "build_response",
]

_DEFAULT_SETTINGS = TimerSettings()  # frozen, so one instance serves every default

# RFC 3261 §8.2.6.2 (and §8.2.6.1 for Timestamp): what a response copies from its request.
_COPIED = ("via", "from", "to", "call-id", "cseq", "timestamp")


def build_response(request: Request, status: int, reason: str) -> Response:
    """A response to ``request`` with no body (RFC 3261 §8.2.6).

    Copies every Via in order, From, To (no tag is added), Call-ID, CSeq and any Timestamp
    (§8.2.6.1), each line as written. The IST uses it for its 100 (Trying) (§17.2.1).
    """
    headers = request.headers.copy_of(_COPIED)
    headers.add("Content-Length", "0")
    return Response(status, reason, headers)


def _status_class(response: Response) -> int:
    return response.status // 100


class _ServerTransaction(_TransactionBase[S]):
    """What both server transactions share: TU responses that are not allowed raise.

    A server machine keeps no message: it asks for the last response it transmitted to be sent
    again (:class:`Retransmit`), which the caller keeps as bytes. A loaded server holds each
    finished transaction for up to 64*T1 (timers J and L), so this is most of its memory.
    """

    __slots__ = ("_provisional_sent",)

    def __init__(self, *, reliable: bool, settings: TimerSettings, state: S) -> None:
        super().__init__(reliable=reliable, settings=settings, state=state)
        self._provisional_sent = False

    def _from_tu(self, event: enum.Enum, response: Response, now: float) -> list[Effect]:
        self._check_started()
        if (self._state, event) not in self.TRANSITIONS:
            raise ValueError(
                type(self).__name__
                + ": cannot send a "
                + str(response.status)
                + " response in state "
                + str(self._state.value)
            )
        return self._dispatch(event, response, now)


# --------------------------------------------------------------------------- INVITE


class IstState(IdentityEnum):
    """States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 §7.1)."""

    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class IstInput(IdentityEnum):
    """What can happen to an INVITE server transaction."""

    INVITE = "INVITE"  # a retransmission of the request
    ACK = "ACK"
    TU_1XX = "101-199 from TU"
    TU_2XX = "2xx from TU"
    TU_3XX_6XX = "300-699 from TU"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_L = "Timer L"
    TRANSPORT_ERROR = "Transport Err."


_IST_TIMERS = {
    Timer.G: IstInput.TIMER_G,
    Timer.H: IstInput.TIMER_H,
    Timer.I: IstInput.TIMER_I,
    Timer.L: IstInput.TIMER_L,
}


class InviteServerTransaction(_ServerTransaction[IstState]):
    """The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).

    ``send_trying``: whether :meth:`start` sends a 100 (Trying) at once; §17.2.1 allows leaving
    it out only when the TU will respond within 200 ms.
    """

    __slots__ = ("_trying",)
    _TERMINATED = IstState.TERMINATED

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        settings: TimerSettings = _DEFAULT_SETTINGS,
        now: float,
        send_trying: bool = True,
    ) -> None:
        super().__init__(reliable=reliable, settings=settings, state=IstState.PROCEEDING)
        self._trying = build_response(request, 100, "Trying") if send_trying else None

    # ---- inputs

    def start(self, now: float) -> list[Effect]:
        """Send the 100 (Trying) unless ``send_trying`` was false (§17.2.1)."""
        self._begin()
        trying, self._trying = self._trying, None
        if trying is None:
            return []
        self._provisional_sent = True
        return [Transmit(trying)]

    def receive_request(self, request: Request, now: float) -> list[Effect]:
        """A retransmission of the INVITE, or the ACK (matched by the layer, §17.2.3)."""
        if request.method == "ACK":
            return self._dispatch(IstInput.ACK, request, now)
        if request.method == "INVITE":
            return self._dispatch(IstInput.INVITE, request, now)
        raise ValueError("an INVITE server transaction does not take a " + request.method)

    def send_response(self, response: Response, now: float) -> list[Effect]:
        """A response from the TU. Raises ValueError if the state does not allow it."""
        status_class = _status_class(response)
        if status_class == 1:
            event = IstInput.TU_1XX
        elif status_class == 2:
            event = IstInput.TU_2XX
        else:
            event = IstInput.TU_3XX_6XX
        return self._from_tu(event, response, now)

    def timer_fired(self, timer: Timer, now: float) -> list[Effect]:
        return self._fire(timer, _IST_TIMERS.get(timer), now)

    def transport_error(self, now: float) -> list[Effect]:
        return self._dispatch(IstInput.TRANSPORT_ERROR, None, now)

    # ---- transitions

    def _resend_provisional(self, request: Request, now: float) -> list[Effect]:
        return [Retransmit()] if self._provisional_sent else []

    def _send_provisional(self, response: Response, now: float) -> list[Effect]:
        self._provisional_sent = True
        return [Transmit(response)]

    def _accept(self, response: Response, now: float) -> list[Effect]:
        # RFC 6026 §7.1: "Accepted" for 64*T1 (timer L); 2xx retransmissions are the TU's.
        self._state = IstState.ACCEPTED
        return [Transmit(response), *self._start_timer(Timer.L, now)]

    def _complete(self, response: Response, now: float) -> list[Effect]:
        # Timer G (unreliable only) retransmits the response, timer H waits for the ACK.
        self._state = IstState.COMPLETED
        return [
            Transmit(response),
            *self._start_timer(Timer.G, now),
            *self._start_timer(Timer.H, now),
        ]

    def _resend_final(self, request: Request, now: float) -> list[Effect]:
        return [Retransmit()]

    def _retransmit_final(self, _: None, now: float) -> list[Effect]:
        # Timer G: retransmit, interval MIN(2*interval, T2).
        return [Retransmit(), *self._restart(Timer.G, now, self._next_interval(Timer.G))]

    def _confirm(self, ack: Request, now: float) -> list[Effect]:
        # Timer I (T4) absorbs ACK retransmissions; zero on a reliable transport.
        return [
            *self._cancel(Timer.G, Timer.H),
            *self._wait_or_terminate(IstState.CONFIRMED, Timer.I, now),
        ]

    def _timeout(self, _: None, now: float) -> list[Effect]:
        # Timer H: the ACK never came.
        return self._terminate(Failed(FailureReason.TIMEOUT))

    def _report_transport_error(self, _: None, now: float) -> list[Effect]:
        # RFC 6026 §7.1, §8.8: inform the TU and remain in the current state.
        return [Failed(FailureReason.TRANSPORT_ERROR)]

    def _deliver_ack(self, ack: Request, now: float) -> list[Effect]:
        # RFC 6026 §7.1: an ACK (for the 2xx) in "Accepted" is passed up to the TU.
        return [DeliverToTU(ack)]

    def _send(self, response: Response, now: float) -> list[Effect]:
        return [Transmit(response)]

    def _end(self, _: None, now: float) -> list[Effect]:
        return self._terminate()

    #: RFC 3261 Figure 7 as replaced by RFC 6026 §7.1 (INVITE server transaction). INVITE in
    #: "Accepted" and ACK in "Confirmed" are absorbed; TU responses missing here raise.
    TRANSITIONS: ClassVar[Mapping[tuple[IstState, IstInput], Handler]] = {
        (IstState.PROCEEDING, IstInput.INVITE): _resend_provisional,
        (IstState.PROCEEDING, IstInput.TU_1XX): _send_provisional,
        (IstState.PROCEEDING, IstInput.TU_2XX): _accept,
        (IstState.PROCEEDING, IstInput.TU_3XX_6XX): _complete,
        (IstState.PROCEEDING, IstInput.TRANSPORT_ERROR): _report_transport_error,
        (IstState.COMPLETED, IstInput.INVITE): _resend_final,
        (IstState.COMPLETED, IstInput.ACK): _confirm,
        (IstState.COMPLETED, IstInput.TIMER_G): _retransmit_final,
        (IstState.COMPLETED, IstInput.TIMER_H): _timeout,
        (IstState.COMPLETED, IstInput.TRANSPORT_ERROR): _report_transport_error,
        (IstState.CONFIRMED, IstInput.TIMER_I): _end,
        (IstState.ACCEPTED, IstInput.ACK): _deliver_ack,
        (IstState.ACCEPTED, IstInput.TU_2XX): _send,
        (IstState.ACCEPTED, IstInput.TIMER_L): _end,
        (IstState.ACCEPTED, IstInput.TRANSPORT_ERROR): _report_transport_error,
    }


# --------------------------------------------------------------------------- non-INVITE


class NistState(IdentityEnum):
    """States of the non-INVITE server transaction (RFC 3261 Figure 8)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class NistInput(IdentityEnum):
    """What can happen to a non-INVITE server transaction."""

    REQUEST = "Request"  # a retransmission of the request
    TU_1XX = "1xx from TU"
    TU_FINAL = "200-699 from TU"
    TIMER_J = "Timer J"
    TRANSPORT_ERROR = "Transport Err."


class NonInviteServerTransaction(_ServerTransaction[NistState]):
    """The non-INVITE server transaction (RFC 3261 §17.2.2, RFC 4320 §4.1)."""

    __slots__ = ("_trying_allowed_at",)
    _TERMINATED = NistState.TERMINATED

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        settings: TimerSettings = _DEFAULT_SETTINGS,
        now: float,
    ) -> None:
        """``request`` is the request that created the transaction; nothing of it is kept."""
        super().__init__(reliable=reliable, settings=settings, state=NistState.TRYING)
        self._trying_allowed_at = now + _timer_e_reaches_t2(settings)

    # ---- inputs

    def start(self, now: float) -> list[Effect]:
        """Nothing to send: the TU answers (§17.2.2)."""
        self._begin()
        return []

    def receive_request(self, request: Request, now: float) -> list[Effect]:
        """A retransmission of the request (matched by the layer, §17.2.3)."""
        return self._dispatch(NistInput.REQUEST, request, now)

    def send_response(self, response: Response, now: float) -> list[Effect]:
        """A response from the TU. Raises ValueError if the state does not allow it, and for a
        provisional response other than 100 (RFC 4320 §4.1)."""
        if response.status < 200:
            if response.status != 100:
                raise ValueError(
                    "RFC 4320 §4.1: no provisional response other than 100 to a non-INVITE"
                    " request (got " + str(response.status) + ")"
                )
            return self._from_tu(NistInput.TU_1XX, response, now)
        return self._from_tu(NistInput.TU_FINAL, response, now)

    def timer_fired(self, timer: Timer, now: float) -> list[Effect]:
        return self._fire(timer, NistInput.TIMER_J if timer is Timer.J else None, now)

    def transport_error(self, now: float) -> list[Effect]:
        return self._dispatch(NistInput.TRANSPORT_ERROR, None, now)

    # ---- transitions

    def _send_provisional(self, response: Response, now: float) -> list[Effect]:
        # RFC 4320 §4.1: over an unreliable transport, no 100 before the client's timer E
        # would have reached T2; such a 100 is not sent and changes nothing.
        if not self._reliable and now < self._trying_allowed_at:
            return []
        self._provisional_sent = True
        self._state = NistState.PROCEEDING
        return [Transmit(response)]

    def _resend_provisional(self, request: Request, now: float) -> list[Effect]:
        return [Retransmit()]

    def _complete(self, response: Response, now: float) -> list[Effect]:
        # Timer J (64*T1) absorbs request retransmissions; zero on a reliable transport.
        return [Transmit(response), *self._wait_or_terminate(NistState.COMPLETED, Timer.J, now)]

    def _resend_final(self, request: Request, now: float) -> list[Effect]:
        return [Retransmit()]

    def _transport_failed(self, _: None, now: float) -> list[Effect]:
        return self._terminate(Failed(FailureReason.TRANSPORT_ERROR))

    def _end(self, _: None, now: float) -> list[Effect]:
        return self._terminate()

    #: RFC 3261 Figure 8 (non-INVITE server transaction) with RFC 4320 §4.1. A retransmission in
    #: "Trying" is absorbed; TU responses missing here raise.
    TRANSITIONS: ClassVar[Mapping[tuple[NistState, NistInput], Handler]] = {
        (NistState.TRYING, NistInput.TU_1XX): _send_provisional,
        (NistState.TRYING, NistInput.TU_FINAL): _complete,
        (NistState.TRYING, NistInput.TRANSPORT_ERROR): _transport_failed,
        (NistState.PROCEEDING, NistInput.REQUEST): _resend_provisional,
        (NistState.PROCEEDING, NistInput.TU_1XX): _send_provisional,
        (NistState.PROCEEDING, NistInput.TU_FINAL): _complete,
        (NistState.PROCEEDING, NistInput.TRANSPORT_ERROR): _transport_failed,
        (NistState.COMPLETED, NistInput.REQUEST): _resend_final,
        (NistState.COMPLETED, NistInput.TIMER_J): _end,
        (NistState.COMPLETED, NistInput.TRANSPORT_ERROR): _transport_failed,
    }


def _timer_e_reaches_t2(settings: TimerSettings) -> float:
    """Seconds from the request until the client's timer E interval is T2 (RFC 4320 §4.1):
    T1 + 2*T1 + 4*T1 + ... while the interval is below T2 (3.5 s with the defaults)."""
    elapsed = 0.0
    interval = settings.t1
    while interval < settings.t2:
        elapsed += interval
        interval = settings.next_interval(Timer.E, interval)
    return elapsed
