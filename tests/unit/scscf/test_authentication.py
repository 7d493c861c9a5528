"""The S-CSCF's authentication stage (spec §3.1, §3.2; RFC 3261 §22, RFC 7616, RFC 8760,
RFC 3310, RFC 4169), driven through :mod:`clearwater.testing.sproutlet` against a real
HSS-less homestead, the memory IMPI store and the memory timer service, on a ``Clock``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Optional, TypeVar, Union

import attrs
import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater.aka import make_auts, next_sqn, split_challenge, ue_check
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    HomesteadError,
    HsslessHomestead,
    RegData,
    ReqType,
)
from clearwater.scscf.authentication import (
    AUTH_TIMEOUT_KIND,
    MAX_CHALLENGES_PER_IMPI,
    AuthenticationSproutlet,
    AuthenticationTsx,
)
from clearwater.scscf.config import NonRegisterAuthentication, ScscfConfig
from clearwater.sip import Challenge, Request, Response, parse_message
from clearwater.sip.auth import DigestClient, digest_response
from clearwater.sip.headers import (
    AUTHORIZATION,
    PROXY_AUTHENTICATE,
    ROUTE,
    SERVICE_ROUTE,
    WWW_AUTHENTICATE,
)
from clearwater.stores.interfaces import DataContentionError, StoreUnavailableError
from clearwater.stores.memory import MemoryCasStore, MemorySubscriberStore, MemoryTimerService
from clearwater.stores.records import AkaCredentials, PrivateIdentity, PublicIdentity
from clearwater.stores.records import Challenge as StoredChallenge
from clearwater.stores.typed import CHALLENGE_TABLE, ChallengeStore
from clearwater.testing.sproutlet import FakeTsxHelper, run_tsx

_T = TypeVar("_T")

DOMAIN = "example.com"
SCSCF = "sip:scscf.sprout.example.com:5054;transport=tcp"
START = 1_000_000.0

ALICE = "alice@example.com"  # digest, with a plaintext password
ALICE_IMPU = "sip:alice@example.com"
PASSWORD = "secret"
ALICE_HA1 = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
DAVE = "dave@example.com"  # digest, HA1 only
DAVE_IMPU = "sip:dave@example.com"
BOB = "bob@example.com"  # AKA
BOB_IMPU = "sip:bob@example.com"
# TS 35.208 test set 1.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes(range(16))

NEXT_HOP = "<sip:sprout.example.com;transport=tcp;lr;service=registrar>"


def result(deferred: Deferred[_T]) -> _T:
    """The result of a Deferred that has fired (the memory stores answer at once)."""
    out: list[Any] = []
    deferred.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]  # type: ignore[no-any-return]


async def provision(store: MemorySubscriberStore) -> None:
    await store.put_private(
        PrivateIdentity(ALICE, DOMAIN, digest_ha1=ALICE_HA1, plaintext_password=PASSWORD)
    )
    await store.put_private(
        PrivateIdentity(
            DAVE, DOMAIN, digest_ha1=hashlib.md5(b"dave@example.com:example.com:pw").hexdigest()
        )
    )
    await store.put_private(PrivateIdentity(BOB, DOMAIN, aka=AkaCredentials(K, OPC)))
    for impi, impu in ((ALICE, ALICE_IMPU), (DAVE, DAVE_IMPU), (BOB, BOB_IMPU)):
        irs = await store.create_irs()
        await store.associate(irs, impi)
        sp = await store.create_service_profile(irs)
        await store.put_public(PublicIdentity(impu, irs, sp.sp, ""))


@attrs.define
class RecordingHomestead:
    """The real HSS-less homestead, with its calls recorded and failures injectable."""

    real: HsslessHomestead
    av_calls: list[tuple[Any, ...]] = attrs.Factory(list)
    reg_calls: list[tuple[Any, ...]] = attrs.Factory(list)
    av_error: Optional[Exception] = None
    reg_error: Optional[Exception] = None

    def get_av(
        self,
        impi: str,
        impu: str,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        self.av_calls.append((impi, impu, scheme, resync_auth, server_name))
        if self.av_error is not None:
            return fail(self.av_error)
        return self.real.get_av(impi, impu, scheme, resync_auth, server_name)

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        return self.real.get_reg_data(impu)

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        self.reg_calls.append((impu, reqtype, server_name, private_id))
        if self.reg_error is not None:
            return fail(self.reg_error)
        return self.real.put_reg_data(impu, reqtype, server_name, private_id, wildcard_identity)


class FlakyChallengeStore(ChallengeStore):
    """The memory-backed challenge store whose reads or writes can be made to fail."""

    def __init__(self, cas: MemoryCasStore) -> None:
        super().__init__(cas)
        self.read_errors: list[Exception] = []
        self.write_errors: list[Exception] = []

    @override
    def get_challenges(self, impi: str) -> Deferred[tuple[tuple[StoredChallenge, ...], int]]:
        if self.read_errors:
            return fail(self.read_errors.pop(0))
        return super().get_challenges(impi)

    @override
    def set_challenges(
        self, impi: str, challenges: tuple[StoredChallenge, ...], cas: int, now: float
    ) -> Deferred[None]:
        if self.write_errors:
            return fail(self.write_errors.pop(0))
        return super().set_challenges(impi, challenges, cas, now)


class World:
    """One S-CSCF authentication stage with its stores, on a clock."""

    def __init__(self, *, redelivery_delay: float = 10.0, **config: Any) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.subscribers = MemorySubscriberStore()
        result(Deferred.fromCoroutine(provision(self.subscribers)))
        self.homestead = RecordingHomestead(
            HsslessHomestead(
                self.subscribers,
                scscf_uri=SCSCF,
                home_domain=DOMAIN,
                random=lambda n: RAND[:n],
                now=self.clock.seconds,
            )
        )
        self.cas = MemoryCasStore(self.clock)
        self.challenges = FlakyChallengeStore(self.cas)
        self.timers = MemoryTimerService(self.clock, redelivery_delay)
        self.config = ScscfConfig(home_domains=(DOMAIN,), scscf_uri=SCSCF, **config)
        self.tokens = 0
        self.sproutlet = AuthenticationSproutlet(
            self.config,
            self.homestead,
            self.challenges,
            self.timers,
            self.clock,
            token=self.token,
        )

    def token(self) -> str:
        self.tokens += 1
        return "%016x" % (0xABC000 + self.tokens)

    def run(self, request: Request, route: Optional[str] = None) -> FakeTsxHelper:
        helper, tsx = run_tsx(self.sproutlet, request, clock=self.clock, route=route)
        assert isinstance(tsx, AuthenticationTsx)
        return helper

    def stored(self, impi: str) -> tuple[StoredChallenge, ...]:
        return result(self.challenges.get_challenges(impi))[0]

    def raw(self, impi: str) -> Any:
        data, _ = result(self.cas.get_data(CHALLENGE_TABLE, impi))
        assert data
        return json.loads(data)


def message(text: str) -> Request:
    parsed = parse_message(text.replace("\n", "\r\n").encode())
    assert isinstance(parsed, Request)
    return parsed


def register(
    impu: str = ALICE_IMPU,
    cseq: int = 1,
    *,
    authorization: Optional[str] = None,
    contact: str = "<sip:alice@10.0.0.1:5060;transport=tcp>",
    expires: int = 300,
) -> Request:
    request = message(
        "REGISTER sip:example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKreg" + str(cseq) + "\n"
        "Max-Forwards: 70\n"
        "From: <" + impu + ">;tag=f1\n"
        "To: <" + impu + ">\n"
        "Call-ID: reg-1@10.0.0.1\n"
        "CSeq: " + str(cseq) + " REGISTER\n"
        "Contact: " + contact + "\n"
        "Expires: " + str(expires) + "\n"
        "Content-Length: 0\n\n"
    )
    if authorization is not None:
        request.headers.add("Authorization", authorization)
    return request


def invite(from_impu: str = ALICE_IMPU, to_tag: str = "") -> Request:
    return message(
        "INVITE sip:carol@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKinv\n"
        "Max-Forwards: 70\n"
        "From: <" + from_impu + ">;tag=f2\n"
        "To: <sip:carol@example.com>" + (";tag=" + to_tag if to_tag else "") + "\n"
        "Call-ID: inv-1@10.0.0.1\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:alice@10.0.0.1:5060>\n"
        "Content-Length: 0\n\n"
    )


def next_request(request: Request) -> Request:
    """``request`` again as a new transaction (CSeq + 1, new branch), for a client's retry."""
    again = request.copy()
    seq = again.cseq.seq + 1
    again.headers.set("CSeq", str(seq) + " " + again.method)
    via = again.top_via.with_param("branch", "z9hG4bKretry" + str(seq))
    again.headers.set("Via", str(via))
    return again


