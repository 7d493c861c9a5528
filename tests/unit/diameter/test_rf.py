"""Rf (TS 32.299 §6.2, §7.2; spec §6.4, §7.2): :mod:`clearwater.diameter.apps.rf`.

The rows are checked against two independent dictionaries: Wireshark's
(``/usr/share/wireshark/diameter``) and pycrate's TS 29.230 table. The JSON bodies are the ones
Clearwater's sprout sends (``src/acr.cpp``; the INTERIM and STOP bodies are sprout's own unit
test expectations ``src/ut/acr_scscforigcall_{interim,stop}.json``, the I-CSCF one ralf's
``docs/API.md`` example).
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.diameter.apps import rf
from clearwater.diameter.apps.rf import (
    REPEATED_AVPS,
    RF,
    RF_AVPS,
    SERVICE_CONTEXT_ID,
    AcaAnswer,
    AccountingRecordType,
    AcrRequest,
    EventError,
    NodeFunctionality,
    RoleOfNode,
    SubscriptionIdType,
    aca,
    acr,
    avps_json,
    event_avps,
    parse_aca,
    parse_acr,
)
from clearwater.diameter.dictionary import BASE_AVPS, VENDOR_3GPP, AvpDef, AvpType
from clearwater.diameter.message import (
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    Avp,
    DiameterDecodeError,
    Message,
    parse_message,
)

# --- rows ---------------------------------------------------------------------------------------

_WIRESHARK = "/usr/share/wireshark/diameter"
_WS_TYPES = {"IPAddress": "Address", "AppId": "Unsigned32", "VendorId": "Unsigned32"}


def _wireshark_rows() -> dict[tuple[int, int], list[tuple[str, str, str]]]:
    """(code, vendor id) -> [(name, type, mandatory)], from Wireshark's XML dictionaries (parsed
    with regular expressions: they use entities that ElementTree will not resolve)."""
    rows: dict[tuple[int, int], list[tuple[str, str, str]]] = {}
    for path in sorted(glob.glob(os.path.join(_WIRESHARK, "*.xml"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = re.sub(r"<!--.*?-->", "", f.read(), flags=re.S)
        for match in re.finditer(r"<avp\s+([^>]*?)>(.*?)</avp>", text, re.S):
            attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
            vendor = {"TGPP": VENDOR_3GPP, None: 0}.get(attrs.get("vendor-id"))
            if vendor is None:
                continue
            kind = re.search(r'<type\s+type-name="([^"]+)"', match.group(2))
            name = kind.group(1) if kind else ("Grouped" if "<grouped" in match.group(2) else "?")
            rows.setdefault((int(attrs["code"]), vendor), []).append(
                (attrs["name"], _WS_TYPES.get(name, name), attrs.get("mandatory", "may"))
            )
    return rows


_WS_ROWS = _wireshark_rows() if os.path.isdir(_WIRESHARK) else {}

#: Where Wireshark's dictionary disagrees with TS 32.299 / TS 29.230 (pycrate agrees with us):
#: (code, vendor) -> the type Wireshark says.
_WIRESHARK_DIFFERS = {
    (861, VENDOR_3GPP): "Enumerated",  # Cause-Code: TS 32.299 §7.2.35 Integer32 (same wire form)
    (1263, VENDOR_3GPP): "UTF8String",  # Access-Network-Information: TS 32.299 OctetString
    (2708, VENDOR_3GPP): "Address",  # From-Address: TS 32.299 UTF8String (a From header)
}


@pytest.mark.parametrize("row", RF_AVPS, ids=lambda row: row.name)
def test_row_matches_wireshark(row: AvpDef) -> None:
    if not _WS_ROWS:
        pytest.skip(f"Wireshark's Diameter dictionary is not installed ({_WIRESHARK})")
    found = _WS_ROWS.get(row.key)
    if not found:
        pytest.skip(f"Wireshark has no AVP {row.key} ({row.name})")
    _name, kind, mandatory = found[0]
    assert kind == _WIRESHARK_DIFFERS.get(row.key, row.type.value)
    if mandatory in ("must", "mustnot"):
        assert row.mandatory == (mandatory == "must")


def _pycrate_types() -> dict[tuple[int, int], str]:
    try:
        from pycrate_diameter import Diameter3GPP, DiameterIETF  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - pycrate is in the test extra
        return {}
    ietf: dict[int, Any] = DiameterIETF.FMT_LUT_IETF
    tgpp: dict[int, tuple[str, Any]] = Diameter3GPP.TGPPAVPInfos_dict
    types = {(code, 0): str(kind.__name__) for code, kind in ietf.items()}
    types.update({(code, VENDOR_3GPP): str(kind.__name__) for code, (_, kind) in tgpp.items()})
    return types


_PYCRATE = _pycrate_types()


@pytest.mark.parametrize("row", RF_AVPS, ids=lambda row: row.name)
def test_row_matches_ts_29_230(row: AvpDef) -> None:
    """TS 29.230 §7 (the 3GPP AVP code registry) as pycrate tabulates it."""
    if not _PYCRATE:
        pytest.skip("pycrate is not installed")
    assert _PYCRATE[row.key] == row.type.value


def test_rows_are_vendor_3gpp_except_rfc_4006() -> None:
    ietf = {row.name for row in RF_AVPS if row.vendor_id == 0}
    assert ietf == {
        "Subscription-Id",
        "Subscription-Id-Data",
        "Subscription-Id-Type",
        "Service-Context-Id",
    }
    assert all(row.vendor_id == VENDOR_3GPP for row in RF_AVPS if row.name not in ietf)
    assert all(row.mandatory for row in RF_AVPS)  # TS 32.299 Table 7.2: "M, V" throughout


def test_dictionary_holds_base_and_rf_rows() -> None:
    for row in BASE_AVPS + RF_AVPS:
        assert RF[row.name] == row
        assert RF.lookup(*row.key) == row
    assert RF.command("ACR").code == 271
    assert RF.command("ACA").application_id == 3


def test_server_capabilities_rows_are_cx_rows() -> None:
    """TS 32.299 reuses TS 29.229's Server-Capabilities: same rows as the Cx dictionary's."""
    from clearwater.diameter.apps.cx import CX

    for name in (
        "Server-Capabilities",
        "Mandatory-Capability",
        "Optional-Capability",
        "Server-Name",
    ):
        assert RF[name] == CX[name]


#: Every AVP name sprout's ``RalfACR::get_message`` (src/acr.cpp) can write, at any depth.
SPROUT_NAMES = (
    "Accounting-Record-Type",
    "User-Name",
    "Acct-Interim-Interval",
    "Event-Timestamp",
    "Service-Information",
    "Subscription-Id",
    "Subscription-Id-Type",
    "Subscription-Id-Data",
    "IMS-Information",
    "Event-Type",
    "SIP-Method",
    "Event",
    "Expires",
    "Role-Of-Node",
    "Node-Functionality",
    "User-Session-Id",
    "Calling-Party-Address",
    "Called-Party-Address",
    "Requested-Party-Address",
    "Called-Asserted-Identity",
    "Associated-URI",
    "Time-Stamps",
    "SIP-Request-Timestamp",
    "SIP-Request-Timestamp-Fraction",
    "SIP-Response-Timestamp",
    "SIP-Response-Timestamp-Fraction",
    "Application-Server-Information",
    "Application-Server",
    "Application-Provided-Called-Party-Address",
    "Inter-Operator-Identifier",
    "Originating-IOI",
    "Terminating-IOI",
    "Transit-IOI-List",
    "IMS-Charging-Identifier",
    "Server-Capabilities",
    "Mandatory-Capability",
    "Optional-Capability",
    "Server-Name",
    "Early-Media-Description",
    "SDP-Session-Description",
    "SDP-Media-Component",
    "SDP-Media-Name",
    "SDP-Media-Description",
    "Local-GW-Inserted-Indication",
    "IP-Realm-Default-Indication",
    "Transcoder-Inserted-Indication",
    "Media-Initiator-Flag",
    "Media-Initiator-Party",
    "SDP-Type",
    "Message-Body",
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "Originator",
    "Cause-Code",
    "Reason-Header",
    "Access-Network-Information",
    "From-Address",
    "IMS-Visited-Network-Identifier",
    "Route-Header-Received",
    "Route-Header-Transmitted",
    "Instance-Id",
)


@pytest.mark.parametrize("name", SPROUT_NAMES)
def test_every_name_sprout_sends_has_a_row(name: str) -> None:
    assert name in RF


def test_enumerations() -> None:
    assert [int(t) for t in AccountingRecordType] == [1, 2, 3, 4]
    assert AccountingRecordType.START.name == "START"
    functionality = {f.name: int(f) for f in NodeFunctionality}
    assert functionality["S_CSCF"] == 0
    assert functionality["P_CSCF"] == 1
    assert functionality["I_CSCF"] == 2
    assert functionality["BGCF"] == 5
    assert functionality["AS"] == 6
    assert functionality["IBCF"] == 7
    assert (RoleOfNode.ORIGINATING, RoleOfNode.TERMINATING) == (0, 1)
    assert int(SubscriptionIdType.END_USER_SIP_URI) == 2
    assert SERVICE_CONTEXT_ID == "MNC.MCC.10.32260@3gpp.org"


# --- the bodies sprout sends --------------------------------------------------------------------

#: An originating S-CSCF's START for an INVITE answered 200 with SDP, after invoking two ASs
#: (acr.cpp: START carries peers, the SDP of offer and answer, no Cause-Code).
START_BODY: dict[str, Any] = {
    "peers": {"ccf": ["cdf1.homedomain", "cdf2.homedomain"]},
    "event": {
        "Accounting-Record-Type": 2,
        "User-Name": "6505550000@homedomain",
        "Acct-Interim-Interval": 600,
        "Event-Timestamp": 1444118160,
        "Service-Information": {
            "Subscription-Id": [
                {"Subscription-Id-Type": 2, "Subscription-Id-Data": "sip:6505550000@homedomain"},
                {"Subscription-Id-Type": 0, "Subscription-Id-Data": "6505550000"},
            ],
            "IMS-Information": {
                "Event-Type": {"SIP-Method": "INVITE"},
                "Role-Of-Node": 0,
                "Node-Functionality": 0,
                "User-Session-Id": "0123456789abcdef-10.83.18.38",
                "Calling-Party-Address": ["sip:6505550000@homedomain", "tel:6505550000"],
                "Called-Party-Address": "sip:6505559999@homedomain",
                "Requested-Party-Address": "tel:6505559999",
                "Called-Asserted-Identity": ["sip:6505559999@homedomain"],
                "Time-Stamps": {
                    "SIP-Request-Timestamp": 1444118158,
                    "SIP-Request-Timestamp-Fraction": 92,
                    "SIP-Response-Timestamp": 1444118160,
                    "SIP-Response-Timestamp-Fraction": 15,
                },
                "Application-Server-Information": [
                    {
                        "Application-Server": "sip:mmtel.homedomain",
                        "Application-Provided-Called-Party-Address": ["sip:6505559998@homedomain"],
                        "Status-Code": 0,
                    },
                    {"Application-Server": "sip:as2.homedomain;transport=TCP"},
                ],
                "Inter-Operator-Identifier": [
                    {"Originating-IOI": "homedomain", "Terminating-IOI": "homedomain"}
                ],
                "Transit-IOI-List": ["transit.example.net"],
                "IMS-Charging-Identifier": "1234bc9876e",
                "SDP-Session-Description": [
                    "v=0",
                    "o=- 2890844527 2890844527 IN IP4 10.0.0.9",
                    "s=-",
                    "c=IN IP4 10.0.0.9",
                    "t=0 0",
                ],
                "SDP-Media-Component": [
                    {
                        "SDP-Media-Name": "m=audio 49170 RTP/AVP 0 8",
                        "SDP-Media-Description": ["a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"],
                        "Local-GW-Inserted-Indication": 0,
                        "IP-Realm-Default-Indication": 1,
                        "Transcoder-Inserted-Indication": 0,
                        "Media-Initiator-Flag": 1,
                        "Media-Initiator-Party": "sip:6505550000@homedomain",
                        "SDP-Type": 0,
                    },
                    {
                        "SDP-Media-Name": "m=audio 3456 RTP/AVP 0",
                        "SDP-Media-Description": ["a=rtpmap:0 PCMU/8000"],
                        "Local-GW-Inserted-Indication": 0,
                        "IP-Realm-Default-Indication": 1,
                        "Transcoder-Inserted-Indication": 0,
                        "Media-Initiator-Flag": 0,
                        "Media-Initiator-Party": "sip:6505559999@homedomain",
                        "SDP-Type": 1,
                    },
                ],
                "Access-Network-Information": [
                    "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2344200ABCDE0F1"
                ],
                "From-Address": '"6505550000" <sip:6505550000@homedomain>;tag=12345678',
                "IMS-Visited-Network-Identifier": '"visited.example.net"',
                "Route-Header-Received": "<sip:sprout.homedomain:5054;transport=TCP;lr;orig>",
                "Route-Header-Transmitted": "<sip:mmtel.homedomain;lr>",
                "Instance-Id": "<urn:uuid:00000000-0000-0000-0000-b665231f1213>",
            },
        },
    },
}

#: sprout src/ut/acr_scscforigcall_interim.json.
INTERIM_BODY: dict[str, Any] = json.loads(
    """{"event": {"Accounting-Record-Type": 3, "Event-Timestamp": 60,
    "Service-Information": {"IMS-Information": {
      "Called-Asserted-Identity": ["sip:6505550001@homedomain", "tel:6505550001"],
      "Called-Party-Address": "sip:6505559999@10.83.18.50:12345;transport=TCP",
      "Calling-Party-Address": ["sip:6505550000@homedomain", "tel:6505550000"],
      "Event-Type": {"SIP-Method": "INVITE"},
      "From-Address": "\\"6505550000\\" <sip:6505550000@homedomain>;tag=12345678",
      "IMS-Charging-Identifier": "1234bc9876e",
      "Instance-Id": "<urn:uuid:00000000-0000-0000-0000-b665231f1213>",
      "Inter-Operator-Identifier": [{"Originating-IOI": "homedomain",
                                     "Terminating-IOI": "homedomain"}],
      "Node-Functionality": 0, "Role-Of-Node": 0,
      "Route-Header-Received": "<sip:sprout.homedomain:5054;transport=TCP;lr;orig>",
      "Route-Header-Transmitted": "<sip:sprout.homedomain:5054;transport=TCP;lr;orig>",
      "Time-Stamps": {"SIP-Request-Timestamp": 60, "SIP-Request-Timestamp-Fraction": 0,
                      "SIP-Response-Timestamp": 60, "SIP-Response-Timestamp-Fraction": 15},
      "User-Session-Id": "0123456789abcdef-10.83.18.38"},
     "Subscription-Id": [{"Subscription-Id-Data": "sip:6505550000@homedomain",
                          "Subscription-Id-Type": 2},
                         {"Subscription-Id-Data": "6505550000", "Subscription-Id-Type": 0}]}}}"""
)

#: sprout src/ut/acr_scscforigcall_stop.json.
STOP_BODY: dict[str, Any] = json.loads(
    """{"event": {"Accounting-Record-Type": 4, "Event-Timestamp": 120,
    "Service-Information": {
      "Subscription-Id": [{"Subscription-Id-Type": 2,
                           "Subscription-Id-Data": "sip:6505550000@homedomain"},
                          {"Subscription-Id-Type": 0, "Subscription-Id-Data": "6505550000"}],
      "IMS-Information": {
        "Event-Type": {"SIP-Method": "BYE"}, "Role-Of-Node": 0, "Node-Functionality": 0,
        "User-Session-Id": "0123456789abcdef-10.83.18.38",
        "Calling-Party-Address": ["sip:6505550000@homedomain", "tel:6505550000"],
        "Called-Party-Address": "sip:6505559999@10.83.18.50:12345;transport=TCP",
        "Called-Asserted-Identity": ["sip:6505550001@homedomain", "tel:6505550001"],
        "Time-Stamps": {"SIP-Request-Timestamp": 120, "SIP-Request-Timestamp-Fraction": 0,
                        "SIP-Response-Timestamp": 120, "SIP-Response-Timestamp-Fraction": 20},
        "Inter-Operator-Identifier": [{"Originating-IOI": "homedomain",
                                       "Terminating-IOI": "homedomain"}],
        "IMS-Charging-Identifier": "1234bc9876e",
        "Cause-Code": 0,
        "Reason-Header": ["SIP;cause=200;text=\\"Call completed elsewhere\\""],
        "From-Address": "\\"6505550000\\" <sip:6505550000@homedomain>;tag=12345678",
        "Route-Header-Received": "<sip:sprout.homedomain:5054;transport=TCP;lr;orig>",
        "Route-Header-Transmitted": "<sip:sprout.homedomain:5054;transport=TCP;lr;orig>",
        "Instance-Id": "<urn:uuid:00000000-0000-0000-0000-b665231f1213>"}}}}"""
)

#: ralf docs/API.md: an I-CSCF's EVENT with (empty) capabilities.
ICSCF_EVENT_BODY: dict[str, Any] = json.loads(
    '{"peers":{"ccf":["cdf.example.com"]},"event":{"Accounting-Record-Type":1,'
    '"Acct-Interim-Interval":600,"Event-Timestamp":1444118158,"Service-Information":'
    '{"IMS-Information":{"Event-Type":{"SIP-Method":"INVITE"},"Role-Of-Node":1,'
    '"Node-Functionality":2,"User-Session-Id":"084972d9749c214876eb0ba4700ab1fa",'
    '"Calling-Party-Address":["sip:6515550098@example.com"],"Called-Party-Address":'
    '"sip:6515550026@example.com","Time-Stamps":{"SIP-Request-Timestamp":1444118158,'
    '"SIP-Request-Timestamp-Fraction":92},"Inter-Operator-Identifier":[{"Originating-IOI":'
    '"example.com"}],"IMS-Charging-Identifier":"084972d9749c214876eb0ba4700ab1fa",'
    '"Server-Capabilities":{"Mandatory-Capability":[],"Optional-Capability":[],"Server-Name":'
    '["sip:sprout.example.com"]},"From-Address":'
    '"<sip:6515550098@example.com>;tag=d8d2645dea83f80087c5a4b8167e59e1"}}}}'
)

#: A P-CSCF's EVENT for a MESSAGE with a text body (acr.cpp: Message-Body, Cause-Code -1 for a
#: 200), and a SUBSCRIBE's Event/Expires and Associated-URI.
MESSAGE_EVENT_BODY: dict[str, Any] = {
    "peers": {"ccf": ["cdf1.homedomain"], "ecf": ["ecf1.homedomain"]},
    "event": {
        "Accounting-Record-Type": 1,
        "Event-Timestamp": 1700000000,
        "Service-Information": {
            "Subscription-Id": [
                {"Subscription-Id-Type": 2, "Subscription-Id-Data": "sip:6505550000@homedomain"}
            ],
            "IMS-Information": {
                "Event-Type": {"SIP-Method": "SUBSCRIBE", "Event": "reg", "Expires": 3600},
                "Role-Of-Node": 0,
                "Node-Functionality": 1,
                "User-Session-Id": "a84b4c76e66710@pc33.homedomain",
                "Calling-Party-Address": ["sip:6505550000@homedomain"],
                "Called-Party-Address": "sip:6505550000@homedomain",
                "Associated-URI": ["sip:6505550000@homedomain", "tel:+16505550000"],
                "Time-Stamps": {
                    "SIP-Request-Timestamp": 1700000000,
                    "SIP-Request-Timestamp-Fraction": 999,
                },
                "IMS-Charging-Identifier": "icid-1",
                "Message-Body": [
                    {
                        "Content-Type": "text/plain",
                        "Content-Length": 11,
                        "Content-Disposition": "render",
                        "Originator": 0,
                    }
                ],
                "Cause-Code": -1,
                "From-Address": "<sip:6505550000@homedomain>;tag=1928301774",
            },
        },
    },
}

#: The body of ralf's own Chronos interim pop (spec §6.4).
TIMER_POP_BODY: dict[str, Any] = {
    "event": {
        "Service-Information": {"IMS-Information": {"Role-Of-Node": 0, "Node-Functionality": 0}}
    }
}

ALL_BODIES = {
    "start": START_BODY,
    "interim": INTERIM_BODY,
    "stop": STOP_BODY,
    "icscf-event": ICSCF_EVENT_BODY,
    "message-event": MESSAGE_EVENT_BODY,
    "timer-pop": TIMER_POP_BODY,
}


def _expected_json(value: Any, parent: Optional[str] = None) -> Any:
    """What avps_json gives back for sprout's ``value``: empty arrays gone, Status-Code
    renamed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, member in value.items():
            if isinstance(member, list) and not member:
                continue
            if parent == "Application-Server-Information" and key == "Status-Code":
                key = "Status-AS-Code"
            out[key] = _expected_json(member, key)
        return out
    if isinstance(value, list):
        return [_expected_json(item, parent) for item in value]
    return value


