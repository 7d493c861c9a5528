"""HSS-mode homestead (spec §6.1, §7.1, §3.11) against a scripted Cx peer and the memory cache.

The fake node sends every request through the codec (bytes and back) and answers with what
the test scripted, built by :mod:`clearwater.diameter.apps.cx`'s server-side builders. Sprout
is the real :class:`~clearwater.http.sprout_client.SproutClient` over a recording agent, so
the tests see the exact method, URL and JSON body homestead sends.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from typing_extensions import override
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater.diameter.apps import cx
from clearwater.diameter.apps.cx import (
    CX,
    SUCCESS,
    AkaVector,
    ChargingInformation,
    CxOutcome,
    DigestVector,
    ReasonCode,
    ServerAssignmentType,
    ServerCapabilities,
    UserAuthorizationType,
)
from clearwater.diameter.dictionary import APP_CX
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
)
from clearwater.diameter.message import FLAG_ERROR, DiameterDecodeError, Message, parse_message
from clearwater.diameter.results import CxResult, ResultCode
from clearwater.homestead import (
    AkaAv,
    AvScheme,
    ChargingAddresses,
    DigestAv,
    HomesteadError,
    HssHomestead,
    IHomestead,
    RegData,
    ReqType,
    ServerAssignment,
)
from clearwater.homestead.hss import IMPI_TABLE, IMPU_TABLE
from clearwater.http.sprout_client import SproutClient
from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    StoreUnavailableError,
)
from clearwater.stores.memory import MemoryCasStore
from clearwater.stores.records import RegState
from tests.unit.homestead.test_hssless import failure_value, make_homestead

HOMESTEAD_HOST = "homestead.example.com"
HOME = "example.com"
HSS_HOST = "hss.example.net"
HSS_REALM = "example.net"
SCSCF = "sip:scscf.sprout.example.com:5054;transport=tcp"
OTHER_SCSCF = "sip:scscf2.sprout.example.com:5054;transport=tcp"
SPROUT = "http://sprout.example.com:9888"
REREG = 1800.0
TTL = 3600
T0 = 100_000.0
PEER = PeerInfo(HSS_HOST, HSS_REALM, "10.0.0.9")

ALICE = "alice@example.com"
ALICE_IMPU = "sip:alice@example.com"
ALICE_TEL = "tel:+15551234"
ALICE_BARRED = "sip:alice-barred@example.com"
ALICE_WORK = "sip:alice-work@example.com"
ALICE_NEW = "sip:alice-new@example.com"
ALICE_PHONE = "alice-phone@example.com"
BOB = "bob@example.com"
BOB_IMPU = "sip:bob@example.com"
WILD_PATTERN = "sip:!.*!@wild.example.com"
WILD_IMPU = "sip:anything@wild.example.com"
WILD_OTHER = "sip:!x.*!@wild.example.com"

HA1 = "0123456789abcdef0123456789abcdef"
RAND = bytes(range(16))
AUTN = bytes(range(16, 32))
XRES = bytes.fromhex("a54211d5e3ba50bf")
CK = bytes(range(32, 48))
IK = bytes(range(48, 64))

IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><ApplicationServer>"
    "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)
CHARGING = ChargingInformation.from_lists(
    ccfs=["aaa://ccf1.example.com", "aaa://ccf2.example.com"], ecfs=["aaa://ecf1.example.com"]
)


def public(identity: str, barred: bool = False, wildcard: Optional[str] = None) -> str:
    barring = "<BarringIndication>1</BarringIndication>" if barred else ""
    extension = ""
    if wildcard is not None:
        extension = (
            "<Extension><IdentityType>3</IdentityType><Extension><WildcardedIMPU>"
            + wildcard
            + "</WildcardedIMPU></Extension></Extension>"
        )
    return (
        "<PublicIdentity>"
        + barring
        + "<Identity>"
        + identity
        + "</Identity>"
        + extension
        + ("</PublicIdentity>")
    )


def subscription(impi: str, *publics: str) -> str:
    return (
        "<IMSSubscription><PrivateID>"
        + impi
        + "</PrivateID><ServiceProfile>"
        + "".join(publics)
        + IFC
        + "</ServiceProfile></IMSSubscription>"
    )


# The barred identity first: the default IMPU is the first non-barred one (sip:alice@...).
ALICE_XML = subscription(
    ALICE, public(ALICE_BARRED, barred=True), public(ALICE_IMPU), public(ALICE_TEL)
)
ALICE_WORK_XML = subscription(ALICE, public(ALICE_WORK))
BOB_XML = subscription(BOB, public(BOB_IMPU))
WILD_XML = subscription("wild@example.com", public(WILD_IMPU, wildcard=WILD_PATTERN))


# --------------------------------------------------------------------------- fakes

Responder = Callable[[Message], Message]


@implementer(IDiameterNode)
class FakeNode:
    """Records each request (after a trip through the codec) and answers it with the next
    scripted responder; with none left, the request never gets an answer."""

    def __init__(self) -> None:
        self.identity = HOMESTEAD_HOST
        self.realm = HOME
        self.requests: list[Message] = []
        self.timeouts: list[Optional[float]] = []
        self.responders: list[Responder] = []
        self.handlers: dict[int, Any] = {}
        self._sessions = 0

    def new_session_id(self, suffix: str = "") -> str:
        self._sessions += 1
        return self.identity + ";1;" + str(self._sessions) + (";" + suffix if suffix else "")

    def request(self, message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
        wire = parse_message(bytes(message))
        self.requests.append(wire)
        self.timeouts.append(timeout)
        if not self.responders:
            return Deferred()
        responder = self.responders.pop(0)
        try:
            answer = responder(wire)
        except Exception as e:
            return fail(e)
        return succeed(parse_message(bytes(answer)))

    def set_handler(self, application_id: int, handler: Any) -> None:
        self.handlers[application_id] = handler

    def script(self, *responders: Responder) -> None:
        self.responders.extend(responders)

    @property
    def last(self) -> Message:
        return self.requests[-1]


def raising(error: Exception) -> Responder:
    def respond(request: Message) -> Message:
        raise error

    return respond


def maa(
    outcome: CxOutcome = SUCCESS,
    digest: Optional[DigestVector] = None,
    aka: Optional[AkaVector] = None,
    scheme: Optional[str] = None,
) -> Responder:
    return lambda request: cx.maa(
        request,
        origin_host=HSS_HOST,
        origin_realm=HSS_REALM,
        outcome=outcome,
        scheme=scheme,
        digest=digest,
        aka=aka,
    )


def uaa(
    outcome: CxOutcome = SUCCESS,
    server_name: Optional[str] = SCSCF,
    capabilities: Optional[ServerCapabilities] = None,
) -> Responder:
    return lambda request: cx.uaa(
        request,
        origin_host=HSS_HOST,
        origin_realm=HSS_REALM,
        outcome=outcome,
        server_name=server_name,
        capabilities=capabilities,
    )


def lia(
    outcome: CxOutcome = SUCCESS,
    server_name: Optional[str] = SCSCF,
    capabilities: Optional[ServerCapabilities] = None,
    wildcard: Optional[str] = None,
) -> Responder:
    return lambda request: cx.lia(
        request,
        origin_host=HSS_HOST,
        origin_realm=HSS_REALM,
        outcome=outcome,
        server_name=server_name,
        capabilities=capabilities,
        wildcarded_identity=wildcard,
    )


def saa(
    user_data: Optional[str] = ALICE_XML,
    outcome: CxOutcome = SUCCESS,
    charging: Optional[ChargingInformation] = CHARGING,
    wildcard: Optional[str] = None,
) -> Responder:
    return lambda request: cx.saa(
        request,
        origin_host=HSS_HOST,
        origin_realm=HSS_REALM,
        outcome=outcome,
        user_data=user_data,
        charging=charging,
        wildcarded_identity=wildcard,
    )


def experimental(code: int) -> CxOutcome:
    return CxOutcome(code, True)


@implementer(IResponse)
class FakeResponse:
    def __init__(self, code: int, body: bytes = b"") -> None:
        self.version = (b"HTTP", 1, 1)
        self.code = code
        self.phrase = b"Whatever"
        self.headers = Headers()
        self.length = len(body)
        self.request = None
        self.previousResponse: Optional[IResponse] = None
        self._body = body

    def deliverBody(self, protocol: Any) -> None:  # noqa: N802 (IResponse)
        protocol.makeConnection(StringTransport())  # type: ignore[no-untyped-call]  # untyped
        if self._body:
            protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]  # untyped

    def setPreviousResponse(self, response: IResponse) -> None:  # noqa: N802 (IResponse)
        self.previousResponse = response


@implementer(IAgent)
class RecordingAgent:
    """Sprout, as seen through an IAgent: records ``(method, uri, body)`` and answers
    ``code`` (or fails with ``error``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, bytes, Any]] = []
        self.code = 200
        self.error: Optional[Exception] = None

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Optional[Headers] = None,
        bodyProducer: Optional[IBodyProducer] = None,  # noqa: N803 (IAgent's name)
    ) -> Deferred[IResponse]:
        body: Any = None
        if bodyProducer is not None:
            consumer = StringTransport()  # type: ignore[no-untyped-call]  # untyped in Twisted
            sink: IConsumer = consumer
            bodyProducer.startProducing(sink)  # type: ignore[no-untyped-call]  # untyped
            body = json.loads(consumer.value())  # type: ignore[no-untyped-call]  # untyped
        self.calls.append((method, uri, body))
        if self.error is not None:
            return fail(self.error)
        return succeed(FakeResponse(self.code, b'{"error":"nope"}' if self.code >= 300 else b""))


