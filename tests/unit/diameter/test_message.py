"""Tests for :mod:`clearwater.diameter.message`: the header and AVP codec of RFC 6733 §3 and
§4.1, the decode faults of §7 (result code, Failed-AVP, header), answers (§6.2) and the stream
framer.

The CER below is worked out by hand from §3 and §4.1, field by field. Hypothesis checks the
model-level round trip and that junk and mutated messages raise nothing but
:class:`DiameterDecodeError` / :class:`FramingError`.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearwater.diameter.message import (
    AVP_FLAG_MANDATORY,
    AVP_FLAG_PROTECTED,
    AVP_FLAG_VENDOR,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMITTED,
    Avp,
    DiameterDecodeError,
    Framer,
    FramingError,
    Message,
    encode_avps,
    make_answer,
    parse_avps,
    parse_header,
    parse_message,
)

VENDOR_3GPP = 10415
APP_CX = 16777216

# A CER (RFC 6733 §5.3.1), every field worked out by hand from §3 (header) and §4.1 (AVP
# header: code, flags V M P r r r r r, 24-bit length without padding, data, zero padding).
CER_HEX = (
    # Header: version 1, message length 144 (0x90) = 20 + 124 bytes of AVPs.
    "01 000090"
    # Command flags R (0x80; CER is not proxiable), command code 257 (0x000101).
    "80 000101"
    # Application-ID 0 (the common messages).
    "00000000"
    # Hop-by-Hop Identifier, End-to-End Identifier.
    "12345678"
    "9abcdef0"
    # Origin-Host (264 = 0x108), flags M, length 8 + 16 = 24 (0x18), "peer.example.com": no pad.
    "00000108 40 000018"
    "70656572 2e657861 6d706c65 2e636f6d"
    # Origin-Realm (296 = 0x128), flags M, length 8 + 11 = 19 (0x13), "example.com", 1 pad byte.
    "00000128 40 000013"
    "6578616d 706c652e 636f6d 00"
    # Host-IP-Address (257 = 0x101), flags M, length 8 + 6 = 14 (0x0e): AddressType 1 (IPv4),
    # 127.0.0.1, 2 pad bytes.
    "00000101 40 00000e"
    "0001 7f000001 0000"
    # Vendor-Id (266 = 0x10a), flags M, length 12, 10415 = 0x28af.
    "0000010a 40 00000c"
    "000028af"
    # Product-Name (269 = 0x10d), no flags (M "MUST NOT", §4.5), length 8 + 10 = 18 (0x12),
    # "clearwater", 2 pad bytes.
    "0000010d 00 000012"
    "636c6561 72776174 6572 0000"
    # Vendor-Specific-Application-Id (260 = 0x104), flags M, length 8 + 12 + 12 = 32 (0x20):
    "00000104 40 000020"
    #   Vendor-Id (266), flags M, length 12, 10415.
    "0000010a 40 00000c 000028af"
    #   Auth-Application-Id (258 = 0x102), flags M, length 12, 16777216 = 0x01000000 (Cx).
    "00000102 40 00000c 01000000"
)
CER = bytes.fromhex(CER_HEX)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def cer() -> Message:
    """The CER of :data:`CER_HEX`, built from AVPs."""
    vendor_id = Avp.make(266, u32(VENDOR_3GPP))
    return Message(
        257,
        0,
        (
            Avp.make(264, b"peer.example.com"),
            Avp.make(296, b"example.com"),
            Avp.make(257, b"\x00\x01\x7f\x00\x00\x01"),
            vendor_id,
            Avp.make(269, b"clearwater", mandatory=False),
            Avp.grouped(260, [vendor_id, Avp.make(258, u32(APP_CX))]),
        ),
        flags=FLAG_REQUEST,
        hop_by_hop=0x12345678,
        end_to_end=0x9ABCDEF0,
    )


def header(
    length: int,
    flags: int = FLAG_REQUEST,
    code: int = 257,
    version: int = 1,
    app: int = 0,
    hbh: int = 1,
    e2e: int = 2,
) -> bytes:
    return struct.pack("!IIIII", (version << 24) | length, (flags << 24) | code, app, hbh, e2e)


def request(body: bytes, flags: int = FLAG_REQUEST) -> bytes:
    """A message with ``body`` as its AVP bytes, its length field right."""
    return header(20 + len(body), flags) + body


def avp_header(code: int, flags: int, length: int, vendor_id: Optional[int] = None) -> bytes:
    head = struct.pack("!II", code, (flags << 24) | length)
    return head if vendor_id is None else head + u32(vendor_id)


ORIGIN_HOST = bytes(Avp.make(264, b"peer.example.com"))


# -- the hand-checked CER --------------------------------------------------------------------------


def test_cer_encodes_to_the_hand_worked_bytes() -> None:
    assert len(CER) == 144
    assert bytes(cer()) == CER


def test_cer_parses_back() -> None:
    message = parse_message(CER)
    assert message == cer()
    assert message.is_request
    assert not message.is_proxiable
    assert not message.is_error
    assert message.find(296) == Avp(296, b"example.com", AVP_FLAG_MANDATORY)
    product = message.find(269)
    assert product is not None
    assert product.flags == 0
    assert not product.mandatory
    group = message.find(260)
    assert group is not None
    assert group.length == 32
    assert group.avps() == (
        Avp(266, u32(VENDOR_3GPP), AVP_FLAG_MANDATORY),
        Avp(258, u32(APP_CX), AVP_FLAG_MANDATORY),
    )
    assert message.find_all(266) == [Avp(266, u32(VENDOR_3GPP), AVP_FLAG_MANDATORY)]
    assert message.find(266, VENDOR_3GPP) is None


def test_parse_header() -> None:
    assert parse_header(CER) == parse_header(CER[:20])
    parsed = parse_header(CER)
    assert (parsed.version, parsed.length, parsed.flags, parsed.command_code) == (1, 144, 0x80, 257)
    assert (parsed.application_id, parsed.hop_by_hop, parsed.end_to_end) == (
        0,
        0x12345678,
        0x9ABCDEF0,
    )
    assert parsed.is_request


def test_vendor_avp_layout() -> None:
    # V flag: a Vendor-ID word follows the length, and the length counts it (§4.1.1).
    avp = Avp.make(1, b"abc", vendor_id=VENDOR_3GPP)
    assert avp.flags == AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY
    assert avp.key == (1, VENDOR_3GPP)
    assert avp.length == 15
    assert bytes(avp) == bytes.fromhex("00000001 c000000f 000028af 616263 00")
    assert Avp.make(1, b"", mandatory=False).flags == 0
    # Without the V flag the vendor id is not sent and not part of the key.
    assert Avp(1, b"", 0, 99).key == (1, 0)
    assert bytes(Avp(1, b"", 0, 99)) == bytes.fromhex("00000001 00000008")


def test_oversized_avp_and_command_code_are_refused() -> None:
    with pytest.raises(ValueError, match="AVP 1 of"):
        bytes(Avp(1, bytes((1 << 24) - 8)))
    with pytest.raises(ValueError, match="Command code"):
        bytes(Message(1 << 24, 0))
    with pytest.raises(ValueError, match="flags 256"):
        bytes(Message(1, 0, flags=0x100))
    # The largest AVP that fits still encodes.
    assert len(bytes(Avp(1, bytes((1 << 24) - 9)))) == 1 << 24


# -- RFC 6733 §7 decode faults ---------------------------------------------------------------------


def decode_error(data: bytes) -> DiameterDecodeError:
    with pytest.raises(DiameterDecodeError) as info:
        parse_message(data)
    return info.value


def test_short_of_a_header() -> None:
    error = decode_error(CER[:19])
    assert error.result_code == 5015
    assert error.header is None
    assert error.failed_avp is None


def test_bad_version() -> None:
    error = decode_error(b"\x02" + CER[1:])
    assert error.result_code == 5011
    assert error.failed_avp is None
    assert error.header is not None
    assert error.header.version == 2
    assert error.header.hop_by_hop == 0x12345678
    assert str(error) == "5011 Diameter version 2"


def test_length_not_a_multiple_of_four() -> None:
    data = request(bytes.fromhex("00000108 00000009 61") + b"\0")  # 30 bytes, length 30
    assert len(data) == 30
    error = decode_error(data)
    assert error.result_code == 5015
    assert error.failed_avp is None
    assert error.header is not None
    assert error.header.length == 30


@pytest.mark.parametrize("claimed", [140, 148, 20, 0])
def test_length_not_the_bytes_given(claimed: int) -> None:
    data = CER[:1] + claimed.to_bytes(3, "big") + CER[4:]
    error = decode_error(data)
    assert error.result_code == 5015
    assert error.failed_avp is None
    assert error.header is not None
    assert error.header.length == claimed


def test_cut_message_is_a_length_fault() -> None:
    error = decode_error(CER[:-4])
    assert error.result_code == 5015
    assert error.header is not None
    assert error.header.length == 144


def test_error_bit_on_a_request() -> None:
    error = decode_error(request(ORIGIN_HOST, FLAG_REQUEST | FLAG_ERROR))
    assert error.result_code == 3008
    assert error.failed_avp is None
    assert error.header is not None
    assert error.header.flags == FLAG_REQUEST | FLAG_ERROR
    # On an answer the E bit is fine.
    assert parse_message(request(ORIGIN_HOST, FLAG_ERROR)).is_error


@pytest.mark.parametrize("reserved", [0x01, 0x02, 0x04, 0x08])
def test_reserved_header_bits_are_ignored(reserved: int) -> None:
    # RFC 6733 §3: reserved command flag bits "MUST be set to zero and ignored by the receiver".
    message = parse_message(request(ORIGIN_HOST, FLAG_REQUEST | reserved))
    assert message.flags == FLAG_REQUEST | reserved
    assert message.is_request


@pytest.mark.parametrize("length", [0, 1, 4, 7])
def test_avp_length_below_its_header(length: int) -> None:
    body = ORIGIN_HOST + avp_header(296, AVP_FLAG_MANDATORY, length) + b"abcd"
    error = decode_error(request(body))
    assert error.result_code == 5014
    assert error.header is not None
    assert error.header.length == 20 + len(body)
    # Failed-AVP: the offending header with no payload (RFC 6733 §7.1.5, §7.5).
    assert error.failed_avp is not None
    assert bytes(error.failed_avp) == bytes.fromhex("00000128 40000008")


def test_avp_length_past_the_end() -> None:
    body = ORIGIN_HOST + avp_header(296, AVP_FLAG_MANDATORY, 100) + b"example.com\0"
    error = decode_error(request(body))
    assert error.result_code == 5014
    assert error.header is not None
    assert error.failed_avp is not None
    assert bytes(error.failed_avp) == bytes.fromhex("00000128 40000008")


def test_vendor_avp_past_the_end_keeps_its_vendor_id() -> None:
    body = avp_header(601, AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY, 64, VENDOR_3GPP) + b"data"
    error = decode_error(request(body))
    assert error.result_code == 5014
    assert error.failed_avp is not None
    assert error.failed_avp.key == (601, VENDOR_3GPP)
    assert bytes(error.failed_avp) == bytes.fromhex("00000259 c000000c 000028af")


@pytest.mark.parametrize("length", [8, 9, 11])
def test_vendor_avp_too_short_for_its_vendor_id(length: int) -> None:
    # The vendor id is read only as far as the AVP's own length goes, never from the next
    # AVP's bytes, and padded with zeros (RFC 6733 §7.1.5): "01 02 03 04" is the next AVP's code.
    body = avp_header(601, AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY, length) + bytes(
        Avp(0x01020304, b"")
    )
    error = decode_error(request(body))
    assert error.result_code == 5014
    assert error.header is not None
    assert error.failed_avp is not None
    vendor = b"\x01\x02\x03"[: length - 8].ljust(4, b"\0")
    assert error.failed_avp.vendor_id == int.from_bytes(vendor, "big")
    assert bytes(error.failed_avp) == bytes.fromhex("00000259 c000000c") + vendor


def test_avp_header_cut_short() -> None:
    # Four bytes left after the last AVP: the start of a header, padded with zeros.
    error = decode_error(request(ORIGIN_HOST + bytes.fromhex("00000128")))
    assert error.result_code == 5014
    assert error.header is not None
    assert error.failed_avp is not None
    assert bytes(error.failed_avp) == bytes.fromhex("00000128 00000008")


@pytest.mark.parametrize("reserved", [0x01, 0x02, 0x04, 0x08, 0x10])
def test_reserved_avp_flag_bits(reserved: int) -> None:
    bad = avp_header(296, AVP_FLAG_MANDATORY | reserved, 19) + b"example.com\0"
    error = decode_error(request(ORIGIN_HOST + bad))
    assert error.result_code == 3009
    assert error.header is not None
    assert error.header.command_code == 257
    # Failed-AVP: the whole AVP as received.
    assert error.failed_avp is not None
    assert error.failed_avp.flags == AVP_FLAG_MANDATORY | reserved
    assert bytes(error.failed_avp) == bad


def test_reserved_flag_bits_on_a_vendor_avp() -> None:
    bad = avp_header(601, AVP_FLAG_VENDOR | 0x01, 14, VENDOR_3GPP) + b"ab\0\0"
    error = decode_error(request(bad))
    assert error.result_code == 3009
    assert error.failed_avp == Avp(601, b"ab", AVP_FLAG_VENDOR | 0x01, VENDOR_3GPP)
    assert bytes(error.failed_avp) == bad


def test_bad_avp_inside_a_grouped_avp() -> None:
    inner = avp_header(266, AVP_FLAG_MANDATORY, 200) + u32(VENDOR_3GPP)
    group = avp_header(260, AVP_FLAG_MANDATORY, 8 + len(inner)) + inner
    message = parse_message(request(ORIGIN_HOST + group))  # the group is parsed lazily
    avp = message.find(260)
    assert avp is not None
    assert avp.data == inner
    with pytest.raises(DiameterDecodeError) as info:
        avp.avps()
    assert info.value.result_code == 5014
    assert info.value.header is None
    assert info.value.failed_avp is not None
    assert bytes(info.value.failed_avp) == bytes.fromhex("0000010a 40000008")


def test_reserved_bits_inside_a_grouped_avp() -> None:
    inner = avp_header(266, AVP_FLAG_MANDATORY | 0x02, 12) + u32(VENDOR_3GPP)
    avp = Avp(260, inner)
    with pytest.raises(DiameterDecodeError) as info:
        avp.avps()
    assert info.value.result_code == 3009
    assert info.value.failed_avp is not None
    assert bytes(info.value.failed_avp) == inner


# -- AVPs this node does not know ------------------------------------------------------------------

UNKNOWN_BODY = b"".join(
    [
        # Arbitrary code, V M P flags, vendor 0xffffffff, 5 data bytes and 3 pad bytes.
        bytes.fromhex("ffffffff e0000011 ffffffff 0102030405 000000"),
        # P only (deprecated, §13), no data.
        bytes.fromhex("00001234 20000008"),
        # No flags at all, 1 data byte.
        bytes.fromhex("00000000 00000009 ff 000000"),
        # V without M, vendor 0 (illegal, §4.1.1, but carried), 4 data bytes.
        bytes.fromhex("0000ffff 80000010 00000000 deadbeef"),
        # V M P on a grouped-looking AVP holding another vendor AVP.
        bytes.fromhex("00000401 e0000020 000028af 00000402 80000011 0000000a 7465787465 000000"),
    ]
)


def test_unknown_avps_survive_byte_for_byte() -> None:
    data = request(UNKNOWN_BODY)
    message = parse_message(data)
    assert bytes(message) == data
    assert [avp.key for avp in message.avps] == [
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x1234, 0),
        (0, 0),
        (0xFFFF, 0),
        (0x401, VENDOR_3GPP),
    ]
    assert [avp.flags for avp in message.avps] == [0xE0, 0x20, 0x00, 0x80, 0xE0]
    assert message.avps[0].data == bytes.fromhex("0102030405")
    assert parse_avps(UNKNOWN_BODY) == message.avps
    assert encode_avps(message.avps) == UNKNOWN_BODY
    assert message.avps[4].avps() == (Avp(0x402, b"texte", AVP_FLAG_VENDOR, 10),)


def test_padding_is_rewritten_as_zeros() -> None:
    # RFC 6733 §4.1: padding MUST be zero; what arrives is not checked, what leaves is zero.
    data = request(bytes.fromhex("00000128 40000013 6578616d 706c652e 636f6d ff"))
    assert bytes(parse_message(data)) == request(bytes(Avp.make(296, b"example.com")))


def test_last_avp_in_a_group_may_lack_its_padding() -> None:
    members = bytes(Avp.make(1, b"a")) + bytes(Avp.make(2, b"bc"))[:10]  # no trailing padding
    assert parse_avps(members) == (Avp.make(1, b"a"), Avp.make(2, b"bc"))


# -- answers (RFC 6733 §6.2) -----------------------------------------------------------------------

SESSION_ID = Avp.make(263, b"hs.example.net;1;2")
PROXY_INFO_1 = Avp.grouped(284, [Avp.make(280, b"agent1"), Avp.make(33, b"state1")])
PROXY_INFO_2 = Avp.grouped(284, [Avp.make(280, b"agent2"), Avp.make(33, b"state2")])


def uar(flags: int = FLAG_REQUEST | FLAG_PROXIABLE) -> Message:
    return Message(
        300,
        APP_CX,
        (
            Avp.make(264, b"hs.example.net"),
            PROXY_INFO_1,
            SESSION_ID,
            Avp.make(1, b"alice@example.com"),
            PROXY_INFO_2,
        ),
        flags=flags,
        hop_by_hop=0xAABBCCDD,
        end_to_end=0x11223344,
    )


def test_answer_carries_session_id_first_and_proxy_info() -> None:
    result = Avp.make(268, u32(2001))
    origin = Avp.make(264, b"hss.example.net")
    answer = make_answer(uar(), [origin, result])
    assert answer.avps == (SESSION_ID, origin, result, PROXY_INFO_1, PROXY_INFO_2)
    assert (answer.command_code, answer.application_id) == (300, APP_CX)
    assert (answer.hop_by_hop, answer.end_to_end) == (0xAABBCCDD, 0x11223344)
    assert answer.flags == FLAG_PROXIABLE
    assert not answer.is_request
    # It encodes and parses like any message.
    assert parse_message(bytes(answer)) == answer


def test_answer_flags() -> None:
    # P copied, R cleared, E as asked; T is never set on an answer (§3).
    request_flags = FLAG_REQUEST | FLAG_RETRANSMITTED
    assert make_answer(uar(request_flags), []).flags == 0
    assert make_answer(uar(request_flags), [], error=True).flags == FLAG_ERROR
    assert make_answer(uar(), [], error=True).flags == FLAG_PROXIABLE | FLAG_ERROR


def test_answer_does_not_repeat_a_session_id_already_first() -> None:
    own = Avp.make(263, b"other;1")
    assert make_answer(uar(), [own]).avps == (own, PROXY_INFO_1, PROXY_INFO_2)
    # A vendor AVP that happens to have code 263 is not a Session-Id.
    vendor = Avp.make(263, b"x", vendor_id=VENDOR_3GPP)
    assert make_answer(uar(), [vendor]).avps[:2] == (SESSION_ID, vendor)


def test_answer_with_given_session_id_and_without_any() -> None:
    given_sid = Avp.make(263, b"given;1")
    assert make_answer(uar(), [], session_id=given_sid).avps[0] == given_sid
    bare = Message(280, 0, (Avp.make(264, b"a"),), flags=FLAG_REQUEST, hop_by_hop=7)
    answer = make_answer(bare, [Avp.make(268, u32(2001))])
    assert answer.avps == (Avp.make(268, u32(2001)),)
    assert (answer.flags, answer.hop_by_hop) == (0, 7)


# -- Framer ----------------------------------------------------------------------------------------

SECOND = bytes(make_answer(cer(), [Avp.make(268, u32(2001))]))
STREAM = CER + SECOND


def test_framer_whole_and_several_in_one_feed() -> None:
    framer = Framer()
    assert framer.feed(CER) == [CER]
    assert framer.pending == 0
    assert framer.feed(STREAM + CER) == [CER, SECOND, CER]
    assert framer.pending == 0


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_framer_split_at_every_byte(cut: int) -> None:
    framer = Framer()
    first = framer.feed(STREAM[:cut])
    assert framer.pending == cut - sum(map(len, first))
    second = framer.feed(STREAM[cut:])
    assert first + second == [CER, SECOND]
    assert first == [m for m, end in ((CER, len(CER)), (SECOND, len(STREAM))) if end <= cut]
    assert framer.pending == 0


def test_framer_byte_by_byte() -> None:
    framer = Framer()
    out: list[bytes] = []
    for index in range(len(STREAM)):
        out += framer.feed(STREAM[index : index + 1])
        if index < 3:
            assert framer.pending == index + 1
    assert out == [CER, SECOND]
    assert framer.pending == 0


def test_framer_pending_counts_a_partial_message() -> None:
    framer = Framer()
    assert framer.feed(CER + SECOND[:30]) == [CER]
    assert framer.pending == 30
    assert framer.feed(SECOND[30:]) == [SECOND]
    assert framer.pending == 0


@pytest.mark.parametrize("length", [0, 1, 19])
def test_framer_length_below_a_header(length: int) -> None:
    framer = Framer()
    bad = b"\x01" + length.to_bytes(3, "big") + bytes(16)
    with pytest.raises(FramingError, match=f"length {length}"):
        framer.feed(CER + bad)
    # Nothing after a bad length lines up: it fails again.
    with pytest.raises(FramingError):
        framer.feed(b"")


def test_framer_length_needs_four_bytes() -> None:
    framer = Framer()
    assert framer.feed(b"\x01\x00\x00") == []
    with pytest.raises(FramingError):
        framer.feed(b"\x04")


def test_framer_max_length() -> None:
    framer = Framer(max_length=144)
    assert framer.feed(CER) == [CER]
    with pytest.raises(FramingError, match="length 148"):
        framer.feed(b"\x01\x00\x00\x94")  # 148 > 144: refused before the body arrives
    assert Framer(max_length=1 << 24).feed(b"\x01\xff\xff\xff") == []


# -- properties ------------------------------------------------------------------------------------

u32s = st.integers(0, 2**32 - 1)
# Flags without reserved bits; V decides whether a vendor id is sent (0 without it).
avp_flags = st.sets(st.sampled_from([AVP_FLAG_VENDOR, AVP_FLAG_MANDATORY, AVP_FLAG_PROTECTED]))


@st.composite
def leaf_avps(draw: st.DrawFn) -> Avp:
    flags = sum(draw(avp_flags))
    vendor_id = draw(u32s) if flags & AVP_FLAG_VENDOR else 0
    return Avp(draw(u32s), draw(st.binary(max_size=24)), flags, vendor_id)


@st.composite
def grouped_avps(draw: st.DrawFn, members: st.SearchStrategy[list[Avp]]) -> Avp:
    template = draw(leaf_avps())
    return Avp(template.code, encode_avps(draw(members)), template.flags, template.vendor_id)


avps = st.recursive(
    leaf_avps(), lambda children: grouped_avps(st.lists(children, max_size=4)), max_leaves=12
)
command_flags = st.sampled_from(
    [
        flags
        for flags in range(0, 0x100, 0x10)  # R P E T, no reserved bits
        if not (flags & FLAG_REQUEST and flags & FLAG_ERROR)
    ]
)
messages = st.builds(
    Message,
    st.integers(0, 2**24 - 1),
    u32s,
    st.lists(avps, max_size=6).map(tuple),
    command_flags,
    u32s,
    u32s,
)


@settings(max_examples=100)
@given(messages)
def test_round_trip(message: Message) -> None:
    data = bytes(message)
    assert len(data) % 4 == 0
    assert parse_message(data) == message
    assert Framer().feed(data) == [data]


@settings(max_examples=50)
@given(st.recursive(leaf_avps().map(lambda a: (a, None)), lambda c: st.lists(c, max_size=4)))
def test_grouped_members_parse_back(tree: object) -> None:
    def build(node: object) -> Avp:
        if isinstance(node, tuple):
            avp: Avp = node[0]
            return avp
        assert isinstance(node, list)
        return Avp.grouped(1, [build(child) for child in node], vendor_id=5)

    def check(node: object, avp: Avp) -> None:
        if isinstance(node, list):
            members = avp.avps()
            assert len(members) == len(node)
            for child, member in zip(node, members):
                check(child, member)
        else:
            assert isinstance(node, tuple)
            assert avp == node[0]

    avp = build(tree)
    assert parse_avps(bytes(avp)) == (avp,)
    check(tree, avp)


def descend(avp: Avp, depth: int = 0) -> None:
    """Parse ``avp`` as grouped, and its members, as deep as they go: only decode errors."""
    if depth > 8:
        return
    try:
        members = avp.avps()
    except DiameterDecodeError as error:
        assert 3000 <= error.result_code < 6000
        return
    for member in members:
        descend(member, depth + 1)


def must_not_crash(data: bytes) -> None:
    try:
        message = parse_message(data)
    except DiameterDecodeError as error:
        assert error.result_code in (3008, 3009, 5011, 5014, 5015)
    else:
        # What parses re-encodes to as many bytes (only the padding may change) and parses
        # the same.
        again = bytes(message)
        assert len(again) == len(data)
        assert parse_message(again) == message
        for avp in message.avps:
            descend(avp)
    try:
        found = parse_avps(data)
    except DiameterDecodeError as error:
        assert error.result_code in (3009, 5014)
    else:
        for avp in found:
            descend(avp)
    for max_length in (1 << 20, 64):
        framer = Framer(max_length)
        with contextlib.suppress(FramingError):
            for index in range(0, len(data), 7):
                for frame in framer.feed(data[index : index + 7]):
                    assert len(frame) >= 20
                    with contextlib.suppress(DiameterDecodeError):
                        parse_message(frame)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    must_not_crash(data)
    body = data + bytes(-len(data) % 4)
    must_not_crash(header(20 + len(body)) + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(bytes(draw(messages)) if draw(st.booleans()) else CER)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert"]))
        index = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[index:]
        elif kind == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            value = draw(st.integers(0, 255))
            data[index] = data[index] ^ (value or 1) if kind == "flip" else value
    if len(data) >= 20 and draw(st.booleans()):
        # Version and length made right again, so that the faults are the AVPs'.
        data += bytes(-len(data) % 4)
        data[0:4] = (0x01000000 | len(data)).to_bytes(4, "big")
    return bytes(data)


@settings(max_examples=150)
@given(mutated())
def test_mutated_messages_raise_only_decode_errors(data: bytes) -> None:
    must_not_crash(data)
