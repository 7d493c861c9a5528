"""The response context of a stateful forking proxy: RFC 3261 §16.7, §16.8, §16.10.

Every (fork state, input) pair has a row in a table below, for an INVITE and for a non-INVITE
request; the exhaustive tests fail on a missing row. Then the scenarios of §16.7 (parallel and
sequential forking, the choice of the best response, 401/407 challenges), §16.8 (timer C),
§16.10 and §9.1 (CANCEL, deferred until a provisional response), abandoned forks and the
caller's own responses; last a Hypothesis stateful test of the invariants.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, cast, get_args

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from typing_extensions import override

from clearwater.sip import Request, Response, parse_message
from clearwater.sip._status import reason_phrase
from clearwater.sip.proxy._context import (
    COMPLETED_ELSEWHERE,
    CancelFork,
    Deliver,
    Effect,
    ForkInput,
    ForkState,
    ResponseContext,
    SendUpstream,
    StartTimerC,
    StopTimerC,
    TerminateFork,
)
from clearwater.sip.transaction import build_response

CALLING, PROCEEDING, TERMINATED = ForkState.CALLING, ForkState.PROCEEDING, ForkState.TERMINATED
NOW = 10.0  # when the exhaustive tests apply their input; forks are added at 0
TIMER_C = 180.0


def make_request(method: str) -> Request:
    """The request as the proxy received it upstream."""
    data = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


INVITE = make_request("INVITE")
OPTIONS = make_request("OPTIONS")


def make_response(
    request: Request,
    status: int,
    tag: str = "b0",
    extra: tuple[tuple[str, str], ...] = (),
    content_length: bool = True,
) -> Response:
    """A response to ``request`` as a fork passes it up (the proxy's own Via removed): To tag
    ``tag`` unless a 100, then the ``extra`` lines."""
    to = request.headers.get("To") or ""
    headers = [
        ("Via", request.headers.get("Via") or ""),
        ("To", to if status == 100 else to + ";tag=" + tag),
        ("From", request.headers.get("From") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", request.headers.get("CSeq") or ""),
        *extra,
    ]
    if content_length:
        headers.append(("Content-Length", "0"))
    return Response(status, reason_phrase(status), headers)


def r(status: int, tag: str = "b0") -> Response:
    """A response to the INVITE."""
    return make_response(INVITE, status, tag)


def o(status: int, tag: str = "b0") -> Response:
    """A response to the OPTIONS."""
    return make_response(OPTIONS, status, tag)


TIMEOUT = build_response(INVITE, 408, "Request Timeout")
TERMINATED_487 = build_response(INVITE, 487, "Request Terminated")
O_TERMINATED_487 = build_response(OPTIONS, 487, "Request Terminated")


def context(request: Request = INVITE, forks: int = 0) -> ResponseContext:
    ctx = ResponseContext(request, timer_c=TIMER_C)
    for _ in range(forks):
        ctx.add_fork(0.0)
    return ctx


# ---------------------------------------------------------------------------- exhaustive tables

INPUTS = ("100", "180", "200", "486", "failed", "timer C", "cancel", "abandon")


def apply(ctx: ResponseContext, request: Request, name: str) -> list[Effect]:
    """Apply input ``name`` to fork 0 (cancel and abandon act on every pending fork)."""
    if name == "failed":
        return ctx.fork_failed(0, NOW)
    if name == "timer C":
        return ctx.timer_c_fired(0, NOW)
    if name == "cancel":
        return ctx.cancel(NOW)
    if name == "abandon":
        return ctx.mark_pending_forks_as_abandoned()
    return ctx.response(0, make_response(request, int(name)), NOW)


def setup(request: Request, state: ForkState) -> ResponseContext:
    """Forks 0 and 1 added at 0; fork 0 brought to ``state`` at 5 (a 180 for an INVITE, a 100
    for an OPTIONS, or a 486); fork 1 stays in Calling, so that the context does not finish."""
    ctx = context(request, forks=2)
    if state is PROCEEDING:
        ctx.response(0, make_response(request, 180 if ctx.is_invite else 100), 5.0)
    elif state is TERMINATED:
        ctx.response(0, make_response(request, 486), 5.0)
    assert ctx.fork_state(0) is state
    return ctx


Row = tuple[list[Effect], ForkState]

#: INVITE forks: (state of fork 0, input) -> (effects, state of fork 0 after).
#: Timer C of fork 0 runs until 180 in Calling, 185 in Proceeding; fork 1's until 180.
INVITE_TABLE: dict[tuple[ForkState, str], Row] = {
    (CALLING, "100"): ([], PROCEEDING),
    (CALLING, "180"): ([StartTimerC(0, 190.0), SendUpstream(r(180))], PROCEEDING),
    (CALLING, "200"): ([StopTimerC(0), SendUpstream(r(200))], TERMINATED),
    (CALLING, "486"): ([StopTimerC(0)], TERMINATED),
    (CALLING, "failed"): ([StopTimerC(0)], TERMINATED),
    (CALLING, "timer C"): ([TerminateFork(0)], TERMINATED),
    (CALLING, "cancel"): ([], CALLING),  # deferred until a provisional response (§9.1)
    (CALLING, "abandon"): ([StopTimerC(0), StopTimerC(1)], TERMINATED),
    (PROCEEDING, "100"): ([], PROCEEDING),
    (PROCEEDING, "180"): ([StartTimerC(0, 190.0), SendUpstream(r(180))], PROCEEDING),
    (PROCEEDING, "200"): ([StopTimerC(0), SendUpstream(r(200))], TERMINATED),
    (PROCEEDING, "486"): ([StopTimerC(0)], TERMINATED),
    (PROCEEDING, "failed"): ([StopTimerC(0)], TERMINATED),
    (PROCEEDING, "timer C"): ([CancelFork(0, None), StartTimerC(0, 190.0)], PROCEEDING),
    (PROCEEDING, "cancel"): ([CancelFork(0, None)], PROCEEDING),
    (PROCEEDING, "abandon"): ([StopTimerC(0), StopTimerC(1)], TERMINATED),
    (TERMINATED, "100"): ([], TERMINATED),
    (TERMINATED, "180"): ([], TERMINATED),
    (TERMINATED, "200"): ([SendUpstream(r(200))], TERMINATED),  # §16.7 step 5
    (TERMINATED, "486"): ([], TERMINATED),
    (TERMINATED, "failed"): ([], TERMINATED),
    (TERMINATED, "timer C"): ([], TERMINATED),  # not running any more
    (TERMINATED, "cancel"): ([], TERMINATED),
    (TERMINATED, "abandon"): ([StopTimerC(1), SendUpstream(r(486))], TERMINATED),
}

#: Non-INVITE forks: no timer C, no provisional response passed on (RFC 4320 §4.1), no CANCEL.
OPTIONS_TABLE: dict[tuple[ForkState, str], Row] = {
    (CALLING, "100"): ([], PROCEEDING),
    (CALLING, "180"): ([], PROCEEDING),
    (CALLING, "200"): ([SendUpstream(o(200)), TerminateFork(1)], TERMINATED),
    (CALLING, "486"): ([], TERMINATED),
    (CALLING, "failed"): ([], TERMINATED),
    (CALLING, "timer C"): ([], CALLING),
    (CALLING, "cancel"): (
        [TerminateFork(0), TerminateFork(1), SendUpstream(O_TERMINATED_487)],
        TERMINATED,
    ),
    (CALLING, "abandon"): ([], TERMINATED),
    (PROCEEDING, "100"): ([], PROCEEDING),
    (PROCEEDING, "180"): ([], PROCEEDING),
    (PROCEEDING, "200"): ([SendUpstream(o(200)), TerminateFork(1)], TERMINATED),
    (PROCEEDING, "486"): ([], TERMINATED),
    (PROCEEDING, "failed"): ([], TERMINATED),
    (PROCEEDING, "timer C"): ([], PROCEEDING),
    (PROCEEDING, "cancel"): (
        [TerminateFork(0), TerminateFork(1), SendUpstream(O_TERMINATED_487)],
        TERMINATED,
    ),
    (PROCEEDING, "abandon"): ([], TERMINATED),
    (TERMINATED, "100"): ([], TERMINATED),
    (TERMINATED, "180"): ([], TERMINATED),
    (TERMINATED, "200"): ([], TERMINATED),
    (TERMINATED, "486"): ([], TERMINATED),
    (TERMINATED, "failed"): ([], TERMINATED),
    (TERMINATED, "timer C"): ([], TERMINATED),
    (TERMINATED, "cancel"): ([TerminateFork(1), SendUpstream(O_TERMINATED_487)], TERMINATED),
    (TERMINATED, "abandon"): ([SendUpstream(o(486))], TERMINATED),
}

PAIRS = list(itertools.product(ForkState, INPUTS))


@pytest.mark.parametrize("table", [INVITE_TABLE, OPTIONS_TABLE])
def test_tables_cover_every_pair(table: dict[tuple[ForkState, str], Row]) -> None:
    assert sorted(table, key=str) == sorted(PAIRS, key=str)


@pytest.mark.parametrize(("state", "name"), PAIRS)
def test_invite_fork(state: ForkState, name: str) -> None:
    ctx = setup(INVITE, state)
    effects, after = INVITE_TABLE[state, name]
    assert apply(ctx, INVITE, name) == effects
    assert ctx.fork_state(0) is after


@pytest.mark.parametrize(("state", "name"), PAIRS)
def test_non_invite_fork(state: ForkState, name: str) -> None:
    ctx = setup(OPTIONS, state)
    effects, after = OPTIONS_TABLE[state, name]
    assert apply(ctx, OPTIONS, name) == effects
    assert ctx.fork_state(0) is after


def test_transitions_table_holds_the_documented_pairs() -> None:
    assert set(ResponseContext.TRANSITIONS) == {
        *itertools.product([CALLING, PROCEEDING], list(ForkInput)[1:]),
        (CALLING, ForkInput.TRYING),
        (TERMINATED, ForkInput.SUCCESS),
    }


# ---------------------------------------------------------------------------- queries


def test_a_new_context() -> None:
    ctx = ResponseContext(INVITE)
    assert ctx.is_invite
    assert not ctx.final_sent
    assert ctx.pending_forks == []
    assert ctx.best is None
    assert ctx.can_add_fork
    assert not ResponseContext(OPTIONS).is_invite


def test_forks_are_numbered_and_start_timer_c_for_an_invite() -> None:
    ctx = ResponseContext(INVITE)  # timer C defaults to 180 s (§16.6 step 11)
    assert ctx.add_fork(1.0) == (0, [StartTimerC(0, 181.0)])
    assert ctx.add_fork(2.5) == (1, [StartTimerC(1, 182.5)])
    assert ctx.pending_forks == [0, 1]
    assert ctx.fork_state(1) is CALLING
    short = ResponseContext(INVITE, timer_c=3.0)
    assert short.add_fork(1.0) == (0, [StartTimerC(0, 4.0)])


def test_non_invite_forks_have_no_timer_c() -> None:
    ctx = ResponseContext(OPTIONS)
    assert ctx.add_fork(1.0) == (0, [])
    assert ctx.add_fork(1.0) == (1, [])
    assert ctx.timer_c_fired(0, 181.0) == []


# ---------------------------------------------------------------------------- parallel forking


def test_a_2xx_goes_up_at_once_and_cancels_the_pending_forks() -> None:
    ctx = context(forks=3)
    assert ctx.response(0, r(180, "b0"), 1.0) == [StartTimerC(0, 181.0), SendUpstream(r(180))]
    assert ctx.response(1, r(180, "b1"), 1.0) == [
        StartTimerC(1, 181.0),
        SendUpstream(r(180, "b1")),
    ]
    assert ctx.response(2, r(183, "b2"), 1.0) == [
        StartTimerC(2, 181.0),
        SendUpstream(r(183, "b2")),
    ]
    assert ctx.response(0, r(486, "b0"), 2.0) == [StopTimerC(0)]
    assert ctx.response(1, r(200, "b1"), 3.0) == [
        StopTimerC(1),
        SendUpstream(r(200, "b1")),
        CancelFork(2, 'SIP;cause=200;text="Call completed elsewhere"'),
    ]
    assert ctx.final_sent
    assert ctx.pending_forks == [2]
    assert not ctx.can_add_fork
    # The CANCELled fork's 487 ends it and goes nowhere; the 486 never went up.
    assert ctx.response(2, r(487, "b2"), 4.0) == [StopTimerC(2)]
    assert ctx.pending_forks == []


def test_every_2xx_to_an_invite_goes_up() -> None:
    """§16.7 step 5: after a final response, any 2xx to an INVITE is forwarded at once: a
    retransmission, another fork's 2xx that crossed the CANCEL, another dialog's."""
    ctx = context(forks=2)
    ctx.response(1, r(180, "b1"), 1.0)
    assert ctx.response(0, r(200, "b0"), 2.0) == [
        StopTimerC(0),
        SendUpstream(r(200, "b0")),
        CancelFork(1, COMPLETED_ELSEWHERE),
    ]
    assert ctx.response(0, r(200, "b0"), 2.5) == [SendUpstream(r(200, "b0"))]
    assert ctx.response(0, r(200, "b9"), 2.6) == [SendUpstream(r(200, "b9"))]
    assert ctx.response(1, r(200, "b1"), 3.0) == [StopTimerC(1), SendUpstream(r(200, "b1"))]
    assert ctx.response(1, r(200, "b1"), 3.5) == [SendUpstream(r(200, "b1"))]


def test_provisional_responses_stop_going_up_after_the_final() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(200), 1.0)
    assert ctx.response(1, r(180, "b1"), 2.0) == [
        StartTimerC(1, 182.0),
        CancelFork(1, COMPLETED_ELSEWHERE),
    ]


def test_486_and_404_give_404() -> None:
    ctx = context(forks=2)
    assert ctx.response(0, r(486, "b0"), 1.0) == [StopTimerC(0)]
    assert ctx.best == r(486, "b0")
    assert not ctx.final_sent
    assert ctx.response(1, r(404, "b1"), 2.0) == [StopTimerC(1), SendUpstream(r(404, "b1"))]
    assert ctx.best == r(404, "b1")
    assert ctx.final_sent


@pytest.mark.parametrize(
    ("statuses", "chosen"),
    [
        ([486, 404], 1),  # the lowest code wins
        ([404, 486], 0),
        ([302, 404], 0),
        ([480, 486, 404], 2),
        ([404, 487], 1),  # 487 beats everything (the originator cancelled)
        ([487, 404], 0),
        ([487, 408, 302], 0),
        ([408, 503], 1),  # 408 loses to everything
        ([503, 408], 0),
        ([408], 0),
        ([408, 408], 0),  # a tie goes to the first received
        ([404, 404], 0),
        ([486, 603], 1),  # a 6xx is chosen if there is one (§16.7 step 6, a MUST)
        ([603, 487], 0),
        ([487, 600], 1),
        ([604, 603], 1),
    ],
)
def test_choice_of_the_best_response(statuses: list[int], chosen: int) -> None:
    ctx = context(forks=len(statuses))
    effects: list[Effect] = []
    for fork_id, status in enumerate(statuses):
        effects = ctx.response(fork_id, r(status, "b" + str(fork_id)), 1.0 + fork_id)
    expected = r(statuses[chosen], "b" + str(chosen))
    assert effects[-1] == SendUpstream(expected)
    assert ctx.best == expected


def test_a_timed_out_fork_counts_as_408_and_loses_to_503() -> None:
    ctx = context(forks=2)
    assert ctx.fork_failed(0, 1.0) == [StopTimerC(0)]
    assert ctx.best == TIMEOUT
    assert ctx.fork_failed(0, 1.5) == []  # already over
    assert ctx.response(1, r(503, "b1"), 2.0) == [StopTimerC(1), SendUpstream(r(503, "b1"))]


def test_every_fork_failing_gives_a_408_built_from_the_request() -> None:
    ctx = context(forks=2)
    assert ctx.fork_failed(1, 1.0) == [StopTimerC(1)]
    effects = ctx.fork_failed(0, 2.0)
    assert effects == [StopTimerC(0), SendUpstream(TIMEOUT)]
    sent = effects[1]
    assert isinstance(sent, SendUpstream)
    assert sent.response.to_bytes() == (
        b"SIP/2.0 408 Request Timeout\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_a_6xx_cancels_the_other_forks_and_is_sent_when_they_end() -> None:
    ctx = context(forks=3)
    ctx.response(1, r(180, "b1"), 1.0)
    assert ctx.response(0, r(603, "b0"), 2.0) == [StopTimerC(0), CancelFork(1, None)]
    assert not ctx.final_sent  # §16.7 step 5: a 6xx is not forwarded at once
    assert not ctx.can_add_fork
    with pytest.raises(ValueError, match="6xx"):
        ctx.add_fork(2.0)
    # Fork 2 had no provisional response: its CANCEL waits for one (§9.1).
    assert ctx.response(2, r(100), 3.0) == [CancelFork(2, None)]
    assert ctx.response(1, r(487, "b1"), 4.0) == [StopTimerC(1)]
    assert ctx.response(2, r(487, "b2"), 5.0) == [StopTimerC(2), SendUpstream(r(603, "b0"))]


def test_a_2xx_after_a_6xx_still_goes_up() -> None:
    """A 2xx that crossed the CANCEL the 6xx caused is forwarded (§16.7 step 5) and is the
    final response; the 6xx never goes up."""
    ctx = context(forks=3)
    ctx.response(1, r(180, "b1"), 1.0)
    ctx.response(2, r(180, "b2"), 1.0)
    assert ctx.response(0, r(603, "b0"), 2.0) == [
        StopTimerC(0),
        CancelFork(1, None),
        CancelFork(2, None),
    ]
    assert ctx.response(1, r(200, "b1"), 3.0) == [StopTimerC(1), SendUpstream(r(200, "b1"))]
    assert ctx.final_sent
    assert ctx.response(2, r(487, "b2"), 4.0) == [StopTimerC(2)]
    assert ctx.best == r(603, "b0")


# ---------------------------------------------------------------------------- 401 / 407

WWW_A = ("WWW-Authenticate", 'Digest realm="a.example.com", nonce="n0", algorithm=MD5')
PROXY_B = ("Proxy-Authenticate", 'Digest realm="b.example.com", nonce="n1"')
WWW_C = ("WWW-Authenticate", 'Digest realm="c.example.com", nonce="n2"')
WWW_D = ("WWW-Authenticate", 'Digest realm="d.example.com", nonce="n3"')
PROXY_E = ("Proxy-Authenticate", 'Digest realm="e.example.com", nonce="n4"')


def test_the_401_sent_carries_every_challenge() -> None:
    """§16.7 step 7: the WWW-Authenticate and Proxy-Authenticate values of every other 401 and
    407 are added, unmodified, after the chosen response's own."""
    ctx = context(forks=4)
    ctx.response(0, make_response(INVITE, 401, "b0", (WWW_A,)), 1.0)
    ctx.response(1, make_response(INVITE, 407, "b1", (PROXY_B,)), 2.0)
    ctx.response(2, r(404, "b2"), 3.0)
    effects = ctx.response(3, make_response(INVITE, 401, "b3", (WWW_C, WWW_D)), 4.0)
    assert ctx.best == make_response(INVITE, 401, "b0", (WWW_A,))  # as received
    assert effects == [
        StopTimerC(3),
        SendUpstream(make_response(INVITE, 401, "b0", (WWW_A, PROXY_B, WWW_C, WWW_D))),
    ]
    sent = effects[1]
    assert isinstance(sent, SendUpstream)
    assert sent.response.to_bytes() == (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=b0\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b'WWW-Authenticate: Digest realm="a.example.com", nonce="n0", algorithm=MD5\r\n'
        b'Proxy-Authenticate: Digest realm="b.example.com", nonce="n1"\r\n'
        b'WWW-Authenticate: Digest realm="c.example.com", nonce="n2"\r\n'
        b'WWW-Authenticate: Digest realm="d.example.com", nonce="n3"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )


def test_two_407s_are_merged() -> None:
    ctx = context(forks=3)
    ctx.response(0, make_response(INVITE, 407, "b0", (PROXY_B,)), 1.0)
    ctx.fork_failed(1, 2.0)
    assert ctx.response(2, make_response(INVITE, 407, "b2", (PROXY_E,)), 3.0) == [
        StopTimerC(2),
        SendUpstream(make_response(INVITE, 407, "b0", (PROXY_B, PROXY_E))),
    ]


def test_challenges_go_before_content_length_when_the_chosen_response_has_none() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(401, "b0"), 1.0)
    assert ctx.response(1, make_response(INVITE, 407, "b1", (PROXY_B,)), 2.0) == [
        StopTimerC(1),
        SendUpstream(make_response(INVITE, 401, "b0", (PROXY_B,))),
    ]


def test_challenges_go_last_without_content_length() -> None:
    ctx = context(forks=2)
    ctx.response(0, make_response(INVITE, 401, "b0", content_length=False), 1.0)
    effects = ctx.response(1, make_response(INVITE, 401, "b1", (WWW_C,)), 2.0)
    assert effects == [
        StopTimerC(1),
        SendUpstream(make_response(INVITE, 401, "b0", (WWW_C,), content_length=False)),
    ]


def test_a_lone_401_and_a_chosen_non_challenge_are_sent_unchanged() -> None:
    ctx = context(forks=2)
    challenge = make_response(INVITE, 401, "b0", (WWW_A,))
    ctx.response(0, challenge, 1.0)
    effects = ctx.response(1, r(486, "b1"), 2.0)
    assert effects == [StopTimerC(1), SendUpstream(challenge)]
    sent = effects[1]
    assert isinstance(sent, SendUpstream)
    assert sent.response is challenge
    ctx = context(forks=2)
    ctx.response(0, make_response(INVITE, 407, "b0", (PROXY_B,)), 1.0)
    assert ctx.response(1, r(404, "b1"), 2.0) == [StopTimerC(1), SendUpstream(r(404, "b1"))]


# ---------------------------------------------------------------------------- sequential forking


def test_sequential_forking_adds_the_next_fork_before_passing_on_the_failure() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.add_fork(2.0) == (1, [StartTimerC(1, 182.0)])
    assert ctx.response(0, r(486, "b0"), 2.0) == [StopTimerC(0)]
    assert ctx.pending_forks == [1]
    assert not ctx.final_sent
    assert ctx.response(1, r(180, "b1"), 3.0) == [StartTimerC(1, 183.0), SendUpstream(r(180, "b1"))]
    assert ctx.response(1, r(404, "b1"), 4.0) == [StopTimerC(1), SendUpstream(r(404, "b1"))]


def test_a_fork_added_after_a_failure_while_another_is_pending() -> None:
    ctx = context(forks=2)
    assert ctx.fork_failed(0, 1.0) == [StopTimerC(0)]
    assert ctx.add_fork(2.0) == (2, [StartTimerC(2, 182.0)])
    assert ctx.response(1, r(486, "b1"), 3.0) == [StopTimerC(1)]
    assert ctx.response(2, r(200, "b2"), 4.0) == [StopTimerC(2), SendUpstream(r(200, "b2"))]


def test_no_fork_after_the_final_response() -> None:
    ctx = context(forks=1)
    assert ctx.response(0, r(486), 1.0) == [StopTimerC(0), SendUpstream(r(486))]
    assert not ctx.can_add_fork
    with pytest.raises(ValueError, match="final response"):
        ctx.add_fork(2.0)
    assert ctx.pending_forks == []


# ---------------------------------------------------------------------------- timer C (§16.8)


def test_timer_c_without_a_provisional_response_counts_as_408() -> None:
    ctx = context(forks=1)
    assert ctx.timer_c_fired(0, 180.0) == [TerminateFork(0), SendUpstream(TIMEOUT)]
    assert ctx.fork_state(0) is TERMINATED
    assert ctx.timer_c_fired(0, 180.0) == []
    assert ctx.response(0, r(180), 181.0) == []
    assert ctx.response(0, r(200), 182.0) == [SendUpstream(r(200))]


def test_timer_c_with_another_fork_pending_sends_nothing_up() -> None:
    ctx = context(forks=2)
    assert ctx.timer_c_fired(0, 180.0) == [TerminateFork(0)]
    assert ctx.best == TIMEOUT
    assert ctx.pending_forks == [1]


def test_timer_c_is_reset_by_provisional_responses_and_cancels_the_fork() -> None:
    ctx = context(forks=1)
    assert ctx.response(0, r(180), 5.0) == [StartTimerC(0, 185.0), SendUpstream(r(180))]
    assert ctx.response(0, r(183), 50.0) == [StartTimerC(0, 230.0), SendUpstream(r(183))]
    assert ctx.timer_c_fired(0, 230.0) == [CancelFork(0, None), StartTimerC(0, 410.0)]
    assert ctx.response(0, r(487), 231.0) == [StopTimerC(0), SendUpstream(r(487))]


def test_a_100_does_not_reset_timer_c_but_allows_the_cancel() -> None:
    ctx = context(forks=1)
    assert ctx.response(0, r(100), 5.0) == []
    assert ctx.fork_state(0) is PROCEEDING
    assert ctx.timer_c_fired(0, 180.0) == [CancelFork(0, None), StartTimerC(0, 360.0)]


def test_a_cancel_unanswered_for_a_whole_timer_c_gives_the_fork_up() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180), 5.0)
    assert ctx.timer_c_fired(0, 185.0) == [CancelFork(0, None), StartTimerC(0, 365.0)]
    assert ctx.timer_c_fired(0, 365.0) == [TerminateFork(0), SendUpstream(TIMEOUT)]


