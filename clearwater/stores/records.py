"""The records the stores keep, with Clearwater's JSON layouts (spec §3.2, §3.4, §6.6).

Registration and challenge records are written as the JSON Clearwater's sprout wrote to
memcached (``reg\\\\<impu>``: clearwater-s4 ``aor.cpp``; ``impi\\\\<impi>``: sprout
``impistore.cpp``), so a record read from a store Clearwater used parses, and one we write
reads back there. Unknown JSON members are kept (``extra``) and written back unchanged. Two
members are ours, written only when in use (so a record without them is Clearwater's, and an
older one without them still loads): a binding's ``temp_gruu`` (RFC 5627 temporary GRUUs) and
a subscription's ``reginfo_version`` (RFC 3680 partial state).

Subscriber records model homestead-prov's provisioning data (spec §6.6, §1.4
``homestead_provisioning``): private identities with their credentials, implicit
registration sets (IRS) tying private identities to service profiles, each service profile
holding public identities and initial filter criteria (iFC XML), and the registration state
of each IRS.

All records are immutable attrs classes; ``to_json`` gives a JSON-ready dict and
``from_json`` raises :class:`~clearwater.errors.ParseError` on a malformed one.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, Optional

import attrs

from clearwater.errors import ParseError

__all__ = [
    "AkaCredentials",
    "AoR",
    "AssociatedUri",
    "Binding",
    "Challenge",
    "PrivateIdentity",
    "PublicIdentity",
    "RegState",
    "RegistrationState",
    "ServiceProfile",
    "Subscription",
    "TempGruu",
    "challenges_from_json",
    "challenges_to_json",
    "dumps",
    "loads",
]

JsonObject = dict[str, Any]


def dumps(value: JsonObject) -> bytes:
    """Compact JSON bytes, as Clearwater's stores held them."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


