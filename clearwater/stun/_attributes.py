"""The STUN attribute table: one row per attribute type, with its value codec.

Rows cover:

- RFC 8489 §14: MAPPED-ADDRESS (§14.1), XOR-MAPPED-ADDRESS (§14.2), USERNAME (§14.3), USERHASH
  (§14.4), MESSAGE-INTEGRITY (§14.5), MESSAGE-INTEGRITY-SHA256 (§14.6), FINGERPRINT (§14.7),
  ERROR-CODE (§14.8), REALM (§14.9), NONCE (§14.10), PASSWORD-ALGORITHMS (§14.11),
  PASSWORD-ALGORITHM (§14.12), UNKNOWN-ATTRIBUTES (§14.13), SOFTWARE (§14.14), ALTERNATE-SERVER
  (§14.15) and ALTERNATE-DOMAIN (§14.16);
- RFC 8656 §18 (TURN): CHANNEL-NUMBER, LIFETIME, XOR-PEER-ADDRESS, DATA, XOR-RELAYED-ADDRESS,
  REQUESTED-ADDRESS-FAMILY, EVEN-PORT, REQUESTED-TRANSPORT, DONT-FRAGMENT, RESERVATION-TOKEN,
  ADDITIONAL-ADDRESS-FAMILY, ADDRESS-ERROR-CODE and ICMP;
- RFC 6062 §6.2.1: CONNECTION-ID;
- RFC 8445 §16.1 (ICE): PRIORITY, USE-CANDIDATE, ICE-CONTROLLED, ICE-CONTROLLING;
- RFC 5780 §7.3 and §7.4: RESPONSE-ORIGIN and OTHER-ADDRESS.

Each row is an :class:`AttributeType` holding the type code, the IANA name and a ``pack`` /
``unpack`` pair. Both take the 16-byte XOR key that follows the header's length field (the magic
cookie then the transaction id, RFC 8489 §14.2; the whole 16-byte id for an RFC 3489 message);
only the XOR-address rows use it. ``unpack`` raises :class:`~clearwater.errors.ParseError` with a
short detail, which the message parser prefixes with the attribute name. ``pack`` raises
``ValueError`` or ``TypeError`` for a value it cannot encode; it accepts everything ``unpack``
returns, so a parsed message can always be encoded again. Text limits are the receive limits of
RFC 8489 (fewer than 128 characters, at most 763 bytes), not the tighter send limits.

Adding an attribute is one row in :class:`Attr`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable, Generic, TypeVar

import attrs

from clearwater.errors import ParseError

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTES_BY_NAME",
    "ATTRIBUTES_BY_TYPE",
    "ERROR_REASONS",
    "Address",
    "AddressErrorCode",
    "AlgorithmEntry",
    "Attr",
    "AttributeType",
    "ErrorCode",
    "Icmp",
]

T = TypeVar("T")

#: A transport address: host (dotted quad or RFC 5952 IPv6 text) and port.
Address = tuple[str, int]

#: Reason phrases of the error codes of RFC 8489 §14.8, RFC 8656 §19, RFC 6062 §6.3 and
#: RFC 8445 §16.2. :class:`ErrorCode` uses them when no reason is given.
ERROR_REASONS: dict[int, str] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    405: "Mobility Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}

_MAX_TEXT_CHARS = 127  # "fewer than 128 characters"
_MAX_TEXT_BYTES = 763  # "as long as 763 bytes when decoding them"
_MAX_DOMAIN_BYTES = 255  # RFC 8489 §14.16


@attrs.frozen
class AttributeType(Generic[T]):
    """One row of the attribute table.

    :ivar code: the 16-bit attribute type. Codes below 0x8000 are comprehension-required.
    :ivar name: the IANA name, e.g. ``"XOR-MAPPED-ADDRESS"``.
    :ivar pack: ``pack(value, xor_key) -> bytes``, the value without padding.
    :ivar unpack: ``unpack(data, xor_key) -> value``; raises ``ParseError``.
    """

    code: int
    name: str
    pack: Callable[[T, bytes], bytes] = attrs.field(eq=False, repr=False)
    unpack: Callable[[bytes, bytes], T] = attrs.field(eq=False, repr=False)

    @property
    def comprehension_required(self) -> bool:
        """``True`` for codes 0x0000-0x7FFF (RFC 8489 §14)."""
        return self.code < 0x8000


def _reason_for(instance: Any) -> str:
    return ERROR_REASONS.get(instance.code, "")


def _check_code(instance: Any, attribute: Any, value: int) -> None:
    if not 300 <= value <= 699:
        raise ValueError("error code must be 300-699")


@attrs.frozen
class ErrorCode:
    """The ERROR-CODE value (RFC 8489 §14.8): a code 300-699 and a reason phrase."""

    code: int = attrs.field(validator=_check_code)
    reason: str = attrs.field(default=attrs.Factory(_reason_for, takes_self=True))


@attrs.frozen
class AddressErrorCode:
    """The ADDRESS-ERROR-CODE value (RFC 8656 §18.12): the address family the error is about
    (0x01 IPv4, 0x02 IPv6), then a code and reason as in ERROR-CODE."""

    family: int
    code: int = attrs.field(validator=_check_code)
    reason: str = attrs.field(default=attrs.Factory(_reason_for, takes_self=True))


@attrs.frozen
class Icmp:
    """The ICMP value (RFC 8656 §18.13): type and code of an ICMP packet from a peer, and the
    32-bit error data (e.g. the MTU of a "fragmentation needed").

    On the wire: 16 reserved bits, the type byte, the code byte, then the error data. (The
    RFC's figure draws 7 type bits and 9 code bits; ICMP types and codes are bytes, and that is
    what is sent.)"""

    icmp_type: int
    icmp_code: int
    error_data: int = 0


@attrs.frozen
class AlgorithmEntry:
    """One entry of PASSWORD-ALGORITHMS, or the PASSWORD-ALGORITHM value (RFC 8489 §14.11,
    §14.12): an algorithm number (see ``PasswordAlgorithm``) and its parameters."""

    algorithm: int
    parameters: bytes = b""


# -- value codecs -----------------------------------------------------------------------------


def _pack_ip(host: str) -> tuple[int, bytes]:
    for family, number in ((socket.AF_INET, 1), (socket.AF_INET6, 2)):
        try:
            return number, socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
    raise ValueError(f"not an IP address: {host!r}")


def _check_port(port: int) -> int:
    if not 0 <= port <= 0xFFFF:
        raise ValueError("port must be 0-65535")
    return port


def _unpack_ip(data: bytes) -> tuple[int, str]:
    """Family byte at 1, port at 2-3, address from 4. Returns ``(port, host)``."""
    if len(data) < 4:
        raise ParseError("bad address length")
    family = data[1]
    port = (data[2] << 8) | data[3]
    if family == 1:
        if len(data) != 8:
            raise ParseError("bad address length")
        return port, socket.inet_ntop(socket.AF_INET, data[4:8])
    if family == 2:
        if len(data) != 20:
            raise ParseError("bad address length")
        return port, socket.inet_ntop(socket.AF_INET6, data[4:20])
    raise ParseError("bad address family")


def _pack_address(value: Address, xor_key: bytes) -> bytes:
    host, port = value
    family, address = _pack_ip(host)
    return struct.pack("!BBH", 0, family, _check_port(port)) + address


def _unpack_address(data: bytes, xor_key: bytes) -> Address:
    port, host = _unpack_ip(data)
    return host, port


def _xor(data: bytes, key: bytes) -> bytes:
    n = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(key[:n], "big")).to_bytes(n, "big")


def _pack_xor_address(value: Address, xor_key: bytes) -> bytes:
    host, port = value
    family, address = _pack_ip(host)
    x_port = _check_port(port) ^ ((xor_key[0] << 8) | xor_key[1])
    return struct.pack("!BBH", 0, family, x_port) + _xor(address, xor_key)


def _unpack_xor_address(data: bytes, xor_key: bytes) -> Address:
    if len(data) < 4:
        raise ParseError("bad address length")
    family = data[1]
    if family not in (1, 2):
        raise ParseError("bad address family")
    if len(data) != (8 if family == 1 else 20):
        raise ParseError("bad address length")
    plain = data[:4] + _xor(data[4:], xor_key)
    port, host = _unpack_ip(plain)
    return host, port ^ ((xor_key[0] << 8) | xor_key[1])


def _fixed_bytes(
    size: int,
) -> tuple[Callable[[bytes, bytes], bytes], Callable[[bytes, bytes], bytes]]:
    def pack(value: bytes, xor_key: bytes) -> bytes:
        if len(value) != size:
            raise ValueError(f"value must be {size} bytes")
        return bytes(value)

    def unpack(data: bytes, xor_key: bytes) -> bytes:
        if len(data) != size:
            raise ParseError("bad length")
        return data

    return pack, unpack


def _pack_bytes(value: bytes, xor_key: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError("value must be bytes")
    return bytes(value)


def _unpack_bytes(data: bytes, xor_key: bytes) -> bytes:
    return data


def _pack_integrity_sha256(value: bytes, xor_key: bytes) -> bytes:
    if not (16 <= len(value) <= 32 and len(value) % 4 == 0):
        raise ValueError("MESSAGE-INTEGRITY-SHA256 is 16-32 bytes, a multiple of 4")
    return bytes(value)


def _unpack_integrity_sha256(data: bytes, xor_key: bytes) -> bytes:
    if not (16 <= len(data) <= 32 and len(data) % 4 == 0):
        raise ParseError("bad length")
    return data


def _unsigned(size: int) -> tuple[Callable[[int, bytes], bytes], Callable[[bytes, bytes], int]]:
    limit = 1 << (8 * size)

    def pack(value: int, xor_key: bytes) -> bytes:
        if not 0 <= value < limit:
            raise ValueError(f"value must fit in {size} bytes")
        return value.to_bytes(size, "big")

    def unpack(data: bytes, xor_key: bytes) -> int:
        if len(data) != size:
            raise ParseError("bad length")
        return int.from_bytes(data, "big")

    return pack, unpack


def _leading(size: int) -> tuple[Callable[[int, bytes], bytes], Callable[[bytes, bytes], int]]:
    """A 1- or 2-byte number followed by reserved bytes up to 4 (RFFU, ignored on receipt)."""
    limit = 1 << (8 * size)

    def pack(value: int, xor_key: bytes) -> bytes:
        if not 0 <= value < limit:
            raise ValueError(f"value must fit in {size} bytes")
        return value.to_bytes(size, "big") + bytes(4 - size)

    def unpack(data: bytes, xor_key: bytes) -> int:
        if len(data) != 4:
            raise ParseError("bad length")
        return int.from_bytes(data[:size], "big")

    return pack, unpack


def _pack_flag(value: bool, xor_key: bytes) -> bytes:
    if value is not True:
        raise ValueError("a flag attribute's value is True")
    return b""


def _unpack_flag(data: bytes, xor_key: bytes) -> bool:
    if data:
        raise ParseError("bad length")
    return True


def _pack_even_port(value: bool, xor_key: bytes) -> bytes:
    return b"\x80" if value else b"\x00"


def _unpack_even_port(data: bytes, xor_key: bytes) -> bool:
    if len(data) != 1:
        raise ParseError("bad length")
    return bool(data[0] & 0x80)


def _decode_text(data: bytes) -> str:
    if len(data) > _MAX_TEXT_BYTES:
        raise ParseError("too long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("not UTF-8") from None
    if len(text) > _MAX_TEXT_CHARS:
        raise ParseError("too long")
    return text


def _encode_text(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > _MAX_TEXT_BYTES or len(value) > _MAX_TEXT_CHARS:
        raise ValueError("text must be fewer than 128 characters and at most 763 bytes")
    return data


def _pack_text(value: str, xor_key: bytes) -> bytes:
    return _encode_text(value)


def _unpack_text(data: bytes, xor_key: bytes) -> str:
    return _decode_text(data)


def _pack_username(value: str, xor_key: bytes) -> bytes:
    data = value.encode("utf-8")
    if len(data) > _MAX_TEXT_BYTES:
        raise ValueError("USERNAME must be at most 763 bytes")
    return data


def _unpack_username(data: bytes, xor_key: bytes) -> str:
    if len(data) > _MAX_TEXT_BYTES:
        raise ParseError("too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("not UTF-8") from None


def _pack_domain(value: str, xor_key: bytes) -> bytes:
    data = value.encode("ascii")
    if len(data) > _MAX_DOMAIN_BYTES:
        raise ValueError("ALTERNATE-DOMAIN must be at most 255 bytes")
    return data


def _unpack_domain(data: bytes, xor_key: bytes) -> str:
    if len(data) > _MAX_DOMAIN_BYTES:
        raise ParseError("too long")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ParseError("not ASCII") from None


def _pack_code(code: int) -> bytes:
    if not 300 <= code <= 699:
        raise ValueError("error code must be 300-699")
    return bytes((code // 100, code % 100))


def _unpack_code(data: bytes) -> int:
    """The class (low 3 bits of the first byte) and number bytes of an error code."""
    error_class = data[0] & 0x07
    number = data[1]
    if not 3 <= error_class <= 6 or number > 99:
        raise ParseError("bad error code")
    return error_class * 100 + number


def _pack_error_code(value: ErrorCode, xor_key: bytes) -> bytes:
    return b"\x00\x00" + _pack_code(value.code) + _encode_text(value.reason)


def _unpack_error_code(data: bytes, xor_key: bytes) -> ErrorCode:
    if len(data) < 4:
        raise ParseError("bad length")
    return ErrorCode(_unpack_code(data[2:4]), _decode_text(data[4:]))


def _pack_address_error_code(value: AddressErrorCode, xor_key: bytes) -> bytes:
    if not 0 <= value.family <= 0xFF:
        raise ValueError("family must fit in a byte")
    return bytes((value.family, 0)) + _pack_code(value.code) + _encode_text(value.reason)


def _unpack_address_error_code(data: bytes, xor_key: bytes) -> AddressErrorCode:
    if len(data) < 4:
        raise ParseError("bad length")
    return AddressErrorCode(data[0], _unpack_code(data[2:4]), _decode_text(data[4:]))


def _pack_icmp(value: Icmp, xor_key: bytes) -> bytes:
    return struct.pack("!HBBI", 0, value.icmp_type, value.icmp_code, value.error_data)


def _unpack_icmp(data: bytes, xor_key: bytes) -> Icmp:
    if len(data) != 8:
        raise ParseError("bad length")
    _, icmp_type, icmp_code, error_data = struct.unpack("!HBBI", data)
    return Icmp(icmp_type, icmp_code, error_data)


def _pack_algorithm(value: AlgorithmEntry) -> bytes:
    n = len(value.parameters)
    return struct.pack("!HH", value.algorithm, n) + bytes(value.parameters) + bytes(-n % 4)


def _unpack_algorithms(data: bytes) -> tuple[AlgorithmEntry, ...]:
    entries = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 4:
            raise ParseError("truncated algorithm")
        algorithm, n = struct.unpack_from("!HH", data, pos)
        start = pos + 4
        if start + n > end:
            raise ParseError("truncated algorithm")
        entries.append(AlgorithmEntry(algorithm, data[start : start + n]))
        pos = start + n + (-n % 4)
    if pos != end:
        raise ParseError("truncated algorithm")
    return tuple(entries)


def _pack_algorithms(value: tuple[AlgorithmEntry, ...], xor_key: bytes) -> bytes:
    return b"".join(_pack_algorithm(entry) for entry in value)


def _unpack_algorithms_attr(data: bytes, xor_key: bytes) -> tuple[AlgorithmEntry, ...]:
    return _unpack_algorithms(data)


def _pack_one_algorithm(value: AlgorithmEntry, xor_key: bytes) -> bytes:
    return _pack_algorithm(value)


def _unpack_one_algorithm(data: bytes, xor_key: bytes) -> AlgorithmEntry:
    entries = _unpack_algorithms(data)
    if len(entries) != 1:
        raise ParseError("bad length")
    return entries[0]


def _pack_unknown_attributes(value: tuple[int, ...], xor_key: bytes) -> bytes:
    return struct.pack(f"!{len(value)}H", *value)


def _unpack_unknown_attributes(data: bytes, xor_key: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        raise ParseError("bad length")
    return struct.unpack(f"!{len(data) // 2}H", data)


_u32 = _unsigned(4)
_u64 = _unsigned(8)
_byte4 = _leading(1)
_short4 = _leading(2)
_mi = _fixed_bytes(20)
_hash32 = _fixed_bytes(32)
_token = _fixed_bytes(8)


class Attr:
    """The attribute table. Each class attribute is one :class:`AttributeType` row; value types
    are those ``Message.get`` returns for it."""

    # RFC 8489 §14, comprehension-required
    MAPPED_ADDRESS = AttributeType(0x0001, "MAPPED-ADDRESS", _pack_address, _unpack_address)
    USERNAME = AttributeType(0x0006, "USERNAME", _pack_username, _unpack_username)
    MESSAGE_INTEGRITY = AttributeType(0x0008, "MESSAGE-INTEGRITY", *_mi)
    ERROR_CODE = AttributeType(0x0009, "ERROR-CODE", _pack_error_code, _unpack_error_code)
    UNKNOWN_ATTRIBUTES = AttributeType(
        0x000A, "UNKNOWN-ATTRIBUTES", _pack_unknown_attributes, _unpack_unknown_attributes
    )
    REALM = AttributeType(0x0014, "REALM", _pack_text, _unpack_text)
    NONCE = AttributeType(0x0015, "NONCE", _pack_text, _unpack_text)
    MESSAGE_INTEGRITY_SHA256 = AttributeType(
        0x001C, "MESSAGE-INTEGRITY-SHA256", _pack_integrity_sha256, _unpack_integrity_sha256
    )
    PASSWORD_ALGORITHM = AttributeType(
        0x001D, "PASSWORD-ALGORITHM", _pack_one_algorithm, _unpack_one_algorithm
    )
    USERHASH = AttributeType(0x001E, "USERHASH", *_hash32)
    XOR_MAPPED_ADDRESS = AttributeType(
        0x0020, "XOR-MAPPED-ADDRESS", _pack_xor_address, _unpack_xor_address
    )
    # RFC 8489 §14, comprehension-optional
    PASSWORD_ALGORITHMS = AttributeType(
        0x8002, "PASSWORD-ALGORITHMS", _pack_algorithms, _unpack_algorithms_attr
    )
    ALTERNATE_DOMAIN = AttributeType(0x8003, "ALTERNATE-DOMAIN", _pack_domain, _unpack_domain)
    SOFTWARE = AttributeType(0x8022, "SOFTWARE", _pack_text, _unpack_text)
    ALTERNATE_SERVER = AttributeType(0x8023, "ALTERNATE-SERVER", _pack_address, _unpack_address)
    FINGERPRINT = AttributeType(0x8028, "FINGERPRINT", *_u32)
    # RFC 8656 §18 (TURN)
    CHANNEL_NUMBER = AttributeType(0x000C, "CHANNEL-NUMBER", *_short4)
    LIFETIME = AttributeType(0x000D, "LIFETIME", *_u32)
    XOR_PEER_ADDRESS = AttributeType(
        0x0012, "XOR-PEER-ADDRESS", _pack_xor_address, _unpack_xor_address
    )
    DATA = AttributeType(0x0013, "DATA", _pack_bytes, _unpack_bytes)
    XOR_RELAYED_ADDRESS = AttributeType(
        0x0016, "XOR-RELAYED-ADDRESS", _pack_xor_address, _unpack_xor_address
    )
    REQUESTED_ADDRESS_FAMILY = AttributeType(0x0017, "REQUESTED-ADDRESS-FAMILY", *_byte4)
    EVEN_PORT = AttributeType(0x0018, "EVEN-PORT", _pack_even_port, _unpack_even_port)
    REQUESTED_TRANSPORT = AttributeType(0x0019, "REQUESTED-TRANSPORT", *_byte4)
    DONT_FRAGMENT = AttributeType(0x001A, "DONT-FRAGMENT", _pack_flag, _unpack_flag)
    RESERVATION_TOKEN = AttributeType(0x0022, "RESERVATION-TOKEN", *_token)
    ADDITIONAL_ADDRESS_FAMILY = AttributeType(0x8000, "ADDITIONAL-ADDRESS-FAMILY", *_byte4)
    ADDRESS_ERROR_CODE = AttributeType(
        0x8001, "ADDRESS-ERROR-CODE", _pack_address_error_code, _unpack_address_error_code
    )
    ICMP = AttributeType(0x8004, "ICMP", _pack_icmp, _unpack_icmp)
    # RFC 6062 §6.2.1 (TURN TCP allocations)
    CONNECTION_ID = AttributeType(0x002A, "CONNECTION-ID", *_u32)
    # RFC 8445 §16.1 (ICE)
    PRIORITY = AttributeType(0x0024, "PRIORITY", *_u32)
    USE_CANDIDATE = AttributeType(0x0025, "USE-CANDIDATE", _pack_flag, _unpack_flag)
    ICE_CONTROLLED = AttributeType(0x8029, "ICE-CONTROLLED", *_u64)
    ICE_CONTROLLING = AttributeType(0x802A, "ICE-CONTROLLING", *_u64)
    # RFC 5780 §7 (NAT behaviour discovery)
    RESPONSE_ORIGIN = AttributeType(0x802B, "RESPONSE-ORIGIN", _pack_address, _unpack_address)
    OTHER_ADDRESS = AttributeType(0x802C, "OTHER-ADDRESS", _pack_address, _unpack_address)


#: Every row of :class:`Attr`, in table order.
ATTRIBUTES: tuple[AttributeType[Any], ...] = tuple(
    row for row in vars(Attr).values() if isinstance(row, AttributeType)
)
#: Rows by type code.
ATTRIBUTES_BY_TYPE: dict[int, AttributeType[Any]] = {row.code: row for row in ATTRIBUTES}
#: Rows by IANA name.
ATTRIBUTES_BY_NAME: dict[str, AttributeType[Any]] = {row.name: row for row in ATTRIBUTES}
