"""The SIP transaction layer (RFC 3261 §17, RFC 6026, RFC 4320).

- :mod:`.timers`: timer values and their reliable/unreliable rules.
- :mod:`.keys`: transaction matching (§17.1.3, §17.2.3, RFC 2543 fallback, ACK and CANCEL).
- :mod:`.client` and :mod:`.server`: the four sans-IO state machines (ICT, NICT, IST, NIST),
  table-driven, returning effects.
- :mod:`.layer`: the Twisted shell that keeps the live transactions, runs their timers on an
  injected clock and reports failures to the transaction user.
"""

from __future__ import annotations

from clearwater.sip.transaction._effects import (
    CancelTimer,
    DeliverToTU,
    Effect,
    Failed,
    FailureReason,
    Retransmit,
    StartTimer,
    Terminated,
    Transmit,
)
from clearwater.sip.transaction.client import (
    IctInput,
    IctState,
    InviteClientTransaction,
    NictInput,
    NictState,
    NonInviteClientTransaction,
    build_ack,
    build_cancel,
)
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
from clearwater.sip.transaction.layer import (
    ClientTransaction,
    RequestSender,
    ServerTransaction,
    TransactionLayer,
    TransactionUser,
)
from clearwater.sip.transaction.server import (
    InviteServerTransaction,
    IstInput,
    IstState,
    NistInput,
    NistState,
    NonInviteServerTransaction,
    build_response,
)
from clearwater.sip.transaction.timers import Timer, TimerSettings

__all__ = [
    "BRANCH_COOKIE",
    "CancelTimer",
    "ClientKey",
    "ClientTransaction",
    "DeliverToTU",
    "Effect",
    "Failed",
    "FailureReason",
    "IctInput",
    "IctState",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "IstInput",
    "IstState",
    "NictInput",
    "NictState",
    "NistInput",
    "NistState",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestSender",
    "Retransmit",
    "Rfc2543Key",
    "ServerKey",
    "ServerTransaction",
    "StartTimer",
    "Terminated",
    "Timer",
    "TimerSettings",
    "TransactionLayer",
    "TransactionUser",
    "Transmit",
    "build_ack",
    "build_cancel",
    "build_response",
    "cancel_target_key",
    "client_key",
    "has_rfc3261_branch",
    "server_key",
]
