"""Tests for clearwater.sip._uri: SIP/SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966) and opaque
URIs, IPv6 references (RFC 5118, RFC 5954).

Vectors and their provenance:

* RFC 4475 §3.1.1 / §3.1.2: URIs copied from the torture messages (file names in comments);
* RFC 3261 §19.1.4: the equal and not-equal example lists, transcribed;
* RFC 5118 §4: the Request-URI / Contact forms of the IPv6 torture messages;
* RFC 3966 §6: the tel examples.
"""

from __future__ import annotations

import ipaddress
import string
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.errors import ParseError
from clearwater.sip._uri import AbsoluteUri, SipUri, TelUri, Uri, parse_sip_uri, parse_uri

# ------------------------------------------------------------------------------------------
# Accepted URIs
# ------------------------------------------------------------------------------------------

CRAZY_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
CRAZY_PASSWORD = "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"

ACCEPTED_SIP = [
    # RFC 4475 §3.1.1.1 wsinv.dat
    "sip:vivekg@chair-dnrc.example.com;unknownparam",
    # RFC 4475 §3.1.1.2 intmeth.dat
    f"sip:{CRAZY_USER}:{CRAZY_PASSWORD}@example.com",
    f"sip:{CRAZY_USER}@example.com",
    # RFC 4475 §3.1.1.3 esc01.dat
    "sip:sips%3Auser%40example.com@example.net",
    "sip:%75se%72@example.com",
    "sip:I%20have%20spaces@example.net",
    "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
    # RFC 4475 §3.1.1.4 escnull.dat
    "sip:null-%00-null@example.com",
    "sip:%00@host5.example.com",
    "sip:%00%00@host5.example.com",
    # RFC 4475 §3.1.1.9 semiuri.dat
    "sip:user;par=u%40example.net@example.com",
    # RFC 4475 §3.1.1.? longreq.dat (To URI)
    "sip:user@example.com:6000;unknownparam1=verylonglonglonglonglonglongvalue;"
    "longparamnamenamenamename=shortvalue;verylongParameterNameWithNoValue",
    # RFC 4475 §3.1.1.? cparam01.dat
    "sip:+19725552222@gw1.example.net;unknownparam",
    # RFC 4475 §3.1.2.11 escruri.dat and §3.3.? regescrt.dat: escaped headers are legal
    # URI syntax (whether a Request-URI may carry them is a message-layer question)
    "sip:user@example.com?Route=%3Csip:example.com%3E",
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    # RFC 4475 mpart01.dat
    "sip:127.0.0.1:5080",
    "sip:fluffy@127.0.0.1:5070",
    # RFC 3261 §19.1.4 and §19.1.3 examples
    "sip:%61lice@atlanta.com;transport=TCP",
    "SIP:ALICE@AtLanTa.CoM;Transport=udp",
    "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
    "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sips:1212@gateway.com",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    # duplicate parameters are syntactically fine
    "sip:example.com;transport=udp;transport=tcp",
    # RFC 5118 §4.1, §4.3, §4.4, §4.7, §4.9, §4.10
    "sip:[2001:db8::10]",
    "sip:caller@[2001:db8::1]",
    "sip:[2001:db8::10:5070]",
    "sip:[2001:db8::10]:5070",
    "sip:[2001:db8::10]:5070;lr",
    "sip:[2001:db8::9:1]",
    "sip:caller@[2001:db8::9:1]",
    "sip:ted@[::ffff:192.0.2.2]",
    "sip:[::ffff:192.0.2.1]",
    "sip:user@[2001:db8::192.0.2.1]",
    "sip:user@[2001:db8:::192.0.2.1]",
    # odd but legal corners
    "sip:alice:@example.com",
    "sip:example.com.",
    "sip:a-b--c.x-1.example",
    "sip:host:0",
    "sip:host:65535",
    "sip:host?h=",
    "sip:host;lr?a=b&c=d",
    "sip:host;a=[x]/:&+$",
    "sip:scscf.sprout.example.com:5054;transport=TCP;lr;orig",
]

ACCEPTED_OTHER = [
    # RFC 4475 §3.1.1.12 novelsc.dat, §3.1.1.13 unkscm.dat, §3.1.1.14 unksm2.dat
    "soap.beep://192.0.2.103:3002",
    "nobodyKnowsThisScheme:totallyopaquecontent",
    "nobodyKnowsThisScheme:totallyopaque",
    "isbn:2983792873",
    "http://www.example.com",
    "name:John_Smith",
    "urn:service:sos",
    "mailto:alice@example.com",
]