@implementer(ICasStore)
class FlakyCas:
    """A MemoryCasStore with a hook run before each ``set_data`` (to race a write in) and
    an off switch."""

    def __init__(self, inner: MemoryCasStore) -> None:
        self.inner = inner
        self.before_set: Optional[Callable[[str, str], None]] = None
        self.down = False
        self.sets = 0

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        if self.down:
            return fail(StoreUnavailableError("down"))
        return self.inner.get_data(table, key)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        if self.down:
            return fail(StoreUnavailableError("down"))
        self.sets += 1
        if self.before_set is not None:
            self.before_set(table, key)
        return self.inner.set_data(table, key, data, cas, ttl)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        if self.down:
            return fail(StoreUnavailableError("down"))
        return self.inner.delete_data(table, key)

    def close(self) -> Deferred[None]:
        return self.inner.close()


# --------------------------------------------------------------------------- the cases


class _Case(SynchronousTestCase):
    hss_host: Optional[str] = HSS_HOST

    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeNode()
        self.memory = MemoryCasStore(self.clock)
        self.cache = FlakyCas(self.memory)
        self.agent = RecordingAgent()
        self.sprout = SproutClient(self.agent, self.clock, SPROUT)
        self.homestead = HssHomestead(
            self.node,
            self.cache,
            self.sprout,
            hss_realm=HSS_REALM,
            hss_host=self.hss_host,
            server_name=SCSCF,
            home_domain=HOME,
            reregistration_time=REREG,
            timeout=0.2,
            now=self.clock.seconds,
        )

    # -- helpers

    def error(self, deferred: Deferred[Any]) -> HomesteadError:
        error = failure_value(deferred)
        assert isinstance(error, HomesteadError), error
        return error

    def register(
        self,
        impi: str = ALICE,
        impu: str = ALICE_IMPU,
        xml: str = ALICE_XML,
        charging: Optional[ChargingInformation] = CHARGING,
    ) -> RegData:
        self.node.script(saa(xml, charging=charging))
        return self.successResultOf(self.homestead.put_reg_data(impu, ReqType.REG, private_id=impi))

    def record(self, table: str, key: str) -> Any:
        data, _ = self.successResultOf(self.memory.get_data(table, key))
        return None if data is None else json.loads(data)

    def cx_value(self, message: Message, *path: str) -> Any:
        return CX.get(message, *path)

    def rtr(
        self,
        reason: ReasonCode,
        impi: str = ALICE,
        associated: tuple[str, ...] = (),
        impus: tuple[str, ...] = (),
    ) -> Message:
        request = cx.rtr(
            session_id=HSS_HOST + ";9;1",
            origin_host=HSS_HOST,
            origin_realm=HSS_REALM,
            destination_realm=HOME,
            destination_host=HOMESTEAD_HOST,
            reason_code=reason,
            impi=impi,
            associated_impis=associated,
            impus=impus,
        )
        return parse_message(bytes(request))

    def ppr(
        self,
        impi: str = ALICE,
        user_data: Optional[str] = None,
        charging: Optional[ChargingInformation] = None,
    ) -> Message:
        request = cx.ppr(
            session_id=HSS_HOST + ";9;2",
            origin_host=HSS_HOST,
            origin_realm=HSS_REALM,
            destination_realm=HOME,
            destination_host=HOMESTEAD_HOST,
            impi=impi,
            user_data=user_data,
            charging=charging,
        )
        return parse_message(bytes(request))

    def handle(self, request: Message) -> Message:
        answer = self.successResultOf(self.homestead.handle_cx_request(request, PEER))
        return parse_message(bytes(answer))


