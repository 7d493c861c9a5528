"""The STUN codec against RFC 5769 §2.1-§2.4, RFC 8489 framing rules, and its error reasons."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from typing import Any

import attrs
import pytest

from clearwater.errors import ParseError
from clearwater.stun import (
    ATTRIBUTES,
    ATTRIBUTES_BY_NAME,
    ATTRIBUTES_BY_TYPE,
    MAX_FRAME_SIZE,
    AddressErrorCode,
    AlgorithmEntry,
    Attr,
    ChannelData,
    Class,
    ErrorCode,
    Icmp,
    Message,
    Method,
    PasswordAlgorithm,
    StreamFramer,
    long_term_key,
    new_transaction_id,
    parse_channel_data,
    parse_datagram,
    parse_message,
    saslprep,
    short_term_key,
    unknown_comprehension_required,
    userhash,
)
from tests.vectors import rfc5769 as v

TID = v.TRANSACTION_ID
KEY = short_term_key(v.SHORT_TERM_PASSWORD)


def corrupt(data: bytes, index: int) -> bytes:
    """``data`` with one bit flipped at ``index``."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def tlv(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value + bytes(-len(value) % 4)


def stun(body: bytes, message_type: int = 0x0001, tid: bytes = TID) -> bytes:
    return struct.pack("!HHI", message_type, len(body), 0x2112A442) + tid + body


# -- RFC 5769 vectors -----------------------------------------------------------------------


