"""The sproutlet proxy: sproutlets hosted on the RFC 3261 §16 proxy core (spec §2.4-§2.7).

:class:`SproutletProxy` is a transaction user on its own :class:`~clearwater.sip.stack.SipStack`,
like :class:`~clearwater.sip.proxy.Proxy`, whose requests go through sproutlets. It is Clearwater's
``SproutletProxy``, and each sproutlet invocation is a ``_Wrapper`` (Clearwater's
``SproutletWrapper``): the :class:`SproutletTsxHelper` its :class:`SproutletTsx` acts through, with
a :class:`~clearwater.sip.proxy.ResponseContext` in deliver mode for its forks.

A request, from the network or sent by a sproutlet, is matched (spec §2.4, :func:`match_sproutlet`)
on its top Route, else its Request-URI: a Route that designates this node but no sproutlet is
removed and the next one tried; a sproutlet whose ``get_tsx`` declines is passed over the same way.
A match is delivered **in process** to a new wrapper (no packet, no Via: spec §2.5), whose
``route_hdr()`` is the Route that matched; a request that matches nothing leaves on the network,
its next hop resolved with RFC 3263, with a Via whose branch carries the loop-detection hash of
the request as it first arrived (§16.6 step 8). A request from the network that matches nothing
and is addressed to this node gets a 404.

Per wrapper:

- **events are serialised**: requests, responses, CANCEL and timer pops are queued and each
  callback runs only when the previous one has finished; a callback may be ``async def`` (or return
  a Deferred), the next event waiting for it. Events of all wrappers run from one queue, so a chain
  of sproutlets does not nest on the Python stack;
- **forks**: each ``send_request`` is a fork (its id from the response context); it leaves after
  the callback that sent it has returned, once ``on_tx_request`` has seen it, with Max-Forwards
  decremented (each sproutlet is a hop; Max-Forwards 0 gives the fork a 483) and, in process, at
  the next depth (beyond ``max_sproutlet_depth``, default 50, a 483). An in-process INVITE fork is
  in Proceeding at once, as if the 100 Trying Clearwater sends at a network-function boundary had
  arrived: an in-process CANCEL cannot overtake its INVITE, so §9.1's wait is not needed. Timer C
  runs on the network forks only;
- **responses**: every response of a fork but a 100 goes to ``on_rx_response`` (a fork that times
  out or fails on transport as a 408, spec §2.2); what the sproutlet sends upstream is aggregated
  (:meth:`ResponseContext.aggregate`, spec §2.6) and the best final response goes once no fork is
  pending and the wrapper is idle;
- **CANCEL** received upstream (or the upstream transport failing: status 408, no request) goes to
  ``on_rx_cancel``, after which the pending forks are cancelled, the timers stopped and no callback
  runs any more; the response context answers (487 unless a 2xx or 6xx won);
- **failures**: an exception in a callback (or a failed awaitable) is logged and answered with a
  500 upstream if no final response went; the sproutlet gets no more callbacks. An exception in
  ``get_tsx`` is a 500 too, never a bypass of that sproutlet. A sproutlet that
  leaves a request with no response, no pending fork and no running timer gets a 500 too. Never a
  hung transaction.

An ACK for a 2xx has no transaction: it is matched like a request; a sproutlet that takes it gets
``on_rx_in_dialog_request`` and whatever it sends is forwarded statelessly (§16.11), as is an ACK
that matches nothing.
"""

from __future__ import annotations

import inspect
import secrets
from collections import deque
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, Protocol, Union

from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from clearwater._types import ISipReactor
from clearwater.errors import RequestTimedOut
from clearwater.sip import NameAddr, Request, Response, SipUri, Uri
from clearwater.sip import headers as h
from clearwater.sip._status import reason_phrase
from clearwater.sip.proxy import (
    CancelFork,
    Deliver,
    ResponseContext,
    SendUpstream,
    StartTimerC,
    StopTimerC,
    ack_is_forwardable,
    add_via,
    answer,
    branch_for,
    decrement_max_forwards,
    detect_loop,
    host_key,
    next_hop,
    preprocess_routes,
    validate_request,
)
from clearwater.sip.proxy._context import Effect
from clearwater.sip.resolver import NoDns, ResolutionError, SipResolver
from clearwater.sip.sproutlet._api import ErrorState, ForkStatus, Sproutlet, SproutletTsx
from clearwater.sip.sproutlet._matching import Match, ServiceTable, build_table, match_sproutlet
from clearwater.sip.stack import SipStack
from clearwater.sip.transaction import build_cancel, build_response
from clearwater.sip.transaction.layer import ServerTransaction
from clearwater.sip.transaction.timers import TimerSettings
from clearwater.sip.transport import ListenSpec, Target, TransportSettings
from clearwater.sip.transport._types import Flow

__all__ = ["DEFAULT_MAX_SPROUTLET_DEPTH", "ProxyObserver", "SproutletProxy"]

_log = Logger()

#: Spec §2.5: deeper chains of in-process hops get 483 Too Many Hops.
DEFAULT_MAX_SPROUTLET_DEPTH = 50

_Event = tuple[Callable[..., Optional[Deferred[Any]]], tuple[Any, ...]]


class _Locality:
    """This node's names (spec §2.4 "local"), and its ports: a URI is ours if its host is one
    of the names and it has no port or one of ours. Clearwater compares hosts only; the port
    check keeps a peer that shares our IP address (everything on loopback) from being taken for
    us."""

    __slots__ = ("hosts", "ports")

    def __init__(self, hosts: Iterable[str], ports: Collection[int]) -> None:
        self.hosts = frozenset(host_key(host) for host in hosts)
        self.ports = ports

    def is_local(self, uri: SipUri) -> bool:
        port = uri.port
        return host_key(uri.host) in self.hosts and (port is None or port in self.ports)


