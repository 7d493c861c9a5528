"""Interoperability of the clearwater SIP stack with independently written SIP programs.

The examples built on :class:`clearwater.sip.ua.UserAgent` (``examples/echo_uas.py`` as the UAS,
``examples/uac_call.py`` as the UAC) meet SIPp, sipsak, pjsua2 (PJSIP) and a WebSocket client from
the ``websockets`` library, over UDP, TCP, TLS and WS on 127.0.0.1 only:

- RFC 3261 §13-§15: INVITE / 1xx / 200 / ACK / BYE with each peer as UAC or UAS.
- RFC 3261 §22 and RFC 2617: digest authentication answering 401 (and 407) challenges.
- RFC 3261 §26.2, RFC 5922 §7.1: TLS with the server's certificate verified against a test CA.
- RFC 7118: SIP over WebSocket, the ``sip`` subprotocol is required.
- RFC 4475 and RFC 3261 §18: torture messages, stateless 400 answers to malformed requests with a
  usable Via, silence otherwise, and disconnection of a stream peer over the header size limit.

SIPp, sipsak and pjsua2 are installed by scripts/test (Debian packages sip-tester and sipsak,
PyPI pjsua2-python on CPython 3.11 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import platform
import re
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.typing import Subprotocol
except ImportError:  # the tests that need it fail with a hint
    HAVE_WEBSOCKETS = False
else:
    HAVE_WEBSOCKETS = True

from clearwater.errors import ParseError
from clearwater.sip import parse_message
from tests.integration._peers import (
    HOST,
    PEER_TIMEOUT,
    PJSUA2_CALL,
    SCENARIOS,
    VECTORS,
    CertFiles,
    EchoUas,
    Processes,
    describe,
    free_port,
    interop_certs,
    port_is_bound,
    processes,
    require_binary,
    run,
    sipp,
    sipp_counter,
    sipp_uac,
    start_echo_uas,
    uac_call,
    wait_until,
)

__all__ = ["interop_certs", "processes"]  # fixtures used by name below

TRANSPORTS = ("udp", "tcp", "tls", "ws")
#: pjsua2-python has wheels for CPython 3.11 only.
_VERSION = platform.python_version_tuple()[:2]
PJSUA2_PLATFORM = platform.python_implementation() == "CPython" and _VERSION == ("3", "11")


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory, interop_certs: CertFiles) -> Iterator[EchoUas]:
    """One echo_uas on all four transports, shared by the tests that only place calls."""
    started = Processes(tmp_path_factory.mktemp("echo_uas"))
    try:
        yield start_echo_uas(started, TRANSPORTS, interop_certs)
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, interop_certs: CertFiles) -> Iterator[EchoUas]:
    """A separate echo_uas for the bad-input tests, so a crash there is not blamed elsewhere."""
    started = Processes(tmp_path_factory.mktemp("target_uas"))
    try:
        yield start_echo_uas(started, TRANSPORTS, interop_certs, name="target_uas")
    finally:
        started.stop_all()


# ---- 1. SIPp's built-in uac scenario against echo_uas


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_uac_500_calls_against_echo_uas(echo: EchoUas, transport: str) -> None:
    """500 calls at 100 calls/s: SIPp exits 0 (every call succeeded) and counts no failure."""
    result = sipp_uac(HOST + ":" + str(echo.port(transport)), transport=transport)
    assert result.returncode == 0, describe(result)
    assert sipp_counter(result.stdout, "Successful call") == 500
    assert sipp_counter(result.stdout, "Failed call") == 0
    assert echo.alive


# ---- 2. uac_call.py against echo_uas


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_uac_call_against_echo_uas(echo: EchoUas, interop_certs: CertFiles, transport: str) -> None:
    """A whole call over each transport; over TLS the server is verified with the test CA."""
    result = uac_call(echo.uri(transport), "--transport", transport, "--tls-ca", interop_certs.ca)
    assert result.returncode == 0, describe(result)
    assert "hung up: BYE 200" in result.stdout


def test_uac_call_refuses_tls_server_it_cannot_verify(
    echo: EchoUas, interop_certs: CertFiles
) -> None:
    """With a CA that did not sign the server's certificate the call fails, and fails fast."""
    result = uac_call(
        echo.uri("tls"),
        "--transport",
        "tls",
        "--tls-ca",
        interop_certs.other_ca,
        timeout=8,
    )
    assert result.returncode == 1, describe(result)
    assert "TransportError" in result.stderr, describe(result)


