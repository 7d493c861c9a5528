"""The reg event package's document, ``application/reginfo+xml`` (RFC 3680 §5, schema §5.4), with
the GRUU extension of RFC 5628 (``urn:ietf:params:xml:ns:gruuinfo``).

What the S-CSCF puts in its NOTIFY bodies is spec §3.7: one ``<registration>`` per IMPU, each
listing every binding as a ``<contact>`` with its ``<uri>``, unknown Contact parameters and
``<gr:pub-gruu>``.

:func:`build_reginfo` writes a document with ElementTree (so every value is escaped), the
reginfo namespace as the default one and gruuinfo under the ``gr`` prefix, elements in the
schema's order. It refuses values the schema or XML cannot carry with :exc:`ValueError`.

:func:`parse_reginfo` reads any conforming document: it goes through the project's safe parser
(:func:`clearwater._xml.parse_xml`: no DTD, size and depth limits), resolves namespace prefixes
itself (Namespaces in XML 1.0), ignores elements and attributes of other namespaces and the
RFC 3680 attributes this model leaves out (``duration-registered``, ``retry-after``,
``xml:lang``), and raises :class:`~clearwater.errors.ParseError` and nothing else for bad input.
Values of type ``anyURI`` (``aor``, ``<uri>``, GRUU ``uri``) lose surrounding white space, as
the schema type collapses it; all other text is kept as sent.
"""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Optional

import attrs

from clearwater._xml import parse_xml
from clearwater.errors import ParseError

__all__ = [
    "GRUUINFO_NAMESPACE",
    "REGINFO_CONTENT_TYPE",
    "REGINFO_NAMESPACE",
    "ContactEvent",
    "ContactInfo",
    "Reginfo",
    "RegistrationInfo",
    "build_reginfo",
    "parse_reginfo",
]

REGINFO_CONTENT_TYPE = "application/reginfo+xml"
#: RFC 3680 §5.4 target namespace.
REGINFO_NAMESPACE = "urn:ietf:params:xml:ns:reginfo"
#: RFC 5628 target namespace (prefix ``gr`` in the documents built here).
GRUUINFO_NAMESPACE = "urn:ietf:params:xml:ns:gruuinfo"

_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
_R = "{" + REGINFO_NAMESPACE + "}"
_GR = "{" + GRUUINFO_NAMESPACE + "}"

_DOCUMENT_STATES = ("full", "partial")
_REGISTRATION_STATES = ("init", "active", "terminated")
_CONTACT_STATES = ("active", "terminated")

#: xs:unsignedLong's largest value (RFC 3680 ``expires``, ``cseq``; RFC 5628 ``first-cseq``).
#: ``version`` is an xs:nonNegativeInteger; it is held to the same bound.
_MAX_UNSIGNED_LONG = (1 << 64) - 1

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# XML 1.0 §2.2 Char: anything else cannot appear in a document at all.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# XML 1.0 §2.3 S, the white space an xs:anyURI value collapses.
_XML_SPACE = " \t\n\r"
# xs:nonNegativeInteger / xs:unsignedLong lexical form (surrounding white space collapses).
_UNSIGNED = re.compile(r"\+?0*([0-9]{1,20})\Z")
# RFC 3261 §20.10 / §25.1 qvalue.
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


class ContactEvent(enum.Enum):
    """What happened to a contact (RFC 3680 §5.3 ``event`` attribute)."""

    REGISTERED = "registered"
    CREATED = "created"
    REFRESHED = "refreshed"
    SHORTENED = "shortened"
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    UNREGISTERED = "unregistered"
    REJECTED = "rejected"