def _name(avp: Avp) -> str:
    row = RF.definition(avp)
    assert row is not None
    return row.name


def _find(avps: Any, *names: str) -> list[Avp]:
    return RF.find_all(list(avps), *names)


def test_start_body_avps() -> None:
    avps = event_avps(START_BODY["event"])
    assert [_name(avp) for avp in avps] == [
        "Accounting-Record-Type",
        "User-Name",
        "Acct-Interim-Interval",
        "Event-Timestamp",
        "Service-Information",
    ]
    # Objects become Grouped AVPs, vendor 3GPP, flags V and M.
    (info,) = _find(avps, "Service-Information", "IMS-Information")
    assert (info.code, info.vendor_id, info.flags) == (876, VENDOR_3GPP, 0xC0)
    role = _find(avps, "Service-Information", "IMS-Information", "Role-Of-Node")[0]
    assert bytes(role) == bytes.fromhex("0000033d c0000010 000028af 00000000")
    # Arrays become repeated AVPs, in order.
    assert RF.get_all(avps, "Service-Information", "IMS-Information", "Calling-Party-Address") == [
        "sip:6505550000@homedomain",
        "tel:6505550000",
    ]
    types = RF.get_all(avps, "Service-Information", "Subscription-Id", "Subscription-Id-Type")
    assert types == [2, 0]
    # Time: Unix seconds on the wire as NTP seconds (RFC 6733 §4.3.1).
    stamp = _find(
        avps, "Service-Information", "IMS-Information", "Time-Stamps", "SIP-Request-Timestamp"
    )[0]
    assert stamp.data == (1444118158 + 2208988800).to_bytes(4, "big")
    # sprout's Status-Code is TS 32.299's Status-AS-Code (2702).
    status = _find(
        avps,
        "Service-Information",
        "IMS-Information",
        "Application-Server-Information",
        "Status-AS-Code",
    )
    assert [(a.code, a.vendor_id, a.data) for a in status] == [(2702, VENDOR_3GPP, bytes(4))]
    # OctetString from a string: its UTF-8 bytes.
    ani = _find(avps, "Service-Information", "IMS-Information", "Access-Network-Information")
    assert ani[0].data == b"3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2344200ABCDE0F1"
    # A negative Integer32 (Cause-Code -1 of a successful EVENT).
    cause = _find(
        event_avps(MESSAGE_EVENT_BODY["event"]),
        "Service-Information",
        "IMS-Information",
        "Cause-Code",
    )
    assert cause[0].data == b"\xff\xff\xff\xff"


