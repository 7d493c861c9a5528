"""Two pjsua2 (PJSIP) phones on ``twistd clearwater``'s phone port: they register, subscribe to
their own reg event (RFC 3680, RFC 6665) and call each other (RFC 3261 §10, §13-§15).

    python tests/integration/pjsua2_phones.py --proxy 127.0.0.1:PORT --transport tls \\
        --tls-ca CA.pem --caller alice:alice-secret --callee bob:bob-secret \\
        [--subscribe --notify-dir DIR] [--call] [--listener-contact] [--timeout 20]

Run as a subprocess by test_all_in_one_pjsua2.py (pjsua2 exists only as a CPython 3.11 wheel).
One pjsua2 Endpoint holds both accounts, each with its own TCP or TLS transport (so its own
connection to the phone port), the registrar ``sip:DOMAIN``, the phone port as outbound proxy
and the digest credentials ``USER@DOMAIN`` / PASSWORD. Everything else is pjsua2's default;
in particular the Contact carries the source port of the phone's connection
(``contactUseSrcPort``), unless ``--listener-contact`` gives the transport's listening port.
What it prints, in order:

1. ``registered USER CONTACT`` once both accounts have their 200 (pjsua2 answers the 401);
2. with ``--subscribe``: each phone sends ``SUBSCRIBE sip:USER@DOMAIN`` with ``Event: reg``,
   ``Accept: application/reginfo+xml`` and its Contact: ``subscribed USER STATUS...`` (every
   final status, e.g. ``407 200``);
3. then every NOTIFY received is written to ``DIR/USER-notify-N.sip`` (the whole message) and
   ``DIR/USER-notify-N.xml`` (its body): ``notify USER PATH``;
4. with ``--call``: the caller calls ``sip:CALLEE@DOMAIN`` and the callee answers 200; once
   the caller's side is CONFIRMED, ``invite challenged N`` (the 407s pjsua2 answered); once the
   callee's side is CONFIRMED too (its ACK came), ``incoming CALLEE REMOTE-URI`` and
   ``confirmed``; the caller hangs up and its BYE must get a 200: ``hung up: BYE 200``.

pjsua2 2.15 has no reg-event subscriber: ``Buddy`` subscribes only to presence and
``AccountMwiConfig`` only to message-summary. ``Account.sendRequest`` sends any request out of
dialog, so it sends the SUBSCRIBE, but (a) it does not answer a 401/407, so this script answers
the phone port's 407 itself (RFC 2617 §3.2.2, MD5 with qop=auth, from the account's password),
and (b) it creates no dialog, so PJSIP's UA layer answers the NOTIFY with 481 ("Unable to find
dialogset") and the S-CSCF ends the subscription (RFC 6665 §4.2.2): each phone gets exactly
one NOTIFY. Its text comes from PJSIP's message log (as pjsua2_call.py reads the BYE's
response), complete up to PJ_LOG_MAX_SIZE (4000 bytes): a cut one fails here, its
Content-Length not matching its body.

Exits 0 on success, 1 on failure (the reason on stderr), 2 when pjsua2 is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

try:
    import pjsua2 as pj  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - reported to the test as exit 2
    print("pjsua2 is not installed (pip install pjsua2-python, CPython 3.11)", file=sys.stderr)
    sys.exit(2)

#: Seconds the callee's side may take to see the ACK once the caller's is CONFIRMED.
ACK_WAIT = 5.0

#: pjsua's message trace of a received NOTIFY: the whole message up to ``--end msg--``.
_RX_NOTIFY = re.compile(
    r"RX \d+ bytes Request msg NOTIFY/cseq=\d+ \([^)]*\) from \S+ \S+:\n(.*?)\n--end msg--",
    re.DOTALL,
)
#: pjsua's message trace line for a received final response to a BYE.
_BYE_RESPONSE = re.compile(r"RX \d+ bytes Response msg (\d{3})/BYE/")
#: pjsua's message trace line for a received 407 to an INVITE.
_INVITE_407 = re.compile(r"RX \d+ bytes Response msg 407/INVITE/")
#: PJSIP's log line when an ACK cannot be sent (its transport failed).
_ACK_FAILED = re.compile(r"Failed to send Request msg ACK/[^!]*!: ([^\n]*)")
#: pjsua's log line giving the Contact an account registers (with its source TCP/TLS port).
_CONTACT = re.compile(r"Contact for acc (\d+) updated: (<[^>]*>)")
#: One ``name=value`` or ``name="value"`` of a digest challenge (RFC 2617 §1.2 auth-param).
_AUTH_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class _Log(pj.LogWriter):  # type: ignore[misc, unused-ignore]
    """Reads PJSIP's message trace: NOTIFYs, challenges and BYE responses received, ACKs that
    could not be sent, and the accounts' Contacts."""

    def __init__(self, echo: bool) -> None:
        super().__init__()
        self.echo = echo
        self.notifies: list[str] = []
        self.invite_challenges = 0
        self.bye_status: Optional[int] = None
        self.ack_error: Optional[str] = None
        self.contacts: dict[int, str] = {}

    def write(self, entry: Any) -> None:
        text: str = entry.msg
        self.notifies += _RX_NOTIFY.findall(text)
        self.invite_challenges += len(_INVITE_407.findall(text))
        bye = _BYE_RESPONSE.search(text)
        if bye is not None:
            self.bye_status = int(bye.group(1))
        ack = _ACK_FAILED.search(text)
        if ack is not None:
            self.ack_error = ack.group(1)
        contact = _CONTACT.search(text)
        if contact is not None:
            self.contacts[int(contact.group(1))] = contact.group(2)
        if self.echo:
            sys.stderr.write(text)