@attrs.frozen
class ContactInfo:
    """One ``<contact>`` (RFC 3680 §5.3; GRUUs RFC 5628).

    ``state`` is ``"active"`` or ``"terminated"``; ``expires`` the seconds the binding has left;
    ``q`` the RFC 3261 qvalue as written (``"0.5"``); ``temp_gruu`` is ``(uri, first-cseq)``;
    ``unknown_params`` are the Contact's other parameters as ``(name, value)``, ``""`` for a
    parameter without a value (an empty ``<unknown-param>``).
    """

    id: str
    state: str
    event: ContactEvent
    uri: str
    expires: Optional[int] = None
    q: Optional[str] = None
    callid: Optional[str] = None
    cseq: Optional[int] = None
    display_name: Optional[str] = None
    pub_gruu: Optional[str] = None
    temp_gruu: Optional[tuple[str, int]] = None
    unknown_params: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class RegistrationInfo:
    """One ``<registration>``: an address of record and its contacts (RFC 3680 §5.2).

    ``state`` is ``"init"``, ``"active"`` or ``"terminated"``.
    """

    aor: str
    id: str
    state: str
    contacts: tuple[ContactInfo, ...] = ()


@attrs.frozen
class Reginfo:
    """A whole ``<reginfo>`` document (RFC 3680 §5.1): ``state`` is ``"full"`` or
    ``"partial"``; ``version`` counts the documents sent on one subscription."""

    version: int
    state: str
    registrations: tuple[RegistrationInfo, ...] = ()


# --------------------------------------------------------------------------- building


def build_reginfo(info: Reginfo) -> bytes:
    """The UTF-8 ``application/reginfo+xml`` document (with its XML declaration) for ``info``.

    Raises :exc:`ValueError` for a state or event RFC 3680 does not allow, an integer outside
    xs:unsignedLong (a negative ``version``, say), a ``q`` that is not an RFC 3261 qvalue, a URI
    with surrounding white space, or text holding characters XML cannot carry.
    """
    root = ET.Element(
        "reginfo",
        {
            "xmlns": REGINFO_NAMESPACE,
            "xmlns:gr": GRUUINFO_NAMESPACE,
            "version": _unsigned(info.version, "reginfo version"),
            "state": _choice(info.state, _DOCUMENT_STATES, "reginfo state"),
        },
    )
    for registration in info.registrations:
        root.append(_registration_element(registration))
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    # ElementTree writes CR in text as is, and a parser would read it back as LF (XML 1.0
    # §2.11); attribute values already have theirs escaped, so every raw CR left is in text.
    return _DECLARATION + body.replace(b"\r", b"&#13;")


def _registration_element(registration: RegistrationInfo) -> ET.Element:
    element = ET.Element(
        "registration",
        {
            "aor": _uri(registration.aor, "registration aor"),
            "id": _text(registration.id, "registration id"),
            "state": _choice(registration.state, _REGISTRATION_STATES, "registration state"),
        },
    )
    for contact in registration.contacts:
        element.append(_contact_element(contact))
    return element


def _contact_element(contact: ContactInfo) -> ET.Element:
    attributes = {
        "id": _text(contact.id, "contact id"),
        "state": _choice(contact.state, _CONTACT_STATES, "contact state"),
        "event": ContactEvent(contact.event).value,
    }
    if contact.expires is not None:
        attributes["expires"] = _unsigned(contact.expires, "contact expires")
    if contact.q is not None:
        if not _QVALUE.match(contact.q):
            raise ValueError("contact q is not a qvalue: " + repr(contact.q))
        attributes["q"] = contact.q
    if contact.callid is not None:
        attributes["callid"] = _text(contact.callid, "contact callid")
    if contact.cseq is not None:
        attributes["cseq"] = _unsigned(contact.cseq, "contact cseq")
    element = ET.Element("contact", attributes)
    # RFC 3680 §5.4 order: uri, display-name, unknown-param*, then other namespaces.
    ET.SubElement(element, "uri").text = _uri(contact.uri, "contact uri")
    if contact.display_name is not None:
        ET.SubElement(element, "display-name").text = _text(
            contact.display_name, "contact display-name"
        )
    for name, value in contact.unknown_params:
        param = ET.SubElement(element, "unknown-param", {"name": _text(name, "unknown-param")})
        param.text = _text(value, "unknown-param value") or None
    if contact.pub_gruu is not None:
        ET.SubElement(element, "gr:pub-gruu", {"uri": _uri(contact.pub_gruu, "pub-gruu")})
    if contact.temp_gruu is not None:
        uri, first_cseq = contact.temp_gruu
        ET.SubElement(
            element,
            "gr:temp-gruu",
            {
                "uri": _uri(uri, "temp-gruu"),
                "first-cseq": _unsigned(first_cseq, "temp-gruu first-cseq"),
            },
        )
    return element