def test_timer_c_after_a_cancel_for_another_reason_gives_the_fork_up() -> None:
    ctx = context(forks=2)
    ctx.response(1, r(180, "b1"), 5.0)
    assert ctx.cancel(6.0) == [CancelFork(1, None)]
    assert ctx.response(1, r(180, "b1"), 7.0) == [
        StartTimerC(1, 187.0),
        SendUpstream(r(180, "b1")),
    ]  # a provisional response still resets timer C, and no second CANCEL goes
    assert ctx.response(0, r(487, "b0"), 8.0) == [StopTimerC(0)]
    assert ctx.timer_c_fired(1, 187.0) == [TerminateFork(1), SendUpstream(r(487, "b0"))]


def test_timer_c_stops_with_the_final_response() -> None:
    ctx = context(forks=2)
    assert ctx.response(0, r(404), 1.0) == [StopTimerC(0)]
    assert ctx.timer_c_fired(0, 180.0) == []


# ---------------------------------------------------------------------------- CANCEL (§16.10, §9.1)

REASON = 'Q.850;cause=16;text="Terminated"'


def test_cancel_goes_at_once_to_forks_with_a_provisional_response_and_later_to_the_rest() -> None:
    ctx = context(forks=3)
    ctx.response(0, r(180, "b0"), 1.0)
    ctx.response(2, r(486, "b2"), 1.0)
    assert ctx.cancel(2.0, REASON) == [CancelFork(0, REASON)]
    assert ctx.fork_state(1) is CALLING
    assert not ctx.can_add_fork
    with pytest.raises(ValueError, match="cancelled"):
        ctx.add_fork(2.0)
    assert ctx.response(1, r(100), 3.0) == [CancelFork(1, REASON)]
    assert ctx.response(1, r(100), 3.1) == []
    assert ctx.response(0, r(487, "b0"), 4.0) == [StopTimerC(0)]
    # 487 beats 486; of the two 487s the first received.
    assert ctx.response(1, r(487, "b1"), 5.0) == [StopTimerC(1), SendUpstream(r(487, "b0"))]


