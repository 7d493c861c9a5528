"""``twistd clearwater``, the all-in-one (issue #6): provisioned with ``clearwater-provision``
through its own provisioning port, phones (SIPp) register on the phone port with digest, and
the phone port is no open door: a request from a phone is challenged (407) even when it
carries the S-CSCF's Service-Route, and once answered is handled as that subscriber's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration._peers import (
    HOST,
    SCENARIOS,
    STARTUP_TIMEOUT,
    TWISTD,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    run,
    sipp,
    sipp_counter,
    sprout_env,
    wait_until,
)
from tests.integration.test_homestead_service import provision
from tests.integration.test_scscf_interop import USERS, _register

__all__ = ["processes"]  # the fixture


def _start(processes: Processes, tmp_path: Path) -> dict[str, int]:
    ports = {name: free_port() for name in ("phone", "scscf", "http", "hs", "prov")}
    args = [*TWISTD, "-n", "--pidfile=", "clearwater", "--home-domain", "example.com"]
    args += ["--local-ip", HOST, "--subscriber-store", "sqlite:" + str(tmp_path / "aio.db")]
    args += ["--phone-port", str(ports["phone"]), "--scscf", str(ports["scscf"])]
    args += ["--http-port", str(ports["http"]), "--hs-port", str(ports["hs"])]
    args += ["--prov-port", str(ports["prov"])]
    process = processes.start("clearwater", args, env=sprout_env())
    wait_until(
        lambda: (
            process.poll() is not None
            or all(port_is_bound("tcp", ports[p]) for p in ("phone", "prov", "hs"))
        ),
        STARTUP_TIMEOUT,
        "twistd clearwater to listen",
    )
    assert process.poll() is None, processes.log("clearwater")
    for n in range(2):
        created = provision(
            "--server", f"http://{HOST}:{ports['prov']}",
            "create-user", f"sip:user{n}@example.com", "--password", f"pw{n}",
        )  # fmt: skip
        assert created.returncode == 0, describe(created)
    return ports


def _users(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    path.write_text(
        "SEQUENTIAL\nuser0;example.com;[authentication username=user0@example.com password=pw0]\n"
    )
    return path


def _sipp(
    scenario: str, port: int, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    args = [sipp(), "-sf", str(SCENARIOS / scenario), f"{HOST}:{port}", "-i", HOST]
    args += ["-inf", str(_users(tmp_path)), "-p", str(free_port()), "-t", "u1", "-m", "1"]
    return run([*args, *extra, "-nostdin", "-timeout", "30", "-timeout_error"], timeout=45)


def _ok(result: subprocess.CompletedProcess[str], processes: Processes) -> None:
    assert result.returncode == 0, describe(result) + "\n" + processes.log("clearwater")
    assert sipp_counter(result.stdout, "Successful call") == 1


def test_phone_registers_on_the_phone_port(processes: Processes, tmp_path: Path) -> None:
    ports = _start(processes, tmp_path)
    _ok(_sipp("reg_digest.xml", ports["phone"], tmp_path), processes)


def test_sipp_registers_1000_subscribers_over_udp_and_tcp_on_the_phone_port(
    processes: Processes, tmp_path: Path
) -> None:
    """Issue #6: 1,000 subscribers provisioned in bulk through the all-in-one's provisioning
    port register with digest on its phone port, over UDP and over TCP (``reg_digest.xml``
    checks each 200's Service-Route, P-Associated-URI and binding)."""
    ports = _start(processes, tmp_path)
    csv = tmp_path / "many.csv"
    lines = (f"sip:user{n:04}@example.com,user{n:04}@example.com,pw{n:04}\n" for n in range(USERS))
    csv.write_text("".join(lines))
    created = provision(
        "--server", f"http://{HOST}:{ports['prov']}", "create-users", "--csv", str(csv)
    )  # fmt: skip
    assert created.returncode == 0, describe(created)
    for transport in ("udp", "tcp"):
        result = _register(tmp_path, ports["phone"], 0, USERS, transport)
        assert result.returncode == 0, describe(result) + "\n" + processes.log("clearwater")
        assert sipp_counter(result.stdout, "Successful call") == USERS
        assert sipp_counter(result.stdout, "Failed call") == 0


def test_requests_from_phones_are_challenged_whatever_their_route(
    processes: Processes, tmp_path: Path
) -> None:
    ports = _start(processes, tmp_path)
    keys = ["-key", "caller", "user0", "-key", "domain", "example.com", "-s", "user1"]
    for route in ("X-No-Route: 1", "Route: <sip:scscf.sprout.example.com;transport=tcp;lr;orig>"):
        result = _sipp(
            "aio_message_auth.xml", ports["phone"], tmp_path, *keys, "-key", "route", route
        )
        _ok(result, processes)
