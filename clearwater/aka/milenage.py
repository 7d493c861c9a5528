"""MILENAGE: the 3GPP example authentication and key generation functions (TS 35.206).

Implements TS 35.206 §4.1: the derivation of OPc from OP and K, and the functions

* f1 (network authentication code MAC-A) and f1* (resynchronisation code MAC-S),
* f2 (response RES), f3 (cipher key CK), f4 (integrity key IK),
* f5 (anonymity key AK) and f5* (anonymity key AK used for re-synchronisation),

all built on the kernel E_K = AES-128 (Rijndael, 128-bit block and key) with the default
constants of TS 35.206 §4.1: rotations r1..r5 = 64, 0, 32, 64, 96 bits and offsets
c1..c5 = 0, 1, 2, 4, 8 (the 128-bit values with that number in the last bits). With
TEMP = E_K(RAND ⊕ OPc)::

    OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc     IN1 = SQN ‖ AMF ‖ SQN ‖ AMF
    OUTi = E_K(rot(TEMP ⊕ OPc, ri) ⊕ ci) ⊕ OPc            i = 2..5

    f1 = OUT1[0..63]   f1* = OUT1[64..127]
    f5 = OUT2[0..47]   f2  = OUT2[64..127]
    f3 = OUT3          f4  = OUT4          f5* = OUT5[0..47]

``rot(x, r)`` rotates x left (towards the most significant bit) by r bits. Conformance data:
TS 35.207 §4-§6 and TS 35.208 §4.3.

Sans-IO, pure functions over :class:`bytes`. Every input length is checked; a wrong one raises
:class:`ValueError` naming the argument. Nothing here keeps state or logs key material.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AK_LEN",
    "AMF_LEN",
    "CK_LEN",
    "IK_LEN",
    "KEY_LEN",
    "MAC_LEN",
    "OP_LEN",
    "RAND_LEN",
    "RES_LEN",
    "SQN_LEN",
    "f1",
    "f1_star",
    "f5_star",
    "f2345",
    "opc",
]

KEY_LEN = 16
"""Length of the subscriber key K, in bytes."""
OP_LEN = 16
"""Length of OP and of OPc, in bytes."""
RAND_LEN = 16
"""Length of the random challenge RAND, in bytes."""
SQN_LEN = 6
"""Length of the sequence number SQN, in bytes (48 bits)."""
AMF_LEN = 2
"""Length of the authentication management field AMF, in bytes."""
MAC_LEN = 8
"""Length of MAC-A (f1) and MAC-S (f1*), in bytes."""
RES_LEN = 8
"""Length of RES / XRES (f2), in bytes."""
CK_LEN = 16
"""Length of the cipher key CK (f3), in bytes."""
IK_LEN = 16
"""Length of the integrity key IK (f4), in bytes."""
AK_LEN = 6
"""Length of the anonymity keys AK (f5) and AK* (f5*), in bytes."""

_BLOCK = 16


def _const(value: int) -> bytes:
    return value.to_bytes(_BLOCK, "big")


# TS 35.206 §4.1 default constants: offsets c1..c5 and rotations r1..r5 (in bits).
_C1, _C2, _C3, _C4, _C5 = _const(0), _const(1), _const(2), _const(4), _const(8)
_R1, _R2, _R3, _R4, _R5 = 64, 0, 32, 64, 96


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _rot(x: bytes, bits: int) -> bytes:
    # All the TS 35.206 rotations are whole bytes.
    n = bits // 8
    return x[n:] + x[:n]


def _kernel(k: bytes) -> Callable[[bytes], bytes]:
    """E_K: AES-128 of one 16-byte block under K (ECB on a single block is the raw cipher)."""
    encryptor = Cipher(algorithms.AES(bytes(k)), modes.ECB()).encryptor()
    return encryptor.update


def _temp(e_k: Callable[[bytes], bytes], opc_: bytes, rand: bytes) -> bytes:
    return e_k(_xor(rand, opc_))


def _out(e_k: Callable[[bytes], bytes], opc_: bytes, temp: bytes, r: int, c: bytes) -> bytes:
    return _xor(e_k(_xor(_rot(_xor(temp, opc_), r), c)), opc_)


def opc(k: bytes, op: bytes) -> bytes:
    """OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1): the per-subscriber form of the operator variant."""
    _check("k", k, KEY_LEN)
    _check("op", op, OP_LEN)
    return _xor(op, _kernel(k)(bytes(op)))


def _out1(k: bytes, opc_: bytes, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
    _check("k", k, KEY_LEN)
    _check("opc", opc_, OP_LEN)
    _check("rand", rand, RAND_LEN)
    _check("sqn", sqn, SQN_LEN)
    _check("amf", amf, AMF_LEN)
    e_k = _kernel(k)
    temp = _temp(e_k, opc_, rand)
    in1 = bytes(sqn) + bytes(amf) + bytes(sqn) + bytes(amf)
    return _xor(e_k(_xor(_xor(temp, _rot(_xor(in1, opc_), _R1)), _C1)), opc_)


def f1(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
    """f1: the 8-byte network authentication code MAC-A (TS 35.206 §4.1, OUT1 bits 0-63)."""
    return _out1(k, opc, rand, sqn, amf)[:MAC_LEN]


def f1_star(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
    """f1*: the 8-byte resynchronisation authentication code MAC-S (OUT1 bits 64-127)."""
    return _out1(k, opc, rand, sqn, amf)[MAC_LEN:]


def f2345(k: bytes, opc: bytes, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """f2, f3, f4 and f5 in one pass (TS 35.206 §4.1): ``(res, ck, ik, ak)``.

    RES is 8 bytes (OUT2 bits 64-127), CK and IK 16 bytes (OUT3, OUT4), AK 6 bytes (OUT2 bits
    0-47).
    """
    _check("k", k, KEY_LEN)
    _check("opc", opc, OP_LEN)
    _check("rand", rand, RAND_LEN)
    e_k = _kernel(k)
    temp = _temp(e_k, opc, rand)
    out2 = _out(e_k, opc, temp, _R2, _C2)
    ck = _out(e_k, opc, temp, _R3, _C3)
    ik = _out(e_k, opc, temp, _R4, _C4)
    return out2[8:], ck, ik, out2[:AK_LEN]


def f5_star(k: bytes, opc: bytes, rand: bytes) -> bytes:
    """f5*: the 6-byte anonymity key AK* that conceals SQN_MS in AUTS (OUT5 bits 0-47)."""
    _check("k", k, KEY_LEN)
    _check("opc", opc, OP_LEN)
    _check("rand", rand, RAND_LEN)
    e_k = _kernel(k)
    return _out(e_k, opc, _temp(e_k, opc, rand), _R5, _C5)[:AK_LEN]
