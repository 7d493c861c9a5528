"""Ralf: Clearwater's offline-charging front end (spec §6.4, §7.2).

Sprout (and any other CTF) POSTs billing events as JSON to ralf's HTTP API; ralf keeps one Rf
session per call and role, turns each event into a Diameter ACR (TS 32.299) to the call's CDF
(CCF), fails over between CCFs, and sends timer-driven INTERIMs. :mod:`clearwater.ralf.session`
holds that logic; :mod:`clearwater.http.ralf` the HTTP API; ``twistd ralf``
(:mod:`clearwater.services.ralf`) runs it.
"""

from __future__ import annotations

from clearwater.ralf.session import (
    TABLE,
    TIMER_KIND,
    BillingRequest,
    BillingRequestError,
    CcfConnector,
    Outcome,
    RalfSessionManager,
    Session,
    parse_billing_request,
    session_key,
)

__all__ = [
    "TABLE",
    "TIMER_KIND",
    "BillingRequest",
    "BillingRequestError",
    "CcfConnector",
    "Outcome",
    "RalfSessionManager",
    "Session",
    "parse_billing_request",
    "session_key",
]
