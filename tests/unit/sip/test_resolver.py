"""RFC 3263 §4 server location (and RFC 7118 §5 WebSocket services) over a fake DNS resolver.

The fake :class:`FakeDNS` holds a zone of ``(name, type) -> records``, counts every query, and can
answer NXDOMAIN, fail, or hang forever (a query that only ends by the resolver's time-out).
Time is a ``task.Clock``; nothing touches the network or the system resolver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IResolver
from twisted.names import dns
from twisted.names import error as dns_error
from twisted.names.common import ResolverBase
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override
from zope.interface.verify import verifyObject

from clearwater.errors import ClearwaterError
from clearwater.sip import TelUri, parse_uri
from clearwater.sip.resolver import ResolutionError, SipResolver
from clearwater.sip.resolver import _Srv as Srv
from clearwater.sip.resolver import _srv_order as srv_order  # the RFC 2782 algorithm itself
from clearwater.sip.transport._types import Target

# twisted.names record classes have unannotated constructors; build them through Any.
_DNS: Any = dns

_Result = tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]


def a(name: str, address: str, ttl: int = 300) -> dns.RRHeader:
    return dns.RRHeader(name, dns.A, ttl=ttl, payload=_DNS.Record_A(address, ttl))


def aaaa(name: str, address: str, ttl: int = 300) -> dns.RRHeader:
    return dns.RRHeader(name, dns.AAAA, ttl=ttl, payload=_DNS.Record_AAAA(address, ttl))


def srv(
    name: str, priority: int, weight: int, port: int, target: str, ttl: int = 300
) -> dns.RRHeader:
    # the root name (RFC 2782 target ".") is the empty name on the wire
    payload = _DNS.Record_SRV(priority, weight, port, b"" if target == "." else target, ttl)
    return dns.RRHeader(name, dns.SRV, ttl=ttl, payload=payload)


def naptr(
    name: str,
    order: int,
    preference: int,
    service: str,
    replacement: str,
    flags: str = "s",
    ttl: int = 300,
) -> dns.RRHeader:
    payload = _DNS.Record_NAPTR(
        order, preference, flags.encode(), service.encode(), b"", replacement, ttl
    )
    return dns.RRHeader(name, dns.NAPTR, ttl=ttl, payload=payload)


def soa(name: str, ttl: int, minimum: int) -> dns.RRHeader:
    payload = _DNS.Record_SOA(mname="ns." + name, rname="admin." + name, minimum=minimum, ttl=ttl)
    return dns.RRHeader(name, dns.SOA, ttl=ttl, payload=payload)


class FakeDNS(ResolverBase):
    """An ``IResolver`` answering from a dict, counting queries."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's base is unannotated
        self.answers: dict[tuple[str, int], list[dns.RRHeader]] = {}
        self.additional: dict[tuple[str, int], list[dns.RRHeader]] = {}
        self.authority: dict[tuple[str, int], list[dns.RRHeader]] = {}
        self.nxdomain: set[tuple[str, int]] = set()
        self.errors: dict[tuple[str, int], Exception] = {}
        self.hang: set[tuple[str, int]] = set()
        self.raising: set[tuple[str, int]] = set()
        self.queries: list[tuple[str, str]] = []
        self.pending: list[Deferred[_Result]] = []

    def add(self, *records: dns.RRHeader, additional: Sequence[dns.RRHeader] = ()) -> None:
        for rr in records:
            key = (rr.name.name.decode().lower(), rr.type)
            self.answers.setdefault(key, []).append(rr)
            if additional:
                self.additional[key] = list(additional)

    def count(self, type_name: Optional[str] = None) -> int:
        return sum(1 for _, t in self.queries if type_name is None or t == type_name)

    @override
    def _lookup(self, name: bytes, cls: int, type: int, timeout: object) -> Deferred[_Result]:
        key = (name.decode().lower(), type)
        self.queries.append((key[0], dns.QUERY_TYPES[type]))
        if key in self.raising:
            raise RuntimeError("resolver bug")
        if key in self.hang:
            d: Deferred[_Result] = Deferred()
            self.pending.append(d)
            return d
        if key in self.errors:
            return defer.fail(self.errors[key])
        authority = self.authority.get(key, [])
        if key in self.nxdomain:
            message = dns.Message(rCode=dns.ENAME)
            message.authority = authority
            return defer.fail(dns_error.DNSNameError(message))
        answers = self.answers.get(key, [])
        return defer.succeed(
            (answers, authority if not answers else [], self.additional.get(key, []))
        )


def targets(*specs: str) -> list[Target]:
    """``"udp:1.2.3.4:5060"`` -> Target."""
    out = []
    for spec in specs:
        transport, rest = spec.split(":", 1)
        host, port = rest.rsplit(":", 1)
        out.append(Target(transport, host, int(port)))
    return out