class InterfaceTests(_Case):
    def test_both_homesteads_are_ihomesteads(self) -> None:
        hss: IHomestead = self.homestead
        hssless: IHomestead = make_homestead()[0]
        assert isinstance(hss, IHomestead)
        assert isinstance(hssless, IHomestead)

    def test_the_fakes_provide_their_interfaces(self) -> None:
        assert verifyObject(IDiameterNode, self.node)
        assert verifyObject(ICasStore, self.cache)


class CxHeaderTests(_Case):
    def test_requests_carry_session_origin_and_destination(self) -> None:
        self.node.script(uaa())
        self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        request = self.node.last
        assert request.application_id == APP_CX
        assert request.is_request and request.is_proxiable
        assert request.avps[0].key == (263, 0)
        assert self.cx_value(request, "Session-Id") == HOMESTEAD_HOST + ";1;1"
        assert self.cx_value(request, "Origin-Host") == HOMESTEAD_HOST
        assert self.cx_value(request, "Origin-Realm") == HOME
        assert self.cx_value(request, "Destination-Host") == HSS_HOST
        assert self.cx_value(request, "Destination-Realm") == HSS_REALM
        assert self.cx_value(request, "Auth-Session-State") == 1
        assert self.cx_value(request, "Vendor-Specific-Application-Id", "Vendor-Id") == 10415
        assert self.node.timeouts == [0.2]

    def test_each_request_has_its_own_session(self) -> None:
        self.node.script(uaa(), uaa())
        self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        sessions = [self.cx_value(r, "Session-Id") for r in self.node.requests]
        assert len(set(sessions)) == 2


class NoDestinationHostTests(_Case):
    hss_host = None

    def test_without_an_hss_host_only_the_realm_is_named(self) -> None:
        self.node.script(uaa())
        self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        assert CX.find(self.node.last, "Destination-Host") is None
        assert self.cx_value(self.node.last, "Destination-Realm") == HSS_REALM


class AvTests(_Case):
    def test_digest_vector(self) -> None:
        self.node.script(maa(digest=DigestVector(HA1, "example.com", "auth-int")))
        vector = self.successResultOf(
            self.homestead.get_av(ALICE, impu=ALICE_IMPU, scheme=AvScheme.DIGEST)
        )
        assert vector == DigestAv(HA1, "example.com", "auth-int")
        request = self.node.last
        assert request.command_code == 303
        assert self.cx_value(request, "User-Name") == ALICE
        assert self.cx_value(request, "Public-Identity") == ALICE_IMPU
        assert (
            self.cx_value(request, "SIP-Auth-Data-Item", "SIP-Authentication-Scheme")
            == "SIP Digest"
        )
        assert CX.find(request, "SIP-Auth-Data-Item", "SIP-Authorization") is None
        assert self.cx_value(request, "SIP-Number-Auth-Items") == 1
        assert self.cx_value(request, "Server-Name") == SCSCF

    def test_an_empty_qop_is_answered_as_auth(self) -> None:
        self.node.script(maa(digest=DigestVector(HA1, "example.com", "")))
        vector = self.successResultOf(self.homestead.get_av(ALICE, impu=ALICE_IMPU))
        assert vector == DigestAv(HA1, "example.com", "auth")

    def test_the_scheme_of_each_path(self) -> None:
        cases = [
            (None, "Unknown"),
            (AvScheme.DIGEST, "SIP Digest"),
            (AvScheme.AKA, "Digest-AKAv1-MD5"),
            (AvScheme.AKA2, "Digest-AKAv2-SHA-256"),
        ]
        for scheme, name in cases:
            self.node.script(maa(digest=DigestVector(HA1, "example.com")))
            self.successResultOf(self.homestead.get_av(ALICE, impu=ALICE_IMPU, scheme=scheme))
            item = self.cx_value(self.node.last, "SIP-Auth-Data-Item", "SIP-Authentication-Scheme")
            assert item == name, scheme

    def test_aka_vector(self) -> None:
        self.node.script(maa(aka=AkaVector(RAND + AUTN, XRES, CK, IK)))
        vector = self.successResultOf(
            self.homestead.get_av(ALICE, impu=ALICE_IMPU, scheme=AvScheme.AKA)
        )
        assert vector == AkaAv(
            challenge=base64.b64encode(RAND + AUTN).decode("ascii"),
            response=XRES.hex(),
            cryptkey=CK.hex(),
            integritykey=IK.hex(),
            version=1,
        )

    def test_akav2_vector_has_version_2(self) -> None:
        vector_v2 = AkaVector(RAND + AUTN, XRES, CK, IK)
        self.node.script(maa(aka=vector_v2, scheme="Digest-AKAv2-SHA-256"))
        vector = self.successResultOf(
            self.homestead.get_av(ALICE, impu=ALICE_IMPU, scheme=AvScheme.AKA2)
        )
        assert isinstance(vector, AkaAv)
        assert vector.version == 2
        assert vector.cryptkey == CK.hex()

    def test_resync_auth_goes_in_sip_authorization(self) -> None:
        auts = bytes(range(100, 114))
        self.node.script(maa(aka=AkaVector(RAND + AUTN, XRES, CK, IK)))
        resync = base64.b64encode(RAND + auts).decode("ascii")
        self.successResultOf(
            self.homestead.get_av(ALICE, impu=ALICE_IMPU, scheme=AvScheme.AKA, resync_auth=resync)
        )
        authorization = self.cx_value(self.node.last, "SIP-Auth-Data-Item", "SIP-Authorization")
        assert authorization == RAND + auts

    def test_bad_resync_auth_is_400_without_asking(self) -> None:
        error = self.error(self.homestead.get_av(ALICE, impu=ALICE_IMPU, resync_auth="!!notb64"))
        assert error.status == 400
        assert self.node.requests == []

    def test_server_name_asked_for_is_sent(self) -> None:
        self.node.script(maa(digest=DigestVector(HA1, "example.com")))
        self.successResultOf(self.homestead.get_av(ALICE, impu=ALICE_IMPU, server_name=OTHER_SCSCF))
        assert self.cx_value(self.node.last, "Server-Name") == OTHER_SCSCF

    def test_without_impu_the_cached_one_is_used(self) -> None:
        self.register()
        self.node.script(maa(digest=DigestVector(HA1, "example.com")))
        self.successResultOf(self.homestead.get_av(ALICE))
        assert self.cx_value(self.node.last, "Public-Identity") == ALICE_IMPU

    def test_without_impu_and_nothing_cached_is_404(self) -> None:
        assert self.error(self.homestead.get_av(ALICE)).status == 404
        assert self.node.requests == []

    def test_a_scheme_homestead_cannot_use_is_404(self) -> None:
        self.node.script(maa(scheme="NASS-Bundled"))
        assert self.error(self.homestead.get_av(ALICE, impu=ALICE_IMPU)).status == 404

    def test_digest_ha1(self) -> None:
        self.node.script(maa(digest=DigestVector(HA1, "example.com")))
        assert self.successResultOf(self.homestead.get_digest(ALICE, ALICE_IMPU)) == HA1
        assert (
            self.cx_value(self.node.last, "SIP-Auth-Data-Item", "SIP-Authentication-Scheme")
            == "SIP Digest"
        )
        assert self.cx_value(self.node.last, "Public-Identity") == ALICE_IMPU

    def test_digest_of_aka_is_404(self) -> None:
        self.node.script(maa(aka=AkaVector(RAND + AUTN, XRES, CK, IK)))
        assert self.error(self.homestead.get_digest(ALICE, ALICE_IMPU)).status == 404


