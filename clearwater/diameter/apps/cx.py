# -*- test-case-name: tests.unit.diameter.test_cx -*-
"""The Cx application: homestead ↔ HSS (3GPP TS 29.229, procedures TS 29.228 §6).

Clearwater spec §7.1 lists what homestead sends and reads; this module builds and parses those
messages, for both ends (homestead is the client of UAR, MAR, SAR and LIR and the server of the
HSS-initiated RTR and PPR; the scripted HSS in :mod:`clearwater.testing` is the other end).

* Rows: :data:`CX_AVPS` (TS 29.229 §6.3, table 6.3.1: code, type, vendor 10415, and whether the
  M flag is set: the table's "must" column says True, "must not" False; Supported-Features,
  whose M flag is "may", goes without it, as TS 29.229 §7.2.1 wants for a feature the sender
  does not require), :data:`CX_COMMANDS` (§6.1, application id 16777216) and :data:`CX`, the
  dictionary of both with the base rows.
* Requests are built with the AVPs in the order of TS 29.229 §6.1's ABNF: Session-Id,
  Vendor-Specific-Application-Id, Auth-Session-State (NO_STATE_MAINTAINED, §5.3),
  Origin-Host, Origin-Realm, the destination AVPs, then the command's own. Hop-by-hop and
  end-to-end identifiers are left 0 for the node to fill.
* Answers are built with :func:`~clearwater.diameter.message.make_answer` (Session-Id first,
  identifiers copied) and carry Vendor-Specific-Application-Id, Result-Code *or*
  Experimental-Result (§6.2: a 3GPP result code goes in Experimental-Result, vendor 10415),
  Auth-Session-State, Origin-Host and Origin-Realm, then the command's AVPs.
* Parsers return frozen attrs objects. A required AVP that is absent raises
  :class:`~clearwater.diameter.message.DiameterDecodeError` with DIAMETER_MISSING_AVP (5005)
  and, as Failed-AVP, an example of the missing AVP with a zero-filled value of the type's
  minimum length (RFC 6733 §7.1.5, §7.5), inside its grouped parents if it is a member; a
  value outside its enumeration raises DIAMETER_INVALID_AVP_VALUE (5004) naming the AVP. A
  node can answer a request with either.

What request parsers require: Session-Id, Origin-Host, Origin-Realm and Destination-Realm
(RFC 6733 §6) and the command's own mandatory AVPs. Vendor-Specific-Application-Id and
Auth-Session-State are built into every message but not required on receipt.

The Digest-* AVPs inside SIP-Digest-Authenticate are RFC 4590's (no vendor, rows in
:data:`~clearwater.diameter.dictionary.BASE_AVPS`); some HSSs send them with vendor 10415,
which Clearwater's homestead also accepted, so :func:`parse_maa` takes either.

:func:`http_status` maps an answer's outcome to the HTTP status homestead answers with
(spec §7.1's result handling table, per command).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any, Optional, TypeVar, Union

import attrs

from clearwater.diameter.dictionary import (
    APP_CX,
    BASE_AVPS,
    BASE_COMMANDS,
    VENDOR_3GPP,
    AvpDef,
    AvpType,
    CommandDef,
    Dictionary,
    decode_value,
)
from clearwater.diameter.message import (
    Avp,
    DiameterDecodeError,
    Message,
    make_answer,
)
from clearwater.diameter.results import CxResult, ResultCode

__all__ = [
    "AUTH_SCHEMES",
    "AUTH_SESSION_NO_STATE_MAINTAINED",
    "CX",
    "CX_AVPS",
    "CX_COMMANDS",
    "CX_VENDOR_APP",
    "FEATURE_SIFC",
    "ORIGINATING",
    "SCHEME_AKAV1",
    "SCHEME_AKAV2",
    "SCHEME_DIGEST",
    "SCHEME_UNKNOWN",
    "SUCCESS",
    "UAR_FLAG_EMERGENCY",
    "AkaVector",
    "ChargingInformation",
    "CxOutcome",
    "CxRequest",
    "DigestVector",
    "LiaAnswer",
    "LirRequest",
    "MaaAnswer",
    "MarRequest",
    "PprRequest",
    "ReasonCode",
    "RtrRequest",
    "SaaAnswer",
    "SarRequest",
    "ServerAssignmentType",
    "ServerCapabilities",
    "UaaAnswer",
    "UarRequest",
    "UserAuthorizationType",
    "http_status",
    "lia",
    "lir",
    "maa",
    "mar",
    "missing_avp",
    "parse_lia",
    "parse_lir",
    "parse_maa",
    "parse_mar",
    "parse_outcome",
    "parse_ppa",
    "parse_ppr",
    "parse_rta",
    "parse_rtr",
    "parse_saa",
    "parse_sar",
    "parse_uaa",
    "parse_uar",
    "ppa",
    "ppr",
    "rta",
    "rtr",
    "saa",
    "sar",
    "uaa",
    "uar",
]

_T = AvpType


def _row(name: str, code: int, kind: AvpType, mandatory: bool) -> AvpDef:
    return AvpDef(name, code, kind, VENDOR_3GPP, mandatory)


#: TS 29.229 §6.3 table 6.3.1 (the AVPs Clearwater uses and those their ABNF needs), all with
#: vendor 10415 and the V flag. The last column is the M flag: True where the table says "must",
#: False where it says "must not" (and for Supported-Features, "may": see the module docstring).
CX_AVPS: tuple[AvpDef, ...] = (
    _row("Visited-Network-Identifier", 600, _T.OCTET_STRING, True),
    _row("Public-Identity", 601, _T.UTF8_STRING, True),
    _row("Server-Name", 602, _T.UTF8_STRING, True),
    _row("Server-Capabilities", 603, _T.GROUPED, True),
    _row("Mandatory-Capability", 604, _T.UNSIGNED32, True),
    _row("Optional-Capability", 605, _T.UNSIGNED32, True),
    _row("User-Data", 606, _T.OCTET_STRING, True),
    _row("SIP-Number-Auth-Items", 607, _T.UNSIGNED32, True),
    _row("SIP-Authentication-Scheme", 608, _T.UTF8_STRING, True),
    _row("SIP-Authenticate", 609, _T.OCTET_STRING, True),
    _row("SIP-Authorization", 610, _T.OCTET_STRING, True),
    _row("SIP-Authentication-Context", 611, _T.OCTET_STRING, True),
    _row("SIP-Auth-Data-Item", 612, _T.GROUPED, True),
    _row("SIP-Item-Number", 613, _T.UNSIGNED32, True),
    _row("Server-Assignment-Type", 614, _T.ENUMERATED, True),
    _row("Deregistration-Reason", 615, _T.GROUPED, True),
    _row("Reason-Code", 616, _T.ENUMERATED, True),
    _row("Reason-Info", 617, _T.UTF8_STRING, True),
    _row("Charging-Information", 618, _T.GROUPED, True),
    _row("Primary-Event-Charging-Function-Name", 619, _T.DIAMETER_URI, True),
    _row("Secondary-Event-Charging-Function-Name", 620, _T.DIAMETER_URI, True),
    _row("Primary-Charging-Collection-Function-Name", 621, _T.DIAMETER_URI, True),
    _row("Secondary-Charging-Collection-Function-Name", 622, _T.DIAMETER_URI, True),
    _row("User-Authorization-Type", 623, _T.ENUMERATED, True),
    _row("User-Data-Already-Available", 624, _T.ENUMERATED, True),
    _row("Confidentiality-Key", 625, _T.OCTET_STRING, True),
    _row("Integrity-Key", 626, _T.OCTET_STRING, True),
    _row("Supported-Features", 628, _T.GROUPED, False),
    _row("Feature-List-ID", 629, _T.UNSIGNED32, False),
    _row("Feature-List", 630, _T.UNSIGNED32, False),
    _row("Associated-Identities", 632, _T.GROUPED, False),
    _row("Originating-Request", 633, _T.ENUMERATED, True),
    _row("Wildcarded-Public-Identity", 634, _T.UTF8_STRING, False),
    _row("SIP-Digest-Authenticate", 635, _T.GROUPED, False),
    _row("UAR-Flags", 637, _T.UNSIGNED32, False),
)

#: TS 29.229 §6.1 (command codes from RFC 3589): requests and answers are proxiable.
CX_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("User-Authorization", 300, APP_CX, "UAR", "UAA"),
    CommandDef("Server-Assignment", 301, APP_CX, "SAR", "SAA"),
    CommandDef("Location-Info", 302, APP_CX, "LIR", "LIA"),
    CommandDef("Multimedia-Auth", 303, APP_CX, "MAR", "MAA"),
    CommandDef("Registration-Termination", 304, APP_CX, "RTR", "RTA"),
    CommandDef("Push-Profile", 305, APP_CX, "PPR", "PPA"),
)

#: The Cx dictionary: the base rows and Cx's.
CX = Dictionary(BASE_AVPS + CX_AVPS, BASE_COMMANDS + CX_COMMANDS)

_UAR, _SAR, _LIR, _MAR, _RTR, _PPR = (command.code for command in CX_COMMANDS)

#: Vendor-Specific-Application-Id {Vendor-Id 10415, Auth-Application-Id 16777216}: every Cx
#: message carries it (TS 29.229 §6.1).
CX_VENDOR_APP: Avp = CX.group(
    "Vendor-Specific-Application-Id",
    CX.avp("Vendor-Id", VENDOR_3GPP),
    CX.avp("Auth-Application-Id", APP_CX),
)

#: Auth-Session-State NO_STATE_MAINTAINED (RFC 6733 §8.11): Cx sessions are implicitly
#: terminated (TS 29.229 §5.3).
AUTH_SESSION_NO_STATE_MAINTAINED = 1

#: Originating-Request ORIGINATING (TS 29.229 §6.3.34), its only value.
ORIGINATING = 0

#: UAR-Flags bit 0, "IMS Emergency Registration" (TS 29.229 §6.3.44).
UAR_FLAG_EMERGENCY = 1

#: Feature-List-ID 1, bit 0: SiFC, shared iFC sets (TS 29.229 §7.1.1 table 7.1.1).
FEATURE_SIFC = 1
_FEATURE_LIST_ID = 1

#: SIP-Authentication-Scheme values (TS 29.229 §6.3.9; Clearwater's defaults for
#: ``hss_mar_scheme_*``, spec §6.1).
SCHEME_DIGEST = "SIP Digest"
SCHEME_AKAV1 = "Digest-AKAv1-MD5"
SCHEME_AKAV2 = "Digest-AKAv2-SHA-256"
SCHEME_UNKNOWN = "Unknown"
AUTH_SCHEMES = (SCHEME_DIGEST, SCHEME_AKAV1, SCHEME_AKAV2, SCHEME_UNKNOWN)
_AKA_SCHEMES = (SCHEME_AKAV1, SCHEME_AKAV2)

_USER_DATA_NOT_AVAILABLE = 0


class ServerAssignmentType(enum.IntEnum):
    """Server-Assignment-Type (TS 29.229 §6.3.15). 12-14 are for SWx (TS 29.273), not Cx."""

    NO_ASSIGNMENT = 0
    REGISTRATION = 1
    RE_REGISTRATION = 2
    UNREGISTERED_USER = 3
    TIMEOUT_DEREGISTRATION = 4
    USER_DEREGISTRATION = 5
    TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME = 6
    USER_DEREGISTRATION_STORE_SERVER_NAME = 7
    ADMINISTRATIVE_DEREGISTRATION = 8
    AUTHENTICATION_FAILURE = 9
    AUTHENTICATION_TIMEOUT = 10
    DEREGISTRATION_TOO_MUCH_DATA = 11
    AAA_USER_DATA_REQUEST = 12
    PGW_UPDATE = 13
    RESTORATION = 14


class UserAuthorizationType(enum.IntEnum):
    """User-Authorization-Type (TS 29.229 §6.3.24)."""

    REGISTRATION = 0
    DE_REGISTRATION = 1
    REGISTRATION_AND_CAPABILITIES = 2


class ReasonCode(enum.IntEnum):
    """Deregistration-Reason's Reason-Code (TS 29.229 §6.3.17)."""

    PERMANENT_TERMINATION = 0
    NEW_SERVER_ASSIGNED = 1
    SERVER_CHANGE = 2
    REMOVE_S_CSCF = 3