def final(helper: FakeTsxHelper) -> Response:
    response = helper.final_response
    assert response is not None
    # Through the wire form, as the UE sees it.
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, Response)
    return parsed


def challenges_of(response: Response) -> list[Challenge]:
    spec = WWW_AUTHENTICATE if response.status == 401 else PROXY_AUTHENTICATE
    return response.headers.parsed(spec)


def client() -> DigestClient:
    return DigestClient(ALICE, PASSWORD, cnonce_factory=lambda: "0a4f113b")


def answered(world: World, request: Request, dc: Optional[DigestClient] = None) -> Request:
    """Send ``request``, expect a challenge, answer it with ``dc``: the request to send next."""
    response = final(world.run(request))
    assert response.status == 401
    again = next_request(request)
    assert (dc or client()).authorize_request(again, response)
    return again


def aka_credentials(
    challenge: Challenge,
    password: bytes,
    *,
    username: str = BOB,
    nc: str = "00000001",
    auts: Optional[str] = None,
    response: Optional[str] = None,
) -> str:
    """An IMS AKA Authorization (RFC 3310 §3.3 / RFC 4169): digest MD5 with the password
    given as raw bytes."""
    realm, nonce = challenge.realm, challenge.nonce
    assert realm is not None and nonce is not None
    ha1 = hashlib.md5(username.encode() + b":" + realm.encode() + b":" + password).hexdigest()
    if response is None:
        response = digest_response(
            ha1=ha1,
            nonce=nonce,
            method="REGISTER",
            uri="sip:example.com",
            qop="auth",
            nc=nc,
            cnonce="c0ffee",
        )
    text = (
        'Digest username="' + username + '", realm="' + realm + '", nonce="' + nonce + '", '
        'uri="sip:example.com", response="'
        + response
        + '", algorithm='
        + (challenge.algorithm or "")
        + ", qop=auth, nc="
        + nc
        + ', cnonce="c0ffee", integrity-protected="no"'
    )
    if challenge.opaque is not None:
        text += ', opaque="' + challenge.opaque + '"'
    if auts is not None:
        text += ', auts="' + auts + '"'
    return text


