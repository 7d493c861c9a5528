"""Which peers a relay may reach (RFC 8656 §21.2.3): the default refusals, the operator's allow
and deny lists, loopback for tests, and the policy as the TURN core applies it."""

from __future__ import annotations

import pytest

from clearwater.stun import Attr, Class, Method, PeerPolicy
from tests.unit.stun.test_turn import PEER, ClientSide, code_of, make_server

REFUSED = [
    # IPv4: loopback, RFC 1918, CGNAT, link-local, "this network", multicast, reserved, ...
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.255",
    "169.254.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "198.18.0.1",
    "198.19.255.255",
    "192.88.99.1",
    # IPv6: loopback, unspecified, link-local, unique local, multicast, documentation, ...
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "2001::1",
    "2001:2::1",
    "100::1",
    "3fff::1",
    "5f00::1",
    "64:ff9b:1::1",
    "::ffff:0:102:304",
    "::1.2.3.4",
    # IPv4 behind IPv6 forms
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:192.168.1.1",
    "::ffff:169.254.1.1",
    "::ffff:224.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    # not addresses
    "",
    "localhost",
    "example.com",
    "1.2.3",
    "1.2.3.256",
    "::g",
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.1",
    "169.253.255.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("host", REFUSED)
def test_default_refuses(host: str) -> None:
    assert not PeerPolicy().allowed(host)


@pytest.mark.parametrize("host", ALLOWED)
def test_default_allows_global_unicast(host: str) -> None:
    assert PeerPolicy().allowed(host)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("fe80::1", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_allow_loopback(host: str, allowed: bool) -> None:
    assert PeerPolicy(allow_loopback=True).allowed(host) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),
        ("11.0.0.1", True),
        ("192.168.0.1", False),
        ("fe80::5", True),
        ("fe80::5%eth0", True),
        ("fc00::5", False),
    ],
)
def test_allow_list_overrides_the_defaults(host: str, allowed: bool) -> None:
    policy = PeerPolicy(allow=("10.0.0.0/8", "fe80::/64"))
    assert policy.allowed(host) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("8.8.8.8", False),
        ("8.8.8.255", False),
        ("::ffff:8.8.8.8", False),
        ("8.8.4.4", True),
        ("2606:4700::1", False),
        ("2606:4701::1", True),
    ],
)
def test_deny_list(host: str, allowed: bool) -> None:
    policy = PeerPolicy(deny=("8.8.8.0/24", "2606:4700::/32"))
    assert policy.allowed(host) is allowed


def test_allow_list_comes_before_the_deny_list() -> None:
    policy = PeerPolicy(allow=("8.8.8.8/32",), deny=("8.8.8.0/24",))
    assert policy.allowed("8.8.8.8")
    assert not policy.allowed("8.8.8.9")


def test_deny_list_comes_before_allow_loopback() -> None:
    policy = PeerPolicy(allow_loopback=True, deny=("127.0.0.1/32",))
    assert not policy.allowed("127.0.0.1")
    assert policy.allowed("127.0.0.2")


def test_bad_cidr_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="allow: not a CIDR"):
        PeerPolicy(allow=("10.0.0.0/33",))
    with pytest.raises(ValueError, match="deny: not a CIDR"):
        PeerPolicy(deny=("nonsense",))


def test_lists_accept_any_iterable_and_compare_by_value() -> None:
    assert PeerPolicy(allow=["10.0.0.0/8"]) == PeerPolicy(allow=("10.0.0.0/8",))


def test_core_refuses_loopback_peers_by_default() -> None:
    server = make_server(peers=PeerPolicy())
    side = ClientSide(server)
    side.allocate()
    for peer in (("127.0.0.1", 9), ("192.0.2.10", 9), ("10.0.0.1", 9)):
        response = side.answer(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, peer)])
        assert code_of(response) == 403
    assert server.stats.peer_rejections == 3
    side.permit(("8.8.8.8", 53))


def test_core_relays_to_loopback_when_allowed() -> None:
    server = make_server(peers=PeerPolicy(allow_loopback=True))
    side = ClientSide(server)
    side.allocate()
    side.permit(("127.0.0.1", 9))
    assert side.bind(0x4000, ("127.0.0.1", 9)).message_class == Class.SUCCESS
    assert code_of(side.bind(0x4001, PEER)) == 403
