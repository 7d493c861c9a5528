"""DiameterNode with no sockets: nodes on one clock, their connections paired by ``iosim``
(:mod:`clearwater.testing.diameter`).

Covers the capabilities exchange (RFC 6733 §5.3), the election (§5.6.4), routing and fail-over
(§6.1, §5.5.4), answers to bad requests (§7), the RFC 3539 watchdog as the node runs it, DPR/DPA
(§5.4), Session-Ids (§8.8), ``add_peer`` and ``wait_usable``. Assertions are on the messages
that crossed the links, parsed, and on the peers' states; a failure a node logs fails the test
unless the test expects it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Optional, TypeVar, Union, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater.diameter.dictionary import (
    APP_ACCOUNTING,
    BASE,
    BASE_AVPS,
    BASE_COMMANDS,
    VENDOR_3GPP,
    AvpDef,
    AvpType,
    CommandDef,
    Dictionary,
)
from clearwater.diameter.interfaces import (
    DiameterTimeoutError,
    IDiameterNode,
    NoPeerError,
    PeerInfo,
)
from clearwater.diameter.message import (
    AVP_FLAG_MANDATORY,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMITTED,
    Avp,
    DiameterDecodeError,
    Message,
    make_answer,
)
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.diameter.peer import PeerState
from clearwater.diameter.results import ResultCode
from clearwater.diameter.watchdog import WatchdogState
from clearwater.testing.diameter import DiameterLink, DiameterNetwork, RawPeer

A_ADDR, B_ADDR, C_ADDR = "10.0.0.1", "10.0.0.2", "10.0.0.3"
A_HOST, B_HOST, C_HOST = "a.example.com", "b.example.com", "c.example.com"
REALM = "example.com"

CER, DWR, DPR = 257, 280, 282

# A vendor application of our own, with one command and one vendor AVP.
APP_TEST = 16777299
TSR = 8388700
TEST_AVPS = (AvpDef("Test-Value", 7001, AvpType.UTF8_STRING, VENDOR_3GPP),)
TEST_COMMANDS = (CommandDef("Test", TSR, APP_TEST, "TSR", "TSA"),)
TEST_DICT = Dictionary(BASE_AVPS + TEST_AVPS, BASE_COMMANDS + TEST_COMMANDS)
TEST_APP = Application(APP_TEST, VENDOR_3GPP, dictionary=TEST_DICT)
ACCT_APP = Application(APP_ACCOUNTING, accounting=True)

TW = 6.0
#: The back-off jitter FixedRandom gives: delays are 1.5, 2.0, 2.75, ... (1, 1.5, 2.25 + 0.5).
BACKOFF = 1.5


@pytest.fixture(autouse=True)
def logged_failures() -> Iterator[list[LogEvent]]:
    """Failures the nodes log; a test that expects some takes this fixture and empties it."""
    failures: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if "log_failure" in event:
            failures.append(event)

    observer = cast(ILogObserver, observe)
    globalLogPublisher.addObserver(observer)
    try:
        yield failures
    finally:
        globalLogPublisher.removeObserver(observer)
    assert [event["log_failure"].getTraceback() for event in failures] == []


def take_failures(failures: list[LogEvent]) -> list[type[BaseException]]:
    types = [event["log_failure"].type for event in failures]
    failures.clear()
    return types


class FixedRandom(random.Random):
    """A random source whose ``random()`` (the back-off jitter) is always 0.5."""

    @override
    def random(self) -> float:
        return 0.5


class App:
    """A node's handler for APP_TEST: answers DIAMETER_SUCCESS, or holds the request
    (``hold``), or raises ``raises``. Records the requests and the peers they came from."""

    def __init__(self, node: DiameterNode) -> None:
        self.node = node
        self.requests: list[tuple[Message, PeerInfo]] = []
        self.hold = False
        self.raises: Optional[Exception] = None
        self.held: list[tuple[Message, Deferred[Message]]] = []

    def __call__(self, request: Message, peer: PeerInfo) -> Union[Message, Deferred[Message]]:
        self.requests.append((request, peer))
        if self.raises is not None:
            raise self.raises
        if self.hold:
            d: Deferred[Message] = Deferred()
            self.held.append((request, d))
            return d
        return self.answer(request)

    def answer(self, request: Message, result: int = ResultCode.DIAMETER_SUCCESS) -> Message:
        return make_answer(
            request,
            [
                BASE.avp("Result-Code", result),
                BASE.avp("Origin-Host", self.node.identity),
                BASE.avp("Origin-Realm", self.node.realm),
            ],
        )

    def release(self) -> None:
        """Answer the held requests."""
        held, self.held = self.held, []
        for request, d in held:
            d.callback(self.answer(request))


class Node:
    """A DiameterNode on the network, with its App."""

    def __init__(
        self,
        net: DiameterNetwork,
        address: str,
        host: str,
        *,
        peers: Sequence[PeerConfig] = (),
        listen: bool = True,
        applications: Sequence[Application] = (TEST_APP,),
        **kwargs: Any,
    ) -> None:
        self.address = address
        options: dict[str, Any] = {
            "watchdog_interval": TW,
            "jitter": lambda: 0.0,
            "random_source": FixedRandom(address),
            "tc": 30.0,
        }
        options.update(kwargs)
        self.node = DiameterNode(
            net.reactor(address),
            host,
            REALM,
            applications,
            peers=peers,
            listen=(3868, "") if listen else None,
            **options,
        )
        self.app = App(self.node)
        if any(app.application_id == APP_TEST for app in applications):
            self.node.set_handler(APP_TEST, self.app)

    def state(self, host: str) -> Optional[tuple[PeerState, WatchdogState]]:
        return self.node.peer_state(host)

    def start(self) -> None:
        self.node.startService()


def peer(host: str, address: str) -> PeerConfig:
    return PeerConfig(host, address)


OPEN_I = (PeerState.I_OPEN, WatchdogState.OKAY)
OPEN_R = (PeerState.R_OPEN, WatchdogState.OKAY)


def open_pair(**a_options: Any) -> tuple[DiameterNetwork, Node, Node, DiameterLink]:
    """A (configured with B) and B (listening), open."""
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False, **a_options)
    b.start()
    a.start()
    net.pump()
    assert a.state(B_HOST) == OPEN_I
    assert b.state(A_HOST) == OPEN_R
    [link] = net.links
    return net, a, b, link


def tsr(
    node: Node,
    *,
    realm: str = REALM,
    host: Optional[str] = None,
    extra: Sequence[Avp] = (),
    application_id: int = APP_TEST,
    command_code: int = TSR,
) -> Message:
    avps = [
        BASE.avp("Session-Id", node.node.new_session_id()),
        BASE.avp("Origin-Host", node.node.identity),
        BASE.avp("Origin-Realm", node.node.realm),
        BASE.avp("Destination-Realm", realm),
    ]
    if host is not None:
        avps.append(BASE.avp("Destination-Host", host))
    avps.extend(extra)
    return Message(command_code, application_id, tuple(avps))


Outcome = list[Union[Message, Failure]]
E = TypeVar("E", bound=Exception)


def watch(d: Deferred[Message]) -> Outcome:
    """What ``d`` fires with, once it has."""
    out: Outcome = []
    d.addCallbacks(out.append, out.append)
    return out


def answer_of(out: Outcome) -> Message:
    assert len(out) == 1, out
    [result] = out
    assert isinstance(result, Message), result
    return result


def failure_of(out: Outcome) -> Failure:
    assert len(out) == 1, out
    [result] = out
    assert isinstance(result, Failure), result
    return result


def is_open(link: DiameterLink) -> bool:
    return not link.closed


def fails_with(out: Outcome, error: type[E]) -> E:
    """The exception ``out`` failed with, checked to be an ``error``."""
    value = failure_of(out).value
    assert isinstance(value, error), value
    return value


def requests(messages: Sequence[Message], code: int = TSR) -> list[Message]:
    return [m for m in messages if m.command_code == code and m.is_request]


def answers(messages: Sequence[Message], code: int = TSR) -> list[Message]:
    return [m for m in messages if m.command_code == code and not m.is_request]


def result_code(message: Message) -> Optional[int]:
    value: Optional[int] = BASE.get(message, "Result-Code")
    return value


def failed_avps(message: Message) -> tuple[Avp, ...]:
    failed = BASE.find(message, "Failed-AVP")
    assert failed is not None
    return failed.avps()


def header(
    command: int,
    application_id: int,
    body: bytes,
    *,
    flags: int = FLAG_REQUEST | FLAG_PROXIABLE,
    version: int = 1,
    hop_by_hop: int = 0x11223344,
    end_to_end: int = 0x55667788,
    length: Optional[int] = None,
) -> bytes:
    size = 20 + len(body) if length is None else length
    return (
        struct.pack(
            "!IIIII",
            (version << 24) | size,
            (flags << 24) | command,
            application_id,
            hop_by_hop,
            end_to_end,
        )
        + body
    )


def reply_to(messages: Sequence[Message], hop_by_hop: int = 0x11223344) -> Message:
    [reply] = [m for m in messages if not m.is_request and m.hop_by_hop == hop_by_hop]
    return reply


# ---------------------------------------------------------------- the harness itself


def test_connection_attempt_to_nobody_is_refused_and_retried_with_back_off() -> None:
    net = DiameterNetwork(auto_connect=False)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    a.start()
    [attempt] = net.attempts()
    assert (attempt.source, attempt.host, attempt.port) == (A_ADDR, B_ADDR, 3868)
    assert a.state(B_HOST) == (PeerState.WAIT_CONN_ACK, WatchdogState.INITIAL)
    net.refuse(attempt)
    net.pump()
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)
    times = []
    for _ in range(3):
        while not net.attempts():
            net.advance(0.25)
        times.append(net.clock.seconds())
        net.refuse(net.attempts()[0])
    # 1 s growing by 1.5 (Twisted's backoffPolicy), plus the jitter of 0.5.
    assert times == [1.5, 1.5 + 2.0, 1.5 + 2.0 + 2.75]


def test_blackholed_attempt_times_out_after_tc() -> None:
    net = DiameterNetwork()
    net.blackholed.add(B_ADDR)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False, tc=10.0)
    a.start()
    net.advance(9.9)
    assert a.state(B_HOST) == (PeerState.WAIT_CONN_ACK, WatchdogState.INITIAL)
    net.advance(0.1)
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)


def test_attempt_given_up_after_tc_never_completes_later() -> None:
    net = DiameterNetwork()
    net.blackholed.add(B_ADDR)
    b = Node(net, B_ADDR, B_HOST)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False, tc=10.0)
    b.start()
    a.start()
    net.advance(10)
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)
    net.blackholed.clear()  # the network heals
    net.advance(BACKOFF)
    assert a.state(B_HOST) == OPEN_I
    [link] = net.links  # the abandoned attempt did not connect as well
    assert link.opened_at == 10 + BACKOFF


# ---------------------------------------------------------------- capabilities exchange


def test_cer_and_cea_carry_the_capabilities() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, applications=(TEST_APP, ACCT_APP), product_name="hss")
    a = Node(
        net,
        A_ADDR,
        A_HOST,
        peers=[peer(B_HOST, B_ADDR)],
        listen=False,
        applications=(TEST_APP, ACCT_APP),
        vendor_id=19444,
        product_name="clearwater-test",
    )
    b.start()
    a.start()
    net.pump()
    assert a.state(B_HOST) == OPEN_I
    assert b.state(A_HOST) == OPEN_R
    [link] = net.links
    assert (link.client_host, link.server_host) == (A_ADDR, B_ADDR)
    [cer] = link.client_messages()
    [cea] = link.server_messages()
    assert (cer.command_code, cer.application_id, cer.flags) == (CER, 0, FLAG_REQUEST)
    assert cer.end_to_end != 0
    assert BASE.get(cer, "Origin-Host") == A_HOST
    assert BASE.get(cer, "Origin-Realm") == REALM
    assert BASE.get_all(cer, "Host-IP-Address") == [A_ADDR]
    assert BASE.get(cer, "Vendor-Id") == 19444
    assert BASE.get(cer, "Product-Name") == "clearwater-test"
    assert isinstance(BASE.get(cer, "Origin-State-Id"), int)
    assert BASE.get_all(cer, "Supported-Vendor-Id") == [VENDOR_3GPP]
    # The vendor application inside Vendor-Specific-Application-Id, accounting outside.
    [vsai] = BASE.find_all(cer, "Vendor-Specific-Application-Id")
    assert BASE.get(vsai.avps(), "Vendor-Id") == VENDOR_3GPP
    assert BASE.get_all(vsai.avps(), "Auth-Application-Id") == [APP_TEST]
    assert BASE.get_all(cer, "Acct-Application-Id") == [APP_ACCOUNTING]
    assert BASE.get_all(cer, "Auth-Application-Id") == []
    # The CEA answers it.
    assert (cea.command_code, cea.flags) == (CER, 0)
    assert (cea.hop_by_hop, cea.end_to_end) == (cer.hop_by_hop, cer.end_to_end)
    assert result_code(cea) == ResultCode.DIAMETER_SUCCESS
    assert BASE.get(cea, "Origin-Host") == B_HOST
    assert BASE.get_all(cea, "Host-IP-Address") == [B_ADDR]
    assert BASE.get(cea, "Product-Name") == "hss"
    assert cea.avps[0].code == 268  # Result-Code first (RFC 6733 §5.3.2)
    assert is_open(link)


def test_no_common_application_is_answered_5010_and_disconnected() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, applications=(ACCT_APP,))
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    b.start()
    a.start()
    net.pump()
    [link] = net.links
    [cea] = link.server_messages()
    assert result_code(cea) == ResultCode.DIAMETER_NO_COMMON_APPLICATION
    assert not cea.is_error
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)
    assert b.state(A_HOST) is None
    assert b.node.usable_peers() == []


def test_unknown_peer_is_answered_3010_when_not_accepted() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, accept_unknown=False)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    b.start()
    a.start()
    net.pump()
    [link] = net.links
    [cea] = link.server_messages()
    assert result_code(cea) == ResultCode.DIAMETER_UNKNOWN_PEER
    assert cea.is_error
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)
    assert b.state(A_HOST) is None


def test_configured_peer_is_accepted_when_unknown_ones_are_not() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, accept_unknown=False, peers=[peer(A_HOST, "10.9.9.9")])
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    a.start()  # before B listens: A's first attempt is refused
    b.start()  # B's own attempt (to a wrong address) is refused too
    net.advance(BACKOFF)
    assert a.state(B_HOST) == OPEN_I
    assert b.state(A_HOST) == OPEN_R


def test_cea_naming_another_host_is_refused_and_retried_with_back_off() -> None:
    net = DiameterNetwork()
    other = Node(net, B_ADDR, "other.example.com")
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    other.start()
    a.start()
    net.pump()
    [link] = net.links
    assert BASE.get(link.server_messages()[0], "Origin-Host") == "other.example.com"
    assert link.closed
    assert [m.command_code for m in link.client_messages()] == [CER]  # nothing after the CEA
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)
    assert a.node.usable_peers() == []
    net.advance(BACKOFF - 0.01)
    assert len(net.links) == 1
    net.advance(0.01)
    assert len(net.links) == 2
    assert net.links[1].opened_at == BACKOFF
    net.advance(2.0)  # the second try waited 1.5 + 0.5
    assert [link.opened_at for link in net.links] == [0.0, BACKOFF, BACKOFF + 2.0]


def test_peer_that_never_sends_a_cer_is_dropped_after_cea_timeout() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, cea_timeout=4.0)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    net.advance(3.9)
    assert is_open(link)
    net.advance(0.1)
    assert link.closed
    assert raw.lost
    assert raw.received == b""


def test_waiting_for_the_cea_times_out() -> None:
    net = DiameterNetwork(auto_connect=False)
    b = Node(net, B_ADDR, B_HOST)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False, cea_timeout=4.0)
    b.start()
    a.start()
    [attempt] = net.attempts()
    link = net.complete(attempt)
    link.stall(to_server=False, to_client=True)  # B's CEA never arrives
    net.pump()
    assert a.state(B_HOST) == (PeerState.WAIT_I_CEA, WatchdogState.INITIAL)
    net.advance(3.9)
    assert is_open(link)
    net.advance(0.1)
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.INITIAL)


# ---------------------------------------------------------------- election (RFC 6733 §5.6.4)


@pytest.mark.parametrize(("a_host", "b_host"), [(A_HOST, B_HOST), (B_HOST, A_HOST)])
def test_simultaneous_connections_are_settled_by_the_election(a_host: str, b_host: str) -> None:
    net = DiameterNetwork()
    a = Node(net, A_ADDR, a_host, peers=[peer(b_host, B_ADDR)])
    b = Node(net, B_ADDR, b_host, peers=[peer(a_host, A_ADDR)])
    a.start()
    b.start()
    net.pump()
    assert len(net.links) == 2
    # Both CERs crossed: a true race.
    for link in net.links:
        assert [m.command_code for m in link.client_messages()][:1] == [CER]
    # The connection kept is the one the higher Origin-Host accepted.
    [survivor] = net.open_links()
    higher_address = A_ADDR if a_host > b_host else B_ADDR
    assert survivor.server_host == higher_address
    [loser] = [link for link in net.links if link is not survivor]
    assert loser.closed
    assert loser.server_messages() == []  # no CEA on the losing connection
    higher, lower = (a, b) if a_host > b_host else (b, a)
    higher_host, lower_host = max(a_host, b_host), min(a_host, b_host)
    assert higher.state(lower_host) == OPEN_R
    assert lower.state(higher_host) == OPEN_I
    # Traffic flows both ways on the survivor.
    from_a = watch(a.node.request(tsr(a, host=b_host)))
    from_b = watch(b.node.request(tsr(b, host=a_host)))
    net.pump()
    assert result_code(answer_of(from_a)) == ResultCode.DIAMETER_SUCCESS
    assert result_code(answer_of(from_b)) == ResultCode.DIAMETER_SUCCESS
    assert len(requests(survivor.client_messages() + survivor.server_messages())) == 2
    # And it stays: nothing reconnects later.
    net.advance(60)
    assert net.open_links() == [survivor]


def test_second_connection_from_an_open_peer_is_rejected() -> None:
    net, _a, b, link = open_pair()
    raw = RawPeer()
    second = net.connect(raw, B_ADDR, source=A_ADDR)
    raw.send(
        Message(
            CER,
            0,
            (
                BASE.avp("Origin-Host", A_HOST),
                BASE.avp("Origin-Realm", REALM),
                BASE.avp("Host-IP-Address", A_ADDR),
                BASE.avp("Vendor-Id", 0),
                BASE.avp("Product-Name", "raw"),
                BASE.avp("Auth-Application-Id", APP_TEST),
            ),
            FLAG_REQUEST,
            hop_by_hop=7,
            end_to_end=8,
        )
    )
    net.pump()
    [cea] = raw.messages()
    assert result_code(cea) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert second.closed
    assert is_open(link)
    assert b.state(A_HOST) == OPEN_R


# ---------------------------------------------------------------- requests and routing


def test_request_is_answered_by_the_peer_handler() -> None:
    net, a, b, link = open_pair()
    request = tsr(a, extra=[TEST_DICT.avp("Test-Value", "hello")])
    out = watch(a.node.request(request))
    assert out == []
    net.pump()
    answer = answer_of(out)
    assert result_code(answer) == ResultCode.DIAMETER_SUCCESS
    [(received, info)] = b.app.requests
    assert TEST_DICT.get(received, "Test-Value") == "hello"
    assert received.avps == request.avps
    assert (info.host, info.realm) == (A_HOST, REALM)
    assert info.address.startswith(A_ADDR + ":")
    [sent] = requests(link.client_messages())
    assert sent.flags == FLAG_REQUEST | FLAG_PROXIABLE
    assert sent.end_to_end != 0
    [wire_answer] = answers(link.server_messages())
    assert (wire_answer.hop_by_hop, wire_answer.end_to_end) == (
        sent.hop_by_hop,
        sent.end_to_end,
    )
    assert answer == wire_answer


def three_nodes(
    *,
    order: Sequence[str] = (B_HOST, C_HOST),
    b_apps: Sequence[Application] = (TEST_APP,),
    start_c: bool = True,
) -> tuple[DiameterNetwork, Node, Node, Node]:
    """A configured with B and C (in ``order``); B and C listening."""
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, applications=b_apps)
    c = Node(net, C_ADDR, C_HOST)
    configs = {B_HOST: peer(B_HOST, B_ADDR), C_HOST: peer(C_HOST, C_ADDR)}
    a = Node(
        net,
        A_ADDR,
        A_HOST,
        peers=[configs[host] for host in order],
        listen=False,
        applications=(TEST_APP, ACCT_APP),
    )
    b.start()
    if start_c:
        c.start()
    a.start()
    net.pump()
    return net, a, b, c


def test_destination_host_picks_the_peer() -> None:
    net, a, b, c = three_nodes()
    assert a.node.usable_peers() == [B_HOST, C_HOST]
    to_c = watch(a.node.request(tsr(a, host=C_HOST)))
    to_b = watch(a.node.request(tsr(a, host=B_HOST)))
    net.pump()
    assert BASE.get(answer_of(to_c), "Origin-Host") == C_HOST
    assert BASE.get(answer_of(to_b), "Origin-Host") == B_HOST
    assert len(c.app.requests) == 1
    assert len(b.app.requests) == 1


def test_destination_host_not_usable_is_no_peer_even_if_the_realm_is_served() -> None:
    net, a, b, _c = three_nodes(start_c=False)
    assert a.node.usable_peers() == [B_HOST]
    out = watch(a.node.request(tsr(a, host=C_HOST)))
    fails_with(out, NoPeerError)
    net.pump()
    assert b.app.requests == []
    assert requests(net.messages(A_ADDR, B_ADDR)) == []


def test_realm_routing_follows_configuration_order() -> None:
    net, a, _b, _c = three_nodes(order=(C_HOST, B_HOST))
    assert a.node.usable_peers() == [C_HOST, B_HOST]
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert BASE.get(answer_of(out), "Origin-Host") == C_HOST
    other_realm = watch(a.node.request(tsr(a, realm="elsewhere.example.org")))
    fails_with(other_realm, NoPeerError)


def test_realm_routing_skips_a_peer_without_the_application() -> None:
    net, a, _b, _c = three_nodes(b_apps=(ACCT_APP,))
    assert a.node.usable_peers() == [B_HOST, C_HOST]
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert BASE.get(answer_of(out), "Origin-Host") == C_HOST
    assert requests(net.messages(A_ADDR, B_ADDR)) == []


def test_pending_request_fails_over_with_the_t_flag_when_its_peer_drops() -> None:
    net, a, b, _c = three_nodes()
    b.app.hold = True
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert out == []
    [to_b] = net.links_between(A_ADDR, B_ADDR)
    [first] = requests(to_b.client_messages())
    assert not first.flags & FLAG_RETRANSMITTED
    to_b.drop()
    net.pump()
    answer = answer_of(out)
    assert BASE.get(answer, "Origin-Host") == C_HOST
    [again] = requests(net.messages(A_ADDR, C_ADDR))
    assert again.flags == first.flags | FLAG_RETRANSMITTED
    assert again.end_to_end == first.end_to_end
    assert again.avps == first.avps
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)


def test_pending_request_fails_when_no_other_peer_is_left() -> None:
    net, a, b, link = open_pair()
    b.app.hold = True
    out = watch(a.node.request(tsr(a)))
    net.pump()
    link.drop()
    fails_with(out, NoPeerError)
    # B's late answer has nowhere to go.
    b.app.release()
    net.pump()


def test_request_times_out() -> None:
    net, a, b, link = open_pair()
    b.app.hold = True
    out = watch(a.node.request(tsr(a), timeout=2.0))
    net.advance(1.99)
    assert out == []
    net.advance(0.01)
    fails_with(out, DiameterTimeoutError)
    b.app.release()  # the late answer is dropped
    net.pump()
    assert len(answers(link.server_messages())) == 1
    assert len(out) == 1


def test_request_default_timeout() -> None:
    net, a, b, _link = open_pair(request_timeout=3.0)
    b.app.hold = True
    out = watch(a.node.request(tsr(a)))
    net.advance(2.9)
    assert out == []
    net.advance(0.1)
    fails_with(out, DiameterTimeoutError)


def test_each_request_has_its_own_timeout() -> None:
    net, a, b, _link = open_pair()
    b.app.hold = True
    short = watch(a.node.request(tsr(a), timeout=1.0))
    long = watch(a.node.request(tsr(a), timeout=2.0))
    net.advance(1.0)
    fails_with(short, DiameterTimeoutError)
    assert long == []
    b.app.release()
    net.pump()
    answer_of(long)


def test_request_cancelled_after_fail_over() -> None:
    net, a, b, c = three_nodes()
    b.app.hold = c.app.hold = True
    d = a.node.request(tsr(a), timeout=10.0)
    out = watch(d)
    net.pump()
    net.links_between(A_ADDR, B_ADDR)[0].drop()
    net.pump()
    assert len(c.app.requests) == 1
    d.cancel()
    fails_with(out, CancelledError)
    c.app.release()
    net.advance(20)
    assert len(out) == 1


def test_request_can_be_cancelled() -> None:
    net, a, b, _link = open_pair()
    b.app.hold = True
    d = a.node.request(tsr(a), timeout=2.0)
    out = watch(d)
    net.pump()
    d.cancel()
    fails_with(out, CancelledError)
    b.app.release()
    net.advance(5)
    assert len(out) == 1


def test_max_pending_bounds_the_requests_waiting() -> None:
    net, a, b, _link = open_pair(max_pending=2)
    b.app.hold = True
    first = watch(a.node.request(tsr(a)))
    second = watch(a.node.request(tsr(a)))
    third = watch(a.node.request(tsr(a)))
    fails_with(third, NoPeerError)
    net.pump()
    assert len(b.app.requests) == 2
    b.app.release()
    net.pump()
    answer_of(first)
    answer_of(second)
    fourth = watch(a.node.request(tsr(a)))
    b.app.hold = False
    net.pump()
    answer_of(fourth)


def test_request_too_large_to_encode_fails_without_harm() -> None:
    net, a, _b, _link = open_pair()
    huge = Avp(7002, b"x" * (1 << 24), AVP_FLAG_MANDATORY)  # past the 24-bit AVP length
    out = watch(a.node.request(tsr(a, extra=[huge])))
    fails_with(out, ValueError)
    ok = watch(a.node.request(tsr(a)))
    net.pump()
    answer_of(ok)


# ---------------------------------------------------------------- incoming requests


def inject_request(net: DiameterNetwork, link: DiameterLink, message: Message) -> Message:
    """Send ``message`` to B as if A had sent it; B's answer."""
    link.inject_to_server(bytes(message))
    net.pump()
    return reply_to(link.server_messages(), message.hop_by_hop)


