"""Properties of the SIP parser: robustness against any input, and model-level round trips.

- 100,000 seeded random mutations of the RFC 4475 / RFC 5118 messages raise nothing but
  ParseError, from the parser and from every typed header accessor; whatever parses serialises
  and parses back equal.
- Hypothesis: arbitrary bytes raise nothing but ParseError; generated messages survive
  ``to_bytes()`` -> ``parse_message()`` unchanged; the stream framer + parser pipeline gives
  the same messages whether a stream arrives whole or in random pieces.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Union

from hypothesis import given
from hypothesis import strategies as st

from clearwater.sip import (
    CSeq,
    FramedMessage,
    NameAddr,
    ParseError,
    Request,
    Response,
    SipUri,
    StreamFramer,
    Via,
    parse_message,
)
from clearwater.sip import headers as h

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "rfc4475"
RFC5118 = Path(__file__).resolve().parents[2] / "vectors" / "rfc5118"
CORPUS = [p.read_bytes() for p in sorted(VECTORS.glob("*.dat")) + sorted(RFC5118.glob("*.dat"))]
SPECS = [getattr(h, name) for name in h.__all__ if isinstance(getattr(h, name), h.HeaderSpec)]

# Fragments that matter to the grammar, spliced in by the mutator.
SPECIAL = [
    b"\r\n", b"\r\n ", b"\r\n\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b",", b"<", b">",
    b'"', b"\\", b"%", b"%0", b"[", b"]", b"@", b"=", b"/", b"\x00", b"\xff", b"\xc3\xa9",
    b"0", b"99999999999999999999", b"-1", b"sip:", b"sips:", b"tel:+1", b"SIP/2.0",
    b"Content-Length: 5\r\n", b"l: 0\r\n", b"Via: SIP/2.0/UDP h\r\n", b"v: x\r\n",
    b";branch=z9hG4bK", b";tag=", b"*",
]  # fmt: skip

Message = Union[Request, Response]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip one byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert a grammar fragment
            buf[pos:pos] = rng.choice(SPECIAL)
        elif op == 2:  # delete a range
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3:  # duplicate a range (repeats headers, separators, ...)
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end]
        elif op == 4:  # replace a byte with a grammar fragment
            buf[pos : pos + 1] = rng.choice(SPECIAL)
        else:  # truncate
            del buf[pos:]
    return bytes(buf)


def _exercise(message: Message) -> None:
    """Read every typed header, serialise, parse back: only ParseError may escape."""
    for spec in SPECS:
        with contextlib.suppress(ParseError):
            message.headers.parsed(spec)
    wire = message.to_bytes()
    again = parse_message(wire)
    assert again.to_bytes() == wire


def test_100000_mutations_raise_only_parse_error() -> None:
    rng = random.Random(4475)
    parsed = rejected = 0
    for _ in range(100_000):
        data = _mutate(rng, rng.choice(CORPUS))
        try:
            message = parse_message(data)
        except ParseError as e:
            assert e.reason and e.reason.isascii() and e.reason.isprintable()
            rejected += 1
            continue
        parsed += 1
        _exercise(message)
    # Both paths were exercised in quantity.
    assert parsed > 5_000 and rejected > 50_000


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        message = parse_message(data)
    except ParseError:
        return
    _exercise(message)


@given(st.lists(st.sampled_from(SPECIAL), max_size=40).map(b"".join))
def test_grammar_soup_raises_only_parse_error(data: bytes) -> None:
    for prefix in (b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n"):
        try:
            message = parse_message(prefix + data + b"\r\n\r\n")
        except ParseError:
            continue
        _exercise(message)


# ---------------------------------------------------------------- model-level round trip

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_token = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
_host = st.one_of(
    st.from_regex(
        r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){0,3}", fullmatch=True
    ),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: "[" + str(a) + "]"),
)
_port = st.one_of(st.none(), st.integers(1, 65535))
_user = st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}", fullmatch=True))
_uri = st.builds(lambda host, user, port: SipUri(host, user, port=port), _host, _user, _port)
_params = st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3).map(tuple)
_display = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
    ).filter(lambda s: s.strip(" \t") == s),
)
_name_addr = st.builds(NameAddr, _uri, _display, _params)
_via = st.builds(
    lambda transport, host, port, branch: Via(transport, host, port, (("branch", branch),)),
    st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"]),
    _host,
    _port,
    _token.map(lambda t: "z9hG4bK" + t),
)
_ext_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    max_size=40,
).map(lambda s: s.strip(" \t"))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "MESSAGE"]) | _token)
    headers: list[tuple[str, str]] = [
        ("Via", str(via)) for via in draw(st.lists(_via, min_size=1, max_size=3))
    ]
    headers += [
        ("From", str(draw(_name_addr))),
        ("To", str(draw(_name_addr))),
        ("Call-ID", draw(_token) + "@" + draw(_token)),
        ("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method))),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    for _ in range(draw(st.integers(0, 4))):
        headers.append(("X-" + draw(_token), draw(_ext_value)))
    for route in draw(st.lists(_name_addr, max_size=2)):
        headers.append(("Route", str(NameAddr(route.uri, None, (("lr", None),)))))
    draw(st.randoms()).shuffle(headers)
    body = draw(st.binary(max_size=64))
    headers.append(("Content-Length", str(len(body))))
    return Request(method, draw(_uri), headers, body)


@given(requests())
def test_generated_requests_round_trip(request: Request) -> None:
    parsed = parse_message(request.to_bytes())
    assert parsed == request
    assert parsed.vias == [Via.parse(v) for v in request.headers.get_all("Via")]
    assert parsed.from_ == request.from_
    assert parsed.to == request.to


@given(requests(), st.data())
def test_framer_and_parser_agree_whatever_the_splits(request: Request, data: st.DataObject) -> None:
    wire = request.to_bytes()
    stream = wire + b"\r\n\r\n" + wire
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = StreamFramer()
    messages = []
    start = 0
    for cut in [*cuts, len(stream)]:
        for event in framer.feed(stream[start:cut]):
            if isinstance(event, FramedMessage):
                messages.append(parse_message(event.data))
        start = cut
    assert messages == [request, request]
