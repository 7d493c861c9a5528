"""Homestead's sprout client (spec §6.2, §3.11): the exact requests, error mapping, timeouts.

Real :class:`~twisted.web.client.Agent` requests to real :class:`~twisted.web.server.Site`
objects on 127.0.0.1 port 0 (trial ``TestCase`` on the real reactor): a recording resource for
the bytes on the wire, and sprout's own ``/registrations`` resource (over a recording
subscriber manager) to show that sprout accepts what homestead sends. Timeouts run on a
:class:`~twisted.internet.task.Clock` advanced once the request has reached a stalled server.
"""

from __future__ import annotations

import json
from typing import Any, Optional, cast

import attrs
import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from typing_extensions import override

from clearwater.http.sprout import sprout_children
from clearwater.http.sprout_client import (
    MAX_ERROR_BODY,
    SproutClient,
    SproutError,
    SproutRegistrations,
)
from clearwater.scscf.subscribers import SubscriberManager
from clearwater.stores.records import AssociatedUri

REACTOR = cast(Any, _reactor)

ALICE = "sip:alice@example.com"
ALICE_IMPI = "alice@example.com"
BOB = "sip:bob@example.com"
XML = (
    "<IMSSubscription><PrivateID>alice@example.com</PrivateID><ServiceProfile>"
    "<PublicIdentity><Identity>sip:alice@example.com</Identity></PublicIdentity>"
    "<PublicIdentity><Identity>tel:+15551234</Identity></PublicIdentity>"
    "</ServiceProfile></IMSSubscription>"
)


class _Tracking(WrappingFactory):
    """Remembers the server's connections so a test can close them and wait until closed."""

    def __init__(self, wrapped: Site) -> None:
        super().__init__(wrapped)  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._idle: list[Deferred[None]] = []

    @override
    def unregisterProtocol(self, p: Protocol) -> None:
        super().unregisterProtocol(p)  # type: ignore[no-untyped-call]  # untyped in Twisted
        if not self.protocols:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)

    async def close(self) -> None:
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()
        if self.protocols:
            waiter: Deferred[None] = Deferred()
            self._idle.append(waiter)
            await waiter


@attrs.define
class _Seen:
    method: bytes
    uri: bytes
    content_type: Optional[bytes]
    body: bytes


class _Recorder(Resource):
    """Records each request and answers ``code`` with ``body``; with ``stall``, never
    answers (``arrived`` fires when the first request is in, ``gone`` when its client
    goes)."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, code: int = 200, body: bytes = b"", stall: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.code, self.body, self.stall = code, body, stall
        self.seen: list[_Seen] = []
        self.arrived: Deferred[None] = Deferred()
        self.gone: Deferred[None] = Deferred()

    @override
    def render(self, request: Request) -> Any:
        content = request.content.read() if request.content is not None else b""
        content_type = request.requestHeaders.getRawHeaders(b"Content-Type", [None])[0]
        self.seen.append(_Seen(request.method, request.uri, content_type, content))
        if not self.arrived.called:
            self.arrived.callback(None)
        if self.stall:
            request.notifyFinish().addBoth(lambda _: self.gone.callback(None))
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        return self.body


@attrs.define
class _Change:
    changes: list[Any] = attrs.Factory(list)


class _Manager:
    """What sprout's ``/registrations`` resource calls, recorded."""

    def __init__(self) -> None:
        self.deregistered: list[tuple[str, Optional[str]]] = []
        self.associated: list[tuple[str, list[AssociatedUri]]] = []

    def deregister(
        self, aor_id: str, reason: Any, private_id: Optional[str] = None
    ) -> Deferred[_Change]:
        self.deregistered.append((aor_id, private_id))
        return succeed(_Change())

    def update_associated_uris(self, aor_id: str, uris: list[AssociatedUri]) -> Deferred[None]:
        self.associated.append((aor_id, uris))
        return succeed(None)

    def now(self) -> int:
        return 0


class _Case(TestCase):
    timeout = 20

    @override
    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(REACTOR, persistent=False)  # type: ignore[no-untyped-call]
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(REACTOR, pool=self.pool)  # type: ignore[no-untyped-call]
        self.clock = Clock()

    async def listen(self, resource: Resource) -> str:
        factory = _Tracking(Site(resource))  # type: ignore[no-untyped-call]  # untyped
        port = REACTOR.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(factory.close)
        self.addCleanup(port.stopListening)
        return "http://127.0.0.1:" + str(port.getHost().port)

    def client(self, url: str, timeout: float = 2.0) -> SproutClient:
        return SproutClient(self.agent, self.clock, url, timeout=timeout)

    async def error(self, deferred: Deferred[Any]) -> SproutError:
        try:
            await deferred
        except SproutError as e:
            return e
        raise AssertionError("no SproutError")


