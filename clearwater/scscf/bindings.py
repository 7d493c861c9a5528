"""The registrar's binding rules: a REGISTER applied to an AoR record (pure, no I/O).

Implements RFC 3261 §10.2-§10.3 (REGISTER processing at a registrar), with RFC 5626
(``+sip.instance`` / ``reg-id`` binding ids, ``Require: outbound``), RFC 5627 (``pub-gruu`` and
``temp-gruu`` in the 200 OK) and RFC 3327 (Path stored per binding), as Clearwater's registrar
does them (spec §3.3 steps 1, 4-6 and the §3.4 binding record; sprout
``registrarsproutlet.cpp``).

Where Clearwater and RFC 3261 differ, this module says which it follows:

* Call-ID / CSeq ordering (RFC 3261 §10.3 step 7): a contact whose stored binding has the same
  Call-ID and a CSeq not lower than the request's fails the whole request with 500, as
  RFC 3261 says ("the update MUST be aborted and the request fails", and a failed update MUST
  be answered 500). Clearwater skips such a contact silently and answers 200.
* ``min_expires`` (RFC 3261 §10.3 step 7, 423): off by default, as in Clearwater (which never
  sends 423); a caller may turn it on.

Everything else follows Clearwater: the binding id, expiry and its clamp to
``reg_max_expires``, the stored fields, emergency (``sos``) bindings that a normal REGISTER can
neither shorten nor remove, non-SIP contacts ignored, and the Contact values of the 200 OK.

Temporary GRUUs (RFC 5627 §3.2, §5.1) are ours: Clearwater had none. The design:

* a binding with an instance id gets a random **token** (:func:`new_temp_gruu_token`, 128
  bits, URL-safe) when a REGISTER with ``Supported: gruu`` creates it, changes its Call-ID, or
  first asks for GRUUs for it; the binding keeps it (:class:`~clearwater.stores.records.TempGruu`,
  with the CSeq of that REGISTER as ``first_cseq``) while its Call-ID stays the same;
* the binding's temp-gruus are ``sip:tgruu.<token>.<n>@<home domain>;gr`` for every CSeq ``n``
  from ``first_cseq`` to the binding's current CSeq. The 200 OK (and the reg-event ``<gr:temp-gruu
  first-cseq>``, RFC 5628) gives the one with the current CSeq: since a refresh with the same
  Call-ID must raise the CSeq (RFC 3261 §10.3 step 7), every refresh hands out a new temp-gruu,
  and the earlier ones stay valid (same token, ``n`` still in range) until the Call-ID changes,
  which makes a new token and so invalidates them all (RFC 5627 §3.2);
* the token is indexed to the AoR and binding id in the registration store
  (:class:`~clearwater.stores.typed.TempGruuStore`, written by the registrar) so that the
  S-CSCF can route a temp-gruu (:func:`parse_temp_gruu`, :func:`holds_temp_gruu`) while the URI
  itself reveals nothing of the AoR. It does show the CSeq, and the temp-gruus of one
  registration share their token, so they can be told to belong together (but not to whom).
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Sequence
from typing import Callable, Optional

import attrs

from clearwater.errors import ClearwaterError, ParseError
from clearwater.scscf.reginfo import ContactEvent
from clearwater.sip import ContactValue, NameAddr, Request, SipUri, Star, TelUri, Uri, parse_uri
from clearwater.sip import headers as h
from clearwater.stores.records import AoR, Binding, TempGruu

__all__ = [
    "TEMP_GRUU_PREFIX",
    "BindingChange",
    "RegisterError",
    "RegisterKind",
    "RegisterOutcome",
    "apply_register",
    "binding_id_of",
    "contact_headers",
    "drop_expired",
    "holds_temp_gruu",
    "is_temp_gruu",
    "new_temp_gruu_token",
    "parse_temp_gruu",
    "pub_gruu",
    "remove_bindings",
    "requires_outbound",
    "temp_gruu_uri",
]

#: Contact parameters not stored in a binding: ``expires`` and ``q`` have fields of their own
#: (pjsip keeps them out of the parameter list), the GRUUs are the registrar's to assign
#: (RFC 5627 §5.1; Clearwater drops ``pub-gruu``).
_NOT_STORED = frozenset(("expires", "q", "pub-gruu", "temp-gruu"))

#: How the user part of every temp-gruu this registrar makes begins (RFC 5627 §3.2's example
#: form ``tgruu.<opaque>``).
TEMP_GRUU_PREFIX = "tgruu."
# The rest of it: <token>.<CSeq>, the token as new_temp_gruu_token makes them.
_TEMP_GRUU_REST = re.compile(r"([A-Za-z0-9_-]{16,64})\.([0-9]{1,10})")


class RegisterKind(enum.Enum):
    """What a REGISTER did to the AoR (spec §3.3 step 5)."""

    INITIAL = "initial"
    REREGISTER = "reregister"
    DEREGISTER = "deregister"
    FETCH = "fetch"


class RegisterError(ClearwaterError):
    """A REGISTER the registrar refuses: answer it with ``status`` / ``reason`` and ``headers``
    (e.g. ``("Min-Expires", "60")`` on a 423)."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(str(status) + " " + reason)
        self.status = status
        self.reason = reason
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)


