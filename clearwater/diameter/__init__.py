"""Diameter for clearwater: the base protocol (RFC 6733), its watchdog (RFC 3539), Cx (3GPP
TS 29.228/29.229) for homestead and Rf (TS 32.299) for ralf.

Layers, lowest first (ARCHITECTURE.md §1):

- :mod:`.message`: header and AVP codec; unknown AVPs kept byte for byte; RFC 6733 §7 decode
  faults as :class:`DiameterDecodeError` with the result code to answer with;
- :mod:`.dictionary`: AVP and command rows and typed values (RFC 6733 §4.2-§4.5);
- :mod:`.peer` and :mod:`.watchdog`: the RFC 6733 §5.6 peer state machine with election and
  the RFC 3539 watchdog, sans-IO (they take ``now`` and return effects);
- :mod:`.node`: :class:`DiameterNode`, the Twisted service that runs them over TCP, routes
  requests by host and realm, fails over and answers malformed input;
- :mod:`.apps.cx` and :mod:`.apps.rf`: the applications' rows, request builders and answer
  parsers.

Typical client use::

    from clearwater.diameter import APP_CX, VENDOR_3GPP, Application, DiameterNode, PeerConfig
    from clearwater.diameter.apps import cx

    node = DiameterNode(reactor, "homestead.example.com", "example.com",
                        [Application(APP_CX, VENDOR_3GPP, dictionary=cx.CX)],
                        peers=[PeerConfig("hss.example.com", "192.0.2.10")])
    node.startService()
    answer = await node.request(cx.uar(session_id=node.new_session_id(), ...))
    cx.parse_uaa(answer).outcome.success
"""

from __future__ import annotations

from clearwater.diameter.dictionary import (
    APP_ACCOUNTING,
    APP_COMMON,
    APP_CX,
    APP_RELAY,
    BASE,
    VENDOR_3GPP,
    AvpDef,
    AvpType,
    CommandDef,
    Dictionary,
)
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
    RequestHandler,
)
from clearwater.diameter.message import (
    Avp,
    DiameterDecodeError,
    Framer,
    FramingError,
    Message,
    make_answer,
    parse_avps,
    parse_message,
)
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.diameter.results import CxResult, ResultCode

__all__ = [
    "APP_ACCOUNTING",
    "APP_COMMON",
    "APP_CX",
    "APP_RELAY",
    "BASE",
    "VENDOR_3GPP",
    "Application",
    "Avp",
    "AvpDef",
    "AvpType",
    "CommandDef",
    "CxResult",
    "DiameterDecodeError",
    "DiameterNode",
    "DiameterTimeoutError",
    "Dictionary",
    "Framer",
    "FramingError",
    "IDiameterNode",
    "Message",
    "NoPeerError",
    "PeerConfig",
    "PeerInfo",
    "RequestHandler",
    "ResultCode",
    "make_answer",
    "parse_avps",
    "parse_message",
]