# --------------------------------------------------------------------------- outcome


def _default_vendor(outcome: CxOutcome) -> int:
    return VENDOR_3GPP if outcome.experimental else 0


@attrs.frozen
class CxOutcome:
    """The result of an answer: a base Result-Code (``experimental`` False, RFC 6733 §7.1) or
    an Experimental-Result-Code (``experimental`` True) of ``vendor_id`` (10415 unless said
    otherwise: TS 29.229 §6.2's codes, :class:`~clearwater.diameter.results.CxResult`)."""

    code: int = attrs.field(converter=int)
    experimental: bool = False
    vendor_id: int = attrs.field(
        default=attrs.Factory(_default_vendor, takes_self=True), converter=int
    )

    @property
    def success(self) -> bool:
        """A 2xxx code (RFC 6733 §7.1.2; TS 29.229 §6.2.1)."""
        return 2000 <= self.code < 3000

    @property
    def is_protocol_error(self) -> bool:
        """A base 3xxx code: its answer has the E flag (RFC 6733 §7.1.3)."""
        return not self.experimental and 3000 <= self.code < 4000

    @property
    def is_3gpp(self) -> bool:
        """An Experimental-Result-Code of TS 29.229 §6.2 (vendor 10415)."""
        return self.experimental and self.vendor_id == VENDOR_3GPP

    def avp(self) -> Avp:
        """The Result-Code AVP, or Experimental-Result {Vendor-Id, Experimental-Result-Code}."""
        if not self.experimental:
            return CX.avp("Result-Code", self.code)
        return CX.group(
            "Experimental-Result",
            CX.avp("Vendor-Id", self.vendor_id),
            CX.avp("Experimental-Result-Code", self.code),
        )


