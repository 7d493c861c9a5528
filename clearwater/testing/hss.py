# -*- test-case-name: tests.unit.testing.test_hss -*-
"""A scripted HSS: the server end of Cx (3GPP TS 29.228 §6, TS 29.229 §6; spec §7.1) answered
from an :class:`~clearwater.stores.interfaces.ISubscriberStore`.

Tests use :class:`ScriptedHss` on a node of theirs (a fake
:class:`~clearwater.diameter.interfaces.IDiameterNode` or a real
:class:`~clearwater.diameter.node.DiameterNode`); ``python -m clearwater.testing.hss`` runs one
as a process, with homestead-prov's provisioning API (:mod:`clearwater.http.homestead_prov`)
over the same store, so that ``twistd homestead --hss-hostname ...`` can be tried locally::

    python -m clearwater.testing.hss --identity hss.example.com --realm example.com \\
        --listen 127.0.0.1:3868 --store sqlite:/tmp/hss.db --prov-port 8889
    clearwater-provision --server http://127.0.0.1:8889 create-user sip:alice@example.com \\
        --password secret

What it answers. Identities are found as HSS-less homestead finds them (exactly, else through a
wildcarded public identity, :func:`~clearwater.homestead.hssless.wildcard_matches`); an unknown
identity is Experimental-Result DIAMETER_ERROR_USER_UNKNOWN (5001), an IMPI and IMPU that are
not in one implicit registration set (IRS) DIAMETER_ERROR_IDENTITIES_DONT_MATCH (5002). The
registration state is the IRS's :class:`~clearwater.stores.records.RegistrationState`, shared
with homestead-prov and HSS-less homestead.

=============================== ===============================================================
request                         answer (TS 29.228 §6.1.1, §6.3.1, §6.1.2, §6.1.4)
=============================== ===============================================================
UAR REGISTRATION                a barred IMPU (not for an emergency registration): Result-Code
                                DIAMETER_AUTHORIZATION_REJECTED (5003); registered or
                                unregistered: DIAMETER_SUBSEQUENT_REGISTRATION (2002) and the
                                S-CSCF assigned; not registered: DIAMETER_FIRST_REGISTRATION
                                (2001) and ``scscf_uri`` (this HSS assigns its one S-CSCF
                                rather than answer capabilities)
UAR REGISTRATION_AND_CAPABILITIES barring as above, then DIAMETER_FIRST_REGISTRATION with
                                Server-Capabilities (``capabilities``: none by default)
UAR DE_REGISTRATION             registered or unregistered: Result-Code DIAMETER_SUCCESS and
                                the S-CSCF; not registered: DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
                                (5003)
MAR                             one vector from :meth:`HsslessHomestead.get_av
                                <clearwater.homestead.hssless.HsslessHomestead.get_av>`: "SIP
                                Digest" SIP-Digest-Authenticate {Digest-HA1, Digest-Realm,
                                Digest-QoP}; "Digest-AKAv1-MD5" / "Digest-AKAv2-SHA-256"
                                SIP-Authenticate (RAND ‖ AUTN), SIP-Authorization (XRES), CK,
                                IK; "Unknown" whichever the IMPI has (digest first). A
                                SIP-Authorization in the request (RAND ‖ AUTS) resynchronises
                                the SQN (TS 33.102 §6.3.5). A scheme the IMPI has no
                                credentials for, or an unknown scheme:
                                DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED (5006); an AUTS whose
                                MAC-S does not verify: DIAMETER_AUTHENTICATION_REJECTED (4001);
                                a malformed one DIAMETER_INVALID_AVP_VALUE (5004)
SAR                             the Server-Assignment-Type applied to each IRS named (by its
                                Public-Identity AVPs, else every IRS of the User-Name), then
                                DIAMETER_SUCCESS; see below
LIR                             registered or unregistered: DIAMETER_SUCCESS and the S-CSCF
                                (and the Wildcarded-Public-Identity matched); not registered
                                with unregistered services: DIAMETER_UNREGISTERED_SERVICE
                                (2003) and ``scscf_uri`` (Server-Capabilities for
                                REGISTRATION_AND_CAPABILITIES); otherwise
                                DIAMETER_ERROR_IDENTITY_NOT_REGISTERED (5003)
=============================== ===============================================================

Server-Assignment-Type (TS 29.229 §6.3.15) and the registration state:

* REGISTRATION, RE_REGISTRATION: REGISTERED to the SAR's Server-Name, with its User-Name;
* UNREGISTERED_USER: a NOT_REGISTERED IRS becomes UNREGISTERED, assigned to the Server-Name
  (a registered one stays registered);
* TIMEOUT_, USER_, ADMINISTRATIVE_DEREGISTRATION, DEREGISTRATION_TOO_MUCH_DATA:
  NOT_REGISTERED, no S-CSCF;
* TIMEOUT_ / USER_DEREGISTRATION_STORE_SERVER_NAME: a registered IRS becomes UNREGISTERED,
  keeping its S-CSCF (TS 29.228 §6.1.2.1: the HSS keeps the name);
* AUTHENTICATION_FAILURE, AUTHENTICATION_TIMEOUT, NO_ASSIGNMENT: no change;
* the SWx types (12-14): DIAMETER_ERROR_IN_ASSIGNMENT_TYPE (5007).

User-Data (the ``<IMSSubscription>`` of HSS-less homestead's reg-data, TS 29.228 Annex B) and
Charging-Information (``charging``, when given) go in the SAA of REGISTRATION,
RE_REGISTRATION, UNREGISTERED_USER and NO_ASSIGNMENT, as TS 29.228 §6.1.2 says; not in a
de-registration's.

"Unregistered services" (LIR) are read from the identity's service profile: an iFC with a
``<SessionCase>`` of TERMINATING_UNREGISTERED (2), or ORIGINATING_UNREGISTERED (3) for an
originating LIR (TS 29.228 Annex B.2.2). An identity with none is not reachable unregistered.

Left out, as a test HSS can: the S-CSCF name a MAR would store for a registration in progress,
the S-CSCF check of NO_ASSIGNMENT, roaming (Visited-Network-Identifier is not checked), shared
iFC sets. A request whose AVPs do not parse as the command needs
(:mod:`clearwater.diameter.apps.cx`) is answered with the codec's result code and Failed-AVP;
one for another Cx command (RTR, PPR) with DIAMETER_COMMAND_UNSUPPORTED (3001); a store failure
with DIAMETER_UNABLE_TO_COMPLY (5012).

For tests, every request is kept in :attr:`ScriptedHss.requests`; :attr:`~ScriptedHss.stall`
makes it never answer and :attr:`~ScriptedHss.fail_with` answer every request with one
Result-Code (or :class:`~clearwater.diameter.apps.cx.CxOutcome`). :meth:`~ScriptedHss.send_rtr`
and :meth:`~ScriptedHss.send_ppr` send the HSS-initiated requests (TS 29.229 §6.1.9,
§6.1.11).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from twisted.application import internet, service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from typing_extensions import TypedDict, override

from clearwater._types import ISipReactor
from clearwater._xml import parse_xml
from clearwater.diameter.apps import cx
from clearwater.diameter.apps.cx import (
    CX,
    CX_VENDOR_APP,
    SUCCESS,
    AkaVector,
    ChargingInformation,
    CxOutcome,
    DigestVector,
    ReasonCode,
    ServerAssignmentType,
    ServerCapabilities,
    UserAuthorizationType,
)
from clearwater.diameter.dictionary import APP_CX, VENDOR_3GPP
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
)
from clearwater.diameter.message import Avp, DiameterDecodeError, Message, make_answer
from clearwater.diameter.results import CxResult, ResultCode
from clearwater.errors import ParseError
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    HomesteadError,
    HsslessHomestead,
    wildcard_matches,
)
from clearwater.stores.interfaces import ISubscriberStore
from clearwater.stores.records import PublicIdentity, RegistrationState, RegState

__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "HssAdminResource",
    "ScriptedHss",
    "main",
    "parse_listen",
    "serve",
    "start_logging",
]

_log = Logger(namespace="clearwater.testing.hss")

#: How many requests :attr:`ScriptedHss.requests` keeps (the oldest go first).
DEFAULT_MAX_REQUESTS = 10_000

# SIP-Authentication-Scheme -> the vector HSS-less homestead makes (None: what the IMPI has).
_SCHEMES: dict[str, Optional[AvScheme]] = {
    cx.SCHEME_DIGEST: AvScheme.DIGEST,
    cx.SCHEME_AKAV1: AvScheme.AKA,
    cx.SCHEME_AKAV2: AvScheme.AKA2,
    cx.SCHEME_UNKNOWN: None,
}

_UAR, _SAR, _LIR, _MAR = 300, 301, 302, 303
_COMMANDS = {300: "UAR", 301: "SAR", 302: "LIR", 303: "MAR", 304: "RTR", 305: "PPR"}

_SAT = ServerAssignmentType
_REGISTER = (_SAT.REGISTRATION, _SAT.RE_REGISTRATION)
_DEREGISTER = (
    _SAT.TIMEOUT_DEREGISTRATION,
    _SAT.USER_DEREGISTRATION,
    _SAT.ADMINISTRATIVE_DEREGISTRATION,
    _SAT.DEREGISTRATION_TOO_MUCH_DATA,
)
_DEREGISTER_KEEP_NAME = (
    _SAT.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME,
    _SAT.USER_DEREGISTRATION_STORE_SERVER_NAME,
)
_NO_CHANGE = (_SAT.AUTHENTICATION_FAILURE, _SAT.AUTHENTICATION_TIMEOUT, _SAT.NO_ASSIGNMENT)
_CX_TYPES = (*_REGISTER, _SAT.UNREGISTERED_USER, *_DEREGISTER, *_DEREGISTER_KEEP_NAME, *_NO_CHANGE)
# TS 29.228 §6.1.2: the types whose SAA carries the user profile.
_WITH_USER_DATA = (*_REGISTER, _SAT.UNREGISTERED_USER, _SAT.NO_ASSIGNMENT)

# iFC session cases (TS 29.228 Annex B.2.2) served to an unregistered identity.
_TERMINATING_UNREGISTERED = "2"
_ORIGINATING_UNREGISTERED = "3"

_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_USER_DATA_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _experimental(code: int) -> CxOutcome:
    return CxOutcome(code, experimental=True)


_USER_UNKNOWN = _experimental(CxResult.DIAMETER_ERROR_USER_UNKNOWN)
_DONT_MATCH = _experimental(CxResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)
_NOT_REGISTERED = _experimental(CxResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)


class _Origin(TypedDict):
    """The answer builders' origin keywords."""

    origin_host: str
    origin_realm: str


