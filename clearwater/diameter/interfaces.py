"""What a Diameter application sees of its node (RFC 6733 §2.5-§2.8, §6).

An application (homestead's Cx client, ralf's Rf client, a scripted HSS) builds requests with
its module in :mod:`clearwater.diameter.apps`, hands them to :meth:`IDiameterNode.request`,
and answers the requests peers send it through the handler it registered with
:meth:`IDiameterNode.set_handler`. :class:`~clearwater.diameter.node.DiameterNode` is the
implementation; tests give applications a fake.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Interface

from clearwater.diameter.message import Message
from clearwater.errors import ClearwaterError

__all__ = [
    "DiameterTimeoutError",
    "IDiameterNode",
    "NoPeerError",
    "PeerInfo",
    "RequestHandler",
]


class NoPeerError(ClearwaterError):
    """No open peer can take the request (RFC 6733 §6.1: DIAMETER_UNABLE_TO_DELIVER, 3002):
    homestead answers 503 so that sprout tries another homestead; ralf tries the next CCF."""

    result_code = 3002


class DiameterTimeoutError(ClearwaterError):
    """No answer came within the request's timeout (homestead answers 504)."""


@attrs.frozen
class PeerInfo:
    """The peer a request came from: its Origin-Host and Origin-Realm from the capabilities
    exchange, and its address."""

    host: str
    realm: str
    address: str = ""


#: Answers a request from a peer: the answer (built with
#: :func:`~clearwater.diameter.message.make_answer`), or a Deferred of it. An exception (or a
#: failed Deferred) is answered with DIAMETER_UNABLE_TO_COMPLY (5012), a
#: :class:`~clearwater.diameter.message.DiameterDecodeError` with its result code and
#: Failed-AVP.
RequestHandler = Callable[[Message, PeerInfo], Union[Message, "Deferred[Message]"]]


class IDiameterNode(Interface):
    """A Diameter node as its applications use it."""

    identity: str  # our Origin-Host (a DiameterIdentity)
    realm: str  # our Origin-Realm

    def new_session_id(suffix: str = "") -> str:
        """A Session-Id unique to this node and this run (RFC 6733 §8.8):
        ``<identity>;<high 32 bits>;<low 32 bits>[;<suffix>]``."""

    def request(message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
        """Send ``message`` (a request with Session-Id, Origin-Host/Realm, Destination-Realm and
        maybe Destination-Host set; its identifiers are filled in) to a peer chosen by
        Destination-Host, else by Destination-Realm and application, and fire with the answer
        (any Result-Code: checking it is the application's job). Fails with
        :class:`NoPeerError` when no open peer serves the destination and with
        :class:`DiameterTimeoutError` after ``timeout`` seconds (the node's default when None).
        A request whose peer fails before answering is sent again, with the T flag, to another
        peer that serves the destination (RFC 6733 §5.5.4)."""

    def set_handler(application_id: int, handler: RequestHandler) -> None:
        """Answer requests of ``application_id`` with ``handler``."""