class ErrorMappingTests(_Case):
    def status_of(self, responder: Responder) -> int:
        self.node.script(responder)
        return self.error(self.homestead.get_av(ALICE, impu=ALICE_IMPU)).status

    def test_results_map_to_spec_statuses(self) -> None:
        cases = [
            (experimental(CxResult.DIAMETER_ERROR_USER_UNKNOWN), 404),
            (experimental(CxResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH), 404),
            (experimental(CxResult.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED), 404),
            (CxOutcome(ResultCode.DIAMETER_AUTHORIZATION_REJECTED), 403),
            (experimental(CxResult.DIAMETER_ERROR_ROAMING_NOT_ALLOWED), 403),
            (CxOutcome(ResultCode.DIAMETER_TOO_BUSY), 504),
            (CxOutcome(ResultCode.DIAMETER_UNABLE_TO_DELIVER), 503),
            (CxOutcome(ResultCode.DIAMETER_UNABLE_TO_COMPLY), 500),
        ]
        for outcome, status in cases:
            assert self.status_of(maa(outcome)) == status, outcome

    def test_no_peer_is_503(self) -> None:
        assert self.status_of(raising(NoPeerError("no peer"))) == 503

    def test_no_answer_in_time_is_504(self) -> None:
        assert self.status_of(raising(DiameterTimeoutError("late"))) == 504

    def test_an_answer_without_a_result_is_500(self) -> None:
        def bare(request: Message) -> Message:
            answer = cx.maa(request, origin_host=HSS_HOST, origin_realm=HSS_REALM, outcome=SUCCESS)
            avps = tuple(a for a in answer.avps if a.key != (268, 0))
            return Message(answer.command_code, answer.application_id, avps, answer.flags)

        assert self.status_of(bare) == 500

    def test_uar_and_lir_map_too(self) -> None:
        self.node.script(uaa(experimental(CxResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)))
        assert self.error(self.homestead.registration_status(ALICE, ALICE_IMPU)).status == 404
        self.node.script(uaa(CxOutcome(ResultCode.DIAMETER_AUTHORIZATION_REJECTED)))
        assert self.error(self.homestead.registration_status(ALICE, ALICE_IMPU)).status == 403
        self.node.script(lia(experimental(CxResult.DIAMETER_ERROR_USER_UNKNOWN)))
        assert self.error(self.homestead.location(ALICE_IMPU)).status == 404
        self.node.script(raising(NoPeerError("none")))
        assert self.error(self.homestead.location(ALICE_IMPU)).status == 503


class RegistrationStatusTests(_Case):
    def test_uar_avps_and_answer(self) -> None:
        self.node.script(uaa())
        assignment = self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        assert assignment == ServerAssignment(2001, scscf=SCSCF)
        request = self.node.last
        assert request.command_code == 300
        assert self.cx_value(request, "User-Name") == ALICE
        assert self.cx_value(request, "Public-Identity") == ALICE_IMPU
        assert self.cx_value(request, "Visited-Network-Identifier") == HOME.encode()
        assert self.cx_value(request, "User-Authorization-Type") == 0
        assert CX.find(request, "UAR-Flags") is None

    def test_auth_types_visited_network_and_sos(self) -> None:
        cases = [
            ("REG", 0),
            ("DEREG", UserAuthorizationType.DE_REGISTRATION),
            ("CAPAB", UserAuthorizationType.REGISTRATION_AND_CAPABILITIES),
        ]
        for auth_type, value in cases:
            self.node.script(uaa())
            self.successResultOf(
                self.homestead.registration_status(
                    ALICE, ALICE_IMPU, visited_network="visited.net", auth_type=auth_type, sos=True
                )
            )
            assert self.cx_value(self.node.last, "User-Authorization-Type") == value
            assert self.cx_value(self.node.last, "Visited-Network-Identifier") == b"visited.net"
            assert self.cx_value(self.node.last, "UAR-Flags") == 1

    def test_registration_variants_are_copied(self) -> None:
        for code in (
            CxResult.DIAMETER_FIRST_REGISTRATION,
            CxResult.DIAMETER_SUBSEQUENT_REGISTRATION,
        ):
            self.node.script(uaa(experimental(code)))
            assignment = self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
            assert assignment.result_code == code
            assert assignment.scscf == SCSCF

    def test_capabilities_when_no_server_is_assigned(self) -> None:
        capabilities = ServerCapabilities(mandatory=(1, 2), optional=(3,))
        self.node.script(uaa(server_name=None, capabilities=capabilities))
        assignment = self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        assert assignment == ServerAssignment(
            2001, mandatory_capabilities=(1, 2), optional_capabilities=(3,)
        )
        assert assignment.to_json() == {
            "result-code": 2001,
            "mandatory-capabilities": [1, 2],
            "optional-capabilities": [3],
        }

    def test_a_server_name_inside_capabilities_is_the_scscf(self) -> None:
        capabilities = ServerCapabilities(mandatory=(1,), server_names=(OTHER_SCSCF,))
        self.node.script(uaa(server_name=None, capabilities=capabilities))
        assignment = self.successResultOf(self.homestead.registration_status(ALICE, ALICE_IMPU))
        assert assignment.scscf == OTHER_SCSCF

    def test_bad_requests_are_400_without_asking(self) -> None:
        assert self.error(self.homestead.registration_status(ALICE, "")).status == 400
        error = self.error(self.homestead.registration_status(ALICE, ALICE_IMPU, auth_type="X"))
        assert error.status == 400
        assert self.node.requests == []


