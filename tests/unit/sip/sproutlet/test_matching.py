"""Clearwater's sproutlet matching rules (spec §2.4), in order."""

from __future__ import annotations

from typing import Optional

import pytest

from clearwater.sip import parse_uri
from clearwater.sip.sproutlet import Sproutlet
from clearwater.sip.sproutlet._matching import ServiceTable, build_table, match_sproutlet

SCSCF = Sproutlet("scscf", 5054, aliases=["authentication"])
ICSCF = Sproutlet("icscf", 5052)
MMTEL = Sproutlet("mmtel", 0)


def table() -> ServiceTable:
    return build_table(
        [SCSCF, ICSCF, MMTEL],
        local_hosts=["sprout.example.com", "10.0.0.1", "example.com", "[2001:db8::1]"],
        remote_hosts=["sprout.site2.example.com"],
    )


def matched(uri: str, *, port: Optional[int] = None, remote: bool = True) -> Optional[str]:
    found = match_sproutlet(table(), parse_uri(uri), arrival_port=port, allow_remote=remote)
    return None if found is None else found.sproutlet.service_name + "/" + found.alias


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # 1. the service parameter, on one of our hosts
        ("sip:sprout.example.com;lr;service=icscf", "icscf/icscf"),
        ("sip:10.0.0.1:5054;lr;service=authentication", "scscf/authentication"),
        # service= counts only on one of our own names, which scscf.sprout... is not
        ("sip:scscf.sprout.example.com;service=icscf", "scscf/scscf"),
        ("sip:elsewhere.example.net;lr;service=icscf", None),  # not our host
        # 2. the first label, when the rest is ours
        ("sip:scscf.sprout.example.com;transport=tcp", "scscf/scscf"),
        ("sip:SCSCF.Sprout.Example.COM", "scscf/scscf"),
        ("sip:mmtel.example.com", "mmtel/mmtel"),  # a home domain
        ("sip:icscf.sprout.site2.example.com", "icscf/icscf"),  # a remote alias
        ("sip:nosuch.sprout.example.com", None),
        # 3. the user part, on our host
        ("sip:scscf@10.0.0.1;lr;orig", "scscf/scscf"),
        ("sip:mmtel@example.com", "mmtel/mmtel"),
        ("sip:scscf@elsewhere.example.net", None),
        # 4. the port: the URI's, on our host
        ("sip:10.0.0.1:5052", "icscf/icscf"),
        ("sip:alice@example.com:5054", "scscf/scscf"),
        ("sip:[2001:db8::1]:5054", "scscf/scscf"),
        ("sip:10.0.0.1:5060", None),
        # neither SIP nor ours
        ("tel:+15551234", None),
        ("sip:10.0.0.2:5054", None),
    ],
)
def test_rules_in_order(uri: str, expected: Optional[str]) -> None:
    assert matched(uri) == expected


def test_arrival_port_before_the_uri_port() -> None:
    assert matched("sip:alice@example.com", port=5052) == "icscf/icscf"
    assert matched("sip:alice@example.com:5054", port=5052) == "icscf/icscf"
    assert matched("sip:alice@example.com", port=5060) is None
    assert matched("sip:alice@other.example.net", port=5052) is None  # not our host


def test_remote_aliases_only_when_allowed() -> None:
    assert matched("sip:icscf.sprout.site2.example.com") == "icscf/icscf"
    assert matched("sip:icscf.sprout.site2.example.com", remote=False) is None
    assert matched("sip:scscf@sprout.site2.example.com", remote=False) is None


def test_ip_literals_have_no_labels() -> None:
    lookalike = build_table([Sproutlet("10", 0)], local_hosts=["0.0.1"])
    assert match_sproutlet(lookalike, parse_uri("sip:10.0.0.1")) is None


@pytest.mark.parametrize(
    ("sproutlets", "message"),
    [
        ([Sproutlet("a", aliases=["x"]), Sproutlet("b", aliases=["X"])], "both answer to 'x'"),
        ([Sproutlet("a", 5054), Sproutlet("b", 5054)], "both listen on port 5054"),
    ],
)
def test_clashes_are_refused(sproutlets: list[Sproutlet], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_table(sproutlets, local_hosts=["example.com"])
