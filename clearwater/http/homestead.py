# -*- test-case-name: tests.unit.http.test_homestead -*-
"""Homestead's HTTP API (clearwater spec §6.1): the resources sprout talks to.

Paths, parameters and bodies are Clearwater's (homestead ``src/main.cpp`` handler regexes,
``http_handlers.cpp``), answered by an :class:`~clearwater.homestead.api.IHomestead`: the
HSS-less :class:`~clearwater.homestead.hssless.HsslessHomestead` or the HSS-mode
:class:`~clearwater.homestead.hss.HssHomestead`:

* ``GET /impi/<impi>/av`` and ``GET /impi/<impi>/av/digest|aka|aka2``, query ``impu``,
  ``resync-auth``, ``server-name``: the JSON vector (spec §3.2);
* ``GET /impi/<impi>/digest``, query ``public_id``: ``{"digest_ha1": "<hex>"}``;
* ``GET /impi/<impi>/registration-status``, query ``impu`` (required), ``visited-network``,
  ``auth-type``, ``sos``: ``{"result-code": 2001, "scscf": "<uri>"}``;
* ``GET /impu/<impu>/location``, query ``originating``, ``auth-type``: the same, plus
  ``"wildcard-identity"`` when a wildcard matched;
* ``GET /impu/<impu>/reg-data``: the ``<ClearwaterRegData>`` XML;
* ``PUT /impu/<impu>/reg-data``, query ``private_id``, JSON body ``{"reqtype", "server_name",
  "wildcard_identity"}``: the reg-data XML after the change.

``<impi>`` and ``<impu>`` are one path segment each, percent-decoded (an IMPU's ``/`` must
come as ``%2F``; ``:``, ``@`` and ``;`` may come either way) and then UTF-8. Query values are
percent-decoded with ``+`` kept as a plus sign (as Clearwater's homestead did: ``tel:+1...``
survives unencoded); the first of repeated parameters counts.

Errors are ``{"error": "<text>"}`` (``application/json``) with homestead's status: 404 unknown
paths, identities and schemes, 405 other methods (with ``Allow``), 400 bad parameters or body
(malformed JSON, unknown ``reqtype``), 413 a body over 64 KiB, 403 and 400 where
:mod:`~clearwater.homestead.hssless` says so, 503 when the store is unreachable
(:class:`~clearwater.stores.interfaces.StoreUnavailableError`: sprout tries another homestead),
504 when it timed out (:class:`~clearwater.stores.interfaces.StoreTimeoutError`), 500 anything
else (logged). Answers are rendered asynchronously; if the client goes away first, the work is
cancelled and nothing is written.

:func:`homestead_children` gives the ``impi`` and ``impu`` resources to mount on a function's
root; :func:`homestead_resource` is the whole tree with the management ``/ping`` and
``/metrics`` (:mod:`clearwater.http.management`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional, Union
from urllib.parse import unquote_to_bytes

from prometheus_client import CollectorRegistry
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.homestead.api import IHomestead
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    HomesteadError,
    RegData,
    ReqType,
    ServerAssignment,
)
from clearwater.http.management import HealthCheck, ManagementResource, management_resource
from clearwater.stores.interfaces import NotFoundError, StoreTimeoutError, StoreUnavailableError

__all__ = [
    "MAX_BODY",
    "homestead_children",
    "homestead_resource",
]

#: The largest ``PUT reg-data`` body accepted (bytes).
MAX_BODY = 64 * 1024

_JSON = b"application/json"
_XML = b"application/xml; charset=utf-8"

_log = Logger()

# What a handler gives back: status, content type, body.
_Answer = tuple[int, bytes, bytes]


def _json_body(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _json_answer(value: Mapping[str, Any]) -> _Answer:
    return 200, _JSON, _json_body(value)


def _xml_answer(reg_data: RegData) -> _Answer:
    return 200, _XML, reg_data.to_xml()


def _error_of(failure: Failure) -> tuple[int, str]:
    """The status and message a failed request answers with."""
    error = failure.value
    if isinstance(error, HomesteadError):
        return error.status, error.message
    if isinstance(error, StoreTimeoutError):
        return 504, "Subscriber store timed out"
    if isinstance(error, StoreUnavailableError):
        return 503, "Subscriber store unavailable"
    if isinstance(error, NotFoundError):
        return 404, str(error)
    if isinstance(error, ParseError):
        return error.status, error.reason
    _log.failure("Homestead request failed", failure)
    return 500, "Internal error"


def _write(request: Request, answer: _Answer) -> None:
    code, content_type, body = answer
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"Content-Type", [content_type])
    request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
    request.write(body)  # type: ignore[no-untyped-call]  # untyped in Twisted
    request.finish()  # type: ignore[no-untyped-call]  # untyped in Twisted


def _error_answer(code: int, message: str) -> _Answer:
    return code, _JSON, _json_body({"error": message})


def _segment(raw: bytes, what: str) -> str:
    """A percent-decoded path segment (Twisted has decoded it) as text."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HomesteadError(400, "Bad " + what + ": not UTF-8") from None


