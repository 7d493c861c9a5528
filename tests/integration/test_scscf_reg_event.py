"""The reg event package (RFC 3680 over RFC 6665) with a real watcher holding the dialog
(issue #6): SIPp subscribes to a subscriber's registration state through ``twistd sprout``'s
S-CSCF and answers every NOTIFY in the dialog while the registration changes, until the last
one; pjsua2 cannot do this (it answers a reg-event NOTIFY once, see
tests/integration/pjsua2_phones.py).

Homestead is a real ``twistd homestead`` (HSS-less, SQLite) provisioned with
``clearwater-provision``; the S-CSCF and its store are started as in test_scscf_stores.py.
The steps, each started only once SIPp has answered the NOTIFY before it (polled from SIPp's
message trace, with a deadline):

1. user0000 registers a first contact (SIPp, digest: ``reg_digest.xml``); the watcher
   (``reg_event_*.xml``) SUBSCRIBEs to its reg event with the Service-Route's ``;orig``
   Route, which the S-CSCF port trusts; 200, then NOTIFY 1: the contact active, registered;
2. a second contact registers: NOTIFY 2, that contact active, created;
3. it de-registers (``dereg_digest.xml``, Expires 0): NOTIFY 3, it is terminated,
   unregistered;
4. the subscription ends: the watcher unsubscribes in the dialog (Expires 0: ``terminated;
   reason=timeout``, the contact still active), or the network de-registers the subscriber
   with sprout's ``DELETE /registrations`` (``terminated;reason=deactivated``, the contact
   terminated, deactivated).

Every NOTIFY SIPp received is read back from its trace and checked here: in the dialog the
SUBSCRIBE made, CSeq increasing, ``application/reginfo+xml`` valid against RFC 3680's and
RFC 5628's schemas (xmllint), ``version`` up by one each time, and the contacts' states and
events as the step made them.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Optional

import attrs
import pytest

from clearwater.scscf.reginfo import REGINFO_CONTENT_TYPE, Reginfo, parse_reginfo
from clearwater.sip import Request, Response, parse_message
from clearwater.sip.headers import EVENT, SUBSCRIPTION_STATE
from tests.integration._peers import (
    HOST,
    PEER_TIMEOUT,
    SCENARIOS,
    Processes,
    free_port,
    processes,
    require_binary,
    run,
    sipp,
    sipp_trace,
    wait_until,
)
from tests.integration.test_homestead_service import get_json
from tests.integration.test_scscf_stores import (
    ORIG_ROUTE,
    Node,
    _homestead,
    _passed,
    _register,
    _start,
)
from tests.unit.scscf.test_reginfo import assert_schema_valid

__all__ = ["processes"]  # the fixture

USER = "user0000"
DOMAIN = "example.com"
AOR = "sip:" + USER + "@" + DOMAIN
#: The watcher's scenario for each way the subscription ends.
SCENARIO = {
    "unsubscribe": "reg_event_unsubscribe.xml",
    "network-deregistration": "reg_event_network_dereg.xml",
}
#: The reason of the last NOTIFY's ``Subscription-State: terminated`` (RFC 6665 §4.1.3).
REASON = {"unsubscribe": "timeout", "network-deregistration": "deactivated"}


@attrs.frozen
class Watcher:
    """The SIPp reg-event watcher running in the background, and its message trace."""

    process: subprocess.Popen[bytes]
    trace: Path
    port: int


def _watch(processes: Processes, node: Node, ending: str) -> Watcher:
    port = free_port()
    trace = processes.log_dir / "watcher-messages.log"
    args = [sipp(), "-sf", str(SCENARIOS / SCENARIO[ending]), f"{HOST}:{node.scscf}"]
    args += ["-s", USER, "-key", "domain", DOMAIN, "-key", "route", ORIG_ROUTE]
    args += ["-i", HOST, "-p", str(port), "-t", "u1", "-m", "1", "-nostdin"]
    args += ["-trace_msg", "-message_file", str(trace), "-timeout", "60", "-timeout_error"]
    return Watcher(processes.start("watcher", args), trace, port)


def _logs(processes: Processes, watcher: Watcher) -> str:
    trace = watcher.trace.read_text(errors="replace") if watcher.trace.exists() else ""
    return "".join(
        "\n--- " + name + "\n" + text[-4000:]
        for name, text in (
            ("watcher", processes.log("watcher")),
            ("watcher's trace", trace),
            ("sprout", processes.log("sprout")),
            ("homestead", processes.log("homestead")),
        )
    )


def _answered(watcher: Watcher) -> int:
    """The NOTIFYs the watcher has answered so far (it sends no other response), each counted
    once (SIPp answers a retransmitted NOTIFY again)."""
    answers = (parse_message(m.data) for m in sipp_trace(watcher.trace) if m.sent)
    return len({r.cseq.seq for r in answers if isinstance(r, Response)})


def _await_answered(
    processes: Processes, watcher: Watcher, count: int, *, then_goes_on: bool = False
) -> None:
    """Wait until the watcher answered ``count`` NOTIFYs, and no more unless it ``then_goes_on``
    by itself (the unsubscribing watcher sends its SUBSCRIBE Expires 0 after the third)."""
    wait_until(
        lambda: watcher.process.poll() is not None or _answered(watcher) >= count,
        PEER_TIMEOUT,
        "the watcher to answer NOTIFY " + str(count),
    )
    answered = _answered(watcher)
    assert answered == count or (then_goes_on and answered > count), _logs(processes, watcher)


def _deregister(processes: Processes, node: Node, port: int) -> None:
    """SIPp removes ``USER``'s binding at ``port`` with digest (Expires 0)."""
    path = processes.log_dir / "deregister.csv"
    auth = f"[authentication username={USER}@{DOMAIN} password=pw0000]"
    path.write_text(f"SEQUENTIAL\n{USER};{DOMAIN};{auth}\n")
    args = [sipp(), "-sf", str(SCENARIOS / "dereg_digest.xml"), f"{HOST}:{node.scscf}"]
    args += ["-inf", str(path), "-i", HOST, "-p", str(port), "-t", "u1", "-m", "1"]
    _passed(run([*args, "-nostdin", "-timeout", "30", "-timeout_error"], timeout=45), 1, processes)


