"""Redis back ends of the store interfaces (ARCHITECTURE.md §3; spec §1.4, §3.4, §3.5, §6.3, §6.6).

The cluster engine is Redis (one ``redis-server`` in tests, Sentinel or Cluster in production);
this is the only module that imports txredisapi. Three stores, each over a :class:`RedisClient`:

- :class:`RedisCasStore` (:class:`ICasStore`): Clearwater's ``Store`` with memcached's key layout,
  ``<table>\\\\<key>`` (``reg\\\\sip:alice@example.com``), each key a hash ``{data, cas}`` with a
  TTL. The CAS token comes from one counter (``INCR``), so a token is never reused even across a
  delete and re-create, as with memcached's CAS unique. The compare-and-set is a Lua script:
  scripts run atomically and hold no connection state, so one pipelined connection serves every
  concurrent caller; WATCH/MULTI would need a connection per in-flight transaction, since WATCH
  state belongs to the connection.
- :class:`RedisSubscriberStore` (:class:`ISubscriberStore`): homestead-prov's model in hashes,
  sets and sorted sets; every multi-key change (cascade deletes, moving a public identity) is
  one Lua script, so it is atomic and persisted as a unit in the append-only file.
  ``list_publics`` pages with ``ZRANGEBYLEX`` over a sorted set of all IMPUs.
- :class:`RedisTimerService` (:class:`ITimerService`, Chronos' job): timers are hashes with one
  sorted set per kind of due times. Each node polls and *claims* due timers with a Lua script
  that moves them to an in-flight sorted set scored by the end of a lease (the redelivery delay)
  and stamps the record with a lease token. A handler that succeeds acknowledges with that token
  (the timer is rescheduled for its next pop or deleted); one that fails, times out, or whose
  node dies leaves the lease to run out, and the next poll on any node claims it again. Each pop
  is delivered to exactly one node while handlers finish within the lease; at least once always.
  Due times use the Redis server's clock (``TIME`` in scripts), so nodes need not agree on time.

Connections: :class:`RedisClient` connects on demand on the injected reactor and reconnects the
same way after a loss (commands fail while the server is away and succeed again once it is
back). Every command, the connection set-up included, has a deadline: no answer in time gives
:class:`StoreTimeoutError` and drops the connection (the commands queued behind fail at once,
and the next command connects afresh); a refused or lost connection gives
:class:`StoreUnavailableError`. txredisapi supplies the RESP protocol only; its connection
pool, which uses the global reactor, is not used.

Keys are built inside the scripts from a prefix, so the scripts suit one Redis server (or a
Sentinel-managed primary), not Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any, Optional, Union

import txredisapi
from twisted.internet import defer, error, protocol
from twisted.internet.abstract import isIPAddress
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    ISubscriberStore,
    ITimerService,
    NotFoundError,
    StoreTimeoutError,
    StoreUnavailableError,
    TimerHandler,
)
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "IRedisReactor",
    "RedisCasStore",
    "RedisClient",
    "RedisReplyError",
    "RedisSubscriberStore",
    "RedisTimerService",
    "Script",
    "connect",
]

_log = Logger()

#: Seconds a command (with the connection set-up it may need) may take.
DEFAULT_TIMEOUT = 2.0

Arg = Union[str, bytes, int, float]


class IRedisReactor(IReactorTCP, IReactorTime):
    """What the Redis client needs: TCP connections and timers."""


class RedisReplyError(StoreUnavailableError):
    """Redis answered a command with an error (``-ERR ...``, ``-WRONGTYPE ...``, ...)."""

    def __init__(self, reply: str) -> None:
        super().__init__("Redis error: " + reply)
        self.reply = reply


class Script:
    """A Lua script, run with ``EVALSHA`` (``EVAL`` once when the server does not know it)."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()


class _Factory(protocol.ClientFactory):
    """Builds txredisapi's RESP protocol on our reactor, without its pool.

    txredisapi's protocol calls ``factory.stopTrying``, ``factory.connectionError`` and reads
    ``factory.isLazy`` when AUTH or SELECT fail at connection time.
    """

    isLazy = False  # noqa: N815 (txredisapi's attribute name)

    def __init__(self, reactor: IReactorTime, db: int, password: Optional[str]) -> None:
        self._reactor = reactor
        self._db = db
        self._password = password
        self.error: Optional[str] = None

    @override
    def buildProtocol(self, addr: Optional[IAddress]) -> Any:
        p = txredisapi.RedisProtocol(
            charset=None,
            replyTimeout=None,
            password=self._password,
            dbid=self._db or None,
            convertNumbers=False,
        )
        p.factory = self
        # The protocol's line reader schedules leftover bytes with the global reactor's
        # callLater (a class attribute); use ours.
        p.callLater = self._reactor.callLater
        return p

    def stopTrying(self) -> None:  # noqa: N802 (txredisapi's hook name)
        pass

    def connectionError(self, why: str) -> None:  # noqa: N802 (txredisapi's hook name)
        self.error = why


