"""Harness for the Diameter interoperability tests: a freeDiameterd peer and two independent
decoders (tshark, pycrate) to cross-check the bytes our stack writes.

- :class:`FreeDiameterd` runs freeDiameter 1.2.1's daemon on loopback as a base-protocol peer
  (RFC 6733 §5: CER/CEA, DWR/DWA, DPR/DPA; it has no Cx/Rf application logic). Its log is how
  a test sees what it did: with ``-dd`` it prints every peer state change (RFC 6733 §5.6) and a
  one-line summary of each message it sends or receives.
- :func:`tshark_decode` writes messages into a pcap file (Ethernet/IPv4/TCP framing made here with
  :mod:`struct`) and returns Wireshark's dissection of each, with the expert info it attached.
- :func:`pycrate_decode` decodes one message with ``pycrate_diameter.Diameter3GPP`` (IETF and 3GPP
  AVP dictionaries) and checks that the result re-encodes to the same bytes.

None of this uses ``clearwater.diameter``: the harness must be able to judge it.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration._peers import HOST, Processes, free_port, port_is_bound

#: The IANA port of Diameter over TCP (RFC 6733 §2.1).
DIAMETER_PORT = 3868
#: Where Debian's freediameter-extensions installs the loadable extensions.
EXTENSIONS_DIR = Path("/usr/lib/freeDiameter")
#: Dictionary extensions every :class:`FreeDiameterd` loads, in this order (dict_nasreq must come
#: before dict_dcca, which dict_dcca_3gpp extends).
DICTIONARIES = ("dict_nasreq", "dict_dcca", "dict_dcca_3gpp", "dict_sip")
#: Seconds freeDiameterd may take to start listening.
STARTUP_TIMEOUT = 10.0
#: Seconds :meth:`FreeDiameterd.stop` waits after SIGTERM before SIGKILL. freeDiameterd sends
#: DPR to its open peers and waits for the DPAs ("16 sec max"), so a stalled peer can hold it up.
STOP_TIMEOUT = 5.0
#: The smallest global ``TwTimer`` freeDiameterd's configuration parser accepts. A per-peer
#: ``TwTimer`` in a ``ConnectPeer`` block is not range-checked: 1 works.
MIN_GLOBAL_TW_TIMER = 6


# ---- freeDiameterd


def freediameterd_path() -> str:
    """The path of freeDiameterd; skips the test where it is not installed."""
    path = shutil.which("freeDiameterd")
    if path is None:
        pytest.skip(
            "freeDiameterd is not installed (Debian packages freediameterd, "
            "freediameter-extensions)"
        )
    missing = [name for name in DICTIONARIES if not (EXTENSIONS_DIR / (name + ".fdx")).exists()]
    if missing:
        pytest.skip(
            "freeDiameter extensions missing in "
            + str(EXTENSIONS_DIR)
            + ": "
            + ", ".join(missing)
            + " (Debian package freediameter-extensions)"
        )
    return path


@attrs.frozen
class ConnectPeer:
    """A ``ConnectPeer`` entry: freeDiameterd keeps a connection to ``identity`` at
    ``host:port`` (plain TCP) and accepts that peer's own connections. ``tc_timer`` and
    ``tw_timer`` (seconds) override the daemon-wide ``TcTimer`` / ``TwTimer`` for this peer."""

    identity: str
    port: int
    host: str = HOST
    realm: Optional[str] = None
    tc_timer: Optional[int] = None
    tw_timer: Optional[int] = None

    def render(self) -> str:
        params = ['ConnectTo = "' + self.host + '";', "Port = " + str(self.port) + ";"]
        params += ["No_TLS;", "No_SCTP;"]
        if self.realm is not None:
            params.append('Realm = "' + self.realm + '";')
        if self.tc_timer is not None:
            params.append("TcTimer = " + str(self.tc_timer) + ";")
        if self.tw_timer is not None:
            params.append("TwTimer = " + str(self.tw_timer) + ";")
        return 'ConnectPeer = "' + self.identity + '" { ' + " ".join(params) + " };"


def state_pattern(peer: str, state: str) -> str:
    """A regex for freeDiameterd's log line saying its state machine for ``peer`` entered
    ``state`` (``"STATE_OPEN"``, ``"STATE_SUSPECT"``...). The lines look like::

        'STATE_WAITCEA'<TAB>-> 'STATE_OPEN'<TAB>'b.localdomain'
        'STATE_CLOSED'<TAB>-> STATE_ZOMBIE (terminated)<TAB>'b.localdomain'

    (``<TAB>``: a tab character). Changes into or out of STATE_OPEN are NOTI lines; the others
    are DBG lines, printed only with ``debug=True`` (``-dd``)."""
    return r"-> '?" + re.escape(state) + r"'?(?: \(terminated\))?\t'" + re.escape(peer) + "'"


def message_pattern(direction: str, peer: str, command_code: int, request: bool) -> str:
    """A regex for the DBG line freeDiameterd prints for each message it sends (``direction``
    ``"SENT to"``) or receives (``"RCV from"``), e.g.::

        RCV from 'b.localdomain': (no model)0/280 f:R--- src:'b.localdomain' len:76 {...}
        SENT to 'b.localdomain': 'Device-Watchdog-Answer'0/280 f:---- src:'(nil)' len:88 {...}

    A CER arriving on a new connection is logged as from ``'<unknown>'``."""
    flag = "R" if request else "-"
    return (
        re.escape(direction)
        + " '"
        + re.escape(peer)
        + r"': .*?\d+/"
        + str(command_code)
        + " f:"
        + flag
    )


class FreeDiameterd:
    """One freeDiameterd on loopback, configured in ``processes.log_dir/name``.

    ``allow_peers`` are Diameter identities accepted on incoming connections without being
    connected to (the acl_wl extension, ``ALLOW_IPSEC``: no TLS); ``connect_peers`` are
    connected to and accepted. Any other peer's CER is answered with DIAMETER_UNKNOWN_PEER
    (3010). With ``relay`` (freeDiameter's default) it advertises the relay application
    0xffffffff, so any peer application is common; without it a CER whose applications it does
    not support is answered with DIAMETER_NO_COMMON_APPLICATION (5010).

    freeDiameterd ignores ``ListenOn`` for loopback addresses (its endpoint list filters them
    out), so it binds ``0.0.0.0:port``; the configuration still names 127.0.0.1.
    """

    def __init__(
        self,
        processes: Processes,
        identity: str,
        *,
        realm: str = "localdomain",
        port: Optional[int] = None,
        connect_peers: Sequence[ConnectPeer] = (),
        allow_peers: Sequence[str] = (),
        tc_timer: Optional[int] = None,
        tw_timer: Optional[int] = None,
        relay: bool = True,
        debug: bool = True,
        name: Optional[str] = None,
    ) -> None:
        if tw_timer is not None and tw_timer < MIN_GLOBAL_TW_TIMER:
            raise ValueError(
                "freeDiameterd rejects a global TwTimer below "
                + str(MIN_GLOBAL_TW_TIMER)
                + "; set ConnectPeer.tw_timer instead"
            )
        if tc_timer is not None and tc_timer < 1:
            raise ValueError("freeDiameterd rejects a TcTimer below 1")
        self.processes = processes
        self.identity = identity
        self.realm = realm
        self.port = free_port() if port is None else port
        self.connect_peers = tuple(connect_peers)
        self.allow_peers = tuple(allow_peers)
        self.tc_timer = tc_timer
        self.tw_timer = tw_timer
        self.relay = relay
        self.debug = debug
        self.name = identity.split(".")[0] if name is None else name
        self.directory = processes.log_dir / self.name
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._paused = False

    # -- files

    @property
    def config_path(self) -> Path:
        return self.directory / "freeDiameter.conf"

    @property
    def log_path(self) -> Path:
        """freeDiameterd's stdout and stderr (``Processes`` names it after :attr:`name`)."""
        return self.processes.log_dir / (self.name + ".log")

    def write_config(self) -> Path:
        """Write the certificate, key and configuration file; returns the configuration's path.

        freeDiameterd needs TLS credentials even with TLS unused (``SecPort = 0``, ``No_TLS``
        for every ConnectPeer), and refuses a certificate that does not name its identity."""
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = write_self_signed(self.directory, self.identity)
        lines = [
            'Identity = "' + self.identity + '";',
            'Realm = "' + self.realm + '";',
            "Port = " + str(self.port) + ";",
            "SecPort = 0;",
            "No_SCTP;",
            "No_IPv6;",
            "# Ignored for loopback addresses: freeDiameterd then listens on 0.0.0.0.",
            'ListenOn = "' + HOST + '";',
            'TLS_Cred = "' + str(cert) + '", "' + str(key) + '";',
            'TLS_CA = "' + str(cert) + '";',
        ]
        if self.tc_timer is not None:
            lines.append("TcTimer = " + str(self.tc_timer) + ";")
        if self.tw_timer is not None:
            lines.append("TwTimer = " + str(self.tw_timer) + ";")
        if not self.relay:
            lines.append("NoRelay;")
        for dictionary in DICTIONARIES:
            lines.append('LoadExtension = "' + str(EXTENSIONS_DIR / (dictionary + ".fdx")) + '";')
        if self.allow_peers:
            acl = self.directory / "acl_wl.conf"
            acl.write_text("ALLOW_IPSEC " + " ".join(self.allow_peers) + "\n")
            lines.append(
                'LoadExtension = "' + str(EXTENSIONS_DIR / "acl_wl.fdx") + '" : "' + str(acl) + '";'
            )
        lines += [peer.render() for peer in self.connect_peers]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    # -- process

    def start(self, timeout: float = STARTUP_TIMEOUT) -> FreeDiameterd:
        """Write the configuration, start freeDiameterd and wait (with a deadline) until it
        says it is initialised and its port is bound. Fails the test with its log if it exits
        or does not get there in time."""
        if self.process is not None:
            raise RuntimeError(self.name + " was already started")
        binary = freediameterd_path()
        self.write_config()
        args: list[Union[str, Path]] = [binary, "-c", self.config_path]
        if self.debug:
            args.append("-dd")
        self.process = self.processes.start(self.name, args)
        self.wait_for_log(r"freeDiameterd daemon initialized\.", timeout)
        deadline = time.monotonic() + timeout
        while not port_is_bound("tcp", self.port):
            self._check_alive("before listening")
            if time.monotonic() > deadline:
                pytest.fail(
                    self.name
                    + " did not listen on port "
                    + str(self.port)
                    + " in "
                    + str(timeout)
                    + " s:\n"
                    + self.log_tail()
                )
            time.sleep(0.02)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """End freeDiameterd: resume it if paused, SIGTERM (it sends DPR to its open peers and
        waits for DPA), then SIGKILL if it has not exited after ``timeout`` seconds. Returns
        its exit status (negative: the signal that ended it)."""
        process = self.process
        if process is None:
            raise RuntimeError(self.name + " was not started")
        if process.poll() is None:
            if self._paused:
                self.resume()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        return process.returncode

    def pause(self, timeout: float = 5.0) -> None:
        """SIGSTOP freeDiameterd (it stops answering, DWR included), and wait until the kernel
        reports it stopped."""
        self._signal_and_wait(signal.SIGSTOP, stopped=True, timeout=timeout)
        self._paused = True

    def resume(self, timeout: float = 5.0) -> None:
        """SIGCONT a paused freeDiameterd and wait until it runs again."""
        self._signal_and_wait(signal.SIGCONT, stopped=False, timeout=timeout)
        self._paused = False

    def _signal_and_wait(self, sig: signal.Signals, stopped: bool, timeout: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            raise RuntimeError(self.name + " is not running")
        process.send_signal(sig)
        deadline = time.monotonic() + timeout
        while _is_stopped(process.pid) != stopped:
            if time.monotonic() > deadline:
                pytest.fail(
                    self.name
                    + " did not "
                    + ("stop" if stopped else "continue")
                    + " after "
                    + sig.name
                )
            time.sleep(0.01)

    def _check_alive(self, when: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(
                self.name
                + " exited ("
                + str(self.process.returncode)
                + ") "
                + when
                + ":\n"
                + self.log_tail()
            )

    # -- log

    def log(self) -> str:
        """freeDiameterd's log so far (it flushes each line)."""
        return self.processes.log(self.name)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def log_mark(self) -> int:
        """The log's current length, for :meth:`wait_for_log` ``since`` (to wait for something
        that happens after this point)."""
        return len(self.log())

    def wait_for_log(
        self, pattern: Union[str, re.Pattern[str]], timeout: float = 10.0, since: int = 0
    ) -> re.Match[str]:
        """Poll the log until ``pattern`` matches at or after character ``since``; returns the
        match. Fails the test (with the log's end) after ``timeout`` seconds or if freeDiameterd
        exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log(), since)
            if found is not None:
                return found
            self._check_alive("while waiting for /" + regex.pattern + "/")
            if time.monotonic() > deadline:
                pytest.fail(
                    "timed out after "
                    + str(timeout)
                    + " s waiting for /"
                    + regex.pattern
                    + "/ in "
                    + self.name
                    + "'s log:\n"
                    + self.log_tail()
                )
            time.sleep(0.02)

    def wait_for_state(
        self, peer: str, state: str, timeout: float = 10.0, since: int = 0
    ) -> re.Match[str]:
        """Wait for the log line saying the state machine for ``peer`` entered ``state``
        (:func:`state_pattern`)."""
        return self.wait_for_log(state_pattern(peer, state), timeout, since)

    def states(self, peer: str) -> list[str]:
        """The states freeDiameterd logged for ``peer`` so far, in order (all of them only with
        ``debug=True``)."""
        pattern = r"-> '?(STATE_\w+)'?(?: \(terminated\))?\t'" + re.escape(peer) + "'"
        return re.findall(pattern, self.log())

    def __enter__(self) -> FreeDiameterd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.stop()


def _is_stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state ``T`` in /proc/PID/stat)."""
    try:
        stat = Path("/proc/" + str(pid) + "/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def write_self_signed(directory: Path, identity: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for ``identity`` (subject CN and DNS SAN) and its key, as
    PEM files in ``directory``: the certificate and CA freeDiameterd insists on loading."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_path = directory / (identity + ".crt")
    key_path = directory / (identity + ".key")
    cert_path.write_bytes(certificate.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


# ---- decoded messages (both decoders)

#: An AVP's value: tshark gives strings (integers in decimal, text as text, OctetString,
#: Address and Grouped as colon-separated hex bytes); pycrate gives int, float, str (UTF8String,
#: Address as an IP address), bytes (OctetString, DiameterIdentity, unknown AVPs) or None
#: (Grouped: see ``children``).
AvpValue = Union[str, int, float, bytes, None]


@attrs.frozen
class DiameterAvp:
    """One AVP as a decoder saw it. ``name`` is the decoder's name for it (None: unknown to its
    dictionary); ``vendor`` is the Vendor-ID (None: V bit clear); ``children`` are the AVPs
    inside a Grouped AVP."""

    code: int
    vendor: Optional[int]
    name: Optional[str]
    value: AvpValue
    children: tuple[DiameterAvp, ...] = ()

    def child(self, name: str) -> DiameterAvp:
        return _first(self.children, name)


@attrs.frozen
class ExpertInfo:
    """A Wireshark expert info item: ``severity`` ("comment", "chat", "note", "warning",
    "error"), ``group`` ("malformed", "undecoded", "reassemble", "protocol"...), ``message``."""

    severity: str
    group: str
    message: str


@attrs.frozen
class DecodedDiameter:
    """One Diameter message (RFC 6733 §3 header, §4 AVPs) as a decoder saw it.

    ``expert`` (tshark only) holds every expert info item in the message's frame, framing
    included; ``extra_layers`` (tshark only) names what tshark found in the frame after this
    message (``"diameter"``: the bytes beyond the header's Message Length, taken as a further
    message)."""

    command_code: int
    request: bool
    proxiable: bool
    error: bool
    retransmit: bool
    application_id: int
    hop_by_hop: int
    end_to_end: int
    length: int
    avps: tuple[DiameterAvp, ...]
    expert: tuple[ExpertInfo, ...] = ()
    extra_layers: tuple[str, ...] = ()

    def avp(self, name: str) -> DiameterAvp:
        """The first top-level AVP called ``name``."""
        return _first(self.avps, name)

    def all(self, name: str) -> list[DiameterAvp]:
        """Every AVP called ``name``, at any depth, in order."""
        return [avp for avp in _walk(self.avps) if avp.name == name]


def _first(avps: Iterable[DiameterAvp], name: str) -> DiameterAvp:
    for avp in avps:
        if avp.name == name:
            return avp
    raise KeyError(name)


def _walk(avps: Iterable[DiameterAvp]) -> Iterator[DiameterAvp]:
    for avp in avps:
        yield avp
        yield from _walk(avp.children)


def _header_flags(flags: int) -> dict[str, bool]:
    return {
        "request": bool(flags & 0x80),
        "proxiable": bool(flags & 0x40),
        "error": bool(flags & 0x20),
        "retransmit": bool(flags & 0x10),
    }


# ---- tshark


class TsharkError(Exception):
    """tshark failed, or did not see a Diameter message where one was written."""


def tshark_path() -> str:
    """The path of tshark; skips the test where it is not installed."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (Debian package tshark)")
    return path


#: Wireshark's expert severities and groups (epan/proto.h, PI_*).
_SEVERITIES = {
    0x100000: "comment",
    0x200000: "chat",
    0x400000: "note",
    0x600000: "warning",
    0x800000: "error",
}
_GROUPS = {
    0x01000000: "checksum",
    0x02000000: "sequence",
    0x03000000: "response-code",
    0x04000000: "request-code",
    0x05000000: "undecoded",
    0x06000000: "reassemble",
    0x07000000: "malformed",
    0x08000000: "debug",
    0x09000000: "protocol",
    0x0A000000: "security",
    0x0B000000: "comments",
    0x0C000000: "decryption",
    0x0D000000: "assumption",
    0x0E000000: "deprecated",
}


def write_pcap(path: Path, messages: Sequence[bytes], port: int = DIAMETER_PORT) -> None:
    """Write each message as one TCP segment of its own TCP connection from
    127.0.0.1:(40000+i) to 127.0.0.1:``port`` (classic pcap, Ethernet link type). Each
    message having its own connection keeps a broken Message Length from spilling into the
    next; the sequence numbers, lengths and IPv4/TCP checksums are correct."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    address = bytes(ipaddress.IPv4Address(HOST).packed)
    for index, message in enumerate(messages):
        if len(message) > 65535 - 40:
            raise ValueError("message " + str(index) + " does not fit one IPv4 packet")
        sport = 40000 + index
        tcp = struct.pack("!HHIIBBHHH", sport, port, 1000, 1, 5 << 4, 0x18, 65535, 0, 0)
        pseudo = address + address + struct.pack("!BBH", 0, 6, len(tcp) + len(message))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp + message)) + tcp[18:]
        total = 20 + len(tcp) + len(message)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, index, 0x4000, 64, 6, 0, address, address)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + message
        out.append(struct.pack("<IIII", index, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack("!" + str(len(data) // 2) + "H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tshark_command(pcap: Path, port: int = DIAMETER_PORT) -> list[str]:
    """The tshark command line :func:`tshark_decode` runs.

    ``-d`` makes the port Diameter. ``diameter.desegment:FALSE`` makes tshark dissect each
    segment as it is instead of waiting for the rest of a message whose Message Length runs
    past the segment (it then adds a note "Unreassembled fragment"); bytes beyond the Message
    Length are dissected as a further message. Broken AVP lengths come out as errors in the
    "malformed" group. ``-T json`` gives the whole tree with its ``_ws.expert`` items."""
    return [
        tshark_path(), "-n", "-r", str(pcap),
        "-o", "diameter.desegment:FALSE",
        "-d", "tcp.port==" + str(port) + ",diameter",
        "-T", "json",
    ]  # fmt: skip


def tshark_decode(messages: Sequence[bytes], port: int = DIAMETER_PORT) -> list[DecodedDiameter]:
    """Wireshark's dissection of each message (see :func:`write_pcap`, :func:`tshark_command`),
    in order. Raises :class:`TsharkError` if tshark fails or finds no Diameter header in a
    message's frame (e.g. a version other than 1)."""
    with tempfile.TemporaryDirectory(prefix="tshark-") as scratch:
        pcap = Path(scratch) / "diameter.pcap"
        write_pcap(pcap, messages, port)
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=scratch)  # no personal preferences
        result = subprocess.run(
            tshark_command(pcap, port), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, errors="replace", timeout=60, check=False, env=env,
        )  # fmt: skip
    if result.returncode != 0:
        raise TsharkError("tshark exited " + str(result.returncode) + ":\n" + result.stderr)
    packets: list[Any] = json.loads(result.stdout, object_pairs_hook=list)
    if len(packets) != len(messages):
        raise TsharkError(
            "tshark printed "
            + str(len(packets))
            + " frames for "
            + str(len(messages))
            + " messages"
        )
    return [_decoded_frame(index, packet) for index, packet in enumerate(packets)]


def _pairs(node: Any) -> list[tuple[str, Any]]:
    """A JSON object as parsed with ``object_pairs_hook=list`` (keys repeat in tshark's
    output, e.g. one ``diameter.avp`` per AVP)."""
    if isinstance(node, list) and all(isinstance(p, tuple) and len(p) == 2 for p in node):
        return node
    return []


def _get(pairs: list[tuple[str, Any]], key: str) -> Any:
    for name, value in pairs:
        if name == key:
            return value
    raise TsharkError("no " + key + " in tshark's output")


def _decoded_frame(index: int, packet: Any) -> DecodedDiameter:
    layers = _pairs(_get(_pairs(_get(_pairs(packet), "_source")), "layers"))
    names = [name for name, _ in layers]
    if "diameter" not in names:
        raise TsharkError(
            "tshark found no Diameter message in frame "
            + str(index + 1)
            + " (layers: "
            + ", ".join(names)
            + ")"
        )
    first = names.index("diameter")
    diameter = _pairs(layers[first][1])
    try:
        flags = _header_flags(int(_get(diameter, "diameter.flags"), 16))
        return DecodedDiameter(
            command_code=int(_get(diameter, "diameter.cmd.code")),
            request=flags["request"],
            proxiable=flags["proxiable"],
            error=flags["error"],
            retransmit=flags["retransmit"],
            application_id=int(_get(diameter, "diameter.applicationId")),
            hop_by_hop=int(_get(diameter, "diameter.hopbyhopid"), 16),
            end_to_end=int(_get(diameter, "diameter.endtoendid"), 16),
            length=int(_get(diameter, "diameter.length")),
            avps=tuple(_tshark_avps(diameter)),
            expert=tuple(_expert(layers)),
            extra_layers=tuple(names[first + 1 :]),
        )
    except TsharkError as e:
        raise TsharkError("frame " + str(index + 1) + ": " + str(e)) from None


def _tshark_avps(pairs: list[tuple[str, Any]]) -> Iterator[DiameterAvp]:
    for key, value in pairs:
        if key == "diameter.avp_tree":
            avp = _tshark_avp(_pairs(value))
            if avp is not None:
                yield avp


#: Fields in an AVP's tree that are not its value.
_AVP_STRUCTURE = ("diameter.avp.", "diameter.flags.")


def _tshark_avp(tree: list[tuple[str, Any]]) -> Optional[DiameterAvp]:
    code: Optional[int] = None
    vendor: Optional[int] = None
    name: Optional[str] = None
    value: Optional[str] = None
    children: tuple[DiameterAvp, ...] = ()
    for key, field in tree:
        if key == "diameter.avp.code":
            code = int(field)
        elif key == "diameter.avp.vendorId":
            vendor = int(field)
        elif key == "diameter.avp.unknown" and value is None:
            value = str(field)
        elif name is not None and key == "diameter." + name + "_tree":
            children = tuple(_tshark_avps(_pairs(field)))
        elif (
            name is None
            and value is None
            and key.startswith("diameter.")
            and not key.startswith(_AVP_STRUCTURE)
            and not key.endswith("_tree")
        ):
            name, value = key[len("diameter.") :], str(field)
    if code is None:
        return None
    return DiameterAvp(code, vendor, name, value, children)


def _expert(node: Any) -> Iterator[ExpertInfo]:
    """Every ``_ws.expert`` item anywhere under ``node``, in order."""
    for key, value in _pairs(node):
        if key == "_ws.expert":
            item = dict(_pairs(value))
            severity = int(item.get("_ws.expert.severity", "0"))
            group = int(item.get("_ws.expert.group", "0"))
            yield ExpertInfo(
                _SEVERITIES.get(severity, hex(severity)),
                _GROUPS.get(group, hex(group)),
                str(item.get("_ws.expert.message", "")),
            )
        else:
            yield from _expert(value)


# ---- pycrate


class PycrateDecodeError(Exception):
    """pycrate could not decode the message, or its decoding does not account for every byte."""


def pycrate_available() -> bool:
    """Whether ``pycrate_diameter`` is importable (it may be missing under PyPy)."""
    return importlib.util.find_spec("pycrate_diameter") is not None


def require_pycrate() -> None:
    """Skip the test where pycrate is not installed."""
    if not pycrate_available():
        pytest.skip("pycrate (pycrate_diameter) is not installed for this interpreter")


def pycrate_decode(message: bytes) -> DecodedDiameter:
    """Decode ``message`` with ``pycrate_diameter.Diameter3GPP``. pycrate quietly stops at an
    AVP whose length runs past the end, so this also requires the header's Message Length to be
    the message's length and pycrate's result to re-encode to exactly ``message``."""
    require_pycrate()
    from pycrate_diameter.Diameter3GPP import Diameter3GPP  # type: ignore[import-untyped]

    decoded: Any = Diameter3GPP()
    try:
        decoded.from_bytes(message)
        again = decoded.to_bytes()
        header: list[Any] = decoded[0].get_val()
        avps = tuple(_pycrate_avp(avp) for avp in decoded[1])
    except Exception as e:  # pycrate raises its own EltErr, and more on bad input
        raise PycrateDecodeError(type(e).__name__ + ": " + str(e)) from e
    _version, length, r, p, e_bit, t, _reserved, code, app, hop, end = header
    if length != len(message):
        raise PycrateDecodeError(
            "Message Length " + str(length) + " but " + str(len(message)) + " bytes"
        )
    if again != message:
        raise PycrateDecodeError(
            "pycrate's decoding re-encodes to different bytes (an AVP "
            "length is wrong?): " + again.hex() + " != " + message.hex()
        )
    return DecodedDiameter(
        command_code=int(code),
        request=bool(r),
        proxiable=bool(p),
        error=bool(e_bit),
        retransmit=bool(t),
        application_id=int(app),
        hop_by_hop=int(hop),
        end_to_end=int(end),
        length=int(length),
        avps=avps,
    )


def _pycrate_avp(avp: Any) -> DiameterAvp:
    header, data = avp[0], avp[1]
    fields: list[Any] = header.get_val()
    code = int(fields[0])
    vendor = int(fields[6]) if fields[1] else None
    names = getattr(header["Code"], "_dic", None)
    name = names.get(code) if isinstance(names, dict) else None
    kind = type(data).__name__
    if kind == "Grouped":
        return DiameterAvp(code, vendor, name, None, tuple(_pycrate_avp(a) for a in data))
    raw: Any = data.get_val()
    value: AvpValue
    if kind == "Address":
        family, address = raw
        value = str(ipaddress.ip_address(address)) if family in (1, 2) else bytes(address)
    elif isinstance(raw, (int, float, str, bytes)):
        value = raw
    else:
        value = repr(raw)
    return DiameterAvp(code, vendor, name if isinstance(name, str) else None, value)