def raw_request(
    node: Node, command: int = TSR, application_id: int = APP_TEST, extra: Sequence[Avp] = ()
) -> Message:
    message = tsr(node, host=B_HOST, extra=extra, application_id=application_id)
    return Message(
        command,
        application_id,
        message.avps,
        FLAG_REQUEST | FLAG_PROXIABLE,
        0x11223344,
        0x55667788,
    )


def test_unknown_application_is_answered_3007() -> None:
    net, a, b, link = open_pair()
    request = raw_request(a, application_id=4)
    answer = inject_request(net, link, request)
    assert result_code(answer) == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED
    assert answer.flags == FLAG_ERROR | FLAG_PROXIABLE
    assert (answer.command_code, answer.application_id) == (TSR, 4)
    assert answer.avps[0] == request.avps[0]  # Session-Id first
    assert BASE.get(answer, "Origin-Host") == B_HOST
    assert b.app.requests == []


def test_unknown_command_is_answered_3001() -> None:
    net, a, b, link = open_pair()
    answer = inject_request(net, link, raw_request(a, command=TSR + 1))
    assert result_code(answer) == ResultCode.DIAMETER_COMMAND_UNSUPPORTED
    assert answer.is_error
    assert b.app.requests == []


def test_unknown_mandatory_avp_is_answered_5001_naming_it() -> None:
    net, a, b, link = open_pair()
    unknown = Avp.make(9999, b"\x01\x02\x03", vendor_id=VENDOR_3GPP)
    answer = inject_request(net, link, raw_request(a, extra=[unknown]))
    assert result_code(answer) == ResultCode.DIAMETER_AVP_UNSUPPORTED
    assert not answer.is_error
    assert failed_avps(answer) == (unknown,)
    assert b.app.requests == []


