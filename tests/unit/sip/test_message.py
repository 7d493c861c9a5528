"""The message model and the datagram parser: headers, validation, serialisation."""

from __future__ import annotations

import pytest

from clearwater.sip import (
    CSeq,
    Headers,
    MediaType,
    NameAddr,
    ParseError,
    Request,
    Response,
    SipUri,
    Star,
    TelUri,
    Via,
    parse_message,
)
from clearwater.sip import headers as h

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Route: <sip:p3.example.com;lr>\r\n"
    b"X-Custom:   odd   spacing  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def _request(data: bytes = INVITE) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def _replace(old: bytes, new: bytes, data: bytes = INVITE) -> bytes:
    assert old in data
    return data.replace(old, new)


# ---------------------------------------------------------------- parsing


def test_parse_request_fields() -> None:
    m = _request()
    assert m.method == "INVITE"
    assert m.uri == SipUri("biloxi.example.com", "bob")
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.cseq == CSeq(314159, "INVITE")
    assert m.max_forwards == 70
    assert m.top_via == Via(
        "UDP", "pc33.atlanta.example.com", None, (("branch", "z9hG4bK776asdhds"), ("rport", None))
    )
    assert m.top_via.rport == ""
    assert m.from_.display_name == "Alice" and m.from_.tag == "1928301774"
    assert m.to.display_name == "Bob" and m.to.tag is None
    assert m.content_type == MediaType("application", "sdp")
    assert m.body == b"v=0\n"
    assert [str(r.uri) for r in m.headers.parsed(h.ROUTE)] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3.example.com;lr",
    ]
    assert m.headers.get("x-custom") == "odd   spacing"


def test_parse_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;received=192.0.2.1\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>;tag=2\r\n"
        b"i: abc\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"
    )
    m = parse_message(data)
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (180, "Ringing")
    assert m.top_via.host == "[2001:db8::1]" and m.top_via.port == 5061
    assert m.top_via.received == "192.0.2.1"
    assert m.to.tag == "2"
    assert m.to_bytes() == data


def test_compact_forms_are_the_same_headers() -> None:
    m = _request(_replace(b"Call-ID:", b"i:"))
    assert m.headers.get("Call-ID") == m.headers.get("i") == m.call_id
    assert "call-id" in m.headers and "I" in m.headers
    assert h.header_key("v") == "via" and h.canonical_name("k") == "Supported"


def test_folded_header_unfolds_to_one_space_and_serialises_as_received() -> None:
    data = _replace(b"X-Custom:   odd   spacing  \r\n", b"X-Custom: one\r\n  two\r\n\tthree\r\n")
    m = _request(data)
    assert m.headers.get("X-Custom") == "one two three"
    assert m.to_bytes() == data


def test_unchanged_message_serialises_byte_exact() -> None:
    assert _request().to_bytes() == INVITE
    assert bytes(_request()) == INVITE


def test_leading_crlfs_are_ignored() -> None:
    assert _request(b"\r\n\r\n" + INVITE) == _request()


def test_trailing_octets_after_content_length_are_discarded() -> None:
    assert _request(INVITE + b"garbage").body == b"v=0\n"


def test_missing_content_length_takes_the_rest_of_the_datagram() -> None:
    m = _request(_replace(b"Content-Length: 4\r\n", b""))
    assert m.body == b"v=0\n"


