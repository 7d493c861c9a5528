"""Helpers for the interoperability tests: processes, ports and throwaway certificates.

The tests drive real SIP programs (SIPp, sipsak, pjsua2) and our examples as subprocesses on the
loopback interface only. Everything started here is killed at teardown; every wait has a deadline.
TLS uses a throwaway CA and a server certificate for ``127.0.0.1`` / ``localhost`` (RFC 5922 §7.1
name checks), made with ``cryptography`` in a temporary directory.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Callable, Optional, Union

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ECHO_UAS = EXAMPLES / "echo_uas.py"
UAC_CALL = EXAMPLES / "uac_call.py"
PROXY = EXAMPLES / "proxy.py"
HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
PJSUA2_CALL = HERE / "pjsua2_call.py"
VECTORS = ROOT / "tests" / "vectors" / "rfc4475"
SPROUT_PLUGINS = HERE / "sprout_plugins"

#: Seconds any one peer program may run before it is killed and the test fails.
PEER_TIMEOUT = 30.0
#: Seconds echo_uas may take to print its listening lines (PyPy starts slowly).
STARTUP_TIMEOUT = 30.0

HOST = "127.0.0.1"

Command = Sequence[Union[str, Path]]


def require_binary(name: str, package: str) -> str:
    """The path of a peer program; fails (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            name + " is not installed: scripts/test installs it (Debian package " + package + ")",
            pytrace=False,
        )
    return path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out after " + str(timeout) + " s waiting for " + what)
        time.sleep(0.02)


