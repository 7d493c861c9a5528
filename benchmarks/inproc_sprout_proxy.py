"""In-process profile of sprout as a proxy: bench_sprout_proxy.sh's call flow, without sockets.

    python -m benchmarks.inproc_sprout_proxy [--calls N] [--rate R] [--gc-freeze] [--profile FILE]

(from the repository root). A :class:`~clearwater.sip.sproutlet.SproutletProxy` hosting the relay
sproutlet of ``benchmarks/plugins/relay.py`` (Record-Route, forward by Request-URI) runs on a
memory reactor with a heap clock; the caller's and the callee's messages (SIPp's: INVITE with a
preloaded Route, 180, 200 with the Record-Route, ACK and BYE back through the proxy, 200) are
delivered as datagrams, the clock advancing 1/R s per call, so transactions linger as on a real
server at R calls/s. Prints the CPU seconds per 1,000 calls (the fake peers' few string
operations included), the GC-tracked objects alive per lingering call and the generation-2
collections. Deterministic, unlike a SIPp run on a shared machine: the tool for telling whether
a change to the proxy path helps; benchmarks/bench_sprout_proxy.sh gives the figures of record.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import os
import sys
import time
from typing import Optional, cast

from benchmarks import inproc_echo_uas as echo
from benchmarks.inproc_echo_uas import SDP, _HeapClockReactor
from clearwater._types import ISipReactor
from clearwater.sip.sproutlet import Sproutlet, SproutletProxy

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_PORT = 5062
CALLER = ("127.0.0.1", 5061)
CALLEE = ("127.0.0.1", 5070)

# SIPp's messages as in inproc_echo_uas, with the Route that brings them through the proxy:
# the preloaded one on the INVITE, the proxy's Record-Route on the ACK and BYE; the callee
# answers with a To tag of its own.
INVITE = echo.INVITE.replace("From:", "Route: <sip:127.0.0.1:5062;lr>\r\nFrom:", 1)
IN_DIALOG = echo.IN_DIALOG.replace("From:", "Route: {route}\r\nFrom:", 1).replace(
    ";tag={tag}", ";tag={n}callee", 1
)


def _relay() -> Sproutlet:
    spec = importlib.util.spec_from_file_location(
        "relay", os.path.join(HERE, "plugins", "relay.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    relay: Sproutlet = module.Relay(PROXY_PORT)
    return relay


def _answer(request: bytes, status: str, *, record_route: bool, n: int) -> bytes:
    """The callee's response to a request the proxy forwarded: its Vias, From, Call-ID, CSeq
    and Record-Route copied, a To tag, a Contact (RFC 3261 §8.2.6)."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    lines = [b"SIP/2.0 " + status.encode()]
    for line in head[1:]:
        name = line.split(b":", 1)[0].lower()
        if name in (b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq") or (
            name in (b"record-route",) and record_route
        ):
            lines.append(line)
        elif name in (b"to", b"t"):
            lines.append(line + b";tag=" + str(n).encode() + b"callee")
    lines.append(b"Contact: <sip:service@127.0.0.1:5070>")
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _to(sent: list[tuple[bytes, tuple[str, int]]], address: tuple[str, int]) -> list[bytes]:
    return [data for data, dest in sent if dest == address]


def run(calls: int, rate: float, profile: Optional[str], freeze: bool) -> None:
    reactor = _HeapClockReactor()
    proxy = SproutletProxy(
        cast(ISipReactor, reactor), [_relay()], hostname="127.0.0.1", local_hosts=["localhost"]
    )
    proxy.listen("udp:127.0.0.1:" + str(PROXY_PORT))
    port = reactor.udp_port(PROXY_PORT)
    gen2: list[float] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info.get("generation") == 2:
            gen2.append(time.perf_counter() - started[0])

    step = 1.0 / rate
    sdp_len = len(SDP.encode())
    baseline = len(gc.get_objects())
    callbacks = getattr(gc, "callbacks", None)  # CPython only
    if callbacks is not None:
        callbacks.append(on_gc)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    cpu = time.process_time()
    for n in range(calls):
        port.deliver(INVITE.format(n=n, length=sdp_len, sdp=SDP).encode(), CALLER)
        [invite] = _to(port.clear(), CALLEE)
        port.deliver(_answer(invite, "180 Ringing", record_route=True, n=n), CALLEE)
        port.deliver(_answer(invite, "200 OK", record_route=True, n=n), CALLEE)
        sent = _to(port.clear(), CALLER)
        assert sent[-1].startswith(b"SIP/2.0 200"), sent
        route = "<sip:127.0.0.1:" + str(PROXY_PORT) + ";lr;service=relay>"
        port.deliver(
            IN_DIALOG.format(method="ACK", n=n, seq=1, vseq=5, route=route).encode(), CALLER
        )
        port.deliver(
            IN_DIALOG.format(method="BYE", n=n, seq=2, vseq=7, route=route).encode(), CALLER
        )
        forwarded = _to(port.clear(), CALLEE)
        assert [d[:3] for d in forwarded] == [b"ACK", b"BYE"], forwarded
        port.deliver(_answer(forwarded[1], "200 OK", record_route=False, n=n), CALLEE)
        sent = _to(port.clear(), CALLER)
        assert sent and sent[-1].startswith(b"SIP/2.0 200"), sent
        reactor.advance(step)
        if freeze and n % int(rate) == 0:  # as twistd sprout's GcTuning, once a second
            gc.freeze()
    cpu = time.process_time() - cpu
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    if callbacks is not None:
        callbacks.remove(on_gc)
    if freeze:
        gc.unfreeze()
    lingering = min(calls, int(64 * 0.5 * rate))
    alive = len(gc.get_objects()) - baseline
    print(
        f"calls={calls} rate={rate:g} cpu_s_per_1k={1000 * cpu / calls:.3f} "
        f"tracked_objects_per_lingering_call={alive / lingering:.1f} "
        f"gen2_collections={len(gen2)} gen2_total_s={sum(gen2):.3f} "
        f"active={proxy.active_transactions}"
    )
    proxy.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls to run (20000)")
    parser.add_argument("--rate", type=float, default=700.0, help="calls per second (700)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() every second, as twistd sprout"
    )
    args = parser.parse_args()
    run(args.calls, args.rate, args.profile, args.gc_freeze and hasattr(gc, "freeze"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