class RequestTests(_Case):
    async def test_delete_registrations_bytes(self) -> None:
        recorder = _Recorder()
        client = self.client(await self.listen(recorder) + "/")
        await client.delete_registrations([(ALICE, ALICE_IMPI), (BOB, None)], False)
        [seen] = recorder.seen
        assert seen.method == b"DELETE"
        assert seen.uri == b"/registrations?send-notifications=false"
        assert seen.content_type == b"application/json"
        assert seen.body == (
            b'{"registrations":[{"primary-impu":"sip:alice@example.com",'
            b'"impi":"alice@example.com"},{"primary-impu":"sip:bob@example.com"}]}'
        )

    async def test_send_notifications_true(self) -> None:
        recorder = _Recorder()
        client = self.client(await self.listen(recorder))
        await client.delete_registrations([(ALICE, None)], True)
        assert recorder.seen[0].uri == b"/registrations?send-notifications=true"
        assert json.loads(recorder.seen[0].body) == {"registrations": [{"primary-impu": ALICE}]}

    async def test_put_registration_bytes(self) -> None:
        recorder = _Recorder(204)
        client = self.client(await self.listen(recorder))
        await client.put_registration("tel:+15551234", XML)
        [seen] = recorder.seen
        assert seen.method == b"PUT"
        assert seen.uri == b"/registrations/tel:+15551234"
        assert seen.content_type == b"application/json"
        assert seen.body == json.dumps({"user-data-xml": XML}, separators=(",", ":")).encode()

    async def test_an_awkward_impu_is_escaped(self) -> None:
        recorder = _Recorder()
        client = self.client(await self.listen(recorder))
        await client.put_registration("sip:a/b?c#d%e f@example.com", XML)
        assert recorder.seen[0].uri == b"/registrations/sip:a%2Fb%3Fc%23d%25e%20f@example.com"


class ErrorTests(_Case):
    async def test_a_4xx_answer_is_an_error_with_its_status_and_text(self) -> None:
        url = await self.listen(_Recorder(400, b'{"error":"Body has no registrations array"}'))
        error = await self.error(self.client(url).delete_registrations([(ALICE, None)], False))
        assert error.status == 400
        assert error.reason == "Body has no registrations array"

    async def test_a_5xx_answer_without_json(self) -> None:
        url = await self.listen(_Recorder(500, b"x" * (MAX_ERROR_BODY * 10)))
        error = await self.error(self.client(url).put_registration(ALICE, XML))
        assert error.status == 500
        assert error.reason == "sprout answered 500"

    async def test_a_3xx_is_not_success(self) -> None:
        url = await self.listen(_Recorder(302))
        error = await self.error(self.client(url).put_registration(ALICE, XML))
        assert error.status == 302

    async def test_connection_refused(self) -> None:
        site = Site(Resource())  # type: ignore[no-untyped-call]  # untyped in Twisted
        port = REACTOR.listenTCP(0, site, interface="127.0.0.1")
        url = "http://127.0.0.1:" + str(port.getHost().port)
        await port.stopListening()
        error = await self.error(self.client(url).delete_registrations([(ALICE, None)], True))
        assert error.status is None
        assert "failed" in error.reason

    async def test_timeout_cancels_the_attempt(self) -> None:
        stall = _Recorder(stall=True)
        call = self.client(await self.listen(stall), timeout=0.5).put_registration(ALICE, XML)
        await stall.arrived
        self.clock.advance(0.49)
        assert not call.called
        self.clock.advance(0.01)
        error = await self.error(call)
        assert error.status is None
        assert "timed out after 0.5 s" in error.reason
        await stall.gone  # the connection was aborted

    def test_timeout_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            SproutClient(self.agent, cast(IReactorTime, Clock()), "http://x", timeout=0)


class SproutAcceptsTests(_Case):
    """Homestead's requests, as sprout's own ``/registrations`` resource reads them."""

    async def sprout_url(self) -> tuple[str, _Manager]:
        manager = _Manager()
        root = Resource()  # type: ignore[no-untyped-call]  # untyped in Twisted
        for name, child in sprout_children(cast(SubscriberManager, manager)).items():
            root.putChild(name, child)
        return await self.listen(root), manager

    async def test_rtr_deregistration_reaches_each_aor(self) -> None:
        url, manager = await self.sprout_url()
        client: SproutRegistrations = self.client(url)
        await client.delete_registrations([(ALICE, ALICE_IMPI), (BOB, None)], False)
        assert manager.deregistered == [(ALICE, ALICE_IMPI), (BOB, None)]

    async def test_ppr_user_data_reaches_the_aor(self) -> None:
        url, manager = await self.sprout_url()
        await self.client(url).put_registration(ALICE, XML)
        [(aor_id, uris)] = manager.associated
        assert aor_id == ALICE
        assert [uri.uri for uri in uris] == [ALICE, "tel:+15551234"]
