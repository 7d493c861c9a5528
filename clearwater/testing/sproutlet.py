"""A fake sproutlet proxy for one transaction, to unit-test sproutlets (spec §2.2, §2.3, §2.7).

:class:`FakeTsxHelper` implements the whole
:class:`~clearwater.sip.sproutlet.SproutletTsxHelper` protocol in memory: what the
:class:`~clearwater.sip.sproutlet.SproutletTsx` does is recorded, and the test plays the rest of
the network, in the style of :mod:`twisted.internet.testing`::

    helper, tsx = run_tsx(MySproutlet("greeter"), invite)   # get_tsx + on_rx_initial_request
    assert [f.request.uri for f in helper.forks] == [...]    # send_request calls (forks)
    helper.respond(0, 180)                                   # on_rx_response(180, fork 0)
    helper.clock.advance(30)                                 # timers due: on_timer_expiry
    helper.cancel()                                          # on_rx_cancel(487, CANCEL)
    assert [r.status for r in helper.responses] == [180, 487]  # send_response calls

What it records:

- ``forks``: one :class:`FakeFork` per ``send_request``, its fork id being its index, with the
  request as sent, the responses fed to it, its state and whether it was cancelled or abandoned;
- ``responses``: every response the transaction sent upstream, as it sent it (the fake does
  not aggregate forks' responses, spec §2.6: that is the proxy's work);
- ``timers``: the running timers (:class:`FakeTimer`), on ``clock``, a ``task.Clock``.

Callbacks are delivered as the proxy delivers them: one at a time per transaction. A callback
may return an awaitable (``async def``); it is driven with ``Deferred.fromCoroutine``, and the
events that arrive while it waits (a response, a timer, a cancel) are queued until it finishes.
``on_tx_request`` and ``on_tx_response`` are delivered once the callback that sent the
message has finished, before any other event. After ``on_rx_cancel`` has finished, every
pending fork is cancelled, the timers stop and no other callback is delivered
(:attr:`FakeTsxHelper.ended`).

Failures are not swallowed. An exception from a callback (or from its awaitable) ends the
transaction as it does on the proxy (a 500 is sent upstream unless a final response was, and
no other callback is delivered); the fake also records it in ``failures`` and raises it from
the method that delivered the event (:func:`run_tsx`, :meth:`~FakeTsxHelper.respond`,
:meth:`~FakeTsxHelper.cancel`, ``clock.advance``). One that happens later, when an awaitable
resumes because the test fired a Deferred, is raised by the next of those calls or by
:meth:`~FakeTsxHelper.raise_failures`. Misuse the proxy would refuse also raises, inside the
sproutlet's code: a second final response, a second ``send_request`` for an in-dialog request,
an unknown fork id.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Callable, Optional, Union

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from clearwater.sip import NameAddr, Request, Response, SipUri, Uri, parse_sip_uri
from clearwater.sip._status import reason_phrase
from clearwater.sip.headers import ROUTE
from clearwater.sip.proxy import ForkState, host_key
from clearwater.sip.sproutlet import ErrorState, ForkStatus, Sproutlet, SproutletTsx
from clearwater.sip.transaction import build_cancel, build_response

__all__ = [
    "DEFAULT_LOCAL_HOSTNAME",
    "DEFAULT_TO_TAG",
    "FakeFork",
    "FakeTimer",
    "FakeTsxHelper",
    "run_tsx",
]

#: The sprout hostname a :class:`FakeTsxHelper` has unless told otherwise.
DEFAULT_LOCAL_HOSTNAME = "sprout.example.com"

#: The To tag of the responses a :class:`FakeTsxHelper` creates unless told otherwise.
DEFAULT_TO_TAG = "fake-tag"

_Event = Callable[[], object]


@attrs.define(eq=False)
class FakeFork:
    """One ``send_request`` call (fork ``fork_id``) and what happened to it since.

    :ivar request: the request as sent (the object the sproutlet passed, not a copy).
    :ivar responses: the responses the test fed to this fork, in order (dropped ones included).
    :ivar cancelled: ``(status, reason)`` of the first ``cancel_fork``, or None.
    :ivar abandoned: set by ``mark_pending_forks_as_abandoned``; later responses are dropped.
    """

    fork_id: int
    request: Request
    state: ForkState = ForkState.CALLING
    error_state: ErrorState = ErrorState.NONE
    responses: list[Response] = attrs.Factory(list)
    cancelled: Optional[tuple[int, str]] = None
    abandoned: bool = False

    @property
    def status(self) -> ForkStatus:
        """What ``fork_state(fork_id)`` returns."""
        return ForkStatus(self.state, self.error_state)


@attrs.frozen
class FakeTimer:
    """A running timer: its id, the ``context`` given to ``schedule_timer``, its duration and
    its call on the helper's clock (``call.getTime()`` is when it fires)."""

    timer_id: int
    context: object
    duration: float
    call: IDelayedCall


