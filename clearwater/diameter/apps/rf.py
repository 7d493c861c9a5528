# -*- test-case-name: tests.unit.diameter.test_rf -*-
"""Rf, the offline charging interface between ralf (the CTF's proxy) and a CDF: TS 32.299 §6.1.1
(Diameter base accounting, Acct-Application-Id 3), §6.2.2 / §6.2.3 (ACR / ACA, RFC 6733 §9.7),
§7.2 (the 3GPP charging AVPs); spec §6.4 (ralf's HTTP API) and §7.2 (Rf).

Rows: :data:`RF_AVPS` holds every AVP Clearwater's sprout can put in the ``event`` object it
POSTs to ralf (sprout ``src/acr.cpp``), and the other IMS-Information members TS 32.299 defines
that a CTF is likely to send. Codes and types are TS 32.299 §7.2 and TS 29.230 §7; the M flag is
the "must" column of TS 32.299 Table 7.2 (Rel-11: every IMS charging AVP is "M, V"), which is
also what freeDiameter, the stack of Clearwater's ralf, sets. Server-Capabilities and its members
are TS 29.229's (Cx) rows, which TS 32.299 reuses with the same code and vendor.

Mapping of ralf's JSON ``event`` object to AVPs (:func:`event_avps`), by exact AVP name:

=========================== ======================================================================
JSON                        AVP
=========================== ======================================================================
object                      a Grouped AVP whose members are the object's members, in order
array                       the AVP once per element, in order (an empty array: no AVP)
number                      an integer type (Integer32/64, Unsigned32/64, Enumerated; an integral
                            number only), Time (Unix seconds), or Float32/64
string                      UTF8String; DiameterIdentity and DiameterURI (ASCII only); Address
                            (an IPv4 or IPv6 address); OctetString (the string's UTF-8 bytes)
true, false, null           never
=========================== ======================================================================

One alias: sprout writes the AS status of an Application-Server-Information as ``Status-Code``
(its values 0 4xx, 1 5xx, 2 timeout); that is TS 32.299's Status-AS-Code (2702), and is sent as
such.

The inverse, :func:`avps_json`, reads AVPs back (for a scripted CDF): Grouped AVPs become
objects; an AVP becomes an array when its name is in :data:`REPEATED_AVPS` (the AVPs that
TS 32.299 lets repeat and that sprout writes as arrays) or when it occurs more than once in its
group; otherwise a scalar. Integer and Time values are numbers, string types strings, an
OctetString its UTF-8 text (or its hex when it is not UTF-8). An AVP with no row here appears as
``"<code>:<vendor id>"`` with its data in hex. ``avps_json(event_avps(e)) == e`` for every event
sprout sends, except that empty arrays disappear and ``Status-Code`` comes back as
``Status-AS-Code``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import attrs

from clearwater.diameter.dictionary import (
    APP_ACCOUNTING,
    BASE_AVPS,
    BASE_COMMANDS,
    VENDOR_3GPP,
    AvpDef,
    AvpType,
    Dictionary,
    decode_value,
    encode_value,
)
from clearwater.diameter.message import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    DiameterDecodeError,
    Message,
    encode_avps,
    make_answer,
)

__all__ = [
    "ACCOUNTING_COMMAND",
    "REPEATED_AVPS",
    "RF",
    "RF_AVPS",
    "SERVICE_CONTEXT_ID",
    "AcaAnswer",
    "AccountingRecordType",
    "AcrRequest",
    "EventError",
    "NodeFunctionality",
    "RoleOfNode",
    "SubscriptionIdType",
    "aca",
    "acr",
    "avps_json",
    "event_avps",
    "parse_aca",
    "parse_acr",
]

#: The Accounting command (ACR/ACA, RFC 6733 §9.7).
ACCOUNTING_COMMAND = 271

#: TS 32.299 §7.1.12 with no operator extension, Rel-10, IMS (TS 32.260): Clearwater's value
#: (ralf ``include/rf.h``).
SERVICE_CONTEXT_ID = "MNC.MCC.10.32260@3gpp.org"

_T = AvpType


def _rows(vendor_id: int, *rows: tuple[str, int, AvpType]) -> tuple[AvpDef, ...]:
    return tuple(AvpDef(name, code, kind, vendor_id, True) for name, code, kind in rows)


#: The Rf rows beyond :data:`~clearwater.diameter.dictionary.BASE_AVPS`.
RF_AVPS: tuple[AvpDef, ...] = (
    # RFC 4006 §8 (IETF, no vendor; "M" must).
    *_rows(
        0,
        ("Subscription-Id", 443, _T.GROUPED),
        ("Subscription-Id-Data", 444, _T.UTF8_STRING),
        ("Subscription-Id-Type", 450, _T.ENUMERATED),
        ("Service-Context-Id", 461, _T.UTF8_STRING),
    ),
    # TS 29.229 §6.3 (Cx), reused by TS 32.299 §7.2 for the I-CSCF's Server-Capabilities.
    *_rows(
        VENDOR_3GPP,
        ("Server-Name", 602, _T.UTF8_STRING),
        ("Server-Capabilities", 603, _T.GROUPED),
        ("Mandatory-Capability", 604, _T.UNSIGNED32),
        ("Optional-Capability", 605, _T.UNSIGNED32),
    ),
    # TS 32.299 §7.2.
    *_rows(
        VENDOR_3GPP,
        ("Event-Type", 823, _T.GROUPED),
        ("SIP-Method", 824, _T.UTF8_STRING),
        ("Event", 825, _T.UTF8_STRING),
        ("Content-Type", 826, _T.UTF8_STRING),
        ("Content-Length", 827, _T.UNSIGNED32),
        ("Content-Disposition", 828, _T.UTF8_STRING),
        ("Role-Of-Node", 829, _T.ENUMERATED),
        ("User-Session-Id", 830, _T.UTF8_STRING),
        ("Calling-Party-Address", 831, _T.UTF8_STRING),
        ("Called-Party-Address", 832, _T.UTF8_STRING),
        ("Time-Stamps", 833, _T.GROUPED),
        ("SIP-Request-Timestamp", 834, _T.TIME),
        ("SIP-Response-Timestamp", 835, _T.TIME),
        ("Application-Server", 836, _T.UTF8_STRING),
        ("Application-Provided-Called-Party-Address", 837, _T.UTF8_STRING),
        ("Inter-Operator-Identifier", 838, _T.GROUPED),
        ("Originating-IOI", 839, _T.UTF8_STRING),
        ("Terminating-IOI", 840, _T.UTF8_STRING),
        ("IMS-Charging-Identifier", 841, _T.UTF8_STRING),
        ("SDP-Session-Description", 842, _T.UTF8_STRING),
        ("SDP-Media-Component", 843, _T.GROUPED),
        ("SDP-Media-Name", 844, _T.UTF8_STRING),
        ("SDP-Media-Description", 845, _T.UTF8_STRING),
        ("Served-Party-IP-Address", 848, _T.ADDRESS),
        ("Application-Server-Information", 850, _T.GROUPED),
        ("Trunk-Group-Id", 851, _T.GROUPED),
        ("Incoming-Trunk-Group-Id", 852, _T.UTF8_STRING),
        ("Outgoing-Trunk-Group-Id", 853, _T.UTF8_STRING),
        ("Bearer-Service", 854, _T.OCTET_STRING),
        ("Service-Id", 855, _T.UTF8_STRING),
        ("Associated-URI", 856, _T.UTF8_STRING),
        ("Cause-Code", 861, _T.INTEGER32),
        ("Node-Functionality", 862, _T.ENUMERATED),
        ("Originator", 864, _T.ENUMERATED),
        ("Service-Information", 873, _T.GROUPED),
        ("IMS-Information", 876, _T.GROUPED),
        ("Media-Initiator-Flag", 882, _T.ENUMERATED),
        ("Expires", 888, _T.UNSIGNED32),
        ("Message-Body", 889, _T.GROUPED),
        ("Called-Asserted-Identity", 1250, _T.UTF8_STRING),
        ("Requested-Party-Address", 1251, _T.UTF8_STRING),
        ("Access-Network-Information", 1263, _T.OCTET_STRING),
        ("Early-Media-Description", 1272, _T.GROUPED),
        ("SDP-TimeStamps", 1273, _T.GROUPED),
        ("SDP-Offer-Timestamp", 1274, _T.TIME),
        ("SDP-Answer-Timestamp", 1275, _T.TIME),
        ("Alternate-Charged-Party-Address", 1280, _T.UTF8_STRING),
        ("IMS-Communication-Service-Identifier", 1281, _T.UTF8_STRING),
        ("Media-Initiator-Party", 1288, _T.UTF8_STRING),
        ("Carrier-Select-Routing-Information", 2023, _T.UTF8_STRING),
        ("Number-Portability-Routing-Information", 2024, _T.UTF8_STRING),
        ("SDP-Type", 2036, _T.ENUMERATED),
        ("SIP-Request-Timestamp-Fraction", 2301, _T.UNSIGNED32),
        ("SIP-Response-Timestamp-Fraction", 2302, _T.UNSIGNED32),
        ("IP-Realm-Default-Indication", 2603, _T.ENUMERATED),
        ("Local-GW-Inserted-Indication", 2604, _T.ENUMERATED),
        ("Transcoder-Inserted-Indication", 2605, _T.ENUMERATED),
        ("Transit-IOI-List", 2701, _T.UTF8_STRING),
        ("Status-AS-Code", 2702, _T.ENUMERATED),
        ("From-Address", 2708, _T.UTF8_STRING),
        ("IMS-Visited-Network-Identifier", 2713, _T.UTF8_STRING),
        ("Reason-Header", 3401, _T.UTF8_STRING),
        ("Instance-Id", 3402, _T.UTF8_STRING),
        ("Route-Header-Received", 3403, _T.UTF8_STRING),
        ("Route-Header-Transmitted", 3404, _T.UTF8_STRING),
    ),
)

#: The Rf dictionary: base rows (ACR/ACA is a base command, RFC 6733 §9.7) and Rf's.
RF = Dictionary(BASE_AVPS + RF_AVPS, BASE_COMMANDS)

#: AVPs :func:`avps_json` always renders as arrays: those TS 32.299 §6.2.2 / §7.2 (and, for
#: Server-Capabilities, TS 29.229 §6.3.4) mark ``*[...]`` and that sprout writes as JSON arrays.
#: Requested-Party-Address, repeatable since Rel-12, is left out: sprout writes it as a string.
REPEATED_AVPS: frozenset[str] = frozenset(
    {
        "Proxy-Info",
        "Route-Record",
        "Subscription-Id",
        "Calling-Party-Address",
        "Called-Asserted-Identity",
        "Associated-URI",
        "Application-Server-Information",
        "Application-Provided-Called-Party-Address",
        "Inter-Operator-Identifier",
        "Transit-IOI-List",
        "SDP-Session-Description",
        "SDP-Media-Component",
        "SDP-Media-Description",
        "Message-Body",
        "Reason-Header",
        "Access-Network-Information",
        "Early-Media-Description",
        "Mandatory-Capability",
        "Optional-Capability",
        "Server-Name",
    }
)

# (parent AVP, JSON name) -> AVP name: sprout's names that are not TS 32.299's.
_ALIASES: dict[tuple[Optional[str], str], str] = {
    ("Application-Server-Information", "Status-Code"): "Status-AS-Code",
}


class AccountingRecordType(enum.IntEnum):
    """Accounting-Record-Type (RFC 6733 §9.8.1)."""

    EVENT = 1
    START = 2
    INTERIM = 3
    STOP = 4


class NodeFunctionality(enum.IntEnum):
    """Node-Functionality (TS 32.299 §7.2.107), the values Clearwater's nodes use (spec §6.4)
    and MRFC/MGCF."""

    S_CSCF = 0
    P_CSCF = 1
    I_CSCF = 2
    MRFC = 3
    MGCF = 4
    BGCF = 5
    AS = 6
    IBCF = 7


class RoleOfNode(enum.IntEnum):
    """Role-Of-Node (TS 32.299 §7.2.162) as Clearwater uses it (spec §6.4)."""

    ORIGINATING = 0
    TERMINATING = 1


class SubscriptionIdType(enum.IntEnum):
    """Subscription-Id-Type (RFC 4006 §8.47)."""

    END_USER_E164 = 0
    END_USER_IMSI = 1
    END_USER_SIP_URI = 2
    END_USER_NAI = 3
    END_USER_PRIVATE = 4


class EventError(ValueError):
    """An ``event`` object that does not map onto Rf AVPs: ``path`` names the member
    (``event.Service-Information.IMS-Information.Role-Of-Node``, array elements as ``[i]``) and
    ``reason`` says what is wrong. Ralf answers it with HTTP 400."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# --- JSON -> AVPs -------------------------------------------------------------------------------

