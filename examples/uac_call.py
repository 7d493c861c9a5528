"""Place one call: INVITE (with digest if challenged), wait for the 200, ACK, hang up with BYE.

    python examples/uac_call.py sip:bob@127.0.0.1:5070 [--user U --password P] [--transport tcp]

Exits 0 when the call was answered and the BYE got a 2xx, 1 otherwise (the reason on stderr).
Built on :class:`clearwater.sip.ua.UserAgent`; see docs/sip-apps.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import react
from twisted.logger import globalLogBeginner, textFileLogObserver

from clearwater._types import ISipReactor
from clearwater.sip import SipUri, parse_uri
from clearwater.sip.auth import DigestClient
from clearwater.sip.transport import TlsSettings, TransportSettings
from clearwater.sip.ua import CallFailedError, UserAgent

OFFER = (
    b"v=0\r\n"
    b"o=uac 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("uri", help="the callee, e.g. sip:bob@127.0.0.1:5070")
    parser.add_argument("--user", help="digest user name (also the From user)")
    parser.add_argument("--password", help="digest password")
    parser.add_argument(
        "--transport",
        choices=["udp", "tcp", "tls", "ws", "wss"],
        help="transport to the callee (default: RFC 3263 rules for the URI)",
    )
    parser.add_argument("--local-ip", default="127.0.0.1", help="address to send from")
    parser.add_argument("--tls-ca", metavar="FILE", help="CA file to verify a TLS callee with")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait in all")
    parser.add_argument("--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    try:
        uri = parse_uri(args.uri)
    except Exception:
        parser.error("not a SIP URI: " + args.uri)
    if not isinstance(uri, SipUri):
        parser.error("not a sip: or sips: URI: " + args.uri)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    args.uri = uri
    return args


async def call(reactor: ISipReactor, args: argparse.Namespace) -> int:
    credentials = DigestClient(args.user, args.password) if args.user else None
    tls = TlsSettings(ca=args.tls_ca)
    ua = UserAgent(
        reactor,
        credentials=credentials,
        user=args.user or "uac",
        transport_settings=TransportSettings(tls=tls),
    )
    ua.listen("udp:" + args.local_ip + ":0")
    ua.listen("tcp:" + args.local_ip + ":0")
    outgoing = ua.invite(args.uri, body=OFFER, transport=args.transport)

    def give_up() -> None:
        outgoing.cancel()  # a CANCEL goes out once the callee sent a provisional response
        if not outgoing.answered.called:
            outgoing.answered.cancel()  # stop waiting here either way

    deadline = reactor.callLater(args.timeout, give_up)
    try:
        dialog = await outgoing.answered
        print("answered: call " + dialog.call_id, flush=True)
        response = await dialog.bye()
        if not 200 <= response.status < 300:
            print("BYE failed: " + str(response.status), file=sys.stderr)
            return 1
        print("hung up: BYE " + str(response.status), flush=True)
        return 0
    except CallFailedError as e:
        print("call failed: " + str(e), file=sys.stderr)
        return 1
    except CancelledError:
        print("call failed: no answer within " + str(args.timeout) + " s", file=sys.stderr)
        return 1
    except Exception as e:
        print("call failed: " + type(e).__name__ + ": " + str(e), file=sys.stderr)
        return 1
    finally:
        if deadline.active():
            deadline.cancel()
        await ua.stop()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.verbose:
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(sys.stderr)], redirectStandardIO=False
        )
    result: list[int] = []

    async def run(reactor: ISipReactor) -> None:
        result.append(await call(reactor, args))

    def start(reactor: ISipReactor) -> Deferred[None]:
        return Deferred.fromCoroutine(run(reactor))

    try:
        react(start, [])
    except SystemExit as e:
        if e.code:
            return int(e.code)
    return result[0] if result else 1


if __name__ == "__main__":
    sys.exit(main())