#: Result-Code DIAMETER_SUCCESS.
SUCCESS = CxOutcome(ResultCode.DIAMETER_SUCCESS)


# --------------------------------------------------------------------------- errors

# Minimum data lengths of a zero-filled example value (RFC 6733 §7.1.5 DIAMETER_MISSING_AVP).
_MIN_LENGTH = {
    _T.INTEGER32: 4,
    _T.INTEGER64: 8,
    _T.UNSIGNED32: 4,
    _T.UNSIGNED64: 8,
    _T.FLOAT32: 4,
    _T.FLOAT64: 8,
    _T.ENUMERATED: 4,
    _T.TIME: 4,
    _T.ADDRESS: 6,
}


def _nest(avp: Avp, parents: Sequence[Avp]) -> Avp:
    """``avp`` inside copies of ``parents`` (outermost first) holding only it (RFC 6733 §7.5:
    the Failed-AVP of a member may be its group holding that one member)."""
    for parent in reversed(parents):
        avp = Avp(parent.code, bytes(avp), parent.flags, parent.vendor_id)
    return avp


def missing_avp(*path: str) -> DiameterDecodeError:
    """DIAMETER_MISSING_AVP for the AVP at the end of ``path`` (names in :data:`CX`, a grouped
    AVP's members after it). Its Failed-AVP is an example of the AVP, value zero-filled to the
    type's minimum length, inside its groups (RFC 6733 §7.1.5, §7.5)."""
    row = CX[path[-1]]
    avp = Avp.make(row.code, bytes(_MIN_LENGTH.get(row.type, 0)), row.vendor_id, row.mandatory)
    parents = [CX.group(name) for name in path[:-1]]
    return DiameterDecodeError(
        ResultCode.DIAMETER_MISSING_AVP, "Missing AVP " + "/".join(path), _nest(avp, parents)
    )


def _invalid(avp: Avp, parents: Sequence[Avp], reason: str) -> DiameterDecodeError:
    return DiameterDecodeError(ResultCode.DIAMETER_INVALID_AVP_VALUE, reason, _nest(avp, parents))


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(kind: type[_E], avp: Avp, parents: Sequence[Avp] = ()) -> _E:
    value = CX.value(avp)
    try:
        return kind(value)
    except ValueError:
        raise _invalid(avp, parents, f"{kind.__name__} {value}") from None


# --------------------------------------------------------------------------- typed access


def _find(level: Sequence[Avp], name: str) -> Optional[Avp]:
    row = CX[name]
    for avp in level:
        if avp.key == row.key:
            return avp
    return None


def _find_all(level: Sequence[Avp], name: str) -> list[Avp]:
    row = CX[name]
    return [avp for avp in level if avp.key == row.key]


def _need(level: Sequence[Avp], *path: str) -> Avp:
    """The AVP named ``path[-1]`` in ``level`` (the members of ``path[:-1]``); 5005 if
    absent."""
    avp = _find(level, path[-1])
    if avp is None:
        raise missing_avp(*path)
    return avp


def _text(avp: Avp, parents: Sequence[Avp] = ()) -> str:
    """A string AVP's value; an OctetString AVP's data read as UTF-8 (5004 if it is not)."""
    value = CX.value(avp)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(avp, parents, f"AVP {avp.code} is not UTF-8") from None
    return str(value)


def _opt_text(level: Sequence[Avp], name: str, parents: Sequence[Avp] = ()) -> Optional[str]:
    avp = _find(level, name)
    return None if avp is None else _text(avp, parents)


def _int(avp: Avp) -> int:
    value: Any = CX.value(avp)
    return int(value)


def _bytes(avp: Avp) -> bytes:
    return bytes(CX.value(avp))


def _members(avp: Avp) -> tuple[Avp, ...]:
    """A grouped AVP's members (5014 if its data are not AVPs)."""
    return avp.avps()


def _check(message: Message, code: int, request: bool) -> None:
    if message.command_code != code or message.application_id != APP_CX:
        raise ValueError(
            f"Not a Cx {code} message: command {message.command_code}, "
            f"application {message.application_id}"
        )
    if message.is_request != request:
        raise ValueError(f"Cx {code} message is not a{' request' if request else 'n answer'}")


# --------------------------------------------------------------------------- value objects


@attrs.frozen
class ServerCapabilities:
    """Server-Capabilities (TS 29.229 §6.3.4): capability numbers the I-CSCF picks an S-CSCF
    by (TS 29.228 §6.7) and, optionally, S-CSCF names."""

    mandatory: tuple[int, ...] = ()
    optional: tuple[int, ...] = ()
    server_names: tuple[str, ...] = ()

    def avp(self) -> Avp:
        return CX.group(
            "Server-Capabilities",
            *[CX.avp("Mandatory-Capability", value) for value in self.mandatory],
            *[CX.avp("Optional-Capability", value) for value in self.optional],
            *[CX.avp("Server-Name", name) for name in self.server_names],
        )

    @classmethod
    def from_avp(cls, avp: Avp) -> ServerCapabilities:
        members = _members(avp)
        return cls(
            tuple(_int(a) for a in _find_all(members, "Mandatory-Capability")),
            tuple(_int(a) for a in _find_all(members, "Optional-Capability")),
            tuple(_text(a, (avp,)) for a in _find_all(members, "Server-Name")),
        )


