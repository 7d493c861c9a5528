"""Properties of the STUN codec (STYLE.md §5): model-level round trip, integrity on our own
encodings, and nothing but ParseError from junk, mutated RFC 5769 vectors and the stream framer."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from clearwater.errors import ParseError
from clearwater.stun import (
    ATTRIBUTES_BY_NAME,
    ATTRIBUTES_BY_TYPE,
    MAGIC_COOKIE,
    AddressErrorCode,
    AlgorithmEntry,
    Attr,
    ChannelData,
    Class,
    ErrorCode,
    Icmp,
    Message,
    Method,
    StreamFramer,
    parse_channel_data,
    parse_datagram,
    parse_message,
    saslprep,
    unknown_comprehension_required,
)
from tests.vectors import rfc5769

COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
TRAILER_NAMES = {"MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256", "FINGERPRINT"}

ipv4 = st.binary(min_size=4, max_size=4).map(lambda b: socket.inet_ntop(socket.AF_INET, b))
ipv6 = st.binary(min_size=16, max_size=16).map(lambda b: socket.inet_ntop(socket.AF_INET6, b))
addresses = st.tuples(st.one_of(ipv4, ipv6), st.integers(0, 0xFFFF))
texts = st.text(max_size=127)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
codes = st.integers(300, 699)
entries = st.builds(AlgorithmEntry, u16, st.binary(max_size=12))

#: A value strategy per attribute row; a test checks the table has no row without one.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "MAPPED-ADDRESS": addresses,
    "XOR-MAPPED-ADDRESS": addresses,
    "USERNAME": st.text(max_size=190),
    "USERHASH": st.binary(min_size=32, max_size=32),
    "MESSAGE-INTEGRITY": st.binary(min_size=20, max_size=20),
    "MESSAGE-INTEGRITY-SHA256": st.sampled_from([16, 20, 24, 28, 32]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
    "FINGERPRINT": u32,
    "ERROR-CODE": st.builds(ErrorCode, codes, texts),
    "REALM": texts,
    "NONCE": texts,
    "PASSWORD-ALGORITHMS": st.lists(entries, max_size=3).map(tuple),
    "PASSWORD-ALGORITHM": entries,
    "UNKNOWN-ATTRIBUTES": st.lists(u16, max_size=5).map(tuple),
    "SOFTWARE": texts,
    "ALTERNATE-SERVER": addresses,
    "ALTERNATE-DOMAIN": st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=255),
    "CHANNEL-NUMBER": u16,
    "LIFETIME": u32,
    "XOR-PEER-ADDRESS": addresses,
    "DATA": st.binary(max_size=200),
    "XOR-RELAYED-ADDRESS": addresses,
    "REQUESTED-ADDRESS-FAMILY": u8,
    "EVEN-PORT": st.booleans(),
    "REQUESTED-TRANSPORT": u8,
    "DONT-FRAGMENT": st.just(True),
    "RESERVATION-TOKEN": st.binary(min_size=8, max_size=8),
    "ADDITIONAL-ADDRESS-FAMILY": u8,
    "ADDRESS-ERROR-CODE": st.builds(AddressErrorCode, u8, codes, texts),
    "ICMP": st.builds(Icmp, u8, u8, u32),
    "CONNECTION-ID": u32,
    "PRIORITY": u32,
    "USE-CANDIDATE": st.just(True),
    "ICE-CONTROLLED": u64,
    "ICE-CONTROLLING": u64,
    "RESPONSE-ORIGIN": addresses,
    "OTHER-ADDRESS": addresses,
}

unknown_codes = u16.filter(lambda c: c not in ATTRIBUTES_BY_TYPE)
body_attributes = st.one_of(
    st.sampled_from(sorted(set(VALUES) - TRAILER_NAMES)).flatmap(
        lambda name: st.tuples(st.just(ATTRIBUTES_BY_NAME[name].code), VALUES[name])
    ),
    st.tuples(unknown_codes, st.binary(max_size=40)),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    if draw(st.integers(0, 4)) == 0:  # one in five: RFC 3489
        method: int = Method.BINDING
        tid = draw(st.binary(min_size=16, max_size=16).filter(lambda t: t[:4] != COOKIE))
    else:
        method = draw(st.one_of(st.sampled_from(Method), st.integers(0, 0xFFF)))
        tid = draw(st.binary(min_size=12, max_size=12))
    attributes = draw(st.lists(body_attributes, max_size=8))
    # MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may only end a message, in
    # this order (anything else after them is ignored on receipt).
    for name in ("MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256", "FINGERPRINT"):
        if draw(st.booleans()):
            attributes.append((ATTRIBUTES_BY_NAME[name].code, draw(VALUES[name])))
    return Message(method, draw(st.sampled_from(Class)), tid, attributes)


def test_every_attribute_has_a_strategy() -> None:
    assert set(VALUES) == set(ATTRIBUTES_BY_NAME)


@given(messages())
def test_model_round_trip(message: Message) -> None:
    wire = bytes(message)
    parsed = parse_message(wire)
    assert parsed == message
    assert parsed.raw == wire
    assert bytes(parsed) == wire  # our encoding is canonical: zero padding
    assert parsed.legacy == message.legacy


@given(messages(), st.binary(min_size=1, max_size=32), st.booleans(), st.booleans())
def test_own_integrity_verifies(message: Message, key: bytes, sha1: bool, sha256: bool) -> None:
    assume(sha1 or sha256)
    parsed = parse_message(message.encode(key, sha1=sha1, sha256=sha256, fingerprint=True))
    assert parsed.check_integrity(key) == sha1
    assert parsed.check_integrity_sha256(key) == sha256
    assert parsed.check_fingerprint()
    assert not parsed.check_integrity(key + b"x")
    assert not parsed.check_integrity_sha256(key + b"x")
    kept = [a for a in message.attributes if ATTRIBUTES_BY_TYPE.get(a[0]) not in _TRAILER_ROWS]
    assert list(parsed.attributes[: len(kept)]) == kept


_TRAILER_ROWS = (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)


def _exercise(message: Message) -> None:
    """Whatever parses can be checked, encoded and parsed back to the same model."""
    message.check_integrity(b"key")
    message.check_integrity_sha256(b"key")
    message.check_fingerprint()
    unknown_comprehension_required(message)
    assert parse_message(bytes(message)) == message


tlvs = st.tuples(
    st.one_of(st.sampled_from(sorted(ATTRIBUTES_BY_TYPE)), u16),
    st.binary(max_size=40),
    st.binary(min_size=3, max_size=3),
)


@st.composite
def junk_messages(draw: st.DrawFn) -> bytes:
    """A header that mostly passes, then random TLVs (random values, random padding)."""
    body = b"".join(
        code.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value + pad[: -len(value) % 4]
        for code, value, pad in draw(st.lists(tlvs, max_size=6))
    )
    message_type = draw(st.integers(0, 0x3FFF))
    length = len(body)
    cookie = COOKIE
    if draw(st.integers(0, 3)) == 0:  # one in four: a header that may be wrong too
        message_type = draw(u16)
        length = draw(st.one_of(st.just(length), u16))
        cookie = draw(st.one_of(st.just(cookie), st.binary(min_size=4, max_size=4)))
    tid = draw(st.binary(min_size=12, max_size=12))
    return message_type.to_bytes(2, "big") + length.to_bytes(2, "big") + cookie + tid + body


@given(st.one_of(st.binary(max_size=120), junk_messages()))
def test_junk_raises_only_parse_error(data: bytes) -> None:
    try:
        message = parse_message(data)
    except ParseError:
        return
    _exercise(message)


@given(st.sampled_from(sorted(ATTRIBUTES_BY_TYPE)), st.binary(max_size=48), st.booleans())
def test_attribute_junk_raises_only_parse_error(code: int, value: bytes, legacy: bool) -> None:
    """Each row's decoder, fed any value, in an otherwise valid message."""
    n = len(value)
    body = code.to_bytes(2, "big") + n.to_bytes(2, "big") + value + bytes(-n % 4)
    tid = bytes(range(16)) if legacy else COOKIE + bytes(12)
    try:
        message = parse_message(b"\x00\x01" + len(body).to_bytes(2, "big") + tid + body)
    except ParseError as e:
        assert e.reason.startswith(ATTRIBUTES_BY_TYPE[code].name + ": ")
        return
    _exercise(message)


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 200), u8),
        st.tuples(st.just("insert"), st.integers(0, 200), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), st.integers(0, 200), st.integers(1, 8)),
        st.tuples(st.just("truncate"), st.integers(0, 200), st.just(0)),
    ),
    min_size=1,
    max_size=4,
)


