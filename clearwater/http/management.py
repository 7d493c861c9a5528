# -*- test-case-name: tests.unit.http.test_management -*-
"""The management HTTP interface every clearwater network function serves.

ARCHITECTURE.md §6: metrics in the Prometheus text exposition format at ``GET /metrics`` and a
health check at ``GET /ping`` answering ``200 OK``, as Clearwater's ``/ping`` does on every HTTP
port (spec §6.1 homestead, §6.2 sprout). The resource tree follows STYLE.md §2.2: one
:class:`~twisted.web.server.Site` per function, and the function's own HTTP API (sprout's
``/timers`` and ``/registrations``, ...) mounts further children on the same root with
:meth:`~twisted.web.resource.Resource.putChild` or the ``children`` argument.

Responses:

- ``GET /ping``: ``200``, ``text/plain``, body ``OK``; if ``health`` returns a problem
  (a string), ``503`` with that text; if ``health`` raises, ``503`` ``health check failed``
  (the failure is logged).
- ``GET /metrics``: ``200``, :data:`prometheus_client.CONTENT_TYPE_LATEST`, the registry's
  text exposition (:func:`prometheus_client.generate_latest`).
- ``HEAD`` on either: the ``GET`` headers, with ``Content-Length``, and no body.
- another method on either: ``405`` with an ``Allow`` header and a JSON body.
- any other path: ``404`` with a JSON body. Error bodies are ``{"error": "<text>"}``
  (``application/json``).

Monitors poll these paths every few seconds, so :func:`management_site` writes no access log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Callable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from typing_extensions import override

__all__ = [
    "JSON_CONTENT_TYPE",
    "HealthCheck",
    "ManagementResource",
    "QuietSite",
    "json_error_body",
    "management_resource",
    "management_site",
]

HealthCheck = Callable[[], Optional[str]]
"""Returns ``None`` when the function is healthy, else a short description of the problem."""

#: The ``Content-Type`` of JSON answers, error bodies included.
JSON_CONTENT_TYPE = b"application/json"
_JSON = JSON_CONTENT_TYPE
_TEXT = b"text/plain; charset=utf-8"
_METRICS_TYPE = CONTENT_TYPE_LATEST.encode("ascii")
_READ_METHODS = (b"GET", b"HEAD")

_log = Logger()


def json_error_body(message: str) -> bytes:
    """The body of every error answer on a management port: ``{"error": "<message>"}``
    (serve it as :data:`JSON_CONTENT_TYPE`)."""
    return json.dumps({"error": message}).encode("utf-8")


def _json_error(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"Content-Type", [_JSON])
    return _body(request, json_error_body(message))


def _body(request: Request, body: bytes) -> bytes:
    # HEAD gets the GET headers and Content-Length but no body (RFC 9110 §9.3.2); returning b""
    # keeps Twisted from logging that it ate a HEAD body.
    if request.method == b"HEAD":
        request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
        return b""
    return body


class _Resource(Resource):
    """A resource with nothing below it but JSON ``404`` (unless children are put)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def getChild(self, path: bytes, request: Request) -> IResource:
        return _NOT_FOUND


class _NotFound(_Resource):
    """``404`` with a JSON body, whatever the method and whatever follows in the path."""

    @override
    def render(self, request: Request) -> bytes:
        return _json_error(request, 404, "not found")


_NOT_FOUND = _NotFound()


class _ReadOnly(_Resource):
    """A ``GET``-only endpoint: JSON ``405`` for other methods.

    Subclasses implement :meth:`_get`; ``HEAD`` sends its headers and ``Content-Length``
    without the body (RFC 9110 §9.3.2).
    """

    @override
    def render(self, request: Request) -> bytes:
        if request.method not in _READ_METHODS:
            request.responseHeaders.setRawHeaders(b"Allow", [b", ".join(_READ_METHODS)])
            return _json_error(request, 405, "method not allowed")
        return _body(request, self._get(request))

    def _get(self, request: Request) -> bytes:
        raise NotImplementedError


class _Ping(_ReadOnly):
    def __init__(self, health: Optional[HealthCheck]) -> None:
        super().__init__()
        self._health = health

    @override
    def _get(self, request: Request) -> bytes:
        request.responseHeaders.setRawHeaders(b"Content-Type", [_TEXT])
        if self._health is None:
            return b"OK"
        try:
            problem = self._health()
        except Exception:
            _log.failure("Health check raised")
            problem = "health check failed"
        if problem is None:
            return b"OK"
        request.setResponseCode(503)
        return problem.encode("utf-8")


class _Metrics(_ReadOnly):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    @override
    def _get(self, request: Request) -> bytes:
        request.responseHeaders.setRawHeaders(b"Content-Type", [_METRICS_TYPE])
        return generate_latest(self._registry)


class ManagementResource(_Resource):
    """The root of a function's management port: ``/ping``, ``/metrics`` and added children.

    Unknown paths, including ``/`` itself, get a JSON ``404``. Add an API with
    ``putChild(b"timers", resource)``; the name must be one path segment.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        health: Optional[HealthCheck] = None,
        children: Optional[Mapping[bytes, IResource]] = None,
    ) -> None:
        super().__init__()
        self.putChild(b"ping", _Ping(health))
        self.putChild(b"metrics", _Metrics(registry))
        for name, child in (children or {}).items():
            if name in self.children:
                raise ValueError("management path /" + name.decode("ascii", "replace") + " taken")
            self.putChild(name, child)

    @override
    def render(self, request: Request) -> bytes:
        return _NOT_FOUND.render(request)


def management_resource(
    registry: CollectorRegistry,
    *,
    health: Optional[HealthCheck] = None,
    children: Optional[Mapping[bytes, IResource]] = None,
) -> ManagementResource:
    """The management resource tree over ``registry`` (see the module docstring).

    ``health`` is called on each ``GET /ping``; it must be cheap and must not block.
    ``children`` maps further top-level path segments (``b"timers"``) to resources; a name
    clashing with ``ping`` or ``metrics`` raises :exc:`ValueError`.
    """
    return ManagementResource(registry, health=health, children=children)


class QuietSite(Site):
    """A :class:`~twisted.web.server.Site` that writes no access log (for APIs called
    thousands of times a second, and for polled management paths)."""

    def __init__(self, resource: IResource, reactor: Optional[IReactorTime]) -> None:
        super().__init__(resource, reactor=reactor)  # type: ignore[no-untyped-call]  # untyped

    @override
    def log(self, request: http.Request) -> None:
        pass


def management_site(
    registry: CollectorRegistry,
    *,
    health: Optional[HealthCheck] = None,
    children: Optional[Mapping[bytes, IResource]] = None,
    reactor: Optional[IReactorTime] = None,
) -> Site:
    """A :class:`~twisted.web.server.Site` serving :func:`management_resource`, no access log.

    ``reactor`` runs the connection timeouts (Twisted's global reactor when ``None``, as in
    :class:`~twisted.web.http.HTTPFactory`); services pass theirs. Listen on it with
    ``internet.TCPServer(port, site, interface="127.0.0.1", reactor=reactor)``: the management
    port binds to loopback unless told otherwise (ARCHITECTURE.md §6).
    """
    resource = ManagementResource(registry, health=health, children=children)
    return QuietSite(resource, reactor=reactor)
