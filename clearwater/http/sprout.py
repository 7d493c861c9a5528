# -*- test-case-name: tests.unit.http.test_sprout_api -*-
"""Sprout's HTTP API for the S-CSCF (clearwater spec §6.2 and §3.11; Clearwater's sprout
``docs/HttpApi.md``, ``docs/ManagementHttpAPI.md`` and ``src/handlers.cpp``), served on
sprout's management port next to ``GET /ping`` and ``GET /metrics``
(:mod:`clearwater.http.management`).

From homestead (network-initiated de-registration and profile changes):

* ``DELETE /registrations?send-notifications=true|false``, body
  ``{"registrations": [{"primary-impu": "<default IMPU>", "impi": "<optional>"}, ...]}``
  (HSS Registration-Termination): each AoR loses its bindings (all, or those registered
  with ``impi``), its watchers are NOTIFYed and homestead is not told back. Challenges
  outstanding for the private identities of the removed bindings are dropped. The query
  parameter is mandatory and must be ``true`` or ``false``, but, as in Clearwater, NOTIFYs
  go out either way. A repeated ``primary-impu`` counts once (its first entry). ``200``;
  ``400`` a bad parameter or body; ``500`` the registration store failed (AoRs before the
  failing one stay de-registered).
* ``PUT /registrations/<default IMPU>``, body ``{"user-data-xml": "<IMSSubscription>..."}``
  (HSS Push-Profile): the AoR's associated URIs become the subscription's public identities
  and, if they changed, its watchers are NOTIFYed. ``200`` (also when nothing is registered:
  nothing is written then); ``400`` a bad body or subscription (no ``<ServiceProfile>``, one
  without ``<PublicIdentity>``, one of those without ``<Identity>``); ``500`` store failure.

For operators (Clearwater's management port 9886):

* ``GET /impu/<impu>/bindings``: ``{"bindings": {"<id>": {"uri", "cid", "cseq", "expires",
  "priority", "params", "paths", "timer_id", "private_id", "emergency_reg"}}}`` (Clearwater's
  management view: ``paths`` are the Path URIs, ``timer_id`` is ``"Deprecated"``);
* ``GET /impu/<impu>/subscriptions``: ``{"subscriptions": {"<To tag>": {"req_uri",
  "from_uri", "from_tag", "to_uri", "to_tag", "cid", "routes", "expires", "timer_id"}}}``;

  both ``404`` when the AoR has no live binding (subscriptions too, as Clearwater), ``500``
  on a store failure. ``<impu>`` may be any identity of the implicit registration set:
  homestead's reg-data names the default one the AoR is keyed by (if homestead cannot say,
  the identity itself is looked up);
* ``DELETE /impu/<default IMPU>``: administrative de-registration: every binding removed,
  watchers NOTIFYed, homestead told ``dereg-admin``. ``200``; ``400`` the AoR belongs to
  another S-CSCF (its ``scscf-uri``) or homestead refused (4xx: e.g. the identity is not
  registered, which is how an identity without bindings here ends); ``404`` homestead does
  not know the identity; ``500`` store failure; ``502`` homestead failed or did not answer.

Path identities are one percent-decoded path segment (``/`` as ``%2F``), UTF-8; the
``/registrations/`` one is the rest of the path. Every error answer is ``{"error": "..."}``
(``application/json``); other methods get ``405`` with ``Allow``; a body over
:data:`MAX_BODY` bytes ``413`` (the site :func:`sprout_site` builds does not even keep it);
success bodies are compact JSON, or empty. Answers are written when the work is done; a
client that went away meanwhile gets nothing, but the work is not undone.

Not yet (they come with iFCs): the third-party de-REGISTERs Clearwater sends to application
servers after a de-registration, and the fresh reg-data it reads before an RTR.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional, Union

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from typing_extensions import override

from clearwater._xml import parse_xml
from clearwater.errors import ParseError
from clearwater.homestead.hssless import HomesteadError, RegData, ReqType
from clearwater.http.management import (
    JSON_CONTENT_TYPE,
    HealthCheck,
    ManagementResource,
    QuietSite,
    json_error_body,
    management_resource,
)
from clearwater.scscf.subscribers import MAX_CAS_ATTEMPTS, SubscriberManager, associated_uris
from clearwater.sip import NameAddr
from clearwater.stores.interfaces import DataContentionError, IChallengeStore, StoreError
from clearwater.stores.records import AoR, AssociatedUri, Binding, RegState, Subscription

__all__ = [
    "MAX_BODY",
    "SproutApiRequest",
    "parse_ims_subscription",
    "sprout_children",
    "sprout_site",
]

#: The largest request body accepted (bytes); more is answered 413.
MAX_BODY = 1 << 20

#: Clearwater's ``timer_id`` of bindings and subscriptions in the management view, since
#: timers became one per AoR.
_DEPRECATED = "Deprecated"

_log = Logger()

# What a handler answers: status, content type (b"" for none), body.
_Answer = tuple[int, bytes, bytes]

_OK: _Answer = (200, b"", b"")
_DELETE = (b"DELETE",)
_PUT = (b"PUT",)
_GET = (b"GET", b"HEAD")


class _ApiError(Exception):
    """Answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SproutApiRequest(Request):
    """A request whose body is not kept beyond :data:`MAX_BODY` bytes (``body_too_large``
    is set instead, and the API answers 413): the site's buffer is bounded whatever the
    client declares or sends."""

    body_too_large = False
    _received = 0

    @override
    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > MAX_BODY:
            self.body_too_large = True
            length = 0
        super().gotLength(length)  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > MAX_BODY:
            self.body_too_large = True
        if self.body_too_large:
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]  # untyped in Twisted


