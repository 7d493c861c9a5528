"""The S-CSCF (issue #6; spec §3): a chain of sproutlets on the sproutlet proxy, keeping all
state in the stores and asking homestead about subscribers.

``scscf`` (port 5054; the authentication stage, :mod:`.authentication`) -> ``registrar``
(:mod:`.registrar`) -> ``subscription`` (:mod:`.subscription`) -> ``scscf-proxy``
(:mod:`.scscf_proxy`): each stage takes the requests it cares about and hands the others to
the next in process (``Sproutlet.next_service``). Registration state, its timers and the
reg-event NOTIFYs are the :class:`~.subscribers.SubscriberManager`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from twisted.internet.interfaces import IReactorTime

from clearwater.scscf.authentication import AuthenticationSproutlet
from clearwater.scscf.config import NonRegisterAuthentication, ScscfConfig
from clearwater.scscf.hss import Homestead
from clearwater.scscf.registrar import RegistrarSproutlet, ThirdPartyRegistration
from clearwater.scscf.scscf_proxy import ScscfProxySproutlet
from clearwater.scscf.subscribers import Sender, SubscriberManager
from clearwater.scscf.subscription import SubscriptionSproutlet
from clearwater.sip.sproutlet import Sproutlet
from clearwater.stores.interfaces import IChallengeStore, IRegistrationStore, ITimerService

__all__ = [
    "AuthenticationSproutlet",
    "Homestead",
    "NonRegisterAuthentication",
    "RegistrarSproutlet",
    "ScscfConfig",
    "ScscfProxySproutlet",
    "SubscriberManager",
    "SubscriptionSproutlet",
    "ThirdPartyRegistration",
    "build_scscf",
]


def build_scscf(
    config: ScscfConfig,
    homestead: Homestead,
    registrations: IRegistrationStore,
    challenges: IChallengeStore,
    timers: ITimerService,
    clock: IReactorTime,
    send: Sender,
    *,
    service_name: str = "scscf",
    port: int = 5054,
    uri: str = "",
    third_party: Optional[ThirdPartyRegistration] = None,
) -> tuple[list[Sproutlet], SubscriberManager]:
    """The S-CSCF's four sproutlets, first stage first, and their subscriber manager.
    ``service_name``, ``port`` and ``uri`` are the first stage's (``--scscf``,
    ``--prefix-scscf``, ``--uri-scscf``); ``third_party`` is the registrar's hook for
    third-party REGISTERs."""
    manager = SubscriberManager(config, homestead, registrations, timers, clock, send)
    stages: Sequence[Sproutlet] = (
        AuthenticationSproutlet(
            config,
            homestead,
            challenges,
            timers,
            clock,
            service_name=service_name,
            port=port,
            uri=uri,
            next_service="registrar",
        ),
        RegistrarSproutlet(config, manager, next_service="subscription", third_party=third_party),
        SubscriptionSproutlet(config, manager, next_service="scscf-proxy"),
        ScscfProxySproutlet(config, manager, terminating_service=service_name),
    )
    return list(stages), manager
