"""Locating SIP servers: RFC 3263 §4 over an injected DNS resolver (with RFC 7118 §5 for WebSocket).

:class:`SipResolver` turns a ``sip:`` / ``sips:`` URI (or a bare host) into an ordered list of
:class:`~clearwater.sip.transport.Target` s, the way RFC 3263 §4 says a client finds the next hop:

* **§4 target**: the ``maddr`` parameter if present, else the host of the URI.
* **§4.1 transport**: the ``transport`` parameter if present (``transport=tcp`` on a ``sips:`` URI
  means TLS, RFC 3261 §26.2.2); else, for a numeric host or an explicit port, UDP for ``sip:`` and
  TLS for ``sips:``; else NAPTR (RFC 3403) records whose service is one we support
  (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``, and the RFC 7118 §5 ``SIP+D2W`` / ``SIPS+D2W``; only the
  ``SIPS`` ones for a ``sips:`` URI), flag ``s``, in order then preference; with no usable NAPTR,
  SRV queries for each transport we support, in our preference order.
* **§4.2 port and address**: a numeric host is used as is; an explicit port means A/AAAA only;
  otherwise SRV (RFC 2782: priority, then weighted random order within a priority; a lone target
  of ``.`` means "service decidedly not available"), using the address records of the additional
  section when the server sent them; with no SRV records at all, A then AAAA of the host with the
  default port of the transport (5060, 5061 for TLS, 80 for WS, 443 for WSS).
* **§4.3 fail-over**: the caller tries the targets in order; :meth:`SipResolver.blacklist`
  (on a transaction timeout, a transport error or a 503) moves a target to the end of later
  results for a while.

TLS and WSS targets carry ``server_name``, the domain of the URI that was resolved, which the
peer's certificate must match (RFC 5922 §4).

Every record set is cached for its TTL on the injected clock; negative answers (NXDOMAIN or no
records) for the SOA negative TTL (RFC 2308 §5) or ``negative_ttl``. Failed queries (time-out,
SERVFAIL) are not cached: they count as "no records" for that step and resolution carries on.
Concurrent identical queries share one DNS request. The system resolver is never used.

SRV service labels: ``_sip._udp``, ``_sip._tcp``, ``_sips._tcp`` (TLS, RFC 3263 §4.2),
``_sip._ws`` and ``_sips._ws`` (WS and WSS; RFC 7118 registers the NAPTR services only, these are
the labels deployed practice uses).
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Iterable, Sequence
from random import random as _system_random
from typing import Any, Callable, Optional, Union, cast

import attrs
from twisted.internet import defer
from twisted.internet import error as internet_error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names import dns
from twisted.names import error as dns_error
from twisted.names.common import ResolverBase
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater.errors import ClearwaterError
from clearwater.sip._uri import SipUri, Uri
from clearwater.sip.transport._types import (
    DEFAULT_PORTS,
    SECURE_TRANSPORTS,
    TRANSPORTS,
    Target,
    is_ip_literal,
)

__all__ = ["NoDns", "ResolutionError", "SipResolver"]

_log = Logger()


class NoDns(ResolverBase):
    """An ``IResolver`` for when no DNS is configured: every query fails at once, so only IP
    literals (which :class:`SipResolver` never looks up) can be reached."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @override
    def _lookup(self, name: bytes, cls: int, type: int, timeout: object) -> Deferred[Any]:
        return defer.fail(
            dns_error.DNSNameError(name.decode("ascii", "replace") + ": DNS is not configured")
        )


#: RFC 3263 §4.1 / RFC 7118 §5 NAPTR service field -> transport.
_NAPTR_SERVICES = {
    "SIP+D2U": "UDP",
    "SIP+D2T": "TCP",
    "SIPS+D2T": "TLS",
    "SIP+D2W": "WS",
    "SIPS+D2W": "WSS",
}
#: RFC 3263 §4.2 SRV prefix per transport ("_sips" for TLS; "_ws" for WebSocket).
_SRV_PREFIXES = {
    "UDP": "_sip._udp.",
    "TCP": "_sip._tcp.",
    "TLS": "_sips._tcp.",
    "WS": "_sip._ws.",
    "WSS": "_sips._ws.",
}
#: The ``transport`` URI parameter -> transport, for sip: and for sips: (RFC 3261 §26.2.2:
#: ``transport=tcp`` on a sips: URI means TCP with TLS; WS likewise becomes WSS).
_URI_TRANSPORTS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}
_SECURE_UPGRADE = {"TCP": "TLS", "WS": "WSS", "TLS": "TLS", "WSS": "WSS"}