@pytest.mark.parametrize("text", ACCEPTED_SIP)
def test_accepted_sip(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert str(uri) == text
    assert parse_sip_uri(text) == uri
    # the components render to an equal URI
    rebuilt = SipUri(
        uri.host,
        uri.user,
        scheme=uri.scheme,
        password=uri.password,
        port=uri.port,
        params=uri.params,
        headers=uri.headers,
    )
    assert rebuilt == uri
    assert hash(rebuilt) == hash(uri)


@pytest.mark.parametrize("text", ACCEPTED_OTHER)
def test_accepted_other_scheme(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteUri)
    assert str(uri) == text
    scheme, _, rest = text.partition(":")
    assert uri.scheme == scheme.lower()
    assert uri.rest == rest
    with pytest.raises(ParseError, match="not a SIP URI"):
        parse_sip_uri(text)


def test_crazy_userinfo_components() -> None:
    uri = parse_sip_uri(f"sip:{CRAZY_USER}:{CRAZY_PASSWORD}@example.com")
    assert uri.user == CRAZY_USER
    assert uri.password == CRAZY_PASSWORD
    assert uri.host == "example.com"
    assert uri.params == ()
    assert uri.headers == ()


def test_escapes_kept_in_wire_form() -> None:
    uri = parse_sip_uri("sip:%61lice@atlanta.com;transport=TCP")
    assert uri.user == "%61lice"
    assert uri.user_unescaped == "alice"
    assert uri.transport == "tcp"
    assert uri.param("transport") == "TCP"


def test_escaped_nulls() -> None:
    one = parse_sip_uri("sip:%00@host5.example.com")
    two = parse_sip_uri("sip:%00%00@host5.example.com")
    assert one.user_unescaped == "\x00"
    assert two.user_unescaped == "\x00\x00"
    assert one != two  # escnull: two distinct contacts
    assert parse_sip_uri("sip:null-%00-null@example.com").user_unescaped == "null-\x00-null"


def test_semicolon_in_user() -> None:
    uri = parse_sip_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == ()


def test_escaped_params_esc01() -> None:
    uri = parse_sip_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    # lookups see through escapes in names; values stay as written (no recursive unescaping)
    assert uri.lr
    assert uri.param("name") == "v%61lue%25%34%31"


def test_duplicate_params_kept() -> None:
    uri = parse_sip_uri("sip:example.com;transport=udp;transport=tcp")
    assert uri.params == (("transport", "udp"), ("transport", "tcp"))
    assert uri.transport == "udp"  # first one wins


def test_headers() -> None:
    uri = parse_sip_uri("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com")
    assert uri.user is None
    assert uri.host == "biloxi.com"
    assert uri.params == (("transport", "tcp"), ("method", "REGISTER"))
    assert uri.headers == (("to", "sip:bob%40biloxi.com"),)
    assert uri.method == "REGISTER"
    assert parse_sip_uri("sip:host?h=").headers == (("h", ""),)
    assert parse_sip_uri("sip:host;lr?a=b&c=d").headers == (("a", "b"), ("c", "d"))


def test_scheme_lower_cased_text_kept() -> None:
    uri = parse_sip_uri("SIP:ALICE@AtLanTa.CoM;Transport=udp")
    assert uri.scheme == "sip"
    assert uri.user == "ALICE"
    assert uri.host == "AtLanTa.CoM"
    assert uri.transport == "udp"
    assert str(uri) == "SIP:ALICE@AtLanTa.CoM;Transport=udp"
    sips = parse_sip_uri("SiPs:bob@biloxi.com")
    assert sips.scheme == "sips"
    assert sips.default_port == 5061


def test_password() -> None:
    uri = parse_sip_uri("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.user == "+1-212-555-1212"
    assert uri.password == "1234"
    assert uri.user_param == "phone"
    assert parse_sip_uri("sip:alice:@example.com").password == ""
    assert parse_sip_uri("sip:alice@example.com").password is None


# ------------------------------------------------------------------------------------------
# RFC 5118 IPv6 references
# ------------------------------------------------------------------------------------------


def test_rfc5118_ipv6_reference() -> None:
    uri = parse_sip_uri("sip:[2001:db8::10]")
    assert uri.host == "[2001:db8::10]"
    assert uri.port is None
    assert uri.is_ipv6
    assert uri.host_port == "[2001:db8::10]"


def test_rfc5118_port_ambiguous() -> None:
    # §4.3: the 5070 is the last group of the address, not a port
    uri = parse_sip_uri("sip:[2001:db8::10:5070]")
    assert uri.host == "[2001:db8::10:5070]"
    assert uri.port is None


def test_rfc5118_port_unambiguous() -> None:
    uri = parse_sip_uri("sip:[2001:db8::10]:5070")
    assert uri.host == "[2001:db8::10]"
    assert uri.port == 5070
    assert uri.host_port == "[2001:db8::10]:5070"
    assert uri != parse_sip_uri("sip:[2001:db8::10:5070]")


def test_rfc5118_ipv4_mapped() -> None:
    uri = parse_sip_uri("sip:[::ffff:192.0.2.1]")
    assert uri.host == "[::ffff:192.0.2.1]"
    assert uri.is_ipv6
    assert uri == parse_sip_uri("sip:[::FFFF:c000:201]")
    assert uri != parse_sip_uri("sip:192.0.2.1")


def test_rfc5118_three_colons_tolerated() -> None:
    # §4.10: "an implementation must tolerate both" the ":::" and "::" forms
    three = parse_sip_uri("sip:user@[2001:db8:::192.0.2.1]")
    two = parse_sip_uri("sip:user@[2001:db8::192.0.2.1]")
    assert three.host == "[2001:db8:::192.0.2.1]"
    assert three == two
    assert hash(three) == hash(two)


def test_rfc5954_ipv6_compared_as_addresses() -> None:
    assert parse_uri("sip:[2001:db8::9:1]") == parse_uri("sip:[2001:DB8:0:0:0:0:9:1]")
    assert parse_uri("sip:[2001:db8::9:1]") == parse_uri("sip:[2001:0db8::0009:0001]")
    assert parse_uri("sip:[2001:db8::9:1]") != parse_uri("sip:[2001:db8::9:2]")


# ------------------------------------------------------------------------------------------
# Rejected URIs
# ------------------------------------------------------------------------------------------

REJECTED = [
    # RFC 4475 §3.1.2.? lwsruri.dat, ltgtruri.dat: whitespace, <>
    ("sip:user@example.com; lr", "whitespace or control character"),
    ("<sip:user@example.com>", "bad scheme"),
    ("sip:<user@example.com>", "illegal character"),
    ("sip:user@example.com>", "illegal character"),
    ('sip:"user"@example.com', "illegal character"),
    (" sip:user@example.com", "bad scheme"),
    ("sip:user@example.com ", "whitespace or control character"),
    ("sip:user@exa\tmple.com", "whitespace or control character"),
    ("sip:user@example.com\r\n", "whitespace or control character"),
    ("sip:us\u00e9r@example.com", "non-ASCII character"),
    # RFC 5118 §4.2 ipv6-bad.dat: IPv6 without brackets
    ("sip:2001:db8::10", "bad host"),
    ("sip:[2001:db8::10", "bad IPv6 reference"),
    ("sip:[2001:db8::10::1]", "bad IPv6 reference"),
    ("sip:[2001:db8::g]", "bad IPv6 reference"),
    ("sip:[192.0.2.1]", "bad IPv6 reference"),
    ("sip:[fe80::1%25eth0]", "bad IPv6 reference"),
    ("sip:[]", "bad IPv6 reference"),
    # RFC 5118 §4.10 tolerates ":::" only where RFC 3261's ABNF produced it: before an IPv4 tail
    ("sip:[2001:db8:::1]", "bad IPv6 reference"),
    ("sip:[2001:db8::::192.0.2.1]", "bad IPv6 reference"),
    # empty pieces
    ("sip:", "empty host"),
    ("sips:", "empty host"),
    ("sip:alice@", "empty host"),
    ("sip:;lr", "empty host"),
    ("sip:@example.com", "empty user"),
    ("sip::pw@example.com", "empty user"),
    # escapes
    ("sip:%G1@example.com", "bad escape"),
    ("sip:%4@example.com", "bad escape"),
    ("sip:alice@example.com;p=%4", "bad escape"),
    ("sip:alice@example.com?h=%", "bad escape"),
    # ports
    ("sip:alice@example.com:", "bad port"),
    ("sip:alice@example.com:65536", "bad port"),
    ("sip:alice@example.com:99999", "bad port"),
    ("sip:alice@example.com:123456", "bad port"),
    ("sip:alice@example.com:50a", "bad port"),
    ("sip:alice@example.com:-1", "bad port"),
    ("sip:[2001:db8::10]:", "bad port"),
    ("sip:[2001:db8::10]5070", "bad port"),
    # password but no "@": "alice" is the host and "secret" a bad port
    ("sip:alice:secret", "bad port"),
    # userinfo
    ("sip:a@b@example.com", "more than one @"),
    ("sip:a:b:c@example.com", "bad password"),
    ("sip:a:p;w@example.com", "bad password"),
    ("sip:a#b@example.com", "bad user"),
    ("sip:a[b]@example.com", "bad user"),
    # hosts
    ("sip:300.300.300.300", "bad host"),
    ("sip:192.0.2.01", "bad host"),
    ("sip:alice@-example.com", "bad host"),
    ("sip:alice@example-.com", "bad host"),
    ("sip:alice@example.123", "bad host"),
    ("sip:alice@exa_mple.com", "bad host"),
    ("sip:alice@example..com", "bad host"),
    ("sip:alice@.example.com", "bad host"),
    # parameters and headers
    ("sip:alice@example.com;", "bad parameter"),
    ("sip:alice@example.com;;lr", "bad parameter"),
    ("sip:alice@example.com;a=", "bad parameter"),
    ("sip:alice@example.com;=b", "bad parameter"),
    ("sip:alice@example.com;a=b=c", "bad parameter"),
    ("sip:alice@example.com;a{b}", "bad parameter"),
    ("sip:alice@example.com?", "bad header"),
    ("sip:alice@example.com?a", "bad header"),
    ("sip:alice@example.com?=b", "bad header"),
    ("sip:alice@example.com?a=b&", "bad header"),
    ("sip:alice@example.com?a=b=c", "bad header"),
    ("sip:alice@example.com?a=b;c", "bad header"),
    # schemes
    ("", "no scheme"),
    ("alice@example.com", "no scheme"),
    (":foo", "no scheme"),
    ("1sip:foo", "bad scheme"),
    ("s_p:foo", "bad scheme"),
    ("urn:", "empty"),
    ("urn:a b", "illegal character"),
    ("urn:<a>", "illegal character"),
    ('urn:"a"', "illegal character"),
    ("urn:caf\u00e9", "illegal character"),
]


@pytest.mark.parametrize(("text", "why"), REJECTED)
def test_rejected(text: str, why: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.reason == "Bad URI: " + why
    assert info.value.status == 400


def test_parse_sip_uri_rejects_tel() -> None:
    with pytest.raises(ParseError, match="not a SIP URI"):
        parse_sip_uri("tel:+1-201-555-0123")
    with pytest.raises(ParseError, match="no scheme"):
        parse_sip_uri("alice")
    with pytest.raises(ParseError, match="bad port"):
        parse_sip_uri("sip:a:b")


# ------------------------------------------------------------------------------------------
# RFC 3261 §19.1.4 comparison
# ------------------------------------------------------------------------------------------

# "The URIs within each of the following sets are equivalent"
RFC3261_EQUAL_SETS = [
    ["sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"],
    [
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;newparam=5",
        "sip:carol@chicago.com;security=on",
    ],
    [
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ],
    [
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ],
]

# "The URIs within each of the following sets are not equivalent"
RFC3261_NOT_EQUAL_PAIRS = [
    # different usernames
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    # can resolve to different port and transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    # different header component
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    # even though that's what phone21.boxesbybob.com resolves to
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize("texts", RFC3261_EQUAL_SETS)
def test_rfc3261_equal_sets(texts: list[str]) -> None:
    uris = [parse_uri(t) for t in texts]
    for a in uris:
        for b in uris:
            assert a == b
            assert hash(a) == hash(b)


@pytest.mark.parametrize(("left", "right"), RFC3261_NOT_EQUAL_PAIRS)
def test_rfc3261_not_equal(left: str, right: str) -> None:
    a, b = parse_uri(left), parse_uri(right)
    assert a != b
    assert b != a


def test_rfc3261_equality_not_transitive() -> None:
    plain = parse_uri("sip:carol@chicago.com")
    on = parse_uri("sip:carol@chicago.com;security=on")
    off = parse_uri("sip:carol@chicago.com;security=off")
    assert plain == on
    assert plain == off
    assert on != off


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("sip:alice@example.com", "sips:alice@example.com"),
        ("sip:alice@example.com", "sip:example.com"),
        ("sip:alice:pw@example.com", "sip:alice@example.com"),
        ("sip:alice:pw@example.com", "sip:alice:PW@example.com"),
        ("sip:alice@example.com", "sip:alice@example.com;user=phone"),
        ("sip:alice@example.com", "sip:alice@example.com;ttl=1"),
        ("sip:alice@example.com", "sip:alice@example.com;method=INVITE"),
        ("sip:alice@example.com", "sip:alice@example.com;maddr=192.0.2.1"),
        ("sip:alice@example.com;maddr=a.com", "sip:alice@example.com;maddr=b.com"),
        ("sip:alice@example.com;foo=1", "sip:alice@example.com;foo=2"),
        ("sip:alice@example.com;lr", "sip:alice@example.com;lr=on"),
        ("sip:alice@example.com?a=b", "sip:alice@example.com?a=B"),
        ("sip:alice@example.com?a=b", "sip:alice@example.com?a=b&c=d"),
        ("sip:alice@example.com:5060", "sip:alice@example.com:5061"),
        ("sip:example.com", "sip:example.com."),
        ("sip:a%3Bb@example.com", "sip:a%3bc@example.com"),
    ],
)
def test_sip_not_equal(left: str, right: str) -> None:
    assert parse_uri(left) != parse_uri(right)
    assert parse_uri(right) != parse_uri(left)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("sip:alice@example.com;lr", "sip:alice@example.com"),
        ("sip:alice@example.com;LR", "sip:alice@example.com;lr"),
        ("sip:alice@example.com;maddr=A.com", "sip:alice@example.com;maddr=a.com"),
        ("sip:alice@example.com;foo=Bar", "sip:alice@example.com;FOO=bar"),
        ("sip:alice@example.com;f%6Fo=b%61r", "sip:alice@example.com;foo=bar"),
        ("sip:alice:p%77@example.com", "sip:alice:pw@example.com"),
        ("sip:alice@example.com?Subject=a%20b", "sip:alice@example.com?subject=a%20b"),
        ("sip:alice@example.com?a=%41", "sip:alice@example.com?a=A"),
        ("sip:a%3Bb@example.com", "sip:a;b@example.com"),
        ("sip:a%3bb@example.com", "sip:a%3Bb@example.com"),
        ("sip:alice@192.0.2.1", "sip:alice@192.0.2.1"),
        ("sip:alice@[::1]:5060", "sip:alice@[0:0:0:0:0:0:0:1]:5060"),
    ],
)
def test_sip_equal(left: str, right: str) -> None:
    a, b = parse_uri(left), parse_uri(right)
    assert a == b
    assert b == a
    assert hash(a) == hash(b)


