"""``twistd -n sprout`` between real peers: SIPp, sipsak and an HTTP client (spec §2.4-§2.10).

Every test starts sprout as a subprocess (``twistd`` under this interpreter, this checkout first
on PYTHONPATH) on loopback ports, with the test sproutlets of ``sprout_plugins/`` or the greeter
of ``examples/sproutlets`` loaded from ``--plugin-path``:

1. SIPp's uac calls SIPp's uas through sprout, which proxies by Request-URI (no sproutlet
   matches): 500 calls over UDP and over TCP;
2. the ``forker`` sproutlet forks each INVITE to two SIPp uas in parallel (spec §2.6): a 200
   beats a 486; of 486 and 404 the 404 wins; a CANCEL reaches both forks and the caller gets
   487; timer C (``--timer-c``) CANCELs a fork that only rang;
3. 483 Too Many Hops from the ``looper`` sproutlet beyond ``--max-sproutlet-depth`` (§2.5) and
   for a request with Max-Forwards 0 (RFC 3261 §16.3);
4. the greeter example answers sipsak's OPTIONS with its greeting, ``-N`` changing it (§2.10);
5. the management port: ``GET /ping`` and ``GET /metrics``;
6. SIGTERM while a call rings: the call completes, a new call gets 503, twistd exits 0.

Each SIPp uas serves a fixed number of calls (``-m``) and exits by itself, so its exit code and
counters are checked too. sipsak 0.9.8.1 truncates a five-digit port in the Request-URI, so the
sipsak tests use a sprout port below 10000.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from typing import Optional

import pytest

from tests.integration._peers import (
    EXAMPLES,
    HOST,
    PEER_TIMEOUT,
    SCENARIOS,
    SPROUT_PLUGINS,
    Processes,
    Sprout,
    describe,
    free_low_port,
    free_port,
    port_is_bound,
    processes,
    require_binary,
    run,
    sipp,
    sipp_counter,
    sipp_uac,
    start_sprout,
    wait_until,
)

__all__ = ["processes"]  # the fixture, used by name below

CALLS = 500
#: Calls per forking test: each one exercises both forks.
FORK_CALLS = 10
#: How long a SIPp uas may take to finish its calls once its uac has finished.
UAS_EXIT_TIMEOUT = 10.0
#: sprout's graceful stop waits at most this long (service.QUIESCE_TIMEOUT).
QUIESCE_TIMEOUT = 32.0


# ---- peers


def _mode(transport: str) -> str:
    return "u1" if transport == "udp" else "t1"


def _start_uas(
    processes: Processes,
    name: str,
    scenario: Optional[str],
    *options: str,
    calls: Optional[int] = None,
    transport: str = "udp",
    port: Optional[int] = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """A SIPp uas on ``port`` (default a free one): ``scenario`` from ``scenarios/`` (None: the
    built-in uas), exiting after ``calls`` calls if given."""
    port = free_port() if port is None else port
    args = [sipp(), *(["-sn", "uas"] if scenario is None else ["-sf", str(SCENARIOS / scenario)])]
    args += [*options, "-t", _mode(transport), "-i", HOST, "-p", str(port), "-nostdin"]
    if calls is not None:
        args += ["-m", str(calls)]
    process = processes.start(name, args)
    wait_until(
        lambda: port_is_bound(transport, port) or process.poll() is not None, 10, name + " to bind"
    )
    assert process.poll() is None, name + " exited early:\n" + processes.log(name)
    return process, port


def _uac(
    scenario: str, target: str, *options: str, calls: int, rate: int = 10, transport: str = "udp"
) -> subprocess.CompletedProcess[str]:
    """SIPp's uac with ``scenarios/scenario``: ``calls`` calls to ``target``, to completion."""
    args = [sipp(), "-sf", str(SCENARIOS / scenario), target, *options]
    args += ["-t", _mode(transport), "-i", HOST, "-p", str(free_port()), "-nostdin"]
    args += ["-m", str(calls), "-r", str(rate), "-timeout", "30", "-timeout_error"]
    return run(args, timeout=45)


def _start_uac(
    processes: Processes, name: str, scenario: str, target: str, *options: str, calls: int = 1
) -> subprocess.Popen[bytes]:
    """:func:`_uac` in the background (its screen in ``processes.log(name)``)."""
    args = [sipp(), "-sf", str(SCENARIOS / scenario), target, *options]
    args += ["-t", "u1", "-i", HOST, "-p", str(free_port()), "-nostdin"]
    args += ["-m", str(calls), "-timeout", "30", "-timeout_error"]
    return processes.start(name, args)


def _wait(process: subprocess.Popen[bytes], timeout: float, what: str) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(what + " did not exit within " + str(timeout) + " s")