class Base(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.dns = FakeDNS()
        self.clock = task.Clock()
        self.randoms: list[float] = []
        self.resolver = self.make()

    def make(self, **kwargs: Any) -> SipResolver:
        return SipResolver(self.dns, self.clock, random=self.next_random, **kwargs)

    # Typed front ends for trial's unannotated failureResultOf / assertNoResult.
    def failure_of(self, d: Deferred[Any], *types: type[BaseException]) -> Failure:
        trial: Any = super()
        failure: Failure = trial.failureResultOf(d, *types)
        return failure

    def no_result(self, d: Deferred[Any]) -> None:
        trial: Any = super()
        trial.assertNoResult(d)

    def next_random(self) -> float:
        return self.randoms.pop(0) if self.randoms else 0.0

    def resolve(self, uri: str, resolver: Optional[SipResolver] = None) -> list[Target]:
        return self.successResultOf((resolver or self.resolver).resolve(parse_uri(uri)))

    def fails(self, uri: str, resolver: Optional[SipResolver] = None) -> ResolutionError:
        failure = self.failure_of(
            (resolver or self.resolver).resolve(parse_uri(uri)), ResolutionError
        )
        assert isinstance(failure.value, ResolutionError)
        return failure.value


class InterfaceTests(Base):
    def test_fake_is_an_iresolver(self) -> None:
        assert verifyObject(IResolver, self.dns)

    def test_resolution_error_is_a_clearwater_error(self) -> None:
        err = ResolutionError("example.com", ["A example.com: no records"])
        assert isinstance(err, ClearwaterError)
        assert "example.com" in str(err)
        assert err.reasons == ("A example.com: no records",)

    def test_bad_configuration(self) -> None:
        with pytest.raises(ValueError):
            self.make(transports=("UDP", "SCTP"))
        with pytest.raises(ValueError):
            self.make(transports=())
        with pytest.raises(ValueError):
            self.make(lookup_timeout=0)
        assert self.make(transports=("tcp", "TCP", "udp")).transports == ("TCP", "UDP")


class NumericHostTests(Base):
    """RFC 3263 §4.1/§4.2: a numeric host needs no DNS."""

    def test_ipv4_defaults(self) -> None:
        assert self.resolve("sip:alice@192.0.2.1") == targets("UDP:192.0.2.1:5060")
        assert self.resolve("sip:192.0.2.1:5070") == targets("UDP:192.0.2.1:5070")
        assert self.dns.queries == []

    def test_ipv4_transport_param(self) -> None:
        cases = {
            "sip:192.0.2.1;transport=tcp": "TCP:192.0.2.1:5060",
            "sip:192.0.2.1;transport=TLS": "TLS:192.0.2.1:5061",
            "sip:192.0.2.1:6000;transport=tcp": "TCP:192.0.2.1:6000",
            "sip:192.0.2.1;transport=udp": "UDP:192.0.2.1:5060",
        }
        for uri, expected in cases.items():
            assert self.resolve(uri) == targets(expected), uri
        assert self.dns.queries == []

    def test_websocket_transports_and_ports(self) -> None:
        resolver = self.make(transports=("UDP", "TCP", "TLS", "WS", "WSS"))
        assert self.resolve("sip:192.0.2.1;transport=ws", resolver) == targets("WS:192.0.2.1:80")
        assert self.resolve("sip:192.0.2.1;transport=wss", resolver) == targets("WSS:192.0.2.1:443")
        assert self.resolve("sips:192.0.2.1;transport=ws", resolver) == targets("WSS:192.0.2.1:443")

    def test_ipv6(self) -> None:
        assert self.resolve("sip:[2001:db8::1]") == targets("UDP:2001:db8::1:5060")
        result = self.resolve("sip:[2001:db8::1]:5080;transport=tcp")
        assert result == targets("TCP:2001:db8::1:5080")
        assert result[0].host == "2001:db8::1"
        unbracketed = self.successResultOf(
            self.resolver.resolve_host("2001:db8::2", None, None, False)
        )
        assert unbracketed == targets("UDP:2001:db8::2:5060")
        assert self.dns.queries == []

    def test_sips_numeric(self) -> None:
        assert self.resolve("sips:192.0.2.1") == targets("TLS:192.0.2.1:5061")
        assert self.resolve("sips:192.0.2.1:5071") == targets("TLS:192.0.2.1:5071")
        # transport=tcp on a sips: URI means TLS (RFC 3261 §26.2.2)
        result = self.resolve("sips:192.0.2.1;transport=tcp")
        assert result == targets("TLS:192.0.2.1:5061")
        assert result[0].server_name is None

    def test_sips_over_udp_is_impossible(self) -> None:
        err = self.fails("sips:192.0.2.1;transport=udp")
        assert "192.0.2.1" in str(err)

    def test_unsupported_transport(self) -> None:
        self.fails("sip:192.0.2.1;transport=sctp")
        self.fails("sip:example.com;transport=sctp")
        # a transport we know but did not enable
        self.fails("sip:192.0.2.1;transport=ws")
        assert self.dns.queries == []

    def test_default_transport_when_udp_is_disabled(self) -> None:
        resolver = self.make(transports=("TCP", "TLS"))
        assert self.resolve("sip:192.0.2.1", resolver) == targets("TCP:192.0.2.1:5060")
        no_tls = self.make(transports=("UDP", "TCP"))
        self.fails("sips:192.0.2.1", no_tls)

    def test_maddr_overrides_host(self) -> None:
        result = self.resolve("sip:bob@example.com;maddr=192.0.2.9;transport=tcp")
        assert result == targets("TCP:192.0.2.9:5060")
        assert self.dns.queries == []

    def test_non_sip_uris(self) -> None:
        tel = TelUri("+15551234567")
        self.failure_of(self.resolver.resolve(tel), ValueError)
        self.failure_of(self.resolver.resolve(parse_uri("urn:service:sos")), ValueError)
        self.failure_of(self.resolver.resolve_host("", None, None, False), ValueError)
        self.failure_of(self.resolver.resolve_host("a.example", 70000, None, False), ValueError)


class ExplicitPortTests(Base):
    """A hostname with a port: A/AAAA only (RFC 3263 §4.2)."""

    def test_only_address_records_are_queried(self) -> None:
        self.dns.add(naptr("example.com", 10, 10, "SIP+D2T", "_sip._tcp.example.com"))
        self.dns.add(a("example.com", "192.0.2.1"), a("example.com", "192.0.2.2"))
        self.dns.add(aaaa("example.com", "2001:db8::1"))
        result = self.resolve("sip:example.com:5070")
        assert result == targets("UDP:192.0.2.1:5070", "UDP:192.0.2.2:5070", "UDP:2001:db8::1:5070")
        assert self.dns.queries == [("example.com", "A"), ("example.com", "AAAA")]

    def test_transport_and_tls_server_name(self) -> None:
        self.dns.add(a("proxy.example.com", "192.0.2.1"))
        result = self.resolve("sips:proxy.example.com:5081")
        assert result == targets("TLS:192.0.2.1:5081")
        assert result[0].server_name == "proxy.example.com"
        result = self.resolve("sip:proxy.example.com:5081;transport=tcp")
        assert result == targets("TCP:192.0.2.1:5081")
        assert result[0].server_name is None

    def test_no_ipv6(self) -> None:
        resolver = self.make(ipv6=False)
        self.dns.add(a("example.com", "192.0.2.1"), aaaa("example.com", "2001:db8::1"))
        assert self.resolve("sip:example.com:5060", resolver) == targets("UDP:192.0.2.1:5060")
        assert self.dns.count("AAAA") == 0

    def test_aaaa_only(self) -> None:
        self.dns.add(aaaa("v6.example.com", "2001:db8::5"))
        assert self.resolve("sip:v6.example.com:5060") == targets("UDP:2001:db8::5:5060")

    def test_resolve_host_names_the_server_after_the_host(self) -> None:
        self.dns.add(a("proxy.example.com", "192.0.2.8"))
        d = self.resolver.resolve_host("Proxy.Example.COM.", 5061, "tls", False)
        result = self.successResultOf(d)
        assert result == targets("TLS:192.0.2.8:5061")
        assert result[0].server_name == "proxy.example.com"
        d = self.resolver.resolve_host("proxy.example.com", 5061, None, True, server_name="x.org")
        assert self.successResultOf(d)[0].server_name == "x.org"

    def test_maddr_hostname_keeps_uri_domain_as_server_name(self) -> None:
        self.dns.add(a("edge.example.net", "192.0.2.7"))
        result = self.resolve("sips:example.com:5061;maddr=edge.example.net")
        assert result == targets("TLS:192.0.2.7:5061")
        assert result[0].server_name == "example.com"
        assert self.dns.count("NAPTR") + self.dns.count("SRV") == 0


class TransportParamTests(Base):
    """transport= given, no port: SRV for that transport, then A/AAAA (RFC 3263 §4.2)."""

    def test_srv_for_the_transport(self) -> None:
        self.dns.add(srv("_sip._tcp.example.com", 10, 0, 5090, "pc.example.com"))
        self.dns.add(a("pc.example.com", "192.0.2.3"))
        assert self.resolve("sip:example.com;transport=tcp") == targets("TCP:192.0.2.3:5090")
        assert self.dns.count("NAPTR") == 0
        assert self.dns.queries[0] == ("_sip._tcp.example.com", "SRV")

    def test_address_fallback_with_default_port(self) -> None:
        self.dns.add(a("example.com", "192.0.2.4"))
        assert self.resolve("sip:example.com;transport=tls") == targets("TLS:192.0.2.4:5061")
        assert self.dns.queries[0] == ("_sips._tcp.example.com", "SRV")

    def test_tcp_on_sips_means_tls(self) -> None:
        self.dns.add(srv("_sips._tcp.example.com", 1, 0, 5061, "tls.example.com"))
        self.dns.add(a("tls.example.com", "192.0.2.5"))
        result = self.resolve("sips:example.com;transport=tcp")
        assert result == targets("TLS:192.0.2.5:5061")
        assert result[0].server_name == "example.com"

    def test_websocket_srv_labels(self) -> None:
        resolver = self.make(transports=("WS", "WSS"))
        self.dns.add(srv("_sip._ws.example.com", 1, 0, 8080, "ws.example.com"))
        self.dns.add(srv("_sips._ws.example.com", 1, 0, 8443, "ws.example.com"))
        self.dns.add(a("ws.example.com", "192.0.2.6"))
        assert self.resolve("sip:example.com;transport=ws", resolver) == targets(
            "WS:192.0.2.6:8080"
        )
        result = self.resolve("sips:example.com;transport=ws", resolver)
        assert result == targets("WSS:192.0.2.6:8443")
        assert result[0].server_name == "example.com"


class NaptrTests(Base):
    """RFC 3263 §4.1 NAPTR selection."""

    @override
    def setUp(self) -> None:
        super().setUp()
        for label, address in (("udp", "192.0.2.10"), ("tcp", "192.0.2.11"), ("tls", "192.0.2.12")):
            self.dns.add(a(label + ".example.com", address))
        self.dns.add(srv("_sip._udp.example.com", 1, 0, 5060, "udp.example.com"))
        self.dns.add(srv("_sip._tcp.example.com", 1, 0, 5060, "tcp.example.com"))
        self.dns.add(srv("_sips._tcp.example.com", 1, 0, 5061, "tls.example.com"))

    def test_order_then_preference_and_filtering(self) -> None:
        self.dns.add(
            naptr("example.com", 20, 10, "SIP+D2U", "_sip._udp.example.com"),
            naptr("example.com", 10, 50, "SIP+D2T", "_sip._tcp.example.com"),
            naptr("example.com", 10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
            naptr("example.com", 5, 10, "SIP+D2S", "_sip._sctp.example.com"),  # SCTP: unsupported
            naptr("example.com", 5, 10, "SIP+D2W", "_sip._ws.example.com"),  # WS: not enabled
            naptr("example.com", 5, 10, "SIP+D2U", "udp.example.com", flags="a"),  # not "s"
            naptr("example.com", 5, 20, "E2U+sip", "!^.*$!sip:x@y!"),  # ENUM: not ours
        )
        result = self.resolve("sip:example.com")
        assert result == targets(
            "TLS:192.0.2.12:5061", "TCP:192.0.2.11:5060", "UDP:192.0.2.10:5060"
        )
        assert result[0].server_name == "example.com"
        assert result[1].server_name is None
        queried = {name for name, _ in self.dns.queries}
        assert "_sip._sctp.example.com" not in queried
        assert "_sip._ws.example.com" not in queried

    def test_sips_keeps_only_secure_services(self) -> None:
        self.dns.add(
            naptr("example.com", 10, 10, "SIP+D2U", "_sip._udp.example.com"),
            naptr("example.com", 20, 10, "SIPS+D2T", "_sips._tcp.example.com"),
        )
        assert self.resolve("sips:example.com") == targets("TLS:192.0.2.12:5061")
        assert ("_sip._udp.example.com", "SRV") not in self.dns.queries

    def test_websocket_services(self) -> None:
        resolver = self.make(transports=("WSS", "WS"))
        self.dns.add(
            naptr("example.com", 10, 20, "SIP+D2W", "_sip._ws.example.com"),
            naptr("example.com", 10, 10, "SIPS+D2W", "_sips._ws.example.com"),
        )
        self.dns.add(srv("_sip._ws.example.com", 1, 0, 80, "tcp.example.com"))
        self.dns.add(srv("_sips._ws.example.com", 1, 0, 443, "tls.example.com"))
        assert self.resolve("sip:example.com", resolver) == targets(
            "WSS:192.0.2.12:443", "WS:192.0.2.11:80"
        )

    def test_naptr_srv_additional_records(self) -> None:
        self.dns.add(naptr("proxy.net", 10, 10, "SIP+D2T", "_sip._tcp.proxy.net"))
        self.dns.add(
            srv("_sip._tcp.proxy.net", 1, 0, 5062, "p1.proxy.net"),
            srv("_sip._tcp.proxy.net", 2, 0, 5063, "p2.proxy.net"),
            additional=[
                a("p1.proxy.net", "198.51.100.1"),
                aaaa("p1.proxy.net", "2001:db8::a"),
                a("p2.proxy.net", "198.51.100.2"),
                a("elsewhere.net", "203.0.113.9"),  # not an SRV target: ignored
            ],
        )
        result = self.resolve("sip:proxy.net")
        assert result == targets(
            "TCP:198.51.100.1:5062", "TCP:2001:db8::a:5062", "TCP:198.51.100.2:5063"
        )
        assert self.dns.queries == [("proxy.net", "NAPTR"), ("_sip._tcp.proxy.net", "SRV")]

    def test_no_usable_naptr_falls_back_to_srv(self) -> None:
        self.dns.add(naptr("example.com", 10, 10, "SIP+D2S", "_sip._sctp.example.com"))
        assert self.resolve("sip:example.com") == targets(
            "UDP:192.0.2.10:5060", "TCP:192.0.2.11:5060", "TLS:192.0.2.12:5061"
        )

    def test_naptr_to_missing_srv_tries_the_plain_srv_names(self) -> None:
        self.dns.add(naptr("example.com", 10, 10, "SIP+D2T", "_sip._tcp.nowhere.example.com"))
        assert self.resolve("sip:example.com") == targets(
            "UDP:192.0.2.10:5060", "TCP:192.0.2.11:5060", "TLS:192.0.2.12:5061"
        )


class SrvTests(Base):
    """SRV without NAPTR (RFC 3263 §4.1 last paragraph) and RFC 2782 ordering."""

    def test_srv_queries_in_our_transport_order(self) -> None:
        resolver = self.make(transports=("TCP", "UDP", "TLS"))
        self.dns.add(srv("_sip._udp.example.com", 1, 0, 5060, "h.example.com"))
        self.dns.add(srv("_sip._tcp.example.com", 1, 0, 5060, "h.example.com"))
        self.dns.add(a("h.example.com", "192.0.2.20"))
        result = self.resolve("sip:example.com", resolver)
        assert result == targets("TCP:192.0.2.20:5060", "UDP:192.0.2.20:5060")
        assert [q for q in self.dns.queries if q[1] == "SRV"] == [
            ("_sip._tcp.example.com", "SRV"),
            ("_sip._udp.example.com", "SRV"),
            ("_sips._tcp.example.com", "SRV"),
        ]

    def test_sips_queries_only_secure_srv(self) -> None:
        self.dns.add(srv("_sips._tcp.example.com", 1, 0, 5061, "h.example.com"))
        self.dns.add(a("h.example.com", "192.0.2.21"))
        assert self.resolve("sips:example.com") == targets("TLS:192.0.2.21:5061")
        assert [q[0] for q in self.dns.queries if q[1] == "SRV"] == ["_sips._tcp.example.com"]

    def test_priority_then_weight(self) -> None:
        name = "_sip._udp.example.com"
        self.dns.add(
            srv(name, 20, 0, 5060, "backup.example.com"),
            srv(name, 10, 10, 5060, "w10.example.com"),
            srv(name, 10, 30, 5060, "w30.example.com"),
            srv(name, 10, 60, 5060, "w60.example.com"),
        )
        for label, address in (("w10", "1"), ("w30", "2"), ("w60", "3"), ("backup", "9")):
            self.dns.add(a(label + ".example.com", "192.0.2." + address))
        # Priority 10, weights 10/30/60 (running sums 10, 40, 100): 0.05*100 = 5 picks w10;
        # then 30/60 (sums 30, 90): 0.5*90 = 45 picks w60; then w30. Priority 20 last.
        self.randoms = [0.05, 0.5, 0.0, 0.0]
        assert self.resolve("sip:example.com;transport=udp") == targets(
            "UDP:192.0.2.1:5060",
            "UDP:192.0.2.3:5060",
            "UDP:192.0.2.2:5060",
            "UDP:192.0.2.9:5060",
        )
        # The same records from the cache, ordered afresh by the next random numbers:
        # 0.95*100 = 95 -> w60; 0.2*40 = 8 -> w10 (sums 10, 40); then w30.
        self.randoms = [0.95, 0.2, 0.0, 0.0]
        assert self.resolve("sip:example.com;transport=udp") == targets(
            "UDP:192.0.2.3:5060",
            "UDP:192.0.2.1:5060",
            "UDP:192.0.2.2:5060",
            "UDP:192.0.2.9:5060",
        )

    def test_rfc2782_algorithm(self) -> None:
        records = [
            Srv(1, 0, 1, "zero"),
            Srv(1, 50, 2, "fifty"),
            Srv(0, 5, 3, "first"),
            Srv(1, 50, 4, "fifty-b"),
        ]
        randoms = iter([0.0, 0.0, 0.6, 0.0])
        # priority 0 alone; then zero weights first in the running sums: a random of 0 picks
        # "zero"; then sums 50, 100: 0.6*100 = 60 picks "fifty-b"; then "fifty".
        ordered = srv_order(records, lambda: next(randoms))
        assert [r.target for r in ordered] == ["first", "zero", "fifty-b", "fifty"]

    @given(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 100), st.integers(1, 65535)),
            max_size=8,
        ),
        st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=8, max_size=8),
    )
    def test_srv_order_is_a_priority_sorted_permutation(
        self, specs: list[tuple[int, int, int]], randoms: list[float]
    ) -> None:
        records = [Srv(p, w, port, f"t{i}") for i, (p, w, port) in enumerate(specs)]
        feed = iter(randoms)
        ordered = srv_order(records, lambda: next(feed, 0.5))
        assert sorted(ordered, key=lambda r: r.target) == sorted(records, key=lambda r: r.target)
        priorities = [r.priority for r in ordered]
        assert priorities == sorted(priorities)

    def test_dot_target_means_not_available(self) -> None:
        self.dns.add(srv("_sip._udp.example.com", 0, 0, 0, "."))
        self.dns.add(a("example.com", "192.0.2.30"))
        err = self.fails("sip:example.com;transport=udp")
        assert "not available" in str(err)
        assert self.dns.count("A") == 0

    def test_dot_target_for_one_transport_only(self) -> None:
        self.dns.add(srv("_sip._udp.example.com", 0, 0, 0, "."))
        self.dns.add(srv("_sip._tcp.example.com", 0, 0, 5060, "h.example.com"))
        self.dns.add(a("h.example.com", "192.0.2.31"))
        assert self.resolve("sip:example.com") == targets("TCP:192.0.2.31:5060")

    def test_no_srv_falls_back_to_address_records(self) -> None:
        self.dns.add(a("example.com", "192.0.2.40"), aaaa("example.com", "2001:db8::40"))
        assert self.resolve("sip:example.com") == targets(
            "UDP:192.0.2.40:5060", "UDP:2001:db8::40:5060"
        )
        sips = self.resolve("sips:example.com")
        assert sips == targets("TLS:192.0.2.40:5061", "TLS:2001:db8::40:5061")
        assert {t.server_name for t in sips} == {"example.com"}

    def test_srv_targets_looked_up_without_additional_records(self) -> None:
        self.dns.add(
            srv("_sip._udp.example.com", 1, 0, 5070, "a.example.com"),
            srv("_sip._udp.example.com", 2, 0, 5071, "b.example.com"),
        )
        self.dns.add(a("a.example.com", "192.0.2.50"), aaaa("b.example.com", "2001:db8::51"))
        assert self.resolve("sip:example.com") == targets(
            "UDP:192.0.2.50:5070", "UDP:2001:db8::51:5071"
        )
        assert ("b.example.com", "AAAA") in self.dns.queries

    def test_duplicates_are_removed(self) -> None:
        self.dns.add(
            srv("_sip._udp.example.com", 1, 0, 5060, "a.example.com"),
            srv("_sip._udp.example.com", 2, 0, 5060, "alias.example.com"),
        )
        self.dns.add(a("a.example.com", "192.0.2.60"), a("alias.example.com", "192.0.2.60"))
        assert self.resolve("sip:example.com") == targets("UDP:192.0.2.60:5060")

    def test_srv_target_without_addresses(self) -> None:
        self.dns.add(srv("_sip._udp.example.com", 1, 0, 5060, "ghost.example.com"))
        err = self.fails("sip:example.com")
        assert "ghost.example.com" in str(err)


