"""Tests for :mod:`clearwater.diameter.dictionary`: the value formats of RFC 6733 §4.2/§4.3, the
Dictionary's lookups and paths, and the base rows checked against RFC 6733 §4.5 (transcribed
below) and against Wireshark's dictionary when it is installed.
"""

from __future__ import annotations

import calendar
import enum
import functools
import ipaddress
import math
import pathlib
import re
import xml.etree.ElementTree as ET
from typing import Any, Optional

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearwater.diameter.dictionary import (
    APP_CX,
    BASE,
    BASE_AVPS,
    BASE_COMMANDS,
    VENDOR_3GPP,
    AvpDef,
    AvpType,
    CommandDef,
    Dictionary,
    decode_value,
    encode_value,
)
from clearwater.diameter.message import (
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    FLAG_REQUEST,
    Avp,
    DiameterDecodeError,
    Message,
    parse_message,
)
from tests.unit.diameter.test_message import CER

T = AvpType


def decode(kind: AvpType, data: bytes) -> Any:
    return decode_value(kind, Avp.make(1000, data))


def decode_error(kind: AvpType, data: bytes) -> DiameterDecodeError:
    avp = Avp.make(1000, data)
    with pytest.raises(DiameterDecodeError) as info:
        decode_value(kind, avp)
    assert info.value.failed_avp == avp
    return info.value


# -- value formats (RFC 6733 §4.2, §4.3) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "hex_data"),
    [
        (T.OCTET_STRING, b"\x00\xff", "00ff"),
        (T.OCTET_STRING, b"", ""),
        (T.INTEGER32, -(2**31), "80000000"),
        (T.INTEGER32, 2**31 - 1, "7fffffff"),
        (T.INTEGER32, -1, "ffffffff"),
        (T.INTEGER64, -(2**63), "8000000000000000"),
        (T.INTEGER64, 2**63 - 1, "7fffffffffffffff"),
        (T.UNSIGNED32, 0, "00000000"),
        (T.UNSIGNED32, 2**32 - 1, "ffffffff"),
        (T.UNSIGNED64, 2**64 - 1, "ffffffffffffffff"),
        (T.UNSIGNED64, 1, "0000000000000001"),
        (T.ENUMERATED, -(2**31), "80000000"),
        (T.ENUMERATED, 2**31 - 1, "7fffffff"),
        (T.FLOAT32, 1.5, "3fc00000"),
        (T.FLOAT32, -0.0, "80000000"),
        (T.FLOAT32, math.inf, "7f800000"),
        (T.FLOAT64, 1.5, "3ff8000000000000"),
        (T.FLOAT64, -2.0, "c000000000000000"),
        (T.UTF8_STRING, "h\u00e9llo \u2603", "68c3a96c6c6f20e29883"),
        (T.UTF8_STRING, "", ""),
        (T.DIAMETER_IDENTITY, "hss.example.com", "6873732e6578616d706c652e636f6d"),
        (T.DIAMETER_URI, "aaa://h.ex:3868;transport=tcp", b"aaa://h.ex:3868;transport=tcp".hex()),
        (
            T.IP_FILTER_RULE,
            "permit in ip from any to assigned",
            b"permit in ip from any to assigned".hex(),
        ),
        (T.ADDRESS, "127.0.0.1", "0001 7f000001"),
        (T.ADDRESS, "2001:db8::1", "0002 20010db8000000000000000000000001"),
        (T.ADDRESS, "8:0102", "0008 0102"),  # another family (8: E.164), RFC 6733 §4.3.1
        (T.ADDRESS, "65535:", "ffff"),
        # Time: NTP seconds since 1900 (RFC 6733 §4.3.1); 1970-01-01 is 2208988800 = 0x83aa7e80.
        (T.TIME, 0, "83aa7e80"),
        # The last second of NTP era 0, 2036-02-07 06:28:15, and the first of era 1 (RFC 2030 §3:
        # wire values with the top bit clear are after 2036).
        (T.TIME, calendar.timegm((2036, 2, 7, 6, 28, 15)), "ffffffff"),
        (T.TIME, calendar.timegm((2036, 2, 7, 6, 28, 16)), "00000000"),
        (T.TIME, calendar.timegm((2100, 1, 1, 0, 0, 0)), "7830d580"),
        # The ends of what can be sent: 1968-01-20 03:14:08 and 2104-02-26 09:42:23.
        (T.TIME, calendar.timegm((1968, 1, 20, 3, 14, 8)), "80000000"),
        (T.TIME, calendar.timegm((2104, 2, 26, 9, 42, 23)), "7fffffff"),
    ],
)
def test_encode_and_decode(kind: AvpType, value: Any, hex_data: str) -> None:
    data = bytes.fromhex(hex_data)
    assert encode_value(kind, value) == data
    decoded = decode(kind, data)
    assert decoded == value
    assert type(decoded) is type(value)


