"""The SIP transaction layer (RFC 3261 §17, RFC 6026, RFC 4320).

So far: the timer values and their reliable/unreliable rules (:mod:`.timers`) and transaction
matching (:mod:`.keys`). The sans-IO state machines and the Twisted shell follow (issue #3).
"""

from __future__ import annotations

from clearwater.sip.transaction.keys import (
    BRANCH_COOKIE,
    ClientKey,
    Rfc2543Key,
    ServerKey,
    cancel_target_key,
    client_key,
    has_rfc3261_branch,
    server_key,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings

__all__ = [
    "BRANCH_COOKIE",
    "ClientKey",
    "Rfc2543Key",
    "ServerKey",
    "Timer",
    "TimerSettings",
    "cancel_target_key",
    "client_key",
    "has_rfc3261_branch",
    "server_key",
]
