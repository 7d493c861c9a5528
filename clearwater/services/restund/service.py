# -*- test-case-name: tests.unit.stun.test_shell -*-
"""The ``twistd restund`` service tree: the TURN server and its management HTTP port.

:func:`build` assembles, from a frozen :class:`~clearwater.services.restund.tap.RestundConfig`, a
named ``MultiService`` (STYLE.md §2.4):

- ``"turn"``, a :class:`TurnService`: one :class:`~clearwater.stun.turn.TurnServer` driven by a
  :class:`~clearwater.stun.shell.TurnDriver`, listening on UDP and TCP at each ``--listen``
  address and on TLS at each ``--tls-listen`` address. The ports are bound before the reactor
  runs (``privilegedStartService``), so a port in use stops start-up. Stopping closes the
  ports, every relay and every client connection;
- ``"http"``: ``GET /ping`` and ``GET /metrics`` (ARCHITECTURE.md §6) on ``--http-address``
  (loopback by default) and ``--http-port`` (0: none). The metrics are read from the core's
  counters at scrape time; no label names a user:

=============================================  =========  ====================================
name                                           labels     meaning
=============================================  =========  ====================================
``clearwater_turn_allocations_active``                    allocations now (gauge)
``clearwater_turn_allocations_total``                     allocations made
``clearwater_turn_relayed_packets_total``      direction  ``to_peer``, ``to_client``
``clearwater_turn_relayed_bytes_total``        direction  their application bytes
``clearwater_turn_auth_failures_total``                   refused for their credentials
``clearwater_turn_rejections_total``           reason     ``quota`` (486, 508), ``peer`` (403)
``clearwater_turn_dropped_packets_total``      reason     ``bandwidth`` cap, no ``permission``
``clearwater_turn_connections_active``                    TCP and TLS clients (gauge)
``clearwater_turn_relay_ports_active``                    relay ports, reserved too (gauge)
``clearwater_turn_peer_connections_active``               RFC 6062 peer connections (gauge)
``clearwater_turn_key_lookups_total``          result     found, unknown, failed, dropped
``clearwater_turn_relay_bind_failures_total``             no free relay port (508)
``clearwater_turn_send_failures_total``                   could not be sent
=============================================  =========  ====================================
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application import internet, service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.http.management import management_site
from clearwater.services.restund.tap import RestundConfig
from clearwater.stun.credentials import HomesteadDigest, IKeyProvider, SharedSecret, StaticUsers
from clearwater.stun.shell import (
    DEFAULT_LOOKUP_TIMEOUT,
    MAX_DATAGRAM,
    ITurnReactor,
    TurnCore,
    TurnDriver,
    TurnStreamFactory,
    TurnUdpProtocol,
)
from clearwater.stun.turn import PeerPolicy, TurnConfig, TurnServer

__all__ = [
    "TurnCollector",
    "TurnService",
    "build",
    "key_provider",
    "make_service",
    "turn_config",
]

_log = Logger()


def turn_config(config: RestundConfig) -> TurnConfig:
    """The core's configuration for ``config``."""
    return TurnConfig(
        realm=config.realm,
        relay_ipv4=config.relay_ipv4,
        relay_ipv6=config.relay_ipv6,
        default_lifetime=config.lifetime,
        max_lifetime=config.max_lifetime,
        max_allocations=config.max_allocations,
        max_allocations_per_user=config.user_quota,
        bandwidth=config.bandwidth,
        peers=PeerPolicy(
            allow_loopback=config.allow_loopback_peers,
            # Any: mypy's attrs plugin types a converter=tuple field as Iterable[_T_co].
            allow=cast(Any, config.allow_peers),
            deny=cast(Any, config.deny_peers),
        ),
    )


def key_provider(
    config: RestundConfig, reactor: ISipReactor, closers: Optional[list[Callable[[], Any]]] = None
) -> IKeyProvider:
    """The key provider of ``config``'s credentials scheme. For homestead, the HTTP
    connection pool's closer is appended to ``closers``."""
    if config.credentials == "users":
        return StaticUsers(config.realm, config.users)
    if config.credentials == "secret":
        assert config.static_auth_secret is not None
        return SharedSecret(config.realm, config.static_auth_secret, reactor)
    from twisted.web.client import Agent, HTTPConnectionPool

    assert config.hs_hostname is not None
    host, port = config.hs_hostname
    pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
    if closers is not None:
        closers.append(pool.closeCachedConnections)
    bracketed = "[" + host + "]" if ":" in host else host
    return HomesteadDigest.over_http(
        reactor,
        Agent(reactor, pool=pool),  # type: ignore[no-untyped-call]
        ["http://" + bracketed + ":" + str(port)],
        timeout=config.homestead_timeout,
        ttl=config.key_cache_ttl,
    )