def test_never_equal_across_types() -> None:
    sip = parse_uri("sip:+12015550123@example.com;user=phone")
    tel = parse_uri("tel:+12015550123")
    other = parse_uri("urn:service:sos")
    assert sip != tel
    assert tel != sip
    assert sip != other
    assert other != tel
    assert sip != "sip:+12015550123@example.com;user=phone"
    assert len({sip, tel, other}) == 3


# ------------------------------------------------------------------------------------------
# tel (RFC 3966)
# ------------------------------------------------------------------------------------------


def test_rfc3966_examples() -> None:
    # §6
    g = parse_uri("tel:+1-201-555-0123")
    assert isinstance(g, TelUri)
    assert g.is_global
    assert g.number == "+1-201-555-0123"
    assert g.digits == "+12015550123"
    assert g.phone_context is None
    assert str(g) == "tel:+1-201-555-0123"

    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri)
    assert not local.is_global
    assert local.number == "7042"
    assert local.phone_context == "example.com"
    assert local.params == (("phone-context", "example.com"),)

    prefix = parse_uri("tel:863-1234;phone-context=+1-914-555")
    assert isinstance(prefix, TelUri)
    assert prefix.digits == "8631234"
    assert prefix.phone_context == "+1-914-555"


@pytest.mark.parametrize(
    "text",
    [
        "tel:+1-201-555-0123",
        "tel:7042;phone-context=example.com",
        "tel:863-1234;phone-context=+1-914-555",
        "TEL:+1(201)555.0123",
        "tel:+1-201-555-0123;ext=1234",
        "tel:+1-201-555-0123;isub=1411;ext=1-2",
        "tel:+358-555-1234567;postd=pp22",
        "tel:*21#;phone-context=example.com",
        "tel:AbC-12;phone-context=example.com.",
        "tel:+1;x=%41;y",
        "tel:+1;isub=a/b?c:d@e&f=g+h$i,j",
    ],
)
def test_tel_accepted(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, TelUri)
    assert str(uri) == text
    assert TelUri(uri.number, uri.params) == uri


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("tel:7042", "local number without phone-context"),
        ("tel:+1-201-555-0123;phone-context=example.com", "phone-context on global number"),
        ("tel:", "bad tel number"),
        ("tel:+", "bad tel number"),
        ("tel:+-.()", "bad tel number"),
        ("tel:+1A", "bad tel number"),
        ("tel:-;phone-context=example.com", "bad tel number"),
        ("tel:12 34;phone-context=example.com", "bad tel number"),
        ("tel:+1;ext=", "bad tel ext"),
        ("tel:+1;ext", "bad tel ext"),
        ("tel:+1;ext=12a", "bad tel ext"),
        ("tel:+1;isub", "bad tel isub"),
        ("tel:12;phone-context=", "bad tel phone-context"),
        ("tel:12;phone-context=ex_ample", "bad tel phone-context"),
        ("tel:12;phone-context=+", "bad tel phone-context"),
        ("tel:+1;ext=1;EXT=2", "repeated tel parameter"),
        ("tel:+1;a_b=c", "bad tel parameter"),
        ("tel:+1;a=b c", "bad tel parameter"),
        ("tel:+1;a=<b>", "bad tel parameter"),
        ("tel:+1;", "bad tel parameter"),
        ("tel:+1;a=%4", "bad escape"),
    ],
)
def test_tel_rejected(text: str, why: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.reason == "Bad URI: " + why


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("tel:+1-201-555-0123", "tel:+12015550123"),
        ("tel:+1-201-555-0123", "tel:+1(201)555.0123"),
        ("tel:abc;phone-context=example.com", "tel:ABC;phone-context=EXAMPLE.com"),
        ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555"),
        ("tel:+1;ext=1-2;isub=x", "tel:+1;ISUB=X;ext=12"),
        ("tel:+1;foo=Bar", "tel:+1;FOO=bar"),
        ("tel:+1;foo=%41", "tel:+1;foo=a"),
    ],
)
def test_tel_equal(left: str, right: str) -> None:
    a, b = parse_uri(left), parse_uri(right)
    assert a == b
    assert b == a
    assert hash(a) == hash(b)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # local vs global
        ("tel:1234;phone-context=+1", "tel:+1234"),
        ("tel:+1-201-555-0123", "tel:+1-201-555-0124"),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.net"),
        # a parameter in only one of them
        ("tel:+12015550123", "tel:+12015550123;ext=1"),
        ("tel:+12015550123;foo", "tel:+12015550123"),
        ("tel:+1;ext=1", "tel:+1;ext=2"),
        ("tel:+1;foo", "tel:+1;foo=1"),
    ],
)
def test_tel_not_equal(left: str, right: str) -> None:
    assert parse_uri(left) != parse_uri(right)
    assert parse_uri(right) != parse_uri(left)


