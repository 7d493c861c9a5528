"""Ralf's HTTP API (spec §6.4): :mod:`clearwater.http.ralf`.

Requests go as bytes through a real :class:`~twisted.web.server.Site` over a
``StringTransport``; assertions are on the response bytes and on the billing requests handed
on.
"""

from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from typing_extensions import override

from clearwater.diameter.apps import rf
from clearwater.diameter.apps.rf import AccountingRecordType
from clearwater.http.ralf import MAX_BODY, ralf_resource
from clearwater.ralf.session import BillingRequest, Outcome, RalfSessionManager
from clearwater.stores.memory import MemoryCasStore, MemoryTimerService
from tests.unit.ralf.test_session import CALL_ID, CDF1, FakeNode, make_event

_PEER = IPv4Address("TCP", "127.0.0.1", 40000)
_HOST = IPv4Address("TCP", "127.0.0.1", 10888)


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

    def error(self) -> str:
        assert self.header(b"Content-Type") == b"application/json"
        assert self.header(b"Content-Length") == b"%d" % len(self.body)
        body = json.loads(self.body)
        assert list(body) == ["error"] and isinstance(body["error"], str)
        message: str = body["error"]
        return message


class RecordingSink:
    def __init__(self) -> None:
        self.requests: list[BillingRequest] = []
        self.accept = True

    def submit(self, request: BillingRequest) -> bool:
        if self.accept:
            self.requests.append(request)
        return self.accept


def _path(call_id: str = CALL_ID, query: str = "") -> bytes:
    return b"/call-id/" + quote(call_id, safe="").encode("ascii") + query.encode("ascii")


def _start_body(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "peers": {"ccf": [CDF1], "ecf": ["ecf.example.com"]},
        "event": make_event(2, refresh=600),
    }
    body.update(changes)
    return json.dumps(body).encode("utf-8")


