# -*- test-case-name: tests.unit.diameter.test_message -*-
"""Diameter messages on the wire: RFC 6733 §3 (header), §4.1 (AVP header), §7 (errors).

:func:`parse_message` turns bytes into a :class:`Message` and ``bytes(message)`` turns it back.
Each :class:`Avp` keeps its flags octet, vendor id and data exactly as received, so an AVP this
node has no dictionary row for (or does not look at) goes out again byte for byte; only the
padding after the data is rewritten, as zeros (RFC 6733 §4.1: padding "MUST be set to zero").
AVP *values* are typed by :mod:`clearwater.diameter.dictionary`; this module knows only
headers, lengths and grouping.

A message that does not parse raises :class:`DiameterDecodeError`, which carries the Diameter
result code RFC 6733 §7.1 gives for the fault, the offending AVP for ``Failed-AVP`` (§7.5), and
the message header when it was readable, so that the receiver can answer a request it could
not parse:

========================================= ==========================================================
fault                                     result code
========================================= ==========================================================
version not 1                             5011 DIAMETER_UNSUPPORTED_VERSION
length not a multiple of 4, below 20,     5015 DIAMETER_INVALID_MESSAGE_LENGTH
or not the bytes given
E bit on a request                        3008 DIAMETER_INVALID_HDR_BITS
an AVP length below its header or past    5014 DIAMETER_INVALID_AVP_LENGTH (Failed-AVP: the AVP
the end of the message (or of its group)  header padded with zeros, as §7.5 allows)
reserved AVP flag bits set                3009 DIAMETER_INVALID_AVP_BITS
========================================= ==========================================================

:class:`Framer` cuts a TCP stream into messages by the 24-bit length in header bytes 1-3 (§3).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

import attrs

from clearwater.errors import ClearwaterError

__all__ = [
    "AVP_FLAG_MANDATORY",
    "AVP_FLAG_PROTECTED",
    "AVP_FLAG_VENDOR",
    "FLAG_ERROR",
    "FLAG_PROXIABLE",
    "FLAG_REQUEST",
    "FLAG_RETRANSMITTED",
    "HEADER_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "Avp",
    "DiameterDecodeError",
    "Framer",
    "FramingError",
    "Header",
    "Message",
    "encode_avps",
    "make_answer",
    "parse_avps",
    "parse_header",
    "parse_message",
]

#: Command flags (RFC 6733 §3): Request, Proxiable, Error, potentially reTransmitted.
FLAG_REQUEST = 0x80
FLAG_PROXIABLE = 0x40
FLAG_ERROR = 0x20
FLAG_RETRANSMITTED = 0x10

#: AVP flags (RFC 6733 §4.1): Vendor-specific, Mandatory, Protected (deprecated, §13).
AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_FLAG_PROTECTED = 0x20
_AVP_FLAGS_RESERVED = 0x1F

HEADER_LENGTH = 20
#: The largest message the 24-bit length can say.
MAX_MESSAGE_LENGTH = (1 << 24) - 1
_MAX_AVP_LENGTH = (1 << 24) - 1
_MAX_COMMAND_CODE = (1 << 24) - 1

_HEADER = struct.Struct("!I I I I I")  # version|length, flags|code, app id, hop-by-hop, e2e
_AVP = struct.Struct("!I I")  # code, flags|length
_VENDOR = struct.Struct("!I")

# RFC 6733 §7.1 result codes this module raises.
_UNSUPPORTED_VERSION = 5011
_INVALID_MESSAGE_LENGTH = 5015
_INVALID_HDR_BITS = 3008
_INVALID_AVP_LENGTH = 5014
_INVALID_AVP_BITS = 3009


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


@attrs.frozen
class Avp:
    """One AVP (RFC 6733 §4.1): ``code``, the ``flags`` octet as sent, ``vendor_id`` (sent
    only when the V flag is set) and ``data``, the value's bytes without padding.

    :meth:`make` builds one with the V flag following ``vendor_id``; a grouped AVP's members
    are :meth:`avps`.
    """

    code: int
    data: bytes
    flags: int = AVP_FLAG_MANDATORY
    vendor_id: int = 0

    @classmethod
    def make(cls, code: int, data: bytes, vendor_id: int = 0, mandatory: bool = True) -> Avp:
        """An AVP with the V flag set iff ``vendor_id`` is not 0 and M as ``mandatory``."""
        flags = (AVP_FLAG_VENDOR if vendor_id else 0) | (AVP_FLAG_MANDATORY if mandatory else 0)
        return cls(code, data, flags, vendor_id)

    @classmethod
    def grouped(
        cls, code: int, members: Iterable[Avp], vendor_id: int = 0, mandatory: bool = True
    ) -> Avp:
        """A Grouped AVP (RFC 6733 §4.4) holding ``members`` in order."""
        return cls.make(code, encode_avps(members), vendor_id, mandatory)

    @property
    def vendor(self) -> bool:
        return bool(self.flags & AVP_FLAG_VENDOR)

    @property
    def mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    @property
    def key(self) -> tuple[int, int]:
        """``(code, vendor id)``, the vendor id 0 without the V flag: what names an AVP."""
        return self.code, self.vendor_id if self.flags & AVP_FLAG_VENDOR else 0

    @property
    def length(self) -> int:
        """The AVP Length field: header and data, without padding."""
        return (12 if self.flags & AVP_FLAG_VENDOR else 8) + len(self.data)

    def avps(self) -> tuple[Avp, ...]:
        """The members of a grouped AVP; :class:`DiameterDecodeError` if the data are not
        AVPs."""
        return parse_avps(self.data)

    def __bytes__(self) -> bytes:
        length = self.length
        if length > _MAX_AVP_LENGTH:
            raise ValueError(f"AVP {self.code} of {length} bytes")
        head = _AVP.pack(self.code, (self.flags << 24) | length)
        if self.flags & AVP_FLAG_VENDOR:
            head += _VENDOR.pack(self.vendor_id)
        return head + self.data + b"\0" * _pad(length)


def encode_avps(avps: Iterable[Avp]) -> bytes:
    """The AVPs one after another, each padded to 32 bits."""
    return b"".join([bytes(avp) for avp in avps])


@attrs.frozen
class Header:
    """The 20-byte message header (RFC 6733 §3)."""

    version: int
    length: int
    flags: int
    command_code: int
    application_id: int
    hop_by_hop: int
    end_to_end: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)


class DiameterDecodeError(ClearwaterError):
    """Bytes that are not a Diameter message (RFC 6733 §7): ``result_code`` for the answer,
    ``failed_avp`` the offending AVP for its Failed-AVP (None when the fault is not an AVP's),
    ``header`` the message header if it could be read (None otherwise)."""

    def __init__(
        self,
        result_code: int,
        reason: str,
        failed_avp: Optional[Avp] = None,
        header: Optional[Header] = None,
    ) -> None:
        super().__init__(f"{result_code} {reason}")
        self.result_code = result_code
        self.reason = reason
        self.failed_avp = failed_avp
        self.header = header


def parse_header(data: bytes) -> Header:
    """The header of ``data`` (at least 20 bytes), unchecked apart from its size."""
    if len(data) < HEADER_LENGTH:
        raise DiameterDecodeError(_INVALID_MESSAGE_LENGTH, "Message shorter than its header")
    word0, word1, app, hbh, e2e = _HEADER.unpack_from(data)
    return Header(word0 >> 24, word0 & 0xFFFFFF, word1 >> 24, word1 & 0xFFFFFF, app, hbh, e2e)


def _avp_fault(data: bytes, offset: int, stop: int) -> Avp:
    """The Failed-AVP for a bad AVP length at ``offset``: its header as far as its own bytes
    (those before ``stop``) go, the rest zeros, and no data (RFC 6733 §7.1.5, §7.5)."""
    head = bytes(data[offset : min(stop, offset + 12)]).ljust(12, b"\0")
    code, word = _AVP.unpack_from(head)
    flags = word >> 24
    vendor_id = _VENDOR.unpack_from(head, 8)[0] if flags & AVP_FLAG_VENDOR else 0
    return Avp(code, b"", flags, vendor_id)


def _parse_avps(data: bytes, start: int, end: int) -> Iterator[Avp]:
    offset = start
    while offset < end:
        if end - offset < 8:
            raise DiameterDecodeError(
                _INVALID_AVP_LENGTH, "AVP header cut short", _avp_fault(data, offset, end)
            )
        code, word = _AVP.unpack_from(data, offset)
        flags = word >> 24
        length = word & 0xFFFFFF
        head = 12 if flags & AVP_FLAG_VENDOR else 8
        if length < head or offset + length > end:
            # A vendor id is read only from within the AVP's own length, never from the next
            # AVP's bytes.
            raise DiameterDecodeError(
                _INVALID_AVP_LENGTH,
                f"AVP {code} has length {length}",
                _avp_fault(data, offset, min(end, offset + max(length, 8))),
            )
        if flags & _AVP_FLAGS_RESERVED:
            vendor_id = _VENDOR.unpack_from(data, offset + 8)[0] if head == 12 else 0
            raise DiameterDecodeError(
                _INVALID_AVP_BITS,
                f"AVP {code} has reserved flag bits set",
                Avp(code, bytes(data[offset + head : offset + length]), flags, vendor_id),
            )
        vendor_id = _VENDOR.unpack_from(data, offset + 8)[0] if head == 12 else 0
        yield Avp(code, bytes(data[offset + head : offset + length]), flags, vendor_id)
        offset += length + _pad(length)
        if offset > end:
            # The last AVP's padding may be missing only at the very end (lenient, as most
            # stacks are): anything else would have failed the length check above.
            return


def parse_avps(data: bytes) -> tuple[Avp, ...]:
    """The AVPs in ``data`` (a message body or a grouped AVP's data)."""
    return tuple(_parse_avps(data, 0, len(data)))


@attrs.frozen
class Message:
    """A Diameter message (RFC 6733 §3): header fields and the AVPs in order."""

    command_code: int
    application_id: int
    avps: tuple[Avp, ...] = ()
    flags: int = FLAG_REQUEST | FLAG_PROXIABLE
    hop_by_hop: int = 0
    end_to_end: int = 0

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    def find(self, code: int, vendor_id: int = 0) -> Optional[Avp]:
        """The first top-level AVP ``(code, vendor_id)``, or None."""
        for avp in self.avps:
            if avp.code == code and avp.key[1] == vendor_id:
                return avp
        return None

    def find_all(self, code: int, vendor_id: int = 0) -> list[Avp]:
        """Every top-level AVP ``(code, vendor_id)``, in order."""
        return [avp for avp in self.avps if avp.code == code and avp.key[1] == vendor_id]

    def __bytes__(self) -> bytes:
        if not 0 <= self.command_code <= _MAX_COMMAND_CODE or not 0 <= self.flags <= 0xFF:
            raise ValueError(f"Command code {self.command_code}, flags {self.flags}")
        body = encode_avps(self.avps)
        length = HEADER_LENGTH + len(body)
        if length > MAX_MESSAGE_LENGTH:
            raise ValueError(f"Diameter message of {length} bytes")
        return (
            _HEADER.pack(
                (1 << 24) | length,
                (self.flags << 24) | self.command_code,
                self.application_id,
                self.hop_by_hop,
                self.end_to_end,
            )
            + body
        )


def parse_message(data: bytes) -> Message:
    """The message ``data`` holds, exactly (its length field must be ``len(data)``)."""
    header = parse_header(data)
    if header.version != 1:
        raise DiameterDecodeError(
            _UNSUPPORTED_VERSION, f"Diameter version {header.version}", header=header
        )
    if header.length != len(data) or header.length % 4:
        raise DiameterDecodeError(
            _INVALID_MESSAGE_LENGTH,
            f"Message length {header.length} for {len(data)} bytes",
            header=header,
        )
    # Reserved command flags are ignored (RFC 6733 §3: "MUST be ... ignored by the receiver").
    if header.flags & FLAG_REQUEST and header.flags & FLAG_ERROR:
        raise DiameterDecodeError(
            _INVALID_HDR_BITS, f"Command flags 0x{header.flags:02x}", header=header
        )
    try:
        avps = tuple(_parse_avps(data, HEADER_LENGTH, len(data)))
    except DiameterDecodeError as e:
        e.header = header
        raise
    return Message(
        header.command_code,
        header.application_id,
        avps,
        header.flags,
        header.hop_by_hop,
        header.end_to_end,
    )


def make_answer(
    request: Message, avps: Sequence[Avp], error: bool = False, session_id: Optional[Avp] = None
) -> Message:
    """The answer to ``request`` (RFC 6733 §6.2): same command code, application id,
    hop-by-hop and end-to-end identifiers, P flag copied, R cleared, E as ``error``. The
    request's Session-Id (263) goes first, as §6.2 and §8.8 require, unless ``avps`` already
    start with one; its Proxy-Info AVPs (284) are appended in order."""
    out: list[Avp] = []
    sid = session_id or request.find(263)
    if sid is not None and not (avps and avps[0].key == (263, 0)):
        out.append(sid)
    out.extend(avps)
    out.extend(request.find_all(284))
    flags = (request.flags & FLAG_PROXIABLE) | (FLAG_ERROR if error else 0)
    return Message(
        request.command_code,
        request.application_id,
        tuple(out),
        flags,
        request.hop_by_hop,
        request.end_to_end,
    )


class FramingError(ClearwaterError):
    """A stream that cannot be cut into messages: a length below the header's or above the
    limit. The connection must be closed: nothing after it can be trusted to line up."""


class Framer:
    """Cuts a byte stream into whole messages by the header's length (RFC 6733 §3), holding at
    most ``max_length`` bytes of a message in progress."""

    def __init__(self, max_length: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._max = max_length

    def feed(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes, in order; :class:`FramingError` on a bad length
        (the whole stream is then unusable)."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        offset = 0
        while len(buffer) - offset >= 4:
            length = int.from_bytes(buffer[offset + 1 : offset + 4], "big")
            if length < HEADER_LENGTH or length > self._max:
                raise FramingError(f"Diameter message length {length}")
            if len(buffer) - offset < length:
                break
            out.append(bytes(buffer[offset : offset + length]))
            offset += length
        if offset:
            del buffer[:offset]
        return out

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)
