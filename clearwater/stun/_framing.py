"""TURN ChannelData (RFC 8656 §12.4-§12.6) and stream framing of STUN and ChannelData, sans-IO.

- ChannelData is a 4-byte header, channel number and data length,
  then the data. Over UDP padding to 4 bytes is optional; over TCP and TLS it is required
  (§12.5), so the framer expects it there.
- The first two bits tell the two apart (RFC 8656 §12, RFC 7983 §7): 00 is a STUN message
  (RFC 8489 §5), 01 ChannelData. Channel numbers are 0x4000-0x7FFF, RFC 5766 §11's range: RFC
  8656 §12 narrowed it to 0x4000-0x4FFF (keeping the rest for DTLS-SRTP multiplexing, RFC 7983),
  but coturn's clients still pick numbers above 0x5000, and a TURN server that refused them would
  fail them; the first two bits still tell ChannelData from STUN, DTLS and RTP.
- On a stream (RFC 8489 §6.2.2) a STUN message is 20 header bytes plus its length field.
  :class:`StreamFramer` cuts the byte stream into whole frames and hands back their bytes, which
  the shell passes to :func:`parse_datagram` exactly as it would a UDP datagram.
"""

from __future__ import annotations

from typing import Optional, Union

import attrs

from clearwater.errors import ParseError
from clearwater.stun._codec import HEADER_SIZE, Message, parse_message

__all__ = [
    "MAX_FRAME_SIZE",
    "ChannelData",
    "StreamFramer",
    "parse_channel_data",
    "parse_datagram",
]

#: The largest legal frame: a STUN message with a 65532-byte body. ChannelData frames are at
#: most 4 + 65535 + 1 bytes.
MAX_FRAME_SIZE = HEADER_SIZE + 0xFFFC

_MIN_CHANNEL = 0x4000
_MAX_CHANNEL = 0x7FFF


def _check_channel(instance: object, attribute: object, value: int) -> None:
    if not _MIN_CHANNEL <= value <= _MAX_CHANNEL:
        raise ValueError("channel number must be 0x4000-0x7FFF")


def _check_data(instance: object, attribute: object, value: bytes) -> None:
    if len(value) > 0xFFFF:
        raise ValueError("ChannelData holds at most 65535 bytes")


@attrs.frozen
class ChannelData:
    """A ChannelData message (RFC 8656 §12.4): a channel number and application data."""

    channel: int = attrs.field(validator=_check_channel)
    data: bytes = attrs.field(validator=_check_data)

    def encode(self, *, pad: bool = False) -> bytes:
        """The message on the wire; ``pad=True`` zero-pads it to 4 bytes, as TCP and TLS
        require (§12.5)."""
        n = len(self.data)
        header = ((self.channel << 16) | n).to_bytes(4, "big")
        if pad and n % 4:
            return header + self.data + bytes(-n % 4)
        return header + self.data

    def __bytes__(self) -> bytes:
        return self.encode()


def parse_channel_data(data: bytes) -> ChannelData:
    """Parse one ChannelData message. Up to 3 padding bytes may follow the data.

    :raises ParseError: if it is too short, for a channel number outside 0x4000-0x7FFF, or if
        the bytes do not match the length field.
    """
    n = len(data)
    if n < 4:
        raise ParseError("ChannelData too short")
    channel = (data[0] << 8) | data[1]
    if not _MIN_CHANNEL <= channel <= _MAX_CHANNEL:
        raise ParseError("Bad channel number")
    length = (data[2] << 8) | data[3]
    if 4 + length > n:
        raise ParseError("Truncated ChannelData")
    if n - 4 - length > 3:
        raise ParseError("Trailing bytes after ChannelData")
    return ChannelData(channel, bytes(data[4 : 4 + length]))


def parse_datagram(data: bytes) -> Union[Message, ChannelData]:
    """Parse a UDP datagram, or a frame from :class:`StreamFramer`, as STUN or ChannelData.

    :raises ParseError: if it is neither, or is malformed.
    """
    if not data:
        raise ParseError("Empty datagram")
    top = data[0] >> 6
    if top == 0:
        return parse_message(data)
    if top == 1:
        return parse_channel_data(data)
    raise ParseError("Not STUN or ChannelData")


class StreamFramer:
    """Cut a TCP or TLS byte stream into STUN messages and padded ChannelData frames.

    :param max_frame_size: the largest frame accepted; a frame header announcing more raises
        ``ParseError("Frame too large")``. At most one incomplete frame is held between calls.

    :meth:`feed` returns the bytes of each whole frame, in stream order. Bytes that start neither
    a STUN message nor ChannelData raise ``ParseError``, as do a STUN length that is not a
    multiple of 4 and a reserved channel number. After an error the framer is broken: every
    later :meth:`feed` raises it again, and the shell closes the connection.
    """

    def __init__(self, *, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        if max_frame_size < HEADER_SIZE:
            raise ValueError("max_frame_size must hold a STUN header")
        self._max_frame_size = max_frame_size
        self._buf = bytearray()
        self._start = 0  # offset of the first byte not yet framed
        self._error: Optional[ParseError] = None

    @property
    def buffered(self) -> int:
        """The number of bytes held but not yet framed."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes. Return the frames they complete.

        :raises ParseError: if the stream is not STUN/ChannelData framing, now or before.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        self._buf += data
        frames: list[bytes] = []
        buf = self._buf
        try:
            while True:
                size = self._frame_size()
                start = self._start
                if size is None or len(buf) - start < size:
                    break
                frames.append(bytes(buf[start : start + size]))
                self._start = start + size
        except ParseError as e:
            self._error = e
            self._buf = bytearray()
            self._start = 0
            raise
        start = self._start
        if start == len(buf):
            buf.clear()
            self._start = 0
        elif start >= len(buf) - start:
            del buf[:start]
            self._start = 0
        return frames

    def detach(self) -> bytes:
        """Stop framing: return the bytes held and forget them. An RFC 6062 data connection
        switches to raw relaying after ConnectionBind; bytes already received belong to it."""
        rest = bytes(self._buf[self._start :])
        self._buf = bytearray()
        self._start = 0
        return rest

    def _frame_size(self) -> Optional[int]:
        """The size of the frame at the buffer's start, or ``None`` if its header is partial."""
        buf = self._buf
        start = self._start
        available = len(buf) - start
        if available == 0:
            return None
        first = buf[start]
        top = first >> 6
        if top >= 2:
            raise ParseError("Bad frame start")
        if available < 4:
            return None
        length = (buf[start + 2] << 8) | buf[start + 3]
        if top == 0:
            if length & 3:
                raise ParseError("Length not a multiple of 4")
            size = HEADER_SIZE + length
        else:
            size = 4 + length + (-length % 4)
        if size > self._max_frame_size:
            raise ParseError("Frame too large")
        return size