def _assert_calls(result: subprocess.CompletedProcess[str], calls: int, sprout: str) -> None:
    assert result.returncode == 0, describe(result) + "\n--- sprout\n" + sprout
    assert sipp_counter(result.stdout, "Successful call") == calls
    assert sipp_counter(result.stdout, "Failed call") == 0


def _assert_uas_done(
    processes: Processes, name: str, process: subprocess.Popen[bytes], calls: int
) -> None:
    """The uas (started with ``-m calls``) exits 0 having served every call."""
    code = _wait(process, UAS_EXIT_TIMEOUT, name)
    log = processes.log(name)
    assert code == 0, name + " exited " + str(code) + ":\n" + log[-3000:]
    assert sipp_counter(log, "Successful call") == calls
    assert sipp_counter(log, "Failed call") == 0


def _assert_healthy(processes: Processes, sprout: Sprout) -> None:
    assert sprout.process.poll() is None, "sprout exited:\n" + processes.log(sprout.name)
    log = processes.log(sprout.name)
    assert "Traceback" not in log, log[-5000:]
    assert "Unhandled" not in log, log[-5000:]


def _sipsak(*args: str) -> subprocess.CompletedProcess[str]:
    return run([require_binary("sipsak", "sipsak"), "-vv", *args], timeout=PEER_TIMEOUT)


def _http_get(sprout: Sprout, path: str) -> tuple[int, str]:
    url = "http://" + HOST + ":" + str(sprout.http_port) + path
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read().decode()


def _forking_sprout(processes: Processes, *targets: int) -> Sprout:
    """sprout (no management port) with the forker sending each INVITE addressed to it to
    ``sip:service@127.0.0.1:PORT`` for each target port."""
    uris = " ".join("sip:service@" + HOST + ":" + str(port) for port in targets)
    options = ["--plugin-path", str(SPROUT_PLUGINS), "-N", "forker,targets," + uris]
    return start_sprout(processes, *options, http_port=0)


# ---- 1. proxying by Request-URI


def test_sipp_calls_through_sprout_over_udp(processes: Processes) -> None:
    """500 calls at 100/s, SIPp's Request-URI naming the uas, sent to sprout (-rsa): 0 failed."""
    uas, uas_port = _start_uas(processes, "sipp_uas", None)
    sprout = start_sprout(processes, http_port=0)
    result = sipp_uac(HOST + ":" + str(uas_port), "-rsa", sprout.address, calls=CALLS)
    _assert_calls(result, CALLS, processes.log("sprout"))
    assert uas.poll() is None
    _assert_healthy(processes, sprout)


def test_sipp_calls_through_sprout_over_tcp(processes: Processes) -> None:
    """500 calls at 100/s over TCP both sides (the Request-URI has ;transport=tcp, so sprout
    connects to the uas over TCP, RFC 3263 §4.1): 0 failed."""
    uas, uas_port = _start_uas(processes, "sipp_uas", None, transport="tcp")
    sprout = start_sprout(processes, http_port=0)
    target = HOST + ":" + str(uas_port)
    result = _uac(
        "uac_call.xml", target, "-rsa", sprout.address, calls=CALLS, rate=100, transport="tcp"
    )
    _assert_calls(result, CALLS, processes.log("sprout"))
    assert uas.poll() is None
    _assert_healthy(processes, sprout)


# ---- 2. parallel forking by the forker sproutlet


def test_fork_200_beats_486(processes: Processes) -> None:
    """One fork is rejected 486 at once, the other rings and answers 200 after 300 ms: the
    caller gets the 200, and the ACK and BYE reach the answering uas."""
    busy, busy_port = _start_uas(processes, "uas_486", "uas_reject_486.xml", calls=FORK_CALLS)
    answer, answer_port = _start_uas(
        processes, "uas_200", "uas_ring_answer.xml", "-d", "300", calls=FORK_CALLS
    )
    sprout = _forking_sprout(processes, busy_port, answer_port)
    result = _uac("uac_call.xml", sprout.address, "-s", "forker", calls=FORK_CALLS)
    _assert_calls(result, FORK_CALLS, processes.log("sprout"))
    _assert_uas_done(processes, "uas_486", busy, FORK_CALLS)
    _assert_uas_done(processes, "uas_200", answer, FORK_CALLS)
    _assert_healthy(processes, sprout)


