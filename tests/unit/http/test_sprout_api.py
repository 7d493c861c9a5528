"""Sprout's HTTP API for the S-CSCF (spec §6.2, §3.11): homestead's de-registration and
Push-Profile pushes, the operator's bindings/subscriptions views and administrative
de-registration, next to ``/ping`` and ``/metrics``.

Requests go as bytes through the real :func:`~clearwater.http.sprout.sprout_site` and its HTTP
channel over a ``StringTransport``, served by a real
:class:`~clearwater.scscf.subscribers.SubscriberManager` over memory stores and an HSS-less
homestead over the memory subscriber store (all answer at once, so each response is complete
when ``dataReceived`` returns); NOTIFYs are caught by a fake ``send``. Assertions are on the
response bytes, the stores and the NOTIFYs.
"""

from __future__ import annotations

import gc
import json
from typing import Any, Optional, TypeVar, Union, cast
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyChannel
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    HomesteadError,
    HsslessHomestead,
    RegData,
    ReqType,
)
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.http.sprout import (
    MAX_BODY,
    SproutApiRequest,
    parse_ims_subscription,
    sprout_site,
)
from clearwater.scscf.config import ScscfConfig
from clearwater.scscf.reginfo import ContactEvent, parse_reginfo
from clearwater.scscf.subscribers import SubscriberManager, associated_uris
from clearwater.sip import Request, Response
from clearwater.sip.transaction import build_response
from clearwater.stores.interfaces import StoreUnavailableError
from clearwater.stores.memory import MemoryCasStore, MemorySubscriberStore, MemoryTimerService
from clearwater.stores.records import (
    AoR,
    AssociatedUri,
    Binding,
    Challenge,
    RegState,
    Subscription,
)
from clearwater.stores.typed import ChallengeStore, RegistrationStore

_T = TypeVar("_T")

_PEER = IPv4Address("TCP", "127.0.0.1", 40000)
_HOST = IPv4Address("TCP", "127.0.0.1", 9888)

HOME = "example.com"
SCSCF = "sip:scscf.sprout.example.com;transport=tcp"
OTHER_SCSCF = "sip:scscf.elsewhere.example.net;transport=tcp"
NOW = 1_000_000

ALICE = "sip:alice@example.com"
ALICE_TEL = "tel:+15550001"
ALICE_IMPI = "alice@example.com"
ALICE2_IMPI = "alice-tablet@example.com"
BOB = "sip:bob@example.com"
CAROL = "sip:carol@example.com"

INSTANCE = '"<urn:uuid:00000000-0000-0000-0000-000000000001>"'
B1 = "<urn:uuid:00000000-0000-0000-0000-000000000001>:1"
B2 = "sip:alice@10.0.0.3:5060"
TAG = "to-tag-1"

BINDING_1 = Binding(
    uri="sip:alice@10.0.0.2:5060;transport=tcp",
    cid="cid-1",
    cseq=3,
    expires=NOW + 300,
    priority=500,
    params=(("+sip.instance", INSTANCE), ("reg-id", "1")),
    path_headers=("<sip:token@bono.example.com:5058;transport=TCP;lr;ob>",),
    private_id=ALICE_IMPI,
)
BINDING_2 = Binding(
    uri=B2,
    cid="cid-2",
    cseq=7,
    expires=NOW + 200,
    private_id=ALICE2_IMPI,
)
SUBSCRIPTION = Subscription(
    req_uri="sip:watcher@10.0.0.4:5060",
    from_uri="<sip:alice@example.com>",
    from_tag="from-tag-1",
    to_uri="<sip:alice@example.com>",
    to_tag=TAG,
    cid="sub-cid",
    routes=("<sip:bono.example.com:5058;lr>",),
    expires=NOW + 600,
)

