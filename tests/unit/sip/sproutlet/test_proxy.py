"""SproutletProxy (spec §2.2-§2.7): sproutlets hosted on the proxy core.

Whole transactions over in-memory UDP on a fake clock: Alice sends through the proxy (her
outbound proxy), Bob and Carol answer, and the tests assert on the datagrams each host wrote
and on what the sproutlets' callbacks saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, Union, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.sip import NameAddr, Request, Response, SipUri, parse_message, parse_uri
from clearwater.sip.proxy import ForkState
from clearwater.sip.sproutlet import (
    DEFAULT_MAX_SPROUTLET_DEPTH,
    AppServer,
    AppServerTsx,
    AppServerTsxHelper,
    ErrorState,
    ForkStatus,
    ProxyObserver,
    Sproutlet,
    SproutletAppServerShim,
    SproutletProxy,
    SproutletTsx,
    SproutletTsxHelper,
)
from clearwater.sip.transaction import FailureReason, TimerSettings, build_cancel, build_response
from clearwater.sip.ua import CallFailedError, IncomingRequest, OutgoingCall, UserAgent
from clearwater.testing import LossyDatagramLink, SipMemoryReactor, drop_matching

ALICE, BOB, PROXY, CAROL, NOWHERE = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.9"
SPROUT = "sprout.example.com"
BOB_URI, CAROL_URI = "sip:bob@" + BOB + ":5060", "sip:carol@" + CAROL + ":5060"
SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'

Message = Union[Request, Response]
Handler = Callable[[IncomingRequest], object]
TsxFactory = Callable[[SproutletTsxHelper], Optional[SproutletTsx]]


# --------------------------------------------------------------------------- the peers


def answer(status: int, seen: Optional[list[IncomingRequest]] = None) -> Handler:
    """A UA handler answering ``status`` (after a 180 for an INVITE it accepts)."""

    def handler(incoming: IncomingRequest) -> None:
        if seen is not None:
            seen.append(incoming)
        if incoming.request.method == "INVITE" and status < 300:
            incoming.respond(180)
        incoming.respond(status, body=incoming.request.body if status < 300 else b"")

    return handler


def ring(incoming: IncomingRequest) -> None:
    """A UA handler that rings and never answers."""
    incoming.respond(180)


# --------------------------------------------------------------------------- sproutlets


class Service(Sproutlet):
    """A sproutlet whose transactions are ``make(helper)``; it keeps what get_tsx was given."""

    def __init__(
        self,
        name: str,
        make: TsxFactory = SproutletTsx,
        *,
        port: int = 0,
        aliases: Sequence[str] = (),
        network_function: Optional[str] = None,
        next_service: str = "",
    ) -> None:
        super().__init__(
            name,
            port,
            aliases=aliases,
            network_function=network_function,
            next_service=next_service,
        )
        self.make = make
        self.invocations: list[tuple[str, Request]] = []  # (alias, request)
        self.tsxs: list[SproutletTsx] = []

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        self.invocations.append((alias, request.copy()))
        tsx = self.make(helper)
        if tsx is not None:
            self.tsxs.append(tsx)
        return tsx


class Logged(SproutletTsx):
    """The default (forwarding) behaviour, each callback noted in ``log`` as ``name: event``."""

    def __init__(self, helper: SproutletTsxHelper, log: list[str], name: str = "") -> None:
        super().__init__(helper)
        self.log = log
        self.name = name
        self.received: Optional[Request] = None

    def note(self, event: str) -> None:
        self.log.append(self.name + ": " + event if self.name else event)

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        self.received = request.copy()
        self.send_request(request)

    @override
    def on_rx_in_dialog_request(self, request: Request) -> None:
        self.note("in-dialog " + request.method)
        self.send_request(request)

    @override
    def on_rx_response(self, response: Response, fork_id: int) -> None:
        self.note("response " + str(response.status) + " on fork " + str(fork_id))
        self.send_response(response)

    @override
    def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> None:
        method = "no request" if cancel is None else cancel.method
        self.note("cancel " + str(status) + " " + method)

    @override
    def on_timer_expiry(self, context: object) -> None:
        self.note("timer " + str(context))


class Answer(Logged):
    """Answers every initial request itself with ``status`` and ``reason``."""

    def __init__(self, helper: SproutletTsxHelper, status: int = 200, reason: str = "") -> None:
        super().__init__(helper, [])
        self.status = status
        self.reason = reason
        self.route: Optional[NameAddr] = None

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.received = request.copy()
        self.route = self.route_hdr()
        self.send_response(self.create_response(request, self.status, self.reason))


def matched_route(service: Service) -> SipUri:
    """The route_hdr() the first Answer transaction of ``service`` saw."""
    tsx = service.tsxs[0]
    assert isinstance(tsx, Answer) and tsx.route is not None
    assert isinstance(tsx.route.uri, SipUri)
    return tsx.route.uri


def answering(status: int = 200, reason: str = "") -> TsxFactory:
    return lambda helper: Answer(helper, status, reason)


class ToService(Logged):
    """Sends every initial request on to the local service ``target`` (a Route built with
    ``next_hop_uri``), with an ``X-Hop: <name>`` header added."""

    def __init__(self, helper: SproutletTsxHelper, log: list[str], name: str, target: str):
        super().__init__(helper, log, name)
        self.target = target

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        self.received = request.copy()
        request.headers.add("X-Hop", self.name)
        assert isinstance(request.uri, SipUri)
        route = self.next_hop_uri(self.target, request.uri)
        request.headers.prepend("Route", "<" + str(route) + ">")
        self.send_request(request)


class Fork(Logged):
    """Forks every initial request to ``targets`` in parallel (one clone each)."""

    def __init__(self, helper: SproutletTsxHelper, log: list[str], targets: Sequence[str]):
        super().__init__(helper, log)
        self.targets = targets

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        for target in self.targets:
            fork = self.clone_request(request)
            fork.uri = parse_uri(target)
            self.send_request(fork)


def forking(log: list[str], *targets: str) -> TsxFactory:
    return lambda helper: Fork(helper, log, targets)


def to_service(log: list[str], name: str, target: str) -> TsxFactory:
    return lambda helper: ToService(helper, log, name, target)


# --------------------------------------------------------------------------- the network


class Net:
    """Alice, Bob and Carol around a SproutletProxy (listening on ``ports`` of PROXY, given
    ``options``); every pair of UDP ports is linked. Alice's outbound proxy is
    PROXY:``alice_via``."""

    def __init__(
        self,
        *sproutlets: Sproutlet,
        bob: Handler = ring,
        carol: Handler = ring,
        hostname: str = PROXY,
        local_hosts: Iterable[str] = (),
        ports: Sequence[int] = (5060,),
        alice_via: int = 5060,
        timer_c: float = 180.0,
        **options: Any,
    ) -> None:
        self.reactor = SipMemoryReactor()
        reactor = cast(ISipReactor, self.reactor)
        outbound = "sip:" + PROXY + ":" + str(alice_via)
        self.alice = UserAgent(reactor, user="alice", outbound_proxy=outbound)
        self.bob = UserAgent(reactor, user="bob", handler=bob)
        self.carol = UserAgent(reactor, user="carol", handler=carol)
        self.proxy = SproutletProxy(
            reactor,
            sproutlets,
            hostname=hostname,
            local_hosts=local_hosts,
            timer_settings=TimerSettings(timer_c=timer_c),
            **options,
        )
        for ua, host in ((self.alice, ALICE), (self.bob, BOB), (self.carol, CAROL)):
            ua.listen("udp:" + host + ":5060")
        for port in ports:
            self.proxy.listen("udp:" + PROXY + ":" + str(port))
        listeners = self.reactor.udp_listeners
        self.links = [
            LossyDatagramLink(a, b)
            for i, a in enumerate(listeners)
            for b in listeners[i + 1 :]
            if a.interface != b.interface
        ]

    def pump(self) -> None:
        while sum(link.pump() for link in self.links) > 0:
            pass

    def run(self, seconds: float, step: float = 0.25) -> None:
        """Advance the clock by ``seconds``, delivering datagrams after each step."""
        end = self.reactor.seconds() + seconds
        while self.reactor.seconds() < end:
            self.reactor.advance(step)
            self.pump()

    def written(self, host: str, to: Optional[str] = None) -> list[tuple[Message, tuple[str, int]]]:
        """Every message ``host`` wrote (to host ``to`` only, if given), with its destination."""
        out = []
        for listener in self.reactor.udp_listeners:
            if listener.interface != host:
                continue
            for data, (dest, port) in listener.written:
                if to is None or dest == to:
                    out.append((parse_message(data), (dest, port)))
        return out

    def messages(self, host: str, to: str) -> list[Message]:
        return [message for message, _ in self.written(host, to)]

    def sent(self, host: str, to: Optional[str] = None, *, trying: bool = True) -> list[str]:
        """What ``host`` sent (to ``to`` only, if given), as ``INVITE`` / ``200 INVITE``;
        without the 100s unless ``trying`` (the transaction layer's, sent only when the proxy
        did not answer at once)."""
        sent = [_summary(message) for message, _ in self.written(host, to)]
        return sent if trying else [s for s in sent if not s.startswith("100 ")]

    def requests(self, host: str, to: str, method: str) -> list[Request]:
        return [m for m in self.messages(host, to) if isinstance(m, Request) and m.method == method]

    def request(
        self, method: str, uri: str, *, routes: Sequence[str] = (), max_forwards: int = 70
    ) -> Deferred[Response]:
        """Alice sends ``method`` to ``uri`` with these Routes; fires with the final response."""
        request = self.alice.create_request(method, uri)
        for route in routes:
            request.headers.add("Route", route)
        request.headers.set("Max-Forwards", str(max_forwards))
        d = self.alice.send(request)
        self.pump()
        return d

    def invite(self, uri: str, *, routes: Sequence[str] = ()) -> OutgoingCall:
        call = self.alice.invite(uri, body=SDP, headers=[("Route", r) for r in routes])
        self.pump()
        return call


def _summary(message: Message) -> str:
    if isinstance(message, Response):
        return str(message.status) + " " + message.cseq.method
    return message.method


def route_to(service: str, host: str = PROXY) -> str:
    return "<sip:" + host + ";lr;service=" + service + ">"


class ProxyTestCase(SynchronousTestCase):
    def final(self, d: Deferred[Response]) -> Response:
        response = self.successResultOf(d)
        assert isinstance(response, Response)
        return response

    def call_failed(self, call: OutgoingCall) -> Response:
        error = self.failureResultOf(call.answered, CallFailedError).value  # type: ignore[no-untyped-call]
        assert isinstance(error, CallFailedError)
        return error.response

    def logged_errors(self, *types: type[BaseException]) -> list[Failure]:
        """The failures logged so far of these types (flushed: they do not fail the test)."""
        return cast("list[Failure]", self.flushLoggedErrors(*types))  # type: ignore[no-untyped-call]

    def assert_idle(self, net: Net) -> None:
        assert net.proxy.active_transactions == 0


# --------------------------------------------------------------------------- this node


class LocalTests(ProxyTestCase):
    def test_a_sproutlet_answers_an_options_itself(self) -> None:
        net = Net(Service("greeter", answering(200, "Hi")))
        response = self.final(net.request("OPTIONS", "sip:greeter@" + PROXY))
        assert (response.status, response.reason) == (200, "Hi")
        assert response.to.tag
        assert len(response.vias) == 1
        # One packet from the proxy, the answer; nothing went anywhere else.
        assert net.sent(PROXY) == ["200 OPTIONS"]
        assert net.sent(PROXY, to=ALICE) == ["200 OPTIONS"]
        self.assert_idle(net)

    def test_options_for_the_proxy_itself_gets_200_with_allow(self) -> None:
        greeter = Service("greeter", answering())
        net = Net(greeter)
        response = self.final(net.request("OPTIONS", "sip:" + PROXY))
        assert response.status == 200
        assert response.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS"
        assert response.to.tag
        assert greeter.invocations == []
        self.assert_idle(net)

    def test_another_request_for_the_proxy_itself_gets_404(self) -> None:
        greeter = Service("greeter", answering())
        net = Net(greeter)
        for method in ("MESSAGE", "INFO"):
            response = self.final(net.request(method, "sip:" + PROXY + ":5060"))
            assert response.status == 404, method
        assert greeter.invocations == []
        assert net.sent(PROXY) == ["404 MESSAGE", "404 INFO"]
        self.assert_idle(net)

    def test_a_request_for_nobody_local_is_forwarded(self) -> None:
        bob: list[IncomingRequest] = []
        greeter = Service("greeter", answering())
        net = Net(greeter, bob=answer(200, bob))
        response = self.final(net.request("MESSAGE", BOB_URI))
        assert response.status == 200 and len(response.vias) == 1
        assert greeter.invocations == []
        [message] = net.requests(PROXY, BOB, "MESSAGE")
        assert str(message.uri) == BOB_URI
        assert message.max_forwards == 69
        assert len(message.vias) == 2 and message.top_via.host == PROXY
        assert net.sent(PROXY) == ["MESSAGE", "200 MESSAGE"]
        self.assert_idle(net)


# --------------------------------------------------------------------------- matching (§2.4)


class MatchingTests(ProxyTestCase):
    def test_the_service_parameter_of_our_route(self) -> None:
        greeter = Service("greeter", answering(200, "Hi"))
        net = Net(greeter, bob=answer(200))
        route = "<sip:" + PROXY + ";lr;service=greeter;orig>"
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route]))
        assert (response.status, response.reason) == (200, "Hi")
        assert net.sent(PROXY, to=BOB) == []
        [(alias, request)] = greeter.invocations
        assert alias == "greeter"
        assert request.headers.get("Route") is None  # removed before the sproutlet saw it
        assert str(request.uri) == BOB_URI
        matched = matched_route(greeter)
        assert matched == parse_uri(route[1:-1])  # route_hdr(): the Route that matched
        assert matched.param("service") == "greeter"
        self.assert_idle(net)

    def test_the_first_host_label_of_a_dns_hostname(self) -> None:
        greeter = Service("greeter", answering(200, "by label"))
        net = Net(greeter, hostname=SPROUT, local_hosts=[PROXY])
        by_route = net.request("MESSAGE", BOB_URI, routes=["<sip:greeter." + SPROUT + ";lr>"])
        by_uri = net.request("MESSAGE", "sip:greeter." + SPROUT)
        for d in (by_route, by_uri):
            response = self.final(d)
            assert (response.status, response.reason) == (200, "by label")
        assert [alias for alias, _ in greeter.invocations] == ["greeter", "greeter"]
        assert net.sent(PROXY, to=BOB) == []
        assert str(matched_route(greeter)) == "sip:greeter." + SPROUT + ";lr"
        # get_local_hostname strips a sproutlet's label, and only that.
        tsx = greeter.tsxs[0]
        assert tsx.get_local_hostname(SipUri("greeter." + SPROUT)) == SPROUT
        assert tsx.get_local_hostname(SipUri("other." + SPROUT)) == "other." + SPROUT
        self.assert_idle(net)

    def test_the_user_part_and_an_alias(self) -> None:
        greeter = Service("greeter", answering(200, "Hi"), aliases=["hello"])
        net = Net(greeter, hostname=SPROUT, local_hosts=[PROXY], bob=answer(200))
        assert self.final(net.request("OPTIONS", "sip:HELLO@" + SPROUT)).reason == "Hi"
        assert self.final(net.request("OPTIONS", "sip:greeter@" + PROXY)).reason == "Hi"
        assert [alias for alias, _ in greeter.invocations] == ["hello", "greeter"]
        # The user part counts only at one of our hosts: at Bob's the request goes to Bob.
        response = self.final(net.request("OPTIONS", "sip:greeter@" + BOB + ":5060"))
        assert response.status == 200 and response.reason != "Hi"
        assert net.sent(PROXY, to=BOB) == ["OPTIONS"]
        assert len(greeter.invocations) == 2
        self.assert_idle(net)

    def test_the_arrival_port(self) -> None:
        scscf = Service("scscf", answering(200, "S-CSCF"), port=5054)
        net = Net(scscf, ports=(5060, 5054), alice_via=5054)
        # For this node, arriving on 5054: the port's sproutlet.
        response = self.final(net.request("OPTIONS", "sip:" + PROXY))
        assert (response.status, response.reason) == (200, "S-CSCF")
        assert len(scscf.invocations) == 1
        # The same through 5060 is for the proxy itself...
        other = Net(Service("scscf", answering(200, "S-CSCF"), port=5054), ports=(5060, 5054))
        response = self.final(other.request("OPTIONS", "sip:" + PROXY))
        assert response.reason != "S-CSCF" and response.headers.get("Allow") is not None
        # ... unless its Route names the port.
        route = "<sip:" + PROXY + ":5054;lr>"
        response = self.final(other.request("MESSAGE", BOB_URI, routes=[route]))
        assert (response.status, response.reason) == (200, "S-CSCF")
        assert other.sent(PROXY, to=BOB) == []
        self.assert_idle(net)
        self.assert_idle(other)

    def test_the_arrival_port_takes_a_request_for_elsewhere_without_a_route(self) -> None:
        scscf = Service("scscf", answering(200, "S-CSCF"), port=5054)
        net = Net(scscf, ports=(5060, 5054), alice_via=5054, bob=answer(200))
        response = self.final(net.request("MESSAGE", BOB_URI))
        assert (response.status, response.reason) == (200, "S-CSCF")
        # A Route for someone else wins over the port: the request leaves by it.
        route = "<sip:" + BOB + ":5060;lr>"
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route]))
        assert response.status == 200 and response.reason != "S-CSCF"
        assert net.sent(PROXY, to=BOB) == ["MESSAGE"]
        assert len(scscf.invocations) == 1
        self.assert_idle(net)

    def test_our_route_for_no_sproutlet_is_removed_and_the_next_one_used(self) -> None:
        greeter = Service("greeter", answering(200, "Hi"))
        net = Net(greeter, bob=answer(200))
        routes = ["<sip:" + PROXY + ";lr>", route_to("nobody"), route_to("greeter")]
        response = self.final(net.request("MESSAGE", BOB_URI, routes=routes))
        assert response.reason == "Hi"
        assert matched_route(greeter).param("service") == "greeter"
        # Our Routes for nobody, then one for Bob: off to Bob by it, ours gone.
        routes = ["<sip:" + PROXY + ";lr>", "<sip:" + BOB + ":5060;lr;x=1>"]
        response = self.final(net.request("MESSAGE", BOB_URI, routes=routes))
        assert response.status == 200 and response.reason != "Hi"
        [message] = net.requests(PROXY, BOB, "MESSAGE")
        assert message.headers.get_all("Route") == ["<sip:" + BOB + ":5060;lr;x=1>"]
        self.assert_idle(net)

    def test_a_sproutlet_that_declines_passes_the_request_on(self) -> None:
        decliner = Service("decliner", lambda helper: None)
        net = Net(decliner, bob=answer(200))
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("decliner")]))
        assert response.status == 200
        assert len(decliner.invocations) == 1
        [message] = net.requests(PROXY, BOB, "MESSAGE")
        assert str(message.uri) == BOB_URI and message.headers.get("Route") is None
        assert message.max_forwards == 69
        self.assert_idle(net)

    def test_an_edge_port_takes_every_request_whatever_its_route(self) -> None:
        """An untrusted port (the all-in-one's phone port): a Route the sender wrote to a
        local sproutlet does not bypass the port's sproutlet."""
        edge = Service("edge", answering(200, "Edge"), port=5060)
        greeter = Service("greeter", answering(200, "Hi"))
        net = Net(edge, greeter, edge_ports={5060: "edge"})
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("greeter")]))
        assert (response.status, response.reason) == (200, "Edge")
        assert greeter.invocations == []
        [(_, request)] = edge.invocations
        assert request.headers.get_all("Route") == [route_to("greeter")]  # left for it to judge
        self.assert_idle(net)

    def test_originate_skips_our_own_routes_and_leaves_by_the_next(self) -> None:
        """A NOTIFY in a dialog whose route set starts with our own Record-Route: straight to
        the next hop, not to ourselves."""
        bob: list[IncomingRequest] = []
        net = Net(Service("fwd"), bob=answer(200, bob))
        request = net.alice.create_request("MESSAGE", BOB_URI)
        request.headers.remove("Via")
        request.headers.add("Route", "<sip:" + PROXY + ":5060;transport=udp;lr>")
        d = net.proxy.originate(request)
        net.pump()
        assert net.sent(PROXY, to=BOB) == []  # not before the reactor's next turn
        net.reactor.advance(0)
        net.pump()
        assert self.successResultOf(d).status == 200
        [received] = [i.request for i in bob]
        assert received.headers.get("Route") is None
        assert net.sent(PROXY, to=BOB) == ["MESSAGE"]

    def test_a_declined_request_goes_to_the_next_service_in_process(self) -> None:
        """Clearwater's chained stages (the S-CSCF's authentication -> registrar -> ...): a
        stage that declines hands the request to its next service, at the same depth, with no
        Route added and nothing on the wire."""
        first = Service("first", lambda helper: None, port=5054, next_service="second")
        second = Service("second", lambda helper: None, next_service="third")
        third = Service("third", answering(200, "Third"))
        net = Net(first, second, third, bob=answer(200))
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("first")]))
        assert (response.status, response.reason) == (200, "Third")
        assert [len(s.invocations) for s in (first, second, third)] == [1, 1, 1]
        [(alias, request)] = third.invocations
        assert alias == "third" and request.max_forwards == 70
        assert request.headers.get("Route") is None
        assert net.sent(PROXY, to=BOB) == []
        self.assert_idle(net)

    def test_next_services_that_all_decline_in_a_cycle_route_the_request_on(self) -> None:
        a = Service("a", lambda helper: None, next_service="b")
        b = Service("b", lambda helper: None, next_service="a")
        net = Net(a, b, bob=answer(200))
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("a")]))
        assert response.status == 200
        assert [len(s.invocations) for s in (a, b)] == [1, 1]
        assert net.sent(PROXY, to=BOB) == ["MESSAGE"]
        self.assert_idle(net)

    def test_get_tsx_raising_is_a_500_not_a_bypass(self) -> None:
        """A sproutlet that cannot start its transaction may be the one that authenticates:
        the request is answered 500 and never routed on past it."""

        def broken(helper: SproutletTsxHelper) -> SproutletTsx:
            raise RuntimeError("no tsx today")

        net = Net(Service("broken", broken), bob=answer(200))
        response = self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("broken")]))
        assert (response.status, response.reason) == (500, "Sproutlet broken failed")
        assert net.sent(PROXY, to=BOB) == []
        [error] = self.logged_errors(RuntimeError)
        assert str(error.value) == "no tsx today"
        self.assert_idle(net)

    def test_our_host_on_another_port_is_not_ours(self) -> None:
        greeter = Service("greeter", answering())
        net = Net(greeter)
        d = net.request("MESSAGE", "sip:greeter@" + PROXY + ":5080")
        assert greeter.invocations == []
        [(message, destination)] = net.written(PROXY)  # sent on, to the other process
        assert isinstance(message, Request) and message.method == "MESSAGE"
        assert destination == (PROXY, 5080)
        assert not d.called