def test_fork_both_fail_lowest_status_wins(processes: Processes) -> None:
    """Both forks fail, 486 and 404: the caller gets the 404 (Clearwater's best response: the
    lowest status) and its ACK ends the server transaction."""
    busy, busy_port = _start_uas(processes, "uas_486", "uas_reject_486.xml", calls=FORK_CALLS)
    missing, missing_port = _start_uas(processes, "uas_404", "uas_reject_404.xml", calls=FORK_CALLS)
    sprout = _forking_sprout(processes, busy_port, missing_port)
    result = _uac("uac_404.xml", sprout.address, "-s", "forker", calls=FORK_CALLS)
    _assert_calls(result, FORK_CALLS, processes.log("sprout"))
    _assert_uas_done(processes, "uas_486", busy, FORK_CALLS)
    _assert_uas_done(processes, "uas_404", missing, FORK_CALLS)
    _assert_healthy(processes, sprout)


def test_cancel_reaches_both_forks(processes: Processes) -> None:
    """Both forks ring; the caller CANCELs after the two 180s: each uas gets a CANCEL (and
    answers it 200 and the INVITE 487, which sprout ACKs), the caller gets 200 and 487."""
    first, first_port = _start_uas(processes, "uas_1", "uas_ring_cancel.xml", calls=FORK_CALLS)
    second, second_port = _start_uas(processes, "uas_2", "uas_ring_cancel.xml", calls=FORK_CALLS)
    sprout = _forking_sprout(processes, first_port, second_port)
    result = _uac("uac_cancel.xml", sprout.address, "-s", "forker", calls=FORK_CALLS)
    _assert_calls(result, FORK_CALLS, processes.log("sprout"))
    _assert_uas_done(processes, "uas_1", first, FORK_CALLS)
    _assert_uas_done(processes, "uas_2", second, FORK_CALLS)
    _assert_healthy(processes, sprout)


def test_timer_c_cancels_a_fork_that_only_rings(processes: Processes) -> None:
    """``--timer-c 2``; the uas rings and never answers: 2 s after its 180 sprout CANCELs it
    (RFC 3261 §16.8), the uas answers 487 and the caller gets that 487."""
    uas, uas_port = _start_uas(processes, "uas_ring", "uas_ring_cancel.xml", calls=3)
    sprout = start_sprout(processes, "--timer-c", "2", http_port=0)
    started = time.monotonic()
    result = _uac("uac_487.xml", HOST + ":" + str(uas_port), "-rsa", sprout.address, calls=3)
    elapsed = time.monotonic() - started
    _assert_calls(result, 3, processes.log("sprout"))
    assert 2.0 <= elapsed < 10.0, elapsed
    _assert_uas_done(processes, "uas_ring", uas, 3)
    _assert_healthy(processes, sprout)


# ---- 3. 483 Too Many Hops


def test_looping_sproutlet_gets_483_beyond_max_depth(processes: Processes) -> None:
    """The looper Routes each request back to itself: beyond ``--max-sproutlet-depth 5`` sprout
    answers 483 (spec §2.5), long before Max-Forwards (70) runs out."""
    sprout = start_sprout(
        processes,
        "--plugin-path",
        str(SPROUT_PLUGINS),
        "--max-sproutlet-depth",
        "5",
        sip_port=free_low_port(),
        http_port=0,
    )
    result = _sipsak("-s", sprout.uri("looper"))
    assert result.returncode == 1, describe(result)  # sipsak: a final response but no 2xx
    assert "SIP/2.0 483 Too Many Hops" in result.stdout, describe(result)
    _assert_healthy(processes, sprout)


def test_max_forwards_zero_gets_483(processes: Processes) -> None:
    """An OPTIONS with Max-Forwards 0 for a next hop elsewhere, sent to sprout as outbound
    proxy: 483 (RFC 3261 §16.3 step 3), and nothing is forwarded."""
    sprout = start_sprout(processes, sip_port=free_low_port(), http_port=0)
    elsewhere = free_low_port()
    result = _sipsak(
        "-s",
        "sip:nobody@" + HOST + ":" + str(elsewhere),
        "-p",
        HOST,
        "-r",
        str(sprout.sip_port),
        "-m",
        "0",
    )
    assert result.returncode == 1, describe(result)
    assert "SIP/2.0 483 Too Many Hops" in result.stdout, describe(result)
    _assert_healthy(processes, sprout)


# ---- 4. the greeter example plugin


@pytest.mark.parametrize(
    ("options", "greeting"),
    [((), "Hello from clearwater"), (("-N", "greeter,greeting,Hi"), "Hi")],
)
def test_greeter_answers_sipsak(
    processes: Processes, options: tuple[str, ...], greeting: str
) -> None:
    """``--plugin-path examples/sproutlets``: the greeter is discovered, and ``sipsak -vv -s
    sip:greeter@127.0.0.1:P`` gets 200 OK with the greeting as its body."""
    sprout = start_sprout(
        processes,
        "--plugin-path",
        str(EXAMPLES / "sproutlets"),
        *options,
        sip_port=free_low_port(),
        http_port=0,
    )
    result = _sipsak("-s", sprout.uri("greeter"))
    assert result.returncode == 0, describe(result)
    assert "SIP/2.0 200 OK" in result.stdout, describe(result)
    assert "Content-Type: text/plain" in result.stdout
    assert "\n" + greeting + "\n" in result.stdout, describe(result)
    _assert_healthy(processes, sprout)