def test_unknown_optional_avp_is_passed_to_the_handler() -> None:
    net, a, b, link = open_pair()
    unknown = Avp.make(9999, b"\x01\x02\x03", vendor_id=VENDOR_3GPP, mandatory=False)
    answer = inject_request(net, link, raw_request(a, extra=[unknown]))
    assert result_code(answer) == ResultCode.DIAMETER_SUCCESS
    [(request, _)] = b.app.requests
    assert request.avps[-1] == unknown


def test_handler_exception_is_answered_5012(logged_failures: list[LogEvent]) -> None:
    net, a, b, _link = open_pair()
    b.app.raises = RuntimeError("boom")
    out = watch(a.node.request(tsr(a)))
    net.pump()
    answer = answer_of(out)
    assert result_code(answer) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert not answer.is_error
    assert BASE.get(answer, "Origin-Host") == B_HOST
    assert take_failures(logged_failures) == [RuntimeError]


def test_handler_decode_error_is_answered_with_its_code_and_failed_avp() -> None:
    net, a, b, _link = open_pair()
    missing = BASE.avp("User-Name", "")
    b.app.raises = DiameterDecodeError(ResultCode.DIAMETER_MISSING_AVP, "no User-Name", missing)
    out = watch(a.node.request(tsr(a)))
    net.pump()
    answer = answer_of(out)
    assert result_code(answer) == ResultCode.DIAMETER_MISSING_AVP
    assert failed_avps(answer) == (missing,)


