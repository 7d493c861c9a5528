"""Tests for :class:`clearwater.sip.auth.AkaClient`: the UE side of Digest AKA (RFC 3310
AKAv1-MD5, RFC 4169 AKAv2-MD5, TS 33.102 §6.3.3 and Annex C.2).

Known answers come from TS 35.208 test set 1 (RES a54211d5e3ba50bf, AUTN
55f328b43577b9b94a9ffac354dfafb3, the AKAv2 password shzt3q8CWaZnCAWqs3WmEQ==, AUTS's concealed
SQN_MS ba853f3c123c; see tests/unit/aka/test_vectors.py). Expected responses are worked out
here with :mod:`hashlib` from RFC 2617 §3.2.2 and RFC 3310 §3.3 / §3.4, not with the client's
code. The other challenges are made by :func:`clearwater.aka.generate` or by the HSS-less
homestead, which also takes the ``auts`` answer back as ``resync-auth``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Optional

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from clearwater.aka import (
    AuthVector,
    MacFailureError,
    akav2_password,
    generate,
    next_sqn,
    parse_auts,
    split_challenge,
)
from clearwater.homestead.hssless import AkaAv, AvScheme, HsslessHomestead
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.sip import Challenge, Credentials, Request, Response, parse_message
from clearwater.sip import headers as h
from clearwater.sip.auth import AKA_SQN_DELTA, AkaClient, DigestClient, make_challenge
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import AkaCredentials

# TS 35.208 test set 1.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
SQN1 = 0xFF9BB4D0B607
AMF1 = bytes.fromhex("b9b9")
AUTN1 = bytes.fromhex("55f328b43577b9b94a9ffac354dfafb3")
RES1 = bytes.fromhex("a54211d5e3ba50bf")
CK1 = bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cb")
IK1 = bytes.fromhex("f769bcd751044604127672711c6d3441")
AKAV2_PASSWORD1 = b"shzt3q8CWaZnCAWqs3WmEQ=="
NONCE1 = base64.b64encode(RAND + AUTN1).decode()

USER = "ue@example.com"
REALM = "example.com"
URI = "sip:example.com"
AMF = b"\x80\x00"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def expected_response(
    password: bytes, nonce: str, nc: str = "00000001", cnonce: str = "c0ffee"
) -> str:
    """RFC 2617 §3.2.2 with qop=auth, the password as octets (RFC 3310 §3.3)."""
    ha1 = md5(USER.encode() + b":" + REALM.encode() + b":" + password)
    ha2 = md5(b"REGISTER:" + URI.encode())
    return md5(":".join((ha1, nonce, nc, cnonce, "auth", ha2)).encode())


def aka_challenge(
    nonce: str, algorithm: str = "AKAv1-MD5", realm: str = REALM, qop: Optional[str] = "auth"
) -> Challenge:
    """What the S-CSCF sends: an MD5 Digest challenge with the AKA algorithm, ck and ik."""
    md5_challenge = make_challenge(realm, nonce, qop=qop, opaque="0123abcd")
    params = tuple(
        (name, algorithm) if name == "algorithm" else (name, value)
        for name, value in md5_challenge.params
    )
    return Challenge("Digest", (*params, ("ck", '"00"'), ("ik", '"11"')))


def client(sqn: int = 0, **kwargs: Any) -> AkaClient:
    return AkaClient(USER, K, OPC, sqn=sqn, cnonce_factory=lambda: "c0ffee", **kwargs)


def vector(sqn: int, rand: bytes = RAND, k: bytes = K) -> AuthVector:
    return generate(k, OPC, sqn, AMF, rand)


def answer(aka: AkaClient, challenge: Challenge) -> Credentials:
    return aka.authorize(challenge, "REGISTER", URI)


def register() -> Request:
    message = parse_message(
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKaka1\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: <sip:ue@example.com>\r\n"
        b"From: <sip:ue@example.com>;tag=1\r\n"
        b"Call-ID: aka-1\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b"Contact: <sip:ue@10.0.0.5:5060>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(message, Request)
    return message


def unauthorized(*challenges: object, status: int = 401) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return Response(status, "Unauthorized", [(name, str(c)) for c in challenges])


def result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


# --------------------------------------------------------------------------- known answers


def test_akav1_answer_is_digest_over_the_res_octets() -> None:
    aka = client(sqn=SQN1 - 32)  # same IND (7), SEQ one lower: SQN1 is fresh
    credentials = answer(aka, aka_challenge(NONCE1))
    assert str(credentials) == (
        f'Digest username="{USER}", realm="{REALM}", nonce="{NONCE1}", uri="{URI}", qop=auth,'
        f' nc=00000001, cnonce="c0ffee", response="{expected_response(RES1, NONCE1)}",'
        ' algorithm=AKAv1-MD5, opaque="0123abcd"'
    )
    assert aka.sqn == SQN1
    assert (aka.ck, aka.ik) == (CK1, IK1)


def test_akav2_answer_uses_the_rfc_4169_password() -> None:
    aka = client(sqn=SQN1 - 32)
    credentials = answer(aka, aka_challenge(NONCE1, "AKAv2-MD5"))
    assert credentials.response == expected_response(AKAV2_PASSWORD1, NONCE1)
    assert credentials.algorithm == "AKAv2-MD5"
    assert credentials.auts is None
    # Not the AKAv1 answer: the password really is a different one.
    assert credentials.response != expected_response(RES1, NONCE1)


def test_stale_sqn_is_answered_with_auts_and_an_empty_password() -> None:
    aka = client(sqn=SQN1)  # SQN1 already seen
    credentials = answer(aka, aka_challenge(NONCE1))
    assert credentials.auts is not None
    auts = base64.b64decode(credentials.auts, validate=True)
    assert auts[:6] == bytes.fromhex("ba853f3c123c")  # SQN_MS ⊕ f5*(RAND), TS 35.208 set 1
    assert parse_auts(K, OPC, RAND, auts) == SQN1
    assert credentials.response == expected_response(b"", NONCE1)
    assert aka.sqn == SQN1 and aka.ck is None
    # auts comes last (RFC 3310 §3.4's example), quoted.
    assert str(credentials).endswith(', opaque="0123abcd", auts="' + credentials.auts + '"')


# --------------------------------------------------------------------------- SQN (Annex C.2)


def test_each_fresh_sqn_is_accepted_and_a_replay_is_not() -> None:
    aka = client()
    first = vector(32)
    assert answer(aka, aka_challenge(first.challenge)).auts is None
    assert aka.sqn == 32
    again = vector(32, rand=bytes(16))  # the same SQN with another RAND: a replay
    assert answer(aka, aka_challenge(again.challenge)).auts is not None
    assert answer(aka, aka_challenge(vector(64, rand=bytes(16)).challenge)).auts is None
    assert aka.sqn == 64


def test_sqns_with_another_ind_may_come_out_of_order() -> None:
    aka = client()
    seq6_ind0, seq5_ind1 = (6 << 5) | 0, (5 << 5) | 1
    assert answer(aka, aka_challenge(vector(seq6_ind0).challenge)).auts is None
    assert answer(aka, aka_challenge(vector(seq5_ind1, bytes(16)).challenge)).auts is None
    assert aka.sqn == seq6_ind0  # the highest SEQ accepted
    # Each IND slot remembers its own SEQ: SEQ 5 again in slot 1 is a replay.
    replay = vector(seq5_ind1, rand=b"\x01" * 16)
    credentials = answer(aka, aka_challenge(replay.challenge))
    assert credentials.auts is not None
    assert parse_auts(K, OPC, b"\x01" * 16, base64.b64decode(credentials.auts)) == seq6_ind0


def test_a_jump_beyond_delta_is_refused() -> None:
    aka = client(delta=10)
    too_far = vector(11 << 5)  # SEQ 11 > 0 + 10
    assert answer(aka, aka_challenge(too_far.challenge)).auts is not None
    assert aka.sqn == 0
    assert answer(aka, aka_challenge(vector(10 << 5, bytes(16)).challenge)).auts is None
    assert AKA_SQN_DELTA == 1 << 28


def test_a_nonce_answered_once_keeps_its_password() -> None:
    aka = client()
    challenge = aka_challenge(vector(32).challenge)
    first = answer(aka, challenge)
    second = answer(aka, challenge)  # later request, same nonce: no new SQN check
    assert (first.nc, second.nc) == ("00000001", "00000002")
    assert second.auts is None
    assert second.response == expected_response(
        vector(32).xres, challenge.nonce or "", nc="00000002"
    )


# --------------------------------------------------------------------------- refusals


def test_mac_failure_is_refused() -> None:
    aka = client()
    forged = vector(32, k=bytes(16))  # made with another key
    with pytest.raises(MacFailureError):
        answer(aka, aka_challenge(forged.challenge))
    assert aka.sqn == 0 and aka.ck is None
    request = register()
    assert not aka.authorize_request(request, unauthorized(aka_challenge(forged.challenge)))
    assert "Authorization" not in request.headers


def test_only_aka_challenges_are_answered() -> None:
    aka = client()
    nonce = vector(32).challenge
    assert not aka.can_answer(make_challenge(REALM, nonce))  # plain MD5
    assert not aka.can_answer(aka_challenge("bm90IGVub3VnaA=="))  # too short
    assert not aka.can_answer(aka_challenge("not base64!"))
    assert not aka.can_answer(aka_challenge(nonce, qop="auth-conf"))
    assert not aka.can_answer(Challenge("Basic", (("realm", '"x"'),)))
    assert aka.can_answer(aka_challenge(nonce, qop=None))
    restricted = client(realm="other.net")
    assert not restricted.can_answer(aka_challenge(nonce))
    with pytest.raises(ValueError, match="not an AKA challenge"):
        answer(aka, make_challenge(REALM, nonce))
    # And DigestClient still does not take AKA challenges.
    assert not DigestClient(USER, "secret").can_answer(aka_challenge(nonce))


def test_akav2_is_preferred_when_both_are_offered() -> None:
    aka = client()
    v1 = aka_challenge(vector(32).challenge)
    v2 = aka_challenge(vector(64, bytes(16)).challenge, "AKAv2-MD5")
    md5_challenge = make_challenge(REALM, "abc")
    assert aka.choose_challenge([md5_challenge, v1, v2]) is v2
    assert aka.choose_challenge([v1, md5_challenge]) is v1
    v1_again = aka_challenge(vector(96, b"\x02" * 16).challenge)
    assert aka.choose_challenge([v1, v1_again]) is v1  # the first on a tie
    assert aka.choose_challenge([md5_challenge]) is None


def test_no_qop_gives_the_rfc_2069_form() -> None:
    aka = client()
    v = vector(32)
    credentials = answer(aka, aka_challenge(v.challenge, qop=None))
    ha1 = md5(USER.encode() + b":" + REALM.encode() + b":" + v.xres)
    ha2 = md5(b"REGISTER:" + URI.encode())
    assert credentials.response == md5((ha1 + ":" + v.challenge + ":" + ha2).encode())
    assert credentials.nc is None and credentials.cnonce is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        AkaClient(USER, K[:15], OPC)
    with pytest.raises(ValueError):
        AkaClient(USER, K, OPC + b"\x00")
    with pytest.raises(ValueError):
        AkaClient(USER, K, OPC, sqn=1 << 48)
    with pytest.raises(ValueError):
        AkaClient(USER, K, OPC, delta=0)


# --------------------------------------------------------------------------- on requests


def test_authorize_request_replaces_the_initial_authorization() -> None:
    aka = client()
    request = register()
    initial = aka.initial_credentials(REALM, URI, "AKAv2-MD5")
    assert str(initial) == (
        f'Digest username="{USER}", realm="{REALM}", nonce="", uri="{URI}", response="",'
        " algorithm=AKAv2-MD5"
    )
    request.headers.set("Authorization", initial)
    v = vector(32)
    response = unauthorized(aka_challenge(v.challenge, "AKAv2-MD5"))
    assert aka.authorize_request(request, response)
    again = parse_message(request.to_bytes())
    [credentials] = again.headers.parsed(h.AUTHORIZATION)
    assert credentials.nonce == v.challenge and credentials.algorithm == "AKAv2-MD5"
    password = akav2_password(v.xres, v.ik, v.ck).encode()
    assert credentials.response == expected_response(password, v.challenge)
    # Answered once: the same challenge again means the answer was refused.
    assert not aka.authorize_request(request, response)


def test_authorize_request_answers_a_407() -> None:
    aka = client()
    request = register()
    v = vector(32)
    assert aka.authorize_request(request, unauthorized(aka_challenge(v.challenge), status=407))
    [credentials] = request.headers.parsed(h.PROXY_AUTHORIZATION)
    assert credentials.response == expected_response(v.xres, v.challenge)
    assert "Authorization" not in request.headers


def test_initial_credentials_refuse_a_non_aka_algorithm() -> None:
    with pytest.raises(ValueError):
        client().initial_credentials(REALM, URI, "MD5")
    assert client().initial_credentials(REALM, URI).algorithm is None


# --------------------------------------------------------------------------- with homestead


def homestead(sqn: int = 0) -> HsslessHomestead:
    store = MemorySubscriberStore()
    result(
        Deferred.fromCoroutine(
            provision_subscriber(
                store,
                USER,
                ["sip:" + USER],
                realm=REALM,
                aka=AkaCredentials(K, OPC, AMF, sqn),
            )
        )
    )
    return HsslessHomestead(store, scscf_uri="sip:scscf.example.com", home_domain=REALM)


def test_homestead_vectors_are_accepted_and_match_xres() -> None:
    hss = homestead()
    aka = client()
    for scheme, algorithm in ((AvScheme.AKA, "AKAv1-MD5"), (AvScheme.AKA2, "AKAv2-MD5")):
        av = result(hss.get_av(USER, scheme=scheme))
        assert isinstance(av, AkaAv)
        credentials = answer(aka, aka_challenge(av.challenge, algorithm))
        assert credentials.auts is None
        # What the S-CSCF stores and checks: XRES (AKAv1) or the AKAv2 password.
        xres = bytes.fromhex(av.response)
        if av.version == 2:
            password = akav2_password(
                xres, bytes.fromhex(av.integritykey), bytes.fromhex(av.cryptkey)
            ).encode()
        else:
            password = xres
        assert credentials.response == expected_response(password, av.challenge)
        assert (aka.ck, aka.ik) == (bytes.fromhex(av.cryptkey), bytes.fromhex(av.integritykey))
    assert aka.sqn == 64


def test_auts_resynchronises_homestead() -> None:
    hss = homestead()
    aka = client(sqn=5000 << 5)  # the USIM is ahead of the HSS
    av = result(hss.get_av(USER))
    credentials = answer(aka, aka_challenge(av.challenge))
    assert credentials.auts is not None
    # The S-CSCF's resync-auth: base64(RAND ‖ AUTS) (clearwater spec §3.2).
    rand, _ = split_challenge(av.challenge)
    resync = base64.b64encode(rand + base64.b64decode(credentials.auts)).decode()
    fresh = result(hss.get_av(USER, resync_auth=resync))
    credentials = answer(aka, aka_challenge(fresh.challenge))
    assert credentials.auts is None
    assert aka.sqn == next_sqn(5000 << 5)
    assert credentials.response == expected_response(bytes.fromhex(fresh.response), fresh.challenge)
