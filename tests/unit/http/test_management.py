"""The management HTTP interface (ARCHITECTURE.md §6): ``/ping``, ``/metrics``, JSON errors.

Requests go through a real :class:`~twisted.web.server.Site` and its HTTP channel over a
``StringTransport``, on a ``MemoryReactorClock``; assertions are on the response bytes.
"""

from __future__ import annotations

import io
import json
from typing import Optional

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from zope.interface.verify import verifyObject

import clearwater.http
from clearwater.http import ManagementResource, management_resource, management_site
from clearwater.http import management as _management
from clearwater.metrics import SipMetrics

_PEER = IPv4Address("TCP", "127.0.0.1", 40000)
_HOST = IPv4Address("TCP", "127.0.0.1", 9886)


class _Response:
    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, raw
        status_line, *lines = head.split(b"\r\n")
        version, code, _reason = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1"
        self.code = int(code)
        self.headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            self.headers.setdefault(name.lower(), []).append(value)

    def header(self, name: bytes) -> bytes:
        (value,) = self.headers[name.lower()]
        return value


def _reactor() -> MemoryReactorClock:
    return MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped in Twisted


def _connect(site: Site) -> tuple[IProtocol, StringTransport]:
    protocol = site.buildProtocol(_PEER)  # type: ignore[no-untyped-call]  # untyped in Twisted
    assert IProtocol.providedBy(protocol)
    transport = StringTransport(hostAddress=_HOST, peerAddress=_PEER)  # type: ignore[no-untyped-call]
    protocol.makeConnection(transport)
    return protocol, transport


def _written(transport: StringTransport) -> bytes:
    value: bytes = transport.value()  # type: ignore[no-untyped-call]  # untyped in Twisted
    return value


def _exchange(site: Site, request: bytes) -> _Response:
    protocol, transport = _connect(site)
    protocol.dataReceived(request)
    response = _Response(_written(transport))
    assert transport.disconnecting  # Connection: close, so one response and done
    return response