def test_time_2100_is_after_the_wrap() -> None:
    # 2100-01-01 is 4102444800 seconds after 1970, 6311433600 after 1900: 2^32 + 0x7830d580.
    assert calendar.timegm((2100, 1, 1, 0, 0, 0)) + 2208988800 == 2**32 + 0x7830D580


def test_negative_zero_float_keeps_its_sign() -> None:
    assert math.copysign(1.0, decode(T.FLOAT32, bytes.fromhex("80000000"))) == -1.0


def test_nan_floats() -> None:
    for kind in (T.FLOAT32, T.FLOAT64):
        assert math.isnan(decode(kind, encode_value(kind, math.nan)))


def test_loose_inputs() -> None:
    assert encode_value(T.OCTET_STRING, "\u00e9") == b"\xc3\xa9"  # str: its UTF-8
    assert encode_value(T.OCTET_STRING, bytearray(b"ab")) == b"ab"
    assert encode_value(T.FLOAT32, 1) == bytes.fromhex("3f800000")  # int: as a float
    assert encode_value(T.ADDRESS, ipaddress.ip_address("10.0.0.1")) == bytes.fromhex(
        "0001 0a000001"
    )
    assert (
        encode_value(T.ADDRESS, ipaddress.ip_address("::1"))
        == bytes.fromhex("0002") + bytes(15) + b"\x01"
    )

    class Cause(enum.IntEnum):
        REBOOTING = 0
        BUSY = 1

    assert encode_value(T.ENUMERATED, Cause.BUSY) == bytes.fromhex("00000001")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (T.INTEGER32, 2**31),
        (T.INTEGER32, -(2**31) - 1),
        (T.INTEGER64, 2**63),
        (T.INTEGER64, -(2**63) - 1),
        (T.UNSIGNED32, -1),
        (T.UNSIGNED32, 2**32),
        (T.UNSIGNED64, -1),
        (T.UNSIGNED64, 2**64),
        (T.ENUMERATED, 2**31),
        (T.FLOAT32, 1e300),
        pytest.param(T.FLOAT32, 10**400, id="FLOAT32-10**400"),
        pytest.param(T.FLOAT64, 10**400, id="FLOAT64-10**400"),
        (T.TIME, calendar.timegm((1968, 1, 20, 3, 14, 7))),
        (T.TIME, calendar.timegm((2104, 2, 26, 9, 42, 24))),
        (T.DIAMETER_IDENTITY, "h\u00e9.example.com"),
        (T.DIAMETER_URI, "aaa://\u00e9"),
        (T.ADDRESS, "example.com"),
        (T.ADDRESS, "1:7f000001"),  # families 1 and 2 are written as addresses
        (T.ADDRESS, "2:00"),
        (T.ADDRESS, "65536:00"),
        (T.ADDRESS, "8:xyz"),
        (T.ADDRESS, ":00"),
    ],
)
def test_out_of_range_values(kind: AvpType, value: Any) -> None:
    with pytest.raises(ValueError):
        encode_value(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (T.INTEGER32, True),
        (T.UNSIGNED32, False),
        (T.UNSIGNED64, True),
        (T.ENUMERATED, True),
        (T.TIME, True),
        (T.FLOAT32, True),
        (T.FLOAT64, False),
        (T.UNSIGNED32, 1.0),
        (T.INTEGER64, "1"),
        (T.TIME, 1.5),
        (T.FLOAT64, "1.5"),
        (T.OCTET_STRING, 1),
        (T.UTF8_STRING, b"bytes"),
        (T.DIAMETER_IDENTITY, b"host"),
        (T.ADDRESS, 1),
        (T.ADDRESS, b"\x7f\x00\x00\x01"),
        (T.GROUPED, b"\x00\x00\x00\x01"),
        (T.GROUPED, [Avp.make(1, b""), "not an AVP"]),
    ],
)
def test_wrong_python_types(kind: AvpType, value: Any) -> None:
    with pytest.raises(TypeError):
        encode_value(kind, value)