class CacheTests(Base):
    """Record sets are cached for their TTL on the injected clock."""

    def test_positive_cache_hit_and_expiry(self) -> None:
        self.dns.add(srv("_sip._udp.example.com", 1, 0, 5060, "h.example.com", ttl=120))
        self.dns.add(a("h.example.com", "192.0.2.70", ttl=60))
        first = self.resolve("sip:example.com")
        sent = len(self.dns.queries)
        assert sent > 0
        self.clock.advance(29)  # within every TTL, negative answers' 30 s included
        assert self.resolve("sip:example.com") == first
        assert len(self.dns.queries) == sent
        self.clock.advance(32)  # t=61: the A record (TTL 60) expired, the SRV (TTL 120) has not
        assert self.resolve("sip:example.com") == first
        again = self.dns.queries[sent:]
        assert ("h.example.com", "A") in again
        assert ("_sip._udp.example.com", "SRV") not in again
        self.clock.advance(60)  # t=121: past the SRV TTL too
        self.resolve("sip:example.com")
        assert ("_sip._udp.example.com", "SRV") in self.dns.queries[sent + len(again) :]

    def test_additional_records_are_cached_with_their_srv(self) -> None:
        self.dns.add(
            srv("_sip._tcp.example.com", 1, 0, 5060, "h.example.com", ttl=300),
            additional=[a("h.example.com", "192.0.2.71", ttl=100)],
        )
        self.resolve("sip:example.com;transport=tcp")
        self.clock.advance(99)
        assert self.resolve("sip:example.com;transport=tcp") == targets("TCP:192.0.2.71:5060")
        assert len(self.dns.queries) == 1
        self.clock.advance(2)  # the glue's TTL bounds the entry
        self.resolve("sip:example.com;transport=tcp")
        assert len(self.dns.queries) == 2

    def test_negative_caching(self) -> None:
        self.dns.nxdomain.add(("example.com", dns.NAPTR))
        self.dns.add(srv("_sip._udp.example.com", 1, 0, 5060, "h.example.com", ttl=3600))
        self.dns.add(a("h.example.com", "192.0.2.72", ttl=3600))
        self.resolve("sip:example.com")
        assert self.dns.count("NAPTR") == 1
        empty_srv = self.dns.count("SRV")  # _sip._tcp and _sips._tcp: empty answers
        self.clock.advance(29)
        self.resolve("sip:example.com")
        assert (self.dns.count("NAPTR"), self.dns.count("SRV")) == (1, empty_srv)
        self.clock.advance(2)  # past the default 30 s negative TTL
        self.resolve("sip:example.com")
        assert self.dns.count("NAPTR") == 2
        assert self.dns.count("SRV") == empty_srv + 2  # the empty ones again

    def test_negative_ttl_from_soa(self) -> None:
        key = ("example.com", dns.NAPTR)
        self.dns.nxdomain.add(key)
        self.dns.authority[key] = [soa("example.com", ttl=600, minimum=10)]
        self.dns.add(a("example.com", "192.0.2.73"))
        resolver = self.make(negative_ttl=1000)
        self.resolve("sip:example.com", resolver)
        self.clock.advance(9)
        self.resolve("sip:example.com", resolver)
        assert self.dns.count("NAPTR") == 1
        self.clock.advance(2)
        self.resolve("sip:example.com", resolver)
        assert self.dns.count("NAPTR") == 2

    def test_cache_is_bounded(self) -> None:
        resolver = self.make(max_cache_entries=1, ipv6=False)
        self.dns.add(a("one.example.com", "192.0.2.1"), a("two.example.com", "192.0.2.2"))
        self.resolve("sip:one.example.com:5060", resolver)
        self.resolve("sip:one.example.com:5060", resolver)
        assert self.dns.queries.count(("one.example.com", "A")) == 1
        self.resolve("sip:two.example.com:5060", resolver)  # evicts one.example.com
        self.resolve("sip:one.example.com:5060", resolver)
        assert self.dns.queries.count(("one.example.com", "A")) == 2

    def test_concurrent_lookups_share_a_query(self) -> None:
        key = ("example.com", dns.A)
        self.dns.hang.add(key)
        first = self.resolver.resolve(parse_uri("sip:example.com:5060"))
        second = self.resolver.resolve(parse_uri("sip:example.com:5060;transport=tcp"))
        self.no_result(first)
        self.no_result(second)
        assert self.dns.queries.count(("example.com", "A")) == 1
        pending = self.dns.pending[0]
        pending.callback(([a("example.com", "192.0.2.80")], [], []))
        assert self.successResultOf(first) == targets("UDP:192.0.2.80:5060")
        assert self.successResultOf(second) == targets("TCP:192.0.2.80:5060")
        assert self.clock.getDelayedCalls() == []