@attrs.frozen
class ChargingInformation:
    """Charging-Information (TS 29.229 §6.3.19): the event (online, ECF) and collection
    (offline, CCF) charging function names. :attr:`ccfs` and :attr:`ecfs` list them primary
    first, as homestead's ``<ChargingAddresses>`` does (spec §6.1)."""

    primary_ecf: Optional[str] = None
    secondary_ecf: Optional[str] = None
    primary_ccf: Optional[str] = None
    secondary_ccf: Optional[str] = None

    @classmethod
    def from_lists(cls, ccfs: Sequence[str] = (), ecfs: Sequence[str] = ()) -> ChargingInformation:
        """From CCF and ECF lists, primary first (at most two of each are kept)."""
        return cls(
            primary_ecf=ecfs[0] if ecfs else None,
            secondary_ecf=ecfs[1] if len(ecfs) > 1 else None,
            primary_ccf=ccfs[0] if ccfs else None,
            secondary_ccf=ccfs[1] if len(ccfs) > 1 else None,
        )

    @property
    def ccfs(self) -> tuple[str, ...]:
        return tuple(n for n in (self.primary_ccf, self.secondary_ccf) if n is not None)

    @property
    def ecfs(self) -> tuple[str, ...]:
        return tuple(n for n in (self.primary_ecf, self.secondary_ecf) if n is not None)

    def avp(self) -> Avp:
        names = (
            ("Primary-Event-Charging-Function-Name", self.primary_ecf),
            ("Secondary-Event-Charging-Function-Name", self.secondary_ecf),
            ("Primary-Charging-Collection-Function-Name", self.primary_ccf),
            ("Secondary-Charging-Collection-Function-Name", self.secondary_ccf),
        )
        return CX.group(
            "Charging-Information",
            *[CX.avp(name, value) for name, value in names if value is not None],
        )

    @classmethod
    def from_avp(cls, avp: Avp) -> ChargingInformation:
        members = _members(avp)
        parents = (avp,)
        return cls(
            primary_ecf=_opt_text(members, "Primary-Event-Charging-Function-Name", parents),
            secondary_ecf=_opt_text(members, "Secondary-Event-Charging-Function-Name", parents),
            primary_ccf=_opt_text(members, "Primary-Charging-Collection-Function-Name", parents),
            secondary_ccf=_opt_text(
                members, "Secondary-Charging-Collection-Function-Name", parents
            ),
        )


@attrs.frozen
class DigestVector:
    """SIP-Digest-Authenticate (TS 29.229 §6.3.36): HA1 (hex), realm and qop."""

    ha1: str = attrs.field(repr=False)
    realm: str
    qop: str = "auth"


@attrs.frozen
class AkaVector:
    """An IMS AKA vector of SIP-Auth-Data-Item (TS 29.229 §6.3.10-11, §6.3.27-28; TS 33.203):
    ``challenge`` is SIP-Authenticate (RAND ‖ AUTN), ``response`` SIP-Authorization (XRES),
    then CK and IK."""

    challenge: bytes
    response: bytes = attrs.field(repr=False)
    confidentiality_key: bytes = attrs.field(repr=False)
    integrity_key: bytes = attrs.field(repr=False)


# --------------------------------------------------------------------------- requests


@attrs.frozen
class CxRequest:
    """What every parsed Cx request carries: its Session-Id, Origin-Host and Origin-Realm
    (an HSS addresses a later RTR or PPR to the S-CSCF's Origin-Host, TS 29.229 §5.5)."""

    session_id: str
    origin_host: str
    origin_realm: str


@attrs.frozen
class UarRequest(CxRequest):
    """User-Authorization-Request (TS 29.229 §6.1.1). A UAR without User-Authorization-Type
    asks for REGISTRATION (§6.3.24)."""

    impi: str
    impu: str
    visited_network: str
    authorization_type: UserAuthorizationType
    emergency: bool


@attrs.frozen
class MarRequest(CxRequest):
    """Multimedia-Auth-Request (TS 29.229 §6.1.7); ``authorization`` is SIP-Authorization,
    RAND ‖ AUTS on a resynchronisation."""

    impi: str
    impu: str
    scheme: str
    server_name: str
    authorization: Optional[bytes]
    number_auth_items: int


@attrs.frozen
class SarRequest(CxRequest):
    """Server-Assignment-Request (TS 29.229 §6.1.3). ``shared_ifcs``: Supported-Features asks
    for the SiFC feature."""

    impi: Optional[str]
    impus: tuple[str, ...]
    server_name: str
    assignment_type: ServerAssignmentType
    wildcard: Optional[str]
    shared_ifcs: bool
    user_data_already_available: int

    @property
    def impu(self) -> Optional[str]:
        """The first Public-Identity (homestead sends one), or None."""
        return self.impus[0] if self.impus else None


@attrs.frozen
class LirRequest(CxRequest):
    """Location-Info-Request (TS 29.229 §6.1.5)."""

    impu: str
    originating: bool
    authorization_type: Optional[UserAuthorizationType]


@attrs.frozen
class RtrRequest(CxRequest):
    """Registration-Termination-Request (TS 29.229 §6.1.9): ``impis`` is User-Name then the
    User-Names of Associated-Identities; ``impus`` the Public-Identity AVPs."""

    reason_code: ReasonCode
    reason_info: Optional[str]
    impis: tuple[str, ...]
    impus: tuple[str, ...]


@attrs.frozen
class PprRequest(CxRequest):
    """Push-Profile-Request (TS 29.229 §6.1.11)."""

    impi: str
    user_data: Optional[str]
    charging: Optional[ChargingInformation]


def _head(
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str],
    realm_first: bool = False,
) -> list[Avp]:
    """Session-Id, Vendor-Specific-Application-Id, Auth-Session-State, Origin-Host,
    Origin-Realm, then [Destination-Host] {Destination-Realm} (the other way round when
    ``realm_first``: MAR's ABNF, TS 29.229 §6.1.7)."""
    destination = [CX.avp("Destination-Realm", destination_realm)]
    if destination_host is not None:
        host = CX.avp("Destination-Host", destination_host)
        destination = [*destination, host] if realm_first else [host, *destination]
    return [
        CX.avp("Session-Id", session_id),
        CX_VENDOR_APP,
        CX.avp("Auth-Session-State", AUTH_SESSION_NO_STATE_MAINTAINED),
        CX.avp("Origin-Host", origin_host),
        CX.avp("Origin-Realm", origin_realm),
        *destination,
    ]


def _request(code: int, avps: Iterable[Avp]) -> Message:
    return Message(code, APP_CX, tuple(avps))