_NTP_UNIX_OFFSET = 2208988800
_RANGES: dict[AvpType, tuple[int, int]] = {
    _T.INTEGER32: (-(1 << 31), (1 << 31) - 1),
    _T.ENUMERATED: (-(1 << 31), (1 << 31) - 1),
    _T.INTEGER64: (-(1 << 63), (1 << 63) - 1),
    _T.UNSIGNED32: (0, (1 << 32) - 1),
    _T.UNSIGNED64: (0, (1 << 64) - 1),
    # The Unix seconds whose 32-bit NTP timestamp reads back as themselves (RFC 6733 §4.3.1
    # with RFC 2030 §3's era rule): 1968-01-20 to 2104-02-26.
    _T.TIME: ((1 << 31) - _NTP_UNIX_OFFSET, (3 << 31) - _NTP_UNIX_OFFSET - 1),
}
_STRINGS = (_T.UTF8_STRING, _T.DIAMETER_IDENTITY, _T.DIAMETER_URI, _T.IP_FILTER_RULE)


def _expected(kind: AvpType) -> str:
    if kind is _T.GROUPED:
        return "expected an object"
    if kind in _RANGES or kind in (_T.FLOAT32, _T.FLOAT64):
        return "expected a number"
    return "expected a string"


def _integer(value: Any, kind: AvpType, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(path, _expected(kind))
    if isinstance(value, float) and not value.is_integer():
        raise EventError(path, f"expected an integer, not {value!r}")
    number = int(value)
    low, high = _RANGES[kind]
    if not low <= number <= high:
        raise EventError(path, f"{number} is out of range for {kind.value}")
    return number


def _encode(row: AvpDef, value: Any, path: str) -> bytes:
    kind = row.type
    if kind is _T.GROUPED:
        if not isinstance(value, Mapping):
            raise EventError(path, "expected an object")
        return encode_avps(_members(value, path, row.name))
    if kind in _RANGES:
        return encode_value(kind, _integer(value, kind, path))
    if kind in (_T.FLOAT32, _T.FLOAT64):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventError(path, "expected a number")
        try:
            return encode_value(kind, value)
        except (OverflowError, ValueError):
            raise EventError(path, f"{value} is out of range for {kind.value}") from None
    if kind is _T.OCTET_STRING and isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise EventError(path, "expected a string")
    if kind is _T.ADDRESS:
        try:
            return encode_value(kind, value)
        except ValueError:
            raise EventError(path, f"{value!r} is not an IPv4 or IPv6 address") from None
    if kind in _STRINGS:
        try:
            return encode_value(kind, value)
        except UnicodeEncodeError:
            raise EventError(path, f"expected an ASCII string for {kind.value}") from None
    return value.encode("utf-8")  # OctetString


def _members(obj: Mapping[Any, Any], path: str, parent: Optional[str]) -> list[Avp]:
    out: list[Avp] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise EventError(path, f"member name {key!r} is not a string")
        member = f"{path}.{key}"
        name = _ALIASES.get((parent, key), key)
        if name not in RF:
            raise EventError(member, "not an Rf AVP")
        row = RF[name]
        if isinstance(value, (list, tuple)):
            items: Sequence[Any] = value
            for index, item in enumerate(items):
                out.append(_avp(row, item, f"{member}[{index}]"))
        else:
            out.append(_avp(row, value, member))
    return out


def _avp(row: AvpDef, value: Any, path: str) -> Avp:
    return Avp.make(row.code, _encode(row, value, path), row.vendor_id, row.mandatory)


def event_avps(event: Mapping[str, Any]) -> list[Avp]:
    """The AVPs ralf's JSON ``event`` object stands for, in order (module docstring table);
    :class:`EventError` (a ValueError) naming the offending member otherwise."""
    if not isinstance(event, Mapping):
        raise EventError("event", "expected an object")
    return _members(event, "event", None)


# --- AVPs -> JSON -------------------------------------------------------------------------------


def _json_value(row: AvpDef, avp: Avp) -> Any:
    if row.type is _T.GROUPED:
        return avps_json(avp.avps())
    if row.type is _T.OCTET_STRING:
        try:
            return avp.data.decode("utf-8")
        except UnicodeDecodeError:
            return avp.data.hex()
    return decode_value(row.type, avp)


def avps_json(avps: Iterable[Avp]) -> dict[str, Any]:
    """``avps`` as a JSON-ready object (module docstring): the inverse of :func:`event_avps`.
    Keys keep the order of each name's first occurrence. Data that do not decode as their
    type raise :class:`~clearwater.diameter.message.DiameterDecodeError`."""
    items: list[tuple[str, Any]] = []
    for avp in avps:
        row = RF.definition(avp)
        if row is None:
            code, vendor_id = avp.key
            items.append((f"{code}:{vendor_id}", avp.data.hex()))
        else:
            items.append((row.name, _json_value(row, avp)))
    counts = Counter(name for name, _ in items)
    out: dict[str, Any] = {}
    for name, value in items:
        if name in REPEATED_AVPS or counts[name] > 1:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


# --- ACR / ACA ----------------------------------------------------------------------------------

# TS 32.299 §6.2.2 / RFC 6733 §9.7.1: the ACR's AVPs with a fixed place, in order, before the
# rest of the event (Service-Information and anything else).
_ACR_HEAD = (
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
    "Origin-State-Id",
    "Event-Timestamp",
    "Service-Context-Id",
)
# What parse_acr leaves out of the event: ralf's envelope, not the CTF's data.
_ACR_ENVELOPE = frozenset(
    {
        "Session-Id",
        "Origin-Host",
        "Origin-Realm",
        "Destination-Realm",
        "Destination-Host",
        "Accounting-Record-Number",
        "Acct-Application-Id",
        "Service-Context-Id",
        "Proxy-Info",
        "Route-Record",
    }
)


def acr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str],
    record_type: int,
    record_number: int,
    event: Mapping[str, Any],
    user_name: Optional[str] = None,
    acct_interim_interval: Optional[int] = None,
) -> Message:
    """An Accounting-Request (TS 32.299 §6.2.2) carrying ``event`` (ralf's JSON object).

    Order: Session-Id, Origin-Host, Origin-Realm, Destination-Realm, Accounting-Record-Type,
    Accounting-Record-Number, Acct-Application-Id (3), [User-Name], [Destination-Host],
    [Acct-Interim-Interval], [Origin-State-Id], [Event-Timestamp], Service-Context-Id
    (:data:`SERVICE_CONTEXT_ID`), then the event's other AVPs in the order given. An AVP of
    that head list found at the event's top level is put in its place, once: where the
    arguments also set it the two must agree (:class:`EventError` otherwise), so an event's
    Accounting-Record-Type must be ``record_type``. Hop-by-hop and end-to-end identifiers are
    left 0 for the node to fill. A ``record_type`` that is not an
    :class:`AccountingRecordType` is a ValueError."""
    given: dict[str, Any] = {
        "Session-Id": session_id,
        "Origin-Host": origin_host,
        "Origin-Realm": origin_realm,
        "Destination-Realm": destination_realm,
        "Accounting-Record-Type": int(AccountingRecordType(record_type)),
        "Accounting-Record-Number": record_number,
        "Acct-Application-Id": APP_ACCOUNTING,
        "User-Name": user_name,
        "Destination-Host": destination_host,
        "Acct-Interim-Interval": acct_interim_interval,
        "Service-Context-Id": SERVICE_CONTEXT_ID,
    }
    from_event: dict[str, Avp] = {}
    rest: list[Avp] = []
    for avp in event_avps(event):
        row = RF.definition(avp)
        assert row is not None  # event_avps only makes AVPs that have rows
        if row.name not in _ACR_HEAD:
            rest.append(avp)
        elif row.name in from_event:
            raise EventError(f"event.{row.name}", "occurs more than once")
        else:
            from_event[row.name] = avp
    head: list[Avp] = []
    for name in _ACR_HEAD:
        value = given.get(name)
        mine = None if value is None else RF.avp(name, value)
        theirs = from_event.get(name)
        if mine is not None and theirs is not None and mine.data != theirs.data:
            raise EventError(
                f"event.{name}", f"{RF.value(theirs)!r} disagrees with {RF.value(mine)!r}"
            )
        chosen = mine if mine is not None else theirs
        if chosen is not None:
            head.append(chosen)
    return Message(
        ACCOUNTING_COMMAND, APP_ACCOUNTING, tuple(head + rest), FLAG_REQUEST | FLAG_PROXIABLE
    )


