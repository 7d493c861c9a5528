"""Sprout's homestead client (spec §6.1): every path, failover, timeouts, error mapping.

The client talks HTTP through a real :class:`~twisted.web.client.Agent` to real
:class:`~twisted.web.server.Site` objects listening on 127.0.0.1 port 0 (trial ``TestCase`` on
the real reactor). Timeouts run on a :class:`~twisted.internet.task.Clock` that the tests
advance once the request has reached the stalled server, so nothing waits for real time.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Optional, cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from typing_extensions import override
from zope.interface import implementer

from clearwater.aka import make_auts, split_challenge, ue_check
from clearwater.homestead import AkaAv, AvScheme, DigestAv, HomesteadError, ReqType
from clearwater.http.homestead import homestead_resource
from clearwater.http.homestead_client import DEFAULT_TIMEOUT, HomesteadClient
from clearwater.stores.records import RegState
from tests.unit.homestead.test_hssless import (
    ALICE,
    ALICE_BARRED,
    ALICE_IMPU,
    ALICE_TEL,
    BOB,
    BOB_IMPU,
    DOMAIN,
    EVE_IMPU,
    OPC,
    SCSCF,
    WILD_PATTERN,
    K,
    failure_value,
    make_homestead,
)

REACTOR = cast(Any, _reactor)


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


class _Stall(Resource):
    """Takes every request and never answers."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.arrived: Deferred[None] = Deferred()
        self.hits = 0

    @override
    def render(self, request: Request) -> int:
        self.hits += 1
        if not self.arrived.called:
            self.arrived.callback(None)
        return NOT_DONE_YET


