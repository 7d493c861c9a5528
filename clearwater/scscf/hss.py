"""What the S-CSCF asks homestead (spec §6.1): the three calls, as a Protocol both homestead
clients satisfy: :class:`~clearwater.http.homestead_client.HomesteadClient` (over HTTP, to
``--hs-hostname``) and :class:`~clearwater.homestead.hssless.HsslessHomestead` (in process,
over the embedded subscriber store)."""

from __future__ import annotations

from typing import Optional, Protocol, Union

from twisted.internet.defer import Deferred

from clearwater.homestead.hssless import AkaAv, AvScheme, DigestAv, RegData, ReqType

__all__ = ["Homestead"]


class Homestead(Protocol):
    """Homestead's paths the S-CSCF uses. Failures are
    :class:`~clearwater.homestead.hssless.HomesteadError` carrying homestead's HTTP status
    (504 when no homestead answered); in process, store errors may come through too."""

    def get_av(
        self,
        impi: str,
        impu: str,
        scheme: Optional[AvScheme] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        """``GET /impi/<impi>/av[/<scheme>]``: an authentication vector."""

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        """``GET /impu/<impu>/reg-data``: state and subscription, changing nothing."""

    def put_reg_data(
        self,
        impu: str,
        reqtype: ReqType,
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        """``PUT /impu/<impu>/reg-data``: apply ``reqtype`` and answer the reg-data."""
