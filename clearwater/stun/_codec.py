"""STUN messages (RFC 8489 §5, §6, §7, §14.5-§14.7), sans-IO.

- The header (§5): two zero bits, a 14-bit message type interleaving a 12-bit method and a 2-bit
  class (``M11-M7 C1 M6-M4 C0 M3-M0``), the body length (a multiple of 4), the magic cookie
  0x2112A442 and a 96-bit transaction id. Attributes are type-length-value, each padded to 4
  bytes (§14); they are kept in order, repeats included, and types not in the table keep their
  raw value.
- RFC 3489 messages (RFC 8489 §11, RFC 5389 §12) carry a 128-bit transaction id where the cookie
  would be. They are accepted for the Binding method only, so a server can answer classic STUN
  clients; :attr:`Message.legacy` marks them and they are encoded back without the cookie. Other
  methods without the cookie are refused.
- MESSAGE-INTEGRITY (§14.5, HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 (§14.6, HMAC-SHA256 truncated to
  16-32 bytes) and FINGERPRINT (§14.7, CRC-32 XOR 0x5354554E) are checked over the bytes as
  received up to the attribute, with the header's length field set to end just after it. The
  received bytes matter: RFC 5769 §2.1 pads USERNAME with spaces, which a re-encoding would not
  reproduce.
- After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count, after
  MESSAGE-INTEGRITY-SHA256 only FINGERPRINT, and nothing after FINGERPRINT (§14.5-§14.7: agents
  MUST ignore the rest). :func:`parse_message` drops such attributes.
- :func:`unknown_comprehension_required` lists the attribute types a server must report with
  420 (Unknown Attribute) and UNKNOWN-ATTRIBUTES (§6.3.1, §14.13).

Every problem with the input raises :class:`~clearwater.errors.ParseError` with a short reason.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct
import zlib
from collections.abc import Iterable
from typing import Any, Optional, TypeVar, Union, overload

import attrs

from clearwater.errors import ParseError
from clearwater.stun._attributes import (
    ATTRIBUTES_BY_NAME,
    ATTRIBUTES_BY_TYPE,
    Attr,
    AttributeType,
)

__all__ = [
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "MAGIC_COOKIE",
    "AttributeKey",
    "Class",
    "Message",
    "Method",
    "new_transaction_id",
    "parse_message",
    "unknown_comprehension_required",
]

T = TypeVar("T")

#: The fixed value of header bytes 4-7 (RFC 8489 §5).
MAGIC_COOKIE = 0x2112A442
#: XORed into the CRC-32 of FINGERPRINT (RFC 8489 §14.7).
FINGERPRINT_XOR = 0x5354554E
#: The STUN header is 20 bytes.
HEADER_SIZE = 20

_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_HEADER = struct.Struct("!HH")
_TLV = struct.Struct("!HH")
_MI = Attr.MESSAGE_INTEGRITY.code
_MI256 = Attr.MESSAGE_INTEGRITY_SHA256.code
_FP = Attr.FINGERPRINT.code
_TRAILER = frozenset((_MI, _MI256, _FP))


class Method(enum.IntEnum):
    """STUN methods: Binding (RFC 8489 §18.2), TURN (RFC 8656 §17) and RFC 6062 §6.1."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class Class(enum.IntEnum):
    """The message class, the two C bits of the message type (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


_METHODS = {int(m): m for m in Method}
_CLASSES = tuple(Class)

#: How callers name an attribute: a table row, its IANA name, or its type code.
AttributeKey = Union[AttributeType[Any], str, int]


def _message_type(method: int, message_class: int) -> int:
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def _to_method(value: int) -> int:
    if not 0 <= value <= 0xFFF:
        raise ValueError("method must be 0-0xFFF")
    return _METHODS.get(value, value)


def _code(key: AttributeKey) -> int:
    if isinstance(key, AttributeType):
        return key.code
    if isinstance(key, str):
        row = ATTRIBUTES_BY_NAME.get(key)
        if row is None:
            raise KeyError(f"unknown attribute name {key!r}")
        return row.code
    if not 0 <= key <= 0xFFFF:
        raise ValueError("attribute type must be 0-0xFFFF")
    return key


def _to_attributes(
    attributes: Iterable[tuple[AttributeKey, Any]],
) -> tuple[tuple[int, Any], ...]:
    return tuple((_code(key), value) for key, value in attributes)


def _check_transaction_id(message: Message, attribute: Any, value: bytes) -> None:
    if len(value) == 16:
        if message.method != Method.BINDING:
            raise ValueError("RFC 3489 (16-byte transaction id) messages are Binding only")
    elif len(value) != 12:
        raise ValueError("transaction id must be 12 bytes (16 for RFC 3489)")


def new_transaction_id() -> bytes:
    """A fresh, cryptographically random 96-bit transaction id (RFC 8489 §5)."""
    return secrets.token_bytes(12)


@attrs.frozen
class Message:
    """A STUN message as plain data.

    :ivar method: a :class:`Method` member, or a plain int for a method we do not know.
    :ivar message_class: request, indication, success or error response.
    :ivar transaction_id: 12 bytes; 16 bytes for an RFC 3489 message (see :attr:`legacy`).
    :ivar attributes: ``(type code, value)`` pairs in message order. Values are those of the
        table row (:class:`~clearwater.stun.Attr`) for known types, and raw ``bytes`` for
        others. The constructor also takes a row or an IANA name instead of the type code.
    :ivar raw: the bytes this message was parsed from, or ``None`` if it was built here.
        Integrity and fingerprint checks use them. :func:`attrs.evolve` does not copy them.
    """

    method: int = attrs.field(converter=_to_method)
    message_class: Class
    transaction_id: bytes = attrs.field(validator=_check_transaction_id)
    attributes: tuple[tuple[int, Any], ...] = attrs.field(default=(), converter=_to_attributes)
    raw: Optional[bytes] = attrs.field(init=False, default=None, eq=False, repr=False)
    # Offsets in ``raw`` of the MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    # attributes that count (-1: none).
    _trailer: tuple[int, int, int] = attrs.field(
        init=False, default=(-1, -1, -1), eq=False, repr=False
    )

    @property
    def legacy(self) -> bool:
        """``True`` for an RFC 3489 message: no magic cookie, a 16-byte transaction id."""
        return len(self.transaction_id) == 16

    @property
    def message_type(self) -> int:
        """The 14-bit message type of the header."""
        return _message_type(self.method, self.message_class)

    @overload
    def get(self, key: AttributeType[T]) -> Optional[T]: ...

    @overload
    def get(self, key: Union[str, int]) -> Any: ...

    def get(self, key: AttributeKey) -> Any:
        """The value of the first attribute of this type, or ``None``."""
        code = _code(key)
        for attr_code, value in self.attributes:
            if attr_code == code:
                return value
        return None

    @overload
    def get_all(self, key: AttributeType[T]) -> list[T]: ...

    @overload
    def get_all(self, key: Union[str, int]) -> list[Any]: ...

    def get_all(self, key: AttributeKey) -> list[Any]:
        """The values of every attribute of this type, in message order."""
        code = _code(key)
        return [value for attr_code, value in self.attributes if attr_code == code]

    def __contains__(self, key: AttributeKey) -> bool:
        code = _code(key)
        return any(attr_code == code for attr_code, _ in self.attributes)

    def _header(self, length: int) -> bytes:
        tail = self.transaction_id if self.legacy else _COOKIE + self.transaction_id
        return _HEADER.pack(self.message_type, length) + tail

    def encode(
        self,
        integrity_key: Optional[bytes] = None,
        *,
        sha1: bool = True,
        sha256: bool = False,
        fingerprint: bool = False,
    ) -> bytes:
        """The message on the wire, attributes zero-padded.

        :param integrity_key: if given, existing MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and
            FINGERPRINT attributes are dropped and fresh ones appended: MESSAGE-INTEGRITY if
            ``sha1``, then a 32-byte MESSAGE-INTEGRITY-SHA256 if ``sha256`` (RFC 8489 §14.5,
            §14.6). Use :func:`short_term_key` or :func:`long_term_key` to make the key.
        :param fingerprint: drop any FINGERPRINT and append a fresh one, last (§14.7).
        :raises ValueError: if a value cannot be encoded or the message exceeds 64 KiB.
        :raises TypeError: if a value is of the wrong type, e.g. not ``bytes`` for a type that
            is not in the table.
        """
        if integrity_key is not None and not (sha1 or sha256):
            raise ValueError("an integrity key needs sha1 or sha256")
        if integrity_key is not None:
            skip: frozenset[int] = _TRAILER
        elif fingerprint:
            skip = frozenset((_FP,))
        else:
            skip = frozenset()
        xor_key = self._header(0)[4:]
        parts: list[bytes] = []
        for code, value in self.attributes:
            if code in skip:
                continue
            row = ATTRIBUTES_BY_TYPE.get(code)
            try:
                if row is not None:
                    data = row.pack(value, xor_key)
                elif isinstance(value, (bytes, bytearray)):
                    data = bytes(value)
                else:
                    raise TypeError(f"attribute 0x{code:04X} is not in the table: give bytes")
            except struct.error as e:
                raise ValueError(f"attribute 0x{code:04X}: {e}") from None
            n = len(data)
            if n > 0xFFFF:
                raise ValueError(f"attribute 0x{code:04X} is longer than 65535 bytes")
            parts += (_TLV.pack(code, n), data, bytes(-n % 4))
        body = b"".join(parts)
        if integrity_key is not None:
            if sha1:
                mac = hmac.new(integrity_key, self._header(len(body) + 24) + body, hashlib.sha1)
                body += _TLV.pack(_MI, 20) + mac.digest()
            if sha256:
                mac = hmac.new(integrity_key, self._header(len(body) + 36) + body, hashlib.sha256)
                body += _TLV.pack(_MI256, 32) + mac.digest()
        if fingerprint:
            crc = zlib.crc32(self._header(len(body) + 8) + body) ^ FINGERPRINT_XOR
            body += _TLV.pack(_FP, 4) + crc.to_bytes(4, "big")
        if len(body) > 0xFFFF:
            raise ValueError("STUN message body is longer than 65535 bytes")
        return self._header(len(body)) + body

    def __bytes__(self) -> bytes:
        return self.encode()

    def _received(self) -> tuple[bytes, tuple[int, int, int]]:
        if self.raw is not None:
            return self.raw, self._trailer
        parsed = parse_message(self.encode())
        assert parsed.raw is not None
        return parsed.raw, parsed._trailer

    def check_integrity(self, key: bytes) -> bool:
        """``True`` if MESSAGE-INTEGRITY is present and matches ``key`` (RFC 8489 §14.5)."""
        raw, (offset, _, _) = self._received()
        if offset < 0:
            return False
        mac = hmac.new(key, _prefix(raw, offset, 24), hashlib.sha1).digest()
        return hmac.compare_digest(mac, raw[offset + 4 : offset + 24])

    def check_integrity_sha256(self, key: bytes) -> bool:
        """``True`` if MESSAGE-INTEGRITY-SHA256 is present and matches ``key`` (RFC 8489
        §14.6), comparing as many leading bytes of the HMAC as the attribute holds."""
        raw, (_, offset, _) = self._received()
        if offset < 0:
            return False
        n = (raw[offset + 2] << 8) | raw[offset + 3]
        mac = hmac.new(key, _prefix(raw, offset, 4 + n), hashlib.sha256).digest()
        return hmac.compare_digest(mac[:n], raw[offset + 4 : offset + 4 + n])

    def check_fingerprint(self) -> bool:
        """``True`` if FINGERPRINT is present and matches (RFC 8489 §14.7)."""
        raw, (_, _, offset) = self._received()
        if offset < 0:
            return False
        crc = zlib.crc32(_prefix(raw, offset, 8)) ^ FINGERPRINT_XOR
        return crc == int.from_bytes(raw[offset + 4 : offset + 8], "big")


def _prefix(raw: bytes, offset: int, size: int) -> bytes:
    """``raw`` up to ``offset`` with the length field ending the message ``size`` bytes later."""
    return raw[:2] + (offset + size - HEADER_SIZE).to_bytes(2, "big") + raw[4:offset]


def parse_message(data: bytes) -> Message:
    """Parse one STUN message: a whole UDP datagram or one frame from :class:`StreamFramer`.

    :raises ParseError: for anything that is not a well-formed STUN message.
    """
    n = len(data)
    if n < HEADER_SIZE:
        raise ParseError("STUN message too short")
    message_type, length = _HEADER.unpack_from(data)
    if message_type & 0xC000:
        raise ParseError("First two bits not zero")
    if length & 3:
        raise ParseError("Length not a multiple of 4")
    if HEADER_SIZE + length > n:
        raise ParseError("Truncated STUN message")
    if HEADER_SIZE + length < n:
        raise ParseError("Trailing bytes after STUN message")
    method = (
        (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    )
    message_class = _CLASSES[((message_type >> 4) & 1) | ((message_type >> 7) & 2)]
    data = bytes(data)
    xor_key = data[4:HEADER_SIZE]
    if data[4:8] == _COOKIE:
        transaction_id = data[8:HEADER_SIZE]
    elif method == Method.BINDING:
        transaction_id = xor_key
    else:
        raise ParseError("Bad magic cookie")
    attributes: list[tuple[int, Any]] = []
    trailer = [-1, -1, -1]
    phase = 0  # 0: before MESSAGE-INTEGRITY; 1: after it; 2: after ...-SHA256; 3: after FP
    pos = HEADER_SIZE
    while pos < n:
        code, size = _TLV.unpack_from(data, pos)
        start = pos + 4
        end = start + size
        if end > n:
            raise ParseError("Attribute overruns message")
        if phase == 0:
            keep = True
        elif phase == 1:
            keep = code in (_MI256, _FP)
        else:
            keep = phase == 2 and code == _FP
        if keep:
            if code == _MI and phase == 0:
                trailer[0], phase = pos, 1
            elif code == _MI256:
                trailer[1], phase = pos, 2
            elif code == _FP:
                trailer[2], phase = pos, 3
            row = ATTRIBUTES_BY_TYPE.get(code)
            if row is None:
                attributes.append((code, data[start:end]))
            else:
                try:
                    attributes.append((code, row.unpack(data[start:end], xor_key)))
                except ParseError as e:
                    raise ParseError(f"{row.name}: {e.reason}") from None
        pos = end + (-size % 4)
    message = Message(method, message_class, transaction_id, attributes)
    object.__setattr__(message, "raw", data)
    object.__setattr__(message, "_trailer", tuple(trailer))
    return message


def unknown_comprehension_required(message: Message) -> tuple[int, ...]:
    """The comprehension-required types (0x0000-0x7FFF) in ``message`` that are not in the
    attribute table, once each, in message order. A server answers a request holding any with
    420 (Unknown Attribute) listing them in UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1, §14.13)."""
    unknown: dict[int, None] = {}
    for code, _ in message.attributes:
        if code < 0x8000 and code not in ATTRIBUTES_BY_TYPE:
            unknown[code] = None
    return tuple(unknown)
