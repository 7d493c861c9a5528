"""HSS-less homestead (spec §6.1, §3.2) over the memory subscriber store.

:func:`provision` fills a store with the subscribers every homestead test uses; the HTTP
server and client tests import it.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from typing import Any, Optional, TypeVar

import attrs
import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater.aka import make_auts, next_sqn, split_challenge, ue_check
from clearwater.errors import ParseError
from clearwater.homestead import (
    AkaAv,
    AvScheme,
    ChargingAddresses,
    DigestAv,
    HomesteadError,
    HsslessHomestead,
    RegData,
    ReqType,
    ServerAssignment,
    parse_xml,
    wildcard_matches,
)
from clearwater.homestead.hssless import MAX_XML_CHARS
from clearwater.stores.interfaces import ISubscriberStore, StoreUnavailableError
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
)

_T = TypeVar("_T")

SCSCF = "sip:scscf.sprout.example.com:5054;transport=tcp"
DOMAIN = "example.com"

ALICE = "alice@example.com"
ALICE_IMPU = "sip:alice@example.com"
ALICE_TEL = "tel:+15551234"
ALICE_BARRED = "sip:alice-barred@example.com"
ALICE_HA1 = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
ALICE_IRS = "irs-alice"

BOB = "bob@example.com"  # AKA only
BOB_IMPU = "sip:bob@example.com"
BOB_IRS = "irs-bob"
# TS 35.208 test set 1.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")

CAROL = "carol@example.com"  # plaintext password only, no HA1 stored
CAROL_IMPU = "sip:carol@example.com"

WILD = "wild@example.com"
WILD_PATTERN = "sip:!.*!@wild.example.com"
WILD_IRS = "irs-wild"

EVE = "eve<&>\"'@example.com"
EVE_IMPU = "sip:<evil>&\"'@example.com"
EVE_IRS = "irs-eve"

IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF>0"
    "</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group>"
    "<Method>INVITE</Method></SPT></TriggerPoint><ApplicationServer>"
    "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)


def public_xml(impu: str, barred: bool = False, wildcard: Optional[str] = None) -> str:
    """A ``<PublicIdentity>`` element as homestead-prov would store it (built with ET)."""
    element = ET.Element("PublicIdentity")
    if barred:
        ET.SubElement(element, "BarringIndication").text = "1"
    ET.SubElement(element, "Identity").text = impu
    if wildcard is not None:
        extension = ET.SubElement(element, "Extension")
        ET.SubElement(extension, "IdentityType").text = "3"
        ET.SubElement(ET.SubElement(extension, "Extension"), "WildcardedIMPU").text = wildcard
    return ET.tostring(element, encoding="unicode")


def result(deferred: Deferred[_T]) -> _T:
    """The result of an already-fired Deferred (the memory store answers at once)."""
    results: list[Any] = []
    deferred.addBoth(results.append)
    assert results, "Deferred has not fired"
    value = results[0]
    if isinstance(value, Failure):
        value.raiseException()
    return value  # type: ignore[no-any-return]


def failure_value(deferred: Deferred[Any]) -> BaseException:
    """The exception an already-failed Deferred holds."""
    results: list[Any] = []
    deferred.addBoth(results.append)
    assert results and isinstance(results[0], Failure), results
    error = results[0].value
    assert error is not None
    return error


async def provision(store: ISubscriberStore) -> None:
    """The test subscribers (see the constants above)."""
    await store.put_private(PrivateIdentity(ALICE, DOMAIN, digest_ha1=ALICE_HA1))
    await store.create_irs(ALICE_IRS)
    await store.associate(ALICE_IRS, ALICE)
    sp = await store.create_service_profile(ALICE_IRS, IFC)
    for impu, barred in ((ALICE_IMPU, False), (ALICE_TEL, False), (ALICE_BARRED, True)):
        await store.put_public(
            PublicIdentity(impu, ALICE_IRS, sp.sp, public_xml(impu, barred), barred=barred)
        )

    await store.put_private(PrivateIdentity(BOB, DOMAIN, aka=AkaCredentials(K, OPC)))
    await store.create_irs(BOB_IRS)
    await store.associate(BOB_IRS, BOB)
    sp = await store.create_service_profile(BOB_IRS)
    await store.put_public(PublicIdentity(BOB_IMPU, BOB_IRS, sp.sp, public_xml(BOB_IMPU)))

    await store.put_private(PrivateIdentity(CAROL, "", plaintext_password="pw"))
    irs = await store.create_irs()
    await store.associate(irs, CAROL)
    sp = await store.create_service_profile(irs)
    await store.put_public(PublicIdentity(CAROL_IMPU, irs, sp.sp, ""))

    await store.put_private(PrivateIdentity(WILD, DOMAIN, digest_ha1="0" * 32))
    await store.create_irs(WILD_IRS)
    await store.associate(WILD_IRS, WILD)
    sp = await store.create_service_profile(WILD_IRS)
    await store.put_public(
        PublicIdentity(
            WILD_PATTERN,
            WILD_IRS,
            sp.sp,
            public_xml(WILD_PATTERN, wildcard=WILD_PATTERN),
            wildcard=WILD_PATTERN,
        )
    )

    await store.put_private(PrivateIdentity(EVE, DOMAIN, digest_ha1="1" * 32))
    await store.create_irs(EVE_IRS)
    await store.associate(EVE_IRS, EVE)
    sp = await store.create_service_profile(EVE_IRS)
    await store.put_public(PublicIdentity(EVE_IMPU, EVE_IRS, sp.sp, public_xml(EVE_IMPU)))


def make_homestead(
    store: Optional[ISubscriberStore] = None, rand: bytes = bytes(range(16))
) -> tuple[HsslessHomestead, ISubscriberStore]:
    if store is None:
        store = MemorySubscriberStore()
        result(Deferred.fromCoroutine(provision(store)))
    homestead = HsslessHomestead(
        store, scscf_uri=SCSCF, home_domain=DOMAIN, random=lambda n: rand[:n], now=lambda: 1000.0
    )
    return homestead, store


class _Case(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.homestead, self.store = make_homestead()

    def error(self, deferred: Deferred[Any]) -> HomesteadError:
        error = failure_value(deferred)
        assert isinstance(error, HomesteadError), error
        return error

    def sqn(self, impi: str) -> int:
        private = result(self.store.get_private(impi))
        assert private is not None and private.aka is not None
        return private.aka.sqn


class DigestTests(_Case):
    def test_bare_av_gives_the_digest_vector(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(ALICE, impu=ALICE_IMPU))
        assert vector == DigestAv(ALICE_HA1, DOMAIN, "auth")
        assert vector.to_json() == {"digest": {"ha1": ALICE_HA1, "realm": DOMAIN, "qop": "auth"}}

    def test_explicit_digest_scheme(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(ALICE, scheme=AvScheme.DIGEST))
        assert vector == DigestAv(ALICE_HA1, DOMAIN)

    def test_digest_path_gives_the_ha1(self) -> None:
        ha1 = self.successResultOf(self.homestead.get_digest(ALICE))
        assert ha1 == hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
        assert self.successResultOf(self.homestead.get_digest(ALICE, ALICE_TEL)) == ALICE_HA1

    def test_ha1_from_a_plaintext_password_uses_the_home_domain_realm(self) -> None:
        expected = hashlib.md5(b"carol@example.com:example.com:pw").hexdigest()
        assert self.successResultOf(self.homestead.get_digest(CAROL)) == expected
        vector = self.successResultOf(self.homestead.get_av(CAROL))
        sha256 = hashlib.sha256(b"carol@example.com:example.com:pw").hexdigest()
        assert vector == DigestAv(expected, DOMAIN, ha1_sha256=sha256)  # RFC 8760 too

    def test_aka_only_impi_has_no_digest(self) -> None:
        assert self.error(self.homestead.get_digest(BOB)).status == 404
        assert self.error(self.homestead.get_av(BOB, scheme=AvScheme.DIGEST)).status == 404

    def test_digest_only_impi_has_no_aka(self) -> None:
        error = self.error(self.homestead.get_av(ALICE, scheme=AvScheme.AKA))
        assert (error.status, error.message) == (
            404,
            "No AKA credentials for " + "private identity " + ALICE,
        )

    def test_unknown_impi(self) -> None:
        error = self.error(self.homestead.get_av("nobody@example.com"))
        assert (error.status, error.message) == (404, "Unknown private identity nobody@example.com")
        assert self.error(self.homestead.get_digest("nobody@example.com")).status == 404

    def test_impu_must_be_known_and_associated(self) -> None:
        assert self.error(self.homestead.get_av(ALICE, impu="sip:x@example.com")).status == 404
        error = self.error(self.homestead.get_av(ALICE, impu=BOB_IMPU))
        assert error.status == 404 and "do not match" in error.message
        assert self.error(self.homestead.get_digest(ALICE, BOB_IMPU)).status == 404

    def test_impu_through_a_wildcard(self) -> None:
        vector = self.successResultOf(
            self.homestead.get_av(WILD, impu="sip:anyone@wild.example.com")
        )
        assert isinstance(vector, DigestAv)


class AkaTests(_Case):
    def check(self, vector: Any, version: int, sqn: int) -> tuple[bytes, bytes]:
        assert isinstance(vector, AkaAv) and vector.version == version
        rand, autn = split_challenge(vector.challenge)
        assert rand == bytes(range(16))
        res, ck, ik, got_sqn = ue_check(K, OPC, rand, autn)
        assert (vector.response, vector.cryptkey, vector.integritykey) == (
            res.hex(),
            ck.hex(),
            ik.hex(),
        )
        assert got_sqn == sqn
        assert self.sqn(BOB) == sqn
        return rand, autn

    def test_bare_av_of_an_aka_only_impi_is_akav1(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(BOB, impu=BOB_IMPU))
        self.check(vector, 1, next_sqn(0))
        assert vector.to_json()["aka"]["version"] == 1

    def test_each_vector_takes_the_next_sqn(self) -> None:
        self.check(self.successResultOf(self.homestead.get_av(BOB, scheme=AvScheme.AKA)), 1, 32)
        self.check(self.successResultOf(self.homestead.get_av(BOB, scheme=AvScheme.AKA2)), 2, 64)

    def test_resync_continues_from_the_handsets_sqn(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(BOB, scheme=AvScheme.AKA))
        rand, _ = self.check(vector, 1, 32)
        sqn_ms = 5000 * 32
        auts = make_auts(K, OPC, rand, sqn_ms)
        resync = base64.b64encode(rand + auts).decode()
        vector = self.successResultOf(self.homestead.get_av(BOB, resync_auth=resync))
        self.check(vector, 1, next_sqn(sqn_ms))

    def test_malformed_resync_auth_is_400(self) -> None:
        error = self.error(self.homestead.get_av(BOB, scheme=AvScheme.AKA, resync_auth="!!"))
        assert error.status == 400 and error.message.startswith("Bad resync-auth")
        assert self.sqn(BOB) == 0

    def test_resync_auth_that_does_not_verify_is_403(self) -> None:
        auts = make_auts(bytes(16), OPC, bytes(16), 7 * 32)  # another key
        resync = base64.b64encode(bytes(16) + auts).decode()
        error = self.error(self.homestead.get_av(BOB, scheme=AvScheme.AKA, resync_auth=resync))
        assert error.status == 403
        assert self.sqn(BOB) == 0

    def test_a_lost_sqn_race_is_retried_from_the_new_sqn(self) -> None:
        store = self.store
        real = store.advance_sqn
        calls: list[tuple[int, int]] = []

        def racing(impi: str, expected: int, sqn: int) -> Deferred[bool]:
            calls.append((expected, sqn))
            if len(calls) == 1:  # another homestead issues a vector first
                result(real(impi, expected, 320))
                return real(impi, expected, sqn)
            return real(impi, expected, sqn)

        store.advance_sqn = racing  # type: ignore[method-assign]
        vector = self.successResultOf(self.homestead.get_av(BOB, scheme=AvScheme.AKA))
        assert calls == [(0, 32), (320, 352)]
        self.check(vector, 1, 352)

    def test_endless_contention_is_503(self) -> None:
        self.store.advance_sqn = lambda *args: succeed(False)  # type: ignore[method-assign]
        assert self.error(self.homestead.get_av(BOB, scheme=AvScheme.AKA)).status == 503


class AssignmentTests(_Case):
    def test_registration_status_names_the_configured_scscf(self) -> None:
        answer = self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        assert answer == ServerAssignment(2001, scscf=SCSCF)
        assert answer.to_json() == {"result-code": 2001, "scscf": SCSCF}
        for kind in ("REG", "DEREG", "CAPAB"):
            d = self.homestead.registration_status(ALICE, ALICE_TEL, auth_type=kind)
            assert self.successResultOf(d).scscf == SCSCF

    def test_registration_status_errors(self) -> None:
        hs = self.homestead
        assert self.error(hs.registration_status("x@example.com", ALICE_IMPU)).status == 404
        assert self.error(hs.registration_status(ALICE, "sip:x@example.com")).status == 404
        assert self.error(hs.registration_status(ALICE, BOB_IMPU)).status == 404
        assert self.error(hs.registration_status(ALICE, "")).status == 400
        error = self.error(hs.registration_status(ALICE, ALICE_IMPU, auth_type="BOGUS"))
        assert (error.status, error.message) == (400, "Bad auth-type: BOGUS")

    def test_barred_identity_may_not_register(self) -> None:
        hs = self.homestead
        assert self.error(hs.registration_status(ALICE, ALICE_BARRED)).status == 403
        assert (
            self.error(hs.registration_status(ALICE, ALICE_BARRED, auth_type="CAPAB")).status == 403
        )
        # ... but may de-register, and may register for emergency.
        self.successResultOf(hs.registration_status(ALICE, ALICE_BARRED, auth_type="DEREG"))
        self.successResultOf(hs.registration_status(ALICE, ALICE_BARRED, sos=True))

    def test_location(self) -> None:
        answer = self.successResultOf(self.homestead.location(ALICE_TEL))
        assert answer.to_json() == {"result-code": 2001, "scscf": SCSCF}
        assert self.error(self.homestead.location("sip:nobody@example.com")).status == 404
        assert self.error(self.homestead.location(ALICE_TEL, auth_type="x")).status == 400

    def test_location_through_a_wildcard(self) -> None:
        answer = self.successResultOf(self.homestead.location("sip:1234@wild.example.com"))
        assert answer.to_json() == {
            "result-code": 2001,
            "scscf": SCSCF,
            "wildcard-identity": WILD_PATTERN,
        }
        # The wildcard's domain part is literal.
        assert self.error(self.homestead.location("sip:1234@wild.example.org")).status == 404

    def test_server_assignment_json_round_trip(self) -> None:
        capabilities = ServerAssignment(2001, mandatory_capabilities=(1, 2))
        assert capabilities.to_json() == {
            "result-code": 2001,
            "mandatory-capabilities": [1, 2],
            "optional-capabilities": [],
        }
        for value in (capabilities, ServerAssignment(2003, "sip:s", wildcard_identity="sip:!x!")):
            assert ServerAssignment.from_json(value.to_json()) == value
        bad: Any
        for bad in ([], {"result-code": "2001"}, {"result-code": 1, "scscf": 3}):
            with pytest.raises(ParseError):
                ServerAssignment.from_json(bad)


class RegDataTests(_Case):
    def put(self, impu: str, reqtype: ReqType, **kwargs: Any) -> RegData:
        return self.successResultOf(self.homestead.put_reg_data(impu, reqtype, **kwargs))

    def registration(self, irs: str = ALICE_IRS) -> RegistrationState:
        return result(self.store.get_registration(irs))

    def test_get_reg_data_of_a_provisioned_subscriber(self) -> None:
        data = self.successResultOf(self.homestead.get_reg_data(ALICE_TEL))
        assert data.state is RegState.NOT_REGISTERED and data.previous_state is None
        assert data.private_id == ALICE
        assert [(i.identity, i.barred) for i in data.public_identities] == [
            (ALICE_IMPU, False),
            (ALICE_TEL, False),
            (ALICE_BARRED, True),
        ]
        assert data.default_public_identity == ALICE_IMPU
        (profile,) = data.service_profiles
        (ifc,) = profile.ifcs_xml
        server = ET.fromstring(ifc).findtext("ApplicationServer/ServerName")
        assert server == "sip:mmtel.example.com"
        root = ET.fromstring(data.to_xml())
        assert [child.tag for child in root] == ["RegistrationState", "IMSSubscription"]
        subscription = root.find("IMSSubscription")
        assert subscription is not None
        assert [child.tag for child in subscription] == ["PrivateID", "ServiceProfile"]
        assert [child.tag for child in subscription[1]] == ["PublicIdentity"] * 3 + [
            "InitialFilterCriteria"
        ]
        assert data.to_xml().startswith(
            b'<?xml version="1.0" encoding="UTF-8"?><ClearwaterRegData>'
        )

    def test_unknown_impu_is_404(self) -> None:
        assert self.error(self.homestead.get_reg_data("sip:x@example.com")).status == 404
        d = self.homestead.put_reg_data("sip:x@example.com", ReqType.REG)
        assert self.error(d).status == 404

    def test_reg_registers_and_records_scscf_and_impi(self) -> None:
        data = self.put(ALICE_TEL, ReqType.REG, server_name="sip:other-scscf", private_id=ALICE)
        assert (data.state, data.previous_state) == (RegState.REGISTERED, RegState.NOT_REGISTERED)
        assert self.registration() == RegistrationState(
            RegState.REGISTERED, "sip:other-scscf", ALICE, 1000.0
        )
        root = ET.fromstring(data.to_xml())
        assert root.findtext("PreviousRegistrationState") == "NOT_REGISTERED"
        data = self.put(ALICE_IMPU, ReqType.REG)
        assert (data.state, data.previous_state) == (RegState.REGISTERED, RegState.REGISTERED)
        assert self.registration().scscf == SCSCF  # default when sprout names none

    def test_call_assigns_unregistered_service_once(self) -> None:
        data = self.put(ALICE_IMPU, ReqType.CALL)
        assert (data.state, data.previous_state) == (
            RegState.UNREGISTERED,
            RegState.NOT_REGISTERED,
        )
        assert self.registration().state is RegState.UNREGISTERED
        self.put(ALICE_IMPU, ReqType.REG)
        data = self.put(ALICE_IMPU, ReqType.CALL)
        assert (data.state, data.previous_state) == (RegState.REGISTERED, RegState.REGISTERED)

    def test_dereg_leaves_the_subscriber_unregistered(self) -> None:
        for reqtype in (ReqType.DEREG_USER, ReqType.DEREG_TIMEOUT, ReqType.DEREG_ADMIN):
            self.put(ALICE_IMPU, ReqType.REG)
            data = self.put(ALICE_IMPU, reqtype)
            assert (data.state, data.previous_state) == (RegState.UNREGISTERED, None)
            assert b"PreviousRegistrationState" not in data.to_xml()
            assert self.registration().state is RegState.UNREGISTERED

    def test_dereg_of_a_subscriber_not_registered_is_400(self) -> None:
        d = self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER)
        assert self.error(d).status == 400
        self.put(ALICE_IMPU, ReqType.CALL)  # UNREGISTERED is not registered either
        assert (
            self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_TIMEOUT)).status == 400
        )
        assert self.registration().state is RegState.UNREGISTERED

    def test_auth_failures_change_nothing(self) -> None:
        for reqtype in (ReqType.DEREG_AUTH_FAILED, ReqType.DEREG_AUTH_TIMEOUT):
            data = self.put(ALICE_IMPU, reqtype)
            assert (data.state, data.previous_state) == (RegState.NOT_REGISTERED, None)
        assert self.registration() == RegistrationState()
        self.put(ALICE_IMPU, ReqType.REG)
        before = self.registration()
        data = self.put(ALICE_IMPU, ReqType.DEREG_AUTH_FAILED)
        assert data.state is RegState.REGISTERED and self.registration() == before

    def test_reg_through_a_wildcard_and_its_hint(self) -> None:
        data = self.put("sip:555@wild.example.com", ReqType.REG)
        assert data.state is RegState.REGISTERED
        assert result(self.store.get_registration(WILD_IRS)).state is RegState.REGISTERED
        (identity,) = data.public_identities
        assert (identity.identity, identity.wildcard, identity.uri) == (
            WILD_PATTERN,
            WILD_PATTERN,
            WILD_PATTERN,
        )
        hinted = self.put("sip:556@wild.example.com", ReqType.REG, wildcard_identity=WILD_PATTERN)
        assert hinted.previous_state is RegState.REGISTERED

    def test_private_id_chooses_the_private_identity(self) -> None:
        result(self.store.put_private(PrivateIdentity("alice2@example.com", DOMAIN, "a" * 32)))
        result(self.store.associate(ALICE_IRS, "alice2@example.com"))
        data = self.put(ALICE_IMPU, ReqType.REG, private_id="alice2@example.com")
        assert data.private_id == "alice2@example.com"
        # Later answers keep the IMPI the IRS registered with; an unknown one is not used.
        assert self.successResultOf(self.homestead.get_reg_data(ALICE_IMPU)).private_id == (
            "alice2@example.com"
        )
        data = self.put(ALICE_IMPU, ReqType.REG, private_id="stranger@example.com")
        assert data.private_id == "alice2@example.com"

    def test_hostile_identities_are_escaped(self) -> None:
        data = self.put(EVE_IMPU, ReqType.REG, private_id=EVE)
        document = data.to_xml()
        assert b"<evil>" not in document
        root = ET.fromstring(document)
        assert root.findtext("IMSSubscription/PrivateID") == EVE
        assert root.findtext("IMSSubscription/ServiceProfile/PublicIdentity/Identity") == EVE_IMPU
        parsed = RegData.from_xml(document)
        assert parsed.private_id == EVE and parsed.public_identities[0].identity == EVE_IMPU

    def test_private_id_that_xml_cannot_carry_is_400(self) -> None:
        d = self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id="a\x01b")
        assert self.error(d).status == 400

    def test_identity_without_provisioned_xml_is_built_from_the_record(self) -> None:
        data = self.successResultOf(self.homestead.get_reg_data(CAROL_IMPU))
        assert [i.identity for i in data.public_identities] == [CAROL_IMPU]
        assert data.private_id == CAROL

    def test_service_profiles_follow_provisioning_order(self) -> None:
        store = self.store
        irs = result(store.create_irs("zzz"))
        first = result(store.create_service_profile(irs, "<InitialFilterCriteria/>"))
        second = result(store.create_service_profile(irs, ""))
        # The profile created second holds the default identity: it must come first.
        for impu, sp in (("sip:d@x", second.sp), ("sip:e@x", first.sp), ("sip:f@x", second.sp)):
            result(store.put_public(PublicIdentity(impu, irs, sp, public_xml(impu))))
        data = self.successResultOf(self.homestead.get_reg_data("sip:e@x"))
        assert [[i.identity for i in p.public_identities] for p in data.service_profiles] == [
            ["sip:d@x", "sip:f@x"],
            ["sip:e@x"],
        ]
        assert [len(p.ifcs_xml) for p in data.service_profiles] == [0, 1]
        assert data.private_id == ""

    def test_ifcs_wrapped_in_a_service_profile_as_homestead_prov_stores_them(self) -> None:
        wrapped = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ServiceProfile>'
            + IFC * 2
            + "</ServiceProfile>"
        )
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), wrapped))
        data = self.successResultOf(self.homestead.get_reg_data(BOB_IMPU))
        assert len(data.service_profiles[0].ifcs_xml) == 2

    def test_a_provisioning_change_shows_in_the_next_reg_data(self) -> None:
        before = self.successResultOf(self.homestead.get_reg_data(BOB_IMPU))
        again = self.successResultOf(self.homestead.put_reg_data(BOB_IMPU, ReqType.CALL))
        assert again.service_profiles == before.service_profiles
        assert len(before.service_profiles[0].ifcs_xml) < 2
        assert again.ims_subscription_xml == before.ims_subscription_xml
        assert (again.state, again.previous_state) == (
            RegState.UNREGISTERED,
            RegState.NOT_REGISTERED,
        )
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), IFC * 2))
        after = self.successResultOf(self.homestead.get_reg_data(BOB_IMPU))
        assert len(after.service_profiles[0].ifcs_xml) == 2
        assert after.state is RegState.UNREGISTERED and after.previous_state is None

    def bob_sp(self) -> str:
        (profile,) = result(self.store.service_profiles_of_irs(BOB_IRS))
        return profile.sp

    def test_entity_declarations_in_provisioned_xml_are_refused(self) -> None:
        bomb = (
            '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            "<InitialFilterCriteria>&b;</InitialFilterCriteria>"
        )
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), bomb))
        error = self.error(self.homestead.get_reg_data(BOB_IMPU))
        assert error.status == 500 and "DOCTYPE" in error.message

    def test_malformed_provisioned_xml_is_500(self) -> None:
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), "<InitialFilterCriteria>"))
        assert self.error(self.homestead.get_reg_data(BOB_IMPU)).status == 500
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), "text<InitialFilterCriteria/>"))
        assert self.error(self.homestead.get_reg_data(BOB_IMPU)).status == 500
        public = result(self.store.get_public(BOB_IMPU))
        assert public is not None
        result(self.store.set_ifcs(BOB_IRS, self.bob_sp(), ""))
        result(self.store.put_public(attrs.evolve(public, xml="<Identity>x</Identity>")))
        assert self.error(self.homestead.get_reg_data(BOB_IMPU)).status == 500

    def test_store_failures_pass_through(self) -> None:
        self.store.get_public = lambda impu: fail(StoreUnavailableError("down"))  # type: ignore[method-assign]
        error = failure_value(self.homestead.get_reg_data(ALICE_IMPU))
        assert isinstance(error, StoreUnavailableError)


class XmlTests(SynchronousTestCase):
    def test_reg_data_round_trip_with_charging_addresses(self) -> None:
        document = (
            b'<?xml version="1.0" encoding="UTF-8"?><ClearwaterRegData>'
            b"<RegistrationState>REGISTERED</RegistrationState>"
            b"<PreviousRegistrationState>UNREGISTERED</PreviousRegistrationState>"
            b'<IMSSubscription xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            b"<PrivateID>p@x</PrivateID><ServiceProfile><PublicIdentity>"
            b"<BarringIndication>1</BarringIndication><Identity>sip:a@x</Identity>"
            b"</PublicIdentity><PublicIdentity><Identity>sip:b@x</Identity></PublicIdentity>"
            b"</ServiceProfile></IMSSubscription><ChargingAddresses>"
            b'<CCF priority="2">ccf2</CCF><CCF priority="1">ccf1</CCF><ECF priority="1">ecf1</ECF>'
            b"</ChargingAddresses></ClearwaterRegData>"
        )
        data = RegData.from_xml(document)
        assert (data.state, data.previous_state) == (RegState.REGISTERED, RegState.UNREGISTERED)
        assert data.charging_addresses == ChargingAddresses(("ccf1", "ccf2"), ("ecf1",))
        assert data.default_public_identity == "sip:b@x"
        assert RegData.from_xml(data.to_xml()) == data
        assert b'<CCF priority="1">ccf1</CCF>' in data.to_xml()

    def test_reg_data_without_subscription(self) -> None:
        data = RegData.from_xml(
            "<ClearwaterRegData><RegistrationState>NOT_REGISTERED</RegistrationState>"
            "</ClearwaterRegData>"
        )
        assert data == RegData(RegState.NOT_REGISTERED)
        assert data.public_identities == () and data.default_public_identity is None

    def test_bad_reg_data(self) -> None:
        for bad in (
            b"<ClearwaterRegData>",
            b"<Other/>",
            b"<ClearwaterRegData><RegistrationState>WEIRD</RegistrationState></ClearwaterRegData>",
            b"<ClearwaterRegData/>",
            b"\xff\xfe",
            b"<!DOCTYPE x><ClearwaterRegData/>",
        ):
            with pytest.raises(ParseError):
                RegData.from_xml(bad)

    def test_parse_xml_limits(self) -> None:
        with pytest.raises(ParseError) as raised:
            parse_xml("<a>" + "x" * MAX_XML_CHARS + "</a>", "test")
        assert raised.value.reason == "test XML too large"
        with pytest.raises(ParseError):
            parse_xml('<!doctype a SYSTEM "file:///etc/passwd"><a/>', "test")
        assert parse_xml("<a>&amp;&#65;</a>", "test").text == "&A"
        with pytest.raises(ParseError, match="unknown encoding"):
            parse_xml(b'<?xml version="1.0" encoding="base64"?><a/>', "test")

    def test_av_json_round_trips(self) -> None:
        aka = AkaAv("Y2hhbGxlbmdl", "00", "11", "22", 2)
        assert AkaAv.from_json(aka.to_json()["aka"]) == aka
        assert "00" not in repr(aka)
        assert DigestAv.from_json({"ha1": "h", "realm": "r", "qop": ""}) == DigestAv("h", "r")
        for bad in ({"challenge": "c"}, {**aka.to_json()["aka"], "version": 3}):
            with pytest.raises(ParseError):
                AkaAv.from_json(bad)


class WildcardTests(SynchronousTestCase):
    def test_matches(self) -> None:
        assert wildcard_matches("sip:!.*!@example.com", "sip:anything@example.com")
        assert wildcard_matches("sip:65!\\d+!@example.com", "sip:65123@example.com")
        assert wildcard_matches("sip:!.*!@example.com;user=phone", "sip:a@example.com;x")
        assert wildcard_matches("sip:a@x", "sip:a@x")
        assert wildcard_matches("sip:a@x;p", "sip:a@x;q")
        assert wildcard_matches("sip:!a@x", "sip:!a@x;z")  # one "!" only: a plain identity

    def test_does_not_match(self) -> None:
        assert not wildcard_matches("sip:65!\\d+!@example.com", "sip:65abc@example.com")
        assert not wildcard_matches("sip:65!\\d+!@example.com", "sip:6512@example.org")
        assert not wildcard_matches("sip:!.*!@example.com", "sips:a@example.com")
        assert not wildcard_matches("sip:a@x", "sip:b@x")
        assert not wildcard_matches("sip:![!@x", "sip:a@x")  # bad regex
        assert not wildcard_matches("sip:!.*!@longer.example.com", "sip:@x")
        assert not wildcard_matches("", "sip:a@x")


class DigestSha256Tests(_Case):
    """The SHA-256 HA1 (RFC 8760) a digest vector carries when the password is known."""

    def test_plaintext_password_gives_a_sha256_ha1_too(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(CAROL, scheme=AvScheme.DIGEST))
        assert isinstance(vector, DigestAv)
        assert vector.ha1 == hashlib.md5(b"carol@example.com:example.com:pw").hexdigest()
        assert vector.ha1_sha256 == hashlib.sha256(b"carol@example.com:example.com:pw").hexdigest()
        assert vector.to_json()["digest"]["ha1_sha256"] == vector.ha1_sha256

    def test_ha1_only_gives_no_sha256_ha1(self) -> None:
        vector = self.successResultOf(self.homestead.get_av(ALICE))
        assert isinstance(vector, DigestAv) and vector.ha1_sha256 == ""
        assert "ha1_sha256" not in vector.to_json()["digest"]

    def test_sha256_ha1_json_round_trip(self) -> None:
        vector = DigestAv("a" * 32, DOMAIN, "auth", "b" * 64)
        assert vector.to_json() == {
            "digest": {"ha1": "a" * 32, "realm": DOMAIN, "qop": "auth", "ha1_sha256": "b" * 64}
        }
        assert DigestAv.from_json(vector.to_json()["digest"]) == vector
        assert DigestAv.from_json({"ha1": "h", "realm": "r", "qop": "auth"}).ha1_sha256 == ""
        with pytest.raises(ParseError):
            DigestAv.from_json({"ha1": "h", "realm": "r", "ha1_sha256": 7})
