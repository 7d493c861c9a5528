"""ServerTransaction.respond refuses a response it could not send, leaving the state alone."""

from __future__ import annotations

from typing import cast

from clearwater._types import ISipReactor
from clearwater.sip import Request, Response, parse_message
from clearwater.sip.resolver import NoDns, SipResolver
from clearwater.sip.stack import SipStack
from clearwater.sip.transaction import build_response
from clearwater.sip.transaction.layer import ServerTransaction
from clearwater.sip.transport._types import Flow
from clearwater.testing import SipMemoryReactor

INVITE = (
    b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-respond-1\r\n"
    b"From: <sip:alice@10.0.0.1>;tag=a\r\nTo: <sip:bob@10.0.0.2>\r\n"
    b"Call-ID: respond-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


class Answerer:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def request_received(self, transaction: ServerTransaction, request: Request) -> None:
        bad = build_response(request, 486, "Busy Here")
        bad.headers.remove("Via")
        try:
            transaction.respond(bad)
        except ValueError as e:
            self.errors.append(str(e))
        transaction.respond(build_response(request, 486, "Busy Here"))

    def ack_received(self, ack: Request, flow: Flow) -> None:
        pass

    def stray_response(self, response: Response, flow: Flow) -> None:
        pass


def test_a_response_without_via_is_refused_and_a_good_one_still_goes() -> None:
    reactor = SipMemoryReactor()
    tu = Answerer()
    stack = SipStack(cast(ISipReactor, reactor), tu, resolver=SipResolver(NoDns(), reactor))
    stack.listen("udp:10.0.0.2:5060")
    port = reactor.udp_listeners[0]
    port.deliver(INVITE, ("10.0.0.1", 5060))
    assert tu.errors == ["a response without a Via cannot be sent (RFC 3261 §18.2.2)"]
    sent = [parse_message(data) for data, _ in port.written]
    assert [m.status for m in sent if isinstance(m, Response)] == [486]
    port.deliver(INVITE, ("10.0.0.1", 5060))  # a retransmission: the 486 again
    sent = [parse_message(data) for data, _ in port.written]
    assert [m.status for m in sent if isinstance(m, Response)] == [486, 486]
