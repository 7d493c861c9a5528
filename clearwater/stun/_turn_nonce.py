"""Stateless NONCE values for long-term credentials (RFC 8489 §9.2.3, §9.2.4).

A nonce is 12 hex digits of its expiry time (whole seconds on the caller's clock) and 32 hex
digits of HMAC-SHA256(secret, expiry, client IP) truncated to 128 bits. The server keeps no
table: it checks a nonce by recomputing it. Binding it to the client's IP address (not the
port) keeps a nonce from being used from elsewhere while letting an RFC 6062 client use the
same nonce on its data connections, which come from other ports.

Nonces do not start with the RFC 8489 §9.2 "nonce cookie", so clients use the RFC 5389
procedures: MESSAGE-INTEGRITY with MD5 keys, no PASSWORD-ALGORITHMS and no USERHASH.
"""

from __future__ import annotations

import hashlib
import hmac
import math

__all__ = ["NonceMint"]

_EXPIRY_DIGITS = 12
_MAC_DIGITS = 32
_NONCE_SIZE = _EXPIRY_DIGITS + _MAC_DIGITS
_HEX = frozenset("0123456789abcdef")


class NonceMint:
    """Makes and checks nonces with one secret."""

    def __init__(self, secret: bytes, lifetime: int) -> None:
        self._secret = secret
        self._lifetime = lifetime

    def _make(self, expiry: int, host: str) -> str:
        stamp = f"{expiry:0{_EXPIRY_DIGITS}x}"
        mac = hmac.new(self._secret, f"{stamp}|{host}".encode(), hashlib.sha256).hexdigest()
        return stamp + mac[:_MAC_DIGITS]

    def new(self, host: str, now: float) -> str:
        """A nonce for a client at IP ``host``, good until ``now`` + the lifetime."""
        return self._make(max(0, math.floor(now) + self._lifetime), host)

    def valid(self, nonce: str, host: str, now: float) -> bool:
        """``True`` if this server made ``nonce`` for ``host`` and it has not expired."""
        if len(nonce) != _NONCE_SIZE or not _HEX.issuperset(nonce):
            return False
        expiry = int(nonce[:_EXPIRY_DIGITS], 16)
        if now >= expiry:
            return False
        return hmac.compare_digest(self._make(expiry, host), nonce)