class SproutletProxy:
    """Sproutlets on an RFC 3261 §16 stateful proxy (Clearwater's ``SproutletProxy``).

    ``sproutlets`` are matched by name, alias and port (spec §2.4) against ``hostname`` (the
    sprout hostname: the root of the sproutlets' URIs) and ``local_hosts`` (local and public IP
    and hostname, home domains, the local alias list), and ``remote_hosts`` (the remote alias
    list), which requests from the network may use, and internal hops too when
    ``always_serve_remote_aliases`` (Clearwater's default) or when they stay in one network
    function (spec §2.4). ``root_uri`` is where in-dialog requests come back to this node (default
    ``sip:<hostname>``); a sproutlet's reflexive URI is it with the sproutlet's port if it has one,
    ``lr`` and ``service=<name>``. ``supported`` lists the Proxy-Require options understood.
    ``observer`` (optional) is told of each request received and response sent upstream, for
    metrics. ``edge_ports`` maps a port to the sproutlet that takes every request arriving
    there from the network, before and whatever its Route (an untrusted port, such as the
    all-in-one's phone port: no Route a phone writes can bypass that sproutlet).
    """

    def __init__(
        self,
        reactor: ISipReactor,
        sproutlets: Sequence[Sproutlet],
        *,
        hostname: str,
        local_hosts: Iterable[str] = (),
        remote_hosts: Iterable[str] = (),
        root_uri: Optional[SipUri] = None,
        resolver: Optional[SipResolver] = None,
        max_sproutlet_depth: int = DEFAULT_MAX_SPROUTLET_DEPTH,
        always_serve_remote_aliases: bool = True,
        supported: Collection[str] = (),
        transport_settings: Optional[TransportSettings] = None,
        timer_settings: Optional[TimerSettings] = None,
        observer: Optional[ProxyObserver] = None,
        edge_ports: Optional[Mapping[int, str]] = None,
    ) -> None:
        self.reactor = reactor
        self.hostname = hostname
        self.sproutlets = tuple(sproutlets)
        for sproutlet in self.sproutlets:  # spec §2.9: the default sproutlet URI
            if not sproutlet.uri:
                sproutlet.uri = "sip:" + sproutlet.service_name + "." + hostname + ";transport=tcp"
        hosts = [hostname, *local_hosts]
        self.table: ServiceTable = build_table(
            self.sproutlets, local_hosts=hosts, remote_hosts=remote_hosts
        )
        self._ports: set[int] = set()
        self.locality = _Locality(hosts, self._ports)
        self.root_uri = root_uri or SipUri(hostname)
        self._reflexive: dict[str, SipUri] = {}  # service name -> its reflexive URI
        self.max_sproutlet_depth = max_sproutlet_depth
        self.always_serve_remote_aliases = always_serve_remote_aliases
        self.supported = frozenset(s.lower() for s in supported)
        self.observer = observer
        self.stack = SipStack(
            reactor,
            self,
            resolver=resolver or SipResolver(NoDns(), reactor),
            transport_settings=transport_settings,
            timer_settings=timer_settings,
        )
        self.timer_c = self.stack.transactions.settings.timer_c
        self.edge_ports: dict[int, Sproutlet] = {}
        for port, name in (edge_ports or {}).items():
            edge = self.table.by_name.get(name.lower())
            if edge is None:
                raise ValueError("edge port " + str(port) + ": no sproutlet " + name)
            self.edge_ports[port] = edge
        self._roots: dict[ServerTransaction, _Wrapper] = {}  # INVITEs, for CANCEL
        self._live: set[_Wrapper] = set()
        self._ready: deque[_Wrapper] = deque()
        self._draining = False
        self._quiesced: Optional[Deferred[None]] = None

    def listen(self, spec: str) -> ListenSpec:
        listening = self.stack.listen(spec)
        self._ports.add(listening.port)
        return listening

    @property
    def active_transactions(self) -> int:
        """Sproutlet invocations and proxied requests not yet finished."""
        return len(self._live)

    @property
    def quiescing(self) -> bool:
        return self._quiesced is not None

    def quiesce(self) -> Deferred[None]:
        """Take no new work: from now on a request that would start a dialog or stand alone is
        answered 503 with Retry-After (RFC 3261 §21.5.4: the client tries another node), while
        requests inside dialogs, ACKs and CANCELs go on. Fires once no transaction is left;
        :meth:`stop` then loses nothing."""
        if self._quiesced is None:
            self._quiesced = Deferred()
        quiesced = self._quiesced
        if not self._live and not quiesced.called:
            quiesced.callback(None)
        return quiesced

    def stop(self) -> object:
        """Stop at once: every timer of every wrapper is cancelled and the stack stopped."""
        for wrapper in list(self._live):
            wrapper.stop_timers()
        self._live.clear()
        self._roots.clear()
        return self.stack.stop()

    # ---- TransactionUser

    def request_received(self, transaction: ServerTransaction, request: Request) -> None:
        if self.observer is not None:
            self.observer.request_received(request.method)
        if request.method == "CANCEL":
            self._cancel_received(transaction, request)
            return
        rejection = validate_request(request, supported=self.supported)
        if rejection is None and detect_loop(request, self._our_sent_by()):
            rejection = answer(request, 482, "Loop Detected")
        if rejection is None and self._quiesced is not None and request.to.tag is None:
            rejection = answer(request, 503, "Quiescing")
            rejection.headers.add("Retry-After", "0")
        if rejection is not None:
            self.respond(transaction, rejection)
            return
        # The transaction layer builds its 100 Trying from ``request`` after this returns: it
        # stays as received (also for the loop hash and our own responses); a copy goes on.
        received, request = request, request.copy()
        upstream = _ServerUpstream(self, transaction)
        edge = self.edge_ports.get(transaction.flow.local_port) if self.edge_ports else None
        root: Optional[_Wrapper]
        if edge is not None:
            wrapper = _Wrapper(
                self, upstream, request, received, 1, None, Match(edge, edge.service_name)
            )
            if not wrapper.taken:
                self.respond(transaction, answer(request, 403, "Not accepted here"))
                return
            root = wrapper
        else:
            root = self._route(request, upstream, received, 1, transaction.flow.local_port)
        if root is None:
            if request.headers.first(h.ROUTE) is None and self._is_local(request.uri):
                self.respond(transaction, self._for_this_node(request))
                return
            root = _Wrapper(self, upstream, request, received, 1, None, None)
        if request.method == "INVITE":
            self._roots[transaction] = root
        transaction.on_failure = lambda _: self._upstream_failed(root)
        if self.observer is not None:
            self.observer.transaction_started()
        self.drain()

    def _upstream_failed(self, root: _Wrapper) -> None:
        """The server transaction failed (transport error, or no ACK): as a CANCEL with 408."""
        root.post(root.rx_cancel, 408, None)
        self.drain()

    def ack_received(self, ack: Request, flow: Flow) -> None:
        """An ACK for a 2xx (§16.11): through the sproutlets that take it, then statelessly on."""
        if self.observer is not None:
            self.observer.request_received("ACK")
        if not ack_is_forwardable(ack, supported=self.supported):
            return
        received = ack.copy()
        if self._route(ack, None, received, 1, flow.local_port) is not None:
            self.drain()
        elif ack.headers.first(h.ROUTE) is not None or not self._is_local(ack.uri):
            decrement_max_forwards(ack)
            self.send_stateless(ack, received)

    def stray_response(self, response: Response, flow: Flow) -> None:
        _log.debug("stray {status} response dropped", status=response.status)

    # ---- routing (spec §2.4)

    def _route(
        self,
        request: Request,
        upstream: Optional[_Upstream],
        received: Request,
        depth: int,
        arrival_port: Optional[int],
        function: Optional[str] = None,
    ) -> Optional[_Wrapper]:
        """The wrapper of the sproutlet that takes ``request`` (spec §2.4), or None: it leaves
        on the network. The Routes that designate this node are removed from ``request`` on the
        way (§16.4), the last one being the matched sproutlet's ``route_hdr()``. Raises
        _TooManyHopsError for a match deeper than ``max_sproutlet_depth``. ``function`` is the
        network function of the sproutlet that sent the request (None: from the network)."""
        removed = preprocess_routes(request, self.locality)  # also §16.4's fix-ups
        while True:
            if removed is not None:
                top: Optional[NameAddr] = removed  # ours, and already off the request
                removed = None
            else:
                top = request.headers.first(h.ROUTE)
                if top is not None:
                    if not self._routes_here(top.uri, arrival_port, function):
                        return None  # someone else's Route: the request leaves by it
                    request.headers.pop_first(h.ROUTE)
            uri = request.uri if top is None else top.uri
            match = self._match(uri, arrival_port, function)
            if match is None and top is None and arrival_port is not None:
                # Spec §2.4 rule 4: with no Route, the sproutlet of the port it arrived on.
                owner = self.table.by_port.get(arrival_port)
                match = None if owner is None else Match(owner, owner.service_name)
            # Each sproutlet may decline once: next_service chains never loop.
            for _ in self.sproutlets:
                if match is None:
                    break
                if depth > self.max_sproutlet_depth:
                    raise _TooManyHopsError()
                wrapper = _Wrapper(self, upstream, request, received, depth, top, match)
                if wrapper.taken:
                    return wrapper
                match = self._next_service(match)
            if top is None:
                return None  # the Request-URI: no sproutlet (or one that declined)
            # A Route of ours that no sproutlet takes: on to the next one.

    def _next_service(self, declined: Match) -> Optional[Match]:
        """The sproutlet a declined request is handed to (``Sproutlet.next_service``)."""
        name = declined.sproutlet.next_service
        if not name:
            return None
        sproutlet = self.table.by_name.get(name.lower())
        if sproutlet is None:
            _log.warn(
                "sproutlet {name}: next service {next} is not loaded",
                name=declined.sproutlet.service_name,
                next=name,
            )
            return None
        return Match(sproutlet, name)

    def _match(
        self, uri: Uri, arrival_port: Optional[int], function: Optional[str] = None
    ) -> Optional[Match]:
        if (
            isinstance(uri, SipUri)
            and uri.port is not None
            and uri.port not in self._ports
            and host_key(uri.host) in self.locality.hosts
        ):
            return None  # our host but another process's port
        if function is None or self.always_serve_remote_aliases:
            return match_sproutlet(self.table, uri, arrival_port=arrival_port)
        match = match_sproutlet(self.table, uri, arrival_port=arrival_port, allow_remote=False)
        if match is not None:
            return match
        match = match_sproutlet(self.table, uri, arrival_port=arrival_port)
        if match is not None and match.sproutlet.network_function == function:
            return match  # a remote alias, but no network-function boundary
        return None

    def _routes_here(self, uri: Uri, arrival_port: Optional[int], function: Optional[str]) -> bool:
        """Whether a Route URI designates this node: one of its names, or a sproutlet's."""
        if not isinstance(uri, SipUri):
            return False
        return self.locality.is_local(uri) or self._match(uri, arrival_port, function) is not None

    def _for_this_node(self, request: Request) -> Response:
        """The answer to a request for this node that no sproutlet takes: 200 to an OPTIONS
        (a liveness poll, RFC 3261 §11), else 404."""
        if request.method != "OPTIONS":
            return answer(request, 404)
        response = answer(request, 200)
        response.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
        return response

    def _is_local(self, uri: Uri) -> bool:
        return isinstance(uri, SipUri) and self.locality.is_local(uri)

    def reflexive_uri(self, sproutlet: Sproutlet) -> SipUri:
        """A URI that routes back to ``sproutlet`` (spec §2.3 ``get_reflexive_uri``); made
        once per sproutlet (URIs are immutable)."""
        uri = self._reflexive.get(sproutlet.service_name)
        if uri is None:
            uri = self.root_uri
            if sproutlet.port:
                uri = uri.replace(port=sproutlet.port)
            uri = uri.with_param("lr").with_param("service", sproutlet.service_name)
            self._reflexive[sproutlet.service_name] = uri
        return uri

    # ---- the run queue

    def schedule(self, wrapper: _Wrapper) -> None:
        self._ready.append(wrapper)

    def drain(self) -> None:
        """Run the ready wrappers' events until none is left (not re-entrant)."""
        if self._draining:
            return
        self._draining = True
        try:
            ready = self._ready
            while ready:
                ready.popleft().run()
        finally:
            self._draining = False

    def started(self, wrapper: _Wrapper) -> None:
        self._live.add(wrapper)

    def finished(self, wrapper: _Wrapper) -> None:
        self._live.discard(wrapper)
        upstream = wrapper.upstream
        if isinstance(upstream, _ServerUpstream):
            self._roots.pop(upstream.transaction, None)
            if self.observer is not None:
                seconds = self.reactor.seconds() - wrapper.started_at
                self.observer.transaction_ended(wrapper.request.method, seconds)
        quiesced = self._quiesced
        if quiesced is not None and not self._live and not quiesced.called:
            quiesced.callback(None)

    # ---- CANCEL

    def _cancel_received(self, transaction: ServerTransaction, cancel: Request) -> None:
        invite = self.stack.transactions.find_invite(cancel)
        root = self._roots.get(invite) if invite is not None else None
        if root is None:
            self.respond(transaction, answer(cancel, 481))
            return
        self.respond(transaction, answer(cancel, 200))
        root.post(root.rx_cancel, 487, cancel)
        self.drain()

    # ---- the network side

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        if self.observer is not None:
            self.observer.response_sent(response.status)
        try:
            transaction.respond(response)
        except ValueError as e:  # e.g. the server transaction has ended
            _log.info("response not sent upstream: {error}", error=e)

    def send_on_network(self, wrapper: _Wrapper, fork: _Fork) -> None:
        request = fork.request
        hop = next_hop(request)
        add_via(request, "UDP", "0.0.0.0", None, branch_for(wrapper.received))
        targets = self.stack.resolver.resolve_literal(hop)
        if targets is None:
            d = self.stack.resolver.resolve(hop)
            d.addCallback(self._send_fork, fork)
            d.addErrback(self._fork_failed, fork)
            return
        try:
            self._send_fork(targets, fork)
        except Exception:
            self._fork_failed(Failure(), fork)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def _send_fork(self, targets: list[Target], fork: _Fork) -> None:
        if fork.ended or fork.owner is None:
            return  # cancelled while its next hop was being resolved
        # The client transaction lingers after its final response (up to 64*T1): it holds
        # the fork, not the wrapper, which goes as soon as it has finished.
        tsx = self.stack.transactions.send_request(
            fork.request, targets[0], lambda r: self._fork_response(fork, r)
        )
        fork.target = tsx.target
        # The final response reaches us through the callback above; the result Deferred is
        # only for failures, and must not keep that response while the transaction lingers.
        tsx.result.addCallbacks(_discard, self._fork_failed, errbackArgs=(fork,))

    def _fork_response(self, fork: _Fork, response: Response) -> None:
        response.headers.pop_first(h.VIA)  # ours (§16.7 step 3)
        wrapper = fork.owner
        if wrapper is None:
            self._late_response(fork, response)
            return
        if "Via" not in response.headers:
            # §16.7 step 3: meant for this element, not to be forwarded. A final one still
            # ends the fork: it fails (408) rather than waiting for a timeout.
            _log.info("response {status} with only our Via dropped", status=response.status)
            if response.status >= 200:
                fork.error = ErrorState.TRANSPORT_ERROR
                wrapper.post(wrapper.fork_failed, fork.fork_id)
                self.drain()
            return
        if response.status < 200:
            fork.provisional = True
            if fork.abandoned:
                self.send_cancel(fork, None)  # §9.1: now it may be CANCELled
        wrapper.post(wrapper.fork_response, fork.fork_id, response)
        self.drain()

    def _late_response(self, fork: _Fork, response: Response) -> None:
        """A response after its wrapper finished: an INVITE's 2xx (a retransmission, or
        another branch answering downstream) goes upstream statelessly by its Via (RFC 6026
        §7.2; no Via left: it was for us); anything else is dropped."""
        flow = fork.late_flow
        if flow is None or not 200 <= response.status < 300 or "Via" not in response.headers:
            return
        self.stack.transport.send_response(response, flow).addErrback(
            _log_failure, "late 2xx not forwarded"
        )

    def _fork_failed(self, reason: Failure, fork: _Fork) -> None:
        wrapper = fork.owner
        if wrapper is None:
            return
        if isinstance(reason.value, RequestTimedOut):
            fork.error = ErrorState.TIMEOUT
        elif isinstance(reason.value, ResolutionError):
            fork.error = ErrorState.NO_ADDRESSES
        else:
            fork.error = ErrorState.TRANSPORT_ERROR
        _log.info("fork {fork} failed: {reason}", fork=fork.fork_id, reason=reason.value)
        wrapper.post(wrapper.fork_failed, fork.fork_id)
        self.drain()

    def send_cancel(self, fork: _Fork, reason: Optional[str]) -> None:
        if fork.target is None:
            fork.ended = True  # never sent: nothing to cancel downstream
            return
        if fork.cancelled:
            return
        fork.cancelled = True
        cancel = build_cancel(fork.request)
        if reason is not None:
            cancel.headers.add("Reason", reason)
        tsx = self.stack.transactions.send_request(cancel, fork.target)
        tsx.result.addCallbacks(_discard, _log_failure, errbackArgs=("CANCEL failed",))

    def send_stateless(self, request: Request, received: Request) -> None:
        """Forward ``request`` (an ACK) with no transaction (§16.11)."""
        hop = next_hop(request)
        add_via(request, "UDP", "0.0.0.0", None, branch_for(received, loop_detect=False))

        def send(targets: list[Target]) -> Deferred[None]:
            target = self.stack.transport.prepare_request(request, targets[0])
            return self.stack.transport.send_request(request, target)

        targets = self.stack.resolver.resolve_literal(hop)
        if targets is None:
            d = self.stack.resolver.resolve(hop).addCallback(send)
        else:
            try:
                d = send(targets)
            except Exception:
                d = fail()
        d.addErrback(_log_failure, request.method + " not forwarded")

    def originate(self, request: Request) -> Deferred[Response]:
        """Send a request this node originates outside any proxied transaction (the S-CSCF's
        NOTIFYs, third-party REGISTERs): by its top Route, else its Request-URI (RFC 3263),
        over a client transaction with a Via of ours. Fires with the final response; fails
        with RequestTimedOut, TransportError or ResolutionError. Local sproutlets are not
        consulted: the request goes on the network, without the Routes at its top that name
        this node (a dialog's route set starts with our own Record-Route).

        It leaves on the reactor's next turn, so that the responses of the transaction that
        caused it go first (the 200 to a SUBSCRIBE before its first NOTIFY, RFC 6665
        §4.2.1.2; the 200 to a REGISTER before the NOTIFYs it causes)."""
        result: Deferred[Response] = Deferred()
        self.reactor.callLater(
            0, lambda: maybeDeferred(self._originate, request).chainDeferred(result)
        )
        return result

    def _originate(self, request: Request) -> Deferred[Response]:
        while True:
            top = request.headers.first(h.ROUTE)
            if (
                top is None
                or not isinstance(top.uri, SipUri)
                or not self._routes_here(top.uri, None, None)
            ):
                break
            request.headers.pop_first(h.ROUTE)
        hop = next_hop(request)
        add_via(request, "UDP", "0.0.0.0", None, "z9hG4bK" + secrets.token_hex(12))

        def send(targets: list[Target]) -> Deferred[Response]:
            return self.stack.transactions.send_request(request, targets[0]).result

        targets = self.stack.resolver.resolve_literal(hop)
        if targets is None:
            return self.stack.resolver.resolve(hop).addCallback(send)
        return send(targets)

    def start_timer_c(self, wrapper: _Wrapper, fork: _Fork, at: float) -> None:
        fork.stop_timer()
        delay = max(0.0, at - self.reactor.seconds())
        fork.timer_c = self.reactor.callLater(delay, self._timer_c, wrapper, fork)

    def _timer_c(self, wrapper: _Wrapper, fork: _Fork) -> None:
        fork.timer_c = None
        wrapper.post(wrapper.timer_c_fired, fork.fork_id)
        self.drain()

    def _our_sent_by(self) -> list[str]:
        return [
            ("[" + host + "]" if ":" in host else host) + ":" + str(port)
            for host, port in self.stack.transport.sent_by
        ]


