"""Public test fakes for clearwater and its users, in the style of :mod:`twisted.internet.testing`.

:class:`SipMemoryReactor` is a ``MemoryReactorClock`` with ``listenUDP`` (``IReactorUDP``), for
SIP over UDP (RFC 3261 §18) and STUN/TURN; :class:`LossyDatagramLink` joins two UDP protocols in
memory and loses the datagrams a policy picks, to exercise retransmission timers (RFC 3261
§17.1.1.2, §17.1.2.2). See :mod:`clearwater.testing.reactor`.

:class:`FakeTsxHelper` and :func:`run_tsx` run a sproutlet's transaction without a proxy: the
test plays the forks' responses, the CANCEL and the clock. See :mod:`clearwater.testing.sproutlet`.
"""

from __future__ import annotations

from clearwater.testing.reactor import (
    DropPolicy,
    FakeUDPPort,
    LinkDatagram,
    LossyDatagramLink,
    SipMemoryReactor,
    drop_first,
    drop_matching,
    drop_nothing,
    drop_sequence,
)
from clearwater.testing.sproutlet import (
    DEFAULT_LOCAL_HOSTNAME,
    DEFAULT_TO_TAG,
    FakeFork,
    FakeTimer,
    FakeTsxHelper,
    run_tsx,
)

__all__ = [
    "DEFAULT_LOCAL_HOSTNAME",
    "DEFAULT_TO_TAG",
    "DropPolicy",
    "FakeFork",
    "FakeTimer",
    "FakeTsxHelper",
    "FakeUDPPort",
    "LinkDatagram",
    "LossyDatagramLink",
    "SipMemoryReactor",
    "drop_first",
    "drop_matching",
    "drop_nothing",
    "drop_sequence",
    "run_tsx",
]