def test_a_deferred_cancel_goes_with_the_first_provisional_response() -> None:
    ctx = context(forks=1)
    assert ctx.cancel(1.0) == []
    assert ctx.response(0, r(180), 2.0) == [
        StartTimerC(0, 182.0),
        SendUpstream(r(180)),
        CancelFork(0, None),
    ]
    assert ctx.response(0, r(183), 3.0) == [StartTimerC(0, 183.0), SendUpstream(r(183))]


def test_no_deferred_cancel_when_the_final_response_comes_first() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.cancel(2.0) == [CancelFork(0, None)]
    assert ctx.response(1, r(486, "b1"), 3.0) == [StopTimerC(1)]
    assert ctx.response(0, r(487, "b0"), 4.0) == [StopTimerC(0), SendUpstream(r(487, "b0"))]


def test_a_2xx_crossing_the_cancel_goes_up() -> None:
    ctx = context(forks=1)
    assert ctx.cancel(1.0) == []
    assert ctx.response(0, r(200), 2.0) == [StopTimerC(0), SendUpstream(r(200))]


def test_a_cancelled_fork_without_provisional_response_times_out() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.cancel(2.0) == [CancelFork(0, None)]
    assert ctx.response(0, r(487, "b0"), 3.0) == [StopTimerC(0)]
    assert ctx.timer_c_fired(1, 180.0) == [TerminateFork(1), SendUpstream(r(487, "b0"))]


