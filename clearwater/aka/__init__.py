"""3GPP AKA for clearwater: MILENAGE and authentication vectors for an HSS-less homestead.

* :mod:`clearwater.aka.milenage`: TS 35.206 f1, f1*, f2-f5, f5* and OPc.
* :mod:`clearwater.aka.vectors`: TS 33.102 §6.3 authentication vectors (AUTN, SQN handling,
  AUTS re-synchronisation), the homestead ``{"aka": ...}`` JSON of clearwater spec §3.2, the
  RFC 4169 AKAv2 password, and the handset side used to emulate a phone in tests.

Pure code: no Twisted, no I/O, no state.
"""

from __future__ import annotations

from clearwater.aka.milenage import f1, f1_star, f5_star, f2345, opc
from clearwater.aka.vectors import (
    AUTN_LEN,
    AUTS_LEN,
    RESYNC_AMF,
    SQN_MAX,
    AkaError,
    AuthVector,
    MacFailureError,
    ResyncError,
    akav2_password,
    generate,
    make_auts,
    next_sqn,
    parse_auts,
    split_challenge,
    split_resync_auth,
    ue_check,
)

__all__ = [
    "AUTN_LEN",
    "AUTS_LEN",
    "RESYNC_AMF",
    "SQN_MAX",
    "AkaError",
    "AuthVector",
    "MacFailureError",
    "ResyncError",
    "akav2_password",
    "f1",
    "f1_star",
    "f5_star",
    "f2345",
    "generate",
    "make_auts",
    "next_sqn",
    "opc",
    "parse_auts",
    "split_challenge",
    "split_resync_auth",
    "ue_check",
]
