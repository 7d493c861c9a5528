"""Transaction matching: RFC 3261 §17.1.3, §17.2.3 (with the RFC 2543 fallback) and §9.2."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearwater.errors import ParseError
from clearwater.sip import Request, Response, parse_message
from clearwater.sip.transaction import (
    Rfc2543Key,
    cancel_target_key,
    client_key,
    has_rfc3261_branch,
    server_key,
)

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "rfc4475"


def _request(
    method: str = "INVITE",
    via: str = "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds",
    cseq_method: str = "",
    to: str = "<sip:bob@example.com>",
    uri: str = "sip:bob@example.com",
) -> Request:
    data = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: <sip:alice@example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"CSeq: 314159 {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def _response(request: Request, status: int = 200) -> Response:
    return Response(status, "OK", [(name, value) for name, value in request.headers])


def test_client_key_matches_responses_to_their_request() -> None:
    invite = _request()
    assert client_key(invite) == ("z9hG4bK776asdhds", "INVITE")
    assert client_key(_response(invite, 180)) == client_key(invite)
    assert client_key(_response(invite, 486)) == client_key(invite)


def test_client_key_separates_cancel_from_invite() -> None:
    invite = _request()
    cancel = _request("CANCEL")
    assert client_key(_response(cancel)) != client_key(invite)
    assert client_key(_response(cancel)) == ("z9hG4bK776asdhds", "CANCEL")


def test_client_key_needs_a_branch() -> None:
    with pytest.raises(ParseError):
        client_key(_request(via="SIP/2.0/UDP pc33.example.com"))


def test_server_key_rfc3261() -> None:
    invite = _request()
    assert server_key(invite) == ("z9hG4bK776asdhds", "pc33.example.com:5060", "INVITE")
    # A retransmission, and the ACK for a non-2xx final response, match the INVITE transaction.
    assert server_key(_request()) == server_key(invite)
    assert server_key(_request("ACK")) == server_key(invite)


def test_server_key_sent_by_host_is_case_insensitive_port_is_not_defaulted() -> None:
    upper = _request(via="SIP/2.0/UDP PC33.Example.COM:5060;branch=z9hG4bK776asdhds")
    no_port = _request(via="SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds")
    assert server_key(upper) == server_key(_request())
    assert server_key(no_port) != server_key(_request())


@pytest.mark.parametrize(
    "other",
    [
        {"via": "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bKother"},
        {"via": "SIP/2.0/UDP other.example.com:5060;branch=z9hG4bK776asdhds"},
        {"method": "OPTIONS"},
        {"method": "CANCEL"},
    ],
)
def test_server_key_differs(other: dict[str, str]) -> None:
    assert server_key(_request(**other)) != server_key(_request())


def test_cancel_targets_the_invite_server_transaction() -> None:
    invite = _request()
    cancel = _request("CANCEL")
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)
    with pytest.raises(ValueError):
        cancel_target_key(invite)


RFC2543_VIA = "SIP/2.0/UDP pc33.example.com:5060"


def test_rfc2543_fallback_matches_retransmission_ack_and_cancel() -> None:
    invite = _request(via=RFC2543_VIA)
    key = server_key(invite)
    assert isinstance(key, Rfc2543Key)
    assert key.method == "INVITE" and key.cseq == 314159 and key.from_tag == "1928301774"
    assert server_key(_request(via=RFC2543_VIA)) == key
    # The ACK carries the To tag of the server's response; the layer checks that tag.
    ack = _request("ACK", via=RFC2543_VIA, to="<sip:bob@example.com>;tag=8321234356")
    assert server_key(ack) == key
    assert cancel_target_key(_request("CANCEL", via=RFC2543_VIA)) == key


def test_rfc2543_fallback_compares_request_uri_by_rfc3261_equality() -> None:
    a = server_key(_request(via=RFC2543_VIA, uri="sip:bob@EXAMPLE.com"))
    b = server_key(_request(via=RFC2543_VIA, uri="sip:%62ob@example.com"))
    assert a == b
    assert server_key(_request(via=RFC2543_VIA, uri="sip:bob@example.com;transport=tcp")) != a


def test_rfc2543_fallback_differs_on_call_fields() -> None:
    key = server_key(_request(via=RFC2543_VIA))
    assert server_key(_request(via=RFC2543_VIA + ";received=192.0.2.1")) != key
    assert server_key(_request("OPTIONS", via=RFC2543_VIA)) != key


def test_bare_magic_cookie_falls_back_to_rfc2543() -> None:
    """RFC 4475 §3.2.1 badbranch: branch is only the cookie."""
    message = parse_message((VECTORS / "badbranch.dat").read_bytes())
    assert isinstance(message, Request)
    assert not has_rfc3261_branch(message.top_via)
    assert isinstance(server_key(message), Rfc2543Key)


def test_inv2543_uses_the_fallback() -> None:
    message = parse_message((VECTORS / "inv2543.dat").read_bytes())
    assert isinstance(message, Request)
    assert isinstance(server_key(message), Rfc2543Key)