def test_empty_array_is_no_avp() -> None:
    avps = event_avps(ICSCF_EVENT_BODY["event"])
    caps = _find(avps, "Service-Information", "IMS-Information", "Server-Capabilities")
    assert [_name(a) for a in caps[0].avps()] == ["Server-Name"]


@pytest.mark.parametrize("body", ALL_BODIES.values(), ids=list(ALL_BODIES))
def test_round_trip_through_json(body: dict[str, Any]) -> None:
    event = body["event"]
    avps = event_avps(event)
    back = avps_json(avps)
    assert back == _expected_json(event)
    assert list(back) == list(_expected_json(event))  # member order kept
    # ... and through bytes, and back to the same AVPs.
    wire = b"".join(bytes(avp) for avp in avps)
    received = avps_json(parse_message(bytes(acr_with(event))).avps)
    assert received["Service-Information"] == back["Service-Information"]
    assert b"".join(bytes(avp) for avp in event_avps(back)) == wire
    assert json.loads(json.dumps(back)) == back


def acr_with(event: dict[str, Any]) -> Message:
    record_type = event.get("Accounting-Record-Type", AccountingRecordType.INTERIM)
    return acr(
        session_id="ralf.homedomain;1;2",
        origin_host="ralf.homedomain",
        origin_realm="homedomain",
        destination_realm="billing.homedomain",
        destination_host="cdf1.homedomain",
        record_type=record_type,
        record_number=1,
        event=event,
    )


