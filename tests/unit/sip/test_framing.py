"""Tests for :mod:`clearwater.sip._framing`: SIP framing on streams (RFC 3261 §18.3, §7.5,
§7.3.1) and CRLF keep-alives (RFC 5626 §3.5.1, §4.4.1).

As in Twisted's old ``sip.py`` tests, each scenario runs twice: fed whole, and fed one byte at a
time. Both runs must give the same events or the same error. Hypothesis checks random splits of
the stream, and that arbitrary bytes raise nothing but :class:`ParseError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Optional

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.errors import ParseError
from clearwater.sip._framing import (
    MAX_BODY_SIZE,
    MAX_HEADER_SIZE,
    FramedMessage,
    FramerEvent,
    KeepAlivePing,
    KeepAlivePong,
    StreamFramer,
)

PING = KeepAlivePing()
PONG = KeepAlivePong()


def message(
    body: bytes = b"",
    *,
    start_line: bytes = b"INVITE sip:bob@example.com SIP/2.0",
    length_header: Optional[bytes] = None,
    extra: Sequence[bytes] = (),
) -> bytes:
    """A request with a Via, a Call-ID, ``extra`` header lines and a Content-Length line.

    ``length_header`` replaces the default ``Content-Length: <len(body)>`` line, or is left out
    if it is ``b""``.
    """
    if length_header is None:
        length_header = b"Content-Length: %d" % len(body)
    lines = [
        start_line,
        b"Via: SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK74bf9",
        b"Call-ID: 3848276298220188511@client.example.com",
        *extra,
    ]
    if length_header:
        lines.append(length_header)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


RESPONSE = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
SDP = b"v=0\r\no=bob 2890844527 2890844527 IN IP4 host.example.com\r\ns=-\r\n"


@attrs.frozen
class Failure:
    reason: str
    status: int = 400


Outcome = tuple[list[FramerEvent], Optional[Failure]]


def run(framer: StreamFramer, chunks: Iterable[bytes]) -> Outcome:
    """Feed ``chunks`` in order. Return the events, and the error that stopped the feeding."""
    events: list[FramerEvent] = []
    for chunk in chunks:
        try:
            events += framer.feed(chunk)
        except ParseError as e:
            return events, Failure(e.reason, e.status)
    return events, None


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:])]


# -- Scenarios, each run whole and byte by byte ---------------------------------------------


@attrs.frozen
class Scenario:
    id: str
    stream: bytes
    events: list[FramerEvent]  # when it fails: the events framed before, fed byte by byte
    error: Optional[Failure]
    initiator: bool
    max_header_size: int
    max_body_size: int


def ok(
    id: str,
    stream: bytes,
    *events: FramerEvent,
    initiator: bool = False,
    max_header_size: int = MAX_HEADER_SIZE,
    max_body_size: int = MAX_BODY_SIZE,
) -> Scenario:
    """A scenario that frames ``events``."""
    return Scenario(id, stream, list(events), None, initiator, max_header_size, max_body_size)


def bad(
    id: str,
    stream: bytes,
    reason: str,
    status: int = 400,
    *,
    before: Sequence[FramerEvent] = (),
    initiator: bool = False,
    max_header_size: int = MAX_HEADER_SIZE,
    max_body_size: int = MAX_BODY_SIZE,
) -> Scenario:
    """A scenario that fails; fed byte by byte, it first frames ``before``."""
    error = Failure(reason, status)
    return Scenario(id, stream, list(before), error, initiator, max_header_size, max_body_size)


def framed(data: bytes) -> FramedMessage:
    return FramedMessage(data)


INVITE = message(SDP)
BINARY_BODY = bytes(range(256)) + b"\r\n\r\n\xff\xfe\x00\r\n\r\n"
FOLDED = message(b"abc", length_header=b"Content-Length:\r\n   \r\n\t3  ")

SCENARIOS = [
    # Messages.
    ok("one message", INVITE, framed(INVITE)),
    ok("response", RESPONSE, framed(RESPONSE)),
    ok("no body", message(), framed(message())),
    ok("crlfcrlf in body", message(b"a\r\n\r\nb\r\n\r\n"), framed(message(b"a\r\n\r\nb\r\n\r\n"))),
    ok("binary body", message(BINARY_BODY), framed(message(BINARY_BODY))),
    ok(
        "compact l",
        message(b"xyz", length_header=b"l: 3"),
        framed(message(b"xyz", length_header=b"l: 3")),
    ),
    ok(
        "compact L no space",
        message(b"xyz", length_header=b"L:3"),
        framed(message(b"xyz", length_header=b"L:3")),
    ),
    ok(
        "space before colon",
        message(b"xyz", length_header=b"Content-Length :  3"),
        framed(message(b"xyz", length_header=b"Content-Length :  3")),
    ),
    ok(
        "tab before colon, compact",
        message(b"xyz", length_header=b"l\t: 3\t"),
        framed(message(b"xyz", length_header=b"l\t: 3\t")),
    ),
    ok(
        "case-insensitive name",
        message(b"xyz", length_header=b"cOnTeNt-LeNgTh: 3"),
        framed(message(b"xyz", length_header=b"cOnTeNt-LeNgTh: 3")),
    ),
    ok(
        "leading zeros",
        message(b"xyz", length_header=b"Content-Length: 0003"),
        framed(message(b"xyz", length_header=b"Content-Length: 0003")),
    ),
    ok("folded value", FOLDED, framed(FOLDED)),
    ok(
        "folded other header",
        message(b"xy", extra=[b"Subject: hello", b" Content-Length: 99"]),
        framed(message(b"xy", extra=[b"Subject: hello", b" Content-Length: 99"])),
    ),
    ok(
        "lookalike headers",
        message(b"xy", extra=[b"X-Content-Length: 99", b"Lines: 99", b"Content-Length-X: 9"]),
        framed(
            message(b"xy", extra=[b"X-Content-Length: 99", b"Lines: 99", b"Content-Length-X: 9"])
        ),
    ),
    ok(
        "pipelined",
        INVITE + RESPONSE + message(BINARY_BODY) + RESPONSE,
        framed(INVITE),
        framed(RESPONSE),
        framed(message(BINARY_BODY)),
        framed(RESPONSE),
    ),
    # Keep-alives on the accepting side.
    ok("ping", b"\r\n\r\n", PING),
    ok("two pings", b"\r\n\r\n\r\n\r\n", PING, PING),
    ok("lone crlf held", b"\r\n"),
    ok("ping then lone crlf held", b"\r\n\r\n\r\n", PING),
    ok("crlf before message ignored", b"\r\n" + INVITE, framed(INVITE)),
    ok(
        "ping, crlf, message",
        b"\r\n\r\n\r\n" + INVITE + b"\r\n\r\n" + RESPONSE + b"\r\n",
        PING,
        framed(INVITE),
        PING,
        framed(RESPONSE),
    ),
    ok(
        "pings between messages",
        INVITE + b"\r\n\r\n" + INVITE,
        framed(INVITE),
        PING,
        framed(INVITE),
    ),
    # Keep-alives on the initiating side.
    ok("pong", b"\r\n", PONG, initiator=True),
    ok("two pongs", b"\r\n\r\n", PONG, PONG, initiator=True),
    ok("lone cr held", b"\r", initiator=True),
    ok(
        "pongs and messages",
        b"\r\n" + RESPONSE + b"\r\n" + INVITE + b"\r\n\r\n",
        PONG,
        framed(RESPONSE),
        PONG,
        framed(INVITE),
        PONG,
        PONG,
        initiator=True,
    ),
    # Limits, at the edge.
    ok(
        "header block at the cap",
        RESPONSE,
        framed(RESPONSE),
        max_header_size=len(RESPONSE),
    ),
    ok("body at the cap", INVITE, framed(INVITE), max_body_size=len(SDP)),
    # Errors.
    bad("missing", message(length_header=b""), "Missing Content-Length"),
    bad(
        "content-length only in the body",
        message(b"Content-Length: 0\r\n\r\n", length_header=b""),
        "Missing Content-Length",
    ),
    bad(
        "not a header",
        message(extra=[b"Content-Length 0"], length_header=b""),
        "Missing Content-Length",
    ),
    bad(
        "in the start line",
        message(start_line=b"Content-Length: 0", length_header=b""),
        "Missing Content-Length",
    ),
    bad(
        "folded onto the start line",
        b"INVITE sip:a SIP/2.0\r\n l: 0\r\n\r\n",
        "Missing Content-Length",
    ),
    bad("multiple", message(extra=[b"Content-Length: 0"]), "Multiple Content-Length"),
    bad("multiple mixed forms", message(extra=[b"l: 0"]), "Multiple Content-Length"),
    bad("multiple different values", message(extra=[b"L : 5"]), "Multiple Content-Length"),
    bad("multiple, one bad", message(extra=[b"l: x"]), "Multiple Content-Length"),
    bad("empty", message(length_header=b"Content-Length:"), "Bad Content-Length"),
    bad("blank", message(length_header=b"Content-Length:  \t"), "Bad Content-Length"),
    bad("negative", message(length_header=b"Content-Length: -1"), "Bad Content-Length"),
    bad("plus sign", message(length_header=b"Content-Length: +1"), "Bad Content-Length"),
    bad("hex", message(length_header=b"Content-Length: 0x10"), "Bad Content-Length"),
    bad("fraction", message(length_header=b"Content-Length: 1.0"), "Bad Content-Length"),
    bad("underscore", message(length_header=b"Content-Length: 1_0"), "Bad Content-Length"),
    bad("two numbers", message(length_header=b"Content-Length: 1 0"), "Bad Content-Length"),
    bad("list", message(length_header=b"Content-Length: 0, 0"), "Bad Content-Length"),
    bad("folded between digits", message(length_header=b"l: 1\r\n 0"), "Bad Content-Length"),
    bad(
        "non-ASCII digit",
        message(length_header="Content-Length: \u0661".encode()),
        "Bad Content-Length",
    ),
    bad("absurd", message(length_header=b"Content-Length: " + b"9" * 21), "Bad Content-Length"),
    bad("huge", message(length_header=b"Content-Length: " + b"9" * 5000), "Bad Content-Length"),
    bad(
        "body over the cap",
        INVITE,
        "Message body too large",
        413,
        max_body_size=len(SDP) - 1,
    ),
    bad(
        "body over the default cap",
        message(length_header=b"l: %d" % (MAX_BODY_SIZE + 1)),
        "Message body too large",
        413,
    ),
    bad(
        "20-digit length",
        message(length_header=b"l: " + b"9" * 20),
        "Message body too large",
        413,
    ),
    bad(
        "header block over the cap",
        RESPONSE,
        "Message headers too large",
        513,
        max_header_size=len(RESPONSE) - 1,
    ),
    bad(
        "header block never ends",
        b"INVITE sip:a SIP/2.0\r\n" + b"X: y\r\n" * 100,
        "Message headers too large",
        513,
        max_header_size=300,
    ),
    bad("lf line ends", b"INVITE sip:a SIP/2.0\nContent-Length: 0\n\n", "Bad line ending"),
    bad("one lf", b"INVITE sip:a SIP/2.0\r\nl: 0\n\r\n\r\n", "Bad line ending"),
    bad("bare cr", b"INVITE sip:a SIP/2.0\r\nl: 0\r\rX: y\r\n\r\n", "Bad line ending"),
    bad("cr starts a message", b"\rINVITE sip:a SIP/2.0\r\nl: 0\r\n\r\n", "Bad line ending"),
    bad("crlf then lf", b"\r\n\n", "Bad line ending"),
    bad("crlf cr then x", b"\r\n\rx", "Bad line ending"),
    bad("pong side, cr then x", b"\r\n\rx", "Bad line ending", before=[PONG], initiator=True),
    # The error stops framing even after good messages.
    bad(
        "error after a message",
        INVITE + b"\r\n\r\n" + message(length_header=b""),
        "Missing Content-Length",
        before=[framed(INVITE), PING],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
@pytest.mark.parametrize("feeding", ["whole", "bytewise"])
def test_scenario(scenario: Scenario, feeding: str) -> None:
    framer = StreamFramer(
        initiator=scenario.initiator,
        max_header_size=scenario.max_header_size,
        max_body_size=scenario.max_body_size,
    )
    chunks = [scenario.stream] if feeding == "whole" else bytewise(scenario.stream)
    events, error = run(framer, chunks)
    assert error == scenario.error
    if error is None or feeding == "bytewise":
        assert events == scenario.events
    else:
        assert events == []  # lost with the chunk that failed


def test_feed_returns_nothing_for_empty_input() -> None:
    framer = StreamFramer()
    assert framer.feed(b"") == []
    assert framer.buffered == 0


def test_message_split_at_body() -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE[:-5]) == []
    assert framer.buffered == len(INVITE) - 5
    assert framer.feed(INVITE[-5:] + RESPONSE[:3]) == [FramedMessage(INVITE)]
    assert framer.buffered == 3


def test_lone_crlf_is_held_until_the_next_byte() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.buffered == 2
    assert framer.feed(b"\r") == []
    assert framer.buffered == 3
    assert framer.feed(b"\n") == [PING]
    assert framer.buffered == 0
    assert framer.feed(b"\r\n") == []
    assert framer.feed(INVITE) == [FramedMessage(INVITE)]
    assert framer.buffered == 0


def test_pong_is_reported_at_once() -> None:
    framer = StreamFramer(initiator=True)
    assert framer.feed(b"\r\n") == [PONG]
    assert framer.buffered == 0
    assert framer.feed(b"\r") == []
    assert framer.buffered == 1
    assert framer.feed(b"\n") == [PONG]


@pytest.mark.parametrize(
    ("stream", "reason", "status"),
    [
        (message(length_header=b""), "Missing Content-Length", 400),
        (message(extra=[b"l: 0"]), "Multiple Content-Length", 400),
        (message(length_header=b"l: x"), "Bad Content-Length", 400),
        (message(length_header=b"l: %d" % (MAX_BODY_SIZE + 1)), "Message body too large", 413),
        (b"X" * (MAX_HEADER_SIZE + 1), "Message headers too large", 513),
        (b"INVITE\n\n", "Bad line ending", 400),
    ],
)
def test_error_repeats(stream: bytes, reason: str, status: int) -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError) as first:
        framer.feed(stream)
    assert (first.value.reason, first.value.status) == (reason, status)
    assert framer.buffered == 0
    for later in (b"", INVITE, b"\r\n\r\n"):
        with pytest.raises(ParseError) as again:
            framer.feed(later)
        assert again.value is first.value
        assert (again.value.reason, again.value.status) == (reason, status)
        assert framer.buffered == 0


def test_header_cap_raises_as_soon_as_it_is_passed() -> None:
    framer = StreamFramer(max_header_size=100)
    assert framer.feed(b"INVITE sip:a SIP/2.0\r\n") == []
    assert framer.feed(b"X" * (100 - framer.buffered)) == []
    assert framer.buffered == 100
    with pytest.raises(ParseError) as caught:
        framer.feed(b"X")
    assert (caught.value.reason, caught.value.status) == ("Message headers too large", 513)


def test_header_cap_default_counts_the_blank_line() -> None:
    start = b"INVITE sip:a SIP/2.0\r\nl: 0\r\nX: "
    fits = start + b"y" * (MAX_HEADER_SIZE - len(start) - 4) + b"\r\n\r\n"
    assert len(fits) == MAX_HEADER_SIZE
    assert StreamFramer().feed(fits) == [FramedMessage(fits)]
    too_big = fits[:-4] + b"y\r\n\r\n"
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(too_big)
    assert caught.value.status == 513


def test_body_cap_default() -> None:
    body = b"\x00" * MAX_BODY_SIZE
    assert StreamFramer().feed(message(body)) == [FramedMessage(message(body))]


def test_header_block_fed_bytewise_is_scanned_in_linear_time() -> None:
    # A header block just under the cap, fed one byte at a time. Each feed searches only the new
    # byte plus the 3 before it for CRLFCRLF, and checks only the new bytes' line ends, so the
    # bytes examined stay within a small multiple of the block size. Rescanning from the start of
    # the message on each feed would examine about n**2 / 2 bytes instead.
    lines = [b"INVITE sip:bob@example.com SIP/2.0", b"Content-Length: 2"]
    lines += [b"X-Filler-%05d: %s" % (i, b"v" * 40) for i in range(540)]
    stream = b"\r\n".join(lines) + b"\r\n\r\nok"
    assert 30_000 < len(stream) < MAX_HEADER_SIZE
    framer = StreamFramer()
    events = []
    for chunk in bytewise(stream):
        events += framer.feed(chunk)
    assert events == [FramedMessage(stream)]
    assert framer._scanned <= 6 * len(stream)


def test_many_messages_bytewise_compacts_the_buffer() -> None:
    framer = StreamFramer()
    stream = (INVITE + b"\r\n\r\n") * 50
    events = []
    for chunk in bytewise(stream):
        events += framer.feed(chunk)
        assert len(framer._buf) <= 2 * len(INVITE) + 8
    assert events == [FramedMessage(INVITE), PING] * 50
    assert framer.buffered == 0


def test_constructor_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        StreamFramer(max_header_size=0)
    with pytest.raises(ValueError):
        StreamFramer(max_body_size=-1)


def test_events_compare_by_value() -> None:
    assert FramedMessage(b"x") == FramedMessage(b"x")
    assert FramedMessage(b"x") != FramedMessage(b"y")
    assert KeepAlivePing() == KeepAlivePing()
    assert KeepAlivePong() == KeepAlivePong()
    pings: list[FramerEvent] = [PING]
    assert pings != [PONG]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        FramedMessage(b"x").data = b"y"  # type: ignore[misc]  # checking that it is frozen


# -- Properties ------------------------------------------------------------------------------

bodies = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"x", b"\x00\xff"])).map(
        b"".join
    ),
)
length_headers = st.sampled_from(
    [
        b"Content-Length: %d",
        b"content-length:%d",
        b"l: %d",
        b"L :%d",
        b"Content-Length \t: \t%d \t",
        b"Content-Length:\r\n %d",
        b"l:\r\n\t \r\n %d\r\n ",
    ]
)
start_lines = st.sampled_from(
    [b"INVITE sip:bob@example.com SIP/2.0", b"SIP/2.0 180 Ringing", b"MESSAGE sip:a@b SIP/2.0"]
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    body = draw(bodies)
    extra = draw(st.lists(st.sampled_from([b"Max-Forwards: 70", b"Subject: x", b" folded"])))
    return message(
        body,
        start_line=draw(start_lines),
        length_header=draw(length_headers) % len(body),
        extra=extra,
    )


@st.composite
def accepting_streams(draw: st.DrawFn) -> tuple[bytes, list[FramerEvent]]:
    """A stream for the accepting side, and its events."""
    stream = b""
    events: list[FramerEvent] = []
    for kind in draw(st.lists(st.sampled_from(["message", "crlf+message", "ping"]), max_size=6)):
        if kind == "ping":
            stream += b"\r\n\r\n"
            events.append(PING)
        else:
            data = draw(messages())
            stream += (b"\r\n" if kind == "crlf+message" else b"") + data
            events.append(FramedMessage(data))
    return stream, events


@st.composite
def initiating_streams(draw: st.DrawFn) -> tuple[bytes, list[FramerEvent]]:
    """A stream for the initiating side, and its events."""
    stream = b""
    events: list[FramerEvent] = []
    for kind in draw(st.lists(st.sampled_from(["message", "pong"]), max_size=6)):
        if kind == "pong":
            stream += b"\r\n"
            events.append(PONG)
        else:
            data = draw(messages())
            stream += data
            events.append(FramedMessage(data))
    return stream, events


def split_points(stream: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(stream)), max_size=20)


@given(st.data(), st.booleans())
def test_random_splits_give_the_same_events(data: st.DataObject, initiator: bool) -> None:
    stream, expected = data.draw(initiating_streams() if initiator else accepting_streams())
    points = data.draw(split_points(stream))
    assert run(StreamFramer(initiator=initiator), [stream]) == (expected, None)
    framer = StreamFramer(initiator=initiator)
    assert run(framer, split(stream, points)) == (expected, None)
    assert framer.buffered == 0


# Pieces that make arbitrary streams hit the interesting paths more often than random bytes.
tokens = st.one_of(
    st.binary(max_size=8),
    st.sampled_from(
        [
            b"\r\n",
            b"\r\n\r\n",
            b"\r",
            b"\n",
            b" ",
            b"\t",
            b":",
            b"l",
            b"l:",
            b"Content-Length",
            b"INVITE sip:a SIP/2.0\r\n",
            b"Content-Length: 2\r\n",
            b"l:1\r\n",
            b"l: x\r\n",
            b"INVITE sip:a SIP/2.0\r\nl: 3\r\n\r\nabc",
            b"SIP/2.0 200 OK\r\nl: 99\r\n\r\n",
            b"0",
            b"3",
            b"-",
            b"99999",
        ]
    ),
)
limits = st.tuples(st.integers(1, 200), st.integers(0, 40))


@given(
    st.lists(st.binary()),
    st.lists(st.lists(tokens).map(b"".join)),
    st.booleans(),
    st.one_of(st.none(), limits),
)
def test_arbitrary_bytes_raise_only_parse_error(
    binary_chunks: list[bytes],
    token_chunks: list[bytes],
    initiator: bool,
    caps: Optional[tuple[int, int]],
) -> None:
    for chunks in (binary_chunks, token_chunks):
        if caps is None:
            framer = StreamFramer(initiator=initiator)
        else:
            framer = StreamFramer(
                initiator=initiator, max_header_size=caps[0], max_body_size=caps[1]
            )
        for chunk in chunks:
            try:
                events = framer.feed(chunk)
            except ParseError:
                break
            assert all(isinstance(e, (FramedMessage, KeepAlivePing, KeepAlivePong)) for e in events)
            assert framer.buffered >= 0


@given(st.lists(tokens).map(b"".join), st.data(), st.booleans(), limits)
def test_outcome_does_not_depend_on_splitting(
    stream: bytes, data: st.DataObject, initiator: bool, caps: tuple[int, int]
) -> None:
    def new() -> StreamFramer:
        return StreamFramer(initiator=initiator, max_header_size=caps[0], max_body_size=caps[1])

    whole_events, whole_error = run(new(), [stream])
    split_events, split_error = run(new(), split(stream, data.draw(split_points(stream))))
    byte_events, byte_error = run(new(), bytewise(stream))
    assert whole_error == split_error == byte_error
    if whole_error is None:
        assert whole_events == split_events == byte_events
    else:
        # Finer feeding delivers the events before the failing chunk: a prefix of the bytewise ones.
        assert split_events == byte_events[: len(split_events)]
        assert whole_events == []
