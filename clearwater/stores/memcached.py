"""A memcached :class:`~clearwater.stores.interfaces.ICasStore` (spec §1.4, §3.2, §3.4).

Clearwater kept registrations (table ``reg``) and authentication challenges (table ``impi``)
in memcached through cpp-common's ``MemcachedStore``. This store speaks the memcached text
protocol with Twisted's :class:`~twisted.protocols.memcache.MemCacheProtocol` and keeps that
store's conventions, so a record is where Clearwater put it:

- **Keys**: key ``K`` of table ``T`` is ``T\\\\K`` (the table, two backslash characters, the key;
  cpp-common ``get_fq_key``), so ``get reg\\\\sip:alice@example.com`` on the wire returns the
  AoR JSON. The value is the record's bytes, flags 0.
- **Unsafe keys**: the text protocol forbids whitespace and control characters in keys and
  caps them at 250 bytes (Clearwater used the binary protocol, which did not care, and never
  hashed). A key that would break those rules, or that starts with ``sha256:``, is stored under
  ``T\\\\sha256:<hex SHA-256 of the UTF-8 key>`` instead; its value is then framed as
  ``<length of T\\\\K in bytes>:<T\\\\K><data>`` with flags 1, and a read checks the embedded key,
  so a collision is an error, never another key's data.
- **CAS** (spec §3.4): reads use ``gets``; a write with CAS 0 is an ``add`` that overwrites a
  tombstone if it meets one; any other CAS is a ``cas``. ``NOT_STORED``, ``EXISTS`` and
  ``NOT_FOUND`` are :class:`~clearwater.stores.interfaces.DataContentionError`.
- **Deletes** write a tombstone (an empty value) living ``tombstone_lifetime`` seconds (200, as
  Clearwater, so a resync or a racing writer sees the delete); 0 means a plain ``delete``.
  Reads treat an empty value as no record (CAS 0): storing ``b""`` therefore reads back absent.
- **Lifetimes**: memcached reads an expiry above 30 days as an absolute Unix time, so longer
  TTLs are sent as ``reactor.seconds() + ttl`` (the reactor must run on wall-clock time, which
  a real reactor does); a TTL of 0 or less expires the record at once (an absolute time in
  1970, as cpp-common did).
- **Size**: records larger than ``max_data_length`` are refused
  (:class:`~clearwater.stores.interfaces.StoreUnavailableError`) before anything is sent. The
  default, 1,000,000 bytes, fits memcached's default 1 MiB item limit; cpp-common refused
  anything over 64 KiB (``Store::MAX_DATA_LENGTH``, against flooding): pass 65536 for that.

One store talks to one memcached server. Clearwater spread keys over 128 vbuckets behind
Rogers, a proxy that hid the topology; for a cluster, point the store at such a proxy (or use
Redis). The
connection is made at construction and kept up by a reconnecting factory with exponential
back-off on the given reactor. Failures are bounded:

- while no connection is up and none is being attempted, an operation fails at once with
  :class:`~clearwater.stores.interfaces.StoreUnavailableError`;
- while a connection attempt is in progress, operations wait for it (at most ``max_pending``
  of them; more fail at once);
- every operation, waiting included, has ``timeout`` seconds on the reactor's clock; then it
  fails with :class:`~clearwater.stores.interfaces.StoreTimeoutError`. A connection that
  answers nothing for ``timeout`` seconds is dropped (and re-made), failing what was on it.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any, Optional, Protocol, Union, cast

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    fail,
    succeed,
)
from twisted.internet.defer import (
    TimeoutError as DeferTimeoutError,
)
from twisted.internet.interfaces import IAddress, IConnector, IReactorTCP, IReactorTime
from twisted.internet.protocol import ReconnectingClientFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.memcache import MemCacheProtocol
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)

__all__ = [
    "DEFAULT_PORT",
    "MAX_KEY_LENGTH",
    "MEMCACHED_EXPIRATION_MAXDELTA",
    "MemcachedCasStore",
    "MemcachedReactor",
    "memcached_key",
]

_log = Logger()

#: memcached's default port.
DEFAULT_PORT = 11211
#: The longest key the memcached text protocol accepts, in bytes.
MAX_KEY_LENGTH = 250
#: Expiry times above this (30 days) are absolute Unix times to memcached (REALTIME_MAXDELTA).
MEMCACHED_EXPIRATION_MAXDELTA = 60 * 60 * 24 * 30
#: The prefix of a hashed key (after ``table\\\\``).
_HASH_PREFIX = "sha256:"
#: memcached flags: 0 = the value is the record; 1 = the value is framed with its full key.
_FLAG_HASHED_KEY = 1
#: How often a CAS-0 write may meet a tombstone or a just-expired record before it gives up.
_ADD_ROUNDS = 4


class MemcachedReactor(IReactorTCP, IReactorTime):
    """What the store needs from the reactor: TCP connections and timers."""


def _safe_key(fq: bytes) -> bool:
    return len(fq) <= MAX_KEY_LENGTH and all(b > 0x20 and b != 0x7F for b in fq)


def memcached_key(table: str, key: str) -> tuple[bytes, bool]:
    """The memcached key of ``key`` in ``table``: ``(wire key, hashed)``.

    ``table\\\\key`` in UTF-8 when that is a valid text-protocol key (at most 250 bytes, no
    whitespace or control characters) and ``key`` does not start with ``sha256:``; otherwise
    ``table\\\\sha256:<hex SHA-256 of key in UTF-8>``. ``table`` itself must be a valid key
    without backslashes (ValueError otherwise).
    """
    table_bytes = table.encode("utf-8", "surrogatepass")
    if not table_bytes or b"\\" in table_bytes or not _safe_key(table_bytes):
        raise ValueError("Bad memcached table name: " + repr(table))
    key_bytes = key.encode("utf-8", "surrogatepass")
    fq = table_bytes + b"\\\\" + key_bytes
    if _safe_key(fq) and not key.startswith(_HASH_PREFIX):
        return fq, False
    digest = hashlib.sha256(key_bytes).hexdigest()
    return table_bytes + b"\\\\" + (_HASH_PREFIX + digest).encode("ascii"), True


def _full_key(table: str, key: str) -> bytes:
    return table.encode("utf-8", "surrogatepass") + b"\\\\" + key.encode("utf-8", "surrogatepass")


class _Memcache(Protocol):
    """The typed face of :class:`MemCacheProtocol` (whose methods carry no annotations)."""

    def get(self, key: bytes, withIdentifier: bool = ...) -> Deferred[Any]: ...  # noqa: N803

    def add(
        self,
        key: bytes,
        val: bytes,
        flags: int = ...,
        expireTime: int = ...,  # noqa: N803
    ) -> Deferred[bool]: ...

    def set(
        self,
        key: bytes,
        val: bytes,
        flags: int = ...,
        expireTime: int = ...,  # noqa: N803
    ) -> Deferred[bool]: ...

    def checkAndSet(  # noqa: N802
        self,
        key: bytes,
        val: bytes,
        cas: bytes,
        flags: int = ...,
        expireTime: int = ...,  # noqa: N803
    ) -> Deferred[bool]: ...

    def delete(self, key: bytes) -> Deferred[bool]: ...


class _State(enum.Enum):
    DISCONNECTED = "disconnected"  # waiting for the back-off delay; operations fail at once
    CONNECTING = "connecting"  # an attempt is in progress; operations wait for it
    CONNECTED = "connected"
    CLOSED = "closed"


class _Client(MemCacheProtocol):
    """One connection: MemCacheProtocol on the store's clock, reporting up and down."""

    def __init__(self, store: MemcachedCasStore, timeout: float) -> None:
        # MemCacheProtocol's __init__ is unannotated; it only sets up its buffers and timeout.
        super().__init__(timeOut=timeout)  # type: ignore[no-untyped-call]
        self._store = store
        self.lost: Deferred[None] = Deferred()

    @override
    def callLater(self, period: float, func: Any) -> Any:
        """TimeoutMixin's timer, on the injected reactor instead of the global one."""
        return self._store._reactor.callLater(period, func)

    @override
    def connectionMade(self) -> None:
        self._store._connected(self)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # MemCacheProtocol fails the commands in flight with ``reason``.
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # unannotated in Twisted
        # MemCacheProtocol leaves its response timer running (TimeoutMixin is unannotated).
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._store._disconnected(self, reason)
        self.lost.callback(None)

    def pending(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._current)