class ProxyObserver(Protocol):
    """What the sproutlet proxy reports, for metrics (:class:`clearwater.metrics.SipMetrics`
    is one)."""

    def request_received(self, method: str) -> None:
        """A request arrived from the network."""

    def response_sent(self, status: int) -> None:
        """A response went to the network."""

    def transaction_started(self) -> None:
        """A request from the network started a transaction through the sproutlets."""

    def transaction_ended(self, method: str, seconds: float) -> None:
        """That transaction finished (final response sent, no fork or timer left)."""


class _TooManyHopsError(Exception):
    """A sproutlet matched deeper than ``max_sproutlet_depth`` (spec §2.5): 483."""


# --------------------------------------------------------------------------- upstream


class _ServerUpstream:
    """The network: the server transaction the request arrived on."""

    __slots__ = ("proxy", "transaction")

    def __init__(self, proxy: SproutletProxy, transaction: ServerTransaction) -> None:
        self.proxy = proxy
        self.transaction = transaction

    def respond(self, response: Response) -> None:
        self.proxy.respond(self.transaction, response)


class _ForkUpstream:
    """An in-process hop: fork ``fork_id`` of the wrapper upstream."""

    __slots__ = ("fork_id", "wrapper")

    def __init__(self, wrapper: _Wrapper, fork_id: int) -> None:
        self.wrapper = wrapper
        self.fork_id = fork_id

    def respond(self, response: Response) -> None:
        self.wrapper.post(self.wrapper.fork_response, self.fork_id, response)