class RedisClient:
    """One pipelined connection to a Redis server, opened on demand, with a deadline on every
    command (the typed layer over txredisapi's protocol).

    After a failed connection attempt, commands fail at once with the same error for
    ``retry_delay`` seconds before the next attempt, so a server that is down is not hammered.
    """

    def __init__(
        self,
        reactor: IRedisReactor,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        password: Optional[str] = None,
        retry_delay: float = 0.2,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.db = db
        self.timeout = timeout
        self.retry_delay = retry_delay
        self._reactor = reactor
        self._password = password
        self._protocol: Any = None
        self._connecting: Optional[Deferred[Any]] = None
        self._waiters: list[Deferred[Any]] = []
        self._last_error: Optional[StoreUnavailableError] = None
        self._down_until = 0.0
        self._closed = False

    @property
    def address(self) -> str:
        return self.host + ":" + str(self.port)

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    # -- commands

    def execute(self, *args: Arg) -> Deferred[Any]:
        """Run one command; its reply (bytes, int, str status, None, or a list of them).

        StoreTimeoutError without an answer within ``timeout``; StoreUnavailableError when the
        connection is refused or lost; RedisReplyError for an error reply.
        """
        sent: list[Any] = []
        return self._deadline(Deferred.fromCoroutine(self._execute(args, sent)), args, sent)

    def run(
        self, script: Script, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()
    ) -> Deferred[Any]:
        """Run a Lua script by its SHA1, loading it with EVAL when the server lacks it (first
        use, or after a restart)."""
        sent: list[Any] = []
        d = Deferred.fromCoroutine(self._run(script, keys, args, sent))
        return self._deadline(d, ("EVALSHA",), sent)

    async def _run(
        self, script: Script, keys: Sequence[Arg], args: Sequence[Arg], sent: list[Any]
    ) -> Any:
        tail = (len(keys), *keys, *args)
        try:
            return await self._execute(("EVALSHA", script.sha, *tail), sent)
        except RedisReplyError as e:
            if not e.reply.startswith("NOSCRIPT"):
                raise
        return await self._execute(("EVAL", script.source, *tail), sent)

    async def _execute(self, args: Sequence[Arg], sent: list[Any]) -> Any:
        p = await self._connection()
        sent.append(p)
        try:
            reply = await p.execute_command(*args)
        except txredisapi.TimeoutError as e:  # not raised: replyTimeout is off; for safety
            raise StoreTimeoutError("Redis at " + self.address + ": " + str(e)) from None
        except txredisapi.ResponseError as e:
            raise RedisReplyError(str(e)) from None
        except (txredisapi.ConnectionError, error.ConnectionDone, error.ConnectionLost) as e:
            raise StoreUnavailableError(
                "Redis at " + self.address + ": connection lost (" + str(e) + ")"
            ) from None
        except txredisapi.RedisError as e:
            raise StoreUnavailableError("Redis at " + self.address + ": " + str(e)) from None
        return reply

    def _deadline(self, d: Deferred[Any], args: Sequence[Arg], sent: list[Any]) -> Deferred[Any]:
        def timed_out(result: object, timeout: float) -> None:
            # A server that does not answer one command will not answer those behind it
            # either: drop the connection so that they fail now, and the next command opens a
            # new one (a silent network partition would otherwise keep this one forever).
            if sent:
                self._drop(sent[-1])
            name = args[0] if args and isinstance(args[0], str) else "command"
            raise StoreTimeoutError(
                "Redis at "
                + self.address
                + " did not answer "
                + str(name)
                + " within "
                + format(timeout, "g")
                + " s"
            )

        d.addTimeout(self.timeout, self._reactor, onTimeoutCancel=timed_out)
        return d

    # -- connection

    def _connection(self) -> Deferred[Any]:
        if self._closed:
            return defer.fail(StoreUnavailableError("Redis client for " + self.address + " closed"))
        if self._protocol is not None:
            return defer.succeed(self._protocol)
        if self._last_error is not None and self._reactor.seconds() < self._down_until:
            return defer.fail(self._last_error)
        waiter: Deferred[Any] = Deferred(self._forget)
        self._waiters.append(waiter)
        if self._connecting is None:
            self._connect()
        return waiter

    def _forget(self, waiter: Deferred[Any]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _endpoint(self) -> IStreamClientEndpoint:
        timeout = max(1, int(self.timeout + 0.999))
        if not isIPAddress(self.host) and IReactorPluggableNameResolver.providedBy(self._reactor):
            return HostnameEndpoint(self._reactor, self.host, self.port, timeout=timeout)
        return TCP4ClientEndpoint(self._reactor, self.host, self.port, timeout=timeout)

    def _connect(self) -> None:
        factory = _Factory(self._reactor, self.db, self._password)
        attempt: Deferred[Any] = Deferred.fromCoroutine(self._open(factory))

        def timed_out(result: object, timeout: float) -> None:
            raise StoreTimeoutError(
                "no connection to Redis at "
                + self.address
                + " within "
                + format(timeout, "g")
                + " s"
            )

        attempt.addTimeout(self.timeout, self._reactor, onTimeoutCancel=timed_out)
        attempt.addCallbacks(self._connected, self._failed)
        self._connecting = attempt

    async def _open(self, factory: _Factory) -> Any:
        p: Any = await self._endpoint().connect(factory)
        # Ready once AUTH and SELECT are done; txredisapi's own Deferreds must not be
        # cancelled (it fires them later regardless), so a separate one waits for either.
        outcome: Deferred[bool] = Deferred()

        def settle(ready: bool) -> None:
            if not outcome.called:
                outcome.callback(ready)

        p.whenConnected().addCallback(lambda _: settle(True))
        p.whenDisconnected().addCallback(lambda _: settle(False))
        if not p.connected:
            settle(False)
        try:
            ready = await outcome
        except defer.CancelledError:
            p.transport.abortConnection()
            raise
        if not ready or not p.connected:
            raise StoreUnavailableError(
                "Redis at "
                + self.address
                + " closed the connection"
                + (": " + factory.error if factory.error else "")
            )
        return p

    def _connected(self, p: Any) -> None:
        self._connecting = None
        self._last_error = None
        if self._closed:
            p.transport.loseConnection()
            return
        self._protocol = p
        p.whenDisconnected().addCallback(self._lost)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(p)

    def _failed(self, failure: Failure) -> None:
        self._connecting = None
        e = failure.value
        if isinstance(e, StoreUnavailableError):
            problem = e
        elif isinstance(e, error.ConnectionRefusedError):
            problem = StoreUnavailableError("Redis at " + self.address + " refused the connection")
        elif isinstance(e, (error.TimeoutError, defer.CancelledError)):
            problem = StoreTimeoutError("no connection to Redis at " + self.address + " in time")
        else:
            problem = StoreUnavailableError(
                "cannot connect to Redis at " + self.address + ": " + str(e)
            )
        self._last_error = problem
        self._down_until = self._reactor.seconds() + self.retry_delay
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(problem)

    def _lost(self, p: Any) -> None:
        if self._protocol is p:
            self._protocol = None

    def _drop(self, p: Any) -> None:
        if self._protocol is p:
            self._protocol = None
        if p.transport is not None:
            p.transport.abortConnection()

    def close(self) -> Deferred[None]:
        """Close the connection (waiting until it is closed); later commands fail."""
        self._closed = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(StoreUnavailableError("Redis client for " + self.address + " closed"))
        if self._connecting is not None:
            self._connecting.cancel()
        p, self._protocol = self._protocol, None
        if p is None or p.transport is None or not p.connected:
            return defer.succeed(None)
        done: Deferred[None] = p.whenDisconnected().addCallback(lambda _: None)
        p.transport.abortConnection()
        return done


def connect(
    reactor: IRedisReactor,
    host: str = "127.0.0.1",
    port: int = 6379,
    db: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    password: Optional[str] = None,
) -> RedisClient:
    """A :class:`RedisClient` for ``host:port``, database ``db``; it connects on first use."""
    return RedisClient(reactor, host, port, db, timeout, password)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(_text(value))


def _not_found(e: RedisReplyError, names: dict[str, str]) -> Exception:
    """A script's ``NOTFOUND <what>`` error reply as NotFoundError naming the thing."""
    if e.reply.startswith("NOTFOUND "):
        # error() in a script gets " script: <sha>, on @user_script:<line>." appended
        what = (e.reply[len("NOTFOUND ") :].split() or ["?"])[0]
        return NotFoundError(names.get(what, what))
    return e


# --------------------------------------------------------------------------- CAS store


_CAS_SET = Script(
    """
local current = redis.call('HGET', KEYS[1], 'cas')
if ARGV[2] == '0' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
local cas = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'cas', cas)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return cas
"""
)


@implementer(ICasStore)
class RedisCasStore:
    """Clearwater's Store on Redis: key ``<prefix><table>\\\\<key>`` holds ``{data, cas}``."""

    def __init__(self, client: RedisClient, prefix: str = "", own_client: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self._own_client = own_client
        self._counter = prefix + "clearwater:cas"

    def key(self, table: str, key: str) -> str:
        """The Redis key of a record: Clearwater's memcached layout, ``table\\\\key``."""
        return self.prefix + table + "\\\\" + key

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        d = self.client.execute("HMGET", self.key(table, key), "data", "cas")

        def read(reply: Any) -> tuple[Optional[bytes], int]:
            data, cas = reply
            if data is None or cas is None:
                return None, 0
            return bytes(data), _int(cas)

        return d.addCallback(read)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        if ttl < 1:
            raise ValueError("ttl must be at least 1 s")
        d = self.client.run(
            _CAS_SET, (self.key(table, key), self._counter), (data, int(cas), int(ttl) * 1000)
        )

        def check(new_cas: Any) -> None:
            if not new_cas:
                raise DataContentionError(
                    "CAS " + str(cas) + " is stale for " + table + "\\\\" + key
                    if cas
                    else table + "\\\\" + key + " already exists"
                )

        return d.addCallback(check)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        return self.client.execute("DEL", self.key(table, key)).addCallback(lambda _: None)

    def close(self) -> Deferred[None]:
        return self.client.close() if self._own_client else defer.succeed(None)


# --------------------------------------------------------------------------- subscribers

# Keys (P is the prefix), all persistent:
#   P impi:<impi>       hash  realm, ha1, pw (absent: None), k, opc, amf (hex), sqn
#   P impi-irs:<impi>   set   IRS ids the private identity is in
#   P irs:<irs>         hash  exists=1, reg_state, reg_scscf, reg_impi, reg_updated
#   P irs-impi:<irs>    set   private identities of the IRS
#   P irs-sp:<irs>      set   service profile ids of the IRS
#   P irs-impu:<irs>    zset  IMPUs of the IRS scored by provisioning sequence
#   P sp:<sp>           hash  irs, ifcs
#   P sp-impu:<sp>      set   IMPUs of the service profile
#   P impu:<impu>       hash  irs, sp, xml, barred (0/1), wildcard (absent: None), seq
#   P impus             zset  every IMPU, score 0 (ZRANGEBYLEX paging)
#   P wildcards         set   IMPUs that carry a wildcard
#   P seq               counter for provisioning order

_LIB = """
local P = ARGV[1]
local function remove_public(impu)
  local key = P .. 'impu:' .. impu
  local irs = redis.call('HGET', key, 'irs')
  if irs then redis.call('ZREM', P .. 'irs-impu:' .. irs, impu) end
  redis.call('ZREM', P .. 'impus', impu)
  redis.call('SREM', P .. 'wildcards', impu)
  redis.call('DEL', key)
end
local function remove_sp(sp)
  for _, impu in ipairs(redis.call('SMEMBERS', P .. 'sp-impu:' .. sp)) do
    remove_public(impu)
  end
  local irs = redis.call('HGET', P .. 'sp:' .. sp, 'irs')
  if irs then redis.call('SREM', P .. 'irs-sp:' .. irs, sp) end
  redis.call('DEL', P .. 'sp:' .. sp, P .. 'sp-impu:' .. sp)
end
local function sp_in(irs, sp)
  return redis.call('HGET', P .. 'sp:' .. sp, 'irs') == irs
end
local function need(kind, key)
  if redis.call('EXISTS', P .. key) == 0 then
    error({err = 'NOTFOUND ' .. kind})
  end
end
local function public_record(impu)
  local f = redis.call('HMGET', P .. 'impu:' .. impu, 'irs', 'sp', 'xml', 'barred', 'wildcard')
  if not f[1] then return false end
  return {impu, f[1], f[2], f[3], f[4], f[5]}
end
"""


def _script(body: str) -> Script:
    return Script(_LIB + body)


_PUT_PRIVATE = _script(
    """
local key = P .. 'impi:' .. ARGV[2]
redis.call('DEL', key)
redis.call('HSET', key, unpack(ARGV, 3))
return 1
"""
)

_DELETE_PRIVATE = _script(
    """
local impi = ARGV[2]
local key = P .. 'impi:' .. impi
if redis.call('EXISTS', key) == 0 then return redis.error_reply('NOTFOUND private') end
for _, irs in ipairs(redis.call('SMEMBERS', P .. 'impi-irs:' .. impi)) do
  redis.call('SREM', P .. 'irs-impi:' .. irs, impi)
end
redis.call('DEL', key, P .. 'impi-irs:' .. impi)
return 1
"""
)

_ADVANCE_SQN = _script(
    """
local key = P .. 'impi:' .. ARGV[2]
local current = redis.call('HGET', key, 'sqn')
if not current then return redis.error_reply('NOTFOUND aka') end
if current ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'sqn', ARGV[4])
return 1
"""
)

_CREATE_IRS = _script(
    """
redis.call('HSETNX', P .. 'irs:' .. ARGV[2], 'exists', '1')
return 1
"""
)

_DELETE_IRS = _script(
    """
local irs = ARGV[2]
local key = P .. 'irs:' .. irs
if redis.call('EXISTS', key) == 0 then return redis.error_reply('NOTFOUND irs') end
for _, sp in ipairs(redis.call('SMEMBERS', P .. 'irs-sp:' .. irs)) do remove_sp(sp) end
for _, impi in ipairs(redis.call('SMEMBERS', P .. 'irs-impi:' .. irs)) do
  redis.call('SREM', P .. 'impi-irs:' .. impi, irs)
end
redis.call('DEL', key, P .. 'irs-sp:' .. irs, P .. 'irs-impi:' .. irs, P .. 'irs-impu:' .. irs)
return 1
"""
)

_ASSOCIATE = _script(
    """
local irs, impi = ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'irs:' .. irs) == 0 then return redis.error_reply('NOTFOUND irs') end
if redis.call('EXISTS', P .. 'impi:' .. impi) == 0 then
  return redis.error_reply('NOTFOUND private')
end
redis.call('SADD', P .. 'irs-impi:' .. irs, impi)
redis.call('SADD', P .. 'impi-irs:' .. impi, irs)
return 1
"""
)

_DISSOCIATE = _script(
    """
redis.call('SREM', P .. 'irs-impi:' .. ARGV[2], ARGV[3])
redis.call('SREM', P .. 'impi-irs:' .. ARGV[3], ARGV[2])
return 1
"""
)

_CREATE_SP = _script(
    """
local irs, sp = ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'irs:' .. irs) == 0 then return redis.error_reply('NOTFOUND irs') end
redis.call('HSET', P .. 'sp:' .. sp, 'irs', irs, 'ifcs', ARGV[4])
redis.call('SADD', P .. 'irs-sp:' .. irs, sp)
return 1
"""
)

_SET_IFCS = _script(
    """
if not sp_in(ARGV[2], ARGV[3]) then return redis.error_reply('NOTFOUND sp') end
redis.call('HSET', P .. 'sp:' .. ARGV[3], 'ifcs', ARGV[4])
return 1
"""
)

_DELETE_SP = _script(
    """
if not sp_in(ARGV[2], ARGV[3]) then return redis.error_reply('NOTFOUND sp') end
remove_sp(ARGV[3])
return 1
"""
)

_IRS_OF_PRIVATE = _script(
    """
need('private', 'impi:' .. ARGV[2])
return redis.call('SMEMBERS', P .. 'impi-irs:' .. ARGV[2])
"""
)

_PRIVATES_OF_IRS = _script(
    """
need('irs', 'irs:' .. ARGV[2])
return redis.call('SMEMBERS', P .. 'irs-impi:' .. ARGV[2])
"""
)

_PROFILES_OF_IRS = _script(
    """
need('irs', 'irs:' .. ARGV[2])
local out = {}
for _, sp in ipairs(redis.call('SMEMBERS', P .. 'irs-sp:' .. ARGV[2])) do
  out[#out + 1] = {sp, redis.call('HGET', P .. 'sp:' .. sp, 'ifcs')}
end
return out
"""
)

_PUT_PUBLIC = _script(
    """
local impu, irs, sp = ARGV[2], ARGV[3], ARGV[4]
if not sp_in(irs, sp) then return redis.error_reply('NOTFOUND sp') end
local key = P .. 'impu:' .. impu
local old = redis.call('HMGET', key, 'irs', 'sp', 'seq')
local seq = old[3]
if old[1] and old[1] ~= irs then
  redis.call('ZREM', P .. 'irs-impu:' .. old[1], impu)
  seq = false
end
if old[2] and old[2] ~= sp then redis.call('SREM', P .. 'sp-impu:' .. old[2], impu) end
if not seq then seq = redis.call('INCR', P .. 'seq') end
redis.call('DEL', key)
redis.call('HSET', key, 'irs', irs, 'sp', sp, 'xml', ARGV[5], 'barred', ARGV[6], 'seq', seq)
if ARGV[7] == '1' then
  redis.call('HSET', key, 'wildcard', ARGV[8])
  redis.call('SADD', P .. 'wildcards', impu)
else
  redis.call('SREM', P .. 'wildcards', impu)
end
redis.call('SADD', P .. 'sp-impu:' .. sp, impu)
redis.call('ZADD', P .. 'irs-impu:' .. irs, seq, impu)
redis.call('ZADD', P .. 'impus', 0, impu)
return 1
"""
)

_GET_PUBLIC = _script(
    """
local record = public_record(ARGV[2])
if not record then return {} end
return {record}
"""
)

_DELETE_PUBLIC = _script(
    """
if redis.call('EXISTS', P .. 'impu:' .. ARGV[2]) == 0 then
  return redis.error_reply('NOTFOUND public')
end
local sp = redis.call('HGET', P .. 'impu:' .. ARGV[2], 'sp')
if sp then redis.call('SREM', P .. 'sp-impu:' .. sp, ARGV[2]) end
remove_public(ARGV[2])
return 1
"""
)

_PUBLICS_OF_IRS = _script(
    """
need('irs', 'irs:' .. ARGV[2])
local out = {}
for _, impu in ipairs(redis.call('ZRANGE', P .. 'irs-impu:' .. ARGV[2], 0, -1)) do
  local record = public_record(impu)
  if record then out[#out + 1] = record end
end
return out
"""
)

_PUBLICS_OF_PRIVATE = _script(
    """
need('private', 'impi:' .. ARGV[2])
local out = {}
for _, irs in ipairs(redis.call('SMEMBERS', P .. 'impi-irs:' .. ARGV[2])) do
  for _, impu in ipairs(redis.call('ZRANGE', P .. 'irs-impu:' .. irs, 0, -1)) do
    out[#out + 1] = impu
  end
end
return out
"""
)

_WILDCARD_PUBLICS = _script(
    """
local out = {}
for _, impu in ipairs(redis.call('SMEMBERS', P .. 'wildcards')) do
  local record = public_record(impu)
  if record then out[#out + 1] = record end
end
return out
"""
)

_LIST_PUBLICS = _script(
    """
local low = '-'
if ARGV[2] ~= '' then low = '(' .. ARGV[2] end
local out = {}
for _, impu in ipairs(redis.call('ZRANGEBYLEX', P .. 'impus', low, '+', 'LIMIT', 0, ARGV[3])) do
  local record = public_record(impu)
  if record then out[#out + 1] = record end
end
return out
"""
)

_SET_REGISTRATION = _script(
    """
local key = P .. 'irs:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return redis.error_reply('NOTFOUND irs') end
redis.call('HSET', key, 'reg_state', ARGV[3], 'reg_scscf', ARGV[4], 'reg_impi', ARGV[5],
           'reg_updated', ARGV[6])
return 1
"""
)


def _pairs(reply: Any) -> dict[str, bytes]:
    items = list(reply or [])
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _public(row: Sequence[Any]) -> PublicIdentity:
    impu, irs, sp, xml, barred, wildcard = (list(row) + [None] * 6)[:6]
    return PublicIdentity(
        impu=_text(impu),
        irs=_text(irs),
        sp=_text(sp),
        xml=_text(xml) if xml is not None else "",
        barred=_text(barred) == "1",
        wildcard=None if wildcard is None else _text(wildcard),
    )


@implementer(ISubscriberStore)
class RedisSubscriberStore:
    """Homestead's provisioned subscribers in Redis (use a server with ``appendonly yes``)."""

    def __init__(self, client: RedisClient, prefix: str = "hs:", own_client: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self._own_client = own_client

    def _run(
        self, script: Script, *args: Arg, names: Optional[dict[str, str]] = None
    ) -> Deferred[Any]:
        d = self.client.run(script, (), (self.prefix, *args))
        if names is not None:
            found = names

            def name(failure: Failure) -> Failure:
                e = failure.value
                if not isinstance(e, RedisReplyError):
                    return failure
                problem = _not_found(e, found)
                if problem is e:
                    return failure
                raise problem

            d.addErrback(name)
        return d

    # -- private identities

    def put_private(self, identity: PrivateIdentity) -> Deferred[None]:
        fields: list[Arg] = ["realm", identity.realm, "ha1", identity.digest_ha1]
        if identity.plaintext_password is not None:
            fields += ["pw", identity.plaintext_password]
        if identity.aka is not None:
            aka = identity.aka
            fields += ["k", aka.k.hex(), "opc", aka.opc.hex(), "amf", aka.amf.hex()]
            fields += ["sqn", str(aka.sqn)]
        return self._run(_PUT_PRIVATE, identity.impi, *fields).addCallback(lambda _: None)

    def get_private(self, impi: str) -> Deferred[Optional[PrivateIdentity]]:
        def read(reply: Any) -> Optional[PrivateIdentity]:
            f = _pairs(reply)
            if not f:
                return None
            aka = None
            if "k" in f:
                aka = AkaCredentials(
                    k=bytes.fromhex(_text(f["k"])),
                    opc=bytes.fromhex(_text(f.get("opc", b""))),
                    amf=bytes.fromhex(_text(f.get("amf", b"8000"))),
                    sqn=_int(f.get("sqn", b"0")),
                )
            pw = f.get("pw")
            return PrivateIdentity(
                impi=impi,
                realm=_text(f.get("realm", b"")),
                digest_ha1=_text(f.get("ha1", b"")),
                plaintext_password=None if pw is None else _text(pw),
                aka=aka,
            )

        return self.client.execute("HGETALL", self.prefix + "impi:" + impi).addCallback(read)

    def delete_private(self, impi: str) -> Deferred[None]:
        names = {"private": "no private identity " + impi}
        return self._run(_DELETE_PRIVATE, impi, names=names).addCallback(lambda _: None)

    def advance_sqn(self, impi: str, expected: int, sqn: int) -> Deferred[bool]:
        names = {"aka": "no AKA credentials for " + impi}
        d = self._run(_ADVANCE_SQN, impi, str(int(expected)), str(int(sqn)), names=names)
        return d.addCallback(lambda r: bool(r))

    # -- implicit registration sets

    def create_irs(self, irs: Optional[str] = None) -> Deferred[str]:
        new = str(uuid.uuid4()) if irs is None else irs
        return self._run(_CREATE_IRS, new).addCallback(lambda _: new)

    def delete_irs(self, irs: str) -> Deferred[None]:
        names = {"irs": "no implicit registration set " + irs}
        return self._run(_DELETE_IRS, irs, names=names).addCallback(lambda _: None)

    def associate(self, irs: str, impi: str) -> Deferred[None]:
        names = {
            "irs": "no implicit registration set " + irs,
            "private": "no private identity " + impi,
        }
        return self._run(_ASSOCIATE, irs, impi, names=names).addCallback(lambda _: None)

    def dissociate(self, irs: str, impi: str) -> Deferred[None]:
        return self._run(_DISSOCIATE, irs, impi).addCallback(lambda _: None)

    def irs_of_private(self, impi: str) -> Deferred[list[str]]:
        names = {"private": "no private identity " + impi}
        d = self._run(_IRS_OF_PRIVATE, impi, names=names)
        return d.addCallback(lambda r: sorted(_text(x) for x in r or ()))

    def privates_of_irs(self, irs: str) -> Deferred[list[str]]:
        names = {"irs": "no implicit registration set " + irs}
        d = self._run(_PRIVATES_OF_IRS, irs, names=names)
        return d.addCallback(lambda r: sorted(_text(x) for x in r or ()))

    # -- service profiles

    def create_service_profile(self, irs: str, ifcs_xml: str = "") -> Deferred[ServiceProfile]:
        sp = str(uuid.uuid4())
        names = {"irs": "no implicit registration set " + irs}
        d = self._run(_CREATE_SP, irs, sp, ifcs_xml, names=names)
        return d.addCallback(lambda _: ServiceProfile(irs, sp, ifcs_xml))

    def get_service_profile(self, irs: str, sp: str) -> Deferred[Optional[ServiceProfile]]:
        def read(reply: Any) -> Optional[ServiceProfile]:
            owner, ifcs = reply
            if owner is None or _text(owner) != irs:
                return None
            return ServiceProfile(irs, sp, _text(ifcs) if ifcs is not None else "")

        d = self.client.execute("HMGET", self.prefix + "sp:" + sp, "irs", "ifcs")
        return d.addCallback(read)

    def set_ifcs(self, irs: str, sp: str, ifcs_xml: str) -> Deferred[None]:
        names = {"sp": "no service profile " + sp + " in " + irs}
        return self._run(_SET_IFCS, irs, sp, ifcs_xml, names=names).addCallback(lambda _: None)

    def delete_service_profile(self, irs: str, sp: str) -> Deferred[None]:
        names = {"sp": "no service profile " + sp + " in " + irs}
        return self._run(_DELETE_SP, irs, sp, names=names).addCallback(lambda _: None)

    def service_profiles_of_irs(self, irs: str) -> Deferred[list[ServiceProfile]]:
        def read(reply: Any) -> list[ServiceProfile]:
            profiles = []
            for row in reply or ():
                sp, ifcs = [*list(row), None, None][:2]
                profiles.append(ServiceProfile(irs, _text(sp), "" if ifcs is None else _text(ifcs)))
            return sorted(profiles, key=lambda p: p.sp)

        names = {"irs": "no implicit registration set " + irs}
        return self._run(_PROFILES_OF_IRS, irs, names=names).addCallback(read)

    # -- public identities

    def put_public(self, identity: PublicIdentity) -> Deferred[None]:
        names = {"sp": "no service profile " + identity.sp + " in " + identity.irs}
        d = self._run(
            _PUT_PUBLIC,
            identity.impu,
            identity.irs,
            identity.sp,
            identity.xml,
            "1" if identity.barred else "0",
            "0" if identity.wildcard is None else "1",
            identity.wildcard or "",
            names=names,
        )
        return d.addCallback(lambda _: None)

    def get_public(self, impu: str) -> Deferred[Optional[PublicIdentity]]:
        d = self._run(_GET_PUBLIC, impu)
        return d.addCallback(lambda rows: _public(rows[0]) if rows else None)

    def delete_public(self, impu: str) -> Deferred[None]:
        names = {"public": "no public identity " + impu}
        return self._run(_DELETE_PUBLIC, impu, names=names).addCallback(lambda _: None)

    def publics_of_irs(self, irs: str) -> Deferred[list[PublicIdentity]]:
        d = self._run(_PUBLICS_OF_IRS, irs, names={"irs": "no implicit registration set " + irs})
        return d.addCallback(lambda rows: [_public(row) for row in rows or ()])

    def publics_of_private(self, impi: str) -> Deferred[list[str]]:
        d = self._run(_PUBLICS_OF_PRIVATE, impi, names={"private": "no private identity " + impi})
        return d.addCallback(lambda rows: sorted({_text(x) for x in rows or ()}))

    def wildcard_publics(self) -> Deferred[list[PublicIdentity]]:
        d = self._run(_WILDCARD_PUBLICS)
        return d.addCallback(
            lambda rows: sorted((_public(row) for row in rows or ()), key=lambda p: p.impu)
        )

    def list_publics(self, after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        if limit <= 0:
            return defer.succeed([])
        d = self._run(_LIST_PUBLICS, after, int(limit))
        return d.addCallback(lambda rows: [_public(row) for row in rows or ()])

    # -- registration state

    def get_registration(self, irs: str) -> Deferred[RegistrationState]:
        def read(reply: Any) -> RegistrationState:
            state, scscf, impi, updated = reply
            if state is None:
                return RegistrationState()
            return RegistrationState(
                state=RegState(_text(state)),
                scscf=_text(scscf) if scscf is not None else "",
                impi=_text(impi) if impi is not None else "",
                updated=float(_text(updated)) if updated is not None else 0.0,
            )

        d = self.client.execute(
            "HMGET", self.prefix + "irs:" + irs, "reg_state", "reg_scscf", "reg_impi", "reg_updated"
        )
        return d.addCallback(read)

    def set_registration(self, irs: str, state: RegistrationState) -> Deferred[None]:
        names = {"irs": "no implicit registration set " + irs}
        d = self._run(
            _SET_REGISTRATION,
            irs,
            state.state.value,
            state.scscf,
            state.impi,
            repr(float(state.updated)),
            names=names,
        )
        return d.addCallback(lambda _: None)

    def close(self) -> Deferred[None]:
        return self.client.close() if self._own_client else defer.succeed(None)


# --------------------------------------------------------------------------- timers

# Keys (P is the prefix):
#   P rec:<id>          hash  kind, opaque (JSON), start, interval, repeat (ms), n (pops done),
#                             lease (token of the claim in flight, "" when none)
#   P due:<kind>        zset  id -> due time (ms, server clock)
#   P inflight:<kind>   zset  id -> end of the claim's lease (ms)
#   P lease             counter for lease tokens

_TIMER_LIB = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function unschedule(id)
  local kind = redis.call('HGET', P .. 'rec:' .. id, 'kind')
  if kind then
    redis.call('ZREM', P .. 'due:' .. kind, id)
    redis.call('ZREM', P .. 'inflight:' .. kind, id)
  end
  redis.call('DEL', P .. 'rec:' .. id)
end
"""

_TIMER_SET = Script(
    _TIMER_LIB
    + """
local id, kind = ARGV[2], ARGV[3]
local interval, repeat_for = tonumber(ARGV[5]), tonumber(ARGV[6])
unschedule(id)
if repeat_for < interval then return 0 end
redis.call('HSET', P .. 'rec:' .. id, 'kind', kind, 'opaque', ARGV[4], 'start', now,
           'interval', interval, 'repeat', repeat_for, 'n', 0, 'lease', '')
redis.call('ZADD', P .. 'due:' .. kind, now + interval, id)
return 1
"""
)

_TIMER_DELETE = Script(
    _TIMER_LIB
    + """
unschedule(ARGV[2])
return 1
"""
)

_TIMER_CLAIM = Script(
    _TIMER_LIB
    + """
local lease, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local kind = ARGV[i]
  for _, set in ipairs({'inflight:', 'due:'}) do
    if budget <= 0 then return out end
    local z = P .. set .. kind
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, budget)) do
      redis.call('ZREM', z, id)
      local rec = P .. 'rec:' .. id
      local f = redis.call('HMGET', rec, 'opaque', 'n')
      if f[1] then
        local token = redis.call('INCR', P .. 'lease')
        redis.call('HSET', rec, 'lease', token)
        redis.call('ZADD', P .. 'inflight:' .. kind, now + lease, id)
        out[#out + 1] = {id, kind, f[1], token, f[2]}
        budget = budget - 1
      end
    end
  end
end
return out
"""
)

_TIMER_ACK = Script(
    _TIMER_LIB
    + """
local id = ARGV[2]
local rec = P .. 'rec:' .. id
local f = redis.call('HMGET', rec, 'lease', 'kind', 'start', 'interval', 'repeat', 'n')
if f[1] ~= ARGV[3] then return 0 end
redis.call('ZREM', P .. 'inflight:' .. f[2], id)
local n = tonumber(f[6]) + 1
local interval = tonumber(f[4])
if (n + 1) * interval <= tonumber(f[5]) then
  redis.call('HSET', rec, 'n', n, 'lease', '')
  redis.call('ZADD', P .. 'due:' .. f[2], tonumber(f[3]) + (n + 1) * interval, id)
else
  redis.call('DEL', rec)
end
return 1
"""
)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@implementer(ITimerService)
class RedisTimerService:
    """Chronos on Redis: timers any node may pop, each pop claimed by exactly one node.

    Every ``poll_interval`` seconds (once :meth:`listen` was called) the node claims up to
    ``max_in_flight`` minus its running handlers of the due timers of the kinds it listens for.
    A claim holds for ``redelivery_delay`` seconds, which is also how long a handler may run:
    a handler still running then counts as failed, and the pop is claimed again.
    """

    def __init__(
        self,
        client: RedisClient,
        reactor: IReactorTime,
        prefix: str = "timers:",
        poll_interval: float = 0.1,
        redelivery_delay: float = 5.0,
        max_in_flight: int = 100,
        own_client: bool = True,
    ) -> None:
        if poll_interval <= 0 or redelivery_delay <= 0 or max_in_flight < 1:
            raise ValueError("poll_interval, redelivery_delay and max_in_flight must be positive")
        self.client = client
        self.prefix = prefix
        self.poll_interval = poll_interval
        self.redelivery_delay = redelivery_delay
        self.max_in_flight = max_in_flight
        self._reactor = reactor
        self._own_client = own_client
        self._handlers: dict[str, TimerHandler] = {}
        self._loop: Optional[LoopingCall] = None
        self._loop_done: Optional[Deferred[LoopingCall]] = None
        self._polling: Optional[Deferred[None]] = None
        self._handling: set[Deferred[Any]] = set()
        self._pops: set[Deferred[None]] = set()
        self._closed = False
        self._warned = False

    def listen(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler
        if self._loop is None and not self._closed:
            self._loop = LoopingCall(self._poll)
            self._loop.clock = self._reactor
            self._loop_done = self._loop.start(self.poll_interval, now=True)

    def set_timer(
        self,
        kind: str,
        interval: float,
        opaque: dict[str, Any],
        timer_id: Optional[str] = None,
        repeat_for: Optional[float] = None,
    ) -> Deferred[str]:
        if interval <= 0:
            raise ValueError("interval must be positive")
        new_id = uuid.uuid4().hex if timer_id is None else timer_id
        body = json.dumps(opaque, separators=(",", ":"))
        d = self.client.run(
            _TIMER_SET,
            (),
            (
                self.prefix,
                new_id,
                kind,
                body,
                _ms(interval),
                _ms(interval if repeat_for is None else repeat_for),
            ),
        )
        return d.addCallback(lambda _: new_id)

    def delete_timer(self, timer_id: str) -> Deferred[None]:
        d = self.client.run(_TIMER_DELETE, (), (self.prefix, timer_id))
        return d.addCallback(lambda _: None)

    # -- popping

    def _poll(self) -> None:
        if self._polling is not None or self._closed or not self._handlers:
            return
        room = self.max_in_flight - len(self._pops)
        if room <= 0:
            return
        kinds = sorted(self._handlers)
        d = self.client.run(
            _TIMER_CLAIM, (), (self.prefix, _ms(self.redelivery_delay), room, *kinds)
        )
        d.addCallbacks(self._claimed, self._poll_failed)
        self._polling = d
        d.addBoth(self._poll_done)

    def _poll_done(self, _: object) -> None:
        self._polling = None

    def _poll_failed(self, failure: Failure) -> None:
        if not self._warned:
            self._warned = True
            _log.warn("timer poll failed: {error}", error=failure.getErrorMessage())

    def _claimed(self, rows: Any) -> None:
        self._warned = False
        for row in rows or ():
            timer_id, kind, opaque, token, _pops = row
            self._deliver(_text(timer_id), _text(kind), opaque, _text(token))

    def _deliver(self, timer_id: str, kind: str, body: Any, token: str) -> None:
        d = Deferred.fromCoroutine(self._pop(timer_id, kind, body, token))
        self._pops.add(d)
        d.addBoth(lambda _: self._pops.discard(d))

    async def _pop(self, timer_id: str, kind: str, body: Any, token: str) -> None:
        handler = self._handlers.get(kind)
        if handler is None:  # not listening any more: the lease runs out, another node pops it
            return
        try:
            opaque = json.loads(bytes(body))
            if not isinstance(opaque, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            _log.error(
                "timer {timer_id}: bad opaque ({error}); deleted", timer_id=timer_id, error=e
            )
            await self._quietly(self.delete_timer(timer_id))
            return
        running: Deferred[Any] = defer.maybeDeferred(handler, timer_id, opaque)
        running.addTimeout(self.redelivery_delay, self._reactor)
        self._handling.add(running)
        try:
            await running
        except defer.CancelledError:
            if not self._closed:
                raise
            return
        except Exception:
            _log.failure(
                "timer {timer_id} ({kind}): handler failed; it pops again after the lease",
                timer_id=timer_id,
                kind=kind,
            )
            return
        finally:
            self._handling.discard(running)
        try:
            await self.client.run(_TIMER_ACK, (), (self.prefix, timer_id, token))
        except Exception as e:
            _log.warn(
                "timer {timer_id}: acknowledging the pop failed ({error}); it pops again",
                timer_id=timer_id,
                error=e,
            )

    @staticmethod
    async def _quietly(d: Deferred[Any]) -> None:
        try:
            await d
        except Exception as e:
            _log.warn("timer store: {error}", error=e)

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        self._closed = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._polling is not None:
            try:
                await self._polling
            except Exception as e:
                _log.debug("closing: {error}", error=e)
        for running in list(self._handling):
            running.cancel()
        if self._pops:
            await defer.DeferredList(list(self._pops), consumeErrors=True)
        if self._own_client:
            await self.client.close()
