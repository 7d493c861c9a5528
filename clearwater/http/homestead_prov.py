# -*- test-case-name: tests.unit.http.test_homestead_prov -*-
"""Homestead-prov: Clearwater's subscriber provisioning API (spec §6.6, crest
``docs/homestead_prov_api.md``), served from an :class:`ISubscriberStore`.

Clearwater ran it on port 8889 beside homestead in HSS-less mode; Ellis and operators' scripts
provision subscribers through it. Paths, JSON keys, status codes and ``Location`` headers are
Clearwater's (crest ``provisioning/handlers/*.py``); path segments are percent-decoded (Ellis
sends them ``quote_plus``-encoded) and a trailing ``/`` is optional.

Private identities:

- ``PUT /private/<impi>`` with ``{"digest_ha1": "<hex>"[, "realm": "<realm>"]}`` or
  ``{"plaintext_password": "<password>"[, "realm": "<realm>"]}`` (not both): ``200``. The realm
  defaults to the home domain; a password is stored with its HA1 = MD5(impi:realm:password)
  (RFC 2617 §3.2.2.2); a digest replaces any stored password. ``400`` for an empty or malformed
  body. *Extension* (not Clearwater's): ``"aka": {"k": "<32 hex>", "opc": "<32 hex>" | "op":
  "<32 hex>", "amf": "<4 hex>" (default "8000"), "sqn": <int> (default 0)}`` provisions AKA
  credentials (TS 33.102 §6.3; OPc is derived from OP by Milenage, TS 35.206 §4.1); a body may
  then carry neither digest nor password. A PUT without ``"aka"`` keeps the stored AKA
  credentials; ``"aka": null`` removes them.
- ``GET /private/<impi>``: ``{"digest_ha1", "realm"[, "plaintext_password"][, "aka": {"amf",
  "sqn"}]}`` (K and OPc are never read back); ``404`` if unknown.
- ``DELETE /private/<impi>``: ``200``; ``204`` if unknown.
- ``GET /private/<impi>/associated_implicit_registration_sets``:
  ``{"associated_implicit_registration_sets": [...]}``; ``404`` if unknown.
- ``PUT|DELETE /private/<impi>/associated_implicit_registration_sets/<irs>``: ``200``; PUT
  ``404`` if either is unknown, DELETE ``204`` if the private identity is unknown.
- ``GET /private/<impi>/associated_public_ids``: ``{"associated_public_ids": [...]}``.

Implicit registration sets and service profiles:

- ``POST /irs``: ``201``, ``Location: /irs/<uuid>``.
- ``DELETE /irs/<uuid>``: ``200`` (its service profiles, public identities, associations and
  registration state go too); ``204`` if unknown.
- ``GET /irs/<uuid>/public_ids`` (provisioning order), ``GET /irs/<uuid>/private_ids``:
  ``{"public_ids": [...]}`` / ``{"private_ids": [...]}``; ``404`` if the IRS is unknown (on
  stores whose list lookups report a missing IRS; the interface has no other way to ask).
- ``PUT|DELETE /irs/<uuid>/private_ids/<impi>``: ``200``; ``404`` if either is unknown.
- ``POST /irs/<uuid>/service_profiles``: ``201``, ``Location:
  /irs/<uuid>/service_profiles/<sp>``; ``404`` if the IRS is unknown.
- ``DELETE /irs/<uuid>/service_profiles/<sp>``: ``200``; ``204`` if unknown.
- ``GET /irs/<uuid>/service_profiles/<sp>/public_ids``: ``{"public_ids": [...]}``.
- ``PUT /irs/<uuid>/service_profiles/<sp>/public_ids/<impu>`` with a ``<PublicIdentity>``
  document (TS 29.228 Annex B): ``200``; ``400`` malformed; ``403`` if its ``<Identity>`` is not
  ``<impu>``; ``404`` if the service profile is unknown. ``<BarringIndication>1`` marks it
  barred; a ``<WildcardedIMPU>`` (anywhere inside), or an identity in Clearwater's
  ``!regex!`` syntax, makes it a wildcard.
- ``DELETE .../public_ids/<impu>``: ``200``; ``404`` if unknown, ``403`` if it is in another
  service profile. (Clearwater's doc says "GET to delete"; its code and Ellis use DELETE.)
- ``PUT .../filter_criteria`` with a ``<ServiceProfile>`` document holding at least one
  ``<InitialFilterCriteria>`` (and nothing else): ``200``; ``GET``: that document; ``404`` if
  the service profile is unknown or has no iFCs.

Public identities (read only):

- ``GET /public/<impu>/service_profile``: ``303``, ``Location: /irs/<irs>/service_profiles/<sp>``.
- ``GET /public/<impu>/irs``: ``303``, ``Location: /irs/<irs>``.
- ``GET /public/<impu>/associated_private_ids``: ``{"private_ids": [...]}``.
- ``GET /public/?excludeuuids=true|false&chunk-proportion=N&chunk=M``:
  ``{"public_ids": [{"public_id", "sp", "irs"}, ...]}`` (no ``sp``/``irs`` with
  ``excludeuuids=true``). The subscriber base is split into ``N`` chunks (default 256) by a hash
  of the IMPU, as Cassandra's token ranges split it for Clearwater; ``chunk`` picks one (all
  chunks when absent). Clearwater paused 1 s between chunks to spare its database; we read the
  store in one pass of :meth:`ISubscriberStore.list_publics` pages and pause ``pacing`` seconds
  between pages instead. *Extension*: ``GET /public/?after=<impu>&limit=<n>`` answers one page
  in IMPU order, unpaced, with ``"next": "<impu>"`` when more may follow (``list-users``).

Errors carry a JSON body ``{"error": "<text>"}``: ``400`` malformed JSON or XML (naming the
problem), ``404`` unknown paths and records, ``405`` with ``Allow`` for a wrong method, ``413``
for a body over the size limit, ``503`` when the store is unavailable, ``504`` when it timed out.
XML is parsed by :func:`clearwater._xml.parse_xml` (expat; a DOCTYPE, and so any entity
declaration, is refused).

Where Clearwater's doc and code disagree we follow the code and Ellis: ``POST /irs`` gives
``Location: /irs/<uuid>`` (the doc says ``<uuid>``), and service-profile URLs use
``service_profiles`` (older code said ``service_profile``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Callable, Optional
from urllib.parse import quote, unquote_to_bytes
from xml.etree import ElementTree

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from typing_extensions import override

from clearwater._xml import parse_xml
from clearwater.aka.milenage import opc as milenage_opc
from clearwater.errors import ParseError
from clearwater.sip.auth import digest_ha1
from clearwater.stores.interfaces import (
    ISubscriberStore,
    NotFoundError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from clearwater.stores.records import AkaCredentials, PrivateIdentity, PublicIdentity

__all__ = [
    "DEFAULT_MAX_BODY",
    "HomesteadProvResource",
    "homestead_prov_children",
    "homestead_prov_resource",
    "parse_public_identity",
    "parse_service_profile_ifcs",
]

DEFAULT_MAX_BODY = 256 * 1024
"""Largest request body accepted (bytes); larger ones get ``413``."""

_JSON = b"application/json"
_XML = b"application/xml; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_DEFAULT_CHUNKS = 256
_MAX_CHUNKS = 65536
_MAX_LIMIT = 1000
_WILDCARD_RE = re.compile(r"!.*!")
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")

_log = Logger()


# --------------------------------------------------------------------------- helpers


def _to_text(element: ElementTree.Element) -> str:
    element.tail = None
    return ElementTree.tostring(element, encoding="unicode")


def parse_public_identity(data: bytes, irs: str, sp: str) -> PublicIdentity:
    """A :class:`PublicIdentity` from a ``<PublicIdentity>`` document (TS 29.228 Annex B).

    ``impu`` is its ``<Identity>`` (whitespace stripped); ``barred`` is ``<BarringIndication>``
    = 1; ``wildcard`` is the first ``<WildcardedIMPU>`` inside it, else the identity itself
    when it uses Clearwater's ``!regex!`` syntax. ``xml`` is the element re-serialised (no XML
    declaration), ready to embed in an IMSSubscription. ParseError if malformed.
    """
    root = parse_xml(data, "PublicIdentity")
    if root.tag != "PublicIdentity":
        raise ParseError("Bad PublicIdentity XML: root element is " + root.tag)
    identity = root.find("Identity")
    if identity is None or not (identity.text or "").strip():
        raise ParseError("Bad PublicIdentity XML: no Identity")
    impu = (identity.text or "").strip()
    identity.text = impu
    barring = root.find("BarringIndication")
    barred = barring is not None and (barring.text or "").strip() in ("1", "true")
    wildcard: Optional[str] = None
    for element in root.iter("WildcardedIMPU"):
        wildcard = (element.text or "").strip() or None
        break
    if wildcard is None and _WILDCARD_RE.search(impu):
        wildcard = impu
    return PublicIdentity(
        impu=impu, irs=irs, sp=sp, xml=_to_text(root), barred=barred, wildcard=wildcard
    )


def parse_service_profile_ifcs(data: bytes) -> str:
    """The ``<InitialFilterCriteria>`` elements of a ``<ServiceProfile>`` document, serialised
    one after the other (what :attr:`ServiceProfile.ifcs_xml` holds). ParseError if it is
    malformed, has no iFC, or holds anything else."""
    root = parse_xml(data, "ServiceProfile")
    if root.tag != "ServiceProfile":
        raise ParseError("Bad ServiceProfile XML: root element is " + root.tag)
    ifcs = []
    for child in root:
        if child.tag != "InitialFilterCriteria":
            raise ParseError("Bad ServiceProfile XML: unsupported element " + child.tag)
        ifcs.append(_to_text(child))
    if not ifcs:
        raise ParseError("Bad ServiceProfile XML: no InitialFilterCriteria")
    return "".join(ifcs)


def _service_profile_document(ifcs_xml: str) -> bytes:
    return (_XML_DECLARATION + "<ServiceProfile>" + ifcs_xml + "</ServiceProfile>").encode()


def _chunk_of(impu: str, chunks: int) -> int:
    """The chunk (0..chunks-1) of an IMPU: a range of a 64-bit hash, like a token range."""
    digest = hashlib.md5(impu.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") * chunks) >> 64


# --------------------------------------------------------------------------- responses


class _HttpError(Exception):
    def __init__(self, code: int, message: str, allow: Sequence[bytes] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.allow = tuple(allow)


@attrs.frozen
class _Reply:
    code: int = 200
    body: bytes = b""
    content_type: Optional[bytes] = None
    location: Optional[str] = None


def _json(value: Mapping[str, Any], code: int = 200) -> _Reply:
    body = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return _Reply(code, body, _JSON)


_OK = _Reply()
_NO_CONTENT = _Reply(204)


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


# --------------------------------------------------------------------------- the API


@attrs.frozen
class _Call:
    """One request, decoded: its variable path segments, query and body."""

    method: bytes
    args: tuple[str, ...]
    query: Mapping[bytes, Sequence[bytes]]
    request: Request
    max_body: int

    def body(self) -> bytes:
        content = self.request.content
        if content is None:
            return b""
        content.seek(0)
        data: bytes = content.read(self.max_body + 1)
        if len(data) > self.max_body:
            raise _HttpError(413, "Body larger than " + str(self.max_body) + " bytes")
        return data

    def require_empty_body(self) -> None:
        if self.body():
            raise _HttpError(400, "Body not empty")

    def json_body(self) -> dict[str, Any]:
        data = self.body()
        if not data.strip():
            raise _HttpError(400, "Empty body")
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise _HttpError(400, "Invalid JSON: " + str(e)[:200]) from None
        if not isinstance(value, dict):
            raise _HttpError(400, "Invalid JSON: not an object")
        return value

    def xml_body(self) -> bytes:
        data = self.body()
        if not data.strip():
            raise _HttpError(400, "Body is empty")
        return data

    def query_value(self, name: bytes) -> Optional[str]:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise _HttpError(400, "Repeated query parameter " + name.decode("ascii"))
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise _HttpError(400, "Bad query parameter " + name.decode("ascii")) from None


_Handler = Callable[[_Call], Awaitable[_Reply]]
_V = None  # a variable path segment in a route


def _hex_field(obj: Mapping[str, Any], key: str, length: int, default: Optional[str]) -> bytes:
    value = obj.get(key, default)
    if not isinstance(value, str) or len(value) != 2 * length or not _HEX_RE.fullmatch(value):
        raise _HttpError(400, "Invalid JSON - aka." + key + " must be " + str(2 * length) + " hex")
    return bytes.fromhex(value)


def _aka_from_json(value: Any) -> AkaCredentials:
    if not isinstance(value, dict):
        raise _HttpError(400, "Invalid JSON - aka must be an object")
    k = _hex_field(value, "k", 16, None)
    if ("op" in value) == ("opc" in value):
        raise _HttpError(400, "Invalid JSON - aka needs exactly one of op and opc")
    if "opc" in value:
        opc = _hex_field(value, "opc", 16, None)
    else:
        opc = milenage_opc(k, _hex_field(value, "op", 16, None))
    amf = _hex_field(value, "amf", 2, "8000")
    sqn = value.get("sqn", 0)
    if not isinstance(sqn, int) or isinstance(sqn, bool) or not 0 <= sqn < 1 << 48:
        raise _HttpError(400, "Invalid JSON - aka.sqn must be an integer in 0..2^48-1")
    return AkaCredentials(k=k, opc=opc, amf=amf, sqn=sqn)


def _optional_string(obj: Mapping[str, Any], key: str) -> Optional[str]:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _HttpError(400, "Invalid JSON - " + key + " must be a string")
    return value


class _Provisioning:
    """The handlers, over one store."""

    def __init__(
        self,
        store: ISubscriberStore,
        home_domain: str,
        reactor: Optional[IReactorTime],
        pacing: float,
        page_size: int,
        max_body: int,
    ) -> None:
        self.store = store
        self.home_domain = home_domain
        self._reactor = reactor
        self.pacing = pacing
        self.page_size = page_size
        self.max_body = max_body
        routes: list[tuple[tuple[Optional[str], ...], dict[bytes, _Handler]]] = [
            (("private", _V), {b"GET": self.get_private, b"PUT": self.put_private,
                               b"DELETE": self.delete_private}),
            (("private", _V, "associated_implicit_registration_sets"),
             {b"GET": self.private_irss}),
            (("private", _V, "associated_implicit_registration_sets", _V),
             {b"PUT": self.private_associate, b"DELETE": self.private_dissociate}),
            (("private", _V, "associated_public_ids"), {b"GET": self.private_publics}),
            (("irs",), {b"POST": self.create_irs}),
            (("irs", _V), {b"DELETE": self.delete_irs}),
            (("irs", _V, "public_ids"), {b"GET": self.irs_publics}),
            (("irs", _V, "private_ids"), {b"GET": self.irs_privates}),
            (("irs", _V, "private_ids", _V),
             {b"PUT": self.irs_associate, b"DELETE": self.irs_dissociate}),
            (("irs", _V, "service_profiles"), {b"POST": self.create_sp}),
            (("irs", _V, "service_profiles", _V), {b"DELETE": self.delete_sp}),
            (("irs", _V, "service_profiles", _V, "public_ids"), {b"GET": self.sp_publics}),
            (("irs", _V, "service_profiles", _V, "public_ids", _V),
             {b"PUT": self.put_public, b"DELETE": self.delete_public}),
            (("irs", _V, "service_profiles", _V, "filter_criteria"),
             {b"GET": self.get_ifcs, b"PUT": self.put_ifcs}),
            (("public",), {b"GET": self.list_publics}),
            (("public", _V, "service_profile"), {b"GET": self.public_sp}),
            (("public", _V, "irs"), {b"GET": self.public_irs}),
            (("public", _V, "associated_private_ids"), {b"GET": self.public_privates}),
        ]  # fmt: skip
        self.routes = routes

    def route(
        self, segments: Sequence[str]
    ) -> Optional[tuple[tuple[str, ...], dict[bytes, _Handler]]]:
        for pattern, methods in self.routes:
            if len(pattern) != len(segments):
                continue
            args = []
            for want, got in zip(pattern, segments):
                if want is None:
                    if not got:
                        break
                    args.append(got)
                elif want != got:
                    break
            else:
                return tuple(args), methods
        return None

    async def _sleep(self) -> None:
        if self.pacing <= 0:
            return
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        assert reactor is not None
        await deferLater(reactor, self.pacing, lambda: None)

    # -- private identities

    async def get_private(self, call: _Call) -> _Reply:
        (impi,) = call.args
        private = await self.store.get_private(impi)
        if private is None:
            raise _HttpError(404, "No private identity " + impi)
        body: dict[str, Any] = {"digest_ha1": private.digest_ha1, "realm": private.realm}
        if private.plaintext_password is not None:
            body["plaintext_password"] = private.plaintext_password
        if private.aka is not None:
            body["aka"] = {"amf": private.aka.amf.hex(), "sqn": private.aka.sqn}
        return _json(body)

    async def put_private(self, call: _Call) -> _Reply:
        (impi,) = call.args
        obj = call.json_body()
        password = _optional_string(obj, "plaintext_password")
        ha1 = _optional_string(obj, "digest_ha1")
        realm = _optional_string(obj, "realm") or self.home_domain
        aka: Optional[AkaCredentials] = None
        keep_aka = "aka" not in obj
        if not keep_aka and obj["aka"] is not None:
            aka = _aka_from_json(obj["aka"])
        if password is not None and ha1 is not None:
            raise _HttpError(400, "Invalid JSON - too many keys")
        if password is None and ha1 is None and aka is None:
            raise _HttpError(400, "Invalid JSON - missing keys")
        if ha1 is not None and (len(ha1) != 32 or not _HEX_RE.fullmatch(ha1)):
            raise _HttpError(400, "Invalid JSON - digest_ha1 must be 32 hex digits")
        if password is not None:
            ha1 = digest_ha1(impi, realm, password)
        if keep_aka:
            old = await self.store.get_private(impi)
            aka = None if old is None else old.aka
        await self.store.put_private(
            PrivateIdentity(
                impi=impi,
                realm=realm,
                digest_ha1=(ha1 or "").lower(),
                plaintext_password=password,
                aka=aka,
            )
        )
        return _OK

    async def delete_private(self, call: _Call) -> _Reply:
        (impi,) = call.args
        try:
            await self.store.delete_private(impi)
        except NotFoundError:
            return _NO_CONTENT
        return _OK

    async def _require_private(self, impi: str) -> None:
        if await self.store.get_private(impi) is None:
            raise _HttpError(404, "No private identity " + impi)

    async def private_irss(self, call: _Call) -> _Reply:
        (impi,) = call.args
        await self._require_private(impi)
        irss = await self.store.irs_of_private(impi)
        return _json({"associated_implicit_registration_sets": irss})

    async def private_associate(self, call: _Call) -> _Reply:
        impi, irs = call.args
        call.require_empty_body()
        await self.store.associate(irs, impi)
        return _OK

    async def private_dissociate(self, call: _Call) -> _Reply:
        impi, irs = call.args
        call.require_empty_body()
        if await self.store.get_private(impi) is None:
            return _NO_CONTENT
        await self.store.dissociate(irs, impi)
        return _OK

    async def private_publics(self, call: _Call) -> _Reply:
        (impi,) = call.args
        await self._require_private(impi)
        publics = await self.store.publics_of_private(impi)
        return _json({"associated_public_ids": publics})

    # -- implicit registration sets

    async def create_irs(self, call: _Call) -> _Reply:
        call.require_empty_body()
        irs = await self.store.create_irs()
        return _Reply(201, location=_path("irs", irs))

    async def delete_irs(self, call: _Call) -> _Reply:
        (irs,) = call.args
        call.require_empty_body()
        try:
            await self.store.delete_irs(irs)
        except NotFoundError:
            return _NO_CONTENT
        return _OK

    async def irs_publics(self, call: _Call) -> _Reply:
        (irs,) = call.args
        publics = await self.store.publics_of_irs(irs)
        return _json({"public_ids": [p.impu for p in publics]})

    async def irs_privates(self, call: _Call) -> _Reply:
        (irs,) = call.args
        return _json({"private_ids": await self.store.privates_of_irs(irs)})

    async def irs_associate(self, call: _Call) -> _Reply:
        irs, impi = call.args
        call.require_empty_body()
        await self.store.associate(irs, impi)
        return _OK

    async def irs_dissociate(self, call: _Call) -> _Reply:
        irs, impi = call.args
        call.require_empty_body()
        await self._require_private(impi)
        await self.store.privates_of_irs(irs)  # NotFoundError (404) for an unknown IRS
        await self.store.dissociate(irs, impi)
        return _OK

    # -- service profiles

    async def create_sp(self, call: _Call) -> _Reply:
        (irs,) = call.args
        call.require_empty_body()
        profile = await self.store.create_service_profile(irs)
        return _Reply(201, location=_path("irs", irs, "service_profiles", profile.sp))

    async def delete_sp(self, call: _Call) -> _Reply:
        irs, sp = call.args
        call.require_empty_body()
        try:
            await self.store.delete_service_profile(irs, sp)
        except NotFoundError:
            return _NO_CONTENT
        return _OK

    async def _require_sp(self, irs: str, sp: str) -> str:
        profile = await self.store.get_service_profile(irs, sp)
        if profile is None:
            raise _HttpError(
                404, "No service profile " + sp + " in implicit registration set " + irs
            )
        return profile.ifcs_xml

    async def sp_publics(self, call: _Call) -> _Reply:
        irs, sp = call.args
        await self._require_sp(irs, sp)
        publics = await self.store.publics_of_irs(irs)
        return _json({"public_ids": [p.impu for p in publics if p.sp == sp]})

    async def put_public(self, call: _Call) -> _Reply:
        irs, sp, impu = call.args
        data = call.xml_body()
        try:
            identity = parse_public_identity(data, irs, sp)
        except ParseError as e:
            raise _HttpError(400, e.reason) from None
        if identity.impu != impu:
            raise _HttpError(403, "Incorrect XML Identity")
        await self._require_sp(irs, sp)
        await self.store.put_public(identity)
        return _OK

    async def delete_public(self, call: _Call) -> _Reply:
        irs, sp, impu = call.args
        identity = await self.store.get_public(impu)
        if identity is None:
            raise _HttpError(404, "No public identity " + impu)
        if identity.irs != irs or identity.sp != sp:
            raise _HttpError(403, "Public ID not a child of Service Profile")
        await self.store.delete_public(impu)
        return _OK

    async def get_ifcs(self, call: _Call) -> _Reply:
        irs, sp = call.args
        ifcs = await self._require_sp(irs, sp)
        if not ifcs:
            raise _HttpError(404, "No iFCs in service profile " + sp)
        return _Reply(200, _service_profile_document(ifcs), _XML)

    async def put_ifcs(self, call: _Call) -> _Reply:
        irs, sp = call.args
        data = call.xml_body()
        try:
            ifcs = parse_service_profile_ifcs(data)
        except ParseError as e:
            raise _HttpError(400, e.reason) from None
        await self._require_sp(irs, sp)
        await self.store.set_ifcs(irs, sp, ifcs)
        return _OK

    # -- public identities

    async def _require_public(self, impu: str) -> PublicIdentity:
        identity = await self.store.get_public(impu)
        if identity is None:
            raise _HttpError(404, "No public identity " + impu)
        return identity

    async def public_sp(self, call: _Call) -> _Reply:
        (impu,) = call.args
        identity = await self._require_public(impu)
        return _Reply(303, location=_path("irs", identity.irs, "service_profiles", identity.sp))

    async def public_irs(self, call: _Call) -> _Reply:
        (impu,) = call.args
        identity = await self._require_public(impu)
        return _Reply(303, location=_path("irs", identity.irs))

    async def public_privates(self, call: _Call) -> _Reply:
        (impu,) = call.args
        identity = await self._require_public(impu)
        return _json({"private_ids": await self.store.privates_of_irs(identity.irs)})

    async def list_publics(self, call: _Call) -> _Reply:
        exclude = call.query_value(b"excludeuuids")
        if exclude not in (None, "true", "false"):
            raise _HttpError(400, "excludeuuids must be true or false")
        brief = exclude == "true"

        def entry(identity: PublicIdentity) -> dict[str, str]:
            if brief:
                return {"public_id": identity.impu}
            return {"public_id": identity.impu, "sp": identity.sp, "irs": identity.irs}

        limit_text = call.query_value(b"limit")
        if limit_text is not None:
            return await self._list_page(call, limit_text, entry)
        chunks = _int_param(call.query_value(b"chunk-proportion"), "chunk-proportion")
        chunks = _DEFAULT_CHUNKS if chunks is None else chunks
        if not 1 <= chunks <= _MAX_CHUNKS:
            raise _HttpError(400, "chunk-proportion must be in 1.." + str(_MAX_CHUNKS))
        chunk = _int_param(call.query_value(b"chunk"), "chunk")
        if chunk is not None and not 0 <= chunk < chunks:
            raise _HttpError(400, "chunk must be in 0.." + str(chunks - 1))
        found: list[dict[str, str]] = []
        after = ""
        while True:
            page = await self.store.list_publics(after, self.page_size)
            for identity in page:
                if chunk is None or _chunk_of(identity.impu, chunks) == chunk:
                    found.append(entry(identity))
            if len(page) < self.page_size or _gone(call.request):
                break
            after = page[-1].impu
            await self._sleep()
        return _json({"public_ids": found})

    async def _list_page(
        self, call: _Call, limit_text: str, entry: Callable[[PublicIdentity], dict[str, str]]
    ) -> _Reply:
        if call.query_value(b"chunk") is not None:
            raise _HttpError(400, "limit and chunk cannot be combined")
        limit = _int_param(limit_text, "limit")
        if limit is None or not 1 <= limit <= _MAX_LIMIT:
            raise _HttpError(400, "limit must be in 1.." + str(_MAX_LIMIT))
        after = call.query_value(b"after") or ""
        page = await self.store.list_publics(after, limit)
        body: dict[str, Any] = {"public_ids": [entry(p) for p in page]}
        if len(page) == limit:
            body["next"] = page[-1].impu
        return _json(body)


def _int_param(text: Optional[str], name: str) -> Optional[int]:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 9:
        raise _HttpError(400, name + " must be a non-negative integer")
    return int(text)


# --------------------------------------------------------------------------- resources


def _decode_segments(segments: Sequence[bytes]) -> list[str]:
    try:
        return [unquote_to_bytes(s).decode("utf-8") for s in segments]
    except UnicodeDecodeError:
        raise _HttpError(400, "Path is not UTF-8") from None


class _ApiResource(Resource):
    """One top-level API path (``private``, ``irs``, ``public``) and everything below it."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, api: _Provisioning, top: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._api = api
        self._top = top

    @override
    def render(self, request: Request) -> int:
        done = request.notifyFinish()
        done.addErrback(lambda _: None)  # the client went away: nothing more to send
        result: Deferred[_Reply] = Deferred.fromCoroutine(self._dispatch(request))
        result.addCallbacks(
            lambda reply: _send(request, reply),
            lambda failure: _send(request, _error_reply(request, failure)),
        )
        return NOT_DONE_YET

    async def _dispatch(self, request: Request) -> _Reply:
        raw = list(request.postpath or [])
        if raw and raw[-1] == b"":
            raw.pop()  # one trailing slash is optional
        segments = [self._top, *_decode_segments(raw)]
        found = self._api.route(segments)
        if found is None:
            raise _HttpError(404, "Not found")
        args, methods = found
        method = request.method
        if method == b"HEAD" and b"GET" in methods:
            method = b"GET"
        handler = methods.get(method)
        if handler is None:
            allow = sorted(methods) + ([b"HEAD"] if b"GET" in methods else [])
            raise _HttpError(405, "Method not allowed", allow)
        call = _Call(method, args, request.args or {}, request, self._api.max_body)
        return await handler(call)


