# -*- test-case-name: tests.unit.homestead.test_hss -*-
"""Homestead in HSS mode: homestead's HTTP answers (clearwater spec §6.1) from an HSS over
Diameter Cx (3GPP TS 29.228 §6, TS 29.229; spec §7.1), cached in an ICasStore; and the HSS's
Registration-Termination and Push-Profile requests turned into sprout's HTTP calls (spec
§3.11, §6.2).

:class:`HssHomestead` has the methods of :class:`~clearwater.homestead.api.IHomestead`, as
:class:`~clearwater.homestead.hssless.HsslessHomestead` does, and the same answer types:

* ``get_av`` / ``get_digest``: a MAR (SIP-Authentication-Scheme "SIP Digest",
  "Digest-AKAv1-MD5", "Digest-AKAv2-SHA-256", or "Unknown" for a bare ``av``: the HSS chooses;
  a ``resync-auth`` goes, base64-decoded, in SIP-Authorization; Server-Name is the
  ``server-name`` asked for, else ours). Without an IMPU, the first one cached for the IMPI is
  used (404 if none). The MAA's scheme decides the vector: a digest one is HA1, realm, qop
  (an empty qop answered as "auth"); an AKA one is challenge = base64(SIP-Authenticate, RAND ‖
  AUTN), response = hex(SIP-Authorization, XRES), cryptkey/integritykey = hex(CK/IK), version 2
  for "Digest-AKAv2-SHA-256" (spec §3.2). Another scheme: 404; ``get_digest`` of AKA: 404.
* ``registration_status``: a UAR (User-Authorization-Type from ``auth-type`` REG/DEREG/CAPAB,
  UAR-Flags emergency for ``sos``; Visited-Network-Identifier defaults to the home domain,
  as Clearwater's ``default_realm``); ``location``: a LIR (Originating-Request when
  originating; User-Authorization-Type REGISTRATION_AND_CAPABILITIES for CAPAB). Both answer
  the result code (Result-Code 2001, or the Experimental-Result-Code of a success variant:
  UAA 2001/2002, LIA 2003 and 5003) with Server-Name (else a Server-Name inside
  Server-Capabilities, as Clearwater did) or the capabilities, and the LIA's
  Wildcarded-Public-Identity.
* ``get_reg_data`` reads the cache only (nothing cached: NOT_REGISTERED, no subscription).
  ``put_reg_data`` applies spec §6.1's reqtype table, as Clearwater's ``ImpuRegDataTask``:

  ======================= =================================================================
  reqtype                 Cx and cache
  ======================= =================================================================
  ``reg``                 SAR REGISTRATION unless REGISTERED; RE_REGISTRATION when
                          REGISTERED and ``reregistration_time`` has passed since the last
                          SAR; REGISTRATION too for an IMPI the set has not registered
                          with (a new binding); otherwise the cache answers. → REGISTERED
  ``call``                SAR UNREGISTERED_USER when NOT_REGISTERED (→ UNREGISTERED),
                          otherwise the cache answers
  ``dereg-user|timeout|   SAR USER_DEREGISTRATION / TIMEOUT_DEREGISTRATION /
  admin``                 ADMINISTRATIVE_DEREGISTRATION, the cache dropped (→ NOT_REGISTERED);
                          400 when nothing is registered or assigned (NOT_REGISTERED). The
                          cache is dropped even if the HSS refuses, but not when it could not
                          be asked (503, 504): sprout then tries another homestead.
  ``dereg-auth-failed|    SAR AUTHENTICATION_FAILURE / AUTHENTICATION_TIMEOUT, no change
  timeout``
  ======================= =================================================================

  SAR User-Name is ``private_id``, else the ``<PrivateID>`` of the cached subscription;
  Server-Name is ``server_name``, else ours; ``wildcard_identity`` is sent as
  Wildcarded-Public-Identity and is the key the cache is read by. An SAA with
  DIAMETER_ERROR_IN_ASSIGNMENT_TYPE naming another wildcard is retried once with it
  (Clearwater's "new wildcard"). A successful REGISTRATION, RE_REGISTRATION or
  UNREGISTERED_USER caches the SAA's User-Data (the ``<IMSSubscription>``) and
  Charging-Information (kept from the cache when the SAA has none). ``reg`` and ``call``
  answers carry ``<PreviousRegistrationState>``.

The cache (``cache``, an :class:`~clearwater.stores.interfaces.ICasStore`), in two tables:

* :data:`IMPU_TABLE`: the implicit registration set under its default IMPU (the first
  non-barred public identity of the subscription) as JSON ``{"default", "impus", "state",
  "impis", "xml", "ccfs", "ecfs", "sar"}`` (``impus``: every key that names the set;
  ``impis``: the private identities registered with it; ``sar``: when the last SAR was
  answered, epoch s); each other public identity (a wildcarded one by its wildcard) as
  ``{"ref": "<default IMPU>"}``.
* :data:`IMPI_TABLE`: per private identity, ``{"impus": [default IMPUs of its sets]}``.

Records live twice ``reregistration_time`` from the last SAR (Clearwater's
``hss_reregistration_time``: "cache invalidated after twice that"); a Push-Profile changes
them without extending that. Writes are compare-and-set, retried on
:class:`~clearwater.stores.interfaces.DataContentionError`; store failures pass through for
the HTTP layer to map (503/504).

Errors are :class:`~clearwater.homestead.hssless.HomesteadError` with spec §7.1's status
(:func:`clearwater.diameter.apps.cx.http_status`): no HSS peer 503, no answer in time 504,
USER_UNKNOWN / IDENTITIES_DONT_MATCH 404, AUTHORIZATION_REJECTED / ROAMING_NOT_ALLOWED 403,
DIAMETER_TOO_BUSY 504, DIAMETER_UNABLE_TO_DELIVER 503, anything else 500 (an answer that does
not parse included).

HSS-initiated requests (:meth:`HssHomestead.handle_cx_request`, for the node's
``set_handler(APP_CX, …)``; Clearwater's ``diameter_handlers.cpp``):

* RTR: the sets named by the Public-Identity AVPs, else (or for SERVER_CHANGE and
  NEW_SERVER_ASSIGNED, whose identities Clearwater ignores) every set of the User-Name and
  Associated-Identities IMPIs, from the cache. Sprout gets ``DELETE
  /registrations?send-notifications=…`` with each set's default IMPU: PERMANENT_TERMINATION
  ``false`` and one entry per (IMPU, IMPI) pair; REMOVE_S_CSCF and SERVER_CHANGE ``true``,
  no IMPIs; NEW_SERVER_ASSIGNED ``false``, no IMPIs. The sets leave the cache; the RTA is
  DIAMETER_SUCCESS (with Associated-Identities naming the IMPIs), DIAMETER_UNABLE_TO_COMPLY
  if sprout or the cache failed. No set cached: DIAMETER_SUCCESS and nothing else.
* PPR: with neither User-Data nor Charging-Information, DIAMETER_SUCCESS. Otherwise the
  IMPI's cached sets (none: Experimental-Result DIAMETER_ERROR_USER_UNKNOWN). New User-Data
  must keep its set's default IMPU (else DIAMETER_UNABLE_TO_COMPLY, as Clearwater) and, when
  it differs from the cached one, goes to sprout (``PUT /registrations/<default IMPU>``)
  before it is cached; Charging-Information replaces every set's charging addresses. Sprout
  or the cache failing: DIAMETER_UNABLE_TO_COMPLY.
* Any other Cx request: DIAMETER_COMMAND_UNSUPPORTED.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, Callable, Optional, TypedDict, TypeVar, Union

import attrs
from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.logger import Logger

from clearwater._xml import parse_xml
from clearwater.diameter.apps import cx
from clearwater.diameter.apps.cx import (
    CX,
    SCHEME_AKAV1,
    SCHEME_AKAV2,
    SCHEME_DIGEST,
    SCHEME_UNKNOWN,
    CxOutcome,
    ReasonCode,
    ServerAssignmentType,
    UserAuthorizationType,
    http_status,
)
from clearwater.diameter.dictionary import APP_CX
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
)
from clearwater.diameter.message import DiameterDecodeError, Message, make_answer
from clearwater.diameter.results import CxResult, ResultCode
from clearwater.errors import ParseError
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    ChargingAddresses,
    DigestAv,
    HomesteadError,
    RegData,
    ReqType,
    ServerAssignment,
)
from clearwater.http.sprout_client import SproutRegistrations
from clearwater.stores.interfaces import DataContentionError, ICasStore
from clearwater.stores.records import RegState

__all__ = [
    "DEFAULT_REREGISTRATION_TIME",
    "IMPI_TABLE",
    "IMPU_TABLE",
    "HssHomestead",
]

#: The cache table of implicit registration sets, by public identity.
IMPU_TABLE = "homestead_impu"
#: The cache table of private identities (the default IMPUs of their sets).
IMPI_TABLE = "homestead_impi"
#: Clearwater's ``hss_reregistration_time`` default, seconds.
DEFAULT_REREGISTRATION_TIME = 1800.0

_CAS_ATTEMPTS = 10
_MAX_SETS_PER_IMPI = 100
_MAX_TEMPLATES = 1000
_MAX_TEMPLATE_CHARS = 16 << 20

_MAR_SCHEMES: dict[Optional[AvScheme], str] = {
    None: SCHEME_UNKNOWN,
    AvScheme.DIGEST: SCHEME_DIGEST,
    AvScheme.AKA: SCHEME_AKAV1,
    AvScheme.AKA2: SCHEME_AKAV2,
}
_UAR_TYPES = {
    "REG": UserAuthorizationType.REGISTRATION,
    "DEREG": UserAuthorizationType.DE_REGISTRATION,
    "CAPAB": UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
}
_DEREG_TYPES = {
    ReqType.DEREG_USER: ServerAssignmentType.USER_DEREGISTRATION,
    ReqType.DEREG_TIMEOUT: ServerAssignmentType.TIMEOUT_DEREGISTRATION,
    ReqType.DEREG_ADMIN: ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION,
}
_AUTH_FAILURE_TYPES = {
    ReqType.DEREG_AUTH_FAILED: ServerAssignmentType.AUTHENTICATION_FAILURE,
    ReqType.DEREG_AUTH_TIMEOUT: ServerAssignmentType.AUTHENTICATION_TIMEOUT,
}
# Statuses for which the HSS was not asked (or not heard): a de-registration keeps the cache.
_NOT_ASKED = (503, 504)

_RTR = CX.command("RTR").code
_PPR = CX.command("PPR").code
_RESULT_CODE_KEY = CX["Result-Code"].key
_EMPTY = RegData(RegState.NOT_REGISTERED)

_A = TypeVar("_A")
_log = Logger()


# --------------------------------------------------------------------------- cache records


@attrs.frozen
class _Irs:
    """A cached implicit registration set (the record under its default IMPU)."""

    default: str
    impus: tuple[str, ...]  # every key naming the set, the default first
    state: RegState
    impis: tuple[str, ...] = ()
    xml: str = ""
    ccfs: tuple[str, ...] = ()
    ecfs: tuple[str, ...] = ()
    sar_time: float = 0.0

    def to_bytes(self) -> bytes:
        return _json(
            {
                "default": self.default,
                "impus": list(self.impus),
                "state": self.state.value,
                "impis": list(self.impis),
                "xml": self.xml,
                "ccfs": list(self.ccfs),
                "ecfs": list(self.ecfs),
                "sar": self.sar_time,
            }
        )


@attrs.frozen
class _Ref:
    """A public identity's pointer to its set's default IMPU."""

    default: str

    def to_bytes(self) -> bytes:
        return _json({"ref": self.default})


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return tuple(value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _decode_record(key: str, data: Optional[bytes]) -> Union[_Irs, _Ref, None]:
    """The record ``data`` holds (None: absent, or corrupt, which is logged)."""
    if data is None:
        return None
    try:
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        if "ref" in value:
            return _Ref(_string(value["ref"]))
        sar = value.get("sar", 0.0)
        if isinstance(sar, bool) or not isinstance(sar, (int, float)):
            raise ValueError("bad sar")
        return _Irs(
            default=_string(value["default"]),
            impus=_strings(value["impus"]),
            state=RegState(value["state"]),
            impis=_strings(value.get("impis", [])),
            xml=_string(value.get("xml", "")),
            ccfs=_strings(value.get("ccfs", [])),
            ecfs=_strings(value.get("ecfs", [])),
            sar_time=float(sar),
        )
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        _log.warn("Corrupt homestead cache record {key}: {error}", key=key, error=str(e))
        return None


def _decode_impi(key: str, data: Optional[bytes]) -> tuple[str, ...]:
    if data is None:
        return ()
    try:
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return _strings(value["impus"])
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        _log.warn("Corrupt homestead IMPI record {key}: {error}", key=key, error=str(e))
        return ()


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    """``items`` in order, without repeats or empty strings."""
    return tuple(dict.fromkeys(item for item in items if item))


_Change = Callable[[Optional[bytes]], Optional[bytes]]


def _impi_change(key: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> _Change:
    """A change of an IMPI record: ``add`` default IMPUs (kept last; at most
    :data:`_MAX_SETS_PER_IMPI` in all, the oldest dropped) and ``remove`` others."""

    def change(data: Optional[bytes]) -> Optional[bytes]:
        kept = [d for d in _decode_impi(key, data) if d not in remove and d not in add]
        impus = (kept + list(add))[-_MAX_SETS_PER_IMPI:]
        return _json({"impus": impus}) if impus else None

    return change


# --------------------------------------------------------------------------- Cx helpers


class _Head(TypedDict):
    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: Optional[str]


class _NewWildcardError(Exception):
    """An SAA named another wildcard for the identity (DIAMETER_ERROR_IN_ASSIGNMENT_TYPE)."""

    def __init__(self, wildcard: str) -> None:
        super().__init__(wildcard)
        self.wildcard = wildcard


def _parsed(parse: Callable[[Message], _A], answer: Message, command: str) -> _A:
    try:
        return parse(answer)
    except (DiameterDecodeError, ValueError) as e:
        raise HomesteadError(500, "Bad " + command + " answer from the HSS: " + str(e)) from e


def _describe(outcome: CxOutcome) -> str:
    kind = "Experimental-Result-Code " if outcome.experimental else "Result-Code "
    return kind + str(outcome.code)


def _check(outcome: CxOutcome, command: str) -> None:
    """HomesteadError with spec §7.1's status unless ``outcome`` answers 200."""
    status = http_status(outcome, command)
    if status != 200:
        raise HomesteadError(status, "HSS answered " + command + " with " + _describe(outcome))


