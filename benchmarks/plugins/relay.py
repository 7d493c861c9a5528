"""The relay: a sproutlet plugin that makes ``twistd sprout`` a plain record-routing proxy, for
``benchmarks/bench_sprout_proxy.sh`` (issue #4; spec §2.1-§2.3 and §2.10).

It does Kamailio's ``record_route(); t_relay();`` (``benchmarks/kamailio_proxy.cfg``) through
the sproutlet path, so that the benchmark measures sprout's proxy core *and* a sproutlet hop:

- the sproutlet owns one port (``-N relay,port,P``): every request arriving there for this node
  (RFC 3261 §8.1.2: its top Route names ``<local ip>:P``; spec §2.4 rule 4) goes to it;
- a dialog-creating INVITE gets ``Record-Route: <reflexive URI>`` (RFC 3261 §16.6 step 4;
  ``sip:<sprout hostname>:P;lr;service=relay``) and is sent on by its Request-URI;
- every other request is sent on unchanged, in-dialog ones included: they come back through the
  Record-Route, whose ``service=relay`` brings them to the relay again (spec §2.4 rule 1);
- responses go upstream (the default).

``twistd sprout --plugin-path benchmarks/plugins -N relay,port,P`` loads it; the option is
required and any other option stops start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from twisted.plugin import IPlugin
from typing_extensions import override
from zope.interface import implementer

from clearwater.sip import NameAddr, Request
from clearwater.sip.headers import RECORD_ROUTE
from clearwater.sip.sproutlet import (
    ISproutletPlugin,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)

__all__ = ["Relay", "RelayPlugin", "RelayTsx", "plugin"]


class Relay(Sproutlet):
    """The relay service: named "relay", taking the requests that arrive on ``port``."""

    def __init__(self, port: int) -> None:
        if not 0 < port <= 65535:
            raise ValueError("the relay needs a port, 1-65535, not " + str(port))
        super().__init__("relay", port=port)

    @override
    def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> RelayTsx:
        return RelayTsx(helper)


class RelayTsx(SproutletTsx):
    """One transaction at the relay: record-route a new INVITE dialog, forward everything."""

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        if request.method == "INVITE":
            request.headers.prepend(RECORD_ROUTE.name, NameAddr(self.get_reflexive_uri()))
        self.send_request(request)

    @override
    def on_rx_in_dialog_request(self, request: Request) -> None:
        self.send_request(request)


@implementer(IPlugin, ISproutletPlugin)
class RelayPlugin:
    """The plugin: ``load`` reads ``-N relay,port,P`` and makes the one :class:`Relay`."""

    name = "relay"
    known_options = ("port",)

    def load(self, options: Mapping[str, str]) -> list[Sproutlet]:
        unknown = sorted(set(options) - set(self.known_options))
        if unknown:
            raise ValueError(
                "unknown option "
                + ", ".join(repr(name) for name in unknown)
                + " for plugin relay (known: "
                + ", ".join(self.known_options)
                + ")"
            )
        text: Optional[str] = options.get("port")
        if text is None:
            raise ValueError("plugin relay needs its port: -N relay,port,P")
        try:
            port = int(text)
        except ValueError:
            raise ValueError("option port of plugin relay: not a number: " + repr(text)) from None
        return [Relay(port)]


plugin = RelayPlugin()