# --------------------------------------------------------------------------- chains (§2.5)


class ChainTests(ProxyTestCase):
    def test_a_chain_is_in_process_and_b_answers_through_a(self) -> None:
        log: list[str] = []
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", answering(200, "from b"))
        net = Net(a, b)
        response = self.final(net.request("OPTIONS", "sip:a@" + PROXY))
        assert (response.status, response.reason) == (200, "from b")
        assert log == ["a: initial OPTIONS", "a: response 200 on fork 0"]
        # No packet but the answer: the hop from a to b never touched the network.
        assert net.sent(PROXY) == ["200 OPTIONS"]
        [(_, request)] = b.invocations
        assert request.headers.get("X-Hop") == "a"
        assert request.headers.get("Route") is None
        assert request.max_forwards == 69
        assert len(request.vias) == 1  # no Via for an in-process hop
        # next_hop_uri("b", sip:a@PROXY): the base URI at our hostname, lr, service=b.
        assert str(matched_route(b)) == "sip:a@" + PROXY + ";lr;service=b"
        self.assert_idle(net)

    def test_an_invite_chain_sends_nothing_but_the_answers(self) -> None:
        log: list[str] = []
        net = Net(Service("a", to_service(log, "a", "b")), Service("b", answering(486)))
        call = net.invite("sip:a@" + PROXY)
        assert self.call_failed(call).status == 486
        # Answered before request_received returned: no 100 from the transaction layer, and
        # the in-process 100 of the hop from a to b never reached a.
        assert net.sent(PROXY) == ["486 INVITE"]
        assert log == ["a: initial INVITE", "a: response 486 on fork 0"]
        self.assert_idle(net)

    def test_a_chain_to_the_network_decrements_max_forwards_per_hop(self) -> None:
        log: list[str] = []
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", lambda helper: ToBob(helper, log))
        net = Net(a, b, bob=answer(200))
        response = self.final(net.request("MESSAGE", "sip:a@" + PROXY))
        assert response.status == 200 and len(response.vias) == 1
        [message] = net.requests(PROXY, BOB, "MESSAGE")
        assert message.headers.get_all("X-Hop") == ["a", "b"]
        assert message.max_forwards == 68  # each sproutlet is a hop: 70 - 2
        assert message.headers.get("Route") is None
        vias = message.vias
        assert len(vias) == 2 and vias[0].host == PROXY and vias[1].host == ALICE
        assert (vias[0].branch or "").startswith("z9hG4bK")
        assert log == [
            "a: initial MESSAGE",
            "b: initial MESSAGE",
            "b: response 200 on fork 0",
            "a: response 200 on fork 0",
        ]
        assert net.sent(PROXY) == ["MESSAGE", "200 MESSAGE"]
        self.assert_idle(net)

    def test_a_cancel_goes_down_the_chain(self) -> None:
        log: list[str] = []
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", lambda helper: ToBob(helper, log))
        net = Net(a, b, bob=ring)
        call = net.invite("sip:a@" + PROXY)
        assert net.sent(PROXY, to=BOB) == ["INVITE"]
        call.cancel()
        net.pump()
        assert self.call_failed(call).status == 487
        assert "a: cancel 487 CANCEL" in log and "b: cancel 487 CANCEL" in log
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert net.sent(PROXY, to=ALICE, trying=False) == ["180 INVITE", "200 CANCEL", "487 INVITE"]
        self.assert_idle(net)

    def test_a_cancel_reaches_a_downstream_sproutlet_that_sent_no_provisional(self) -> None:
        log: list[str] = []
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", lambda helper: Pondering(helper, log, "b"))
        net = Net(a, b)
        call = net.invite("sip:a@" + PROXY)
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE"]
        call.cancel()
        net.pump()
        # The in-process hop counts as Proceeding (as if b's 100 had come): a's CANCEL goes
        # down at once rather than waiting for a provisional response b never sends.
        assert log == [
            "a: initial INVITE",
            "b: initial INVITE",
            "a: cancel 487 CANCEL",
            "b: cancel 487 CANCEL",
        ]
        assert self.call_failed(call).status == 487
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "200 CANCEL", "487 INVITE"]
        self.assert_idle(net)