def _assignment(
    answer: Union[cx.UaaAnswer, cx.LiaAnswer], wildcard: Optional[str] = None
) -> ServerAssignment:
    """The S-CSCF of a UAA or LIA: its Server-Name, else the first Server-Name inside
    Server-Capabilities (Clearwater's fallback), else the capabilities to choose one by."""
    servers = answer.capability_servers
    return ServerAssignment(
        result_code=answer.outcome.code,
        scscf=answer.server_name or (servers[0] if servers else None),
        mandatory_capabilities=answer.mandatory_capabilities,
        optional_capabilities=answer.optional_capabilities,
        wildcard_identity=wildcard,
    )


def _resync(resync_auth: Optional[str]) -> Optional[bytes]:
    if not resync_auth:
        return None
    try:
        return base64.b64decode(resync_auth, validate=True)
    except (binascii.Error, ValueError):
        raise HomesteadError(400, "Bad resync-auth: not base64") from None


# --------------------------------------------------------------------------- homestead


class HssHomestead:
    """Homestead's answers from an HSS over Cx (see the module docstring).

    ``node`` sends the Cx requests (to ``hss_host`` if given, else by realm to ``hss_realm``)
    and hands over the HSS's (register :meth:`handle_cx_request` for ``APP_CX``); ``cache``
    keeps the answers; ``sprout`` is told about network-initiated changes. ``server_name`` is
    our S-CSCF URI, the MAR and SAR Server-Name when sprout names none; ``home_domain`` the
    UAR's Visited-Network-Identifier when none is given. ``reregistration_time`` is the
    longest a registration goes without a SAR (records live twice that); ``timeout`` bounds
    each Cx request (None: the node's default); ``now`` gives epoch seconds.
    """

    def __init__(
        self,
        node: IDiameterNode,
        cache: ICasStore,
        sprout: SproutRegistrations,
        *,
        hss_realm: str,
        hss_host: Optional[str],
        server_name: str,
        home_domain: str,
        reregistration_time: float = DEFAULT_REREGISTRATION_TIME,
        timeout: Optional[float] = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if reregistration_time <= 0:
            raise ValueError("reregistration_time must be positive")
        self._node = node
        self._cache = cache
        self._sprout = sprout
        self._hss_realm = hss_realm
        self._hss_host = hss_host
        self._server_name = server_name
        self._home_domain = home_domain
        self._reregistration_time = reregistration_time
        self._ttl = max(1, math.ceil(2 * reregistration_time))
        self._timeout = timeout
        self._now = now
        self._templates: dict[str, RegData] = {}
        self._template_chars = 0

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def record_ttl(self) -> int:
        """How long cache records live after a SAR, seconds."""
        return self._ttl

    # -- Cx

    def _head(self) -> _Head:
        return {
            "session_id": self._node.new_session_id(),
            "origin_host": self._node.identity,
            "origin_realm": self._node.realm,
            "destination_realm": self._hss_realm,
            "destination_host": self._hss_host,
        }

    async def _ask(self, request: Message, command: str) -> Message:
        try:
            return await self._node.request(request, self._timeout)
        except NoPeerError as e:
            raise HomesteadError(503, "No HSS peer for " + command + ": " + str(e)) from e
        except DiameterTimeoutError as e:
            raise HomesteadError(504, "HSS did not answer " + command) from e

    async def _mar(
        self,
        impi: str,
        impu: str,
        scheme: str,
        server_name: Optional[str],
        authorization: Optional[bytes] = None,
    ) -> cx.MaaAnswer:
        request = cx.mar(
            **self._head(),
            impi=impi,
            impu=impu,
            scheme=scheme,
            server_name=server_name or self._server_name,
            authorization=authorization,
        )
        answer = _parsed(cx.parse_maa, await self._ask(request, "MAR"), "MAR")
        _check(answer.outcome, "MAR")
        return answer

    async def _sar(
        self,
        impu: str,
        impi: Optional[str],
        server_name: str,
        assignment_type: ServerAssignmentType,
        wildcard: Optional[str],
    ) -> cx.SaaAnswer:
        request = cx.sar(
            **self._head(),
            impi=impi,
            impu=impu,
            server_name=server_name,
            assignment_type=assignment_type,
            wildcard=wildcard,
        )
        answer = _parsed(cx.parse_saa, await self._ask(request, "SAR"), "SAR")
        outcome = answer.outcome
        new_wildcard = answer.wildcarded_identity
        if (
            outcome.is_3gpp
            and outcome.code == CxResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE
            and new_wildcard
            and new_wildcard != wildcard
        ):
            raise _NewWildcardError(new_wildcard)
        _check(outcome, "SAR")
        return answer

    # -- /impi/<impi>/av[/<scheme>], /impi/<impi>/digest

    def get_av(
        self,
        impi: str,
        impu: Optional[str] = None,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        """MAR for a vector of ``scheme`` (None: the HSS chooses). 400 a ``resync_auth``
        that is not base64; 404 no IMPU given or cached, or a scheme homestead cannot use."""
        return Deferred.fromCoroutine(self._get_av(impi, impu, scheme, resync_auth, server_name))

    async def _get_av(
        self,
        impi: str,
        impu: Optional[str],
        scheme: Optional[AvScheme],
        resync_auth: Optional[str],
        server_name: Optional[str],
    ) -> Union[DigestAv, AkaAv]:
        authorization = _resync(resync_auth)
        impu = impu or await self._cached_impu(impi)
        answer = await self._mar(impi, impu, _MAR_SCHEMES[scheme], server_name, authorization)
        if answer.digest is not None:
            digest = answer.digest
            return DigestAv(ha1=digest.ha1, realm=digest.realm, qop=digest.qop or "auth")
        if answer.aka is not None:
            aka = answer.aka
            return AkaAv(
                challenge=base64.b64encode(aka.challenge).decode("ascii"),
                response=aka.response.hex(),
                cryptkey=aka.confidentiality_key.hex(),
                integritykey=aka.integrity_key.hex(),
                version=2 if answer.scheme == SCHEME_AKAV2 else 1,
            )
        raise HomesteadError(404, "Unsupported authentication scheme " + repr(answer.scheme))

    def get_digest(self, impi: str, public_id: Optional[str] = None) -> Deferred[str]:
        """MAR "SIP Digest": the HA1; 404 if the HSS gives anything else."""
        return Deferred.fromCoroutine(self._get_digest(impi, public_id))

    async def _get_digest(self, impi: str, public_id: Optional[str]) -> str:
        impu = public_id or await self._cached_impu(impi)
        answer = await self._mar(impi, impu, SCHEME_DIGEST, None)
        if answer.digest is None:
            raise HomesteadError(404, "No digest credentials for private identity " + impi)
        return answer.digest.ha1

    async def _cached_impu(self, impi: str) -> str:
        defaults = await self._impi_defaults(impi)
        if not defaults:
            raise HomesteadError(404, "No public identity known for private identity " + impi)
        return defaults[0]

    # -- /impi/<impi>/registration-status, /impu/<impu>/location

    def registration_status(
        self,
        impi: str,
        impu: str,
        visited_network: Optional[str] = None,
        auth_type: Optional[str] = None,
        sos: bool = False,
    ) -> Deferred[ServerAssignment]:
        """UAR; 400 for a missing ``impu`` or an unknown ``auth_type``."""
        return Deferred.fromCoroutine(
            self._registration_status(impi, impu, visited_network, auth_type, sos)
        )

    async def _registration_status(
        self,
        impi: str,
        impu: str,
        visited_network: Optional[str],
        auth_type: Optional[str],
        sos: bool,
    ) -> ServerAssignment:
        kind = _UAR_TYPES.get(auth_type or "REG")
        if kind is None:
            raise HomesteadError(400, "Bad auth-type: " + str(auth_type))
        if not impu:
            raise HomesteadError(400, "Missing impu")
        request = cx.uar(
            **self._head(),
            impi=impi,
            impu=impu,
            visited_network=visited_network or self._home_domain,
            authorization_type=kind,
            emergency=sos,
        )
        message = await self._ask(request, "UAR")
        answer = _parsed(cx.parse_uaa, message, "UAR")
        _check(answer.outcome, "UAR")
        return _assignment(answer)

    def location(
        self, impu: str, originating: bool = False, auth_type: Optional[str] = None
    ) -> Deferred[ServerAssignment]:
        """LIR; 400 for an unknown ``auth_type``."""
        return Deferred.fromCoroutine(self._location(impu, originating, auth_type))

    async def _location(
        self, impu: str, originating: bool, auth_type: Optional[str]
    ) -> ServerAssignment:
        if auth_type and auth_type not in _UAR_TYPES:
            raise HomesteadError(400, "Bad auth-type: " + auth_type)
        kind = None
        if auth_type == "CAPAB":
            kind = UserAuthorizationType.REGISTRATION_AND_CAPABILITIES
        request = cx.lir(
            **self._head(), impu=impu, originating=originating, authorization_type=kind
        )
        message = await self._ask(request, "LIR")
        answer = _parsed(cx.parse_lia, message, "LIR")
        _check(answer.outcome, "LIR")
        return _assignment(answer, answer.wildcarded_identity)

    # -- /impu/<impu>/reg-data

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        """The cached registration state and subscription of ``impu``'s set (NOT_REGISTERED
        and none if nothing is cached); nothing is asked of the HSS."""
        return Deferred.fromCoroutine(self._get_reg_data(impu))

    async def _get_reg_data(self, impu: str) -> RegData:
        irs = await self._irs_for(impu)
        if irs is None:
            return _EMPTY
        return self._reg_data(irs, irs.state)

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        """Apply ``reqtype`` (module docstring table) and answer the set's reg-data."""
        return Deferred.fromCoroutine(
            self._put_reg_data(impu, reqtype, server_name, private_id, wildcard_identity)
        )

    async def _put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str],
        private_id: Optional[str],
        wildcard: Optional[str],
    ) -> RegData:
        try:
            return await self._apply(impu, reqtype, server_name, private_id, wildcard)
        except _NewWildcardError as e:
            _log.info("HSS moved {impu} to wildcard {wildcard}", impu=impu, wildcard=e.wildcard)
            wildcard = e.wildcard
        try:
            return await self._apply(impu, reqtype, server_name, private_id, wildcard)
        except _NewWildcardError:
            raise HomesteadError(500, "HSS keeps changing the wildcard of " + impu) from None

    async def _apply(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str],
        private_id: Optional[str],
        wildcard: Optional[str],
    ) -> RegData:
        key = wildcard or impu
        cached = await self._irs_for(key)
        state = RegState.NOT_REGISTERED if cached is None else cached.state
        impi = private_id or None
        if impi is None and cached is not None:
            impi = self._template(cached.xml).private_id or None
        name = server_name or self._server_name
        if reqtype is ReqType.REG:
            new_binding = bool(cached is not None and private_id and private_id not in cached.impis)
            kind = ServerAssignmentType.REGISTRATION
            if cached is not None and state is RegState.REGISTERED and not new_binding:
                if self._now() - cached.sar_time < self._reregistration_time:
                    return self._reg_data(cached, RegState.REGISTERED, state)
                kind = ServerAssignmentType.RE_REGISTRATION
            answer = await self._sar(impu, impi, name, kind, wildcard)
            irs = await self._assign(key, cached, answer, RegState.REGISTERED, impi)
            return self._reg_data(irs, RegState.REGISTERED, state)
        if reqtype is ReqType.CALL:
            if cached is not None and state is not RegState.NOT_REGISTERED:
                return self._reg_data(cached, state, state)
            answer = await self._sar(
                impu, impi, name, ServerAssignmentType.UNREGISTERED_USER, wildcard
            )
            irs = await self._assign(key, cached, answer, RegState.UNREGISTERED, impi)
            return self._reg_data(irs, RegState.UNREGISTERED, state)
        if reqtype.is_dereg:
            if cached is None or state is RegState.NOT_REGISTERED:
                raise HomesteadError(400, "Public identity " + impu + " is not registered")
            try:
                await self._sar(impu, impi, name, _DEREG_TYPES[reqtype], wildcard)
            except HomesteadError as e:
                if e.status not in _NOT_ASKED:
                    await self._drop_irs(cached)
                raise
            await self._drop_irs(cached)
            return self._reg_data(cached, RegState.NOT_REGISTERED)
        await self._sar(impu, impi, name, _AUTH_FAILURE_TYPES[reqtype], wildcard)
        return self._reg_data(cached, state)

    async def _assign(
        self,
        key: str,
        cached: Optional[_Irs],
        answer: cx.SaaAnswer,
        state: RegState,
        impi: Optional[str],
    ) -> _Irs:
        """Cache what a successful SAR assigned: the SAA's subscription (the cached one if it
        has none) and charging addresses (likewise)."""
        xml = answer.user_data
        if xml is None:
            xml = cached.xml if cached is not None else ""
        template = self._template(xml)
        identities = [identity.uri for identity in template.public_identities]
        default = template.default_public_identity or (identities[0] if identities else key)
        ccfs, ecfs = (cached.ccfs, cached.ecfs) if cached is not None else ((), ())
        if answer.charging is not None:
            ccfs, ecfs = answer.charging.ccfs, answer.charging.ecfs
        previous_impis = cached.impis if cached is not None else ()
        irs = _Irs(
            default=default,
            impus=_unique([default, *identities, key]),
            state=state,
            impis=_unique([*previous_impis, impi or "", template.private_id]),
            xml=xml,
            ccfs=ccfs,
            ecfs=ecfs,
            sar_time=self._now(),
        )
        return await self._write_irs(irs, cached, self._ttl, merge_impis=True)

    def _reg_data(
        self, irs: Optional[_Irs], state: RegState, previous: Optional[RegState] = None
    ) -> RegData:
        if irs is None:
            return RegData(state, previous_state=previous)
        return attrs.evolve(
            self._template(irs.xml),
            state=state,
            previous_state=previous,
            charging_addresses=ChargingAddresses(irs.ccfs, irs.ecfs),
        )

    def _template(self, xml: str) -> RegData:
        """The reg-data of an ``<IMSSubscription>`` (parsed once per distinct document, for a
        bounded number of them); 500 if it is not one."""
        if not xml:
            return _EMPTY
        template = self._templates.get(xml)
        if template is not None:
            return template
        try:
            root = parse_xml(xml, "User-Data")
            if root.tag.rsplit("}", 1)[-1] != "IMSSubscription":
                raise ParseError("User-Data is not an IMSSubscription")
            template = RegData.from_subscription(RegState.NOT_REGISTERED, root)
        except ParseError as e:
            raise HomesteadError(500, "Bad User-Data from the HSS: " + e.reason) from e
        if (
            len(self._templates) >= _MAX_TEMPLATES
            or self._template_chars + len(xml) > _MAX_TEMPLATE_CHARS
        ):
            self._templates.clear()
            self._template_chars = 0
        self._templates[xml] = template
        self._template_chars += len(xml)
        return template

    # -- the cache

    async def _irs_for(self, key: str) -> Optional[_Irs]:
        """The set cached under public identity ``key`` (following its pointer), or None."""
        data, _ = await self._cache.get_data(IMPU_TABLE, key)
        record = _decode_record(key, data)
        if isinstance(record, _Ref):
            data, _ = await self._cache.get_data(IMPU_TABLE, record.default)
            target = _decode_record(record.default, data)
            if (
                isinstance(target, _Irs)
                and target.default == record.default
                and key in target.impus
            ):
                return target
            return None
        if record is not None and record.default != key:
            return None
        return record

    async def _impi_defaults(self, impi: str) -> tuple[str, ...]:
        data, _ = await self._cache.get_data(IMPI_TABLE, impi)
        return _decode_impi(impi, data)

    async def _irss_of_impis(self, impis: Iterable[str]) -> list[_Irs]:
        found: dict[str, _Irs] = {}
        for impi in _unique(impis):
            for default in await self._impi_defaults(impi):
                if default not in found:
                    irs = await self._irs_for(default)
                    if irs is not None:
                        found[default] = irs
        return list(found.values())

    async def _irss_of_impus(self, impus: Iterable[str]) -> list[_Irs]:
        found: dict[str, _Irs] = {}
        for impu in _unique(impus):
            irs = await self._irs_for(impu)
            if irs is not None:
                found.setdefault(irs.default, irs)
        return list(found.values())

    async def _update(self, table: str, key: str, change: _Change, ttl: int) -> None:
        """Read-modify-write ``key`` with CAS, retried on contention; ``change`` gives the new
        data (None: delete)."""
        for _ in range(_CAS_ATTEMPTS):
            data, cas = await self._cache.get_data(table, key)
            new = change(data)
            if new is None:
                if data is not None:
                    await self._cache.delete_data(table, key)
                return
            try:
                await self._cache.set_data(table, key, new, cas, ttl)
            except DataContentionError:
                continue
            return
        raise DataContentionError(table + " record " + key + " kept changing")

    async def _all(self, work: Iterable[Coroutine[Any, Any, object]]) -> None:
        """Run ``work`` concurrently; fail with the first failure once all have ended."""
        deferreds = [Deferred.fromCoroutine(coroutine) for coroutine in work]
        if not deferreds:
            return
        try:
            await gatherResults(deferreds, consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()

    async def _write_irs(
        self, irs: _Irs, previous: Optional[_Irs], ttl: int, merge_impis: bool = False
    ) -> _Irs:
        """Write ``irs`` (living ``ttl`` s) with a pointer for each other key, drop the keys
        ``previous`` (what was cached for it) had that it has not, and list it under its
        IMPIs. ``merge_impis``: keep the IMPIs a concurrent writer added."""
        written = irs

        def change(data: Optional[bytes]) -> bytes:
            nonlocal written
            written = irs
            current = _decode_record(irs.default, data)
            if merge_impis and isinstance(current, _Irs) and current.default == irs.default:
                written = attrs.evolve(irs, impis=_unique(irs.impis + current.impis))
            return written.to_bytes()

        await self._update(IMPU_TABLE, irs.default, change, ttl)
        pointer = _Ref(irs.default).to_bytes()
        stale = [k for k in (previous.impus if previous is not None else ()) if k not in irs.impus]
        await self._all(
            [
                *[self._update(IMPU_TABLE, k, lambda _: pointer, ttl) for k in irs.impus[1:]],
                *[self._delete(IMPU_TABLE, k) for k in stale],
            ]
        )
        moved = previous is not None and previous.default != irs.default
        old = [previous.default] if previous is not None and moved else []
        updates = [
            self._update(IMPI_TABLE, impi, _impi_change(impi, [irs.default], old), self._ttl)
            for impi in written.impis
        ]
        if previous is not None and moved:
            updates += [
                self._update(IMPI_TABLE, impi, _impi_change(impi, remove=old), self._ttl)
                for impi in previous.impis
                if impi not in written.impis
            ]
        await self._all(updates)
        return written

    async def _delete(self, table: str, key: str) -> None:
        await self._cache.delete_data(table, key)

    async def _drop_irs(self, irs: _Irs) -> None:
        """Remove ``irs`` from the cache: its keys, and its entry in its IMPIs' lists."""
        await self._all([self._delete(IMPU_TABLE, key) for key in irs.impus])
        remove = [irs.default]
        await self._all(
            [
                self._update(IMPI_TABLE, impi, _impi_change(impi, remove=remove), self._ttl)
                for impi in irs.impis
            ]
        )

    def _remaining(self, irs: _Irs) -> int:
        """The lifetime left to ``irs``'s records (a Push-Profile does not extend it)."""
        return max(1, math.ceil(irs.sar_time + self._ttl - self._now()))

    # -- requests from the HSS

    def handle_cx_request(self, message: Message, peer: PeerInfo) -> Deferred[Message]:
        """Answer a Cx request from the HSS (RTR, PPR; anything else
        DIAMETER_COMMAND_UNSUPPORTED). For ``set_handler(APP_CX, …)``; a malformed request
        fails with :class:`~clearwater.diameter.message.DiameterDecodeError`, which the node
        answers."""
        if message.is_request and message.application_id == APP_CX:
            if message.command_code == _RTR:
                return Deferred.fromCoroutine(self._registration_termination(message, peer))
            if message.command_code == _PPR:
                return Deferred.fromCoroutine(self._push_profile(message, peer))
        answer = make_answer(
            message,
            [
                CX.avp("Result-Code", ResultCode.DIAMETER_COMMAND_UNSUPPORTED),
                CX.avp("Origin-Host", self._node.identity),
                CX.avp("Origin-Realm", self._node.realm),
            ],
            error=True,
        )
        return succeed(answer)

    def _rta(self, request: Message, code: int, impis: Sequence[str] = ()) -> Message:
        return cx.rta(
            request,
            origin_host=self._node.identity,
            origin_realm=self._node.realm,
            result_code=code,
            associated_impis=impis,
        )

    def _ppa(self, request: Message, outcome: CxOutcome) -> Message:
        return cx.ppa(
            request,
            origin_host=self._node.identity,
            origin_realm=self._node.realm,
            result_code=outcome,
        )

    async def _registration_termination(self, message: Message, peer: PeerInfo) -> Message:
        request = cx.parse_rtr(message)
        reason = request.reason_code
        by_impis = not request.impus or reason in (
            ReasonCode.SERVER_CHANGE,
            ReasonCode.NEW_SERVER_ASSIGNED,
        )
        _log.info(
            "RTR from {peer} ({reason}) for {impis} {impus}",
            peer=peer.host,
            reason=reason.name,
            impis=request.impis,
            impus=request.impus,
        )
        failed = ResultCode.DIAMETER_UNABLE_TO_COMPLY
        try:
            if by_impis:
                irss = await self._irss_of_impis(request.impis)
            else:
                irss = await self._irss_of_impus(request.impus)
        except Exception as e:
            _log.warn("RTR: cache lookup failed: {error}", error=str(e))
            return self._rta(message, failed)
        if not irss:
            return self._rta(message, ResultCode.DIAMETER_SUCCESS, request.impis)
        defaults = [irs.default for irs in irss]
        registrations: list[tuple[str, Optional[str]]]
        if reason is ReasonCode.PERMANENT_TERMINATION:
            notify = False
            registrations = [(d, impi) for d in defaults for impi in request.impis]
        else:
            notify = reason is not ReasonCode.NEW_SERVER_ASSIGNED
            registrations = [(d, None) for d in defaults]
        code: int = ResultCode.DIAMETER_SUCCESS
        try:
            await self._sprout.delete_registrations(registrations, notify)
        except Exception as e:
            _log.warn("RTR: sprout failed: {error}", error=str(e))
            code = failed
        try:
            await self._all([self._drop_irs(irs) for irs in irss])
        except Exception as e:
            _log.warn("RTR: cache not cleared: {error}", error=str(e))
            code = failed
        return self._rta(
            message, code, request.impis if code == ResultCode.DIAMETER_SUCCESS else ()
        )

    async def _push_profile(self, message: Message, peer: PeerInfo) -> Message:
        request = cx.parse_ppr(message)
        success = CxOutcome(ResultCode.DIAMETER_SUCCESS)
        failed = CxOutcome(ResultCode.DIAMETER_UNABLE_TO_COMPLY)
        if request.user_data is None and request.charging is None:
            return self._ppa(message, success)
        _log.info("PPR from {peer} for {impi}", peer=peer.host, impi=request.impi)
        try:
            irss = await self._irss_of_impis([request.impi])
        except Exception as e:
            _log.warn("PPR: cache lookup failed: {error}", error=str(e))
            return self._ppa(message, failed)
        if not irss:
            return self._ppa(message, CxOutcome(CxResult.DIAMETER_ERROR_USER_UNKNOWN, True))
        updated = list(irss)
        if request.user_data is not None:
            xml = request.user_data
            try:
                template = self._template(xml)
            except HomesteadError as e:
                _log.warn("PPR: {error}", error=e.message)
                return self._ppa(message, failed)
            identities = [identity.uri for identity in template.public_identities]
            default = template.default_public_identity or (identities[0] if identities else "")
            index = next((i for i, irs in enumerate(updated) if irs.default == default), None)
            if index is None:
                _log.warn("PPR: User-Data would change the default IMPU to {impu}", impu=default)
                return self._ppa(message, failed)
            target = updated[index]
            if target.xml != xml:
                try:
                    await self._sprout.put_registration(default, xml)
                except Exception as e:
                    _log.warn("PPR: sprout failed: {error}", error=str(e))
                    return self._ppa(message, failed)
                impus = _unique([default, *identities])
                updated[index] = attrs.evolve(target, xml=xml, impus=impus)
        if request.charging is not None:
            ccfs, ecfs = request.charging.ccfs, request.charging.ecfs
            updated = [attrs.evolve(irs, ccfs=ccfs, ecfs=ecfs) for irs in updated]
        try:
            await self._all(
                [
                    self._write_irs(new, old, self._remaining(old))
                    for new, old in zip(updated, irss)
                    if new != old
                ]
            )
        except Exception as e:
            _log.warn("PPR: cache not updated: {error}", error=str(e))
            return self._ppa(message, failed)
        return self._ppa(message, success)