def test_rfc5769_request_fields() -> None:
    m = parse_message(v.REQUEST)
    assert m.method is Method.BINDING
    assert m.message_class is Class.REQUEST
    assert m.transaction_id == TID
    assert not m.legacy
    assert [code for code, _ in m.attributes] == [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]
    assert m.get(Attr.SOFTWARE) == v.REQUEST_SOFTWARE
    assert m.get(Attr.PRIORITY) == 0x6E0001FF
    assert m.get(Attr.ICE_CONTROLLED) == 0x932FF9B151263B36
    assert m.get(Attr.USERNAME) == v.SHORT_TERM_USERNAME
    assert m.get(Attr.MESSAGE_INTEGRITY) == bytes.fromhex(
        "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    )
    assert m.get(Attr.FINGERPRINT) == 0xE57A3BCF
    assert m.raw == v.REQUEST


def test_rfc5769_request_integrity_over_received_bytes() -> None:
    m = parse_message(v.REQUEST)
    assert m.check_integrity(KEY)
    assert m.check_fingerprint()
    assert not m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBu")
    assert not m.check_integrity_sha256(KEY)  # absent
    # The USERNAME padding is three spaces; re-encoding pads with zeros, so the stored HMAC
    # only matches the received bytes, never a re-encoding.
    assert v.REQUEST[73:76] == b"   "
    rebuilt = attrs.evolve(m)
    assert rebuilt.raw is None
    assert bytes(rebuilt)[73:76] == b"\x00\x00\x00"
    assert not rebuilt.check_integrity(KEY)


@pytest.mark.parametrize("section", ["2.1", "2.2", "2.3"])
def test_rfc5769_corruption_breaks_checks(section: str) -> None:
    data = v.VECTORS[section]
    # A flipped bit in the SOFTWARE value breaks both checks.
    m = parse_message(corrupt(data, 30))
    assert not m.check_integrity(KEY)
    assert not m.check_fingerprint()
    # A flipped bit in the FINGERPRINT value breaks only it.
    m = parse_message(corrupt(data, len(data) - 1))
    assert m.check_integrity(KEY)
    assert not m.check_fingerprint()
    # A flipped bit in the HMAC breaks integrity (and the fingerprint over it).
    m = parse_message(corrupt(data, len(data) - 9))
    assert not m.check_integrity(KEY)
    assert not m.check_fingerprint()
    # A flipped bit in the transaction id, which the HMAC covers.
    m = parse_message(corrupt(data, 19))
    assert not m.check_integrity(KEY)


def test_rfc5769_ipv4_response() -> None:
    m = parse_message(v.IPV4_RESPONSE)
    assert m.method is Method.BINDING
    assert m.message_class is Class.SUCCESS
    assert m.transaction_id == TID
    assert m.get(Attr.SOFTWARE) == v.RESPONSE_SOFTWARE
    assert m.get(Attr.XOR_MAPPED_ADDRESS) == v.MAPPED_IPV4
    assert m.check_integrity(KEY)
    assert m.check_fingerprint()


def test_rfc5769_ipv6_response() -> None:
    m = parse_message(v.IPV6_RESPONSE)
    assert m.message_class is Class.SUCCESS
    assert m.get(Attr.SOFTWARE) == v.RESPONSE_SOFTWARE
    assert m.get(Attr.XOR_MAPPED_ADDRESS) == v.MAPPED_IPV6
    assert m.check_integrity(KEY)
    assert m.check_fingerprint()


def test_rfc5769_long_term_request() -> None:
    m = parse_message(v.LONG_TERM_REQUEST)
    assert m.method is Method.BINDING
    assert m.message_class is Class.REQUEST
    assert m.transaction_id == v.LONG_TERM_TRANSACTION_ID
    assert m.get(Attr.USERNAME) == v.LONG_TERM_USERNAME
    assert m.get(Attr.NONCE) == v.LONG_TERM_NONCE
    assert m.get(Attr.REALM) == v.LONG_TERM_REALM
    assert Attr.FINGERPRINT not in m
    assert not m.check_fingerprint()
    assert saslprep(v.LONG_TERM_PASSWORD) == v.LONG_TERM_PASSWORD_PREPARED
    key = long_term_key(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD)
    assert key == long_term_key(
        v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD_PREPARED
    )
    assert key == hashlib.md5(f"{v.LONG_TERM_USERNAME}:example.org:TheMatrIX".encode()).digest()
    assert m.check_integrity(key)
    # Without SASLprep the key is wrong.
    raw_key = hashlib.md5(
        f"{v.LONG_TERM_USERNAME}:example.org:{v.LONG_TERM_PASSWORD}".encode()
    ).digest()
    assert not m.check_integrity(raw_key)
    assert not parse_message(corrupt(v.LONG_TERM_REQUEST, 60)).check_integrity(key)


@pytest.mark.parametrize("section", sorted(v.VECTORS))
def test_rfc5769_reencoded_with_our_integrity_verifies(section: str) -> None:
    data = v.VECTORS[section]
    m = parse_message(data)
    key = KEY
    if section == "2.4":
        key = long_term_key(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD)
    wire = m.encode(key, fingerprint=True)
    again = parse_message(wire)
    assert again.check_integrity(key)
    assert again.check_fingerprint()
    old_trailer = 1 if section == "2.4" else 2
    assert again.attributes[:-2] == m.attributes[:-old_trailer]
    assert [c for c, _ in again.attributes[-2:]] == [0x0008, 0x8028]
    # Up to MESSAGE-INTEGRITY the re-encoding differs from the RFC only in padding bytes
    # (zeros for the RFC's spaces).
    mi = len(data) - (24 if section == "2.4" else 32)
    expected = data[:mi].replace(b"h6vY   ", b"h6vY\x00\x00\x00").replace(b"vector ", b"vector\x00")
    length = (len(wire) - 20).to_bytes(2, "big")
    assert wire[:mi] == expected[:2] + length + expected[4:]


def test_rfc5769_long_term_request_reencoded_exactly() -> None:
    """§2.4 pads with zeros, so re-encoding with the same key gives the RFC's bytes."""
    key = long_term_key(v.LONG_TERM_USERNAME, v.LONG_TERM_REALM, v.LONG_TERM_PASSWORD)
    m = parse_message(v.LONG_TERM_REQUEST)
    assert m.encode(key) == v.LONG_TERM_REQUEST
    assert bytes(m) == v.LONG_TERM_REQUEST


def test_rfc5769_responses_built_from_parts() -> None:
    for data, address in ((v.IPV4_RESPONSE, v.MAPPED_IPV4), (v.IPV6_RESPONSE, v.MAPPED_IPV6)):
        m = Message(
            Method.BINDING,
            Class.SUCCESS,
            TID,
            [(Attr.SOFTWARE, v.RESPONSE_SOFTWARE), ("XOR-MAPPED-ADDRESS", address)],
        )
        wire = m.encode(KEY, fingerprint=True)
        # Same bytes as the RFC but for the SOFTWARE padding byte, so the HMAC and CRC differ
        # there; the XOR-MAPPED-ADDRESS bytes match exactly.
        assert wire[:35] == data[:35]
        assert wire[36 : len(data) - 32] == data[36 : len(data) - 32]
        assert parse_message(wire).check_integrity(KEY)


# -- message type --------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("message_class", list(Class))
def test_method_and_class_round_trip(method: Method, message_class: Class) -> None:
    m = Message(method, message_class, TID)
    wire = bytes(m)
    assert len(wire) == 20
    assert parse_message(wire) == m
    assert parse_message(wire).method is method


@pytest.mark.parametrize(
    ("method", "message_class", "wire_type"),
    [
        (Method.BINDING, Class.REQUEST, 0x0001),
        (Method.BINDING, Class.INDICATION, 0x0011),
        (Method.BINDING, Class.SUCCESS, 0x0101),
        (Method.BINDING, Class.ERROR, 0x0111),
        (Method.ALLOCATE, Class.REQUEST, 0x0003),
        (Method.ALLOCATE, Class.ERROR, 0x0113),
        (Method.SEND, Class.INDICATION, 0x0016),
        (Method.DATA, Class.INDICATION, 0x0017),
        (Method.CHANNEL_BIND, Class.SUCCESS, 0x0109),
        (Method.CONNECTION_ATTEMPT, Class.INDICATION, 0x001C),
        (0xFFF, Class.ERROR, 0x3FFF),
        (0x080, Class.REQUEST, 0x0200),
        (0x010, Class.REQUEST, 0x0020),
    ],
)
def test_message_type_bits(method: int, message_class: Class, wire_type: int) -> None:
    """RFC 8489 §5 figure 3: M11-M7 C1 M6-M4 C0 M3-M0."""
    m = Message(method, message_class, TID)
    assert m.message_type == wire_type
    assert bytes(m)[:2] == wire_type.to_bytes(2, "big")
    parsed = parse_message(bytes(m))
    assert (parsed.method, parsed.message_class) == (method, message_class)


def test_unknown_method_kept_as_int() -> None:
    parsed = parse_message(stun(b"", 0x0002))
    assert parsed.method == 0x002
    assert not isinstance(parsed.method, Method)


# -- attributes ----------------------------------------------------------------------------


def test_table_indexes() -> None:
    assert len(ATTRIBUTES) == len(ATTRIBUTES_BY_TYPE) == len(ATTRIBUTES_BY_NAME) == 36
    assert ATTRIBUTES_BY_TYPE[0x0020] is Attr.XOR_MAPPED_ADDRESS
    assert ATTRIBUTES_BY_NAME["CONNECTION-ID"].code == 0x002A
    assert Attr.USERNAME.comprehension_required
    assert not Attr.SOFTWARE.comprehension_required


ATTRIBUTE_CASES: list[tuple[Any, Any, bytes]] = [
    (Attr.MAPPED_ADDRESS, ("192.0.2.1", 32853), bytes.fromhex("00018055c0000201")),
    (
        Attr.ALTERNATE_SERVER,
        ("2001:db8::1", 3478),
        bytes.fromhex("00020d9620010db8000000000000000000000001"),
    ),
    (Attr.XOR_MAPPED_ADDRESS, ("192.0.2.1", 32853), bytes.fromhex("0001a147e112a643")),
    (Attr.XOR_PEER_ADDRESS, ("192.0.2.1", 32853), bytes.fromhex("0001a147e112a643")),
    (Attr.XOR_RELAYED_ADDRESS, ("192.0.2.1", 32853), bytes.fromhex("0001a147e112a643")),
    (Attr.USERNAME, "evtj:h6vY", b"evtj:h6vY"),
    (Attr.USERHASH, bytes(range(32)), bytes(range(32))),
    (Attr.ERROR_CODE, ErrorCode(420), b"\x00\x00\x04\x14Unknown Attribute"),
    (Attr.ERROR_CODE, ErrorCode(699, "x"), b"\x00\x00\x06\x63x"),
    (Attr.UNKNOWN_ATTRIBUTES, (0x0002, 0x7FFF), b"\x00\x02\x7f\xff"),
    (Attr.REALM, "example.org", b"example.org"),
    (Attr.NONCE, "n\u00e9", "n\u00e9".encode()),
    (
        Attr.PASSWORD_ALGORITHMS,
        (AlgorithmEntry(PasswordAlgorithm.MD5), AlgorithmEntry(2, b"abcde")),
        b"\x00\x01\x00\x00\x00\x02\x00\x05abcde\x00\x00\x00",
    ),
    (Attr.PASSWORD_ALGORITHM, AlgorithmEntry(2), b"\x00\x02\x00\x00"),
    (Attr.SOFTWARE, "clearwater", b"clearwater"),
    (Attr.ALTERNATE_DOMAIN, "turn.example.org", b"turn.example.org"),
    (Attr.FINGERPRINT, 0xE57A3BCF, b"\xe5\x7a\x3b\xcf"),
    (Attr.MESSAGE_INTEGRITY, bytes(20), bytes(20)),
    (Attr.MESSAGE_INTEGRITY_SHA256, bytes(16), bytes(16)),
    (Attr.CHANNEL_NUMBER, 0x4000, b"\x40\x00\x00\x00"),
    (Attr.LIFETIME, 600, b"\x00\x00\x02\x58"),
    (Attr.DATA, b"\x01\x02\x03", b"\x01\x02\x03"),
    (Attr.REQUESTED_ADDRESS_FAMILY, 0x02, b"\x02\x00\x00\x00"),
    (Attr.ADDITIONAL_ADDRESS_FAMILY, 0x02, b"\x02\x00\x00\x00"),
    (Attr.EVEN_PORT, True, b"\x80"),
    (Attr.EVEN_PORT, False, b"\x00"),
    (Attr.REQUESTED_TRANSPORT, 17, b"\x11\x00\x00\x00"),
    (Attr.DONT_FRAGMENT, True, b""),
    (Attr.RESERVATION_TOKEN, b"12345678", b"12345678"),
    (
        Attr.ADDRESS_ERROR_CODE,
        AddressErrorCode(0x02, 440),
        b"\x02\x00\x04\x28Address Family not Supported",
    ),
    (Attr.ICMP, Icmp(3, 4, 1400), b"\x00\x00\x03\x04\x00\x00\x05\x78"),
    (Attr.CONNECTION_ID, 0xDEADBEEF, b"\xde\xad\xbe\xef"),
    (Attr.PRIORITY, 0x6E0001FF, b"\x6e\x00\x01\xff"),
    (Attr.USE_CANDIDATE, True, b""),
    (Attr.ICE_CONTROLLED, 1, b"\x00\x00\x00\x00\x00\x00\x00\x01"),
    (Attr.ICE_CONTROLLING, 2**64 - 1, b"\xff" * 8),
    (Attr.RESPONSE_ORIGIN, ("10.0.0.1", 1), b"\x00\x01\x00\x01\x0a\x00\x00\x01"),
    (Attr.OTHER_ADDRESS, ("10.0.0.2", 2), b"\x00\x01\x00\x02\x0a\x00\x00\x02"),
]


@pytest.mark.parametrize(("row", "value", "wire"), ATTRIBUTE_CASES, ids=lambda x: str(x)[:30])
def test_attribute_values(row: Any, value: Any, wire: bytes) -> None:
    m = Message(Method.ALLOCATE, Class.REQUEST, TID, [(row, value)])
    encoded = bytes(m)
    assert encoded[20:] == tlv(row.code, wire)
    parsed = parse_message(encoded)
    assert parsed.get(row) == value
    assert parsed == m


def test_every_row_has_a_case() -> None:
    assert {row.name for row, _, _ in ATTRIBUTE_CASES} == set(ATTRIBUTES_BY_NAME)


def test_xor_ipv6_uses_transaction_id() -> None:
    a = Message(Method.BINDING, Class.SUCCESS, TID, [(Attr.XOR_MAPPED_ADDRESS, v.MAPPED_IPV6)])
    b = attrs.evolve(a, transaction_id=bytes(12))
    assert bytes(a)[28:] != bytes(b)[28:]
    assert bytes(a)[24:28] == bytes(b)[24:28]  # family and port use only the cookie
    assert parse_message(bytes(b)).get(Attr.XOR_MAPPED_ADDRESS) == v.MAPPED_IPV6


def test_ordered_repeats_and_unknown_types_kept() -> None:
    body = (
        tlv(0x8022, b"a")
        + tlv(0x7777, b"raw value")
        + tlv(0x8022, b"b")
        + tlv(0xC001, b"\x00\x01")
        + tlv(0x0016, bytes.fromhex("0001a147e112a643"))
        + tlv(0x0016, bytes.fromhex("00020d9620010db8000000000000000000000001"))
    )
    m = parse_message(stun(body, 0x0103))
    assert m.attributes[:4] == (
        (0x8022, "a"),
        (0x7777, b"raw value"),
        (0x8022, "b"),
        (0xC001, b"\x00\x01"),
    )
    assert m.get("SOFTWARE") == "a"
    assert m.get_all(Attr.SOFTWARE) == ["a", "b"]
    assert m.get(0x7777) == b"raw value"
    assert m.get(0x1234) is None
    assert len(m.get_all(Attr.XOR_RELAYED_ADDRESS)) == 2
    assert 0xC001 in m
    assert "USERNAME" not in m
    assert unknown_comprehension_required(m) == (0x7777,)
    assert parse_message(bytes(m)) == m


def test_unknown_comprehension_required_deduplicated() -> None:
    m = Message(
        Method.ALLOCATE,
        Class.REQUEST,
        TID,
        [(0x0003, b"\x00" * 4), (0x8888, b""), (0x0002, b""), (0x0003, b""), (0x0006, "u")],
    )
    assert unknown_comprehension_required(m) == (0x0003, 0x0002)
    assert unknown_comprehension_required(parse_message(v.REQUEST)) == ()


def test_error_code_reasons() -> None:
    assert ErrorCode(401).reason == "Unauthorized"
    assert ErrorCode(438).reason == "Stale Nonce"
    assert ErrorCode(599).reason == ""
    assert AddressErrorCode(1, 508).reason == "Insufficient Capacity"
    with pytest.raises(ValueError, match="300-699"):
        ErrorCode(200)


# -- integrity -----------------------------------------------------------------------------


def test_encode_with_sha256_and_both() -> None:
    m = Message(Method.ALLOCATE, Class.REQUEST, TID, [(Attr.USERNAME, "alice")])
    only256 = parse_message(m.encode(KEY, sha1=False, sha256=True))
    assert [c for c, _ in only256.attributes] == [0x0006, 0x001C]
    assert only256.check_integrity_sha256(KEY)
    assert not only256.check_integrity_sha256(b"other")
    assert not only256.check_integrity(KEY)
    both = parse_message(m.encode(KEY, sha256=True, fingerprint=True))
    assert [c for c, _ in both.attributes] == [0x0006, 0x0008, 0x001C, 0x8028]
    assert both.check_integrity(KEY)
    assert both.check_integrity_sha256(KEY)
    assert both.check_fingerprint()
    # MESSAGE-INTEGRITY-SHA256 covers MESSAGE-INTEGRITY: flip a bit in the latter.
    raw = both.raw
    assert raw is not None
    broken = parse_message(corrupt(raw, raw.index(b"\x00\x08\x00\x14") + 4))
    assert not broken.check_integrity(KEY)
    assert not broken.check_integrity_sha256(KEY)
    with pytest.raises(ValueError, match="sha1 or sha256"):
        m.encode(KEY, sha1=False)


def test_truncated_sha256_integrity() -> None:
    """RFC 8489 §14.6: the HMAC may be truncated to 16-32 bytes, a multiple of 4."""
    m = Message(Method.BINDING, Class.REQUEST, TID, [(Attr.SOFTWARE, "x")])
    head = bytes(m)[:20]
    body = bytes(m)[20:]
    length = len(body) + 4 + 16
    text = head[:2] + length.to_bytes(2, "big") + head[4:] + body
    mac = hmac.new(KEY, text, hashlib.sha256).digest()[:16]
    wire = text + tlv(0x001C, mac)
    parsed = parse_message(wire)
    assert parsed.check_integrity_sha256(KEY)
    assert not parse_message(corrupt(wire, len(wire) - 1)).check_integrity_sha256(KEY)


def test_encode_replaces_stale_trailer() -> None:
    parsed = parse_message(v.REQUEST)
    wire = parsed.encode(b"new key", fingerprint=True)
    again = parse_message(wire)
    assert [c for c, _ in again.attributes].count(0x0008) == 1
    assert again.check_integrity(b"new key")
    assert again.check_fingerprint()
    only_fp = parse_message(parsed.encode(fingerprint=True))
    assert only_fp.check_fingerprint()
    assert [c for c, _ in only_fp.attributes] == [c for c, _ in parsed.attributes]


def test_built_message_checks_its_own_encoding() -> None:
    parsed = parse_message(parse_message(v.IPV4_RESPONSE).encode(KEY, fingerprint=True))
    built = attrs.evolve(parsed)
    assert built.raw is None
    assert built.check_integrity(KEY)
    assert built.check_fingerprint()


def test_attributes_after_integrity_ignored() -> None:
    """RFC 8489 §14.5-§14.7: only M-I-SHA256 and FINGERPRINT count after M-I."""
    m = Message(Method.BINDING, Class.REQUEST, TID, [(Attr.USERNAME, "u")])
    signed = m.encode(KEY)
    extra = tlv(0x8022, b"added later") + tlv(0x7001, b"") + tlv(0x0008, bytes(20))
    body = signed[20:] + extra
    wire = signed[:2] + len(body).to_bytes(2, "big") + signed[4:20] + body
    parsed = parse_message(wire)
    assert [c for c, _ in parsed.attributes] == [0x0006, 0x0008]
    assert parsed.check_integrity(KEY)
    assert unknown_comprehension_required(parsed) == ()
    # FINGERPRINT after M-I counts; anything after FINGERPRINT does not.
    fp = parse_message(m.encode(KEY, fingerprint=True))
    raw = fp.raw
    assert raw is not None
    body = raw[20:] + tlv(0x8022, b"x")
    wire = raw[:2] + len(body).to_bytes(2, "big") + raw[4:20] + body
    parsed = parse_message(wire)
    assert [c for c, _ in parsed.attributes] == [0x0006, 0x0008, 0x8028]
    assert parsed.check_integrity(KEY)
    # Checked with the length field ending at FINGERPRINT, like MESSAGE-INTEGRITY.
    assert parsed.check_fingerprint()


def test_integrity_sha256_before_integrity_hides_it() -> None:
    m = Message(Method.BINDING, Class.REQUEST, TID)
    wire = m.encode(KEY, sha1=False, sha256=True)
    body = wire[20:] + tlv(0x0008, bytes(20))
    parsed = parse_message(wire[:2] + len(body).to_bytes(2, "big") + wire[4:20] + body)
    assert [c for c, _ in parsed.attributes] == [0x001C]
    assert not parsed.check_integrity(KEY)


def test_fingerprint_value() -> None:
    m = Message(Method.BINDING, Class.INDICATION, TID)
    wire = m.encode(fingerprint=True)
    expected = zlib.crc32(wire[:2] + b"\x00\x08" + wire[4:20]) ^ 0x5354554E
    assert wire[20:] == tlv(0x8028, expected.to_bytes(4, "big"))


# -- RFC 3489 ------------------------------------------------------------------------------


LEGACY_TID = bytes(range(1, 17))


def test_rfc3489_binding_request_parsed_and_answered_without_cookie() -> None:
    wire = struct.pack("!HH", 0x0001, 0) + LEGACY_TID
    m = parse_message(wire)
    assert m.legacy
    assert m.transaction_id == LEGACY_TID
    assert m.method is Method.BINDING
    reply = Message(
        Method.BINDING, Class.SUCCESS, m.transaction_id, [(Attr.MAPPED_ADDRESS, ("192.0.2.1", 5))]
    )
    out = bytes(reply)
    assert out[:4] == b"\x01\x01\x00\x0c"
    assert out[4:20] == LEGACY_TID
    assert out[20:] == tlv(0x0001, b"\x00\x01\x00\x05\xc0\x00\x02\x01")
    assert parse_message(out) == reply


def test_rfc3489_xor_address_uses_whole_transaction_id() -> None:
    m = Message(
        Method.BINDING, Class.SUCCESS, LEGACY_TID, [(Attr.XOR_MAPPED_ADDRESS, ("1.2.3.4", 5))]
    )
    value = bytes(m)[24:32]
    assert value == b"\x00\x01" + (5 ^ 0x0102).to_bytes(2, "big") + bytes((0, 0, 0, 0))
    assert parse_message(bytes(m)) == m


def test_rfc3489_other_methods_refused() -> None:
    with pytest.raises(ParseError, match=r"^Bad magic cookie$"):
        parse_message(struct.pack("!HH", 0x0003, 0) + LEGACY_TID)
    with pytest.raises(ValueError, match="Binding only"):
        Message(Method.ALLOCATE, Class.REQUEST, LEGACY_TID)


def test_message_validation() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        Message(Method.BINDING, Class.REQUEST, b"short")
    with pytest.raises(ValueError, match="0-0xFFF"):
        Message(0x1000, Class.REQUEST, TID)
    with pytest.raises(KeyError):
        Message(Method.BINDING, Class.REQUEST, TID, [("NO-SUCH-ATTRIBUTE", b"")])
    with pytest.raises(TypeError, match="give bytes"):
        bytes(Message(Method.BINDING, Class.REQUEST, TID, [(0x7777, "text")]))
    with pytest.raises(ValueError, match="65535"):
        bytes(Message(Method.SEND, Class.INDICATION, TID, [(Attr.DATA, bytes(70000))]))
    with pytest.raises(ValueError, match="body"):
        bytes(Message(Method.SEND, Class.INDICATION, TID, [(Attr.DATA, bytes(40000))] * 2))
    with pytest.raises(ValueError, match="not an IP address"):
        bytes(Message(Method.BINDING, Class.SUCCESS, TID, [(Attr.MAPPED_ADDRESS, ("x", 1))]))
    with pytest.raises(ValueError, match="port"):
        bytes(Message(Method.BINDING, Class.SUCCESS, TID, [(Attr.MAPPED_ADDRESS, ("::", -1))]))
    with pytest.raises(ValueError):
        bytes(Message(Method.BINDING, Class.SUCCESS, TID, [(Attr.ICMP, Icmp(256, 0))]))
    with pytest.raises(ValueError):
        bytes(Message(Method.BINDING, Class.SUCCESS, TID, [(Attr.SOFTWARE, "x" * 128)]))


def test_new_transaction_id() -> None:
    a, b = new_transaction_id(), new_transaction_id()
    assert len(a) == 12
    assert a != b


# -- parse errors --------------------------------------------------------------------------


def _with_attr(code: int, value: bytes) -> bytes:
    return stun(tlv(code, value), 0x0003)


PARSE_ERRORS: list[tuple[bytes, str]] = [
    (b"", "STUN message too short"),
    (v.REQUEST[:19], "STUN message too short"),
    (b"\x40" + v.REQUEST[1:], "First two bits not zero"),
    (b"\x80" + v.REQUEST[1:], "First two bits not zero"),
    (v.REQUEST[:3] + b"\x59" + v.REQUEST[4:], "Length not a multiple of 4"),
    (v.REQUEST[:-4], "Truncated STUN message"),
    (v.REQUEST + b"\x00\x00\x00\x00", "Trailing bytes after STUN message"),
    (stun(b"", 0x0003, TID)[:4] + b"\x21\x12\xa4\x43" + TID, "Bad magic cookie"),
    (stun(b"\x80\x22\x00\x05abcd"), "Attribute overruns message"),
    (stun(b"\x80\x22\x01\x00"), "Attribute overruns message"),
    (
        _with_attr(0x0020, b"\x00\x03\x00\x00\x00\x00\x00\x00"),
        "XOR-MAPPED-ADDRESS: bad address family",
    ),
    (_with_attr(0x0020, b"\x00\x01\x00\x00\x00\x00\x00"), "XOR-MAPPED-ADDRESS: bad address length"),
    (_with_attr(0x0020, b"\x00\x02\x00\x00" + bytes(4)), "XOR-MAPPED-ADDRESS: bad address length"),
    (_with_attr(0x0001, b"\x00\x00\x00\x00\x00\x00\x00\x00"), "MAPPED-ADDRESS: bad address family"),
    (_with_attr(0x0001, b"\x00\x01"), "MAPPED-ADDRESS: bad address length"),
    (_with_attr(0x0012, b""), "XOR-PEER-ADDRESS: bad address length"),
    (_with_attr(0x0006, b"\xff"), "USERNAME: not UTF-8"),
    (_with_attr(0x0006, b"u" * 764), "USERNAME: too long"),
    (_with_attr(0x8022, b"s" * 128), "SOFTWARE: too long"),
    (_with_attr(0x0014, "\u00e9".encode() * 128), "REALM: too long"),
    (_with_attr(0x0015, b"\xc3"), "NONCE: not UTF-8"),
    (_with_attr(0x8003, b"\xc3\xa9"), "ALTERNATE-DOMAIN: not ASCII"),
    (_with_attr(0x8003, b"a" * 256), "ALTERNATE-DOMAIN: too long"),
    (_with_attr(0x0008, bytes(19)), "MESSAGE-INTEGRITY: bad length"),
    (_with_attr(0x001C, bytes(12)), "MESSAGE-INTEGRITY-SHA256: bad length"),
    (_with_attr(0x001C, bytes(18)), "MESSAGE-INTEGRITY-SHA256: bad length"),
    (_with_attr(0x001C, bytes(36)), "MESSAGE-INTEGRITY-SHA256: bad length"),
    (_with_attr(0x8028, bytes(8)), "FINGERPRINT: bad length"),
    (_with_attr(0x0009, b"\x00\x00\x04"), "ERROR-CODE: bad length"),
    (_with_attr(0x0009, b"\x00\x00\x02\x00"), "ERROR-CODE: bad error code"),
    (_with_attr(0x0009, b"\x00\x00\x04\x64"), "ERROR-CODE: bad error code"),
    (_with_attr(0x0009, b"\x00\x00\x04\x00\xff"), "ERROR-CODE: not UTF-8"),
    (_with_attr(0x8001, b"\x01\x00\x07\x00"), "ADDRESS-ERROR-CODE: bad error code"),
    (_with_attr(0x000A, b"\x00\x01\x00"), "UNKNOWN-ATTRIBUTES: bad length"),
    (_with_attr(0x000C, b"\x40\x00"), "CHANNEL-NUMBER: bad length"),
    (_with_attr(0x000D, bytes(8)), "LIFETIME: bad length"),
    (_with_attr(0x0018, bytes(4)), "EVEN-PORT: bad length"),
    (_with_attr(0x0019, b"\x11"), "REQUESTED-TRANSPORT: bad length"),
    (_with_attr(0x001A, b"\x00"), "DONT-FRAGMENT: bad length"),
    (_with_attr(0x0025, bytes(4)), "USE-CANDIDATE: bad length"),
    (_with_attr(0x0022, bytes(4)), "RESERVATION-TOKEN: bad length"),
    (_with_attr(0x001E, bytes(20)), "USERHASH: bad length"),
    (_with_attr(0x8004, bytes(4)), "ICMP: bad length"),
    (_with_attr(0x8029, bytes(4)), "ICE-CONTROLLED: bad length"),
    (_with_attr(0x8002, b"\x00\x01\x00\x04ab"), "PASSWORD-ALGORITHMS: truncated algorithm"),
    (_with_attr(0x8002, b"\x00\x01"), "PASSWORD-ALGORITHMS: truncated algorithm"),
    (_with_attr(0x8002, b"\x00\x01\x00\x01a"), "PASSWORD-ALGORITHMS: truncated algorithm"),
    (_with_attr(0x001D, b""), "PASSWORD-ALGORITHM: bad length"),
    (_with_attr(0x001D, bytes(8)), "PASSWORD-ALGORITHM: bad length"),
]


@pytest.mark.parametrize(("data", "reason"), PARSE_ERRORS, ids=[r for _, r in PARSE_ERRORS])
def test_parse_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.reason == reason
    assert info.value.status == 400


@pytest.mark.parametrize("row", ATTRIBUTES, ids=lambda row: row.name)
def test_attribute_decoders_fail_only_with_parse_error(row: Any) -> None:
    """Every row, every value length up to 64, a few fill patterns: a value or a ParseError
    naming the attribute, and whatever decodes encodes back to the same model."""
    for n in range(65):
        for fill in (0x00, 0x01, 0x02, 0x41, 0x80, 0xFF):
            data = stun(tlv(row.code, bytes([fill]) * n))
            try:
                m = parse_message(data)
            except ParseError as e:
                assert e.reason.startswith(row.name + ": ")
                continue
            assert parse_message(bytes(m)) == m


def test_lenient_where_the_rfc_says_ignore() -> None:
    # Reserved bits and the first address byte are ignored on receipt (RFC 8489 §14.1, §14.8;
    # RFC 8656 §18 RFFU).
    assert parse_message(_with_attr(0x0001, b"\xff\x01\x00\x01\x0a\x00\x00\x01")).get(
        Attr.MAPPED_ADDRESS
    ) == ("10.0.0.1", 1)
    assert parse_message(_with_attr(0x0009, b"\xff\xff\xfc\x14")).get(Attr.ERROR_CODE) == (
        ErrorCode(420, "")
    )
    assert parse_message(_with_attr(0x0019, b"\x06\xff\xff\xff")).get(Attr.REQUESTED_TRANSPORT) == 6
    assert parse_message(_with_attr(0x0018, b"\xff")).get(Attr.EVEN_PORT) is True
    # Padding bytes may hold anything.
    assert parse_message(stun(b"\x80\x22\x00\x01a\xff\xff\xff")).get(Attr.SOFTWARE) == "a"
    # The longest USERNAME RFC 8489 §14.3 requires us to parse.
    assert parse_message(_with_attr(0x0006, b"u" * 763)).get(Attr.USERNAME) == "u" * 763


# -- credentials ---------------------------------------------------------------------------


def test_keys() -> None:
    assert short_term_key("VOkJxbRl1RmTxUk/WvJxBt") == b"VOkJxbRl1RmTxUk/WvJxBt"
    assert short_term_key("a\u00adb\u2003c") == b"ab c"
    assert long_term_key("u", "r", "p") == hashlib.md5(b"u:r:p").digest()
    sha = long_term_key("u", "r", "p", PasswordAlgorithm.SHA256)
    assert sha == hashlib.sha256(b"u:r:p").digest()
    with pytest.raises(ValueError, match="unknown password algorithm"):
        long_term_key("u", "r", "p", 3)
    assert userhash("u", "r") == hashlib.sha256(b"u:r").digest()


@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        # RFC 4013 §3 examples.
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        ("", ""),
        ("a\u00a0b", "a b"),
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),
    ],
)
def test_saslprep(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("\u0007", "prohibited"),  # RFC 4013 §3: <U+0007> is an error
        ("a\u2028", "prohibited"),
        ("\ue000", "prohibited"),
        ("\u0627\u0031", "right-to-left text must start and end"),  # RFC 4013 §3
        ("\u0627a\u0628", "mixed"),
        ("\u0221", "unassigned"),
    ],
)
def test_saslprep_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        saslprep(text)


