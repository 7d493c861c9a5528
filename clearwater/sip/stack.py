"""The SIP stack controller: transport layer + transaction layer + resolver, for one TU.

RFC 3261 §5 layers the protocol as syntax, transport, transaction and transaction user (TU).
:class:`SipStack` builds the transport layer (:class:`~clearwater.sip.transport.TransportLayer`,
§18) and the transaction layer (:class:`~clearwater.sip.transaction.layer.TransactionLayer`,
§17) and wires them to one TU: a UA core (:class:`clearwater.sip.ua.UserAgent`) or, later, a
proxy core. The RFC 3263 resolver turns next-hop URIs into transport targets.
"""

from __future__ import annotations

from typing import Optional, Union

from twisted.internet.defer import Deferred

from clearwater._types import ISipReactor
from clearwater.sip.resolver import SipResolver
from clearwater.sip.transaction.layer import TransactionLayer, TransactionUser
from clearwater.sip.transaction.timers import TimerSettings
from clearwater.sip.transport._layer import ListenSpec, TransportLayer, TransportSettings

__all__ = ["SipStack"]


class SipStack:
    """Transports, transactions and next-hop resolution for one transaction user."""

    def __init__(
        self,
        reactor: ISipReactor,
        tu: TransactionUser,
        *,
        resolver: SipResolver,
        transport_settings: Optional[TransportSettings] = None,
        timer_settings: Optional[TimerSettings] = None,
        send_trying: bool = True,
    ) -> None:
        self.reactor = reactor
        self.resolver = resolver
        self.transport = TransportLayer(reactor, None, transport_settings)
        self.transactions = TransactionLayer(
            reactor, self.transport, tu, timer_settings, send_trying=send_trying
        )
        self.transport.receiver = self.transactions

    def listen(self, spec: Union[ListenSpec, str]) -> ListenSpec:
        """Listen on ``transport:host:port``; returns the bound address (port 0 resolved)."""
        return self.transport.listen(spec)

    def stop(self) -> Deferred[None]:
        """Stop listening, close every connection and drop every transaction."""
        self.transactions.stop()
        return self.transport.stop()
