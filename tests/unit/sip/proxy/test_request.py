"""The request-side proxy steps: RFC 3261 §16.3, §16.4, §16.6 and RFC 5658.

Messages are written as wire text (``\\n`` stands for CRLF) and parsed with ``parse_message``;
the §16.12.1 routing examples follow the RFC's own messages.
"""

from __future__ import annotations

import re
import secrets

import pytest

from clearwater.sip import NameAddr, Request, SipUri, parse_message, parse_sip_uri, parse_uri
from clearwater.sip.proxy._request import (
    LocalHosts,
    Locality,
    ack_is_forwardable,
    add_via,
    branch_for,
    branch_loop_hash,
    decrement_max_forwards,
    detect_loop,
    next_hop,
    preprocess_routes,
    record_route,
    validate_request,
)


def wire(text: str) -> bytes:
    """Wire bytes from text written with ``\\n`` line ends."""
    return text.replace("\n", "\r\n").encode()


def msg(text: str) -> Request:
    message = parse_message(wire(text))
    assert isinstance(message, Request)
    return message


def invite(uri: str = "sip:callee@domain.com", extra: str = "", method: str = "INVITE") -> str:
    """An RFC 3261 §16.12.1.1 style request from U1, as wire text; ``extra`` header lines go
    after Max-Forwards."""
    return (
        f"{method} {uri} SIP/2.0\n"
        "Via: SIP/2.0/UDP u1.example.com;branch=z9hG4bKnashds8\n"
        "Max-Forwards: 70\n"
        f"{extra}"
        "To: <sip:callee@domain.com>\n"
        "From: <sip:caller@example.com>;tag=9fxced76sl\n"
        "Call-ID: 3848276298220188511@u1.example.com\n"
        f"CSeq: 1 {method}\n"
        "Content-Length: 0\n\n"
    )


