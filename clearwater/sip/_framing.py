"""Sans-IO framing of SIP messages on stream transports (TCP, TLS).

What it implements:

- RFC 3261 §18.3: on a stream, Content-Length is mandatory and gives the body's length in octets.
  So a message is a start line and headers up to the first CRLFCRLF, then exactly that many body
  octets. Any further bytes start the next message, which allows pipelining.
- RFC 3261 §7.5: CRLFs before a start line are ignored. The same section allows bare LF line ends;
  this framer does not, and needs CRLF everywhere in the header block. A bare CR or LF there is a
  ``ParseError``, so the framer and the message parser cannot disagree on where headers end.
- RFC 3261 §7.3.1: header names are case-insensitive. Whitespace may come before the colon, values
  may be folded onto continuation lines (lines starting with SP or HTAB), and ``l`` is the compact
  form of Content-Length.
- RFC 5626 §3.5.1 and §4.4.1: the CRLF keep-alive. The flow initiator (the client) sends a
  CRLFCRLF "ping" between messages, and the other side answers with a single CRLF "pong".

:class:`StreamFramer` never touches sockets or Twisted. The shell feeds it the bytes it receives
and acts on the events it returns: it parses each :class:`FramedMessage`, answers each
:class:`KeepAlivePing` with ``b"\\r\\n"``, and closes the connection on :class:`ParseError`.
"""

from __future__ import annotations

import enum
from typing import Optional, Union

import attrs

from clearwater.errors import ParseError

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEADER_SIZE",
    "FramedMessage",
    "FramerEvent",
    "KeepAlivePing",
    "KeepAlivePong",
    "StreamFramer",
]

#: Default cap on the start line and header block, counting the blank line that ends it.
MAX_HEADER_SIZE = 32 * 1024
#: Default cap on a message's Content-Length.
MAX_BODY_SIZE = 128 * 1024

_CR = 0x0D
_LF = 0x0A
_CRLFCRLF = b"\r\n\r\n"
_CONTENT_LENGTH_NAMES = frozenset({b"content-length", b"l"})
# A Content-Length with more digits than this is "absurd": rejected before calling int(), which
# would otherwise do quadratic work on (or, on 3.11+, refuse) very long digit strings.
_MAX_LENGTH_DIGITS = 20


@attrs.frozen
class FramedMessage:
    """Exactly one SIP message: start line, headers, the blank line, then the body."""

    data: bytes


@attrs.frozen
class KeepAlivePing:
    """A CRLFCRLF between messages (RFC 5626 §4.4.1). Answer it with ``b"\\r\\n"``."""


@attrs.frozen
class KeepAlivePong:
    """A CRLF between messages, received by the flow initiator (RFC 5626 §4.4.1)."""


FramerEvent = Union[FramedMessage, KeepAlivePing, KeepAlivePong]


class _Phase(enum.Enum):
    IDLE = "between messages: keep-alives and CRLFs"
    HEADERS = "in a start line and header block, looking for CRLFCRLF"
    BODY = "headers done, waiting for Content-Length body octets"