def test_tel_constructor() -> None:
    uri = TelUri("+1-201-555-0123", (("ext", "99"),))
    assert str(uri) == "tel:+1-201-555-0123;ext=99"
    assert uri.param("EXT") == "99"
    assert uri.param("isub") is None
    assert repr(uri) == "TelUri('tel:+1-201-555-0123;ext=99')"
    with pytest.raises(ValueError, match="phone-context"):
        TelUri("1234")
    with pytest.raises(ValueError, match="bad tel number"):
        TelUri("+1;ext=2")
    flag = TelUri("+1", (("foo", None),))
    assert flag.param("foo") == ""


# ------------------------------------------------------------------------------------------
# AbsoluteUri
# ------------------------------------------------------------------------------------------


def test_absolute_uri() -> None:
    uri = parse_uri("URN:service:sos")
    assert isinstance(uri, AbsoluteUri)
    assert uri.scheme == "urn"
    assert uri.rest == "service:sos"
    assert str(uri) == "URN:service:sos"
    assert uri == AbsoluteUri("urn", "service:sos")
    assert hash(uri) == hash(AbsoluteUri("urn", "service:sos"))
    assert uri != AbsoluteUri("urn", "SERVICE:sos")
    assert repr(uri) == "AbsoluteUri('URN:service:sos')"
    with pytest.raises(ValueError, match="bad scheme"):
        AbsoluteUri("1urn", "x")
    with pytest.raises(ValueError, match="SipUri or TelUri"):
        AbsoluteUri("SIP", "x")
    with pytest.raises(ValueError, match="after the scheme"):
        AbsoluteUri("urn", "")