BINDINGS_VIEW = {
    B1: {
        "uri": "sip:alice@10.0.0.2:5060;transport=tcp",
        "cid": "cid-1",
        "cseq": 3,
        "expires": NOW + 300,
        "priority": 500,
        "params": {"+sip.instance": INSTANCE, "reg-id": "1"},
        "paths": ["sip:token@bono.example.com:5058;transport=TCP;lr;ob"],
        "timer_id": "Deprecated",
        "private_id": ALICE_IMPI,
        "emergency_reg": False,
    },
    B2: {
        "uri": B2,
        "cid": "cid-2",
        "cseq": 7,
        "expires": NOW + 200,
        "priority": 0,
        "params": {},
        "paths": [],
        "timer_id": "Deprecated",
        "private_id": ALICE2_IMPI,
        "emergency_reg": False,
    },
}
SUBSCRIPTIONS_VIEW = {
    TAG: {
        "req_uri": "sip:watcher@10.0.0.4:5060",
        "from_uri": "<sip:alice@example.com>",
        "from_tag": "from-tag-1",
        "to_uri": "<sip:alice@example.com>",
        "to_tag": TAG,
        "cid": "sub-cid",
        "routes": ["<sip:bono.example.com:5058;lr>"],
        "expires": NOW + 600,
        "timer_id": "Deprecated",
    }
}


def _subscription_xml(*identities: str, barred: tuple[str, ...] = ()) -> str:
    publics = "".join(
        "<PublicIdentity>"
        + ("<BarringIndication>1</BarringIndication>" if impu in barred else "")
        + "<Identity>"
        + impu
        + "</Identity></PublicIdentity>"
        for impu in identities
    )
    return (
        "<IMSSubscription><PrivateID>"
        + ALICE_IMPI
        + "</PrivateID><ServiceProfile>"
        + publics
        + "</ServiceProfile></IMSSubscription>"
    )


