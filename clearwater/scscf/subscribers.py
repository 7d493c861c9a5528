# -*- test-case-name: tests.unit.scscf.test_registrar -*-
"""The S-CSCF's subscriber manager: registration state in the store, its expiry timers, and
the reg-event NOTIFYs that follow every change (spec §3.3-§3.5, §3.7, §3.11; Clearwater's
``SubscriberManager`` and S4).

Every change to an address-of-record is a read-modify-write of its record
(:class:`~clearwater.stores.records.AoR`, keyed by the default IMPU of its implicit
registration set) under the store's CAS, retried from the read when another writer won
(:meth:`SubscriberManager.update`). After each write:

- one expiry timer per AoR (``ITimerService`` kind :data:`REG_TIMER_KIND`, id
  ``reg:<aor>``) is set for the earliest binding or subscription expiry, or deleted when the
  record is empty; when it pops, expired bindings and subscriptions are dropped, their
  watchers told, and homestead told ``dereg-timeout`` if no binding is left (§3.5);
- every reg-event subscription of the AoR gets a NOTIFY (``application/reginfo+xml``,
  RFC 3680 §5; CSeq = the record's ``notify_cseq``), and a subscription that ended gets its
  last one with ``Subscription-State: terminated``.

What a NOTIFY carries depends on ``ScscfConfig.reg_event_partial_state``:

- off (Clearwater's way): the full state every time, ``version`` = the record's
  ``notify_cseq`` (so a subscription sees it grow, with gaps);
- on (RFC 3680 §5.2, §6): a subscription's first NOTIFY, the one after each refresh, and any
  after a change of the identity set carry the full state; every other carries
  ``state="partial"`` with only the contacts that changed (no ``<registration>`` at all when
  none did). ``version`` counts the NOTIFYs of each subscription: 0 for the first, then one
  more for each, kept in the subscription's record (``Subscription.version``) and counted in
  the same CAS write as the change the NOTIFY reports (:meth:`SubscriberManager.count_notifies`),
  so a watcher that sees a gap knows it missed one and re-subscribes for the full state. A
  subscription stored without a count (made while the switch was off) next gets the full
  state with version = the record's new ``notify_cseq``, above any version it saw before.

Temporary GRUUs (:mod:`clearwater.scscf.bindings`) are indexed here too:
:meth:`SubscriberManager.index_temp_gruus` writes the token -> binding records of the
registration store's :class:`~clearwater.stores.typed.TempGruuStore` after a REGISTER created or
extended bindings that hold one.

NOTIFYs are sent with the proxy's :meth:`~clearwater.sip.sproutlet.SproutletProxy.originate`
(any ``Sender``) and not waited for: a watcher that does not answer loses nothing but its
NOTIFY (RFC 6665 §4.2.2: a 481 or a timeout ends the subscription, and it is removed).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from clearwater.homestead.hssless import HomesteadError, RegData, ReqType
from clearwater.scscf.bindings import BindingChange, pub_gruu, remove_bindings, temp_gruu_uri
from clearwater.scscf.config import ScscfConfig
from clearwater.scscf.hss import Homestead
from clearwater.scscf.reginfo import (
    REGINFO_CONTENT_TYPE,
    ContactEvent,
    ContactInfo,
    Reginfo,
    RegistrationInfo,
    build_reginfo,
)
from clearwater.sip import Request, Response
from clearwater.sip._message import Headers
from clearwater.stores.interfaces import DataContentionError, IRegistrationStore, ITimerService
from clearwater.stores.records import AoR, AssociatedUri, Binding, Subscription
from clearwater.stores.typed import RegistrationStore, TempGruuStore, TempGruuTarget

__all__ = [
    "MAX_CAS_ATTEMPTS",
    "REG_TIMER_KIND",
    "AorChange",
    "Ended",
    "Sender",
    "SubscriberManager",
    "associated_uris",
    "binding_contact_id",
    "end_orphans",
    "instance_urn",
]

_log = Logger()

#: The ``ITimerService`` kind of registration expiry timers (Clearwater's ``POST /timers``).
REG_TIMER_KIND = "registration-expiry"

#: Read-modify-write attempts before a contended update gives up (DataContentionError).
MAX_CAS_ATTEMPTS = 10

#: Sends a request this node originates; fires with the final response.
Sender = Callable[[Request], Deferred[Response]]

_T = TypeVar("_T")


def binding_contact_id(binding_id: str) -> str:
    """The reginfo ``<contact id>`` of a binding: short, stable, and not the instance id."""
    return hashlib.sha256(binding_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _registration_id(impu: str) -> str:
    return hashlib.sha256(impu.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@attrs.frozen
class AorChange:
    """What an update did to an AoR: the record before and after, the binding changes to
    report, and the subscriptions that ended (their last NOTIFY says ``reason``)."""

    before: Optional[AoR]
    after: AoR
    changes: tuple[BindingChange, ...] = ()
    ended: tuple[tuple[str, Subscription], ...] = ()
    reason: str = "deactivated"


#: Subscriptions that ended: (To tag, subscription).
Ended = tuple[tuple[str, Subscription], ...]


def end_orphans(aor: AoR) -> tuple[AoR, Ended]:
    """With no binding left the reg-event subscriptions end too, as Clearwater deletes the
    whole record (their last NOTIFY: ``terminated;reason=deactivated``)."""
    if aor.bindings or not aor.subscriptions:
        return aor, ()
    return attrs.evolve(aor, subscriptions=()), aor.subscriptions


class _NoRecordError(Exception):
    """Aborts an update of an AoR that is not there."""


def _timer_id(aor_id: str) -> str:
    return "reg:" + aor_id


class SubscriberManager:
    """Registration state of the S-CSCF's subscribers (see the module notes).

    ``temp_gruus`` is the temporary GRUU index; by default the one of ``registrations`` when
    that is a :class:`~clearwater.stores.typed.RegistrationStore`. None: no index, so the
    registrar hands out no temp-gruus."""

    def __init__(
        self,
        config: ScscfConfig,
        homestead: Homestead,
        registrations: IRegistrationStore,
        timers: ITimerService,
        clock: IReactorTime,
        send: Sender,
        *,
        temp_gruus: Optional[TempGruuStore] = None,
    ) -> None:
        self.config = config
        self.homestead = homestead
        self.registrations = registrations
        if temp_gruus is None and isinstance(registrations, RegistrationStore):
            temp_gruus = registrations.temp_gruus
        self.temp_gruus = temp_gruus
        self.timers = timers
        self.clock = clock
        self.send = send
        timers.listen(REG_TIMER_KIND, self._timer_popped)

    def now(self) -> int:
        return int(self.clock.seconds())

    # ---- read-modify-write

    async def update(
        self, aor_id: str, change: Callable[[Optional[AoR], int], tuple[AoR, _T]]
    ) -> tuple[Optional[AoR], AoR, _T]:
        """Apply ``change(record or None, now)`` -> ``(new record, result)`` under CAS,
        retried from a fresh read when another writer got there first; expired bindings and
        subscriptions are gone from the record ``change`` sees. Returns the record before,
        after, and ``change``'s result. Store errors propagate; ``change`` may raise to abort.
        Also re-arms the AoR's expiry timer (failures there are logged, not raised)."""
        for _ in range(MAX_CAS_ATTEMPTS):
            stored, cas = await self.registrations.get_aor(aor_id)
            now = self.now()
            before = None if stored is None else stored.without_expired(now)
            after, result = change(before, now)
            if after == stored:
                return before, after, result  # nothing to write
            after = attrs.evolve(
                after,
                notify_cseq=(stored.notify_cseq if stored else 0) + 1,
                timer_id=_timer_id(aor_id),
                scscf_uri=self.config.scscf_uri,
            )
            try:
                await self.registrations.set_aor(aor_id, after, cas, now)
            except DataContentionError:
                continue
            self._rearm(aor_id, after, now)
            return before, after, result
        raise DataContentionError("AoR " + aor_id + " kept changing")

    def _rearm(self, aor_id: str, aor: AoR, now: int) -> None:
        times = [b.expires for _, b in aor.bindings] + [s.expires for _, s in aor.subscriptions]
        what = "registration timer for " + aor_id + " not updated"
        if not times:
            self.timers.delete_timer(_timer_id(aor_id)).addErrback(_log_failure, what)
            return
        interval = max(1, min(times) - now)
        self.timers.set_timer(
            REG_TIMER_KIND, interval, {"aor_id": aor_id}, timer_id=_timer_id(aor_id)
        ).addErrback(_log_failure, what)

    # ---- timer pops, de-registrations

    def _timer_popped(self, timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
        aor_id = opaque.get("aor_id")
        if not isinstance(aor_id, str) or not aor_id:
            _log.warn("registration timer {id} without an aor_id", id=timer_id)
            return Deferred.fromCoroutine(_nothing())
        return Deferred.fromCoroutine(self.expire(aor_id))

    async def expire(self, aor_id: str) -> None:
        """Drop what expired from ``aor_id``, tell the watchers, and tell homestead when the
        last binding went (``dereg-timeout``, spec §3.5)."""
        stored, _ = await self.registrations.get_aor(aor_id)
        if stored is None:
            return
        now = self.now()
        expired = tuple(
            BindingChange(bid, ContactEvent.EXPIRED, b)
            for bid, b in stored.bindings
            if b.expires <= now
        )
        timed_out = tuple((tag, s) for tag, s in stored.subscriptions if s.expires <= now)

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, Ended]:
            new, ended = end_orphans(aor or AoR())
            return self.count_notifies(aor, new), ended

        before, after, orphans = await self.update(aor_id, change)
        self.notify(aor_id, AorChange(before, after, expired, timed_out, reason="timeout"))
        if orphans:
            self.notify(aor_id, AorChange(before, after, expired, orphans))
        if stored.bindings and not after.bindings:
            private_id = stored.bindings[0][1].private_id or None
            await self.tell_homestead(aor_id, ReqType.DEREG_TIMEOUT, private_id)

    async def deregister(
        self,
        aor_id: str,
        reqtype: Optional[ReqType],
        *,
        private_id: Optional[str] = None,
        event: ContactEvent = ContactEvent.DEACTIVATED,
    ) -> AorChange:
        """Remove every binding of ``aor_id`` (or those of ``private_id``): network-initiated
        or administrative de-registration (spec §3.11). Watchers are told; homestead is told
        ``reqtype`` when no binding is left (None: it asked for this itself)."""

        def change(
            aor: Optional[AoR], now: int
        ) -> tuple[AoR, tuple[tuple[BindingChange, ...], Ended]]:
            if aor is None:
                return AoR(), ((), ())
            new, changes = remove_bindings(aor, private_id=private_id, event=event)
            new, ended = end_orphans(new)
            return self.count_notifies(aor, new), (changes, ended)

        before, after, (changes, ended) = await self.update(aor_id, change)
        result = AorChange(before, after, changes, ended)
        self.notify(aor_id, result)
        if reqtype is not None and before is not None and before.bindings and not after.bindings:
            await self.tell_homestead(aor_id, reqtype, private_id)
        return result

    async def update_associated_uris(
        self, aor_id: str, uris: tuple[AssociatedUri, ...]
    ) -> Optional[AorChange]:
        """Replace the AoR's associated URIs with ``uris`` (homestead's Push-Profile, spec
        §3.11) and, when they changed, NOTIFY the watchers. None when there is no live record
        (nothing is written then: Clearwater answers such a push 200 all the same)."""

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, None]:
            if aor is None or not (aor.bindings or aor.subscriptions):
                raise _NoRecordError()
            new = attrs.evolve(aor, associated_uris=uris)
            if uris != aor.associated_uris:  # then the watchers are told
                new = self.count_notifies(aor, new)
            return new, None

        try:
            before, after, _ = await self.update(aor_id, change)
        except _NoRecordError:
            return None
        result = AorChange(before, after)
        if before is None or before.associated_uris != after.associated_uris:
            self.notify(aor_id, result)
        return result

    async def tell_homestead(
        self, aor_id: str, reqtype: ReqType, private_id: Optional[str]
    ) -> None:
        """``PUT reg-data`` with a de-registration ``reqtype``; a failure is logged (the
        bindings are gone whatever homestead says)."""
        try:
            await self.homestead.put_reg_data(
                aor_id, reqtype, server_name=self.config.scscf_uri, private_id=private_id
            )
        except (HomesteadError, Exception) as e:  # a store error in process, too
            _log.warn(
                "homestead not told {reqtype} for {aor}: {error}",
                reqtype=reqtype.value,
                aor=aor_id,
                error=e,
            )

    # ---- NOTIFYs

    def next_version(self, subscription: Subscription, notify_cseq: int) -> Optional[int]:
        """With partial state on, the ``version`` of the next NOTIFY to ``subscription`` when
        it goes with the AoR write numbered ``notify_cseq``: one more than its last, or
        ``notify_cseq`` when it has no count yet (module notes); None with partial state off."""
        if not self.config.reg_event_partial_state:
            return None
        if subscription.version is None:
            return notify_cseq
        return subscription.version + 1

    def count_notifies(self, before: Optional[AoR], after: AoR) -> AoR:
        """``after`` with the NOTIFY that is to report this change counted in the version of
        each subscription it goes to: those in both ``before`` and ``after``. For the
        ``change`` functions of :meth:`update` whose result :meth:`notify` reports. With partial
        state off, ``after`` without any count (as Clearwater's records are)."""
        if before is None or not after.subscriptions:
            return after
        known = {tag for tag, _ in before.subscriptions}
        if not self.config.reg_event_partial_state:
            if all(s.version is None for _, s in after.subscriptions):
                return after
            # Counted while the switch was on: drop the count, as Clearwater's records are.
            counted = tuple(
                (tag, attrs.evolve(s, version=None) if tag in known else s)
                for tag, s in after.subscriptions
            )
            return attrs.evolve(after, subscriptions=counted)
        cseq = before.notify_cseq + 1  # the notify_cseq update() gives this write
        counted = tuple(
            (tag, attrs.evolve(s, version=self.next_version(s, cseq))) if tag in known else (tag, s)
            for tag, s in after.subscriptions
        )
        return attrs.evolve(after, subscriptions=counted)

    def notify(self, aor_id: str, change: AorChange) -> None:
        """Send every watcher of the AoR its NOTIFY for ``change`` (module notes)."""
        after = change.after
        if not after.subscriptions and not change.ended:
            return
        if change.before is not None and change.before.notify_cseq == after.notify_cseq:
            return  # nothing written (a fetch): the watchers know this state, and its CSeq
        now = self.now()
        known = {tag for tag, _ in change.before.subscriptions} if change.before else None
        documents = _Documents(self, change, now)
        previous = dict(change.before.subscriptions) if change.before else {}
        for tag, subscription in after.subscriptions:
            if known is not None and tag not in known:
                continue  # new: its first NOTIFY goes after its 200 (the subscription sproutlet)
            state = "active;expires=" + str(max(0, subscription.expires - now))
            old = previous.get(tag)
            full = old is None or old.version is None
            body = documents.get(subscription.version, full)
            self.send_notify(aor_id, tag, subscription, body, state, after.notify_cseq)
        for tag, subscription in change.ended:
            state = "terminated;reason=" + change.reason
            version = self.next_version(subscription, after.notify_cseq)
            body = documents.get(version, subscription.version is None)
            self.send_notify(aor_id, tag, subscription, body, state, after.notify_cseq)

    def reginfo(
        self, change: AorChange, now: int, *, version: Optional[int] = None, partial: bool = False
    ) -> bytes:
        """The reginfo document after ``change`` (spec §3.7), ``version`` (default: the
        record's ``notify_cseq``). Full state: a registration per non-barred identity of the
        set, each listing every binding (live, or ended by this change) with its event and its
        GRUUs (RFC 5628: the public GRUU; the latest temp-gruu of a live binding that has one).
        ``partial`` (RFC 3680 §5.2): only the bindings ``change`` changed, and no registration
        at all when it changed none."""
        after = change.after
        events = {c.binding_id: c for c in change.changes}
        live = {binding_id for binding_id, _ in after.bindings}
        shown: list[tuple[str, Binding, str, ContactEvent]] = []
        for binding_id, binding in after.bindings:
            event = events.get(binding_id)
            if partial and event is None:
                continue
            kind = event.event if event is not None else ContactEvent.REGISTERED
            shown.append((binding_id, binding, "active", kind))
        for binding_id, c in events.items():
            if binding_id not in live:
                shown.append((binding_id, c.binding, "terminated", c.event))
        identities = [u.uri for u in after.associated_uris if not u.barring]
        if not identities and change.before is not None:
            identities = [u.uri for u in change.before.associated_uris if not u.barring]
        if partial and not shown:
            identities = []
        domain = self.config.home_domain
        registrations = tuple(
            RegistrationInfo(
                aor=impu,
                id=_registration_id(impu),
                state="active" if after.bindings else "terminated",
                contacts=tuple(_contact(impu, *row, now, domain) for row in shown),
            )
            for impu in identities
        )
        info = Reginfo(
            version=after.notify_cseq if version is None else version,
            state="partial" if partial else "full",
            registrations=registrations,
        )
        return build_reginfo(info)

    def notify_request(
        self, subscription: Subscription, body: bytes, state: str, cseq: int
    ) -> Request:
        """A NOTIFY inside ``subscription``'s dialog (RFC 6665 §4.2.2, RFC 3261 §12.2.1)."""
        headers = Headers()
        for route in subscription.routes:
            headers.add("Route", route)
        headers.add("From", "<" + subscription.to_uri + ">;tag=" + subscription.to_tag)
        headers.add("To", "<" + subscription.from_uri + ">;tag=" + subscription.from_tag)
        headers.add("Call-ID", subscription.cid)
        headers.add("CSeq", str(cseq) + " NOTIFY")
        headers.add("Max-Forwards", "70")
        headers.add("Contact", "<" + self.config.scscf_uri + ">")
        headers.add("Event", "reg")
        headers.add("Subscription-State", state)
        headers.add("Content-Type", REGINFO_CONTENT_TYPE)
        return Request("NOTIFY", subscription.req_uri, headers, body)

    def send_notify(
        self, aor_id: str, tag: str, subscription: Subscription, body: bytes, state: str, cseq: int
    ) -> None:
        try:
            request = self.notify_request(subscription, body, state, cseq)
            d = self.send(request)
        except Exception as e:
            _log.warn("NOTIFY for {aor} not sent: {error}", aor=aor_id, error=e)
            return
        d.addCallbacks(
            self._notify_answered,
            self._notify_failed,
            callbackArgs=(aor_id, tag),
            errbackArgs=(aor_id, tag),
        )

    def _notify_answered(self, response: Response, aor_id: str, tag: str) -> None:
        if response.status in (404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604):
            # RFC 6665 §4.1.3: the subscription is gone at the watcher's end.
            self._drop_subscription(aor_id, tag, str(response.status))

    def _notify_failed(self, reason: Failure, aor_id: str, tag: str) -> None:
        self._drop_subscription(aor_id, tag, str(reason.value))

    def _drop_subscription(self, aor_id: str, tag: str, why: str) -> None:
        _log.info(
            "reg-event subscription {tag} to {aor} ended: {why}", tag=tag, aor=aor_id, why=why
        )

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, None]:
            if aor is None:
                return AoR(), None
            return attrs.evolve(
                aor, subscriptions=tuple((t, s) for t, s in aor.subscriptions if t != tag)
            ), None

        Deferred.fromCoroutine(self.update(aor_id, change)).addErrback(
            _log_failure, "subscription " + tag + " not removed"
        )

    # ---- temporary GRUUs

    async def index_temp_gruus(self, aor_id: str, before: Optional[AoR], after: AoR) -> None:
        """Index the temp-gruu token of every binding of ``after`` that got one or had its
        expiry changed since ``before`` (:class:`~clearwater.stores.typed.TempGruuStore`, living
        as long as the binding). Nothing to do, and no store round trip, when no binding holds a
        token. A failure is logged: the binding's temp-gruus then find nothing (404) until a
        refresh writes the record again."""
        index = self.temp_gruus
        if index is None:
            return
        old = dict(before.bindings) if before is not None else {}
        now = self.now()
        writes: list[Deferred[None]] = []
        for binding_id, binding in after.bindings:
            temp = binding.temp_gruu
            if temp is None:
                continue
            previous = old.get(binding_id)
            if (
                previous is not None
                and previous.temp_gruu == temp
                and previous.expires == binding.expires
            ):
                continue
            new = previous is None or previous.temp_gruu is None or previous.temp_gruu != temp
            target = TempGruuTarget(aor_id, binding_id)
            writes.append(index.set_target(temp.token, target, binding.expires, now, new=new))
        if not writes:
            return
        what = "temp-gruu of " + aor_id + " not indexed"
        await DeferredList([d.addErrback(_log_failure, what) for d in writes])

    # ---- homestead

    async def assign(
        self, impu: str, reqtype: ReqType, private_id: Optional[str] = None
    ) -> RegData:
        """``PUT /impu/<impu>/reg-data`` with this S-CSCF as ``server_name``."""
        return await self.homestead.put_reg_data(
            impu, reqtype, server_name=self.config.scscf_uri, private_id=private_id
        )


