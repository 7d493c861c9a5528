"""The UA core end to end over the whole stack, in memory (RFC 3261 §8, §9, §12-§17, §22).

Two (or three) UserAgents on one SipMemoryReactor talk UDP through LossyDatagramLinks: every
datagram is real wire bytes through the transport and transaction layers, time is the
reactor's clock, and losses are chosen by the link's drop policy.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.errors import RequestTimedOut
from clearwater.sip import Response, parse_message
from clearwater.sip.auth import DigestClient, digest_ha1, make_challenge, verify_digest
from clearwater.sip.headers import AUTHORIZATION
from clearwater.sip.resolver import SipResolver
from clearwater.sip.ua import CallFailedError, Dialog, IncomingRequest, UserAgent
from clearwater.testing import (
    DropPolicy,
    LossyDatagramLink,
    SipMemoryReactor,
    drop_first,
    drop_matching,
    drop_nothing,
)

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
BOB = "sip:bob@10.0.0.2:5060"

Handler = Callable[[IncomingRequest], object]


def failure_of(case: SynchronousTestCase, d: Deferred[Any], *types: type) -> Failure:
    """``case.failureResultOf`` with a type (trial's is unannotated)."""
    result: Failure = case.failureResultOf(d, *types)  # type: ignore[no-untyped-call]
    return result


def echo(incoming: IncomingRequest) -> None:
    request = incoming.request
    if request.method == "INVITE":
        incoming.respond(180)
        incoming.respond(200, body=request.body, content_type="application/sdp")
    else:
        incoming.respond(200)


def rejection(case: SynchronousTestCase, d: Deferred[Any]) -> CallFailedError:
    error = failure_of(case, d, CallFailedError).value
    assert isinstance(error, CallFailedError)
    return error


def recording(seen: list[IncomingRequest], then: Handler = echo) -> Handler:
    def handler(incoming: IncomingRequest) -> object:
        seen.append(incoming)
        return then(incoming)

    return handler


class Network:
    """Alice at 10.0.0.1 and Bob at 10.0.0.2, joined by a lossy link."""

    def __init__(
        self,
        handler: Handler = echo,
        *,
        drop: DropPolicy = drop_nothing,
        credentials: Optional[DigestClient] = None,
        resolver: Optional[SipResolver] = None,
    ) -> None:
        self.reactor = SipMemoryReactor()
        reactor = cast(ISipReactor, self.reactor)
        self.alice = UserAgent(reactor, user="alice", credentials=credentials, resolver=resolver)
        self.bob = UserAgent(reactor, user="bob", handler=handler)
        self.alice.listen("udp:10.0.0.1:5060")
        self.bob.listen("udp:10.0.0.2:5060")
        alice_port, bob_port = self.reactor.udp_listeners
        self.link = LossyDatagramLink(alice_port, bob_port, drop=drop)
        self.links = [self.link]

    def add_peer(self, host: str, handler: Handler) -> UserAgent:
        ua = UserAgent(cast(ISipReactor, self.reactor), user="peer", handler=handler)
        ua.listen("udp:" + host + ":5060")
        self.links.append(
            LossyDatagramLink(self.reactor.udp_listeners[0], self.reactor.udp_listeners[-1])
        )
        return ua

    def pump(self) -> None:
        busy = True
        while busy:
            busy = sum(link.pump() for link in self.links) > 0

    def run(self, seconds: float, step: float = 0.125) -> None:
        """Advance the clock in small steps (binary fractions, so the sums are exact),
        pumping the links after each."""
        self.pump()
        end = self.reactor.seconds() + seconds
        while self.reactor.seconds() < end:
            self.reactor.advance(min(step, end - self.reactor.seconds()))
            self.pump()

    def sent_by(self, index: int) -> list[bytes]:
        """Datagrams written by the UDP port ``index`` (0: Alice, 1: Bob)."""
        return [data for data, _ in self.reactor.udp_listeners[index].written]


def methods(datagrams: list[bytes]) -> list[str]:
    """Start-line summaries: ``INVITE`` or ``200 INVITE``."""
    out = []
    for data in datagrams:
        message = parse_message(data)
        if isinstance(message, Response):
            out.append(str(message.status) + " " + message.cseq.method)
        else:
            out.append(message.cseq.method)
    return out


class RequestTests(SynchronousTestCase):
    def test_options_gets_its_final_response(self) -> None:
        net = Network()
        d = net.alice.request("OPTIONS", BOB)
        net.pump()
        response = self.successResultOf(d)
        assert response.status == 200
        # The transport layer wrote our sent-by and rport; Bob filled in rport (RFC 3581).
        assert response.top_via.sent_by == "10.0.0.1:5060"
        assert response.top_via.param("rport") == "5060"
        assert response.top_via.received == "10.0.0.1"

    def test_default_handler_answers_options_and_rejects_the_rest(self) -> None:
        net = Network()
        net.bob.handler = None
        options = net.alice.request("OPTIONS", BOB)
        message = net.alice.request("MESSAGE", BOB, body=b"hi", content_type="text/plain")
        net.pump()
        assert self.successResultOf(options).headers.get("Allow") is not None
        assert self.successResultOf(message).status == 501

    def test_handler_exception_becomes_500(self) -> None:
        def broken(incoming: IncomingRequest) -> None:
            raise RuntimeError("bug")

        net = Network(broken)
        d = net.alice.request("OPTIONS", BOB)
        net.pump()
        assert self.successResultOf(d).status == 500
        errors = self.flushLoggedErrors(RuntimeError)  # type: ignore[no-untyped-call]
        assert len(errors) == 1

    def test_unsupported_require_gets_420(self) -> None:
        net = Network()
        d = net.alice.request("OPTIONS", BOB, headers=[("Require", "100rel, foo")])
        net.pump()
        response = self.successResultOf(d)
        assert response.status == 420
        assert response.headers.get("Unsupported") == "100rel, foo"

    def test_request_in_unknown_dialog_gets_481(self) -> None:
        net = Network()
        request = net.alice.create_request("INFO", BOB, to="<" + BOB + ">;tag=nosuch")
        d = net.alice.send(request)
        net.pump()
        assert self.successResultOf(d).status == 481

    def test_lost_request_is_retransmitted_on_timer_e(self) -> None:
        net = Network(drop=drop_first(1))
        d = net.alice.request("OPTIONS", BOB)
        net.pump()
        assert not d.called
        net.run(0.5)
        assert self.successResultOf(d).status == 200
        assert [x.seq for x in net.link.dropped] == [0]

    def test_non_invite_retransmissions_follow_timer_e_until_timer_f(self) -> None:
        net = Network(drop=lambda data, seq: True)
        times: list[float] = []
        port = net.reactor.udp_listeners[0]
        d = net.alice.request("OPTIONS", BOB)
        seen = 0
        while net.reactor.seconds() < 40:
            if len(port.written) > seen:
                times.extend([net.reactor.seconds()] * (len(port.written) - seen))
                seen = len(port.written)
            net.reactor.advance(0.25)
            net.pump()
        # RFC 3261 §17.1.2.2: T1, doubling, capped at T2 = 4 s; timer F at 64*T1 = 32 s.
        assert times == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        failure_of(self, d, RequestTimedOut)

    def test_invite_retransmissions_follow_timer_a_until_timer_b(self) -> None:
        net = Network(drop=lambda data, seq: True)
        port = net.reactor.udp_listeners[0]
        call = net.alice.invite(BOB, body=SDP)
        times: list[float] = []
        seen = 0
        while net.reactor.seconds() < 40:
            if len(port.written) > seen:
                times.extend([net.reactor.seconds()] * (len(port.written) - seen))
                seen = len(port.written)
            net.reactor.advance(0.25)
            net.pump()
        # §17.1.1.2: timer A doubles with no cap; timer B at 64*T1.
        assert times == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        failure_of(self, call.answered, RequestTimedOut)

    def test_timers_of_concurrent_transactions_keep_their_own_schedules(self) -> None:
        # One clock call serves every transaction timer: a timer due before the one it waits for
        # (OPTIONS' timer E at 1.25 while INVITE's timer A is next at 1.5) must move it forward.
        net = Network(drop=lambda data, seq: True)
        port = net.reactor.udp_listeners[0]
        call = net.alice.invite(BOB, body=SDP)
        sent: list[tuple[float, str]] = []
        options = None
        while net.reactor.seconds() < 4:
            if net.reactor.seconds() == 0.75:
                options = net.alice.request("OPTIONS", BOB)
            for data, _ in port.written[len(sent) :]:
                sent.append((net.reactor.seconds(), methods([data])[0]))
            net.reactor.advance(0.25)
            net.pump()
        assert sent == [
            (0, "INVITE"),
            (0.5, "INVITE"),
            (0.75, "OPTIONS"),
            (1.25, "OPTIONS"),
            (1.5, "INVITE"),
            (2.25, "OPTIONS"),
            (3.5, "INVITE"),
        ]
        assert options is not None and not options.called and not call.answered.called


class CallTests(SynchronousTestCase):
    def test_call_is_answered_acked_and_hung_up(self) -> None:
        incoming: list[IncomingRequest] = []

        def handler(request: IncomingRequest) -> None:
            incoming.append(request)
            echo(request)

        net = Network(handler)
        call = net.alice.invite(BOB, body=SDP)
        provisional: list[int] = []
        call.on_provisional = lambda r: provisional.append(r.status)
        net.pump()
        dialog = self.successResultOf(call.answered)
        assert provisional == [180]
        uas = incoming[0]
        ack = self.successResultOf(uas.acked)
        assert ack.cseq.seq == 1 and ack.cseq.method == "ACK"
        assert uas.dialog is not None and uas.dialog.remote_tag == dialog.local_tag
        assert str(dialog.remote_target) == "sip:bob@10.0.0.2:5060"  # Bob's Contact
        bye = dialog.bye()
        net.pump()
        assert self.successResultOf(bye).status == 200
        self.successResultOf(uas.dialog.terminated)
        self.successResultOf(dialog.terminated)
        assert methods(net.sent_by(0)) == ["INVITE", "ACK", "BYE"]
        # No 100 (Trying): the handler answered at once (RFC 3261 §17.2.1).
        assert methods(net.sent_by(1)) == ["180 INVITE", "200 INVITE", "200 BYE"]

    def test_trying_is_sent_at_once_when_the_handler_answers_later(self) -> None:
        later: list[IncomingRequest] = []
        net = Network(later.append)
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        assert methods(net.sent_by(1)) == ["100 INVITE"]
        trying = parse_message(net.sent_by(1)[0])
        assert isinstance(trying, Response) and trying.to.tag is None
        later[0].respond(200, body=SDP, content_type="application/sdp")
        net.pump()
        self.successResultOf(call.answered)
        assert methods(net.sent_by(1)) == ["100 INVITE", "200 INVITE"]

    def test_echoed_sdp(self) -> None:
        net = Network()
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        self.successResultOf(call.answered)
        final = parse_message(net.sent_by(1)[1])
        assert final.body == SDP
        assert final.headers.get("Content-Type") == "application/sdp"

    def test_rejected_call_fails_with_the_response_and_is_acked_by_the_transaction(self) -> None:
        net = Network(lambda incoming: incoming.respond(486))
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        failure = rejection(self, call.answered)
        assert failure.response.status == 486
        assert methods(net.sent_by(0)) == ["INVITE", "ACK"]

    def test_2xx_is_retransmitted_until_the_ack_arrives(self) -> None:
        net = Network(drop=drop_matching(lambda d: d.startswith(b"ACK "), limit=2))
        uas: list[IncomingRequest] = []
        net.bob.handler = recording(uas)
        call = net.alice.invite(BOB, body=SDP)
        net.run(5)
        self.successResultOf(call.answered)
        self.successResultOf(uas[0].acked)
        # §13.3.1.4: the 200 at 0, then T1 and 2*T1 later; Alice ACKs each copy.
        assert methods(net.sent_by(1)).count("200 INVITE") == 3
        assert methods(net.sent_by(0)).count("ACK") == 3

    def test_missing_ack_ends_the_call_with_bye(self) -> None:
        net = Network(drop=drop_matching(lambda d: d.startswith(b"ACK ")))
        uas: list[IncomingRequest] = []
        net.bob.handler = recording(uas)
        call = net.alice.invite(BOB, body=SDP)
        net.run(40, step=0.5)
        dialog = self.successResultOf(call.answered)
        failure_of(self, uas[0].acked, RequestTimedOut)
        assert uas[0].dialog is not None
        self.successResultOf(uas[0].dialog.terminated)
        self.successResultOf(dialog.terminated)  # Alice got Bob's BYE
        assert "BYE" in methods(net.sent_by(1))

    def test_cancel_gets_487_for_the_invite(self) -> None:
        uas: list[IncomingRequest] = []

        def ringing(incoming: IncomingRequest) -> None:
            uas.append(incoming)
            incoming.respond(180)

        net = Network(ringing)
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        call.cancel()
        net.pump()
        failure = rejection(self, call.answered)
        assert failure.response.status == 487
        cancel = self.successResultOf(uas[0].cancelled)
        assert cancel.method == "CANCEL"
        assert methods(net.sent_by(0)) == ["INVITE", "CANCEL", "ACK"]
        assert methods(net.sent_by(1)) == ["180 INVITE", "200 CANCEL", "487 INVITE"]

    def test_cancel_for_an_unknown_invite_gets_481(self) -> None:
        net = Network()
        request = net.alice.create_request("CANCEL", BOB)
        d = net.alice.send(request)
        net.pump()
        assert self.successResultOf(d).status == 481

    def test_in_dialog_request_with_old_cseq_gets_500(self) -> None:
        net = Network()
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        dialog = self.successResultOf(call.answered)
        first = dialog.request("INFO")
        net.pump()
        assert self.successResultOf(first).status == 200
        stale = dialog.create_request("INFO", cseq=1)
        d = net.alice.send(stale, dialog=dialog)
        net.pump()
        assert self.successResultOf(d).status == 500


class DigestTests(SynchronousTestCase):
    def challenging(self, password: str) -> tuple[Handler, list[IncomingRequest]]:
        seen: list[IncomingRequest] = []
        ha1 = digest_ha1("alice", "example.com", password)

        def handler(incoming: IncomingRequest) -> None:
            seen.append(incoming)
            credentials = incoming.request.headers.first(AUTHORIZATION)
            if credentials is None or not verify_digest(credentials, ha1=ha1, method="INVITE"):
                challenge = make_challenge("example.com", "nonce" + str(len(seen)))
                incoming.respond(401, headers=[("WWW-Authenticate", str(challenge))])
            else:
                echo(incoming)

        return handler, seen

    def test_challenged_invite_is_retried_with_credentials(self) -> None:
        handler, seen = self.challenging("secret")
        net = Network(handler, credentials=DigestClient("alice", "secret"))
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        self.successResultOf(call.answered)
        assert [i.request.cseq.seq for i in seen] == [1, 2]
        assert seen[1].request.call_id == seen[0].request.call_id
        assert seen[1].request.top_via.branch != seen[0].request.top_via.branch
        assert methods(net.sent_by(0)) == ["INVITE", "ACK", "INVITE", "ACK"]
        # The 2xx's ACK carries the credentials of the INVITE it answers (§22.1), though
        # that INVITE's transaction forgot its request at the 2xx.
        ack = parse_message(net.sent_by(0)[3])
        credentials = seen[1].request.headers.get_all("Authorization")
        assert credentials and ack.headers.get_all("Authorization") == credentials

    def test_wrong_password_is_not_retried_forever(self) -> None:
        handler, seen = self.challenging("secret")
        net = Network(handler, credentials=DigestClient("alice", "wrong"))
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        failure = rejection(self, call.answered)
        assert failure.response.status == 401
        assert len(seen) == 2

    def test_challenge_without_credentials_is_returned(self) -> None:
        handler, _ = self.challenging("secret")
        net = Network(handler)
        d = net.alice.request("OPTIONS", BOB)
        net.pump()
        assert self.successResultOf(d).status == 401


def srv(priority: int, weight: int, port: int, target: bytes) -> dns.Record_SRV:
    record: dns.Record_SRV = dns.Record_SRV(priority, weight, port, target)  # type: ignore[no-untyped-call]
    return record


class _SrvDns(ResolverBase):
    """example.com: two SRV targets for UDP, 10.0.0.2 first, then 10.0.0.3."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def _lookup(self, name: bytes, cls: int, type: int, timeout: object) -> Deferred[Any]:
        host = name.decode()
        records: list[dns.RRHeader] = []
        if type == dns.SRV and host == "_sip._udp.example.com":
            records = [
                dns.RRHeader(name, dns.SRV, ttl=60, payload=srv(1, 0, 5060, b"one.example.com")),
                dns.RRHeader(name, dns.SRV, ttl=60, payload=srv(2, 0, 5060, b"two.example.com")),
            ]
        elif type == dns.A and host in ("one.example.com", "two.example.com"):
            address = "10.0.0.2" if host.startswith("one") else "10.0.0.3"
            records = [dns.RRHeader(name, dns.A, ttl=60, payload=dns.Record_A(address))]  # type: ignore[no-untyped-call]
        return defer.succeed((records, [], []))


class FailoverTests(SynchronousTestCase):
    def test_503_moves_to_the_next_target_and_blacklists_the_first(self) -> None:
        resolver_holder: list[SipResolver] = []
        net = Network(lambda incoming: incoming.respond(503))
        resolver = SipResolver(_SrvDns(), cast(ISipReactor, net.reactor))
        resolver_holder.append(resolver)
        net.alice.stack.resolver = resolver
        carol = net.add_peer("10.0.0.3", echo)
        d = net.alice.request("OPTIONS", "sip:carol@example.com")
        net.pump()
        assert self.successResultOf(d).status == 200
        assert [
            t.host
            for t in self.successResultOf(resolver.resolve_host("example.com", None, None, False))
        ] == [
            "10.0.0.3",
            "10.0.0.2",
        ]
        assert carol.stack.transport.stats["UDP"].messages_received == 1

    def test_timeout_moves_to_the_next_target(self) -> None:
        net = Network(drop=lambda data, seq: True)  # Bob never hears anything
        net.alice.stack.resolver = SipResolver(_SrvDns(), cast(ISipReactor, net.reactor))
        net.add_peer("10.0.0.3", echo)
        d = net.alice.request("OPTIONS", "sip:carol@example.com")
        net.run(33, step=0.5)
        assert self.successResultOf(d).status == 200


def test_dialog_strict_route_fix_up() -> None:
    """§12.2.1.1: a first route without lr becomes the Request-URI."""
    reactor = SipMemoryReactor()
    ua = UserAgent(cast(ISipReactor, reactor))
    from clearwater.sip import NameAddr, parse_uri

    dialog = Dialog(
        ua,
        call_id="c",
        local_tag="l",
        remote_tag="r",
        local_uri=NameAddr(parse_uri("sip:a@x")),
        remote_uri=NameAddr(parse_uri("sip:b@y")),
        remote_target=parse_uri("sip:b@10.0.0.9"),
        route_set=[NameAddr(parse_uri("sip:p1.example.com")), NameAddr(parse_uri("sip:p2;lr"))],
        local_cseq=5,
        remote_cseq=None,
    )
    request = dialog.create_request("INFO")
    assert str(request.uri) == "sip:p1.example.com"
    assert request.headers.get_all("Route") == ["<sip:p2;lr>", "<sip:b@10.0.0.9>"]
    assert request.cseq.seq == 6
    loose = Dialog(
        ua,
        call_id="c",
        local_tag="l",
        remote_tag="r",
        local_uri=NameAddr(parse_uri("sip:a@x")),
        remote_uri=NameAddr(parse_uri("sip:b@y")),
        remote_target=parse_uri("sip:b@10.0.0.9"),
        route_set=[NameAddr(parse_uri("sip:p1;lr"))],
        local_cseq=1,
        remote_cseq=None,
    )
    request = loose.create_request("INFO")
    assert str(request.uri) == "sip:b@10.0.0.9"
    assert request.headers.get_all("Route") == ["<sip:p1;lr>"]


class ReinviteTests(SynchronousTestCase):
    def test_reinvite_is_answered_and_acked_in_the_same_dialog(self) -> None:
        uas: list[IncomingRequest] = []
        net = Network(recording(uas))
        call = net.alice.invite(BOB, body=SDP)
        net.pump()
        dialog = self.successResultOf(call.answered)
        d = dialog.request("INVITE", body=SDP, content_type="application/sdp")
        net.pump()
        assert self.successResultOf(d).status == 200
        assert uas[1].dialog is uas[0].dialog  # Bob saw it inside the dialog
        self.successResultOf(uas[1].acked)
        assert methods(net.sent_by(0)) == ["INVITE", "ACK", "INVITE", "ACK"]
        acks = [parse_message(x) for x in net.sent_by(0) if x.startswith(b"ACK")]
        assert [a.cseq.seq for a in acks] == [1, 2]
