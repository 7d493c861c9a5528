"""``python -m clearwater.testing.hss`` and ``-m clearwater.testing.cdf`` as processes: they
listen, answer Cx (provisioned over homestead-prov's API with ``clearwater-provision``) and Rf
over real TCP, record ACRs to a file, and exit 0 on SIGTERM after a DPR to their peer
(RFC 6733 §5.4)."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from clearwater.diameter.apps import cx
from clearwater.diameter.apps.rf import AccountingRecordType, acr, parse_aca
from clearwater.diameter.dictionary import APP_ACCOUNTING, APP_CX, BASE, VENDOR_3GPP
from clearwater.diameter.message import FLAG_REQUEST, Avp, Framer, Message, make_answer
from clearwater.diameter.message import parse_message as parse
from tests.integration._peers import (
    HOST,
    STARTUP_TIMEOUT,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    run,
    sprout_env,
    wait_until,
)

__all__ = ["processes"]  # the fixture

ME = "tester.example.com"
REALM = "example.com"
CER, DWR, DPR = 257, 280, 282
#: Seconds a peer may take to exit after SIGTERM (its DPR, our DPA, its close).
STOP_TIMEOUT = 20.0
PROVISION = (sys.executable, "-m", "clearwater.tools.provision")


class DiameterClient:
    """A blocking Diameter peer over one TCP connection, for a test: it sends requests and reads
    their answers, answering the DWRs and the DPR the other side sends meanwhile."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.framer = Framer()
        self.frames: list[bytes] = []
        self.hop_by_hop = 0x100
        self.dpr: Optional[Message] = None

    def close(self) -> None:
        self.sock.close()

    def _identity(self) -> list[Avp]:
        return [BASE.avp("Origin-Host", ME), BASE.avp("Origin-Realm", REALM)]

    def _read(self) -> Optional[Message]:
        """The next message, or None once the other side has closed."""
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.frames.extend(self.framer.feed(data))
        return parse(self.frames.pop(0))

    def _answer_base(self, message: Message) -> None:
        avps = [BASE.avp("Result-Code", 2001), *self._identity()]
        self.sock.sendall(bytes(make_answer(message, avps)))

    def exchange(self, request: Message) -> Message:
        """Send ``request`` (its identifiers set here) and return its answer."""
        self.hop_by_hop += 1
        request = Message(
            request.command_code,
            request.application_id,
            request.avps,
            request.flags | FLAG_REQUEST,
            self.hop_by_hop,
            self.hop_by_hop,
        )
        self.sock.sendall(bytes(request))
        while True:
            message = self._read()
            assert message is not None, "connection closed before the answer"
            if message.is_request and message.command_code in (DWR, DPR):
                self._answer_base(message)
                continue
            assert message.hop_by_hop == self.hop_by_hop, message
            return message

    def capabilities(self, application: Avp) -> Message:
        """CER/CEA (RFC 6733 §5.3) advertising ``application``."""
        cer = Message(
            CER,
            0,
            (
                *self._identity(),
                BASE.avp("Host-IP-Address", HOST),
                BASE.avp("Vendor-Id", 0),
                BASE.avp("Product-Name", "test_scripted_peers"),
                application,
            ),
            FLAG_REQUEST,
        )
        return self.exchange(cer)

    def wait_for_dpr(self) -> Message:
        """Answer what comes until a DPR, answer it, then read until the other side closes."""
        while True:
            message = self._read()
            assert message is not None, "closed without a DPR"
            if message.is_request and message.command_code in (DWR, DPR):
                self._answer_base(message)
                if message.command_code == DPR:
                    break
        assert self._read() is None
        return message


def start(
    processes: Processes, name: str, args: list[str], port: int, *more: int
) -> subprocess.Popen[bytes]:
    process = processes.start(name, [sys.executable, "-m", *args], env=sprout_env())
    wait_until(
        lambda: process.poll() is not None or all(port_is_bound("tcp", p) for p in (port, *more)),
        STARTUP_TIMEOUT,
        name + " to listen",
    )
    assert process.poll() is None, processes.log(name)
    return process


def stop(
    processes: Processes,
    name: str,
    process: subprocess.Popen[bytes],
    client: Optional[DiameterClient],
) -> None:
    process.send_signal(signal.SIGTERM)
    if client is not None:
        dpr = client.wait_for_dpr()
        assert BASE.get(dpr, "Disconnect-Cause") == 0  # REBOOTING
        client.close()
    try:
        code = process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(name + " did not exit on SIGTERM\n" + processes.log(name)) from None
    assert code == 0, processes.log(name)


def cx_head(session: str) -> dict[str, Any]:
    return {
        "session_id": ME + ";1;" + session,
        "origin_host": ME,
        "origin_realm": REALM,
        "destination_realm": REALM,
    }