def test_grouped_values() -> None:
    members = (Avp.make(266, bytes.fromhex("000028af")), Avp.make(1, b"abc", mandatory=False))
    data = encode_value(T.GROUPED, members)
    assert data == bytes.fromhex("0000010a 4000000c 000028af 00000001 0000000b 616263 00")
    assert encode_value(T.GROUPED, list(members)) == data
    assert encode_value(T.GROUPED, ()) == b""
    assert decode(T.GROUPED, data) == members
    with pytest.raises(DiameterDecodeError) as info:
        decode(T.GROUPED, data[:-8])  # the second member's header cut short
    assert info.value.result_code == 5014
    assert info.value.failed_avp is not None
    assert bytes(info.value.failed_avp) == bytes.fromhex("00000001 00000008")


@pytest.mark.parametrize(
    "kind",
    [
        T.INTEGER32,
        T.INTEGER64,
        T.UNSIGNED32,
        T.UNSIGNED64,
        T.FLOAT32,
        T.FLOAT64,
        T.ENUMERATED,
        T.TIME,
    ],
)
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_size_for_a_fixed_type(kind: AvpType, delta: int) -> None:
    size = len(encode_value(kind, 0))
    error = decode_error(kind, bytes(size + delta))
    assert error.result_code == 5014
    error = decode_error(kind, b"")
    assert error.result_code == 5014


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",  # never valid in UTF-8
        b"\xc3",  # cut short
        b"\xc0\xaf",  # overlong "/"
        b"\xed\xa0\x80",  # a UTF-16 surrogate
        b"ok\xf4\x90\x80\x80",  # above U+10FFFF
    ],
)
def test_invalid_utf8_is_an_invalid_value(data: bytes) -> None:
    error = decode_error(T.UTF8_STRING, data)
    assert error.result_code == 5004
    assert error.failed_avp is not None
    assert error.failed_avp.data == data


@pytest.mark.parametrize("kind", [T.DIAMETER_IDENTITY, T.DIAMETER_URI, T.IP_FILTER_RULE])
def test_non_ascii_identity_is_an_invalid_value(kind: AvpType) -> None:
    error = decode_error(kind, "h\u00e9.example.com".encode())
    assert error.result_code == 5004


@pytest.mark.parametrize(
    "hex_data",
    [
        "",
        "00",
        "0001 7f0000",  # IPv4 short
        "0001 7f000001 00",  # IPv4 long
        "0002 7f000001",  # IPv6 short
    ],
)
def test_address_of_the_wrong_size(hex_data: str) -> None:
    error = decode_error(T.ADDRESS, bytes.fromhex(hex_data))
    assert error.result_code == 5014


def test_other_address_families_decode_as_family_and_hex() -> None:
    assert decode(T.ADDRESS, bytes.fromhex("0000")) == "0:"
    assert decode(T.ADDRESS, bytes.fromhex("0003 abcdef")) == "3:abcdef"
    assert encode_value(T.ADDRESS, "3:abcdef") == bytes.fromhex("0003 abcdef")


times = st.integers(
    calendar.timegm((1968, 1, 20, 3, 14, 8)), calendar.timegm((2104, 2, 26, 9, 42, 23))
)
VALUES: dict[AvpType, st.SearchStrategy[Any]] = {
    T.OCTET_STRING: st.binary(max_size=20),
    T.INTEGER32: st.integers(-(2**31), 2**31 - 1),
    T.INTEGER64: st.integers(-(2**63), 2**63 - 1),
    T.UNSIGNED32: st.integers(0, 2**32 - 1),
    T.UNSIGNED64: st.integers(0, 2**64 - 1),
    T.ENUMERATED: st.integers(-(2**31), 2**31 - 1),
    T.FLOAT32: st.floats(width=32, allow_nan=False),
    T.FLOAT64: st.floats(allow_nan=False),
    T.UTF8_STRING: st.text(max_size=20),
    T.DIAMETER_IDENTITY: st.text(st.characters(max_codepoint=127), max_size=20),
    T.DIAMETER_URI: st.text(st.characters(max_codepoint=127), max_size=20),
    T.IP_FILTER_RULE: st.text(st.characters(max_codepoint=127), max_size=20),
    T.ADDRESS: st.one_of(
        st.ip_addresses().map(str),
        st.tuples(
            st.integers(0, 0xFFFF).filter(lambda f: f not in (1, 2)), st.binary(max_size=8)
        ).map(lambda t: f"{t[0]}:{t[1].hex()}"),
    ),
    T.TIME: times,
    T.GROUPED: st.lists(
        st.builds(Avp.make, st.integers(0, 2**32 - 1), st.binary(max_size=8)), max_size=3
    ).map(tuple),
}


def test_every_type_has_a_value_strategy() -> None:
    assert set(VALUES) == set(AvpType)