_Upstream = Union[_ServerUpstream, _ForkUpstream]


# --------------------------------------------------------------------------- forks


class _Fork:
    """One ``send_request`` of a wrapper: queued until the callback that sent it returns, then
    in process (``wrapper``, the sproutlet downstream) or on the network (``network``)."""

    __slots__ = (
        "_request",
        "abandoned",
        "cancelled",
        "ended",
        "error",
        "fork_id",
        "late_flow",
        "network",
        "owner",
        "provisional",
        "target",
        "timer_at",
        "timer_c",
        "wrapper",
    )

    def __init__(self, owner: _Wrapper, fork_id: int, request: Request) -> None:
        self.owner: Optional[_Wrapper] = owner  # None once the owner has finished
        self.late_flow: Optional[Flow] = None  # then: where a late 2xx goes
        self.fork_id = fork_id
        self._request: Optional[Request] = request
        self.wrapper: Optional[_Wrapper] = None
        self.network = False
        self.target: Optional[Target] = None  # once resolved and sent
        self.timer_at: Optional[float] = None  # timer C's deadline until the fork leaves
        self.timer_c: Optional[IDelayedCall] = None
        self.error = ErrorState.NONE
        self.ended = False  # terminated: nothing more to send for it
        self.provisional = False  # a network fork had a provisional response
        self.cancelled = False  # a network fork's CANCEL went
        self.abandoned = False

    @property
    def request(self) -> Request:
        """The request sent; only until the owner finishes (:meth:`forget_request`)."""
        request = self._request
        assert request is not None, "fork request read after its wrapper finished"
        return request

    def forget_request(self) -> None:
        """The owner has finished: nothing will read the request again, and the fork may
        live on with a client transaction lingering for an INVITE's 2xx retransmissions."""
        self._request = None

    def stop_timer(self) -> None:
        self.timer_at = None
        if self.timer_c is not None and self.timer_c.active():
            self.timer_c.cancel()
        self.timer_c = None


