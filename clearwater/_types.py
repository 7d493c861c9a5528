"""Reactor interface unions: what a component needs from the reactor, and nothing more.

Library code takes the reactor as an argument typed with one of these (STYLE.md §1.3, treq's
pattern), so tests pass ``task.Clock`` or :class:`clearwater.testing.SipMemoryReactor` and nothing
imports the global reactor at module level.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorSSL, IReactorTCP, IReactorTime, IReactorUDP

__all__ = ["ISipReactor"]


class ISipReactor(IReactorTCP, IReactorUDP, IReactorSSL, IReactorTime):
    """A reactor that can run SIP over UDP, TCP, TLS and WebSocket, with timers."""