class ToBob(Logged):
    """Sends every initial request to Bob, with ``X-Hop: <name>``."""

    def __init__(self, helper: SproutletTsxHelper, log: list[str], name: str = "b") -> None:
        super().__init__(helper, log, name)

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        request.headers.add("X-Hop", self.name)
        request.uri = parse_uri(BOB_URI)
        self.send_request(request)


class Pondering(Logged):
    """Takes its time: a 30 s timer, no response, no fork."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        self.schedule_timer(None, 30.0)


# --------------------------------------------------------------------------- forking (§2.6)


class ForkingTests(ProxyTestCase):
    def fork_net(self, bob: Handler, carol: Handler, log: list[str]) -> Net:
        forker = Service("forker", forking(log, BOB_URI, CAROL_URI))
        return Net(forker, bob=bob, carol=carol)

    def test_parallel_fork_486_and_200_the_200_goes_up(self) -> None:
        log: list[str] = []
        net = self.fork_net(answer(486), answer(200), log)
        call = net.invite("sip:dave@example.com", routes=[route_to("forker")])
        self.successResultOf(call.answered)
        assert sorted(log[1:]) == [
            "response 180 on fork 1",
            "response 200 on fork 1",
            "response 486 on fork 0",
        ]
        assert net.sent(PROXY, to=ALICE, trying=False) == ["180 INVITE", "200 INVITE"]
        assert net.sent(PROXY, to=BOB) == ["INVITE", "ACK"]  # the 486 ACKed hop by hop
        assert net.sent(PROXY, to=CAROL) == ["INVITE", "ACK"]  # Alice's ACK, statelessly
        self.assert_idle(net)

    def test_parallel_fork_the_200_cancels_the_ringing_branch(self) -> None:
        log: list[str] = []
        net = self.fork_net(ring, answer(200), log)
        call = net.invite("sip:dave@example.com", routes=[route_to("forker")])
        self.successResultOf(call.answered)
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        [cancel] = net.requests(PROXY, BOB, "CANCEL")
        assert cancel.headers.get("Reason") == COMPLETED_ELSEWHERE
        assert net.sent(BOB, to=PROXY) == ["180 INVITE", "200 CANCEL", "487 INVITE"]
        assert net.sent(PROXY, to=ALICE, trying=False)[-1] == "200 INVITE"
        assert "487 INVITE" not in net.sent(PROXY, to=ALICE)
        self.assert_idle(net)

    def test_parallel_fork_both_fail_the_lowest_code_goes_up(self) -> None:
        log: list[str] = []
        net = self.fork_net(answer(486), answer(404), log)
        call = net.invite("sip:dave@example.com", routes=[route_to("forker")])
        assert self.call_failed(call).status == 404
        assert sorted(log[1:]) == ["response 404 on fork 1", "response 486 on fork 0"]
        assert net.sent(PROXY, to=ALICE, trying=False) == ["404 INVITE"]
        assert net.sent(PROXY, to=BOB) == ["INVITE", "ACK"]
        assert net.sent(PROXY, to=CAROL) == ["INVITE", "ACK"]
        self.assert_idle(net)

    def test_a_cancel_while_forking_cancels_every_branch(self) -> None:
        log: list[str] = []
        cancels: list[Optional[Request]] = []

        class Forker(Fork):
            @override
            def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> None:
                super().on_rx_cancel(status, cancel)
                cancels.append(cancel)

        forker = Service("forker", lambda helper: Forker(helper, log, [BOB_URI, CAROL_URI]))
        net = Net(forker, bob=ring, carol=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("forker")])
        call.cancel()
        net.pump()
        assert self.call_failed(call).status == 487
        for host in (BOB, CAROL):
            assert net.sent(PROXY, to=host) == ["INVITE", "CANCEL", "ACK"]
        assert log[-1] == "cancel 487 CANCEL"
        [cancel] = cancels
        assert cancel is not None and cancel.method == "CANCEL"
        assert cancel.call_id == call.invite.call_id
        assert net.sent(PROXY, to=ALICE)[-2:] == ["200 CANCEL", "487 INVITE"]
        # No callback after on_rx_cancel: the 487s of the branches went up without the tsx.
        assert not [event for event in log if event.startswith("response 487")]
        self.assert_idle(net)

    def test_a_sequential_fork_from_on_rx_response(self) -> None:
        log: list[str] = []

        class Sequential(Logged):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.note("initial " + request.method)
                bob = self.clone_request(request)
                bob.uri = parse_uri(BOB_URI)
                self.send_request(bob)

            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                self.note("response " + str(response.status) + " on fork " + str(fork_id))
                if response.status == 486:
                    carol = self.original_request()
                    carol.uri = parse_uri(CAROL_URI)
                    self.send_request(carol)
                else:
                    self.send_response(response)

        net = Net(Service("seq", lambda h: Sequential(h, log)), bob=answer(486), carol=answer(200))
        call = net.invite("sip:dave@example.com", routes=[route_to("seq")])
        self.successResultOf(call.answered)
        assert log == [
            "initial INVITE",
            "response 486 on fork 0",
            "response 180 on fork 1",
            "response 200 on fork 1",
        ]
        assert net.sent(PROXY, to=BOB) == ["INVITE", "ACK"]
        assert net.sent(PROXY, to=CAROL)[0] == "INVITE"
        assert net.sent(PROXY, to=ALICE, trying=False) == ["180 INVITE", "200 INVITE"]
        self.assert_idle(net)

    def test_timer_c_cancels_a_network_fork_that_rings_too_long(self) -> None:
        log: list[str] = []
        forker = Service("forker", forking(log, BOB_URI))
        net = Net(forker, bob=ring, timer_c=10.0)
        call = net.invite("sip:dave@example.com", routes=[route_to("forker")])
        net.run(9.75)
        assert net.sent(PROXY, to=BOB) == ["INVITE"]
        net.run(0.25)
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        [cancel] = net.requests(PROXY, BOB, "CANCEL")
        assert cancel.headers.get("Reason") is None
        assert self.call_failed(call).status == 487
        assert log == ["initial INVITE", "response 180 on fork 0", "response 487 on fork 0"]
        self.assert_idle(net)

    def test_an_in_process_fork_has_no_timer_c(self) -> None:
        log: list[str] = []
        # a -> b (in process) -> Bob, who rings: only b's network fork has timer C.
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", lambda helper: ToBob(helper, log))
        net = Net(a, b, bob=ring, timer_c=10.0)
        call = net.invite("sip:a@" + PROXY)
        net.run(10)
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert self.call_failed(call).status == 487
        assert log[-2:] == ["b: response 487 on fork 0", "a: response 487 on fork 0"]
        assert not [event for event in log if "cancel" in event]  # b was never CANCELled
        self.assert_idle(net)


# --------------------------------------------------------------------------- callbacks


class Waiting(Logged):
    """An ``async def on_rx_initial_request`` that waits for ``gate`` and then forwards (or
    raises what the gate failed with)."""

    def __init__(self, helper: SproutletTsxHelper, log: list[str], gate: Deferred[None]):
        super().__init__(helper, log)
        self.gate = gate

    @override
    async def on_rx_initial_request(self, request: Request) -> None:  # type: ignore[override]
        self.note("initial " + request.method)
        await self.gate
        self.note("initial done")
        self.send_request(request)


class AsyncTests(ProxyTestCase):
    def test_an_async_callback_is_waited_for(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        net = Net(Service("slow", lambda h: Waiting(h, log, gate)), bob=answer(200))
        d = net.request("MESSAGE", BOB_URI, routes=[route_to("slow")])
        net.run(1)
        assert log == ["initial MESSAGE"]
        assert net.sent(PROXY) == [] and not d.called
        assert net.proxy.active_transactions == 1
        gate.callback(None)
        net.pump()
        assert self.final(d).status == 200
        assert log == ["initial MESSAGE", "initial done", "response 200 on fork 0"]
        assert net.sent(PROXY) == ["MESSAGE", "200 MESSAGE"]
        self.assert_idle(net)

    def test_a_cancel_waits_for_the_async_callback(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        net = Net(Service("slow", lambda h: Waiting(h, log, gate)), bob=ring)
        call = net.invite(BOB_URI, routes=[route_to("slow")])
        call.cancel()  # after the 100 the transaction layer sent for the waiting proxy
        net.pump()
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "200 CANCEL"]
        assert log == ["initial INVITE"]  # on_rx_cancel waits for the callback
        gate.callback(None)
        net.pump()
        assert log == ["initial INVITE", "initial done", "cancel 487 CANCEL"]
        assert self.call_failed(call).status == 487
        assert net.sent(PROXY, to=ALICE, trying=False)[-1] == "487 INVITE"
        self.assert_idle(net)

    def test_an_async_callback_that_fails_gets_500(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        net = Net(Service("slow", lambda h: Waiting(h, log, gate)), bob=answer(200))
        d = net.request("MESSAGE", BOB_URI, routes=[route_to("slow")])
        gate.errback(RuntimeError("backend down"))
        net.pump()
        response = self.final(d)
        assert (response.status, response.reason) == (500, "Sproutlet slow failed")
        assert response.to.tag
        [error] = self.logged_errors(RuntimeError)
        assert str(error.value) == "backend down"
        assert net.sent(PROXY) == ["500 MESSAGE"]
        assert log == ["initial MESSAGE"]
        self.assert_idle(net)

    def test_a_callback_returning_a_deferred_is_waited_for(self) -> None:
        gate: Deferred[None] = Deferred()

        class Later(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> Deferred[None]:
                def respond(_: None) -> None:
                    self.send_response(self.create_response(request, 202, "Later"))

                return gate.addCallback(respond)

        net = Net(Service("later", Later))
        d = net.request("MESSAGE", "sip:later@" + PROXY)
        assert not d.called and net.sent(PROXY) == []
        gate.callback(None)
        net.pump()
        assert self.final(d).status == 202
        self.assert_idle(net)


class FailureTests(ProxyTestCase):
    def test_an_exception_in_a_callback_gets_500_and_is_logged(self) -> None:
        class Broken(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                raise KeyError("oops")

        net = Net(Service("broken", Broken))
        response = self.final(net.request("MESSAGE", "sip:broken@" + PROXY))
        assert (response.status, response.reason) == (500, "Sproutlet broken failed")
        assert response.to.tag
        assert len(self.logged_errors(KeyError)) == 1
        assert net.sent(PROXY) == ["500 MESSAGE"]
        self.assert_idle(net)

    def test_an_exception_after_the_final_response_sends_nothing_more(self) -> None:
        class AnswerThenBreak(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.send_response(self.create_response(request, 200, "Fine"))
                raise KeyError("oops")

        net = Net(Service("broken", AnswerThenBreak))
        response = self.final(net.request("MESSAGE", "sip:broken@" + PROXY))
        assert (response.status, response.reason) == (200, "Fine")
        assert len(self.logged_errors(KeyError)) == 1
        assert net.sent(PROXY) == ["200 MESSAGE"]
        self.assert_idle(net)

    def test_a_callback_returning_something_else_gets_500(self) -> None:
        class Odd(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> Any:
                return 42

        net = Net(Service("odd", Odd))
        response = self.final(net.request("MESSAGE", "sip:odd@" + PROXY))
        assert (response.status, response.reason) == (500, "Sproutlet odd failed")
        [error] = self.logged_errors(TypeError)
        assert "odd: a callback returned int, not an awaitable" in str(error.value)
        self.assert_idle(net)

    def test_a_sproutlet_that_does_nothing_gets_500(self) -> None:
        class Silent(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                pass

        net = Net(Service("silent", Silent))
        response = self.final(net.request("MESSAGE", "sip:silent@" + PROXY))
        assert (response.status, response.reason) == (500, "Sproutlet silent sent no response")
        assert net.sent(PROXY) == ["500 MESSAGE"]
        self.assert_idle(net)


class TimerTests(ProxyTestCase):
    def test_a_timer_keeps_the_request_until_it_answers(self) -> None:
        log: list[str] = []

        class Alarm(Logged):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.received = request
                self.timer = self.schedule_timer("ctx", 5.0)
                self.note("running " + str(self.timer_running(self.timer)))

            @override
            def on_timer_expiry(self, context: object) -> None:
                super().on_timer_expiry(context)
                self.note("running " + str(self.timer_running(self.timer)))
                assert self.received is not None
                self.send_response(self.create_response(self.received, 200, "Woke up"))

        net = Net(Service("alarm", lambda h: Alarm(h, log)))
        d = net.request("MESSAGE", "sip:alarm@" + PROXY)
        net.run(4.75)
        assert not d.called and net.sent(PROXY) == []
        net.run(0.25)
        assert self.final(d).reason == "Woke up"
        assert log == ["running True", "timer ctx", "running False"]
        self.assert_idle(net)

    def test_cancel_timer(self) -> None:
        log: list[str] = []

        class TwoTimers(Logged):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.received = request
                self.short = self.schedule_timer("short", 1.0)
                self.long = self.schedule_timer("long", 2.0)

            @override
            def on_timer_expiry(self, context: object) -> None:
                super().on_timer_expiry(context)
                if context == "short":
                    self.cancel_timer(self.long)
                    self.cancel_timer(self.long)  # twice: no effect
                    self.note("long running " + str(self.timer_running(self.long)))
                    self.schedule_timer("last", 3.0)
                else:
                    assert self.received is not None
                    self.send_response(self.create_response(self.received, 200))

        net = Net(Service("timers", lambda h: TwoTimers(h, log)))
        d = net.request("MESSAGE", "sip:timers@" + PROXY)
        net.run(3.75)
        assert log == ["timer short", "long running False"] and not d.called
        net.run(0.25)
        assert self.final(d).status == 200
        assert log == ["timer short", "long running False", "timer last"]
        self.assert_idle(net)


# --------------------------------------------------------------------------- loops (§2.5)


class ToSelf(Logged):
    """Sends every initial request back to itself (a Route with ``service=self``)."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + str(request.max_forwards))
        request.headers.prepend("Route", route_to("self"))
        self.send_request(request)