@settings(max_examples=150)
@given(st.sampled_from(list(AvpType)).flatmap(lambda kind: st.tuples(st.just(kind), VALUES[kind])))
def test_value_round_trip(kind_and_value: tuple[AvpType, Any]) -> None:
    kind, value = kind_and_value
    assert decode(kind, encode_value(kind, value)) == value


@settings(max_examples=150)
@given(st.sampled_from(list(AvpType)), st.binary(max_size=24))
def test_decoding_junk_raises_only_decode_errors(kind: AvpType, data: bytes) -> None:
    try:
        decode(kind, data)
    except DiameterDecodeError as error:
        assert error.result_code in (3009, 5004, 5014)


# -- Dictionary ------------------------------------------------------------------------------------

PUBLIC_IDENTITY = AvpDef("Public-Identity", 601, T.UTF8_STRING, VENDOR_3GPP)
SUPPORTED_FEATURES = AvpDef("Supported-Features", 628, T.GROUPED, VENDOR_3GPP, mandatory=False)
FEATURE_LIST = AvpDef("Feature-List", 630, T.UNSIGNED32, VENDOR_3GPP, mandatory=False)
EXTENDED = Dictionary(
    (*BASE_AVPS, PUBLIC_IDENTITY, SUPPORTED_FEATURES, FEATURE_LIST), BASE_COMMANDS
)


def test_duplicate_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="Duplicate dictionary row"):
        Dictionary([*BASE_AVPS, AvpDef("Session-Id", 9999, T.OCTET_STRING)])
    with pytest.raises(ValueError, match="Duplicate dictionary row"):
        Dictionary([*BASE_AVPS, AvpDef("Another-Session-Id", 263, T.OCTET_STRING)])
    # The same code under another vendor is another AVP.
    Dictionary([*BASE_AVPS, AvpDef("Vendor-Session-Id", 263, T.OCTET_STRING, VENDOR_3GPP)])


def test_duplicate_commands_are_rejected() -> None:
    cer = BASE_COMMANDS[0]
    for clash in (
        attrs.evolve(cer, code=999),  # the same names
        attrs.evolve(cer, name="Other", request="OTR", answer="OTA"),  # the same code and app
        CommandDef("Other", 999, 0, "OTR", "DWA"),  # an abbreviation already taken
    ):
        with pytest.raises(ValueError, match="Duplicate dictionary row"):
            Dictionary(BASE_AVPS, [*BASE_COMMANDS, clash])
    # The same code in another application is another command.
    Dictionary(BASE_AVPS, [*BASE_COMMANDS, CommandDef("Other", 257, APP_CX, "OTR", "OTA")])


def test_lookups() -> None:
    row = BASE["Session-Id"]
    assert row == AvpDef("Session-Id", 263, T.UTF8_STRING)
    assert row.key == (263, 0)
    assert BASE.lookup(263) is row
    assert BASE.lookup(263, VENDOR_3GPP) is None
    assert BASE.lookup(9999) is None
    assert BASE.definition(Avp.make(263, b"x")) is row
    assert BASE.definition(Avp.make(263, b"x", vendor_id=VENDOR_3GPP)) is None
    assert EXTENDED.definition(Avp.make(601, b"x", vendor_id=VENDOR_3GPP)) is PUBLIC_IDENTITY
    assert "Session-Id" in BASE
    assert "Public-Identity" not in BASE
    assert list(BASE) == list(BASE_AVPS)


def test_commands() -> None:
    cer = BASE.command("CER")
    assert cer is BASE.command("CEA") is BASE.command("Capabilities-Exchange")
    assert (cer.code, cer.application_id, cer.proxiable) == (257, 0, False)
    assert BASE.command_for(257, 0) is cer
    assert BASE.command_for(271, 3) is BASE.command("ACR")
    assert BASE.command_for(271, 0) is None
    with pytest.raises(KeyError, match="No command named 'UAR'"):
        BASE.command("UAR")


def test_unknown_name_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError, match="No AVP named 'Nope' in the dictionary"):
        BASE["Nope"]
    with pytest.raises(KeyError, match="No AVP named 'Nope'"):
        BASE.avp("Nope", 1)
    with pytest.raises(KeyError, match="No AVP named 'Nope'"):
        BASE.get(Message(1, 0), "Experimental-Result", "Nope")
    with pytest.raises(KeyError, match=r"No dictionary row for AVP \(601, 10415\)"):
        BASE.value(Avp.make(601, b"x", vendor_id=VENDOR_3GPP))


