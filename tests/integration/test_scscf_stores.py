"""The S-CSCF's registration store between processes (issue #6's must-shows; spec §3.4, State
in docs/scscf.md): bindings written to ``--registration-store redis://...`` or
``memcached://...`` outlive the ``twistd sprout`` that wrote them, and two sprouts sharing one
Redis serve each other's registrations; with ``memory:`` a restart loses them.

A binding is proved by a call, not by reading the store: SIPp registers a subscriber with
digest (``reg_digest.xml``) from the port a SIPp uas then listens on, and a SIPp call to that
subscriber through a (new or other) sprout must reach the uas and be answered
(``scscf_call.xml``); without the binding the S-CSCF answers 480 (``scscf_480.xml``).
Homestead is a real ``twistd homestead`` (HSS-less, SQLite) provisioned with
``clearwater-provision``; Redis and memcached are real servers on loopback.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import attrs
import pytest

from tests.integration._peers import (
    HOST,
    SCENARIOS,
    Processes,
    Sprout,
    describe,
    free_port,
    port_is_bound,
    processes,
    run,
    sipp,
    sipp_counter,
    start_sprout,
    wait_until,
)
from tests.integration._servers import ServerProcess, memcached_server, redis_server
from tests.integration.test_homestead_service import provision, start_homestead

__all__ = ["memcached_server", "processes", "redis_server"]  # the fixtures

#: Subscribers provisioned: ``userNNNN@example.com``, password ``pwNNNN``.
SUBSCRIBERS = 3
#: Calls made to a registered subscriber each time one is proved reachable.
CALLS = 3
#: Seconds sprout may take to exit after SIGTERM (it quiesces, then closes its stores).
STOP_TIMEOUT = 30.0
#: The S-CSCF's Service-Route (``--uri-scscf`` default, transport as the caller's).
ORIG_ROUTE = "Route: <sip:scscf.sprout.example.com;transport=udp;lr;orig>"


@attrs.frozen
class Node:
    """One ``twistd sprout`` with its S-CSCF, and the ports a restart reuses."""

    sprout: Sprout
    scscf: int


def _homestead(processes: Processes, tmp_path: Path) -> str:
    """A provisioned ``twistd homestead``; returns its ``HOST:PORT`` for ``--hs-hostname``."""
    hs_port, prov_port = free_port(), free_port()
    start_homestead(processes, "sqlite:" + str(tmp_path / "hs.db"), hs_port, prov_port)
    csv = tmp_path / "users.csv"
    lines = (
        f"sip:user{n:04}@example.com,user{n:04}@example.com,pw{n:04}\n" for n in range(SUBSCRIBERS)
    )
    csv.write_text("".join(lines))
    created = provision("--server", f"http://{HOST}:{prov_port}", "create-users", "--csv", str(csv))
    assert created.returncode == 0, describe(created)
    return f"{HOST}:{hs_port}"


def _start(
    processes: Processes,
    homestead: str,
    store: str,
    name: str,
    *,
    scscf: int = 0,
    sip_port: int = 0,
    http_port: int = 0,
) -> Node:
    """``twistd sprout`` with its S-CSCF on ``scscf`` (a free port when 0), registrations in
    ``store``; waits until the S-CSCF port is bound."""
    scscf = scscf or free_port()
    sprout = start_sprout(
        processes,
        "--scscf", str(scscf), "--hs-hostname", homestead,
        "--registration-store", store, "--reg-max-expires", "1800",
        sip_port=sip_port or free_port(), http_port=http_port or free_port(), name=name,
    )  # fmt: skip
    wait_until(lambda: port_is_bound("udp", scscf), 10, name + "'s S-CSCF port")
    return Node(sprout, scscf)


def _restart(processes: Processes, node: Node, homestead: str, store: str, name: str) -> Node:
    """SIGTERM ``node``, wait for it to exit, and start a new sprout on the same ports."""
    process = node.sprout.process
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(node.sprout.name + " ignored SIGTERM:\n" + processes.log(node.sprout.name))
    # twistd ends by re-raising the signal it shut down on, after a clean shutdown.
    log = processes.log(node.sprout.name)
    assert code == -signal.SIGTERM and "Server Shut Down." in log, log
    assert not port_is_bound("udp", node.scscf)
    return _start(
        processes,
        homestead,
        store,
        name,
        scscf=node.scscf,
        sip_port=node.sprout.sip_port,
        http_port=node.sprout.http_port,
    )


def _logs(processes: Processes) -> str:
    names = ("sprout", "sprout-again", "sprout-a", "sprout-b", "homestead")
    return "".join("\n--- " + n + "\n" + processes.log(n)[-3000:] for n in names)


def _passed(result: subprocess.CompletedProcess[str], count: int, processes: Processes) -> None:
    """SIPp exited 0 with ``count`` successful calls and no failed one."""
    assert result.returncode == 0, describe(result) + _logs(processes)
    assert sipp_counter(result.stdout, "Successful call") == count
    assert sipp_counter(result.stdout, "Failed call") == 0


def _register(processes: Processes, node: Node, user: int, port: int) -> None:
    """SIPp registers ``userNNNN`` through ``node`` with digest, its Contact at ``port``."""
    path = processes.log_dir / f"register-{node.sprout.name}-{user}.csv"
    auth = f"[authentication username=user{user:04}@example.com password=pw{user:04}]"
    path.write_text(f"SEQUENTIAL\nuser{user:04};example.com;{auth}\n")
    args = [sipp(), "-sf", str(SCENARIOS / "reg_digest.xml"), f"{HOST}:{node.scscf}"]
    args += ["-inf", str(path), "-i", HOST, "-p", str(port), "-t", "u1", "-m", "1"]
    _passed(run([*args, "-nostdin", "-timeout", "30", "-timeout_error"], timeout=45), 1, processes)


def _call(
    processes: Processes, node: Node, callee: int, scenario: str, calls: int
) -> subprocess.CompletedProcess[str]:
    """SIPp calls ``userNNNN`` ``calls`` times from user0000 through ``node``'s S-CSCF."""
    args = [sipp(), "-sf", str(SCENARIOS / scenario), f"{HOST}:{node.scscf}"]
    args += ["-s", f"user{callee:04}", "-key", "route", ORIG_ROUTE]
    args += ["-key", "domain", "example.com", "-key", "caller", "user0000", "-i", HOST]
    args += ["-p", str(free_port()), "-t", "u1", "-m", str(calls), "-r", "10", "-nostdin"]
    return run([*args, "-timeout", "30", "-timeout_error"], timeout=45)