@given(st.sampled_from(sorted(rfc5769.VECTORS)), mutations, st.booleans())
def test_mutated_rfc5769_raises_only_parse_error(
    section: str, changes: list[tuple[str, int, Any]], fix_length: bool
) -> None:
    data = bytearray(rfc5769.VECTORS[section])
    for op, index, arg in changes:
        index = min(index, len(data))
        if op == "set" and index < len(data):
            data[index] = arg
        elif op == "insert":
            data[index:index] = arg
        elif op == "delete":
            del data[index : index + arg]
        elif op == "truncate":
            del data[index:]
    if fix_length and len(data) >= 4:
        # Keep the header length right so the attribute parser sees the mutation.
        data[2:4] = ((len(data) - 20) & 0xFFFF).to_bytes(2, "big")
    wire = bytes(data)
    for parse in (parse_message, parse_datagram):
        try:
            message = parse(wire)
        except ParseError:
            continue
        if isinstance(message, Message):
            _exercise(message)
    framer = StreamFramer()
    try:
        for frame in framer.feed(wire):
            assert wire.startswith(frame)
    except ParseError:
        pass


@given(st.integers(0x4000, 0x7FFF), st.binary(max_size=100), st.booleans())
def test_channel_data_round_trip(channel: int, data: bytes, pad: bool) -> None:
    c = ChannelData(channel, data)
    wire = c.encode(pad=pad)
    assert len(wire) % 4 == 0 or not pad
    assert parse_channel_data(wire) == c
    assert parse_datagram(wire) == c