def uar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str] = None,
    impi: str,
    impu: str,
    visited_network: str,
    authorization_type: int = UserAuthorizationType.REGISTRATION,
    emergency: bool = False,
) -> Message:
    """A UAR (TS 29.229 §6.1.1): User-Name, Public-Identity, Visited-Network-Identifier,
    User-Authorization-Type and, for an emergency registration, UAR-Flags."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host)
    avps += [
        CX.avp("User-Name", impi),
        CX.avp("Public-Identity", impu),
        CX.avp("Visited-Network-Identifier", visited_network),
        CX.avp("User-Authorization-Type", int(authorization_type)),
    ]
    if emergency:
        avps.append(CX.avp("UAR-Flags", UAR_FLAG_EMERGENCY))
    return _request(_UAR, avps)


def mar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str] = None,
    impi: str,
    impu: str,
    scheme: str,
    server_name: str,
    authorization: Optional[bytes] = None,
) -> Message:
    """A MAR (TS 29.229 §6.1.7) for one vector: User-Name, Public-Identity,
    SIP-Auth-Data-Item {SIP-Authentication-Scheme [, SIP-Authorization]},
    SIP-Number-Auth-Items 1, Server-Name."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host, True)
    item = [CX.avp("SIP-Authentication-Scheme", scheme)]
    if authorization is not None:
        item.append(CX.avp("SIP-Authorization", authorization))
    avps += [
        CX.avp("User-Name", impi),
        CX.avp("Public-Identity", impu),
        CX.group("SIP-Auth-Data-Item", *item),
        CX.avp("SIP-Number-Auth-Items", 1),
        CX.avp("Server-Name", server_name),
    ]
    return _request(_MAR, avps)


def _sifc_features() -> Avp:
    return CX.group(
        "Supported-Features",
        CX.avp("Vendor-Id", VENDOR_3GPP),
        CX.avp("Feature-List-ID", _FEATURE_LIST_ID),
        CX.avp("Feature-List", FEATURE_SIFC),
    )


def sar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str] = None,
    impi: Optional[str],
    impu: str,
    server_name: str,
    assignment_type: int,
    wildcard: Optional[str] = None,
    shared_ifcs: bool = False,
) -> Message:
    """A SAR (TS 29.229 §6.1.3): [User-Name], [Supported-Features {10415, 1, SiFC}],
    Public-Identity, [Wildcarded-Public-Identity], Server-Name, Server-Assignment-Type,
    User-Data-Already-Available USER_DATA_NOT_AVAILABLE."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host)
    if impi is not None:
        avps.append(CX.avp("User-Name", impi))
    if shared_ifcs:
        avps.append(_sifc_features())
    avps.append(CX.avp("Public-Identity", impu))
    if wildcard is not None:
        avps.append(CX.avp("Wildcarded-Public-Identity", wildcard))
    avps += [
        CX.avp("Server-Name", server_name),
        CX.avp("Server-Assignment-Type", int(assignment_type)),
        CX.avp("User-Data-Already-Available", _USER_DATA_NOT_AVAILABLE),
    ]
    return _request(_SAR, avps)


def lir(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: Optional[str] = None,
    impu: str,
    originating: bool = False,
    authorization_type: Optional[int] = None,
) -> Message:
    """A LIR (TS 29.229 §6.1.5): [Originating-Request ORIGINATING], Public-Identity,
    [User-Authorization-Type] (homestead sends REGISTRATION_AND_CAPABILITIES for ``CAPAB``)."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host)
    if originating:
        avps.append(CX.avp("Originating-Request", ORIGINATING))
    avps.append(CX.avp("Public-Identity", impu))
    if authorization_type is not None:
        avps.append(CX.avp("User-Authorization-Type", int(authorization_type)))
    return _request(_LIR, avps)