class FailureTests(Base):
    """A failed query counts as "no records" for its step; resolution goes on."""

    def test_naptr_timeout_carries_on_with_srv(self) -> None:
        self.dns.hang.add(("example.com", dns.NAPTR))
        self.dns.add(srv("_sip._tcp.example.com", 1, 0, 5060, "h.example.com"))
        self.dns.add(a("h.example.com", "192.0.2.90"))
        d = self.resolver.resolve(parse_uri("sip:example.com"))
        self.no_result(d)
        self.clock.advance(4.9)
        self.no_result(d)
        self.clock.advance(0.2)
        assert self.successResultOf(d) == targets("TCP:192.0.2.90:5060")
        assert self.clock.getDelayedCalls() == []  # no time-out left behind

    def test_timeouts_are_not_cached(self) -> None:
        self.dns.hang.add(("example.com", dns.NAPTR))
        self.dns.add(a("example.com", "192.0.2.91"))
        d = self.resolver.resolve(parse_uri("sip:example.com"))
        self.clock.advance(5)
        self.successResultOf(d)
        self.resolver.resolve(parse_uri("sip:example.com"))
        assert self.dns.count("NAPTR") == 2

    def test_server_failure_carries_on(self) -> None:
        self.dns.errors[("example.com", dns.NAPTR)] = dns_error.DNSServerError("SERVFAIL")
        self.dns.errors[("_sip._udp.example.com", dns.SRV)] = dns_error.DNSServerError("SERVFAIL")
        self.dns.add(a("example.com", "192.0.2.92"))
        assert self.resolve("sip:example.com") == targets("UDP:192.0.2.92:5060")
        # a server failure is not a negative answer: not cached
        self.resolve("sip:example.com")
        assert self.dns.count("NAPTR") == 2
        assert self.dns.queries.count(("_sip._udp.example.com", "SRV")) == 2
        assert self.dns.queries.count(("_sip._tcp.example.com", "SRV")) == 1

    def test_server_failure_is_reported(self) -> None:
        self.dns.errors[("example.com", dns.A)] = dns_error.DNSServerError("SERVFAIL")
        err = self.fails("sip:example.com:5060")
        assert "A example.com: failed (DNSServerError)" in err.reasons
        assert "AAAA example.com: no records" in err.reasons

    def test_hosts_style_domain_error_is_negative(self) -> None:
        self.dns.errors[("example.com", dns.NAPTR)] = dns_error.DomainError("example.com")
        self.dns.add(a("example.com", "192.0.2.94"))
        self.resolve("sip:example.com")
        self.resolve("sip:example.com")
        assert self.dns.count("NAPTR") == 1

    def test_everything_fails(self) -> None:
        for key in (("example.com", dns.NAPTR), ("example.com", dns.A), ("example.com", dns.AAAA)):
            self.dns.hang.add(key)
        d = self.resolver.resolve(parse_uri("sip:example.com"))
        self.clock.advance(5)  # NAPTR times out; SRV: empty
        self.no_result(d)
        self.clock.advance(5)  # A and AAAA (queried together) time out
        failure = self.failure_of(d, ResolutionError)
        err = failure.value
        assert isinstance(err, ResolutionError)
        assert err.host == "example.com"
        assert "'example.com'" in str(err)
        assert "NAPTR example.com: timed out" in err.reasons
        assert "SRV _sip._udp.example.com: no records" in err.reasons
        assert "A example.com: timed out" in err.reasons
        assert "AAAA example.com: timed out" in err.reasons
        assert self.clock.getDelayedCalls() == []

    def test_nxdomain_everywhere(self) -> None:
        for rtype in (dns.NAPTR, dns.A, dns.AAAA):
            self.dns.nxdomain.add(("nowhere.example", rtype))
        err = self.fails("sip:nowhere.example")
        assert "A nowhere.example: no records" in str(err)

    def test_lookup_raising_synchronously(self) -> None:
        self.dns.raising.add(("example.com", dns.A))
        self.dns.add(aaaa("example.com", "2001:db8::93"))
        assert self.resolve("sip:example.com:5060") == targets("UDP:2001:db8::93:5060")


