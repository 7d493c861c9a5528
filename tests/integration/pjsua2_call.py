"""Place one call with pjsua2 (PJSIP, an independent SIP stack) and hang it up (RFC 3261 §13, §15).

    python tests/integration/pjsua2_call.py sip:echo@127.0.0.1:PORT;transport=tls \\
        --transport tls --tls-ca CA.pem [--timeout 15]

Run as a subprocess by test_sip_interop.py (pjsua2 exists only as a CPython 3.11 wheel). The call
must reach CONFIRMED (200 received, ACK sent); then this side hangs up and the BYE must get a 200.
Exits 0 on success, 1 on failure (the reason on stderr), 2 when pjsua2 is missing.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any, Optional

try:
    import pjsua2 as pj  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - reported to the test as exit 2
    print("pjsua2 is not installed (pip install pjsua2-python, CPython 3.11)", file=sys.stderr)
    sys.exit(2)

#: pjsua's message trace line for a received final response to a BYE.
_BYE_RESPONSE = re.compile(r"RX \d+ bytes Response msg (\d{3})/BYE/")


class _Call(pj.Call):  # type: ignore[misc, unused-ignore]
    """Records the call's INVITE session states (CONFIRMED, DISCONNECTED)."""

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        self.states: list[str] = []
        self.confirmed = False
        self.disconnected = False

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        info = self.getInfo()
        self.states.append(info.stateText)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            if not self.confirmed:
                print(
                    "call ended before CONFIRMED: "
                    + str(info.lastStatusCode)
                    + " "
                    + info.lastReason,
                    file=sys.stderr,
                )


class _Log(pj.LogWriter):  # type: ignore[misc, unused-ignore]
    """Reads PJSIP's log: after a local hangup pjsua2 reports DISCONNECTED at once and the BYE
    transaction goes on without the Call object, so its final response is only seen here."""

    def __init__(self, echo: bool) -> None:
        super().__init__()
        self.echo = echo
        self.bye_status: Optional[int] = None

    def write(self, entry: Any) -> None:
        match = _BYE_RESPONSE.search(entry.msg)
        if match is not None:
            self.bye_status = int(match.group(1))
        if self.echo:
            sys.stderr.write(entry.msg)


def _parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("uri", help="the callee, e.g. sip:echo@127.0.0.1:5071;transport=tls")
    parser.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp")
    parser.add_argument("--tls-ca", metavar="FILE", help="CA file to verify the TLS server with")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait in all")
    parser.add_argument("--verbose", action="store_true", help="copy PJSIP's log to stderr")
    return parser.parse_args(argv)


def _wait(ep: Any, done: Any, deadline: float) -> bool:
    """Poll pjsua2's event loop until ``done()`` or the deadline (no sleeping)."""
    while not done():
        if time.monotonic() > deadline:
            return False
        ep.libHandleEvents(50)
    return True


def main(argv: Optional[list[str]] = None) -> int:
    args = _parse_args(argv)
    deadline = time.monotonic() + args.timeout
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    log = _Log(echo=args.verbose)
    cfg.logConfig.writer = log
    cfg.logConfig.level = 4  # message traces are logged at level 4
    cfg.logConfig.consoleLevel = 4
    cfg.logConfig.msgLogging = True
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    ep.libInit(cfg)
    tc = pj.TransportConfig()
    tc.port = 0
    tc.boundAddress = "127.0.0.1"
    tc.publicAddress = "127.0.0.1"
    kind = {
        "udp": pj.PJSIP_TRANSPORT_UDP,
        "tcp": pj.PJSIP_TRANSPORT_TCP,
        "tls": pj.PJSIP_TRANSPORT_TLS,
    }[args.transport]
    if args.transport == "tls":
        tc.tlsConfig.CaListFile = args.tls_ca or ""
        tc.tlsConfig.verifyServer = True
    ep.transportCreate(kind, tc)
    ep.audDevManager().setNullDev()
    ep.libStart()

    ac = pj.AccountConfig()
    ac.idUri = "sip:pjsua2@127.0.0.1"
    ac.regConfig.registrarUri = ""
    ac.mediaConfig.transportConfig.port = 0
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(ac)

    try:
        return _call(ep, account, log, args.uri, deadline)
    finally:
        account.shutdown()
        ep.libDestroy()


def _call(ep: Any, account: Any, log: _Log, uri: str, deadline: float) -> int:
    """Call, wait for CONFIRMED, hang up, wait for the BYE's response. The Call object lives only
    in here: pjsua2 aborts if one outlives ``libDestroy``."""
    call = _Call(account)
    call.makeCall(uri, pj.CallOpParam(True))
    if not _wait(ep, lambda: call.confirmed or call.disconnected, deadline):
        print("timed out before CONFIRMED; states: " + ", ".join(call.states), file=sys.stderr)
        return 1
    if not call.confirmed:
        return 1
    print("confirmed", flush=True)
    call.hangup(pj.CallOpParam(True))
    if not _wait(ep, lambda: log.bye_status is not None, deadline):
        print("timed out waiting for the BYE's response", file=sys.stderr)
        return 1
    if log.bye_status != 200:
        print("BYE got " + str(log.bye_status), file=sys.stderr)
        return 1
    print("hung up: BYE 200", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
