"""Parser micro-benchmark: parse + serialise typical SIP messages, in messages per second.

    python benchmarks/bench_sip_parse.py [--seconds S] [--repeat N] [--phases]
    pypy3 benchmarks/bench_sip_parse.py          # from a PyPy virtualenv with clearwater

Each round parses the message from bytes (with the validation every element does) and
serialises it back with ``to_bytes()``; the figure is the best of ``--repeat`` rounds of about
``--seconds`` each, on one core. ``--phases`` also times the parser's private steps on the INVITE
(cumulatively: each line includes the ones above it). Results go in docs/performance.md with
this command.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Callable

from clearwater.sip import Request, Response, parse_message

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:6505550001@example.com>;tag=1928301774\r\n"
    b"To: <sip:6505550001@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'Contact: <sip:6505550001@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:'
    b'00000000-0000-1000-8000-000A95A0E128>";reg-id=1\r\n'
    b"Expires: 3600\r\n"
    b"Supported: path, outbound, gruu\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY\r\n"
    b"User-Agent: clearwater-bench/1.0\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:6505550002@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:6505550001@example.com>;tag=9fxced76sl\r\n'
    b"To: <sip:6505550002@example.com>\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:6505550001@192.0.2.10:5060;transport=udp>\r\n"
    b"Route: <sip:sprout.example.com;transport=tcp;lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n"
    b"Supported: 100rel, timer, replaces\r\n"
    b"User-Agent: clearwater-bench/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.5:5054;branch=z9hG4bKsprout1;received=10.0.0.5\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;branch=z9hG4bK74bf9;received=192.0.2.10\r\n"
    b"Record-Route: <sip:scscf.sprout.example.com:5054;transport=TCP;lr;service=scscf>\r\n"
    b"Record-Route: <sip:bono-1.example.com:5058;transport=TCP;lr>\r\n"
    b"Record-Route: <sip:bono-1.example.com:5060;transport=UDP;lr>\r\n"
    b'From: "Alice" <sip:6505550001@example.com>;tag=9fxced76sl\r\n'
    b"To: <sip:6505550002@example.com>;tag=8321234356\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:6505550002@192.0.2.20:5060;transport=udp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

MESSAGES = {"REGISTER": REGISTER, "INVITE with SDP": INVITE, "200 OK with Record-Routes": OK_200}


def _round(data: bytes, seconds: float) -> float:
    """Messages per second over one round of about ``seconds``."""
    n = 0
    batch = 1000
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            parse_message(data).to_bytes()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def _per_call(func: Callable[[], object], seconds: float) -> float:
    """Microseconds per call of ``func``, best of three rounds."""
    best = float("inf")
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for _ in range(1000):
                func()
            n += 1000
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def phases(data: bytes, seconds: float) -> None:
    """Cumulative timings of the parser's steps (private API: for profiling only)."""
    from clearwater.sip import _parser

    def split() -> list[str]:
        text = data[: data.find(b"\r\n\r\n")].decode("utf-8", "surrogateescape")
        lines = text.split("\r\n")
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise AssertionError
        return lines

    def fields() -> object:
        return _parser._parse_fields(split())

    def start_line() -> object:
        lines = split()
        return _parser._request(lines[0], _parser._parse_fields(lines)[0])

    def validate() -> object:
        lines = split()
        fields, eager = _parser._parse_fields(lines)
        return _parser._validate(_parser._request(lines[0], fields), eager)

    message = parse_message(data)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("decode, split lines", split),
        ("+ header fields", fields),
        ("+ start line and Request-URI", start_line),
        ("+ eager header validation", validate),
        ("parse_message", lambda: parse_message(data)),
        ("to_bytes", message.to_bytes),
    ]
    for name, func in steps:
        func()
        print(f"  {name:32} {_per_call(func, seconds):6.2f} us")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per message; best is kept")
    parser.add_argument("--phases", action="store_true", help="also time the INVITE's parse steps")
    args = parser.parse_args(argv)
    for data in MESSAGES.values():  # sanity: the messages parse and round-trip
        msg = parse_message(data)
        assert isinstance(msg, (Request, Response)) and msg.to_bytes() == data
    print(platform.python_implementation(), platform.python_version(), "-", platform.machine())
    for name, data in MESSAGES.items():
        _round(data, min(args.seconds, 1.0))  # warm-up (lets PyPy's JIT compile)
        best = max(_round(data, args.seconds) for _ in range(args.repeat))
        print(f"{name:28} {best:10,.0f} parse+serialise per second ({len(data)} bytes)")
    if args.phases:
        print("INVITE, cumulative steps:")
        phases(INVITE, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