class DepthTests(ProxyTestCase):
    def test_a_sproutlet_looping_to_itself_gets_483_at_max_sproutlet_depth(self) -> None:
        log: list[str] = []
        looper = Service("self", lambda h: ToSelf(h, log))
        net = Net(looper, max_sproutlet_depth=5)
        response = self.final(net.request("MESSAGE", "sip:self@" + PROXY))
        assert (response.status, response.reason) == (483, "Too Many Hops")
        assert len(looper.invocations) == 5
        assert log[:5] == ["initial 70", "initial 69", "initial 68", "initial 67", "initial 66"]
        assert log[5:] == ["response 483 on fork 0"] * 5  # back up through every level
        assert net.sent(PROXY) == ["483 MESSAGE"]
        self.assert_idle(net)

    def test_the_default_max_sproutlet_depth_is_50(self) -> None:
        log: list[str] = []
        looper = Service("self", lambda h: ToSelf(h, log))
        net = Net(looper)
        # Max-Forwards high enough that the depth is what stops the loop.
        response = self.final(net.request("MESSAGE", "sip:self@" + PROXY, max_forwards=200))
        assert response.status == 483
        assert len(looper.invocations) == DEFAULT_MAX_SPROUTLET_DEPTH == 50
        assert log[49] == "initial 151"
        assert net.sent(PROXY) == ["483 MESSAGE"]
        self.assert_idle(net)

    def test_max_forwards_runs_out_in_a_chain(self) -> None:
        log: list[str] = []
        a = Service("a", to_service(log, "a", "b"))
        b = Service("b", to_service(log, "b", "c"))
        c = Service("c", lambda helper: ToBob(helper, log, "c"))
        net = Net(a, b, c, bob=answer(200))
        response = self.final(net.request("MESSAGE", "sip:a@" + PROXY, max_forwards=2))
        assert (response.status, response.reason) == (483, "Too Many Hops")
        assert [len(s.invocations) for s in (a, b, c)] == [1, 1, 1]
        assert [request.max_forwards for s in (a, b, c) for _, request in s.invocations] == [
            2,
            1,
            0,
        ]
        assert log[3:] == [
            "c: response 483 on fork 0",  # c's fork: Max-Forwards 0, it may not leave
            "b: response 483 on fork 0",
            "a: response 483 on fork 0",
        ]
        assert net.sent(PROXY, to=BOB) == []
        self.assert_idle(net)

    def test_max_forwards_zero_from_the_network_gets_483(self) -> None:
        greeter = Service("greeter", answering())
        net = Net(greeter)
        response = self.final(net.request("OPTIONS", "sip:greeter@" + PROXY, max_forwards=0))
        assert response.status == 483
        assert greeter.invocations == []
        assert net.sent(PROXY) == ["483 OPTIONS"]
        self.assert_idle(net)


