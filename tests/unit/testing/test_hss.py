"""The scripted HSS (clearwater.testing.hss): every Cx answer it gives (TS 29.228 §6, TS 29.229
§6), the registration state it keeps in the store, its test controls, RTR/PPR, and its command
line's argument checks."""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any, Optional, Union

import attrs
import pytest
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest
from typing_extensions import override
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater.aka import make_auts, next_sqn, ue_check
from clearwater.diameter.apps import cx
from clearwater.diameter.apps.cx import (
    CX,
    ChargingInformation,
    CxOutcome,
    ReasonCode,
    ServerAssignmentType,
    ServerCapabilities,
    UserAuthorizationType,
)
from clearwater.diameter.dictionary import APP_CX, VENDOR_3GPP
from clearwater.diameter.interfaces import IDiameterNode, NoPeerError, PeerInfo, RequestHandler
from clearwater.diameter.message import FLAG_ERROR, Message, parse_message
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.homestead.hssless import HomesteadError
from clearwater.stores.interfaces import ISubscriberStore, StoreUnavailableError
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
)
from clearwater.testing.diameter import DiameterNetwork
from clearwater.testing.hss import HssAdminResource, ScriptedHss, main, parse_listen

SCSCF = "sip:scscf.sprout.example.com;transport=tcp"
OTHER_SCSCF = "sip:scscf2.sprout.example.com;transport=tcp"
DOMAIN = "example.com"
NOW = 1234.5

ALICE = "alice@example.com"  # digest, password "secret"; two IMPUs in one IRS
ALICE_IMPU = "sip:alice@example.com"
ALICE_TEL = "tel:+15551234"
ALICE_IRS = "irs-alice"
ALICE_HA1 = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()

BOB = "bob@example.com"  # AKA only; its iFC serves it unregistered (terminating)
BOB_IMPU = "sip:bob@example.com"
BOB_IRS = "irs-bob"
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")  # TS 35.208 test set 1
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
BOB_SQN = 0x40

CAROL = "carol@example.com"  # its only IMPU is barred
CAROL_IMPU = "sip:carol@example.com"
CAROL_IRS = "irs-carol"

WILD = "wild@example.com"
WILD_PATTERN = "sip:!.*!@wild.example.com"
WILD_IRS = "irs-wild"

RAND = bytes(range(16))
CLIENT = "homestead.example.com"
PEER = PeerInfo(CLIENT, DOMAIN, "127.0.0.1:40000")

IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF>0"
    "</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group>"
    "<Method>INVITE</Method></SPT></TriggerPoint><ApplicationServer>"
    "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)
# An iFC for calls to the user while unregistered (SessionCase 2, TS 29.228 Annex B.2.2).
UNREGISTERED_IFC = (
    '<?xml version="1.0" encoding="UTF-8"?><ServiceProfile><InitialFilterCriteria>'
    "<Priority>1</Priority><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT>"
    "<ConditionNegated>0</ConditionNegated><Group>0</Group><SessionCase>2</SessionCase></SPT>"
    "</TriggerPoint><ApplicationServer><ServerName>sip:vm.example.com</ServerName>"
    "<DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>"
    "</ServiceProfile>"
)


def public_xml(impu: str, barred: bool = False) -> str:
    element = ET.Element("PublicIdentity")
    if barred:
        ET.SubElement(element, "BarringIndication").text = "1"
    ET.SubElement(element, "Identity").text = impu
    return ET.tostring(element, encoding="unicode")


async def provision(store: ISubscriberStore) -> None:
    await store.put_private(
        PrivateIdentity(ALICE, DOMAIN, digest_ha1=ALICE_HA1, plaintext_password="secret")
    )
    await store.create_irs(ALICE_IRS)
    await store.associate(ALICE_IRS, ALICE)
    sp = await store.create_service_profile(ALICE_IRS, IFC)
    for impu in (ALICE_IMPU, ALICE_TEL):
        await store.put_public(PublicIdentity(impu, ALICE_IRS, sp.sp, public_xml(impu)))

    aka = AkaCredentials(K, OPC, sqn=BOB_SQN)
    await store.put_private(PrivateIdentity(BOB, DOMAIN, aka=aka))
    await store.create_irs(BOB_IRS)
    await store.associate(BOB_IRS, BOB)
    sp = await store.create_service_profile(BOB_IRS, UNREGISTERED_IFC)
    await store.put_public(PublicIdentity(BOB_IMPU, BOB_IRS, sp.sp, public_xml(BOB_IMPU)))

    await store.put_private(PrivateIdentity(CAROL, DOMAIN, digest_ha1="0" * 32))
    await store.create_irs(CAROL_IRS)
    await store.associate(CAROL_IRS, CAROL)
    sp = await store.create_service_profile(CAROL_IRS)
    await store.put_public(
        PublicIdentity(CAROL_IMPU, CAROL_IRS, sp.sp, public_xml(CAROL_IMPU, True), barred=True)
    )

    await store.put_private(PrivateIdentity(WILD, DOMAIN, digest_ha1="1" * 32))
    await store.create_irs(WILD_IRS)
    await store.associate(WILD_IRS, WILD)
    sp = await store.create_service_profile(WILD_IRS)
    await store.put_public(
        PublicIdentity(
            WILD_PATTERN, WILD_IRS, sp.sp, public_xml(WILD_PATTERN), wildcard=WILD_PATTERN
        )
    )


