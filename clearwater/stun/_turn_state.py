"""The mutable records behind :class:`~clearwater.stun.TurnServer` and its one timer heap.

- :class:`Reply` is what a response needs from its request once authentication is done:
  method, transaction id, FINGERPRINT wanted, the key and which MESSAGE-INTEGRITY to use.
  Allocations and RFC 6062 Connect requests keep one to answer later.
- :class:`Allocation` (RFC 8656 §6): the 5-tuple's client, credentials, relay, lifetime,
  permissions (peer IP -> expiry, §9), channels (§12) and the channel numbers in their five
  minutes of quarantine, the bandwidth bucket and the RFC 6062 connections.
- :class:`PeerConnection` (RFC 6062): a peer TCP connection and its state.
- :class:`Timers`: a heap of ``(deadline, seq, kind, owner, key)``. Entries are never removed
  when what they time is refreshed or deleted; the caller's ``valid`` check skips stale ones
  as they surface, and the heap is rebuilt from its valid entries whenever it has doubled
  since the last rebuild, so it stays within twice what is live (plus a constant) at an
  amortised O(1) per push.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Iterator
from typing import Any, Callable, Optional

from clearwater.stun._attributes import Address
from clearwater.stun._turn_model import Client

__all__ = [
    "Allocation",
    "Channel",
    "ConnectionState",
    "Kind",
    "PeerConnection",
    "Reply",
    "Timers",
]


class Kind(enum.IntEnum):
    """What a timer entry times."""

    ALLOCATION = 0  # owner: allocation id; its lifetime, or the wait for relay_opened()
    PERMISSION = 1  # owner: allocation id; key: peer IP
    CHANNEL = 2  # owner: allocation id; key: channel number
    QUARANTINE = 3  # owner: allocation id; key: channel number
    CONNECTION = 4  # owner: connection id; the 30 s wait for ConnectionBind (RFC 6062)


class Reply:
    """How to answer a request: its method and transaction id, FINGERPRINT or not, and the
    long-term key (``None`` before authentication) with SHA-256 or SHA-1 integrity."""

    __slots__ = ("fingerprint", "key", "method", "sha256", "transaction_id", "username")

    def __init__(
        self,
        method: int,
        transaction_id: bytes,
        fingerprint: bool,
        key: Optional[bytes] = None,
        sha256: bool = False,
        username: str = "",
    ) -> None:
        self.method = method
        self.transaction_id = transaction_id
        self.fingerprint = fingerprint
        self.key = key
        self.sha256 = sha256
        self.username = username


class Channel:
    """A channel binding (RFC 8656 §12): number, peer transport address, expiry."""

    __slots__ = ("expires", "number", "peer")

    def __init__(self, number: int, peer: Address, expires: float) -> None:
        self.number = number
        self.peer = peer
        self.expires = expires


class Allocation:
    """One allocation (RFC 8656 §6), pending until the shell reports its relay open."""

    __slots__ = (
        "active",
        "channel_by_peer",
        "channels",
        "client",
        "connections",
        "expires",
        "extra",
        "family",
        "fingerprint",
        "id",
        "key",
        "lifetime",
        "permissions",
        "quarantine",
        "quarantine_by_peer",
        "relayed",
        "reply",
        "response",
        "stamp",
        "tokens",
        "transport",
        "username",
    )

    def __init__(
        self,
        allocation_id: int,
        client: Client,
        reply: Reply,
        family: int,
        transport: str,
        lifetime: int,
        expires: float,
        tokens: float,
        now: float,
    ) -> None:
        self.id = allocation_id
        self.client = client
        self.reply = reply
        self.username = reply.username
        self.key = reply.key
        self.fingerprint = reply.fingerprint
        self.family = family
        self.transport = transport
        self.lifetime = lifetime
        self.expires = expires
        self.active = False
        self.relayed: Optional[Address] = None
        #: The Allocate success response, sent again for a retransmitted request.
        self.response: Optional[bytes] = None
        #: Attributes to add to the success response (ADDRESS-ERROR-CODE).
        self.extra: list[tuple[Any, Any]] = []
        self.permissions: dict[str, float] = {}
        self.channels: dict[int, Channel] = {}
        self.channel_by_peer: dict[Address, Channel] = {}
        self.quarantine: dict[int, tuple[Address, float]] = {}
        self.quarantine_by_peer: dict[Address, int] = {}
        self.tokens = tokens
        self.stamp = now
        self.connections: set[int] = set()


class ConnectionState(enum.Enum):
    """Where an RFC 6062 peer connection is."""

    CONNECTING = "connecting"  # ConnectPeer sent, waiting for peer_connected()
    WAITING_BIND = "waiting for ConnectionBind"  # 30 s (RFC 6062 §5.2, §5.3)
    BOUND = "bound"  # spliced to a client data connection


class PeerConnection:
    """An RFC 6062 peer connection of a TCP allocation."""

    __slots__ = ("allocation", "client", "expires", "id", "peer", "reply", "state")

    def __init__(
        self,
        connection_id: int,
        allocation: int,
        peer: Address,
        state: ConnectionState,
        expires: float,
        reply: Optional[Reply],
    ) -> None:
        self.id = connection_id
        self.allocation = allocation
        self.peer = peer
        self.state = state
        self.expires = expires
        self.reply = reply
        self.client: Optional[Client] = None


Entry = tuple[float, int, Kind, int, object]

_MIN_COMPACT = 1024


class Timers:
    """One heap of deadlines with lazy deletion (see the module docstring)."""

    def __init__(self, valid: Callable[[Entry], bool]) -> None:
        self._valid = valid
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        self._compact_at = _MIN_COMPACT

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, kind: Kind, owner: int, key: object = None) -> None:
        """Time ``(kind, owner, key)`` to ``deadline``."""
        heapq.heappush(self._heap, (deadline, next(self._seq), kind, owner, key))
        if len(self._heap) > self._compact_at:
            self._heap = [entry for entry in self._heap if self._valid(entry)]
            heapq.heapify(self._heap)
            self._compact_at = max(_MIN_COMPACT, 2 * len(self._heap))

    def next_deadline(self) -> Optional[float]:
        """The earliest valid deadline, dropping stale entries on the way."""
        heap = self._heap
        while heap:
            if self._valid(heap[0]):
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def due(self, now: float) -> Iterator[Entry]:
        """Pop and yield the valid entries due at ``now``, earliest first. The caller may push
        while iterating; entries it pushes that are due are yielded too."""
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._valid(entry):
                yield entry
