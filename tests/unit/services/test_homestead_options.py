"""Tests for ``twistd homestead``'s options and the subscriber store they open."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import TestCase

from clearwater._types import ISipReactor
from clearwater.services._diameter import DiameterTls
from clearwater.services.homestead.service import open_subscriber_store
from clearwater.services.homestead.tap import HomesteadOptions
from clearwater.stores.cached import CachedSubscriberStore
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.sqlite import SqliteSubscriberStore
from clearwater.stores.urls import StoreUrl, parse_store_url

REACTOR = cast(ISipReactor, _reactor)


def test_subscriber_cache_ttl() -> None:
    options = HomesteadOptions()
    options.parseOptions(["--home-domain=example.com"])
    assert options.config().subscriber_cache_ttl == 10
    options = HomesteadOptions()
    options.parseOptions(["--home-domain=example.com", "--subscriber-cache-ttl=0"])
    assert options.config().subscriber_cache_ttl == 0
    with pytest.raises(usage.UsageError, match="--subscriber-cache-ttl"):
        HomesteadOptions().parseOptions(["--home-domain=example.com", "--subscriber-cache-ttl=x"])


class OpenSubscriberStoreTests(TestCase):
    async def test_sqlite_is_read_through_the_cache_unless_it_is_off(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        url = parse_store_url("sqlite:" + os.path.join(directory, "subscribers.db"))
        cached = open_subscriber_store(url, REACTOR, 5)
        try:
            assert isinstance(cached, CachedSubscriberStore)
            assert isinstance(cached.store, SqliteSubscriberStore)
        finally:
            await cached.close()
        plain = open_subscriber_store(url, REACTOR, 0)
        try:
            assert isinstance(plain, SqliteSubscriberStore)
        finally:
            await plain.close()


def test_memory_needs_no_cache() -> None:
    store = open_subscriber_store(StoreUrl("memory"), cast(ISipReactor, Clock()), 5)
    assert isinstance(store, MemorySubscriberStore)


def _config(*args: str) -> HomesteadOptions:
    options = HomesteadOptions()
    options.parseOptions(["--home-domain=example.com", *args])
    return options


def test_hss_less_mode_unless_an_hss_is_named() -> None:
    assert _config().config().hss is None


def test_hss_peer_turns_on_hss_mode_with_clearwater_defaults() -> None:
    hss = _config("--hss-peer", "hss1.example.com=127.0.0.1:3869").config().hss
    assert hss is not None
    assert hss.peers == (("hss1.example.com", "127.0.0.1", 3869),)
    assert hss.hss_hostname is None  # realm-routed: no Destination-Host
    assert hss.hss_realm == "example.com"
    assert (hss.diameter_identity, hss.diameter_realm) == ("homestead.example.com", "example.com")
    assert (hss.diameter_port, hss.watchdog, hss.timeout) == (3868, 6.0, 0.2)
    assert hss.reregistration_time == 1800
    assert hss.sprout_http == ("sprout.example.com", 9888)
    assert str(hss.cache_store) == "memory:"


def test_hss_hostname_is_the_destination_host_and_a_peer() -> None:
    hss = _config(
        "--hss-hostname=hss.example.net", "--hss-port=3870", "--hss-realm=example.net",
        "--hss-peer=hss2.example.net=[::1]", "--sprout-http-name=127.0.0.1:19888",
    ).config().hss  # fmt: skip
    assert hss is not None
    assert hss.hss_hostname == "hss.example.net"
    assert hss.peers == (
        ("hss.example.net", "hss.example.net", 3870),
        ("hss2.example.net", "::1", 3868),
    )
    assert hss.hss_realm == "example.net"
    assert hss.sprout_http == ("127.0.0.1", 19888)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--hss-peer=hss.example.com"], "--hss-peer"),
        (["--hss-peer=hss.example.com=127.0.0.1:0"], "--hss-peer"),
        (
            ["--hss-peer=a.example.com=127.0.0.1", "--hss-peer=A.example.com=127.0.0.2"],
            "--hss-peer",
        ),
        (["--hss-peer=a.example.com=127.0.0.1", "--diameter-watchdog=5"], "--diameter-watchdog"),
        (["--hss-peer=a.example.com=127.0.0.1", "--diameter-port=8888"], "--diameter-port"),
        (["--hss-peer=a.example.com=127.0.0.1", "--cache-store=sqlite:/tmp/x"], "--cache-store"),
    ],
)
def test_bad_hss_options_are_usage_errors_naming_the_option(args: list[str], named: str) -> None:
    with pytest.raises(usage.UsageError, match=named):
        _config(*args)


def test_diameter_tls_options(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    peer = "--hss-peer=hss.example.com=127.0.0.1"
    hss = _config(peer).config().hss
    assert hss is not None and (hss.hss_tls, hss.tls) == (False, None)
    hss = _config(peer, "--hss-tls=Y", f"--diameter-tls-ca={cert}").config().hss
    assert hss is not None and hss.hss_tls
    assert hss.tls == DiameterTls(ca=str(cert))
    hss = (
        _config(
            peer,
            f"--diameter-tls-cert={cert}",
            f"--diameter-tls-key={key}",
            "--diameter-tls-port=5658",
        )
        .config()
        .hss
    )
    assert hss is not None and not hss.hss_tls
    assert hss.tls == DiameterTls(str(cert), str(key), None, 5658)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--diameter-tls-port=5658"], "--diameter-tls-port"),
        (["--hss-tls=Y", "--diameter-tls-cert=CERT"], "--diameter-tls-key"),
        (["--diameter-tls-ca=CERT"], "--hss-tls"),
        (["--hss-tls=maybe"], "--hss-tls"),
        (["--hss-tls=Y", "--diameter-tls-ca=/nonexistent/ca.pem"], "--diameter-tls-ca"),
    ],
)
def test_bad_diameter_tls_options(args: list[str], named: str, tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    args = [arg.replace("CERT", str(cert)) for arg in args]
    with pytest.raises(usage.UsageError, match=named):
        _config("--hss-peer=hss.example.com=127.0.0.1", *args)