@implementer(IDiameterNode)
class FakeNode:
    """An IDiameterNode in memory: the handlers set, and the requests sent (each with its
    timeout and the Deferred the test fires)."""

    identity = "hss.example.com"
    realm = DOMAIN

    def __init__(self) -> None:
        self.handlers: dict[int, RequestHandler] = {}
        self.sent: list[tuple[Message, Optional[float], Deferred[Message]]] = []
        self.sessions = 0

    def new_session_id(self, suffix: str = "") -> str:
        self.sessions += 1
        return f"{self.identity};1;{self.sessions}" + (";" + suffix if suffix else "")

    def request(self, message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
        d: Deferred[Message] = Deferred()
        self.sent.append((message, timeout, d))
        return d

    def set_handler(self, application_id: int, handler: RequestHandler) -> None:
        self.handlers[application_id] = handler


def _head(hbh: int = 0x11223344) -> dict[str, Any]:
    return {
        "session_id": f"{CLIENT};1;{hbh}",
        "origin_host": CLIENT,
        "origin_realm": DOMAIN,
        "destination_realm": DOMAIN,
    }


def uar(
    impi: str = ALICE,
    impu: str = ALICE_IMPU,
    kind: int = UserAuthorizationType.REGISTRATION,
    emergency: bool = False,
) -> Message:
    message = cx.uar(
        impi=impi,
        impu=impu,
        visited_network=DOMAIN,
        authorization_type=kind,
        emergency=emergency,
        **_head(),
    )
    return attrs.evolve(message, hop_by_hop=0x11223344, end_to_end=0x55667788)


def mar(
    impi: str = ALICE,
    impu: str = ALICE_IMPU,
    scheme: str = cx.SCHEME_DIGEST,
    authorization: Optional[bytes] = None,
) -> Message:
    return cx.mar(
        impi=impi,
        impu=impu,
        scheme=scheme,
        server_name=SCSCF,
        authorization=authorization,
        **_head(),
    )


def sar(
    kind: int,
    impi: Optional[str] = ALICE,
    impu: str = ALICE_IMPU,
    server_name: str = SCSCF,
) -> Message:
    return cx.sar(impi=impi, impu=impu, server_name=server_name, assignment_type=kind, **_head())


def lir(impu: str = ALICE_IMPU, originating: bool = False, kind: Optional[int] = None) -> Message:
    return cx.lir(impu=impu, originating=originating, authorization_type=kind, **_head())


def wire(message: Message) -> Message:
    """``message`` through its bytes (what a peer would read)."""
    return parse_message(bytes(message))


class _Case(SynchronousTestCase):
    charging: Optional[ChargingInformation] = None

    @override
    def setUp(self) -> None:
        self.store = MemorySubscriberStore()
        self.successResultOf(Deferred.fromCoroutine(provision(self.store)))
        self.node = FakeNode()
        self.hss = ScriptedHss(
            self.node,
            self.store,
            scscf_uri=SCSCF,
            home_domain=DOMAIN,
            charging=self.charging,
            random=lambda n: RAND[:n],
            now=lambda: NOW,
        )

    def answer(self, request: Message) -> Message:
        result: Union[Message, Deferred[Message]] = self.hss.handle(request, PEER)
        if isinstance(result, Deferred):
            result = self.successResultOf(result)
        assert result.command_code == request.command_code and not result.is_request
        assert (result.hop_by_hop, result.end_to_end) == (request.hop_by_hop, request.end_to_end)
        answer = wire(result)
        assert CX.get(answer, "Session-Id") == CX.get(request, "Session-Id")
        assert answer.avps[0].code == 263  # Session-Id first (RFC 6733 §8.8)
        assert CX.get(answer, "Origin-Host") == "hss.example.com"
        assert CX.get(answer, "Origin-Realm") == DOMAIN
        return answer

    def registration(self, irs: str) -> RegistrationState:
        return self.successResultOf(self.store.get_registration(irs))

    def set_registration(
        self, irs: str, state: RegState, scscf: str = SCSCF, impi: str = ALICE
    ) -> None:
        self.successResultOf(
            self.store.set_registration(irs, RegistrationState(state, scscf, impi, 1.0))
        )

    def sqn(self, impi: str) -> int:
        private = self.successResultOf(self.store.get_private(impi))
        assert private is not None and private.aka is not None
        return private.aka.sqn


def experimental(code: int) -> CxOutcome:
    return CxOutcome(code, experimental=True)


class InstallTests(_Case):
    def test_fake_node_provides_the_interface(self) -> None:
        assert verifyObject(IDiameterNode, self.node)

    def test_install_answers_cx(self) -> None:
        self.hss.install()
        handler = self.node.handlers[APP_CX]
        result = handler(uar(), PEER)
        assert isinstance(result, Deferred)
        uaa = cx.parse_uaa(wire(self.successResultOf(result)))
        assert uaa.outcome == experimental(2001)
        assert list(self.node.handlers) == [APP_CX]


class UarTests(_Case):
    def test_not_registered_is_first_registration_with_the_configured_scscf(self) -> None:
        answer = self.answer(uar())
        uaa = cx.parse_uaa(answer)
        assert uaa.outcome == CxOutcome(2001, experimental=True, vendor_id=VENDOR_3GPP)
        assert uaa.server_name == SCSCF
        assert CX.get(answer, "Result-Code") is None
        assert CX.get(answer, "Auth-Session-State") == 1
        assert not answer.is_error

    def test_registered_is_subsequent_registration_with_the_assigned_scscf(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, OTHER_SCSCF)
        for impu in (ALICE_IMPU, ALICE_TEL):
            uaa = cx.parse_uaa(self.answer(uar(impu=impu)))
            assert (uaa.outcome, uaa.server_name) == (experimental(2002), OTHER_SCSCF)

    def test_unregistered_is_subsequent_registration(self) -> None:
        self.set_registration(ALICE_IRS, RegState.UNREGISTERED, OTHER_SCSCF)
        uaa = cx.parse_uaa(self.answer(uar()))
        assert (uaa.outcome, uaa.server_name) == (experimental(2002), OTHER_SCSCF)

    def test_registered_without_a_stored_scscf_names_the_configured_one(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, "")
        uaa = cx.parse_uaa(self.answer(uar()))
        assert (uaa.outcome, uaa.server_name) == (experimental(2002), SCSCF)

    def test_deregistration_of_a_registered_identity_is_success(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, OTHER_SCSCF)
        uaa = cx.parse_uaa(self.answer(uar(kind=UserAuthorizationType.DE_REGISTRATION)))
        assert (uaa.outcome, uaa.server_name) == (CxOutcome(2001), OTHER_SCSCF)

    def test_deregistration_of_an_unregistered_identity_is_not_registered(self) -> None:
        uaa = cx.parse_uaa(self.answer(uar(kind=UserAuthorizationType.DE_REGISTRATION)))
        assert (uaa.outcome, uaa.server_name) == (experimental(5003), None)

    def test_capabilities_asked_gives_first_registration_with_capabilities(self) -> None:
        self.hss.capabilities = ServerCapabilities((1, 2), (3,))
        self.set_registration(ALICE_IRS, RegState.REGISTERED, OTHER_SCSCF)
        kind = UserAuthorizationType.REGISTRATION_AND_CAPABILITIES
        uaa = cx.parse_uaa(self.answer(uar(kind=kind)))
        assert uaa.outcome == experimental(2001)
        assert uaa.server_name is None
        assert uaa.capabilities == ServerCapabilities((1, 2), (3,))

    def test_unknown_identities_are_user_unknown(self) -> None:
        for impi, impu in (("nobody@example.com", ALICE_IMPU), (ALICE, "sip:nobody@example.com")):
            uaa = cx.parse_uaa(self.answer(uar(impi, impu)))
            assert uaa.outcome == experimental(5001)
            assert uaa.server_name is None

    def test_identities_of_two_users_do_not_match(self) -> None:
        uaa = cx.parse_uaa(self.answer(uar(ALICE, BOB_IMPU)))
        assert uaa.outcome == experimental(5002)

    def test_barred_identity_is_authorization_rejected(self) -> None:
        answer = self.answer(uar(CAROL, CAROL_IMPU))
        assert cx.parse_uaa(answer).outcome == CxOutcome(5003)  # Result-Code, not experimental
        assert CX.get(answer, "Experimental-Result", "Experimental-Result-Code") is None

    def test_barred_identity_may_register_for_an_emergency_and_deregister(self) -> None:
        uaa = cx.parse_uaa(self.answer(uar(CAROL, CAROL_IMPU, emergency=True)))
        assert uaa.outcome == experimental(2001)
        self.set_registration(CAROL_IRS, RegState.REGISTERED)
        dereg = uar(CAROL, CAROL_IMPU, kind=UserAuthorizationType.DE_REGISTRATION)
        assert cx.parse_uaa(self.answer(dereg)).outcome == CxOutcome(2001)

    def test_wildcarded_identity_is_found(self) -> None:
        uaa = cx.parse_uaa(self.answer(uar(WILD, "sip:anyone@wild.example.com")))
        assert uaa.outcome == experimental(2001)

    def test_missing_avp_is_answered_with_failed_avp(self) -> None:
        request = uar()
        request = attrs.evolve(request, avps=tuple(a for a in request.avps if a.code != 1))
        answer = self.answer(request)
        assert cx.parse_outcome(answer) == CxOutcome(5005)
        failed = CX.find(answer, "Failed-AVP", "User-Name")
        assert failed is not None and failed.data == b""


class MarTests(_Case):
    def test_digest(self) -> None:
        answer = self.answer(mar())
        maa = cx.parse_maa(answer)
        assert maa.outcome == CxOutcome(2001)
        assert maa.scheme == cx.SCHEME_DIGEST
        assert maa.digest == cx.DigestVector(ALICE_HA1, DOMAIN, "auth")
        assert maa.aka is None
        assert CX.get(answer, "User-Name") == ALICE
        assert CX.get(answer, "Public-Identity") == ALICE_IMPU
        assert CX.get(answer, "SIP-Number-Auth-Items") == 1

    def test_unknown_scheme_gives_what_the_impi_has(self) -> None:
        maa = cx.parse_maa(self.answer(mar(scheme=cx.SCHEME_UNKNOWN)))
        assert (maa.scheme, maa.digest) == (cx.SCHEME_DIGEST, cx.DigestVector(ALICE_HA1, DOMAIN))
        maa = cx.parse_maa(self.answer(mar(BOB, BOB_IMPU, scheme=cx.SCHEME_UNKNOWN)))
        assert maa.scheme == cx.SCHEME_AKAV1 and maa.aka is not None

    def check_aka(self, maa: cx.MaaAnswer, sqn: int) -> None:
        assert maa.outcome == CxOutcome(2001)
        assert maa.aka is not None
        rand, autn = maa.aka.challenge[:16], maa.aka.challenge[16:]
        assert rand == RAND and len(autn) == 16
        res, ck, ik, seen_sqn = ue_check(K, OPC, rand, autn)
        assert (maa.aka.response, maa.aka.confidentiality_key, maa.aka.integrity_key) == (
            res,
            ck,
            ik,
        )
        assert seen_sqn == sqn == self.sqn(BOB)

    def test_aka_v1(self) -> None:
        maa = cx.parse_maa(self.answer(mar(BOB, BOB_IMPU, cx.SCHEME_AKAV1)))
        assert maa.scheme == cx.SCHEME_AKAV1
        self.check_aka(maa, next_sqn(BOB_SQN))
        maa = cx.parse_maa(self.answer(mar(BOB, BOB_IMPU, cx.SCHEME_AKAV1)))
        self.check_aka(maa, next_sqn(next_sqn(BOB_SQN)))

    def test_aka_v2_echoes_its_scheme(self) -> None:
        maa = cx.parse_maa(self.answer(mar(BOB, BOB_IMPU, cx.SCHEME_AKAV2)))
        assert maa.scheme == cx.SCHEME_AKAV2
        self.check_aka(maa, next_sqn(BOB_SQN))

    def test_resynchronisation_continues_from_the_handsets_sqn(self) -> None:
        handset_sqn = 0x1000
        rand = bytes(16)
        auts = make_auts(K, OPC, rand, handset_sqn)
        request = mar(BOB, BOB_IMPU, cx.SCHEME_AKAV1, authorization=rand + auts)
        maa = cx.parse_maa(self.answer(request))
        self.check_aka(maa, next_sqn(handset_sqn))

    def test_resynchronisation_with_a_bad_mac_is_authentication_rejected(self) -> None:
        rand = bytes(16)
        auts = bytearray(make_auts(K, OPC, rand, 0x1000))
        auts[-1] ^= 1
        request = mar(BOB, BOB_IMPU, cx.SCHEME_AKAV1, authorization=rand + bytes(auts))
        maa = cx.parse_maa(self.answer(request))
        assert maa.outcome == CxOutcome(4001)
        assert self.sqn(BOB) == BOB_SQN

    def test_malformed_resynchronisation_is_an_invalid_avp_value(self) -> None:
        request = mar(BOB, BOB_IMPU, cx.SCHEME_AKAV1, authorization=b"short")
        answer = self.answer(request)
        assert cx.parse_outcome(answer) == CxOutcome(5004)
        failed = CX.find(answer, "Failed-AVP", "SIP-Auth-Data-Item", "SIP-Authorization")
        assert failed is not None and failed.data == b"short"

    def test_scheme_the_impi_has_no_credentials_for(self) -> None:
        for request in (
            mar(BOB, BOB_IMPU, cx.SCHEME_DIGEST),
            mar(ALICE, ALICE_IMPU, cx.SCHEME_AKAV1),
            mar(scheme="NASS-Bundled"),
        ):
            maa = cx.parse_maa(self.answer(request))
            assert (maa.outcome, maa.digest, maa.aka) == (experimental(5006), None, None)

    def test_unknown_and_mismatched_identities(self) -> None:
        maa = cx.parse_maa(self.answer(mar("nobody@example.com")))
        assert maa.outcome == experimental(5001)
        maa = cx.parse_maa(self.answer(mar(ALICE, "sip:nobody@example.com")))
        assert maa.outcome == experimental(5001)
        maa = cx.parse_maa(self.answer(mar(BOB, ALICE_IMPU, cx.SCHEME_AKAV1)))
        assert maa.outcome == experimental(5002)
        assert self.sqn(BOB) == BOB_SQN


class SarTests(_Case):
    charging = ChargingInformation.from_lists(["aaa://ccf1.example.com", "aaa://ccf2.example.com"])

    def check_user_data(self, saa: cx.SaaAnswer, impi: str = ALICE) -> None:
        assert saa.user_data is not None
        assert saa.user_data.startswith('<?xml version="1.0" encoding="UTF-8"?><IMSSubscription>')
        root = ET.fromstring(saa.user_data)
        assert root.findtext("PrivateID") == impi
        identities = [e.text for e in root.iter("Identity")]
        assert identities == [ALICE_IMPU, ALICE_TEL]
        assert root.find("ServiceProfile/InitialFilterCriteria") is not None
        assert saa.charging == self.charging

    def test_registration_registers_the_irs_to_the_server_name(self) -> None:
        kind = ServerAssignmentType.REGISTRATION
        saa = cx.parse_saa(self.answer(sar(kind, server_name=OTHER_SCSCF)))
        assert saa.outcome == CxOutcome(2001)
        self.check_user_data(saa)
        assert self.registration(ALICE_IRS) == RegistrationState(
            RegState.REGISTERED, OTHER_SCSCF, ALICE, NOW
        )

    def test_re_registration_keeps_it_registered(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, SCSCF)
        kind = ServerAssignmentType.RE_REGISTRATION
        saa = cx.parse_saa(self.answer(sar(kind, impu=ALICE_TEL)))
        self.check_user_data(saa)
        assert self.registration(ALICE_IRS).state is RegState.REGISTERED

    def test_unregistered_user_of_a_not_registered_irs(self) -> None:
        kind = ServerAssignmentType.UNREGISTERED_USER
        saa = cx.parse_saa(self.answer(sar(kind, impi=None, server_name=OTHER_SCSCF)))
        assert saa.outcome == CxOutcome(2001)
        self.check_user_data(saa)
        assert self.registration(ALICE_IRS) == RegistrationState(
            RegState.UNREGISTERED, OTHER_SCSCF, "", NOW
        )

    def test_unregistered_user_leaves_a_registered_irs_registered(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, SCSCF)
        before = self.registration(ALICE_IRS)
        kind = ServerAssignmentType.UNREGISTERED_USER
        saa = cx.parse_saa(self.answer(sar(kind, server_name=OTHER_SCSCF)))
        self.check_user_data(saa)
        assert self.registration(ALICE_IRS) == before

    def test_deregistrations_leave_it_not_registered_without_user_data(self) -> None:
        for kind in (
            ServerAssignmentType.USER_DEREGISTRATION,
            ServerAssignmentType.TIMEOUT_DEREGISTRATION,
            ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION,
            ServerAssignmentType.DEREGISTRATION_TOO_MUCH_DATA,
        ):
            self.set_registration(ALICE_IRS, RegState.REGISTERED, SCSCF)
            saa = cx.parse_saa(self.answer(sar(kind)))
            assert (saa.outcome, saa.user_data, saa.charging) == (CxOutcome(2001), None, None)
            assert self.registration(ALICE_IRS) == RegistrationState(
                RegState.NOT_REGISTERED, "", ALICE, NOW
            )

    def test_deregistration_storing_the_server_name_leaves_it_unregistered(self) -> None:
        for kind in (
            ServerAssignmentType.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME,
            ServerAssignmentType.USER_DEREGISTRATION_STORE_SERVER_NAME,
        ):
            self.set_registration(ALICE_IRS, RegState.REGISTERED, OTHER_SCSCF)
            saa = cx.parse_saa(self.answer(sar(kind)))
            assert (saa.outcome, saa.user_data) == (CxOutcome(2001), None)
            assert self.registration(ALICE_IRS) == RegistrationState(
                RegState.UNREGISTERED, OTHER_SCSCF, ALICE, NOW
            )

    def test_authentication_failures_and_no_assignment_change_nothing(self) -> None:
        self.set_registration(ALICE_IRS, RegState.UNREGISTERED, OTHER_SCSCF)
        before = self.registration(ALICE_IRS)
        for kind in (
            ServerAssignmentType.AUTHENTICATION_FAILURE,
            ServerAssignmentType.AUTHENTICATION_TIMEOUT,
        ):
            saa = cx.parse_saa(self.answer(sar(kind)))
            assert (saa.outcome, saa.user_data) == (CxOutcome(2001), None)
        saa = cx.parse_saa(self.answer(sar(ServerAssignmentType.NO_ASSIGNMENT)))
        self.check_user_data(saa)
        assert self.registration(ALICE_IRS) == before

    def test_swx_assignment_types_are_refused(self) -> None:
        saa = cx.parse_saa(self.answer(sar(ServerAssignmentType.AAA_USER_DATA_REQUEST)))
        assert saa.outcome == experimental(5007)
        assert self.registration(ALICE_IRS).state is RegState.NOT_REGISTERED

    def test_unknown_and_mismatched_identities(self) -> None:
        kind = ServerAssignmentType.REGISTRATION
        saa = cx.parse_saa(self.answer(sar(kind, impu="sip:nobody@example.com")))
        assert saa.outcome == experimental(5001)
        saa = cx.parse_saa(self.answer(sar(kind, impi="nobody@example.com")))
        assert saa.outcome == experimental(5001)
        saa = cx.parse_saa(self.answer(sar(kind, impi=BOB)))
        assert saa.outcome == experimental(5002)
        assert self.registration(ALICE_IRS).state is RegState.NOT_REGISTERED

    def test_without_public_identity_every_irs_of_the_impi_is_deregistered(self) -> None:
        self.set_registration(ALICE_IRS, RegState.REGISTERED, SCSCF)
        request = sar(ServerAssignmentType.USER_DEREGISTRATION)
        request = attrs.evolve(request, avps=tuple(a for a in request.avps if a.code != 601))
        saa = cx.parse_saa(self.answer(request))
        assert saa.outcome == CxOutcome(2001)
        assert self.registration(ALICE_IRS).state is RegState.NOT_REGISTERED

    def test_without_any_identity_is_a_missing_public_identity(self) -> None:
        request = sar(ServerAssignmentType.USER_DEREGISTRATION, impi=None)
        request = attrs.evolve(request, avps=tuple(a for a in request.avps if a.code != 601))
        answer = self.answer(request)
        assert cx.parse_outcome(answer) == CxOutcome(5005)
        assert CX.find(answer, "Failed-AVP", "Public-Identity") is not None

    def test_wildcarded_identity_is_registered_through_its_pattern(self) -> None:
        kind = ServerAssignmentType.REGISTRATION
        saa = cx.parse_saa(self.answer(sar(kind, WILD, "sip:someone@wild.example.com")))
        assert saa.outcome == CxOutcome(2001) and saa.user_data is not None
        assert WILD_PATTERN in saa.user_data
        assert self.registration(WILD_IRS).state is RegState.REGISTERED


class LirTests(_Case):
    def test_registered_and_unregistered_name_the_scscf(self) -> None:
        for state in (RegState.REGISTERED, RegState.UNREGISTERED):
            self.set_registration(ALICE_IRS, state, OTHER_SCSCF)
            answer = self.answer(lir(ALICE_TEL))
            lia = cx.parse_lia(answer)
            assert (lia.outcome, lia.server_name) == (CxOutcome(2001), OTHER_SCSCF)
            assert lia.wildcarded_identity is None

    def test_not_registered_without_unregistered_services(self) -> None:
        lia = cx.parse_lia(self.answer(lir()))
        assert (lia.outcome, lia.server_name) == (experimental(5003), None)

    def test_not_registered_with_unregistered_services(self) -> None:
        lia = cx.parse_lia(self.answer(lir(BOB_IMPU)))
        assert (lia.outcome, lia.server_name) == (experimental(2003), SCSCF)
        kind = UserAuthorizationType.REGISTRATION_AND_CAPABILITIES
        self.hss.capabilities = ServerCapabilities((7,), ())
        lia = cx.parse_lia(self.answer(lir(BOB_IMPU, kind=kind)))
        assert (lia.outcome, lia.server_name) == (experimental(2003), None)
        assert lia.capabilities == ServerCapabilities((7,), ())

    def test_originating_needs_an_originating_unregistered_service(self) -> None:
        lia = cx.parse_lia(self.answer(lir(BOB_IMPU, originating=True)))
        assert lia.outcome == experimental(5003)

    def test_wildcard_is_reported(self) -> None:
        self.set_registration(WILD_IRS, RegState.REGISTERED, SCSCF, WILD)
        lia = cx.parse_lia(self.answer(lir("sip:someone@wild.example.com")))
        assert (lia.outcome, lia.server_name) == (CxOutcome(2001), SCSCF)
        assert lia.wildcarded_identity == WILD_PATTERN

    def test_unknown(self) -> None:
        lia = cx.parse_lia(self.answer(lir("sip:nobody@example.com")))
        assert lia.outcome == experimental(5001)


class FlowTests(_Case):
    def test_registration_then_deregistration(self) -> None:
        """What homestead and sprout do for a REGISTER and its de-registration."""
        assert cx.parse_uaa(self.answer(uar())).outcome == experimental(2001)
        assert cx.parse_maa(self.answer(mar())).digest is not None
        registered = self.answer(sar(ServerAssignmentType.REGISTRATION))
        assert cx.parse_saa(registered).user_data is not None
        assert cx.parse_uaa(self.answer(uar(impu=ALICE_TEL))).outcome == experimental(2002)
        assert cx.parse_lia(self.answer(lir(ALICE_TEL))).server_name == SCSCF
        self.answer(sar(ServerAssignmentType.USER_DEREGISTRATION))
        assert cx.parse_uaa(self.answer(uar())).outcome == experimental(2001)
        assert cx.parse_lia(self.answer(lir())).outcome == experimental(5003)
        commands = [m.command_code for m in self.hss.requests]
        assert commands == [300, 303, 301, 300, 302, 301, 300, 302]


class _FailingStore(MemorySubscriberStore):
    @override
    def get_private(self, impi: str) -> Deferred[Optional[PrivateIdentity]]:
        return fail(StoreUnavailableError("store down"))


class ControlTests(_Case):
    def test_every_request_is_recorded_in_order_up_to_the_limit(self) -> None:
        self.hss.max_requests = 2
        requests = [uar(), mar(), lir()]
        for request in requests:
            self.answer(request)
        assert self.hss.requests == requests[1:]

    def test_stall_never_answers_but_records(self) -> None:
        self.hss.stall = True
        result = self.hss.handle(uar(), PEER)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)  # type: ignore[no-untyped-call]
        assert self.hss.requests == [uar()]
        self.hss.stall = False
        assert cx.parse_uaa(self.answer(uar())).outcome == experimental(2001)

    def test_fail_with_a_result_code_answers_every_command_with_it(self) -> None:
        self.hss.fail_with = 3004
        for request in (uar(), mar(), sar(ServerAssignmentType.REGISTRATION), lir()):
            answer = self.answer(request)
            assert cx.parse_outcome(answer) == CxOutcome(3004)
            assert answer.flags & FLAG_ERROR
            assert CX.find(answer, "Server-Name") is None
            assert CX.find(answer, "User-Data") is None
        assert self.registration(ALICE_IRS).state is RegState.NOT_REGISTERED
        assert len(self.hss.requests) == 4

    def test_fail_with_an_experimental_outcome(self) -> None:
        self.hss.fail_with = experimental(5001)
        answer = self.answer(uar())
        assert cx.parse_outcome(answer) == experimental(5001)
        assert not answer.flags & FLAG_ERROR

    def test_hss_bound_commands_it_does_not_serve(self) -> None:
        rtr = cx.rtr(
            destination_host="hss.example.com",
            reason_code=ReasonCode.PERMANENT_TERMINATION,
            impi=ALICE,
            **_head(),
        )
        answer = self.answer(rtr)
        assert cx.parse_outcome(answer) == CxOutcome(3001)
        assert answer.flags & FLAG_ERROR
        assert CX.find(answer, "Vendor-Specific-Application-Id") is not None

    def test_store_failure_is_unable_to_comply(self) -> None:
        store = _FailingStore()
        hss = ScriptedHss(self.node, store, scscf_uri=SCSCF, home_domain=DOMAIN)
        result = hss.handle(uar(), PEER)
        assert isinstance(result, Deferred)
        answer = wire(self.successResultOf(result))
        assert cx.parse_outcome(answer) == CxOutcome(5012)
        assert len(self.flushLoggedErrors(StoreUnavailableError)) == 1  # type: ignore[no-untyped-call]

    def test_max_requests_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_requests"):
            ScriptedHss(self.node, self.store, scscf_uri=SCSCF, home_domain=DOMAIN, max_requests=0)


