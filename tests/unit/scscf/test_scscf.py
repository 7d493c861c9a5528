"""The S-CSCF end to end in process (spec §3): phones (our UA core) around a SproutletProxy
hosting the four S-CSCF stages, HSS-less homestead over the memory subscriber store, memory
registration and challenge stores and timers; every packet over memory UDP links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.homestead.hssless import HsslessHomestead, RegData
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.scscf import ScscfConfig, ThirdPartyRegistration, build_scscf
from clearwater.scscf.bindings import RegisterKind
from clearwater.scscf.reginfo import ContactEvent, parse_reginfo
from clearwater.sip import Request, Response, parse_message
from clearwater.sip.auth import DigestClient
from clearwater.sip.sproutlet import SproutletProxy
from clearwater.sip.transaction import build_response
from clearwater.sip.ua import IncomingRequest, UserAgent
from clearwater.stores.memory import MemoryCasStore, MemorySubscriberStore, MemoryTimerService
from clearwater.stores.typed import ChallengeStore, RegistrationStore
from clearwater.testing.reactor import LossyDatagramLink, SipMemoryReactor

_T = TypeVar("_T")

HOME = "example.com"
SPROUT = "sprout.example.com"
SCSCF_URI = "sip:scscf.sprout.example.com;transport=udp"
PROXY = "10.0.0.1"
ALICE = "10.0.0.2"
BOB = "10.0.0.3"
WATCHER = "10.0.0.4"
OUTBOUND = "sip:" + PROXY + ":5054"


def answer_calls(seen: list[IncomingRequest]) -> Any:
    def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        if incoming.request.method in ("INVITE", "MESSAGE", "OPTIONS"):
            incoming.respond(200)

    return handler


class Watcher(DatagramProtocol):
    """A reg-event watcher's SIP endpoint: answers every NOTIFY 200 and keeps it."""

    def __init__(self) -> None:
        self.notifies: list[Request] = []

    @override
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        message = parse_message(datagram)
        if isinstance(message, Request) and message.method == "NOTIFY":
            self.notifies.append(message)
            response = build_response(message, 200, "OK")
            assert self.transport is not None
            self.transport.write(response.to_bytes(), addr)


class Core:
    """The S-CSCF and two phones, Alice and Bob, provisioned with digest passwords."""

    def __init__(self, third_party: Optional[ThirdPartyRegistration] = None, **config: Any) -> None:
        self.reactor = SipMemoryReactor()
        reactor = cast(ISipReactor, self.reactor)
        self.config = ScscfConfig(home_domains=(HOME,), scscf_uri=SCSCF_URI, **config)
        self.subscribers = MemorySubscriberStore()
        self.homestead = HsslessHomestead(
            self.subscribers, scscf_uri=SCSCF_URI, home_domain=HOME, now=self.reactor.seconds
        )
        self.cas = MemoryCasStore(self.reactor)
        self.registrations = RegistrationStore(self.cas)
        self.timers = MemoryTimerService(self.reactor)
        holder: list[SproutletProxy] = []
        sproutlets, self.manager = build_scscf(
            self.config,
            self.homestead,
            self.registrations,
            ChallengeStore(MemoryCasStore(self.reactor)),
            self.timers,
            self.reactor,
            lambda request: holder[0].originate(request),
            third_party=third_party,
        )
        self.proxy = SproutletProxy(reactor, sproutlets, hostname=SPROUT, local_hosts=[PROXY, HOME])
        holder.append(self.proxy)
        self.proxy.listen("udp:" + PROXY + ":5054")
        self.links: list[LossyDatagramLink] = []
        self.alice_seen: list[IncomingRequest] = []
        self.bob_seen: list[IncomingRequest] = []
        self.alice = self.phone("alice", ALICE, "a", self.alice_seen)
        self.bob = self.phone("bob", BOB, "b", self.bob_seen)
        self.watcher = Watcher()
        self.reactor.listenUDP(5060, self.watcher, interface=WATCHER)
        for n, (user, password) in enumerate((("alice", "a"), ("bob", "b"), ("carol", "c"))):
            self.provision(user, password, "tel:+1555000" + str(n))
        listeners = self.reactor.udp_listeners
        self.links = [
            LossyDatagramLink(a, b)
            for i, a in enumerate(listeners)
            for b in listeners[i + 1 :]
            if a.interface != b.interface
        ]

    def phone(self, user: str, host: str, password: str, seen: list[IncomingRequest]) -> UserAgent:
        ua = UserAgent(
            cast(ISipReactor, self.reactor),
            user=user,
            outbound_proxy=OUTBOUND,
            credentials=DigestClient(user + "@" + HOME, password),
            handler=answer_calls(seen),
        )
        ua.listen("udp:" + host + ":5060")
        return ua

    def provision(self, user: str, password: str, tel: str) -> None:
        d = Deferred.fromCoroutine(
            provision_subscriber(
                self.subscribers,
                user + "@" + HOME,
                ["sip:" + user + "@" + HOME, tel],
                realm=HOME,
                password=password,
            )
        )
        self.result(d)

    def pump(self) -> None:
        """Deliver every datagram and run what is due now (originated requests leave on the
        reactor's next turn), until nothing moves."""
        while True:
            self.reactor.advance(0)
            if sum(link.pump() for link in self.links) == 0 and not any(
                call.getTime() <= self.reactor.seconds() for call in self.reactor.getDelayedCalls()
            ):
                return

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.reactor.seconds() + seconds
        while self.reactor.seconds() < end:
            self.reactor.advance(step)
            self.pump()

    def result(self, d: Deferred[_T]) -> _T:
        self.pump()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "not fired"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return cast(_T, results[0])

    def register(
        self, ua: UserAgent, user: str, host: str, expires: int = 300, extra: Sequence[str] = ()
    ) -> Response:
        aor = "<sip:" + user + "@" + HOME + ">"
        request = ua.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
        request.headers.add("Contact", "<sip:" + user + "@" + host + ":5060>" + "".join(extra))
        request.headers.add("Expires", str(expires))
        return self.result(ua.send(request))

    def written(self, host: str, to: str) -> list[Any]:
        out = []
        for listener in self.reactor.udp_listeners:
            if listener.interface == host:
                out += [parse_message(d) for d, (dest, _) in listener.written if dest == to]
        return out


