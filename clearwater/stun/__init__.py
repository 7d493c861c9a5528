"""STUN and TURN wire formats for clearwater, sans-IO.

- Messages: RFC 8489 §5 (header, method/class interleaving, magic cookie), §14 (attributes),
  RFC 3489 Binding messages without the cookie (RFC 8489 §11, RFC 5389 §12).
- Integrity: MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT checked over the
  received bytes (RFC 8489 §14.5-§14.7); keys for short- and long-term credentials (RFC 8489
  §9.1.1, §9.2.2) with SASLprep (RFC 4013). RFC 5769 §2.1-§2.4 are the test vectors.
- TURN: methods and attributes of RFC 8656 §17-§18 and RFC 6062 §6; ChannelData (RFC 8656
  §12.4); ICE attributes of RFC 8445 §16.1; RESPONSE-ORIGIN / OTHER-ADDRESS of RFC 5780 §7.
- Streams: :class:`StreamFramer` cuts TCP/TLS bytes into STUN and ChannelData frames.
- TURN server: :class:`TurnServer`, a sans-IO core (RFC 8656, RFC 6156, RFC 6062) that takes
  bytes and ``now`` and returns effects for a shell to carry out (:mod:`clearwater.stun.turn`).

Typical server use::

    from clearwater.stun import Attr, Class, Message, parse_datagram

    msg = parse_datagram(datagram)            # Message | ChannelData, or ParseError
    if msg.check_integrity(long_term_key(user, realm, password)): ...
    peer = msg.get(Attr.XOR_PEER_ADDRESS)     # ("192.0.2.1", 32853)
    reply = Message(msg.method, Class.SUCCESS, msg.transaction_id,
                    [(Attr.XOR_MAPPED_ADDRESS, source)])
    wire = reply.encode(key, fingerprint=True)
"""

from __future__ import annotations

from clearwater.errors import ParseError
from clearwater.stun._attributes import (
    ATTRIBUTES,
    ATTRIBUTES_BY_NAME,
    ATTRIBUTES_BY_TYPE,
    ERROR_REASONS,
    Address,
    AddressErrorCode,
    AlgorithmEntry,
    Attr,
    AttributeType,
    ErrorCode,
    Icmp,
)
from clearwater.stun._codec import (
    FINGERPRINT_XOR,
    HEADER_SIZE,
    MAGIC_COOKIE,
    AttributeKey,
    Class,
    Message,
    Method,
    new_transaction_id,
    parse_message,
    unknown_comprehension_required,
)
from clearwater.stun._credentials import (
    PasswordAlgorithm,
    long_term_key,
    saslprep,
    short_term_key,
    userhash,
)
from clearwater.stun._framing import (
    MAX_FRAME_SIZE,
    ChannelData,
    StreamFramer,
    parse_channel_data,
    parse_datagram,
)
from clearwater.stun.turn import (
    NOT_LOOKED_UP,
    BindConnection,
    Client,
    ClosePeerConnection,
    CloseRelay,
    ConnectPeer,
    Effect,
    LookUpKey,
    NotLookedUp,
    OpenRelay,
    PeerPolicy,
    SendToClient,
    SendToPeer,
    TurnConfig,
    TurnServer,
    TurnStats,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTES_BY_NAME",
    "ATTRIBUTES_BY_TYPE",
    "ERROR_REASONS",
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "MAGIC_COOKIE",
    "MAX_FRAME_SIZE",
    "NOT_LOOKED_UP",
    "Address",
    "AddressErrorCode",
    "AlgorithmEntry",
    "Attr",
    "AttributeKey",
    "AttributeType",
    "BindConnection",
    "ChannelData",
    "Class",
    "Client",
    "ClosePeerConnection",
    "CloseRelay",
    "ConnectPeer",
    "Effect",
    "ErrorCode",
    "Icmp",
    "LookUpKey",
    "Message",
    "Method",
    "NotLookedUp",
    "OpenRelay",
    "ParseError",
    "PasswordAlgorithm",
    "PeerPolicy",
    "SendToClient",
    "SendToPeer",
    "StreamFramer",
    "TurnConfig",
    "TurnServer",
    "TurnStats",
    "long_term_key",
    "new_transaction_id",
    "parse_channel_data",
    "parse_datagram",
    "parse_message",
    "saslprep",
    "short_term_key",
    "unknown_comprehension_required",
    "userhash",
]