class HssRequestTests(_Case):
    def test_send_rtr(self) -> None:
        d = self.hss.send_rtr(
            "scscf.example.com",
            DOMAIN,
            ALICE,
            ReasonCode.PERMANENT_TERMINATION,
            impus=[ALICE_IMPU, ALICE_TEL],
            associated=["alice2@example.com"],
            reason_info="bye",
            timeout=2.0,
        )
        [(message, timeout, sent)] = self.node.sent
        assert d is sent and timeout == 2.0
        request = cx.parse_rtr(wire(message))
        assert request.origin_host == "hss.example.com" and request.origin_realm == DOMAIN
        assert request.session_id == "hss.example.com;1;1"
        assert request.impis == (ALICE, "alice2@example.com")
        assert request.impus == (ALICE_IMPU, ALICE_TEL)
        assert (request.reason_code, request.reason_info) == (
            ReasonCode.PERMANENT_TERMINATION,
            "bye",
        )
        assert CX.get(message, "Destination-Host") == "scscf.example.com"
        assert CX.get(message, "Destination-Realm") == DOMAIN
        rta = cx.rta(
            message, origin_host="scscf.example.com", origin_realm=DOMAIN, result_code=2001
        )
        sent.callback(rta)
        assert cx.parse_rta(self.successResultOf(d)) == CxOutcome(2001)

    def test_send_ppr_with_the_subscription(self) -> None:
        user_data = self.successResultOf(self.hss.subscription_xml(ALICE_TEL))
        assert "<PrivateID>alice@example.com</PrivateID>" in user_data
        charging = ChargingInformation.from_lists(["aaa://ccf.example.com"])
        d = self.hss.send_ppr("scscf.example.com", DOMAIN, ALICE, user_data, charging)
        [(message, timeout, sent)] = self.node.sent
        assert d is sent and timeout is None
        request = cx.parse_ppr(wire(message))
        assert (request.impi, request.user_data, request.charging) == (ALICE, user_data, charging)
        assert CX.get(message, "Destination-Host") == "scscf.example.com"

    def test_subscription_of_an_unknown_identity(self) -> None:
        failure = self.failureResultOf(self.hss.subscription_xml("sip:nobody@example.com"))  # type: ignore[no-untyped-call]
        assert isinstance(failure.value, HomesteadError) and failure.value.status == 404