# --------------------------------------------------------------------------- dialogs


class RecordRoute(Logged):
    """Record-routes initial requests with its reflexive URI and forwards everything."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        self.note("initial " + request.method)
        request.headers.prepend("Record-Route", "<" + str(self.get_reflexive_uri()) + ">")
        self.send_request(request)


class DialogTests(ProxyTestCase):
    def test_a_2xx_retransmitted_after_the_transaction_finished_goes_to_alice(self) -> None:
        """Alice's ACK is lost: Bob retransmits his 200; the wrapper has finished, so the
        proxy forwards it statelessly by its Via (RFC 6026 §7.2) and Alice ACKs again."""
        bob: list[IncomingRequest] = []
        net = Net(Service("fwd"), bob=answer(200, bob))
        [alice_proxy] = [
            link for link in net.links if {link.a.interface, link.b.interface} == {ALICE, PROXY}
        ]
        alice_proxy.drop = drop_matching(lambda data: data.startswith(b"ACK"), limit=1)
        call = net.invite(BOB_URI, routes=[route_to("fwd")])
        self.successResultOf(call.answered)
        assert net.proxy.active_transactions == 0  # finished: nothing holds the wrapper
        # The INVITE's client transaction lingers (RFC 6026 Accepted, 64*T1) with neither the
        # request nor the fork's copy of it: thousands linger on a loaded proxy.
        [lingering] = net.proxy.stack.transactions._clients.values()
        assert lingering.request is None and lingering.machine.request is None
        assert net.requests(PROXY, BOB, "ACK") == []
        net.run(1.0)  # Bob's timer G: the 200 again
        assert net.sent(PROXY, to=ALICE, trying=False) == ["180 INVITE", "200 INVITE", "200 INVITE"]
        assert len(net.requests(PROXY, BOB, "ACK")) == 1
        self.successResultOf(bob[0].acked)

    def test_a_record_routing_sproutlet_stays_on_the_dialog(self) -> None:
        log: list[str] = []
        bob: list[IncomingRequest] = []
        rr = Service("rr", lambda h: RecordRoute(h, log))
        net = Net(rr, bob=answer(200, bob))
        call = net.invite(BOB_URI, routes=[route_to("rr")])
        self.successResultOf(call.answered)
        [invite] = net.requests(PROXY, BOB, "INVITE")
        reflexive = "<sip:" + PROXY + ";lr;service=rr>"
        assert invite.headers.get_all("Record-Route") == [reflexive]
        # Alice's ACK for the 2xx comes back through rr (no transaction), and on to Bob
        # statelessly.
        assert log == [
            "initial INVITE",
            "response 180 on fork 0",
            "response 200 on fork 0",
            "in-dialog ACK",
        ]
        [ack] = net.requests(PROXY, BOB, "ACK")
        assert ack.headers.get("Route") is None and len(ack.vias) == 2
        assert ack.max_forwards == 69
        self.successResultOf(bob[0].acked)
        # Bob's BYE follows the route set back to rr, and on to Alice.
        assert bob[0].dialog is not None
        bye = bob[0].dialog.bye()
        net.pump()
        assert self.final(bye).status == 200
        assert net.sent(BOB, to=ALICE) == []
        [bye_out] = net.requests(PROXY, ALICE, "BYE")
        assert bye_out.headers.get("Route") is None
        assert str(bye_out.uri).startswith("sip:alice@" + ALICE)
        assert log[4:] == ["in-dialog BYE", "response 200 on fork 0"]
        assert [alias for alias, _ in rr.invocations] == ["rr", "rr", "rr"]  # INVITE, ACK, BYE
        self.assert_idle(net)


# --------------------------------------------------------------------------- fork control


class GiveUp(Fork):
    """Forks, and after 2 s abandons its forks and answers 480 itself."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        super().on_rx_initial_request(request)
        self.schedule_timer(None, 2.0)

    @override
    def on_timer_expiry(self, context: object) -> None:
        self.mark_pending_forks_as_abandoned()
        self.note("abandoned: " + self.fork_state(0).tsx_state.value)
        self.send_response(self.create_response(self.original_request(), 480, "Gave up"))


