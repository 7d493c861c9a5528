"""The S-CSCF (issue #6) between real peers: ``twistd sprout`` with its built-in S-CSCF,
asking a ``twistd homestead`` (HSS-less, SQLite) over HTTP, provisioned with
``clearwater-provision``; SIPp registers subscribers with MD5 digest and calls a SIPp uas
registered as a subscriber."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from tests.integration._peers import (
    HOST,
    SCENARIOS,
    Processes,
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
from tests.integration.test_homestead_service import provision, start_homestead

__all__ = ["processes"]  # the fixture

USERS = 1000
CALLS = 500
#: Registrations per second SIPp offers: PyPy's sprout and homestead start cold (their JIT warms
#: during the run) and answer 200/s late enough for SIPp's retransmissions to pile up.
REG_RATE = 50 if platform.python_implementation() == "PyPy" else 200


def _core(processes: Processes, tmp_path: Path, users: int) -> int:
    """Homestead with ``users`` subscribers (``userNNNN@example.com``, password ``pwNNNN``)
    and sprout's S-CSCF asking it; returns the S-CSCF port."""
    hs_port, prov_port = free_port(), free_port()
    start_homestead(processes, "sqlite:" + str(tmp_path / "hs.db"), hs_port, prov_port)
    csv = tmp_path / "users.csv"
    lines = (f"sip:user{n:04}@example.com,user{n:04}@example.com,pw{n:04}\n" for n in range(users))
    csv.write_text("".join(lines))
    created = provision("--server", f"http://{HOST}:{prov_port}", "create-users", "--csv", str(csv))
    assert created.returncode == 0, describe(created)
    scscf = free_port()
    start_sprout(
        processes,
        "--scscf", str(scscf), "--hs-hostname", f"{HOST}:{hs_port}",
        "--reg-max-expires", "1800",
    )  # fmt: skip
    wait_until(lambda: port_is_bound("udp", scscf), 10, "the S-CSCF port")
    return scscf


def _sipp_users(tmp_path: Path, first: int, count: int) -> Path:
    path = tmp_path / f"sipp-users-{first}.csv"
    lines = ["SEQUENTIAL"]
    for n in range(first, first + count):
        auth = f"[authentication username=user{n:04}@example.com password=pw{n:04}]"
        lines.append(f"user{n:04};example.com;{auth}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _register(
    tmp_path: Path, scscf: int, first: int, count: int, transport: str, port: int = 0
) -> subprocess.CompletedProcess[str]:
    args = [sipp(), "-sf", str(SCENARIOS / "reg_digest.xml"), f"{HOST}:{scscf}"]
    args += ["-inf", str(_sipp_users(tmp_path, first, count)), "-i", HOST]
    args += ["-p", str(port or free_port()), "-t", "u1" if transport == "udp" else "t1"]
    args += ["-m", str(count), "-r", str(REG_RATE), "-nostdin", "-timeout", "90", "-timeout_error"]
    return run(args, timeout=120)


def _assert_all(result: subprocess.CompletedProcess[str], count: int, processes: Processes) -> None:
    assert result.returncode == 0, describe(result) + "\n--- sprout\n" + processes.log("sprout")
    assert sipp_counter(result.stdout, "Successful call") == count
    assert sipp_counter(result.stdout, "Failed call") == 0


def test_sipp_registers_1000_subscribers_with_digest_over_udp_and_tcp(
    processes: Processes, tmp_path: Path
) -> None:
    scscf = _core(processes, tmp_path, USERS)
    _assert_all(_register(tmp_path, scscf, 0, USERS, "udp"), USERS, processes)
    _assert_all(_register(tmp_path, scscf, 0, USERS, "tcp"), USERS, processes)


def test_sipp_calls_a_registered_subscriber_and_an_unregistered_one_gets_480(
    processes: Processes, tmp_path: Path
) -> None:
    scscf = _core(processes, tmp_path, 3)
    callee_port = free_port()
    _assert_all(_register(tmp_path, scscf, 1, 1, "udp", port=callee_port), 1, processes)
    uas = processes.start(
        "uas",
        [sipp(), "-sn", "uas", "-i", HOST, "-p", str(callee_port), "-t", "u1", "-nostdin",
         "-m", str(CALLS)],
    )  # fmt: skip
    wait_until(lambda: port_is_bound("udp", callee_port) or uas.poll() is not None, 10, "uas")
    route = "Route: <sip:scscf.sprout.example.com;transport=udp;lr;orig>"
    keys = ["-key", "route", route, "-key", "domain", "example.com", "-key", "caller", "user0000"]
    args = [sipp(), "-sf", str(SCENARIOS / "scscf_call.xml"), f"{HOST}:{scscf}", "-s", "user0001"]
    args += [*keys, "-i", HOST]
    args += ["-p", str(free_port()), "-t", "u1", "-m", str(CALLS), "-r", "100", "-nostdin"]
    result = run([*args, "-timeout", "60", "-timeout_error"], timeout=90)
    _assert_all(result, CALLS, processes)
    assert uas.wait(timeout=30) == 0, processes.log("uas")

    args = [sipp(), "-sf", str(SCENARIOS / "scscf_480.xml"), f"{HOST}:{scscf}", "-s", "user0002"]
    args += [*keys, "-i", HOST]
    args += ["-p", str(free_port()), "-t", "u1", "-m", "1", "-nostdin", "-timeout", "30"]
    _assert_all(run([*args, "-timeout_error"], timeout=45), 1, processes)