class LocationTests(_Case):
    def test_lir_avps(self) -> None:
        self.node.script(lia(), lia(), lia())
        self.successResultOf(self.homestead.location(ALICE_IMPU))
        plain = self.node.last
        assert plain.command_code == 302
        assert self.cx_value(plain, "Public-Identity") == ALICE_IMPU
        assert CX.find(plain, "Originating-Request") is None
        assert CX.find(plain, "User-Authorization-Type") is None
        self.successResultOf(self.homestead.location(ALICE_IMPU, originating=True))
        assert self.cx_value(self.node.last, "Originating-Request") == 0
        self.successResultOf(self.homestead.location(ALICE_IMPU, auth_type="CAPAB"))
        assert self.cx_value(self.node.last, "User-Authorization-Type") == 2

    def test_unregistered_service_and_wildcard(self) -> None:
        self.node.script(
            lia(experimental(CxResult.DIAMETER_UNREGISTERED_SERVICE), wildcard=WILD_PATTERN)
        )
        assignment = self.successResultOf(self.homestead.location(WILD_IMPU))
        assert assignment == ServerAssignment(2003, scscf=SCSCF, wildcard_identity=WILD_PATTERN)

    def test_identity_not_registered_is_a_200_answer(self) -> None:
        self.node.script(
            lia(experimental(CxResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED), server_name=None)
        )
        assignment = self.successResultOf(self.homestead.location(ALICE_IMPU))
        assert assignment.result_code == 5003
        assert assignment.scscf is None

    def test_bad_auth_type_is_400(self) -> None:
        assert self.error(self.homestead.location(ALICE_IMPU, auth_type="NOPE")).status == 400
        assert self.node.requests == []


class RegisterTests(_Case):
    def test_first_registration_sends_sar_registration(self) -> None:
        reg_data = self.register()
        request = self.node.last
        assert request.command_code == 301
        assert self.cx_value(request, "User-Name") == ALICE
        assert self.cx_value(request, "Public-Identity") == ALICE_IMPU
        assert self.cx_value(request, "Server-Name") == SCSCF
        assert self.cx_value(request, "Server-Assignment-Type") == 1
        assert self.cx_value(request, "User-Data-Already-Available") == 0
        assert CX.find(request, "Wildcarded-Public-Identity") is None
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.previous_state is RegState.NOT_REGISTERED
        assert reg_data.private_id == ALICE
        assert reg_data.default_public_identity == ALICE_IMPU
        assert [i.identity for i in reg_data.public_identities] == [
            ALICE_BARRED,
            ALICE_IMPU,
            ALICE_TEL,
        ]
        assert reg_data.service_profiles[0].ifcs_xml == (IFC,)
        assert reg_data.charging_addresses == ChargingAddresses(
            ("aaa://ccf1.example.com", "aaa://ccf2.example.com"), ("aaa://ecf1.example.com",)
        )
        xml = reg_data.to_xml()
        assert b"<PreviousRegistrationState>NOT_REGISTERED</PreviousRegistrationState>" in xml
        assert b'<CCF priority="1">aaa://ccf1.example.com</CCF>' in xml

    def test_the_server_name_sprout_gives_is_used(self) -> None:
        self.node.script(saa())
        self.successResultOf(
            self.homestead.put_reg_data(
                ALICE_IMPU, ReqType.REG, server_name=OTHER_SCSCF, private_id=ALICE
            )
        )
        assert self.cx_value(self.node.last, "Server-Name") == OTHER_SCSCF

    def test_the_cache_records(self) -> None:
        self.register()
        irs = self.record(IMPU_TABLE, ALICE_IMPU)
        assert irs == {
            "default": ALICE_IMPU,
            "impus": [ALICE_IMPU, ALICE_BARRED, ALICE_TEL],
            "state": "REGISTERED",
            "impis": [ALICE],
            "xml": ALICE_XML,
            "ccfs": ["aaa://ccf1.example.com", "aaa://ccf2.example.com"],
            "ecfs": ["aaa://ecf1.example.com"],
            "sar": T0,
        }
        assert self.record(IMPU_TABLE, ALICE_TEL) == {"ref": ALICE_IMPU}
        assert self.record(IMPU_TABLE, ALICE_BARRED) == {"ref": ALICE_IMPU}
        assert self.record(IMPI_TABLE, ALICE) == {"impus": [ALICE_IMPU]}

    def test_records_live_twice_the_reregistration_time(self) -> None:
        assert self.homestead.record_ttl == TTL
        self.register()
        self.clock.advance(TTL - 1)
        for table, key in ((IMPU_TABLE, ALICE_IMPU), (IMPU_TABLE, ALICE_TEL), (IMPI_TABLE, ALICE)):
            assert self.record(table, key) is not None, key
        self.clock.advance(1)
        for table, key in ((IMPU_TABLE, ALICE_IMPU), (IMPU_TABLE, ALICE_TEL), (IMPI_TABLE, ALICE)):
            assert self.record(table, key) is None, key

    def test_reregistration_within_the_time_is_answered_from_the_cache(self) -> None:
        self.register()
        self.clock.advance(REREG - 1)
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_TEL, ReqType.REG, private_id=ALICE)
        )
        assert len(self.node.requests) == 1
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.previous_state is RegState.REGISTERED
        assert reg_data.default_public_identity == ALICE_IMPU

    def test_reregistration_after_the_time_sends_re_registration(self) -> None:
        self.register()
        self.clock.advance(REREG)
        self.node.script(saa())
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE)
        )
        assert len(self.node.requests) == 2
        assert self.cx_value(self.node.last, "Server-Assignment-Type") == 2
        assert reg_data.previous_state is RegState.REGISTERED
        assert self.record(IMPU_TABLE, ALICE_IMPU)["sar"] == T0 + REREG
        # The next re-registration within the time is from the cache again.
        self.clock.advance(REREG - 1)
        self.successResultOf(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG))
        assert len(self.node.requests) == 2
        # The records were refreshed: they outlive the first SAR's lifetime.
        self.clock.advance(1)
        assert self.clock.seconds() == T0 + TTL
        assert self.record(IMPU_TABLE, ALICE_TEL) == {"ref": ALICE_IMPU}

    def test_a_new_impi_registers_again(self) -> None:
        self.register()
        self.node.script(saa())
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE_PHONE)
        )
        assert self.cx_value(self.node.last, "Server-Assignment-Type") == 1
        assert self.cx_value(self.node.last, "User-Name") == ALICE_PHONE
        assert reg_data.previous_state is RegState.REGISTERED
        assert self.record(IMPU_TABLE, ALICE_IMPU)["impis"] == [ALICE, ALICE_PHONE]
        assert self.record(IMPI_TABLE, ALICE_PHONE) == {"impus": [ALICE_IMPU]}

    def test_an_saa_without_charging_keeps_the_cached_addresses(self) -> None:
        self.register()
        self.clock.advance(REREG)
        self.node.script(saa(charging=None))
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE)
        )
        assert reg_data.charging_addresses.ccfs == CHARGING.ccfs

    def test_a_failed_sar_changes_nothing(self) -> None:
        self.node.script(saa(outcome=experimental(CxResult.DIAMETER_ERROR_USER_UNKNOWN)))
        error = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE))
        assert error.status == 404
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None

    def test_bad_user_data_is_500_and_not_cached(self) -> None:
        self.node.script(saa("<IMSSubscription><ServiceProfile>"))
        error = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE))
        assert error.status == 500
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None
        self.node.script(saa("<NotASubscription/>"))
        error = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG, private_id=ALICE))
        assert error.status == 500

    def test_get_reg_data_reads_the_cache_only(self) -> None:
        nothing = self.successResultOf(self.homestead.get_reg_data(ALICE_IMPU))
        assert nothing == RegData(RegState.NOT_REGISTERED)
        self.register()
        reg_data = self.successResultOf(self.homestead.get_reg_data(ALICE_TEL))
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.previous_state is None
        assert reg_data.ims_subscription_xml
        assert len(self.node.requests) == 1

    def test_store_errors_pass_through(self) -> None:
        self.cache.down = True
        failure = failure_value(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG))
        assert isinstance(failure, StoreUnavailableError)
        failure = failure_value(self.homestead.get_reg_data(ALICE_IMPU))
        assert isinstance(failure, StoreUnavailableError)

    def test_a_lost_cas_race_is_retried_keeping_the_other_writer_impi(self) -> None:
        raced: list[str] = []

        def race(table: str, key: str) -> None:
            if table == IMPU_TABLE and key == ALICE_IMPU and not raced:
                raced.append(key)
                other = {
                    "default": ALICE_IMPU,
                    "impus": [ALICE_IMPU],
                    "state": "REGISTERED",
                    "impis": [ALICE_PHONE],
                    "xml": "",
                    "ccfs": [],
                    "ecfs": [],
                    "sar": T0,
                }
                data = json.dumps(other).encode()
                self.successResultOf(self.memory.set_data(IMPU_TABLE, key, data, 0, 10))

        self.cache.before_set = race
        self.register()
        assert raced
        assert self.record(IMPU_TABLE, ALICE_IMPU)["impis"] == [ALICE, ALICE_PHONE]

    def test_endless_contention_fails_with_the_store_error(self) -> None:
        def always(table: str, key: str) -> None:
            if table == IMPU_TABLE:
                _, cas = self.successResultOf(self.memory.get_data(table, key))
                self.successResultOf(self.memory.set_data(table, key, b"{}", cas, 10))

        self.cache.before_set = always
        self.node.script(saa())
        failure = failure_value(self.homestead.put_reg_data(ALICE_IMPU, ReqType.REG))
        assert isinstance(failure, DataContentionError)