def test_cancel_twice_does_nothing() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180), 1.0)
    assert ctx.cancel(2.0) == [CancelFork(0, None)]
    assert ctx.cancel(3.0) == []
    assert ctx.upstream_gone(3.0) == []


def test_cancel_without_forks_answers_487() -> None:
    ctx = ResponseContext(INVITE)
    assert ctx.cancel(1.0) == [SendUpstream(TERMINATED_487)]
    assert ctx.final_sent


def test_cancel_after_the_final_response_does_nothing() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(486), 1.0)
    assert ctx.cancel(2.0) == []


def test_upstream_gone_cancels_like_cancel() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.upstream_gone(2.0) == [CancelFork(0, None)]
    assert ctx.cancel(2.5) == []
    assert ctx.response(1, r(180, "b1"), 3.0) == [
        StartTimerC(1, 183.0),
        SendUpstream(r(180, "b1")),
        CancelFork(1, None),
    ]
    assert ctx.response(0, r(487, "b0"), 4.0) == [StopTimerC(0)]
    assert ctx.response(1, r(487, "b1"), 4.0) == [StopTimerC(1), SendUpstream(r(487, "b0"))]


def test_a_fork_cancelled_by_timer_c_gets_no_second_cancel() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180), 1.0)
    ctx.timer_c_fired(0, 181.0)
    assert ctx.cancel(182.0) == []


