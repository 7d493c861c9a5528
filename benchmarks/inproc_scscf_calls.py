"""In-process profile of the S-CSCF's calls: bench_scscf_calls.sh's call flow, without sockets.

    python -m benchmarks.inproc_scscf_calls [--callees N] [--calls N] [--warmup N] [--rate R]
        [--profile FILE]

(from the repository root). ``twistd sprout``'s service tree, built from the same options as
benchmarks/bench_scscf_calls.sh gives it, runs on a memory reactor with a heap clock; its
in-process homestead reads a memory subscriber store through the same cache as in production
(``--subscriber-cache-ttl`` 10 s). CALLEES subscribers ``regNNNNN@localhost`` register with MD5
digest (REGISTER, 401, REGISTER with credentials, 200; not measured), their Contact the callee's
address; then each call (INVITE to a callee's address of record with no Route: terminating at
the S-CSCF; 180 and 200 from the callee; ACK and BYE from the caller through the S-CSCF's
Record-Route; 200) is delivered as datagrams, the clock advancing 1/R s per call, the garbage
collector tuned as in twistd sprout (GcTuning). Prints the CPU seconds per 1,000 calls.
Deterministic, unlike a SIPp run on a shared machine, but without the SQLite worker thread of
``--subscriber-store sqlite:``: the tool for telling whether a change to the S-CSCF's path
helps; benchmarks/bench_scscf_calls.sh gives the figures of record.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import platform
import re
import sys
import time
from typing import Optional, cast

from twisted.internet.defer import Deferred

from benchmarks.inproc_echo_uas import SDP, _HeapClockReactor
from benchmarks.inproc_sprout_proxy import _answer, _to
from clearwater._types import ISipReactor
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.services._gc import GcTuning
from clearwater.services.sprout.service import build
from clearwater.services.sprout.tap import SproutOptions
from clearwater.stores.cached import CachedSubscriberStore
from clearwater.stores.memory import MemorySubscriberStore

PORT = 5054
CALLER = ("127.0.0.1", 5061)
CALLEE = ("127.0.0.1", 5070)
REGISTRAR = ("127.0.0.1", 5090)
DOMAIN = "localhost"

REGISTER = (
    "REGISTER sip:localhost SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-r{n}-{cseq}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:{user}@localhost>;tag={n}R\r\n"
    "To: <sip:{user}@localhost>\r\n"
    "Call-ID: r{n}@127.0.0.1\r\n"
    "CSeq: {cseq} REGISTER\r\n"
    "Contact: <sip:{user}@127.0.0.1:5070;transport=UDP>\r\n"
    "{auth}Expires: 3600\r\n"
    "Content-Length: 0\r\n\r\n"
)
INVITE = (
    "INVITE sip:{user}@localhost SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:caller@localhost>;tag={n}C\r\n"
    "To: <sip:{user}@localhost>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:caller@127.0.0.1:5061;transport=UDP>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{sdp}"
)
IN_DIALOG = (
    "{method} {target} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-{seq}-{vseq}\r\n"
    "Route: {route}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:caller@localhost>;tag={n}C\r\n"
    "To: <sip:{user}@localhost>;tag={n}callee\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: {seq} {method}\r\n"
    "Contact: <sip:caller@127.0.0.1:5061;transport=UDP>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _user(n: int) -> str:
    return f"reg{n:05}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _authorization(challenge: bytes, user: str, password: str) -> str:
    """The Authorization header answering ``challenge`` (a 401) with MD5 digest, qop=auth
    (RFC 2617 §3.2.2)."""
    header = re.search(rb"\r\nWWW-Authenticate: Digest (.*)\r\n", challenge)
    assert header, challenge
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.group(1).decode()))
    username, uri = user + "@" + DOMAIN, "sip:" + DOMAIN
    ha1 = _md5(username + ":" + params["realm"] + ":" + password)
    ha2 = _md5("REGISTER:" + uri)
    response = _md5(":".join((ha1, params["nonce"], "00000001", "c0ffee", "auth", ha2)))
    return (
        f'Authorization: Digest username="{username}",realm="{params["realm"]}",'
        f'nonce="{params["nonce"]}",uri="{uri}",response="{response}",algorithm=MD5,'
        f'qop=auth,nc=00000001,cnonce="c0ffee",opaque="{params["opaque"]}"\r\n'
    )


def run(callees: int, calls: int, warmup: int, rate: float, profile: Optional[str]) -> None:
    reactor = _HeapClockReactor()
    options = SproutOptions()
    options.parseOptions(
        [
            *("--home-domain", DOMAIN, "--local-ip", "127.0.0.1", "--http-port", "0"),
            *("--scscf", str(PORT), "--icscf", "0", "--bgcf", "0", "--mmtel", "0"),
            *("--reg-max-expires", "3600"),
        ]
    )
    store = MemorySubscriberStore()
    for n in range(callees):
        user = _user(n)
        done = Deferred.fromCoroutine(
            provision_subscriber(
                store, f"{user}@{DOMAIN}", [f"sip:{user}@{DOMAIN}"], realm=DOMAIN,
                password=f"pw{n:05}",
            )
        )  # fmt: skip
        assert done.called
    subscribers = CachedSubscriberStore(store, reactor)
    top = build(options.config(), cast(ISipReactor, reactor), [], subscribers=subscribers)
    top.startService()
    tuning = GcTuning(reactor)  # as twistd sprout: survivors frozen every (simulated) second
    tuning.startService()
    port = reactor.udp_port(PORT)
    for n in range(callees):
        user = _user(n)
        port.deliver(REGISTER.format(n=n, cseq=1, user=user, auth="").encode(), REGISTRAR)
        reactor.advance(0)
        [challenge] = [d for d in _to(port.clear(), REGISTRAR) if d.startswith(b"SIP/2.0 401")]
        auth = _authorization(challenge, user, f"pw{n:05}")
        port.deliver(REGISTER.format(n=n, cseq=2, user=user, auth=auth).encode(), REGISTRAR)
        reactor.advance(0)
        answers = _to(port.clear(), REGISTRAR)
        assert answers and answers[-1].startswith(b"SIP/2.0 200"), answers
        reactor.advance(1.0 / 200)
    reactor.advance(64 * 0.5)  # the registrations' transactions end
    step = 1.0 / rate
    sdp_len = len(SDP.encode())

    def call(n: int) -> None:
        user = _user(n % callees)
        port.deliver(INVITE.format(n=n, user=user, length=sdp_len, sdp=SDP).encode(), CALLER)
        reactor.advance(0)
        [invite] = _to(port.clear(), CALLEE)
        port.deliver(_answer(invite, "180 Ringing", record_route=True, n=n), CALLEE)
        port.deliver(_answer(invite, "200 OK", record_route=True, n=n), CALLEE)
        reactor.advance(0)
        sent = _to(port.clear(), CALLER)
        assert sent[-1].startswith(b"SIP/2.0 200"), sent
        routes = re.findall(rb"\r\nRecord-Route: ([^\r]*)", sent[-1])
        route = b", ".join(reversed(routes)).decode()
        target = "sip:service@127.0.0.1:5070"
        for method, seq, vseq in (("ACK", 1, 5), ("BYE", 2, 7)):
            message = IN_DIALOG.format(
                method=method, target=target, n=n, seq=seq, vseq=vseq, route=route, user=user
            )
            port.deliver(message.encode(), CALLER)
        reactor.advance(0)
        forwarded = _to(port.clear(), CALLEE)
        assert [d[:3] for d in forwarded] == [b"ACK", b"BYE"], forwarded
        port.deliver(_answer(forwarded[1], "200 OK", record_route=False, n=n), CALLEE)
        reactor.advance(0)
        sent = _to(port.clear(), CALLER)
        assert sent and sent[-1].startswith(b"SIP/2.0 200"), sent
        reactor.advance(step)

    for n in range(warmup):
        call(n)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    cpu = time.process_time()
    for n in range(warmup, warmup + calls):
        call(n)
    cpu = time.process_time() - cpu
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    print(f"callees={callees} calls={calls} rate={rate:g} cpu_s_per_1k={1000 * cpu / calls:.3f}")
    tuning.stopService()
    top.stopService()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--callees", type=int, default=1000, help="registered callees (1000)")
    parser.add_argument("--calls", type=int, default=20000, help="calls to run (20000)")
    parser.add_argument(
        "--warmup", type=int, help="calls run first, not counted (0; PyPy: 20000, for its JIT)"
    )
    parser.add_argument("--rate", type=float, default=700.0, help="calls per second (700)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    args = parser.parse_args()
    warmup = args.warmup
    if warmup is None:
        warmup = 20000 if platform.python_implementation() == "PyPy" else 0
    run(args.callees, args.calls, warmup, args.rate, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
