"""Smoke tests: every example runs, answers --help, and does its job on real input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "rfc4475"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, timeout=60
    )


def test_sip_inspect_help() -> None:
    assert "MESSAGE_FILE" in _run(str(ROOT / "examples" / "sip_inspect.py"), "--help").stdout


def test_sip_inspect_on_torture_messages() -> None:
    out = _run(
        str(ROOT / "examples" / "sip_inspect.py"),
        str(VECTORS / "wsinv.dat"),
        str(VECTORS / "badvers.dat"),
    ).stdout
    assert "request INVITE sip:vivekg@chair-dnrc.example.com;unknownparam" in out
    assert "cseq 9 INVITE" in out
    assert "rejected: 505 Version Not Supported" in out


def test_echo_uas_help() -> None:
    out = _run(str(ROOT / "examples" / "echo_uas.py"), "--help").stdout
    assert "--listen TRANSPORT:HOST:PORT" in out and "--tls-cert" in out


def test_uac_call_help() -> None:
    out = _run(str(ROOT / "examples" / "uac_call.py"), "--help").stdout
    assert "--transport" in out and "--password" in out


def test_echo_uas_refuses_tls_without_a_certificate() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "echo_uas.py"), "--listen", "tls:127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "needs --tls-cert and --tls-key" in result.stderr


def test_uac_call_rejects_a_non_sip_uri() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "uac_call.py"), "tel:+15551234"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a sip: or sips: URI" in result.stderr


def test_the_complete_example_in_docs_sip_apps_runs() -> None:
    text = (ROOT / "docs" / "sip-apps.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    out = _run("-c", code).stdout
    assert "OPTIONS: 200" in out
    assert "progress: 180" in out
    assert "BYE: 200" in out


def test_proxy_help() -> None:
    out = _run(str(ROOT / "examples" / "proxy.py"), "--help").stdout
    assert "--listen TRANSPORT:HOST:PORT" in out and "--record-route" in out and "--next-hop" in out


def test_proxy_names_the_bad_option() -> None:
    for args, message in (
        (["--listen", "sctp:127.0.0.1:0"], "--listen sctp:127.0.0.1:0"),
        (["--next-hop", "tel:+1555"], "--next-hop tel:+1555"),
    ):
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "proxy.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