@attrs.frozen
class BindingChange:
    """One binding a REGISTER (or expiry, or a de-registration) changed.

    ``event`` is CREATED, REFRESHED, SHORTENED, UNREGISTERED (the UE removed it), EXPIRED (by
    time) or, from :func:`remove_bindings`, the event the caller chose. ``binding`` is the
    binding after the change; for a removal, the binding as it was.
    """

    binding_id: str
    event: ContactEvent
    binding: Binding


@attrs.frozen
class RegisterOutcome:
    """The result of :func:`apply_register`: the AoR record to store, what changed, and the
    kind of registration."""

    aor: AoR
    changes: tuple[BindingChange, ...]
    kind: RegisterKind


# --------------------------------------------------------------------------- binding ids


def _is_emergency(uri: SipUri) -> bool:
    """An emergency registration's contact carries the ``sos`` URI parameter (TS 24.229
    §5.1.6.2; sprout ``PJUtils::is_emergency_registration``)."""
    return uri.has_param("sos")


def binding_id_of(contact: NameAddr) -> str:
    """The binding id of a Contact (spec §3.3 step 4).

    ``+sip.instance`` without its quotes (angle brackets kept), then ``:<reg-id>`` if the
    contact has a reg-id, prefixed ``sos`` for an emergency contact; a contact without an
    instance id is identified by its URI text.
    """
    instance = contact.param("+sip.instance")
    if instance:
        binding_id = instance
        reg_id = contact.param("reg-id")
        if reg_id is not None:
            binding_id = binding_id + ":" + reg_id
        if isinstance(contact.uri, SipUri) and _is_emergency(contact.uri):
            binding_id = "sos" + binding_id
        return binding_id
    return str(contact.uri)


# --------------------------------------------------------------------------- temporary GRUUs


def new_temp_gruu_token() -> str:
    """A fresh temp-gruu token: 128 random bits, URL-safe base64 (22 characters)."""
    return secrets.token_urlsafe(16)


def temp_gruu_uri(binding: Binding, domain: str) -> Optional[str]:
    """The binding's latest temp-gruu, ``sip:tgruu.<token>.<CSeq>@<domain>;gr`` (RFC 5627
    §3.2), or None when it has no token."""
    if binding.temp_gruu is None:
        return None
    return (
        "sip:" + TEMP_GRUU_PREFIX + binding.temp_gruu.token + "." + str(binding.cseq)
        + "@" + domain + ";gr"
    )  # fmt: skip


def is_temp_gruu(uri: Uri) -> bool:
    """Whether ``uri`` has the form of a temp-gruu of ours, whatever its host: a SIP URI whose
    user starts ``tgruu.`` and which has a ``gr`` parameter without a value."""
    return (
        isinstance(uri, SipUri)
        and uri.user is not None
        and uri.user.startswith(TEMP_GRUU_PREFIX)
        and uri.param("gr") == ""
    )


def parse_temp_gruu(uri: Uri) -> Optional[tuple[str, int]]:
    """``(token, CSeq)`` of a temp-gruu of ours (see :func:`is_temp_gruu`); None when ``uri``
    is not one, or its user part is not ``tgruu.<token>.<CSeq>`` as this registrar writes it."""
    if not is_temp_gruu(uri):
        return None
    assert isinstance(uri, SipUri) and uri.user is not None
    match = _TEMP_GRUU_REST.fullmatch(uri.user, len(TEMP_GRUU_PREFIX))
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def holds_temp_gruu(binding: Binding, token: str, cseq: int) -> bool:
    """Whether ``tgruu.<token>.<cseq>`` is a temp-gruu this binding handed out and that is
    still valid: its token, and a CSeq from the token's first to the binding's current one."""
    temp = binding.temp_gruu
    return temp is not None and temp.token == token and temp.first_cseq <= cseq <= binding.cseq