# --- event_avps: errors -------------------------------------------------------------------------


def _error(event: Any) -> EventError:
    with pytest.raises(EventError) as info:
        event_avps(event)
    assert isinstance(info.value, ValueError)
    return info.value


def _ims(**members: Any) -> dict[str, Any]:
    return {"Service-Information": {"IMS-Information": members}}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            _ims(**{"Role-Of-Node": "0"}),
            "event.Service-Information.IMS-Information.Role-Of-Node: expected a number",
        ),
        ({"Bogus-AVP": 1}, "event.Bogus-AVP: not an Rf AVP"),
        (
            _ims(**{"Time-Stamps": {"SIP-Request-Timestap": 1}}),
            "event.Service-Information.IMS-Information.Time-Stamps.SIP-Request-Timestap: "
            "not an Rf AVP",
        ),
        # "Status-Code" is only Status-AS-Code within Application-Server-Information.
        (
            _ims(**{"Status-Code": 0}),
            "event.Service-Information.IMS-Information.Status-Code: not an Rf AVP",
        ),
        ({"Accounting-Record-Type": True}, "event.Accounting-Record-Type: expected a number"),
        ({"Accounting-Record-Type": None}, "event.Accounting-Record-Type: expected a number"),
        (
            {"Accounting-Record-Type": 1.5},
            "event.Accounting-Record-Type: expected an integer, not 1.5",
        ),
        ({"Accounting-Record-Type": [[1]]}, "event.Accounting-Record-Type[0]: expected a number"),
        ({"Accounting-Record-Type": {"x": 1}}, "event.Accounting-Record-Type: expected a number"),
        ({"User-Name": 7}, "event.User-Name: expected a string"),
        ({"Service-Information": "x"}, "event.Service-Information: expected an object"),
        ({"Service-Information": ["x"]}, "event.Service-Information[0]: expected an object"),
        (
            {"Acct-Interim-Interval": -1},
            "event.Acct-Interim-Interval: -1 is out of range for Unsigned32",
        ),
        (
            {"Acct-Interim-Interval": 1 << 32},
            "event.Acct-Interim-Interval: 4294967296 is out of range for Unsigned32",
        ),
        (
            _ims(**{"Cause-Code": -(1 << 31) - 1}),
            "event.Service-Information.IMS-Information.Cause-Code: -2147483649 is out of range "
            "for Integer32",
        ),
        (
            {"Event-Timestamp": 4233462144},
            "event.Event-Timestamp: 4233462144 is out of range for Time",
        ),
        ({"Event-Timestamp": "now"}, "event.Event-Timestamp: expected a number"),
        (
            {
                "Service-Information": {
                    "Subscription-Id": [
                        {"Subscription-Id-Type": 2, "Subscription-Id-Data": "sip:a@b"},
                        {"Subscription-Id-Type": "E164", "Subscription-Id-Data": "123"},
                    ]
                }
            },
            "event.Service-Information.Subscription-Id[1].Subscription-Id-Type: expected a number",
        ),
        (
            {"Destination-Host": "cdf-é.example.com"},
            "event.Destination-Host: expected an ASCII string for DiameterIdentity",
        ),
        (
            _ims(**{"Served-Party-IP-Address": "10.0.0.300"}),
            "event.Service-Information.IMS-Information.Served-Party-IP-Address: "
            "'10.0.0.300' is not an IPv4 or IPv6 address",
        ),
        (["Accounting-Record-Type"], "event: expected an object"),
    ],
)
def test_event_errors_name_the_path(event: Any, message: str) -> None:
    assert str(_error(event)) == message


