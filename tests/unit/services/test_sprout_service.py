"""``twistd sprout``'s service tree: listening, plugins, the management port, graceful stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, cast

import pytest
from twisted.application.internet import TCPServer
from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.defer import Deferred
from twisted.plugin import getPlugins
from twisted.web.resource import Resource
from twisted.web.server import Site
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.services.sprout import tap
from clearwater.services.sprout.service import (
    QUIESCE_TIMEOUT,
    SipService,
    build,
    listening_ports,
    make_service,
)
from clearwater.sip import Request, Response
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper
from clearwater.sip.ua import IncomingRequest, UserAgent
from clearwater.testing import LossyDatagramLink, SipMemoryReactor

ROOT = Path(__file__).resolve().parents[3]
GREETER_DIR = ROOT / "examples" / "sproutlets"
ALICE, BOB = "10.0.0.1", "10.0.0.2"


def config(*args: str, scscf: bool = False) -> tap.SproutConfig:
    """Sprout's configuration; without the built-in S-CSCF unless ``scscf`` (these tests
    host their own sproutlets, on its port too)."""
    options = tap.SproutOptions()
    base = ["--home-domain", "example.com", "--local-ip", "10.0.0.3"]
    base += ["--subscriber-store", "memory:"] if scscf else ["--scscf", "0"]
    options.parseOptions([*base, *args])
    return options.config()


class Ringing(SproutletTsx):
    """Forwards; a test then decides when Bob answers."""


class Forwarder(Sproutlet):
    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        return Ringing(helper)


class Net:
    """Alice and Bob around a sprout built from ``config`` (SIP port 5060 on 10.0.0.3)."""

    def __init__(self, cfg: tap.SproutConfig) -> None:
        self.reactor = SipMemoryReactor()
        reactor = cast(ISipReactor, self.reactor)
        self.incoming: list[IncomingRequest] = []
        self.alice = UserAgent(reactor, user="alice", outbound_proxy="sip:10.0.0.3:5060")
        self.bob = UserAgent(reactor, user="bob", handler=self.incoming.append)
        self.alice.listen("udp:" + ALICE + ":5060")
        self.bob.listen("udp:" + BOB + ":5060")
        self.top = build(cfg, reactor, [Forwarder("fwd", port=5054)])
        self.top.privilegedStartService()
        self.top.startService()
        ports = self.reactor.udp_listeners
        self.links = [
            LossyDatagramLink(ports[i], ports[j])
            for i in range(len(ports))
            for j in range(i + 1, len(ports))
        ]

    @property
    def sip(self) -> SipService:
        return cast(SipService, self.top.getServiceNamed("sip"))

    def pump(self) -> None:
        while sum(link.pump() for link in self.links) > 0:
            pass


def test_sprout_is_a_twistd_plugin() -> None:
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert "sprout" in makers
    assert isinstance(makers["sprout"].options(), tap.SproutOptions)


def test_it_listens_on_udp_and_tcp_at_the_sip_port_and_the_sproutlet_ports() -> None:
    net = Net(config("--sip-port", "5060", "--http-port", "9888"))
    udp = [(p.interface, p.port) for p in net.reactor.udp_listeners[2:]]
    assert udp == [("10.0.0.3", 5060), ("10.0.0.3", 5054)]
    tcp = [(port, interface) for port, _, _, interface in net.reactor.tcpServers]
    assert (5060, "10.0.0.3") in tcp and (5054, "10.0.0.3") in tcp
    assert (9888, "127.0.0.1") in tcp  # the management port, on loopback by default


def test_no_http_port_no_management_service() -> None:
    top = build(config("--sip-port", "5060", "--http-port", "0"), _reactor(), [])
    assert [s.name for s in top] == ["sip"]


def test_listening_ports_each_once() -> None:
    cfg = config("--sip-port", "5060")
    sproutlets = [Forwarder("a", port=5054), Forwarder("b", port=5060), Forwarder("c")]
    assert listening_ports(cfg, sproutlets) == [5060, 5054]


def test_nothing_to_listen_on_stops_start_up() -> None:
    with pytest.raises(SystemExit, match="nothing to listen on: give --sip-port"):
        make_service(config(), _reactor())


def test_a_plugin_that_fails_stops_start_up_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no luck')\n")
    with pytest.raises(SystemExit, match="broken"):
        make_service(config("--sip-port", "5060", "--plugin-path", str(tmp_path)), _reactor())


def test_make_service_loads_the_plugins_from_plugin_path() -> None:
    cfg = config(
        "--sip-port", "5060", "--plugin-path", str(GREETER_DIR), "-N", "greeter,greeting,Hi"
    )
    top = make_service(cfg, _reactor())
    proxy = cast(SipService, top.getServiceNamed("sip")).proxy
    assert [s.service_name for s in proxy.sproutlets] == ["greeter"]


def test_the_scscf_is_built_in_with_its_stores_closed_last() -> None:
    top = build(config("--http-port", "0", scscf=True), _reactor(), [])
    assert [s.name for s in top] == ["stores", "sip"]  # stopped in reverse: SIP first
    proxy = cast(SipService, top.getServiceNamed("sip")).proxy
    names = [(s.service_name, s.port, s.next_service) for s in proxy.sproutlets]
    assert names == [
        ("scscf", 5054, "registrar"),
        ("registrar", 0, "subscription"),
        ("subscription", 0, "scscf-proxy"),
        ("scscf-proxy", 0, ""),
    ]
    assert cast(SipService, top.getServiceNamed("sip")).listen == (
        "udp:10.0.0.3:5054",
        "tcp:10.0.0.3:5054",
    )


def test_the_scscf_adds_its_http_api_to_the_management_port() -> None:
    top = build(config(scscf=True), _reactor(), [])
    site = cast(Site, cast(TCPServer, top.getServiceNamed("http")).args[1])
    children = cast(Resource, site.resource).children
    assert {b"ping", b"metrics", b"impu", b"registrations"} <= set(children)
    plain = build(config("--sip-port", "5060"), _reactor(), [])
    site = cast(Site, cast(TCPServer, plain.getServiceNamed("http")).args[1])
    assert b"impu" not in cast(Resource, site.resource).children


def test_timer_c_option_reaches_the_proxy() -> None:
    top = build(config("--sip-port", "5060", "--timer-c", "7"), _reactor(), [])
    assert cast(SipService, top.getServiceNamed("sip")).proxy.timer_c == 7.0


def test_graceful_stop_refuses_new_calls_and_waits_for_the_running_ones() -> None:
    net = Net(config("--sip-port", "5060"))
    call = net.alice.invite("sip:bob@" + BOB + ":5060", body=b"v=0\r\n")
    net.pump()
    assert len(net.incoming) == 1
    net.incoming[0].respond(180)
    net.pump()
    stopped = net.top.stopService()
    assert isinstance(stopped, Deferred)
    assert not _fired(stopped)  # the call is still ringing
    late: Deferred[Response] = net.alice.request("OPTIONS", "sip:bob@" + BOB + ":5060")
    net.pump()
    refused = _result(late)
    assert refused.status == 503 and refused.headers.get("Retry-After") == "0"
    net.incoming[0].respond(200, body=b"v=0\r\n")
    net.pump()
    assert _result(call.answered) is not None
    assert _fired(stopped)  # the last transaction ended: sockets closed
    assert not any(p.listening for p in net.reactor.udp_listeners[2:])


def test_graceful_stop_gives_up_after_the_quiesce_timeout() -> None:
    net = Net(config("--sip-port", "5060"))
    net.alice.invite("sip:bob@" + BOB + ":5060", body=b"v=0\r\n")
    net.pump()
    net.incoming[0].respond(180)  # and Bob never answers
    net.pump()
    stopped = net.top.stopService()
    net.reactor.advance(QUIESCE_TIMEOUT - 1)
    assert not _fired(stopped)
    assert net.sip.proxy.active_transactions == 1
    net.reactor.advance(1)
    assert _fired(stopped)  # the ringing call abandoned (and logged)
    assert net.sip.proxy.active_transactions == 0
    assert not any(p.listening for p in net.reactor.udp_listeners[2:])


def test_tap_make_service_uses_the_frozen_config() -> None:
    options = tap.Options()
    options.parseOptions(["--home-domain", "example.com", "--sip-port", "5060", "--scscf", "0"])
    top = tap.makeService(options)
    assert isinstance(top, MultiService)
    assert cast(SipService, top.getServiceNamed("sip")).listen == (
        "udp:127.0.0.1:5060",
        "tcp:127.0.0.1:5060",
    )


def _reactor() -> ISipReactor:
    return cast(ISipReactor, SipMemoryReactor())


def _fired(d: Deferred[Any]) -> bool:
    return d.called


def _result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    return results[0]
