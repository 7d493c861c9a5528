"""Reg-event NOTIFYs with partial state (RFC 3680 §5.2, §6;
``ScscfConfig.reg_event_partial_state``), and without it (Clearwater's full state, version = the
AoR's notify_cseq), end to end in process (the Core of test_scscf). Every NOTIFY body is checked
against the reginfo + gruuinfo schemas when xmllint is installed."""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater.scscf.reginfo import ContactEvent, Reginfo, parse_reginfo
from clearwater.sip import Request, Response
from clearwater.sip.transaction import build_response
from clearwater.stores.records import AssociatedUri
from tests.unit.scscf.test_reginfo import XMLLINT, xmllint
from tests.unit.scscf.test_scscf import ALICE, HOME, SCSCF_URI, WATCHER, Core

ALICE_AOR = "sip:alice@example.com"
OTHER = "10.0.0.7"  # a second phone of Alice's (only its Contact: nothing listens there)


class _Notifies:
    """The NOTIFYs the S-CSCF sends, each answered 200 at once."""

    def __init__(self, core: Core) -> None:
        self.sent: list[Request] = []
        core.manager.send = self.send

    def send(self, request: Request) -> Deferred[Response]:
        assert request.method == "NOTIFY"
        if XMLLINT is not None:
            result = xmllint(request.body)
            assert result.returncode == 0, result.stderr.decode()
        self.sent.append(request)
        return succeed(build_response(request, 200, "OK"))

    def to(self, tag: str) -> list[Request]:
        return [r for r in self.sent if r.from_.tag == tag]

    def docs(self, tag: str) -> list[Reginfo]:
        return [parse_reginfo(r.body) for r in self.to(tag)]


def register(core: Core, host: str = ALICE, expires: Optional[int] = 300) -> Response:
    """Alice's REGISTER with only ``host``'s Contact (none: a fetch)."""
    aor = "<" + ALICE_AOR + ">"
    request = core.alice.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
    request.headers.remove("Contact")  # the UA's own
    if expires is not None:
        request.headers.add("Contact", "<sip:alice@" + host + ":5060>")
        request.headers.add("Expires", str(expires))
    return core.result(core.alice.send(request))


def subscribe(core: Core, expires: int = 600, dialog: Optional[Response] = None) -> Response:
    aor = "<" + ALICE_AOR + ">"
    request = core.alice.create_request("SUBSCRIBE", ALICE_AOR, from_=aor, to=aor)
    if dialog is not None:  # a refresh inside the dialog the 200 made
        request.headers.set("Call-ID", dialog.call_id)
        request.headers.set("From", str(dialog.from_))
        request.headers.set("To", str(dialog.to))
        request.headers.set("CSeq", str(dialog.cseq.seq + 1) + " SUBSCRIBE")
    request.headers.add("Event", "reg")
    request.headers.set("Contact", "<sip:alice@" + WATCHER + ":5060>")
    request.headers.add("Expires", str(expires))
    request.headers.add("Route", "<" + SCSCF_URI + ";lr>")
    return core.result(core.alice.send(request))


def summary(info: Reginfo) -> tuple[int, str, list[tuple[str, str, list[tuple[str, str, str]]]]]:
    """(version, state, [(aor, registration state, [(uri, contact state, event)])])."""
    return (
        info.version,
        info.state,
        [
            (r.aor, r.state, [(c.uri, c.state, c.event.value) for c in r.contacts])
            for r in info.registrations
        ],
    )


def both(
    state: str, *contacts: tuple[str, str, str]
) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """The same contacts under each of Alice's identities."""
    return [(impu, state, list(contacts)) for impu in (ALICE_AOR, "tel:+15550000")]


def contact(host: str, state: str, event: str) -> tuple[str, str, str]:
    return ("sip:alice@" + host + ":5060", state, event)


class PartialStateTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.core = Core(reg_event_partial_state=True)
        self.notifies = _Notifies(self.core)
        assert register(self.core).status == 200
        self.dialog = subscribe(self.core)
        assert self.dialog.status == 200
        self.tag = self.dialog.to.tag or ""

    def test_first_notify_is_full_with_version_0(self) -> None:
        [first] = self.notifies.docs(self.tag)
        assert summary(first) == (
            0,
            "full",
            both("active", contact(ALICE, "active", "registered")),
        )

    def test_later_notifies_carry_only_what_changed_counting_one_by_one(self) -> None:
        core = self.core
        assert register(core, OTHER).status == 200  # a new binding
        assert register(core, ALICE, 120).status == 200  # shortened
        assert register(core, OTHER, 0).status == 200  # removed
        docs = [summary(d) for d in self.notifies.docs(self.tag)]
        assert docs[1:] == [
            (1, "partial", both("active", contact(OTHER, "active", "created"))),
            (2, "partial", both("active", contact(ALICE, "active", "shortened"))),
            (3, "partial", both("active", contact(OTHER, "terminated", "unregistered"))),
        ]
        cseqs = [r.cseq.seq for r in self.notifies.to(self.tag)]
        assert cseqs == sorted(set(cseqs))  # RFC 3261 §12.2.1.1: CSeq grows in the dialog

    def test_a_refresh_gets_full_state_and_counts_on(self) -> None:
        core = self.core
        assert register(core, OTHER).status == 200
        assert subscribe(core, dialog=self.dialog).status == 200
        assert register(core, OTHER, 0).status == 200
        docs = self.notifies.docs(self.tag)
        assert [(d.version, d.state) for d in docs] == [
            (0, "full"),
            (1, "partial"),
            (2, "full"),
            (3, "partial"),
        ]
        assert summary(docs[2])[2] == both(
            "active", contact(ALICE, "active", "registered"), contact(OTHER, "active", "registered")
        )

    def test_each_subscription_counts_its_own_notifies(self) -> None:
        core = self.core
        assert register(core, OTHER).status == 200
        second = subscribe(core)
        second_tag = second.to.tag or ""
        assert second_tag and second_tag != self.tag
        assert register(core, OTHER, 0).status == 200
        assert [(d.version, d.state) for d in self.notifies.docs(self.tag)] == [
            (0, "full"),
            (1, "partial"),
            (2, "partial"),
        ]
        assert [(d.version, d.state) for d in self.notifies.docs(second_tag)] == [
            (0, "full"),
            (1, "partial"),
        ]
        aor, _ = core.result(core.registrations.get_aor(ALICE_AOR))
        assert aor is not None
        assert {t: s.version for t, s in aor.subscriptions} == {self.tag: 2, second_tag: 1}

    def test_nothing_changed_is_an_empty_partial_notify(self) -> None:
        core = self.core
        assert register(core, expires=None).status == 200  # no Contact: a fetch
        last = self.notifies.docs(self.tag)[-1]
        assert summary(last) == (1, "partial", [])

    def test_the_last_binding_going_ends_the_subscription_with_a_partial_notify(self) -> None:
        core = self.core
        assert register(core, ALICE, 0).status == 200
        [_, last] = self.notifies.to(self.tag)
        assert last.headers.get("Subscription-State") == "terminated;reason=deactivated"
        assert summary(parse_reginfo(last.body)) == (
            1,
            "partial",
            both("terminated", contact(ALICE, "terminated", "unregistered")),
        )

    def test_expiry_is_reported_in_part_to_the_subscriptions_that_end_with_it(self) -> None:
        core = self.core
        assert register(core, OTHER, 60).status == 200
        core.run(61)
        assert summary(self.notifies.docs(self.tag)[-1]) == (
            2,
            "partial",
            both("active", contact(OTHER, "terminated", "expired")),
        )
        core.run(300)  # the first binding too, and with it the subscription
        last = self.notifies.to(self.tag)[-1]
        assert last.headers.get("Subscription-State") == "terminated;reason=deactivated"
        assert summary(parse_reginfo(last.body)) == (
            3,
            "partial",
            both("terminated", contact(ALICE, "terminated", "expired")),
        )

    def test_unsubscribing_gets_full_state_one_version_on(self) -> None:
        assert subscribe(self.core, expires=0, dialog=self.dialog).status == 200
        [_, last] = self.notifies.to(self.tag)
        assert last.headers.get("Subscription-State") == "terminated;reason=timeout"
        assert (parse_reginfo(last.body).version, parse_reginfo(last.body).state) == (1, "full")
        aor, _ = self.core.result(self.core.registrations.get_aor(ALICE_AOR))
        assert aor is not None and aor.subscriptions == ()

    def test_a_fetch_subscription_gets_version_0(self) -> None:
        fetch = subscribe(self.core, expires=0)
        [only] = self.notifies.docs(fetch.to.tag or "")
        assert (only.version, only.state) == (0, "full")

    def test_a_change_of_the_identity_set_is_sent_in_full(self) -> None:
        core = self.core
        uris = (AssociatedUri(ALICE_AOR),)
        assert core.result(Deferred.fromCoroutine(
            core.manager.update_associated_uris(ALICE_AOR, uris))) is not None  # fmt: skip
        last = self.notifies.docs(self.tag)[-1]
        assert summary(last) == (
            1,
            "full",
            [(ALICE_AOR, "active", [contact(ALICE, "active", "registered")])],
        )

    def test_a_subscription_stored_without_a_count_gets_full_state_above_any_old_version(
        self,
    ) -> None:
        core = self.core
        stored, cas = core.result(core.registrations.get_aor(ALICE_AOR))
        assert stored is not None
        legacy = attrs.evolve(
            stored,
            subscriptions=tuple(
                (t, attrs.evolve(s, version=None)) for t, s in stored.subscriptions
            ),
        )
        core.result(core.registrations.set_aor(ALICE_AOR, legacy, cas, core.reactor.seconds()))
        assert register(core, OTHER).status == 200
        assert register(core, OTHER, 0).status == 200
        docs = self.notifies.docs(self.tag)
        assert [(d.version, d.state) for d in docs[1:]] == [
            (stored.notify_cseq + 1, "full"),
            (stored.notify_cseq + 2, "partial"),
        ]


