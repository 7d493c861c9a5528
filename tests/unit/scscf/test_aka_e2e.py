"""AKA registration end to end in process (issue #6; spec §3.2, RFC 3310, RFC 4169, TS 33.102
§6.3.3 / §6.3.5): our UA core with :class:`~clearwater.sip.auth.AkaClient` as the USIM,
registering through the S-CSCF of tests/unit/scscf/test_scscf.py's :class:`Core` harness (its
sproutlets, HSS-less homestead over the memory subscriber store, memory stores and timers;
every packet over memory UDP links).

Registers with AKAv1-MD5 and AKAv2-MD5 (401, then 200), then makes the USIM's SQN run ahead of
the HSS's (or the HSS's fall behind) so that the UE answers with ``auts``: the S-CSCF fetches a
re-synchronised vector, challenges again, and the registration ends 200.
"""

from __future__ import annotations

import base64
from typing import Optional, cast

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clearwater._types import ISipReactor
from clearwater.aka import next_sqn, parse_auts, split_challenge, ue_check
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.sip import Challenge, Credentials, Request, Response
from clearwater.sip import headers as h
from clearwater.sip.auth import AkaClient
from clearwater.sip.ua import UserAgent
from clearwater.stores.records import AkaCredentials
from clearwater.testing.reactor import LossyDatagramLink
from tests.unit.scscf.test_scscf import HOME, OUTBOUND, PROXY, Core

UE = "10.0.0.5"
IMPI = "ue@" + HOME
IMPU = "sip:ue@" + HOME
# TS 35.208 test set 1's K and OPc.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
AHEAD = 5000 << 5  # an SQN_MS far ahead of a fresh HSS (SEQ 5000, IND 0)


class AkaPhone:
    """A UE on :data:`UE` with a USIM (K, OPc), provisioned in ``core``'s homestead with
    ``network_k`` (K unless a test wants the network to be someone else)."""

    def __init__(self, core: Core, *, sqn: int = 0, network_k: bytes = K, hss_sqn: int = 0) -> None:
        self.core = core
        core.result(
            Deferred.fromCoroutine(
                provision_subscriber(
                    core.subscribers,
                    IMPI,
                    [IMPU, "tel:+15559999"],
                    realm=HOME,
                    aka=AkaCredentials(network_k, OPC, sqn=hss_sqn),
                )
            )
        )
        self.client = AkaClient(IMPI, K, OPC, sqn=sqn)
        self.ua = UserAgent(
            cast(ISipReactor, core.reactor),
            user="ue",
            outbound_proxy=OUTBOUND,
            credentials=self.client,
        )
        self.ua.listen("udp:" + UE + ":5060")
        listeners = core.reactor.udp_listeners
        core.links += [
            LossyDatagramLink(a, b)
            for a in listeners
            for b in listeners
            if a.interface == UE and b.interface == PROXY
        ]

    def register_request(self, algorithm: Optional[str] = None) -> Request:
        """A REGISTER for :data:`IMPU`; with ``algorithm`` it carries the initial
        Authorization of TS 24.229 §5.1.1.2.1 asking for that AKA algorithm."""
        aor = "<" + IMPU + ">"
        request = self.ua.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
        request.headers.add("Contact", "<sip:ue@" + UE + ":5060>")
        request.headers.add("Expires", "300")
        if algorithm is not None:
            initial = self.client.initial_credentials(HOME, "sip:" + HOME, algorithm)
            request.headers.add("Authorization", initial)
        return request

    def send(self, request: Request) -> Response:
        return self.core.result(self.ua.send(request))

    def sent_registers(self) -> list[Request]:
        return [m for m in self.core.written(UE, PROXY) if isinstance(m, Request)]

    def challenges(self) -> list[Challenge]:
        """The WWW-Authenticate of each 401 the S-CSCF sent the UE, in order."""
        out = []
        for message in self.core.written(PROXY, UE):
            if isinstance(message, Response) and message.status == 401:
                [challenge] = message.headers.parsed(h.WWW_AUTHENTICATE)
                out.append(challenge)
        return out

    def hss_sqn(self) -> int:
        private = self.core.result(self.core.subscribers.get_private(IMPI))
        assert private is not None and private.aka is not None
        return private.aka.sqn

    def binding(self) -> list[str]:
        aor, _ = self.core.result(self.core.registrations.get_aor(IMPU))
        return [] if aor is None else [b.uri for _, b in aor.bindings]


def authorization(request: Request) -> Credentials:
    [credentials] = request.headers.parsed(h.AUTHORIZATION)
    return credentials


def challenge_sqn(challenge: Challenge) -> int:
    """The SQN the challenge's AUTN carries (the USIM's view of it)."""
    rand, autn = split_challenge(challenge.nonce or "")
    return ue_check(K, OPC, rand, autn)[3]