# --------------------------------------------------------------------------- the wrapper


class _Wrapper:
    """One sproutlet invocation (Clearwater's ``SproutletWrapper``), or, with no sproutlet, a
    request forwarded on the network as a plain proxy would. It is the
    :class:`SproutletTsxHelper` of its :class:`SproutletTsx`."""

    def __init__(
        self,
        proxy: SproutletProxy,
        upstream: Optional[_Upstream],
        request: Request,
        received: Request,
        depth: int,
        route: Optional[NameAddr],
        match: Optional[Match],
    ) -> None:
        self.proxy = proxy
        self.upstream = upstream
        self.request = request  # given to the sproutlet (its Route removed), which may change it
        self.received = received  # as it first arrived from the network: for the loop hash
        self.depth = depth
        self.route = route
        self.started_at = proxy.reactor.seconds()
        #: The flow the request came in on from the network (None for an ACK).
        self.root_flow: Optional[Flow] = None
        if isinstance(upstream, _ServerUpstream):
            self.root_flow = upstream.transaction.flow
        elif isinstance(upstream, _ForkUpstream):
            self.root_flow = upstream.wrapper.root_flow
        self.sproutlet = None if match is None else match.sproutlet
        self.context: Optional[ResponseContext] = None
        self.forks: list[_Fork] = []
        self.timers: dict[int, IDelayedCall] = {}
        self._next_timer = 0
        self._events: deque[_Event] = deque()
        self._scheduled = False
        self._busy = False  # an awaitable callback is running
        self._running = False
        self._done = False
        self._tag = ""
        self.tsx: Optional[SproutletTsx] = None
        self.original = received  # no sproutlet: the request as it came from the network
        self.active = False  # whether the tsx gets callbacks
        self._broken = False  # get_tsx raised: the request is answered 500, never routed on
        if match is not None:
            try:
                self.tsx = match.sproutlet.get_tsx(self, match.alias, request)
            except Exception:
                _log.failure("sproutlet {name}: get_tsx failed", name=match.sproutlet.service_name)
                self._broken = True
            if self.tsx is None and not self._broken:
                return  # declined
            self.active = not self._broken
            self.original = request.copy()  # as received, for original_request()
        if upstream is not None:
            # Synthetic responses (408, 487) are built from the request as received; with no
            # sproutlet the context forwards and aggregates by itself (proxy mode).
            self.context = ResponseContext(
                self.original, timer_c=proxy.timer_c, deliver=self.tsx is not None
            )
        proxy.started(self)
        self.post(self.rx_request)

    @property
    def name(self) -> str:
        return "proxy" if self.sproutlet is None else self.sproutlet.service_name

    @property
    def taken(self) -> bool:
        """Whether the sproutlet took the request (False: get_tsx declined)."""
        return self.tsx is not None or self._broken

    # ---- the event queue

    def post(self, event: Callable[..., Optional[Deferred[Any]]], *args: Any) -> None:
        self._events.append((event, args))
        if not self._scheduled and not self._busy and not self._running:
            self._scheduled = True
            self.proxy.schedule(self)

    def run(self) -> None:
        self._scheduled = False
        self._running = True
        try:
            while True:
                while self._events and not self._busy:
                    event, args = self._events.popleft()
                    try:
                        result = event(*args)
                    except Exception:
                        self.crashed(Failure())  # type: ignore[no-untyped-call]  # untyped in Twisted
                        continue
                    if result is not None:
                        self._busy = True
                        result.addErrback(self.crashed).addBoth(self._resume)
                if self._busy:
                    return
                self.idle()
                if not self._events:
                    return
        finally:
            self._running = False

    def _resume(self, _: object) -> None:
        self._busy = False
        if not self._running and not self._scheduled:
            self._scheduled = True
            self.proxy.schedule(self)
            self.proxy.drain()

    def callback(
        self, method: Callable[..., Optional[Awaitable[None]]], *args: Any
    ) -> Optional[Deferred[Any]]:
        """Call a callback of the tsx; an awaitable becomes a Deferred the queue waits for."""
        if not self.active:
            return None
        result = method(*args)
        if result is None:
            return None
        if isinstance(result, Deferred) or inspect.iscoroutine(result):
            return ensureDeferred(result)
        raise TypeError(
            self.name + ": a callback returned " + type(result).__name__ + ", not an awaitable"
        )

    def then(
        self, result: Optional[Deferred[Any]], action: Callable[..., None], *args: Any
    ) -> Optional[Deferred[Any]]:
        """Run ``action`` once ``result`` (a callback's Deferred, or None) is done."""
        if result is None:
            action(*args)
            return None
        return result.addCallback(lambda _: action(*args))

    def idle(self) -> None:
        """No event left and no callback running: settle, answer the unanswered, or finish."""
        if self._done:
            return
        context = self.context
        if context is None:  # an ACK: nothing comes back
            self.finish()
            return
        self.apply(context.settle())
        if self._events:
            return
        if not context.final_sent and not context.pending_forks and not self.timers:
            _log.error(
                "sproutlet {name} left a {method} unanswered",
                name=self.name,
                method=self.request.method,
            )
            self.fail(500, "Sproutlet " + self.name + " sent no response")
            return
        if context.final_sent and not context.pending_forks and not self.timers:
            self.finish()

    def finish(self) -> None:
        """Done: final response sent, no fork pending, no timer. Whatever still comes for the
        forks is an INVITE's late 2xx, which goes upstream statelessly; nothing that lingers
        (client transactions, the server transaction) keeps the wrapper, the tsx or the
        sproutlets downstream alive, and no reference cycle is left for the garbage
        collector."""
        self._done = True
        self.stop_timers()
        self.proxy.finished(self)
        late_flow = self.root_flow if self.original.method == "INVITE" else None
        for fork in self.forks:
            fork.owner = None
            fork.wrapper = None
            fork.late_flow = late_flow
            fork.forget_request()
        upstream = self.upstream
        if isinstance(upstream, _ServerUpstream):
            upstream.transaction.on_failure = None
        self.tsx = None
        self.active = False

    def crashed(self, failure: Failure) -> None:
        _log.failure("sproutlet {name} failed", failure, name=self.name)
        self.fail(500, "Sproutlet " + self.name + " failed")

    def fail(self, status: int, reason: str) -> None:
        """Answer upstream with ``status`` at once (if no final went) and end the callbacks."""
        self.active = False
        self.stop_timers()
        context = self.context
        if context is None:
            return
        self._drop_unsent_forks()
        if not context.final_sent:
            self.apply(context.send_upstream(self.create_response(self.original, status, reason)))
        self.apply(context.stop_delivering())

    def _drop_unsent_forks(self) -> None:
        """Forks sent by a callback but not gone yet when the callbacks end (a failure, a
        CANCEL) never leave: each counts as failed (408)."""
        context = self.context
        assert context is not None
        now = self.proxy.reactor.seconds()
        for fork in self.forks:
            if not fork.ended and not fork.network and fork.wrapper is None:
                fork.ended = True
                self.apply(context.fork_failed(fork.fork_id, now))

    def stop_timers(self) -> None:
        for call in self.timers.values():
            if call.active():
                call.cancel()
        self.timers.clear()
        for fork in self.forks:
            fork.stop_timer()

    # ---- events

    def rx_request(self) -> Optional[Deferred[Any]]:
        request = self.request
        tsx = self.tsx
        if self._broken:
            # A sproutlet that cannot start its transaction must not be bypassed (it may be
            # the one that authenticates): 500, as for any exception in a sproutlet.
            self.fail(500, "Sproutlet " + self.name + " failed")
            return None
        if tsx is None:
            self.send_request(request)  # no sproutlet: forward it
            return None
        if request.to.tag is not None or request.method == "ACK":
            return self.callback(tsx.on_rx_in_dialog_request, request)
        return self.callback(tsx.on_rx_initial_request, request)

    def fork_response(self, fork_id: int, response: Response) -> None:
        context = self.context
        if context is not None:
            self.apply(context.response(fork_id, response, self.proxy.reactor.seconds()))

    def fork_failed(self, fork_id: int) -> None:
        context = self.context
        if context is not None:
            self.apply(context.fork_failed(fork_id, self.proxy.reactor.seconds()))

    def timer_c_fired(self, fork_id: int) -> None:
        context = self.context
        if context is not None:
            self.apply(context.timer_c_fired(fork_id, self.proxy.reactor.seconds()))

    def rx_response(self, response: Response, fork_id: int) -> Optional[Deferred[Any]]:
        if self.active and self.tsx is not None:
            return self.callback(self.tsx.on_rx_response, response, fork_id)
        if self.context is not None:  # delivered before the callbacks ended
            self.apply(self.context.aggregate(response))
        return None

    def rx_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Deferred[Any]]:
        context = self.context
        if context is None or context.final_sent:
            return None
        reason = None if cancel is None else cancel.headers.get("Reason")
        result = None
        if self.active and self.tsx is not None:
            # The caller has cancelled: a sproutlet failing in on_rx_cancel is logged, and the
            # cancel goes on (487 upstream, not a 500).
            try:
                result = self.callback(self.tsx.on_rx_cancel, status, cancel)
            except Exception:
                _log.failure("sproutlet {name}: on_rx_cancel failed", name=self.name)
            if result is not None:
                result.addErrback(self._cancel_callback_failed)
        return self.then(result, self._cancel_all, reason)

    def _cancel_callback_failed(self, failure: Failure) -> None:
        _log.failure("sproutlet {name}: on_rx_cancel failed", failure, name=self.name)

    def _cancel_all(self, reason: Optional[str]) -> None:
        self.active = False
        self.stop_timers()
        context = self.context
        if context is not None:
            self._drop_unsent_forks()
            self.apply(context.stop_delivering())
            self.apply(context.cancel(self.proxy.reactor.seconds(), reason))

    def timer_fired(self, timer_id: int, context: object) -> Optional[Deferred[Any]]:
        if self.timers.pop(timer_id, None) is None or self.tsx is None:
            return None  # cancelled meanwhile
        return self.callback(self.tsx.on_timer_expiry, context)

    def tx_request(self, fork: _Fork) -> Optional[Deferred[Any]]:
        result = None
        if self.tsx is not None:
            result = self.callback(self.tsx.on_tx_request, fork.request, fork.fork_id)
        return self.then(result, self._dispatch, fork)

    def tx_response(self, response: Response) -> Optional[Deferred[Any]]:
        result = None
        if self.tsx is not None:
            result = self.callback(self.tsx.on_tx_response, response)
        return self.then(result, self._respond, response)

    def _respond(self, response: Response) -> None:
        if self.upstream is None:
            return
        if response.status > 100 and response.to.tag is None:  # a response of our own
            response.headers.set("To", response.to.with_param("tag", self.to_tag))
        self.upstream.respond(response)

    # ---- effects

    def apply(self, effects: list[Effect]) -> None:
        proxy = self.proxy
        for effect in effects:
            if isinstance(effect, Deliver):
                self.post(self.rx_response, effect.response, effect.fork_id)
            elif isinstance(effect, SendUpstream):
                self.post(self.tx_response, effect.response)
            else:
                fork = self.forks[effect.fork_id]
                if isinstance(effect, CancelFork):
                    if fork.network:
                        proxy.send_cancel(fork, effect.reason)
                    elif fork.wrapper is not None:
                        cancel = build_cancel(fork.request)
                        if effect.reason is not None:
                            cancel.headers.add("Reason", effect.reason)
                        fork.wrapper.post(fork.wrapper.rx_cancel, 487, cancel)
                elif isinstance(effect, StartTimerC):
                    if fork.network:
                        proxy.start_timer_c(self, fork, effect.at)
                    elif fork.wrapper is None:
                        fork.timer_at = effect.at  # started when the fork leaves
                else:  # StopTimerC, or TerminateFork: its responses no longer count
                    fork.stop_timer()
                    if not isinstance(effect, StopTimerC):
                        fork.ended = True

    def _dispatch(self, fork: _Fork) -> None:
        """A fork leaves: in process to a sproutlet, or on the network (spec §2.5)."""
        if fork.ended:
            return  # ended before it left
        request = fork.request
        proxy = self.proxy
        context = self.context
        if request.max_forwards == 0:
            if context is not None:
                too_many = answer(request, 483, "Too Many Hops")
                self.post(self.fork_response, fork.fork_id, too_many)
            return
        decrement_max_forwards(request)
        upstream = None if context is None else _ForkUpstream(self, fork.fork_id)
        try:
            function = None if self.sproutlet is None else self.sproutlet.network_function
            wrapper = proxy._route(request, upstream, self.received, self.depth + 1, None, function)
        except _TooManyHopsError:
            if context is not None:
                too_many = answer(request, 483, "Too Many Hops")
                self.post(self.fork_response, fork.fork_id, too_many)
            return
        if wrapper is not None:
            fork.wrapper = wrapper
            fork.timer_at = None  # no timer C in process
            if context is not None and request.method == "INVITE":
                trying = build_response(request, 100, "Trying")
                self.apply(context.response(fork.fork_id, trying, proxy.reactor.seconds()))
        elif context is None:
            proxy.send_stateless(request, self.received)
        else:
            fork.network = True
            if fork.timer_at is not None:
                proxy.start_timer_c(self, fork, fork.timer_at)
            proxy.send_on_network(self, fork)

    # ---- SproutletTsxHelper

    def original_request(self) -> Request:
        return self.original.copy()

    def route_hdr(self) -> Optional[NameAddr]:
        return self.route

    def get_reflexive_uri(self) -> SipUri:
        if self.sproutlet is None:
            return self.proxy.root_uri.with_param("lr")
        return self.proxy.reflexive_uri(self.sproutlet)

    def is_uri_reflexive(self, uri: Uri) -> bool:
        match = self.proxy._match(uri, None)
        return match is not None and match.sproutlet is self.sproutlet

    def create_request(self) -> Request:
        return Request(self.original.method, self.original.uri, [("Max-Forwards", "70")])

    def clone_request(self, request: Request) -> Request:
        return request.copy()

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        response = build_response(request, status, reason or reason_phrase(status))
        if status > 100 and request.to.tag is None:
            response.headers.set("To", request.to.with_param("tag", self.to_tag))
        return response

    @property
    def to_tag(self) -> str:
        """The To tag of this transaction's own responses (one per transaction, §8.2.6.2)."""
        if not self._tag:
            self._tag = secrets.token_hex(4)
        return self._tag

    def send_request(self, request: Request) -> int:
        context = self.context
        if context is None:  # an ACK: no response context
            fork = _Fork(self, len(self.forks), request)
        else:
            fork_id, effects = context.add_fork(self.proxy.reactor.seconds())
            fork = _Fork(self, fork_id, request)
            self.forks.append(fork)
            self.apply(effects)
        if context is None:
            self.forks.append(fork)
        self.post(self.tx_request, fork)
        return fork.fork_id

    def send_response(self, response: Response) -> None:
        context = self.context
        if context is None:
            raise ValueError("an ACK has no response")
        self.apply(context.aggregate(response))

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        if self.context is not None:
            self.apply(self.context.cancel_fork(fork_id, _reason_header(status, reason)))

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        if self.context is not None:
            self.apply(self.context.cancel_pending_forks(_reason_header(status, reason)))

    def mark_pending_forks_as_abandoned(self) -> None:
        """The pending forks' responses no longer count; they are not left running either:
        an INVITE fork on the network is CANCELled (once it has had a provisional response,
        §9.1), one in process gets on_rx_cancel, one not sent yet never goes."""
        context = self.context
        if context is None:
            return
        invite = self.request.method == "INVITE"
        for fork_id in context.pending_forks:
            fork = self.forks[fork_id]
            fork.abandoned = True
            if fork.network:
                if invite and fork.provisional:
                    self.proxy.send_cancel(fork, None)
            elif fork.wrapper is not None:
                if invite:
                    cancel = build_cancel(fork.request)
                    fork.wrapper.post(fork.wrapper.rx_cancel, 487, cancel)
            else:
                fork.ended = True
        self.apply(context.mark_pending_forks_as_abandoned())

    def fork_state(self, fork_id: int) -> ForkStatus:
        if self.context is None:
            raise ValueError("an ACK's forks have no state")
        return ForkStatus(self.context.fork_state(fork_id), self.forks[fork_id].error)

    def schedule_timer(self, context: object, duration: float) -> int:
        timer_id = self._next_timer
        self._next_timer += 1
        self.timers[timer_id] = self.proxy.reactor.callLater(
            duration, self._timer_pop, timer_id, context
        )
        return timer_id

    def _timer_pop(self, timer_id: int, context: object) -> None:
        self.post(self.timer_fired, timer_id, context)
        self.proxy.drain()

    def cancel_timer(self, timer_id: int) -> None:
        call = self.timers.pop(timer_id, None)
        if call is not None and call.active():
            call.cancel()

    def timer_running(self, timer_id: int) -> bool:
        return timer_id in self.timers

    def get_routing_uri(self, request: Request) -> Uri:
        top = request.headers.first(h.ROUTE)
        return request.uri if top is None else top.uri

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        uri = base_uri.replace(host=self.proxy.hostname, port=None)
        return uri.with_param("lr").with_param("service", service)

    def get_local_hostname(self, uri: SipUri) -> str:
        host = uri.host
        label, dot, rest = host.partition(".")
        table = self.proxy.table
        if dot and label.lower() in table.by_name and host_key(rest) in table.local_hosts:
            return rest
        return host


def _reason_header(status: int, reason: str) -> Optional[str]:
    """RFC 3326 Reason header value for a status, or None for 0."""
    if not status:
        return None
    value = "SIP;cause=" + str(status)
    if reason:
        value += ';text="' + reason.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _discard(_: object) -> None:
    return None


def _log_failure(reason: Failure, what: str) -> None:
    _log.info("{what}: {reason}", what=what, reason=reason.value)