class WildcardTests(_Case):
    def test_the_wildcard_is_sent_and_keys_the_cache(self) -> None:
        self.node.script(saa(WILD_XML))
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(WILD_IMPU, ReqType.CALL, wildcard_identity=WILD_PATTERN)
        )
        request = self.node.last
        assert self.cx_value(request, "Public-Identity") == WILD_IMPU
        assert self.cx_value(request, "Wildcarded-Public-Identity") == WILD_PATTERN
        assert reg_data.state is RegState.UNREGISTERED
        assert self.record(IMPU_TABLE, WILD_PATTERN)["default"] == WILD_PATTERN
        # The next call for any identity under the wildcard is answered from the cache.
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(
                "sip:other@wild.example.com", ReqType.CALL, wildcard_identity=WILD_PATTERN
            )
        )
        assert len(self.node.requests) == 1
        assert reg_data.previous_state is RegState.UNREGISTERED

    def test_a_new_wildcard_from_the_hss_is_tried_once(self) -> None:
        in_assignment = experimental(CxResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE)
        self.node.script(saa(None, in_assignment, None, wildcard=WILD_PATTERN), saa(WILD_XML))
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(WILD_IMPU, ReqType.CALL, wildcard_identity=WILD_OTHER)
        )
        first, second = self.node.requests
        assert self.cx_value(first, "Wildcarded-Public-Identity") == WILD_OTHER
        assert self.cx_value(second, "Wildcarded-Public-Identity") == WILD_PATTERN
        assert reg_data.state is RegState.UNREGISTERED

    def test_the_same_wildcard_again_is_500(self) -> None:
        in_assignment = experimental(CxResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE)
        self.node.script(saa(None, in_assignment, None, wildcard=WILD_PATTERN))
        error = self.error(
            self.homestead.put_reg_data(WILD_IMPU, ReqType.CALL, wildcard_identity=WILD_PATTERN)
        )
        assert error.status == 500
        assert len(self.node.requests) == 1


class CallTests(_Case):
    def test_an_unknown_subscriber_is_assigned_for_unregistered_service(self) -> None:
        self.node.script(saa())
        reg_data = self.successResultOf(self.homestead.put_reg_data(ALICE_TEL, ReqType.CALL))
        request = self.node.last
        assert self.cx_value(request, "Server-Assignment-Type") == 3
        assert CX.find(request, "User-Name") is None
        assert self.cx_value(request, "Public-Identity") == ALICE_TEL
        assert reg_data.state is RegState.UNREGISTERED
        assert reg_data.previous_state is RegState.NOT_REGISTERED
        assert self.record(IMPU_TABLE, ALICE_IMPU)["state"] == "UNREGISTERED"
        # The <PrivateID> of the subscription lists the set under its IMPI.
        assert self.record(IMPI_TABLE, ALICE) == {"impus": [ALICE_IMPU]}

    def test_an_assigned_subscriber_is_answered_from_the_cache(self) -> None:
        self.node.script(saa())
        self.successResultOf(self.homestead.put_reg_data(ALICE_IMPU, ReqType.CALL))
        again = self.successResultOf(self.homestead.put_reg_data(ALICE_IMPU, ReqType.CALL))
        assert again.state is RegState.UNREGISTERED
        assert again.previous_state is RegState.UNREGISTERED
        assert len(self.node.requests) == 1

    def test_a_registered_subscriber_is_answered_from_the_cache(self) -> None:
        self.register()
        reg_data = self.successResultOf(self.homestead.put_reg_data(ALICE_TEL, ReqType.CALL))
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.previous_state is RegState.REGISTERED
        assert len(self.node.requests) == 1

    def test_register_after_unregistered_service_sends_registration(self) -> None:
        self.node.script(saa())
        self.successResultOf(self.homestead.put_reg_data(ALICE_IMPU, ReqType.CALL))
        reg_data = self.register()
        assert self.cx_value(self.node.last, "Server-Assignment-Type") == 1
        assert reg_data.previous_state is RegState.UNREGISTERED