def aka_register(algorithm: str = "") -> Request:
    """Bob's first REGISTER: an Authorization with his IMPI, no response (TS 24.229)."""
    text = (
        'Digest username="bob@example.com", realm="example.com", nonce="", '
        'uri="sip:example.com", response="", integrity-protected="no"'
    )
    if algorithm:
        text += ", algorithm=" + algorithm
    return register(BOB_IMPU, authorization=text)


def ue(challenge: Challenge) -> tuple[bytes, bytes, bytes, bytes, int]:
    """What Bob's handset makes of an AKA challenge: (rand, res, ck, ik, sqn)."""
    assert challenge.nonce is not None
    rand, autn = split_challenge(challenge.nonce)
    res, ck, ik, sqn = ue_check(K, OPC, rand, autn)
    return rand, res, ck, ik, sqn


# --------------------------------------------------------------------------- digest


def test_register_without_credentials_gets_a_digest_challenge() -> None:
    world = World()
    helper = world.run(register())
    response = final(helper)
    assert response.status == 401 and not helper.forks
    assert response.headers.count("WWW-Authenticate") == 1
    (challenge,) = challenges_of(response)
    assert challenge.is_digest
    assert (challenge.realm, challenge.algorithm, challenge.qop_options) == (
        DOMAIN,
        "MD5",
        ("auth",),
    )
    assert (challenge.nonce, challenge.opaque) == ("0000000000abc001", "0000000000abc002")
    assert not challenge.stale and challenge.param("stale") is None
    assert world.homestead.av_calls == [(ALICE, ALICE_IMPU, None, None, SCSCF)]
    # The IMPI store holds Clearwater's record, with the timer that watches it.
    (record,) = world.raw(ALICE)["authChallenges"]
    timer_id = record.pop("timer_id")
    assert timer_id and len(world.timers) == 1
    assert record == {
        "type": "digest",
        "nonce": "0000000000abc001",
        "nc": 1,
        "expires": int(START) + 40,
        "correlator": "z9hG4bKreg1",
        "scscf-uri": SCSCF,
        "realm": DOMAIN,
        "qop": "auth",
        "ha1": ALICE_HA1,
    }


def test_right_digest_answer_goes_on_to_the_registrar() -> None:
    world = World()
    again = answered(world, register())
    helper = world.run(again)
    assert helper.final_response is None and len(helper.forks) == 1
    sent = helper.forks[0].request
    assert sent.headers.get_all("Route") == [NEXT_HOP]
    # Authorization is kept (third-party REGISTERs need it).
    assert sent.headers.get("Authorization") == again.headers.get("Authorization")
    assert sent.headers.first(AUTHORIZATION) is not None
    # The challenge is answered: its nonce count moves on, its timer is gone.
    (stored,) = world.stored(ALICE)
    assert stored.nc == 2 and stored.timer_id == ""
    assert len(world.timers) == 0
    # The registrar's 200 goes upstream with the digest identity on its Service-Route.
    helper.respond(
        0, 200, headers=[("Service-Route", "<sip:scscf.sprout.example.com;transport=tcp;lr;orig>")]
    )
    ok = final(helper)
    assert ok.status == 200
    (service_route,) = ok.headers.parsed(SERVICE_ROUTE)
    assert str(service_route.uri) == (
        "sip:scscf.sprout.example.com;transport=tcp;lr;orig;username=alice%40example.com"
        ";nonce=0000000000abc001"
    )


def test_a_non_2xx_from_the_registrar_goes_upstream_unchanged() -> None:
    world = World()
    helper = world.run(answered(world, register()))
    helper.respond(0, 403)
    assert [r.status for r in helper.responses] == [403]