def test_avp_takes_its_flags_from_the_row() -> None:
    assert bytes(BASE.avp("Origin-Host", "hs.example.com")) == bytes(
        Avp(264, b"hs.example.com", AVP_FLAG_MANDATORY)
    )
    product = BASE.avp("Product-Name", "clearwater")  # M "MUST NOT" (RFC 6733 §4.5)
    assert (product.flags, product.vendor_id) == (0, 0)
    identity = EXTENDED.avp("Public-Identity", "sip:alice@example.com")
    assert identity.flags == AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY
    assert identity.key == (601, VENDOR_3GPP)
    assert bytes(identity)[:12] == bytes.fromhex("00000259 c0000021 000028af")
    feature = EXTENDED.avp("Feature-List", 1)
    assert (feature.flags, feature.vendor_id) == (AVP_FLAG_VENDOR, VENDOR_3GPP)
    assert EXTENDED.value(identity) == "sip:alice@example.com"


def test_base_builds_the_hand_checked_cer() -> None:
    cer = Message(
        257,
        0,
        (
            BASE.avp("Origin-Host", "peer.example.com"),
            BASE.avp("Origin-Realm", "example.com"),
            BASE.avp("Host-IP-Address", "127.0.0.1"),
            BASE.avp("Vendor-Id", VENDOR_3GPP),
            BASE.avp("Product-Name", "clearwater"),
            BASE.group(
                "Vendor-Specific-Application-Id",
                BASE.avp("Vendor-Id", VENDOR_3GPP),
                BASE.avp("Auth-Application-Id", APP_CX),
            ),
        ),
        flags=FLAG_REQUEST,
        hop_by_hop=0x12345678,
        end_to_end=0x9ABCDEF0,
    )
    assert bytes(cer) == CER
    parsed = parse_message(CER)
    assert BASE.get(parsed, "Host-IP-Address") == "127.0.0.1"
    assert BASE.get(parsed, "Product-Name") == "clearwater"
    assert BASE.get(parsed, "Vendor-Specific-Application-Id", "Auth-Application-Id") == APP_CX


def answer() -> Message:
    """A CEA-like answer with an Experimental-Result, two Vendor-Specific-Application-Ids and
    an AVP of code 298 under another vendor (not Experimental-Result-Code)."""
    vendor = BASE.avp("Vendor-Id", VENDOR_3GPP)
    return Message(
        300,
        APP_CX,
        (
            BASE.avp("Session-Id", "hs;1"),
            BASE.group(
                "Experimental-Result",
                vendor,
                Avp.make(298, bytes.fromhex("000007d1"), vendor_id=VENDOR_3GPP),
                BASE.avp("Experimental-Result-Code", 2001),
            ),
            BASE.group(
                "Vendor-Specific-Application-Id", vendor, BASE.avp("Auth-Application-Id", APP_CX)
            ),
            BASE.avp("Origin-Host", "hss.example.com"),
            BASE.group(
                "Vendor-Specific-Application-Id",
                BASE.avp("Vendor-Id", 5535),
                BASE.avp("Acct-Application-Id", 3),
                BASE.avp("Vendor-Id", 13019),
            ),
        ),
        flags=0,
    )


def test_find_and_get_along_grouped_paths() -> None:
    message = parse_message(bytes(answer()))
    assert BASE.get(message, "Experimental-Result", "Experimental-Result-Code") == 2001
    assert BASE.get(message, "Experimental-Result", "Vendor-Id") == VENDOR_3GPP
    found = BASE.find(message, "Experimental-Result", "Experimental-Result-Code")
    assert found == BASE.avp("Experimental-Result-Code", 2001)
    assert BASE.find_all(message, "Experimental-Result", "Experimental-Result-Code") == [found]
    assert BASE.get(message, "Session-Id") == "hs;1"
    assert BASE.get(message, "Origin-Host") == "hss.example.com"
    # Two groups: every member along the path, in order.
    assert BASE.get_all(message, "Vendor-Specific-Application-Id", "Vendor-Id") == [
        VENDOR_3GPP,
        5535,
        13019,
    ]
    assert BASE.get_all(message, "Vendor-Specific-Application-Id", "Auth-Application-Id") == [
        APP_CX
    ]
    assert BASE.get(message, "Vendor-Specific-Application-Id", "Acct-Application-Id") == 3
    assert len(BASE.find_all(message, "Vendor-Specific-Application-Id")) == 2
    # A sequence of AVPs works as well as a message.
    group = BASE.find(message, "Experimental-Result")
    assert group is not None
    assert BASE.get(group.avps(), "Experimental-Result-Code") == 2001
    assert BASE.get(list(message.avps), "Session-Id") == "hs;1"