def rtr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: str,
    reason_code: int,
    reason_info: Optional[str] = None,
    impi: str,
    associated_impis: Sequence[str] = (),
    impus: Sequence[str] = (),
) -> Message:
    """An RTR (TS 29.229 §6.1.9, HSS → S-CSCF): User-Name, [Associated-Identities],
    *Public-Identity, Deregistration-Reason {Reason-Code [, Reason-Info]}."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host)
    avps.append(CX.avp("User-Name", impi))
    if associated_impis:
        avps.append(_associated(associated_impis))
    avps += [CX.avp("Public-Identity", impu) for impu in impus]
    reason = [CX.avp("Reason-Code", int(reason_code))]
    if reason_info is not None:
        reason.append(CX.avp("Reason-Info", reason_info))
    avps.append(CX.group("Deregistration-Reason", *reason))
    return _request(_RTR, avps)


def _associated(impis: Sequence[str]) -> Avp:
    return CX.group("Associated-Identities", *[CX.avp("User-Name", impi) for impi in impis])


def ppr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: str,
    impi: str,
    user_data: Optional[str] = None,
    charging: Optional[ChargingInformation] = None,
) -> Message:
    """A PPR (TS 29.229 §6.1.11, HSS → S-CSCF): User-Name, [User-Data],
    [Charging-Information]."""
    avps = _head(session_id, origin_host, origin_realm, destination_realm, destination_host)
    avps.append(CX.avp("User-Name", impi))
    if user_data is not None:
        avps.append(CX.avp("User-Data", user_data.encode("utf-8")))
    if charging is not None:
        avps.append(charging.avp())
    return _request(_PPR, avps)


def _request_head(message: Message) -> tuple[str, str, str]:
    """Session-Id, Origin-Host and Origin-Realm; Destination-Realm must be there too."""
    level = message.avps
    session_id = _text(_need(level, "Session-Id"))
    origin_host = _text(_need(level, "Origin-Host"))
    origin_realm = _text(_need(level, "Origin-Realm"))
    _need(level, "Destination-Realm")
    return session_id, origin_host, origin_realm


def parse_uar(message: Message) -> UarRequest:
    """The UAR ``message`` (TS 29.229 §6.1.1)."""
    _check(message, _UAR, request=True)
    head = _request_head(message)
    level = message.avps
    kind = _find(level, "User-Authorization-Type")
    flags = _find(level, "UAR-Flags")
    return UarRequest(
        *head,
        impi=_text(_need(level, "User-Name")),
        impu=_text(_need(level, "Public-Identity")),
        visited_network=_text(_need(level, "Visited-Network-Identifier")),
        authorization_type=(
            UserAuthorizationType.REGISTRATION
            if kind is None
            else _enum(UserAuthorizationType, kind)
        ),
        emergency=flags is not None and bool(_int(flags) & UAR_FLAG_EMERGENCY),
    )


def parse_mar(message: Message) -> MarRequest:
    """The MAR ``message`` (TS 29.229 §6.1.7)."""
    _check(message, _MAR, request=True)
    head = _request_head(message)
    level = message.avps
    item = _need(level, "SIP-Auth-Data-Item")
    members = _members(item)
    authorization = _find(members, "SIP-Authorization")
    return MarRequest(
        *head,
        impi=_text(_need(level, "User-Name")),
        impu=_text(_need(level, "Public-Identity")),
        scheme=_text(_need(members, "SIP-Auth-Data-Item", "SIP-Authentication-Scheme"), (item,)),
        server_name=_text(_need(level, "Server-Name")),
        authorization=None if authorization is None else _bytes(authorization),
        number_auth_items=_int(_need(level, "SIP-Number-Auth-Items")),
    )


def _asks_sifc(features: Avp) -> bool:
    members = _members(features)
    vendor = _find(members, "Vendor-Id")
    list_id = _find(members, "Feature-List-ID")
    bits = _find(members, "Feature-List")
    return (
        vendor is not None
        and _int(vendor) == VENDOR_3GPP
        and list_id is not None
        and _int(list_id) == _FEATURE_LIST_ID
        and bits is not None
        and bool(_int(bits) & FEATURE_SIFC)
    )


def parse_sar(message: Message) -> SarRequest:
    """The SAR ``message`` (TS 29.229 §6.1.3)."""
    _check(message, _SAR, request=True)
    head = _request_head(message)
    level = message.avps
    server_name = _text(_need(level, "Server-Name"))
    assignment = _enum(ServerAssignmentType, _need(level, "Server-Assignment-Type"))
    available = _need(level, "User-Data-Already-Available")
    if _int(available) not in (0, 1):
        raise _invalid(available, (), f"User-Data-Already-Available {_int(available)}")
    return SarRequest(
        *head,
        impi=_opt_text(level, "User-Name"),
        impus=tuple(_text(avp) for avp in _find_all(level, "Public-Identity")),
        server_name=server_name,
        assignment_type=assignment,
        wildcard=_opt_text(level, "Wildcarded-Public-Identity"),
        shared_ifcs=any(_asks_sifc(avp) for avp in _find_all(level, "Supported-Features")),
        user_data_already_available=_int(available),
    )


def parse_lir(message: Message) -> LirRequest:
    """The LIR ``message`` (TS 29.229 §6.1.5)."""
    _check(message, _LIR, request=True)
    head = _request_head(message)
    level = message.avps
    originating = _find(level, "Originating-Request")
    if originating is not None and _int(originating) != ORIGINATING:
        raise _invalid(originating, (), f"Originating-Request {_int(originating)}")
    kind = _find(level, "User-Authorization-Type")
    return LirRequest(
        *head,
        impu=_text(_need(level, "Public-Identity")),
        originating=originating is not None,
        authorization_type=None if kind is None else _enum(UserAuthorizationType, kind),
    )


def parse_rtr(message: Message) -> RtrRequest:
    """The RTR ``message`` (TS 29.229 §6.1.9)."""
    _check(message, _RTR, request=True)
    head = _request_head(message)
    level = message.avps
    impi = _text(_need(level, "User-Name"))
    reason = _need(level, "Deregistration-Reason")
    members = _members(reason)
    code = _enum(ReasonCode, _need(members, "Deregistration-Reason", "Reason-Code"), (reason,))
    associated = [
        _text(user, (group,))
        for group in _find_all(level, "Associated-Identities")
        for user in _find_all(_members(group), "User-Name")
    ]
    return RtrRequest(
        *head,
        reason_code=code,
        reason_info=_opt_text(members, "Reason-Info", (reason,)),
        impis=(impi, *associated),
        impus=tuple(_text(avp) for avp in _find_all(level, "Public-Identity")),
    )


def parse_ppr(message: Message) -> PprRequest:
    """The PPR ``message`` (TS 29.229 §6.1.11)."""
    _check(message, _PPR, request=True)
    head = _request_head(message)
    level = message.avps
    charging = _find(level, "Charging-Information")
    return PprRequest(
        *head,
        impi=_text(_need(level, "User-Name")),
        user_data=_opt_text(level, "User-Data"),
        charging=None if charging is None else ChargingInformation.from_avp(charging),
    )


# --------------------------------------------------------------------------- answers


@attrs.frozen
class UaaAnswer:
    """User-Authorization-Answer (TS 29.229 §6.1.2): the S-CSCF already assigned, or the
    capabilities to choose one by."""

    outcome: CxOutcome
    server_name: Optional[str] = None
    mandatory_capabilities: tuple[int, ...] = ()
    optional_capabilities: tuple[int, ...] = ()
    capability_servers: tuple[str, ...] = ()  # Server-Names inside Server-Capabilities

    @property
    def capabilities(self) -> ServerCapabilities:
        return ServerCapabilities(
            self.mandatory_capabilities, self.optional_capabilities, self.capability_servers
        )


@attrs.frozen
class LiaAnswer:
    """Location-Info-Answer (TS 29.229 §6.1.6): as :class:`UaaAnswer`, plus the
    Wildcarded-Public-Identity the queried identity matched."""

    outcome: CxOutcome
    server_name: Optional[str] = None
    mandatory_capabilities: tuple[int, ...] = ()
    optional_capabilities: tuple[int, ...] = ()
    wildcarded_identity: Optional[str] = None
    capability_servers: tuple[str, ...] = ()  # Server-Names inside Server-Capabilities

    @property
    def capabilities(self) -> ServerCapabilities:
        return ServerCapabilities(
            self.mandatory_capabilities, self.optional_capabilities, self.capability_servers
        )


@attrs.frozen
class MaaAnswer:
    """Multimedia-Auth-Answer (TS 29.229 §6.1.8), first SIP-Auth-Data-Item: ``digest`` for the
    "SIP Digest" scheme, ``aka`` for the AKA schemes; both None otherwise (a scheme homestead
    does not know, or no success)."""

    outcome: CxOutcome
    scheme: Optional[str] = None
    digest: Optional[DigestVector] = None
    aka: Optional[AkaVector] = None
    impi: Optional[str] = None


@attrs.frozen
class SaaAnswer:
    """Server-Assignment-Answer (TS 29.229 §6.1.4): ``user_data`` is the IMS subscription XML
    (TS 29.228 Annex E); ``wildcarded_identity`` comes with DIAMETER_ERROR_IN_ASSIGNMENT_TYPE
    when the HSS knows the identity under a wildcard."""

    outcome: CxOutcome
    user_data: Optional[str] = None
    charging: Optional[ChargingInformation] = None
    wildcarded_identity: Optional[str] = None


def parse_outcome(message: Message) -> CxOutcome:
    """The Result-Code, else the Experimental-Result, of an answer; 5005 if it has neither."""
    level = message.avps
    code = _find(level, "Result-Code")
    if code is not None:
        return CxOutcome(_int(code))
    result = _find(level, "Experimental-Result")
    if result is None:
        raise missing_avp("Result-Code")
    members = _members(result)
    value = _need(members, "Experimental-Result", "Experimental-Result-Code")
    vendor = _need(members, "Experimental-Result", "Vendor-Id")
    return CxOutcome(_int(value), True, _int(vendor))


def _capabilities(level: Sequence[Avp]) -> ServerCapabilities:
    avp = _find(level, "Server-Capabilities")
    return ServerCapabilities() if avp is None else ServerCapabilities.from_avp(avp)


def parse_uaa(message: Message) -> UaaAnswer:
    """The UAA ``message``."""
    _check(message, _UAR, request=False)
    level = message.avps
    capabilities = _capabilities(level)
    return UaaAnswer(
        parse_outcome(message),
        _opt_text(level, "Server-Name"),
        capabilities.mandatory,
        capabilities.optional,
        capabilities.server_names,
    )


def parse_lia(message: Message) -> LiaAnswer:
    """The LIA ``message``."""
    _check(message, _LIR, request=False)
    level = message.avps
    capabilities = _capabilities(level)
    return LiaAnswer(
        parse_outcome(message),
        _opt_text(level, "Server-Name"),
        capabilities.mandatory,
        capabilities.optional,
        _opt_text(level, "Wildcarded-Public-Identity"),
        capabilities.server_names,
    )


def _digest_member(members: Sequence[Avp], code: int) -> Optional[Avp]:
    """An RFC 4590 Digest-* member: without vendor (TS 29.229 §6.3.36), else with 10415."""
    for vendor in (0, VENDOR_3GPP):
        for avp in members:
            if avp.key == (code, vendor):
                return avp
    return None


def _digest(item: Avp, members: Sequence[Avp]) -> DigestVector:
    auth = _need(members, "SIP-Auth-Data-Item", "SIP-Digest-Authenticate")
    inner = _members(auth)
    parents = (item, auth)
    values: dict[str, str] = {}
    for name in ("Digest-HA1", "Digest-Realm", "Digest-QoP"):
        avp = _digest_member(inner, CX[name].code)
        if avp is None:
            if name == "Digest-QoP":
                continue
            raise missing_avp("SIP-Auth-Data-Item", "SIP-Digest-Authenticate", name)
        try:
            values[name] = decode_value(AvpType.UTF8_STRING, avp)
        except DiameterDecodeError as e:
            raise _invalid(avp, parents, e.reason) from None
    return DigestVector(values["Digest-HA1"], values["Digest-Realm"], values.get("Digest-QoP", ""))


def _aka(members: Sequence[Avp]) -> AkaVector:
    names = ("SIP-Authenticate", "SIP-Authorization", "Confidentiality-Key", "Integrity-Key")
    values = [_bytes(_need(members, "SIP-Auth-Data-Item", name)) for name in names]
    return AkaVector(*values)


def parse_maa(message: Message) -> MaaAnswer:
    """The MAA ``message``. On success, a "SIP Digest" answer must carry
    SIP-Digest-Authenticate {Digest-HA1, Digest-Realm} (a missing Digest-QoP reads as "",
    which homestead answers as "auth", spec §3.2), an AKA one SIP-Authenticate,
    SIP-Authorization, Confidentiality-Key and Integrity-Key."""
    _check(message, _MAR, request=False)
    outcome = parse_outcome(message)
    level = message.avps
    impi = _opt_text(level, "User-Name")
    item = _find(level, "SIP-Auth-Data-Item")
    if item is None:
        return MaaAnswer(outcome, impi=impi)
    members = _members(item)
    scheme = _opt_text(members, "SIP-Authentication-Scheme", (item,))
    digest = aka = None
    if outcome.success and scheme == SCHEME_DIGEST:
        digest = _digest(item, members)
    elif outcome.success and scheme in _AKA_SCHEMES:
        aka = _aka(members)
    return MaaAnswer(outcome, scheme, digest, aka, impi)


def parse_saa(message: Message) -> SaaAnswer:
    """The SAA ``message``."""
    _check(message, _SAR, request=False)
    level = message.avps
    charging = _find(level, "Charging-Information")
    return SaaAnswer(
        parse_outcome(message),
        _opt_text(level, "User-Data"),
        None if charging is None else ChargingInformation.from_avp(charging),
        _opt_text(level, "Wildcarded-Public-Identity"),
    )


def parse_rta(message: Message) -> CxOutcome:
    """The outcome of the RTA ``message``."""
    _check(message, _RTR, request=False)
    return parse_outcome(message)


def parse_ppa(message: Message) -> CxOutcome:
    """The outcome of the PPA ``message``."""
    _check(message, _PPR, request=False)
    return parse_outcome(message)


def _answer(
    request: Message,
    code: int,
    origin_host: str,
    origin_realm: str,
    outcome: CxOutcome,
    body: Iterable[Avp],
    failed_avp: Optional[Avp],
) -> Message:
    """Vendor-Specific-Application-Id, the outcome, Auth-Session-State, Origin-Host,
    Origin-Realm, ``body``, [Failed-AVP] (TS 29.229 §6.1's answer ABNF)."""
    _check(request, code, request=True)
    avps = [
        CX_VENDOR_APP,
        outcome.avp(),
        CX.avp("Auth-Session-State", AUTH_SESSION_NO_STATE_MAINTAINED),
        CX.avp("Origin-Host", origin_host),
        CX.avp("Origin-Realm", origin_realm),
        *body,
    ]
    if failed_avp is not None:
        avps.append(CX.group("Failed-AVP", failed_avp))
    return make_answer(request, avps, error=outcome.is_protocol_error)


def uaa(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    outcome: CxOutcome,
    server_name: Optional[str] = None,
    capabilities: Optional[ServerCapabilities] = None,
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The UAA to ``request``: [Server-Name], [Server-Capabilities]."""
    body = []
    if server_name is not None:
        body.append(CX.avp("Server-Name", server_name))
    if capabilities is not None:
        body.append(capabilities.avp())
    return _answer(request, _UAR, origin_host, origin_realm, outcome, body, failed_avp)


def lia(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    outcome: CxOutcome,
    server_name: Optional[str] = None,
    capabilities: Optional[ServerCapabilities] = None,
    wildcarded_identity: Optional[str] = None,
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The LIA to ``request``: [Server-Name], [Server-Capabilities],
    [Wildcarded-Public-Identity]."""
    body = []
    if server_name is not None:
        body.append(CX.avp("Server-Name", server_name))
    if capabilities is not None:
        body.append(capabilities.avp())
    if wildcarded_identity is not None:
        body.append(CX.avp("Wildcarded-Public-Identity", wildcarded_identity))
    return _answer(request, _LIR, origin_host, origin_realm, outcome, body, failed_avp)


def maa(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    outcome: CxOutcome,
    scheme: Optional[str] = None,
    digest: Optional[DigestVector] = None,
    aka: Optional[AkaVector] = None,
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The MAA to ``request``. With a vector: the request's User-Name and Public-Identity,
    SIP-Number-Auth-Items 1 and SIP-Auth-Data-Item {SIP-Authentication-Scheme (``scheme``, by
    default "SIP Digest" for ``digest`` and "Digest-AKAv1-MD5" for ``aka``), then
    SIP-Authenticate, SIP-Authorization, Confidentiality-Key, Integrity-Key (AKA) or
    SIP-Digest-Authenticate {Digest-Realm, Digest-QoP, Digest-HA1} (digest)}."""
    body: list[Avp] = []
    if digest is not None or aka is not None:
        if scheme is None:
            scheme = SCHEME_DIGEST if digest is not None else SCHEME_AKAV1
        identities = (_find(request.avps, "User-Name"), _find(request.avps, "Public-Identity"))
        body += [avp for avp in identities if avp is not None]
        body.append(CX.avp("SIP-Number-Auth-Items", 1))
        item = [CX.avp("SIP-Authentication-Scheme", scheme)]
        if aka is not None:
            item += [
                CX.avp("SIP-Authenticate", aka.challenge),
                CX.avp("SIP-Authorization", aka.response),
                CX.avp("Confidentiality-Key", aka.confidentiality_key),
                CX.avp("Integrity-Key", aka.integrity_key),
            ]
        if digest is not None:
            item.append(
                CX.group(
                    "SIP-Digest-Authenticate",
                    CX.avp("Digest-Realm", digest.realm),
                    CX.avp("Digest-QoP", digest.qop),
                    CX.avp("Digest-HA1", digest.ha1),
                )
            )
        body.append(CX.group("SIP-Auth-Data-Item", *item))
    elif scheme is not None:
        body.append(CX.group("SIP-Auth-Data-Item", CX.avp("SIP-Authentication-Scheme", scheme)))
    return _answer(request, _MAR, origin_host, origin_realm, outcome, body, failed_avp)


def saa(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    outcome: CxOutcome,
    user_data: Optional[str] = None,
    charging: Optional[ChargingInformation] = None,
    wildcarded_identity: Optional[str] = None,
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The SAA to ``request``: [User-Data], [Charging-Information],
    [Wildcarded-Public-Identity]."""
    body = []
    if user_data is not None:
        body.append(CX.avp("User-Data", user_data.encode("utf-8")))
    if charging is not None:
        body.append(charging.avp())
    if wildcarded_identity is not None:
        body.append(CX.avp("Wildcarded-Public-Identity", wildcarded_identity))
    return _answer(request, _SAR, origin_host, origin_realm, outcome, body, failed_avp)


def rta(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    result_code: Union[int, CxOutcome],
    associated_impis: Sequence[str] = (),
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The RTA to ``request`` (DIAMETER_SUCCESS, or e.g. DIAMETER_UNABLE_TO_COMPLY, spec
    §7.1; a :class:`CxOutcome` for an Experimental-Result): [Associated-Identities] names the
    private identities de-registered."""
    body = [_associated(associated_impis)] if associated_impis else []
    outcome = result_code if isinstance(result_code, CxOutcome) else CxOutcome(result_code)
    return _answer(request, _RTR, origin_host, origin_realm, outcome, body, failed_avp)


def ppa(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    result_code: Union[int, CxOutcome],
    failed_avp: Optional[Avp] = None,
) -> Message:
    """The PPA to ``request`` (a :class:`CxOutcome` for an Experimental-Result, e.g.
    DIAMETER_ERROR_USER_UNKNOWN)."""
    outcome = result_code if isinstance(result_code, CxOutcome) else CxOutcome(result_code)
    return _answer(request, _PPR, origin_host, origin_realm, outcome, (), failed_avp)


# --------------------------------------------------------------------------- HTTP status

# Experimental (3GPP) codes that are successes for a command (spec §7.1: the UAA's
# registration variants, the LIA's unregistered service and "not registered", which homestead
# passes on as a 200 with that result-code; the SAA's de-registration without the name
# stored).
_EXPERIMENTAL_OK = {
    _UAR: {CxResult.DIAMETER_FIRST_REGISTRATION, CxResult.DIAMETER_SUBSEQUENT_REGISTRATION},
    _LIR: {
        CxResult.DIAMETER_UNREGISTERED_SERVICE,
        CxResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
    },
    _SAR: {CxResult.DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED},
    _MAR: set(),
}
_BASE_STATUS: dict[int, int] = {
    ResultCode.DIAMETER_SUCCESS: 200,
    ResultCode.DIAMETER_AUTHORIZATION_REJECTED: 403,
    ResultCode.DIAMETER_UNABLE_TO_DELIVER: 503,
    ResultCode.DIAMETER_TOO_BUSY: 504,
}
_EXPERIMENTAL_NOT_FOUND = {
    CxResult.DIAMETER_ERROR_USER_UNKNOWN,
    CxResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
}


def http_status(outcome: Optional[CxOutcome], command: str) -> int:
    """The HTTP status homestead answers with for ``outcome`` of ``command`` ("UAR", "LIR",
    "MAR", "SAR" or their other names), spec §7.1's result handling:

    ================================================================== ======
    outcome                                                            status
    ================================================================== ======
    Result-Code DIAMETER_SUCCESS; the command's 3GPP success variants  200
    (UAR: 2001, 2002; LIR: 2003 and 5003 IDENTITY_NOT_REGISTERED;
    SAR: 2004)
    3GPP 5001 USER_UNKNOWN, 5002 IDENTITIES_DONT_MATCH; MAR: 5006      404
    AUTH_SCHEME_NOT_SUPPORTED (spec §6.1: "unsupported scheme")
    Result-Code 5003 AUTHORIZATION_REJECTED; 3GPP 5004                 403
    ROAMING_NOT_ALLOWED
    Result-Code 3002 DIAMETER_UNABLE_TO_DELIVER (also what a node      503
    with no peer should report)
    Result-Code 3004 DIAMETER_TOO_BUSY; None: no answer in time        504
    anything else                                                      500
    ================================================================== ======
    """
    code = CX.command(command).code
    if code not in _EXPERIMENTAL_OK:
        raise ValueError(f"Homestead does not send {command}")
    if outcome is None:
        return 504
    if not outcome.experimental:
        return _BASE_STATUS.get(outcome.code, 500)
    if not outcome.is_3gpp:
        return 500
    if outcome.code in _EXPERIMENTAL_OK[code]:
        return 200
    if outcome.code in _EXPERIMENTAL_NOT_FOUND or (
        code == _MAR and outcome.code == CxResult.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED
    ):
        return 404
    if outcome.code == CxResult.DIAMETER_ERROR_ROAMING_NOT_ALLOWED:
        return 403
    return 500