def associated_uris(reg_data: RegData) -> tuple[AssociatedUri, ...]:
    """The implicit registration set's identities, in homestead's order (P-Associated-URI)."""
    return tuple(AssociatedUri(i.uri, i.barred) for i in reg_data.public_identities)


def instance_urn(binding: Binding) -> Optional[str]:
    """The binding's ``+sip.instance`` without its quotes and angle brackets (RFC 5627 §3.2)."""
    value = dict(binding.params).get("+sip.instance")
    if not value:
        return None
    return value.strip('"').strip("<>") or None


class _Documents:
    """The reginfo bodies of one :meth:`SubscriberManager.notify`, built once per (version,
    full or partial)."""

    def __init__(self, manager: SubscriberManager, change: AorChange, now: int) -> None:
        self.manager = manager
        self.change = change
        self.now = now
        self.built: dict[tuple[Optional[int], bool], bytes] = {}

    def get(self, version: Optional[int], full: bool) -> bytes:
        """Full state, version ``notify_cseq``, whatever is asked with partial state off."""
        if not self.manager.config.reg_event_partial_state:
            version, full = None, True
        partial = not full
        if partial:
            change = self.change
            if change.before is not None and (
                change.before.associated_uris != change.after.associated_uris
            ):
                partial = False  # the identity set changed: full state (module notes)
        key = (version, partial)
        body = self.built.get(key)
        if body is None:
            body = self.manager.reginfo(self.change, self.now, version=version, partial=partial)
            self.built[key] = body
        return body