class _Factory(ReconnectingClientFactory):
    """Reconnects with exponential back-off on the store's reactor and tells the store."""

    noisy = False

    def __init__(self, store: MemcachedCasStore, initial_delay: float, max_delay: float) -> None:
        self._store = store
        self.initialDelay = self.delay = initial_delay
        self.maxDelay = max_delay  # type: ignore[assignment]  # Twisted declares it an int
        self.clock = store._reactor  # type: ignore[assignment]  # Twisted's narrower union

    @override
    def startedConnecting(self, connector: IConnector) -> None:
        self._store._connecting()

    @override
    def buildProtocol(self, addr: Optional[IAddress]) -> _Client:
        self.resetDelay()  # type: ignore[no-untyped-call]  # unannotated in Twisted
        client = _Client(self._store, self._store.timeout)
        client.factory = self
        return client

    @override
    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self._store._connect_failed(reason)
        super().clientConnectionFailed(connector, reason)  # type: ignore[no-untyped-call]  # as above


def _error(failure: Failure, what: str) -> Failure:
    """Map a memcached client failure to the store's errors."""
    error = failure.value
    if isinstance(error, (StoreError, CancelledError)):
        return failure
    if isinstance(error, DeferTimeoutError):
        raise StoreTimeoutError(what + ": no answer from memcached")
    raise StoreUnavailableError(what + ": " + failure.getErrorMessage())


