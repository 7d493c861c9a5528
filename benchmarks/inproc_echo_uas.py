"""In-process profile of the echo UAS: SIPp's ``uac`` call flow fed straight into the stack.

    python benchmarks/inproc_echo_uas.py [--calls N] [--rate R] [--profile FILE]

No sockets and no SIPp: examples/echo_uas.py's handler runs on a :class:`UserAgent` over
:class:`clearwater.testing.SipMemoryReactor`; each call's INVITE, ACK and BYE (the messages
SIPp's built-in ``uac`` scenario sends) are delivered as datagrams, the clock advancing
1/R s per call, so transactions live as long as on a real server at R calls/s (timers L
and J: 64*T1). Prints the CPU seconds per 1,000 calls, the GC-tracked objects still alive per
live call, and the cyclic GC's pauses (count, total, longest). A tool for finding where the
time goes between runs of benchmarks/bench_echo_uas.sh, which gives the figures of record.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import importlib.util
import itertools
import os
import sys
import time
from typing import Any, Callable

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall
from typing_extensions import override

from clearwater.sip.ua import IncomingRequest, UserAgent
from clearwater.testing import SipMemoryReactor

ECHO_UAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "echo_uas.py")

UAS_PORT = 5070
SIPP = ("127.0.0.1", 5061)

SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

INVITE = (
    "INVITE sip:service@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5070>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{sdp}"
)
IN_DIALOG = (
    "{method} sip:service@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-{seq}-{vseq}\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5070>;tag={tag}\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: {seq} {method}\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Length: 0\r\n\r\n"
)


class _HeapClockReactor(SipMemoryReactor):
    """SipMemoryReactor with a heap of timers: twisted's Clock re-sorts its whole list on every
    callLater and advance, far too slow for the ~200,000 timers of a loaded server."""

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._order = itertools.count()

    @override
    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        call = DelayedCall(
            self.seconds() + delay, callable, args, kw, _ignore, _ignore, self.seconds
        )
        heapq.heappush(self._heap, (call.getTime(), next(self._order), call))
        return call

    @override
    def advance(self, amount: float) -> None:
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            call = heapq.heappop(heap)[2]
            if call.cancelled or call.called:
                continue
            call.called = 1
            call.func(*call.args, **call.kw)


def _ignore(call: Any) -> None:
    pass


def _echo_handler() -> Callable[[IncomingRequest], object]:
    spec = importlib.util.spec_from_file_location("echo_uas", ECHO_UAS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handle: Callable[[IncomingRequest], object] = module.handle
    return handle


def _to_tag(response: bytes) -> str:
    for line in response.split(b"\r\n"):
        if line.lower().startswith((b"to:", b"t:")):
            return line.split(b";tag=", 1)[1].split(b";", 1)[0].decode()
    raise AssertionError("no To tag in " + repr(response[:200]))


def run(calls: int, rate: float, profile: str | None) -> None:
    reactor = _HeapClockReactor()
    ua = UserAgent(reactor, handler=_echo_handler(), user="echo")  # type: ignore[arg-type]
    ua.listen("udp:127.0.0.1:" + str(UAS_PORT))
    port = reactor.udp_port(UAS_PORT)
    pauses: list[float] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info.get("generation") == 2:
            pauses.append(time.perf_counter() - started[0])

    step = 1.0 / rate
    sdp_len = len(SDP.encode())
    baseline = len(gc.get_objects())  # PyPy: only the objects gc knows of
    callbacks = getattr(gc, "callbacks", None)  # CPython only
    if callbacks is not None:
        callbacks.append(on_gc)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    cpu = time.process_time()
    for n in range(calls):
        port.deliver(INVITE.format(n=n, length=sdp_len, sdp=SDP).encode(), SIPP)
        sent = port.clear()
        ok = [data for data, _ in sent if data.startswith(b"SIP/2.0 200")]
        assert ok, sent
        tag = _to_tag(ok[0])
        port.deliver(IN_DIALOG.format(method="ACK", n=n, seq=1, vseq=5, tag=tag).encode(), SIPP)
        port.deliver(IN_DIALOG.format(method="BYE", n=n, seq=2, vseq=7, tag=tag).encode(), SIPP)
        sent = port.clear()
        assert sent and sent[-1][0].startswith(b"SIP/2.0 200"), sent
        reactor.advance(step)
    cpu = time.process_time() - cpu
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    if callbacks is not None:
        callbacks.remove(on_gc)
    live_calls = min(calls, int(64 * 0.5 * rate))
    alive = len(gc.get_objects()) - baseline
    print(
        f"calls={calls} rate={rate:g} cpu_s_per_1k={1000 * cpu / calls:.3f} "
        f"tracked_objects_per_live_call={alive / live_calls:.1f} "
        f"gen2_collections={len(pauses)} gen2_total_s={sum(pauses):.3f} "
        f"gen2_longest_s={max(pauses, default=0.0):.3f}"
    )
    ua.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls to run (20000)")
    parser.add_argument("--rate", type=float, default=1500.0, help="calls per second (1500)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    args = parser.parse_args()
    run(args.calls, args.rate, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