class DeregisterTests(_Case):
    def test_each_dereg_type(self) -> None:
        cases = [
            (ReqType.DEREG_USER, ServerAssignmentType.USER_DEREGISTRATION),
            (ReqType.DEREG_TIMEOUT, ServerAssignmentType.TIMEOUT_DEREGISTRATION),
            (ReqType.DEREG_ADMIN, ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION),
        ]
        for reqtype, kind in cases:
            self.register()
            self.node.script(saa(None, charging=None))
            reg_data = self.successResultOf(self.homestead.put_reg_data(ALICE_TEL, reqtype))
            request = self.node.last
            assert self.cx_value(request, "Server-Assignment-Type") == kind
            assert self.cx_value(request, "User-Name") == ALICE  # from the cached <PrivateID>
            assert reg_data.state is RegState.NOT_REGISTERED
            assert reg_data.previous_state is None
            assert reg_data.default_public_identity == ALICE_IMPU  # the iFCs, for sprout
            for key in (ALICE_IMPU, ALICE_TEL, ALICE_BARRED):
                assert self.record(IMPU_TABLE, key) is None
            assert self.record(IMPI_TABLE, ALICE) is None
            after = self.successResultOf(self.homestead.get_reg_data(ALICE_IMPU))
            assert after.state is RegState.NOT_REGISTERED

    def test_the_private_id_given_is_the_user_name(self) -> None:
        self.register()
        self.node.script(saa(None))
        self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER, private_id=ALICE_PHONE)
        )
        assert self.cx_value(self.node.last, "User-Name") == ALICE_PHONE

    def test_dereg_of_what_is_not_registered_is_400(self) -> None:
        error = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER))
        assert error.status == 400
        assert self.node.requests == []

    def test_unregistered_service_can_be_deregistered(self) -> None:
        self.node.script(saa(), saa(None))
        self.successResultOf(self.homestead.put_reg_data(ALICE_IMPU, ReqType.CALL))
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_ADMIN)
        )
        assert self.cx_value(self.node.last, "Server-Assignment-Type") == 8
        assert reg_data.state is RegState.NOT_REGISTERED

    def test_the_cache_is_dropped_even_if_the_hss_refuses(self) -> None:
        self.register()
        self.node.script(saa(None, experimental(CxResult.DIAMETER_ERROR_USER_UNKNOWN)))
        error = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER))
        assert error.status == 404
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None

    def test_the_cache_is_kept_when_the_hss_was_not_reached(self) -> None:
        self.register()
        for error in (NoPeerError("none"), DiameterTimeoutError("late")):
            self.node.script(raising(error))
            failure = self.error(self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER))
            assert failure.status in (503, 504)
            assert self.record(IMPU_TABLE, ALICE_IMPU)["state"] == "REGISTERED"


class AuthFailureTests(_Case):
    def test_auth_failure_types_change_nothing(self) -> None:
        cases = [
            (ReqType.DEREG_AUTH_FAILED, ServerAssignmentType.AUTHENTICATION_FAILURE),
            (ReqType.DEREG_AUTH_TIMEOUT, ServerAssignmentType.AUTHENTICATION_TIMEOUT),
        ]
        for reqtype, kind in cases:
            self.node.script(saa(None))
            reg_data = self.successResultOf(
                self.homestead.put_reg_data(ALICE_IMPU, reqtype, private_id=ALICE)
            )
            assert self.cx_value(self.node.last, "Server-Assignment-Type") == kind
            assert self.cx_value(self.node.last, "User-Name") == ALICE
            assert reg_data == RegData(RegState.NOT_REGISTERED)
            assert self.record(IMPU_TABLE, ALICE_IMPU) is None

    def test_a_registered_set_stays_registered(self) -> None:
        self.register()
        before = self.record(IMPU_TABLE, ALICE_IMPU)
        self.node.script(saa(None))
        reg_data = self.successResultOf(
            self.homestead.put_reg_data(ALICE_IMPU, ReqType.DEREG_AUTH_FAILED, private_id=ALICE)
        )
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.previous_state is None
        assert self.record(IMPU_TABLE, ALICE_IMPU) == before


class RtrTests(_Case):
    def register_two_sets(self) -> None:
        self.register()
        self.register(impu=ALICE_WORK, xml=ALICE_WORK_XML)
        assert self.record(IMPI_TABLE, ALICE) == {"impus": [ALICE_IMPU, ALICE_WORK]}

    def test_permanent_termination_names_each_impu_impi_pair(self) -> None:
        self.register_two_sets()
        request = self.rtr(
            ReasonCode.PERMANENT_TERMINATION, associated=(ALICE_PHONE,), impus=(ALICE_TEL,)
        )
        answer = self.handle(request)
        assert self.agent.calls == [
            (
                b"DELETE",
                SPROUT.encode() + b"/registrations?send-notifications=false",
                {
                    "registrations": [
                        {"primary-impu": ALICE_IMPU, "impi": ALICE},
                        {"primary-impu": ALICE_IMPU, "impi": ALICE_PHONE},
                    ]
                },
            )
        ]
        assert answer.command_code == 304 and not answer.is_request
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.cx_value(answer, "Origin-Host") == HOMESTEAD_HOST
        assert CX.get_all(answer, "Associated-Identities", "User-Name") == [ALICE, ALICE_PHONE]
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None
        assert self.record(IMPU_TABLE, ALICE_TEL) is None
        assert self.record(IMPU_TABLE, ALICE_WORK) is not None  # not named
        assert self.record(IMPI_TABLE, ALICE) == {"impus": [ALICE_WORK]}

    def test_remove_scscf_by_impi_names_every_set_and_notifies(self) -> None:
        self.register_two_sets()
        answer = self.handle(self.rtr(ReasonCode.REMOVE_S_CSCF))
        assert self.agent.calls == [
            (
                b"DELETE",
                SPROUT.encode() + b"/registrations?send-notifications=true",
                {"registrations": [{"primary-impu": ALICE_IMPU}, {"primary-impu": ALICE_WORK}]},
            )
        ]
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.record(IMPU_TABLE, ALICE_WORK) is None
        assert self.record(IMPI_TABLE, ALICE) is None

    def test_server_change_ignores_public_identities(self) -> None:
        self.register_two_sets()
        self.handle(self.rtr(ReasonCode.SERVER_CHANGE, impus=(ALICE_TEL,)))
        _, uri, body = self.agent.calls[0]
        assert uri.endswith(b"?send-notifications=true")
        assert body == {
            "registrations": [{"primary-impu": ALICE_IMPU}, {"primary-impu": ALICE_WORK}]
        }

    def test_new_server_assigned_does_not_notify(self) -> None:
        self.register()
        self.handle(self.rtr(ReasonCode.NEW_SERVER_ASSIGNED))
        assert self.agent.calls == [
            (
                b"DELETE",
                SPROUT.encode() + b"/registrations?send-notifications=false",
                {"registrations": [{"primary-impu": ALICE_IMPU}]},
            )
        ]

    def test_remove_scscf_with_identities_names_their_sets(self) -> None:
        self.register_two_sets()
        self.handle(self.rtr(ReasonCode.REMOVE_S_CSCF, impus=(ALICE_WORK,)))
        assert self.agent.calls[0][2] == {"registrations": [{"primary-impu": ALICE_WORK}]}
        assert self.record(IMPU_TABLE, ALICE_IMPU) is not None

    def test_nothing_cached_is_success_without_sprout(self) -> None:
        answer = self.handle(self.rtr(ReasonCode.PERMANENT_TERMINATION))
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.agent.calls == []

    def test_sprout_failing_is_unable_to_comply_and_the_cache_still_goes(self) -> None:
        self.register()
        self.agent.code = 500
        answer = self.handle(self.rtr(ReasonCode.PERMANENT_TERMINATION))
        assert self.cx_value(answer, "Result-Code") == 5012
        assert CX.find(answer, "Associated-Identities") is None
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None

    def test_sprout_unreachable_is_unable_to_comply(self) -> None:
        self.register()
        self.agent.error = ConnectionError("refused")
        answer = self.handle(self.rtr(ReasonCode.REMOVE_S_CSCF))
        assert self.cx_value(answer, "Result-Code") == 5012

    def test_cache_failure_is_unable_to_comply(self) -> None:
        self.cache.down = True
        answer = self.handle(self.rtr(ReasonCode.REMOVE_S_CSCF))
        assert self.cx_value(answer, "Result-Code") == 5012

    def test_a_malformed_rtr_fails_with_the_decode_error(self) -> None:
        request = self.rtr(ReasonCode.REMOVE_S_CSCF)
        reason = CX["Deregistration-Reason"].key
        stripped = Message(
            request.command_code,
            request.application_id,
            tuple(a for a in request.avps if a.key != reason),
            request.flags,
        )
        error = failure_value(self.homestead.handle_cx_request(stripped, PEER))
        assert isinstance(error, DiameterDecodeError)
        assert error.result_code == ResultCode.DIAMETER_MISSING_AVP