def test_saslprep_unassigned_allowed_in_queries() -> None:
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"


# -- ChannelData and datagrams ------------------------------------------------------------


def test_channel_data() -> None:
    c = ChannelData(0x4001, b"hello")
    assert bytes(c) == b"\x40\x01\x00\x05hello"
    assert c.encode(pad=True) == b"\x40\x01\x00\x05hello\x00\x00\x00"
    assert ChannelData(0x4FFF, b"abcd").encode(pad=True) == b"\x4f\xff\x00\x04abcd"
    assert parse_channel_data(bytes(c)) == c
    assert parse_channel_data(c.encode(pad=True)) == c
    assert parse_datagram(bytes(c)) == c
    assert parse_channel_data(b"\x40\x00\x00\x00") == ChannelData(0x4000, b"")
    with pytest.raises(ValueError, match="0x4000-0x7FFF"):
        ChannelData(0x8000, b"")
    # RFC 5766 §11's range, which coturn's clients still use (RFC 8656 §12 narrowed it)
    assert ChannelData(0x5089, b"").encode() == b"\x50\x89\x00\x00"
    with pytest.raises(ValueError, match="65535"):
        ChannelData(0x4000, bytes(0x10000))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x40\x00\x00", "ChannelData too short"),
        (b"\x3f\xff\x00\x00", "Bad channel number"),
        (b"\x40\x00\x00\x05abcd", "Truncated ChannelData"),
        (b"\x40\x00\x00\x01abcde", "Trailing bytes after ChannelData"),
    ],
)
def test_channel_data_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_channel_data(data)
    assert info.value.reason == reason


