# -*- test-case-name: tests.unit.homestead.test_hssless -*-
"""Homestead in HSS-less mode: what each homestead path answers, from an ISubscriberStore.

Clearwater spec §6.1 (paths and answers), §3.2 (authentication vector JSON), §1.4 (the
subscriber data homestead-prov provisions). Without an HSS, Clearwater's homestead answered
from its own cache of provisioned subscribers and never spoke Diameter; this module does the
same over :class:`~clearwater.stores.interfaces.ISubscriberStore`, with no HTTP in it
(:mod:`clearwater.http.homestead` serves it, :mod:`clearwater.http.homestead_client` is the
client sprout uses; both share the answer types defined here).

What each operation answers (:class:`HsslessHomestead`):

* ``get_av``: a digest vector ``{"digest": {"ha1", "realm", "qop": "auth"}}`` (plus
  ``"ha1_sha256"``, the RFC 8760 SHA-256 HA1, when the password itself was provisioned: an
  extension Clearwater's sprout ignores) or an AKA
  vector ``{"aka": {...}}`` (:mod:`clearwater.aka`, TS 33.102 §6.3) for AKAv1 (``aka``) or
  AKAv2 (``aka2``). A bare ``av`` picks digest when the IMPI has a digest HA1, else AKAv1.
  Each AKA vector takes the next SQN (TS 33.102 Annex C.1), claimed with
  ``advance_sqn``'s compare-and-set and retried on a race; ``resync-auth`` (base64 of
  RAND ‖ AUTS, spec §3.2) makes the AuC continue from the handset's SQN_MS (TS 33.102
  §6.3.5) after checking MAC-S.
* ``get_digest``: the HA1 (404 for an IMPI without digest credentials).
* ``registration_status`` (UAR) and ``location`` (LIR): result code 2001 with the configured
  S-CSCF, as Clearwater's homestead without an HSS (spec §6.1). Unknown identities, or an IMPI
  and IMPU that are not in one implicit registration set, give 404 (TS 29.228
  DIAMETER_ERROR_USER_UNKNOWN / IDENTITIES_DONT_MATCH); a barred IMPU asking for registration
  (not de-registration, not emergency) gives 403 (DIAMETER_AUTHORIZATION_REJECTED).
* ``get_reg_data`` / ``put_reg_data``: the ``<ClearwaterRegData>`` document with the IRS's
  registration state and its IMS subscription (TS 29.228 Annex B); ``put_reg_data`` first
  applies the reqtype's state change (spec §6.1 table, HSS-less column):

  ============================================ ============================================
  reqtype                                      state change
  ============================================ ============================================
  ``reg``                                      → REGISTERED (records S-CSCF and IMPI)
  ``call``                                     NOT_REGISTERED → UNREGISTERED, else none
  ``dereg-user|timeout|admin``                 REGISTERED → UNREGISTERED; otherwise 400
  ``dereg-auth-failed|dereg-auth-timeout``     none
  ============================================ ============================================

  ``<PreviousRegistrationState>`` is included for ``reg`` and ``call``.

Public identities are found exactly first, then among the wildcarded ones: a wildcard is
Clearwater's ``<prefix>!<regex>!<suffix>`` (TS 23.003 §13.5 delimits the regular expression
with ``!``); URI parameters are ignored, the prefix and suffix match literally and the
regular expression must match all of what is between them. A match through a wildcard is
reported as ``wildcard-identity``.

XML is built with :mod:`xml.etree.ElementTree` (so user data is always escaped) and provisioned
fragments are parsed with a size limit and no DOCTYPE (so no entity can be declared or
expanded). Failures are :class:`HomesteadError` with the HTTP status homestead answers; store
failures (:class:`~clearwater.stores.interfaces.StoreUnavailableError` and friends) pass
through for the HTTP layer to map.
"""

from __future__ import annotations

import enum
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import attrs
from twisted.internet.defer import Deferred

from clearwater._xml import MAX_XML_CHARS, parse_xml
from clearwater.aka import (
    AuthVector,
    ResyncError,
    generate,
    next_sqn,
    parse_auts,
    split_resync_auth,
)
from clearwater.errors import ClearwaterError, ParseError
from clearwater.sip.auth import digest_ha1
from clearwater.stores.interfaces import ISubscriberStore
from clearwater.stores.records import (
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
)

__all__ = [
    "AUTH_TYPES",
    "DIAMETER_SUCCESS",
    "MAX_XML_CHARS",
    "AkaAv",
    "AvScheme",
    "ChargingAddresses",
    "DigestAv",
    "HomesteadError",
    "HsslessHomestead",
    "RegData",
    "ReqType",
    "ServerAssignment",
    "SubscriptionIdentity",
    "SubscriptionProfile",
    "parse_av",
    "parse_xml",
    "wildcard_matches",
]