def test_wrong_password_is_403_and_homestead_hears_of_it() -> None:
    world = World()
    again = answered(world, register(), DigestClient(ALICE, "wrong"))
    helper = world.run(again)
    response = final(helper)
    assert response.status == 403 and not helper.forks
    assert response.headers.count("WWW-Authenticate") == 0
    assert world.homestead.reg_calls == [(ALICE_IMPU, ReqType.DEREG_AUTH_FAILED, SCSCF, ALICE)]


def test_unknown_nonce_is_challenged_again_as_stale() -> None:
    world = World()
    request = register()
    answer = client().authorize(
        Challenge.parse('Digest realm="example.com", nonce="made-up", qop="auth"'),
        "REGISTER",
        "sip:example.com",
    )
    request.headers.set("Authorization", answer)
    response = final(world.run(request))
    assert response.status == 401
    (challenge,) = challenges_of(response)
    assert challenge.stale and challenge.nonce == "0000000000abc001"
    assert world.homestead.reg_calls == []


def test_expired_nonce_is_stale_and_the_client_answers_it() -> None:
    world = World()
    dc = client()
    again = answered(world, register(), dc)
    world.clock.advance(41)
    response = final(world.run(again))
    assert response.status == 401
    (challenge,) = challenges_of(response)
    assert challenge.stale and challenge.nonce == "0000000000abc003"
    third = next_request(again)
    assert dc.authorize_request(third, response)  # stale: the client tries again
    assert len(world.run(third).forks) == 1


def test_other_realm_gets_a_fresh_challenge_not_stale() -> None:
    world = World()
    response = final(world.run(register()))
    (challenge,) = challenges_of(response)
    again = next_request(register())
    assert challenge.nonce is not None
    other = Challenge.parse('Digest realm="other.net", nonce="' + challenge.nonce + '", qop="auth"')
    again.headers.set("Authorization", client().authorize(other, "REGISTER", "sip:example.com"))
    response = final(world.run(again))
    assert response.status == 401
    (fresh,) = challenges_of(response)
    assert not fresh.stale and fresh.nonce != challenge.nonce


def test_reused_nonce_is_stale_without_nonce_count_support() -> None:
    world = World()
    dc = client()
    (challenge,) = challenges_of(final(world.run(register())))
    first = next_request(register())
    first.headers.set("Authorization", dc.authorize(challenge, "REGISTER", "sip:example.com"))
    assert len(world.run(first).forks) == 1
    # The client re-registers on the same nonce (nc=2): Clearwater wants a new challenge.
    second = next_request(first)
    second.headers.set("Authorization", dc.authorize(challenge, "REGISTER", "sip:example.com"))
    assert second.headers.first(AUTHORIZATION).nc == "00000002"  # type: ignore[union-attr]
    helper = world.run(second)
    assert not helper.forks and final(helper).status == 401
    (fresh,) = challenges_of(final(helper))
    assert fresh.stale and fresh.nonce != challenge.nonce
    assert world.homestead.reg_calls == []


def test_nonce_count_support_accepts_the_next_count_and_refuses_a_replay() -> None:
    world = World(nonce_count_supported=True)
    dc = client()
    response = final(world.run(register()))
    (challenge,) = challenges_of(response)
    first = next_request(register())
    first.headers.set("Authorization", dc.authorize(challenge, "REGISTER", "sip:example.com"))
    assert len(world.run(first).forks) == 1
    # Kept as long as the binding (Expires: 300), not the 40 s of a fresh challenge.
    (stored,) = world.stored(ALICE)
    assert (stored.nc, stored.expires) == (2, int(START) + 300)
    # nc=2 on the same nonce: accepted, and the count moves to 3.
    second = next_request(first)
    second.headers.set("Authorization", dc.authorize(challenge, "REGISTER", "sip:example.com"))
    assert len(world.run(second).forks) == 1
    assert world.stored(ALICE)[0].nc == 3
    # The first one again (nc=1): a replay, challenged as stale, not forwarded.
    helper = world.run(first)
    assert not helper.forks and final(helper).status == 401
    assert challenges_of(final(helper))[0].stale
    assert world.homestead.reg_calls == []


def test_challenges_are_bounded_per_impi() -> None:
    world = World()
    for _ in range(MAX_CHALLENGES_PER_IMPI + 5):
        assert final(world.run(register())).status == 401
        world.clock.advance(0.01)
    assert len(world.stored(ALICE)) == MAX_CHALLENGES_PER_IMPI


# --------------------------------------------------------------------------- SHA-256


def test_sha256_challenge_follows_the_md5_one_when_configured() -> None:
    world = World(digest_algorithms=("MD5", "SHA-256"))
    response = final(world.run(register()))
    assert response.status == 401
    md5, sha256 = challenges_of(response)
    assert (md5.algorithm, sha256.algorithm) == ("MD5", "SHA-256")
    assert md5.nonce == sha256.nonce and md5.opaque == sha256.opaque
    assert sha256.realm == DOMAIN and sha256.qop_options == ("auth",)
    expected = hashlib.sha256(b"alice@example.com:example.com:secret").hexdigest()
    assert world.raw(ALICE)["authChallenges"][0]["ha1_sha256"] == expected
    # The client prefers SHA-256 (RFC 8760 §3); it is checked against the SHA-256 HA1.
    again = next_request(register())
    assert client().authorize_request(again, response)
    assert again.headers.first(AUTHORIZATION).algorithm == "SHA-256"  # type: ignore[union-attr]
    assert len(world.run(again).forks) == 1


