"""A stateful SIP proxy (RFC 3261 §16): forwards every request by its Route or Request-URI.

    python examples/proxy.py --listen udp:127.0.0.1:5080 --listen tcp:127.0.0.1:5080 \\
        [--record-route] [--next-hop sip:10.0.0.5:5060;transport=tcp]

Built on :class:`clearwater.sip.proxy.Proxy`: validates (483, 420, 416, 482), forwards statefully
with Max-Forwards and a Via of its own, relays responses, CANCEL and the ACK for a 2xx, and
answers requests for itself 404. Only IP-literal next hops are reached (no DNS is configured).
Prints one line per listener ("listening udp:127.0.0.1:5080") once ready, then serves until
killed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from twisted.internet import reactor as _reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from clearwater._types import ISipReactor
from clearwater.sip import ParseError, SipUri, parse_sip_uri
from clearwater.sip.proxy import LocalHosts, Proxy
from clearwater.sip.transport import ListenSpec


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="address to listen on (udp or tcp); repeatable (default udp:127.0.0.1:5080)",
    )
    parser.add_argument(
        "--record-route", action="store_true", help="stay on the path of the dialogs it sets up"
    )
    parser.add_argument(
        "--next-hop",
        metavar="URI",
        help="send every request without a Route here instead of to its Request-URI",
    )
    parser.add_argument("--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    args.listen = args.listen or ["udp:127.0.0.1:5080"]
    specs = []
    for text in args.listen:
        try:
            specs.append(ListenSpec.parse(text))
        except ValueError as e:
            parser.error("--listen " + text + ": " + str(e))
    args.listen = specs
    if args.next_hop is not None:
        try:
            args.next_hop = parse_sip_uri(args.next_hop)
        except ParseError as e:
            parser.error("--next-hop " + args.next_hop + ": " + str(e))
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    reactor: ISipReactor = _reactor  # type: ignore[assignment]  # the global reactor provides it
    if args.verbose:
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(sys.stderr)], redirectStandardIO=False
        )
    next_hop: Optional[SipUri] = args.next_hop
    bound: list[ListenSpec] = []
    proxy: Optional[Proxy] = None
    try:
        # Ports are known only once bound; the locality is updated after listening.
        hosts = LocalHosts(hosts=[spec.host for spec in args.listen], ports=[])
        proxy = Proxy(
            reactor, locality=hosts, record_route=args.record_route, outbound_proxy=next_hop
        )
        for spec in args.listen:
            bound.append(proxy.listen(str(spec)))
    except Exception as e:
        print("proxy: " + str(e), file=sys.stderr)
        return 2
    proxy.locality = LocalHosts(
        hosts=[spec.host for spec in bound], ports=[spec.port for spec in bound]
    )
    for spec in bound:
        print("listening " + str(spec), flush=True)
    _reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
