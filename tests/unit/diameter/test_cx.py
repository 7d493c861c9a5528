"""Tests for clearwater.diameter.apps.cx (TS 29.229 Cx; Clearwater spec §7.1)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any, Callable, Optional, TypedDict

import pytest

from clearwater.diameter.apps import cx
from clearwater.diameter.apps.cx import (
    CX,
    CX_AVPS,
    CX_COMMANDS,
    CX_VENDOR_APP,
    SCHEME_AKAV1,
    SCHEME_AKAV2,
    SCHEME_DIGEST,
    SCHEME_UNKNOWN,
    SUCCESS,
    AkaVector,
    ChargingInformation,
    CxOutcome,
    DigestVector,
    ReasonCode,
    ServerAssignmentType,
    ServerCapabilities,
    UserAuthorizationType,
)
from clearwater.diameter.dictionary import AvpType
from clearwater.diameter.message import (
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    DiameterDecodeError,
    Message,
    parse_message,
)
from clearwater.diameter.results import CxResult, ResultCode

V3GPP = 10415


class _Origin(TypedDict):
    origin_host: str
    origin_realm: str


class _Client(_Origin):
    destination_realm: str


HSS: _Origin = {"origin_host": "hss.example.net", "origin_realm": "example.net"}
CLIENT: _Client = {
    "origin_host": "homestead.example.com",
    "origin_realm": "example.com",
    "destination_realm": "example.net",
}


def wire(message: Message) -> Message:
    """``message`` through bytes and back, with the identifiers a node would set."""
    data = bytearray(bytes(message))
    data[12:20] = bytes.fromhex("0000002a0000beef")
    return parse_message(bytes(data))


def reparse(message: Message) -> Message:
    """``message`` through bytes and back, as sent."""
    return parse_message(bytes(message))


def names(message: Message) -> list[str]:
    out = []
    for avp in message.avps:
        row = CX.definition(avp)
        assert row is not None, avp
        out.append(row.name)
    return out


def member_names(avp: Avp) -> list[str]:
    out = []
    for member in avp.avps():
        row = CX.definition(member)
        out.append(row.name if row is not None else str(member.key))
    return out


def without(message: Message, name: str) -> Message:
    row = CX[name]
    return Message(
        message.command_code,
        message.application_id,
        tuple(avp for avp in message.avps if avp.key != row.key),
        message.flags,
    )


def replace(message: Message, avp: Avp) -> Message:
    return Message(
        message.command_code,
        message.application_id,
        tuple(avp if a.key == avp.key else a for a in message.avps),
        message.flags,
    )


def check_answer_header(answer: Message, request: Message) -> None:
    """RFC 6733 §6.2: R cleared, P copied, identifiers copied, Session-Id first."""
    assert not answer.is_request
    assert answer.flags & FLAG_PROXIABLE
    assert (answer.command_code, answer.application_id) == (
        request.command_code,
        request.application_id,
    )
    assert (answer.hop_by_hop, answer.end_to_end) == (0x2A, 0xBEEF)
    assert answer.avps[0] == request.find(263)


# --------------------------------------------------------------------------- rows

# TS 29.229 table 6.3.1 (as of V11.2.0; the M rules of 628-635 differ from Rel-6's, which
# Wireshark's TGPP.xml still has), written out from the table, not from CX_AVPS: AVP code, type
# and flag rule. "M,V": both flags must be set; "V": V must be set, M must not (for
# Supported-Features M is "may", and this node sends it cleared, TS 29.229 §7.2.1).
TS_29229: dict[str, tuple[int, str, str]] = {
    "Visited-Network-Identifier": (600, "OctetString", "M,V"),
    "Public-Identity": (601, "UTF8String", "M,V"),
    "Server-Name": (602, "UTF8String", "M,V"),
    "Server-Capabilities": (603, "Grouped", "M,V"),
    "Mandatory-Capability": (604, "Unsigned32", "M,V"),
    "Optional-Capability": (605, "Unsigned32", "M,V"),
    "User-Data": (606, "OctetString", "M,V"),
    "SIP-Number-Auth-Items": (607, "Unsigned32", "M,V"),
    "SIP-Authentication-Scheme": (608, "UTF8String", "M,V"),
    "SIP-Authenticate": (609, "OctetString", "M,V"),
    "SIP-Authorization": (610, "OctetString", "M,V"),
    "SIP-Authentication-Context": (611, "OctetString", "M,V"),
    "SIP-Auth-Data-Item": (612, "Grouped", "M,V"),
    "SIP-Item-Number": (613, "Unsigned32", "M,V"),
    "Server-Assignment-Type": (614, "Enumerated", "M,V"),
    "Deregistration-Reason": (615, "Grouped", "M,V"),
    "Reason-Code": (616, "Enumerated", "M,V"),
    "Reason-Info": (617, "UTF8String", "M,V"),
    "Charging-Information": (618, "Grouped", "M,V"),
    "Primary-Event-Charging-Function-Name": (619, "DiameterURI", "M,V"),
    "Secondary-Event-Charging-Function-Name": (620, "DiameterURI", "M,V"),
    "Primary-Charging-Collection-Function-Name": (621, "DiameterURI", "M,V"),
    "Secondary-Charging-Collection-Function-Name": (622, "DiameterURI", "M,V"),
    "User-Authorization-Type": (623, "Enumerated", "M,V"),
    "User-Data-Already-Available": (624, "Enumerated", "M,V"),
    "Confidentiality-Key": (625, "OctetString", "M,V"),
    "Integrity-Key": (626, "OctetString", "M,V"),
    "Supported-Features": (628, "Grouped", "V"),
    "Feature-List-ID": (629, "Unsigned32", "V"),
    "Feature-List": (630, "Unsigned32", "V"),
    "Associated-Identities": (632, "Grouped", "V"),
    "Originating-Request": (633, "Enumerated", "M,V"),
    "Wildcarded-Public-Identity": (634, "UTF8String", "V"),
    "SIP-Digest-Authenticate": (635, "Grouped", "V"),
    "UAR-Flags": (637, "Unsigned32", "V"),
}

# Spec §7.1's list of the AVPs homestead sends and reads (3GPP ones).
SPEC_7_1 = {
    "Visited-Network-Identifier": 600,
    "Public-Identity": 601,
    "Server-Name": 602,
    "Server-Capabilities": 603,
    "Mandatory-Capability": 604,
    "Optional-Capability": 605,
    "User-Data": 606,
    "SIP-Number-Auth-Items": 607,
    "SIP-Authentication-Scheme": 608,
    "SIP-Authenticate": 609,
    "SIP-Authorization": 610,
    "SIP-Auth-Data-Item": 612,
    "Server-Assignment-Type": 614,
    "Deregistration-Reason": 615,
    "Reason-Code": 616,
    "Charging-Information": 618,
    "Primary-Event-Charging-Function-Name": 619,
    "Secondary-Event-Charging-Function-Name": 620,
    "Primary-Charging-Collection-Function-Name": 621,
    "Secondary-Charging-Collection-Function-Name": 622,
    "User-Authorization-Type": 623,
    "User-Data-Already-Available": 624,
    "Confidentiality-Key": 625,
    "Integrity-Key": 626,
    "Supported-Features": 628,
    "Feature-List-ID": 629,
    "Feature-List": 630,
    "Associated-Identities": 632,
    "Originating-Request": 633,
    "Wildcarded-Public-Identity": 634,
    "SIP-Digest-Authenticate": 635,
    "UAR-Flags": 637,
}

_SAMPLES: dict[str, Any] = {
    "OctetString": b"x",
    "UTF8String": "x",
    "DiameterURI": "aaa://x",
    "Unsigned32": 1,
    "Enumerated": 1,
    "Grouped": (),
}


def test_rows_are_the_ts_29229_table() -> None:
    assert {row.name for row in CX_AVPS} == set(TS_29229)
    for row in CX_AVPS:
        code, kind, _ = TS_29229[row.name]
        assert (row.code, row.type.value, row.vendor_id) == (code, kind, V3GPP), row


def test_rows_cover_spec_7_1() -> None:
    for name, code in SPEC_7_1.items():
        assert CX[name].code == code
        assert CX.lookup(code, V3GPP) is CX[name]


@pytest.mark.parametrize("name", sorted(TS_29229))
def test_flags_on_the_wire(name: str) -> None:
    # The AVP header as sent: flags octet, then the vendor id (RFC 6733 §4.1).
    code, kind, rule = TS_29229[name]
    data = bytes(CX.avp(name, _SAMPLES[kind]))
    assert int.from_bytes(data[:4], "big") == code
    assert data[4] == {"M,V": 0xC0, "V": 0x80}[rule]
    assert int.from_bytes(data[8:12], "big") == V3GPP


def test_commands() -> None:
    assert [(c.code, c.request, c.answer, c.application_id, c.proxiable) for c in CX_COMMANDS] == [
        (300, "UAR", "UAA", 16777216, True),
        (301, "SAR", "SAA", 16777216, True),
        (302, "LIR", "LIA", 16777216, True),
        (303, "MAR", "MAA", 16777216, True),
        (304, "RTR", "RTA", 16777216, True),
        (305, "PPR", "PPA", 16777216, True),
    ]
    assert CX.command("Multimedia-Auth").code == 303
    assert CX.command_for(304, 16777216) is CX.command("RTR")


def test_vendor_specific_application_id() -> None:
    # Grouped 260 (M) {Vendor-Id 266 = 10415, Auth-Application-Id 258 = 16777216}.
    assert bytes(CX_VENDOR_APP) == bytes.fromhex(
        "00000104 40000020 0000010a 4000000c 000028af 00000102 4000000c 01000000"
    )


WIRESHARK_TGPP = "/usr/share/wireshark/diameter/TGPP.xml"
# Wireshark's type names for ours; OctetStringOrUTF8 is its OctetString shown as text if it is.
_WS_TYPES = {"OctetStringOrUTF8": "OctetString"}


def _wireshark_cx() -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    with open(WIRESHARK_TGPP, encoding="utf-8") as f:
        text = f.read()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]
    root = ET.fromstring("<root>" + text + "</root>")
    avps: dict[int, tuple[str, str]] = {}
    for avp in root.iter("avp"):
        if avp.get("vendor-id") != "TGPP":
            continue
        code = int(avp.get("code", "-1"))
        typed = avp.find("type")
        if avp.find("grouped") is not None:
            kind = "Grouped"
        elif typed is not None:
            kind = typed.get("type-name", "")
        else:
            continue
        avps.setdefault(code, (avp.get("name", ""), _WS_TYPES.get(kind, kind)))
    commands = {}
    for app in root.iter("application"):
        if app.get("id") == "16777216":
            for command in app.iter("command"):
                commands[int(command.get("code", "-1"))] = command.get("name", "")
    return avps, commands


@pytest.mark.skipif(
    not os.path.exists(WIRESHARK_TGPP), reason="Wireshark's diameter/TGPP.xml is not installed"
)
def test_rows_against_wireshark() -> None:
    avps, commands = _wireshark_cx()
    for row in CX_AVPS:
        assert row.vendor_id == V3GPP
        assert row.code in avps, row
        ws_name, ws_type = avps[row.code]
        assert ws_type == row.type.value, (row, ws_name)
    for command in CX_COMMANDS:
        assert commands[command.code] == command.name


# --------------------------------------------------------------------------- UAR bytes


def test_uar_bytes() -> None:
    message = cx.uar(
        session_id="hs;1",
        origin_host="hs.cw",
        origin_realm="cw",
        destination_realm="hss.cw",
        destination_host="hss1.cw",
        impi="a@cw",
        impu="sip:a@cw",
        visited_network="cw",
        authorization_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
        emergency=True,
    )
    expected = "".join(
        [
            # Header: version 1, length 216; flags R|P, command 300; application 16777216;
            # hop-by-hop 0; end-to-end 0.
            "01 0000d8  c0 00012c  01000000  00000000  00000000",
            # Session-Id 263, M, length 12, "hs;1".
            "00000107 4000000c 68733b31",
            # Vendor-Specific-Application-Id 260, M, length 32:
            #   Vendor-Id 266 = 10415; Auth-Application-Id 258 = 16777216.
            "00000104 40000020 0000010a 4000000c 000028af 00000102 4000000c 01000000",
            # Auth-Session-State 277 = 1 (NO_STATE_MAINTAINED).
            "00000115 4000000c 00000001",
            # Origin-Host 264, length 13, "hs.cw", 3 bytes of padding.
            "00000108 4000000d 68732e6377 000000",
            # Origin-Realm 296, length 10, "cw", 2 bytes of padding.
            "00000128 4000000a 6377 0000",
            # Destination-Host 293, length 15, "hss1.cw", 1 byte of padding.
            "00000125 4000000f 687373312e6377 00",
            # Destination-Realm 283, length 14, "hss.cw", 2 bytes of padding.
            "0000011b 4000000e 6873732e6377 0000",
            # User-Name 1, length 12, "a@cw".
            "00000001 4000000c 61406377",
            # Public-Identity 601, V|M, length 20, vendor 10415, "sip:a@cw".
            "00000259 c0000014 000028af 7369703a61406377",
            # Visited-Network-Identifier 600, V|M, length 14, vendor 10415, "cw", padding.
            "00000258 c000000e 000028af 6377 0000",
            # User-Authorization-Type 623, V|M, length 16, REGISTRATION_AND_CAPABILITIES (2).
            "0000026f c0000010 000028af 00000002",
            # UAR-Flags 637, V only (M must not), length 16, bit 0 (emergency registration).
            "0000027d 80000010 000028af 00000001",
        ]
    ).replace(" ", "")
    assert bytes(message).hex() == expected
    assert len(bytes(message)) == 216


# --------------------------------------------------------------------------- round trips


def test_uar_round_trip() -> None:
    request = wire(
        cx.uar(
            session_id="hs;uar",
            **CLIENT,
            impi="alice@example.com",
            impu="sip:alice@example.com",
            visited_network="visited.example.org",
            authorization_type=UserAuthorizationType.DE_REGISTRATION,
        )
    )
    assert request.flags == FLAG_REQUEST | FLAG_PROXIABLE
    assert names(request) == [
        "Session-Id",
        "Vendor-Specific-Application-Id",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Realm",
        "User-Name",
        "Public-Identity",
        "Visited-Network-Identifier",
        "User-Authorization-Type",
    ]
    parsed = cx.parse_uar(request)
    assert parsed == cx.UarRequest(
        session_id="hs;uar",
        origin_host="homestead.example.com",
        origin_realm="example.com",
        impi="alice@example.com",
        impu="sip:alice@example.com",
        visited_network="visited.example.org",
        authorization_type=UserAuthorizationType.DE_REGISTRATION,
        emergency=False,
    )
    assert type(parsed.authorization_type) is UserAuthorizationType

    answer = reparse(
        cx.uaa(
            request,
            **HSS,
            outcome=CxOutcome(CxResult.DIAMETER_FIRST_REGISTRATION, experimental=True),
            capabilities=ServerCapabilities((1, 2), (3,)),
        )
    )
    check_answer_header(answer, request)
    assert names(answer) == [
        "Session-Id",
        "Vendor-Specific-Application-Id",
        "Experimental-Result",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "Server-Capabilities",
    ]
    # Experimental-Result {Vendor-Id 10415, Experimental-Result-Code 2001}.
    assert bytes(answer.avps[2]) == bytes.fromhex(
        "00000129 40000020 0000010a 4000000c 000028af 0000012a 4000000c 000007d1"
    )
    uaa = cx.parse_uaa(answer)
    assert uaa == cx.UaaAnswer(CxOutcome(2001, True, V3GPP), None, (1, 2), (3,))
    assert uaa.outcome.success and uaa.outcome.is_3gpp
    assert uaa.capabilities == ServerCapabilities((1, 2), (3,))

    answer = reparse(cx.uaa(request, **HSS, outcome=SUCCESS, server_name="sip:scscf.example.com"))
    assert cx.parse_uaa(answer) == cx.UaaAnswer(CxOutcome(2001), "sip:scscf.example.com")


def test_uar_defaults_and_emergency() -> None:
    request = cx.uar(
        session_id="s",
        **CLIENT,
        destination_host="hss1.example.net",
        impi="i",
        impu="u",
        visited_network="v",
        emergency=True,
    )
    assert names(request)[5:7] == ["Destination-Host", "Destination-Realm"]
    parsed = cx.parse_uar(wire(request))
    assert parsed.authorization_type is UserAuthorizationType.REGISTRATION
    assert parsed.emergency
    # No User-Authorization-Type means REGISTRATION (TS 29.229 §6.3.24).
    stripped = without(request, "User-Authorization-Type")
    assert cx.parse_uar(stripped).authorization_type is UserAuthorizationType.REGISTRATION


def test_mar_round_trip_digest() -> None:
    request = wire(
        cx.mar(
            session_id="hs;mar",
            **CLIENT,
            destination_host="hss1.example.net",
            impi="alice@example.com",
            impu="sip:alice@example.com",
            scheme=SCHEME_UNKNOWN,
            server_name="sip:scscf.example.com",
        )
    )
    # MAR's ABNF puts Destination-Realm before Destination-Host (TS 29.229 §6.1.7).
    assert names(request) == [
        "Session-Id",
        "Vendor-Specific-Application-Id",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Realm",
        "Destination-Host",
        "User-Name",
        "Public-Identity",
        "SIP-Auth-Data-Item",
        "SIP-Number-Auth-Items",
        "Server-Name",
    ]
    assert member_names(request.avps[9]) == ["SIP-Authentication-Scheme"]
    assert cx.parse_mar(request) == cx.MarRequest(
        session_id="hs;mar",
        origin_host="homestead.example.com",
        origin_realm="example.com",
        impi="alice@example.com",
        impu="sip:alice@example.com",
        scheme="Unknown",
        server_name="sip:scscf.example.com",
        authorization=None,
        number_auth_items=1,
    )

    vector = DigestVector("0123456789abcdef0123456789abcdef", "example.com", "auth")
    answer = reparse(cx.maa(request, **HSS, outcome=SUCCESS, digest=vector))
    check_answer_header(answer, request)
    assert names(answer) == [
        "Session-Id",
        "Vendor-Specific-Application-Id",
        "Result-Code",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "User-Name",
        "Public-Identity",
        "SIP-Number-Auth-Items",
        "SIP-Auth-Data-Item",
    ]
    item = answer.avps[9]
    assert member_names(item) == ["SIP-Authentication-Scheme", "SIP-Digest-Authenticate"]
    # SIP-Digest-Authenticate: V only; its members are RFC 4590's, no vendor.
    digest_authenticate = item.avps()[1]
    assert digest_authenticate.flags == 0x80
    assert [a.key for a in digest_authenticate.avps()] == [(104, 0), (110, 0), (121, 0)]
    maa = cx.parse_maa(answer)
    assert maa == cx.MaaAnswer(SUCCESS, SCHEME_DIGEST, vector, None, "alice@example.com")


@pytest.mark.parametrize("scheme", [SCHEME_AKAV1, SCHEME_AKAV2])
def test_mar_round_trip_aka(scheme: str) -> None:
    resync = bytes(range(16)) + bytes(range(100, 114))  # RAND ‖ AUTS
    request = wire(
        cx.mar(
            session_id="hs;mar2",
            **CLIENT,
            impi="bob@example.com",
            impu="sip:bob@example.com",
            scheme=scheme,
            server_name="sip:scscf.example.com",
            authorization=resync,
        )
    )
    assert member_names(request.avps[8]) == ["SIP-Authentication-Scheme", "SIP-Authorization"]
    parsed = cx.parse_mar(request)
    assert (parsed.scheme, parsed.authorization) == (scheme, resync)

    vector = AkaVector(b"R" * 16 + b"A" * 16, b"X" * 8, b"C" * 16, b"I" * 16)
    answer = reparse(cx.maa(request, **HSS, outcome=SUCCESS, scheme=scheme, aka=vector))
    assert member_names(answer.avps[9]) == [
        "SIP-Authentication-Scheme",
        "SIP-Authenticate",
        "SIP-Authorization",
        "Confidentiality-Key",
        "Integrity-Key",
    ]
    assert cx.parse_maa(answer) == cx.MaaAnswer(SUCCESS, scheme, None, vector, "bob@example.com")


def test_maa_failures_and_other_schemes() -> None:
    request = cx.mar(
        session_id="s", **CLIENT, impi="i", impu="u", scheme=SCHEME_DIGEST, server_name="sip:s"
    )
    unknown = CxOutcome(CxResult.DIAMETER_ERROR_USER_UNKNOWN, True)
    answer = reparse(cx.maa(request, **HSS, outcome=unknown))
    assert cx.parse_maa(answer) == cx.MaaAnswer(unknown)
    # A scheme homestead does not know: no vector read.
    answer = reparse(cx.maa(request, **HSS, outcome=SUCCESS, scheme="NASS-Bundled"))
    assert cx.parse_maa(answer) == cx.MaaAnswer(SUCCESS, "NASS-Bundled")


def test_maa_digest_with_3gpp_vendor_members() -> None:
    # Some HSSs send the Digest-* AVPs with vendor 10415 (Clearwater's homestead read both).
    request = cx.mar(
        session_id="s", **CLIENT, impi="i", impu="u", scheme=SCHEME_DIGEST, server_name="sip:s"
    )
    digest = Avp.grouped(
        635,
        [
            Avp.make(104, b"realm.example", V3GPP),
            Avp.make(121, b"ab" * 16, V3GPP),
        ],
        V3GPP,
        mandatory=False,
    )
    item = CX.group(
        "SIP-Auth-Data-Item", CX.avp("SIP-Authentication-Scheme", SCHEME_DIGEST), digest
    )
    answer = reparse(cx.maa(request, **HSS, outcome=SUCCESS))
    answer = Message(answer.command_code, answer.application_id, (*answer.avps, item), answer.flags)
    maa = cx.parse_maa(answer)
    assert maa.digest == DigestVector("ab" * 16, "realm.example", "")


def test_sar_round_trip() -> None:
    request = wire(
        cx.sar(
            session_id="hs;sar",
            **CLIENT,
            impi="alice@example.com",
            impu="sip:alice@example.com",
            server_name="sip:scscf.example.com",
            assignment_type=ServerAssignmentType.REGISTRATION,
            wildcard="sip:!.*!@example.com",
            shared_ifcs=True,
        )
    )
    assert names(request)[6:] == [
        "User-Name",
        "Supported-Features",
        "Public-Identity",
        "Wildcarded-Public-Identity",
        "Server-Name",
        "Server-Assignment-Type",
        "User-Data-Already-Available",
    ]
    # Supported-Features 628, V only, {Vendor-Id 10415, Feature-List-ID 1, Feature-List 1}.
    assert bytes(request.avps[7]) == bytes.fromhex(
        "00000274 80000038 000028af"
        "0000010a 4000000c 000028af"
        "00000275 80000010 000028af 00000001"
        "00000276 80000010 000028af 00000001"
    )
    parsed = cx.parse_sar(request)
    assert parsed == cx.SarRequest(
        session_id="hs;sar",
        origin_host="homestead.example.com",
        origin_realm="example.com",
        impi="alice@example.com",
        impus=("sip:alice@example.com",),
        server_name="sip:scscf.example.com",
        assignment_type=ServerAssignmentType.REGISTRATION,
        wildcard="sip:!.*!@example.com",
        shared_ifcs=True,
        user_data_already_available=0,
    )
    assert parsed.impu == "sip:alice@example.com"

    xml = '<?xml version="1.0"?><IMSSubscription><PrivateID>alice@example.com</PrivateID>é'
    charging = ChargingInformation.from_lists(
        ccfs=["aaa://ccf1.example.com", "aaa://ccf2.example.com"], ecfs=["aaa://ecf.example.com"]
    )
    answer = reparse(cx.saa(request, **HSS, outcome=SUCCESS, user_data=xml, charging=charging))
    check_answer_header(answer, request)
    assert names(answer)[6:] == ["User-Data", "Charging-Information"]
    assert member_names(answer.avps[7]) == [
        "Primary-Event-Charging-Function-Name",
        "Primary-Charging-Collection-Function-Name",
        "Secondary-Charging-Collection-Function-Name",
    ]
    saa = cx.parse_saa(answer)
    assert saa == cx.SaaAnswer(SUCCESS, xml, charging, None)
    assert saa.charging is not None
    assert saa.charging.ccfs == ("aaa://ccf1.example.com", "aaa://ccf2.example.com")
    assert saa.charging.ecfs == ("aaa://ecf.example.com",)


def test_sar_minimal() -> None:
    request = cx.sar(
        session_id="s",
        **CLIENT,
        impi=None,
        impu="sip:u@example.com",
        server_name="sip:s",
        assignment_type=ServerAssignmentType.UNREGISTERED_USER,
    )
    assert "User-Name" not in names(request)
    assert "Supported-Features" not in names(request)
    parsed = cx.parse_sar(wire(request))
    assert (parsed.impi, parsed.shared_ifcs, parsed.wildcard) == (None, False, None)
    assert parsed.assignment_type is ServerAssignmentType.UNREGISTERED_USER
    error = CxOutcome(CxResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE, True)
    answer = cx.saa(request, **HSS, outcome=error, wildcarded_identity="sip:!.*!@example.com")
    assert cx.parse_saa(reparse(answer)) == cx.SaaAnswer(
        error, wildcarded_identity="sip:!.*!@example.com"
    )


def test_lir_round_trip() -> None:
    request = wire(
        cx.lir(
            session_id="hs;lir",
            **CLIENT,
            impu="sip:bob@example.com",
            originating=True,
            authorization_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
        )
    )
    assert names(request)[6:] == [
        "Originating-Request",
        "Public-Identity",
        "User-Authorization-Type",
    ]
    assert cx.parse_lir(request) == cx.LirRequest(
        session_id="hs;lir",
        origin_host="homestead.example.com",
        origin_realm="example.com",
        impu="sip:bob@example.com",
        originating=True,
        authorization_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
    )
    outcome = CxOutcome(CxResult.DIAMETER_UNREGISTERED_SERVICE, True)
    answer = reparse(
        cx.lia(
            request,
            **HSS,
            outcome=outcome,
            server_name="sip:scscf.example.com",
            wildcarded_identity="sip:!.*!@example.com",
        )
    )
    check_answer_header(answer, request)
    lia = cx.parse_lia(answer)
    assert lia == cx.LiaAnswer(
        outcome, "sip:scscf.example.com", wildcarded_identity="sip:!.*!@example.com"
    )
    answer = reparse(
        cx.lia(request, **HSS, outcome=SUCCESS, capabilities=ServerCapabilities((7,), (8, 9)))
    )
    assert cx.parse_lia(answer).capabilities == ServerCapabilities((7,), (8, 9))

    plain = cx.parse_lir(wire(cx.lir(session_id="s", **CLIENT, impu="tel:+1234")))
    assert (plain.originating, plain.authorization_type) == (False, None)


def test_rtr_round_trip() -> None:
    request = wire(
        cx.rtr(
            session_id="hss;rtr",
            **HSS,
            destination_realm="example.com",
            destination_host="homestead.example.com",
            reason_code=ReasonCode.PERMANENT_TERMINATION,
            reason_info="Subscription ended",
            impi="alice@example.com",
            associated_impis=("alice2@example.com", "alice3@example.com"),
            impus=("sip:alice@example.com", "tel:+15551234"),
        )
    )
    assert names(request) == [
        "Session-Id",
        "Vendor-Specific-Application-Id",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Host",
        "Destination-Realm",
        "User-Name",
        "Associated-Identities",
        "Public-Identity",
        "Public-Identity",
        "Deregistration-Reason",
    ]
    assert cx.parse_rtr(request) == cx.RtrRequest(
        session_id="hss;rtr",
        origin_host="hss.example.net",
        origin_realm="example.net",
        reason_code=ReasonCode.PERMANENT_TERMINATION,
        reason_info="Subscription ended",
        impis=("alice@example.com", "alice2@example.com", "alice3@example.com"),
        impus=("sip:alice@example.com", "tel:+15551234"),
    )
    answer = reparse(
        cx.rta(
            request,
            origin_host="homestead.example.com",
            origin_realm="example.com",
            result_code=ResultCode.DIAMETER_SUCCESS,
            associated_impis=("alice2@example.com",),
        )
    )
    check_answer_header(answer, request)
    assert names(answer)[2:] == [
        "Result-Code",
        "Auth-Session-State",
        "Origin-Host",
        "Origin-Realm",
        "Associated-Identities",
    ]
    assert cx.parse_rta(answer) == SUCCESS

    bare = cx.parse_rtr(
        cx.rtr(
            session_id="s",
            **HSS,
            destination_realm="example.com",
            destination_host="homestead.example.com",
            reason_code=ReasonCode.REMOVE_S_CSCF,
            impi="i",
        )
    )
    assert (bare.reason_code, bare.reason_info, bare.impis, bare.impus) == (
        ReasonCode.REMOVE_S_CSCF,
        None,
        ("i",),
        (),
    )


def test_ppr_round_trip() -> None:
    charging = ChargingInformation(primary_ccf="aaa://ccf.example.com")
    request = wire(
        cx.ppr(
            session_id="hss;ppr",
            **HSS,
            destination_realm="example.com",
            destination_host="homestead.example.com",
            impi="alice@example.com",
            user_data="<IMSSubscription/>",
            charging=charging,
        )
    )
    assert names(request)[5:] == [
        "Destination-Host",
        "Destination-Realm",
        "User-Name",
        "User-Data",
        "Charging-Information",
    ]
    assert cx.parse_ppr(request) == cx.PprRequest(
        session_id="hss;ppr",
        origin_host="hss.example.net",
        origin_realm="example.net",
        impi="alice@example.com",
        user_data="<IMSSubscription/>",
        charging=charging,
    )
    answer = reparse(
        cx.ppa(
            request,
            origin_host="homestead.example.com",
            origin_realm="example.com",
            result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
        )
    )
    check_answer_header(answer, request)
    assert not answer.is_error  # 5012 is a permanent failure, not a protocol error
    assert cx.parse_ppa(answer) == CxOutcome(5012)

    bare = cx.parse_ppr(
        cx.ppr(
            session_id="s",
            **HSS,
            destination_realm="example.com",
            destination_host="homestead.example.com",
            impi="i",
        )
    )
    assert (bare.user_data, bare.charging) == (None, None)


def test_protocol_error_answer_has_e_flag_and_failed_avp() -> None:
    request = cx.uar(session_id="s", **CLIENT, impi="i", impu="u", visited_network="v")
    failed = cx.missing_avp("Visited-Network-Identifier").failed_avp
    assert failed is not None
    answer = reparse(
        cx.uaa(request, **HSS, outcome=CxOutcome(ResultCode.DIAMETER_TOO_BUSY), failed_avp=failed)
    )
    assert answer.flags & FLAG_ERROR
    assert names(answer)[-1] == "Failed-AVP"
    assert answer.avps[-1].avps() == (failed,)
    assert cx.parse_uaa(answer).outcome == CxOutcome(3004)


def test_outcome() -> None:
    assert CxOutcome(2001) == SUCCESS
    assert CxOutcome(2001) != CxOutcome(2001, True)
    assert CxOutcome(2001, True).vendor_id == V3GPP
    assert CxOutcome(2001).vendor_id == 0
    assert CxOutcome(CxResult.DIAMETER_ERROR_USER_UNKNOWN, True).code.__class__ is int
    assert not CxOutcome(5001, True).success
    assert CxOutcome(2004, True).success
    assert CxOutcome(3002).is_protocol_error
    assert not CxOutcome(3002, True).is_protocol_error
    assert not CxOutcome(5001, True, 99).is_3gpp


def test_answer_without_result() -> None:
    request = cx.uar(session_id="s", **CLIENT, impi="i", impu="u", visited_network="v")
    answer = without(cx.uaa(request, **HSS, outcome=SUCCESS), "Result-Code")
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_uaa(answer)
    assert info.value.result_code == 5005
    assert info.value.failed_avp == Avp(268, b"\0\0\0\0", 0x40, 0)

    # An Experimental-Result without its code.
    bad = CX.group("Experimental-Result", CX.avp("Vendor-Id", V3GPP))
    answer = Message(300, 16777216, (*answer.avps, bad), FLAG_PROXIABLE)
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_uaa(answer)
    assert info.value.result_code == 5005
    assert info.value.failed_avp is not None
    assert info.value.failed_avp.code == 297
    assert info.value.failed_avp.avps() == (Avp(298, bytes(4), 0x40, 0),)


def test_parsers_check_the_command() -> None:
    request = cx.uar(session_id="s", **CLIENT, impi="i", impu="u", visited_network="v")
    with pytest.raises(ValueError, match="300"):
        cx.parse_mar(request)
    with pytest.raises(ValueError, match="answer"):
        cx.parse_uaa(request)
    with pytest.raises(ValueError):
        cx.uaa(cx.uaa(request, **HSS, outcome=SUCCESS), **HSS, outcome=SUCCESS)


# --------------------------------------------------------------------------- errors

_REQUESTS: dict[str, Callable[[], Message]] = {
    "UAR": lambda: cx.uar(session_id="s", **CLIENT, impi="i", impu="u", visited_network="v"),
    "MAR": lambda: cx.mar(
        session_id="s", **CLIENT, impi="i", impu="u", scheme=SCHEME_DIGEST, server_name="sip:s"
    ),
    "SAR": lambda: cx.sar(
        session_id="s", **CLIENT, impi="i", impu="u", server_name="sip:s", assignment_type=1
    ),
    "LIR": lambda: cx.lir(session_id="s", **CLIENT, impu="u"),
    "RTR": lambda: cx.rtr(
        session_id="s",
        **HSS,
        destination_realm="r",
        destination_host="h",
        reason_code=0,
        impi="i",
    ),
    "PPR": lambda: cx.ppr(
        session_id="s", **HSS, destination_realm="r", destination_host="h", impi="i"
    ),
}
_PARSERS: dict[str, Callable[[Message], object]] = {
    "UAR": cx.parse_uar,
    "MAR": cx.parse_mar,
    "SAR": cx.parse_sar,
    "LIR": cx.parse_lir,
    "RTR": cx.parse_rtr,
    "PPR": cx.parse_ppr,
}
_COMMON = ["Session-Id", "Origin-Host", "Origin-Realm", "Destination-Realm"]
_REQUIRED = {
    "UAR": [*_COMMON, "User-Name", "Public-Identity", "Visited-Network-Identifier"],
    "MAR": [
        *_COMMON,
        "User-Name",
        "Public-Identity",
        "SIP-Auth-Data-Item",
        "SIP-Number-Auth-Items",
        "Server-Name",
    ],
    "SAR": [*_COMMON, "Server-Name", "Server-Assignment-Type", "User-Data-Already-Available"],
    "LIR": [*_COMMON, "Public-Identity"],
    "RTR": [*_COMMON, "User-Name", "Deregistration-Reason"],
    "PPR": [*_COMMON, "User-Name"],
}
# Zero-filled example values of each type's minimum length (RFC 6733 §7.1.5).
_ZEROS = {AvpType.UNSIGNED32: 4, AvpType.ENUMERATED: 4}


@pytest.mark.parametrize(
    ("command", "name"),
    [(command, name) for command, required in _REQUIRED.items() for name in required],
)
def test_missing_avp(command: str, name: str) -> None:
    message = without(_REQUESTS[command](), name)
    with pytest.raises(DiameterDecodeError) as info:
        _PARSERS[command](message)
    error = info.value
    assert error.result_code == ResultCode.DIAMETER_MISSING_AVP
    row = CX[name]
    flags = (0x80 if row.vendor_id else 0) | (0x40 if row.mandatory else 0)
    assert error.failed_avp == Avp(row.code, bytes(_ZEROS.get(row.type, 0)), flags, row.vendor_id)


def test_missing_member_avp_is_named_inside_its_group() -> None:
    request = _REQUESTS["MAR"]()
    empty_item = CX.group("SIP-Auth-Data-Item")
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_mar(replace(request, empty_item))
    failed = info.value.failed_avp
    assert info.value.result_code == 5005
    assert failed is not None
    assert (failed.code, failed.vendor_id, failed.flags) == (612, V3GPP, 0xC0)
    assert failed.avps() == (Avp(608, b"", 0xC0, V3GPP),)

    request = _REQUESTS["RTR"]()
    reason = CX.group("Deregistration-Reason", CX.avp("Reason-Info", "why"))
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_rtr(replace(request, reason))
    failed = info.value.failed_avp
    assert failed is not None and failed.code == 615
    # Reason-Code is Enumerated: four zero bytes.
    assert failed.avps() == (Avp(616, bytes(4), 0xC0, V3GPP),)
    assert bytes(failed).hex() == "00000267c000001c000028af00000268c0000010000028af00000000"


@pytest.mark.parametrize(
    ("command", "avp", "parents"),
    [
        ("UAR", CX.avp("User-Authorization-Type", 7), ()),
        ("SAR", CX.avp("Server-Assignment-Type", 99), ()),
        ("SAR", CX.avp("User-Data-Already-Available", 2), ()),
        ("LIR", CX.avp("Originating-Request", 1), ()),
        ("UAR", CX.avp("Visited-Network-Identifier", b"\xff\xfe"), ()),
        ("RTR", CX.avp("Reason-Code", 4), (615,)),
    ],
)
def test_invalid_avp_value(command: str, avp: Avp, parents: tuple[int, ...]) -> None:
    message = _REQUESTS[command]()
    if parents:
        message = replace(message, CX.group("Deregistration-Reason", avp))
    elif message.find(avp.code, avp.vendor_id) is not None:
        message = replace(message, avp)
    else:
        message = Message(message.command_code, message.application_id, (*message.avps, avp))
    with pytest.raises(DiameterDecodeError) as info:
        _PARSERS[command](message)
    assert info.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    failed = info.value.failed_avp
    assert failed is not None
    if parents:
        assert failed.code == parents[0]
        assert failed.avps() == (avp,)
    else:
        assert failed == avp


def test_bad_length_is_invalid_avp_length() -> None:
    message = replace(_REQUESTS["UAR"](), Avp.make(623, b"\0\0", V3GPP))
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_uar(message)
    assert info.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH


def test_maa_missing_vector_parts() -> None:
    request = _REQUESTS["MAR"]()
    answer = cx.maa(request, **HSS, outcome=SUCCESS, scheme=SCHEME_DIGEST)
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_maa(answer)
    failed = info.value.failed_avp
    assert info.value.result_code == 5005
    assert failed is not None and failed.code == 612
    assert failed.avps()[0].code == 635

    answer = cx.maa(request, **HSS, outcome=SUCCESS, scheme=SCHEME_AKAV1)
    with pytest.raises(DiameterDecodeError) as info:
        cx.parse_maa(answer)
    failed = info.value.failed_avp
    assert failed is not None and failed.avps() == (Avp(609, b"", 0xC0, V3GPP),)


# --------------------------------------------------------------------------- HTTP status


def _exp(code: int) -> CxOutcome:
    return CxOutcome(code, experimental=True)


@pytest.mark.parametrize(
    ("outcome", "command", "status"),
    [
        (SUCCESS, "UAR", 200),
        (SUCCESS, "LIR", 200),
        (SUCCESS, "MAR", 200),
        (SUCCESS, "SAR", 200),
        (_exp(2001), "UAR", 200),
        (_exp(2002), "UAR", 200),
        (_exp(2003), "LIR", 200),
        (_exp(5003), "LIR", 200),
        (_exp(2004), "SAR", 200),
        (_exp(2001), "MAR", 500),
        (_exp(5003), "UAR", 500),
        (_exp(5001), "UAR", 404),
        (_exp(5001), "LIR", 404),
        (_exp(5001), "MAR", 404),
        (_exp(5001), "SAR", 404),
        (_exp(5002), "UAR", 404),
        (_exp(5006), "MAR", 404),
        (_exp(5006), "SAR", 500),
        (CxOutcome(5003), "UAR", 403),
        (_exp(5004), "UAR", 403),
        (CxOutcome(3004), "UAR", 504),
        (CxOutcome(3004), "MAR", 504),
        (None, "LIR", 504),
        (CxOutcome(3002), "SAR", 503),
        (CxOutcome(3002), "UAA", 503),
        (CxOutcome(5012), "UAR", 500),
        (_exp(5007), "SAR", 500),
        (CxOutcome(2001, True, 99), "UAR", 500),
        (CxOutcome(5001), "UAR", 500),
    ],
)
def test_http_status(outcome: Optional[CxOutcome], command: str, status: int) -> None:
    assert cx.http_status(outcome, command) == status


def test_http_status_of_commands_homestead_does_not_send() -> None:
    with pytest.raises(ValueError):
        cx.http_status(SUCCESS, "RTR")
    with pytest.raises(KeyError):
        cx.http_status(SUCCESS, "XYZ")
