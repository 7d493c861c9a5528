"""The Sproutlet base class (spec §2.1)."""

from __future__ import annotations

import pytest

from clearwater.sip import Request, parse_message
from clearwater.sip.sproutlet import Sproutlet


def test_defaults_and_attributes() -> None:
    sproutlet = Sproutlet("greeter", 5070, aliases=["hello"])
    assert (sproutlet.service_name, sproutlet.port, sproutlet.uri) == ("greeter", 5070, "")
    assert sproutlet.aliases == ("hello",)
    assert sproutlet.network_function == "greeter"  # defaults to the service name
    assert Sproutlet("registrar", network_function="scscf").network_function == "scscf"
    assert repr(sproutlet) == "Sproutlet('greeter', port=5070, network_function='greeter')"


@pytest.mark.parametrize(("name", "port"), [("", 0), ("x", -1), ("x", 65536)])
def test_bad_name_or_port_is_refused(name: str, port: int) -> None:
    with pytest.raises(ValueError):
        Sproutlet(name, port)


def test_get_tsx_must_be_written() -> None:
    request = parse_message(
        b"OPTIONS sip:greeter@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:greeter@example.com>\r\n"
        b"Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    assert isinstance(request, Request)
    with pytest.raises(NotImplementedError, match=r"Sproutlet\.get_tsx"):
        Sproutlet("greeter").get_tsx(None, "greeter", request)