#: The receive buffer asked for the listening UDP ports: every client's ChannelData arrives on
#: one socket, and the kernel's default (~200 KB) overflows in the bursts of a few hundred
#: clients sending at once (the kernel caps it at net.core.rmem_max).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def _grow_receive_buffer(port: object) -> None:
    sock = getattr(port, "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # best effort
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


class TurnService(service.Service):
    """The TURN server as a service: listens before the reactor runs; on stop closes the ports
    and every relay and client connection."""

    def __init__(
        self,
        reactor: ISipReactor,
        driver: TurnDriver,
        listen: Sequence[tuple[str, int]],
        *,
        tls_listen: Sequence[tuple[str, int]] = (),
        tls: Any = None,
        closers: Sequence[Callable[[], Any]] = (),
    ) -> None:
        self.reactor = reactor
        self.driver = driver
        self.listen = tuple(listen)
        self.tls_listen = tuple(tls_listen)
        self.tls = tls
        self.closers = tuple(closers)
        #: The listening ports, once started: ``(kind, port)`` with kind udp, tcp or tls.
        self.ports: list[tuple[str, IListeningPort]] = []

    @override
    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self._listen()

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._listen()

    def _listen(self) -> None:
        if self.ports:
            return
        reactor = self.reactor
        driver = self.driver
        try:
            for host, port in self.listen:
                udp = reactor.listenUDP(
                    port, TurnUdpProtocol(driver), interface=host, maxPacketSize=MAX_DATAGRAM
                )
                _grow_receive_buffer(udp)
                self.ports.append(("udp", udp))
                tcp = reactor.listenTCP(port, TurnStreamFactory(driver, "tcp"), interface=host)
                self.ports.append(("tcp", tcp))
                driver.stream_listening(_address(tcp))
            for host, port in self.tls_listen:
                tls = reactor.listenSSL(
                    port, TurnStreamFactory(driver, "tls"), self.tls, interface=host
                )
                self.ports.append(("tls", tls))
                driver.stream_listening(_address(tls))
        except Exception:
            self._close_ports()
            raise
        for kind, listening in self.ports:
            host_, port_ = _address(listening)
            _log.info(
                "restund listening on {kind} {host}:{port}", kind=kind, host=host_, port=port_
            )

    def _close_ports(self) -> list[Deferred[None]]:
        stopping = []
        for _, port in self.ports:
            d = port.stopListening()
            if isinstance(d, Deferred):
                stopping.append(d)
        self.ports = []
        return stopping

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        stopping = self._close_ports()
        self.driver.stop()
        for close in self.closers:
            result = close()
            if isinstance(result, Deferred):
                stopping.append(result)
        d: Deferred[Any] = DeferredList(stopping, consumeErrors=True)
        return d.addCallback(lambda _: None)


def _address(port: Any) -> tuple[str, int]:
    host = port.getHost()
    return host.host, host.port


class TurnCollector(Collector):
    """The restund metrics (see the module docstring), built from ``driver``'s and its core's
    counters when the registry is scraped."""

    def __init__(self, driver: TurnDriver) -> None:
        self.driver = driver

    @override
    def collect(self) -> Iterable[Metric]:
        driver = self.driver
        stats = driver.core.stats
        active = GaugeMetricFamily(
            "clearwater_turn_allocations_active", "TURN allocations now.", value=stats.allocations
        )
        made = CounterMetricFamily(
            "clearwater_turn_allocations", "TURN allocations made.", value=stats.allocations_total
        )
        packets = CounterMetricFamily(
            "clearwater_turn_relayed_packets",
            "Datagrams relayed, by direction.",
            labels=["direction"],
        )
        packets.add_metric(["to_peer"], stats.relayed_packets_to_peer)
        packets.add_metric(["to_client"], stats.relayed_packets_to_client)
        relayed = CounterMetricFamily(
            "clearwater_turn_relayed_bytes",
            "Application bytes relayed, by direction.",
            labels=["direction"],
        )
        relayed.add_metric(["to_peer"], stats.relayed_bytes_to_peer)
        relayed.add_metric(["to_client"], stats.relayed_bytes_to_client)
        auth = CounterMetricFamily(
            "clearwater_turn_auth_failures",
            "Requests refused for their credentials.",
            value=stats.auth_failures,
        )
        rejections = CounterMetricFamily(
            "clearwater_turn_rejections",
            "Requests refused by quota or peer policy.",
            labels=["reason"],
        )
        rejections.add_metric(["quota"], stats.quota_rejections)
        rejections.add_metric(["peer"], stats.peer_rejections)
        dropped = CounterMetricFamily(
            "clearwater_turn_dropped_packets",
            "Packets dropped by the bandwidth cap or for lack of a permission.",
            labels=["reason"],
        )
        dropped.add_metric(["bandwidth"], stats.bandwidth_drops)
        dropped.add_metric(["permission"], stats.permission_drops)
        connections = GaugeMetricFamily(
            "clearwater_turn_connections_active",
            "TCP and TLS client connections now.",
            value=driver.connections,
        )
        relays = GaugeMetricFamily(
            "clearwater_turn_relay_ports_active",
            "Relay ports open, reserved ones included.",
            value=driver.relays,
        )
        peers = GaugeMetricFamily(
            "clearwater_turn_peer_connections_active",
            "RFC 6062 peer connections now.",
            value=driver.peer_connections,
        )
        lookups = CounterMetricFamily(
            "clearwater_turn_key_lookups", "Key look-ups, by result.", labels=["result"]
        )
        for result, count in driver.lookup_results.items():
            lookups.add_metric([result], count)
        bind_failures = CounterMetricFamily(
            "clearwater_turn_relay_bind_failures",
            "Allocations that found no free relay port.",
            value=driver.relay_bind_failures,
        )
        send_failures = CounterMetricFamily(
            "clearwater_turn_send_failures",
            "Datagrams or frames that could not be sent.",
            value=driver.send_failures,
        )
        return [
            active,
            made,
            packets,
            relayed,
            auth,
            rejections,
            dropped,
            connections,
            relays,
            peers,
            lookups,
            bind_failures,
            send_failures,
        ]


def build(
    config: RestundConfig,
    reactor: ISipReactor,
    keys: IKeyProvider,
    *,
    core: Optional[TurnCore] = None,
    registry: Optional[CollectorRegistry] = None,
    closers: Sequence[Callable[[], Any]] = (),
) -> service.MultiService:
    """The restund service tree for ``config`` taking keys from ``keys``; ``core`` replaces
    the TURN server (tests), ``registry`` the fresh metrics registry."""
    tls = None
    if config.tls_listen:
        from clearwater.sip.transport import TlsSettings

        # ALPN (RFC 7443): coturn's clients offer stun.turn, and a listener with no ALPN
        # protocols fails their handshake (Twisted answers an offer it cannot match with an
        # internal_error alert)
        tls = TlsSettings(certificate=config.tls_cert, key=config.tls_key).server_options(
            alpn=(b"stun.turn", b"stun.nat-discovery")
        )
    if core is None:
        core = TurnServer(turn_config(config))
    lookup_timeout = DEFAULT_LOOKUP_TIMEOUT
    if config.credentials == "homestead":
        lookup_timeout = max(lookup_timeout, config.homestead_timeout + 1.0)
    driver = TurnDriver(
        cast(ITurnReactor, reactor),
        core,
        keys,
        relay_ipv4=config.relay_ipv4,
        relay_ipv6=config.relay_ipv6,
        min_port=config.min_port,
        max_port=config.max_port,
        lookup_timeout=lookup_timeout,
        idle_timeout=float(config.max_lifetime + 60),
    )
    top = service.MultiService()
    turn = TurnService(
        reactor, driver, config.listen, tls_listen=config.tls_listen, tls=tls, closers=closers
    )
    turn.setName("turn")  # type: ignore[no-untyped-call]
    turn.setServiceParent(top)  # type: ignore[no-untyped-call]
    if config.http_port:
        registry = registry if registry is not None else CollectorRegistry()
        registry.register(TurnCollector(driver))
        site = management_site(registry, reactor=reactor)
        http = internet.TCPServer(
            config.http_port, site, interface=config.http_address, reactor=reactor
        )
        http.setName("http")
        http.setServiceParent(top)
    return top


def make_service(config: RestundConfig, reactor: ISipReactor) -> service.MultiService:
    """Make the key provider and build the tree; a bad certificate or key is a SystemExit
    naming it."""
    closers: list[Callable[[], Any]] = []
    try:
        keys = key_provider(config, reactor, closers)
        return build(config, reactor, keys, closers=closers)
    except ValueError as e:
        raise SystemExit("twistd restund: " + str(e)) from e
