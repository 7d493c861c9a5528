"""The stateful proxy shell: whole calls through it over in-memory UDP, on a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, cast

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clearwater._types import ISipReactor
from clearwater.sip import Request, Response, SipUri, Uri, parse_message, parse_uri
from clearwater.sip.proxy._proxy import Proxy
from clearwater.sip.proxy._request import LocalHosts
from clearwater.sip.transaction import TimerSettings
from clearwater.sip.ua import CallFailedError, IncomingRequest, UserAgent
from clearwater.testing import LossyDatagramLink, SipMemoryReactor

ALICE, BOB, CAROL, PROXY = "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.3"
SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"

Handler = Callable[[IncomingRequest], object]


def answer(status: int, seen: Optional[list[IncomingRequest]] = None) -> Handler:
    def handler(incoming: IncomingRequest) -> None:
        if seen is not None:
            seen.append(incoming)
        if incoming.request.method == "INVITE" and status < 300:
            incoming.respond(180)
        incoming.respond(status, body=incoming.request.body if status < 300 else b"")

    return handler


def ring(incoming: IncomingRequest) -> None:
    incoming.respond(180)  # and never answers


class Net:
    """Alice calls through the proxy to Bob (and Carol); every pair of hosts is linked."""

    def __init__(
        self,
        bob: Handler,
        carol: Handler = ring,
        *,
        record_route: bool = False,
        router: Optional[Callable[[Request], Sequence[Uri]]] = None,
        timer_c: float = 180.0,
    ) -> None:
        self.reactor = SipMemoryReactor()
        reactor = cast(ISipReactor, self.reactor)
        self.alice = UserAgent(reactor, user="alice", outbound_proxy="sip:" + PROXY + ":5060")
        self.bob = UserAgent(reactor, user="bob", handler=bob)
        self.carol = UserAgent(reactor, user="carol", handler=carol)
        self.proxy = Proxy(
            reactor,
            locality=LocalHosts(hosts=[PROXY], ports=[5060]),
            record_route=record_route,
            router=router,
            timer_settings=TimerSettings(timer_c=timer_c),
        )
        for ua, host in ((self.alice, ALICE), (self.bob, BOB), (self.carol, CAROL)):
            ua.listen("udp:" + host + ":5060")
        self.proxy.listen("udp:" + PROXY + ":5060")
        ports = self.reactor.udp_listeners
        self.links = [
            LossyDatagramLink(ports[i], ports[j]) for i in range(4) for j in range(i + 1, 4)
        ]
        self.ports = {ALICE: ports[0], BOB: ports[1], CAROL: ports[2], PROXY: ports[3]}

    def pump(self) -> None:
        while sum(link.pump() for link in self.links) > 0:
            pass

    def run(self, seconds: float) -> None:
        end = self.reactor.seconds() + seconds
        while self.reactor.seconds() < end:
            self.reactor.advance(0.25)
            self.pump()

    def sent(self, host: str, to: Optional[str] = None) -> list[str]:
        """What ``host`` sent (to ``to`` only, if given), as ``INVITE`` / ``200 INVITE``."""
        out = []
        for data, (dest, _) in self.ports[host].written:
            if to is not None and dest != to:
                continue
            message = parse_message(data)
            if isinstance(message, Response):
                out.append(str(message.status) + " " + message.cseq.method)
            else:
                out.append(message.method)
        return out

    def messages(self, host: str, to: str) -> list[Request | Response]:
        return [parse_message(d) for d, (dest, _) in self.ports[host].written if dest == to]


def to(*hosts: str) -> Callable[[Request], list[Uri]]:
    """A router sending the request's user to each of ``hosts`` (parallel forking)."""

    def route(request: Request) -> list[Uri]:
        assert isinstance(request.uri, SipUri)
        return [parse_uri("sip:" + (request.uri.user or "") + "@" + host) for host in hosts]

    return route


