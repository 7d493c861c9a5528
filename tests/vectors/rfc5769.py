"""The four STUN test vectors of RFC 5769 §2.1-§2.4, byte for byte.

Provenance: the hex dumps of RFC 5769 ("Test Vectors for Session Traversal Utilities for NAT
(STUN)", R. Denis-Courmont, April 2010), sections 2.1 to 2.4, copied 16 bytes a line as the RFC
prints them (the RFC's per-line comments are summarised in the comments here). The bytes were
cross-checked against the RFC's stated credentials: each MESSAGE-INTEGRITY verifies with the
given key and each FINGERPRINT with CRC-32, so a copying error would show.
"""

from __future__ import annotations

__all__ = [
    "IPV4_RESPONSE",
    "IPV6_RESPONSE",
    "LONG_TERM_NONCE",
    "LONG_TERM_PASSWORD",
    "LONG_TERM_PASSWORD_PREPARED",
    "LONG_TERM_REALM",
    "LONG_TERM_REQUEST",
    "LONG_TERM_TRANSACTION_ID",
    "LONG_TERM_USERNAME",
    "MAPPED_IPV4",
    "MAPPED_IPV6",
    "REQUEST",
    "REQUEST_SOFTWARE",
    "RESPONSE_SOFTWARE",
    "SHORT_TERM_PASSWORD",
    "SHORT_TERM_USERNAME",
    "TRANSACTION_ID",
    "VECTORS",
]

# §2.1-§2.3 share the transaction id and the short-term password.
TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
SHORT_TERM_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
SHORT_TERM_USERNAME = "evtj:h6vY"
REQUEST_SOFTWARE = "STUN test client"
RESPONSE_SOFTWARE = "test vector"
MAPPED_IPV4 = ("192.0.2.1", 32853)
MAPPED_IPV6 = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)

# §2.1 Sample Request: Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME (9
# bytes, padded with three 0x20 bytes, not zeros), MESSAGE-INTEGRITY and FINGERPRINT.
REQUEST = bytes.fromhex(
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"  # header
    "fa 87 df ae 80 22 00 10 53 54 55 4e 20 74 65 73"  # SOFTWARE "STUN test client"
    "74 20 63 6c 69 65 6e 74 00 24 00 04 6e 00 01 ff"  # PRIORITY 0x6e0001ff
    "80 29 00 08 93 2f f9 b1 51 26 3b 36 00 06 00 09"  # ICE-CONTROLLED, USERNAME
    "65 76 74 6a 3a 68 36 76 59 20 20 20 00 08 00 14"  # "evtj:h6vY" + 3 spaces, M-I
    "9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49"  # HMAC-SHA1
    "c1 b5 71 a2 80 28 00 04 e5 7a 3b cf"  # FINGERPRINT
)

# §2.2 Sample IPv4 Response: Binding success with SOFTWARE "test vector" (padded with one
# 0x20), XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY and FINGERPRINT.
IPV4_RESPONSE = bytes.fromhex(
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"  # header
    "fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63"  # SOFTWARE
    "74 6f 72 20 00 20 00 08 00 01 a1 47 e1 12 a6 43"  # XOR-MAPPED-ADDRESS
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9"  # MESSAGE-INTEGRITY
    "2a f9 ba 53 f0 6b e7 d7 80 28 00 04 c0 7d 4c 96"  # FINGERPRINT
)

# §2.3 Sample IPv6 Response: as §2.2 with XOR-MAPPED-ADDRESS
# [2001:db8:1234:5678:11:2233:4455:6677]:32853.
IPV6_RESPONSE = bytes.fromhex(
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"  # header
    "fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63"  # SOFTWARE
    "74 6f 72 20 00 20 00 14 00 02 a1 47 01 13 a9 fa"  # XOR-MAPPED-ADDRESS
    "a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9 00 08 00 14"  # address, MESSAGE-INTEGRITY
    "a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75"  # HMAC-SHA1
    "bf e3 ed 41 80 28 00 04 c8 fb 0b 4c"  # FINGERPRINT
)

# §2.4 Sample Request with Long-Term Authentication: USERNAME, NONCE, REALM and
# MESSAGE-INTEGRITY, no FINGERPRINT. The password is given before and after SASLprep.
LONG_TERM_TRANSACTION_ID = bytes.fromhex("78ad3433c6ad72c029da412e")
LONG_TERM_USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"  # "matorikkusu" in katakana
LONG_TERM_PASSWORD = "The\u00adM\u00aatrIX"  # with SOFT HYPHEN and FEMININE ORDINAL INDICATOR
LONG_TERM_PASSWORD_PREPARED = "TheMatrIX"
LONG_TERM_NONCE = "f//499k954d6OL34oL9FSTvy64sA"
LONG_TERM_REALM = "example.org"
LONG_TERM_REQUEST = bytes.fromhex(
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0"  # header
    "29 da 41 2e 00 06 00 12 e3 83 9e e3 83 88 e3 83"  # USERNAME (18 bytes)
    "aa e3 83 83 e3 82 af e3 82 b9 00 00 00 15 00 1c"  # 2 zero padding bytes, NONCE
    "66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34"
    "6f 4c 39 46 53 54 76 79 36 34 73 41 00 14 00 0b"  # REALM
    "65 78 61 6d 70 6c 65 2e 6f 72 67 00 00 08 00 14"  # "example.org" + 1 zero, M-I
    "f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2"  # HMAC-SHA1
    "8c a8 96 66"
)

#: Every vector, by RFC section.
VECTORS: dict[str, bytes] = {
    "2.1": REQUEST,
    "2.2": IPV4_RESPONSE,
    "2.3": IPV6_RESPONSE,
    "2.4": LONG_TERM_REQUEST,
}