def test_absent_paths() -> None:
    message = answer()
    assert BASE.find(message, "Result-Code") is None
    assert BASE.get(message, "Result-Code") is None
    assert BASE.get_all(message, "Result-Code") == []
    assert BASE.get(message, "Proxy-Info", "Proxy-Host") is None
    assert BASE.get(message, "Experimental-Result", "Result-Code") is None
    assert BASE.get_all(message, "Failed-AVP", "Vendor-Id") == []
    assert BASE.find(Message(1, 0), "Session-Id") is None


def test_bad_paths() -> None:
    message = answer()
    with pytest.raises(ValueError, match="at least one"):
        BASE.find_all(message)
    with pytest.raises(ValueError, match="Session-Id in an AVP path is not Grouped"):
        BASE.get(message, "Session-Id", "User-Name")


def test_get_raises_decode_errors_of_what_it_reads() -> None:
    bad = Message(1, 0, (Avp.make(268, b"\x00\x00\x07"), Avp.make(297, b"\x00\x00\x01\x0a")))
    with pytest.raises(DiameterDecodeError) as info:
        BASE.get(bad, "Result-Code")
    assert info.value.result_code == 5014
    assert info.value.failed_avp == bad.avps[0]
    with pytest.raises(DiameterDecodeError) as info:
        BASE.get(bad, "Experimental-Result", "Experimental-Result-Code")
    assert info.value.result_code == 5014


# -- the base rows against RFC 6733 §4.5 -----------------------------------------------------------

# RFC 6733 §4.5, transcribed: name, code, type, and whether the M flag is "MUST" (True) or
# "MUST NOT" (False). V is "MUST NOT" for all of them.
RFC6733_TABLE: list[tuple[str, int, AvpType, bool]] = [
    ("Acct-Interim-Interval", 85, T.UNSIGNED32, True),
    ("Accounting-Realtime-Required", 483, T.ENUMERATED, True),
    ("Acct-Multi-Session-Id", 50, T.UTF8_STRING, True),
    ("Accounting-Record-Number", 485, T.UNSIGNED32, True),
    ("Accounting-Record-Type", 480, T.ENUMERATED, True),
    ("Acct-Session-Id", 44, T.OCTET_STRING, True),
    ("Accounting-Sub-Session-Id", 287, T.UNSIGNED64, True),
    ("Acct-Application-Id", 259, T.UNSIGNED32, True),
    ("Auth-Application-Id", 258, T.UNSIGNED32, True),
    ("Auth-Request-Type", 274, T.ENUMERATED, True),
    ("Authorization-Lifetime", 291, T.UNSIGNED32, True),
    ("Auth-Grace-Period", 276, T.UNSIGNED32, True),
    ("Auth-Session-State", 277, T.ENUMERATED, True),
    ("Re-Auth-Request-Type", 285, T.ENUMERATED, True),
    ("Class", 25, T.OCTET_STRING, True),
    ("Destination-Host", 293, T.DIAMETER_IDENTITY, True),
    ("Destination-Realm", 283, T.DIAMETER_IDENTITY, True),
    ("Disconnect-Cause", 273, T.ENUMERATED, True),
    ("Error-Message", 281, T.UTF8_STRING, False),
    ("Error-Reporting-Host", 294, T.DIAMETER_IDENTITY, False),
    ("Event-Timestamp", 55, T.TIME, True),
    ("Experimental-Result", 297, T.GROUPED, True),
    ("Experimental-Result-Code", 298, T.UNSIGNED32, True),
    ("Failed-AVP", 279, T.GROUPED, True),
    ("Firmware-Revision", 267, T.UNSIGNED32, False),
    ("Host-IP-Address", 257, T.ADDRESS, True),
    ("Inband-Security-Id", 299, T.UNSIGNED32, True),
    ("Multi-Round-Time-Out", 272, T.UNSIGNED32, True),
    ("Origin-Host", 264, T.DIAMETER_IDENTITY, True),
    ("Origin-Realm", 296, T.DIAMETER_IDENTITY, True),
    ("Origin-State-Id", 278, T.UNSIGNED32, True),
    ("Product-Name", 269, T.UTF8_STRING, False),
    ("Proxy-Host", 280, T.DIAMETER_IDENTITY, True),
    ("Proxy-Info", 284, T.GROUPED, True),
    ("Proxy-State", 33, T.OCTET_STRING, True),
    ("Redirect-Host", 292, T.DIAMETER_URI, True),
    ("Redirect-Host-Usage", 261, T.ENUMERATED, True),
    ("Redirect-Max-Cache-Time", 262, T.UNSIGNED32, True),
    ("Result-Code", 268, T.UNSIGNED32, True),
    ("Route-Record", 282, T.DIAMETER_IDENTITY, True),
    ("Session-Id", 263, T.UTF8_STRING, True),
    ("Session-Timeout", 27, T.UNSIGNED32, True),
    ("Session-Binding", 270, T.UNSIGNED32, True),
    ("Session-Server-Failover", 271, T.ENUMERATED, True),
    ("Supported-Vendor-Id", 265, T.UNSIGNED32, True),
    ("Termination-Cause", 295, T.ENUMERATED, True),
    ("User-Name", 1, T.UTF8_STRING, True),
    ("Vendor-Id", 266, T.UNSIGNED32, True),
    ("Vendor-Specific-Application-Id", 260, T.GROUPED, True),
]
# The rows BASE_AVPS has beyond RFC 6733: RFC 5090's digest attributes as RFC 4740 §9.5.6
# imports them for TS 29.229's SIP-Digest-Authenticate.
DIGEST_ROWS = {"Digest-Realm", "Digest-QoP", "Digest-Algorithm", "Digest-HA1"}


