"""Mutual TLS and WSS between two UserAgents over real loopback sockets (RFC 5630, RFC 7118).

The interop tests cover TLS against pjsua2 and sipsak, which do not offer client certificates
or WSS; these run both ends in this process, on the real reactor, with the test CA.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import cast

from twisted.internet import reactor as _reactor
from twisted.trial.unittest import TestCase
from typing_extensions import override

from clearwater._types import ISipReactor
from clearwater.errors import TransportError
from clearwater.sip.transport import TlsSettings, TransportSettings
from clearwater.sip.ua import IncomingRequest, UserAgent
from tests.integration._peers import CertFiles, make_test_certs

REACTOR = cast(ISipReactor, _reactor)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def answer(incoming: IncomingRequest) -> None:
    if incoming.request.method == "INVITE":
        incoming.respond(200, body=incoming.request.body, content_type="application/sdp")
    else:
        incoming.respond(200)


class TlsAndWebSocketTests(TestCase):
    timeout = 30

    @override
    def setUp(self) -> None:
        self.directory = tempfile.TemporaryDirectory()
        self.certs: CertFiles = make_test_certs(Path(self.directory.name))
        self.agents: list[UserAgent] = []

    @override
    async def tearDown(self) -> None:  # type: ignore[override]  # trial accepts coroutines
        for ua in self.agents:
            await ua.stop()
        self.directory.cleanup()

    def agent(self, tls: TlsSettings, **kwargs: object) -> UserAgent:
        ua = UserAgent(REACTOR, transport_settings=TransportSettings(tls=tls), **kwargs)  # type: ignore[arg-type]
        self.agents.append(ua)
        return ua

    def server(self, transport: str, *, mutual: bool = False) -> int:
        tls = TlsSettings(
            certificate=self.certs.certificate,
            key=self.certs.key,
            ca=self.certs.ca,
            require_client_certificate=mutual,
        )
        ua = self.agent(tls, handler=answer, user="server")
        return ua.listen(transport + ":127.0.0.1:0").port

    async def test_mutual_tls_admits_a_client_with_a_certificate(self) -> None:
        port = self.server("tls", mutual=True)
        client = self.agent(
            TlsSettings(certificate=self.certs.certificate, key=self.certs.key, ca=self.certs.ca)
        )
        response = await client.request(
            "OPTIONS", "sip:server@127.0.0.1:" + str(port), transport="tls"
        )
        assert response.status == 200

    async def test_mutual_tls_refuses_a_client_without_a_certificate(self) -> None:
        port = self.server("tls", mutual=True)
        client = self.agent(TlsSettings(ca=self.certs.ca))
        try:
            await client.request("OPTIONS", "sip:server@127.0.0.1:" + str(port), transport="tls")
        except TransportError:
            return
        self.fail("a client without a certificate was admitted")

    async def test_wss_call(self) -> None:
        port = self.server("wss")
        client = self.agent(TlsSettings(ca=self.certs.ca))
        call = client.invite("sip:server@127.0.0.1:" + str(port), body=SDP, transport="wss")
        dialog = await call.answered
        response = await dialog.bye()
        assert response.status == 200
        assert client.stack.transport.stats["WSS"].messages_sent == 3  # INVITE, ACK, BYE