def test_event_error_fields() -> None:
    error = _error(_ims(**{"Node-Functionality": "S-CSCF"}))
    assert error.path == "event.Service-Information.IMS-Information.Node-Functionality"
    assert error.reason == "expected a number"


def test_time_range_ends_read_back() -> None:
    low, high = 2147483648 - 2208988800, 6442450944 - 2208988800 - 1
    avps = event_avps({"Event-Timestamp": low}) + event_avps({"Event-Timestamp": high})
    assert [RF.value(avp) for avp in avps] == [low, high]
    assert str(_error({"Event-Timestamp": low - 1})).endswith("out of range for Time")


def test_integral_float_is_an_integer() -> None:
    (avp,) = event_avps({"Acct-Interim-Interval": 600.0})
    assert avp.data == (600).to_bytes(4, "big")


# --- avps_json ----------------------------------------------------------------------------------


def test_unknown_avps_are_code_vendor_hex() -> None:
    avps = [
        Avp.make(9999, b"\x01\x02", vendor_id=VENDOR_3GPP, mandatory=False),
        Avp.make(4242, b"ab"),
        Avp.make(4242, b"cd"),
        RF.avp("IMS-Charging-Identifier", "icid"),
    ]
    assert avps_json(avps) == {
        "9999:10415": "0102",
        "4242:0": ["6162", "6364"],
        "IMS-Charging-Identifier": "icid",
    }