def _network_deregister(node: Node) -> None:
    """Homestead's Registration-Termination push (spec §3.11): every binding of ``AOR``."""
    body = json.dumps({"registrations": [{"primary-impu": AOR}]}).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{node.sprout.http_port}/registrations?send-notifications=true",
        data=body,
        method="DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _contact(port: int) -> str:
    """The Contact URI reg_digest.xml registers from ``port`` (lower case)."""
    return f"sip:{USER}@{HOST}:{port};transport=udp"


def _unique(messages: list[Request]) -> list[Request]:
    """``messages`` without retransmissions (the same top Via branch again)."""
    seen: set[Optional[str]] = set()
    unique = []
    for message in messages:
        branch = message.top_via.branch
        if branch not in seen:
            seen.add(branch)
            unique.append(message)
    return unique


def _check_document(
    reginfo: Reginfo,
    registration_state: str,
    contacts: dict[str, tuple[str, str]],
    changed: set[str],
) -> None:
    """One registration, ``AOR``; its contacts (URI -> (state, event)) are ``contacts``, or,
    in a partial document (RFC 3680 §5.1), some of them including every ``changed`` one."""
    [registration] = reginfo.registrations
    assert registration.aor == AOR
    assert registration.state == registration_state
    shown = {c.uri.lower(): (c.state, c.event.value) for c in registration.contacts}
    assert len(shown) == len(registration.contacts), registration.contacts
    if reginfo.state == "full":
        assert shown == contacts
    else:
        assert reginfo.state == "partial"
        assert changed <= set(shown), shown
        assert {uri: contacts.get(uri) for uri in shown} == shown


#: What one NOTIFY should say: its registration's state, its contacts (URI -> (state, event))
#: and the contacts that changed (all a partial document must show).
Step = tuple[str, dict[str, tuple[str, str]], set[str]]


def _steps(ending: str, first: str, second: str) -> list[Step]:
    return [
        ("active", {first: ("active", "registered")}, set()),
        ("active", {first: ("active", "registered"), second: ("active", "created")}, {second}),
        (
            "active",
            {first: ("active", "registered"), second: ("terminated", "unregistered")},
            {second},
        ),
        ("active", {first: ("active", "registered")}, set())
        if ending == "unsubscribe"
        else ("terminated", {first: ("terminated", "deactivated")}, {first}),
    ]