# ---- 5. the management port


def test_ping_and_metrics(processes: Processes) -> None:
    """``GET /ping`` is 200 OK; ``GET /metrics`` counts the OPTIONS sipsak sent."""
    sprout = start_sprout(processes, sip_port=free_low_port())
    status, body = _http_get(sprout, "/ping")
    assert (status, body) == (200, "OK")
    result = _sipsak("-s", sprout.uri("nobody"))  # addressed to sprout itself: 200 with Allow
    assert result.returncode == 0, describe(result)
    assert "SIP/2.0 200 OK" in result.stdout, describe(result)
    status, body = _http_get(sprout, "/metrics")
    assert status == 200
    assert 'clearwater_sip_requests_total{function="sprout",method="OPTIONS"} 1.0' in body, body
    _assert_healthy(processes, sprout)


# ---- 6. graceful stop


def _requests_counted(sprout: Sprout, method: str) -> bool:
    """Whether sprout's /metrics counts at least one ``method`` request received."""
    pattern = r'^clearwater_sip_requests_total\{function="sprout",method="' + method + r'"\} (\S+)$'
    found = re.search(pattern, _http_get(sprout, "/metrics")[1], re.MULTILINE)
    return found is not None and float(found.group(1)) >= 1


def test_sigterm_lets_the_ringing_call_complete(processes: Processes) -> None:
    """SIGTERM while a call rings (its uas answers 200 after 3 s): sprout quiesces, a new call
    gets 503, the ringing call is answered 200, then twistd shuts down before the quiesce
    timeout.

    The uac sends its ACK but no BYE: sprout stops as soon as the INVITE transaction has ended,
    so in-dialog requests after that are not its business."""
    uas, uas_port = _start_uas(processes, "uas_late", "uas_answer_late.xml", "-d", "3000", calls=1)
    sprout = start_sprout(processes)
    target = HOST + ":" + str(uas_port)
    ringing = _start_uac(
        processes, "uac_ringing", "uac_answered.xml", target, "-rsa", sprout.address
    )
    wait_until(lambda: _requests_counted(sprout, "INVITE"), 10, "the INVITE to reach sprout")
    sprout.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    wait_until(
        lambda: "sprout quiescing: 1 transactions in progress" in processes.log("sprout"),
        10,
        "sprout to quiesce",
    )
    refused = _uac("uac_503.xml", target, "-rsa", sprout.address, calls=1)
    _assert_calls(refused, 1, processes.log("sprout"))

    assert _wait(ringing, PEER_TIMEOUT, "the ringing call's uac") == 0, processes.log("uac_ringing")
    assert sipp_counter(processes.log("uac_ringing"), "Successful call") == 1
    _assert_uas_done(processes, "uas_late", uas, 1)
    # twistd ends by re-raising the signal that stopped it once the shutdown is done
    # (twisted.application.app._exitWithSignal), so a clean stop is death by SIGTERM, not 0.
    code = _wait(sprout.process, QUIESCE_TIMEOUT, "twistd")
    assert time.monotonic() - stopped < QUIESCE_TIMEOUT
    log = processes.log("sprout")
    assert code == -signal.SIGTERM, log
    assert "Server Shut Down." in log, log
    assert "Traceback" not in log, log
    assert "transactions unfinished" not in log, log


# ---- robustness


def test_response_with_only_sprouts_via_does_not_hang_the_caller(processes: Processes) -> None:
    """A broken uas answers with only sprout's Via: that response must not be forwarded, but the
    caller must still get a final response (no hung transaction) and nothing may crash."""
    uas, uas_port = _start_uas(
        processes, "uas_one_via", "uas_options_one_via.xml", calls=1, port=free_low_port()
    )
    sprout = start_sprout(processes, sip_port=free_low_port(), http_port=0)
    result = _sipsak(
        "-s",
        "sip:service@" + HOST + ":" + str(uas_port),
        "-p",
        HOST,
        "-r",
        str(sprout.sip_port),
        "--timer-t1=50",  # sipsak gives up after about 3 s instead of 23 s
    )
    _assert_uas_done(processes, "uas_one_via", uas, 1)
    assert result.returncode == 1, describe(result)  # a final response, not a 2xx
    assert "final received" in result.stdout, describe(result)
    _assert_healthy(processes, sprout)