# ---- 3. uac_call.py against SIPp's built-in uas


def _start_sipp_uas(
    processes: Processes, name: str, scenario: list[str], extra: Optional[list[str]] = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start SIPp as a UDP UAS for one call and wait until its port is bound."""
    port = free_port()
    args = [sipp(), *scenario, "-i", HOST, "-p", str(port), "-m", "1", "-nostdin"]
    args += ["-timeout", str(int(PEER_TIMEOUT)), *(extra or [])]
    process = processes.start(name, args)
    wait_until(lambda: port_is_bound("udp", port) or process.poll() is not None, 10, "SIPp to bind")
    assert process.poll() is None, "SIPp exited early:\n" + processes.log(name)
    return process, port


def _wait_for_exit(process: subprocess.Popen[bytes], processes: Processes, name: str) -> int:
    try:
        return process.wait(timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("SIPp did not finish its call:\n" + processes.log(name))


def test_uac_call_against_sipp_uas(processes: Processes) -> None:
    """SIPp's built-in uas answers 180 then 200; the call is ACKed and hung up."""
    _, port = _start_sipp_uas(processes, "sipp_uas", ["-sn", "uas"])
    result = uac_call("sip:service@" + HOST + ":" + str(port))
    assert result.returncode == 0, describe(result) + "\n--- sipp\n" + processes.log("sipp_uas")
    assert "hung up: BYE 200" in result.stdout
    # SIPp's built-in uas then lingers 4 s (timewait) to absorb retransmissions: not waited for.


# ---- 4. digest authentication against SIPp UAS scenarios


@pytest.mark.parametrize(("password", "expected"), [("secret", 0), ("wrong", 1)])
def test_uac_call_answers_401_digest_challenge(
    processes: Processes, password: str, expected: int
) -> None:
    """SIPp challenges with 401 and checks the digest itself (verifyauth): 200 or 403."""
    scenario = ["-sf", str(SCENARIOS / "uas_digest.xml")]
    sipp, port = _start_sipp_uas(processes, "sipp_digest", scenario)
    result = uac_call(
        "sip:bob@" + HOST + ":" + str(port), "--user", "alice", "--password", password
    )
    log = processes.log("sipp_digest")
    assert result.returncode == expected, describe(result) + "\n--- sipp\n" + log
    if expected == 0:
        assert "hung up: BYE 200" in result.stdout
        assert _wait_for_exit(sipp, processes, "sipp_digest") == 0, log
        assert sipp_counter(processes.log("sipp_digest"), "Successful call") == 1
    else:
        assert "403" in result.stderr
        # The scenario's 403 branch stops SIPp with exit code 97.
        assert _wait_for_exit(sipp, processes, "sipp_digest") == 97, log


def _digest_params(header_value: str) -> dict[str, str]:
    return {
        name.lower(): quoted if quoted else token
        for name, quoted, token in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header_value)
    }


def test_uac_call_answers_407_proxy_digest_challenge(processes: Processes, tmp_path: Path) -> None:
    """A 407 is answered with Proxy-Authorization (RFC 3261 §22.3) whose response is right."""
    trace = tmp_path / "sipp_proxy_messages.log"
    scenario = ["-sf", str(SCENARIOS / "uas_proxy_digest.xml")]
    extra = ["-trace_msg", "-message_file", str(trace)]
    sipp, port = _start_sipp_uas(processes, "sipp_proxy", scenario, extra)
    uri = "sip:bob@" + HOST + ":" + str(port)
    result = uac_call(uri, "--user", "alice", "--password", "secret")
    log = processes.log("sipp_proxy")
    assert result.returncode == 0, describe(result) + "\n--- sipp\n" + log
    assert _wait_for_exit(sipp, processes, "sipp_proxy") == 0, log

    # SIPp's trace: one block per message, "... message received ..." then the message.
    blocks = trace.read_text(errors="replace").split("\n-----")
    received = [
        b.split("\n", 2)[-1].lstrip() for b in blocks if "message received" in b.split("\n", 2)[1]
    ]
    invites = [m for m in received if m.startswith("INVITE ")]
    assert len(invites) == 2, received
    assert "Proxy-Authorization:" not in invites[0]
    checked = 0
    for message in received:
        assert not re.search(r"^Authorization:", message, flags=re.MULTILINE), message
        header = re.search(r"^Proxy-Authorization:(.*?)\r?$", message, flags=re.MULTILINE)
        if header is None:
            continue
        # RFC 2617 §3.2.2: the digest over the request's method and the challenge's nonce; the
        # ACK for the 2xx carries the INVITE's credentials unchanged (RFC 3261 §13.2.2.4).
        method = message.split(" ", 1)[0]
        if method == "ACK":
            assert header.group(1) in invites[1], message
            method = "INVITE"
        params = _digest_params(header.group(1))
        assert params["username"] == "alice"
        assert params["realm"] == "example.com"
        assert params["qop"] == "auth"
        ha1 = _md5("alice:example.com:secret")
        ha2 = _md5(method + ":" + params["uri"])
        fields = [ha1, params["nonce"], params["nc"], params["cnonce"], "auth", ha2]
        assert params["response"] == _md5(":".join(fields)), message
        checked += 1
    assert "Proxy-Authorization:" in invites[1]
    assert checked >= 1


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# ---- 5. pjsua2 (PJSIP) calls echo_uas