class FullStateTests(SynchronousTestCase):
    """The default: Clearwater's NOTIFYs."""

    def test_every_notify_is_full_with_the_aor_notify_cseq_as_version(self) -> None:
        core = Core()
        notifies = _Notifies(core)
        assert register(core).status == 200
        tag = subscribe(core).to.tag or ""
        assert register(core, OTHER).status == 200
        assert register(core, OTHER, 0).status == 200
        requests = notifies.to(tag)
        docs = [parse_reginfo(r.body) for r in requests]
        assert [d.state for d in docs] == ["full"] * 3
        assert [d.version for d in docs] == [r.cseq.seq for r in requests]
        assert summary(docs[1])[2] == both(
            "active", contact(ALICE, "active", "registered"), contact(OTHER, "active", "created")
        )
        assert docs[2].registrations[0].contacts[-1].event is ContactEvent.UNREGISTERED
        aor, _ = core.result(core.registrations.get_aor(ALICE_AOR))
        assert aor is not None
        assert [s.version for _, s in aor.subscriptions] == [None]
        assert all("reginfo_version" not in s.to_json() for _, s in aor.subscriptions)

    def test_counts_left_from_partial_state_are_dropped(self) -> None:
        core = Core()
        notifies = _Notifies(core)
        assert register(core).status == 200
        tag = subscribe(core).to.tag or ""
        stored, cas = core.result(core.registrations.get_aor(ALICE_AOR))
        assert stored is not None
        counted = attrs.evolve(
            stored,
            subscriptions=tuple((t, attrs.evolve(s, version=5)) for t, s in stored.subscriptions),
        )
        core.result(core.registrations.set_aor(ALICE_AOR, counted, cas, core.reactor.seconds()))
        assert register(core, OTHER).status == 200
        last = notifies.to(tag)[-1]
        assert parse_reginfo(last.body).version == last.cseq.seq
        aor, _ = core.result(core.registrations.get_aor(ALICE_AOR))
        assert aor is not None and [s.version for _, s in aor.subscriptions] == [None]

    def test_the_pub_gruu_is_the_one_the_200_ok_gave(self) -> None:
        core = Core()
        notifies = _Notifies(core)
        assert register(core).status == 200
        tag = subscribe(core).to.tag or ""
        aor = "<" + ALICE_AOR + ">"
        request = core.alice.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
        request.headers.set(
            "Contact", "<sip:alice@" + OTHER + ':5060>;+sip.instance="<urn:x:a b;c>"'
        )
        request.headers.add("Supported", "gruu")
        request.headers.add("Expires", "300")
        ok = core.result(core.alice.send(request))
        assert ok.status == 200
        assert b';pub-gruu="sip:alice@example.com;gr=urn:x:a%20b%3Bc"' in ok.to_bytes()
        contacts = notifies.docs(tag)[-1].registrations[0].contacts
        assert [c.pub_gruu for c in contacts] == [
            None,
            "sip:alice@example.com;gr=urn:x:a%20b%3Bc",
        ]