# ------------------------------------------------------------------------------------------
# SipUri API
# ------------------------------------------------------------------------------------------


def test_accessors() -> None:
    uri = parse_sip_uri(
        "sips:bob@[2001:db8::1]:5071;Transport=TLS;maddr=192.0.2.9;ttl=16;lr;method=INVITE;user=IP"
    )
    assert uri.scheme == "sips"
    assert uri.host == "[2001:db8::1]"
    assert uri.port == 5071
    assert uri.host_port == "[2001:db8::1]:5071"
    assert uri.is_ipv6
    assert uri.default_port == 5061
    assert uri.transport == "tls"
    assert uri.maddr == "192.0.2.9"
    assert uri.ttl == 16
    assert uri.lr
    assert uri.method == "INVITE"
    assert uri.user_param == "ip"
    assert uri.param("LR") == ""
    assert uri.param("missing") is None
    assert uri.has_param("TTL")
    assert not uri.has_param("missing")

    plain = parse_sip_uri("sip:example.com")
    assert plain.default_port == 5060
    assert plain.host_port == "example.com"
    assert not plain.is_ipv6
    assert plain.transport is None
    assert plain.maddr is None
    assert plain.ttl is None
    assert not plain.lr
    assert plain.method is None
    assert plain.user_param is None
    assert plain.user is None
    assert plain.user_unescaped is None


