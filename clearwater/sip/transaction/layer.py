"""The transaction layer's Twisted shell: RFC 3261 §17 matching and timers on an injected clock.

:class:`TransactionLayer` sits between the transport layer (below) and a transaction user (above:
a UA core or a proxy core). It keeps the live transactions in dicts keyed by
:mod:`~clearwater.sip.transaction.keys`, runs the sans-IO machines of
:mod:`~clearwater.sip.transaction.client` and :mod:`~clearwater.sip.transaction.server`, and
carries out their effects: transmissions go to the transport layer, timers become
``clock.callLater`` calls, and failures (timeouts, transport errors) are reported to the TU.

Matching (§17.1.3, §17.2.3):

- a response goes to the client transaction with its branch and CSeq method; one that matches
  none goes to :meth:`TransactionUser.stray_response` (a proxy forwards it statelessly);
- a request goes to the server transaction with its key (a retransmission) or creates one and is
  passed to :meth:`TransactionUser.request_received`;
- an ACK that matches an INVITE server transaction which sent a non-2xx final response is
  absorbed by it; any other ACK (the ACK for a 2xx, RFC 6026) goes to
  :meth:`TransactionUser.ack_received`. With RFC 2543 matching, the ACK's To tag must also equal
  the tag of the response sent;
- a CANCEL gets its own server transaction; :meth:`TransactionLayer.find_invite` finds the INVITE
  server transaction it refers to (§9.2).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable, Optional, Protocol, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater.errors import ParseError, RequestTimedOut, TransportError
from clearwater.sip._message import Request, Response
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
from clearwater.sip.transaction.client import InviteClientTransaction, NonInviteClientTransaction
from clearwater.sip.transaction.keys import (
    ClientKey,
    Rfc2543Key,
    ServerKey,
    cancel_target_key,
    client_key,
    server_key,
)
from clearwater.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    build_response,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings
from clearwater.sip.transport._types import EncodedResponse, Flow, Target

__all__ = [
    "ClientTransaction",
    "RequestSender",
    "ServerTransaction",
    "TransactionLayer",
    "TransactionUser",
]

_log = Logger()

#: A timer is due when its deadline is within this of the clock (float rounding of delays).
_TIMER_SLACK = 1e-9
#: Timer FIFOs (one per duration) kept when empty; beyond it the empty ones are dropped.
_MAX_IDLE_TIMER_QUEUES = 32

_TimerEntry = tuple[float, int, object, str, bool]

ClientMachine = Union[InviteClientTransaction, NonInviteClientTransaction]
ServerMachine = Union[InviteServerTransaction, NonInviteServerTransaction]


class RequestSender(Protocol):
    """What the transaction layer needs from the transport layer."""

    def prepare_request(self, request: Request, target: Target) -> Target: ...

    def send_request(self, request: Request, target: Target) -> Deferred[None]: ...

    def encode_response(self, response: Response, flow: Flow) -> EncodedResponse: ...

    def send_encoded_response(self, encoded: EncodedResponse, flow: Flow) -> Deferred[None]: ...


class TransactionUser(Protocol):
    """The layer above: a UA core or a proxy core."""

    def request_received(self, transaction: ServerTransaction, request: Request) -> None:
        """A new request (not an ACK) arrived; answer it through ``transaction.respond``."""

    def ack_received(self, ack: Request, flow: Flow) -> None:
        """An ACK that no transaction absorbed: the ACK for a 2xx (RFC 3261 §13.3.1.4)."""

    def stray_response(self, response: Response, flow: Flow) -> None:
        """A response that matched no client transaction (e.g. a late 2xx retransmission)."""


class _Transaction:
    """Timers and effect bookkeeping shared by both kinds of transaction handle.

    Timers live in the layer's queues (:meth:`TransactionLayer._start_timer`), not in one
    ``callLater`` each: ``_timers`` maps a running timer's letter to its sequence number there.
    """

    __slots__ = ("_busy", "_layer", "_timers", "_transport_failed", "key", "machine", "terminated")

    key: Union[ClientKey, ServerKey, Rfc2543Key]  # where the layer keeps it
    machine: Union[ClientMachine, ServerMachine]

    def __init__(self, layer: TransactionLayer) -> None:
        self._layer = layer
        self._timers: dict[str, int] = {}
        self._busy = False
        self._transport_failed = False
        self.terminated = False

    def _feed(self, effects: list[Effect]) -> None:
        """Carry out effects in order; inputs that arrive meanwhile wait their turn."""
        self._busy = True
        try:
            for effect in effects:
                self._apply(effect)
        finally:
            self._busy = False
        if self._transport_failed and not self.terminated:
            self._transport_failed = False
            self._feed(self._machine_transport_error())

    def _apply(self, effect: Effect) -> None:
        # Most frequent first.
        if isinstance(effect, StartTimer):
            self._timers[effect.timer._value_] = self._layer._start_timer(self, effect)
        elif isinstance(effect, CancelTimer):
            self._timers.pop(effect.timer._value_, None)
        elif isinstance(effect, Transmit):
            self._transmit(effect).addErrback(self._send_failed)
        elif isinstance(effect, DeliverToTU):
            self._deliver(effect)
        elif isinstance(effect, Retransmit):
            self._retransmit().addErrback(self._send_failed)
        elif isinstance(effect, Failed):
            self._failed(effect.reason)
        elif isinstance(effect, Terminated):
            self.terminated = True
            self.cancel_timers()
            self._remove()

    def cancel_timers(self) -> None:
        self._timers.clear()

    def _send_failed(self, reason: Failure) -> None:
        _log.info("SIP send failed: {reason}", reason=reason.value)
        if self.terminated:
            return
        if self._busy:
            self._transport_failed = True
        else:
            self._feed(self._machine_transport_error())

    def _fire(self, timer: Timer) -> None:
        self._feed(self.machine.timer_fired(timer, self._layer.clock.seconds()))

    def _machine_transport_error(self) -> list[Effect]:
        return self.machine.transport_error(self._layer.clock.seconds())

    # Implemented by the two handles.
    def _transmit(self, effect: Transmit) -> Deferred[None]:
        raise NotImplementedError

    def _retransmit(self) -> Deferred[None]:
        raise NotImplementedError

    def _deliver(self, effect: DeliverToTU) -> None:
        raise NotImplementedError

    def _failed(self, reason: FailureReason) -> None:
        raise NotImplementedError

    def _remove(self) -> None:
        raise NotImplementedError


class ClientTransaction(_Transaction):
    """A request we sent, until its final response (RFC 3261 §17.1).

    ``request`` is the request sent, until the first final response: the transaction then
    forgets it (an INVITE's transaction lingers up to 64*T1 for 2xx retransmissions, and a
    proxy has thousands of them); a TU that needs it later keeps its own reference.

    ``result`` fires with the first final response, or fails with
    :class:`~clearwater.errors.RequestTimedOut` (timer B or F) or
    :class:`~clearwater.errors.TransportError`. ``on_response`` (if given) sees every response
    passed up, provisional ones and 2xx retransmissions (RFC 6026 Accepted state) included.
    """

    __slots__ = ("_on_response", "method", "request", "result", "target")

    key: ClientKey
    machine: ClientMachine

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        target: Target,
        machine: ClientMachine,
        on_response: Optional[Callable[[Response], None]],
    ) -> None:
        super().__init__(layer)
        self.request: Optional[Request] = request
        self.method = request.method
        self.target = target
        self.key = client_key(request)
        self.machine = machine
        self.result: Deferred[Response] = Deferred()
        self._on_response = on_response

    @override
    def _transmit(self, effect: Transmit) -> Deferred[None]:
        message = effect.message
        assert isinstance(message, Request)
        return self._layer.transport.send_request(message, self.target)

    @override
    def _deliver(self, effect: DeliverToTU) -> None:
        response = effect.message
        assert isinstance(response, Response)
        if self._on_response is not None:
            try:
                self._on_response(response)
            except Exception:
                _log.failure("on_response callback failed")
        if response.status >= 200 and not self.result.called:
            self.request = None
            self.result.callback(response)

    @override
    def _failed(self, reason: FailureReason) -> None:
        if self.result.called:
            return
        if reason is FailureReason.TIMEOUT:
            error: Exception = RequestTimedOut(
                self.method + " to " + str(self.target) + ": no final response"
            )
        else:
            error = TransportError(self.method + " to " + str(self.target) + " failed")
        self.result.errback(error)

    @override
    def _remove(self) -> None:
        if self._layer._clients.get(self.key) is self:
            del self._layer._clients[self.key]
        if self.target.reliable:
            users = self._layer._by_connection.get(self.target.connection_key)
            if users is not None:
                users.discard(self)
                if not users:
                    del self._layer._by_connection[self.target.connection_key]

    def connection_lost(self) -> None:
        """The connection the request went over closed before the transaction ended."""
        if self.terminated:
            return
        if self._busy:
            self._transport_failed = True
        else:
            self._feed(self._machine_transport_error())

    def response_received(self, response: Response) -> None:
        self._feed(self.machine.receive_response(response, self._layer.clock.seconds()))


class ServerTransaction(_Transaction):
    """A request we received, until the transaction ends (RFC 3261 §17.2).

    Answer it with :meth:`respond`. ``on_failure`` (if set) is told when the transaction fails:
    a transport error sending a response, or timer H (no ACK for a non-2xx final response).
    The request itself goes to the TU (:meth:`TransactionUser.request_received`) and is not
    kept here: a finished transaction lives on for up to 64*T1 to absorb retransmissions, and
    on a loaded server those lingering messages would dominate the heap.
    """

    __slots__ = (
        "_failure_reported",
        "_final_to_tag",
        "_last",
        "final_status",
        "flow",
        "method",
        "on_failure",
        "responded",
    )

    key: Union[ServerKey, Rfc2543Key]
    machine: ServerMachine

    def __init__(
        self,
        layer: TransactionLayer,
        method: str,
        flow: Flow,
        key: Union[ServerKey, Rfc2543Key],
        machine: ServerMachine,
    ) -> None:
        super().__init__(layer)
        self.method = method
        self.flow = flow
        self.key = key
        self.machine = machine
        self.on_failure: Optional[Callable[[FailureReason], None]] = None
        self._failure_reported = False
        #: Whether the TU has sent any response; the status of the first final one.
        self.responded = False
        self.final_status: Optional[int] = None
        self._final_to_tag: Optional[str] = None
        self._last: Optional[EncodedResponse] = None  # the last response sent, to retransmit

    def respond(self, response: Response) -> None:
        """Send a response (provisional or final). Raises ValueError when the state forbids it,
        or when the response has no Via to be sent by (RFC 3261 §18.2.2)."""
        if "Via" not in response.headers:
            raise ValueError("a response without a Via cannot be sent (RFC 3261 §18.2.2)")
        effects = self.machine.send_response(response, self._layer.clock.seconds())
        self.responded = True
        if response.status >= 200 and self.final_status is None:
            self.final_status = response.status
            if isinstance(self.key, Rfc2543Key):  # kept to match the ACK (§17.2.3)
                self._final_to_tag = response.to.tag
        self._feed(effects)

    @override
    def _transmit(self, effect: Transmit) -> Deferred[None]:
        message = effect.message
        assert isinstance(message, Response)
        transport = self._layer.transport
        self._last = encoded = transport.encode_response(message, self.flow)
        return transport.send_encoded_response(encoded, self.flow)

    @override
    def _retransmit(self) -> Deferred[None]:
        assert self._last is not None  # the machine retransmits only what it transmitted
        return self._layer.transport.send_encoded_response(self._last, self.flow)

    @override
    def _deliver(self, effect: DeliverToTU) -> None:
        ack = effect.message
        assert isinstance(ack, Request)
        self._layer.tu.ack_received(ack, self.flow)

    @override
    def _failed(self, reason: FailureReason) -> None:
        # An IST stays alive after a transport error (RFC 6026 §7.1) and may report several.
        if self._failure_reported:
            return
        self._failure_reported = True
        if self.on_failure is not None:
            try:
                self.on_failure(reason)
            except Exception:
                _log.failure("on_failure callback failed")

    @override
    def _remove(self) -> None:
        if self._layer._servers.get(self.key) is self:
            del self._layer._servers[self.key]

    def request_received(self, request: Request) -> None:
        self._feed(self.machine.receive_request(request, self._layer.clock.seconds()))


class TransactionLayer:
    """Live client and server transactions over a transport layer, for one TU."""

    def __init__(
        self,
        clock: IReactorTime,
        transport: RequestSender,
        tu: TransactionUser,
        settings: Optional[TimerSettings] = None,
        *,
        send_trying: bool = True,
    ) -> None:
        self.clock = clock
        self.transport = transport
        self.tu = tu
        self.settings = settings or TimerSettings()
        self.send_trying = send_trying
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[Union[ServerKey, Rfc2543Key], ServerTransaction] = {}
        #: Live client transactions by the connection their request went over (reliable only).
        self._by_connection: dict[tuple[str, str, int], set[ClientTransaction]] = {}
        # Every transaction timer, as (deadline, sequence, transaction key, timer letter, is
        # server): plain values, so the tens of thousands of timers of a loaded server cost the
        # garbage collector nothing. One FIFO per duration (StartTimer.after): timers of one
        # duration, started in time order, expire in that order, so starting and expiring one
        # costs O(1) where a heap of them all cost a log-n sift each way (on PyPy, in Python).
        # A stopped timer stays queued until its deadline and is skipped (its sequence is no
        # longer the transaction's). The earliest head is the one reactor wake-up.
        self._timer_queues: dict[float, deque[_TimerEntry]] = {}
        self._wakeup_at = math.inf
        self._timer_seq = itertools.count()
        self._wakeup: Optional[IDelayedCall] = None

    # ---- client side

    def send_request(
        self,
        request: Request,
        target: Target,
        on_response: Optional[Callable[[Response], None]] = None,
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (not ACK) towards ``target``.

        The request needs a top Via with a unique RFC 3261 branch; the transport layer fills in
        its transport and sent-by.
        """
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a transaction; use the transport layer")
        target = self.transport.prepare_request(request, target)
        now = self.clock.seconds()
        machine: ClientMachine
        if request.method == "INVITE":
            machine = InviteClientTransaction(
                request, reliable=target.reliable, settings=self.settings, now=now
            )
        else:
            machine = NonInviteClientTransaction(
                request, reliable=target.reliable, settings=self.settings, now=now
            )
        tsx = ClientTransaction(self, request, target, machine, on_response)
        if tsx.key in self._clients:
            raise ValueError("a client transaction with branch " + tsx.key[0] + " exists")
        self._clients[tsx.key] = tsx
        if target.reliable:
            self._by_connection.setdefault(target.connection_key, set()).add(tsx)
        tsx._feed(machine.start(now))
        return tsx

    # ---- from the transport layer (MessageReceiver)

    def response_received(self, response: Response, flow: Flow) -> None:
        try:
            key = client_key(response)
        except ParseError:
            return
        tsx = self._clients.get(key)
        if tsx is None:
            self.tu.stray_response(response, flow)
        else:
            tsx.response_received(response)

    def request_received(self, request: Request, flow: Flow) -> None:
        key = server_key(request)
        tsx = self._servers.get(key)
        if request.method == "ACK":
            if tsx is not None and self._ack_matches(tsx, request):
                tsx.request_received(request)
            else:
                self.tu.ack_received(request, flow)
            return
        if tsx is not None:
            tsx.request_received(request)  # a retransmission
            return
        now = self.clock.seconds()
        invite = request.method == "INVITE"
        machine: ServerMachine
        if invite:
            # The 100 (Trying) is sent below, once the TU has had its chance to answer at once.
            machine = InviteServerTransaction(
                request, reliable=flow.reliable, settings=self.settings, now=now, send_trying=False
            )
        else:
            machine = NonInviteServerTransaction(
                request, reliable=flow.reliable, settings=self.settings, now=now
            )
        tsx = ServerTransaction(self, request.method, flow, key, machine)
        self._servers[key] = tsx
        tsx._feed(machine.start(now))
        try:
            self.tu.request_received(tsx, request)
        finally:
            # §17.2.1: a 100 (Trying) unless the TU will answer within 200 ms; here it is known
            # whether it already has. A TU that answers later gets the 100 now.
            if invite and self.send_trying and not tsx.responded and not tsx.terminated:
                tsx.respond(build_response(request, 100, "Trying"))

    @staticmethod
    def _ack_matches(tsx: ServerTransaction, ack: Request) -> bool:
        if not isinstance(tsx.key, Rfc2543Key):
            return True
        return tsx.final_status is not None and tsx._final_to_tag == ack.to.tag

    def connection_lost(self, keys: list[tuple[str, str, int]]) -> None:
        """A connection closed: transactions still waiting on it fail (RFC 3261 §17.1.4).

        Without this a request written just before the peer closed (a refused client
        certificate, a crashed peer) would only fail at timer B or F.
        """
        for key in keys:
            for tsx in list(self._by_connection.pop(key, ())):
                tsx.connection_lost()

    def stop(self) -> None:
        """Drop every transaction and cancel its timers (the stack is shutting down)."""
        for tsx in [*self._clients.values(), *self._servers.values()]:
            tsx.cancel_timers()
        self._clients.clear()
        self._servers.clear()
        self._by_connection.clear()
        self._timer_queues.clear()
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self._wakeup_at = math.inf

    # ---- timers

    def _start_timer(self, tsx: _Transaction, effect: StartTimer) -> int:
        """Queue ``effect``'s timer for ``tsx``; returns its sequence number."""
        seq = next(self._timer_seq)
        at = effect.at
        queue = self._timer_queues.get(effect.after)
        if queue is None:
            queue = self._timer_queues[effect.after] = deque()
        entry = (at, seq, tsx.key, effect.timer._value_, isinstance(tsx, ServerTransaction))
        if queue and queue[-1][0] > at:
            # out of order (a StartTimer without its duration, or a clock that stepped back)
            bisect.insort(queue, entry)
        else:
            queue.append(entry)
        if at < self._wakeup_at:
            self._schedule_wakeup(at)
        return seq

    def _schedule_wakeup(self, at: float) -> None:
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup_at = at
        self._wakeup = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._run_timers)

    def _run_timers(self) -> None:
        self._wakeup = None
        self._wakeup_at = math.inf
        queues = self._timer_queues
        while True:
            now = self.clock.seconds() + _TIMER_SLACK
            due = []
            for queue in queues.values():
                while queue and queue[0][0] <= now:
                    due.append(queue.popleft())
            if not due:
                break
            due.sort()  # deadline, then start order: as one queue of them all would give them
            for _, seq, key, letter, server in due:
                table: Mapping[Any, _Transaction] = self._servers if server else self._clients
                tsx = table.get(key)
                if tsx is None or tsx._timers.get(letter) != seq:
                    continue
                del tsx._timers[letter]
                try:
                    tsx._fire(Timer(letter))
                except Exception:
                    _log.failure("transaction timer {timer} failed", timer=letter)
        if len(queues) > _MAX_IDLE_TIMER_QUEUES:
            for after in [after for after, queue in queues.items() if not queue]:
                del queues[after]
        heads = [queue[0][0] for queue in queues.values() if queue]
        if heads:
            self._schedule_wakeup(min(heads))

    # ---- lookups

    def find_invite(self, cancel: Request) -> Optional[ServerTransaction]:
        """The INVITE server transaction a CANCEL refers to (§9.2), if it is still live."""
        return self._servers.get(cancel_target_key(cancel))

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def server_count(self) -> int:
        return len(self._servers)