def _call(site: Site, method: bytes, path: bytes, body: bytes = b"") -> _Response:
    request = (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    return _exchange(site, request)


def _site(
    registry: Optional[CollectorRegistry] = None,
    health: Optional[_management.HealthCheck] = None,
    children: Optional[dict[bytes, IResource]] = None,
) -> Site:
    return management_site(
        registry if registry is not None else CollectorRegistry(),
        health=health,
        children=children,
        reactor=_reactor(),
    )


def _assert_json_error(response: _Response, code: int, message: str) -> None:
    assert response.code == code
    assert response.header(b"Content-Type") == b"application/json"
    assert json.loads(response.body) == {"error": message}
    assert response.header(b"Content-Length") == b"%d" % len(response.body)


def test_ping_answers_200_ok() -> None:
    response = _call(_site(), b"GET", b"/ping")
    assert response.code == 200
    assert response.header(b"Content-Type") == b"text/plain; charset=utf-8"
    assert response.header(b"Content-Length") == b"2"
    assert response.body == b"OK"


def test_ping_asks_health_on_every_request() -> None:
    answers: list[Optional[str]] = [None, "homestead unreachable", None]
    calls: list[int] = []

    def health() -> Optional[str]:
        calls.append(1)
        return answers[len(calls) - 1]

    site = _site(health=health)
    first, second, third = (_call(site, b"GET", b"/ping") for _ in range(3))
    assert (first.code, first.body) == (200, b"OK")
    assert (second.code, second.body) == (503, b"homestead unreachable")
    assert second.header(b"Content-Type") == b"text/plain; charset=utf-8"
    assert (third.code, third.body) == (200, b"OK")
    assert len(calls) == 3


def test_ping_is_503_and_logged_when_the_health_check_raises() -> None:
    def health() -> Optional[str]:
        raise RuntimeError("boom")

    with capturedLogs() as events:
        response = _call(_site(health=health), b"GET", b"/ping")
    assert (response.code, response.body) == (503, b"health check failed")
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1
    assert failures[0]["log_format"] == "Health check raised"
    assert failures[0]["log_failure"].check(RuntimeError)


def test_metrics_serves_the_registry_text_exposition() -> None:
    metrics = SipMetrics("sprout")
    metrics.request_received("INVITE")
    metrics.request_received("INVITE")
    metrics.request_received("FROB")
    metrics.response_sent(486)
    site = _site(metrics.registry)

    response = _call(site, b"GET", b"/metrics")

    assert response.code == 200
    assert response.header(b"Content-Type") == CONTENT_TYPE_LATEST.encode("ascii")
    assert response.header(b"Content-Length") == b"%d" % len(response.body)
    assert response.body == generate_latest(metrics.registry)
    lines = response.body.decode("utf-8").splitlines()
    assert 'clearwater_sip_requests_total{function="sprout",method="INVITE"} 2.0' in lines
    assert 'clearwater_sip_requests_total{function="sprout",method="other"} 1.0' in lines
    assert 'clearwater_sip_responses_total{class="4xx",function="sprout"} 1.0' in lines
    assert 'clearwater_sip_responses_total{class="2xx",function="sprout"} 0.0' in lines
    assert "# TYPE clearwater_sip_transaction_seconds histogram" in lines
    assert "FROB" not in response.body.decode("utf-8")


def test_metrics_reflect_counts_made_after_the_site_is_built() -> None:
    metrics = SipMetrics("bono")
    site = _site(metrics.registry)
    line = 'clearwater_sip_requests_total{function="bono",method="REGISTER"} %s'
    assert line % "0.0" in _call(site, b"GET", b"/metrics").body.decode().splitlines()
    metrics.request_received("REGISTER")
    assert line % "1.0" in _call(site, b"GET", b"/metrics").body.decode().splitlines()


def test_head_sends_the_get_headers_without_a_body() -> None:
    site = _site()
    ping = _call(site, b"HEAD", b"/ping")
    assert ping.code == 200
    assert ping.header(b"Content-Length") == b"2"
    assert ping.header(b"Content-Type") == b"text/plain; charset=utf-8"
    assert ping.body == b""

    missing = _call(site, b"HEAD", b"/nothing")
    assert missing.code == 404
    assert missing.header(b"Content-Length") == b"%d" % len(b'{"error": "not found"}')
    assert missing.body == b""


def test_head_logs_nothing() -> None:
    with capturedLogs() as events:
        _call(_site(), b"HEAD", b"/ping")
    assert list(events) == []


@pytest.mark.parametrize(
    "path", [b"/", b"/nothing", b"/ping/extra", b"/ping/", b"/metrics/x/y", b"/PING"]
)
def test_unknown_paths_are_404_json(path: bytes) -> None:
    response = _call(_site(), b"GET", path)
    assert response.body == b'{"error": "not found"}'
    _assert_json_error(response, 404, "not found")


@pytest.mark.parametrize(
    ("method", "path"), [(b"POST", b"/ping"), (b"DELETE", b"/metrics"), (b"PUT", b"/ping")]
)
def test_other_methods_are_405_json_with_allow(method: bytes, path: bytes) -> None:
    response = _call(_site(), method, path, b"{}")
    _assert_json_error(response, 405, "method not allowed")
    assert response.header(b"Allow") == b"GET, HEAD"


def test_unknown_path_is_404_whatever_the_method() -> None:
    _assert_json_error(_call(_site(), b"POST", b"/timers", b"{}"), 404, "not found")


class _Timers(Resource):
    """Stands in for sprout's ``/timers`` (spec §6.2)."""

    isLeaf = True  # noqa: N815  # Twisted's name

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.bodies: list[bytes] = []

    def render_POST(self, request: Request) -> bytes:  # noqa: N802  # Twisted's name
        assert request.content is not None
        self.bodies.append(request.content.read())
        return b"accepted"


def test_children_share_the_management_port() -> None:
    timers = _Timers()
    site = _site(children={b"timers": timers})
    response = _call(site, b"POST", b"/timers", b'{"aor_id": "sip:alice@example.com"}')
    assert (response.code, response.body) == (200, b"accepted")
    assert timers.bodies == [b'{"aor_id": "sip:alice@example.com"}']
    assert _call(site, b"GET", b"/ping").body == b"OK"


def test_put_child_adds_an_api_later() -> None:
    root = management_resource(CollectorRegistry())
    timers = _Timers()
    root.putChild(b"timers", timers)
    site = management_site(CollectorRegistry(), children={b"api": root})
    assert _call(site, b"POST", b"/api/timers", b"x").body == b"accepted"
    assert _call(site, b"GET", b"/api/ping").body == b"OK"
    assert timers.bodies == [b"x"]


@pytest.mark.parametrize("name", [b"ping", b"metrics"])
def test_children_cannot_replace_ping_or_metrics(name: bytes) -> None:
    with pytest.raises(ValueError, match="/" + name.decode() + " taken"):
        management_resource(CollectorRegistry(), children={name: _Timers()})


def test_site_writes_no_access_log() -> None:
    site = _site()
    site.doStart()  # type: ignore[no-untyped-call]  # untyped in Twisted
    log_file = io.StringIO()
    site.logFile = log_file
    _call(site, b"GET", b"/ping")
    _call(site, b"GET", b"/nothing")
    assert log_file.getvalue() == ""
    site.doStop()  # type: ignore[no-untyped-call]  # untyped in Twisted


def test_site_times_out_idle_connections_on_the_given_reactor() -> None:
    reactor = _reactor()
    site = management_site(CollectorRegistry(), reactor=reactor)
    _protocol, transport = _connect(site)
    assert reactor.getDelayedCalls()
    timeout = site.timeOut
    assert timeout is not None
    reactor.advance(timeout - 1)
    assert not transport.disconnecting
    reactor.advance(1)
    assert transport.disconnecting


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    site = _site()
    protocol, transport = _connect(site)
    protocol.dataReceived(b"GET /ping HTTP/1.1\r\nHost: h\r\n\r\n")
    protocol.dataReceived(b"GET /ping HTTP/1.1\r\nHost: h\r\n\r\n")
    assert _written(transport).count(b"HTTP/1.1 200 OK\r\n") == 2
    assert not transport.disconnecting


def test_the_management_resource_provides_iresource() -> None:
    root = management_resource(CollectorRegistry())
    assert isinstance(root, ManagementResource)
    assert verifyObject(IResource, root)
    assert verifyObject(IResource, root.children[b"ping"])
    assert verifyObject(IResource, root.children[b"metrics"])


def test_package_exports() -> None:
    assert set(clearwater.http.__all__) == {
        "HealthCheck",
        "ManagementResource",
        "QuietSite",
        "management_resource",
        "management_site",
    }
    for name in clearwater.http.__all__:
        assert getattr(clearwater.http, name) is getattr(_management, name)