def _has_instance(params: tuple[tuple[str, str], ...]) -> bool:
    return any(k.lower() == "+sip.instance" and len(v) >= 2 for k, v in params)


# --------------------------------------------------------------------------- applying REGISTER


@attrs.frozen
class _Contact:
    """A Contact of the REGISTER, checked: its binding id, expiry (s) and stored form."""

    binding_id: str
    expiry: int
    emergency: bool
    uri: str
    priority: int
    params: tuple[tuple[str, str], ...]


def _stored_params(contact: NameAddr) -> tuple[tuple[str, str], ...]:
    """Contact parameters as Clearwater stores them: values as written (quotes kept), ``""``
    for a flag; a repeated name keeps its first place and its last value."""
    out: dict[str, str] = {}
    for name, value in contact.params:
        if name.lower() not in _NOT_STORED:
            out[name] = "" if value is None else value
    return tuple(out.items())


def _priority(contact: NameAddr) -> int:
    """``q`` x 1000 (pjsip ``q1000``); 0 when the contact has no q."""
    try:
        q = contact.q
    except ParseError:
        raise RegisterError(400, "Bad Contact q") from None
    return 0 if q is None else round(q * 1000)


def _expiry(
    contact: NameAddr, header: Optional[int], reg_max_expires: int, min_expires: int
) -> int:
    """The contact's expiry (RFC 3261 §10.3 step 7; spec §3.3 step 4)."""
    try:
        requested = contact.expires
    except ParseError:
        raise RegisterError(400, "Bad Contact expires") from None
    if requested is None:
        requested = header if header is not None else reg_max_expires
    if min_expires > 0 and 0 < requested < min_expires:
        raise RegisterError(423, "Interval Too Brief", (("Min-Expires", str(min_expires)),))
    return min(requested, reg_max_expires)


def _path_headers(request: Request) -> tuple[str, ...]:
    """Every Path value, in order, as received (RFC 3327 §5.3)."""
    try:
        request.headers.parsed(h.PATH)
    except ParseError:
        raise RegisterError(400, "Bad Path") from None
    return tuple(request.headers.get_all("Path"))


def _contacts(
    request: Request, reg_max_expires: int, min_expires: int
) -> tuple[list[ContactValue], list[_Contact]]:
    """The request's Contact values, and the SIP ones checked (spec §3.3 steps 1 and 4)."""
    try:
        values = request.headers.parsed(h.CONTACT)
    except ParseError as e:
        raise RegisterError(400, e.reason) from None
    try:
        header = request.headers.first(h.EXPIRES)
    except ParseError:
        raise RegisterError(400, "Bad Expires") from None
    if any(isinstance(v, Star) for v in values):
        # RFC 3261 §10.3 step 6: "*" alone, and only to remove every binding.
        if len(values) != 1:
            raise RegisterError(400, "Contact * must be the only Contact")
        if header != 0:
            raise RegisterError(400, "Contact * needs Expires: 0")
        return list(values), []
    checked: list[_Contact] = []
    for value in values:
        assert isinstance(value, NameAddr)
        expiry = _expiry(value, header, reg_max_expires, min_expires)
        priority = _priority(value)
        if not isinstance(value.uri, SipUri):
            continue  # Clearwater binds sip: and sips: contacts only
        checked.append(
            _Contact(
                binding_id=binding_id_of(value),
                expiry=expiry,
                emergency=_is_emergency(value.uri),
                uri=str(value.uri),
                priority=priority,
                params=_stored_params(value),
            )
        )
    return list(values), checked