class ForkStateTests(ProxyTestCase):
    def test_fork_state_of_a_fork_that_timed_out(self) -> None:
        states: list[tuple[str, ForkStatus]] = []

        class Watch(Fork):
            @override
            def on_tx_request(self, request: Request, fork_id: int) -> None:
                states.append(("tx", self.fork_state(fork_id)))

            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                states.append((str(response.status), self.fork_state(fork_id)))
                self.send_response(response)

        nowhere = "sip:x@" + NOWHERE + ":5060"
        net = Net(Service("watch", lambda h: Watch(h, [], [nowhere])))
        call = net.invite("sip:dave@example.com", routes=[route_to("watch")])
        net.run(31.75)
        assert states == [("tx", ForkStatus(ForkState.CALLING))]
        net.run(0.5)
        assert states[1:] == [("408", ForkStatus(ForkState.TERMINATED, ErrorState.TIMEOUT))]
        assert self.call_failed(call).status == 408
        assert net.sent(PROXY, to=NOWHERE) == ["INVITE"] * 7  # timer A retransmissions
        self.assert_idle(net)

    def test_fork_state_of_a_fork_with_no_address(self) -> None:
        states: list[ForkStatus] = []

        class Watch(Fork):
            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                states.append(self.fork_state(fork_id))
                self.send_response(response)

        net = Net(Service("watch", lambda h: Watch(h, [], ["sip:x@unknown.example.com"])))
        d = net.request("MESSAGE", "sip:watch@" + PROXY)
        assert self.final(d).status == 408
        assert states == [ForkStatus(ForkState.TERMINATED, ErrorState.NO_ADDRESSES)]
        assert net.sent(PROXY) == ["408 MESSAGE"]
        self.assert_idle(net)

    def test_a_response_with_only_our_via_fails_the_fork(self) -> None:
        states: list[tuple[int, ForkStatus]] = []

        class Watch(Fork):
            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                states.append((response.status, self.fork_state(fork_id)))
                self.send_response(response)

        nowhere = "sip:x@" + NOWHERE + ":5060"
        net = Net(Service("watch", lambda h: Watch(h, [], [nowhere])))
        d = net.request("MESSAGE", "sip:watch@" + PROXY)
        [sent] = net.requests(PROXY, NOWHERE, "MESSAGE")
        # A 200 for us alone (§16.7 step 3: no Via left once ours is removed).
        bogus = build_response(sent, 200, "OK")
        bogus.headers.set("Via", str(sent.top_via))
        proxy_port = net.reactor.udp_listeners[3]
        assert proxy_port.interface == PROXY
        net.reactor.deliver_datagram(proxy_port, bogus.to_bytes(), (NOWHERE, 5060))
        net.pump()
        failed = ForkStatus(ForkState.TERMINATED, ErrorState.TRANSPORT_ERROR)
        assert states == [(408, failed)]
        assert self.final(d).status == 408
        assert net.sent(PROXY, to=ALICE) == ["408 MESSAGE"]
        self.assert_idle(net)

    def test_abandoned_forks_no_longer_count(self) -> None:
        log: list[str] = []
        net = Net(Service("g", lambda h: GiveUp(h, log, [BOB_URI])), bob=ring, timer_c=10.0)
        call = net.invite("sip:dave@example.com", routes=[route_to("g")])
        net.run(2)
        response = self.call_failed(call)
        assert (response.status, response.reason) == (480, "Gave up")
        # Not left ringing: CANCELled; its 487 counts for nothing.
        assert log == ["initial INVITE", "response 180 on fork 0", "abandoned: Terminated"]
        [cancel] = net.requests(PROXY, BOB, "CANCEL")
        assert cancel.headers.get("Reason") is None
        assert net.sent(PROXY, to=ALICE, trying=False) == ["180 INVITE", "480 INVITE"]
        self.assert_idle(net)
        net.run(40)  # timer D
        assert net.proxy.stack.transactions.client_count == 0

    def test_an_abandoned_fork_that_never_rang_is_not_cancelled(self) -> None:
        log: list[str] = []
        nowhere = "sip:x@" + NOWHERE + ":5060"
        net = Net(Service("g", lambda h: GiveUp(h, log, [nowhere])))
        call = net.invite("sip:dave@example.com", routes=[route_to("g")])
        net.run(2)
        assert self.call_failed(call).status == 480
        self.assert_idle(net)
        net.run(40)  # its client transaction times out (timer B)
        assert "CANCEL" not in net.sent(PROXY, to=NOWHERE)  # §9.1: none before a provisional
        assert net.proxy.stack.transactions.client_count == 0
        assert log == ["initial INVITE", "abandoned: Terminated"]  # nor its 408

    def test_an_abandoned_fork_in_process_gets_on_rx_cancel(self) -> None:
        log: list[str] = []

        class GiveUpOnB(GiveUp):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.note("initial " + request.method)
                request.headers.prepend("Route", route_to("b"))
                self.send_request(request)
                self.schedule_timer(None, 2.0)

        a = Service("a", lambda helper: GiveUpOnB(helper, log, []))
        b = Service("b", lambda helper: Pondering(helper, log, "b"))
        net = Net(a, b)
        call = net.invite("sip:a@" + PROXY)
        net.run(2)
        assert self.call_failed(call).status == 480
        assert log == [
            "initial INVITE",
            "b: initial INVITE",
            "abandoned: Terminated",
            "b: cancel 487 CANCEL",
        ]
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "480 INVITE"]
        self.assert_idle(net)

    def test_cancel_fork_with_a_status_adds_a_reason(self) -> None:
        log: list[str] = []

        class CancelOnRinging(Fork):
            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                super().on_rx_response(response, fork_id)
                if response.status == 180 and fork_id == 0:
                    self.cancel_fork(fork_id, 480, 'No "answer"')
                elif response.status == 180:
                    self.cancel_pending_forks(503)

        targets = [BOB_URI, CAROL_URI]
        net = Net(Service("c", lambda h: CancelOnRinging(h, log, targets)), bob=ring, carol=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("c")])
        [bob_cancel] = net.requests(PROXY, BOB, "CANCEL")
        assert bob_cancel.headers.get("Reason") == 'SIP;cause=480;text="No \\"answer\\""'
        [carol_cancel] = net.requests(PROXY, CAROL, "CANCEL")
        assert carol_cancel.headers.get("Reason") == "SIP;cause=503"
        assert self.call_failed(call).status == 487
        assert sorted(log[1:]) == [
            "response 180 on fork 0",
            "response 180 on fork 1",
            "response 487 on fork 0",
            "response 487 on fork 1",
        ]
        self.assert_idle(net)