class AdminResourceTests(_Case):
    """``POST /hss/rtr`` and ``/hss/ppr`` (HssAdminResource) send the HSS's requests."""

    def post(self, what: bytes, body: object) -> DummyRequest:
        request = DummyRequest([what])
        request.method = b"POST"
        request.content = io.BytesIO(json.dumps(body).encode())  # type: ignore[attr-defined]
        resource = HssAdminResource(self.hss, DOMAIN)
        result = resource.render(request)  # type: ignore[no-untyped-call]
        if result is not NOT_DONE_YET:
            request.write(result)  # type: ignore[no-untyped-call]
            request.finish()  # type: ignore[no-untyped-call]
        return request

    def answer_json(self, request: DummyRequest) -> tuple[int, object]:
        assert request.finished
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def test_rtr(self) -> None:
        request = self.post(
            b"rtr",
            {"destination_host": "scscf.example.com", "impi": ALICE, "reason": 3,
             "impus": [ALICE_IMPU]},
        )  # fmt: skip
        [(message, _, sent)] = self.node.sent
        rtr = cx.parse_rtr(wire(message))
        assert (rtr.impis, rtr.impus, rtr.reason_code) == ((ALICE,), (ALICE_IMPU,), 3)
        assert CX.get(message, "Destination-Host") == "scscf.example.com"
        sent.callback(
            cx.rta(message, origin_host="scscf.example.com", origin_realm=DOMAIN, result_code=5012)
        )
        assert self.answer_json(request) == (200, {"result-code": 5012, "experimental": False})

    def test_ppr_carries_the_subscription(self) -> None:
        body = {"destination_host": "scscf.example.com", "impi": ALICE, "impu": ALICE_IMPU}
        request = self.post(b"ppr", body)
        [(message, _, sent)] = self.node.sent
        ppr = cx.parse_ppr(wire(message))
        assert ppr.impi == ALICE
        assert ppr.user_data == self.successResultOf(self.hss.subscription_xml(ALICE_IMPU))
        sent.callback(
            cx.ppa(
                message,
                origin_host="scscf.example.com",
                origin_realm=DOMAIN,
                result_code=CxOutcome(5001, True),
            )
        )
        assert self.answer_json(request) == (200, {"result-code": 5001, "experimental": True})

    def test_errors(self) -> None:
        assert self.answer_json(self.post(b"rtr", {"impi": ALICE}))[0] == 400
        assert self.answer_json(self.post(b"rtr", ["x"]))[0] == 400
        assert self.answer_json(self.post(b"nope", {}))[0] == 404
        body = {"destination_host": "s.example.com", "impi": ALICE, "impu": "sip:no@example.com"}
        assert self.answer_json(self.post(b"ppr", body))[0] == 404
        request = self.post(b"rtr", {"destination_host": "s.example.com", "impi": ALICE})
        [(_, _, sent)] = self.node.sent
        sent.errback(NoPeerError("Peer s.example.com is not usable"))
        assert self.answer_json(request) == (502, {"error": "Peer s.example.com is not usable"})


