"""SIP for clearwater: messages, URIs, typed headers and stream framing (RFC 3261 §7, §18-§20, §25).

The public API of the SIP syntax layer::

    from clearwater.sip import parse_message, Request, Response, ParseError
    from clearwater.sip import headers as h

    msg = parse_message(datagram)              # Request | Response, validated
    via = msg.top_via                          # typed, parsed once
    routes = msg.headers.parsed(h.ROUTE)       # list[NameAddr], parsed on first use
    wire = msg.to_bytes()                      # unchanged headers serialised from their raw text
"""

from __future__ import annotations

from clearwater.errors import ParseError
from clearwater.sip import headers
from clearwater.sip._framing import (
    MAX_BODY_SIZE,
    MAX_HEADER_SIZE,
    FramedMessage,
    FramerEvent,
    KeepAlivePing,
    KeepAlivePong,
    StreamFramer,
)
from clearwater.sip._message import Headers, Message, Request, Response
from clearwater.sip._parser import MAX_HEADER_LINES, MAX_MESSAGE_SIZE, parse_message
from clearwater.sip._uri import AbsoluteUri, SipUri, TelUri, Uri, parse_sip_uri, parse_uri
from clearwater.sip._values import ContactValue, CSeq, MediaType, NameAddr, Star, Via
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
)
from clearwater.sip.headers import HeaderSpec

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEADER_LINES",
    "MAX_HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "AbsoluteUri",
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
    "FramedMessage",
    "FramerEvent",
    "HeaderSpec",
    "Headers",
    "KeepAlivePing",
    "KeepAlivePong",
    "MediaType",
    "Message",
    "MinSE",
    "NameAddr",
    "ParseError",
    "Privacy",
    "ReasonValue",
    "Request",
    "Response",
    "RetryAfter",
    "SessionExpires",
    "SipUri",
    "Star",
    "StreamFramer",
    "SubscriptionState",
    "TelUri",
    "Uri",
    "Via",
    "VisitedNetworkId",
    "WarningValue",
    "headers",
    "parse_message",
    "parse_sip_uri",
    "parse_uri",
]