class _SproutSite(QuietSite):
    requestFactory = SproutApiRequest  # noqa: N815 (Twisted's name)


# --------------------------------------------------------------------------- helpers


def _json(value: Mapping[str, Any]) -> _Answer:
    return 200, JSON_CONTENT_TYPE, json.dumps(value, separators=(",", ":")).encode("ascii")


def _write(request: Request, answer: _Answer) -> None:
    code, content_type, body = answer
    request.setResponseCode(code)
    if content_type:
        request.responseHeaders.setRawHeaders(b"Content-Type", [content_type])
    request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
    request.write(body)  # type: ignore[no-untyped-call]  # untyped in Twisted
    request.finish()  # type: ignore[no-untyped-call]  # untyped in Twisted


def _error(code: int, message: str) -> _Answer:
    return code, JSON_CONTENT_TYPE, json_error_body(message)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _ApiError(400, "Bad " + what + ": not UTF-8") from None


def _read_json(request: Request) -> Any:
    """The request body as JSON (413 over :data:`MAX_BODY`, 400 if not JSON)."""
    if getattr(request, "body_too_large", False):
        raise _ApiError(413, "Body larger than " + str(MAX_BODY) + " bytes")
    content = request.content
    data = b""
    if content is not None:
        content.seek(0)
        data = content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise _ApiError(413, "Body larger than " + str(MAX_BODY) + " bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _ApiError(400, "Malformed JSON body: " + str(e)) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_ims_subscription(xml: str) -> tuple[AssociatedUri, ...]:
    """The associated URIs of a bare ``<IMSSubscription>`` document (TS 29.228 Annex B, the
    ``user-data-xml`` of a Push-Profile), as the registrar stores them: every public
    identity in document order, a wildcarded one as its wildcard, with its barring.
    ParseError when it is not XML, not an ``<IMSSubscription>``, or has no
    ``<ServiceProfile>``, a profile without ``<PublicIdentity>`` or an identity without
    ``<Identity>`` (Clearwater's ``get_uris_from_ims_subscription`` rules)."""
    root = parse_xml(xml, "user data")
    if _local(root.tag) != "IMSSubscription":
        raise ParseError("Bad user data: not an IMSSubscription")
    profiles = [child for child in root if _local(child.tag) == "ServiceProfile"]
    if not profiles:
        raise ParseError("Bad user data: no ServiceProfile")
    for profile in profiles:
        if not any(_local(child.tag) == "PublicIdentity" for child in profile):
            raise ParseError("Bad user data: ServiceProfile without PublicIdentity")
    reg_data = RegData.from_subscription(RegState.REGISTERED, root)
    return associated_uris(reg_data)


def _path_uri(path_header: str) -> str:
    """The URI of a stored Path value (the management view's ``paths``)."""
    try:
        return str(NameAddr.parse(path_header).uri)
    except ParseError:
        return path_header


def _binding_view(binding: Binding) -> dict[str, Any]:
    return {
        "uri": binding.uri,
        "cid": binding.cid,
        "cseq": binding.cseq,
        "expires": binding.expires,
        "priority": binding.priority,
        "params": dict(binding.params),
        "paths": [_path_uri(p) for p in binding.path_headers],
        "timer_id": _DEPRECATED,
        "private_id": binding.private_id,
        "emergency_reg": binding.emergency_reg,
    }


def _subscription_view(subscription: Subscription) -> dict[str, Any]:
    return {
        "req_uri": subscription.req_uri,
        "from_uri": subscription.from_uri,
        "from_tag": subscription.from_tag,
        "to_uri": subscription.to_uri,
        "to_tag": subscription.to_tag,
        "cid": subscription.cid,
        "routes": list(subscription.routes),
        "expires": subscription.expires,
        "timer_id": _DEPRECATED,
    }


def _store_failed(what: str, error: Exception) -> _ApiError:
    _log.warn("{what}: registration store failed: {error}", what=what, error=error)
    return _ApiError(500, "Registration store unavailable")


# --------------------------------------------------------------------------- resources


class _Api(Resource):
    """A subtree whose leaf parses its own path (``request.postpath``) and answers when its
    work is done; every error is a JSON body."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, manager: SubscriberManager, challenges: Optional[IChallengeStore]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.manager = manager
        self.challenges = challenges

    @override
    def render(self, request: Request) -> Union[bytes, int]:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(result: _Answer) -> None:
            if not gone:
                _write(request, result)

        def failed(failure: Failure) -> None:
            if failure.check(_ApiError):  # type: ignore[no-untyped-call]  # untyped
                error = failure.value
                assert isinstance(error, _ApiError)
                result = _error(error.status, error.message)
            else:
                _log.failure("Sprout API request failed", failure)
                result = _error(500, "Internal error")
            answer(result)

        Deferred.fromCoroutine(self._route(request)).addCallbacks(answer, failed)
        return NOT_DONE_YET

    async def _route(self, request: Request) -> _Answer:
        raise NotImplementedError

    @staticmethod
    def _allow(request: Request, allowed: tuple[bytes, ...]) -> None:
        if request.method not in allowed:
            request.responseHeaders.setRawHeaders(b"Allow", [b", ".join(allowed)])
            raise _ApiError(405, "Method not allowed")

    async def _aor_id(self, impu: str) -> str:
        """The AoR ``impu`` is registered under: the default identity of its implicit
        registration set, or ``impu`` itself if homestead cannot say."""
        try:
            reg_data = await self.manager.homestead.get_reg_data(impu)
        except (HomesteadError, StoreError) as e:
            if not (isinstance(e, HomesteadError) and e.status == 404):
                _log.info("No reg-data for {impu}: {error}", impu=impu, error=e)
            return impu
        return reg_data.default_public_identity or impu


class _Registrations(_Api):
    """``DELETE /registrations`` (RTR) and ``PUT /registrations/<default IMPU>`` (PPR)."""

    @override
    async def _route(self, request: Request) -> _Answer:
        path: list[bytes] = list(request.postpath or [])
        if path and path[-1] == b"":
            path.pop()  # a trailing slash
        if not path:
            self._allow(request, _DELETE)
            return await self._deregister(request)
        if not all(path):
            raise _ApiError(404, "Not found")
        self._allow(request, _PUT)
        return await self._push_profile(request, _text(b"/".join(path), "public identity"))

    async def _deregister(self, request: Request) -> _Answer:
        args: dict[bytes, list[bytes]] = request.args or {}
        notify = args.get(b"send-notifications", [b""])[0]
        if notify not in (b"true", b"false"):
            raise _ApiError(400, "send-notifications must be true or false")
        targets = _rtr_targets(_read_json(request))
        manager = self.manager
        impis: list[str] = []
        for aor_id, private_id in targets.items():
            try:
                change = await manager.deregister(aor_id, None, private_id=private_id or None)
            except StoreError as e:
                raise _store_failed("Deregistering " + aor_id, e) from None
            for removed in change.changes:
                impi = removed.binding.private_id
                if impi and impi not in impis:
                    impis.append(impi)
        if self.challenges is not None:
            for impi in impis:
                await _forget_challenges(self.challenges, impi, manager.now())
        return _OK

    async def _push_profile(self, request: Request, aor_id: str) -> _Answer:
        body = _read_json(request)
        xml = body.get("user-data-xml") if isinstance(body, dict) else None
        if not isinstance(xml, str):
            raise _ApiError(400, "Body has no user-data-xml string")
        try:
            uris = parse_ims_subscription(xml)
        except ParseError as e:
            raise _ApiError(400, e.reason) from None
        try:
            await self.manager.update_associated_uris(aor_id, uris)
        except StoreError as e:
            raise _store_failed("Push-Profile for " + aor_id, e) from None
        return _OK


def _rtr_targets(body: Any) -> dict[str, str]:
    """``{primary IMPU: IMPI or ""}`` from a ``DELETE /registrations`` body (400 if bad);
    a repeated IMPU keeps its first entry, as Clearwater's map does."""
    if not isinstance(body, dict) or not isinstance(body.get("registrations"), list):
        raise _ApiError(400, "Body has no registrations array")
    targets: dict[str, str] = {}
    for entry in body["registrations"]:
        impu = entry.get("primary-impu") if isinstance(entry, dict) else None
        if not isinstance(impu, str):
            raise _ApiError(400, "Registration without a primary-impu string")
        impi = entry.get("impi")
        targets.setdefault(impu, impi if isinstance(impi, str) else "")
    return targets


async def _forget_challenges(challenges: IChallengeStore, impi: str, now: int) -> None:
    """Drop every challenge outstanding for ``impi`` (Clearwater deletes the IMPI record);
    a failure is only logged."""
    try:
        for _ in range(MAX_CAS_ATTEMPTS):
            current, cas = await challenges.get_challenges(impi)
            if not current:
                return
            try:
                await challenges.set_challenges(impi, (), cas, now)
                return
            except DataContentionError:
                continue
        raise DataContentionError("IMPI " + impi + " kept changing")
    except StoreError as e:
        _log.warn("Challenges of {impi} not deleted: {error}", impi=impi, error=e)


class _Impu(_Api):
    """``GET /impu/<impu>/bindings``, ``GET /impu/<impu>/subscriptions`` and
    ``DELETE /impu/<impu>``."""

    @override
    async def _route(self, request: Request) -> _Answer:
        path: list[bytes] = list(request.postpath or [])
        if len(path) > 1 and path[-1] == b"":
            path.pop()  # a trailing slash
        if len(path) == 1 and path[0]:
            self._allow(request, _DELETE)
            return await self._admin_deregister(_text(path[0], "public identity"))
        if len(path) == 2 and path[0] and path[1] in (b"bindings", b"subscriptions"):
            self._allow(request, _GET)
            impu = _text(path[0], "public identity")
            aor = await self._live_aor(impu)
            if path[1] == b"bindings":
                views = {k: _binding_view(b) for k, b in aor.bindings}
                return _json({"bindings": views})
            return _json(
                {"subscriptions": {k: _subscription_view(s) for k, s in aor.subscriptions}}
            )
        raise _ApiError(404, "Not found")

    async def _live_aor(self, impu: str) -> AoR:
        aor_id = await self._aor_id(impu)
        try:
            stored, _ = await self.manager.registrations.get_aor(aor_id)
        except StoreError as e:
            raise _store_failed("Reading " + aor_id, e) from None
        aor = None if stored is None else stored.without_expired(self.manager.now())
        if aor is None or not aor.bindings:
            raise _ApiError(404, "No bindings for " + impu)
        return aor

    async def _admin_deregister(self, aor_id: str) -> _Answer:
        manager = self.manager
        try:
            stored, _ = await manager.registrations.get_aor(aor_id)
        except StoreError as e:
            raise _store_failed("Reading " + aor_id, e) from None
        scscf_uri = manager.config.scscf_uri
        if stored is not None and stored.scscf_uri and stored.scscf_uri != scscf_uri:
            raise _ApiError(400, aor_id + " is assigned to " + stored.scscf_uri)
        if stored is not None:
            try:
                await manager.deregister(aor_id, None)
            except StoreError as e:
                raise _store_failed("Deregistering " + aor_id, e) from None
        try:
            await manager.homestead.put_reg_data(aor_id, ReqType.DEREG_ADMIN, server_name=scscf_uri)
        except HomesteadError as e:
            # Clearwater's DeleteImpuTask: 404 stays, another 4xx is 400, the rest 502.
            if e.status == 404:
                raise _ApiError(404, "Homestead: " + e.message) from None
            if 400 <= e.status < 500:
                raise _ApiError(400, "Homestead: " + e.message) from None
            raise _ApiError(502, "Homestead failed: " + e.message) from None
        except StoreError as e:  # homestead in process: its subscriber store
            raise _ApiError(502, "Homestead failed: " + str(e)) from None
        return _OK


# --------------------------------------------------------------------------- public


def sprout_children(
    manager: SubscriberManager, challenges: Optional[IChallengeStore] = None
) -> dict[bytes, IResource]:
    """The ``registrations`` and ``impu`` resources over ``manager`` (see the module
    docstring), to mount on a management root. ``challenges`` is the IMPI store whose
    records a Registration-Termination drops (none: they are left to expire)."""
    return {
        b"registrations": _Registrations(manager, challenges),
        b"impu": _Impu(manager, challenges),
    }


def sprout_site(
    registry: CollectorRegistry,
    manager: SubscriberManager,
    *,
    challenges: Optional[IChallengeStore] = None,
    health: Optional[HealthCheck] = None,
    reactor: Optional[IReactorTime] = None,
) -> QuietSite:
    """Sprout's management site: ``GET /ping`` and ``GET /metrics`` (over ``registry``) as
    :func:`~clearwater.http.management.management_site` serves them, plus the S-CSCF API of
    :func:`sprout_children`; no access log; request bodies bounded by :data:`MAX_BODY`.
    ``reactor`` runs the connection timeouts (Twisted's global one when None)."""
    resource: ManagementResource = management_resource(
        registry, health=health, children=sprout_children(manager, challenges)
    )
    return _SproutSite(resource, reactor=reactor)