@implementer(ICasStore)
class MemcachedCasStore:
    """Clearwater's memcached store (cpp-common ``MemcachedStore``) over one server.

    :param reactor: the reactor to connect with and time on (its ``seconds()`` must be wall
        clock time for TTLs above 30 days).
    :param host: the memcached server (or a memcached proxy such as Rogers).
    :param timeout: seconds each operation may take, waiting for a connection included.
    :param tombstone_lifetime: seconds a delete's tombstone lives (0: plain delete).
    :param max_data_length: the largest record accepted, in bytes (Clearwater: 65536).
    :param max_pending: operations that may be in flight (or waiting for a connection).
    :param retry_initial_delay: back-off before the first reconnection attempt (seconds).
    :param retry_max_delay: the longest back-off between attempts (seconds).
    """

    def __init__(
        self,
        reactor: MemcachedReactor,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        timeout: float = 1.0,
        tombstone_lifetime: int = 200,
        max_data_length: int = 1_000_000,
        max_pending: int = 1000,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tombstone_lifetime = tombstone_lifetime
        self.max_data_length = max_data_length
        self.max_pending = max_pending
        self._state = _State.CONNECTING
        self._client: Optional[_Client] = None
        self._waiters: list[Deferred[_Client]] = []
        self._factory = _Factory(self, retry_initial_delay, retry_max_delay)
        self._factory.connector = reactor.connectTCP(host, port, self._factory, timeout=timeout)

    @property
    def address(self) -> str:
        return self.host + ":" + str(self.port)

    @property
    def connected(self) -> bool:
        """Whether a connection to the server is up now."""
        return self._state is _State.CONNECTED

    # ---- ICasStore

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        """``(data, cas)`` from ``gets``; ``(None, 0)`` for no record or a tombstone."""
        wire, hashed = memcached_key(table, key)
        return self._run(self._get(wire, hashed, _full_key(table, key)), "get " + table)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        """``add`` (CAS 0, overwriting a tombstone) or ``cas``; DataContentionError on a lost
        race."""
        if len(data) > self.max_data_length:
            return fail(
                StoreUnavailableError(
                    "Record of "
                    + str(len(data))
                    + " bytes is over the "
                    + str(self.max_data_length)
                    + "-byte limit"
                )
            )
        wire, hashed = memcached_key(table, key)
        value = data
        flags = 0
        if hashed:
            full = _full_key(table, key)
            value = str(len(full)).encode("ascii") + b":" + full + data
            flags = _FLAG_HASHED_KEY
        return self._run(self._set(wire, value, flags, cas, self._expiry(ttl)), "set " + table)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        """A tombstone (or a ``delete`` when ``tombstone_lifetime`` is 0)."""
        wire, _ = memcached_key(table, key)
        return self._run(self._delete(wire), "delete " + table)

    def close(self) -> Deferred[None]:
        """Stop reconnecting, fail waiting operations, and drop the connection."""
        if self._state is _State.CLOSED:
            return succeed(None)
        self._state = _State.CLOSED
        self._factory.stopTrying()  # type: ignore[no-untyped-call]  # unannotated in Twisted
        self._fail_waiters(StoreUnavailableError("memcached store closed"))
        client = self._client
        self._client = None
        if client is None or client.transport is None:
            return succeed(None)
        client.transport.loseConnection()
        return client.lost

    # ---- operations

    def _expiry(self, ttl: int) -> int:
        """memcached's exptime for a lifetime of ``ttl`` seconds."""
        ttl = int(ttl)
        if ttl <= 0:
            return MEMCACHED_EXPIRATION_MAXDELTA + 1  # an absolute time long past: expire now
        if ttl > MEMCACHED_EXPIRATION_MAXDELTA:
            return int(self._reactor.seconds()) + ttl
        return ttl

    async def _get(self, wire: bytes, hashed: bool, full: bytes) -> tuple[Optional[bytes], int]:
        client = await self._connection()
        flags, cas, value = await cast(_Memcache, client).get(wire, withIdentifier=True)
        if not value:  # None: no record; b"": a tombstone
            return None, 0
        token = int(cas)
        if not hashed:
            return value, token
        if not flags & _FLAG_HASHED_KEY:
            raise StoreError("memcached record at hashed key " + wire.decode() + " is not framed")
        length, sep, rest = value.partition(b":")
        if not sep or not length.isdigit() or rest[: int(length)] != full:
            raise StoreError("memcached hashed key collision at " + wire.decode())
        return rest[int(length) :], token

    async def _set(self, wire: bytes, value: bytes, flags: int, cas: int, exptime: int) -> None:
        client = cast(_Memcache, await self._connection())
        if cas:
            stored = await client.checkAndSet(wire, value, b"%d" % cas, flags, exptime)
            if not stored:
                raise DataContentionError("CAS mismatch on " + wire.decode(errors="replace"))
            return
        # CAS 0: add, overwriting a tombstone (cpp-common add_overwriting_tombstone).
        tombstone_cas = 0
        for _ in range(_ADD_ROUNDS):
            if tombstone_cas:
                tombstone = b"%d" % tombstone_cas
                stored = await client.checkAndSet(wire, value, tombstone, flags, exptime)
            else:
                stored = await client.add(wire, value, flags, exptime)
            if stored:
                return
            _, found_cas, found = await client.get(wire, withIdentifier=True)
            if found:
                break  # real data: the add lost
            # A tombstone: overwrite it by CAS. None: it expired meanwhile; add again.
            tombstone_cas = int(found_cas) if found is not None else 0
        raise DataContentionError("Record exists at " + wire.decode(errors="replace"))

    async def _delete(self, wire: bytes) -> None:
        client = cast(_Memcache, await self._connection())
        if self.tombstone_lifetime > 0:
            await client.set(wire, b"", 0, self._expiry(self.tombstone_lifetime))
        else:
            await client.delete(wire)

    def _run(self, coroutine: Any, what: str) -> Deferred[Any]:
        """Drive an operation with the store's timeout and error mapping."""
        d: Deferred[Any] = Deferred.fromCoroutine(coroutine)
        d.addErrback(_error, what)

        def timed_out(result: Union[Any, Failure], timeout: float) -> Any:
            if isinstance(result, Failure):
                raise StoreTimeoutError(
                    what + ": no answer from memcached at " + self.address + " within "
                    + str(timeout) + " s"
                )  # fmt: skip
            return result

        d.addTimeout(self.timeout, self._reactor, onTimeoutCancel=timed_out)
        return d

    # ---- connection state

    def _connection(self) -> Deferred[_Client]:
        """The connected client; waits (bounded) for an attempt in progress; fails otherwise."""
        if self._state is _State.CONNECTED and self._client is not None:
            if self._client.pending() >= self.max_pending:
                return fail(
                    StoreUnavailableError(
                        "Too many memcached requests in flight to " + self.address
                    )
                )
            return succeed(self._client)
        if self._state is _State.CONNECTING and len(self._waiters) < self.max_pending:

            def cancel(d: Deferred[_Client]) -> None:
                if d in self._waiters:
                    self._waiters.remove(d)

            waiter: Deferred[_Client] = Deferred(cancel)
            self._waiters.append(waiter)
            return waiter
        if self._state is _State.CLOSED:
            return fail(StoreUnavailableError("memcached store closed"))
        if self._state is _State.CONNECTING:
            return fail(
                StoreUnavailableError("Too many requests waiting for memcached at " + self.address)
            )
        return fail(StoreUnavailableError("Not connected to memcached at " + self.address))

    def _fail_waiters(self, error: StoreError) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def _connecting(self) -> None:
        if self._state is not _State.CLOSED:
            self._state = _State.CONNECTING

    def _connected(self, client: _Client) -> None:
        if self._state is _State.CLOSED:
            if client.transport is not None:
                client.transport.loseConnection()
            return
        _log.info("Connected to memcached at {address}", address=self.address)
        self._state = _State.CONNECTED
        self._client = client
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(client)

    def _disconnected(self, client: _Client, reason: Failure) -> None:
        if self._client is client:
            self._client = None
        if self._state is _State.CLOSED:
            return
        _log.warn(
            "Lost memcached at {address}: {reason}",
            address=self.address,
            reason=reason.getErrorMessage(),
        )
        self._state = _State.DISCONNECTED

    def _connect_failed(self, reason: Failure) -> None:
        if self._state is _State.CLOSED:
            return
        _log.warn(
            "Cannot connect to memcached at {address}: {reason}",
            address=self.address,
            reason=reason.getErrorMessage(),
        )
        self._state = _State.DISCONNECTED
        self._fail_waiters(
            StoreUnavailableError(
                "Cannot connect to memcached at " + self.address + ": " + reason.getErrorMessage()
            )
        )