# ---- ports


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux's default if it
    cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low, high = (int(word) for word in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


#: Where :func:`free_port` picks: below the ephemeral range, so that no outgoing connection is
#: handed a picked port between the pick and the server's bind (seen: EADDRINUSE in CI).
FREE_PORTS = (10000, max(10999, ephemeral_ports()[0] - 1))


def free_port() -> int:
    """A port on 127.0.0.1 that is free for both TCP and UDP right now (for peers that need
    one), outside the kernel's ephemeral range (:data:`FREE_PORTS`)."""
    for _ in range(200):
        port = random.randint(*FREE_PORTS)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((HOST, port))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both TCP and UDP on " + HOST)


def free_low_port() -> int:
    """A port in 5000-9999 on 127.0.0.1, free for both TCP and UDP right now: sipsak 0.9.8.1
    drops the last digit of a five-digit port in a Request-URI."""
    for _ in range(200):
        port = random.randint(5000, 9999)
        if 5050 <= port <= 5070:
            continue  # sprout's default sproutlet ports (5052-5055) clash with --sip-port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((HOST, port))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port in 5000-9999 free for both TCP and UDP on " + HOST)


def port_is_bound(transport: str, port: int) -> bool:
    """Whether some process listens on 127.0.0.1:``port`` (``"udp"`` or ``"tcp"``), from /proc.

    Read-only, so it cannot race with the peer's own bind the way a trial bind would.
    """
    wanted_host = "0100007F"  # 127.0.0.1 as /proc/net prints it (little-endian hex)
    wanted_port = format(port, "04X")
    path = Path("/proc/net") / transport
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        host, _, hex_port = fields[1].partition(":")
        if hex_port != wanted_port or host not in (wanted_host, "00000000"):
            continue
        if transport == "udp" or fields[3] == "0A":  # 0A: TCP_LISTEN
            return True
    return False


# ---- SIPp


def sipp() -> str:
    """The path of SIPp (skips the test where it is not installed)."""
    return require_binary("sipp", "sip-tester")


def sipp_counter(output: str, name: str) -> int:
    """A cumulative counter ("Successful call", "Failed call") from SIPp's final screen."""
    found = re.findall(re.escape(name) + r"\s*\|\s*\d+\s*\|\s*(\d+)", output)
    assert found, "no '" + name + "' counter in SIPp's output:\n" + output[-3000:]
    return int(found[-1])


def sipp_uac(
    target: str, *options: str, transport: str = "udp", calls: int = 500, rate: int = 100
) -> subprocess.CompletedProcess[str]:
    """SIPp's built-in uac: ``calls`` calls to ``target`` at ``rate`` per second, to completion
    (``-timeout_error``: a stuck call fails it)."""
    mode = "u1" if transport == "udp" else "t1"
    args = [sipp(), "-sn", "uac", target, *options, "-t", mode, "-i", HOST]
    args += ["-p", str(free_port()), "-m", str(calls), "-r", str(rate), "-nostdin"]
    return run([*args, "-timeout", "30", "-timeout_error"], timeout=45)


@attrs.frozen
class SippMessage:
    """One message of SIPp's message trace: whether SIPp ``sent`` it (else received it), and
    its bytes as they went on the wire."""

    sent: bool
    data: bytes


#: The head of one entry of SIPp's ``-trace_msg`` file: a dashed time-stamp line, then
#: ``UDP message sent (N bytes):`` or ``UDP message received [N] bytes :``, then an empty line.
_SIPP_TRACE_ENTRY = re.compile(
    rb"-+ [^\n]*\n\w+ message (?:sent \((\d+) bytes\)|received \[(\d+)\] bytes ?):\n\n"
)


def sipp_trace(path: Path) -> list[SippMessage]:
    """The messages in the file SIPp writes with ``-trace_msg -message_file PATH``, in order.

    SIPp flushes each entry as it goes, so a test may poll this while SIPp runs; an entry still
    being written is left out (so is everything after anything this cannot read)."""
    data = path.read_bytes() if path.exists() else b""
    messages: list[SippMessage] = []
    position = 0
    while True:
        entry = _SIPP_TRACE_ENTRY.match(data, position)
        if entry is None:
            return messages
        size = int(entry.group(1) or entry.group(2))
        start = entry.end()
        if start + size > len(data):
            return messages
        messages.append(SippMessage(entry.group(1) is not None, data[start : start + size]))
        position = start + size
        while data[position : position + 1] == b"\n":
            position += 1


# ---- processes


class Processes:
    """Every subprocess a test started; :meth:`stop_all` ends them (terminate, then kill)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self,
        name: str,
        args: Command,
        *,
        stdout: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` with stderr (and stdout unless given) in ``log_dir/name.log``, with
        ``env`` as its environment if given."""
        log = (self.log_dir / (name + ".log")).open("wb")
        process = subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=log if stdout is None else stdout,
            stderr=log,
            cwd=self.log_dir,
            env=None if env is None else dict(env),
        )
        self._started.append((name, process, log))
        return process

    def log(self, name: str) -> str:
        path = self.log_dir / (name + ".log")
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for _, process, log in reversed(self._started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            log.close()
        self._started.clear()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Starts subprocesses for one test and always ends them afterwards."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def run(args: Command, timeout: float = PEER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a program to completion (killed after ``timeout``), capturing its output as text."""
    return subprocess.run(
        [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failure message with a program's exit code and the end of its output."""
    return (
        "exit "
        + str(result.returncode)
        + "\n--- stdout\n"
        + result.stdout[-3000:]
        + "\n--- stderr\n"
        + result.stderr[-3000:]
    )


def uac_call(
    uri: str, *options: str, timeout: float = PEER_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """examples/uac_call.py under this interpreter: one call to ``uri``."""
    return run([sys.executable, UAC_CALL, uri, "--timeout", "15", *options], timeout=timeout)


# ---- echo_uas


@attrs.frozen
class EchoUas:
    """A running examples/echo_uas.py and the ports it bound, by transport (``"udp"``...)."""

    process: subprocess.Popen[bytes]
    ports: dict[str, int]

    def port(self, transport: str) -> int:
        return self.ports[transport]

    def uri(self, transport: str, user: str = "echo") -> str:
        return "sip:" + user + "@" + HOST + ":" + str(self.ports[transport])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def start_echo_uas(
    processes: Processes,
    transports: Sequence[str] = ("udp", "tcp", "tls", "ws"),
    certs: Optional[CertFiles] = None,
    name: str = "echo_uas",
) -> EchoUas:
    """Start echo_uas with ``sys.executable`` on port 0 for each transport; wait for its ports."""
    args: list[Union[str, Path]] = [sys.executable, ECHO_UAS]
    for transport in transports:
        args += ["--listen", transport + ":" + HOST + ":0"]
    if certs is not None:
        args += ["--tls-cert", certs.certificate, "--tls-key", certs.key]
    process = processes.start(name, args, stdout=subprocess.PIPE)
    assert process.stdout is not None
    ports = _read_ports(process, process.stdout, len(transports), processes, name)
    return EchoUas(process, ports)


def start_proxy(
    processes: Processes, transports: Sequence[str], *options: str, name: str = "proxy"
) -> dict[str, int]:
    """Start examples/proxy.py on port 0 for each transport; returns its ports by transport."""
    args: list[Union[str, Path]] = [sys.executable, PROXY, "--verbose", *options]
    for transport in transports:
        args += ["--listen", transport + ":" + HOST + ":0"]
    process = processes.start(name, args, stdout=subprocess.PIPE)
    assert process.stdout is not None
    return _read_ports(process, process.stdout, len(transports), processes, name)


# ---- twistd sprout


#: ``twistd`` under this interpreter (``python -m twisted`` is ``twist``, which has no ``-n``).
TWISTD = (sys.executable, "-c", "from twisted.scripts.twistd import run; run()")


@attrs.frozen
class Sprout:
    """A running ``twistd -n sprout`` and its ports (``http_port`` 0: no management port)."""

    process: subprocess.Popen[bytes]
    name: str
    sip_port: int
    http_port: int

    @property
    def address(self) -> str:
        return HOST + ":" + str(self.sip_port)

    def uri(self, user: str) -> str:
        return "sip:" + user + "@" + self.address


def sprout_env() -> dict[str, str]:
    """The environment for twistd: this checkout first on PYTHONPATH, so that its
    ``twisted/plugins`` (the ``sprout`` command) and ``clearwater`` are the ones found."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def start_sprout(
    processes: Processes,
    *options: Union[str, Path],
    sip_port: Optional[int] = None,
    http_port: Optional[int] = None,
    name: str = "sprout",
) -> Sprout:
    """Start ``twistd -n --pidfile= sprout`` with ``--home-domain example.com``, ``--local-ip``
    127.0.0.1, ``--sip-port`` and ``--http-port`` (each a :func:`free_port` unless given; 0
    for no management port) and ``options``; wait, with a deadline, for its log to say it
    listens on UDP and TCP. The log (twistd's stdout) is ``processes.log(name)``."""
    sip_port = free_port() if sip_port is None else sip_port
    http_port = free_port() if http_port is None else http_port
    args: list[Union[str, Path]] = [*TWISTD, "-n", "--pidfile=", "sprout"]
    args += ["--home-domain", "example.com", "--local-ip", HOST, "--sip-port", str(sip_port)]
    args += ["--http-port", str(http_port), *options]
    if "--scscf" not in options:
        args += ["--scscf", "0"]  # no built-in S-CSCF (and its stores) unless asked for
    process = processes.start(name, args, env=sprout_env())
    wanted = ["sprout listening on " + t + ":" + HOST + ":" + str(sip_port) for t in ("udp", "tcp")]
    wait_until(
        lambda: process.poll() is not None or all(w in processes.log(name) for w in wanted),
        STARTUP_TIMEOUT,
        name + " to listen",
    )
    if process.poll() is not None:
        pytest.fail(
            name + " exited (" + str(process.returncode) + ") at start-up:\n" + processes.log(name)
        )
    if http_port:
        wait_until(lambda: port_is_bound("tcp", http_port), STARTUP_TIMEOUT, "sprout's HTTP port")
    return Sprout(process, name, sip_port, http_port)


def _read_ports(
    process: subprocess.Popen[bytes],
    stdout: IO[bytes],
    count: int,
    processes: Processes,
    name: str,
) -> dict[str, int]:
    """Read ``listening udp:127.0.0.1:40123`` lines until ``count`` came, with a deadline."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    buffer = b""
    ports: dict[str, int] = {}
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while len(ports) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(name + " did not report its ports in time:\n" + processes.log(name))
            if not selector.select(timeout=left):
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                process.wait(timeout=5)
                pytest.fail(
                    name
                    + " exited ("
                    + str(process.returncode)
                    + ") before listening:\n"
                    + processes.log(name)
                )
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                words = line.decode().split()
                if len(words) == 2 and words[0] == "listening":
                    transport, _, port = words[1].rpartition(":")
                    ports[transport.split(":")[0].lower()] = int(port)
    return ports


# ---- certificates


@attrs.frozen
class CertFiles:
    """PEM files: a CA, a server certificate it signed (127.0.0.1, localhost) and its key, and a
    second CA that did not sign it (to check that peers really verify)."""

    ca: str
    certificate: str
    key: str
    other_ca: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(
    common_name: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def make_test_certs(directory: Path) -> CertFiles:
    """Write a throwaway CA, a server certificate for 127.0.0.1/localhost and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca_cert = _make_ca("clearwater interop test CA", now)
    _, other_ca_cert = _make_ca("clearwater interop unrelated CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = CertFiles(
        ca=str(directory / "ca.pem"),
        certificate=str(directory / "server.pem"),
        key=str(directory / "server.key"),
        other_ca=str(directory / "other-ca.pem"),
    )
    Path(paths.ca).write_bytes(ca_cert.public_bytes(pem))
    Path(paths.other_ca).write_bytes(other_ca_cert.public_bytes(pem))
    Path(paths.certificate).write_bytes(certificate.public_bytes(pem))
    Path(paths.key).write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(scope="module")
def interop_certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A throwaway CA and server certificate, made once per test module."""
    return make_test_certs(tmp_path_factory.mktemp("certs"))