class _Response:
    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, raw
        status_line, *lines = head.split(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 ")
        self.code = int(status_line.split(b" ", 2)[1])
        self.headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            self.headers.setdefault(name.lower(), []).append(value)

    def header(self, name: bytes) -> bytes:
        (value,) = self.headers[name.lower()]
        return value

    def json(self) -> Any:
        assert self.header(b"Content-Type") == b"application/json"
        assert self.header(b"Content-Length") == b"%d" % len(self.body)
        return json.loads(self.body)


class _Registrations(RegistrationStore):
    """The typed store, with switchable failures."""

    fail_reads = False
    fail_writes = False

    @override
    def get_aor(self, aor_id: str) -> Deferred[tuple[Optional[AoR], int]]:
        if self.fail_reads:
            return fail(StoreUnavailableError("registration store down"))
        return super().get_aor(aor_id)

    @override
    def set_aor(self, aor_id: str, aor: AoR, cas: int, now: float) -> Deferred[None]:
        if self.fail_writes:
            return fail(StoreUnavailableError("registration store down"))
        return super().set_aor(aor_id, aor, cas, now)


class _Homestead:
    """The HSS-less homestead, with switchable failures and calls recorded."""

    def __init__(self, inner: HsslessHomestead) -> None:
        self.inner = inner
        self.put_failure: Optional[Exception] = None
        self.held_get: Optional[Deferred[RegData]] = None
        self.puts: list[tuple[str, ReqType, Optional[str]]] = []

    def get_av(
        self,
        impi: str,
        impu: str,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        return self.inner.get_av(impi, impu, scheme, resync_auth, server_name)

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        if self.held_get is not None:
            return self.held_get
        return self.inner.get_reg_data(impu)

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        self.puts.append((impu, reqtype, server_name))
        if self.put_failure is not None:
            return fail(self.put_failure)
        return self.inner.put_reg_data(impu, reqtype, server_name, private_id, wildcard_identity)


class _Case(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped
        self.clock.advance(NOW)
        self.config = ScscfConfig(home_domains=(HOME,), scscf_uri=SCSCF)
        self.subscribers = MemorySubscriberStore()
        self.homestead = _Homestead(
            HsslessHomestead(
                self.subscribers, scscf_uri=SCSCF, home_domain=HOME, now=self.clock.seconds
            )
        )
        self.registrations = _Registrations(MemoryCasStore(self.clock))
        self.challenges = ChallengeStore(MemoryCasStore(self.clock))
        self.sent: list[Request] = []
        self.manager = SubscriberManager(
            self.config,
            self.homestead,
            self.registrations,
            MemoryTimerService(self.clock),
            self.clock,
            self.send,
        )
        self.registry = CollectorRegistry()
        self.site = sprout_site(
            self.registry, self.manager, challenges=self.challenges, reactor=self.clock
        )
        for impi, impus in (
            (ALICE_IMPI, [ALICE, ALICE_TEL]),
            (BOB.split(":")[1], [BOB]),
            (CAROL.split(":")[1], [CAROL]),
        ):
            self.result(
                Deferred.fromCoroutine(
                    provision_subscriber(self.subscribers, impi, impus, realm=HOME, password="pw")
                )
            )

    # -- plumbing

    def send(self, request: Request) -> Deferred[Response]:
        self.sent.append(request)
        return succeed(build_response(request, 200, "OK"))

    def result(self, d: Deferred[_T]) -> _T:
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "not fired"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return cast(_T, results[0])

    def connect(self) -> tuple[IProtocol, StringTransport]:
        protocol = self.site.buildProtocol(_PEER)  # type: ignore[no-untyped-call]  # untyped
        assert IProtocol.providedBy(protocol)
        transport = StringTransport(hostAddress=_HOST, peerAddress=_PEER)  # type: ignore[no-untyped-call]
        protocol.makeConnection(transport)
        return protocol, transport

    def send_raw(self, method: bytes, path: bytes, body: bytes = b"") -> StringTransport:
        protocol, transport = self.connect()
        protocol.dataReceived(
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        return transport

    def call(self, method: bytes, path: Union[str, bytes], body: Any = b"") -> _Response:
        raw_path = path.encode("ascii") if isinstance(path, str) else path
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        transport = self.send_raw(method, raw_path, data)
        written: bytes = transport.value()  # type: ignore[no-untyped-call]  # untyped
        assert transport.disconnecting, written
        return _Response(written)

    def assert_error(self, response: _Response, code: int, message: Optional[str] = None) -> None:
        assert response.code == code, (response.code, response.body)
        body = response.json()
        assert set(body) == {"error"}
        assert isinstance(body["error"], str) and body["error"]
        if message is not None:
            assert body["error"] == message

    def assert_ok(self, response: _Response) -> None:
        assert (response.code, response.body) == (200, b""), (response.code, response.body)
        assert response.header(b"Content-Length") == b"0"

    # -- state

    def register_at_homestead(self, impu: str, impi: str) -> RegData:
        return self.result(
            self.homestead.inner.put_reg_data(impu, ReqType.REG, server_name=SCSCF, private_id=impi)
        )

    def hss_state(self, impu: str) -> RegState:
        return self.result(self.homestead.inner.get_reg_data(impu)).state

    def register_alice(self) -> None:
        """Alice registered at homestead, two bindings (two private identities) and one
        reg-event subscription in the store."""
        reg_data = self.register_at_homestead(ALICE, ALICE_IMPI)
        uris = associated_uris(reg_data)

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, None]:
            return AoR(
                bindings=((B1, BINDING_1), (B2, BINDING_2)),
                subscriptions=((TAG, SUBSCRIPTION),),
                associated_uris=uris,
            ), None

        self.result(Deferred.fromCoroutine(self.manager.update(ALICE, change)))

    def aor(self, aor_id: str = ALICE) -> Optional[AoR]:
        stored, _ = self.result(self.registrations.get_aor(aor_id))
        return stored

    def challenge(self, impi: str) -> None:
        challenge = Challenge(type="digest", nonce="n-" + impi, expires=NOW + 40, ha1="0" * 32)
        self.result(self.challenges.set_challenges(impi, (challenge,), 0, NOW))

    def nonces(self, impi: str) -> list[str]:
        current, _ = self.result(self.challenges.get_challenges(impi))
        return [c.nonce for c in current]


class ManagementTests(_Case):
    def test_ping_and_metrics_are_still_served(self) -> None:
        ping = self.call(b"GET", "/ping")
        assert (ping.code, ping.body) == (200, b"OK")
        metrics = self.call(b"GET", "/metrics")
        assert metrics.code == 200
        assert metrics.header(b"Content-Type").startswith(b"text/plain")

    def test_unknown_paths_are_json_404(self) -> None:
        for path in ("/", "/nothing", "/impu", "/impu/sip:alice@example.com/other", "/impu//x"):
            self.assert_error(self.call(b"GET", path), 404)


class BindingsTests(_Case):
    def test_bindings_are_the_management_view(self) -> None:
        self.register_alice()
        response = self.call(b"GET", "/impu/" + ALICE + "/bindings")
        assert response.code == 200
        assert response.json() == {"bindings": BINDINGS_VIEW}
        assert b": " not in response.body and b", " not in response.body  # compact

    def test_subscriptions_are_the_management_view(self) -> None:
        self.register_alice()
        response = self.call(b"GET", "/impu/" + ALICE + "/subscriptions")
        assert response.code == 200
        assert response.json() == {"subscriptions": SUBSCRIPTIONS_VIEW}

    def test_any_identity_of_the_set_finds_the_aor(self) -> None:
        self.register_alice()
        for path in (
            "/impu/" + ALICE_TEL + "/bindings",
            "/impu/" + quote(ALICE_TEL, safe="") + "/bindings",
            "/impu/" + quote(ALICE, safe="") + "/bindings",
        ):
            response = self.call(b"GET", path)
            assert response.code == 200, path
            assert response.json() == {"bindings": BINDINGS_VIEW}

    def test_an_identity_homestead_does_not_know_is_looked_up_as_is(self) -> None:
        reg_data = self.register_at_homestead(ALICE, ALICE_IMPI)
        unknown = "sip:ghost@example.com"

        def change(aor: Optional[AoR], now: int) -> tuple[AoR, None]:
            uris = associated_uris(reg_data)
            return AoR(bindings=((B2, BINDING_2),), associated_uris=uris), None

        self.result(Deferred.fromCoroutine(self.manager.update(unknown, change)))
        response = self.call(b"GET", "/impu/" + unknown + "/bindings")
        assert response.json() == {"bindings": {B2: BINDINGS_VIEW[B2]}}

    def test_homestead_failing_falls_back_to_the_identity(self) -> None:
        self.register_alice()
        self.homestead.held_get = fail(HomesteadError(504, "No homestead answered"))
        assert self.call(b"GET", "/impu/" + ALICE + "/bindings").code == 200
        self.homestead.held_get = fail(HomesteadError(504, "No homestead answered"))
        self.assert_error(self.call(b"GET", "/impu/" + ALICE_TEL + "/bindings"), 404)

    def test_no_bindings_is_404_for_both_views(self) -> None:
        self.register_at_homestead(BOB, "bob@example.com")
        for view in ("bindings", "subscriptions"):
            self.assert_error(
                self.call(b"GET", "/impu/" + BOB + "/" + view), 404, "No bindings for " + BOB
            )
            self.assert_error(self.call(b"GET", "/impu/sip:nobody@example.com/" + view), 404)

    def test_expired_bindings_are_not_shown(self) -> None:
        self.register_alice()
        self.clock.advance(250)  # B2 expired; its timer popped and removed it
        response = self.call(b"GET", "/impu/" + ALICE + "/bindings")
        assert response.json() == {"bindings": {B1: BINDINGS_VIEW[B1]}}
        self.clock.advance(100)  # both gone
        self.assert_error(self.call(b"GET", "/impu/" + ALICE + "/bindings"), 404)

    def test_store_failure_is_500(self) -> None:
        self.register_alice()
        self.registrations.fail_reads = True
        for view in ("bindings", "subscriptions"):
            self.assert_error(
                self.call(b"GET", "/impu/" + ALICE + "/" + view),
                500,
                "Registration store unavailable",
            )

    def test_head_sends_the_get_headers_without_the_body(self) -> None:
        self.register_alice()
        get = self.call(b"GET", "/impu/" + ALICE + "/bindings")
        head = self.call(b"HEAD", "/impu/" + ALICE + "/bindings")
        assert (head.code, head.body) == (200, b"")
        assert head.header(b"Content-Length") == b"%d" % len(get.body)
        assert head.header(b"Content-Type") == b"application/json"

    def test_other_methods_are_405(self) -> None:
        self.register_alice()
        for method in (b"POST", b"PUT", b"DELETE"):
            response = self.call(method, "/impu/" + ALICE + "/bindings")
            self.assert_error(response, 405, "Method not allowed")
            assert response.header(b"Allow") == b"GET, HEAD"
        assert self.aor() is not None and len(self.aor().bindings) == 2  # type: ignore[union-attr]

    def test_identity_not_utf8_is_400(self) -> None:
        self.assert_error(self.call(b"GET", b"/impu/sip:%FF@example.com/bindings"), 400)


class DeregistrationTests(_Case):
    """``DELETE /registrations`` (homestead's RTR)."""

    path = "/registrations?send-notifications=true"

    def test_removes_every_binding_and_notifies_without_telling_homestead(self) -> None:
        self.register_alice()
        self.challenge(ALICE_IMPI)
        self.challenge(ALICE2_IMPI)
        self.challenge("bob@example.com")
        self.assert_ok(
            self.call(b"DELETE", self.path, {"registrations": [{"primary-impu": ALICE}]})
        )
        assert self.aor() is None
        [notify] = self.sent
        assert notify.method == "NOTIFY"
        assert notify.headers.get("Subscription-State") == "terminated;reason=deactivated"
        info = parse_reginfo(notify.body)
        assert [r.aor for r in info.registrations] == [ALICE, ALICE_TEL]
        assert info.registrations[0].state == "terminated"
        assert sorted((c.uri, c.state, c.event) for c in info.registrations[0].contacts) == [
            (BINDING_1.uri, "terminated", ContactEvent.DEACTIVATED),
            (B2, "terminated", ContactEvent.DEACTIVATED),
        ]
        assert self.homestead.puts == []  # no SAR back: homestead asked
        assert self.hss_state(ALICE) is RegState.REGISTERED
        assert self.nonces(ALICE_IMPI) == [] and self.nonces(ALICE2_IMPI) == []
        assert self.nonces("bob@example.com") == ["n-bob@example.com"]

    def test_with_an_impi_only_its_bindings_go(self) -> None:
        self.register_alice()
        self.challenge(ALICE_IMPI)
        self.challenge(ALICE2_IMPI)
        body = {"registrations": [{"primary-impu": ALICE, "impi": ALICE2_IMPI}]}
        path = "/registrations?send-notifications=false"
        self.assert_ok(self.call(b"DELETE", path, body))
        aor = self.aor()
        assert aor is not None
        assert aor.bindings == ((B1, BINDING_1),)
        assert aor.subscriptions == ((TAG, SUBSCRIPTION),)
        [notify] = self.sent  # send-notifications=false is accepted, not acted on (Clearwater)
        assert notify.headers.get("Subscription-State") == "active;expires=600"
        contacts = parse_reginfo(notify.body).registrations[0].contacts
        assert sorted((c.uri, c.state, c.event) for c in contacts) == [
            (BINDING_1.uri, "active", ContactEvent.REGISTERED),
            (B2, "terminated", ContactEvent.DEACTIVATED),
        ]
        assert self.nonces(ALICE_IMPI) == ["n-" + ALICE_IMPI]
        assert self.nonces(ALICE2_IMPI) == []

    def test_several_aors_and_repeats(self) -> None:
        self.register_alice()
        body = {
            "registrations": [
                {"primary-impu": ALICE, "impi": "someone-else@example.com"},
                {"primary-impu": ALICE},  # a repeat: the first entry counts
                {"primary-impu": BOB, "impi": 7, "other": "ignored"},
            ]
        }
        self.assert_ok(self.call(b"DELETE", self.path, body))
        aor = self.aor()
        assert aor is not None and len(aor.bindings) == 2

    def test_an_unknown_aor_is_200(self) -> None:
        body = {"registrations": [{"primary-impu": "sip:ghost@example.com"}]}
        self.assert_ok(self.call(b"DELETE", self.path, body))
        assert self.aor("sip:ghost@example.com") is None
        assert self.sent == []

    def test_bad_requests_are_400_and_change_nothing(self) -> None:
        self.register_alice()
        good = json.dumps({"registrations": [{"primary-impu": ALICE}]}).encode()
        cases: list[tuple[str, bytes]] = [
            ("/registrations", good),
            ("/registrations?send-notifications=yes", good),
            ("/registrations?send-notifications=TRUE", good),
            (self.path, b"{not json"),
            (self.path, b"\xff\xfe"),
            (self.path, b""),
            (self.path, b"[]"),
            (self.path, b"{}"),
            (self.path, b'{"registrations": {"primary-impu": "sip:alice@example.com"}}'),
            (self.path, b'{"registrations": ["sip:alice@example.com"]}'),
            (self.path, b'{"registrations": [{"impi": "alice@example.com"}]}'),
            (self.path, b'{"registrations": [{"primary-impu": 1}]}'),
            # a bad entry after a good one: nothing is done
            (self.path, b'{"registrations": [{"primary-impu": "sip:alice@example.com"}, {}]}'),
        ]
        for path, body in cases:
            self.assert_error(self.call(b"DELETE", path, body), 400)
        aor = self.aor()
        assert aor is not None and len(aor.bindings) == 2
        assert self.sent == []

    def test_store_failure_is_500(self) -> None:
        self.register_alice()
        self.registrations.fail_writes = True
        response = self.call(b"DELETE", self.path, {"registrations": [{"primary-impu": ALICE}]})
        self.assert_error(response, 500, "Registration store unavailable")
        self.registrations.fail_writes = False
        aor = self.aor()
        assert aor is not None and len(aor.bindings) == 2

    def test_a_body_over_the_limit_is_413(self) -> None:
        self.register_alice()
        body = b'{"registrations": [], "pad": "' + b"x" * MAX_BODY + b'"}'
        self.assert_error(self.call(b"DELETE", self.path, body), 413)
        just_fits = b'{"registrations":[]}'.ljust(MAX_BODY, b" ")
        self.assert_ok(self.call(b"DELETE", self.path, just_fits))

    def test_other_methods_are_405(self) -> None:
        for method in (b"GET", b"PUT", b"POST"):
            response = self.call(method, self.path, {"registrations": []})
            self.assert_error(response, 405)
            assert response.header(b"Allow") == b"DELETE"


class PushProfileTests(_Case):
    """``PUT /registrations/<default IMPU>`` (homestead's PPR)."""

    path = "/registrations/" + ALICE

    def test_updates_the_associated_uris_and_notifies(self) -> None:
        self.register_alice()
        work = "sip:alice-work@example.com"
        barred = "sip:alice-barred@example.com"
        xml = _subscription_xml(ALICE, work, barred, barred=(barred,))
        self.assert_ok(self.call(b"PUT", self.path, {"user-data-xml": xml}))
        aor = self.aor()
        assert aor is not None
        assert aor.associated_uris == (
            AssociatedUri(ALICE),
            AssociatedUri(work),
            AssociatedUri(barred, barring=True),
        )
        assert len(aor.bindings) == 2  # untouched
        [notify] = self.sent
        assert notify.headers.get("Subscription-State") == "active;expires=600"
        info = parse_reginfo(notify.body)
        assert [r.aor for r in info.registrations] == [ALICE, work]
        assert {(c.state, c.event) for c in info.registrations[1].contacts} == {
            ("active", ContactEvent.REGISTERED)
        }

    def test_the_same_uris_write_and_notify_nothing(self) -> None:
        self.register_alice()
        before = self.aor()
        xml = _subscription_xml(ALICE, ALICE_TEL)
        self.assert_ok(
            self.call(b"PUT", "/registrations/" + quote(ALICE, safe=""), {"user-data-xml": xml})
        )
        assert self.aor() == before
        assert self.sent == []

    def test_nothing_registered_is_200_and_writes_nothing(self) -> None:
        xml = _subscription_xml(BOB)
        self.assert_ok(self.call(b"PUT", "/registrations/" + BOB, {"user-data-xml": xml}))
        _, cas = self.result(self.registrations.get_aor(BOB))
        assert cas == 0  # not even a tombstone
        assert self.sent == []

    def test_bad_bodies_are_400(self) -> None:
        self.register_alice()
        profile = "<ServiceProfile><PublicIdentity><Identity>" + ALICE
        profile += "</Identity></PublicIdentity></ServiceProfile>"
        cases: list[Any] = [
            b"{not json",
            b"[]",
            {},
            {"user-data-xml": 5},
            {"user-data-xml": "not xml"},
            {"user-data-xml": "<ClearwaterRegData>" + profile + "</ClearwaterRegData>"},
            {"user-data-xml": "<IMSSubscription><PrivateID>a</PrivateID></IMSSubscription>"},
            {"user-data-xml": "<IMSSubscription><ServiceProfile/></IMSSubscription>"},
            {
                "user-data-xml": "<IMSSubscription><ServiceProfile><PublicIdentity>"
                "<BarringIndication>1</BarringIndication></PublicIdentity></ServiceProfile>"
                "</IMSSubscription>"
            },
            {
                "user-data-xml": '<!DOCTYPE x [<!ENTITY a "b">]><IMSSubscription>'
                + profile
                + "</IMSSubscription>"
            },
        ]
        for body in cases:
            self.assert_error(self.call(b"PUT", self.path, body), 400)
        aor = self.aor()
        assert aor is not None
        assert [u.uri for u in aor.associated_uris] == [ALICE, ALICE_TEL]
        assert self.sent == []

    def test_store_failure_is_500(self) -> None:
        self.register_alice()
        self.registrations.fail_writes = True
        xml = _subscription_xml(ALICE)
        response = self.call(b"PUT", self.path, {"user-data-xml": xml})
        self.assert_error(response, 500, "Registration store unavailable")

    def test_other_methods_are_405(self) -> None:
        for method in (b"GET", b"DELETE", b"POST"):
            response = self.call(method, self.path, {"user-data-xml": _subscription_xml(ALICE)})
            self.assert_error(response, 405)
            assert response.header(b"Allow") == b"PUT"


class AdminDeregistrationTests(_Case):
    """``DELETE /impu/<default IMPU>``."""

    path = "/impu/" + ALICE

    def test_removes_everything_notifies_and_tells_homestead(self) -> None:
        self.register_alice()
        self.assert_ok(self.call(b"DELETE", self.path))
        assert self.aor() is None
        [notify] = self.sent
        assert notify.headers.get("Subscription-State") == "terminated;reason=deactivated"
        contacts = parse_reginfo(notify.body).registrations[0].contacts
        assert {(c.state, c.event) for c in contacts} == {("terminated", ContactEvent.DEACTIVATED)}
        assert self.homestead.puts == [(ALICE, ReqType.DEREG_ADMIN, SCSCF)]
        assert self.hss_state(ALICE) is RegState.UNREGISTERED

    def test_registered_at_homestead_without_bindings_is_deregistered_there(self) -> None:
        self.register_at_homestead(BOB, "bob@example.com")
        self.assert_ok(self.call(b"DELETE", "/impu/" + BOB))
        assert self.hss_state(BOB) is RegState.UNREGISTERED
        assert self.sent == []

    def test_not_registered_is_400(self) -> None:
        response = self.call(b"DELETE", "/impu/" + CAROL)
        self.assert_error(response, 400)
        assert self.hss_state(CAROL) is RegState.NOT_REGISTERED

    def test_unknown_to_homestead_is_404(self) -> None:
        self.assert_error(self.call(b"DELETE", "/impu/sip:ghost@example.com"), 404)

    def test_an_aor_of_another_scscf_is_400_and_untouched(self) -> None:
        self.register_alice()
        other = _as_another_scscfs(self, OTHER_SCSCF)
        response = self.call(b"DELETE", self.path)
        self.assert_error(response, 400, ALICE + " is assigned to " + OTHER_SCSCF)
        assert self.aor() == other
        assert self.homestead.puts == []
        assert self.hss_state(ALICE) is RegState.REGISTERED
        assert self.sent == []

    def test_homestead_failing_is_502(self) -> None:
        self.register_alice()
        for error in (
            HomesteadError(504, "No homestead answered"),
            HomesteadError(500, "Internal error"),
            StoreUnavailableError("subscriber store down"),
        ):
            self.homestead.put_failure = error
            self.assert_error(self.call(b"DELETE", self.path), 502)
        assert self.aor() is None  # the bindings went all the same

    def test_homestead_refusing_is_400(self) -> None:
        self.register_alice()
        self.homestead.put_failure = HomesteadError(403, "Forbidden")
        self.assert_error(self.call(b"DELETE", self.path), 400, "Homestead: Forbidden")

    def test_store_failure_is_500_and_homestead_is_not_told(self) -> None:
        self.register_alice()
        self.registrations.fail_writes = True
        self.assert_error(self.call(b"DELETE", self.path), 500, "Registration store unavailable")
        self.registrations.fail_reads = True
        self.assert_error(self.call(b"DELETE", self.path), 500, "Registration store unavailable")
        assert self.homestead.puts == []
        assert self.hss_state(ALICE) is RegState.REGISTERED

    def test_other_methods_are_405(self) -> None:
        self.register_alice()
        for method in (b"GET", b"PUT", b"POST"):
            response = self.call(method, self.path)
            self.assert_error(response, 405)
            assert response.header(b"Allow") == b"DELETE"
        assert self.homestead.puts == []


class ClientGoneTests(_Case):
    def test_nothing_is_written_after_the_client_went_away(self) -> None:
        self.register_alice()
        held: Deferred[RegData] = Deferred()
        self.homestead.held_get = held
        protocol, transport = self.connect()
        protocol.dataReceived(
            b"GET /impu/" + ALICE.encode() + b"/bindings HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert transport.value() == b""  # type: ignore[no-untyped-call]  # untyped
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]
            held.callback(self.result(self.homestead.inner.get_reg_data(ALICE)))
            gc.collect()  # an unhandled failure would be logged now
        assert transport.value() == b""  # type: ignore[no-untyped-call]  # untyped
        assert [e for e in events if "log_failure" in e] == []


def _as_another_scscfs(case: _Case, scscf_uri: str) -> AoR:
    """Rewrite Alice's AoR as another S-CSCF's."""
    stored, cas = case.result(case.registrations.get_aor(ALICE))
    assert stored is not None
    other = AoR(
        bindings=stored.bindings,
        subscriptions=stored.subscriptions,
        associated_uris=stored.associated_uris,
        notify_cseq=stored.notify_cseq,
        timer_id=stored.timer_id,
        scscf_uri=scscf_uri,
    )
    case.result(case.registrations.set_aor(ALICE, other, cas, NOW))
    return other


def test_parse_ims_subscription_gives_the_associated_uris() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<IMSSubscription xmlns="urn:3gpp"><PrivateID>a@example.com</PrivateID>'
        "<ServiceProfile><PublicIdentity><Identity>sip:a@example.com</Identity>"
        "</PublicIdentity><PublicIdentity><BarringIndication>1</BarringIndication>"
        "<Identity>tel:+1555</Identity></PublicIdentity></ServiceProfile>"
        "<ServiceProfile><PublicIdentity><Identity>sip:a@example.com</Identity>"
        "</PublicIdentity><PublicIdentity><Identity>sip:pbx-1@example.com</Identity>"
        "<Extension><IdentityType>3</IdentityType><Extension>"
        "<WildcardedIMPU>sip:pbx-!.*!@example.com</WildcardedIMPU></Extension></Extension>"
        "</PublicIdentity></ServiceProfile></IMSSubscription>"
    )
    assert parse_ims_subscription(xml) == (
        AssociatedUri("sip:a@example.com"),
        AssociatedUri("tel:+1555", barring=True),
        AssociatedUri("sip:pbx-!.*!@example.com"),
    )


@pytest.mark.parametrize(
    "xml",
    [
        "",
        "<IMSSubscription>",
        "<Other/>",
        "<IMSSubscription/>",
        "<IMSSubscription><ServiceProfile/></IMSSubscription>",
        "<IMSSubscription><ServiceProfile><PublicIdentity/></ServiceProfile></IMSSubscription>",
    ],
)
def test_parse_ims_subscription_refuses_what_clearwater_refuses(xml: str) -> None:
    with pytest.raises(ParseError):
        parse_ims_subscription(xml)


def test_the_site_keeps_no_body_beyond_the_limit() -> None:
    declared = SproutApiRequest(DummyChannel())  # type: ignore[no-untyped-call]  # untyped
    declared.gotLength(MAX_BODY + 1)
    declared.handleContentChunk(b"x" * 1000)
    assert declared.body_too_large
    assert declared.content is not None
    assert declared.content.tell() == 0
    chunked = SproutApiRequest(DummyChannel())  # type: ignore[no-untyped-call]  # untyped
    chunked.gotLength(None)
    for _ in range(3):
        chunked.handleContentChunk(b"x" * (MAX_BODY // 2))
    assert chunked.body_too_large
    assert chunked.content is not None
    assert chunked.content.tell() == MAX_BODY
    within = SproutApiRequest(DummyChannel())  # type: ignore[no-untyped-call]  # untyped
    within.gotLength(MAX_BODY)
    within.handleContentChunk(b"x" * MAX_BODY)
    assert not within.body_too_large
    assert within.content is not None
    assert within.content.tell() == MAX_BODY