def test_parse_datagram() -> None:
    assert isinstance(parse_datagram(v.REQUEST), Message)
    for data, reason in [
        (b"", "Empty datagram"),
        (b"\x80\x00\x00\x00", "Not STUN or ChannelData"),
        (b"\xc0", "Not STUN or ChannelData"),
        (b"\x00\x01", "STUN message too short"),
    ]:
        with pytest.raises(ParseError) as info:
            parse_datagram(data)
        assert info.value.reason == reason


# -- stream framer -------------------------------------------------------------------------


STREAM_FRAMES = [
    v.REQUEST,
    ChannelData(0x4000, b"abc").encode(pad=True),
    v.IPV6_RESPONSE,
    ChannelData(0x4FFF, b"").encode(pad=True),
    ChannelData(0x4123, b"x" * 8).encode(pad=True),
    v.LONG_TERM_REQUEST,
]
STREAM = b"".join(STREAM_FRAMES)


def test_framer_whole_stream() -> None:
    framer = StreamFramer()
    assert framer.feed(STREAM) == STREAM_FRAMES
    assert framer.buffered == 0
    assert [type(parse_datagram(f)) for f in STREAM_FRAMES] == [
        Message,
        ChannelData,
        Message,
        ChannelData,
        ChannelData,
        Message,
    ]