def _require_pjsua2() -> None:
    if not PJSUA2_PLATFORM:
        pytest.skip("pjsua2-python ships a wheel for CPython 3.11 only")
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail(
            "pjsua2 is not installed: scripts/test installs it (the test extra's pjsua2-python)",
            pytrace=False,
        )


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_pjsua2_calls_echo_uas(echo: EchoUas, interop_certs: CertFiles, transport: str) -> None:
    """PJSIP's call reaches CONFIRMED, then its BYE gets 200; over TLS it verifies the server."""
    _require_pjsua2()
    uri = echo.uri(transport) + ";transport=" + transport
    result = run(
        [sys.executable, PJSUA2_CALL, uri, "--transport", transport, "--tls-ca", interop_certs.ca]
    )
    assert result.returncode == 0, describe(result)
    assert "confirmed" in result.stdout
    assert "hung up: BYE 200" in result.stdout


def test_pjsua2_refuses_tls_server_it_cannot_verify(
    echo: EchoUas, interop_certs: CertFiles
) -> None:
    """The TLS test above is meaningful: with an unrelated CA, PJSIP refuses echo_uas."""
    _require_pjsua2()
    uri = echo.uri("tls") + ";transport=tls"
    args = [sys.executable, str(PJSUA2_CALL), uri, "--transport", "tls"]
    result = run([*args, "--tls-ca", interop_certs.other_ca, "--timeout", "10"])
    assert result.returncode == 1, describe(result)
    assert "confirmed" not in result.stdout


# ---- 6. sipsak OPTIONS to echo_uas


def _sipsak(
    echo: EchoUas, transport: str, ca: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    # sipsak checks the certificate against the URI's "host:port" when the URI has a port, so the
    # port goes in -r. sipsak 0.9.8.1 also mistakes the TLS 1.3 NewSessionTicket records the
    # server sends after the handshake for a read error ("nothing received, select returned
    # error"), so a GnuTLS system priority file limits it to TLS 1.2.
    priority = tmp_path / "gnutls-tls12.conf"
    priority.write_text("[overrides]\ndisabled-version = tls1.3\n")
    args = [require_binary("sipsak", "sipsak"), "--transport=" + transport]
    if transport == "tls":
        args.append("--tls-ca-cert=" + ca)
    args += ["-s", "sip:" + HOST, "-r", str(echo.port(transport)), "-vvv"]
    return subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=PEER_TIMEOUT,
        check=False,
        env=dict(os.environ, GNUTLS_SYSTEM_PRIORITY_FILE=str(priority)),
    )


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_sipsak_options_to_echo_uas(
    echo: EchoUas, interop_certs: CertFiles, tmp_path: Path, transport: str
) -> None:
    """sipsak's OPTIONS ping gets 200 OK (over TLS with the server verified)."""
    result = _sipsak(echo, transport, interop_certs.ca, tmp_path)
    assert result.returncode == 0, describe(result)
    assert "SIP/2.0 200 OK" in result.stdout


def test_sipsak_refuses_tls_server_it_cannot_verify(
    echo: EchoUas, interop_certs: CertFiles, tmp_path: Path
) -> None:
    result = _sipsak(echo, "tls", interop_certs.other_ca, tmp_path)
    assert result.returncode != 0, describe(result)
    assert "200 OK" not in result.stdout


# ---- 7. a WebSocket client from the websockets library (RFC 7118)


# websockets' asyncio client, not its sync one: the sync client's background thread trips a PyPy
# 3.9 threading bug on close ("RuntimeError: cannot release un-acquired lock" in Thread.join).