def _text(value: str, what: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise ValueError(what + " has characters XML cannot carry: " + repr(value))
    return value


def _uri(value: str, what: str) -> str:
    if value != value.strip(_XML_SPACE):
        raise ValueError(what + " has surrounding white space: " + repr(value))
    return _text(value, what)


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(what + " must be one of " + ", ".join(allowed) + ": " + repr(value))
    return value


def _unsigned(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(what + " is not an integer: " + repr(value))
    if not 0 <= value <= _MAX_UNSIGNED_LONG:
        raise ValueError(what + " is outside 0.." + str(_MAX_UNSIGNED_LONG) + ": " + repr(value))
    return str(value)


# --------------------------------------------------------------------------- parsing


def parse_reginfo(data: bytes) -> Reginfo:
    """The model of one ``application/reginfo+xml`` document; :class:`ParseError` if ``data``
    is not well-formed, namespace-well-formed XML or not a valid ``<reginfo>`` document."""
    root = parse_xml(data, "reginfo")
    _expand_names(root, {"xml": _XML_NAMESPACE})
    if root.tag != _R + "reginfo":
        raise ParseError("Bad reginfo: root element is not reginfo")
    version = _parse_unsigned(root, "version", "reginfo")
    state = _parse_choice(root, "state", _DOCUMENT_STATES, "reginfo")
    registrations = []
    for child in root:
        if child.tag == _R + "registration":
            registrations.append(_parse_registration(child))
        else:
            _other(child, "reginfo")
    return Reginfo(version=version, state=state, registrations=tuple(registrations))


def _parse_registration(element: ET.Element) -> RegistrationInfo:
    contacts = []
    for child in element:
        if child.tag == _R + "contact":
            contacts.append(_parse_contact(child))
        else:
            _other(child, "registration")
    return RegistrationInfo(
        aor=_required(element, "aor", "registration").strip(_XML_SPACE),
        id=_required(element, "id", "registration"),
        state=_parse_choice(element, "state", _REGISTRATION_STATES, "registration"),
        contacts=tuple(contacts),
    )


def _parse_contact(element: ET.Element) -> ContactInfo:
    event = _required(element, "event", "contact")
    try:
        contact_event = ContactEvent(event)
    except ValueError:
        raise ParseError("Bad reginfo: contact event " + repr(event)) from None
    uri: Optional[str] = None
    display_name: Optional[str] = None
    pub_gruu: Optional[str] = None
    temp_gruu: Optional[tuple[str, int]] = None
    unknown_params = []
    for child in element:
        if child.tag == _R + "uri":
            if uri is not None:
                raise ParseError("Bad reginfo: contact has more than one uri")
            uri = _simple_text(child, "uri").strip(_XML_SPACE)
        elif child.tag == _R + "display-name":
            if display_name is not None:
                raise ParseError("Bad reginfo: contact has more than one display-name")
            display_name = _simple_text(child, "display-name")
        elif child.tag == _R + "unknown-param":
            name = _required(child, "name", "unknown-param")
            unknown_params.append((name, _simple_text(child, "unknown-param")))
        elif child.tag == _GR + "pub-gruu":
            if pub_gruu is not None:
                raise ParseError("Bad reginfo: contact has more than one pub-gruu")
            pub_gruu = _required(child, "uri", "pub-gruu").strip(_XML_SPACE)
        elif child.tag == _GR + "temp-gruu":
            if temp_gruu is not None:
                raise ParseError("Bad reginfo: contact has more than one temp-gruu")
            temp_gruu = (
                _required(child, "uri", "temp-gruu").strip(_XML_SPACE),
                _parse_unsigned(child, "first-cseq", "temp-gruu"),
            )
        else:
            _other(child, "contact")
    if uri is None:
        raise ParseError("Bad reginfo: contact has no uri")
    return ContactInfo(
        id=_required(element, "id", "contact"),
        state=_parse_choice(element, "state", _CONTACT_STATES, "contact"),
        event=contact_event,
        uri=uri,
        expires=_parse_optional_unsigned(element, "expires", "contact"),
        q=element.get("q"),
        callid=element.get("callid"),
        cseq=_parse_optional_unsigned(element, "cseq", "contact"),
        display_name=display_name,
        pub_gruu=pub_gruu,
        temp_gruu=temp_gruu,
        unknown_params=tuple(unknown_params),
    )


def _other(element: ET.Element, parent: str) -> None:
    """Children of other namespaces are extensions (RFC 3680 §5.4 ``##other``) and skipped; an
    unknown element of the reginfo namespace makes the document invalid."""
    if element.tag.startswith(_R):
        local = element.tag[len(_R) :][:40]
        raise ParseError("Bad reginfo: unexpected " + local + " in " + parent)


def _simple_text(element: ET.Element, what: str) -> str:
    if len(element):
        raise ParseError("Bad reginfo: " + what + " has child elements")
    return element.text or ""


def _required(element: ET.Element, name: str, what: str) -> str:
    value = element.get(name)
    if value is None:
        raise ParseError("Bad reginfo: " + what + " has no " + name)
    return value


def _parse_choice(element: ET.Element, name: str, allowed: tuple[str, ...], what: str) -> str:
    value = _required(element, name, what)
    if value not in allowed:
        raise ParseError("Bad reginfo: " + what + " " + name + " " + repr(value))
    return value


def _parse_unsigned(element: ET.Element, name: str, what: str) -> int:
    value = _parse_optional_unsigned(element, name, what)
    if value is None:
        raise ParseError("Bad reginfo: " + what + " has no " + name)
    return value


def _parse_optional_unsigned(element: ET.Element, name: str, what: str) -> Optional[int]:
    value = element.get(name)
    if value is None:
        return None
    match = _UNSIGNED.match(value.strip(_XML_SPACE))
    number = int(match.group(1)) if match else -1
    if not 0 <= number <= _MAX_UNSIGNED_LONG:
        raise ParseError("Bad reginfo: " + what + " " + name + " " + repr(value[:30]))
    return number


def _expand_names(element: ET.Element, scope: Mapping[str, str]) -> None:
    """Rewrite the tag and attribute names of ``element`` and its descendants, as parsed
    without namespace processing, into ElementTree's ``{namespace}local`` form, dropping the
    ``xmlns`` declarations (Namespaces in XML 1.0 §3, §5, §6)."""
    declared = {}
    for name, value in element.attrib.items():
        if name == "xmlns":
            declared[""] = value
        elif name.startswith("xmlns:"):
            prefix = name[len("xmlns:") :]
            if not value or not prefix or ":" in prefix:
                raise ParseError("Bad reginfo XML: bad namespace declaration " + repr(name))
            declared[prefix] = value
    if declared:
        scope = {**scope, **declared}
    element.tag = _expand(element.tag, scope, is_element=True)
    attributes: dict[str, str] = {}
    for name, value in element.attrib.items():
        if name == "xmlns" or name.startswith("xmlns:"):
            continue
        expanded = _expand(name, scope, is_element=False)
        if expanded in attributes:
            raise ParseError("Bad reginfo XML: duplicate attribute " + repr(expanded[-40:]))
        attributes[expanded] = value
    element.attrib = attributes
    for child in element:  # parse_xml bounds the depth
        _expand_names(child, scope)


def _expand(name: str, scope: Mapping[str, str], *, is_element: bool) -> str:
    prefix, colon, local = name.partition(":")
    if not colon:
        # An unprefixed attribute is in no namespace; an element is in the default one.
        namespace = scope.get("", "") if is_element else ""
        local = name
    else:
        if not prefix or not local or ":" in local:
            raise ParseError("Bad reginfo XML: bad qualified name " + repr(name[:40]))
        if prefix not in scope:
            raise ParseError("Bad reginfo XML: unbound prefix " + repr(prefix[:40]))
        namespace = scope[prefix]
    return "{" + namespace + "}" + local if namespace else local
