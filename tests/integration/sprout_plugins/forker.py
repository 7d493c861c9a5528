"""A test sproutlet plugin, "forker": parallel forking (spec §2.6) for the sprout interop tests.

An initial request whose Request-URI names the forker (``sip:forker@<sprout host>``, spec §2.4
rule 3) is forked in parallel, one copy per target, each with the target as its Request-URI;
the proxy's response context aggregates the answers. Any other request is sent on unchanged.
The targets come from ``-N forker,targets,URI [URI ...]`` (SIP URIs separated by spaces).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.plugin import IPlugin
from typing_extensions import override
from zope.interface import implementer

from clearwater.sip import Request, SipUri, parse_sip_uri
from clearwater.sip.sproutlet import (
    ISproutletPlugin,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)

__all__ = ["Forker", "ForkerPlugin", "ForkerTsx", "plugin"]


class Forker(Sproutlet):
    """The forker service, on no port of its own."""

    def __init__(self, targets: Sequence[SipUri]) -> None:
        super().__init__("forker")
        self.targets = tuple(targets)

    @override
    def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> ForkerTsx:
        return ForkerTsx(helper, self.targets)


class ForkerTsx(SproutletTsx):
    """One transaction at the forker."""

    def __init__(self, helper: SproutletTsxHelper, targets: Sequence[SipUri]) -> None:
        super().__init__(helper)
        self.targets = targets

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        if self.route_hdr() is not None or not self.targets:
            self.send_request(request)
            return
        for target in self.targets:
            fork = self.clone_request(request)
            fork.uri = target
            self.send_request(fork)


@implementer(IPlugin, ISproutletPlugin)
class ForkerPlugin:
    """The plugin: ``-N forker,targets,URI [URI ...]``."""

    name = "forker"

    def load(self, options: Mapping[str, str]) -> list[Sproutlet]:
        unknown = sorted(set(options) - {"targets"})
        if unknown:
            raise ValueError("unknown option " + ", ".join(unknown) + " for plugin forker")
        targets = [parse_sip_uri(text) for text in options.get("targets", "").split()]
        return [Forker(targets)]


plugin = ForkerPlugin()