async def _ws_connect(port: int, subprotocols: Optional[list[str]]) -> ClientConnection:
    if not HAVE_WEBSOCKETS:
        pytest.fail(
            "websockets is not installed: scripts/test installs it (the test extra)",
            pytrace=False,
        )
    return await connect(
        "ws://" + HOST + ":" + str(port),
        subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
        compression=None,
        proxy=None,
        open_timeout=10,
        close_timeout=5,
    )


def _sip_text(lines: list[str], body: str = "") -> str:
    return "\r\n".join([*lines, "Content-Length: " + str(len(body.encode())), "", body])


def _status(message: str) -> int:
    first = message.split("\r\n", 1)[0]
    assert first.startswith("SIP/2.0 "), message
    return int(first.split(" ")[1])


def _header(message: str, name: str) -> str:
    match = re.search(r"^" + name + r"\s*:\s*(.*?)\r$", message, flags=re.MULTILINE | re.I)
    assert match is not None, "no " + name + " in:\n" + message
    return match.group(1)


def test_websockets_client_completes_a_call(echo: EchoUas) -> None:
    """Hand-written SIP over a websockets client: INVITE, 180/200, ACK, BYE, 200."""
    asyncio.run(asyncio.wait_for(_websocket_call(echo.port("ws")), PEER_TIMEOUT))


async def _websocket_call(port: int) -> None:
    async with await _ws_connect(port, ["sip"]) as ws:
        assert ws.subprotocol == "sip"

        async def receive() -> str:
            data = await asyncio.wait_for(ws.recv(), 10)
            return data if isinstance(data, str) else data.decode()

        call_id = secrets.token_hex(8) + "@client.invalid"
        from_tag = secrets.token_hex(4)
        contact = "<sip:alice@client.invalid;transport=ws>"
        offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        offer += "m=audio 9 RTP/AVP 0\r\n"
        common = [
            "Max-Forwards: 70",
            "From: <sip:alice@example.com>;tag=" + from_tag,
            "Call-ID: " + call_id,
        ]

        def via() -> str:
            return "Via: SIP/2.0/WS client.invalid;branch=z9hG4bK" + secrets.token_hex(8)

        await ws.send(
            _sip_text(
                [
                    "INVITE sip:echo@" + HOST + " SIP/2.0",
                    via(),
                    *common,
                    "To: <sip:echo@" + HOST + ">",
                    "CSeq: 1 INVITE",
                    "Contact: " + contact,
                    "Content-Type: application/sdp",
                ],
                offer,
            )
        )
        statuses: list[int] = []
        response = ""
        while not statuses or statuses[-1] < 200:
            response = await receive()
            assert _header(response, "Call-ID") == call_id
            statuses.append(_status(response))
        assert statuses == [180, 200]  # no 100: echo_uas answers at once (§17.2.1)
        assert response.endswith(offer), "200 does not echo the offer:\n" + response
        to = _header(response, "To")
        assert ";tag=" in to
        remote = re.search(r"<([^>]*)>", _header(response, "Contact"))
        assert remote is not None
        dialog = [*common, "To: " + to]

        ack = ["ACK " + remote.group(1) + " SIP/2.0", via(), *dialog, "CSeq: 1 ACK"]
        await ws.send(_sip_text(ack))
        bye = ["BYE " + remote.group(1) + " SIP/2.0", via(), *dialog, "CSeq: 2 BYE"]
        await ws.send(_sip_text(bye))
        response = await receive()
        assert _status(response) == 200, response
        assert _header(response, "CSeq") == "2 BYE"


def test_websocket_without_sip_subprotocol_is_refused(echo: EchoUas) -> None:
    """RFC 7118 §4.1: a handshake that does not offer the "sip" subprotocol is refused."""
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(_ws_connect(echo.port("ws"), None))
    assert refused.value.response.status_code == 400


# ---- 8. bad input: RFC 4475 torture messages and more


TORTURE = sorted(VECTORS.glob("*.dat"))


def _send_stream(port: int, data: bytes, wrap: Optional[ssl.SSLContext] = None) -> None:
    """One connection per message: send it, then close (a bad message may end the connection)."""
    with socket.create_connection((HOST, port), timeout=10) as raw:
        sock = raw if wrap is None else wrap.wrap_socket(raw, server_hostname=HOST)
        with sock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)


async def _send_ws(port: int, data: bytes) -> None:
    async with await _ws_connect(port, ["sip"]) as ws:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await ws.send(data)  # RFC 7118 §5: binary frames for messages that are not UTF-8
        else:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)