def apply_register(
    aor: Optional[AoR],
    request: Request,
    *,
    now: int,
    reg_max_expires: int,
    private_id: str,
    min_expires: int = 0,
    temp_gruus: bool = False,
    new_token: Callable[[], str] = new_temp_gruu_token,
) -> RegisterOutcome:
    """Apply a REGISTER to the AoR's record (RFC 3261 §10.3 steps 5-7; spec §3.3, §3.4).

    ``aor`` is the stored record (None when there is none); ``now`` is epoch seconds;
    ``private_id`` is stored in every binding the request writes. Bindings that expired by
    ``now`` are dropped first (EXPIRED changes). Raises :class:`RegisterError` for a request
    the registrar refuses; the stored record must then be left as it was.

    ``temp_gruus``: the request asked for GRUUs (``Supported: gruu``) and the registrar can
    index temporary ones: a binding with an instance id that has no temp-gruu token for its
    Call-ID gets one from ``new_token`` (see the module notes). A binding keeps its token while
    its Call-ID stays the same, whatever ``temp_gruus`` says.
    """
    to_uri = request.to.uri
    if not isinstance(to_uri, (SipUri, TelUri)):
        raise RegisterError(404, "Not Found")
    values, contacts = _contacts(request, reg_max_expires, min_expires)
    if (
        contacts
        and len(contacts) == len(values)
        and all(c.emergency and c.expiry == 0 for c in contacts)
    ):
        # Spec §3.3 step 1: a REGISTER that only de-registers emergency bindings.
        raise RegisterError(501, "Not Implemented")
    path_headers = _path_headers(request)
    call_id = request.call_id
    cseq = request.cseq.seq

    current, changes_list = drop_expired(AoR() if aor is None else aor, now)
    changes = list(changes_list)
    before = dict(current.bindings)
    bindings = dict(before)
    if values and isinstance(values[0], Star):
        for binding_id, binding in before.items():
            if not binding.emergency_reg:
                del bindings[binding_id]
                changes.append(BindingChange(binding_id, ContactEvent.UNREGISTERED, binding))

    seen: set[str] = set()
    for contact in contacts:
        if contact.binding_id in seen:
            continue  # a repeated binding in one request: the first one counts (as Clearwater)
        seen.add(contact.binding_id)
        old = before.get(contact.binding_id)
        if old is not None and old.cid == call_id and cseq <= old.cseq:
            raise RegisterError(500, "Out of order REGISTER")  # RFC 3261 §10.3 step 7
        protected = contact.emergency or (old is not None and old.emergency_reg)
        expires = now + contact.expiry
        if old is not None and protected and old.expires >= expires:
            expires = old.expires  # emergency bindings are never shortened (spec §3.3 step 4)
        if contact.expiry == 0 and expires <= now:
            if old is not None:
                del bindings[contact.binding_id]
                changes.append(BindingChange(contact.binding_id, ContactEvent.UNREGISTERED, old))
            continue
        temp_gruu = old.temp_gruu if old is not None and old.cid == call_id else None
        if temp_gruu is None and temp_gruus and _has_instance(contact.params):
            temp_gruu = TempGruu(new_token(), cseq)
        new = Binding(
            uri=contact.uri,
            cid=call_id,
            cseq=cseq,
            expires=expires,
            priority=contact.priority,
            params=contact.params,
            path_headers=path_headers,
            private_id=private_id,
            emergency_reg=contact.emergency,
            extra=() if old is None else old.extra,
            temp_gruu=temp_gruu,
        )
        bindings[contact.binding_id] = new
        if old is None:
            event = ContactEvent.CREATED
        elif expires >= old.expires:
            event = ContactEvent.REFRESHED
        else:
            event = ContactEvent.SHORTENED
        changes.append(BindingChange(contact.binding_id, event, new))

    if not values:
        kind = RegisterKind.FETCH
    elif not bindings:
        kind = RegisterKind.DEREGISTER
    elif not before:
        kind = RegisterKind.INITIAL
    else:
        kind = RegisterKind.REREGISTER
    new_aor = attrs.evolve(current, bindings=tuple(bindings.items()))
    return RegisterOutcome(new_aor, tuple(changes), kind)


def drop_expired(aor: AoR, now: int) -> tuple[AoR, tuple[BindingChange, ...]]:
    """The AoR without the bindings that expired by ``now`` (``expires <= now``), and an
    EXPIRED change for each (spec §3.5 timer pop). Subscriptions are left alone."""
    kept = tuple((k, b) for k, b in aor.bindings if b.expires > now)
    if len(kept) == len(aor.bindings):
        return aor, ()
    changes = tuple(
        BindingChange(k, ContactEvent.EXPIRED, b) for k, b in aor.bindings if b.expires <= now
    )
    return attrs.evolve(aor, bindings=kept), changes


def remove_bindings(
    aor: AoR,
    *,
    private_id: Optional[str] = None,
    event: ContactEvent = ContactEvent.DEACTIVATED,
) -> tuple[AoR, tuple[BindingChange, ...]]:
    """Network or administrative de-registration (spec §3.11): remove every binding, or only
    those registered with ``private_id``, each reported with ``event``."""
    kept: list[tuple[str, Binding]] = []
    changes: list[BindingChange] = []
    for binding_id, binding in aor.bindings:
        if private_id is None or binding.private_id == private_id:
            changes.append(BindingChange(binding_id, event, binding))
        else:
            kept.append((binding_id, binding))
    return attrs.evolve(aor, bindings=tuple(kept)), tuple(changes)