def test_md5_answer_to_a_double_challenge_is_accepted_too() -> None:
    world = World(digest_algorithms=("MD5", "SHA-256"))
    md5, _ = challenges_of(final(world.run(register())))
    again = next_request(register())
    again.headers.set("Authorization", client().authorize(md5, "REGISTER", "sip:example.com"))
    assert len(world.run(again).forks) == 1


def test_wrong_sha256_answer_is_403() -> None:
    world = World(digest_algorithms=("MD5", "SHA-256"))
    again = answered(world, register(), DigestClient(ALICE, "wrong"))
    assert again.headers.first(AUTHORIZATION).algorithm == "SHA-256"  # type: ignore[union-attr]
    assert final(world.run(again)).status == 403


def test_no_sha256_challenge_without_config_or_password() -> None:
    world = World()  # MD5 only
    assert [c.algorithm for c in challenges_of(final(world.run(register())))] == ["MD5"]
    assert "ha1_sha256" not in world.raw(ALICE)["authChallenges"][0]
    world = World(digest_algorithms=("MD5", "SHA-256"))  # Dave: an HA1, no password
    assert [c.algorithm for c in challenges_of(final(world.run(register(DAVE_IMPU))))] == ["MD5"]
    # A SHA-256 answer cannot be checked against a challenge without a SHA-256 HA1.
    (challenge,) = challenges_of(final(world.run(register(DAVE_IMPU))))
    sha = Challenge.parse(str(challenge).replace("algorithm=MD5", "algorithm=SHA-256"))
    again = next_request(register(DAVE_IMPU))
    again.headers.set(
        "Authorization", DigestClient(DAVE, "pw").authorize(sha, "REGISTER", "sip:example.com")
    )
    assert final(world.run(again)).status == 403


# --------------------------------------------------------------------------- AKA


def test_akav1_challenge_and_answer() -> None:
    world = World()
    response = final(world.run(aka_register()))
    assert response.status == 401
    (challenge,) = challenges_of(response)
    rand, res, ck, ik, sqn = ue(challenge)
    assert rand == RAND and sqn == next_sqn(0)
    assert (challenge.realm, challenge.algorithm, challenge.qop_options) == (
        DOMAIN,
        "AKAv1-MD5",
        ("auth",),
    )
    assert (challenge.param("ck"), challenge.param("ik")) == (ck.hex(), ik.hex())
    assert challenge.opaque == "0000000000abc001"
    assert world.homestead.av_calls == [(BOB, BOB_IMPU, AvScheme.AKA, None, SCSCF)]
    (record,) = world.raw(BOB)["authChallenges"]
    assert (record["type"], record["nonce"], record["response"]) == (
        "aka",
        challenge.nonce,
        res.hex(),
    )
    # The UE answers with RES as the digest password (RFC 3310 §3.3).
    again = next_request(aka_register())
    again.headers.set("Authorization", aka_credentials(challenge, res))
    helper = world.run(again)
    assert len(helper.forks) == 1 and helper.final_response is None
    assert helper.forks[0].request.headers.get_all("Route") == [NEXT_HOP]
    assert world.stored(BOB)[0].nc == 2 and len(world.timers) == 0
    # AKA registrations get no digest identity on their Service-Route.
    helper.respond(0, 200, headers=[("Service-Route", "<sip:scscf.sprout.example.com;lr;orig>")])
    assert final(helper).headers.get("Service-Route") == "<sip:scscf.sprout.example.com;lr;orig>"


def test_akav1_wrong_res_is_403() -> None:
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register())))
    again = next_request(aka_register())
    again.headers.set("Authorization", aka_credentials(challenge, b"\x00" * 8))
    assert final(world.run(again)).status == 403
    assert world.homestead.reg_calls == [(BOB_IMPU, ReqType.DEREG_AUTH_FAILED, SCSCF, BOB)]


def test_akav2_challenge_and_answer() -> None:
    world = World()
    response = final(world.run(aka_register("AKAv2-MD5")))
    (challenge,) = challenges_of(response)
    assert challenge.algorithm == "AKAv2-MD5"
    assert world.homestead.av_calls[0][2] is AvScheme.AKA2
    _, res, ck, ik, _ = ue(challenge)
    # RFC 4169 §3: password = base64(HMAC-MD5(key = RES || IK || CK, "http-digest-akav2-password")).
    password = base64.b64encode(
        hmac.new(res + ik + ck, b"http-digest-akav2-password", hashlib.md5).digest()
    )
    again = next_request(aka_register("AKAv2-MD5"))
    again.headers.set("Authorization", aka_credentials(challenge, password))
    assert len(world.run(again).forks) == 1
    # The AKAv1 password (RES) does not answer an AKAv2 challenge.
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register("AKAv2-MD5"))))
    _, res, _, _, _ = ue(challenge)
    again.headers.set("Authorization", aka_credentials(challenge, res))
    assert final(world.run(again)).status == 403


