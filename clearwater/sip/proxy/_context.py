"""The response context of a stateful forking proxy, sans-IO: RFC 3261 §16.7, §16.8, §16.10.

One :class:`ResponseContext` stands for one proxied server transaction (the request received
upstream) and tracks its forks, the client transactions sent downstream. Like the transaction
machines it never touches a socket or a clock: each input takes ``now`` and returns a list of
effects for the caller to carry out in order.

- :class:`SendUpstream`: send this response on the server transaction (§16.7 step 9).
- :class:`CancelFork`: send a CANCEL for this fork (§16.7 step 10, §9.1), with this Reason header
  value (RFC 3326) or none.
- :class:`TerminateFork`: end this fork's client transaction without sending anything.
- :class:`StartTimerC` / :class:`StopTimerC`: arm (or re-arm: starting a running timer replaces
  it) or disarm timer C of an INVITE fork (§16.6 step 11, §16.8); deadlines are absolute.
- :class:`Deliver`: in *deliver mode* only, hand this response of this fork to the caller's
  transaction user (a sproutlet), which decides what goes upstream.

A context in the default *proxy mode* forwards and aggregates the responses itself, as below.
In deliver mode (``deliver=True``, the sproutlet proxy, spec §2.6) every response the proxy
mode would forward or keep is a :class:`Deliver` effect instead; the caller passes on what it
chooses with :meth:`ResponseContext.aggregate` (Clearwater's ``aggregate_response``) and calls
:meth:`ResponseContext.settle` once its transaction user is idle, which sends the best response
when no fork is pending. :meth:`ResponseContext.stop_delivering` returns to proxy mode (after
the caller cancelled, when no callback may run any more).

Response processing (§16.7) with Project Clearwater's choice of the best response:

- a 100 is absorbed (it is hop by hop, §16.7 step 5); 101-199 go upstream at once for an INVITE
  (step 5) and reset the fork's timer C (step 2); a non-INVITE fork's are absorbed, since a
  non-INVITE request gets no provisional response but 100 (RFC 4320 §4.1);
- every 2xx goes upstream at once, also after the first for an INVITE (step 5); the first final
  response that goes upstream cancels every other pending fork (step 10), an INVITE's 2xx with
  Reason ``SIP;cause=200;text="Call completed elsewhere"`` (RFC 3326);
- 3xx-6xx are kept; a 6xx cancels the other forks and no fork may be added any more (step 5);
  once no fork is pending the best is sent (step 6): a 6xx if there is one (a MUST), otherwise by
  Clearwater's ``compare_sip_sc``: 487 beats everything (the originator cancelled), 408 loses to
  everything, otherwise the lowest code wins; a tie goes to the response received first;
- a 401 or 407 that is sent carries the WWW-Authenticate and Proxy-Authenticate lines of every
  other 401 and 407 received (step 7);
- a fork that times out or fails on transport counts as a 408 (Clearwater), built from the
  request received upstream, as do the forks §16.8 gives up.

Forks are cancelled (on a 2xx, a 6xx, the caller's own final response, or the CANCEL received
upstream, §16.10) as RFC 3261 §9.1 and Clearwater allow: an INVITE fork gets its CANCEL once it
has had a provisional response (and none if its final response comes first); a non-INVITE fork is
never CANCELled but terminated at once, which counts as a 487 (Clearwater terminates its client
transaction with 487).

Timer C (§16.8): when it fires on a fork that has had a provisional response the fork is
CANCELled and timer C restarts; when it fires on a fork that has had none, or whose CANCEL has
had no final response within a whole timer C, the fork is terminated and counts as a 408. So no
fork of an INVITE outlives its last provisional response by more than twice timer C.

Per-fork inputs follow the ``TRANSITIONS`` table, ``{(fork state, input): handler}``: a pair it
does not hold is ignored (a 100 after a provisional, any response on a finished fork but an
INVITE's 2xx), and so is a timer C that is not running. Using the context wrongly (an unknown
fork, a fork added after the final response, a response the caller may no longer send) raises
:class:`ValueError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Callable, ClassVar, Optional, Union

import attrs

from clearwater.sip import Headers, Request, Response
from clearwater.sip.headers import header_key
from clearwater.sip.transaction import build_response

__all__ = [
    "COMPLETED_ELSEWHERE",
    "CancelFork",
    "Deliver",
    "Effect",
    "ForkInput",
    "ForkState",
    "ResponseContext",
    "SendUpstream",
    "StartTimerC",
    "StopTimerC",
    "TerminateFork",
]

#: The Reason header value (RFC 3326) of the CANCELs an INVITE's 2xx causes (RFC 3261 §16.7
#: step 10), so that the other phones do not log a missed call.
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'

_CHALLENGES = ("www-authenticate", "proxy-authenticate")
_NO_PROVISIONAL = "RFC 4320 §4.1: no provisional response but 100 to a non-INVITE request"


# --------------------------------------------------------------------------- effects


@attrs.frozen
class SendUpstream:
    """Send ``response`` on the server transaction."""

    response: Response


@attrs.frozen
class CancelFork:
    """Send a CANCEL for fork ``fork_id``, with ``reason`` as its Reason header (None: none)."""

    fork_id: int
    reason: Optional[str]


@attrs.frozen
class TerminateFork:
    """End fork ``fork_id``'s client transaction without sending anything."""

    fork_id: int