def loads(data: bytes, what: str) -> JsonObject:
    """A JSON object from bytes; ParseError naming ``what`` otherwise."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ParseError("Bad " + what + " JSON: " + str(e)) from None
    if not isinstance(value, dict):
        raise ParseError("Bad " + what + " JSON: not an object")
    return value


def _get(obj: Mapping[str, Any], key: str, kind: type, what: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None and default is None:
        return None
    if kind is int and isinstance(value, bool):
        raise ParseError("Bad " + what + ": " + key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind):
        raise ParseError("Bad " + what + ": " + key)
    return value


def _extra(obj: Mapping[str, Any], known: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, v) for k, v in obj.items() if k not in known)


# --------------------------------------------------------------------------- registrations


_BINDING_KEYS = ("uri", "cid", "cseq", "expires", "priority", "params", "path_headers",
                 "private_id", "emergency_reg", "temp_gruu")  # fmt: skip


@attrs.frozen
class TempGruu:
    """A binding's temporary GRUUs (RFC 5627 §3.2; :mod:`clearwater.scscf.bindings`): the
    random ``token`` they are built on and the CSeq of the REGISTER that created it.

    Not in Clearwater's records (it had no temp-gruu): a binding holding one is written with a
    ``"temp_gruu": {"token": ..., "first_cseq": ...}`` member, which Clearwater would keep as
    an unknown one; a binding without one is written exactly as Clearwater wrote it.
    """

    token: str
    first_cseq: int

    def to_json(self) -> JsonObject:
        return {"token": self.token, "first_cseq": self.first_cseq}

    @classmethod
    def from_json(cls, obj: Any) -> TempGruu:
        what = "binding temp_gruu"
        if not isinstance(obj, dict):
            raise ParseError("Bad " + what)
        token = _get(obj, "token", str, what, "")
        if not token:
            raise ParseError("Bad " + what + ": token")
        return cls(token=token, first_cseq=_get(obj, "first_cseq", int, what, 0))


@attrs.frozen
class Binding:
    """One registered contact of an AoR (spec §3.4 ``bindings``). ``temp_gruu`` is ours
    (:class:`TempGruu`), None for a binding without temporary GRUUs."""

    uri: str
    cid: str
    cseq: int
    expires: int  # epoch seconds
    priority: int = 0  # q * 1000
    params: tuple[tuple[str, str], ...] = ()  # contact parameters, e.g. +sip.instance, reg-id
    path_headers: tuple[str, ...] = ()
    private_id: str = ""
    emergency_reg: bool = False
    extra: tuple[tuple[str, Any], ...] = ()
    temp_gruu: Optional[TempGruu] = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "uri": self.uri,
            "cid": self.cid,
            "cseq": self.cseq,
            "expires": self.expires,
            "priority": self.priority,
            "params": dict(self.params),
            "path_headers": list(self.path_headers),
            "private_id": self.private_id,
            "emergency_reg": self.emergency_reg,
        }
        if self.temp_gruu is not None:
            out["temp_gruu"] = self.temp_gruu.to_json()
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Binding:
        what = "binding"
        if not isinstance(obj, dict):
            raise ParseError("Bad binding")
        params = _get(obj, "params", dict, what, {})
        paths = _get(obj, "path_headers", list, what, [])
        if not all(isinstance(v, str) for v in params.values()) or not all(
            isinstance(p, str) for p in paths
        ):
            raise ParseError("Bad binding: params or path_headers")
        temp_gruu = obj.get("temp_gruu")
        return cls(
            uri=_get(obj, "uri", str, what, ""),
            cid=_get(obj, "cid", str, what, ""),
            cseq=_get(obj, "cseq", int, what, 0),
            expires=_get(obj, "expires", int, what, 0),
            priority=_get(obj, "priority", int, what, 0),
            params=tuple(params.items()),
            path_headers=tuple(paths),
            private_id=_get(obj, "private_id", str, what, ""),
            emergency_reg=_get(obj, "emergency_reg", bool, what, False),
            extra=_extra(obj, _BINDING_KEYS),
            temp_gruu=None if temp_gruu is None else TempGruu.from_json(temp_gruu),
        )


_SUBSCRIPTION_KEYS = ("req_uri", "from_uri", "from_tag", "to_uri", "to_tag", "cid", "routes",
                      "expires", "reginfo_version")  # fmt: skip


@attrs.frozen
class Subscription:
    """One reg-event subscription to an AoR (spec §3.4 ``subscriptions``, RFC 3680).

    ``version`` is ours (Clearwater sent full state only, versioned by the AoR's
    ``notify_cseq``): the ``version`` of the last reginfo document sent to this subscription
    when partial state is on (RFC 3680 §5.2), as JSON member ``reginfo_version``; None, and
    no member, otherwise.
    """

    req_uri: str
    from_uri: str
    from_tag: str
    to_uri: str
    to_tag: str
    cid: str
    routes: tuple[str, ...] = ()
    expires: int = 0  # epoch seconds
    extra: tuple[tuple[str, Any], ...] = ()
    version: Optional[int] = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "req_uri": self.req_uri,
            "from_uri": self.from_uri,
            "from_tag": self.from_tag,
            "to_uri": self.to_uri,
            "to_tag": self.to_tag,
            "cid": self.cid,
            "routes": list(self.routes),
            "expires": self.expires,
        }
        if self.version is not None:
            out["reginfo_version"] = self.version
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Subscription:
        what = "subscription"
        if not isinstance(obj, dict):
            raise ParseError("Bad subscription")
        routes = _get(obj, "routes", list, what, [])
        if not all(isinstance(r, str) for r in routes):
            raise ParseError("Bad subscription: routes")
        return cls(
            req_uri=_get(obj, "req_uri", str, what, ""),
            from_uri=_get(obj, "from_uri", str, what, ""),
            from_tag=_get(obj, "from_tag", str, what, ""),
            to_uri=_get(obj, "to_uri", str, what, ""),
            to_tag=_get(obj, "to_tag", str, what, ""),
            cid=_get(obj, "cid", str, what, ""),
            routes=tuple(routes),
            expires=_get(obj, "expires", int, what, 0),
            extra=_extra(obj, _SUBSCRIPTION_KEYS),
            version=_get(obj, "reginfo_version", int, what),
        )


@attrs.frozen
class AssociatedUri:
    """One public identity of the AoR's implicit registration set (P-Associated-URI)."""

    uri: str
    barring: bool = False


_AOR_KEYS = ("bindings", "subscriptions", "associated-uris", "notify_cseq", "timer_id",
             "scscf-uri")  # fmt: skip