class PprTests(_Case):
    def test_charging_information_updates_every_set_without_sprout(self) -> None:
        self.register()
        self.register(impu=ALICE_WORK, xml=ALICE_WORK_XML)
        self.clock.advance(100)
        charging = ChargingInformation.from_lists(ccfs=["aaa://ccf9.example.com"])
        answer = self.handle(self.ppr(charging=charging))
        assert answer.command_code == 305
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.agent.calls == []
        for impu in (ALICE_IMPU, ALICE_WORK):
            reg_data = self.successResultOf(self.homestead.get_reg_data(impu))
            assert reg_data.charging_addresses == ChargingAddresses(("aaa://ccf9.example.com",))
        # The records' lifetime is not extended.
        self.clock.advance(TTL - 100)
        assert self.record(IMPU_TABLE, ALICE_IMPU) is None

    def test_new_user_data_goes_to_sprout_then_the_cache(self) -> None:
        self.register()
        xml = subscription(ALICE, public(ALICE_IMPU), public(ALICE_NEW))
        answer = self.handle(self.ppr(user_data=xml))
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.agent.calls == [
            (
                b"PUT",
                SPROUT.encode() + b"/registrations/sip:alice@example.com",
                {"user-data-xml": xml},
            )
        ]
        irs = self.record(IMPU_TABLE, ALICE_IMPU)
        assert irs["xml"] == xml
        assert irs["impus"] == [ALICE_IMPU, ALICE_NEW]
        assert self.record(IMPU_TABLE, ALICE_NEW) == {"ref": ALICE_IMPU}
        assert self.record(IMPU_TABLE, ALICE_TEL) is None  # no longer in the set
        reg_data = self.successResultOf(self.homestead.get_reg_data(ALICE_NEW))
        assert reg_data.state is RegState.REGISTERED
        assert reg_data.charging_addresses.ccfs == CHARGING.ccfs

    def test_unchanged_user_data_is_not_sent(self) -> None:
        self.register()
        answer = self.handle(self.ppr(user_data=ALICE_XML))
        assert self.cx_value(answer, "Result-Code") == 2001
        assert self.agent.calls == []

    def test_user_data_changing_the_default_impu_is_refused(self) -> None:
        self.register()
        xml = subscription(ALICE, public(ALICE_NEW), public(ALICE_IMPU))
        answer = self.handle(self.ppr(user_data=xml))
        assert self.cx_value(answer, "Result-Code") == 5012
        assert self.agent.calls == []
        assert self.record(IMPU_TABLE, ALICE_IMPU)["xml"] == ALICE_XML

    def test_sprout_failing_is_unable_to_comply_and_nothing_changes(self) -> None:
        self.register()
        self.agent.code = 400
        xml = subscription(ALICE, public(ALICE_IMPU), public(ALICE_NEW))
        answer = self.handle(self.ppr(user_data=xml, charging=ChargingInformation()))
        assert self.cx_value(answer, "Result-Code") == 5012
        assert self.record(IMPU_TABLE, ALICE_IMPU)["xml"] == ALICE_XML
        assert self.record(IMPU_TABLE, ALICE_IMPU)["ccfs"] == list(CHARGING.ccfs)

    def test_bad_user_data_is_unable_to_comply(self) -> None:
        self.register()
        answer = self.handle(self.ppr(user_data="<IMSSubscription>"))
        assert self.cx_value(answer, "Result-Code") == 5012

    def test_an_unknown_impi_is_user_unknown(self) -> None:
        answer = self.handle(self.ppr(impi=BOB, user_data=BOB_XML))
        assert CX.find(answer, "Result-Code") is None
        assert self.cx_value(answer, "Experimental-Result", "Experimental-Result-Code") == 5001
        assert self.cx_value(answer, "Experimental-Result", "Vendor-Id") == 10415
        assert not answer.is_error

    def test_neither_user_data_nor_charging_is_success(self) -> None:
        answer = self.handle(self.ppr(impi=BOB))
        assert self.cx_value(answer, "Result-Code") == 2001


class OtherRequestTests(_Case):
    def test_other_cx_requests_are_command_unsupported(self) -> None:
        request = cx.uar(
            session_id="s;1;1",
            origin_host=HSS_HOST,
            origin_realm=HSS_REALM,
            destination_realm=HOME,
            impi=ALICE,
            impu=ALICE_IMPU,
            visited_network=HOME,
        )
        answer = self.handle(request)
        assert answer.command_code == 300
        assert not answer.is_request
        assert answer.flags & FLAG_ERROR
        assert self.cx_value(answer, "Result-Code") == 3001
        assert self.cx_value(answer, "Session-Id") == "s;1;1"
        assert self.cx_value(answer, "Origin-Host") == HOMESTEAD_HOST