class _RefusedError(Exception):
    """Answer the request with ``outcome`` (and ``failed_avp``) and nothing else."""

    def __init__(self, outcome: CxOutcome, failed_avp: Optional[Avp] = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.failed_avp = failed_avp


class ScriptedHss:
    """The Cx server end (module docstring) over ``store``, on ``node``.

    ``scscf_uri`` is the S-CSCF it assigns; ``home_domain`` the digest realm of an IMPI
    provisioned without one; ``charging`` the Charging-Information its SAAs carry;
    ``capabilities`` the Server-Capabilities of a REGISTRATION_AND_CAPABILITIES answer.
    ``random`` makes AKA RANDs and ``now`` stamps registration-state changes (epoch seconds).

    Call :meth:`install` to answer the node's Cx requests. ``scscf_uri``, ``charging`` and
    ``capabilities`` may be changed at any time, as may the test controls: ``stall`` (never
    answer) and ``fail_with`` (a Result-Code, or a
    :class:`~clearwater.diameter.apps.cx.CxOutcome`, for every answer).
    """

    def __init__(
        self,
        node: IDiameterNode,
        store: ISubscriberStore,
        *,
        scscf_uri: str,
        home_domain: str,
        charging: Optional[ChargingInformation] = None,
        capabilities: Optional[ServerCapabilities] = None,
        stall: bool = False,
        fail_with: Union[int, CxOutcome, None] = None,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        random: Callable[[int], bytes] = os.urandom,
        now: Callable[[], float] = time.time,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.node = node
        self.store = store
        self.scscf_uri = scscf_uri
        self.charging = charging
        self.capabilities = capabilities if capabilities is not None else ServerCapabilities()
        self.stall = stall
        self.fail_with = fail_with
        self.max_requests = max_requests
        #: Every request received, oldest first (at most ``max_requests``).
        self.requests: list[Message] = []
        self._now = now
        self._homestead = HsslessHomestead(
            store, scscf_uri=scscf_uri, home_domain=home_domain, random=random, now=now
        )

    @property
    def home_domain(self) -> str:
        return self._homestead.home_domain

    def install(self) -> None:
        """Answer the node's Cx requests (application 16777216)."""
        self.node.set_handler(APP_CX, self.handle)

    # ---- answering

    def handle(self, request: Message, peer: PeerInfo) -> Union[Message, Deferred[Message]]:
        """The answer to the Cx ``request`` from ``peer`` (a
        :data:`~clearwater.diameter.interfaces.RequestHandler`)."""
        self.requests.append(request)
        if len(self.requests) > self.max_requests:
            del self.requests[0]
        if self.stall:
            return Deferred()  # never fires: the peer's request times out
        if self.fail_with is not None:
            outcome = self.fail_with
            if not isinstance(outcome, CxOutcome):
                outcome = CxOutcome(outcome)
            return self._log_answer(request, peer, self._error(request, outcome))
        d = Deferred.fromCoroutine(self._answer(request))
        return d.addCallback(lambda answer: self._log_answer(request, peer, answer))

    def _log_answer(self, request: Message, peer: PeerInfo, answer: Message) -> Message:
        try:
            outcome: Any = cx.parse_outcome(answer)
        except DiameterDecodeError:
            outcome = None
        _log.debug(  # --verbose: one line per request costs a file write each
            "HSS: {command} from {peer} answered {code}{experimental}",
            command=_COMMANDS.get(request.command_code, request.command_code),
            peer=peer.host,
            code=None if outcome is None else outcome.code,
            experimental=" (experimental)" if outcome is not None and outcome.experimental else "",
        )
        return answer

    async def _answer(self, request: Message) -> Message:
        handlers = {_UAR: self._uar, _MAR: self._mar, _SAR: self._sar, _LIR: self._lir}
        handler = handlers.get(request.command_code)
        if handler is None:
            return self._error(request, CxOutcome(ResultCode.DIAMETER_COMMAND_UNSUPPORTED))
        try:
            return await handler(request)
        except _RefusedError as e:
            return self._error(request, e.outcome, e.failed_avp)
        except DiameterDecodeError as e:
            return self._error(request, CxOutcome(e.result_code), e.failed_avp)
        except Exception:
            _log.failure("HSS: cannot answer {command}", command=_COMMANDS[request.command_code])
            return self._error(request, CxOutcome(ResultCode.DIAMETER_UNABLE_TO_COMPLY))

    def _origin(self) -> _Origin:
        return {"origin_host": self.node.identity, "origin_realm": self.node.realm}

    def _error(
        self, request: Message, outcome: CxOutcome, failed_avp: Optional[Avp] = None
    ) -> Message:
        """The answer to ``request`` with only ``outcome`` (and ``failed_avp``)."""
        builders: dict[int, Callable[..., Message]] = {
            _UAR: cx.uaa,
            _SAR: cx.saa,
            _LIR: cx.lia,
            _MAR: cx.maa,
        }
        builder = builders.get(request.command_code)
        if builder is not None:
            return builder(request, outcome=outcome, failed_avp=failed_avp, **self._origin())
        # TS 29.229 §6.1's answer head, for a command this HSS does not serve.
        avps = [
            CX_VENDOR_APP,
            outcome.avp(),
            CX.avp("Auth-Session-State", cx.AUTH_SESSION_NO_STATE_MAINTAINED),
            CX.avp("Origin-Host", self.node.identity),
            CX.avp("Origin-Realm", self.node.realm),
        ]
        if failed_avp is not None:
            avps.append(CX.group("Failed-AVP", failed_avp))
        return make_answer(request, avps, error=outcome.is_protocol_error)

    # ---- lookups

    async def _check_private(self, impi: str) -> None:
        if await self.store.get_private(impi) is None:
            raise _RefusedError(_USER_UNKNOWN)

    async def _public(
        self, impu: str, hint: Optional[str] = None
    ) -> tuple[PublicIdentity, Optional[str]]:
        """The provisioned identity ``impu`` is (exactly, else through a wildcard, ``hint``
        first) and the wildcard it matched; DIAMETER_ERROR_USER_UNKNOWN if none."""
        public = await self.store.get_public(impu)
        if public is not None:
            return public, None
        candidates: list[PublicIdentity] = []
        if hint:
            hinted = await self.store.get_public(hint)
            if hinted is not None:
                candidates.append(hinted)
        candidates += await self.store.wildcard_publics()
        for candidate in candidates:
            pattern = candidate.wildcard or candidate.impu
            if wildcard_matches(pattern, impu):
                return candidate, pattern
        raise _RefusedError(_USER_UNKNOWN)

    async def _check_associated(self, impi: str, public: PublicIdentity) -> None:
        if public.irs not in await self.store.irs_of_private(impi):
            raise _RefusedError(_DONT_MATCH)

    async def _identities(self, impi: str, impu: str) -> PublicIdentity:
        await self._check_private(impi)
        public, _ = await self._public(impu)
        await self._check_associated(impi, public)
        return public

    # ---- UAR (TS 29.228 §6.1.1.1)

    async def _uar(self, request: Message) -> Message:
        uar = cx.parse_uar(request)
        public = await self._identities(uar.impi, uar.impu)
        registration = await self.store.get_registration(public.irs)
        assigned = registration.scscf or self.scscf_uri
        kind = uar.authorization_type
        if kind is UserAuthorizationType.DE_REGISTRATION:
            if registration.state is RegState.NOT_REGISTERED:
                raise _RefusedError(_NOT_REGISTERED)
            return cx.uaa(request, outcome=SUCCESS, server_name=assigned, **self._origin())
        if public.barred and not uar.emergency:
            raise _RefusedError(CxOutcome(ResultCode.DIAMETER_AUTHORIZATION_REJECTED))
        first = _experimental(CxResult.DIAMETER_FIRST_REGISTRATION)
        if kind is UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
            return cx.uaa(request, outcome=first, capabilities=self.capabilities, **self._origin())
        if registration.state is not RegState.NOT_REGISTERED:
            subsequent = _experimental(CxResult.DIAMETER_SUBSEQUENT_REGISTRATION)
            return cx.uaa(request, outcome=subsequent, server_name=assigned, **self._origin())
        return cx.uaa(request, outcome=first, server_name=self.scscf_uri, **self._origin())

    # ---- MAR (TS 29.228 §6.3.1)

    async def _mar(self, request: Message) -> Message:
        mar = cx.parse_mar(request)
        await self._identities(mar.impi, mar.impu)
        if mar.scheme not in _SCHEMES:
            raise _RefusedError(_experimental(CxResult.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED))
        scheme = _SCHEMES[mar.scheme]
        resync: Optional[str] = None
        if mar.authorization is not None and scheme is not AvScheme.DIGEST:
            resync = base64.b64encode(mar.authorization).decode("ascii")
        try:
            av = await self._homestead.get_av(mar.impi, None, scheme, resync)
        except HomesteadError as e:
            raise _RefusedError(*_av_refusal(e, request)) from None
        if isinstance(av, DigestAv):
            digest = DigestVector(av.ha1, av.realm, av.qop)
            return cx.maa(
                request, outcome=SUCCESS, scheme=cx.SCHEME_DIGEST, digest=digest, **self._origin()
            )
        return cx.maa(
            request,
            outcome=SUCCESS,
            scheme=mar.scheme if scheme is not None else cx.SCHEME_AKAV1,
            aka=_aka_vector(av),
            **self._origin(),
        )

    # ---- SAR (TS 29.228 §6.1.2.1)

    async def _sar(self, request: Message) -> Message:
        sar = cx.parse_sar(request)
        kind = sar.assignment_type
        if kind not in _CX_TYPES:
            raise _RefusedError(_experimental(CxResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE))
        if sar.impi is not None:
            await self._check_private(sar.impi)
        targets = await self._sar_targets(sar)
        for public in targets:
            await self._assign(public.irs, kind, sar.server_name, sar.impi)
        if kind not in _WITH_USER_DATA:
            return cx.saa(request, outcome=SUCCESS, **self._origin())
        user_data = await self._user_data(targets[0].impu)
        return cx.saa(
            request,
            outcome=SUCCESS,
            user_data=user_data,
            charging=self.charging,
            **self._origin(),
        )

    async def _sar_targets(self, sar: cx.SarRequest) -> list[PublicIdentity]:
        """One public identity of each IRS the SAR names: by its Public-Identity AVPs, else
        (TS 29.228 §6.1.2.1: no Public-Identity) every IRS of its User-Name."""
        targets: dict[str, PublicIdentity] = {}
        if sar.impus:
            for impu in sar.impus:
                public, _ = await self._public(impu, sar.wildcard)
                if sar.impi is not None:
                    await self._check_associated(sar.impi, public)
                targets.setdefault(public.irs, public)
        elif sar.impi is not None:
            for irs in await self.store.irs_of_private(sar.impi):
                publics = await self.store.publics_of_irs(irs)
                if publics:
                    targets.setdefault(irs, publics[0])
        if not targets:
            raise cx.missing_avp("Public-Identity")
        return list(targets.values())

    async def _assign(
        self, irs: str, kind: ServerAssignmentType, server_name: str, impi: Optional[str]
    ) -> None:
        """Apply Server-Assignment-Type ``kind`` to ``irs``'s registration state."""
        current = await self.store.get_registration(irs)
        state = current.state
        updated = current
        if kind in _REGISTER:
            updated = RegistrationState(RegState.REGISTERED, server_name, impi or current.impi)
        elif kind is _SAT.UNREGISTERED_USER and state is RegState.NOT_REGISTERED:
            updated = RegistrationState(RegState.UNREGISTERED, server_name, current.impi)
        elif kind in _DEREGISTER:
            updated = RegistrationState(RegState.NOT_REGISTERED, "", current.impi)
        elif kind in _DEREGISTER_KEEP_NAME and state is RegState.REGISTERED:
            updated = RegistrationState(RegState.UNREGISTERED, current.scscf, current.impi)
        if (updated.state, updated.scscf, updated.impi) != (state, current.scscf, current.impi):
            stamped = RegistrationState(updated.state, updated.scscf, updated.impi, self._now())
            await self.store.set_registration(irs, stamped)

    async def _user_data(self, impu: str) -> str:
        reg_data = await self._homestead.get_reg_data(impu)
        return _USER_DATA_DECLARATION + reg_data.ims_subscription_xml

    def subscription_xml(self, impu: str) -> Deferred[str]:
        """The User-Data (``<IMSSubscription>``, TS 29.228 Annex B) of ``impu``'s IRS, as an
        SAA carries it: for a PPR (:meth:`send_ppr`). Fails with
        :class:`~clearwater.homestead.hssless.HomesteadError` 404 for an unknown IMPU."""
        return Deferred.fromCoroutine(self._user_data(impu))

    # ---- LIR (TS 29.228 §6.1.4.1)

    async def _lir(self, request: Message) -> Message:
        lir = cx.parse_lir(request)
        public, wildcard = await self._public(lir.impu)
        registration = await self.store.get_registration(public.irs)
        if registration.state is not RegState.NOT_REGISTERED:
            return cx.lia(
                request,
                outcome=SUCCESS,
                server_name=registration.scscf or self.scscf_uri,
                wildcarded_identity=wildcard,
                **self._origin(),
            )
        if not await self._unregistered_services(public, lir.originating):
            raise _RefusedError(_NOT_REGISTERED)
        outcome = _experimental(CxResult.DIAMETER_UNREGISTERED_SERVICE)
        if lir.authorization_type is UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
            return cx.lia(
                request,
                outcome=outcome,
                capabilities=self.capabilities,
                wildcarded_identity=wildcard,
                **self._origin(),
            )
        return cx.lia(
            request,
            outcome=outcome,
            server_name=self.scscf_uri,
            wildcarded_identity=wildcard,
            **self._origin(),
        )

    async def _unregistered_services(self, public: PublicIdentity, originating: bool) -> bool:
        profile = await self.store.get_service_profile(public.irs, public.sp)
        if profile is None:
            return False
        case = _ORIGINATING_UNREGISTERED if originating else _TERMINATING_UNREGISTERED
        return case in _session_cases(profile.ifcs_xml)

    # ---- HSS-initiated requests (TS 29.228 §6.1.3, §6.1.5)

    def send_rtr(
        self,
        destination_host: str,
        destination_realm: str,
        impi: str,
        reason_code: int,
        impus: Sequence[str] = (),
        associated: Sequence[str] = (),
        *,
        reason_info: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Deferred[Message]:
        """Send an RTR (TS 29.229 §6.1.9) to the S-CSCF ``destination_host``: User-Name
        ``impi``, Associated-Identities ``associated``, Public-Identity ``impus``,
        Deregistration-Reason {``reason_code`` (a :class:`~clearwater.diameter.apps.cx.ReasonCode`)
        [, ``reason_info``]}. Fires with the RTA (see
        :meth:`~clearwater.diameter.interfaces.IDiameterNode.request`). The store's
        registration state is left as it is."""
        message = cx.rtr(
            session_id=self.node.new_session_id(),
            destination_realm=destination_realm,
            destination_host=destination_host,
            reason_code=reason_code,
            reason_info=reason_info,
            impi=impi,
            associated_impis=tuple(associated),
            impus=tuple(impus),
            **self._origin(),
        )
        return self.node.request(message, timeout)

    def send_ppr(
        self,
        destination_host: str,
        destination_realm: str,
        impi: str,
        user_data: Optional[str] = None,
        charging: Optional[ChargingInformation] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Deferred[Message]:
        """Send a PPR (TS 29.229 §6.1.11) to ``destination_host``: User-Name ``impi``,
        [User-Data ``user_data``, e.g. :meth:`subscription_xml`], [Charging-Information].
        Fires with the PPA."""
        message = cx.ppr(
            session_id=self.node.new_session_id(),
            destination_realm=destination_realm,
            destination_host=destination_host,
            impi=impi,
            user_data=user_data,
            charging=charging,
            **self._origin(),
        )
        return self.node.request(message, timeout)


def _av_refusal(error: HomesteadError, request: Message) -> tuple[CxOutcome, Optional[Avp]]:
    """The MAA outcome for HSS-less homestead's refusal of a vector (identities already
    checked): no credentials of the scheme, a malformed or unverifiable AUTS."""
    if error.status == 404:
        return _experimental(CxResult.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED), None
    if error.status == 400:
        item = CX.find(request, "SIP-Auth-Data-Item")
        failed = None
        if item is not None:
            authorization = CX.find(item.avps(), "SIP-Authorization")
            if authorization is not None:
                failed = CX.group("SIP-Auth-Data-Item", authorization)
        return CxOutcome(ResultCode.DIAMETER_INVALID_AVP_VALUE), failed
    if error.status == 403:
        return CxOutcome(ResultCode.DIAMETER_AUTHENTICATION_REJECTED), None
    return CxOutcome(ResultCode.DIAMETER_UNABLE_TO_COMPLY), None


def _aka_vector(av: AkaAv) -> AkaVector:
    return AkaVector(
        challenge=base64.b64decode(av.challenge),
        response=bytes.fromhex(av.response),
        confidentiality_key=bytes.fromhex(av.cryptkey),
        integrity_key=bytes.fromhex(av.integritykey),
    )


def _session_cases(ifcs_xml: str) -> set[str]:
    """The ``<SessionCase>`` values of a service profile's iFCs (none if they do not parse)."""
    if "SessionCase" not in ifcs_xml:
        return set()
    body = _XML_DECLARATION.sub("", ifcs_xml, count=1)
    try:
        root = parse_xml("<ifcs>" + body + "</ifcs>", "iFC")
    except ParseError:
        return set()
    return {
        (element.text or "").strip()
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "SessionCase"
    }


# --------------------------------------------------------------------------- command line


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT``) as (host, port); ValueError otherwise."""
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected HOST:PORT, not " + repr(text))
    return host, int(port)


def _listen_argument(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _watchdog_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds, not " + repr(text)) from None
    if not value >= 6:
        raise argparse.ArgumentTypeError("Tw must be at least 6 s (RFC 3539 §3.4.1)")
    return value


def _port_argument(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("expected a port (0-65535), not " + repr(text))
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clearwater.testing.hss",
        description="A scripted HSS answering Cx (UAR, MAR, SAR, LIR) from a subscriber store, "
        "with homestead-prov's provisioning API over the same store.",
    )
    parser.add_argument("--identity", required=True, help="our Diameter identity (Origin-Host)")
    parser.add_argument("--realm", required=True, help="our Diameter realm (Origin-Realm)")
    parser.add_argument(
        "--listen",
        type=_listen_argument,
        default=("127.0.0.1", 3868),
        metavar="HOST:PORT",
        help="where to accept Diameter peers (default 127.0.0.1:3868; port 0: any)",
    )
    parser.add_argument(
        "--store",
        default="memory:",
        metavar="URL",
        help="subscriber store: memory:, sqlite:PATH or redis://HOST:PORT/DB (default memory:)",
    )
    parser.add_argument(
        "--home-domain", help="default digest realm and S-CSCF domain (default: --realm)"
    )
    parser.add_argument(
        "--scscf-uri",
        help="the S-CSCF assigned (default sip:scscf.sprout.<home domain>;transport=tcp)",
    )
    parser.add_argument(
        "--prov-port",
        type=_port_argument,
        default=8889,
        help="homestead-prov's provisioning API on 127.0.0.1 (default 8889; 0: none)",
    )
    parser.add_argument(
        "--ccf",
        action="append",
        default=[],
        metavar="URI",
        help="a CCF for Charging-Information (primary first; at most 2)",
    )
    parser.add_argument(
        "--ecf", action="append", default=[], metavar="URI", help="an ECF, likewise"
    )
    parser.add_argument(
        "--tw", type=_watchdog_argument, default=6.0, help="watchdog interval Tw (default 6 s)"
    )
    parser.add_argument(
        "--tls-listen",
        type=_listen_argument,
        metavar="HOST:PORT",
        help="also accept Diameter peers over TLS there (RFC 6733 §2.1); needs --tls-cert",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate (chain) for --tls-listen")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-listen")
    parser.add_argument("--verbose", action="store_true", help="log debug events too")
    return parser


def start_logging(verbose: bool = False) -> None:
    """Log events to stdout, debug ones only when ``verbose``."""
    level = LogLevel.debug if verbose else LogLevel.info
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


class _StoreService(service.Service):
    """Checks the store at start (a failure stops the process with status 1) and closes it at
    stop."""

    def __init__(self, reactor: ISipReactor, store: ISubscriberStore, url: str) -> None:
        self.reactor = reactor
        self.store = store
        self.url = url
        self.failed = False

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.store.get_private("").addErrback(self._failed)

    def _failed(self, reason: Failure) -> None:
        _log.critical("Cannot use the store {url}: {error}", url=self.url, error=reason.value)
        self.failed = True
        core: Any = self.reactor
        if IReactorCore.providedBy(core) and core.running:
            core.stop()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.store.close()


def serve(reactor: Any, top: service.MultiService, started: Callable[[], None]) -> int:
    """Run ``top`` on the (real) ``reactor`` until SIGTERM or SIGINT, calling ``started`` once
    it runs; stopping waits for ``top`` to stop (a Diameter node sends DPR to its peers).
    Returns the exit status: 1 if ``top`` could not start (a port already in use) or a child
    :class:`_StoreService` failed, else 0."""
    failed = False

    def start() -> None:
        nonlocal failed
        try:
            top.startService()
        except Exception as e:
            _log.critical("Cannot start: {error}", error=e)
            failed = True
            reactor.stop()
            return
        started()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()
    for child in top:
        if isinstance(child, _StoreService) and child.failed:
            failed = True
    return 1 if failed else 0


class HssAdminResource(Resource):
    """``POST /hss/rtr`` and ``POST /hss/ppr`` on the scripted HSS's provisioning port: make
    the HSS send a Registration-Termination or a Push-Profile request (TS 29.229 §6.1.9,
    §6.1.11) to an S-CSCF-side peer (homestead in HSS mode), to try network-initiated
    de-registration and profile changes by hand or from a test.

    Bodies (JSON): ``{"destination_host": H, "impi": I, "reason": 0..3, "impus": [...],
    "associated": [...]}`` for an RTR (``reason`` a Deregistration-Reason Reason-Code,
    PERMANENT_TERMINATION 0 by default); ``{"destination_host": H, "impi": I, "impu": U}`` for a
    PPR carrying ``U``'s IMS subscription as User-Data. The answer is ``{"result-code": N,
    "experimental": bool}`` from the RTA or PPA; 400 for a bad body, 404 for an unknown IMPU,
    502 when the peer cannot be reached or does not answer."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, hss: ScriptedHss, realm: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._hss = hss
        self._realm = realm

    def render_POST(self, request: Request) -> Union[bytes, int]:  # noqa: N802 (Twisted)
        what = request.postpath[0] if request.postpath else b""
        if what not in (b"rtr", b"ppr"):
            return _admin_answer(request, 404, {"error": "POST /hss/rtr or /hss/ppr"})
        try:
            body = json.loads((request.content.read() if request.content else b"") or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            destination = _text_member(body, "destination_host")
            impi = _text_member(body, "impi")
            if what == b"rtr":
                reason = body.get("reason", int(ReasonCode.PERMANENT_TERMINATION))
                if not isinstance(reason, int) or isinstance(reason, bool):
                    raise ValueError("reason: expected a number")
                impus = [str(v) for v in body.get("impus", [])]
                associated = [str(v) for v in body.get("associated", [])]
                d: Deferred[Message] = self._hss.send_rtr(
                    destination, self._realm, impi, reason, impus, associated
                )
            else:
                impu = _text_member(body, "impu")
                d = self._hss.subscription_xml(impu).addCallback(
                    lambda xml: self._hss.send_ppr(destination, self._realm, impi, xml)
                )
        except ValueError as e:
            return _admin_answer(request, 400, {"error": str(e)})
        gone: list[Failure] = []  # the client went away: nothing to write
        request.notifyFinish().addErrback(gone.append)
        d.addCallbacks(
            lambda answer: _admin_done(request, gone, 200, _outcome_json(answer)),
            lambda failure: _admin_done(request, gone, *_admin_error(failure)),
        )
        return NOT_DONE_YET


def _text_member(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(name + ": expected a string")
    return value


def _outcome_json(answer: Message) -> dict[str, Any]:
    outcome = cx.parse_outcome(answer)
    return {"result-code": outcome.code, "experimental": outcome.experimental}


def _admin_error(failure: Failure) -> tuple[int, dict[str, Any]]:
    error = failure.value
    if isinstance(error, HomesteadError):
        return error.status, {"error": error.message}
    if not isinstance(error, (NoPeerError, DiameterTimeoutError)):
        _log.failure("HSS: admin request failed", failure)
    return 502, {"error": str(error)}


def _admin_answer(request: Request, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"Content-Type", [b"application/json"])
    return json.dumps(body).encode("utf-8")


def _admin_done(request: Request, gone: list[Failure], code: int, body: dict[str, Any]) -> None:
    if gone:
        return
    request.write(_admin_answer(request, code, body))  # type: ignore[no-untyped-call]
    request.finish()  # type: ignore[no-untyped-call]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m clearwater.testing.hss``: see the module docstring and ``--help``."""
    parser = _parser()
    args = parser.parse_args(argv)
    from clearwater.diameter.node import Application, DiameterNode
    from clearwater.http.homestead_prov import homestead_prov_resource
    from clearwater.http.management import QuietSite
    from clearwater.services.homestead.service import open_subscriber_store
    from clearwater.stores.urls import parse_store_url

    try:
        url = parse_store_url(args.store, kinds=("memory", "sqlite", "redis"))
    except ValueError as e:
        parser.error("--store: " + str(e))
    if len(args.ccf) > 2 or len(args.ecf) > 2:
        parser.error("at most two --ccf and two --ecf")
    home_domain = args.home_domain or args.realm
    scscf_uri = args.scscf_uri or "sip:scscf.sprout." + home_domain + ";transport=tcp"
    charging = None
    if args.ccf or args.ecf:
        charging = ChargingInformation.from_lists(args.ccf, args.ecf)

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    start_logging(args.verbose)
    try:
        store = open_subscriber_store(url, reactor, cache_ttl=0)
    except ValueError as e:
        parser.error("--store: " + str(e))
    tls: dict[str, Any] = {}
    if args.tls_listen is not None:
        if not (args.tls_cert and args.tls_key):
            parser.error("--tls-listen needs --tls-cert and --tls-key")
        from clearwater.sip.transport import TlsSettings

        try:
            server = TlsSettings(certificate=args.tls_cert, key=args.tls_key).server_options()
        except ValueError as e:
            parser.error("--tls-cert/--tls-key: " + str(e))
        tls = {"tls_listen": (args.tls_listen[1], args.tls_listen[0]), "tls_server": server}
    host, port = args.listen
    node = DiameterNode(
        reactor,
        args.identity,
        args.realm,
        [Application(APP_CX, VENDOR_3GPP, dictionary=CX)],
        listen=(port, host),
        accept_unknown=True,
        product_name="clearwater scripted HSS",
        watchdog_interval=args.tw,
        **tls,
    )
    hss = ScriptedHss(node, store, scscf_uri=scscf_uri, home_domain=home_domain, charging=charging)
    hss.install()
    top = service.MultiService()
    _StoreService(reactor, store, str(url)).setServiceParent(top)  # type: ignore[no-untyped-call]
    node.setServiceParent(top)  # type: ignore[no-untyped-call]
    if args.prov_port:
        root = homestead_prov_resource(store, home_domain, reactor=reactor)
        root.putChild(b"hss", HssAdminResource(hss, args.realm))
        site = QuietSite(root, reactor)
        prov = internet.TCPServer(args.prov_port, site, interface="127.0.0.1", reactor=reactor)
        prov.setServiceParent(top)

    def started() -> None:
        _log.info(
            "Scripted HSS {identity} (realm {realm}) listening for Cx on {host}:{port}; "
            "S-CSCF {scscf}; subscribers in {store}; provisioning on {prov}",
            identity=args.identity,
            realm=args.realm,
            host=host,
            port=node.port,
            scscf=scscf_uri,
            store=str(url),
            prov="127.0.0.1:" + str(args.prov_port) if args.prov_port else "no port",
        )

    return serve(reactor, top, started)


if __name__ == "__main__":
    sys.exit(main())
