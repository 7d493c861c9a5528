# -*- test-case-name: tests.unit.diameter.test_dictionary -*-
"""The Diameter dictionary: one row per AVP and per command, and typed values.

Rows: :data:`BASE_AVPS` (RFC 6733 §4.5, and the digest AVPs of RFC 5090 that Cx borrows) and
:data:`BASE_COMMANDS`; each application module adds its own (:mod:`.apps.cx`: TS 29.229,
:mod:`.apps.rf`: TS 32.299) and builds its :class:`Dictionary` from both. Adding an AVP is
adding a row.

Value types are RFC 6733 §4.2 (basic) and §4.3 (derived) formats. In Python:

============================= =================================================================
type                          value
============================= =================================================================
OctetString                   ``bytes``
Integer32/64, Unsigned32/64,  ``int`` (range checked when encoding)
Enumerated
Float32/64                    ``float``
UTF8String, DiameterIdentity, ``str`` (DiameterIdentity and DiameterURI ASCII)
DiameterURI, IPFilterRule
Address                       ``str``: an IPv4 or IPv6 address (family 1 or 2, RFC 6733 §4.3.1);
                              other families are ``"<family>:<hex>"`` both ways
Time                          ``int`` seconds since the Unix epoch (the NTP-era seconds since
                              1900 on the wire, RFC 6733 §4.3.1; values below 2^31 on the wire
                              are read as after 2036, RFC 2030 §3, so 1968-01-20 to 2104-02-26
                              can be sent)
Grouped                       ``tuple[Avp, ...]``
============================= =================================================================

Data of the wrong size for a fixed-size type raise :class:`~.message.DiameterDecodeError` with
DIAMETER_INVALID_AVP_LENGTH (5014); data of the right size that are not a value of the type
(bad UTF-8, a non-ASCII identity) DIAMETER_INVALID_AVP_VALUE (5004); both name the AVP as
Failed-AVP (RFC 6733 §7.5).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional, Union

import attrs

from clearwater.diameter.message import Avp, DiameterDecodeError, Message

__all__ = [
    "APP_ACCOUNTING",
    "APP_COMMON",
    "APP_CX",
    "APP_RELAY",
    "BASE",
    "BASE_AVPS",
    "BASE_COMMANDS",
    "VENDOR_3GPP",
    "AvpDef",
    "AvpType",
    "CommandDef",
    "Dictionary",
    "decode_value",
    "encode_value",
]

#: 3GPP's vendor id (IANA enterprise number 10415).
VENDOR_3GPP = 10415

_INVALID_AVP_VALUE = 5004
_INVALID_AVP_LENGTH = 5014
_NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
# The Unix times a Time AVP can carry: wire values 2^31..2^32-1 are 1968-2036 (NTP era 0),
# 0..2^31-1 are 2036-2104 (era 1).
_TIME_MIN = (1 << 31) - _NTP_UNIX_OFFSET
_TIME_MAX = (1 << 32) + (1 << 31) - 1 - _NTP_UNIX_OFFSET


class AvpType(enum.Enum):
    """The data formats of RFC 6733 §4.2 and §4.3."""

    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"
    IP_FILTER_RULE = "IPFilterRule"


_FIXED: dict[AvpType, struct.Struct] = {
    AvpType.INTEGER32: struct.Struct("!i"),
    AvpType.INTEGER64: struct.Struct("!q"),
    AvpType.UNSIGNED32: struct.Struct("!I"),
    AvpType.UNSIGNED64: struct.Struct("!Q"),
    AvpType.FLOAT32: struct.Struct("!f"),
    AvpType.FLOAT64: struct.Struct("!d"),
    AvpType.ENUMERATED: struct.Struct("!i"),
    AvpType.TIME: struct.Struct("!I"),
}
_ASCII_TYPES = (AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI, AvpType.IP_FILTER_RULE)


def encode_value(kind: AvpType, value: Any) -> bytes:
    """The data of a value of type ``kind``; TypeError or ValueError (a value the type cannot
    carry) otherwise."""
    if kind is AvpType.OCTET_STRING:
        if isinstance(value, str):
            return value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"OctetString value {value!r}")
        return bytes(value)
    if kind is AvpType.UTF8_STRING:
        if not isinstance(value, str):
            raise TypeError(f"UTF8String value {value!r}")
        return value.encode("utf-8")
    if kind in _ASCII_TYPES:
        if not isinstance(value, str):
            raise TypeError(f"{kind.value} value {value!r}")
        return value.encode("ascii")
    if kind is AvpType.GROUPED:
        members = list(value)
        for member in members:
            if not isinstance(member, Avp):
                raise TypeError(f"Grouped member {member!r}")
        return b"".join([bytes(member) for member in members])
    if kind is AvpType.ADDRESS:
        return _encode_address(value)
    if kind is AvpType.TIME:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Time value {value!r}")
        if not _TIME_MIN <= value <= _TIME_MAX:
            raise ValueError(f"Time value {value} out of range")
        return _FIXED[kind].pack((value + _NTP_UNIX_OFFSET) % (1 << 32))
    codec = _FIXED[kind]
    if kind in (AvpType.FLOAT32, AvpType.FLOAT64):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{kind.value} value {value!r}")
        try:
            return codec.pack(float(value))
        except (OverflowError, struct.error):
            raise ValueError(f"{kind.value} value {value} out of range") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{kind.value} value {value!r}")
    try:
        return codec.pack(value)
    except struct.error:
        raise ValueError(f"{kind.value} value {value} out of range") from None


def _encode_address(value: Any) -> bytes:
    address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return _encode_other_address(value)
    else:
        raise TypeError(f"Address value {value!r}")
    return (b"\0\1" if address.version == 4 else b"\0\2") + address.packed


def _encode_other_address(value: str) -> bytes:
    """``"<family>:<hex>"`` (what an address of a family other than 1 or 2 decodes to)."""
    prefix, sep, raw = value.partition(":")
    try:
        number = int(prefix, 10) if sep and prefix.isdigit() else -1
        data = bytes.fromhex(raw)
    except ValueError:
        number = -1
    if not 0 <= number <= 0xFFFF or number in (1, 2):
        raise ValueError(f"Address value {value!r}")
    return number.to_bytes(2, "big") + data


def decode_value(kind: AvpType, avp: Avp) -> Any:
    """The value ``avp`` carries as type ``kind`` (module docstring table)."""
    data = avp.data
    if kind is AvpType.OCTET_STRING:
        return data
    if kind is AvpType.GROUPED:
        return avp.avps()
    if kind is AvpType.UTF8_STRING or kind in _ASCII_TYPES:
        try:
            return data.decode("utf-8" if kind is AvpType.UTF8_STRING else "ascii")
        except UnicodeDecodeError:
            raise DiameterDecodeError(
                _INVALID_AVP_VALUE, f"AVP {avp.code} is not {kind.value}", avp
            ) from None
    if kind is AvpType.ADDRESS:
        if len(data) < 2:
            raise DiameterDecodeError(_INVALID_AVP_LENGTH, f"Address AVP {avp.code}", avp)
        family = int.from_bytes(data[:2], "big")
        raw = data[2:]
        if family in (1, 2):
            if len(raw) != (4 if family == 1 else 16):
                raise DiameterDecodeError(_INVALID_AVP_LENGTH, f"Address AVP {avp.code}", avp)
            return str(ipaddress.ip_address(raw))
        return f"{family}:{raw.hex()}"
    codec = _FIXED[kind]
    if len(data) != codec.size:
        raise DiameterDecodeError(
            _INVALID_AVP_LENGTH, f"AVP {avp.code}: {len(data)} bytes for {kind.value}", avp
        )
    value = codec.unpack(data)[0]
    if kind is AvpType.TIME:
        return (
            value - _NTP_UNIX_OFFSET if value >= 1 << 31 else value + (1 << 32) - _NTP_UNIX_OFFSET
        )
    return value


@attrs.frozen
class AvpDef:
    """A dictionary row: the AVP's ``name``, ``code``, ``type``, ``vendor_id`` (0: none, no V
    flag) and whether this node sets its M flag (``mandatory``: the RFC's or TS's "MUST"
    column; "MUST NOT" rows say False)."""

    name: str
    code: int
    type: AvpType
    vendor_id: int = 0
    mandatory: bool = True

    @property
    def key(self) -> tuple[int, int]:
        return self.code, self.vendor_id


@attrs.frozen
class CommandDef:
    """A command row: ``name`` (e.g. "User-Authorization"), ``code``, its application id, the
    request and answer abbreviations (e.g. "UAR", "UAA"), and whether requests set the P flag."""

    name: str
    code: int
    application_id: int
    request: str
    answer: str
    proxiable: bool = True


_AvpSource = Union[Message, Sequence[Avp]]


class Dictionary:
    """Lookups over AVP and command rows, and typed access to AVPs."""

    def __init__(self, avps: Iterable[AvpDef], commands: Iterable[CommandDef] = ()) -> None:
        self._by_name: dict[str, AvpDef] = {}
        self._by_key: dict[tuple[int, int], AvpDef] = {}
        for row in avps:
            if row.name in self._by_name or row.key in self._by_key:
                raise ValueError(f"Duplicate dictionary row {row}")
            self._by_name[row.name] = row
            self._by_key[row.key] = row
        self._commands: dict[str, CommandDef] = {}
        self._commands_by_code: dict[tuple[int, int], CommandDef] = {}
        for command in commands:
            names = (command.name, command.request, command.answer)
            key = (command.code, command.application_id)
            if key in self._commands_by_code or any(name in self._commands for name in names):
                raise ValueError(f"Duplicate dictionary row {command}")
            for name in names:
                self._commands[name] = command
            self._commands_by_code[key] = command

    def __getitem__(self, name: str) -> AvpDef:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"No AVP named {name!r} in the dictionary") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[AvpDef]:
        return iter(self._by_name.values())

    def lookup(self, code: int, vendor_id: int = 0) -> Optional[AvpDef]:
        """The row of AVP ``(code, vendor_id)``, or None if unknown."""
        return self._by_key.get((code, vendor_id))

    def definition(self, avp: Avp) -> Optional[AvpDef]:
        """The row of ``avp``, or None if unknown."""
        return self._by_key.get(avp.key)

    def command(self, name: str) -> CommandDef:
        """A command by name or abbreviation ("UAR", "User-Authorization")."""
        try:
            return self._commands[name]
        except KeyError:
            raise KeyError(f"No command named {name!r} in the dictionary") from None

    def command_for(self, code: int, application_id: int) -> Optional[CommandDef]:
        return self._commands_by_code.get((code, application_id))

    def avp(self, name: str, value: Any) -> Avp:
        """An AVP ``name`` carrying ``value`` (for a Grouped AVP, a sequence of AVPs), with
        the row's code, vendor and M flag."""
        row = self[name]
        return Avp.make(row.code, encode_value(row.type, value), row.vendor_id, row.mandatory)

    def group(self, name: str, *members: Avp) -> Avp:
        """A Grouped AVP ``name`` holding ``members``."""
        return self.avp(name, members)

    def value(self, avp: Avp) -> Any:
        """The typed value of ``avp`` (KeyError if it has no row)."""
        row = self._by_key.get(avp.key)
        if row is None:
            raise KeyError(f"No dictionary row for AVP {avp.key}")
        return decode_value(row.type, avp)

    def find(self, source: _AvpSource, *path: str) -> Optional[Avp]:
        """The first AVP along ``path`` ("Experimental-Result", "Experimental-Result-Code"):
        each name but the last is a Grouped AVP searched in order; None if absent."""
        found = self.find_all(source, *path)
        return found[0] if found else None

    def find_all(self, source: _AvpSource, *path: str) -> list[Avp]:
        """Every AVP at the end of ``path``, within every matching group, in order."""
        if not path:
            raise ValueError("An AVP path names at least one AVP")
        level: Sequence[Avp] = source.avps if isinstance(source, Message) else source
        rows = [self[name] for name in path]
        for row in rows[:-1]:
            if row.type is not AvpType.GROUPED:
                raise ValueError(f"{row.name} in an AVP path is not Grouped")
        for depth, row in enumerate(rows):
            matches = [avp for avp in level if avp.code == row.code and avp.key[1] == row.vendor_id]
            if depth == len(rows) - 1:
                return matches
            level = [member for group in matches for member in group.avps()]
        return []

    def get(self, source: _AvpSource, *path: str) -> Any:
        """The value of the first AVP along ``path``, or None if absent."""
        avp = self.find(source, *path)
        return None if avp is None else decode_value(self[path[-1]].type, avp)

    def get_all(self, source: _AvpSource, *path: str) -> list[Any]:
        """The values of every AVP along ``path``."""
        row = self[path[-1]]
        return [decode_value(row.type, avp) for avp in self.find_all(source, *path)]