class _Fixed(Resource):
    """Answers every request with one status and body (optionally chunked)."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, code: int, body: bytes, chunked: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self._code, self._body, self._chunked = code, body, chunked
        self.hits = 0

    @override
    def render(self, request: Request) -> Any:
        self.hits += 1
        request.setResponseCode(self._code)
        request.setHeader(b"Content-Type", b"application/json")  # type: ignore[no-untyped-call]
        if not self._chunked:
            return self._body
        for start in range(0, len(self._body), 100):
            request.write(self._body[start : start + 100])  # type: ignore[no-untyped-call]
        request.finish()  # type: ignore[no-untyped-call]  # untyped in Twisted
        return NOT_DONE_YET


class _Case(TestCase):
    timeout = 20

    @override
    def setUp(self) -> None:
        self.homestead, self.store = make_homestead()
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

    async def homestead_url(self) -> str:
        return await self.listen(homestead_resource(self.homestead))

    async def down_url(self) -> str:
        site = Site(Resource())  # type: ignore[no-untyped-call]  # untyped in Twisted
        port = REACTOR.listenTCP(0, site, interface="127.0.0.1")
        url = "http://127.0.0.1:" + str(port.getHost().port)
        await port.stopListening()
        return url

    def client(
        self, *urls: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any
    ) -> HomesteadClient:
        return HomesteadClient(self.clock, self.agent, list(urls), timeout=timeout, **kwargs)

    async def error(self, deferred: Deferred[Any]) -> HomesteadError:
        try:
            await deferred
        except HomesteadError as e:
            return e
        raise AssertionError("no HomesteadError")


class PathTests(_Case):
    async def test_digest_of_a_provisioned_user(self) -> None:
        client = self.client(await self.homestead_url())
        ha1 = await client.get_digest("alice@example.com")
        assert ha1 == hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
        assert await client.get_digest(ALICE, public_id=ALICE_TEL) == ha1
        error = await self.error(client.get_digest(ALICE, public_id=BOB_IMPU))
        assert (error.status, error.http_status) == (404, 404)
        assert "do not match" in error.message

    async def test_digest_av(self) -> None:
        client = self.client(await self.homestead_url())
        ha1 = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
        assert await client.get_av(ALICE, ALICE_IMPU) == DigestAv(ha1, DOMAIN, "auth")
        assert await client.get_av(ALICE, ALICE_IMPU, "digest") == DigestAv(ha1, DOMAIN, "auth")
        error = await self.error(client.get_av(ALICE, ALICE_IMPU, AvScheme.AKA))
        assert error.status == 404

    async def test_aka_round_trip_and_resync(self) -> None:
        client = self.client(await self.homestead_url())
        vector = await client.get_av(BOB, BOB_IMPU, AvScheme.AKA, server_name=SCSCF)
        assert isinstance(vector, AkaAv) and vector.version == 1
        rand, autn = split_challenge(vector.challenge)
        res, ck, ik, sqn = ue_check(K, OPC, rand, autn)
        assert (vector.response, vector.cryptkey, vector.integritykey) == (
            res.hex(),
            ck.hex(),
            ik.hex(),
        )
        assert sqn == 32
        # The handset is ahead (SQN_MS = 6400): it answers AUTS and sprout asks again.
        resync = base64.b64encode(rand + make_auts(K, OPC, rand, 6400)).decode()
        vector = await client.get_av(BOB, BOB_IMPU, "aka2", resync_auth=resync)
        assert isinstance(vector, AkaAv) and vector.version == 2
        assert ue_check(K, OPC, *split_challenge(vector.challenge))[3] == 6432
        vector = await client.get_av(BOB, BOB_IMPU)
        assert isinstance(vector, AkaAv)
        assert ue_check(K, OPC, *split_challenge(vector.challenge))[3] == 6464

    async def test_registration_status_and_location(self) -> None:
        client = self.client(await self.homestead_url())
        answer = await client.registration_status(ALICE, ALICE_TEL, DOMAIN, "REG")
        assert (answer.result_code, answer.scscf) == (2001, SCSCF)
        error = await self.error(client.registration_status(ALICE, ALICE_BARRED))
        assert error.status == 403
        assert (await client.registration_status(ALICE, ALICE_BARRED, sos=True)).scscf == SCSCF
        answer = await client.location("sip:+1555@wild.example.com;x=y", originating=True)
        assert (answer.scscf, answer.wildcard_identity) == (SCSCF, WILD_PATTERN)
        assert (await client.location(ALICE_TEL, auth_type="CAPAB")).wildcard_identity is None
        assert (await self.error(client.location("sip:nobody@example.com"))).status == 404

    async def test_reg_data(self) -> None:
        client = self.client(await self.homestead_url())
        data = await client.get_reg_data(ALICE_TEL)
        assert (data.state, data.previous_state) == (RegState.NOT_REGISTERED, None)
        assert [i.identity for i in data.public_identities] == [
            ALICE_IMPU,
            ALICE_TEL,
            ALICE_BARRED,
        ]
        assert data.ims_subscription_xml.startswith("<IMSSubscription><PrivateID>")
        assert len(data.service_profiles[0].ifcs_xml) == 1
        data = await client.put_reg_data(ALICE_IMPU, "reg", SCSCF, private_id=ALICE)
        assert (data.state, data.previous_state) == (RegState.REGISTERED, RegState.NOT_REGISTERED)
        assert data.private_id == ALICE
        data = await client.put_reg_data(ALICE_IMPU, ReqType.DEREG_USER, SCSCF)
        assert (data.state, data.previous_state) == (RegState.UNREGISTERED, None)
        error = await self.error(client.put_reg_data(ALICE_IMPU, ReqType.DEREG_TIMEOUT, None))
        assert (error.status, error.http_status) == (400, 400)
        assert error.message == "Public identity " + ALICE_IMPU + " is not registered"
        data = await client.put_reg_data(
            "sip:1@wild.example.com", "reg", None, wildcard_identity=WILD_PATTERN
        )
        assert data.state is RegState.REGISTERED

    async def test_hostile_identity(self) -> None:
        client = self.client(await self.homestead_url())
        data = await client.put_reg_data(EVE_IMPU, "reg", SCSCF)
        assert [i.identity for i in data.public_identities] == [EVE_IMPU]
        error = await self.error(client.get_reg_data("sip:a/b?c=d&e#f@x"))
        assert error.message == "Unknown public identity sip:a/b?c=d&e#f@x"


class FailoverTests(_Case):
    async def test_first_homestead_down_second_used(self) -> None:
        client = self.client(await self.down_url(), await self.homestead_url())
        assert await client.get_digest(ALICE) == self.alice_ha1()

    def alice_ha1(self) -> str:
        return hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()

    async def test_stalled_homestead_times_out_then_next(self) -> None:
        stall = _Stall()
        client = self.client(await self.listen(stall), await self.homestead_url(), timeout=1.2)
        answer = client.get_digest(ALICE)
        await stall.arrived
        self.clock.advance(1.19)
        assert not answer.called
        self.clock.advance(0.01)
        assert await answer == self.alice_ha1()
        assert stall.hits == 1

    async def test_timeout_on_the_only_homestead_is_504(self) -> None:
        stall = _Stall()
        client = self.client(await self.listen(stall))
        answer = client.get_reg_data(ALICE_IMPU)
        await stall.arrived
        self.clock.advance(DEFAULT_TIMEOUT)
        error = await self.error(answer)
        assert (error.status, error.http_status) == (504, None)
        assert "timed out" in error.message

    async def test_all_down_is_504(self) -> None:
        client = self.client(await self.down_url(), await self.down_url())
        error = await self.error(client.location(ALICE_IMPU))
        assert (error.status, error.http_status) == (504, None)

    async def test_5xx_tries_the_next(self) -> None:
        busy = _Fixed(503, b'{"error": "Subscriber store unavailable"}')
        client = self.client(await self.listen(busy), await self.homestead_url())
        assert (await client.registration_status(ALICE, ALICE_IMPU)).scscf == SCSCF
        assert busy.hits == 1

    async def test_every_5xx_gives_the_last_status(self) -> None:
        first = _Fixed(500, b"oops")
        second = _Fixed(504, b'{"error": "Subscriber store timed out"}')
        client = self.client(await self.listen(first), await self.listen(second))
        error = await self.error(client.get_digest(ALICE))
        assert (error.status, error.http_status) == (504, 504)
        assert error.message == "Subscriber store timed out"
        assert (first.hits, second.hits) == (1, 1)

    async def test_4xx_is_final(self) -> None:
        missing = _Fixed(404, b'{"error": "Unknown private identity x"}')
        second = _Fixed(200, b'{"digest_ha1": "x"}')
        client = self.client(await self.listen(missing), await self.listen(second))
        error = await self.error(client.get_digest("x"))
        assert (error.status, error.http_status, error.message) == (
            404,
            404,
            "Unknown private identity x",
        )
        assert second.hits == 0

    async def test_unparseable_200_is_500(self) -> None:
        for body in (b"not json", b'{"digest_ha1": 5}', b"[]"):
            client = self.client(await self.listen(_Fixed(200, body)))
            error = await self.error(client.get_digest(ALICE))
            assert (error.status, error.http_status) == (500, 200)
            assert error.message.startswith("Bad homestead answer")
        client = self.client(await self.listen(_Fixed(200, b"<ClearwaterRegData>")))
        assert (await self.error(client.get_reg_data(ALICE_IMPU))).status == 500
        client = self.client(await self.listen(_Fixed(200, b'{"neither": 1}')))
        assert (await self.error(client.get_av(ALICE, ALICE_IMPU))).status == 500

    async def test_oversized_answers_try_the_next(self) -> None:
        big = b'{"digest_ha1": "' + b"x" * 2000 + b'"}'
        sized, chunked = _Fixed(200, big), _Fixed(200, big, chunked=True)
        client = self.client(
            await self.listen(sized),
            await self.listen(chunked),
            await self.homestead_url(),
            max_body=1024,
        )
        assert await client.get_digest(ALICE) == self.alice_ha1()
        assert (sized.hits, chunked.hits) == (1, 1)

    async def test_caller_cancelling_stops_everything(self) -> None:
        stall = _Stall()
        second = _Fixed(200, b'{"digest_ha1": "x"}')
        client = self.client(await self.listen(stall), await self.listen(second))
        answer = client.get_digest(ALICE)
        await stall.arrived
        answer.cancel()
        with pytest.raises(CancelledError):
            await answer
        assert second.hits == 0
        assert not self.clock.getDelayedCalls()


class _Consumer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@implementer(IAgent)
class _RecordingAgent:
    """Records each request and refuses the connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes, Optional[Headers], Optional[bytes]]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Optional[Headers] = None,
        bodyProducer: Optional[IBodyProducer] = None,  # noqa: N803 (IAgent's name)
    ) -> Deferred[Any]:
        body = None
        if bodyProducer is not None:
            consumer = _Consumer()
            bodyProducer.startProducing(cast(IConsumer, consumer))  # type: ignore[no-untyped-call]
            body = consumer.data
            assert bodyProducer.length == len(body)
        self.requests.append((method, uri, headers, body))
        return fail(ConnectionRefusedError())  # type: ignore[no-untyped-call]