# ---------------------------------------------------------------------------- non-INVITE


def test_non_invite_provisional_responses_are_absorbed() -> None:
    ctx = context(OPTIONS, forks=1)
    assert ctx.response(0, o(100), 1.0) == []
    assert ctx.response(0, o(180), 2.0) == []  # RFC 4320 §4.1
    assert ctx.fork_state(0) is PROCEEDING


def test_non_invite_2xx_goes_up_once_and_ends_the_other_forks() -> None:
    ctx = context(OPTIONS, forks=3)
    ctx.response(2, o(404, "b2"), 1.0)
    assert ctx.response(0, o(200, "b0"), 2.0) == [SendUpstream(o(200, "b0")), TerminateFork(1)]
    assert ctx.pending_forks == []
    assert ctx.response(1, o(200, "b1"), 3.0) == []
    assert ctx.response(0, o(200, "b0"), 3.0) == []


def test_non_invite_failures_choose_the_best() -> None:
    ctx = context(OPTIONS, forks=2)
    assert ctx.response(0, o(404, "b0"), 1.0) == []
    assert ctx.fork_failed(1, 2.0) == [SendUpstream(o(404, "b0"))]


def test_non_invite_cancel_terminates_the_forks_as_487() -> None:
    ctx = context(OPTIONS, forks=2)
    ctx.response(0, o(100), 1.0)
    assert ctx.cancel(2.0) == [TerminateFork(0), TerminateFork(1), SendUpstream(O_TERMINATED_487)]
    assert ctx.fork_state(0) is TERMINATED
    assert ctx.response(0, o(200), 3.0) == []


def test_non_invite_6xx_terminates_the_other_forks_and_wins() -> None:
    ctx = context(OPTIONS, forks=3)
    ctx.response(0, o(404, "b0"), 1.0)
    assert ctx.response(1, o(603, "b1"), 2.0) == [TerminateFork(2), SendUpstream(o(603, "b1"))]


# ---------------------------------------------------------------------------- abandoned forks


