"""Typed access to SIP headers: one :class:`HeaderSpec` per header clearwater understands.

``msg.headers.parsed(ROUTE)`` returns the Route values as :class:`NameAddr` objects, parsed on
first use and cached; ``msg.headers.first(CSEQ)`` returns the one CSeq or None. Headers without
a spec are still kept, byte-exact, and readable as text (``msg.headers.get_all("X-Foo")``).

Sources: RFC 3261 §20 and §25.1; RFC 3327 (Path); RFC 3608 (Service-Route); RFC 3325
(P-Asserted-Identity, P-Preferred-Identity); RFC 7315 (P-Associated-URI, P-Called-Party-ID);
RFC 5502 (P-Served-User); RFC 5002 (P-Profile-Key); RFC 7044 (History-Info).
Authentication (Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate,
Authentication-Info): RFC 3261 §20.6, §20.7, §20.27, §20.28, §20.44, §22.4, RFC 7616, RFC 8760;
RFC 7315 §4.3-§4.6 (P-Visited-Network-ID, P-Access-Network-Info, P-Charging-Function-Addresses,
P-Charging-Vector); RFC 3323 §4.2 (Privacy); RFC 6665 §8.2.1, §8.2.3 (Event,
Subscription-State); RFC 4028 §4 (Session-Expires, Min-SE); RFC 3326 (Reason); RFC 3261
§20.43, §20.33 (Warning, Retry-After); RFC 3841 §10 (Accept-Contact, Reject-Contact,
Request-Disposition).
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
from clearwater.sip._values_ext import (
    AccessNetworkInfo,
    AuthenticationInfo,
    Challenge,
    ChargingFunctionAddresses,
    ChargingVector,
    ContactPreference,
    Credentials,
    EventType,
    MinSE,
    Privacy,
    ReasonValue,
    RetryAfter,
    SessionExpires,
    SubscriptionState,
    VisitedNetworkId,
    WarningValue,
    parse_proxy_authenticate,
    parse_proxy_authorization,
    parse_reject_contact,
    parse_request_disposition,
)

__all__ = [
    "ACCEPT_CONTACT",
    "ALLOW",
    "AUTHENTICATION_INFO",
    "AUTHORIZATION",
    "CALL_ID",
    "CONTACT",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "CSEQ",
    "EVENT",
    "EXPIRES",
    "FROM",
    "HISTORY_INFO",
    "MAX_FORWARDS",
    "MIN_EXPIRES",
    "MIN_SE",
    "PATH",
    "PRIVACY",
    "PROXY_AUTHENTICATE",
    "PROXY_AUTHORIZATION",
    "PROXY_REQUIRE",
    "P_ACCESS_NETWORK_INFO",
    "P_ASSERTED_IDENTITY",
    "P_ASSOCIATED_URI",
    "P_CALLED_PARTY_ID",
    "P_CHARGING_FUNCTION_ADDRESSES",
    "P_CHARGING_VECTOR",
    "P_PREFERRED_IDENTITY",
    "P_PROFILE_KEY",
    "P_SERVED_USER",
    "P_VISITED_NETWORK_ID",
    "REASON",
    "RECORD_ROUTE",
    "REJECT_CONTACT",
    "REQUEST_DISPOSITION",
    "REQUIRE",
    "RETRY_AFTER",
    "ROUTE",
    "SERVICE_ROUTE",
    "SESSION_EXPIRES",
    "SUBSCRIPTION_STATE",
    "SUPPORTED",
    "TO",
    "UNSUPPORTED",
    "VIA",
    "WARNING",
    "WWW_AUTHENTICATE",
    "AccessNetworkInfo",
    "AuthenticationInfo",
    "CSeq",
    "Challenge",
    "ChargingFunctionAddresses",
    "ChargingVector",
    "ContactPreference",
    "ContactValue",
    "Credentials",
    "EventType",
    "HeaderSpec",
    "MediaType",
    "MinSE",
    "NameAddr",
    "Privacy",
    "ReasonValue",
    "RetryAfter",
    "SessionExpires",
    "Star",
    "SubscriptionState",
    "Via",
    "VisitedNetworkId",
    "WarningValue",
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
AUTHORIZATION: HeaderSpec[Credentials] = HeaderSpec("Authorization", Credentials.parse)
PROXY_AUTHORIZATION: HeaderSpec[Credentials] = HeaderSpec(
    "Proxy-Authorization", parse_proxy_authorization
)
WWW_AUTHENTICATE: HeaderSpec[Challenge] = HeaderSpec("WWW-Authenticate", Challenge.parse)
PROXY_AUTHENTICATE: HeaderSpec[Challenge] = HeaderSpec(
    "Proxy-Authenticate", parse_proxy_authenticate
)
AUTHENTICATION_INFO: HeaderSpec[AuthenticationInfo] = HeaderSpec(
    "Authentication-Info", AuthenticationInfo.parse
)
P_CHARGING_VECTOR: HeaderSpec[ChargingVector] = HeaderSpec(
    "P-Charging-Vector", ChargingVector.parse
)
P_CHARGING_FUNCTION_ADDRESSES: HeaderSpec[ChargingFunctionAddresses] = HeaderSpec(
    "P-Charging-Function-Addresses", ChargingFunctionAddresses.parse
)
P_VISITED_NETWORK_ID: HeaderSpec[VisitedNetworkId] = HeaderSpec(
    "P-Visited-Network-ID", VisitedNetworkId.parse
)
P_ACCESS_NETWORK_INFO: HeaderSpec[AccessNetworkInfo] = HeaderSpec(
    "P-Access-Network-Info", AccessNetworkInfo.parse
)
PRIVACY: HeaderSpec[Privacy] = HeaderSpec("Privacy", Privacy.parse)
EVENT: HeaderSpec[EventType] = HeaderSpec("Event", EventType.parse)
SUBSCRIPTION_STATE: HeaderSpec[SubscriptionState] = HeaderSpec(
    "Subscription-State", SubscriptionState.parse
)
SESSION_EXPIRES: HeaderSpec[SessionExpires] = HeaderSpec("Session-Expires", SessionExpires.parse)
MIN_SE: HeaderSpec[MinSE] = HeaderSpec("Min-SE", MinSE.parse)
REASON: HeaderSpec[ReasonValue] = HeaderSpec("Reason", ReasonValue.parse)
WARNING: HeaderSpec[WarningValue] = HeaderSpec("Warning", WarningValue.parse)
RETRY_AFTER: HeaderSpec[RetryAfter] = HeaderSpec("Retry-After", RetryAfter.parse)
ACCEPT_CONTACT: HeaderSpec[ContactPreference] = HeaderSpec(
    "Accept-Contact", ContactPreference.parse
)
REJECT_CONTACT: HeaderSpec[ContactPreference] = HeaderSpec("Reject-Contact", parse_reject_contact)
REQUEST_DISPOSITION: HeaderSpec[str] = HeaderSpec("Request-Disposition", parse_request_disposition)

_SPECS: dict[str, HeaderSpec[object]] = {}


def _register(*specs: HeaderSpec[object]) -> None:
    for spec in specs:
        _SPECS[spec.key] = spec


_register(
    VIA, FROM, TO, CALL_ID, CSEQ, MAX_FORWARDS, CONTENT_LENGTH, CONTENT_TYPE, CONTACT, ROUTE,
    RECORD_ROUTE, PATH, SERVICE_ROUTE, EXPIRES, MIN_EXPIRES, SUPPORTED, REQUIRE, PROXY_REQUIRE,
    UNSUPPORTED, ALLOW, P_ASSOCIATED_URI, P_ASSERTED_IDENTITY, P_PREFERRED_IDENTITY,
    P_CALLED_PARTY_ID, P_SERVED_USER, P_PROFILE_KEY, HISTORY_INFO,
    AUTHORIZATION, PROXY_AUTHORIZATION, WWW_AUTHENTICATE, PROXY_AUTHENTICATE, AUTHENTICATION_INFO,
    P_CHARGING_VECTOR, P_CHARGING_FUNCTION_ADDRESSES, P_VISITED_NETWORK_ID, P_ACCESS_NETWORK_INFO,
    PRIVACY, EVENT, SUBSCRIPTION_STATE, SESSION_EXPIRES, MIN_SE, REASON, WARNING, RETRY_AFTER,
    ACCEPT_CONTACT, REJECT_CONTACT, REQUEST_DISPOSITION,
)  # fmt: skip


def spec_for(name: str) -> Optional[HeaderSpec[object]]:
    """The spec clearwater has for header ``name`` (any form or case), or None."""
    return _SPECS.get(header_key(name))