@attrs.frozen
class AoR:
    """An address-of-record's registration state (spec §3.4), keyed by its default IMPU.

    ``bindings`` and ``subscriptions`` map their ids (binding id; the subscription's To tag)
    to the record. ``wildcard_mapping`` is ``(distinct, wildcard)`` or None.
    """

    bindings: tuple[tuple[str, Binding], ...] = ()
    subscriptions: tuple[tuple[str, Subscription], ...] = ()
    associated_uris: tuple[AssociatedUri, ...] = ()
    wildcard_mapping: Optional[tuple[str, str]] = None
    notify_cseq: int = 1
    timer_id: str = ""
    scscf_uri: str = ""
    extra: tuple[tuple[str, Any], ...] = ()

    def expiry(self) -> Optional[int]:
        """The latest binding or subscription expiry (epoch s), None when there is neither."""
        times = [b.expires for _, b in self.bindings] + [s.expires for _, s in self.subscriptions]
        return max(times) if times else None

    def without_expired(self, now: float) -> AoR:
        """A copy without the bindings and subscriptions that expired by ``now``."""
        return attrs.evolve(
            self,
            bindings=tuple((k, b) for k, b in self.bindings if b.expires > now),
            subscriptions=tuple((k, s) for k, s in self.subscriptions if s.expires > now),
        )

    def to_json(self) -> JsonObject:
        uris: JsonObject = {
            "uris": [{"uri": u.uri, "barring": u.barring} for u in self.associated_uris]
        }
        if self.wildcard_mapping is not None:
            distinct, wildcard = self.wildcard_mapping
            uris["wildcard-mapping"] = {"distinct": distinct, "wildcard": wildcard}
        out: JsonObject = {
            "bindings": {k: b.to_json() for k, b in self.bindings},
            "subscriptions": {k: s.to_json() for k, s in self.subscriptions},
            "associated-uris": uris,
            "notify_cseq": self.notify_cseq,
            "timer_id": self.timer_id,
            "scscf-uri": self.scscf_uri,
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> AoR:
        what = "AoR"
        if not isinstance(obj, dict):
            raise ParseError("Bad AoR")
        bindings = _get(obj, "bindings", dict, what, {})
        subscriptions = _get(obj, "subscriptions", dict, what, {})
        uris = _get(obj, "associated-uris", dict, what, {})
        uri_list = _get(uris, "uris", list, what, [])
        associated = []
        for item in uri_list:
            if not isinstance(item, dict):
                raise ParseError("Bad AoR: associated-uris")
            associated.append(
                AssociatedUri(
                    _get(item, "uri", str, what, ""), _get(item, "barring", bool, what, False)
                )
            )
        mapping = _get(uris, "wildcard-mapping", dict, what, {})
        wildcard = None
        if mapping:
            wildcard = (
                _get(mapping, "distinct", str, what, ""),
                _get(mapping, "wildcard", str, what, ""),
            )
        return cls(
            bindings=tuple((k, Binding.from_json(v)) for k, v in bindings.items()),
            subscriptions=tuple((k, Subscription.from_json(v)) for k, v in subscriptions.items()),
            associated_uris=tuple(associated),
            wildcard_mapping=wildcard,
            notify_cseq=_get(obj, "notify_cseq", int, what, 1),
            timer_id=_get(obj, "timer_id", str, what, ""),
            scscf_uri=_get(obj, "scscf-uri", str, what, ""),
            extra=_extra(obj, _AOR_KEYS),
        )


# --------------------------------------------------------------------------- challenges

_CHALLENGE_KEYS = ("type", "nonce", "nc", "expires", "correlator", "scscf-uri", "timer_id",
                   "realm", "qop", "ha1", "response")  # fmt: skip


@attrs.frozen
class Challenge:
    """One outstanding authentication challenge of an IMPI (spec §3.2 IMPI store).

    ``type`` is ``"digest"`` (with ``realm``, ``qop``, ``ha1``) or ``"aka"`` (with
    ``response``: the expected XRES, or the AKAv2 password).
    """

    type: str
    nonce: str
    expires: int  # epoch seconds
    nc: int = 1
    correlator: str = ""
    scscf_uri: str = ""
    timer_id: str = ""
    realm: str = ""
    qop: str = ""
    ha1: str = ""
    response: str = ""
    extra: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "type": self.type,
            "nonce": self.nonce,
            "nc": self.nc,
            "expires": self.expires,
            "correlator": self.correlator,
            "scscf-uri": self.scscf_uri,
            "timer_id": self.timer_id,
        }
        if self.type == "aka":
            out["response"] = self.response
        else:
            out.update(realm=self.realm, qop=self.qop, ha1=self.ha1)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Challenge:
        what = "challenge"
        if not isinstance(obj, dict):
            raise ParseError("Bad challenge")
        kind = _get(obj, "type", str, what, "")
        if kind not in ("digest", "aka"):
            raise ParseError("Bad challenge: type")
        return cls(
            type=kind,
            nonce=_get(obj, "nonce", str, what, ""),
            expires=_get(obj, "expires", int, what, 0),
            nc=_get(obj, "nc", int, what, 1),
            correlator=_get(obj, "correlator", str, what, ""),
            scscf_uri=_get(obj, "scscf-uri", str, what, ""),
            timer_id=_get(obj, "timer_id", str, what, ""),
            realm=_get(obj, "realm", str, what, ""),
            qop=_get(obj, "qop", str, what, ""),
            ha1=_get(obj, "ha1", str, what, ""),
            response=_get(obj, "response", str, what, ""),
            extra=_extra(obj, _CHALLENGE_KEYS),
        )