def test_base_rows_are_rfc_6733_section_4_5() -> None:
    ours = {row.name: row for row in BASE_AVPS if row.name not in DIGEST_ROWS}
    assert len(ours) == len(RFC6733_TABLE)
    for name, code, kind, mandatory in RFC6733_TABLE:
        assert ours[name] == AvpDef(name, code, kind, 0, mandatory), name


def test_digest_rows() -> None:
    rows = {row.name: row for row in BASE_AVPS if row.name in DIGEST_ROWS}
    assert rows == {
        "Digest-Realm": AvpDef("Digest-Realm", 104, T.UTF8_STRING),
        "Digest-QoP": AvpDef("Digest-QoP", 110, T.UTF8_STRING),
        "Digest-Algorithm": AvpDef("Digest-Algorithm", 111, T.UTF8_STRING),
        "Digest-HA1": AvpDef("Digest-HA1", 121, T.UTF8_STRING),
    }


# -- the base rows against Wireshark's dictionary --------------------------------------------------

WIRESHARK = pathlib.Path("/usr/share/wireshark/diameter/dictionary.xml")

#: Wireshark's type names (its typedefns; VendorId and AppId derive from Unsigned32).
WIRESHARK_TYPES = {
    "OctetString": T.OCTET_STRING,
    "UTF8String": T.UTF8_STRING,
    "DiameterIdentity": T.DIAMETER_IDENTITY,
    "DiameterURI": T.DIAMETER_URI,
    "IPFilterRule": T.IP_FILTER_RULE,
    "IPAddress": T.ADDRESS,
    "Address": T.ADDRESS,
    "Integer32": T.INTEGER32,
    "Integer64": T.INTEGER64,
    "Unsigned32": T.UNSIGNED32,
    "VendorId": T.UNSIGNED32,
    "AppId": T.UNSIGNED32,
    "Unsigned64": T.UNSIGNED64,
    "Float32": T.FLOAT32,
    "Float64": T.FLOAT64,
    "Enumerated": T.ENUMERATED,
    "Time": T.TIME,
    "Grouped": T.GROUPED,
}

#: Where Wireshark and our rows differ and RFC 6733 is with us: (name, field) -> why.
WIRESHARK_DIFFERENCES = {
    ("Acct-Multi-Session-Id", "name"): "RFC 6733 §9.8.5 names it Acct-Multi-Session-Id",
    ("Result-Code", "type"): "Unsigned32 in RFC 6733 §7.1 (Wireshark: Enumerated, to name values)",
    ("Experimental-Result-Code", "type"): "Unsigned32 in RFC 6733 §7.7 (Wireshark: Enumerated)",
    (
        "Session-Binding",
        "type",
    ): "Unsigned32 (a bit mask) in RFC 6733 §8.17 (Wireshark: Enumerated)",
    ("Inband-Security-Id", "type"): "Unsigned32 in RFC 6733 §6.10 (Wireshark: Enumerated)",
    ("Authorization-Lifetime", "type"): "Unsigned32 in RFC 6733 §8.9 (Wireshark: Integer32)",
}


@attrs.frozen
class WiresharkAvp:
    name: str
    code: int
    vendor_id: int
    type: Optional[AvpType]
    type_name: str
    mandatory: str  # "must", "mustnot", "may" (Wireshark's default: "may")