class BlacklistTests(Base):
    """Blacklisted targets sort last until their time runs out (RFC 3263 §4.3 fail-over)."""

    @override
    def setUp(self) -> None:
        super().setUp()
        self.dns.add(
            a("example.com", "192.0.2.1"),
            a("example.com", "192.0.2.2"),
            a("example.com", "192.0.2.3"),
        )

    def test_blacklisted_target_moves_to_the_end_then_returns(self) -> None:
        first, second, third = self.resolve("sip:example.com:5060")
        self.resolver.blacklist(first)
        assert self.resolver.is_blacklisted(first)
        assert not self.resolver.is_blacklisted(second)
        assert self.resolve("sip:example.com:5060") == [second, third, first]
        self.clock.advance(29.9)
        assert self.resolve("sip:example.com:5060") == [second, third, first]
        self.clock.advance(0.2)  # the default 30 s are over
        assert not self.resolver.is_blacklisted(first)
        assert self.resolve("sip:example.com:5060") == [first, second, third]

    def test_explicit_duration_and_order_among_blacklisted(self) -> None:
        first, second, third = self.resolve("sip:example.com:5060")
        self.resolver.blacklist(second, 100)
        self.resolver.blacklist(first, 10)
        assert self.resolve("sip:example.com:5060") == [third, first, second]
        self.clock.advance(11)
        assert self.resolve("sip:example.com:5060") == [first, third, second]
        self.resolver.blacklist(second, 0)  # lifted
        assert self.resolve("sip:example.com:5060") == [first, second, third]

    def test_blacklist_is_per_transport_and_port(self) -> None:
        self.resolver.blacklist(Target("TCP", "192.0.2.1", 5060))
        self.resolver.blacklist(Target("UDP", "192.0.2.1", 5070))
        assert self.resolve("sip:example.com:5060")[0] == Target("UDP", "192.0.2.1", 5060)

    def test_all_blacklisted_are_still_returned(self) -> None:
        for target in self.resolve("sip:example.com:5060"):
            self.resolver.blacklist(target)
        assert len(self.resolve("sip:example.com:5060")) == 3

    def test_numeric_hosts_too(self) -> None:
        target = Target("UDP", "192.0.2.200", 5060)
        self.resolver.blacklist(target)
        assert self.resolver.is_blacklisted(target)
        assert self.resolve("sip:192.0.2.200") == [target]


class ResolveLiteralTests(Base):
    """resolve_literal: resolve's answer for IP literals, without a Deferred; None otherwise."""

    def test_same_targets_as_resolve_for_ip_literals(self) -> None:
        for uri in (
            "sip:192.0.2.1",
            "sip:192.0.2.1:5070",
            "sip:u@192.0.2.1;transport=tcp",
            "sip:[2001:db8::1]:5080;transport=udp",
            "sips:192.0.2.1",
            "sip:example.com;maddr=192.0.2.7",
        ):
            literal = self.resolver.resolve_literal(parse_uri(uri))
            assert literal is not None, uri
            assert literal == self.resolve(uri), uri
        assert self.dns.queries == []

    def test_none_when_a_lookup_or_an_error_is_due(self) -> None:
        for uri in (
            "sip:example.com",
            "sip:192.0.2.1;maddr=example.com",
            "sip:192.0.2.1;transport=bogus",
            "sip:192.0.2.1;transport=ws",  # resolve fails these: it says why
            "sips:192.0.2.1;transport=udp",
            "tel:+15551234",
        ):
            assert self.resolver.resolve_literal(parse_uri(uri)) is None, uri