_TYPE_NAMES = {dns.NAPTR: "NAPTR", dns.SRV: "SRV", dns.A: "A", dns.AAAA: "AAAA"}
#: RFC 2308 §5: negative answers should not be cached for more than a few hours.
_MAX_NEGATIVE_TTL = 3600.0
#: Failures that mean "no such records" (bare DomainError is what hosts-file and cache
#: resolvers raise); DomainError subclasses other than DNSNameError are server errors.
_NEGATIVE_ERRORS = (dns_error.DomainError, dns_error.AuthoritativeDomainError)
#: Blacklist entries are swept of expired ones when the table grows past this.
_BLACKLIST_SWEEP = 256


class ResolutionError(ClearwaterError):
    """No target could be found for a host.

    :ivar host: the name (or address) that was being resolved.
    :ivar reasons: what each step found or why it failed, e.g.
        ``("NAPTR example.com: timed out", "SRV _sip._udp.example.com: no records")``.
    """

    def __init__(self, host: str, reasons: Sequence[str] = ()) -> None:
        self.host = host
        self.reasons = tuple(reasons)
        detail = "; ".join(self.reasons) if self.reasons else "no targets"
        super().__init__(f"cannot resolve SIP server {host!r}: {detail}")


@attrs.frozen
class _Response:
    """One DNS answer: the records of the queried type, the additional section, and an error
    description when the query failed (None for an answer, positive or negative)."""

    records: tuple[dns.RRHeader, ...] = ()
    additional: tuple[dns.RRHeader, ...] = ()
    error: Optional[str] = None


@attrs.frozen
class _CacheEntry:
    expires: float
    response: _Response


@attrs.frozen
class _Srv:
    priority: int
    weight: int
    port: int
    target: str


@attrs.frozen
class _Naptr:
    order: int
    preference: int
    transport: str
    replacement: str


_Key = tuple[str, int]


def _norm(name: str) -> str:
    """The cache / comparison form of a domain name: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def _name_text(name: object) -> str:
    raw = getattr(name, "name", b"")
    if isinstance(raw, bytes):
        return _norm(raw.decode("ascii", "replace"))
    return _norm(str(raw))


def _charstr(value: object) -> str:
    raw = getattr(value, "string", b"")
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)


def _retry_schedule(timeout: float) -> tuple[int, ...]:
    """Retransmission intervals for the resolver: 1, 2, 4... s, covering ``timeout``."""
    out = [1]
    while sum(out) < timeout:
        out.append(out[-1] * 2)
    return tuple(out)


def _srv_order(records: Sequence[_Srv], random: Callable[[], float]) -> list[_Srv]:
    """RFC 2782 ordering: ascending priority; within a priority, repeatedly pick a record with
    probability proportional to its weight (zero weights first in the running sums)."""
    out: list[_Srv] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        remaining = [r for r in group if r.weight == 0] + [r for r in group if r.weight != 0]
        while remaining:
            total = sum(r.weight for r in remaining)
            pick = random() * total
            running = 0
            chosen = len(remaining) - 1
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= pick:
                    chosen = index
                    break
            out.append(remaining.pop(chosen))
    return out


def _soa_negative_ttl(authority: Iterable[object]) -> Optional[float]:
    """RFC 2308 §5: the negative TTL is the minimum of the SOA's TTL and its MINIMUM field."""
    for rr in authority:
        if not isinstance(rr, dns.RRHeader):
            continue
        payload: object = rr.payload
        if isinstance(payload, dns.Record_SOA):
            return float(min(rr.ttl, int(payload.minimum)))
    return None