@pytest.fixture
def fixed_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the random To tag of rejections ``a1b2c3d4``."""
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: "a1b2c3d4")


# --------------------------------------------------------------------------- Locality


SPROUT = LocalHosts(hosts=("sprout.example.com", "10.0.0.1", "2001:db8::1"), ports=(5060, 5054))


def test_local_hosts_is_a_locality() -> None:
    locality: Locality = SPROUT
    assert locality.is_local(parse_sip_uri("sip:sprout.example.com"))
    assert repr(SPROUT) == (
        "LocalHosts(hosts=['10.0.0.1', '2001:db8::1', 'sprout.example.com'], ports=[5054, 5060])"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "sip:sprout.example.com",
        "sip:SPROUT.Example.COM;lr",
        "sip:sprout.example.com.",
        "sip:sprout.example.com:5054;transport=tcp",
        "sip:10.0.0.1:5060",
        "sip:[2001:db8::1]",
        "sip:[2001:DB8:0:0::1]:5054",
        "sip:alice@sprout.example.com",
    ],
)
def test_local_hosts_matches(uri: str) -> None:
    assert SPROUT.is_local(parse_sip_uri(uri))


@pytest.mark.parametrize(
    "uri",
    [
        "sip:bono.example.com",
        "sip:sprout.example.com:5070",
        "sip:10.0.0.2",
        "sip:[2001:db8::2]",
        "sips:sprout.example.com",  # default port 5061 is not ours
        "sip:sprout.example.com;transport=tls",  # nor for transport=tls
    ],
)
def test_local_hosts_rejects(uri: str) -> None:
    assert not SPROUT.is_local(parse_sip_uri(uri))


def test_local_hosts_default_tls_port() -> None:
    tls = LocalHosts(hosts=("[2001:db8::1]",), ports=(5061,))
    assert tls.is_local(parse_sip_uri("sips:[2001:db8::1]"))
    assert tls.is_local(parse_sip_uri("sip:[2001:db8::1];transport=TLS"))
    assert not tls.is_local(parse_sip_uri("sip:[2001:db8::1]"))


# --------------------------------------------------------------------------- §16.3 validation


def test_valid_request_may_be_forwarded() -> None:
    assert validate_request(msg(invite())) is None
    assert validate_request(msg(invite("tel:+1-201-555-0123"))) is None
    assert validate_request(msg(invite("sips:callee@domain.com"))) is None


@pytest.mark.usefixtures("fixed_tag")
def test_unsupported_uri_scheme_gets_416() -> None:
    response = validate_request(msg(invite("urn:service:sos")))
    assert response is not None
    assert response.to_bytes() == wire(
        "SIP/2.0 416 Unsupported URI Scheme\n"
        "Via: SIP/2.0/UDP u1.example.com;branch=z9hG4bKnashds8\n"
        "From: <sip:caller@example.com>;tag=9fxced76sl\n"
        "To: <sip:callee@domain.com>;tag=a1b2c3d4\n"
        "Call-ID: 3848276298220188511@u1.example.com\n"
        "CSeq: 1 INVITE\n"
        "Content-Length: 0\n\n"
    )


@pytest.mark.usefixtures("fixed_tag")
def test_max_forwards_zero_gets_483() -> None:
    request = msg(invite().replace("Max-Forwards: 70", "Max-Forwards: 0"))
    response = validate_request(request)
    assert response is not None
    assert (response.status, response.reason) == (483, "Too Many Hops")
    assert str(response.to) == "<sip:callee@domain.com>;tag=a1b2c3d4"


def test_options_with_max_forwards_zero_also_gets_483() -> None:
    request = msg(invite(method="OPTIONS").replace("Max-Forwards: 70", "Max-Forwards: 0"))
    response = validate_request(request)
    assert response is not None
    assert response.status == 483
    assert response.cseq.method == "OPTIONS"


def test_max_forwards_one_or_absent_may_be_forwarded() -> None:
    assert validate_request(msg(invite().replace("Max-Forwards: 70", "Max-Forwards: 1"))) is None
    assert validate_request(msg(invite().replace("Max-Forwards: 70\n", ""))) is None


def test_random_to_tag_is_eight_hex_digits() -> None:
    request = msg(invite().replace("Max-Forwards: 70", "Max-Forwards: 0"))
    response = validate_request(request)
    assert response is not None
    assert re.fullmatch(r"[0-9a-f]{8}", response.to.tag or "")


def test_in_dialog_request_keeps_its_to_tag() -> None:
    text = invite().replace("Max-Forwards: 70", "Max-Forwards: 0")
    request = msg(text.replace("To: <sip:callee@domain.com>", "To: <sip:callee@domain.com>;tag=b2"))
    response = validate_request(request)
    assert response is not None
    assert response.headers.get("To") == "<sip:callee@domain.com>;tag=b2"


def test_scheme_is_checked_before_max_forwards() -> None:
    request = msg(invite("mailto:callee@domain.com").replace("Max-Forwards: 70", "Max-Forwards: 0"))
    response = validate_request(request)
    assert response is not None
    assert response.status == 416


@pytest.mark.parametrize("max_forwards", ["0", "70"])
def test_ack_is_never_answered(max_forwards: str) -> None:
    request = msg(invite(method="ACK").replace("Max-Forwards: 70", "Max-Forwards: " + max_forwards))
    assert validate_request(request) is None
    assert ack_is_forwardable(request) is (max_forwards != "0")


def test_ack_with_bad_scheme_or_proxy_require_is_dropped() -> None:
    assert not ack_is_forwardable(msg(invite("urn:service:sos", method="ACK")))
    ack = msg(invite(extra="Proxy-Require: foo\n", method="ACK"))
    assert validate_request(ack) is None
    assert not ack_is_forwardable(ack)
    assert ack_is_forwardable(ack, supported=("foo",))


def test_ack_is_forwardable_is_for_acks_only() -> None:
    with pytest.raises(ValueError, match="not an ACK: INVITE"):
        ack_is_forwardable(msg(invite()))


@pytest.mark.usefixtures("fixed_tag")
def test_unknown_proxy_require_gets_420_with_unsupported() -> None:
    request = msg(invite(extra="Proxy-Require: sec-agree, foo\nProxy-Require: Bar, FOO\n"))
    response = validate_request(request, supported=("Sec-Agree", "100rel"))
    assert response is not None
    assert response.to_bytes() == wire(
        "SIP/2.0 420 Bad Extension\n"
        "Via: SIP/2.0/UDP u1.example.com;branch=z9hG4bKnashds8\n"
        "From: <sip:caller@example.com>;tag=9fxced76sl\n"
        "To: <sip:callee@domain.com>;tag=a1b2c3d4\n"
        "Call-ID: 3848276298220188511@u1.example.com\n"
        "CSeq: 1 INVITE\n"
        "Content-Length: 0\n"
        "Unsupported: foo, Bar\n\n"
    )


def test_supported_proxy_require_may_be_forwarded() -> None:
    request = msg(invite(extra="Proxy-Require: sec-agree\n"))
    assert validate_request(request, supported=("sec-agree",)) is None


def test_malformed_proxy_require_gets_400() -> None:
    response = validate_request(msg(invite(extra="Proxy-Require: foo bar\n")))
    assert response is not None
    assert (response.status, response.reason) == (400, "Bad Proxy-Require")


# --------------------------------------------------------------------------- loop detection

P = "p.example.com:5060"
Q = "q.example.com"


def forward(received: Request, host: str, port: int | None, *, uri: str | None = None) -> Request:
    """What a proxy at ``host:port`` sends for ``received``: retargeted to ``uri`` if given,
    Max-Forwards decremented, its Via added; returned as the next hop parses it."""
    sent = received.copy()
    if uri is not None:
        sent.uri = parse_uri(uri)
    decrement_max_forwards(sent)
    add_via(sent, "UDP", host, port, branch_for(received))
    return msg(sent.to_bytes().decode().replace("\r\n", "\n"))


def test_branch_layout() -> None:
    request = msg(invite())
    one, two = branch_for(request), branch_for(request)
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{16}\.[0-9a-f]{32}", one)
    assert one != two  # a new client transaction each time (one per fork)
    assert branch_loop_hash(one) == one[-32:] == two[-32:] == branch_loop_hash(two)


def test_branch_without_loop_detection() -> None:
    branch = branch_for(msg(invite()), loop_detect=False)
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{16}", branch)
    assert branch_loop_hash(branch) is None


def test_branch_loop_hash_of_foreign_branches() -> None:
    assert branch_loop_hash("z9hG4bKnashds8") is None
    assert branch_loop_hash("z9hG4bK776asdhds.0123") is None
    assert branch_loop_hash("z9hG4bK" + "A" * 16 + "." + "B" * 32) == "b" * 32


def test_loop_back_through_another_proxy_is_a_loop() -> None:
    received = msg(invite())
    back = forward(forward(received, "p.example.com", 5060), Q, None)
    assert back.max_forwards == 68
    assert detect_loop(back, [P])


def test_first_visit_is_not_a_loop() -> None:
    assert not detect_loop(msg(invite()), [P])
    assert not detect_loop(msg(invite()), [])


def test_retargeted_request_coming_back_is_a_spiral_until_it_loops() -> None:
    received = msg(invite())
    sent = forward(received, "p.example.com", 5060, uri="sip:callee@u2.domain.com")
    back = forward(sent, Q, None)
    assert not detect_loop(back, [P])  # the Request-URI changed: a spiral
    # P processes it again, forwards it unchanged this time, and it comes back once more
    again = forward(forward(back, "p.example.com", 5060), Q, None)
    assert [via.host for via in again.vias] == [
        Q,
        "p.example.com",
        Q,
        "p.example.com",
        "u1.example.com",
    ]
    assert detect_loop(again, [P])


@pytest.mark.parametrize(
    "changed",
    [
        "Route: <sip:p.example.com;lr;odi=a7f3>\n",
        "Proxy-Require: sec-agree\n",
        'Proxy-Authorization: Digest username="caller", realm="example.com", nonce="n", '
        'uri="sip:callee@domain.com", response="0123456789abcdef0123456789abcdef"\n',
    ],
)
def test_changed_routing_fields_make_a_spiral(changed: str) -> None:
    back = forward(forward(msg(invite()), "p.example.com", 5060), Q, None)
    text = back.to_bytes().decode().replace("\r\n", "\n")
    spiral = msg(text.replace("Max-Forwards: 68\n", "Max-Forwards: 68\n" + changed))
    assert detect_loop(back, [P])
    assert not detect_loop(spiral, [P])


def test_route_list_refolded_is_still_a_loop() -> None:
    received = msg(invite(extra="Route: <sip:x.example.com;lr>, <sip:y.example.com;lr>\n"))
    back = forward(forward(received, "p.example.com", 5060), Q, None)
    text = back.to_bytes().decode().replace("\r\n", "\n")
    refolded = msg(
        text.replace(
            "Route: <sip:x.example.com;lr>, <sip:y.example.com;lr>\n",
            "Route: <sip:x.example.com;lr>\nRoute: <sip:y.example.com;lr>\n",
        )
    )
    assert refolded.headers.count("Route") == 2
    assert detect_loop(refolded, [P])


def test_another_proxy_with_the_same_layout_is_not_us() -> None:
    # Q uses this module too: its hash over the same fields matches, only sent-by tells apart.
    at_p = forward(msg(invite()), Q, None)
    assert not detect_loop(at_p, [P])
    assert detect_loop(at_p, [Q])  # had it come back to Q, it would be a loop


def test_our_sent_by_with_a_foreign_branch_is_not_a_loop() -> None:
    request = msg(
        invite().replace("Via:", "Via: SIP/2.0/UDP p.example.com:5060;branch=z9hG4bK1\nVia:", 1)
    )
    assert not detect_loop(request, [P])


def test_sent_by_comparison() -> None:
    back = forward(forward(msg(invite()), "P.Example.COM", 5060), Q, None)
    assert detect_loop(back, ["p.example.com:5060"])
    assert not detect_loop(back, ["p.example.com"])  # a port in the Via, none in ours
    assert not detect_loop(back, ["p.example.com:5061"])


def test_ipv6_sent_by() -> None:
    back = forward(forward(msg(invite()), "2001:db8::1", 5060), Q, None)
    assert back.vias[1].sent_by == "[2001:db8::1]:5060"
    assert detect_loop(back, ["[2001:DB8:0::1]:5060"])
    assert not detect_loop(back, ["2001:db8::1"])


# --------------------------------------------------------------------------- §16.4, §16.6 routes

P1 = LocalHosts(hosts=("p1.example.com",), ports=(5060,))
P2 = LocalHosts(hosts=("p2.domain.com",), ports=(5060,))
P4 = LocalHosts(hosts=("p4.domain.com",), ports=(5060,))


def bye(uri: str, route: str) -> str:
    return (
        f"BYE {uri} SIP/2.0\n"
        "Via: SIP/2.0/UDP u1.example.com;branch=z9hG4bKbye1\n"
        "Max-Forwards: 70\n"
        f"Route: {route}\n"
        "To: <sip:callee@domain.com>;tag=b2\n"
        "From: <sip:caller@example.com>;tag=9fxced76sl\n"
        "Call-ID: 3848276298220188511@u1.example.com\n"
        "CSeq: 2 BYE\n"
        "Content-Length: 0\n\n"
    )


def test_rfc3261_16_12_1_1_record_route() -> None:
    request = msg(invite())
    record_route(request, parse_sip_uri("sip:p1.example.com"))  # P1
    request.uri = parse_uri("sip:callee@u2.domain.com")  # P2's location service
    record_route(request, parse_sip_uri("sip:p2.domain.com;lr"))  # P2
    assert request.headers.get_all("Record-Route") == [
        "<sip:p2.domain.com;lr>",
        "<sip:p1.example.com;lr>",
    ]


def test_rfc3261_16_12_1_1_loose_routing_at_p1() -> None:
    request = msg(bye("sip:callee@u2.domain.com", "<sip:p1.example.com;lr>,<sip:p2.domain.com;lr>"))
    removed = preprocess_routes(request, P1)
    assert removed == NameAddr.parse("<sip:p1.example.com;lr>")
    assert next_hop(request) == parse_uri("sip:p2.domain.com;lr")
    assert request.to_bytes() == wire(bye("sip:callee@u2.domain.com", "<sip:p2.domain.com;lr>"))


def test_rfc3261_16_12_1_1_loose_routing_at_p2() -> None:
    request = msg(bye("sip:callee@u2.domain.com", "<sip:p2.domain.com;lr>"))
    assert preprocess_routes(request, P2) == NameAddr.parse("<sip:p2.domain.com;lr>")
    assert "Route" not in request.headers
    assert next_hop(request) == parse_uri("sip:callee@u2.domain.com")


def test_rfc3261_16_12_1_2_loose_router_before_a_strict_router() -> None:
    request = msg(
        bye(
            "sip:callee@u1.example.com",
            "<sip:p4.domain.com;lr>,<sip:p3.middle.com>,<sip:p2.domain.com;lr>,"
            "<sip:p1.example.com;lr>",
        )
    )
    assert preprocess_routes(request, P4) == NameAddr.parse("<sip:p4.domain.com;lr>")
    assert next_hop(request) == parse_uri("sip:p3.middle.com")
    assert request.to_bytes() == wire(
        bye(
            "sip:p3.middle.com",
            "<sip:p2.domain.com;lr>, <sip:p1.example.com;lr>, <sip:callee@u1.example.com>",
        )
    )


def test_rfc3261_16_12_1_2_fix_up_after_a_strict_router() -> None:
    request = msg(
        bye("sip:p2.domain.com;lr", "<sip:p1.example.com;lr>,<sip:callee@u1.example.com>")
    )
    assert preprocess_routes(request, P2) is None
    assert request.to_bytes() == wire(bye("sip:callee@u1.example.com", "<sip:p1.example.com;lr>"))
    assert next_hop(request) == parse_uri("sip:p1.example.com;lr")


def test_fix_up_then_our_own_route_is_removed() -> None:
    request = msg(
        bye("sip:p2.domain.com;lr", "<sip:p2.domain.com;lr>, <sip:callee@u1.example.com>")
    )
    assert preprocess_routes(request, P2) == NameAddr.parse("<sip:p2.domain.com;lr>")
    assert str(request.uri) == "sip:callee@u1.example.com"
    assert "Route" not in request.headers


def test_user_at_our_host_is_not_a_record_route_value() -> None:
    text = bye("sip:alice@p2.domain.com", "<sip:p9.example.com;lr>,<sip:p8.example.com;lr>")
    request = msg(text)
    assert preprocess_routes(request, P2) is None
    assert request.to_bytes() == wire(text)


def test_our_uri_without_route_is_left_alone() -> None:
    text = invite("sip:p2.domain.com;lr")
    request = msg(text)
    assert preprocess_routes(request, P2) is None
    assert request.to_bytes() == wire(text)


def test_only_the_first_of_several_values_on_one_line_is_removed() -> None:
    text = bye(
        "sip:callee@u2.domain.com",
        "<sip:p1.example.com;lr>, <sip:p1.example.com;lr;second>\nRoute:  <sip:p2.domain.com;lr>",
    )
    request = msg(text)
    assert preprocess_routes(request, P1) == NameAddr.parse("<sip:p1.example.com;lr>")
    assert request.headers.get_all("Route") == [
        "<sip:p1.example.com;lr;second>",
        "<sip:p2.domain.com;lr>",
    ]
    # the untouched second line keeps its raw text, odd spacing and all
    assert b"\r\nRoute:  <sip:p2.domain.com;lr>\r\n" in request.to_bytes()


def test_removed_route_keeps_its_parameters() -> None:
    sprout = LocalHosts(hosts=("sprout.example.com",), ports=(5054,))
    request = msg(
        bye(
            "sip:callee@u2.domain.com",
            "<sip:sprout.example.com:5054;transport=TCP;lr;orig>;billing-role=charge-orig",
        )
    )
    removed = preprocess_routes(request, sprout)
    assert removed is not None
    uri = removed.uri
    assert isinstance(uri, SipUri)
    assert uri.has_param("orig") and uri.transport == "tcp"
    assert removed.param("billing-role") == "charge-orig"


def test_first_route_not_ours_is_kept() -> None:
    text = bye("sip:callee@u2.domain.com", "<sip:p2.domain.com;lr>")
    request = msg(text)
    assert preprocess_routes(request, P1) is None
    assert request.to_bytes() == wire(text)


def test_ipv6_route_of_ours_is_removed() -> None:
    request = msg(bye("sip:callee@u2.domain.com", "<sip:[2001:db8::1];lr>,<sip:[2001:db8::2];lr>"))
    assert preprocess_routes(request, SPROUT) == NameAddr.parse("<sip:[2001:db8::1];lr>")
    assert next_hop(request) == parse_uri("sip:[2001:db8::2];lr")


def test_maddr_of_ours_is_stripped_with_port_and_transport() -> None:
    request = msg(invite("sip:alice@example.com:5054;maddr=10.0.0.1;transport=tcp;user=ip"))
    assert preprocess_routes(request, SPROUT) is None
    assert str(request.uri) == "sip:alice@example.com;user=ip"


@pytest.mark.parametrize(
    "uri",
    [
        "sip:alice@example.com;maddr=10.9.9.9",  # not our address
        "sip:alice@example.com:5070;maddr=10.0.0.1",  # our address, not our port
        "sip:alice@example.com;maddr=239.255.255.1;ttl=15",
    ],
)
def test_maddr_not_ours_is_kept(uri: str) -> None:
    request = msg(invite(uri))
    preprocess_routes(request, SPROUT)
    assert str(request.uri) == uri


def test_next_hop_without_route_is_the_request_uri() -> None:
    request = msg(invite())
    assert next_hop(request) == parse_uri("sip:callee@domain.com")
    assert request.to_bytes() == wire(invite())


# --------------------------------------------------------------------------- Record-Route


def test_record_route_is_added_and_keeps_uri_parameters() -> None:
    request = msg(invite())
    record_route(request, parse_sip_uri("sip:sprout.example.com:5054;transport=TCP;orig"))
    assert request.to_bytes() == wire(
        invite().replace(
            "Content-Length: 0\n",
            "Content-Length: 0\n"
            "Record-Route: <sip:sprout.example.com:5054;transport=TCP;orig;lr>\n",
        )
    )


def test_record_route_goes_above_existing_ones() -> None:
    request = msg(invite(extra="Record-Route: <sip:p1.example.com;lr>\n"))
    record_route(request, parse_sip_uri("sip:p2.domain.com;lr"))
    assert request.to_bytes() == wire(
        invite(
            extra="Record-Route: <sip:p2.domain.com;lr>\nRecord-Route: <sip:p1.example.com;lr>\n"
        )
    )


def test_double_record_route_puts_the_outbound_side_on_top() -> None:
    request = msg(invite(extra="Record-Route: <sip:p1.example.com;lr>\n"))
    inbound = parse_sip_uri("sip:10.0.0.1;transport=udp")
    outbound = parse_sip_uri("sip:[2001:db8::1];transport=tcp")
    record_route(request, inbound, outbound)
    assert request.headers.get_all("Record-Route") == [
        "<sip:[2001:db8::1];transport=tcp;lr>",
        "<sip:10.0.0.1;transport=udp;lr>",
        "<sip:p1.example.com;lr>",
    ]
    # The callee's route set is Record-Route in order (§12.1.1): its BYE meets our outbound
    # side first, then our inbound side; each is ours, and one value goes per call.
    back = msg(bye("sip:caller@u1.example.com", ", ".join(request.headers.get_all("Record-Route"))))
    assert preprocess_routes(back, SPROUT) == NameAddr.parse("<sip:[2001:db8::1];transport=tcp;lr>")
    assert preprocess_routes(back, SPROUT) == NameAddr.parse("<sip:10.0.0.1;transport=udp;lr>")
    assert preprocess_routes(back, SPROUT) is None
    assert next_hop(back) == parse_uri("sip:p1.example.com;lr")


def test_same_outbound_as_inbound_records_once() -> None:
    request = msg(invite())
    uri = parse_sip_uri("sip:sprout.example.com;transport=tcp")
    record_route(request, uri, parse_sip_uri("sip:SPROUT.example.com;transport=TCP;lr"))
    assert request.headers.get_all("Record-Route") == ["<sip:sprout.example.com;transport=tcp;lr>"]


# --------------------------------------------------------------------------- Max-Forwards, Via


def test_decrement_max_forwards() -> None:
    request = msg(invite())
    decrement_max_forwards(request)
    assert request.to_bytes() == wire(invite().replace("Max-Forwards: 70", "Max-Forwards: 69"))


def test_missing_max_forwards_is_set_to_70() -> None:
    request = msg(invite().replace("Max-Forwards: 70\n", ""))
    decrement_max_forwards(request)
    assert request.max_forwards == 70
    assert request.headers.get("Max-Forwards") == "70"


def test_max_forwards_zero_cannot_be_decremented() -> None:
    request = msg(invite().replace("Max-Forwards: 70", "Max-Forwards: 0"))
    with pytest.raises(ValueError, match="Max-Forwards is 0"):
        decrement_max_forwards(request)


def test_add_via_goes_on_top_with_rport() -> None:
    request = msg(invite())
    add_via(request, "tcp", "sprout.example.com", 5054, "z9hG4bK0123456789abcdef")
    assert request.to_bytes() == wire(
        invite().replace(
            "Via:",
            "Via: SIP/2.0/TCP sprout.example.com:5054;rport;branch=z9hG4bK0123456789abcdef\nVia:",
            1,
        )
    )
    top = request.top_via
    assert (top.rport, top.branch) == ("", "z9hG4bK0123456789abcdef")


def test_add_via_ipv6_without_port() -> None:
    request = msg(invite())
    add_via(request, "UDP", "2001:db8::1", None, "z9hG4bKabc")
    assert request.headers.get("Via") == "SIP/2.0/UDP [2001:db8::1];rport;branch=z9hG4bKabc"
    add_via(request, "UDP", "[2001:db8::2]", 5060, "z9hG4bKdef")
    assert request.vias[0].sent_by == "[2001:db8::2]:5060"
    assert len(request.vias) == 3


@pytest.mark.parametrize("branch", ["z9hG4bK", "abc", ""])
def test_add_via_needs_an_rfc3261_branch(branch: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3261 branch"):
        add_via(msg(invite()), "UDP", "sprout.example.com", None, branch)