def _error_reply(request: Request, failure: Failure) -> _Reply:
    error = failure.value
    if isinstance(error, _HttpError):
        if error.allow:
            request.responseHeaders.setRawHeaders(b"Allow", [b", ".join(error.allow)])
        return _json({"error": error.message}, error.code)
    if isinstance(error, StoreTimeoutError):
        return _json({"error": "Subscriber store timed out: " + str(error)}, 504)
    if isinstance(error, StoreUnavailableError):
        return _json({"error": "Subscriber store unavailable: " + str(error)}, 503)
    if isinstance(error, NotFoundError):
        return _json({"error": str(error)}, 404)
    _log.failure("Homestead-prov request {method} {uri} failed", failure,
                 method=request.method, uri=request.uri)  # fmt: skip
    return _json({"error": "Internal error"}, 500)


def _gone(request: Request) -> bool:
    """Whether the response is finished or the client went away (no public flag for that)."""
    return bool(request.finished or request._disconnected)


def _send(request: Request, reply: _Reply) -> None:
    if _gone(request):
        return
    request.setResponseCode(reply.code)
    if reply.location is not None:
        request.responseHeaders.setRawHeaders(b"Location", [reply.location.encode("ascii")])
    if reply.code != 204:
        if reply.content_type is not None:
            request.responseHeaders.setRawHeaders(b"Content-Type", [reply.content_type])
        request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(reply.body)])
        if reply.body:
            request.write(reply.body)  # type: ignore[no-untyped-call]  # untyped in Twisted
    request.finish()  # type: ignore[no-untyped-call]  # untyped in Twisted