class _Call(pj.Call):  # type: ignore[misc, unused-ignore]
    """Records the INVITE session's states."""

    def __init__(self, account: Any, call_id: int = -1) -> None:
        super().__init__(account, call_id)
        self.states: list[str] = []
        self.confirmed = False
        self.disconnected = False
        self.last = ""

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        info = self.getInfo()
        self.states.append(info.stateText)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.last = str(info.lastStatusCode) + " " + info.lastReason


class _Phone(pj.Account):  # type: ignore[misc, unused-ignore]
    """One account: its registration result, its SUBSCRIBE responses and its incoming call."""

    def __init__(self, user: str, password: str, domain: str) -> None:
        super().__init__()
        self.user = user
        self.password = password
        self.domain = domain
        self.reg_code: Optional[int] = None
        self.reg_reason = ""
        #: (status, whole response) of each request sent with :meth:`sendRequest`.
        self.responses: list[tuple[int, str]] = []
        self.incoming: Optional[_Call] = None

    @property
    def aor(self) -> str:
        return "sip:" + self.user + "@" + self.domain

    @property
    def impi(self) -> str:
        return self.user + "@" + self.domain

    def onRegState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        self.reg_code = int(prm.code)
        self.reg_reason = str(prm.reason)

    def onSendRequest(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        tsx_state = prm.e.body.tsxState
        status = int(tsx_state.tsx.statusCode)
        whole = ""
        if prm.e.type == pj.PJSIP_EVENT_TSX_STATE and tsx_state.type == pj.PJSIP_EVENT_RX_MSG:
            whole = str(tsx_state.src.rdata.wholeMsg)
        self.responses.append((status, whole))

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        call = _Call(self, prm.callId)
        self.incoming = call
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


# ---- digest (RFC 2617 §3.2.2), for the SUBSCRIBE only: pjsua2 answers the others itself


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _challenge(response: str) -> dict[str, str]:
    """The MD5 digest challenge of a 407's Proxy-Authenticate headers."""
    for line in response.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() != "proxy-authenticate":
            continue
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _AUTH_PARAM.finditer(rest)
        }
        if params.get("algorithm", "MD5").upper() == "MD5" and "nonce" in params:
            return params
    raise ValueError("no MD5 Digest Proxy-Authenticate in:\n" + response)


def _proxy_authorization(phone: _Phone, method: str, uri: str, challenge: dict[str, str]) -> str:
    realm, nonce = challenge.get("realm", ""), challenge["nonce"]
    ha1 = _md5(phone.impi + ":" + realm + ":" + phone.password)
    ha2 = _md5(method + ":" + uri)
    fields = [
        'username="' + phone.impi + '"',
        'realm="' + realm + '"',
        'nonce="' + nonce + '"',
        'uri="' + uri + '"',
        "algorithm=MD5",
    ]
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
        fields += ['cnonce="' + cnonce + '"', "qop=auth", "nc=" + nc]
    else:
        response = _md5(ha1 + ":" + nonce + ":" + ha2)
    fields.append('response="' + response + '"')
    if "opaque" in challenge:
        fields.append('opaque="' + challenge["opaque"] + '"')
    return "Digest " + ", ".join(fields)


# ---- the run


class _StepError(Exception):
    pass