def _check_notify(
    number: int, notify: Request, subscribe: Request, accepted: Response, watcher: Watcher
) -> Reginfo:
    """One NOTIFY of the four: in the SUBSCRIBE's dialog (RFC 6665 §4.2.1.2, RFC 3261
    §12.2.1.1), ``Event: reg``, active or (the last) terminated, with a reginfo document valid
    against the schemas; returns the document."""
    what = "NOTIFY " + str(number) + ":\n" + notify.to_bytes().decode(errors="replace")
    assert str(notify.uri).lower() == f"sip:{USER}@{HOST}:{watcher.port};transport=udp", what
    assert notify.call_id == subscribe.call_id, what
    assert notify.from_.tag == accepted.to.tag, what
    assert notify.to.tag == subscribe.from_.tag, what
    event = notify.headers.first(EVENT)
    assert event is not None and event.package == "reg", what
    state = notify.headers.first(SUBSCRIPTION_STATE)
    assert state is not None, what
    if number < 4:
        assert state.state == "active", what
        expires = state.param("expires")
        assert expires is not None and 0 < int(expires) <= 600, what
    else:
        assert state.state == "terminated", what
    assert notify.content_type is not None, what
    assert notify.content_type.mime_type == REGINFO_CONTENT_TYPE, what
    assert_schema_valid(notify.body)
    reginfo = parse_reginfo(notify.body)
    if number == 1:
        assert reginfo.state == "full", what  # the first document has the whole state
    return reginfo


@pytest.mark.parametrize("ending", ["unsubscribe", "network-deregistration"])
def test_a_sipp_watcher_gets_a_notify_for_every_change_until_the_subscription_ends(
    processes: Processes, tmp_path: Path, ending: str
) -> None:
    require_binary("xmllint", "libxml2-utils")
    node = _start(processes, _homestead(processes, tmp_path), "memory:", "sprout")
    first, second = free_port(), free_port()
    _register(processes, node, 0, first)

    watcher = _watch(processes, node, ending)
    _await_answered(processes, watcher, 1)
    _register(processes, node, 0, second)
    _await_answered(processes, watcher, 2)
    _deregister(processes, node, second)
    _await_answered(processes, watcher, 3, then_goes_on=ending == "unsubscribe")
    if ending == "network-deregistration":
        _network_deregister(node)
    try:
        code = watcher.process.wait(timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the watcher did not end" + _logs(processes, watcher))
    assert code == 0, _logs(processes, watcher)
    assert _answered(watcher) == 4, _logs(processes, watcher)

    trace = sipp_trace(watcher.trace)
    received = [parse_message(m.data) for m in trace if not m.sent]
    sent = _unique(
        [r for r in (parse_message(m.data) for m in trace if m.sent) if isinstance(r, Request)]
    )
    assert [r.method for r in sent] == ["SUBSCRIBE"] * (2 if ending == "unsubscribe" else 1)
    accepted = next(
        r for r in received if isinstance(r, Response) and r.status == 200 and r.cseq.seq == 1
    )
    notifies = _unique([r for r in received if isinstance(r, Request)])
    assert [n.method for n in notifies] == ["NOTIFY"] * 4, notifies
    # RFC 6665 §4.2.1.2: the first NOTIFY follows the 200 (the scenarios take either order).
    assert received.index(accepted) < received.index(notifies[0])

    steps = _steps(ending, _contact(first), _contact(second))
    versions = []
    for number, (notify, step) in enumerate(zip(notifies, steps), 1):
        reginfo = _check_notify(number, notify, sent[0], accepted, watcher)
        _check_document(reginfo, *step)
        versions.append(reginfo.version)
    last = notifies[-1].headers.first(SUBSCRIPTION_STATE)
    assert last is not None and last.param("reason") == REASON[ending], str(last)
    # RFC 3680 §5.1: the version goes up by one with each document sent on the subscription.
    assert versions == list(range(versions[0], versions[0] + 4)), versions
    cseqs = [n.cseq.seq for n in notifies]
    assert cseqs == sorted(set(cseqs)), cseqs  # RFC 3261 §12.2.1.1: strictly increasing

    status, view = get_json(f"http://{HOST}:{node.sprout.http_port}/impu/{AOR}/subscriptions")
    assert status == 404 or (status == 200 and view["subscriptions"] == {}), (status, view)


def test_the_watchers_trace_reader_keeps_whole_messages_only(tmp_path: Path) -> None:
    """:func:`sipp_trace` on a trace as SIPp writes it, cut in the middle of an entry."""
    trace = tmp_path / "messages.log"
    sent = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    got = b"SIP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    whole = (
        b"----------------------------------------------- 2026-01-01 00:00:00.000001\n"
        b"UDP message sent (" + str(len(sent)).encode() + b" bytes):\n\n" + sent + b"\n"
        b"----------------------------------------------- 2026-01-01 00:00:00.000002\n"
        b"UDP message received [" + str(len(got)).encode() + b"] bytes :\n\n" + got + b"\n\n"
    )
    trace.write_bytes(whole + whole[: len(whole) - 3])
    messages = sipp_trace(trace)
    assert [(m.sent, m.data) for m in messages] == [(True, sent), (False, got), (True, sent)]