def test_abandoning_the_pending_forks_sends_the_best() -> None:
    ctx = context(forks=3)
    ctx.response(0, r(486, "b0"), 1.0)
    ctx.response(1, r(180, "b1"), 1.0)
    assert ctx.mark_pending_forks_as_abandoned() == [
        StopTimerC(1),
        StopTimerC(2),
        SendUpstream(r(486, "b0")),
    ]
    assert ctx.pending_forks == []
    assert ctx.fork_state(1) is TERMINATED
    assert ctx.response(1, r(404, "b1"), 2.0) == []
    assert ctx.timer_c_fired(2, 181.0) == []
    # A 2xx to an INVITE still goes up (§16.7 step 5).
    assert ctx.response(2, r(200, "b2"), 3.0) == [SendUpstream(r(200, "b2"))]


def test_abandoning_without_a_response_leaves_the_answer_to_the_caller() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.mark_pending_forks_as_abandoned() == [StopTimerC(0)]
    assert not ctx.final_sent
    assert ctx.response(0, r(486, "b0"), 2.0) == []
    assert ctx.best is None
    assert ctx.add_fork(3.0) == (1, [StartTimerC(1, 183.0)])
    assert ctx.response(1, r(404, "b1"), 4.0) == [StopTimerC(1), SendUpstream(r(404, "b1"))]


def test_abandoning_then_the_callers_own_response() -> None:
    ctx = context(forks=1)
    assert ctx.mark_pending_forks_as_abandoned() == [StopTimerC(0)]
    assert ctx.mark_pending_forks_as_abandoned() == []
    assert ctx.send_upstream(r(480)) == [SendUpstream(r(480))]
    assert ctx.final_sent


def test_abandoning_then_cancel_answers_487() -> None:
    ctx = context(forks=1)
    ctx.mark_pending_forks_as_abandoned()
    assert ctx.cancel(1.0) == [SendUpstream(TERMINATED_487)]


# ---------------------------------------------------------------------------- the caller's own


def test_the_callers_final_response_cancels_the_pending_forks() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.send_upstream(r(181, "me")) == [SendUpstream(r(181, "me"))]
    assert ctx.send_upstream(r(480, "me")) == [SendUpstream(r(480, "me")), CancelFork(0, None)]
    assert ctx.final_sent
    assert ctx.response(1, r(100), 2.0) == [CancelFork(1, None)]
    assert ctx.response(0, r(487, "b0"), 3.0) == [StopTimerC(0)]
    # A 2xx that crossed the CANCEL still goes up.
    assert ctx.response(1, r(200, "b1"), 4.0) == [StopTimerC(1), SendUpstream(r(200, "b1"))]
    with pytest.raises(ValueError, match="a 480 final response was sent"):
        ctx.send_upstream(r(180, "me"))
    with pytest.raises(ValueError, match="cannot send a 486"):
        ctx.send_upstream(r(486, "me"))


def test_the_callers_2xx_cancels_with_the_completed_elsewhere_reason() -> None:
    ctx = context(forks=1)
    ctx.response(0, r(180, "b0"), 1.0)
    assert ctx.send_upstream(r(200, "me")) == [
        SendUpstream(r(200, "me")),
        CancelFork(0, COMPLETED_ELSEWHERE),
    ]
    assert ctx.send_upstream(r(200, "me")) == [SendUpstream(r(200, "me"))]
    with pytest.raises(ValueError):
        ctx.send_upstream(r(603, "me"))


def test_the_callers_responses_to_a_non_invite() -> None:
    ctx = context(OPTIONS, forks=1)
    with pytest.raises(ValueError, match="RFC 4320"):
        ctx.send_upstream(o(180, "me"))
    assert ctx.send_upstream(o(100)) == [SendUpstream(o(100))]
    assert ctx.send_upstream(o(200, "me")) == [SendUpstream(o(200, "me")), TerminateFork(0)]
    with pytest.raises(ValueError):
        ctx.send_upstream(o(200, "me"))


# ---------------------------------------------------------------------------- errors


def test_an_unknown_fork_raises() -> None:
    ctx = context(forks=1)
    with pytest.raises(ValueError, match="no fork 1"):
        ctx.response(1, r(180), 1.0)
    with pytest.raises(ValueError, match="no fork -1"):
        ctx.fork_failed(-1, 1.0)
    with pytest.raises(ValueError, match="no fork 2"):
        ctx.timer_c_fired(2, 1.0)
    with pytest.raises(ValueError, match="no fork 0"):
        ResponseContext(INVITE).fork_state(0)


# ---------------------------------------------------------------------------- stateful

MODEL_TIMER_C = 30.0
STATUS_CODES = [100, 180, 183, 200, 401, 404, 407, 408, 486, 487, 503, 603]
STATUSES = st.sampled_from(STATUS_CODES)
FORKS = st.integers(min_value=0, max_value=3)
DELAYS = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
CHALLENGES = {401: (WWW_A,), 407: (PROXY_B,)}


