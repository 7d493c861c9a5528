"""``twistd ralf``'s options (defaults, derived values, usage errors naming the option) and the
service tree they build."""

from __future__ import annotations

import os
import tempfile
from typing import Any, cast

import pytest
from twisted.application.internet import TCPServer
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.server import Site

from clearwater._types import ISipReactor
from clearwater.diameter.node import DiameterNode, PeerConfig
from clearwater.services._diameter import DiameterTls
from clearwater.services.ralf.service import RalfCollector, SessionsService, build, make_service
from clearwater.services.ralf.tap import RalfConfig, RalfOptions
from clearwater.stores.interfaces import StoreUnavailableError
from clearwater.stores.memory import MemoryCasStore, MemoryTimerService
from clearwater.stores.urls import StoreUrl
from clearwater.testing import SipMemoryReactor

DOMAIN = ["--home-domain", "example.com"]


def parse(*args: str) -> RalfConfig:
    options = RalfOptions()
    options.parseOptions(list(args))
    return options.config()


def refused(*args: str) -> str:
    with pytest.raises(usage.UsageError) as e:
        parse(*args)
    return str(e.value)


def test_defaults() -> None:
    config = parse(*DOMAIN)
    assert config == RalfConfig(
        home_domain="example.com",
        local_ip="127.0.0.1",
        http_port=10888,
        diameter_identity="ralf.example.com",
        diameter_realm="example.com",
        diameter_port=3869,
        billing_realm="example.com",
        billing_peers=(),
        session_store=StoreUrl("memory"),
        timer_store=StoreUrl("memory"),
        watchdog=6.0,
        timeout=0.2,
        blacklist_duration=30.0,
    )


def test_everything_given() -> None:
    config = parse(
        *DOMAIN,
        "--local-ip=192.0.2.5",
        "--http-port=8080",
        "--diameter-identity=ralf1.example.net",
        "--diameter-realm=example.net",
        "--diameter-port=0",
        "--billing-realm=billing.example.com",
        "--billing-peer=cdf1.example.com=192.0.2.10",
        "--billing-peer=cdf2.example.com=[2001:db8::2]:3870",
        "--billing-peer=cdf3.example.com",
        "--session-store=memcached://127.0.0.1:11211",
        "--timer-store=redis://127.0.0.1:6379/2",
        "--diameter-watchdog=30",
        "--diameter-timeout=1.5",
        "--diameter-blacklist-duration=0",
    )
    assert config.local_ip == "192.0.2.5"
    assert config.http_port == 8080
    assert (config.diameter_identity, config.diameter_realm) == ("ralf1.example.net", "example.net")
    assert config.diameter_port == 0
    assert config.billing_realm == "billing.example.com"
    assert config.billing_peers == (
        ("cdf1.example.com", "192.0.2.10", 3868),
        ("cdf2.example.com", "2001:db8::2", 3870),
        ("cdf3.example.com", "cdf3.example.com", 3868),
    )
    assert config.session_store == StoreUrl("memcached", host="127.0.0.1", port=11211)
    assert config.timer_store == StoreUrl("redis", host="127.0.0.1", port=6379, db=2)
    assert (config.watchdog, config.timeout, config.blacklist_duration) == (30.0, 1.5, 0.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--home-domain (or shared_config key home_domain) is required"),
        ([*DOMAIN, "--local-ip=ralf.example.com"], "--local-ip: bad value"),
        ([*DOMAIN, "--http-port=0"], "--http-port: bad value '0': out of range 1..65535"),
        ([*DOMAIN, "--http-port=70000"], "--http-port: bad value"),
        ([*DOMAIN, "--diameter-port=x"], "--diameter-port: bad value"),
        ([*DOMAIN, "--diameter-port=10888"], "--diameter-port and --http-port both use port"),
        ([*DOMAIN, "--diameter-identity=bad name"], "--diameter-identity: bad value"),
        ([*DOMAIN, "--billing-realm=a b"], "--billing-realm: bad value"),
        ([*DOMAIN, "--billing-peer=cdf=1.2.3.4:0"], "--billing-peer: bad value"),
        ([*DOMAIN, "--billing-peer==1.2.3.4"], "--billing-peer: bad value"),
        (
            [*DOMAIN, "--billing-peer=cdf=192.0.2.1", "--billing-peer=CDF=192.0.2.2"],
            "--billing-peer cdf given twice",
        ),
        ([*DOMAIN, "--session-store=sqlite:/tmp/x"], "--session-store: bad value"),
        ([*DOMAIN, "--timer-store=memcached://h"], "memcached cannot hold this data"),
        ([*DOMAIN, "--diameter-watchdog=5"], "--diameter-watchdog: bad value '5'"),
        ([*DOMAIN, "--diameter-timeout=0"], "--diameter-timeout: bad value"),
        ([*DOMAIN, "--diameter-timeout=soon"], "--diameter-timeout: bad value"),
        ([*DOMAIN, "--diameter-blacklist-duration=-1"], "--diameter-blacklist-duration"),
    ],
)
def test_bad_values_name_the_option(args: list[str], message: str) -> None:
    assert message in refused(*args)