def _query(request: Request) -> dict[str, str]:
    """The query parameters, percent-decoded without turning ``+`` into a space."""
    uri: bytes = request.uri
    _, sep, query = uri.partition(b"?")
    params: dict[str, str] = {}
    if not sep:
        return params
    for item in query.split(b"&"):
        if not item:
            continue
        name, _, value = item.partition(b"=")
        try:
            key = unquote_to_bytes(name).decode("utf-8")
            text = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise HomesteadError(400, "Bad query parameter: not UTF-8") from None
        params.setdefault(key, text)
    return params


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "").lower() == "true"


def _read_body(request: Request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise HomesteadError(413, "Body larger than " + str(MAX_BODY) + " bytes")
    return data


def _optional_str(body: Mapping[str, Any], key: str) -> Optional[str]:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise HomesteadError(400, "Bad " + key + ": not a string")
    return value


def _reg_data_body(data: bytes) -> tuple[ReqType, Optional[str], Optional[str]]:
    """``(reqtype, server_name, wildcard_identity)`` from a ``PUT reg-data`` body."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise HomesteadError(400, "Malformed JSON body: " + str(e)) from None
    if not isinstance(body, dict):
        raise HomesteadError(400, "Body is not a JSON object")
    reqtype = body.get("reqtype")
    if not isinstance(reqtype, str):
        raise HomesteadError(400, "Body has no reqtype")
    try:
        kind = ReqType(reqtype)
    except ValueError:
        raise HomesteadError(400, "Unknown reqtype: " + reqtype) from None
    return kind, _optional_str(body, "server_name"), _optional_str(body, "wildcard_identity")


class _Api(Resource):
    """A subtree whose leaf parses its own path (``request.postpath``) and answers
    asynchronously; every error is a JSON body."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, homestead: IHomestead) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._homestead = homestead

    @override
    def render(self, request: Request) -> Union[bytes, int]:
        try:
            result = self._route(request)
        except Exception:
            failure = Failure()  # type: ignore[no-untyped-call]  # untyped in Twisted
            answer = _error_answer(*_error_of(failure))
            _write(request, answer)
            return NOT_DONE_YET
        if isinstance(result, tuple):
            _write(request, result)
            return NOT_DONE_YET
        _respond(request, result)
        return NOT_DONE_YET

    def _route(self, request: Request) -> Union[Deferred[_Answer], _Answer]:
        raise NotImplementedError

    @staticmethod
    def _method(request: Request, allowed: tuple[bytes, ...]) -> Optional[_Answer]:
        if request.method in allowed:
            return None
        request.responseHeaders.setRawHeaders(b"Allow", [b", ".join(allowed)])
        return _error_answer(405, "Method not allowed")


def _respond(request: Request, deferred: Deferred[_Answer]) -> None:
    """Write what ``deferred`` gives (or its failure) unless the client has gone; if it goes
    first, cancel ``deferred``."""
    gone = []

    def client_gone(failure: Failure) -> None:
        gone.append(True)
        deferred.cancel()

    def answer(result: _Answer) -> None:
        if not gone:
            _write(request, result)

    def failed(failure: Failure) -> None:
        if gone:
            return
        if failure.check(CancelledError):  # type: ignore[no-untyped-call]  # untyped
            _write(request, _error_answer(503, "Request cancelled"))
            return
        _write(request, _error_answer(*_error_of(failure)))

    request.notifyFinish().addErrback(client_gone)
    deferred.addCallbacks(answer, failed)


_NOT_FOUND = _error_answer(404, "Not found")
_GET = (b"GET",)
_GET_PUT = (b"GET", b"PUT")


class _Impi(_Api):
    """``/impi/<impi>/av[/<scheme>]``, ``/impi/<impi>/digest``,
    ``/impi/<impi>/registration-status``."""

    @override
    def _route(self, request: Request) -> Union[Deferred[_Answer], _Answer]:
        path: list[bytes] = list(request.postpath or [])
        if path and path[-1] == b"" and len(path) > 2:
            path.pop()  # a trailing slash
        if len(path) < 2 or not path[0] or len(path) > 3:
            return _NOT_FOUND
        action = path[1]
        if len(path) == 3 and action != b"av":
            return _NOT_FOUND
        if action not in (b"av", b"digest", b"registration-status"):
            return _NOT_FOUND
        refused = self._method(request, _GET)
        if refused is not None:
            return refused
        impi = _segment(path[0], "private identity")
        params = _query(request)
        homestead = self._homestead
        if action == b"av":
            scheme = None
            if len(path) == 3:
                try:
                    scheme = AvScheme(_segment(path[2], "scheme"))
                except ValueError:
                    raise HomesteadError(404, "Unsupported authentication scheme") from None
            return homestead.get_av(
                impi,
                impu=params.get("impu"),
                scheme=scheme,
                resync_auth=params.get("resync-auth"),
                server_name=params.get("server-name"),
            ).addCallback(_av_answer)
        if action == b"digest":
            return homestead.get_digest(impi, params.get("public_id")).addCallback(
                lambda ha1: _json_answer({"digest_ha1": ha1})
            )
        return homestead.registration_status(
            impi,
            params.get("impu", ""),
            visited_network=params.get("visited-network"),
            auth_type=params.get("auth-type"),
            sos=_flag(params, "sos"),
        ).addCallback(_assignment_answer)


def _av_answer(vector: Union[DigestAv, AkaAv]) -> _Answer:
    return _json_answer(vector.to_json())


def _assignment_answer(assignment: ServerAssignment) -> _Answer:
    return _json_answer(assignment.to_json())


class _Impu(_Api):
    """``/impu/<impu>/location``, ``/impu/<impu>/reg-data``."""

    @override
    def _route(self, request: Request) -> Union[Deferred[_Answer], _Answer]:
        path: list[bytes] = list(request.postpath or [])
        if len(path) == 3 and path[2] == b"":
            path.pop()  # a trailing slash
        if len(path) != 2 or not path[0] or path[1] not in (b"location", b"reg-data"):
            return _NOT_FOUND
        homestead = self._homestead
        if path[1] == b"location":
            refused = self._method(request, _GET)
            if refused is not None:
                return refused
            impu = _segment(path[0], "public identity")
            params = _query(request)
            return homestead.location(
                impu, originating=_flag(params, "originating"), auth_type=params.get("auth-type")
            ).addCallback(_assignment_answer)
        refused = self._method(request, _GET_PUT)
        if refused is not None:
            return refused
        impu = _segment(path[0], "public identity")
        if request.method == b"GET":
            return homestead.get_reg_data(impu).addCallback(_xml_answer)
        params = _query(request)
        reqtype, server_name, wildcard = _reg_data_body(_read_body(request))
        return homestead.put_reg_data(
            impu,
            reqtype,
            server_name=server_name,
            private_id=params.get("private_id"),
            wildcard_identity=wildcard,
        ).addCallback(_xml_answer)


def homestead_children(homestead: IHomestead) -> dict[bytes, IResource]:
    """The ``impi`` and ``impu`` resources, to mount on a root (e.g. as ``children`` of
    :func:`~clearwater.http.management.management_resource`)."""
    return {b"impi": _Impi(homestead), b"impu": _Impu(homestead)}


def homestead_resource(
    homestead: IHomestead,
    *,
    registry: Optional[CollectorRegistry] = None,
    health: Optional[HealthCheck] = None,
) -> ManagementResource:
    """Homestead's whole HTTP root: ``/impi/...`` and ``/impu/...`` next to the management
    ``/ping`` and ``/metrics`` (over ``registry``, a fresh one if None); any other path is a
    JSON 404. Serve it with a :class:`~twisted.web.server.Site` on homestead's port (8888)."""
    return management_resource(
        registry if registry is not None else CollectorRegistry(),
        health=health,
        children=homestead_children(homestead),
    )