class ResponseContextModel(RuleBasedStateMachine):
    """Random inputs against a simulated clock that fires the timers C the effects start.

    Checked after every input: timer C runs exactly for the pending forks of an INVITE, starts
    at ``now + timer C`` and is stopped only while running; a fork is CANCELled at most once and
    only after a provisional response (§9.1), terminated at most once; no provisional response
    goes up after a final one; at most one non-2xx final goes up, and never after another
    final; a non-INVITE gets one final at most; once no fork is pending a final has gone up
    (unless every fork was abandoned with nothing kept); a finished fork ignores all but an
    INVITE's 2xx. At the end every timer is run out: then no INVITE fork is left pending.
    """

    deliver = False

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.timers: dict[int, float] = {}
        self.forks = 0
        self.had_provisional: set[int] = set()
        self.cancelled_forks: set[int] = set()
        self.terminated_forks: set[int] = set()
        self.finals: list[int] = []
        self.abandoned = False
        self.cancelled = False

    @initialize(method=st.sampled_from(["INVITE", "OPTIONS"]), forks=st.integers(1, 3))
    def create(self, method: str, forks: int) -> None:
        self.request = make_request(method)
        self.invite = method == "INVITE"
        ctx = ResponseContext(self.request, timer_c=MODEL_TIMER_C, deliver=self.deliver)
        self.ctx = cast(ResponseContext, ForwardingUser(ctx)) if self.deliver else ctx
        self.responses = {
            status: make_response(self.request, status, "b", CHALLENGES.get(status, ()))
            for status in STATUS_CODES
        }
        for _ in range(forks):
            self.add_fork()

    def check(self, effects: list[Effect]) -> None:
        ctx = self.ctx
        for effect in effects:
            if isinstance(effect, StartTimerC):
                assert self.invite
                assert effect.at == self.now + MODEL_TIMER_C
                self.timers[effect.fork_id] = effect.at
            elif isinstance(effect, StopTimerC):
                assert effect.fork_id in self.timers, "stopped a timer C that is not running"
                del self.timers[effect.fork_id]
            elif isinstance(effect, CancelFork):
                assert self.invite
                assert effect.fork_id in self.had_provisional, "CANCEL before a provisional (§9.1)"
                assert effect.fork_id not in self.cancelled_forks, "CANCELled twice"
                self.cancelled_forks.add(effect.fork_id)
            elif isinstance(effect, TerminateFork):
                assert effect.fork_id not in self.terminated_forks
                self.terminated_forks.add(effect.fork_id)
            else:
                status = effect.response.status
                if status < 200:
                    assert not self.finals, "provisional response after a final one"
                elif status >= 300:
                    assert not self.finals, "non-2xx final response after a final one"
                else:
                    assert self.invite or not self.finals, "second final to a non-INVITE"
                if status >= 200:
                    self.finals.append(status)
        for fork_id in self.terminated_forks:
            assert ctx.fork_state(fork_id) is TERMINATED
        for fork_id in self.cancelled_forks:
            assert ctx.fork_state(fork_id) is not CALLING

    def fork(self, index: int) -> int:
        """Mostly a pending fork (finished ones ignore most inputs), now and then any fork."""
        pending = self.ctx.pending_forks
        if pending and index < 3:
            return pending[index % len(pending)]
        return index % self.forks

    # ---- rules

    @precondition(lambda self: self.forks < 4)
    @rule()
    def add_fork(self) -> None:
        if not self.ctx.can_add_fork:
            with pytest.raises(ValueError):
                self.ctx.add_fork(self.now)
            return
        fork_id, effects = self.ctx.add_fork(self.now)
        assert fork_id == self.forks
        self.forks += 1
        assert effects == ([StartTimerC(fork_id, self.now + MODEL_TIMER_C)] if self.invite else [])
        self.check(effects)

    @precondition(lambda self: self.forks > 0)
    @rule(index=FORKS, status=st.sampled_from([100, 180, 183]))
    def provisional(self, index: int, status: int) -> None:
        self.respond(index, status)

    @precondition(lambda self: self.forks > 0)
    @rule(index=FORKS, status=STATUSES | st.just(0))
    def respond(self, index: int, status: int) -> None:
        """A response on a fork; status 0: the fork times out or fails on transport."""
        fork_id = self.fork(index)
        if status == 0:
            self.check(self.ctx.fork_failed(fork_id, self.now))
            return
        before = self.ctx.fork_state(fork_id)
        if status < 200 and before is not TERMINATED:
            self.had_provisional.add(fork_id)
        response = self.responses[status]
        effects = self.ctx.response(fork_id, response, self.now)
        success = 200 <= status < 300
        if before is TERMINATED and not (self.invite and success):
            assert effects == [], "a finished fork took a response"
        if self.invite and success:
            assert SendUpstream(response) in effects
        self.check(effects)

    @rule(delay=DELAYS)
    def wait(self, delay: float) -> None:
        until = self.now + delay
        while self.timers and min(self.timers.values()) <= until:
            self.fire_earliest()
        self.now = max(self.now, until)

    @precondition(lambda self: bool(self.timers))
    @rule()
    def fire_earliest(self) -> None:
        fork_id, at = min(self.timers.items(), key=lambda item: item[1])
        del self.timers[fork_id]
        self.now = max(self.now, at)
        effects = self.ctx.timer_c_fired(fork_id, self.now)
        assert effects, "a running timer C fired and did nothing"
        self.check(effects)

    @precondition(lambda self: self.forks > 0)
    @rule(index=FORKS)
    def stray_timer_c(self, index: int) -> None:
        fork_id = self.fork(index)
        if fork_id in self.timers:
            return
        state = self.ctx.fork_state(fork_id)
        assert self.ctx.timer_c_fired(fork_id, self.now) == []
        assert self.ctx.fork_state(fork_id) is state

    @rule(action=st.sampled_from(["cancel", "upstream gone", "abandon", "send"]), status=STATUSES)
    def upstream(self, action: str, status: int) -> None:
        """What comes from upstream or from the caller (a response of its own with ``status``);
        one rule, so that these inputs, which mostly end the context, do not crowd out the
        forks' responses."""
        ctx = self.ctx
        if action == "abandon":
            if ctx.pending_forks:
                self.abandoned = True
            self.check(ctx.mark_pending_forks_as_abandoned())
        elif action == "send":
            self.send_upstream(status)
        else:
            effects = (
                ctx.upstream_gone(self.now) if action == "upstream gone" else ctx.cancel(self.now)
            )
            if self.cancelled:
                assert effects == []
            self.cancelled = True
            self.check(effects)

    def send_upstream(self, status: int) -> None:
        ctx = self.ctx
        success = 200 <= status < 300
        if ctx.final_sent:
            allowed = self.invite and success
        else:
            allowed = self.invite or status == 100 or status >= 200
        response = self.responses[status]
        if not allowed:
            with pytest.raises(ValueError):
                ctx.send_upstream(response)
            return
        effects = ctx.send_upstream(response)
        assert effects[0] == SendUpstream(response)
        self.check(effects)

    # ---- invariants

    @invariant()
    def timer_c_runs_for_the_pending_invite_forks(self) -> None:
        expected = set(self.ctx.pending_forks) if self.invite else set()
        assert set(self.timers) == expected

    @invariant()
    def one_final_once_no_fork_is_pending(self) -> None:
        ctx = self.ctx
        assert ctx.final_sent == bool(self.finals)
        if ctx.final_sent:
            assert not ctx.can_add_fork
        if not ctx.pending_forks and (
            self.cancelled or ctx.best is not None or (self.forks and not self.abandoned)
        ):
            assert ctx.final_sent

    @override
    def teardown(self) -> None:
        """Run every timer C out: no INVITE fork is left pending. The forks of a non-INVITE,
        which have no timer C, are then failed, as their client transactions' timer F would."""
        if not hasattr(self, "ctx"):
            return
        while self.timers:
            self.fire_earliest()
        if self.invite:
            assert self.ctx.pending_forks == []
        for fork_id in self.ctx.pending_forks:
            self.check(self.ctx.fork_failed(fork_id, self.now))
        assert self.ctx.pending_forks == []
        self.one_final_once_no_fork_is_pending()