def test_auts_resynchronises_and_challenges_again() -> None:
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register())))
    rand, _, _, _, _ = ue(challenge)
    sqn_ms = 5000 * 32  # the handset is ahead: synchronisation failure (TS 33.102 §6.3.3)
    auts = make_auts(K, OPC, rand, sqn_ms)
    again = next_request(aka_register())
    # With auts the response is computed over an empty password (RFC 3310 §3.4).
    again.headers.set(
        "Authorization", aka_credentials(challenge, b"", auts=base64.b64encode(auts).decode())
    )
    helper = world.run(again)
    response = final(helper)
    assert response.status == 401 and not helper.forks
    assert world.homestead.av_calls[-1] == (
        BOB,
        BOB_IMPU,
        AvScheme.AKA,
        base64.b64encode(rand + auts).decode(),
        SCSCF,
    )
    (fresh,) = challenges_of(response)
    assert fresh.nonce != challenge.nonce and not fresh.stale
    _, res, _, _, sqn = ue(fresh)
    assert sqn == next_sqn(sqn_ms)
    # The old challenge is answered (no timeout for it); the new one is watched.
    by_nonce = {c.nonce: c for c in world.stored(BOB)}
    assert by_nonce[str(challenge.nonce)].nc == 2 and by_nonce[str(fresh.nonce)].nc == 1
    assert len(world.timers) == 1
    # And the new vector authenticates.
    third = next_request(again)
    third.headers.set("Authorization", aka_credentials(fresh, res))
    assert len(world.run(third).forks) == 1


def test_malformed_auts_is_403() -> None:
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register())))
    again = next_request(aka_register())
    again.headers.set(
        "Authorization", aka_credentials(challenge, b"", auts=base64.b64encode(b"short").decode())
    )
    assert final(world.run(again)).status == 403
    assert world.homestead.reg_calls == [(BOB_IMPU, ReqType.DEREG_AUTH_FAILED, SCSCF, BOB)]
    assert len(world.homestead.av_calls) == 1


def test_auts_with_a_wrong_response_is_403_without_resync() -> None:
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register())))
    rand, res, _, _, _ = ue(challenge)
    auts = base64.b64encode(make_auts(K, OPC, rand, 5000 * 32)).decode()
    again = next_request(aka_register())
    again.headers.set("Authorization", aka_credentials(challenge, res, auts=auts))  # not empty
    assert final(world.run(again)).status == 403
    assert len(world.homestead.av_calls) == 1


# --------------------------------------------------------------------------- which requests


def take(world: World, request: Request, route: Optional[str] = None) -> bool:
    helper = FakeTsxHelper(request, route=route)
    return world.sproutlet.get_tsx(helper, "scscf", request) is not None


def test_integrity_protected_rules() -> None:
    world = World()
    base = 'Digest username="bob@example.com", realm="example.com", nonce="", uri="sip:x"'
    assert take(world, register())
    assert take(world, register(authorization=base + ', response="", integrity-protected="no"'))
    assert not take(
        world, register(authorization=base + ', response="", integrity-protected="yes"')
    )
    assert take(world, register(authorization=base + ', response="ab", integrity-protected="yes"'))
    assert not take(
        world, register(authorization=base + ', response="ab", integrity-protected="tls-yes"')
    )
    assert take(
        world, register(authorization=base + ', response="", integrity-protected="tls-pending"')
    )
    # Emergency registrations are not challenged (every Contact has sos).
    assert not take(world, register(contact="<sip:alice@10.0.0.1;sos>"))
    assert take(world, register(contact="<sip:alice@10.0.0.1;sos>, <sip:alice@10.0.0.2>"))


def test_integrity_protected_yes_with_a_response_is_checked() -> None:
    world = World()
    (challenge,) = challenges_of(final(world.run(aka_register())))
    _, res, _, _, _ = ue(challenge)
    again = next_request(aka_register())
    text = aka_credentials(challenge, res).replace('"no"', '"yes"')
    again.headers.set("Authorization", text)
    assert len(world.run(again).forks) == 1


def test_authentication_off_takes_nothing() -> None:
    world = World(authentication=False)
    assert not take(world, register())
    assert not take(world, invite(), "<sip:scscf.sprout.example.com;lr;orig>")


