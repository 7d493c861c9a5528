"""Tests for :mod:`clearwater.sip._values_ext` and its specs in :mod:`clearwater.sip.headers`.

Golden values come from the RFCs that define each header (cited per case): RFC 3261 §20 and
§22.4, the RFC 3665 §2.1 / §3.3 call flows and RFC 4475 §3.3.7 (``tests/vectors``), RFC 7616
§3.9.1, RFC 7617 §2, 3GPP TS 24.229 / 33.203 (IMS AKA), RFC 7315 §4.3-§4.6, RFC 3323 §4.2,
RFC 6665 §8.2, RFC 5626 §9.1, RFC 4028 §4, RFC 3326 §2, RFC 3841 §9-§10.
Then rejection cases, a Hypothesis model round trip per class (built from components, rendered,
parsed back equal), "arbitrary text raises nothing but ParseError" for every new spec, and
typed reads through the message layer.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Callable, Optional

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.errors import ParseError
from clearwater.sip import Request, Response, parse_message
from clearwater.sip import headers as h
from clearwater.sip._grammar import Params, quote
from clearwater.sip.headers import (
    AccessNetworkInfo,
    AuthenticationInfo,
    Challenge,
    ChargingFunctionAddresses,
    ChargingVector,
    ContactPreference,
    Credentials,
    EventType,
    HeaderSpec,
    MinSE,
    Privacy,
    ReasonValue,
    RetryAfter,
    SessionExpires,
    SubscriptionState,
    VisitedNetworkId,
    WarningValue,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"

NEW_SPECS: list[HeaderSpec[object]] = [
    h.AUTHORIZATION,
    h.PROXY_AUTHORIZATION,
    h.WWW_AUTHENTICATE,
    h.PROXY_AUTHENTICATE,
    h.AUTHENTICATION_INFO,
    h.P_CHARGING_VECTOR,
    h.P_CHARGING_FUNCTION_ADDRESSES,
    h.P_VISITED_NETWORK_ID,
    h.PRIVACY,
    h.EVENT,
    h.SUBSCRIPTION_STATE,
    h.SESSION_EXPIRES,
    h.MIN_SE,
    h.REASON,
    h.WARNING,
    h.RETRY_AFTER,
    h.ACCEPT_CONTACT,
    h.REJECT_CONTACT,
    h.REQUEST_DISPOSITION,
    h.P_ACCESS_NETWORK_INFO,
]


def _reparse(spec: HeaderSpec[object], text: str) -> object:
    """Parse, then check that the rendering parses back to an equal value."""
    value = spec.parse(text)
    assert spec.parse(str(value)) == value
    return value


def _callflow(name: str) -> list[bytes]:
    """The messages of one RFC 3665 call flow file (a YAML list of ``|+`` block scalars)."""
    text = (VECTORS / "callflows" / "rfc3665" / name).read_text()
    messages: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("- |"):
            messages.append([])
        elif messages and line.startswith("  "):
            messages[-1].append(line[2:])
        elif messages and not line.strip():
            messages[-1].append("")
    out = []
    for lines in messages:
        head, _, body = "\r\n".join(lines).strip("\r\n").partition("\r\n\r\n")
        out.append((head + "\r\n\r\n" + (body + "\r\n" if body else "")).encode())
    return out


# --------------------------------------------------------------------------- registration


def test_specs_are_registered_and_exported() -> None:
    for spec in NEW_SPECS:
        assert h.spec_for(spec.name) is spec
        assert any(getattr(h, name) is spec for name in h.__all__)
    assert h.spec_for("x") is h.SESSION_EXPIRES
    assert h.spec_for("o") is h.EVENT
    assert h.spec_for("a") is h.ACCEPT_CONTACT
    assert h.spec_for("j") is h.REJECT_CONTACT
    assert h.spec_for("d") is h.REQUEST_DISPOSITION
    lists = {s.name for s in NEW_SPECS if s.multi}
    assert lists == {
        "Accept-Contact",
        "Reject-Contact",
        "Request-Disposition",
        "Reason",
        "Warning",
        "P-Visited-Network-ID",
        "P-Access-Network-Info",
    }


# --------------------------------------------------------------------------- authentication


def test_rfc3665_registration_challenge_and_credentials() -> None:
    # RFC 3665 §2.1, F2 and F3 (folded header lines, parsed by the message parser).
    messages = [parse_message(m) for m in _callflow("2.01_sip-client-new-registration.yaml")]
    f2, f3 = messages[1], messages[2]
    assert isinstance(f2, Response)
    assert isinstance(f3, Request)
    challenge = f2.headers.first(h.WWW_AUTHENTICATE)
    assert challenge is not None
    assert challenge.scheme == "Digest"
    assert challenge.is_digest
    assert challenge.realm == "atlanta.example.com"
    assert challenge.qop == "auth"
    assert challenge.qop_options == ("auth",)
    assert challenge.nonce == "ea9c8e88df84f1cec4341ae6cbe5a359"
    assert challenge.opaque == ""
    assert challenge.stale is False
    assert challenge.algorithm == "MD5"
    credentials = f3.headers.first(h.AUTHORIZATION)
    assert credentials is not None
    assert credentials.username == "bob"
    assert credentials.realm == "atlanta.example.com"
    assert credentials.nonce == challenge.nonce
    assert credentials.opaque == ""
    assert credentials.uri == "sips:ss2.biloxi.example.com"
    assert credentials.response == "dfe56131d1958046689d83306477ecc"
    assert credentials.params[0] == ("username", '"bob"')
    assert Credentials.parse(str(credentials)) == credentials


def test_rfc3665_two_proxy_authorizations() -> None:
    # RFC 3665 §3.3 F13: two Proxy-Authorization lines, one per proxy realm.
    messages = _callflow("3.03_session-with-multiple-proxy-authentication.yaml")
    invites = [
        m
        for m in (parse_message(raw) for raw in messages)
        if isinstance(m, Request) and len(m.headers.parsed(h.PROXY_AUTHORIZATION)) == 2
    ]
    assert invites
    realms = [c.realm for c in invites[0].headers.parsed(h.PROXY_AUTHORIZATION)]
    assert realms == ["atlanta.example.com", "biloxi.example.com"]
    responses = [
        m
        for m in (parse_message(raw) for raw in messages)
        if isinstance(m, Response) and m.status == 407
    ]
    challenge = responses[-1].headers.first(h.PROXY_AUTHENTICATE)
    assert challenge is not None
    assert challenge.realm == "biloxi.example.com"


def test_rfc4475_unknown_scheme() -> None:
    # RFC 4475 §3.3.7 regaut01: "Authorization: NoOneKnowsThisScheme opaque-data=here".
    message = parse_message((VECTORS / "rfc4475" / "regaut01.dat").read_bytes())
    credentials = message.headers.first(h.AUTHORIZATION)
    assert credentials == Credentials("NoOneKnowsThisScheme", (("opaque-data", "here"),))
    assert credentials is not None
    assert not credentials.is_digest
    assert credentials.param("OPAQUE-DATA") == "here"
    assert str(credentials) == "NoOneKnowsThisScheme opaque-data=here"


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        # RFC 3261 §20.7
        (
            h.AUTHORIZATION,
            'Digest username="Alice", realm="atlanta.com",\t'
            ' nonce="84a4cc6f3082121f32b42a2187831a9e",'
            ' response="7587245234b3434cc3412213e5f113a5432"',
            {"username": "Alice", "realm": "atlanta.com", "nc": None, "qop": None},
        ),
        # RFC 3261 §20.27
        (
            h.PROXY_AUTHENTICATE,
            'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth",'
            ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5',
            {"domain": "sip:ss1.carrier.com", "stale": False, "qop_options": ("auth",)},
        ),
        # RFC 3261 §20.28
        (
            h.PROXY_AUTHORIZATION,
            'Digest username="Alice", realm="atlanta.com", nonce="c60f3082ee1212b402a21831ae",'
            ' response="245f23415f11432b3434341c022"',
            {"username": "Alice", "response": "245f23415f11432b3434341c022"},
        ),
        # RFC 3261 §20.44, with stale=true
        (
            h.WWW_AUTHENTICATE,
            'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth",'
            ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=TRUE, algorithm=MD5',
            {"domain": "sip:boxesbybob.com", "stale": True},
        ),
        # RFC 7616 §3.9.1 (SHA-256; the qop list with a space after the comma)
        (
            h.WWW_AUTHENTICATE,
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256,'
            ' nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
            ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
            {"algorithm": "SHA-256", "qop_options": ("auth", "auth-int")},
        ),
        (
            h.AUTHORIZATION,
            'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",'
            ' algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
            ' nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,'
            ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",'
            ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
            {
                "uri": "/dir/index.html",
                "nc": "00000001",
                "qop": "auth",
                "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            },
        ),
        # RFC 8760 algorithm token
        (
            h.WWW_AUTHENTICATE,
            'Digest realm="x", nonce="y", algorithm=SHA-512-256',
            {"algorithm": "SHA-512-256"},
        ),
        # 3GPP TS 24.229 §5.1.1.2.1 / TS 33.203: initial IMS REGISTER and the AKA challenge
        (
            h.AUTHORIZATION,
            'Digest username="user1_private@home1.net", realm="registrar.home1.net", nonce="",'
            ' uri="sip:registrar.home1.net", response="", integrity-protected="no"',
            {"username": "user1_private@home1.net", "nonce": "", "integrity_protected": "no"},
        ),
        (
            h.WWW_AUTHENTICATE,
            'Digest realm="registrar.home1.net", nonce="A34Cm+Fva37UYWpGNB34JP",'
            " algorithm=AKAv1-MD5",
            {"algorithm": "AKAv1-MD5", "nonce": "A34Cm+Fva37UYWpGNB34JP"},
        ),
        (
            h.AUTHORIZATION,
            'Digest username="user1_private@home1.net", realm="registrar.home1.net",'
            ' nonce="A34Cm+Fva37UYWpGNB34JP", uri="sip:registrar.home1.net", response="",'
            ' auts="CjkyMzRfOiwg5CfIvjIrLA==", algorithm=AKAv1-MD5,'
            ' integrity-protected="yes"',
            {"auts": "CjkyMzRfOiwg5CfIvjIrLA==", "integrity_protected": "yes"},
        ),
        # Odd LWS around "=" and ","; a quoted-pair in a quoted value
        (
            h.AUTHORIZATION,
            '  Digest\tusername = "a\\"b" ,realm= r ,  nonce ="n"  ',
            {"username": 'a"b', "realm": "r", "nonce": "n"},
        ),
        # RFC 7617 §2: another scheme's token68
        (
            h.AUTHORIZATION,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            {"token68": "QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "params": (), "is_digest": False},
        ),
        # RFC 7235 §2.1: a scheme alone
        (h.AUTHORIZATION, "Negotiate", {"params": (), "token68": None}),
        # RFC 3261 §20.6
        (
            h.AUTHENTICATION_INFO,
            'nextnonce="47364c23432d2e131a5fb210812c"',
            {"nextnonce": "47364c23432d2e131a5fb210812c"},
        ),
        (
            h.AUTHENTICATION_INFO,
            'qop=auth, rspauth="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", nc=00000001',
            {"qop": "auth", "rspauth": "6629fae49393a05397450978507c4ef1", "nc": "00000001"},
        ),
    ],
)
def test_auth_vectors(spec: HeaderSpec[object], text: str, expected: dict[str, object]) -> None:
    value = _reparse(spec, text)
    for name, want in expected.items():
        assert getattr(value, name) == want, name


def test_auth_keeps_params_in_order_with_quotes() -> None:
    value = Challenge.parse('Digest qop="auth,auth-int", realm="a,b", stale=false')
    assert value.params == (("qop", '"auth,auth-int"'), ("realm", '"a,b"'), ("stale", "false"))
    assert value.qop_options == ("auth", "auth-int")
    assert value.realm == "a,b"
    assert str(value) == 'Digest qop="auth,auth-int", realm="a,b", stale=false'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Digest",
        "digest  ",
        "Digest realm",
        "Digest realm=",
        'Digest realm="x",',
        'Digest realm="x",,nonce="y"',
        'Digest, realm="x"',
        'Digest realm="x" nonce="y"',
        'Digest realm="unterminated',
        'Digest realm="a", Basic realm="b"',
        "Digest realm=a b",
        "Digest realm=<x>",
        "Digest QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        '"Digest" realm="x"',
        'Digest,realm="x"',
        "Basic a==b",
        "Basic a b",
        'Digest realm="bad\x01control"',
    ],
)
def test_auth_rejects(text: str) -> None:
    for spec, what in (
        (h.AUTHORIZATION, "Authorization"),
        (h.PROXY_AUTHORIZATION, "Proxy-Authorization"),
        (h.WWW_AUTHENTICATE, "WWW-Authenticate"),
        (h.PROXY_AUTHENTICATE, "Proxy-Authenticate"),
    ):
        with pytest.raises(ParseError) as info:
            spec.parse(text)
        assert info.value.reason == "Bad " + what


@pytest.mark.parametrize("text", ["", "nextnonce", 'nextnonce="x",', 'Digest nextnonce="x"'])
def test_authentication_info_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Authentication-Info$"):
        AuthenticationInfo.parse(text)


# --------------------------------------------------------------------------- RFC 7315


def test_charging_vector() -> None:
    # RFC 7315 §4.6
    value = _reparse(
        h.P_CHARGING_VECTOR,
        "icid-value=1234bc9876e; icid-generated-at=192.0.6.8; orig-ioi=home1.net",
    )
    assert isinstance(value, ChargingVector)
    assert value.icid == "1234bc9876e"
    assert value.icid_generated_at == "192.0.6.8"
    assert value.orig_ioi == "home1.net"
    assert value.term_ioi is None
    assert str(value) == "icid-value=1234bc9876e;icid-generated-at=192.0.6.8;orig-ioi=home1.net"
    # 3GPP TS 24.229 examples quote the icid; term-ioi in a response; an IPv6 generator.
    value = _reparse(
        h.P_CHARGING_VECTOR,
        'icid-value="AyretyU0dm+6O2IrT5tAFrbHLso=023551024"; orig-ioi=home1.net;'
        ' term-ioi=home2.net ;icid-generated-at=[2001:db8::1];transit-ioi="Pa.1,Pb.2"',
    )
    assert isinstance(value, ChargingVector)
    assert value.icid == "AyretyU0dm+6O2IrT5tAFrbHLso=023551024"
    assert value.term_ioi == "home2.net"
    assert value.icid_generated_at == "[2001:db8::1]"
    assert value.transit_ioi == "Pa.1,Pb.2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "orig-ioi=home1.net; icid-value=1",
        "icid-value",
        "icid-value=a b",
        ";icid-value=1",
        "icid-value=1;",
        'icid-value=1; orig-ioi="unterminated',
        "icid-value=1, icid-value=2",
    ],
)
def test_charging_vector_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad P-Charging-Vector$"):
        ChargingVector.parse(text)


def test_charging_function_addresses() -> None:
    # RFC 7315 §4.5
    value = _reparse(
        h.P_CHARGING_FUNCTION_ADDRESSES,
        "ccf=192.1.1.1; ccf=192.1.1.2; ecf=192.1.1.3; ecf=192.1.1.4",
    )
    assert isinstance(value, ChargingFunctionAddresses)
    assert value.ccf == ["192.1.1.1", "192.1.1.2"]
    assert value.ecf == ["192.1.1.3", "192.1.1.4"]
    value = _reparse(
        h.P_CHARGING_FUNCTION_ADDRESSES,
        "ccf=[5555::b99:c88:d77:e66]; ccf=[5555::a55:b44:c33:d22];"
        ' ecf=[5555::1ff:2ee:3dd:4cc]; ECF="aaa://ecf.example.com";x-foo',
    )
    assert isinstance(value, ChargingFunctionAddresses)
    assert value.ccf == ["[5555::b99:c88:d77:e66]", "[5555::a55:b44:c33:d22]"]
    assert value.ecf == ["[5555::1ff:2ee:3dd:4cc]", "aaa://ecf.example.com"]
    assert value.param("x-foo") == ""
    assert ChargingFunctionAddresses(()).ccf == []


@pytest.mark.parametrize("text", ["", " ", ";ccf=1", "ccf=", "ccf=1;", "ccf=1 ecf=2"])
def test_charging_function_addresses_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad P-Charging-Function-Addresses$"):
        ChargingFunctionAddresses.parse(text)


def test_visited_network_id() -> None:
    # RFC 7315 §4.3
    request = Request(
        "REGISTER",
        "sip:registrar.home1.net",
        [("P-Visited-Network-ID", 'other.net, "Visited network number 1"')],
    )
    values = request.headers.parsed(h.P_VISITED_NETWORK_ID)
    assert values == [
        VisitedNetworkId("other.net"),
        VisitedNetworkId("Visited network number 1"),
    ]
    assert [str(v) for v in values] == ["other.net", '"Visited network number 1"']
    value = _reparse(h.P_VISITED_NETWORK_ID, '"a \\"b\\", c";x=1')
    assert value == VisitedNetworkId('a "b", c', (("x", "1"),))


@pytest.mark.parametrize("text", ["", "other net", '"unterminated', "x;", ";x", "<x>"])
def test_visited_network_id_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad P-Visited-Network-ID$"):
        VisitedNetworkId.parse(text)


def test_access_network_info() -> None:
    # RFC 7315 §4.4
    value = _reparse(h.P_ACCESS_NETWORK_INFO, "3GPP-UTRAN-TDD; utran-cell-id-3gpp=23456789ABCDE")
    assert value == AccessNetworkInfo("3GPP-UTRAN-TDD", (("utran-cell-id-3gpp", "23456789ABCDE"),))
    # 3GPP TS 24.229: the P-CSCF's network-provided copy next to the UE's one
    request = Request(
        "INVITE",
        "sip:bob@home2.net",
        [
            (
                "P-Access-Network-Info",
                "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=262010001B1234567,"
                " 3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=262010001B1234567; network-provided;"
                ' local-time-zone="UTC+01:00"',
            )
        ],
    )
    ue, network = request.headers.parsed(h.P_ACCESS_NETWORK_INFO)
    assert ue.utran_cell_id_3gpp == "262010001B1234567"
    assert not ue.network_provided
    assert network.network_provided
    assert network.param("local-time-zone") == "UTC+01:00"
    dsl = _reparse(h.P_ACCESS_NETWORK_INFO, 'ADSL; dsl-location="xx"; cgi-3gpp=1234')
    assert isinstance(dsl, AccessNetworkInfo)
    assert dsl.cgi_3gpp == "1234"


@pytest.mark.parametrize("text", ["", "3GPP UTRAN", ";x", "IEEE-802.11;", "a;b=<c>"])
def test_access_network_info_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad P-Access-Network-Info$"):
        AccessNetworkInfo.parse(text)


# --------------------------------------------------------------------------- Privacy


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("id", ("id",)),  # RFC 3325
        ("none", ("none",)),  # RFC 3323 §4.2
        ("header;user;critical", ("header", "user", "critical")),
        ("id ; user", ("id", "user")),
        ("history", ("history",)),  # RFC 7044
    ],
)
def test_privacy(text: str, values: tuple[str, ...]) -> None:
    value = _reparse(h.PRIVACY, text)
    assert value == Privacy(values)
    assert isinstance(value, Privacy)
    assert values[0].upper() in value
    assert "session" not in value
    assert 1 not in value


@pytest.mark.parametrize("text", ["", ";id", "id;", "id;;user", "id,user", "id user", '"id"'])
def test_privacy_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Privacy$"):
        Privacy.parse(text)


# --------------------------------------------------------------------------- RFC 6665


@pytest.mark.parametrize(
    ("text", "package", "event_id", "templates"),
    [
        ("reg", "reg", None, ()),  # RFC 3680
        ("presence;id=4", "presence", "4", ()),  # RFC 6665 §8.2.1
        ("dialog.foo", "dialog.foo", None, ("foo",)),
        ("presence.winfo", "presence.winfo", None, ("winfo",)),  # RFC 3857
        ("ua-profile ;profile-type=device", "ua-profile", None, ()),  # RFC 5626 §9.1
        ("  refer ; id = 93809824 ", "refer", "93809824", ()),  # RFC 3515 odd LWS
    ],
)
def test_event(
    text: str, package: str, event_id: Optional[str], templates: tuple[str, ...]
) -> None:
    value = _reparse(h.EVENT, text)
    assert isinstance(value, EventType)
    assert value.package == package
    assert value.id == event_id
    assert value.templates == templates


@pytest.mark.parametrize(
    "text", ["", ".reg", "reg.", "reg..x", "reg x", "reg;", '"reg"', "reg,presence", "reg/x"]
)
def test_event_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Event$"):
        EventType.parse(text)


@pytest.mark.parametrize(
    ("text", "state", "expires", "reason", "retry_after"),
    [
        ("active;expires=3600", "active", 3600, None, None),  # RFC 6665 §8.2.3
        ("terminated;reason=timeout", "terminated", None, "timeout", None),  # RFC 5626 §9.1
        ("terminated;reason=probation;retry-after=60", "terminated", None, "probation", 60),
        ("pending ; expires = 0", "pending", 0, None, None),
        ('active;expires=4294967295;x="y"', "active", 2**32 - 1, None, None),
    ],
)
def test_subscription_state(
    text: str,
    state: str,
    expires: Optional[int],
    reason: Optional[str],
    retry_after: Optional[int],
) -> None:
    value = _reparse(h.SUBSCRIPTION_STATE, text)
    assert isinstance(value, SubscriptionState)
    assert (value.state, value.expires, value.reason, value.retry_after) == (
        state,
        expires,
        reason,
        retry_after,
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        ";active",
        "active;expires=abc",
        "active;expires=4294967296",
        "active;expires=-1",
        "active;expires",
        "terminated;reason",
        'terminated;reason="timeout"',
        "terminated;retry-after=1.5",
        "active pending",
    ],
)
def test_subscription_state_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Subscription-State$"):
        SubscriptionState.parse(text)


# --------------------------------------------------------------------------- RFC 4028


def test_session_expires_and_min_se() -> None:
    # RFC 4028 §4 examples, the second in compact form through the message layer.
    value = _reparse(h.SESSION_EXPIRES, "4000;refresher=uac")
    assert value == SessionExpires(4000, (("refresher", "uac"),))
    assert isinstance(value, SessionExpires)
    assert value.refresher == "uac"
    request = Request(
        "INVITE", "sip:bob@biloxi.com", [("x", "1800 ; Refresher = UAS"), ("Min-SE", "90")]
    )
    expires = request.headers.first(h.SESSION_EXPIRES)
    assert expires is not None
    assert (expires.delta, expires.refresher) == (1800, "uas")
    assert request.headers.first(h.MIN_SE) == MinSE(90)
    assert SessionExpires(90).refresher is None
    assert _reparse(h.MIN_SE, "3600;x-ext=1") == MinSE(3600, (("x-ext", "1"),))
    assert _reparse(h.SESSION_EXPIRES, str(2**32 - 1)) == SessionExpires(2**32 - 1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "refresher=uac",
        "4000;refresher=both",
        "4000;refresher",
        "-1",
        "4294967296",
        "949302838503028349304023988",
        "4000 abc",
        "0x10",
        "\uff11\uff12",
        "4000;",
        "1.5",
    ],
)
def test_session_expires_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Session-Expires$"):
        SessionExpires.parse(text)


@pytest.mark.parametrize("text", ["", "abc", "4294967296", "90;", "90 91", "+90"])
def test_min_se_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Min-SE$"):
        MinSE.parse(text)


# --------------------------------------------------------------------------- Reason, Warning


def test_reason() -> None:
    # RFC 3326 §2 examples (the first as a list on one line).
    request = Request(
        "CANCEL",
        "sip:bob@biloxi.com",
        [
            (
                "Reason",
                'SIP ;cause=200 ;text="Call completed elsewhere", Q.850 ;cause=16'
                ' ;text="Terminated"',
            ),
            ("Reason", 'SIP;cause=580;text="Precondition Failure"'),
        ],
    )
    values = request.headers.parsed(h.REASON)
    assert [(v.protocol, v.cause, v.text) for v in values] == [
        ("SIP", 200, "Call completed elsewhere"),
        ("Q.850", 16, "Terminated"),
        ("SIP", 580, "Precondition Failure"),
    ]
    assert ReasonValue("SIP").cause is None
    assert _reparse(h.REASON, "preemption ;cause=1 ;text=token") == ReasonValue(
        "preemption", (("cause", "1"), ("text", "token"))
    )


@pytest.mark.parametrize(
    "text", ["", ";cause=200", "SIP;cause=abc", "SIP;cause", 'SIP ;text="unterminated', "S I P"]
)
def test_reason_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Reason$"):
        ReasonValue.parse(text)


def test_warning() -> None:
    # RFC 3261 §20.43
    value = _reparse(h.WARNING, "307 isi.edu \"Session parameter 'foo' not understood\"")
    assert value == WarningValue(307, "isi.edu", "Session parameter 'foo' not understood")
    response = Response(
        488,
        "Not Acceptable Here",
        [
            (
                "Warning",
                "301 isi.edu \"Incompatible network address type 'E.164'\", 399 [2001:db8::1]:5060"
                ' "a, \\"b\\""',
            )
        ],
    )
    values = response.headers.parsed(h.WARNING)
    assert values == [
        WarningValue(301, "isi.edu", "Incompatible network address type 'E.164'"),
        WarningValue(399, "[2001:db8::1]:5060", 'a, "b"'),
    ]
    assert str(WarningValue(7, "proxy:5060", "")) == '007 proxy:5060 ""'


@pytest.mark.parametrize(
    "text",
    [
        '1812 overture "In Progress"',  # RFC 4475 §3.1.2.5 scalarlg
        '30 isi.edu "x"',
        "307 isi.edu x",
        '307 "x"',
        "307 isi.edu",
        '307 host:99999 "x"',
        '307 [zz::1] "x"',
        '307 [1.2.3.4] "x"',
        '307 isi.edu "x" trailing',
        '307isi.edu "x"',
        '307 isi.edu"x"',
        "",
    ],
)
def test_warning_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Warning$"):
        WarningValue.parse(text)


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("text", "expected", "duration"),
    [
        # RFC 3261 §20.33
        ("18000;duration=3600", RetryAfter(18000, None, (("duration", "3600"),)), 3600),
        ("120 (I'm in a meeting)", RetryAfter(120, "I'm in a meeting"), None),
        ("120(x)", RetryAfter(120, "x"), None),
        (
            "5 ( a (nested \\) one) ) ; duration = 1",
            RetryAfter(5, " a (nested \\) one) ", (("duration", "1"),)),
            1,
        ),
        ("0 ()", RetryAfter(0, ""), None),
    ],
)
def test_retry_after(text: str, expected: RetryAfter, duration: Optional[int]) -> None:
    value = _reparse(h.RETRY_AFTER, text)
    assert value == expected
    assert isinstance(value, RetryAfter)
    assert value.duration == duration


@pytest.mark.parametrize(
    "text",
    [
        "949302838503028349304023988",  # RFC 4475 §3.1.2.5 scalarlg
        "-1",
        "",
        "120 (unterminated",
        "120 (x))",
        "120 (a\x01b)",
        "120 (a\\",
        "120;duration=abc",
        "120;duration",
        "(x) 120",
        "120 x",
    ],
)
def test_retry_after_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Retry-After$"):
        RetryAfter.parse(text)


# --------------------------------------------------------------------------- RFC 3841


def test_accept_and_reject_contact() -> None:
    # RFC 3841 §9 examples, compact forms and comma lists through the message layer.
    request = Request(
        "INVITE",
        "sip:bob@biloxi.com",
        [
            ("Accept-Contact", "*;audio;require"),
            ("a", '*;video;explicit, *;mobility="mobile";methods="INVITE,BYE"'),
            ("j", '*;actor="msg-taker";video'),
            ("Request-Disposition", "proxy, recurse, parallel"),
        ],
    )
    accept = request.headers.parsed(h.ACCEPT_CONTACT)
    assert accept == [
        ContactPreference((("audio", None), ("require", None))),
        ContactPreference((("video", None), ("explicit", None))),
        ContactPreference((("mobility", '"mobile"'), ("methods", '"INVITE,BYE"'))),
    ]
    assert (accept[0].require, accept[0].explicit) == (True, False)
    assert (accept[1].require, accept[1].explicit) == (False, True)
    assert accept[0].features == (("audio", None),)
    assert accept[2].param("methods") == "INVITE,BYE"
    assert request.headers.parsed(h.REJECT_CONTACT) == [
        ContactPreference((("actor", '"msg-taker"'), ("video", None)))
    ]
    assert request.headers.parsed(h.REQUEST_DISPOSITION) == ["proxy", "recurse", "parallel"]
    # RFC 5626 / 3GPP TS 24.229 feature tags
    value = _reparse(
        h.ACCEPT_CONTACT,
        '*;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";'
        '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel";explicit;require',
    )
    assert isinstance(value, ContactPreference)
    assert value.require and value.explicit
    assert value.param("+g.3gpp.icsi-ref") == "urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"
    assert _reparse(h.ACCEPT_CONTACT, "  *  ") == ContactPreference()


@pytest.mark.parametrize("text", ["", "audio;require", "*audio", "*;", "sip:x", "**", "*;a=<b>"])
def test_contact_preference_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Accept-Contact$"):
        h.ACCEPT_CONTACT.parse(text)
    with pytest.raises(ParseError, match=r"^Bad Reject-Contact$"):
        h.REJECT_CONTACT.parse(text)


@pytest.mark.parametrize("text", ["", "no fork", "proxy;x", '"proxy"', "proxy,fork"])
def test_request_disposition_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^Bad Request-Disposition$"):
        h.REQUEST_DISPOSITION.parse(text)


def test_request_disposition_list() -> None:
    request = Request("INVITE", "sip:bob@biloxi.com", [("d", "proxy, ,")])
    assert request.headers.parsed(h.REQUEST_DISPOSITION) == ["proxy"]


# --------------------------------------------------------------------------- message layer


def test_typed_values_through_the_message_layer() -> None:
    request = Request(
        "SUBSCRIBE",
        "sip:alice@home1.net",
        [
            ("Event", "reg"),
            ("Privacy", "id"),
            ("P-Charging-Vector", "icid-value=1234bc9876e; orig-ioi=home1.net"),
            ("P-Charging-Function-Addresses", "ccf=192.1.1.1; ecf=192.1.1.3"),
            ("Proxy-Authorization", 'Digest username="alice", realm="home1.net", nonce="n"'),
            ("Retry-After", "60"),
        ],
    )
    headers = request.headers
    assert headers.first(h.EVENT) == EventType("reg")
    privacy = headers.first(h.PRIVACY)
    assert privacy is not None and "id" in privacy
    vector = headers.first(h.P_CHARGING_VECTOR)
    assert vector is not None and vector.icid == "1234bc9876e"
    addresses = headers.first(h.P_CHARGING_FUNCTION_ADDRESSES)
    assert addresses is not None and addresses.ccf == ["192.1.1.1"]
    credentials = headers.first(h.PROXY_AUTHORIZATION)
    assert credentials is not None and credentials.username == "alice"
    assert headers.first(h.RETRY_AFTER) == RetryAfter(60)
    assert headers.first(h.WARNING) is None
    # Typed values added to a message render and parse back.
    response = Response(401, "Unauthorized")
    challenge = Challenge("Digest", (("realm", quote("home1.net")), ("nonce", '"x"')))
    response.headers.add("WWW-Authenticate", challenge)
    response.headers.add("Subscription-State", SubscriptionState("active", (("expires", "60"),)))
    assert response.headers.first(h.WWW_AUTHENTICATE) is challenge
    again = Response(401, "Unauthorized", list(response.headers))  # as text, parsed afresh
    assert again.headers.parsed(h.WWW_AUTHENTICATE) == [challenge]
    state = again.headers.first(h.SUBSCRIPTION_STATE)
    assert state is not None and state.expires == 60


def test_bad_value_through_the_message_layer() -> None:
    request = Request("INVITE", "sip:bob@biloxi.com", [("Session-Expires", "soon")])
    with pytest.raises(ParseError, match=r"^Bad Session-Expires$"):
        request.headers.parsed(h.SESSION_EXPIRES)


# --------------------------------------------------------------------------- model round trips

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
_CONTROLS = "".join(chr(c) for c in range(0x20) if c != 0x09) + "\x7f"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=8)
_text_chars = st.one_of(
    st.characters(exclude_characters=_CONTROLS),
    st.integers(0xDC80, 0xDCFF).map(chr),  # undecodable bytes kept by surrogateescape
)
# Any text a quoted-string can carry once unquoted (CR and LF cannot be carried at all).
free_text = st.text(st.one_of(_text_chars, st.sampled_from('\x00\x01\x1f\x7f"\\')), max_size=10)
# quote() leaves control characters raw, so quoted *values* use text without them.
quoted = st.text(_text_chars, max_size=10).map(quote)
ipv6_refs = st.ip_addresses(v=6).map(lambda a: "[" + str(a) + "]")
gen_values = st.one_of(st.none(), tokens, quoted, ipv6_refs)
deltas = st.integers(0, 2**32 - 1)


def params(
    exclude: Iterable[str] = (), values: st.SearchStrategy[Optional[str]] = gen_values
) -> st.SearchStrategy[Params]:
    """Generic parameters whose names are not in ``exclude``."""
    excluded = frozenset(exclude)
    names = tokens.filter(lambda n: n.lower() not in excluded)
    return st.lists(st.tuples(names, values), max_size=4).map(tuple)


def one_param(name: str, values: st.SearchStrategy[Optional[str]]) -> st.SearchStrategy[Params]:
    """Zero or one ``name=value`` parameter."""
    return st.lists(st.tuples(st.just(name), values), max_size=1).map(tuple)


def joined(*parts: st.SearchStrategy[Params]) -> st.SearchStrategy[Params]:
    return st.tuples(*parts).map(lambda ps: tuple(chain.from_iterable(ps)))


auth_params = st.lists(st.tuples(tokens, st.one_of(tokens, quoted)), min_size=1, max_size=5).map(
    tuple
)
token68s = st.from_regex(r"[A-Za-z0-9\-._~+/]+=*", fullmatch=True)
other_schemes = tokens.filter(lambda s: s.lower() != "digest")


def auth_values(
    cls: Callable[[str, Params, Optional[str]], object],
) -> st.SearchStrategy[object]:
    return st.one_of(
        st.builds(cls, st.sampled_from(["Digest", "digest"]) | tokens, auth_params, st.none()),
        st.builds(cls, other_schemes, st.just(()), token68s),
        st.builds(cls, other_schemes, st.just(()), st.none()),
    )


_ctext = st.text(st.characters(exclude_characters=_CONTROLS + "()\\"), max_size=6)
_quoted_pair = st.characters(max_codepoint=0x7F, exclude_characters="\r\n").map(lambda c: "\\" + c)
comments = st.recursive(
    st.lists(st.one_of(_ctext, _quoted_pair), max_size=3).map("".join),
    lambda inner: st.lists(
        st.one_of(_ctext, _quoted_pair, inner.map(lambda s: "(" + s + ")")), max_size=3
    ).map("".join),
    max_leaves=6,
)

_port = st.integers(0, 65535).map(lambda p: ":" + str(p))
warn_agents = st.builds(
    lambda host, port: host + port,
    st.one_of(tokens, ipv6_refs),
    st.one_of(st.just(""), _port),
)
_nodot = st.text(TOKEN_CHARS.replace(".", ""), min_size=1, max_size=6)

MODELS: list[tuple[HeaderSpec[object], st.SearchStrategy[object]]] = [
    (h.AUTHORIZATION, auth_values(Credentials)),
    (h.PROXY_AUTHORIZATION, auth_values(Credentials)),
    (h.WWW_AUTHENTICATE, auth_values(Challenge)),
    (h.PROXY_AUTHENTICATE, auth_values(Challenge)),
    (h.AUTHENTICATION_INFO, st.builds(AuthenticationInfo, auth_params)),
    (
        h.P_CHARGING_VECTOR,
        st.builds(
            ChargingVector,
            joined(
                st.tuples(
                    st.sampled_from(["icid-value", "ICID-Value"]),
                    st.one_of(tokens, quoted, ipv6_refs),
                ).map(lambda p: (p,)),
                one_param("icid-generated-at", st.one_of(tokens, ipv6_refs)),
                one_param("orig-ioi", st.one_of(tokens, quoted)),
                one_param("term-ioi", st.one_of(tokens, quoted)),
                params(),
            ),
        ),
    ),
    (
        h.P_CHARGING_FUNCTION_ADDRESSES,
        st.builds(
            ChargingFunctionAddresses,
            st.lists(
                st.tuples(
                    st.sampled_from(["ccf", "ecf", "CCF"]), st.one_of(tokens, quoted, ipv6_refs)
                ),
                min_size=1,
                max_size=4,
            )
            .map(tuple)
            .flatmap(lambda first: joined(st.just(first), params())),
        ),
    ),
    (h.P_VISITED_NETWORK_ID, st.builds(VisitedNetworkId, st.one_of(tokens, free_text), params())),
    (h.P_ACCESS_NETWORK_INFO, st.builds(AccessNetworkInfo, st.one_of(tokens, free_text), params())),
    (h.PRIVACY, st.builds(Privacy, st.lists(tokens, min_size=1, max_size=5).map(tuple))),
    (
        h.EVENT,
        st.builds(EventType, st.lists(_nodot, min_size=1, max_size=3).map(".".join), params()),
    ),
    (
        h.SUBSCRIPTION_STATE,
        st.builds(
            SubscriptionState,
            st.sampled_from(["active", "pending", "terminated"]) | tokens,
            joined(
                one_param("expires", deltas.map(str)),
                one_param("reason", tokens),
                one_param("retry-after", deltas.map(str)),
                params(exclude={"expires", "reason", "retry-after"}),
            ),
        ),
    ),
    (
        h.SESSION_EXPIRES,
        st.builds(
            SessionExpires,
            deltas,
            joined(
                one_param("refresher", st.sampled_from(["uac", "uas", "UAC"])),
                params(exclude={"refresher"}),
            ),
        ),
    ),
    (h.MIN_SE, st.builds(MinSE, deltas, params())),
    (
        h.REASON,
        st.builds(
            ReasonValue,
            st.sampled_from(["SIP", "Q.850"]) | tokens,
            joined(
                one_param("cause", st.integers(0, 2**32 - 1).map(str)),
                one_param("text", quoted),
                params(exclude={"cause"}),
            ),
        ),
    ),
    (h.WARNING, st.builds(WarningValue, st.integers(0, 999), warn_agents, free_text)),
    (
        h.RETRY_AFTER,
        st.builds(
            RetryAfter,
            deltas,
            st.none() | comments,
            joined(one_param("duration", deltas.map(str)), params(exclude={"duration"})),
        ),
    ),
    (h.ACCEPT_CONTACT, st.builds(ContactPreference, params())),
    (h.REJECT_CONTACT, st.builds(ContactPreference, params())),
    (h.REQUEST_DISPOSITION, st.sampled_from(["proxy", "redirect", "fork", "no-queue"]) | tokens),
]


def test_models_cover_every_new_spec() -> None:
    assert sorted(spec.name for spec, _ in MODELS) == sorted(spec.name for spec in NEW_SPECS)


@pytest.mark.parametrize(("spec", "values"), MODELS, ids=[spec.name for spec, _ in MODELS])
@given(data=st.data())
def test_model_round_trip(
    spec: HeaderSpec[object], values: st.SearchStrategy[object], data: st.DataObject
) -> None:
    value = data.draw(values)
    text = str(value)
    assert spec.parse(text) == value
    # Leading and trailing LWS around the value are allowed everywhere.
    assert spec.parse(" \t" + text + " \t") == value


# --------------------------------------------------------------------------- robustness

_FRAGMENTS = [
    "Digest ", "Basic ", "realm=", '"', '\\"', "\\", ",", ", ", ";", "=", " ", "\t", "(", ")",
    "*", "<", ">", "[::1]", "[", "]", ":", "0", "999", "4294967296", "icid-value=", "ccf=",
    "expires=", "cause=", "duration=", "refresher=", "reason=", "uac", ".", "\x00", "\x7f",
    "\udc80", "\u00e9", "qop=\"auth,auth-int\"", "id", "require",
]  # fmt: skip
grammar_soup = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), tokens, st.text(max_size=3)), max_size=12
).map("".join)
any_text = st.text(st.one_of(st.characters(), st.integers(0xDC80, 0xDCFF).map(chr)))


def _exercise(value: object) -> None:
    """Every property of a parsed value can be read without an error."""
    for name in dir(type(value)):
        if isinstance(getattr(type(value), name, None), property):
            getattr(value, name)


@pytest.mark.parametrize("spec", NEW_SPECS, ids=[spec.name for spec in NEW_SPECS])
@given(text=st.one_of(any_text, grammar_soup))
def test_arbitrary_text_raises_only_parse_error(spec: HeaderSpec[object], text: str) -> None:
    try:
        value = spec.parse(text)
    except ParseError as e:
        assert e.reason.startswith("Bad ")
        assert e.reason.isascii()
        return
    _exercise(value)
    assert spec.parse(str(value)) == value


def test_frozen() -> None:
    value = EventType("reg")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        value.package = "presence"  # type: ignore[misc]  # checking the runtime guard