ResponseContextModel.TestCase.settings = settings(stateful_step_count=30, max_examples=300)
TestResponseContext = ResponseContextModel.TestCase


_EFFECT_METHODS = frozenset(
    {
        "response",
        "fork_failed",
        "timer_c_fired",
        "cancel",
        "upstream_gone",
        "mark_pending_forks_as_abandoned",
        "send_upstream",
    }
)


class ForwardingUser:
    """A deliver-mode context driven by a user that forwards every response it is given with
    ``aggregate`` and settles after each input: the sproutlet proxy with the default
    SproutletTsx. It must behave exactly as the proxy mode, effect for effect."""

    def __init__(self, ctx: ResponseContext) -> None:
        self.ctx = ctx

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.ctx, name)
        if name not in _EFFECT_METHODS:
            return attr
        method = cast(Callable[..., list[Effect]], attr)
        return lambda *args: [*self.forward(method(*args)), *self.ctx.settle()]

    def forward(self, effects: list[Effect]) -> list[Effect]:
        out: list[Effect] = []
        for effect in effects:
            if isinstance(effect, Deliver):
                out += self.forward(self.ctx.aggregate(effect.response))
            else:
                out.append(effect)
        return out


class DeliverModeModel(ResponseContextModel):
    deliver = True


DeliverModeModel.TestCase.settings = settings(stateful_step_count=30, max_examples=300)
TestDeliverMode = DeliverModeModel.TestCase


def test_the_model_effect_kinds_are_exhaustive() -> None:
    """The model's ``else`` branch handles SendUpstream; Deliver never reaches it (proxy mode
    has none, and ForwardingUser turns them into what the user sends): no other kind exists."""
    assert set(get_args(Effect)) == {
        Deliver,
        SendUpstream,
        CancelFork,
        TerminateFork,
        StartTimerC,
        StopTimerC,
    }


# ---------------------------------------------------------------------------- deliver mode


def delivering(request: Request = INVITE, forks: int = 0) -> ResponseContext:
    ctx = ResponseContext(request, timer_c=TIMER_C, deliver=True)
    for _ in range(forks):
        ctx.add_fork(0.0)
    return ctx


def test_deliver_mode_hands_responses_over_and_sends_nothing_by_itself() -> None:
    ctx = delivering(forks=2)
    assert ctx.delivering
    assert ctx.response(0, r(100), 1.0) == []  # absorbed: hop by hop
    assert ctx.response(0, r(180), 1.0) == [StartTimerC(0, 1.0 + TIMER_C), Deliver(0, r(180))]
    assert ctx.response(0, r(486), 2.0) == [StopTimerC(0), Deliver(0, r(486))]
    assert ctx.fork_failed(1, 3.0) == [StopTimerC(1), Deliver(1, TIMEOUT)]
    assert ctx.pending_forks == []
    assert not ctx.final_sent  # nothing forwarded: the user decides
    assert ctx.settle() == []


def test_a_user_that_swallows_a_failure_can_fork_again_before_settling() -> None:
    """Call diversion: the 486 is not passed on, a new fork is tried instead."""
    ctx = delivering(forks=1)
    assert ctx.response(0, r(486), 1.0) == [StopTimerC(0), Deliver(0, r(486))]
    assert ctx.add_fork(1.0) == (1, [StartTimerC(1, 1.0 + TIMER_C)])
    assert ctx.settle() == []
    effects = ctx.response(1, r(404, "b1"), 2.0)
    assert effects == [StopTimerC(1), Deliver(1, r(404, "b1"))]
    assert ctx.aggregate(r(404, "b1")) == []  # kept
    assert ctx.settle() == [SendUpstream(r(404, "b1"))]
    assert ctx.settle() == []


def test_aggregate_keeps_failures_until_no_fork_is_pending() -> None:
    ctx = delivering(forks=2)
    assert ctx.aggregate(r(486)) == []
    assert ctx.settle() == []  # fork 0 and 1 pending
    ctx.mark_pending_forks_as_abandoned()
    assert ctx.settle() == [SendUpstream(r(486))]
    assert ctx.aggregate(r(404)) == []  # after the final: dropped
    assert ctx.aggregate(r(200)) == [SendUpstream(r(200))]  # an INVITE's 2xx still goes


def test_aggregate_of_a_non_invite_provisional_raises() -> None:
    ctx = delivering(OPTIONS)
    assert ctx.aggregate(o(100)) == [SendUpstream(o(100))]
    with pytest.raises(ValueError, match="RFC 4320"):
        ctx.aggregate(o(180))


def test_stop_delivering_settles_and_forwards_from_then_on() -> None:
    ctx = delivering(forks=2)
    ctx.response(0, r(180), 1.0)
    assert ctx.response(0, r(486), 2.0) == [StopTimerC(0), Deliver(0, r(486))]
    assert ctx.aggregate(r(486)) == []
    assert ctx.stop_delivering() == []  # fork 1 pending
    assert not ctx.delivering
    assert ctx.response(1, r(603, "b1"), 3.0) == [StopTimerC(1), SendUpstream(r(603, "b1"))]


def test_deliver_mode_cancel_of_a_non_invite_delivers_487s() -> None:
    ctx = delivering(OPTIONS, forks=1)
    assert ctx.cancel(1.0) == [TerminateFork(0), Deliver(0, O_TERMINATED_487)]
    assert ctx.settle() == [SendUpstream(O_TERMINATED_487)]


def test_cancel_one_fork_and_go_on_forking() -> None:
    ctx = context(forks=2)
    ctx.response(0, r(180), 1.0)
    assert ctx.cancel_fork(0, "SIP;cause=480") == [CancelFork(0, "SIP;cause=480")]
    assert ctx.cancel_fork(0) == []  # once
    assert ctx.cancel_fork(1) == []  # deferred until a provisional (§9.1)
    assert ctx.response(1, r(100, "b1"), 1.5) == [CancelFork(1, None)]
    assert ctx.can_add_fork
    assert ctx.add_fork(2.0)[0] == 2
    assert ctx.response(0, r(487), 3.0) == [StopTimerC(0)]
    assert ctx.cancel_pending_forks() == []  # fork 1's CANCEL went; fork 2 waits
    assert ctx.response(2, r(180, "b2"), 3.5)[-1] == CancelFork(2, None)


def test_cancel_one_non_invite_fork_ends_it_as_487() -> None:
    ctx = context(OPTIONS, forks=2)
    assert ctx.cancel_fork(1) == [TerminateFork(1)]
    assert ctx.fork_state(1) is TERMINATED
    assert ctx.response(0, o(200), 1.0) == [SendUpstream(o(200))]
