"""SIP transports: UDP, TCP, TLS and WebSocket (RFC 3261 §18, RFC 3581, RFC 5626, RFC 7118).

:class:`TransportLayer` runs the listeners and the connection table and turns bytes into parsed
messages and back; :class:`Target` and :class:`Flow` say where a message goes and where it came
from; :class:`TransportSettings` and :class:`TlsSettings` hold the tunables.
"""

from __future__ import annotations

from clearwater.sip.transport._layer import (
    ListenSpec,
    MessageReceiver,
    TransportLayer,
    TransportSettings,
    TransportStats,
)
from clearwater.sip.transport._tls import TlsSettings
from clearwater.sip.transport._types import (
    DEFAULT_PORTS,
    RELIABLE_TRANSPORTS,
    SECURE_TRANSPORTS,
    TRANSPORTS,
    EncodedResponse,
    Flow,
    Target,
    is_ip_literal,
)
from clearwater.sip.transport._ws import SIP_SUBPROTOCOL, WebSocketHandler, WebSocketSipProtocol

__all__ = [
    "DEFAULT_PORTS",
    "RELIABLE_TRANSPORTS",
    "SECURE_TRANSPORTS",
    "SIP_SUBPROTOCOL",
    "TRANSPORTS",
    "EncodedResponse",
    "Flow",
    "ListenSpec",
    "MessageReceiver",
    "Target",
    "TlsSettings",
    "TransportLayer",
    "TransportSettings",
    "TransportStats",
    "WebSocketHandler",
    "WebSocketSipProtocol",
    "is_ip_literal",
]
