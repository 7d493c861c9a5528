"""The greeter sample plugin (examples/sproutlets/greeter.py; spec §2.2, §2.3, §2.10).

Its behaviour is tested with :mod:`clearwater.testing.sproutlet`, as a sproutlet author would;
its plugin is found in examples/sproutlets by :func:`discover`, as ``--plugin-path`` finds it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from clearwater.sip import Request, parse_message
from clearwater.sip.sproutlet import (
    ISproutletPlugin,
    PluginError,
    Sproutlet,
    discover,
    load_sproutlets,
    parse_plugin_option,
)
from clearwater.sip.sproutlet._plugins import _SYNTHETIC_PREFIX
from clearwater.testing.sproutlet import run_tsx

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "sproutlets"
ROUTE = "<sip:greeter.sprout.example.com;lr>"


def _request(method: str, uri: str, to_tag: str = "") -> Request:
    data = (
        method + " " + uri + " SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKg1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <" + uri + ">" + (";tag=" + to_tag if to_tag else "") + "\r\n"
        "Call-ID: greet-1@10.0.0.1\r\n"
        "CSeq: 1 " + method + "\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


OPTIONS = _request("OPTIONS", "sip:greeter@127.0.0.1:5060")
INVITE = _request("INVITE", "sip:bob@example.com")


@pytest.fixture(scope="module")
def module() -> types.ModuleType:
    """examples/sproutlets/greeter.py imported by path (not through the plugin loader)."""
    spec = importlib.util.spec_from_file_location("greeter_example", EXAMPLES / "greeter.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def greeter(module: types.ModuleType) -> Sproutlet:
    """The greeter as its plugin makes it with no options."""
    (sproutlet,) = module.plugin.load({})
    assert isinstance(sproutlet, Sproutlet)
    return sproutlet


@pytest.fixture
def examples_scanned() -> Iterator[None]:
    """Scanning examples/sproutlets adds modules to sys.modules and may write a dropin.cache
    there; both are removed afterwards."""
    cache = EXAMPLES / "dropin.cache"
    had_cache = cache.exists()
    before = set(sys.modules)
    yield
    for name in [n for n in sys.modules if n not in before and n.startswith(_SYNTHETIC_PREFIX)]:
        del sys.modules[name]
    if not had_cache and cache.exists():
        os.remove(cache)


def test_options_to_the_greeter_is_answered_with_the_greeting(greeter: Sproutlet) -> None:
    helper, _ = run_tsx(greeter, OPTIONS)

    assert helper.forks == []
    (response,) = helper.responses
    assert (response.status, response.reason) == (200, "OK")
    assert response.headers.get("Content-Type") == "text/plain"
    assert response.body == b"Hello from clearwater"
    wire = response.to_bytes()
    assert wire.startswith(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKg1;")
    assert b"\r\nCSeq: 1 OPTIONS\r\n" in wire
    assert b"\r\nContent-Length: 21\r\n" in wire
    assert wire.endswith(b"\r\nContent-Type: text/plain\r\n\r\nHello from clearwater")
    assert helper.failures == []


def test_the_greeting_is_an_option(module: types.ModuleType) -> None:
    (sproutlet,) = module.plugin.load({"greeting": "Hi, there"})
    helper, _ = run_tsx(sproutlet, OPTIONS)
    assert [r.body for r in helper.responses] == [b"Hi, there"]


def test_an_invite_is_forwarded_with_the_greeting_header(greeter: Sproutlet) -> None:
    helper, _ = run_tsx(greeter, INVITE, route=ROUTE)

    assert helper.responses == []
    (sent,) = helper.sent_requests
    assert sent.headers.get("X-Greeting") == "Hello from clearwater"
    assert sent.headers.count("X-Greeting") == 1
    assert b"\r\nX-Greeting: Hello from clearwater\r\n" in sent.to_bytes()
    sent.headers.remove("X-Greeting")
    assert sent == INVITE  # nothing else changed


def test_options_routed_through_the_greeter_is_forwarded(greeter: Sproutlet) -> None:
    helper, _ = run_tsx(greeter, _request("OPTIONS", "sip:bob@example.com"), route=ROUTE)
    assert helper.responses == []
    assert [r.headers.get("X-Greeting") for r in helper.sent_requests] == ["Hello from clearwater"]


def test_an_in_dialog_request_is_forwarded_with_the_header(greeter: Sproutlet) -> None:
    bye = _request("BYE", "sip:bob@10.0.0.2", to_tag="b1")
    helper, _ = run_tsx(greeter, bye, route=ROUTE)
    assert [(r.method, r.headers.get("X-Greeting")) for r in helper.sent_requests] == [
        ("BYE", "Hello from clearwater")
    ]


def test_responses_go_back_upstream(greeter: Sproutlet) -> None:
    helper, _ = run_tsx(greeter, INVITE, route=ROUTE)

    ringing = helper.respond(0, 180, to_tag="b1")
    answer = helper.respond(0, 200, to_tag="b1", body=b"v=0\r\n")

    assert helper.responses == [ringing, answer]
    assert helper.responses[1] is answer
    assert [r.to.tag for r in helper.responses] == ["b1", "b1"]
    assert helper.failures == []


def test_a_failed_fork_is_passed_back_as_a_408(greeter: Sproutlet) -> None:
    helper, _ = run_tsx(greeter, INVITE, route=ROUTE)
    helper.fail_fork(0)
    assert [(r.status, r.reason) for r in helper.responses] == [(408, "Request Timeout")]


def test_the_module_holds_a_plugin(module: types.ModuleType) -> None:
    plugin = module.plugin
    assert verifyObject(IPlugin, plugin)
    assert verifyObject(ISproutletPlugin, plugin)
    assert plugin.name == "greeter"
    (sproutlet,) = plugin.load({})
    assert (sproutlet.service_name, sproutlet.port, sproutlet.uri, sproutlet.aliases) == (
        "greeter",
        0,
        "",
        (),
    )
    assert sproutlet.network_function == "greeter"


@pytest.mark.usefixtures("examples_scanned")
def test_the_plugin_is_discovered_in_examples_sproutlets() -> None:
    plugins = discover([str(EXAMPLES)])

    assert [p.name for p in plugins] == ["greeter"]
    module = type(plugins[0]).__module__
    assert module.startswith(_SYNTHETIC_PREFIX) and module.endswith(".greeter")
    options = [parse_plugin_option("greeter,greeting,Hi, from -N")]
    (sproutlet,) = load_sproutlets(plugins, options)
    assert sproutlet.service_name == "greeter"
    helper, _ = run_tsx(sproutlet, OPTIONS)
    assert [r.body for r in helper.responses] == [b"Hi, from -N"]


@pytest.mark.usefixtures("examples_scanned")
def test_an_unknown_option_is_refused() -> None:
    plugins = discover([str(EXAMPLES)])
    with pytest.raises(PluginError) as caught:
        load_sproutlets(plugins, [("greeter", "colour", "blue"), ("greeter", "greeting", "Hi")])
    assert str(caught.value) == (
        "sproutlet plugin 'greeter' failed to load: ValueError: unknown option 'colour' for"
        " plugin greeter (known: greeting)"
    )


@pytest.mark.parametrize("greeting", ["", " Hi", "Hi\r\nVia: evil", "tab\there"])
def test_a_greeting_that_is_no_header_value_is_refused(
    module: types.ModuleType, greeting: str
) -> None:
    with pytest.raises(ValueError) as caught:
        module.plugin.load({"greeting": greeting})
    assert str(caught.value) == (
        "option greeting of plugin greeter must be printable text without leading or trailing"
        " spaces, not " + repr(greeting)
    )


def test_a_non_ascii_greeting_is_utf8(module: types.ModuleType) -> None:
    (sproutlet,) = module.plugin.load({"greeting": "Grüß Gott"})
    helper, _ = run_tsx(sproutlet, OPTIONS)
    (response,) = helper.responses
    assert response.body == "Grüß Gott".encode()
    helper, _ = run_tsx(sproutlet, INVITE, route=ROUTE)
    assert "X-Greeting: Grüß Gott".encode() in helper.sent_requests[0].to_bytes()