def challenges_to_json(challenges: tuple[Challenge, ...]) -> JsonObject:
    """The IMPI record: ``{"authChallenges": [...]}``."""
    return {"authChallenges": [c.to_json() for c in challenges]}


def challenges_from_json(obj: JsonObject) -> tuple[Challenge, ...]:
    items = obj.get("authChallenges", [])
    if not isinstance(items, list):
        raise ParseError("Bad IMPI record: authChallenges")
    return tuple(Challenge.from_json(item) for item in items)


# --------------------------------------------------------------------------- subscribers


@attrs.frozen
class AkaCredentials:
    """What an HSS keeps to make AKA vectors (TS 33.102 §6.3): K, OPc, AMF and the SQN of
    the last vector issued (48 bits)."""

    k: bytes
    opc: bytes
    amf: bytes = b"\x80\x00"
    sqn: int = 0


@attrs.frozen
class PrivateIdentity:
    """An IMPI and its credentials (homestead-prov ``/private/<impi>``).

    Exactly what was provisioned: ``digest_ha1`` (always set for digest users: from the
    password when ``plaintext_password`` is given), ``plaintext_password`` (None unless
    provisioned so), ``aka`` (None for digest-only users), ``realm``.
    """

    impi: str
    realm: str
    digest_ha1: str = ""
    plaintext_password: Optional[str] = None
    aka: Optional[AkaCredentials] = None


@attrs.frozen
class ServiceProfile:
    """A service profile of an IRS: its initial filter criteria, as the XML of
    ``<InitialFilterCriteria>`` elements (TS 29.228 Annex B; may be empty)."""

    irs: str
    sp: str
    ifcs_xml: str = ""


@attrs.frozen
class PublicIdentity:
    """An IMPU in a service profile (homestead-prov ``.../public_ids/<impu>``).

    ``xml`` is its ``<PublicIdentity>`` element as provisioned (TS 29.228 Annex B:
    ``<Identity>``, optional ``<BarringIndication>``, ``<IdentityType>``,
    ``<WildcardedIMPU>``); ``barred`` and ``wildcard`` are read from it for lookups.
    """

    impu: str
    irs: str
    sp: str
    xml: str
    barred: bool = False
    wildcard: Optional[str] = None  # the wildcard pattern this identity stands for, if any


class RegState(enum.Enum):
    """Registration state of an IRS, as homestead reports it (spec §6.1 reg-data)."""

    REGISTERED = "REGISTERED"
    UNREGISTERED = "UNREGISTERED"
    NOT_REGISTERED = "NOT_REGISTERED"


@attrs.frozen
class RegistrationState:
    """An IRS's registration state, the S-CSCF it is assigned to, and the private identity
    it last registered with (homestead's cache; what ``reg-data`` reqtypes change)."""

    state: RegState = RegState.NOT_REGISTERED
    scscf: str = ""
    impi: str = ""
    updated: float = 0.0  # epoch seconds of the last change (for hss_reregistration_time)
