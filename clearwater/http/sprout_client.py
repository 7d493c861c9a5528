# -*- test-case-name: tests.unit.http.test_sprout_client -*-
"""Homestead's client for sprout's registration API (clearwater spec §6.2, §3.11; Clearwater's
homestead ``src/sproutconnection.cpp``).

What homestead tells sprout when the HSS changes a registration behind its back:

* :meth:`SproutClient.delete_registrations` (HSS Registration-Termination):
  ``DELETE /registrations?send-notifications=true|false`` with
  ``{"registrations":[{"primary-impu":"<default IMPU>"[,"impi":"<IMPI>"]}, ...]}``;
* :meth:`SproutClient.put_registration` (HSS Push-Profile):
  ``PUT /registrations/<default IMPU>`` with ``{"user-data-xml":"<IMSSubscription...>"}``.

Bodies are compact JSON (``application/json``), as Clearwater's rapidjson writer made them.
Any 2xx answer is success. A non-2xx answer, a connection that fails, or no answer within
``timeout`` seconds (on the injected reactor; the attempt is then cancelled and its connection
aborted) fails the call with :class:`SproutError`: ``status`` is the HTTP status of the answer
(None when there was none) and ``reason`` says what happened (the answer's ``{"error": ...}``
text when it has one). There is one attempt per call: what to do about a failure is the
caller's (homestead answers the HSS with DIAMETER_UNABLE_TO_COMPLY). Answer bodies are read
for the error text and kept only up to :data:`MAX_ERROR_BODY` bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NoReturn, Optional, Protocol
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

from clearwater.errors import ClearwaterError
from clearwater.http._client import BytesProducer, read_body

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ERROR_BODY",
    "SproutClient",
    "SproutError",
    "SproutRegistrations",
]

#: Seconds an attempt may take before it is cancelled.
DEFAULT_TIMEOUT = 2.0

#: The most of an answer body kept (for the error text), bytes; the rest is read and dropped.
MAX_ERROR_BODY = 4096

# Characters left unescaped in the IMPU path segment (a SIP or tel URI's usual ones; "/", "?",
# "#", "%" and spaces are escaped). Sprout percent-decodes the path either way.
_PATH_SAFE = ":@;=+,!$&'()*~"


class SproutError(ClearwaterError):
    """A call to sprout failed: ``status`` is the HTTP status sprout answered with (None if it
    did not answer: connection failure or timeout), ``reason`` says what went wrong."""

    def __init__(self, reason: str, status: Optional[int] = None) -> None:
        super().__init__(reason if status is None else str(status) + " " + reason)
        self.reason = reason
        self.status = status


class SproutRegistrations(Protocol):
    """What homestead needs of sprout (:class:`SproutClient` is the HTTP implementation; tests
    use fakes)."""

    def delete_registrations(
        self, registrations: Sequence[tuple[str, Optional[str]]], send_notifications: bool
    ) -> Deferred[None]: ...

    def put_registration(self, default_impu: str, user_data_xml: str) -> Deferred[None]: ...


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _error_text(body: bytes, status: int) -> str:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        text: str = value["error"]
        return text
    return "sprout answered " + str(status)


class SproutClient:
    """Homestead's client for sprout's registration API (see the module docstring).

    ``agent`` makes the requests (an :class:`~twisted.web.client.Agent`); ``base_url`` is
    sprout's HTTP interface, e.g. ``http://sprout.example.com:9888``; ``timeout`` bounds each
    call, on ``reactor``.
    """

    def __init__(
        self,
        agent: IAgent,
        reactor: IReactorTime,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._agent = agent
        self._reactor = reactor
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def delete_registrations(
        self, registrations: Sequence[tuple[str, Optional[str]]], send_notifications: bool
    ) -> Deferred[None]:
        """``DELETE /registrations?send-notifications=…``: one ``{"primary-impu"[, "impi"]}``
        entry per ``(default IMPU, IMPI or None)``, in order."""
        entries: list[dict[str, str]] = []
        for impu, impi in registrations:
            entry = {"primary-impu": impu}
            if impi is not None:
                entry["impi"] = impi
            entries.append(entry)
        query = "true" if send_notifications else "false"
        path = "/registrations?send-notifications=" + query
        return self._call(b"DELETE", path, _json({"registrations": entries}))

    def put_registration(self, default_impu: str, user_data_xml: str) -> Deferred[None]:
        """``PUT /registrations/<default IMPU>`` with ``{"user-data-xml": …}``."""
        path = "/registrations/" + quote(default_impu, safe=_PATH_SAFE)
        return self._call(b"PUT", path, _json({"user-data-xml": user_data_xml}))

    def _call(self, method: bytes, path: str, body: bytes) -> Deferred[None]:
        url = self._base_url + path
        what = method.decode("ascii") + " " + url
        timeout = self._timeout

        def timed_out(result: object, seconds: float) -> NoReturn:
            raise SproutError(what + " timed out after " + str(timeout) + " s")

        attempt = Deferred.fromCoroutine(self._attempt(method, url, body, what))
        attempt.addTimeout(timeout, self._reactor, onTimeoutCancel=timed_out)
        return attempt

    async def _attempt(self, method: bytes, url: str, body: bytes, what: str) -> None:
        headers = Headers({b"Content-Type": [b"application/json"]})
        try:
            response = await self._agent.request(
                method, url.encode("ascii"), headers, BytesProducer(body)
            )
            data = await read_body(response, MAX_ERROR_BODY, truncate=True)
        except CancelledError:
            raise  # timed out (or the caller gave up): addTimeout says which
        except Exception as e:
            raise SproutError(what + " failed: " + type(e).__name__ + ": " + str(e)) from e
        if not 200 <= response.code < 300:
            raise SproutError(_error_text(data, response.code), response.code)