def _send_torture(transport: str, port: int, ca: str) -> None:
    """Send every RFC 4475 message to ``port`` over ``transport``."""
    messages = [path.read_bytes() for path in TORTURE]
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            for data in messages:
                udp.sendto(data, (HOST, port))
    elif transport == "ws":

        async def send_all() -> None:
            for data in messages:
                await _send_ws(port, data)

        asyncio.run(asyncio.wait_for(send_all(), PEER_TIMEOUT))
    else:
        tls = ssl.create_default_context(cafile=ca) if transport == "tls" else None
        for data in messages:
            _send_stream(port, data, tls)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_torture_messages_then_a_call(
    target: EchoUas, interop_certs: CertFiles, transport: str
) -> None:
    """Every RFC 4475 message, then echo_uas still completes a call on the same transport."""
    assert len(TORTURE) == 49
    _send_torture(transport, target.port(transport), interop_certs.ca)
    assert target.alive, "echo_uas died"
    result = uac_call(target.uri(transport), "--transport", transport, "--tls-ca", interop_certs.ca)
    assert result.returncode == 0, describe(result)
    assert target.alive


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(5)
    return sock


def _request(
    sock: socket.socket, method: str, call_id: str, cseq: str, via: Optional[str] = ""
) -> bytes:
    """A request from ``sock``; ``via``: "" for a good Via, None for none, else that Via value."""
    port = sock.getsockname()[1]
    lines = [method + " sip:echo@" + HOST + " SIP/2.0"]
    if via == "":
        branch = "z9hG4bK" + secrets.token_hex(8)
        lines.append("Via: SIP/2.0/UDP " + HOST + ":" + str(port) + ";branch=" + branch)
    elif via is not None:
        lines.append("Via: " + via)
    lines += [
        "Max-Forwards: 70",
        "From: <sip:tester@" + HOST + ">;tag=" + secrets.token_hex(4),
        "To: <sip:echo@" + HOST + ">",
        "Call-ID: " + call_id,
        "CSeq: " + cseq,
    ]
    return _sip_text(lines).encode()


def test_malformed_request_with_usable_via_gets_400_with_the_parse_reason(
    target: EchoUas,
) -> None:
    """RFC 3261 §8.2.6.2 / §18.2.1: a bad CSeq is answered 400 with the parser's reason."""
    with _udp_socket() as sock:
        call_id = "bad-cseq-" + secrets.token_hex(6)
        bad = _request(sock, "OPTIONS", call_id, "abc OPTIONS")
        with pytest.raises(ParseError) as parsed:
            parse_message(bad)
        sock.sendto(bad, (HOST, target.port("udp")))
        answer = sock.recv(65536).decode()
    assert answer.split("\r\n", 1)[0] == "SIP/2.0 400 " + parsed.value.reason
    assert _header(answer, "Call-ID") == call_id
    assert "branch=z9hG4bK" in _header(answer, "Via")


@pytest.mark.parametrize("via", [None, "this is not a via"], ids=["no-via", "bad-via"])
def test_request_without_usable_via_gets_no_answer(target: EchoUas, via: Optional[str]) -> None:
    """No usable Via, no answer: the next datagram back is the 200 for a good OPTIONS after it."""
    with _udp_socket() as sock:
        bad = _request(sock, "OPTIONS", "no-via-" + secrets.token_hex(6), "1 OPTIONS", via=via)
        with pytest.raises(ParseError):
            parse_message(bad)
        sock.sendto(bad, (HOST, target.port("udp")))
        good = "good-" + secrets.token_hex(6)
        sock.sendto(_request(sock, "OPTIONS", good, "1 OPTIONS"), (HOST, target.port("udp")))
        answer = sock.recv(65536).decode()
    assert _status(answer) == 200, answer
    assert _header(answer, "Call-ID") == good


def test_tcp_header_block_over_32_kib_is_disconnected(target: EchoUas) -> None:
    """RFC 3261 §18.3 framing: a header block beyond the 32 KiB limit closes the connection."""
    head = b"OPTIONS sip:echo@" + HOST.encode() + b" SIP/2.0\r\n"
    filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    data = head + filler * 40  # about 40 KiB, and never the blank line that ends the headers
    with socket.create_connection((HOST, target.port("tcp")), timeout=10) as sock:
        try:
            sock.sendall(data)
            while sock.recv(65536):  # whatever it says first, the connection must then end
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail("echo_uas kept the connection open for 10 s after 40 KiB of headers")
    assert target.alive
