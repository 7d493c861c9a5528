"""Tests for :mod:`clearwater.sip.auth` (Digest: RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Golden values: RFC 2617 §3.5 (qop=auth, MD5), RFC 2069 §2.4 with the response corrected by
its erratum (1949323746fe6a43ef61f9606e7febea, no qop), RFC 7616 §3.9.1 (MD5 and SHA-256),
FIPS 180-4's SHA-512/256 "abc" example and RFC 7616 §3.9.2's SHA-512-256 inputs. The ``-sess``
and ``auth-int`` forms are checked against the formulas written out with :mod:`hashlib`.
Then the client (qop choice, nonce counts, challenge choice, 401 / 407 handling, wrong-password
detection), the server helpers, and a Hypothesis round trip through the wire form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.sip import Challenge, Credentials, Request, Response, parse_message
from clearwater.sip import headers as h
from clearwater.sip.auth import (
    SUPPORTED_ALGORITHMS,
    DigestClient,
    digest_algorithm,
    digest_ha1,
    digest_response,
    make_challenge,
    verify_digest,
)

needs_sha512_256 = pytest.mark.skipif(
    "SHA-512-256" not in SUPPORTED_ALGORITHMS, reason="this OpenSSL has no SHA-512/256"
)


def fixed_cnonces(*values: str) -> CnonceFactory:
    return CnonceFactory(values)


class CnonceFactory:
    """A cnonce factory handing out the given values in turn (then ``cnonce-N``)."""

    def __init__(self, values: tuple[str, ...]) -> None:
        self._values: Iterator[str] = iter(values)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return next(self._values, "cnonce-" + str(self.calls))


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def params_of(credentials: Credentials) -> dict[str, Optional[str]]:
    """Parameter name -> unquoted value."""
    return {name: credentials.param(name) for name, _ in credentials.params}


# --------------------------------------------------------------------------- golden vectors

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int",'
    ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_section_3_5_example() -> None:
    ha1 = digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = digest_response(
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_example_through_the_client() -> None:
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=fixed_cnonces("0a4f113b"))
    credentials = client.authorize(Challenge.parse(RFC2617_CHALLENGE), "GET", "/dir/index.html")
    # RFC 2617 §3.5's Authorization header, parameter for parameter and in its order.
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com",'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth,'
        ' nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert Credentials.parse(str(credentials)) == credentials


def test_rfc2069_no_qop_form() -> None:
    # RFC 2069 §2.4; the printed response is wrong (erratum), this is the corrected one.
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    factory = fixed_cnonces()
    client = DigestClient("Mufasa", "CircleOfLife", cnonce_factory=factory)
    credentials = client.authorize(challenge, "GET", "/dir/index.html")
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com",'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html",'
        ' response="1949323746fe6a43ef61f9606e7febea", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    ha1 = md5("Mufasa:testrealm@host.com:CircleOfLife")
    expected = md5(ha1 + ":dcd98b7102dd2f0e8b11d0f600bfb0c093:" + md5("GET:/dir/index.html"))
    assert expected == "1949323746fe6a43ef61f9606e7febea"
    # No nc in this form, so reusing the nonce gives the same answer again.
    again = client.authorize(challenge, "GET", "/dir/index.html")
    assert again.response == credentials.response and again.nc is None


RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg},'
    ' nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
    ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    ha1 = digest_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = digest_response(
        ha1=ha1,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        method="GET",
        uri="/dir/index.html",
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert response == expected


def test_rfc7616_example_through_the_client_prefers_sha256() -> None:
    # The RFC's server offers SHA-256 first and MD5 second; the client answers SHA-256, and its
    # credentials carry the values of the RFC's SHA-256 Authorization header.
    md5_challenge = Challenge.parse(RFC7616_CHALLENGE.format(alg="MD5"))
    sha_challenge = Challenge.parse(RFC7616_CHALLENGE.format(alg="SHA-256"))
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=fixed_cnonces(RFC7616_CNONCE))
    for order in ([sha_challenge, md5_challenge], [md5_challenge, sha_challenge]):
        assert client.choose_challenge(order) is sha_challenge
    credentials = client.authorize(sha_challenge, "GET", "/dir/index.html")
    rfc = Credentials.parse(
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",'
        ' algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
        ' nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,'
        ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",'
        ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert params_of(credentials) == params_of(rfc)
    ha1 = digest_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    assert verify_digest(rfc, ha1=ha1, method="GET")


@needs_sha512_256
def test_sha512_256_is_fips_180_4_sha512_256() -> None:
    # FIPS 180-4 / NIST example: SHA-512/256("abc"); not SHA-512 cut to 256 bits.
    assert digest_algorithm("SHA-512-256").hash(b"abc") == (
        "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    )


@needs_sha512_256
def test_rfc7616_section_3_9_2_inputs() -> None:
    # RFC 7616 §3.9.2's inputs (UTF-8 username; userhash does not change A1). Its printed
    # response, ae66e67d..., is what SHA-512 truncated to 256 bits gives; RFC 8760 / RFC 7616
    # §3.2 define SHA-512-256 as SHA-512/256, which gives another value.
    username, realm, password = "J\u00e4s\u00f8n Doe", "api@example.org", "Secret, or not?"
    nonce = "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK"
    cnonce = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v"

    def truncated_sha512(text: str) -> str:
        return hashlib.sha512(text.encode()).hexdigest()[:64]

    ha1_t = truncated_sha512(f"{username}:{realm}:{password}")
    ha2_t = truncated_sha512("GET:/doe.json")
    printed = truncated_sha512(f"{ha1_t}:{nonce}:00000001:{cnonce}:auth:{ha2_t}")
    assert printed == "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"

    ha1 = digest_ha1(username, realm, password, "SHA-512-256")
    response = digest_response(
        ha1=ha1,
        nonce=nonce,
        method="GET",
        uri="/doe.json",
        algorithm="SHA-512-256",
        qop="auth",
        nc="00000001",
        cnonce=cnonce,
    )
    assert response == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"


@needs_sha512_256
def test_sha512_256_round_trip() -> None:
    challenge = make_challenge("ims.example.com", "n0nce", algorithm="SHA-512-256")
    assert str(challenge) == (
        'Digest realm="ims.example.com", qop="auth", nonce="n0nce", algorithm=SHA-512-256'
    )
    client = DigestClient("alice@ims.example.com", "pw", cnonce_factory=fixed_cnonces("c1"))
    credentials = client.authorize(challenge, "REGISTER", "sip:ims.example.com")
    assert credentials.algorithm == "SHA-512-256"
    assert len(credentials.response or "") == 64
    ha1 = digest_ha1("alice@ims.example.com", "ims.example.com", "pw", "SHA-512-256")
    assert verify_digest(credentials, ha1=ha1, method="REGISTER")
    assert not verify_digest(credentials, ha1=ha1, method="INVITE")


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [("MD5-sess", "md5"), ("SHA-256-sess", "sha256"), ("SHA-512-256-sess", "sha512_256")],
)
def test_sess_variants(algorithm: str, hash_name: str) -> None:
    if algorithm not in SUPPORTED_ALGORITHMS:
        pytest.skip("this OpenSSL has no " + hash_name)

    def hh(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = digest_ha1("bob", "biloxi.com", "zanzibar", algorithm)
    assert ha1 == hh("bob:biloxi.com:zanzibar")  # the stored part is the same as without -sess
    session = hh(ha1 + ":abc:xyz")
    expected = hh(session + ":abc:00000001:xyz:auth:" + hh("INVITE:sip:bob@biloxi.com"))
    got = digest_response(
        ha1=ha1,
        nonce="abc",
        method="INVITE",
        uri="sip:bob@biloxi.com",
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce="xyz",
    )
    assert got == expected
    with pytest.raises(ValueError, match="cnonce"):
        digest_response(ha1=ha1, nonce="abc", method="INVITE", uri="sip:x", algorithm=algorithm)


def test_sess_client_keeps_its_cnonce_per_nonce() -> None:
    challenge = make_challenge("biloxi.com", "abc", algorithm="MD5-sess")
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("first", "second"))
    one = client.authorize(challenge, "INVITE", "sip:bob@biloxi.com")
    two = client.authorize(challenge, "INVITE", "sip:bob@biloxi.com")
    assert (one.cnonce, one.nc) == ("first", "00000001")
    assert (two.cnonce, two.nc) == ("first", "00000002")
    ha1 = digest_ha1("bob", "biloxi.com", "zanzibar")
    assert verify_digest(one, ha1=ha1, method="INVITE")
    assert verify_digest(two, ha1=ha1, method="INVITE")
    # -sess without qop still sends its cnonce (the session key needs it), but no nc.
    bare = Challenge.parse('Digest realm="biloxi.com", nonce="n2", algorithm=MD5-sess')
    three = client.authorize(bare, "INVITE", "sip:bob@biloxi.com")
    assert (three.qop, three.nc, three.cnonce) == (None, None, "second")
    assert verify_digest(three, ha1=ha1, method="INVITE")


def test_auth_int() -> None:
    body = b"v=0\r\no=bob 2890844527 2890844527 IN IP4 host.biloxi.com\r\n"
    ha1 = md5("bob:biloxi.com:zanzibar")
    ha2 = md5("INVITE:sip:bob@biloxi.com:" + hashlib.md5(body).hexdigest())
    expected = md5(ha1 + ":n:00000001:c:auth-int:" + ha2)
    got = digest_response(
        ha1=ha1,
        nonce="n",
        method="INVITE",
        uri="sip:bob@biloxi.com",
        qop="auth-int",
        nc="00000001",
        cnonce="c",
        body=body,
    )
    assert got == expected
    # auth-int is what the client picks when it is the only qop offered.
    challenge = make_challenge("biloxi.com", "n", qop="auth-int")
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("c"))
    credentials = client.authorize(challenge, "INVITE", "sip:bob@biloxi.com", body)
    assert credentials.qop == "auth-int" and credentials.response == expected
    assert verify_digest(credentials, ha1=ha1, method="INVITE", body=body)
    assert not verify_digest(credentials, ha1=ha1, method="INVITE", body=body + b"a=x\r\n")


def test_auth_preferred_over_auth_int() -> None:
    client = DigestClient("bob", "zanzibar")
    for qop in ("auth,auth-int", "auth-int,auth", "AUTH-INT, Auth"):
        credentials = client.authorize(make_challenge("r", "n", qop=qop), "MESSAGE", "sip:x@r")
        assert credentials.qop == "auth", qop


def test_response_argument_errors() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        digest_ha1("u", "r", "p", "AKAv1-MD5")
    with pytest.raises(ValueError, match="qop"):
        digest_response(
            ha1="0", nonce="n", method="M", uri="u", qop="auth-conf", nc="1", cnonce="c"
        )
    with pytest.raises(ValueError, match="nc and cnonce"):
        digest_response(ha1="0", nonce="n", method="M", uri="u", qop="auth")


def test_algorithm_names() -> None:
    assert SUPPORTED_ALGORITHMS[:4] == ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
    assert digest_algorithm(None).name == "MD5"
    assert digest_algorithm("sha-256-SESS").name == "SHA-256-sess"
    for bad in ("SHA-1", "AKAv1-MD5", "", "MD5-sess-sess"):
        with pytest.raises(ValueError, match="unsupported digest algorithm"):
            digest_algorithm(bad)
    # The HA1 is case-insensitive hex.
    ha1 = digest_ha1("u", "r", "p")
    upper = digest_response(ha1=ha1.upper(), nonce="n", method="M", uri="sip:r")
    assert upper == digest_response(ha1=ha1, nonce="n", method="M", uri="sip:r")


# --------------------------------------------------------------------------- client


def test_nonce_count_progression() -> None:
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces())
    first = make_challenge("biloxi.com", "nonce-1")
    counts = [client.authorize(first, "MESSAGE", "sip:x@biloxi.com").nc for _ in range(3)]
    assert counts == ["00000001", "00000002", "00000003"]
    second = make_challenge("biloxi.com", "nonce-2")
    assert client.authorize(second, "MESSAGE", "sip:x@biloxi.com").nc == "00000001"
    # Each nonce keeps its own count.
    assert client.authorize(first, "MESSAGE", "sip:x@biloxi.com").nc == "00000004"
    assert client.authorize(second, "MESSAGE", "sip:x@biloxi.com").nc == "00000002"


def test_nonce_count_is_hex_and_every_request_gets_a_fresh_cnonce() -> None:
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces())
    challenge = make_challenge("biloxi.com", "n")
    answers = [client.authorize(challenge, "MESSAGE", "sip:x@biloxi.com") for _ in range(16)]
    assert answers[-1].nc == "00000010"
    assert len({a.cnonce for a in answers}) == 16
    ha1 = digest_ha1("bob", "biloxi.com", "zanzibar")
    assert all(verify_digest(a, ha1=ha1, method="MESSAGE") for a in answers)


def test_default_cnonces_are_random_hex() -> None:
    client = DigestClient("bob", "zanzibar")
    challenge = make_challenge("biloxi.com", "n")
    cnonces = {client.authorize(challenge, "M", "sip:x").cnonce for _ in range(5)}
    assert len(cnonces) == 5
    assert all(c is not None and len(c) == 16 and int(c, 16) >= 0 for c in cnonces)


def test_opaque_and_algorithm_are_copied() -> None:
    challenge = Challenge.parse(
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth",'
        ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    client = DigestClient("alice", "secret", cnonce_factory=fixed_cnonces("0a4f113b"))
    credentials = client.authorize(challenge, "INVITE", "sip:bob@biloxi.com")
    text = str(credentials)
    assert text.startswith(
        'Digest username="alice", realm="atlanta.com", nonce="f84f1cec41e6cbe5aea9c8e88d359",'
        ' uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="'
    )
    assert text.endswith('", algorithm=MD5, opaque=""')
    # No algorithm in the challenge: none in the answer (MD5 is the default).
    plain = client.authorize(make_challenge("r", "n"), "INVITE", "sip:bob@r")
    assert plain.algorithm == "MD5"
    bare = Challenge.parse('Digest realm="r", nonce="n", qop="auth"')
    assert client.authorize(bare, "INVITE", "sip:bob@r").algorithm is None


def test_quoted_values_are_escaped() -> None:
    client = DigestClient('a "quoted" \\ user', "pw", cnonce_factory=fixed_cnonces("c"))
    credentials = client.authorize(make_challenge("r", "n"), "M", "sip:x")
    assert 'username="a \\"quoted\\" \\\\ user"' in str(credentials)
    assert Credentials.parse(str(credentials)) == credentials
    assert credentials.username == 'a "quoted" \\ user'
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        DigestClient("bad\r\nuser", "pw").authorize(make_challenge("r", "n"), "M", "sip:x")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('Basic realm="r"', "not a Digest challenge"),
        ("Bearer abc.def", "not a Digest challenge"),
        ('Digest realm="r", nonce="n", algorithm=AKAv1-MD5', "unsupported digest algorithm"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "unsupported digest algorithm"),
        ('Digest realm="r", nonce="n", qop="auth-conf"', "no supported qop"),
        ('Digest nonce="n"', "without realm or nonce"),
        ('Digest realm="r"', "without realm or nonce"),
    ],
)
def test_unusable_challenges(text: str, reason: str) -> None:
    client = DigestClient("bob", "zanzibar")
    challenge = Challenge.parse(text)
    assert not client.can_answer(challenge)
    assert client.choose_challenge([challenge]) is None
    with pytest.raises(ValueError, match=reason):
        client.authorize(challenge, "M", "sip:x")


def test_choose_challenge_preference() -> None:
    client = DigestClient("bob", "zanzibar")
    md5_ = make_challenge("r", "1")
    md5_sess = make_challenge("r", "2", algorithm="MD5-sess")
    sha256 = make_challenge("r", "3", algorithm="SHA-256")
    basic = Challenge.parse('Basic realm="r"')
    aka = Challenge.parse('Digest realm="r", nonce="4", algorithm=AKAv1-MD5')
    assert client.choose_challenge([]) is None
    assert client.choose_challenge([basic, aka]) is None
    assert client.choose_challenge([basic, md5_, aka]) is md5_
    assert client.choose_challenge([md5_, md5_sess]) is md5_  # a tie: the first one
    assert client.choose_challenge([md5_sess, md5_]) is md5_sess
    assert client.choose_challenge([md5_, basic, sha256, aka]) is sha256
    if "SHA-512-256" in SUPPORTED_ALGORITHMS:
        sha512 = make_challenge("r", "5", algorithm="SHA-512-256")
        assert client.choose_challenge([md5_, sha512, sha256]) is sha512


def test_precomputed_ha1_is_bound_to_its_realm_and_hash() -> None:
    ha1 = digest_ha1("bob", "biloxi.com", "zanzibar", "SHA-256")
    client = DigestClient(
        "bob",
        ha1=ha1,
        realm="biloxi.com",
        ha1_algorithm="SHA-256",
        cnonce_factory=fixed_cnonces("c"),
    )
    md5_ = make_challenge("biloxi.com", "1")
    other_realm = make_challenge("atlanta.com", "2", algorithm="SHA-256")
    sha256 = make_challenge("biloxi.com", "3", algorithm="SHA-256")
    sha256_sess = make_challenge("biloxi.com", "4", algorithm="SHA-256-sess")
    assert client.choose_challenge([md5_, other_realm]) is None
    assert client.choose_challenge([md5_, other_realm, sha256_sess, sha256]) is sha256_sess
    for challenge in (sha256, sha256_sess):
        credentials = client.authorize(challenge, "REGISTER", "sip:biloxi.com")
        assert verify_digest(credentials, ha1=ha1, method="REGISTER")
    with pytest.raises(ValueError, match="HA1 does not fit"):
        client.authorize(md5_, "REGISTER", "sip:biloxi.com")
    with pytest.raises(ValueError, match="another realm"):
        client.authorize(other_realm, "REGISTER", "sip:biloxi.com")


def test_client_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DigestClient("bob")
    with pytest.raises(ValueError, match="exactly one"):
        DigestClient("bob", "pw", ha1="00", realm="r")
    with pytest.raises(ValueError, match="needs its realm"):
        DigestClient("bob", ha1="00")
    with pytest.raises(ValueError, match="unsupported"):
        DigestClient("bob", ha1="00", realm="r", ha1_algorithm="SHA-1")
    # A password client can also be restricted to one realm.
    client = DigestClient("bob", "pw", realm="biloxi.com")
    assert not client.can_answer(make_challenge("atlanta.com", "n"))
    assert client.can_answer(make_challenge("biloxi.com", "n"))


# --------------------------------------------------------------------------- requests

REGISTER = (
    b"REGISTER sip:registrar.biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Bob <sip:bob@biloxi.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def register() -> Request:
    message = parse_message(REGISTER)
    assert isinstance(message, Request)
    return message


def challenge_response(status: int, *challenges: str) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    reason = "Unauthorized" if status == 401 else "Proxy Authentication Required"
    return Response(status, reason, [(name, c) for c in challenges])


def test_authorize_request_401() -> None:
    request = register()
    response = challenge_response(
        401,
        'Digest realm="biloxi.com", qop="auth", nonce="ea9c8e88df84f1cec4341ae6cbe5a359",'
        ' opaque="", stale=FALSE, algorithm=MD5',
    )
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("0a4f113b"))
    assert client.authorize_request(request, response)
    ha1 = md5("bob:biloxi.com:zanzibar")
    expected = md5(
        ha1
        + ":ea9c8e88df84f1cec4341ae6cbe5a359:00000001:0a4f113b:auth:"
        + md5("REGISTER:sip:registrar.biloxi.com")
    )
    assert request.headers.get("Authorization") == (
        'Digest username="bob", realm="biloxi.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359",'
        ' uri="sip:registrar.biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b",'
        f' response="{expected}", algorithm=MD5, opaque=""'
    )
    assert "Proxy-Authorization" not in request.headers
    # The request still serialises and parses, and the credentials verify.
    again = parse_message(request.to_bytes())
    credentials = again.headers.first(h.AUTHORIZATION)
    assert credentials is not None
    assert verify_digest(credentials, ha1=ha1, method="REGISTER")


def test_authorize_request_407_answers_proxy_authenticate() -> None:
    request = register()
    request.headers.add(
        "Authorization",
        'Digest username="bob", realm="biloxi.com", nonce="x", uri="sip:r", response="00"',
    )
    response = challenge_response(
        407,
        'Basic realm="atlanta.com"',
        'Digest realm="atlanta.com", nonce="c60f3082ee1212b402a21831ae", algorithm=MD5, qop="auth"',
    )
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("c0ffee"))
    assert client.authorize_request(request, response)
    ha1 = md5("bob:atlanta.com:zanzibar")
    expected = md5(
        ha1
        + ":c60f3082ee1212b402a21831ae:00000001:c0ffee:auth:"
        + md5("REGISTER:sip:registrar.biloxi.com")
    )
    assert request.headers.get_all("Proxy-Authorization") == [
        'Digest username="bob", realm="atlanta.com", nonce="c60f3082ee1212b402a21831ae",'
        ' uri="sip:registrar.biloxi.com", qop=auth, nc=00000001, cnonce="c0ffee",'
        f' response="{expected}", algorithm=MD5'
    ]
    # The Authorization header for the registrar's realm is left alone.
    assert request.headers.count("Authorization") == 1


def test_authorize_request_replaces_only_the_same_realm() -> None:
    request = register()
    request.headers.add(
        "Proxy-Authorization",
        'Digest username="bob", realm="other.net", nonce="o", uri="sip:x", response="11"',
    )
    request.headers.add(
        "Proxy-Authorization",
        'Digest username="bob", realm="atlanta.com", nonce="old", uri="sip:x", response="22"',
    )
    request.headers.add("Proxy-Authorization", "Garbage ,,")
    response = challenge_response(407, 'Digest realm="atlanta.com", nonce="new", qop="auth"')
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("c"))
    assert client.authorize_request(request, response)
    values = request.headers.get_all("Proxy-Authorization")
    assert len(values) == 3
    assert 'realm="other.net"' in values[0]
    assert values[1] == "Garbage ,,"
    assert 'realm="atlanta.com", nonce="new"' in values[2]


def test_authorize_request_skips_malformed_challenges() -> None:
    request = register()
    response = challenge_response(401, "Digest", 'Digest realm="biloxi.com", nonce="n"')
    client = DigestClient("bob", "zanzibar")
    assert client.authorize_request(request, response)
    credentials = request.headers.first(h.AUTHORIZATION)
    assert credentials is not None and credentials.nonce == "n" and credentials.qop is None


def test_authorize_request_without_a_usable_challenge() -> None:
    client = DigestClient("bob", "zanzibar")
    for response in (
        Response(200, "OK"),
        Response(403, "Forbidden", [("WWW-Authenticate", 'Digest realm="r", nonce="n"')]),
        challenge_response(401),
        challenge_response(401, 'Basic realm="r"'),
        # A 401 answers with WWW-Authenticate; a Proxy-Authenticate in it is not looked at.
        Response(401, "Unauthorized", [("Proxy-Authenticate", 'Digest realm="r", nonce="n"')]),
        challenge_response(407, 'Digest realm="r", nonce="n", algorithm=AKAv1-MD5'),
    ):
        request = register()
        before = request.to_bytes()
        assert not client.authorize_request(request, response)
        assert request.to_bytes() == before


def test_wrong_password_is_detected() -> None:
    challenge = 'Digest realm="biloxi.com", qop="auth", nonce="n1", algorithm=MD5'
    client = DigestClient("bob", "wrong", cnonce_factory=fixed_cnonces())
    request = register()
    assert client.authorize_request(request, challenge_response(401, challenge))
    first = request.to_bytes()
    # The server rejects the credentials and challenges again with the same nonce: give up.
    assert not client.authorize_request(request, challenge_response(401, challenge))
    assert request.to_bytes() == first
    # stale=true means the nonce (not the password) was the problem: answer it again.
    stale = challenge + ", stale=TRUE"
    assert client.authorize_request(request, challenge_response(401, stale))
    credentials = request.headers.first(h.AUTHORIZATION)
    assert credentials is not None and credentials.nc == "00000002"
    assert request.headers.count("Authorization") == 1
    # A new nonce is a new attempt.
    fresh = 'Digest realm="biloxi.com", qop="auth", nonce="n2", algorithm=MD5'
    assert client.authorize_request(request, challenge_response(401, fresh))
    credentials = request.headers.first(h.AUTHORIZATION)
    assert credentials is not None and (credentials.nonce, credentials.nc) == ("n2", "00000001")


# --------------------------------------------------------------------------- server helpers


def test_make_challenge() -> None:
    assert str(make_challenge("biloxi.com", "84f1c1ae6cbe5ua9c8e88dfa3ecm3459")) == (
        'Digest realm="biloxi.com", qop="auth", nonce="84f1c1ae6cbe5ua9c8e88dfa3ecm3459",'
        " algorithm=MD5"
    )
    challenge = make_challenge(
        "atlanta.com",
        "n",
        algorithm="SHA-256",
        qop="auth,auth-int",
        opaque="op aque",
        stale=True,
    )
    text = str(challenge)
    assert text == (
        'Digest realm="atlanta.com", qop="auth,auth-int", nonce="n", opaque="op aque",'
        " stale=TRUE, algorithm=SHA-256"
    )
    parsed = h.WWW_AUTHENTICATE.parse(text)
    assert parsed == challenge
    assert parsed.stale and parsed.qop_options == ("auth", "auth-int")
    assert str(make_challenge("r", "n", qop=None)) == 'Digest realm="r", nonce="n", algorithm=MD5'
    with pytest.raises(ValueError, match="unsupported"):
        make_challenge("r", "n", algorithm="AKAv1-MD5")
    with pytest.raises(ValueError, match="qop"):
        make_challenge("r", "n", qop='auth"')
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        make_challenge("r\n", "n")


def test_verify_digest() -> None:
    ha1 = digest_ha1("bob", "biloxi.com", "zanzibar")
    client = DigestClient("bob", "zanzibar", cnonce_factory=fixed_cnonces("c"))
    credentials = client.authorize(make_challenge("biloxi.com", "n"), "INVITE", "sip:bob@b.com")
    assert verify_digest(credentials, ha1=ha1, method="INVITE")
    # Upper-case hex in the response is the same digest.
    upper = Credentials(
        "Digest",
        tuple(
            (name, value.upper() if name == "response" and value else value)
            for name, value in credentials.params
        ),
    )
    assert verify_digest(upper, ha1=ha1, method="INVITE")
    assert not verify_digest(credentials, ha1=digest_ha1("bob", "biloxi.com", "x"), method="INVITE")
    assert not verify_digest(credentials, ha1=ha1, method="BYE")


@pytest.mark.parametrize(
    "text",
    [
        'Basic realm="r"',
        'Digest username="bob", realm="r", nonce="n", uri="sip:x"',
        'Digest username="bob", realm="r", uri="sip:x", response="00"',
        'Digest username="bob", realm="r", nonce="n", response="00"',
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="00",'
        " algorithm=AKAv1-MD5",
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="00", qop=auth',
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="00", qop=auth-conf,'
        ' nc=00000001, cnonce="c"',
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="\u00e9",'
        " algorithm=MD5-sess",
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="\u00e9"',
    ],
)
def test_verify_digest_rejects_malformed_credentials(text: str) -> None:
    assert not verify_digest(Credentials.parse(text), ha1=md5("bob:r:pw"), method="INVITE")


# --------------------------------------------------------------------------- properties

# Text a header can carry in a quoted-string: no CR, LF, NUL; no lone surrogates.
header_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30)
algorithms = st.sampled_from(SUPPORTED_ALGORITHMS)


@given(
    username=header_text,
    password=st.text(st.characters(codec="utf-8"), max_size=30),
    other=st.text(st.characters(codec="utf-8"), max_size=30),
    realm=header_text,
    nonce=header_text,
    algorithm=algorithms,
    qop=st.sampled_from([None, "auth", "auth-int", "auth,auth-int"]),
    body=st.binary(max_size=40),
    uses=st.integers(1, 3),
)
def test_authorize_then_verify(
    username: str,
    password: str,
    other: str,
    realm: str,
    nonce: str,
    algorithm: str,
    qop: Optional[str],
    body: bytes,
    uses: int,
) -> None:
    challenge = make_challenge(realm, nonce, algorithm=algorithm, qop=qop)
    # Through the wire form, as a UAS would see it.
    challenge = h.WWW_AUTHENTICATE.parse(str(challenge))
    client = DigestClient(username, password)
    ha1 = digest_ha1(username, realm, password, algorithm)
    wrong = digest_ha1(username, realm, other, algorithm)
    for _ in range(uses):
        credentials = client.authorize(challenge, "REGISTER", "sip:registrar.example.com", body)
        wire = h.AUTHORIZATION.parse(str(credentials))
        assert wire == credentials
        assert wire.username == username and wire.realm == realm and wire.nonce == nonce
        assert verify_digest(wire, ha1=ha1, method="REGISTER", body=body)
        assert verify_digest(wire, ha1=wrong, method="REGISTER", body=body) == (password == other)