def _config_file(text: str) -> str:
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def test_shared_config_keys() -> None:
    path = _config_file(
        "home_domain=example.org\nlocal_ip=192.0.2.7\nbilling_realm=cdf.example.org\n"
        "ralf_diameteridentity=ralf9.example.org\nralf_diameter_watchdog_timer=12\n"
        "diameter_blacklist_duration=5\nsprout_hostname=ignored.example.org\n"
    )
    try:
        options = RalfOptions()
        options.parseOptions(["--config", path])
        config = options.config()
        assert config.home_domain == "example.org"
        assert config.local_ip == "192.0.2.7"
        assert config.billing_realm == "cdf.example.org"
        assert config.diameter_identity == "ralf9.example.org"
        assert config.diameter_realm == "example.org"
        assert (config.watchdog, config.blacklist_duration) == (12.0, 5.0)
        assert options.ignored_keys == ("sprout_hostname",)
        # The command line beats the file.
        assert parse("--config", path, "--billing-realm=x.example.org").billing_realm == (
            "x.example.org"
        )
    finally:
        os.unlink(path)
    bad = _config_file("home_domain=example.org\nralf_diameter_watchdog_timer=1\n")
    try:
        message = refused("--config", bad)
        assert "--diameter-watchdog (key ralf_diameter_watchdog_timer in " + bad in message
    finally:
        os.unlink(bad)


def test_config_before_parse_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        RalfOptions().config()


def test_plugin_is_registered() -> None:
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    import twisted.plugins

    makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
    assert makers["ralf"].options is RalfOptions


# --------------------------------------------------------------------------- the service tree


def test_service_tree() -> None:
    reactor = SipMemoryReactor()
    config = parse(
        *DOMAIN,
        "--http-port=10999",
        "--diameter-port=3999",
        "--local-ip=127.0.0.2",
        "--billing-peer=cdf1.example.com=127.0.0.9:3870",
    )
    sessions = MemoryCasStore(reactor)
    timers = MemoryTimerService(reactor)
    top = build(config, cast(ISipReactor, reactor), sessions, timers)
    assert [s.name for s in top] == ["sessions", "diameter", "http"]
    node = cast(DiameterNode, top.getServiceNamed("diameter"))
    assert (node.identity, node.realm) == ("ralf.example.com", "example.com")
    assert list(node.applications) == [3]
    assert node.applications[3].accounting
    assert node.peer_configs == (PeerConfig("cdf1.example.com", "127.0.0.9", 3870),)
    assert node.listen_on == (3999, "127.0.0.2")
    assert (node.watchdog_interval, node.request_timeout) == (6.0, 0.2)
    http = cast(TCPServer, top.getServiceNamed("http"))
    assert http.args[0] == 10999 and http.kwargs["interface"] == "127.0.0.2"
    sessions_service = cast(SessionsService, top.getServiceNamed("sessions"))
    manager = sessions_service.manager
    assert (manager.origin_host, manager.origin_realm, manager.billing_realm) == (
        "ralf.example.com",
        "example.com",
        "example.com",
    )
    assert manager.connector is not None
    assert manager.request_timeout == 0.2

    top.startService()
    ports = sorted((port, interface) for port, _, _, interface in reactor.tcpServers)
    assert ports == [(3999, "127.0.0.2"), (10999, "127.0.0.2")]
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("127.0.0.9", 3870)]
    site = cast(Site, http.args[1])
    assert sorted(site.resource.children) == [b"call-id", b"metrics", b"ping"]
    top.stopService()
    # The timer service and the session store were closed.
    failures: list[Failure] = []
    sessions.get_data("t", "k").addErrback(failures.append)
    assert failures and isinstance(failures[0].value, StoreUnavailableError)
    assert len(timers) == 0


def test_collector_counts() -> None:
    reactor = SipMemoryReactor()
    config = parse(*DOMAIN)
    top = build(
        config, cast(ISipReactor, reactor), MemoryCasStore(reactor), MemoryTimerService(reactor)
    )
    manager = cast(SessionsService, top.getServiceNamed("sessions")).manager
    manager.requests["interim"] = 3
    manager.failovers = 2
    node = cast(DiameterNode, top.getServiceNamed("diameter"))
    names = {
        sample.name: sample.value
        for metric in RalfCollector(manager, node).collect()
        for sample in metric.samples
        if not sample.labels or sample.labels.get("type") == "interim"
    }
    assert names["clearwater_ralf_requests_total"] == 3
    assert names["clearwater_ralf_ccf_failovers_total"] == 2
    assert names["clearwater_ralf_requests_in_progress"] == 0
    assert names["clearwater_ralf_cdf_peers_usable"] == 0


def test_make_service_opens_the_stores() -> None:
    reactor = SipMemoryReactor()
    top = make_service(parse(*DOMAIN), cast(ISipReactor, reactor))
    stores = cast(SessionsService, top.getServiceNamed("sessions"))
    assert isinstance(stores.sessions, MemoryCasStore)
    assert isinstance(stores.timers, MemoryTimerService)


def test_billing_over_tls(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = parse(*DOMAIN, "--billing-tls=Y", f"--diameter-tls-ca={ca}")
    assert config.billing_tls and config.tls == DiameterTls(ca=str(ca))
    assert parse(*DOMAIN).tls is None and not parse(*DOMAIN).billing_tls
    assert "--diameter-tls-port" in refused(*DOMAIN, "--diameter-tls-port=5658")
    assert "--billing-tls" in refused(*DOMAIN, f"--diameter-tls-ca={ca}")
