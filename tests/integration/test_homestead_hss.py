"""Homestead in HSS mode end to end (issue #8's must-show): SIPp registers subscribers with
digest through ``twistd sprout`` → ``twistd homestead --hss-peer ...`` (Cx over real TCP) →
two scripted HSSs (``python -m clearwater.testing.hss``) sharing one subscriber store; with
one HSS stopped, registrations still succeed through the other. Then the HSS's own requests
reach sprout through homestead (spec §3.11): an RTR removes a subscriber's bindings from
sprout, a PPR is accepted by sprout."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration._diameter_peers import write_self_signed
from tests.integration._peers import (
    HOST,
    STARTUP_TIMEOUT,
    TWISTD,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    sprout_env,
    start_sprout,
    wait_until,
)
from tests.integration.test_homestead_service import provision
from tests.integration.test_scscf_interop import _assert_all, _register

__all__ = ["processes"]  # the fixture

USERS = 50
REALM = "example.com"


def start_hss(
    processes: Processes, name: str, store: str, port: int, prov_port: int = 0
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "clearwater.testing.hss", "--identity", f"{name}.{REALM}"]
    args += ["--realm", REALM, "--listen", f"{HOST}:{port}", "--store", store, "--tw", "6"]
    args += ["--home-domain", REALM]
    if prov_port:
        args += ["--prov-port", str(prov_port)]
    process = processes.start(name, args, env=sprout_env())
    wait_until(
        lambda: (
            process.poll() is not None
            or (port_is_bound("tcp", port) and (not prov_port or port_is_bound("tcp", prov_port)))
        ),
        STARTUP_TIMEOUT,
        name + " to listen",
    )
    assert process.poll() is None, processes.log(name)
    return process


def start_hss_homestead(
    processes: Processes, http_port: int, hss_ports: dict[str, int], sprout_http: int
) -> subprocess.Popen[bytes]:
    args = [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", REALM]
    args += ["--local-ip", HOST, "--http-port", str(http_port), "--diameter-port", "0"]
    args += ["--sprout-http-name", f"{HOST}:{sprout_http}"]
    args += ["--hss-realm", REALM, "--diameter-watchdog", "6", "--diameter-timeout", "2"]
    for name, port in hss_ports.items():
        args += ["--hss-peer", f"{name}.{REALM}={HOST}:{port}"]
    process = processes.start("homestead", args, env=sprout_env())
    opened = [f"peer {name}.{REALM} Wait-I-CEA -> I-Open" for name in hss_ports]
    wait_until(
        lambda: (
            process.poll() is not None or all(line in processes.log("homestead") for line in opened)
        ),
        STARTUP_TIMEOUT,
        "homestead to open its HSS connections",
    )
    assert process.poll() is None, processes.log("homestead")
    return process


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_sipp_registers_through_hss_mode_homestead_and_survives_an_hss_stopping(
    processes: Processes, tmp_path: Path
) -> None:
    store = "sqlite:" + str(tmp_path / "hss.db")
    ports = {"hss1": free_port(), "hss2": free_port()}
    prov_port, prov_port2 = free_port(), free_port()
    hss1 = start_hss(processes, "hss1", store, ports["hss1"], prov_port)
    start_hss(processes, "hss2", store, ports["hss2"], prov_port2)
    csv = tmp_path / "users.csv"
    lines = (f"sip:user{n:04}@{REALM},user{n:04}@{REALM},pw{n:04}\n" for n in range(USERS))
    csv.write_text("".join(lines))
    created = provision("--server", f"http://{HOST}:{prov_port}", "create-users", "--csv", str(csv))
    assert created.returncode == 0, describe(created)

    hs_port, sprout_http = free_port(), free_port()
    start_hss_homestead(processes, hs_port, ports, sprout_http)
    scscf = free_port()
    start_sprout(
        processes,
        "--scscf", str(scscf), "--hs-hostname", f"{HOST}:{hs_port}",
        "--reg-max-expires", "1800",
        http_port=sprout_http,
    )  # fmt: skip
    wait_until(lambda: port_is_bound("udp", scscf), 10, "the S-CSCF port")

    _assert_all(_register(tmp_path, scscf, 0, USERS, "udp"), USERS, processes)
    hs_log = processes.log("homestead")
    assert "hss1" in processes.log("hss1")

    # The first HSS goes away (SIGTERM: it sends DPR); the second serves every request.
    hss1.terminate()
    assert hss1.wait(timeout=30) == 0, processes.log("hss1")
    wait_until(
        lambda: (
            f"peer hss1.{REALM} Closing -> Closed" in processes.log("homestead")
            or f"peer hss1.{REALM} I-Open -> Closed" in processes.log("homestead")
        ),
        15,
        "homestead to see hss1 go",
    )
    _assert_all(_register(tmp_path, scscf, 0, USERS, "tcp"), USERS, processes)

    # An RTR from hss2 (PERMANENT_TERMINATION of user0001's IMPI): homestead asks sprout to
    # remove the registration, and the bindings are gone.
    bindings = f"http://{HOST}:{sprout_http}/impu/sip:user0001@{REALM}/bindings"
    status, body = http("GET", bindings)
    assert status == 200 and body["bindings"], body
    admin = f"http://{HOST}:{prov_port2}/hss"
    rtr = {"destination_host": f"homestead.{REALM}", "impi": f"user0001@{REALM}", "reason": 0}
    assert http("POST", admin + "/rtr", rtr) == (200, {"result-code": 2001, "experimental": False})
    assert http("GET", bindings)[0] == 404
    assert http("GET", bindings.replace("user0001", "user0002"))[0] == 200
    # user0002's iFCs change at the HSS, which pushes the new subscription (PPR): homestead
    # passes it to sprout (PUT /registrations/<impu>), and answers 2001 only if sprout took it.
    ifcs = tmp_path / "ifcs.xml"
    ifcs.write_text(
        "<ServiceProfile><InitialFilterCriteria><Priority>1</Priority><TriggerPoint>"
        "<ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated>"
        "<Group>0</Group><Method>MESSAGE</Method></SPT></TriggerPoint><ApplicationServer>"
        "<ServerName>sip:as.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
        "</ApplicationServer></InitialFilterCriteria></ServiceProfile>"
    )
    server = f"http://{HOST}:{prov_port2}"
    updated = provision(
        "--server", server, "update-user", f"sip:user0002@{REALM}", "--ifc-file", str(ifcs)
    )
    assert updated.returncode == 0, describe(updated)
    ppr = {
        "destination_host": f"homestead.{REALM}",
        "impi": f"user0002@{REALM}",
        "impu": f"sip:user0002@{REALM}",
    }
    assert http("POST", admin + "/ppr", ppr) == (200, {"result-code": 2001, "experimental": False})
    reg_data = f"http://{HOST}:{hs_port}/impu/sip:user0002@{REALM}/reg-data"
    with urllib.request.urlopen(reg_data, timeout=10) as response:
        assert b"sip:as.example.com" in response.read()  # homestead's cache has the new iFCs
    assert "Traceback" not in processes.log("homestead"), hs_log


def test_hss_mode_over_tls(processes: Processes, tmp_path: Path) -> None:
    """``--hss-tls``: homestead reaches the HSS over TLS (RFC 6733 §2.1), checking the HSS's
    certificate against ``--diameter-tls-ca``, and answers from it."""
    certificate, key = write_self_signed(tmp_path, f"hss.{REALM}")
    port, tls_port, prov_port = free_port(), free_port(), free_port()
    args = [sys.executable, "-m", "clearwater.testing.hss", "--identity", f"hss.{REALM}"]
    args += ["--realm", REALM, "--listen", f"{HOST}:{port}", "--home-domain", REALM]
    args += ["--tls-listen", f"{HOST}:{tls_port}", "--tls-cert", str(certificate)]
    args += ["--tls-key", str(key), "--prov-port", str(prov_port)]
    hss = processes.start("hss", args, env=sprout_env())
    wait_until(
        lambda: hss.poll() is not None or port_is_bound("tcp", tls_port),
        STARTUP_TIMEOUT,
        "the HSS to listen over TLS",
    )
    created = provision(
        "--server", f"http://{HOST}:{prov_port}", "create-user", f"sip:alice@{REALM}",
        "--password", "secret",
    )  # fmt: skip
    assert created.returncode == 0, describe(created)
    hs_port = free_port()
    args = [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", REALM]
    args += ["--local-ip", HOST, "--http-port", str(hs_port), "--diameter-port", "0"]
    args += ["--hss-peer", f"hss.{REALM}={HOST}:{tls_port}", "--hss-tls", "Y"]
    args += ["--diameter-tls-ca", str(certificate)]
    homestead = processes.start("homestead", args, env=sprout_env())
    wait_until(
        lambda: (
            homestead.poll() is not None
            or f"peer hss.{REALM} Wait-I-CEA -> I-Open" in processes.log("homestead")
        ),
        STARTUP_TIMEOUT,
        "homestead to open its TLS connection",
    )
    assert homestead.poll() is None, processes.log("homestead")
    status, body = http(
        "GET", f"http://{HOST}:{hs_port}/impi/alice@{REALM}/av/digest?impu=sip:alice@{REALM}"
    )
    ha1 = hashlib.md5(f"alice@{REALM}:{REALM}:secret".encode()).hexdigest()
    assert (status, body["digest"]["ha1"]) == (200, ha1), body
