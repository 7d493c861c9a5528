"""``twistd ralf`` end to end (issue #8's must-show): billing events POSTed over HTTP become
Diameter Rf ACRs at scripted CDFs (``python -m clearwater.testing.cdf``) over real TCP, with
record numbers, the event's AVPs, interim ACRs on schedule, and fail-over to the second CCF.

Everything runs on loopback on free ports; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from tests.integration._peers import (
    HOST,
    STARTUP_TIMEOUT,
    TWISTD,
    Processes,
    free_port,
    port_is_bound,
    processes,
    sprout_env,
    wait_until,
)

__all__ = ["processes"]  # the fixture

CDF1 = "cdf1.example.com"
CDF2 = "cdf2.example.com"
RALF = "ralf.example.com"
CALL_ID = "a84b4c76e66710@pc33.example.com"
#: Seconds an ACR may take to reach a CDF (a connection that is refused is given 2 s first).
ACR_TIMEOUT = 20.0


def start_cdf(
    processes: Processes, identity: str, port: int, record: Path, *options: str
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "clearwater.testing.cdf", "--identity", identity]
    args += ["--realm", "billing.example.com", "--listen", f"{HOST}:{port}"]
    args += ["--record", str(record), *options]
    name = identity.split(".")[0]
    process = processes.start(name, args, env=sprout_env())
    wait_until(
        lambda: process.poll() is not None or port_is_bound("tcp", port),
        STARTUP_TIMEOUT,
        name + " to listen",
    )
    assert process.poll() is None, processes.log(name)
    return process


def start_ralf(processes: Processes, *peers: tuple[str, int]) -> int:
    """``twistd -n ralf`` with ``peers`` as --billing-peer; its HTTP port."""
    http_port = free_port()
    args: list[str] = [*TWISTD, "-n", "--pidfile=", "ralf", "--home-domain", "example.com"]
    args += ["--local-ip", HOST, "--http-port", str(http_port), "--diameter-port", "0"]
    args += ["--billing-realm", "billing.example.com", "--diameter-timeout", "5"]
    for identity, port in peers:
        args += ["--billing-peer", f"{identity}={HOST}:{port}"]
    process = processes.start("ralf", args, env=sprout_env())
    wait_until(
        lambda: process.poll() is not None or port_is_bound("tcp", http_port),
        STARTUP_TIMEOUT,
        "ralf to listen",
    )
    assert process.poll() is None, processes.log("ralf")
    return http_port


def post(http_port: int, body: Any, query: str = "") -> tuple[int, bytes]:
    url = f"http://{HOST}:{http_port}/call-id/{quote(CALL_ID, safe='')}{query}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(http_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://{HOST}:{http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    assert found, name + " not in\n" + text
    return float(found.group(1))


def completed(http_port: int, outcome: str) -> float:
    return metric(http_port, f'clearwater_ralf_requests_completed_total{{outcome="{outcome}"}}')


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for_records(path: Path, count: int, what: str) -> list[dict[str, Any]]:
    wait_until(lambda: len(records(path)) >= count, ACR_TIMEOUT, what)
    return records(path)


def event(record_type: int, refresh: Optional[int] = None) -> dict[str, Any]:
    """An S-CSCF's event (as sprout's ``acr.cpp`` writes it, trimmed)."""
    body: dict[str, Any] = {"Accounting-Record-Type": record_type}
    if refresh is not None:
        body["Acct-Interim-Interval"] = refresh
    body["Event-Timestamp"] = 1444118158
    body["Service-Information"] = {
        "IMS-Information": {
            "Event-Type": {"SIP-Method": "INVITE" if record_type == 2 else "BYE"},
            "Role-Of-Node": 0,
            "Node-Functionality": 0,
            "User-Session-Id": CALL_ID,
            "Calling-Party-Address": ["sip:alice@example.com"],
            "Called-Party-Address": "sip:bob@example.com",
            "Time-Stamps": {"SIP-Request-Timestamp": 1444118158},
            "Inter-Operator-Identifier": [{"Originating-IOI": "example.com"}],
            "IMS-Charging-Identifier": "084972d9749c214876eb0ba4700ab1fa",
        }
    }
    return body


def bill(http_port: int, body: dict[str, Any], outcome: str = "success") -> None:
    """POST ``body`` and wait until ralf has finished with it (its ACA handled)."""
    before = completed(http_port, outcome)
    status, answer = post(http_port, body)
    assert (status, answer) == (200, b"")
    wait_until(
        lambda: completed(http_port, outcome) > before, ACR_TIMEOUT, "ralf to finish the request"
    )


def test_start_interim_stop_become_acrs(processes: Processes, tmp_path: Path) -> None:
    port1, port2 = free_port(), free_port()
    record1, record2 = tmp_path / "cdf1.jsonl", tmp_path / "cdf2.jsonl"
    start_cdf(processes, CDF1, port1, record1)
    start_cdf(processes, CDF2, port2, record2)
    http_port = start_ralf(processes, (CDF1, port1), (CDF2, port2))
    peers = {"ccf": [CDF1, CDF2], "ecf": []}

    bill(http_port, {"peers": peers, "event": event(2, refresh=600)})
    bill(http_port, {"event": event(3, refresh=600)})
    bill(http_port, {"event": event(4)})
    acrs = wait_for_records(record1, 3, "three ACRs at cdf1")
    assert [(a["record_type"], a["record_number"]) for a in acrs] == [
        ("START", 1),
        ("INTERIM", 2),
        ("STOP", 3),
    ]
    assert len({a["session_id"] for a in acrs}) == 1
    assert acrs[0]["session_id"].startswith(RALF + ";")
    assert {(a["origin_host"], a["destination_host"], a["result_code"]) for a in acrs} == {
        (RALF, CDF1, 2001)
    }
    # The event's AVPs arrive as posted (and read back in the same JSON shape).
    assert acrs[0]["event"] == event(2, refresh=600)
    assert acrs[2]["event"] == event(4)
    assert records(record2) == []

    # A second EVENT for another call: a new Session-Id, record number 1.
    bill(http_port, {"peers": peers, "event": event(1)})
    fourth = wait_for_records(record1, 4, "the EVENT at cdf1")[3]
    assert (fourth["record_type"], fourth["record_number"]) == ("EVENT", 1)
    assert fourth["session_id"] != acrs[0]["session_id"]

    # An INTERIM for a session that has ended is dropped; a bad body is refused.
    bill(http_port, {"event": event(3)}, outcome="no_session")
    status, answer = post(http_port, {"event": {"Accounting-Record-Type": 2}})
    assert status == 400
    assert json.loads(answer) == {
        "error": "event.Service-Information.IMS-Information: missing or not an object"
    }
    assert len(records(record1)) == 4


def test_interims_on_schedule(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    record = tmp_path / "cdf1.jsonl"
    # The CDF asks for an INTERIM every second; the session refreshes every 3 s.
    start_cdf(processes, CDF1, port, record, "--acct-interim-interval", "1")
    http_port = start_ralf(processes, (CDF1, port))

    bill(http_port, {"peers": {"ccf": [CDF1]}, "event": event(2, refresh=3)})
    acrs = wait_for_records(record, 4, "three timer INTERIMs")
    assert [(a["record_type"], a["record_number"]) for a in acrs] == [
        ("START", 1),
        ("INTERIM", 2),
        ("INTERIM", 3),
        ("INTERIM", 4),
    ]
    # Chronos' schedule: pop n at n seconds after the START's answer (never early; late only
    # by what a loaded machine adds).
    offsets = [a["received"] - acrs[0]["received"] for a in acrs[1:]]
    assert all(n - 0.05 <= offset <= n + 1.5 for n, offset in enumerate(offsets, 1)), offsets
    assert acrs[1]["event"] == {
        "Accounting-Record-Type": 3,
        "Service-Information": {"IMS-Information": {"Role-Of-Node": 0, "Node-Functionality": 0}},
    }
    # repeat-for (3 s) is over: the STOP is next, with the next record number.
    bill(http_port, {"event": event(4)})
    acrs = wait_for_records(record, 5, "the STOP")
    assert [(a["record_type"], a["record_number"]) for a in acrs[4:]] == [("STOP", 5)]
    assert metric(http_port, "clearwater_ralf_interim_pops_total") == 3


def test_fail_over_on_unable_to_deliver(processes: Processes, tmp_path: Path) -> None:
    port1, port2 = free_port(), free_port()
    record1, record2 = tmp_path / "cdf1.jsonl", tmp_path / "cdf2.jsonl"
    start_cdf(processes, CDF1, port1, record1, "--result-code", "3002")
    start_cdf(processes, CDF2, port2, record2)
    http_port = start_ralf(processes, (CDF1, port1), (CDF2, port2))

    bill(http_port, {"peers": {"ccf": [CDF1, CDF2]}, "event": event(2)})
    bill(http_port, {"event": event(3)})
    bill(http_port, {"event": event(4)})
    [refused] = records(record1)
    assert (refused["record_type"], refused["result_code"]) == ("START", 3002)
    acrs = wait_for_records(record2, 3, "three ACRs at cdf2")
    assert [(a["record_type"], a["record_number"]) for a in acrs] == [
        ("START", 1),
        ("INTERIM", 2),
        ("STOP", 3),
    ]
    # The same ACR went to cdf2; later ones started with the CCF that answered.
    assert {a["session_id"] for a in acrs} == {refused["session_id"]}
    assert {a["destination_host"] for a in acrs} == {CDF2}
    assert len(records(record1)) == 1
    assert metric(http_port, "clearwater_ralf_ccf_failovers_total") == 1


def test_fail_over_when_the_first_cdf_is_not_running(processes: Processes, tmp_path: Path) -> None:
    port1, port2 = free_port(), free_port()  # nothing listens on port1
    record2 = tmp_path / "cdf2.jsonl"
    start_cdf(processes, CDF2, port2, record2)
    http_port = start_ralf(processes, (CDF1, port1), (CDF2, port2))

    bill(http_port, {"peers": {"ccf": [CDF1, CDF2]}, "event": event(1)})
    [acr] = wait_for_records(record2, 1, "the EVENT at cdf2")
    assert (acr["record_type"], acr["record_number"], acr["destination_host"]) == (
        "EVENT",
        1,
        CDF2,
    )
    assert metric(http_port, "clearwater_ralf_ccf_failovers_total") == 1
