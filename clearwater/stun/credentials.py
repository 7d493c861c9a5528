# -*- test-case-name: tests.unit.stun.test_credentials -*-
"""Where a TURN server gets long-term credential keys (RFC 8489 §9.2, RFC 8656 §7.2).

The TURN core (:mod:`clearwater.stun.turn`) checks MESSAGE-INTEGRITY with the long-term key
``MD5(username ":" realm ":" password)`` (RFC 8489 §9.2.2) of the USERNAME a request carries, and
asks its shell for that key. An :class:`IKeyProvider` answers, asynchronously: the key's 16 bytes,
or ``None`` for a user it does not know (the core answers 401).

- :class:`StaticUsers`: ``--user NAME:PASSWORD`` lines, keys computed once.
- :class:`SharedSecret`: the "TURN REST API" scheme of coturn and restund
  (draft-uberti-behave-turn-rest-00 §2.2): the username holds an expiry time in Unix seconds
  (``expiry:user``, as ``turnutils_uclient -W`` sends it; coturn also reads ``user:expiry``), the
  password is ``base64(HMAC-SHA1(secret, username))``. An expired username has no key.
- :class:`HomesteadDigest`: Clearwater's restund (spec §5, §6.1): realm = home domain,
  username = IMPI, key = the digest HA1 from homestead's ``GET /impi/<username>/digest``
  (``{"digest_ha1": "<hex>"}``), which is exactly that MD5. Answers are cached briefly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Optional, Protocol, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent
from zope.interface import Interface, implementer

from clearwater.homestead.hssless import HomesteadError
from clearwater.stun import long_term_key

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "HomesteadDigest",
    "IKeyProvider",
    "SharedSecret",
    "StaticUsers",
    "parse_key",
    "rest_api_expiry",
    "rest_api_password",
]

_log = Logger()

#: Seconds an answer from homestead is reused.
DEFAULT_CACHE_TTL = 30.0

#: The most usernames whose answers :class:`HomesteadDigest` keeps.
DEFAULT_CACHE_SIZE = 10000

_KEY_SIZE = 16  # MD5


class IKeyProvider(Interface):
    """Long-term credential keys of TURN users, for one realm."""

    def key(username: str) -> Deferred[Optional[bytes]]:  # noqa: N805 (zope Interface)
        """The key ``MD5(username:realm:password)`` of ``username`` (the USERNAME attribute as
        sent), or ``None`` if the user is unknown or its credentials are no longer valid.
        Never fails: a provider that cannot find out answers ``None``."""


def parse_key(password: str) -> Optional[bytes]:
    """The key of a ``0x<32 hex digits>`` password (coturn's form of a stored key), else None."""
    if not password.startswith("0x") or len(password) != 2 + 2 * _KEY_SIZE:
        return None
    try:
        return bytes.fromhex(password[2:])
    except ValueError:
        return None


@implementer(IKeyProvider)
class StaticUsers:
    """Users given on the command line: ``(name, password)`` pairs. A password of the form
    ``0x<32 hex digits>`` is the key itself (as coturn's ``--user name:0x...``).

    :raises ValueError: if SASLprep refuses a password (RFC 8489 §9.2.2).
    """

    def __init__(self, realm: str, users: Iterable[tuple[str, str]]) -> None:
        self.realm = realm
        self._keys: dict[str, bytes] = {}
        for name, password in users:
            key = parse_key(password)
            self._keys[name] = key if key is not None else long_term_key(name, realm, password)

    def key(self, username: str) -> Deferred[Optional[bytes]]:
        return succeed(self._keys.get(username))


def rest_api_expiry(username: str, separator: str = ":") -> Optional[int]:
    """The expiry time (Unix seconds) in a TURN REST API username, or None if it has none.

    As coturn reads it: ``expiry:user`` when the part before the first ``separator`` is all
    digits, else ``user:expiry`` (the part after it must then be all digits); a username
    without ``separator`` is the expiry alone (``turnutils_uclient -W`` without ``-u``).
    """
    before, sep, after = username.partition(separator)
    if not sep:
        field = username
    elif before and _digits(before):
        field = before
    else:
        field = after
    if not _digits(field):
        return None
    return int(field)


def _digits(text: str) -> bool:
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


def rest_api_password(secret: bytes, username: str) -> str:
    """The password of a TURN REST API username: ``base64(HMAC-SHA1(secret, username))``."""
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@implementer(IKeyProvider)
class SharedSecret:
    """The TURN REST API scheme (``--static-auth-secret``): any username carrying an expiry
    time not yet past, with the password :func:`rest_api_password` gives. ``clock`` tells the
    time (the reactor: Unix seconds)."""

    def __init__(
        self,
        realm: str,
        secret: Union[str, bytes],
        clock: IReactorTime,
        *,
        separator: str = ":",
    ) -> None:
        if not secret:
            raise ValueError("empty shared secret")
        self.realm = realm
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._clock = clock
        self._separator = separator

    def key(self, username: str) -> Deferred[Optional[bytes]]:
        expiry = rest_api_expiry(username, self._separator)
        if expiry is None or expiry < self._clock.seconds():
            return succeed(None)
        password = rest_api_password(self._secret, username)
        return succeed(long_term_key(username, self.realm, password))


class DigestSource(Protocol):
    """What :class:`HomesteadDigest` needs of a homestead client
    (:class:`~clearwater.http.homestead_client.HomesteadClient` is one)."""

    def get_digest(self, impi: str, public_id: Optional[str] = None) -> Deferred[str]: ...


@implementer(IKeyProvider)
class HomesteadDigest:
    """Keys from homestead's ``GET /impi/<username>/digest`` (Clearwater's restund).

    An answer is reused for ``ttl`` seconds (0: never): a key, or ``None`` for a user homestead
    does not know (404). A request that fails otherwise (timeout, 5xx, no connection, a bad
    answer) gives ``None`` and is not cached, so the next request asks again. At most
    ``max_entries`` usernames are cached (the least recently used go first); concurrent requests
    for one username share one homestead request.

    ``source``'s own timeout bounds each request (:class:`HomesteadClient`'s, per attempt).
    """

    def __init__(
        self,
        clock: IReactorTime,
        source: DigestSource,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._source = source
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, Optional[bytes]]] = OrderedDict()
        self._pending: dict[str, list[Deferred[Optional[bytes]]]] = {}

    @classmethod
    def over_http(
        cls,
        reactor: IReactorTime,
        agent: IAgent,
        base_urls: Sequence[str],
        *,
        timeout: float,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = DEFAULT_CACHE_SIZE,
    ) -> HomesteadDigest:
        """A provider asking the homesteads at ``base_urls`` (``http://host:8888``) through
        ``agent``, each attempt bounded by ``timeout`` seconds on ``reactor``."""
        from clearwater.http.homestead_client import HomesteadClient

        client = HomesteadClient(reactor, agent, base_urls, timeout=timeout)
        return cls(reactor, client, ttl=ttl, max_entries=max_entries)

    @property
    def cached(self) -> int:
        """How many usernames have a cached answer (fresh or not yet evicted)."""
        return len(self._cache)

    def key(self, username: str) -> Deferred[Optional[bytes]]:
        now = self._clock.seconds()
        entry = self._cache.get(username)
        if entry is not None:
            if entry[0] > now:
                self._cache.move_to_end(username)
                return succeed(entry[1])
            del self._cache[username]
        waiter: Deferred[Optional[bytes]] = Deferred()
        waiting = self._pending.get(username)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._pending[username] = [waiter]
        try:
            request = self._source.get_digest(username)
        except Exception:
            request = fail()
        request.addCallbacks(
            self._answered, self._failed, callbackArgs=(username,), errbackArgs=(username,)
        )
        return waiter

    def _answered(self, ha1: str, username: str) -> None:
        key = _ha1_key(ha1)
        if key is None:
            _log.warn("homestead: bad digest_ha1 for {username}", username=username)
            self._finish(username, None)
            return
        self._store(username, key)
        self._finish(username, key)

    def _failed(self, reason: Failure, username: str) -> None:
        error = reason.value
        if isinstance(error, HomesteadError) and error.http_status == 404:
            self._store(username, None)
        else:
            _log.warn("homestead: no key for {username}: {error}", username=username, error=error)
        self._finish(username, None)

    def _store(self, username: str, key: Optional[bytes]) -> None:
        if self._ttl <= 0:
            return
        self._cache[username] = (self._clock.seconds() + self._ttl, key)
        self._cache.move_to_end(username)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    def _finish(self, username: str, key: Optional[bytes]) -> None:
        for waiter in self._pending.pop(username, ()):
            if not waiter.called:  # a waiter may have been cancelled
                waiter.callback(key)


def _ha1_key(ha1: str) -> Optional[bytes]:
    try:
        key = binascii.unhexlify(ha1)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == _KEY_SIZE else None
