# -*- test-case-name: tests.unit.scscf.test_registrar -*-
"""The S-CSCF's registrar stage (spec §3.3; RFC 3261 §10.3, RFC 3327 Path, RFC 3608
Service-Route, RFC 5626 outbound, RFC 5627 GRUU; Clearwater's ``RegistrarSproutlet``).

It takes a REGISTER whose Request-URI names the home domain (or this node) and which has no
Route left for anyone else; anything else goes on to the next stage (``subscription``).
For each REGISTER, in order:

1. homestead is told (``PUT /impu/<To IMPU>/reg-data``, reqtype ``reg``, this S-CSCF as
   ``server_name``, the private identity from the Authorization header, else the IMPU
   without its scheme) and answers the implicit registration set; homestead 404 gives
   **403**, 503/504 or no answer **504**, any other failure **500**, and a set that did not
   end up REGISTERED **504**;
2. the bindings of the set's default IMPU are updated under CAS
   (:func:`~clearwater.scscf.bindings.apply_register`: expiry, Call-ID/CSeq order, ``*``),
   the set's identities stored as its associated URIs; a rule broken is that rule's
   response (400, 404, 423, 500, 501), a store failure **500**;
3. the temp-gruu tokens of the bindings it made or extended are indexed (RFC 5627 §3.2; no
   store round trip when no binding holds one), the set's reg-event watchers get a NOTIFY,
   and homestead ``dereg-user`` once the last binding has gone;
4. the 200 OK lists every binding (with ``pub-gruu`` and ``temp-gruu`` when the UE supports
   GRUU, RFC 5627 §5.1; temp-gruus only when the registration store can index them), echoes Path,
   gives the Service-Route ``<S-CSCF URI;lr;orig>``, ``P-Associated-URI`` for each non-barred
   identity, ``Supported: outbound`` (``Require: outbound`` when RFC 5626 applies) and the
   charging function addresses homestead gave.
"""

from __future__ import annotations

from typing import Optional, Protocol

import attrs
from twisted.logger import Logger
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.homestead.hssless import HomesteadError, RegData, ReqType
from clearwater.scscf.bindings import (
    RegisterError,
    RegisterKind,
    RegisterOutcome,
    apply_register,
    contact_headers,
    requires_outbound,
)
from clearwater.scscf.config import ScscfConfig
from clearwater.scscf.identities import default_private_id, public_id
from clearwater.scscf.subscribers import (
    AorChange,
    Ended,
    SubscriberManager,
    associated_uris,
    end_orphans,
)
from clearwater.sip import Request, Response, SipUri, TelUri
from clearwater.sip.headers import AUTHORIZATION, PATH, SUPPORTED
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper
from clearwater.stores.interfaces import StoreError
from clearwater.stores.records import AoR
from clearwater.stores.records import RegState as HssState

__all__ = [
    "RegistrarSproutlet",
    "RegistrarTsx",
    "ThirdPartyRegistration",
    "homestead_failure_status",
    "private_id_of",
]

_log = Logger()


def private_id_of(request: Request, home_domain: str) -> str:
    """The private identity a REGISTER is for: the Digest ``username`` of its Authorization,
    else the one its To URI implies (spec §3.3 step 2)."""
    credentials = request.headers.first(AUTHORIZATION)
    if credentials is not None and credentials.is_digest and credentials.username:
        return credentials.username
    return default_private_id(request.to.uri, home_domain)


def homestead_failure_status(error: Exception, not_found: int = 403) -> tuple[int, str]:
    """The SIP answer to a failed homestead request (spec §3.3 step 2,
    ``sm_sip_mapping.cpp``): 404 -> ``not_found``; 503/504 and no answer -> 504; else 500."""
    if isinstance(error, HomesteadError):
        if error.status == 404:
            return not_found, "Unknown subscriber"
        if error.status in (503, 504):
            return 504, "Homestead unavailable"
        return 500, "Homestead failed"
    return 504, "Subscriber data unavailable"


class ThirdPartyRegistration(Protocol):
    """Where third-party REGISTERs to application servers plug in (spec §3.6, the iFC issue):
    told of every REGISTER the registrar accepted, after its 200 OK is built and before it
    goes; it must not block (send its REGISTERs in the background) and may not change the
    response."""

    def registered(
        self, request: Request, response: Response, reg_data: RegData, kind: RegisterKind
    ) -> None: ...


class RegistrarSproutlet(Sproutlet):
    """The registrar stage (see the module notes). ``third_party`` (optional) is told of
    every accepted REGISTER (:class:`ThirdPartyRegistration`)."""

    def __init__(
        self,
        config: ScscfConfig,
        manager: SubscriberManager,
        *,
        service_name: str = "registrar",
        next_service: str = "subscription",
        network_function: str = "scscf",
        third_party: Optional[ThirdPartyRegistration] = None,
    ) -> None:
        super().__init__(service_name, network_function=network_function, next_service=next_service)
        self.config = config
        self.manager = manager
        self.third_party = third_party

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        if request.method != "REGISTER" or "Route" in request.headers:
            return None
        uri = request.uri
        if not isinstance(uri, SipUri) or not self.config.is_local_host(uri.host):
            return None
        return RegistrarTsx(helper, self)


