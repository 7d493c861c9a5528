"""pjsua2 (PJSIP) phones on ``twistd clearwater`` (issue #6): two accounts register over TCP and
over TLS through the phone port (RFC 3261 §10, digest RFC 2617), subscribe to their own reg
event and get a NOTIFY whose ``application/reginfo+xml`` body is valid against RFC 3680's and
RFC 5628's schemas (RFC 3680 §5, RFC 6665), and call each other (RFC 3261 §13-§15) answering
the phone port's 407.

The phones are tests/integration/pjsua2_phones.py, one subprocess holding both accounts (its
notes say what pjsua2 can and cannot do for the reg event). pjsua2-python ships a wheel for
CPython 3.11 only: elsewhere these tests skip. xmllint comes from libxml2-utils (scripts/test).
The TLS test is also the proof that the TLS phone port is an edge port and that the phone port
record-routes (pjsua2's default Contact is its connection's source port, where nothing listens:
the ACK and BYE must come back through the phone port).
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from clearwater.scscf.reginfo import REGINFO_CONTENT_TYPE, parse_reginfo
from clearwater.sip import Request, parse_message
from clearwater.sip.headers import EVENT, SUBSCRIPTION_STATE
from tests.integration._peers import (
    HERE,
    HOST,
    ROOT,
    STARTUP_TIMEOUT,
    TWISTD,
    CertFiles,
    Processes,
    describe,
    free_port,
    interop_certs,
    port_is_bound,
    processes,
    require_binary,
    run,
    sprout_env,
    wait_until,
)
from tests.integration.test_homestead_service import provision

__all__ = ["interop_certs", "processes"]  # fixtures used by name below

PJSUA2_PHONES = HERE / "pjsua2_phones.py"
SCHEMA = ROOT / "tests" / "data" / "reginfo" / "reginfo-gruu.xsd"
DOMAIN = "example.com"
CALLER, CALLEE = "alice", "bob"
PASSWORDS = {CALLER: "alice-secret", CALLEE: "bob-secret"}

#: pjsua2-python has wheels for CPython 3.11 only.
_PJSUA2_PLATFORM = platform.python_implementation() == "CPython" and (
    platform.python_version_tuple()[:2] == ("3", "11")
)


def _require_pjsua2() -> None:
    if not _PJSUA2_PLATFORM:
        pytest.skip("pjsua2-python ships a wheel for CPython 3.11 only")
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail(
            "pjsua2 is not installed: scripts/test installs it (the test extra's pjsua2-python)",
            pytrace=False,
        )


def _ports(names: tuple[str, ...]) -> dict[str, int]:
    """A distinct free port for each name."""
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def _start(processes: Processes, tmp_path: Path, certs: CertFiles) -> dict[str, int]:
    """twistd clearwater with its TLS phone port, and alice and bob provisioned."""
    ports = _ports(("phone", "tls", "scscf", "http", "hs", "prov"))
    args = [*TWISTD, "-n", "--pidfile=", "clearwater", "--home-domain", DOMAIN]
    args += ["--local-ip", HOST, "--subscriber-store", "sqlite:" + str(tmp_path / "aio.db")]
    args += ["--phone-port", str(ports["phone"]), "--scscf", str(ports["scscf"])]
    args += ["--tls-port", str(ports["tls"]), "--tls-cert", certs.certificate]
    args += ["--tls-key", certs.key, "--http-port", str(ports["http"])]
    args += ["--hs-port", str(ports["hs"]), "--prov-port", str(ports["prov"])]
    process = processes.start("clearwater", args, env=sprout_env())
    wait_until(
        lambda: (
            process.poll() is not None
            or all(port_is_bound("tcp", ports[p]) for p in ("phone", "tls", "prov", "hs"))
        ),
        STARTUP_TIMEOUT,
        "twistd clearwater to listen",
    )
    assert process.poll() is None, processes.log("clearwater")
    for user, password in PASSWORDS.items():
        created = provision(
            "--server", f"http://{HOST}:{ports['prov']}",
            "create-user", f"sip:{user}@{DOMAIN}", "--password", password,
        )  # fmt: skip
        assert created.returncode == 0, describe(created)
    return ports


def _phones(
    transport: str, ports: dict[str, int], certs: CertFiles, *options: str
) -> subprocess.CompletedProcess[str]:
    """pjsua2_phones.py: alice and bob on the phone port (the TLS one for ``tls``)."""
    port = ports["tls" if transport == "tls" else "phone"]
    args = [sys.executable, str(PJSUA2_PHONES), "--proxy", f"{HOST}:{port}"]
    args += ["--transport", transport, "--tls-ca", certs.ca, "--domain", DOMAIN]
    args += ["--caller", CALLER + ":" + PASSWORDS[CALLER]]
    args += ["--callee", CALLEE + ":" + PASSWORDS[CALLEE], "--timeout", "20", *options]
    return run(args, timeout=45)


def _ok(result: subprocess.CompletedProcess[str], processes: Processes) -> list[str]:
    assert result.returncode == 0, (
        describe(result) + "\n--- clearwater\n" + processes.log("clearwater")[-3000:]
    )
    return result.stdout.splitlines()


def _contacts(lines: list[str]) -> dict[str, str]:
    """``registered USER <URI>`` lines: each phone's registered Contact URI."""
    found = {}
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[0] == "registered":
            found[words[1]] = words[2].strip("<>")
    return found