@attrs.frozen
class StartTimerC:
    """Make timer C of fork ``fork_id`` fire at ``at``; replaces the timer if it runs."""

    fork_id: int
    at: float


@attrs.frozen
class StopTimerC:
    """Stop timer C of fork ``fork_id``."""

    fork_id: int


@attrs.frozen
class Deliver:
    """Deliver mode: ``response`` came on fork ``fork_id`` (a synthetic 408 or 487 for a fork
    that failed or was ended); the caller's transaction user decides what to do with it."""

    fork_id: int
    response: Response


Effect = Union[SendUpstream, CancelFork, TerminateFork, StartTimerC, StopTimerC, Deliver]


# --------------------------------------------------------------------------- forks


class ForkState(enum.Enum):
    """Where a fork stands, as the proxy sees its client transaction."""

    CALLING = "Calling"  # no response yet
    PROCEEDING = "Proceeding"  # a provisional response (100 too) came
    TERMINATED = "Terminated"  # final response, failure, termination or abandonment


class ForkInput(enum.Enum):
    """What can happen to a fork (the ``TRANSITIONS`` inputs)."""

    TRYING = "100"
    PROVISIONAL = "101-199"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    FAILED = "timeout or transport error"
    TIMER_C = "Timer C"


class _Cancel(enum.Enum):
    NONE = "none"
    PENDING = "pending"  # an INVITE fork to CANCEL once it has had a provisional response
    SENT = "sent"


class _Fork:
    __slots__ = ("cancel", "cancel_reason", "fork_id", "state", "timer_c")

    def __init__(self, fork_id: int) -> None:
        self.fork_id = fork_id
        self.state = ForkState.CALLING
        self.timer_c: Optional[float] = None  # deadline while timer C runs
        self.cancel = _Cancel.NONE
        self.cancel_reason: Optional[str] = None


#: A transition handler: ``handler(context, fork, response or None, now) -> effects``.
Handler = Callable[..., list[Effect]]


def _rank(response: Response) -> tuple[int, int]:
    """Clearwater's ``compare_sip_sc`` as a sort key: 487 first, 408 last, else by code."""
    status = response.status
    if status == 487:
        return (0, 0)
    if status == 408:
        return (2, 0)
    return (1, status)


# --------------------------------------------------------------------------- the context