@pytest.mark.parametrize("value", ["", "=256", "=abc", "=1234", "=-1"])
def test_bad_ttl_reads_as_none(value: str) -> None:
    assert parse_sip_uri(f"sip:example.com;ttl{value}").ttl is None


def test_user_unescaped_utf8() -> None:
    assert parse_sip_uri("sip:%C3%A9@example.com").user_unescaped == "\u00e9"
    assert parse_sip_uri("sip:%FF@example.com").user_unescaped == "\ufffd"


def test_constructor_and_canonical_str() -> None:
    uri = SipUri(
        "example.com",
        "alice",
        scheme="SIPS",
        password="pw",
        port=5061,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("subject", "hi%20there"), ("x", "")),
    )
    assert uri.scheme == "sips"
    assert str(uri) == "sips:alice:pw@example.com:5061;transport=tcp;lr?subject=hi%20there&x="
    assert repr(uri) == f"SipUri({str(uri)!r})"
    assert parse_uri(str(uri)) == uri
    assert str(SipUri("[::1]")) == "sip:[::1]"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"host": ""}, "empty host"),
        ({"host": "a b"}, "bad host"),
        ({"host": "example.com;x"}, "bad host"),
        ({"host": "[::g]"}, "bad IPv6 reference"),
        ({"host": "::1"}, "bad host"),
        ({"host": "h", "user": ""}, "empty user"),
        ({"host": "h", "user": "a@b"}, "bad user"),
        ({"host": "h", "user": "a:b"}, "bad user"),
        ({"host": "h", "user": "%zz"}, "bad user"),
        ({"host": "h", "password": "pw"}, "password without user"),
        ({"host": "h", "user": "a", "password": "p;w"}, "bad password"),
        ({"host": "h", "port": 65536}, "bad port"),
        ({"host": "h", "port": -1}, "bad port"),
        ({"host": "h", "port": True}, "bad port"),
        ({"host": "h", "params": (("", None),)}, "bad parameter"),
        ({"host": "h", "params": (("a", ""),)}, "bad parameter"),
        ({"host": "h", "params": (("a", "b;c"),)}, "bad parameter"),
        ({"host": "h", "params": (("a", "%"),)}, "bad parameter"),
        ({"host": "h", "headers": (("", "v"),)}, "bad header"),
        ({"host": "h", "headers": (("a", "b&c"),)}, "bad header"),
        ({"host": "h", "headers": (("a", "%1"),)}, "bad header"),
        ({"host": "h", "scheme": "tel"}, "sip or sips"),
    ],
)
def test_constructor_rejects(kwargs: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        SipUri(**kwargs)  # type: ignore[arg-type]


def test_immutable() -> None:
    uri = parse_sip_uri("sip:alice@example.com")
    with pytest.raises(AttributeError):
        uri.host = "evil.com"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        uri.extra = 1  # type: ignore[attr-defined]


def test_replace() -> None:
    uri = parse_sip_uri("sip:alice:pw@example.com:5070;transport=tcp?h=v")
    assert uri.replace() == uri
    moved = uri.replace(host="[2001:db8::1]", port=None)
    assert str(moved) == "sip:alice:pw@[2001:db8::1];transport=tcp?h=v"
    assert str(uri) == "sip:alice:pw@example.com:5070;transport=tcp?h=v"  # unchanged
    anon = uri.replace(user=None, password=None, headers=())
    assert str(anon) == "sip:example.com:5070;transport=tcp"
    assert str(uri.replace(scheme="SIPS")) == "sips:alice:pw@example.com:5070;transport=tcp?h=v"
    assert str(uri.replace(params=(("lr", None),))) == "sip:alice:pw@example.com:5070;lr?h=v"
    assert uri.replace(port=5071).port == 5071
    assert uri.replace(password="x").password == "x"
    with pytest.raises(ValueError, match="password without user"):
        uri.replace(user=None)
    with pytest.raises(ValueError, match="bad host"):
        uri.replace(host="a b")
    with pytest.raises(ValueError, match="bad port"):
        uri.replace(port=70000)
    with pytest.raises(ValueError, match="sip or sips"):
        uri.replace(scheme="tel")
    with pytest.raises(ValueError, match="bad parameter"):
        uri.replace(params=(("a", "="),))
    with pytest.raises(ValueError, match="bad header"):
        uri.replace(headers=(("a", " "),))


def test_with_and_without_param() -> None:
    uri = parse_sip_uri("sip:example.com;Transport=udp;foo;transport=tcp")
    tcp = uri.with_param("transport", "tcp")
    assert str(tcp) == "sip:example.com;transport=tcp;foo"
    lr = uri.with_param("lr")
    assert str(lr) == "sip:example.com;Transport=udp;foo;transport=tcp;lr"
    assert lr.lr
    gone = uri.without_param("TRANSPORT")
    assert str(gone) == "sip:example.com;foo"
    assert uri.without_param("absent") is uri
    with pytest.raises(ValueError, match="bad parameter"):
        uri.with_param("a b")


# ------------------------------------------------------------------------------------------
# Hypothesis properties
# ------------------------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-_.!~*'()"
_HEX = "0123456789abcdefABCDEF"
_escape = st.builds(lambda a, b: f"%{a}{b}", st.sampled_from(_HEX), st.sampled_from(_HEX))


def _escaped_text(chars: str, min_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(chars), _escape)
    return st.lists(piece, min_size=min_size, max_size=8).map("".join)


_users = _escaped_text(_UNRESERVED + "&=+$,;?/", 1)
_passwords = _escaped_text(_UNRESERVED + "&=+$,", 0)
_pchars = _UNRESERVED + "[]/:&+$"
_hchars = _UNRESERVED + "[]/?:+$"

_label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)
_toplabel = st.from_regex(r"[A-Za-z]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)
_hostnames = st.builds(
    lambda labels, top, dot: ".".join([*labels, top]) + dot,
    st.lists(_label, max_size=3),
    _toplabel,
    st.sampled_from(["", "."]),
)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).flatmap(
    lambda a: st.sampled_from([a.compressed, a.exploded, a.compressed.upper()]).map(
        lambda s: f"[{s}]"
    )
)
_hosts = st.one_of(_hostnames, _ipv4, _ipv6)
_params = st.lists(
    st.tuples(_escaped_text(_pchars, 1), st.none() | _escaped_text(_pchars, 1)), max_size=4
).map(tuple)
_headers = st.lists(
    st.tuples(_escaped_text(_hchars, 1), _escaped_text(_hchars, 0)), max_size=3
).map(tuple)


