"""The AppServer API and its sproutlet shim (spec §2.8, Clearwater's sproutletappserver.cpp)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Optional

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from typing_extensions import override

from clearwater.sip import NameAddr, Request, Response, SipUri, Uri, parse_message
from clearwater.sip.headers import RECORD_ROUTE
from clearwater.sip.proxy import ForkState
from clearwater.sip.sproutlet import ErrorState, ForkStatus, Sproutlet, SproutletTsx
from clearwater.sip.sproutlet._appserver import (
    AppServer,
    AppServerTsx,
    AppServerTsxHelper,
    SproutletAppServerShim,
    SproutletAppServerShimTsx,
    SproutletAppServerTsxHelper,
)
from clearwater.sip.transaction import build_response

ODI_ROUTE = "<sip:odi_abc123@scscf.sprout.example.com:5054;transport=tcp;lr;orig>"
NEXT_ROUTE = "<sip:bgcf.sprout.example.com;lr>"
REFLEXIVE = SipUri("mmtel.sprout.example.com", params=(("transport", "tcp"),))


def _request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def _invite(*routes: str) -> Request:
    """An INVITE as the AS sproutlet receives it: the top Route (to the AS) already removed,
    ``routes`` left (the onward route set)."""
    lines = b"".join(b"Route: " + route.encode() + b"\r\n" for route in routes)
    return _request(
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP scscf.sprout.example.com;branch=z9hG4bKas1\r\n"
        b"Max-Forwards: 69\r\n" + lines + b"Record-Route: <sip:scscf.sprout.example.com;lr>\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: call-1\r\nCSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@192.0.2.1:5060>\r\n\r\n"
    )


def _in_dialog(*routes: str) -> Request:
    lines = b"".join(b"Route: " + route.encode() + b"\r\n" for route in routes)
    return _request(
        b"BYE sip:bob@192.0.2.2:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP scscf.sprout.example.com;branch=z9hG4bKas2\r\n"
        b"Max-Forwards: 69\r\n" + lines + b"From: <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>;tag=b1\r\n"
        b"Call-ID: call-1\r\nCSeq: 2 BYE\r\n\r\n"
    )


CANCEL = _request(
    b"CANCEL sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP scscf.sprout.example.com;branch=z9hG4bKas1\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\nCall-ID: call-1\r\nCSeq: 1 CANCEL\r\n\r\n"
)


class RecordingHelper:
    """A SproutletTsxHelper that records every action and returns canned values.

    ``send_request`` records the request with a snapshot of its Route and Record-Route lines
    (the shim edits the request in place) and returns fork ids 1, 2, ...
    """

    def __init__(self, received: Request, route: Optional[str] = None) -> None:
        self.received = received
        self.route = None if route is None else NameAddr.parse(route)
        self.reflexive = REFLEXIVE
        self.calls: list[tuple[Any, ...]] = []
        self.sent: list[tuple[Request, list[str], list[str]]] = []

    def _record(self, *call: Any) -> None:
        self.calls.append(call)

    def original_request(self) -> Request:
        self._record("original_request")
        return self.received.copy()

    def route_hdr(self) -> Optional[NameAddr]:
        self._record("route_hdr")
        return self.route

    def get_reflexive_uri(self) -> SipUri:
        self._record("get_reflexive_uri")
        return self.reflexive

    def is_uri_reflexive(self, uri: Uri) -> bool:
        self._record("is_uri_reflexive", uri)
        return uri == self.reflexive

    def create_request(self) -> Request:
        self._record("create_request")
        return self.received.copy()

    def clone_request(self, request: Request) -> Request:
        self._record("clone_request", request)
        return request.copy()

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        self._record("create_response", request, status, reason)
        return build_response(request, status, reason or "OK")

    def send_request(self, request: Request) -> int:
        self._record("send_request", request)
        self.sent.append(
            (request, request.headers.get_all("Route"), request.headers.get_all("Record-Route"))
        )
        return len(self.sent)

    def send_response(self, response: Response) -> None:
        self._record("send_response", response)

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        self._record("cancel_fork", fork_id, status, reason)

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        self._record("cancel_pending_forks", status, reason)

    def mark_pending_forks_as_abandoned(self) -> None:
        self._record("mark_pending_forks_as_abandoned")

    def fork_state(self, fork_id: int) -> ForkStatus:
        self._record("fork_state", fork_id)
        return ForkStatus(ForkState.TERMINATED, ErrorState.NONE)

    def schedule_timer(self, context: object, duration: float) -> int:
        self._record("schedule_timer", context, duration)
        return 3

    def cancel_timer(self, timer_id: int) -> None:
        self._record("cancel_timer", timer_id)

    def timer_running(self, timer_id: int) -> bool:
        self._record("timer_running", timer_id)
        return True

    def get_routing_uri(self, request: Request) -> Uri:
        self._record("get_routing_uri", request)
        return request.uri

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        self._record("next_hop_uri", service, base_uri)
        return base_uri

    def get_local_hostname(self, uri: SipUri) -> str:
        self._record("get_local_hostname", uri)
        return "sprout.example.com"


class RecordingTsx(AppServerTsx):
    """Records what the AS sees in each callback, then does the default."""

    def __init__(self, helper: AppServerTsxHelper) -> None:
        super().__init__(helper)
        self.seen: list[tuple[Any, ...]] = []

    @override
    def on_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.seen.append(("initial", request.headers.get_all("Route"), self.dialog_id()))
        return super().on_initial_request(request)

    @override
    def on_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.seen.append(("in_dialog", request.headers.get_all("Route"), self.dialog_id()))
        return super().on_in_dialog_request(request)

    @override
    def on_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        self.seen.append(("response", response.status, fork_id))
        return super().on_response(response, fork_id)

    @override
    def on_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
        self.seen.append(("cancel", status, cancel))
        return super().on_cancel(status, cancel)

    @override
    def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
        self.seen.append(("timer", context))
        return super().on_timer_expiry(context)


class OneTsxAppServer(AppServer):
    """Builds one tsx per request with ``factory`` (None: decline)."""

    def __init__(self, factory: Any = RecordingTsx, **kwargs: Any) -> None:
        super().__init__("mmtel", **kwargs)
        self.factory = factory
        self.asked: list[tuple[AppServerTsxHelper, Request]] = []
        self.tsx: Optional[AppServerTsx] = None

    @override
    def get_app_tsx(self, helper: AppServerTsxHelper, request: Request) -> Optional[AppServerTsx]:
        self.asked.append((helper, request))
        self.tsx = None if self.factory is None else self.factory(helper)
        return self.tsx


def _start(
    received: Request, route: Optional[str] = None, factory: Any = RecordingTsx
) -> tuple[RecordingHelper, SproutletAppServerShimTsx, Any]:
    helper = RecordingHelper(received, route)
    app_server = OneTsxAppServer(factory)
    tsx = SproutletAppServerShim(app_server).get_tsx(helper, "mmtel", received)
    assert isinstance(tsx, SproutletAppServerShimTsx)
    assert tsx.app_tsx is app_server.tsx
    return helper, tsx, app_server.tsx


def _route_texts(*routes: str) -> list[str]:
    return [str(NameAddr.parse(route)) for route in routes]


# --------------------------------------------------------------------------- AppServer, shim


def test_app_server_attributes() -> None:
    app = AppServer("mmtel", aliases=["mmtel-as"])
    assert (app.service_name, app.aliases, app.network_function) == (
        "mmtel",
        ("mmtel-as",),
        "mmtel",
    )
    assert AppServer("cdiv", network_function="scscf").network_function == "scscf"
    assert repr(app) == "AppServer('mmtel', network_function='mmtel')"
    with pytest.raises(ValueError):
        AppServer("")


def test_get_app_tsx_must_be_written() -> None:
    request = _invite()
    with pytest.raises(NotImplementedError, match=r"AppServer\.get_app_tsx"):
        AppServer("mmtel").get_app_tsx(
            SproutletAppServerTsxHelper(RecordingHelper(request)), request
        )


def test_shim_is_a_sproutlet_named_after_the_app_server() -> None:
    app = OneTsxAppServer(aliases=("mmtel-as",), network_function="mmtel-nf")
    shim = SproutletAppServerShim(app, 5055, "sip:mmtel.sprout.example.com", service_host="h")
    assert isinstance(shim, Sproutlet)
    assert shim.app_server is app
    assert (shim.service_name, shim.port, shim.uri, shim.service_host) == (
        "mmtel",
        5055,
        "sip:mmtel.sprout.example.com",
        "h",
    )
    assert (shim.aliases, shim.network_function) == (("mmtel-as",), "mmtel-nf")


def test_declining_app_server_declines_the_sproutlet() -> None:
    request = _invite(ODI_ROUTE)
    helper = RecordingHelper(request)
    app = OneTsxAppServer(None)
    assert SproutletAppServerShim(app).get_tsx(helper, "mmtel", request) is None
    [(as_helper, seen)] = app.asked
    assert isinstance(as_helper, SproutletAppServerTsxHelper)
    # The request is left as the proxy gave it (it may route on without the AS).
    assert seen is request
    assert request.headers.get_all("Route") == [ODI_ROUTE]
    assert helper.sent == []


def test_app_tsx_gets_the_shim_helper() -> None:
    request = _invite(ODI_ROUTE)
    helper = RecordingHelper(request)
    app = OneTsxAppServer()
    tsx = SproutletAppServerShim(app).get_tsx(helper, "mmtel", request)
    assert isinstance(tsx, SproutletAppServerShimTsx)
    assert isinstance(tsx, SproutletTsx)
    assert tsx.helper is helper
    assert app.tsx is not None
    assert app.tsx.helper is tsx.app_helper is app.asked[0][0]


# --------------------------------------------------------------------------- Route handling


def test_as_sees_no_routes_and_forwarded_request_gets_them_back() -> None:
    request = _invite(ODI_ROUTE, NEXT_ROUTE)
    helper, tsx, app_tsx = _start(request)
    assert tsx.on_rx_initial_request(request) is None
    assert app_tsx.seen == [("initial", [], "")]
    [(sent, routes, record_routes)] = helper.sent
    assert sent is request
    assert routes == _route_texts(ODI_ROUTE, NEXT_ROUTE)
    # No add_to_dialog: the Record-Route already there is all there is.
    assert record_routes == ["<sip:scscf.sprout.example.com;lr>"]
    wire = sent.to_bytes()
    assert (
        b"Route: <sip:odi_abc123@scscf.sprout.example.com:5054;transport=tcp;lr;orig>\r\n"
        b"Route: <sip:bgcf.sprout.example.com;lr>\r\n" in wire
    )


def test_routes_restored_on_every_send_whatever_the_as_did() -> None:
    class Meddler(RecordingTsx):
        @override
        def on_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
            fork = self.clone_request(request)
            fork.headers.add("Route", "<sip:evil.example.net;lr>")
            self.send_request(fork)
            request.headers.prepend("Route", "<sip:other.example.net;lr>")
            self.send_request(request)
            # One built from original_request(): it has no Routes to start with.
            fresh = self.original_request()
            assert fresh.headers.get_all("Route") == []
            self.send_request(fresh)
            return None

        @override
        def on_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
            late = self.original_request()
            late.headers.add("Route", "<sip:late.example.net;lr>")
            self.send_request(late)  # a late fork, from a response
            return None

    request = _invite(ODI_ROUTE, NEXT_ROUTE)
    helper, tsx, _ = _start(request, factory=Meddler)
    tsx.on_rx_initial_request(request)
    tsx.on_rx_response(build_response(request, 486, "Busy Here"), 1)
    expected = _route_texts(ODI_ROUTE, NEXT_ROUTE)
    assert len(helper.sent) == 4
    for _, routes, _ in helper.sent:
        assert routes == expected


def test_request_without_routes_is_sent_without_routes() -> None:
    request = _invite()
    helper, tsx, _ = _start(request)
    tsx.on_rx_initial_request(request)
    [(_, routes, _)] = helper.sent
    assert routes == []


def test_original_request_has_no_routes() -> None:
    request = _invite(ODI_ROUTE)
    helper = RecordingHelper(request)
    as_helper = SproutletAppServerTsxHelper(helper)
    copy = as_helper.original_request()
    assert copy.headers.get_all("Route") == []
    assert copy.headers.get_all("Record-Route") == ["<sip:scscf.sprout.example.com;lr>"]
    assert request.headers.get_all("Route") == [ODI_ROUTE]  # the helper's copy was edited


# --------------------------------------------------------------------------- dialogs


def test_add_to_dialog_record_routes_every_fork_with_the_dialog_id() -> None:
    class Joiner(RecordingTsx):
        @override
        def on_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
            self.add_to_dialog("d-42")
            self.send_request(self.clone_request(request))
            self.send_request(request)
            return None

    request = _invite(ODI_ROUTE)
    helper, tsx, app_tsx = _start(request, factory=Joiner)
    tsx.on_rx_initial_request(request)
    assert app_tsx.dialog_id() == "d-42"
    assert len(helper.sent) == 2
    for sent, routes, record_routes in helper.sent:
        assert routes == _route_texts(ODI_ROUTE)
        assert record_routes == [
            "<sip:mmtel.sprout.example.com;transport=tcp;lr;dialog_id=d-42>",
            "<sip:scscf.sprout.example.com;lr>",
        ]
        record_route = sent.headers.parsed(RECORD_ROUTE)[0]
        assert isinstance(record_route.uri, SipUri)
        assert record_route.uri.param("dialog_id") == "d-42"
        assert record_route.uri.lr


def test_add_to_dialog_without_id_adds_the_plain_reflexive_record_route() -> None:
    request = _invite(ODI_ROUTE)
    helper = RecordingHelper(request)
    helper.reflexive = SipUri("mmtel.sprout.example.com", params=(("lr", None),))
    as_helper = SproutletAppServerTsxHelper(helper)
    as_helper.take_onward_route(request)
    as_helper.add_to_dialog()
    assert as_helper.dialog_id() == ""
    as_helper.send_request(request)
    [(_, _, record_routes)] = helper.sent
    # lr is not doubled, and there is no dialog_id parameter.
    assert record_routes[0] == "<sip:mmtel.sprout.example.com;lr>"


def test_add_to_dialog_refuses_a_bad_id() -> None:
    as_helper = SproutletAppServerTsxHelper(RecordingHelper(_invite()))
    with pytest.raises(ValueError):
        as_helper.add_to_dialog("a b")
    assert as_helper.dialog_id() == ""


def test_in_dialog_request_gets_dialog_id_from_route_hdr() -> None:
    request = _in_dialog(ODI_ROUTE)
    route = "<sip:mmtel.sprout.example.com;transport=tcp;lr;dialog_id=d-42>"
    helper, tsx, app_tsx = _start(request, route)
    assert tsx.on_rx_in_dialog_request(request) is None
    assert app_tsx.seen == [("in_dialog", [], "d-42")]
    [(_, routes, record_routes)] = helper.sent
    assert routes == _route_texts(ODI_ROUTE)
    # As in Clearwater, the dialog's Record-Route goes on again.
    assert record_routes == ["<sip:mmtel.sprout.example.com;transport=tcp;lr;dialog_id=d-42>"]


def test_in_dialog_request_without_dialog_id() -> None:
    request = _in_dialog(ODI_ROUTE)
    helper, tsx, app_tsx = _start(request, "<sip:mmtel.sprout.example.com;lr>")
    tsx.on_rx_in_dialog_request(request)
    assert app_tsx.seen == [("in_dialog", [], "")]
    [(_, routes, record_routes)] = helper.sent
    assert (routes, record_routes) == (_route_texts(ODI_ROUTE), [])


def test_dialog_id_is_not_read_for_an_initial_request() -> None:
    request = _invite(ODI_ROUTE)
    helper, tsx, app_tsx = _start(request, "<sip:mmtel.sprout.example.com;lr;dialog_id=x>")
    tsx.on_rx_initial_request(request)
    assert app_tsx.seen == [("initial", [], "")]
    assert helper.sent[0][2] == ["<sip:scscf.sprout.example.com;lr>"]


def test_route_hdr_reaches_the_as() -> None:
    route = "<sip:mmtel.sprout.example.com;lr;dialog_id=d-1>"
    _, _, app_tsx = _start(_invite(), route)
    assert app_tsx.route_hdr() == NameAddr.parse(route)


# --------------------------------------------------------------------------- callbacks


def test_callbacks_are_mapped() -> None:
    request = _invite(ODI_ROUTE)
    helper, tsx, app_tsx = _start(request)
    ringing = build_response(request, 180, "Ringing")
    assert tsx.on_rx_response(ringing, 5) is None
    assert tsx.on_rx_cancel(487, CANCEL) is None
    assert tsx.on_rx_cancel(408, None) is None
    assert tsx.on_timer_expiry("no-answer") is None
    # Not offered to the AS: no callback, no action.
    assert tsx.on_tx_request(request, 5) is None
    assert tsx.on_tx_response(ringing) is None
    assert app_tsx.seen == [
        ("response", 180, 5),
        ("cancel", 487, CANCEL),
        ("cancel", 408, None),
        ("timer", "no-answer"),
    ]
    # The default on_response forwards the response upstream; nothing else acted.
    assert [call[0] for call in helper.calls] == ["send_response"]
    assert helper.calls[0][1] is ringing


class DeferredTsx(AppServerTsx):
    """Every callback returns a fresh Deferred, kept in ``returned``."""

    def __init__(self, helper: AppServerTsxHelper) -> None:
        super().__init__(helper)
        self.returned: list[Deferred[None]] = []

    def _pending(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.returned.append(d)
        return d

    @override
    def on_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        return self._pending()

    @override
    def on_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        return self._pending()

    @override
    def on_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        return self._pending()

    @override
    def on_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
        return self._pending()

    @override
    def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
        return self._pending()


def test_awaitables_are_passed_through() -> None:
    request = _invite(ODI_ROUTE)
    _, tsx, app_tsx = _start(request, factory=DeferredTsx)
    results = [
        tsx.on_rx_initial_request(request),
        tsx.on_rx_in_dialog_request(_in_dialog()),
        tsx.on_rx_response(build_response(request, 200, "OK"), 1),
        tsx.on_rx_cancel(487, CANCEL),
        tsx.on_timer_expiry(None),
    ]
    assert len(app_tsx.returned) == 5
    for result, returned in zip(results, app_tsx.returned):
        assert result is returned


def test_async_callback_acts_when_resumed() -> None:
    lookup: Deferred[str] = Deferred()

    class AsyncTsx(AppServerTsx):
        async def _divert(self, response: Response) -> None:
            target = await lookup
            fork = self.original_request()
            fork.uri = SipUri("example.com", target)
            self.send_request(fork)

        @override
        def on_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
            return self._divert(response)

    request = _invite(ODI_ROUTE)
    helper, tsx, _ = _start(request, factory=AsyncTsx)
    tsx.on_rx_initial_request(request)  # the default: forwarded as fork 1
    pending = tsx.on_rx_response(build_response(request, 486, "Busy Here"), 1)
    assert pending is not None
    done = ensureDeferred(_as_coroutine(pending))
    assert len(helper.sent) == 1
    lookup.callback("carol")
    assert done.called
    [_, (sent, routes, _)] = helper.sent
    assert str(sent.uri) == "sip:carol@example.com"
    assert routes == _route_texts(ODI_ROUTE)


# --------------------------------------------------------------------------- actions


def test_actions_reach_the_sproutlet_helper() -> None:
    request = _invite(ODI_ROUTE)
    helper, _, app_tsx = _start(request)
    response = build_response(request, 200, "OK")
    assert app_tsx.clone_request(request) == request
    assert app_tsx.create_response(request, 486, "Busy Here").status == 486
    app_tsx.cancel_fork(2, 480, "gone")
    app_tsx.cancel_pending_forks(487)
    app_tsx.send_response(response)
    assert app_tsx.schedule_timer("ctx", 20.0) == 3
    app_tsx.cancel_timer(3)
    assert app_tsx.timer_running(3) is True
    assert helper.calls == [
        ("clone_request", request),
        ("create_response", request, 486, "Busy Here"),
        ("cancel_fork", 2, 480, "gone"),
        ("cancel_pending_forks", 487, ""),
        ("send_response", response),
        ("schedule_timer", "ctx", 20.0),
        ("cancel_timer", 3),
        ("timer_running", 3),
    ]


# --------------------------------------------------------------------------- helpers


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable
