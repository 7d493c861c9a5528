"""UMTS AKA authentication vectors for an HSS-less homestead, and the handset side for tests.

What this module implements:

* The authentication vector of TS 33.102 §6.3.2: RAND, XRES = f2, CK = f3, IK = f4 and
  AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A with MAC-A = f1(SQN ‖ RAND ‖ AMF) and AK = f5, all from
  MILENAGE (:mod:`clearwater.aka.milenage`). Homestead serves it as the ``{"aka": ...}`` JSON
  of ``GET /impi/<impi>/av`` (clearwater spec §3.2, §6.1), with ``version`` 1 (AKAv1-MD5,
  RFC 3310) or 2 (AKAv2-MD5, RFC 4169).
* SQN management, a simplified profile of TS 33.102 Annex C. SQN is 48 bits, SEQ ‖ IND with a
  5-bit IND (Annex C.1). This AuC keeps one SEQ counter per subscriber and always uses
  IND = 0, so :func:`next_sqn` moves to the next SEQ: add 32 and clear IND. A handset accepts
  that because SEQ only grows. SQN wraps to 0 after 2**48 - 32 (2**43 vectors, unreachable
  in practice). A handset then rejects it (Annex C.3 wrap-around protection) and the
  resynchronisation path below takes over.
* Re-synchronisation, TS 33.102 §6.3.3 and §6.3.5. A handset that finds the SQN out of range
  answers with AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, where AK* = f5*(RAND) and
  MAC-S = f1*(SQN_MS ‖ RAND ‖ AMF) with the dummy AMF 0x0000. The S-CSCF passes RAND ‖ AUTS
  to homestead as ``resync-auth``. :func:`parse_auts` checks MAC-S and returns SQN_MS, and the
  AuC continues from ``next_sqn(SQN_MS)``.
* The AKAv2 digest password of RFC 4169 §3 (:func:`akav2_password`).
* The handset side (:func:`ue_check`, :func:`make_auts`, :func:`split_challenge`), used by
  tests and test tools to emulate a phone.

Sans-IO and pure: the caller picks RAND (``secrets.token_bytes(16)``) and stores SQN.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Callable, Union

import attrs

from clearwater.aka.milenage import (
    AMF_LEN,
    CK_LEN,
    IK_LEN,
    MAC_LEN,
    RAND_LEN,
    SQN_LEN,
    f1,
    f1_star,
    f5_star,
    f2345,
)
from clearwater.errors import ClearwaterError

__all__ = [
    "AUTN_LEN",
    "AUTS_LEN",
    "IND_BITS",
    "RESYNC_AMF",
    "SQN_MAX",
    "AkaError",
    "AuthVector",
    "MacFailureError",
    "ResyncError",
    "akav2_password",
    "generate",
    "make_auts",
    "next_sqn",
    "parse_auts",
    "split_challenge",
    "split_resync_auth",
    "ue_check",
]

AUTN_LEN = SQN_LEN + AMF_LEN + MAC_LEN
"""Length of AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A, in bytes (16)."""
AUTS_LEN = SQN_LEN + MAC_LEN
"""Length of AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, in bytes (14)."""
SQN_MAX = (1 << (8 * SQN_LEN)) - 1
"""The largest 48-bit sequence number."""
IND_BITS = 5
"""Width of the IND part of SQN = SEQ ‖ IND (TS 33.102 Annex C.1)."""
RESYNC_AMF = b"\x00\x00"
"""The dummy AMF used for MAC-S in re-synchronisation (TS 33.102 §6.3.3)."""

_AKAV2_PASSWORD_LABEL = b"http-digest-akav2-password"
_XRES_MIN, _XRES_MAX = 4, 16  # TS 33.102 §6.3.2 allows 32-128 bits; MILENAGE f2 gives 64

JsonValue = Union[str, int]


class AkaError(ClearwaterError, ValueError):
    """Base class of the AKA failures raised on purpose by this module."""


class MacFailureError(AkaError):
    """The MAC-A in an AUTN does not verify (TS 33.102 §6.3.3 "MAC failure", handset side)."""


class ResyncError(AkaError):
    """An AUTS (or the ``resync-auth`` carrying it) is malformed or its MAC-S does not verify."""


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _sqn_bytes(name: str, sqn: int) -> bytes:
    if isinstance(sqn, bool) or not isinstance(sqn, int) or not 0 <= sqn <= SQN_MAX:
        raise ValueError(f"{name} must be an int in 0..2**48-1, got {sqn!r}")
    return sqn.to_bytes(SQN_LEN, "big")


def _check_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def _check_xres(name: str, value: bytes) -> None:
    if not _XRES_MIN <= len(value) <= _XRES_MAX:
        raise ValueError(f"{name} must be {_XRES_MIN}..{_XRES_MAX} bytes, got {len(value)}")


def _length(length: int) -> Callable[[object, attrs.Attribute[bytes], bytes], None]:
    def check(instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        _check_len(attribute.name, value, length)

    return check


def _xres_length(instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    _check_xres(attribute.name, value)


@attrs.frozen
class AuthVector:
    """One UMTS authentication vector (TS 33.102 §6.3.2): RAND, AUTN, XRES, CK and IK.

    XRES, CK and IK are secrets and are left out of ``repr()`` so they do not end up in logs.
    """

    rand: bytes = attrs.field(validator=_length(RAND_LEN))
    autn: bytes = attrs.field(validator=_length(AUTN_LEN))
    xres: bytes = attrs.field(validator=_xres_length, repr=False)
    ck: bytes = attrs.field(validator=_length(CK_LEN), repr=False)
    ik: bytes = attrs.field(validator=_length(IK_LEN), repr=False)

    @property
    def challenge(self) -> str:
        """The digest ``nonce``: base64 of RAND ‖ AUTN (RFC 3310 §3.2), standard alphabet."""
        return base64.b64encode(self.rand + self.autn).decode("ascii")

    def to_json(self, version: int) -> dict[str, dict[str, JsonValue]]:
        """Homestead's ``GET /impi/<impi>/av`` answer for this vector (clearwater spec §3.2).

        ``{"aka": {"challenge": <b64 RAND‖AUTN>, "response": <hex XRES>, "cryptkey": <hex CK>,
        "integritykey": <hex IK>, "version": 1|2}}``; hex is lower case. ``version`` is the
        digest AKA version, 1 for AKAv1-MD5 and 2 for AKAv2-MD5.
        """
        if isinstance(version, bool) or version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        return {
            "aka": {
                "challenge": self.challenge,
                "response": self.xres.hex(),
                "cryptkey": self.ck.hex(),
                "integritykey": self.ik.hex(),
                "version": version,
            }
        }


def generate(k: bytes, opc: bytes, sqn: int, amf: bytes, rand: bytes) -> AuthVector:
    """Build the authentication vector for ``sqn`` (TS 33.102 §6.3.2).

    AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A. ``sqn`` is the 48-bit SQN as an int. Raises
    :class:`ValueError` naming the argument for a bad length or an out-of-range SQN.
    """
    sqn_b = _sqn_bytes("sqn", sqn)
    mac_a = f1(k, opc, rand, sqn_b, amf)
    res, ck, ik, ak = f2345(k, opc, rand)
    autn = _xor(sqn_b, ak) + bytes(amf) + mac_a
    return AuthVector(rand=bytes(rand), autn=autn, xres=res, ck=ck, ik=ik)


def next_sqn(sqn: int) -> int:
    """The SQN to use after ``sqn``: the next SEQ with IND = 0 (TS 33.102 Annex C.1).

    That is ``((sqn >> 5) + 1) << 5`` modulo 2**48, so it stays within 48 bits. It wraps to 0
    only after 2**43 vectors (see the module docstring).
    """
    _sqn_bytes("sqn", sqn)
    return (((sqn >> IND_BITS) + 1) << IND_BITS) & SQN_MAX


def make_auts(k: bytes, opc: bytes, rand: bytes, sqn_ms: int) -> bytes:
    """The AUTS a handset sends on a synchronisation failure (TS 33.102 §6.3.3).

    AUTS = (SQN_MS ⊕ f5*(RAND)) ‖ f1*(SQN_MS ‖ RAND ‖ AMF=0x0000), 14 bytes.
    """
    sqn_b = _sqn_bytes("sqn_ms", sqn_ms)
    return _xor(sqn_b, f5_star(k, opc, rand)) + f1_star(k, opc, rand, sqn_b, RESYNC_AMF)


def parse_auts(k: bytes, opc: bytes, rand: bytes, auts: bytes) -> int:
    """Check an AUTS and return the handset's SQN_MS (TS 33.102 §6.3.5).

    Recovers SQN_MS with f5*, then recomputes MAC-S with f1* and the dummy AMF 0x0000.
    Raises :class:`ResyncError` if AUTS is not 14 bytes, RAND is not 16 bytes, or MAC-S does
    not match. A wrong K or OPc length is a local error and raises plain :class:`ValueError`.
    """
    if len(auts) != AUTS_LEN:
        raise ResyncError(f"AUTS must be {AUTS_LEN} bytes, got {len(auts)}")
    if len(rand) != RAND_LEN:
        raise ResyncError(f"RAND must be {RAND_LEN} bytes, got {len(rand)}")
    auts = bytes(auts)
    sqn_b = _xor(auts[:SQN_LEN], f5_star(k, opc, rand))
    mac_s = f1_star(k, opc, rand, sqn_b, RESYNC_AMF)
    if not hmac.compare_digest(mac_s, auts[SQN_LEN:]):
        raise ResyncError("AUTS MAC-S does not verify (wrong RAND, wrong keys or corrupted AUTS)")
    return int.from_bytes(sqn_b, "big")


def split_resync_auth(resync_auth: str) -> tuple[bytes, bytes]:
    """Split homestead's ``resync-auth`` parameter, base64(RAND ‖ AUTS), into (rand, auts).

    Sprout builds it from the first 16 bytes of the decoded nonce and the 14-byte AUTS
    (clearwater spec §3.2). Raises :class:`ResyncError` if it is not base64 of 30 bytes.
    """
    try:
        raw = base64.b64decode(resync_auth, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ResyncError("resync-auth is not valid base64") from e
    if len(raw) != RAND_LEN + AUTS_LEN:
        raise ResyncError(f"resync-auth must hold {RAND_LEN + AUTS_LEN} bytes, got {len(raw)}")
    return raw[:RAND_LEN], raw[RAND_LEN:]


def split_challenge(nonce: str) -> tuple[bytes, bytes]:
    """Split a digest AKA ``nonce`` into (rand, autn) (RFC 3310 §3.2: base64 of RAND ‖ AUTN ‖
    optional server data; the server data is ignored). Raises :class:`ValueError` if it is not
    base64 or is shorter than 32 bytes."""
    try:
        raw = base64.b64decode(nonce, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("nonce is not valid base64") from e
    if len(raw) < RAND_LEN + AUTN_LEN:
        raise ValueError(f"nonce must hold at least {RAND_LEN + AUTN_LEN} bytes, got {len(raw)}")
    return raw[:RAND_LEN], raw[RAND_LEN : RAND_LEN + AUTN_LEN]


def ue_check(k: bytes, opc: bytes, rand: bytes, autn: bytes) -> tuple[bytes, bytes, bytes, int]:
    """What a handset does with (RAND, AUTN) (TS 33.102 §6.3.3): ``(res, ck, ik, sqn)``.

    Un-conceals SQN with AK = f5, then verifies MAC-A = f1(SQN ‖ RAND ‖ AMF) with the AMF in
    AUTN. Raises :class:`MacFailureError` if MAC-A does not match, and :class:`ValueError` for
    a wrong length. The SQN freshness check belongs to the caller, which keeps SQN_MS. If SQN
    is stale, it answers with :func:`make_auts`.
    """
    _check_len("autn", autn, AUTN_LEN)
    autn = bytes(autn)
    res, ck, ik, ak = f2345(k, opc, rand)
    sqn_b = _xor(autn[:SQN_LEN], ak)
    amf = autn[SQN_LEN : SQN_LEN + AMF_LEN]
    xmac = f1(k, opc, rand, sqn_b, amf)
    if not hmac.compare_digest(xmac, autn[SQN_LEN + AMF_LEN :]):
        raise MacFailureError("AUTN MAC-A does not verify (wrong keys, RAND or AUTN)")
    return res, ck, ik, int.from_bytes(sqn_b, "big")


def akav2_password(xres: bytes, ik: bytes, ck: bytes) -> str:
    """The AKAv2-MD5 digest password: base64(HMAC-MD5(key = XRES ‖ IK ‖ CK,
    data = "http-digest-akav2-password")).

    RFC 4169 §3 writes it as base64 of PRF(RES ‖ IK ‖ CK, "http-digest-akav2-password"). PRF is
    HMAC with the digest's hash, so HMAC-MD5 for AKAv2-MD5, and its first argument is the HMAC
    key. The server uses XRES where the client uses RES. Clearwater spec §3.2 agrees: the key
    is unhex(XRES ‖ IK ‖ CK) and the data is the label. Sprout, pjsip and doubango also do it
    this way. Base64 is the standard alphabet with padding (24 characters). AKAv1-MD5
    (RFC 3310) uses XRES itself as the password.
    """
    _check_xres("xres", xres)
    _check_len("ik", ik, IK_LEN)
    _check_len("ck", ck, CK_LEN)
    key = bytes(xres) + bytes(ik) + bytes(ck)
    digest = hmac.new(key, _AKAV2_PASSWORD_LABEL, hashlib.md5).digest()
    return base64.b64encode(digest).decode("ascii")
