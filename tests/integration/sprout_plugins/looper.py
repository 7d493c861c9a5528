"""A test sproutlet plugin, "looper": a sproutlet that sends every request back to itself.

Each initial request is sent on with a Route to the looper itself (``next_hop_uri``, spec §2.4
rule 1), so the proxy delivers it in process to a new looper transaction one level deeper, until
the chain is deeper than ``--max-sproutlet-depth`` (spec §2.5) or Max-Forwards runs out: either
way the proxy answers 483 Too Many Hops.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.plugin import IPlugin
from typing_extensions import override
from zope.interface import implementer

from clearwater.sip import NameAddr, Request
from clearwater.sip.sproutlet import (
    ISproutletPlugin,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)

__all__ = ["Looper", "LooperPlugin", "LooperTsx", "plugin"]


class Looper(Sproutlet):
    """The looper service, on no port of its own."""

    def __init__(self) -> None:
        super().__init__("looper")

    @override
    def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> LooperTsx:
        return LooperTsx(helper)


class LooperTsx(SproutletTsx):
    """One transaction at the looper: sends the request to the looper again."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        route = self.next_hop_uri("looper", self.get_reflexive_uri())
        request.headers.prepend("Route", NameAddr(route))
        self.send_request(request)


@implementer(IPlugin, ISproutletPlugin)
class LooperPlugin:
    """The plugin; it takes no options."""

    name = "looper"

    def load(self, options: Mapping[str, str]) -> list[Sproutlet]:
        if options:
            raise ValueError("plugin looper takes no options")
        return [Looper()]


plugin = LooperPlugin()