class _Case(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.sink = RecordingSink()
        self.registry = CollectorRegistry()
        self.site = self.make_site(self.sink)

    def make_site(self, sink: Any) -> Site:
        resource = ralf_resource(sink, registry=self.registry)
        return Site(resource, reactor=MemoryReactorClock())  # type: ignore[no-untyped-call]

    def call(self, method: bytes, path: bytes, body: bytes = b"") -> _Response:
        protocol = self.site.buildProtocol(_PEER)  # type: ignore[no-untyped-call]  # untyped
        assert IProtocol.providedBy(protocol)
        transport = StringTransport(hostAddress=_HOST, peerAddress=_PEER)  # type: ignore[no-untyped-call]
        protocol.makeConnection(transport)
        protocol.dataReceived(
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + b"Content-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        written: bytes = transport.value()  # type: ignore[no-untyped-call]  # untyped
        assert transport.disconnecting, written
        return _Response(written)

    def post(self, body: bytes, path: Optional[bytes] = None) -> _Response:
        return self.call(b"POST", _path() if path is None else path, body)

    def assert_bad(self, body: bytes, fragment: str) -> None:
        response = self.post(body)
        assert response.code == 400, (response.code, response.body)
        assert fragment in response.error(), response.error()
        assert self.sink.requests == []


class CallIdTests(_Case):
    def test_valid_start_is_answered_200_and_handed_on(self) -> None:
        response = self.post(_start_body())
        assert response.code == 200
        assert response.body == b""
        assert response.header(b"Content-Length") == b"0"
        [request] = self.sink.requests
        assert request == BillingRequest(
            call_id=CALL_ID,
            record_type=AccountingRecordType.START,
            role=0,
            function=0,
            event=make_event(2, refresh=600),
            refresh_time=600,
            ccfs=(CDF1,),
            ecfs=("ecf.example.com",),
            timer_interim=False,
        )

    def test_call_id_is_percent_decoded(self) -> None:
        odd = "a/b c;d@[2001:db8::1]%"
        assert self.post(_start_body(), _path(odd)).code == 200
        assert self.sink.requests[0].call_id == odd
        # Unescaped characters that are legal in a path segment need no escaping.
        assert self.post(_start_body(), b"/call-id/abc@10.0.0.1").code == 200
        assert self.sink.requests[1].call_id == "abc@10.0.0.1"

    def test_timer_interim_query(self) -> None:
        body = json.dumps(
            {
                "event": {
                    "Accounting-Record-Type": 3,
                    "Service-Information": {
                        "IMS-Information": {"Role-Of-Node": 1, "Node-Functionality": 0}
                    },
                }
            }
        ).encode()
        for query, expected in (
            ("?timer-interim=true", True),
            ("?timer-interim=%74rue", True),
            ("?x=1&timer-interim=true", True),
            ("?timer-interim=false", False),
            ("?timer-interim=True", False),
            ("?timer-interim=false&timer-interim=true", False),
            ("", False),
        ):
            self.sink.requests.clear()
            assert self.post(body, _path(query=query)).code == 200
            [request] = self.sink.requests
            assert request.timer_interim is expected, query
            assert request.record_type is AccountingRecordType.INTERIM
            assert request.role == 1

    def test_start_without_peers_is_answered_200(self) -> None:
        # Clearwater's behaviour: 200, and nothing sent (the manager drops it).
        body = json.dumps({"event": make_event(1)}).encode()
        assert self.post(body).code == 200
        [request] = self.sink.requests
        assert request.ccfs == ()

    def test_bad_json(self) -> None:
        self.assert_bad(b"{", "Body is not JSON")
        self.assert_bad(b"", "Body is not JSON")
        self.assert_bad(b'{"event": "\xff"}', "Body is not JSON")
        self.assert_bad(b"[]", "body: not a JSON object")

    def test_each_validation_error_is_named(self) -> None:
        self.assert_bad(b"{}", "event: missing or not an object")
        event = make_event(2)
        del event["Service-Information"]
        self.assert_bad(
            _start_body(event=event),
            "event.Service-Information.IMS-Information: missing or not an object",
        )
        event = make_event(2)
        del event["Service-Information"]["IMS-Information"]["Node-Functionality"]
        self.assert_bad(
            _start_body(event=event),
            "event.Service-Information.IMS-Information.Node-Functionality: missing or not an "
            "integer",
        )
        event = make_event(2)
        event["Accounting-Record-Type"] = 9
        self.assert_bad(_start_body(event=event), "event.Accounting-Record-Type: 9 is not 1")
        self.assert_bad(_start_body(peers={"ccf": []}), "peers.ccf: missing, empty or not an array")
        event = make_event(2)
        event["Service-Information"]["IMS-Information"]["Calling-Party-Address"] = [7]
        self.assert_bad(
            _start_body(event=event),
            "event.Service-Information.IMS-Information.Calling-Party-Address[0]: expected a string",
        )
        event = make_event(2)
        event["Origin-Host"] = "sprout.example.com"
        self.assert_bad(_start_body(event=event), "event.Origin-Host: set by ralf")

    def test_body_size_limit(self) -> None:
        body = _start_body()
        padded = body + b" " * (MAX_BODY - len(body))
        assert len(padded) == MAX_BODY
        assert self.post(padded).code == 200
        response = self.post(padded + b" ")
        assert response.code == 413
        assert response.error() == "Body larger than 65536 bytes"
        assert len(self.sink.requests) == 1

    def test_overloaded_is_503(self) -> None:
        self.sink.accept = False
        response = self.post(_start_body())
        assert response.code == 503
        assert response.error() == "Overloaded"

    def test_other_methods_are_405(self) -> None:
        for method in (b"GET", b"PUT", b"DELETE", b"PATCH"):
            response = self.call(method, _path(), _start_body())
            assert response.code == 405, method
            assert response.header(b"Allow") == b"POST"
            assert response.error() == "Method not allowed"
        assert self.sink.requests == []

    def test_other_paths_are_404(self) -> None:
        for path in (
            b"/",
            b"/call-id",
            b"/call-id/",
            b"/call-id/a/b",
            b"/call-id/a/timer-interim=true",
            b"/call-ids/a",
            b"/nothing",
        ):
            response = self.post(_start_body(), path)
            assert response.code == 404, path
            assert response.error() in ("Not found", "not found")
        assert self.sink.requests == []

    def test_call_id_not_utf8(self) -> None:
        response = self.post(_start_body(), b"/call-id/%FF")
        assert response.code == 400
        assert response.error() == "Call id is not UTF-8"


class ManagementTests(_Case):
    def test_ping_and_metrics(self) -> None:
        ping = self.call(b"GET", b"/ping")
        assert (ping.code, ping.body) == (200, b"OK")
        Counter("clearwater_ralf_test", "A test counter.", registry=self.registry).inc()
        metrics = self.call(b"GET", b"/metrics")
        assert metrics.code == 200
        assert b"clearwater_ralf_test_total 1.0" in metrics.body


class WithManagerTests(_Case):
    def test_answered_before_the_cdf_answers(self) -> None:
        clock = Clock()
        node = FakeNode()
        node.behaviour[CDF1] = None  # the ACA has not come
        manager = RalfSessionManager(
            node,
            MemoryCasStore(clock),
            MemoryTimerService(clock),
            origin_host="ralf.example.com",
            origin_realm="example.com",
            billing_realm="example.com",
            max_in_flight=1,
        )
        self.site = self.make_site(manager)
        assert self.post(_start_body()).code == 200
        [(message, pending)] = node.pending
        assert rf.parse_acr(message).record_type is AccountingRecordType.START
        assert manager.in_flight == 1
        # The one request allowed is in progress: the next is refused.
        assert self.post(_start_body()).code == 503
        pending.callback(rf.aca(message, origin_host=CDF1, origin_realm="x", result_code=2001))
        assert manager.outcomes[Outcome.SUCCESS] == 1
        assert self.post(_start_body()).code == 200