class AkaRegistrationTests(SynchronousTestCase):
    def test_akav1_registration_is_challenged_then_200(self) -> None:
        core = Core()
        ue = AkaPhone(core)
        response = ue.send(ue.register_request())
        assert response.status == 200
        [challenge] = ue.challenges()
        assert challenge.algorithm == "AKAv1-MD5"
        assert challenge.realm == HOME and challenge.qop_options == ("auth",)
        # The keys the S-CSCF sent for the P-CSCF are the ones the USIM derived.
        assert ue.client.ck is not None and ue.client.ik is not None
        assert (challenge.param("ck"), challenge.param("ik")) == (
            ue.client.ck.hex(),
            ue.client.ik.hex(),
        )
        first, second = ue.sent_registers()
        assert "Authorization" not in first.headers
        credentials = authorization(second)
        assert credentials.algorithm == "AKAv1-MD5" and credentials.auts is None
        assert credentials.nonce == challenge.nonce
        assert challenge_sqn(challenge) == next_sqn(0) == ue.client.sqn == ue.hss_sqn()
        assert ue.binding() == ["sip:ue@" + UE + ":5060"]
        assert response.headers.get_all("P-Associated-URI") == ["<" + IMPU + ">", "<tel:+15559999>"]

    def test_akav2_registration_when_the_first_register_asks_for_it(self) -> None:
        core = Core()
        ue = AkaPhone(core)
        response = ue.send(ue.register_request("AKAv2-MD5"))
        assert response.status == 200
        [challenge] = ue.challenges()
        assert challenge.algorithm == "AKAv2-MD5"
        first, second = ue.sent_registers()
        assert authorization(first).response == "" and authorization(first).nonce == ""
        credentials = authorization(second)
        assert credentials.algorithm == "AKAv2-MD5" and credentials.nonce == challenge.nonce
        assert ue.binding() == ["sip:ue@" + UE + ":5060"]

    def test_a_second_registration_takes_the_next_sqn(self) -> None:
        core = Core()
        ue = AkaPhone(core)
        assert ue.send(ue.register_request()).status == 200
        assert ue.send(ue.register_request()).status == 200
        assert [challenge_sqn(c) for c in ue.challenges()] == [32, 64]
        assert ue.client.sqn == ue.hss_sqn() == 64

    def test_resync_when_the_usim_is_ahead(self) -> None:
        core = Core()
        ue = AkaPhone(core, sqn=AHEAD)
        response = ue.send(ue.register_request())
        # The UE answered the first challenge with auts; the S-CSCF challenged again, and
        # the UA core answered that too (RFC 3310 §3.4: not a refusal).
        assert response.status == 200
        first, resync = ue.challenges()
        assert challenge_sqn(first) == 32  # stale for the USIM
        _, with_auts, _ = ue.sent_registers()
        credentials = authorization(with_auts)
        assert credentials.nonce == first.nonce and credentials.auts is not None
        rand, _ = split_challenge(first.nonce or "")
        assert parse_auts(K, OPC, rand, base64.b64decode(credentials.auts)) == AHEAD
        # homestead continued from SQN_MS: the new challenge is fresh for the USIM.
        assert challenge_sqn(resync) == next_sqn(AHEAD) == ue.hss_sqn()
        assert resync.nonce != first.nonce and not resync.stale
        assert ue.client.sqn == next_sqn(AHEAD)
        last = authorization(ue.sent_registers()[-1])
        assert last.nonce == resync.nonce and last.auts is None
        assert ue.binding() == ["sip:ue@" + UE + ":5060"]

    def test_resync_when_the_hss_falls_behind(self) -> None:
        core = Core()
        ue = AkaPhone(core)
        assert ue.send(ue.register_request()).status == 200
        assert ue.hss_sqn() == 32
        # The HSS loses its SQN (say, restored from an old backup).
        assert core.result(core.subscribers.advance_sqn(IMPI, 32, 0))
        assert ue.send(ue.register_request()).status == 200
        challenges = ue.challenges()
        assert [challenge_sqn(c) for c in challenges] == [32, 32, 64]
        assert authorization(ue.sent_registers()[-2]).auts is not None
        assert authorization(ue.sent_registers()[-1]).auts is None
        assert ue.client.sqn == ue.hss_sqn() == 64

    def test_akav2_resync(self) -> None:
        core = Core()
        ue = AkaPhone(core, sqn=AHEAD)
        assert ue.send(ue.register_request("AKAv2-MD5")).status == 200
        assert [c.algorithm for c in ue.challenges()] == ["AKAv2-MD5", "AKAv2-MD5"]
        assert authorization(ue.sent_registers()[-2]).auts is not None
        assert ue.client.sqn == ue.hss_sqn() == next_sqn(AHEAD)
        assert ue.binding() == ["sip:ue@" + UE + ":5060"]

    def test_a_network_that_fails_authentication_gets_no_answer(self) -> None:
        core = Core()
        ue = AkaPhone(core, network_k=bytes(16))  # the HSS holds another K
        response = ue.send(ue.register_request())
        assert response.status == 401  # handed back: the USIM found MAC-A wrong
        assert len(ue.sent_registers()) == 1
        assert ue.client.sqn == 0 and ue.binding() == []
