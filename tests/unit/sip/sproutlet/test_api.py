"""The Sproutlet base class (spec §2.1)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from clearwater.sip import NameAddr, Request, Response, SipUri, Uri, parse_message
from clearwater.sip.proxy import ForkState
from clearwater.sip.sproutlet import ErrorState, ForkStatus, Sproutlet, SproutletTsx
from clearwater.sip.transaction import build_response


def _request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


OPTIONS = _request(
    b"OPTIONS sip:greeter@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:greeter@example.com>\r\n"
    b"Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
)


class RecordingHelper:
    """A SproutletTsxHelper that records every action and returns canned values."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def _record(self, *call: Any) -> None:
        self.calls.append(call)

    def original_request(self) -> Request:
        self._record("original_request")
        return OPTIONS.copy()

    def route_hdr(self) -> Optional[NameAddr]:
        self._record("route_hdr")
        return None

    def get_reflexive_uri(self) -> SipUri:
        self._record("get_reflexive_uri")
        return SipUri("greeter.sprout.example.com")

    def is_uri_reflexive(self, uri: Uri) -> bool:
        self._record("is_uri_reflexive", uri)
        return True

    def create_request(self) -> Request:
        self._record("create_request")
        return OPTIONS.copy()

    def clone_request(self, request: Request) -> Request:
        self._record("clone_request", request)
        return request.copy()

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        self._record("create_response", request, status, reason)
        return build_response(request, status, reason or "OK")

    def send_request(self, request: Request) -> int:
        self._record("send_request", request)
        return 7

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
        return ForkStatus(ForkState.TERMINATED, ErrorState.TIMEOUT)

    def schedule_timer(self, context: object, duration: float) -> int:
        self._record("schedule_timer", context, duration)
        return 3

    def cancel_timer(self, timer_id: int) -> None:
        self._record("cancel_timer", timer_id)

    def timer_running(self, timer_id: int) -> bool:
        self._record("timer_running", timer_id)
        return False

    def get_routing_uri(self, request: Request) -> Uri:
        self._record("get_routing_uri", request)
        return request.uri

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        self._record("next_hop_uri", service, base_uri)
        return base_uri

    def get_local_hostname(self, uri: SipUri) -> str:
        self._record("get_local_hostname", uri)
        return "sprout.example.com"


def test_defaults_and_attributes() -> None:
    sproutlet = Sproutlet("greeter", 5070, aliases=["hello"])
    assert (sproutlet.service_name, sproutlet.port, sproutlet.uri) == ("greeter", 5070, "")
    assert sproutlet.aliases == ("hello",)
    assert sproutlet.network_function == "greeter"  # defaults to the service name
    assert Sproutlet("registrar", network_function="scscf").network_function == "scscf"
    assert repr(sproutlet) == "Sproutlet('greeter', port=5070, network_function='greeter')"


@pytest.mark.parametrize(("name", "port"), [("", 0), ("x", -1), ("x", 65536)])
def test_bad_name_or_port_is_refused(name: str, port: int) -> None:
    with pytest.raises(ValueError):
        Sproutlet(name, port)


def test_get_tsx_must_be_written() -> None:
    with pytest.raises(NotImplementedError, match=r"Sproutlet\.get_tsx"):
        Sproutlet("greeter").get_tsx(RecordingHelper(), "greeter", OPTIONS)


def test_default_callbacks_forward() -> None:
    helper = RecordingHelper()
    tsx = SproutletTsx(helper)
    response = build_response(OPTIONS, 200, "OK")
    assert tsx.on_rx_initial_request(OPTIONS) is None
    assert tsx.on_rx_in_dialog_request(OPTIONS) is None
    assert tsx.on_rx_response(response, 7) is None
    for observe in (
        tsx.on_tx_request(OPTIONS, 7),
        tsx.on_tx_response(response),
        tsx.on_rx_cancel(487, None),
        tsx.on_timer_expiry("ctx"),
    ):
        assert observe is None
    assert helper.calls == [
        ("send_request", OPTIONS),
        ("send_request", OPTIONS),
        ("send_response", response),
    ]


def test_actions_reach_the_helper() -> None:
    helper = RecordingHelper()
    tsx = SproutletTsx(helper)
    uri = SipUri("sprout.example.com")
    assert tsx.send_request(OPTIONS) == 7
    assert tsx.fork_state(7) == ForkStatus(ForkState.TERMINATED, ErrorState.TIMEOUT)
    assert tsx.schedule_timer("ctx", 1.5) == 3
    assert tsx.timer_running(3) is False
    assert tsx.create_response(OPTIONS, 200).status == 200
    assert tsx.get_local_hostname(uri) == "sprout.example.com"
    tsx.cancel_fork(7, 480, "gone")
    tsx.cancel_pending_forks()
    tsx.mark_pending_forks_as_abandoned()
    tsx.cancel_timer(3)
    tsx.original_request()
    tsx.route_hdr()
    tsx.get_reflexive_uri()
    tsx.is_uri_reflexive(uri)
    tsx.create_request()
    tsx.clone_request(OPTIONS)
    tsx.get_routing_uri(OPTIONS)
    tsx.next_hop_uri("scscf", uri)
    tsx.send_response(build_response(OPTIONS, 200, "OK"))
    assert [call[0] for call in helper.calls] == [
        "send_request",
        "fork_state",
        "schedule_timer",
        "timer_running",
        "create_response",
        "get_local_hostname",
        "cancel_fork",
        "cancel_pending_forks",
        "mark_pending_forks_as_abandoned",
        "cancel_timer",
        "original_request",
        "route_hdr",
        "get_reflexive_uri",
        "is_uri_reflexive",
        "create_request",
        "clone_request",
        "get_routing_uri",
        "next_hop_uri",
        "send_response",
    ]
    assert helper.calls[6] == ("cancel_fork", 7, 480, "gone")
    assert helper.calls[7] == ("cancel_pending_forks", 0, "")
