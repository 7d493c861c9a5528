# -*- test-case-name: tests.unit.scscf.test_registrar -*-
"""The S-CSCF's subscription stage: the reg event package (RFC 3680; RFC 6665 SUBSCRIBE /
NOTIFY; spec §3.7, Clearwater's ``SubscriptionSproutlet``).

It takes a SUBSCRIBE with ``Event: reg`` for a public identity of the home domain (or inside
a reg-event dialog it created); anything else goes on to the next stage (``scscf-proxy``).

- An ``Accept`` header without ``application/reginfo+xml`` gets **406**; a non-SIP, non-tel
  target **404**; an emergency contact (``sos``) **489** with ``Allow-Events: reg``;
- homestead must know the identity (404 **403**, unavailable **504**) and its set must be
  registered with live bindings, else **480**;
- the expiry is the ``Expires`` header (default and ceiling ``--sub-max-expires``); the
  subscription is stored in the AoR under the To tag this stage gives it, its route set
  being the SUBSCRIBE's Record-Route (RFC 3261 §12.1.1);
- the 200 OK carries ``Expires`` and a Contact of the S-CSCF; the first NOTIFY, with the full
  state, follows it. A refresh inside the dialog resets the expiry (an unknown dialog gets
  **481**) and is answered with the full state too; ``Expires: 0`` ends the subscription with
  a last NOTIFY, full state, ``Subscription-State: terminated;reason=timeout``.

With partial state on (``ScscfConfig.reg_event_partial_state``, RFC 3680 §5.2) these NOTIFYs
count in the subscription's version (:mod:`.subscribers`): 0 for a new subscription's first
(and for the only one of a fetch, a SUBSCRIBE with ``Expires: 0`` outside a dialog), one more
than the last for a refresh's or an unsubscribe's.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.logger import Logger
from typing_extensions import override

from clearwater.homestead.hssless import HomesteadError
from clearwater.scscf.config import ScscfConfig
from clearwater.scscf.identities import public_id
from clearwater.scscf.reginfo import REGINFO_CONTENT_TYPE
from clearwater.scscf.registrar import homestead_failure_status
from clearwater.scscf.subscribers import AorChange, SubscriberManager
from clearwater.sip import NameAddr, Request, Response, SipUri, TelUri
from clearwater.sip.headers import CONTACT, EVENT, EXPIRES, RECORD_ROUTE
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper
from clearwater.stores.interfaces import StoreError
from clearwater.stores.records import AoR, Subscription
from clearwater.stores.records import RegState as HssState

__all__ = ["SubscriptionSproutlet", "SubscriptionTsx"]

_log = Logger()


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _is_reg_event(request: Request) -> bool:
    try:
        event = request.headers.first(EVENT)
    except ValueError:
        return False
    return event is not None and event.package.lower() == "reg"


class SubscriptionSproutlet(Sproutlet):
    """The subscription stage (see the module notes)."""

    def __init__(
        self,
        config: ScscfConfig,
        manager: SubscriberManager,
        *,
        service_name: str = "subscription",
        next_service: str = "scscf-proxy",
        network_function: str = "scscf",
    ) -> None:
        super().__init__(service_name, network_function=network_function, next_service=next_service)
        self.config = config
        self.manager = manager

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        if request.method != "SUBSCRIBE" or not _is_reg_event(request):
            return None
        if request.to.tag is None:
            uri = request.uri
            if isinstance(uri, SipUri) and not self.config.is_home_domain(uri.host):
                return None
            if not isinstance(uri, (SipUri, TelUri)):
                return None
        return SubscriptionTsx(helper, self)


class SubscriptionTsx(SproutletTsx):
    """One reg-event SUBSCRIBE."""

    def __init__(self, helper: SproutletTsxHelper, sproutlet: SubscriptionSproutlet) -> None:
        super().__init__(helper)
        self.sproutlet = sproutlet

    @override
    async def on_rx_initial_request(self, request: Request) -> None:
        await self._subscribe(request)

    @override
    async def on_rx_in_dialog_request(self, request: Request) -> None:
        await self._subscribe(request)

    async def _subscribe(self, request: Request) -> None:
        try:
            response, change, aor_id, tag = await self._process(request)
        except _RefusedError as e:
            response = self.create_response(request, e.status, e.reason)
            if e.status == 489:
                response.headers.add("Allow-Events", "reg")
            self.send_response(response)
            return
        self.send_response(response)
        self._first_notify(aor_id, tag, change)

    async def _process(self, request: Request) -> tuple[Response, AorChange, str, str]:
        config = self.sproutlet.config
        manager = self.sproutlet.manager
        accept = [v.split(";")[0].strip().lower() for v in _accepts(request)]
        if accept and REGINFO_CONTENT_TYPE not in accept and "*/*" not in accept:
            raise _RefusedError(406, "Only application/reginfo+xml")
        target = request.to.uri
        if not isinstance(target, (SipUri, TelUri)):
            raise _RefusedError(404, "Not a SIP or tel URI")
        contact = request.headers.first(CONTACT)
        if not isinstance(contact, NameAddr):
            raise _RefusedError(400, "No Contact")
        if contact.param("sos") is not None or (
            isinstance(contact.uri, SipUri) and contact.uri.param("sos") is not None
        ):
            raise _RefusedError(489, "No emergency reg-event subscriptions")
        try:
            expires = request.headers.first(EXPIRES)
        except ValueError:
            raise _RefusedError(400, "Bad Expires") from None
        limit = config.max_subscription_expires
        expires = limit if expires is None else min(expires, limit)
        impu = public_id(target)
        try:
            reg_data = await manager.homestead.get_reg_data(impu)
        except (HomesteadError, StoreError) as e:
            raise _RefusedError(*homestead_failure_status(e)) from None
        if reg_data.state is not HssState.REGISTERED:
            raise _RefusedError(480, "Not registered")
        aor_id = reg_data.default_public_identity or impu
        response = self.create_response(request, 200)
        tag = request.to.tag or response.to.tag or ""

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, Optional[Subscription]]:
            if aor is None or not aor.bindings:
                raise _RefusedError(480, "Not registered")
            subscriptions = dict(aor.subscriptions)
            old = subscriptions.get(tag)
            if request.to.tag is not None and old is None:
                raise _RefusedError(481, "No such subscription")
            if expires == 0:
                subscriptions.pop(tag, None)
            else:
                if old is None:
                    version = 0 if config.reg_event_partial_state else None
                else:
                    version = manager.next_version(old, aor.notify_cseq + 1)
                subscriptions[tag] = Subscription(
                    req_uri=str(contact.uri),
                    from_uri=str(request.from_.uri),
                    from_tag=request.from_.tag or "",
                    to_uri=str(request.to.uri),
                    to_tag=tag,
                    cid=request.call_id,
                    routes=tuple(str(r) for r in request.headers.parsed(RECORD_ROUTE))
                    if old is None
                    else old.routes,
                    expires=now + expires,
                    version=version,
                )
            return attrs.evolve(aor, subscriptions=tuple(subscriptions.items())), old

        try:
            before, after, old = await manager.update(aor_id, change)
        except StoreError as e:
            _log.warn("SUBSCRIBE to {aor}: store failed: {error}", aor=aor_id, error=e)
            raise _RefusedError(500, "Registration store unavailable") from None
        response.headers.add("Expires", str(expires))
        response.headers.add("Contact", "<" + config.scscf_uri + ">")
        ended: tuple[tuple[str, Subscription], ...] = ()
        if expires == 0:
            # A fetch's only NOTIFY is its first: version 0, as next_version(-1) gives it.
            last = old or Subscription(
                req_uri=str(contact.uri),
                from_uri=str(request.from_.uri),
                from_tag=request.from_.tag or "",
                to_uri=str(request.to.uri),
                to_tag=tag,
                cid=request.call_id,
                routes=tuple(str(r) for r in request.headers.parsed(RECORD_ROUTE)),
                version=-1 if config.reg_event_partial_state else None,
            )
            ended = ((tag, last),)
        return response, AorChange(before, after, (), ended, reason="timeout"), aor_id, tag

    def _first_notify(self, aor_id: str, tag: str, change: AorChange) -> None:
        """The NOTIFY that follows the 200 (RFC 6665 §4.2.1.2): full state to this watcher;
        its version as the module notes say (the record's ``notify_cseq`` with partial state
        off)."""
        manager = self.sproutlet.manager
        now = manager.now()
        cseq = change.after.notify_cseq
        for t, subscription in change.ended:
            version = manager.next_version(subscription, cseq)
            body = manager.reginfo(change, now, version=version)
            manager.send_notify(aor_id, t, subscription, body, "terminated;reason=timeout", cseq)
        for t, subscription in change.after.subscriptions:
            if t == tag:
                state = "active;expires=" + str(max(0, subscription.expires - now))
                body = manager.reginfo(change, now, version=subscription.version)
                manager.send_notify(aor_id, t, subscription, body, state, cseq)


def _accepts(request: Request) -> list[str]:
    values: list[str] = []
    for value in request.headers.get_all("Accept"):
        values.extend(v for v in value.split(",") if v.strip())
    return values