def test_non_register_rules() -> None:
    orig = "<sip:scscf.sprout.example.com;transport=tcp;lr;orig>"
    digest_route = "<sip:scscf.sprout.example.com;lr;orig;username=alice%40example.com;nonce=n>"
    with_pa = invite()
    with_pa.headers.add("Proxy-Authorization", 'Digest username="alice@example.com"')
    never = World()
    assert not take(never, with_pa, orig) and not take(never, invite(), digest_route)
    by_pa = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.IF_PROXY_AUTHORIZATION_PRESENT}
        )
    )
    assert take(by_pa, with_pa, orig)
    assert not take(by_pa, invite(), orig)
    assert not take(by_pa, with_pa, "<sip:scscf.sprout.example.com;lr>")  # terminating
    assert not take(by_pa, with_pa)
    in_dialog = invite(to_tag="t1")
    in_dialog.headers.add("Proxy-Authorization", 'Digest username="alice@example.com"')
    assert not take(by_pa, in_dialog, orig)
    by_digest = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT}
        )
    )
    assert take(by_digest, invite(), digest_route)
    assert not take(by_digest, invite(), orig)
    assert not take(by_digest, with_pa, orig)


def test_non_register_from_a_digest_endpoint_gets_a_407_and_goes_on() -> None:
    world = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT}
        )
    )
    # Alice registers; the challenge is kept as long as her binding.
    helper = world.run(answered(world, register()))
    helper.respond(0, 200, headers=[("Service-Route", "<sip:scscf.sprout.example.com;lr;orig>")])
    (service_route,) = final(helper).headers.parsed(SERVICE_ROUTE)
    assert world.stored(ALICE)[0].expires == int(START) + 300
    route = str(service_route)
    assert "username=alice%40example.com" in route and "nonce=0000000000abc001" in route
    # Her INVITE, routed by that Service-Route, is challenged against the same credentials.
    request = invite()
    helper = world.run(request, route)
    response = final(helper)
    assert response.status == 407 and not helper.forks
    assert response.headers.count("WWW-Authenticate") == 0
    (challenge,) = challenges_of(response)
    assert (challenge.realm, challenge.algorithm, challenge.nonce) == (
        DOMAIN,
        "MD5",
        "0000000000abc003",
    )
    assert len(world.homestead.av_calls) == 1  # from the store, not homestead
    assert len(world.timers) == 0  # no timeout for a non-REGISTER challenge
    again = next_request(request)
    assert client().authorize_request(again, response)
    helper = world.run(again, route)
    assert len(helper.forks) == 1
    sent = helper.forks[0].request
    assert "Proxy-Authorization" not in sent.headers
    (top,) = sent.headers.parsed(ROUTE)
    assert top.uri.param("service") == "registrar" and top.uri.param("orig") == ""  # type: ignore[union-attr]
    assert top.uri.host == "sprout.example.com"  # type: ignore[union-attr]


def test_non_register_with_a_wrong_answer_is_403() -> None:
    world = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT}
        )
    )
    world.run(answered(world, register())).respond(0, 200)
    route = (
        "<sip:scscf.sprout.example.com;lr;orig;username=alice%40example.com;nonce=0000000000abc001>"
    )
    response = final(world.run(invite(), route))
    again = next_request(invite())
    assert DigestClient(ALICE, "wrong").authorize_request(again, response)
    assert final(world.run(again, route)).status == 403
    assert world.homestead.reg_calls[-1] == (ALICE_IMPU, ReqType.DEREG_AUTH_FAILED, SCSCF, ALICE)


def test_non_register_naming_no_known_challenge_is_403() -> None:
    world = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT}
        )
    )
    route = "<sip:scscf.sprout.example.com;lr;orig;username=alice%40example.com;nonce=gone>"
    assert final(world.run(invite(), route)).status == 403
    assert world.homestead.reg_calls == []


def test_auto_reg_non_register_gets_its_vector_from_homestead() -> None:
    world = World(
        non_register_authentication=frozenset(
            {NonRegisterAuthentication.IF_PROXY_AUTHORIZATION_PRESENT}
        )
    )
    request = invite()
    request.headers.add(
        "Proxy-Authorization",
        'Digest username="alice@example.com", realm="example.com", nonce="", uri="sip:x", '
        'response=""',
    )
    route = "<sip:scscf.sprout.example.com;lr;orig;auto-reg>"
    response = final(world.run(request, route))
    assert response.status == 407
    assert world.homestead.av_calls == [(ALICE, ALICE_IMPU, None, None, SCSCF)]
    again = next_request(request)
    assert client().authorize_request(again, response)
    helper = world.run(again, route)
    assert len(helper.forks) == 1 and "Proxy-Authorization" not in helper.forks[0].request.headers
    # Without auto-reg and without a digest identity on the Route, there is no vector: 403.
    assert final(world.run(request, "<sip:scscf.sprout.example.com;lr;orig>")).status == 403


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (HomesteadError(503, "overloaded"), 504),
        (HomesteadError(504, "no answer"), 504),
        (HomesteadError(500, "broken"), 403),
        (StoreUnavailableError("subscriber store down"), 504),
    ],
)
def test_homestead_failures(error: Exception, status: int) -> None:
    world = World()
    world.homestead.av_error = error
    helper = world.run(register())
    assert final(helper).status == status
    assert world.stored(ALICE) == () and len(world.timers) == 0
    assert world.homestead.reg_calls == []