class ResponseContext:
    """The response context of one proxied request (RFC 3261 §16.7).

    ``request`` is the request as received upstream: the synthetic 408 and 487 responses are
    built from it. ``timer_c`` is the duration of timer C in seconds (§16.6 step 11).
    ``deliver`` chooses deliver mode (see the module docstring).

    Sequential forking: once no fork is pending the best response goes upstream, so a caller
    that tries targets one after the other adds the next fork before it passes on the final
    response of the previous one.
    """

    __slots__ = (
        "_cancelled",
        "_deliver",
        "_final_status",
        "_finals",
        "_forks",
        "_got_6xx",
        "_invite",
        "_request",
        "_timer_c",
    )

    def __init__(self, request: Request, *, timer_c: float = 180.0, deliver: bool = False) -> None:
        self._request = request
        self._deliver = deliver
        self._invite = request.method == "INVITE"
        self._timer_c = timer_c
        self._forks: list[_Fork] = []
        self._finals: list[Response] = []  # 3xx-6xx kept for the choice, in order of arrival
        self._final_status: Optional[int] = None  # of the first final response sent upstream
        self._cancelled = False
        self._got_6xx = False

    # ---- state queries

    @property
    def is_invite(self) -> bool:
        return self._invite

    @property
    def delivering(self) -> bool:
        """Whether the context is in deliver mode."""
        return self._deliver

    @property
    def final_sent(self) -> bool:
        """Whether a final response has gone upstream."""
        return self._final_status is not None

    @property
    def pending_forks(self) -> list[int]:
        """The forks not yet terminated, in order."""
        return [f.fork_id for f in self._forks if f.state is not ForkState.TERMINATED]

    @property
    def best(self) -> Optional[Response]:
        """The best 3xx-6xx response kept so far (as received: no challenges merged)."""
        finals = self._finals
        if not finals:
            return None
        sixes = [r for r in finals if r.status >= 600]
        return min(sixes or finals, key=_rank)

    @property
    def can_add_fork(self) -> bool:
        """False once a final response went upstream, a 6xx came (§16.7 step 5) or the request
        was cancelled (§16.10)."""
        return self._final_status is None and not self._got_6xx and not self._cancelled

    def fork_state(self, fork_id: int) -> ForkState:
        return self._fork(fork_id).state

    # ---- inputs

    def add_fork(self, now: float) -> tuple[int, list[Effect]]:
        """A new fork was sent downstream: its id (0, 1, 2...) and effects (timer C for an
        INVITE, §16.6 step 11). Raises ValueError unless :attr:`can_add_fork`."""
        if self._final_status is not None:
            raise ValueError("cannot add a fork: a final response was sent upstream")
        if self._got_6xx:
            raise ValueError("cannot add a fork after a 6xx response (RFC 3261 §16.7 step 5)")
        if self._cancelled:
            raise ValueError("cannot add a fork: the request was cancelled")
        fork = _Fork(len(self._forks))
        self._forks.append(fork)
        effects = self._start_timer_c(fork, now) if self._invite else []
        return fork.fork_id, effects

    def response(self, fork_id: int, response: Response, now: float) -> list[Effect]:
        """A response arrived on fork ``fork_id`` (its client transaction passed it up)."""
        status = response.status
        if status == 100:
            event = ForkInput.TRYING
        elif status < 200:
            event = ForkInput.PROVISIONAL
        elif status < 300:
            event = ForkInput.SUCCESS
        else:
            event = ForkInput.FAILURE
        return self._input(self._fork(fork_id), event, response, now)

    def fork_failed(self, fork_id: int, now: float) -> list[Effect]:
        """Fork ``fork_id`` timed out or failed on transport: it counts as a 408."""
        return self._input(self._fork(fork_id), ForkInput.FAILED, None, now)

    def timer_c_fired(self, fork_id: int, now: float) -> list[Effect]:
        """Timer C of fork ``fork_id`` fired (§16.8); ignored unless it is running."""
        fork = self._fork(fork_id)
        if fork.timer_c is None:
            return []
        fork.timer_c = None
        return self._input(fork, ForkInput.TIMER_C, None, now)

    def cancel(self, now: float, reason: Optional[str] = None) -> list[Effect]:
        """The CANCEL received upstream (§16.10): cancel every pending fork, an INVITE fork's
        CANCEL carrying ``reason`` (the Reason header of the CANCEL received, RFC 3326). The
        final response then goes up as usual, 487 beating all but a 6xx; with no fork pending
        and no response kept it is a 487. A second call does nothing."""
        if self._cancelled:
            return []
        self._cancelled = True
        return [*self._cancel_pending(reason), *self._auto_settle()]

    def upstream_gone(self, now: float) -> list[Effect]:
        """The upstream transport failed: as :meth:`cancel` with no Reason. The final response
        still goes to the server transaction, which stays until its own timers end it (RFC 6026
        §7.1)."""
        return self.cancel(now)

    def cancel_fork(self, fork_id: int, reason: Optional[str] = None) -> list[Effect]:
        """Cancel one fork, as the caller's choice (Clearwater's ``cancel_fork``): an INVITE
        fork is CANCELled once it has had a provisional response, with ``reason`` as the
        Reason header; another is ended as a 487. A finished fork is left alone. Unlike
        :meth:`cancel`, the request goes on: forks may still be added."""
        effects = self._cancel_fork(self._fork(fork_id), reason)
        return [*effects, *self._auto_settle()]

    def cancel_pending_forks(self, reason: Optional[str] = None) -> list[Effect]:
        """:meth:`cancel_fork` for every pending fork."""
        return [*self._cancel_pending(reason), *self._auto_settle()]

    def mark_pending_forks_as_abandoned(self) -> list[Effect]:
        """Forget the pending forks (Clearwater): their client transactions run on, but nothing
        but an INVITE's 2xx of theirs counts any more. If a response was kept it is then sent;
        if none was, the caller answers with :meth:`send_upstream` or adds forks."""
        effects: list[Effect] = []
        for fork in self._forks:
            if fork.state is not ForkState.TERMINATED:
                effects += self._end(fork)
        return [*effects, *self._auto_settle()]

    def aggregate(self, response: Response) -> list[Effect]:
        """Pass ``response`` upstream as Clearwater's ``aggregate_response`` does (a sproutlet's
        ``send_response``, spec §2.6): a provisional one goes at once until a final one went up
        (to a non-INVITE request only a 100, RFC 4320 §4.1: another raises ValueError); a 2xx
        goes at once as the final response (an INVITE's later 2xx too) and cancels the pending
        forks; a 3xx-6xx is kept for the choice, a 6xx cancelling the pending forks, and goes
        with :meth:`settle`. After the final response anything but an INVITE's 2xx is dropped."""
        status = response.status
        if status >= 300:
            return self._collect(response)
        if status >= 200:
            return self._forward_2xx(response)
        if not self._invite and status != 100:
            raise ValueError(_NO_PROVISIONAL)
        return [] if self._final_status is not None else [SendUpstream(response)]

    def settle(self) -> list[Effect]:
        """Send the best response kept if no fork is pending (§16.7 step 6); the answer is a
        487 if the request was cancelled and nothing was kept. Proxy mode settles by itself."""
        return self._settle()

    def stop_delivering(self) -> list[Effect]:
        """Leave deliver mode: from now on responses are forwarded and kept as in proxy mode,
        and the best goes up once no fork is pending (perhaps at once: the effects)."""
        self._deliver = False
        return self._settle()

    def send_upstream(self, response: Response) -> list[Effect]:
        """The caller's own response, sent at once. A provisional one is allowed until a final
        one went up (for a non-INVITE request only a 100, RFC 4320 §4.1); a final one is
        allowed once, and cancels the pending forks (§16.7 step 10); after it only an INVITE's
        further 2xx. Raises ValueError for any other."""
        status = response.status
        final_status = self._final_status
        if final_status is None:
            if status < 200:
                if not self._invite and status != 100:
                    raise ValueError(_NO_PROVISIONAL)
                return [SendUpstream(response)]
            return self._send_final(response)
        if self._invite and 200 <= status < 300:
            return [SendUpstream(response)]
        raise ValueError(
            "cannot send a "
            + str(status)
            + " response: a "
            + str(final_status)
            + " final response was sent upstream"
        )

    # ---- plumbing

    def _fork(self, fork_id: int) -> _Fork:
        if not 0 <= fork_id < len(self._forks):
            raise ValueError("no fork " + str(fork_id))
        return self._forks[fork_id]

    def _input(
        self, fork: _Fork, event: ForkInput, response: Optional[Response], now: float
    ) -> list[Effect]:
        handler = self.TRANSITIONS.get((fork.state, event))
        if handler is None:
            return []
        return [*handler(self, fork, response, now), *self._auto_settle()]

    def _pass(self, fork: _Fork, response: Response) -> list[Effect]:
        """A response of ``fork`` to forward or keep: delivered to the caller in deliver mode."""
        if self._deliver:
            return [Deliver(fork.fork_id, response)]
        return self.aggregate(response)

    def _auto_settle(self) -> list[Effect]:
        return [] if self._deliver else self._settle()

    def _settle(self) -> list[Effect]:
        """Send the best response once no fork is pending (§16.7 step 6)."""
        if self._final_status is not None or any(
            f.state is not ForkState.TERMINATED for f in self._forks
        ):
            return []
        best = self.best
        if best is None:
            if not self._cancelled:
                return []  # no fork yet, or only abandoned ones: the caller decides
            best = build_response(self._request, 487, "Request Terminated")
        return self._send_final(self._with_challenges(best))

    def _send_final(self, response: Response) -> list[Effect]:
        """Send a final response upstream and cancel the pending forks (§16.7 steps 9, 10)."""
        self._final_status = response.status
        reason = COMPLETED_ELSEWHERE if self._invite and response.status < 300 else None
        return [SendUpstream(response), *self._cancel_pending(reason)]

    def _collect(self, response: Response) -> list[Effect]:
        """Keep a 3xx-6xx for the choice (§16.7 step 4); a 6xx cancels the rest (step 5)."""
        if self._final_status is not None:
            return []
        self._finals.append(response)
        if response.status >= 600:
            self._got_6xx = True
            return self._cancel_pending(None)
        return []

    def _cancel_pending(self, reason: Optional[str]) -> list[Effect]:
        effects: list[Effect] = []
        for fork in self._forks:
            effects += self._cancel_fork(fork, reason)
        return effects

    def _cancel_fork(self, fork: _Fork, reason: Optional[str]) -> list[Effect]:
        state = fork.state
        if state is ForkState.TERMINATED:
            return []
        if not self._invite:
            # §9.1: no CANCEL for a non-INVITE; Clearwater ends it as a 487.
            terminated = build_response(self._request, 487, "Request Terminated")
            return [TerminateFork(fork.fork_id), *self._end(fork), *self._pass(fork, terminated)]
        if fork.cancel is not _Cancel.NONE:
            return []
        if state is ForkState.PROCEEDING:
            fork.cancel = _Cancel.SENT
            return [CancelFork(fork.fork_id, reason)]
        # §9.1: no CANCEL before a provisional response; it goes when one comes.
        fork.cancel = _Cancel.PENDING
        fork.cancel_reason = reason
        return []

    def _with_challenges(self, best: Response) -> Response:
        """``best`` with the challenges of every other 401/407 added after its own (§16.7
        step 7); ``best`` itself unless it is a 401/407 and there are other challenges."""
        if best.status not in (401, 407):
            return best
        extra = [
            (name, value)
            for response in self._finals
            if response is not best and response.status in (401, 407)
            for name, value in response.headers
            if header_key(name) in _CHALLENGES
        ]
        if not extra:
            return best
        lines = list(best.headers)
        keys = [header_key(name) for name, _ in lines]
        at = next(
            (i + 1 for i in range(len(keys) - 1, -1, -1) if keys[i] in _CHALLENGES),
            keys.index("content-length") if "content-length" in keys else len(lines),
        )
        headers = Headers([*lines[:at], *extra, *lines[at:]])
        return Response(best.status, best.reason, headers, best.body)

    def _start_timer_c(self, fork: _Fork, now: float) -> list[Effect]:
        fork.timer_c = at = now + self._timer_c
        return [StartTimerC(fork.fork_id, at)]

    def _end(self, fork: _Fork) -> list[Effect]:
        """The fork is over: stop its timer C if it runs; a pending CANCEL is dropped."""
        fork.state = ForkState.TERMINATED
        fork.cancel = _Cancel.NONE
        fork.cancel_reason = None
        if fork.timer_c is None:
            return []
        fork.timer_c = None
        return [StopTimerC(fork.fork_id)]

    def _deferred_cancel(self, fork: _Fork) -> list[Effect]:
        if fork.cancel is not _Cancel.PENDING:
            return []
        fork.cancel = _Cancel.SENT
        return [CancelFork(fork.fork_id, fork.cancel_reason)]

    # ---- transitions

    def _trying(self, fork: _Fork, response: Response, now: float) -> list[Effect]:
        # Absorbed (§16.7 step 5), but a CANCEL may now be sent (§9.1).
        fork.state = ForkState.PROCEEDING
        return self._deferred_cancel(fork)

    def _provisional(self, fork: _Fork, response: Response, now: float) -> list[Effect]:
        fork.state = ForkState.PROCEEDING
        if not self._invite:
            return []  # RFC 4320 §4.1: not to be passed on
        effects = self._start_timer_c(fork, now)  # §16.7 step 2
        effects += self._pass(fork, response)  # §16.7 step 5
        return [*effects, *self._deferred_cancel(fork)]

    def _success(self, fork: _Fork, response: Response, now: float) -> list[Effect]:
        return [*self._end(fork), *self._pass(fork, response)]

    def _late_success(self, fork: _Fork, response: Response, now: float) -> list[Effect]:
        # A 2xx on a finished fork: an INVITE's goes up (§16.7 step 5), others are ignored.
        return self._pass(fork, response) if self._invite else []

    def _forward_2xx(self, response: Response) -> list[Effect]:
        # §16.7 step 5: a 2xx goes up at once; after a final response, only an INVITE's.
        if self._final_status is None:
            return self._send_final(response)
        return [SendUpstream(response)] if self._invite else []

    def _failure(self, fork: _Fork, response: Response, now: float) -> list[Effect]:
        return [*self._end(fork), *self._pass(fork, response)]

    def _failed(self, fork: _Fork, _: None, now: float) -> list[Effect]:
        return [
            *self._end(fork),
            *self._pass(fork, build_response(self._request, 408, "Request Timeout")),
        ]

    def _timer_c_unanswered(self, fork: _Fork, _: None, now: float) -> list[Effect]:
        # §16.8: no provisional response: as if a 408 came; the client transaction is ended.
        return [TerminateFork(fork.fork_id), *self._failed(fork, None, now)]

    def _timer_c_proceeding(self, fork: _Fork, _: None, now: float) -> list[Effect]:
        if fork.cancel is _Cancel.SENT:
            # The CANCEL brought no final response within timer C: give the fork up.
            return self._timer_c_unanswered(fork, None, now)
        # §16.8: CANCEL it; timer C restarts to bound the wait for its final response.
        fork.cancel = _Cancel.SENT
        return [CancelFork(fork.fork_id, None), *self._start_timer_c(fork, now)]

    #: Per-fork inputs (RFC 3261 §16.7, §16.8). A 100 after a provisional response and any
    #: response but a 2xx on a finished fork are absorbed; timer C never fires on a finished fork.
    TRANSITIONS: ClassVar[Mapping[tuple[ForkState, ForkInput], Handler]] = {
        (ForkState.CALLING, ForkInput.TRYING): _trying,
        (ForkState.CALLING, ForkInput.PROVISIONAL): _provisional,
        (ForkState.CALLING, ForkInput.SUCCESS): _success,
        (ForkState.CALLING, ForkInput.FAILURE): _failure,
        (ForkState.CALLING, ForkInput.FAILED): _failed,
        (ForkState.CALLING, ForkInput.TIMER_C): _timer_c_unanswered,
        (ForkState.PROCEEDING, ForkInput.PROVISIONAL): _provisional,
        (ForkState.PROCEEDING, ForkInput.SUCCESS): _success,
        (ForkState.PROCEEDING, ForkInput.FAILURE): _failure,
        (ForkState.PROCEEDING, ForkInput.FAILED): _failed,
        (ForkState.PROCEEDING, ForkInput.TIMER_C): _timer_c_proceeding,
        (ForkState.TERMINATED, ForkInput.SUCCESS): _late_success,
    }