def _contact(
    impu: str,
    binding_id: str,
    binding: Binding,
    state: str,
    event: ContactEvent,
    now: int,
    domain: str,
) -> ContactInfo:
    temp_gruu = temp_gruu_uri(binding, domain) if state == "active" else None
    unknown = tuple(
        (k, v.strip('"')) for k, v in binding.params if k not in ("+sip.instance", "reg-id")
    )
    return ContactInfo(
        id=binding_contact_id(binding_id),
        state=state,
        event=event,
        uri=binding.uri,
        expires=max(0, binding.expires - now) if state == "active" else 0,
        q=_q(binding.priority),
        callid=binding.cid,
        cseq=binding.cseq,
        pub_gruu=pub_gruu(impu, binding),
        temp_gruu=None
        if temp_gruu is None or binding.temp_gruu is None
        else (temp_gruu, binding.temp_gruu.first_cseq),
        unknown_params=unknown,
    )


def _q(priority: int) -> Optional[str]:
    if not priority:
        return None
    text = "%.3f" % (min(priority, 1000) / 1000)
    return text.rstrip("0").rstrip(".") if "." in text else text


async def _nothing() -> None:
    return None


def _log_failure(reason: Failure, what: str) -> None:
    _log.warn("{what}: {error}", what=what, error=reason.value)