@attrs.frozen
class AcaAnswer:
    """What ralf reads from an Accounting-Answer (TS 32.299 §6.2.3): the Result-Code, the
    CDF's Acct-Interim-Interval if any, and the record type and number echoed (None when
    absent, as in an error answer from a relay)."""

    result_code: int
    acct_interim_interval: Optional[int]
    record_type: Optional[int]
    record_number: Optional[int]


def _is_accounting(message: Message, request: bool) -> bool:
    return message.command_code == ACCOUNTING_COMMAND and message.is_request == request


def _missing(name: str) -> DiameterDecodeError:
    # RFC 6733 §7.5: Failed-AVP holds an example of the missing AVP, its data zeros of the
    # minimum size.
    row = RF[name]
    size = 4 if row.type in (_T.UNSIGNED32, _T.ENUMERATED) else 0  # the names used here
    example = Avp.make(row.code, bytes(size), row.vendor_id, row.mandatory)
    return DiameterDecodeError(5005, f"No {name} AVP", example)


def parse_aca(message: Message) -> AcaAnswer:
    """The fields of an Accounting-Answer; ValueError if ``message`` is not one,
    :class:`~clearwater.diameter.message.DiameterDecodeError` if it has no Result-Code or a
    value of the wrong size."""
    if not _is_accounting(message, request=False):
        raise ValueError(f"Not an Accounting-Answer: command {message.command_code}")
    result_code = RF.get(message, "Result-Code")
    if result_code is None:
        raise _missing("Result-Code")
    return AcaAnswer(
        result_code,
        RF.get(message, "Acct-Interim-Interval"),
        RF.get(message, "Accounting-Record-Type"),
        RF.get(message, "Accounting-Record-Number"),
    )


