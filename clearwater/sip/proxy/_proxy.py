"""The stateful proxy shell (RFC 3261 §16): a transaction user that forwards requests.

:class:`Proxy` sits on a :class:`~clearwater.sip.stack.SipStack` like the UA core does, and runs
the pure steps of :mod:`._request` and the response context of :mod:`._context` in RFC order:

- a request (§16.3-§16.6): validated (416, 483, 420), checked for a loop (482), its Route
  preprocessed (§16.4), then sent to each target the router gives (parallel forking; one target
  by default: the Request-URI, or 404 when that is this proxy itself) with Max-Forwards
  decremented, an optional Record-Route, and a Via whose branch carries the loop-detection hash;
  the next hop is the first Route or the Request-URI, resolved with RFC 3263;
- responses (§16.7): each fork's responses go through the :class:`ResponseContext`, which says
  what goes upstream (2xx and provisional at once, the best final once no fork is pending) and
  which forks to CANCEL; a fork that times out or cannot be sent counts as a 408;
- CANCEL (§16.10): answered 200 and every pending fork cancelled (487 upstream), or 481;
- timer C (§16.8) per INVITE fork, on the reactor's clock;
- an ACK for a 2xx is forwarded statelessly (§16.11: it is a transaction of its own), and so
  would be a 2xx retransmission after the client transaction ended (they reach the TU through
  the RFC 6026 Accepted state while it lives).

What the proxy does with a request addressed to itself (registrar, location service, the
sproutlets of issue #4) belongs to the router and the layers above.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from clearwater._types import ISipReactor
from clearwater.sip import Request, Response, SipUri, Uri
from clearwater.sip import headers as h
from clearwater.sip.proxy._context import (
    CancelFork,
    Effect,
    ForkState,
    ResponseContext,
    SendUpstream,
    StartTimerC,
    StopTimerC,
    TerminateFork,
)
from clearwater.sip.proxy._request import (
    Locality,
    ack_is_forwardable,
    add_via,
    answer,
    branch_for,
    decrement_max_forwards,
    detect_loop,
    next_hop,
    preprocess_routes,
    record_route,
    validate_request,
)
from clearwater.sip.resolver import NoDns, SipResolver
from clearwater.sip.stack import SipStack
from clearwater.sip.transaction import build_cancel
from clearwater.sip.transaction.layer import ServerTransaction
from clearwater.sip.transaction.timers import TimerSettings
from clearwater.sip.transport import ListenSpec, Target, TransportSettings
from clearwater.sip.transport._types import Flow

__all__ = ["Proxy", "Router"]

_log = Logger()

#: Where a request goes: the Request-URIs of its forks (empty: 404).
Router = Callable[[Request], Sequence[Uri]]


class _Fork:
    __slots__ = ("request", "target", "timer_c")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.target: Optional[Target] = None  # once resolved and sent
        self.timer_c: Optional[IDelayedCall] = None


class _Proxied:
    """One request being proxied: its server transaction, response context and forks."""

    __slots__ = ("context", "forks", "received", "tsx")

    def __init__(self, tsx: ServerTransaction, received: Request, context: ResponseContext) -> None:
        self.tsx = tsx
        self.received = received  # as it arrived: synthetic responses and the loop hash use it
        self.context = context
        self.forks: list[_Fork] = []


class Proxy:
    """An RFC 3261 §16 stateful proxy on its own SIP stack.

    ``locality`` says which URIs are this proxy (Route values to remove, Request-URIs it is the
    target of); ``router`` picks the targets of a request (default: its Request-URI unless that
    is local); ``record_route`` keeps the proxy on the dialog's path; ``supported`` lists the
    Proxy-Require options it understands; ``outbound_proxy`` is the next hop of every request
    that has no Route left (an upstream proxy), instead of its Request-URI.
    """

    def __init__(
        self,
        reactor: ISipReactor,
        *,
        locality: Locality,
        resolver: Optional[SipResolver] = None,
        router: Optional[Router] = None,
        record_route: bool = False,
        outbound_proxy: Optional[SipUri] = None,
        supported: Collection[str] = (),
        transport_settings: Optional[TransportSettings] = None,
        timer_settings: Optional[TimerSettings] = None,
    ) -> None:
        self.reactor = reactor
        self.locality = locality
        self.router: Router = router or self._default_route
        self.record_route = record_route
        self.outbound_proxy = outbound_proxy
        self.supported = frozenset(s.lower() for s in supported)
        resolver = resolver or SipResolver(NoDns(), reactor)
        self.stack = SipStack(
            reactor,
            self,
            resolver=resolver,
            transport_settings=transport_settings,
            timer_settings=timer_settings,
        )
        self._proxied: dict[ServerTransaction, _Proxied] = {}  # until the final response

    def listen(self, spec: str) -> ListenSpec:
        return self.stack.listen(spec)

    def stop(self) -> object:
        for proxied in self._proxied.values():
            for fork in proxied.forks:
                _stop_timer(fork)
        self._proxied.clear()
        return self.stack.stop()

    # ---- TransactionUser

    def request_received(self, transaction: ServerTransaction, request: Request) -> None:
        if request.method == "CANCEL":
            self._cancel_received(transaction, request)
            return
        rejection = validate_request(request, supported=self.supported)
        if rejection is None and detect_loop(request, self._our_sent_by()):
            rejection = answer(request, 482, "Loop Detected")
        if rejection is not None:
            transaction.respond(rejection)
            return
        received = request.copy()
        preprocess_routes(request, self.locality)
        try:
            targets = list(self.router(request))
        except Exception:
            _log.failure("SIP router failed for {method}", method=request.method)
            transaction.respond(answer(received, 500, "Routing failed"))
            return
        if not targets:
            transaction.respond(answer(received, 404))
            return
        settings = self.stack.transactions.settings
        proxied = _Proxied(
            transaction, received, ResponseContext(received, timer_c=settings.timer_c)
        )
        self._proxied[transaction] = proxied
        for uri in targets:
            self._fork(proxied, request, uri)

    def ack_received(self, ack: Request, flow: Flow) -> None:
        """An ACK for a 2xx: forwarded statelessly (§16.11), or dropped if it is for us."""
        if not ack_is_forwardable(ack, supported=self.supported):
            return
        preprocess_routes(ack, self.locality)
        if ack.headers.first(h.ROUTE) is None and self._is_local(ack.uri):
            return
        decrement_max_forwards(ack)
        hop = self._next_hop(ack)
        add_via(ack, "UDP", "0.0.0.0", None, branch_for(ack, loop_detect=False))
        d = self.stack.resolver.resolve(hop)

        def send(targets: list[Target]) -> object:
            target = self.stack.transport.prepare_request(ack, targets[0])
            return self.stack.transport.send_request(ack, target)

        d.addCallback(send).addErrback(_log_failure, "ACK not forwarded")

    def stray_response(self, response: Response, flow: Flow) -> None:
        # A 2xx retransmission after its client transaction ended (64*T1 after the first 2xx):
        # the UAC has long had the 2xx and its own retransmissions; dropping it is safe.
        _log.debug("stray {status} response dropped", status=response.status)

    # ---- forks

    def _fork(self, proxied: _Proxied, request: Request, uri: Uri) -> None:
        fork = request.copy()
        fork.uri = uri
        decrement_max_forwards(fork)
        if self.record_route:
            inbound = self._own_uri(proxied.tsx.flow.transport)
            if inbound is not None:
                record_route(fork, inbound)
        hop = self._next_hop(fork)
        add_via(fork, "UDP", "0.0.0.0", None, branch_for(proxied.received))
        fork_id, effects = proxied.context.add_fork(self.reactor.seconds())
        proxied.forks.append(_Fork(fork))
        self._apply(proxied, effects)
        d = self.stack.resolver.resolve(hop)
        d.addCallback(self._send_fork, proxied, fork_id)
        d.addErrback(self._fork_failed, proxied, fork_id)

    def _send_fork(self, targets: list[Target], proxied: _Proxied, fork_id: int) -> None:
        fork = proxied.forks[fork_id]
        if proxied.context.fork_state(fork_id) is ForkState.TERMINATED:
            return  # cancelled while its next hop was being resolved
        tsx = self.stack.transactions.send_request(
            fork.request, targets[0], lambda r: self._response(proxied, fork_id, r)
        )
        fork.target = tsx.target
        tsx.result.addErrback(self._fork_failed, proxied, fork_id)

    def _response(self, proxied: _Proxied, fork_id: int, response: Response) -> None:
        response.headers.pop_first(h.VIA)  # ours (§16.7 step 3)
        if "Via" not in response.headers:
            # §16.7 step 3: meant for this element, not to be forwarded. A final one still
            # ends the fork: it fails (408) rather than waiting for a timeout.
            _log.info("response {status} with only our Via dropped", status=response.status)
            if response.status >= 200:
                now = self.reactor.seconds()
                self._apply(proxied, proxied.context.fork_failed(fork_id, now))
            return
        self._apply(proxied, proxied.context.response(fork_id, response, self.reactor.seconds()))

    def _fork_failed(self, reason: Failure, proxied: _Proxied, fork_id: int) -> None:
        _log.info("fork {fork} failed: {reason}", fork=fork_id, reason=reason.value)
        self._apply(proxied, proxied.context.fork_failed(fork_id, self.reactor.seconds()))

    def _timer_c(self, proxied: _Proxied, fork_id: int) -> None:
        proxied.forks[fork_id].timer_c = None
        self._apply(proxied, proxied.context.timer_c_fired(fork_id, self.reactor.seconds()))

    def _apply(self, proxied: _Proxied, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, SendUpstream):
                self._send_upstream(proxied, effect.response)
            elif isinstance(effect, CancelFork):
                self._cancel_fork(proxied, effect.fork_id, effect.reason)
            elif isinstance(effect, StartTimerC):
                fork = proxied.forks[effect.fork_id]
                _stop_timer(fork)
                delay = max(0.0, effect.at - self.reactor.seconds())
                fork.timer_c = self.reactor.callLater(delay, self._timer_c, proxied, effect.fork_id)
            elif isinstance(effect, (StopTimerC, TerminateFork)):
                _stop_timer(proxied.forks[effect.fork_id])

    def _send_upstream(self, proxied: _Proxied, response: Response) -> None:
        if response.status > 100 and response.to.tag is None:  # a response of our own (§8.2.6.2)
            response.headers.set("To", response.to.with_param("tag", secrets.token_hex(4)))
        try:
            proxied.tsx.respond(response)
        except ValueError as e:  # e.g. the upstream transaction has ended
            _log.info("response not sent upstream: {error}", error=e)
        if response.status >= 200:
            self._proxied.pop(proxied.tsx, None)

    def _cancel_fork(self, proxied: _Proxied, fork_id: int, reason: Optional[str]) -> None:
        fork = proxied.forks[fork_id]
        if fork.target is None:
            return  # never sent: nothing to cancel downstream
        cancel = build_cancel(fork.request)
        if reason is not None:
            cancel.headers.add("Reason", reason)
        tsx = self.stack.transactions.send_request(cancel, fork.target)
        tsx.result.addErrback(_log_failure, "CANCEL failed")

    def _cancel_received(self, transaction: ServerTransaction, cancel: Request) -> None:
        invite = self.stack.transactions.find_invite(cancel)
        proxied = self._proxied.get(invite) if invite is not None else None
        if proxied is None:
            transaction.respond(answer(cancel, 481))
            return
        transaction.respond(answer(cancel, 200))
        self._apply(proxied, proxied.context.cancel(self.reactor.seconds()))

    # ---- addresses

    def _default_route(self, request: Request) -> list[Uri]:
        if request.headers.first(h.ROUTE) is None and self._is_local(request.uri):
            return []
        return [request.uri]

    def _next_hop(self, request: Request) -> Uri:
        if self.outbound_proxy is not None and request.headers.first(h.ROUTE) is None:
            return self.outbound_proxy
        return next_hop(request)

    def _is_local(self, uri: Uri) -> bool:
        return isinstance(uri, SipUri) and self.locality.is_local(uri)

    def _own_uri(self, transport: str) -> Optional[SipUri]:
        address = self.stack.transport.local_address(transport)
        if address is None:
            return None
        host, port = address
        params: tuple[tuple[str, Optional[str]], ...] = ()
        if transport != "UDP":
            params = (("transport", transport.lower()),)
        return SipUri(host, port=port, params=params)

    def _our_sent_by(self) -> list[str]:
        return [
            ("[" + host + "]" if ":" in host else host) + ":" + str(port)
            for host, port in self.stack.transport.sent_by
        ]


def _stop_timer(fork: _Fork) -> None:
    if fork.timer_c is not None and fork.timer_c.active():
        fork.timer_c.cancel()
    fork.timer_c = None


def _log_failure(reason: Failure, what: str) -> None:
    _log.info("{what}: {reason}", what=what, reason=reason.value)