def test_scripted_hss_answers_cx_for_provisioned_users(
    processes: Processes, tmp_path: Path
) -> None:
    port, prov_port = free_port(), free_port()
    args = ["clearwater.testing.hss", "--identity", "hss.example.com", "--realm", REALM]
    args += ["--listen", f"{HOST}:{port}", "--store", "sqlite:" + str(tmp_path / "hss.db")]
    args += ["--prov-port", str(prov_port), "--verbose"]
    hss = start(processes, "hss", args, port, prov_port)
    server = f"http://{HOST}:{prov_port}"
    user = ["create-user", "sip:alice@example.com", "--password", "secret"]
    created = run([*PROVISION, "--server", server, *user], timeout=120)
    assert created.returncode == 0, describe(created)

    client = DiameterClient(port)
    cea = client.capabilities(cx.CX_VENDOR_APP)
    assert BASE.get(cea, "Result-Code") == 2001
    assert BASE.get(cea, "Origin-Host") == "hss.example.com"

    uar = cx.uar(
        impi="alice@example.com",
        impu="sip:alice@example.com",
        visited_network=REALM,
        **cx_head("1"),
    )
    uaa = cx.parse_uaa(client.exchange(uar))
    assert uaa.outcome == cx.CxOutcome(2001, experimental=True)
    assert uaa.server_name == "sip:scscf.sprout.example.com;transport=tcp"

    mar = cx.mar(
        impi="alice@example.com",
        impu="sip:alice@example.com",
        scheme=cx.SCHEME_DIGEST,
        server_name="sip:scscf.sprout.example.com;transport=tcp",
        **cx_head("2"),
    )
    maa = cx.parse_maa(client.exchange(mar))
    expected = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
    assert maa.digest == cx.DigestVector(expected, REALM, "auth")

    unknown = cx.uar(
        impi="nobody@example.com",
        impu="sip:nobody@example.com",
        visited_network=REALM,
        **cx_head("3"),
    )
    assert cx.parse_uaa(client.exchange(unknown)).outcome == cx.CxOutcome(5001, True)

    stop(processes, "hss", hss, client)
    log = processes.log("hss")
    assert "listening for Cx on 127.0.0.1:" + str(port) in log
    assert "UAR from tester.example.com answered 2001" in log


def test_scripted_cdf_records_acrs(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    record = tmp_path / "acrs.jsonl"
    args = ["clearwater.testing.cdf", "--identity", "cdf1.example.com", "--realm", REALM]
    args += ["--listen", f"{HOST}:{port}", "--record", str(record)]
    cdf = start(processes, "cdf", args, port)

    client = DiameterClient(port)
    cea = client.capabilities(BASE.avp("Acct-Application-Id", APP_ACCOUNTING))
    assert BASE.get(cea, "Result-Code") == 2001
    request = acr(
        session_id=ME + ";1;9",
        origin_host=ME,
        origin_realm=REALM,
        destination_realm=REALM,
        destination_host="cdf1.example.com",
        record_type=AccountingRecordType.START,
        record_number=0,
        event={"Service-Information": {"IMS-Information": {"Role-Of-Node": 0}}},
    )
    aca = parse_aca(client.exchange(request))
    assert (aca.result_code, aca.record_type, aca.record_number) == (2001, 2, 0)
    [line] = record.read_text().splitlines()
    recorded = json.loads(line)
    assert (recorded["session_id"], recorded["record_type"], recorded["record_number"]) == (
        ME + ";1;9",
        "START",
        0,
    )
    assert recorded["origin_host"] == ME and recorded["result_code"] == 2001
    assert recorded["event"]["Service-Information"] == {"IMS-Information": {"Role-Of-Node": 0}}
    assert isinstance(recorded["received"], float)

    stop(processes, "cdf", cdf, client)


def test_peers_without_connections_exit_0_on_sigterm(processes: Processes) -> None:
    hss_port, cdf_port = free_port(), free_port()
    args = ["clearwater.testing.hss", "--identity", "hss.example.com", "--realm", REALM]
    args += ["--listen", f"{HOST}:{hss_port}", "--prov-port", "0"]
    hss = start(processes, "hss", args, hss_port)
    args = ["clearwater.testing.cdf", "--identity", "cdf1.example.com", "--realm", REALM]
    args += ["--listen", f"{HOST}:{cdf_port}", "--result-code", "3002"]
    cdf = start(processes, "cdf", args, cdf_port)
    stop(processes, "hss", hss, None)
    stop(processes, "cdf", cdf, None)


def test_cx_application_is_advertised_with_its_vendor(processes: Processes) -> None:
    """The HSS's CEA names Cx inside Vendor-Specific-Application-Id (TS 29.229 §6.1)."""
    port = free_port()
    args = ["clearwater.testing.hss", "--identity", "hss.example.com", "--realm", REALM]
    args += ["--listen", f"{HOST}:{port}", "--prov-port", "0"]
    hss = start(processes, "hss", args, port)
    client = DiameterClient(port)
    cea = client.capabilities(cx.CX_VENDOR_APP)
    assert BASE.get_all(cea, "Vendor-Specific-Application-Id", "Auth-Application-Id") == [APP_CX]
    assert BASE.get_all(cea, "Vendor-Specific-Application-Id", "Vendor-Id") == [VENDOR_3GPP]
    stop(processes, "hss", hss, client)


def test_port_in_use_exits_1(processes: Processes) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind((HOST, port))
        taken.listen(1)
        for module, identity in (("hss", "hss.example.com"), ("cdf", "cdf1.example.com")):
            args = [sys.executable, "-m", "clearwater.testing." + module]
            args += ["--identity", identity, "--realm", REALM, "--listen", f"{HOST}:{port}"]
            if module == "hss":
                args += ["--prov-port", "0"]
            result = run(args, timeout=60)
            assert result.returncode == 1, describe(result)
            assert "Cannot start" in result.stdout and "Address already in use" in result.stdout


def test_unusable_store_exits_1(tmp_path: Path) -> None:
    not_a_database = tmp_path / "hss.db"
    not_a_database.write_bytes(b"this is not a SQLite file" * 100)
    args = [sys.executable, "-m", "clearwater.testing.hss", "--identity", "hss.example.com"]
    args += ["--realm", REALM, "--listen", f"{HOST}:{free_port()}", "--prov-port", "0"]
    result = run([*args, "--store", "sqlite:" + str(not_a_database)], timeout=60)
    assert result.returncode == 1, describe(result)
    assert "Cannot use the store sqlite:" + str(not_a_database) in result.stdout