@attrs.frozen
class AcrRequest:
    """What a CDF reads from an Accounting-Request: the session, record type and number, the
    Destination-Host if any, and ``event``: every AVP but the envelope (Session-Id, Origin-*,
    Destination-*, Accounting-Record-Number, Acct-Application-Id, Service-Context-Id,
    Proxy-Info, Route-Record) through :func:`avps_json`, so in ralf's JSON shape."""

    session_id: str
    record_type: AccountingRecordType
    record_number: int
    destination_host: Optional[str]
    event: dict[str, Any]


def parse_acr(message: Message) -> AcrRequest:
    """The fields of an Accounting-Request; ValueError if ``message`` is not one,
    :class:`~clearwater.diameter.message.DiameterDecodeError` with the result code to answer
    with (5005 a required AVP missing, 5004 an unknown record type, 5014 a value of the wrong
    size) if it is not a valid one."""
    if not _is_accounting(message, request=True):
        raise ValueError(f"Not an Accounting-Request: command {message.command_code}")
    session_id = RF.get(message, "Session-Id")
    if session_id is None:
        raise _missing("Session-Id")
    record_type = RF.get(message, "Accounting-Record-Type")
    if record_type is None:
        raise _missing("Accounting-Record-Type")
    if record_type not in set(AccountingRecordType):
        raise DiameterDecodeError(
            5004,
            f"Accounting-Record-Type {record_type}",
            RF.find(message, "Accounting-Record-Type"),
        )
    record_number = RF.get(message, "Accounting-Record-Number")
    if record_number is None:
        raise _missing("Accounting-Record-Number")
    event = avps_json(
        avp
        for avp in message.avps
        if (row := RF.definition(avp)) is None or row.name not in _ACR_ENVELOPE
    )
    return AcrRequest(
        session_id,
        AccountingRecordType(record_type),
        record_number,
        RF.get(message, "Destination-Host"),
        event,
    )


def aca(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    result_code: int,
    acct_interim_interval: Optional[int] = None,
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The Accounting-Answer (TS 32.299 §6.2.3) to ``request``: Session-Id, Result-Code,
    Origin-Host, Origin-Realm, the request's Accounting-Record-Type and -Number (when it has
    them), Acct-Application-Id 3, [Acct-Interim-Interval], [Failed-AVP] (RFC 6733 §7.5), the
    request's Proxy-Info; the E bit set for a protocol error (3xxx, RFC 6733 §7.1.3)."""
    avps = [
        RF.avp("Result-Code", int(result_code)),
        RF.avp("Origin-Host", origin_host),
        RF.avp("Origin-Realm", origin_realm),
    ]
    for name in ("Accounting-Record-Type", "Accounting-Record-Number"):
        echoed = RF.find(request, name)
        if echoed is not None:
            avps.append(echoed)
    avps.append(RF.avp("Acct-Application-Id", APP_ACCOUNTING))
    if acct_interim_interval is not None:
        avps.append(RF.avp("Acct-Interim-Interval", acct_interim_interval))
    if failed_avp is not None:
        avps.append(RF.group("Failed-AVP", failed_avp))
    return make_answer(request, avps, error=3000 <= result_code < 4000)