def test_unknown_user_is_403() -> None:
    world = World()
    response = final(world.run(register("sip:nobody@example.com")))
    assert response.status == 403
    assert world.homestead.av_calls == [
        ("nobody@example.com", "sip:nobody@example.com", None, None, SCSCF)
    ]


def test_challenge_store_write_failure_is_500_and_the_timer_is_deleted() -> None:
    world = World()
    world.challenges.write_errors.append(StoreUnavailableError("memcached down"))
    response = final(world.run(register()))
    assert response.status == 500
    assert response.headers.count("WWW-Authenticate") == 0
    assert len(world.timers) == 0
    world.clock.advance(60)
    assert world.homestead.reg_calls == []


def test_challenge_store_read_failure_is_500_when_challenging() -> None:
    world = World()
    world.challenges.read_errors.append(StoreUnavailableError("memcached down"))
    assert final(world.run(register())).status == 500


def test_challenge_store_read_failure_with_credentials_is_504_not_403() -> None:
    world = World()
    again = answered(world, register())
    world.challenges.read_errors.append(StoreUnavailableError("memcached down"))
    helper = world.run(again)
    assert final(helper).status == 504 and not helper.forks
    assert world.homestead.reg_calls == []


def test_contention_is_retried() -> None:
    world = World()
    world.challenges.write_errors.append(DataContentionError("raced"))
    assert final(world.run(register())).status == 401
    assert len(world.stored(ALICE)) == 1


def test_a_failed_update_after_success_still_forwards() -> None:
    world = World()
    again = answered(world, register())
    world.challenges.write_errors.append(StoreUnavailableError("memcached down"))
    assert len(world.run(again).forks) == 1


# --------------------------------------------------------------------------- the timer


def test_unanswered_challenge_times_out_to_homestead() -> None:
    world = World()
    final(world.run(register()))
    world.clock.advance(29)
    assert world.homestead.reg_calls == []
    world.clock.advance(1)
    assert world.homestead.reg_calls == [(ALICE_IMPU, ReqType.DEREG_AUTH_TIMEOUT, SCSCF, ALICE)]
    assert world.stored(ALICE) == ()
    assert len(world.timers) == 0


def test_answered_challenge_does_not_time_out() -> None:
    world = World()
    assert len(world.run(answered(world, register())).forks) == 1
    # A pop that raced the timer's deletion finds the challenge answered.
    (stored,) = world.stored(ALICE)
    opaque = {"impi": ALICE, "impu": ALICE_IMPU, "nonce": stored.nonce}
    result(world.sproutlet.auth_timeout("t", opaque))
    world.clock.advance(60)
    assert world.homestead.reg_calls == []


def test_timeout_handler_is_registered_and_tolerates_junk() -> None:
    world = World()
    timer_id = result(world.timers.set_timer(AUTH_TIMEOUT_KIND, 1, {"impi": 7}))
    world.clock.advance(1)
    assert timer_id and len(world.timers) == 0  # handled (no redelivery)
    result(world.sproutlet.auth_timeout("t", {"impi": ALICE, "impu": ALICE_IMPU, "nonce": "x"}))
    assert world.homestead.reg_calls == []


def test_timeout_is_delivered_again_while_homestead_is_down() -> None:
    world = World(redelivery_delay=5)
    final(world.run(register()))
    world.homestead.reg_error = HomesteadError(504, "no answer")
    world.clock.advance(30)
    timeout = (ALICE_IMPU, ReqType.DEREG_AUTH_TIMEOUT, SCSCF, ALICE)
    assert world.homestead.reg_calls == [timeout] and len(world.timers) == 1
    assert len(world.stored(ALICE)) == 1
    world.homestead.reg_error = None
    world.clock.advance(5)  # redelivered (the challenge lives 40 s)
    assert world.homestead.reg_calls == [timeout, timeout]
    assert len(world.timers) == 0 and world.stored(ALICE) == ()


def test_timeout_refused_by_homestead_is_not_retried() -> None:
    world = World()
    final(world.run(register()))
    world.homestead.reg_error = HomesteadError(404, "unknown")
    world.clock.advance(30)
    assert len(world.homestead.reg_calls) == 1 and len(world.timers) == 0
    assert len(world.stored(ALICE)) == 1  # left to expire


def test_sproutlet_defaults() -> None:
    world = World()
    sproutlet = world.sproutlet
    assert (sproutlet.service_name, sproutlet.port, sproutlet.next_service) == (
        "scscf",
        5054,
        "registrar",
    )
    assert sproutlet.network_function == "scscf"
    default = AuthenticationSproutlet(
        world.config, world.homestead, world.challenges, world.timers, world.clock
    )
    nonce = default.token()
    assert len(nonce) == 16 and nonce != default.token()