class RegistrarTsx(SproutletTsx):
    """One REGISTER at the registrar."""

    def __init__(self, helper: SproutletTsxHelper, sproutlet: RegistrarSproutlet) -> None:
        super().__init__(helper)
        self.sproutlet = sproutlet

    @override
    async def on_rx_initial_request(self, request: Request) -> None:
        self.send_response(await self._register(request))

    @override
    async def on_rx_in_dialog_request(self, request: Request) -> None:
        self.send_response(await self._register(request))

    async def _register(self, request: Request) -> Response:
        config = self.sproutlet.config
        manager = self.sproutlet.manager
        to_uri = request.to.uri
        if not isinstance(to_uri, (SipUri, TelUri)):
            return self.create_response(request, 404, "Not a SIP or tel URI")
        impu = public_id(to_uri)
        private_id = private_id_of(request, config.home_domain)
        try:
            reg_data = await manager.assign(impu, ReqType.REG, private_id)
        except (HomesteadError, StoreError) as e:
            _log.info("REGISTER for {impu}: homestead failed: {error}", impu=impu, error=e)
            return self.create_response(request, *homestead_failure_status(e))
        if reg_data.state is not HssState.REGISTERED:
            return self.create_response(request, 504, "Registration not recorded")
        aor_id = reg_data.default_public_identity or impu
        associated = associated_uris(reg_data)
        gruu = _supports_gruu(request)
        temp_gruus = gruu and manager.temp_gruus is not None

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, tuple[RegisterOutcome, Ended]]:
            outcome = apply_register(
                aor,
                request,
                now=now,
                reg_max_expires=config.reg_max_expires,
                private_id=private_id,
                min_expires=config.reg_min_expires,
                temp_gruus=temp_gruus,
            )
            new, ended = end_orphans(attrs.evolve(outcome.aor, associated_uris=associated))
            return manager.count_notifies(aor, new), (outcome, ended)

        try:
            before, after, (outcome, ended) = await manager.update(aor_id, change)
        except RegisterError as e:
            response = self.create_response(request, e.status, e.reason)
            for name, value in e.headers:
                response.headers.add(name, value)
            return response
        except StoreError as e:
            _log.warn("REGISTER for {aor}: store failed: {error}", aor=aor_id, error=e)
            return self.create_response(request, 500, "Registration store unavailable")
        if manager.temp_gruus is not None:
            await manager.index_temp_gruus(aor_id, before, after)
        manager.notify(aor_id, AorChange(before, after, outcome.changes, ended))
        if outcome.kind is RegisterKind.DEREGISTER and before is not None and before.bindings:
            await manager.tell_homestead(aor_id, ReqType.DEREG_USER, private_id)
        response = self._ok(request, impu, after, reg_data, outcome, gruu)
        third_party = self.sproutlet.third_party
        if third_party is not None:
            try:
                third_party.registered(request.copy(), response.copy(), reg_data, outcome.kind)
            except Exception:
                _log.failure("third-party registration hook failed")
        return response

    def _ok(
        self,
        request: Request,
        impu: str,
        aor: AoR,
        reg_data: RegData,
        outcome: RegisterOutcome,
        gruu: bool,
    ) -> Response:
        response = self.create_response(request, 200)
        headers = response.headers
        manager = self.sproutlet.manager
        domain = self.sproutlet.config.home_domain if manager.temp_gruus is not None else None
        now = manager.now()
        for contact in contact_headers(
            aor, aor_uri=impu, now=now, gruu=gruu, temp_gruu_domain=domain
        ):
            headers.add("Contact", contact)
        if requires_outbound(request, aor):
            headers.add("Require", "outbound")
        headers.add("Supported", "outbound")
        for path in request.headers.get_all(PATH.name):
            headers.add("Path", path)
        # The authentication stage adds the digest username and nonce on the way out.
        headers.add("Service-Route", "<" + self.sproutlet.config.scscf_uri + ";lr;orig>")
        for identity in reg_data.public_identities:
            if not identity.barred and identity.wildcard is None:
                headers.add("P-Associated-URI", "<" + identity.uri + ">")
        charging = reg_data.charging_addresses
        if charging:
            parts = ["ccf=" + _quoted(a) for a in charging.ccfs]
            parts += ["ecf=" + _quoted(a) for a in charging.ecfs]
            headers.add("P-Charging-Function-Addresses", ";".join(parts))
        if outcome.kind is RegisterKind.DEREGISTER:
            headers.add("Expires", "0")
        return response


def _supports_gruu(request: Request) -> bool:
    """``Supported: gruu`` (RFC 5627 §4.1); a malformed Supported supports nothing."""
    try:
        return any(tag.lower() == "gruu" for tag in request.headers.parsed(SUPPORTED))
    except ParseError:
        return False


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
