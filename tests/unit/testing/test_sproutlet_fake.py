"""Tests for :mod:`clearwater.testing.sproutlet`: the fake helper and :func:`run_tsx`.

The fake must behave as the sproutlet proxy does towards a tsx (spec §2.2, §2.3, §2.7): events
one at a time per transaction, ``async def`` callbacks driven to completion, timers on the
clock, no callbacks after ``on_rx_cancel``; and it must surface a sproutlet's exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Optional

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from typing_extensions import override

from clearwater.sip import (
    NameAddr,
    Request,
    Response,
    SipUri,
    parse_message,
    parse_sip_uri,
    parse_uri,
)
from clearwater.sip.proxy import ForkState
from clearwater.sip.sproutlet import (
    ErrorState,
    ForkStatus,
    Sproutlet,
    SproutletTsx,
    SproutletTsxHelper,
)
from clearwater.testing.sproutlet import (
    DEFAULT_LOCAL_HOSTNAME,
    FakeTimer,
    FakeTsxHelper,
    run_tsx,
)


def _request(method: str, uri: str = "sip:bob@example.com", to_tag: str = "") -> Request:
    data = (
        method + " " + uri + " SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>" + (";tag=" + to_tag if to_tag else "") + "\r\n"
        "Call-ID: call-1@10.0.0.1\r\n"
        "CSeq: 5 " + method + "\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


INVITE = _request("INVITE")


class Recorder(SproutletTsx):
    """Logs every callback; what it does on the initial request is ``action`` (default:
    forward). Subclasses override callbacks with ``async def`` versions."""

    def __init__(
        self, helper: SproutletTsxHelper, action: Optional[Callable[[Recorder, Request], object]]
    ) -> None:
        super().__init__(helper)
        self.action = action
        self.log: list[tuple[object, ...]] = []

    @override
    def on_rx_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.log.append(("initial", request.method))
        if self.action is None:
            self.send_request(request)
        else:
            self.action(self, request)
        return None

    @override
    def on_rx_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.log.append(("in-dialog", request.method))
        self.send_request(request)
        return None

    @override
    def on_tx_request(self, request: Request, fork_id: int) -> Optional[Awaitable[None]]:
        self.log.append(("tx-request", fork_id))
        return None

    @override
    def on_rx_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        self.log.append(("response", response.status, fork_id))
        self.send_response(response)
        return None

    @override
    def on_tx_response(self, response: Response) -> Optional[Awaitable[None]]:
        self.log.append(("tx-response", response.status))
        return None

    @override
    def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
        self.log.append(("cancel", status, None if cancel is None else cancel.method))
        return None

    @override
    def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
        self.log.append(("timer", context))
        return None


class Service(Sproutlet):
    def __init__(
        self,
        action: Optional[Callable[[Recorder, Request], object]] = None,
        *,
        uri: str = "",
    ) -> None:
        super().__init__("svc", uri=uri)
        self.action = action
        self.seen: list[tuple[str, Request]] = []

    @override
    def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
        self.seen.append((alias, request))
        return Recorder(helper, self.action)


def _recorder(tsx: SproutletTsx) -> Recorder:
    assert isinstance(tsx, Recorder)
    return tsx


def test_the_fake_is_a_sproutlet_tsx_helper() -> None:
    helper: SproutletTsxHelper = FakeTsxHelper(INVITE)  # mypy checks the protocol
    assert helper.original_request() == INVITE


def test_forks_and_responses_are_recorded() -> None:
    def fork_twice(tsx: Recorder, request: Request) -> None:
        copy = tsx.clone_request(request)
        copy.uri = parse_sip_uri("sip:bob@10.0.0.9")
        assert tsx.send_request(request) == 0
        assert tsx.send_request(copy) == 1

    service = Service(fork_twice)
    helper, tsx = run_tsx(service, INVITE, alias="other")
    rec = _recorder(tsx)

    assert [(alias, r.method) for alias, r in service.seen] == [("other", "INVITE")]
    assert [str(r.uri) for r in helper.sent_requests] == [
        "sip:bob@example.com",
        "sip:bob@10.0.0.9",
    ]
    assert helper.forks[1].request is helper.sent_requests[1]
    assert rec.log == [("initial", "INVITE"), ("tx-request", 0), ("tx-request", 1)]
    assert helper.fork_state(0) == ForkStatus(ForkState.CALLING)

    helper.respond(1, 100)  # not delivered: the proxy absorbs a 100
    assert helper.fork_state(1) == ForkStatus(ForkState.PROCEEDING)
    assert [r.status for r in helper.forks[1].responses] == [100]
    ringing = helper.respond(1, 180, to_tag="b1", headers=[("Contact", "<sip:bob@10.0.0.9>")])
    assert helper.fork_state(1) == ForkStatus(ForkState.PROCEEDING)
    assert ringing.to.tag == "b1" and ringing.headers.get("Contact") == "<sip:bob@10.0.0.9>"
    busy = helper.respond(0, 486)
    assert helper.fork_state(0) == ForkStatus(ForkState.TERMINATED)
    assert helper.forks[0].responses == [busy]

    assert rec.log[3:] == [
        ("response", 180, 1),
        ("tx-response", 180),
        ("response", 486, 0),
        ("tx-response", 486),
    ]
    assert helper.responses == [ringing, busy]
    assert helper.final_response is busy
    assert busy.to_bytes().startswith(
        b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKabc\r\n"
    )
    assert busy.cseq.seq == 5 and busy.call_id == "call-1@10.0.0.1"


def test_a_response_is_built_from_the_request_sent_on_its_fork() -> None:
    def forward_changed(tsx: Recorder, request: Request) -> None:
        request.headers.prepend("Via", "SIP/2.0/TCP sprout.example.com;branch=z9hG4bKsprout")
        tsx.send_request(request)

    helper, _ = run_tsx(Service(forward_changed), INVITE)
    response = helper.respond(0, 200, "Fine", body=b"v=0\r\n")
    assert [v.branch for v in response.vias] == ["z9hG4bKsprout", "z9hG4bKabc"]
    assert (response.reason, response.body) == ("Fine", b"v=0\r\n")
    assert b"\r\nContent-Length: 5\r\n" in response.to_bytes()


def test_responses_to_unknown_or_finished_forks_are_refused() -> None:
    helper, _ = run_tsx(Service(), INVITE)
    with pytest.raises(ValueError, match=r"^no fork 3 \(forks: 1\)$"):
        helper.respond(3, 200)
    helper.respond(0, 200)
    with pytest.raises(ValueError, match="fork 0 has terminated"):
        helper.respond(0, 200)


def test_a_failed_fork_gets_a_408() -> None:
    helper, tsx = run_tsx(Service(), INVITE)
    response = helper.fail_fork(0, ErrorState.TRANSPORT_ERROR)
    assert (response.status, response.reason) == (408, "Request Timeout")
    assert helper.fork_state(0) == ForkStatus(ForkState.TERMINATED, ErrorState.TRANSPORT_ERROR)
    assert ("response", 408, 0) in _recorder(tsx).log
    with pytest.raises(ValueError, match="NONE"):
        helper.fail_fork(0, ErrorState.NONE)


def test_an_in_dialog_request_goes_to_on_rx_in_dialog_request_and_is_sent_once() -> None:
    bye = _request("BYE", to_tag="b1")
    helper, tsx = run_tsx(Service(), bye)
    assert _recorder(tsx).log == [("in-dialog", "BYE"), ("tx-request", 0)]
    with pytest.raises(ValueError, match="at most once"):
        tsx.send_request(bye)
    assert len(helper.forks) == 1


def test_timers_fire_on_the_clock() -> None:
    clock = Clock()
    ids: list[int] = []

    def set_timers(tsx: Recorder, request: Request) -> None:
        ids.append(tsx.schedule_timer("no-answer", 5))
        ids.append(tsx.schedule_timer("never", 10))

    helper, tsx = run_tsx(Service(set_timers), INVITE, clock=clock)
    assert helper.clock is clock
    assert sorted(helper.timers) == ids == [1, 2]
    first = helper.timers[1]
    assert isinstance(first, FakeTimer)
    assert (first.context, first.duration, first.call.getTime()) == ("no-answer", 5, 5.0)

    tsx.cancel_timer(2)
    assert not tsx.timer_running(2)
    clock.advance(4.9)
    assert tsx.timer_running(1) and _recorder(tsx).log == [("initial", "INVITE")]
    clock.advance(0.1)
    assert not tsx.timer_running(1)
    assert _recorder(tsx).log == [("initial", "INVITE"), ("timer", "no-answer")]
    clock.advance(100)
    assert _recorder(tsx).log[-1] == ("timer", "no-answer")
    tsx.cancel_timer(1)  # no effect once fired
    with pytest.raises(ValueError, match="negative"):
        tsx.schedule_timer("x", -1)


def test_cancel_delivers_on_rx_cancel_then_ends_the_transaction() -> None:
    options = _request("OPTIONS")

    def fork_and_wait(tsx: Recorder, request: Request) -> None:
        tsx.send_request(request)  # INVITE fork
        tsx.send_request(options)  # a non-INVITE fork
        tsx.schedule_timer("t", 30)

    helper, tsx = run_tsx(Service(fork_and_wait), INVITE)
    cancel = helper.cancel()

    assert cancel is not None and cancel.method == "CANCEL"
    assert cancel.cseq.seq == 5 and cancel.cseq.method == "CANCEL"
    assert cancel.call_id == INVITE.call_id and str(cancel.uri) == str(INVITE.uri)
    assert _recorder(tsx).log[-1] == ("cancel", 487, "CANCEL")
    assert helper.ended
    assert [f.cancelled for f in helper.forks] == [(0, ""), (0, "")]
    # An INVITE fork waits for its 487; a non-INVITE one ends at once (spec §2.3).
    assert [f.state for f in helper.forks] == [ForkState.CALLING, ForkState.TERMINATED]
    assert helper.timers == {}
    helper.clock.advance(60)
    assert _recorder(tsx).log[-1] == ("cancel", 487, "CANCEL")
    with pytest.raises(RuntimeError, match="no more callbacks"):
        helper.respond(0, 487)
    with pytest.raises(RuntimeError, match="no more callbacks"):
        helper.cancel()


def test_a_caller_that_went_away_is_a_408_cancel_without_request() -> None:
    helper, tsx = run_tsx(Service(), INVITE)
    assert helper.cancel(408) is None
    assert _recorder(tsx).log[-1] == ("cancel", 408, None)
    with pytest.raises(ValueError, match="not 486"):
        run_tsx(Service(), INVITE)[0].cancel(486)


def test_cancel_fork_and_abandoned_forks() -> None:
    def fork_three(tsx: Recorder, request: Request) -> None:
        for _ in range(3):
            tsx.send_request(tsx.clone_request(request))

    helper, tsx = run_tsx(Service(fork_three), INVITE)
    helper.respond(2, 180)
    tsx.cancel_fork(2, 480, "Moved")
    tsx.cancel_fork(2, 500, "again")  # the first cancel stands
    assert helper.forks[2].cancelled == (480, "Moved")
    assert helper.fork_state(2) == ForkStatus(ForkState.PROCEEDING)  # until its 487 comes
    helper.respond(2, 487)
    assert helper.fork_state(2) == ForkStatus(ForkState.TERMINATED)

    tsx.mark_pending_forks_as_abandoned()
    assert [f.abandoned for f in helper.forks] == [True, True, False]
    assert {f.state for f in helper.forks} == {ForkState.TERMINATED}
    late = helper.respond(0, 200)  # dropped: it no longer counts
    assert helper.forks[0].responses == [late]
    assert ("response", 200, 0) not in _recorder(tsx).log
    tsx.cancel_pending_forks()
    assert [f.cancelled for f in helper.forks] == [None, None, (480, "Moved")]


def test_async_callbacks_are_driven_and_events_wait_for_them() -> None:
    lookup: Deferred[str] = Deferred()

    class Slow(Recorder):
        @override
        async def on_rx_initial_request(self, request: Request) -> None:
            self.log.append(("initial", request.method))
            request.headers.add("X-Looked-Up", await lookup)
            self.send_request(request)
            self.schedule_timer("t", 1)

        @override
        async def on_rx_response(self, response: Response, fork_id: int) -> None:
            self.log.append(("response", response.status, fork_id))
            self.send_response(response)

    class SlowService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Slow(helper, None)

    helper, tsx = run_tsx(SlowService(), INVITE)
    assert (helper.busy, helper.forks) == (True, [])
    helper.cancel(408)  # queued behind the lookup
    assert _recorder(tsx).log == [("initial", "INVITE")]

    lookup.callback("yes")

    assert not helper.busy
    assert helper.sent_requests[0].headers.get("X-Looked-Up") == "yes"
    assert _recorder(tsx).log == [("initial", "INVITE"), ("tx-request", 0), ("cancel", 408, None)]
    assert helper.ended and helper.timers == {}


def test_an_async_callback_that_does_not_wait_completes_at_once() -> None:
    class Quick(Recorder):
        @override
        async def on_rx_response(self, response: Response, fork_id: int) -> None:
            self.log.append(("response", response.status, fork_id))
            self.send_response(response)

    class QuickService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Quick(helper, None)

    helper, tsx = run_tsx(QuickService(), INVITE)
    helper.respond(0, 180)
    helper.respond(0, 200)
    assert not helper.busy
    assert [r.status for r in helper.responses] == [180, 200]
    assert _recorder(tsx).log[-2:] == [("response", 200, 0), ("tx-response", 200)]


def test_an_async_callback_waiting_on_the_clock() -> None:
    class Waits(Recorder):
        @override
        async def on_rx_initial_request(self, request: Request) -> None:
            assert isinstance(self.helper, FakeTsxHelper)
            await deferLater(self.helper.clock, 2.0, lambda: None)
            self.send_response(self.create_response(request, 486))

    class WaitsService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Waits(helper, None)

    helper, _ = run_tsx(WaitsService(), INVITE)
    assert helper.responses == []
    helper.clock.advance(2)
    assert [(r.status, r.reason) for r in helper.responses] == [(486, "Busy Here")]


def test_an_exception_in_a_callback_is_raised_to_the_test() -> None:
    def boom(tsx: Recorder, request: Request) -> None:
        raise KeyError("no such subscriber")

    with pytest.raises(KeyError, match="no such subscriber"):
        run_tsx(Service(boom), INVITE)


def test_a_failure_ends_the_transaction_with_a_500_upstream() -> None:
    def fork_then_fail(tsx: Recorder, request: Request) -> None:
        tsx.send_request(request)
        tsx.schedule_timer("t", 5)
        raise RuntimeError("bug")

    helper = FakeTsxHelper(INVITE)
    tsx = Recorder(helper, fork_then_fail)
    with pytest.raises(RuntimeError, match="bug"):
        helper.start(tsx)

    assert [(r.status, r.reason, r.to.tag) for r in helper.responses] == [
        (500, "Server Internal Error", "fake-tag")
    ]
    assert helper.ended and helper.timers == {}
    assert tsx.log == [("initial", "INVITE")]  # not even on_tx_request
    assert [f.type for f in helper.failures] == [RuntimeError]
    with pytest.raises(RuntimeError, match="no more callbacks"):
        helper.respond(0, 200)


def test_an_exception_after_an_await_is_kept_and_raised_later() -> None:
    gate: Deferred[None] = Deferred()

    class Fails(Recorder):
        @override
        async def on_rx_initial_request(self, request: Request) -> None:
            await gate
            raise RuntimeError("store down")

    class FailsService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Fails(helper, None)

    helper, _ = run_tsx(FailsService(), INVITE)
    helper.raise_failures()  # nothing yet
    gate.callback(None)  # no "Unhandled error in Deferred": the fake keeps it
    assert [f.type for f in helper.failures] == [RuntimeError]
    with pytest.raises(RuntimeError, match="store down"):
        helper.raise_failures()
    helper.raise_failures()  # each failure is raised once
    assert len(helper.failures) == 1


def test_an_exception_in_a_timer_callback_comes_out_of_clock_advance() -> None:
    class Timed(Recorder):
        @override
        def on_timer_expiry(self, context: object) -> None:
            raise ValueError("timer " + str(context))

    class TimedService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Timed(helper, lambda tsx, request: tsx.schedule_timer("t1", 1))

    helper, _ = run_tsx(TimedService(), INVITE)
    with pytest.raises(ValueError, match="timer t1"):
        helper.clock.advance(1)


def test_a_second_final_response_is_a_failure() -> None:
    def answer_twice(tsx: Recorder, request: Request) -> None:
        tsx.send_response(tsx.create_response(request, 404))
        tsx.send_response(tsx.create_response(request, 480))

    with pytest.raises(ValueError, match="cannot send 480 upstream: the final response 404"):
        run_tsx(Service(answer_twice), INVITE)


def test_a_2xx_may_follow_a_2xx() -> None:
    def two_oks(tsx: Recorder, request: Request) -> None:
        tsx.send_response(tsx.create_response(request, 200))
        tsx.send_response(tsx.create_response(request, 200))

    helper, _ = run_tsx(Service(two_oks), INVITE)
    assert [r.status for r in helper.responses] == [200, 200]


def test_a_callback_returning_something_else_is_a_failure() -> None:
    class Odd(Recorder):
        @override
        def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
            result: Any = context  # a bug mypy would catch in a typed sproutlet
            return result  # type: ignore[no-any-return]

    class OddService(Service):
        @override
        def get_tsx(self, helper: SproutletTsxHelper, alias: str, request: Request) -> Recorder:
            return Odd(helper, lambda tsx, request: tsx.schedule_timer(42, 1))

    helper, _ = run_tsx(OddService(), INVITE)
    with pytest.raises(TypeError, match=r"^on_timer_expiry returned int, not an awaitable$"):
        helper.clock.advance(1)
    assert [f.type for f in helper.failures] == [TypeError]


def test_a_declining_sproutlet() -> None:
    class Declines(Sproutlet):
        @override
        def get_tsx(
            self, helper: SproutletTsxHelper, alias: str, request: Request
        ) -> Optional[SproutletTsx]:
            return None

    with pytest.raises(ValueError, match=r"^Declines\('no', .*get_tsx returned None$"):
        run_tsx(Declines("no"), INVITE)
    assert Declines("no").get_tsx(FakeTsxHelper(INVITE), "no", INVITE) is None


def test_start_only_once_and_not_before() -> None:
    helper = FakeTsxHelper(INVITE)
    with pytest.raises(RuntimeError, match="start"):
        helper.cancel()
    tsx = SproutletTsx(helper)
    helper.start(tsx)
    with pytest.raises(RuntimeError, match="already started"):
        helper.start(tsx)
    assert helper.sent_requests == [INVITE]  # the default callback forwarded a copy
    assert helper.sent_requests[0] is not helper.request


def test_routing_and_naming_helpers() -> None:
    route = "<sip:svc.sprout.example.com;lr;orig>"
    _, tsx = run_tsx(Service(), INVITE, route=route)
    assert tsx.route_hdr() == NameAddr.parse(route)
    assert str(tsx.get_reflexive_uri()) == "sip:svc.sprout.example.com;transport=tcp"
    assert tsx.is_uri_reflexive(parse_sip_uri("sip:SVC.sprout.example.com;lr"))
    assert tsx.is_uri_reflexive(parse_sip_uri("sip:sprout.example.com;service=svc"))
    assert not tsx.is_uri_reflexive(parse_sip_uri("sip:svc.sprout.example.com:5054"))
    assert not tsx.is_uri_reflexive(parse_sip_uri("sip:other.sprout.example.com"))
    assert not tsx.is_uri_reflexive(parse_uri("tel:+15551234"))

    routed = INVITE.copy()
    routed.headers.add("Route", "<sip:scscf.sprout.example.com;lr>")
    assert str(tsx.get_routing_uri(routed)) == "sip:scscf.sprout.example.com;lr"
    assert str(tsx.get_routing_uri(INVITE)) == "sip:bob@example.com"
    base = parse_sip_uri("sip:alice@10.0.0.1:5054;transport=tcp")
    assert str(tsx.next_hop_uri("registrar", base)) == (
        "sip:alice@sprout.example.com;transport=tcp;lr;service=registrar"
    )
    assert tsx.get_local_hostname(parse_sip_uri("sip:scscf.sprout.example.com")) == (
        DEFAULT_LOCAL_HOSTNAME
    )
    assert tsx.get_local_hostname(parse_sip_uri("sip:sprout.example.com")) == "sprout.example.com"
    assert tsx.get_local_hostname(parse_sip_uri("sip:a.b.example.net")) == "a.b.example.net"

    original = tsx.original_request()
    original.headers.add("X-Changed", "1")
    assert tsx.original_request() == INVITE
    clone = tsx.clone_request(INVITE)
    assert clone == INVITE and clone is not INVITE
    blank = tsx.create_request()
    assert (blank.method, str(blank.uri), list(blank.headers)) == (
        "INVITE",
        "sip:bob@example.com",
        [("Max-Forwards", "70")],
    )
    response = tsx.create_response(INVITE, 603)
    assert (response.status, response.reason, response.to.tag) == (603, "Decline", "fake-tag")
    assert tsx.create_response(INVITE, 603, "Not today").reason == "Not today"
    assert tsx.create_response(INVITE, 100).to.tag is None
    assert tsx.create_response(_request("BYE", to_tag="b1"), 200).to.tag == "b1"
    helper = FakeTsxHelper(INVITE, to_tag="t42")
    assert helper.create_response(INVITE, 200).to.tag == "t42"


def test_the_reflexive_uri_comes_from_the_sproutlet_or_the_caller() -> None:
    uri = "sip:svc.node1.example.com:5058;transport=tcp"
    helper, _ = run_tsx(Service(uri=uri), INVITE, local_hostname="node1.example.com")
    assert str(helper.get_reflexive_uri()) == uri
    assert helper.is_uri_reflexive(parse_sip_uri("sip:svc.node1.example.com:5058;lr"))
    explicit = SipUri("elsewhere.example.com")
    helper, _ = run_tsx(Service(uri=uri), INVITE, reflexive_uri=explicit)
    assert helper.get_reflexive_uri() is explicit