class RegistrarTests(SynchronousTestCase):
    def test_register_with_digest_gets_200_with_everything(self) -> None:
        core = Core()
        response = core.register(core.alice, "alice", ALICE)
        assert response.status == 200
        sent = [m for m in core.written(ALICE, PROXY) if isinstance(m, Request)]
        assert [m.method for m in sent] == ["REGISTER", "REGISTER"]  # challenged once
        challenge = next(m for m in core.written(PROXY, ALICE) if isinstance(m, Response))
        assert challenge.status == 401
        [service_route] = response.headers.get_all("Service-Route")
        # Clearwater's authentication stage names the digest user and nonce (spec §3.2).
        assert service_route.startswith("<" + SCSCF_URI + ";lr;orig;username=alice%40example.com")
        assert response.headers.get_all("P-Associated-URI") == [
            "<sip:alice@example.com>",
            "<tel:+15550000>",
        ]
        [contact] = response.headers.get_all("Contact")
        assert contact.startswith("<sip:alice@10.0.0.2:5060>") and "expires=300" in contact
        aor, _ = core.result(core.registrations.get_aor("sip:alice@example.com"))
        assert aor is not None and [b.uri for _, b in aor.bindings] == ["sip:alice@10.0.0.2:5060"]
        assert [b.private_id for _, b in aor.bindings] == ["alice@example.com"]

    def test_deregister_removes_the_binding_and_tells_homestead(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        response = core.register(core.alice, "alice", ALICE, expires=0)
        assert response.status == 200 and response.headers.get_all("Contact") == []
        aor, _ = core.result(core.registrations.get_aor("sip:alice@example.com"))
        assert aor is None
        reg_data = core.result(core.homestead.get_reg_data("sip:alice@example.com"))
        assert reg_data.state.value == "UNREGISTERED"

    def test_wrong_password_is_403(self) -> None:
        core = Core()
        core.alice = core.phone("alice", "10.0.0.9", "wrong", [])
        core.links += [
            LossyDatagramLink(a, b)
            for a in core.reactor.udp_listeners
            for b in core.reactor.udp_listeners
            if a.interface == "10.0.0.9" and b.interface == PROXY
        ]
        assert core.register(core.alice, "alice", "10.0.0.9").status == 403

    def test_binding_expiry_pops_the_timer(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE, expires=60).status == 200
        core.run(61)
        aor, _ = core.result(core.registrations.get_aor("sip:alice@example.com"))
        assert aor is None or not aor.bindings
        reg_data = core.result(core.homestead.get_reg_data("sip:alice@example.com"))
        assert reg_data.state.value == "UNREGISTERED"


class ThirdPartyHookTests(SynchronousTestCase):
    def test_the_hook_sees_every_accepted_register_and_its_200(self) -> None:
        seen: list[tuple[str, int, str, RegisterKind]] = []

        class Recorder:
            def registered(
                self, request: Request, response: Response, reg_data: RegData, kind: RegisterKind
            ) -> None:
                default = reg_data.default_public_identity or ""
                seen.append((request.method, response.status, default, kind))

        core = Core(third_party=Recorder())
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert core.register(core.alice, "alice", ALICE, expires=0).status == 200
        alice = "sip:alice@example.com"
        assert seen == [
            ("REGISTER", 200, alice, RegisterKind.INITIAL),
            ("REGISTER", 200, alice, RegisterKind.REREGISTER),
            ("REGISTER", 200, alice, RegisterKind.DEREGISTER),
        ]


class CallTests(SynchronousTestCase):
    def test_call_between_registered_users(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert core.register(core.bob, "bob", BOB).status == 200
        call = core.alice.invite(
            "sip:bob@" + HOME,
            body=b"v=0\r\n",
            headers=[("Route", "<" + SCSCF_URI + ";lr;orig>")],
        )
        dialog = core.result(call.answered)
        assert dialog is not None
        [invite] = [i.request for i in core.bob_seen if i.request.method == "INVITE"]
        assert str(invite.uri) == "sip:bob@10.0.0.3:5060"
        assert invite.headers.get_all("P-Called-Party-ID") == ["<sip:bob@example.com>"]
        # Spec §3.8: the S-CSCF stays in the dialog, once as originating, once as terminating.
        assert invite.headers.get_all("Record-Route") == [
            "<" + SCSCF_URI + ";lr;billing-role=charge-term>",
            "<" + SCSCF_URI + ";lr;billing-role=charge-orig>",
        ]
        # The BYE follows the route set: through the S-CSCF, which takes both its Routes.
        assert core.result(dialog.bye()).status == 200
        [bye] = [
            m for m in core.written(PROXY, BOB) if isinstance(m, Request) and m.method == "BYE"
        ]
        assert bye.headers.get_all("Route") == []

    def test_call_to_unregistered_user_is_480(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        d = core.alice.send(_with_route(core.alice.create_request("MESSAGE", "sip:carol@" + HOME)))
        assert core.result(d).status == 480

    def test_call_to_unknown_user_is_404(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        d = core.alice.send(_with_route(core.alice.create_request("MESSAGE", "sip:dan@" + HOME)))
        assert core.result(d).status == 404


class SessionTimerTests(SynchronousTestCase):
    """RFC 4028 §8 at the S-CSCF once it Record-Routes (spec §3.8)."""

    def call(self, headers: list[tuple[str, str]], **config: Any) -> tuple[Request, Response]:
        """Alice calls Bob with ``headers``: the INVITE Bob got, the 200 Alice got."""
        core = Core(**config)
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert core.register(core.bob, "bob", BOB).status == 200
        route = ("Route", "<" + SCSCF_URI + ";lr;orig>")
        call = core.alice.invite("sip:bob@" + HOME, body=b"v=0\r\n", headers=[route, *headers])
        assert core.result(call.answered) is not None
        [invite] = [i.request for i in core.bob_seen if i.request.method == "INVITE"]
        [ok] = [
            m
            for m in core.written(PROXY, ALICE)
            if isinstance(m, Response) and m.status == 200 and m.cseq.method == "INVITE"
        ]
        return invite, ok

    def test_an_invite_without_session_expires_gets_the_configured_one(self) -> None:
        invite, ok = self.call([], session_expires=900)
        assert invite.headers.get_all("Session-Expires") == ["900"]
        # The UAC did not say it supports timers: the 200 is left alone.
        assert "Session-Expires" not in ok.headers and "Require" not in ok.headers

    def test_a_uac_with_timers_refreshes_when_the_uas_has_none(self) -> None:
        invite, ok = self.call([("Supported", "timer")])
        assert invite.headers.get_all("Session-Expires") == ["600"]
        assert ok.headers.get_all("Session-Expires") == ["600;refresher=uac"]
        assert ok.headers.get_all("Require") == ["timer"]

    def test_a_longer_session_expires_is_lowered_but_not_below_min_se(self) -> None:
        invite, _ = self.call([("Session-Expires", "1800;refresher=uac")])
        assert invite.headers.get_all("Session-Expires") == ["600;refresher=uac"]
        invite, _ = self.call([("Session-Expires", "1800"), ("Min-SE", "1000")])
        assert invite.headers.get_all("Session-Expires") == ["1000"]

    def test_a_shorter_one_is_kept(self) -> None:
        invite, _ = self.call([("x", "120;refresher=uas"), ("Min-SE", "90")])
        assert invite.headers.get_all("Session-Expires") == ["120;refresher=uas"]

    def test_a_malformed_one_is_left_to_the_endpoints(self) -> None:
        invite, ok = self.call([("Session-Expires", "soon"), ("Supported", "timer")])
        assert invite.headers.get_all("Session-Expires") == ["soon"]
        assert "Session-Expires" not in ok.headers


class RegEventTests(SynchronousTestCase):
    def subscribe(self, core: Core, expires: int = 600) -> Response:
        aor = "<sip:alice@" + HOME + ">"
        request = core.alice.create_request("SUBSCRIBE", "sip:alice@" + HOME, from_=aor, to=aor)
        request.headers.add("Event", "reg")
        request.headers.add("Accept", "application/reginfo+xml")
        request.headers.set("Contact", "<sip:alice@" + WATCHER + ":5060>")
        request.headers.add("Expires", str(expires))
        request.headers.add("Route", "<" + SCSCF_URI + ";lr>")
        return core.result(core.alice.send(request))

    def notifies(self, core: Core) -> list[Request]:
        return core.watcher.notifies

    def test_subscribe_gets_200_then_a_full_notify(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        response = self.subscribe(core)
        assert response.status == 200
        assert response.headers.get("Expires") == str(core.config.max_subscription_expires)
        [notify] = self.notifies(core)
        # RFC 6665 §4.2.1.2: the NOTIFY follows the 200 (on the wire too).
        sent = [
            m.method if isinstance(m, Request) else m.status
            for listener in core.reactor.udp_listeners
            if listener.interface == PROXY
            for m in (parse_message(d) for d, _ in listener.written)
        ]
        assert sent[-2:] == [200, "NOTIFY"]
        assert notify.headers.get("Event") == "reg"
        assert (notify.headers.get("Subscription-State") or "").startswith("active;expires=")
        info = parse_reginfo(notify.body)
        assert info.state == "full"
        assert [r.aor for r in info.registrations] == ["sip:alice@example.com", "tel:+15550000"]
        [contact] = info.registrations[0].contacts
        assert (contact.state, contact.event, contact.uri) == (
            "active",
            ContactEvent.REGISTERED,
            "sip:alice@10.0.0.2:5060",
        )

    def test_a_fetch_changes_nothing_and_notifies_nobody(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert self.subscribe(core).status == 200
        aor = "<sip:alice@" + HOME + ">"
        fetch = core.alice.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
        fetch.headers.remove("Contact")  # RFC 3261 §10.2.3: no Contact, only a query
        assert core.result(core.alice.send(fetch)).status == 200
        assert len(self.notifies(core)) == 1  # the first NOTIFY only: no CSeq repeated
        assert core.register(core.alice, "alice", ALICE, expires=0).status == 200
        cseqs = [n.cseq.seq for n in self.notifies(core)]
        assert len(cseqs) == 2 and cseqs[0] < cseqs[1]

    def test_deregistration_notifies_and_ends_the_subscription(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert self.subscribe(core).status == 200
        assert core.register(core.alice, "alice", ALICE, expires=0).status == 200
        notifies = self.notifies(core)
        assert len(notifies) == 2
        last = notifies[-1]
        assert last.headers.get("Subscription-State") == "terminated;reason=deactivated"
        info = parse_reginfo(last.body)
        [contact] = info.registrations[0].contacts
        assert (contact.state, contact.event) == ("terminated", ContactEvent.UNREGISTERED)

    def test_subscribe_for_unregistered_user_is_480(self) -> None:
        core = Core()
        assert self.subscribe(core).status == 480

    def test_unsubscribe_sends_terminated_timeout(self) -> None:
        core = Core()
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert self.subscribe(core).status == 200
        assert self.subscribe(core, expires=0).status == 200  # a new dialog: RFC 6665 fetch
        last = self.notifies(core)[-1]
        assert last.headers.get("Subscription-State") == "terminated;reason=timeout"


def _with_route(request: Request, route: Optional[str] = None) -> Request:
    request.headers.add("Route", route or "<" + SCSCF_URI + ";lr;orig>")
    return request