def test_handler_answer_that_is_not_a_message_is_answered_5012(
    logged_failures: list[LogEvent],
) -> None:
    net, a, b, _link = open_pair()

    def bad(request: Message, info: PeerInfo) -> Any:
        return "not an answer"

    b.node.set_handler(APP_TEST, bad)
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(out)) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert take_failures(logged_failures) == [TypeError]
    # The peer still works.
    b.node.set_handler(APP_TEST, b.app)
    again = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(again)) == ResultCode.DIAMETER_SUCCESS


def test_handler_answer_that_cannot_be_encoded_is_answered_5012(
    logged_failures: list[LogEvent],
) -> None:
    net, a, b, _link = open_pair()

    def huge(request: Message, info: PeerInfo) -> Message:
        return make_answer(request, [Avp(7002, b"x" * (1 << 24))])

    b.node.set_handler(APP_TEST, huge)
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(out)) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert take_failures(logged_failures) == [ValueError]
    b.node.set_handler(APP_TEST, b.app)
    again = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(again)) == ResultCode.DIAMETER_SUCCESS


def test_set_handler_refuses_an_application_not_served() -> None:
    net = DiameterNetwork()
    a = Node(net, A_ADDR, A_HOST)
    with pytest.raises(ValueError, match="4"):
        a.node.set_handler(4, a.app)


