# -*- test-case-name: tests.unit.http.test_ralf -*-
"""Ralf's HTTP API (spec §6.4; Clearwater ralf ``docs/API.md``, ``src/handlers.cpp``).

* ``POST /call-id/<call id>``: a billing event for the call (its SIP Call-ID, or the ICID),
  percent-encoded as one path segment. Body (JSON)::

      {"peers": {"ccf": ["cdf1.example.com", ...], "ecf": [...]},
       "event": {"Accounting-Record-Type": 2, "Acct-Interim-Interval": 600,
                 "Service-Information": {"IMS-Information": {"Role-Of-Node": 0,
                                                             "Node-Functionality": 0, ...}},
                 ...}}

  The query ``timer-interim=true`` marks an interim timer's pop (Chronos' callback); ralf's own
  timers pop in process (:mod:`clearwater.ralf.session`), so only an outside Chronos uses it.
* ``GET /ping`` and ``GET /metrics``: :mod:`clearwater.http.management`.

Answers, as Clearwater's ``BillingTask::run``: **200** (empty body) as soon as the body has been
checked, before the ACR is sent: the Rf exchange, its fail-over and its timers happen
afterwards, and their result is only logged and counted (sprout does not wait for the CDF).
A START or EVENT without a ``peers`` object is also answered 200 and not sent (Clearwater's
behaviour; counted as ``no_peers``). Errors are ``{"error": "<text>"}``
(``application/json``): **400** a body that is not JSON or not a valid billing request (the
text names the member, :func:`~clearwater.ralf.session.parse_billing_request`), **404** any
other path (``/call-id/`` with no id or with more segments included), **405** a method other
than POST (with ``Allow: POST``), **413** a body over 64 KiB, **503** when ralf already has as
many requests in progress as it allows.
"""

from __future__ import annotations

import json
from typing import Optional, Protocol
from urllib.parse import unquote_to_bytes

from prometheus_client import CollectorRegistry
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from typing_extensions import override

from clearwater.http.management import (
    HealthCheck,
    ManagementResource,
    json_error_body,
    management_resource,
)
from clearwater.ralf.session import BillingRequest, BillingRequestError, parse_billing_request

__all__ = ["MAX_BODY", "BillingSink", "ralf_children", "ralf_resource"]

#: The largest body accepted (bytes).
MAX_BODY = 64 * 1024

_JSON = b"application/json"

_log = Logger()


class BillingSink(Protocol):
    """What the API hands requests to (a :class:`~clearwater.ralf.session.RalfSessionManager`):
    ``submit`` starts handling one, or returns False when overloaded."""

    def submit(self, request: BillingRequest) -> bool: ...


class _TooLargeError(Exception):
    pass


def _error(request: Request, code: int, message: str) -> bytes:
    body = json_error_body(message)
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"Content-Type", [_JSON])
    request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
    return body


def _read_body(request: Request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise _TooLargeError
    return data


def _timer_interim(request: Request) -> bool:
    """Whether the query has ``timer-interim=true`` (the first of repeated ones counts; read
    from the URI, so that a form-encoded body cannot set it)."""
    uri: bytes = request.uri
    _, _, query = uri.partition(b"?")
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if unquote_to_bytes(name) == b"timer-interim":
            return unquote_to_bytes(value) == b"true"
    return False


class _CallId(Resource):
    """``/call-id/<id>``: one path segment, already percent-decoded by Twisted."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, sink: BillingSink) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._sink = sink

    @override
    def render(self, request: Request) -> bytes:
        path: list[bytes] = list(request.postpath or [])
        if len(path) != 1 or not path[0]:
            return _error(request, 404, "Not found")
        if request.method != b"POST":
            request.responseHeaders.setRawHeaders(b"Allow", [b"POST"])
            return _error(request, 405, "Method not allowed")
        try:
            call_id = path[0].decode("utf-8")
        except UnicodeDecodeError:
            return _error(request, 400, "Call id is not UTF-8")
        try:
            data = _read_body(request)
        except _TooLargeError:
            return _error(request, 413, f"Body larger than {MAX_BODY} bytes")
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            return _error(request, 400, "Body is not JSON: " + str(e))
        try:
            billing = parse_billing_request(call_id, body, timer_interim=_timer_interim(request))
        except BillingRequestError as e:
            _log.info("ralf: refused a request for {call_id}: {error}", call_id=call_id, error=e)
            return _error(request, 400, str(e))
        if not self._sink.submit(billing):
            return _error(request, 503, "Overloaded")
        request.setResponseCode(200)
        request.responseHeaders.setRawHeaders(b"Content-Length", [b"0"])
        return b""


def ralf_children(sink: BillingSink) -> dict[bytes, IResource]:
    """The ``call-id`` resource, to mount on a root (e.g. as ``children`` of
    :func:`~clearwater.http.management.management_resource`)."""
    return {b"call-id": _CallId(sink)}


def ralf_resource(
    sink: BillingSink,
    *,
    registry: Optional[CollectorRegistry] = None,
    health: Optional[HealthCheck] = None,
) -> ManagementResource:
    """Ralf's whole HTTP root: ``/call-id/<id>`` next to the management ``/ping`` and
    ``/metrics`` (over ``registry``, a fresh one if None); any other path is a JSON 404. Serve
    it with a :class:`~twisted.web.server.Site` on ralf's port (10888)."""
    return management_resource(
        registry if registry is not None else CollectorRegistry(),
        health=health,
        children=ralf_children(sink),
    )
