"""``twistd clearwater`` options and service tree (issue #6's all-in-one)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from twisted.application.service import IServiceMaker, MultiService
from twisted.plugin import getPlugins
from twisted.python import usage

from clearwater._types import ISipReactor
from clearwater.services.clearwater.tap import ClearwaterConfig, ClearwaterOptions, make_service
from clearwater.services.sprout.service import SipService
from clearwater.testing import SipMemoryReactor


def parse(*argv: str) -> ClearwaterConfig:
    options = ClearwaterOptions()
    options.parseOptions(["--home-domain", "example.com", *argv])
    return options.all_in_one()


def error(*argv: str) -> str:
    with pytest.raises(usage.UsageError) as caught:
        parse(*argv)
    return str(caught.value)


def test_clearwater_is_a_twistd_plugin() -> None:
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert isinstance(makers["clearwater"].options(), ClearwaterOptions)


def test_defaults() -> None:
    config = parse()
    assert (config.phone_port, config.tls_port, config.hs_port, config.prov_port) == (
        5060,
        0,  # no TLS without a certificate
        8888,
        8889,
    )
    assert config.sprout.sproutlet("scscf").port == 5054
    assert config.sprout.subscriber_store.kind == "sqlite"  # nothing provisioned is lost


def test_usage_errors() -> None:
    assert "homestead runs inside" in error("--hs-hostname", "hs.example.com")
    assert "needs its S-CSCF" in error("--scscf", "0")
    assert "--phone-port and --scscf both use port 5054" in error("--phone-port", "5054")
    assert "go together" in error("--tls-cert", __file__)
    assert "--tls-cert" in error("--tls-cert", "/nonexistent/cert.pem", "--tls-key", __file__)


def test_tree_phone_port_owned_by_the_phones_sproutlet(tmp_path: Path) -> None:
    config = parse("--subscriber-store", "memory:", "--local-ip", "10.0.0.3")
    reactor = cast(ISipReactor, SipMemoryReactor())
    top = make_service(config, reactor)
    assert [s.name for s in top] == ["subscribers", "sprout", "homestead", "prov"]
    sip = cast(SipService, cast(MultiService, top.getServiceNamed("sprout")).getServiceNamed("sip"))
    assert sip.proxy.edge_ports[5060].service_name == "phones"
    assert "udp:10.0.0.3:5060" in sip.listen and "tcp:10.0.0.3:5054" in sip.listen


def test_the_tls_phone_port_is_owned_by_the_phones_sproutlet_too() -> None:
    """Every request on either phone port reaches the phones sproutlet first: a TLS port
    routed like the S-CSCF's would trust a forged Service-Route."""
    config = parse(
        "--subscriber-store", "memory:", "--local-ip", "10.0.0.3",
        "--tls-cert", __file__, "--tls-key", __file__,
    )  # fmt: skip
    assert config.tls_port == 5061
    top = make_service(config, cast(ISipReactor, SipMemoryReactor()))
    sip = cast(SipService, cast(MultiService, top.getServiceNamed("sprout")).getServiceNamed("sip"))
    assert {port: s.service_name for port, s in sip.proxy.edge_ports.items()} == {
        5060: "phones",
        5061: "phones",
    }
    assert "tls:10.0.0.3:5061" in sip.listen