#: DIAMETER_SUCCESS (RFC 6733 §7.1.2): the result code of every HSS-less UAR/LIR answer.
DIAMETER_SUCCESS = 2001

#: The ``auth-type`` values of ``registration-status`` and ``location`` (TS 29.228
#: User-Authorization-Type REGISTRATION, DE_REGISTRATION, REGISTRATION_AND_CAPABILITIES).
AUTH_TYPES = ("REG", "DEREG", "CAPAB")

#: The largest XML document or fragment parsed (characters).

_AKA_VERSIONS = {"aka": 1, "aka2": 2}
_SQN_ATTEMPTS = 10
_RAND_LEN = 16

JsonObject = dict[str, Any]


class HomesteadError(ClearwaterError):
    """A homestead request failed: ``status`` is the HTTP status homestead answers with (or,
    in the client, the one sprout acts on: 504 when no homestead answered), ``message`` says
    why. ``http_status`` is the raw status of the last HTTP answer the client got (None if
    none, and on the server side)."""

    def __init__(self, status: int, message: str, http_status: Optional[int] = None) -> None:
        super().__init__(str(status) + " " + message)
        self.status = status
        self.message = message
        self.http_status = http_status


class AvScheme(enum.Enum):
    """The scheme of ``GET /impi/<impi>/av/<scheme>`` (spec §6.1)."""

    DIGEST = "digest"
    AKA = "aka"
    AKA2 = "aka2"


class ReqType(enum.Enum):
    """The ``reqtype`` of ``PUT /impu/<impu>/reg-data`` (spec §6.1)."""

    REG = "reg"
    CALL = "call"
    DEREG_USER = "dereg-user"
    DEREG_TIMEOUT = "dereg-timeout"
    DEREG_ADMIN = "dereg-admin"
    DEREG_AUTH_FAILED = "dereg-auth-failed"
    DEREG_AUTH_TIMEOUT = "dereg-auth-timeout"

    @property
    def is_dereg(self) -> bool:
        return self in (ReqType.DEREG_USER, ReqType.DEREG_TIMEOUT, ReqType.DEREG_ADMIN)


# --------------------------------------------------------------------------- answers


