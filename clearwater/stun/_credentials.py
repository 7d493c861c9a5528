"""STUN credential keys (RFC 8489 §9) and SASLprep (RFC 4013).

- Short-term credentials (RFC 8489 §9.1.1): the HMAC key is the prepared password.
- Long-term credentials (RFC 8489 §9.2.2): the key is
  ``MD5(username ":" realm ":" password)``, or SHA-256 of the same string when the
  PASSWORD-ALGORITHM is SHA-256 (RFC 8489 §18.5.1).
- USERHASH (RFC 8489 §14.4): ``SHA-256(username ":" realm)``.

Passwords are prepared with SASLprep (RFC 4013), as RFC 5389 §15.4 specified and as the RFC 5769
§2.4 vector needs. RFC 8489 moved to the PRECIS OpaqueString profile (RFC 8265); the two agree on
the passwords people use (printable ASCII is unchanged by both). Usernames and realms are used as
given, as deployed servers (coturn, restund) do.

:func:`saslprep` is RFC 4013 §2 on top of the stdlib ``stringprep`` tables (RFC 3454, Unicode
3.2): map (§2.1: non-ASCII spaces to SPACE, B.1 to nothing), normalise with NFKC (§2.2), refuse
prohibited output (§2.3: C.1.2, C.2.1, C.2.2, C.3-C.9), check bidirectional text (§2.4, RFC 3454
§6) and, for stored strings, refuse unassigned code points (§2.5, RFC 3454 §7).
"""

from __future__ import annotations

import enum
import hashlib
import stringprep
import unicodedata
from typing import Callable

__all__ = [
    "PasswordAlgorithm",
    "long_term_key",
    "saslprep",
    "short_term_key",
    "userhash",
]


class PasswordAlgorithm(enum.IntEnum):
    """Algorithm numbers of PASSWORD-ALGORITHM(S) (RFC 8489 §18.5)."""

    MD5 = 0x0001
    SHA256 = 0x0002


_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare ``text`` with the SASLprep profile of stringprep (RFC 4013).

    :param allow_unassigned: ``True`` for a "query" (RFC 3454 §7), which may hold code points
        unassigned in Unicode 3.2; ``False`` for a "stored string", which may not.
    :raises ValueError: if the result would hold a prohibited or (for stored strings) an
        unassigned code point, or breaks the bidirectional rule.
    """
    if text.isascii() and all(" " <= c <= "~" for c in text):
        return text  # printable ASCII maps to itself; the common case
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in prepared:
        if any(table(c) for table in _PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character U+{ord(c):04X}")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise ValueError(f"SASLprep: unassigned character U+{ord(c):04X}")
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise ValueError("SASLprep: mixed right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise ValueError("SASLprep: right-to-left text must start and end with one")
    return prepared


def short_term_key(password: str) -> bytes:
    """The short-term credential key (RFC 8489 §9.1.1): the SASLprep'd password in UTF-8.

    :raises ValueError: if SASLprep refuses the password.
    """
    return saslprep(password, allow_unassigned=True).encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: int = PasswordAlgorithm.MD5,
) -> bytes:
    """The long-term credential key (RFC 8489 §9.2.2): the MD5 (16 bytes) or SHA-256 (32
    bytes) digest of ``username ":" realm ":" SASLprep(password)`` in UTF-8.

    :raises ValueError: if SASLprep refuses the password, or for an unknown algorithm.
    """
    text = f"{username}:{realm}:{saslprep(password, allow_unassigned=True)}".encode()
    if algorithm == PasswordAlgorithm.MD5:
        return hashlib.md5(text).digest()
    if algorithm == PasswordAlgorithm.SHA256:
        return hashlib.sha256(text).digest()
    raise ValueError(f"unknown password algorithm {algorithm}")


def userhash(username: str, realm: str) -> bytes:
    """The USERHASH value (RFC 8489 §14.4): SHA-256 of ``username ":" realm`` in UTF-8."""
    return hashlib.sha256(f"{username}:{realm}".encode()).digest()
