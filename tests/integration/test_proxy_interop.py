"""The proxy core (issue #4) between real peers: SIPp's uac, examples/proxy.py, SIPp's uas.

SIPp's uac addresses its calls to the uas (Request-URI ``sip:service@127.0.0.1:UAS``) but sends
them to the proxy (``-rsa``); the proxy forwards by Request-URI over UDP, and over TCP through
``--next-hop`` (a Request-URI without ``transport=`` means UDP, RFC 3263 §4.1). SIPp's uas
answers through the proxy's Via; ACK and BYE come back through the proxy too.
"""

from __future__ import annotations

import subprocess

from tests.integration._peers import (
    HOST,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    sipp,
    sipp_counter,
    sipp_uac,
    start_proxy,
    wait_until,
)

__all__ = ["processes"]  # the fixture, used by name below

CALLS = 500


def _start_sipp_uas(processes: Processes, transport: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    mode = "u1" if transport == "udp" else "t1"
    args = [sipp(), "-sn", "uas", "-t", mode, "-i", HOST, "-p", str(port), "-nostdin"]
    process = processes.start("sipp_uas", args)
    wait_until(
        lambda: port_is_bound(transport, port) or process.poll() is not None, 10, "SIPp to bind"
    )
    assert process.poll() is None, "SIPp exited early:\n" + processes.log("sipp_uas")
    return process, port


def _calls_through_proxy(processes: Processes, transport: str, *proxy_options: str) -> None:
    uas, uas_port = _start_sipp_uas(processes, transport)
    options = [option.replace("UAS_PORT", str(uas_port)) for option in proxy_options]
    proxy_port = start_proxy(processes, [transport], *options)[transport]
    result = sipp_uac(
        HOST + ":" + str(uas_port),
        "-rsa",
        HOST + ":" + str(proxy_port),
        transport=transport,
        calls=CALLS,
    )
    assert result.returncode == 0, describe(result) + "\n--- proxy\n" + processes.log("proxy")
    assert sipp_counter(result.stdout, "Successful call") == CALLS
    assert sipp_counter(result.stdout, "Failed call") == 0
    assert uas.poll() is None
    assert "Traceback" not in processes.log("proxy")


def test_sipp_calls_through_the_proxy_over_udp(processes: Processes) -> None:
    """500 calls at 100/s, next hop by Request-URI: 0 failed."""
    _calls_through_proxy(processes, "udp")


def test_sipp_calls_through_the_proxy_over_tcp_record_routed(processes: Processes) -> None:
    """500 calls at 100/s over TCP both sides, the proxy record-routing: 0 failed."""
    _calls_through_proxy(
        processes,
        "tcp",
        "--record-route",
        "--next-hop",
        "sip:" + HOST + ":UAS_PORT;transport=tcp",
    )
