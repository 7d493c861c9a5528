"""What homestead's HTTP API (clearwater spec §6.1) asks of a homestead implementation.

:class:`IHomestead` is the seam between :mod:`clearwater.http.homestead` and the two ways of
answering: :class:`~clearwater.homestead.hssless.HsslessHomestead` (provisioned subscribers,
no HSS) and :class:`~clearwater.homestead.hss.HssHomestead` (an HSS over Diameter Cx, answers
cached). Both give the answer types of :mod:`clearwater.homestead.hssless` and fail with
:class:`~clearwater.homestead.hssless.HomesteadError` carrying the HTTP status to answer, or
with a store error for the HTTP layer to map.
"""

from __future__ import annotations

from typing import Optional, Protocol, Union, runtime_checkable

from twisted.internet.defer import Deferred

from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    RegData,
    ReqType,
    ServerAssignment,
)

__all__ = ["IHomestead"]


@runtime_checkable
class IHomestead(Protocol):
    """One method per homestead path (spec §6.1); each returns a Deferred."""

    def get_av(
        self,
        impi: str,
        impu: Optional[str] = None,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        """``GET /impi/<impi>/av[/<scheme>]``: an authentication vector (spec §3.2)."""
        ...

    def get_digest(self, impi: str, public_id: Optional[str] = None) -> Deferred[str]:
        """``GET /impi/<impi>/digest``: the digest HA1."""
        ...

    def registration_status(
        self,
        impi: str,
        impu: str,
        visited_network: Optional[str] = None,
        auth_type: Optional[str] = None,
        sos: bool = False,
    ) -> Deferred[ServerAssignment]:
        """``GET /impi/<impi>/registration-status`` (UAR)."""
        ...

    def location(
        self, impu: str, originating: bool = False, auth_type: Optional[str] = None
    ) -> Deferred[ServerAssignment]:
        """``GET /impu/<impu>/location`` (LIR)."""
        ...

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        """``GET /impu/<impu>/reg-data``: what is known, changing nothing."""
        ...

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        """``PUT /impu/<impu>/reg-data``: apply ``reqtype`` (spec §6.1's table)."""
        ...
