"""Ralf's Rf session logic (spec §6.4, §7.2): :mod:`clearwater.ralf.session`.

Most tests drive :class:`RalfSessionManager` over a fake Diameter node that answers each ACR at
once as the test scripts it per CCF, the memory session store and the memory timer service on
one ``Clock``; assertions are on the ACRs as they would go on the wire (encoded, parsed back),
on the stored session JSON and on the timers set. The last class runs the manager over a real
:class:`~clearwater.diameter.node.DiameterNode` and two scripted CDFs in memory
(:mod:`clearwater.testing.diameter`).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional, Union, cast

import attrs
import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater.diameter.apps import rf
from clearwater.diameter.apps.rf import RF, SERVICE_CONTEXT_ID, AccountingRecordType, AcrRequest
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    RequestHandler,
)
from clearwater.diameter.message import Message, parse_message
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.ralf.session import (
    TABLE,
    TIMER_KIND,
    BillingRequest,
    BillingRequestError,
    CcfConnector,
    Outcome,
    OverloadedError,
    RalfSessionManager,
    Session,
    parse_billing_request,
    session_key,
)
from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    ITimerService,
    StoreUnavailableError,
    TimerHandler,
)
from clearwater.stores.memory import MemoryCasStore, MemoryTimerService
from clearwater.testing.cdf import AcrRecord, ScriptedCdf
from clearwater.testing.diameter import DiameterNetwork

CALL_ID = "0gQAAC8WAAACBAAALxYAAAL8P3UbW8l4mT8YBkKGRKc5SOHaJ1gMRqs@10.0.0.1"
RALF = "ralf.example.com"
REALM = "example.com"
BILLING_REALM = "billing.example.com"
CDF1 = "cdf1.example.com"
CDF2 = "cdf2.example.com"

# What the fake node answers a CCF: a Result-Code, an exception to fail with, or None to
# leave the request pending.
Behaviour = Union[int, Exception, None]


def make_event(
    record_type: int,
    *,
    refresh: Optional[int] = None,
    role: int = 0,
    function: int = 0,
) -> dict[str, Any]:
    """An event as sprout's S-CSCF sends it (ralf docs/API.md's example, trimmed)."""
    event: dict[str, Any] = {"Accounting-Record-Type": record_type}
    if refresh is not None:
        event["Acct-Interim-Interval"] = refresh
    event["Event-Timestamp"] = 1444118158
    event["Service-Information"] = {
        "IMS-Information": {
            "Event-Type": {"SIP-Method": "INVITE"},
            "Role-Of-Node": role,
            "Node-Functionality": function,
            "User-Session-Id": CALL_ID,
            "Calling-Party-Address": ["sip:6515550098@example.com"],
            "Called-Party-Address": "sip:6515550026@example.com",
            "Time-Stamps": {"SIP-Request-Timestamp": 1444118158},
            "IMS-Charging-Identifier": "084972d9749c214876eb0ba4700ab1fa",
        }
    }
    return event


def make_request(
    record_type: AccountingRecordType,
    *,
    refresh: Optional[int] = None,
    ccfs: tuple[str, ...] = (CDF1, CDF2),
    role: int = 0,
    function: int = 0,
    timer_interim: bool = False,
    call_id: str = CALL_ID,
) -> BillingRequest:
    body = {
        "peers": {"ccf": list(ccfs), "ecf": ["ecf.example.com"]},
        "event": make_event(int(record_type), refresh=refresh, role=role, function=function),
    }
    return parse_billing_request(call_id, body, timer_interim=timer_interim)


@implementer(IDiameterNode)
class FakeNode:
    """Answers each ACR at once as ``behaviour`` says for its Destination-Host (2001 by
    default), with ``interim[host]`` as Acct-Interim-Interval; records what it was sent."""

    identity = RALF
    realm = REALM

    def __init__(self) -> None:
        self.behaviour: dict[str, Behaviour] = {}
        self.interim: dict[str, Optional[int]] = {}
        self.sent: list[Message] = []
        self.timeouts: list[Optional[float]] = []
        self.pending: list[tuple[Message, Deferred[Message]]] = []
        self._sessions = 0

    def new_session_id(self, suffix: str = "") -> str:
        self._sessions += 1
        return f"{RALF};1700000000;{self._sessions}"

    def request(self, message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
        # What goes on the wire, read back: the assertions are on real bytes.
        message = parse_message(bytes(message))
        self.sent.append(message)
        self.timeouts.append(timeout)
        host = RF.get(message, "Destination-Host")
        behaviour = self.behaviour.get(host, 2001)
        if isinstance(behaviour, Exception):
            return defer.fail(behaviour)
        if behaviour is None:
            d: Deferred[Message] = Deferred()
            self.pending.append((message, d))
            return d
        return defer.succeed(
            rf.aca(
                message,
                origin_host=host,
                origin_realm=BILLING_REALM,
                result_code=behaviour,
                acct_interim_interval=self.interim.get(host),
            )
        )

    def set_handler(self, application_id: int, handler: RequestHandler) -> None:
        raise AssertionError("ralf answers no requests")

    def acrs(self) -> list[AcrRequest]:
        return [rf.parse_acr(message) for message in self.sent]


@implementer(ITimerService)
class RecordingTimers:
    """The memory timer service, recording each call; ``fail_set`` makes set_timer fail."""

    def __init__(self, clock: Clock) -> None:
        self.inner = MemoryTimerService(clock)
        self.set_calls: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.fail_set = False

    def listen(self, kind: str, handler: TimerHandler) -> None:
        self.inner.listen(kind, handler)

    def set_timer(
        self,
        kind: str,
        interval: float,
        opaque: dict[str, Any],
        timer_id: Optional[str] = None,
        repeat_for: Optional[float] = None,
    ) -> Deferred[str]:
        self.set_calls.append(
            {
                "kind": kind,
                "interval": interval,
                "repeat_for": repeat_for,
                "timer_id": timer_id,
                "opaque": copy.deepcopy(opaque),
            }
        )
        if self.fail_set:
            return defer.fail(StoreUnavailableError("timer store down"))
        return self.inner.set_timer(kind, interval, opaque, timer_id, repeat_for)

    def delete_timer(self, timer_id: str) -> Deferred[None]:
        self.deleted.append(timer_id)
        return self.inner.delete_timer(timer_id)

    def close(self) -> Deferred[None]:
        return self.inner.close()


@implementer(ICasStore)
class ContendedStore:
    """A memory store whose next ``conflicts`` writes fail with DataContentionError (after
    another writer's change, which is applied: the record's CAS moves on)."""

    def __init__(self, clock: Clock, conflicts: int) -> None:
        self.inner = MemoryCasStore(clock)
        self.conflicts = conflicts

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        return self.inner.get_data(table, key)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        if self.conflicts:
            self.conflicts -= 1
            return defer.fail(DataContentionError("someone else wrote"))
        return self.inner.set_data(table, key, data, cas, ttl)

    def delete_data(self, table: str, key: str) -> Deferred[None]:
        return self.inner.delete_data(table, key)

    def close(self) -> Deferred[None]:
        return self.inner.close()


class _Case(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.node = FakeNode()
        self.store: ICasStore = MemoryCasStore(self.clock)
        self.timers = RecordingTimers(self.clock)
        self.manager = self.make_manager()

    def make_manager(self, **kwargs: Any) -> RalfSessionManager:
        manager = RalfSessionManager(
            self.node,
            self.store,
            self.timers,
            origin_host=RALF,
            origin_realm=REALM,
            billing_realm=BILLING_REALM,
            request_timeout=0.2,
            **kwargs,
        )
        manager.start()
        return manager

    def handle(self, request: BillingRequest) -> Outcome:
        outcome: Outcome = self.successResultOf(self.manager.handle(request))
        return outcome

    def session(self, role: int = 0, function: int = 0) -> Optional[Session]:
        data, _ = self.successResultOf(
            self.store.get_data(TABLE, session_key(CALL_ID, role, function))
        )
        return Session.from_json(data) if data else None  # b"": a STOP's tombstone

    def stored_json(self) -> Any:
        data, _ = self.successResultOf(self.store.get_data(TABLE, session_key(CALL_ID, 0, 0)))
        assert data is not None
        return json.loads(data)

    def summary(self) -> list[tuple[str, int, Optional[str]]]:
        """(record type, record number, Destination-Host) of every ACR sent."""
        return [(a.record_type.name, a.record_number, a.destination_host) for a in self.node.acrs()]


class EventTests(_Case):
    def test_event_is_one_acr_and_no_session(self) -> None:
        assert self.handle(make_request(AccountingRecordType.EVENT)) is Outcome.SUCCESS
        [message] = self.node.sent
        assert message.command_code == 271 and message.application_id == 3
        assert message.is_request
        assert RF.get(message, "Session-Id") == RALF + ";1700000000;1"
        assert RF.get(message, "Origin-Host") == RALF
        assert RF.get(message, "Origin-Realm") == REALM
        assert RF.get(message, "Destination-Host") == CDF1
        assert RF.get(message, "Destination-Realm") == BILLING_REALM
        assert RF.get(message, "Acct-Application-Id") == 3
        assert RF.get(message, "Accounting-Record-Type") == 1
        assert RF.get(message, "Accounting-Record-Number") == 1
        assert RF.get(message, "Service-Context-Id") == SERVICE_CONTEXT_ID
        # Every event member is carried, in JSON shape once read back.
        acr = rf.parse_acr(message)
        expected = make_event(1)
        assert acr.event == expected
        assert self.node.timeouts == [0.2]
        assert self.session() is None
        assert self.timers.set_calls == []
        assert self.manager.requests["event"] == 1
        assert self.manager.outcomes[Outcome.SUCCESS] == 1
        assert self.manager.in_flight == 0

    def test_each_event_has_its_own_session_id(self) -> None:
        self.handle(make_request(AccountingRecordType.EVENT))
        self.handle(make_request(AccountingRecordType.EVENT))
        assert [a.session_id for a in self.node.acrs()] == [
            RALF + ";1700000000;1",
            RALF + ";1700000000;2",
        ]
        assert [a.record_number for a in self.node.acrs()] == [1, 1]

    def test_start_or_event_without_peers_is_dropped(self) -> None:
        for kind in (AccountingRecordType.START, AccountingRecordType.EVENT):
            body = {"event": make_event(int(kind))}
            request = parse_billing_request(CALL_ID, body)
            assert request.ccfs == ()
            assert self.handle(request) is Outcome.NO_PEERS
        assert self.node.sent == []
        assert self.manager.outcomes[Outcome.NO_PEERS] == 2


class SessionTests(_Case):
    def test_start_interim_stop_record_numbers_and_session_record(self) -> None:
        assert self.handle(make_request(AccountingRecordType.START, refresh=600)) is (
            Outcome.SUCCESS
        )
        assert self.stored_json() == {
            "session_id": RALF + ";1700000000;1",
            "ccfs": [CDF1, CDF2],
            "ecfs": ["ecf.example.com"],
            "acct_record_num": 1,
            "timer_id": None,
            "refresh_time": 600,
            "interim_interval": 600,  # no interval in the ACA: the refresh time
            "ccf": CDF1,
        }
        assert self.handle(make_request(AccountingRecordType.INTERIM, refresh=600)) is (
            Outcome.SUCCESS
        )
        session = self.session()
        assert session is not None and session.record_number == 2
        assert self.handle(make_request(AccountingRecordType.STOP)) is Outcome.SUCCESS
        assert self.session() is None
        acrs = self.node.acrs()
        assert [(a.record_type.name, a.record_number) for a in acrs] == [
            ("START", 1),
            ("INTERIM", 2),
            ("STOP", 3),
        ]
        assert {a.session_id for a in acrs} == {RALF + ";1700000000;1"}
        assert {a.destination_host for a in acrs} == {CDF1}
        # INTERIM and STOP carry their own events, not the START's.
        assert acrs[2].event == make_event(4)
        # refresh == interim interval: no timer (Clearwater sets one only when shorter)
        assert self.timers.set_calls == []
        assert self.timers.deleted == []

    def test_session_lives_twice_the_refresh_time(self) -> None:
        self.handle(make_request(AccountingRecordType.START, refresh=100))
        self.clock.advance(199)
        assert self.session() is not None
        self.clock.advance(2)
        assert self.session() is None
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.NO_SESSION

    def test_session_without_refresh_time_lives_a_day(self) -> None:
        self.handle(make_request(AccountingRecordType.START))
        self.clock.advance(86399)
        session = self.session()
        assert session is not None and session.refresh_time == 0
        self.clock.advance(2)
        assert self.session() is None

    def test_interim_refresh_time_is_stored_and_sets_the_ttl(self) -> None:
        self.node.interim[CDF1] = 5000  # longer than any refresh time here: no timer
        self.handle(make_request(AccountingRecordType.START, refresh=100))
        self.clock.advance(150)
        self.handle(make_request(AccountingRecordType.INTERIM, refresh=1000))
        session = self.session()
        assert session is not None and session.refresh_time == 1000
        self.clock.advance(1999)
        assert self.session() is not None
        # An INTERIM without a refresh time keeps the stored one.
        self.handle(make_request(AccountingRecordType.INTERIM))
        session = self.session()
        assert session is not None and session.refresh_time == 1000
        assert session.record_number == 3
        assert self.timers.set_calls == []

    def test_interim_or_stop_for_unknown_session_is_dropped(self) -> None:
        for kind in (AccountingRecordType.INTERIM, AccountingRecordType.STOP):
            assert self.handle(make_request(kind)) is Outcome.NO_SESSION
        assert self.node.sent == []
        assert self.manager.outcomes[Outcome.NO_SESSION] == 2

    def test_unreadable_session_record_counts_as_none(self) -> None:
        key = session_key(CALL_ID, 0, 0)
        self.successResultOf(self.store.set_data(TABLE, key, b"{not json", 0, 60))
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.NO_SESSION
        assert self.node.sent == []

    def test_sessions_are_per_role_and_node_functionality(self) -> None:
        self.handle(make_request(AccountingRecordType.START, role=0, function=0))
        self.handle(make_request(AccountingRecordType.START, role=1, function=0))
        self.handle(make_request(AccountingRecordType.START, role=0, function=2))
        self.handle(make_request(AccountingRecordType.INTERIM, role=1, function=0))
        ids = [a.session_id for a in self.node.acrs()]
        assert len(set(ids[:3])) == 3
        assert ids[3] == ids[1]
        first, terminating = self.session(0, 0), self.session(1, 0)
        assert first is not None and first.record_number == 1
        assert terminating is not None and terminating.record_number == 2
        assert session_key(CALL_ID, 1, 0) == CALL_ID + ";1;0"

    def test_rejected_start_stores_nothing(self) -> None:
        self.node.behaviour[CDF1] = 5012  # DIAMETER_UNABLE_TO_COMPLY
        assert self.handle(make_request(AccountingRecordType.START, refresh=600)) is (
            Outcome.REJECTED
        )
        assert self.session() is None
        assert self.timers.set_calls == []

    def test_repeated_start_replaces_the_session_and_its_timer(self) -> None:
        self.node.interim[CDF1] = 100
        self.handle(make_request(AccountingRecordType.START, refresh=600))
        first = self.session()
        assert first is not None and first.timer_id is not None
        self.handle(make_request(AccountingRecordType.START, refresh=600))
        second = self.session()
        assert second is not None and second.record_number == 1
        assert second.session_id != first.session_id
        assert self.timers.deleted == [first.timer_id]
        assert second.timer_id != first.timer_id
        assert len(self.timers.inner) == 1

    def test_write_conflicts_are_retried(self) -> None:
        self.store = ContendedStore(self.clock, conflicts=0)
        self.manager = self.make_manager()
        self.handle(make_request(AccountingRecordType.START))
        assert isinstance(self.store, ContendedStore)
        self.store.conflicts = 2
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.SUCCESS
        assert self.summary()[-1] == ("INTERIM", 2, CDF1)
        session = self.session()
        assert session is not None and session.record_number == 2

    def test_endless_write_conflicts_fail_the_request(self) -> None:
        self.store = ContendedStore(self.clock, conflicts=0)
        self.manager = self.make_manager()
        self.handle(make_request(AccountingRecordType.START))
        assert isinstance(self.store, ContendedStore)
        self.store.conflicts = 100
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.FAILED
        assert len(self.node.sent) == 1

    def test_store_failure_is_an_outcome_not_an_error(self) -> None:
        store = MemoryCasStore(self.clock)
        self.successResultOf(store.close())
        self.store = store
        self.manager = self.make_manager()
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.FAILED
        assert self.manager.in_flight == 0


class TimerTests(_Case):
    def test_start_sets_the_interim_timer_and_pops_send_interims(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        [call] = self.timers.set_calls
        assert call == {
            "kind": TIMER_KIND,
            "interval": 300,
            "repeat_for": 1000,
            "timer_id": None,
            "opaque": {
                "call_id": CALL_ID,
                "event": {
                    "Service-Information": {
                        "IMS-Information": {"Role-Of-Node": 0, "Node-Functionality": 0}
                    },
                    "Accounting-Record-Type": 3,
                },
            },
        }
        session = self.session()
        assert session is not None and session.interim_interval == 300
        assert session.timer_id is not None
        self.clock.advance(299)
        assert len(self.node.sent) == 1
        self.clock.advance(1)
        assert self.summary() == [("START", 1, CDF1), ("INTERIM", 2, CDF1)]
        timer_interim = self.node.acrs()[1]
        assert timer_interim.event == {
            "Accounting-Record-Type": 3,
            "Service-Information": {
                "IMS-Information": {"Role-Of-Node": 0, "Node-Functionality": 0}
            },
        }
        assert timer_interim.session_id == session.session_id
        self.clock.advance(600)
        # repeat-for 1000 with interval 300: pops at 300, 600 and 900 only.
        assert [n for _, n, _ in self.summary()] == [1, 2, 3, 4]
        self.clock.advance(3000)
        assert len(self.node.sent) == 4
        # Timer pops do not set the timer again.
        assert len(self.timers.set_calls) == 1
        assert self.manager.interim_pops == 3

    def test_interim_from_sprout_restarts_the_timer(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        session = self.session()
        assert session is not None
        self.clock.advance(250)
        self.handle(make_request(AccountingRecordType.INTERIM, refresh=1000))
        assert len(self.timers.set_calls) == 2
        again = self.timers.set_calls[1]
        assert (again["interval"], again["repeat_for"], again["timer_id"]) == (
            300,
            1000,
            session.timer_id,
        )
        # Restarted from now (250): the next pop is at 550, not 300.
        self.clock.advance(299)
        assert len(self.node.sent) == 2
        self.clock.advance(1)
        assert self.summary()[-1] == ("INTERIM", 3, CDF1)

    def test_interim_from_a_timer_pop_over_http_does_not_restart_the_timer(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        body = {"event": self.timers.set_calls[0]["opaque"]["event"]}
        pop = parse_billing_request(CALL_ID, body, timer_interim=True)
        assert self.handle(pop) is Outcome.SUCCESS
        assert len(self.timers.set_calls) == 1
        assert self.summary()[-1] == ("INTERIM", 2, CDF1)

    def test_stop_deletes_the_timer(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        session = self.session()
        assert session is not None
        self.handle(make_request(AccountingRecordType.STOP))
        assert self.timers.deleted == [session.timer_id]
        assert len(self.timers.inner) == 0
        self.clock.advance(5000)
        assert self.summary() == [("START", 1, CDF1), ("STOP", 2, CDF1)]

    def test_no_timer_when_the_interim_interval_is_not_shorter(self) -> None:
        self.node.interim[CDF1] = 600
        self.handle(make_request(AccountingRecordType.START, refresh=600))
        self.handle(make_request(AccountingRecordType.INTERIM, refresh=600))
        assert self.timers.set_calls == []
        session = self.session()
        assert session is not None and session.timer_id is None

    def test_unknown_session_answer_deletes_the_session(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        session = self.session()
        assert session is not None
        self.node.behaviour[CDF1] = 5002  # DIAMETER_UNKNOWN_SESSION_ID
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.REJECTED
        assert self.session() is None
        assert self.timers.deleted == [session.timer_id]
        assert len(self.timers.set_calls) == 1

    def test_failed_interim_from_sprout_still_restarts_the_timer(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        session = self.session()
        assert session is not None
        self.node.behaviour[CDF1] = 5012
        self.node.interim[CDF1] = None  # an error answer without the interval: the stored one
        assert self.handle(make_request(AccountingRecordType.INTERIM)) is Outcome.REJECTED
        again = self.timers.set_calls[1]
        assert (again["interval"], again["repeat_for"], again["timer_id"]) == (
            300,
            1000,
            session.timer_id,
        )

    def test_timer_that_could_not_be_set_is_set_by_the_next_interim(self) -> None:
        self.node.interim[CDF1] = 300
        self.timers.fail_set = True
        assert self.handle(make_request(AccountingRecordType.START, refresh=1000)) is (
            Outcome.SUCCESS
        )
        session = self.session()
        assert session is not None and session.timer_id is None
        assert self.manager.timers["failed"] == 1
        self.timers.fail_set = False
        self.handle(make_request(AccountingRecordType.INTERIM, refresh=1000))
        assert self.timers.set_calls[1]["timer_id"] is None
        session = self.session()
        assert session is not None and session.timer_id is not None
        assert len(self.timers.inner) == 1

    def test_bad_timer_opaque_is_dropped(self) -> None:
        timer_d = self.timers.set_timer(TIMER_KIND, 10, {"call_id": 7})
        self.successResultOf(timer_d)
        self.clock.advance(10)
        assert self.node.sent == []
        assert len(self.timers.inner) == 0  # handled (not redelivered)


class FailoverTests(_Case):
    def test_fails_over_on_unable_to_deliver_and_later_acrs_start_there(self) -> None:
        self.node.behaviour[CDF1] = 3002
        assert self.handle(make_request(AccountingRecordType.START, refresh=600)) is (
            Outcome.SUCCESS
        )
        assert self.summary() == [("START", 1, CDF1), ("START", 1, CDF2)]
        first, second = self.node.acrs()
        assert first.session_id == second.session_id  # the same ACR, another CCF
        session = self.session()
        assert session is not None and session.ccf == CDF2
        assert session.ccfs == (CDF1, CDF2)
        # CDF1 works again; INTERIM and STOP still start with the CCF that last answered.
        del self.node.behaviour[CDF1]
        self.handle(make_request(AccountingRecordType.INTERIM))
        self.handle(make_request(AccountingRecordType.STOP))
        assert self.summary()[2:] == [("INTERIM", 2, CDF2), ("STOP", 3, CDF2)]
        assert self.manager.failovers == 1

    def test_interim_fails_back_to_the_first_ccf(self) -> None:
        self.node.behaviour[CDF1] = 3002
        self.handle(make_request(AccountingRecordType.START))
        del self.node.behaviour[CDF1]
        self.node.behaviour[CDF2] = NoPeerError("no peer")
        self.handle(make_request(AccountingRecordType.INTERIM))
        assert self.summary()[2:] == [("INTERIM", 2, CDF2), ("INTERIM", 2, CDF1)]
        session = self.session()
        assert session is not None and session.ccf == CDF1

    def test_fails_over_when_no_peer_can_take_it(self) -> None:
        self.node.behaviour[CDF1] = NoPeerError("Peer cdf1 not usable")
        assert self.handle(make_request(AccountingRecordType.EVENT)) is Outcome.SUCCESS
        assert [a.destination_host for a in self.node.acrs()] == [CDF1, CDF2]

    def test_fails_over_on_timeout(self) -> None:
        self.node.behaviour[CDF1] = DiameterTimeoutError("no answer")
        assert self.handle(make_request(AccountingRecordType.EVENT)) is Outcome.SUCCESS
        assert [a.destination_host for a in self.node.acrs()] == [CDF1, CDF2]

    def test_no_failover_on_other_result_codes(self) -> None:
        for code in (3004, 4010, 5004, 5012):
            self.node.sent.clear()
            self.node.behaviour[CDF1] = code
            assert self.handle(make_request(AccountingRecordType.EVENT)) is Outcome.REJECTED
            assert [a.destination_host for a in self.node.acrs()] == [CDF1]
        assert self.manager.failovers == 0

    def test_no_ccf_left(self) -> None:
        self.node.behaviour[CDF1] = 3002
        self.node.behaviour[CDF2] = NoPeerError("no peer")
        assert self.handle(make_request(AccountingRecordType.START)) is Outcome.UNDELIVERED
        assert self.session() is None
        assert self.manager.failovers == 1

    def test_three_ccfs_in_order(self) -> None:
        third = "cdf3.example.com"
        self.node.behaviour[CDF1] = 3002
        self.node.behaviour[CDF2] = 3002
        request = make_request(AccountingRecordType.EVENT, ccfs=(CDF1, CDF2, third))
        assert self.handle(request) is Outcome.SUCCESS
        assert [a.destination_host for a in self.node.acrs()] == [CDF1, CDF2, third]
        assert self.manager.failovers == 2

    def test_answer_that_is_not_an_aca_fails_without_failover(self) -> None:
        def request(message: Message, timeout: Optional[float] = None) -> Deferred[Message]:
            self.node.sent.append(message)
            return defer.succeed(Message(272, 4, (RF.avp("Result-Code", 2001),), flags=0))

        self.node.request = request  # type: ignore[method-assign]
        assert self.handle(make_request(AccountingRecordType.EVENT)) is Outcome.FAILED
        assert len(self.node.sent) == 1


class OverloadTests(_Case):
    def test_submit_refuses_beyond_max_in_flight(self) -> None:
        self.manager = self.make_manager(max_in_flight=1)
        self.node.behaviour[CDF1] = None  # pending
        assert self.manager.submit(make_request(AccountingRecordType.EVENT))
        assert self.manager.in_flight == 1
        assert not self.manager.submit(make_request(AccountingRecordType.EVENT))
        assert len(self.node.sent) == 1
        [(message, d)] = self.node.pending
        d.callback(rf.aca(message, origin_host=CDF1, origin_realm=REALM, result_code=2001))
        assert self.manager.in_flight == 0
        assert self.manager.submit(make_request(AccountingRecordType.EVENT))

    def test_timer_pop_refused_when_overloaded_is_delivered_again(self) -> None:
        self.node.interim[CDF1] = 300
        self.handle(make_request(AccountingRecordType.START, refresh=1000))
        self.manager = self.make_manager(max_in_flight=1)  # listens instead
        self.node.behaviour[CDF2] = None
        self.manager.submit(make_request(AccountingRecordType.EVENT, ccfs=(CDF2,)))
        self.clock.advance(300)
        assert self.summary()[-1] == ("EVENT", 1, CDF2)  # the pop was refused
        # ... and the timer service logged the refusal.
        assert len(self.flushLoggedErrors(OverloadedError)) == 1  # type: ignore[no-untyped-call]
        [(message, d)] = self.node.pending
        d.callback(rf.aca(message, origin_host=CDF2, origin_realm=REALM, result_code=2001))
        self.clock.advance(10)  # the memory timer service's redelivery delay
        assert self.summary()[-1] == ("INTERIM", 2, CDF1)

    def test_overloaded_error(self) -> None:
        manager = self.make_manager(max_in_flight=0)
        result = manager._interim_popped("t", self.timers_opaque())
        assert result is not None
        self.failureResultOf(result, OverloadedError)  # type: ignore[no-untyped-call]

    @staticmethod
    def timers_opaque() -> dict[str, Any]:
        return {
            "call_id": CALL_ID,
            "event": {
                "Accounting-Record-Type": 3,
                "Service-Information": {
                    "IMS-Information": {"Role-Of-Node": 0, "Node-Functionality": 0}
                },
            },
        }


# --------------------------------------------------------------------------- parsing


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"peers": {"ccf": [CDF1]}, "event": make_event(2, refresh=600)}
    body.update(changes)
    return body


def test_parse_billing_request() -> None:
    request = parse_billing_request(CALL_ID, _body())
    assert request == BillingRequest(
        call_id=CALL_ID,
        record_type=AccountingRecordType.START,
        role=0,
        function=0,
        event=make_event(2, refresh=600),
        refresh_time=600,
        ccfs=(CDF1,),
        ecfs=(),
        timer_interim=False,
    )
    interim = parse_billing_request(
        CALL_ID, {"event": make_event(3, role=1, function=6)}, timer_interim=True
    )
    assert (interim.record_type, interim.role, interim.function) == (
        AccountingRecordType.INTERIM,
        1,
        6,
    )
    assert interim.timer_interim and interim.refresh_time == 0 and interim.ccfs == ()
    # peers are only read for START and EVENT
    stop = parse_billing_request(CALL_ID, {"peers": {"ccf": 7}, "event": make_event(4)})
    assert stop.ccfs == ()


def _ims(event: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = event["Service-Information"]["IMS-Information"]
    return info


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body: not a JSON object"),
        ({}, "event: missing or not an object"),
        ({"event": []}, "event: missing or not an object"),
        (
            {"event": {"Accounting-Record-Type": 2}},
            "event.Service-Information.IMS-Information: missing or not an object",
        ),
        (
            {"event": {"Accounting-Record-Type": 2, "Service-Information": {}}},
            "event.Service-Information.IMS-Information: missing or not an object",
        ),
    ],
)
def test_bad_bodies(body: Any, message: str) -> None:
    with pytest.raises(BillingRequestError) as info:
        parse_billing_request(CALL_ID, body)
    assert str(info.value) == message


def test_bad_members_are_named() -> None:
    cases: list[tuple[dict[str, Any], str]] = []
    event = make_event(2)
    del _ims(event)["Role-Of-Node"]
    cases.append(
        (_body(event=event), "event.Service-Information.IMS-Information.Role-Of-Node: missing")
    )
    event = make_event(2)
    _ims(event)["Role-Of-Node"] = "0"
    cases.append((_body(event=event), "Role-Of-Node: missing or not an integer"))
    event = make_event(2)
    _ims(event)["Node-Functionality"] = True
    cases.append((_body(event=event), "Node-Functionality: missing or not an integer"))
    event = make_event(2)
    del event["Accounting-Record-Type"]
    cases.append((_body(event=event), "event.Accounting-Record-Type: missing or not an integer"))
    cases.append(
        (
            _body(event=make_event(5)),
            "event.Accounting-Record-Type: 5 is not 1 (EVENT), 2 (START), 3 (INTERIM) or 4 (STOP)",
        )
    )
    cases.append((_body(event=make_event(0)), "0 is not 1 (EVENT)"))
    cases.append((_body(peers={"ccf": []}), "peers.ccf: missing, empty or not an array"))
    cases.append((_body(peers={}), "peers.ccf: missing, empty or not an array"))
    cases.append((_body(peers={"ccf": "cdf1"}), "peers.ccf: missing, empty or not an array"))
    cases.append((_body(peers={"ccf": [CDF1, 7]}), "peers.ccf[1]: not a non-empty string"))
    cases.append((_body(peers={"ccf": [CDF1], "ecf": "x"}), "peers.ecf: missing, empty"))
    event = make_event(2)
    event["Session-Id"] = "mine"
    cases.append((_body(event=event), "event.Session-Id: set by ralf"))
    event = make_event(2)
    event["Destination-Host"] = CDF2
    cases.append((_body(event=event), "event.Destination-Host: set by ralf"))
    event = make_event(2)
    _ims(event)["No-Such-Avp"] = 1
    cases.append(
        (
            _body(event=event),
            "event.Service-Information.IMS-Information.No-Such-Avp: not an Rf AVP",
        )
    )
    event = make_event(2)
    event["Acct-Interim-Interval"] = -1
    cases.append((_body(event=event), "event.Acct-Interim-Interval: -1 is out of range"))
    event = make_event(2)
    event["Event-Timestamp"] = [1, 2]
    cases.append((_body(event=event), "event.Event-Timestamp: occurs more than once"))
    for body, message in cases:
        with pytest.raises(BillingRequestError) as info:
            parse_billing_request(CALL_ID, body)
        assert message in str(info.value), (body, str(info.value))


def test_session_json_round_trip_and_errors() -> None:
    session = Session("s;1;2", (CDF1, CDF2), 3, 600, 300, "t1", ("e",), CDF2)
    assert Session.from_json(session.to_json()) == session
    assert json.loads(session.to_json())["acct_record_num"] == 3
    bare = {
        "session_id": "s",
        "ccfs": [CDF1],
        "acct_record_num": 1,
        "timer_id": None,
        "refresh_time": 0,
        "interim_interval": 0,
    }
    assert Session.from_json(json.dumps(bare).encode()) == Session("s", (CDF1,), 1, 0, 0)
    for bad in (
        b"[]",
        b"\xff",
        json.dumps({**bare, "session_id": ""}).encode(),
        json.dumps({**bare, "ccfs": [1]}).encode(),
        json.dumps({**bare, "acct_record_num": -1}).encode(),
        json.dumps({**bare, "refresh_time": "600"}).encode(),
        json.dumps({**bare, "timer_id": 5}).encode(),
    ):
        with pytest.raises(ValueError):
            Session.from_json(bad)


# --------------------------------------------------------------------------- CCF connector


class FakePeers:
    """What CcfConnector needs of a node: peers added, waits answered by the test."""

    def __init__(self) -> None:
        self.added: list[PeerConfig] = []
        self.usable: list[str] = []
        self.waits: list[tuple[str, float, Deferred[None]]] = []

    def add_peer(self, config: PeerConfig) -> None:
        self.added.append(config)

    def wait_usable(self, host: str, timeout: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waits.append((host, timeout, d))
        return d

    def usable_peers(self) -> list[str]:
        return list(self.usable)


class ConnectorTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.peers = FakePeers()
        self.connector = CcfConnector(
            self.peers,
            self.clock,
            peers={"CDF1.example.com": ("127.0.0.1", 3870)},
            connect_timeout=2.0,
            blacklist_duration=30.0,
            max_peers=2,
        )

    def test_static_peer_is_added_with_its_address_then_waited_for(self) -> None:
        d = self.connector.ensure(CDF1)
        assert self.peers.added == [PeerConfig(CDF1, "127.0.0.1", 3870)]
        [(host, timeout, wait)] = self.peers.waits
        assert (host, timeout) == (CDF1, 2.0)
        self.assertNoResult(d)  # type: ignore[no-untyped-call]
        wait.callback(None)
        self.successResultOf(d)

    def test_other_names_are_reached_at_the_name_on_3868(self) -> None:
        self.connector.ensure(CDF2)
        assert self.peers.added == [PeerConfig(CDF2, CDF2, 3868)]

    def test_usable_peer_needs_no_wait(self) -> None:
        self.peers.usable = ["CDF2.EXAMPLE.COM"]
        self.successResultOf(self.connector.ensure(CDF2))
        assert self.peers.added == [] and self.peers.waits == []

    def test_added_once(self) -> None:
        self.connector.ensure(CDF2)
        self.connector.ensure(CDF2.upper())
        assert len(self.peers.added) == 1
        assert len(self.peers.waits) == 2

    def test_unreachable_peer_is_blacklisted(self) -> None:
        d = self.connector.ensure(CDF2)
        self.peers.waits[0][2].errback(NoPeerError("not usable within 2 s"))
        self.failureResultOf(d, NoPeerError)  # type: ignore[no-untyped-call]
        self.clock.advance(29)
        failure = self.failureResultOf(self.connector.ensure(CDF2), NoPeerError)  # type: ignore[no-untyped-call]
        assert "blacklisted" in str(failure.value)
        assert len(self.peers.waits) == 1  # refused at once
        # A node that reconnected meanwhile is used at once, blacklist or not.
        self.peers.usable = [CDF2]
        self.successResultOf(self.connector.ensure(CDF2))
        self.peers.usable = []
        self.clock.advance(1)
        self.connector.ensure(CDF2)
        assert len(self.peers.waits) == 2  # tried again

    def test_at_most_max_peers_names_from_requests(self) -> None:
        self.connector.ensure("a.example.com")
        self.connector.ensure("b.example.com")
        failure = self.failureResultOf(self.connector.ensure("c.example.com"), NoPeerError)  # type: ignore[no-untyped-call]
        assert "already 2 CCFs" in str(failure.value)
        self.connector.ensure(CDF1)  # configured ones do not count
        assert [c.host for c in self.peers.added] == ["a.example.com", "b.example.com", CDF1]


# --------------------------------------------------------------------------- real nodes


class InMemoryNetworkTests(SynchronousTestCase):
    """The manager over a real DiameterNode and two scripted CDFs, on the in-memory network."""

    @override
    def setUp(self) -> None:
        self.net = DiameterNetwork()
        apps = [Application(3, accounting=True, dictionary=rf.RF)]
        self.cdfs: dict[str, ScriptedCdf] = {}
        self.received: list[AcrRecord] = []
        for name, address in ((CDF1, "10.0.0.11"), (CDF2, "10.0.0.12")):
            node = DiameterNode(
                self.net.reactor(address), name, BILLING_REALM, apps, listen=(3868, "")
            )
            cdf = ScriptedCdf(node, now=self.net.clock.seconds, on_record=self.received.append)
            cdf.install()
            self.cdfs[name] = cdf
        reactor = self.net.reactor("10.0.0.1")
        self.node = DiameterNode(reactor, RALF, REALM, apps, request_timeout=0.2)
        self.connector = CcfConnector(
            self.node,
            reactor,
            peers={CDF1: ("10.0.0.11", 3868), CDF2: ("10.0.0.12", 3868)},
            connect_timeout=2.0,
        )
        self.timers = MemoryTimerService(reactor)
        self.manager = RalfSessionManager(
            self.node,
            MemoryCasStore(reactor),
            self.timers,
            origin_host=RALF,
            origin_realm=REALM,
            billing_realm=BILLING_REALM,
            connector=self.connector,
        )
        self.manager.start()
        verifyObject(IDiameterNode, self.node)

    def start(self, *names: str) -> None:
        for name in names:
            cast(DiameterNode, self.cdfs[name].node).startService()
        self.node.startService()
        self.net.pump()

    def bill(self, request: BillingRequest) -> Outcome:
        d = self.manager.handle(request)
        self.net.advance(3)
        outcome: Outcome = self.successResultOf(d)
        return outcome

    def test_ccfs_are_connected_on_demand(self) -> None:
        self.start(CDF1, CDF2)
        assert self.node.usable_peers() == []
        self.cdfs[CDF1].acct_interim_interval = 1
        assert self.bill(make_request(AccountingRecordType.START, refresh=3)) is Outcome.SUCCESS
        assert self.node.usable_peers() == [CDF1]
        start = self.cdfs[CDF1].records[0]
        assert (start.record_type, start.record_number) == (AccountingRecordType.START, 1)
        assert start.event == make_event(2, refresh=3)
        # Interims on schedule: pops at 1, 2 and 3 s after the START's answer, then none.
        self.net.advance(10)
        records = self.cdfs[CDF1].records
        assert [r.record_number for r in records] == [1, 2, 3, 4]
        assert {r.session_id for r in records} == {start.session_id}
        answered = self.received[0].received
        assert [round(r.received - answered, 6) for r in self.received] == [0, 1, 2, 3]
        assert [r.acr.record_type.name for r in self.received] == ["START"] + ["INTERIM"] * 3

    def test_fail_over_to_the_second_cdf_on_3002(self) -> None:
        self.start(CDF1, CDF2)
        self.cdfs[CDF1].result_code = 3002
        assert self.bill(make_request(AccountingRecordType.START)) is Outcome.SUCCESS
        assert len(self.cdfs[CDF1].records) == 1
        assert [r.record_number for r in self.cdfs[CDF2].records] == [1]
        self.cdfs[CDF1].result_code = 2001
        assert self.bill(make_request(AccountingRecordType.STOP)) is Outcome.SUCCESS
        assert [r.record_type.name for r in self.cdfs[CDF2].records] == ["START", "STOP"]
        assert len(self.cdfs[CDF1].records) == 1

    def test_fail_over_when_the_first_cdf_is_not_running(self) -> None:
        self.start(CDF2)
        d = self.manager.handle(make_request(AccountingRecordType.EVENT))
        self.net.advance(1.9)
        # Waiting for CDF1's connection.
        self.assertNoResult(d)  # type: ignore[no-untyped-call]
        self.net.advance(0.2)
        assert self.successResultOf(d) is Outcome.SUCCESS
        assert [r.record_type.name for r in self.cdfs[CDF2].records] == ["EVENT"]
        # CDF1 is now blacklisted: the next ACR goes to CDF2 at once.
        d = self.manager.handle(make_request(AccountingRecordType.EVENT))
        self.net.pump()
        assert self.successResultOf(d) is Outcome.SUCCESS
        assert len(self.cdfs[CDF2].records) == 2

    def test_timeout_fails_over(self) -> None:
        self.start(CDF1, CDF2)
        self.cdfs[CDF1].stall = True
        d = self.manager.handle(make_request(AccountingRecordType.EVENT))
        self.net.pump()
        self.assertNoResult(d)  # type: ignore[no-untyped-call]
        self.net.advance(0.25)  # the 0.2 s request timeout
        assert self.successResultOf(d) is Outcome.SUCCESS
        assert len(self.cdfs[CDF1].records) == 1 and len(self.cdfs[CDF2].records) == 1


def test_outcome_values_are_metric_labels() -> None:
    assert [o.value for o in Outcome] == [
        "success",
        "rejected",
        "undelivered",
        "no_session",
        "no_peers",
        "failed",
    ]
    assert attrs.has(BillingRequest) and attrs.has(Session)
