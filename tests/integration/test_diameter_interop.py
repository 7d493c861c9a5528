"""Our Diameter base protocol against a real peer, freeDiameterd 1.2.1 (issue #8's must-show):
CER/CEA, DWR/DWA and DPR/DPA both when we connect to it (``twistd homestead`` in HSS mode,
naming it with ``--hss-peer``) and when it connects to us (the scripted HSS,
``python -m clearwater.testing.hss``, listening); and the RFC 3539 watchdog walking OKAY →
SUSPECT → DOWN → REOPEN → OKAY while freeDiameterd is stopped (SIGSTOP) and resumed.

Both sides' logs say what happened: freeDiameterd prints its peer state changes and every
message (``-dd``); ours print ``Diameter: peer <host> <state> -> <state>`` and
``Diameter: peer <host> watchdog <state> -> <state>``.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.integration._diameter_peers import (
    ConnectPeer,
    FreeDiameterd,
    freediameterd_path,
    message_pattern,
)
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

REALM = "localdomain"
FD = "fd.localdomain"
US = "homestead.localdomain"


def _homestead(processes: Processes, fd_port: int) -> subprocess.Popen[bytes]:
    """``twistd homestead`` in HSS mode with freeDiameterd as its one HSS (Tw 6 s)."""
    args = [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", REALM]
    args += ["--local-ip", HOST, "--http-port", str(free_port()), "--diameter-port", "0"]
    args += ["--hss-peer", f"{FD}={HOST}:{fd_port}", "--hss-realm", REALM]
    args += ["--diameter-watchdog", "6"]
    return processes.start("homestead", args, env=sprout_env())


def _log_has(processes: Processes, name: str, text: str, timeout: float) -> None:
    wait_until(lambda: text in processes.log(name), timeout, f"{name} to log {text!r}")


def test_we_connect_to_freediameterd_cer_dwr_dpr(processes: Processes) -> None:
    freediameterd_path()
    with FreeDiameterd(processes, FD, realm=REALM, allow_peers=[US]) as fd:
        homestead = _homestead(processes, fd.port)
        _log_has(processes, "homestead", f"peer {FD} Wait-I-CEA -> I-Open", STARTUP_TIMEOUT)
        fd.wait_for_state(US, "STATE_OPEN")
        # An idle connection gets our DWR within Tw (6 s ± 2 s) and freeDiameterd's DWA.
        fd.wait_for_log(message_pattern("RCV from", US, 280, request=True), timeout=15)
        fd.wait_for_log(message_pattern("SENT to", US, 280, request=False), timeout=5)
        # Stopping homestead sends DPR (REBOOTING); freeDiameterd answers DPA.
        homestead.terminate()
        assert homestead.wait(timeout=30) in (0, -15), processes.log("homestead")
        fd.wait_for_log(f"Peer '{US}' sent a DPR with cause: REBOOTING", timeout=5)
        fd.wait_for_log(message_pattern("SENT to", US, 282, request=False), timeout=5)
        _log_has(processes, "homestead", f"peer {FD} Closing -> Closed", 5)


def test_freediameterd_connects_to_us_cer_dwr_dpr(processes: Processes) -> None:
    freediameterd_path()
    port = free_port()
    args = [sys.executable, "-m", "clearwater.testing.hss", "--identity", "hss." + REALM]
    args += ["--realm", REALM, "--listen", f"{HOST}:{port}", "--store", "memory:"]
    args += ["--home-domain", REALM, "--prov-port", "0"]
    hss = processes.start("hss", args, env=sprout_env())
    wait_until(lambda: hss.poll() is not None or port_is_bound("tcp", port), 30, "hss")
    assert hss.poll() is None, processes.log("hss")
    peer = ConnectPeer("hss." + REALM, port, tw_timer=2)
    fd = FreeDiameterd(processes, FD, realm=REALM, connect_peers=[peer])
    with fd:
        fd.wait_for_state("hss." + REALM, "STATE_OPEN")
        _log_has(processes, "hss", f"peer {FD} Closed -> R-Open", 10)
        # freeDiameterd's DWRs (Tw 2 s for us) are answered: it stays open and logs our DWAs.
        fd.wait_for_log(message_pattern("RCV from", "hss." + REALM, 280, request=False), 15)
        assert fd.states("hss." + REALM)[-1] == "STATE_OPEN"
    # Leaving the block stops freeDiameterd: we answer its DPR and the connection closes.
    _log_has(processes, "hss", f"peer {FD} R-Open -> Closing", 10)
    _log_has(processes, "hss", f"peer {FD} Closing -> Closed", 10)
    hss.terminate()
    assert hss.wait(timeout=30) == 0, processes.log("hss")


@pytest.mark.skipif(
    platform.python_implementation() == "PyPy",
    reason="about 40 s of waiting for RFC 3539 timers; the interpreter does not change it",
)
def test_watchdog_walks_okay_suspect_down_reopen_okay_as_freediameterd_stalls(
    processes: Processes,
) -> None:
    freediameterd_path()
    with FreeDiameterd(processes, FD, realm=REALM, allow_peers=[US]) as fd:
        homestead = _homestead(processes, fd.port)
        _log_has(processes, "homestead", f"peer {FD} Wait-I-CEA -> I-Open", STARTUP_TIMEOUT)
        fd.pause()
        # Tw 6 ± 2 s: a DWR, then SUSPECT one Tw later, DOWN (connection closed) one more.
        _log_has(processes, "homestead", f"peer {FD} watchdog OKAY -> SUSPECT", 30)
        _log_has(processes, "homestead", f"peer {FD} watchdog SUSPECT -> DOWN", 15)
        fd.resume()
        # A new connection opens REOPEN; three DWAs (one per Tw) make it OKAY again.
        _log_has(processes, "homestead", f"peer {FD} watchdog DOWN -> REOPEN", 45)
        _log_has(processes, "homestead", f"peer {FD} watchdog REOPEN -> OKAY", 30)
        homestead.terminate()
        assert homestead.wait(timeout=30) in (0, -15), processes.log("homestead")
