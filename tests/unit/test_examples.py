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