# ---------------------------------------------------------------- malformed input (RFC 6733 §7)


def test_bad_avp_length_is_answered_5014_and_the_connection_stays() -> None:
    net, a, _b, link = open_pair()
    session = bytes(BASE.avp("Session-Id", "x;1;2"))
    # User-Name (1, M) claiming 200 bytes where 8 are left.
    bad = struct.pack("!II", 1, (0x40 << 24) | 200) + b"abcd"
    link.inject_to_server(header(TSR, APP_TEST, session + bad))
    net.pump()
    answer = reply_to(link.server_messages())
    assert result_code(answer) == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert failed_avps(answer) == (Avp(1, b"", AVP_FLAG_MANDATORY),)
    assert answer.flags == FLAG_PROXIABLE
    assert (answer.command_code, answer.application_id) == (TSR, APP_TEST)
    assert answer.end_to_end == 0x55667788
    assert is_open(link)
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(out)) == ResultCode.DIAMETER_SUCCESS


def test_bad_version_is_answered_5011() -> None:
    net, _a, _b, link = open_pair()
    link.inject_to_server(header(TSR, APP_TEST, b"", version=2))
    net.pump()
    answer = reply_to(link.server_messages())
    assert result_code(answer) == ResultCode.DIAMETER_UNSUPPORTED_VERSION
    assert is_open(link)


def test_request_with_the_e_bit_is_answered_3008() -> None:
    net, _a, _b, link = open_pair()
    link.inject_to_server(header(TSR, APP_TEST, b"", flags=FLAG_REQUEST | FLAG_ERROR))
    net.pump()
    answer = reply_to(link.server_messages())
    assert result_code(answer) == ResultCode.DIAMETER_INVALID_HDR_BITS
    assert answer.is_error
    assert is_open(link)


def test_malformed_answer_from_another_peer_does_not_fail_a_request() -> None:
    net, a, b, _c = three_nodes()
    b.app.hold = True
    out = watch(a.node.request(tsr(a, host=B_HOST)))
    net.pump()
    [sent] = requests(net.messages(A_ADDR, B_ADDR))
    # C sends a broken answer carrying the identifiers of the request pending on B.
    [to_c] = net.links_between(A_ADDR, C_ADDR)
    to_c.inject_to_client(
        header(
            TSR,
            APP_TEST,
            b"",
            flags=FLAG_PROXIABLE,
            version=2,
            hop_by_hop=sent.hop_by_hop,
            end_to_end=sent.end_to_end,
        )
    )
    net.pump()
    assert out == []
    b.app.release()
    net.pump()
    assert BASE.get(answer_of(out), "Origin-Host") == B_HOST


