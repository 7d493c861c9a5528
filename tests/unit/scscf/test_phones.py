"""The all-in-one's phone port sproutlet (clearwater.scscf.phones) with the sproutlet fakes."""

from __future__ import annotations

from clearwater.scscf import ScscfConfig
from clearwater.scscf.phones import PhonePortSproutlet
from clearwater.sip import Request, parse_message
from clearwater.testing import FakeTsxHelper

CONFIG = ScscfConfig(
    home_domains=("example.com",),
    scscf_uri="sip:scscf.sprout.example.com;transport=tcp",
    local_hosts=("sprout.example.com", "10.0.0.1"),
)


def request(method: str, *headers: str) -> Request:
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\n"
        "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        + "".join(h + "\r\n" for h in headers)
        + "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def forwarded(req: Request) -> Request:
    sproutlet = PhonePortSproutlet(CONFIG)
    helper = FakeTsxHelper(req)
    tsx = sproutlet.get_tsx(helper, "phones", req)
    assert tsx is not None
    helper.start(tsx)
    [fork] = helper.forks
    return fork.request


def test_register_goes_to_the_scscf() -> None:
    out = forwarded(request("REGISTER"))
    assert out.headers.get_all("Route") == ["<sip:scscf.sprout.example.com;transport=tcp;lr>"]


def test_initial_request_loses_our_routes_and_asserted_identities() -> None:
    out = forwarded(
        request(
            "INVITE",
            "Route: <sip:scscf.sprout.example.com;transport=tcp;lr;orig>",
            "Route: <sip:10.0.0.1:5054;lr>",
            "Route: <sip:elsewhere.example.net;lr>",
            "P-Asserted-Identity: <sip:bob@example.com>",
            "P-Served-User: <sip:bob@example.com>",
        )
    )
    assert out.headers.get_all("Route") == [
        "<sip:scscf.sprout.example.com;transport=tcp;lr;orig;auto-reg>",
        "<sip:elsewhere.example.net;lr>",
    ]
    assert out.headers.get("P-Asserted-Identity") is None
    assert out.headers.get("P-Served-User") is None
    # RFC 3261 §16.6 step 4: the dialog comes back through the phone port.
    assert out.headers.get_all("Record-Route") == ["<sip:127.0.0.1:5060;transport=udp;lr>"]


def test_record_route_names_the_port_and_transport_the_request_came_over() -> None:
    sproutlet = PhonePortSproutlet(CONFIG, host="::1", port=5070, tls_port=5071)
    assert sproutlet.record_route("TCP") == "<sip:[::1]:5070;transport=tcp;lr>"
    assert sproutlet.record_route("TLS") == "<sip:[::1]:5071;transport=tls;lr>"


def test_register_is_not_record_routed() -> None:
    assert forwarded(request("REGISTER")).headers.get("Record-Route") is None
