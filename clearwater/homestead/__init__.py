"""Homestead: subscriber data for sprout (clearwater spec §6.1).

Two implementations of :class:`~clearwater.homestead.api.IHomestead`:
:mod:`clearwater.homestead.hssless` answers from an
:class:`~clearwater.stores.interfaces.ISubscriberStore` (HSS-less mode) and defines the answer
types shared by the server (:mod:`clearwater.http.homestead`) and sprout's client
(:mod:`clearwater.http.homestead_client`); :mod:`clearwater.homestead.hss` asks an HSS over
Diameter Cx and caches its answers (HSS mode, spec §7.1).
"""

from __future__ import annotations

from clearwater.homestead.api import IHomestead
from clearwater.homestead.hss import HssHomestead
from clearwater.homestead.hssless import (
    AUTH_TYPES,
    DIAMETER_SUCCESS,
    AkaAv,
    AvScheme,
    ChargingAddresses,
    DigestAv,
    HomesteadError,
    HsslessHomestead,
    RegData,
    ReqType,
    ServerAssignment,
    SubscriptionIdentity,
    SubscriptionProfile,
    parse_av,
    parse_xml,
    wildcard_matches,
)

__all__ = [
    "AUTH_TYPES",
    "DIAMETER_SUCCESS",
    "AkaAv",
    "AvScheme",
    "ChargingAddresses",
    "DigestAv",
    "HomesteadError",
    "HssHomestead",
    "HsslessHomestead",
    "IHomestead",
    "RegData",
    "ReqType",
    "ServerAssignment",
    "SubscriptionIdentity",
    "SubscriptionProfile",
    "parse_av",
    "parse_xml",
    "wildcard_matches",
]
