"""Homestead's HTTP API (spec §6.1): paths, parameters, bodies, errors.

Requests go as bytes through a real :class:`~twisted.web.server.Site` and its HTTP channel
over a ``StringTransport``, served from the memory subscriber store (which answers at once,
so each response is complete when ``dataReceived`` returns); assertions are on the response
bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
from typing import Any, Optional
from urllib.parse import quote

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from typing_extensions import override

from clearwater.aka import make_auts, split_challenge, ue_check
from clearwater.http.homestead import MAX_BODY, homestead_children, homestead_resource
from clearwater.stores.interfaces import StoreTimeoutError, StoreUnavailableError
from clearwater.stores.records import RegState
from tests.unit.homestead.test_hssless import (
    ALICE,
    ALICE_BARRED,
    ALICE_HA1,
    ALICE_IMPU,
    ALICE_IRS,
    ALICE_TEL,
    BOB_IMPU,
    DOMAIN,
    EVE_IMPU,
    IFC,
    OPC,
    SCSCF,
    WILD_PATTERN,
    K,
    make_homestead,
    result,
)

_PEER = IPv4Address("TCP", "127.0.0.1", 40000)
_HOST = IPv4Address("TCP", "127.0.0.1", 8888)


class _Response:
    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, raw
        status_line, *lines = head.split(b"\r\n")
        self.code = int(status_line.split(b" ", 2)[1])
        self.headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            self.headers.setdefault(name.lower(), []).append(value)

    def header(self, name: bytes) -> bytes:
        (value,) = self.headers[name.lower()]
        return value

    def json(self) -> Any:
        assert self.header(b"Content-Type") == b"application/json"
        assert self.header(b"Content-Length") == b"%d" % len(self.body)
        return json.loads(self.body)


def _quote(text: str) -> bytes:
    return quote(text, safe="").encode("ascii")


class _Case(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.homestead, self.store = make_homestead()
        self.registry = CollectorRegistry()
        resource = homestead_resource(self.homestead, registry=self.registry)
        self.site = Site(resource, reactor=MemoryReactorClock())  # type: ignore[no-untyped-call]

    def connect(self) -> tuple[IProtocol, StringTransport]:
        protocol = self.site.buildProtocol(_PEER)  # type: ignore[no-untyped-call]  # untyped
        assert IProtocol.providedBy(protocol)
        transport = StringTransport(hostAddress=_HOST, peerAddress=_PEER)  # type: ignore[no-untyped-call]
        protocol.makeConnection(transport)
        return protocol, transport

    def send(
        self, method: bytes, path: bytes, body: bytes = b""
    ) -> tuple[IProtocol, StringTransport]:
        protocol, transport = self.connect()
        protocol.dataReceived(
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        return protocol, transport

    def call(self, method: bytes, path: bytes, body: bytes = b"") -> _Response:
        _, transport = self.send(method, path, body)
        written: bytes = transport.value()  # type: ignore[no-untyped-call]  # untyped
        assert transport.disconnecting, written
        return _Response(written)

    def get(self, path: bytes) -> _Response:
        return self.call(b"GET", path)

    def assert_error(self, response: _Response, code: int, message: Optional[str] = None) -> None:
        assert response.code == code, (response.code, response.body)
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str)
        if message is not None:
            assert body["error"] == message


class ImpiTests(_Case):
    def test_digest_of_a_provisioned_user(self) -> None:
        # The must-show: GET /impi/alice@example.com/digest.
        response = self.get(b"/impi/alice@example.com/digest")
        assert response.code == 200
        expected = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
        assert response.json() == {"digest_ha1": expected}
        assert self.get(b"/impi/alice%40example.com/digest").body == response.body
        public = b"?public_id=" + _quote(ALICE_TEL)
        assert self.get(b"/impi/alice%40example.com/digest" + public).json() == {
            "digest_ha1": ALICE_HA1
        }

    def test_digest_errors(self) -> None:
        self.assert_error(
            self.get(b"/impi/nobody@example.com/digest"),
            404,
            "Unknown private identity nobody@example.com",
        )
        self.assert_error(self.get(b"/impi/bob@example.com/digest"), 404)
        self.assert_error(
            self.get(b"/impi/alice@example.com/digest?public_id=" + _quote(BOB_IMPU)), 404
        )

    def test_av_digest(self) -> None:
        for path in (b"/impi/alice@example.com/av", b"/impi/alice@example.com/av/digest"):
            response = self.get(path + b"?impu=" + _quote(ALICE_IMPU) + b"&server-name=sip%3As")
            assert response.json() == {"digest": {"ha1": ALICE_HA1, "realm": DOMAIN, "qop": "auth"}}
        assert response.body == (
            b'{"digest":{"ha1":"' + ALICE_HA1.encode() + b'","realm":"example.com","qop":"auth"}}'
        )

    def test_av_aka_round_trip_and_resync(self) -> None:
        response = self.get(b"/impi/bob%40example.com/av/aka?impu=" + _quote(BOB_IMPU))
        aka = response.json()["aka"]
        assert set(aka) == {"challenge", "response", "cryptkey", "integritykey", "version"}
        assert aka["version"] == 1
        rand, autn = split_challenge(aka["challenge"])
        res, ck, ik, sqn = ue_check(K, OPC, rand, autn)
        assert (aka["response"], aka["cryptkey"], aka["integritykey"]) == (
            res.hex(),
            ck.hex(),
            ik.hex(),
        )
        assert sqn == 32
        resync = base64.b64encode(rand + make_auts(K, OPC, rand, 3200)).decode()
        response = self.get(b"/impi/bob@example.com/av/aka2?resync-auth=" + _quote(resync))
        aka = response.json()["aka"]
        assert aka["version"] == 2
        assert ue_check(K, OPC, *split_challenge(aka["challenge"]))[3] == 3232

    def test_resync_auth_with_a_raw_plus_keeps_it(self) -> None:
        # A "+" of base64 arriving unencoded is not a space (Clearwater did not decode "+").
        rand = b"\xfb" * 16
        resync = base64.b64encode(rand + make_auts(K, OPC, rand, 3200))
        assert b"+" in resync
        response = self.get(b"/impi/bob@example.com/av/aka?resync-auth=" + resync)
        aka = response.json()["aka"]
        assert ue_check(K, OPC, *split_challenge(aka["challenge"]))[3] == 3232

    def test_av_errors(self) -> None:
        self.assert_error(
            self.get(b"/impi/alice@example.com/av/unknown"),
            404,
            "Unsupported authentication scheme",
        )
        self.assert_error(self.get(b"/impi/alice@example.com/av/aka"), 404)
        self.assert_error(self.get(b"/impi/bob@example.com/av/digest"), 404)
        self.assert_error(self.get(b"/impi/x@example.com/av"), 404)
        self.assert_error(self.get(b"/impi/alice@example.com/av?impu=sip%3Ax%40y"), 404)
        self.assert_error(self.get(b"/impi/%ff/av"), 400, "Bad private identity: not UTF-8")
        self.assert_error(self.get(b"/impi/bob@example.com/av?resync-auth=%ff"), 400)

    def test_registration_status(self) -> None:
        path = b"/impi/alice%40example.com/registration-status?impu="
        response = self.get(path + _quote(ALICE_IMPU) + b"&visited-network=example.com")
        assert response.json() == {"result-code": 2001, "scscf": SCSCF}
        # "+" unencoded in a query value stays a "+".
        response = self.get(path + ALICE_TEL.encode() + b"&auth-type=CAPAB")
        assert response.json() == {"result-code": 2001, "scscf": SCSCF}
        self.assert_error(self.get(path + _quote(ALICE_BARRED)), 403)
        self.get(path + _quote(ALICE_BARRED) + b"&sos=true").json()
        self.assert_error(self.get(path + _quote(BOB_IMPU)), 404)
        self.assert_error(self.get(b"/impi/alice%40example.com/registration-status"), 400)
        self.assert_error(self.get(path + _quote(ALICE_IMPU) + b"&auth-type=X"), 400)

    def test_trailing_slash_is_ignored(self) -> None:
        assert self.get(b"/impi/alice@example.com/digest/").code == 200
        assert self.get(b"/impi/alice@example.com/av/").json()["digest"]["ha1"] == ALICE_HA1


class ImpuTests(_Case):
    def test_location(self) -> None:
        response = self.get(b"/impu/" + _quote(ALICE_IMPU) + b"/location?originating=true")
        assert response.json() == {"result-code": 2001, "scscf": SCSCF}
        # ":" "@" ";" unencoded in the path.
        response = self.get(b"/impu/sip:5@wild.example.com;user=phone/location")
        assert response.json() == {
            "result-code": 2001,
            "scscf": SCSCF,
            "wildcard-identity": WILD_PATTERN,
        }
        self.assert_error(self.get(b"/impu/sip%3Anobody%40example.com/location"), 404)

    def test_get_reg_data(self) -> None:
        response = self.get(b"/impu/" + _quote(ALICE_TEL) + b"/reg-data")
        assert response.code == 200
        assert response.header(b"Content-Type") == b"application/xml; charset=utf-8"
        assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        root = ET.fromstring(response.body)
        assert root.tag == "ClearwaterRegData"
        assert root.findtext("RegistrationState") == "NOT_REGISTERED"
        assert root.find("PreviousRegistrationState") is None
        assert root.findtext("IMSSubscription/PrivateID") == ALICE
        identities = root.findall("IMSSubscription/ServiceProfile/PublicIdentity/Identity")
        assert [i.text for i in identities] == [ALICE_IMPU, ALICE_TEL, ALICE_BARRED]
        ifc = root.find("IMSSubscription/ServiceProfile/InitialFilterCriteria")
        assert ifc is not None and ET.tostring(ifc, encoding="unicode") == IFC
        self.assert_error(self.get(b"/impu/sip%3Ax%40example.com/reg-data"), 404)

    def put(self, impu: str, body: Any, query: bytes = b"") -> _Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.call(b"PUT", b"/impu/" + _quote(impu) + b"/reg-data" + query, data)

    def test_put_reg_data_every_reqtype(self) -> None:
        def states(response: _Response) -> tuple[Optional[str], Optional[str]]:
            assert response.code == 200, response.body
            root = ET.fromstring(response.body)
            return root.findtext("RegistrationState"), root.findtext("PreviousRegistrationState")

        body = {"reqtype": "reg", "server_name": "sip:scscf2"}
        response = self.put(ALICE_IMPU, body, b"?private_id=" + _quote(ALICE))
        assert states(response) == ("REGISTERED", "NOT_REGISTERED")
        registration = result(self.store.get_registration(ALICE_IRS))
        assert (registration.state, registration.scscf, registration.impi) == (
            RegState.REGISTERED,
            "sip:scscf2",
            ALICE,
        )
        assert states(self.put(ALICE_IMPU, {"reqtype": "reg"})) == ("REGISTERED", "REGISTERED")
        assert states(self.put(ALICE_IMPU, {"reqtype": "call"})) == ("REGISTERED", "REGISTERED")
        for auth in ("dereg-auth-failed", "dereg-auth-timeout"):
            assert states(self.put(ALICE_IMPU, {"reqtype": auth})) == ("REGISTERED", None)
        for dereg in ("dereg-user", "dereg-timeout", "dereg-admin"):
            assert states(self.put(ALICE_IMPU, {"reqtype": dereg})) == ("UNREGISTERED", None)
            self.assert_error(
                self.put(ALICE_IMPU, {"reqtype": dereg}),
                400,
                "Public identity " + ALICE_IMPU + " is not registered",
            )
            self.put(ALICE_IMPU, {"reqtype": "reg"})
        response = self.put(BOB_IMPU, {"reqtype": "call", "server_name": "sip:s"})
        assert states(response) == ("UNREGISTERED", "NOT_REGISTERED")

    def test_put_reg_data_with_a_wildcard_identity(self) -> None:
        body = {"reqtype": "reg", "server_name": SCSCF, "wildcard_identity": WILD_PATTERN}
        response = self.put("sip:77@wild.example.com", body)
        assert response.code == 200
        assert ET.fromstring(response.body).findtext("RegistrationState") == "REGISTERED"

    def test_bad_put_bodies(self) -> None:
        response = self.put(ALICE_IMPU, b"{not json")
        self.assert_error(response, 400)
        assert response.json()["error"].startswith("Malformed JSON body: ")
        self.assert_error(self.put(ALICE_IMPU, b"[1]"), 400, "Body is not a JSON object")
        self.assert_error(self.put(ALICE_IMPU, {}), 400, "Body has no reqtype")
        self.assert_error(
            self.put(ALICE_IMPU, {"reqtype": "dereg-auth-failure"}),
            400,
            "Unknown reqtype: dereg-auth-failure",
        )
        self.assert_error(
            self.put(ALICE_IMPU, {"reqtype": "reg", "server_name": 5}),
            400,
            "Bad server_name: not a string",
        )
        self.assert_error(self.put(ALICE_IMPU, b"\xff"), 400)
        self.assert_error(
            self.put(ALICE_IMPU, b" " * (MAX_BODY + 1)),
            413,
            "Body larger than " + str(MAX_BODY) + " bytes",
        )
        assert result(self.store.get_registration(ALICE_IRS)).state is RegState.NOT_REGISTERED

    def test_hostile_identity_is_escaped(self) -> None:
        response = self.put(EVE_IMPU, {"reqtype": "reg"})
        assert response.code == 200 and b"<evil>" not in response.body
        root = ET.fromstring(response.body)
        identity = root.findtext("IMSSubscription/ServiceProfile/PublicIdentity/Identity")
        assert identity == EVE_IMPU
        # An error naming a hostile identity is still one JSON string.
        self.assert_error(
            self.get(b"/impu/" + _quote('sip:"x</a>\\@y') + b"/location"),
            404,
            'Unknown public identity sip:"x</a>\\@y',
        )


class RoutingTests(_Case):
    def test_unknown_paths_are_json_404(self) -> None:
        for path in (
            b"/",
            b"/impi",
            b"/impi/",
            b"/impi/alice@example.com",
            b"/impi/alice@example.com/other",
            b"/impi//digest",
            b"/impi/alice@example.com/digest/x",
            b"/impi/alice@example.com/av/aka/x",
            b"/impu/sip:a@b",
            b"/impu/sip:a@b/reg-data/x",
            b"/impu//location",
            b"/nothing",
        ):
            self.assert_error(self.get(path), 404)

    def test_other_methods_are_405(self) -> None:
        response = self.call(b"POST", b"/impi/alice@example.com/digest")
        self.assert_error(response, 405, "Method not allowed")
        assert response.header(b"Allow") == b"GET"
        response = self.call(b"DELETE", b"/impu/sip:a@b/reg-data")
        self.assert_error(response, 405)
        assert response.header(b"Allow") == b"GET, PUT"
        self.assert_error(self.call(b"PUT", b"/impu/sip:a@b/location"), 405)

    def test_management_paths_are_mounted_too(self) -> None:
        assert self.get(b"/ping").body == b"OK"
        assert self.get(b"/metrics").code == 200

    def test_children_for_another_root(self) -> None:
        children = homestead_children(self.homestead)
        assert sorted(children) == [b"impi", b"impu"]


class StoreFailureTests(_Case):
    def test_store_unavailable_is_503_and_timeout_504(self) -> None:
        for error, code in ((StoreUnavailableError("down"), 503), (StoreTimeoutError("slow"), 504)):
            self.store.get_private = lambda impi, e=error: fail(e)  # type: ignore[method-assign, misc]
            self.assert_error(self.get(b"/impi/alice@example.com/digest"), code)
            self.store.get_public = lambda impu, e=error: fail(e)  # type: ignore[method-assign, misc]
            self.assert_error(self.put(ALICE_IMPU), code)
            self.assert_error(self.get(b"/impu/sip:a@b/reg-data"), code)

    def put(self, impu: str) -> _Response:
        return self.call(b"PUT", b"/impu/" + _quote(impu) + b"/reg-data", b'{"reqtype":"reg"}')

    def test_unexpected_errors_are_500_and_logged(self) -> None:
        self.store.get_private = lambda impi: fail(ZeroDivisionError())  # type: ignore[method-assign]
        self.assert_error(self.get(b"/impi/alice@example.com/digest"), 500, "Internal error")
        logged = self.flushLoggedErrors(ZeroDivisionError)  # type: ignore[no-untyped-call]
        assert len(logged) == 1


class AsyncTests(_Case):
    def test_answer_is_written_when_the_store_answers(self) -> None:
        pending: Deferred[Any] = Deferred()
        real = self.store.get_private
        self.store.get_private = lambda impi: pending  # type: ignore[method-assign]
        _, transport = self.send(b"GET", b"/impi/alice@example.com/digest")
        assert transport.value() == b""  # type: ignore[no-untyped-call]
        pending.callback(result(real(ALICE)))
        written: bytes = transport.value()  # type: ignore[no-untyped-call]
        assert _Response(written).json() == {"digest_ha1": ALICE_HA1}

    def test_work_is_cancelled_when_the_client_goes_away(self) -> None:
        cancelled: list[Deferred[Any]] = []
        pending: Deferred[Any] = Deferred(cancelled.append)
        self.store.get_private = lambda impi: pending  # type: ignore[method-assign]
        protocol, transport = self.send(b"GET", b"/impi/alice@example.com/digest")
        protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]
        assert cancelled == [pending]
        assert transport.value() == b""  # type: ignore[no-untyped-call]