def test_malformed_answer_fails_its_request() -> None:
    net, a, b, link = open_pair()
    b.app.hold = True
    out = watch(a.node.request(tsr(a)))
    net.pump()
    [sent] = requests(link.client_messages())
    link.inject_to_client(
        header(
            TSR,
            APP_TEST,
            b"",
            flags=FLAG_PROXIABLE,
            version=2,
            hop_by_hop=sent.hop_by_hop,
            end_to_end=sent.end_to_end,
        )
    )
    error = fails_with(out, DiameterDecodeError)
    assert error.result_code == ResultCode.DIAMETER_UNSUPPORTED_VERSION


def test_framing_error_closes_the_connection() -> None:
    net, a, b, link = open_pair()
    link.inject_to_server(header(TSR, APP_TEST, b"", length=16) + b"\0" * 16)
    net.pump()
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)
    assert b.state(A_HOST) is None


def test_oversized_message_closes_the_connection() -> None:
    net, a, _b, link = open_pair(max_message=4096)
    # A message longer than the limit is refused from its header on.
    link.inject_to_client(header(TSR, APP_TEST, b"", length=4100))
    net.pump()
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)


def test_garbage_before_the_cer_closes_the_connection() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    raw.send(b"GET / HTTP/1.1\r\nHost: hss\r\n\r\n")
    net.pump()
    assert link.closed
    assert raw.received == b""


def test_other_command_before_the_cer_closes_the_connection() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    raw.send(Message(DWR, 0, (BASE.avp("Origin-Host", "x"), BASE.avp("Origin-Realm", "y"))))
    net.pump()
    assert link.closed
    assert raw.received == b""


def test_cer_after_a_closing_fault_in_the_same_chunk_is_not_read() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    dwr = Message(DWR, 0, (BASE.avp("Origin-Host", A_HOST), BASE.avp("Origin-Realm", REALM)))
    cer = Message(
        CER,
        0,
        (
            BASE.avp("Origin-Host", A_HOST),
            BASE.avp("Origin-Realm", REALM),
            BASE.avp("Auth-Application-Id", APP_TEST),
        ),
        FLAG_REQUEST,
    )
    raw.send(bytes(dwr) + bytes(cer))
    net.pump()
    assert link.closed
    assert raw.received == b""
    assert b.state(A_HOST) is None


def test_malformed_cer_is_answered_and_closed() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    raw.send(header(CER, 0, b"", flags=FLAG_REQUEST, version=2))
    net.pump()
    [cea] = raw.messages()
    assert result_code(cea) == ResultCode.DIAMETER_UNSUPPORTED_VERSION
    assert link.closed


def test_cer_without_origin_realm_is_answered_5005() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)
    raw.send(
        Message(
            CER,
            0,
            (BASE.avp("Origin-Host", "x.example.com"), BASE.avp("Auth-Application-Id", APP_TEST)),
            FLAG_REQUEST,
        )
    )
    net.pump()
    [cea] = raw.messages()
    assert result_code(cea) == ResultCode.DIAMETER_MISSING_AVP
    assert [avp.code for avp in failed_avps(cea)] == [296]
    assert link.closed
    assert b.state("x.example.com") is None


def test_dpr_with_a_malformed_disconnect_cause_does_not_raise() -> None:
    net, _a, b, link = open_pair()
    dpr = Message(
        DPR,
        0,
        (
            BASE.avp("Origin-Host", A_HOST),
            BASE.avp("Origin-Realm", REALM),
            Avp(273, b"\x00\x02"),  # Disconnect-Cause, two bytes of an Enumerated
        ),
        FLAG_REQUEST,
        0x11223344,
        0x55667788,
    )
    link.inject_to_server(bytes(dpr))
    net.pump()
    dpa = reply_to(link.server_messages())
    assert dpa.command_code == DPR
    assert result_code(dpa) == ResultCode.DIAMETER_SUCCESS
    assert b.state(A_HOST) == (PeerState.CLOSING, WatchdogState.OKAY)


