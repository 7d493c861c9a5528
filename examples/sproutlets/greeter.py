"""The greeter: a sample sproutlet plugin (spec §2.1-§2.3 and §2.10; docs/sproutlets.md).

In the spirit of Metaswitch's ``greeter`` sample application server, which added
``Subject: Hello world!`` to every request it saw:

- an OPTIONS addressed to the greeter itself (its Request-URI routed it here, e.g.
  ``sip:greeter@<sprout host>``) is answered 200 OK with the greeting as a text/plain body;
- any other request gets an ``X-Greeting: <greeting>`` header and is sent on (the default
  forwarding, which also passes every response back upstream).

The module is a plugin: ``twistd sprout --plugin-path examples/sproutlets`` finds ``plugin``
with twisted.plugin. Its one option is the greeting, ``-N greeter,greeting,TEXT`` (default
"Hello from clearwater"); any other option stops start-up.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.plugin import IPlugin
from typing_extensions import override
from zope.interface import implementer

from clearwater.sip import Request
from clearwater.sip.sproutlet import (
    ISproutletPlugin,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)

__all__ = [
    "DEFAULT_GREETING",
    "GREETING_HEADER",
    "Greeter",
    "GreeterPlugin",
    "GreeterTsx",
    "plugin",
]

DEFAULT_GREETING = "Hello from clearwater"
GREETING_HEADER = "X-Greeting"


class Greeter(Sproutlet):
    """The greeter service: named "greeter", on no port of its own; the proxy gives it the URI
    ``sip:greeter.<sprout hostname>;transport=tcp`` and also routes ``sip:greeter@<a local
    host>`` to it (spec §2.4)."""

    def __init__(self, greeting: str = DEFAULT_GREETING) -> None:
        super().__init__("greeter")
        self.greeting = greeting

    @override
    def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> GreeterTsx:
        return GreeterTsx(helper, self.greeting)


class GreeterTsx(SproutletTsx):
    """One transaction at the greeter."""

    def __init__(self, helper: SproutletTsxHelper, greeting: str) -> None:
        super().__init__(helper)
        self.greeting = greeting

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        # No Route was removed: the Request-URI itself names the greeter.
        if request.method == "OPTIONS" and self.route_hdr() is None:
            response = self.create_response(request, 200)
            response.headers.add("Content-Type", "text/plain")
            response.body = self.greeting.encode("utf-8")
            self.send_response(response)
        else:
            self._greet_and_send(request)

    @override
    def on_rx_in_dialog_request(self, request: Request) -> None:
        self._greet_and_send(request)

    def _greet_and_send(self, request: Request) -> None:
        request.headers.add(GREETING_HEADER, self.greeting)
        self.send_request(request)


@implementer(IPlugin, ISproutletPlugin)
class GreeterPlugin:
    """The plugin: ``load`` checks the ``-N greeter,NAME,VALUE`` options and makes the one
    :class:`Greeter`."""

    name = "greeter"
    known_options = ("greeting",)

    def load(self, options: Mapping[str, str]) -> list[Sproutlet]:
        unknown = sorted(set(options) - set(self.known_options))
        if unknown:
            raise ValueError(
                "unknown option "
                + ", ".join(repr(name) for name in unknown)
                + " for plugin greeter (known: "
                + ", ".join(self.known_options)
                + ")"
            )
        greeting = options.get("greeting", DEFAULT_GREETING)
        # The greeting goes into a header line: one line of text, no leading/trailing spaces.
        if not greeting or greeting != greeting.strip() or not greeting.isprintable():
            raise ValueError(
                "option greeting of plugin greeter must be printable text without leading or"
                " trailing spaces, not " + repr(greeting)
            )
        return [Greeter(greeting)]


plugin = GreeterPlugin()
