"""Diameter over TLS (RFC 6733 §2.1: TLS from the first byte) between two
:class:`~clearwater.diameter.node.DiameterNode` s on loopback: the capabilities exchange and a
request go through a verified TLS connection; a server whose certificate we do not trust is
refused before any Diameter message."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from clearwater.diameter import (
    APP_CX,
    BASE,
    VENDOR_3GPP,
    Application,
    DiameterNode,
    Message,
    NoPeerError,
    PeerConfig,
    PeerInfo,
    make_answer,
)
from clearwater.diameter.apps.cx import CX
from clearwater.sip.transport import TlsSettings
from tests.integration._diameter_peers import write_self_signed

REALM = "example.com"
HSS = "hss.example.com"
HOMESTEAD = "homestead.example.com"


def _answer(request: Message, peer: PeerInfo) -> Message:
    return make_answer(
        request,
        [
            BASE.avp("Result-Code", 2001),
            BASE.avp("Origin-Host", HSS),
            BASE.avp("Origin-Realm", REALM),
        ],
    )


class DiameterTlsTests(TestCase):
    def directory(self) -> Path:
        """A fresh temporary directory, removed after the test (not trial's ``mktemp``,
        which makes its directories under the current one)."""
        path = tempfile.mkdtemp(prefix="diameter-tls-")
        self.addCleanup(shutil.rmtree, path, True)
        return Path(path)

    def _hss(self, directory: Path) -> tuple[DiameterNode, Path]:
        certificate, key = write_self_signed(directory, HSS)
        tls = TlsSettings(certificate=str(certificate), key=str(key))
        node = DiameterNode(
            reactor,  # type: ignore[arg-type]
            HSS,
            REALM,
            [Application(APP_CX, VENDOR_3GPP, dictionary=CX)],
            tls_listen=(0, "127.0.0.1"),
            tls_server=tls.server_options(),
        )
        node.set_handler(APP_CX, _answer)
        node.startService()
        self.addCleanup(node.stopService)
        return node, certificate

    def _homestead(self, hss: DiameterNode, ca: Path) -> DiameterNode:
        client = TlsSettings(ca=str(ca))
        node = DiameterNode(
            reactor,  # type: ignore[arg-type]
            HOMESTEAD,
            REALM,
            [Application(APP_CX, VENDOR_3GPP, dictionary=CX)],
            peers=[PeerConfig(HSS, "127.0.0.1", hss.tls_port, tls=True)],
            tls_client=client.client_options,
            tc=2,
        )
        node.startService()
        self.addCleanup(node.stopService)
        return node

    async def test_capabilities_exchange_and_a_request_over_tls(self) -> None:
        directory = self.directory()
        hss, certificate = self._hss(directory)
        homestead = self._homestead(hss, certificate)
        await homestead.wait_usable(HSS, 10)
        request = Message(
            300,
            APP_CX,
            (
                BASE.avp("Session-Id", homestead.new_session_id()),
                BASE.avp("Origin-Host", HOMESTEAD),
                BASE.avp("Origin-Realm", REALM),
                BASE.avp("Destination-Realm", REALM),
            ),
        )
        answer = await homestead.request(request, timeout=5)
        assert BASE.get(answer, "Result-Code") == 2001
        assert BASE.get(answer, "Origin-Host") == HSS

    async def test_a_server_certificate_we_do_not_trust_is_refused(self) -> None:
        directory = self.directory()
        hss, _ = self._hss(directory)
        # The client trusts another certificate for the same name: the handshake fails, so the
        # HSS never sees a CER and the peer never opens.
        (directory / "other").mkdir()
        stranger, _ = write_self_signed(directory / "other", HSS)
        homestead = self._homestead(hss, stranger)
        waited: Deferred[Any] = homestead.wait_usable(HSS, 3)
        try:
            await waited
        except NoPeerError:
            pass
        else:
            raise AssertionError("a peer with an untrusted certificate became usable")
        assert hss.peer_state(HOMESTEAD) is None
