# -*- test-case-name: tests.unit.scscf.test_registrar -*-
"""The S-CSCF's last stage, ``scscf-proxy``: initial requests for and from subscribers
(spec §3.8, §3.10; Clearwater's ``SCSCFSproutlet``), without iFCs, the I-CSCF or the BGCF yet.

- **Originating** (the Route that brought the request here has ``orig``, as the
  Service-Route the registrar hands out): the served user (P-Served-User, else
  P-Asserted-Identity, else From) must be known to homestead (``reqtype call``; unknown
  **404**, unavailable **504**) and not barred (**403**). A request for a home-domain SIP user
  then goes to this S-CSCF's terminating side, in process (a Route to ``scscf`` without
  ``orig``); anything else leaves by its Request-URI. (The end of the originating chain is
  where the I-CSCF and BGCF will plug in: :meth:`ScscfProxyTsx.end_of_originating`.)
- **Terminating** (no ``orig``): a request for a home-domain SIP or tel identity gets
  ``P-Called-Party-ID``, and is forked to the registered bindings of the callee's set, picked
  and ordered by RFC 3841 caller preferences and GRUU (at most :data:`MAX_FORKS`), each with
  the binding's Path as its Route set. No binding: **480**. A **430 Flow Failed** removes that
  binding (RFC 5626 §5.3). A request for another domain leaves by its Request-URI.
- **Temporary GRUUs** (RFC 5627 §5.3; :mod:`.bindings`): a terminating request whose
  Request-URI is a temp-gruu of a home domain (user ``tgruu.<token>.<CSeq>``, ``gr`` without
  a value) is looked up in the temp-gruu index: an unknown token, or one the binding no longer
  holds (its Call-ID changed) or never handed out with that CSeq, gets **404**; a token whose
  binding has gone (de-registered, expired) **480**; otherwise the request goes to that one
  binding (caller preferences still apply) as to the AoR's other bindings, homestead being
  asked about the AoR as for any callee. ``P-Called-Party-ID`` is then the temp-gruu as
  received (TS 24.229 §5.4.3.3: the Request-URI the S-CSCF got), never the AoR, which a
  temp-gruu must not reveal (RFC 5627 §3.2).
- **Record-Route** (spec §3.8, Clearwater's default ``pcscf`` model): the S-CSCF stays in the
  dialog, Record-Routing with its cluster URI, ``lr`` and ``billing-role=charge-orig`` where
  originating processing starts and ``billing-role=charge-term`` where terminating processing
  ends (before the forks), once per transaction. (``--record-routing-model``'s other models
  add Record-Routes around the I-CSCF and between application servers: they differ from this
  one only once those hops exist.)
- In-dialog requests follow their Route set (the default).
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.homestead.hssless import HomesteadError, RegData, ReqType
from clearwater.scscf.bindings import (
    BindingChange,
    holds_temp_gruu,
    is_temp_gruu,
    parse_temp_gruu,
)
from clearwater.scscf.callerprefs import target_bindings
from clearwater.scscf.config import MAX_FORKS, ScscfConfig
from clearwater.scscf.identities import public_id
from clearwater.scscf.reginfo import ContactEvent
from clearwater.scscf.registrar import homestead_failure_status
from clearwater.scscf.subscribers import AorChange, SubscriberManager
from clearwater.sip import Request, Response, SipUri, TelUri, Uri, parse_sip_uri, parse_uri
from clearwater.sip.headers import (
    MIN_SE,
    P_ASSERTED_IDENTITY,
    P_SERVED_USER,
    SESSION_EXPIRES,
    SUPPORTED,
)
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper
from clearwater.stores.interfaces import StoreError
from clearwater.stores.records import AoR, Binding
from clearwater.stores.typed import TempGruuTarget

__all__ = ["ScscfProxySproutlet", "ScscfProxyTsx", "served_user"]

_log = Logger()


def served_user(request: Request) -> Uri:
    """The originating served user (TS 24.229 §5.4.3.2): P-Served-User, else the first
    P-Asserted-Identity, else From."""
    for spec in (P_SERVED_USER, P_ASSERTED_IDENTITY):
        try:
            value = request.headers.first(spec)
        except ValueError:
            continue
        if value is not None:
            return value.uri
    return request.from_.uri


class ScscfProxySproutlet(Sproutlet):
    """The ``scscf-proxy`` stage (see the module notes). ``terminating_service`` is the
    sproutlet an originating request for a local user is sent to (the S-CSCF's first stage)."""

    def __init__(
        self,
        config: ScscfConfig,
        manager: SubscriberManager,
        *,
        service_name: str = "scscf-proxy",
        network_function: str = "scscf",
        terminating_service: str = "scscf",
    ) -> None:
        super().__init__(service_name, network_function=network_function)
        self.config = config
        self.manager = manager
        self.terminating_service = terminating_service
        #: The S-CSCF's cluster URI with ``lr``: what its Record-Routes name.
        self.record_route_uri = parse_sip_uri(config.scscf_uri).with_param("lr")

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        return ScscfProxyTsx(helper, self)

    def is_local_user(self, uri: Uri) -> bool:
        if isinstance(uri, TelUri):
            return True
        return isinstance(uri, SipUri) and bool(uri.user) and self.config.is_home_domain(uri.host)


class ScscfProxyTsx(SproutletTsx):
    """One initial request at ``scscf-proxy``."""

    def __init__(self, helper: SproutletTsxHelper, sproutlet: ScscfProxySproutlet) -> None:
        super().__init__(helper)
        self.sproutlet = sproutlet
        self.aor_id = ""
        self.forks: dict[int, str] = {}  # fork id -> binding id
        self.record_routed = False
        # The Session-Expires this INVITE/UPDATE left with and whether its UAC supports
        # session timers (RFC 4028 §8.1), for the 2xx (None: not record-routed here)
        self.session_expires: Optional[int] = None
        self.uac_supports_timer = False

    @override
    async def on_rx_initial_request(self, request: Request) -> None:
        route = self.route_hdr()
        originating = (
            route is not None
            and isinstance(route.uri, SipUri)
            and route.uri.param("orig") is not None
        )
        if originating:
            await self._originating(request)
        else:
            await self._terminating(request)

    async def _originating(self, request: Request) -> None:
        served = served_user(request)
        if not isinstance(served, (SipUri, TelUri)):
            self.send_response(self.create_response(request, 404, "Bad served user"))
            return
        impu = public_id(served)
        reg_data = await self._assign(request, impu, not_found=404)
        if reg_data is None:
            return
        identity = next((i for i in reg_data.public_identities if i.uri == impu), None)
        if identity is not None and identity.barred:
            self.send_response(self.create_response(request, 403, "Served user barred"))
            return
        self.record_route(request, "charge-orig")
        self.end_of_originating(request)

    def record_route(self, request: Request, billing_role: str) -> None:
        """Add this S-CSCF's Record-Route (module notes), unless this transaction did."""
        if self.record_routed:
            return
        self.record_routed = True
        uri = self.sproutlet.record_route_uri.with_param("billing-role", billing_role)
        request.headers.prepend("Record-Route", "<" + str(uri) + ">")
        if request.method in ("INVITE", "UPDATE"):
            self.ask_session_expires(request)

    def ask_session_expires(self, request: Request) -> None:
        """RFC 4028 §8.1, as Clearwater's S-CSCF did once it Record-Routed a dialog (spec
        §3.8): no Session-Expires gets the configured one; a longer one is lowered to it, but
        not below the request's Min-SE."""
        target = self.sproutlet.config.session_expires
        try:
            supported = request.headers.parsed(SUPPORTED)
            asked = request.headers.first(SESSION_EXPIRES)
            minimum = request.headers.first(MIN_SE)
        except ParseError:
            return  # left to the endpoints, which will reject it
        self.uac_supports_timer = any(option.lower() == "timer" for option in supported)
        if asked is None:
            request.headers.set("Session-Expires", str(target))
            self.session_expires = target
            return
        lowered = max(target, minimum.delta if minimum is not None else 0)
        if lowered < asked.delta:
            asked = attrs.evolve(asked, delta=lowered)
            request.headers.set("Session-Expires", str(asked))
        self.session_expires = asked.delta

    def end_of_originating(self, request: Request) -> None:
        """Route an originating request on once its (future) iFCs are done (spec §3.8): a
        local user's request to this S-CSCF's terminating side, anything else by its
        Request-URI."""
        if self.sproutlet.is_local_user(request.uri):
            base = self.get_reflexive_uri()
            route = self.next_hop_uri(self.sproutlet.terminating_service, base)
            request.headers.prepend("Route", "<" + str(route) + ">")
        self.send_request(request)

    async def _terminating(self, request: Request) -> None:
        target = request.uri
        if not self.sproutlet.is_local_user(target) or "Route" in request.headers:
            self.send_request(request)  # not ours to terminate: on by Route / Request-URI
            return
        if is_temp_gruu(target):
            await self._temp_gruu(request)
            return
        assert isinstance(target, (SipUri, TelUri))
        impu = public_id(target)
        reg_data = await self._assign(request, impu, not_found=404)
        if reg_data is None:
            return
        self.aor_id = reg_data.default_public_identity or impu
        bindings = await self._bindings(request)
        if bindings is None:
            return
        targets = target_bindings(request, bindings, max_forks=MAX_FORKS)
        self._fork(request, targets, "<" + impu + ">")

    async def _temp_gruu(self, request: Request) -> None:
        """A temp-gruu Request-URI (see the module notes)."""
        parsed = parse_temp_gruu(request.uri)
        indexed: Optional[TempGruuTarget] = None
        index = self.sproutlet.manager.temp_gruus
        if parsed is not None and index is not None:
            try:
                indexed = await index.get_target(parsed[0])
            except StoreError as e:
                _log.warn("temp-gruu lookup failed: {error}", error=e)
                self.send_response(
                    self.create_response(request, 504, "Registration store unavailable")
                )
                return
        if parsed is None or indexed is None:
            self.send_response(self.create_response(request, 404, "Unknown GRUU"))
            return
        token, cseq = parsed
        if await self._assign(request, indexed.aor_id, not_found=404) is None:
            return
        self.aor_id = indexed.aor_id
        bindings = await self._bindings(request)
        if bindings is None:
            return
        binding = dict(bindings).get(indexed.binding_id)
        if binding is None:
            self.send_response(self.create_response(request, 480))  # RFC 5627 §5.3
            return
        if not holds_temp_gruu(binding, token, cseq):
            self.send_response(self.create_response(request, 404, "Unknown GRUU"))
            return
        targets = target_bindings(
            request, ((indexed.binding_id, binding),), max_forks=MAX_FORKS, gruu_resolved=True
        )
        self._fork(request, targets, "<" + str(request.uri) + ">")

    async def _bindings(self, request: Request) -> Optional[tuple[tuple[str, Binding], ...]]:
        """The live bindings of :attr:`aor_id`; None (and a 504 sent) when the store fails."""
        try:
            aor, _ = await self.sproutlet.manager.registrations.get_aor(self.aor_id)
        except StoreError as e:
            _log.warn("call to {aor}: store failed: {error}", aor=self.aor_id, error=e)
            self.send_response(self.create_response(request, 504, "Registration store unavailable"))
            return None
        now = self.sproutlet.manager.now()
        return () if aor is None else aor.without_expired(now).bindings

    def _fork(
        self, request: Request, targets: list[tuple[str, Binding]], called_party: str
    ) -> None:
        """Fork to ``targets`` (480 when there is none), each with its Path as Route set."""
        if not targets:
            self.send_response(self.create_response(request, 480))
            return
        request.headers.set("P-Called-Party-ID", called_party)
        self.record_route(request, "charge-term")
        for binding_id, binding in targets:
            fork = self.clone_request(request)
            fork.uri = parse_uri(binding.uri)
            fork.headers.remove("Route")
            for path in binding.path_headers:
                fork.headers.add("Route", path)
            self.forks[self.send_request(fork)] = binding_id

    async def _assign(self, request: Request, impu: str, not_found: int) -> Optional[RegData]:
        try:
            return await self.sproutlet.manager.assign(impu, ReqType.CALL)
        except (HomesteadError, StoreError) as e:
            _log.info("{method} for {impu}: homestead failed: {error}",
                      method=request.method, impu=impu, error=e)  # fmt: skip
            status, reason = homestead_failure_status(e, not_found=not_found)
            self.send_response(self.create_response(request, status, reason))
            return None

    @override
    def on_rx_response(self, response: Response, fork_id: int) -> None:
        binding_id = self.forks.get(fork_id)
        if response.status == 430 and binding_id is not None:
            self._flow_failed(binding_id)
        if (
            self.session_expires is not None
            and self.uac_supports_timer
            and 200 <= response.status < 300
            and "Session-Expires" not in response.headers
        ):
            # RFC 4028 §8.2: a UAS without session timers; the UAC, which has them, refreshes
            response.headers.set("Session-Expires", str(self.session_expires) + ";refresher=uac")
            response.headers.add("Require", "timer")
        self.send_response(response)

    def _flow_failed(self, binding_id: str) -> None:
        """RFC 5626 §5.3: the edge proxy lost that flow; the binding is of no use."""
        manager = self.sproutlet.manager
        aor_id = self.aor_id

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, tuple[BindingChange, ...]]:
            if aor is None:
                return AoR(), ()
            gone = tuple(
                BindingChange(k, ContactEvent.DEACTIVATED, b)
                for k, b in aor.bindings
                if k == binding_id
            )
            kept = tuple((k, b) for k, b in aor.bindings if k != binding_id)
            new = attrs.evolve(aor, bindings=kept)
            return (manager.count_notifies(aor, new) if gone else new), gone

        async def remove() -> None:
            before, after, gone = await manager.update(aor_id, change)
            if gone:
                manager.notify(aor_id, AorChange(before, after, gone))

        d = Deferred.fromCoroutine(remove())
        d.addErrback(lambda f: _log.warn("binding {b} not removed: {e}", b=binding_id, e=f.value))