_T = AvpType


def _rows(vendor_id: int, *rows: tuple[str, int, AvpType, bool]) -> tuple[AvpDef, ...]:
    return tuple(
        AvpDef(name, code, kind, vendor_id, mandatory) for name, code, kind, mandatory in rows
    )


#: RFC 6733 §4.5 (the base protocol's AVPs; "M" column MUST → True) and RFC 5090 §4 (the
#: digest AVPs that TS 29.229's SIP-Digest-Authenticate reuses).
BASE_AVPS: tuple[AvpDef, ...] = _rows(
    0,
    ("User-Name", 1, _T.UTF8_STRING, True),
    ("Class", 25, _T.OCTET_STRING, True),
    ("Session-Timeout", 27, _T.UNSIGNED32, True),
    ("Proxy-State", 33, _T.OCTET_STRING, True),
    ("Acct-Session-Id", 44, _T.OCTET_STRING, True),
    ("Acct-Multi-Session-Id", 50, _T.UTF8_STRING, True),
    ("Event-Timestamp", 55, _T.TIME, True),
    ("Acct-Interim-Interval", 85, _T.UNSIGNED32, True),
    ("Host-IP-Address", 257, _T.ADDRESS, True),
    ("Auth-Application-Id", 258, _T.UNSIGNED32, True),
    ("Acct-Application-Id", 259, _T.UNSIGNED32, True),
    ("Vendor-Specific-Application-Id", 260, _T.GROUPED, True),
    ("Redirect-Host-Usage", 261, _T.ENUMERATED, True),
    ("Redirect-Max-Cache-Time", 262, _T.UNSIGNED32, True),
    ("Session-Id", 263, _T.UTF8_STRING, True),
    ("Origin-Host", 264, _T.DIAMETER_IDENTITY, True),
    ("Supported-Vendor-Id", 265, _T.UNSIGNED32, True),
    ("Vendor-Id", 266, _T.UNSIGNED32, True),
    ("Firmware-Revision", 267, _T.UNSIGNED32, False),
    ("Result-Code", 268, _T.UNSIGNED32, True),
    ("Product-Name", 269, _T.UTF8_STRING, False),
    ("Session-Binding", 270, _T.UNSIGNED32, True),
    ("Session-Server-Failover", 271, _T.ENUMERATED, True),
    ("Multi-Round-Time-Out", 272, _T.UNSIGNED32, True),
    ("Disconnect-Cause", 273, _T.ENUMERATED, True),
    ("Auth-Request-Type", 274, _T.ENUMERATED, True),
    ("Auth-Grace-Period", 276, _T.UNSIGNED32, True),
    ("Auth-Session-State", 277, _T.ENUMERATED, True),
    ("Origin-State-Id", 278, _T.UNSIGNED32, True),
    ("Failed-AVP", 279, _T.GROUPED, True),
    ("Proxy-Host", 280, _T.DIAMETER_IDENTITY, True),
    ("Error-Message", 281, _T.UTF8_STRING, False),
    ("Route-Record", 282, _T.DIAMETER_IDENTITY, True),
    ("Destination-Realm", 283, _T.DIAMETER_IDENTITY, True),
    ("Proxy-Info", 284, _T.GROUPED, True),
    ("Re-Auth-Request-Type", 285, _T.ENUMERATED, True),
    ("Accounting-Sub-Session-Id", 287, _T.UNSIGNED64, True),
    ("Authorization-Lifetime", 291, _T.UNSIGNED32, True),
    ("Redirect-Host", 292, _T.DIAMETER_URI, True),
    ("Destination-Host", 293, _T.DIAMETER_IDENTITY, True),
    ("Error-Reporting-Host", 294, _T.DIAMETER_IDENTITY, False),
    ("Termination-Cause", 295, _T.ENUMERATED, True),
    ("Origin-Realm", 296, _T.DIAMETER_IDENTITY, True),
    ("Experimental-Result", 297, _T.GROUPED, True),
    ("Experimental-Result-Code", 298, _T.UNSIGNED32, True),
    ("Inband-Security-Id", 299, _T.UNSIGNED32, True),
    ("Accounting-Record-Type", 480, _T.ENUMERATED, True),
    ("Accounting-Realtime-Required", 483, _T.ENUMERATED, True),
    ("Accounting-Record-Number", 485, _T.UNSIGNED32, True),
    # RFC 5090 §4 (SIP digest AVPs).
    ("Digest-Realm", 104, _T.UTF8_STRING, True),
    ("Digest-QoP", 110, _T.UTF8_STRING, True),
    ("Digest-Algorithm", 111, _T.UTF8_STRING, True),
    ("Digest-HA1", 121, _T.UTF8_STRING, True),
)

#: Application ids (RFC 6733 §2.4, TS 29.229 §5.6).
APP_COMMON = 0
APP_ACCOUNTING = 3
APP_CX = 16777216
APP_RELAY = 0xFFFFFFFF

#: The base protocol's commands (RFC 6733 §3.1) and accounting's (RFC 6733 §9.7).
BASE_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("Capabilities-Exchange", 257, APP_COMMON, "CER", "CEA", proxiable=False),
    CommandDef("Device-Watchdog", 280, APP_COMMON, "DWR", "DWA", proxiable=False),
    CommandDef("Disconnect-Peer", 282, APP_COMMON, "DPR", "DPA", proxiable=False),
    CommandDef("Accounting", 271, APP_ACCOUNTING, "ACR", "ACA"),
)

#: The base protocol's dictionary. Applications extend it with their rows
#: (:mod:`clearwater.diameter.apps.cx`, :mod:`clearwater.diameter.apps.rf`).
BASE = Dictionary(BASE_AVPS, BASE_COMMANDS)