def _str_member(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ParseError("Bad " + what + ": " + key)
    return value


@attrs.frozen
class DigestAv:
    """A SIP digest authentication vector (spec §3.2): HA1 (32 hex), realm and qop.

    ``ha1_sha256`` is our extension for RFC 8760 (SHA-256 digest): ``H(username:realm:password)``
    with SHA-256 (64 hex), known only for an IMPI provisioned with its plaintext password; empty
    otherwise. It travels as the JSON key ``ha1_sha256``, left out when empty, which
    Clearwater's sprout ignores.
    """

    ha1: str
    realm: str
    qop: str = "auth"
    ha1_sha256: str = ""

    def to_json(self) -> JsonObject:
        # Clearwater replaces an empty qop by "auth".
        digest: JsonObject = {"ha1": self.ha1, "realm": self.realm, "qop": self.qop or "auth"}
        if self.ha1_sha256:
            digest["ha1_sha256"] = self.ha1_sha256
        return {"digest": digest}

    @classmethod
    def from_json(cls, obj: Any) -> DigestAv:
        if not isinstance(obj, dict):
            raise ParseError("Bad digest vector")
        qop = obj.get("qop", "auth")
        if not isinstance(qop, str):
            raise ParseError("Bad digest vector: qop")
        ha1_sha256 = obj.get("ha1_sha256", "")
        if not isinstance(ha1_sha256, str):
            raise ParseError("Bad digest vector: ha1_sha256")
        return cls(
            ha1=_str_member(obj, "ha1", "digest vector"),
            realm=_str_member(obj, "realm", "digest vector"),
            qop=qop or "auth",
            ha1_sha256=ha1_sha256,
        )


@attrs.frozen
class AkaAv:
    """An AKA authentication vector as homestead sends it (spec §3.2): ``challenge`` is
    base64(RAND ‖ AUTN), ``response`` hex XRES, ``cryptkey``/``integritykey`` hex CK/IK,
    ``version`` 1 (AKAv1-MD5) or 2 (AKAv2-MD5)."""

    challenge: str
    response: str = attrs.field(repr=False)
    cryptkey: str = attrs.field(repr=False)
    integritykey: str = attrs.field(repr=False)
    version: int = 1

    @classmethod
    def from_vector(cls, vector: AuthVector, version: int) -> AkaAv:
        return cls.from_json(vector.to_json(version)["aka"])

    def to_json(self) -> JsonObject:
        return {
            "aka": {
                "challenge": self.challenge,
                "response": self.response,
                "cryptkey": self.cryptkey,
                "integritykey": self.integritykey,
                "version": self.version,
            }
        }

    @classmethod
    def from_json(cls, obj: Any) -> AkaAv:
        if not isinstance(obj, dict):
            raise ParseError("Bad AKA vector")
        version = obj.get("version", 1)
        if isinstance(version, bool) or version not in (1, 2):
            raise ParseError("Bad AKA vector: version")
        what = "AKA vector"
        return cls(
            challenge=_str_member(obj, "challenge", what),
            response=_str_member(obj, "response", what),
            cryptkey=_str_member(obj, "cryptkey", what),
            integritykey=_str_member(obj, "integritykey", what),
            version=version,
        )


def parse_av(obj: Any) -> Union[DigestAv, AkaAv]:
    """The vector in an ``/av`` answer body (a parsed JSON object); ParseError otherwise."""
    if isinstance(obj, dict) and "digest" in obj:
        return DigestAv.from_json(obj["digest"])
    if isinstance(obj, dict) and "aka" in obj:
        return AkaAv.from_json(obj["aka"])
    raise ParseError("Bad vector: neither digest nor aka")


def _int_list(obj: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ParseError("Bad server assignment: " + key)
    return tuple(value)


@attrs.frozen
class ServerAssignment:
    """A ``registration-status`` (UAA) or ``location`` (LIA) answer (spec §6.1): the result
    code and the S-CSCF, or the capabilities to choose one by; ``wildcard_identity`` when an
    LIR matched a wildcarded public identity."""

    result_code: int
    scscf: Optional[str] = None
    mandatory_capabilities: tuple[int, ...] = ()
    optional_capabilities: tuple[int, ...] = ()
    wildcard_identity: Optional[str] = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"result-code": self.result_code}
        if self.scscf is not None:
            out["scscf"] = self.scscf
        else:
            out["mandatory-capabilities"] = list(self.mandatory_capabilities)
            out["optional-capabilities"] = list(self.optional_capabilities)
        if self.wildcard_identity is not None:
            out["wildcard-identity"] = self.wildcard_identity
        return out

    @classmethod
    def from_json(cls, obj: Any) -> ServerAssignment:
        if not isinstance(obj, dict):
            raise ParseError("Bad server assignment")
        code = obj.get("result-code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ParseError("Bad server assignment: result-code")
        scscf = obj.get("scscf")
        wildcard = obj.get("wildcard-identity")
        if scscf is not None and not isinstance(scscf, str):
            raise ParseError("Bad server assignment: scscf")
        if wildcard is not None and not isinstance(wildcard, str):
            raise ParseError("Bad server assignment: wildcard-identity")
        return cls(
            result_code=code,
            scscf=scscf,
            mandatory_capabilities=_int_list(obj, "mandatory-capabilities"),
            optional_capabilities=_int_list(obj, "optional-capabilities"),
            wildcard_identity=wildcard,
        )


# --------------------------------------------------------------------------- XML

# XML 1.0 §2.2 Char: what a document may contain at all.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def _parse_fragment(text: str, what: str) -> list[ET.Element]:
    """The elements of an XML fragment (any number of top-level elements, an optional XML
    declaration first); text outside elements must be white space."""
    body = _XML_DECLARATION.sub("", text, count=1)
    if "<!doctype" in body.lower():  # wrapped below, it would only read as "not well-formed"
        raise ParseError("Bad " + what + " XML: DOCTYPE and ENTITY declarations are not allowed")
    root = parse_xml("<fragment>" + body + "</fragment>", what)
    if (root.text or "").strip() or any((child.tail or "").strip() for child in root):
        raise ParseError("Bad " + what + " XML: text outside elements")
    return list(root)


def _local(tag: str) -> str:
    """An element's name without its namespace (Clearwater strips namespaces too)."""
    return tag.rsplit("}", 1)[-1]


def _ifc_elements(ifcs_xml: str) -> list[ET.Element]:
    """The ``<InitialFilterCriteria>`` (and any other service-profile content) of a service
    profile's iFC XML: either the elements themselves or, as homestead-prov stores them, a
    ``<ServiceProfile>`` wrapping them (whose ``<PublicIdentity>`` children are dropped)."""
    if not ifcs_xml.strip():
        return []
    elements = _parse_fragment(ifcs_xml, "iFC")
    if len(elements) == 1 and _local(elements[0].tag) == "ServiceProfile":
        return [e for e in elements[0] if _local(e.tag) != "PublicIdentity"]
    return elements


def _xml_text(value: str, what: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise HomesteadError(500, what + " has characters XML cannot carry")
    return value


def _public_identity_element(public: PublicIdentity) -> ET.Element:
    """The ``<PublicIdentity>`` element of a provisioned identity: its XML as provisioned, or
    (none provisioned) one built from the IMPU and its barring."""
    if public.xml.strip():
        elements = _parse_fragment(public.xml, "PublicIdentity")
        if len(elements) != 1 or _local(elements[0].tag) != "PublicIdentity":
            raise ParseError("Bad PublicIdentity XML: not one <PublicIdentity> element")
        return elements[0]
    element = ET.Element("PublicIdentity")
    if public.barred:
        ET.SubElement(element, "BarringIndication").text = "1"
    ET.SubElement(element, "Identity").text = _xml_text(public.impu, "Public identity")
    return element


def _child_text(element: ET.Element, name: str) -> Optional[str]:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _descendant_text(element: ET.Element, name: str) -> Optional[str]:
    for child in element.iter():
        if child is not element and _local(child.tag) == name:
            return (child.text or "").strip()
    return None


@attrs.frozen
class SubscriptionIdentity:
    """A ``<PublicIdentity>`` of an IMS subscription (TS 29.228 Annex B): its ``<Identity>``,
    ``<BarringIndication>`` and, for a wildcarded identity, the ``<WildcardedIMPU>`` (or
    ``<WildcardedPSI>``) of its extension."""

    identity: str
    barred: bool = False
    wildcard: Optional[str] = None

    @property
    def uri(self) -> str:
        """The URI sprout uses for it: the wildcard for a wildcarded identity (as Clearwater's
        ``parse_extension_identity``), else the identity."""
        return self.wildcard or self.identity

    @classmethod
    def from_element(cls, element: ET.Element) -> SubscriptionIdentity:
        identity = _child_text(element, "Identity")
        if not identity:
            raise ParseError("Bad IMS subscription: PublicIdentity without Identity")
        barring = _child_text(element, "BarringIndication")
        wildcard = _descendant_text(element, "WildcardedIMPU") or _descendant_text(
            element, "WildcardedPSI"
        )
        return cls(identity=identity, barred=barring in ("1", "true"), wildcard=wildcard or None)


@attrs.frozen
class SubscriptionProfile:
    """A ``<ServiceProfile>`` of an IMS subscription: its public identities in document order
    and each ``<InitialFilterCriteria>`` as XML text."""

    public_identities: tuple[SubscriptionIdentity, ...]
    ifcs_xml: tuple[str, ...] = ()


@attrs.frozen
class ChargingAddresses:
    """The ``<ChargingAddresses>`` of reg-data: CCFs and ECFs, primary first."""

    ccfs: tuple[str, ...] = ()
    ecfs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ccfs or self.ecfs)


def _tostring(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def _parse_subscription(element: ET.Element) -> tuple[str, tuple[SubscriptionProfile, ...]]:
    private_id = _child_text(element, "PrivateID") or ""
    profiles = []
    for sp in element:
        if _local(sp.tag) != "ServiceProfile":
            continue
        publics = tuple(
            SubscriptionIdentity.from_element(e) for e in sp if _local(e.tag) == "PublicIdentity"
        )
        ifcs = tuple(_tostring(e) for e in sp if _local(e.tag) == "InitialFilterCriteria")
        profiles.append(SubscriptionProfile(publics, ifcs))
    return private_id, tuple(profiles)


def _state(text: Optional[str], what: str) -> RegState:
    try:
        return RegState(text)
    except ValueError:
        raise ParseError("Bad reg-data: " + what) from None


def _priority_sorted(element: ET.Element, name: str) -> tuple[str, ...]:
    found = []
    for child in element:
        if _local(child.tag) == name and (child.text or "").strip():
            found.append((child.get("priority", ""), (child.text or "").strip()))
    return tuple(text for _, text in sorted(found, key=lambda item: item[0]))


@attrs.frozen
class RegData:
    """The ``<ClearwaterRegData>`` of ``GET|PUT /impu/<impu>/reg-data`` (spec §6.1).

    ``ims_subscription_xml`` is the ``<IMSSubscription>`` element as XML text ("" if none);
    ``private_id`` and ``service_profiles`` are parsed from it.
    """

    state: RegState
    ims_subscription_xml: str = ""
    previous_state: Optional[RegState] = None
    private_id: str = ""
    service_profiles: tuple[SubscriptionProfile, ...] = ()
    charging_addresses: ChargingAddresses = attrs.field(factory=ChargingAddresses)

    @property
    def public_identities(self) -> tuple[SubscriptionIdentity, ...]:
        """Every public identity of the subscription, in document order, without repeats."""
        seen: dict[str, SubscriptionIdentity] = {}
        for profile in self.service_profiles:
            for identity in profile.public_identities:
                seen.setdefault(identity.uri, identity)
        return tuple(seen.values())

    @property
    def default_public_identity(self) -> Optional[str]:
        """The first non-barred public identity (Clearwater's default IMPU), if any."""
        for identity in self.public_identities:
            if not identity.barred:
                return identity.uri
        return None

    @classmethod
    def from_subscription(
        cls,
        state: RegState,
        subscription: Optional[ET.Element],
        previous_state: Optional[RegState] = None,
        charging_addresses: Optional[ChargingAddresses] = None,
    ) -> RegData:
        """A reg-data answer from a parsed ``<IMSSubscription>`` element (or None)."""
        if charging_addresses is None:
            charging_addresses = ChargingAddresses()
        if subscription is None:
            return cls(state, previous_state=previous_state, charging_addresses=charging_addresses)
        private_id, profiles = _parse_subscription(subscription)
        return cls(
            state=state,
            ims_subscription_xml=_tostring(subscription),
            previous_state=previous_state,
            private_id=private_id,
            service_profiles=profiles,
            charging_addresses=charging_addresses,
        )

    def to_xml(self) -> bytes:
        """The document, UTF-8 with an XML declaration."""
        root = ET.Element("ClearwaterRegData")
        ET.SubElement(root, "RegistrationState").text = self.state.value
        if self.previous_state is not None:
            ET.SubElement(root, "PreviousRegistrationState").text = self.previous_state.value
        if self.ims_subscription_xml:
            root.append(parse_xml(self.ims_subscription_xml, "IMS subscription"))
        if self.charging_addresses:
            addresses = ET.SubElement(root, "ChargingAddresses")
            for name, values in (
                ("CCF", self.charging_addresses.ccfs),
                ("ECF", self.charging_addresses.ecfs),
            ):
                for priority, value in enumerate(values[:2], start=1):
                    node = ET.SubElement(addresses, name, priority=str(priority))
                    node.text = _xml_text(value, "Charging address")
        return _DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")

    @classmethod
    def from_xml(cls, data: Union[str, bytes]) -> RegData:
        """Parse a ``<ClearwaterRegData>`` document (ParseError if malformed)."""
        root = parse_xml(data, "reg-data")
        if _local(root.tag) != "ClearwaterRegData":
            raise ParseError("Bad reg-data: not ClearwaterRegData")
        state = _state(_child_text(root, "RegistrationState"), "RegistrationState")
        previous_text = _child_text(root, "PreviousRegistrationState")
        previous = None
        if previous_text is not None:
            previous = _state(previous_text, "PreviousRegistrationState")
        subscription = None
        charging = ChargingAddresses()
        for child in root:
            if _local(child.tag) == "IMSSubscription":
                subscription = child
            elif _local(child.tag) == "ChargingAddresses":
                charging = ChargingAddresses(
                    _priority_sorted(child, "CCF"), _priority_sorted(child, "ECF")
                )
        return cls.from_subscription(state, subscription, previous, charging)


# --------------------------------------------------------------------------- wildcards


def wildcard_matches(wildcard: str, identity: str) -> bool:
    """Whether ``identity`` is one of the identities ``wildcard`` stands for.

    Clearwater's rule (``WildcardUtils::check_users_equivalent``): equal strings match; else
    URI parameters (from the first ``;``) are dropped from both; else ``wildcard`` must be
    ``<prefix>!<regex>!<suffix>`` (first and last ``!``), ``identity`` must start with the
    prefix and end with the suffix, and the regular expression must match all of the rest.
    A regular expression that does not compile matches nothing.
    """
    if wildcard == identity:
        return True
    if not wildcard or not identity:
        return False
    pattern = wildcard.split(";", 1)[0]
    subject = identity.split(";", 1)[0]
    if pattern == subject:
        return True
    start, end = pattern.find("!"), pattern.rfind("!")
    if start < 0 or start == end:
        return False
    prefix, regex, suffix = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    if len(subject) < len(prefix) + len(suffix):
        return False
    if not subject.startswith(prefix) or not subject.endswith(suffix):
        return False
    middle = subject[len(prefix) : len(subject) - len(suffix)]
    try:
        return re.fullmatch(regex, middle) is not None
    except re.error:
        return False


# --------------------------------------------------------------------------- homestead


#: How many parsed subscriptions :class:`HsslessHomestead` keeps (all are dropped when full).
_MAX_SUBSCRIPTIONS = 10_000


def _digest_ha1(private: PrivateIdentity, realm: str) -> str:
    if private.digest_ha1:
        return private.digest_ha1
    if private.plaintext_password is not None:
        return digest_ha1(private.impi, realm, private.plaintext_password)
    return ""


class HsslessHomestead:
    """Homestead's answers without an HSS, from ``store`` (see the module docstring).

    ``scscf_uri`` is the S-CSCF that UAR/LIR answers name and registrations are assigned to
    when sprout names none; ``home_domain`` is the digest realm of an IMPI provisioned without
    one. ``random`` makes AKA RANDs and ``now`` stamps registration-state changes (epoch s).
    Every method returns a Deferred failing with :class:`HomesteadError` or a store error.
    """

    def __init__(
        self,
        store: ISubscriberStore,
        *,
        scscf_uri: str,
        home_domain: str,
        random: Callable[[int], bytes] = os.urandom,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._scscf = scscf_uri
        self._home_domain = home_domain
        self._random = random
        self._now = now
        self._subscriptions: dict[
            tuple[str, tuple[PublicIdentity, ...], tuple[ServiceProfile, ...]], RegData
        ] = {}

    @property
    def scscf_uri(self) -> str:
        return self._scscf

    @property
    def home_domain(self) -> str:
        return self._home_domain

    # -- lookups

    async def _private(self, impi: str) -> PrivateIdentity:
        private = await self._store.get_private(impi)
        if private is None:
            raise HomesteadError(404, "Unknown private identity " + impi)
        return private

    async def _public(
        self, impu: str, wildcard_hint: Optional[str] = None
    ) -> tuple[PublicIdentity, Optional[str]]:
        """The provisioned identity ``impu`` is (exactly, else through a wildcard) and the
        wildcard it matched (None for an exact match); 404 if none."""
        public = await self._store.get_public(impu)
        if public is not None:
            return public, None
        if wildcard_hint:
            hinted = await self._store.get_public(wildcard_hint)
            if hinted is not None and wildcard_matches(hinted.wildcard or hinted.impu, impu):
                return hinted, hinted.wildcard or hinted.impu
        for candidate in await self._store.wildcard_publics():
            pattern = candidate.wildcard or candidate.impu
            if wildcard_matches(pattern, impu):
                return candidate, pattern
        raise HomesteadError(404, "Unknown public identity " + impu)

    async def _check_associated(self, impi: str, public: PublicIdentity, impu: str) -> None:
        if public.irs not in await self._store.irs_of_private(impi):
            raise HomesteadError(
                404, "Private identity " + impi + " and public identity " + impu + " do not match"
            )

    def _realm(self, private: PrivateIdentity) -> str:
        return private.realm or self._home_domain

    # -- /impi/<impi>/av[/<scheme>], /impi/<impi>/digest

    def get_av(
        self,
        impi: str,
        impu: Optional[str] = None,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        """An authentication vector for ``impi`` (``GET /impi/<impi>/av[/<scheme>]``).

        ``scheme`` None is the bare ``av``: digest if the IMPI has a digest HA1, else AKAv1
        (AKA too when ``resync_auth`` is given). With ``impu``, the IMPU must be in one of the
        IMPI's implicit registration sets. 404: unknown IMPI or IMPU, not associated, or no
        credentials for the scheme; 400: a malformed ``resync_auth``; 403: an AUTS whose MAC-S
        does not verify. ``server_name`` is accepted and unused (no HSS to tell).
        """
        return Deferred.fromCoroutine(self._get_av(impi, scheme, impu, resync_auth))

    async def _get_av(
        self,
        impi: str,
        scheme: Optional[AvScheme],
        impu: Optional[str],
        resync_auth: Optional[str],
    ) -> Union[DigestAv, AkaAv]:
        private = await self._private(impi)
        if impu:
            public, _ = await self._public(impu)
            await self._check_associated(impi, public, impu)
        realm = self._realm(private)
        ha1 = _digest_ha1(private, realm)
        if scheme is None:
            if ha1 and resync_auth is None:
                scheme = AvScheme.DIGEST
            elif private.aka is not None:
                scheme = AvScheme.AKA
            else:
                raise HomesteadError(404, "No credentials for private identity " + impi)
        if scheme is AvScheme.DIGEST:
            if not ha1:
                raise HomesteadError(404, "No digest credentials for private identity " + impi)
            ha1_sha256 = ""
            if private.plaintext_password is not None:  # RFC 8760: only from the password
                ha1_sha256 = digest_ha1(impi, realm, private.plaintext_password, "SHA-256")
            return DigestAv(ha1=ha1, realm=realm, qop="auth", ha1_sha256=ha1_sha256)
        version = _AKA_VERSIONS[scheme.value]
        return AkaAv.from_vector(await self._aka_vector(private, resync_auth), version)

    async def _aka_vector(self, private: PrivateIdentity, resync_auth: Optional[str]) -> AuthVector:
        impi = private.impi
        if private.aka is None:
            raise HomesteadError(404, "No AKA credentials for private identity " + impi)
        sqn_ms: Optional[int] = None
        if resync_auth is not None:
            try:
                rand, auts = split_resync_auth(resync_auth)
            except ResyncError as e:
                raise HomesteadError(400, "Bad resync-auth: " + str(e)) from None
            try:
                sqn_ms = parse_auts(private.aka.k, private.aka.opc, rand, auts)
            except ResyncError:
                raise HomesteadError(403, "resync-auth does not verify") from None
        for _ in range(_SQN_ATTEMPTS):
            aka = private.aka
            if aka is None:
                raise HomesteadError(404, "No AKA credentials for private identity " + impi)
            try:
                sqn = next_sqn(aka.sqn if sqn_ms is None else sqn_ms)
            except ValueError:
                raise HomesteadError(500, "Bad stored SQN for " + impi) from None
            if await self._store.advance_sqn(impi, aka.sqn, sqn):
                rand = self._random(_RAND_LEN)
                try:
                    return generate(aka.k, aka.opc, sqn, aka.amf, rand)
                except ValueError as e:
                    raise HomesteadError(500, "Bad AKA credentials for " + impi) from e
            private = await self._private(impi)  # another vector was issued: start again
        raise HomesteadError(503, "SQN of " + impi + " changing too fast")

    def get_digest(self, impi: str, public_id: Optional[str] = None) -> Deferred[str]:
        """The digest HA1 of ``impi`` (``GET /impi/<impi>/digest[?public_id=]``); 404 if the
        IMPI is unknown, has no digest credentials, or is not associated with ``public_id``."""
        return Deferred.fromCoroutine(self._get_digest(impi, public_id))

    async def _get_digest(self, impi: str, public_id: Optional[str]) -> str:
        private = await self._private(impi)
        if public_id:
            public, _ = await self._public(public_id)
            await self._check_associated(impi, public, public_id)
        ha1 = _digest_ha1(private, self._realm(private))
        if not ha1:
            raise HomesteadError(404, "No digest credentials for private identity " + impi)
        return ha1

    # -- /impi/<impi>/registration-status, /impu/<impu>/location

    def registration_status(
        self,
        impi: str,
        impu: str,
        visited_network: Optional[str] = None,
        auth_type: Optional[str] = None,
        sos: bool = False,
    ) -> Deferred[ServerAssignment]:
        """UAR (``GET /impi/<impi>/registration-status?impu=``): 2001 with the configured
        S-CSCF. 400 for an unknown ``auth_type``; 404 unknown identities or identities that do
        not match; 403 a barred IMPU registering (not for DEREG, nor emergency ``sos``)."""
        return Deferred.fromCoroutine(self._registration_status(impi, impu, auth_type, sos))

    async def _registration_status(
        self, impi: str, impu: str, auth_type: Optional[str], sos: bool
    ) -> ServerAssignment:
        kind = _auth_type(auth_type)
        if not impu:
            raise HomesteadError(400, "Missing impu")
        await self._private(impi)
        public, _ = await self._public(impu)
        await self._check_associated(impi, public, impu)
        if public.barred and kind != "DEREG" and not sos:
            raise HomesteadError(403, "Public identity " + impu + " is barred")
        return ServerAssignment(DIAMETER_SUCCESS, scscf=self._scscf)

    def location(
        self, impu: str, originating: bool = False, auth_type: Optional[str] = None
    ) -> Deferred[ServerAssignment]:
        """LIR (``GET /impu/<impu>/location``): 2001 with the configured S-CSCF, and the
        matched wildcard as ``wildcard_identity``; 404 for an unknown IMPU, 400 for an unknown
        ``auth_type``."""
        return Deferred.fromCoroutine(self._location(impu, auth_type))

    async def _location(self, impu: str, auth_type: Optional[str]) -> ServerAssignment:
        _auth_type(auth_type)
        _, wildcard = await self._public(impu)
        return ServerAssignment(DIAMETER_SUCCESS, scscf=self._scscf, wildcard_identity=wildcard)

    # -- /impu/<impu>/reg-data

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        """The registration state and IMS subscription of ``impu``'s IRS (no change)."""
        return Deferred.fromCoroutine(self._get_reg_data(impu))

    async def _get_reg_data(self, impu: str) -> RegData:
        public, _ = await self._public(impu)
        registration = await self._store.get_registration(public.irs)
        privates = await self._store.privates_of_irs(public.irs)
        impi = _choose_private(None, registration.impi, privates)
        return await self._reg_data(public.irs, impi, registration.state)

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        """Apply ``reqtype`` to ``impu``'s IRS (module docstring table) and answer its reg-data.

        ``server_name`` (default: the configured S-CSCF) and ``private_id`` are recorded on
        ``reg``; the ``<PrivateID>`` is ``private_id`` if it is in the IRS, else the IMPI the
        IRS last registered with, else its first. ``wildcard_identity`` is tried before the
        other wildcards when ``impu`` is not provisioned exactly. 404 unknown IMPU; 400 a
        de-registration of an IRS that is not registered.
        """
        return Deferred.fromCoroutine(
            self._put_reg_data(impu, reqtype, server_name, private_id, wildcard_identity)
        )

    async def _put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str],
        private_id: Optional[str],
        wildcard_identity: Optional[str],
    ) -> RegData:
        if private_id and _NOT_XML_CHAR.search(private_id):
            raise HomesteadError(400, "Bad private_id: characters XML cannot carry")
        public, _ = await self._public(impu, wildcard_identity)
        irs = public.irs
        current = await self._store.get_registration(irs)
        privates = await self._store.privates_of_irs(irs)
        impi = _choose_private(private_id, current.impi, privates)
        old = current.state
        new = old
        previous: Optional[RegState] = None
        updated = current
        if reqtype is ReqType.REG:
            previous = old
            new = RegState.REGISTERED
            updated = RegistrationState(new, server_name or self._scscf, impi, current.updated)
        elif reqtype is ReqType.CALL:
            previous = old
            if old is RegState.NOT_REGISTERED:
                new = RegState.UNREGISTERED
                updated = RegistrationState(new, server_name or self._scscf, impi, current.updated)
        elif reqtype.is_dereg:
            if old is not RegState.REGISTERED:
                raise HomesteadError(400, "Public identity " + impu + " is not registered")
            new = RegState.UNREGISTERED
            updated = attrs.evolve(current, state=new)
        if updated != current:
            await self._store.set_registration(irs, attrs.evolve(updated, updated=self._now()))
        return await self._reg_data(irs, impi, new, previous)

    async def _reg_data(
        self, irs: str, impi: str, state: RegState, previous: Optional[RegState] = None
    ) -> RegData:
        """The reg-data of ``irs`` with ``impi`` as its ``<PrivateID>``. The subscription is
        built and parsed once for given provisioned data (kept for at most
        ``_MAX_SUBSCRIPTIONS`` sets: every call of a subscriber asks for its reg-data)."""
        publics = tuple(await self._store.publics_of_irs(irs))
        profiles = tuple(await self._store.service_profiles_of_irs(irs))
        key = (impi, publics, profiles)
        template = self._subscriptions.get(key)
        if template is None:
            subscription = self._subscription(irs, impi, publics, profiles)
            template = RegData.from_subscription(state, subscription)
            if len(self._subscriptions) >= _MAX_SUBSCRIPTIONS:
                self._subscriptions.clear()
            self._subscriptions[key] = template
        return attrs.evolve(template, state=state, previous_state=previous)

    def _subscription(
        self,
        irs: str,
        impi: str,
        publics: tuple[PublicIdentity, ...],
        service_profiles: tuple[ServiceProfile, ...],
    ) -> ET.Element:
        """The IRS's ``<IMSSubscription>`` (TS 29.228 Annex B): ``<PrivateID>``, then one
        ``<ServiceProfile>`` per service profile holding a public identity, in the order of
        their first identities (so the IRS's default identity comes first), each with its
        ``<PublicIdentity>`` elements in provisioning order and then its iFCs."""
        profiles = {sp.sp: sp for sp in service_profiles}
        grouped: dict[str, list[PublicIdentity]] = {}
        for public in publics:
            grouped.setdefault(public.sp, []).append(public)
        root = ET.Element("IMSSubscription")
        ET.SubElement(root, "PrivateID").text = _xml_text(impi, "Private identity")
        try:
            for sp, members in grouped.items():
                element = ET.SubElement(root, "ServiceProfile")
                for public in members:
                    element.append(_public_identity_element(public))
                profile = profiles.get(sp)
                if profile is not None:
                    element.extend(_ifc_elements(profile.ifcs_xml))
        except ParseError as e:
            raise HomesteadError(500, "Bad provisioned data for " + irs + ": " + e.reason) from e
        return root


def _auth_type(value: Optional[str]) -> str:
    if not value:
        return "REG"
    if value not in AUTH_TYPES:
        raise HomesteadError(400, "Bad auth-type: " + value)
    return value


def _choose_private(requested: Optional[str], registered: str, privates: list[str]) -> str:
    if requested and requested in privates:
        return requested
    if registered and registered in privates:
        return registered
    if privates:
        return privates[0]
    return requested or registered
