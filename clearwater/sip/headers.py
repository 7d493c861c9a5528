"""Typed access to SIP headers: one :class:`HeaderSpec` per header clearwater understands.

``msg.headers.parsed(ROUTE)`` returns the Route values as :class:`NameAddr` objects, parsed on
first use and cached; ``msg.headers.first(CSEQ)`` returns the one CSeq or None. Headers without
a spec are still kept, byte-exact, and readable as text (``msg.headers.get_all("X-Foo")``).

Sources: RFC 3261 §20 and §25.1; RFC 3327 (Path); RFC 3608 (Service-Route); RFC 3325
(P-Asserted-Identity, P-Preferred-Identity); RFC 7315 (P-Associated-URI, P-Called-Party-ID);
RFC 5502 (P-Served-User); RFC 5002 (P-Profile-Key); RFC 7044 (History-Info).
"""

from __future__ import annotations

from typing import Optional

from clearwater.sip._table import HeaderSpec, canonical_name, header_key, is_list_header
from clearwater.sip._values import (
    ContactValue,
    CSeq,
    MediaType,
    NameAddr,
    Star,
    Via,
    parse_call_id,
    parse_contact,
    parse_content_length,
    parse_delta_seconds,
    parse_max_forwards,
    parse_name_addr_strict,
    parse_token,
)

__all__ = [
    "ALLOW",
    "CALL_ID",
    "CONTACT",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "CSEQ",
    "EXPIRES",
    "FROM",
    "HISTORY_INFO",
    "MAX_FORWARDS",
    "MIN_EXPIRES",
    "PATH",
    "PROXY_REQUIRE",
    "P_ASSERTED_IDENTITY",
    "P_ASSOCIATED_URI",
    "P_CALLED_PARTY_ID",
    "P_PREFERRED_IDENTITY",
    "P_PROFILE_KEY",
    "P_SERVED_USER",
    "RECORD_ROUTE",
    "REQUIRE",
    "ROUTE",
    "SERVICE_ROUTE",
    "SUPPORTED",
    "TO",
    "UNSUPPORTED",
    "VIA",
    "CSeq",
    "ContactValue",
    "HeaderSpec",
    "MediaType",
    "NameAddr",
    "Star",
    "Via",
    "canonical_name",
    "header_key",
    "is_list_header",
    "spec_for",
]

VIA: HeaderSpec[Via] = HeaderSpec("Via", Via.parse)
FROM: HeaderSpec[NameAddr] = HeaderSpec("From", NameAddr.parse)
TO: HeaderSpec[NameAddr] = HeaderSpec("To", NameAddr.parse)
CALL_ID: HeaderSpec[str] = HeaderSpec("Call-ID", parse_call_id)
CSEQ: HeaderSpec[CSeq] = HeaderSpec("CSeq", CSeq.parse)
MAX_FORWARDS: HeaderSpec[int] = HeaderSpec("Max-Forwards", parse_max_forwards)
CONTENT_LENGTH: HeaderSpec[int] = HeaderSpec("Content-Length", parse_content_length)
CONTENT_TYPE: HeaderSpec[MediaType] = HeaderSpec("Content-Type", MediaType.parse)
CONTACT: HeaderSpec[ContactValue] = HeaderSpec("Contact", parse_contact)
ROUTE: HeaderSpec[NameAddr] = HeaderSpec("Route", parse_name_addr_strict)
RECORD_ROUTE: HeaderSpec[NameAddr] = HeaderSpec("Record-Route", parse_name_addr_strict)
PATH: HeaderSpec[NameAddr] = HeaderSpec("Path", parse_name_addr_strict)
SERVICE_ROUTE: HeaderSpec[NameAddr] = HeaderSpec("Service-Route", parse_name_addr_strict)
EXPIRES: HeaderSpec[int] = HeaderSpec("Expires", parse_delta_seconds)
MIN_EXPIRES: HeaderSpec[int] = HeaderSpec("Min-Expires", parse_delta_seconds)
SUPPORTED: HeaderSpec[str] = HeaderSpec("Supported", parse_token)
REQUIRE: HeaderSpec[str] = HeaderSpec("Require", parse_token)
PROXY_REQUIRE: HeaderSpec[str] = HeaderSpec("Proxy-Require", parse_token)
UNSUPPORTED: HeaderSpec[str] = HeaderSpec("Unsupported", parse_token)
ALLOW: HeaderSpec[str] = HeaderSpec("Allow", parse_token)
P_ASSOCIATED_URI: HeaderSpec[NameAddr] = HeaderSpec("P-Associated-URI", NameAddr.parse)
P_ASSERTED_IDENTITY: HeaderSpec[NameAddr] = HeaderSpec("P-Asserted-Identity", NameAddr.parse)
P_PREFERRED_IDENTITY: HeaderSpec[NameAddr] = HeaderSpec("P-Preferred-Identity", NameAddr.parse)
P_CALLED_PARTY_ID: HeaderSpec[NameAddr] = HeaderSpec("P-Called-Party-ID", NameAddr.parse)
P_SERVED_USER: HeaderSpec[NameAddr] = HeaderSpec("P-Served-User", NameAddr.parse)
P_PROFILE_KEY: HeaderSpec[NameAddr] = HeaderSpec("P-Profile-Key", NameAddr.parse)
HISTORY_INFO: HeaderSpec[NameAddr] = HeaderSpec("History-Info", NameAddr.parse)

_SPECS: dict[str, HeaderSpec[object]] = {}


def _register(*specs: HeaderSpec[object]) -> None:
    for spec in specs:
        _SPECS[spec.key] = spec


_register(
    VIA, FROM, TO, CALL_ID, CSEQ, MAX_FORWARDS, CONTENT_LENGTH, CONTENT_TYPE, CONTACT, ROUTE,
    RECORD_ROUTE, PATH, SERVICE_ROUTE, EXPIRES, MIN_EXPIRES, SUPPORTED, REQUIRE, PROXY_REQUIRE,
    UNSUPPORTED, ALLOW, P_ASSOCIATED_URI, P_ASSERTED_IDENTITY, P_PREFERRED_IDENTITY,
    P_CALLED_PARTY_ID, P_SERVED_USER, P_PROFILE_KEY, HISTORY_INFO,
)  # fmt: skip


def spec_for(name: str) -> Optional[HeaderSpec[object]]:
    """The spec clearwater has for header ``name`` (any form or case), or None."""
    return _SPECS.get(header_key(name))