class UrlTests(SynchronousTestCase):
    def requests(self, call: Any) -> list[tuple[bytes, bytes, Optional[Headers], Optional[bytes]]]:
        agent = _RecordingAgent()
        client = HomesteadClient(
            cast(IReactorTime, Clock()), agent, ["http://hs1:8888/", "http://hs2:8888"]
        )
        error = failure_value(call(client))
        assert isinstance(error, HomesteadError) and error.status == 504
        return agent.requests

    def test_paths_and_parameters_are_percent_encoded(self) -> None:
        def av(client: HomesteadClient) -> Deferred[Any]:
            return client.get_av("a+b@x", "tel:+1 2;p=q", "aka", "c/d+e=", "sip:s;lr")

        (one, two) = self.requests(av)
        assert one[:2] == (
            b"GET",
            b"http://hs1:8888/impi/a%2Bb%40x/av/aka?impu=tel%3A%2B1%202%3Bp%3Dq"
            b"&resync-auth=c%2Fd%2Be%3D&server-name=sip%3As%3Blr",
        )
        assert two[1].startswith(b"http://hs2:8888/impi/")
        (one, _) = self.requests(lambda c: c.registration_status("i", "sip:u", sos=True))
        assert one[1] == b"http://hs1:8888/impi/i/registration-status?impu=sip%3Au&sos=true"
        (one, _) = self.requests(lambda c: c.location("sip:a/b@x", originating=True))
        assert one[1] == b"http://hs1:8888/impu/sip%3Aa%2Fb%40x/location?originating=true"
        (one, _) = self.requests(lambda c: c.get_digest("i", "sip:u"))
        assert one[1] == b"http://hs1:8888/impi/i/digest?public_id=sip%3Au"
        (one, _) = self.requests(lambda c: c.get_reg_data("sip:u"))
        assert one[1] == b"http://hs1:8888/impu/sip%3Au/reg-data"

    def test_put_reg_data_body(self) -> None:
        (one, _) = self.requests(
            lambda c: c.put_reg_data("sip:u", "dereg-auth-failed", "sip:s", "i@x", "sip:!.*!@x")
        )
        method, uri, headers, body = one
        assert (method, uri) == (b"PUT", b"http://hs1:8888/impu/sip%3Au/reg-data?private_id=i%40x")
        assert headers is not None
        assert headers.getRawHeaders(b"Content-Type") == [b"application/json"]
        assert body is not None and json.loads(body) == {
            "reqtype": "dereg-auth-failed",
            "server_name": "sip:s",
            "wildcard_identity": "sip:!.*!@x",
        }
        (one, _) = self.requests(lambda c: c.put_reg_data("sip:u", ReqType.CALL, None))
        assert one[3] is not None and json.loads(one[3]) == {"reqtype": "call"}

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            HomesteadClient(cast(IReactorTime, Clock()), _RecordingAgent(), [])
        with pytest.raises(ValueError):
            HomesteadClient(cast(IReactorTime, Clock()), _RecordingAgent(), ["http://x"], 0)
        client = HomesteadClient(cast(IReactorTime, Clock()), _RecordingAgent(), ["http://x"])
        with pytest.raises(ValueError):
            client.put_reg_data("sip:u", "dereg-auth-failure", None)
        with pytest.raises(ValueError):
            client.get_av("i", "sip:u", "sha256")
