"""Homestead: subscriber data for sprout (clearwater spec §6.1), without an HSS.

:mod:`clearwater.homestead.hssless` answers homestead's requests from an
:class:`~clearwater.stores.interfaces.ISubscriberStore` and defines the answer types shared by
the server (:mod:`clearwater.http.homestead`) and sprout's client
(:mod:`clearwater.http.homestead_client`).
"""

from __future__ import annotations

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
    "HsslessHomestead",
    "RegData",
    "ReqType",
    "ServerAssignment",
    "SubscriptionIdentity",
    "SubscriptionProfile",
    "parse_av",
    "parse_xml",
    "wildcard_matches",
]