# --------------------------------------------------------------------------- the 200 OK


def _format_q(priority: int) -> str:
    """q from priority (q x 1000) without trailing zeros: 1000 -> ``1``, 500 -> ``0.5``,
    50 -> ``0.05``."""
    whole, frac = divmod(priority, 1000)
    if frac == 0:
        return str(whole)
    return str(whole) + "." + f"{frac:03d}".rstrip("0")


# RFC 3261 §25.1 paramchar: unreserved / param-unreserved; anything else is %-escaped.
_PARAMCHAR = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$"
)


def _escape_param(text: str) -> str:
    return "".join(c if c in _PARAMCHAR else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _instance_urn(raw: str) -> str:
    """The instance id inside ``"<...>"`` (Clearwater strips the quotes, then the brackets)."""
    if raw.startswith('"') and len(raw) >= 2:
        raw = raw[1:-1]
    if raw.startswith("<") and len(raw) >= 2:
        raw = raw[1:-1]
    return raw


def pub_gruu(aor_uri: str, binding: Binding) -> Optional[str]:
    """The binding's public GRUU: the AoR with ``gr=<instance id>`` (RFC 5627 §3.1), for a
    SIP AoR and a binding with an instance id; None otherwise."""
    instance = next((v for k, v in binding.params if k.lower() == "+sip.instance"), None)
    if instance is None or len(instance) < 2:
        return None
    try:
        uri = parse_uri(aor_uri)
    except ParseError:
        return None
    if not isinstance(uri, SipUri):
        return None
    gruu = uri.replace(params=(*uri.params, ("gr", _escape_param(_instance_urn(instance)))))
    return str(gruu)


def contact_headers(
    aor: AoR, *, aor_uri: str, now: int, gruu: bool, temp_gruu_domain: Optional[str] = None
) -> list[str]:
    """The 200 OK's Contact values, one per live binding (spec §3.3 step 6).

    ``<uri>;expires=<remaining>;q=<q>`` then the stored parameters, then, when ``gruu`` (the
    REGISTER had ``Supported: gruu``), ``pub-gruu="<AoR>;gr=<instance id>"`` if the binding has
    an instance id and ``temp-gruu="<latest temp-gruu>"`` (RFC 5627 §5.1; its host
    ``temp_gruu_domain``) if it has a temp-gruu token. As in Clearwater (pjsip), q is left out
    when the binding's priority is 0 (the contact had no q).
    """
    out: list[str] = []
    for _, binding in aor.bindings:
        if binding.expires <= now:
            continue
        value = "<" + binding.uri + ">;expires=" + str(binding.expires - now)
        if binding.priority:
            value += ";q=" + _format_q(binding.priority)
        for name, param in binding.params:
            if name.lower() in _NOT_STORED:
                continue
            value += ";" + name if param == "" else ";" + name + "=" + param
        if gruu:
            public = pub_gruu(aor_uri, binding)
            if public is not None:
                value += ';pub-gruu="' + public + '"'
            if temp_gruu_domain is not None:
                temp_gruu = temp_gruu_uri(binding, temp_gruu_domain)
                if temp_gruu is not None:
                    value += ';temp-gruu="' + temp_gruu + '"'
        out.append(value)
    return out


def requires_outbound(request: Request, aor: AoR) -> bool:
    """Whether the 200 OK carries ``Require: outbound`` (RFC 5626 §6; spec §3.3 step 6): the
    AoR has bindings, the first Path URI has ``ob``, some Contact has both ``+sip.instance``
    and ``reg-id``, and the UE sent ``Supported: outbound``."""
    if not aor.bindings:
        return False
    try:
        supported = request.headers.parsed(h.SUPPORTED)
        path = request.headers.first(h.PATH)
        contacts = request.headers.parsed(h.CONTACT)
    except ParseError:
        return False
    if not any(tag.lower() == "outbound" for tag in supported):
        return False
    if path is None or not isinstance(path.uri, SipUri) or not path.uri.has_param("ob"):
        return False
    return any(
        isinstance(c, NameAddr)
        and c.param("+sip.instance") is not None
        and c.param("reg-id") is not None
        for c in contacts
    )