@functools.cache
def wireshark_avps() -> dict[tuple[int, int], list[WiresharkAvp]]:
    """Every AVP of Wireshark's dictionary by (code, vendor id), its ``&name;`` includes
    (external entities, which ElementTree does not load) read in place."""
    folder = WIRESHARK.parent
    text = WIRESHARK.read_text(encoding="utf-8")
    entities = dict(re.findall(r'<!ENTITY\s+(\w+)\s+SYSTEM\s+"([^"]+)"\s*>', text))
    text = re.sub(r"<!DOCTYPE.*?\]>", "", text, count=1, flags=re.S)

    def include(match: re.Match[str]) -> str:
        path = folder / entities[match.group(1)]
        if not path.exists():
            return ""
        return re.sub(r"<\?xml[^>]*\?>", "", path.read_text(encoding="utf-8"))

    names = "|".join(map(re.escape, entities))
    text = re.sub(rf"&({names});", include, text) if entities else text
    root = ET.fromstring(text)
    vendors = {
        vendor.get("vendor-id"): int(vendor.get("code", "0")) for vendor in root.iter("vendor")
    }
    out: dict[tuple[int, int], list[WiresharkAvp]] = {}
    for avp in root.iter("avp"):
        vendor_id = vendors.get(avp.get("vendor-id", "None"), -1)
        typed = avp.find("type")
        if avp.find("grouped") is not None:
            type_name = "Grouped"
        elif typed is not None:
            type_name = typed.get("type-name", "")
        else:
            type_name = ""
        row = WiresharkAvp(
            avp.get("name", ""),
            int(avp.get("code", "-1")),
            vendor_id,
            WIRESHARK_TYPES.get(type_name),
            type_name,
            avp.get("mandatory", "may"),
        )
        out.setdefault((row.code, row.vendor_id), []).append(row)
    return out


def differences(row: AvpDef, theirs: WiresharkAvp) -> dict[str, str]:
    found: dict[str, str] = {}
    if row.name.lower() != theirs.name.lower():
        found["name"] = f"{row.name} vs {theirs.name}"
    if theirs.type is None:
        found["type"] = f"unknown Wireshark type {theirs.type_name!r}"
    elif row.type is not theirs.type:
        found["type"] = f"{row.type.value} vs {theirs.type_name}"
    if theirs.mandatory not in ("may", "must" if row.mandatory else "mustnot"):
        found["mandatory"] = f"{row.mandatory} vs {theirs.mandatory}"
    return found


@pytest.mark.skipif(not WIRESHARK.exists(), reason=f"no Wireshark dictionary at {WIRESHARK}")
def test_base_rows_agree_with_wireshark() -> None:
    avps = wireshark_avps()
    assert len(avps) > 1000  # the includes (TGPP.xml, ...) were read
    assert (1, VENDOR_3GPP) in avps  # TGPP.xml: 3GPP-IMSI
    problems = []
    for row in BASE_AVPS:
        candidates = avps.get(row.key)
        if not candidates:
            problems.append(f"{row.name}: not in Wireshark's dictionary")
            continue
        (theirs,) = candidates
        for field, text in differences(row, theirs).items():
            if (row.name, field) not in WIRESHARK_DIFFERENCES:
                problems.append(f"{row.name} {field}: {text}")
    assert problems == []


@pytest.mark.skipif(not WIRESHARK.exists(), reason=f"no Wireshark dictionary at {WIRESHARK}")
def test_known_wireshark_differences_are_real() -> None:
    # Each excuse above names a difference that exists: a stale one would hide a real check.
    avps = wireshark_avps()
    rows = {row.name: row for row in BASE_AVPS}
    for name, field in WIRESHARK_DIFFERENCES:
        (theirs,) = avps[rows[name].key]
        assert field in differences(rows[name], theirs), (name, field)


def test_wireshark_comparison_catches_a_wrong_row() -> None:
    theirs = WiresharkAvp("Product-Name", 269, 0, T.UTF8_STRING, "UTF8String", "mustnot")
    assert differences(BASE["Product-Name"], theirs) == {}
    wrong = AvpDef("Product-Name", 269, T.OCTET_STRING, mandatory=True)
    assert differences(wrong, theirs) == {
        "type": "OctetString vs UTF8String",
        "mandatory": "True vs mustnot",
    }
    may = attrs.evolve(theirs, mandatory="may")
    assert differences(wrong, may) == {"type": "OctetString vs UTF8String"}