class _Ping(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.responseHeaders.setRawHeaders(b"Allow", [b"GET, HEAD"])
            request.responseHeaders.setRawHeaders(b"Content-Type", [_JSON])
            return b'{"error":"Method not allowed"}'
        request.responseHeaders.setRawHeaders(b"Content-Type", [_TEXT])
        return b"OK"


class _NotFound(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def render(self, request: Request) -> bytes:
        request.setResponseCode(404)
        request.responseHeaders.setRawHeaders(b"Content-Type", [_JSON])
        return b'{"error":"Not found"}'


_NOT_FOUND = _NotFound()


class HomesteadProvResource(Resource):
    """The root of the homestead-prov port: ``/private``, ``/irs``, ``/public``, ``/ping``;
    JSON ``404`` elsewhere (see the module docstring)."""

    def __init__(self, children: Mapping[bytes, IResource]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.putChild(b"ping", _Ping())
        for name, child in children.items():
            self.putChild(name, child)

    @override
    def getChild(self, path: bytes, request: Request) -> IResource:
        return _NOT_FOUND

    @override
    def render(self, request: Request) -> bytes:
        return _NOT_FOUND.render(request)


def homestead_prov_children(
    store: ISubscriberStore,
    home_domain: str,
    *,
    reactor: Optional[IReactorTime] = None,
    pacing: float = 1.0,
    page_size: int = 1000,
    max_body: int = DEFAULT_MAX_BODY,
) -> dict[bytes, IResource]:
    """The API's top-level resources, ``{b"private": ..., b"irs": ..., b"public": ...}``, to
    mount beside ``/ping`` and ``/metrics`` (e.g. as ``management_resource``'s ``children``).

    ``home_domain`` is the default digest realm. ``pacing`` is the pause (seconds, on
    ``reactor``; Twisted's global reactor when None) between store pages of a ``/public/``
    listing; 0 for none. ``page_size`` is the number of IMPUs read per page; ``max_body`` the
    largest request body accepted.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if pacing < 0:
        raise ValueError("pacing must not be negative")
    api = _Provisioning(store, home_domain, reactor, pacing, page_size, max_body)
    return {name.encode(): _ApiResource(api, name) for name in ("private", "irs", "public")}


def homestead_prov_resource(
    store: ISubscriberStore,
    home_domain: str,
    *,
    reactor: Optional[IReactorTime] = None,
    pacing: float = 1.0,
    page_size: int = 1000,
    max_body: int = DEFAULT_MAX_BODY,
) -> HomesteadProvResource:
    """The whole homestead-prov tree, ``/ping`` included, to serve as a Site's root (``twistd
    homestead --prov-port``). Arguments as for :func:`homestead_prov_children`."""
    return HomesteadProvResource(
        homestead_prov_children(
            store,
            home_domain,
            reactor=reactor,
            pacing=pacing,
            page_size=page_size,
            max_body=max_body,
        )
    )