def test_array_rule() -> None:
    once = [RF.avp("Called-Party-Address", "sip:a@b")]
    twice = [*once, RF.avp("Called-Party-Address", "sip:c@d")]
    assert avps_json(once) == {"Called-Party-Address": "sip:a@b"}
    assert avps_json(twice) == {"Called-Party-Address": ["sip:a@b", "sip:c@d"]}
    assert avps_json([RF.avp("Associated-URI", "sip:a@b")]) == {"Associated-URI": ["sip:a@b"]}
    assert {"Calling-Party-Address", "Subscription-Id", "SDP-Media-Component"} <= REPEATED_AVPS
    assert "Requested-Party-Address" not in REPEATED_AVPS  # sprout sends a string
    assert all(name in RF for name in REPEATED_AVPS)


def test_octet_string_that_is_not_utf8_reads_as_hex() -> None:
    avp = RF.avp("Bearer-Service", b"\xff\x00")
    assert avps_json([avp]) == {"Bearer-Service": "ff00"}


def test_bad_value_size_is_a_decode_error() -> None:
    bad = Avp.make(829, b"\x00", VENDOR_3GPP)  # Role-Of-Node in one byte
    with pytest.raises(DiameterDecodeError) as info:
        avps_json([bad])
    assert info.value.result_code == 5014


_SCALARS = {
    "User-Session-Id": st.text(max_size=20),
    "Called-Party-Address": st.text(max_size=20),
    "Role-Of-Node": st.integers(0, 1),
    "Cause-Code": st.integers(-(1 << 31), (1 << 31) - 1),
    "Access-Network-Information": st.lists(st.text(max_size=20), min_size=1, max_size=2),
    "Calling-Party-Address": st.lists(st.text(max_size=10), min_size=1, max_size=3),
    "Time-Stamps": st.fixed_dictionaries(
        {},
        optional={
            "SIP-Request-Timestamp": st.integers(-61505152, 4233462143),
            "SIP-Response-Timestamp-Fraction": st.integers(0, 999),
        },
    ),
    "Inter-Operator-Identifier": st.lists(
        st.fixed_dictionaries({"Originating-IOI": st.text(max_size=10)}), min_size=1, max_size=2
    ),
}


@given(st.fixed_dictionaries({}, optional=_SCALARS))
def test_json_round_trip_property(ims: dict[str, Any]) -> None:
    event = {"Service-Information": {"IMS-Information": ims}}
    assert avps_json(event_avps(event)) == event


# --- ACR ----------------------------------------------------------------------------------------


def _names(message: Message) -> list[str]:
    return [_name(avp) for avp in message.avps]