class _Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        self.ep: Any = None
        self.log = _Log(echo=args.verbose)
        self.phones: list[_Phone] = []
        self.transports: list[int] = []
        self.outgoing: Optional[_Call] = None

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Poll pjsua2's event loop until ``done()``; fail at the deadline (no sleeping)."""
        while not done():
            if time.monotonic() > self.deadline:
                raise _StepError("timed out waiting for " + what)
            self.ep.libHandleEvents(20)

    def start(self) -> None:
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.logConfig.writer = self.log
        cfg.logConfig.level = 4  # message traces and Contact updates are logged at level 4
        cfg.logConfig.consoleLevel = 4
        cfg.logConfig.msgLogging = True
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        ep.libInit(cfg)
        kind = pj.PJSIP_TRANSPORT_TLS if self.args.transport == "tls" else pj.PJSIP_TRANSPORT_TCP
        for _ in range(2):  # one listener (and so one connection) per phone
            tc = pj.TransportConfig()
            tc.port = 0
            tc.boundAddress = "127.0.0.1"
            tc.publicAddress = "127.0.0.1"
            if self.args.transport == "tls":
                tc.tlsConfig.CaListFile = self.args.tls_ca or ""
                tc.tlsConfig.verifyServer = True
            self.transports.append(ep.transportCreate(kind, tc))
        ep.audDevManager().setNullDev()
        ep.libStart()

    def add_phone(self, spec: str, transport_id: int) -> _Phone:
        user, _, password = spec.partition(":")
        phone = _Phone(user, password, self.args.domain)
        ac = pj.AccountConfig()
        ac.idUri = phone.aor
        ac.regConfig.registrarUri = "sip:" + self.args.domain
        proxy = "sip:" + self.args.proxy + ";transport=" + self.args.transport + ";lr"
        ac.sipConfig.proxies.append(proxy)
        ac.sipConfig.transportId = transport_id
        ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", phone.impi, 0, password))
        ac.natConfig.contactUseSrcPort = not self.args.listener_contact
        ac.mediaConfig.transportConfig.port = 0
        ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        phone.create(ac)  # registers at once
        self.phones.append(phone)
        return phone

    def register(self) -> None:
        self.wait(lambda: all(p.reg_code is not None for p in self.phones), "REGISTER's 200")
        for phone in self.phones:
            if phone.reg_code != 200:
                raise _StepError(
                    phone.user + ": REGISTER got " + str(phone.reg_code) + " " + phone.reg_reason
                )
            contact = self.log.contacts.get(phone.getId())
            if contact is None:
                raise _StepError(phone.user + ": no Contact in PJSIP's log")
            print("registered", phone.user, contact, flush=True)

    def subscribe(self, phone: _Phone) -> None:
        """SUBSCRIBE to the phone's own reg event; answer one 407 (see the module notes)."""
        contact = self.log.contacts[phone.getId()]
        headers = [
            ("Event", "reg"),
            ("Accept", "application/reginfo+xml"),
            ("Expires", "600"),
            ("Contact", contact),
        ]
        self._send_subscribe(phone, headers)
        status, response = phone.responses[-1]
        if status == 407:
            authorization = _proxy_authorization(
                phone, "SUBSCRIBE", phone.aor, _challenge(response)
            )
            self._send_subscribe(phone, [*headers, ("Proxy-Authorization", authorization)])
            status, response = phone.responses[-1]
        statuses = " ".join(str(s) for s, _ in phone.responses)
        print("subscribed", phone.user, statuses, flush=True)
        if status not in (200, 202):
            raise _StepError(phone.user + ": SUBSCRIBE got " + str(status) + "\n" + response)

    def _send_subscribe(self, phone: _Phone, headers: list[tuple[str, str]]) -> None:
        sent = len(phone.responses)
        prm = pj.SendRequestParam()
        prm.method = "SUBSCRIBE"
        prm.txOption.targetUri = phone.aor
        for name, value in headers:
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            prm.txOption.headers.append(header)
        phone.sendRequest(prm)
        self.wait(lambda: len(phone.responses) > sent, phone.user + "'s SUBSCRIBE response")

    def collect_notifies(self, directory: Path) -> None:
        """One NOTIFY per phone (see the module notes), each written to two files."""
        wanted = {p.user for p in self.phones}

        def users() -> set[str]:
            return {_notify_user(m) for m in self.log.notifies}

        self.wait(lambda: wanted <= users(), "a NOTIFY for each phone")
        counts: dict[str, int] = {}
        for message in self.log.notifies:
            user = _notify_user(message)
            counts[user] = counts.get(user, 0) + 1
            stem = directory / (user + "-notify-" + str(counts[user]))
            head, _, body = message.partition("\r\n\r\n")
            declared = re.search(r"(?im)^(?:Content-Length|l)\s*:\s*(\d+)", head)
            if declared is None or int(declared.group(1)) != len(body.encode()):
                raise _StepError("NOTIFY cut short in PJSIP's log:\n" + message)
            stem.with_suffix(".sip").write_bytes(message.encode())
            stem.with_suffix(".xml").write_bytes(body.encode())
            print("notify", user, stem.with_suffix(".xml"), flush=True)

    def call(self, caller: _Phone, callee: _Phone) -> None:
        """The caller's Call is dropped on the way out: pjsua2 aborts if a Call outlives
        ``libDestroy``."""
        self.outgoing = _Call(caller)
        try:
            self.outgoing.makeCall(callee.aor, pj.CallOpParam(True))
            self.wait(self._answered, "the call to be answered")
            if not self.outgoing.confirmed:
                raise _StepError("call ended before CONFIRMED: " + self.outgoing.last)
            print("invite challenged", self.log.invite_challenges, flush=True)
            # The ACK crosses the loopback interface: allow it seconds, not the whole timeout.
            ack_deadline = time.monotonic() + ACK_WAIT
            self.wait(
                lambda: (
                    (callee.incoming is not None and callee.incoming.confirmed)
                    or self.log.ack_error is not None
                    or time.monotonic() > ack_deadline
                ),
                "the callee's side to be CONFIRMED",
            )
            if self.log.ack_error is not None:
                raise _StepError("the caller could not send its ACK: " + self.log.ack_error)
            if callee.incoming is None or not callee.incoming.confirmed:
                raise _StepError("the callee got no ACK within " + str(ACK_WAIT) + " s")
            print("incoming", callee.user, callee.incoming.getInfo().remoteUri, flush=True)
            print("confirmed", flush=True)
            self.outgoing.hangup(pj.CallOpParam(True))
            self.wait(lambda: self.log.bye_status is not None, "the BYE's response")
            if self.log.bye_status != 200:
                raise _StepError("BYE got " + str(self.log.bye_status))
            self.wait(
                lambda: callee.incoming is not None and callee.incoming.disconnected,
                "the callee's side to end",
            )
            print("hung up: BYE 200", flush=True)
        finally:
            self.outgoing = None
            callee.incoming = None

    def _answered(self) -> bool:
        return self.outgoing is not None and (self.outgoing.confirmed or self.outgoing.disconnected)

    def stop(self) -> None:
        for phone in self.phones:
            phone.incoming = None
            phone.shutdown()
        if self.ep is not None:
            self.ep.libDestroy()