class FakeTsxHelper:
    """The :class:`~clearwater.sip.sproutlet.SproutletTsxHelper` of one transaction, in memory.

    ``request`` is the request the transaction received (kept unchanged: ``original_request``
    returns copies of it). ``service_name`` and ``local_hostname`` (the sprout hostname) make
    the default reflexive URI, ``sip:<service_name>.<local_hostname>;transport=tcp``;
    ``reflexive_uri`` replaces it. ``route`` is what ``route_hdr`` returns: the top Route the
    proxy removed (None: the Request-URI routed the request here). ``clock`` runs the timers
    (default: a new ``task.Clock``). ``to_tag`` is the To tag ``create_response`` adds.

    Create the tsx with this helper, then :meth:`start` it; :func:`run_tsx` does both.

    :ivar tsx: the transaction, once started.
    :ivar forks: a :class:`FakeFork` per ``send_request``, indexed by fork id.
    :ivar responses: what the transaction sent upstream, in order.
    :ivar timers: the running timers by id.
    :ivar failures: every exception a callback raised, as a ``Failure``.
    :ivar ended: True after ``on_rx_cancel`` or a failure: no callback runs any more.
    """

    def __init__(
        self,
        request: Request,
        *,
        service_name: str = "sproutlet",
        clock: Optional[Clock] = None,
        route: Union[NameAddr, str, None] = None,
        reflexive_uri: Union[SipUri, str, None] = None,
        local_hostname: str = DEFAULT_LOCAL_HOSTNAME,
        to_tag: str = DEFAULT_TO_TAG,
    ) -> None:
        self.request = request.copy()
        self.to_tag = to_tag
        self.service_name = service_name
        self.clock = clock if clock is not None else Clock()
        self.local_hostname = local_hostname
        self.route = NameAddr.parse(route) if isinstance(route, str) else route
        if reflexive_uri is None:
            reflexive_uri = SipUri(
                service_name + "." + local_hostname, params=(("transport", "tcp"),)
            )
        elif isinstance(reflexive_uri, str):
            reflexive_uri = parse_sip_uri(reflexive_uri)
        self.reflexive_uri: SipUri = reflexive_uri
        self.tsx: Optional[SproutletTsx] = None
        self.forks: list[FakeFork] = []
        self.responses: list[Response] = []
        self.timers: dict[int, FakeTimer] = {}
        self.failures: list[Failure] = []
        self.ended = False
        self._in_dialog = False
        self._next_timer_id = 1
        self._queue: deque[tuple[str, _Event]] = deque()
        self._tx_queue: deque[tuple[str, _Event]] = deque()
        self._waiting: Optional[Deferred[object]] = None  # the awaitable of the current callback
        self._pumping = False
        self._unraised: deque[Failure] = deque()

    # ---- what the test does

    def start(self, tsx: SproutletTsx, request: Optional[Request] = None) -> None:
        """Deliver the request to ``tsx``: ``on_rx_in_dialog_request`` if its To has a tag,
        else ``on_rx_initial_request``. ``request`` defaults to a copy of :attr:`request`."""
        if self.tsx is not None:
            raise RuntimeError("FakeTsxHelper.start: already started")
        self.tsx = tsx
        received = self.original_request() if request is None else request
        self._in_dialog = received.to.tag is not None
        if self._in_dialog:
            self._deliver("on_rx_in_dialog_request", lambda: tsx.on_rx_in_dialog_request(received))
        else:
            self._deliver("on_rx_initial_request", lambda: tsx.on_rx_initial_request(received))

    def respond(
        self,
        fork_id: int,
        status: int,
        reason: str = "",
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        to_tag: Optional[str] = None,
    ) -> Response:
        """Feed fork ``fork_id`` a response to its request (``build_response``, RFC 3261
        §8.2.6), with ``headers`` added, ``body``, and ``to_tag`` as To tag if the request's To
        has none; see :meth:`deliver_response`. Returns the response."""
        fork = self._fork(fork_id)
        response = build_response(fork.request, status, reason or reason_phrase(status))
        if to_tag is not None and status > 100 and fork.request.to.tag is None:
            response.headers.set("To", fork.request.to.with_param("tag", to_tag))
        for name, value in headers:
            response.headers.add(name, value)
        response.body = body
        self.deliver_response(fork_id, response)
        return response

    def deliver_response(self, fork_id: int, response: Response) -> None:
        """Feed ``response`` to fork ``fork_id``: ``on_rx_response(response, fork_id)``.

        The fork's state follows at once (1xx: PROCEEDING, else TERMINATED); the callback
        waits its turn. A 100 Trying is not delivered (the proxy absorbs it, RFC 3261 §16.7);
        nor is a response to an abandoned fork. Both are recorded in the fork's ``responses``.

        :raises ValueError: no such fork, or it has already terminated.
        :raises RuntimeError: the transaction has ended.
        """
        self._check_open()
        fork = self._fork(fork_id)
        if fork.abandoned:
            fork.responses.append(response)
            return
        if fork.state is ForkState.TERMINATED:
            raise ValueError("fork " + str(fork_id) + " has terminated: it takes no more responses")
        fork.responses.append(response)
        fork.state = ForkState.PROCEEDING if response.status < 200 else ForkState.TERMINATED
        if response.status == 100:
            return
        tsx = self._started()
        self._deliver("on_rx_response", lambda: tsx.on_rx_response(response, fork_id))

    def fail_fork(self, fork_id: int, error: ErrorState = ErrorState.TIMEOUT) -> Response:
        """Fork ``fork_id`` timed out or hit a transport error: the tsx gets a 408 on it (spec
        §2.2) and ``fork_state`` reports ``error``. Returns the 408."""
        if error is ErrorState.NONE:
            raise ValueError("fail_fork needs an ErrorState other than NONE")
        fork = self._fork(fork_id)
        if fork.state is not ForkState.TERMINATED:
            fork.error_state = error
        return self.respond(fork_id, 408)

    def cancel(self, status: int = 487, cancel: Optional[Request] = None) -> Optional[Request]:
        """The caller cancelled (487: ``on_rx_cancel(487, CANCEL)``, the CANCEL built from the
        request unless given) or went away (408: ``on_rx_cancel(408, None)``). When the
        callback has finished, the pending forks are cancelled and the transaction ends.
        Returns the CANCEL passed."""
        if status not in (408, 487):
            raise ValueError("on_rx_cancel takes 487 (CANCEL) or 408 (gone), not " + str(status))
        self._check_open()
        if status == 487 and cancel is None:
            cancel = build_cancel(self.request)
        elif status == 408:
            cancel = None
        tsx = self._started()
        self._deliver("on_rx_cancel", lambda: tsx.on_rx_cancel(status, cancel))
        return cancel

    def raise_failures(self) -> None:
        """Raise the oldest failure of a callback not raised yet; nothing if there is none."""
        if self._unraised:
            self._unraised.popleft().raiseException()

    @property
    def busy(self) -> bool:
        """True while a callback's awaitable has not finished (events queue meanwhile)."""
        return self._waiting is not None

    @property
    def sent_requests(self) -> list[Request]:
        """The requests sent, by fork id."""
        return [fork.request for fork in self.forks]

    @property
    def final_response(self) -> Optional[Response]:
        """The first final response sent upstream, if any."""
        return next((r for r in self.responses if r.status >= 200), None)

    # ---- SproutletTsxHelper

    def original_request(self) -> Request:
        return self.request.copy()

    def route_hdr(self) -> Optional[NameAddr]:
        return self.route

    def get_reflexive_uri(self) -> SipUri:
        return self.reflexive_uri

    def is_uri_reflexive(self, uri: Uri) -> bool:
        """True for a SIP URI with the reflexive URI's user, host and port, or for one on the
        local hostname with ``service=<service_name>``."""
        if not isinstance(uri, SipUri):
            return False
        host = host_key(uri.host)
        mine = self.reflexive_uri
        if host == host_key(mine.host) and (uri.user, uri.port) == (mine.user, mine.port):
            return True
        return host == host_key(self.local_hostname) and uri.param("service") == self.service_name

    def create_request(self) -> Request:
        """A request with the received one's method and Request-URI, and Max-Forwards 70."""
        return Request(self.request.method, self.request.uri, [("Max-Forwards", "70")])

    def clone_request(self, request: Request) -> Request:
        return request.copy()

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        """``build_response`` (RFC 3261 §8.2.6.1) with the default reason phrase, and
        :attr:`to_tag` as To tag (not on a 100, not if the request's To has one)."""
        response = build_response(request, status, reason or reason_phrase(status))
        if status > 100 and request.to.tag is None:
            response.headers.set("To", request.to.with_param("tag", self.to_tag))
        return response

    def send_request(self, request: Request) -> int:
        """Record a fork; its ``on_tx_request`` is queued. An in-dialog request may be sent
        on once (spec §2.2): a second call raises ValueError."""
        tsx = self._started()
        if self._in_dialog and self.forks:
            raise ValueError("an in-dialog request may be sent on at most once (spec §2.2)")
        fork = FakeFork(len(self.forks), request)
        self.forks.append(fork)
        self._enqueue_tx("on_tx_request", lambda: tsx.on_tx_request(request, fork.fork_id))
        return fork.fork_id

    def send_response(self, response: Response) -> None:
        """Record ``response`` as sent upstream; its ``on_tx_response`` is queued. Nothing may
        follow a final response but another 2xx (ValueError)."""
        tsx = self._started()
        final = self.final_response
        if final is not None and not (_is_2xx(final) and _is_2xx(response)):
            raise ValueError(
                "cannot send "
                + str(response.status)
                + " upstream: the final response "
                + str(final.status)
                + " was sent"
            )
        self.responses.append(response)
        self._enqueue_tx("on_tx_response", lambda: tsx.on_tx_response(response))

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        """Record the cancel on the fork. A non-INVITE fork terminates at once; an INVITE fork
        keeps its state until the test feeds its 487. A terminated fork is left alone."""
        fork = self._fork(fork_id)
        if fork.state is ForkState.TERMINATED or fork.cancelled is not None:
            return
        fork.cancelled = (status, reason)
        if fork.request.method != "INVITE":
            fork.state = ForkState.TERMINATED

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        for fork in self.forks:
            if fork.state is not ForkState.TERMINATED:
                self.cancel_fork(fork.fork_id, status, reason)

    def mark_pending_forks_as_abandoned(self) -> None:
        for fork in self.forks:
            if fork.state is not ForkState.TERMINATED:
                fork.abandoned = True
                fork.state = ForkState.TERMINATED

    def fork_state(self, fork_id: int) -> ForkStatus:
        return self._fork(fork_id).status

    def schedule_timer(self, context: object, duration: float) -> int:
        """A timer on :attr:`clock`; ``clock.advance`` fires it (``on_timer_expiry``)."""
        if duration < 0:
            raise ValueError("timer duration must not be negative: " + str(duration))
        timer_id = self._next_timer_id
        self._next_timer_id += 1
        call = self.clock.callLater(duration, self._fire_timer, timer_id)
        self.timers[timer_id] = FakeTimer(timer_id, context, duration, call)
        return timer_id

    def cancel_timer(self, timer_id: int) -> None:
        timer = self.timers.pop(timer_id, None)
        if timer is not None:
            timer.call.cancel()

    def timer_running(self, timer_id: int) -> bool:
        return timer_id in self.timers

    def get_routing_uri(self, request: Request) -> Uri:
        route = request.headers.first(ROUTE)
        return request.uri if route is None else route.uri

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        uri = base_uri.replace(host=self.local_hostname, port=None)
        return uri.with_param("lr").with_param("service", service)

    def get_local_hostname(self, uri: SipUri) -> str:
        """``uri``'s host with its first label removed when the rest is the local hostname."""
        label, dot, rest = uri.host.partition(".")
        if dot and label and host_key(rest) == host_key(self.local_hostname):
            return rest
        return uri.host

    # ---- internals

    def _started(self) -> SproutletTsx:
        if self.tsx is None:
            raise RuntimeError("FakeTsxHelper: start(tsx) first")
        return self.tsx

    def _check_open(self) -> None:
        self._started()
        if self.ended:
            raise RuntimeError("the transaction has ended: no more callbacks")

    def _fork(self, fork_id: int) -> FakeFork:
        if not 0 <= fork_id < len(self.forks):
            raise ValueError("no fork " + str(fork_id) + " (forks: " + str(len(self.forks)) + ")")
        return self.forks[fork_id]

    def _fire_timer(self, timer_id: int) -> None:
        timer = self.timers.pop(timer_id)
        tsx = self._started()
        self._deliver("on_timer_expiry", lambda: tsx.on_timer_expiry(timer.context))

    def _deliver(self, name: str, event: _Event) -> None:
        """Queue an event from outside the transaction, run what can run, raise a failure."""
        self._enqueue(name, event)
        self.raise_failures()

    def _enqueue(self, name: str, event: _Event) -> None:
        self._queue.append((name, event))
        self._pump()

    def _enqueue_tx(self, name: str, event: _Event) -> None:
        """Queue ``on_tx_*``: it runs right after the callback that sent the message, before
        any event from outside."""
        self._tx_queue.append((name, event))
        self._pump()

    def _pump(self) -> None:
        """Run queued events, one at a time, until one waits on an awaitable."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._waiting is None and not self.ended:
                if self._tx_queue:
                    name, event = self._tx_queue.popleft()
                elif self._queue:
                    name, event = self._queue.popleft()
                else:
                    break
                self._run(name, event)
        finally:
            self._pumping = False

    def _run(self, name: str, event: _Event) -> None:
        try:
            result = event()
        except Exception:
            self._finished(Failure(), name)  # type: ignore[no-untyped-call]  # untyped in Twisted
            return
        if result is None:
            self._finished(None, name)
        elif not inspect.isawaitable(result):
            error = TypeError(name + " returned " + type(result).__name__ + ", not an awaitable")
            self._finished(Failure(error), name)  # type: ignore[no-untyped-call]  # untyped in Twisted
        else:
            waiting = _as_deferred(result)
            self._waiting = waiting
            waiting.addBoth(self._awaited, name)

    def _awaited(self, result: object, name: str) -> None:
        self._waiting = None
        self._finished(result, name)  # the failure is kept, not left unhandled
        self._pump()

    def _finished(self, result: object, name: str) -> None:
        if isinstance(result, Failure):
            self.failures.append(result)
            self._unraised.append(result)
            if self.final_response is None:
                self.responses.append(self.create_response(self.request, 500))
            self._end(cancel_forks=name == "on_rx_cancel")
        elif name == "on_rx_cancel":
            self._end(cancel_forks=True)

    def _end(self, *, cancel_forks: bool) -> None:
        """No more callbacks: after ``on_rx_cancel`` (the pending forks cancelled too) or a
        failure. The timers stop."""
        if cancel_forks:
            self.cancel_pending_forks()
        for timer_id in list(self.timers):
            self.cancel_timer(timer_id)
        self.ended = True
        self._queue.clear()
        self._tx_queue.clear()


def run_tsx(
    sproutlet: Sproutlet,
    request: Request,
    *,
    alias: Optional[str] = None,
    clock: Optional[Clock] = None,
    route: Union[NameAddr, str, None] = None,
    reflexive_uri: Union[SipUri, str, None] = None,
    local_hostname: str = DEFAULT_LOCAL_HOSTNAME,
) -> tuple[FakeTsxHelper, SproutletTsx]:
    """``sproutlet.get_tsx`` and the request delivered to the tsx it returns, on a new
    :class:`FakeTsxHelper` (the keyword arguments are its own; the reflexive URI defaults to
    ``sproutlet.uri`` when set). ``alias`` defaults to the service name.

    :raises ValueError: ``get_tsx`` declined (returned None); call it yourself to test that.
    :raises Exception: what the callback raised (see :meth:`FakeTsxHelper.raise_failures`).
    """
    if reflexive_uri is None and sproutlet.uri:
        reflexive_uri = sproutlet.uri
    helper = FakeTsxHelper(
        request,
        service_name=sproutlet.service_name,
        clock=clock,
        route=route,
        reflexive_uri=reflexive_uri,
        local_hostname=local_hostname,
    )
    received = helper.original_request()
    tsx = sproutlet.get_tsx(helper, sproutlet.service_name if alias is None else alias, received)
    if tsx is None:
        raise ValueError(repr(sproutlet) + " declined the request: get_tsx returned None")
    helper.start(tsx, received)
    return helper, tsx


def _is_2xx(response: Response) -> bool:
    return 200 <= response.status < 300


def _as_deferred(awaitable: Awaitable[object]) -> Deferred[object]:
    if isinstance(awaitable, Deferred):
        return awaitable

    async def wait() -> object:
        return await awaitable

    return Deferred.fromCoroutine(wait())