@pytest.mark.parametrize(
    ("old", "new", "reason", "status"),
    [
        (b"INVITE sip:bob", b"INVITE  sip:bob", "Bad Request-Line", 400),
        (b"SIP/2.0\r\nVia", b"SIP/2.0 \r\nVia", "Bad Request-Line", 400),
        (b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", "Version Not Supported", 505),
        (
            b"sip:bob@biloxi.example.com SIP",
            b"<sip:bob@biloxi.example.com> SIP",
            "Bad Request-URI",
            400,
        ),
        (
            b"sip:bob@biloxi.example.com SIP",
            b"sip:bob@biloxi.example.com?a=b SIP",
            "Bad Request-URI: headers not allowed",
            400,
        ),
        (b"INVITE sip", b"INV@TE sip", "Bad Request-Line", 400),
        (
            b"CSeq: 314159 INVITE",
            b"CSeq: 314159 BYE",
            "CSeq method does not match the request method",
            400,
        ),
        (b"CSeq: 314159 INVITE", b"CSeq: 2147483648 INVITE", "Bad CSeq", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: -1 INVITE", "Bad CSeq", 400),
        (b"Max-Forwards: 70", b"Max-Forwards: 256", "Bad Max-Forwards", 400),
        (
            b"Max-Forwards: 70",
            b"Max-Forwards: 70\r\nMax-Forwards: 70",
            "Multiple Max-Forwards headers",
            400,
        ),
        (b"Call-ID: a84b", b"Call-ID: a 84b", "Bad Call-ID", 400),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"", "Missing Call-ID", 400),
        (b"CSeq: 314159 INVITE\r\n", b"", "Missing CSeq", 400),
        (
            b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n",
            b"",
            "Missing Via",
            400,
        ),
        (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0 pc33", "Bad Via", 400),
        (b'To: "Bob"', b'To: "Bob', "Bad URI: no scheme", 400),
        (
            b'To: "Bob" <sip:bob@biloxi.example.com>',
            b"To: <sip:a@b>, <sip:c@d>",
            "Bad address",
            400,
        ),
        (b"Content-Length: 4", b"Content-Length: 5", "Content-Length larger than the body", 400),
        (b"Content-Length: 4", b"Content-Length: -4", "Bad Content-Length", 400),
        (
            b"Content-Length: 4",
            b"Content-Length: 4\r\nl: 4",
            "Multiple Content-Length headers",
            400,
        ),
        (
            b"Contact: <sip:alice@pc33.atlanta.example.com>",
            b"Contact: sip:a@b?x=y",
            "Bad address: URI with headers must be in <>",
            400,
        ),
        (b"X-Custom:", b"X Custom:", "Bad header name", 400),
        (b"X-Custom:", b"X-Custom", "Bad header line", 400),
        (b"SIP/2.0\r\nVia", b"SIP/2.0\r\n Via", "Bad header folding", 400),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n", "Bad line ending", 400),
        (b"\r\n\r\nv=0", b"\r\nv=0", "Incomplete message: no blank line after the headers", 400),
    ],
)
def test_invalid_requests(old: bytes, new: bytes, reason: str, status: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(_replace(old, new))
    assert (info.value.reason, info.value.status) == (reason, status)


@pytest.mark.parametrize(
    "status_line",
    [
        b"SIP/2.0 99 Low",
        b"SIP/2.0 700 High",
        b"SIP/2.0 2000 OK",
        b"SIP/2.0 20 OK",
        b"SIP/2.0 200 O\x01K",
    ],
)
def test_invalid_status_lines(status_line: bytes) -> None:
    data = status_line + INVITE[INVITE.index(b"\r\n") :]
    with pytest.raises(ParseError):
        parse_message(data)


def test_size_limits() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(INVITE, max_size=len(INVITE) - 1)
    assert info.value.status == 513
    many = _replace(b"X-Custom:", b"X-A: 1\r\n" * 300 + b"X-Custom:")
    with pytest.raises(ParseError, match="Too many header lines"):
        parse_message(many)


def test_response_cseq_method_is_free_and_max_forwards_optional() -> None:
    data = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 7 REGISTER\r\n\r\n"
    )
    m = parse_message(data)
    assert m.cseq.method == "REGISTER" and m.max_forwards is None and m.body == b""


# ---------------------------------------------------------------- typed values


def test_contact_forms() -> None:
    m = _request(
        _replace(
            b"Contact: <sip:alice@pc33.atlanta.example.com>",
            b"Contact: <sip:alice@192.0.2.4;ob>;expires=600;q=0.7;reg-id=1;"
            b'+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";'
            b'pub-gruu="sip:alice@example.com;gr=urn:uuid:f8";'
            b'temp-gruu="sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr", '
            b"tel:+1-201-555-0123",
        )
    )
    first, second = m.headers.parsed(h.CONTACT)
    assert isinstance(first, NameAddr) and isinstance(second, NameAddr)
    assert first.expires == 600 and first.q == 0.7 and first.reg_id == 1
    assert first.instance == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    assert first.pub_gruu == "sip:alice@example.com;gr=urn:uuid:f8"
    assert first.temp_gruu is not None and first.temp_gruu.endswith("@example.com;gr")
    assert isinstance(first.uri, SipUri) and first.uri.has_param("ob")
    assert isinstance(second.uri, TelUri) and second.uri.is_global


def test_star_contact() -> None:
    m = _request(_replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: *"))
    assert m.headers.parsed(h.CONTACT) == [Star()]


def test_addr_spec_params_belong_to_the_header() -> None:
    value = NameAddr.parse("sip:alice@example.com;tag=abc")
    assert value.tag == "abc"
    assert isinstance(value.uri, SipUri) and value.uri.params == ()
    semi = NameAddr.parse("sip:user;par=u%40example.net@example.com;tag=1")
    assert isinstance(semi.uri, SipUri) and semi.uri.host == "example.com" and semi.tag == "1"


@pytest.mark.parametrize(
    "text",
    ["<sip:a@b", "Bob <sip:a@b> junk", "sip:a@b;", '"unterminated <sip:a@b>', "<sip:a@b>;q=2"],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        value = NameAddr.parse(text)
        _ = value.q


def test_route_requires_angle_brackets() -> None:
    m = _request(_replace(b"Route: <sip:p3.example.com;lr>", b"Route: sip:p3.example.com"))
    with pytest.raises(ParseError, match="must be in <>"):
        m.headers.parsed(h.ROUTE)


def test_lazy_headers_parse_on_first_use_and_cache() -> None:
    m = _request(_replace(b"X-Custom:", b"Expires: soon\r\nX-Custom:"))
    with pytest.raises(ParseError, match="Bad delta-seconds"):
        m.headers.first(h.EXPIRES)
    routes = m.headers.parsed(h.ROUTE)
    assert m.headers.parsed(h.ROUTE)[0] is routes[0]


def test_via_rendering_and_params() -> None:
    via = Via.parse(
        "SIP / 2.0 / tcp  host.example.com : 5070 ; branch = z9hG4bKa ; received=1.2.3.4"
    )
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP",
        "host.example.com",
        5070,
        "z9hG4bKa",
    )
    assert str(via) == "SIP/2.0/TCP host.example.com:5070;branch=z9hG4bKa;received=1.2.3.4"
    assert via.with_param("rport", "5070").rport == "5070"
    assert Via.parse(str(via)) == via


def test_name_addr_rendering_round_trips() -> None:
    for text in [
        '"A \\"quoted\\" name" <sip:a@b>;tag=1',
        "Plain Name <sips:a@b:5061>",
        "<tel:+1234>",
    ]:
        value = NameAddr.parse(text)
        assert NameAddr.parse(str(value)) == value
    assert NameAddr.parse('"A \\"q\\"" <sip:a@b>').display_name == 'A "q"'


# ---------------------------------------------------------------- changing and building


def test_header_changes_keep_the_rest_byte_exact() -> None:
    m = _request()
    m.headers.prepend("Via", Via("UDP", "proxy.example.com", 5060, (("branch", "z9hG4bKp1"),)))
    m.headers.set("Max-Forwards", "69")
    wire = m.to_bytes()
    assert wire.startswith(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKp1\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
        b"Max-Forwards: 69\r\n"
    )
    assert b"X-Custom:   odd   spacing  \r\n" in wire
    again = parse_message(wire)
    assert [v.host for v in again.vias] == ["proxy.example.com", "pc33.atlanta.example.com"]


def test_pop_first_splits_comma_lists() -> None:
    m = _request()
    first = m.headers.pop_first(h.ROUTE)
    assert first is not None and str(first.uri) == "sip:p1.example.com;lr"
    assert m.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"]
    assert [str(r.uri) for r in parse_message(m.to_bytes()).headers.parsed(h.ROUTE)] == [
        "sip:p2.example.com;lr",
        "sip:p3.example.com;lr",
    ]
    m.headers.pop_first(h.ROUTE)
    m.headers.pop_first(h.ROUTE)
    assert m.headers.pop_first(h.ROUTE) is None and "Route" not in m.headers


def test_body_change_rewrites_content_length() -> None:
    m = _request()
    m.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    again = parse_message(m.to_bytes())
    assert again.body == m.body
    assert again.headers.get_all("Content-Length") == [str(len(m.body))]


def test_build_request_from_scratch() -> None:
    request = Request(
        "OPTIONS",
        "sip:carol@chicago.example.com",
        [
            ("Via", "SIP/2.0/TCP client.example.com;branch=z9hG4bKx"),
            ("From", "<sip:a@example.com>;tag=1"),
            ("To", "<sip:carol@chicago.example.com>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70"),
        ],
    )
    wire = request.to_bytes()
    assert wire.endswith(b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    assert parse_message(wire).headers == Headers([*request.headers, ("Content-Length", "0")])
    response = Response(200, "OK", [(name, value) for name, value in request.headers])
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, Response) and parsed.status == 200


def test_typed_values_can_be_added() -> None:
    headers = Headers()
    headers.add("CSeq", CSeq(2, "BYE"))
    assert headers.get("CSeq") == "2 BYE"
    assert headers.first(h.CSEQ) == CSeq(2, "BYE")
    headers.set_values(h.ROUTE, [NameAddr(SipUri("a.example.com", params=(("lr", None),)))])
    assert headers.get_all("Route") == ["<sip:a.example.com;lr>"]


@pytest.mark.parametrize("value", ["a\r\nInjected: yes", "a\nb", "a\rb", "a\x00b"])
def test_header_injection_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        Headers([("Subject", value)])


def test_bad_header_name_and_status_are_refused() -> None:
    with pytest.raises(ValueError):
        Headers([("Bad Name", "x")])
    with pytest.raises(ValueError):
        Response(1000, "Too big")
    with pytest.raises(ValueError):
        Response(200, "OK\r\nInjected: yes")


def test_copy_is_independent() -> None:
    original = _request()
    copy = original.copy()
    copy.headers.remove("Route")
    copy.headers.set("Max-Forwards", "1")
    assert original.to_bytes() == INVITE
    assert copy != original


def test_copy_of_groups_lines_by_key_and_keeps_typed_values() -> None:
    message = parse_message(
        b"OPTIONS sip:b@example.com SIP/2.0\r\n"
        b"v:  SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n"
        b"To: <sip:b@example.com>\r\n"
        b"Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK2\r\n"
        b"From: <sip:a@example.com>;tag=1\r\n"
        b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nSubject: not copied\r\n\r\n"
    )
    headers = message.headers.copy_of(("via", "from", "to"))
    assert list(headers) == [
        ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/TCP c.example.com;branch=z9hG4bK2"),
        ("From", "<sip:a@example.com>;tag=1"),
        ("To", "<sip:b@example.com>"),
    ]
    assert headers.parsed(h.VIA)[0] is message.top_via  # parsed once, shared
    headers.set("To", "<sip:c@example.com>")
    assert str(message.to.uri) == "sip:b@example.com"


def test_non_utf8_bytes_survive() -> None:
    data = _replace(b"X-Custom:   odd   spacing  ", b"X-Custom: \xff\xfe latin \xe9")
    m = _request(data)
    assert m.to_bytes() == data
    m.headers.set("X-Other", m.headers.get("X-Custom") or "")
    assert b"X-Other: \xff\xfe latin \xe9\r\n" in m.to_bytes()


def test_cseq_allows_any_lws_between_number_and_method() -> None:
    assert CSeq.parse("1\tINVITE") == CSeq.parse(" 1   INVITE ") == CSeq(1, "INVITE")
    for bad in ("1", "INVITE", "1 INV ITE", "x INVITE", "99999999999 INVITE", "1 INV@TE"):
        with pytest.raises(ParseError, match="Bad CSeq"):
            CSeq.parse(bad)