def _notify_user(message: str) -> str:
    """The user part of a NOTIFY's Request-URI (``NOTIFY sip:alice@host...``)."""
    match = re.match(r"NOTIFY sips?:([^@;>\s]+)@", message)
    return match.group(1) if match else ""


def _parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--proxy", required=True, help="the phone port, HOST:PORT")
    parser.add_argument("--transport", choices=["tcp", "tls"], default="tcp")
    parser.add_argument("--tls-ca", metavar="FILE", help="CA file to verify the server with")
    parser.add_argument(
        "--listener-contact",
        action="store_true",
        help="Contact: the transport's listening port, not the connection's (TCP)",
    )
    parser.add_argument("--domain", default="example.com", help="the home domain")
    parser.add_argument("--caller", required=True, metavar="USER:PASSWORD")
    parser.add_argument("--callee", required=True, metavar="USER:PASSWORD")
    parser.add_argument("--subscribe", action="store_true", help="step 2 and 3")
    parser.add_argument("--call", action="store_true", help="step 4")
    parser.add_argument("--notify-dir", type=Path, default=Path(), metavar="DIR")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait in all")
    parser.add_argument("--verbose", action="store_true", help="copy PJSIP's log to stderr")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parse_args(argv)
    run = _Run(args)
    try:
        run.start()
        caller = run.add_phone(args.caller, run.transports[0])
        callee = run.add_phone(args.callee, run.transports[1])
        run.register()
        if args.subscribe:
            for phone in run.phones:
                run.subscribe(phone)
            run.collect_notifies(args.notify_dir)
        if args.call:
            run.call(caller, callee)
    except (_StepError, ValueError, pj.Error) as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
