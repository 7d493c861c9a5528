"""twistd plugins for clearwater's network functions.

This module holds ``ServiceMaker`` objects only (``twisted.application.service.ServiceMaker``
imports each function's ``clearwater.services.<function>.tap`` lazily). There is deliberately no
``__init__.py`` in ``twisted/`` or ``twisted/plugins/``. Network functions are added here as they
land.
"""

from twisted.application.service import ServiceMaker

sprout = ServiceMaker(
    "clearwater sprout",
    "clearwater.services.sprout.tap",
    "Sprout: sproutlets (S-CSCF, I-CSCF, BGCF, application servers) on a SIP proxy",
    "sprout",
)

homestead = ServiceMaker(
    "clearwater homestead",
    "clearwater.services.homestead.tap",
    "Homestead (HSS-less): subscriber data over HTTP, homestead-prov provisioning API",
    "homestead",
)

restund = ServiceMaker(
    "clearwater restund",
    "clearwater.services.restund.tap",
    "restund: STUN/TURN server (UDP, TCP, TLS) with credentials from homestead",
    "restund",
)

ralf = ServiceMaker(
    "clearwater ralf",
    "clearwater.services.ralf.tap",
    "Ralf: billing events from sprout over HTTP, sent to CDFs as Diameter Rf ACRs",
    "ralf",
)

clearwater = ServiceMaker(
    "clearwater all-in-one",
    "clearwater.services.clearwater.tap",
    "The all-in-one IMS core: sprout (S-CSCF), homestead and provisioning in one process",
    "clearwater",
)