class SipResolver:
    """RFC 3263 server location over an injected ``IResolver`` and clock.

    :param resolver: the DNS resolver (e.g. ``twisted.names.client.createResolver(...)``).
    :param clock: time source for TTLs, blacklisting and query time-outs.
    :param transports: the transports we can use, most preferred first (a subset of
        ``UDP TCP TLS WS WSS``); NAPTR services and SRV queries for others are ignored.
    :param blacklist_duration: default seconds a :meth:`blacklist` ed target stays at the back.
    :param lookup_timeout: seconds each DNS query may take before it counts as failed.
    :param ipv6: also query AAAA records (after A).
    :param random: a ``[0, 1)`` source for the RFC 2782 weighted SRV order.
    :param max_cache_entries: bound of the record cache (least recently used evicted first).
    :param negative_ttl: seconds a negative answer is cached when it carries no SOA.
    """

    def __init__(
        self,
        resolver: IResolver,
        clock: IReactorTime,
        *,
        transports: Sequence[str] = ("UDP", "TCP", "TLS"),
        blacklist_duration: float = 30.0,
        lookup_timeout: float = 5.0,
        ipv6: bool = True,
        random: Callable[[], float] = _system_random,
        max_cache_entries: int = 10_000,
        negative_ttl: float = 30.0,
    ) -> None:
        chosen: list[str] = []
        for name in transports:
            upper = name.upper()
            if upper not in TRANSPORTS:
                raise ValueError("unknown SIP transport: " + name)
            if upper not in chosen:
                chosen.append(upper)
        if not chosen:
            raise ValueError("SipResolver needs at least one transport")
        if lookup_timeout <= 0 or blacklist_duration < 0 or negative_ttl < 0:
            raise ValueError("SipResolver: timeouts and durations must not be negative")
        if max_cache_entries < 0:
            raise ValueError("SipResolver: max_cache_entries must not be negative")
        self._resolver = resolver
        self._clock = clock
        self._transports = tuple(chosen)
        self._blacklist_duration = blacklist_duration
        self._lookup_timeout = lookup_timeout
        self._retries = _retry_schedule(lookup_timeout)
        self._ipv6 = ipv6
        self._random = random
        self._max_cache_entries = max_cache_entries
        self._negative_ttl = negative_ttl
        self._cache: collections.OrderedDict[_Key, _CacheEntry] = collections.OrderedDict()
        self._pending: dict[_Key, list[Deferred[_Response]]] = {}
        self._blacklist: dict[tuple[str, str, int], float] = {}

    @property
    def transports(self) -> tuple[str, ...]:
        """The transports in use, most preferred first."""
        return self._transports

    # ------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------

    def resolve(self, uri: Uri) -> Deferred[list[Target]]:
        """The targets for a ``sip:`` / ``sips:`` URI, in the order to try them.

        Honours ``maddr``, the port and the ``transport`` parameter. Blacklisted targets come
        last. Fails with :class:`ValueError` for a URI of another scheme and with
        :class:`ResolutionError` when no target is found.
        """
        if not isinstance(uri, SipUri):
            return defer.fail(ValueError(f"cannot locate a SIP server for {uri}"))
        host = uri.maddr or uri.host
        server_name = None if is_ip_literal(uri.host) else uri.host
        return self.resolve_host(
            host, uri.port, uri.transport, uri.scheme == "sips", server_name=server_name
        )

    def resolve_literal(self, uri: Uri) -> Optional[list[Target]]:
        """The targets of a ``sip:`` / ``sips:`` URI whose host (or ``maddr``) is an IP
        address, as :meth:`resolve` gives them, without a Deferred; None for anything that
        needs a look-up or is in error (:meth:`resolve` then says what). For the proxies' hot
        path: most next hops are addresses (Route and Contact URIs)."""
        if not isinstance(uri, SipUri):
            return None
        host = uri.maddr or uri.host
        port = uri.port
        if not is_ip_literal(host) or (port is not None and not 0 <= port <= 65535):
            return None
        secure = uri.scheme == "sips"
        try:
            chosen = self._uri_transport(host, uri.transport, secure) or self._default_transport(
                host, secure
            )
        except ResolutionError:
            return None
        return [Target(chosen, host, DEFAULT_PORTS[chosen] if port is None else port)]

    def resolve_host(
        self,
        host: str,
        port: Optional[int],
        transport: Optional[str],
        secure: bool,
        *,
        server_name: Optional[str] = None,
    ) -> Deferred[list[Target]]:
        """The targets for ``host`` as :meth:`resolve` finds them for a URI.

        :param transport: a ``transport`` URI parameter value (``udp``, ``tcp``, ``tls``, ``ws``,
            ``wss``, any case) or None.
        :param secure: True for a ``sips:`` URI: only TLS and WSS targets.
        :param server_name: the name TLS certificates must match; default ``host`` (None for a
            numeric host).
        """
        try:
            if port is not None and (
                isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
            ):
                raise ValueError(f"bad port: {port!r}")
            if not host:
                raise ValueError("empty host")
            wanted = self._uri_transport(host, transport, secure)
        except (ValueError, ResolutionError) as exc:
            return defer.fail(exc)
        if is_ip_literal(host):
            try:
                chosen = wanted or self._default_transport(host, secure)
            except ResolutionError as exc:
                return defer.fail(exc)
            target = Target(chosen, host, DEFAULT_PORTS[chosen] if port is None else port)
            return defer.succeed([target])
        name = _norm(host)
        if server_name is None:
            server_name = name
        return Deferred.fromCoroutine(self._resolve_name(name, port, wanted, secure, server_name))

    def blacklist(self, target: Target, duration: Optional[float] = None) -> None:
        """Move ``target`` behind all others in results for ``duration`` seconds (default
        ``blacklist_duration``); a duration of 0 or less lifts an existing blacklisting."""
        seconds = self._blacklist_duration if duration is None else duration
        key = target.connection_key
        if seconds <= 0:
            self._blacklist.pop(key, None)
            return
        now = self._clock.seconds()
        if len(self._blacklist) >= _BLACKLIST_SWEEP:
            for stale in [k for k, until in self._blacklist.items() if until <= now]:
                del self._blacklist[stale]
        self._blacklist[key] = now + seconds

    def is_blacklisted(self, target: Target) -> bool:
        """True while ``target`` is blacklisted."""
        key = target.connection_key
        until = self._blacklist.get(key)
        if until is None:
            return False
        if until <= self._clock.seconds():
            del self._blacklist[key]
            return False
        return True

    # ------------------------------------------------------------------------------------
    # RFC 3263 §4.1 transport choice
    # ------------------------------------------------------------------------------------

    def _uri_transport(self, host: str, param: Optional[str], secure: bool) -> Optional[str]:
        """The transport a ``transport=`` parameter asks for, or None if there is none."""
        if param is None:
            return None
        chosen = _URI_TRANSPORTS.get(param.lower())
        if chosen is None:
            raise ResolutionError(host, [f"transport {param!r} not supported"])
        if secure:
            upgraded = _SECURE_UPGRADE.get(chosen)
            if upgraded is None:
                raise ResolutionError(host, [f"transport {param!r} cannot carry a sips: URI"])
            chosen = upgraded
        if chosen not in self._transports:
            raise ResolutionError(host, [f"transport {chosen} not enabled"])
        return chosen

    def _eligible(self, secure: bool) -> list[str]:
        return [t for t in self._transports if not secure or t in SECURE_TRANSPORTS]

    def _default_transport(self, host: str, secure: bool) -> str:
        """UDP for sip:, TLS for sips: (RFC 3263 §4.1), else our first eligible transport."""
        preferred = "TLS" if secure else "UDP"
        if preferred in self._transports:
            return preferred
        eligible = self._eligible(secure)
        if not eligible:
            raise ResolutionError(host, ["no secure transport enabled for a sips: URI"])
        return eligible[0]

    # ------------------------------------------------------------------------------------
    # the lookup sequence
    # ------------------------------------------------------------------------------------

    async def _resolve_name(
        self,
        host: str,
        port: Optional[int],
        transport: Optional[str],
        secure: bool,
        server_name: str,
    ) -> list[Target]:
        notes: list[str] = []
        if port is not None:
            # §4.1/§4.2: an explicit port means A/AAAA only.
            chosen = transport or self._default_transport(host, secure)
            targets = await self._addresses(host, chosen, port, server_name, notes)
        elif transport is not None:
            # §4.2: SRV for the transport asked for, then A/AAAA at its default port.
            found = await self._srv_set(
                [(transport, _SRV_PREFIXES[transport] + host)], server_name, notes, set()
            )
            if found is None:
                targets = await self._addresses(
                    host, transport, DEFAULT_PORTS[transport], server_name, notes
                )
            else:
                targets = found
        else:
            targets = await self._discover(host, secure, server_name, notes)
        if not targets:
            raise ResolutionError(host, notes)
        return self._arrange(targets)

    async def _discover(
        self, host: str, secure: bool, server_name: str, notes: list[str]
    ) -> list[Target]:
        """§4.1 NAPTR, else SRV per transport, else A/AAAA (no transport, no port given)."""
        tried: set[str] = set()
        targets: list[Target] = []
        srv_found = False
        fallback = self._default_transport(host, secure)
        naptrs = await self._naptrs(host, secure, notes)
        if naptrs:
            fallback = naptrs[0].transport
            found = await self._srv_set(
                [(n.transport, n.replacement) for n in naptrs], server_name, notes, tried
            )
            if found is not None:
                srv_found = True
                targets.extend(found)
        if not targets:
            plan = [(t, _SRV_PREFIXES[t] + host) for t in self._eligible(secure)]
            found = await self._srv_set(plan, server_name, notes, tried)
            if found is not None:
                srv_found = True
                targets.extend(found)
        if not targets and not srv_found:
            # §4.2: no SRV records at all: the host's addresses at the default port.
            targets = await self._addresses(
                host, fallback, DEFAULT_PORTS[fallback], server_name, notes
            )
        return targets

    async def _naptrs(self, host: str, secure: bool, notes: list[str]) -> list[_Naptr]:
        response = await self._query(host, dns.NAPTR)
        if response.error is not None:
            notes.append(f"NAPTR {host}: {response.error}")
            return []
        usable: list[_Naptr] = []
        for rr in response.records:
            payload: object = rr.payload
            if not isinstance(payload, dns.Record_NAPTR):
                continue
            transport = _NAPTR_SERVICES.get(_charstr(payload.service).upper())
            replacement = _name_text(payload.replacement)
            if (
                transport is None
                or transport not in self._transports
                or (secure and transport not in SECURE_TRANSPORTS)
                or _charstr(payload.flags).lower() != "s"
                or not replacement
            ):
                continue
            usable.append(
                _Naptr(int(payload.order), int(payload.preference), transport, replacement)
            )
        if not usable:
            what = "no usable records" if response.records else "no records"
            notes.append(f"NAPTR {host}: {what}")
        usable.sort(key=lambda n: (n.order, n.preference))
        return usable

    async def _srv_set(
        self,
        plan: Sequence[tuple[str, str]],
        server_name: str,
        notes: list[str],
        tried: set[str],
    ) -> Optional[list[Target]]:
        """Targets from the SRV records of each ``(transport, name)`` in ``plan``, in plan
        order; None when none of the names has SRV records. Names in ``tried`` are skipped."""
        todo = []
        for transport, name in plan:
            if name in tried:
                continue
            tried.add(name)
            todo.append(Deferred.fromCoroutine(self._srv(transport, name, server_name, notes)))
        results = await defer.gatherResults(todo)
        if all(r is None for r in results):
            return None
        return [target for r in results if r is not None for target in r]

    async def _srv(
        self, transport: str, name: str, server_name: str, notes: list[str]
    ) -> Optional[list[Target]]:
        """Targets of one SRV record set: None if there are no records; ``[]`` if the service
        is declared unavailable (RFC 2782 target ``.``) or no target has an address."""
        response = await self._query(name, dns.SRV)
        if response.error is not None:
            notes.append(f"SRV {name}: {response.error}")
            return None
        records = []
        for rr in response.records:
            payload: object = rr.payload
            if isinstance(payload, dns.Record_SRV):
                records.append(
                    _Srv(
                        int(payload.priority),
                        int(payload.weight),
                        int(payload.port),
                        _name_text(payload.target),
                    )
                )
        if not records:
            notes.append(f"SRV {name}: no records")
            return None
        usable = [r for r in records if r.target]
        if not usable:
            notes.append(f"SRV {name}: service not available (target '.')")
            return []
        glue = self._glue(response.additional)
        lookups = []
        for record in _srv_order(usable, self._random):
            known = glue.get(record.target)
            if known:
                targets = [self._target(transport, a, record.port, server_name) for a in known]
                lookups.append(defer.succeed(targets))
            else:
                lookups.append(
                    Deferred.fromCoroutine(
                        self._addresses(record.target, transport, record.port, server_name, notes)
                    )
                )
        results = await defer.gatherResults(lookups)
        return [target for r in results for target in r]

    def _glue(self, additional: Sequence[dns.RRHeader]) -> dict[str, list[str]]:
        """Address records of an additional section, by owner name: A first, then AAAA."""
        glue: dict[str, list[str]] = {}
        for rtype in (dns.A, dns.AAAA) if self._ipv6 else (dns.A,):
            for rr in additional:
                if rr.type == rtype:
                    address = _address(rr)
                    if address is not None:
                        glue.setdefault(_name_text(rr.name), []).append(address)
        return glue

    async def _addresses(
        self, host: str, transport: str, port: int, server_name: str, notes: list[str]
    ) -> list[Target]:
        """A then (if enabled) AAAA records of ``host``, as targets."""
        types = (dns.A, dns.AAAA) if self._ipv6 else (dns.A,)
        responses = await defer.gatherResults([self._query(host, t) for t in types])
        targets: list[Target] = []
        for rtype, response in zip(types, responses):
            if response.error is not None:
                notes.append(f"{_TYPE_NAMES[rtype]} {host}: {response.error}")
                continue
            found = [a for a in (_address(rr) for rr in response.records) if a is not None]
            if not found:
                notes.append(f"{_TYPE_NAMES[rtype]} {host}: no records")
            targets.extend(self._target(transport, a, port, server_name) for a in found)
        return targets

    def _target(self, transport: str, address: str, port: int, server_name: str) -> Target:
        secure = transport in SECURE_TRANSPORTS
        return Target(transport, address, port, server_name=server_name if secure else None)

    def _arrange(self, targets: Iterable[Target]) -> list[Target]:
        """Drop duplicates (first wins), then move blacklisted targets to the end."""
        unique = list(dict.fromkeys(targets))
        good = [t for t in unique if not self.is_blacklisted(t)]
        bad = [t for t in unique if self.is_blacklisted(t)]
        return good + bad

    # ------------------------------------------------------------------------------------
    # queries: cache, in-flight sharing, time-outs
    # ------------------------------------------------------------------------------------

    def _query(self, name: str, rtype: int) -> Deferred[_Response]:
        """The answer for ``(name, rtype)``: from the cache, from a query already in flight,
        or from a new query. Never fails: errors come back as ``_Response.error``."""
        key = (name, rtype)
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires > self._clock.seconds():
                self._cache.move_to_end(key)
                return defer.succeed(entry.response)
            del self._cache[key]
        waiter: Deferred[_Response] = Deferred()
        waiting = self._pending.get(key)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._pending[key] = [waiter]
        try:
            query = self._send(name, rtype)
        except Exception as exc:  # a broken resolver must not break resolution
            query = defer.fail(exc)
        query.addTimeout(self._lookup_timeout, self._clock)
        query.addBoth(self._answered, key)
        return waiter

    def _send(self, name: str, rtype: int) -> Deferred[object]:
        resolver = self._resolver
        if rtype == dns.NAPTR:
            sent = resolver.lookupNamingAuthorityPointer(name, self._retries)
        elif rtype == dns.SRV:
            sent = resolver.lookupService(name, self._retries)
        elif rtype == dns.A:
            sent = resolver.lookupAddress(name, self._retries)
        else:
            sent = resolver.lookupIPV6Address(name, self._retries)
        return cast("Deferred[object]", sent)

    def _answered(self, result: object, key: _Key) -> None:
        name, rtype = key
        ttl: Optional[float]
        try:
            if isinstance(result, Failure):
                response, ttl = self._from_failure(result, name, rtype)
            else:
                response, ttl = self._from_answer(result, rtype)
        except Exception:  # a malformed answer must not leave the waiters hanging
            _log.failure("Unusable DNS answer for {name}", name=name)
            response, ttl = _Response(error="unusable answer"), None
        if ttl is not None and ttl > 0 and self._max_cache_entries > 0:
            self._cache[key] = _CacheEntry(self._clock.seconds() + ttl, response)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_cache_entries:
                self._cache.popitem(last=False)
        for waiter in self._pending.pop(key, []):
            if not waiter.called:
                waiter.callback(response)

    def _from_answer(self, result: object, rtype: int) -> tuple[_Response, Optional[float]]:
        answers, authority, additional = _sections(result)
        records = tuple(rr for rr in answers if rr.type == rtype)
        if not records:
            return _Response(), self._negative(authority)
        extra: tuple[dns.RRHeader, ...] = ()
        ttls = [rr.ttl for rr in records]
        if rtype == dns.SRV:
            targets = {_name_text(getattr(rr.payload, "target", None)) for rr in records}
            extra = tuple(
                rr
                for rr in additional
                if rr.type in (dns.A, dns.AAAA) and _name_text(rr.name) in targets
            )
            ttls.extend(rr.ttl for rr in extra)
        return _Response(records, extra), float(min(ttls))

    def _from_failure(
        self, failure: Failure, name: str, rtype: int
    ) -> tuple[_Response, Optional[float]]:
        exc = failure.value
        if isinstance(exc, dns_error.DNSNameError) or type(exc) in _NEGATIVE_ERRORS:
            # NXDOMAIN, or another resolver's "no such records": a negative answer, cached.
            args: tuple[object, ...] = getattr(exc, "args", ())
            message = args[0] if args else None
            authority = message.authority if isinstance(message, dns.Message) else ()
            return _Response(), self._negative(authority)
        if isinstance(exc, (defer.TimeoutError, internet_error.TimeoutError)):
            why = "timed out"
        else:
            why = "failed (" + type(exc).__name__ + ")"
        _log.debug(
            "DNS {rtype} query for {name} {why}", rtype=_TYPE_NAMES[rtype], name=name, why=why
        )
        return _Response(error=why), None

    def _negative(self, authority: Iterable[object]) -> float:
        soa = _soa_negative_ttl(authority)
        return min(self._negative_ttl if soa is None else soa, _MAX_NEGATIVE_TTL)


def _sections(
    result: object,
) -> tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]:
    """The answer, authority and additional sections of an ``IResolver`` result."""
    out: list[list[dns.RRHeader]] = [[], [], []]
    if isinstance(result, (tuple, list)):
        parts = cast("Sequence[object]", result)
        for index, section in enumerate(parts[:3]):
            if isinstance(section, (tuple, list)):
                items = cast("Sequence[object]", section)
                out[index] = [rr for rr in items if isinstance(rr, dns.RRHeader)]
    return out[0], out[1], out[2]


def _address(rr: dns.RRHeader) -> Optional[str]:
    """The address of an A or AAAA record, as text; None for anything else."""
    payload: object = rr.payload
    packed = getattr(payload, "address", None)
    if not isinstance(packed, bytes):
        return None
    parsed: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    try:
        if isinstance(payload, dns.Record_A):
            parsed = ipaddress.IPv4Address(packed)
        elif isinstance(payload, dns.Record_AAAA):
            parsed = ipaddress.IPv6Address(packed)
        else:
            return None
    except ValueError:
        return None
    return str(parsed)