@given(st.binary(max_size=80))
def test_datagram_junk_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_datagram(data)


frames = st.one_of(
    messages().map(bytes),
    st.builds(ChannelData, st.integers(0x4000, 0x7FFF), st.binary(max_size=50)).map(
        lambda c: c.encode(pad=True)
    ),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@given(st.lists(frames, max_size=5), st.lists(st.integers(0, 2000), max_size=12))
def test_framer_random_splits(stream_frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(stream_frames)
    framer = StreamFramer()
    out: list[bytes] = []
    for chunk in _split(stream, cuts):
        out += framer.feed(chunk)
    assert out == stream_frames
    assert framer.buffered == 0
    for frame in out:
        parse_datagram(frame)


@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(20, 200))
def test_framer_junk_raises_only_parse_error(chunks: list[bytes], limit: int) -> None:
    framer = StreamFramer(max_frame_size=limit)
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out += framer.feed(chunk)
            assert framer.buffered < limit + 40
    except ParseError:
        return
    stream = b"".join(chunks)
    assert stream.startswith(b"".join(out))
    assert framer.buffered == len(stream) - sum(map(len, out))


@given(st.text(max_size=20))
def test_saslprep_raises_only_value_error(text: str) -> None:
    try:
        prepared = saslprep(text)
    except ValueError:
        return
    assert isinstance(prepared, str)
