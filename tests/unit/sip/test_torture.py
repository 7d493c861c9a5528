"""RFC 4475 and RFC 5118 torture messages through :func:`clearwater.sip.parse_message`.

Each message's expected outcome, with its RFC section, is in ``tests/vectors/rfc4475_cases.py``
and ``tests/vectors/rfc5118_cases.py``:

- ACCEPT: parses, and ``to_bytes()`` gives back bytes that parse to an equal message (the same
  bytes exactly when the message's Content-Length was already right);
- PARSE_ERROR: ``parse_message`` raises ParseError with the recorded status;
- LATER: parses; the fact a later layer acts on is checked here, and the status it will send
  is recorded in the table for that layer's tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import pytest

from clearwater.sip import (
    AbsoluteUri,
    NameAddr,
    ParseError,
    Request,
    Response,
    SipUri,
    parse_message,
)
from clearwater.sip import headers as h
from tests.vectors import rfc4475_cases, rfc5118_cases
from tests.vectors.rfc4475_cases import Case, Outcome

RFC4475_DIR = Path(__file__).resolve().parents[2] / "vectors" / "rfc4475"
RFC5118_DIR = Path(__file__).resolve().parents[2] / "vectors" / "rfc5118"

Message = Union[Request, Response]


def _load(case: Case) -> bytes:
    folder = RFC5118_DIR if case in rfc5118_cases.CASES else RFC4475_DIR
    return (folder / case.file).read_bytes()


ALL_CASES = rfc4475_cases.CASES + rfc5118_cases.CASES


def test_every_rfc4475_file_has_a_case() -> None:
    files = {p.name for p in RFC4475_DIR.glob("*.dat")}
    assert len(files) == 49
    assert files == {case.file for case in rfc4475_cases.CASES}


def test_every_rfc5118_file_has_a_case() -> None:
    files = {p.name for p in RFC5118_DIR.glob("*.dat")}
    assert files == {case.file for case in rfc5118_cases.CASES}


def _body_length_matches(data: bytes, message: Message) -> bool:
    cl = message.headers.first(h.CONTENT_LENGTH)
    return cl is not None and data.index(b"\r\n\r\n") + 4 + cl == len(data)


@pytest.mark.parametrize(
    "case",
    [c for c in ALL_CASES if c.outcome is not Outcome.PARSE_ERROR],
    ids=lambda c: c.section + "-" + c.file,
)
def test_accepted_messages_parse_and_round_trip(case: Case) -> None:
    data = _load(case)
    message = parse_message(data)
    wire = message.to_bytes()
    if _body_length_matches(data, message):
        assert wire == data
    again = parse_message(wire)
    expected = message.copy()
    if "Content-Length" not in expected.headers:  # to_bytes() always adds one
        expected.headers.add("Content-Length", str(len(expected.body)))
    assert again == expected
    assert again.to_bytes() == wire


@pytest.mark.parametrize(
    "case",
    [c for c in ALL_CASES if c.outcome is Outcome.PARSE_ERROR],
    ids=lambda c: c.section + "-" + c.file,
)
def test_invalid_messages_are_rejected_at_parse(case: Case) -> None:
    data = _load(case)
    with pytest.raises(ParseError) as info:
        parse_message(data)
    # A bad response is dropped (status None in the table); a bad request gets the status.
    assert info.value.status == (case.status or 400)
    assert info.value.reason.isprintable() and info.value.reason.isascii()


def test_section_3_1_2_messages_are_all_parse_errors_but_baddate() -> None:
    """RFC 4475 §3.1.2: every message with a syntax error is rejected by the parser."""
    section = [c for c in rfc4475_cases.CASES if c.section.startswith("3.1.2.")]
    assert len(section) == 19
    accepted = {c.file for c in section if c.outcome is not Outcome.PARSE_ERROR}
    # baddate's Date header is malformed but no element is required to look at it.
    assert accepted == {"baddate.dat"}


def _request(case_file: str) -> Request:
    message = parse_message((RFC4475_DIR / case_file).read_bytes())
    assert isinstance(message, Request)
    return message


def _check_badbranch(m: Request) -> None:
    assert m.top_via.branch == "z9hG4bK"


def _check_unkscm(m: Request) -> None:
    assert isinstance(m.uri, AbsoluteUri)
    assert m.uri.scheme.lower() == "nobodyknowsthisscheme"


def _check_novelsc(m: Request) -> None:
    assert isinstance(m.uri, AbsoluteUri)
    assert m.uri.scheme.lower() == "soap.beep"


def _check_unksm2(m: Request) -> None:
    assert isinstance(m.uri, SipUri)
    assert isinstance(m.to.uri, AbsoluteUri)


def _check_bext01(m: Request) -> None:
    assert m.headers.parsed(h.REQUIRE) == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.parsed(h.PROXY_REQUIRE) == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def _check_invut(m: Request) -> None:
    content_type = m.content_type
    assert content_type is not None
    assert content_type.mime_type == "application/unknownformat"


def _check_regaut01(m: Request) -> None:
    value = m.headers.get("Authorization")
    assert value is not None and value.startswith("NoOneKnowsThisScheme")


def _check_bcast(m: Message) -> None:
    raise AssertionError("bcast is a response")


def _check_zeromf(m: Request) -> None:
    assert m.max_forwards == 0


def _check_sdp01(m: Request) -> None:
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]


LATER_CHECKS: dict[str, Callable[[Request], None]] = {
    "badbranch.dat": _check_badbranch,
    "unkscm.dat": _check_unkscm,
    "novelsc.dat": _check_novelsc,
    "unksm2.dat": _check_unksm2,
    "bext01.dat": _check_bext01,
    "invut.dat": _check_invut,
    "regaut01.dat": _check_regaut01,
    "zeromf.dat": _check_zeromf,
    "sdp01.dat": _check_sdp01,
}


@pytest.mark.parametrize(
    "case",
    [c for c in rfc4475_cases.CASES if c.outcome is Outcome.LATER and c.file != "bcast.dat"],
    ids=lambda c: c.section + "-" + c.file,
)
def test_later_layer_sees_what_it_needs(case: Case) -> None:
    assert case.status is not None and case.layer is not None
    LATER_CHECKS[case.file](_request(case.file))


def test_bcast_response_carries_the_broadcast_sent_by() -> None:
    message = parse_message((RFC4475_DIR / "bcast.dat").read_bytes())
    assert isinstance(message, Response)
    assert message.status == 200
    # After the top Via (the proxy's own) comes a broadcast sent-by: never send there.
    assert [via.host for via in message.vias] == ["192.0.2.198", "255.255.255.255"]


def test_wsinv_values() -> None:
    """§3.1.1.1: folding, odd LWS and compact forms parse to the intended values."""
    m = _request("wsinv.dat")
    assert m.method == "INVITE"
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.cseq.seq == 9 and m.cseq.method == "INVITE"
    assert m.max_forwards == 68
    vias = m.vias
    assert [(v.transport, v.host) for v in vias] == [
        ("UDP", "192.0.2.2"),
        ("TCP", "spindle.example.com"),
        ("UDP", "192.168.255.111"),
    ]
    assert [v.branch for v in vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.uri == SipUri("example.com", "jdrosen")
    assert m.from_.tag == "98asjd8"
    assert m.to.display_name is None
    assert m.to.tag == "1918181833n"
    (contact,) = m.headers.parsed(h.CONTACT)
    assert isinstance(contact, NameAddr)
    assert contact.display_name == 'Quoted string ""'
    assert contact.q == 0.33
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"


def test_dblreq_discards_octets_after_content_length() -> None:
    """§3.1.1.8 / RFC 3261 §18.3: a second message after the first in one datagram."""
    m = _request("dblreq.dat")
    assert m.method == "REGISTER"
    assert m.body == b""


def test_esc01_unescaped_user() -> None:
    m = _request("esc01.dat")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user_unescaped == "sips:user@example.com"


def test_unreason_keeps_utf8_reason_phrase() -> None:
    message = parse_message((RFC4475_DIR / "unreason.dat").read_bytes())
    assert isinstance(message, Response)
    assert message.status == 200
    assert "\u3066" in message.reason or not message.reason.isascii()


def test_noreason_has_empty_reason_phrase() -> None:
    message = parse_message((RFC4475_DIR / "noreason.dat").read_bytes())
    assert isinstance(message, Response)
    assert message.reason == ""


def test_rfc5118_via_received_forms() -> None:
    for name in ("via-received-param-with-delim.dat", "via-received-param-no-delim.dat"):
        message = parse_message((RFC5118_DIR / name).read_bytes())
        assert message.top_via.received in ("[2001:db8::9:255]", "2001:db8::9:255")


def test_rfc5118_port_forms() -> None:
    ambiguous = parse_message((RFC5118_DIR / "port-ambiguous.dat").read_bytes())
    unambiguous = parse_message((RFC5118_DIR / "port-unambiguous.dat").read_bytes())
    assert isinstance(ambiguous, Request) and isinstance(unambiguous, Request)
    assert isinstance(ambiguous.uri, SipUri) and isinstance(unambiguous.uri, SipUri)
    assert ambiguous.uri.port is None and ambiguous.uri.host == "[2001:db8::10:5070]"
    assert unambiguous.uri.port == 5070 and unambiguous.uri.host == "[2001:db8::10]"