class StreamFramer:
    """Split a SIP byte stream into messages and keep-alives.

    :param initiator: ``True`` on the side that opened the connection. That side sends the pings,
        so each CRLF it receives between messages is a :class:`KeepAlivePong`. On the accepting
        side (``False``), each CRLFCRLF is a :class:`KeepAlivePing` and a lone CRLF is ignored.
    :param max_header_size: cap on the start line and header block, blank line included.
        Exceeding it raises ``ParseError("Message headers too large", 513)``.
    :param max_body_size: cap on Content-Length. Exceeding it raises
        ``ParseError("Message body too large", 413)``.

    After a :class:`ParseError` the framer is broken: every later :meth:`feed` raises it again.

    Cost is linear in the bytes fed, however they are split. The buffer is a ``bytearray`` with a
    consumed offset (``_start``). It is compacted only when the consumed prefix is at least as long
    as the rest, so each byte is moved at most a constant number of times on average. While a
    header block is incomplete, the CRLFCRLF search resumes at ``_searched - 3`` and the line-end
    check at ``_checked``, so no byte is rescanned more than a constant number of times (the idea
    of h11's ``ReceiveBuffer``). ``_scanned`` counts the bytes both scans examine; tests use it
    to check the linear bound.
    """

    def __init__(
        self,
        *,
        initiator: bool = False,
        max_header_size: int = MAX_HEADER_SIZE,
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        if max_header_size < 1 or max_body_size < 0:
            raise ValueError("max_header_size must be positive and max_body_size non-negative")
        self._initiator = initiator
        self._max_header_size = max_header_size
        self._max_body_size = max_body_size
        self._buf = bytearray()
        self._start = 0  # offset of the first byte not yet framed
        self._phase = _Phase.IDLE
        self._searched = 0  # HEADERS: the CRLFCRLF search covered buf[:_searched]
        self._checked = 0  # HEADERS: line ends in buf[_start:_checked] are valid CRLFs
        self._message_size = 0  # BODY: header block + Content-Length
        self._error: Optional[ParseError] = None
        self._scanned = 0  # total bytes examined by header scans (test hook for the O(n) bound)

    @property
    def buffered(self) -> int:
        """The number of bytes held but not yet framed."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> list[FramerEvent]:
        """Add received bytes. Return the events they complete, in stream order.

        :raises ParseError: if the stream is not valid SIP framing. This also happens on every
            call after the first error. Events completed earlier in the same call are lost, but
            the shell closes the connection anyway.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        self._buf += data
        events: list[FramerEvent] = []
        try:
            while True:
                event = self._next_event()
                if event is None:
                    break
                events.append(event)
        except ParseError as e:
            self._error = e
            self._buf = bytearray()
            self._start = 0
            raise
        self._compact()
        return events

    def _next_event(self) -> Optional[FramerEvent]:
        """Frame one event from the buffer, or return ``None`` if more bytes are needed."""
        if self._phase is _Phase.IDLE and not self._skip_to_message():
            return self._keep_alive()
        if self._phase is _Phase.HEADERS:
            self._scan_headers()
        if self._phase is _Phase.BODY:
            start = self._start
            end = start + self._message_size
            if len(self._buf) < end:
                return None
            message = FramedMessage(bytes(self._buf[start:end]))
            self._start = end
            self._phase = _Phase.IDLE
            return message
        return None

    def _skip_to_message(self) -> bool:
        """In IDLE, drop ignorable CRLFs (§7.5). Return ``True`` when a message has started."""
        buf = self._buf
        while True:
            start = self._start
            available = len(buf) - start
            if available == 0 or buf[start] != _CR:
                break
            # A CR at the boundary: a CRLF keep-alive, an ignorable CRLF, or a bad message start.
            if available < 2:
                return False
            if buf[start + 1] != _LF:
                break
            if self._initiator:
                return False  # a pong
            if available < 3:
                return False  # lone CRLF, undecided
            if buf[start + 2] == _CR:
                if available < 4:
                    return False  # CRLF CR, undecided
                if buf[start + 3] == _LF:
                    return False  # a ping
            self._start = start + 2  # a lone CRLF before a message: ignored
        if available == 0:
            return False
        self._phase = _Phase.HEADERS
        self._searched = self._checked = start
        return True

    def _keep_alive(self) -> Optional[FramerEvent]:
        """In IDLE, after :meth:`_skip_to_message`: frame a ping or pong, if one is complete."""
        start = self._start
        if self._initiator:
            if self._buf[start : start + 2] == b"\r\n":
                self._start = start + 2
                return KeepAlivePong()
        elif self._buf[start : start + 4] == _CRLFCRLF:
            self._start = start + 4
            return KeepAlivePing()
        return None

    def _scan_headers(self) -> None:
        """In HEADERS: look for the end of the header block and check its size and line ends.

        Moves to BODY once the block is complete. The checks run in an order that gives the same
        error however the stream is split: a bad line end within the first ``max_header_size``
        bytes wins over "too large", and is only reported once the byte that decides it (the
        one after a CR) has arrived.
        """
        buf = self._buf
        start = self._start
        end = len(buf)
        origin = max(self._searched - 3, start)
        found = buf.find(_CRLFCRLF, origin)
        if found < 0:
            self._searched = end
            block_end = end
        else:
            block_end = found + 4
        self._scanned += block_end - origin
        self._check_line_ends(min(block_end, start + self._max_header_size))
        if block_end - start > self._max_header_size:
            raise ParseError("Message headers too large", 513)
        if found < 0:
            return
        # The start line cannot hold a Content-Length; skip it.
        lines = bytes(buf[start:found]).split(b"\r\n")[1:]
        self._message_size = block_end - start + _content_length(lines, self._max_body_size)
        self._phase = _Phase.BODY

    def _check_line_ends(self, upto: int) -> None:
        """Check that every CR and LF in ``buf[_checked:upto]`` is part of a CRLF."""
        buf = self._buf
        low = self._checked
        high = upto
        if high > low and buf[high - 1] == _CR:
            high -= 1  # the next byte decides; a region never ends inside a CRLF
        if high <= low:
            return
        self._scanned += high - low
        crs = buf.count(b"\r", low, high)
        if crs != buf.count(b"\n", low, high) or crs != buf.count(b"\r\n", low, high):
            raise ParseError("Bad line ending")
        self._checked = high

    def _compact(self) -> None:
        """Drop consumed bytes when that costs no more than consuming them did."""
        start = self._start
        if start == 0 or start < len(self._buf) - start:
            return
        del self._buf[:start]
        self._start = 0
        self._searched = max(self._searched - start, 0)
        self._checked = max(self._checked - start, 0)


def _content_length(lines: list[bytes], max_body_size: int) -> int:
    """Find the one Content-Length among header lines (CRLFs removed) and return its value."""
    values: list[list[bytes]] = []
    current: Optional[list[bytes]] = None  # pieces of the Content-Length value being read
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)  # a folded continuation of it
            continue
        current = None
        name, colon, value = line.partition(b":")
        if colon and name.rstrip(b" \t").lower() in _CONTENT_LENGTH_NAMES:
            current = [value]
            values.append(current)
    if not values:
        raise ParseError("Missing Content-Length")
    if len(values) > 1:
        raise ParseError("Multiple Content-Length")
    digits = b" ".join(values[0]).strip(b" \t")
    # bytes.isdigit() accepts ASCII 0-9 only: no sign, space, underscore or non-ASCII digits.
    if not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
        raise ParseError("Bad Content-Length")
    length = int(digits)
    if length > max_body_size:
        raise ParseError("Message body too large", 413)
    return length