class NodePairTests(SynchronousTestCase):
    """The HSS on a real DiameterNode, with homestead's node as its peer, in memory."""

    def test_uar_and_rtr_over_a_connection(self) -> None:
        net = DiameterNetwork()
        apps = [Application(APP_CX, VENDOR_3GPP, dictionary=CX)]
        hss_node = DiameterNode(
            net.reactor("10.0.0.2"), "hss.example.com", DOMAIN, apps, listen=(3868, "")
        )
        client = DiameterNode(
            net.reactor("10.0.0.1"),
            CLIENT,
            DOMAIN,
            apps,
            peers=[PeerConfig("hss.example.com", "10.0.0.2")],
        )
        store = MemorySubscriberStore()
        self.successResultOf(Deferred.fromCoroutine(provision(store)))
        hss = ScriptedHss(hss_node, store, scscf_uri=SCSCF, home_domain=DOMAIN)
        hss.install()
        received: list[Message] = []

        def on_rtr(request: Message, peer: PeerInfo) -> Message:
            received.append(request)
            return cx.rta(request, origin_host=CLIENT, origin_realm=DOMAIN, result_code=2001)

        client.set_handler(APP_CX, on_rtr)
        hss_node.startService()
        client.startService()
        net.pump()
        assert client.usable_peers() == ["hss.example.com"]

        request = cx.uar(
            session_id=client.new_session_id(),
            origin_host=CLIENT,
            origin_realm=DOMAIN,
            destination_realm=DOMAIN,
            impi=ALICE,
            impu=ALICE_IMPU,
            visited_network=DOMAIN,
        )
        d = client.request(request)
        net.pump()
        uaa = cx.parse_uaa(self.successResultOf(d))
        assert (uaa.outcome, uaa.server_name) == (experimental(2001), SCSCF)

        rtr = hss.send_rtr(CLIENT, DOMAIN, ALICE, ReasonCode.REMOVE_S_CSCF, [ALICE_IMPU])
        net.pump()
        assert cx.parse_rta(self.successResultOf(rtr)) == CxOutcome(2001)
        [seen] = received
        assert cx.parse_rtr(seen).impus == (ALICE_IMPU,)
        client.stopService()
        hss_node.stopService()
        net.pump()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:3868") == ("127.0.0.1", 3868)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("127.0.0.1", ":3868", "host:port", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)


def usage_error(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


BASE_ARGS = ["--identity", "hss.example.com", "--realm", DOMAIN]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--realm", DOMAIN], "--identity"),
        ([*BASE_ARGS, "--listen", "nowhere"], "expected HOST:PORT"),
        ([*BASE_ARGS, "--store", "memcached://127.0.0.1"], "--store: memcached cannot hold"),
        ([*BASE_ARGS, "--store", "sqlite:"], "--store: sqlite: needs a file path"),
        ([*BASE_ARGS, "--tw", "1"], "at least 6"),
        ([*BASE_ARGS, "--prov-port", "x"], "expected a port"),
        ([*BASE_ARGS, "--ccf", "a", "--ccf", "b", "--ccf", "c"], "at most two"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in usage_error(argv, capsys)