# --------------------------------------------------------------------------- observers, leaks


class Counting:
    """A ProxyObserver noting what it is told."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def request_received(self, method: str) -> None:
        self.events.append("request " + method)

    def response_sent(self, status: int) -> None:
        self.events.append("response " + str(status))

    def transaction_started(self) -> None:
        self.events.append("started")

    def transaction_ended(self, method: str, seconds: float) -> None:
        self.events.append("ended " + method + " after " + str(seconds))


class ObserverTests(ProxyTestCase):
    def test_the_observer_sees_requests_responses_and_transactions(self) -> None:
        observer = Counting()
        checked: ProxyObserver = observer  # it is one (a Protocol)
        net = Net(Service("greeter", answering()), bob=answer(200), observer=checked)
        self.final(net.request("OPTIONS", "sip:greeter@" + PROXY))
        self.final(net.request("INFO", "sip:" + PROXY))
        net.run(1)
        call = net.invite(BOB_URI)
        self.successResultOf(call.answered)
        assert observer.events == [
            "request OPTIONS",
            "started",
            "response 200",
            "ended OPTIONS after 0.0",
            "request INFO",  # for this node: answered, no transaction through the sproutlets
            "response 404",
            "request INVITE",
            "started",
            "response 180",
            "response 200",
            "ended INVITE after 0.0",
            "request ACK",
        ]

    def test_the_observer_is_told_how_long_a_transaction_took(self) -> None:
        class Alarm(Answer):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.received = request
                self.schedule_timer(None, 5.0)

            @override
            def on_timer_expiry(self, context: object) -> None:
                assert self.received is not None
                self.send_response(self.create_response(self.received, 200))

        observer = Counting()
        net = Net(Service("alarm", Alarm), observer=observer)
        d = net.request("MESSAGE", "sip:alarm@" + PROXY)
        net.run(5)
        assert self.final(d).status == 200
        assert observer.events[-1] == "ended MESSAGE after 5.0"

    def test_no_transaction_is_left_behind(self) -> None:
        log: list[str] = []
        forker = Service("forker", forking(log, BOB_URI, CAROL_URI))
        greeter = Service("greeter", answering())
        net = Net(forker, greeter, bob=ring, carol=answer(200))
        calls = [net.invite("sip:dave@example.com", routes=[route_to("forker")]) for _ in range(3)]
        requests = [net.request("OPTIONS", "sip:greeter@" + PROXY) for _ in range(3)]
        cancelled = net.invite(BOB_URI)
        assert net.proxy.active_transactions == 1  # the call to Bob rings
        cancelled.cancel()
        net.pump()
        for call in calls:
            self.successResultOf(call.answered)
        for d in requests:
            assert self.final(d).status == 200
        assert self.call_failed(cancelled).status == 487
        self.assert_idle(net)

    def test_stop_cancels_the_timers(self) -> None:
        log: list[str] = []

        class Alarm(Logged):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                self.schedule_timer("alarm", 5.0)

        net = Net(Service("alarm", lambda h: Alarm(h, log)))
        net.request("MESSAGE", "sip:alarm@" + PROXY)
        assert net.proxy.active_transactions == 1
        net.proxy.stop()
        assert net.proxy.active_transactions == 0
        net.run(10)
        assert log == [] and net.sent(PROXY) == []


class CancelTests(ProxyTestCase):
    def test_a_cancel_for_a_request_forwarded_without_a_sproutlet(self) -> None:
        net = Net(Service("greeter", answering()), bob=ring)
        call = net.invite(BOB_URI)
        call.cancel()
        net.pump()
        assert self.call_failed(call).status == 487
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert net.sent(PROXY, to=ALICE, trying=False)[-2:] == ["200 CANCEL", "487 INVITE"]
        self.assert_idle(net)

    def test_a_failing_on_rx_cancel_still_cancels_with_487(self) -> None:
        class Clumsy(SproutletTsx):
            @override
            def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> None:
                raise RuntimeError("cleanup failed")

        net = Net(Service("clumsy", Clumsy), bob=ring)
        call = net.invite(BOB_URI, routes=[route_to("clumsy")])
        call.cancel()
        net.pump()
        assert self.call_failed(call).status == 487
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        [error] = self.logged_errors(RuntimeError)
        assert str(error.value) == "cleanup failed"
        self.assert_idle(net)

    def test_a_cancel_for_no_transaction_gets_481(self) -> None:
        greeter = Service("greeter", answering())
        net = Net(greeter)
        d = net.alice.send(net.alice.create_request("CANCEL", "sip:greeter@" + PROXY))
        net.pump()
        assert self.final(d).status == 481
        assert greeter.invocations == []

    def test_the_upstream_transport_failing_is_a_408_cancel(self) -> None:
        log: list[str] = []

        class Oversized(Fork):
            """Makes its 180 too big for UDP: the server transaction fails on transport."""

            @override
            def on_tx_response(self, response: Response) -> None:
                self.note("tx " + str(response.status))
                response.headers.add("X-Padding", "x" * 70000)

        net = Net(Service("big", lambda h: Oversized(h, log, [BOB_URI])), bob=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("big")])
        assert log == [
            "initial INVITE",
            "response 180 on fork 0",
            "tx 180",
            "cancel 408 no request",
        ]
        # The forks were cancelled; the final response still goes up (RFC 6026 §7.1), without
        # on_tx_response (no callback after on_rx_cancel).
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert net.sent(PROXY, to=ALICE, trying=False) == ["487 INVITE"]
        assert self.call_failed(call).status == 487
        self.assert_idle(net)


class HelperTests(ProxyTestCase):
    def test_reflexive_uris(self) -> None:
        seen: dict[str, object] = {}

        class Look(Answer):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                seen["reflexive"] = self.get_reflexive_uri()
                seen["own"] = self.is_uri_reflexive(parse_uri("sip:" + PROXY + ";service=look"))
                seen["by label"] = self.is_uri_reflexive(parse_uri("sip:look." + SPROUT))
                seen["other"] = self.is_uri_reflexive(parse_uri("sip:" + PROXY + ";service=b"))
                seen["routing"] = self.get_routing_uri(request)
                super().on_rx_initial_request(request)

        look = Service("look", Look, port=5054)
        net = Net(look, Service("b"), hostname=SPROUT, local_hosts=[PROXY])
        self.final(net.request("MESSAGE", "sip:look@" + SPROUT))
        assert str(seen["reflexive"]) == "sip:" + SPROUT + ":5054;lr;service=look"
        assert seen["own"] is True and seen["by label"] is True and seen["other"] is False
        assert str(seen["routing"]) == "sip:look@" + SPROUT
        self.assert_idle(net)


class QuiesceTests(ProxyTestCase):
    def test_quiescing_refuses_new_work_and_finishes_the_rest(self) -> None:
        log: list[str] = []
        bob: list[IncomingRequest] = []
        rr = Service("rr", lambda h: RecordRoute(h, log))
        net = Net(rr, Service("greeter", answering()), bob=answer(200, bob), carol=ring)
        dialog = net.invite(BOB_URI, routes=[route_to("rr")])
        self.successResultOf(dialog.answered)
        ringing = net.invite(CAROL_URI)
        quiesced = net.proxy.quiesce()
        assert net.proxy.quiescing and not quiesced.called  # the call to Carol rings
        # No new transaction...
        refused = self.final(net.request("OPTIONS", "sip:greeter@" + PROXY))
        assert (refused.status, refused.reason) == (503, "Quiescing")
        assert refused.headers.get("Retry-After") == "0"
        # ... but the dialogs and transactions under way go on.
        assert bob[0].dialog is not None
        bye = bob[0].dialog.bye()
        net.pump()
        assert self.final(bye).status == 200
        assert log[-2:] == ["in-dialog BYE", "response 200 on fork 0"]
        assert not quiesced.called
        ringing.cancel()
        net.pump()
        assert self.call_failed(ringing).status == 487
        self.successResultOf(quiesced)
        assert net.proxy.quiesce() is quiesced


class RemoteAliasTests(ProxyTestCase):
    REMOTE = "remote.example.com"

    def net(self, always: bool) -> Net:
        to_scscf = "<sip:scscf." + self.REMOTE + ";lr>"
        icscf = Service("icscf", lambda helper: ToRoute(helper, to_scscf))
        return Net(
            icscf,
            Service("scscf", answering(200, "S-CSCF"), network_function="scscf"),
            Service("bgcf", answering(200, "BGCF"), network_function="icscf"),
            remote_hosts=[self.REMOTE],
            always_serve_remote_aliases=always,
        )

    def test_a_remote_alias_is_served_from_the_network(self) -> None:
        net = self.net(always=False)
        response = self.final(net.request("MESSAGE", "sip:scscf." + self.REMOTE))
        assert response.reason == "S-CSCF"

    def test_a_remote_alias_across_a_network_function_boundary(self) -> None:
        served = self.final(self.net(always=True).request("MESSAGE", "sip:icscf@" + PROXY))
        assert (served.status, served.reason) == (200, "S-CSCF")
        # Not served on an internal hop into another network function: it leaves on the
        # network (and remote.example.com has no address here).
        net = self.net(always=False)
        refused = self.final(net.request("MESSAGE", "sip:icscf@" + PROXY))
        assert refused.status == 408
        assert net.sent(PROXY) == ["408 MESSAGE"]

    def test_a_remote_alias_within_one_network_function(self) -> None:
        net = self.net(always=False)
        icscf = net.proxy.sproutlets[0]
        assert isinstance(icscf, Service)
        icscf.make = lambda helper: ToRoute(helper, "<sip:bgcf." + self.REMOTE + ";lr>")
        response = self.final(net.request("MESSAGE", "sip:icscf@" + PROXY))
        assert (response.status, response.reason) == (200, "BGCF")


class ToRoute(SproutletTsx):
    """Sends a copy of every initial request on by the Route ``route`` (a copy: see
    ``test_a_synthetic_408_goes_to_alice``)."""

    def __init__(self, helper: SproutletTsxHelper, route: str) -> None:
        super().__init__(helper)
        self.route = route

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        request = self.clone_request(request)
        request.headers.prepend("Route", self.route)
        self.send_request(request)


# --------------------------------------------------------------------------- the request received


class ReceivedRequestTests(ProxyTestCase):
    """What the proxy builds from the request stays as it arrived, whatever the sproutlet does
    to the request it was given (it forwards it: our Via on top, Max-Forwards down)."""

    def test_the_100_trying_goes_to_alice(self) -> None:
        for sproutlets in ((), (Service("fwd"),)):  # no sproutlet; one that forwards
            net = Net(*sproutlets, bob=ring)
            net.invite(BOB_URI, routes=[route_to("fwd")] if sproutlets else [])
            assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "180 INVITE"]
            assert net.sent(PROXY, to=PROXY) == []

    def test_a_synthetic_408_goes_to_alice(self) -> None:
        class Forward(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                request.uri = parse_uri("sip:x@unknown.example.com")  # no address
                self.send_request(request)

        net = Net(Service("fwd", Forward))
        d = net.request("MESSAGE", "sip:fwd@" + PROXY)
        assert [host for _, (host, _) in net.written(PROXY)] == [ALICE]
        response = self.final(d)
        assert response.status == 408 and len(response.vias) == 1
        self.assert_idle(net)

    def test_original_request_is_the_request_received(self) -> None:
        originals: list[Request] = []

        class Forward(SproutletTsx):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                request.headers.add("X-Added", "1")
                self.send_request(request)

            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                originals.append(self.original_request())
                self.send_response(response)

        net = Net(Service("fwd", Forward), bob=answer(200))
        assert self.final(net.request("MESSAGE", BOB_URI, routes=[route_to("fwd")])).status == 200
        [original] = originals
        assert original.max_forwards == 70
        assert len(original.vias) == 1 and original.top_via.host == ALICE
        assert original.headers.get("X-Added") is None
        assert original.headers.get("Route") is None  # ours, removed before the sproutlet

    def test_a_500_after_forwarding_goes_to_alice(self) -> None:
        class CrashOnResponse(SproutletTsx):
            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                raise KeyError("late")

        class SilentOnResponse(SproutletTsx):
            @override
            def on_rx_response(self, response: Response, fork_id: int) -> None:
                pass

        expected = {
            CrashOnResponse: "Sproutlet c failed",
            SilentOnResponse: "Sproutlet c sent no response",
        }
        for tsx, reason in expected.items():
            net = Net(Service("c", tsx), bob=answer(486))
            d = net.request("MESSAGE", BOB_URI, routes=[route_to("c")])
            self.logged_errors(KeyError)
            assert net.sent(PROXY, to=PROXY) == []
            response = self.final(d)
            assert (response.status, response.reason) == (500, reason)


# --------------------------------------------------------------------------- failures, later


class LateFailureTests(ProxyTestCase):
    def test_an_asynchronous_upstream_failure_is_handled_at_once(self) -> None:
        log: list[str] = []
        net = Net(Service("f", forking(log, BOB_URI)), bob=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("f")])
        server = net.proxy.stack.transactions.find_invite(build_cancel(call.invite))
        assert server is not None and server.on_failure is not None
        # As the transport reports it, outside any other event (a TCP connection lost later).
        server.on_failure(FailureReason.TRANSPORT_ERROR)
        assert log[-1] == "cancel 408 no request"
        net.pump()
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert self.call_failed(call).status == 487  # sent all the same (RFC 6026 §7.1)
        self.assert_idle(net)

    def test_an_exception_in_on_tx_request_leaves_nothing_behind(self) -> None:
        class BadTx(Fork):
            @override
            def on_tx_request(self, request: Request, fork_id: int) -> None:
                raise KeyError("tx")

        net = Net(Service("f", lambda h: BadTx(h, [], [BOB_URI])), bob=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("f")])
        response = self.call_failed(call)
        assert (response.status, response.reason) == (500, "Sproutlet f failed")
        assert len(self.logged_errors(KeyError)) == 1
        assert net.sent(PROXY, to=BOB) == []
        self.assert_idle(net)

    def test_a_fork_sent_before_an_exception_never_leaves(self) -> None:
        class SendThenRaise(Fork):
            @override
            def on_rx_initial_request(self, request: Request) -> None:
                super().on_rx_initial_request(request)
                raise KeyError("after send")

        net = Net(Service("f", lambda h: SendThenRaise(h, [], [BOB_URI])), bob=ring)
        call = net.invite("sip:dave@example.com", routes=[route_to("f")])
        assert self.call_failed(call).status == 500
        assert len(self.logged_errors(KeyError)) == 1
        assert net.sent(PROXY, to=BOB) == []
        self.assert_idle(net)

    def test_a_fork_sent_before_a_cancel_was_handled_never_leaves(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        net = Net(Service("slow", lambda h: Waiting(h, log, gate)), bob=ring)
        call = net.invite(BOB_URI, routes=[route_to("slow")])
        call.cancel()
        net.pump()
        gate.callback(None)  # sends the INVITE on; the CANCEL is handled next
        net.pump()
        assert net.sent(PROXY, to=BOB) == []
        assert self.call_failed(call).status == 487
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "200 CANCEL", "487 INVITE"]
        self.assert_idle(net)


# --------------------------------------------------------------------------- AppServer API


class AppServerTests(ProxyTestCase):
    """An AppServer hosted through SproutletAppServerShim on the real proxy (spec §2.8)."""

    def test_the_as_record_routes_with_its_dialog_id_and_keeps_the_onward_route(self) -> None:
        seen: list[tuple[str, str, bool]] = []  # (event, dialog id, Route visible to the AS)

        class Tsx(AppServerTsx):
            @override
            def on_initial_request(self, request: Request) -> None:
                seen.append(("initial", self.dialog_id(), "Route" in request.headers))
                self.add_to_dialog("d1")
                self.send_request(request)

            @override
            def on_in_dialog_request(self, request: Request) -> None:
                seen.append(("in-dialog " + request.method, self.dialog_id(), False))
                self.send_request(request)

        class MyAs(AppServer):
            @override
            def get_app_tsx(
                self, helper: AppServerTsxHelper, request: Request
            ) -> Optional[AppServerTsx]:
                return Tsx(helper)

        bob: list[IncomingRequest] = []
        net = Net(SproutletAppServerShim(MyAs("myas")), bob=answer(200, bob))
        onward = "<sip:" + BOB + ":5060;lr>"  # where the request goes after the AS
        call = net.invite(BOB_URI, routes=[route_to("myas"), onward])
        self.successResultOf(call.answered)
        [invite] = net.requests(PROXY, BOB, "INVITE")
        assert invite.headers.get_all("Route") == [onward]  # restored by the shim
        [record_route] = invite.headers.get_all("Record-Route")
        assert record_route == "<sip:" + PROXY + ";lr;service=myas;dialog_id=d1>"
        assert bob[0].dialog is not None
        bye = bob[0].dialog.bye()  # back through the AS by its Record-Route
        net.pump()
        assert self.final(bye).status == 200
        assert seen[0] == ("initial", "", False)
        assert ("in-dialog BYE", "d1", False) in seen
        self.assert_idle(net)


def test_a_sproutlet_without_uri_gets_the_default_one() -> None:
    given = Service("given")
    given.uri = "sip:given.example.net"
    default = Service("plain")
    SproutletProxy(
        cast(ISipReactor, SipMemoryReactor()), [given, default], hostname="sprout.example.com"
    )
    assert given.uri == "sip:given.example.net"
    assert default.uri == "sip:plain.sprout.example.com;transport=tcp"
