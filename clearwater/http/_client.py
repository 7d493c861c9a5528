"""Pieces the HTTP clients share (homestead's for sprout, sprout's for homestead): a request
body held in memory and a response body read with a bound."""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from typing_extensions import override
from zope.interface import implementer

__all__ = ["BodyTooLargeError", "BytesProducer", "abort_transport", "read_body"]


class BodyTooLargeError(Exception):
    """A response body over the limit :func:`read_body` was given."""


def abort_transport(transport: Any) -> None:
    """Drop a response's connection (``abortConnection`` where there is one)."""
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    elif transport is not None:
        transport.stopProducing()


class _Body(Protocol):
    """Collects a response body: past ``limit`` bytes it fails (or, ``truncate``, keeps the
    first ``limit`` and reads on to the end)."""

    def __init__(self, finished: Deferred[bytes], limit: int, truncate: bool) -> None:
        self._finished = finished
        self._limit = limit
        self._truncate = truncate
        self._parts: list[bytes] = []
        self._size = 0

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        room = self._limit - self._size
        if len(data) > room and not self._truncate:
            self._finished.errback(BodyTooLargeError("answer body over " + str(self._limit)))
            abort_transport(self.transport)
            return
        kept = data[: max(room, 0)]
        self._parts.append(kept)
        self._size += len(kept)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):  # type: ignore[no-untyped-call]
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)


class _Discard(Protocol):
    @override
    def connectionMade(self) -> None:
        abort_transport(self.transport)


def read_body(response: IResponse, limit: int, truncate: bool = False) -> Deferred[bytes]:
    """The body of ``response``: at most ``limit`` bytes, else :class:`BodyTooLargeError` (or,
    ``truncate``, its first ``limit`` bytes). Cancelling drops the connection."""
    if not truncate and response.length is not UNKNOWN_LENGTH and response.length > limit:
        response.deliverBody(_Discard())  # type: ignore[no-untyped-call]  # untyped in Twisted
        raise BodyTooLargeError("answer body over " + str(limit))
    protocol: Optional[_Body] = None

    def cancel(deferred: Deferred[bytes]) -> None:
        if protocol is not None:
            abort_transport(protocol.transport)

    finished: Deferred[bytes] = Deferred(cancel)
    protocol = _Body(finished, limit, truncate)
    response.deliverBody(protocol)  # type: ignore[no-untyped-call]  # untyped in Twisted
    return finished


@implementer(IBodyProducer)
class BytesProducer:
    """A request body held in memory."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:  # noqa: N802 (Twisted)
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted)
        pass

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted)
        pass

    def stopProducing(self) -> None:  # noqa: N802 (Twisted)
        pass
