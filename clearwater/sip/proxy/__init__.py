"""The RFC 3261 §16 stateful proxy core.

- :mod:`._request`: the request-side steps as pure functions (§16.3 validation and loop
  detection, §16.4 Route preprocessing, §16.6 next hop, Record-Route with RFC 5658, Via,
  Max-Forwards);
- :mod:`._context`: the sans-IO response context of a forking proxy (§16.7, §16.8 timer C,
  §16.10 CANCEL) with Clearwater's choice of the best response;
- :mod:`._proxy`: :class:`Proxy`, the Twisted shell, a transaction user on a
  :class:`~clearwater.sip.stack.SipStack`.
"""

from __future__ import annotations

from clearwater.sip.proxy._context import (
    COMPLETED_ELSEWHERE,
    CancelFork,
    Deliver,
    ForkInput,
    ForkState,
    ResponseContext,
    SendUpstream,
    StartTimerC,
    StopTimerC,
    TerminateFork,
)
from clearwater.sip.proxy._proxy import Proxy, Router
from clearwater.sip.proxy._request import (
    DEFAULT_MAX_FORWARDS,
    LocalHosts,
    Locality,
    ack_is_forwardable,
    add_via,
    answer,
    branch_for,
    branch_loop_hash,
    decrement_max_forwards,
    detect_loop,
    host_key,
    next_hop,
    preprocess_routes,
    record_route,
    validate_request,
)

__all__ = [
    "COMPLETED_ELSEWHERE",
    "DEFAULT_MAX_FORWARDS",
    "CancelFork",
    "Deliver",
    "ForkInput",
    "ForkState",
    "LocalHosts",
    "Locality",
    "Proxy",
    "ResponseContext",
    "Router",
    "SendUpstream",
    "StartTimerC",
    "StopTimerC",
    "TerminateFork",
    "ack_is_forwardable",
    "add_via",
    "answer",
    "branch_for",
    "branch_loop_hash",
    "decrement_max_forwards",
    "detect_loop",
    "host_key",
    "next_hop",
    "preprocess_routes",
    "record_route",
    "validate_request",
]