class ProxyTests(SynchronousTestCase):
    def failure(self, d: Deferred[Any]) -> CallFailedError:
        error = self.failureResultOf(d, CallFailedError).value  # type: ignore[no-untyped-call]
        assert isinstance(error, CallFailedError)
        return error

    def test_call_through_the_proxy(self) -> None:
        bob: list[IncomingRequest] = []
        net = Net(answer(200, bob))
        call = net.alice.invite("sip:bob@" + BOB + ":5060", body=SDP)
        net.pump()
        self.successResultOf(call.answered)
        # Alice's outbound proxy gets her ACK too, and forwards it statelessly (§16.11).
        assert net.sent(PROXY, to=BOB) == ["INVITE", "ACK"]
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "180 INVITE", "200 INVITE"]
        invite = net.messages(PROXY, BOB)[0]
        assert isinstance(invite, Request)
        assert len(invite.vias) == 2 and invite.top_via.host == PROXY
        assert invite.max_forwards == 69
        assert invite.headers.get("Record-Route") is None
        final = net.messages(PROXY, ALICE)[-1]
        assert isinstance(final, Response) and len(final.vias) == 1 and final.body == SDP
        ack = net.messages(PROXY, BOB)[1]
        assert isinstance(ack, Request) and len(ack.vias) == 2 and ack.max_forwards == 69
        # Not record-routed: Bob's BYE goes straight to Alice.
        assert bob[0].dialog is not None
        bye = bob[0].dialog.bye()
        net.pump()
        assert self.successResultOf(bye).status == 200
        assert net.sent(BOB, to=ALICE) == ["BYE"]

    def test_record_route_keeps_the_proxy_on_the_path(self) -> None:
        bob: list[IncomingRequest] = []
        net = Net(answer(200, bob), record_route=True)
        call = net.alice.invite("sip:bob@" + BOB + ":5060", body=SDP)
        net.pump()
        self.successResultOf(call.answered)
        invite = net.messages(PROXY, BOB)[0]
        assert invite.headers.get("Record-Route") == "<sip:" + PROXY + ":5060;lr>"
        assert bob[0].dialog is not None
        bye = bob[0].dialog.bye()  # Bob's in-dialog request follows the route set
        net.pump()
        assert self.successResultOf(bye).status == 200
        assert net.sent(BOB, to=ALICE) == []
        assert net.sent(PROXY, to=ALICE)[-1] == "BYE"
        bye_out = net.messages(PROXY, ALICE)[-1]
        assert isinstance(bye_out, Request) and bye_out.headers.get("Route") is None

    def test_parallel_fork_the_2xx_wins_and_cancels_the_other_branch(self) -> None:
        net = Net(ring, answer(200), router=to(BOB, CAROL))
        call = net.alice.invite("sip:dave@example.com", body=SDP)
        net.pump()
        self.successResultOf(call.answered)
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        cancel = net.messages(PROXY, BOB)[1]
        assert cancel.headers.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"'
        assert net.sent(BOB, to=PROXY) == ["180 INVITE", "200 CANCEL", "487 INVITE"]
        assert net.sent(PROXY, to=ALICE)[-1] == "200 INVITE"
        assert "487 INVITE" not in net.sent(PROXY, to=ALICE)

    def test_parallel_fork_all_fail_the_lowest_code_goes_up(self) -> None:
        net = Net(answer(486), answer(404), router=to(BOB, CAROL))
        call = net.alice.invite("sip:dave@example.com", body=SDP)
        net.pump()
        assert self.failure(call.answered).response.status == 404
        # The proxy ACKed both failures hop by hop (§17.1.1.3) and sent one final upstream.
        assert net.sent(PROXY, to=BOB) == ["INVITE", "ACK"]
        assert net.sent(PROXY, to=CAROL) == ["INVITE", "ACK"]
        assert net.sent(PROXY, to=ALICE) == ["100 INVITE", "404 INVITE"]

    def test_cancel_while_forking_cancels_every_branch(self) -> None:
        net = Net(ring, ring, router=to(BOB, CAROL))
        call = net.alice.invite("sip:dave@example.com", body=SDP)
        net.pump()
        call.cancel()
        net.pump()
        assert self.failure(call.answered).response.status == 487
        for host in (BOB, CAROL):
            assert net.sent(PROXY, to=host) == ["INVITE", "CANCEL", "ACK"]
        assert net.sent(PROXY, to=ALICE)[-2:] == ["200 CANCEL", "487 INVITE"]

    def test_timer_c_cancels_a_branch_that_rings_too_long(self) -> None:
        net = Net(ring, router=to(BOB), timer_c=10.0)
        call = net.alice.invite("sip:dave@example.com", body=SDP)
        net.pump()
        net.run(9.75)
        assert net.sent(PROXY, to=BOB) == ["INVITE"]
        net.run(0.25)
        assert net.sent(PROXY, to=BOB) == ["INVITE", "CANCEL", "ACK"]
        assert self.failure(call.answered).response.status == 487

    def test_unreachable_branch_counts_as_408(self) -> None:
        # Nobody at 10.0.0.9: timer B ends the fork; the synthetic 408 goes up.
        net = Net(ring, router=to("10.0.0.9"))
        call = net.alice.invite("sip:dave@example.com", body=SDP)
        net.run(33)
        assert self.failure(call.answered).response.status == 408

    def test_max_forwards_zero_gets_483(self) -> None:
        net = Net(answer(200))
        options = net.alice.create_request("OPTIONS", "sip:bob@" + BOB + ":5060")
        options.headers.set("Max-Forwards", "0")
        d = net.alice.send(options)
        net.pump()
        assert self.successResultOf(d).status == 483
        assert net.sent(PROXY, to=BOB) == []

    def test_request_for_the_proxy_itself_gets_404(self) -> None:
        net = Net(answer(200))
        d = net.alice.request("OPTIONS", "sip:" + PROXY + ":5060")
        net.pump()
        assert self.successResultOf(d).status == 404