@pytest.mark.parametrize(
    "transport",
    ["tcp", "tls"],
)
def test_phones_register_and_get_their_reg_event(
    processes: Processes, tmp_path: Path, interop_certs: CertFiles, transport: str
) -> None:
    """Both register (401 answered); each SUBSCRIBE to its own reg event is challenged (407),
    then accepted; the NOTIFY is a reg event, active, with a full reginfo document that
    xmllint validates and that lists the phone's registered Contact as an active contact."""
    _require_pjsua2()
    xmllint = require_binary("xmllint", "libxml2-utils")
    ports = _start(processes, tmp_path, interop_certs)
    notify_dir = tmp_path / "notify"
    notify_dir.mkdir()
    result = _phones(
        transport, ports, interop_certs, "--subscribe", "--notify-dir", str(notify_dir)
    )
    lines = _ok(result, processes)
    contacts = _contacts(lines)
    assert sorted(contacts) == [CALLER, CALLEE], result.stdout
    for user, contact in contacts.items():
        assert contact.lower().endswith(";transport=" + transport + ";ob"), contact
        assert "subscribed " + user + " 407 200" in lines, result.stdout

        message = parse_message((notify_dir / (user + "-notify-1.sip")).read_bytes())
        assert isinstance(message, Request) and message.method == "NOTIFY"
        event = message.headers.first(EVENT)
        assert event is not None and event.package == "reg"
        state = message.headers.first(SUBSCRIPTION_STATE)
        assert state is not None and state.state == "active"
        assert message.content_type is not None
        assert message.content_type.mime_type == REGINFO_CONTENT_TYPE
        body_path = notify_dir / (user + "-notify-1.xml")
        assert body_path.read_bytes() == message.body

        lint = run([xmllint, "--noout", "--nonet", "--schema", str(SCHEMA), str(body_path)])
        assert lint.returncode == 0, describe(lint)
        reginfo = parse_reginfo(message.body)
        assert reginfo.state == "full"
        [registration] = reginfo.registrations
        assert registration.aor == "sip:" + user + "@" + DOMAIN
        assert registration.state == "active"
        assert [c.uri for c in registration.contacts if c.state == "active"] == [contact]


@pytest.mark.parametrize(
    "transport",
    [
        "tcp",
        "tls",
    ],
)
def test_phones_call_each_other(
    processes: Processes, tmp_path: Path, interop_certs: CertFiles, transport: str
) -> None:
    """pjsua2 as it comes: alice calls sip:bob@example.com, answers the phone port's 407, bob
    answers 200, both sides reach CONFIRMED, alice hangs up and her BYE gets 200."""
    _require_pjsua2()
    ports = _start(processes, tmp_path, interop_certs)
    lines = _ok(_phones(transport, ports, interop_certs, "--call"), processes)
    assert "invite challenged 1" in lines
    assert "incoming " + CALLEE + " <sip:" + CALLER + "@" + DOMAIN + ">" in lines
    assert lines.index("confirmed") < lines.index("hung up: BYE 200")


def test_phones_call_each_other_when_their_contact_listens(
    processes: Processes, tmp_path: Path, interop_certs: CertFiles
) -> None:
    """The same call over TCP with each phone's Contact on its listening port (so the
    Record-Route missing above does not matter): the INVITE is challenged (407) and
    answered by pjsua2, reaches bob as from alice, both sides are CONFIRMED, BYE gets 200."""
    _require_pjsua2()
    ports = _start(processes, tmp_path, interop_certs)
    result = _phones("tcp", ports, interop_certs, "--call", "--listener-contact")
    lines = _ok(result, processes)
    assert "invite challenged 1" in lines, result.stdout
    assert "incoming " + CALLEE + " <sip:" + CALLER + "@" + DOMAIN + ">" in lines
    assert lines.index("confirmed") < lines.index("hung up: BYE 200")