def test_framer_byte_by_byte() -> None:
    framer = StreamFramer()
    frames: list[bytes] = []
    for i in range(len(STREAM)):
        frames += framer.feed(STREAM[i : i + 1])
        assert framer.buffered <= max(len(f) for f in STREAM_FRAMES)
    assert frames == STREAM_FRAMES
    assert framer.buffered == 0


def test_framer_two_pieces_everywhere() -> None:
    for cut in range(len(STREAM) + 1):
        framer = StreamFramer()
        assert framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:]) == STREAM_FRAMES


def test_framer_empty_feed_and_detach() -> None:
    framer = StreamFramer()
    assert framer.feed(b"") == []
    # After ConnectionBind (RFC 6062) the connection carries raw data: detach hands over what
    # the framer holds.
    assert framer.feed(v.REQUEST + b"\x00\x01\x00") == [v.REQUEST]
    assert framer.buffered == 3
    assert framer.detach() == b"\x00\x01\x00"
    assert framer.buffered == 0
    assert framer.detach() == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80", "Bad frame start"),
        (b"\xff\xff\xff\xff", "Bad frame start"),
        (b"\x00\x01\x00\x05", "Length not a multiple of 4"),
        (b"\x00\x01\x00\x64", "Frame too large"),
        (b"\x40\x00\x00\x61", "Frame too large"),
    ],
)
def test_framer_errors(data: bytes, reason: str) -> None:
    framer = StreamFramer(max_frame_size=100)
    with pytest.raises(ParseError) as info:
        framer.feed(data)
    assert info.value.reason == reason
    # Broken for good, and holds nothing.
    assert framer.buffered == 0
    with pytest.raises(ParseError) as again:
        framer.feed(v.REQUEST)
    assert again.value.reason == reason


def test_framer_limits() -> None:
    framer = StreamFramer(max_frame_size=100)
    assert framer.feed(b"\x00\x01\x00\x50" + bytes(16)) == []  # exactly 100 bytes: allowed
    assert framer.buffered == 20
    assert StreamFramer().feed(b"\x40\x00\xff\xff") == []  # the largest ChannelData
    with pytest.raises(ParseError, match="Frame too large"):
        StreamFramer(max_frame_size=MAX_FRAME_SIZE - 1).feed(b"\x00\x01\xff\xfc")
    with pytest.raises(ValueError, match="STUN header"):
        StreamFramer(max_frame_size=19)


def test_framer_error_after_good_frames_in_same_feed() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError, match="Bad frame start"):
        framer.feed(v.REQUEST + b"\xff")
