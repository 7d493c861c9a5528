# -*- test-case-name: tests.unit.scscf.test_phones -*-
"""The all-in-one's phone port (issue #6): what stands between phones and the S-CSCF until the
edge proxy (bono, a later issue) takes that port.

The port is untrusted: every request arriving there goes to this sproutlet first, whatever
its Route (``SproutletProxy(edge_ports=...)``), and it hands the request to the S-CSCF so
that nothing a phone writes is taken on trust:

- a REGISTER goes to the S-CSCF (``Route: <S-CSCF URI;lr>``), which challenges it;
- an initial request of any other method loses the Routes to this node that the phone put
  on it (the Service-Route it was given), its P-Asserted-Identity and P-Served-User, and goes
  to the S-CSCF as originating with ``auto-reg`` (``<S-CSCF URI;lr;orig;auto-reg>``): the
  authentication stage challenges it (407) for the identity in its From, and once answered
  it is handled as that subscriber's originating request;
- a request inside a dialog follows its Route set, as a proxy's would;
- every initial request other than REGISTER is record-routed through this port
  (``<sip:HOST:PORT;transport=T;lr>``, the transport it arrived on; RFC 3261 §16.6 step 4), as a
  P-CSCF would: the dialog's later requests (ACK, BYE, re-INVITE) come back here, and a phone
  whose Contact nothing listens on (a TCP or TLS phone's source port) is reached over the
  connection it opened.

Requests that reach the S-CSCF's own port with its Service-Route (``;orig``) are trusted as
coming from a P-CSCF, as in Clearwater.
"""

from __future__ import annotations

from typing import Optional

from typing_extensions import override

from clearwater.scscf.config import ScscfConfig
from clearwater.sip import Request, SipUri
from clearwater.sip.headers import ROUTE
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper

__all__ = ["UNTRUSTED_HEADERS", "PhonePortSproutlet", "PhonePortTsx"]

#: Headers a phone may not assert: removed from its initial requests.
UNTRUSTED_HEADERS = ("P-Asserted-Identity", "P-Served-User")


class PhonePortSproutlet(Sproutlet):
    """The phone port's sproutlet (see the module notes)."""

    def __init__(
        self,
        config: ScscfConfig,
        *,
        host: str = "127.0.0.1",
        service_name: str = "phones",
        port: int = 5060,
        tls_port: int = 0,
        network_function: str = "phones",
    ) -> None:
        super().__init__(service_name, port, network_function=network_function)
        self.config = config
        self.host = "[" + host + "]" if ":" in host else host
        self.tls_port = tls_port

    def record_route(self, transport: str) -> str:
        """The Record-Route for a request that arrived over ``transport``."""
        transport = transport.lower()
        port = self.tls_port if transport == "tls" and self.tls_port else self.port
        return "<sip:" + self.host + ":" + str(port) + ";transport=" + transport + ";lr>"

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        return PhonePortTsx(helper, self)


class PhonePortTsx(SproutletTsx):
    """One request from a phone."""

    def __init__(self, helper: SproutletTsxHelper, sproutlet: PhonePortSproutlet) -> None:
        super().__init__(helper)
        self.sproutlet = sproutlet

    @override
    def on_rx_initial_request(self, request: Request) -> None:
        config = self.sproutlet.config
        routes = request.headers.parsed(ROUTE)
        kept = [r for r in routes if not self._ours(r.uri)]
        if len(kept) != len(routes):
            request.headers.set_values(ROUTE, kept)
        if request.method == "REGISTER":
            scscf = config.scscf_uri + ";lr"
        else:
            for name in UNTRUSTED_HEADERS:
                request.headers.remove(name)
            scscf = config.scscf_uri + ";lr;orig;auto-reg"
            transport = request.top_via.transport
            request.headers.prepend("Record-Route", self.sproutlet.record_route(transport))
        request.headers.prepend("Route", "<" + scscf + ">")
        self.send_request(request)

    def _ours(self, uri: object) -> bool:
        """A Route to this node: one of its names, or a sproutlet's (``scscf.<sprout host>``)."""
        if not isinstance(uri, SipUri):
            return False
        config = self.sproutlet.config
        return config.is_local_host(uri.host) or config.is_local_host(self.get_local_hostname(uri))