_INTERESTING_CODES = (1, 257, 258, 259, 260, 263, 264, 268, 273, 278, 279, 283, 293, 296, 7001)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Messages that frame, with header fields and AVPs drawn from the interesting ones (and
    sometimes a byte of the body flipped)."""
    avps = draw(
        st.lists(
            st.builds(
                Avp,
                st.sampled_from(_INTERESTING_CODES),
                st.binary(max_size=24),
                st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0x41]),
                st.sampled_from([0, VENDOR_3GPP]),
            ),
            max_size=6,
        )
    )
    body = bytearray(b"".join(bytes(avp) for avp in avps))
    if body and draw(st.booleans()):
        body[draw(st.integers(0, len(body) - 1))] ^= draw(st.integers(1, 255))
    return header(
        draw(st.sampled_from([CER, DWR, DPR, TSR, TSR + 1, 271])),
        draw(st.sampled_from([0, APP_ACCOUNTING, APP_TEST, 4, 0xFFFFFFFF])),
        bytes(body),
        flags=draw(st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0xA0, 0x20, 0x90, 0x81])),
        version=draw(st.sampled_from([1, 1, 1, 2])),
        hop_by_hop=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=60)
@given(
    chunks=st.lists(st.one_of(st.binary(max_size=64), frames()), min_size=1, max_size=4),
    to_server=st.booleans(),
)
def test_arbitrary_bytes_never_raise_out_of_the_node(chunks: list[bytes], to_server: bool) -> None:
    net, a, _b, link = open_pair()
    for chunk in chunks:
        if link.closed:
            break
        if to_server:
            link.inject_to_server(chunk)
        else:
            link.inject_to_client(chunk)
        net.pump()
    # The nodes keep working: the peer is open again (or still) and answers.
    net.advance(60)
    assert a.state(B_HOST) in (OPEN_I, (PeerState.I_OPEN, WatchdogState.REOPEN))
    net.advance(3 * TW)
    assert a.state(B_HOST) == OPEN_I
    out = watch(a.node.request(tsr(a)))
    net.pump()
    assert result_code(answer_of(out)) == ResultCode.DIAMETER_SUCCESS


# ---------------------------------------------------------------- watchdog (RFC 3539)


def test_watchdog_sends_dwr_when_quiet() -> None:
    net, a, _b, link = open_pair()
    net.advance(TW - 0.01)
    assert requests(link.client_messages(), DWR) == []
    net.advance(0.01)
    [dwr] = requests(link.client_messages(), DWR)
    assert (dwr.application_id, dwr.flags) == (0, FLAG_REQUEST)
    assert BASE.get(dwr, "Origin-Host") == A_HOST
    assert isinstance(BASE.get(dwr, "Origin-State-Id"), int)
    [dwa] = answers(link.server_messages(), DWR)
    assert result_code(dwa) == ResultCode.DIAMETER_SUCCESS
    assert dwa.hop_by_hop == dwr.hop_by_hop
    assert a.state(B_HOST) == OPEN_I


def test_watchdog_walks_okay_suspect_down_reopen_okay() -> None:
    net = DiameterNetwork()
    # B's own watchdog is slow, so that only A's DWRs cross.
    b = Node(net, B_ADDR, B_HOST, watchdog_interval=60.0)
    c = Node(net, C_ADDR, C_HOST, watchdog_interval=60.0)
    a = Node(
        net,
        A_ADDR,
        A_HOST,
        peers=[peer(B_HOST, B_ADDR), peer(C_HOST, C_ADDR)],
        listen=False,
    )
    b.start()
    c.start()
    a.start()
    net.pump()
    [to_b] = net.links_between(A_ADDR, B_ADDR)
    to_b.stall(to_server=False, to_client=True)  # B stops answering
    b.app.hold = True
    net.advance(1)
    pending = watch(a.node.request(tsr(a), timeout=20.0))  # to B, first in order
    net.pump()
    assert len(b.app.requests) == 1
    b.app.release()  # B's answer is stuck too
    # t = 6: quiet for Tw, A sends a DWR.
    net.advance(TW - 1)
    assert len(requests(to_b.client_messages(), DWR)) == 1
    assert a.state(B_HOST) == OPEN_I
    assert pending == []
    # t = 12: no DWA: SUSPECT; the pending request goes to C with the T flag.
    net.advance(TW - 0.01)
    assert a.state(B_HOST) == OPEN_I
    net.advance(0.01)
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.SUSPECT)
    assert BASE.get(answer_of(pending), "Origin-Host") == C_HOST
    [again] = requests(net.messages(A_ADDR, C_ADDR))
    assert again.flags & FLAG_RETRANSMITTED
    assert a.node.usable_peers() == [C_HOST]
    fails_with(watch(a.node.request(tsr(a, host=B_HOST))), NoPeerError)
    # t = 18: still nothing: DOWN, the connection is closed.
    net.advance(TW - 0.01)
    assert is_open(to_b)
    net.advance(0.01)
    assert to_b.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)
    # The reconnection after the back-off opens into REOPEN: a DWR at once, no traffic yet.
    net.advance(BACKOFF)
    reopened = net.links_between(A_ADDR, B_ADDR)[-1]
    assert reopened.opened_at == 3 * TW + BACKOFF
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.REOPEN)
    assert len(requests(reopened.client_messages(), DWR)) == 1
    fails_with(watch(a.node.request(tsr(a, host=B_HOST))), NoPeerError)
    # One DWA per Tw: the third one makes B usable again.
    net.advance(TW)
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.REOPEN)
    net.advance(TW - 0.01)
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.REOPEN)
    net.advance(0.01)
    assert a.state(B_HOST) == OPEN_I
    assert len(requests(reopened.client_messages(), DWR)) == 3
    assert len(answers(reopened.server_messages(), DWR)) == 3
    assert a.node.usable_peers() == [B_HOST, C_HOST]
    b.app.hold = False
    out = watch(a.node.request(tsr(a, host=B_HOST)))
    net.pump()
    assert BASE.get(answer_of(out), "Origin-Host") == B_HOST


def test_dwa_in_suspect_returns_to_okay() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST, watchdog_interval=60.0)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    b.start()
    a.start()
    net.pump()
    [link] = net.links
    link.stall(to_server=False, to_client=True)
    net.advance(2 * TW)
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.SUSPECT)
    fails_with(watch(a.node.request(tsr(a))), NoPeerError)
    link.resume()
    net.pump()
    # What was held is B's DWA, and only that.
    assert [(m.command_code, m.is_request) for m in link.server_messages()] == [
        (CER, False),
        (DWR, False),
    ]
    assert a.state(B_HOST) == OPEN_I
    out = watch(a.node.request(tsr(a)))
    net.pump()
    answer_of(out)


def test_traffic_keeps_the_watchdog_quiet() -> None:
    net, a, _b, link = open_pair()
    for _ in range(5):
        net.advance(TW - 1)
        out = watch(a.node.request(tsr(a)))
        net.pump()
        answer_of(out)
    assert requests(link.client_messages(), DWR) == []


# ---------------------------------------------------------------- DPR / DPA (RFC 6733 §5.4)


def test_stop_sends_dpr_and_fires_after_the_dpa() -> None:
    net, a, b, link = open_pair()
    link.stall(to_server=False, to_client=True)  # hold B's DPA
    stopped = a.node.stopService()
    done: list[object] = []
    stopped.addCallback(done.append)
    net.pump()
    [dpr] = requests(link.client_messages(), DPR)
    assert dpr.flags == FLAG_REQUEST
    assert BASE.get(dpr, "Origin-Host") == A_HOST
    assert BASE.get(dpr, "Disconnect-Cause") == 0  # REBOOTING
    assert a.state(B_HOST) == (PeerState.CLOSING, WatchdogState.OKAY)
    assert done == []
    link.resume()
    net.pump()
    [dpa] = answers(link.server_messages(), DPR)
    assert result_code(dpa) == ResultCode.DIAMETER_SUCCESS
    assert dpa.hop_by_hop == dpr.hop_by_hop
    assert done == [None]
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)
    assert b.state(A_HOST) is None  # unconfigured peers are forgotten
    # A stopped node does not come back.
    net.advance(120)
    assert len(net.links) == 1
    assert net.clock.getDelayedCalls() == []


def test_stop_gives_up_waiting_for_the_dpa_after_closing_timeout() -> None:
    net, a, _b, link = open_pair(closing_timeout=3.0)
    link.stall(to_server=False, to_client=True)
    done: list[object] = []
    a.node.stopService().addCallback(done.append)
    net.advance(2.9)
    assert done == []
    net.advance(0.1)
    assert done == [None]
    assert link.closed


def test_stop_fails_pending_requests_without_sending_them_elsewhere() -> None:
    net, a, b, _c = three_nodes()
    b.app.hold = True
    out = watch(a.node.request(tsr(a)))
    net.pump()
    a.node.stopService()
    fails_with(out, NoPeerError)
    net.pump()
    assert requests(net.messages(A_ADDR, C_ADDR)) == []
    sent_to_b = [m.command_code for m in net.messages(A_ADDR, B_ADDR) if m.is_request]
    assert sent_to_b == [CER, TSR, DPR]


def test_peer_receiving_dpr_closes_after_the_disconnect_and_reconnects() -> None:
    net, a, b, link = open_pair()
    stopped = b.node.stopService()
    net.pump()
    [dpr] = requests(link.server_messages(), DPR)
    assert BASE.get(dpr, "Origin-Host") == B_HOST
    [dpa] = answers(link.client_messages(), DPR)
    assert result_code(dpa) == ResultCode.DIAMETER_SUCCESS
    assert stopped.called
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)
    # B is back before A's back-off ends: A reconnects then, not before.
    b.start()
    net.advance(BACKOFF - 0.01)
    assert len(net.links) == 1
    net.advance(0.01)
    assert len(net.links) == 2
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.REOPEN)


def test_dpr_receiver_waits_in_closing_for_the_disconnect() -> None:
    net, a, _b, link = open_pair(closing_timeout=3.0)
    dpr = Message(
        DPR,
        0,
        (
            BASE.avp("Origin-Host", B_HOST),
            BASE.avp("Origin-Realm", REALM),
            BASE.avp("Disconnect-Cause", 0),
        ),
        FLAG_REQUEST,
        0x11223344,
        0x55667788,
    )
    link.inject_to_client(bytes(dpr))
    net.pump()
    assert a.state(B_HOST) == (PeerState.CLOSING, WatchdogState.OKAY)
    fails_with(watch(a.node.request(tsr(a))), NoPeerError)
    net.advance(2.9)
    assert is_open(link)
    net.advance(0.1)  # B never closed: Closing times out
    assert link.closed
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)


@pytest.mark.parametrize(("cause", "delay"), [(0, BACKOFF), (1, 30.0), (2, 30.0)])
def test_dpr_cause_busy_or_do_not_want_to_talk_delays_the_reconnect(
    cause: int, delay: float
) -> None:
    net, a, _b, link = open_pair()
    net.advance(1)
    dpr = Message(
        DPR,
        0,
        (
            BASE.avp("Origin-Host", B_HOST),
            BASE.avp("Origin-Realm", REALM),
            BASE.avp("Disconnect-Cause", cause),
        ),
        FLAG_REQUEST,
        0x11223344,
        0x55667788,
    )
    link.inject_to_client(bytes(dpr))
    net.pump()
    dpa = reply_to(link.client_messages())
    assert (dpa.command_code, result_code(dpa)) == (DPR, ResultCode.DIAMETER_SUCCESS)
    link.drop()  # B closes once it has the DPA
    net.pump()
    assert a.state(B_HOST) == (PeerState.CLOSED, WatchdogState.DOWN)
    net.advance(delay - 0.01)
    assert len(net.links) == 1
    net.advance(0.01)
    assert len(net.links) == 2
    assert net.links[1].opened_at == 1 + delay


def test_cer_after_stop_is_refused() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    b.start()
    raw = RawPeer()
    link = net.connect(raw, B_ADDR)  # accepted while B listened
    b.node.stopService()
    raw.send(
        Message(
            CER,
            0,
            (
                BASE.avp("Origin-Host", A_HOST),
                BASE.avp("Origin-Realm", REALM),
                BASE.avp("Auth-Application-Id", APP_TEST),
            ),
            FLAG_REQUEST,
        )
    )
    net.pump()
    [cea] = raw.messages()
    assert result_code(cea) != ResultCode.DIAMETER_SUCCESS
    assert link.closed
    assert b.state(A_HOST) is None


# ---------------------------------------------------------------- identities


def test_new_session_id_format_and_uniqueness() -> None:
    net = DiameterNetwork()
    a = Node(net, A_ADDR, A_HOST)
    node: IDiameterNode = a.node
    ids = [node.new_session_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    highs = set()
    for sid in ids:
        host, high, low = sid.split(";")
        assert host == A_HOST
        assert 0 <= int(high) < 2**32
        assert 0 <= int(low) < 2**32
        highs.add(high)
    assert len(highs) == 1  # the high part is the node's, the low part counts
    lows = [int(sid.split(";")[2]) for sid in ids[:2]]
    assert (lows[1] - lows[0]) % 2**32 == 1
    with_suffix = node.new_session_id("cx")
    assert with_suffix.startswith(A_HOST + ";")
    assert with_suffix.endswith(";cx")
    assert len(with_suffix.split(";")) == 4


def test_peer_state_is_looked_up_without_regard_to_case() -> None:
    _net, a, _b, _link = open_pair()
    assert a.state(B_HOST.upper()) == OPEN_I


def test_hop_by_hop_identifiers_differ_and_end_to_end_are_kept() -> None:
    net, a, _b, link = open_pair()
    outs = [watch(a.node.request(tsr(a))) for _ in range(5)]
    net.pump()
    sent = requests(link.client_messages())
    assert len({m.hop_by_hop for m in sent}) == 5
    assert len({m.end_to_end for m in sent}) == 5
    for out, request in zip(outs, sent):
        answer = answer_of(out)
        assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)


# ---------------------------------------------------------------- add_peer, wait_usable


def test_add_peer_connects_at_once_and_routes_after_the_configured_ones() -> None:
    net, a, _b, _link = open_pair()
    c = Node(net, C_ADDR, C_HOST)
    c.start()
    a.node.add_peer(peer(C_HOST, C_ADDR))
    a.node.add_peer(peer(C_HOST.upper(), "10.9.9.9"))  # known already: left as it is
    net.pump()
    assert a.state(C_HOST) == OPEN_I
    assert a.node.usable_peers() == [B_HOST, C_HOST]
    assert len(net.links_between(A_ADDR, C_ADDR)) == 1


def test_wait_usable_fires_when_the_peer_opens() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    a.start()  # B is not listening yet: refused
    net.pump()
    waited: list[object] = []
    a.node.wait_usable(B_HOST, 10.0).addCallback(waited.append)
    b.start()
    net.advance(BACKOFF - 0.01)
    assert waited == []
    net.advance(0.01)
    assert waited == [None]
    done: list[object] = []
    a.node.wait_usable(B_HOST.upper(), 1.0).addCallback(done.append)
    assert done == [None]  # usable already


def test_wait_usable_fires_on_failback_after_reopen() -> None:
    net, a, _b, link = open_pair()
    link.drop()
    net.pump()
    waited: list[object] = []
    a.node.wait_usable(B_HOST, 60.0).addCallback(waited.append)
    net.advance(BACKOFF)
    assert a.state(B_HOST) == (PeerState.I_OPEN, WatchdogState.REOPEN)
    assert waited == []
    net.advance(2 * TW)
    assert a.state(B_HOST) == OPEN_I
    assert waited == [None]


def test_wait_usable_times_out_and_can_be_cancelled() -> None:
    net = DiameterNetwork()
    b = Node(net, B_ADDR, B_HOST)
    a = Node(net, A_ADDR, A_HOST, peers=[peer(B_HOST, B_ADDR)], listen=False)
    a.start()
    net.pump()
    timed_out: Outcome = []
    a.node.wait_usable(B_HOST, 1.0).addErrback(timed_out.append)
    cancelled = a.node.wait_usable(B_HOST, 10.0)
    outcome: Outcome = []
    cancelled.addErrback(outcome.append)
    cancelled.cancel()
    fails_with(outcome, CancelledError)
    net.advance(1.0)
    fails_with(timed_out, NoPeerError)
    # The peer opening later does not fire the cancelled one again.
    b.start()
    net.advance(10)
    assert a.state(B_HOST) == OPEN_I