def test_acr_field_order_and_flags() -> None:
    message = acr(
        session_id="ralf.homedomain;1;2",
        origin_host="ralf.homedomain",
        origin_realm="homedomain",
        destination_realm="billing.homedomain",
        destination_host="cdf1.homedomain",
        record_type=AccountingRecordType.START,
        record_number=1,
        event=START_BODY["event"],
    )
    assert (message.command_code, message.application_id, message.flags) == (271, 3, 0xC0)
    assert (message.hop_by_hop, message.end_to_end) == (0, 0)
    assert _names(message) == [
        "Session-Id",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Realm",
        "Accounting-Record-Type",
        "Accounting-Record-Number",
        "Acct-Application-Id",
        "User-Name",
        "Destination-Host",
        "Acct-Interim-Interval",
        "Event-Timestamp",
        "Service-Context-Id",
        "Service-Information",
    ]
    assert [avp.flags for avp in message.avps] == [AVP_FLAG_MANDATORY] * 12 + [
        AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY
    ]
    assert RF.get(message, "Accounting-Record-Type") == 2
    assert RF.get(message, "Acct-Application-Id") == 3
    assert RF.get(message, "Service-Context-Id") == "MNC.MCC.10.32260@3gpp.org"
    assert RF.get(message, "User-Name") == "6505550000@homedomain"  # from the event
    assert RF.get(message, "Acct-Interim-Interval") == 600


def test_acr_optional_fields() -> None:
    message = acr(
        session_id="s",
        origin_host="ralf",
        origin_realm="r",
        destination_realm="b",
        destination_host=None,
        record_type=AccountingRecordType.INTERIM,
        record_number=7,
        event=TIMER_POP_BODY["event"],
        user_name="alice@r",
        acct_interim_interval=300,
    )
    assert _names(message) == [
        "Session-Id",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Realm",
        "Accounting-Record-Type",
        "Accounting-Record-Number",
        "Acct-Application-Id",
        "User-Name",
        "Acct-Interim-Interval",
        "Service-Context-Id",
        "Service-Information",
    ]
    assert RF.get(message, "Accounting-Record-Type") == 3
    assert RF.get(message, "Accounting-Record-Number") == 7
    assert RF.get(message, "Acct-Interim-Interval") == 300


def _acr(event: dict[str, Any], **kwargs: Any) -> Message:
    fields: dict[str, Any] = {
        "session_id": "s",
        "origin_host": "ralf",
        "origin_realm": "r",
        "destination_realm": "b",
        "destination_host": None,
        "record_type": AccountingRecordType.EVENT,
        "record_number": 1,
        "event": event,
    }
    fields.update(kwargs)
    return acr(**fields)


def test_acr_event_fields_must_agree_with_arguments() -> None:
    with pytest.raises(EventError, match=r"^event\.Accounting-Record-Type: 2 disagrees with 1$"):
        _acr({"Accounting-Record-Type": 2})
    with pytest.raises(EventError, match=r"^event\.User-Name: 'bob' disagrees with 'alice'$"):
        _acr({"User-Name": "bob"}, user_name="alice")
    with pytest.raises(EventError, match=r"^event\.Session-Id: "):
        _acr({"Session-Id": "other"})
    with pytest.raises(EventError, match=r"^event\.User-Name: occurs more than once$"):
        _acr({"User-Name": ["a", "b"]})
    with pytest.raises(ValueError, match="7 is not a valid AccountingRecordType"):
        _acr({}, record_type=7)
    # Agreeing values appear once, in their place.
    message = _acr(
        {"Accounting-Record-Type": 1, "Acct-Application-Id": 3, "User-Name": "alice"},
        user_name="alice",
    )
    assert _names(message).count("Accounting-Record-Type") == 1
    assert _names(message).count("Acct-Application-Id") == 1
    assert _names(message).count("User-Name") == 1


def test_acr_places_event_avps_of_the_head() -> None:
    """The event's AVPs with a place in the ACR ABNF go there; the rest keep their order."""
    message = _acr(
        {
            "Service-Information": {},
            "Proxy-Info": [],
            "Event-Timestamp": 5,
            "Route-Record": ["relay.example"],
            "Origin-State-Id": 9,
            "Acct-Interim-Interval": 60,
        },
        destination_host="cdf",
    )
    assert _names(message)[6:] == [
        "Acct-Application-Id",
        "Destination-Host",
        "Acct-Interim-Interval",
        "Origin-State-Id",
        "Event-Timestamp",
        "Service-Context-Id",
        "Service-Information",
        "Route-Record",
    ]


def test_acr_hand_checked_bytes() -> None:
    """A small ACR laid out by hand from RFC 6733 §3 and §4.1 and TS 32.299 §6.2.2."""
    message = acr(
        session_id="a;1",
        origin_host="ralf",
        origin_realm="r",
        destination_realm="c",
        destination_host=None,
        record_type=AccountingRecordType.EVENT,
        record_number=1,
        event={"Service-Information": {"IMS-Information": {"Node-Functionality": 0}}},
    )
    expected = bytes.fromhex(
        # version 1, length 180; flags R P, command 271; application 3; hop-by-hop; end-to-end
        "010000b4 c000010f 00000003 00000000 00000000"
        "00000107 4000000b 613b3100"  # Session-Id "a;1" (length 11, one byte of padding)
        "00000108 4000000c 72616c66"  # Origin-Host "ralf"
        "00000128 40000009 72000000"  # Origin-Realm "r"
        "0000011b 40000009 63000000"  # Destination-Realm "c"
        "000001e0 4000000c 00000001"  # Accounting-Record-Type EVENT_RECORD
        "000001e5 4000000c 00000001"  # Accounting-Record-Number 1
        "00000103 4000000c 00000003"  # Acct-Application-Id 3
        # Service-Context-Id "MNC.MCC.10.32260@3gpp.org" (25 bytes, length 33, 3 of padding)
        "000001cd 40000021 4d4e432e 4d43432e 31302e33 32323630 40336770 702e6f72 67000000"
        "00000369 c0000028 000028af"  # Service-Information (V M, 10415), length 40
        "0000036c c000001c 000028af"  # . IMS-Information, length 28
        "0000035e c0000010 000028af 00000000"  # . . Node-Functionality S-CSCF (0)
    )
    assert bytes(message) == expected