@st.composite
def _sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.none() | _users)
    password = None if user is None else draw(st.none() | _passwords)
    return SipUri(
        draw(_hosts),
        user,
        scheme=draw(st.sampled_from(["sip", "sips", "SIP"])),
        password=password,
        port=draw(st.none() | st.integers(0, 65535)),
        params=draw(_params),
        headers=draw(_headers),
    )


def _components(uri: SipUri) -> tuple[object, ...]:
    return (uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params, uri.headers)


@given(_sip_uris())
def test_built_sip_uri_round_trips(uri: SipUri) -> None:
    text = str(uri)
    parsed = parse_uri(text)
    assert isinstance(parsed, SipUri)
    assert _components(parsed) == _components(uri)
    assert parsed == uri
    assert hash(parsed) == hash(uri)
    assert str(parsed) == text


_tel_numbers = st.one_of(
    st.from_regex(r"\+[0-9().-]{0,4}[0-9][0-9().-]{0,8}", fullmatch=True),
    st.from_regex(r"[0-9A-Fa-f*#().-]{0,4}[0-9A-Fa-f*#][0-9A-Fa-f*#().-]{0,4}", fullmatch=True),
)


@st.composite
def _tel_uris(draw: st.DrawFn) -> TelUri:
    number = draw(_tel_numbers)
    params: list[tuple[str, Optional[str]]] = []
    if draw(st.booleans()):
        params.append(("ext", draw(st.from_regex(r"[0-9().-]{1,6}", fullmatch=True))))
    if draw(st.booleans()):
        params.append(("isub", draw(_escaped_text(_UNRESERVED + "/?:@&=+$,", 1))))
    if not number.startswith("+"):
        context = draw(st.one_of(_hostnames, st.from_regex(r"\+[0-9-]{0,3}[0-9]", fullmatch=True)))
        params.append(("phone-context", context))
    names = draw(st.lists(st.from_regex(r"x-[a-z0-9]{1,5}", fullmatch=True), unique=True))
    for name in names:
        params.append((name, draw(st.none() | _escaped_text(_pchars, 1))))
    return TelUri(number, tuple(draw(st.permutations(params))))


