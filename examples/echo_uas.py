"""An echo UAS: answers OPTIONS 200, INVITE 180 then 200 with the offered SDP echoed, BYE 200.

    python examples/echo_uas.py --listen udp:127.0.0.1:5070 --listen tcp:127.0.0.1:5070 \\
        --listen tls:127.0.0.1:5071 --listen ws:127.0.0.1:5072 --tls-cert F --tls-key F

Built on :class:`clearwater.sip.UserAgent`; see docs/sip-apps.md. Prints one line to stdout
per listener ("listening udp:127.0.0.1:5070") once it is ready, then serves until killed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from twisted.internet import reactor as _reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from clearwater._types import ISipReactor
from clearwater.sip.transport import TlsSettings, TransportSettings
from clearwater.sip.ua import IncomingRequest, UserAgent


def handle(incoming: IncomingRequest) -> None:
    """The whole application: one function from request to response."""
    request = incoming.request
    if request.method == "OPTIONS":
        incoming.respond(200, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")])
    elif request.method == "INVITE":
        incoming.respond(180)
        content_type = request.headers.get("Content-Type")
        incoming.respond(200, body=request.body, content_type=content_type)
    elif request.method == "BYE":
        incoming.respond(200)
    else:
        incoming.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")])


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="address to listen on (udp, tcp, tls, ws or wss); repeatable "
        "(default udp:127.0.0.1:5070)",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate for tls/wss")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key for tls/wss")
    parser.add_argument("--tls-ca", metavar="FILE", help="PEM CA file to verify peers with")
    parser.add_argument("--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    args.listen = args.listen or ["udp:127.0.0.1:5070"]
    needs_tls = any(spec.lower().startswith(("tls:", "wss:")) for spec in args.listen)
    if needs_tls and not (args.tls_cert and args.tls_key):
        parser.error("--listen tls:/wss: needs --tls-cert and --tls-key")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    reactor: ISipReactor = _reactor  # type: ignore[assignment]  # the global reactor provides it
    if args.verbose:
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(sys.stderr)], redirectStandardIO=False
        )
    tls = TlsSettings(certificate=args.tls_cert, key=args.tls_key, ca=args.tls_ca)
    ua = UserAgent(
        reactor, handler=handle, user="echo", transport_settings=TransportSettings(tls=tls)
    )
    try:
        for spec in args.listen:
            bound = ua.listen(spec)
            print("listening " + str(bound), flush=True)
    except Exception as e:
        print("echo_uas: " + str(e), file=sys.stderr)
        return 2
    _reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