def _reaches(processes: Processes, node: Node, callee: int, port: int, name: str) -> None:
    """``CALLS`` calls to ``userNNNN`` through ``node`` all reach a SIPp uas at ``port`` (where
    the binding points), which checks each INVITE was routed to the binding
    (``scscf_uas.xml``) and exits once it took them all."""
    uas = processes.start(
        name,
        [sipp(), "-sf", SCENARIOS / "scscf_uas.xml", "-i", HOST, "-p", str(port), "-t", "u1",
         "-nostdin", "-m", str(CALLS), "-timeout", "60", "-timeout_error"],
    )  # fmt: skip
    wait_until(lambda: port_is_bound("udp", port) or uas.poll() is not None, 10, name)
    assert uas.poll() is None, processes.log(name)
    _passed(_call(processes, node, callee, "scscf_call.xml", CALLS), CALLS, processes)
    assert uas.wait(timeout=30) == 0, "--- " + name + "\n" + processes.log(name) + _logs(processes)


def _unreachable(processes: Processes, node: Node, callee: int) -> None:
    """A call to ``userNNNN`` through ``node`` gets 480: the S-CSCF knows no binding."""
    _passed(_call(processes, node, callee, "scscf_480.xml", 1), 1, processes)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_registration_survives_a_sprout_restart_on_a_shared_store(
    kind: str,
    request: pytest.FixtureRequest,
    processes: Processes,
    tmp_path: Path,
) -> None:
    server: ServerProcess = request.getfixturevalue(kind + "_server")
    store = f"{kind}://{HOST}:{server.port}" + ("/0" if kind == "redis" else "")
    homestead = _homestead(processes, tmp_path)
    node = _start(processes, homestead, store, "sprout")
    callee_port = free_port()
    _register(processes, node, 1, callee_port)

    again = _restart(processes, node, homestead, store, "sprout-again")
    _reaches(processes, again, 1, callee_port, "uas")
    _unreachable(processes, again, 2)  # only the registered subscriber has a binding


def test_a_memory_store_loses_the_registration_at_a_restart(
    processes: Processes, tmp_path: Path
) -> None:
    homestead = _homestead(processes, tmp_path)
    node = _start(processes, homestead, "memory:", "sprout")
    callee_port = free_port()
    _register(processes, node, 1, callee_port)
    _reaches(processes, node, 1, callee_port, "uas")

    again = _restart(processes, node, homestead, "memory:", "sprout-again")
    _unreachable(processes, again, 1)


def test_two_sprouts_sharing_redis_serve_each_others_registrations(
    redis_server: ServerProcess, processes: Processes, tmp_path: Path
) -> None:
    store = f"redis://{HOST}:{redis_server.port}/0"
    homestead = _homestead(processes, tmp_path)
    a = _start(processes, homestead, store, "sprout-a")
    b = _start(processes, homestead, store, "sprout-b")
    first, second = free_port(), free_port()
    _register(processes, a, 1, first)
    _register(processes, b, 2, second)

    _reaches(processes, b, 1, first, "uas-1")
    _reaches(processes, a, 2, second, "uas-2")