# --- the CDF side: parse_acr, aca, parse_aca ----------------------------------------------------


def _received(message: Message, hop_by_hop: int = 7, end_to_end: int = 8) -> Message:
    """``message`` as a peer receives it: through bytes, with identifiers filled in."""
    data = bytearray(bytes(message))
    data[12:16] = hop_by_hop.to_bytes(4, "big")
    data[16:20] = end_to_end.to_bytes(4, "big")
    return parse_message(bytes(data))


@pytest.mark.parametrize("body", ALL_BODIES.values(), ids=list(ALL_BODIES))
def test_parse_acr_returns_the_event(body: dict[str, Any]) -> None:
    request = parse_acr(_received(acr_with(body["event"])))
    expected = _expected_json(body["event"])
    expected.setdefault("Accounting-Record-Type", 3)
    assert request == AcrRequest(
        "ralf.homedomain;1;2",
        AccountingRecordType(expected["Accounting-Record-Type"]),
        1,
        "cdf1.homedomain",
        expected,
    )


def test_parse_acr_missing_and_bad_avps() -> None:
    good = _received(_acr({}))
    for name, code, data in (
        ("Session-Id", 263, b""),
        ("Accounting-Record-Type", 480, bytes(4)),
        ("Accounting-Record-Number", 485, bytes(4)),
    ):
        without = Message(271, 3, tuple(a for a in good.avps if a.code != code), good.flags)
        with pytest.raises(DiameterDecodeError) as info:
            parse_acr(without)
        assert info.value.result_code == 5005, name
        assert info.value.failed_avp == Avp.make(code, data)
    bad_type = RF.avp("Accounting-Record-Type", 9)
    odd = Message(271, 3, tuple(bad_type if a.code == 480 else a for a in good.avps), good.flags)
    with pytest.raises(DiameterDecodeError) as info:
        parse_acr(odd)
    assert (info.value.result_code, info.value.failed_avp) == (5004, bad_type)
    with pytest.raises(ValueError, match="Not an Accounting-Request"):
        parse_acr(Message(272, 4, good.avps))


def test_aca_hand_checked_bytes_and_parse() -> None:
    request = _received(_acr({}, session_id="a;1"), hop_by_hop=7, end_to_end=8)
    answer = aca(
        request, origin_host="cdf", origin_realm="c", result_code=2001, acct_interim_interval=300
    )
    expected = bytes.fromhex(
        # version 1, length 116; flags P, command 271; application 3; hop-by-hop 7; end-to-end 8
        "01000074 4000010f 00000003 00000007 00000008"
        "00000107 4000000b 613b3100"  # Session-Id "a;1"
        "0000010c 4000000c 000007d1"  # Result-Code 2001 DIAMETER_SUCCESS
        "00000108 4000000b 63646600"  # Origin-Host "cdf"
        "00000128 40000009 63000000"  # Origin-Realm "c"
        "000001e0 4000000c 00000001"  # Accounting-Record-Type EVENT_RECORD (echoed)
        "000001e5 4000000c 00000001"  # Accounting-Record-Number 1 (echoed)
        "00000103 4000000c 00000003"  # Acct-Application-Id 3
        "00000055 4000000c 0000012c"  # Acct-Interim-Interval 300
    )
    assert bytes(answer) == expected
    assert parse_aca(parse_message(expected)) == AcaAnswer(2001, 300, 1, 1)


def test_aca_round_trip_and_error_answers() -> None:
    request = _received(acr_with(STOP_BODY["event"]))
    proxy = RF.group("Proxy-Info", RF.avp("Proxy-Host", "dra"), RF.avp("Proxy-State", b"x"))
    request = Message(271, 3, (*request.avps, proxy), request.flags, 7, 8)
    answer = _received(
        aca(request, origin_host="cdf1.homedomain", origin_realm="billing", result_code=2001),
        7,
        8,
    )
    assert not answer.is_request and not answer.is_error and answer.is_proxiable
    assert answer.avps[0] == request.avps[0]  # Session-Id first
    assert answer.avps[-1] == proxy
    assert parse_aca(answer) == AcaAnswer(2001, None, 4, 1)
    failed = aca(request, origin_host="dra", origin_realm="r", result_code=3002)
    assert failed.is_error
    assert parse_aca(failed).result_code == 3002


def test_parse_aca_needs_a_result_code() -> None:
    answer = aca(_received(_acr({})), origin_host="cdf", origin_realm="c", result_code=2001)
    stripped = Message(271, 3, tuple(a for a in answer.avps if a.code != 268), answer.flags)
    with pytest.raises(DiameterDecodeError) as info:
        parse_aca(stripped)
    assert (info.value.result_code, info.value.failed_avp) == (5005, Avp.make(268, bytes(4)))
    minimal = Message(271, 3, (RF.avp("Result-Code", 3002),), 0x20)
    assert parse_aca(minimal) == AcaAnswer(3002, None, None, None)
    with pytest.raises(ValueError, match="Not an Accounting-Answer"):
        parse_aca(_acr({}))


def test_module_exports() -> None:
    assert [name for name in rf.__all__ if not hasattr(rf, name)] == []
    assert AvpType.GROUPED is RF["Service-Information"].type


def test_event_is_not_modified() -> None:
    snapshot = copy.deepcopy(START_BODY)
    event_avps(START_BODY["event"])
    acr_with(START_BODY["event"])
    assert snapshot == START_BODY
