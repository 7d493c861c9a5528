"""The one error hierarchy shared by every clearwater layer.

Codecs raise :class:`ParseError` and nothing else for bad input; its ``reason`` is short, printable
ASCII, fit for a SIP reason phrase (RFC 3261 §25.1 ``Reason-Phrase``) or a JSON error body.
"""

from __future__ import annotations

__all__ = [
    "ClearwaterError",
    "ParseError",
    "ProtocolError",
    "RequestTimedOut",
    "TransportError",
]


class ClearwaterError(Exception):
    """Base class of every error clearwater raises on purpose."""


class ParseError(ClearwaterError):
    """Input bytes or text that do not follow the grammar or limits of their protocol.

    :ivar reason: a short phrase naming the problem, e.g. ``"Bad CSeq"``. It never contains CR,
        LF or non-ASCII characters, so it can go straight into a status line.
    :ivar status: the response status a server should answer with when the input was a request
        (400 unless the problem is a specific one such as 505 Version Not Supported).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        safe = "".join(c if " " <= c <= "~" else "?" for c in reason)[:200]
        super().__init__(safe)
        self.reason = safe
        self.status = status


class ProtocolError(ClearwaterError):
    """A peer broke the rules of a protocol exchange (state, sequencing), not its syntax."""


class RequestTimedOut(ClearwaterError):  # noqa: N818 (the name STYLE.md §8 gives it)
    """An outbound request got no answer within its timeout."""


class TransportError(ClearwaterError):
    """A message could not be sent: no listener for its transport, a connection that failed or
    was lost, a full send queue, or an error from the socket."""