@given(_tel_uris())
def test_built_tel_uri_round_trips(uri: TelUri) -> None:
    parsed = parse_uri(str(uri))
    assert isinstance(parsed, TelUri)
    assert (parsed.number, parsed.params) == (uri.number, uri.params)
    assert parsed == uri
    assert hash(parsed) == hash(uri)


# small alphabets, so that equal-but-different URIs come up often
_small_sip = st.builds(
    lambda scheme, user, host, port, params, headers: SipUri(
        host, user, scheme=scheme, port=port, params=params, headers=headers
    ),
    st.sampled_from(["sip", "sips"]),
    st.sampled_from([None, "alice", "%61lice", "Alice", "al%69ce"]),
    st.sampled_from(["example.com", "EXAMPLE.com", "[::1]", "[0:0::1]", "192.0.2.1"]),
    st.sampled_from([None, 5060]),
    st.lists(
        st.sampled_from(
            [
                ("transport", "udp"),
                ("Transport", "UDP"),
                ("transport", "tcp"),
                ("lr", None),
                ("security", "on"),
                ("security", "off"),
                ("maddr", "192.0.2.1"),
                ("ttl", "1"),
            ]
        ),
        max_size=3,
        unique=True,
    ).map(tuple),
    st.sampled_from([(), (("subject", "x%41"),), (("Subject", "xA"),), (("subject", "xa"),)]),
)
_small_tel = st.builds(
    TelUri,
    st.sampled_from(["+1-201", "+1201", "+1(201)"]),
    st.sampled_from([(), (("ext", "1"),), (("EXT", "-1"),), (("ext", "2"),)]),
)
_small_uris = st.one_of(
    _small_sip,
    _small_tel,
    st.sampled_from([AbsoluteUri("urn", "a"), AbsoluteUri("URN", "a"), AbsoluteUri("urn", "A")]),
)


@given(_small_uris, _small_uris)
def test_equality_reflexive_symmetric_hash_consistent(a: Uri, b: Uri) -> None:
    assert a == a
    assert parse_uri(str(a)) == a
    assert (a == b) == (b == a)
    assert (a != b) == (not a == b)  # noqa: SIM201
    if a == b:
        assert hash(a) == hash(b)


_uri_alphabet = string.ascii_letters[:8] + "SIPTELsipte0123456789:;@?&=%[]<>\"+-._!~*'()/$,# \t"
_texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=_uri_alphabet, max_size=40),
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(["sip:", "sips:", "SIP:", "tel:", "tel:+1", "urn:", "sip:a@", "sip:["]),
        st.text(alphabet=_uri_alphabet, max_size=40),
    ),
    st.builds(lambda uri, junk: str(uri) + junk, _sip_uris(), st.text(_uri_alphabet, max_size=3)),
)


@given(_texts)
def test_parse_raises_only_parse_error_and_round_trips(text: str) -> None:
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        assert exc.reason.startswith("Bad URI: ")
        assert exc.reason.isascii()
        return
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri
    if isinstance(uri, SipUri):
        rebuilt = SipUri(
            uri.host,
            uri.user,
            scheme=uri.scheme,
            password=uri.password,
            port=uri.port,
            params=uri.params,
            headers=uri.headers,
        )
        assert rebuilt == uri
        assert parse_uri(str(rebuilt)) == uri
    elif isinstance(uri, TelUri):
        assert TelUri(uri.number, uri.params) == uri


@given(_hosts)
def test_ipv6_hosts_compare_as_addresses(host: str) -> None:
    uri = SipUri(host)
    if host.startswith("["):
        canonical = f"[{ipaddress.IPv6Address(host[1:-1]).exploded}]"
        assert SipUri(canonical) == uri
    else:
        assert SipUri(host.upper()) == uri
